/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buffer.h"
#include "claim.h"
#include "config.h"
#include "device.h"
#include "fake-backend.h"
#include "lifecycle-harness.h"
#include "log.h"
#include "manager.h"
#include "peer.h"
#include "queue.h"
#include "tests.h"
#include "transfer.h"
#include "usb-descriptors.h"
#include "util.h"
#include "zcusb-dbus.h"
#include "zcusb-ring.h"

static const uint8_t raw_descriptors[] = {
        18, 1, 0x00, 0x02, 0xff, 0, 0, 64, 0x6b, 0x1d, 0x04, 0x01, 0x00, 0x01, 1, 2, 3, 1,
        /* wTotalLength = 9 + 9 + 7 + 7 + 9 + 7 = 48 */
        9, 2, 48, 0, 2, 1, 0, 0x80, 50,
        9, 4, 0, 0, 2, 0xff, 0, 0, 0,
        7, 5, EP_IN, 2, 0x00, 0x02, 0,
        7, 5, EP_OUT, 2, 0x00, 0x02, 0,
        9, 4, 1, 0, 1, 0xff, 0, 0, 0,
        7, 5, 0x83, 3, 0x40, 0x00, 4,
};

void run_until_idle(Manager *m) {
        for (unsigned i = 0; i < 10000; i++) {
                int r;

                /* manager_shutdown(): the loop exited, nothing more runs. */
                if (sd_event_get_state(m->event) == SD_EVENT_FINISHED)
                        return;
                r = sd_event_run(m->event, 0);
                check(r >= 0);
                if (r == 0)
                        return;
        }
        check(!"the event loop never went idle");
}

Device *fake_device_new(Manager *m) {
        Device *d = calloc(1, sizeof(*d));

        check(d);
        d->manager = m;
        TAILQ_INIT(&d->claims);
        d->syspath = strdup("/sys/devices/fake/usb1/1-1");
        d->sysname = strdup("1-1");
        d->object_path = strdup(ZCUSB_DEVICE_PATH_PREFIX "/usb1_2");
        d->devnode = strdup("/dev/bus/usb/001/002");
        d->manufacturer = strdup("zcusb");
        d->product = strdup("fake");
        d->serial = strdup("");
        d->speed = strdup("high");
        check(d->syspath && d->sysname && d->object_path && d->devnode && d->manufacturer && d->product &&
              d->serial && d->speed);
        d->bus_number = 1;
        d->device_address = 2;
        d->vendor_id = 0x1d6b;
        d->product_id = 0x0104;
        d->active_configuration = 1;
        check(usb_descriptors_parse(raw_descriptors, sizeof(raw_descriptors), 1, &d->descriptors) == 0);
        check(d->descriptors.n_alt_settings == 2);
        TAILQ_INSERT_TAIL(&m->devices, d, link);
        m->n_devices++;
        return d;
}

void harness_new(Harness *h, const Config *overrides) {
        Config config;

        *h = (Harness) {};
        fake_backend_reset();
        if (overrides)
                config = *overrides;
        else
                config_init(&config);
        /* claim_attach() then tries m->backend alone: no usbfs fallback. */
        config.backend = BACKEND_CHOICE_MODULE;
        config.load_module = false;
        check(manager_new(&config, &h->m) == 0);
        h->m->backend = &fake_backend;
        h->device = fake_device_new(h->m);
}

Peer *peer_new_checked(Manager *m, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const Caller caller = { .uid = TEST_UID };
        Peer *p = NULL;

        check(peer_new(m, name, &caller, &p, &error) == 0);
        check(p);
        /* Subscribed, so the GC pass keeps it past its last claim and its
         * account can be checked empty; harness_finish unsubscribes it. */
        p->subscribed = true;
        return p;
}

