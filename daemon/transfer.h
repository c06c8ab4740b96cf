/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "backend.h"
#include "forward.h"

/* One submission in flight: from the moment its entry left the ring until its
 * completion is posted. Lives on its claim's in-flight list, and nowhere else.
 *
 * transfer_start() allocates it with the backend's private part and its iso
 * results in one block, links it (claim's in-flight list; the queue's,
 * buffer's and peer's in-flight counts) and charges zcusbd's memory for it
 * to the claim; backend_transfer_done() posts the completion and undoes
 * exactly that, once (transfer_unlink). */
struct Transfer {
        BackendTransfer backend;  /* what the backend sees; first */
        Queue *queue;
        Claim *claim;
        Buffer *buffer;           /* referenced while in flight: FreeBuffer says Busy */
        uint64_t user_data;
        uint32_t timeout_ms;
        uint64_t deadline;        /* CLOCK_MONOTONIC usec on its queue's deadline list; 0: not on it */
        int cancel_status;        /* why it is being cancelled, 0 while not */
        uint64_t charged;         /* zcusbd's memory for it, charged to the claim */
        bool plain_block;         /* bulk/interrupt-sized block: back to the claim's cache */
        TAILQ_ENTRY(Transfer) link;
        TAILQ_ENTRY(Transfer) deadline_link;
};

static inline Transfer *transfer_from_backend(BackendTransfer *bt) {
        return (Transfer *) ((uint8_t *) bt - offsetof(Transfer, backend));
}

/* Take one checked submission off a queue and hand it to the backend. On
 * failure nothing is left and the caller posts the completion itself. */
int transfer_start(Queue *q, const struct zcusb_sqe *sqe, const TransferPlan *plan, Buffer *buffer);

/* Free the claim's cached transfer blocks (claim_free). */
void transfer_cache_clear(Claim *c);

/* Ask the transfer to end with STATUS (-ECANCELED, -ETIMEDOUT, -ENODEV, ...). */
void transfer_cancel(Transfer *t, int status);

/* The queue's deadline timer (userdata: the Queue): cancel what has
 * expired with -ETIMEDOUT, re-arm for the earliest deadline left. */
int transfer_on_deadline(sd_event_source *s, uint64_t usec, void *userdata);

/* The errno a client sees for a kernel URB status. */
int transfer_status_from_urb(int urb_status);
