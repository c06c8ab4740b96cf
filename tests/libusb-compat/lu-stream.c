/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A plain libusb-1.0 program that streams bulk data, the way SDR and capture
 * tools do: DEPTH asynchronous transfers of SIZE bytes kept in flight, each
 * resubmitted from its callback, events handled by libusb_handle_events*().
 * Buffers come from libusb_dev_mem_alloc() (--mem=dev) or malloc() (--mem=malloc).
 * IN data is checked byte for byte against the device's pattern; OUT data
 * carries a pattern the device side can check; with --loopback (a Loopback
 * gadget) OUT and IN run at once and IN must bring back the OUT pattern.
 * Prints one JSON object per phase.
 *
 * lu-stream [--device=VID:PID] [--interface=N] [--in=EP] [--out=EP]
 *           [--bytes=N] [--size=N] [--depth=N] [--mem=dev|malloc]
 *           [--pattern=mod251|sourcesink:BUFLEN|zero|none] [--sync] [--control] [--loopback]
 *           [--expect-no-device] [--hold-after=BYTES] [--timeout=MS] [--offset=N]
 * Exit: 0 all as expected, 1 a check failed, 2 usage, 3 setup failed.
 */
#include <errno.h>
#include <libusb.h>

#include "lu-common.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
        unsigned vid, pid;
        int interface;
        unsigned in_ep, out_ep;
        long long bytes;
        int size, depth;
        bool dev_mem, sync, control, expect_no_device;
        long long hold_after;
        unsigned timeout;
        int pattern; /* 0 none, 1 mod251, 2 sourcesink (i % buflen % 63), 3 zero */
        bool loopback; /* OUT and IN at once; IN must bring back what went OUT */
        int buflen;
        long long offset; /* where the device's stream is (the emulator's runs on across programs) */
} opt = { 0x0525, 0xa4a0, 0, 0x81, 0x02, 8 << 20, 65536, 8, true, false, false, false, -1, 5000, 1, false,
        4096, 0 };

static libusb_device_handle *handle;
/* Per direction ([0] OUT, [1] IN): a loopback stream runs both at once. */
static long long submitted[2], done[2], mismatches, first_mismatch = -1;
static int in_flight, status_counts[8], stop;
static const char *phase;
#define done_bytes (done[0] + done[1])

static uint8_t pattern_at(long long off) {
        off += opt.offset;
        if (opt.pattern == 1)
                return (uint8_t) (off % 251);
        if (opt.pattern == 3)
                return 0;
        return (uint8_t) ((off % opt.buflen) % 63);
}

static void check_in(const uint8_t *p, int n, long long off) {
        if (!opt.pattern)
                return;
        for (int i = 0; i < n; i++)
                if (p[i] != pattern_at(off + i)) {
                        if (first_mismatch < 0)
                                first_mismatch = off + i;
                        mismatches++;
                }
}

