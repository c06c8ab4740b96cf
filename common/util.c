/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>

#include "util.h"

int safe_atou64(const char *s, unsigned base, uint64_t *ret) {
        char *end = NULL;
        unsigned long long v;

        if (isempty(s) || isspace((unsigned char) s[0]) || s[0] == '-' || s[0] == '+')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, base);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || !end || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int safe_atou32(const char *s, unsigned base, uint32_t *ret) {
        uint64_t v;
        int r;

        r = safe_atou64(s, base, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                unsigned shift;
        } table[] = {
                { "",    0 },
                { "B",   0 },
                { "K",   10 }, { "KiB", 10 },
                { "M",   20 }, { "MiB", 20 },
                { "G",   30 }, { "GiB", 30 },
                { "T",   40 }, { "TiB", 40 },
        };
        const char *p = s;
        uint64_t v = 0;

        if (isempty(s))
                return -EINVAL;
        if (!isdigit((unsigned char) *p))
                return -EINVAL;
        for (; isdigit((unsigned char) *p); p++) {
                unsigned d = (unsigned) (*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                if (strcmp(p, table[i].suffix) != 0)
                        continue;
                if (table[i].shift && v > (UINT64_MAX >> table[i].shift))
                        return -ERANGE;
                *ret = v << table[i].shift;
                return 0;
        }
        return -EINVAL;
}

const char *format_size(char *buf, size_t n, uint64_t bytes) {
        static const char units[] = "KMGT";
        unsigned i = 0;

        if (bytes == 0 || bytes % 1024 != 0) {
                snprintf(buf, n, "%" PRIu64, bytes);
                return buf;
        }
        bytes /= 1024;
        while (i + 1 < strlen(units) && bytes % 1024 == 0 && bytes >= 1024) {
                bytes /= 1024;
                i++;
        }
        snprintf(buf, n, "%" PRIu64 "%c", bytes, units[i]);
        return buf;
}
