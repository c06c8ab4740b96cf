/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device handles and claimed interfaces (= zcusbd claims); their memory is in memory.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compat-internal.h"

/* ---- open / close ---- */

int LIBUSB_CALL libusb_open(libusb_device *dev, libusb_device_handle **ret) {
        struct libusb_context *ctx = dev->ctx;
        struct libusb_device_handle *h;

        h = calloc(1, sizeof(*h));
        if (!h)
                return LIBUSB_ERROR_NO_MEM;
        h->dev = libusb_ref_device(dev);
        LIST_INIT(&h->arenas);
        LIST_INIT(&h->dev_mem);
        /* Nothing to open: zcusbd holds the device; claims make the access. */
        if (dev->active_config)
                (void) compat_parse_config(dev->raw, dev->raw_size, dev->active_config, true, &h->config);
        pthread_mutex_lock(&ctx->lock);
        LIST_INSERT_HEAD(&ctx->handles, h, link);
        pthread_mutex_unlock(&ctx->lock);
        *ret = h;
        return LIBUSB_SUCCESS;
}

libusb_device_handle *LIBUSB_CALL libusb_open_device_with_vid_pid(libusb_context *ctx, uint16_t vendor_id,
                                                                  uint16_t product_id) {
        libusb_device **list, *found = NULL;
        libusb_device_handle *h = NULL;
        ssize_t n;

        n = libusb_get_device_list(ctx, &list);
        if (n < 0)
                return NULL;
        for (ssize_t i = 0; i < n && !found; i++)
                if (list[i]->descriptor.idVendor == vendor_id && list[i]->descriptor.idProduct == product_id)
                        found = list[i];
        if (found && libusb_open(found, &h) < 0)
                h = NULL;
        libusb_free_device_list(list, 1);
        return h;
}

libusb_device *LIBUSB_CALL libusb_get_device(libusb_device_handle *handle) {
        return handle->dev;
}

static void claim_free(struct libusb_context *ctx, CompatClaim *c) {
        /* ctx->lock held */
        io_flush_claim(c, LIBUSB_TRANSFER_CANCELLED);
        events_unwatch_claim(ctx, c);
        memory_claim_released(c);
        LIST_REMOVE(c, link);
        c->handle->claims[c->interface] = NULL;
        bus_lock(ctx);
        (void) zcusb_claim_release(c->claim); /* frees its buffers and queue */
        bus_unlock(ctx);
        free(c);
}

void LIBUSB_CALL libusb_close(libusb_device_handle *handle) {
        struct libusb_context *ctx;

        if (!handle)
                return;
        ctx = handle->dev->ctx;
        pthread_mutex_lock(&ctx->lock);
        for (unsigned i = 0; i < 256; i++)
                if (handle->claims[i])
                        claim_free(ctx, handle->claims[i]);
        LIST_REMOVE(handle, link);
        memory_handle_closed(handle);
        pthread_mutex_unlock(&ctx->lock);
        /* Transfers flushed above still have callbacks to run. */
        ctx_wake(ctx);
        compat_free_config(handle->config);
        libusb_unref_device(handle->dev);
        free(handle);
}

/* ---- claims ---- */

