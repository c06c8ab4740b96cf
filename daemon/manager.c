/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "bus-caller.h"
#include "claim-dbus.h"
#include "claim-request.h"
#include "claim.h"
#include "device-dbus.h"
#include "log.h"
#include "manager.h"
#include "module.h"
#include "peer.h"
#include "remote-record.h"
#include "remote.h"
#include "util.h"
#include "zcusb-dbus.h"

static int manager_on_gc(sd_event_source *s, void *userdata);

int manager_new(const Config *config, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *reason = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        TAILQ_INIT(&m->devices);
        TAILQ_INIT(&m->peers);
        TAILQ_INIT(&m->claims);
        TAILQ_INIT(&m->claim_gc_queue);
        TAILQ_INIT(&m->peer_gc_queue);
        TAILQ_INIT(&m->claim_requests);
        TAILQ_INIT(&m->remotes);
        caller_cache_init(&m->callers);
        m->config = *config;
        r = remote_record_dir_from_env(&m->runtime_dir);
        if (r < 0)
                return r;

        /* Our own loop, not the thread's default one: sd_event_prepare()
         * checks the default loop's thread with a gettid() per iteration. */
        r = sd_event_new(&m->event);
        if (r < 0)
                return r;
        r = sd_event_add_defer(m->event, &m->gc_source, manager_on_gc, m);
        if (r < 0)
                return r;
        /* Normal priority, not idle: a client keeping the loop busy must
         * not keep released claims (and their interfaces) from others. */
        (void) sd_event_source_set_enabled(m->gc_source, SD_EVENT_OFF);

        m->backend = backend_select(&m->config, &reason);
        if (reason && m->config.backend == BACKEND_CHOICE_MODULE)
                log_warning("zcusb.ko is not usable: %s; with Backend=zcusb claims fail until it is.", reason);
        else if (reason)
                log_info("Not using the zcusb.ko backend: %s; claims use usbfs.", reason);
        m->module_version = m->backend == &backend_zcusb ? module_version() : NULL;
        if (!m->module_version)
                m->module_version = strdup("");
        if (!m->module_version)
                return -ENOMEM;

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        Device *d;

        if (!m)
                return NULL;
        remote_free_all(m);
        if (!TAILQ_EMPTY(&m->claims))
                log_warning("Exiting with claims still draining.");
        else {
                Peer *p;
                while ((p = TAILQ_FIRST(&m->peers)))
                        peer_free(p);
        }
        while ((d = TAILQ_FIRST(&m->devices))) {
                TAILQ_REMOVE(&m->devices, d, link);
                device_free(d);
        }
        sd_device_monitor_unref(m->monitor);
        sd_bus_slot_unref(m->peer_gone_slot);
        while (!TAILQ_EMPTY(&m->claim_requests))
                claim_request_free(TAILQ_FIRST(&m->claim_requests));
        caller_cache_done(&m->callers);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        free(m->module_version);
        free(m->runtime_dir);
        sd_event_source_disable_unref(m->shutdown_timer);
        sd_event_source_disable_unref(m->gc_source);
        quota_ledger_done(&m->ledger);
        free(m);
        return NULL;
}

Claim *manager_find_claim_by_path(Manager *m, const char *object_path) {
        Claim *c;

        TAILQ_FOREACH(c, &m->claims, manager_link)
                if (streq(c->object_path, object_path))
                        return c;
        return NULL;
}

void manager_schedule_gc(Manager *m) {
        (void) sd_event_source_set_enabled(m->gc_source, SD_EVENT_ONESHOT);
}

/* The one place claims and peers are freed (logind's manager_gc). A claim
 * is finished (interface released, Ended sent) once drained, freed once
 * released or orphaned; its peer is looked at after it. */
