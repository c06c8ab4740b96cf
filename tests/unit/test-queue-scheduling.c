/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* When zcusbd takes a queue's entries and rings its doorbells, driven through
 * the fake backend (lifecycle-harness.h): deadlines among completions,
 * doorbells and their grace period, batch ends, the in-flight limit and the
 * entries held behind it. Each scenario ends as in test-claim-lifecycle.c:
 * claim released, GC pass run, nothing left (harness_finish). */
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

/* One timer serves every timeout of a queue: a later entry with an earlier
 * deadline moves it earlier, transfers that complete meanwhile do not move
 * it, the expired one times out on time while a stream with timeouts goes
 * on around it, and the timer goes off with the last deadline. */
static void test_timeout_among_completions(void) {
        Harness h;
        Transfer *first;
        uint64_t deadline_2;
        int enabled = -1;

        harness_new(&h, NULL);
        harness_claim(&h);
        submit_bulk(&h, EP_IN, 1, 60 * 1000); /* ends by completing, long before its timeout */
        submit_bulk(&h, EP_IN, 2, 20);        /* submitted later, expires first */
        settle_all_taken(&h);
        first = TAILQ_FIRST(&h.queue->deadlines);
        check(first && first->user_data == 2);
        deadline_2 = first->deadline;
        check(h.queue->deadline_armed == deadline_2);

        /* A stream of transfers with a timeout completes around it; none of
         * them moves the timer. (user_data below 128: fake_transfer_for's
         * buffer slots.) */
        for (uint64_t u = 10; fake_transfer_for(2)->cancel_requests == 0; u++) {
                check(u < 128);
                check(h.queue->deadline_armed == deadline_2);
                submit_bulk(&h, EP_OUT, u, 1000);
                settle_all_taken(&h);
                fake_complete(fake_transfer_for(u), 0, CHUNK);
                settle(&h);
                check_completed(&h.client, u, 0);
                check(sd_event_run(h.m->event, 2 * MSEC) >= 0);
        }
        check(fake_transfer_for(1)->cancel_requests == 0);
        /* Re-armed in time for the earliest deadline left, 1's (or for a
         * stream transfer's that was in flight when it fired: early is
         * allowed, late is not). */
        first = TAILQ_FIRST(&h.queue->deadlines);
        check(first && first->user_data == 1);
        check(h.queue->deadline_armed != 0 && h.queue->deadline_armed <= first->deadline);
        check(fake_complete_cancelled() == 1);
        settle(&h);
        check_completed(&h.client, 2, -ETIMEDOUT);

        /* The last deadline gone, the timer stays armed (no timerfd_settime()
         * per transfer for a client that submits one at a time) ... */
        fake_complete(fake_transfer_for(1), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 1, 0);
        check(TAILQ_EMPTY(&h.queue->deadlines) && h.queue->deadline_armed != 0);
        check(sd_event_source_get_enabled(h.queue->deadline_source, &enabled) >= 0 && enabled == SD_EVENT_ONESHOT);
        /* ... a next transfer with a later deadline does not move it ... */
        uint64_t armed = h.queue->deadline_armed;
        submit_bulk(&h, EP_OUT, 3, 60 * 1000);
        settle_all_taken(&h);
        check(h.queue->deadline_armed == armed);
        fake_complete(fake_transfer_for(3), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 3, 0);
        /* ... and when it fires it finds nothing, and is off: nothing in
         * flight wakes zcusbd once more at most. */
        check(sd_event_source_set_time(h.queue->deadline_source, 1) >= 0); /* its deadline, now */
        for (int i = 0; i < 10 && h.queue->deadline_armed != 0; i++)
                check(sd_event_run(h.m->event, 0) >= 0);
        check(TAILQ_EMPTY(&h.queue->deadlines) && h.queue->deadline_armed == 0);
        check(sd_event_source_get_enabled(h.queue->deadline_source, &enabled) >= 0 && enabled == SD_EVENT_OFF);
        check_in_flight(&h, 0);

        harness_release(&h);
        harness_finish(&h, "timeout among completions", true);
}

/* A CANCEL behind an IN that never completes is taken at once: zcusbd asks
 * for a doorbell whenever it stops looking, in flight or not, so nothing
 * waits for a poll period, and nothing polls the ring meanwhile. Only
 * untimed loop runs here: an entry that needed a timer would stay. */
