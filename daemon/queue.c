/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "buffer.h"
#include "claim.h"
#include "client.h"
#include "log.h"
#include "manager.h"
#include "queue.h"
#include "transfer.h"
#include "util.h"

static void queue_handle_entry(Queue *q, const struct zcusb_sqe *sqe);

/* While transfers are in flight the client rings no doorbell, trusting their
 * completions to bring zcusbd back to the ring. A transfer that never
 * completes (a quiet IN endpoint, no timeout) must not hold up what comes
 * after it, a CANCEL of it included: look at the ring this often anyway. */
#define QUEUE_POLL_USEC (4 * 1000)

static void queue_flush_backlog(Queue *q) {
        uint32_t n = 0;

        while (n < q->n_backlog && ring_post_cqe(&q->ring, &q->backlog[n]) >= 0)
                n++;
        if (n == 0)
                return;
        memmove(q->backlog, q->backlog + n, (q->n_backlog - n) * sizeof(*q->backlog));
        q->n_backlog -= n;
        q->posted = true;
}

void queue_complete(Queue *q, uint64_t user_data, int status, uint32_t actual) {
        struct zcusb_cqe cqe = { .user_data = user_data, .status = status, .actual_length = actual };

        if (q->n_backlog == 0 && ring_post_cqe(&q->ring, &cqe) >= 0) {
                q->posted = true;
                return;
        }
        /* Only a client that moved cq_head wrongly gets here: each taken
         * entry had its completion slot reserved. Keep it, never drop it. */
        if (q->n_backlog < q->ring.cq_entries)
                q->backlog[q->n_backlog++] = cqe;
        else
                log_warning("Queue %u of %s: completion for %llu lost, the client corrupted its ring.", q->id,
                            q->claim->object_path, (unsigned long long) user_data);
}

/* Room to take one more entry: its completion must be sure to fit. */
static bool queue_can_take(Queue *q) {
        Client *client = q->claim->client;
        const Config *config = &q->claim->manager->config;

        if (client->account.counts[QUOTA_IN_FLIGHT] >= config->in_flight_per_client &&
            q->claim->end == CLAIM_ACTIVE)
                return false; /* backpressure: resumes when a transfer ends */
        return ring_cq_space(&q->ring) > q->in_flight + q->n_backlog;
}

static int queue_on_poll(sd_event_source *s, uint64_t usec, void *userdata);

/* BLOCKED: entries wait on the ring that we could not take (no completion
 * slot free, or the client's in-flight limit). The client rings no doorbell
 * when it reaps, so nothing but this timer brings us back to take them. */
static void queue_arm_poll(Queue *q, bool blocked) {
        int enabled = SD_EVENT_OFF;

        if ((q->in_flight == 0 && !blocked) || q->ring.broken) {
                (void) sd_event_source_set_enabled(q->poll_source, SD_EVENT_OFF);
                return;
        }
        /* Already pending: one wakeup per period, however busy the queue. */
        if (sd_event_source_get_enabled(q->poll_source, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_time_relative(q->poll_source, QUEUE_POLL_USEC);
        (void) sd_event_source_set_enabled(q->poll_source, SD_EVENT_ONESHOT);
}

static void queue_process(Queue *q) {
        struct zcusb_sqe sqe;
        bool blocked = false;
        int r;

        queue_flush_backlog(q);
        for (;;) {
                if (!queue_can_take(q)) {
                        /* With nothing in flight no completion brings us
                         * back: ask for a doorbell, and poll if entries
                         * already wait (their client rang none). */
                        blocked = q->in_flight == 0 && ring_set_need_wakeup(&q->ring, true);
                        break;
                }
                r = ring_fetch_sqe(&q->ring, &sqe);
                if (r < 0) {
                        log_warning("Queue %u of %s: submission ring indices are corrupt; queue stopped.", q->id,
                                    q->claim->object_path);
                        break;
                }
                if (r == 0) {
                        /* Idle: ask for a doorbell. While transfers are in
                         * flight their completions (or the poll timer) bring
                         * us back anyway. */
                        if (ring_set_need_wakeup(&q->ring, q->in_flight == 0))
                                continue;
                        break;
                }
                queue_handle_entry(q, &sqe);
        }
        ring_publish(&q->ring);
        queue_arm_poll(q, blocked);

        if (q->posted && ring_client_wants_wakeup(&q->ring)) {
                if (eventfd_write(q->complete_fd, 1) < 0 && errno != EAGAIN)
                        log_debug_errno(errno, "Cannot ring the completion doorbell: %m");
        }
        q->posted = false;
}

static int queue_on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s, (void) usec;
        queue_process(userdata);
        return 0;
}

static int queue_on_defer(sd_event_source *s, void *userdata) {
        (void) s;
        queue_process(userdata);
        return 0;
}

void queue_kick(Queue *q) {
        (void) sd_event_source_set_enabled(q->defer_source, SD_EVENT_ONESHOT);
}

static int queue_on_submit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        eventfd_t v;

        (void) s, (void) revents;
        (void) eventfd_read(fd, &v);
        queue_process(userdata);
        return 0;
}

