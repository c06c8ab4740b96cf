/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libzcusb's control plane: the context (one bus connection), device names
 * and claims. A claim's buffers and the D-Bus half of its queues are in
 * buffer.c, the data path in ring.c, the synchronous helpers in sync.c.
 */
#include <limits.h>
#include <stdarg.h>

#include "devspec.h"
#include "messages.h"
#include "zcusb-internal.h"

#define PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

/* ---- errors ---- */

const char *zcusb_strerror(int err) {
        static const struct {
                int err;
                const char *text;
        } table[] = {
                { EACCES,       "Access denied by zcusbd's policy (or the claim was revoked)" },
                { ENODEV,       "No such device, or the device, claim or queue is gone" },
                { EBUSY,        "Busy: claimed elsewhere, bound to a kernel driver, or still used by transfers" },
                { EDQUOT,       "zcusbd's quota for this client or user is exhausted" },
                { EINVAL,       "Invalid argument" },
                { ENOTUNIQ,     "The device name matches more than one device" },
                { EHOSTUNREACH, "zcusbd is not running or not reachable on the bus" },
                { ECONNRESET,   "The bus connection to zcusbd was lost" },
                { EOPNOTSUPP,   "zcusbd does not know this call (it may be older than libzcusb)" },
                { EAGAIN,       "The submission ring is full: reap completions first" },
                { EPROTO,       "Protocol error: a broken ring, or a USB bus error" },
                { EBADMSG,      "zcusbd sent a malformed reply" },
                { ETIMEDOUT,    "Timed out" },
                { EPIPE,        "Stalled: the device rejected the transfer or request" },
                { EREMOTEIO,    "Short transfer where a full one was required" },
                { EOVERFLOW,    "The device sent more data than was asked for" },
                { ECANCELED,    "Cancelled (a transfer, or the authentication a claim needed)" },
                { ENOKEY,       "The claim needs authentication: ask with ZCUSB_CLAIM_INTERACTIVE" },
                { EHOSTDOWN,    "polkit, which decides this claim, could not be asked" },
                { ESHUTDOWN,    "zcusbd is shutting down" },
        };

        if (err == INT_MIN)
                return "Unknown error";
        if (err < 0)
                err = -err;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].err == err)
                        return table[i].text;
        return strerror(err);
}

const char *zcusb_last_error_message(struct zcusb *ctx) {
        return ctx && ctx->last_error ? ctx->last_error : "";
}

int ctx_errorf(struct zcusb *ctx, int r, const char *fmt, ...) {
        char *message = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        va_end(ap);
        free(ctx->last_error);
        ctx->last_error = message;
        return r;
}

/* zcusbd's named errors and the bus's own "not there" errors, as errno. */
static int errno_from_bus_error(int r, const sd_bus_error *e) {
        static const struct {
                const char *name;
                int err;
        } map[] = {
                { ZCUSB_ERROR_ACCESS_DENIED,         EACCES },
                { ZCUSB_ERROR_FAILED,                EIO },
                { ZCUSB_ERROR_NO_SUCH_DEVICE,        ENODEV },
                { ZCUSB_ERROR_BUSY,                  EBUSY },
                { ZCUSB_ERROR_QUOTA_EXCEEDED,        EDQUOT },
                { ZCUSB_ERROR_INVALID_ARGUMENT,      EINVAL },
                /* polkit: refused needs-a-password, a cancelled dialog, no answer. */
                { ZCUSB_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED, ENOKEY },
                { ZCUSB_ERROR_AUTHORIZATION_CANCELLED,   ECANCELED },
                { ZCUSB_ERROR_AUTHORIZATION_UNAVAILABLE, EHOSTDOWN },
                /* A device or claim object that went away. */
                { SD_BUS_ERROR_UNKNOWN_OBJECT,       ENODEV },
                { SD_BUS_ERROR_UNKNOWN_METHOD,       EOPNOTSUPP },
                { SD_BUS_ERROR_UNKNOWN_INTERFACE,    EOPNOTSUPP },
                /* sd-bus says ENXIO for an unowned name; that reads like "no device". */
                { SD_BUS_ERROR_SERVICE_UNKNOWN,      EHOSTUNREACH },
                { SD_BUS_ERROR_NAME_HAS_NO_OWNER,    EHOSTUNREACH },
                { SD_BUS_ERROR_NO_SERVER,            EHOSTUNREACH },
        };

        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (sd_bus_error_has_name(e, map[i].name))
                        return -map[i].err;
        return r < 0 ? r : -EIO;
}

