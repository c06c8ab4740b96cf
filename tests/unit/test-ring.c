/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* zcusbd's side of a queue's shared memory: the layout the client maps, and
 * what happens when the client's indices are sane, wrap, or are hostile. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "ring.h"
#include "tests.h"
#include "util.h"

#define PAGE 4096u

/* The mapping as both sides see it: zeroed, page aligned, exactly ring_size()
 * bytes so that ASan catches anything past its end. */
static void *ring_mem_new(uint32_t entries) {
        size_t size = ring_size(entries);
        void *mem = aligned_alloc(PAGE, size);

        check(mem);
        memset(mem, 0, size);
        return mem;
}

static struct zcusb_sqe *client_sq(void *mem) {
        const struct zcusb_ring_header *h = mem;
        return (struct zcusb_sqe *) ((uint8_t *) mem + h->sq_offset);
}

static struct zcusb_cqe *client_cq(void *mem) {
        const struct zcusb_ring_header *h = mem;
        return (struct zcusb_cqe *) ((uint8_t *) mem + h->cq_offset);
}

/* What a client does: fill the entry at its tail, then publish the tail. */
static void client_submit(void *mem, uint64_t user_data) {
        struct zcusb_ring_header *h = mem;
        uint32_t tail = h->sq_tail.value;

        client_sq(mem)[tail & (h->sq_entries - 1)] = (struct zcusb_sqe) {
                .opcode = ZCUSB_OP_NOP,
                .user_data = user_data,
        };
        __atomic_store_n(&h->sq_tail.value, tail + 1, __ATOMIC_RELEASE);
}

/* Start both sides at INDEX, as if that many entries had gone through. */
static void ring_start_at(Ring *r, uint32_t index) {
        r->sq_head = r->cq_tail = index;
        r->header->sq_head.value = r->header->sq_tail.value = index;
        r->header->cq_head.value = r->header->cq_tail.value = index;
}

static void test_layout(void) {
        static const uint32_t sizes[] = { 1, 2, 4, 8, 64, 128, 1024, 4096 };

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                uint32_t n = sizes[i];
                size_t size = ring_size(n);
                void *mem = ring_mem_new(n);
                struct zcusb_ring_header *h = mem;
                Ring r;

                check(size % PAGE == 0);
                check(size >= PAGE + (size_t) n * sizeof(struct zcusb_sqe) + (size_t) n * 2 * sizeof(struct zcusb_cqe));
                check(size <= UINT32_MAX);

                ring_init(&r, mem, n);
                check(h->magic == ZCUSB_RING_MAGIC);
                check(h->version == ZCUSB_RING_VERSION);
                check(h->header_size == sizeof(struct zcusb_ring_header));
                check(h->header_size <= PAGE);
                check(h->sq_entries == n);
                check(h->cq_entries == 2 * n);
                check(h->sqe_size == sizeof(struct zcusb_sqe));
                check(h->cqe_size == sizeof(struct zcusb_cqe));
                check(h->ring_size == size);

                /* Header alone on the first page; both rings page aligned,
                 * not overlapping, inside the mapping. */
                check(h->sq_offset == PAGE);
                check(h->sq_offset % PAGE == 0);
                check(h->cq_offset % PAGE == 0);
                check(h->cq_offset >= h->sq_offset + n * h->sqe_size);
                check((size_t) h->cq_offset + (size_t) h->cq_entries * h->cqe_size <= size);

                for (size_t j = 0; j < ELEMENTSOF(h->reserved0); j++)
                        check(h->reserved0[j] == 0);
                check(h->sq_head.value == 0 && h->sq_tail.value == 0);
                check(h->cq_head.value == 0 && h->cq_tail.value == 0);
                check(h->sq_flags.value == ZCUSB_SQ_NEED_WAKEUP);
                check(h->cq_flags.value == 0);

                check(r.header == h);
                check((uint8_t *) r.sq == (uint8_t *) mem + h->sq_offset);
                check((uint8_t *) r.cq == (uint8_t *) mem + h->cq_offset);
                check(r.sq_entries == n && r.cq_entries == 2 * n);
                check(r.sq_head == 0 && r.cq_tail == 0 && !r.broken);
                check(ring_cq_space(&r) == 2 * n);
                free(mem);
        }

        /* Small rings still take whole pages: header page + SQ page + CQ page. */
        check(ring_size(1) == 3 * PAGE);
        check(ring_size(64) == 3 * PAGE);   /* 64 * 64 = one page of SQ, 128 * 32 = one page of CQ */
        check(ring_size(4096) == PAGE + 64 * PAGE + 64 * PAGE);
}

