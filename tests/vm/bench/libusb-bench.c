/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libusb-bench: the direct-libusb contenders of tests/vm/bench/run-bench.sh. Streams MIB MiB
 * over one bulk endpoint of a device opened straight through usbfs (run as root), and prints
 * one JSON line: {"contender","dir","bytes","seconds","client_cpu","daemon_cpu"} where
 * client_cpu is this process's user + system seconds over the streaming loop alone.
 *
 *   libusb-bench [OPTIONS] MODE DIR MIB
 *     MODE  sync          libusb_bulk_transfer() one transfer at a time
 *           async-malloc  DEPTH asynchronous transfers in flight, buffers from malloc()
 *                         (usbfs copies every byte)
 *           async-devmem  the same with libusb_dev_mem_alloc() buffers (usbfs mmap: zero copy)
 *     DIR   in | out      (OUT data is zeros: the SourceSink's sink checks pattern 0)
 *   Options: --vid 0x0525 --pid 0xa4a0 --interface 0 --in 0x81 --out 0x02 --size 65536
 *            --depth 8 --timeout 5000 (ms)
 * Exit: 0 ok, 1 failure (a transfer failed, no device, dev_mem_alloc unsupported), 2 usage.
 */
#include <libusb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-common.h"

#define MAX_DEPTH 64

typedef struct Stream {
        unsigned size;
        unsigned long long to_submit; /* bytes not yet asked for */
        unsigned long long done;      /* bytes moved */
        unsigned in_flight;
        int error;                    /* a libusb_transfer_status or LIBUSB_ERROR_* */
} Stream;

static unsigned next_length(Stream *s) {
        unsigned n = s->to_submit < s->size ? (unsigned) s->to_submit : s->size;

        s->to_submit -= n;
        return n;
}

static void LIBUSB_CALL on_complete(struct libusb_transfer *t) {
        Stream *s = t->user_data;

        s->in_flight--;
        if (t->status != LIBUSB_TRANSFER_COMPLETED) {
                if (!s->error)
                        s->error = (int) t->status;
                return;
        }
        s->done += (unsigned) t->actual_length;
        if (s->error || s->to_submit == 0)
                return;
        t->length = (int) next_length(s);
        if (libusb_submit_transfer(t) < 0) {
                s->error = LIBUSB_ERROR_IO;
                return;
        }
        s->in_flight++;
}

static int run_async(libusb_context *usb, libusb_device_handle *h, uint8_t ep, Stream *s, unsigned depth,
                     bool devmem, unsigned timeout_ms) {
        struct libusb_transfer *t[MAX_DEPTH] = {};
        unsigned char *buf[MAX_DEPTH] = {};
        int r = 0;

        for (unsigned i = 0; i < depth; i++) {
                buf[i] = devmem ? libusb_dev_mem_alloc(h, s->size) : calloc(1, s->size);
                t[i] = libusb_alloc_transfer(0);
                if (!buf[i] || !t[i]) {
                        fprintf(stderr, "libusb-bench: %s\n",
                                devmem && !buf[i] ? "libusb_dev_mem_alloc() failed (no usbfs mmap here?)"
                                                  : "out of memory");
                        r = 1;
                        goto out;
                }
                libusb_fill_bulk_transfer(t[i], h, ep, buf[i], 0, on_complete, s, timeout_ms);
        }
        for (unsigned i = 0; i < depth && s->to_submit > 0; i++) {
                t[i]->length = (int) next_length(s);
                r = libusb_submit_transfer(t[i]);
                if (r < 0) {
                        fprintf(stderr, "libusb-bench: submit: %s\n", libusb_error_name(r));
                        s->error = r;
                        break;
                }
                s->in_flight++;
        }
        while (s->in_flight > 0) {
                r = libusb_handle_events(usb);
                if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
                        fprintf(stderr, "libusb-bench: handle_events: %s\n", libusb_error_name(r));
                        s->error = r;
                        break;
                }
        }
        r = s->error ? 1 : 0;
        if (s->error)
                fprintf(stderr, "libusb-bench: a transfer failed (status %d)\n", s->error);
out:
        for (unsigned i = 0; i < depth; i++) {
                if (t[i])
                        libusb_free_transfer(t[i]);
                if (buf[i] && devmem)
                        libusb_dev_mem_free(h, buf[i], s->size);
                else
                        free(buf[i]);
        }
        return r;
}

