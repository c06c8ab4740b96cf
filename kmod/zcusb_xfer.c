// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb.ko: transfers. SUBMIT validates a request, finds its pages (pinned
 * now, or a registered range), has zcusb_sg.c cut it into segments (user
 * pages or kernel bounce buffers) and group them into URBs, and submits
 * them. Completion handlers (atomic) move the transfer from opener->pending
 * to opener->completed when its last URB is given back; REAP (process
 * context) copies bounced IN data into the user pages, reports the
 * completion and frees the transfer. CANCEL unlinks, disconnect and
 * release() kill.
 *
 * A transfer split into several URBs queues them all at once. Every URB but
 * the last of an IN transfer has URB_SHORT_NOT_OK, so the host controller
 * halts the endpoint queue when one of them ends short or with an error;
 * its completion handler then blocks and unlinks the later URBs before the
 * queue moves on (what usbfs does for bulk continuation).
 */
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/timer.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "zcusb.h"

void zcusb_opener_init(struct zcusb_opener *c, struct zcusb_intf *zi)
{
	c->zi = zi;
	spin_lock_init(&c->lock);
	INIT_LIST_HEAD(&c->pending);
	INIT_LIST_HEAD(&c->completed);
	init_waitqueue_head(&c->wait);
	init_usb_anchor(&c->anchor);
	xa_init_flags(&c->regions, XA_FLAGS_ALLOC1);
	xa_init(&c->aliases);
	INIT_LIST_HEAD(&c->kqueues);
	c->next_kqueue_id = 1;
}

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)
#define timer_delete_sync(t) del_timer_sync(t)
#endif
#ifndef from_timer
#define from_timer(var, t, field) timer_container_of(var, t, field)
#endif

static const struct usb_host_endpoint *zcusb_find_ep(struct zcusb_intf *zi,
						     u8 addr)
{
	return zcusb_alt_find_ep(zi->intf->cur_altsetting, addr);
}

/* Free a transfer no URB of which is in flight (process context). */
void zcusb_xfer_free(struct zcusb_xfer *x)
{
	struct zcusb_opener *c = x->c;
	unsigned int i;

	if (x->have_timer)
		timer_delete_sync(&x->timer);

	if (x->urbs) {
		for (i = 0; i < x->nurbs; i++)
			usb_free_urb(x->urbs[i]);
		kfree(x->urbs);
	}
	kfree(x->uctx);
	if (x->have_sgt)
		sg_free_table(&x->sgt);
	if (x->segs) {
		for (i = 0; i < x->nsegs; i++)
			kfree(x->segs[i].kbuf);
		kvfree(x->segs);
	}
	kfree(x->setup);
	if (x->region)
		zcusb_region_put(c, x->region);
	else if (x->npages)
		zcusb_unpin(c, x->pages, x->npages,
			    x->in || x->type == ZCUSB_TYPE_ISO);
	zcusb_kmem_uncharge(c, x->kmem);
	kfree(x);
}

static int zcusb_map_status(struct zcusb_opener *c, struct zcusb_xfer *x,
			    int st)
{
	if (!st)
		return 0;
	/* -ESHUTDOWN: the endpoint was disabled because the interface went */
	if (c->disconnected || st == -ESHUTDOWN)
		return -ENODEV;
	if (x->cancel_status && (st == -ENOENT || st == -ECONNRESET))
		return x->cancel_status;
	return st;
}

/*
 * A status as zcusbd reports it (transfer_status_from_urb()): what the
 * host controller says of one iso packet.
 */
int zcusb_user_status(int st)
{
	switch (st) {
	case 0:
	case -EPIPE:
	case -EOVERFLOW:
	case -EREMOTEIO:
	case -ETIMEDOUT:
	case -ECANCELED:
		return st;
	case -ENOENT:
	case -ECONNRESET:
		return -ECANCELED;
	case -ENODEV:
	case -ESHUTDOWN:
		return -ENODEV;
	case -EPROTO:
	case -EILSEQ:
	case -ETIME:
	case -ECOMM:
	case -ENOSR:
	case -EXDEV:
		return -EPROTO;
	default:
		return st < 0 ? st : -EIO;
	}
}

