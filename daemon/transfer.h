/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "forward.h"
#include "transfer-check.h"

/* One submission in flight: from the moment its entry left the ring until its
 * completion is posted. Lives on its claim's in-flight list, and nowhere else.
 *
 * transfer_start() links it (claim's in-flight list, the queue's, buffer's
 * and peer's in-flight counts) and charges zcusbd's own memory for it to the
 * claim's quota; transfer_done() undoes exactly that, once. */
struct Transfer {
        Queue *queue;
        Claim *claim;
        Buffer *buffer;           /* referenced while in flight: FreeBuffer says Busy */
        TransferPlan plan;
        uint64_t user_data;
        uint8_t interface_number; /* the claim's: what a per-interface backend needs */
        uint16_t flags;           /* ZCUSB_SQE_* */
        uint32_t timeout_ms;

        /* What the backend moves: for bulk, interrupt and iso this points
         * into the daemon's mapping of the client's buffer (zero copy); for
         * control it is a private copy of setup + data, so the client cannot
         * change a request after it was checked. */
        uint8_t *data;
        uint32_t data_length;
        uint8_t *bounce;

        /* Iso results (plan.iso_packets of each, allocated with the
         * transfer; NULL for other types), filled by the backend, written
         * back at completion. */
        uint32_t *iso_actual;
        int32_t *iso_status;

        uint64_t charged;         /* zcusbd's memory for it, charged to the claim */

        sd_event_source *timer;
        int cancel_status;        /* why it is being cancelled, 0 while not */
        void *backend_data;

        TAILQ_ENTRY(Transfer) link;
};

/* Take one checked submission off a queue and hand it to the backend. On
 * failure the caller posts the completion itself. */
int transfer_start(Queue *q, const struct zcusb_sqe *sqe, const TransferPlan *plan, Buffer *buffer);

/* Ask the transfer to end with STATUS (-ECANCELED, -ETIMEDOUT, -ENODEV, ...). */
void transfer_cancel(Transfer *t, int status);

/* Called by the backend, exactly once per started transfer. URB_STATUS is the
 * kernel's; ACTUAL the bytes moved (control: data stage only). */
void transfer_done(Transfer *t, int urb_status, uint32_t actual);

/* The errno a client sees for a kernel URB status. */
int transfer_status_from_urb(int urb_status);