static void test_fetch_in_order(void) {
        void *mem = ring_mem_new(8);
        struct zcusb_sqe e;
        Ring r;

        ring_init(&r, mem, 8);
        check(ring_fetch_sqe(&r, &e) == 0); /* empty */

        for (uint64_t i = 1; i <= 5; i++)
                client_submit(mem, i);
        for (uint64_t i = 1; i <= 5; i++) {
                check(ring_fetch_sqe(&r, &e) == 1);
                check(e.user_data == i);
                check(e.opcode == ZCUSB_OP_NOP);
        }
        check(ring_fetch_sqe(&r, &e) == 0);
        check(ring_fetch_sqe(&r, &e) == 0);
        check(r.sq_head == 5);

        /* sq_head becomes visible only when published. */
        check(r.header->sq_head.value == 0);
        ring_publish(&r);
        check(r.header->sq_head.value == 5);
        check(r.header->cq_tail.value == 0);

        /* The client's copy of sq_head is never read back: lying changes nothing. */
        r.header->sq_head.value = 1000;
        client_submit(mem, 6);
        check(ring_fetch_sqe(&r, &e) == 1 && e.user_data == 6);
        check(r.sq_head == 6);
        free(mem);
}

static void test_full(void) {
        void *mem = ring_mem_new(8);
        struct zcusb_sqe e;
        Ring r;

        ring_init(&r, mem, 8);
        /* tail == head + entries: full, every entry is taken. */
        for (uint64_t i = 0; i < 8; i++)
                client_submit(mem, 100 + i);
        check(r.header->sq_tail.value == r.sq_head + 8);
        for (uint64_t i = 0; i < 8; i++) {
                check(ring_fetch_sqe(&r, &e) == 1);
                check(e.user_data == 100 + i);
        }
        check(ring_fetch_sqe(&r, &e) == 0);
        check(!r.broken);
        check(!(r.header->sq_flags.value & ZCUSB_SQ_BROKEN));

        /* Full again, half taken, refilled to full: still fine. */
        for (uint64_t i = 0; i < 8; i++)
                client_submit(mem, 200 + i);
        for (uint64_t i = 0; i < 4; i++)
                check(ring_fetch_sqe(&r, &e) == 1 && e.user_data == 200 + i);
        for (uint64_t i = 8; i < 12; i++)
                client_submit(mem, 200 + i);
        check(r.header->sq_tail.value - r.sq_head == 8);
        for (uint64_t i = 4; i < 12; i++)
                check(ring_fetch_sqe(&r, &e) == 1 && e.user_data == 200 + i);
        check(ring_fetch_sqe(&r, &e) == 0);

        /* A one-entry ring: full is one. */
        free(mem);
        mem = ring_mem_new(1);
        ring_init(&r, mem, 1);
        for (uint64_t i = 0; i < 3; i++) {
                client_submit(mem, i);
                check(ring_fetch_sqe(&r, &e) == 1 && e.user_data == i);
                check(ring_fetch_sqe(&r, &e) == 0);
        }
        free(mem);
}

