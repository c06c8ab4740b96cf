/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "transfer-check.h"

/* The data path runs over one of two backends (docs/architecture.md,
 * "Backends"): the zcusb.ko module (zero copy) or mainline usbfs (one copy,
 * zcusbd's or the kernel's). Each is an ops table, as libusb's usbi_os_backend is. A claim opens
 * its interface through one; the core only ever calls through the table.
 *
 * The boundary goes one way: a backend sees what this header defines and
 * nothing of the daemon's objects (claims, queues, peers, the manager). It
 * works per claimed interface; its per-transfer state is allocated by the
 * core together with the transfer (transfer_priv_size), so submitting
 * allocates nothing in the common case, and a completion finds its transfer
 * without a search. */

typedef enum BackendKind {
        BACKEND_USBFS,
        BACKEND_ZCUSB,
        _BACKEND_KIND_MAX,
} BackendKind;

/* What a backend needs to know of the device an interface belongs to. */
typedef struct BackendDeviceInfo {
        const char *devnode;   /* /dev/bus/usb/BBB/DDD */
        const char *sysname;   /* kernel name, e.g. "1-1.2" */
        uint16_t vendor_id, product_id;
        uint8_t configuration; /* active */
        bool iso;              /* the interface to open has isochronous endpoints */
} BackendDeviceInfo;

/* A client buffer as a backend sees it: zcusbd's mapping of the memfd. */
typedef struct BackendBuffer {
        uint8_t *map;
        uint64_t size;
        uint32_t id; /* the client's id, for messages */
} BackendBuffer;

/* A queue handed to the kernel (in-kernel queues): the ring memfd laid out
 * by ring.c, its eventfds, and zcusbd's private indices where it stopped. */
typedef struct BackendQueue {
        int ring_fd, submit_fd, complete_fd;
        uint32_t sq_entries;
        uint32_t sq_head, cq_tail;
} BackendQueue;

/* A claim's transfer counters (its Submitted .. InFlight properties), as
 * zcusbd counts the queues it serves (queue.c, transfer.c) and a kernel
 * counts those it serves: every ring entry acted on is submitted; it
 * ends completed (status 0: NOP, and CANCEL whatever it answers) or failed
 * (refused, or ended with an error); bytes are the actual length of
 * completed transfers by direction; in_flight is taken and not yet ended. */
typedef struct TransferCounters {
        uint64_t submitted, completed, failed;
        uint64_t bytes_in, bytes_out;
        uint64_t in_flight;
} TransferCounters;

static inline void transfer_counters_add(TransferCounters *to, const TransferCounters *n) {
        to->submitted += n->submitted;
        to->completed += n->completed;
        to->failed += n->failed;
        to->bytes_in += n->bytes_in;
        to->bytes_out += n->bytes_out;
        to->in_flight += n->in_flight;
}

/* One transfer as a backend sees it; the core's Transfer embeds it. */
typedef struct BackendTransfer {
        TransferPlan plan;            /* checked, private copies */
        const BackendBuffer *buffer;
        /* bulk, interrupt, iso: points into buffer->map (zero copy); control:
         * a private copy of setup + data, so the client cannot change a
         * request after it was checked. */
        uint8_t *data;
        uint32_t data_length;
        uint16_t flags;               /* ZCUSB_SQE_* */
        uint32_t *iso_actual;         /* iso: plan.iso_packets results, filled by the backend */
        int32_t *iso_status;
        void *priv;                   /* ops->transfer_priv_size bytes, zeroed */
} BackendTransfer;

/* The core's side of the boundary: a backend reports the end of every
 * transfer it accepted, exactly once. URB_STATUS is the kernel's; ACTUAL the
 * bytes moved (control: data stage only). The transfer (and its priv) is
 * gone when this returns. */
void backend_transfer_done(BackendTransfer *t, int urb_status, uint32_t actual);
/* A backend that reaped a batch of completions (everything its kernel had
 * for one wakeup) says so once its own state is consistent: the core then
 * posts their doorbells and starts what their queues hold, within the same
 * wakeup. Without it the core does so on the next loop iteration. */
void backend_batch_done(void);

/* One claimed interface, as its backend holds it. */
typedef struct BackendInterface BackendInterface;

typedef struct BackendOps {
        const char *name; /* as reported on the bus: "usbfs", "zcusb.ko" */
        BackendKind kind;
        size_t transfer_priv_size;

        /* > 0 usable, 0 not usable (why in *reason, may be NULL), < 0 error. */
        int (*probe)(const Config *c, char **reason);

        /* Claim INTERFACE of the device. A bound kernel driver is detached
         * only when may_detach (then *ret_detached names it, to re-attach on
         * close); otherwise -EBUSY with *ret_driver naming it. */
        int (*open_interface)(sd_event *event, const Config *config, const BackendDeviceInfo *device,
                              uint8_t interface, bool may_detach, BackendInterface **ret, char **ret_detached,
                              char **ret_driver);
        /* Nothing in flight: release the interface (unless the device is
         * gone), re-attach REATTACH_DRIVER, free. */
        void (*close_interface)(BackendInterface *bi, const char *reattach_driver);
        /* The device is gone: complete everything in flight with -ENODEV. */
        void (*disconnect)(BackendInterface *bi);

        int (*set_alt_setting)(BackendInterface *bi, uint8_t alt_setting);
        int (*clear_halt)(BackendInterface *bi, uint8_t endpoint);

        /* Start a transfer; backend_transfer_done() reports its end, unless
         * submit fails, which ends nothing. */
        int (*submit)(BackendInterface *bi, BackendTransfer *t);
        /* Ask a transfer to end early; backend_transfer_done() follows. */
        void (*cancel)(BackendInterface *bi, BackendTransfer *t);

        /* A buffer is being freed (no transfer uses it): drop what the
         * backend holds for it, e.g. pinned pages. May be NULL. */
        void (*forget_buffer)(BackendInterface *bi, const BackendBuffer *b);
        /* Upper bound of what submit() allocates beyond transfer_priv_size
         * for a transfer of PLAN (split URBs, iso descriptors): charged to
         * the claim with the transfer. May be NULL. */
        uint64_t (*transfer_memory)(const TransferPlan *plan);

        /* In-kernel queues (NULL: the backend has none). The kernel checks
         * and runs every entry itself and zcusbd is not woken per transfer.
         * add_buffer makes buffer B nameable by its client id in such
         * rings (pinned and charged by the module until forget_buffer).
         * detach_queue ends the kernel's part: what is in flight completes
         * with END_STATUS, *ret_q gets the indices zcusbd goes on from and
         * *ret_counters what the kernel counted for the queue, taken once it
         * served no more (all 0 when it cannot count). queue_counters reads
         * them while it serves. -EOPNOTSUPP: the kernel has no such thing
         * (zcusbd serves; a kernel that cannot count: the counters stay
         * zcusbd's own). */
        int (*add_buffer)(BackendInterface *bi, const BackendBuffer *b);
        int (*attach_queue)(BackendInterface *bi, const BackendQueue *q, uint32_t *ret_id);
        int (*detach_queue)(BackendInterface *bi, uint32_t id, int end_status, BackendQueue *ret_q,
                            TransferCounters *ret_counters);
        int (*queue_counters)(BackendInterface *bi, uint32_t id, TransferCounters *ret);
} BackendOps;

extern const BackendOps backend_usbfs;
extern const BackendOps backend_zcusb;

/* The backend new claims prefer under C (Backend=, LoadModule=). Never NULL:
 * usbfs is always there. *reason says why zcusb.ko was passed over. */
const BackendOps *backend_select(const Config *c, char **reason);
