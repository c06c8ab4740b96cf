/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Manager's remote-device methods and property: a second vtable on
 * /org/zcusb1, org.zcusb1.Manager (sd-bus merges them). */
#include "bus-caller.h"
#include "log.h"
#include "manager.h"
#include "remote.h"
#include "util.h"
#include "zcusb-dbus.h"

static int attach_remote_as(sd_bus_message *message, Manager *m, const Caller *caller, sd_bus_error *error) {
        const char *host, *busid;
        uint16_t port;
        Remote *r;
        int k;

        k = sd_bus_message_read(message, "sqs", &host, &port, &busid);
        if (k < 0)
                return k;
        if (m->shutting_down)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "zcusbd is stopping.");
        if (!host_name_is_valid(host))
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT,
                                         "'%.64s' is not a host name or address.", host);
        if (port == 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT, "Port 0 is not a TCP port.");
        if (!usbip_busid_is_valid(busid))
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT,
                                         "'%.32s' is not a USB/IP bus id (like 1-1 or 3-2.4).", busid);
        if (!remote_may_attach(m, caller))
                return sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED,
                                         "You may not attach remote USB devices (zcusbd.conf [Remote] "
                                         "AllowUsers=/AllowGroups= do not name you).");
        if (!remote_host_allowed(m, host))
                return sd_bus_error_setf(error, ZCUSB_ERROR_HOST_NOT_ALLOWED,
                                         "%s is not in zcusbd.conf's [Remote] AllowHosts=.", host);
        r = remote_find(m, host, port, busid);
        if (r && r->state != REMOTE_DETACHED)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "%s port %u bus id %s is %s already%s%s.", host,
                                         port, busid, remote_state_to_string(r->state),
                                         r->device_syspath ? " as " : "", r->device_syspath ? r->device_path : "");
        if (!r && m->n_remotes >= m->config.remote_max_devices)
                return sd_bus_error_setf(error, ZCUSB_ERROR_QUOTA_EXCEEDED,
                                         "%zu remote devices are attached or being attached; MaxDevices=%u.",
                                         m->n_remotes, m->config.remote_max_devices);
        if (!r) {
                k = remote_new(m, host, port, busid, false, caller->uid, &r);
                if (k < 0)
                        return k;
        }
        /* Answered when the device is there, or with the failure. */
        r->pending = sd_bus_message_ref(message);
        (void) remote_start(r);
        return 1;
}

static int method_attach_remote(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return caller_call(userdata, message, attach_remote_as, error);
}

static int detach_remote_as(sd_bus_message *message, Manager *m, const Caller *caller, sd_bus_error *error) {
        const char *path;
        Remote *r;
        int k;

        k = sd_bus_message_read(message, "o", &path);
        if (k < 0)
                return k;
        r = remote_find_by_device(m, path);
        if (!r)
                return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE, "%s is not an attached remote device.",
                                         path);
        /* Persistent ones are the administrator's; others their attacher's. */
        if (!policy_caller_is_root(caller) && (r->persistent || caller->uid != r->owner))
                return sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED, "You may not detach %s.", path);
        k = remote_detach(r);
        if (k < 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED, "Cannot detach %s: %s.", path, strerror(-k));
        return sd_bus_reply_method_return(message, "");
}

static int method_detach_remote(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return caller_call(userdata, message, detach_remote_as, error);
}

static int property_get_remote_devices(sd_bus *bus, const char *path, const char *interface, const char *property,
                                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        sd_bus_message *message = sd_bus_get_current_message(bus);
        const Caller *caller = NULL;
        Remote *r;
        int k;

        (void) path, (void) interface, (void) property, (void) error;
        /* Hosts and bus ids are the lab's layout: only for who may attach. */
        if (message && manager_get_caller(m, message, &caller) < 0)
                caller = NULL;
        k = sd_bus_message_open_container(reply, 'a', "(sqssos)");
        if (k < 0)
                return k;
        if (caller && remote_may_attach(m, caller))
                TAILQ_FOREACH(r, &m->remotes, link) {
                        k = sd_bus_message_append(reply, "(sqssos)", r->host, r->port, r->busid,
                                                  remote_state_to_string(r->state), r->device_path, r->last_error);
                        if (k < 0)
                                return k;
                }
        return sd_bus_message_close_container(reply);
}

/* By hand: sd_bus_emit_properties_changed() cannot find a property of a
 * second vtable on the same interface (it asserts). An invalidation only. */
void remote_emit_changed(Manager *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *signal = NULL;
        int k;

        if (!m->bus)
                return;
        k = sd_bus_message_new_signal(m->bus, &signal, ZCUSB_MANAGER_PATH, "org.freedesktop.DBus.Properties",
                                      "PropertiesChanged");
        if (k >= 0)
                k = sd_bus_message_append(signal, "sa{sv}as", ZCUSB_MANAGER_INTERFACE, 0, 1, "RemoteDevices");
        if (k >= 0)
                k = sd_bus_send(m->bus, signal, NULL);
        if (k < 0)
                log_debug_errno(k, "Cannot announce RemoteDevices: %m");
}

const sd_bus_vtable remote_manager_vtable[] = {
        SD_BUS_VTABLE_START(0),

        /* Invalidation only: whoever may see the list reads it. */
        SD_BUS_PROPERTY("RemoteDevices", "a(sqssos)", property_get_remote_devices, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),

        SD_BUS_METHOD_WITH_ARGS("AttachRemote",
                                SD_BUS_ARGS("s", host, "q", port, "s", busid),
                                SD_BUS_RESULT("o", device),
                                method_attach_remote,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DetachRemote",
                                SD_BUS_ARGS("o", device),
                                SD_BUS_NO_RESULT,
                                method_detach_remote,
                                SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_VTABLE_END
};