/* Record a failed call: "WHAT: the daemon's sentence". Returns the errno. */
static int ctx_bus_error(struct zcusb *ctx, int r, const sd_bus_error *e, const char *what) {
        r = errno_from_bus_error(r, e);
        return ctx_errorf(ctx, r, "%s: %s", what,
                          sd_bus_error_is_set(e) && e->message ? e->message : zcusb_strerror(r));
}

int ctx_malformed(struct zcusb *ctx, int r, const char *what) {
        return ctx_errorf(ctx, -EBADMSG, "%s: malformed reply from zcusbd (%s)", what, strerror(r < 0 ? -r : r));
}

/* ---- context ---- */

static int ctx_new(sd_bus *bus, struct zcusb **ret) {
        struct zcusb *ctx = calloc(1, sizeof(*ctx));

        if (!ctx) {
                sd_bus_flush_close_unref(bus);
                return -ENOMEM;
        }
        ctx->bus = bus;
        TAILQ_INIT(&ctx->claims);
        *ret = ctx;
        return 0;
}

int zcusb_open(struct zcusb **ret) {
        sd_bus *bus = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        return ctx_new(bus, ret);
}

int zcusb_open_address(const char *address, struct zcusb **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (isempty(address) || !ret)
                return -EINVAL;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, true);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        return ctx_new(TAKE_PTR(bus), ret);
}

void zcusb_close(struct zcusb *ctx) {
        struct zcusb_claim *claim;

        if (!ctx)
                return;
        while ((claim = TAILQ_FIRST(&ctx->claims)))
                (void) zcusb_claim_release(claim);
        sd_bus_slot_unref(ctx->ended_match);
        sd_bus_slot_unref(ctx->owner_match);
        sd_bus_flush_close_unref(ctx->bus);
        free(ctx->last_error);
        free(ctx);
}

/* Method calls queue the signals that arrive meanwhile; run them now so Ended
 * is noticed without an event loop. Bounded: a signal flood cannot stall us. */
static void ctx_dispatch(struct zcusb *ctx) {
        for (unsigned i = 0; i < 256; i++)
                if (sd_bus_process(ctx->bus, NULL) <= 0)
                        break;
}

static int on_claim_ended(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct zcusb *ctx = userdata;
        const char *path = sd_bus_message_get_path(m), *sender = sd_bus_message_get_sender(m), *reason;
        struct zcusb_claim *c;

        (void) ret_error;
        if (sd_bus_message_read(m, "s", &reason) < 0)
                return 0;
        TAILQ_FOREACH(c, &ctx->claims, link)
                /* Anyone may send a signal: only zcusbd's own ends a claim. */
                if (streq_ptr(c->object, path) && streq_ptr(c->daemon, sender) && !c->ended) {
                        c->ended = true;
                        snprintf(c->end_reason, sizeof(c->end_reason), "%s", reason);
                }
        return 0;
}

/* The zcusbd that granted claims left the bus without ending them (crashed,
 * killed): they are gone with it, and no Ended will come. */
static int on_daemon_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct zcusb *ctx = userdata;
        const char *name, *old_owner, *new_owner;
        struct zcusb_claim *c;

        (void) ret_error;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || isempty(old_owner))
                return 0;
        TAILQ_FOREACH(c, &ctx->claims, link)
                if (streq_ptr(c->daemon, old_owner) && !c->ended) {
                        c->ended = true;
                        snprintf(c->end_reason, sizeof(c->end_reason), "%s", ZCUSB_END_DAEMON_GONE);
                }
        return 0;
}