static int manager_on_gc(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        Claim *c;
        Peer *p;

        (void) s;
        while ((c = TAILQ_FIRST(&m->claim_gc_queue))) {
                TAILQ_REMOVE(&m->claim_gc_queue, c, gc_link);
                c->in_gc_queue = false;
                claim_finish(c);
                if (claim_may_gc(c)) {
                        p = c->peer;
                        claim_free(c);
                        peer_add_to_gc_queue(p);
                }
        }
        while ((p = TAILQ_FIRST(&m->peer_gc_queue))) {
                TAILQ_REMOVE(&m->peer_gc_queue, p, gc_link);
                p->in_gc_queue = false;
                if (peer_may_gc(p))
                        peer_free(p);
        }
        if (m->shutting_down && TAILQ_EMPTY(&m->claims)) {
                log_info("All claims ended.");
                (void) sd_event_exit(m->event, 0);
        }
        return 0;
}

void manager_peer_gone(Manager *m, Peer *p) {
        Claim *c, *next;

        (void) m;
        log_debug("Client %s went away; ending its claims.", p->name);
        p->disconnected = true;
        p->subscribed = false;
        TAILQ_FOREACH_SAFE(c, &p->claims, peer_link, next)
                claim_stop(c, CLAIM_END_RELEASED, true);
        peer_add_to_gc_queue(p);
}

/* One match for every peer (no match rule per peer: see peer.h). The bus
 * driver's NameOwnerChanged for a unique name with no new owner is the
 * connection's end, and it comes after every message that connection sent. */
static int manager_on_name_owner_changed(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        const char *name, *old_owner, *new_owner;
        Manager *m = userdata;
        Peer *p;

        (void) error;
        if (sd_bus_message_read(message, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] != ':' || !isempty(new_owner))
                return 0;
        caller_cache_forget(&m->callers, name);
        manager_drop_claim_requests_of(m, name);
        p = manager_find_peer(m, name);
        if (p)
                manager_peer_gone(m, p);
        return 0;
}

static int manager_on_shutdown_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) s, (void) usec;
        log_warning("Claims did not drain in time; exiting anyway.");
        return sd_event_exit(m->event, 0);
}

void manager_shutdown(Manager *m) {
        Claim *c, *next;

        if (m->shutting_down)
                return;
        m->shutting_down = true;
        manager_abort_claim_requests(m);
        if (TAILQ_EMPTY(&m->claims)) {
                (void) sd_event_exit(m->event, 0);
                return;
        }
        log_info("Ending %s claims before exit.", "all");
        /* Transfers complete -ESHUTDOWN; the GC pass frees each claim once
         * drained and exits after the last. */
        TAILQ_FOREACH_SAFE(c, &m->claims, manager_link, next)
                claim_stop(c, CLAIM_END_SHUTDOWN, true);
        /* A device that never gives its URBs back must not keep us alive. */
        (void) sd_event_add_time_relative(m->event, &m->shutdown_timer, CLOCK_MONOTONIC, 5 * 1000 * 1000, 0,
                                          manager_on_shutdown_timeout, m);
}

/* Policy may have changed (udev change event): end claims whose owner is no
 * longer allowed. In-flight transfers complete -EACCES. */
static void manager_recheck_claims(Device *d) {
        Claim *c, *next;

        TAILQ_FOREACH_SAFE(c, &d->claims, device_link, next) {
                PolicyVerdict v = device_claim_verdict(d, &c->peer->caller, c->interface_number);

                if (c->end != CLAIM_ACTIVE || v == POLICY_ALLOW || (v == POLICY_ASK_POLKIT && c->granted_by_polkit))
                        continue;
                log_notice("%s: access revoked for uid %u.", c->object_path, (unsigned) c->peer->caller.uid);
                claim_stop(c, CLAIM_END_REVOKED, false);
        }
}

const BackendOps *manager_claim_backend(const Manager *m) {
        /* zcusb.ko chosen at start but unloaded since: claims get usbfs. */
        if (m->backend == &backend_zcusb && isempty(m->module_version))
                return &backend_usbfs;
        return m->backend;
}

Device *manager_find_device_by_syspath(Manager *m, const char *syspath) {
        Device *d;

        TAILQ_FOREACH(d, &m->devices, link)
                if (streq(d->syspath, syspath))
                        return d;
        return NULL;
}

