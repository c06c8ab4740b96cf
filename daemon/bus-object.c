/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-object.h"
#include "util.h"

bool bus_message_calls_interface(sd_bus_message *message, const char *interface) {
        return message && streq_ptr(sd_bus_message_get_interface(message), interface);
}
