/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log.h"
#include "manager.h"
#include "peer.h"
#include "util.h"
#include "zcusb-dbus.h"

Peer *manager_find_peer(Manager *m, const char *name) {
        Peer *p;

        TAILQ_FOREACH(p, &m->peers, link)
                if (!p->disconnected && streq(p->name, name))
                        return p;
        return NULL;
}

/* Connected peers, in all and of UID. Peers that left wait for the GC pass
 * but hold no place; root's are exempt from the limits and hold none either. */
static void manager_count_peers(Manager *m, uid_t uid, size_t *ret_all, size_t *ret_of_uid) {
        size_t all = 0, of_uid = 0;
        Peer *p;

        TAILQ_FOREACH(p, &m->peers, link) {
                if (p->disconnected || policy_caller_is_root(&p->caller))
                        continue;
                all++;
                of_uid += p->caller.uid == uid;
        }
        *ret_all = all;
        *ret_of_uid = of_uid;
}

int peer_new(Manager *m, const char *name, const Caller *caller, Peer **ret, sd_bus_error *error) {
        const Config *config = &m->config;
        Peer *p;
        int r;

        if (!policy_caller_is_root(caller)) {
                size_t all, of_user;

                manager_count_peers(m, caller->uid, &all, &of_user);
                /* No count: how busy zcusbd is with others is theirs to know. */
                if (all >= config->clients_global)
                        return sd_bus_error_setf(error, ZCUSB_ERROR_QUOTA_EXCEEDED,
                                                 "zcusbd serves as many clients as it may (ClientsGlobal=%u); "
                                                 "try again later.", config->clients_global);
                if (of_user >= config->clients_per_user)
                        return sd_bus_error_setf(error, ZCUSB_ERROR_QUOTA_EXCEEDED,
                                                 "uid %u has %zu connections with claims or subscriptions "
                                                 "already (ClientsPerUser=%u); close some.",
                                                 (unsigned) caller->uid, of_user, config->clients_per_user);
        }

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->account.uid = caller->uid;
        TAILQ_INIT(&p->claims);
        p->name = strdup(name);
        r = p->name ? caller_copy(caller, &p->caller) : -ENOMEM;
        if (r < 0) {
                free(p->name);
                free(p);
                return r;
        }
        TAILQ_INSERT_TAIL(&m->peers, p, link);
        m->n_peers++;
        *ret = p;
        return 0;
}

Peer *peer_free(Peer *p) {
        if (!p)
                return NULL;
        if (!TAILQ_EMPTY(&p->claims))
                log_error("Peer %s freed with claims: bug.", p->name);
        if (p->account.bytes != 0)
                log_error("Peer %s leaves %llu bytes charged: accounting bug.", p->name,
                          (unsigned long long) p->account.bytes);
        if (p->in_gc_queue)
                TAILQ_REMOVE(&p->manager->peer_gc_queue, p, gc_link);
        TAILQ_REMOVE(&p->manager->peers, p, link);
        p->manager->n_peers--;
        caller_done(&p->caller);
        free(p->known_devices);
        free(p->name);
        free(p);
        return NULL;
}

bool peer_may_gc(const Peer *p) {
        return TAILQ_EMPTY(&p->claims) && (p->disconnected || !p->subscribed);
}

void peer_add_to_gc_queue(Peer *p) {
        if (p->in_gc_queue)
                return;
        TAILQ_INSERT_TAIL(&p->manager->peer_gc_queue, p, gc_link);
        p->in_gc_queue = true;
        manager_schedule_gc(p->manager);
}

int manager_acquire_peer(Manager *m, sd_bus_message *message, const Caller *caller, Peer **ret,
                         sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(message);
        Peer *p;
        int r;

        if (!sender)
                return -EBADMSG;
        p = manager_find_peer(m, sender);
        if (!p) {
                r = peer_new(m, sender, caller, &p, error);
                if (r < 0 || sd_bus_error_is_set(error))
                        return r;
                /* Collected at once unless the caller gives it something to hold. */
                peer_add_to_gc_queue(p);
        }
        *ret = p;
        return 0;
}

bool peer_knows_device(const Peer *p, uint64_t device_id) {
        for (size_t i = 0; i < p->n_known_devices; i++)
                if (p->known_devices[i] == device_id)
                        return true;
        return false;
}

int peer_learn_device(Peer *p, uint64_t device_id) {
        uint64_t *n;

        if (peer_knows_device(p, device_id))
                return 0;
        n = reallocarray(p->known_devices, p->n_known_devices + 1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        p->known_devices = n;
        p->known_devices[p->n_known_devices++] = device_id;
        return 0;
}

void peer_forget_device(Peer *p, uint64_t device_id) {
        for (size_t i = 0; i < p->n_known_devices; i++)
                if (p->known_devices[i] == device_id) {
                        p->known_devices[i] = p->known_devices[--p->n_known_devices];
                        return;
                }
}
