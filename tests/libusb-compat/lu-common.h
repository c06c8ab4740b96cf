/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every lu-* program does first, as a libusb program would: init the
 * default context, open VID:PID, claim INTERFACE. On failure it says which
 * step failed on stderr (prefixed with PROG) and returns NULL: the program
 * exits 3 ("setup failed").
 */
#ifndef LU_COMMON_H
#define LU_COMMON_H

#include <libusb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

static inline libusb_device_handle *lu_open_claim(const char *prog, int vid, int pid, int interface,
                                                  bool auto_detach) {
        libusb_device_handle *handle;
        int r;

        r = libusb_init(NULL);
        if (r < 0) {
                fprintf(stderr, "%s: libusb_init: %s\n", prog, libusb_error_name(r));
                return NULL;
        }
        handle = libusb_open_device_with_vid_pid(NULL, (uint16_t) vid, (uint16_t) pid);
        if (!handle) {
                fprintf(stderr, "%s: no device %04x:%04x\n", prog, vid, pid);
                return NULL;
        }
        if (auto_detach)
                (void) libusb_set_auto_detach_kernel_driver(handle, 1);
        r = libusb_claim_interface(handle, interface);
        if (r < 0) {
                fprintf(stderr, "%s: claim %d: %s\n", prog, interface, libusb_error_name(r));
                libusb_close(handle);
                return NULL;
        }
        return handle;
}

#endif
