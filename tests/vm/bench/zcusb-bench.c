/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zcusb-bench: the zcusbd contenders of tests/vm/bench/run-bench.sh. Claims an interface through
 * zcusbd (libzcusb: one shared buffer of DEPTH slots of SIZE bytes, one queue) and prints one JSON
 * line (bench-common.h), where client_cpu is this process's user + system seconds, daemon_cpu
 * zcusbd's (utime + stime of /proc/PID/stat) and guest_busy the whole guest's, all over the
 * measured loop alone.
 *
 *   zcusb-bench [OPTIONS] LABEL TEST[,TEST...] N
 *     LABEL the contender's name in the output
 *     TEST  in N | out N  stream N MiB with every slot in flight, the same loop as libusb-bench's
 *                         async modes (OUT data is zeros), stopping early after --max-seconds;
 *                         once for each SIZE:DEPTH of --sizes
 *           rtt N         N round trips of SIZE bytes: OUT, wait, IN, wait (a Loopback gadget)
 *           behind N      N times (--behind-count): an IN of SIZE bytes submitted and left
 *                         pending, 20 ms later an OUT of SIZE bytes on the same queue; the sample
 *                         is the OUT's submit-to-completion
 *           idle N        hold the claim, the buffer and the queue (nothing in flight) for N
 *                         seconds or until SIGTERM/SIGINT; with --go FILE, FILE.ready.PID says
 *                         it is set up. Prints nothing.
 *         One line per measurement: for each SIZE:DEPTH, each TEST of the list in its order.
 *   Options: --device 0525:a4a0 (anything zcusb_claim_interface() takes) --interface 0 --in 0x81
 *            --out 0x02 --size 65536 --depth 8 (or --sizes 16384:8,65536:8) --timeout 5000 (ms)
 *            --max-seconds S --behind-count N --go FILE (before the first measurement)
 *            --daemon-pid PID (zcusbd's MainPID; without it daemon_cpu is -1)
 * Exit: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zcusb.h>

#include "bench-common.h"

#define BEHIND_SETTLE 0.020 /* seconds the IN stays pending before the OUT is submitted */
#define PAGE 4096ul

/* rtt, behind: the offset of the second slot, page-aligned (zcusb.ko maps pages, not bytes) */
static uint64_t second_slot(unsigned long size) {
        return (size + PAGE - 1) / PAGE * PAGE;
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

typedef struct Run {
        struct zcusb *ctx;
        struct zcusb_buffer *buffer;
        struct zcusb_queue *queue;
        const BenchArgs *a;
} Run;

static void prep(Run *run, struct zcusb_sqe *sqe, uint8_t ep, uint64_t offset, uint32_t length, uint64_t user_data) {
        zcusb_prep_transfer(sqe, ZCUSB_OP_BULK, ep, zcusb_buffer_id(run->buffer), offset, length,
                            (uint32_t) run->a->timeout_ms, user_data);
}

static int submit(Run *run, uint8_t ep, uint64_t offset, uint32_t length, uint64_t user_data) {
        struct zcusb_sqe sqe;
        int r;

        prep(run, &sqe, ep, offset, length, user_data);
        r = zcusb_queue_submit(run->queue, &sqe);
        return r < 0 ? fail(run->ctx, "submit", r) : 0;
}

/* All N entries at once: one doorbell at most. The ring holds the whole depth, so they fit. */
static int submit_all(Run *run, const struct zcusb_sqe *sqes, unsigned n) {
        int r;

        if (n == 0)
                return 0;
        r = zcusb_queue_submit_batch(run->queue, sqes, n);
        if (r >= 0 && (unsigned) r < n)
                r = -EAGAIN;
        return r < 0 ? fail(run->ctx, "submit", r) : 0;
}

/* Wait for and reap at least one completion into CQES (at most MAX). Returns how many, or -1
 * after saying why (a failed transfer included). */
static int reap(Run *run, struct zcusb_cqe *cqes, unsigned max) {
        int r, n;

        for (;;) {
                r = zcusb_queue_wait(run->queue, -1);
                if (r == -EINTR)
                        continue;
                if (r < 0)
                        return -fail(run->ctx, "wait", r);
                n = zcusb_queue_reap(run->queue, cqes, max);
                if (n < 0)
                        return -fail(run->ctx, "reap", n);
                for (int k = 0; k < n; k++)
                        if (cqes[k].status < 0)
                                return -fail(NULL, "transfer", cqes[k].status);
                if (n > 0)
                        return n;
        }
}

static int run_stream(Run *run, double deadline, unsigned long long *ret_bytes, unsigned long long *ret_transfers) {
        const BenchArgs *a = run->a;
        unsigned long long to_submit = (unsigned long long) a->n << 20, done = 0, transfers = 0;
        unsigned in_flight = 0;

        for (unsigned slot = 0; slot < a->depth && to_submit > 0; slot++) {
                unsigned n = to_submit < a->size ? (unsigned) to_submit : (unsigned) a->size;

                if (submit(run, a->ep, (uint64_t) slot * a->size, n, slot))
                        return 1;
                to_submit -= n;
                in_flight++;
        }
        /* As a streaming libzcusb program does: the transfers a wakeup reaped go back in one batch. */
        while (in_flight > 0) {
                struct zcusb_cqe cqes[64];
                struct zcusb_sqe again[64];
                unsigned n_again = 0;
                int n = reap(run, cqes, 64);

                if (n < 0)
                        return 1;
                if (deadline > 0 && bench_now() >= deadline)
                        to_submit = 0;
                for (int k = 0; k < n; k++) {
                        unsigned slot = (unsigned) cqes[k].user_data, len;

                        in_flight--;
                        done += cqes[k].actual_length;
                        transfers++;
                        if (to_submit == 0)
                                continue;
                        len = to_submit < a->size ? (unsigned) to_submit : (unsigned) a->size;
                        prep(run, &again[n_again++], a->ep, (uint64_t) slot * a->size, len, slot);
                        to_submit -= len;
                        in_flight++;
                }
                if (submit_all(run, again, n_again))
                        return 1;
        }
        *ret_bytes = done;
        *ret_transfers = transfers;
        return 0;
}

static int run_rtt(Run *run, double *samples) {
        const BenchArgs *a = run->a;
        uint8_t *data = zcusb_buffer_data(run->buffer);

        for (unsigned long i = 0; i < a->n; i++) {
                struct zcusb_cqe cqe;
                double t0 = bench_now();

                memset(data, (int) (i & 0xff), a->size);
                if (submit(run, (uint8_t) a->ep_out, 0, (uint32_t) a->size, 1) || reap(run, &cqe, 1) < 0 ||
                    submit(run, (uint8_t) a->ep_in, second_slot(a->size), (uint32_t) a->size, 2) ||
                    reap(run, &cqe, 1) < 0)
                        return 1;
                samples[i] = bench_now() - t0;
        }
        return 0;
}

static int run_behind(Run *run, double *samples) {
        const BenchArgs *a = run->a;

        for (unsigned long i = 0; i < a->behind_n; i++) {
                double submitted, out_done = 0;
                bool in_done = false;

                if (submit(run, (uint8_t) a->ep_in, 0, (uint32_t) a->size, 1))
                        return 1;
                bench_sleep(BEHIND_SETTLE);
                submitted = bench_now();
                if (submit(run, (uint8_t) a->ep_out, second_slot(a->size), (uint32_t) a->size, 2))
                        return 1;
                while (!in_done || out_done == 0) {
                        struct zcusb_cqe cqes[2];
                        int n = reap(run, cqes, 2);
                        double t = bench_now();

                        if (n < 0)
                                return 1;
                        for (int k = 0; k < n; k++) {
                                if (cqes[k].user_data == 2)
                                        out_done = t;
                                else
                                        in_done = true;
                        }
                }
                samples[i] = out_done - submitted;
        }
        return 0;
}

/* idle: say so (FILE.ready.PID), then hold everything until SIGTERM/SIGINT or N seconds. */
static int run_idle(const BenchArgs *a) {
        struct timespec ts = { .tv_sec = (time_t) a->n };
        sigset_t set;
        char ready[4096];
        FILE *f;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return 1;
        if (a->go) {
                snprintf(ready, sizeof(ready), "%s.ready.%ld", a->go, (long) getpid());
                f = fopen(ready, "we");
                if (!f) {
                        fprintf(stderr, "zcusb-bench: cannot create %s: %s\n", ready, strerror(errno));
                        return 1;
                }
                fclose(f);
        }
        while (sigtimedwait(&set, NULL, &ts) < 0 && errno == EINTR)
                ;
        return 0;
}

/* One measurement (bench_select()ed in RUN's args), its line printed. */
static int measure(Run *run, long daemon_pid, double *samples, const char *backend) {
        const BenchArgs *a = run->a;
        unsigned long long bytes = 0, transfers = 0;
        BenchClock timing;
        int r;

        bench_start(&timing, daemon_pid);
        switch (a->test) {
        case BENCH_RTT:
                r = run_rtt(run, samples);
                break;
        case BENCH_BEHIND:
                r = run_behind(run, samples);
                break;
        default:
                r = run_stream(run, a->max_seconds > 0 ? timing.t0 + a->max_seconds : 0, &bytes, &transfers);
                break;
        }
        bench_stop(&timing);
        if (r != 0)
                return r;
        if (bench_is_stream(a))
                bench_print_stream("", a->what, a, bytes, transfers, &timing, backend);
        else
                bench_print_latency("", a->what, a, samples, a->test == BENCH_RTT ? a->n : a->behind_n, &timing,
                                    backend);
        return 0;
}

int main(int argc, char *argv[]) {
        Target target = { .device = "0525:a4a0" };
        const BenchProgram program = {
                .name = "zcusb-bench",
                .max_depth = ZCUSB_RING_MAX_ENTRIES,
                .tests = BENCH_TEST_IN | BENCH_TEST_OUT | BENCH_TEST_RTT | BENCH_TEST_BEHIND | BENCH_TEST_IDLE,
                .usage_before = "[--device DEV] ",
                .usage_after = "[--daemon-pid PID] ",
                .option = parse_target_option,
                .userdata = &target,
        };
        struct zcusb_claim *claim = NULL;
        struct zcusb_usage usage;
        unsigned entries = 1;
        size_t buffer_size;
        double *samples = NULL;
        BenchArgs a;
        Run run = { .a = &a };
        int r, status = 1;

        r = bench_parse_args(&a, argc, argv, &program);
        if (r != 0)
                return r;
        /* streams: DEPTH slots of SIZE for every pair; rtt, behind: two slots (OUT, IN data) of
         * the first SIZE and at most two transfers in flight */
        buffer_size = a.max_bytes > 2 * second_slot(a.sizes[0]) ? a.max_bytes : 2 * second_slot(a.sizes[0]);
        while (entries < a.max_depth || entries < 2)
                entries <<= 1;
        samples = calloc(a.n > a.behind_n ? a.n : a.behind_n, sizeof(*samples));
        if (!samples)
                return 1;

        r = zcusb_open(&run.ctx);
        if (r < 0) {
                free(samples);
                return fail(NULL, "connecting to zcusbd", r);
        }
        r = zcusb_claim_interface(run.ctx, target.device, (uint8_t) a.iface, &claim);
        if (r < 0) {
                fail(run.ctx, "claim", r);
                goto finish;
        }
        r = zcusb_buffer_alloc(claim, buffer_size, &run.buffer);
        if (r < 0) {
                fail(run.ctx, "buffer", r);
                goto finish;
        }
        r = zcusb_queue_open(claim, entries, &run.queue);
        if (r < 0) {
                fail(run.ctx, "queue", r);
                goto finish;
        }
        r = zcusb_claim_get_usage(claim, &usage);
        if (r < 0) {
                fail(run.ctx, "claim properties", r);
                goto finish;
        }
        if (a.tests[0] == BENCH_IDLE) {
                status = run_idle(&a);
                goto finish;
        }
        if (bench_barrier(a.go, program.name) < 0)
                goto finish;

        for (unsigned k = 0; k < a.n_sizes; k++)
                for (unsigned t = 0; t < a.n_tests; t++) {
                        /* latencies: once, with the first SIZE */
                        if (k > 0 && (a.tests[t] == BENCH_RTT || a.tests[t] == BENCH_BEHIND))
                                continue;
                        bench_select(&a, a.tests[t], k);
                        if (measure(&run, (long) target.daemon_pid, samples, usage.backend) != 0)
                                goto finish;
                }
        status = 0;
finish:
        zcusb_close(run.ctx);
        free(samples);
        return status;
}
