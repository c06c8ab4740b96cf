/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool use_journal;

/* JOURNAL_STREAM is "DEV:INO" of the stream systemd connected to stderr; only
 * trust it while stderr still is that stream (a child may have redirected it). */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(void) {
        use_journal = stderr_is_journal();
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (streq(s, "warn"))
                return LOG_WARNING;
        return -EINVAL;
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *fmt, ...) {
        int saved_errno = errno;
        char msg[2048];
        va_list ap;

        if (error < 0)
                error = -error;

        if (level <= max_level) {
                /* %m in fmt refers to the error we were given. */
                errno = error;
                va_start(ap, fmt);
                vsnprintf(msg, sizeof(msg), fmt, ap);
                va_end(ap);

                if (use_journal) {
                        /* The caller's location, not this function's (plain
                         * sd_journal_send() would add log.c's as well). */
                        char file_s[256], line_s[32];

                        snprintf(file_s, sizeof(file_s), "CODE_FILE=%s", file);
                        snprintf(line_s, sizeof(line_s), "CODE_LINE=%d", line);
                        if (error > 0)
                                sd_journal_send_with_location(file_s, line_s, func, "MESSAGE=%s", msg,
                                                              "PRIORITY=%d", level, "ERRNO=%d", error, NULL);
                        else
                                sd_journal_send_with_location(file_s, line_s, func, "MESSAGE=%s", msg,
                                                              "PRIORITY=%d", level, NULL);
                } else
                        fprintf(stderr, "zcusbd: %s\n", msg);
        }

        errno = saved_errno;
        return error > 0 ? -error : -EIO;
}
