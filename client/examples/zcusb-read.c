/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zcusb-read: stream IN transfers from one endpoint with several in flight,
 * through zcusbd. A minimal libzcusb example: claim, buffer, queue, then
 * submit / wait / reap / resubmit until enough bytes arrived.
 *
 *   cc zcusb-read.c $(pkg-config --cflags --libs zcusb) -o zcusb-read
 *   ./zcusb-read 0525:a4a0 0 0x81 16777216 65536 8 > data.bin
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zcusb.h>

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int die(struct zcusb *ctx, const char *what, int r) {
        /* The library's sentence names the cause; zcusb_strerror() is the fallback. */
        const char *message = ctx ? zcusb_last_error_message(ctx) : "";

        fprintf(stderr, "zcusb-read: %s: %s\n", what, *message ? message : zcusb_strerror(r));
        return EXIT_FAILURE;
}

/* Ask for LENGTH bytes into SLOT of BUFFER. user_data carries the slot and the
 * length asked for: the completion then says where its data is and how much
 * is still owed after a short transfer. */
static int submit(struct zcusb_queue *queue, struct zcusb_buffer *buffer, enum zcusb_opcode opcode,
                  uint8_t endpoint, unsigned slot, unsigned transfer_size, unsigned length) {
        struct zcusb_sqe sqe;

        zcusb_prep_transfer(&sqe, opcode, endpoint, zcusb_buffer_id(buffer), (uint64_t) slot * transfer_size,
                            length, 5000 /* ms */, (uint64_t) length << 32 | slot);
        return zcusb_queue_submit(queue, &sqe);
}

int main(int argc, char *argv[]) {
        struct zcusb *ctx = NULL;
        struct zcusb_claim *claim = NULL;
        struct zcusb_buffer *buffer = NULL;
        struct zcusb_queue *queue = NULL;
        struct zcusb_endpoint ep;
        unsigned long long want, got = 0, outstanding = 0; /* outstanding: asked for, not yet completed */
        unsigned transfer_size, in_flight_max, in_flight = 0, entries = 1;
        enum zcusb_opcode opcode;
        int interface, endpoint, r, status = EXIT_FAILURE;
        bool to_stdout = !isatty(STDOUT_FILENO);
        double start, seconds;

        if (argc < 4 || argc > 7) {
                fprintf(stderr, "Usage: %s DEVICE INTERFACE ENDPOINT [BYTES [TRANSFER_SIZE [IN_FLIGHT]]]\n"
                                "Writes the data to standard output unless that is a terminal.\n", argv[0]);
                return 2;
        }
        interface = (int) strtol(argv[2], NULL, 0);
        endpoint = (int) strtol(argv[3], NULL, 0);
        want = argc > 4 ? strtoull(argv[4], NULL, 0) : 16ull << 20;
        transfer_size = argc > 5 ? (unsigned) strtoul(argv[5], NULL, 0) : 64u << 10;
        in_flight_max = argc > 6 ? (unsigned) strtoul(argv[6], NULL, 0) : 8;
        if (interface < 0 || interface > 255 || endpoint < 0x81 || endpoint > 0x8f || transfer_size == 0 ||
            in_flight_max == 0 || in_flight_max > ZCUSB_RING_MAX_ENTRIES) {
                fprintf(stderr, "zcusb-read: need INTERFACE 0..255, an IN ENDPOINT (0x81..0x8f), "
                                "TRANSFER_SIZE > 0 and IN_FLIGHT in 1..%d\n", ZCUSB_RING_MAX_ENTRIES);
                return 2;
        }
        while (entries < in_flight_max)
                entries <<= 1;

        r = zcusb_open(&ctx);
        if (r < 0) {
                fprintf(stderr, "zcusb-read: cannot connect to the system bus: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        r = zcusb_claim_interface(ctx, argv[1], (uint8_t) interface, &claim);
        if (r < 0) {
                die(ctx, "claim", r);
                goto finish;
        }
        /* Bulk or interrupt decides the opcode. */
        r = zcusb_claim_get_endpoint(claim, (uint8_t) endpoint, &ep);
        if (r < 0) {
                die(ctx, "endpoint", r);
                goto finish;
        }
        opcode = (ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) == ZCUSB_ENDPOINT_TYPE_INTERRUPT ? ZCUSB_OP_INTERRUPT
                                                                                           : ZCUSB_OP_BULK;
        /* One buffer, one slot of TRANSFER_SIZE per transfer in flight. */
        r = zcusb_buffer_alloc(claim, (size_t) transfer_size * in_flight_max, &buffer);
        if (r < 0) {
                die(ctx, "buffer", r);
                goto finish;
        }
        r = zcusb_queue_open(claim, entries, &queue);
        if (r < 0) {
                die(ctx, "queue", r);
                goto finish;
        }

        start = now();
        for (unsigned slot = 0; slot < in_flight_max && got + outstanding < want; slot++) {
                unsigned long long owed = want - got - outstanding;
                unsigned length = owed < transfer_size ? (unsigned) owed : transfer_size;

                r = submit(queue, buffer, opcode, (uint8_t) endpoint, slot, transfer_size, length);
                if (r < 0) {
                        die(ctx, "submit", r);
                        goto finish;
                }
                outstanding += length;
                in_flight++;
        }

        while (in_flight > 0) {
                struct zcusb_cqe cqes[16];
                int n;

                r = zcusb_queue_wait(queue, -1);
                if (r == -EINTR)
                        continue;
                if (r < 0) {
                        die(ctx, "wait", r);
                        goto finish;
                }
                n = zcusb_queue_reap(queue, cqes, 16);
                for (int i = 0; i < n; i++) {
                        unsigned slot = (unsigned) (cqes[i].user_data & 0xffffffffu);
                        unsigned asked = (unsigned) (cqes[i].user_data >> 32);
                        unsigned actual = cqes[i].actual_length < asked ? cqes[i].actual_length : asked;
                        unsigned char *data = (unsigned char *) zcusb_buffer_data(buffer) +
                                              (size_t) slot * transfer_size;
                        unsigned long long owed;

                        in_flight--;
                        outstanding -= asked;
                        if (cqes[i].status < 0) {
                                fprintf(stderr, "zcusb-read: transfer failed: %s\n", zcusb_strerror(cqes[i].status));
                                goto finish;
                        }
                        got += actual;
                        /* Transfers on one endpoint complete in order, so writing
                         * each as it completes keeps the stream in order. */
                        if (to_stdout && fwrite(data, 1, actual, stdout) != actual) {
                                perror("zcusb-read: writing standard output");
                                goto finish;
                        }

                        owed = want - got - outstanding;
                        if (owed == 0)
                                continue;
                        /* No -EAGAIN (ring full) here: this slot's transfer was
                         * reaped, and zcusbd frees an entry's ring slot before it
                         * posts the completion (zcusb-ring.h). A program with
                         * more transfers than ring entries would wait and retry. */
                        r = submit(queue, buffer, opcode, (uint8_t) endpoint, slot, transfer_size,
                                   owed < transfer_size ? (unsigned) owed : transfer_size);
                        if (r < 0) {
                                die(ctx, "submit", r);
                                goto finish;
                        }
                        outstanding += owed < transfer_size ? owed : transfer_size;
                        in_flight++;
                }
        }

        seconds = now() - start;
        fprintf(stderr, "%llu bytes in %.3f s, %.1f MB/s\n", got, seconds, seconds > 0 ? (double) got / seconds / 1e6 : 0.0);
        status = EXIT_SUCCESS;
finish:
        /* Closing the context releases the claim, its buffer and queue too. */
        zcusb_close(ctx);
        return status;
}
