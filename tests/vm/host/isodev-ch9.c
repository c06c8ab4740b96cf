/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* zcusb-isodev's chapter 9: its descriptors and its answers to standard requests (isodev.h). */
#include <stddef.h>
#include <string.h>

#include "isodev.h"

/* USB standard requests and descriptor types (chapter 9) */
#define REQ_GET_STATUS     0x00
#define REQ_CLEAR_FEATURE  0x01
#define REQ_SET_FEATURE    0x03
#define REQ_GET_DESCRIPTOR 0x06
#define DT_DEVICE          0x01
#define DT_CONFIG          0x02
#define DT_STRING          0x03

static const uint8_t device_desc[18] = {
        18, DT_DEVICE, 0x00, 0x02,          /* bcdUSB 2.00 */
        0xff, 0x00, 0x00, EP0_SIZE,         /* vendor class, bMaxPacketSize0 */
        ZC_ISODEV_VID & 0xff, ZC_ISODEV_VID >> 8, ZC_ISODEV_PID & 0xff, ZC_ISODEV_PID >> 8,
        0x00, 0x01,                         /* bcdDevice 1.00 */
        1, 2, 3,                            /* iManufacturer, iProduct, iSerialNumber */
        1,                                  /* bNumConfigurations */
};

#define CONFIG_LEN (9 + 9 + 9 + 7 + 7)
static const uint8_t config_desc[CONFIG_LEN] = {
        9, DT_CONFIG, CONFIG_LEN, 0, 1, 1, 0, 0x80, 50, /* 1 interface, value 1, bus powered, 100 mA */
        /* interface 0, alternate setting 0: no endpoints */
        9, 0x04, ZC_ISODEV_INTERFACE, 0, 0, 0xff, 0x00, 0x00, 0,
        /* interface 0, alternate setting 1: iso IN and iso OUT */
        9, 0x04, ZC_ISODEV_INTERFACE, ZC_ISODEV_ALT, 2, 0xff, 0x00, 0x00, 0,
        7, 0x05, ZC_ISODEV_EP_IN, 0x01, ZC_ISODEV_PACKET & 0xff, ZC_ISODEV_PACKET >> 8, ZC_ISODEV_INTERVAL,
        7, 0x05, ZC_ISODEV_EP_OUT, 0x01, ZC_ISODEV_PACKET & 0xff, ZC_ISODEV_PACKET >> 8, ZC_ISODEV_INTERVAL,
};

static const char *const strings[] = { NULL, "zcusb", "iso test device", "zcusb-isodev" };

bool ep_exists(const Dev *d, uint8_t ep) {
        return d->configuration == 1 && d->alt == ZC_ISODEV_ALT && (ep == ZC_ISODEV_EP_IN || ep == ZC_ISODEV_EP_OUT);
}

/* A string descriptor into BUF (UTF-16LE of an ASCII string), its length, or -1. */
static int string_desc(uint8_t index, uint8_t *buf, size_t size) {
        const char *s;
        size_t n;

        if (index == 0) {
                buf[0] = 4;
                buf[1] = DT_STRING;
                buf[2] = 0x09; /* LANGID 0x0409, English (US) */
                buf[3] = 0x04;
                return 4;
        }
        if (index >= sizeof(strings) / sizeof(strings[0]))
                return -1;
        s = strings[index];
        n = strlen(s);
        if (2 + 2 * n > size || 2 + 2 * n > 255)
                return -1;
        buf[0] = (uint8_t) (2 + 2 * n);
        buf[1] = DT_STRING;
        for (size_t i = 0; i < n; i++) {
                buf[2 + 2 * i] = (uint8_t) s[i];
                buf[3 + 2 * i] = 0;
        }
        return (int) (2 + 2 * n);
}

/*
 * The answer to a standard request QEMU passed on (it handles SET_ADDRESS itself and turns
 * SET/GET_CONFIGURATION and SET/GET_INTERFACE into their own packets): IN data into BUF
 * and its length, 0 for an OUT request taken, or -1 to stall.
 */
int control_answer(Dev *d, const struct usb_redir_control_packet_header *h, uint8_t *buf, size_t size) {
        uint8_t type = h->requesttype, recipient = type & 0x1f;
        int n;

        if ((type & 0x60) != 0) /* class or vendor: this device has none */
                return -1;
        switch (h->request) {
        case REQ_GET_DESCRIPTOR:
                if (type != 0x80)
                        return -1;
                switch (h->value >> 8) {
                case DT_DEVICE:
                        memcpy(buf, device_desc, sizeof(device_desc));
                        return sizeof(device_desc);
                case DT_CONFIG:
                        if ((h->value & 0xff) != 0)
                                return -1;
                        memcpy(buf, config_desc, sizeof(config_desc));
                        return sizeof(config_desc);
                case DT_STRING:
                        return string_desc(h->value & 0xff, buf, size);
                default: /* device qualifier (no other speed), BOS (bcdUSB 2.00), ...: stall */
                        return -1;
                }
        case REQ_GET_STATUS:
                if (!(type & 0x80) || recipient > 2)
                        return -1;
                if (recipient == 1 && (!d->configuration || h->index != ZC_ISODEV_INTERFACE))
                        return -1;
                if (recipient == 2 && (h->index & 0x7f) != 0 && !ep_exists(d, (uint8_t) h->index))
                        return -1;
                n = 2; /* bus powered, no remote wakeup; interface and endpoint: 0 (not halted) */
                buf[0] = buf[1] = 0;
                return n;
        case REQ_CLEAR_FEATURE:
        case REQ_SET_FEATURE:
                if (type & 0x80)
                        return -1;
                /* ENDPOINT_HALT on an iso endpoint, remote wakeup, test mode: taken, no effect */
                return 0;
        default:
                return -1;
        }
}
