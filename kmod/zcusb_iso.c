// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb.ko: isochronous transfers (SUBMIT with ZCUSB_TYPE_ISO, and a
 * queue's ZCUSB_OP_ISO entries). The transfer's memory is laid out as
 * zcusb-ring.h says: iso_packets struct zcusb_iso_packet, then the packet
 * data, packed. Host controllers take an iso URB as one contiguous buffer
 * (no SG list), so the data goes through one kernel buffer, as usbfs does
 * with memory it did not allocate itself; zero copy is for bulk.
 *
 * The descriptors are user memory: each length is read once, at
 * submission, into the URB (the only copy used afterwards) and checked by
 * zcusb_check_iso(). At the end, in process context (REAP, or the queue's
 * work) and before the completion is reported, actual_length and status go
 * back into the descriptors, and IN data into the pages: packet i at its
 * offset (the sum of the lengths before it), actual_length bytes of it.
 */
#include <linux/slab.h>
#include <linux/stddef.h>

#include "zcusb.h"

int zcusb_iso_prepare(struct zcusb_xfer *x, const struct usb_host_endpoint *ep,
		      unsigned int pipe)
{
	u32 n = x->iso_packets, desc = n * sizeof(struct zcusb_iso_packet);
	u32 lengths[ZCUSB_ISO_MAX_PACKETS];	/* n <= this: zcusb_check_submit() */
	u32 total, off, i;
	struct urb *u;
	int ret;

	for (i = 0; i < n; i++)
		zcusb_xfer_copy(x, i * sizeof(struct zcusb_iso_packet) +
				offsetof(struct zcusb_iso_packet, length),
				&lengths[i], sizeof(lengths[i]), false);
	ret = zcusb_check_iso(ep, lengths, n, x->length - desc, &total);
	if (ret)
		return ret;

	ret = zcusb_kmem_charge(x->c, sizeof(*x->segs) + total);
	if (ret)
		return ret;
	x->kmem += sizeof(*x->segs) + total;
	x->segs = kvcalloc(1, sizeof(*x->segs), GFP_KERNEL);
	ret = x->segs ? zcusb_add_bounce(x, desc, total) : -ENOMEM;
	if (!ret)
		ret = zcusb_alloc_urbs(x, 1, n);
	if (ret)
		return ret;
	if (!x->in)
		zcusb_copy_seg(x, &x->segs[0], total, false);

	u = x->urbs[0];
	u->transfer_buffer = total ? x->segs[0].kbuf : NULL;
	u->transfer_buffer_length = total;
	u->number_of_packets = n;
	for (i = 0, off = 0; i < n; off += lengths[i], i++) {
		u->iso_frame_desc[i].offset = off;
		u->iso_frame_desc[i].length = lengths[i];
	}
	/* bInterval is an exponent for iso at every speed (as usbfs has it) */
	zcusb_fill_urb(x, 0, pipe,
		       1 << min(15, max_t(int, ep->desc.bInterval, 1) - 1));
	u->transfer_flags |= URB_ISO_ASAP;
	return 0;
}

/* The URB is back: results into the descriptors, IN data into the pages. */
void zcusb_iso_finish(struct zcusb_xfer *x)
{
	const struct urb *u = x->urbs[0];
	const struct zcusb_seg *seg = &x->segs[0];
	unsigned int i;

	for (i = 0; i < x->iso_packets; i++) {
		const struct usb_iso_packet_descriptor *f = &u->iso_frame_desc[i];
		struct {
			u32 actual_length;
			s32 status;
		} r = {
			.actual_length = min(f->actual_length, f->length),
			.status = zcusb_user_status(f->status),
		};

		BUILD_BUG_ON(offsetof(struct zcusb_iso_packet, status) !=
			     offsetof(struct zcusb_iso_packet, actual_length) + 4);
		zcusb_xfer_copy(x, i * sizeof(struct zcusb_iso_packet) +
				offsetof(struct zcusb_iso_packet, actual_length),
				&r, sizeof(r), true);
		if (x->in && r.actual_length)
			zcusb_xfer_copy(x, seg->pos + f->offset,
					seg->kbuf + f->offset, r.actual_length,
					true);
	}
}
