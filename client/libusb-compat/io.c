/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Asynchronous transfers: a libusb_transfer becomes one zcusb_sqe on the
 * queue of the claim that owns its endpoint. Its data is a region of a zcusb
 * buffer: the program's own when it came from libusb_dev_mem_alloc() (zero
 * copy), else a claim's staging memory it is copied through. Completions are
 * reaped by whoever handles events and run from there, as in libusb.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compat-internal.h"

#define CANCEL_TAG (UINT64_C(1) << 63) /* user_data of our CANCEL entries */
#define SETUP_SIZE LIBUSB_CONTROL_SETUP_SIZE

struct libusb_transfer *LIBUSB_CALL libusb_alloc_transfer(int iso_packets) {
        CompatTransfer *ct;

        if (iso_packets < 0)
                return NULL;
        ct = calloc(1, sizeof(*ct) + (size_t) iso_packets * sizeof(struct libusb_iso_packet_descriptor));
        if (!ct)
                return NULL;
        ct->pub.num_iso_packets = iso_packets;
        return &ct->pub;
}

void LIBUSB_CALL libusb_free_transfer(struct libusb_transfer *t) {
        CompatTransfer *ct;

        if (!t)
                return;
        ct = compat_transfer(t);
        if (ct->state != TRANSFER_IDLE) {
                /* libusb's rule: never free what is in flight. Leaking beats a use after free. */
                compat_log(NULL, LIBUSB_LOG_LEVEL_ERROR, __func__,
                           "transfer %p is still in flight: not freed", (void *) t);
                return;
        }
        if ((t->flags & LIBUSB_TRANSFER_FREE_BUFFER) && t->buffer)
                free(t->buffer);
        free(ct);
}

void LIBUSB_CALL libusb_transfer_set_stream_id(struct libusb_transfer *t, uint32_t stream_id) {
        (void) t, (void) stream_id; /* no streams through zcusbd (libusb_alloc_streams() says so) */
}

uint32_t LIBUSB_CALL libusb_transfer_get_stream_id(struct libusb_transfer *t) {
        (void) t;
        return 0;
}

static size_t iso_data_size(const struct libusb_transfer *t) {
        size_t n = 0;
        for (int i = 0; i < t->num_iso_packets; i++)
                n += t->iso_packet_desc[i].length;
        return n;
}

/* Finish CT with a libusb status decided here (not by a completion). */
static void complete_locally(struct libusb_context *ctx, CompatTransfer *ct, enum libusb_transfer_status status,
                             uint32_t actual) {
        ct->status_override = (int) status + 1;
        ct->actual = actual;
        ct->state = TRANSFER_DONE;
        TAILQ_INSERT_TAIL(&ctx->done, ct, link);
}

static void stage_release(CompatTransfer *ct) {
        if (ct->staged && ct->stage && ct->claim)
                staging_release(ct->claim, ct->stage, ct->stage_size);
        ct->stage = NULL;
        ct->staged = false;
}

static void fill_sqe(CompatClaim *c, CompatTransfer *ct, unsigned slot, struct zcusb_sqe *sqe) {
        struct libusb_transfer *t = &ct->pub;
        enum zcusb_opcode op;

        switch (t->type) {
        case LIBUSB_TRANSFER_TYPE_CONTROL:     op = ZCUSB_OP_CONTROL; break;
        case LIBUSB_TRANSFER_TYPE_ISOCHRONOUS: op = ZCUSB_OP_ISO; break;
        case LIBUSB_TRANSFER_TYPE_INTERRUPT:   op = ZCUSB_OP_INTERRUPT; break;
        default:                               op = ZCUSB_OP_BULK; break;
        }
        c->generation[slot]++;
        zcusb_prep_transfer(sqe, op, op == ZCUSB_OP_CONTROL ? 0 : t->endpoint, ct->buffer_id, ct->offset,
                            ct->zc_length, t->timeout, (uint64_t) c->generation[slot] << 16 | slot);
        if (op == ZCUSB_OP_ISO)
                sqe->iso_packets = (uint32_t) t->num_iso_packets;
        if (op == ZCUSB_OP_BULK && (t->endpoint & LIBUSB_ENDPOINT_IN) && (t->flags & LIBUSB_TRANSFER_SHORT_NOT_OK))
                sqe->flags |= ZCUSB_SQE_SHORT_NOT_OK;
        if (op == ZCUSB_OP_BULK && !(t->endpoint & LIBUSB_ENDPOINT_IN) &&
            (t->flags & LIBUSB_TRANSFER_ADD_ZERO_PACKET))
                sqe->flags |= ZCUSB_SQE_ZERO_PACKET;
}

