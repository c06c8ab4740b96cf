// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb.ko: the layout of a transfer. Cuts it into segments that either
 * point at the user pages (zero copy) or at kernel bounce buffers, within
 * what the host controller takes (bus->sg_tablesize, the max-packet rule),
 * and groups the segments into URBs: one SG list or one buffer each.
 * zcusb_xfer.c submits the URBs and follows them to completion.
 *
 * Segment rules (see zcusb_plan()):
 *  - an SG element boundary must fall on a multiple of wMaxPacketSize from
 *    the start of the transfer unless the bus has no_sg_constraint; without
 *    SG every URB is one element, so the same holds for URB boundaries;
 *  - IN: DMA never shares a cache line with memory the CPU may touch, so a
 *    head or tail that does not start/end on a line is bounced;
 *  - whatever cannot be arranged that way is bounced as a whole; more
 *    elements than bus->sg_tablesize are split over several URBs, cut on
 *    packet boundaries. Nothing fails for alignment reasons.
 */
#include <linux/cache.h>
#include <linux/dma-mapping.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "zcusb.h"

static u32 zcusb_line(void)
{
	return max_t(u32, L1_CACHE_BYTES, dma_get_cache_alignment());
}

/*
 * Decide how a transfer of @len bytes starting @pgoff bytes into its first
 * page can use the user pages directly: bytes [head, len - tail) go zero
 * copy, the head and tail through bounce buffers. Returns false when no
 * such split exists (or it would leave nothing to map): bounce it all.
 */
static bool zcusb_plan(u32 len, u32 pgoff, bool in, u32 mp, bool constrained,
		       u32 *headp, u32 *tailp)
{
	u32 line = in ? zcusb_line() : 1;
	u32 step = constrained ? mp : 1;
	u32 h, e;

	if (!len || !mp)
		return false;
	if (constrained) {
		/*
		 * Page boundaries inside the mapped part are element
		 * boundaries: they must be packet boundaries too, which
		 * holds for every one of them iff pgoff is a multiple of mp.
		 */
		if (PAGE_SIZE % mp || pgoff % mp)
			return false;
		/* the head must be whole packets and end on a cache line */
		for (h = 0; (pgoff + h) % line; h += step)
			if (h >= PAGE_SIZE || h >= len)
				return false;
	} else {
		h = (line - pgoff % line) % line;
	}
	if (h >= len)
		return false;

	if ((pgoff + len) % line == 0) {
		e = len;
	} else {
		/* the tail starts on a packet boundary and a cache line */
		e = rounddown(len, step);
		while (e > h && (pgoff + e) % line)
			e -= step;
	}
	if (e <= h)
		return false;
	*headp = h;
	*tailp = len - e;
	return true;
}

/* A bounce segment at @pos, in x->segs (allocated with room for it). */
int zcusb_add_bounce(struct zcusb_xfer *x, u32 pos, u32 len)
{
	struct zcusb_seg *s = &x->segs[x->nsegs];

	s->kbuf = kmalloc(len, GFP_KERNEL | __GFP_NOWARN);
	if (!s->kbuf)
		return -ENOMEM;
	s->pos = pos;
	s->len = len;
	x->nsegs++;
	return 0;
}

/* Copy @len bytes at @pos of the transfer to (@to_pages) or from its pages. */
void zcusb_xfer_copy(struct zcusb_xfer *x, u32 pos, void *buf, u32 len,
		     bool to_pages)
{
	u32 done = 0;

	while (done < len) {
		u32 abs = x->page_off + pos + done;
		struct page *pg = x->pages[abs >> PAGE_SHIFT];
		u32 off = offset_in_page(abs);
		u32 n = min_t(u32, len - done, PAGE_SIZE - off);
		void *va = kmap_local_page(pg);

		if (to_pages) {
			memcpy(va + off, buf + done, n);
			flush_dcache_page(pg);
		} else {
			memcpy(buf + done, va + off, n);
		}
		kunmap_local(va);
		done += n;
	}
}

/* Copy a bounce segment from (to_pages false) or to the user's pages. */
void zcusb_copy_seg(struct zcusb_xfer *x, const struct zcusb_seg *s, u32 len,
		    bool to_pages)
{
	zcusb_xfer_copy(x, s->pos, s->kbuf, len, to_pages);
}

