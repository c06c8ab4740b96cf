/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zcusbctl read / write / control: move data through zcusbd with libzcusb.
 *
 * Options, output and exit codes live here; read and write hand the moving to
 * the stream engine (ctl-stream.c).
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>

#include "ctl-polkit-agent.h"
#include "ctl-stream.h"
#include "ctl-transfer.h"
#include "devspec.h"
#include "messages.h"
#include "zcusb.h"
#include "zcusbctl.h"

#define DEFAULT_TRANSFER_SIZE (64u * 1024)
#define DEFAULT_QUEUE_DEPTH   8u
#define DEFAULT_TIMEOUT_MS    5000u
/* One buffer holds every slot: keep it within what a sane quota allows. */
#define MAX_BUFFER_BYTES      (UINT64_C(1) << 30)

typedef struct TransferArgs {
        CtlGlobal global;
        const char *command;
        const char *device;
        int interface;          /* -1: not given */
        int endpoint;           /* -1: not given */
        uint64_t bytes;
        bool have_bytes;
        uint32_t transfer_size;
        unsigned queue_depth;
        unsigned timeout_ms;
        const char *path;       /* read: --output, write: --input; "-" is stdout/stdin */
        Pattern pattern;

        int request_type;       /* control; -1: not given */
        int request;
        uint16_t value, index;
        int length;             /* -1: not given */
        const char *data_hex;
} TransferArgs;

/* ---- errors ---- */

static const char *fix_for(int r) {
        switch (-r) {
        case ENODEV:
                return ZCUSB_MSG_NO_SUCH_DEVICE_FIX;
        case EACCES:
                return "'zcusbctl info DEVICE' shows what you may claim; an administrator grants access with "
                       "udev rules (or polkit rules)";
        case EHOSTUNREACH:
        case ENOTCONN:
                return "start zcusbd with 'systemctl start zcusbd'";
        case ECONNRESET:
                return "zcusbd went away (crashed or killed?); see 'systemctl status zcusbd' and "
                       "'journalctl -u zcusbd'";
        case EBUSY:
                return "another program holds the interface, or its kernel driver may not be detached";
        case EDQUOT:
                return "use a smaller --transfer-size or --queue-depth, or free zcusbd memory held "
                       "elsewhere; 'zcusbctl status' shows the quotas";
        case EINVAL:
                return "'zcusbctl info DEVICE' lists the interfaces and endpoints";
        case ETIMEDOUT:
                return "the device moved no data in time; raise --timeout, or check that it is sending "
                       "or receiving on that endpoint";
        case EPIPE:
                return "check that the device expects this transfer; a halted bulk or interrupt endpoint "
                       "stays halted until cleared: 'zcusbctl clear-halt DEVICE --interface N --endpoint EP' "
                       "(zcusb_claim_clear_halt(), Claim.ClearHalt)";
        case EOVERFLOW:
                return "the device sent more than asked for; use a multiple of the endpoint's maximum "
                       "packet size as --transfer-size";
        case ESHUTDOWN:
                return "zcusbd stopped; start it again and retry";
        case ECANCELED:
                return "run it again and complete the authentication, or ask an administrator for a polkit "
                       "rule that grants it";
        case ENOKEY:
                return "run it again with --interactive to authenticate";
        default:
                return NULL;
        }
}

/* Report a failed libzcusb call with its sentence and a fix. */
int fail_lib(struct zcusb *ctx, int r, int fallback) {
        const char *message = zcusb_last_error_message(ctx), *fix = fix_for(r);

        int len;

        if (isempty(message))
                message = zcusb_strerror(r);
        if (!fix)
                return fail(exit_code_for(r, fallback), "%s", message);
        /* zcusbd's sentences end in a full stop; the fix goes on after it. */
        len = (int) strlen(message);
        if (len > 0 && message[len - 1] == '.')
                len--;
        return fail(exit_code_for(r, fallback), "%.*s; %s", len, message, fix);
}

/* ---- options ---- */

