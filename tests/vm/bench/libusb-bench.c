/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libusb-bench: the direct-libusb contenders of tests/vm/bench/run-bench.sh, on a device opened
 * straight through usbfs (run as root). Prints one JSON line (bench-common.h); client_cpu and
 * guest_busy cover the measured loop alone.
 *
 *   libusb-bench [OPTIONS] MODE TEST[,TEST...] N
 *     MODE  sync          libusb_bulk_transfer(), one transfer at a time
 *           async-malloc  DEPTH asynchronous transfers in flight, buffers from malloc()
 *                         (usbfs copies every byte)
 *           async-devmem  the same with libusb_dev_mem_alloc() buffers (usbfs mmap: zero copy)
 *           async-memfd   the same with buffers in a shared memfd mapping, the memory zcusbd's
 *                         usbfs path copies into (usbfs copies every byte): async-malloc's cost
 *                         on zcusbd's kind of memory, without the broker
 *     TEST  in N | out N  stream N MiB (OUT data is zeros: the SourceSink's sink checks pattern 0),
 *                         stopping early after --max-seconds; once for each SIZE:DEPTH of --sizes
 *           rtt N         (sync) N round trips of SIZE bytes: OUT, then IN (a Loopback gadget)
 *           behind N      (async-*) N times (--behind-count): an IN of SIZE bytes submitted and
 *                         left pending, 20 ms later an OUT of SIZE bytes; the sample is the OUT's
 *                         submit-to-completion
 *         One line per measurement: for each SIZE:DEPTH, each TEST of the list in its order.
 *   Options: --vid 0x0525 --pid 0xa4a0, or --bus N --address N (the device by its place; both
 *            when several match), --interface 0 --in 0x81 --out 0x02 --size 65536 --depth 8
 *            (or --sizes 16384:8,65536:8) --timeout 5000 (ms) --max-seconds S --behind-count N
 *            --go FILE (bench-common.h's start barrier, before the first measurement)
 * Exit: 0 ok, 1 failure (a transfer failed, no device, dev_mem_alloc unsupported), 2 usage.
 */
#include <libusb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench-common.h"

#define MAX_DEPTH 64
#define BEHIND_SETTLE 0.020 /* seconds the IN stays pending before the OUT is submitted */

typedef struct Stream {
        unsigned size;
        unsigned long long to_submit; /* bytes not yet asked for */
        unsigned long long done;      /* bytes moved */
        unsigned long long transfers; /* completed */
        double deadline;              /* no new submissions after this (bench_now()); 0: none */
        unsigned in_flight;
        int error;                    /* a libusb_transfer_status or LIBUSB_ERROR_* */
} Stream;

static unsigned next_length(Stream *s) {
        unsigned n = s->to_submit < s->size ? (unsigned) s->to_submit : s->size;

        if (s->deadline > 0 && bench_now() >= s->deadline)
                n = 0;
        s->to_submit -= n;
        return n;
}

static void LIBUSB_CALL on_complete(struct libusb_transfer *t) {
        Stream *s = t->user_data;
        unsigned n;

        s->in_flight--;
        if (t->status != LIBUSB_TRANSFER_COMPLETED) {
                if (!s->error)
                        s->error = (int) t->status;
                return;
        }
        s->done += (unsigned) t->actual_length;
        s->transfers++;
        if (s->error)
                return;
        n = next_length(s);
        if (n == 0)
                return;
        t->length = (int) n;
        if (libusb_submit_transfer(t) < 0) {
                s->error = LIBUSB_ERROR_IO;
                return;
        }
        s->in_flight++;
}

typedef enum { BUF_MALLOC, BUF_DEVMEM, BUF_MEMFD } BufKind;

static BufKind buf_kind(const char *mode) {
        return strcmp(mode, "async-devmem") == 0 ? BUF_DEVMEM : strcmp(mode, "async-memfd") == 0 ? BUF_MEMFD : BUF_MALLOC;
}

/* A SIZE-byte MAP_SHARED mapping of a new memfd, as zcusbd maps a client's buffer. */
static unsigned char *memfd_buffer(unsigned size) {
        void *map = MAP_FAILED;
        int fd = memfd_create("libusb-bench", MFD_CLOEXEC);

        if (fd >= 0 && ftruncate(fd, size) == 0)
                map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (fd >= 0)
                close(fd);
        return map == MAP_FAILED ? NULL : map;
}

static int alloc_buffers(libusb_device_handle *h, BufKind kind, unsigned size, unsigned n, unsigned char **buf) {
        for (unsigned i = 0; i < n; i++) {
                buf[i] = kind == BUF_DEVMEM ? libusb_dev_mem_alloc(h, size) :
                         kind == BUF_MEMFD  ? memfd_buffer(size) :
                                              calloc(1, size);
                if (!buf[i]) {
                        fprintf(stderr, "libusb-bench: %s\n",
                                kind == BUF_DEVMEM ? "libusb_dev_mem_alloc() failed (no usbfs mmap here?)" :
                                kind == BUF_MEMFD  ? "memfd buffer: out of memory" :
                                                     "out of memory");
                        return 1;
                }
        }
        return 0;
}

static void free_buffers(libusb_device_handle *h, BufKind kind, unsigned size, unsigned n, unsigned char **buf) {
        for (unsigned i = 0; i < n; i++) {
                if (!buf[i])
                        continue;
                if (kind == BUF_DEVMEM)
                        libusb_dev_mem_free(h, buf[i], size);
                else if (kind == BUF_MEMFD)
                        munmap(buf[i], size);
                else
                        free(buf[i]);
        }
}

static int run_async(libusb_context *usb, libusb_device_handle *h, const BenchArgs *a, Stream *s, BufKind kind) {
        struct libusb_transfer *t[MAX_DEPTH] = {};
        unsigned char *buf[MAX_DEPTH] = {};
        unsigned depth = (unsigned) a->depth;
        int r = 1;

        if (alloc_buffers(h, kind, s->size, depth, buf))
                goto out;
        for (unsigned i = 0; i < depth; i++) {
                t[i] = libusb_alloc_transfer(0);
                if (!t[i]) {
                        fprintf(stderr, "libusb-bench: out of memory\n");
                        goto out;
                }
                libusb_fill_bulk_transfer(t[i], h, a->ep, buf[i], 0, on_complete, s, (unsigned) a->timeout_ms);
        }
        for (unsigned i = 0; i < depth; i++) {
                unsigned n = next_length(s);

                if (n == 0)
                        break;
                t[i]->length = (int) n;
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
        for (unsigned i = 0; i < depth; i++)
                if (t[i])
                        libusb_free_transfer(t[i]);
        free_buffers(h, kind, s->size, depth, buf);
        return r;
}

static int run_sync(libusb_device_handle *h, const BenchArgs *a, Stream *s) {
        unsigned char *buf = calloc(1, s->size);
        int r = 0;

        if (!buf)
                return 1;
        for (;;) {
                unsigned n = next_length(s);
                int actual = 0;

                if (n == 0)
                        break;
                r = libusb_bulk_transfer(h, a->ep, buf, (int) n, &actual, (unsigned) a->timeout_ms);
                if (r < 0) {
                        fprintf(stderr, "libusb-bench: bulk transfer: %s\n", libusb_error_name(r));
                        r = 1;
                        break;
                }
                s->done += (unsigned) actual;
                s->transfers++;
        }
        free(buf);
        return r;
}

/* rtt: N times SIZE bytes OUT, then SIZE bytes IN, synchronously; SAMPLES gets each round trip. */
static int run_rtt(libusb_device_handle *h, const BenchArgs *a, double *samples) {
        unsigned char *buf = calloc(1, a->size);
        int r = 0;

        if (!buf)
                return 1;
        for (unsigned long i = 0; i < a->n; i++) {
                double t0 = bench_now();
                int actual = 0;

                memset(buf, (int) (i & 0xff), a->size);
                r = libusb_bulk_transfer(h, (uint8_t) a->ep_out, buf, (int) a->size, &actual, (unsigned) a->timeout_ms);
                if (r == 0)
                        r = libusb_bulk_transfer(h, (uint8_t) a->ep_in, buf, (int) a->size, &actual,
                                                 (unsigned) a->timeout_ms);
                if (r < 0) {
                        fprintf(stderr, "libusb-bench: round trip %lu: %s\n", i, libusb_error_name(r));
                        r = 1;
                        break;
                }
                samples[i] = bench_now() - t0;
        }
        free(buf);
        return r;
}

typedef struct Behind {
        double submitted, out_done, in_done;
        int error;
} Behind;

static void LIBUSB_CALL behind_out_done(struct libusb_transfer *t) {
        Behind *b = t->user_data;

        b->out_done = bench_now();
        if (t->status != LIBUSB_TRANSFER_COMPLETED && !b->error)
                b->error = (int) t->status;
}

static void LIBUSB_CALL behind_in_done(struct libusb_transfer *t) {
        Behind *b = t->user_data;

        b->in_done = bench_now();
        if (t->status != LIBUSB_TRANSFER_COMPLETED && !b->error)
                b->error = (int) t->status;
}

/* behind: N times an IN left pending, then an OUT; SAMPLES gets the OUT's submit-to-completion. */
static int run_behind(libusb_context *usb, libusb_device_handle *h, const BenchArgs *a, BufKind kind,
                      double *samples) {
        struct libusb_transfer *tin = libusb_alloc_transfer(0), *tout = libusb_alloc_transfer(0);
        unsigned char *buf[2] = {};
        unsigned size = (unsigned) a->size;
        Behind b;
        int r = 1;

        if (!tin || !tout || alloc_buffers(h, kind, size, 2, buf))
                goto out;
        libusb_fill_bulk_transfer(tin, h, (uint8_t) a->ep_in, buf[0], (int) size, behind_in_done, &b,
                                  (unsigned) a->timeout_ms);
        libusb_fill_bulk_transfer(tout, h, (uint8_t) a->ep_out, buf[1], (int) size, behind_out_done, &b,
                                  (unsigned) a->timeout_ms);
        for (unsigned long i = 0; i < a->behind_n; i++) {
                b = (Behind) {};
                r = libusb_submit_transfer(tin);
                if (r < 0) {
                        fprintf(stderr, "libusb-bench: submit IN: %s\n", libusb_error_name(r));
                        r = 1;
                        goto out;
                }
                bench_sleep(BEHIND_SETTLE);
                b.submitted = bench_now();
                r = libusb_submit_transfer(tout);
                if (r < 0) {
                        fprintf(stderr, "libusb-bench: submit OUT: %s\n", libusb_error_name(r));
                        (void) libusb_cancel_transfer(tin);
                        while (b.in_done == 0)
                                (void) libusb_handle_events(usb);
                        r = 1;
                        goto out;
                }
                while (b.in_done == 0 || b.out_done == 0) {
                        r = libusb_handle_events(usb);
                        if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
                                fprintf(stderr, "libusb-bench: handle_events: %s\n", libusb_error_name(r));
                                r = 1;
                                goto out;
                        }
                }
                if (b.error) {
                        fprintf(stderr, "libusb-bench: sample %lu: a transfer failed (status %d)\n", i, b.error);
                        r = 1;
                        goto out;
                }
                samples[i] = b.out_done - b.submitted;
        }
        r = 0;
out:
        libusb_free_transfer(tin);
        libusb_free_transfer(tout);
        free_buffers(h, kind, size, 2, buf);
        return r;
}

typedef struct Select {
        unsigned long vid, pid, bus, address;
} Select;

/* --vid, --pid, --bus, --address: libusb-bench's own options. */
static int parse_select_option(const char *o, const char *v, void *userdata) {
        Select *d = userdata;

        if (strcmp(o, "--vid") == 0)
                return bench_parse_uint(v, 0xffff, &d->vid);
        if (strcmp(o, "--pid") == 0)
                return bench_parse_uint(v, 0xffff, &d->pid);
        if (strcmp(o, "--bus") == 0)
                return bench_parse_uint(v, 255, &d->bus) || d->bus == 0;
        if (strcmp(o, "--address") == 0)
                return bench_parse_uint(v, 255, &d->address) || d->address == 0;
        return 1;
}

/* The first device matching SEL (VID:PID, and BUS/ADDRESS when given), opened; NULL if none. */
static libusb_device_handle *open_device(libusb_context *usb, const Select *sel) {
        libusb_device **list = NULL;
        libusb_device_handle *h = NULL;
        ssize_t n = libusb_get_device_list(usb, &list);

        for (ssize_t i = 0; i < n && !h; i++) {
                struct libusb_device_descriptor d;

                if (libusb_get_device_descriptor(list[i], &d) < 0 || d.idVendor != sel->vid || d.idProduct != sel->pid)
                        continue;
                if (sel->bus && libusb_get_bus_number(list[i]) != sel->bus)
                        continue;
                if (sel->address && libusb_get_device_address(list[i]) != sel->address)
                        continue;
                if (libusb_open(list[i], &h) < 0)
                        h = NULL;
        }
        if (n >= 0)
                libusb_free_device_list(list, 1);
        return h;
}

/* One measurement (bench_select()ed in A), its line printed. */
static int measure(libusb_context *usb, libusb_device_handle *h, BenchArgs *a, double *samples) {
        bool sync = strcmp(a->what, "sync") == 0;
        BufKind kind = buf_kind(a->what);
        Stream s = { .size = (unsigned) a->size, .to_submit = (unsigned long long) a->n << 20 };
        BenchClock timing;
        int r;

        bench_start(&timing, 0);
        if (a->max_seconds > 0)
                s.deadline = timing.t0 + a->max_seconds;
        switch (a->test) {
        case BENCH_RTT:
                r = run_rtt(h, a, samples);
                break;
        case BENCH_BEHIND:
                r = run_behind(usb, h, a, kind, samples);
                break;
        default:
                r = sync ? run_sync(h, a, &s) : run_async(usb, h, a, &s, kind);
                break;
        }
        bench_stop(&timing);
        if (r != 0)
                return r;
        if (bench_is_stream(a))
                bench_print_stream("libusb-", a->what, a, s.done, s.transfers, &timing, "usbfs");
        else
                bench_print_latency("libusb-", a->what, a, samples,
                                    a->test == BENCH_RTT ? a->n : a->behind_n, &timing, "usbfs");
        return 0;
}

int main(int argc, char *argv[]) {
        static const char *const modes[] = { "sync", "async-malloc", "async-devmem", "async-memfd", NULL };
        Select sel = { .vid = 0x0525, .pid = 0xa4a0 };
        const BenchProgram program = {
                .name = "libusb-bench",
                .max_depth = MAX_DEPTH,
                .tests = BENCH_TEST_IN | BENCH_TEST_OUT | BENCH_TEST_RTT | BENCH_TEST_BEHIND,
                .usage_before = "[--vid V] [--pid P] [--bus N] [--address N] ",
                .option = parse_select_option,
                .userdata = &sel,
                .whats = modes,
        };
        libusb_context *usb = NULL;
        libusb_device_handle *h = NULL;
        double *samples = NULL;
        bool sync;
        BenchArgs a;
        int r, status = 1;

        r = bench_parse_args(&a, argc, argv, &program);
        if (r != 0)
                return r;
        sync = strcmp(a.what, "sync") == 0;
        for (unsigned t = 0; t < a.n_tests; t++)
                if ((a.tests[t] == BENCH_RTT && !sync) || (a.tests[t] == BENCH_BEHIND && sync)) {
                        fprintf(stderr, "libusb-bench: %s needs %s\n", bench_test_names[a.tests[t]],
                                a.tests[t] == BENCH_RTT ? "sync" : "an async mode");
                        return 2;
                }
        samples = calloc(a.n > a.behind_n ? a.n : a.behind_n, sizeof(*samples));
        if (!samples)
                return 1;

        r = libusb_init(&usb);
        if (r < 0) {
                fprintf(stderr, "libusb-bench: libusb_init: %s\n", libusb_error_name(r));
                free(samples);
                return 1;
        }
        h = open_device(usb, &sel);
        if (!h) {
                fprintf(stderr, "libusb-bench: cannot open %04lx:%04lx", sel.vid, sel.pid);
                if (sel.bus || sel.address)
                        fprintf(stderr, " on bus %lu address %lu", sel.bus, sel.address);
                fprintf(stderr, " (not there, or not root?)\n");
                goto finish;
        }
        (void) libusb_set_auto_detach_kernel_driver(h, 1);
        r = libusb_claim_interface(h, (int) a.iface);
        if (r < 0) {
                fprintf(stderr, "libusb-bench: claim interface %lu: %s\n", a.iface, libusb_error_name(r));
                goto finish;
        }
        if (bench_barrier(a.go, program.name) < 0)
                goto release;

        for (unsigned k = 0; k < a.n_sizes; k++)
                for (unsigned t = 0; t < a.n_tests; t++) {
                        /* latencies: once, with the first SIZE */
                        if (k > 0 && (a.tests[t] == BENCH_RTT || a.tests[t] == BENCH_BEHIND))
                                continue;
                        bench_select(&a, a.tests[t], k);
                        if (measure(usb, h, &a, samples) != 0)
                                goto release;
                }
        status = 0;
release:
        (void) libusb_release_interface(h, (int) a.iface);
finish:
        libusb_close(h);
        libusb_exit(usb);
        free(samples);
        return status;
}