/* How many segments from @s make the next URB; 0 if no valid cut exists. */
static unsigned int zcusb_group(const struct zcusb_xfer *x, unsigned int s,
				unsigned int maxsegs, u32 mp)
{
	unsigned int n = min(x->nsegs - s, maxsegs);

	if (s + n == x->nsegs)
		return n;
	for (; n; n--) {
		const struct zcusb_seg *l = &x->segs[s + n - 1];

		if ((l->pos + l->len) % mp == 0)
			return n;
	}
	return 0;
}

/*
 * How many SG entries one URB of a bulk or interrupt transfer of @len bytes
 * on @udev may take (0: no SG, one buffer per URB); *constrainedp tells
 * whether element boundaries must be packet boundaries (see zcusb_plan()).
 */
unsigned int zcusb_sg_limits(struct usb_device *udev, u32 len,
			     bool *constrainedp)
{
	unsigned int tablesize = udev->bus->sg_tablesize;
	int lim = READ_ONCE(zcusb_max_sg_entries);
	bool sg;

	if (lim >= 0 && (unsigned int)lim < tablesize)
		tablesize = lim;
	sg = tablesize > 0;
	/*
	 * Without the constraint, element boundaries may fall inside
	 * a packet, so all elements must fit one URB; when they might
	 * not, keep to packet boundaries so URBs can be cut anywhere.
	 * Worst case: a bounced head and tail around a middle that
	 * touches len / PAGE_SIZE + 2 pages.
	 */
	*constrainedp = !sg || !udev->bus->no_sg_constraint ||
			len / PAGE_SIZE + 4 > tablesize;
	return tablesize;
}

/* Cut the transfer into segments: zero copy where zcusb_plan() allows. */
int zcusb_make_segs(struct zcusb_xfer *x, u32 mp, bool sg, bool constrained)
{
	u32 len = x->length, head = 0, tail = 0, chunk, pos;
	bool zc = false;
	size_t nsegs;
	int ret;

	if (!len)
		return 0;
	if (x->type != ZCUSB_TYPE_CONTROL && !READ_ONCE(zcusb_disable_zerocopy) &&
	    (sg || !IS_ENABLED(CONFIG_HIGHMEM)))
		zc = zcusb_plan(len, x->page_off, x->in, mp, constrained,
				&head, &tail);

	if (zc) {
		u32 first = (x->page_off + head) >> PAGE_SHIFT;
		u32 last = (x->page_off + len - tail - 1) >> PAGE_SHIFT;

		nsegs = (last - first + 1) + !!head + !!tail;
		chunk = 0;
	} else {
		/*
		 * Bounce it all: control in one buffer (one URB), the rest
		 * in chunks of whole packets, so that any chunk boundary is
		 * a valid element and URB boundary.
		 */
		if (x->type == ZCUSB_TYPE_CONTROL)
			chunk = len;
		else if (ZCUSB_BOUNCE_CHUNK % mp)
			chunk = max(rounddown(ZCUSB_BOUNCE_CHUNK, mp), mp);
		else
			chunk = ZCUSB_BOUNCE_CHUNK;
		nsegs = DIV_ROUND_UP(len, chunk);
	}

	ret = zcusb_kmem_charge(x->c, nsegs * sizeof(*x->segs) +
				(zc ? head + tail : len));
	if (ret)
		return ret;
	x->kmem += nsegs * sizeof(*x->segs) + (zc ? head + tail : len);
	x->segs = kvcalloc(nsegs, sizeof(*x->segs), GFP_KERNEL);
	if (!x->segs)
		return -ENOMEM;

	if (!zc) {
		for (pos = 0; pos < len; pos += chunk) {
			ret = zcusb_add_bounce(x, pos, min(chunk, len - pos));
			if (ret)
				return ret;
		}
		goto fill;
	}

	if (head) {
		ret = zcusb_add_bounce(x, 0, head);
		if (ret)
			return ret;
	}
	for (pos = head; pos < len - tail;) {
		struct zcusb_seg *s = &x->segs[x->nsegs++];
		u32 abs = x->page_off + pos;

		s->pos = pos;
		s->page = x->pages[abs >> PAGE_SHIFT];
		s->off = offset_in_page(abs);
		s->len = min_t(u32, PAGE_SIZE - s->off, len - tail - pos);
		pos += s->len;
	}
	if (tail) {
		ret = zcusb_add_bounce(x, len - tail, tail);
		if (ret)
			return ret;
	}
	x->zc_bytes = len - head - tail;

fill:
	if (!x->in) {
		unsigned int i;

		for (i = 0; i < x->nsegs; i++)
			if (x->segs[i].kbuf)
				zcusb_copy_seg(x, &x->segs[i], x->segs[i].len,
					       false);
	}
	return 0;
}

