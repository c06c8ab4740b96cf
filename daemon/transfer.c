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

static int transfer_on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s, (void) usec;
        transfer_cancel(userdata, -ETIMEDOUT);
        return 0;
}

/* The one place a transfer leaves its lists and gives back its charges. */
static void transfer_unlink(Transfer *t) {
        Claim *c = t->claim;

        TAILQ_REMOVE(&c->in_flight, t, link);
        c->n_in_flight--;
        t->queue->in_flight--;
        t->buffer->users--;
        quota_put(&c->peer->account, QUOTA_IN_FLIGHT);
        claim_uncharge(c, t->charged);
}

static Transfer *transfer_free(Transfer *t) {
        sd_event_source_disable_unref(t->timer);
        free(t->bounce);
        free(t);
        return NULL;
}

/* What zcusbd itself holds for a transfer (its state, iso results, the
 * control bounce, the backend's URBs): charged to the claim like buffers, so
 * the byte quotas bound everything a client can make zcusbd hold. */
static uint64_t transfer_memory(const Claim *c, const TransferPlan *plan, size_t self) {
        uint64_t bytes = self;

        if (plan->opcode == ZCUSB_OP_CONTROL)
                bytes += ZCUSB_CONTROL_SETUP_SIZE + plan->data_length;
        if (c->backend->transfer_memory)
                bytes += c->backend->transfer_memory(plan);
        return bytes;
}

int transfer_start(Queue *q, const struct zcusb_sqe *sqe, const TransferPlan *plan, Buffer *buffer) {
        Claim *c = q->claim;
        Manager *m = c->manager;
        uint8_t *region = buffer->map + plan->offset;
        uint32_t n_iso = plan->opcode == ZCUSB_OP_ISO ? plan->iso_packets : 0;
        size_t self = sizeof(Transfer) + n_iso * (sizeof(uint32_t) + sizeof(int32_t));
        uint64_t charge = transfer_memory(c, plan, self);
        Transfer *t;
        int r;

        r = claim_charge(c, charge, NULL);
        if (r < 0)
                return r;
        t = calloc(1, self);
        if (!t) {
                claim_uncharge(c, charge);
                return -ENOMEM;
        }
        *t = (Transfer) {
                .queue = q,
                .claim = c,
                .buffer = buffer,
                .plan = *plan,
                .user_data = sqe->user_data,
                .interface_number = c->interface_number,
                .flags = sqe->flags,
                .timeout_ms = sqe->timeout_ms,
                .charged = charge,
        };
        if (n_iso > 0) {
                t->iso_actual = (uint32_t *) (t + 1);
                t->iso_status = (int32_t *) (t->iso_actual + n_iso);
        }

        if (plan->opcode == ZCUSB_OP_CONTROL) {
                /* Private copy: the request that was checked is the one sent. */
                t->data_length = ZCUSB_CONTROL_SETUP_SIZE + plan->data_length;
                t->bounce = malloc(t->data_length);
                if (!t->bounce) {
                        transfer_free(t);
                        claim_uncharge(c, charge);
                        return -ENOMEM;
                }
                memcpy(t->bounce, plan->setup, ZCUSB_CONTROL_SETUP_SIZE);
                if (!plan->in)
                        memcpy(t->bounce + ZCUSB_CONTROL_SETUP_SIZE, region + ZCUSB_CONTROL_SETUP_SIZE,
                               plan->data_length);
                t->data = t->bounce;
        } else {
                t->data = region + plan->data_offset;
                t->data_length = plan->data_length;
        }

        if (t->timeout_ms > 0) {
                r = sd_event_add_time_relative(m->event, &t->timer, CLOCK_MONOTONIC,
                                               (uint64_t) t->timeout_ms * 1000, 1000, transfer_on_timeout, t);
                if (r < 0) {
                        transfer_free(t);
                        claim_uncharge(c, charge);
                        return r;
                }
        }

        /* On the lists before the backend sees it: a backend may complete
         * synchronously. */
        TAILQ_INSERT_TAIL(&c->in_flight, t, link);
        c->n_in_flight++;
        q->in_flight++;
        buffer->users++;
        c->peer->account.counts[QUOTA_IN_FLIGHT]++;

        r = c->backend->submit(c->handle, t);
        if (r < 0) {
                transfer_unlink(t);
                transfer_free(t);
                return r;
        }
        return 0;
}

void transfer_cancel(Transfer *t, int status) {
        if (t->cancel_status)
                return; /* already on its way out */
        t->cancel_status = status;
        t->timer = sd_event_source_disable_unref(t->timer);
        t->claim->backend->cancel(t->claim->handle, t);
}

/* Per-packet results go back into the client's descriptors: writes only. */
static void transfer_write_iso_results(Transfer *t) {
        struct zcusb_iso_packet *p = (struct zcusb_iso_packet *) (t->buffer->map + t->plan.offset);

        for (uint32_t i = 0; i < t->plan.iso_packets; i++) {
                p[i].actual_length = t->iso_actual[i];
                p[i].status = transfer_status_from_urb(t->iso_status[i]);
        }
}

void transfer_done(Transfer *t, int urb_status, uint32_t actual) {
        Claim *c = t->claim;
        Queue *q = t->queue;
        Peer *peer = c->peer;
        const Config *config = &c->manager->config;
        int status;

        if (t->cancel_status && (urb_status == -ENOENT || urb_status == -ECONNRESET || urb_status == -ECANCELED))
                status = t->cancel_status; /* we killed it: say why */
        else if (urb_status == -EREMOTEIO && !(t->flags & ZCUSB_SQE_SHORT_NOT_OK))
                status = 0; /* short, and the client accepts short */
        else
                status = transfer_status_from_urb(urb_status);

        if (actual > t->plan.data_length)
                actual = t->plan.data_length; /* never claim more than the region */

        if (t->plan.opcode == ZCUSB_OP_CONTROL && t->plan.in && actual > 0)
                memcpy(t->buffer->map + t->plan.offset + ZCUSB_CONTROL_SETUP_SIZE,
                       t->bounce + ZCUSB_CONTROL_SETUP_SIZE, actual);
        if (t->plan.opcode == ZCUSB_OP_ISO)
                transfer_write_iso_results(t);

        if (status == 0) {
                c->completed++;
                if (t->plan.in)
                        c->bytes_in += actual;
                else
                        c->bytes_out += actual;
        } else
                c->failed++;
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
