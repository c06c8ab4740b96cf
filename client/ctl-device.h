/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/* zcusbctl's view of an org.zcusb1.Device object, read with GetAll. */

typedef struct CtlEndpoint {
        uint8_t address, attributes, interval;
        uint16_t max_packet_size;
} CtlEndpoint;

typedef struct CtlInterface {
        uint8_t number, alt_setting, class, subclass, protocol;
        char *driver;
        size_t n_endpoints;
        CtlEndpoint *endpoints;
} CtlInterface;

typedef struct CtlDevice {
        char *object;
        uint16_t vendor_id, product_id, bus, address;
        uint8_t device_class;
        char *manufacturer, *product, *serial, *speed, *port_path, *sysfs_path;
        uint32_t speed_kbps;
        size_t n_interfaces;
        CtlInterface *interfaces;

        bool have_access;
        bool may_claim;
        size_t n_claimable;
        uint8_t claimable[256];
} CtlDevice;

void ctl_device_done(CtlDevice *d);

/* GetAll on OBJECT; with_access also calls GetAccess. Errors come back in
 * *error as the daemon sent them. */
int ctl_device_read(sd_bus *bus, const char *object, bool with_access, CtlDevice *ret, sd_bus_error *error);

json_object *ctl_device_to_json(const CtlDevice *d, bool with_interfaces);
void ctl_device_print(const CtlDevice *d);
