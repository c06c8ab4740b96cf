/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "ctl-device.h"
#include "ctl-remote.h"
#include "ctl-transfer.h"
#include "devspec.h"
#include "messages.h"
#include "util.h"
#include "zcusb-dbus.h"
#include "zcusbctl.h"

bool arg_json;
static bool arg_interactive;
static const char *arg_bus_address;

static void help(void) {
        printf("Usage: zcusbctl [OPTIONS] COMMAND [ARGS]\n\n"
               "Query zcusbd, the zero-copy USB broker (org.zcusb1).\n\n"
               "Commands:\n"
               "  list                 List the USB devices you may see\n"
               "  info DEVICE          Show a device, its interfaces and endpoints, and what\n"
               "                       you may claim\n"
               "  monitor              Print devices as they are added and removed, until\n"
               "                       interrupted\n"
               "  status               Show daemon version, backend and quota defaults\n"
               "  read DEVICE -i N -e EP --bytes SIZE [--transfer-size 64K] [--queue-depth 8]\n"
               "       [--timeout MS] [--output FILE|-]\n"
               "                       Claim interface N and read SIZE bytes from IN endpoint EP\n"
               "  write DEVICE -i N -e EP (--input FILE|- | --pattern counter|zeros|random\n"
               "       --bytes SIZE) [--transfer-size 64K] [--queue-depth 8] [--timeout MS]\n"
               "                       Claim interface N and write to OUT endpoint EP\n"
               "  control DEVICE -i N --request-type T --request R [--value V] [--index I]\n"
               "       [--length L | --data HEX] [--timeout MS]\n"
               "                       Claim interface N and send one control request; prints\n"
               "                       the data an IN request returns as hex\n"
               "  clear-halt DEVICE -i N -e EP\n"
               "                       Claim interface N and clear the halt (stall) of endpoint EP\n"
               "  attach HOST[:PORT] BUSID\n"
               "                       Have zcusbd import a USB/IP device (port 3240 by\n"
               "                       default) and print its local DEVICE\n"
               "  detach DEVICE        Detach a remote device zcusbd imported\n"
               "  remote               List zcusbd's remote devices and their state\n"
               "  (read/write/control print a summary; 'zcusbctl COMMAND --help' has details)\n\n"
               "DEVICE is one of:\n"
               "  /org/zcusb1/device/usb1_3   object path\n"
               "  001:003                     BUS:ADDR as lsusb prints it (decimal)\n"
               "  0525:a4a0[:SERIAL]          VID:PID (hex), optionally with serial\n"
               "  /sys/bus/usb/devices/1-1    sysfs path\n\n"
               "Options:\n"
               "  -h --help            Show this help\n"
               "     --version         Show the version\n"
               "  -j --json            Print JSON (one object per line for monitor)\n"
               "     --bus-address=A   Talk to zcusbd on D-Bus address A instead of the\n"
               "                       system bus (DBUS_SYSTEM_BUS_ADDRESS also works)\n"
               "     --interactive     Claims may ask you to authenticate (polkit), for\n"
               "                       interfaces marked ZCUSB_POLKIT=1\n\n"
               "Exit status: 0 success, 1 failure, 2 usage error, 3 no such device,\n"
               "4 access denied, 5 zcusbd or the bus unreachable, 6 a transfer failed.\n");
}

int fail(int code, const char *fmt, ...) {
        va_list ap;

        fputs("zcusbctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

/* Map a failed call to an exit code and a message naming cause and fix. */
int fail_bus(int r, const sd_bus_error *e, const char *what) {
        if (sd_bus_error_has_names(e, ZCUSB_ERROR_ACCESS_DENIED, ZCUSB_ERROR_HOST_NOT_ALLOWED))
                return fail(EXIT_ACCESS, "%s: access denied: %s", what, e->message);
        if (sd_bus_error_has_name(e, ZCUSB_ERROR_NO_SUCH_DEVICE) ||
            sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_OBJECT))
                return fail(EXIT_NO_DEVICE, "%s: no such device%s%s", what, e->message ? ": " : "",
                            strempty(e->message));
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                   SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED))
                return fail(EXIT_UNREACHABLE, "%s: zcusbd is not reachable (%s); start it with "
                            "'systemctl start zcusbd'", what, strempty(e->message));
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED))
                return fail(EXIT_ACCESS, "%s: the bus refused the call: %s", what, strempty(e->message));
        if (sd_bus_error_is_set(e))
                return fail(EXIT_FAIL, "%s: %s (%s)", what, strempty(e->message), e->name);
        return fail(EXIT_FAIL, "%s: %s", what, strerror(r < 0 ? -r : r));
}

