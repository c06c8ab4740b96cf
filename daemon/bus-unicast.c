/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-unicast.h"
#include "util.h"

static bool strv_contains(char *const *l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

/* One {sv} entry, the value as sd-bus's own Get would give it: the getter,
 * or for getter-less basic properties the field at the vtable's offset. */
static int append_property(sd_bus *bus, sd_bus_message *m, const char *path, const char *interface,
                           const sd_bus_vtable *v, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *signature = v->x.property.signature;
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", v->x.property.member);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'v', signature);
        if (r < 0)
                return r;
        if (v->x.property.get)
                r = v->x.property.get(bus, path, interface, v->x.property.member, m, userdata, &error);
        else if (strlen(signature) == 1 && strchr("ybnqiuxtdsog", signature[0])) {
                const void *field = (const uint8_t *) userdata + v->x.property.offset;

                if (strchr("sog", signature[0]))
                        field = *(const char *const *) field;
                r = sd_bus_message_append_basic(m, signature[0], field);
        } else
                r = -EOPNOTSUPP;
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int append_properties(sd_bus *bus, sd_bus_message *m, const char *path, const char *interface,
                             const sd_bus_vtable *vtable, void *userdata, char *const *names) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (const sd_bus_vtable *v = vtable; v->type != _SD_BUS_VTABLE_END; v++) {
                if (v->type != _SD_BUS_VTABLE_PROPERTY && v->type != _SD_BUS_VTABLE_WRITABLE_PROPERTY)
                        continue;
                if (v->flags & SD_BUS_VTABLE_HIDDEN)
                        continue;
                if (names && !strv_contains(names, v->x.property.member))
                        continue;
                r = append_property(bus, m, path, interface, v, userdata);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

static int new_signal_to(sd_bus *bus, const char *destination, const char *path, const char *interface,
                         const char *member, sd_bus_message **ret) {
        int r;

        r = sd_bus_message_new_signal(bus, ret, path, interface, member);
        if (r < 0)
                return r;
        return sd_bus_message_set_destination(*ret, destination);
}

/* The interfaces every sd-bus object also has, listed as sd-bus does. */
static const char *const standard_interfaces[] = {
        "org.freedesktop.DBus.Peer",
        "org.freedesktop.DBus.Introspectable",
        "org.freedesktop.DBus.Properties",
};

int bus_unicast_interfaces_added(sd_bus *bus, const char *destination, const char *manager_path, const char *path,
                                 const char *interface, const sd_bus_vtable *vtable, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_signal_to(bus, destination, manager_path, "org.freedesktop.DBus.ObjectManager", "InterfacesAdded",
                          &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "o", path);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(standard_interfaces); i++) {
                r = sd_bus_message_append(m, "{sa{sv}}", standard_interfaces[i], 0);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_open_container(m, 'e', "sa{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", interface);
        if (r < 0)
                return r;
        r = append_properties(bus, m, path, interface, vtable, userdata, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_send(bus, m, NULL);
}

int bus_unicast_interfaces_removed(sd_bus *bus, const char *destination, const char *manager_path,
                                   const char *path, const char *interface) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_signal_to(bus, destination, manager_path, "org.freedesktop.DBus.ObjectManager",
                          "InterfacesRemoved", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "oas", path, 4, standard_interfaces[0], standard_interfaces[1],
                                  standard_interfaces[2], interface);
        if (r < 0)
                return r;
        return sd_bus_send(bus, m, NULL);
}

int bus_unicast_properties_changed(sd_bus *bus, const char *destination, const char *path, const char *interface,
                                   const sd_bus_vtable *vtable, void *userdata, char *const *names) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_signal_to(bus, destination, path, "org.freedesktop.DBus.Properties", "PropertiesChanged", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", interface);
        if (r < 0)
                return r;
        r = append_properties(bus, m, path, interface, vtable, userdata, names);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "as", 0);
        if (r < 0)
                return r;
        return sd_bus_send(bus, m, NULL);
}

int bus_unicast_signal_o(sd_bus *bus, const char *destination, const char *path, const char *interface,
                         const char *member, const char *object) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_signal_to(bus, destination, path, interface, member, &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "o", object);
        if (r < 0)
                return r;
        return sd_bus_send(bus, m, NULL);
}
