/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A plain libusb-1.0 program that uses libusb_dev_mem_alloc() the ways
 * programs do, each step one JSON line ({"step":..., "ok":true|false, ...}):
 *   reuse   ROUNDS times DEPTH buffers of SIZE allocated, filled, freed
 *   busy    a buffer with an IN transfer in flight: libusb_dev_mem_free() says
 *           BUSY; once the transfer is back, it frees
 *   release a buffer written, the interface released: it still holds what was
 *           written, and frees
 *   grow    four of 1 MiB freed, then one of 6 MiB, then one of 1 MiB (under a
 *           small quota the memory freed must make room)
 * lu-devmem [--device=VID:PID] [--interface=N] [--in=EP] [--size=N] [--depth=N] [--rounds=N]
 * Exit: 0 every step ok, 1 a step failed, 2 usage, 3 setup failed.
 */
#include <libusb.h>

#include "lu-common.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64
#define MIB (1u << 20)

static struct {
        unsigned vid, pid, in_ep;
        int interface, size, depth, rounds;
} opt = { 0x0525, 0xa4a0, 0x81, 0, 65536, 8, 3 };

static libusb_device_handle *handle;

static bool step(const char *name, bool ok, const char *detail) {
        printf("{\"step\":\"%s\",\"ok\":%s,\"detail\":\"%s\"}\n", name, ok ? "true" : "false", detail);
        fflush(stdout);
        return ok;
}

static bool step_reuse(void) {
        unsigned char *buf[MAX_DEPTH];

        for (int round = 0; round < opt.rounds; round++) {
                for (int i = 0; i < opt.depth; i++) {
                        buf[i] = libusb_dev_mem_alloc(handle, (size_t) opt.size);
                        if (!buf[i])
                                return step("reuse", false, "libusb_dev_mem_alloc failed");
                        /* every byte of it is ours */
                        memset(buf[i], 0xa5 ^ i, (size_t) opt.size);
                }
                for (int i = 0; i < opt.depth; i++)
                        for (int k = 0; k < opt.size; k += 4096)
                                if (buf[i][k] != (0xa5 ^ i))
                                        return step("reuse", false, "buffers overlap");
                for (int i = 0; i < opt.depth; i++)
                        if (libusb_dev_mem_free(handle, buf[i], (size_t) opt.size) != 0)
                                return step("reuse", false, "libusb_dev_mem_free failed");
        }
        return step("reuse", true, "");
}

static void LIBUSB_CALL on_done(struct libusb_transfer *t) {
        *(int *) t->user_data = 1;
}

static bool step_busy(void) {
        struct libusb_transfer *t = libusb_alloc_transfer(0);
        unsigned char *buf = libusb_dev_mem_alloc(handle, (size_t) opt.size);
        int done = 0, r;

        if (!t || !buf)
                return step("busy", false, "allocation failed");
        libusb_fill_bulk_transfer(t, handle, (unsigned char) opt.in_ep, buf, opt.size, on_done, &done, 5000);
        r = libusb_submit_transfer(t);
        if (r < 0)
                return step("busy", false, libusb_error_name(r));
        r = libusb_dev_mem_free(handle, buf, (size_t) opt.size);
        if (r != LIBUSB_ERROR_BUSY)
                return step("busy", false, r == 0 ? "freed while a transfer uses it" : libusb_error_name(r));
        while (!done)
                (void) libusb_handle_events_completed(NULL, &done);
        r = libusb_dev_mem_free(handle, buf, (size_t) opt.size);
        libusb_free_transfer(t);
        return step("busy", r == 0, r == 0 ? "" : libusb_error_name(r));
}

static bool step_release(void) {
        unsigned char *buf = libusb_dev_mem_alloc(handle, (size_t) opt.size);
        int r;

        if (!buf)
                return step("release", false, "libusb_dev_mem_alloc failed");
        for (int i = 0; i < opt.size; i++)
                buf[i] = (unsigned char) (i % 251);
        r = libusb_release_interface(handle, opt.interface);
        if (r < 0)
                return step("release", false, libusb_error_name(r));
        for (int i = 0; i < opt.size; i++)
                if (buf[i] != (unsigned char) (i % 251))
                        return step("release", false, "the buffer changed with the release");
        r = libusb_dev_mem_free(handle, buf, (size_t) opt.size);
        if (r < 0)
                return step("release", false, libusb_error_name(r));
        r = libusb_claim_interface(handle, opt.interface);
        return step("release", r == 0, r == 0 ? "" : libusb_error_name(r));
}

static bool step_grow(void) {
        unsigned char *b[4], *big, *one;

        for (int i = 0; i < 4; i++)
                if (!(b[i] = libusb_dev_mem_alloc(handle, MIB)))
                        return step("grow", false, "1 MiB failed");
        for (int i = 0; i < 4; i++)
                (void) libusb_dev_mem_free(handle, b[i], MIB);
        big = libusb_dev_mem_alloc(handle, 6 * MIB);
        if (!big)
                return step("grow", false, "6 MiB after 4 MiB freed failed");
        big[6 * MIB - 1] = 1;
        one = libusb_dev_mem_alloc(handle, MIB);
        if (!one)
                return step("grow", false, "1 MiB more failed");
        one[MIB - 1] = 1;
        (void) libusb_dev_mem_free(handle, one, MIB);
        (void) libusb_dev_mem_free(handle, big, 6 * MIB);
        return step("grow", true, "");
}

int main(int argc, char **argv) {
        const char *only = NULL;
        bool ok = true;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (sscanf(a, "--device=%x:%x", &opt.vid, &opt.pid) == 2) continue;
                if (sscanf(a, "--interface=%d", &opt.interface) == 1) continue;
                if (sscanf(a, "--in=%x", &opt.in_ep) == 1) continue;
                if (sscanf(a, "--size=%d", &opt.size) == 1) continue;
                if (sscanf(a, "--depth=%d", &opt.depth) == 1) continue;
                if (sscanf(a, "--rounds=%d", &opt.rounds) == 1) continue;
                if (!strncmp(a, "--only=", 7)) { only = a + 7; continue; }
                fprintf(stderr, "lu-devmem: unknown argument %s\n", a);
                return 2;
        }
        if (opt.size <= 0 || opt.depth <= 0 || opt.depth > MAX_DEPTH || opt.rounds <= 0)
                return 2;

        handle = lu_open_claim("lu-devmem", opt.vid, opt.pid, opt.interface, false);
        if (!handle)
                return 3;
        if (!only || strstr(only, "reuse"))
                ok = step_reuse() && ok;
        if (!only || strstr(only, "busy"))
                ok = step_busy() && ok;
        if (!only || strstr(only, "release"))
                ok = step_release() && ok;
        if (!only || strstr(only, "grow"))
                ok = step_grow() && ok;
        (void) libusb_release_interface(handle, opt.interface);
        libusb_close(handle);
        libusb_exit(NULL);
        return ok ? 0 : 1;
}