/* Inside the event handler's completion callbacks, submissions wait and go to
 * the ring as one batch after them (one index update, at most one doorbell):
 * a streaming program resubmits from every callback. */
static bool deferring(struct libusb_context *ctx) {
        return ctx->completing && pthread_equal(ctx->completing_thread, pthread_self());
}

/* Put CT on the ring, or on the claim's waiting list: behind transfers already
 * waiting or cancels pending, while deferring, or when our share of the ring is used. */
static int push(CompatClaim *c, CompatTransfer *ct) {
        struct libusb_context *ctx = c->handle->dev->ctx;
        struct zcusb_sqe sqe;
        unsigned slot;
        int r;

        if (!TAILQ_EMPTY(&c->waiting) || c->cancels_pending > 0 || deferring(ctx) ||
            c->in_flight >= COMPAT_MAX_IN_FLIGHT || c->ring_used >= COMPAT_QUEUE_ENTRIES) {
                ct->state = TRANSFER_WAITING;
                TAILQ_INSERT_TAIL(&c->waiting, ct, link);
                return 0;
        }
        for (slot = 0; slot < COMPAT_MAX_IN_FLIGHT; slot++)
                if (!c->slots[slot])
                        break;
        fill_sqe(c, ct, slot, &sqe);
        r = zcusb_queue_submit(c->queue, &sqe);
        if (r == -EAGAIN) { /* zcusbd has not taken earlier entries yet */
                ct->state = TRANSFER_WAITING;
                TAILQ_INSERT_TAIL(&c->waiting, ct, link);
                return 0;
        }
        if (r < 0)
                return r;
        ct->slot = (uint16_t) slot;
        c->slots[slot] = ct;
        c->in_flight++;
        c->ring_used++;
        ct->state = TRANSFER_IN_FLIGHT;
        return 0;
}

/* The CANCEL entry of CT, in flight on C; -EAGAIN when the ring has no slot. */
static int send_cancel(CompatClaim *c, CompatTransfer *ct) {
        uint64_t ud = (uint64_t) c->generation[ct->slot] << 16 | ct->slot;
        struct zcusb_sqe sqe;
        int r;

        zcusb_prep_transfer(&sqe, ZCUSB_OP_CANCEL, 0, 0, 0, 0, 0, CANCEL_TAG | ud);
        sqe.cancel_user_data = ud;
        r = zcusb_queue_submit(c->queue, &sqe);
        if (r < 0)
                return r;
        c->ring_used++;
        return 0;
}

static void cancel_pending_clear(CompatClaim *c, CompatTransfer *ct) {
        if (!ct->cancel_pending)
                return;
        ct->cancel_pending = false;
        c->cancels_pending--;
}

/* The cancels that found the ring full, while it has room. */
static void send_pending_cancels(CompatClaim *c) {
        for (unsigned slot = 0; slot < COMPAT_MAX_IN_FLIGHT && c->cancels_pending > 0; slot++) {
                CompatTransfer *ct = c->slots[slot];
                int r;

                if (!ct || !ct->cancel_pending)
                        continue;
                r = send_cancel(c, ct);
                if (r == -EAGAIN)
                        return;
                cancel_pending_clear(c, ct);
                /* A dead queue: the claim's end flushes the transfer. */
                if (r < 0)
                        log_warn(c->handle->dev->ctx, "cannot cancel transfer %p: %s", (void *) &ct->pub,
                                 zcusb_strerror(r));
        }
}

bool io_retry_cancels(struct libusb_context *ctx) {
        bool pending = false;
        CompatClaim *c;

        LIST_FOREACH(c, &ctx->claims, link)
                if (c->cancels_pending > 0) {
                        io_submit_waiting(c);
                        pending = pending || c->cancels_pending > 0;
                }
        return pending;
}

#define BATCH 32

