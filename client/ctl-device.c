/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "ctl-device.h"
#include "util.h"
#include "zcusb-dbus.h"

void ctl_device_done(CtlDevice *d) {
        for (size_t i = 0; i < d->n_interfaces; i++) {
                free(d->interfaces[i].driver);
                free(d->interfaces[i].endpoints);
        }
        free(d->interfaces);
        free(d->object);
        free(d->manufacturer);
        free(d->product);
        free(d->serial);
        free(d->speed);
        free(d->port_path);
        free(d->sysfs_path);
        *d = (CtlDevice) {};
}

static int read_interfaces(sd_bus_message *m, CtlDevice *d) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(yyyyysa(yyqy))");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'r', "yyyyysa(yyqy)")) > 0) {
                CtlInterface *n, *i;
                const char *driver;

                n = realloc(d->interfaces, (d->n_interfaces + 1) * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                d->interfaces = n;
                i = &n[d->n_interfaces++];
                *i = (CtlInterface) {};
                r = sd_bus_message_read(m, "yyyyys", &i->number, &i->alt_setting, &i->class, &i->subclass,
                                        &i->protocol, &driver);
                if (r < 0)
                        return r;
                i->driver = strdup(driver);
                if (!i->driver)
                        return -ENOMEM;
                r = sd_bus_message_enter_container(m, 'a', "(yyqy)");
                if (r < 0)
                        return r;
                for (;;) {
                        CtlEndpoint e, *ne;

                        r = sd_bus_message_read(m, "(yyqy)", &e.address, &e.attributes, &e.max_packet_size,
                                                &e.interval);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                break;
                        ne = realloc(i->endpoints, (i->n_endpoints + 1) * sizeof(*ne));
                        if (!ne)
                                return -ENOMEM;
                        i->endpoints = ne;
                        ne[i->n_endpoints++] = e;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int read_string(sd_bus_message *m, char **field) {
        const char *s;
        int r = sd_bus_message_read(m, "v", "s", &s);

        if (r < 0)
                return r;
        return free_and_strdup(field, s);
}

int ctl_device_read(sd_bus *bus, const char *object, bool with_access, CtlDevice *ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CtlDevice d = {};
        int r;

        r = sd_bus_call_method(bus, ZCUSB_BUS_NAME, object, "org.freedesktop.DBus.Properties", "GetAll", error,
                               &reply, "s", ZCUSB_DEVICE_INTERFACE);
        if (r < 0)
                return r;

        d.object = strdup(object);
        if (!d.object)
                return -ENOMEM;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                goto fail;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name;

                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        goto fail;
                if (streq(name, "VendorId"))
                        r = sd_bus_message_read(reply, "v", "q", &d.vendor_id);
                else if (streq(name, "ProductId"))
                        r = sd_bus_message_read(reply, "v", "q", &d.product_id);
                else if (streq(name, "BusNumber"))
                        r = sd_bus_message_read(reply, "v", "q", &d.bus);
                else if (streq(name, "DeviceAddress"))
                        r = sd_bus_message_read(reply, "v", "q", &d.address);
                else if (streq(name, "DeviceClass"))
                        r = sd_bus_message_read(reply, "v", "y", &d.device_class);
                else if (streq(name, "SpeedKbps"))
                        r = sd_bus_message_read(reply, "v", "u", &d.speed_kbps);
                else if (streq(name, "Manufacturer"))
                        r = read_string(reply, &d.manufacturer);
                else if (streq(name, "Product"))
                        r = read_string(reply, &d.product);
                else if (streq(name, "Serial"))
                        r = read_string(reply, &d.serial);
                else if (streq(name, "Speed"))
                        r = read_string(reply, &d.speed);
                else if (streq(name, "PortPath"))
                        r = read_string(reply, &d.port_path);
                else if (streq(name, "SysfsPath"))
                        r = read_string(reply, &d.sysfs_path);
                else if (streq(name, "Interfaces")) {
                        r = sd_bus_message_enter_container(reply, 'v', "a(yyyyysa(yyqy))");
                        if (r >= 0)
                                r = read_interfaces(reply, &d);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        goto fail;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        goto fail;
        }
        if (r < 0)
                goto fail;

        if (with_access) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *access = NULL;
                const void *ifaces;
                size_t n;
                int may;

                r = sd_bus_call_method(bus, ZCUSB_BUS_NAME, object, ZCUSB_DEVICE_INTERFACE, "GetAccess", error,
                                       &access, "");
                if (r < 0)
                        goto fail;
                r = sd_bus_message_read(access, "b", &may);
                if (r >= 0)
                        r = sd_bus_message_read_array(access, 'y', &ifaces, &n);
                if (r < 0)
                        goto fail;
                d.have_access = true;
                d.may_claim = may;
                d.n_claimable = n > sizeof(d.claimable) ? sizeof(d.claimable) : n;
                memcpy(d.claimable, ifaces, d.n_claimable);
        }

        /* Strings the daemon did not send stay usable. */
        char **strings[] = { &d.manufacturer, &d.product, &d.serial, &d.speed, &d.port_path, &d.sysfs_path };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                if (!*strings[i] && !(*strings[i] = strdup(""))) {
                        r = -ENOMEM;
                        goto fail;
                }

        *ret = d;
        return 0;
fail:
        ctl_device_done(&d);
        return r;
}

static const char *endpoint_type(uint8_t attributes) {
        static const char *const names[] = { "control", "isochronous", "bulk", "interrupt" };
        return names[attributes & 3];
}

static json_object *hex4(uint16_t v) {
        char buf[8];
        snprintf(buf, sizeof(buf), "%04x", v);
        return json_object_new_string(buf);
}

json_object *ctl_device_to_json(const CtlDevice *d, bool with_interfaces) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "object", json_object_new_string(d->object));
        json_object_object_add(o, "bus", json_object_new_int(d->bus));
        json_object_object_add(o, "address", json_object_new_int(d->address));
        json_object_object_add(o, "vendor_id", hex4(d->vendor_id));
        json_object_object_add(o, "product_id", hex4(d->product_id));
        json_object_object_add(o, "manufacturer", json_object_new_string(d->manufacturer));
        json_object_object_add(o, "product", json_object_new_string(d->product));
        json_object_object_add(o, "serial", json_object_new_string(d->serial));
        json_object_object_add(o, "speed", json_object_new_string(d->speed));
        if (d->speed_kbps % 1000 == 0)
                json_object_object_add(o, "speed_mbps", json_object_new_int64(d->speed_kbps / 1000));
        else
                json_object_object_add(o, "speed_mbps", json_object_new_double(d->speed_kbps / 1000.0));
        json_object_object_add(o, "port_path", json_object_new_string(d->port_path));
        json_object_object_add(o, "sysfs_path", json_object_new_string(d->sysfs_path));
        json_object_object_add(o, "device_class", json_object_new_int(d->device_class));

        if (with_interfaces) {
                json_object *ifaces = json_object_new_array();

                for (size_t i = 0; i < d->n_interfaces; i++) {
                        const CtlInterface *it = &d->interfaces[i];
                        json_object *jo = json_object_new_object(), *eps = json_object_new_array();

                        json_object_object_add(jo, "number", json_object_new_int(it->number));
                        json_object_object_add(jo, "alt_setting", json_object_new_int(it->alt_setting));
                        json_object_object_add(jo, "class", json_object_new_int(it->class));
                        json_object_object_add(jo, "subclass", json_object_new_int(it->subclass));
                        json_object_object_add(jo, "protocol", json_object_new_int(it->protocol));
                        json_object_object_add(jo, "driver", json_object_new_string(it->driver));
                        for (size_t j = 0; j < it->n_endpoints; j++) {
                                const CtlEndpoint *e = &it->endpoints[j];
                                json_object *je = json_object_new_object();

                                json_object_object_add(je, "address", json_object_new_int(e->address));
                                json_object_object_add(je, "type", json_object_new_string(endpoint_type(e->attributes)));
                                json_object_object_add(je, "direction",
                                                       json_object_new_string(e->address & 0x80 ? "in" : "out"));
                                json_object_object_add(je, "max_packet_size", json_object_new_int(e->max_packet_size));
                                json_object_object_add(je, "interval", json_object_new_int(e->interval));
                                json_object_array_add(eps, je);
                        }
                        json_object_object_add(jo, "endpoints", eps);
                        json_object_array_add(ifaces, jo);
                }
                json_object_object_add(o, "interfaces", ifaces);
        }

        if (d->have_access) {
                json_object *cl = json_object_new_array();

                for (size_t i = 0; i < d->n_claimable; i++)
                        json_object_array_add(cl, json_object_new_int(d->claimable[i]));
                json_object_object_add(o, "may_claim", json_object_new_boolean(d->may_claim));
                json_object_object_add(o, "claimable_interfaces", cl);
        }
        return o;
}

