/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The life cycle of claims, queues and transfers, driven through the fake
 * backend: a manager without a bus, a device built by hand, a peer, and a
 * client that talks to its queue through its own mapping of the ring memfd,
 * as a real one does. Every scenario ends with the claim released and the GC
 * pass run, and then checks that nothing is left: no claim, no peer, no
 * charge in the account or the ledger, every transfer ended exactly once and
 * the interface closed exactly once. */
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

static void test_complete(void) {
        Harness h;
        struct zcusb_cqe cqe = {};
        struct zcusb_sqe nop = { .opcode = ZCUSB_OP_NOP, .user_data = 99 };

        harness_new(&h, NULL);
        harness_claim(&h);
        for (uint64_t u = 1; u <= 4; u++)
                submit_bulk(&h, EP_IN, u, 0);
        submit_bulk(&h, EP_OUT, 5, 0);
        submit_bulk(&h, EP_OUT, 6, 0);
        client_push(&h.client, &nop);
        settle_all_taken(&h);

        check(fake.n_transfers == 6);
        check_in_flight(&h, 6);
        check(h.queue->in_flight == 6 && h.buffer->users == 6);
        check_completed(&h.client, 99, 0);
        check(fake_transfer(0)->endpoint == EP_IN && fake_transfer(0)->data_length == CHUNK);
        check(fake_transfer(4)->endpoint == EP_OUT);

        /* Out of order, one short IN (accepted: no SHORT_NOT_OK). */
        for (size_t i = 6; i-- > 0;)
                fake_complete(fake_transfer(i), i == 1 ? -EREMOTEIO : 0, i == 1 ? 100 : CHUNK);
        settle(&h);
        check_in_flight(&h, 0);
        check(h.queue->in_flight == 0 && h.buffer->users == 0);
        for (uint64_t u = 1; u <= 6; u++)
                check_completed(&h.client, u, 0);
        check(client_completions(&h.client, 2, &cqe) == 1 && cqe.actual_length == 100);
        check(h.claim->counted.completed == 7 && h.claim->counted.failed == 0);
        check(h.claim->counted.bytes_in == 3 * CHUNK + 100 && h.claim->counted.bytes_out == 2 * CHUNK);
        check(h.peer->account.bytes == h.charged_at_start);

        harness_release(&h);
        check(fake.n_cancel == 0);
        harness_finish(&h, "complete", true);
}

static void test_cancel(bool synchronous) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        fake.cancel_synchronous = synchronous;
        submit_bulk(&h, EP_IN, 1, 0);
        submit_bulk(&h, EP_IN, 2, 0);
        submit_bulk(&h, EP_IN, 3, 0);
        settle_all_taken(&h);
        check_in_flight(&h, 3);

        /* A CANCEL entry: it completes at once, its target once the kernel gives it back. */
        submit_cancel(&h, 100, 1);
        settle_all_taken(&h);
        check_completed(&h.client, 100, 0);
        check(fake_transfer_for(1)->cancel_requests == 1);
        if (!synchronous) {
                check(client_completions(&h.client, 1, NULL) == 0);
                check_in_flight(&h, 3);
                check(fake_complete_cancelled() == 1);
                settle(&h);
        }
        check_completed(&h.client, 1, -ECANCELED);
        check_in_flight(&h, 2);

        /* Nothing in flight by that user_data (any more): -ENOENT. */
        submit_cancel(&h, 101, 1);
        submit_cancel(&h, 102, 77);
        settle_all_taken(&h);
        check_completed(&h.client, 101, -ENOENT);
        check_completed(&h.client, 102, -ENOENT);
        check(fake_transfer_for(1)->cancel_requests == 1);

        /* The device finishes 2 while its cancel is on the way: it keeps its result. */
        if (!synchronous) {
                check(queue_cancel_all(h.queue) == 2);
                check(queue_cancel_all(h.queue) == 2); /* asked once per transfer */
                check(fake.n_cancel == 3);
                fake_complete(fake_transfer_for(2), 0, CHUNK);
                check(fake_complete_cancelled() == 1);
                settle(&h);
                check_completed(&h.client, 2, 0);
        } else {
                /* CloseQueue: everything ends within the call. */
                check(queue_cancel_all(h.queue) == 0);
                settle(&h);
                check_completed(&h.client, 2, -ECANCELED);
        }
        check_completed(&h.client, 3, -ECANCELED);
        check_in_flight(&h, 0);

        /* CloseQueue's second try: nothing in flight, the queue goes. */
        check(queue_cancel_all(h.queue) == 0);
        h.queue = queue_free(h.queue);
        check(h.claim->n_queues == 0 && h.peer->account.counts[QUOTA_QUEUES] == 0);
        check(h.peer->account.bytes == BUFFER_SIZE);

        harness_release(&h);
        harness_finish(&h, synchronous ? "cancel (synchronous)" : "cancel (asynchronous)", true);
}

