/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the benchmark's two programs (libusb-bench, zcusb-bench) share: their common options and
 * arguments, the clocks of a run (wall, this process, the whole guest), the start barrier of
 * concurrent clients, latency percentiles, and the one JSON line each prints for
 * tests/vm/bench/cases/50-bench.sh (summed up by tests/vm/bench/summarize.py), one per
 * measurement (a program makes several: every TEST of its list, for every SIZE:DEPTH of --sizes):
 *   streams:   {"contender","test":"in|out","size","depth","bytes","transfers","seconds",
 *               "t_start","t_end","client_cpu","daemon_cpu","guest_busy","zc_bytes",
 *               "bounced_bytes","backend","client_sleeps","daemon_sleeps","guest_switches","cpu_busy"}
 *   latencies: {"contender","test":"rtt|behind","size","count","p50_us","p90_us","p99_us",
 *               "min_us","max_us","seconds",...the same from "client_cpu" on}
 * guest_busy is the busy time of the whole guest over the same interval: wall time x online CPUs
 * minus the idle and iowait time of /proc/stat (precise under NO_HZ, where the busy fields are
 * tick samples that miss ticks when the host deschedules a vCPU), so work in kernel threads,
 * interrupts and the emulated device counts. zc_bytes and bounced_bytes are zcusb.ko's counters
 * over the measurement (/sys/bus/usb/drivers/zcusb/stats; 0 without the module).
 * client_sleeps and daemon_sleeps count the times the client and zcusbd went to sleep (voluntary
 * context switches; -1 unknown), guest_switches the context switches of the whole guest (/proc/stat
 * "ctxt"): unlike the timings, these do not vary with the host's load, and each sleep is a wakeup
 * someone paid for. cpu_busy is the busy time of each CPU over the interval (wall time minus its
 * idle and iowait): which vCPU did the work, when one of them is slower than the other.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static inline int bench_parse_uint(const char *s, unsigned long max, unsigned long *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno || end == s || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static inline int bench_parse_seconds(const char *s, double *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || *end || !(v >= 0) || v > 86400)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Whether S is one of WORDS (NULL-terminated; NULL: anything is). */
static inline bool bench_one_of(const char *s, const char *const *words) {
        if (!words)
                return true;
        for (; *words; words++)
                if (strcmp(s, *words) == 0)
                        return true;
        return false;
}

/* What a run measures: TEST in the arguments. */
typedef enum BenchTest {
        BENCH_IN,     /* stream N MiB from the IN endpoint */
        BENCH_OUT,    /* stream N MiB to the OUT endpoint */
        BENCH_RTT,    /* N round trips: SIZE bytes OUT, then SIZE bytes IN (a Loopback gadget) */
        BENCH_BEHIND, /* N times: an IN left pending, then SIZE bytes OUT: how long until the OUT
                       * completes (on a Loopback gadget the OUT's data completes the IN) */
        BENCH_IDLE,   /* hold the claim, a buffer and a queue for N seconds (or until SIGTERM) */
        _BENCH_TEST_MAX,
} BenchTest;

#define BENCH_TEST_IN     (1u << BENCH_IN)
#define BENCH_TEST_OUT    (1u << BENCH_OUT)
#define BENCH_TEST_RTT    (1u << BENCH_RTT)
#define BENCH_TEST_BEHIND (1u << BENCH_BEHIND)
#define BENCH_TEST_IDLE   (1u << BENCH_IDLE)

static const char *const bench_test_names[_BENCH_TEST_MAX] = {
        [BENCH_IN] = "in", [BENCH_OUT] = "out", [BENCH_RTT] = "rtt", [BENCH_BEHIND] = "behind", [BENCH_IDLE] = "idle",
};

#define BENCH_MAX_SIZES 8
#define BENCH_MAX_TESTS 8

/* The options and arguments both programs take: [OPTIONS] WHAT TEST[,TEST...] N. */
typedef struct BenchArgs {
        unsigned long iface, ep_in, ep_out, timeout_ms;
        unsigned long sizes[BENCH_MAX_SIZES], depths[BENCH_MAX_SIZES]; /* --size/--depth or --sizes */
        unsigned n_sizes;
        unsigned long max_bytes, max_depth; /* the largest SIZE x DEPTH, DEPTH of the pairs */
        unsigned long n;          /* MiB (in, out), samples (rtt), seconds (idle) */
        unsigned long behind_n;   /* samples (behind): --behind-count, default N */
        double max_seconds;       /* in, out: stop submitting after this long (0: no limit) */
        const char *go;           /* start barrier: see bench_barrier() */
        const char *what;         /* libusb-bench's MODE, zcusb-bench's LABEL */
        BenchTest tests[BENCH_MAX_TESTS];
        unsigned n_tests;
        /* the measurement under way (bench_select()) */
        BenchTest test;
        unsigned long size, depth;
        uint8_t ep;               /* in, out: ep_in or ep_out */
} BenchArgs;

static inline bool bench_is_stream(const BenchArgs *a) {
        return a->test == BENCH_IN || a->test == BENCH_OUT;
}

/* Make TEST with size/depth pair K the measurement under way. */
static inline void bench_select(BenchArgs *a, BenchTest test, unsigned k) {
        a->test = test;
        a->size = a->sizes[k];
        a->depth = a->depths[k];
        a->ep = (uint8_t) (test == BENCH_IN ? a->ep_in : a->ep_out);
}

/* --sizes SIZE:DEPTH,...: the pairs of stream measurements. */
static inline int bench_parse_sizes(const char *v, unsigned long max_depth, BenchArgs *a) {
        char buf[256], *save = NULL, *tok;

        if (strlen(v) >= sizeof(buf))
                return -EINVAL;
        strcpy(buf, v);
        a->n_sizes = 0;
        for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                char *colon = strchr(tok, ':');

                if (!colon || a->n_sizes == BENCH_MAX_SIZES)
                        return -EINVAL;
                *colon = '\0';
                if (bench_parse_uint(tok, 1ul << 24, &a->sizes[a->n_sizes]) < 0 || a->sizes[a->n_sizes] == 0 ||
                    bench_parse_uint(colon + 1, max_depth, &a->depths[a->n_sizes]) < 0 || a->depths[a->n_sizes] == 0)
                        return -EINVAL;
                a->n_sizes++;
        }
        return a->n_sizes ? 0 : -EINVAL;
}

