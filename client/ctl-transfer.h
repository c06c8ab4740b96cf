/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* zcusbctl read / write / control: data through libzcusb, on a connection of
 * their own (the claim belongs to the connection that made it). */

typedef struct CtlGlobal {
        bool json;               /* --json before the command */
        const char *bus_address; /* --bus-address before the command, or NULL */
        bool interactive;        /* --interactive: claims may ask polkit to authenticate the user */
} CtlGlobal;

/* ARGV[0] is the command name; the command parses its own options (also
 * --json, --bus-address and --help). Each returns a zcusbctl exit code. */
int ctl_read(const CtlGlobal *global, int argc, char **argv);
int ctl_write(const CtlGlobal *global, int argc, char **argv);
int ctl_control(const CtlGlobal *global, int argc, char **argv);
int ctl_clear_halt(const CtlGlobal *global, int argc, char **argv);