void client_map(Client *cl, Queue *q, int fd) {
        cl->size = q->size;
        cl->map = mmap(NULL, cl->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        check(cl->map != MAP_FAILED);
        cl->header = (struct zcusb_ring_header *) cl->map;
        check(cl->header->magic == ZCUSB_RING_MAGIC);
        cl->sq = (struct zcusb_sqe *) (cl->map + cl->header->sq_offset);
        cl->cq = (struct zcusb_cqe *) (cl->map + cl->header->cq_offset);
        cl->submit_fd = q->submit_fd;
}

/* Claim interface 0, allocate a buffer and open a queue, as a client's
 * ClaimInterface, AllocBuffer and OpenQueue calls would. */
void harness_claim(Harness *h) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int buffer_fd = -EBADF, queue_fd = -EBADF;

        h->peer = peer_new_checked(h->m, ":1.42");
        check(claim_new(h->peer, h->device, 0, &h->claim, &error) == 0);
        h->interfaces_claimed++;
        check(buffer_new(h->claim, BUFFER_SIZE, &h->buffer, &buffer_fd, &error) == 0);
        check(queue_new(h->claim, QUEUE_ENTRIES, &h->queue, &queue_fd, &error) == 0);
        client_map(&h->client, h->queue, queue_fd);
        close(buffer_fd);
        close(queue_fd);

        check(fake.n_open == 1 && fake.n_interfaces_open == 1);
        check(h->peer->account.counts[QUOTA_CLAIMS] == 1);
        check(h->peer->account.counts[QUOTA_BUFFERS] == 1);
        check(h->peer->account.counts[QUOTA_QUEUES] == 1);
        check(h->peer->account.bytes == BUFFER_SIZE + h->queue->charged);
        check(h->claim->charged_bytes == h->peer->account.bytes);
        h->charged_at_start = h->peer->account.bytes;
}

uint32_t client_sq_head(const Client *cl) {
        return __atomic_load_n(&cl->header->sq_head.value, __ATOMIC_ACQUIRE);
}

/* Publish one entry and ring the doorbell only when zcusbd asked for it,
 * as libzcusb does. */
void client_push(Client *cl, const struct zcusb_sqe *sqe) {
        uint32_t entries = cl->header->sq_entries;

        check(cl->sq_tail - client_sq_head(cl) < entries);
        cl->sq[cl->sq_tail & (entries - 1)] = *sqe;
        __atomic_store_n(&cl->header->sq_tail.value, ++cl->sq_tail, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(&cl->header->sq_flags.value, __ATOMIC_ACQUIRE) & ZCUSB_SQ_NEED_WAKEUP)
                check(eventfd_write(cl->submit_fd, 1) == 0);
}

void client_reap(Client *cl) {
        uint32_t tail;

        if (!cl->header)
                return; /* no queue opened */
        tail = __atomic_load_n(&cl->header->cq_tail.value, __ATOMIC_ACQUIRE);

        while (cl->cq_head != tail) {
                check(cl->n_reaped < ELEMENTSOF(cl->reaped));
                cl->reaped[cl->n_reaped++] = cl->cq[cl->cq_head & (cl->header->cq_entries - 1)];
                cl->cq_head++;
        }
        __atomic_store_n(&cl->header->cq_head.value, cl->cq_head, __ATOMIC_RELEASE);
}

/* Completions for USER_DATA so far; *ret the last one. */
unsigned client_completions(const Client *cl, uint64_t user_data, struct zcusb_cqe *ret) {
        unsigned n = 0;

        for (size_t i = 0; i < cl->n_reaped; i++)
                if (cl->reaped[i].user_data == user_data) {
                        n++;
                        if (ret)
                                *ret = cl->reaped[i];
                }
        return n;
}

/* USER_DATA completed exactly once, with STATUS. */
void check_completed(const Client *cl, uint64_t user_data, int status) {
        struct zcusb_cqe cqe = {};
        unsigned n = client_completions(cl, user_data, &cqe);

        if (n != 1 || cqe.status != status) {
                fprintf(stderr, "user_data %" PRIu64 ": %u completions, last status %d, expected one with %d\n",
                        user_data, n, cqe.status, status);
                check(!"unexpected completion");
        }
}

void settle(Harness *h) {
        run_until_idle(h->m);
        client_reap(&h->client);
}

/* Let zcusbd take everything published: entries that come while transfers
 * are in flight ring no doorbell and wait for its poll timer. */
void settle_all_taken(Harness *h) {
        for (unsigned i = 0; i < 500 && client_sq_head(&h->client) != h->client.sq_tail; i++)
                check(sd_event_run(h->m->event, 2 * MSEC) >= 0);
        check(client_sq_head(&h->client) == h->client.sq_tail);
        settle(h);
}