/* What a program adds to the common options and arguments. */
typedef struct BenchProgram {
        const char *name;            /* in its messages */
        unsigned long max_depth;     /* the largest --depth */
        unsigned tests;              /* BENCH_TEST_* it runs */
        /* Its own options: their synopsis before and after the common ones ("[--x X] " each, or
         * NULL), and their parser: 0 when it took OPTION VALUE, nonzero when either is bad or
         * unknown. */
        const char *usage_before, *usage_after;
        int (*option)(const char *option, const char *value, void *userdata);
        void *userdata;
        const char *const *whats;    /* the values WHAT may take, NULL-terminated; NULL: any (LABEL) */
} BenchProgram;

static inline void bench_usage(const BenchProgram *p, const char *argv0) {
        bool first = true;

        fprintf(stderr,
                "Usage: %s %s[--interface N] [--in EP] [--out EP] [--size N]\n"
                "       [--depth N] [--sizes SIZE:DEPTH,...] [--timeout MS] [--max-seconds S] [--go FILE]\n"
                "       [--behind-count N] %s",
                argv0, p->usage_before ?: "", p->usage_after ?: "");
        for (const char *const *w = p->whats; w && *w; w++)
                fprintf(stderr, "%s%s", w == p->whats ? "" : "|", *w);
        fprintf(stderr, "%s ", p->whats ? "" : "LABEL");
        for (int t = 0; t < _BENCH_TEST_MAX; t++)
                if (p->tests & (1u << t)) {
                        fprintf(stderr, "%s%s", first ? "" : "|", bench_test_names[t]);
                        first = false;
                }
        fprintf(stderr, "[,...] N\n"
                        "  in|out N: stream N MiB (for each of --sizes); rtt N: N round trips (SIZE bytes OUT,\n"
                        "  then IN); behind N: N OUT transfers each submitted behind a pending IN; idle N: hold a\n"
                        "  claim N s\n");
}

