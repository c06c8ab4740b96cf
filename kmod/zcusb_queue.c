// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb.ko: in-kernel queues. zcusbd hands over a client's queue (the ring
 * memfd of zcusb-ring.h and its two eventfds); from then on the module
 * consumes the submission ring and fills the completion ring itself, and
 * zcusbd is no longer woken per transfer. This file serves the rings;
 * zcusb_queue_life.c attaches and stops queues.
 *
 * Who does what (the path a libusb program takes through usbfs, with no
 * thread of our own in it):
 * - The completion handler of a transfer's last URB (atomic context)
 *   posts its completion and signals the complete eventfd; the transfer
 *   itself is freed by the queue's next pass. Only IN data bounced through
 *   kernel buffers (disable_zerocopy, a constrained controller, iso) and
 *   iso results wait for the queue's work item, which copies them out in
 *   process context first.
 * - A pass takes new entries (zi->lock held). It runs in the context of the
 *   task that rang the doorbell: the wait-queue callback on the submit
 *   eventfd (as KVM's irqfd and vhost have) queues a task work on the
 *   writer, which runs the pass as that write(2) returns, so the client's
 *   own syscall submits its URBs (what USBDEVFS_SUBMITURB does). When the
 *   eventfd is signalled from a context with no user task to borrow (an
 *   interrupt, a kernel thread), the queue's work item runs it instead, as
 *   it does for timers and for passes that have more than a ring to take.
 *
 * The ring is client-writable memory: every entry is copied out once
 * (READ_ONCE per field) and checked by zcusb_check.c against the
 * interface's current alternate setting and the client's buffers (aliases
 * of registered ranges). The module keeps its own sq_head and cq_tail and
 * never reads them back; an sq_tail more than sq_entries ahead marks the
 * ring ZCUSB_SQ_BROKEN. An entry is taken only when its completion is sure
 * to fit (free completion slots > transfers in flight), so the completion
 * ring never overflows. A pass takes at most sq_entries entries and then
 * requeues itself behind other work: nothing the client writes can make it
 * loop without bound or sleep.
 *
 * Doorbell (ZCUSB_SQ_NEED_WAKEUP): always set, as zcusb-ring.h allows, since
 * nothing but a doorbell brings a pass (completions are posted without
 * one); ringing it costs the client the write(2) that also submits.
 */
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/task_work.h>
#include <linux/version.h>

#include "zcusb.h"

/* entries waiting for completion slots: look every 4 ms, backing off to 1 s */
#define ZCUSB_KQ_POLL_MS	4
#define ZCUSB_KQ_POLL_MAX_SHIFT	8
/* passes one doorbell's task work makes for doorbells rung meanwhile */
#define ZCUSB_KQ_TW_PASSES	4

void zcusb_queue_kick(struct zcusb_kqueue *kq)
{
	/* any context; pulls a pending poll or grace timer forward */
	mod_delayed_work(zcusb_wq, &kq->work, 0);
}

void zcusb_kq_set_flags(struct zcusb_kqueue *kq, u32 set, u32 clear)
{
	u32 *p = &kq->hdr->sq_flags.value;
	u32 old = READ_ONCE(*p);	/* only the module writes it */

	WRITE_ONCE(*p, (old & ~clear) | set);
}

static void zcusb_kq_break(struct zcusb_kqueue *kq)
{
	kq->broken = true;
	zcusb_kq_set_flags(kq, ZCUSB_SQ_BROKEN, 0);
	atomic64_inc(&zcusb_stats.kq_broken);
	dev_dbg(&kq->c->zi->intf->dev,
		"zcusb: queue %u: sq_tail beyond the ring, queue stopped\n",
		kq->id);
}

/* Post one completion; cq_lock held. */
static void zcusb_kq_post(struct zcusb_kqueue *kq, u64 user_data, int status,
			  u32 actual)
{
	struct zcusb_cqe *cqe = &kq->cq[kq->cq_tail & (kq->cq_entries - 1)];

	lockdep_assert_held(&kq->cq_lock);
	WRITE_ONCE(cqe->user_data, user_data);
	WRITE_ONCE(cqe->status, status);
	WRITE_ONCE(cqe->actual_length, actual);
	WRITE_ONCE(cqe->flags, 0);
	/* sq_head, published when the entry was taken, comes before this */
	smp_store_release(&kq->hdr->cq_tail.value, ++kq->cq_tail);
}

/*
 * Post the end of an entry and count it as zcusbd counts those of the
 * queues it serves (daemon/queue.c, transfer.c): status 0 is completed,
 * with its bytes by direction; anything else (a refusal too) is failed,
 * its bytes not counted. @in_flight: it was counted in flight until now.
 * cq_lock held.
 */
static void zcusb_kq_end(struct zcusb_kqueue *kq, u64 user_data, int status,
			 bool in, u32 actual, bool in_flight)
{
	zcusb_kq_post(kq, user_data, status, actual);
	if (in_flight) {
		kq->in_flight--;
		atomic64_dec(&zcusb_stats.kq_in_flight);
	}
	if (status) {
		kq->n.failed++;
		return;
	}
	kq->n.completed++;
	if (in)
		kq->n.bytes_in += actual;
	else
		kq->n.bytes_out += actual;
}

/* As zcusb_kq_end(), taking cq_lock (process context). */
static void zcusb_kq_end_locked(struct zcusb_kqueue *kq, u64 user_data,
				int status, bool in, u32 actual, bool in_flight)
{
	spin_lock_irq(&kq->cq_lock);
	zcusb_kq_end(kq, user_data, status, in, actual, in_flight);
	spin_unlock_irq(&kq->cq_lock);
}

static void zcusb_kq_signal(struct zcusb_kqueue *kq)
{
	if (!(READ_ONCE(kq->hdr->cq_flags.value) & ZCUSB_CQ_NO_WAKEUP))
		zcusb_eventfd_signal(kq->complete);
}

/*
 * The last URB of @x is back (any context, c->lock held). With nothing
 * left to do in process context, post it now and leave it on ->reclaim for
 * the next pass to free; else (bounced IN data, iso results to write) on
 * ->completed for the work to finish.
 */
bool zcusb_queue_xfer_done(struct zcusb_kqueue *kq, struct zcusb_xfer *x)
{
	unsigned long flags;

	if (x->type == ZCUSB_TYPE_ISO || (x->in && x->zc_bytes != x->length)) {
		list_move_tail(&x->node, &kq->completed);
		return false;
	}
	list_move_tail(&x->node, &kq->reclaim);
	spin_lock_irqsave(&kq->cq_lock, flags);
	zcusb_kq_end(kq, x->user_data, x->status, x->in, x->actual, true);
	spin_unlock_irqrestore(&kq->cq_lock, flags);
	return true;
}

/* After zcusb_queue_xfer_done(), c->lock released. */
void zcusb_queue_xfer_report(struct zcusb_kqueue *kq, bool posted)
{
	if (posted)
		zcusb_kq_signal(kq);
	else
		zcusb_queue_kick(kq);
}

/* Free completion slots (cq_lock held); a cq_head beyond what was posted reads as none. */
static u32 zcusb_kq_cq_space(struct zcusb_kqueue *kq)
{
	u32 used = kq->cq_tail - smp_load_acquire(&kq->hdr->cq_head.value);

	return used > kq->cq_entries ? 0 : kq->cq_entries - used;
}

/*
 * Free the transfers posted from completion context and finish, post and
 * free those left for process context (zi->lock held). Returns whether
 * anything was posted here.
 */
bool zcusb_kq_reap(struct zcusb_kqueue *kq)
{
	struct zcusb_opener *c = kq->c;
	struct zcusb_xfer *x, *tmp;
	LIST_HEAD(reclaim);
	LIST_HEAD(list);

	spin_lock_irq(&c->lock);
	list_splice_init(&kq->reclaim, &reclaim);
	list_splice_init(&kq->completed, &list);
	spin_unlock_irq(&c->lock);
	list_for_each_entry_safe(x, tmp, &reclaim, node) {
		list_del(&x->node);
		zcusb_xfer_free(x);
	}
	if (list_empty(&list))
		return false;
	list_for_each_entry_safe(x, tmp, &list, node) {
		list_del(&x->node);
		zcusb_xfer_finish(x);
		zcusb_kq_end_locked(kq, x->user_data, x->status, x->in,
				    x->actual, true);
		zcusb_xfer_free(x);
	}
	return true;
}

/*
 * UNREGISTER (zi->lock held): a range the client no longer uses should not
 * stay pinned by transfers that ended and wait only to be freed.
 */
void zcusb_queue_reclaim_all(struct zcusb_opener *c)
{
	struct zcusb_kqueue *kq;

	list_for_each_entry(kq, &c->kqueues, node)
		if (zcusb_kq_reap(kq))
			zcusb_kq_signal(kq);
}

static void zcusb_region_read(const struct zcusb_region *r, u64 off, void *buf,
			      u32 len)
{
	while (len) {
		u32 po = offset_in_page(off);
		u32 n = min_t(u32, len, PAGE_SIZE - po);

		memcpy_from_page(buf, r->pages[off >> PAGE_SHIFT], po, n);
		buf += n;
		off += n;
		len -= n;
	}
}

/*
 * Check and start one entry (a private copy, its completion slot taken),
 * or post its end at once. Returns whether something was posted here (the
 * caller signals).
 */
static bool zcusb_kq_handle(struct zcusb_kqueue *kq, const struct zcusb_sqe *e)
{
	struct zcusb_opener *c = kq->c;
	const struct usb_host_interface *alt = c->zi->intf->cur_altsetting;
	struct zcusb_region *r = NULL;
	struct zcusb_submit s = {};
	struct zcusb_plan plan;
	int ret;

	atomic64_inc(&zcusb_stats.kq_transfers);
	if (e->opcode != ZCUSB_OP_NOP && e->opcode != ZCUSB_OP_CANCEL &&
	    e->buffer_id)
		r = xa_load(&c->aliases, e->buffer_id);
	ret = zcusb_check_sqe(alt, e, r, r ? r->length : 0, &plan);
	if (ret)
		goto fail;

	switch (e->opcode) {
	case ZCUSB_OP_NOP:
		zcusb_kq_end_locked(kq, e->user_data, 0, false, 0, false);
		return true;
	case ZCUSB_OP_CANCEL:
		ret = zcusb_cancel_kq(kq, e->cancel_user_data);
		spin_lock_irq(&kq->cq_lock);
		zcusb_kq_post(kq, e->user_data, ret, 0);
		/* answered, -ENOENT too: completed, as zcusbd counts it */
		kq->n.completed++;
		spin_unlock_irq(&kq->cq_lock);
		return true;
	case ZCUSB_OP_ISO:
		s.type = ZCUSB_TYPE_ISO;
		s.iso_packets = e->iso_packets;
		break;
	case ZCUSB_OP_CONTROL:
		/* the setup packet, read once, is what is checked and sent */
		zcusb_region_read(r, plan.offset, plan.setup, sizeof(plan.setup));
		ret = zcusb_check_setup(alt, &plan);
		if (ret)
			goto fail;
		s.type = ZCUSB_TYPE_CONTROL;
		memcpy(s.setup, plan.setup, sizeof(s.setup));
		break;
	case ZCUSB_OP_BULK:
		s.type = ZCUSB_TYPE_BULK;
		break;
	case ZCUSB_OP_INTERRUPT:
		s.type = ZCUSB_TYPE_INTERRUPT;
		break;
	}
	s.user_data = e->user_data;
	s.endpoint = plan.endpoint;
	s.buffer_id = r->id;
	s.offset = plan.offset + plan.data_offset;
	s.length = plan.data_length;
	if (s.type == ZCUSB_TYPE_ISO) {
		/* the transfer reads the descriptors and writes results back */
		s.offset = plan.offset;
		s.length = plan.length;
	}
	if (e->flags & ZCUSB_SQE_SHORT_NOT_OK)
		s.flags |= ZCUSB_SUBMIT_SHORT_NOT_OK;
	if (e->flags & ZCUSB_SQE_ZERO_PACKET)
		s.flags |= ZCUSB_SUBMIT_ZERO_PACKET;

	/* in flight before its URBs are: their completion may post it at once */
	spin_lock_irq(&kq->cq_lock);
	kq->in_flight++;
	spin_unlock_irq(&kq->cq_lock);
	atomic64_inc(&zcusb_stats.kq_in_flight);
	ret = zcusb_submit_xfer(c, &s, kq, e->timeout_ms);
	if (ret) {
		zcusb_kq_end_locked(kq, e->user_data, ret, false, 0, true);
		return true;
	}
	return false;

fail:
	zcusb_kq_end_locked(kq, e->user_data, ret, false, 0, false);
	return true;
}

/* The one read of entry @idx of shared memory. */
static void zcusb_kq_copy_sqe(struct zcusb_kqueue *kq, u32 idx,
			      struct zcusb_sqe *e)
{
	const struct zcusb_sqe *src = &kq->sq[idx & (kq->sq_entries - 1)];

	e->opcode = READ_ONCE(src->opcode);
	e->endpoint = READ_ONCE(src->endpoint);
	e->flags = READ_ONCE(src->flags);
	e->buffer_id = READ_ONCE(src->buffer_id);
	e->offset = READ_ONCE(src->offset);
	e->length = READ_ONCE(src->length);
	e->timeout_ms = READ_ONCE(src->timeout_ms);
	e->iso_packets = READ_ONCE(src->iso_packets);
	e->reserved0 = READ_ONCE(src->reserved0);
	e->user_data = READ_ONCE(src->user_data);
	e->cancel_user_data = READ_ONCE(src->cancel_user_data);
	e->reserved1[0] = READ_ONCE(src->reserved1[0]);
	e->reserved1[1] = READ_ONCE(src->reserved1[1]);
}

/*
 * May an entry be taken? Only while a completion slot is free for it and
 * for each in flight. If so, it counts as submitted.
 */
static bool zcusb_kq_take_slot(struct zcusb_kqueue *kq)
{
	bool ok;

	/* posting takes a slot and ends one in flight: the difference holds */
	spin_lock_irq(&kq->cq_lock);
	ok = zcusb_kq_cq_space(kq) > kq->in_flight;
	if (ok)
		kq->n.submitted++;
	spin_unlock_irq(&kq->cq_lock);
	return ok;
}

/*
 * Take what the ring holds, at most one ring's worth. Returns the delay
 * (jiffies) after which to look again by timer, 0 for none.
 */
static unsigned long zcusb_kq_consume(struct zcusb_kqueue *kq, bool *postedp)
{
	unsigned int budget = kq->sq_entries;
	struct zcusb_sqe e;
	u32 tail;

	for (;;) {
		if (!budget--) {
			/* the rest behind whatever else the workqueue has */
			zcusb_queue_kick(kq);
			return 0;
		}
		/* hostile indices first, whatever else the ring's state */
		tail = smp_load_acquire(&kq->hdr->sq_tail.value);
		if (tail - kq->sq_head > kq->sq_entries) {
			zcusb_kq_break(kq);
			return 0;
		}
		if (tail == kq->sq_head) {
			if (READ_ONCE(kq->hdr->sq_flags.value) &
			    ZCUSB_SQ_NEED_WAKEUP)
				return 0;
			zcusb_kq_set_flags(kq, ZCUSB_SQ_NEED_WAKEUP, 0);
			/* pairs with the client's barrier between its
			 * sq_tail store and its sq_flags load */
			smp_mb();
			if (smp_load_acquire(&kq->hdr->sq_tail.value) ==
			    kq->sq_head)
				return 0;
			continue;
		}
		if (!zcusb_kq_take_slot(kq)) {
			/*
			 * Entries wait for the client to reap completions,
			 * which rings no doorbell: poll, backing off.
			 */
			return msecs_to_jiffies(ZCUSB_KQ_POLL_MS <<
				min_t(unsigned int, kq->blocked_polls++,
				      ZCUSB_KQ_POLL_MAX_SHIFT));
		}
		kq->blocked_polls = 0;
		zcusb_kq_copy_sqe(kq, kq->sq_head, &e);
		smp_store_release(&kq->hdr->sq_head.value, ++kq->sq_head);
		*postedp |= zcusb_kq_handle(kq, &e);
	}
}

/*
 * One pass, zi->lock held: free (and post) what has ended, take new
 * entries, signal the client if this pass posted. Returns the delay after
 * which the work must look again, 0 for none.
 */
static unsigned long zcusb_kq_pass(struct zcusb_kqueue *kq)
{
	struct zcusb_intf *zi = kq->c->zi;
	unsigned long again = 0;
	bool posted;

	lockdep_assert_held(&zi->lock);
	if (kq->stopping)
		return 0;
	posted = zcusb_kq_reap(kq);
	/* unplugged: what was in flight is posted (-ENODEV); zcusbd detaches */
	if (zi->disconnected)
		kq->dead = true;
	if (!kq->dead && !kq->broken)
		again = zcusb_kq_consume(kq, &posted);
	if (posted)
		zcusb_kq_signal(kq);
	return again;
}

void zcusb_kq_work(struct work_struct *w)
{
	struct zcusb_kqueue *kq = container_of(to_delayed_work(w),
					       struct zcusb_kqueue, work);
	struct zcusb_intf *zi = kq->c->zi;
	unsigned long again;

	mutex_lock(&zi->lock);
	again = zcusb_kq_pass(kq);
	/* queue_ (not mod_): never postpone a kick that came meanwhile */
	if (again)
		queue_delayed_work(zcusb_wq, &kq->work, again);
	mutex_unlock(&zi->lock);
}

/*
 * A reference to the opener's file, unless it is being released. A pass
 * queued on a task holds one: the module (the file's fops owner) stays
 * until the pass has returned, and release() comes after it.
 */
static bool zcusb_file_tryget(struct file *file)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	return file_ref_get(&file->f_ref);
#else
	return atomic_long_inc_not_zero(&file->f_count);
#endif
}

