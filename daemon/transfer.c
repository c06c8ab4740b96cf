/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "buffer.h"
#include "claim.h"
#include "log.h"
#include "manager.h"
#include "peer.h"
#include "queue.h"
#include "transfer.h"
#include "util.h"

int transfer_status_from_urb(int urb_status) {
        switch (urb_status) {
        case 0:
        case -EPIPE:
        case -EOVERFLOW:
        case -EREMOTEIO:
        case -ETIMEDOUT:
        case -ECANCELED:
                return urb_status;
        case -ENOENT:     /* discarded */
        case -ECONNRESET: /* unlinked */
                return -ECANCELED;
        case -ENODEV:
        case -ESHUTDOWN:  /* the host controller or device went away */
                return -ENODEV;
        case -EPROTO:
        case -EILSEQ:
        case -ETIME:
        case -ECOMM:
        case -ENOSR:
        case -EXDEV:
                return -EPROTO;
        default:
                return urb_status < 0 ? urb_status : -EIO;
        }
}

/* Timeouts: one timer per queue, not one per transfer. A stream of
 * transfers that all carry a timeout would otherwise add and remove a timer
 * source for each (an allocation, two priority-queue updates and, whenever
 * the earliest timer changes, a timerfd_settime()). The queue keeps its
 * transfers with a deadline in a list, earliest first, and its timer is
 * armed no later than the first of them. A transfer that ends leaves the
 * list and does not move the timer: a timer that fires early finds nothing
 * expired and re-arms for the earliest deadline left, so a busy stream
 * costs one expiry per timeout period. An empty list leaves it armed too
 * (turning it off and on would cost two timerfd_settime() per transfer to
 * a client that submits one at a time): it fires once more, finds nothing
 * and stays off, so a queue with nothing in flight wakes zcusbd at most
 * once, at the last deadline it had. */
static void transfer_deadline_arm(Queue *q, uint64_t deadline) {
        if (q->deadline_armed != 0 && q->deadline_armed <= deadline)
                return; /* fires in time for it */
        (void) sd_event_source_set_time(q->deadline_source, deadline);
        (void) sd_event_source_set_enabled(q->deadline_source, SD_EVENT_ONESHOT);
        q->deadline_armed = deadline;
}

static void transfer_deadline_add(Transfer *t, uint64_t deadline) {
        Queue *q = t->queue;
        Transfer *before;

        t->deadline = deadline;
        /* From the end: the entries of a stream share a timeout, so a new
         * deadline is nearly always the latest. A client that mixes them
         * walks at most its own InFlightPerClient= transfers. */
        for (before = TAILQ_LAST(&q->deadlines, TransferDeadlines); before && before->deadline > deadline;
             before = TAILQ_PREV(before, TransferDeadlines, deadline_link))
                ;
        if (before)
                TAILQ_INSERT_AFTER(&q->deadlines, before, t, deadline_link);
        else
                TAILQ_INSERT_HEAD(&q->deadlines, t, deadline_link);
        transfer_deadline_arm(q, deadline);
}

static void transfer_deadline_remove(Transfer *t) {
        Queue *q = t->queue;

        if (t->deadline == 0)
                return;
        TAILQ_REMOVE(&q->deadlines, t, deadline_link);
        t->deadline = 0;
}

int transfer_on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Queue *q = userdata;
        uint64_t now;
        Transfer *t;

        (void) usec;
        q->deadline_armed = 0;
        if (sd_event_now(sd_event_source_get_event(s), CLOCK_MONOTONIC, &now) < 0)
                now = now_monotonic_usec();
        /* transfer_cancel() takes each off the list (its end may come
         * within the call, and free it). */
        while ((t = TAILQ_FIRST(&q->deadlines)) && t->deadline <= now)
                transfer_cancel(t, -ETIMEDOUT);
        if (t)
                transfer_deadline_arm(q, t->deadline);
        return 0;
}

#define TRANSFER_ALIGN 16u

static size_t align_up(size_t n) {
        return (n + TRANSFER_ALIGN - 1) & ~(size_t) (TRANSFER_ALIGN - 1);
}

/* On the lists and counted: the one place a transfer joins them ... */
static void transfer_link(Transfer *t) {
        Claim *c = t->claim;

        TAILQ_INSERT_TAIL(&c->in_flight, t, link);
        c->n_in_flight++;
        if (++t->queue->in_flight > t->queue->depth)
                t->queue->depth = t->queue->in_flight;
        t->buffer->users++;
        c->peer->account.counts[QUOTA_IN_FLIGHT]++;
}

