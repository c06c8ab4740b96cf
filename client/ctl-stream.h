/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The stream engine of zcusbctl read and write: one buffer cut into
 * queue_depth slots of transfer_size bytes, every slot kept in flight.
 * Completions may arrive in any order; slots are retired in submission order
 * so the output (read) and the input (write) stay in stream order. */

#include <stdbool.h>
#include <stdint.h>

#include "zcusb.h"

/* Beyond a transfer's own timeout (which zcusbd enforces), how long we wait
 * for any completion before deciding zcusbd no longer serves the queue. */
#define IDLE_SLACK_MS 5000u

typedef enum Pattern {
        PATTERN_NONE,
        PATTERN_COUNTER, /* byte N of the stream is N mod 256 */
        PATTERN_ZEROS,
        PATTERN_RANDOM,
} Pattern;

typedef struct StreamParams {
        bool in;                /* read from an IN endpoint, else write to an OUT one */
        uint8_t endpoint;
        uint8_t opcode;         /* ZCUSB_OP_BULK or ZCUSB_OP_INTERRUPT */
        uint32_t transfer_size;
        unsigned queue_depth;
        unsigned timeout_ms;    /* per transfer; 0: none */
        uint64_t total;         /* bytes to move; UINT64_MAX: until the input ends */
        int fd;                 /* read: output (-1: discard); write: input (-1: pattern) */
        const char *fd_name;
        Pattern pattern;        /* write without an input */
} StreamParams;

typedef struct StreamResult {
        uint64_t moved;         /* bytes the device took or gave */
        uint64_t transfers, errors;
        double seconds;
        int error;              /* the first failed transfer's status; 0: none failed */
        uint64_t error_seq;
} StreamResult;

/* Move the data through a buffer and a queue of CLAIM (both live until the
 * claim is released), showing progress on a terminal. A failed transfer ends
 * the stream and lands in ret->error; returns EXIT_OK then too, or an exit
 * code after reporting a failure of the stream itself. */
int stream_run(struct zcusb *ctx, struct zcusb_claim *claim, const StreamParams *p, StreamResult *ret);