static void test_cancel_async(void) {
        test_cancel(false);
}

static void test_cancel_sync(void) {
        test_cancel(true);
}

static void test_timeout(void) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        submit_bulk(&h, EP_IN, 1, 5);    /* times out */
        submit_bulk(&h, EP_IN, 2, 0);    /* no timeout */
        submit_bulk(&h, EP_OUT, 3, 5);   /* completes in time: its timer must go with it */
        settle_all_taken(&h);
        check_in_flight(&h, 3);
        fake_complete(fake_transfer_for(3), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 3, 0);

        for (unsigned i = 0; i < 200 && fake_transfer_for(1)->cancel_requests == 0; i++)
                check(sd_event_run(h.m->event, 5 * MSEC) >= 0);
        check(fake_transfer_for(1)->cancel_requests == 1);
        check(fake_transfer_for(2)->cancel_requests == 0);
        /* Cancelled, not yet ended: the timeout shows only once the kernel gives it back. */
        check(client_completions(&h.client, 1, NULL) == 0);
        check(fake_complete_cancelled() == 1);
        settle(&h);
        check_completed(&h.client, 1, -ETIMEDOUT);

        /* Nothing else fires later. */
        for (unsigned i = 0; i < 4; i++)
                check(sd_event_run(h.m->event, 5 * MSEC) >= 0);
        check(fake.n_cancel == 1);

        fake_complete(fake_transfer_for(2), 0, 10);
        settle(&h);
        check_completed(&h.client, 2, 0);
        check_in_flight(&h, 0);

        harness_release(&h);
        harness_finish(&h, "timeout", true);
}

static void test_unplug(void) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        submit_bulk(&h, EP_IN, 1, 0);
        submit_bulk(&h, EP_IN, 2, 1000);
        submit_bulk(&h, EP_OUT, 3, 0);
        settle_all_taken(&h);
        check_in_flight(&h, 3);

        /* What manager_drop_device() does for a removed device. */
        claim_device_removed(h.claim);
        check(h.claim->device == NULL);
        TAILQ_REMOVE(&h.m->devices, h.device, link);
        h.m->n_devices--;
        h.device = device_free(h.device);

        check(fake.n_disconnect == 1);
        check_in_flight(&h, 0);
        settle(&h);
        for (uint64_t u = 1; u <= 3; u++)
                check_completed(&h.client, u, -ENODEV);
        check(ring_is_dead(&h.client, -ENODEV));
        check(h.claim->end == CLAIM_END_DEVICE_REMOVED);
        /* Drained: interface given back and Ended sent, but the claim waits for Release. */
        check(fake.n_close == 1 && h.claim->interface_released && h.claim->ended_signalled);
        check(TAILQ_FIRST(&h.m->claims) == h.claim);

        /* What comes now fails at once, without reaching the backend. */
        submit_bulk(&h, EP_IN, 4, 0);
        settle_all_taken(&h);
        check_completed(&h.client, 4, -ENODEV);
        check(fake.n_submit == 3);

        harness_release(&h);
        check(fake.n_disconnect == 1);
        harness_finish(&h, "unplug", true);
}

