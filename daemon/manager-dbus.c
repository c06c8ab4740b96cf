/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>

#include "claim.h"
#include "client.h"
#include "log.h"
#include "manager.h"
#include "util.h"
#include "zcusb-dbus.h"

static int method_list_devices(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        const Caller *caller;
        Device *d;
        int r;

        (void) error;
        r = manager_get_caller(m, message, &caller);
        if (r < 0)
                return r;

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

static int method_get_device(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const Caller *caller;
        uint16_t bus, address;
        Device *d;
        int r;

        r = sd_bus_message_read(message, "qq", &bus, &address);
        if (r < 0)
                return r;
        r = manager_get_caller(m, message, &caller);
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

static int method_claim_interface(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const Caller *caller;
        const char *path;
        uint8_t interface;
        Client *client;
        Claim *claim;
        Device *d;
        int r;

        r = sd_bus_message_read(message, "oy", &path, &interface);
        if (r < 0)
                return r;
        if (m->shutting_down)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "zcusbd is stopping.");
        r = manager_get_caller(m, message, &caller);
        if (r < 0)
                return r;

        d = manager_find_device_by_path(m, path);
        if (!d)
                return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE, "No USB device at %s.", path);
        if (!device_visible_to(d, caller))
                return sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED, "You may not access the USB device %s.",
                                         path);
        if (!device_may_claim_interface(d, caller, interface))
                return sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED,
                                         "You may not claim interface %u of %s.", interface, path);

        r = manager_acquire_client(m, message, caller, &client);
        if (r < 0)
                return r;
        r = claim_new(client, d, interface, &claim, error);
        if (r < 0 || sd_bus_error_is_set(error)) {
                client_maybe_free(client);
                return r;
        }
        return sd_bus_reply_method_return(message, "o", claim->object_path);
}

static int property_get_backend(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        /* zcusb.ko chosen at start but unloaded since: claims get usbfs. */
        if (m->backend == &backend_zcusb && isempty(m->module_version))
                return sd_bus_message_append(reply, "s", backend_usbfs.name);
        return sd_bus_message_append(reply, "s", m->backend->name);
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

        SD_BUS_SIGNAL_WITH_ARGS("DeviceAdded", SD_BUS_ARGS("o", device), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceRemoved", SD_BUS_ARGS("o", device), 0),

        SD_BUS_VTABLE_END
};

int manager_emit_device_added(Manager *m, Device *d) {
        int r;

        if (!m->bus)
                return 0;
        r = sd_bus_emit_object_added(m->bus, d->object_path);
        if (r < 0)
                log_debug_errno(r, "Cannot emit InterfacesAdded for %s: %m", d->object_path);
        return sd_bus_emit_signal(m->bus, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE, "DeviceAdded", "o",
                                  d->object_path);
}

int manager_emit_device_removed(Manager *m, Device *d) {
        int r;

        if (!m->bus)
                return 0;
        r = sd_bus_emit_object_removed(m->bus, d->object_path);
        if (r < 0)
                log_debug_errno(r, "Cannot emit InterfacesRemoved for %s: %m", d->object_path);
        return sd_bus_emit_signal(m->bus, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE, "DeviceRemoved", "o",
                                  d->object_path);
}
