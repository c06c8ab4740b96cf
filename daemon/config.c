/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <inttypes.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <syslog.h>

#include "config.h"
#include "host-port.h"
#include "log.h"
#include "usbip-proto.h"
#include "util.h"

#define CONFIG_DEFAULT_BYTES_PER_CLIENT   (UINT64_C(256) << 20)
#define CONFIG_DEFAULT_BYTES_PER_USER     (UINT64_C(512) << 20)
#define CONFIG_DEFAULT_BYTES_GLOBAL       (UINT64_C(2) << 30)

/* usbfs memory is DMA-coherent memory. On x86 that is cached like any other;
 * on machines whose USB controller does not snoop the CPU caches it is
 * mapped uncached, and copying into and out of it costs more than usbfs's
 * own copy saves. */
#if defined(__x86_64__) || defined(__i386__)
#define CONFIG_DEFAULT_USBFS_STAGING true
#else
#define CONFIG_DEFAULT_USBFS_STAGING false
#endif

void config_init(Config *c) {
        *c = (Config) {
                .backend = BACKEND_CHOICE_AUTO,
                .load_module = true,
                .kernel_queues = true,
                .usbfs_staging = CONFIG_DEFAULT_USBFS_STAGING,
                .log_level = LOG_INFO,
                .bytes_per_client = CONFIG_DEFAULT_BYTES_PER_CLIENT,
                .bytes_per_user = CONFIG_DEFAULT_BYTES_PER_USER,
                .bytes_global = CONFIG_DEFAULT_BYTES_GLOBAL,
                .claims_per_client = 8,
                .buffers_per_client = 64,
                .queues_per_client = 8,
                .in_flight_per_client = 512,
                .clients_per_user = 64,
                .clients_global = 1024,
                .polkit_timeout_sec = 25,
                .polkit_interactive_timeout_sec = 300,
                .remote_timeout_sec = 10,
                .remote_link_timeout_sec = 30,
                .remote_max_devices = 8,
                .remote_helper_socket = CONFIG_REMOTE_HELPER_SOCKET,
        };
}

const char *backend_choice_to_string(BackendChoice b) {
        switch (b) {
        case BACKEND_CHOICE_AUTO:   return "auto";
        case BACKEND_CHOICE_USBFS:  return "usbfs";
        case BACKEND_CHOICE_MODULE: return "zcusb";
        }
        return "?";
}

typedef struct ParseState {
        Config *config;
        /* Input: exactly one of these. */
        FILE *file;
        const char *text;
        int line;       /* lines handed to inih so far */
        char *error;    /* first semantic error, without the FILE:LINE prefix */
        int error_line; /* the line it was found on */
} ParseState;

typedef int (*KeyParser)(const char *value, void *field, char **error);

typedef struct KeyInfo {
        const char *section;
        const char *key;
        KeyParser parse;
        size_t offset;
} KeyInfo;

_printf_(2, 3) static int set_error(char **error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(error, fmt, ap) < 0)
                *error = NULL;
        va_end(ap);
        return -EINVAL;
}

static int parse_backend(const char *value, void *field, char **error) {
        BackendChoice *b = field;

        if (streq(value, "auto"))
                *b = BACKEND_CHOICE_AUTO;
        else if (streq(value, "usbfs"))
                *b = BACKEND_CHOICE_USBFS;
        else if (streq(value, "zcusb"))
                *b = BACKEND_CHOICE_MODULE;
        else
                return set_error(error, "Backend=%s is not one of auto, usbfs, zcusb", value);
        return 0;
}

static int parse_bool_field(const char *value, void *field, char **error) {
        int r = parse_boolean(value);

        if (r < 0)
                return set_error(error, "'%s' is not a boolean (yes/no)", value);
        *(bool *) field = r;
        return 0;
}

static int parse_log_level(const char *value, void *field, char **error) {
        int r = log_level_from_string(value);

        if (r < 0)
                return set_error(error, "LogLevel=%s is not one of err, warning, notice, info, debug", value);
        *(int *) field = r;
        return 0;
}

static int parse_size_field(const char *value, void *field, char **error) {
        int r = parse_size(value, field);

        if (r == -ERANGE)
                return set_error(error, "size '%s' is too large", value);
        if (r < 0)
                return set_error(error, "'%s' is not a size (a number with an optional K, M, G or T suffix)", value);
        return 0;
}

static int parse_count_field(const char *value, void *field, char **error) {
        int r = safe_atou32(value, 10, field);

        if (r == -ERANGE)
                return set_error(error, "count '%s' is too large", value);
        if (r < 0)
                return set_error(error, "'%s' is not a non-negative whole number", value);
        return 0;
}

/* A number of seconds from MIN to MAX (ZERO: what 0 means, when MIN is 0);
 * the field is left as it was on error. */