void io_submit_waiting(CompatClaim *c) {
        struct libusb_context *ctx = c->handle->dev->ctx;
        struct zcusb_sqe sqes[BATCH];
        CompatTransfer *batch[BATCH], *ct;
        unsigned slots[BATCH], n, k, slot = 0;
        int r;

        /* Cancels first: they end transfers, and no transfer passes them. */
        if (c->cancels_pending > 0) {
                send_pending_cancels(c);
                if (c->cancels_pending > 0)
                        return;
        }
        for (;;) {
                n = 0;
                TAILQ_FOREACH(ct, &c->waiting, link) {
                        if (n == BATCH || c->in_flight + n >= COMPAT_MAX_IN_FLIGHT ||
                            c->ring_used + n >= COMPAT_QUEUE_ENTRIES)
                                break;
                        while (c->slots[slot]) /* one is free: in_flight + n < the slots */
                                slot = (slot + 1) % COMPAT_MAX_IN_FLIGHT;
                        c->slots[slot] = ct; /* taken for this batch; undone if not queued */
                        slots[n] = slot;
                        batch[n] = ct;
                        fill_sqe(c, ct, slot, &sqes[n]);
                        n++;
                }
                if (n == 0)
                        return;
                r = zcusb_queue_submit_batch(c->queue, sqes, n);
                k = r > 0 ? (unsigned) r : 0;
                for (unsigned i = 0; i < n; i++) {
                        ct = batch[i];
                        if (i < k) {
                                TAILQ_REMOVE(&c->waiting, ct, link);
                                ct->slot = (uint16_t) slots[i];
                                ct->state = TRANSFER_IN_FLIGHT;
                                c->in_flight++;
                                c->ring_used++;
                                continue;
                        }
                        c->slots[slots[i]] = NULL;
                        if (r < 0 && r != -EAGAIN) {
                                TAILQ_REMOVE(&c->waiting, ct, link);
                                stage_release(ct);
                                complete_locally(ctx, ct, r == -ENODEV ? LIBUSB_TRANSFER_NO_DEVICE :
                                                                         LIBUSB_TRANSFER_ERROR, 0);
                        }
                }
                if (k < n && (r >= 0 || r == -EAGAIN))
                        return; /* the ring is full: the next reap tries again */
        }
}

/* A standard GET_DESCRIPTOR to the device: answered from zcusbd's copies
 * (Descriptors, GetDescriptor), with or without a claim, without device traffic. */
static bool is_descriptor_request(const uint8_t *setup) {
        return setup[0] == (LIBUSB_ENDPOINT_IN | LIBUSB_REQUEST_TYPE_STANDARD | LIBUSB_RECIPIENT_DEVICE) &&
               setup[1] == LIBUSB_REQUEST_GET_DESCRIPTOR;
}

static int submit_descriptor_request(struct libusb_context *ctx, CompatTransfer *ct) {
        struct libusb_transfer *t = &ct->pub;
        const uint8_t *s = t->buffer;
        uint16_t value = (uint16_t) (s[2] | s[3] << 8), index = (uint16_t) (s[4] | s[5] << 8);
        uint16_t wlength = (uint16_t) (s[6] | s[7] << 8);
        int n;

        n = descriptor_request(t->dev_handle->dev, (uint8_t) (value >> 8), (uint8_t) value, index, t->buffer + SETUP_SIZE,
                               wlength);
        pthread_mutex_lock(&ctx->lock);
        ct->claim = NULL;
        if (n >= 0)
                complete_locally(ctx, ct, LIBUSB_TRANSFER_COMPLETED, (uint32_t) n);
        else
                complete_locally(ctx, ct,
                                 n == LIBUSB_ERROR_NO_DEVICE ? LIBUSB_TRANSFER_NO_DEVICE :
                                 n == LIBUSB_ERROR_PIPE || n == LIBUSB_ERROR_NOT_SUPPORTED ? LIBUSB_TRANSFER_STALL :
                                 LIBUSB_TRANSFER_ERROR,
                                 0);
        pthread_mutex_unlock(&ctx->lock);
        ctx_wake(ctx);
        return LIBUSB_SUCCESS;
}