static void test_revoke(void) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        submit_bulk(&h, EP_IN, 1, 0);
        submit_bulk(&h, EP_OUT, 2, 0);
        settle_all_taken(&h);

        claim_stop(h.claim, CLAIM_END_REVOKED, false);
        check(ring_is_dead(&h.client, -EACCES));
        check(fake_transfer(0)->cancel_requests == 1 && fake_transfer(1)->cancel_requests == 1);
        settle(&h);
        /* Still in flight: the interface stays claimed until they are back. */
        check(fake.n_close == 0 && !h.claim->interface_released);

        check(fake_complete_cancelled() == 2);
        settle(&h);
        check_completed(&h.client, 1, -EACCES);
        check_completed(&h.client, 2, -EACCES);
        check(fake.n_close == 1 && h.claim->ended_signalled);
        check(TAILQ_FIRST(&h.m->claims) == h.claim); /* until Release */

        submit_bulk(&h, EP_IN, 3, 0);
        settle_all_taken(&h);
        check_completed(&h.client, 3, -EACCES);
        check(fake.n_submit == 2);

        /* A later stop only adds free_when_drained: the reason stays. */
        harness_release(&h);
        harness_finish(&h, "revoke", true);
}

static void test_release_in_flight(void) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        for (uint64_t u = 1; u <= 3; u++)
                submit_bulk(&h, EP_IN, u, 0);
        settle_all_taken(&h);

        claim_stop(h.claim, CLAIM_END_RELEASED, true);
        settle(&h);
        check(ring_is_dead(&h.client, -ECANCELED));
        check(fake.n_cancel == 3);
        /* The GC pass looked and left it: transfers are still out. */
        check(TAILQ_FIRST(&h.m->claims) == h.claim && fake.n_close == 0);
        /* Its interface is not free yet: a claim now would share it with them. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                Peer *other_peer = peer_new_checked(h.m, ":1.43");
                Claim *other = NULL;

                check(claim_new(other_peer, h.device, 0, &other, &error) < 0);
                check(sd_bus_error_has_name(&error, ZCUSB_ERROR_BUSY));
                check(strstr(error.message, "still being released"));
                check(fake.n_open == 1);
                other_peer->subscribed = false;
                peer_add_to_gc_queue(other_peer);
        }

        fake_complete(fake_transfer(0), 0, CHUNK); /* finished before the kill */
        settle(&h);
        check(TAILQ_FIRST(&h.m->claims) == h.claim && fake.n_close == 0);
        fake_complete(fake_transfer(1), -ENOENT, 0);
        settle(&h);
        check(TAILQ_FIRST(&h.m->claims) == h.claim && fake.n_close == 0);
        fake_complete(fake_transfer(2), -ECONNRESET, 0);
        settle(&h);

        check_completed(&h.client, 1, 0);
        check_completed(&h.client, 2, -ECANCELED);
        check_completed(&h.client, 3, -ECANCELED);
        harness_finish(&h, "release in flight", true);
}

static void test_peer_gone(void) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Claim *second = NULL;
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        /* A second claim of the same peer, without queue or buffer. */
        check(claim_new(h.peer, h.device, 1, &second, &error) == 0);
        h.interfaces_claimed++;
        check(h.peer->account.counts[QUOTA_CLAIMS] == 2);
        submit_bulk(&h, EP_IN, 1, 0);
        submit_bulk(&h, EP_IN, 2, 0);
        settle_all_taken(&h);

        manager_peer_gone(h.m, h.peer);
        settle(&h);
        /* The idle claim is gone at once; the busy one and its peer wait. */
        check(TAILQ_FIRST(&h.m->claims) == h.claim && TAILQ_NEXT(h.claim, manager_link) == NULL);
        check(TAILQ_FIRST(&h.m->peers) == h.peer);
        check(h.peer->account.counts[QUOTA_CLAIMS] == 1);
        check(fake.n_close == 1);

        check(fake_complete_cancelled() == 2);
        settle(&h);
        check_completed(&h.client, 1, -ECANCELED);
        check_completed(&h.client, 2, -ECANCELED);
        harness_finish(&h, "peer gone", false);
}

