/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The descriptor calls of libusb: from Device.Descriptors and Device.GetDescriptor. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compat-internal.h"

int LIBUSB_CALL libusb_get_device_descriptor(libusb_device *dev, struct libusb_device_descriptor *desc) {
        *desc = dev->descriptor;
        return LIBUSB_SUCCESS;
}

int LIBUSB_CALL libusb_get_config_descriptor(libusb_device *dev, uint8_t config_index,
                                             struct libusb_config_descriptor **config) {
        int r = compat_parse_config(dev->raw, dev->raw_size, config_index, false, config);
        if (r == LIBUSB_ERROR_IO)
                log_warn(dev->ctx, "%s: configuration %u is malformed", dev->object, config_index);
        return r;
}

int LIBUSB_CALL libusb_get_config_descriptor_by_value(libusb_device *dev, uint8_t value,
                                                      struct libusb_config_descriptor **config) {
        return compat_parse_config(dev->raw, dev->raw_size, value, true, config);
}

int LIBUSB_CALL libusb_get_active_config_descriptor(libusb_device *dev, struct libusb_config_descriptor **config) {
        if (dev->active_config == 0) {
                log_dbg(dev->ctx, "%s is unconfigured", dev->object);
                return LIBUSB_ERROR_NOT_FOUND;
        }
        return compat_parse_config(dev->raw, dev->raw_size, dev->active_config, true, config);
}

void LIBUSB_CALL libusb_free_config_descriptor(struct libusb_config_descriptor *config) {
        compat_free_config(config);
}

int LIBUSB_CALL libusb_get_ss_endpoint_companion_descriptor(
                libusb_context *ctx, const struct libusb_endpoint_descriptor *endpoint,
                struct libusb_ss_endpoint_companion_descriptor **ep_comp) {
        const uint8_t *p = endpoint->extra;
        int size = endpoint->extra_length;

        (void) ctx;
        while (p && size >= 2) {
                if (p[0] < 2 || p[0] > size)
                        return LIBUSB_ERROR_IO;
                if (p[1] == LIBUSB_DT_SS_ENDPOINT_COMPANION) {
                        struct libusb_ss_endpoint_companion_descriptor *c;

                        if (p[0] < LIBUSB_DT_SS_ENDPOINT_COMPANION_SIZE)
                                return LIBUSB_ERROR_IO;
                        c = malloc(sizeof(*c));
                        if (!c)
                                return LIBUSB_ERROR_NO_MEM;
                        *c = (struct libusb_ss_endpoint_companion_descriptor) {
                                .bLength = p[0],
                                .bDescriptorType = p[1],
                                .bMaxBurst = p[2],
                                .bmAttributes = p[3],
                                .wBytesPerInterval = (uint16_t) (p[4] | p[5] << 8),
                        };
                        *ep_comp = c;
                        return LIBUSB_SUCCESS;
                }
                size -= p[0];
                p += p[0];
        }
        return LIBUSB_ERROR_NOT_FOUND;
}

void LIBUSB_CALL libusb_free_ss_endpoint_companion_descriptor(struct libusb_ss_endpoint_companion_descriptor *c) {
        free(c);
}

int LIBUSB_CALL libusb_get_bos_descriptor(libusb_device_handle *handle, struct libusb_bos_descriptor **bos) {
        _cleanup_free_ uint8_t *buf = malloc(UINT16_MAX); /* wTotalLength's limit */
        int n;

        if (!buf)
                return LIBUSB_ERROR_NO_MEM;
        n = descriptor_request(handle->dev, LIBUSB_DT_BOS, 0, 0, buf, UINT16_MAX);
        if (n < 0)
                return n;
        return compat_parse_bos(buf, (size_t) n, bos);
}

void LIBUSB_CALL libusb_free_bos_descriptor(struct libusb_bos_descriptor *bos) {
        compat_free_bos(bos);
}

/* A capability of TYPE and at least SIZE bytes, else an error as libusb gives. */
static int check_capability(libusb_context *ctx, const struct libusb_bos_dev_capability_descriptor *cap,
                            uint8_t type, uint8_t size) {
        if (cap->bDevCapabilityType != type) {
                log_err(ctx, "unexpected device capability type %#x (expected %#x)", cap->bDevCapabilityType,
                        type);
                return LIBUSB_ERROR_INVALID_PARAM;
        }
        if (cap->bLength < size) {
                log_err(ctx, "short device capability descriptor (%u < %u)", cap->bLength, size);
                return LIBUSB_ERROR_IO;
        }
        return 0;
}

