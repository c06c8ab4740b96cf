/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stddef.h>

#include "claim-request.h"
#include "claim.h"
#include "device-dbus.h"
#include "log.h"
#include "bus-unicast.h"
#include "manager.h"
#include "peer.h"
#include "util.h"
#include "zcusb-dbus.h"

static int list_devices_as(sd_bus_message *message, Manager *m, const Caller *caller, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Device *d;
        int r;

        (void) error;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(oqqqqsss)");
        if (r < 0)
                return r;
        TAILQ_FOREACH(d, &m->devices, link) {
                if (!device_visible_to(d, caller))
                        continue;
                r = sd_bus_message_append(reply, "(oqqqqsss)", d->object_path, d->vendor_id, d->product_id,
                                          d->bus_number, d->device_address, d->manufacturer, d->product,
                                          d->serial);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_devices(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return caller_call(userdata, message, list_devices_as, error);
}

static int get_device_as(sd_bus_message *message, Manager *m, const Caller *caller, sd_bus_error *error) {
        uint16_t bus, address;
        Device *d;
        int r;

        r = sd_bus_message_read(message, "qq", &bus, &address);
        if (r < 0)
                return r;

        d = manager_find_device_by_address(m, bus, address);
        if (!d)
                return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE,
                                         "No USB device at bus %u address %u.", bus, address);
        if (!device_visible_to(d, caller))
                return sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED,
                                         "You may not access the USB device at bus %u address %u.", bus,
                                         address);
        return sd_bus_reply_method_return(message, "o", d->object_path);
}

static int method_get_device(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return caller_call(userdata, message, get_device_as, error);
}

static int claim_interface_as(sd_bus_message *message, Manager *m, const Caller *caller, sd_bus_error *error) {
        const char *path;
        uint8_t interface;
        int r;

        r = sd_bus_message_read(message, "oy", &path, &interface);
        if (r < 0)
                return r;
        return manager_claim_interface(m, message, caller, path, interface, 0, error);
}

static int claim_interface_with_flags_as(sd_bus_message *message, Manager *m, const Caller *caller,
                                         sd_bus_error *error) {
        const char *path;
        uint8_t interface;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "oyt", &path, &interface, &flags);
        if (r < 0)
                return r;
        if (flags & ~ZCUSB_CLAIM_FLAGS_ALL)
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT, "Unknown flags 0x%" PRIx64 ".",
                                         flags & ~ZCUSB_CLAIM_FLAGS_ALL);
        return manager_claim_interface(m, message, caller, path, interface, flags, error);
}

static int method_claim_interface_with_flags(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return caller_call(userdata, message, claim_interface_with_flags_as, error);
}

static int method_claim_interface(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return caller_call(userdata, message, claim_interface_as, error);
}

