/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOST_NAME_MAX_LEN 255

/* "HOST", "HOST:PORT", "[V6ADDR]" or "[V6ADDR]:PORT" -> host (without
 * brackets) and port (DEFAULT_PORT when none). Host names are letters,
 * digits, '-', '.', '_' (and ':' inside brackets); nothing that could be an
 * option or a path. Returns 0 or -EINVAL. */
int parse_host_port(const char *s, uint16_t default_port, char host[static HOST_NAME_MAX_LEN + 1],
                    uint16_t *ret_port);

/* "HOST[:PORT]/BUSID" (the form of zcusbd.conf's Attach=). BUSID is only
 * split off here, not checked. A longer string is none: "[" HOST "]:" PORT
 * "/" BUSID. */
#define REMOTE_TARGET_MAX_LEN (1 + HOST_NAME_MAX_LEN + 2 + 5 + 1 + 31)
int parse_remote_target(const char *s, uint16_t default_port, char host[static HOST_NAME_MAX_LEN + 1],
                        uint16_t *ret_port, char busid[static 32]);

/* A host as AttachRemote takes it: a name, an IPv4 or a bare IPv6 address. */
bool host_name_is_valid(const char *host);
