/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libzcusb's public API against fake-zcusbd.py (see that file for the device
 * it pretends to have), run by run-with-fake-zcusbd.py with
 * DBUS_SYSTEM_BUS_ADDRESS pointing at a private bus. Under ASan this also
 * proves that no path leaks.
 */
#include <inttypes.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "tests.h"
#include "util.h"
#include "zcusb.h"

static struct zcusb *ctx;

#define check_err(expr, err, needle)                                                           \
        do {                                                                                   \
                int _r = (expr);                                                               \
                if (_r != (err) || !strstr(zcusb_last_error_message(ctx), (needle))) {         \
                        fprintf(stderr, "%s:%d: %s -> %d (%s), wanted %d with \"%s\"\n", __FILE__, \
                                __LINE__, #expr, _r, zcusb_last_error_message(ctx), (err), (needle)); \
                        abort();                                                               \
                }                                                                              \
        } while (0)

static bool is_counter(const uint8_t *p, size_t n, uint64_t start) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != (uint8_t) (start + i))
                        return false;
        return true;
}

/* The fake's test hooks, over a connection of our own. */
static void fake_call(const char *method, const char *types, const char *arg) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;

        check(sd_bus_open_system(&bus) >= 0);
        check(sd_bus_call_method(bus, ZCUSB_BUS_NAME, ZCUSB_MANAGER_PATH, "org.zcusb1.Test", method, &error, NULL,
                                 types, arg) >= 0);
}

static void test_open(void) {
        struct zcusb *other = NULL;

        check(zcusb_open_address(NULL, &other) == -EINVAL);
        check(zcusb_open_address("", &other) == -EINVAL);
        check(zcusb_open(NULL) == -EINVAL);
        check(zcusb_open_address("unix:path=/nonexistent/socket", &other) < 0 && !other);
        zcusb_close(NULL);
        check(zcusb_open(&ctx) == 0 && ctx);
        check_streq(zcusb_last_error_message(ctx), "");
}

static void test_claim_errors(void) {
        struct zcusb_claim *claim = NULL;

        check(zcusb_claim_interface(NULL, "1:3", 0, &claim) == -EINVAL);
        check(zcusb_claim_interface(ctx, NULL, 0, &claim) == -EINVAL);
        check_err(zcusb_claim_interface(ctx, "garbage", 0, &claim), -EINVAL, "not a device name");
        check_err(zcusb_claim_interface(ctx, "9:9", 0, &claim), -ENODEV, "bus 9 address 9");
        check_err(zcusb_claim_interface(ctx, "dead:beef", 0, &claim), -ENODEV, "no such device");
        check_err(zcusb_claim_interface(ctx, "0525:a4a0:OTHER", 0, &claim), -ENODEV, "no such device");
        check_err(zcusb_claim_interface(ctx, "/sys/bus/usb/devices/2-2", 0, &claim), -ENODEV, "no such device");
        check_err(zcusb_claim_interface(ctx, "/org/zcusb1/device/usb7_7", 0, &claim), -ENODEV, "usb7_7");
        check_err(zcusb_claim_interface(ctx, "1:3", 7, &claim), -EINVAL, "no interface 7");
        check(!claim);
}

static void test_claim_names(void) {
        static const char *const names[] = {
                "001:003", "1:3", "0525:a4a0", "0525:A4A0:SN1", "/org/zcusb1/device/usb1_3",
                "/sys/bus/usb/devices/1-1", "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                struct zcusb_claim *claim = NULL, *again = NULL;

                check(zcusb_claim_interface(ctx, names[i], 0, &claim) == 0 && claim);
                check_streq(zcusb_claim_get_device_path(claim), "/org/zcusb1/device/usb1_3");
                check(startswith(zcusb_claim_get_object_path(claim), "/org/zcusb1/claim/"));
                check(zcusb_claim_get_interface(claim) == 0);
                check_err(zcusb_claim_interface(ctx, names[i], 0, &again), -EBUSY, "claimed by another");
                check_err(zcusb_claim_release(claim), 0, "");
        }
        check(zcusb_claim_release(NULL) == 0);
}

