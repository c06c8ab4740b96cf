/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The raw descriptors of Device.Descriptors turned into libusb's structures,
 * grouped as libusb's own parser groups them (so a program sees the same
 * `extra` bytes): class- and vendor-specific descriptors before the first
 * interface go to the configuration, after an interface descriptor to that
 * alternate setting, after an endpoint to that endpoint. The bytes come from
 * the device through zcusbd: every length is checked; this file is fuzzed
 * (tests/fuzz/fuzz-libusb-descriptors.c). No I/O, no context, no logging.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compat-internal.h"

#define DESC_HEADER 2
#define MAX_INTERFACES 32 /* as libusb: more is not a real device */
#define MAX_ENDPOINTS 32
#define MAX_ALTSETTINGS 128

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

int compat_parse_device_descriptor(const uint8_t *raw, size_t size, struct libusb_device_descriptor *ret) {
        if (size < LIBUSB_DT_DEVICE_SIZE || raw[0] < LIBUSB_DT_DEVICE_SIZE || raw[1] != LIBUSB_DT_DEVICE)
                return LIBUSB_ERROR_IO;
        *ret = (struct libusb_device_descriptor) {
                .bLength = raw[0],
                .bDescriptorType = raw[1],
                .bcdUSB = le16(raw + 2),
                .bDeviceClass = raw[4],
                .bDeviceSubClass = raw[5],
                .bDeviceProtocol = raw[6],
                .bMaxPacketSize0 = raw[7],
                .idVendor = le16(raw + 8),
                .idProduct = le16(raw + 10),
                .bcdDevice = le16(raw + 12),
                .iManufacturer = raw[14],
                .iProduct = raw[15],
                .iSerialNumber = raw[16],
                .bNumConfigurations = raw[17],
        };
        return LIBUSB_SUCCESS;
}

int compat_find_config_raw(const uint8_t *raw, size_t size, uint8_t index, const uint8_t **ret, size_t *ret_size) {
        size_t pos;
        unsigned i = 0;

        if (size < LIBUSB_DT_DEVICE_SIZE || raw[0] < LIBUSB_DT_DEVICE_SIZE || raw[0] > size)
                return LIBUSB_ERROR_IO;
        for (pos = raw[0]; size - pos >= LIBUSB_DT_CONFIG_SIZE; i++) {
                size_t total;

                if (raw[pos] < LIBUSB_DT_CONFIG_SIZE || raw[pos + 1] != LIBUSB_DT_CONFIG)
                        return LIBUSB_ERROR_IO;
                total = le16(raw + pos + 2);
                if (total < LIBUSB_DT_CONFIG_SIZE)
                        return LIBUSB_ERROR_IO;
                /* sysfs holds what the device sent: a short tail is what there is */
                if (total > size - pos)
                        total = size - pos;
                if (i == index) {
                        *ret = raw + pos;
                        *ret_size = total;
                        return LIBUSB_SUCCESS;
                }
                pos += total;
        }
        return LIBUSB_ERROR_NOT_FOUND;
}

/* Bytes from P up to the next descriptor of one of the structural types (or
 * the end); -1 when a descriptor's length is impossible. */
static ssize_t skip_extra(const uint8_t *p, size_t size) {
        size_t pos = 0;

        while (size - pos >= DESC_HEADER) {
                uint8_t len = p[pos], type = p[pos + 1];

                if (len < DESC_HEADER)
                        return -1;
                if (type == LIBUSB_DT_ENDPOINT || type == LIBUSB_DT_INTERFACE || type == LIBUSB_DT_CONFIG ||
                    type == LIBUSB_DT_DEVICE)
                        break;
                if (len > size - pos) /* truncated: keep what is whole */
                        return (ssize_t) pos;
                pos += len;
        }
        return (ssize_t) pos;
}

static int copy_extra(const uint8_t *p, size_t len, const unsigned char **extra, int *extra_length) {
        unsigned char *e;

        if (len == 0)
                return 0;
        e = malloc(len);
        if (!e)
                return LIBUSB_ERROR_NO_MEM;
        memcpy(e, p, len);
        *extra = e;
        *extra_length = (int) len;
        return 0;
}

/* One endpoint at P: bytes used (descriptor + extra), 0 when P is no endpoint. */
static ssize_t parse_endpoint(struct libusb_endpoint_descriptor *ep, const uint8_t *p, size_t size) {
        ssize_t extra;
        size_t len;

        if (size < DESC_HEADER || p[1] != LIBUSB_DT_ENDPOINT)
                return 0;
        len = p[0];
        if (len < LIBUSB_DT_ENDPOINT_SIZE || len > size)
                return LIBUSB_ERROR_IO;
        *ep = (struct libusb_endpoint_descriptor) {
                .bLength = p[0],
                .bDescriptorType = p[1],
                .bEndpointAddress = p[2],
                .bmAttributes = p[3],
                .wMaxPacketSize = le16(p + 4),
                .bInterval = p[6],
        };
        if (len >= LIBUSB_DT_ENDPOINT_AUDIO_SIZE) {
                ep->bRefresh = p[7];
                ep->bSynchAddress = p[8];
        }
        extra = skip_extra(p + len, size - len);
        if (extra < 0)
                return LIBUSB_ERROR_IO;
        if (copy_extra(p + len, (size_t) extra, &ep->extra, &ep->extra_length) < 0)
                return LIBUSB_ERROR_NO_MEM;
        return (ssize_t) len + extra;
}

