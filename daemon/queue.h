/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "backend.h"
#include "forward.h"
#include "ring.h"

/* A submission/completion ring pair in a memfd, with its two eventfds.
 * zcusbd keeps the mapping and the eventfds; the memfd is handed to the
 * client once.
 *
 * queue_new() takes the claim's QueuesPerClient= count, charges the ring's
 * size and links the queue into its claim; queue_free() undoes all of it.
 * queue_stop() says the claim ended (ZCUSB_SQ_DEAD); a ring the client
 * corrupted is dropped from the loop with one log line (queue_break). */
struct Queue {
        Claim *claim;
        uint32_t id;
        uint8_t *map;
        size_t size;     /* of the ring memfd */
        size_t charged;  /* the ring and zcusbd's own memory for the queue */
        Ring ring;

        int submit_fd;   /* client -> zcusbd */
        int complete_fd; /* zcusbd -> client */
        sd_event_source *submit_source;
        sd_event_source *defer_source; /* rescan + doorbell, once per batch */
        sd_event_source *poll_source;  /* rescan while entries wait for completion slots */
        sd_event_source *grace_source; /* doorbell off after a batch: look again if no completion comes */
        uint64_t last_batch_usec;      /* when completions were last posted (CLOCK_MONOTONIC) */
        uint64_t batch_gap_usec;       /* moving average of the time between such batches */

        /* Transfers with a timeout, earliest deadline first, and one timer
         * for all of them (transfer.c): armed no later than the first
         * deadline, and not moved when a transfer ends. */
        TAILQ_HEAD(TransferDeadlines, Transfer) deadlines;
        sd_event_source *deadline_source;
        uint64_t deadline_armed;       /* when the timer fires; 0: off */

        unsigned in_flight;            /* transfers started from this queue */
        unsigned depth;                /* the most ever in flight at once */
        struct zcusb_cqe *backlog;     /* completions the ring had no room for */
        uint32_t n_backlog;
        struct zcusb_sqe *held;        /* taken, waiting for the in-flight limit (private copies): */
        uint32_t held_head, n_held;    /* a ring of cq_entries, allocated when first needed */
        bool posted;                   /* completions posted since the last doorbell */
        bool kicked;                   /* on the kicked list: to be processed */
        TAILQ_ENTRY(Queue) kick_link;
        bool broken_logged;
        bool kernel;                   /* served by the backend's kernel (in-kernel queue) */
        uint32_t kernel_id;
        TransferCounters kernel_seen;  /* the kernel's counters for it, as last read */
        unsigned blocked_polls;        /* polls in a row while blocked with nothing in flight */

        TAILQ_ENTRY(Queue) link;
};

/* *ret_fd (the caller's to close) is the ring memfd the client maps. Named
 * bus errors go to *error. */
int queue_new(Claim *c, uint32_t entries, Queue **ret, int *ret_fd, sd_bus_error *error);
/* Only for a queue with nothing in flight. */
Queue *queue_free(Queue *q);

static inline void queue_freep(Queue **q) {
        queue_free(*q);
}

/* Cancel every transfer in flight from Q; returns how many are left. */
unsigned queue_cancel_all(Queue *q);

/* The claim ended with END_STATUS: say so in the ring (ZCUSB_SQ_DEAD). */
void queue_stop(Queue *q, int end_status);

/* Schedule a rescan of the submission ring and a doorbell for completions:
 * at the end of the backend's batch (backend_batch_done), or else on the
 * next loop iteration. */
void queue_kick(Queue *q);

/* In-kernel queues (docs/architecture.md): whether C's new queues are
 * handed to its backend's kernel, and a buffer made nameable there (0, or a
 * negative errno when a kernel-served queue of C cannot see it). */
bool queue_kernel_possible(const Claim *c);
int queue_kernel_add_buffer(Claim *c, const BackendBuffer *b);
/* "kernel" when every queue of C is (or its next one would be) served by
 * the kernel, else "daemon". */
const char *queue_served_by(const Claim *c);
/* What the kernel counted so far for Q while it serves Q (one call into the
 * backend); all 0 for a queue zcusbd serves, whose counts are its claim's
 * own, or when the kernel cannot say. */
int queue_kernel_counters(Queue *q, TransferCounters *ret);

/* Post a completion (to the ring, or to the backlog when it is full). */
void queue_complete(Queue *q, uint64_t user_data, int status, uint32_t actual);