static int parse_seconds_between(const char *value, void *field, char **error, uint32_t min, uint32_t max,
                                 const char *zero) {
        uint32_t v;

        if (safe_atou32(value, 10, &v) < 0 || v < min || v > max)
                return set_error(error, "'%s' is not a number of seconds from %" PRIu32 "%s to %" PRIu32, value, min,
                                 zero ? zero : "", max);
        *(uint32_t *) field = v;
        return 0;
}

/* Seconds to wait for an answer: at least 1, at most a day. */
static int parse_seconds_field(const char *value, void *field, char **error) {
        return parse_seconds_between(value, field, error, 1, 86400, NULL);
}

static int parse_text_field(const char *value, void *field, char **error) {
        if (strlen(value) >= CONFIG_TEXT_MAX)
                return set_error(error, "value is longer than %d characters", CONFIG_TEXT_MAX - 1);
        strcpy(field, value);
        return 0;
}

static int parse_remote_attach(const char *value, void *field, char **error) {
        const char *p = value, *word;
        size_t n;

        while ((word = word_list_next(&p, &n))) {
                char w[REMOTE_TARGET_MAX_LEN + 1], host[HOST_NAME_MAX_LEN + 1], busid[32];
                uint16_t port;

                if (!word_copy(word, n, w, sizeof(w)) ||
                    parse_remote_target(w, USBIP_DEFAULT_PORT, host, &port, busid) < 0 ||
                    !usbip_busid_is_valid(busid))
                        return set_error(error, "Attach=: '%.*s' is not HOST[:PORT]/BUSID (e.g. lab1:3240/1-1.2)",
                                         n > 64 ? 64 : (int) n, word);
        }
        return parse_text_field(value, field, error);
}

static int parse_helper_socket(const char *value, void *field, char **error) {
        if (value[0] != '/' || strlen(value) >= CONFIG_PATH_MAX)
                return set_error(error, "HelperSocket=%s is not an absolute path of at most %d characters", value,
                                 CONFIG_PATH_MAX - 1);
        strcpy(field, value);
        return 0;
}

static int parse_timeout_field(const char *value, void *field, char **error) {
        return parse_seconds_between(value, field, error, 1, 600, NULL);
}

static int parse_link_timeout_field(const char *value, void *field, char **error) {
        return parse_seconds_between(value, field, error, 0, 3600, " (the kernel's TCP timeouts)");
}

static const KeyInfo keys[] = {
        { "Daemon", "Backend",           parse_backend,     offsetof(Config, backend) },
        { "Daemon", "LoadModule",        parse_bool_field,  offsetof(Config, load_module) },
        { "Daemon", "KernelQueues",      parse_bool_field,  offsetof(Config, kernel_queues) },
        { "Daemon", "UsbfsStaging",      parse_bool_field,  offsetof(Config, usbfs_staging) },
        { "Daemon", "LogLevel",          parse_log_level,   offsetof(Config, log_level) },
        { "Quota",  "BytesPerClient",    parse_size_field,  offsetof(Config, bytes_per_client) },
        { "Quota",  "BytesPerUser",      parse_size_field,  offsetof(Config, bytes_per_user) },
        { "Quota",  "BytesGlobal",       parse_size_field,  offsetof(Config, bytes_global) },
        { "Quota",  "ClaimsPerClient",   parse_count_field, offsetof(Config, claims_per_client) },
        { "Quota",  "BuffersPerClient",  parse_count_field, offsetof(Config, buffers_per_client) },
        { "Quota",  "QueuesPerClient",   parse_count_field, offsetof(Config, queues_per_client) },
        { "Quota",  "InFlightPerClient", parse_count_field, offsetof(Config, in_flight_per_client) },
        { "Quota",  "ClientsPerUser",    parse_count_field, offsetof(Config, clients_per_user) },
        { "Quota",  "ClientsGlobal",     parse_count_field, offsetof(Config, clients_global) },
        { "Polkit", "TimeoutSec",        parse_seconds_field, offsetof(Config, polkit_timeout_sec) },
        { "Polkit", "InteractiveTimeoutSec", parse_seconds_field,
          offsetof(Config, polkit_interactive_timeout_sec) },
        { "Remote", "AllowHosts",        parse_text_field,  offsetof(Config, remote_allow_hosts) },
        { "Remote", "AllowUsers",        parse_text_field,  offsetof(Config, remote_allow_users) },
        { "Remote", "AllowGroups",       parse_text_field,  offsetof(Config, remote_allow_groups) },
        { "Remote", "Attach",            parse_remote_attach, offsetof(Config, remote_attach) },
        { "Remote", "TimeoutSec",        parse_timeout_field, offsetof(Config, remote_timeout_sec) },
        { "Remote", "LinkTimeoutSec",    parse_link_timeout_field, offsetof(Config, remote_link_timeout_sec) },
        { "Remote", "MaxDevices",        parse_count_field, offsetof(Config, remote_max_devices) },
        { "Remote", "HelperSocket",      parse_helper_socket, offsetof(Config, remote_helper_socket) },
};