/*
 * The doorbell's pass, in the task that rang it, as its write(2) returns
 * (no lock held, may sleep). Doorbells rung meanwhile (tw_wakes moved) get
 * one more pass, so none is lost; once tw_wakes is back to 0 the queue may
 * be freed at once (zcusb_kq_stop()), so only the file is touched after
 * that: its last fput() leaves release() and the module's reference to a
 * task work of the VFS, which runs after we have returned.
 */
static void zcusb_kq_task_work(struct callback_head *cb)
{
	struct zcusb_kqueue *kq = container_of(cb, struct zcusb_kqueue, tw);
	unsigned int passes = ZCUSB_KQ_TW_PASSES;
	struct file *file = kq->c->file;
	struct zcusb_intf *zi = kq->c->zi;
	unsigned long again;
	int wakes;

	do {
		if (!passes--) {
			/* other threads keep ringing: leave them to the work */
			zcusb_queue_kick(kq);
			atomic_set(&kq->tw_wakes, 0);
			break;
		}
		wakes = atomic_read(&kq->tw_wakes);
		mutex_lock(&zi->lock);
		again = zcusb_kq_pass(kq);
		if (again)
			queue_delayed_work(zcusb_wq, &kq->work, again);
		mutex_unlock(&zi->lock);
	} while (atomic_cmpxchg(&kq->tw_wakes, wakes, 0) != wakes);
	/* the address only: the queue may be gone */
	wake_up_var(&kq->tw_wakes);
	fput(file);
}

