/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers in the style of systemd's macro.h/alloc-util.h, shared by the
 * daemon, the client library and the tests. */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

/* glibc's sys/queue.h lacks the BSD variant that allows removing VAR. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                         \
        for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define TAKE_PTR(p)                         \
        ({                                  \
                typeof(p) _taken_ = (p);    \
                (p) = NULL;                 \
                _taken_;                    \
        })

#define TAKE_FD(fd)                         \
        ({                                  \
                int _taken_fd_ = (fd);      \
                (fd) = -EBADF;              \
                _taken_fd_;                 \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

static inline void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

static inline void strv_freep(char ***l) {
        strv_free(*l);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

#define USEC_PER_SEC UINT64_C(1000000)

/* CLOCK_MONOTONIC in microseconds, as sd-event's timers take it. */
static inline uint64_t now_monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

static inline bool isempty(const char *s) {
        return !s || !s[0];
}

static inline const char *strempty(const char *s) {
        return s ?: "";
}

static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

/* The lists of the configuration and of udev properties: words separated by
 * spaces, tabs or commas. Returns the next word after *p (not terminated; its
 * length in *len) and moves *p past it; NULL at the end. */
static inline const char *word_list_next(const char **p, size_t *len) {
        const char *w = *p + strspn(*p, " \t,");

        *len = strcspn(w, " \t,");
        *p = w + *len;
        return *len > 0 ? w : NULL;
}

/* WORD (LEN bytes) as a string in BUF; false when it does not fit. */
static inline bool word_copy(const char *word, size_t len, char *buf, size_t size) {
        if (len >= size)
                return false;
        memcpy(buf, word, len);
        buf[len] = '\0';
        return true;
}

/* Replace *p with a copy of s (NULL allowed). Returns -ENOMEM or 0. */
static inline int free_and_strdup(char **p, const char *s) {
        char *t = NULL;

        if (s) {
                t = strdup(s);
                if (!t)
                        return -ENOMEM;
        }
        free(*p);
        *p = t;
        return 0;
}

/* Parse an unsigned decimal number that must fill the whole string. */
int safe_atou64(const char *s, unsigned base, uint64_t *ret);
int safe_atou32(const char *s, unsigned base, uint32_t *ret);
/* Parse "yes/no/true/false/on/off/1/0". */
int parse_boolean(const char *s);
/* Parse a byte size with optional binary suffix K, M, G, T (KiB, MiB… also). */
int parse_size(const char *s, uint64_t *ret);
/* Format bytes as "64M"-style text into buf. */
const char *format_size(char *buf, size_t n, uint64_t bytes);

static inline size_t strv_length(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

/* free() and return NULL, for "p = mfree_str(p)". */
static inline char *mfree_str(char *p) {
        free(p);
        return NULL;
}