/* Parses ARGV into A (defaults: interface 0, IN 0x81, OUT 0x02, size 65536, depth 8, timeout
 * 5000 ms), with P's own options. Returns 0, or 2 (the usage exit status) after saying what is
 * wrong. */
static inline int bench_parse_args(BenchArgs *a, int argc, char *argv[], const BenchProgram *p) {
        unsigned long size = 65536, depth = 8;
        bool sizes = false;
        char list[64], *save = NULL, *tok;
        int i = 1;

        *a = (BenchArgs) {
                .ep_in = 0x81,
                .ep_out = 0x02,
                .timeout_ms = 5000,
        };
        for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
                const char *o = argv[i], *v = argv[i + 1];
                int bad;

                if (strcmp(o, "--interface") == 0)
                        bad = bench_parse_uint(v, 255, &a->iface);
                else if (strcmp(o, "--in") == 0)
                        bad = bench_parse_uint(v, 0xff, &a->ep_in) || !(a->ep_in & 0x80);
                else if (strcmp(o, "--out") == 0)
                        bad = bench_parse_uint(v, 0x7f, &a->ep_out);
                else if (strcmp(o, "--size") == 0)
                        bad = bench_parse_uint(v, 1ul << 24, &size) || size == 0;
                else if (strcmp(o, "--depth") == 0)
                        bad = bench_parse_uint(v, p->max_depth, &depth) || depth == 0;
                else if (strcmp(o, "--sizes") == 0)
                        bad = bench_parse_sizes(v, p->max_depth, a) || !(sizes = true);
                else if (strcmp(o, "--behind-count") == 0)
                        bad = bench_parse_uint(v, 1ul << 20, &a->behind_n) || a->behind_n == 0;
                else if (strcmp(o, "--timeout") == 0)
                        bad = bench_parse_uint(v, 600000, &a->timeout_ms);
                else if (strcmp(o, "--max-seconds") == 0)
                        bad = bench_parse_seconds(v, &a->max_seconds);
                else if (strcmp(o, "--go") == 0) {
                        a->go = v;
                        bad = !*v;
                } else
                        bad = p->option(o, v, p->userdata);
                if (bad) {
                        fprintf(stderr, "%s: bad option %s %s\n", p->name, o, v);
                        return 2;
                }
        }
        if (argc - i != 3 || strlen(argv[i + 1]) >= sizeof(list) || bench_parse_uint(argv[i + 2], 1ul << 20, &a->n) < 0 ||
            a->n == 0 || !bench_one_of(argv[i], p->whats))
                goto usage;
        strcpy(list, argv[i + 1]);
        for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int t;

                for (t = 0; t < _BENCH_TEST_MAX; t++)
                        if ((p->tests & (1u << t)) && strcmp(tok, bench_test_names[t]) == 0)
                                break;
                if (t == _BENCH_TEST_MAX || a->n_tests == BENCH_MAX_TESTS ||
                    (t == BENCH_IDLE && strcmp(argv[i + 1], "idle") != 0))
                        goto usage;
                a->tests[a->n_tests++] = (BenchTest) t;
        }
        if (a->n_tests == 0)
                goto usage;
        if (!sizes) {
                a->sizes[0] = size;
                a->depths[0] = depth;
                a->n_sizes = 1;
        }
        for (unsigned k = 0; k < a->n_sizes; k++) {
                if (a->sizes[k] * a->depths[k] > a->max_bytes)
                        a->max_bytes = a->sizes[k] * a->depths[k];
                if (a->depths[k] > a->max_depth)
                        a->max_depth = a->depths[k];
        }
        if (!a->behind_n)
                a->behind_n = a->n;
        a->what = argv[i];
        bench_select(a, a->tests[0], 0);
        return 0;