/*
 * The submit eventfd was written (its wait queue lock held, interrupts
 * off): run a pass in the writer's context if it is a user task on its
 * way back to user space, else on the workqueue.
 */
int zcusb_kq_wakeup(wait_queue_entry_t *wait, unsigned int mode, int sync,
		    void *key)
{
	struct zcusb_kqueue *kq = container_of(wait, struct zcusb_kqueue, wait);
	struct file *file = kq->c->file;
	u64 cnt;

	if (!(key_to_poll(key) & EPOLLIN))
		return 0;
	/* consume it, so the client's writes never fill the counter */
	eventfd_ctx_do_read(kq->submit, &cnt);
	if (!in_task() || (current->flags & (PF_KTHREAD | PF_EXITING))) {
		zcusb_queue_kick(kq);
		return 0;
	}
	if (atomic_inc_return(&kq->tw_wakes) > 1)
		return 0;	/* a pass is queued or running: it takes this */
	init_task_work(&kq->tw, zcusb_kq_task_work);
	if (!zcusb_file_tryget(file)) {
		/* being released: it stops the queue, cancelling the work */
		atomic_set(&kq->tw_wakes, 0);
		zcusb_queue_kick(kq);
		return 0;
	}
	if (task_work_add(current, &kq->tw, TWA_RESUME)) {
		atomic_set(&kq->tw_wakes, 0);
		fput(file);
		zcusb_queue_kick(kq);
	}
	return 0;
}
