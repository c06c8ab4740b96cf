/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* zcusb-isodev's process plumbing: logging, the stats file, the listening socket (isodev.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "isodev.h"

void __attribute__((format(printf, 1, 2))) error_log(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, PROGRAM ": ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

void __attribute__((format(printf, 2, 3))) verbose_log(const Dev *d, const char *fmt, ...) {
        va_list ap;

        if (!d->verbose)
                return;
        fprintf(stderr, PROGRAM ": ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC + (uint64_t) ts.tv_nsec;
}

/* --- stats file --------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;

                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20)
                        fprintf(f, "\\u%04x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

static int stats_write(Dev *d) {
        char tmp[PATH_MAX];
        const Stats *s = &d->st;
        FILE *f;
        int r;

        if (!d->stats_path)
                return 0;
        if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", d->stats_path) >= sizeof(tmp))
                return -ENAMETOOLONG;
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(f,
                "{\"in_streams_started\": %" PRIu64 ", \"in_packets_sent\": %" PRIu64
                ", \"in_packets_skipped\": %" PRIu64 ", \"out_streams_started\": %" PRIu64
                ", \"out_packets\": %" PRIu64 ", \"out_bytes\": %" PRIu64 ", \"out_empty\": %" PRIu64
                ", \"out_errors\": %" PRIu64 ", \"out_first_error\": ",
                s->in_streams_started, s->in_packets_sent, s->in_packets_skipped, s->out_streams_started,
                s->out_packets, s->out_bytes, s->out_empty, s->out_errors);
        if (s->out_errors)
                json_string(f, s->out_first_error);
        else
                fputs("null", f);
        fprintf(f, ", \"configured\": %u, \"alt_setting\": %u}\n", d->configuration, d->alt);
        r = ferror(f) ? -EIO : 0;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, d->stats_path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

/* Write the stats if they changed and the last write is STATS_NS ago (or FORCE). */
void stats_flush(Dev *d, bool force) {
        uint64_t now = now_ns();
        int r;

        if (!d->stats_path || (!d->stats_dirty && !force))
                return;
        if (!force && now - d->stats_written_ns < STATS_NS)
                return;
        r = stats_write(d);
        if (r < 0 && !d->stats_failed) {
                error_log("cannot write the stats file %s: %s", d->stats_path, strerror(-r));
                d->stats_failed = true; /* said once; the device goes on */
        }
        d->stats_dirty = false;
        d->stats_written_ns = now;
}

/* poll()'s timeout: until the next stats write is due, or -1. */
int stats_timeout_ms(const Dev *d) {
        uint64_t since;

        if (!d->stats_path || !d->stats_dirty)
                return -1;
        since = now_ns() - d->stats_written_ns;
        return since >= STATS_NS ? 0 : (int) ((STATS_NS - since + 999999) / 1000000);
}

/* --- the listening socket ------------------------------------------------------------------ */

/* Listen on PATH (bound as PATH.tmp, then renamed) and return the socket, or -errno. */
int listen_at(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char tmp[sizeof(sa.sun_path)];
        struct stat stt;
        int fd, r;

        if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
                error_log("socket path %s: longer than a unix socket address takes (%zu bytes with .tmp)", path,
                    sizeof(tmp) - 1);
                return -ENAMETOOLONG;
        }
        if (lstat(path, &stt) == 0) {
                if (!S_ISSOCK(stt.st_mode)) {
                        error_log("%s exists and is not a socket: not replacing it", path);
                        return -EEXIST;
                }
                unlink(path); /* a stale socket of an earlier run */
        }
        unlink(tmp);
        memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = -errno;
                error_log("socket(AF_UNIX): %s", strerror(-r));
                return r;
        }
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                r = -errno;
                error_log("bind/listen on %s: %s", tmp, strerror(-r));
                close(fd);
                unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                error_log("rename %s to %s: %s", tmp, path, strerror(-r));
                close(fd);
                unlink(tmp);
                return r;
        }
        return fd;
}

/* Wait for one connection on LFD (or a signal on SFD): the connected socket, or -errno. */
int accept_one(int lfd, int sfd, const char *path) {
        struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
        int fd;

        for (;;) {
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        error_log("poll: %s", strerror(errno));
                        return -errno;
                }
                if (p[1].revents) {
                        error_log("stopped by a signal while waiting for QEMU to connect to %s", path);
                        return -EINTR;
                }
                fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd >= 0)
                        return fd;
                if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                        error_log("accept on %s: %s", path, strerror(errno));
                        return -errno;
                }
        }
}
