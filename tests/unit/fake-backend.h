/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A backend for unit tests: an ops table like backend_usbfs, with no kernel
 * behind it. It accepts transfers and holds them until the test ends them
 * (fake_complete), as a device would; cancel only marks a transfer, and the
 * test (or fake_complete_cancelled) then gives it back -ENOENT as the kernel
 * does for a killed URB, unless cancel_synchronous is set. Every call is
 * counted, and every transfer it accepted keeps a record after its end, so
 * a test can check that each ended exactly once. Global state: the ops
 * table has no userdata, and a test binary drives one manager at a time. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* What the fake knows of one transfer it accepted; outlives the transfer. */
typedef struct FakeTransfer {
        BackendTransfer *transfer;     /* NULL once ended: the core freed it */
        BackendInterface *interface;
        size_t index;                  /* in submission order, from 0 */
        uint8_t endpoint;
        uint64_t buffer_offset;        /* of the data in its buffer: which entry it was */
        uint32_t data_length;
        unsigned cancel_requests;
        unsigned ends;                 /* backend_transfer_done() calls: must end up 1 */
        int urb_status;                /* what it ended with */
} FakeTransfer;

typedef struct FakeBackendState {
        /* Knobs, set by the test before the call they affect. */
        int open_error;                /* open_interface fails with this ... */
        const char *open_busy_driver;  /* ... naming this driver (with -EBUSY) */
        const char *bound_driver;      /* a driver to detach when may_detach */
        int submit_error;              /* submit fails with this ... */
        unsigned submit_error_count;   /* ... this many times (0: every time while submit_error) */
        bool cancel_synchronous;       /* cancel ends the transfer before returning */
        bool complete_in_submit;       /* submit ends the transfer (status 0, all bytes) before returning */
        void (*on_submit)(void *userdata); /* called in each submit the fake accepts (what the test looks at then) */
        void *on_submit_userdata;
        uint64_t transfer_memory;      /* what transfer_memory() reports */
        /* fake_backend_kq: its kernel serves every queue (it takes no
         * entry: the test says what it counted). */
        TransferCounters kq_counters;  /* what queue_counters and detach_queue report */
        bool kq_no_counters;           /* an older module: it cannot count (-EOPNOTSUPP, zeros) */
        int kq_detach_error;           /* detach_queue fails with this */

        /* What happened. */
        unsigned n_open, n_close, n_disconnect, n_set_alt_setting, n_clear_halt;
        unsigned n_submit, n_submit_refused, n_cancel, n_forget_buffer;
        unsigned n_attach_queue, n_detach_queue, n_queue_counters;
        int kq_end_status;                /* what the last detach_queue was given */
        unsigned n_closed_with_in_flight; /* close_interface with transfers unfinished: a core bug */
        unsigned n_double_ends;           /* a second end of one transfer requested: a test bug */
        char *reattached_driver;          /* what the last close_interface was asked to re-attach */
        unsigned n_interfaces_open;

        FakeTransfer **transfers;      /* every accepted transfer, in submission order */
        size_t n_transfers;
} FakeBackendState;

extern FakeBackendState fake;
extern const BackendOps fake_backend;
/* The same with in-kernel queues (as zcusb.ko has them). */
extern const BackendOps fake_backend_kq;

/* Forget every record and knob (between scenarios). */
void fake_backend_reset(void);

/* The I-th accepted transfer, or NULL. */
FakeTransfer *fake_transfer(size_t i);
/* Accepted transfers not yet ended. */
size_t fake_in_flight(void);

/* The device (or the kernel, after a cancel) ends FT. */
void fake_complete(FakeTransfer *ft, int urb_status, uint32_t actual);
/* End every transfer whose cancel was asked for with -ENOENT, as the kernel
 * gives back a killed URB; returns how many. */
unsigned fake_complete_cancelled(void);

/* Every accepted transfer ended exactly once, and no end came twice. */
bool fake_all_ended_once(void);