Device *manager_find_device_by_address(Manager *m, uint16_t bus, uint16_t address) {
        Device *d;

        TAILQ_FOREACH(d, &m->devices, link)
                if (d->bus_number == bus && d->device_address == address)
                        return d;
        return NULL;
}

Device *manager_find_device_by_path(Manager *m, const char *object_path) {
        Device *d;

        TAILQ_FOREACH(d, &m->devices, link)
                if (streq(d->object_path, object_path))
                        return d;
        return NULL;
}

/* ---- udev ---- */

static bool is_usb_device(sd_device *dev) {
        const char *devtype;
        return sd_device_get_devtype(dev, &devtype) >= 0 && streq(devtype, "usb_device");
}

static bool is_usb_interface(sd_device *dev) {
        const char *devtype;
        return sd_device_get_devtype(dev, &devtype) >= 0 && streq(devtype, "usb_interface");
}

static bool is_zcusb_module(sd_device *dev) {
        const char *subsystem, *sysname;
        return sd_device_get_subsystem(dev, &subsystem) >= 0 && streq(subsystem, "module") &&
               sd_device_get_sysname(dev, &sysname) >= 0 && streq(sysname, "zcusb");
}

/* zcusb.ko was unloaded or loaded again under us: new claims fall back to
 * usbfs or go back to the module (claim_attach), and Backend and
 * ModuleVersion say which, so "status" does not go on naming a module that
 * is gone. Only when zcusb.ko is the backend we chose at start. */
static void manager_on_module_event(Manager *m, sd_device_action_t action) {
        char *version;

        if (m->backend != &backend_zcusb || (action != SD_DEVICE_ADD && action != SD_DEVICE_REMOVE))
                return;
        version = module_version();
        if (!version)
                version = strdup("");
        if (!version)
                return (void) log_oom();
        if (streq(version, m->module_version)) {
                free(version);
                return;
        }
        free(m->module_version);
        m->module_version = version;
        if (isempty(version))
                log_notice("zcusb.ko was unloaded; new claims use usbfs until it is loaded again.");
        else
                log_notice("zcusb.ko (ABI %s) is loaded again; new claims use it.", version);
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                                      "Backend", "ModuleVersion", NULL);
}

/* A device is gone: its claims end (in-flight transfers complete -ENODEV),
 * clients hear of it while the object still resolves, then it is freed. */
static void manager_drop_device(Manager *m, Device *d) {
        Claim *c, *next;

        TAILQ_FOREACH_SAFE(c, &d->claims, device_link, next)
                claim_device_removed(c);
        manager_emit_device_removed(m, d);
        remote_on_device_removed(m, d);
        TAILQ_REMOVE(&m->devices, d, link);
        m->n_devices--;
        device_free(d);
}

static int manager_add_device(Manager *m, sd_device *dev, sd_device_action_t action) {
        const char *syspath;
        Device *d;
        int r;

        r = sd_device_get_syspath(dev, &syspath);
        if (r < 0)
                return r;
        d = manager_find_device_by_syspath(m, syspath);
        if (d) {
                bool config_changed;

                r = device_update(d, dev, &config_changed);
                if (r < 0)
                        return r;
                /* Policy changes arrive as "change" events. The bind/unbind
                 * events of a device on its way out can come without its udev
                 * properties: they must not read as a revocation. */
                if (action == SD_DEVICE_CHANGE)
                        manager_recheck_claims(d);
                manager_emit_device_changed(m, d, config_changed);
                return 0;
        }

        r = device_new(m, dev, &d);
        if (r < 0)
                return r;
        /* A stale device at the same bus address (a missed remove) makes way. */
        Device *stale = manager_find_device_by_address(m, d->bus_number, d->device_address);
        if (stale) {
                log_notice("%s replaces %s at %s.", d->sysname, stale->sysname, stale->object_path);
                manager_drop_device(m, stale);
        }
        TAILQ_INSERT_TAIL(&m->devices, d, link);
        m->n_devices++;
        log_info("Device %s %04x:%04x \"%s\" at %s.", d->sysname, d->vendor_id, d->product_id,
                 d->product, d->object_path);
        manager_emit_device_added(m, d);
        remote_on_device_added(m, d);
        return 0;
}