/* ... and the one place it leaves them and gives back its charges. */
static void transfer_unlink(Transfer *t) {
        Claim *c = t->claim;

        transfer_deadline_remove(t);
        TAILQ_REMOVE(&c->in_flight, t, link);
        c->n_in_flight--;
        t->queue->in_flight--;
        t->buffer->users--;
        quota_put(&c->peer->account, QUOTA_IN_FLIGHT);
        claim_uncharge(c, t->charged);
}

/* Bulk and interrupt transfers (no control bounce, no iso results) all take
 * blocks of one size per claim. The claim keeps up to TRANSFER_CACHE_MAX of
 * those that ended for the next ones, so a stream allocates nothing per
 * transfer. The cache is bounded per claim and claims are counted, so what
 * it holds outside the byte quotas stays small. */
#define TRANSFER_CACHE_MAX 32u

typedef struct CachedBlock {
        struct CachedBlock *next;
} CachedBlock;

static Transfer *transfer_free(Transfer *t) {
        Claim *c = t->claim;

        if (t->plain_block && c->n_transfer_cache < TRANSFER_CACHE_MAX) {
                CachedBlock *b = (CachedBlock *) t;

                b->next = c->transfer_cache;
                c->transfer_cache = b;
                c->n_transfer_cache++;
                return NULL;
        }
        free(t);
        return NULL;
}

static void *transfer_cache_take(Claim *c, size_t size) {
        CachedBlock *b = c->transfer_cache;

        if (!b)
                return NULL;
        c->transfer_cache = b->next;
        c->n_transfer_cache--;
        memset(b, 0, size);
        return b;
}

void transfer_cache_clear(Claim *c) {
        CachedBlock *b;

        while ((b = c->transfer_cache)) {
                c->transfer_cache = b->next;
                free(b);
        }
        c->n_transfer_cache = 0;
}

static void transfer_freep(Transfer **t) {
        if (*t)
                transfer_free(*t);
}

/* One allocation: the Transfer, the backend's private part, the control
 * bounce and the iso results. What zcusbd holds for it beyond that (split
 * URBs) the backend estimates; all of it is charged to the claim like
 * buffers, so the byte quotas bound everything a client can make zcusbd
 * hold. */
static int transfer_new(Claim *c, const TransferPlan *plan, Transfer **ret) {
        const BackendOps *ops = c->backend;
        uint32_t n_iso = plan->opcode == ZCUSB_OP_ISO ? plan->iso_packets : 0;
        size_t bounce = plan->opcode == ZCUSB_OP_CONTROL ? ZCUSB_CONTROL_SETUP_SIZE + plan->data_length : 0;
        size_t priv_at = align_up(sizeof(Transfer));
        size_t bounce_at = priv_at + align_up(ops->transfer_priv_size);
        size_t iso_at = bounce_at + align_up(bounce);
        size_t size = iso_at + n_iso * (sizeof(uint32_t) + sizeof(int32_t));
        uint64_t charge = size + (ops->transfer_memory ? ops->transfer_memory(plan) : 0);
        uint8_t *block;
        Transfer *t;
        int r;

        bool plain = bounce == 0 && n_iso == 0;

        r = claim_charge(c, charge, NULL);
        if (r < 0)
                return r;
        block = plain ? transfer_cache_take(c, size) : NULL;
        if (!block)
                block = calloc(1, size);
        if (!block) {
                claim_uncharge(c, charge);
                return -ENOMEM;
        }
        t = (Transfer *) block;
        t->claim = c;
        t->plain_block = plain;
        t->charged = charge;
        t->backend.priv = ops->transfer_priv_size > 0 ? block + priv_at : NULL;
        if (bounce > 0)
                t->backend.data = block + bounce_at;
        if (n_iso > 0) {
                t->backend.iso_actual = (uint32_t *) (block + iso_at);
                t->backend.iso_status = (int32_t *) (t->backend.iso_actual + n_iso);
        }
        *ret = t;
        return 0;
}

