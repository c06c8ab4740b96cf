/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>

#include "buffer.h"
#include "bus-object.h"
#include "claim-dbus.h"
#include "claim.h"
#include "device.h"
#include "log.h"
#include "manager.h"
#include "peer.h"
#include "queue.h"
#include "transfer.h"
#include "usb-descriptors.h"
#include "util.h"
#include "zcusb-dbus.h"

/* A claim answers only the connection that made it. */
int claim_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error) {
        sd_bus_message *message = sd_bus_get_current_message(bus);
        Manager *m = userdata;
        Claim *c;

        (void) interface;
        if (streq(path, ZCUSB_CLAIM_PATH_PREFIX))
                return 0;
        if (strchr(path + strlen(ZCUSB_CLAIM_PATH_PREFIX) + 1, '/'))
                return 0; /* nothing lives below a claim */
        c = manager_find_claim_by_path(m, path);
        if (!c) {
                if (!bus_message_calls_interface(message, ZCUSB_CLAIM_INTERFACE))
                        return 0;
                sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT, "No claim %s.", path);
                return -ENOENT;
        }
        if (message && sd_bus_message_get_sender(message) &&
            !streq(sd_bus_message_get_sender(message), c->peer->name)) {
                sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED, "Claim %s belongs to another client.", path);
                return -EACCES;
        }
        *found = c;
        return 1;
}

int claim_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        sd_bus_message *message = sd_bus_get_current_message(bus);
        const char *sender = message ? sd_bus_message_get_sender(message) : NULL;
        _cleanup_strv_free_ char **l = NULL;
        Manager *m = userdata;
        size_t n = 0, max = 0;
        Claim *c;

        (void) path, (void) error;
        TAILQ_FOREACH(c, &m->claims, manager_link)
                max++;
        l = calloc(max + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        TAILQ_FOREACH(c, &m->claims, manager_link) {
                if (c->peer->disconnected || (sender && !streq(sender, c->peer->name)))
                        continue;
                l[n] = strdup(c->object_path);
                if (!l[n++])
                        return -ENOMEM;
        }
        *nodes = TAKE_PTR(l);
        return 1;
}

static int claim_check_active(Claim *c, sd_bus_error *error) {
        if (c->end == CLAIM_ACTIVE)
                return 0;
        return sd_bus_error_setf(error, c->end == CLAIM_END_DEVICE_REMOVED ? ZCUSB_ERROR_NO_SUCH_DEVICE
                                        : c->end == CLAIM_END_REVOKED       ? ZCUSB_ERROR_ACCESS_DENIED
                                                                             : ZCUSB_ERROR_BUSY,
                                 "Claim %s has ended (%s); release it.", c->object_path,
                                 claim_end_to_string(c->end));
}

static int method_alloc_buffer(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(buffer_freep) Buffer *b = NULL;
        _cleanup_close_ int fd = -EBADF;
        Claim *c = userdata;
        uint64_t size;
        int r;

        r = sd_bus_message_read(message, "t", &size);
        if (r < 0)
                return r;
        r = claim_check_active(c, error);
        if (r < 0)
                return r;
        r = buffer_new(c, size, &b, &fd, error);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(message, "uht", b->backend.id, fd, b->backend.size);
        if (r < 0) /* e.g. EMFILE: the fd is duplicated into the reply */
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED, "zcusbd cannot hand over the buffer: %s.",
                                         strerror(-r));
        TAKE_PTR(b);
        return 1; /* zcusbd keeps the mapping; the fd went to the client */
}

static int method_free_buffer(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        uint32_t id;
        Buffer *b;
        int r;

        r = sd_bus_message_read(message, "u", &id);
        if (r < 0)
                return r;
        b = claim_find_buffer(c, id);
        if (!b)
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT, "No buffer %u in this claim.", id);
        if (b->users > 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "Buffer %u is used by %u transfers in flight.", id,
                                         b->users);
        buffer_free(b);
        return sd_bus_reply_method_return(message, "");
}

static int method_open_queue(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(queue_freep) Queue *q = NULL;
        _cleanup_close_ int fd = -EBADF;
        Claim *c = userdata;
        uint32_t entries;
        int r;

        r = sd_bus_message_read(message, "u", &entries);
        if (r < 0)
                return r;
        r = claim_check_active(c, error);
        if (r < 0)
                return r;
        r = queue_new(c, entries, &q, &fd, error);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(message, "uhhh", q->id, fd, q->submit_fd, q->complete_fd);
        if (r < 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED, "zcusbd cannot hand over the queue: %s.",
                                         strerror(-r));
        TAKE_PTR(q);
        return 1;
}

