/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcusb.ko internals: per-interface state, per-opener state, transfers.
 *
 * Object ownership (one owner each, so nothing is freed or unpinned twice):
 *
 *   struct zcusb_intf    one per bound interface; kref'd by the binding
 *                        (probe .. disconnect) and by the opener (open ..
 *                        release). Freed by the last kref_put.
 *   struct zcusb_opener  one per open file (open is exclusive); owned by
 *                        the file, freed by release() after every URB has
 *                        been killed and every transfer freed.
 *   struct zcusb_region  a registered range; owned by opener->regions
 *                        (xarray). Transfers over it hold region->users;
 *                        UNREGISTER refuses (-EBUSY) while users > 0.
 *   struct zcusb_xfer    one SUBMIT; owned by exactly one list of its opener
 *                        under opener->lock: ->pending from submission until
 *                        the last of its URBs is given back, then
 *                        ->completed until REAP or release() takes it off
 *                        and frees it (process context, intf->lock held).
 *                        A transfer of an in-kernel queue is posted to
 *                        its ring by the completion of its last URB and
 *                        goes to its queue's ->reclaim, or (IN data to
 *                        copy from bounce buffers) to its ->completed;
 *                        the queue's next pass frees (and posts) them.
 *   struct zcusb_kqueue  an in-kernel queue (zcusb_queue.c serves it,
 *                        zcusb_queue_life.c attaches and stops it); owned by
 *                        opener->kqueues from QUEUE_ATTACH until
 *                        QUEUE_DETACH or release() frees it. A queued
 *                        task work (a pass) holds a reference to the
 *                        opener's file, so release() comes after it.
 *
 * Locking: intf->lock (mutex) serialises every ioctl, open, release and
 * disconnect of one interface; opener->lock (spinlock, irqsave) protects
 * the two transfer lists and the per-transfer completion state, which URB
 * completion handlers (atomic context) update; kqueue->cq_lock (spinlock,
 * irqsave, taken inside opener->lock or alone) the queue's completion ring
 * and counters, which those handlers post to.
 */
#ifndef ZCUSB_H
#define ZCUSB_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/usb.h>
#include <linux/eventfd.h>
#include <linux/poll.h>
#include <linux/workqueue.h>
#include <linux/wait.h>
#include <linux/version.h>
#include <linux/xarray.h>

#include "zcusb_abi.h"
#include "zcusb-ring.h"

#define ZCUSB_NAME		"zcusb"
#define ZCUSB_MAX_MINORS	256
/* largest length one SUBMIT may have (reported by ZCUSB_IOC_VERSION) */
#define ZCUSB_MAX_TRANSFER	(16u << 20)
/* size of one bounce buffer when a whole transfer is bounced */
#define ZCUSB_BOUNCE_CHUNK	(16u << 10)
/* registered ranges one opener may hold at once */
#define ZCUSB_MAX_REGIONS	1024

/* module parameters (zcusb_main.c) */
extern bool zcusb_disable_zerocopy;
extern unsigned int zcusb_max_pinned_mb;
extern unsigned int zcusb_max_bounce_mb;
extern int zcusb_max_sg_entries;

/* counters shown in /sys/bus/usb/drivers/zcusb/stats */
struct zcusb_stats {
	atomic64_t zerocopy_bytes;	/* submitted straight from/to user pages */
	atomic64_t bounced_bytes;	/* submitted through kernel buffers */
	atomic64_t urbs;		/* URBs submitted */
	atomic64_t pinned_pages;	/* pages pinned right now (all openers) */
	atomic64_t kqueues;		/* in-kernel queues attached right now */
	atomic64_t kq_in_flight;	/* their transfers not yet completed */
	atomic64_t kq_transfers;	/* entries they took, ever */
	atomic64_t kq_broken;		/* rings marked BROKEN, ever */
};
extern struct workqueue_struct *zcusb_wq;
extern struct zcusb_stats zcusb_stats;

struct zcusb_opener;

struct zcusb_intf {
	struct kref kref;
	struct mutex lock;
	struct usb_interface *intf;	/* reference held (usb_get_intf) */
	struct usb_device *udev;	/* reference held (usb_get_dev) */
	struct device *dev;		/* class device, NULL once destroyed */
	int minor;
	bool disconnected;		/* under lock */
	struct zcusb_opener *opener;	/* the opener, under lock */
	char name[32];			/* dev_name of the interface */
};

struct zcusb_opener {
	struct zcusb_intf *zi;		/* kref held while open */
	struct file *file;		/* the open file (not a reference) */
	spinlock_t lock;
	struct list_head pending;	/* xfers with URBs in flight */
	struct list_head completed;	/* xfers waiting for REAP */
	bool disconnected;		/* under lock; set by disconnect */
	wait_queue_head_t wait;		/* poll() */
	struct usb_anchor anchor;	/* every URB in flight */

	/* under zi->lock */
	struct xarray regions;		/* buffer_id -> struct zcusb_region */
	struct xarray aliases;		/* client buffer id -> struct zcusb_region */
	struct list_head kqueues;	/* struct zcusb_kqueue */
	u32 next_kqueue_id;
	unsigned long pinned_pages;	/* charged against max_pinned_mb */
	size_t kmem;			/* charged against max_bounce_mb */
};

