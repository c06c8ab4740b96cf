/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Synchronous transfers for simple programs: one transfer at a time on a
 * one-entry queue the claim opens on first use, and for control transfers a
 * claim-owned buffer that carries the setup packet and the data stage.
 */
#include <limits.h>
#include <time.h>

#include "zcusb-internal.h"

/* zcusbd enforces a transfer's own timeout; ours only guards against a zcusbd
 * that never answers, so it allows some slack on top. */
#define SYNC_GUARD_SLACK_MS 2000u
/* zcusbd rings no doorbell when it takes an entry: while the ring is full,
 * look again this often. */
#define SYNC_RING_FULL_POLL_NS (1000 * 1000)

static uint64_t now_ms(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static const char *opcode_name(uint8_t opcode) {
        switch (opcode) {
        case ZCUSB_OP_BULK:
                return "bulk";
        case ZCUSB_OP_INTERRUPT:
                return "interrupt";
        case ZCUSB_OP_CONTROL:
                return "control";
        default:
                return "USB";
        }
}

/* Submit, waiting while the ring is full. The queue's last transfer was
 * reaped, so a zcusbd that keeps zcusb-ring.h's ordering has freed its slot
 * already; a consumer that publishes sq_head after the completion frees it a
 * moment later. Backpressure, then, not an error: -ETIMEDOUT only when the
 * slot stays taken for the guard's slack. */
static int sync_submit(struct zcusb_queue *q, const struct zcusb_sqe *sqe) {
        uint64_t deadline = now_ms() + SYNC_GUARD_SLACK_MS;
        int r;

        while ((r = zcusb_queue_submit(q, sqe)) == -EAGAIN) {
                if (now_ms() >= deadline)
                        return -ETIMEDOUT;
                (void) nanosleep(&(struct timespec) { .tv_nsec = SYNC_RING_FULL_POLL_NS }, NULL);
        }
        return r;
}

/* Submit SQE on the claim's synchronous queue and wait for its completion. */
static int sync_run(struct zcusb_claim *claim, struct zcusb_sqe *sqe, uint32_t *ret_actual) {
        struct zcusb *ctx = claim->ctx;
        uint64_t deadline = 0;
        struct zcusb_queue *q;
        int r;

        *ret_actual = 0;
        r = claim_check_alive(claim);
        if (r < 0)
                return r;
        if (!claim->sync_queue) {
                r = zcusb_queue_open(claim, 1, &claim->sync_queue);
                if (r < 0)
                        return r;
        }
        q = claim->sync_queue;

        sqe->user_data = ++claim->sync_sequence;
        r = sync_submit(q, sqe);
        if (r == -ETIMEDOUT) {
                /* The next call opens a fresh queue. */
                (void) zcusb_queue_close(q);
                return ctx_errorf(ctx, r, "zcusbd did not take the %s transfer within %u ms", opcode_name(sqe->opcode),
                                  SYNC_GUARD_SLACK_MS);
        }
        if (r < 0)
                return ctx_errorf(ctx, r, "submitting a %s transfer: %s", opcode_name(sqe->opcode),
                                  zcusb_strerror(r));

        if (sqe->timeout_ms > 0)
                deadline = now_ms() + sqe->timeout_ms + SYNC_GUARD_SLACK_MS;
        for (;;) {
                struct zcusb_cqe cqe;
                int wait_ms = -1;

                if (deadline > 0) {
                        uint64_t now = now_ms();
                        wait_ms = now >= deadline ? 0 : (int) (deadline - now);
                }
                r = zcusb_queue_wait(q, wait_ms);
                if (r == -EINTR)
                        continue;
                if (r == 0) {
                        /* CloseQueue cancels the transfer and returns once it
                         * is gone, so the caller's buffer is free again. The
                         * next call opens a fresh queue. */
                        (void) zcusb_queue_close(q);
                        return ctx_errorf(ctx, -ETIMEDOUT, "zcusbd did not complete the %s transfer within "
                                          "%u ms; it was cancelled", opcode_name(sqe->opcode),
                                          sqe->timeout_ms + SYNC_GUARD_SLACK_MS);
                }
                if (r < 0) {
                        (void) zcusb_queue_close(q);
                        return ctx_errorf(ctx, r, "waiting for a %s transfer: %s", opcode_name(sqe->opcode),
                                          zcusb_strerror(r));
                }

                r = zcusb_queue_reap(q, &cqe, 1);
                if (r < 0) {
                        (void) zcusb_queue_close(q);
                        return ctx_errorf(ctx, r, "reaping a %s transfer: %s", opcode_name(sqe->opcode),
                                          zcusb_strerror(r));
                }
                if (r == 0 || cqe.user_data != sqe->user_data)
                        continue; /* not ours: only a confused zcusbd posts those */

                *ret_actual = cqe.actual_length;
                if (cqe.status > 0)
                        cqe.status = -EPROTO; /* statuses are 0 or -errno */
                if (cqe.status < 0)
                        return ctx_errorf(ctx, cqe.status, "%s transfer on endpoint 0x%02x failed after %u bytes: %s",
                                          opcode_name(sqe->opcode), sqe->endpoint, cqe.actual_length,
                                          zcusb_strerror(cqe.status));
                return 0;
        }
}

static int sync_data_transfer(struct zcusb_claim *claim, enum zcusb_opcode opcode, uint8_t endpoint,
                              struct zcusb_buffer *buffer, uint64_t offset, uint32_t length, unsigned timeout_ms,
                              uint32_t *actual) {
        struct zcusb_sqe sqe;
        uint32_t got = 0;
        int r;

        if (actual)
                *actual = 0;
        if (!claim || !buffer)
                return -EINVAL;
        if (buffer->claim != claim)
                return ctx_errorf(claim->ctx, -EINVAL, "the buffer belongs to another claim");
        if (offset > buffer->size || length > buffer->size - offset)
                return ctx_errorf(claim->ctx, -EINVAL, "%u bytes at offset %llu do not fit the %zu-byte buffer",
                                  length, (unsigned long long) offset, buffer->size);

        zcusb_prep_transfer(&sqe, opcode, endpoint, buffer->id, offset, length, timeout_ms, 0);
        r = sync_run(claim, &sqe, &got);
        if (actual)
                *actual = got;
        return r;
}

int zcusb_bulk_transfer(struct zcusb_claim *claim, uint8_t endpoint, struct zcusb_buffer *buffer, uint64_t offset,
                        uint32_t length, unsigned timeout_ms, uint32_t *actual) {
        return sync_data_transfer(claim, ZCUSB_OP_BULK, endpoint, buffer, offset, length, timeout_ms, actual);
}

int zcusb_interrupt_transfer(struct zcusb_claim *claim, uint8_t endpoint, struct zcusb_buffer *buffer,
                             uint64_t offset, uint32_t length, unsigned timeout_ms, uint32_t *actual) {
        return sync_data_transfer(claim, ZCUSB_OP_INTERRUPT, endpoint, buffer, offset, length, timeout_ms, actual);
}

int zcusb_control_transfer(struct zcusb_claim *claim, uint8_t request_type, uint8_t request, uint16_t value,
                           uint16_t index, void *data, uint16_t length, unsigned timeout_ms, uint32_t *actual) {
        size_t need = ZCUSB_CONTROL_SETUP_SIZE + (size_t) length;
        bool in = request_type & ZCUSB_ENDPOINT_DIR_IN;
        struct zcusb_sqe sqe;
        uint32_t got = 0;
        uint8_t *region;
        int r;

        if (actual)
                *actual = 0;
        if (!claim || (length > 0 && !data))
                return -EINVAL;

        if (claim->control_buffer && claim->control_buffer->size < need) {
                r = zcusb_buffer_free(claim->control_buffer);
                if (r == -EBUSY)
                        return r;
        }
        if (!claim->control_buffer) {
                r = zcusb_buffer_alloc(claim, need, &claim->control_buffer);
                if (r < 0)
                        return r;
        }

        region = claim->control_buffer->data;
        zcusb_fill_control_setup(region, request_type, request, value, index, length);
        if (!in && length > 0)
                memcpy(region + ZCUSB_CONTROL_SETUP_SIZE, data, length);

        zcusb_prep_transfer(&sqe, ZCUSB_OP_CONTROL, 0, claim->control_buffer->id, 0, (uint32_t) need, timeout_ms, 0);
        r = sync_run(claim, &sqe, &got);
        /* Never copy out more than the caller's buffer holds, whatever zcusbd says. */
        if (got > length)
                got = length;
        if (in && got > 0)
                memcpy(data, region + ZCUSB_CONTROL_SETUP_SIZE, got);
        if (actual)
                *actual = got;
        return r;
}