static void fill_out(uint8_t *p, int n, long long off) {
        for (int i = 0; i < n; i++)
                p[i] = opt.pattern ? pattern_at(off + i) : 0;
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int submit_next(struct libusb_transfer *t) {
        int in = !!(t->endpoint & LIBUSB_ENDPOINT_IN);
        long long left = opt.bytes - submitted[in];
        int n = left < opt.size ? (int) left : opt.size;
        int r;

        if (n <= 0 || stop)
                return 0;
        t->length = n;
        if (!in)
                fill_out(t->buffer, n, submitted[in]);
        r = libusb_submit_transfer(t);
        if (r < 0) {
                fprintf(stderr, "lu-stream: submit: %s\n", libusb_error_name(r));
                status_counts[r == LIBUSB_ERROR_NO_DEVICE ? LIBUSB_TRANSFER_NO_DEVICE : LIBUSB_TRANSFER_ERROR]++;
                stop = 1;
                return r;
        }
        submitted[in] += n;
        in_flight++;
        return 0;
}

static void LIBUSB_CALL on_done(struct libusb_transfer *t) {
        int in = !!(t->endpoint & LIBUSB_ENDPOINT_IN);

        in_flight--;
        if (t->status < 8)
                status_counts[t->status]++;
        if (t->status != LIBUSB_TRANSFER_COMPLETED) {
                /* Waiting for the unplug, as a streaming program does: bus errors while the
                 * device goes away (dummy_hcd: -EPROTO, libusb: TRANSFER_ERROR) do not stop
                 * it, only NO_DEVICE does. */
                if (opt.expect_no_device && t->status != LIBUSB_TRANSFER_NO_DEVICE && !stop) {
                        submitted[in] -= t->length;
                        submit_next(t);
                        return;
                }
                stop = 1;
                return;
        }
        if (in)
                check_in(t->buffer, t->actual_length, done[in]);
        done[in] += t->actual_length;
        if (opt.hold_after >= 0 && done_bytes >= opt.hold_after) {
                printf("{\"holding\":true,\"phase\":\"%s\",\"bytes\":%lld}\n", phase, done_bytes);
                fflush(stdout);
                opt.hold_after = -1;
                for (;;)
                        pause(); /* the test kills us here, transfers in flight */
        }
        submit_next(t);
}

static int stream_async(unsigned ep) {
        int n = opt.loopback ? 2 * opt.depth : opt.depth;
        struct libusb_transfer **ts = calloc((size_t) n, sizeof(*ts));
        int r = 0;

        submitted[0] = submitted[1] = done[0] = done[1] = 0;
        stop = 0;
        for (int i = 0; i < n; i++) {
                uint8_t *buf = opt.dev_mem ? libusb_dev_mem_alloc(handle, (size_t) opt.size) : malloc((size_t) opt.size);
                if (!buf) {
                        fprintf(stderr, "lu-stream: %s of %d bytes failed\n",
                                opt.dev_mem ? "libusb_dev_mem_alloc" : "malloc", opt.size);
                        return -1;
                }
                ts[i] = libusb_alloc_transfer(0);
                /* loopback: the first half OUT, the second IN */
                libusb_fill_bulk_transfer(ts[i], handle,
                                          (unsigned char) (opt.loopback ? (i < opt.depth ? opt.out_ep : opt.in_ep) : ep),
                                          buf, opt.size, on_done, NULL, opt.timeout);
        }
        for (int i = 0; i < n; i++)
                submit_next(ts[i]);
        while (in_flight > 0) {
                r = libusb_handle_events(NULL);
                if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
                        fprintf(stderr, "lu-stream: handle_events: %s\n", libusb_error_name(r));
                        break;
                }
        }
        for (int i = 0; i < n; i++) {
                if (opt.dev_mem)
                        libusb_dev_mem_free(handle, ts[i]->buffer, (size_t) opt.size);
                else
                        free(ts[i]->buffer);
                libusb_free_transfer(ts[i]);
        }
        free(ts);
        return r;
}

static int stream_sync(unsigned ep) {
        uint8_t *buf = malloc((size_t) opt.size);
        int r = 0;

        done[0] = done[1] = 0;
        while (done_bytes < opt.bytes) {
                int n = opt.bytes - done_bytes < opt.size ? (int) (opt.bytes - done_bytes) : opt.size, got = 0;
                if (!(ep & LIBUSB_ENDPOINT_IN))
                        fill_out(buf, n, done_bytes);
                r = libusb_bulk_transfer(handle, (unsigned char) ep, buf, n, &got, opt.timeout);
                if (r < 0) {
                        status_counts[r == LIBUSB_ERROR_NO_DEVICE ? LIBUSB_TRANSFER_NO_DEVICE : LIBUSB_TRANSFER_ERROR]++;
                        break;
                }
                status_counts[LIBUSB_TRANSFER_COMPLETED]++;
                if (ep & LIBUSB_ENDPOINT_IN)
                        check_in(buf, got, done_bytes);
                done[!!(ep & LIBUSB_ENDPOINT_IN)] += got;
        }
        free(buf);
        return r;
}

static bool run_phase(const char *name, unsigned ep, bool *ok) {
        double t0 = now(), dt;

        phase = name;
        memset(status_counts, 0, sizeof(status_counts));
        mismatches = 0;
        first_mismatch = -1;
        if (opt.sync)
                stream_sync(ep);
        else
                stream_async(ep);
        dt = now() - t0;
        printf("{\"phase\":\"%s\",\"bytes\":%lld,\"seconds\":%.3f,\"mb_per_s\":%.1f,\"mismatches\":%lld,"
               "\"first_mismatch\":%lld,\"completed\":%d,\"error\":%d,\"timed_out\":%d,\"cancelled\":%d,"
               "\"stall\":%d,\"no_device\":%d,\"overflow\":%d}\n",
               name, done_bytes, dt, dt > 0 ? done_bytes / dt / 1e6 : 0.0, mismatches, first_mismatch,
               status_counts[0], status_counts[1], status_counts[2], status_counts[3], status_counts[4],
               status_counts[5], status_counts[6]);
        fflush(stdout);
        if (opt.expect_no_device)
                *ok = *ok && status_counts[LIBUSB_TRANSFER_NO_DEVICE] > 0;
        else
                *ok = *ok && done_bytes == (opt.loopback ? 2 : 1) * opt.bytes && mismatches == 0;
        return status_counts[LIBUSB_TRANSFER_NO_DEVICE] == 0;
}