static void zcusb_stop_urbs(struct zcusb_xfer *x, unsigned int from,
			    unsigned int to)
{
	unsigned int i;

	/* block first: an URB not yet linked then fails its submission */
	for (i = from; i < to; i++) {
		usb_block_urb(x->urbs[i]);
		usb_unlink_urb(x->urbs[i]);
	}
}

/*
 * The last URB of @x is back (c->lock held): a SUBMIT's waits for REAP; a
 * queue's is posted now if there is nothing left to do but free it.
 * Returns whether it was posted.
 */
static bool zcusb_xfer_done(struct zcusb_xfer *x)
{
	if (x->kq)
		return zcusb_queue_xfer_done(x->kq, x);
	list_move_tail(&x->node, &x->c->completed);
	return false;
}

/* After zcusb_xfer_done(), c->lock released: wake whoever reports it. */
static void zcusb_xfer_report(struct zcusb_opener *c, struct zcusb_kqueue *kq,
			      bool posted)
{
	if (kq)
		zcusb_queue_xfer_report(kq, posted);
	else
		wake_up(&c->wait);
}

static void zcusb_urb_complete(struct urb *urb)
{
	struct zcusb_urbctx *ctx = urb->context;
	struct zcusb_xfer *x = ctx->x;
	/* read now: once x is on a completed list it may be freed at once */
	struct zcusb_kqueue *kq = x->kq;
	struct zcusb_opener *c = x->c;
	bool later = ctx->idx + 1 < x->nurbs;
	bool unlink = false, done, posted = false;
	unsigned long flags;
	int st = urb->status;

	spin_lock_irqsave(&c->lock, flags);
	if (!x->terminated) {
		x->actual += urb->actual_length;
		if (st) {
			x->terminated = true;
			unlink = later;
			/* a short packet ends a split IN transfer early */
			if (st == -EREMOTEIO && later &&
			    !(x->flags & ZCUSB_SUBMIT_SHORT_NOT_OK))
				st = 0;
			x->status = zcusb_map_status(c, x, st);
		}
	}
	spin_unlock_irqrestore(&c->lock, flags);

	/* x stays on ->pending (and alive) until our urbs_left share goes */
	if (unlink)
		zcusb_stop_urbs(x, ctx->idx + 1, x->nurbs);

	spin_lock_irqsave(&c->lock, flags);
	done = !--x->urbs_left;
	if (done)
		posted = zcusb_xfer_done(x);
	spin_unlock_irqrestore(&c->lock, flags);
	/* x is not ours any more; kq and c outlive their URBs' completions */
	if (done)
		zcusb_xfer_report(c, kq, posted);
}

/* timeout_ms of a queue's transfer ran out: end it with -ETIMEDOUT. */
static void zcusb_xfer_timeout(struct timer_list *t)
{
	struct zcusb_xfer *x = from_timer(x, t, timer);
	struct zcusb_opener *c = x->c;
	unsigned long flags;
	bool stop;

	spin_lock_irqsave(&c->lock, flags);
	stop = !x->cancel_status && x->urbs_left;
	if (stop)
		x->cancel_status = -ETIMEDOUT;
	spin_unlock_irqrestore(&c->lock, flags);
	/* x lives until zcusb_xfer_free(), which waits for us first */
	if (stop)
		zcusb_stop_urbs(x, 0, x->nurbs);
}

static int zcusb_check_submit(struct zcusb_opener *c,
			      const struct zcusb_submit *s,
			      const struct usb_host_endpoint **epp,
			      struct zcusb_region **regionp, bool *inp)
{
	struct zcusb_intf *zi = c->zi;
	const struct usb_host_endpoint *ep = NULL;
	struct zcusb_region *r = NULL;
	bool in;
	int i;

