// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb.ko: the checks of a submission, the same rules as zcusbd's
 * daemon/transfer-check.c (dbus/API.md, "Control requests"): the same
 * errors for the same entries, so a client cannot tell which side served
 * its ring. Both run the one table of control-request and iso vectors in
 * tests/unit/transfer-check-vectors.h (here: the "selftest" driver
 * attribute, read by kmod/tests; there: tests/unit/test-transfer-check.c).
 *
 * Everything here works on private copies: the caller copied the ring entry
 * out of shared memory (READ_ONCE, once) and the setup packet out of the
 * pinned buffer before calling.
 */
#include <linux/usb.h>

#include "zcusb.h"

/* ceiling of one submission; bulk/interrupt are bounded by their buffer */
#define ZCUSB_CHECK_MAX_LENGTH	(1u << 30)

const struct usb_host_endpoint *
zcusb_alt_find_ep(const struct usb_host_interface *alt, u8 addr)
{
	unsigned int i;

	for (i = 0; i < alt->desc.bNumEndpoints; i++)
		if (alt->endpoint[i].desc.bEndpointAddress == addr)
			return &alt->endpoint[i];
	return NULL;
}

/* Standard requests a claim may send: reads of its own or harmless state. */
static bool zcusb_standard_allowed(u8 recipient, u8 request)
{
	switch (recipient) {
	case USB_RECIP_DEVICE:
		return request == USB_REQ_GET_STATUS ||
		       request == USB_REQ_GET_DESCRIPTOR ||
		       request == USB_REQ_GET_CONFIGURATION;
	case USB_RECIP_INTERFACE:
		return request == USB_REQ_GET_STATUS ||
		       request == USB_REQ_GET_INTERFACE ||
		       request == USB_REQ_GET_DESCRIPTOR;
	case USB_RECIP_ENDPOINT:
		return request == USB_REQ_GET_STATUS ||
		       request == USB_REQ_SYNCH_FRAME;
	default:
		return false;
	}
}

/*
 * The control request allow-list. Every user of the device shares endpoint
 * 0: a request passes only when it is known to stay within the interface
 * (@alt is its current alternate setting). 0 or -EPERM.
 */
int zcusb_check_ctrl(const struct usb_host_interface *alt,
		     const struct usb_ctrlrequest *cr)
{
	u8 type = cr->bRequestType & USB_TYPE_MASK;
	u8 recipient = cr->bRequestType & USB_RECIP_MASK;
	u16 value = le16_to_cpu(cr->wValue);
	u16 index = le16_to_cpu(cr->wIndex);

	if (type == USB_TYPE_RESERVED)
		return -EPERM;

	switch (recipient) {
	case USB_RECIP_DEVICE:
		/* device-wide class requests are those of hubs and the like */
		if (type == USB_TYPE_CLASS)
			return -EPERM;
		break;
	case USB_RECIP_INTERFACE:
		/* the high byte is free: UVC puts an entity id there */
		if ((index & 0xff) != alt->desc.bInterfaceNumber)
			return -EPERM;
		break;
	case USB_RECIP_ENDPOINT:
		if (index > 0xff || !zcusb_alt_find_ep(alt, index))
			return -EPERM;
		break;
	default:
		/* hub ports ("other") and reserved recipients */
		return -EPERM;
	}

	if (type != USB_TYPE_STANDARD)
		return 0;
	if (recipient == USB_RECIP_INTERFACE &&
	    cr->bRequest == USB_REQ_SET_INTERFACE)
		return -EPERM;
	if (recipient == USB_RECIP_ENDPOINT &&
	    cr->bRequest == USB_REQ_CLEAR_FEATURE &&
	    value == USB_ENDPOINT_HALT)
		return -EPERM;
	if (!(cr->bRequestType & USB_DIR_IN) ||
	    !zcusb_standard_allowed(recipient, cr->bRequest))
		return -EPERM;
	return 0;
}

