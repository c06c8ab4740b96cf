/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the VM tier's libzcusb tools (zcusb-loopback, zcusb-iso) share: their
 * messages and exit codes (client/exit-codes.h), numeric options, the options
 * both have (--help, --interface, --timeout, --json and one DEVICE), claiming
 * the interface and giving it back, a failed wait for completions.
 *
 * The including file defines `program` (its name, the prefix of every message)
 * before it includes this header.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <zcusb.h>

#include "exit-codes.h"

static inline double now_seconds(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Say "PROGRAM: MESSAGE" on stderr; returns CODE, the exit code it means. */
static inline int __attribute__((format(printf, 2, 3))) fail(int code, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

/* A failed libzcusb call: the library's sentence, else zcusb_strerror(). */
static inline int fail_lib(struct zcusb *ctx, const char *what, int r, int fallback) {
        const char *m = ctx ? zcusb_last_error_message(ctx) : "";

        return fail(exit_code_for(r, fallback), "%s: %s", what, m && *m ? m : zcusb_strerror(r));
}

/* A failed zcusb_queue_wait(): the claim's end when it ended, else the library's sentence. */
static inline int fail_wait(struct zcusb *ctx, struct zcusb_claim *claim, int r) {
        const char *reason = NULL;

        if (zcusb_claim_is_ended(claim, &reason) > 0)
                return fail(exit_code_for(r, EXIT_TRANSFER), "the claim ended (%s): %s", reason ? reason : "?",
                            zcusb_strerror(r));
        return fail_lib(ctx, "waiting for completions", r, EXIT_TRANSFER);
}

/* The argument ARG of option NAME as a number (decimal, 0x hex or 0 octal) in MIN..MAX.
 * Else a usage error "NAME: 'ARG' is not WHAT" (WHAT NULL: "a number in MIN..MAX") and -EINVAL. */
static inline int parse_number(const char *name, const char *arg, uint64_t min, uint64_t max, const char *what,
                               uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (arg && *arg && *arg != '-') {
                errno = 0;
                v = strtoull(arg, &end, 0);
                if (errno == 0 && *end == '\0' && v >= min && v <= max) {
                        *ret = v;
                        return 0;
                }
        }
        if (what)
                fail(EXIT_USAGE, "%s: '%s' is not %s", name, arg, what);
        else
                fail(EXIT_USAGE, "%s: '%s' is not a number in %" PRIu64 "..%" PRIu64, name, arg, min, max);
        return -EINVAL;
}

/* The options of every tool, first in its getopt_long() table: tool_getopt() takes them. */
#define TOOL_LONG_OPTIONS \
        { "help",          no_argument,       NULL, 'h' }, \
        { "interface",     required_argument, NULL, 'i' }, \
        { "timeout",       required_argument, NULL, 't' }, \
        { "json",          no_argument,       NULL, 'j' }

/* getopt_long() that takes TOOL_LONG_OPTIONS itself: --help prints USAGE on stdout and exits 0;
 * --interface N (0..255), --timeout MS and --json set their value. Returns the next of the
 * tool's own options, -1 after the last, or 0 after a usage error (a bad argument, an unknown
 * option: USAGE on stderr). */
static inline int tool_getopt(int argc, char **argv, const char *shortopts, const struct option *options,
                              void (*usage)(FILE *to), uint8_t *interface, unsigned *timeout_ms, bool *json) {
        uint64_t v;
        int c;

        while ((c = getopt_long(argc, argv, shortopts, options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        usage(stdout);
                        exit(EXIT_OK);
                case 'i':
                        if (parse_number("--interface", optarg, 0, 255, NULL, &v) < 0)
                                return 0;
                        *interface = (uint8_t) v;
                        break;
                case 't':
                        if (parse_number("--timeout", optarg, 0, UINT32_MAX / 2, "a number of milliseconds", &v) < 0)
                                return 0;
                        *timeout_ms = (unsigned) v;
                        break;
                case 'j':
                        *json = true;
                        break;
                case '?':
                case ':':
                        usage(stderr);
                        return 0;
                default:
                        return c;
                }
        }
        return -1;
}

/* The one DEVICE after the options. Returns EXIT_OK, else EXIT_USAGE. */
static inline int tool_device(int argc, char **argv, void (*usage)(FILE *to), const char **device) {
        if (optind != argc - 1) {
                usage(stderr);
                return fail(EXIT_USAGE, "exactly one DEVICE expected");
        }
        *device = argv[optind];
        return EXIT_OK;
}

/* Connect to zcusbd and claim DEVICE's INTERFACE. Returns EXIT_OK, else says why
 * and returns the exit code (with *CTX closed). */
static inline int open_claim(const char *device, uint8_t interface, struct zcusb **ctx, struct zcusb_claim **claim) {
        int r, code;

        r = zcusb_open(ctx);
        if (r < 0)
                return fail(EXIT_UNREACHABLE, "cannot connect to the system bus: %s", zcusb_strerror(r));
        r = zcusb_claim_interface(*ctx, device, interface, claim);
        if (r < 0) {
                code = fail_lib(*ctx, "claim", r, EXIT_FAIL);
                zcusb_close(*ctx);
                *ctx = NULL;
                return code;
        }
        return EXIT_OK;
}

/* After the run that returned CODE: flush stdout and close CTX, which releases the
 * claim and so cancels what is still in flight. Returns CODE. */
static inline int close_claim(struct zcusb *ctx, int code) {
        fflush(stdout);
        zcusb_close(ctx);
        return code;
}