static void test_submit_failure(void) {
        Harness h;
        uint64_t per_transfer;

        harness_new(&h, NULL);
        harness_claim(&h);
        fake.submit_error = -ENOMEM;
        fake.submit_error_count = 1;
        submit_bulk(&h, EP_IN, 1, 1000); /* with a timer: it must go with the failed transfer */
        settle_all_taken(&h);
        check_completed(&h.client, 1, -ENOMEM);
        check_in_flight(&h, 0);
        check(h.buffer->users == 0 && h.queue->in_flight == 0);
        check(h.peer->account.bytes == h.charged_at_start);
        check(h.claim->counted.failed == 1);

        submit_bulk(&h, EP_IN, 2, 0);
        settle_all_taken(&h);
        check_in_flight(&h, 1);
        per_transfer = h.peer->account.bytes - h.charged_at_start;
        check(per_transfer >= sizeof(Transfer));
        fake_complete(fake_transfer(0), -EPIPE, 0); /* a stall */
        settle(&h);
        check_completed(&h.client, 2, -EPIPE);
        check(h.peer->account.bytes == h.charged_at_start);
        check(fake.n_submit == 2 && fake.n_submit_refused == 1);

        harness_release(&h);
        harness_finish(&h, "submit failure", true);
}

static void test_quota(void) {
        const uint64_t backend_memory = 100000;
        uint64_t per_transfer;
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        fake.transfer_memory = backend_memory;
        for (uint64_t u = 1; u <= 3; u++)
                submit_bulk(&h, EP_IN, u, 0);
        settle_all_taken(&h);
        check_in_flight(&h, 3);

        /* Each transfer charges the same: its block plus what the backend
         * says submit() holds for it, to the peer, its uid and the ledger. */
        check((h.peer->account.bytes - h.charged_at_start) % 3 == 0);
        per_transfer = (h.peer->account.bytes - h.charged_at_start) / 3;
        check(per_transfer >= backend_memory + sizeof(Transfer));
        check(h.claim->charged_bytes == h.peer->account.bytes);
        check(h.m->ledger.bytes == h.peer->account.bytes);
        check(quota_user_bytes(&h.m->ledger, TEST_UID) == h.peer->account.bytes);

        fake_complete(fake_transfer(1), 0, CHUNK);
        settle(&h);
        check(h.peer->account.bytes == h.charged_at_start + 2 * per_transfer);

        /* Room for one more transfer, not two: the second fails -EDQUOT. */
        h.m->config.bytes_per_client = h.peer->account.bytes + per_transfer + per_transfer / 2;
        submit_bulk(&h, EP_IN, 4, 0);
        submit_bulk(&h, EP_IN, 5, 0);
        settle_all_taken(&h);
        check_in_flight(&h, 3);
        check_completed(&h.client, 5, -EDQUOT);
        check(client_completions(&h.client, 4, NULL) == 0);

        fake_complete(fake_transfer(0), 0, CHUNK);
        fake_complete(fake_transfer(2), 0, CHUNK);
        fake_complete(fake_transfer(3), 0, CHUNK);
        settle(&h);
        for (uint64_t u = 1; u <= 4; u++)
                check_completed(&h.client, u, 0);
        check(h.peer->account.bytes == h.charged_at_start);
        check(h.peer->account.counts[QUOTA_IN_FLIGHT] == 0);

        harness_release(&h);
        harness_finish(&h, "quota", true);
}

static void test_claim_refused(void) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Claim *c = NULL, *other = NULL;
        Harness h;
        Peer *p;

        harness_new(&h, NULL);
        p = peer_new_checked(h.m, ":1.7");

        /* A kernel driver we may not detach: Busy, naming it; nothing taken. */
        fake.open_error = -EBUSY;
        fake.open_busy_driver = "usb-storage";
        check(claim_new(p, h.device, 0, &c, &error) < 0);
        check(sd_bus_error_has_name(&error, ZCUSB_ERROR_BUSY));
        check(strstr(error.message, "usb-storage"));
        check(TAILQ_EMPTY(&h.m->claims) && p->account.counts[QUOTA_CLAIMS] == 0);
        sd_bus_error_free(&error);

        /* Any other failure: Failed, nothing taken. */
        fake.open_busy_driver = NULL;
        fake.open_error = -EIO;
        check(claim_new(p, h.device, 0, &c, &error) < 0);
        check(sd_bus_error_has_name(&error, ZCUSB_ERROR_FAILED));
        check(p->account.counts[QUOTA_CLAIMS] == 0);
        sd_bus_error_free(&error);

        /* Detaching allowed by policy: the driver comes back on release. */
        fake.open_error = 0;
        fake.bound_driver = "cdc_acm";
        h.device->policy.detach = strdup("1");
        check(h.device->policy.detach);
        check(claim_new(p, h.device, 0, &c, &error) == 0);
        h.interfaces_claimed++;
        check_streq(c->detached_driver, "cdc_acm");

        /* The interface is taken: Busy, and the backend is not asked. */
        check(claim_new(p, h.device, 0, &other, &error) < 0);
        check(sd_bus_error_has_name(&error, ZCUSB_ERROR_BUSY));
        sd_bus_error_free(&error);
        check(fake.n_open == 3 && p->account.counts[QUOTA_CLAIMS] == 1);

        /* No such interface. */
        check(claim_new(p, h.device, 7, &other, &error) < 0);
        check(sd_bus_error_has_name(&error, ZCUSB_ERROR_INVALID_ARGUMENT));
        sd_bus_error_free(&error);

        claim_stop(c, CLAIM_END_RELEASED, true);
        run_until_idle(h.m);
        check_streq(fake.reattached_driver, "cdc_acm");
        h.peer = p;
        harness_finish(&h, "claim refused", true);
}

