/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hotplug from zcusbd's DeviceAdded/DeviceRemoved, which it sends only to
 * subscribed connections that may see the device. The signal handlers only
 * queue; callbacks run from event handling, as libusb's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compat-internal.h"

struct HotplugCallback {
        LIST_ENTRY(HotplugCallback) link;
        int handle;
        int events;
        int vendor_id, product_id, dev_class;
        libusb_hotplug_callback_fn fn;
        void *user_data;
};

struct HotplugEvent {
        TAILQ_ENTRY(HotplugEvent) link;
        bool arrived;
        char *object;
};

static int on_device_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct libusb_context *ctx = userdata;
        const char *object;
        HotplugEvent *e;

        (void) error;
        /* Only zcusbd's own signals count: any peer could send us one. */
        if (!ctx->daemon_name || !streq_ptr(sd_bus_message_get_sender(m), ctx->daemon_name))
                return 0;
        if (sd_bus_message_read(m, "o", &object) < 0)
                return 0;
        e = calloc(1, sizeof(*e));
        if (!e)
                return 0;
        e->arrived = streq(sd_bus_message_get_member(m), "DeviceAdded");
        e->object = strdup(object);
        if (!e->object) {
                free(e);
                return 0;
        }
        pthread_mutex_lock(&ctx->hotplug_lock);
        TAILQ_INSERT_TAIL(&ctx->hotplug_events, e, link);
        pthread_mutex_unlock(&ctx->hotplug_lock);
        return 0;
}

/* Called with bus_lock held. */
static int subscribe(struct libusb_context *ctx) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *owner;
        int r;

        if (ctx->subscribed)
                return 0;
        /* Subscribe activates zcusbd if needed; then ask who it is. */
        r = sd_bus_call_method(ctx->zc->bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                               "Subscribe", &error, NULL, NULL);
        if (r >= 0)
                r = sd_bus_call_method(ctx->zc->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "GetNameOwner", &error, &reply, "s", ZCUSB_BUS_NAME);
        if (r >= 0)
                r = sd_bus_message_read(reply, "s", &owner);
        if (r >= 0 && free_and_strdup(&ctx->daemon_name, owner) < 0)
                r = -ENOMEM;
        /* Unicast signals: the match only routes them to us inside sd-bus. */
        if (r >= 0)
                r = sd_bus_match_signal(ctx->zc->bus, &ctx->added_slot, NULL, ZCUSB_MANAGER_PATH,
                                        ZCUSB_MANAGER_INTERFACE, "DeviceAdded", on_device_signal, ctx);
        if (r >= 0)
                r = sd_bus_match_signal(ctx->zc->bus, &ctx->removed_slot, NULL, ZCUSB_MANAGER_PATH,
                                        ZCUSB_MANAGER_INTERFACE, "DeviceRemoved", on_device_signal, ctx);
        if (r < 0) {
                log_err(ctx, "cannot subscribe to zcusbd's device signals: %s", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                ctx->added_slot = sd_bus_slot_unref(ctx->added_slot);
                ctx->removed_slot = sd_bus_slot_unref(ctx->removed_slot);
                return r;
        }
        ctx->subscribed = true;
        return 0;
}

int hotplug_init(struct libusb_context *ctx) {
        (void) ctx;
        return 0;
}

void hotplug_exit(struct libusb_context *ctx) {
        HotplugCallback *cb;
        HotplugEvent *e;

        while ((cb = LIST_FIRST(&ctx->hotplug_callbacks))) {
                LIST_REMOVE(cb, link);
                free(cb);
        }
        while ((e = TAILQ_FIRST(&ctx->hotplug_events))) {
                TAILQ_REMOVE(&ctx->hotplug_events, e, link);
                free(e->object);
                free(e);
        }
        ctx->added_slot = sd_bus_slot_unref(ctx->added_slot);
        ctx->removed_slot = sd_bus_slot_unref(ctx->removed_slot);
        ctx->daemon_name = mfree_str(ctx->daemon_name);
        /* The subscription ends with the connection (zcusb_close()). */
}

static bool matches(const HotplugCallback *cb, struct libusb_device *dev, libusb_hotplug_event event) {
        if (!(cb->events & event))
                return false;
        if (cb->vendor_id != LIBUSB_HOTPLUG_MATCH_ANY && cb->vendor_id != dev->descriptor.idVendor)
                return false;
        if (cb->product_id != LIBUSB_HOTPLUG_MATCH_ANY && cb->product_id != dev->descriptor.idProduct)
                return false;
        if (cb->dev_class != LIBUSB_HOTPLUG_MATCH_ANY && cb->dev_class != dev->descriptor.bDeviceClass)
                return false;
        return true;
}

/* Run the matching callbacks for DEV (referenced by the caller); no lock
 * held while they run, so they may call libusb, deregister included. */
