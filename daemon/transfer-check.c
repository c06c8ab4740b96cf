/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "transfer-check.h"

#define USB_DIR_IN            0x80
#define USB_TYPE_MASK         0x60
#define USB_TYPE_STANDARD     0x00
#define USB_RECIP_MASK        0x1f
#define USB_RECIP_DEVICE      0x00
#define USB_RECIP_INTERFACE   0x01
#define USB_RECIP_ENDPOINT    0x02

#define USB_REQ_SET_ADDRESS       0x05
#define USB_REQ_SET_DESCRIPTOR    0x07
#define USB_REQ_SET_CONFIGURATION 0x09
#define USB_REQ_SET_INTERFACE     0x0b

/* Bulk/interrupt/iso transfers are bounded by their buffer; this is only the
 * ceiling of what one submission may name. */
#define TRANSFER_MAX_LENGTH (UINT32_C(1) << 30)

static int fail(const char **why, const char *text, int error) {
        if (why)
                *why = text;
        return error;
}

uint32_t usb_iso_packet_max(uint16_t max_packet_size) {
        /* High-bandwidth endpoints: bits 11-12 add up to two transactions per
         * microframe. SuperSpeed bursts (companion descriptor) are not parsed:
         * allow the largest a SuperSpeed endpoint can have. */
        uint32_t base = max_packet_size & 0x7ff;
        uint32_t mult = 1 + ((max_packet_size >> 11) & 3);

        if (mult > 3)
                mult = 3; /* 0b11 is reserved: allow no more than the most there is */
        if (mult == 1 && base == 1024)
                return 1024 * 16 * 3; /* SuperSpeed: up to 16 bursts x 3 */
        return base * mult;
}

static const UsbEndpoint *find_endpoint(const TransferContext *ctx, uint8_t address) {
        return usb_descriptors_find_endpoint(ctx->descriptors, ctx->interface_number, ctx->alt_setting, address);
}

int transfer_check_entry(const struct zcusb_sqe *sqe, const TransferContext *ctx, TransferPlan *plan,
                         const char **why) {
        static const uint8_t type_for_op[] = {
                [ZCUSB_OP_BULK] = 2, [ZCUSB_OP_INTERRUPT] = 3, [ZCUSB_OP_ISO] = 1,
        };
        const UsbEndpoint *ep = NULL;
        uint64_t buffer_size;

        *plan = (TransferPlan) {
                .opcode = sqe->opcode,
                .endpoint = sqe->endpoint,
                .short_not_ok = sqe->flags & ZCUSB_SQE_SHORT_NOT_OK,
        };

        if (sqe->reserved0 || sqe->reserved1[0] || sqe->reserved1[1])
                return fail(why, "reserved fields must be zero", -EINVAL);
        if (sqe->iso_packets && sqe->opcode != ZCUSB_OP_ISO)
                return fail(why, "iso_packets is for iso transfers only", -EINVAL);

        switch (sqe->opcode) {
        case ZCUSB_OP_NOP:
                return 0;
        case ZCUSB_OP_CANCEL:
                return 0;
        case ZCUSB_OP_BULK:
        case ZCUSB_OP_INTERRUPT:
        case ZCUSB_OP_ISO:
        case ZCUSB_OP_CONTROL:
                break;
        default:
                return fail(why, "unknown opcode", -EINVAL);
        }

        if (sqe->flags & ~(ZCUSB_SQE_SHORT_NOT_OK | ZCUSB_SQE_ZERO_PACKET))
                return fail(why, "unknown flags", -EINVAL);

        if (sqe->opcode == ZCUSB_OP_CONTROL) {
                if (sqe->endpoint != 0)
                        return fail(why, "control transfers go to endpoint 0", -EINVAL);
                plan->max_packet_size = ctx->descriptors->max_packet_size0 ?: 64;
        } else {
                if ((sqe->endpoint & 0x0f) == 0)
                        return fail(why, "endpoint 0 takes control transfers only", -EINVAL);
                ep = find_endpoint(ctx, sqe->endpoint);
                if (!ep)
                        return fail(why, "endpoint is not in the claimed interface's current alternate setting",
                                    -EINVAL);
                if ((ep->attributes & 3) != type_for_op[sqe->opcode])
                        return fail(why, "the endpoint's transfer type does not match the opcode", -EINVAL);
                plan->in = sqe->endpoint & USB_DIR_IN;
                plan->max_packet_size = ep->max_packet_size;
                if (plan->max_packet_size == 0)
                        return fail(why, "the endpoint has a max packet size of 0", -EINVAL);
        }

        if ((sqe->flags & ZCUSB_SQE_ZERO_PACKET) &&
            (plan->in || (sqe->opcode != ZCUSB_OP_BULK && sqe->opcode != ZCUSB_OP_INTERRUPT)))
                return fail(why, "ZERO_PACKET applies to bulk and interrupt OUT only", -EINVAL);
        if ((sqe->flags & ZCUSB_SQE_SHORT_NOT_OK) && sqe->opcode != ZCUSB_OP_CONTROL && !plan->in)
                return fail(why, "SHORT_NOT_OK applies to IN transfers only", -EINVAL);

        if (ctx->buffer_size(ctx->userdata, sqe->buffer_id, &buffer_size) < 0)
                return fail(why, "no such buffer in this claim", -ENOENT);
        if (sqe->length > TRANSFER_MAX_LENGTH)
                return fail(why, "length too large", -EMSGSIZE);
        /* Written so that neither sum can wrap. */
        if (sqe->offset > buffer_size || sqe->length > buffer_size - sqe->offset)
                return fail(why, "offset + length is beyond the buffer", -EFAULT);

        plan->offset = sqe->offset;
        plan->length = sqe->length;
        plan->data_offset = 0;
        plan->data_length = sqe->length;

        switch (sqe->opcode) {
        case ZCUSB_OP_CONTROL:
                if (sqe->length < ZCUSB_CONTROL_SETUP_SIZE)
                        return fail(why, "a control transfer needs its 8-byte setup packet", -EINVAL);
                if (sqe->length > ZCUSB_CONTROL_SETUP_SIZE + UINT16_MAX)
                        return fail(why, "a control transfer carries at most 65535 data bytes", -EMSGSIZE);
                plan->data_offset = ZCUSB_CONTROL_SETUP_SIZE;
                plan->data_length = sqe->length - ZCUSB_CONTROL_SETUP_SIZE;
                break;
        case ZCUSB_OP_ISO:
                if (sqe->iso_packets == 0 || sqe->iso_packets > ZCUSB_ISO_MAX_PACKETS)
                        return fail(why, "iso_packets must be 1-128", -EINVAL);
                plan->iso_packets = sqe->iso_packets;
                plan->data_offset = sqe->iso_packets * (uint32_t) sizeof(struct zcusb_iso_packet);
                if (sqe->length < plan->data_offset)
                        return fail(why, "the region cannot hold the iso packet descriptors", -EINVAL);
                if (sqe->offset % _Alignof(struct zcusb_iso_packet))
                        return fail(why, "iso packet descriptors must be 4-byte aligned", -EINVAL);
                plan->data_length = sqe->length - plan->data_offset;
                break;
        default:
                if (sqe->length == 0 && plan->in)
                        return fail(why, "an IN transfer needs a length", -EINVAL);
                break;
        }
        return 0;
}