static void test_wrap(void) {
        void *mem = ring_mem_new(4);
        struct zcusb_ring_header *h = mem;
        struct zcusb_sqe e;
        uint64_t next_in = 0, next_out = 0;
        Ring r;

        ring_init(&r, mem, 4);
        ring_start_at(&r, UINT32_MAX - 3);

        /* Three full rounds across UINT32_MAX: submissions and completions. */
        for (int round = 0; round < 3; round++) {
                for (int i = 0; i < 4; i++)
                        client_submit(mem, next_in++);
                check(ring_fetch_sqe(&r, &e) == 1 && e.user_data == next_out);
                for (int i = 1; i < 4; i++) {
                        check(ring_fetch_sqe(&r, &e) == 1);
                        check(e.user_data == next_out + (uint64_t) i);
                }
                check(ring_fetch_sqe(&r, &e) == 0);

                for (int i = 0; i < 4; i++) {
                        uint32_t slot = r.cq_tail & (r.cq_entries - 1);
                        struct zcusb_cqe c = { .user_data = next_out, .status = -i, .actual_length = 7 };

                        check(ring_post_cqe(&r, &c) == 0);
                        check(client_cq(mem)[slot].user_data == next_out);
                        check(client_cq(mem)[slot].status == -i);
                        check(h->cq_tail.value == r.cq_tail);
                        next_out++;
                }
                /* The client consumes everything. */
                h->cq_head.value = h->cq_tail.value;
                check(ring_cq_space(&r) == r.cq_entries);
        }
        check(!r.broken);
        check(r.sq_head == (uint32_t) (UINT32_MAX - 3 + 12));
        check(r.sq_head == 8);
        check(r.cq_tail == 8);

        /* The completion ring fills across the wrap too: cq_head just below it. */
        ring_start_at(&r, UINT32_MAX - 2);
        for (uint32_t i = 0; i < r.cq_entries; i++) {
                check(ring_cq_space(&r) == r.cq_entries - i);
                check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = i }) == 0);
        }
        check(ring_cq_space(&r) == 0);
        check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = 99 }) == -ENOSPC);
        h->cq_head.value += 3;
        check(ring_cq_space(&r) == 3);
        free(mem);
}

/* Whatever a broken tail looks like, the ring stops, says so, and touches
 * nothing but sq_flags. */
static void check_hostile_tail(uint32_t start, uint32_t taken, uint32_t (*bad)(uint32_t head, uint32_t entries)) {
        const uint32_t n = 8;
        size_t size = ring_size(n);
        void *mem = ring_mem_new(n);
        struct zcusb_ring_header *h = mem;
        uint8_t *before = malloc(size);
        struct zcusb_sqe e, sentinel;
        Ring r, r_before;

        check(before);
        ring_init(&r, mem, n);
        ring_start_at(&r, start);
        for (uint32_t i = 0; i < taken; i++) {
                client_submit(mem, i);
                check(ring_fetch_sqe(&r, &e) == 1 && e.user_data == i);
        }
        ring_publish(&r);

        h->sq_tail.value = bad(r.sq_head, n);
        memcpy(before, mem, size);
        r_before = r;
        memset(&sentinel, 0x5a, sizeof(sentinel));
        e = sentinel;

        check(ring_fetch_sqe(&r, &e) == -EPROTO);
        check(r.broken);
        check(h->sq_flags.value & ZCUSB_SQ_BROKEN);
        check(memcmp(&e, &sentinel, sizeof(e)) == 0); /* nothing copied out */
        check(r.sq_head == r_before.sq_head);
        check(r.cq_tail == r_before.cq_tail);
        /* Only sq_flags changed in the whole mapping. */
        check(memcmp(mem, before, offsetof(struct zcusb_ring_header, sq_flags)) == 0);
        check(memcmp((uint8_t *) mem + offsetof(struct zcusb_ring_header, cq_head),
                     before + offsetof(struct zcusb_ring_header, cq_head),
                     size - offsetof(struct zcusb_ring_header, cq_head)) == 0);

        /* It stays broken, even when the tail turns sane again or the client
         * clears the flag. */
        h->sq_tail.value = r.sq_head + 1;
        check(ring_fetch_sqe(&r, &e) == -EPROTO);
        h->sq_tail.value = r.sq_head;
        check(ring_fetch_sqe(&r, &e) == -EPROTO);
        h->sq_flags.value = 0;
        h->sq_tail.value = r.sq_head + 1;
        check(ring_fetch_sqe(&r, &e) == -EPROTO);
        check(memcmp(&e, &sentinel, sizeof(e)) == 0);
        check(r.sq_head == r_before.sq_head);
        /* ... and never asks to be looked at again. */
        check(!ring_set_need_wakeup(&r, true));

        free(before);
        free(mem);
}

