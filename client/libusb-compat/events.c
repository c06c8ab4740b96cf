/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Event handling as libusb defines it (one thread handles events, others
 * wait for it), on one epoll fd that holds the completion eventfds of every
 * claim's queue, the D-Bus connection and a wake eventfd. Programs with
 * their own loop see just that one fd in libusb_get_pollfds(). Transfer
 * timeouts are zcusbd's (timeout_ms of each entry): there is never a timeout
 * for the program to handle, libusb_pollfds_handle_timeouts() says so.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "compat-internal.h"

#define EPOLL_KEY_WAKE 0
#define EPOLL_KEY_BUS 1
#define CANCEL_RETRY_MS 4

int events_watch_claim(struct libusb_context *ctx, CompatClaim *c) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = c->id };

        if (epoll_ctl(ctx->epoll_fd, EPOLL_CTL_ADD, c->queue_fd, &ev) < 0)
                return -errno;
        return 0;
}

void events_unwatch_claim(struct libusb_context *ctx, CompatClaim *c) {
        if (c->queue_fd >= 0)
                (void) epoll_ctl(ctx->epoll_fd, EPOLL_CTL_DEL, c->queue_fd, NULL);
}

/* ---- the locks ---- */

int LIBUSB_CALL libusb_try_lock_events(libusb_context *ctx) {
        ctx = compat_ctx(ctx);
        if (pthread_mutex_trylock(&ctx->events_lock) != 0)
                return 1;
        ctx->event_handler = pthread_self();
        ctx->event_handler_set = true;
        return 0;
}

void LIBUSB_CALL libusb_lock_events(libusb_context *ctx) {
        ctx = compat_ctx(ctx);
        pthread_mutex_lock(&ctx->events_lock);
        ctx->event_handler = pthread_self();
        ctx->event_handler_set = true;
}

/* Waiters (libusb_wait_for_event) re-check their condition: a transfer
 * they wait for may have completed, or one of them may take over event
 * handling. libusb wakes them after completions and on unlock_events. */
static void signal_event_waiters(libusb_context *ctx) {
        pthread_mutex_lock(&ctx->waiters_lock);
        pthread_cond_broadcast(&ctx->waiters_cond);
        pthread_mutex_unlock(&ctx->waiters_lock);
}

void LIBUSB_CALL libusb_unlock_events(libusb_context *ctx) {
        ctx = compat_ctx(ctx);
        ctx->event_handler_set = false;
        pthread_mutex_unlock(&ctx->events_lock);
        signal_event_waiters(ctx);
}

int LIBUSB_CALL libusb_event_handling_ok(libusb_context *ctx) {
        (void) ctx;
        return 1; /* nothing ever asks the handler to step aside (no fd set changes) */
}

int LIBUSB_CALL libusb_event_handler_active(libusb_context *ctx) {
        ctx = compat_ctx(ctx);
        return ctx->event_handler_set ? 1 : 0;
}

void LIBUSB_CALL libusb_interrupt_event_handler(libusb_context *ctx) {
        ctx = compat_ctx(ctx);
        __atomic_store_n(&ctx->interrupted, 1, __ATOMIC_RELEASE);
        ctx_wake(ctx);
}

void LIBUSB_CALL libusb_lock_event_waiters(libusb_context *ctx) {
        pthread_mutex_lock(&compat_ctx(ctx)->waiters_lock);
}

void LIBUSB_CALL libusb_unlock_event_waiters(libusb_context *ctx) {
        pthread_mutex_unlock(&compat_ctx(ctx)->waiters_lock);
}

int LIBUSB_CALL libusb_wait_for_event(libusb_context *ctx, struct timeval *tv) {
        struct timespec ts;

        ctx = compat_ctx(ctx);
        if (!tv) {
                pthread_cond_wait(&ctx->waiters_cond, &ctx->waiters_lock);
                return 0;
        }
        if (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)
                return LIBUSB_ERROR_INVALID_PARAM;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += tv->tv_sec;
        ts.tv_nsec += tv->tv_usec * 1000;
        if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
        }
        return pthread_cond_timedwait(&ctx->waiters_cond, &ctx->waiters_lock, &ts) == ETIMEDOUT ? 1 : 0;
}

/* ---- handling ---- */

