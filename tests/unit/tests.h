/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Minimal test helpers: a failed check prints where and aborts the test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define check(expr)                                                                   \
        do {                                                                          \
                if (!(expr)) {                                                        \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                      \
                }                                                                     \
        } while (0)

#define check_streq(a, b)                                                             \
        do {                                                                          \
                const char *_a = (a), *_b = (b);                                      \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                              \
                        fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
                                _a ? _a : "(null)", _b ? _b : "(null)");              \
                        abort();                                                      \
                }                                                                     \
        } while (0)

#define RUN(t)                                 \
        do {                                   \
                t();                           \
                printf("ok - %s\n", #t);       \
                fflush(stdout);                \
        } while (0)