enum {
        ARG_BUS_ADDRESS = 0x100,
        ARG_TRANSFER_SIZE,
        ARG_QUEUE_DEPTH,
        ARG_TIMEOUT,
        ARG_INPUT,
        ARG_PATTERN,
        ARG_REQUEST_TYPE,
        ARG_REQUEST,
        ARG_VALUE,
        ARG_INDEX,
        ARG_LENGTH,
        ARG_DATA,
        ARG_INTERACTIVE,
};

#define COMMON_OPTIONS                                                          \
        { "help",          no_argument,       NULL, 'h' },                      \
        { "json",          no_argument,       NULL, 'j' },                      \
        { "bus-address",   required_argument, NULL, ARG_BUS_ADDRESS },          \
        { "interface",     required_argument, NULL, 'i' },                      \
        { "interactive",   no_argument,       NULL, ARG_INTERACTIVE },          \
        { "timeout",       required_argument, NULL, ARG_TIMEOUT }

static const struct option read_options[] = {
        COMMON_OPTIONS,
        { "endpoint",      required_argument, NULL, 'e' },
        { "bytes",         required_argument, NULL, 'n' },
        { "transfer-size", required_argument, NULL, ARG_TRANSFER_SIZE },
        { "queue-depth",   required_argument, NULL, ARG_QUEUE_DEPTH },
        { "output",        required_argument, NULL, 'o' },
        {}
};

static const struct option write_options[] = {
        COMMON_OPTIONS,
        { "endpoint",      required_argument, NULL, 'e' },
        { "bytes",         required_argument, NULL, 'n' },
        { "transfer-size", required_argument, NULL, ARG_TRANSFER_SIZE },
        { "queue-depth",   required_argument, NULL, ARG_QUEUE_DEPTH },
        { "input",         required_argument, NULL, ARG_INPUT },
        { "pattern",       required_argument, NULL, ARG_PATTERN },
        {}
};

static const struct option control_options[] = {
        COMMON_OPTIONS,
        { "request-type",  required_argument, NULL, ARG_REQUEST_TYPE },
        { "request",       required_argument, NULL, ARG_REQUEST },
        { "value",         required_argument, NULL, ARG_VALUE },
        { "index",         required_argument, NULL, ARG_INDEX },
        { "length",        required_argument, NULL, ARG_LENGTH },
        { "data",          required_argument, NULL, ARG_DATA },
        {}
};

static const struct option clear_halt_options[] = {
        COMMON_OPTIONS,
        { "endpoint",      required_argument, NULL, 'e' },
        {}
};

static void usage(const char *command) {
        if (streq(command, "read"))
                printf("Usage: zcusbctl read DEVICE --interface N --endpoint 0x81 --bytes SIZE\n"
                       "                     [--transfer-size 64K] [--queue-depth 8] [--timeout MS]\n"
                       "                     [--output FILE|-] [--json]\n\n"
                       "Read SIZE bytes from a bulk or interrupt IN endpoint, keeping --queue-depth\n"
                       "transfers of --transfer-size bytes in flight. Without --output the data is\n"
                       "discarded (a throughput test).\n");
        else if (streq(command, "write"))
                printf("Usage: zcusbctl write DEVICE --interface N --endpoint 0x02\n"
                       "                      (--input FILE|- [--bytes SIZE] | --pattern counter|zeros|random\n"
                       "                       --bytes SIZE)\n"
                       "                      [--transfer-size 64K] [--queue-depth 8] [--timeout MS] [--json]\n\n"
                       "Write to a bulk or interrupt OUT endpoint: a file (up to --bytes), or SIZE\n"
                       "bytes of a pattern (counter: byte N is N mod 256).\n");
        else if (streq(command, "clear-halt"))
                printf("Usage: zcusbctl clear-halt DEVICE --interface N --endpoint EP [--json]\n\n"
                       "Clear the halt (stall) of a bulk or interrupt endpoint of interface N, e.g.\n"
                       "after the device refused a transfer: until then every transfer on it stalls,\n"
                       "in later claims too.\n");
        else
                printf("Usage: zcusbctl control DEVICE --interface N --request-type 0xc0 --request 0x5c\n"
                       "                        [--value 0] [--index 0] [--length 64] [--data HEX]\n"
                       "                        [--timeout MS] [--json]\n\n"
                       "Send one control request through a claimed interface. IN requests (bit 7 of\n"
                       "--request-type set) print the received data as hex; OUT requests send --data.\n");
        printf("\nSIZE takes K, M, G suffixes (binary). Numbers may be hex (0x..). --timeout is per\n"
               "transfer, in ms (default %u, 0: none). --interactive lets polkit ask you to\n"
               "authenticate when the interface needs it (ZCUSB_POLKIT=1). See 'zcusbctl --help'\n"
               "for DEVICE and exit codes.\n",
               DEFAULT_TIMEOUT_MS);
}