static void free_altsetting(struct libusb_interface_descriptor *a) {
        if (a->endpoint)
                for (unsigned k = 0; k < a->bNumEndpoints; k++)
                        free((void *) a->endpoint[k].extra);
        free((void *) a->endpoint);
        free((void *) a->extra);
}

/* Every alternate setting of one interface number from P: bytes used. */
static ssize_t parse_interface(struct libusb_interface *usb_interface, const uint8_t *p, size_t size) {
        struct libusb_interface_descriptor *alts = NULL;
        size_t pos = 0;
        int n = 0;

        for (;;) {
                struct libusb_interface_descriptor *a, *grown;
                struct libusb_endpoint_descriptor *eps;
                size_t len;
                ssize_t extra;

                if (size - pos < LIBUSB_DT_INTERFACE_SIZE || p[pos + 1] != LIBUSB_DT_INTERFACE ||
                    p[pos] < LIBUSB_DT_INTERFACE_SIZE || p[pos] > size - pos)
                        goto fail_io;
                if (n >= MAX_ALTSETTINGS)
                        goto fail_io;
                grown = realloc(alts, (size_t) (n + 1) * sizeof(*alts));
                if (!grown)
                        goto fail_mem;
                alts = grown;
                a = &alts[n++];
                len = p[pos];
                *a = (struct libusb_interface_descriptor) {
                        .bLength = p[pos],
                        .bDescriptorType = p[pos + 1],
                        .bInterfaceNumber = p[pos + 2],
                        .bAlternateSetting = p[pos + 3],
                        .bNumEndpoints = p[pos + 4],
                        .bInterfaceClass = p[pos + 5],
                        .bInterfaceSubClass = p[pos + 6],
                        .bInterfaceProtocol = p[pos + 7],
                        .iInterface = p[pos + 8],
                };
                if (a->bNumEndpoints > MAX_ENDPOINTS)
                        goto fail_io;
                pos += len;
                extra = skip_extra(p + pos, size - pos);
                if (extra < 0)
                        goto fail_io;
                if (copy_extra(p + pos, (size_t) extra, &a->extra, &a->extra_length) < 0)
                        goto fail_mem;
                pos += (size_t) extra;

                if (a->bNumEndpoints > 0) {
                        eps = calloc(a->bNumEndpoints, sizeof(*eps));
                        if (!eps)
                                goto fail_mem;
                        a->endpoint = eps;
                        for (unsigned k = 0; k < a->bNumEndpoints; k++) {
                                ssize_t used = parse_endpoint(&eps[k], p + pos, size - pos);
                                if (used < 0)
                                        goto fail_io;
                                if (used == 0) {
                                        /* Fewer endpoints than announced (libusb: the same). */
                                        a->bNumEndpoints = (uint8_t) k;
                                        break;
                                }
                                pos += (size_t) used;
                        }
                }

                /* Another alternate setting of the same interface follows? */
                if (size - pos < LIBUSB_DT_INTERFACE_SIZE || p[pos + 1] != LIBUSB_DT_INTERFACE ||
                    p[pos + 2] != alts[0].bInterfaceNumber)
                        break;
        }
        usb_interface->altsetting = alts;
        usb_interface->num_altsetting = n;
        return (ssize_t) pos;

fail_io:
        for (int i = 0; i < n; i++)
                free_altsetting(&alts[i]);
        free(alts);
        return LIBUSB_ERROR_IO;
fail_mem:
        for (int i = 0; i < n; i++)
                free_altsetting(&alts[i]);
        free(alts);
        return LIBUSB_ERROR_NO_MEM;
}

void compat_free_config(struct libusb_config_descriptor *config) {
        if (!config)
                return;
        if (config->interface)
                for (unsigned i = 0; i < config->bNumInterfaces; i++) {
                        const struct libusb_interface *itf = &config->interface[i];
                        for (int j = 0; j < itf->num_altsetting; j++)
                                free_altsetting((struct libusb_interface_descriptor *) &itf->altsetting[j]);
                        free((void *) itf->altsetting);
                }
        free((void *) config->interface);
        free((void *) config->extra);
        free(config);
}

