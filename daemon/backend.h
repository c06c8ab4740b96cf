/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "forward.h"
#include "transfer-check.h"

/* The data path runs over one of two backends (DESIGN.md "Backends"): the
 * zcusb.ko module (zero copy) or mainline usbfs (one kernel copy). Each is an
 * ops table; a device is opened through one at its first claim, and claims,
 * queues and transfers only ever call through the table. */

typedef enum BackendKind {
        BACKEND_USBFS,
        BACKEND_ZCUSB,
        _BACKEND_KIND_MAX,
} BackendKind;

typedef struct BackendOps {
        const char *name; /* as reported on the bus: "usbfs", "zcusb.ko" */
        BackendKind kind;

        /* > 0 usable, 0 not usable (why in *reason, may be NULL), < 0 error. */
        int (*probe)(const Config *c, char **reason);

        /* One handle per device, shared by its claims (refcounted). */
        int (*open)(Manager *m, Device *d, BackendDevice **ret);
        BackendDevice *(*ref)(BackendDevice *h);
        void (*unref)(BackendDevice *h);
        /* The device is gone: complete everything in flight with -ENODEV. */
        void (*disconnect)(BackendDevice *h);

        /* Claim an interface. A bound kernel driver is detached only when
         * may_detach (then *ret_detached names it, to re-attach on release);
         * otherwise -EBUSY with *ret_driver naming it. */
        int (*claim_interface)(BackendDevice *h, uint8_t interface, bool may_detach, char **ret_detached,
                               char **ret_driver);
        void (*release_interface)(BackendDevice *h, uint8_t interface, const char *reattach_driver);
        int (*set_alt_setting)(BackendDevice *h, uint8_t interface, uint8_t alt_setting);
        int (*clear_halt)(BackendDevice *h, uint8_t endpoint);

        /* Start a transfer; transfer_done() reports its end exactly once,
         * unless submit fails, which ends nothing. */
        int (*submit)(BackendDevice *h, Transfer *t);
        /* Ask a transfer to end early; transfer_done() follows. */
        void (*cancel)(BackendDevice *h, Transfer *t);

        /* Upper bound of the memory submit() allocates for a transfer of
         * PLAN (URBs and their bookkeeping): charged to the claim. May be NULL. */
        uint64_t (*transfer_memory)(const TransferPlan *plan);

        /* A buffer is being freed (no transfer uses it): drop what the
         * backend holds for it, e.g. pinned pages. May be NULL. */
        void (*forget_buffer)(BackendDevice *h, uint8_t interface, const Buffer *b);
} BackendOps;

extern const BackendOps backend_usbfs;
extern const BackendOps backend_zcusb;

const BackendOps *backend_from_kind(BackendKind kind);

/* The backend new claims prefer under C (Backend=, LoadModule=). Never NULL:
 * usbfs is always there. *reason says why zcusb.ko was passed over. */
const BackendOps *backend_select(const Config *c, char **reason);
