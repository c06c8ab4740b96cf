/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>

#include "bus-object.h"
#include "device-dbus.h"
#include "log.h"
#include "manager.h"
#include "util.h"
#include "zcusb-dbus.h"

/* Resolve PATH for the message being handled, if any. (Device signals are
 * built without a lookup, for peers already known to see the device:
 * manager-dbus.c.) */
static int device_lookup(Manager *m, sd_bus *bus, const char *path, Device **ret, sd_bus_error *error) {
        sd_bus_message *message = sd_bus_get_current_message(bus);
        const Caller *caller;
        Device *d;
        int r;

        d = manager_find_device_by_path(m, path);
        if (!d) {
                if (!bus_message_calls_interface(message, ZCUSB_DEVICE_INTERFACE))
                        return 0;
                sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE, "No USB device at %s.", path);
                return -ENOENT;
        }
        if (message && sd_bus_message_get_sender(message)) {
                r = manager_get_caller(m, message, &caller);
                if (r < 0)
                        return r;
                if (!device_visible_to(d, caller)) {
                        sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED,
                                          "You may not access the USB device %s.", path);
                        return -EACCES;
                }
        }
        *ret = d;
        return 1;
}

int device_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error) {
        Device *d;
        int r;

        (void) interface;
        /* The prefix itself is no device, just the parent of all of them
         * (asked for by GetManagedObjects and introspection). */
        if (streq(path, ZCUSB_DEVICE_PATH_PREFIX))
                return 0;
        /* Nothing lives deeper than /org/zcusb1/device/NAME: the bus's
         * UnknownObject, not an error of ours, for anything below. */
        if (strchr(path + strlen(ZCUSB_DEVICE_PATH_PREFIX) + 1, '/'))
                return 0;
        r = device_lookup(userdata, bus, path, &d, error);
        if (r <= 0)
                return r;
        *found = d;
        return 1;
}

int device_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        _cleanup_strv_free_ char **l = NULL;
        sd_bus_message *message = sd_bus_get_current_message(bus);
        const Caller *caller = NULL;
        Manager *m = userdata;
        size_t n = 0;
        Device *d;
        int r;

        (void) path, (void) error;
        if (message && sd_bus_message_get_sender(message)) {
                r = manager_get_caller(m, message, &caller);
                if (r < 0)
                        return r;
        }

        l = calloc(m->n_devices + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        TAILQ_FOREACH(d, &m->devices, link) {
                if (caller && !device_visible_to(d, caller))
                        continue;
                l[n] = strdup(d->object_path);
                if (!l[n])
                        return -ENOMEM;
                n++;
        }
        *nodes = TAKE_PTR(l);
        return 1;
}

static int property_get_interfaces(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Device *d = userdata;
        int r;

        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        r = sd_bus_message_open_container(reply, 'a', "(yyyyysa(yyqy))");
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->descriptors.n_alt_settings; i++) {
                const UsbAltSetting *a = &d->descriptors.alt_settings[i];
                const Interface *iface = device_find_interface(d, a->interface_number);

                r = sd_bus_message_open_container(reply, 'r', "yyyyysa(yyqy)");
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "yyyyys", a->interface_number, a->alt_setting, a->class,
                                          a->subclass, a->protocol, iface ? iface->driver : "");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(reply, 'a', "(yyqy)");
                if (r < 0)
                        return r;
                for (size_t j = 0; j < a->n_endpoints; j++) {
                        const UsbEndpoint *e = &a->endpoints[j];
                        r = sd_bus_message_append(reply, "(yyqy)", e->address, e->attributes,
                                                  e->max_packet_size, e->interval);
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_descriptors(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Device *d = userdata;

        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        return sd_bus_message_append_array(reply, 'y', d->raw_descriptors, d->raw_descriptors_size);
}

static int method_get_descriptor(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Device *d = userdata;
        const uint8_t *data;
        uint8_t type, index;
        uint16_t language;
        size_t size;
        int r;

        r = sd_bus_message_read(message, "yyq", &type, &index, &language);
        if (r < 0)
                return r;
        if (!device_descriptor_type_allowed(type))
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT,
                                         "Descriptor type %#x is not one GetDescriptor reads (string 0x03, "
                                         "device qualifier 0x06, other-speed configuration 0x07, BOS 0x0f); "
                                         "the others are in the Descriptors property.",
                                         type);
        r = device_read_descriptor(d, type, index, language, &data, &size);
        if (r == -ENOMEM)
                return r;
        if (r == -ENODEV || r == -ENOENT)
                return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE, "The USB device %s is gone.",
                                         d->sysname);
        if (r < 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED,
                                         "The USB device %s did not return descriptor type %#x index %u "
                                         "language %#x: %s.",
                                         d->sysname, type, index, language, strerror(-r));

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', data, size);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_access(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Device *d = userdata;
        const Caller *caller;
        uint8_t numbers[256], allowed[256];
        size_t n, n_allowed = 0;
        int r;

        (void) error;
        r = manager_get_caller(d->manager, message, &caller);
        if (r < 0)
                return r;
        n = device_interface_numbers(d, numbers);
        for (size_t i = 0; i < n; i++)
                if (device_may_claim_interface(d, caller, numbers[i]))
                        allowed[n_allowed++] = numbers[i];

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "b", n_allowed > 0);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'y', allowed, n_allowed);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),

        SD_BUS_PROPERTY("VendorId", "q", NULL, offsetof(Device, vendor_id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ProductId", "q", NULL, offsetof(Device, product_id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceVersion", "q", NULL, offsetof(Device, device_version),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Manufacturer", "s", NULL, offsetof(Device, manufacturer),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Product", "s", NULL, offsetof(Device, product), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Serial", "s", NULL, offsetof(Device, serial), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceClass", "y", NULL, offsetof(Device, device_class), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceSubClass", "y", NULL, offsetof(Device, device_subclass),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceProtocol", "y", NULL, offsetof(Device, device_protocol),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Speed", "s", NULL, offsetof(Device, speed), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SpeedKbps", "u", NULL, offsetof(Device, speed_kbps), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("BusNumber", "q", NULL, offsetof(Device, bus_number), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceAddress", "q", NULL, offsetof(Device, device_address),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("PortPath", "s", NULL, offsetof(Device, sysname), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SysfsPath", "s", NULL, offsetof(Device, syspath), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ActiveConfiguration", "y", NULL, offsetof(Device, active_configuration),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Interfaces", "a(yyyyysa(yyqy))", property_get_interfaces, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Descriptors", "ay", property_get_descriptors, 0, SD_BUS_VTABLE_PROPERTY_CONST),

        SD_BUS_METHOD_WITH_ARGS("GetDescriptor",
                                SD_BUS_ARGS("y", type, "y", index, "q", language),
                                SD_BUS_RESULT("ay", descriptor),
                                method_get_descriptor,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetAccess",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("b", may_claim, "ay", claimable_interfaces),
                                method_get_access,
                                SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_VTABLE_END
};