int transfer_start(Queue *q, const struct zcusb_sqe *sqe, const TransferPlan *plan, Buffer *buffer) {
        _cleanup_(transfer_freep) Transfer *t = NULL;
        Claim *c = q->claim;
        uint8_t *region = buffer->backend.map + plan->offset;
        int r;

        r = transfer_new(c, plan, &t);
        if (r < 0)
                return r;
        t->backend.plan = *plan;
        t->backend.buffer = &buffer->backend;
        t->backend.flags = sqe->flags;
        t->queue = q;
        t->claim = c;
        t->buffer = buffer;
        t->user_data = sqe->user_data;
        t->timeout_ms = sqe->timeout_ms;

        if (plan->opcode == ZCUSB_OP_CONTROL) {
                /* Private copy: the request that was checked is the one sent. */
                t->backend.data_length = ZCUSB_CONTROL_SETUP_SIZE + plan->data_length;
                memcpy(t->backend.data, plan->setup, ZCUSB_CONTROL_SETUP_SIZE);
                if (!plan->in)
                        memcpy(t->backend.data + ZCUSB_CONTROL_SETUP_SIZE, region + ZCUSB_CONTROL_SETUP_SIZE,
                               plan->data_length);
        } else {
                t->backend.data = region + plan->data_offset;
                t->backend.data_length = plan->data_length;
        }

        /* Linked (and on the deadline list) before the backend sees it: a
         * backend may complete it synchronously. */
        transfer_link(t);
        if (t->timeout_ms > 0) {
                /* The loop's time, as sd_event_add_time_relative() takes it. */
                uint64_t now;

                if (sd_event_now(c->manager->event, CLOCK_MONOTONIC, &now) < 0)
                        now = now_monotonic_usec();
                transfer_deadline_add(t, now + (uint64_t) t->timeout_ms * 1000);
        }
        r = c->backend->submit(c->backend_interface, &t->backend);
        if (r < 0) {
                transfer_unlink(t);
                return r;
        }
        TAKE_PTR(t);
        return 0;
}

void transfer_cancel(Transfer *t, int status) {
        if (t->cancel_status)
                return; /* already on its way out */
        t->cancel_status = status;
        transfer_deadline_remove(t); /* it times out no more */
        t->claim->backend->cancel(t->claim->backend_interface, &t->backend);
}

/* Per-packet results go back into the client's descriptors: writes only. */
static void transfer_write_iso_results(Transfer *t) {
        const TransferPlan *plan = &t->backend.plan;
        struct zcusb_iso_packet *p = (struct zcusb_iso_packet *) (t->buffer->backend.map + plan->offset);

        for (uint32_t i = 0; i < plan->iso_packets; i++) {
                p[i].actual_length = t->backend.iso_actual[i];
                p[i].status = transfer_status_from_urb(t->backend.iso_status[i]);
        }
}

void backend_transfer_done(BackendTransfer *bt, int urb_status, uint32_t actual) {
        Transfer *t = transfer_from_backend(bt);
        const TransferPlan *plan = &bt->plan;
        Claim *c = t->claim;
        Queue *q = t->queue;
        Peer *peer = c->peer;
        const Config *config = &c->manager->config;
        int status;

        if (t->cancel_status && (urb_status == -ENOENT || urb_status == -ECONNRESET || urb_status == -ECANCELED))
                status = t->cancel_status; /* we killed it: say why */
        else if (urb_status == -EREMOTEIO && !(bt->flags & ZCUSB_SQE_SHORT_NOT_OK))
                status = 0; /* short, and the client accepts short */
        else
                status = transfer_status_from_urb(urb_status);

        if (actual > plan->data_length)
                actual = plan->data_length; /* never claim more than the region */

        if (plan->opcode == ZCUSB_OP_CONTROL && plan->in && actual > 0)
                memcpy(t->buffer->backend.map + plan->offset + ZCUSB_CONTROL_SETUP_SIZE,
                       bt->data + ZCUSB_CONTROL_SETUP_SIZE, actual);
        if (plan->opcode == ZCUSB_OP_ISO)
                transfer_write_iso_results(t);

        if (status == 0) {
                c->counted.completed++;
                if (plan->in)
                        c->counted.bytes_in += actual;
                else
                        c->counted.bytes_out += actual;
        } else
                c->counted.failed++;
        queue_complete(q, t->user_data, status, actual);

        bool was_throttled = peer->account.counts[QUOTA_IN_FLIGHT] >= config->in_flight_per_client;
        transfer_unlink(t);
        transfer_free(t);

        queue_kick(q);
        if (was_throttled) {
                Claim *other;
                Queue *oq;

                TAILQ_FOREACH(other, &peer->claims, peer_link)
                        TAILQ_FOREACH(oq, &other->queues, link)
                                queue_kick(oq);
        }
        claim_transfer_finished(c);
}