static int parse_number(const char *option, const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v;

        if (safe_atou64(s, 0, &v) < 0 || v > max)
                return fail(EXIT_USAGE, "--%s: '%s' is not a number in 0..%" PRIu64, option, s, max);
        *ret = v;
        return EXIT_OK;
}

static int parse_byte_size(const char *option, const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t v;

        if (parse_size(s, &v) < 0 || v < min || v > max)
                return fail(EXIT_USAGE, "--%s: '%s' is not a size from %" PRIu64 " to %" PRIu64 " bytes, such as "
                            "4096, 64K or 16M", option, s, min, max);
        *ret = v;
        return EXIT_OK;
}

/* Parse ARGV (ARGV[0] is the command) into *A. Returns EXIT_OK, an error
 * code, or -1 after printing help. */
static int parse_args(const CtlGlobal *global, int argc, char **argv, TransferArgs *a) {
        const char *command = argv[0];
        const struct option *options = streq(command, "read")       ? read_options :
                                       streq(command, "write")      ? write_options :
                                       streq(command, "clear-halt") ? clear_halt_options : control_options;
        const char *why = NULL;
        DevSpec spec;
        uint64_t v = 0;
        int c, r;

        *a = (TransferArgs) {
                .global = *global,
                .command = command,
                .interface = -1,
                .endpoint = -1,
                .transfer_size = DEFAULT_TRANSFER_SIZE,
                .queue_depth = DEFAULT_QUEUE_DEPTH,
                .timeout_ms = DEFAULT_TIMEOUT_MS,
                .request_type = -1,
                .request = -1,
                .length = -1,
        };

        optind = 0; /* main() ran getopt already: start over */
        opterr = 0;
        while ((c = getopt_long(argc, argv, "hji:e:n:o:", options, NULL)) >= 0) {
                r = EXIT_OK;
                switch (c) {
                case 'h':
                        usage(command);
                        return -1;
                case 'j':
                        a->global.json = true;
                        break;
                case ARG_BUS_ADDRESS:
                        a->global.bus_address = optarg;
                        break;
                case ARG_INTERACTIVE:
                        a->global.interactive = true;
                        break;
                case 'i':
                        r = parse_number("interface", optarg, UINT8_MAX, &v);
                        a->interface = (int) v;
                        break;
                case 'e':
                        r = parse_number("endpoint", optarg, UINT8_MAX, &v);
                        a->endpoint = (int) v;
                        break;
                case 'n':
                        r = parse_byte_size("bytes", optarg, 1, UINT64_MAX >> 1, &a->bytes);
                        a->have_bytes = true;
                        break;
                case ARG_TRANSFER_SIZE:
                        r = parse_byte_size("transfer-size", optarg, 1, UINT32_MAX, &v);
                        a->transfer_size = (uint32_t) v;
                        break;
                case ARG_QUEUE_DEPTH:
                        r = parse_number("queue-depth", optarg, ZCUSB_RING_MAX_ENTRIES, &v);
                        if (r == EXIT_OK && v == 0)
                                r = fail(EXIT_USAGE, "--queue-depth must be at least 1");
                        a->queue_depth = (unsigned) v;
                        break;
                case ARG_TIMEOUT:
                        r = parse_number("timeout", optarg, UINT32_MAX - IDLE_SLACK_MS, &v);
                        a->timeout_ms = (unsigned) v;
                        break;
                case 'o':
                case ARG_INPUT:
                        a->path = optarg;
                        break;
                case ARG_PATTERN:
                        if (streq(optarg, "counter"))
                                a->pattern = PATTERN_COUNTER;
                        else if (streq(optarg, "zeros"))
                                a->pattern = PATTERN_ZEROS;
                        else if (streq(optarg, "random"))
                                a->pattern = PATTERN_RANDOM;
                        else
                                r = fail(EXIT_USAGE, "--pattern: '%s' is not one of counter, zeros, random", optarg);
                        break;
                case ARG_REQUEST_TYPE:
                        r = parse_number("request-type", optarg, UINT8_MAX, &v);
                        a->request_type = (int) v;
                        break;
                case ARG_REQUEST:
                        r = parse_number("request", optarg, UINT8_MAX, &v);
                        a->request = (int) v;
                        break;
                case ARG_VALUE:
                        r = parse_number("value", optarg, UINT16_MAX, &v);
                        a->value = (uint16_t) v;
                        break;
                case ARG_INDEX:
                        r = parse_number("index", optarg, UINT16_MAX, &v);
                        a->index = (uint16_t) v;
                        break;
                case ARG_LENGTH:
                        r = parse_number("length", optarg, UINT16_MAX, &v);
                        a->length = (int) v;
                        break;
                case ARG_DATA:
                        a->data_hex = optarg;
                        break;
                default:
                        return fail(EXIT_USAGE, "'%s': unknown option or missing value; see 'zcusbctl %s --help'",
                                    argv[optind - 1], command);
                }
                if (r != EXIT_OK)
                        return r;
        }

        if (optind != argc - 1)
                return fail(EXIT_USAGE, "'%s' takes exactly one DEVICE; see 'zcusbctl %s --help'", command, command);
        a->device = argv[optind];
        if (devspec_parse(a->device, &spec, &why) < 0)
                return fail(EXIT_USAGE, "'%s' is not a device name: %s", a->device, why);
        if (a->interface < 0)
                return fail(EXIT_USAGE, "'%s' needs --interface N; 'zcusbctl info %s' lists the interfaces",
                            command, a->device);
        return EXIT_OK;
}