/*
 * A ring entry alone (transfer_check_entry()): opcode, flags, endpoint in
 * @alt, buffer (@buffer_size: 0 when the client has no such buffer) and
 * the bounds of offset and length. Fills @plan; 0 or the completion's
 * negative errno.
 */
int zcusb_check_sqe(const struct usb_host_interface *alt,
		    const struct zcusb_sqe *sqe, bool have_buffer,
		    u64 buffer_size, struct zcusb_plan *plan)
{
	static const u8 type_for_op[] = {
		[ZCUSB_OP_BULK] = USB_ENDPOINT_XFER_BULK,
		[ZCUSB_OP_INTERRUPT] = USB_ENDPOINT_XFER_INT,
		[ZCUSB_OP_ISO] = USB_ENDPOINT_XFER_ISOC,
	};
	const struct usb_host_endpoint *ep;

	memset(plan, 0, sizeof(*plan));
	plan->opcode = sqe->opcode;
	plan->endpoint = sqe->endpoint;
	plan->short_not_ok = sqe->flags & ZCUSB_SQE_SHORT_NOT_OK;

	if (sqe->reserved0 || sqe->reserved1[0] || sqe->reserved1[1])
		return -EINVAL;
	if (sqe->iso_packets && sqe->opcode != ZCUSB_OP_ISO)
		return -EINVAL;

	switch (sqe->opcode) {
	case ZCUSB_OP_NOP:
	case ZCUSB_OP_CANCEL:
		return 0;
	case ZCUSB_OP_BULK:
	case ZCUSB_OP_INTERRUPT:
	case ZCUSB_OP_ISO:
	case ZCUSB_OP_CONTROL:
		break;
	default:
		return -EINVAL;
	}

	if (sqe->flags & ~(ZCUSB_SQE_SHORT_NOT_OK | ZCUSB_SQE_ZERO_PACKET))
		return -EINVAL;

	if (sqe->opcode == ZCUSB_OP_CONTROL) {
		if (sqe->endpoint)
			return -EINVAL;
	} else {
		if (!(sqe->endpoint & USB_ENDPOINT_NUMBER_MASK))
			return -EINVAL;
		ep = zcusb_alt_find_ep(alt, sqe->endpoint);
		if (!ep)
			return -EINVAL;
		if (usb_endpoint_type(&ep->desc) != type_for_op[sqe->opcode])
			return -EINVAL;
		plan->in = sqe->endpoint & USB_DIR_IN;
		if (!usb_endpoint_maxp(&ep->desc))
			return -EINVAL;
	}

	if ((sqe->flags & ZCUSB_SQE_ZERO_PACKET) &&
	    (plan->in || (sqe->opcode != ZCUSB_OP_BULK &&
			  sqe->opcode != ZCUSB_OP_INTERRUPT)))
		return -EINVAL;
	if ((sqe->flags & ZCUSB_SQE_SHORT_NOT_OK) &&
	    sqe->opcode != ZCUSB_OP_CONTROL && !plan->in)
		return -EINVAL;

	if (!have_buffer)
		return -ENOENT;
	if (sqe->length > ZCUSB_CHECK_MAX_LENGTH)
		return -EMSGSIZE;
	/* neither sum can wrap */
	if (sqe->offset > buffer_size || sqe->length > buffer_size - sqe->offset)
		return -EFAULT;

	plan->offset = sqe->offset;
	plan->length = sqe->length;
	plan->data_offset = 0;
	plan->data_length = sqe->length;

	switch (sqe->opcode) {
	case ZCUSB_OP_CONTROL:
		if (sqe->length < ZCUSB_CONTROL_SETUP_SIZE)
			return -EINVAL;
		if (sqe->length > ZCUSB_CONTROL_SETUP_SIZE + U16_MAX)
			return -EMSGSIZE;
		plan->data_offset = ZCUSB_CONTROL_SETUP_SIZE;
		plan->data_length = sqe->length - ZCUSB_CONTROL_SETUP_SIZE;
		break;
	case ZCUSB_OP_ISO:
		if (!sqe->iso_packets || sqe->iso_packets > ZCUSB_ISO_MAX_PACKETS)
			return -EINVAL;
		plan->data_offset = sqe->iso_packets *
				    (u32)sizeof(struct zcusb_iso_packet);
		if (sqe->length < plan->data_offset)
			return -EINVAL;
		if (sqe->offset % __alignof__(struct zcusb_iso_packet))
			return -EINVAL;
		plan->data_length = sqe->length - plan->data_offset;
		break;
	default:
		if (!sqe->length && plan->in)
			return -EINVAL;
		break;
	}
	return 0;
}