static void manager_remove_device(Manager *m, const char *syspath) {
        Device *d = manager_find_device_by_syspath(m, syspath);

        if (!d)
                return;
        log_info("Device %s at %s removed.", d->sysname, d->object_path);
        manager_drop_device(m, d);
}

/* The usb_device an interface belongs to: its sysfs parent directory. */
static Device *manager_find_interface_owner(Manager *m, const char *iface_syspath) {
        _cleanup_free_ char *parent = strdup(iface_syspath);
        char *slash;

        if (!parent)
                return NULL;
        slash = strrchr(parent, '/');
        if (!slash)
                return NULL;
        *slash = '\0';
        return manager_find_device_by_syspath(m, parent);
}

static int manager_process_interface(Manager *m, sd_device *dev, sd_device_action_t action) {
        const char *syspath, *sysname;
        bool changed = false;
        Device *d;
        int r;

        if (sd_device_get_syspath(dev, &syspath) < 0 || sd_device_get_sysname(dev, &sysname) < 0)
                return 0;
        d = manager_find_interface_owner(m, syspath);
        if (!d)
                return 0; /* its device comes (or went) with its own event */

        if (action == SD_DEVICE_REMOVE)
                changed = device_remove_interface(d, sysname);
        else {
                r = device_update_interface(d, dev, &changed);
                if (r == -ENOENT) /* an unbind racing the interface's removal */
                        return log_debug_errno(r, "%s: interface gone: %m", sysname);
                if (r < 0)
                        return log_warning_errno(r, "%s: cannot update interface: %m", sysname);
                /* Policy properties may have changed too: always tell. */
                changed = changed || action == SD_DEVICE_CHANGE;
                if (action == SD_DEVICE_CHANGE)
                        manager_recheck_claims(d);
        }
        if (changed)
                manager_emit_device_changed(m, d, false);
        return 0;
}

static int manager_on_uevent(sd_device_monitor *monitor, sd_device *dev, void *userdata) {
        Manager *m = userdata;
        sd_device_action_t action;
        const char *syspath;
        int r;

        (void) monitor;
        if (sd_device_get_action(dev, &action) < 0 || sd_device_get_syspath(dev, &syspath) < 0)
                return 0;

        if (is_usb_device(dev)) {
                if (action == SD_DEVICE_REMOVE)
                        manager_remove_device(m, syspath);
                else {
                        r = manager_add_device(m, dev, action);
                        if (r < 0)
                                log_warning_errno(r, "%s: cannot track device: %m", syspath);
                }
        } else if (is_usb_interface(dev))
                (void) manager_process_interface(m, dev, action);
        else if (is_zcusb_module(dev))
                manager_on_module_event(m, action);

        return 0; /* one bad event must not stop the monitor */
}

static int manager_enumerate(Manager *m, const char *devtype) {
        _cleanup_(sd_device_enumerator_unrefp) sd_device_enumerator *e = NULL;
        int r;

        r = sd_device_enumerator_new(&e);
        if (r < 0)
                return r;
        r = sd_device_enumerator_add_match_subsystem(e, "usb", true);
        if (r < 0)
                return r;
        r = sd_device_enumerator_add_match_property(e, "DEVTYPE", devtype);
        if (r < 0)
                return r;

        for (sd_device *dev = sd_device_enumerator_get_device_first(e); dev;
             dev = sd_device_enumerator_get_device_next(e)) {
                if (streq(devtype, "usb_device")) {
                        r = manager_add_device(m, dev, SD_DEVICE_ADD);
                        if (r < 0)
                                log_warning_errno(r, "Cannot track a USB device: %m");
                } else
                        (void) manager_process_interface(m, dev, SD_DEVICE_ADD);
        }
        return 0;
}

