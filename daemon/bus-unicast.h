/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

/* sd-bus emits InterfacesAdded/InterfacesRemoved and PropertiesChanged as
 * broadcasts, which any peer on the bus may receive with a match rule. What
 * zcusbd says about a device must reach only the peers allowed to see it
 * (docs/architecture.md, "Threat model"), so it builds these signals itself,
 * from the same vtable that answers Get/GetAll, and sends each to one
 * destination. */

/* InterfacesAdded(PATH, {INTERFACE: every property of VTABLE on USERDATA})
 * from the object manager at MANAGER_PATH, to DESTINATION only. */
int bus_unicast_interfaces_added(sd_bus *bus, const char *destination, const char *manager_path, const char *path,
                                 const char *interface, const sd_bus_vtable *vtable, void *userdata);
int bus_unicast_interfaces_removed(sd_bus *bus, const char *destination, const char *manager_path,
                                   const char *path, const char *interface);
/* PropertiesChanged(INTERFACE, {NAMES: current values}, []) to DESTINATION. */
int bus_unicast_properties_changed(sd_bus *bus, const char *destination, const char *path, const char *interface,
                                   const sd_bus_vtable *vtable, void *userdata, char *const *names);
/* A signal with one object path argument, to DESTINATION only. */
int bus_unicast_signal_o(sd_bus *bus, const char *destination, const char *path, const char *interface,
                         const char *member, const char *object);
