/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "usb-descriptors.h"
#include "zcusb-ring.h"

/* Validation of one submission against what its claim owns. Pure: it sees a
 * private copy of the entry (never shared memory) and the claim's state. */

typedef struct TransferContext {
        uint8_t interface_number;
        uint8_t alt_setting;
        const UsbDescriptors *descriptors;
        /* Size of the claim's buffer ID, or -ENOENT. */
        int (*buffer_size)(void *userdata, uint32_t id, uint64_t *ret);
        void *userdata;
} TransferContext;

typedef struct TransferPlan {
        uint8_t opcode;
        uint8_t endpoint;
        bool in;                  /* device to host */
        bool short_not_ok;        /* ZCUSB_SQE_SHORT_NOT_OK */
        uint16_t max_packet_size; /* of the endpoint; 64 for control */
        uint64_t offset;          /* where the region starts in the buffer */
        uint32_t length;          /* region length (all of it) */
        uint32_t data_offset;     /* data within the region: 8 for control, 16*n for iso */
        uint32_t data_length;
        uint8_t setup[ZCUSB_CONTROL_SETUP_SIZE];       /* control: the private copy */
        uint32_t iso_packets;
        uint32_t iso_lengths[ZCUSB_ISO_MAX_PACKETS];   /* iso: private copies */
} TransferPlan;

/* Two steps, so that the payload is read only after its bounds are known:
 *   transfer_check_entry()   the entry alone: opcode, flags, buffer id,
 *                            offset/length bounds, endpoint and direction;
 *   transfer_check_payload() the control setup packet or the iso packet
 *                            lengths, copied ONCE out of REGION (the client's
 *                            bytes at plan->offset) into the plan, then checked
 *                            (setup packets against the allow-list of
 *                            dbus/API.md, "Control requests": -EPERM).
 * Both return 0 or the negative errno the completion carries, with *why set. */
int transfer_check_entry(const struct zcusb_sqe *sqe, const TransferContext *ctx, TransferPlan *plan,
                         const char **why);
int transfer_check_payload(TransferPlan *plan, const TransferContext *ctx, const uint8_t *region,
                           const char **why);

/* Max bytes of one iso packet for an endpoint's wMaxPacketSize. */
uint32_t usb_iso_packet_max(uint16_t max_packet_size);
