/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client's side of a queue (include/zcusb/zcusb-ring.h): producer of the
 * submission ring, consumer of the completion ring. Nothing here talks D-Bus
 * or touches the context, which is what lets distinct queues run on distinct
 * threads (see zcusb.h) and lets the unit tests play zcusbd by hand.
 */
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "zcusb-internal.h"

/* A ring for 4096 entries takes ~0.5 MiB; refuse to map anything absurd. */
#define RING_MAP_MAX (16u * 1024 * 1024)

static bool is_power_of_two(uint32_t v) {
        return v != 0 && (v & (v - 1)) == 0;
}

/* [off, off + len) lies within [0, limit). 64-bit: no overflow from 32-bit inputs. */
static bool region_within(uint64_t off, uint64_t len, uint64_t limit) {
        return off <= limit && len <= limit - off;
}

static bool regions_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
        return a < b + blen && b < a + alen;
}

static int invalid(const char **ret_why, const char *why) {
        if (ret_why)
                *ret_why = why;
        return -EPROTO;
}

int ring_header_validate(const struct zcusb_ring_header *h, uint64_t file_size, uint32_t want_sq_entries,
                         RingLayout *ret, const char **ret_why) {
        uint64_t sq_bytes, cq_bytes;

        if (h->magic != ZCUSB_RING_MAGIC)
                return invalid(ret_why, "ring header has the wrong magic number");
        if (h->version != ZCUSB_RING_VERSION)
                return invalid(ret_why, "ring header has an unsupported version (zcusbd and libzcusb differ)");
        if (h->header_size < sizeof(struct zcusb_ring_header))
                return invalid(ret_why, "ring header_size is smaller than the header");
        if (h->sqe_size != sizeof(struct zcusb_sqe) || h->cqe_size != sizeof(struct zcusb_cqe))
                return invalid(ret_why, "ring entry sizes differ from this library's");
        if (!is_power_of_two(h->sq_entries) || h->sq_entries > ZCUSB_RING_MAX_ENTRIES)
                return invalid(ret_why, "ring sq_entries is not a power of two in 1..4096");
        if (want_sq_entries != 0 && h->sq_entries != want_sq_entries)
                return invalid(ret_why, "ring sq_entries differs from the number asked for");
        /* Every transfer needs a completion slot: fewer than sq_entries would
         * let completions pile up behind a full ring. */
        if (!is_power_of_two(h->cq_entries) || h->cq_entries < h->sq_entries ||
            h->cq_entries > 2 * ZCUSB_RING_MAX_ENTRIES)
                return invalid(ret_why, "ring cq_entries is not a power of two of at least sq_entries");
        if (h->ring_size > file_size)
                return invalid(ret_why, "ring_size is larger than the ring memfd");
        if (h->ring_size < h->header_size)
                return invalid(ret_why, "ring_size is smaller than the header");
        if (h->sq_offset % _Alignof(struct zcusb_sqe) != 0 || h->cq_offset % _Alignof(struct zcusb_cqe) != 0)
                return invalid(ret_why, "ring offsets are misaligned");

        sq_bytes = (uint64_t) h->sq_entries * sizeof(struct zcusb_sqe);
        cq_bytes = (uint64_t) h->cq_entries * sizeof(struct zcusb_cqe);
        if (!region_within(h->sq_offset, sq_bytes, h->ring_size))
                return invalid(ret_why, "submission ring extends past ring_size");
        if (!region_within(h->cq_offset, cq_bytes, h->ring_size))
                return invalid(ret_why, "completion ring extends past ring_size");
        if (regions_overlap(0, h->header_size, h->sq_offset, sq_bytes) ||
            regions_overlap(0, h->header_size, h->cq_offset, cq_bytes) ||
            regions_overlap(h->sq_offset, sq_bytes, h->cq_offset, cq_bytes))
                return invalid(ret_why, "ring header, submission and completion rings overlap");

        *ret = (RingLayout) {
                .sq_entries = h->sq_entries,
                .cq_entries = h->cq_entries,
                .sq_offset = h->sq_offset,
                .cq_offset = h->cq_offset,
                .ring_size = h->ring_size,
        };
        return 0;
}

void queue_free(struct zcusb_queue *q) {
        if (!q)
                return;
        if (q->map)
                (void) munmap(q->map, q->map_size);
        closep(&q->submit_fd);
        closep(&q->complete_fd);
        free(q);
}

static void queue_freep(struct zcusb_queue **q) {
        queue_free(*q);
}