static void test_cancel_behind_pending_in(void) {
        Harness h;
        int enabled = -1;

        harness_new(&h, NULL);
        harness_claim(&h);
        submit_bulk(&h, EP_IN, 1, 0); /* never completes by itself */
        settle(&h);
        check_in_flight(&h, 1);
        check(__atomic_load_n(&h.client.header->sq_flags.value, __ATOMIC_ACQUIRE) & ZCUSB_SQ_NEED_WAKEUP);
        check(sd_event_source_get_enabled(h.queue->poll_source, &enabled) >= 0 && enabled == SD_EVENT_OFF);

        /* An OUT behind it starts at once ... */
        submit_bulk(&h, EP_OUT, 2, 0);
        settle(&h);
        check_in_flight(&h, 2);
        check(fake_transfer_for(2)->endpoint == EP_OUT);

        /* ... and so does a CANCEL of the IN. */
        submit_cancel(&h, 100, 1);
        settle(&h);
        check_completed(&h.client, 100, 0);
        check(fake_transfer_for(1)->cancel_requests == 1);
        check(fake_complete_cancelled() == 1);
        settle(&h);
        check_completed(&h.client, 1, -ECANCELED);

        fake_complete(fake_transfer_for(2), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 2, 0);
        check_in_flight(&h, 0);
        check(sd_event_source_get_enabled(h.queue->poll_source, &enabled) >= 0 && enabled == SD_EVENT_OFF);

        harness_release(&h);
        harness_finish(&h, "cancel behind an IN", true);
}

/* A backend's batch end (backend_batch_done) posts the batch's completions,
 * rings the completion doorbell and starts what waits on the ring, all
 * before the loop runs again. */
static void test_batch_done(void) {
        Harness h;
        struct zcusb_cqe cqe;
        eventfd_t v = 0;
        int complete_fd;

        harness_new(&h, NULL);
        harness_claim(&h);
        complete_fd = h.queue->complete_fd;
        for (uint64_t u = 1; u <= 3; u++)
                submit_bulk(&h, EP_IN, u, 1000);
        settle(&h);
        check_in_flight(&h, 3);
        (void) eventfd_read(complete_fd, &v);

        /* The device ends two; the client has already published the next. */
        submit_bulk(&h, EP_IN, 4, 1000);
        fake_complete(fake_transfer_for(1), 0, CHUNK);
        fake_complete(fake_transfer_for(2), 0, CHUNK);
        backend_batch_done();
        check(eventfd_read(complete_fd, &v) == 0 && v == 1); /* one doorbell for the batch */
        check(fake_transfer_for(4) && fake_transfer_for(4)->transfer); /* started */
        client_reap(&h.client);
        check_completed(&h.client, 1, 0);
        check_completed(&h.client, 2, 0);
        check(client_completions(&h.client, 3, &cqe) == 0);
        check(!h.queue->kicked);

        fake_complete(fake_transfer_for(3), 0, CHUNK);
        fake_complete(fake_transfer_for(4), 0, CHUNK);
        settle(&h); /* without a batch end, the next iteration does it */
        check_completed(&h.client, 3, 0);
        check_completed(&h.client, 4, 0);
        check_in_flight(&h, 0);
        check(TAILQ_EMPTY(&h.queue->deadlines));

        harness_release(&h);
        harness_finish(&h, "batch done", true);
}

static bool client_need_wakeup(const Client *cl) {
        return __atomic_load_n(&cl->header->sq_flags.value, __ATOMIC_ACQUIRE) & ZCUSB_SQ_NEED_WAKEUP;
}

/* Right after a batch of completions, with more of the queue in flight, the
 * doorbell stays off: a resubmission is taken at the next completion, or
 * by the grace timer if none comes, which then asks for doorbells again. */