/* Every cancel ends its transfer within the call (a backend whose URBs are
 * not yet at the kernel): claim_stop() walks the in-flight list while the
 * transfers on it are freed, for unplug and release alike. */
static void test_synchronous_ends(void) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        fake.cancel_synchronous = true;
        for (uint64_t u = 1; u <= 3; u++)
                submit_bulk(&h, EP_IN, u, u == 2 ? 5 : 0);
        settle_all_taken(&h);
        /* A timeout whose cancel ends the transfer inside the timer's own callback. */
        for (unsigned i = 0; i < 200 && client_completions(&h.client, 2, NULL) == 0; i++) {
                check(sd_event_run(h.m->event, 5 * MSEC) >= 0);
                client_reap(&h.client);
        }
        check_completed(&h.client, 2, -ETIMEDOUT);

        claim_stop(h.claim, CLAIM_END_REVOKED, false);
        check_in_flight(&h, 0);
        settle(&h);
        check_completed(&h.client, 1, -EACCES);
        check_completed(&h.client, 3, -EACCES);
        check(fake.n_close == 1);

        harness_release(&h);
        harness_finish(&h, "synchronous ends", true);
}

static void test_complete_in_submit(void) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        fake.complete_in_submit = true;
        submit_bulk(&h, EP_OUT, 1, 5); /* with a timer, which must go with it */
        submit_bulk(&h, EP_OUT, 2, 0);
        settle_all_taken(&h);
        check_completed(&h.client, 1, 0);
        check_completed(&h.client, 2, 0);
        check_in_flight(&h, 0);
        check(h.claim->counted.bytes_out == 2 * CHUNK);
        check(h.peer->account.bytes == h.charged_at_start);
        for (unsigned i = 0; i < 4; i++)
                check(sd_event_run(h.m->event, 5 * MSEC) >= 0);
        check(fake.n_cancel == 0);

        harness_release(&h);
        harness_finish(&h, "complete in submit", true);
}

/* zcusbd stopping: every claim ends -ESHUTDOWN, and the loop exits once the
 * GC pass freed the last. */
static void test_shutdown(void) {
        Harness h;
        int code = -1;

        harness_new(&h, NULL);
        harness_claim(&h);
        submit_bulk(&h, EP_IN, 1, 0);
        submit_bulk(&h, EP_IN, 2, 0);
        settle_all_taken(&h);
        h.peer->subscribed = false; /* nothing keeps it past its claim: it goes in the same pass */

        manager_shutdown(h.m);
        check(ring_is_dead(&h.client, -ESHUTDOWN));
        run_until_idle(h.m);
        check(sd_event_get_state(h.m->event) != SD_EVENT_FINISHED);
        check(TAILQ_FIRST(&h.m->claims) == h.claim);

        check(fake_complete_cancelled() == 2);
        run_until_idle(h.m);
        client_reap(&h.client);
        check(sd_event_get_state(h.m->event) == SD_EVENT_FINISHED);
        check(sd_event_get_exit_code(h.m->event, &code) >= 0 && code == 0);
        check_completed(&h.client, 1, -ESHUTDOWN);
        check_completed(&h.client, 2, -ESHUTDOWN);
        harness_finish(&h, "shutdown", false);
}