/* One match for every claim's Ended and one for zcusbd leaving the bus,
 * installed before the first claim so none can fall between ClaimInterface
 * and the match. */
static int ctx_watch_claims(struct zcusb *ctx) {
        int r;

        if (!ctx->ended_match) {
                r = sd_bus_match_signal(ctx->bus, &ctx->ended_match, NULL, NULL, ZCUSB_CLAIM_INTERFACE, "Ended",
                                        on_claim_ended, ctx);
                if (r < 0)
                        return r;
        }
        if (!ctx->owner_match) {
                r = sd_bus_add_match(ctx->bus, &ctx->owner_match,
                                     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                     "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                     "arg0='" ZCUSB_BUS_NAME "'",
                                     on_daemon_owner_changed, ctx);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- device names ---- */

static bool device_matches_sysfs(struct zcusb *ctx, const char *object, const DevSpec *spec) {
        _cleanup_free_ char *sysfs_path = NULL, *port_path = NULL;

        if (sd_bus_get_property_string(ctx->bus, ZCUSB_BUS_NAME, object, ZCUSB_DEVICE_INTERFACE, "SysfsPath", NULL,
                                       &sysfs_path) < 0 ||
            sd_bus_get_property_string(ctx->bus, ZCUSB_BUS_NAME, object, ZCUSB_DEVICE_INTERFACE, "PortPath", NULL,
                                       &port_path) < 0)
                return false; /* gone since ListDevices, or not visible: not a match */
        return streq(sysfs_path, spec->path) || streq_ptr(port_path, devspec_sysfs_name(spec->path));
}

/* Find the object path of a device named as client/CLI.md allows. */
static int ctx_resolve_device(struct zcusb *ctx, const char *device, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *found = NULL;
        const char *why = NULL, *path;
        size_t matches = 0;
        DevSpec spec;
        int r;

        if (devspec_parse(device, &spec, &why) < 0)
                return ctx_errorf(ctx, -EINVAL, "'%s' is not a device name: %s", device, why);

        if (spec.kind == DEVSPEC_OBJECT_PATH)
                found = strdup(spec.path);
        else if (spec.kind == DEVSPEC_BUS_ADDRESS) {
                r = sd_bus_call_method(ctx->bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                       "GetDevice", &error, &reply, "qq", spec.bus, spec.address);
                if (r < 0)
                        return ctx_bus_error(ctx, r, &error, device);
                r = sd_bus_message_read(reply, "o", &path);
                if (r < 0)
                        return ctx_malformed(ctx, r, device);
                found = strdup(path);
        } else {
                uint16_t vendor_id, product_id;
                const char *serial;

                r = sd_bus_call_method(ctx->bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                       "ListDevices", &error, &reply, "");
                if (r < 0)
                        return ctx_bus_error(ctx, r, &error, "listing devices");
                r = sd_bus_message_enter_container(reply, 'a', "(oqqqqsss)");
                if (r < 0)
                        return ctx_malformed(ctx, r, "listing devices");
                while ((r = sd_bus_message_read(reply, "(oqqqqsss)", &path, &vendor_id, &product_id, NULL, NULL,
                                                NULL, NULL, &serial)) > 0) {
                        bool match;

                        if (spec.kind == DEVSPEC_SYSFS)
                                match = device_matches_sysfs(ctx, path, &spec);
                        else
                                match = vendor_id == spec.vendor_id && product_id == spec.product_id &&
                                        (!spec.serial || streq(serial, spec.serial));
                        if (match && ++matches == 1 && free_and_strdup(&found, path) < 0)
                                return -ENOMEM;
                }
                if (r < 0)
                        return ctx_malformed(ctx, r, "listing devices");
                if (matches == 0)
                        return ctx_errorf(ctx, -ENODEV, "%s: " ZCUSB_MSG_NO_SUCH_DEVICE, device);
                if (matches > 1)
                        return ctx_errorf(ctx, -ENOTUNIQ, "%s matches %zu devices; name one by BUS:ADDR or "
                                          "VID:PID:SERIAL", device, matches);
        }
        if (!found)
                return -ENOMEM;
        *ret = TAKE_PTR(found);
        return 0;
}

/* ---- claims ---- */

/* Local state only: zcusbd frees its side on Release() or disconnect. */
static void claim_free(struct zcusb_claim *claim) {
        struct zcusb_buffer *b;
        struct zcusb_queue *q;

        while ((q = TAILQ_FIRST(&claim->queues))) {
                TAILQ_REMOVE(&claim->queues, q, link);
                queue_free(q);
        }
        while ((b = TAILQ_FIRST(&claim->buffers))) {
                TAILQ_REMOVE(&claim->buffers, b, link);
                buffer_unmap_free(b);
        }
        TAILQ_REMOVE(&claim->ctx->claims, claim, link);
        free(claim->object);
        free(claim->device);
        free(claim->daemon);
        free(claim);
}

int claim_call_at(struct zcusb_claim *claim, OnEnded on_ended, const char *path, const char *interface,
                  const char *method, const char *what, sd_bus_message **reply, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        if (on_ended == ON_ENDED_FAIL) {
                r = claim_check_alive(claim);
                if (r < 0)
                        return r;
        } else if (on_ended == ON_ENDED_SKIP) {
                ctx_dispatch(claim->ctx);
                if (claim->ended)
                        return 0;
        }
        r = sd_bus_message_new_method_call(claim->ctx->bus, &m, claim->daemon, path, interface, method);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_call(claim->ctx->bus, m, 0, &error, reply);
        if (r < 0)
                return what ? ctx_bus_error(claim->ctx, r, &error, what) : r;
        return 0;
}

int claim_check_alive(struct zcusb_claim *claim) {
        int r;

        ctx_dispatch(claim->ctx);
        if (!claim->ended)
                return 0;
        r = streq(claim->end_reason, "revoked")                ? -EACCES :
            streq(claim->end_reason, "shutdown")               ? -ESHUTDOWN :
            streq(claim->end_reason, ZCUSB_END_DAEMON_GONE)    ? -ECONNRESET :
                                                                 -ENODEV;
        return ctx_errorf(claim->ctx, r, "the claim of interface %u on %s has ended (%s)", claim->interface,
                          claim->device, claim->end_reason);
}

/* An interactive claim may wait for a user at a polkit dialog: longer than
 * zcusbd's InteractiveTimeoutSec= default (300 s). */
#define INTERACTIVE_CLAIM_TIMEOUT_USEC (330ULL * 1000000ULL)

int zcusb_claim_interface(struct zcusb *ctx, const char *device, uint8_t interface, struct zcusb_claim **ret) {
        return zcusb_claim_interface_with_flags(ctx, device, interface, 0, ret);
}

int zcusb_claim_interface_with_flags(struct zcusb *ctx, const char *device, uint8_t interface, uint64_t flags,
                                     struct zcusb_claim **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *object = NULL, *what = NULL;
        struct zcusb_claim *claim;
        const char *path;
        int r;

        if (!ctx || !device || !ret || (flags & ~ZCUSB_CLAIM_FLAGS_ALL))
                return -EINVAL;

        r = ctx_watch_claims(ctx);
        if (r < 0)
                return ctx_errorf(ctx, r, "cannot subscribe to zcusbd's Ended signal: %s", zcusb_strerror(r));
        r = ctx_resolve_device(ctx, device, &object);
        if (r < 0)
                return r;

        if (asprintf(&what, "claiming interface %u of %s", interface, device) < 0)
                return -ENOMEM;
        if (flags == 0)
                r = sd_bus_call_method(ctx->bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, ZCUSB_MANAGER_INTERFACE,
                                       "ClaimInterface", &error, &reply, "oy", object, interface);
        else {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;

                r = sd_bus_message_new_method_call(ctx->bus, &call, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH,
                                                   ZCUSB_MANAGER_INTERFACE, "ClaimInterfaceWithFlags");
                if (r >= 0)
                        r = sd_bus_message_append(call, "oyt", object, interface, flags);
                if (r >= 0 && (flags & ZCUSB_CLAIM_INTERACTIVE))
                        r = sd_bus_message_set_allow_interactive_authorization(call, true);
                if (r >= 0)
                        r = sd_bus_call(ctx->bus, call,
                                        (flags & ZCUSB_CLAIM_INTERACTIVE) ? INTERACTIVE_CLAIM_TIMEOUT_USEC : 0,
                                        &error, &reply);
        }
        if (r < 0)
                return ctx_bus_error(ctx, r, &error, what);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctx_malformed(ctx, r, what);

        claim = calloc(1, sizeof(*claim));
        if (claim) {
                claim->ctx = ctx;
                claim->interface = interface;
                claim->device = TAKE_PTR(object);
                claim->object = strdup(path);
                claim->daemon = strdup(strempty(sd_bus_message_get_sender(reply)));
                TAILQ_INIT(&claim->buffers);
                TAILQ_INIT(&claim->queues);
                TAILQ_INSERT_TAIL(&ctx->claims, claim, link);
        }
        if (!claim || !claim->object || !claim->daemon) {
                /* Do not leave zcusbd holding an interface we cannot name. */
                (void) sd_bus_call_method(ctx->bus, sd_bus_message_get_sender(reply), path,
                                          ZCUSB_CLAIM_INTERFACE, "Release", NULL, NULL, "");
                if (claim)
                        claim_free(claim);
                return -ENOMEM;
        }
        *ret = claim;
        return 0;
}

int zcusb_claim_release(struct zcusb_claim *claim) {
        int r;

        if (!claim)
                return 0;
        ctx_dispatch(claim->ctx);
        /* Also for an ended claim: its object stays until released. The call
         * goes to the granting zcusbd's unique name: once that instance has
         * exited, this fails rather than activating a new one. */
        r = claim_call(claim, ON_ENDED_CALL, "Release", "releasing the claim", NULL, "");
        if (r < 0 && claim->ended && (r == -ENODEV || r == -EHOSTUNREACH))
                r = 0; /* gone with its device or its zcusbd: nothing left to release */
        /* After Release() nothing is in flight: unmapping cannot race a transfer. */
        claim_free(claim);
        return r;
}

const char *zcusb_claim_get_object_path(const struct zcusb_claim *claim) {
        return claim ? claim->object : NULL;
}

const char *zcusb_claim_get_device_path(const struct zcusb_claim *claim) {
        return claim ? claim->device : NULL;
}

uint8_t zcusb_claim_get_interface(const struct zcusb_claim *claim) {
        return claim ? claim->interface : 0;
}

int zcusb_claim_is_ended(struct zcusb_claim *claim, const char **ret_reason) {
        if (!claim)
                return -EINVAL;
        ctx_dispatch(claim->ctx);
        if (ret_reason)
                *ret_reason = claim->ended ? claim->end_reason : NULL;
        return claim->ended;
}

int zcusb_claim_set_alt_setting(struct zcusb_claim *claim, uint8_t alt_setting) {
        if (!claim)
                return -EINVAL;
        return claim_call(claim, ON_ENDED_FAIL, "SetAltSetting", "setting the alternate setting", NULL, "y",
                          alt_setting);
}

int zcusb_claim_clear_halt(struct zcusb_claim *claim, uint8_t endpoint) {
        if (!claim)
                return -EINVAL;
        return claim_call(claim, ON_ENDED_FAIL, "ClearHalt", "clearing the halt", NULL, "y", endpoint);
}

int zcusb_claim_get_usage(struct zcusb_claim *claim, struct zcusb_usage *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct zcusb_usage u = {};
        const struct {
                const char *name;
                char type;
                void *field;
        } props[] = {
                { "QuotaBytes", 't', &u.quota_bytes },
                { "UsedBytes",  't', &u.used_bytes },
                { "InFlight",   'u', &u.in_flight },
                { "Buffers",    'u', &u.buffers },
                { "Queues",     'u', &u.queues },
                { "AltSetting", 'y', &u.alt_setting },
                { "Backend",    's', NULL },
                { "Submitted",  't', &u.submitted },
                { "Completed",  't', &u.completed },
                { "Failed",     't', &u.failed },
                { "BytesIn",    't', &u.bytes_in },
                { "BytesOut",   't', &u.bytes_out },
        };
        const char *name;
        int r;

        if (!claim || !ret)
                return -EINVAL;
        r = claim_call_at(claim, ON_ENDED_FAIL, claim->object, PROPERTIES_INTERFACE, "GetAll",
                          "reading the claim's properties", &reply, "s", ZCUSB_CLAIM_INTERFACE);
        if (r < 0)
                return r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                size_t i;

                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        break;
                for (i = 0; i < ELEMENTSOF(props); i++)
                        if (streq(name, props[i].name))
                                break;
                if (i == ELEMENTSOF(props))
                        r = sd_bus_message_skip(reply, "v"); /* a newer zcusbd's property */
                else if (props[i].type == 's') {
                        const char *s;
                        r = sd_bus_message_read(reply, "v", "s", &s);
                        if (r >= 0)
                                snprintf(u.backend, sizeof(u.backend), "%s", s);
                } else {
                        const char sig[2] = { props[i].type, 0 };
                        r = sd_bus_message_read(reply, "v", sig, props[i].field);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return ctx_malformed(claim->ctx, r, "reading the claim's properties");
        *ret = u;
        return 0;
}

/* Search a Device's Interfaces property, a(yyyyysa(yyqy)), for ENDPOINT in
 * INTERFACE's alternate setting ALT. 1: found; 0: not there. */
static int interfaces_find_endpoint(sd_bus_message *m, uint8_t interface, uint8_t alt, uint8_t endpoint,
                                    struct zcusb_endpoint *ret) {
        int r;

        r = sd_bus_message_enter_container(m, 'v', "a(yyyyysa(yyqy))");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "(yyyyysa(yyqy))");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'r', "yyyyysa(yyqy)")) > 0) {
                uint8_t number, alt_setting, address, attributes, interval;
                uint16_t max_packet_size;

                r = sd_bus_message_read(m, "yyyyys", &number, &alt_setting, NULL, NULL, NULL, NULL);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(m, 'a', "(yyqy)");
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_read(m, "(yyqy)", &address, &attributes, &max_packet_size, &interval)) > 0)
                        if (number == interface && alt_setting == alt && address == endpoint) {
                                *ret = (struct zcusb_endpoint) {
                                        .address = address,
                                        .attributes = attributes,
                                        .max_packet_size = max_packet_size,
                                        .interval = interval,
                                };
                                return 1;
                        }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return r;
}

