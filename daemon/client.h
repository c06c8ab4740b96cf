/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/queue.h>
#include <systemd/sd-bus.h>

#include "forward.h"
#include "policy.h"
#include "quota.h"

/* A bus connection that holds claims: what it is charged, and who it is. */
struct Client {
        Manager *manager;
        char *name;           /* unique bus name */
        sd_bus_track *track;  /* tells us when the connection goes away */
        Caller caller;        /* identity at first claim, for revocation checks */
        QuotaAccount account;
        bool disconnected;
        TAILQ_HEAD(, Claim) claims;
        TAILQ_ENTRY(Client) link;
};

/* The client for MESSAGE's sender, created (and tracked) on first use. */
int manager_acquire_client(Manager *m, sd_bus_message *message, const Caller *caller, Client **ret);

/* Unlink and free (its claims must be gone). */
Client *client_free(Client *c);

/* Free the client once it has neither a connection nor claims. */
void client_maybe_free(Client *c);
