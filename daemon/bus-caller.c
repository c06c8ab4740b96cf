/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-caller.h"
#include "log.h"
#include "manager.h"
#include "util.h"
#include "zcusb-dbus.h"

/* Enough for every connection that talks to zcusbd at once on a busy
 * machine; beyond it the least recently used is asked again when it comes. */
#define CALLER_CACHE_MAX 1024u
/* Method calls of one sender waiting for its credentials. */
#define CALLER_QUERY_WAITERS_MAX 64u

typedef struct CachedCaller {
        char *name;
        Caller caller;
        TAILQ_ENTRY(CachedCaller) link;
} CachedCaller;

typedef struct CallerWaiter {
        sd_bus_message *message;
        caller_handler_t handler;
        TAILQ_ENTRY(CallerWaiter) link;
} CallerWaiter;

typedef struct CallerQuery {
        Manager *manager;
        char *name;
        sd_bus_slot *slot;
        unsigned n_waiters;
        TAILQ_HEAD(, CallerWaiter) waiters;
        TAILQ_ENTRY(CallerQuery) link;
} CallerQuery;

void caller_cache_init(CallerCache *cache) {
        *cache = (CallerCache) {};
        TAILQ_INIT(&cache->entries);
        TAILQ_INIT(&cache->queries);
}

static void cached_caller_free(CallerCache *cache, CachedCaller *e) {
        TAILQ_REMOVE(&cache->entries, e, link);
        cache->n_entries--;
        caller_done(&e->caller);
        free(e->name);
        free(e);
}

static void caller_query_free(CallerCache *cache, CallerQuery *q) {
        CallerWaiter *w;

        while ((w = TAILQ_FIRST(&q->waiters))) {
                TAILQ_REMOVE(&q->waiters, w, link);
                sd_bus_message_unref(w->message);
                free(w);
        }
        TAILQ_REMOVE(&cache->queries, q, link);
        sd_bus_slot_unref(q->slot);
        free(q->name);
        free(q);
}

void caller_cache_done(CallerCache *cache) {
        CachedCaller *e;
        CallerQuery *q;

        while ((q = TAILQ_FIRST(&cache->queries)))
                caller_query_free(cache, q);
        while ((e = TAILQ_FIRST(&cache->entries)))
                cached_caller_free(cache, e);
}

void caller_cache_forget(CallerCache *cache, const char *name) {
        CachedCaller *e;

        TAILQ_FOREACH(e, &cache->entries, link)
                if (streq(e->name, name)) {
                        cached_caller_free(cache, e);
                        return;
                }
}

static const Caller *caller_cache_find(CallerCache *cache, const char *name) {
        CachedCaller *e;

        TAILQ_FOREACH(e, &cache->entries, link)
                if (streq(e->name, name)) {
                        TAILQ_REMOVE(&cache->entries, e, link);
                        TAILQ_INSERT_HEAD(&cache->entries, e, link);
                        return &e->caller;
                }
        return NULL;
}

/* Takes over *caller. */
static int caller_cache_add(CallerCache *cache, const char *name, Caller *caller, const Caller **ret) {
        CachedCaller *e;

        caller_cache_forget(cache, name);
        if (cache->n_entries >= CALLER_CACHE_MAX)
                cached_caller_free(cache, TAILQ_LAST(&cache->entries, CachedCallerList));
        e = calloc(1, sizeof(*e));
        if (!e || !(e->name = strdup(name))) {
                free(e);
                caller_done(caller);
                return -ENOMEM;
        }
        e->caller = *caller;
        *caller = (Caller) {};
        TAILQ_INSERT_HEAD(&cache->entries, e, link);
        cache->n_entries++;
        *ret = &e->caller;
        return 0;
}

/* The reply of GetConnectionCredentials: a{sv} with UnixUserID and, from
 * dbus-daemon >= 1.11 and dbus-broker, UnixGroupIDs. No UnixGroupIDs means no
 * group grants; no UnixUserID, no caller. */
static int caller_from_credentials(sd_bus_message *reply, Caller *ret) {
        _cleanup_free_ gid_t *gids = NULL;
        bool have_uid = false;
        size_t n_gids = 0;
        uint32_t uid = 0, pid = 0;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "UnixUserID")) {
                        r = sd_bus_message_read(reply, "v", "u", &uid);
                        have_uid = r >= 0;
                } else if (streq(key, "ProcessID"))
                        r = sd_bus_message_read(reply, "v", "u", &pid);
                else if (streq(key, "UnixGroupIDs")) {
                        const void *p;
                        size_t size;

                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r >= 0)
                                r = sd_bus_message_read_array(reply, 'u', &p, &size);
                        if (r >= 0) {
                                free(gids);
                                n_gids = size / sizeof(uint32_t);
                                gids = n_gids > 0 ? calloc(n_gids, sizeof(gid_t)) : NULL;
                                if (n_gids > 0 && !gids)
                                        return -ENOMEM;
                                for (size_t i = 0; i < n_gids; i++)
                                        gids[i] = ((const uint32_t *) p)[i];
                                r = sd_bus_message_exit_container(reply);
                        }
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!have_uid)
                return -ENODATA;
        *ret = (Caller) { .uid = uid, .pid = (pid_t) pid, .gids = TAKE_PTR(gids), .n_gids = n_gids };
        return 0;
}

