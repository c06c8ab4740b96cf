/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A claim's buffers (memfds zcusbd allocates and charges, mapped here) and
 * the D-Bus half of its queues (OpenQueue/CloseQueue; the ring itself is in
 * ring.c).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "zcusb-internal.h"

void buffer_unmap_free(struct zcusb_buffer *b) {
        if (b->data)
                (void) munmap(b->data, b->size);
        free(b);
}

/* ---- buffers ---- */

/* Take a received fd out of its message: the message closes its copy. */
static int dup_received_fd(int fd) {
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        return copy < 0 ? -errno : copy;
}

/* Map a buffer memfd of SIZE bytes, after checking it really is that large
 * and sealed against shrinking: either would otherwise SIGBUS us on access. */
static int buffer_map(int fd, uint64_t size, void **ret, const char **ret_why) {
        struct stat st;
        int seals;
        void *p;

        if (size == 0 || size > SIZE_MAX) {
                *ret_why = "zcusbd returned an impossible buffer size";
                return -EPROTO;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((uint64_t) st.st_size < size) {
                *ret_why = "the buffer memfd is smaller than zcusbd says";
                return -EPROTO;
        }
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
                *ret_why = "the buffer memfd is not sealed against shrinking";
                return -EPROTO;
        }
        p = mmap(NULL, (size_t) size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        *ret = p;
        return 0;
}

int zcusb_buffer_alloc(struct zcusb_claim *claim, size_t size, struct zcusb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct zcusb_buffer *b = NULL;
        const char *why = NULL;
        uint64_t got_size;
        uint32_t id;
        void *data = NULL;
        int received_fd, r;

        if (!claim || !ret || size == 0)
                return -EINVAL;
        r = claim_call(claim, ON_ENDED_FAIL, "AllocBuffer", "allocating a buffer", &reply, "t", (uint64_t) size);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "uht", &id, &received_fd, &got_size);
        if (r < 0)
                return ctx_malformed(claim->ctx, r, "allocating a buffer");

        fd = dup_received_fd(received_fd);
        if (fd < 0)
                r = fd;
        else if (got_size < size) {
                why = "zcusbd returned a smaller buffer than asked for";
                r = -EPROTO;
        } else
                r = buffer_map(fd, got_size, &data, &why);
        if (r >= 0) {
                b = calloc(1, sizeof(*b));
                if (!b) {
                        (void) munmap(data, (size_t) got_size);
                        r = -ENOMEM;
                }
        }
        if (r < 0) {
                /* Hand it back so it stops counting against our quota. */
                (void) claim_call(claim, ON_ENDED_CALL, "FreeBuffer", NULL, NULL, "u", id);
                return ctx_errorf(claim->ctx, r, "allocating a buffer: %s", why ?: zcusb_strerror(r));
        }

        /* The mapping keeps the memory; zcusbd holds its own fd. */
        *b = (struct zcusb_buffer) {
                .claim = claim,
                .id = id,
                .data = data,
                .size = (size_t) got_size,
        };
        TAILQ_INSERT_TAIL(&claim->buffers, b, link);
        *ret = b;
        return 0;
}

void *zcusb_buffer_data(const struct zcusb_buffer *b) {
        return b ? b->data : NULL;
}

size_t zcusb_buffer_size(const struct zcusb_buffer *b) {
        return b ? b->size : 0;
}

uint32_t zcusb_buffer_id(const struct zcusb_buffer *b) {
        return b ? b->id : 0;
}

int zcusb_buffer_free(struct zcusb_buffer *b) {
        struct zcusb_claim *claim;
        int r;

        if (!b)
                return 0;
        claim = b->claim;
        r = claim_call(claim, ON_ENDED_SKIP, "FreeBuffer", "freeing a buffer", NULL, "u", b->id);
        if (r == -EBUSY)
                return r; /* a transfer still uses it: keep our mapping */
        if (claim->control_buffer == b)
                claim->control_buffer = NULL;
        TAILQ_REMOVE(&claim->buffers, b, link);
        buffer_unmap_free(b);
        return r;
}

/* ---- queues (the D-Bus half; the ring itself is in ring.c) ---- */

int zcusb_queue_open(struct zcusb_claim *claim, unsigned entries, struct zcusb_queue **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_close_ int ring_fd = -EBADF, submit_fd = -EBADF, complete_fd = -EBADF;
        struct zcusb_queue *q = NULL;
        int received[3], r;
        const char *why = NULL;
        uint32_t id;

        if (!claim || !ret)
                return -EINVAL;
        if (entries < ZCUSB_RING_MIN_ENTRIES || entries > ZCUSB_RING_MAX_ENTRIES || (entries & (entries - 1)))
                return ctx_errorf(claim->ctx, -EINVAL, "queue entries must be a power of two in 1..%u, not %u",
                                  ZCUSB_RING_MAX_ENTRIES, entries);
        r = claim_call(claim, ON_ENDED_FAIL, "OpenQueue", "opening a queue", &reply, "u", (uint32_t) entries);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "uhhh", &id, &received[0], &received[1], &received[2]);
        if (r < 0)
                return ctx_malformed(claim->ctx, r, "opening a queue");

        r = ring_fd = dup_received_fd(received[0]);
        if (r >= 0)
                r = submit_fd = dup_received_fd(received[1]);
        if (r >= 0)
                r = complete_fd = dup_received_fd(received[2]);
        if (r >= 0)
                r = queue_attach(TAKE_FD(ring_fd), TAKE_FD(submit_fd), TAKE_FD(complete_fd), entries, &q, &why);
        if (r < 0) {
                (void) claim_call(claim, ON_ENDED_CALL, "CloseQueue", NULL, NULL, "u", id);
                return ctx_errorf(claim->ctx, r, "opening a queue: %s", why ?: zcusb_strerror(r));
        }

        q->claim = claim;
        q->id = id;
        TAILQ_INSERT_TAIL(&claim->queues, q, link);
        *ret = q;
        return 0;
}

int zcusb_queue_close(struct zcusb_queue *q) {
        struct zcusb_claim *claim;
        int r;

        if (!q)
                return 0;
        claim = q->claim;
        if (!claim) { /* attached without a daemon (unit tests) */
                queue_free(q);
                return 0;
        }
        /* Synchronous: when it returns no transfer of the queue is in
         * flight, so unmapping cannot race zcusbd writing completions. */
        r = claim_call(claim, ON_ENDED_SKIP, "CloseQueue", "closing a queue", NULL, "u", q->id);
        if (claim->sync_queue == q)
                claim->sync_queue = NULL;
        TAILQ_REMOVE(&claim->queues, q, link);
        queue_free(q);
        return r;
}
