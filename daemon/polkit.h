/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/* Asking polkit (org.freedesktop.PolicyKit1.Authority.CheckAuthorization)
 * over sd-bus, asynchronously: the question goes out, the answer comes back
 * as a method reply (or an error: no authority, no answer in time). No GLib,
 * and never a blocking call on the loop that also serves the rings.
 *
 * Who owns a question: whoever holds the slot. Dropping the slot before the
 * answer makes sd-bus forget the callback; polkit_cancel() additionally asks
 * polkit to take down an authentication dialog it may be showing. */

#define POLKIT_BUS_NAME        "org.freedesktop.PolicyKit1"
#define POLKIT_AUTHORITY_PATH  "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_AUTHORITY_IFACE "org.freedesktop.PolicyKit1.Authority"

typedef enum PolkitAnswer {
        POLKIT_AUTHORIZED,
        POLKIT_NOT_AUTHORIZED,
        POLKIT_CHALLENGE,   /* would be authorized after authentication, which was not allowed */
        POLKIT_DISMISSED,   /* an authentication dialog was dismissed or cancelled */
        POLKIT_UNAVAILABLE, /* no authority on the bus, an error, or no answer in time */
} PolkitAnswer;

typedef struct PolkitQuestion {
        const char *subject_bus_name; /* the caller: polkit looks up its process and session */
        const char *action_id;
        char **details;               /* key, value, key, value, ..., NULL; may be NULL */
        bool interactive;             /* AllowUserInteraction */
        const char *cancellation_id;  /* for polkit_cancel(); may be NULL */
        uint64_t timeout_usec;
} PolkitQuestion;

/* Send the question; CALLBACK gets the reply (or sd-bus's synthesized error)
 * as a method reply handler. The slot is the caller's. */
int polkit_ask_async(sd_bus *bus, const PolkitQuestion *q, sd_bus_message_handler_t callback, void *userdata,
                     sd_bus_slot **ret_slot);

/* Reads a reply of CheckAuthorization (or the error that took its place).
 * For POLKIT_UNAVAILABLE a sentence saying why goes to *ret_why (static or
 * the error's message: valid as long as REPLY). */
PolkitAnswer polkit_read_answer(sd_bus_message *reply, const char **ret_why);

/* Ask polkit to drop a pending (interactive) check; nothing waits for it. */
void polkit_cancel(sd_bus *bus, const char *cancellation_id);

const char *polkit_answer_to_string(PolkitAnswer a);