static int queue_buffer_size(void *userdata, uint32_t id, uint64_t *ret) {
        Buffer *b = claim_find_buffer(userdata, id);

        if (!b)
                return -ENOENT;
        *ret = b->size;
        return 0;
}

static Transfer *queue_find_transfer(Queue *q, uint64_t user_data) {
        Transfer *t;

        TAILQ_FOREACH(t, &q->claim->in_flight, link)
                if (t->queue == q && t->user_data == user_data && !t->cancel_status)
                        return t;
        return NULL;
}

/* Check and start one entry, or complete it at once. */
static void queue_handle_entry(Queue *q, const struct zcusb_sqe *sqe) {
        Claim *c = q->claim;
        TransferContext ctx;
        TransferPlan plan;
        const char *why = NULL;
        Buffer *buffer;
        int r;

        c->submitted++;
        if (c->end != CLAIM_ACTIVE) {
                c->failed++;
                queue_complete(q, sqe->user_data, c->end_status, 0);
                return;
        }

        ctx = (TransferContext) {
                .interface_number = c->interface_number,
                .alt_setting = c->alt_setting,
                .descriptors = &c->device->descriptors,
                .buffer_size = queue_buffer_size,
                .userdata = c,
        };
        r = transfer_check_entry(sqe, &ctx, &plan, &why);
        if (r < 0)
                goto fail;

        if (sqe->opcode == ZCUSB_OP_NOP) {
                c->completed++;
                queue_complete(q, sqe->user_data, 0, 0);
                return;
        }
        if (sqe->opcode == ZCUSB_OP_CANCEL) {
                Transfer *t = queue_find_transfer(q, sqe->cancel_user_data);
                c->completed++;
                queue_complete(q, sqe->user_data, t ? 0 : -ENOENT, 0);
                if (t)
                        transfer_cancel(t, -ECANCELED);
                return;
        }

        buffer = claim_find_buffer(c, sqe->buffer_id);
        r = transfer_check_payload(&plan, &ctx, buffer->map + plan.offset, &why);
        if (r < 0)
                goto fail;
        r = transfer_start(q, sqe, &plan, buffer);
        if (r < 0) {
                why = "the backend refused it";
                goto fail;
        }
        return;

fail:
        log_debug("%s: submission %llu refused: %s (%s).", c->object_path, (unsigned long long) sqe->user_data,
                  why ?: "error", strerror(-r));
        c->failed++;
        queue_complete(q, sqe->user_data, r, 0);
}

int queue_new(Claim *c, uint32_t id, uint32_t entries, Queue **ret) {
        _cleanup_close_ int fd = -EBADF;
        Queue *q;
        size_t size;
        void *map;
        int r;

        if (entries < ZCUSB_RING_MIN_ENTRIES || entries > ZCUSB_RING_MAX_ENTRIES || (entries & (entries - 1)))
                return -EINVAL;
        size = ring_size(entries);

        r = memfd_new_sealed("zcusb-queue", size, &fd, &map);
        if (r < 0)
                return r;

        q = calloc(1, sizeof(*q));
        if (!q) {
                munmap(map, size);
                return -ENOMEM;
        }
        *q = (Queue) {
                .claim = c, .id = id, .fd = TAKE_FD(fd), .map = map, .size = size,
                .submit_fd = -EBADF, .complete_fd = -EBADF,
        };
        ring_init(&q->ring, map, entries);

        q->backlog = calloc(q->ring.cq_entries, sizeof(*q->backlog));
        q->submit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        q->complete_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!q->backlog || q->submit_fd < 0 || q->complete_fd < 0) {
                r = q->backlog ? -errno : -ENOMEM;
                queue_free(q);
                return r;
        }
        r = sd_event_add_io(c->manager->event, &q->submit_source, q->submit_fd, EPOLLIN, queue_on_submit, q);
        if (r >= 0)
                r = sd_event_add_defer(c->manager->event, &q->defer_source, queue_on_defer, q);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->defer_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(c->manager->event, &q->poll_source, CLOCK_MONOTONIC, QUEUE_POLL_USEC,
                                               QUEUE_POLL_USEC / 4, queue_on_poll, q);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->poll_source, SD_EVENT_OFF);
        if (r < 0) {
                queue_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

Queue *queue_free(Queue *q) {
        if (!q)
                return NULL;
        sd_event_source_disable_unref(q->submit_source);
        sd_event_source_disable_unref(q->defer_source);
        sd_event_source_disable_unref(q->poll_source);
        if (q->submit_fd >= 0)
                close(q->submit_fd);
        if (q->complete_fd >= 0)
                close(q->complete_fd);
        if (q->map)
                munmap(q->map, q->size);
        if (q->fd >= 0)
                close(q->fd);
        free(q->backlog);
        free(q);
        return NULL;
}
