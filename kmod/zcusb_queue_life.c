// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb.ko: the life cycle of an in-kernel queue (zcusb_queue.c serves
 * it). QUEUE_ATTACH maps the ring memfd (its shmem pages held and charged
 * to the opener until detach), takes the complete eventfd and hooks a wait
 * entry on the submit eventfd; QUEUE_DETACH, release() and disconnect stop
 * it: no more doorbells, the pass queued on a task waited for, every URB
 * killed, what was in flight posted with the end status, the ring marked
 * DEAD when nobody is left to serve it, everything held given back.
 */
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "zcusb.h"

#define ZCUSB_RING_PAGE		4096u

static size_t zcusb_ring_bytes(u32 sq_entries, u32 *sq_off, u32 *cq_off)
{
	size_t sq = (size_t)sq_entries * sizeof(struct zcusb_sqe);
	size_t cq = (size_t)sq_entries * 2 * sizeof(struct zcusb_cqe);

	/* as daemon/ring.c lays it out: header page, SQ, then CQ */
	*sq_off = ZCUSB_RING_PAGE;
	*cq_off = ZCUSB_RING_PAGE + round_up(sq, ZCUSB_RING_PAGE);
	return round_up(*cq_off + cq, ZCUSB_RING_PAGE);
}

static void zcusb_kq_queue_proc(struct file *file, wait_queue_head_t *wqh,
				poll_table *pt)
{
	struct zcusb_kqueue *kq = container_of(pt, struct zcusb_kqueue, pt);

	if (kq->wqh)
		return;
	kq->wqh = wqh;
	add_wait_queue(wqh, &kq->wait);
}

/*
 * After the wait entry is gone no doorbell queues a task work: wait for
 * one queued or running to end, which it does as its task returns to user
 * space (or stops: signal and ptrace stops run task works first). It is
 * never queued on the caller: release() comes after every pass (each holds
 * the file), and QUEUE_DETACH is an ioctl from user space, by when the
 * caller's own task works have run.
 */
static void zcusb_kq_tw_quiesce(struct zcusb_kqueue *kq)
{
	wait_var_event(&kq->tw_wakes, !atomic_read(&kq->tw_wakes));
}

/* Everything but the URBs and the list: for a queue never or no longer live. */
static void zcusb_kq_free(struct zcusb_kqueue *kq)
{
	struct zcusb_opener *c = kq->c;
	unsigned long i;
	u64 cnt;

	if (kq->wqh)
		eventfd_ctx_remove_wait_queue(kq->submit, &kq->wait, &cnt);
	if (kq->map)
		vunmap(kq->map);
	for (i = 0; i < kq->npages; i++) {
		set_page_dirty_lock(kq->pages[i]);
		put_page(kq->pages[i]);
	}
	if (kq->npages) {
		c->pinned_pages -= kq->npages;
		atomic64_sub(kq->npages, &zcusb_stats.pinned_pages);
	}
	kvfree(kq->pages);
	if (!IS_ERR_OR_NULL(kq->submit))
		eventfd_ctx_put(kq->submit);
	if (!IS_ERR_OR_NULL(kq->complete))
		eventfd_ctx_put(kq->complete);
	zcusb_kmem_uncharge(c, sizeof(*kq));
	kfree(kq);
}

/* Map the ring memfd: its shmem pages, held (and charged) until detach. */
static int zcusb_kq_map_ring(struct zcusb_kqueue *kq, int fd, size_t bytes)
{
	struct zcusb_opener *c = kq->c;
	unsigned long limit = (unsigned long)READ_ONCE(zcusb_max_pinned_mb)
			      << (20 - PAGE_SHIFT);
	unsigned long i, npages = DIV_ROUND_UP(bytes, PAGE_SIZE);
	struct file *f;
	int ret = 0;

	if (npages > limit || c->pinned_pages > limit - npages)
		return -ENOMEM;
	f = fget(fd);
	if (!f)
		return -EBADF;
	/* a memfd (sealed by zcusbd, so it cannot shrink under us) */
	if (!shmem_file(f) || i_size_read(file_inode(f)) < bytes) {
		ret = -EINVAL;
		goto out;
	}
	kq->pages = kvcalloc(npages, sizeof(*kq->pages), GFP_KERNEL);
	if (!kq->pages) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < npages; i++) {
		struct page *p = shmem_read_mapping_page(f->f_mapping, i);

		if (IS_ERR(p)) {
			ret = PTR_ERR(p);
			break;
		}
		kq->pages[i] = p;
		kq->npages++;
	}
	/* charged as they are held, so zcusb_kq_free() undoes exactly this */
	c->pinned_pages += kq->npages;
	atomic64_add(kq->npages, &zcusb_stats.pinned_pages);
	if (ret)
		goto out;
	kq->map = vmap(kq->pages, npages, VM_MAP, PAGE_KERNEL);
	if (!kq->map)
		ret = -ENOMEM;
out:
	fput(f);
	return ret;
}

