/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake-backend.h"

FakeBackendState fake;

struct BackendInterface {
        uint8_t number;
        bool disconnected;
};

/* What the core allocates for us with each transfer: the record's address,
 * so a cancel finds its record without a search, as usbfs finds its URB. */
typedef struct FakePriv {
        FakeTransfer *record;
} FakePriv;

void fake_backend_reset(void) {
        for (size_t i = 0; i < fake.n_transfers; i++)
                free(fake.transfers[i]);
        free(fake.transfers);
        free(fake.reattached_driver);
        fake = (FakeBackendState) {};
}

FakeTransfer *fake_transfer(size_t i) {
        return i < fake.n_transfers ? fake.transfers[i] : NULL;
}

size_t fake_in_flight(void) {
        size_t n = 0;

        for (size_t i = 0; i < fake.n_transfers; i++)
                n += fake.transfers[i]->transfer != NULL;
        return n;
}

void fake_complete(FakeTransfer *ft, int urb_status, uint32_t actual) {
        BackendTransfer *t = ft->transfer;

        if (!t) {
                /* Calling backend_transfer_done() now would touch freed memory. */
                fake.n_double_ends++;
                return;
        }
        /* Off our books before the core runs: its completion path may call
         * back into us (a cancel, a submit from the rescanned ring). */
        ft->transfer = NULL;
        ft->ends++;
        ft->urb_status = urb_status;
        backend_transfer_done(t, urb_status, actual);
}

unsigned fake_complete_cancelled(void) {
        unsigned n = 0;

        for (size_t i = 0; i < fake.n_transfers; i++) {
                FakeTransfer *ft = fake.transfers[i];
                if (ft->transfer && ft->cancel_requests > 0) {
                        fake_complete(ft, -ENOENT, 0);
                        n++;
                }
        }
        return n;
}

bool fake_all_ended_once(void) {
        if (fake.n_double_ends > 0)
                return false;
        for (size_t i = 0; i < fake.n_transfers; i++)
                if (fake.transfers[i]->ends != 1)
                        return false;
        return true;
}

static int fake_probe(const Config *c, char **reason) {
        (void) c, (void) reason;
        return 1;
}

static int fake_open_interface(sd_event *event, const Config *config, const BackendDeviceInfo *device,
                               uint8_t interface, bool may_detach, BackendInterface **ret, char **ret_detached,
                               char **ret_driver) {
        BackendInterface *bi;

        (void) event, (void) config, (void) device;
        fake.n_open++;
        if (fake.open_error < 0) {
                if (fake.open_busy_driver) {
                        *ret_driver = strdup(fake.open_busy_driver);
                        if (!*ret_driver)
                                return -ENOMEM;
                }
                return fake.open_error;
        }
        if (fake.bound_driver && !may_detach) {
                *ret_driver = strdup(fake.bound_driver);
                return *ret_driver ? -EBUSY : -ENOMEM;
        }
        bi = calloc(1, sizeof(*bi));
        if (!bi)
                return -ENOMEM;
        bi->number = interface;
        if (fake.bound_driver) {
                *ret_detached = strdup(fake.bound_driver);
                if (!*ret_detached) {
                        free(bi);
                        return -ENOMEM;
                }
        }
        fake.n_interfaces_open++;
        *ret = bi;
        return 0;
}

static size_t fake_in_flight_on(const BackendInterface *bi) {
        size_t n = 0;

        for (size_t i = 0; i < fake.n_transfers; i++)
                n += fake.transfers[i]->transfer && fake.transfers[i]->interface == bi;
        return n;
}

static void fake_close_interface(BackendInterface *bi, const char *reattach_driver) {
        fake.n_close++;
        if (fake_in_flight_on(bi) > 0)
                fake.n_closed_with_in_flight++;
        free(fake.reattached_driver);
        fake.reattached_driver = reattach_driver ? strdup(reattach_driver) : NULL;
        fake.n_interfaces_open--;
        free(bi);
}

static void fake_disconnect(BackendInterface *bi) {
        fake.n_disconnect++;
        bi->disconnected = true;
        /* The kernel gives back every URB of a vanished device -ENODEV
         * (or -ESHUTDOWN): all of this interface's, in order. */
        for (size_t i = 0; i < fake.n_transfers; i++) {
                FakeTransfer *ft = fake.transfers[i];
                if (ft->transfer && ft->interface == bi)
                        fake_complete(ft, -ENODEV, 0);
        }
}

static int fake_set_alt_setting(BackendInterface *bi, uint8_t alt_setting) {
        (void) alt_setting;
        fake.n_set_alt_setting++;
        return bi->disconnected ? -ENODEV : 0;
}

