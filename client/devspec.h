/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* How a user names a device on the command line (client/CLI.md). */
typedef enum DevSpecKind {
        DEVSPEC_OBJECT_PATH, /* /org/zcusb1/device/usb1_3 */
        DEVSPEC_BUS_ADDRESS, /* 001:003 or 1:3 */
        DEVSPEC_VID_PID,     /* 0525:a4a0[:SERIAL] */
        DEVSPEC_SYSFS,       /* /sys/bus/usb/devices/1-1, /sys/devices/... */
} DevSpecKind;

typedef struct DevSpec {
        DevSpecKind kind;
        const char *path; /* object or sysfs path, points into the parsed string */
        uint16_t bus, address;
        uint16_t vendor_id, product_id;
        const char *serial; /* NULL: any; points into the parsed string */
} DevSpec;

/* Returns 0 or -EINVAL with *ret_why saying what is wrong (static text). */
int devspec_parse(const char *s, DevSpec *ret, const char **ret_why);

/* The kernel name a sysfs path ends in ("1-1.2"), or NULL. Points into PATH. */
const char *devspec_sysfs_name(const char *path);
