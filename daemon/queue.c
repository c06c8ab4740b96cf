/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "buffer.h"
#include "claim.h"
#include "log.h"
#include "manager.h"
#include "peer.h"
#include "queue.h"
#include "transfer.h"
#include "util.h"
#include "zcusb-dbus.h"

static void queue_handle_entry(Queue *q, const struct zcusb_sqe *sqe);

/* When zcusbd stops looking at a ring it asks for a doorbell
 * (ZCUSB_SQ_NEED_WAKEUP), transfers in flight or not, so an entry published
 * behind a transfer that never completes (a quiet IN endpoint, no timeout),
 * a CANCEL of it included, is taken at once and nothing polls the ring.
 *
 * Except while the queue streams: at least half of its deepest in flight
 * still in flight, and one of its completions posted within the grace
 * period. Its client resubmits as it reaps, and the next completion brings
 * zcusbd back to the ring soon. A doorbell per batch costs the client a
 * syscall and zcusbd a wakeup, which under emulation doubled zcusbd's CPU
 * per transfer; so the flag stays clear, and if no completion comes within the grace period the
 * grace timer looks once and sets it. It is pushed back per batch of
 * completions, not periodic: a queue whose transfers keep completing never
 * sees it fire.
 *
 * Entries that cannot be taken (no completion slot free: the client is slow
 * to reap, and reaping rings no doorbell) are looked for by a timer: every
 * 4 ms while transfers are in flight, backing off to 4 ms << 8 (1 s) while
 * nothing is, so a client that does not reap costs an idle zcusbd next to
 * nothing, yet resumes when it reaps. */
/* The grace period: four times the queue's usual time between batches of
 * completions (a moving average), so that a stream whose completions come
 * further apart under load keeps its doorbell off too, within these bounds;
 * the upper one is what an entry published right after a completion, behind
 * transfers that then never complete, can wait. */
#define QUEUE_GRACE_MIN_USEC (4 * 1000)
#define QUEUE_GRACE_MAX_USEC (50 * 1000)
#define QUEUE_POLL_USEC (4 * 1000)
#define QUEUE_POLL_BACKOFF_MAX_SHIFT 8u

/* The client broke the ring protocol (indices beyond the ring): the queue is
 * no longer served. Said once in the log, and its doorbell is no longer
 * watched, so a client ringing it in a loop costs zcusbd nothing. */