int LIBUSB_CALL libusb_submit_transfer(struct libusb_transfer *t) {
        CompatTransfer *ct = compat_transfer(t);
        struct libusb_device_handle *handle = t->dev_handle;
        struct libusb_context *ctx;
        size_t length, data_size;
        uint8_t endpoint = t->endpoint;
        const DevMem *m;
        CompatClaim *c;
        int r;

        if (!handle || t->length < 0 || (t->length > 0 && !t->buffer))
                return LIBUSB_ERROR_INVALID_PARAM;
        ctx = handle->dev->ctx;
        if (ct->state != TRANSFER_IDLE)
                return LIBUSB_ERROR_BUSY;
        length = (size_t) t->length;
        ct->result = 0;
        ct->actual = 0;
        ct->status_override = 0;
        ct->cancelling = false;
        ct->cancel_pending = false;

        switch (t->type) {
        case LIBUSB_TRANSFER_TYPE_CONTROL: {
                uint16_t wlength;

                if (length < SETUP_SIZE)
                        return LIBUSB_ERROR_INVALID_PARAM;
                wlength = (uint16_t) (t->buffer[6] | t->buffer[7] << 8);
                if (wlength > length - SETUP_SIZE)
                        return LIBUSB_ERROR_INVALID_PARAM;
                length = SETUP_SIZE + wlength;
                endpoint = 0;
                if (is_descriptor_request(t->buffer)) {
                        ct->state = TRANSFER_DONE; /* set before the lock: a cancel finds nothing */
                        return submit_descriptor_request(ctx, ct);
                }
                break;
        }
        case LIBUSB_TRANSFER_TYPE_ISOCHRONOUS:
                if (t->num_iso_packets <= 0 || t->num_iso_packets > ZCUSB_ISO_MAX_PACKETS)
                        return LIBUSB_ERROR_INVALID_PARAM;
                if (iso_data_size(t) > length)
                        return LIBUSB_ERROR_INVALID_PARAM;
                break;
        case LIBUSB_TRANSFER_TYPE_BULK:
        case LIBUSB_TRANSFER_TYPE_INTERRUPT:
                break;
        case LIBUSB_TRANSFER_TYPE_BULK_STREAM:
                return compat_not_supported(ctx, __func__, "zcusbd has no USB 3 bulk streams");
        default:
                return LIBUSB_ERROR_INVALID_PARAM;
        }
        if (length > UINT32_MAX / 2)
                return LIBUSB_ERROR_INVALID_PARAM;

        pthread_mutex_lock(&ctx->lock);
        c = handle_claim_for_endpoint(handle, endpoint);
        if (!c) {
                pthread_mutex_unlock(&ctx->lock);
                if (endpoint == 0)
                        return compat_not_supported(ctx, __func__,
                                                    "zcusbd passes control requests (other than GET_DESCRIPTOR) "
                                                    "only for a claimed interface: claim one first");
                log_err(ctx, "endpoint %#x is not in a claimed interface's current alternate setting", endpoint);
                return LIBUSB_ERROR_NOT_FOUND;
        }
        if (c->dead) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_NO_DEVICE;
        }

        ct->claim = c;
        m = t->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS ? NULL : dev_mem_find(handle, c, t->buffer, length);
        if (m) {
                ct->staged = false;
                ct->buffer_id = m->arena->buffer_id;
                ct->offset = (uint64_t) (t->buffer - m->arena->data);
                ct->zc_length = (uint32_t) length;
        } else {
                data_size = length;
                if (t->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS)
                        data_size = (size_t) t->num_iso_packets * sizeof(struct zcusb_iso_packet) + iso_data_size(t);
                r = staging_alloc(c, data_size, &ct->stage, &ct->buffer_id, &ct->offset);
                if (r < 0) {
                        pthread_mutex_unlock(&ctx->lock);
                        return compat_error(r);
                }
                ct->staged = true;
                ct->stage_size = data_size;
                ct->zc_length = (uint32_t) data_size;
                if (t->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
                        struct zcusb_iso_packet *pk = (struct zcusb_iso_packet *) ct->stage;
                        size_t hdr = (size_t) t->num_iso_packets * sizeof(*pk);
                        for (int i = 0; i < t->num_iso_packets; i++)
                                pk[i] = (struct zcusb_iso_packet) { .length = t->iso_packet_desc[i].length };
                        if (!(t->endpoint & LIBUSB_ENDPOINT_IN))
                                memcpy(ct->stage + hdr, t->buffer, iso_data_size(t));
                } else if (t->type == LIBUSB_TRANSFER_TYPE_CONTROL)
                        memcpy(ct->stage, t->buffer, (t->buffer[0] & LIBUSB_ENDPOINT_IN) ? SETUP_SIZE : length);
                else if (!(t->endpoint & LIBUSB_ENDPOINT_IN))
                        memcpy(ct->stage, t->buffer, length);
        }

        r = push(c, ct);
        if (r < 0) {
                stage_release(ct);
                ct->state = TRANSFER_IDLE;
                if (r == -ENODEV)
                        c->dead = true;
        }
        pthread_mutex_unlock(&ctx->lock);
        return compat_error(r);
}