struct zcusb_sqe bulk_sqe(uint8_t endpoint, uint64_t user_data, uint32_t timeout_ms) {
        return (struct zcusb_sqe) {
                .opcode = ZCUSB_OP_BULK,
                .endpoint = endpoint,
                .buffer_id = 1,
                .offset = (user_data % (BUFFER_SIZE / CHUNK)) * CHUNK,
                .length = CHUNK,
                .timeout_ms = timeout_ms,
                .user_data = user_data,
        };
}

void submit_bulk(Harness *h, uint8_t endpoint, uint64_t user_data, uint32_t timeout_ms) {
        struct zcusb_sqe sqe = bulk_sqe(endpoint, user_data, timeout_ms);
        client_push(&h->client, &sqe);
}

void submit_cancel(Harness *h, uint64_t user_data, uint64_t target) {
        struct zcusb_sqe sqe = { .opcode = ZCUSB_OP_CANCEL, .user_data = user_data, .cancel_user_data = target };
        client_push(&h->client, &sqe);
}

/* The fake's record of the transfer for USER_DATA (bulk_sqe's offset). */
FakeTransfer *fake_transfer_for(uint64_t user_data) {
        for (size_t i = 0; i < fake.n_transfers; i++)
                if (fake.transfers[i]->buffer_offset == (user_data % (BUFFER_SIZE / CHUNK)) * CHUNK)
                        return fake.transfers[i];
        return NULL;
}

void check_in_flight(const Harness *h, unsigned n) {
        check(h->claim->n_in_flight == n);
        check(h->peer->account.counts[QUOTA_IN_FLIGHT] == n);
        check(fake_in_flight() == n);
}

void check_account_empty(const QuotaAccount *a) {
        check(a->bytes == 0);
        for (QuotaCount k = 0; k < _QUOTA_COUNT_MAX; k++)
                if (a->counts[k] != 0) {
                        fprintf(stderr, "quota count %d is %u\n", (int) k, a->counts[k]);
                        check(!"a quota count was not given back");
                }
}

bool ring_is_dead(const Client *cl, int end_status) {
        return (__atomic_load_n(&cl->header->sq_flags.value, __ATOMIC_ACQUIRE) & ZCUSB_SQ_DEAD) &&
                cl->header->end_status == end_status;
}

/* Release (Claim.Release) and run the GC pass. */
void harness_release(Harness *h) {
        claim_stop(h->claim, CLAIM_END_RELEASED, true);
        settle(h);
}

/* Everything is undone: the claim freed, the peer's account empty, then the
 * peer freed, the ledger empty, every transfer ended once, the interface
 * closed once. PEER_ALIVE: the peer is still there (subscribed). */
void harness_finish(Harness *h, const char *scenario, bool peer_alive) {
        check(TAILQ_EMPTY(&h->m->claims));
        check(TAILQ_EMPTY(&h->m->claim_gc_queue));
        if (peer_alive) {
                check(TAILQ_FIRST(&h->m->peers) == h->peer);
                check(TAILQ_EMPTY(&h->peer->claims));
                check_account_empty(&h->peer->account);
                /* Unsubscribe: nothing holds it now. */
                h->peer->subscribed = false;
                peer_add_to_gc_queue(h->peer);
                settle(h);
        }
        check(TAILQ_EMPTY(&h->m->peers) && h->m->n_peers == 0);
        check(h->m->ledger.bytes == 0);
        check(quota_user_bytes(&h->m->ledger, TEST_UID) == 0);

        check(fake_all_ended_once());
        check(fake_in_flight() == 0);
        check(fake.n_interfaces_open == 0);
        check(fake.n_open >= h->interfaces_claimed);
        check(fake.n_close == h->interfaces_claimed);
        check(fake.n_closed_with_in_flight == 0);

        printf("%-22s transfers %zu (each ended once), submits refused %u, cancels %u, completions %zu, "
               "disconnects %u, interfaces claimed/closed %u/%u, bytes left 0\n",
               scenario, fake.n_transfers, fake.n_submit_refused, fake.n_cancel, h->client.n_reaped,
               fake.n_disconnect, h->interfaces_claimed, fake.n_close);

        if (h->client.map)
                munmap(h->client.map, h->client.size);
        h->m = manager_free(h->m);
        fake_backend_reset();
}

/* ---- scenarios ---- */