static void test_doorbell_grace(void) {
        Harness h;
        int enabled = -1;

        harness_new(&h, NULL);
        harness_claim(&h);
        submit_bulk(&h, EP_IN, 1, 0);
        submit_bulk(&h, EP_IN, 2, 0);
        submit_bulk(&h, EP_IN, 3, 0); /* never completes */
        settle(&h);
        check_in_flight(&h, 3);
        check(client_need_wakeup(&h.client)); /* nothing posted: doorbell on */

        /* A completion, others in flight: off, resubmission taken at the next completion. */
        fake_complete(fake_transfer_for(1), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 1, 0);
        check(!client_need_wakeup(&h.client));
        submit_bulk(&h, EP_IN, 4, 0); /* rings nothing */
        settle(&h);
        check(!fake_transfer_for(4));
        fake_complete(fake_transfer_for(2), 0, CHUNK);
        settle(&h);
        check(fake_transfer_for(4) && fake_transfer_for(4)->transfer);
        check_completed(&h.client, 2, 0);
        check(!client_need_wakeup(&h.client));

        /* No further completion: the grace timer takes what came and turns the doorbell on. */
        submit_bulk(&h, EP_OUT, 5, 0);
        settle(&h);
        check(!fake_transfer_for(5));
        for (unsigned i = 0; i < 200 && !fake_transfer_for(5); i++)
                check(sd_event_run(h.m->event, 2 * MSEC) >= 0);
        check(fake_transfer_for(5) && fake_transfer_for(5)->transfer);
        check(client_need_wakeup(&h.client));
        check(sd_event_source_get_enabled(h.queue->grace_source, &enabled) >= 0 && enabled == SD_EVENT_OFF);

        /* From here an entry behind the stuck IN is taken at once. */
        submit_cancel(&h, 100, 3);
        settle(&h);
        check_completed(&h.client, 100, 0);
        check(fake_complete_cancelled() == 1);
        fake_complete(fake_transfer_for(4), 0, CHUNK);
        fake_complete(fake_transfer_for(5), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 3, -ECANCELED);
        check_completed(&h.client, 4, 0);
        check_completed(&h.client, 5, 0);
        check_in_flight(&h, 0);
        check(client_need_wakeup(&h.client));

        harness_release(&h);
        harness_finish(&h, "doorbell grace", true);
}

/* A batch that drains the queue to half of its deepest or below turns the
 * doorbell on: the endpoint must not wait for the next completion (which
 * may be far off, or never come) to get what the client resubmits. */
static void test_doorbell_drained(void) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        for (uint64_t u = 1; u <= 4; u++)
                submit_bulk(&h, EP_IN, u, 0);
        settle(&h);
        check_in_flight(&h, 4);

        /* 3 of 4 left: the doorbell stays off. */
        fake_complete(fake_transfer_for(1), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 1, 0);
        check(!client_need_wakeup(&h.client));

        /* 1 of 4 left (a frame's worth completed together): on. */
        fake_complete(fake_transfer_for(2), 0, CHUNK);
        fake_complete(fake_transfer_for(3), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 2, 0);
        check_completed(&h.client, 3, 0);
        check_in_flight(&h, 1);
        check(client_need_wakeup(&h.client));
        /* so the resubmissions ring and are taken at once, not at 4's end */
        submit_bulk(&h, EP_IN, 5, 0);
        submit_bulk(&h, EP_IN, 6, 0);
        settle(&h);
        check(fake_transfer_for(5) && fake_transfer_for(6));
        check_in_flight(&h, 3);

        for (uint64_t u = 4; u <= 6; u++)
                fake_complete(fake_transfer_for(u), 0, CHUNK);
        settle(&h);
        for (uint64_t u = 4; u <= 6; u++)
                check_completed(&h.client, u, 0);
        check_in_flight(&h, 0);
        check(client_need_wakeup(&h.client));

        harness_release(&h);
        harness_finish(&h, "doorbell drained", true);
}

/* While zcusbd takes entries the doorbell is off: a client that resubmits
 * one entry at a time while the pass that took the first still runs rings
 * once, not once per entry. The pass asks for doorbells again as it ends. */
static struct {
        Harness *h;
        unsigned flag_seen_in_submit; /* submits that saw the doorbell flag set */
        unsigned to_push;             /* entries the client submits from inside submits */
} racing;

static void push_while_taking(void *userdata) {
        (void) userdata;
        if (client_need_wakeup(&racing.h->client))
                racing.flag_seen_in_submit++;
        if (racing.to_push > 0)
                submit_bulk(racing.h, EP_IN, 20 + --racing.to_push, 0);
}

static uint64_t doorbells_rung(Harness *h) {
        uint64_t n = 0;

        /* zcusbd never reads the counter (edge-triggered): it holds every ring */
        return eventfd_read(h->client.submit_fd, &n) < 0 ? 0 : n;
}

