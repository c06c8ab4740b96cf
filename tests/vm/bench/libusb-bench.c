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
#include <errno.h>
#include <libusb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_DEPTH 64

typedef struct Stream {
        unsigned size;
        unsigned long long to_submit; /* bytes not yet asked for */
        unsigned long long done;      /* bytes moved */
        unsigned in_flight;
        int error;                    /* a libusb_transfer_status or LIBUSB_ERROR_* */
} Stream;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
               (double) ru.ru_stime.tv_usec / 1e6;
}

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

static int parse_uint(const char *s, unsigned long max, unsigned long *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno || end == s || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned long vid = 0x0525, pid = 0xa4a0, iface = 0, ep_in = 0x81, ep_out = 0x02, size = 65536,
                      depth = 8, timeout_ms = 5000, mib;
        libusb_context *usb = NULL;
        libusb_device_handle *h = NULL;
        const char *mode, *dir;
        Stream s = {};
        double t0, c0, seconds, cpu;
        uint8_t ep;
        int i = 1, r, status = 1;

        for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
                const char *o = argv[i], *v = argv[i + 1];
                int bad;

                if (strcmp(o, "--vid") == 0)
                        bad = parse_uint(v, 0xffff, &vid);
                else if (strcmp(o, "--pid") == 0)
                        bad = parse_uint(v, 0xffff, &pid);
                else if (strcmp(o, "--interface") == 0)
                        bad = parse_uint(v, 255, &iface);
                else if (strcmp(o, "--in") == 0)
                        bad = parse_uint(v, 0xff, &ep_in) || !(ep_in & 0x80);
                else if (strcmp(o, "--out") == 0)
                        bad = parse_uint(v, 0x7f, &ep_out);
                else if (strcmp(o, "--size") == 0)
                        bad = parse_uint(v, 1ul << 24, &size) || size == 0;
                else if (strcmp(o, "--depth") == 0)
                        bad = parse_uint(v, MAX_DEPTH, &depth) || depth == 0;
                else if (strcmp(o, "--timeout") == 0)
                        bad = parse_uint(v, 600000, &timeout_ms);
                else
                        bad = 1;
                if (bad) {
                        fprintf(stderr, "libusb-bench: bad option %s %s\n", o, v);
                        return 2;
                }
        }
        if (argc - i != 3 || parse_uint(argv[i + 2], 1ul << 20, &mib) < 0 || mib == 0 ||
            (strcmp(argv[i + 1], "in") != 0 && strcmp(argv[i + 1], "out") != 0) ||
            (strcmp(argv[i], "sync") != 0 && strcmp(argv[i], "async-malloc") != 0 &&
             strcmp(argv[i], "async-devmem") != 0)) {
                fprintf(stderr, "Usage: %s [--vid V] [--pid P] [--interface N] [--in EP] [--out EP] [--size N]\n"
                                "       [--depth N] [--timeout MS] sync|async-malloc|async-devmem in|out MIB\n",
                        argv[0]);
                return 2;
        }
        mode = argv[i];
        dir = argv[i + 1];
        ep = (uint8_t) (strcmp(dir, "in") == 0 ? ep_in : ep_out);
        s.size = (unsigned) size;
        s.to_submit = (unsigned long long) mib << 20;

        r = libusb_init(&usb);
        if (r < 0) {
                fprintf(stderr, "libusb-bench: libusb_init: %s\n", libusb_error_name(r));
                return 1;
        }
        h = libusb_open_device_with_vid_pid(usb, (uint16_t) vid, (uint16_t) pid);
        if (!h) {
                fprintf(stderr, "libusb-bench: cannot open %04lx:%04lx (not there, or not root?)\n", vid, pid);
                goto finish;
        }
        (void) libusb_set_auto_detach_kernel_driver(h, 1);
        r = libusb_claim_interface(h, (int) iface);
        if (r < 0) {
                fprintf(stderr, "libusb-bench: claim interface %lu: %s\n", iface, libusb_error_name(r));
                goto finish;
        }

        t0 = now();
        c0 = cpu_seconds();
        if (strcmp(mode, "sync") == 0)
                r = run_sync(h, ep, &s, (unsigned) timeout_ms);
        else
                r = run_async(usb, h, ep, &s, (unsigned) depth, strcmp(mode, "async-devmem") == 0,
                              (unsigned) timeout_ms);
        seconds = now() - t0;
        cpu = cpu_seconds() - c0;
        if (r == 0) {
                printf("{\"contender\":\"libusb-%s\",\"dir\":\"%s\",\"bytes\":%llu,\"seconds\":%.6f,"
                       "\"client_cpu\":%.6f,\"daemon_cpu\":0,\"backend\":\"usbfs\"}\n",
                       mode, dir, s.done, seconds, cpu);
                status = 0;
        }
        (void) libusb_release_interface(h, (int) iface);
finish:
        libusb_close(h);
        libusb_exit(usb);
        return status;
}
