/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zcusb-ring.h"

/* zcusbd's side of a queue's shared memory (include/zcusb/zcusb-ring.h).
 * Everything the client can write is read once, with acquire ordering, and
 * checked; the daemon's own indices live here, not in shared memory. */

typedef struct Ring {
        struct zcusb_ring_header *header;
        struct zcusb_sqe *sq;
        struct zcusb_cqe *cq;
        uint32_t sq_entries, cq_entries;
        uint32_t sq_head; /* private: next entry to take */
        uint32_t cq_tail; /* private: next slot to fill */
        bool broken;
} Ring;

/* Twice the submission slots: completions of CANCELs and of the entries
 * they end both fit. */
static inline uint32_t ring_cq_entries(uint32_t sq_entries) {
        return sq_entries * 2;
}

/* Bytes a ring with SQ_ENTRIES submissions takes (whole pages). */
size_t ring_size(uint32_t sq_entries);

/* Lay out and initialise a ring in MEM (ring_size() bytes, zeroed). */
void ring_init(Ring *r, void *mem, uint32_t sq_entries);

/* Copy the next submission into *out. 1: got one; 0: empty; -EPROTO: the
 * client's tail is beyond what the ring can hold (the ring is now broken). */
int ring_fetch_sqe(Ring *r, struct zcusb_sqe *out);

/* Free completion slots, from the client's cq_head; a head that makes no
 * sense (more consumed than posted) reads as no space. */
uint32_t ring_cq_space(const Ring *r);

/* False when the client's cq_head is ahead of what was posted. */
bool ring_cq_head_valid(const Ring *r);

/* Serve the ring no more: ZCUSB_SQ_BROKEN. */
void ring_mark_broken(Ring *r);

/* Post one completion; -ENOSPC when the ring is full. Publishes sq_head
 * first, so the entries taken so far are seen free before it. */
int ring_post_cqe(Ring *r, const struct zcusb_cqe *cqe);

/* Store the private sq_head and cq_tail for the client to see. */
void ring_publish(Ring *r);

/* Doorbell: say whether zcusbd needs a kick for new submissions. Returns true
 * when, after a full barrier, submissions arrived after all (the caller must
 * look again). */
bool ring_set_need_wakeup(Ring *r, bool need);
/* Clear the doorbell flag if it is set (no store, so no shared cache line
 * dirtied, when it is already clear). */
void ring_clear_need_wakeup(Ring *r);
bool ring_client_wants_wakeup(const Ring *r);
void ring_set_flag(Ring *r, uint32_t flag);
/* The claim ended: say why (negative errno), then raise ZCUSB_SQ_DEAD. */
void ring_set_dead(Ring *r, int end_status);