/*
 * Largest iso packet an endpoint takes, by transfer-check.c's rule:
 * high-bandwidth bits add up to 3 transactions; SuperSpeed bursts (the
 * companion descriptor) are not looked at, so a 1024-byte endpoint may have
 * the most a SuperSpeed one can. usb_submit_urb() checks the exact limit.
 */
static u32 zcusb_iso_packet_max(u16 wmaxpacketsize)
{
	u32 base = wmaxpacketsize & 0x7ff;
	u32 mult = min(1u + ((wmaxpacketsize >> 11) & 3), 3u);

	if (mult == 1 && base == 1024)
		return 1024 * 16 * 3;
	return base * mult;
}

/*
 * The packet lengths of an iso transfer (@lengths: private copies) on @ep:
 * each within what the endpoint takes (-EMSGSIZE), their sum within the
 * @data_length bytes after the descriptors (-EINVAL). *@totalp: the sum.
 */
int zcusb_check_iso(const struct usb_host_endpoint *ep, const u32 *lengths,
		    u32 n, u32 data_length, u32 *totalp)
{
	u32 max = zcusb_iso_packet_max(le16_to_cpu(ep->desc.wMaxPacketSize));
	u64 total = 0;
	u32 i;

	for (i = 0; i < n; i++) {
		if (lengths[i] > max)
			return -EMSGSIZE;
		total += lengths[i];
	}
	if (total > data_length)
		return -EINVAL;
	*totalp = total;
	return 0;
}

/* The setup packet (plan->setup, a private copy) of a control entry. */
int zcusb_check_setup(const struct usb_host_interface *alt,
		      struct zcusb_plan *plan)
{
	const struct usb_ctrlrequest *cr = (const void *)plan->setup;

	if (le16_to_cpu(cr->wLength) != plan->data_length)
		return -EINVAL;
	plan->in = cr->bRequestType & USB_DIR_IN;
	if (plan->short_not_ok && !plan->in)
		return -EINVAL;
	return zcusb_check_ctrl(alt, cr);
}

#ifdef ZCUSB_SELFTEST
#include "transfer-check-vectors.h"

/*
 * The vectors' device: interface 0, alt 0 with 0x81 bulk IN, 0x02 bulk OUT,
 * 0x85 and 0x87 interrupt IN (the claim's current setting).
 */
static struct usb_host_endpoint zcusb_selftest_eps[] = {
	{ .desc = { .bEndpointAddress = 0x81, .bmAttributes = 2,
		    .wMaxPacketSize = cpu_to_le16(512) } },
	{ .desc = { .bEndpointAddress = 0x02, .bmAttributes = 2,
		    .wMaxPacketSize = cpu_to_le16(512) } },
	{ .desc = { .bEndpointAddress = 0x85, .bmAttributes = 3,
		    .wMaxPacketSize = cpu_to_le16(64) } },
	{ .desc = { .bEndpointAddress = 0x87, .bmAttributes = 3,
		    .wMaxPacketSize = cpu_to_le16(64) } },
};

/* alt 1 of the vectors' device: 0x83 iso IN, 0x04 iso OUT (3 x 1024) */
static struct usb_host_endpoint zcusb_selftest_iso_eps[] = {
	{ .desc = { .bEndpointAddress = 0x83, .bmAttributes = 1 | (1 << 2),
		    .wMaxPacketSize = cpu_to_le16(1024), .bInterval = 1 } },
	{ .desc = { .bEndpointAddress = 0x04, .bmAttributes = 1 | (1 << 2),
		    .wMaxPacketSize = cpu_to_le16(0x1400), .bInterval = 1 } },
};

