/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "claim.h"
#include "client.h"
#include "log.h"
#include "manager.h"
#include "util.h"

static int on_client_gone(sd_bus_track *track, void *userdata) {
        Client *c = userdata;
        Claim *claim, *next;

        (void) track;
        log_debug("Client %s went away; ending its claims.", c->name);
        c->disconnected = true;
        /* An empty track keeps calling us while it lives: done with it. */
        c->track = sd_bus_track_unref(c->track);
        /* Ending a claim may free it (and, with the last one, the client):
         * walk with a saved next pointer and hold off the free until done. */
        TAILQ_FOREACH_SAFE(claim, &c->claims, client_link, next)
                claim_stop(claim, CLAIM_END_RELEASED, true);
        client_maybe_free(c);
        return 0;
}

Client *client_free(Client *c) {
        if (!c)
                return NULL;
        TAILQ_REMOVE(&c->manager->clients, c, link);
        sd_bus_track_unref(c->track);
        caller_done(&c->caller);
        free(c->name);
        free(c);
        return NULL;
}

void client_maybe_free(Client *c) {
        if (c->disconnected && TAILQ_EMPTY(&c->claims)) {
                if (c->account.bytes != 0)
                        log_error("Client %s leaves %llu bytes charged: accounting bug.", c->name,
                                  (unsigned long long) c->account.bytes);
                client_free(c);
        }
}

static int caller_copy(const Caller *from, Caller *to) {
        *to = (Caller) { .uid = from->uid };
        if (from->n_gids == 0)
                return 0;
        to->gids = calloc(from->n_gids, sizeof(gid_t));
        if (!to->gids)
                return -ENOMEM;
        memcpy(to->gids, from->gids, from->n_gids * sizeof(gid_t));
        to->n_gids = from->n_gids;
        return 0;
}

int manager_acquire_client(Manager *m, sd_bus_message *message, const Caller *caller, Client **ret) {
        const char *sender = sd_bus_message_get_sender(message);
        Client *c;
        int r;

        if (!sender)
                return -EBADMSG;
        TAILQ_FOREACH(c, &m->clients, link)
                if (!c->disconnected && streq(c->name, sender)) {
                        *ret = c;
                        return 0;
                }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->manager = m;
        TAILQ_INIT(&c->claims);
        TAILQ_INSERT_TAIL(&m->clients, c, link);
        c->account.uid = caller->uid;
        c->name = strdup(sender);
        if (!c->name) {
                client_free(c);
                return -ENOMEM;
        }
        r = caller_copy(caller, &c->caller);
        if (r >= 0)
                r = sd_bus_track_new(m->bus, &c->track, on_client_gone, c);
        if (r >= 0)
                r = sd_bus_track_add_name(c->track, sender);
        if (r < 0) {
                client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}