static int zcusb_kq_watch(struct zcusb_kqueue *kq, int fd)
{
	struct file *f = fget(fd);
	__poll_t events;

	if (!f)
		return -EBADF;
	kq->submit = eventfd_ctx_fileget(f);
	if (IS_ERR(kq->submit)) {
		fput(f);
		return PTR_ERR(kq->submit);
	}
	init_waitqueue_func_entry(&kq->wait, zcusb_kq_wakeup);
	init_poll_funcptr(&kq->pt, zcusb_kq_queue_proc);
	events = vfs_poll(f, &kq->pt);
	fput(f);
	if (!kq->wqh)
		return -EINVAL;
	if (events & EPOLLIN)
		zcusb_queue_kick(kq);
	return 0;
}

/* QUEUE_ATTACH; zi->lock held, the interface is not disconnected. */
int zcusb_queue_attach(struct zcusb_opener *c, struct zcusb_queue_attach *a)
{
	struct zcusb_ring_header *h;
	struct zcusb_kqueue *kq;
	u32 sq_off, cq_off;
	size_t bytes;
	int ret;

	if (a->flags || a->reserved || a->queue_id)
		return -EINVAL;
	if (a->sq_entries < ZCUSB_RING_MIN_ENTRIES ||
	    a->sq_entries > ZCUSB_RING_MAX_ENTRIES ||
	    !is_power_of_2(a->sq_entries))
		return -EINVAL;
	bytes = zcusb_ring_bytes(a->sq_entries, &sq_off, &cq_off);

	ret = zcusb_kmem_charge(c, sizeof(*kq));
	if (ret)
		return ret;
	kq = kzalloc(sizeof(*kq), GFP_KERNEL);
	if (!kq) {
		zcusb_kmem_uncharge(c, sizeof(*kq));
		return -ENOMEM;
	}
	kq->c = c;
	INIT_LIST_HEAD(&kq->completed);
	INIT_LIST_HEAD(&kq->reclaim);
	spin_lock_init(&kq->cq_lock);
	atomic_set(&kq->tw_wakes, 0);
	INIT_DELAYED_WORK(&kq->work, zcusb_kq_work);
	init_usb_anchor(&kq->anchor);

	ret = zcusb_kq_map_ring(kq, a->ring_fd, bytes);
	if (ret)
		goto fail;
	/* zcusbd laid it out (daemon/ring.c); the layout used is our own */
	h = kq->map;
	if (READ_ONCE(h->magic) != ZCUSB_RING_MAGIC ||
	    READ_ONCE(h->version) != ZCUSB_RING_VERSION ||
	    READ_ONCE(h->sq_entries) != a->sq_entries) {
		ret = -EINVAL;
		goto fail;
	}
	kq->hdr = h;
	kq->sq_entries = a->sq_entries;
	kq->cq_entries = a->sq_entries * 2;
	kq->sq = kq->map + sq_off;
	kq->cq = kq->map + cq_off;
	/* zcusbd's private indices: where it stopped */
	kq->sq_head = a->sq_head;
	kq->cq_tail = a->cq_tail;

	kq->complete = eventfd_ctx_fdget(a->complete_fd);
	if (IS_ERR(kq->complete)) {
		ret = PTR_ERR(kq->complete);
		goto fail;
	}
	/* after this the callback may run: everything above is ready */
	ret = zcusb_kq_watch(kq, a->submit_fd);
	if (ret)
		goto fail;

	kq->id = c->next_kqueue_id++;
	list_add_tail(&kq->node, &c->kqueues);
	atomic64_inc(&zcusb_stats.kqueues);
	a->queue_id = kq->id;
	zcusb_queue_kick(kq);
	return 0;

fail:
	/* not listed: a pass finds a queue stopping if a doorbell came */
	kq->stopping = true;
	if (kq->wqh) {
		u64 cnt;

		eventfd_ctx_remove_wait_queue(kq->submit, &kq->wait, &cnt);
		kq->wqh = NULL;
	}
	/* the wait entry is the last thing added: no doorbell reached us */
	WARN_ON(atomic_read(&kq->tw_wakes));
	cancel_delayed_work(&kq->work);
	zcusb_kq_free(kq);
	return ret;
}

/* The counters of @kq: a consistent snapshot. */
static void zcusb_kq_fill_stats(struct zcusb_kqueue *kq,
				struct zcusb_queue_stats *st)
{
	spin_lock_irq(&kq->cq_lock);
	*st = (struct zcusb_queue_stats){
		.queue_id = kq->id,
		.submitted = kq->n.submitted,
		.completed = kq->n.completed,
		.failed = kq->n.failed,
		.bytes_in = kq->n.bytes_in,
		.bytes_out = kq->n.bytes_out,
		.in_flight = kq->in_flight,
	};
	spin_unlock_irq(&kq->cq_lock);
}

