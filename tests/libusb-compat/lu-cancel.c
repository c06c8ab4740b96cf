/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A plain libusb-1.0 program that cancels everything it has in flight at once,
 * the way programs stop a stream: COUNT bulk IN transfers without a timeout
 * submitted, then each cancelled, then events handled until every callback
 * has come or SECONDS have passed. Between setting up and submitting it waits
 * for SIGUSR1 (the test stops zcusbd meanwhile, so that the ring fills up).
 * Prints {"ready":true}, then {"submitted":N,"cancel_ok":N,"cancel_failed":N},
 * then {"callbacks":N,"cancelled":N,"other":N}.
 * lu-cancel [--device=VID:PID] [--interface=N] [--in=EP] [--count=N] [--seconds=N]
 * Exit: 0 every transfer ended CANCELLED, 1 not, 2 usage, 3 setup failed.
 */
#include <libusb.h>

#include "lu-common.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_COUNT 1024
#define SIZE 512

static struct {
        unsigned vid, pid, in_ep;
        int interface, count, seconds;
} opt = { 0x0525, 0xa4a0, 0x81, 0, 256, 20 };

static int callbacks, cancelled;

static void LIBUSB_CALL on_done(struct libusb_transfer *t) {
        callbacks++;
        if (t->status == LIBUSB_TRANSFER_CANCELLED)
                cancelled++;
}

int main(int argc, char **argv) {
        static struct libusb_transfer *t[MAX_COUNT];
        static unsigned char buf[MAX_COUNT][SIZE];
        int submitted = 0, cancel_ok = 0, cancel_failed = 0, sig, r;
        libusb_device_handle *handle;
        time_t end;
        sigset_t set;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (sscanf(a, "--device=%x:%x", &opt.vid, &opt.pid) == 2) continue;
                if (sscanf(a, "--interface=%d", &opt.interface) == 1) continue;
                if (sscanf(a, "--in=%x", &opt.in_ep) == 1) continue;
                if (sscanf(a, "--count=%d", &opt.count) == 1) continue;
                if (sscanf(a, "--seconds=%d", &opt.seconds) == 1) continue;
                fprintf(stderr, "lu-cancel: unknown argument %s\n", a);
                return 2;
        }
        if (opt.count <= 0 || opt.count > MAX_COUNT)
                return 2;

        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        sigprocmask(SIG_BLOCK, &set, NULL);
        handle = lu_open_claim("lu-cancel", opt.vid, opt.pid, opt.interface, false);
        if (!handle)
                return 3;
        for (int i = 0; i < opt.count; i++) {
                t[i] = libusb_alloc_transfer(0);
                if (!t[i])
                        return 3;
                libusb_fill_bulk_transfer(t[i], handle, (unsigned char) opt.in_ep, buf[i], SIZE, on_done, NULL, 0);
        }
        printf("{\"ready\":true}\n");
        fflush(stdout);
        (void) sigwait(&set, &sig);

        for (int i = 0; i < opt.count; i++)
                if (libusb_submit_transfer(t[i]) == 0)
                        submitted++;
        for (int i = 0; i < opt.count; i++) {
                r = libusb_cancel_transfer(t[i]);
                if (r == 0)
                        cancel_ok++;
                else {
                        cancel_failed++;
                        fprintf(stderr, "lu-cancel: cancel %d: %s\n", i, libusb_error_name(r));
                }
        }
        printf("{\"submitted\":%d,\"cancel_ok\":%d,\"cancel_failed\":%d}\n", submitted, cancel_ok, cancel_failed);
        fflush(stdout);

        end = time(NULL) + opt.seconds;
        while (callbacks < submitted && time(NULL) < end) {
                struct timeval tv = { .tv_sec = 1 };
                (void) libusb_handle_events_timeout(NULL, &tv);
        }
        printf("{\"callbacks\":%d,\"cancelled\":%d,\"other\":%d}\n", callbacks, cancelled, callbacks - cancelled);
        fflush(stdout);
        if (callbacks < submitted)
                return 1; /* transfers still in flight: exiting without freeing them, as libusb allows no less */
        for (int i = 0; i < opt.count; i++)
                libusb_free_transfer(t[i]);
        (void) libusb_release_interface(handle, opt.interface);
        libusb_close(handle);
        libusb_exit(NULL);
        return cancelled == submitted && cancel_failed == 0 ? 0 : 1;
}
