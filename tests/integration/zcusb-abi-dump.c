/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Prints, as JSON, the binary facts the Python side of the tier-2 tests hard-codes:
 * the queue ABI of include/zcusb/zcusb-ring.h (sizes and offsets) and the usbfs
 * ioctl numbers and struct layouts of <linux/usbdevice_fs.h> that usbfs_emu.py
 * decodes. zcusbclient.py and usbfs_emu.py compare their constants with this at
 * start-up, so a header change cannot silently desynchronise the tests.
 */
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>
#include <stddef.h>
#include <stdio.h>

#include "zcusb-ring.h"

#define SIZE(t)      printf("  \"sizeof %s\": %zu,\n", #t, sizeof(t))
#define OFF(t, f)    printf("  \"%s.%s\": %zu,\n", #t, #f, offsetof(t, f))
#define NUM(n)       printf("  \"%s\": %lu,\n", #n, (unsigned long) (n))

int main(void) {
        printf("{\n");
        SIZE(struct zcusb_ring_index);
        SIZE(struct zcusb_ring_header);
        SIZE(struct zcusb_sqe);
        SIZE(struct zcusb_cqe);
        SIZE(struct zcusb_iso_packet);
        OFF(struct zcusb_ring_header, magic);
        OFF(struct zcusb_ring_header, version);
        OFF(struct zcusb_ring_header, header_size);
        OFF(struct zcusb_ring_header, sq_entries);
        OFF(struct zcusb_ring_header, cq_entries);
        OFF(struct zcusb_ring_header, sqe_size);
        OFF(struct zcusb_ring_header, cqe_size);
        OFF(struct zcusb_ring_header, sq_offset);
        OFF(struct zcusb_ring_header, cq_offset);
        OFF(struct zcusb_ring_header, ring_size);
        OFF(struct zcusb_ring_header, sq_head);
        OFF(struct zcusb_ring_header, sq_tail);
        OFF(struct zcusb_ring_header, sq_flags);
        OFF(struct zcusb_ring_header, cq_head);
        OFF(struct zcusb_ring_header, cq_tail);
        OFF(struct zcusb_ring_header, cq_flags);
        OFF(struct zcusb_sqe, opcode);
        OFF(struct zcusb_sqe, endpoint);
        OFF(struct zcusb_sqe, flags);
        OFF(struct zcusb_sqe, buffer_id);
        OFF(struct zcusb_sqe, offset);
        OFF(struct zcusb_sqe, length);
        OFF(struct zcusb_sqe, timeout_ms);
        OFF(struct zcusb_sqe, iso_packets);
        OFF(struct zcusb_sqe, reserved0);
        OFF(struct zcusb_sqe, user_data);
        OFF(struct zcusb_sqe, cancel_user_data);
        OFF(struct zcusb_sqe, reserved1);
        OFF(struct zcusb_cqe, user_data);
        OFF(struct zcusb_cqe, status);
        OFF(struct zcusb_cqe, actual_length);
        OFF(struct zcusb_cqe, flags);
        OFF(struct zcusb_cqe, reserved);
        OFF(struct zcusb_iso_packet, length);
        OFF(struct zcusb_iso_packet, actual_length);
        OFF(struct zcusb_iso_packet, status);
        NUM(ZCUSB_RING_MAGIC);
        NUM(ZCUSB_RING_VERSION);
        NUM(ZCUSB_SQ_NEED_WAKEUP);
        NUM(ZCUSB_SQ_BROKEN);
        NUM(ZCUSB_SQ_DEAD);
        NUM(ZCUSB_CQ_NO_WAKEUP);
        NUM(ZCUSB_SQE_SHORT_NOT_OK);
        NUM(ZCUSB_SQE_ZERO_PACKET);
        NUM(ZCUSB_OP_NOP);
        NUM(ZCUSB_OP_BULK);
        NUM(ZCUSB_OP_INTERRUPT);
        NUM(ZCUSB_OP_CONTROL);
        NUM(ZCUSB_OP_ISO);
        NUM(ZCUSB_OP_CANCEL);
        NUM(ZCUSB_ISO_MAX_PACKETS);

        SIZE(struct usbdevfs_urb);
        SIZE(struct usbdevfs_iso_packet_desc);
        SIZE(struct usbdevfs_getdriver);
        SIZE(struct usbdevfs_disconnect_claim);
        SIZE(struct usbdevfs_ioctl);
        SIZE(struct usbdevfs_setinterface);
        OFF(struct usbdevfs_urb, type);
        OFF(struct usbdevfs_urb, endpoint);
        OFF(struct usbdevfs_urb, status);
        OFF(struct usbdevfs_urb, flags);
        OFF(struct usbdevfs_urb, buffer);
        OFF(struct usbdevfs_urb, buffer_length);
        OFF(struct usbdevfs_urb, actual_length);
        OFF(struct usbdevfs_urb, start_frame);
        OFF(struct usbdevfs_urb, number_of_packets);
        OFF(struct usbdevfs_urb, error_count);
        OFF(struct usbdevfs_urb, signr);
        OFF(struct usbdevfs_urb, usercontext);
        OFF(struct usbdevfs_urb, iso_frame_desc);
        OFF(struct usbdevfs_ioctl, ifno);
        OFF(struct usbdevfs_ioctl, ioctl_code);
        OFF(struct usbdevfs_ioctl, data);
        OFF(struct usbdevfs_disconnect_claim, interface);
        OFF(struct usbdevfs_disconnect_claim, flags);
        OFF(struct usbdevfs_disconnect_claim, driver);
        NUM(USBDEVFS_SUBMITURB);
        NUM(USBDEVFS_DISCARDURB);
        NUM(USBDEVFS_REAPURB);
        NUM(USBDEVFS_REAPURBNDELAY);
        NUM(USBDEVFS_CLAIMINTERFACE);
        NUM(USBDEVFS_RELEASEINTERFACE);
        NUM(USBDEVFS_SETINTERFACE);
        NUM(USBDEVFS_CLEAR_HALT);
        NUM(USBDEVFS_GETDRIVER);
        NUM(USBDEVFS_DISCONNECT_CLAIM);
        NUM(USBDEVFS_IOCTL);
        NUM(USBDEVFS_CONNECT);
        NUM(USBDEVFS_DISCONNECT);
        NUM(USBDEVFS_GET_CAPABILITIES);
        NUM(USBDEVFS_CONTROL);
        NUM(USBDEVFS_BULK);
        NUM(USBDEVFS_RESET);
        NUM(USBDEVFS_URB_TYPE_ISO);
        NUM(USBDEVFS_URB_TYPE_INTERRUPT);
        NUM(USBDEVFS_URB_TYPE_CONTROL);
        NUM(USBDEVFS_URB_TYPE_BULK);
        NUM(USBDEVFS_URB_SHORT_NOT_OK);
        NUM(USBDEVFS_URB_ISO_ASAP);
        NUM(USBDEVFS_URB_BULK_CONTINUATION);
        NUM(USBDEVFS_URB_ZERO_PACKET);
        NUM(USBDEVFS_DISCONNECT_CLAIM_EXCEPT_DRIVER);
        NUM(USBDEVFS_CAP_BULK_CONTINUATION);
        printf("  \"end\": 0\n}\n");
        return 0;
}