static void queue_break(Queue *q, const char *why) {
        ring_mark_broken(&q->ring);
        (void) sd_event_source_set_enabled(q->submit_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(q->poll_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(q->grace_source, SD_EVENT_OFF);
        if (q->broken_logged)
                return;
        q->broken_logged = true;
        log_warning("Queue %u of %s: %s; queue stopped.", q->id, q->claim->object_path, why);
}

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
                queue_break(q, "completions lost, the client moved cq_head wrongly");
}

/* Room to take one more entry: its completion must be sure to fit, next to
 * those of the transfers in flight, the backlog and the held entries. */
static bool queue_has_completion_room(Queue *q) {
        return ring_cq_space(&q->ring) > q->in_flight + q->n_backlog + q->n_held;
}

/* The peer has InFlightPerClient= transfers in flight: entries that would
 * start one more wait (backpressure; a transfer's end kicks its peer's
 * queues). An ending claim fails entries instead, so they need no room. */
static bool queue_at_in_flight_limit(Queue *q) {
        return q->claim->end == CLAIM_ACTIVE &&
               q->claim->peer->account.counts[QUOTA_IN_FLIGHT] >= q->claim->manager->config.in_flight_per_client;
}

static bool opcode_starts_transfer(uint8_t opcode) {
        return opcode == ZCUSB_OP_BULK || opcode == ZCUSB_OP_INTERRUPT || opcode == ZCUSB_OP_CONTROL ||
               opcode == ZCUSB_OP_ISO;
}

/* An opcode no client can use: marks a held entry a CANCEL already ended. */
#define HELD_CANCELLED UINT8_MAX

/* Keep an entry taken off the ring (its private copy: the ring is read once)
 * until the in-flight limit lets it start. Entries that start nothing (NOP,
 * CANCEL) do not wait behind it: a CANCEL of a transfer that never ends must
 * be taken even when the client is at its limit. A ring buffer of one slot
 * per completion slot: never more are held (queue_has_completion_room). */
static int queue_hold(Queue *q, const struct zcusb_sqe *sqe) {
        uint32_t capacity = q->ring.cq_entries;

        if (!q->held) {
                q->held = calloc(capacity, sizeof(*q->held));
                if (!q->held)
                        return -ENOMEM;
        }
        if (q->n_held >= capacity)
                return -ENOSPC;
        q->held[(q->held_head + q->n_held++) % capacity] = *sqe;
        return 0;
}

static bool queue_take_held(Queue *q, struct zcusb_sqe *ret) {
        for (;;) {
                if (q->n_held == 0 || queue_at_in_flight_limit(q))
                        return false;
                *ret = q->held[q->held_head];
                q->held_head = (q->held_head + 1) % q->ring.cq_entries;
                q->n_held--;
                if (ret->opcode != HELD_CANCELLED)
                        return true;
        }
}

/* A held entry that ends without starting: counted and completed as an
 * entry refused on arrival is. */
static void queue_end_held(Queue *q, uint64_t user_data, int status) {
        q->claim->counted.submitted++;
        q->claim->counted.failed++;
        queue_complete(q, user_data, status, 0);
}

/* A CANCEL of an entry still held: it never started, it ends here (its slot
 * is skipped when its turn comes). */
static bool queue_cancel_held(Queue *q, uint64_t user_data) {
        for (uint32_t i = 0; i < q->n_held; i++) {
                struct zcusb_sqe *e = &q->held[(q->held_head + i) % q->ring.cq_entries];

                if (e->opcode == HELD_CANCELLED || e->user_data != user_data)
                        continue;
                e->opcode = HELD_CANCELLED;
                queue_end_held(q, user_data, -ECANCELED);
                return true;
        }
        return false;
}

/* BLOCKED: entries wait on the ring that we could not take (no completion
 * slot free). The client rings no doorbell when it reaps, so nothing but
 * this timer (or, while transfers are in flight, their completions) brings
 * us back to take them. */
static void queue_arm_poll(Queue *q, bool blocked) {
        int enabled = SD_EVENT_OFF;
        uint64_t period;

        /* A cq_head beyond what was posted is no client that is slow to
         * reap: wait for its doorbell instead of polling a broken ring. */
        if (!blocked || !ring_cq_head_valid(&q->ring) || q->ring.broken) {
                q->blocked_polls = 0;
                (void) sd_event_source_set_enabled(q->poll_source, SD_EVENT_OFF);
                return;
        }
        /* Already pending: one wakeup per period, however busy the queue. */
        if (sd_event_source_get_enabled(q->poll_source, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        /* Blocked with nothing in flight is a client that does not reap:
         * look less and less often, so such a queue costs an idle zcusbd
         * next to nothing, yet resumes when the client reaps. */
        period = QUEUE_POLL_USEC;
        if (q->in_flight == 0) {
                period <<= q->blocked_polls < QUEUE_POLL_BACKOFF_MAX_SHIFT ? q->blocked_polls : QUEUE_POLL_BACKOFF_MAX_SHIFT;
                q->blocked_polls++;
        } else
                q->blocked_polls = 0;
        (void) sd_event_source_set_time_relative(q->poll_source, period);
        (void) sd_event_source_set_enabled(q->poll_source, SD_EVENT_ONESHOT);
}

/* Queues kicked and not yet processed, in kick order. One list for the
 * process: zcusbd runs one manager, on one thread. */
static TAILQ_HEAD(, Queue) kicked_queues = TAILQ_HEAD_INITIALIZER(kicked_queues);

static void queue_unkick(Queue *q) {
        if (!q->kicked)
                return;
        TAILQ_REMOVE(&kicked_queues, q, kick_link);
        q->kicked = false;
        (void) sd_event_source_set_enabled(q->defer_source, SD_EVENT_OFF);
}

/* Streaming (see above): completions posted in this pass, or within the
 * grace period (its timer is pending), and at least half of the deepest the
 * queue has had in flight still is. Below that, resubmissions left for the
 * next completion starve the endpoint: the controller runs out of transfers
 * (with zcusb.ko's queues, which follow the same rule, 64 KiB x 8 IN went
 * from 0.27x to 0.64x the MB/s of libusb dev_mem with the depth test). */
static bool queue_streaming(Queue *q) {
        int enabled = SD_EVENT_OFF;

        if (q->in_flight * 2 <= q->depth)
                return false;
        if (q->posted)
                return true;
        return sd_event_source_get_enabled(q->grace_source, &enabled) >= 0 && enabled != SD_EVENT_OFF;
}

/* The doorbell was left off (STREAMING): a batch of completions pushes the
 * grace period back; otherwise it ends here. */
static void queue_arm_grace(Queue *q, bool streaming) {
        if (!streaming) {
                (void) sd_event_source_set_enabled(q->grace_source, SD_EVENT_OFF);
                return;
        }
        uint64_t now, grace;

        if (!q->posted)
                return; /* still within the last batch's grace period */
        if (sd_event_now(q->claim->manager->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        if (q->last_batch_usec != 0 && now > q->last_batch_usec) {
                uint64_t gap = now - q->last_batch_usec;

                gap = gap < QUEUE_GRACE_MAX_USEC ? gap : QUEUE_GRACE_MAX_USEC;
                q->batch_gap_usec = (3 * q->batch_gap_usec + gap) / 4;
        }
        q->last_batch_usec = now;
        grace = 4 * q->batch_gap_usec;
        grace = grace < QUEUE_GRACE_MIN_USEC ? QUEUE_GRACE_MIN_USEC : grace > QUEUE_GRACE_MAX_USEC ? QUEUE_GRACE_MAX_USEC : grace;
        (void) sd_event_source_set_time(q->grace_source, now + grace);
        (void) sd_event_source_set_enabled(q->grace_source, SD_EVENT_ONESHOT);
}

static bool queue_entry_valid(Queue *q, const struct zcusb_sqe *sqe);

static void queue_process(Queue *q) {
        struct zcusb_sqe sqe;
        bool blocked = false, streaming = false;
        uint32_t taken = 0;
        int r;

        queue_unkick(q);
        /* The kernel serves this ring (its sq_head, its doorbell flag): a
         * kick for the peer's queues (in-flight limit) is not ours to act on. */
        if (q->kernel)
                return;
        /* Looking now: doorbells rung while this pass runs would only wake
         * us again for entries it takes anyway (a client resubmitting a
         * batch one entry at a time rang once per entry). Every way out of
         * the loop below sets the flag again, or is a pass that comes back
         * by itself (kicked, streaming, broken). */
        ring_clear_need_wakeup(&q->ring);
        queue_flush_backlog(q);
        /* Held entries first, in order, as far as the limit lets them. */
        while (queue_take_held(q, &sqe))
                queue_handle_entry(q, &sqe);
        /* A broken ring takes nothing more; completions of what it had
         * started are still posted (as far as they fit) and rung. */
        for (;; taken++) {
                if (q->ring.broken)
                        break;
                /* One ring's worth per dispatch: a client that submits as
                 * fast as it reaps must not keep the loop (the bus, udev,
                 * the other rings, the GC pass) from everyone else. */
                if (taken >= q->ring.sq_entries) {
                        queue_kick(q);
                        break;
                }
                if (!queue_has_completion_room(q)) {
                        /* Ask for a doorbell, and poll if entries already
                         * wait: their client rang it, and reaping rings
                         * none. */
                        blocked = ring_set_need_wakeup(&q->ring, true);
                        break;
                }
                r = ring_fetch_sqe(&q->ring, &sqe);
                if (r < 0) {
                        queue_break(q, "submission ring indices are corrupt (sq_tail beyond the ring)");
                        break;
                }
                if (r == 0) {
                        /* Idle. Streaming: no doorbell for the
                         * resubmissions (see above). Otherwise ask for one,
                         * in flight or not (no completion may ever come),
                         * then look once more. */
                        streaming = queue_streaming(q);
                        if (streaming) {
                                (void) ring_set_need_wakeup(&q->ring, false);
                                break;
                        }
                        if (ring_set_need_wakeup(&q->ring, true))
                                continue;
                        break;
                }
                /* Behind held entries, or at the limit: a valid transfer
                 * waits, in order; a bad one fails now, holding nothing. */
                if (opcode_starts_transfer(sqe.opcode) && (q->n_held > 0 || queue_at_in_flight_limit(q)) &&
                    queue_entry_valid(q, &sqe)) {
                        r = queue_hold(q, &sqe);
                        if (r < 0)
                                queue_end_held(q, sqe.user_data, r);
                        continue;
                }
                queue_handle_entry(q, &sqe);
        }
        ring_publish(&q->ring);
        if (!q->ring.broken) {
                queue_arm_poll(q, blocked);
                queue_arm_grace(q, streaming);
        }

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

/* No completion within the grace period: the timer is off now (oneshot)
 * and this pass posts none, so it sets the doorbell flag again (and takes
 * what came meanwhile). */
static int queue_on_grace(sd_event_source *s, uint64_t usec, void *userdata) {
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
        if (q->kicked)
                return;
        q->kicked = true;
        TAILQ_INSERT_TAIL(&kicked_queues, q, kick_link);
        /* In case no batch end comes (a cancel, a claim that ends). */
        (void) sd_event_source_set_enabled(q->defer_source, SD_EVENT_ONESHOT);
}

/* The backend reaped a batch: process the queues it kicked now rather than
 * on the next loop iteration, which would cost another epoll_wait() and
 * delay the completion doorbell. Processing a queue may kick it again (a
 * transfer that ends within submit): the ring empties, so this ends. */
void backend_batch_done(void) {
        Queue *q;

        while ((q = TAILQ_FIRST(&kicked_queues)))
                queue_process(q);
}

/* Edge-triggered: every doorbell (a write, whatever the counter holds) is
 * an event, so the counter is never read: a syscall less per doorbell. It
 * only grows, by one per doorbell (2^64 of them do not happen); a client
 * that fills it at once silences its own doorbell, nobody else's. */
static int queue_on_submit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) s, (void) fd, (void) revents;
        queue_process(userdata);
        return 0;
}

static int queue_buffer_size(void *userdata, uint32_t id, uint64_t *ret) {
        Buffer *b = claim_find_buffer(userdata, id);

        if (!b)
                return -ENOENT;
        *ret = b->backend.size;
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
static TransferContext queue_check_context(Queue *q) {
        Claim *c = q->claim;

        return (TransferContext) {
                .interface_number = c->interface_number,
                .alt_setting = c->alt_setting,
                .descriptors = &c->device->descriptors,
                .buffer_size = queue_buffer_size,
                .userdata = c,
        };
}

/* The entry alone passes the checks (held entries are checked again, in
 * full, when they start: the alternate setting may have changed). */
static bool queue_entry_valid(Queue *q, const struct zcusb_sqe *sqe) {
        TransferContext ctx;
        TransferPlan plan;
        const char *why = NULL;

        if (q->claim->end != CLAIM_ACTIVE)
                return false;
        ctx = queue_check_context(q);
        return transfer_check_entry(sqe, &ctx, &plan, &why) >= 0;
}

static void queue_handle_entry(Queue *q, const struct zcusb_sqe *sqe) {
        Claim *c = q->claim;
        TransferContext ctx;
        TransferPlan plan;
        const char *why = NULL;
        Buffer *buffer;
        int r;

        c->counted.submitted++;
        if (c->end != CLAIM_ACTIVE) {
                c->counted.failed++;
                queue_complete(q, sqe->user_data, c->end_status, 0);
                return;
        }

        ctx = queue_check_context(q);
        r = transfer_check_entry(sqe, &ctx, &plan, &why);
        if (r < 0)
                goto fail;

        if (sqe->opcode == ZCUSB_OP_NOP) {
                c->counted.completed++;
                queue_complete(q, sqe->user_data, 0, 0);
                return;
        }
        if (sqe->opcode == ZCUSB_OP_CANCEL) {
                Transfer *t = queue_find_transfer(q, sqe->cancel_user_data);
                bool held = !t && queue_cancel_held(q, sqe->cancel_user_data);

                c->counted.completed++;
                queue_complete(q, sqe->user_data, t || held ? 0 : -ENOENT, 0);
                if (t)
                        transfer_cancel(t, -ECANCELED);
                return;
        }

        buffer = claim_find_buffer(c, sqe->buffer_id);
        r = transfer_check_payload(&plan, &ctx, buffer->backend.map + plan.offset, &why);
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
        c->counted.failed++;
        queue_complete(q, sqe->user_data, r, 0);
}

bool queue_kernel_possible(const Claim *c) {
        return c->backend->attach_queue && c->manager->config.kernel_queues && c->backend_interface &&
               c->end == CLAIM_ACTIVE;
}

const char *queue_served_by(const Claim *c) {
        const Queue *q;

        if (TAILQ_EMPTY(&c->queues))
                return queue_kernel_possible(c) ? "kernel" : "daemon";
        TAILQ_FOREACH(q, &c->queues, link)
                if (!q->kernel)
                        return "daemon";
        return "kernel";
}

int queue_kernel_add_buffer(Claim *c, const BackendBuffer *b) {
        const Queue *q;
        bool needed = false;
        int r;

        if (!queue_kernel_possible(c))
                return 0;
        TAILQ_FOREACH(q, &c->queues, link)
                needed = needed || q->kernel;
        r = c->backend->add_buffer(c->backend_interface, b);
        if (r < 0 && needed)
                return log_warning_errno(r, "%s: the kernel cannot take buffer %u for the claim's queues: %m",
                                         c->object_path, b->id);
        /* Without kernel-served queues yet: the next queue tries again. */
        return 0;
}

/* Hand Q to the kernel; on any failure zcusbd serves it, as before. */
static void queue_attach_kernel(Queue *q, int ring_fd) {
        Claim *c = q->claim;
        BackendQueue bq = {
                .ring_fd = ring_fd, .submit_fd = q->submit_fd, .complete_fd = q->complete_fd,
                .sq_entries = q->ring.sq_entries, .sq_head = q->ring.sq_head, .cq_tail = q->ring.cq_tail,
        };
        Buffer *b;
        int r = 0;

        if (!queue_kernel_possible(c))
                return;
        TAILQ_FOREACH(b, &c->buffers, link) {
                r = c->backend->add_buffer(c->backend_interface, &b->backend);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = c->backend->attach_queue(c->backend_interface, &bq, &q->kernel_id);
        if (r < 0) {
                log_full_errno(r == -EOPNOTSUPP ? LOG_DEBUG : LOG_NOTICE, r,
                               "Queue %u of %s: the kernel cannot serve it (%m); zcusbd does.", q->id,
                               c->object_path);
                return;
        }
        q->kernel = true;
        /* The kernel takes the doorbell now (it drains the eventfd itself). */
        (void) sd_event_source_set_enabled(q->submit_source, SD_EVENT_OFF);
        log_debug("Queue %u of %s: served by the kernel (queue %u).", q->id, c->object_path, q->kernel_id);
}

int queue_kernel_counters(Queue *q, TransferCounters *ret) {
        Claim *c = q->claim;
        int r;

        *ret = (TransferCounters) {};
        if (!q->kernel || !c->backend_interface || !c->backend->queue_counters)
                return 0;
        r = c->backend->queue_counters(c->backend_interface, q->kernel_id, ret);
        if (r == -EOPNOTSUPP)
                return 0; /* an older module: the backend said so once */
        if (r < 0) {
                *ret = q->kernel_seen; /* never less than was shown */
                return log_debug_errno(r, "Queue %u of %s: cannot read the kernel's counters: %m", q->id,
                                       c->object_path);
        }
        q->kernel_seen = *ret;
        return 0;
}

/* The kernel stops serving Q: what it had in flight completes with
 * END_STATUS, and zcusbd goes on from where it stopped (an ending claim
 * fails what comes; CloseQueue frees it). What the kernel counted for Q
 * becomes the claim's own, so its counters never go back. */
static void queue_detach_kernel(Queue *q, int end_status) {
        Claim *c = q->claim;
        TransferCounters counters = {};
        BackendQueue bq = {};
        int r = -ENODEV;

        if (!q->kernel)
                return;
        q->kernel = false;
        if (c->backend_interface)
                r = c->backend->detach_queue(c->backend_interface, q->kernel_id, end_status, &bq, &counters);
        if (r < 0) {
                /* The interface is closed: the module ended the queue (DEAD),
                 * its transfers too. Keep what was last read of its counts. */
                log_debug_errno(r, "Queue %u of %s: detach from the kernel: %m", q->id, c->object_path);
                counters = q->kernel_seen;
                counters.failed += counters.in_flight;
                claim_add_counters(c, &counters);
                ring_mark_broken(&q->ring);
                return;
        }
        claim_add_counters(c, &counters);
        q->ring.sq_head = bq.sq_head;
        q->ring.cq_tail = bq.cq_tail;
        (void) sd_event_source_set_enabled(q->submit_source, SD_EVENT_ON);
        queue_kick(q);
}

int queue_new(Claim *c, uint32_t entries, Queue **ret, int *ret_fd, sd_bus_error *error) {
        _cleanup_(queue_freep) Queue *q = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size, charged;
        void *map;
        int r;

        if (entries < ZCUSB_RING_MIN_ENTRIES || entries > ZCUSB_RING_MAX_ENTRIES || (entries & (entries - 1)))
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT,
                                         "Queue entries must be a power of two from %u to %u, not %u.",
                                         ZCUSB_RING_MIN_ENTRIES, ZCUSB_RING_MAX_ENTRIES, entries);
        size = ring_size(entries);
        /* Charged with the ring: what zcusbd itself may hold for the queue,
         * at most one completion (backlog) and one held entry per
         * completion slot. */
        charged = size + (size_t) ring_cq_entries(entries) * (sizeof(struct zcusb_cqe) + sizeof(struct zcusb_sqe));

        r = claim_take_count(c, QUOTA_QUEUES, error);
        if (r < 0)
                return r;
        r = claim_charge(c, charged, error);
        if (r < 0) {
                claim_put_count(c, QUOTA_QUEUES);
                return r;
        }
        q = calloc(1, sizeof(*q));
        if (!q) {
                claim_uncharge(c, charged);
                claim_put_count(c, QUOTA_QUEUES);
                return -ENOMEM;
        }
        /* Linked and charged from here: queue_free() undoes both. */
        *q = (Queue) {
                .claim = c, .id = c->next_queue_id++, .size = size, .charged = charged,
                .submit_fd = -EBADF, .complete_fd = -EBADF,
        };
        TAILQ_INIT(&q->deadlines);
        TAILQ_INSERT_TAIL(&c->queues, q, link);
        c->n_queues++;

        r = memfd_new_sealed("zcusb-queue", size, &fd, &map);
        if (r < 0)
                goto fail;
        q->map = map;
        ring_init(&q->ring, map, entries);

        q->backlog = calloc(q->ring.cq_entries, sizeof(*q->backlog));
        if (!q->backlog) {
                r = -ENOMEM;
                goto fail;
        }
        q->submit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        q->complete_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->submit_fd < 0 || q->complete_fd < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(c->manager->event, &q->submit_source, q->submit_fd, EPOLLIN | EPOLLET, queue_on_submit,
                            q);
        if (r >= 0)
                r = sd_event_add_defer(c->manager->event, &q->defer_source, queue_on_defer, q);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->defer_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(c->manager->event, &q->poll_source, CLOCK_MONOTONIC, QUEUE_POLL_USEC,
                                               QUEUE_POLL_USEC / 4, queue_on_poll, q);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->poll_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(c->manager->event, &q->grace_source, CLOCK_MONOTONIC,
                                               QUEUE_GRACE_MIN_USEC, QUEUE_GRACE_MIN_USEC / 4, queue_on_grace, q);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->grace_source, SD_EVENT_OFF);
        /* Its time is set whenever it is armed (transfer.c); 1 ms accuracy,
         * as a transfer's timeout always had. */
        if (r >= 0)
                r = sd_event_add_time(c->manager->event, &q->deadline_source, CLOCK_MONOTONIC, 0, 1000,
                                      transfer_on_deadline, q);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->deadline_source, SD_EVENT_OFF);
        if (r < 0)
                goto fail;
        queue_attach_kernel(q, fd);
        *ret_fd = TAKE_FD(fd);
        *ret = TAKE_PTR(q);
        return 0;

fail:
        log_warning_errno(r, "Cannot create a queue: %m");
        return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED, "zcusbd cannot create a queue: %s.", strerror(-r));
}

Queue *queue_free(Queue *q) {
        Claim *c;

        if (!q)
                return NULL;
        c = q->claim;
        queue_detach_kernel(q, -ECANCELED);
        if (q->in_flight > 0)
                log_error("Queue %u of %s freed with %u transfers in flight: bug.", q->id, c->object_path,
                          q->in_flight);
        queue_unkick(q);
        TAILQ_REMOVE(&c->queues, q, link);
        c->n_queues--;
        sd_event_source_disable_unref(q->submit_source);
        sd_event_source_disable_unref(q->defer_source);
        sd_event_source_disable_unref(q->poll_source);
        sd_event_source_disable_unref(q->grace_source);
        sd_event_source_disable_unref(q->deadline_source);
        if (q->submit_fd >= 0)
                close(q->submit_fd);
        if (q->complete_fd >= 0)
                close(q->complete_fd);
        if (q->map)
                munmap(q->map, q->size);
        free(q->backlog);
        free(q->held);
        claim_uncharge(c, q->charged);
        claim_put_count(c, QUOTA_QUEUES);
        free(q);
        return NULL;
}

unsigned queue_cancel_all(Queue *q) {
        Transfer *t, *next;

        queue_detach_kernel(q, -ECANCELED);
        TAILQ_FOREACH_SAFE(t, &q->claim->in_flight, link, next)
                if (t->queue == q)
                        transfer_cancel(t, -ECANCELED);
        return q->in_flight;
}

void queue_stop(Queue *q, int end_status) {
        queue_detach_kernel(q, end_status);
        ring_set_dead(&q->ring, end_status);
}