int LIBUSB_CALL libusb_get_usb_2_0_extension_descriptor(
                libusb_context *ctx, struct libusb_bos_dev_capability_descriptor *cap,
                struct libusb_usb_2_0_extension_descriptor **ret) {
        const uint8_t *p = (const uint8_t *) cap;
        struct libusb_usb_2_0_extension_descriptor *d;
        int r;

        r = check_capability(ctx, cap, LIBUSB_BT_USB_2_0_EXTENSION, LIBUSB_BT_USB_2_0_EXTENSION_SIZE);
        if (r < 0)
                return r;
        d = malloc(sizeof(*d));
        if (!d)
                return LIBUSB_ERROR_NO_MEM;
        *d = (struct libusb_usb_2_0_extension_descriptor) {
                .bLength = p[0],
                .bDescriptorType = p[1],
                .bDevCapabilityType = p[2],
                .bmAttributes = (uint32_t) p[3] | (uint32_t) p[4] << 8 | (uint32_t) p[5] << 16 |
                                (uint32_t) p[6] << 24,
        };
        *ret = d;
        return LIBUSB_SUCCESS;
}

void LIBUSB_CALL libusb_free_usb_2_0_extension_descriptor(struct libusb_usb_2_0_extension_descriptor *d) {
        free(d);
}

int LIBUSB_CALL libusb_get_ss_usb_device_capability_descriptor(
                libusb_context *ctx, struct libusb_bos_dev_capability_descriptor *cap,
                struct libusb_ss_usb_device_capability_descriptor **ret) {
        const uint8_t *p = (const uint8_t *) cap;
        struct libusb_ss_usb_device_capability_descriptor *d;
        int r;

        r = check_capability(ctx, cap, LIBUSB_BT_SS_USB_DEVICE_CAPABILITY, LIBUSB_BT_SS_USB_DEVICE_CAPABILITY_SIZE);
        if (r < 0)
                return r;
        d = malloc(sizeof(*d));
        if (!d)
                return LIBUSB_ERROR_NO_MEM;
        *d = (struct libusb_ss_usb_device_capability_descriptor) {
                .bLength = p[0],
                .bDescriptorType = p[1],
                .bDevCapabilityType = p[2],
                .bmAttributes = p[3],
                .wSpeedSupported = (uint16_t) (p[4] | p[5] << 8),
                .bFunctionalitySupport = p[6],
                .bU1DevExitLat = p[7],
                .bU2DevExitLat = (uint16_t) (p[8] | p[9] << 8),
        };
        *ret = d;
        return LIBUSB_SUCCESS;
}

void LIBUSB_CALL libusb_free_ss_usb_device_capability_descriptor(
                struct libusb_ss_usb_device_capability_descriptor *d) {
        free(d);
}

int LIBUSB_CALL libusb_get_container_id_descriptor(libusb_context *ctx,
                                                   struct libusb_bos_dev_capability_descriptor *cap,
                                                   struct libusb_container_id_descriptor **ret) {
        const uint8_t *p = (const uint8_t *) cap;
        struct libusb_container_id_descriptor *d;
        int r;

        r = check_capability(ctx, cap, LIBUSB_BT_CONTAINER_ID, LIBUSB_BT_CONTAINER_ID_SIZE);
        if (r < 0)
                return r;
        d = malloc(sizeof(*d));
        if (!d)
                return LIBUSB_ERROR_NO_MEM;
        d->bLength = p[0];
        d->bDescriptorType = p[1];
        d->bDevCapabilityType = p[2];
        d->bReserved = p[3];
        memcpy(d->ContainerID, p + 4, 16);
        *ret = d;
        return LIBUSB_SUCCESS;
}

void LIBUSB_CALL libusb_free_container_id_descriptor(struct libusb_container_id_descriptor *d) {
        free(d);
}

