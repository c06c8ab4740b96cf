/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "host-port.h"
#include "util.h"

static bool host_char_ok(char c, bool bracketed) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '.' || c == '_' || (bracketed && c == ':');
}

int parse_host_port(const char *s, uint16_t default_port, char host[static HOST_NAME_MAX_LEN + 1],
                    uint16_t *ret_port) {
        const char *h = s, *end, *port = NULL;
        bool bracketed = s[0] == '[';
        size_t len;

        if (bracketed) {
                h = s + 1;
                end = strchr(h, ']');
                if (!end)
                        return -EINVAL;
                if (end[1] == ':')
                        port = end + 2;
                else if (end[1] != '\0')
                        return -EINVAL;
        } else {
                end = strchr(s, ':');
                if (end)
                        port = end + 1;
                else
                        end = s + strlen(s);
        }
        len = (size_t) (end - h);
        if (len == 0 || len > HOST_NAME_MAX_LEN || h[0] == '-')
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if (!host_char_ok(h[i], bracketed))
                        return -EINVAL;
        if (port) {
                uint32_t p;

                if (safe_atou32(port, 10, &p) < 0 || p == 0 || p > 65535)
                        return -EINVAL;
                *ret_port = (uint16_t) p;
        } else
                *ret_port = default_port;
        memcpy(host, h, len);
        host[len] = '\0';
        return 0;
}

int parse_remote_target(const char *s, uint16_t default_port, char host[static HOST_NAME_MAX_LEN + 1],
                        uint16_t *ret_port, char busid[static 32]) {
        _cleanup_free_ char *hp = NULL;
        const char *slash = strrchr(s, '/');

        if (!slash || strlen(slash + 1) == 0 || strlen(slash + 1) >= 32)
                return -EINVAL;
        hp = strndup(s, (size_t) (slash - s));
        if (!hp)
                return -ENOMEM;
        if (parse_host_port(hp, default_port, host, ret_port) < 0)
                return -EINVAL;
        strcpy(busid, slash + 1);
        return 0;
}

bool host_name_is_valid(const char *host) {
        size_t len = strnlen(host, HOST_NAME_MAX_LEN + 1);
        bool colon = strchr(host, ':');

        if (len == 0 || len > HOST_NAME_MAX_LEN || host[0] == '-')
                return false;
        for (size_t i = 0; i < len; i++)
                if (!host_char_ok(host[i], colon))
                        return false;
        return true;
}