int queue_attach(int ring_fd, int submit_fd, int complete_fd, uint32_t want_sq_entries, struct zcusb_queue **ret,
                 const char **ret_why) {
        _cleanup_close_ int ring = ring_fd;
        _cleanup_(queue_freep) struct zcusb_queue *q = NULL;
        struct zcusb_ring_header copy;
        struct stat st;
        uint32_t sq_head, cq_tail;
        int r;

        q = calloc(1, sizeof(*q));
        if (!q) {
                closep(&submit_fd);
                closep(&complete_fd);
                return -ENOMEM;
        }
        q->submit_fd = submit_fd;
        q->complete_fd = complete_fd;

        if (fstat(ring, &st) < 0)
                return -errno;
        /* Mapping beyond the end of the file would SIGBUS on first touch. */
        if (st.st_size < (off_t) sizeof(struct zcusb_ring_header))
                return invalid(ret_why, "ring memfd is smaller than a ring header");
        if (st.st_size > (off_t) RING_MAP_MAX)
                return invalid(ret_why, "ring memfd is implausibly large");

        q->map_size = (size_t) st.st_size;
        q->map = mmap(NULL, q->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring, 0);
        if (q->map == MAP_FAILED) {
                q->map = NULL;
                return -errno;
        }

        /* Read the geometry exactly once into private memory and use only the
         * checked copy from here on. */
        memcpy(&copy, q->map, sizeof(copy));
        r = ring_header_validate(&copy, q->map_size, want_sq_entries, &q->layout, ret_why);
        if (r < 0)
                return r;

        q->header = q->map;
        q->sqes = (struct zcusb_sqe *) ((uint8_t *) q->map + q->layout.sq_offset);
        q->cqes = (const struct zcusb_cqe *) ((const uint8_t *) q->map + q->layout.cq_offset);

        /* zcusbd chose the starting indices (not necessarily 0); take ours
         * from there and check its are consistent with them. */
        q->sq_tail = __atomic_load_n(&q->header->sq_tail.value, __ATOMIC_RELAXED);
        q->cq_head = __atomic_load_n(&q->header->cq_head.value, __ATOMIC_RELAXED);
        sq_head = __atomic_load_n(&q->header->sq_head.value, __ATOMIC_ACQUIRE);
        cq_tail = __atomic_load_n(&q->header->cq_tail.value, __ATOMIC_ACQUIRE);
        if (q->sq_tail - sq_head > q->layout.sq_entries || cq_tail - q->cq_head > q->layout.cq_entries)
                return invalid(ret_why, "ring indices are inconsistent");

        /* The ring fd is no longer needed: the mapping keeps the memory. */
        *ret = TAKE_PTR(q);
        return 0;
}

static uint32_t sq_flags_load(const struct zcusb_queue *q) {
        return __atomic_load_n(&q->header->sq_flags.value, __ATOMIC_ACQUIRE);
}

static int queue_dead_error_of(const struct zcusb_queue *q, uint32_t sq_flags) {
        /* BROKEN first: it says this client corrupted its ring, the more
         * useful thing to know when both are set. */
        if (sq_flags & ZCUSB_SQ_BROKEN)
                return -EPROTO;
        if (sq_flags & ZCUSB_SQ_DEAD) {
                /* zcusbd says why before it sets the flag (acquire above). */
                int32_t why = __atomic_load_n(&q->header->end_status, __ATOMIC_RELAXED);
                return why < 0 && why > -4096 ? why : -ENODEV;
        }
        return 0;
}

static void ring_doorbell(int fd) {
        uint64_t one = 1;

        /* An eventfd write only fails with EAGAIN when the counter is about to
         * overflow: zcusbd has a wakeup pending then anyway. The entries are
         * already published, so the submission must not be reported failed. */
        while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
                ;
}