	if (s->flags & ~(ZCUSB_SUBMIT_SHORT_NOT_OK | ZCUSB_SUBMIT_ZERO_PACKET))
		return -EINVAL;
	if (s->iso_packets && s->type != ZCUSB_TYPE_ISO)
		return -EINVAL;
	if (s->length > ZCUSB_MAX_TRANSFER)
		return -EMSGSIZE;

	switch (s->type) {
	case ZCUSB_TYPE_CONTROL: {
		const struct usb_ctrlrequest *cr = (const void *)s->setup;
		int ret;

		if (s->endpoint || le16_to_cpu(cr->wLength) != s->length)
			return -EINVAL;
		ret = zcusb_check_ctrl(zi->intf->cur_altsetting, cr);
		if (ret)
			return ret;
		in = cr->bRequestType & USB_DIR_IN;
		if (s->flags & ZCUSB_SUBMIT_ZERO_PACKET)
			return -EINVAL;
		break;
	}
	case ZCUSB_TYPE_BULK:
	case ZCUSB_TYPE_INTERRUPT:
		for (i = 0; i < sizeof(s->setup); i++)
			if (s->setup[i])
				return -EINVAL;
		ep = zcusb_find_ep(zi, s->endpoint);
		if (!ep || usb_endpoint_type(&ep->desc) != s->type ||
		    !usb_endpoint_maxp(&ep->desc))
			return -EINVAL;
		in = usb_endpoint_dir_in(&ep->desc);
		if (in && (s->flags & ZCUSB_SUBMIT_ZERO_PACKET))
			return -EINVAL;
		break;
	case ZCUSB_TYPE_ISO:
		/* as an ISO ring entry is checked (zcusb_check_sqe()) */
		for (i = 0; i < sizeof(s->setup); i++)
			if (s->setup[i])
				return -EINVAL;
		ep = zcusb_find_ep(zi, s->endpoint);
		if (!ep || !usb_endpoint_xfer_isoc(&ep->desc) ||
		    !usb_endpoint_maxp(&ep->desc) || s->flags)
			return -EINVAL;
		if (!s->iso_packets || s->iso_packets > ZCUSB_ISO_MAX_PACKETS ||
		    s->length < s->iso_packets * sizeof(struct zcusb_iso_packet) ||
		    (s->buffer_id ? s->offset : s->addr) %
			    __alignof__(struct zcusb_iso_packet))
			return -EINVAL;
		in = usb_endpoint_dir_in(&ep->desc);
		break;
	default:
		return -EINVAL;
	}
	if (!in && (s->flags & ZCUSB_SUBMIT_SHORT_NOT_OK))
		return -EINVAL;

	if (s->buffer_id) {
		if (s->addr)
			return -EINVAL;
		r = xa_load(&c->regions, s->buffer_id);
		if (!r || r->orphan)
			return -ENOENT;
		if (s->offset > r->length || s->length > r->length - s->offset)
			return -EINVAL;
	} else {
		if (s->offset)
			return -EINVAL;
		if (s->length && (s->addr + s->length < s->addr ||
				  !access_ok(u64_to_user_ptr(s->addr),
					     s->length)))
			return -EFAULT;
	}
	*epp = ep;
	*regionp = r;
	*inp = in;
	return 0;
}

/* Endpoint, completion and flags of URB @i (its data: zcusb_build_urbs()). */
void zcusb_fill_urb(struct zcusb_xfer *x, unsigned int i, unsigned int pipe,
		    int interval)
{
	struct urb *u = x->urbs[i];
	bool last = i + 1 == x->nurbs;

	u->dev = x->c->zi->udev;
	u->pipe = pipe;
	u->interval = interval;
	u->complete = zcusb_urb_complete;
	u->context = &x->uctx[i];
	u->setup_packet = (unsigned char *)x->setup;
	if (x->in) {
		if (!last || (x->flags & ZCUSB_SUBMIT_SHORT_NOT_OK))
			u->transfer_flags |= URB_SHORT_NOT_OK;
	} else if (last && (x->flags & ZCUSB_SUBMIT_ZERO_PACKET)) {
		u->transfer_flags |= URB_ZERO_PACKET;
	}
}

