/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "claim-request.h"
#include "claim.h"
#include "device.h"
#include "log.h"
#include "manager.h"
#include "peer.h"
#include "polkit.h"
#include "util.h"
#include "zcusb-dbus.h"

/* Waiting for polkit costs zcusbd a little memory and polkitd some work: a
 * caller gets a few at a time (one dialog is all a user can answer), all
 * callers together a bounded number. */
#define CLAIM_REQUESTS_PER_CALLER 4u
#define CLAIM_REQUESTS_PER_USER   16u /* one user's many connections cannot take every slot */
#define CLAIM_REQUESTS_MAX        128u

/* Acquire the peer, claim, reply. A refused claim leaves nothing behind. */
static int claim_grant(Manager *m, sd_bus_message *message, const Caller *caller, Device *d, uint8_t interface,
                       bool by_polkit, sd_bus_error *error) {
        Claim *claim;
        Peer *peer;
        int r;

        /* A peer that ends up without the claim is collected by the next GC
         * pass. */
        r = manager_acquire_peer(m, message, caller, &peer, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        r = claim_new(peer, d, interface, &claim, error);
        if (r < 0 || sd_bus_error_is_set(error))
                return r;
        claim->granted_by_polkit = by_polkit;
        r = sd_bus_reply_method_return(message, "o", claim->object_path);
        if (r < 0) /* the caller never learns of it: nothing may stay */
                claim_stop(claim, CLAIM_END_RELEASED, true);
        return r;
}

ClaimRequest *claim_request_free(ClaimRequest *r) {
        if (!r)
                return NULL;
        TAILQ_REMOVE(&r->manager->claim_requests, r, link);
        r->manager->n_claim_requests--;
        if (r->slot) {
                /* Still asking: a dialog may be up for a caller that is gone. */
                if (r->interactive && r->manager->bus)
                        polkit_cancel(r->manager->bus, r->cancellation_id);
                sd_bus_slot_unref(r->slot);
        }
        sd_bus_message_unref(r->message);
        caller_done(&r->caller);
        free(r->sender);
        free(r->device_path);
        free(r->cancellation_id);
        free(r);
        return NULL;
}

static void claim_request_freep(ClaimRequest **r) {
        claim_request_free(*r);
}

static const char *usb_class_name(uint8_t class) {
        switch (class) {
        case 0x01: return "audio";
        case 0x02: return "communications";
        case 0x03: return "human interface device";
        case 0x05: return "physical";
        case 0x06: return "still image";
        case 0x07: return "printer";
        case 0x08: return "mass storage";
        case 0x0a: return "CDC data";
        case 0x0b: return "smart card";
        case 0x0d: return "content security";
        case 0x0e: return "video";
        case 0x0f: return "personal healthcare";
        case 0x10: return "audio/video";
        case 0xdc: return "diagnostic";
        case 0xe0: return "wireless controller";
        case 0xef: return "miscellaneous";
        case 0xfe: return "application specific";
        case 0xff: return "vendor specific";
        }
        return "unknown";
}

/* The calling program, for the dialog only: polkit decides by the bus name,
 * never by this (a pid can be reused; comm is what the process calls itself).
 * Under the shipped unit (no CAP_SYS_PTRACE, ProtectProc=invisible) another
 * user's /proc entries are hidden: then the process is named by pid and uid. */
static void caller_program(const Caller *caller, char *buf, size_t size) {
        char path[64];
        ssize_t n;

        snprintf(buf, size, "process %d of uid %u", (int) caller->pid, (unsigned) caller->uid);
        if (caller->pid <= 0)
                return;
        snprintf(path, sizeof(path), "/proc/%d/exe", (int) caller->pid);
        n = readlink(path, buf, size - 1);
        if (n > 0) {
                buf[n] = '\0';
                return;
        }
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) caller->pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return;
        char comm[32];
        n = read(fd, comm, sizeof(comm) - 1);
        if (n <= 0)
                return;
        comm[n] = '\0';
        comm[strcspn(comm, "\n")] = '\0';
        snprintf(buf, size, "%s (process %d of uid %u)", comm, (int) caller->pid, (unsigned) caller->uid);
}

/* What a polkit agent shows ($(product) ... in the action's message) and what
 * an administrator's rule matches (action.lookup("vendor_id")). */
typedef struct ClaimDetails {
        char vendor_id[8], product_id[8], interface[8], interface_class[8], program[512];
        char *strv[2 * 12 + 1];
} ClaimDetails;