static int parse_config_raw(const uint8_t *p, size_t size, struct libusb_config_descriptor **ret) {
        struct libusb_config_descriptor *config;
        struct libusb_interface *interfaces;
        size_t pos;
        int r = LIBUSB_ERROR_IO;

        if (size < LIBUSB_DT_CONFIG_SIZE || p[0] < LIBUSB_DT_CONFIG_SIZE || p[0] > size ||
            p[1] != LIBUSB_DT_CONFIG)
                return LIBUSB_ERROR_IO;
        config = calloc(1, sizeof(*config));
        if (!config)
                return LIBUSB_ERROR_NO_MEM;
        *config = (struct libusb_config_descriptor) {
                .bLength = p[0],
                .bDescriptorType = p[1],
                .wTotalLength = le16(p + 2),
                .bNumInterfaces = p[4],
                .bConfigurationValue = p[5],
                .iConfiguration = p[6],
                .bmAttributes = p[7],
                .MaxPower = p[8],
        };
        if (config->bNumInterfaces > MAX_INTERFACES)
                goto fail;
        interfaces = calloc(config->bNumInterfaces ?: 1, sizeof(*interfaces));
        if (!interfaces) {
                r = LIBUSB_ERROR_NO_MEM;
                goto fail;
        }
        config->interface = interfaces;

        pos = p[0];
        for (unsigned i = 0; i < config->bNumInterfaces; i++) {
                ssize_t extra, used;

                extra = skip_extra(p + pos, size - pos);
                if (extra < 0)
                        goto fail;
                /* Only what precedes the first interface is the configuration's. */
                if (extra > 0 && !config->extra &&
                    copy_extra(p + pos, (size_t) extra, &config->extra, &config->extra_length) < 0) {
                        r = LIBUSB_ERROR_NO_MEM;
                        goto fail;
                }
                pos += (size_t) extra;
                if (size - pos < DESC_HEADER) {
                        /* fewer interfaces than announced */
                        config->bNumInterfaces = (uint8_t) i;
                        break;
                }
                used = parse_interface(&interfaces[i], p + pos, size - pos);
                if (used < 0) {
                        config->bNumInterfaces = (uint8_t) i;
                        r = (int) used;
                        goto fail;
                }
                pos += (size_t) used;
        }
        *ret = config;
        return LIBUSB_SUCCESS;

fail:
        compat_free_config(config);
        return r;
}

int compat_parse_config(const uint8_t *raw, size_t size, uint8_t index, bool by_value,
                        struct libusb_config_descriptor **ret) {
        const uint8_t *p;
        size_t n;
        int r;

        if (!by_value) {
                r = compat_find_config_raw(raw, size, index, &p, &n);
                if (r < 0)
                        return r;
                return parse_config_raw(p, n, ret);
        }
        for (unsigned i = 0; i < 256; i++) {
                r = compat_find_config_raw(raw, size, (uint8_t) i, &p, &n);
                if (r < 0)
                        return r;
                if (p[5] == index)
                        return parse_config_raw(p, n, ret);
        }
        return LIBUSB_ERROR_NOT_FOUND;
}

void compat_free_bos(struct libusb_bos_descriptor *bos) {
        if (!bos)
                return;
        for (unsigned i = 0; i < bos->bNumDeviceCaps; i++)
                free(bos->dev_capability[i]);
        free(bos);
}

int compat_parse_bos(const uint8_t *raw, size_t size, struct libusb_bos_descriptor **ret) {
        struct libusb_bos_descriptor *bos;
        size_t pos;
        uint8_t n;

        if (size < LIBUSB_DT_BOS_SIZE || raw[0] < LIBUSB_DT_BOS_SIZE || raw[0] > size || raw[1] != LIBUSB_DT_BOS)
                return LIBUSB_ERROR_IO;
        n = raw[4];
        bos = calloc(1, sizeof(*bos) + n * sizeof(bos->dev_capability[0]));
        if (!bos)
                return LIBUSB_ERROR_NO_MEM;
        bos->bLength = raw[0];
        bos->bDescriptorType = raw[1];
        bos->wTotalLength = le16(raw + 2);
        pos = raw[0];
        for (unsigned i = 0; i < n; i++) {
                struct libusb_bos_dev_capability_descriptor *cap;
                uint8_t len;

                if (size - pos < DESC_HEADER)
                        break; /* fewer than announced: keep those read, as libusb */
                len = raw[pos];
                if (len < LIBUSB_DT_DEVICE_CAPABILITY_SIZE || raw[pos + 1] != LIBUSB_DT_DEVICE_CAPABILITY) {
                        compat_free_bos(bos);
                        return LIBUSB_ERROR_IO;
                }
                if (len > size - pos)
                        break;
                /* the struct is the descriptor's own layout: 3 bytes, then data */
                cap = malloc(sizeof(*cap) + len);
                if (!cap) {
                        compat_free_bos(bos);
                        return LIBUSB_ERROR_NO_MEM;
                }
                memcpy(cap, raw + pos, len);
                bos->dev_capability[i] = cap;
                bos->bNumDeviceCaps = (uint8_t) (i + 1);
                pos += len;
        }
        *ret = bos;
        return LIBUSB_SUCCESS;
}
