/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>

#include "ctl-remote.h"
#include "host-port.h"
#include "util.h"
#include "zcusb-dbus.h"
#include "zcusbctl.h"

#define USBIP_PORT 3240
/* Import, enumerate over the network: longer than sd-bus's 25 s default. */
#define ATTACH_TIMEOUT_USEC (120 * UINT64_C(1000000))

int ctl_attach(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        char host[HOST_NAME_MAX_LEN + 1], what[HOST_NAME_MAX_LEN + 64];
        const char *object;
        uint16_t port;
        int r;

        if (argc != 3)
                return fail(EXIT_USAGE, "'attach' takes HOST[:PORT] BUSID, e.g. 'zcusbctl attach lab1 1-1.2'");
        if (parse_host_port(argv[1], USBIP_PORT, host, &port) < 0)
                return fail(EXIT_USAGE, "'%s' is not HOST, HOST:PORT or [IPV6]:PORT", argv[1]);
        snprintf(what, sizeof(what), "attach %s:%u %s", host, port, argv[2]);

        r = sd_bus_message_new_method_call(bus, &call, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                           "AttachRemote");
        if (r >= 0)
                r = sd_bus_message_append(call, "sqs", host, port, argv[2]);
        if (r < 0)
                return fail(EXIT_FAIL, "cannot build the call: %s", strerror(-r));
        r = sd_bus_call(bus, call, ATTACH_TIMEOUT_USEC, &error, &reply);
        if (r < 0)
                return fail_bus(r, &error, what);
        r = sd_bus_message_read(reply, "o", &object);
        if (r < 0)
                return fail(EXIT_FAIL, "malformed reply from zcusbd: %s", strerror(-r));
        if (arg_json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "host", json_object_new_string(host));
                json_object_object_add(o, "port", json_object_new_int(port));
                json_object_object_add(o, "busid", json_object_new_string(argv[2]));
                json_object_object_add(o, "object", json_object_new_string(object));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
        } else
                printf("Attached %s port %u bus id %s as %s\n", host, port, argv[2], object);
        return EXIT_OK;
}

int ctl_detach(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *object = NULL;
        int r;

        if (argc != 2)
                return fail(EXIT_USAGE, "'detach' takes one DEVICE (as 'zcusbctl remote' shows it)");
        r = resolve_device(bus, argv[1], &object);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_call_method(bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE, "DetachRemote",
                               &error, NULL, "o", object);
        if (r < 0)
                return fail_bus(r, &error, argv[1]);
        if (!arg_json)
                printf("Detached %s\n", object);
        return EXIT_OK;
}

int ctl_remote(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_object *array = NULL;
        const char *host, *busid, *state, *object, *last_error;
        uint16_t port;
        int r;

        (void) argv;
        if (argc != 1)
                return fail(EXIT_USAGE, "'remote' takes no arguments");
        r = sd_bus_get_property(bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE, "RemoteDevices",
                                &error, &reply, "a(sqssos)");
        if (r < 0)
                return fail_bus(r, &error, "remote");
        r = sd_bus_message_enter_container(reply, 'a', "(sqssos)");
        if (r < 0)
                return fail(EXIT_FAIL, "malformed reply from zcusbd: %s", strerror(-r));
        if (arg_json)
                array = json_object_new_array();
        else
                printf("%-24s  %5s  %-10s  %-9s  %-30s  %s\n", "HOST", "PORT", "BUSID", "STATE", "DEVICE", "ERROR");
        while ((r = sd_bus_message_read(reply, "(sqssos)", &host, &port, &busid, &state, &object, &last_error)) > 0) {
                bool attached = !streq(object, "/");

                if (arg_json) {
                        json_object *o = json_object_new_object();

                        json_object_object_add(o, "host", json_object_new_string(host));
                        json_object_object_add(o, "port", json_object_new_int(port));
                        json_object_object_add(o, "busid", json_object_new_string(busid));
                        json_object_object_add(o, "state", json_object_new_string(state));
                        json_object_object_add(o, "object", attached ? json_object_new_string(object) : NULL);
                        json_object_object_add(o, "error", isempty(last_error) ? NULL
                                                                               : json_object_new_string(last_error));
                        json_object_array_add(array, o);
                } else
                        printf("%-24s  %5u  %-10s  %-9s  %-30s  %s\n", host, port, busid, state,
                               attached ? object : "-", isempty(last_error) ? "-" : last_error);
        }
        if (r < 0) {
                json_object_put(array);
                return fail(EXIT_FAIL, "malformed reply from zcusbd: %s", strerror(-r));
        }
        if (arg_json) {
                puts(json_object_to_json_string_ext(array, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(array);
        }
        return EXIT_OK;
}