static uint32_t tail_one_too_many(uint32_t head, uint32_t entries) {
        return head + entries + 1;
}
static uint32_t tail_backwards(uint32_t head, uint32_t entries) {
        (void) entries;
        return head - 1;
}
static uint32_t tail_half_way(uint32_t head, uint32_t entries) {
        (void) entries;
        return head + UINT32_C(0x80000000);
}
static uint32_t tail_far_behind(uint32_t head, uint32_t entries) {
        return head - entries;
}
static uint32_t tail_max(uint32_t head, uint32_t entries) {
        (void) head, (void) entries;
        return UINT32_MAX;
}

static void test_hostile_tail(void) {
        static const uint32_t starts[] = { 0, 5, UINT32_MAX - 3, UINT32_C(0x7fffffff) };

        for (size_t i = 0; i < ELEMENTSOF(starts); i++)
                for (uint32_t taken = 0; taken <= 9; taken += 3) {
                        check_hostile_tail(starts[i], taken, tail_one_too_many);
                        check_hostile_tail(starts[i], taken, tail_backwards);
                        check_hostile_tail(starts[i], taken, tail_half_way);
                        check_hostile_tail(starts[i], taken, tail_far_behind);
                }
        check_hostile_tail(0, 0, tail_max); /* head 0: UINT32_MAX is "backwards" by one */
}

static void test_copied_once(void) {
        void *mem = ring_mem_new(4);
        struct zcusb_sqe *shared, e, expect;
        Ring r;

        ring_init(&r, mem, 4);
        shared = client_sq(mem);
        expect = (struct zcusb_sqe) {
                .opcode = ZCUSB_OP_BULK, .endpoint = 0x81, .flags = ZCUSB_SQE_SHORT_NOT_OK, .buffer_id = 3,
                .offset = 4096, .length = 512, .timeout_ms = 1000, .user_data = 0x1122334455667788,
        };
        shared[0] = expect;
        r.header->sq_tail.value = 1;
        check(ring_fetch_sqe(&r, &e) == 1);
        check(memcmp(&e, &expect, sizeof(e)) == 0);

        /* The client rewrites the entry after zcusbd took it: the private copy
         * is what counts, and nothing looks at the shared one again. */
        memset(&shared[0], 0xff, sizeof(shared[0]));
        check(memcmp(&e, &expect, sizeof(e)) == 0);
        check(e.length == 512 && e.offset == 4096 && e.buffer_id == 3);
        check(ring_fetch_sqe(&r, &e) == 0);
        check(memcmp(&e, &expect, sizeof(e)) == 0);
        free(mem);
}

static void test_cq_space(void) {
        const uint32_t n = 4; /* cq_entries = 8 */
        size_t size = ring_size(n);
        void *mem = ring_mem_new(n);
        struct zcusb_ring_header *h = mem;
        uint8_t *before = malloc(size);
        Ring r;

        check(before);
        ring_init(&r, mem, n);
        check(ring_cq_space(&r) == 8);
        for (uint32_t i = 0; i < 3; i++)
                check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = i, .status = -EPIPE }) == 0);
        check(ring_cq_space(&r) == 5);
        check(h->cq_tail.value == 3);
        check(client_cq(mem)[2].user_data == 2 && client_cq(mem)[2].status == -EPIPE);
        h->cq_head.value = 2;
        check(ring_cq_space(&r) == 7);
        h->cq_head.value = 3; /* everything consumed */
        check(ring_cq_space(&r) == 8);

        /* Fill to the brim: exactly cq_entries outstanding. */
        for (uint32_t i = 0; i < 8; i++)
                check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = 10 + i }) == 0);
        check(ring_cq_space(&r) == 0);
        check(r.cq_tail == 11);

        /* Garbage heads read as "no space", and posting writes nothing at all. */
        {
                const uint32_t tail = r.cq_tail;
                const uint32_t heads[] = {
                        tail + 1,                   /* ahead of the tail */
                        tail + 100,
                        tail + UINT32_C(0x80000000),
                        tail - 9,                   /* one more outstanding than the ring holds */
                        tail - 1000,                /* far behind */
                        tail - UINT32_C(0x7fffffff),
                        tail - 8,                   /* legitimately full */
                        UINT32_MAX,
                };

                for (size_t i = 0; i < ELEMENTSOF(heads); i++) {
                        h->cq_head.value = heads[i];
                        memcpy(before, mem, size);
                        check(ring_cq_space(&r) == 0);
                        check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = 0xdead }) == -ENOSPC);
                        check(memcmp(before, mem, size) == 0);
                        check(r.cq_tail == tail);
                }
        }

        /* A sane head again: posting resumes where it left off. */
        h->cq_head.value = r.cq_tail - 7;
        check(ring_cq_space(&r) == 1);
        check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = 77 }) == 0);
        check(client_cq(mem)[11 & 7].user_data == 77);
        check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = 78 }) == -ENOSPC);
        free(before);
        free(mem);
}

