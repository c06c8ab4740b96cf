/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

/* Whether MESSAGE (the one being handled, may be NULL) calls a method of
 * INTERFACE itself.
 *
 * Object find callbacks use it to choose between a named error and "no such
 * object": sd-bus also looks objects up on its own (for Properties,
 * Introspect, to tell UnknownObject from UnknownInterface) and then keeps
 * only a callback's errno, not the error it set (ENOENT would read as
 * FileNotFound). For those, a missing object is the bus's UnknownObject. */
bool bus_message_calls_interface(sd_bus_message *message, const char *interface);