/* ---- a queue the kernel serves (fake_backend_kq) ---- */

static bool counters_eq(const TransferCounters *a, const TransferCounters *b) {
        return a->submitted == b->submitted && a->completed == b->completed && a->failed == b->failed &&
               a->bytes_in == b->bytes_in && a->bytes_out == b->bytes_out && a->in_flight == b->in_flight;
}

/* No counter of B is below A's (in_flight aside: it is a level). */
static bool counters_grew(const TransferCounters *a, const TransferCounters *b) {
        return b->submitted >= a->submitted && b->completed >= a->completed && b->failed >= a->failed &&
               b->bytes_in >= a->bytes_in && b->bytes_out >= a->bytes_out;
}

static void check_counters(Claim *c, TransferCounters want) {
        TransferCounters n;

        claim_get_counters(c, &n);
        if (!counters_eq(&n, &want)) {
                fprintf(stderr, "counters: submitted %" PRIu64 " completed %" PRIu64 " failed %" PRIu64 " in %" PRIu64
                        " out %" PRIu64 " in flight %" PRIu64 "; expected %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                        " %" PRIu64 " %" PRIu64 "\n", n.submitted, n.completed, n.failed, n.bytes_in, n.bytes_out,
                        n.in_flight, want.submitted, want.completed, want.failed, want.bytes_in, want.bytes_out,
                        want.in_flight);
                check(!"unexpected claim counters");
        }
}

static void harness_claim_kq(Harness *h) {
        harness_new(h, NULL);
        h->m->backend = &fake_backend_kq;
        harness_claim(h);
        check(h->queue->kernel && fake.n_attach_queue == 1);
        check_streq(queue_served_by(h->claim), "kernel");
        check_counters(h->claim, (TransferCounters) {});
}

/* The claim's counters are zcusbd's own plus what the kernel counts for the
 * queue it serves, read live (one backend call per read); CloseQueue
 * detaches it and the kernel's final counts become the claim's own, so
 * nothing goes back; zcusbd then serves the ring and counts on from there. */
static void test_kernel_queue_counters(void) {
        const TransferCounters live = { .submitted = 10, .completed = 6, .failed = 1,
                                        .bytes_in = 3000, .bytes_out = 4000, .in_flight = 3 };
        /* its 3 in flight ended at the detach: 2 completed, 1 failed */
        const TransferCounters final = { .submitted = 10, .completed = 8, .failed = 2,
                                         .bytes_in = 3500, .bytes_out = 4000 };
        TransferCounters before, after;
        unsigned reads;
        Harness h;

        harness_claim_kq(&h);
        fake.kq_counters = live;
        reads = fake.n_queue_counters;
        check_counters(h.claim, live);
        check(fake.n_queue_counters == reads + 1);
        check(h.claim->counted.submitted == 0); /* the kernel's, not yet the claim's own */

        claim_get_counters(h.claim, &before);
        fake.kq_counters = final;
        check(queue_cancel_all(h.queue) == 0);
        check(!h.queue->kernel && fake.n_detach_queue == 1 && fake.kq_end_status == -ECANCELED);
        check(h.claim->counted.submitted == 10 && h.claim->counted.completed == 8 && h.claim->counted.failed == 2);
        check(h.claim->counted.bytes_in == 3500 && h.claim->counted.bytes_out == 4000);
        reads = fake.n_queue_counters;
        claim_get_counters(h.claim, &after);
        check(counters_grew(&before, &after) && counters_eq(&after, &final));
        check(fake.n_queue_counters == reads); /* served by zcusbd now: nothing to ask */

        submit_bulk(&h, EP_IN, 1, 0);
        settle_all_taken(&h);
        check_counters(h.claim, (TransferCounters) { .submitted = 11, .completed = 8, .failed = 2, .bytes_in = 3500,
                                                     .bytes_out = 4000, .in_flight = 1 });
        fake_complete(fake_transfer_for(1), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 1, 0);
        check_counters(h.claim, (TransferCounters) { .submitted = 11, .completed = 9, .failed = 2,
                                                     .bytes_in = 3500 + CHUNK, .bytes_out = 4000 });

        harness_release(&h);
        harness_finish(&h, "kernel queue counters", true);
}

