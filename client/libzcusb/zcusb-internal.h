/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libzcusb's private structures, shared by its source files and its unit
 * tests. Nothing here is exported: the version script keeps only zcusb_*, so
 * internal functions must not use that prefix. */

#include <systemd/sd-bus.h>

#include "util.h"
#include "zcusb.h"

struct zcusb {
        sd_bus *bus;
        sd_bus_slot *ended_match; /* one match for every claim's Ended signal */
        sd_bus_slot *owner_match; /* zcusbd leaving the bus: its claims end */
        char *last_error;         /* zcusb_last_error_message() */
        TAILQ_HEAD(, zcusb_claim) claims;
};

struct zcusb_claim {
        struct zcusb *ctx;
        TAILQ_ENTRY(zcusb_claim) link;
        char *object;        /* /org/zcusb1/claim/cN */
        char *device;        /* /org/zcusb1/device/usbB_A */
        char *daemon;        /* unique name of the zcusbd that granted the claim: only its Ended
                              * signal counts, and calls go to it so none bus-activates a new one */
        uint8_t interface;
        bool ended;          /* zcusbd sent Ended: the claim's queues are dead */
        char end_reason[32]; /* the Ended signal's reason */

        TAILQ_HEAD(, zcusb_buffer) buffers;
        TAILQ_HEAD(, zcusb_queue) queues;

        /* The synchronous helpers' own queue and control buffer, made on first use. */
        struct zcusb_queue *sync_queue;
        struct zcusb_buffer *control_buffer;
        uint64_t sync_sequence;
};

struct zcusb_buffer {
        struct zcusb_claim *claim;
        TAILQ_ENTRY(zcusb_buffer) link;
        uint32_t id;
        void *data;
        size_t size;
};

/* The ring geometry, copied out of the shared header once and validated:
 * nothing the daemon writes later can change what the client indexes with. */
typedef struct RingLayout {
        uint32_t sq_entries, cq_entries;
        uint32_t sq_offset, cq_offset;
        uint32_t ring_size;
} RingLayout;

struct zcusb_queue {
        struct zcusb_claim *claim; /* NULL for a queue attached by a unit test */
        TAILQ_ENTRY(zcusb_queue) link;
        uint32_t id;

        void *map;
        size_t map_size;
        struct zcusb_ring_header *header;
        struct zcusb_sqe *sqes;
        const struct zcusb_cqe *cqes;
        RingLayout layout;

        /* The indices this side owns. Kept privately and only ever stored to
         * shared memory, so the daemon cannot make us skip or replay entries. */
        uint32_t sq_tail;
        uint32_t cq_head;

        int submit_fd;   /* doorbell to zcusbd */
        int complete_fd; /* doorbell from zcusbd */
        bool completion_wakeup_off; /* we set ZCUSB_CQ_NO_WAKEUP */
};

/* ---- ring.c: the data path, no D-Bus ---- */

/* Check a private copy of a ring header against the size of the file it came
 * from and the number of submission entries asked for (0: any). Returns 0 or
 * -EPROTO with *ret_why (static text) naming the first problem. */
int ring_header_validate(const struct zcusb_ring_header *h, uint64_t file_size, uint32_t want_sq_entries,
                         RingLayout *ret, const char **ret_why);

/* Map RING_FD, validate it and build a queue around the two eventfds. Takes
 * ownership of all three fds, also on failure. */
int queue_attach(int ring_fd, int submit_fd, int complete_fd, uint32_t want_sq_entries, struct zcusb_queue **ret,
                 const char **ret_why);
/* Unmap and close; does not talk to the daemon. NULL is a no-op. */
void queue_free(struct zcusb_queue *q);

/* ---- libzcusb.c: shared with buffer.c and sync.c ---- */

_printf_(3, 4) int ctx_errorf(struct zcusb *ctx, int r, const char *fmt, ...);
/* Record "WHAT: malformed reply from zcusbd"; returns -EBADMSG. */
int ctx_malformed(struct zcusb *ctx, int r, const char *what);
/* Fails with the claim's end reason as an errno when the claim has ended. */
int claim_check_alive(struct zcusb_claim *claim);

/* What claim_call_at() does when zcusbd has ended the claim. */
typedef enum OnEnded {
        ON_ENDED_CALL, /* call all the same (Release(); calls right after one that checked) */
        ON_ENDED_FAIL, /* no call: claim_check_alive()'s error (requests) */
        ON_ENDED_SKIP, /* no call, 0: the end freed zcusbd's side already (freeing, closing) */
} OnEnded;

/* Every call about a claim: METHOD of INTERFACE at PATH (the claim's object, or its device's)
 * on the zcusbd that granted the claim, by that instance's unique name (claim->daemon), never
 * ZCUSB_BUS_NAME: once it has exited the call fails rather than activating a new zcusbd. A
 * failure returns the errno and, with WHAT, records "WHAT: zcusbd's sentence"; WHAT NULL is for
 * clean-ups whose failure does not matter. */
int claim_call_at(struct zcusb_claim *claim, OnEnded on_ended, const char *path, const char *interface,
                  const char *method, const char *what, sd_bus_message **reply, const char *types, ...);
/* The claim's own methods: claim_call(claim, on_ended, method, what, reply, types, ...). */
#define claim_call(claim, on_ended, ...) \
        claim_call_at(claim, on_ended, (claim)->object, ZCUSB_CLAIM_INTERFACE, __VA_ARGS__)

/* ---- buffer.c ---- */

/* Unmap and free; does not talk to the daemon. */
void buffer_unmap_free(struct zcusb_buffer *b);