static void claim_details_fill(ClaimDetails *x, const Device *d, uint8_t interface, const Caller *caller) {
        const UsbAltSetting *alt = NULL;
        size_t n = 0;

        for (size_t i = 0; i < d->descriptors.n_alt_settings && !alt; i++)
                if (d->descriptors.alt_settings[i].interface_number == interface)
                        alt = &d->descriptors.alt_settings[i];
        snprintf(x->vendor_id, sizeof(x->vendor_id), "%04x", d->vendor_id);
        snprintf(x->product_id, sizeof(x->product_id), "%04x", d->product_id);
        snprintf(x->interface, sizeof(x->interface), "%u", interface);
        snprintf(x->interface_class, sizeof(x->interface_class), "%02x", alt ? alt->class : 0);
        caller_program(caller, x->program, sizeof(x->program));

#define DETAIL(k, v) (x->strv[n++] = (char *) (k), x->strv[n++] = (char *) (v))
        DETAIL("device", d->object_path);
        DETAIL("devpath", d->sysname);
        DETAIL("vendor_id", x->vendor_id);
        DETAIL("product_id", x->product_id);
        DETAIL("vendor", isempty(d->manufacturer) ? "an unknown vendor" : d->manufacturer);
        DETAIL("product", isempty(d->product) ? "a USB device" : d->product);
        DETAIL("serial", d->serial);
        DETAIL("interface", x->interface);
        DETAIL("interface_class", x->interface_class);
        DETAIL("interface_class_name", alt ? usb_class_name(alt->class) : "unknown");
        DETAIL("program", x->program);
#undef DETAIL
        x->strv[n] = NULL;
}

static int claim_request_on_answer(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(claim_request_freep) ClaimRequest *req = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Manager *m = req->manager;
        const char *why = NULL;
        PolkitAnswer answer;
        Device *d;
        int r = 0;

        (void) ret_error;
        /* The answer came: nothing to cancel any more. */
        req->slot = sd_bus_slot_unref(req->slot);
        answer = polkit_read_answer(reply, &why);
        log_info("polkit: %s for %s (uid %u), interface %u of %s.", polkit_answer_to_string(answer), req->sender,
                 (unsigned) req->caller.uid, req->interface, req->device_path);

        d = manager_find_device_by_path(m, req->device_path);
        switch (answer) {
        case POLKIT_AUTHORIZED:
                if (m->shutting_down)
                        r = sd_bus_error_setf(&error, ZCUSB_ERROR_BUSY, "zcusbd is stopping.");
                else if (!d || d->id != req->device_id)
                        r = sd_bus_error_setf(&error, ZCUSB_ERROR_NO_SUCH_DEVICE,
                                              "The USB device %s went away while polkit was asked.",
                                              req->device_path);
                /* udev policy may have changed meanwhile: polkit's yes counts
                 * only where it still may. */
                else if (device_claim_verdict(d, &req->caller, req->interface) == POLICY_DENY)
                        r = sd_bus_error_setf(&error, ZCUSB_ERROR_ACCESS_DENIED,
                                              "You may not claim interface %u of %s (its udev policy changed).",
                                              req->interface, req->device_path);
                else
                        r = claim_grant(m, req->message, &req->caller, d, req->interface, true, &error);
                break;
        case POLKIT_NOT_AUTHORIZED:
                r = sd_bus_error_setf(&error, ZCUSB_ERROR_ACCESS_DENIED,
                                      "You may not claim interface %u of %s: polkit refused action "
                                      ZCUSB_POLKIT_ACTION_CLAIM " (no rule or default grants it to you here; "
                                      "ask an administrator).", req->interface, req->device_path);
                break;
        case POLKIT_CHALLENGE:
                r = sd_bus_error_setf(&error, ZCUSB_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                      "Claiming interface %u of %s needs authentication; ask again allowing "
                                      "interaction (ClaimInterfaceWithFlags with ZCUSB_CLAIM_INTERACTIVE, or "
                                      "the ALLOW_INTERACTIVE_AUTHORIZATION message flag).",
                                      req->interface, req->device_path);
                break;
        case POLKIT_DISMISSED:
                r = sd_bus_error_setf(&error, ZCUSB_ERROR_AUTHORIZATION_CANCELLED,
                                      "The authentication to claim interface %u of %s was cancelled.",
                                      req->interface, req->device_path);
                break;
        case POLKIT_UNAVAILABLE:
                log_warning("Cannot ask polkit about interface %u of %s: %s.", req->interface, req->device_path,
                            why);
                r = sd_bus_error_setf(&error, ZCUSB_ERROR_AUTHORIZATION_UNAVAILABLE,
                                      "Interface %u of %s is granted by polkit only, and %s; try again, or ask "
                                      "an administrator to check polkitd (systemctl status polkit).",
                                      req->interface, req->device_path, why);
                break;
        }
        if (r < 0 || sd_bus_error_is_set(&error)) {
                if (sd_bus_error_is_set(&error))
                        (void) sd_bus_reply_method_error(req->message, &error);
                else
                        (void) sd_bus_reply_method_errorf(req->message, ZCUSB_ERROR_FAILED,
                                                          "zcusbd could not serve the call: %s.", strerror(-r));
        }
        return 0;
}