static void test_doorbell_off_while_taking(void) {
        Harness h;

        harness_new(&h, NULL);
        harness_claim(&h);
        racing.h = &h;
        racing.flag_seen_in_submit = 0;
        racing.to_push = 3;
        (void) doorbells_rung(&h);
        check(client_need_wakeup(&h.client)); /* idle: doorbell on */
        fake.on_submit = push_while_taking;
        submit_bulk(&h, EP_IN, 1, 0); /* rings */
        settle_all_taken(&h);
        fake.on_submit = NULL;
        check(fake_transfer_for(1) && fake_transfer_for(20) && fake_transfer_for(21) && fake_transfer_for(22));
        check_in_flight(&h, 4);
        check(racing.flag_seen_in_submit == 0);
        check(doorbells_rung(&h) == 1);
        check(client_need_wakeup(&h.client)); /* the pass ended idle, nothing posted: on again */

        fake_complete(fake_transfer_for(1), 0, CHUNK);
        for (uint64_t u = 20; u <= 22; u++)
                fake_complete(fake_transfer_for(u), 0, CHUNK);
        settle(&h);
        check_completed(&h.client, 1, 0);
        check_completed(&h.client, 22, 0);
        check_in_flight(&h, 0);
        harness_release(&h);
        harness_finish(&h, "doorbell off while taking", true);
}

/* A claim whose peer may have IN_FLIGHT transfers in flight at once. */
static void harness_claim_in_flight_limit(Harness *h, uint32_t in_flight) {
        Config config;

        config_init(&config);
        config.in_flight_per_client = in_flight;
        harness_new(h, &config);
        harness_claim(h);
}

static void test_backpressure(void) {
        Harness h;

        harness_claim_in_flight_limit(&h, 2);
        for (uint64_t u = 1; u <= 5; u++)
                submit_bulk(&h, EP_IN, u, 0);
        /* Give its poll timer every chance to take more than it may. */
        for (unsigned i = 0; i < 10; i++)
                check(sd_event_run(h.m->event, 2 * MSEC) >= 0);
        settle(&h);
        check(fake.n_transfers == 2);
        check_in_flight(&h, 2);
        /* The other three are off the ring (their slots free, each with a
         * completion slot reserved), held by zcusbd until they may start:
         * an entry that starts nothing, a CANCEL, must not wait behind them. */
        check(client_sq_head(&h.client) == 5);
        check(h.queue->n_held == 3);

        /* Each completion lets exactly one more in. */
        for (size_t i = 0; i < 5; i++) {
                fake_complete(fake_transfer(i), 0, CHUNK);
                settle(&h);
                check(fake.n_transfers == (i + 3 < 5 ? i + 3 : 5));
                check(h.peer->account.counts[QUOTA_IN_FLIGHT] <= 2);
        }
        check(client_sq_head(&h.client) == 5);
        for (uint64_t u = 1; u <= 5; u++)
                check_completed(&h.client, u, 0);

        harness_release(&h);
        harness_finish(&h, "in-flight backpressure", true);
}

/* A CANCEL (or NOP) entry starts no transfer, so it must not wait behind the
 * client's in-flight limit: two quiet IN transfers fill the limit, and the
 * client's CANCEL of one is still taken (zcusb-ring.h: "NOP and CANCEL
 * entries never wait behind them"). Before, it stayed on the ring for as
 * long as they stayed in flight, possibly forever. */
static void test_cancel_behind_in_flight_limit(void) {
        Harness h;

        harness_claim_in_flight_limit(&h, 2);
        submit_bulk(&h, EP_IN, 1, 0);
        submit_bulk(&h, EP_IN, 2, 0);
        settle_all_taken(&h);
        check_in_flight(&h, 2);

        /* At the limit, a CANCEL of a transfer that may never end is taken
         * (at the next look at the ring: the client rang no doorbell, its
         * transfers being in flight): it starts nothing. */
        submit_cancel(&h, 100, 1);
        for (unsigned i = 0; i < 25; i++)
                check(sd_event_run(h.m->event, 2 * MSEC) >= 0);
        settle(&h);
        check(client_sq_head(&h.client) == h.client.sq_tail);
        check_completed(&h.client, 100, 0);
        check(fake_complete_cancelled() == 1);
        settle(&h);
        check_completed(&h.client, 1, -ECANCELED);
        fake_complete(fake_transfer_for(2), 0, CHUNK);
        settle(&h);
        check_in_flight(&h, 0);

        harness_release(&h);
        harness_finish(&h, "cancel at the limit", true);
}