static CompatClaim *claim_by_id(struct libusb_context *ctx, uint64_t id) {
        CompatClaim *c;

        LIST_FOREACH(c, &ctx->claims, link)
                if (c->id == id)
                        return c;
        return NULL;
}

/* Bus traffic: hotplug signals, Ended, zcusbd going away. */
static void handle_bus(struct libusb_context *ctx) {
        CompatClaim *c;
        int r;

        bus_lock(ctx);
        do
                r = sd_bus_process(ctx->zc->bus, NULL);
        while (r > 0);
        pthread_mutex_unlock(&ctx->bus_lock); /* not bus_unlock(): no need to wake ourselves */
        if (r < 0 && r != -ECONNRESET && r != -ENOTCONN)
                log_dbg(ctx, "bus: %s", strerror(-r));

        /* A claim zcusbd ended (device removed, revoked) or whose zcusbd is gone:
         * what is left in flight after the completions zcusbd posted never ends
         * otherwise. */
        pthread_mutex_lock(&ctx->lock);
        LIST_FOREACH(c, &ctx->claims, link) {
                const char *reason = NULL;

                bus_lock(ctx);
                r = zcusb_claim_is_ended(c->claim, &reason);
                pthread_mutex_unlock(&ctx->bus_lock);
                if (r <= 0)
                        continue;
                if (!c->dead)
                        log_info(ctx, "interface %u of %s ended: %s", c->interface, c->handle->dev->object,
                                 reason ?: "?");
                c->dead = true;
                io_reap_claim(c);
                if (c->in_flight > 0 || !TAILQ_EMPTY(&c->waiting))
                        io_flush_claim(c, streq_ptr(reason, "revoked") ? LIBUSB_TRANSFER_ERROR :
                                          LIBUSB_TRANSFER_NO_DEVICE);
        }
        pthread_mutex_unlock(&ctx->lock);
}

static int handle_events(struct libusb_context *ctx, int timeout_ms) {
        struct epoll_event evs[16];
        bool bus = false;
        int n;

        if (__atomic_exchange_n(&ctx->interrupted, 0, __ATOMIC_ACQ_REL))
                return LIBUSB_SUCCESS;

        /* Completions already decided (local answers, flushed transfers) come first.
         * Cancels that found a ring full go when zcusbd has taken entries, which
         * nothing announces: look again soon. */
        pthread_mutex_lock(&ctx->lock);
        if (io_retry_cancels(ctx) && (timeout_ms < 0 || timeout_ms > CANCEL_RETRY_MS))
                timeout_ms = CANCEL_RETRY_MS;
        if (!TAILQ_EMPTY(&ctx->done))
                timeout_ms = 0;
        pthread_mutex_unlock(&ctx->lock);
        pthread_mutex_lock(&ctx->hotplug_lock);
        if (!TAILQ_EMPTY(&ctx->hotplug_events))
                timeout_ms = 0;
        pthread_mutex_unlock(&ctx->hotplug_lock);

        n = epoll_wait(ctx->epoll_fd, evs, ELEMENTSOF(evs), timeout_ms);
        if (n < 0)
                return errno == EINTR ? LIBUSB_ERROR_INTERRUPTED : LIBUSB_ERROR_IO;

        for (int i = 0; i < n; i++) {
                uint64_t key = evs[i].data.u64, v;

                if (key == EPOLL_KEY_WAKE) {
                        (void) !read(ctx->wake_fd, &v, sizeof(v));
                        bus = true; /* a bus call elsewhere may have queued signals */
                } else if (key == EPOLL_KEY_BUS)
                        bus = true;
                else {
                        CompatClaim *c;

                        pthread_mutex_lock(&ctx->lock);
                        c = claim_by_id(ctx, key);
                        if (c) {
                                /* The doorbell first, then the ring: a completion posted in
                                 * between rings again. (zcusb_queue_wait() leaves the eventfd
                                 * readable while completions wait, which would wake epoll once
                                 * more for nothing.) epoll said readable: this read cannot block. */
                                (void) !read(c->queue_fd, &v, sizeof(v));
                                io_reap_claim(c);
                        }
                        pthread_mutex_unlock(&ctx->lock);
                }
        }
        if (bus)
                handle_bus(ctx);
        io_run_completions(ctx);
        signal_event_waiters(ctx);
        hotplug_dispatch(ctx);
        return LIBUSB_SUCCESS;
}

