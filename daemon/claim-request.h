/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-bus.h>

#include "forward.h"
#include "policy.h"

/* A ClaimInterface call on its way to a claim. udev policy answers most at
 * once; an interface it does not grant but marks ZCUSB_POLKIT=1 makes the
 * call wait here for polkit (action org.zcusb1.claim).
 *
 * Life cycle, one owner: claim_request_new() links the request into the
 * manager (bounded per caller and in all) and sends the question;
 * claim_request_free() unlinks it, drops the question (sd-bus forgets the
 * callback; polkit is asked to take down a dialog it may be showing) and
 * frees. The caller gets exactly one reply: from the answer (a claim or a
 * named error), or Busy when zcusbd stops first; none when it left. */
struct ClaimRequest {
        Manager *manager;
        uint64_t id;
        sd_bus_message *message; /* the method call, answered once */
        char *sender;
        Caller caller;           /* a copy: the credential cache may drop its entry meanwhile */
        char *device_path;
        uint64_t device_id;      /* the same device, not one that took its path since */
        uint8_t interface;
        bool interactive;
        char *cancellation_id;
        sd_bus_slot *slot;       /* the question in flight */
        TAILQ_ENTRY(ClaimRequest) link;
};

/* ClaimInterface after its arguments: decide, claim and reply now, or leave
 * a ClaimRequest that replies later (returns 1 then, like a handler that
 * replied). FLAGS: ZCUSB_CLAIM_* (checked by the caller). */
int manager_claim_interface(Manager *m, sd_bus_message *message, const Caller *caller, const char *device_path,
                            uint8_t interface, uint64_t flags, sd_bus_error *error);

ClaimRequest *claim_request_free(ClaimRequest *r);

/* NAME's connection is gone: its pending requests go, unanswered. */
void manager_drop_claim_requests_of(Manager *m, const char *name);
/* zcusbd is stopping: every pending request gets Busy and goes. */
void manager_abort_claim_requests(Manager *m);