int LIBUSB_CALL libusb_claim_interface(libusb_device_handle *handle, int interface_number) {
        struct libusb_device *dev = handle->dev;
        struct libusb_context *ctx = dev->ctx;
        CompatClaim *c;
        int r;

        if (interface_number < 0 || interface_number > 255)
                return LIBUSB_ERROR_INVALID_PARAM;
        pthread_mutex_lock(&ctx->lock);
        if (handle->claims[interface_number]) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_SUCCESS; /* libusb: claiming twice is fine */
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_NO_MEM;
        }
        c->handle = handle;
        c->interface = (uint8_t) interface_number;
        c->queue_fd = -1;
        TAILQ_INIT(&c->waiting);

        bus_lock(ctx);
        r = zcusb_claim_interface(ctx->zc, dev->object, (uint8_t) interface_number, &c->claim);
        if (r >= 0) {
                r = zcusb_queue_open(c->claim, COMPAT_QUEUE_ENTRIES, &c->queue);
                if (r < 0) {
                        log_err(ctx, "interface %d: cannot open a queue: %s", interface_number,
                                zcusb_last_error_message(ctx->zc));
                        (void) zcusb_claim_release(c->claim);
                }
        } else
                log_err(ctx, "cannot claim interface %d of %s: %s", interface_number, dev->object,
                        zcusb_last_error_message(ctx->zc));
        bus_unlock(ctx);
        if (r < 0) {
                free(c);
                pthread_mutex_unlock(&ctx->lock);
                /* zcusbd says -EINVAL for an interface the device does not have */
                return r == -EINVAL ? LIBUSB_ERROR_NOT_FOUND : compat_error(r);
        }
        c->queue_fd = zcusb_queue_get_fd(c->queue);
        c->id = ctx->next_claim_id++;
        LIST_INSERT_HEAD(&ctx->claims, c, link);
        handle->claims[interface_number] = c;
        r = events_watch_claim(ctx, c);
        if (r < 0) {
                claim_free(ctx, c);
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_OTHER;
        }
        memory_claim_new(c);
        pthread_mutex_unlock(&ctx->lock);
        return LIBUSB_SUCCESS;
}

int LIBUSB_CALL libusb_release_interface(libusb_device_handle *handle, int interface_number) {
        struct libusb_context *ctx = handle->dev->ctx;

        if (interface_number < 0 || interface_number > 255)
                return LIBUSB_ERROR_INVALID_PARAM;
        pthread_mutex_lock(&ctx->lock);
        if (!handle->claims[interface_number]) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_NOT_FOUND;
        }
        claim_free(ctx, handle->claims[interface_number]);
        pthread_mutex_unlock(&ctx->lock);
        ctx_wake(ctx);
        return LIBUSB_SUCCESS;
}

CompatClaim *handle_claim_for_endpoint(struct libusb_device_handle *handle, uint8_t endpoint) {
        for (unsigned i = 0; i < 256; i++) {
                CompatClaim *c = handle->claims[i];
                if (!c)
                        continue;
                if ((endpoint & 0x0f) == 0)
                        return c;
                if (handle->config && device_find_endpoint(handle->config, c->interface, c->alt_setting, endpoint))
                        return c;
        }
        return NULL;
}

int LIBUSB_CALL libusb_set_interface_alt_setting(libusb_device_handle *handle, int interface_number,
                                                 int alternate_setting) {
        struct libusb_context *ctx = handle->dev->ctx;
        CompatClaim *c;
        int r;

        if (interface_number < 0 || interface_number > 255 || alternate_setting < 0 || alternate_setting > 255)
                return LIBUSB_ERROR_INVALID_PARAM;
        pthread_mutex_lock(&ctx->lock);
        c = handle->claims[interface_number];
        if (!c) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_NOT_FOUND;
        }
        bus_lock(ctx);
        r = zcusb_claim_set_alt_setting(c->claim, (uint8_t) alternate_setting);
        if (r < 0)
                log_err(ctx, "interface %d alt %d: %s", interface_number, alternate_setting,
                        zcusb_last_error_message(ctx->zc));
        bus_unlock(ctx);
        if (r >= 0)
                c->alt_setting = (uint8_t) alternate_setting;
        pthread_mutex_unlock(&ctx->lock);
        return r == -EINVAL ? LIBUSB_ERROR_NOT_FOUND : compat_error(r);
}