int descriptor_request(struct libusb_device *dev, uint8_t type, uint8_t index, uint16_t language, uint8_t *data,
                       uint16_t length) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct libusb_context *ctx = dev->ctx;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const uint8_t *p;
        const void *blob;
        size_t size;
        int r;

        /* Device and configuration descriptors: the kernel's copies, no device traffic. */
        if (type == LIBUSB_DT_DEVICE) {
                size = LIBUSB_DT_DEVICE_SIZE;
                p = dev->raw;
                if (dev->raw_size < size)
                        return LIBUSB_ERROR_IO;
                goto copy;
        }
        if (type == LIBUSB_DT_CONFIG) {
                r = compat_find_config_raw(dev->raw, dev->raw_size, index, &p, &size);
                if (r < 0)
                        return r == LIBUSB_ERROR_NOT_FOUND ? LIBUSB_ERROR_PIPE : r; /* the device would stall */
                goto copy;
        }

        bus_lock(ctx);
        r = sd_bus_call_method(ctx->zc->bus, ZCUSB_BUS_NAME, dev->object, ZCUSB_DEVICE_INTERFACE, "GetDescriptor",
                               &error, &reply, "yyq", type, index, language);
        bus_unlock(ctx);
        if (r < 0) {
                log_dbg(ctx, "GetDescriptor(%#x, %u, %#x): %s", type, index, language, error.message ?: "");
                if (sd_bus_error_has_name(&error, ZCUSB_ERROR_NO_SUCH_DEVICE))
                        r = LIBUSB_ERROR_NO_DEVICE;
                else if (sd_bus_error_has_name(&error, ZCUSB_ERROR_ACCESS_DENIED))
                        r = LIBUSB_ERROR_ACCESS;
                else if (sd_bus_error_has_name(&error, ZCUSB_ERROR_INVALID_ARGUMENT))
                        r = LIBUSB_ERROR_NOT_SUPPORTED;
                else if (sd_bus_error_has_name(&error, ZCUSB_ERROR_FAILED))
                        r = LIBUSB_ERROR_PIPE; /* the device refused it */
                else
                        r = compat_error(r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read_array(reply, 'y', &blob, &size);
        if (r < 0)
                return LIBUSB_ERROR_IO;
        p = blob;
copy:
        if (size > length)
                size = length;
        memcpy(data, p, size);
        return (int) size;
}

int LIBUSB_CALL libusb_get_string_descriptor_ascii(libusb_device_handle *handle, uint8_t desc_index,
                                                   unsigned char *data, int length) {
        uint8_t buf[255];
        uint16_t language;
        int r, di, si;

        if (desc_index == 0)
                return LIBUSB_ERROR_INVALID_PARAM;
        if (length <= 0)
                return LIBUSB_ERROR_INVALID_PARAM;

        /* The first language the device lists, as libusb. */
        r = descriptor_request(handle->dev, LIBUSB_DT_STRING, 0, 0, buf, sizeof(buf));
        if (r < 0)
                return r;
        if (r < 4)
                return LIBUSB_ERROR_IO;
        language = (uint16_t) (buf[2] | buf[3] << 8);

        r = descriptor_request(handle->dev, LIBUSB_DT_STRING, desc_index, language, buf, sizeof(buf));
        if (r < 0)
                return r;
        if (buf[1] != LIBUSB_DT_STRING || buf[0] > r || r < 2)
                return LIBUSB_ERROR_IO;

        for (di = 0, si = 2; si + 1 < buf[0] && di < length - 1; si += 2)
                data[di++] = (buf[si] & 0x80) || buf[si + 1] ? '?' : buf[si]; /* non-ASCII */
        data[di] = 0;
        return di;
}

int LIBUSB_CALL libusb_get_max_packet_size(libusb_device *dev, unsigned char endpoint) {
        struct libusb_config_descriptor *config;
        const struct libusb_endpoint_descriptor *ep = NULL;
        int r;

        r = libusb_get_active_config_descriptor(dev, &config);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < config->bNumInterfaces && !ep; i++)
                for (int j = 0; j < config->interface[i].num_altsetting && !ep; j++)
                        ep = device_find_endpoint(config, config->interface[i].altsetting[j].bInterfaceNumber,
                                                  config->interface[i].altsetting[j].bAlternateSetting,
                                                  endpoint);
        r = ep ? ep->wMaxPacketSize : LIBUSB_ERROR_NOT_FOUND;
        libusb_free_config_descriptor(config);
        return r;
}

int LIBUSB_CALL libusb_get_max_iso_packet_size(libusb_device *dev, unsigned char endpoint) {
        struct libusb_config_descriptor *config;
        const struct libusb_endpoint_descriptor *ep = NULL;
        int r;

        r = libusb_get_active_config_descriptor(dev, &config);
        if (r < 0)
                return r;
        /* libusb looks at the first alternate setting holding it */
        for (unsigned i = 0; i < config->bNumInterfaces && !ep; i++)
                for (int j = 0; j < config->interface[i].num_altsetting && !ep; j++)
                        ep = device_find_endpoint(config, config->interface[i].altsetting[j].bInterfaceNumber,
                                                  config->interface[i].altsetting[j].bAlternateSetting,
                                                  endpoint);
        if (!ep)
                r = LIBUSB_ERROR_NOT_FOUND;
        else {
                int type = ep->bmAttributes & 0x3;
                int mps = ep->wMaxPacketSize & 0x7ff;
                r = mps;
                if (type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS || type == LIBUSB_TRANSFER_TYPE_INTERRUPT)
                        r = mps * (1 + ((ep->wMaxPacketSize >> 11) & 3));
                if (dev->speed >= LIBUSB_SPEED_SUPER) {
                        struct libusb_ss_endpoint_companion_descriptor *c;
                        if (libusb_get_ss_endpoint_companion_descriptor(dev->ctx, ep, &c) == 0) {
                                r = c->wBytesPerInterval;
                                libusb_free_ss_endpoint_companion_descriptor(c);
                        }
                }
        }
        libusb_free_config_descriptor(config);
        return r;
}

const struct libusb_endpoint_descriptor *device_find_endpoint(const struct libusb_config_descriptor *config,
                                                               uint8_t interface, uint8_t alt, uint8_t endpoint) {
        for (unsigned i = 0; i < config->bNumInterfaces; i++)
                for (int j = 0; j < config->interface[i].num_altsetting; j++) {
                        const struct libusb_interface_descriptor *a = &config->interface[i].altsetting[j];
                        if (a->bInterfaceNumber != interface || a->bAlternateSetting != alt)
                                continue;
                        for (unsigned k = 0; k < a->bNumEndpoints; k++)
                                if (a->endpoint[k].bEndpointAddress == endpoint)
                                        return &a->endpoint[k];
                }
        return NULL;
}
