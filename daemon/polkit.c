/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log.h"
#include "polkit.h"
#include "util.h"

/* CheckAuthorization's flags (polkit's PolkitCheckAuthorizationFlags). */
#define POLKIT_CHECK_ALLOW_USER_INTERACTION UINT32_C(1)

int polkit_ask_async(sd_bus *bus, const PolkitQuestion *q, sd_bus_message_handler_t callback, void *userdata,
                     sd_bus_slot **ret_slot) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &call, POLKIT_BUS_NAME, POLKIT_AUTHORITY_PATH, POLKIT_AUTHORITY_IFACE,
                                           "CheckAuthorization");
        if (r < 0)
                return r;
        /* Subject: (sa{sv}) a system bus name; polkit resolves its pid,
         * uid and session itself, so nothing racy comes from us. */
        r = sd_bus_message_append(call, "(sa{sv})s", "system-bus-name", 1, "name", "s", q->subject_bus_name,
                                  q->action_id);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(call, 'a', "{ss}");
        if (r < 0)
                return r;
        for (char **d = q->details; d && d[0] && d[1]; d += 2) {
                r = sd_bus_message_append(call, "{ss}", d[0], d[1]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(call);
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "us", q->interactive ? POLKIT_CHECK_ALLOW_USER_INTERACTION : 0,
                                  strempty(q->cancellation_id));
        if (r < 0)
                return r;
        /* The authority may take as long as a user needs to type a password. */
        if (q->interactive) {
                r = sd_bus_message_set_allow_interactive_authorization(call, true);
                if (r < 0)
                        return r;
        }
        return sd_bus_call_async(bus, ret_slot, call, callback, userdata, q->timeout_usec);
}

PolkitAnswer polkit_read_answer(sd_bus_message *reply, const char **ret_why) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int authorized, challenge, r;
        const char *key, *value;
        bool dismissed = false;

        *ret_why = NULL;
        if (e) {
                if (sd_bus_error_has_name(e, "org.freedesktop.PolicyKit1.Error.Cancelled"))
                        return POLKIT_DISMISSED;
                if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        *ret_why = "polkit is not running (no org.freedesktop.PolicyKit1 on the system bus)";
                else if (sd_bus_error_has_names(e, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT))
                        *ret_why = "polkit did not answer in time";
                else
                        *ret_why = e->message ?: e->name;
                return POLKIT_UNAVAILABLE;
        }

        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &key, &value)) > 0)
                if (streq(key, "polkit.dismissed") && parse_boolean(value) > 0)
                        dismissed = true;
        if (r < 0) {
                log_debug_errno(r, "Malformed CheckAuthorization reply: %m");
                *ret_why = "polkit's answer was malformed";
                return POLKIT_UNAVAILABLE;
        }
        if (authorized)
                return POLKIT_AUTHORIZED;
        if (dismissed)
                return POLKIT_DISMISSED;
        if (challenge)
                return POLKIT_CHALLENGE;
        return POLKIT_NOT_AUTHORIZED;
}

void polkit_cancel(sd_bus *bus, const char *cancellation_id) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        if (isempty(cancellation_id))
                return;
        r = sd_bus_message_new_method_call(bus, &call, POLKIT_BUS_NAME, POLKIT_AUTHORITY_PATH, POLKIT_AUTHORITY_IFACE,
                                           "CancelCheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(call, "s", cancellation_id);
        if (r >= 0)
                r = sd_bus_message_set_expect_reply(call, false);
        if (r >= 0)
                r = sd_bus_send(bus, call, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot ask polkit to cancel %s: %m", cancellation_id);
}

const char *polkit_answer_to_string(PolkitAnswer a) {
        switch (a) {
        case POLKIT_AUTHORIZED:     return "authorized";
        case POLKIT_NOT_AUTHORIZED: return "not authorized";
        case POLKIT_CHALLENGE:      return "authentication required";
        case POLKIT_DISMISSED:      return "dismissed";
        case POLKIT_UNAVAILABLE:    return "unavailable";
        }
        return "?";
}