static int run_sync(libusb_device_handle *h, uint8_t ep, Stream *s, unsigned timeout_ms) {
        unsigned char *buf = calloc(1, s->size);
        int r = 0;

        if (!buf)
                return 1;
        while (s->to_submit > 0) {
                unsigned n = next_length(s);
                int actual = 0;

                r = libusb_bulk_transfer(h, ep, buf, (int) n, &actual, timeout_ms);
                if (r < 0) {
                        fprintf(stderr, "libusb-bench: bulk transfer: %s\n", libusb_error_name(r));
                        r = 1;
                        break;
                }
                s->done += (unsigned) actual;
        }
        free(buf);
        return r;
}

typedef struct VidPid {
        unsigned long vid, pid;
} VidPid;

/* --vid and --pid: libusb-bench's own options. */
static int parse_vid_pid_option(const char *o, const char *v, void *userdata) {
        VidPid *d = userdata;

        if (strcmp(o, "--vid") == 0)
                return bench_parse_uint(v, 0xffff, &d->vid);
        if (strcmp(o, "--pid") == 0)
                return bench_parse_uint(v, 0xffff, &d->pid);
        return 1;
}

int main(int argc, char *argv[]) {
        static const char *const modes[] = { "sync", "async-malloc", "async-devmem", NULL };
        VidPid dev = { .vid = 0x0525, .pid = 0xa4a0 };
        const BenchProgram program = {
                .name = "libusb-bench",
                .max_depth = MAX_DEPTH,
                .usage_before = "[--vid V] [--pid P] ",
                .option = parse_vid_pid_option,
                .userdata = &dev,
                .whats = modes,
        };
        libusb_context *usb = NULL;
        libusb_device_handle *h = NULL;
        const char *mode;
        BenchArgs a;
        BenchClock timing;
        Stream s = {};
        int r, status = 1;

        r = bench_parse_args(&a, argc, argv, &program);
        if (r != 0)
                return r;
        mode = a.what;
        s.size = (unsigned) a.size;
        s.to_submit = (unsigned long long) a.mib << 20;

        r = libusb_init(&usb);
        if (r < 0) {
                fprintf(stderr, "libusb-bench: libusb_init: %s\n", libusb_error_name(r));
                return 1;
        }
        h = libusb_open_device_with_vid_pid(usb, (uint16_t) dev.vid, (uint16_t) dev.pid);
        if (!h) {
                fprintf(stderr, "libusb-bench: cannot open %04lx:%04lx (not there, or not root?)\n", dev.vid,
                        dev.pid);
                goto finish;
        }
        (void) libusb_set_auto_detach_kernel_driver(h, 1);
        r = libusb_claim_interface(h, (int) a.iface);
        if (r < 0) {
                fprintf(stderr, "libusb-bench: claim interface %lu: %s\n", a.iface, libusb_error_name(r));
                goto finish;
        }

        bench_start(&timing);
        if (strcmp(mode, "sync") == 0)
                r = run_sync(h, a.ep, &s, (unsigned) a.timeout_ms);
        else
                r = run_async(usb, h, a.ep, &s, (unsigned) a.depth, strcmp(mode, "async-devmem") == 0,
                              (unsigned) a.timeout_ms);
        bench_stop(&timing);
        if (r == 0) {
                bench_print_result("libusb-", mode, a.dir, s.done, &timing, "0", "usbfs");
                status = 0;
        }
        (void) libusb_release_interface(h, (int) a.iface);
finish:
        libusb_close(h);
        libusb_exit(usb);
        return status;
}
