/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The harness of the claim/queue/transfer life-cycle tests: a manager
 * without a bus, a device built by hand, a peer, and a client that talks to
 * its queue through its own mapping of the ring memfd (as a real one does),
 * over the fake backend. */
#include <stdbool.h>
#include <stdint.h>

#include "fake-backend.h"
#include "manager.h"
#include "quota.h"
#include "zcusb-ring.h"

#define TEST_UID 1000
#define QUEUE_ENTRIES 8
#define BUFFER_SIZE (64 * 1024)
#define CHUNK 512
#define EP_IN 0x81
#define EP_OUT 0x02
#define MSEC 1000u

/* One vendor interface with a bulk pair (interface 0), and a second one
 * (interface 1) with an interrupt IN endpoint. */

/* The client's view of its queue: its own mapping of the ring memfd, which
 * outlives zcusbd's (the completions of a freed claim are still readable). */
typedef struct Client {
        uint8_t *map;
        size_t size;
        struct zcusb_ring_header *header;
        struct zcusb_sqe *sq;
        struct zcusb_cqe *cq;
        uint32_t sq_tail, cq_head;
        int submit_fd;            /* the doorbell: zcusbd's end of the same eventfd */
        struct zcusb_cqe reaped[256];
        size_t n_reaped;
} Client;

typedef struct Harness {
        Manager *m;
        Device *device;
        Peer *peer;
        Claim *claim;
        Buffer *buffer;
        Queue *queue;
        Client client;
        uint64_t charged_at_start; /* the peer's bytes once buffer and queue exist */
        unsigned interfaces_claimed; /* each must be closed exactly once */
} Harness;

void run_until_idle(Manager *m);
Device *fake_device_new(Manager *m);
void harness_new(Harness *h, const Config *overrides);
Peer *peer_new_checked(Manager *m, const char *name);
void client_map(Client *cl, Queue *q, int fd);
void harness_claim(Harness *h);
uint32_t client_sq_head(const Client *cl);
void client_push(Client *cl, const struct zcusb_sqe *sqe);
void client_reap(Client *cl);
unsigned client_completions(const Client *cl, uint64_t user_data, struct zcusb_cqe *ret);
void check_completed(const Client *cl, uint64_t user_data, int status);
void settle(Harness *h);
void settle_all_taken(Harness *h);
struct zcusb_sqe bulk_sqe(uint8_t endpoint, uint64_t user_data, uint32_t timeout_ms);
void submit_bulk(Harness *h, uint8_t endpoint, uint64_t user_data, uint32_t timeout_ms);
void submit_cancel(Harness *h, uint64_t user_data, uint64_t target);
FakeTransfer *fake_transfer_for(uint64_t user_data);
void check_in_flight(const Harness *h, unsigned n);
void check_account_empty(const QuotaAccount *a);
bool ring_is_dead(const Client *cl, int end_status);
void harness_release(Harness *h);
void harness_finish(Harness *h, const char *scenario, bool peer_alive);