/* ---- connection ---- */

static int connect_and_claim(const TransferArgs *a, struct zcusb **ret_ctx, struct zcusb_claim **ret_claim) {
        struct zcusb *ctx = NULL;
        int r, code;

        r = a->global.bus_address ? zcusb_open_address(a->global.bus_address, &ctx) : zcusb_open(&ctx);
        if (r < 0)
                return fail(EXIT_UNREACHABLE, "cannot connect to the %s bus: %s; is dbus running?",
                            a->global.bus_address ?: "system", strerror(-r));
        /* At a terminal, an interactive claim gets a text agent for the
         * password prompt, for the claim only. */
        pid_t agent = a->global.interactive ? polkit_agent_open() : 0;
        r = zcusb_claim_interface_with_flags(ctx, a->device, (uint8_t) a->interface,
                                             a->global.interactive ? ZCUSB_CLAIM_INTERACTIVE : 0, ret_claim);
        polkit_agent_close(agent);
        if (r < 0) {
                code = fail_lib(ctx, r, EXIT_FAIL);
                zcusb_close(ctx);
                return code;
        }
        *ret_ctx = ctx;
        return EXIT_OK;
}

static void context_closep(struct zcusb **ctx) {
        zcusb_close(*ctx); /* releases the claim too */
}

/* ---- read / write ---- */