static int subscribe_as(sd_bus_message *message, Manager *m, const Caller *caller, sd_bus_error *error) {
        Device *d;
        Peer *peer;
        int r;

        r = manager_acquire_peer(m, message, caller, &peer, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        peer->subscribed = true;
        /* What it may see now it may list next: it hears when that goes. */
        TAILQ_FOREACH(d, &m->devices, link)
                if (device_visible_to(d, &peer->caller))
                        (void) peer_learn_device(peer, d->id);
        return sd_bus_reply_method_return(message, "");
}

static int method_subscribe(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return caller_call(userdata, message, subscribe_as, error);
}

/* Through caller_call() like Subscribe, so it cannot overtake a Subscribe
 * of the same connection that waits for its credentials. */
static int unsubscribe_as(sd_bus_message *message, Manager *m, const Caller *caller, sd_bus_error *error) {
        Peer *peer;

        (void) caller, (void) error;
        peer = manager_find_peer(m, sd_bus_message_get_sender(message) ?: "");
        if (peer) {
                peer->subscribed = false;
                peer_add_to_gc_queue(peer);
        }
        return sd_bus_reply_method_return(message, "");
}

static int method_unsubscribe(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return caller_call(userdata, message, unsubscribe_as, error);
}

static int property_get_backend(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        return sd_bus_message_append(reply, "s", manager_claim_backend(m)->name);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        (void) bus, (void) path, (void) interface, (void) property, (void) userdata, (void) error;
        return sd_bus_message_append(reply, "s", ZCUSB_VERSION);
}

const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),

        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Backend", "s", property_get_backend, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ModuleVersion", "s", NULL, offsetof(Manager, module_version),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("QuotaBytesPerClient", "t", NULL, offsetof(Manager, config.bytes_per_client),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("QuotaBytesPerUser", "t", NULL, offsetof(Manager, config.bytes_per_user),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("QuotaBytesGlobal", "t", NULL, offsetof(Manager, config.bytes_global),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MaxClaimsPerClient", "u", NULL, offsetof(Manager, config.claims_per_client),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MaxBuffersPerClient", "u", NULL, offsetof(Manager, config.buffers_per_client),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MaxQueuesPerClient", "u", NULL, offsetof(Manager, config.queues_per_client),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MaxInFlightPerClient", "u", NULL, offsetof(Manager, config.in_flight_per_client),
                        SD_BUS_VTABLE_PROPERTY_CONST),

        SD_BUS_METHOD_WITH_ARGS("ListDevices",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(oqqqqsss)", devices),
                                method_list_devices,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetDevice",
                                SD_BUS_ARGS("q", bus_number, "q", device_address),
                                SD_BUS_RESULT("o", device),
                                method_get_device,
                                SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_METHOD_WITH_ARGS("ClaimInterface",
                                SD_BUS_ARGS("o", device, "y", interface),
                                SD_BUS_RESULT("o", claim),
                                method_claim_interface,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ClaimInterfaceWithFlags",
                                SD_BUS_ARGS("o", device, "y", interface, "t", flags),
                                SD_BUS_RESULT("o", claim),
                                method_claim_interface_with_flags,
                                SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_METHOD_WITH_ARGS("Subscribe",
                                SD_BUS_NO_ARGS,
                                SD_BUS_NO_RESULT,
                                method_subscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unsubscribe",
                                SD_BUS_NO_ARGS,
                                SD_BUS_NO_RESULT,
                                method_unsubscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),

        /* Unicast, to subscribed peers that may see the device. */
        SD_BUS_SIGNAL_WITH_ARGS("DeviceAdded", SD_BUS_ARGS("o", device), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceRemoved", SD_BUS_ARGS("o", device), 0),

        SD_BUS_VTABLE_END
};

typedef enum DeviceEvent {
        DEVICE_EVENT_ADDED,
        DEVICE_EVENT_REMOVED,
        DEVICE_EVENT_INTERFACES_CHANGED,
        DEVICE_EVENT_CONFIG_CHANGED, /* Interfaces and ActiveConfiguration */
} DeviceEvent;

static int peer_tell(Manager *m, const Peer *p, Device *d, DeviceEvent event) {
        static char *const interfaces_only[] = { (char *) "Interfaces", NULL };
        static char *const with_config[] = { (char *) "Interfaces", (char *) "ActiveConfiguration", NULL };
        int r;

        switch (event) {
        case DEVICE_EVENT_ADDED:
                r = bus_unicast_interfaces_added(m->bus, p->name, ZCUSB_MANAGER_PATH, d->object_path,
                                                 ZCUSB_DEVICE_INTERFACE, device_vtable, d);
                if (r < 0)
                        return r;
                return bus_unicast_signal_o(m->bus, p->name, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                            "DeviceAdded", d->object_path);
        case DEVICE_EVENT_REMOVED:
                r = bus_unicast_interfaces_removed(m->bus, p->name, ZCUSB_MANAGER_PATH, d->object_path,
                                                   ZCUSB_DEVICE_INTERFACE);
                if (r < 0)
                        return r;
                return bus_unicast_signal_o(m->bus, p->name, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                            "DeviceRemoved", d->object_path);
        case DEVICE_EVENT_INTERFACES_CHANGED:
        case DEVICE_EVENT_CONFIG_CHANGED:
                return bus_unicast_properties_changed(m->bus, p->name, d->object_path, ZCUSB_DEVICE_INTERFACE,
                                                      device_vtable, d,
                                                      event == DEVICE_EVENT_CONFIG_CHANGED ? with_config
                                                                                           : interfaces_only);
        }
        return -EINVAL;
}

/* Each subscribed peer that may see D hears of EVENT, unicast; of its
 * removal also each that was shown it before. */
static void manager_tell_subscribers(Manager *m, Device *d, DeviceEvent event) {
        Peer *p;
        int r;

        if (!m->bus)
                return;
        TAILQ_FOREACH(p, &m->peers, link) {
                DeviceEvent what = event;
                bool visible, known;

                if (!p->subscribed || p->disconnected)
                        continue;
                visible = device_visible_to(d, &p->caller);
                known = peer_knows_device(p, d->id);
                if (event == DEVICE_EVENT_REMOVED) {
                        if (!visible && !known)
                                continue;
                        peer_forget_device(p, d->id);
                } else if (!visible)
                        continue;
                else {
                        /* Newly visible (a policy change event): to this
                         * peer the device is new, properties and all. */
                        if (!known)
                                what = DEVICE_EVENT_ADDED;
                        (void) peer_learn_device(p, d->id); /* at worst it misses a removal */
                }
                r = peer_tell(m, p, d, what);
                if (r < 0)
                        log_debug_errno(r, "Cannot tell %s of %s: %m", p->name, d->object_path);
        }
}

void manager_emit_device_added(Manager *m, Device *d) {
        manager_tell_subscribers(m, d, DEVICE_EVENT_ADDED);
}

void manager_emit_device_removed(Manager *m, Device *d) {
        manager_tell_subscribers(m, d, DEVICE_EVENT_REMOVED);
}

void manager_emit_device_changed(Manager *m, Device *d, bool config_changed) {
        manager_tell_subscribers(m, d,
                                 config_changed ? DEVICE_EVENT_CONFIG_CHANGED : DEVICE_EVENT_INTERFACES_CHANGED);
}
