/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/queue.h>
#include <systemd/sd-bus.h>

#include "forward.h"
#include "policy.h"

/* Who is calling: a sender's uid and groups as the bus driver reports them
 * (GetConnectionCredentials: UnixUserID, UnixGroupIDs, the latter from
 * SO_PEERGROUPS, so a sandboxed process that dropped a group does not get it
 * back from /etc/group). A connection's credentials never change: they are
 * asked once and kept while the connection lives (bounded, least recently
 * used first out).
 *
 * Methods that need the caller go through caller_call(): with the
 * credentials known the handler runs at once; otherwise the bus driver is
 * asked asynchronously and the handler runs, and replies, when the answer
 * comes, so a slow bus never stalls the loop that also serves the rings.
 * Only lookups inside sd-bus's own dispatch (Properties, Introspect,
 * GetManagedObjects, which cannot wait) ask synchronously on a miss: once
 * per connection, not per message. */

typedef struct CallerCache {
        TAILQ_HEAD(CachedCallerList, CachedCaller) entries; /* most recently used first */
        size_t n_entries;
        TAILQ_HEAD(, CallerQuery) queries;  /* asked, not yet answered */
} CallerCache;

void caller_cache_init(CallerCache *cache);
void caller_cache_done(CallerCache *cache);
/* NAME's connection is gone. */
void caller_cache_forget(CallerCache *cache, const char *name);

/* A method body that needs the caller. Like an sd-bus handler: replies
 * itself, or returns a negative errno / sets *error. */
typedef int (*caller_handler_t)(sd_bus_message *message, Manager *m, const Caller *caller, sd_bus_error *error);

/* Run HANDLER for MESSAGE now or once the caller is known. For use as the
 * whole body of a vtable method. */
int caller_call(Manager *m, sd_bus_message *message, caller_handler_t handler, sd_bus_error *error);

/* The caller at once, asking synchronously on a miss (see above). */
int manager_get_caller(Manager *m, sd_bus_message *message, const Caller **ret);