usage:
        bench_usage(p, argv[0]);
        return 2;
}

static inline double bench_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static inline void bench_sleep(double seconds) {
        struct timespec ts = { .tv_sec = (time_t) seconds,
                               .tv_nsec = (long) ((seconds - (double) (time_t) seconds) * 1e9) };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* This process's user + system seconds, and in *RET_SLEEPS the times it went to sleep
 * (voluntary context switches: each one a wakeup after it): one getrusage() for both. */
static inline double bench_self_usage(long long *ret_sleeps) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        *ret_sleeps = ru.ru_nvcsw;
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
               (double) ru.ru_stime.tv_usec / 1e6;
}

#define BENCH_MAX_CPUS 256 /* more than a bench guest has: the guest idle time is their sum */

/* Idle + iowait seconds of each CPU since boot (/proc/stat's "cpuN" lines) into IDLE[N]; the
 * number of CPUs read, 0 when unreadable. Their sum is the whole guest's idle time. */
static inline int bench_cpu_idle_seconds(double idle[static BENCH_MAX_CPUS]) {
        unsigned long long user, nice, system, idl, iowait;
        char line[512];
        int n = 0, cpu;
        FILE *f = fopen("/proc/stat", "re");

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9' &&
                    sscanf(line, "cpu%d %llu %llu %llu %llu %llu", &cpu, &user, &nice, &system, &idl, &iowait) == 6 &&
                    cpu == n && n < BENCH_MAX_CPUS)
                        idle[n++] = (double) (idl + iowait) / (double) sysconf(_SC_CLK_TCK);
        fclose(f);
        return n;
}

/* zcusb.ko's zerocopy_bytes and bounced_bytes (/sys/bus/usb/drivers/zcusb/stats); 0 without it. */
static inline void bench_kmod_counters(unsigned long long *zc, unsigned long long *bounced) {
        char key[64];
        unsigned long long v;
        FILE *f = fopen("/sys/bus/usb/drivers/zcusb/stats", "re");

        *zc = *bounced = 0;
        if (!f)
                return;
        while (fscanf(f, "%63s %llu", key, &v) == 2) {
                if (strcmp(key, "zerocopy_bytes") == 0)
                        *zc = v;
                else if (strcmp(key, "bounced_bytes") == 0)
                        *bounced = v;
        }
        fclose(f);
}

/* utime + stime of process PID (all its threads) in seconds, -1 when unknown. */
static inline double bench_process_cpu_seconds(long pid) {
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

/* The number after KEY (a line's first word, "ctxt" or "voluntary_ctxt_switches:") in the text
 * file PATH, -1 when unreadable or absent. */
static inline long long bench_file_counter(const char *path, const char *key) {
        char line[512];
        size_t n = strlen(key);
        long long v = -1;
        FILE *f = fopen(path, "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, n) == 0 && (line[n] == ' ' || line[n] == '\t') &&
                    sscanf(line + n, "%lld", &v) == 1)
                        break;
        fclose(f);
        return v;
}

/* Voluntary context switches of process PID (its main thread: zcusbd has one), -1 when unknown. */
static inline long long bench_process_sleeps(long pid) {
        char path[64];

        if (pid <= 0)
                return -1;
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        return bench_file_counter(path, "voluntary_ctxt_switches:");
}

/* Context switches of the whole guest since boot (/proc/stat "ctxt"), -1 when unreadable. */
static inline long long bench_guest_switches(void) {
        return bench_file_counter("/proc/stat", "ctxt");
}

/* The start barrier of concurrent clients (--go FILE): once set up, a client creates
 * FILE.ready.PID and waits (polling every millisecond) until FILE exists. Whoever started the
 * clients creates FILE once every client is ready. No-op without GO. */
static inline int bench_barrier(const char *go, const char *program) {
        char ready[4096];
        struct stat st;
        int fd;

        if (!go)
                return 0;
        snprintf(ready, sizeof(ready), "%s.ready.%ld", go, (long) getpid());
        fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
                fprintf(stderr, "%s: cannot create %s: %s\n", program, ready, strerror(errno));
                return -errno;
        }
        close(fd);
        while (stat(go, &st) < 0)
                bench_sleep(0.001);
        return 0;
}

