/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "config.h"

/* The data path runs over one of two backends (DESIGN.md "Backends"): the
 * zcusb.ko module (zero copy) or mainline usbfs (one kernel copy). Each is an
 * ops table; claims pick one at claim time and the ring consumer only ever
 * calls through the table, so neither side knows which kernel interface is
 * underneath. The transfer operations join this table with the data path. */

typedef struct BackendOps {
        const char *name; /* as reported on the bus: "usbfs", "zcusb.ko" */
        /* > 0 usable, 0 not usable (why in *reason, may be NULL), < 0 error. */
        int (*probe)(char **reason);
} BackendOps;

extern const BackendOps backend_usbfs;
extern const BackendOps backend_zcusb;

/* The backend new claims will use for CHOICE. Never NULL: usbfs is always
 * there. *reason says why a preferred backend was passed over. */
const BackendOps *backend_select(BackendChoice choice, char **reason);