static void print_summary(const TransferArgs *a, const StreamResult *res, FILE *to) {
        double seconds = res->seconds, mb_per_s = seconds > 0 ? (double) res->moved / seconds / 1e6 : 0.0;

        if (a->global.json) {
                json_object *o = json_object_new_object();
                char text[32];

                json_object_object_add(o, "bytes", json_object_new_uint64(res->moved));
                /* json-c prints doubles with 17 digits; these carry 6 and 3. */
                snprintf(text, sizeof(text), "%.6f", seconds);
                json_object_object_add(o, "seconds", json_object_new_double_s(seconds, text));
                snprintf(text, sizeof(text), "%.3f", mb_per_s);
                json_object_object_add(o, "mb_per_s", json_object_new_double_s(mb_per_s, text));
                json_object_object_add(o, "transfers", json_object_new_uint64(res->transfers));
                json_object_object_add(o, "errors", json_object_new_uint64(res->errors));
                fprintf(to, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
        } else
                fprintf(to, "%" PRIu64 " bytes in %.3f s, %.1f MB/s\n", res->moved, seconds, mb_per_s);
        fflush(to);
}

static int read_or_write(const TransferArgs *a, bool in) {
        _cleanup_(context_closep) struct zcusb *ctx = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct zcusb_claim *claim = NULL;
        struct zcusb_endpoint ep;
        StreamParams p;
        StreamResult res;
        int r;

        if (a->endpoint < 0)
                return fail(EXIT_USAGE, "'%s' needs --endpoint ADDRESS, e.g. %s; 'zcusbctl info %s' lists them",
                            a->command, in ? "0x81" : "0x02", a->device);
        if (in != !!(a->endpoint & ZCUSB_ENDPOINT_DIR_IN))
                return fail(EXIT_USAGE, "endpoint 0x%02x is an %s endpoint; '%s' needs an %s endpoint (bit 7 %s)",
                            a->endpoint, in ? "OUT" : "IN", a->command, in ? "IN" : "OUT", in ? "set" : "clear");
        if (in && !a->have_bytes)
                return fail(EXIT_USAGE, "'read' needs --bytes SIZE, e.g. --bytes 64M");
        if (!in && !a->path && a->pattern == PATTERN_NONE)
                return fail(EXIT_USAGE, "'write' needs --input FILE or --pattern counter|zeros|random");
        if (!in && a->path && a->pattern != PATTERN_NONE)
                return fail(EXIT_USAGE, "'write' takes --input or --pattern, not both");
        if (!in && a->pattern != PATTERN_NONE && !a->have_bytes)
                return fail(EXIT_USAGE, "--pattern needs --bytes SIZE, e.g. --bytes 64M");
        if ((uint64_t) a->transfer_size * a->queue_depth > MAX_BUFFER_BYTES)
                return fail(EXIT_USAGE, "--transfer-size times --queue-depth is over 1G; make one of them smaller");

        if (a->path && !streq(a->path, "-")) {
                fd = in ? open(a->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)
                        : open(a->path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return fail(EXIT_FAIL, "cannot open %s: %s", a->path, strerror(errno));
        }

        r = connect_and_claim(a, &ctx, &claim);
        if (r != EXIT_OK)
                return r;

        r = zcusb_claim_get_endpoint(claim, (uint8_t) a->endpoint, &ep);
        if (r == -ENOENT)
                return fail(EXIT_USAGE, "%s; 'zcusbctl info %s' lists the endpoints", zcusb_last_error_message(ctx),
                            a->device);
        if (r < 0)
                return fail_lib(ctx, r, EXIT_FAIL);
        if ((ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) != ZCUSB_ENDPOINT_TYPE_BULK &&
            (ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) != ZCUSB_ENDPOINT_TYPE_INTERRUPT)
                return fail(EXIT_USAGE, "endpoint 0x%02x is isochronous; '%s' moves bulk and interrupt data only",
                            a->endpoint, a->command);

        p = (StreamParams) {
                .in = in,
                .endpoint = (uint8_t) a->endpoint,
                .opcode = (ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) == ZCUSB_ENDPOINT_TYPE_BULK ? ZCUSB_OP_BULK
                                                                                          : ZCUSB_OP_INTERRUPT,
                .transfer_size = a->transfer_size,
                .queue_depth = a->queue_depth,
                .timeout_ms = a->timeout_ms,
                .total = a->have_bytes ? a->bytes : UINT64_MAX,
                .fd = fd >= 0 ? fd : a->path ? (in ? STDOUT_FILENO : STDIN_FILENO) : -1,
                .fd_name = a->path && !streq(a->path, "-") ? a->path : in ? "standard output" : "standard input",
                .pattern = a->pattern,
        };
        r = stream_run(ctx, claim, &p, &res);
        if (r != EXIT_OK)
                return r;

        /* stdout carries the data when reading to "-": the summary moves aside. */
        print_summary(a, &res, in && p.fd == STDOUT_FILENO ? stderr : stdout);

        if (res.error == -EPROTO) {
                /* A device pulled out mid-transfer fails its last URBs with a
                 * bus error before the kernel reports the disconnect: give
                 * zcusbd a moment to say whether that is what happened. */
                for (int i = 0; i < 40; i++) { /* up to 2 s: udev's remove lags under load */
                        const char *why = NULL;

                        if (zcusb_claim_is_ended(claim, &why) > 0) {
                                if (why && streq(why, "device-removed"))
                                        res.error = -ENODEV;
                                break;
                        }
                        (void) usleep(50 * 1000);
                }
        }
        if (res.error != 0) {
                const char *fix = fix_for(res.error);
                return fail(exit_code_for(res.error, EXIT_TRANSFER),
                            "transfer %" PRIu64 " on endpoint 0x%02x failed: %s%s%s", res.error_seq, a->endpoint,
                            zcusb_strerror(res.error), fix ? "; " : "", strempty(fix));
        }
        return EXIT_OK;
}

int ctl_read(const CtlGlobal *global, int argc, char **argv) {
        TransferArgs a;
        int r = parse_args(global, argc, argv, &a);

        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        if (a.pattern != PATTERN_NONE)
                return fail(EXIT_USAGE, "--pattern is for 'write'");
        return read_or_write(&a, true);
}

int ctl_write(const CtlGlobal *global, int argc, char **argv) {
        TransferArgs a;
        int r = parse_args(global, argc, argv, &a);

        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        return read_or_write(&a, false);
}

/* ---- control ---- */

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* "0102ff", "01 02 ff" or "01:02:ff" -> bytes. */
static int parse_hex(const char *s, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ uint8_t *buf = malloc(strlen(s) / 2 + 1);
        size_t n = 0;

        if (!buf)
                return -ENOMEM;
        while (*s) {
                int hi, lo;

                if (*s == ' ' || *s == ':') {
                        s++;
                        continue;
                }
                hi = hex_digit(s[0]);
                lo = hi >= 0 ? hex_digit(s[1]) : -1;
                if (lo < 0)
                        return -EINVAL;
                buf[n++] = (uint8_t) (hi << 4 | lo);
                s += 2;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

static char *hex_string(const uint8_t *p, size_t n) {
        char *s = malloc(2 * n + 1);

        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++)
                snprintf(s + 2 * i, 3, "%02x", p[i]);
        s[2 * n] = '\0';
        return s;
}

int ctl_control(const CtlGlobal *global, int argc, char **argv) {
        _cleanup_(context_closep) struct zcusb *ctx = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *hex = NULL;
        struct zcusb_claim *claim = NULL;
        size_t data_len = 0;
        uint32_t actual = 0;
        uint16_t length;
        TransferArgs a;
        bool in;
        int r;

        r = parse_args(global, argc, argv, &a);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        if (a.request_type < 0 || a.request < 0)
                return fail(EXIT_USAGE, "'control' needs --request-type and --request, e.g. --request-type 0xc0 "
                            "--request 0x5c");
        in = a.request_type & ZCUSB_ENDPOINT_DIR_IN;

        if (in) {
                if (a.data_hex)
                        return fail(EXIT_USAGE, "--data is for OUT requests; bit 7 of --request-type 0x%02x "
                                    "makes this an IN request", a.request_type);
                length = a.length < 0 ? 0 : (uint16_t) a.length;
                data = malloc(length ? length : 1);
                if (!data)
                        return fail(EXIT_FAIL, "out of memory");
        } else {
                if (a.data_hex) {
                        r = parse_hex(a.data_hex, &data, &data_len);
                        if (r == -ENOMEM)
                                return fail(EXIT_FAIL, "out of memory");
                        if (r < 0)
                                return fail(EXIT_USAGE, "--data: '%s' is not hex bytes (e.g. 0102ff)", a.data_hex);
                        if (data_len > UINT16_MAX)
                                return fail(EXIT_USAGE, "--data: a control transfer carries at most 65535 bytes");
                }
                if (a.length >= 0 && (size_t) a.length != data_len)
                        return fail(EXIT_USAGE, "--length %d differs from the %zu bytes of --data; leave --length "
                                    "out for OUT requests", a.length, data_len);
                length = (uint16_t) data_len;
        }

        r = connect_and_claim(&a, &ctx, &claim);
        if (r != EXIT_OK)
                return r;

        r = zcusb_control_transfer(claim, (uint8_t) a.request_type, (uint8_t) a.request, a.value, a.index, data,
                                   length, a.timeout_ms, &actual);
        if (r < 0)
                return fail_lib(ctx, r, EXIT_TRANSFER);

        if (in) {
                hex = hex_string(data, actual);
                if (!hex)
                        return fail(EXIT_FAIL, "out of memory");
        }
        if (a.global.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "request_type", json_object_new_int(a.request_type));
                json_object_object_add(o, "request", json_object_new_int(a.request));
                json_object_object_add(o, "value", json_object_new_int(a.value));
                json_object_object_add(o, "index", json_object_new_int(a.index));
                json_object_object_add(o, "length", json_object_new_int(length));
                json_object_object_add(o, "actual_length", json_object_new_int64(actual));
                if (in)
                        json_object_object_add(o, "data", json_object_new_string(hex));
                printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
        } else if (in)
                printf("%s\n", hex);
        return EXIT_OK;
}

/* ---- clear-halt ---- */

int ctl_clear_halt(const CtlGlobal *global, int argc, char **argv) {
        _cleanup_(context_closep) struct zcusb *ctx = NULL;
        struct zcusb_claim *claim = NULL;
        struct zcusb_endpoint ep;
        TransferArgs a;
        int r;

        r = parse_args(global, argc, argv, &a);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        if (a.endpoint < 0)
                return fail(EXIT_USAGE, "'clear-halt' needs --endpoint ADDRESS, e.g. 0x81; 'zcusbctl info %s' "
                            "lists them", a.device);
        if ((a.endpoint & 0x0f) == 0)
                return fail(EXIT_USAGE, "endpoint 0 cannot halt for good; give a bulk or interrupt endpoint");

        r = connect_and_claim(&a, &ctx, &claim);
        if (r != EXIT_OK)
                return r;
        r = zcusb_claim_get_endpoint(claim, (uint8_t) a.endpoint, &ep);
        if (r == -ENOENT)
                return fail(EXIT_USAGE, "%s; 'zcusbctl info %s' lists the endpoints", zcusb_last_error_message(ctx),
                            a.device);
        if (r < 0)
                return fail_lib(ctx, r, EXIT_FAIL);
        r = zcusb_claim_clear_halt(claim, (uint8_t) a.endpoint);
        if (r < 0)
                return fail_lib(ctx, r, EXIT_FAIL);
        if (a.global.json)
                printf("{\"endpoint\":%d,\"cleared\":true}\n", a.endpoint);
        else
                printf("Cleared the halt of endpoint 0x%02x of interface %d.\n", a.endpoint, a.interface);
        return EXIT_OK;
}