static int timeval_to_ms(const struct timeval *tv) {
        if (!tv)
                return -1;
        if (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)
                return -2;
        if (tv->tv_sec > 86400)
                return 86400 * 1000;
        return (int) (tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000);
}

int LIBUSB_CALL libusb_handle_events_locked(libusb_context *ctx, struct timeval *tv) {
        int ms = timeval_to_ms(tv);

        ctx = compat_ctx(ctx);
        if (ms == -2)
                return LIBUSB_ERROR_INVALID_PARAM;
        return handle_events(ctx, ms);
}

int LIBUSB_CALL libusb_handle_events_timeout_completed(libusb_context *ctx, struct timeval *tv, int *completed) {
        int ms = timeval_to_ms(tv), r;

        ctx = compat_ctx(ctx);
        if (ms == -2)
                return LIBUSB_ERROR_INVALID_PARAM;
        if (ms < 0)
                ms = 60 * 1000; /* libusb too never waits unbounded in one call */
retry:
        if (libusb_try_lock_events(ctx) == 0) {
                if (completed == NULL || !*completed)
                        r = handle_events(ctx, ms);
                else
                        r = LIBUSB_SUCCESS;
                libusb_unlock_events(ctx);
                return r;
        }
        /* Another thread handles events: wait for it to finish something. */
        libusb_lock_event_waiters(ctx);
        if (completed && *completed) {
                libusb_unlock_event_waiters(ctx);
                return LIBUSB_SUCCESS;
        }
        if (!libusb_event_handler_active(ctx)) {
                libusb_unlock_event_waiters(ctx);
                goto retry;
        }
        struct timeval wait = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
        r = libusb_wait_for_event(ctx, &wait);
        libusb_unlock_event_waiters(ctx);
        return r == 1 ? LIBUSB_SUCCESS : LIBUSB_SUCCESS; /* a timeout is no error */
}

int LIBUSB_CALL libusb_handle_events_timeout(libusb_context *ctx, struct timeval *tv) {
        return libusb_handle_events_timeout_completed(ctx, tv, NULL);
}

int LIBUSB_CALL libusb_handle_events(libusb_context *ctx) {
        struct timeval tv = { .tv_sec = 60 };
        return libusb_handle_events_timeout_completed(ctx, &tv, NULL);
}

int LIBUSB_CALL libusb_handle_events_completed(libusb_context *ctx, int *completed) {
        struct timeval tv = { .tv_sec = 60 };
        return libusb_handle_events_timeout_completed(ctx, &tv, completed);
}

int LIBUSB_CALL libusb_pollfds_handle_timeouts(libusb_context *ctx) {
        (void) ctx;
        return 1;
}

int LIBUSB_CALL libusb_get_next_timeout(libusb_context *ctx, struct timeval *tv) {
        (void) ctx, (void) tv;
        return 0; /* zcusbd times transfers out itself */
}

const struct libusb_pollfd **LIBUSB_CALL libusb_get_pollfds(libusb_context *ctx) {
        struct {
                const struct libusb_pollfd *list[2];
                struct libusb_pollfd fd;
        } *r;

        ctx = compat_ctx(ctx);
        r = calloc(1, sizeof(*r));
        if (!r)
                return NULL;
        r->fd = (struct libusb_pollfd) { .fd = ctx->epoll_fd, .events = POLLIN };
        r->list[0] = &r->fd;
        return r->list; /* first member: libusb_free_pollfds() frees it whole */
}

void LIBUSB_CALL libusb_free_pollfds(const struct libusb_pollfd **pollfds) {
        free((void *) pollfds);
}

void LIBUSB_CALL libusb_set_pollfd_notifiers(libusb_context *ctx, libusb_pollfd_added_cb added_cb,
                                             libusb_pollfd_removed_cb removed_cb, void *user_data) {
        ctx = compat_ctx(ctx);
        /* The set is one fd for the context's life: no change ever to announce. */
        ctx->pollfd_added = added_cb;
        ctx->pollfd_removed = removed_cb;
        ctx->pollfd_user_data = user_data;
}