static int connect_bus(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (arg_bus_address) {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, arg_bus_address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
        } else
                r = sd_bus_open_system(&bus);
        if (r < 0)
                return fail(EXIT_UNREACHABLE, "cannot connect to the %s bus: %s; is dbus running?",
                            arg_bus_address ? arg_bus_address : "system", strerror(-r));
        *ret = TAKE_PTR(bus);
        return EXIT_OK;
}

static void print_json(json_object *o) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ListDevices -> object paths. */
static int list_objects(sd_bus *bus, char ***ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **l = NULL;
        const char *path;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE, "ListDevices",
                               &error, &reply, "");
        if (r < 0)
                return fail_bus(r, &error, "listing devices");
        r = sd_bus_message_enter_container(reply, 'a', "(oqqqqsss)");
        if (r < 0)
                return fail(EXIT_FAIL, "malformed reply from zcusbd: %s", strerror(-r));
        l = calloc(1, sizeof(char *));
        if (!l)
                return fail(EXIT_FAIL, "out of memory");
        while ((r = sd_bus_message_read(reply, "(oqqqqsss)", &path, NULL, NULL, NULL, NULL, NULL, NULL, NULL)) > 0) {
                char **nl = realloc(l, (n + 2) * sizeof(char *));
                if (!nl)
                        return fail(EXIT_FAIL, "out of memory");
                l = nl;
                l[n] = strdup(path);
                l[++n] = NULL;
                if (!l[n - 1])
                        return fail(EXIT_FAIL, "out of memory");
        }
        if (r < 0)
                return fail(EXIT_FAIL, "malformed reply from zcusbd: %s", strerror(-r));
        *ret = TAKE_PTR(l);
        return EXIT_OK;
}

static int cmd_list(sd_bus *bus, int argc, char **argv) {
        _cleanup_strv_free_ char **objects = NULL;
        json_object *array = NULL;
        int r;

        (void) argv;
        if (argc != 1)
                return fail(EXIT_USAGE, "'list' takes no arguments");
        r = list_objects(bus, &objects);
        if (r != EXIT_OK)
                return r;

        if (arg_json)
                array = json_object_new_array();
        else
                printf("%-8s  %-9s  %-10s  %-30s  %s\n", "BUS:ADDR", "VID:PID", "SPEED", "OBJECT", "PRODUCT");

        for (char **o = objects; *o; o++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                CtlDevice d;

                r = ctl_device_read(bus, *o, false, &d, &error);
                if (r < 0) {
                        /* Unplugged since ListDevices: not an error. */
                        if (sd_bus_error_has_name(&error, ZCUSB_ERROR_NO_SUCH_DEVICE))
                                continue;
                        json_object_put(array);
                        return fail_bus(r, &error, *o);
                }
                if (arg_json)
                        json_object_array_add(array, ctl_device_to_json(&d, false));
                else
                        printf("%03u:%03u   %04x:%04x  %-10s  %-30s  %s\n", d.bus, d.address, d.vendor_id,
                               d.product_id, d.speed, d.object, d.product);
                ctl_device_done(&d);
        }
        if (arg_json) {
                print_json(array);
                json_object_put(array);
        }
        return EXIT_OK;
}

