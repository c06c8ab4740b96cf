/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

/* The org.zcusb1.Device objects: one fallback vtable under
 * ZCUSB_DEVICE_PATH_PREFIX, each object visible only to callers that may see
 * the device. */
extern const sd_bus_vtable device_vtable[];
int device_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error);
int device_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);