struct zcusb_region {
	u32 id;
	u64 addr;
	u64 length;
	unsigned long npages;
	struct page **pages;
	unsigned int users;		/* transfers using it, under zi->lock */
	u32 client_id;			/* alias (BUFFER_ALIAS), 0: none */
	bool orphan;			/* unregistered in use: freed by its last user */
};

/* A ring entry checked (zcusb_check.c): private copies only. */
struct zcusb_plan {
	u8 opcode;
	u8 endpoint;
	bool in;
	bool short_not_ok;
	u64 offset;			/* of the region in the buffer */
	u32 length;			/* region length */
	u32 data_offset;		/* control: 8 */
	u32 data_length;
	u8 setup[ZCUSB_CONTROL_SETUP_SIZE];
};

struct zcusb_kqueue {
	struct list_head node;		/* opener->kqueues, under zi->lock */
	struct zcusb_opener *c;
	u32 id;

	/* the ring: shmem pages of the memfd, mapped once */
	struct page **pages;
	unsigned long npages;
	void *map;
	struct zcusb_ring_header *hdr;
	struct zcusb_sqe *sq;
	struct zcusb_cqe *cq;
	u32 sq_entries, cq_entries;	/* private copies */
	u32 sq_head;			/* private, under zi->lock */

	struct eventfd_ctx *submit;
	struct eventfd_ctx *complete;
	wait_queue_entry_t wait;	/* on the submit eventfd */
	wait_queue_head_t *wqh;
	poll_table pt;
	struct delayed_work work;
	struct usb_anchor anchor;	/* this queue's URBs */

	/* a pass in the context of the task that rang the doorbell */
	struct callback_head tw;
	atomic_t tw_wakes;		/* doorbells since it was queued; 0: idle */

	/* under c->lock */
	struct list_head completed;	/* xfers given back, to finish and post */
	struct list_head reclaim;	/* xfers posted already, to free */

	/* under cq_lock (irqsave): completions are posted from URB completion */
	spinlock_t cq_lock;
	u32 cq_tail;			/* private: never read back */
	struct zcusb_kq_counts {	/* QUEUE_STATS: as zcusbd counts */
		u64 submitted, completed, failed, bytes_in, bytes_out;
	} n;
	unsigned int in_flight;		/* transfers taken, completion not posted */

	/* under zi->lock */
	unsigned int blocked_polls;
	bool stopping;			/* detaching: passes do nothing */
	bool broken;
	bool dead;			/* device gone: serves no more */
};

/* One piece of a transfer, in transfer order. */
struct zcusb_seg {
	u32 pos;			/* offset within the transfer */
	u32 len;
	void *kbuf;			/* bounce buffer, or NULL: user page */
	struct page *page;		/* user page when !kbuf */
	u32 off;			/* offset in page when !kbuf */
};

struct zcusb_urbctx {
	struct zcusb_xfer *x;
	unsigned int idx;
};

struct zcusb_xfer {
	struct list_head node;		/* opener->pending or ->completed */
	struct zcusb_opener *c;
	u64 user_data;
	u32 length;
	u16 flags;			/* ZCUSB_SUBMIT_* */
	u8 type;
	bool in;
	u32 iso_packets;		/* ZCUSB_TYPE_ISO: descriptors at byte 0 */

	/* completion state, under c->lock */
	int status;			/* first error, 0 if none */
	int cancel_status;		/* -ECANCELED once CANCEL asked */
	bool terminated;		/* no later URB counts any more */
	u32 actual;
	unsigned int urbs_left;		/* URBs not given back (+1 at submit) */

	/* the user memory: pinned for this transfer, or a registered range */
	struct zcusb_region *region;
	struct page **pages;		/* pages[0] holds byte 0 of the transfer */
	unsigned long npages;		/* pinned by this transfer (region: 0) */
	u32 page_off;			/* offset of byte 0 in pages[0] */

	unsigned int nsegs;
	struct zcusb_seg *segs;
	u32 zc_bytes;			/* bytes DMA'd straight to/from user */
	struct sg_table sgt;		/* used when the URBs take SG lists */
	bool have_sgt;
	unsigned int nurbs;
	struct urb **urbs;
	struct zcusb_urbctx *uctx;
	struct usb_ctrlrequest *setup;	/* control only */
	size_t kmem;			/* charged to c->kmem */

	/* in-kernel queues */
	struct zcusb_kqueue *kq;	/* NULL: a SUBMIT ioctl's */
	struct timer_list timer;	/* timeout_ms */
	bool have_timer;
};

/* zcusb_pin.c */
int zcusb_pin(struct zcusb_opener *c, unsigned long addr, unsigned long npages,
	      unsigned int gup_flags, struct page ***pagesp);
void zcusb_unpin(struct zcusb_opener *c, struct page **pages,
		 unsigned long npages, bool dirty);
