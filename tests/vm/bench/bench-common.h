/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the benchmark's two programs (libusb-bench, zcusb-bench) share: their common options and
 * arguments, the clocks of a run, and the one JSON line each prints for
 * tests/vm/bench/cases/50-bench.sh:
 *   {"contender","dir","bytes","seconds","client_cpu","daemon_cpu","backend"}
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

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

/* Whether S is one of WORDS (NULL-terminated; NULL: anything is). */
static inline bool bench_one_of(const char *s, const char *const *words) {
        if (!words)
                return true;
        for (; *words; words++)
                if (strcmp(s, *words) == 0)
                        return true;
        return false;
}

/* The options and arguments both programs take: [OPTIONS] WHAT in|out MIB. */
typedef struct BenchArgs {
        unsigned long iface, ep_in, ep_out, size, depth, timeout_ms, mib;
        const char *what; /* libusb-bench's MODE, zcusb-bench's LABEL */
        const char *dir;  /* "in" or "out" */
        uint8_t ep;       /* ep_in or ep_out, by dir */
} BenchArgs;

/* What a program adds to the common options and arguments. */
typedef struct BenchProgram {
        const char *name;            /* in its messages */
        unsigned long max_depth;     /* the largest --depth */
        /* Its own options: their synopsis before and after the common ones ("[--x X] " each, or
         * NULL), and their parser: 0 when it took OPTION VALUE, nonzero when either is bad or
         * unknown. */
        const char *usage_before, *usage_after;
        int (*option)(const char *option, const char *value, void *userdata);
        void *userdata;
        const char *const *whats;    /* the values WHAT may take, NULL-terminated; NULL: any (LABEL) */
} BenchProgram;

static inline void bench_usage(const BenchProgram *p, const char *argv0) {
        fprintf(stderr, "Usage: %s %s[--interface N] [--in EP] [--out EP] [--size N]\n"
                        "       [--depth N] [--timeout MS] %s",
                argv0, p->usage_before ?: "", p->usage_after ?: "");
        for (const char *const *w = p->whats; w && *w; w++)
                fprintf(stderr, "%s%s", w == p->whats ? "" : "|", *w);
        fprintf(stderr, "%s in|out MIB\n", p->whats ? "" : "LABEL");
}

/* Parses ARGV into A (defaults: interface 0, IN 0x81, OUT 0x02, size 65536, depth 8, timeout
 * 5000 ms), with P's own options. Returns 0, or 2 (the usage exit status) after saying what is
 * wrong. */
static inline int bench_parse_args(BenchArgs *a, int argc, char *argv[], const BenchProgram *p) {
        int i = 1;

        *a = (BenchArgs) {
                .ep_in = 0x81,
                .ep_out = 0x02,
                .size = 65536,
                .depth = 8,
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
                        bad = bench_parse_uint(v, 1ul << 24, &a->size) || a->size == 0;
                else if (strcmp(o, "--depth") == 0)
                        bad = bench_parse_uint(v, p->max_depth, &a->depth) || a->depth == 0;
                else if (strcmp(o, "--timeout") == 0)
                        bad = bench_parse_uint(v, 600000, &a->timeout_ms);
                else
                        bad = p->option(o, v, p->userdata);
                if (bad) {
                        fprintf(stderr, "%s: bad option %s %s\n", p->name, o, v);
                        return 2;
                }
        }
        if (argc - i != 3 || bench_parse_uint(argv[i + 2], 1ul << 20, &a->mib) < 0 || a->mib == 0 ||
            (strcmp(argv[i + 1], "in") != 0 && strcmp(argv[i + 1], "out") != 0) || !bench_one_of(argv[i], p->whats)) {
                bench_usage(p, argv[0]);
                return 2;
        }
        a->what = argv[i];
        a->dir = argv[i + 1];
        a->ep = (uint8_t) (strcmp(a->dir, "in") == 0 ? a->ep_in : a->ep_out);
        return 0;
}

static inline double bench_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* This process's user + system seconds. */
static inline double bench_cpu_seconds(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
               (double) ru.ru_stime.tv_usec / 1e6;
}

/* The clocks of the streaming loop: bench_start() before it, bench_stop() after. */
typedef struct BenchClock {
        double t0, c0;
        double seconds, client_cpu;
} BenchClock;

static inline void bench_start(BenchClock *c) {
        c->t0 = bench_now();
        c->c0 = bench_cpu_seconds();
}

static inline void bench_stop(BenchClock *c) {
        c->seconds = bench_now() - c->t0;
        c->client_cpu = bench_cpu_seconds() - c->c0;
}

/* The result line. CONTENDER is PREFIX followed by NAME; DAEMON_CPU is printed as given. */
static inline void bench_print_result(const char *prefix, const char *name, const char *dir, unsigned long long bytes,
                                      const BenchClock *c, const char *daemon_cpu, const char *backend) {
        printf("{\"contender\":\"%s%s\",\"dir\":\"%s\",\"bytes\":%llu,\"seconds\":%.6f,\"client_cpu\":%.6f,"
               "\"daemon_cpu\":%s,\"backend\":\"%s\"}\n",
               prefix, name, dir, bytes, c->seconds, c->client_cpu, daemon_cpu, backend);
}
