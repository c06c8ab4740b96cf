/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "usb-descriptors.h"

#define USB_DT_DEVICE         0x01
#define USB_DT_CONFIG         0x02
#define USB_DT_INTERFACE      0x04
#define USB_DT_ENDPOINT       0x05
#define USB_DT_DEVICE_SIZE    18
#define USB_DT_CONFIG_SIZE    9
#define USB_DT_INTERFACE_SIZE 9
#define USB_DT_ENDPOINT_SIZE  7

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}

void usb_descriptors_done(UsbDescriptors *d) {
        free(d->alt_settings);
        *d = (UsbDescriptors) {};
}

/* Parse one configuration, BUF..BUF+LEN being exactly its wTotalLength bytes. */
static int parse_configuration(const uint8_t *buf, size_t len, UsbDescriptors *d) {
        UsbAltSetting *current = NULL;
        size_t pos = 0;

        while (pos + 2 <= len) {
                uint8_t dlen = buf[pos], type = buf[pos + 1];
                const uint8_t *p = buf + pos;

                if (dlen < 2 || dlen > len - pos)
                        return -EBADMSG;

                if (type == USB_DT_INTERFACE) {
                        UsbAltSetting *n;

                        if (dlen < USB_DT_INTERFACE_SIZE)
                                return -EBADMSG;
                        /* At most 256 interfaces x 256 alt settings exist: a
                         * longer list is garbage, not a reason to allocate. */
                        if (d->n_alt_settings >= 1024)
                                return -EBADMSG;
                        n = realloc(d->alt_settings, (d->n_alt_settings + 1) * sizeof(*n));
                        if (!n)
                                return -ENOMEM;
                        d->alt_settings = n;
                        current = &n[d->n_alt_settings++];
                        *current = (UsbAltSetting) {
                                .interface_number = p[2],
                                .alt_setting = p[3],
                                .class = p[5],
                                .subclass = p[6],
                                .protocol = p[7],
                        };
                } else if (type == USB_DT_ENDPOINT && current) {
                        UsbEndpoint *ep;

                        if (dlen < USB_DT_ENDPOINT_SIZE)
                                return -EBADMSG;
                        if ((p[2] & 0x0f) == 0) /* ep0 is not described here */
                                return -EBADMSG;
                        if (current->n_endpoints >= USB_MAX_ENDPOINTS)
                                return -EBADMSG;
                        ep = &current->endpoints[current->n_endpoints++];
                        *ep = (UsbEndpoint) {
                                .address = p[2],
                                .attributes = p[3],
                                .max_packet_size = le16(p + 4),
                                .interval = p[6],
                        };
                }
                /* Class-specific and companion descriptors are skipped. */
                pos += dlen;
        }
        return 0;
}

int usb_descriptors_parse(const uint8_t *buf, size_t len, uint8_t active_config, UsbDescriptors *ret) {
        UsbDescriptors d = {};
        size_t pos, first_config = 0;
        bool found = false;
        int r;

        if (len < USB_DT_DEVICE_SIZE || buf[0] < USB_DT_DEVICE_SIZE || buf[1] != USB_DT_DEVICE)
                return -EBADMSG;

        d.bcd_usb = le16(buf + 2);
        d.device_class = buf[4];
        d.device_subclass = buf[5];
        d.device_protocol = buf[6];
        d.max_packet_size0 = buf[7];
        d.vendor_id = le16(buf + 8);
        d.product_id = le16(buf + 10);
        d.bcd_device = le16(buf + 12);
        d.n_configurations = buf[17];

        /* Find the active configuration among those that follow. */
        for (pos = buf[0]; pos < len;) {
                size_t total;

                if (len - pos < USB_DT_CONFIG_SIZE || buf[pos] < USB_DT_CONFIG_SIZE ||
                    buf[pos + 1] != USB_DT_CONFIG)
                        return -EBADMSG;
                total = le16(buf + pos + 2);
                if (total < buf[pos] || total > len - pos)
                        return -EBADMSG;
                if (!first_config)
                        first_config = pos;
                if (buf[pos + 5] == active_config) {
                        found = true;
                        break;
                }
                pos += total;
        }

        if (!found)
                pos = first_config; /* 0: a device with no configuration at all */
        if (pos) {
                d.configuration_value = buf[pos + 5];
                r = parse_configuration(buf + pos, le16(buf + pos + 2), &d);
                if (r < 0) {
                        usb_descriptors_done(&d);
                        return r;
                }
        }

        *ret = d;
        return 0;
}

const UsbEndpoint *usb_descriptors_find_endpoint(const UsbDescriptors *d, uint8_t interface_number,
                                                 uint8_t alt_setting, uint8_t address) {
        for (size_t i = 0; i < d->n_alt_settings; i++) {
                const UsbAltSetting *a = &d->alt_settings[i];

                if (a->interface_number != interface_number || a->alt_setting != alt_setting)
                        continue;
                for (size_t j = 0; j < a->n_endpoints; j++)
                        if (a->endpoints[j].address == address)
                                return &a->endpoints[j];
        }
        return NULL;
}

const char *usb_endpoint_type_to_string(uint8_t attributes) {
        static const char *const names[] = { "control", "isochronous", "bulk", "interrupt" };
        return names[attributes & 0x03];
}