int LIBUSB_CALL libusb_cancel_transfer(struct libusb_transfer *t) {
        CompatTransfer *ct = compat_transfer(t);
        struct libusb_context *ctx = t->dev_handle->dev->ctx;
        CompatClaim *c;
        int r = LIBUSB_SUCCESS;

        pthread_mutex_lock(&ctx->lock);
        c = ct->claim;
        switch (ct->state) {
        case TRANSFER_WAITING:
                TAILQ_REMOVE(&c->waiting, ct, link);
                stage_release(ct);
                complete_locally(ctx, ct, LIBUSB_TRANSFER_CANCELLED, 0);
                ctx_wake(ctx);
                break;
        case TRANSFER_IN_FLIGHT:
                if (ct->cancelling) {
                        r = LIBUSB_ERROR_NOT_FOUND; /* libusb: already being cancelled */
                        break;
                }
                r = c->cancels_pending > 0 ? -EAGAIN : send_cancel(c, ct);
                if (r == -EAGAIN) {
                        /* The ring is full (zcusbd has not taken what is on it yet).
                         * libusb's cancel is asynchronous anyway: the CANCEL goes when
                         * a slot frees, the callback says CANCELLED (or how the transfer
                         * ended first). The event handler may sleep: it must retry. */
                        ct->cancel_pending = true;
                        c->cancels_pending++;
                        ctx_wake(ctx);
                        r = 0;
                }
                if (r < 0) {
                        log_warn(ctx, "cannot cancel transfer %p: %s", (void *) t, zcusb_strerror(r));
                        r = compat_error(r);
                        break;
                }
                ct->cancelling = true;
                break;
        default:
                r = LIBUSB_ERROR_NOT_FOUND;
        }
        pthread_mutex_unlock(&ctx->lock);
        return r;
}

static void finish_from_completion(struct libusb_context *ctx, CompatTransfer *ct, int status, uint32_t actual) {
        struct libusb_transfer *t = &ct->pub;
        bool in;

        ct->result = status;
        if (t->type == LIBUSB_TRANSFER_TYPE_CONTROL) {
                uint16_t wlength = (uint16_t) (t->buffer[6] | t->buffer[7] << 8);
                in = t->buffer[0] & LIBUSB_ENDPOINT_IN;
                if (actual > wlength)
                        actual = wlength;
                if (in && ct->staged)
                        memcpy(t->buffer + SETUP_SIZE, ct->stage + SETUP_SIZE, actual);
        } else if (t->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
                const struct zcusb_iso_packet *pk = (const struct zcusb_iso_packet *) ct->stage;
                size_t hdr = (size_t) t->num_iso_packets * sizeof(*pk);
                in = t->endpoint & LIBUSB_ENDPOINT_IN;
                if (in)
                        memcpy(t->buffer, ct->stage + hdr, iso_data_size(t));
                for (int i = 0; i < t->num_iso_packets; i++) {
                        /* zcusbd's memory: read once, clamp */
                        uint32_t a = __atomic_load_n(&pk[i].actual_length, __ATOMIC_RELAXED);
                        int32_t s = __atomic_load_n(&pk[i].status, __ATOMIC_RELAXED);
                        t->iso_packet_desc[i].actual_length = a > t->iso_packet_desc[i].length ?
                                                              t->iso_packet_desc[i].length : a;
                        t->iso_packet_desc[i].status = compat_transfer_status(s);
                }
        } else {
                in = t->endpoint & LIBUSB_ENDPOINT_IN;
                if (actual > (uint32_t) t->length)
                        actual = (uint32_t) t->length;
                if (in && ct->staged)
                        memcpy(t->buffer, ct->stage, actual);
        }
        if (ct->staged)
                ctx->bytes_staged += actual;
        else
                ctx->bytes_zero_copy += actual;
        ctx->transfers_done++;
        ct->actual = actual;
        stage_release(ct);
        ct->state = TRANSFER_DONE;
        TAILQ_INSERT_TAIL(&ctx->done, ct, link);
}