int zcusb_queue_submit_batch(struct zcusb_queue *q, const struct zcusb_sqe *sqes, unsigned n) {
        uint32_t head, used, room, count, mask;
        int r;

        if (!q || (!sqes && n > 0))
                return -EINVAL;
        r = queue_dead_error_of(q, sq_flags_load(q));
        if (r < 0)
                return r;
        if (n == 0)
                return 0;

        head = __atomic_load_n(&q->header->sq_head.value, __ATOMIC_ACQUIRE);
        used = q->sq_tail - head;
        if (used > q->layout.sq_entries)
                return -EPROTO; /* zcusbd claims to have taken entries we never wrote */
        room = q->layout.sq_entries - used;
        if (room == 0)
                return -EAGAIN;

        count = n < room ? n : room;
        mask = q->layout.sq_entries - 1;
        for (uint32_t i = 0; i < count; i++)
                memcpy(&q->sqes[(q->sq_tail + i) & mask], &sqes[i], sizeof(struct zcusb_sqe));
        q->sq_tail += count;
        /* Release: the entries are visible before the tail that covers them. */
        __atomic_store_n(&q->header->sq_tail.value, q->sq_tail, __ATOMIC_RELEASE);

        /* Full barrier between our tail store and the flag load, paired with
         * zcusbd's between its flag store and its tail load: either it sees
         * our tail when it rescans, or we see that it wants a doorbell. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(&q->header->sq_flags.value, __ATOMIC_RELAXED) & ZCUSB_SQ_NEED_WAKEUP)
                ring_doorbell(q->submit_fd);

        return (int) count;
}

int zcusb_queue_submit(struct zcusb_queue *q, const struct zcusb_sqe *sqe) {
        int r;

        if (!sqe)
                return -EINVAL;
        r = zcusb_queue_submit_batch(q, sqe, 1);
        return r < 0 ? r : 0;
}

/* Completions posted and not yet reaped, or UINT32_MAX when zcusbd's tail is
 * impossible. */
static uint32_t cq_ready(const struct zcusb_queue *q) {
        uint32_t ready = __atomic_load_n(&q->header->cq_tail.value, __ATOMIC_ACQUIRE) - q->cq_head;

        return ready > q->layout.cq_entries ? UINT32_MAX : ready;
}

int zcusb_queue_reap(struct zcusb_queue *q, struct zcusb_cqe *out, unsigned max) {
        uint32_t ready, n, mask;

        if (!q || (!out && max > 0))
                return -EINVAL;
        ready = cq_ready(q);
        if (ready == UINT32_MAX)
                return -EPROTO;

        n = ready < max ? ready : max;
        mask = q->layout.cq_entries - 1;
        for (uint32_t i = 0; i < n; i++)
                memcpy(&out[i], &q->cqes[(q->cq_head + i) & mask], sizeof(struct zcusb_cqe));
        if (n > 0) {
                q->cq_head += n;
                /* Release: our reads of the slots happen before zcusbd may reuse them. */
                __atomic_store_n(&q->header->cq_head.value, q->cq_head, __ATOMIC_RELEASE);
        }
        return (int) n;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int zcusb_queue_wait(struct zcusb_queue *q, int timeout_ms) {
        uint64_t deadline = 0;

        if (!q)
                return -EINVAL;
        if (q->completion_wakeup_off)
                return -EINVAL; /* zcusbd was told not to ring: we would sleep through completions */
        if (timeout_ms > 0)
                deadline = now_ms() + (uint64_t) timeout_ms;

        for (;;) {
                struct pollfd p = { .fd = q->complete_fd, .events = POLLIN };
                uint32_t ready, flags;
                int wait_ms, r;

                /* Look at the ring before sleeping, and after every doorbell:
                 * the doorbell only says "look", the ring says what is there. */
                ready = cq_ready(q);
                if (ready == UINT32_MAX)
                        return -EPROTO;
                if (ready > 0)
                        return (int) ready;

                flags = sq_flags_load(q);
                if (queue_dead_error_of(q, flags) < 0) {
                        /* zcusbd posts the cancelled transfers' completions
                         * before it marks the queue dead; the acquire load of
                         * the flags makes them visible now. */
                        ready = cq_ready(q);
                        if (ready == UINT32_MAX)
                                return -EPROTO;
                        return ready > 0 ? (int) ready : queue_dead_error_of(q, flags);
                }

                if (timeout_ms < 0)
                        wait_ms = -1;
                else if (timeout_ms == 0)
                        wait_ms = 0;
                else {
                        uint64_t now = now_ms();
                        wait_ms = now >= deadline ? 0 : (int) (deadline - now);
                }

                r = poll(&p, 1, wait_ms);
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return 0;
                if (p.revents & (POLLERR | POLLNVAL))
                        return -EBADF;

                /* Drain the doorbell, then loop to look at the ring: a
                 * completion whose doorbell we consume here was posted before
                 * it, so the next look sees it. We are the only reader, and
                 * poll said it is readable: this read does not block. The fd's
                 * flags are shared with zcusbd, so we do not set O_NONBLOCK. */
                uint64_t counter;
                if (read(q->complete_fd, &counter, sizeof(counter)) < 0 && errno != EAGAIN && errno != EINTR)
                        return -errno;
        }
}

int zcusb_queue_get_fd(const struct zcusb_queue *q) {
        return q ? q->complete_fd : -EINVAL;
}

void zcusb_queue_set_completion_wakeup(struct zcusb_queue *q, bool enabled) {
        if (!q)
                return;
        q->completion_wakeup_off = !enabled;
        __atomic_store_n(&q->header->cq_flags.value, enabled ? 0 : ZCUSB_CQ_NO_WAKEUP, __ATOMIC_RELEASE);
}