static bool section_known(const char *section) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(keys[i].section, section))
                        return true;
        return false;
}

/* inih callback: returns 1 to continue, 0 to record an error on this line. */
static int config_handler(void *user, const char *section, const char *name, const char *value) {
        ParseState *s = user;

        if (s->error)
                return 1; /* only the first error is reported */

        /* Whatever fails below is on the line inih just read. */
        s->error_line = s->line;

        if (isempty(section)) {
                set_error(&s->error, "'%s' is outside any section; put it under [Daemon], [Quota] or [Remote]", name);
                return 0;
        }
        if (!section_known(section)) {
                set_error(&s->error, "unknown section [%s]; known sections are [Daemon], [Quota], [Polkit] and [Remote]", section);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (!streq(keys[i].section, section) || !streq(keys[i].key, name))
                        continue;
                if (isempty(value)) {
                        set_error(&s->error, "%s= needs a value", name);
                        return 0;
                }
                if (keys[i].parse(value, (uint8_t *) s->config + keys[i].offset, &s->error) < 0)
                        return 0;
                return 1;
        }
        set_error(&s->error, "unknown key '%s' in section [%s]", name, section);
        return 0;
}

/* inih reader, like fgets(): counts lines so errors found by the handler can be
 * told apart from inih's own syntax errors, which may come first. */
static char *config_reader(char *buf, int size, void *stream) {
        ParseState *s = stream;
        char *r;

        if (s->file)
                r = fgets(buf, size, s->file);
        else {
                const char *nl;
                size_t n;

                if (!*s->text)
                        return NULL;
                nl = strchr(s->text, '\n');
                n = nl ? (size_t) (nl - s->text) + 1 : strlen(s->text);
                if (n > (size_t) size - 1)
                        n = (size_t) size - 1;
                memcpy(buf, s->text, n);
                buf[n] = '\0';
                s->text += n;
                r = buf;
        }
        if (r)
                s->line++;
        return r;
}

static int config_parse_state(Config *c, ParseState *s, const char *name, char **ret_error) {
        Config copy = *c;
        int line, r = -EINVAL;

        s->config = &copy;
        line = ini_parse_stream(config_reader, s, config_handler, s);
        if (line == 0) {
                *c = copy; /* a bad file changes nothing */
                return 0;
        }
        if (line < 0) {
                r = -ENOMEM;
                if (asprintf(ret_error, "%s: out of memory", name) < 0)
                        *ret_error = NULL;
        } else if (asprintf(ret_error, "%s:%d: %s", name, line,
                            s->error && s->error_line == line ? s->error
                            : "syntax error (expected [Section] or Key=Value)") < 0)
                *ret_error = NULL;
        free(s->error);
        return r;
}

int config_parse_string(Config *c, const char *name, const char *text, char **ret_error) {
        ParseState s = { .text = text };

        return config_parse_state(c, &s, name, ret_error);
}

static int config_parse_file(Config *c, const char *path, bool must_exist, char **ret_error) {
        _cleanup_fclose_ FILE *f = NULL;
        ParseState s = {};
        int r;

        f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT && !must_exist)
                        return 0;
                r = -errno;
                if (asprintf(ret_error, "%s: cannot open: %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        s.file = f;
        return config_parse_state(c, &s, path, ret_error);
}

static int conf_filter(const struct dirent *de) {
        size_t l = strlen(de->d_name);
        return de->d_name[0] != '.' && l > 5 && streq(de->d_name + l - 5, ".conf");
}

int config_load(Config *c, const char *path, bool must_exist, char **ret_error) {
        _cleanup_free_ char *dropin_dir = NULL;
        struct dirent **entries = NULL;
        Config copy = *c;
        int n, r = 0;

        *ret_error = NULL;
        r = config_parse_file(&copy, path, must_exist, ret_error);
        if (r < 0)
                return r;

        if (asprintf(&dropin_dir, "%s.d", path) < 0)
                return -ENOMEM;
        n = scandir(dropin_dir, &entries, conf_filter, alphasort);
        if (n < 0) {
                if (errno == ENOENT)
                        goto done;
                r = -errno;
                if (asprintf(ret_error, "%s: cannot read drop-in directory: %s", dropin_dir, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *p = NULL;

                if (r >= 0) {
                        if (asprintf(&p, "%s/%s", dropin_dir, entries[i]->d_name) < 0)
                                r = -ENOMEM;
                        else
                                r = config_parse_file(&copy, p, true, ret_error);
                }
                free(entries[i]);
        }
        free(entries);
        if (r < 0)
                return r;
done:
        *c = copy;
        return 0;
}