static int zcusb_map_submit_err(int ret)
{
	/* the endpoint or device is going away under us */
	if (ret == -ESHUTDOWN || ret == -ENOENT || ret == -ENODEV)
		return -ENODEV;
	return ret;
}

/* Called with zi->lock held; the interface is not disconnected. */
int zcusb_submit(struct zcusb_opener *c, const struct zcusb_submit *s)
{
	return zcusb_submit_xfer(c, s, NULL, 0);
}

/*
 * Submit for the SUBMIT ioctl (@kq NULL: REAP reports the end) or for an
 * in-kernel queue (its work posts the end; @timeout_ms 0: none). Called
 * with zi->lock held; the interface is not disconnected.
 */
int zcusb_submit_xfer(struct zcusb_opener *c, const struct zcusb_submit *s,
		      struct zcusb_kqueue *kq, u32 timeout_ms)
{
	struct usb_device *udev = c->zi->udev;
	const struct usb_host_endpoint *ep;
	struct zcusb_region *r;
	struct zcusb_xfer *x;
	unsigned int pipe, i, submitted;
	bool in, sg, constrained, unlink = false, done, posted = false;
	unsigned int tablesize = 0;
	int interval = 0, ret;
	u32 mp = 0;

	ret = zcusb_check_submit(c, s, &ep, &r, &in);
	if (ret)
		return ret;

	x = kzalloc(sizeof(*x), GFP_KERNEL);
	if (!x)
		return -ENOMEM;
	x->c = c;
	x->kq = kq;
	x->in = in;
	x->user_data = s->user_data;
	x->length = s->length;
	x->flags = s->flags;
	x->type = s->type;
	x->iso_packets = s->iso_packets;
	ret = zcusb_kmem_charge(c, sizeof(*x));
	if (ret) {
		kfree(x);
		return ret;
	}
	x->kmem = sizeof(*x);

	if (x->length) {
		if (r) {
			x->region = r;
			r->users++;
			x->pages = r->pages + (s->offset >> PAGE_SHIFT);
			x->page_off = offset_in_page(s->offset);
		} else {
			unsigned long npages;

			x->page_off = offset_in_page(s->addr);
			npages = DIV_ROUND_UP(x->page_off + x->length,
					      PAGE_SIZE);
			/* LONGTERM: an IN may wait for data for hours */
			ret = zcusb_pin(c, s->addr & PAGE_MASK, npages,
					(in || x->type == ZCUSB_TYPE_ISO ?
					 FOLL_WRITE : 0) | FOLL_LONGTERM,
					&x->pages);
			if (ret)
				goto fail;
			x->npages = npages;
		}
	}

	if (x->type == ZCUSB_TYPE_CONTROL) {
		x->setup = kmemdup(s->setup, sizeof(*x->setup), GFP_KERNEL);
		if (!x->setup) {
			ret = -ENOMEM;
			goto fail;
		}
		pipe = in ? usb_rcvctrlpipe(udev, 0) : usb_sndctrlpipe(udev, 0);
		sg = false;
		constrained = true;
	} else if (x->type == ZCUSB_TYPE_ISO) {
		u8 epnum = usb_endpoint_num(&ep->desc);

		pipe = in ? usb_rcvisocpipe(udev, epnum) :
			    usb_sndisocpipe(udev, epnum);
		sg = false;
		constrained = true;
	} else {
		u8 epnum = usb_endpoint_num(&ep->desc);

		mp = usb_endpoint_maxp(&ep->desc);
		if (x->type == ZCUSB_TYPE_BULK) {
			pipe = in ? usb_rcvbulkpipe(udev, epnum) :
				    usb_sndbulkpipe(udev, epnum);
		} else {
			pipe = in ? usb_rcvintpipe(udev, epnum) :
				    usb_sndintpipe(udev, epnum);
			interval = ep->desc.bInterval;
			if (udev->speed >= USB_SPEED_HIGH)
				interval = 1 << min(15, max(interval, 1) - 1);
		}
		tablesize = zcusb_sg_limits(udev, x->length, &constrained);
		sg = tablesize > 0;
	}