int LIBUSB_CALL libusb_clear_halt(libusb_device_handle *handle, unsigned char endpoint) {
        struct libusb_context *ctx = handle->dev->ctx;
        CompatClaim *c;
        int r;

        pthread_mutex_lock(&ctx->lock);
        c = handle_claim_for_endpoint(handle, endpoint);
        if (!c || (endpoint & 0x0f) == 0) {
                pthread_mutex_unlock(&ctx->lock);
                log_err(ctx, "endpoint %#x is not in a claimed interface", endpoint);
                return LIBUSB_ERROR_NOT_FOUND;
        }
        bus_lock(ctx);
        r = zcusb_claim_clear_halt(c->claim, endpoint);
        bus_unlock(ctx);
        pthread_mutex_unlock(&ctx->lock);
        return compat_error(r);
}

int LIBUSB_CALL libusb_get_configuration(libusb_device_handle *handle, int *config) {
        *config = handle->dev->active_config;
        return LIBUSB_SUCCESS;
}

int LIBUSB_CALL libusb_set_configuration(libusb_device_handle *handle, int configuration) {
        if (configuration == handle->dev->active_config)
                return LIBUSB_SUCCESS; /* what most programs do: a no-op, allowed */
        log_err(handle->dev->ctx,
                "configuration %d asked for, %u is active: zcusbd does not change configurations (every "
                "claim on the device would lose its interfaces); configure the device with udev or as root",
                configuration, handle->dev->active_config);
        return LIBUSB_ERROR_NOT_SUPPORTED;
}

int LIBUSB_CALL libusb_reset_device(libusb_device_handle *handle) {
        return compat_not_supported(handle->dev->ctx, __func__,
                                    "a port reset would affect every claim on the device; zcusbd offers "
                                    "no reset (Claim.ClearHalt resets an endpoint)");
}

int LIBUSB_CALL libusb_alloc_streams(libusb_device_handle *handle, uint32_t num_streams, unsigned char *endpoints,
                                     int num_endpoints) {
        (void) num_streams, (void) endpoints, (void) num_endpoints;
        return compat_not_supported(handle->dev->ctx, __func__, "zcusbd has no USB 3 bulk streams");
}

int LIBUSB_CALL libusb_free_streams(libusb_device_handle *handle, unsigned char *endpoints, int num_endpoints) {
        (void) endpoints, (void) num_endpoints;
        return compat_not_supported(handle->dev->ctx, __func__, "zcusbd has no USB 3 bulk streams");
}

/* ---- kernel drivers: zcusbd detaches and re-attaches by its policy ---- */

int LIBUSB_CALL libusb_kernel_driver_active(libusb_device_handle *handle, int interface_number) {
        struct libusb_device *dev = handle->dev;

        if (interface_number < 0 || interface_number > 255)
                return LIBUSB_ERROR_INVALID_PARAM;
        if (handle->claims[interface_number])
                return 0; /* zcusbd holds it, no kernel driver */
        return dev->driver_bound[interface_number] ? 1 : 0;
}

int LIBUSB_CALL libusb_detach_kernel_driver(libusb_device_handle *handle, int interface_number) {
        int r = libusb_kernel_driver_active(handle, interface_number);
        if (r < 0)
                return r;
        if (r == 0)
                return LIBUSB_ERROR_NOT_FOUND;
        /* The claim does it, when the device's ZCUSB_DETACH allows (else the
         * claim fails BUSY naming the driver, as usbfs would). */
        log_dbg(handle->dev->ctx, "interface %d: zcusbd detaches the kernel driver when it is claimed",
                interface_number);
        return LIBUSB_SUCCESS;
}

int LIBUSB_CALL libusb_attach_kernel_driver(libusb_device_handle *handle, int interface_number) {
        if (interface_number < 0 || interface_number > 255)
                return LIBUSB_ERROR_INVALID_PARAM;
        if (handle->claims[interface_number])
                return LIBUSB_ERROR_BUSY;
        /* zcusbd re-attached what it detached when the claim was released. */
        return LIBUSB_ERROR_NOT_FOUND;
}

int LIBUSB_CALL libusb_set_auto_detach_kernel_driver(libusb_device_handle *handle, int enable) {
        (void) handle, (void) enable;
        return LIBUSB_SUCCESS; /* zcusbd always works so, within ZCUSB_DETACH */
}