static void caller_reply_failure(sd_bus_message *message, int r, const sd_bus_error *error) {
        if (sd_bus_error_is_set(error))
                (void) sd_bus_reply_method_error(message, error);
        else
                (void) sd_bus_reply_method_errorf(message, ZCUSB_ERROR_FAILED, "zcusbd could not serve the call: %s.",
                                                  strerror(-r));
}

static int caller_on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        CallerQuery *q = userdata;
        Manager *m = q->manager;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const Caller *caller = NULL;
        Caller c = {};
        CallerWaiter *w;
        int r;

        (void) ret_error;
        if (e)
                r = -sd_bus_error_get_errno(e) ?: -EIO;
        else
                r = caller_from_credentials(reply, &c);
        if (r >= 0)
                r = caller_cache_add(&m->callers, q->name, &c, &caller);
        if (r < 0)
                log_debug_errno(r, "No credentials for %s: %m", q->name);

        /* With the cache filled, a handler that calls caller_call() again
         * for this sender is served from it, not from this query. */
        while ((w = TAILQ_FIRST(&q->waiters))) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                int k;

                TAILQ_REMOVE(&q->waiters, w, link);
                if (r < 0)
                        k = sd_bus_error_setf(&error, ZCUSB_ERROR_FAILED,
                                              "zcusbd cannot tell who is calling: %s.", strerror(-r));
                else
                        k = w->handler(w->message, m, caller, &error);
                if (k < 0 || sd_bus_error_is_set(&error))
                        caller_reply_failure(w->message, k, &error);
                sd_bus_message_unref(w->message);
                free(w);
                /* A handler may have filled the cache enough to evict our
                 * entry: look it up again for the next waiter. */
                if (r >= 0 && !(caller = caller_cache_find(&m->callers, q->name)))
                        r = -ENOENT;
        }
        caller_query_free(&m->callers, q);
        return 0;
}

int caller_call(Manager *m, sd_bus_message *message, caller_handler_t handler, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(message);
        const Caller *caller;
        CallerQuery *q = NULL, *i;
        CallerWaiter *w;
        int r;

        if (!sender) /* a direct connection: none in production, the bus is the only way in */
                return sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED, "Calls must come through the bus.");
        caller = caller_cache_find(&m->callers, sender);
        if (caller)
                return handler(message, m, caller, error);

        TAILQ_FOREACH(i, &m->callers.queries, link)
                if (streq(i->name, sender)) {
                        q = i;
                        break;
                }
        if (!q) {
                q = calloc(1, sizeof(*q));
                if (!q || !(q->name = strdup(sender))) {
                        free(q);
                        return -ENOMEM;
                }
                q->manager = m;
                TAILQ_INIT(&q->waiters);
                TAILQ_INSERT_TAIL(&m->callers.queries, q, link);
                r = sd_bus_call_method_async(m->bus, &q->slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus", "GetConnectionCredentials",
                                             caller_on_credentials, q, "s", sender);
                if (r < 0) {
                        caller_query_free(&m->callers, q);
                        return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED, "zcusbd cannot ask the bus who is "
                                                 "calling: %s.", strerror(-r));
                }
        }
        if (q->n_waiters >= CALLER_QUERY_WAITERS_MAX)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "Too many calls waiting; retry in a moment.");
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->message = sd_bus_message_ref(message);
        w->handler = handler;
        TAILQ_INSERT_TAIL(&q->waiters, w, link);
        q->n_waiters++;
        return 1; /* answered from caller_on_credentials() */
}

int manager_get_caller(Manager *m, sd_bus_message *message, const Caller **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *sender = sd_bus_message_get_sender(message);
        const Caller *caller;
        Caller c = {};
        int r;

        if (!sender)
                return -EPERM;
        caller = caller_cache_find(&m->callers, sender);
        if (caller) {
                *ret = caller;
                return 0;
        }
        r = sd_bus_call_method(m->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionCredentials", NULL, &reply, "s", sender);
        if (r < 0)
                return r;
        r = caller_from_credentials(reply, &c);
        if (r < 0)
                return r;
        return caller_cache_add(&m->callers, sender, &c, ret);
}