/* Find the object path for a DEVICE argument. */
int resolve_device(sd_bus *bus, const char *arg, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_strv_free_ char **objects = NULL;
        _cleanup_free_ char *found = NULL;
        const char *why = NULL;
        DevSpec spec;
        int r;

        if (devspec_parse(arg, &spec, &why) < 0)
                return fail(EXIT_USAGE, "'%s' is not a device name: %s", arg, why);

        if (spec.kind == DEVSPEC_OBJECT_PATH) {
                found = strdup(spec.path);
                if (!found)
                        return fail(EXIT_FAIL, "out of memory");
        } else if (spec.kind == DEVSPEC_BUS_ADDRESS) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *path;

                r = sd_bus_call_method(bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                       "GetDevice", &error, &reply, "qq", spec.bus, spec.address);
                if (r < 0)
                        return fail_bus(r, &error, arg);
                r = sd_bus_message_read(reply, "o", &path);
                if (r < 0)
                        return fail(EXIT_FAIL, "malformed reply from zcusbd: %s", strerror(-r));
                found = strdup(path);
                if (!found)
                        return fail(EXIT_FAIL, "out of memory");
        } else {
                const char *want_name = spec.kind == DEVSPEC_SYSFS ? devspec_sysfs_name(spec.path) : NULL;
                size_t matches = 0;

                r = list_objects(bus, &objects);
                if (r != EXIT_OK)
                        return r;
                for (char **o = objects; *o; o++) {
                        CtlDevice d;
                        bool match;

                        sd_bus_error_free(&error);
                        if (ctl_device_read(bus, *o, false, &d, &error) < 0)
                                continue;
                        if (spec.kind == DEVSPEC_SYSFS)
                                match = streq(d.sysfs_path, spec.path) || streq(d.port_path, want_name);
                        else
                                match = d.vendor_id == spec.vendor_id && d.product_id == spec.product_id &&
                                        (!spec.serial || streq(d.serial, spec.serial));
                        ctl_device_done(&d);
                        if (!match)
                                continue;
                        if (++matches == 1 && free_and_strdup(&found, *o) < 0)
                                return fail(EXIT_FAIL, "out of memory");
                }
                if (matches == 0)
                        return fail(EXIT_NO_DEVICE, "%s: " ZCUSB_MSG_NO_SUCH_DEVICE "; " ZCUSB_MSG_NO_SUCH_DEVICE_FIX,
                                    arg);
                if (matches > 1)
                        return fail(EXIT_USAGE, "%s matches %zu devices; name one by BUS:ADDR or "
                                    "VID:PID:SERIAL", arg, matches);
        }
        *ret = TAKE_PTR(found);
        return EXIT_OK;
}

static int cmd_info(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *object = NULL;
        CtlDevice d;
        int r;

        if (argc != 2)
                return fail(EXIT_USAGE, "'info' takes one DEVICE; see 'zcusbctl --help'");
        r = resolve_device(bus, argv[1], &object);
        if (r != EXIT_OK)
                return r;
        r = ctl_device_read(bus, object, true, &d, &error);
        if (r < 0)
                return fail_bus(r, &error, argv[1]);
        if (arg_json) {
                json_object *o = ctl_device_to_json(&d, true);
                print_json(o);
                json_object_put(o);
        } else
                ctl_device_print(&d);
        ctl_device_done(&d);
        return EXIT_OK;
}

static int cmd_status(sd_bus *bus, int argc, char **argv) {
        static const struct {
                const char *property, *json, *label;
                char type;
        } props[] = {
                { "Version",              "version",              "Version",                 's' },
                { "Backend",              "backend",              "Backend",                 's' },
                { "ModuleVersion",        "module_version",       "Module version",          's' },
                { "QuotaBytesPerClient",  "bytes_per_client",     "Bytes per client",        't' },
                { "QuotaBytesPerUser",    "bytes_per_user",       "Bytes per user",          't' },
                { "QuotaBytesGlobal",     "bytes_global",         "Bytes in all",            't' },
                { "MaxClaimsPerClient",   "claims_per_client",    "Claims per client",       'u' },
                { "MaxBuffersPerClient",  "buffers_per_client",   "Buffers per client",      'u' },
                { "MaxQueuesPerClient",   "queues_per_client",    "Queues per client",       'u' },
                { "MaxInFlightPerClient", "in_flight_per_client", "In-flight per client",    'u' },
        };
        json_object *o = NULL, *quota = NULL;

        (void) argv;
        if (argc != 1)
                return fail(EXIT_USAGE, "'status' takes no arguments");
        if (arg_json) {
                o = json_object_new_object();
                quota = json_object_new_object();
        }
        for (size_t i = 0; i < ELEMENTSOF(props); i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char sig[2] = { props[i].type, 0 };
                json_object *value;
                char text[64];
                int r;

                r = sd_bus_get_property(bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                        props[i].property, &error, &reply, sig);
                if (r < 0) {
                        json_object_put(o);
                        json_object_put(quota);
                        return fail_bus(r, &error, "reading status");
                }
                if (props[i].type == 's') {
                        const char *s;
                        r = sd_bus_message_read(reply, "s", &s);
                        snprintf(text, sizeof(text), "%s", r >= 0 ? s : "?");
                        value = json_object_new_string(text);
                } else if (props[i].type == 't') {
                        uint64_t t = 0;
                        r = sd_bus_message_read(reply, "t", &t);
                        format_size(text, sizeof(text), t);
                        value = json_object_new_uint64(t);
                } else {
                        uint32_t u = 0;
                        r = sd_bus_message_read(reply, "u", &u);
                        snprintf(text, sizeof(text), "%u", u);
                        value = json_object_new_int64(u);
                }
                if (arg_json)
                        json_object_object_add(i < 3 ? o : quota, props[i].json, value);
                else {
                        json_object_put(value);
                        printf("%22s: %s\n", props[i].label, isempty(text) ? "-" : text);
                }
        }
        if (arg_json) {
                json_object_object_add(o, "quota", quota);
                print_json(o);
                json_object_put(o);
        }
        return EXIT_OK;
}