static void test_usage_and_endpoints(struct zcusb_claim *claim) {
        struct zcusb_endpoint ep;
        struct zcusb_usage u;

        check(zcusb_claim_get_usage(claim, &u) == 0);
        check_streq(u.backend, "usbfs");
        check(u.quota_bytes == 8 << 20 && u.used_bytes == 0 && u.buffers == 0 && u.queues == 0);
        check(zcusb_claim_get_usage(claim, NULL) == -EINVAL);

        check(zcusb_claim_get_endpoint(claim, 0x81, &ep) == 0);
        check(ep.address == 0x81 && (ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) == ZCUSB_ENDPOINT_TYPE_BULK &&
              ep.max_packet_size == 512);
        check(zcusb_claim_get_endpoint(claim, 0x83, &ep) == 0);
        check((ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) == ZCUSB_ENDPOINT_TYPE_INTERRUPT && ep.interval == 1);
        check_err(zcusb_claim_get_endpoint(claim, 0x85, &ep), -ENOENT, "no endpoint 0x85");

        check(zcusb_claim_set_alt_setting(claim, 0) == 0);
        check_err(zcusb_claim_set_alt_setting(claim, 5), -EINVAL, "alternate setting 5");
        check(zcusb_claim_clear_halt(claim, 0x81) == 0);
        check_err(zcusb_claim_clear_halt(claim, 0x85), -EINVAL, "no endpoint 0x85");
}

static void test_buffers(struct zcusb_claim *claim) {
        struct zcusb_buffer *a = NULL, *b = NULL;
        struct zcusb_usage u;

        check(zcusb_buffer_alloc(claim, 0, &a) == -EINVAL);
        check(zcusb_buffer_alloc(claim, 1000, &a) == 0);
        check(zcusb_buffer_size(a) == 4096 && zcusb_buffer_data(a) && zcusb_buffer_id(a) > 0);
        memset(zcusb_buffer_data(a), 0x5a, zcusb_buffer_size(a)); /* mapped read-write, whole size */
        check_err(zcusb_buffer_alloc(claim, 9 << 20, &b), -EDQUOT, "quota");
        check(!b);
        check(zcusb_claim_get_usage(claim, &u) == 0 && u.buffers == 1 && u.used_bytes == 4096);
        check(zcusb_buffer_free(a) == 0);
        check(zcusb_claim_get_usage(claim, &u) == 0 && u.buffers == 0 && u.used_bytes == 0);
        check(zcusb_buffer_free(NULL) == 0);
        check(zcusb_buffer_data(NULL) == NULL && zcusb_buffer_size(NULL) == 0);
}