int zcusb_claim_get_endpoint(struct zcusb_claim *claim, uint8_t endpoint, struct zcusb_endpoint *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *alt_reply = NULL, *reply = NULL;
        uint8_t alt = 0;
        int r;

        if (!claim || !ret)
                return -EINVAL;
        r = claim_call_at(claim, ON_ENDED_FAIL, claim->object, PROPERTIES_INTERFACE, "Get",
                          "reading the claim's alternate setting", &alt_reply, "ss", ZCUSB_CLAIM_INTERFACE,
                          "AltSetting");
        if (r < 0)
                return r;
        r = sd_bus_message_read(alt_reply, "v", "y", &alt);
        if (r < 0)
                return ctx_malformed(claim->ctx, r, "reading the claim's alternate setting");
        r = claim_call_at(claim, ON_ENDED_CALL, claim->device, PROPERTIES_INTERFACE, "Get",
                          "reading the device's interfaces", &reply, "ss", ZCUSB_DEVICE_INTERFACE, "Interfaces");
        if (r < 0)
                return r;
        r = interfaces_find_endpoint(reply, claim->interface, alt, endpoint, ret);
        if (r < 0)
                return ctx_malformed(claim->ctx, r, "reading the device's interfaces");
        if (r == 0)
                return ctx_errorf(claim->ctx, -ENOENT, "interface %u, alternate setting %u of %s has no endpoint "
                                  "0x%02x", claim->interface, alt, claim->device, endpoint);
        return 0;
}
