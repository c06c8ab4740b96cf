/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "backend.h"
#include "forward.h"
#include "quota.h"

typedef enum ClaimEnd {
        CLAIM_ACTIVE,
        CLAIM_END_RELEASED,       /* Release(), or the client went away */
        CLAIM_END_DEVICE_REMOVED,
        CLAIM_END_REVOKED,        /* policy no longer allows the owner */
        CLAIM_END_SHUTDOWN,       /* zcusbd is stopping */
} ClaimEnd;

/* One claimed interface, owned by one peer (bus connection).
 *
 * Life cycle: claim_new() claims the interface, links the claim into its
 * device, peer and manager and takes its ClaimsPerClient= count;
 * claim_free() undoes all of it. In between, claim_stop() ends it:
 * in-flight transfers are cancelled with end_status, and the manager's GC
 * pass (manager_on_gc) releases the interface and sends Ended once nothing is
 * in flight (claim_finish), and frees the claim once claim_may_gc() says so
 * (released, or its peer gone). Nothing frees a claim from deeper down. */
struct Claim {
        Manager *manager;
        Peer *peer;
        Device *device;           /* NULL once the device is gone */
        const BackendOps *backend;
        BackendInterface *backend_interface; /* NULL once released */

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
        uint64_t charged_bytes;   /* this claim's part of its peer's usage */
        void *transfer_cache;     /* ended bulk/interrupt Transfer blocks (transfer.c) */
        uint32_t n_transfer_cache;

        /* Counted by zcusbd (queue.c, transfer.c), and by the kernel for
         * queues it served once they are detached (claim_add_counters). */
        TransferCounters counted; /* in_flight unused: n_in_flight is the claim's */
        /* The counters as read for one bus message (claim-dbus.c), which
         * this holds a reference on: every counter property of one GetAll
         * comes from one read. */
        sd_bus_message *counters_message;
        TransferCounters counters_snapshot;

        ClaimEnd end;
        int end_status;
        bool free_when_drained;   /* released, or its peer gone: free once drained */
        bool interface_released;
        bool ended_signalled;
        bool granted_by_polkit;   /* polkit said yes: it holds while udev policy still defers to polkit */
        bool in_gc_queue;
        sd_bus_message *release_reply;

        TAILQ_ENTRY(Claim) peer_link;
        TAILQ_ENTRY(Claim) device_link;
        TAILQ_ENTRY(Claim) manager_link;
        TAILQ_ENTRY(Claim) gc_link;
};

/* Claims INTERFACE of D for peer P. Bus errors (AccessDenied, Busy, ...) go
 * to *error with a sentence for the caller; then nothing is left behind. */
int claim_new(Peer *p, Device *d, uint8_t interface, Claim **ret, sd_bus_error *error);
/* Could INTERFACE of D be claimed now (it exists, nobody holds it)? Else a
 * bus error in *error. PEER (may be NULL) only words the answer. */
int claim_check_interface(Device *d, const Peer *peer, uint8_t interface, sd_bus_error *error);
/* Unlink, uncharge and free; only the GC pass calls it. */
Claim *claim_free(Claim *c);

/* Begin ending the claim (idempotent; a later call can only add
 * free_when_drained). Never frees. */
void claim_stop(Claim *c, ClaimEnd why, bool free_when_drained);

void claim_add_to_gc_queue(Claim *c);
/* Once an ended claim has nothing in flight: release the interface and send
 * Ended (each once). For the GC pass. */
void claim_finish(Claim *c);
bool claim_may_gc(const Claim *c);

/* The device is gone: end the claim (-ENODEV for everything in flight). */
void claim_device_removed(Claim *c);

/* A transfer of this claim ended: an ending claim may now be drained. */
void claim_transfer_finished(Claim *c);

Buffer *claim_find_buffer(Claim *c, uint32_t id);
Queue *claim_find_queue(Claim *c, uint32_t id);

/* Charge/uncharge bytes to the claim's peer (and uid, and everyone):
 * -EDQUOT with a QuotaExceeded sentence in *error. */
int claim_charge(Claim *c, uint64_t bytes, sd_bus_error *error);
void claim_uncharge(Claim *c, uint64_t bytes);
/* Take/put one of the claim's peer's counted objects (QUOTA_BUFFERS, ...). */
int claim_take_count(Claim *c, QuotaCount kind, sd_bus_error *error);
void claim_put_count(Claim *c, QuotaCount kind);

/* The claim's transfer counters as its properties show them: its own, plus
 * what the kernel counts for the queues it serves now (one backend call per
 * such queue). */
void claim_get_counters(Claim *c, TransferCounters *ret);
/* A kernel served one of C's queues no more: what it counted becomes C's
 * own (its in_flight aside: nothing of it is in flight any more). */
void claim_add_counters(Claim *c, const TransferCounters *n);

const char *claim_end_to_string(ClaimEnd e);
int claim_end_status(ClaimEnd e);