static void notify(struct libusb_context *ctx, struct libusb_device *dev, libusb_hotplug_event event) {
        HotplugCallback *cb;
        int *handles = NULL;
        size_t n = 0, k = 0;

        pthread_mutex_lock(&ctx->lock);
        LIST_FOREACH(cb, &ctx->hotplug_callbacks, link)
                n++;
        handles = n ? calloc(n, sizeof(int)) : NULL;
        if (handles)
                LIST_FOREACH(cb, &ctx->hotplug_callbacks, link)
                        if (matches(cb, dev, event))
                                handles[k++] = cb->handle;
        pthread_mutex_unlock(&ctx->lock);

        for (size_t i = 0; i < k; i++) {
                libusb_hotplug_callback_fn fn = NULL;
                void *user_data = NULL;

                pthread_mutex_lock(&ctx->lock);
                LIST_FOREACH(cb, &ctx->hotplug_callbacks, link)
                        if (cb->handle == handles[i]) {
                                fn = cb->fn;
                                user_data = cb->user_data;
                        }
                pthread_mutex_unlock(&ctx->lock);
                if (fn && fn(ctx, dev, event, user_data) == 1)
                        libusb_hotplug_deregister_callback(ctx, handles[i]);
        }
        free(handles);
}

void hotplug_dispatch(struct libusb_context *ctx) {
        for (;;) {
                struct libusb_device *dev = NULL;
                HotplugEvent *e;
                int r;

                pthread_mutex_lock(&ctx->hotplug_lock);
                e = TAILQ_FIRST(&ctx->hotplug_events);
                if (e)
                        TAILQ_REMOVE(&ctx->hotplug_events, e, link);
                pthread_mutex_unlock(&ctx->hotplug_lock);
                pthread_mutex_lock(&ctx->lock);
                if (e && e->arrived) {
                        r = device_lookup_or_add(ctx, e->object, &dev);
                        if (r < 0)
                                dev = NULL;
                } else if (e)
                        dev = device_find(ctx, e->object);
                if (dev)
                        libusb_ref_device(dev);
                if (e && !e->arrived && dev)
                        device_unlist(dev);
                pthread_mutex_unlock(&ctx->lock);
                if (!e)
                        return;
                if (dev) {
                        notify(ctx, dev, e->arrived ? LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED :
                                                      LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT);
                        libusb_unref_device(dev);
                }
                free(e->object);
                free(e);
        }
}

int LIBUSB_CALL libusb_hotplug_register_callback(libusb_context *ctx, int events, int flags, int vendor_id,
                                                 int product_id, int dev_class, libusb_hotplug_callback_fn cb_fn,
                                                 void *user_data, libusb_hotplug_callback_handle *callback_handle) {
        HotplugCallback *cb;
        int r;

        ctx = compat_ctx(ctx);
        if (!ctx || !cb_fn || !events ||
            (events & ~(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT)) ||
            (flags & ~LIBUSB_HOTPLUG_ENUMERATE) ||
            (vendor_id != LIBUSB_HOTPLUG_MATCH_ANY && (vendor_id & ~0xffff)) ||
            (product_id != LIBUSB_HOTPLUG_MATCH_ANY && (product_id & ~0xffff)) ||
            (dev_class != LIBUSB_HOTPLUG_MATCH_ANY && (dev_class & ~0xff)))
                return LIBUSB_ERROR_INVALID_PARAM;

        bus_lock(ctx);
        r = subscribe(ctx);
        bus_unlock(ctx);
        if (r < 0)
                return compat_error(r);

        cb = calloc(1, sizeof(*cb));
        if (!cb)
                return LIBUSB_ERROR_NO_MEM;
        *cb = (HotplugCallback) {
                .events = events,
                .vendor_id = vendor_id,
                .product_id = product_id,
                .dev_class = dev_class,
                .fn = cb_fn,
                .user_data = user_data,
        };
        pthread_mutex_lock(&ctx->lock);
        cb->handle = ctx->next_hotplug_handle++;
        LIST_INSERT_HEAD(&ctx->hotplug_callbacks, cb, link);
        pthread_mutex_unlock(&ctx->lock);
        if (callback_handle)
                *callback_handle = cb->handle;

        if (flags & LIBUSB_HOTPLUG_ENUMERATE) {
                libusb_device **list;
                ssize_t n = libusb_get_device_list(ctx, &list);
                for (ssize_t i = 0; i < n; i++) {
                        bool gone = false;
                        pthread_mutex_lock(&ctx->lock);
                        if (!matches(cb, list[i], LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED))
                                gone = true;
                        pthread_mutex_unlock(&ctx->lock);
                        if (!gone && cb_fn(ctx, list[i], LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED, user_data) == 1) {
                                libusb_hotplug_deregister_callback(ctx, cb->handle);
                                break;
                        }
                }
                if (n >= 0)
                        libusb_free_device_list(list, 1);
        }
        return LIBUSB_SUCCESS;
}

void LIBUSB_CALL libusb_hotplug_deregister_callback(libusb_context *ctx, libusb_hotplug_callback_handle handle) {
        HotplugCallback *cb;

        ctx = compat_ctx(ctx);
        pthread_mutex_lock(&ctx->lock);
        LIST_FOREACH(cb, &ctx->hotplug_callbacks, link)
                if (cb->handle == handle)
                        break;
        if (cb)
                LIST_REMOVE(cb, link);
        pthread_mutex_unlock(&ctx->lock);
        free(cb);
        ctx_wake(ctx);
}

void *LIBUSB_CALL libusb_hotplug_get_user_data(libusb_context *ctx, libusb_hotplug_callback_handle handle) {
        HotplugCallback *cb;
        void *r = NULL;

        ctx = compat_ctx(ctx);
        pthread_mutex_lock(&ctx->lock);
        LIST_FOREACH(cb, &ctx->hotplug_callbacks, link)
                if (cb->handle == handle)
                        r = cb->user_data;
        pthread_mutex_unlock(&ctx->lock);
        return r;
}