/* A ring the kernel serves is the kernel's: a kick (as a transfer's end
 * gives every queue of a peer that was at its in-flight limit) takes none of
 * its entries and leaves its doorbell flag as the kernel set it. */
static void test_kernel_queue_not_ours(void) {
        Harness h;
        uint32_t flags;

        harness_claim_kq(&h);
        __atomic_store_n(&h.client.header->sq_flags.value, ZCUSB_SQ_NEED_WAKEUP, __ATOMIC_RELEASE);
        submit_bulk(&h, EP_IN, 1, 0);
        flags = __atomic_load_n(&h.client.header->sq_flags.value, __ATOMIC_ACQUIRE);
        queue_kick(h.queue);
        settle(&h);
        check(client_sq_head(&h.client) == 0 && fake.n_submit == 0);
        check(__atomic_load_n(&h.client.header->sq_flags.value, __ATOMIC_ACQUIRE) == flags);
        harness_release(&h);
        harness_finish(&h, "kernel queue not ours", true);
}

/* Revoked (as on unplug, release, shutdown: claim_stop), the queue is
 * detached with the claim's status and its counts stay the claim's; a
 * detach that fails (the module ended the queue itself) keeps what was last
 * read, what was in flight then counted failed. */
static void test_kernel_queue_counters_end(void) {
        const TransferCounters live = { .submitted = 5, .completed = 3, .bytes_out = 3 * CHUNK, .in_flight = 2 };
        Harness h;

        harness_claim_kq(&h);
        fake.kq_counters = live;
        check_counters(h.claim, live);
        fake.kq_counters = (TransferCounters) { .submitted = 5, .completed = 3, .failed = 2, .bytes_out = 3 * CHUNK };
        claim_stop(h.claim, CLAIM_END_REVOKED, false);
        check(fake.n_detach_queue == 1 && fake.kq_end_status == -EACCES);
        check(ring_is_dead(&h.client, -EACCES));
        check_counters(h.claim, fake.kq_counters);
        harness_release(&h);
        harness_finish(&h, "kernel queue revoked", true);

        harness_claim_kq(&h);
        fake.kq_counters = live;
        check_counters(h.claim, live);
        fake.kq_detach_error = -ENOENT;
        fake.kq_counters = (TransferCounters) {};
        claim_stop(h.claim, CLAIM_END_REVOKED, false);
        check(fake.n_detach_queue == 1);
        check_counters(h.claim, (TransferCounters) { .submitted = 5, .completed = 3, .failed = 2,
                                                     .bytes_out = 3 * CHUNK });
        harness_release(&h);
        harness_finish(&h, "kernel queue detach failed", true);
}

/* A module that cannot count (no QUEUE_STATS): the counters are zcusbd's
 * own, as before it could. */
static void test_kernel_queue_no_counters(void) {
        Harness h;

        harness_claim_kq(&h);
        fake.kq_no_counters = true;
        fake.kq_counters = (TransferCounters) { .submitted = 7, .completed = 7, .bytes_in = 7 * CHUNK };
        check_counters(h.claim, (TransferCounters) {});
        check(queue_cancel_all(h.queue) == 0 && fake.n_detach_queue == 1);
        check_counters(h.claim, (TransferCounters) {});
        harness_release(&h);
        harness_finish(&h, "kernel queue, no counters", true);
}

int main(void) {
        /* Errors only: what the daemon says of its own bugs ("accounting
         * bug", "freed with transfers in flight") still shows. */
        log_set_max_level(LOG_ERR);

        RUN(test_complete);
        RUN(test_cancel_async);
        RUN(test_cancel_sync);
        RUN(test_timeout);
        RUN(test_unplug);
        RUN(test_revoke);
        RUN(test_release_in_flight);
        RUN(test_peer_gone);
        RUN(test_submit_failure);
        RUN(test_quota);
        RUN(test_claim_refused);
        RUN(test_synchronous_ends);
        RUN(test_complete_in_submit);
        RUN(test_shutdown);
        RUN(test_kernel_queue_counters);
        RUN(test_kernel_queue_not_ours);
        RUN(test_kernel_queue_counters_end);
        RUN(test_kernel_queue_no_counters);
        return 0;
}
