/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "devspec.h"
#include "util.h"
#include "zcusb-dbus.h"

/* Exactly N characters of class CLASSFN, then END. */
static bool span_is(const char *s, size_t min, size_t max, int (*classfn)(int), size_t *ret_len) {
        size_t n = 0;

        while (s[n] && classfn((unsigned char) s[n]))
                n++;
        *ret_len = n;
        return n >= min && n <= max;
}

static uint16_t parse_number(const char *s, size_t n, unsigned base) {
        char buf[8];

        memcpy(buf, s, n);
        buf[n] = '\0';
        return (uint16_t) strtoul(buf, NULL, base);
}

static int set_why(const char **ret_why, const char *why) {
        if (ret_why)
                *ret_why = why;
        return -EINVAL;
}

static bool object_path_valid(const char *p) {
        if (p[0] != '/')
                return false;
        for (const char *c = p + 1; *c; c++) {
                if (*c == '/' && (c[-1] == '/' || c[1] == '\0'))
                        return false;
                if (*c != '/' && *c != '_' && !isalnum((unsigned char) *c))
                        return false;
        }
        return true;
}

const char *devspec_sysfs_name(const char *path) {
        const char *slash = strrchr(path, '/');
        const char *name = slash ? slash + 1 : path;
        return *name ? name : NULL;
}

int devspec_parse(const char *s, DevSpec *ret, const char **ret_why) {
        DevSpec spec = {};
        size_t a, b;

        if (isempty(s))
                return set_why(ret_why, "empty device name");

        if (startswith(s, ZCUSB_DEVICE_PATH_PREFIX "/")) {
                if (!object_path_valid(s))
                        return set_why(ret_why, "not a valid D-Bus object path");
                spec.kind = DEVSPEC_OBJECT_PATH;
                spec.path = s;
        } else if (startswith(s, "/sys/")) {
                if (!devspec_sysfs_name(s))
                        return set_why(ret_why, "sysfs path does not end in a device name");
                spec.kind = DEVSPEC_SYSFS;
                spec.path = s;
        } else if (s[0] == '/')
                return set_why(ret_why, "a path must be a zcusb object path (" ZCUSB_DEVICE_PATH_PREFIX
                                        "/...) or a sysfs path (/sys/...)");
        else if (span_is(s, 1, 3, isdigit, &a) && s[a] == ':' && span_is(s + a + 1, 1, 3, isdigit, &b) &&
                 s[a + 1 + b] == '\0') {
                spec.kind = DEVSPEC_BUS_ADDRESS;
                spec.bus = parse_number(s, a, 10);
                spec.address = parse_number(s + a + 1, b, 10);
                if (spec.bus == 0 || spec.address == 0 || spec.address > 127)
                        return set_why(ret_why, "bus numbers start at 1 and device addresses are 1-127");
        } else if (span_is(s, 4, 4, isxdigit, &a) && s[4] == ':' && span_is(s + 5, 4, 4, isxdigit, &b) &&
                   (s[9] == '\0' || s[9] == ':')) {
                spec.kind = DEVSPEC_VID_PID;
                spec.vendor_id = parse_number(s, 4, 16);
                spec.product_id = parse_number(s + 5, 4, 16);
                if (s[9] == ':') {
                        if (s[10] == '\0')
                                return set_why(ret_why, "empty serial after VID:PID:");
                        spec.serial = s + 10;
                }
        } else
                return set_why(ret_why, "expected an object path, BUS:ADDR (e.g. 001:003), "
                                        "VID:PID[:SERIAL] (e.g. 0525:a4a0) or a sysfs path");

        *ret = spec;
        return 0;
}
