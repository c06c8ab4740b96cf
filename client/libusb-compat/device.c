/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Discovery: the devices zcusbd lets the caller see, and nothing else. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compat-internal.h"

static enum libusb_speed speed_from_kbps(uint32_t kbps) {
        switch (kbps) {
        case 1500:     return LIBUSB_SPEED_LOW;
        case 12000:    return LIBUSB_SPEED_FULL;
        case 480000:   return LIBUSB_SPEED_HIGH;
        case 5000000:  return LIBUSB_SPEED_SUPER;
        case 10000000:
        case 20000000: return LIBUSB_SPEED_SUPER_PLUS;
        default:       return LIBUSB_SPEED_UNKNOWN;
        }
}

/* "1-1.2" -> ports {1, 2}; a root hub ("usb1") has none. */
static void parse_port_path(struct libusb_device *dev) {
        const char *p = strchr(dev->port_path, '-');

        dev->n_ports = 0;
        if (!p)
                return;
        while (*p && dev->n_ports < COMPAT_MAX_PORTS) {
                char *end;
                unsigned long n = strtoul(p + 1, &end, 10);
                if (end == p + 1 || n == 0 || n > 255 || (*end != '.' && *end != '\0'))
                        break;
                dev->port_numbers[dev->n_ports++] = (uint8_t) n;
                p = end;
        }
}

static void device_free(struct libusb_device *dev) {
        free(dev->object);
        free(dev->port_path);
        free(dev->raw);
        free(dev);
}

/* Interfaces a(yyyyysa(yyqy)): only the driver names matter here. */
static int read_interfaces(sd_bus_message *m, struct libusb_device *dev) {
        int r;

        memset(dev->driver_bound, 0, sizeof(dev->driver_bound));
        r = sd_bus_message_enter_container(m, 'a', "(yyyyysa(yyqy))");
        if (r < 0)
                return r;
        for (;;) {
                uint8_t number, alt, cls, sub, proto;
                const char *driver;

                r = sd_bus_message_enter_container(m, 'r', "yyyyysa(yyqy)");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "yyyyys", &number, &alt, &cls, &sub, &proto, &driver);
                if (r < 0)
                        return r;
                if (!isempty(driver))
                        dev->driver_bound[number] = true;
                r = sd_bus_message_skip(m, "a(yyqy)");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_exit_container(m);
}

static int read_properties(struct libusb_context *ctx, struct libusb_device *dev) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        bus_lock(ctx);
        r = sd_bus_call_method(ctx->zc->bus, ZCUSB_BUS_NAME, dev->object, "org.freedesktop.DBus.Properties",
                               "GetAll", &error, &reply, "s", ZCUSB_DEVICE_INTERFACE);
        bus_unlock(ctx);
        if (r < 0) {
                log_dbg(ctx, "%s: %s", dev->object, error.message ?: strerror(-r));
                r = sd_bus_error_has_name(&error, ZCUSB_ERROR_NO_SUCH_DEVICE) ? -ENODEV :
                    sd_bus_error_has_name(&error, ZCUSB_ERROR_ACCESS_DENIED) ? -EACCES : r;
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name;
                const void *blob;
                size_t size;
                uint16_t u16;
                uint32_t u32;
                const char *s;

                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        return r;
                if (streq(name, "Descriptors")) {
                        r = sd_bus_message_enter_container(reply, 'v', "ay");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_read_array(reply, 'y', &blob, &size);
                        if (r < 0)
                                return r;
                        free(dev->raw);
                        dev->raw = size ? malloc(size) : NULL;
                        if (size && !dev->raw)
                                return -ENOMEM;
                        if (size)
                                memcpy(dev->raw, blob, size);
                        dev->raw_size = size;
                        r = sd_bus_message_exit_container(reply);
                } else if (streq(name, "BusNumber") || streq(name, "DeviceAddress")) {
                        r = sd_bus_message_read(reply, "v", "q", &u16);
                        if (r >= 0 && streq(name, "BusNumber"))
                                dev->bus_number = (uint8_t) u16;
                        else if (r >= 0)
                                dev->device_address = (uint8_t) u16;
                } else if (streq(name, "SpeedKbps")) {
                        r = sd_bus_message_read(reply, "v", "u", &u32);
                        dev->speed = speed_from_kbps(u32);
                } else if (streq(name, "ActiveConfiguration")) {
                        r = sd_bus_message_read(reply, "v", "y", &dev->active_config);
                } else if (streq(name, "PortPath")) {
                        r = sd_bus_message_read(reply, "v", "s", &s);
                        if (r >= 0 && free_and_strdup(&dev->port_path, s) < 0)
                                return -ENOMEM;
                } else if (streq(name, "Interfaces")) {
                        r = sd_bus_message_enter_container(reply, 'v', "a(yyyyysa(yyqy))");
                        if (r >= 0)
                                r = read_interfaces(reply, dev);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!dev->port_path && free_and_strdup(&dev->port_path, "") < 0)
                return -ENOMEM;
        parse_port_path(dev);
        return compat_parse_device_descriptor(dev->raw, dev->raw_size, &dev->descriptor) < 0 ? -EBADMSG : 0;
}

