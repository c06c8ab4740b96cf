/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"

#define RING_PAGE 4096u

static uint32_t load_acquire(const uint32_t *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store_release(uint32_t *p, uint32_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static size_t round_up(size_t n, size_t to) {
        return (n + to - 1) / to * to;
}

size_t ring_size(uint32_t sq_entries) {
        /* Header on its own page; SQ page aligned; CQ right after it. */
        size_t sq = (size_t) sq_entries * sizeof(struct zcusb_sqe);
        size_t cq = (size_t) ring_cq_entries(sq_entries) * sizeof(struct zcusb_cqe);
        return round_up(RING_PAGE + round_up(sq, RING_PAGE) + cq, RING_PAGE);
}

void ring_init(Ring *r, void *mem, uint32_t sq_entries) {
        struct zcusb_ring_header *h = mem;
        uint32_t sq_offset = RING_PAGE;
        uint32_t cq_offset = (uint32_t) (sq_offset + round_up((size_t) sq_entries * sizeof(struct zcusb_sqe), RING_PAGE));

        *h = (struct zcusb_ring_header) {
                .magic = ZCUSB_RING_MAGIC,
                .version = ZCUSB_RING_VERSION,
                .header_size = sizeof(struct zcusb_ring_header),
                .sq_entries = sq_entries,
                .cq_entries = ring_cq_entries(sq_entries),
                .sqe_size = sizeof(struct zcusb_sqe),
                .cqe_size = sizeof(struct zcusb_cqe),
                .sq_offset = sq_offset,
                .cq_offset = cq_offset,
                .ring_size = (uint32_t) ring_size(sq_entries),
        };
        h->sq_flags.value = ZCUSB_SQ_NEED_WAKEUP;

        *r = (Ring) {
                .header = h,
                .sq = (struct zcusb_sqe *) ((uint8_t *) mem + sq_offset),
                .cq = (struct zcusb_cqe *) ((uint8_t *) mem + cq_offset),
                .sq_entries = sq_entries,
                .cq_entries = ring_cq_entries(sq_entries),
        };
}

int ring_fetch_sqe(Ring *r, struct zcusb_sqe *out) {
        uint32_t tail;

        if (r->broken)
                return -EPROTO;
        tail = load_acquire(&r->header->sq_tail.value);
        if (tail == r->sq_head)
                return 0;
        if (tail - r->sq_head > r->sq_entries) {
                r->broken = true;
                ring_set_flag(r, ZCUSB_SQ_BROKEN);
                return -EPROTO;
        }
        /* The one and only read of this entry: from here on only *out counts. */
        memcpy(out, &r->sq[r->sq_head & (r->sq_entries - 1)], sizeof(*out));
        r->sq_head++;
        return 1;
}

uint32_t ring_cq_space(const Ring *r) {
        uint32_t head = load_acquire(&r->header->cq_head.value);
        uint32_t used = r->cq_tail - head;

        if (used > r->cq_entries)
                return 0;
        return r->cq_entries - used;
}

int ring_post_cqe(Ring *r, const struct zcusb_cqe *cqe) {
        if (ring_cq_space(r) == 0)
                return -ENOSPC;
        memcpy(&r->cq[r->cq_tail & (r->cq_entries - 1)], cqe, sizeof(*cqe));
        r->cq_tail++;
        /* The ordering zcusb-ring.h promises: every entry taken so far shows
         * as taken before a completion that may be its own, so a client that
         * reaps it and resubmits at once finds the slot free. Here, not in
         * ring_publish(): this is the one place completions are posted. */
        store_release(&r->header->sq_head.value, r->sq_head);
        store_release(&r->header->cq_tail.value, r->cq_tail);
        return 0;
}

void ring_publish(Ring *r) {
        store_release(&r->header->sq_head.value, r->sq_head);
        store_release(&r->header->cq_tail.value, r->cq_tail);
}

void ring_set_flag(Ring *r, uint32_t flag) {
        __atomic_fetch_or(&r->header->sq_flags.value, flag, __ATOMIC_RELEASE);
}

void ring_set_dead(Ring *r, int end_status) {
        __atomic_store_n(&r->header->end_status, end_status, __ATOMIC_RELAXED);
        ring_set_flag(r, ZCUSB_SQ_DEAD); /* release: end_status is visible first */
}

bool ring_set_need_wakeup(Ring *r, bool need) {
        if (!need) {
                __atomic_fetch_and(&r->header->sq_flags.value, ~ZCUSB_SQ_NEED_WAKEUP, __ATOMIC_RELEASE);
                return false;
        }
        __atomic_fetch_or(&r->header->sq_flags.value, ZCUSB_SQ_NEED_WAKEUP, __ATOMIC_RELEASE);
        /* Pairs with the client's barrier between storing sq_tail and loading
         * sq_flags: one of us is sure to see the other's store. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return !r->broken && load_acquire(&r->header->sq_tail.value) != r->sq_head;
}

void ring_clear_need_wakeup(Ring *r) {
        if (__atomic_load_n(&r->header->sq_flags.value, __ATOMIC_RELAXED) & ZCUSB_SQ_NEED_WAKEUP)
                (void) ring_set_need_wakeup(r, false);
}

bool ring_client_wants_wakeup(const Ring *r) {
        return !(load_acquire(&r->header->cq_flags.value) & ZCUSB_CQ_NO_WAKEUP);
}

void ring_mark_broken(Ring *r) {
        r->broken = true;
        ring_set_flag(r, ZCUSB_SQ_BROKEN);
}

bool ring_cq_head_valid(const Ring *r) {
        return r->cq_tail - load_acquire(&r->header->cq_head.value) <= r->cq_entries;
}