	if (x->type == ZCUSB_TYPE_ISO) {
		ret = zcusb_iso_prepare(x, ep, pipe);
	} else {
		ret = zcusb_make_segs(x, mp, sg, constrained);
		if (!ret)
			ret = zcusb_build_urbs(x, pipe, interval, mp,
					       tablesize);
	}
	if (ret)
		goto fail;

	spin_lock_irq(&c->lock);
	x->urbs_left = x->nurbs + 1;	/* +1: ours until all are submitted */
	list_add_tail(&x->node, &c->pending);
	spin_unlock_irq(&c->lock);

	for (i = 0; i < x->nurbs; i++) {
		usb_anchor_urb(x->urbs[i], kq ? &kq->anchor : &c->anchor);
		ret = usb_submit_urb(x->urbs[i], GFP_KERNEL);
		if (ret) {
			usb_unanchor_urb(x->urbs[i]);
			break;
		}
	}
	submitted = i;

	if (!submitted) {
		/* nothing in flight: fail the ioctl, queue no completion */
		spin_lock_irq(&c->lock);
		list_del(&x->node);
		spin_unlock_irq(&c->lock);
		ret = zcusb_map_submit_err(ret);
		goto fail;
	}
	atomic64_add(submitted, &zcusb_stats.urbs);
	atomic64_add(x->zc_bytes, &zcusb_stats.zerocopy_bytes);
	atomic64_add(x->length - x->zc_bytes, &zcusb_stats.bounced_bytes);
	if (timeout_ms) {
		/* armed while our urbs_left share keeps x off ->completed */
		timer_setup(&x->timer, zcusb_xfer_timeout, 0);
		x->have_timer = true;
		mod_timer(&x->timer, jiffies + msecs_to_jiffies(timeout_ms));
	}

	spin_lock_irq(&c->lock);
	/* -EPERM: blocked by a completion that already ended the transfer */
	if (ret && !x->terminated) {
		x->terminated = true;
		x->status = zcusb_map_submit_err(ret);
		unlink = true;
	}
	x->urbs_left -= x->nurbs - submitted + 1;
	done = !x->urbs_left;
	if (done)
		posted = zcusb_xfer_done(x);
	spin_unlock_irq(&c->lock);
	if (unlink)
		zcusb_stop_urbs(x, 0, submitted);
	if (done)
		zcusb_xfer_report(c, kq, posted);
	return 0;

fail:
	zcusb_xfer_free(x);
	return ret;
}

/*
 * A transfer no URB of which is in flight: bounced IN data to the pages,
 * iso results to the descriptors.
 */
void zcusb_xfer_finish(struct zcusb_xfer *x)
{
	unsigned int i;

	if (x->type == ZCUSB_TYPE_ISO) {
		zcusb_iso_finish(x);
		return;
	}
	if (!x->in)
		return;
	for (i = 0; i < x->nsegs; i++) {
		const struct zcusb_seg *sp = &x->segs[i];

		if (sp->kbuf && sp->pos < x->actual)
			zcusb_copy_seg(x, sp, min(sp->len, x->actual - sp->pos),
				       true);
	}
}