/* ---- monitor ---- */

typedef struct Monitor {
        sd_bus *bus;
        char **known; /* objects this caller has seen: only those are reported removed */
} Monitor;

static bool monitor_knows(Monitor *mon, const char *path, bool remove) {
        for (char **o = mon->known; o && *o; o++)
                if (streq(*o, path)) {
                        if (remove) {
                                free(*o);
                                memmove(o, o + 1, (strv_length(o + 1) + 1) * sizeof(char *));
                        }
                        return true;
                }
        return false;
}

static int monitor_add_known(Monitor *mon, const char *path) {
        size_t n = 0;
        char **l;

        while (mon->known && mon->known[n])
                n++;
        l = realloc(mon->known, (n + 2) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        mon->known = l;
        l[n] = strdup(path);
        l[n + 1] = NULL;
        return l[n] ? 0 : -ENOMEM;
}

static int on_device_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Monitor *mon = userdata;
        const char *path;
        CtlDevice d;

        (void) ret_error;
        if (sd_bus_message_read(m, "o", &path) < 0)
                return 0;
        /* Devices this caller may not see stay invisible here too. */
        if (ctl_device_read(mon->bus, path, false, &d, &error) < 0)
                return 0;
        if (!monitor_knows(mon, path, false) && monitor_add_known(mon, path) < 0) {
                ctl_device_done(&d);
                return -ENOMEM;
        }
        if (arg_json) {
                json_object *o = ctl_device_to_json(&d, false);
                json_object_object_add(o, "event", json_object_new_string("added"));
                print_json(o);
                json_object_put(o);
        } else
                printf("added   %s %04x:%04x %s\n", path, d.vendor_id, d.product_id, d.product);
        fflush(stdout);
        ctl_device_done(&d);
        return 0;
}

static int on_device_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Monitor *mon = userdata;
        const char *path;

        (void) ret_error;
        if (sd_bus_message_read(m, "o", &path) < 0 || !monitor_knows(mon, path, true))
                return 0;
        if (arg_json)
                printf("{\"event\":\"removed\",\"object\":\"%s\"}\n", path); /* object paths need no escaping */
        else
                printf("removed %s\n", path);
        fflush(stdout);
        return 0;
}

static int cmd_monitor(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        Monitor mon = { .bus = bus };
        int r, code;

        (void) argv;
        if (argc != 1)
                return fail(EXIT_USAGE, "'monitor' takes no arguments");

        r = sd_bus_match_signal(bus, NULL, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                "DeviceAdded", on_device_added, &mon);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                        "DeviceRemoved", on_device_removed, &mon);
        if (r < 0)
                return fail(EXIT_FAIL, "cannot subscribe to device signals: %s", strerror(-r));
        /* zcusbd sends device signals only to subscribers, each only about
         * the devices it may see. This also starts zcusbd by D-Bus
         * activation when it is not running. */
        r = sd_bus_call_method(bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE, "Subscribe", &error,
                               NULL, "");
        if (r < 0)
                return fail_bus(r, &error, "subscribing to device events");

        /* Subscribed first, then listed: no device falls in between. */
        code = list_objects(bus, &mon.known);
        if (code != EXIT_OK)
                return code;

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                strv_free(mon.known);
                return fail(EXIT_FAIL, "cannot set up the event loop: %s", strerror(-r));
        }
        if (!arg_json) {
                printf("Monitoring zcusbd device events; Ctrl-C stops.\n");
                fflush(stdout);
        }
        r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        strv_free(mon.known);
        if (r < 0)
                return fail(EXIT_FAIL, "event loop: %s", strerror(-r));
        return EXIT_OK;
}