/* Transfers through a queue the caller drives. */
static void test_queue(struct zcusb_claim *claim) {
        struct zcusb_queue *q = NULL;
        struct zcusb_buffer *buf = NULL;
        struct zcusb_sqe sqes[8];
        struct zcusb_cqe cqes[16];
        int n;

        check_err(zcusb_queue_open(claim, 3, &q), -EINVAL, "power of two");
        check_err(zcusb_queue_open(claim, 8192, &q), -EINVAL, "power of two");
        check(zcusb_queue_open(claim, 8, &q) == 0 && zcusb_queue_get_fd(q) >= 0);
        check(zcusb_buffer_alloc(claim, 4 * 512, &buf) == 0);

        /* NOPs in rounds with a pause: each round starts on an idle daemon
         * that needs the doorbell. */
        for (unsigned round = 0; round < 3; round++) {
                int got = 0;

                for (unsigned i = 0; i < 8; i++)
                        zcusb_prep_transfer(&sqes[i], ZCUSB_OP_NOP, 0, 0, 0, 0, 0, 100 * round + i);
                check(zcusb_queue_submit_batch(q, sqes, 8) == 8);
                while (got < 8) {
                        check(zcusb_queue_wait(q, 5000) > 0);
                        n = zcusb_queue_reap(q, cqes + got, 16 - (unsigned) got);
                        check(n >= 0);
                        got += n;
                }
                for (int i = 0; i < 8; i++)
                        check(cqes[i].user_data == 100 * round + (unsigned) i && cqes[i].status == 0);
                usleep(50 * 1000);
        }

        /* Bulk IN into four regions of one buffer, completions in order. */
        for (unsigned i = 0; i < 4; i++)
                zcusb_prep_transfer(&sqes[i], ZCUSB_OP_BULK, 0x81, zcusb_buffer_id(buf), 512 * i, 512, 1000, i);
        check(zcusb_queue_submit_batch(q, sqes, 4) == 4);
        for (int got = 0; got < 4; got += n) {
                check(zcusb_queue_wait(q, 5000) > 0);
                check((n = zcusb_queue_reap(q, cqes + got, 4 - (unsigned) got)) >= 0);
        }
        for (unsigned i = 0; i < 4; i++)
                check(cqes[i].user_data == i && cqes[i].status == 0 && cqes[i].actual_length == 512);
        check(is_counter(zcusb_buffer_data(buf), 2048, 0));

        /* A transfer that never ends on its own holds the buffer: FreeBuffer
         * says Busy and the handle stays. CloseQueue cancels it.
         * (Not OP_CANCEL here: with a transfer in flight zcusbd clears
         * NEED_WAKEUP and only rescans the ring after a completion, which
         * this transfer never produces, so a CANCEL behind it is not seen.) */
        zcusb_prep_transfer(&sqes[0], ZCUSB_OP_BULK, 0x86, zcusb_buffer_id(buf), 0, 512, 0, 42);
        check(zcusb_queue_submit(q, &sqes[0]) == 0);
        usleep(100 * 1000);
        check_err(zcusb_buffer_free(buf), -EBUSY, "in flight");
        check(zcusb_buffer_size(buf) == 4096);
        check(zcusb_queue_close(q) == 0);
        check(zcusb_buffer_free(buf) == 0);
        check(zcusb_queue_open(claim, 8, &q) == 0);
        check(zcusb_buffer_alloc(claim, 4 * 512, &buf) == 0);

        /* OP_CANCEL in the same batch as its transfer: zcusbd takes both in
         * one scan of the ring. */
        zcusb_prep_transfer(&sqes[0], ZCUSB_OP_BULK, 0x86, zcusb_buffer_id(buf), 0, 512, 0, 42);
        zcusb_prep_transfer(&sqes[1], ZCUSB_OP_CANCEL, 0, 0, 0, 0, 0, 43);
        sqes[1].cancel_user_data = 42;
        check(zcusb_queue_submit_batch(q, sqes, 2) == 2);
        for (int got = 0; got < 2; got += n) {
                check(zcusb_queue_wait(q, 5000) > 0);
                check((n = zcusb_queue_reap(q, cqes + got, 2 - (unsigned) got)) >= 0);
        }
        check(cqes[0].user_data == 42 && cqes[0].status == -ECANCELED);
        check(cqes[1].user_data == 43 && cqes[1].status == 0);

        /* Unknown buffer id: the daemon says so in the completion. */
        zcusb_prep_transfer(&sqes[0], ZCUSB_OP_BULK, 0x81, 999, 0, 512, 0, 7);
        check(zcusb_queue_submit(q, &sqes[0]) == 0);
        check(zcusb_queue_wait(q, 5000) == 1);
        check(zcusb_queue_reap(q, cqes, 1) == 1 && cqes[0].status == -ENOENT);

        check(zcusb_buffer_free(buf) == 0);
        check(zcusb_queue_close(q) == 0);
}