struct libusb_device *device_find(struct libusb_context *ctx, const char *object) {
        struct libusb_device *dev;

        LIST_FOREACH(dev, &ctx->devices, link)
                if (streq(dev->object, object))
                        return dev;
        return NULL;
}

int device_lookup_or_add(struct libusb_context *ctx, const char *object, struct libusb_device **ret) {
        struct libusb_device *dev;
        int r;

        dev = device_find(ctx, object);
        if (dev) {
                *ret = dev;
                return 0;
        }
        dev = calloc(1, sizeof(*dev));
        if (!dev)
                return -ENOMEM;
        dev->ctx = ctx;
        dev->refcount = 1; /* the context's, while zcusbd lists it */
        dev->object = strdup(object);
        if (!dev->object) {
                device_free(dev);
                return -ENOMEM;
        }
        r = read_properties(ctx, dev);
        if (r < 0) {
                if (r == -EBADMSG)
                        log_warn(ctx, "%s: zcusbd's Descriptors do not start with a device descriptor: skipped",
                                 object);
                device_free(dev);
                return r;
        }
        dev->listed = true;
        LIST_INSERT_HEAD(&ctx->devices, dev, link);
        *ret = dev;
        return 0;
}

void device_unlist(struct libusb_device *dev) {
        if (!dev->listed)
                return;
        LIST_REMOVE(dev, link);
        dev->listed = false;
        libusb_unref_device(dev);
}

libusb_device *LIBUSB_CALL libusb_ref_device(libusb_device *dev) {
        __atomic_add_fetch(&dev->refcount, 1, __ATOMIC_RELAXED);
        return dev;
}

void LIBUSB_CALL libusb_unref_device(libusb_device *dev) {
        if (!dev)
                return;
        if (__atomic_sub_fetch(&dev->refcount, 1, __ATOMIC_ACQ_REL) == 0)
                device_free(dev);
}

