/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/queue.h>
#include <systemd/sd-bus.h>

#include "forward.h"
#include "policy.h"
#include "quota.h"

/* A bus connection zcusbd keeps state for: one that holds claims or asked
 * for device signals (Subscribe). What the user-facing text calls a
 * "client". Bounded per uid and in all (ClientsPerUser=, ClientsGlobal=).
 *
 * No per-peer bus match: one NameOwnerChanged match of the manager tells
 * every peer's departure, so no number of peers can exhaust the bus
 * daemon's match rules on zcusbd's connection. */
struct Peer {
        Manager *manager;
        char *name;           /* unique bus name */
        Caller caller;        /* identity at first contact; a connection's credentials never change */
        QuotaAccount account;
        bool subscribed;      /* gets device signals, unicast (those it may see) */
        /* Devices it was shown while subscribed (by id): it hears of their
         * removal even when, on the way out, the device no longer reads as
         * visible (its interfaces, and their grants, go first). */
        uint64_t *known_devices;
        size_t n_known_devices;
        bool disconnected;
        bool in_gc_queue;
        TAILQ_HEAD(, Claim) claims;
        TAILQ_ENTRY(Peer) link;
        TAILQ_ENTRY(Peer) gc_link;
};

/* The peer for MESSAGE's sender: the existing one, or a new one when the
 * limits allow (else a QuotaExceeded bus error in *error). A new peer that
 * ends up holding nothing is collected by the manager's next GC pass. */
int manager_acquire_peer(Manager *m, sd_bus_message *message, const Caller *caller, Peer **ret,
                         sd_bus_error *error);
Peer *manager_find_peer(Manager *m, const char *name);

/* Link a new peer NAME with CALLER's identity, counted against
 * ClientsPerUser=/ClientsGlobal= (else QuotaExceeded in *error). */
int peer_new(Manager *m, const char *name, const Caller *caller, Peer **ret, sd_bus_error *error);
/* Unlink and free. Only the GC pass calls it, once peer_may_gc() says so. */
Peer *peer_free(Peer *p);
bool peer_may_gc(const Peer *p);
void peer_add_to_gc_queue(Peer *p);

bool peer_knows_device(const Peer *p, uint64_t device_id);
int peer_learn_device(Peer *p, uint64_t device_id);
void peer_forget_device(Peer *p, uint64_t device_id);
