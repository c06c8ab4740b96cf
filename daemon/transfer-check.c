/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/usb/ch9.h>
#include <string.h>

#include "transfer-check.h"

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

/* Standard requests a claim may send, by recipient: reads only, of state
 * that is the claim's or harmless to share. */
static bool standard_request_allowed(uint8_t recipient, uint8_t request) {
        switch (recipient) {
        case USB_RECIP_DEVICE:
                return request == USB_REQ_GET_STATUS || request == USB_REQ_GET_DESCRIPTOR ||
                       request == USB_REQ_GET_CONFIGURATION;
        case USB_RECIP_INTERFACE:
                /* GET_DESCRIPTOR here reads class descriptors, e.g. a HID report descriptor. */
                return request == USB_REQ_GET_STATUS || request == USB_REQ_GET_INTERFACE ||
                       request == USB_REQ_GET_DESCRIPTOR;
        case USB_RECIP_ENDPOINT:
                return request == USB_REQ_GET_STATUS || request == USB_REQ_SYNCH_FRAME;
        default:
                return false;
        }
}

/* The control request allow-list (dbus/API.md, "Control requests"). Every
 * claim of a device shares its endpoint 0, so a request passes only when it
 * is known to stay within this claim; anything
 * else (SET/CLEAR_FEATURE such as TEST_MODE, hub port and reserved
 * recipients, configuration and address changes, request codes this list
 * does not know) is refused and never reaches the device. */
static int check_control_request(const TransferContext *ctx, uint8_t request_type, uint8_t request, uint16_t value,
                                 uint16_t index, const char **why) {
        uint8_t type = request_type & USB_TYPE_MASK, recipient = request_type & USB_RECIP_MASK;

        if (type == USB_TYPE_RESERVED)
                return fail(why, "request type 3 is reserved", -EPERM);

        switch (recipient) {
        case USB_RECIP_DEVICE:
                /* Device-wide class requests are those of hubs and the like. */
                if (type == USB_TYPE_CLASS)
                        return fail(why, "class requests may go to the claimed interface or its endpoints, "
                                         "not to the device", -EPERM);
                break;
        case USB_RECIP_INTERFACE:
                /* The high byte is free: UVC puts an entity id there. */
                if ((index & 0xff) != ctx->interface_number)
                        return fail(why, "the request is addressed to an interface this claim does not hold",
                                    -EPERM);
                break;
        case USB_RECIP_ENDPOINT:
                /* The high byte is reserved (USB 2.0 9.3.4): refused rather than
                 * left to the device's reading. */
                if (index > 0xff || !find_endpoint(ctx, (uint8_t) index))
                        return fail(why, "the request is addressed to an endpoint that is not in the claimed "
                                         "interface's current alternate setting", -EPERM);
                break;
        case USB_RECIP_OTHER:
                return fail(why, "requests to recipient 'other' (hub ports) are refused", -EPERM);
        default:
                return fail(why, "the request names a reserved recipient", -EPERM);
        }

        /* Class and vendor requests within the claim are the device's own business. */
        if (type != USB_TYPE_STANDARD)
                return 0;

        if (recipient == USB_RECIP_INTERFACE && request == USB_REQ_SET_INTERFACE)
                return fail(why, "SET_INTERFACE is refused: use Claim.SetAltSetting, zcusbd must know the "
                                 "alternate setting", -EPERM);
        if (recipient == USB_RECIP_ENDPOINT && request == USB_REQ_CLEAR_FEATURE && value == USB_ENDPOINT_HALT)
                return fail(why, "CLEAR_FEATURE(ENDPOINT_HALT) is refused: use Claim.ClearHalt, which also "
                                 "resets the host's side of the endpoint", -EPERM);
        if (!(request_type & USB_DIR_IN) || !standard_request_allowed(recipient, request))
                return fail(why, "standard requests allowed are device-to-host GET_STATUS, GET_DESCRIPTOR and "
                                 "GET_CONFIGURATION to the device, GET_STATUS, GET_INTERFACE and GET_DESCRIPTOR "
                                 "to the claimed interface, GET_STATUS and SYNCH_FRAME to its endpoints",
                            -EPERM);
        return 0;
}

static int check_setup(TransferPlan *plan, const TransferContext *ctx, const char **why) {
        uint8_t type = plan->setup[0], request = plan->setup[1];
        uint16_t value = (uint16_t) (plan->setup[2] | plan->setup[3] << 8);
        uint16_t index = (uint16_t) (plan->setup[4] | plan->setup[5] << 8);
        uint16_t length = (uint16_t) (plan->setup[6] | plan->setup[7] << 8);

        if (length != plan->data_length)
                return fail(why, "wLength does not match the transfer length minus the setup packet", -EINVAL);
        plan->in = type & USB_DIR_IN;
        if (plan->short_not_ok && !plan->in)
                return fail(why, "SHORT_NOT_OK applies to IN transfers only", -EINVAL);

        return check_control_request(ctx, type, request, value, index, why);
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