static inline double bench_sum(const double *v, int n) {
        double sum = 0;

        for (int k = 0; k < n; k++)
                sum += v[k];
        return sum;
}

/* The clocks of a measured loop: bench_start() before it, bench_stop() after. DAEMON_PID (or 0)
 * is a process whose CPU time is taken too (zcusbd). */
typedef struct BenchClock {
        long daemon_pid;
        double t0, c0, d0, gt0;
        double cpu_idle0[BENCH_MAX_CPUS];
        int n_cpus;
        unsigned long long zc0, bo0;
        long long cs0, ds0, gs0;
        double t_start, t_end, seconds, client_cpu, guest_busy, daemon_cpu;
        double cpu_busy[BENCH_MAX_CPUS];
        unsigned long long zc_bytes, bounced_bytes;
        long long client_sleeps, daemon_sleeps, guest_switches; /* -1: unknown */
} BenchClock;

static inline void bench_start(BenchClock *c, long daemon_pid) {
        c->daemon_pid = daemon_pid;
        bench_kmod_counters(&c->zc0, &c->bo0);
        c->gs0 = bench_guest_switches();
        c->ds0 = bench_process_sleeps(daemon_pid);
        c->gt0 = bench_now();
        c->n_cpus = bench_cpu_idle_seconds(c->cpu_idle0);
        c->d0 = bench_process_cpu_seconds(daemon_pid);
        c->c0 = bench_self_usage(&c->cs0);
        c->t0 = bench_now();
}

static inline void bench_stop(BenchClock *c) {
        double d1, gt1, cpu_idle1[BENCH_MAX_CPUS];
        unsigned long long zc, bo;
        long long cs1, ds1, gs1;

        c->t_end = bench_now();
        c->t_start = c->t0;
        c->seconds = c->t_end - c->t0;
        c->client_cpu = bench_self_usage(&cs1) - c->c0;
        c->client_sleeps = cs1 - c->cs0;
        ds1 = bench_process_sleeps(c->daemon_pid);
        c->daemon_sleeps = c->ds0 < 0 || ds1 < 0 ? -1 : ds1 - c->ds0;
        d1 = bench_process_cpu_seconds(c->daemon_pid);
        c->daemon_cpu = c->d0 < 0 || d1 < 0 ? -1 : d1 - c->d0;
        if (bench_cpu_idle_seconds(cpu_idle1) != c->n_cpus)
                c->n_cpus = 0;
        gt1 = bench_now();
        c->guest_busy = c->n_cpus == 0 ? -1 :
                        (gt1 - c->gt0) * (double) sysconf(_SC_NPROCESSORS_ONLN) -
                                (bench_sum(cpu_idle1, c->n_cpus) - bench_sum(c->cpu_idle0, c->n_cpus));
        if (c->guest_busy < 0 && c->n_cpus > 0)
                c->guest_busy = 0;
        for (int k = 0; k < c->n_cpus; k++) {
                c->cpu_busy[k] = (gt1 - c->gt0) - (cpu_idle1[k] - c->cpu_idle0[k]);
                if (c->cpu_busy[k] < 0)
                        c->cpu_busy[k] = 0;
        }
        bench_kmod_counters(&zc, &bo);
        c->zc_bytes = zc - c->zc0;
        c->bounced_bytes = bo - c->bo0;
        gs1 = bench_guest_switches();
        c->guest_switches = c->gs0 < 0 || gs1 < 0 ? -1 : gs1 - c->gs0;
}