static int claim_request_new(Manager *m, sd_bus_message *message, const Caller *caller, Device *d,
                             uint8_t interface, bool interactive, sd_bus_error *error) {
        _cleanup_(claim_request_freep) ClaimRequest *req = NULL;
        const char *sender = sd_bus_message_get_sender(message);
        ClaimDetails details;
        ClaimRequest *i;
        unsigned of_sender = 0, of_user = 0;
        int r;

        if (!sender)
                return -EBADMSG;
        TAILQ_FOREACH(i, &m->claim_requests, link) {
                of_sender += streq(i->sender, sender);
                of_user += i->caller.uid == caller->uid;
        }
        if (of_sender >= CLAIM_REQUESTS_PER_CALLER || of_user >= CLAIM_REQUESTS_PER_USER ||
            m->n_claim_requests >= CLAIM_REQUESTS_MAX)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY,
                                         "Too many claims are waiting for polkit; retry once they are answered.");

        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        req->manager = m;
        TAILQ_INSERT_TAIL(&m->claim_requests, req, link);
        m->n_claim_requests++;
        req->id = ++m->next_claim_request_id;
        req->message = sd_bus_message_ref(message);
        req->device_id = d->id;
        req->interface = interface;
        req->interactive = interactive;
        r = caller_copy(caller, &req->caller);
        if (r < 0)
                return r;
        req->sender = strdup(sender);
        req->device_path = strdup(d->object_path);
        if (!req->sender || !req->device_path ||
            asprintf(&req->cancellation_id, "zcusb-claim-%" PRIu64, req->id) < 0)
                return -ENOMEM;

        claim_details_fill(&details, d, interface, caller);
        r = polkit_ask_async(m->bus, &(PolkitQuestion) {
                                     .subject_bus_name = sender,
                                     .action_id = ZCUSB_POLKIT_ACTION_CLAIM,
                                     .details = details.strv,
                                     .interactive = interactive,
                                     .cancellation_id = req->cancellation_id,
                                     .timeout_usec = (uint64_t) (interactive ? m->config.polkit_interactive_timeout_sec
                                                                             : m->config.polkit_timeout_sec) *
                                                     1000000u,
                             },
                             claim_request_on_answer, req, &req->slot);
        if (r < 0)
                return sd_bus_error_setf(error, ZCUSB_ERROR_AUTHORIZATION_UNAVAILABLE,
                                         "zcusbd cannot ask polkit: %s.", strerror(-r));
        log_debug("Asking polkit whether %s (uid %u) may claim interface %u of %s%s.", sender,
                  (unsigned) caller->uid, interface, d->object_path, interactive ? ", interactively" : "");
        TAKE_PTR(req);
        return 1;
}

int manager_claim_interface(Manager *m, sd_bus_message *message, const Caller *caller, const char *device_path,
                            uint8_t interface, uint64_t flags, sd_bus_error *error) {
        Device *d;

        if (m->shutting_down)
                return sd_bus_error_setf(error, ZCUSB_ERROR_BUSY, "zcusbd is stopping.");
        d = manager_find_device_by_path(m, device_path);
        if (!d)
                return sd_bus_error_setf(error, ZCUSB_ERROR_NO_SUCH_DEVICE, "No USB device at %s.", device_path);
        if (!device_visible_to(d, caller))
                return sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED, "You may not access the USB device %s.",
                                         device_path);
        switch (device_claim_verdict(d, caller, interface)) {
        case POLICY_ALLOW:
                return claim_grant(m, message, caller, d, interface, false, error);
        case POLICY_ASK_POLKIT: {
                /* No dialog for what could not be had anyway. */
                int r = claim_check_interface(d, manager_find_peer(m, strempty(sd_bus_message_get_sender(message))),
                                              interface, error);
                if (r < 0 || sd_bus_error_is_set(error))
                        return r;
                return claim_request_new(m, message, caller, d, interface,
                                         (flags & ZCUSB_CLAIM_INTERACTIVE) ||
                                                 sd_bus_message_get_allow_interactive_authorization(message) > 0,
                                         error);
        }
        case POLICY_DENY:
                break;
        }
        return sd_bus_error_setf(error, ZCUSB_ERROR_ACCESS_DENIED, "You may not claim interface %u of %s.", interface,
                                 device_path);
}

void manager_drop_claim_requests_of(Manager *m, const char *name) {
        ClaimRequest *r, *next;

        TAILQ_FOREACH_SAFE(r, &m->claim_requests, link, next)
                if (streq(r->sender, name)) {
                        log_debug("%s left while polkit was asked about interface %u of %s.", name, r->interface,
                                  r->device_path);
                        claim_request_free(r);
                }
}

void manager_abort_claim_requests(Manager *m) {
        ClaimRequest *r;

        while ((r = TAILQ_FIRST(&m->claim_requests))) {
                (void) sd_bus_reply_method_errorf(r->message, ZCUSB_ERROR_BUSY, "zcusbd is stopping.");
                claim_request_free(r);
        }
}