static bool control_roundtrip(void) {
        uint8_t out[64], in[64] = { 0 };
        int r;

        for (int i = 0; i < 64; i++)
                out[i] = (uint8_t) (i * 7 + 3);
        r = libusb_control_transfer(handle, 0x40, 0x5b, 0, 0, out, sizeof(out), 1000);
        if (r != (int) sizeof(out)) {
                fprintf(stderr, "lu-stream: vendor OUT 0x5b: %s\n", r < 0 ? libusb_error_name(r) : "short");
                return false;
        }
        r = libusb_control_transfer(handle, 0xc0, 0x5c, 0, 0, in, sizeof(in), 1000);
        if (r != (int) sizeof(in) || memcmp(in, out, sizeof(in)) != 0) {
                fprintf(stderr, "lu-stream: vendor IN 0x5c: %s\n", r < 0 ? libusb_error_name(r) : "data differs");
                return false;
        }
        printf("{\"control\":\"ok\"}\n");
        return true;
}

int main(int argc, char **argv) {
        bool ok = true, alive = true;
        int r;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (sscanf(a, "--device=%x:%x", &opt.vid, &opt.pid) == 2) continue;
                if (sscanf(a, "--interface=%d", &opt.interface) == 1) continue;
                if (sscanf(a, "--in=%x", &opt.in_ep) == 1) continue;
                if (sscanf(a, "--out=%x", &opt.out_ep) == 1) continue;
                if (sscanf(a, "--bytes=%lld", &opt.bytes) == 1) continue;
                if (sscanf(a, "--size=%d", &opt.size) == 1) continue;
                if (sscanf(a, "--depth=%d", &opt.depth) == 1) continue;
                if (sscanf(a, "--timeout=%u", &opt.timeout) == 1) continue;
                if (sscanf(a, "--hold-after=%lld", &opt.hold_after) == 1) continue;
                if (sscanf(a, "--offset=%lld", &opt.offset) == 1) continue;
                if (sscanf(a, "--pattern=sourcesink:%d", &opt.buflen) == 1) { opt.pattern = 2; continue; }
                if (!strcmp(a, "--pattern=mod251")) { opt.pattern = 1; continue; }
                if (!strcmp(a, "--pattern=none")) { opt.pattern = 0; continue; }
                if (!strcmp(a, "--pattern=zero")) { opt.pattern = 3; continue; }
                if (!strcmp(a, "--loopback")) { opt.loopback = true; continue; }
                if (!strcmp(a, "--mem=dev")) { opt.dev_mem = true; continue; }
                if (!strcmp(a, "--mem=malloc")) { opt.dev_mem = false; continue; }
                if (!strcmp(a, "--sync")) { opt.sync = true; continue; }
                if (!strcmp(a, "--control")) { opt.control = true; continue; }
                if (!strcmp(a, "--expect-no-device")) { opt.expect_no_device = true; continue; }
                fprintf(stderr, "lu-stream: unknown argument %s\n", a);
                return 2;
        }
        if (opt.size <= 0 || opt.depth <= 0 || opt.buflen <= 0)
                return 2;

        handle = lu_open_claim("lu-stream", opt.vid, opt.pid, opt.interface, true);
        if (!handle)
                return 3;
        if (opt.control)
                ok = control_roundtrip() && ok;
        if (opt.loopback)
                run_phase("loopback", 0, &ok);
        else {
                if (opt.in_ep)
                        alive = run_phase("in", opt.in_ep, &ok);
                if (opt.out_ep && alive)
                        run_phase("out", opt.out_ep, &ok);
        }
        r = libusb_release_interface(handle, opt.interface);
        if (r < 0 && !opt.expect_no_device) {
                fprintf(stderr, "lu-stream: release: %s\n", libusb_error_name(r));
                ok = false;
        }
        libusb_close(handle);
        libusb_exit(NULL);
        return ok ? 0 : 1;
}
