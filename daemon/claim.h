/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "backend.h"
#include "forward.h"

typedef enum ClaimEnd {
        CLAIM_ACTIVE,
        CLAIM_END_RELEASED,       /* Release(), or the client went away */
        CLAIM_END_DEVICE_REMOVED,
        CLAIM_END_REVOKED,        /* policy no longer allows the owner */
        CLAIM_END_SHUTDOWN,       /* zcusbd is stopping */
} ClaimEnd;

/* One claimed interface, owned by one client (bus connection). */
struct Claim {
        Manager *manager;
        Client *client;
        Device *device;           /* NULL once the device is gone */
        const BackendOps *backend;
        BackendDevice *handle;

        uint64_t id;
        char *object_path;
        uint8_t interface_number;
        uint8_t alt_setting;
        char *detached_driver;    /* re-attached on release */

        TAILQ_HEAD(, Buffer) buffers;
        TAILQ_HEAD(, Queue) queues;
        TAILQ_HEAD(, Transfer) in_flight;
        uint32_t n_buffers, n_queues, n_in_flight;
        uint32_t next_buffer_id, next_queue_id;
        uint64_t charged_bytes;   /* this claim's part of its client's usage */

        uint64_t submitted, completed, failed, bytes_in, bytes_out;

        /* Ending: in-flight transfers are cancelled with end_status; once
         * none is left the interface is released and Ended is signalled; the
         * object itself goes when released or its client leaves. */
        ClaimEnd end;
        int end_status;
        bool free_when_drained;
        bool interface_released;
        bool ended_signalled;
        sd_event_source *finish_source;
        sd_bus_message *release_reply;

        TAILQ_ENTRY(Claim) client_link;
        TAILQ_ENTRY(Claim) device_link;
        TAILQ_ENTRY(Claim) manager_link;
};

/* Claims INTERFACE of D for C. Bus errors (AccessDenied, Busy, ...) go to
 * *error with a sentence for the caller. */
int claim_new(Client *c, Device *d, uint8_t interface, Claim **ret, sd_bus_error *error);

/* Begin ending the claim (idempotent; a later call can only add
 * free_when_drained). */
void claim_stop(Claim *c, ClaimEnd why, bool free_when_drained);

/* A transfer of this claim ended: finish an ending claim once drained. */
void claim_transfer_finished(Claim *c);

Buffer *claim_find_buffer(Claim *c, uint32_t id);
/* Unlink, uncharge and free a buffer no transfer uses. */
void claim_drop_buffer(Claim *c, Buffer *b);
Queue *claim_find_queue(Claim *c, uint32_t id);

/* Charge/uncharge bytes to the claim's client (and uid, and everyone). */
int claim_charge(Claim *c, uint64_t bytes, sd_bus_error *error);
void claim_uncharge(Claim *c, uint64_t bytes);

const char *claim_end_to_string(ClaimEnd e);
int claim_end_status(ClaimEnd e);

/* claim-dbus.c */
extern const sd_bus_vtable claim_vtable[];
int claim_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error);
int claim_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);
void claim_emit_ended(Claim *c);
void claim_reply_release(Claim *c);