/* @n URBs for @x, each with room for @iso_packets packet descriptors. */
int zcusb_alloc_urbs(struct zcusb_xfer *x, unsigned int n,
		     unsigned int iso_packets)
{
	unsigned int i;
	size_t bytes = n * (sizeof(struct urb) + sizeof(*x->urbs) +
			    sizeof(*x->uctx) + iso_packets *
			    sizeof(struct usb_iso_packet_descriptor));
	int ret;

	ret = zcusb_kmem_charge(x->c, bytes);
	if (ret)
		return ret;
	x->kmem += bytes;
	x->urbs = kcalloc(n, sizeof(*x->urbs), GFP_KERNEL);
	x->uctx = kcalloc(n, sizeof(*x->uctx), GFP_KERNEL);
	if (!x->urbs || !x->uctx)
		return -ENOMEM;
	x->nurbs = n;
	for (i = 0; i < n; i++) {
		x->urbs[i] = usb_alloc_urb(iso_packets, GFP_KERNEL);
		if (!x->urbs[i])
			return -ENOMEM;
		x->uctx[i].x = x;
		x->uctx[i].idx = i;
	}
	return 0;
}

/* Group the segments into URBs. */
int zcusb_build_urbs(struct zcusb_xfer *x, unsigned int pipe, int interval,
		     u32 mp, unsigned int maxsegs)
{
	bool sg = maxsegs > 0;
	unsigned int n, s, i, k;
	struct scatterlist *sgl, *next;
	int ret;

	if (!x->nsegs || !sg) {
		/* one URB per segment (no SG), or one empty URB */
		ret = zcusb_alloc_urbs(x, max(x->nsegs, 1u), 0);
		if (ret)
			return ret;
		for (i = 0; i < x->nsegs; i++) {
			struct zcusb_seg *sp = &x->segs[i];
			struct urb *u = x->urbs[i];

			u->transfer_buffer = sp->kbuf ? sp->kbuf :
				page_address(sp->page) + sp->off;
			u->transfer_buffer_length = sp->len;
		}
		for (i = 0; i < x->nurbs; i++)
			zcusb_fill_urb(x, i, pipe, interval);
		return 0;
	}

	for (n = 0, s = 0; s < x->nsegs; n++, s += k) {
		k = zcusb_group(x, s, maxsegs, mp);
		/* cannot happen: see "constrained" in zcusb_sg_limits() */
		if (WARN_ON_ONCE(!k))
			return -EINVAL;
	}
	ret = zcusb_alloc_urbs(x, n, 0);
	if (ret)
		return ret;
	ret = zcusb_kmem_charge(x->c, x->nsegs * sizeof(*sgl));
	if (ret)
		return ret;
	x->kmem += x->nsegs * sizeof(*sgl);
	ret = sg_alloc_table(&x->sgt, x->nsegs, GFP_KERNEL);
	if (ret)
		return ret;
	x->have_sgt = true;

	next = x->sgt.sgl;
	for (i = 0, s = 0; i < n; i++, s += k) {
		struct urb *u = x->urbs[i];
		unsigned int j;
		u32 bytes = 0;

		k = zcusb_group(x, s, maxsegs, mp);
		u->sg = next;
		u->num_sgs = k;
		for (j = 0; j < k; j++) {
			struct zcusb_seg *sp = &x->segs[s + j];

			sgl = next;
			if (sp->kbuf)
				sg_set_buf(sgl, sp->kbuf, sp->len);
			else
				sg_set_page(sgl, sp->page, sp->len, sp->off);
			bytes += sp->len;
			next = sg_next(sgl);
		}
		sg_mark_end(sgl);
		u->transfer_buffer_length = bytes;
		zcusb_fill_urb(x, i, pipe, interval);
	}
	return 0;
}