/* zcusb-ring.h's ordering promise, as a client sees it: with the ring kept
 * full, each completion reaped leaves room to submit again at once. Rounds
 * that start on an idle daemon with a full ring of bulk INs, which it takes
 * and completes in one scan of the ring; the client busy-polls, so it looks
 * while that scan is under way, when a daemon that publishes sq_head only
 * after the scan leaves it no room. */
static void test_queue_reap_frees_slot(struct zcusb_claim *claim) {
        enum { ENTRIES = 64, ROUNDS = 50, SIZE = 16384 };
        struct zcusb_queue *q = NULL;
        struct zcusb_buffer *buf = NULL;
        struct zcusb_sqe sqes[ENTRIES];
        struct zcusb_cqe cqes[ENTRIES];
        uint64_t submitted = 0, reaped = 0;
        struct timespec ts;
        time_t deadline;

        check(zcusb_queue_open(claim, ENTRIES, &q) == 0);
        check(zcusb_buffer_alloc(claim, ENTRIES * SIZE, &buf) == 0);
        zcusb_queue_set_completion_wakeup(q, false);
        check(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
        deadline = ts.tv_sec + 60;

        for (unsigned round = 0; round < ROUNDS; round++) {
                uint64_t end = submitted + 2 * ENTRIES;

                for (unsigned i = 0; i < ENTRIES; i++, submitted++)
                        zcusb_prep_transfer(&sqes[i], ZCUSB_OP_BULK, 0x81, zcusb_buffer_id(buf),
                                            (submitted % ENTRIES) * SIZE, SIZE, 0, submitted);
                check(zcusb_queue_submit_batch(q, sqes, ENTRIES) == ENTRIES);

                while (reaped < end) {
                        int n = zcusb_queue_reap(q, cqes, ENTRIES);

                        check(n >= 0);
                        if (n == 0) {
                                check(clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && ts.tv_sec < deadline);
                                continue;
                        }
                        for (int i = 0; i < n; i++) {
                                struct zcusb_sqe sqe;
                                int r;

                                check(cqes[i].user_data == reaped++ && cqes[i].status == 0);
                                if (submitted == end)
                                        continue;
                                zcusb_prep_transfer(&sqe, ZCUSB_OP_BULK, 0x81, zcusb_buffer_id(buf),
                                                    (submitted % ENTRIES) * SIZE, SIZE, 0, submitted);
                                r = zcusb_queue_submit(q, &sqe);
                                if (r < 0)
                                        fprintf(stderr, "submission %" PRIu64 " right after reaping %" PRIu64 ": %s\n",
                                                submitted, reaped - 1, zcusb_strerror(r));
                                check(r == 0);
                                submitted++;
                        }
                }
        }
        check(zcusb_queue_close(q) == 0);
        check(zcusb_buffer_free(buf) == 0);
}

static void test_sync(struct zcusb_claim *claim) {
        struct zcusb_buffer *buf = NULL;
        uint8_t data[5000];
        uint32_t actual = 99;

        check(zcusb_buffer_alloc(claim, 8192, &buf) == 0);
        /* the fake's IN stream continues where test_queue left it: 2048 bytes in */
        check(zcusb_bulk_transfer(claim, 0x81, buf, 100, 1000, 1000, &actual) == 0 && actual == 1000);
        check(is_counter((uint8_t *) zcusb_buffer_data(buf) + 100, 1000, 2048));
        check(zcusb_interrupt_transfer(claim, 0x83, buf, 0, 64, 1000, NULL) == 0);
        check(is_counter(zcusb_buffer_data(buf), 64, 3048));

        for (unsigned i = 0; i < 4096; i++)
                ((uint8_t *) zcusb_buffer_data(buf))[i] = (uint8_t) i;
        check(zcusb_bulk_transfer(claim, 0x02, buf, 0, 4096, 1000, &actual) == 0 && actual == 4096);
        check_err(zcusb_bulk_transfer(claim, 0x02, buf, 1, 100, 1000, &actual), -EPROTO, "endpoint 0x02 failed");
        check_err(zcusb_bulk_transfer(claim, 0x84, buf, 0, 512, 1000, &actual), -EPIPE, "Stalled");
        check(actual == 0);
        check_err(zcusb_bulk_transfer(claim, 0x86, buf, 0, 512, 100, &actual), -ETIMEDOUT, "Timed out");
        check_err(zcusb_bulk_transfer(claim, 0x81, buf, 8000, 512, 100, &actual), -EINVAL, "do not fit");
        check_err(zcusb_bulk_transfer(claim, 0x81, buf, UINT64_MAX, 1, 100, &actual), -EINVAL, "do not fit");
        check(zcusb_bulk_transfer(claim, 0x81, NULL, 0, 1, 100, &actual) == -EINVAL);

        /* control: descriptor, a long vendor read (the internal buffer grows),
         * an OUT request read back, a stall */
        memset(data, 0, sizeof(data));
        check(zcusb_control_transfer(claim, 0x80, 6, 0x0100, 0, data, 64, 500, &actual) == 0 && actual == 18);
        check(data[0] == 18 && data[1] == 1 && data[8] == 0x25 && data[9] == 0x05);
        check(zcusb_control_transfer(claim, 0xc0, 0x5c, 0, 0, data, sizeof(data), 500, &actual) == 0);
        check(actual == sizeof(data) && is_counter(data, sizeof(data), 0));
        check(zcusb_control_transfer(claim, 0x40, 0x5b, 0, 0, (uint8_t[]) { 1, 2, 3 }, 3, 500, &actual) == 0);
        check(actual == 3);
        check(zcusb_control_transfer(claim, 0xc0, 0x5d, 0, 0, data, 16, 500, &actual) == 0);
        check(actual == 3 && data[0] == 1 && data[1] == 2 && data[2] == 3);
        check_err(zcusb_control_transfer(claim, 0xc0, 0x99, 0, 0, data, 8, 500, &actual), -EPIPE, "Stalled");
        check(zcusb_control_transfer(claim, 0x00, 0x09, 1, 0, NULL, 0, 500, &actual) == -EPIPE);
        check(zcusb_control_transfer(claim, 0x80, 6, 0, 0, NULL, 8, 500, &actual) == -EINVAL);

        check(zcusb_buffer_free(buf) == 0);
}

/* A consumer that breaks zcusb-ring.h's ordering (the fake does on request:
 * sq_head lags the completions by some 20 ms) leaves the one-entry queue of
 * the synchronous helpers full after each transfer: they wait for the slot,
 * never report a full ring. */
static void test_sync_backpressure(struct zcusb_claim *claim) {
        struct zcusb_buffer *buf = NULL;
        uint8_t data[18];
        uint32_t actual = 0;

        check(zcusb_buffer_alloc(claim, 4096, &buf) == 0);
        fake_call("SetRingOrder", "s", "completion-first");
        for (unsigned i = 0; i < 4; i++) {
                check_err(zcusb_bulk_transfer(claim, 0x81, buf, 0, 512, 1000, &actual), 0, "");
                check(actual == 512);
                check_err(zcusb_control_transfer(claim, 0x80, 6, 0x0100, 0, data, sizeof(data), 1000, &actual), 0, "");
                check(actual == 18 && data[0] == 18);
        }
        fake_call("SetRingOrder", "s", "in-order");
        check(zcusb_buffer_free(buf) == 0);
}

/* zcusbd ends the claim (unplug): everything reports it, release still works. */
static void test_ended(void) {
        struct zcusb_claim *claim = NULL;
        struct zcusb_buffer *buf = NULL;
        struct zcusb_queue *q = NULL;
        struct zcusb_sqe sqe;
        struct zcusb_cqe cqe;
        const char *reason = "x";

        check(zcusb_claim_interface(ctx, "1:3", 0, &claim) == 0);
        check(zcusb_buffer_alloc(claim, 4096, &buf) == 0);
        check(zcusb_queue_open(claim, 2, &q) == 0);
        zcusb_prep_transfer(&sqe, ZCUSB_OP_BULK, 0x86, zcusb_buffer_id(buf), 0, 512, 0, 1);
        check(zcusb_queue_submit(q, &sqe) == 0);
        check(zcusb_claim_is_ended(claim, &reason) == 0 && reason == NULL);

        /* Anyone may emit a signal: one from another connection must not count. */
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
                check(sd_bus_open_system(&bus) >= 0);
                check(sd_bus_emit_signal(bus, zcusb_claim_get_object_path(claim), ZCUSB_CLAIM_INTERFACE, "Ended", "s",
                                         "revoked") >= 0);
        }
        usleep(100 * 1000);
        check(zcusb_claim_is_ended(claim, NULL) == 0);

        fake_call("EndClaims", "s", "device-removed");
        usleep(100 * 1000);
        check(zcusb_claim_is_ended(claim, &reason) == 1);
        check_streq(reason, "device-removed");

        /* the in-flight transfer completed with -ENODEV, then the queue is dead */
        check(zcusb_queue_wait(q, 5000) == 1);
        check(zcusb_queue_reap(q, &cqe, 1) == 1 && cqe.user_data == 1 && cqe.status == -ENODEV);
        check(zcusb_queue_wait(q, 5000) == -ENODEV);
        check(zcusb_queue_submit(q, &sqe) == -ENODEV);

        check_err(zcusb_buffer_alloc(claim, 4096, &buf), -ENODEV, "ended (device-removed)");
        check_err(zcusb_queue_open(claim, 2, &q), -ENODEV, "ended (device-removed)");
        check_err(zcusb_claim_set_alt_setting(claim, 0), -ENODEV, "ended");
        check(zcusb_claim_release(claim) == 0);

        /* revoked maps to -EACCES */
        check(zcusb_claim_interface(ctx, "1:3", 0, &claim) == 0);
        fake_call("EndClaims", "s", "revoked");
        usleep(100 * 1000);
        check_err(zcusb_buffer_alloc(claim, 4096, &buf), -EACCES, "revoked");
        check(zcusb_claim_release(claim) == 0);
}