int manager_start_udev(Manager *m) {
        int r;

        r = sd_device_monitor_new(&m->monitor);
        if (r < 0)
                return log_error_errno(r, "Cannot create udev monitor: %m");
        r = sd_device_monitor_filter_add_match_subsystem_devtype(m->monitor, "usb", NULL);
        if (r >= 0)
                r = sd_device_monitor_filter_add_match_subsystem_devtype(m->monitor, "module", NULL);
        if (r < 0)
                return log_error_errno(r, "Cannot filter udev monitor: %m");
        r = sd_device_monitor_attach_event(m->monitor, m->event);
        if (r < 0)
                return log_error_errno(r, "Cannot attach udev monitor: %m");
        /* Start listening before enumerating, so nothing falls in between. */
        r = sd_device_monitor_start(m->monitor, manager_on_uevent, m);
        if (r < 0)
                return log_error_errno(r, "Cannot start udev monitor: %m");

        r = manager_enumerate(m, "usb_device");
        if (r < 0)
                return log_error_errno(r, "Cannot enumerate USB devices: %m");
        r = manager_enumerate(m, "usb_interface");
        if (r < 0)
                return log_error_errno(r, "Cannot enumerate USB interfaces: %m");
        log_info("Found %zu USB devices.", m->n_devices);
        return 0;
}

/* ---- bus ---- */

int manager_connect_bus(Manager *m, const char *address) {
        int r;

        if (address) {
                r = sd_bus_new(&m->bus);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(m->bus, address);
                if (r < 0)
                        return log_error_errno(r, "Invalid bus address '%s': %m", address);
                (void) sd_bus_set_bus_client(m->bus, true);
                (void) sd_bus_negotiate_creds(m->bus, true, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID |
                                              SD_BUS_CREDS_SUPPLEMENTARY_GIDS);
                r = sd_bus_start(m->bus);
        } else
                r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the %s bus: %m", address ? address : "system");

        r = sd_bus_add_object_vtable(m->bus, NULL, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                     manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Cannot add manager object: %m");
        r = sd_bus_add_object_vtable(m->bus, NULL, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                     remote_manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Cannot add the remote-device methods: %m");
        r = sd_bus_add_fallback_vtable(m->bus, NULL, ZCUSB_DEVICE_PATH_PREFIX, ZCUSB_DEVICE_INTERFACE,
                                       device_vtable, device_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Cannot add device objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, ZCUSB_DEVICE_PATH_PREFIX, device_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Cannot add device enumerator: %m");
        r = sd_bus_add_fallback_vtable(m->bus, NULL, ZCUSB_CLAIM_PATH_PREFIX, ZCUSB_CLAIM_INTERFACE, claim_vtable,
                                       claim_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Cannot add claim objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, ZCUSB_CLAIM_PATH_PREFIX, claim_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Cannot add claim enumerator: %m");
        r = sd_bus_add_object_manager(m->bus, NULL, ZCUSB_MANAGER_PATH);
        if (r < 0)
                return log_error_errno(r, "Cannot add object manager: %m");
        r = sd_bus_match_signal(m->bus, &m->peer_gone_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameOwnerChanged", manager_on_name_owner_changed, m);
        if (r < 0)
                return log_error_errno(r, "Cannot follow bus connections (NameOwnerChanged): %m");

        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Cannot attach bus to event loop: %m");
        /* Losing the bus means nobody can reach us: exit and let systemd restart us. */
        (void) sd_bus_set_exit_on_disconnect(m->bus, true);
        return 0;
}

int manager_request_name(Manager *m) {
        int r;

        r = sd_bus_request_name(m->bus, ZCUSB_BUS_NAME, 0);
        if (r == -EEXIST || r == -EALREADY)
                return log_error_errno(r, "%s is already owned: is another zcusbd running?", ZCUSB_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Cannot own %s (is the bus policy org.zcusb1.conf installed?): %m",
                                       ZCUSB_BUS_NAME);
        return 0;
}