/* The iso entries of the shared table: the entry's checks, then the lengths'. */
static ssize_t zcusb_selftest_iso(char *buf, int n)
{
	struct usb_host_interface alt = {
		.desc = { .bInterfaceNumber = 0, .bAlternateSetting = 1,
			  .bNumEndpoints = ARRAY_SIZE(zcusb_selftest_iso_eps) },
		.endpoint = zcusb_selftest_iso_eps,
	};
	u32 lengths[ZCUSB_ISO_MAX_PACKETS];
	unsigned int i, k, pass = 0, fail = 0;

	for (i = 0; i < ARRAY_SIZE(iso_vectors); i++) {
		const struct iso_vector *v = &iso_vectors[i];
		struct zcusb_sqe sqe = {
			.opcode = ZCUSB_OP_ISO,
			.endpoint = v->endpoint,
			.buffer_id = 1,
			.offset = v->offset,
			.length = v->iso_packets * 16 + v->data,
			.iso_packets = v->iso_packets,
		};
		struct zcusb_plan plan;
		u32 total;
		int ret;

		ret = zcusb_check_sqe(&alt, &sqe, true, ISO_VECTOR_BUFFER_SIZE,
				      &plan);
		/* passed: at most ZCUSB_ISO_MAX_PACKETS */
		if (!ret) {
			for (k = 0; k < v->iso_packets; k++)
				lengths[k] = k + 1 == v->iso_packets ? v->last :
								      v->packet;
			ret = zcusb_check_iso(zcusb_alt_find_ep(&alt, v->endpoint),
					      lengths, v->iso_packets,
					      plan.data_length, &total);
		}
		if (ret == v->expect) {
			pass++;
			continue;
		}
		fail++;
		n += sysfs_emit_at(buf, n, "FAIL iso %s: %d\n", v->name, ret);
	}
	n += sysfs_emit_at(buf, n, "iso vectors %u pass %u fail %u\n",
			   (unsigned int)ARRAY_SIZE(iso_vectors), pass, fail);
	return n;
}

/* Run the shared vector table through the checks of a CONTROL entry. */
ssize_t zcusb_selftest_show(char *buf)
{
	struct usb_host_interface alt = {
		.desc = { .bInterfaceNumber = 0,
			  .bNumEndpoints = ARRAY_SIZE(zcusb_selftest_eps) },
		.endpoint = zcusb_selftest_eps,
	};
	unsigned int i, pass = 0, fail = 0;
	int n = 0;

	for (i = 0; i < ARRAY_SIZE(control_vectors); i++) {
		const struct control_vector *v = &control_vectors[i];
		struct zcusb_sqe sqe = {
			.opcode = ZCUSB_OP_CONTROL,
			.buffer_id = 1,
			.length = ZCUSB_CONTROL_SETUP_SIZE + v->length,
		};
		struct usb_ctrlrequest cr = {
			.bRequestType = v->request_type,
			.bRequest = v->request,
			.wValue = cpu_to_le16(v->value),
			.wIndex = cpu_to_le16(v->index),
			.wLength = cpu_to_le16(v->length),
		};
		struct zcusb_plan plan;
		bool allowed;
		int ret;

		ret = zcusb_check_sqe(&alt, &sqe, true, 1u << 20, &plan);
		if (!ret) {
			memcpy(plan.setup, &cr, sizeof(cr));
			ret = zcusb_check_setup(&alt, &plan);
		}
		allowed = !ret;
		if (allowed == (v->expect == CONTROL_ALLOWED) &&
		    (allowed || ret == -EPERM)) {
			pass++;
			continue;
		}
		fail++;
		n += sysfs_emit_at(buf, n, "FAIL %s: %d\n", v->name, ret);
	}
	n += sysfs_emit_at(buf, n, "vectors %u pass %u fail %u\n",
			   (unsigned int)ARRAY_SIZE(control_vectors), pass, fail);
	return zcusb_selftest_iso(buf, n);
}
#endif
