/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef enum BackendChoice {
        BACKEND_CHOICE_AUTO,   /* zcusb.ko when usable, usbfs otherwise */
        BACKEND_CHOICE_USBFS,
        BACKEND_CHOICE_MODULE, /* zcusb.ko only; claims fail without it */
} BackendChoice;

#define CONFIG_TEXT_MAX 1024
#define CONFIG_PATH_MAX 108 /* sun_path */
#define CONFIG_REMOTE_HELPER_SOCKET "/run/zcusb/remote-connect.socket"

typedef struct Config {
        BackendChoice backend;
        bool load_module;
        bool kernel_queues; /* zcusb.ko serves the queues of its claims itself */
        bool usbfs_staging; /* usbfs: stage transfers in usbfs memory (usbfs-bounce.h) */
        int log_level;

        /* Quotas. 0 means "none allowed", never "unlimited". */
        uint64_t bytes_per_client;
        uint64_t bytes_per_user;
        uint64_t bytes_global;
        uint32_t claims_per_client;
        uint32_t buffers_per_client;
        uint32_t queues_per_client;
        uint32_t in_flight_per_client;
        /* Bus connections zcusbd keeps state for (claims, subscriptions):
         * per uid and in all. root is never refused for being one too many. */
        uint32_t clients_per_user;
        uint32_t clients_global;

        /* How long zcusbd waits for polkit's answer to a claim: without and
         * with user interaction (someone typing a password). */
        uint32_t polkit_timeout_sec;
        uint32_t polkit_interactive_timeout_sec;
        /* [Remote]: USB/IP imports (remote.c). Lists as written, words
         * separated by spaces or commas, parsed where used; fixed arrays so
         * a Config stays a plain value that can be copied. */
        char remote_allow_hosts[CONFIG_TEXT_MAX];
        char remote_allow_users[CONFIG_TEXT_MAX];
        char remote_allow_groups[CONFIG_TEXT_MAX];
        char remote_attach[CONFIG_TEXT_MAX]; /* HOST[:PORT]/BUSID ... */
        uint32_t remote_timeout_sec;
        uint32_t remote_link_timeout_sec; /* 0: the kernel's TCP timeouts */
        uint32_t remote_max_devices;
        char remote_helper_socket[CONFIG_PATH_MAX];
} Config;

void config_init(Config *c);

/* Load PATH (missing is fine unless must_exist) and then PATH.d/ *.conf in
 * lexical order, later values winning. On a bad file, returns a negative errno
 * and sets *ret_error to "FILE:LINE: what is wrong". */
int config_load(Config *c, const char *path, bool must_exist, char **ret_error);

/* Parse one INI text; NAME is used in error messages. For tests and for
 * config_load. */
int config_parse_string(Config *c, const char *name, const char *text, char **ret_error);

const char *backend_choice_to_string(BackendChoice b);