static int fake_clear_halt(BackendInterface *bi, uint8_t endpoint) {
        (void) endpoint;
        fake.n_clear_halt++;
        return bi->disconnected ? -ENODEV : 0;
}

static int fake_submit(BackendInterface *bi, BackendTransfer *t) {
        FakePriv *priv = t->priv;
        FakeTransfer *ft, **a;

        fake.n_submit++;
        if (bi->disconnected) {
                fake.n_submit_refused++;
                return -ENODEV;
        }
        if (fake.submit_error < 0) {
                int r = fake.submit_error;
                if (fake.submit_error_count > 0 && --fake.submit_error_count == 0)
                        fake.submit_error = 0;
                fake.n_submit_refused++;
                return r;
        }
        ft = calloc(1, sizeof(*ft));
        a = ft ? realloc(fake.transfers, (fake.n_transfers + 1) * sizeof(*a)) : NULL;
        if (!a) {
                free(ft);
                return -ENOMEM;
        }
        *ft = (FakeTransfer) {
                .transfer = t,
                .interface = bi,
                .index = fake.n_transfers,
                .endpoint = t->plan.endpoint,
                .buffer_offset = (uint64_t) (t->data - t->buffer->map),
                .data_length = t->data_length,
        };
        fake.transfers = a;
        fake.transfers[fake.n_transfers++] = ft;
        priv->record = ft;
        /* The core links a transfer before submitting it for this: a
         * backend may end it at once (a zero-length OUT, an error it finds
         * after accepting). */
        if (fake.on_submit)
                fake.on_submit(fake.on_submit_userdata);
        if (fake.complete_in_submit)
                fake_complete(ft, 0, t->data_length);
        return 0;
}

static void fake_cancel(BackendInterface *bi, BackendTransfer *t) {
        FakePriv *priv = t->priv;

        (void) bi;
        fake.n_cancel++;
        priv->record->cancel_requests++;
        if (fake.cancel_synchronous)
                fake_complete(priv->record, -ENOENT, 0);
}

static void fake_forget_buffer(BackendInterface *bi, const BackendBuffer *b) {
        (void) bi, (void) b;
        fake.n_forget_buffer++;
}

static uint64_t fake_transfer_memory(const TransferPlan *plan) {
        (void) plan;
        return fake.transfer_memory;
}

static int fake_add_buffer(BackendInterface *bi, const BackendBuffer *b) {
        (void) bi, (void) b;
        return 0;
}

static int fake_attach_queue(BackendInterface *bi, const BackendQueue *q, uint32_t *ret_id) {
        (void) q;
        if (bi->disconnected)
                return -ENODEV;
        fake.n_attach_queue++;
        *ret_id = fake.n_attach_queue;
        return 0;
}

static int fake_queue_counters(BackendInterface *bi, uint32_t id, TransferCounters *ret) {
        (void) bi, (void) id;
        fake.n_queue_counters++;
        if (fake.kq_no_counters)
                return -EOPNOTSUPP;
        *ret = fake.kq_counters;
        return 0;
}

/* The indices zcusbd goes on from: the ring's, as the client left them
 * (the fake kernel took nothing). */
static int fake_detach_queue(BackendInterface *bi, uint32_t id, int end_status, BackendQueue *ret_q,
                             TransferCounters *ret_counters) {
        (void) bi, (void) id;
        fake.n_detach_queue++;
        fake.kq_end_status = end_status;
        if (fake.kq_detach_error < 0)
                return fake.kq_detach_error;
        *ret_q = (BackendQueue) {};
        *ret_counters = fake.kq_no_counters ? (TransferCounters) {} : fake.kq_counters;
        return 0;
}

/* Both tables: the same fake, with or without in-kernel queues. */
#define FAKE_BACKEND_OPS                                \
        .transfer_priv_size = sizeof(FakePriv),         \
        .probe = fake_probe,                            \
        .open_interface = fake_open_interface,          \
        .close_interface = fake_close_interface,        \
        .disconnect = fake_disconnect,                  \
        .set_alt_setting = fake_set_alt_setting,        \
        .clear_halt = fake_clear_halt,                  \
        .submit = fake_submit,                          \
        .cancel = fake_cancel,                          \
        .forget_buffer = fake_forget_buffer,            \
        .transfer_memory = fake_transfer_memory

const BackendOps fake_backend = {
        .name = "fake",
        .kind = BACKEND_USBFS,
        FAKE_BACKEND_OPS,
};

const BackendOps fake_backend_kq = {
        .name = "fake-kq",
        .kind = BACKEND_ZCUSB,
        FAKE_BACKEND_OPS,
        .add_buffer = fake_add_buffer,
        .attach_queue = fake_attach_queue,
        .detach_queue = fake_detach_queue,
        .queue_counters = fake_queue_counters,
};