void io_reap_claim(CompatClaim *c) {
        struct libusb_context *ctx = c->handle->dev->ctx;
        struct zcusb_cqe cqes[64];
        int n;

        while ((n = zcusb_queue_reap(c->queue, cqes, ELEMENTSOF(cqes))) > 0) {
                for (int i = 0; i < n; i++) {
                        uint64_t ud = cqes[i].user_data & ~CANCEL_TAG;
                        unsigned slot = (unsigned) (ud & 0xffff);
                        CompatTransfer *ct;

                        if (c->ring_used > 0)
                                c->ring_used--;
                        if (cqes[i].user_data & CANCEL_TAG)
                                continue; /* the cancelled transfer completes on its own */
                        if (slot >= COMPAT_MAX_IN_FLIGHT || !c->slots[slot] ||
                            (ud >> 16) != c->generation[slot]) {
                                log_err(ctx, "zcusbd completed a transfer we do not have in flight (%#llx): ignored",
                                        (unsigned long long) cqes[i].user_data);
                                continue;
                        }
                        ct = c->slots[slot];
                        c->slots[slot] = NULL;
                        c->in_flight--;
                        cancel_pending_clear(c, ct); /* it ended first */
                        finish_from_completion(ctx, ct, cqes[i].status, cqes[i].actual_length);
                }
        }
        if (n < 0)
                log_err(ctx, "interface %u: the completion ring is broken (%s)", c->interface, zcusb_strerror(n));
        io_submit_waiting(c);
}

void io_flush_claim(CompatClaim *c, enum libusb_transfer_status status) {
        struct libusb_context *ctx = c->handle->dev->ctx;
        CompatTransfer *ct;

        for (unsigned slot = 0; slot < COMPAT_MAX_IN_FLIGHT; slot++) {
                ct = c->slots[slot];
                if (!ct)
                        continue;
                c->slots[slot] = NULL;
                ct->cancel_pending = false;
                stage_release(ct);
                complete_locally(ctx, ct, status, 0);
        }
        while ((ct = TAILQ_FIRST(&c->waiting))) {
                TAILQ_REMOVE(&c->waiting, ct, link);
                stage_release(ct);
                complete_locally(ctx, ct, status, 0);
        }
        c->in_flight = c->ring_used = c->cancels_pending = 0;
}

void io_run_completions(struct libusb_context *ctx) {
        pthread_mutex_lock(&ctx->lock);
        ctx->completing = true;
        ctx->completing_thread = pthread_self();
        pthread_mutex_unlock(&ctx->lock);
        for (;;) {
                struct libusb_transfer *t;
                CompatTransfer *ct;
                uint8_t flags;

                pthread_mutex_lock(&ctx->lock);
                ct = TAILQ_FIRST(&ctx->done);
                if (ct)
                        TAILQ_REMOVE(&ctx->done, ct, link);
                if (!ct) {
                        CompatClaim *c;

                        /* What the callbacks submitted, one batch per claim. */
                        ctx->completing = false;
                        LIST_FOREACH(c, &ctx->claims, link)
                                if (!TAILQ_EMPTY(&c->waiting))
                                        io_submit_waiting(c);
                        ct = TAILQ_FIRST(&ctx->done); /* submissions that failed */
                        if (ct) {
                                TAILQ_REMOVE(&ctx->done, ct, link);
                                ctx->completing = true;
                        }
                }
                pthread_mutex_unlock(&ctx->lock);
                if (!ct)
                        return;

                t = &ct->pub;
                if (ct->status_override)
                        t->status = (enum libusb_transfer_status) (ct->status_override - 1);
                else
                        t->status = compat_transfer_status(ct->result);
                t->actual_length = (int) ct->actual;
                if (t->status == LIBUSB_TRANSFER_COMPLETED && (t->flags & LIBUSB_TRANSFER_SHORT_NOT_OK)) {
                        int want = t->length;
                        if (t->type == LIBUSB_TRANSFER_TYPE_CONTROL)
                                want = t->buffer[6] | t->buffer[7] << 8;
                        if (t->type != LIBUSB_TRANSFER_TYPE_ISOCHRONOUS && t->actual_length != want)
                                t->status = LIBUSB_TRANSFER_ERROR;
                }
                ct->claim = NULL;
                ct->state = TRANSFER_IDLE;
                flags = t->flags;
                if (t->callback)
                        t->callback(t);
                /* The callback may have freed or resubmitted it: only the flags read before. */
                if (flags & LIBUSB_TRANSFER_FREE_TRANSFER)
                        libusb_free_transfer(t);
        }
}