/* ,"cpu_busy":[...] of C (an empty list when /proc/stat was unreadable), to F. */
static inline void bench_print_cpu_busy(FILE *f, const BenchClock *c) {
        fputs(",\"cpu_busy\":[", f);
        for (int k = 0; k < c->n_cpus; k++)
                fprintf(f, "%s%.6f", k ? "," : "", c->cpu_busy[k]);
        fputc(']', f);
}

/* The result line of a stream. CONTENDER is PREFIX followed by NAME. */
static inline void bench_print_stream(const char *prefix, const char *name, const BenchArgs *a,
                                      unsigned long long bytes, unsigned long long transfers, const BenchClock *c,
                                      const char *backend) {
        printf("{\"contender\":\"%s%s\",\"test\":\"%s\",\"size\":%lu,\"depth\":%lu,\"bytes\":%llu,\"transfers\":%llu,"
               "\"seconds\":%.6f,\"t_start\":%.6f,\"t_end\":%.6f,\"client_cpu\":%.6f,\"daemon_cpu\":%.6f,"
               "\"guest_busy\":%.6f,\"zc_bytes\":%llu,\"bounced_bytes\":%llu,\"backend\":\"%s\","
               "\"client_sleeps\":%lld,\"daemon_sleeps\":%lld,\"guest_switches\":%lld",
               prefix, name, bench_test_names[a->test], a->size, a->depth, bytes, transfers, c->seconds, c->t_start,
               c->t_end, c->client_cpu, c->daemon_cpu, c->guest_busy, c->zc_bytes, c->bounced_bytes, backend,
               c->client_sleeps, c->daemon_sleeps, c->guest_switches);
        bench_print_cpu_busy(stdout, c);
        puts("}");
        fflush(stdout);
}

static inline int bench_cmp_double(const void *x, const void *y) {
        double a = *(const double *) x, b = *(const double *) y;

        return a < b ? -1 : a > b;
}

/* The nearest-rank percentile P (0..100) of the N sorted values V. */
static inline double bench_percentile(const double *v, size_t n, double p) {
        size_t k;

        if (n == 0)
                return 0;
        k = (size_t) (p / 100.0 * (double) n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return v[k - 1];
}

/* The result line of a latency test: the N samples in SAMPLES (seconds; sorted here). */
static inline void bench_print_latency(const char *prefix, const char *name, const BenchArgs *a, double *samples,
                                       size_t n, const BenchClock *c, const char *backend) {
        qsort(samples, n, sizeof(*samples), bench_cmp_double);
        printf("{\"contender\":\"%s%s\",\"test\":\"%s\",\"size\":%lu,\"count\":%zu,\"p50_us\":%.1f,\"p90_us\":%.1f,"
               "\"p99_us\":%.1f,\"min_us\":%.1f,\"max_us\":%.1f,\"seconds\":%.6f,\"client_cpu\":%.6f,"
               "\"daemon_cpu\":%.6f,\"guest_busy\":%.6f,\"zc_bytes\":%llu,\"bounced_bytes\":%llu,"
               "\"backend\":\"%s\",\"client_sleeps\":%lld,\"daemon_sleeps\":%lld,\"guest_switches\":%lld",
               prefix, name, bench_test_names[a->test], a->size, n, bench_percentile(samples, n, 50) * 1e6,
               bench_percentile(samples, n, 90) * 1e6, bench_percentile(samples, n, 99) * 1e6,
               n ? samples[0] * 1e6 : 0, n ? samples[n - 1] * 1e6 : 0, c->seconds, c->client_cpu, c->daemon_cpu,
               c->guest_busy, c->zc_bytes, c->bounced_bytes, backend, c->client_sleeps, c->daemon_sleeps,
               c->guest_switches);
        bench_print_cpu_busy(stdout, c);
        puts("}");
        fflush(stdout);
}