static void test_held_entries(void) {
        struct zcusb_sqe bad;
        Harness h;

        harness_claim_in_flight_limit(&h, 2);
        for (uint64_t u = 1; u <= 4; u++)
                submit_bulk(&h, EP_IN, u, 0);
        /* A bad entry behind them fails at once instead of being held. */
        bad = bulk_sqe(EP_IN, 5, 0);
        bad.buffer_id = 99;
        client_push(&h.client, &bad);
        settle(&h);
        check(fake.n_transfers == 2);
        check(h.queue->n_held == 2);
        check_completed(&h.client, 5, -ENOENT);

        /* A CANCEL of a held entry ends it without starting it. */
        submit_cancel(&h, 100, 3);
        for (unsigned i = 0; i < 25; i++)
                check(sd_event_run(h.m->event, 2 * MSEC) >= 0);
        settle(&h);
        check_completed(&h.client, 100, 0);
        check_completed(&h.client, 3, -ECANCELED);

        /* As transfers end, the held ones start in order, skipping 3. */
        fake_complete(fake_transfer_for(1), 0, CHUNK);
        settle(&h);
        check(fake.n_transfers == 3);
        check(fake_transfer_for(4) != NULL);
        check(h.queue->n_held == 0);
        fake_complete(fake_transfer_for(2), 0, CHUNK);
        fake_complete(fake_transfer_for(4), 0, CHUNK);
        settle(&h);
        for (uint64_t u = 1; u <= 4; u += u == 2 ? 2 : 1)
                check_completed(&h.client, u, 0);
        check_in_flight(&h, 0);

        harness_release(&h);
        harness_finish(&h, "held entries", true);
}

/* A stream of bulk transfers allocates nothing per transfer: the blocks of
 * ended transfers wait on the claim for the next ones (a bounded number),
 * and a reused block starts as clean as a new one. */
static void test_transfer_block_reuse(void) {
        Harness h;
        Transfer *reused;
        void *first_block;

        harness_new(&h, NULL);
        harness_claim(&h);
        check(h.claim->n_transfer_cache == 0);
        submit_bulk(&h, EP_IN, 1, 1000);
        settle(&h);
        first_block = transfer_from_backend(fake_transfer_for(1)->transfer);
        fake_complete(fake_transfer_for(1), 0, CHUNK);
        settle(&h);
        check(h.claim->n_transfer_cache == 1);

        /* The next transfer takes that block, without its old deadline,
         * cancel status or user data. */
        submit_bulk(&h, EP_OUT, 2, 0);
        settle(&h);
        reused = transfer_from_backend(fake_transfer_for(2)->transfer);
        check((void *) reused == first_block);
        check(h.claim->n_transfer_cache == 0);
        check(reused->user_data == 2 && reused->deadline == 0 && reused->cancel_status == 0);
        check(TAILQ_EMPTY(&h.queue->deadlines));
        fake_complete(fake_transfer_for(2), 0, CHUNK);
        settle(&h);
        client_reap(&h.client);
        check_completed(&h.client, 1, 0);
        check_completed(&h.client, 2, 0);

        /* A full queue's worth at once: every block comes back to the
         * cache (its bound, TRANSFER_CACHE_MAX, is above a queue's size
         * here), and the claim's end frees them (harness_finish: ASan
         * would see a leak). */
        for (uint64_t u = 10; u < 10 + QUEUE_ENTRIES; u++)
                submit_bulk(&h, EP_IN, u, 0);
        settle_all_taken(&h);
        check_in_flight(&h, QUEUE_ENTRIES);
        check(h.claim->n_transfer_cache == 0);
        for (uint64_t u = 10; u < 10 + QUEUE_ENTRIES; u++)
                fake_complete(fake_transfer_for(u), 0, CHUNK);
        settle(&h);
        check_in_flight(&h, 0);
        check(h.claim->n_transfer_cache == QUEUE_ENTRIES);

        harness_release(&h);
        harness_finish(&h, "transfer block reuse", true);
}

int main(void) {
        /* Errors only: what the daemon says of its own bugs ("accounting
         * bug", "freed with transfers in flight") still shows. */
        log_set_max_level(LOG_ERR);

        RUN(test_timeout_among_completions);
        RUN(test_cancel_behind_pending_in);
        RUN(test_batch_done);
        RUN(test_doorbell_grace);
        RUN(test_doorbell_drained);
        RUN(test_doorbell_off_while_taking);
        RUN(test_backpressure);
        RUN(test_cancel_behind_in_flight_limit);
        RUN(test_held_entries);
        RUN(test_transfer_block_reuse);
        return 0;
}