/*
 * Stop serving @kq: no more wakeups, every URB killed, then (zi->lock
 * taken again) what is in flight completes with @end_status (-ENODEV once
 * the device is gone) and the ring keeps the module's last indices; @st
 * (may be NULL) gets the final counters, nothing left to count.
 * Called without zi->lock; @kq is off the list already (so stopping).
 */
static void zcusb_kq_stop(struct zcusb_kqueue *kq, int end_status,
			  bool mark_dead, struct zcusb_queue_detach *d,
			  struct zcusb_queue_stats *st)
{
	struct zcusb_opener *c = kq->c;
	struct zcusb_intf *zi = c->zi;
	struct zcusb_xfer *x;
	bool posted;
	u64 cnt;

	eventfd_ctx_remove_wait_queue(kq->submit, &kq->wait, &cnt);
	kq->wqh = NULL;
	zcusb_kq_tw_quiesce(kq);
	/* what ends now ends with the claim's status, not -ENOENT */
	spin_lock_irq(&c->lock);
	list_for_each_entry(x, &c->pending, node)
		if (x->kq == kq && !x->cancel_status)
			x->cancel_status = end_status;
	spin_unlock_irq(&c->lock);
	usb_kill_anchored_urbs(&kq->anchor);
	/* the last completions may have kicked it: it sees ->stopping */
	cancel_delayed_work_sync(&kq->work);

	mutex_lock(&zi->lock);
	posted = zcusb_kq_reap(kq);
	/* every URB is back, so nothing posts any more: no cq_lock needed */
	WARN_ON(kq->in_flight);
	if (mark_dead) {
		WRITE_ONCE(kq->hdr->end_status, end_status);
		smp_wmb();	/* the status before the flag that says it is there */
		zcusb_kq_set_flags(kq, ZCUSB_SQ_DEAD, 0);
	}
	if (posted || mark_dead)
		zcusb_eventfd_signal(kq->complete);
	if (d) {
		d->sq_head = kq->sq_head;
		d->cq_tail = kq->cq_tail;
	}
	if (st)
		zcusb_kq_fill_stats(kq, st);
	atomic64_dec(&zcusb_stats.kqueues);
	zcusb_kq_free(kq);
	mutex_unlock(&zi->lock);
}

static struct zcusb_kqueue *zcusb_kq_find(struct zcusb_opener *c, u32 id)
{
	struct zcusb_kqueue *kq;

	list_for_each_entry(kq, &c->kqueues, node)
		if (kq->id == id)
			return kq;
	return NULL;
}

/*
 * QUEUE_DETACH, without zi->lock: zcusbd serves the ring from here on.
 * @st (may be NULL) gets the final counters.
 */
int zcusb_queue_detach(struct zcusb_opener *c, struct zcusb_queue_detach *d,
		       struct zcusb_queue_stats *st)
{
	struct zcusb_intf *zi = c->zi;
	struct zcusb_kqueue *found;

	if (d->end_status > 0 || d->end_status < -MAX_ERRNO)
		return -EINVAL;
	mutex_lock(&zi->lock);
	found = zcusb_kq_find(c, d->queue_id);
	if (found) {
		list_del(&found->node);
		found->stopping = true;
	}
	mutex_unlock(&zi->lock);
	if (!found)
		return -ENOENT;
	zcusb_kq_stop(found, d->end_status, false, d, st);
	return 0;
}

/* QUEUE_STATS; zi->lock held (the queue stays listed). */
int zcusb_queue_stats(struct zcusb_opener *c, struct zcusb_queue_stats *st)
{
	struct zcusb_kqueue *kq;

	if (st->reserved || st->reserved2[0] || st->reserved2[1])
		return -EINVAL;
	kq = zcusb_kq_find(c, st->queue_id);
	if (!kq)
		return -ENOENT;
	zcusb_kq_fill_stats(kq, st);
	return 0;
}

/*
 * release(): zcusbd closed the file (stopped, or killed): nobody is left
 * to revoke these queues, so they end here, -ESHUTDOWN, rings DEAD.
 */
void zcusb_queue_detach_all(struct zcusb_opener *c, int end_status)
{
	struct zcusb_intf *zi = c->zi;
	struct zcusb_kqueue *kq;

	for (;;) {
		mutex_lock(&zi->lock);
		kq = list_first_entry_or_null(&c->kqueues, struct zcusb_kqueue,
					      node);
		if (kq) {
			list_del(&kq->node);
			kq->stopping = true;
		}
		mutex_unlock(&zi->lock);
		if (!kq)
			return;
		zcusb_kq_stop(kq, zi->disconnected ? -ENODEV : end_status,
			      true, NULL, NULL);
	}
}

/*
 * disconnect(), zi->lock held: every URB of every queue is killed and
 * posted -ENODEV; the queue's next pass serves no more.
 */
void zcusb_queue_disconnect(struct zcusb_opener *c)
{
	struct zcusb_kqueue *kq;

	list_for_each_entry(kq, &c->kqueues, node) {
		usb_kill_anchored_urbs(&kq->anchor);
		zcusb_queue_kick(kq);
	}
}