int zcusb_register(struct zcusb_opener *c, struct zcusb_register *reg);
int zcusb_unregister(struct zcusb_opener *c, u32 id);
void zcusb_unregister_all(struct zcusb_opener *c);
void zcusb_region_put(struct zcusb_opener *c, struct zcusb_region *r);
int zcusb_buffer_alias(struct zcusb_opener *c,
		       const struct zcusb_buffer_alias *a);
int zcusb_kmem_charge(struct zcusb_opener *c, size_t bytes);
void zcusb_kmem_uncharge(struct zcusb_opener *c, size_t bytes);

/* zcusb_xfer.c */
void zcusb_opener_init(struct zcusb_opener *c, struct zcusb_intf *zi);
int zcusb_submit(struct zcusb_opener *c, const struct zcusb_submit *s);
int zcusb_submit_xfer(struct zcusb_opener *c, const struct zcusb_submit *s,
		      struct zcusb_kqueue *kq, u32 timeout_ms);
int zcusb_cancel_kq(struct zcusb_kqueue *kq, u64 user_data);
void zcusb_xfer_finish(struct zcusb_xfer *x);
void zcusb_xfer_free(struct zcusb_xfer *x);
int zcusb_reap(struct zcusb_opener *c, struct zcusb_completion __user *uc);
int zcusb_cancel(struct zcusb_opener *c, u64 user_data);
bool zcusb_busy(struct zcusb_opener *c);
void zcusb_kill_all(struct zcusb_opener *c, bool disconnect);
void zcusb_free_all(struct zcusb_opener *c);
void zcusb_fill_urb(struct zcusb_xfer *x, unsigned int i, unsigned int pipe,
		    int interval);
int zcusb_user_status(int st);

/* zcusb_iso.c */
int zcusb_iso_prepare(struct zcusb_xfer *x, const struct usb_host_endpoint *ep,
		      unsigned int pipe);
void zcusb_iso_finish(struct zcusb_xfer *x);

/* zcusb_check.c */
const struct usb_host_endpoint *
zcusb_alt_find_ep(const struct usb_host_interface *alt, u8 addr);
int zcusb_check_ctrl(const struct usb_host_interface *alt,
		     const struct usb_ctrlrequest *cr);
int zcusb_check_sqe(const struct usb_host_interface *alt,
		    const struct zcusb_sqe *sqe, bool have_buffer,
		    u64 buffer_size, struct zcusb_plan *plan);
int zcusb_check_setup(const struct usb_host_interface *alt,
		      struct zcusb_plan *plan);
int zcusb_check_iso(const struct usb_host_endpoint *ep, const u32 *lengths,
		    u32 n, u32 data_length, u32 *totalp);
ssize_t zcusb_selftest_show(char *buf);

/* zcusb_queue.c (serving), zcusb_queue_life.c (attach, detach) */
int zcusb_queue_attach(struct zcusb_opener *c, struct zcusb_queue_attach *a);
int zcusb_queue_detach(struct zcusb_opener *c, struct zcusb_queue_detach *d,
		       struct zcusb_queue_stats *st);
int zcusb_queue_stats(struct zcusb_opener *c, struct zcusb_queue_stats *st);
void zcusb_queue_detach_all(struct zcusb_opener *c, int end_status);
void zcusb_queue_disconnect(struct zcusb_opener *c);
void zcusb_queue_kick(struct zcusb_kqueue *kq);
bool zcusb_queue_xfer_done(struct zcusb_kqueue *kq, struct zcusb_xfer *x);
void zcusb_queue_xfer_report(struct zcusb_kqueue *kq, bool posted);
void zcusb_queue_reclaim_all(struct zcusb_opener *c);
/* zcusb_queue.c, for zcusb_queue_life.c */
void zcusb_kq_set_flags(struct zcusb_kqueue *kq, u32 set, u32 clear);
bool zcusb_kq_reap(struct zcusb_kqueue *kq);
void zcusb_kq_work(struct work_struct *w);
int zcusb_kq_wakeup(wait_queue_entry_t *wait, unsigned int mode, int sync,
		    void *key);

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define zcusb_eventfd_signal(ctx)	eventfd_signal(ctx)
#else
#define zcusb_eventfd_signal(ctx)	eventfd_signal(ctx, 1)
#endif

/* zcusb_sg.c */
unsigned int zcusb_sg_limits(struct usb_device *udev, u32 len,
			     bool *constrainedp);
int zcusb_make_segs(struct zcusb_xfer *x, u32 mp, bool sg, bool constrained);
int zcusb_build_urbs(struct zcusb_xfer *x, unsigned int pipe, int interval,
		     u32 mp, unsigned int maxsegs);
int zcusb_alloc_urbs(struct zcusb_xfer *x, unsigned int n,
		     unsigned int iso_packets);
int zcusb_add_bounce(struct zcusb_xfer *x, u32 pos, u32 len);
void zcusb_xfer_copy(struct zcusb_xfer *x, u32 pos, void *buf, u32 len,
		     bool to_pages);
void zcusb_copy_seg(struct zcusb_xfer *x, const struct zcusb_seg *s, u32 len,
		    bool to_pages);

#endif /* ZCUSB_H */