static int method_close_queue(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        uint32_t id;
        Queue *q;
        int r;

        r = sd_bus_message_read(message, "u", &id);
        if (r < 0)
                return r;
        q = claim_find_queue(c, id);
        if (!q)
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT, "No queue %u in this claim.", id);
        /* Cancel, and let the client close again once they are back. */
        if (queue_cancel_all(q) > 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY,
                                         "Queue %u had %u transfers in flight; they are being cancelled, "
                                         "close it again after their completions.", id, q->in_flight);
        queue_free(q);
        return sd_bus_reply_method_return(message, "");
}

static int method_set_alt_setting(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        bool known = false;
        uint8_t alt;
        int r;

        r = sd_bus_message_read(message, "y", &alt);
        if (r < 0)
                return r;
        r = claim_check_active(c, error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->device->descriptors.n_alt_settings; i++) {
                const UsbAltSetting *a = &c->device->descriptors.alt_settings[i];
                known = known || (a->interface_number == c->interface_number && a->alt_setting == alt);
        }
        if (!known)
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT, "Interface %u has no alternate setting %u.",
                                         c->interface_number, alt);
        if (c->n_in_flight > 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "%u transfers are in flight.", c->n_in_flight);
        r = c->backend->set_alt_setting(c->backend_interface, alt);
        if (r == -ENODEV)
                return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE, "The device is gone.");
        if (r < 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED, "Cannot select alternate setting %u: %s.", alt,
                                         strerror(-r));
        c->alt_setting = alt;
        return sd_bus_reply_method_return(message, "");
}

static int method_clear_halt(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        uint8_t endpoint;
        int r;

        r = sd_bus_message_read(message, "y", &endpoint);
        if (r < 0)
                return r;
        r = claim_check_active(c, error);
        if (r < 0)
                return r;
        if (!usb_descriptors_find_endpoint(&c->device->descriptors, c->interface_number, c->alt_setting, endpoint))
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT,
                                         "Endpoint 0x%02x is not in the claimed interface's current alternate setting.",
                                         endpoint);
        r = c->backend->clear_halt(c->backend_interface, endpoint);
        if (r == -ENODEV)
                return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE, "The device is gone.");
        if (r < 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED, "Cannot clear the halt of endpoint 0x%02x: %s.",
                                         endpoint, strerror(-r));
        return sd_bus_reply_method_return(message, "");
}

static int method_release(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;

        (void) error;
        if (c->release_reply)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "Claim %s is already being released.",
                                         c->object_path);
        /* Replied to from claim_free() (the GC pass), once everything is undone. */
        c->release_reply = sd_bus_message_ref(message);
        claim_stop(c, CLAIM_END_RELEASED, true);
        return 1;
}

void claim_reply_release(Claim *c) {
        if (!c->release_reply)
                return;
        (void) sd_bus_reply_method_return(c->release_reply, "");
        c->release_reply = sd_bus_message_unref(c->release_reply);
}

