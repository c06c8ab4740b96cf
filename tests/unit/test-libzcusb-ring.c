/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libzcusb's side of a queue, without a daemon: the test lays out a ring in a
 * memfd as zcusbd would and then plays zcusbd by hand (takes submissions,
 * posts completions, sets flags, rings the doorbell), while the library is
 * driven through its public data-path API.
 */
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>

#include "libzcusb/zcusb-internal.h"
#include "tests.h"

#define PAGE 4096u

/* zcusbd's half of a queue. */
typedef struct FakeDaemon {
        int ring_fd, submit_fd, complete_fd;
        uint8_t *map;
        size_t size;
        struct zcusb_ring_header *h;
        struct zcusb_sqe *sq;
        struct zcusb_cqe *cq;
        uint32_t sq_entries, cq_entries;
        uint32_t sq_head, cq_tail; /* private, as zcusbd keeps them */
} FakeDaemon;

static size_t round_up(size_t n, size_t to) {
        return (n + to - 1) / to * to;
}

/* The layout zcusbd uses: header page, SQ page aligned, CQ right after. */
static void fake_init(FakeDaemon *d, uint32_t entries, uint32_t start_index) {
        uint32_t sq_offset = PAGE;
        uint32_t cq_offset = (uint32_t) (sq_offset + round_up(entries * sizeof(struct zcusb_sqe), PAGE));

        *d = (FakeDaemon) { .sq_entries = entries, .cq_entries = 2 * entries };
        d->size = round_up(cq_offset + 2 * entries * sizeof(struct zcusb_cqe), PAGE);
        d->ring_fd = memfd_create("test-ring", MFD_CLOEXEC);
        check(d->ring_fd >= 0);
        check(ftruncate(d->ring_fd, (off_t) d->size) == 0);
        d->map = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED, d->ring_fd, 0);
        check(d->map != MAP_FAILED);
        d->submit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        d->complete_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        check(d->submit_fd >= 0 && d->complete_fd >= 0);

        d->h = (struct zcusb_ring_header *) d->map;
        *d->h = (struct zcusb_ring_header) {
                .magic = ZCUSB_RING_MAGIC,
                .version = ZCUSB_RING_VERSION,
                .header_size = sizeof(struct zcusb_ring_header),
                .sq_entries = entries,
                .cq_entries = 2 * entries,
                .sqe_size = sizeof(struct zcusb_sqe),
                .cqe_size = sizeof(struct zcusb_cqe),
                .sq_offset = sq_offset,
                .cq_offset = cq_offset,
                .ring_size = (uint32_t) d->size,
        };
        d->h->sq_head.value = d->h->sq_tail.value = start_index;
        d->h->cq_head.value = d->h->cq_tail.value = start_index;
        d->sq_head = d->cq_tail = start_index;
        d->sq = (struct zcusb_sqe *) (d->map + sq_offset);
        d->cq = (struct zcusb_cqe *) (d->map + cq_offset);
}

static void fake_done(FakeDaemon *d) {
        munmap(d->map, d->size);
        close(d->ring_fd);
        close(d->submit_fd);
        close(d->complete_fd);
}

/* The client gets its own descriptors, as over D-Bus. */
static int fake_attach(FakeDaemon *d, uint32_t want, struct zcusb_queue **ret, const char **why) {
        return queue_attach(dup(d->ring_fd), dup(d->submit_fd), dup(d->complete_fd), want, ret, why);
}

static struct zcusb_queue *fake_attach_ok(FakeDaemon *d) {
        struct zcusb_queue *q = NULL;
        const char *why = NULL;
        int r = fake_attach(d, d->sq_entries, &q, &why);

        if (r < 0)
                fprintf(stderr, "attach: %d %s\n", r, why ?: "");
        check(r == 0 && q);
        return q;
}

/* Take one submission, as zcusbd does: one copy, then publish sq_head. */
static bool fake_take(FakeDaemon *d, struct zcusb_sqe *out) {
        uint32_t tail = __atomic_load_n(&d->h->sq_tail.value, __ATOMIC_ACQUIRE);

        if (tail == d->sq_head)
                return false;
        memcpy(out, &d->sq[d->sq_head & (d->sq_entries - 1)], sizeof(*out));
        d->sq_head++;
        __atomic_store_n(&d->h->sq_head.value, d->sq_head, __ATOMIC_RELEASE);
        return true;
}

