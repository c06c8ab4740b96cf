/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "usbip-proto.h"
#include "util.h"

_printf_(3, 4) static int fail(char *why, size_t why_size, const char *fmt, ...) {
        va_list ap;

        if (why && why_size > 0) {
                va_start(ap, fmt);
                vsnprintf(why, why_size, fmt, ap);
                va_end(ap);
        }
        return -EPROTO;
}

static uint16_t get16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

bool usbip_busid_is_valid(const char *busid) {
        size_t n = strnlen(busid, USBIP_BUSID_SIZE);
        bool dash = false, digit = false;

        /* BUS-PORT[.PORT...]: digits, one dash, dots between digits. */
        if (n == 0 || n >= USBIP_BUSID_SIZE)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = busid[i];

                if (c >= '0' && c <= '9')
                        digit = true;
                else if ((c == '-' && !dash) || (c == '.' && dash)) {
                        if (!digit)
                                return false;
                        dash = dash || c == '-';
                        digit = false;
                } else
                        return false;
        }
        return dash && digit;
}

int usbip_build_import_request(const char *busid, uint8_t buf[static USBIP_IMPORT_REQUEST_SIZE]) {
        if (!usbip_busid_is_valid(busid))
                return -EINVAL;
        memset(buf, 0, USBIP_IMPORT_REQUEST_SIZE);
        buf[0] = USBIP_VERSION >> 8;
        buf[1] = USBIP_VERSION & 0xff;
        buf[2] = USBIP_OP_REQ_IMPORT >> 8;
        buf[3] = USBIP_OP_REQ_IMPORT & 0xff;
        /* status 0; then the bus id, NUL-padded */
        memcpy(buf + USBIP_OP_HEADER_SIZE, busid, strlen(busid));
        return USBIP_IMPORT_REQUEST_SIZE;
}

const char *usbip_status_to_string(uint32_t status) {
        switch (status) {
        case 0: return "ok";
        case 1: return "not available";   /* ST_NA */
        case 2: return "device busy";     /* ST_DEV_BUSY */
        case 3: return "device in error"; /* ST_DEV_ERR */
        case 4: return "no such device";  /* ST_NODEV */
        case 5: return "unexpected error";/* ST_ERROR */
        }
        return "unknown status";
}

int usbip_parse_reply_header(const uint8_t buf[static USBIP_OP_HEADER_SIZE], uint32_t *ret_status, char *why,
                             size_t why_size) {
        uint16_t version = get16(buf), code = get16(buf + 2);
        uint32_t status = get32(buf + 4);

        *ret_status = status;
        if (version != USBIP_VERSION)
                return fail(why, why_size, "protocol version %u.%u.%u, not 1.1.1", version >> 8,
                            (version >> 4) & 0xf, version & 0xf);
        if (code != USBIP_OP_REP_IMPORT)
                return fail(why, why_size, "reply code 0x%04x, not OP_REP_IMPORT (0x%04x)", code,
                            USBIP_OP_REP_IMPORT);
        if (status != 0) {
                if (why && why_size > 0)
                        snprintf(why, why_size, "the server refused the import: %s (status %u)",
                                 usbip_status_to_string(status), status);
                return -ECONNREFUSED;
        }
        return 0;
}

int usbip_device_check(const UsbipDevice *d, const char *want_busid, char *why, size_t why_size) {
        if (strnlen(d->path, sizeof(d->path)) >= sizeof(d->path))
                return fail(why, why_size, "device path is not NUL-terminated");
        if (strnlen(d->busid, sizeof(d->busid)) >= sizeof(d->busid))
                return fail(why, why_size, "bus id is not NUL-terminated");
        if (!streq(d->busid, want_busid))
                return fail(why, why_size, "the server answered with bus id '%.31s', not '%s'",
                            usbip_busid_is_valid(d->busid) ? d->busid : "(garbage)", want_busid);
        switch (d->speed) {
        case USBIP_SPEED_LOW:
        case USBIP_SPEED_FULL:
        case USBIP_SPEED_HIGH:
        case USBIP_SPEED_WIRELESS:
        case USBIP_SPEED_SUPER:
                break;
        case USBIP_SPEED_SUPER_PLUS:
                return fail(why, why_size, "SuperSpeedPlus devices cannot be attached through vhci-hcd");
        default:
                return fail(why, why_size, "unknown device speed %u", d->speed);
        }
        /* devid = busnum << 16 | devnum; usbcore numbers devices 1..127. */
        if (d->busnum == 0 || d->busnum > 0xffff)
                return fail(why, why_size, "bus number %u out of range", d->busnum);
        if (d->devnum == 0 || d->devnum > 127)
                return fail(why, why_size, "device number %u out of range", d->devnum);
        if (d->num_configurations == 0)
                return fail(why, why_size, "device has no configuration");
        if (d->num_interfaces > 32)
                return fail(why, why_size, "%u interfaces is more than a device can have", d->num_interfaces);
        return 0;
}

int usbip_parse_device(const uint8_t buf[static USBIP_DEVICE_SIZE], const char *want_busid, UsbipDevice *ret,
                       char *why, size_t why_size) {
        UsbipDevice d = {};
        const uint8_t *p = buf;
        int r;

        memcpy(d.path, p, USBIP_PATH_SIZE);
        p += USBIP_PATH_SIZE;
        memcpy(d.busid, p, USBIP_BUSID_SIZE);
        p += USBIP_BUSID_SIZE;
        d.busnum = get32(p);
        d.devnum = get32(p + 4);
        d.speed = get32(p + 8);
        p += 12;
        d.vendor_id = get16(p);
        d.product_id = get16(p + 2);
        d.bcd_device = get16(p + 4);
        p += 6;
        d.device_class = p[0];
        d.device_subclass = p[1];
        d.device_protocol = p[2];
        d.configuration_value = p[3];
        d.num_configurations = p[4];
        d.num_interfaces = p[5];

        r = usbip_device_check(&d, want_busid, why, why_size);
        if (r < 0)
                return r;
        *ret = d;
        return 0;
}