/* Posting only ever writes inside the CQ array and the cq_tail index. */
static void test_post_bounds(void) {
        const uint32_t n = 2;
        size_t size = ring_size(n);
        void *mem = ring_mem_new(n);
        struct zcusb_ring_header *h = mem;
        size_t cq_end;
        Ring r;

        ring_init(&r, mem, n);
        cq_end = h->cq_offset + (size_t) h->cq_entries * sizeof(struct zcusb_cqe);
        /* Poison everything the daemon has no business writing to. */
        memset((uint8_t *) mem + sizeof(*h), 0xa5, h->sq_offset - sizeof(*h));
        memset((uint8_t *) mem + cq_end, 0xa5, size - cq_end);

        ring_start_at(&r, UINT32_MAX - 1);
        for (uint32_t i = 0; i < 20; i++) {
                h->cq_head.value = r.cq_tail - (i % 5); /* 0-4 outstanding, cq holds 4 */
                int ret = ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = i, .status = -1 });
                check(ret == (i % 5 < 4 ? 0 : -ENOSPC));
        }
        for (size_t i = sizeof(*h); i < h->sq_offset; i++)
                check(((uint8_t *) mem)[i] == 0xa5);
        for (size_t i = cq_end; i < size; i++)
                check(((uint8_t *) mem)[i] == 0xa5);
        for (size_t i = 0; i < (size_t) n * sizeof(struct zcusb_sqe); i++)
                check(((uint8_t *) mem)[h->sq_offset + i] == 0);
        free(mem);
}

/* The ordering zcusb-ring.h promises: the sq_head that covers an entry is
 * published no later than the cq_tail that covers its completion, by
 * ring_post_cqe() itself, with no ring_publish() in between. A client that
 * reaps a completion of a full ring and resubmits at once finds room. */
static void test_sq_head_before_completion(void) {
        const uint32_t n = 4, start = UINT32_MAX - 1; /* across the wrap */
        void *mem = ring_mem_new(n);
        struct zcusb_ring_header *h = mem;
        struct zcusb_sqe e;
        Ring r;

        ring_init(&r, mem, n);
        ring_start_at(&r, start);
        for (uint64_t i = 0; i < n; i++)
                client_submit(mem, i);

        /* Take one, complete it at once, as queue_process() does with a NOP or
         * a refused entry, and look with the client's eyes when cq_tail moves. */
        for (uint32_t i = 0; i < n; i++) {
                uint32_t cq_tail = h->cq_tail.value;

                check(ring_fetch_sqe(&r, &e) == 1 && e.user_data == i);
                check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = e.user_data }) == 0);
                check(h->cq_tail.value == cq_tail + 1);
                check(client_cq(mem)[cq_tail & (r.cq_entries - 1)].user_data == i);
                check(h->sq_head.value - start == i + 1);
                check(h->sq_tail.value - h->sq_head.value < n); /* room for a resubmission */
        }

        /* Entries taken and still in flight: a completion of any one of them
         * publishes all that were taken before it. */
        h->cq_head.value = h->cq_tail.value;
        for (uint64_t i = 0; i < n; i++)
                client_submit(mem, 10 + i);
        for (uint32_t i = 0; i < 3; i++)
                check(ring_fetch_sqe(&r, &e) == 1);
        check(h->sq_head.value == start + n);
        check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = 11 }) == 0);
        check(h->sq_head.value == start + n + 3);

        /* A post the ring has no room for publishes nothing. */
        h->cq_head.value = h->cq_tail.value - r.cq_entries;
        check(ring_fetch_sqe(&r, &e) == 1);
        check(ring_post_cqe(&r, &(struct zcusb_cqe) { .user_data = 13 }) == -ENOSPC);
        check(h->sq_head.value == start + n + 3);
        free(mem);
}