static bool claimable(const CtlDevice *d, uint8_t number) {
        for (size_t i = 0; i < d->n_claimable; i++)
                if (d->claimable[i] == number)
                        return true;
        return false;
}

void ctl_device_print(const CtlDevice *d) {
        printf("%s\n", d->object);
        printf("       Device: %04x:%04x at bus %03u address %03u (port %s)\n", d->vendor_id, d->product_id,
               d->bus, d->address, d->port_path);
        printf(" Manufacturer: %s\n", d->manufacturer);
        printf("      Product: %s\n", d->product);
        printf("       Serial: %s\n", d->serial);
        if (d->speed_kbps % 1000 == 0)
                printf("        Speed: %s (%u Mb/s)\n", d->speed, d->speed_kbps / 1000);
        else
                printf("        Speed: %s (%.1f Mb/s)\n", d->speed, d->speed_kbps / 1000.0);
        printf("        Class: 0x%02x\n", d->device_class);
        printf("        Sysfs: %s\n", d->sysfs_path);
        if (d->have_access)
                printf("       Access: %s\n", d->may_claim ? "you may claim interfaces marked *" : "you may not claim any interface");
        printf("   Interfaces:\n");
        for (size_t i = 0; i < d->n_interfaces; i++) {
                const CtlInterface *it = &d->interfaces[i];

                printf("    %c %u.%u  class %02x/%02x/%02x  driver %s\n",
                       d->have_access && claimable(d, it->number) ? '*' : ' ', it->number, it->alt_setting,
                       it->class, it->subclass, it->protocol, isempty(it->driver) ? "-" : it->driver);
                for (size_t j = 0; j < it->n_endpoints; j++) {
                        const CtlEndpoint *e = &it->endpoints[j];
                        printf("        ep 0x%02x %-3s %-11s maxpacket %u interval %u\n", e->address,
                               e->address & 0x80 ? "in" : "out", endpoint_type(e->attributes), e->max_packet_size,
                               e->interval);
                }
        }
}