static const struct {
        const char *name;
        int (*run)(sd_bus *bus, int argc, char **argv);
} commands[] = {
        { "list",    cmd_list },
        { "info",    cmd_info },
        { "monitor", cmd_monitor },
        { "status",  cmd_status },
        { "attach",  ctl_attach },
        { "detach",  ctl_detach },
        { "remote",  ctl_remote },
};

/* Commands that move data through libzcusb on a connection of their own and
 * parse their own options (ctl-transfer.c). */
static const struct {
        const char *name;
        int (*run)(const CtlGlobal *global, int argc, char **argv);
} transfer_commands[] = {
        { "read",    ctl_read },
        { "write",   ctl_write },
        { "control", ctl_control },
        { "clear-halt", ctl_clear_halt },
};

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_BUS_ADDRESS, ARG_INTERACTIVE };
        static const struct option options[] = {
                { "help",        no_argument,       NULL, 'h' },
                { "version",     no_argument,       NULL, ARG_VERSION },
                { "json",        no_argument,       NULL, 'j' },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "interactive", no_argument,       NULL, ARG_INTERACTIVE },
                {}
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int c, r;

        /* "+": options end at the command, whose own arguments follow. */
        while ((c = getopt_long(argc, argv, "+hj", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case ARG_VERSION:
                        printf("zcusbctl %s\n", ZCUSB_VERSION);
                        return EXIT_OK;
                case 'j':
                        arg_json = true;
                        break;
                case ARG_BUS_ADDRESS:
                        arg_bus_address = optarg;
                        break;
                case ARG_INTERACTIVE:
                        arg_interactive = true;
                        break;
                default:
                        return fail(EXIT_USAGE, "see 'zcusbctl --help'");
                }
        if (optind >= argc)
                return fail(EXIT_USAGE, "missing command; see 'zcusbctl --help'");

        for (size_t i = 0; i < ELEMENTSOF(transfer_commands); i++)
                if (streq(argv[optind], transfer_commands[i].name)) {
                        CtlGlobal global = { .json = arg_json, .bus_address = arg_bus_address,
                                             .interactive = arg_interactive };
                        return transfer_commands[i].run(&global, argc - optind, argv + optind);
                }

        /* Allow options after the command too: "zcusbctl list --json". */
        int cargc = 0;
        char **cargv = calloc((size_t) (argc - optind) + 1, sizeof(char *));
        if (!cargv)
                return fail(EXIT_FAIL, "out of memory");
        for (int i = optind; i < argc; i++) {
                if (streq(argv[i], "--json") || streq(argv[i], "-j"))
                        arg_json = true;
                else if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
                        free(cargv);
                        help();
                        return EXIT_OK;
                } else if (startswith(argv[i], "--bus-address="))
                        arg_bus_address = argv[i] + strlen("--bus-address=");
                else if (argv[i][0] == '-' && argv[i][1] != '\0' && i > optind) {
                        fail(EXIT_USAGE, "unknown option '%s'; see 'zcusbctl --help'", argv[i]);
                        free(cargv);
                        return EXIT_USAGE;
                } else
                        cargv[cargc++] = argv[i];
        }

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (!streq(cargv[0], commands[i].name))
                        continue;
                r = connect_bus(&bus);
                if (r == EXIT_OK)
                        r = commands[i].run(bus, cargc, cargv);
                free(cargv);
                return r;
        }
        r = fail(EXIT_USAGE, "unknown command '%s'; see 'zcusbctl --help'", cargv[0]);
        free(cargv);
        return r;
}
