/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "forward.h"

/* The org.zcusb1.Claim objects: each answers only the connection that made
 * it. The handlers read arguments, check, call one claim/buffer/queue
 * function and reply. */
extern const sd_bus_vtable claim_vtable[];
int claim_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error);
int claim_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);
/* Ended, to the claim's owner only. */
void claim_emit_ended(Claim *c);
/* Answer a pending Release() (when the claim is freed). */
void claim_reply_release(Claim *c);
