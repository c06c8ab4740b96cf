/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "buffer.h"
#include "claim-dbus.h"
#include "claim.h"
#include "device.h"
#include "log.h"
#include "manager.h"
#include "peer.h"
#include "queue.h"
#include "transfer.h"
#include "util.h"
#include "zcusb-dbus.h"

const char *claim_end_to_string(ClaimEnd e) {
        switch (e) {
        case CLAIM_ACTIVE:             return "active";
        case CLAIM_END_RELEASED:       return "released";
        case CLAIM_END_DEVICE_REMOVED: return "device-removed";
        case CLAIM_END_REVOKED:        return "revoked";
        case CLAIM_END_SHUTDOWN:       return "shutdown";
        }
        return "?";
}

int claim_end_status(ClaimEnd e) {
        switch (e) {
        case CLAIM_END_DEVICE_REMOVED: return -ENODEV;
        case CLAIM_END_REVOKED:        return -EACCES;
        case CLAIM_END_SHUTDOWN:       return -ESHUTDOWN;
        default:                       return -ECANCELED;
        }
}

Buffer *claim_find_buffer(Claim *c, uint32_t id) {
        Buffer *b;

        TAILQ_FOREACH(b, &c->buffers, link)
                if (b->backend.id == id)
                        return b;
        return NULL;
}

Queue *claim_find_queue(Claim *c, uint32_t id) {
        Queue *q;

        TAILQ_FOREACH(q, &c->queues, link)
                if (q->id == id)
                        return q;
        return NULL;
}

void claim_add_counters(Claim *c, const TransferCounters *n) {
        TransferCounters ended = *n;

        ended.in_flight = 0;
        transfer_counters_add(&c->counted, &ended);
}

void claim_get_counters(Claim *c, TransferCounters *ret) {
        TransferCounters n = c->counted;
        Queue *q;

        n.in_flight = c->n_in_flight;
        TAILQ_FOREACH(q, &c->queues, link) {
                TransferCounters k;

                (void) queue_kernel_counters(q, &k);
                transfer_counters_add(&n, &k);
        }
        *ret = n;
}

int claim_charge(Claim *c, uint64_t bytes, sd_bus_error *error) {
        _cleanup_free_ char *why = NULL;
        int r;

        r = quota_charge_bytes(&c->manager->ledger, &c->manager->config, &c->peer->account, bytes, &why);
        if (r == -EDQUOT) {
                (void) sd_bus_error_setf(error, ZCUSB_ERROR_QUOTA_EXCEEDED, "%s.", why ?: "Quota exceeded");
                return -EDQUOT;
        }
        if (r < 0)
                return r;
        c->charged_bytes += bytes;
        return 0;
}

void claim_uncharge(Claim *c, uint64_t bytes) {
        quota_uncharge_bytes(&c->manager->ledger, &c->peer->account, bytes);
        c->charged_bytes -= bytes <= c->charged_bytes ? bytes : c->charged_bytes;
}

int claim_take_count(Claim *c, QuotaCount kind, sd_bus_error *error) {
        _cleanup_free_ char *why = NULL;
        int r;

        r = quota_take(&c->manager->config, &c->peer->account, kind, &why);
        if (r == -EDQUOT)
                (void) sd_bus_error_setf(error, ZCUSB_ERROR_QUOTA_EXCEEDED, "%s.", why ?: "Quota exceeded");
        return r;
}

void claim_put_count(Claim *c, QuotaCount kind) {
        quota_put(&c->peer->account, kind);
}

Claim *claim_free(Claim *c) {
        Buffer *b;
        Queue *q;

        if (!c)
                return NULL;
        if (!TAILQ_EMPTY(&c->in_flight)) {
                /* Never free memory a transfer may still touch. */
                log_error("%s: freeing with transfers in flight: bug, leaking it instead.", c->object_path);
                return NULL;
        }

        while ((q = TAILQ_FIRST(&c->queues)))
                queue_free(q);
        while ((b = TAILQ_FIRST(&c->buffers)))
                buffer_free(b);
        transfer_cache_clear(c);
        if (c->charged_bytes != 0)
                log_error("%s: %llu bytes still charged after freeing its objects: accounting bug.",
                          c->object_path, (unsigned long long) c->charged_bytes);
        quota_put(&c->peer->account, QUOTA_CLAIMS);

        if (c->in_gc_queue)
                TAILQ_REMOVE(&c->manager->claim_gc_queue, c, gc_link);
        if (c->device)
                TAILQ_REMOVE(&c->device->claims, c, device_link);
        TAILQ_REMOVE(&c->peer->claims, c, peer_link);
        TAILQ_REMOVE(&c->manager->claims, c, manager_link);
        /* Only a claim that never finished still holds its interface. */
        if (c->backend_interface)
                c->backend->close_interface(c->backend_interface, c->detached_driver);

        claim_reply_release(c);
        sd_bus_message_unref(c->counters_message);
        free(c->detached_driver);
        free(c->object_path);
        free(c);
        return NULL;
}

