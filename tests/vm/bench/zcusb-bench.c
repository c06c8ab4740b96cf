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
#include <unistd.h>
#include <zcusb.h>

#include "bench-common.h"

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

typedef struct Target {
        const char *device;
        unsigned long daemon_pid;
} Target;

/* --device and --daemon-pid: zcusb-bench's own options. */
static int parse_target_option(const char *o, const char *v, void *userdata) {
        Target *t = userdata;

        if (strcmp(o, "--device") == 0) {
                t->device = v;
                return 0;
        }
        if (strcmp(o, "--daemon-pid") == 0)
                return bench_parse_uint(v, 1ul << 30, &t->daemon_pid);
        return 1;
}

int main(int argc, char *argv[]) {
        Target target = { .device = "0525:a4a0" };
        const BenchProgram program = {
                .name = "zcusb-bench",
                .max_depth = ZCUSB_RING_MAX_ENTRIES,
                .usage_before = "[--device DEV] ",
                .usage_after = "[--daemon-pid PID] ",
                .option = parse_target_option,
                .userdata = &target,
        };
        unsigned long long to_submit, done = 0;
        struct zcusb *ctx = NULL;
        struct zcusb_claim *claim = NULL;
        struct zcusb_buffer *buffer = NULL;
        struct zcusb_queue *queue = NULL;
        struct zcusb_usage usage;
        unsigned entries = 1, in_flight = 0;
        char daemon_cpu[32];
        double d0;
        BenchArgs a;
        BenchClock timing;
        int r, status = 1;

        r = bench_parse_args(&a, argc, argv, &program);
        if (r != 0)
                return r;
        to_submit = (unsigned long long) a.mib << 20;
        while (entries < a.depth)
                entries <<= 1;

        r = zcusb_open(&ctx);
        if (r < 0)
                return fail(NULL, "connecting to zcusbd", r);
        r = zcusb_claim_interface(ctx, target.device, (uint8_t) a.iface, &claim);
        if (r < 0) {
                fail(ctx, "claim", r);
                goto finish;
        }
        r = zcusb_buffer_alloc(claim, (size_t) a.size * a.depth, &buffer);
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

        bench_start(&timing);
        d0 = process_cpu_seconds((long) target.daemon_pid);
        for (unsigned slot = 0; slot < a.depth && to_submit > 0; slot++) {
                struct zcusb_sqe sqe;
                unsigned n = to_submit < a.size ? (unsigned) to_submit : (unsigned) a.size;

                zcusb_prep_transfer(&sqe, ZCUSB_OP_BULK, a.ep, zcusb_buffer_id(buffer), (uint64_t) slot * a.size,
                                    n, (uint32_t) a.timeout_ms, slot);
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
                        len = to_submit < a.size ? (unsigned) to_submit : (unsigned) a.size;
                        zcusb_prep_transfer(&sqe, ZCUSB_OP_BULK, a.ep, zcusb_buffer_id(buffer),
                                            (uint64_t) slot * a.size, len, (uint32_t) a.timeout_ms, slot);
                        r = zcusb_queue_submit(queue, &sqe);
                        if (r < 0) {
                                fail(ctx, "submit", r);
                                goto finish;
                        }
                        to_submit -= len;
                        in_flight++;
                }
        }
        bench_stop(&timing);
        snprintf(daemon_cpu, sizeof(daemon_cpu), "%.6f",
                 d0 < 0 ? -1 : process_cpu_seconds((long) target.daemon_pid) - d0);
        bench_print_result("", a.what, a.dir, done, &timing, daemon_cpu, usage.backend);
        status = 0;
finish:
        zcusb_close(ctx);
        return status;
}