static void fake_complete(FakeDaemon *d, uint64_t user_data, int status, uint32_t actual, bool doorbell) {
        struct zcusb_cqe cqe = { .user_data = user_data, .status = status, .actual_length = actual };

        memcpy(&d->cq[d->cq_tail & (d->cq_entries - 1)], &cqe, sizeof(cqe));
        d->cq_tail++;
        __atomic_store_n(&d->h->cq_tail.value, d->cq_tail, __ATOMIC_RELEASE);
        if (doorbell)
                check(eventfd_write(d->complete_fd, 1) == 0);
}

static void fake_set_flags(FakeDaemon *d, uint32_t flags) {
        __atomic_store_n(&d->h->sq_flags.value, flags, __ATOMIC_RELEASE);
}

/* How many doorbells the client rang since the last call. */
static uint64_t fake_kicks(FakeDaemon *d) {
        eventfd_t v = 0;

        if (eventfd_read(d->submit_fd, &v) < 0) {
                check(errno == EAGAIN);
                return 0;
        }
        return v;
}

static bool fd_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, 0) == 1;
}

static unsigned count_open_fds(void) {
        DIR *dir = opendir("/proc/self/fd");
        unsigned n = 0;

        check(dir);
        while (readdir(dir))
                n++;
        closedir(dir);
        return n;
}

static struct zcusb_sqe sqe_for(uint64_t user_data) {
        struct zcusb_sqe sqe;

        zcusb_prep_transfer(&sqe, ZCUSB_OP_BULK, 0x81, 7, 4096 * (user_data % 4), 512, 1000, user_data);
        return sqe;
}

/* ---- header validation ---- */

static struct zcusb_ring_header good_header(void) {
        return (struct zcusb_ring_header) {
                .magic = ZCUSB_RING_MAGIC,
                .version = ZCUSB_RING_VERSION,
                .header_size = sizeof(struct zcusb_ring_header),
                .sq_entries = 8,
                .cq_entries = 16,
                .sqe_size = sizeof(struct zcusb_sqe),
                .cqe_size = sizeof(struct zcusb_cqe),
                .sq_offset = PAGE,
                .cq_offset = 2 * PAGE,
                .ring_size = 3 * PAGE,
        };
}

static void test_validate_good(void) {
        struct zcusb_ring_header h = good_header();
        RingLayout layout;

        check(ring_header_validate(&h, 3 * PAGE, 8, &layout, NULL) == 0);
        check(layout.sq_entries == 8 && layout.cq_entries == 16);
        check(layout.sq_offset == PAGE && layout.cq_offset == 2 * PAGE && layout.ring_size == 3 * PAGE);
        /* 0: any size the daemon chose */
        check(ring_header_validate(&h, 3 * PAGE, 0, &layout, NULL) == 0);
        /* the smallest ring: one entry */
        h.sq_entries = 1;
        h.cq_entries = 2;
        check(ring_header_validate(&h, 3 * PAGE, 1, &layout, NULL) == 0);
        /* packed tightly right after the header */
        h = good_header();
        h.sq_offset = sizeof(struct zcusb_ring_header);
        h.cq_offset = h.sq_offset + 8 * sizeof(struct zcusb_sqe);
        h.ring_size = h.cq_offset + 16 * sizeof(struct zcusb_cqe);
        check(ring_header_validate(&h, h.ring_size, 8, &layout, NULL) == 0);
}

static void check_rejected(const struct zcusb_ring_header *h, uint64_t file_size, uint32_t want, const char *name) {
        const char *why = NULL;
        RingLayout layout;

        if (ring_header_validate(h, file_size, want, &layout, &why) != -EPROTO || !why) {
                fprintf(stderr, "header with %s was accepted\n", name);
                abort();
        }
}