static void test_need_wakeup(void) {
        void *mem = ring_mem_new(4);
        struct zcusb_ring_header *h = mem;
        struct zcusb_sqe e;
        Ring r;

        ring_init(&r, mem, 4);
        check(h->sq_flags.value == ZCUSB_SQ_NEED_WAKEUP);

        /* Busy: no doorbell wanted. */
        check(!ring_set_need_wakeup(&r, false));
        check(h->sq_flags.value == 0);

        /* Idle with nothing new: flag set, nothing to do. */
        check(!ring_set_need_wakeup(&r, true));
        check(h->sq_flags.value == ZCUSB_SQ_NEED_WAKEUP);

        /* The race the barrier is for: an entry arrived before the flag was
         * seen. The caller must look again. */
        check(!ring_set_need_wakeup(&r, false));
        client_submit(mem, 1);
        check(ring_set_need_wakeup(&r, true));
        check(h->sq_flags.value & ZCUSB_SQ_NEED_WAKEUP);
        check(ring_fetch_sqe(&r, &e) == 1 && e.user_data == 1);
        check(!ring_set_need_wakeup(&r, true));

        /* Other flags are left alone. */
        ring_set_flag(&r, ZCUSB_SQ_DEAD);
        check(h->sq_flags.value == (ZCUSB_SQ_NEED_WAKEUP | ZCUSB_SQ_DEAD));
        check(!ring_set_need_wakeup(&r, false));
        check(h->sq_flags.value == ZCUSB_SQ_DEAD);
        check(!ring_set_need_wakeup(&r, true));
        check(h->sq_flags.value == (ZCUSB_SQ_NEED_WAKEUP | ZCUSB_SQ_DEAD));

        /* A hostile tail: "arrived" but the ring is broken, so no. */
        h->sq_tail.value = r.sq_head + 100;
        check(ring_set_need_wakeup(&r, true)); /* not yet known to be broken: look */
        check(ring_fetch_sqe(&r, &e) == -EPROTO);
        check(!ring_set_need_wakeup(&r, true));
        check(h->sq_flags.value & ZCUSB_SQ_BROKEN);
        free(mem);
}

static void test_client_wants_wakeup(void) {
        void *mem = ring_mem_new(1);
        struct zcusb_ring_header *h = mem;
        Ring r;

        ring_init(&r, mem, 1);
        check(ring_client_wants_wakeup(&r));
        h->cq_flags.value = ZCUSB_CQ_NO_WAKEUP;
        check(!ring_client_wants_wakeup(&r));
        h->cq_flags.value = ~UINT32_C(0);
        check(!ring_client_wants_wakeup(&r));
        h->cq_flags.value = ~ZCUSB_CQ_NO_WAKEUP; /* unknown bits mean nothing */
        check(ring_client_wants_wakeup(&r));
        free(mem);
}

int main(void) {
        RUN(test_layout);
        RUN(test_fetch_in_order);
        RUN(test_full);
        RUN(test_wrap);
        RUN(test_hostile_tail);
        RUN(test_copied_once);
        RUN(test_cq_space);
        RUN(test_post_bounds);
        RUN(test_sq_head_before_completion);
        RUN(test_need_wakeup);
        RUN(test_client_wants_wakeup);
        return 0;
}