static bool interface_has_iso(const Device *d, uint8_t interface) {
        for (size_t i = 0; i < d->descriptors.n_alt_settings; i++) {
                const UsbAltSetting *a = &d->descriptors.alt_settings[i];
                if (a->interface_number != interface)
                        continue;
                for (size_t j = 0; j < a->n_endpoints; j++)
                        if ((a->endpoints[j].attributes & 3) == 1)
                                return true;
        }
        return false;
}

/* Claim the interface through the preferred backend, falling back to usbfs
 * when zcusb.ko cannot take it (module gone, ABI mismatch, bind failure, or
 * isochronous endpoints on a module without them). A kernel driver that
 * policy does not let us detach is an answer, not a failure: no fallback. */
static int claim_attach(Manager *m, Device *d, uint8_t interface, bool may_detach, const BackendOps **ret_backend,
                        BackendInterface **ret_interface, char **ret_detached, char **ret_driver) {
        /* Follow what the Backend property announces (no module attempt
         * once zcusb.ko is gone), unless Backend=zcusb asks for it alone. */
        const BackendOps *preferred = m->config.backend == BACKEND_CHOICE_MODULE ? m->backend
                                                                                 : manager_claim_backend(m);
        const BackendOps *candidates[2] = { preferred, &backend_usbfs };
        size_t n = preferred == &backend_usbfs || m->config.backend == BACKEND_CHOICE_MODULE ? 1 : 2;
        const BackendDeviceInfo info = {
                .devnode = d->devnode,
                .sysname = d->sysname,
                .vendor_id = d->vendor_id,
                .product_id = d->product_id,
                .configuration = d->active_configuration,
                .iso = interface_has_iso(d, interface),
        };
        int r = -ENODEV;

        for (size_t i = 0; i < n; i++) {
                const BackendOps *ops = candidates[i];

                free(*ret_detached);
                free(*ret_driver);
                *ret_detached = *ret_driver = NULL;
                r = ops->open_interface(m->event, &m->config, &info, interface, may_detach, ret_interface,
                                        ret_detached, ret_driver);
                if (r >= 0) {
                        *ret_backend = ops;
                        return 0;
                }
                if ((r == -EBUSY && *ret_driver) || r == -ENODEV)
                        return r;
                if (i + 1 < n)
                        log_warning_errno(r, "%s: cannot claim interface %u of %s (%m); falling back to usbfs.",
                                          ops->name, interface, d->object_path);
        }
        return r;
}

int claim_check_interface(Device *d, const Peer *peer, uint8_t interface, sd_bus_error *error) {
        bool known = false;
        Claim *other;

        for (size_t i = 0; i < d->descriptors.n_alt_settings; i++)
                known = known || d->descriptors.alt_settings[i].interface_number == interface;
        if (!known)
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT,
                                         "Device %s has no interface %u in its active configuration.",
                                         d->object_path, interface);
        /* An ended claim holds the interface until its transfers have
         * drained: claiming it meanwhile would share it with them. */
        TAILQ_FOREACH(other, &d->claims, device_link) {
                if (other->interface_number != interface || other->interface_released)
                        continue;
                if (other->end != CLAIM_ACTIVE)
                        return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY,
                                                 "Interface %u of %s is still being released by its last claim; "
                                                 "retry in a moment.", interface, d->object_path);
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "Interface %u of %s is already claimed%s.",
                                         interface, d->object_path,
                                         other->peer == peer ? " by you" : " by another client");
        }
        return 0;
}