static void test_validate_rejects(void) {
        struct zcusb_ring_header h;

#define REJECT(name, mutation)                                      \
        do {                                                        \
                h = good_header();                                  \
                mutation;                                           \
                check_rejected(&h, 3 * PAGE, 8, name);              \
        } while (0)

        REJECT("bad magic", h.magic = 0x12345678);
        REJECT("bad version", h.version = ZCUSB_RING_VERSION + 1);
        REJECT("version 0", h.version = 0);
        REJECT("small header_size", h.header_size = 64);
        REJECT("bad sqe_size", h.sqe_size = 32);
        REJECT("bad cqe_size", h.cqe_size = 64);
        REJECT("zero sq_entries", (h.sq_entries = 0, h.cq_entries = 0));
        REJECT("non-power-of-two sq_entries", (h.sq_entries = 6, h.cq_entries = 16));
        REJECT("too many sq_entries", (h.sq_entries = 8192, h.cq_entries = 16384));
        REJECT("sq_entries not as asked", (h.sq_entries = 4, h.cq_entries = 8));
        REJECT("cq_entries below sq_entries", h.cq_entries = 4);
        REJECT("non-power-of-two cq_entries", h.cq_entries = 24);
        REJECT("ring_size past the file", h.ring_size = 4 * PAGE);
        REJECT("ring_size below the header", (h.ring_size = 64, h.sq_offset = 0, h.cq_offset = 0));
        REJECT("misaligned sq_offset", h.sq_offset = PAGE + 4);
        REJECT("misaligned cq_offset", h.cq_offset = 2 * PAGE + 2);
        REJECT("sq past ring_size", h.sq_offset = 3 * PAGE - 64);
        REJECT("cq past ring_size", h.cq_offset = 3 * PAGE - 256);
        REJECT("sq offset near UINT32_MAX", h.sq_offset = UINT32_MAX - 7);
        REJECT("cq offset near UINT32_MAX", h.cq_offset = UINT32_MAX - 7);
        REJECT("sq over the header", h.sq_offset = 0);
        REJECT("cq over the header", h.cq_offset = 64);
        REJECT("sq and cq overlapping", h.cq_offset = PAGE + 256);
#undef REJECT

        /* the file is what bounds everything */
        h = good_header();
        check_rejected(&h, 2 * PAGE, 8, "a file smaller than ring_size");
}

static void test_attach_rejects_without_leaks(void) {
        unsigned fds_before = count_open_fds();
        struct zcusb_queue *q = NULL;
        const char *why = NULL;
        FakeDaemon d;

        fake_init(&d, 8, 0);

        /* bad magic in the shared header */
        d.h->magic = 0;
        check(fake_attach(&d, 8, &q, &why) == -EPROTO && !q && why);
        d.h->magic = ZCUSB_RING_MAGIC;

        /* an entry count other than the one asked for */
        why = NULL;
        check(fake_attach(&d, 4, &q, &why) == -EPROTO && !q && why);

        /* the daemon's indices contradict each other */
        d.h->sq_tail.value = 100;
        d.h->sq_head.value = 0;
        why = NULL;
        check(fake_attach(&d, 8, &q, &why) == -EPROTO && !q && why);
        d.h->sq_tail.value = 0;
        d.h->cq_tail.value = 17; /* more than cq_entries posted */
        why = NULL;
        check(fake_attach(&d, 8, &q, &why) == -EPROTO && !q && why);
        d.h->cq_tail.value = 0;

        /* a file too small to hold the header it claims: no SIGBUS, an error */
        check(ftruncate(d.ring_fd, 100) == 0);
        why = NULL;
        check(fake_attach(&d, 8, &q, &why) == -EPROTO && !q && why);

        /* not a file at all */
        check(queue_attach(-EBADF, dup(d.submit_fd), dup(d.complete_fd), 8, &q, &why) == -EBADF && !q);

        fake_done(&d);
        /* every path above closed what it was given */
        check(count_open_fds() == fds_before);
}

/* ---- submission ---- */