/* Take the oldest completion; called with zi->lock held. */
int zcusb_reap(struct zcusb_opener *c, struct zcusb_completion __user *uc)
{
	struct zcusb_completion comp = {};
	struct zcusb_xfer *x;

	spin_lock_irq(&c->lock);
	x = list_first_entry_or_null(&c->completed, struct zcusb_xfer, node);
	if (x)
		list_del(&x->node);
	spin_unlock_irq(&c->lock);
	if (!x)
		return c->zi->disconnected ? -ENODEV : -EAGAIN;

	zcusb_xfer_finish(x);
	comp.user_data = x->user_data;
	comp.status = x->status;
	comp.actual_length = x->actual;
	if (copy_to_user(uc, &comp, sizeof(comp))) {
		/* keep it for the next REAP: nothing is lost */
		spin_lock_irq(&c->lock);
		list_add(&x->node, &c->completed);
		spin_unlock_irq(&c->lock);
		return -EFAULT;
	}
	zcusb_xfer_free(x);
	return 0;
}

static int zcusb_cancel_match(struct zcusb_opener *c, struct zcusb_kqueue *kq,
			      u64 user_data)
{
	struct zcusb_xfer *x, *found = NULL;

	spin_lock_irq(&c->lock);
	list_for_each_entry(x, &c->pending, node) {
		/* a queue's CANCEL finds no transfer cancelled already */
		if (x->kq == kq && x->user_data == user_data &&
		    !(kq && x->cancel_status)) {
			if (!x->cancel_status)
				x->cancel_status = -ECANCELED;
			found = x;
			break;
		}
	}
	spin_unlock_irq(&c->lock);
	if (!found)
		return -ENOENT;
	/*
	 * found may complete meanwhile, but only REAP or release() free a
	 * transfer and both need zi->lock, which our caller holds.
	 */
	zcusb_stop_urbs(found, 0, found->nurbs);
	return 0;
}

/* Unlink the URBs of the oldest pending transfer with @user_data. */
int zcusb_cancel(struct zcusb_opener *c, u64 user_data)
{
	return zcusb_cancel_match(c, NULL, user_data);
}

/* A queue's CANCEL entry; zi->lock held (the queue's work). */
int zcusb_cancel_kq(struct zcusb_kqueue *kq, u64 user_data)
{
	return zcusb_cancel_match(kq->c, kq, user_data);
}

bool zcusb_busy(struct zcusb_opener *c)
{
	bool busy;

	spin_lock_irq(&c->lock);
	busy = !list_empty(&c->pending);
	spin_unlock_irq(&c->lock);
	return busy;
}

/* Errors a host controller reports when the device went away. */
static bool zcusb_gone_status(int st)
{
	return st == -EPROTO || st == -EILSEQ || st == -ETIME ||
	       st == -ESHUTDOWN || st == -ENOENT || st == -ECONNRESET;
}

/*
 * Kill every URB in flight; waits (bounded: the HCD gives them back).
 * On disconnect, transfers that failed because the device vanished before
 * disconnect() ran (-EPROTO and the like) report -ENODEV as well.
 */
void zcusb_kill_all(struct zcusb_opener *c, bool disconnect)
{
	struct zcusb_xfer *x;

	if (disconnect) {
		spin_lock_irq(&c->lock);
		c->disconnected = true;
		spin_unlock_irq(&c->lock);
	}
	usb_kill_anchored_urbs(&c->anchor);
	if (disconnect) {
		spin_lock_irq(&c->lock);
		list_for_each_entry(x, &c->completed, node)
			if (zcusb_gone_status(x->status))
				x->status = -ENODEV;
		spin_unlock_irq(&c->lock);
	}
	wake_up(&c->wait);
}

/* release(): after zcusb_kill_all() every transfer is on ->completed. */
void zcusb_free_all(struct zcusb_opener *c)
{
	struct zcusb_xfer *x, *tmp;
	LIST_HEAD(list);

	spin_lock_irq(&c->lock);
	WARN_ON(!list_empty(&c->pending));
	list_splice_init(&c->completed, &list);
	spin_unlock_irq(&c->lock);
	list_for_each_entry_safe(x, tmp, &list, node) {
		list_del(&x->node);
		zcusb_xfer_free(x);
	}
}