int claim_new(Peer *peer, Device *d, uint8_t interface, Claim **ret, sd_bus_error *error) {
        Manager *m = peer->manager;
        _cleanup_free_ char *why = NULL, *driver = NULL, *detached = NULL, *object_path = NULL;
        const BackendOps *backend = NULL;
        BackendInterface *bi = NULL;
        PolicyProps policy;
        Claim *c;
        int r;

        r = claim_check_interface(d, peer, interface, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        if (isempty(d->devnode))
                return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE,
                                         "Device %s has no device node.", d->object_path);

        r = quota_take(&m->config, &peer->account, QUOTA_CLAIMS, &why);
        if (r == -EDQUOT)
                return sd_bus_error_setf(error, ZCUSB_ERROR_QUOTA_EXCEEDED, "%s.", why);
        if (r < 0)
                return r;

        policy = device_interface_policy(d, interface);
        r = claim_attach(m, d, interface, parse_boolean(policy.detach) > 0, &backend, &bi, &detached, &driver);
        if (r < 0) {
                quota_put(&peer->account, QUOTA_CLAIMS);
                if (r == -EBUSY && driver)
                        return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY,
                                                 "Interface %u is bound to the kernel driver '%s' and the device's "
                                                 "udev properties do not allow detaching it (ZCUSB_DETACH=1).",
                                                 interface, driver);
                if (r == -EBUSY)
                        return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY,
                                                 "Interface %u is claimed by another program.", interface);
                if (r == -ENODEV)
                        return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE,
                                                 "Device %s is gone.", d->object_path);
                /* Not the caller's fault: no errno-derived name like AccessDenied. */
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED,
                                         "zcusbd cannot claim interface %u of %s: %s (see its journal).",
                                         interface, d->object_path, strerror(-r));
        }

        c = calloc(1, sizeof(*c));
        if (!c || asprintf(&object_path, "%s/c%" PRIu64, ZCUSB_CLAIM_PATH_PREFIX, m->next_claim_id + 1) < 0) {
                free(c);
                backend->close_interface(bi, detached);
                quota_put(&peer->account, QUOTA_CLAIMS);
                return -ENOMEM;
        }
        *c = (Claim) {
                .manager = m,
                .peer = peer,
                .device = d,
                .backend = backend,
                .backend_interface = bi,
                .id = ++m->next_claim_id,
                .object_path = TAKE_PTR(object_path),
                .interface_number = interface,
                .detached_driver = TAKE_PTR(detached),
                .next_buffer_id = 1,
                .next_queue_id = 1,
        };
        TAILQ_INIT(&c->buffers);
        TAILQ_INIT(&c->queues);
        TAILQ_INIT(&c->in_flight);
        TAILQ_INSERT_TAIL(&d->claims, c, device_link);
        TAILQ_INSERT_TAIL(&peer->claims, c, peer_link);
        TAILQ_INSERT_TAIL(&m->claims, c, manager_link);

        log_info("%s: interface %u of %s claimed by %s (uid %u) over %s%s%s.", c->object_path, interface,
                 d->object_path, peer->name, (unsigned) peer->account.uid, backend->name,
                 c->detached_driver ? ", detached " : "", strempty(c->detached_driver));
        /* No InterfacesAdded: a claim is its owner's business; the owner has
         * the path from the reply and Ended comes to it alone. */
        *ret = c;
        return 0;
}

static void claim_release_interface(Claim *c) {
        if (c->interface_released)
                return;
        c->interface_released = true;
        /* The backend knows when the device is gone: then it releases nothing. */
        c->backend->close_interface(TAKE_PTR(c->backend_interface), c->detached_driver);
}

void claim_device_removed(Claim *c) {
        claim_stop(c, CLAIM_END_DEVICE_REMOVED, false);
        /* Whatever the kernel will not give back completes -ENODEV now. */
        if (c->backend_interface)
                c->backend->disconnect(c->backend_interface);
        if (c->device) {
                TAILQ_REMOVE(&c->device->claims, c, device_link);
                c->device = NULL;
        }
}

static bool claim_drained(const Claim *c) {
        return c->end != CLAIM_ACTIVE && TAILQ_EMPTY(&c->in_flight);
}

void claim_finish(Claim *c) {
        if (!claim_drained(c))
                return; /* the last transfer's end queues us again */
        claim_release_interface(c);
        if (!c->ended_signalled) {
                c->ended_signalled = true;
                log_info("%s: ended (%s).", c->object_path, claim_end_to_string(c->end));
                claim_emit_ended(c);
        }
}

bool claim_may_gc(const Claim *c) {
        return claim_drained(c) && c->interface_released && c->free_when_drained;
}

void claim_add_to_gc_queue(Claim *c) {
        if (c->in_gc_queue)
                return;
        TAILQ_INSERT_TAIL(&c->manager->claim_gc_queue, c, gc_link);
        c->in_gc_queue = true;
        manager_schedule_gc(c->manager);
}

void claim_stop(Claim *c, ClaimEnd why, bool free_when_drained) {
        Transfer *t, *next;
        Queue *q;

        if (c->end == CLAIM_ACTIVE) {
                c->end = why;
                c->end_status = claim_end_status(why);
                TAILQ_FOREACH(q, &c->queues, link)
                        queue_stop(q, c->end_status);
                /* Cancelling may complete transfers right here (ones not yet
                 * at the kernel): walk with a saved next pointer. */
                TAILQ_FOREACH_SAFE(t, &c->in_flight, link, next)
                        transfer_cancel(t, c->end_status);
                TAILQ_FOREACH(q, &c->queues, link)
                        queue_kick(q); /* post what is already there; fail what comes */
        }
        c->free_when_drained = c->free_when_drained || free_when_drained;
        claim_add_to_gc_queue(c);
}

void claim_transfer_finished(Claim *c) {
        if (claim_drained(c))
                claim_add_to_gc_queue(c);
}