static void test_submit_until_full(void) {
        struct zcusb_sqe sqe, taken;
        struct zcusb_queue *q;
        FakeDaemon d;

        fake_init(&d, 4, 0);
        q = fake_attach_ok(&d);

        for (uint64_t i = 0; i < 4; i++) {
                sqe = sqe_for(i);
                check(zcusb_queue_submit(q, &sqe) == 0);
        }
        sqe = sqe_for(4);
        check(zcusb_queue_submit(q, &sqe) == -EAGAIN);
        check(zcusb_queue_submit_batch(q, &sqe, 1) == -EAGAIN);
        check(d.h->sq_tail.value == 4);

        /* zcusbd takes one: exactly one slot frees up */
        check(fake_take(&d, &taken));
        check(taken.user_data == 0 && taken.opcode == ZCUSB_OP_BULK && taken.endpoint == 0x81 && taken.length == 512);
        check(zcusb_queue_submit(q, &sqe) == 0);
        check(zcusb_queue_submit(q, &sqe) == -EAGAIN);

        /* a batch larger than the room queues what fits, in order */
        for (uint64_t i = 1; i <= 4; i++) {
                check(fake_take(&d, &taken));
                check(taken.user_data == i);
        }
        struct zcusb_sqe batch[6];
        for (unsigned i = 0; i < 6; i++)
                batch[i] = sqe_for(100 + i);
        check(zcusb_queue_submit_batch(q, batch, 6) == 4);
        check(zcusb_queue_submit_batch(q, batch, 6) == -EAGAIN);
        for (uint64_t i = 0; i < 4; i++) {
                check(fake_take(&d, &taken));
                check(taken.user_data == 100 + i);
        }
        check(!fake_take(&d, &taken));

        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

static void test_invalid_arguments(void) {
        struct zcusb_cqe cqe;
        struct zcusb_queue *q;
        FakeDaemon d;

        fake_init(&d, 2, 0);
        q = fake_attach_ok(&d);
        check(zcusb_queue_submit(q, NULL) == -EINVAL);
        check(zcusb_queue_submit(NULL, NULL) == -EINVAL);
        check(zcusb_queue_submit_batch(q, NULL, 1) == -EINVAL);
        check(zcusb_queue_submit_batch(q, NULL, 0) == 0);
        check(zcusb_queue_reap(q, NULL, 1) == -EINVAL);
        check(zcusb_queue_reap(q, NULL, 0) == 0);
        check(zcusb_queue_reap(NULL, &cqe, 1) == -EINVAL);
        check(zcusb_queue_wait(NULL, 0) == -EINVAL);
        check(zcusb_queue_get_fd(NULL) == -EINVAL);
        check(zcusb_queue_get_fd(q) >= 0);
        check(zcusb_queue_close(NULL) == 0);
        check(d.h->sq_tail.value == 0);
        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

/* Free-running indices cross UINT32_MAX: masks keep slots right, the
 * difference tail - head stays right. */
static void test_wraparound(void) {
        const uint32_t start = UINT32_MAX - 5;
        struct zcusb_cqe out[8];
        struct zcusb_sqe taken;
        struct zcusb_queue *q;
        uint64_t next_submit = 0, next_reap = 0;
        FakeDaemon d;

        fake_init(&d, 4, start);
        q = fake_attach_ok(&d);

        for (unsigned round = 0; round < 50; round++) {
                unsigned n = 1 + round % 4;

                for (unsigned i = 0; i < n; i++) {
                        struct zcusb_sqe sqe = sqe_for(next_submit++);
                        check(zcusb_queue_submit(q, &sqe) == 0);
                }
                for (unsigned i = 0; i < n; i++) {
                        check(fake_take(&d, &taken));
                        fake_complete(&d, taken.user_data, 0, taken.length, false);
                }
                check(zcusb_queue_reap(q, out, ELEMENTSOF(out)) == (int) n);
                for (unsigned i = 0; i < n; i++)
                        check(out[i].user_data == next_reap++ && out[i].actual_length == 512);
        }
        /* the indices really wrapped */
        check(d.h->sq_tail.value < start && d.h->sq_tail.value == (uint32_t) (start + next_submit));
        check(d.h->cq_head.value == (uint32_t) (start + next_reap));

        /* full and empty still tell apart right at the wrap */
        fake_done(&d);
        check(zcusb_queue_close(q) == 0);

        fake_init(&d, 4, UINT32_MAX - 1);
        q = fake_attach_ok(&d);
        for (uint64_t i = 0; i < 4; i++) {
                struct zcusb_sqe sqe = sqe_for(i);
                check(zcusb_queue_submit(q, &sqe) == 0);
        }
        struct zcusb_sqe sqe = sqe_for(99);
        check(zcusb_queue_submit(q, &sqe) == -EAGAIN);
        check(d.h->sq_tail.value == 2);
        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

/* The doorbell rings only when zcusbd asked for it, once per batch. */
static void test_need_wakeup(void) {
        struct zcusb_sqe batch[3] = { sqe_for(1), sqe_for(2), sqe_for(3) }, taken;
        struct zcusb_queue *q;
        FakeDaemon d;

        fake_init(&d, 8, 0);
        q = fake_attach_ok(&d);

        fake_set_flags(&d, 0); /* zcusbd busy: it rescans by itself */
        check(zcusb_queue_submit(q, &batch[0]) == 0);
        check(zcusb_queue_submit_batch(q, batch, 3) == 3);
        check(fake_kicks(&d) == 0);

        fake_set_flags(&d, ZCUSB_SQ_NEED_WAKEUP); /* zcusbd idle */
        check(zcusb_queue_submit(q, &batch[0]) == 0);
        check(fake_kicks(&d) == 1);
        check(zcusb_queue_submit_batch(q, batch, 3) == 3);
        check(fake_kicks(&d) == 1);
        /* a failed submission rings nothing */
        check(zcusb_queue_submit(q, &batch[0]) == -EAGAIN);
        check(fake_kicks(&d) == 0);

        while (fake_take(&d, &taken))
                ;
        fake_set_flags(&d, 0);
        check(zcusb_queue_submit(q, &batch[0]) == 0);
        check(fake_kicks(&d) == 0);

        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

static void test_reap_order(void) {
        struct zcusb_cqe out[8];
        struct zcusb_queue *q;
        FakeDaemon d;

        fake_init(&d, 4, 0);
        q = fake_attach_ok(&d);

        check(zcusb_queue_reap(q, out, 8) == 0);
        for (uint64_t i = 0; i < 5; i++)
                fake_complete(&d, 10 + i, i == 3 ? -EPIPE : 0, (uint32_t) (100 * i), false);

        check(zcusb_queue_reap(q, out, 2) == 2);
        check(out[0].user_data == 10 && out[1].user_data == 11 && out[1].actual_length == 100);
        check(d.h->cq_head.value == 2);
        check(zcusb_queue_reap(q, out, 8) == 3);
        check(out[0].user_data == 12 && out[1].user_data == 13 && out[2].user_data == 14);
        check(out[1].status == -EPIPE && out[2].status == 0 && out[2].actual_length == 400);
        check(d.h->cq_head.value == 5);
        check(zcusb_queue_reap(q, out, 8) == 0);

        /* max 0 takes nothing */
        fake_complete(&d, 20, 0, 0, false);
        check(zcusb_queue_reap(q, out, 0) == 0);
        check(zcusb_queue_reap(q, out, 1) == 1 && out[0].user_data == 20);

        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

static void test_wait(void) {
        struct zcusb_cqe out[4];
        struct zcusb_queue *q;
        struct timespec t0, t1;
        FakeDaemon d;

        fake_init(&d, 4, 0);
        q = fake_attach_ok(&d);

        check(zcusb_queue_wait(q, 0) == 0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        check(zcusb_queue_wait(q, 50) == 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        check((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 49);

        /* a completion with its doorbell: wait reports it and drains the doorbell */
        fake_complete(&d, 1, 0, 0, true);
        fake_complete(&d, 2, 0, 0, true);
        check(zcusb_queue_wait(q, -1) == 2);
        check(zcusb_queue_reap(q, out, 4) == 2);
        check(fd_readable(zcusb_queue_get_fd(q))); /* wait returned before sleeping: doorbell still pending */
        check(zcusb_queue_wait(q, 0) == 0);        /* ...and this drains it */
        check(!fd_readable(zcusb_queue_get_fd(q)));

        /* a doorbell without a completion (already reaped) is no completion */
        check(eventfd_write(d.complete_fd, 1) == 0);
        check(zcusb_queue_wait(q, 10) == 0);
        check(!fd_readable(zcusb_queue_get_fd(q)));

        /* a completion without a doorbell is still found */
        fake_complete(&d, 3, 0, 0, false);
        check(zcusb_queue_wait(q, 1000) == 1);
        check(zcusb_queue_reap(q, out, 4) == 1 && out[0].user_data == 3);

        /* no doorbells: waiting would sleep through completions */
        zcusb_queue_set_completion_wakeup(q, false);
        check(d.h->cq_flags.value == ZCUSB_CQ_NO_WAKEUP);
        check(zcusb_queue_wait(q, 0) == -EINVAL);
        zcusb_queue_set_completion_wakeup(q, true);
        check(d.h->cq_flags.value == 0);
        check(zcusb_queue_wait(q, 0) == 0);

        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

static void test_dead_and_broken(void) {
        struct zcusb_sqe sqe = sqe_for(1);
        struct zcusb_cqe out[4];
        struct zcusb_queue *q;
        FakeDaemon d;

        fake_init(&d, 4, 0);
        q = fake_attach_ok(&d);

        fake_set_flags(&d, ZCUSB_SQ_DEAD | ZCUSB_SQ_NEED_WAKEUP);
        check(zcusb_queue_submit(q, &sqe) == -ENODEV);
        check(fake_kicks(&d) == 0 && d.h->sq_tail.value == 0);
        fake_set_flags(&d, ZCUSB_SQ_BROKEN);
        check(zcusb_queue_submit(q, &sqe) == -EPROTO);
        fake_set_flags(&d, ZCUSB_SQ_BROKEN | ZCUSB_SQ_DEAD);
        check(zcusb_queue_submit(q, &sqe) == -EPROTO);

        /* a dead queue hands out what was completed first, then says dead */
        fake_set_flags(&d, ZCUSB_SQ_DEAD);
        fake_complete(&d, 7, -ENODEV, 0, false);
        check(zcusb_queue_wait(q, -1) == 1);
        check(zcusb_queue_reap(q, out, 4) == 1 && out[0].status == -ENODEV);
        check(zcusb_queue_wait(q, -1) == -ENODEV);
        fake_set_flags(&d, ZCUSB_SQ_BROKEN);
        check(zcusb_queue_wait(q, -1) == -EPROTO);

        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

/* zcusbd is trusted-ish: impossible indices are errors, never out-of-bounds
 * reads or endless loops. */
static void test_hostile_indices(void) {
        struct zcusb_sqe sqe = sqe_for(1);
        struct zcusb_cqe out[64];
        struct zcusb_queue *q;
        FakeDaemon d;

        fake_init(&d, 4, 0);
        q = fake_attach_ok(&d);

        d.h->sq_head.value = 3; /* took entries never written */
        check(zcusb_queue_submit(q, &sqe) == -EPROTO);
        d.h->sq_head.value = 0;
        check(zcusb_queue_submit(q, &sqe) == 0);

        d.h->cq_tail.value = 1000; /* posted more than the ring holds */
        check(zcusb_queue_reap(q, out, 64) == -EPROTO);
        check(zcusb_queue_wait(q, -1) == -EPROTO);
        check(d.h->cq_head.value == 0);

        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

/* A real second thread as zcusbd: many transfers through small rings, across
 * the index wrap, with doorbells both ways. Checks ordering end to end. */
typedef struct Worker {
        FakeDaemon *d;
        uint64_t count;
} Worker;

static void *daemon_thread(void *userdata) {
        Worker *w = userdata;
        FakeDaemon *d = w->d;
        uint64_t done = 0;

        while (done < w->count) {
                struct zcusb_sqe sqe;
                bool took = false;

                /* Take while completion slots are certain to be free, as zcusbd does. */
                while (d->cq_tail - __atomic_load_n(&d->h->cq_head.value, __ATOMIC_ACQUIRE) < d->cq_entries &&
                       fake_take(d, &sqe)) {
                        fake_complete(d, sqe.user_data, 0, sqe.length, false);
                        done++;
                        took = true;
                }
                if (took) {
                        check(eventfd_write(d->complete_fd, 1) == 0);
                        continue;
                }
                /* Idle: ask for a doorbell, then look once more (the barrier pairs with the client's). */
                __atomic_fetch_or(&d->h->sq_flags.value, ZCUSB_SQ_NEED_WAKEUP, __ATOMIC_RELEASE);
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                if (__atomic_load_n(&d->h->sq_tail.value, __ATOMIC_ACQUIRE) == d->sq_head) {
                        struct pollfd p = { .fd = d->submit_fd, .events = POLLIN };
                        (void) poll(&p, 1, 100);
                        (void) fake_kicks(d);
                }
                __atomic_fetch_and(&d->h->sq_flags.value, ~ZCUSB_SQ_NEED_WAKEUP, __ATOMIC_RELEASE);
        }
        return NULL;
}

static void test_threaded_stream(void) {
        const uint64_t total = 200000;
        struct zcusb_queue *q;
        uint64_t submitted = 0, reaped = 0;
        Worker w;
        pthread_t t;
        FakeDaemon d;

        fake_init(&d, 8, UINT32_MAX - 1000);
        q = fake_attach_ok(&d);
        w = (Worker) { .d = &d, .count = total };
        check(pthread_create(&t, NULL, daemon_thread, &w) == 0);

        while (reaped < total) {
                struct zcusb_sqe batch[5];
                struct zcusb_cqe out[16];
                unsigned n = 0;
                int r;

                while (n < ELEMENTSOF(batch) && submitted + n < total)
                        batch[n] = sqe_for(submitted + n), n++;
                if (n > 0) {
                        r = zcusb_queue_submit_batch(q, batch, n);
                        check(r > 0 || r == -EAGAIN);
                        if (r > 0)
                                submitted += (unsigned) r;
                }
                r = zcusb_queue_wait(q, 1000);
                check(r > 0); /* a 1 s stall means a lost doorbell */
                r = zcusb_queue_reap(q, out, ELEMENTSOF(out));
                check(r >= 0);
                for (int i = 0; i < r; i++)
                        check(out[i].user_data == reaped++ && out[i].status == 0);
        }
        check(pthread_join(t, NULL) == 0);
        check(submitted == total);
        check(zcusb_queue_close(q) == 0);
        fake_done(&d);
}

static void test_strerror(void) {
        check(strstr(zcusb_strerror(-EDQUOT), "quota"));
        check(strstr(zcusb_strerror(EDQUOT), "quota"));
        check(strstr(zcusb_strerror(-EACCES), "Access denied"));
        check(strstr(zcusb_strerror(-ENODEV), "device"));
        check(strstr(zcusb_strerror(-EBUSY), "Busy"));
        check(strstr(zcusb_strerror(-EINVAL), "Invalid"));
        check(strstr(zcusb_strerror(-EPIPE), "Stalled"));
        check(strstr(zcusb_strerror(-EHOSTUNREACH), "zcusbd"));
        check(zcusb_strerror(-ENOMEM)); /* falls back to strerror() */
        check(zcusb_strerror(INT_MIN));
        check(zcusb_strerror(0));
        check_streq(zcusb_last_error_message(NULL), "");
}

static void test_control_setup(void) {
        uint8_t setup[ZCUSB_CONTROL_SETUP_SIZE];

        zcusb_fill_control_setup(setup, 0xc0, 0x5c, 0x1234, 0xabcd, 0x0102);
        check(setup[0] == 0xc0 && setup[1] == 0x5c);
        check(setup[2] == 0x34 && setup[3] == 0x12); /* little endian on the wire */
        check(setup[4] == 0xcd && setup[5] == 0xab);
        check(setup[6] == 0x02 && setup[7] == 0x01);
}

int main(void) {
        RUN(test_validate_good);
        RUN(test_validate_rejects);
        RUN(test_attach_rejects_without_leaks);
        RUN(test_submit_until_full);
        RUN(test_invalid_arguments);
        RUN(test_wraparound);
        RUN(test_need_wakeup);
        RUN(test_reap_order);
        RUN(test_wait);
        RUN(test_dead_and_broken);
        RUN(test_hostile_indices);
        RUN(test_threaded_stream);
        RUN(test_strerror);
        RUN(test_control_setup);
        return 0;
}