ssize_t LIBUSB_CALL libusb_get_device_list(libusb_context *ctx, libusb_device ***list) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_strv_free_ char **paths = NULL;
        struct libusb_device *dev, *next;
        libusb_device **out;
        size_t n = 0, k = 0;
        int r;

        ctx = compat_ctx(ctx);
        if (!ctx || !list)
                return LIBUSB_ERROR_INVALID_PARAM;

        bus_lock(ctx);
        r = sd_bus_call_method(ctx->zc->bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                               "ListDevices", &error, &reply, NULL);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(oqqqqsss)");
        while (r >= 0) {
                const char *path;
                char **grown;

                r = sd_bus_message_read(reply, "(oqqqqsss)", &path, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
                if (r <= 0)
                        break;
                grown = realloc(paths, (n + 2) * sizeof(char *));
                if (!grown) {
                        r = -ENOMEM;
                        break;
                }
                paths = grown;
                paths[n] = strdup(path);
                paths[n + 1] = NULL;
                if (!paths[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        bus_unlock(ctx);
        if (r < 0) {
                log_err(ctx, "zcusbd's ListDevices failed: %s", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                return compat_error(r);
        }

        pthread_mutex_lock(&ctx->lock);
        /* Devices zcusbd no longer lists leave the context (handles keep theirs). */
        for (dev = LIST_FIRST(&ctx->devices); dev; dev = next) {
                bool present = false;
                next = LIST_NEXT(dev, link);
                for (size_t i = 0; i < n; i++)
                        present = present || streq(paths[i], dev->object);
                if (!present)
                        device_unlist(dev);
        }
        out = calloc(n + 1, sizeof(*out));
        if (!out) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_NO_MEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = device_lookup_or_add(ctx, paths[i], &dev);
                if (r < 0) {
                        /* gone in between, or not ours to see: not listed */
                        log_dbg(ctx, "%s: skipped (%s)", paths[i], strerror(-r));
                        continue;
                }
                out[k++] = libusb_ref_device(dev);
        }
        pthread_mutex_unlock(&ctx->lock);
        *list = out;
        return (ssize_t) k;
}

void LIBUSB_CALL libusb_free_device_list(libusb_device **list, int unref_devices) {
        if (!list)
                return;
        if (unref_devices)
                for (libusb_device **d = list; *d; d++)
                        libusb_unref_device(*d);
        free(list);
}

uint8_t LIBUSB_CALL libusb_get_bus_number(libusb_device *dev) {
        return dev->bus_number;
}

uint8_t LIBUSB_CALL libusb_get_device_address(libusb_device *dev) {
        return dev->device_address;
}

uint8_t LIBUSB_CALL libusb_get_port_number(libusb_device *dev) {
        return dev->n_ports > 0 ? dev->port_numbers[dev->n_ports - 1] : 0;
}

int LIBUSB_CALL libusb_get_port_numbers(libusb_device *dev, uint8_t *port_numbers, int port_numbers_len) {
        if (port_numbers_len <= 0)
                return LIBUSB_ERROR_INVALID_PARAM;
        if (dev->n_ports > port_numbers_len)
                return LIBUSB_ERROR_OVERFLOW;
        memcpy(port_numbers, dev->port_numbers, (size_t) dev->n_ports);
        return dev->n_ports;
}

int LIBUSB_CALL libusb_get_port_path(libusb_context *ctx, libusb_device *dev, uint8_t *path, uint8_t path_length) {
        (void) ctx;
        return libusb_get_port_numbers(dev, path, path_length);
}

libusb_device *LIBUSB_CALL libusb_get_parent(libusb_device *dev) {
        struct libusb_context *ctx = dev->ctx;
        struct libusb_device *d, *found = NULL;
        char want[64];
        const char *dot, *dash;

        /* 1-1.2 -> 1-1; 1-1 -> usb1 (the root hub); a root hub has none */
        dash = strchr(dev->port_path, '-');
        if (!dash)
                return NULL;
        dot = strrchr(dev->port_path, '.');
        if (dot && dot > dash)
                snprintf(want, sizeof(want), "%.*s", (int) (dot - dev->port_path), dev->port_path);
        else
                snprintf(want, sizeof(want), "usb%.*s", (int) (dash - dev->port_path), dev->port_path);
        pthread_mutex_lock(&ctx->lock);
        LIST_FOREACH(d, &ctx->devices, link)
                if (streq(d->port_path, want))
                        found = d;
        pthread_mutex_unlock(&ctx->lock);
        return found; /* not referenced, as libusb: valid while the list is */
}

int LIBUSB_CALL libusb_get_device_speed(libusb_device *dev) {
        return dev->speed;
}

int LIBUSB_CALL libusb_wrap_sys_device(libusb_context *ctx, intptr_t sys_dev, libusb_device_handle **dev_handle) {
        (void) sys_dev, (void) dev_handle;
        return compat_not_supported(ctx, __func__,
                                    "a raw usbfs file descriptor bypasses zcusbd's per-interface access, "
                                    "quotas and revocation; use libusb_get_device_list()/libusb_open()");
}
