/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zcusb-bench: the zcusbd contenders of tests/vm/bench/run-bench.sh. Streams MIB MiB over one
 * bulk endpoint through zcusbd (libzcusb: one shared buffer of DEPTH slots, a queue, every slot
 * in flight) with the same loop as libusb-bench's async mode, and prints one JSON line:
 * {"contender","dir","bytes","seconds","client_cpu","daemon_cpu","backend"}, where
 * client_cpu is this process's user + system seconds and daemon_cpu zcusbd's (utime + stime of
 * /proc/PID/stat), both over the streaming loop alone.
 *
 *   zcusb-bench [OPTIONS] LABEL DIR MIB
 *     LABEL the contender's name in the output; DIR in | out (OUT data is zeros)
 *   Options: --device 0525:a4a0 --interface 0 --in 0x81 --out 0x02 --size 65536 --depth 8
 *            --timeout 5000 (ms) --daemon-pid PID (zcusbd's MainPID; without it daemon_cpu is -1)
 * Exit: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zcusb.h>

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

/* utime + stime of PID in seconds, -1 when unknown. */
static double process_cpu_seconds(long pid) {
        unsigned long long utime, stime;
        char path[64], buf[1024], *p;
        FILE *f;
        size_t n;

        if (pid <= 0)
                return -1;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* The command name may hold spaces and parentheses: fields restart after the last ')'. */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
                return -1;
        return (double) (utime + stime) / (double) sysconf(_SC_CLK_TCK);
}

static int fail(struct zcusb *ctx, const char *what, int r) {
        const char *message = ctx ? zcusb_last_error_message(ctx) : "";

        fprintf(stderr, "zcusb-bench: %s: %s\n", what, *message ? message : zcusb_strerror(r));
        return 1;
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
        unsigned long iface = 0, ep_in = 0x81, ep_out = 0x02, size = 65536, depth = 8, timeout_ms = 5000, mib;
        unsigned long long to_submit, done = 0;
        const char *device = "0525:a4a0", *label, *dir;
        struct zcusb *ctx = NULL;
        struct zcusb_claim *claim = NULL;
        struct zcusb_buffer *buffer = NULL;
        struct zcusb_queue *queue = NULL;
        struct zcusb_usage usage;
        unsigned entries = 1, in_flight = 0;
        double t0, c0, d0, seconds, cpu, daemon_cpu;
        long daemon_pid = 0;
        uint8_t ep;
        int i = 1, r, status = 1;

        for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
                const char *o = argv[i], *v = argv[i + 1];
                unsigned long n = 0;
                int bad;

                if (strcmp(o, "--device") == 0)
                        device = v, bad = 0;
                else if (strcmp(o, "--interface") == 0)
                        bad = parse_uint(v, 255, &iface);
                else if (strcmp(o, "--in") == 0)
                        bad = parse_uint(v, 0xff, &ep_in) || !(ep_in & 0x80);
                else if (strcmp(o, "--out") == 0)
                        bad = parse_uint(v, 0x7f, &ep_out);
                else if (strcmp(o, "--size") == 0)
                        bad = parse_uint(v, 1ul << 24, &size) || size == 0;
                else if (strcmp(o, "--depth") == 0)
                        bad = parse_uint(v, ZCUSB_RING_MAX_ENTRIES, &depth) || depth == 0;
                else if (strcmp(o, "--timeout") == 0)
                        bad = parse_uint(v, 600000, &timeout_ms);
                else if (strcmp(o, "--daemon-pid") == 0)
                        bad = parse_uint(v, 1ul << 30, &n), daemon_pid = (long) n;
                else
                        bad = 1;
                if (bad) {
                        fprintf(stderr, "zcusb-bench: bad option %s %s\n", o, v);
                        return 2;
                }
        }
        if (argc - i != 3 || parse_uint(argv[i + 2], 1ul << 20, &mib) < 0 || mib == 0 ||
            (strcmp(argv[i + 1], "in") != 0 && strcmp(argv[i + 1], "out") != 0)) {
                fprintf(stderr, "Usage: %s [--device DEV] [--interface N] [--in EP] [--out EP] [--size N]\n"
                                "       [--depth N] [--timeout MS] [--daemon-pid PID] LABEL in|out MIB\n",
                        argv[0]);
                return 2;
        }
        label = argv[i];
        dir = argv[i + 1];
        ep = (uint8_t) (strcmp(dir, "in") == 0 ? ep_in : ep_out);
        to_submit = (unsigned long long) mib << 20;
        while (entries < depth)
                entries <<= 1;

        r = zcusb_open(&ctx);
        if (r < 0)
                return fail(NULL, "connecting to zcusbd", r);
        r = zcusb_claim_interface(ctx, device, (uint8_t) iface, &claim);
        if (r < 0) {
                fail(ctx, "claim", r);
                goto finish;
        }
        r = zcusb_buffer_alloc(claim, (size_t) size * depth, &buffer);
        if (r < 0) {
                fail(ctx, "buffer", r);
                goto finish;
        }
        r = zcusb_queue_open(claim, entries, &queue);
        if (r < 0) {
                fail(ctx, "queue", r);
                goto finish;
        }
        r = zcusb_claim_get_usage(claim, &usage);
        if (r < 0) {
                fail(ctx, "claim properties", r);
                goto finish;
        }

        t0 = now();
        c0 = cpu_seconds();
        d0 = process_cpu_seconds(daemon_pid);
        for (unsigned slot = 0; slot < depth && to_submit > 0; slot++) {
                struct zcusb_sqe sqe;
                unsigned n = to_submit < size ? (unsigned) to_submit : (unsigned) size;

                zcusb_prep_transfer(&sqe, ZCUSB_OP_BULK, ep, zcusb_buffer_id(buffer), (uint64_t) slot * size, n,
                                    (uint32_t) timeout_ms, slot);
                r = zcusb_queue_submit(queue, &sqe);
                if (r < 0) {
                        fail(ctx, "submit", r);
                        goto finish;
                }
                to_submit -= n;
                in_flight++;
        }
        while (in_flight > 0) {
                struct zcusb_cqe cqes[64];
                int n;

                r = zcusb_queue_wait(queue, -1);
                if (r == -EINTR)
                        continue;
                if (r < 0) {
                        fail(ctx, "wait", r);
                        goto finish;
                }
                n = zcusb_queue_reap(queue, cqes, 64);
                if (n < 0) {
                        fail(ctx, "reap", n);
                        goto finish;
                }
                for (int k = 0; k < n; k++) {
                        struct zcusb_sqe sqe;
                        unsigned slot = (unsigned) cqes[k].user_data, len;

                        in_flight--;
                        if (cqes[k].status < 0) {
                                fail(NULL, "transfer", cqes[k].status);
                                goto finish;
                        }
                        done += cqes[k].actual_length;
                        if (to_submit == 0)
                                continue;
                        len = to_submit < size ? (unsigned) to_submit : (unsigned) size;
                        zcusb_prep_transfer(&sqe, ZCUSB_OP_BULK, ep, zcusb_buffer_id(buffer),
                                            (uint64_t) slot * size, len, (uint32_t) timeout_ms, slot);
                        r = zcusb_queue_submit(queue, &sqe);
                        if (r < 0) {
                                fail(ctx, "submit", r);
                                goto finish;
                        }
                        to_submit -= len;
                        in_flight++;
                }
        }
        seconds = now() - t0;
        cpu = cpu_seconds() - c0;
        daemon_cpu = d0 < 0 ? -1 : process_cpu_seconds(daemon_pid) - d0;
        printf("{\"contender\":\"%s\",\"dir\":\"%s\",\"bytes\":%llu,\"seconds\":%.6f,\"client_cpu\":%.6f,"
               "\"daemon_cpu\":%.6f,\"backend\":\"%s\"}\n",
               label, dir, done, seconds, cpu, daemon_cpu, usage.backend);
        status = 0;
finish:
        zcusb_close(ctx);
        return status;
}