int main(void) {
        struct zcusb_claim *claim = NULL;

        RUN(test_open);
        RUN(test_claim_errors);
        RUN(test_claim_names);

        check(zcusb_claim_interface(ctx, "0525:a4a0", 0, &claim) == 0);
        test_usage_and_endpoints(claim);
        printf("ok - test_usage_and_endpoints\n");
        test_buffers(claim);
        printf("ok - test_buffers\n");
        test_queue(claim);
        printf("ok - test_queue\n");
        test_sync(claim);
        printf("ok - test_sync\n");
        test_queue_reap_frees_slot(claim);
        printf("ok - test_queue_reap_frees_slot\n");
        test_sync_backpressure(claim);
        printf("ok - test_sync_backpressure\n");
        check(zcusb_claim_release(claim) == 0);

        RUN(test_ended);

        /* closing with a claim, buffer and queue still held releases them */
        {
                struct zcusb_buffer *buf;
                struct zcusb_queue *q;
                check(zcusb_claim_interface(ctx, "1:3", 0, &claim) == 0);
                check(zcusb_buffer_alloc(claim, 4096, &buf) == 0);
                check(zcusb_queue_open(claim, 4, &q) == 0);
        }
        zcusb_close(ctx);
        check(zcusb_open(&ctx) == 0);
        check(zcusb_claim_interface(ctx, "1:3", 0, &claim) == 0); /* it was released */
        zcusb_close(ctx);
        printf("ok - close releases\n");
        return 0;
}