static int check_setup(TransferPlan *plan, const TransferContext *ctx, const char **why) {
        uint8_t type = plan->setup[0], request = plan->setup[1];
        uint16_t index = (uint16_t) (plan->setup[4] | plan->setup[5] << 8);
        uint16_t length = (uint16_t) (plan->setup[6] | plan->setup[7] << 8);

        if (length != plan->data_length)
                return fail(why, "wLength does not match the transfer length minus the setup packet", -EINVAL);
        plan->in = type & USB_DIR_IN;
        if (plan->short_not_ok && !plan->in)
                return fail(why, "SHORT_NOT_OK applies to IN transfers only", -EINVAL);

        if ((type & USB_TYPE_MASK) == USB_TYPE_STANDARD &&
            (request == USB_REQ_SET_ADDRESS || request == USB_REQ_SET_CONFIGURATION ||
             request == USB_REQ_SET_DESCRIPTOR || request == USB_REQ_SET_INTERFACE))
                return fail(why, "this standard request changes the device for everyone; "
                                 "use Claim.SetAltSetting for alternate settings", -EPERM);

        /* Requests aimed at an interface or endpoint must stay within the claim:
         * zcusbd shares one usbfs handle among all claims of a device. */
        switch (type & USB_RECIP_MASK) {
        case USB_RECIP_INTERFACE:
                if ((index & 0xff) != ctx->interface_number)
                        return fail(why, "the request is addressed to an interface this claim does not hold",
                                    -EPERM);
                break;
        case USB_RECIP_ENDPOINT:
                if (index > 0xff || !find_endpoint(ctx, (uint8_t) index))
                        return fail(why, "the request is addressed to an endpoint this claim does not hold",
                                    -EPERM);
                break;
        default:
                break;
        }
        return 0;
}

int transfer_check_payload(TransferPlan *plan, const TransferContext *ctx, const uint8_t *region,
                           const char **why) {
        if (plan->opcode == ZCUSB_OP_CONTROL) {
                memcpy(plan->setup, region, ZCUSB_CONTROL_SETUP_SIZE); /* read once */
                return check_setup(plan, ctx, why);
        }

        if (plan->opcode == ZCUSB_OP_ISO) {
                const UsbEndpoint *ep = find_endpoint(ctx, plan->endpoint);
                uint32_t max = usb_iso_packet_max(ep ? ep->max_packet_size : 0);
                uint64_t total = 0;

                for (uint32_t i = 0; i < plan->iso_packets; i++) {
                        struct zcusb_iso_packet p;

                        memcpy(&p, region + i * sizeof(p), sizeof(p)); /* read once */
                        if (p.length > max)
                                return fail(why, "an iso packet is larger than the endpoint allows", -EMSGSIZE);
                        plan->iso_lengths[i] = p.length;
                        total += p.length;
                }
                if (total > plan->data_length)
                        return fail(why, "iso packet lengths add up to more than the data region", -EINVAL);
                plan->data_length = (uint32_t) total;
        }
        return 0;
}