/* Unicast: other connections are not told who uses which device. */
void claim_emit_ended(Claim *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        sd_bus *bus = c->manager->bus;
        int r;

        if (!bus || c->peer->disconnected)
                return;
        r = sd_bus_message_new_signal(bus, &m, c->object_path, ZCUSB_CLAIM_INTERFACE, "Ended");
        if (r >= 0)
                r = sd_bus_message_set_destination(m, c->peer->name);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", claim_end_to_string(c->end));
        if (r >= 0)
                r = sd_bus_send(bus, m, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot send Ended to %s: %m", c->peer->name);
}

static int property_get_device(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        return sd_bus_message_append(reply, "o", c->device ? c->device->object_path : "/");
}

static int property_get_backend(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        return sd_bus_message_append(reply, "s", c->backend->name);
}

static int property_get_served_by(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        return sd_bus_message_append(reply, "s", queue_served_by(c));
}

static int property_get_quota(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        return sd_bus_message_append(reply, "t", c->manager->config.bytes_per_client);
}

static int property_get_used(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Claim *c = userdata;
        (void) bus, (void) path, (void) interface, (void) property, (void) error;
        return sd_bus_message_append(reply, "t", c->peer->account.bytes);
}

/* The claim's counters for the bus message being answered: read once per
 * message, so a GetAll's six counters are one snapshot (and one read of
 * the kernel's counters per queue it serves, not six). The reference on the
 * message keeps its address from being reused by a later one. */
static void claim_counters_for_message(Claim *c, sd_bus *bus, TransferCounters *ret) {
        sd_bus_message *m = sd_bus_get_current_message(bus);

        if (!m || m != c->counters_message) {
                claim_get_counters(c, &c->counters_snapshot);
                sd_bus_message_unref(c->counters_message);
                c->counters_message = sd_bus_message_ref(m);
        }
        *ret = c->counters_snapshot;
}

/* Submitted .. BytesOut and InFlight: what zcusbd counted and what the kernel
 * counts for the queues it serves (claim_get_counters). */
static int property_get_counter(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        static const struct {
                const char *name;
                size_t offset;
        } counters[] = {
                { "Submitted", offsetof(TransferCounters, submitted) },
                { "Completed", offsetof(TransferCounters, completed) },
                { "Failed",    offsetof(TransferCounters, failed) },
                { "BytesIn",   offsetof(TransferCounters, bytes_in) },
                { "BytesOut",  offsetof(TransferCounters, bytes_out) },
        };
        Claim *c = userdata;
        TransferCounters n;

        (void) path, (void) interface, (void) error;
        claim_counters_for_message(c, bus, &n);
        if (streq(property, "InFlight"))
                return sd_bus_message_append(reply, "u",
                                             (uint32_t) (n.in_flight < UINT32_MAX ? n.in_flight : UINT32_MAX));
        for (size_t i = 0; i < ELEMENTSOF(counters); i++)
                if (streq(property, counters[i].name))
                        return sd_bus_message_append(reply, "t",
                                                     *(const uint64_t *) ((const uint8_t *) &n + counters[i].offset));
        return -EINVAL;
}

const sd_bus_vtable claim_vtable[] = {
        SD_BUS_VTABLE_START(0),

        SD_BUS_PROPERTY("Device", "o", property_get_device, 0, 0),
        /* Nothing here emits PropertiesChanged (a broadcast): read them. */
        SD_BUS_PROPERTY("Interface", "y", NULL, offsetof(Claim, interface_number), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AltSetting", "y", NULL, offsetof(Claim, alt_setting), 0),
        SD_BUS_PROPERTY("Backend", "s", property_get_backend, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ServedBy", "s", property_get_served_by, 0, 0),
        SD_BUS_PROPERTY("QuotaBytes", "t", property_get_quota, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UsedBytes", "t", property_get_used, 0, 0),
        SD_BUS_PROPERTY("InFlight", "u", property_get_counter, 0, 0),
        SD_BUS_PROPERTY("Buffers", "u", NULL, offsetof(Claim, n_buffers), 0),
        SD_BUS_PROPERTY("Queues", "u", NULL, offsetof(Claim, n_queues), 0),
        SD_BUS_PROPERTY("Submitted", "t", property_get_counter, 0, 0),
        SD_BUS_PROPERTY("Completed", "t", property_get_counter, 0, 0),
        SD_BUS_PROPERTY("Failed", "t", property_get_counter, 0, 0),
        SD_BUS_PROPERTY("BytesIn", "t", property_get_counter, 0, 0),
        SD_BUS_PROPERTY("BytesOut", "t", property_get_counter, 0, 0),

        SD_BUS_METHOD_WITH_ARGS("AllocBuffer",
                                SD_BUS_ARGS("t", size),
                                SD_BUS_RESULT("u", id, "h", fd, "t", size),
                                method_alloc_buffer, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FreeBuffer", SD_BUS_ARGS("u", id), SD_BUS_NO_RESULT,
                                method_free_buffer, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenQueue",
                                SD_BUS_ARGS("u", entries),
                                SD_BUS_RESULT("u", id, "h", ring, "h", submit_eventfd, "h", complete_eventfd),
                                method_open_queue, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CloseQueue", SD_BUS_ARGS("u", id), SD_BUS_NO_RESULT,
                                method_close_queue, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetAltSetting", SD_BUS_ARGS("y", alt_setting), SD_BUS_NO_RESULT,
                                method_set_alt_setting, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ClearHalt", SD_BUS_ARGS("y", endpoint), SD_BUS_NO_RESULT,
                                method_clear_halt, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                method_release, SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_SIGNAL_WITH_ARGS("Ended", SD_BUS_ARGS("s", reason), 0),

        SD_BUS_VTABLE_END
};
