/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A plain libusb-1.0 hotplug program: registers for arrivals and departures
 * (with LIBUSB_HOTPLUG_ENUMERATE), prints one JSON line per event and exits
 * after COUNT events or SECONDS seconds. Usage: lu-hotplug COUNT SECONDS
 */
#include <libusb.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int events;

static int LIBUSB_CALL on_event(libusb_context *ctx, libusb_device *dev, libusb_hotplug_event event, void *user_data) {
        struct libusb_device_descriptor d;

        (void) ctx, (void) user_data;
        libusb_get_device_descriptor(dev, &d);
        printf("{\"event\":\"%s\",\"bus\":%u,\"address\":%u,\"vid\":%u,\"pid\":%u}\n",
               event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? "arrived" : "left", libusb_get_bus_number(dev),
               libusb_get_device_address(dev), d.idVendor, d.idProduct);
        fflush(stdout);
        events++;
        return 0;
}

int main(int argc, char **argv) {
        libusb_hotplug_callback_handle cb;
        int count = argc > 1 ? atoi(argv[1]) : 1, seconds = argc > 2 ? atoi(argv[2]) : 10, r;
        time_t end = time(NULL) + seconds;

        if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG))
                return 3;
        r = libusb_init(NULL);
        if (r < 0)
                return 3;
        r = libusb_hotplug_register_callback(NULL, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
                                             LIBUSB_HOTPLUG_ENUMERATE, LIBUSB_HOTPLUG_MATCH_ANY,
                                             LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, on_event, NULL, &cb);
        if (r < 0) {
                fprintf(stderr, "lu-hotplug: register: %s\n", libusb_error_name(r));
                return 3;
        }
        printf("{\"registered\":true}\n");
        fflush(stdout);
        while (events < count && time(NULL) < end) {
                struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
                libusb_handle_events_timeout_completed(NULL, &tv, NULL);
        }
        libusb_hotplug_deregister_callback(NULL, cb);
        libusb_exit(NULL);
        return events >= count ? 0 : 1;
}
