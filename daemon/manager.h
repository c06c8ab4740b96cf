/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-device.h>
#include <systemd/sd-event.h>

#include "backend.h"
#include "bus-caller.h"
#include "config.h"
#include "device.h"
#include "policy.h"
#include "quota.h"

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        sd_device_monitor *monitor;

        Config config;
        const BackendOps *backend;
        char *module_version; /* "" when zcusb.ko is not in use */

        TAILQ_HEAD(, Device) devices;
        size_t n_devices;

        TAILQ_HEAD(, Peer) peers;
        size_t n_peers;
        TAILQ_HEAD(, Claim) claims;
        uint64_t next_claim_id;
        uint64_t next_device_id;
        QuotaLedger ledger;

        /* Objects that may be collectable: one deferred pass (manager_on_gc)
         * finishes and frees them, so nothing is freed deep in a call chain. */
        TAILQ_HEAD(, Claim) claim_gc_queue;
        TAILQ_HEAD(, Peer) peer_gc_queue;
        sd_event_source *gc_source;
        sd_bus_slot *peer_gone_slot; /* the one NameOwnerChanged match */

        bool shutting_down;
        sd_event_source *shutdown_timer;

        CallerCache callers; /* who is calling: bus-caller.c */

        /* ClaimInterface calls waiting for polkit: claim-request.c */
        TAILQ_HEAD(, ClaimRequest) claim_requests;
        size_t n_claim_requests;
        uint64_t next_claim_request_id;
        TAILQ_HEAD(, Remote) remotes; /* USB/IP imports: remote.c */
        size_t n_remotes;
        char *runtime_dir; /* $RUNTIME_DIRECTORY for remote-record.c; NULL when none */
} Manager;

int manager_new(const Config *config, Manager **ret);
Manager *manager_free(Manager *m);

static inline void manager_freep(Manager **m) {
        manager_free(*m);
}

/* Connect to the bus (the system bus when address is NULL) and publish objects. */
int manager_connect_bus(Manager *m, const char *address);
/* Enumerate USB devices and follow udev from now on. */
int manager_start_udev(Manager *m);
/* Take the well-known name last, once everything it promises is there. */
int manager_request_name(Manager *m);

/* The backend new claims use, and what the Backend property announces:
 * usbfs while a zcusb.ko chosen at start is unloaded. */
const BackendOps *manager_claim_backend(const Manager *m);

Device *manager_find_device_by_syspath(Manager *m, const char *syspath);
Device *manager_find_device_by_address(Manager *m, uint16_t bus, uint16_t address);
Device *manager_find_device_by_path(Manager *m, const char *object_path);

/* End every claim (in-flight transfers complete -ESHUTDOWN), then exit the
 * event loop with 0 once the GC pass freed the last. */
void manager_shutdown(Manager *m);
/* P's connection is gone (the bus said so): its claims end, its signals stop. */
void manager_peer_gone(Manager *m, Peer *p);
/* Run the GC pass soon (objects were added to a GC queue). */
void manager_schedule_gc(Manager *m);
Claim *manager_find_claim_by_path(Manager *m, const char *object_path);


/* manager-dbus.c. Device signals go only to subscribed peers that may see
 * the device, one unicast each. */
extern const sd_bus_vtable manager_vtable[];
void manager_emit_device_added(Manager *m, Device *d);
void manager_emit_device_removed(Manager *m, Device *d);
/* Interfaces changed (and with CONFIG_CHANGED, ActiveConfiguration too). */
void manager_emit_device_changed(Manager *m, Device *d, bool config_changed);
