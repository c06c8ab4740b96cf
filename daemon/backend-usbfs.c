/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The usbfs backend: URBs through /dev/bus/usb/BBB/DDD. There is one copy
 * per transfer: for the usual bulk and interrupt sizes, zcusbd's own, between
 * the client's memfd and a staging buffer in usbfs memory (usbfs-bounce.h);
 * otherwise the kernel's, the URB pointing at zcusbd's mapping of the memfd.
 *
 * Each claimed interface opens the device node for itself (usbfs claims are
 * per open file), so one claim's URBs never wait behind another's.
 *
 * Every URB is on exactly one list of its interface: "pending" (not yet
 * accepted by the kernel: usbfs ran out of its memory budget, or an earlier
 * URB of this interface waits) or "submitted" (the kernel has it; only
 * reaping takes it back). A transfer ends when all its URBs have retired.
 */
#include <fcntl.h>
#include <linux/usbdevice_fs.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <systemd/sd-event.h>

#include "backend.h"
#include "log.h"
#include "usbfs-bounce.h"
#include "util.h"

/* Bulk transfers larger than this go as several URBs chained by
 * BULK_CONTINUATION: big enough to keep a SuperSpeed bulk endpoint busy,
 * small enough that a few in flight stay far below usbfs_memory_mb (16 MiB
 * by default), which no single URB may exceed. Where the host controller
 * takes scatter-gather lists (usbfs: BULK_SCATTER_GATHER), usbfs builds one
 * from 16 KiB pieces and no contiguous buffer is needed: there an URB may be
 * larger, and the usual transfer sizes up to 1 MiB go as one URB, as libusb
 * submits them (each extra URB costs a submit, a reap and often a wakeup). */
#define USBFS_CHUNK_MAX (256u * 1024u)
#define USBFS_SG_CHUNK_MAX (1024u * 1024u)

typedef struct UsbfsUrb UsbfsUrb;

struct UsbfsUrb {
        struct UsbfsTransfer *owner;
        unsigned index;
        bool submitted;
        bool retired;
        bool allocated;          /* not the transfer's inline URB */
        TAILQ_ENTRY(UsbfsUrb) link;
        struct usbdevfs_urb urb; /* last: iso_frame_desc[] follows */
};

/* The backend's part of a transfer (BackendTransfer.priv, allocated with it).
 * A transfer of one URB without iso packets, the common case, uses the
 * inline one: no allocation per transfer. */
typedef struct UsbfsTransfer {
        BackendTransfer *transfer;
        unsigned n_urbs, n_retired;
        uint32_t actual;
        int status;      /* first failure, 0 if none */
        bool short_seen; /* an IN chunk ended short: the rest carries nothing */
        bool stopping;   /* cancelled or failed: retire the rest */
        UsbfsBounce *bounce; /* the lone URB's buffer, or NULL: the client's memory */
        UsbfsUrb **urbs;
        UsbfsUrb *inline_urbs[1];
        UsbfsUrb inline_urb; /* last: it ends in a flexible array */
} UsbfsTransfer;

TAILQ_HEAD(UrbList, UsbfsUrb);

struct BackendInterface {
        int fd;
        char *devnode;
        uint8_t number;
        uint32_t caps;
        uint32_t chunk_max; /* USBFS_CHUNK_MAX or, with scatter-gather, USBFS_SG_CHUNK_MAX */
        bool gone;
        sd_event_source *io;
        sd_event_source *retry; /* resubmits pending URBs when no completion will */
        UsbfsBouncePool bounces;
        struct UrbList submitted;
        struct UrbList pending;
};

typedef BackendInterface UsbfsInterface;

/* usbfs_memory_mb is shared by every usbfs user of the machine: URBs it
 * refused wait, and are tried again after a completion or this long. */
#define USBFS_RETRY_USEC (5 * 1000)

static void usbfs_update_io(UsbfsInterface *h) {
        int enabled = SD_EVENT_OFF;

        /* usbfs signals completions with POLLOUT. Watch while the kernel
         * holds URBs, and after that until a wakeup finds nothing to reap
         * (usbfs_on_io turns it off then): on usbfs a watch left on costs
         * nothing (no completion, no POLLOUT), and a client that submits one
         * transfer at a time is spared two epoll_ctl() per transfer. An fd
         * that is always ready (emulated ones in tests, a HUP) stops after
         * one wakeup. */
        if (h->gone)
                (void) sd_event_source_set_enabled(h->io, SD_EVENT_OFF);
        else if (!TAILQ_EMPTY(&h->submitted))
                (void) sd_event_source_set_enabled(h->io, SD_EVENT_ON);

        if (TAILQ_EMPTY(&h->pending) || h->gone) {
                (void) sd_event_source_set_enabled(h->retry, SD_EVENT_OFF);
                return;
        }
        if (sd_event_source_get_enabled(h->retry, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_time_relative(h->retry, USBFS_RETRY_USEC);
        (void) sd_event_source_set_enabled(h->retry, SD_EVENT_ONESHOT);
}

/* Free what submit allocated beyond the transfer's own block. */
static void usbfs_transfer_release(UsbfsInterface *h, UsbfsTransfer *ut) {
        usbfs_bounce_put(&h->bounces, ut->bounce);
        ut->bounce = NULL;
        for (unsigned i = 0; i < ut->n_urbs; i++)
                if (ut->urbs[i] && ut->urbs[i]->allocated)
                        free(ut->urbs[i]);
        if (ut->urbs != ut->inline_urbs)
                free(ut->urbs);
        ut->urbs = NULL;
        ut->n_urbs = 0;
}

/* All URBs retired: report once and free. */
static void usbfs_transfer_maybe_done(UsbfsInterface *h, UsbfsTransfer *ut) {
        BackendTransfer *t = ut->transfer;
        int status;

        if (ut->n_retired < ut->n_urbs)
                return;
        status = ut->status;
        if (status == 0 && ut->short_seen && (t->flags & ZCUSB_SQE_SHORT_NOT_OK))
                status = -EREMOTEIO;
        /* Reaped (or never submitted): the kernel is done with the staging
         * buffer. What came in goes to the client, failed or not, as usbfs
         * copies it. */
        if (ut->bounce && t->plan.in && ut->actual > 0)
                memcpy(t->data, ut->bounce->mem, ut->actual < t->data_length ? ut->actual : t->data_length);
        usbfs_transfer_release(h, ut);
        backend_transfer_done(t, status, ut->actual); /* frees t and ut */
}

static void usbfs_retire(UsbfsInterface *h, UsbfsUrb *u, int status, uint32_t actual) {
        UsbfsTransfer *ut = u->owner;
        BackendTransfer *t = ut->transfer;

        if (u->retired)
                return;
        u->retired = true;
        TAILQ_REMOVE(u->submitted ? &h->submitted : &h->pending, u, link);
        ut->n_retired++;
        ut->actual += actual;

        if (t->plan.opcode == ZCUSB_OP_ISO)
                for (unsigned k = 0; k < t->plan.iso_packets && k < (unsigned) u->urb.number_of_packets; k++) {
                        t->iso_actual[k] = u->urb.iso_frame_desc[k].actual_length;
                        t->iso_status[k] = (int32_t) u->urb.iso_frame_desc[k].status;
                }

        /* A control URB's buffer starts with the setup packet; its
         * actual_length counts the data stage only. */
        uint32_t asked = (uint32_t) u->urb.buffer_length -
                         (t->plan.opcode == ZCUSB_OP_CONTROL ? ZCUSB_CONTROL_SETUP_SIZE : 0);

        if (status == -EREMOTEIO || (status == 0 && t->plan.in && t->plan.opcode != ZCUSB_OP_ISO && actual < asked))
                ut->short_seen = true;
        else if (status == -ENOENT || status == -ECONNRESET) {
                /* Killed: by our discard (transfer_done says why), or by the
                 * kernel after a short chunk, which is no failure. */
                if (!ut->short_seen && ut->status == 0)
                        ut->status = status;
        } else if (status != 0 && ut->status == 0)
                ut->status = status;

        /* A short chunk or a failure ends the transfer: what comes after it
         * must not run (bulk continuation makes the kernel drop the URBs it
         * holds; the ones still waiting here we drop ourselves). */
        if ((ut->short_seen || ut->status != 0) && !ut->stopping) {
                ut->stopping = true;
                for (unsigned i = 0; i < ut->n_urbs; i++) {
                        UsbfsUrb *o = ut->urbs[i];
                        if (o->retired)
                                continue;
                        if (!o->submitted)
                                usbfs_retire(h, o, -ENOENT, 0);
                        else if (!(h->caps & USBDEVFS_CAP_BULK_CONTINUATION) || !ut->short_seen)
                                (void) ioctl(h->fd, USBDEVFS_DISCARDURB, &o->urb);
                }
        }
}

/* usbfs charges each URB against usbcore's usbfs_memory_mb (16 MiB by
 * default, 0: no limit). An URB larger than that fails -ENOMEM however long
 * we wait: an error for its transfer, not a reason to hold up the device. */
static bool usbfs_urb_over_memory_limit(const struct usbdevfs_urb *urb) {
        uint64_t limit = usbfs_memory_limit();

        /* (the kernel also charges its own URB bookkeeping: leave it a page) */
        return limit > 0 && (uint64_t) urb->buffer_length + 4096 > limit;
}

static int usbfs_submit_one(UsbfsInterface *h, UsbfsUrb *u) {
        if (ioctl(h->fd, USBDEVFS_SUBMITURB, &u->urb) < 0) {
                int r = -errno;

                return r == -ENOMEM && usbfs_urb_over_memory_limit(&u->urb) ? -EMSGSIZE : r;
        }
        u->submitted = true;
        TAILQ_INSERT_TAIL(&h->submitted, u, link);
        return 0;
}

/* Hand waiting URBs to the kernel, in order, until it says no. */
static void usbfs_submit_pending(UsbfsInterface *h) {
        UsbfsUrb *u;
        int r;

        while ((u = TAILQ_FIRST(&h->pending))) {
                if (h->gone)
                        break;
                TAILQ_REMOVE(&h->pending, u, link);
                r = usbfs_submit_one(h, u);
                if (r == -ENOMEM) {
                        TAILQ_INSERT_HEAD(&h->pending, u, link);
                        break;
                }
                if (r < 0) {
                        log_debug_errno(r, "%s: URB submission failed: %m", h->devnode);
                        /* Back on a list so retiring can take it off again. */
                        TAILQ_INSERT_HEAD(&h->pending, u, link);
                        UsbfsTransfer *ut = u->owner;
                        usbfs_retire(h, u, r, 0);
                        usbfs_transfer_maybe_done(h, ut);
                }
        }
        usbfs_update_io(h);
}

static void usbfs_reaped(UsbfsInterface *h, struct usbdevfs_urb *urb) {
        UsbfsUrb *u = (UsbfsUrb *) ((uint8_t *) urb - offsetof(UsbfsUrb, urb));
        UsbfsTransfer *ut = u->owner;

        usbfs_retire(h, u, urb->status, urb->actual_length > 0 ? (uint32_t) urb->actual_length : 0);
        usbfs_transfer_maybe_done(h, ut);
}

/* Everything the kernel will never give back: complete it with -ENODEV. */
static void usbfs_fail_all(UsbfsInterface *h) {
        UsbfsUrb *u;

        while ((u = TAILQ_FIRST(&h->submitted)) || (u = TAILQ_FIRST(&h->pending))) {
                UsbfsTransfer *ut = u->owner;
                if (ut->status == 0)
                        ut->status = -ENODEV;
                usbfs_retire(h, u, -ENODEV, 0);
                usbfs_transfer_maybe_done(h, ut);
        }
        usbfs_update_io(h);
}

/* Returns how many URBs it reaped. */
static unsigned usbfs_reap(UsbfsInterface *h) {
        unsigned reaped = 0;

        for (;;) {
                struct usbdevfs_urb *urb = NULL;

                if (TAILQ_EMPTY(&h->submitted))
                        break;
                if (ioctl(h->fd, USBDEVFS_REAPURBNDELAY, &urb) < 0) {
                        if (errno == EAGAIN)
                                break;
                        if (errno == ENODEV) {
                                h->gone = true;
                                usbfs_fail_all(h);
                                return reaped;
                        }
                        log_warning_errno(errno, "%s: reaping failed: %m", h->devnode);
                        break;
                }
                usbfs_reaped(h, urb);
                reaped++;
        }
        usbfs_submit_pending(h);
        return reaped;
}

static int usbfs_on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s, (void) usec;
        usbfs_submit_pending(userdata);
        return 0;
}

static int usbfs_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        UsbfsInterface *h = userdata;

        (void) s, (void) fd;
        if (usbfs_reap(h) == 0 && TAILQ_EMPTY(&h->submitted))
                (void) sd_event_source_set_enabled(h->io, SD_EVENT_OFF); /* see usbfs_update_io() */
        if ((revents & (EPOLLERR | EPOLLHUP)) && !h->gone) {
                /* Unplugged: what could be reaped was; the rest is lost. */
                h->gone = true;
                usbfs_fail_all(h);
        }
        backend_batch_done();
        return 0;
}

static int usbfs_probe(const Config *c, char **reason) {
        (void) c, (void) reason;
        return 1; /* part of every kernel with USB host support */
}

static void usbfs_interface_free(UsbfsInterface *h) {
        /* Claims end only when drained, so nothing can be in flight here. */
        if (!TAILQ_EMPTY(&h->submitted) || !TAILQ_EMPTY(&h->pending))
                log_error("%s: closed with URBs in flight: bug.", h->devnode);
        sd_event_source_disable_unref(h->io);
        sd_event_source_disable_unref(h->retry);
        usbfs_bounce_pool_done(&h->bounces);
        if (h->fd >= 0)
                close(h->fd); /* the kernel discards whatever it still holds */
        free(h->devnode);
        free(h);
}

static int usbfs_claim(UsbfsInterface *h, bool may_detach, char **ret_detached, char **ret_driver) {
        struct usbdevfs_getdriver gd = { .interface = h->number };
        unsigned ifno = h->number;

        if (ioctl(h->fd, USBDEVFS_GETDRIVER, &gd) >= 0 && !streq(gd.driver, "usbfs")) {
                struct usbdevfs_disconnect_claim dc = {
                        .interface = h->number,
                        .flags = USBDEVFS_DISCONNECT_CLAIM_EXCEPT_DRIVER,
                        .driver = "usbfs",
                };

                gd.driver[sizeof(gd.driver) - 1] = '\0';
                if (!may_detach) {
                        *ret_driver = strdup(gd.driver);
                        return -EBUSY;
                }
                /* Detach and claim in one step: no other driver can slip in. */
                if (ioctl(h->fd, USBDEVFS_DISCONNECT_CLAIM, &dc) < 0)
                        return -errno;
                *ret_detached = strdup(gd.driver);
                log_info("%s: detached kernel driver '%s' from interface %u.", h->devnode, gd.driver, h->number);
                return 0;
        }
        if (ioctl(h->fd, USBDEVFS_CLAIMINTERFACE, &ifno) < 0)
                return -errno;
        return 0;
}

static int usbfs_open_interface(sd_event *event, const Config *config, const BackendDeviceInfo *device,
                                uint8_t interface, bool may_detach, BackendInterface **ret, char **ret_detached,
                                char **ret_driver) {
        UsbfsInterface *h;
        int r;

        *ret_detached = *ret_driver = NULL;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        *h = (UsbfsInterface) { .fd = -EBADF, .number = interface };
        TAILQ_INIT(&h->submitted);
        TAILQ_INIT(&h->pending);
        h->devnode = strdup(device->devnode);
        if (!h->devnode) {
                usbfs_interface_free(h);
                return -ENOMEM;
        }
        h->fd = open(device->devnode, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (h->fd < 0) {
                r = errno == ENOENT ? -ENODEV : -errno;
                usbfs_interface_free(h);
                return r;
        }
        usbfs_bounce_pool_init(&h->bounces, config->usbfs_staging ? h->fd : -EBADF);
        if (ioctl(h->fd, USBDEVFS_GET_CAPABILITIES, &h->caps) < 0)
                h->caps = 0; /* old kernel: no splitting, one URB per transfer */
        h->chunk_max = h->caps & USBDEVFS_CAP_BULK_SCATTER_GATHER ? USBFS_SG_CHUNK_MAX : USBFS_CHUNK_MAX;
        r = sd_event_add_io(event, &h->io, h->fd, EPOLLOUT, usbfs_on_io, h);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &h->retry, CLOCK_MONOTONIC, USBFS_RETRY_USEC, 1000,
                                               usbfs_on_retry, h);
        if (r < 0) {
                usbfs_interface_free(h);
                return r;
        }
        (void) sd_event_source_set_enabled(h->io, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(h->retry, SD_EVENT_OFF);
        /* The bus (control plane) goes first when both are ready. */
        (void) sd_event_source_set_priority(h->io, SD_EVENT_PRIORITY_NORMAL + 1);
        log_debug("%s: opened for interface %u, usbfs capabilities 0x%x.", h->devnode, interface, h->caps);

        r = usbfs_claim(h, may_detach, ret_detached, ret_driver);
        if (r < 0) {
                usbfs_interface_free(h);
                return r;
        }
        *ret = h;
        return 0;
}

static void usbfs_close_interface(UsbfsInterface *h, const char *reattach_driver) {
        unsigned ifno;

        if (!h)
                return;
        ifno = h->number;
        if (!h->gone) {
                if (ioctl(h->fd, USBDEVFS_RELEASEINTERFACE, &ifno) < 0 && errno != ENODEV)
                        log_warning_errno(errno, "%s: cannot release interface %u: %m", h->devnode, h->number);
                if (reattach_driver) {
                        struct usbdevfs_ioctl cmd = { .ifno = h->number, .ioctl_code = USBDEVFS_CONNECT };
                        if (ioctl(h->fd, USBDEVFS_IOCTL, &cmd) < 0 && errno != ENODEV)
                                log_warning_errno(errno, "%s: cannot re-attach '%s' to interface %u: %m",
                                                  h->devnode, reattach_driver, h->number);
                }
        }
        usbfs_interface_free(h);
}

static void usbfs_disconnect(UsbfsInterface *h) {
        if (h->gone)
                return;
        usbfs_reap(h); /* USBDEVFS_CAP_REAP_AFTER_DISCONNECT: take back what we can */
        h->gone = true;
        usbfs_fail_all(h);
}

static int usbfs_set_alt_setting(UsbfsInterface *h, uint8_t alt_setting) {
        struct usbdevfs_setinterface si = { .interface = h->number, .altsetting = alt_setting };

        if (ioctl(h->fd, USBDEVFS_SETINTERFACE, &si) < 0)
                return -errno;
        return 0;
}

static int usbfs_clear_halt(UsbfsInterface *h, uint8_t endpoint) {
        unsigned ep = endpoint;

        if (ioctl(h->fd, USBDEVFS_CLEAR_HALT, &ep) < 0)
                return -errno;
        return 0;
}

/* URB INDEX of UT: the inline one for a lone URB without iso packets. */
static UsbfsUrb *usbfs_urb_get(UsbfsTransfer *ut, unsigned index, unsigned iso_packets) {
        UsbfsUrb *u;

        if (ut->n_urbs == 1 && iso_packets == 0)
                u = &ut->inline_urb;
        else {
                u = calloc(1, sizeof(UsbfsUrb) + iso_packets * sizeof(struct usbdevfs_iso_packet_desc));
                if (!u)
                        return NULL;
                u->allocated = true;
        }
        u->owner = ut;
        u->index = index;
        u->urb.usercontext = u;
        return u;
}

static int usbfs_submit(UsbfsInterface *h, BackendTransfer *t) {
        const TransferPlan *p = &t->plan;
        UsbfsTransfer *ut = t->priv;
        uint32_t chunk = t->data_length, n = 1;
        bool split_ok = h->caps & USBDEVFS_CAP_BULK_CONTINUATION;
        int r;

        if (h->gone)
                return -ENODEV;

        if (p->opcode == ZCUSB_OP_BULK && t->data_length > h->chunk_max && (split_ok || !p->in)) {
                chunk = h->chunk_max / p->max_packet_size * p->max_packet_size;
                if (chunk == 0)
                        chunk = p->max_packet_size;
                n = (t->data_length + chunk - 1) / chunk;
        }

        ut->transfer = t;
        ut->n_urbs = n;
        if (n == 1 && (p->opcode == ZCUSB_OP_BULK || p->opcode == ZCUSB_OP_INTERRUPT)) {
                ut->bounce = usbfs_bounce_get(&h->bounces, t->data_length);
                if (ut->bounce && !p->in)
                        memcpy(ut->bounce->mem, t->data, t->data_length);
        }
        if (n == 1)
                ut->urbs = ut->inline_urbs;
        else {
                ut->urbs = calloc(n, sizeof(UsbfsUrb *));
                if (!ut->urbs) {
                        ut->n_urbs = 0;
                        return -ENOMEM;
                }
        }

        for (uint32_t i = 0; i < n; i++) {
                UsbfsUrb *u = usbfs_urb_get(ut, i, p->opcode == ZCUSB_OP_ISO ? p->iso_packets : 0);
                struct usbdevfs_urb *urb;
                bool last = i == n - 1;

                if (!u) {
                        usbfs_transfer_release(h, ut);
                        return -ENOMEM;
                }
                ut->urbs[i] = u;
                urb = &u->urb;
                urb->endpoint = p->opcode == ZCUSB_OP_CONTROL ? 0 : p->endpoint;
                urb->buffer = ut->bounce ? ut->bounce->mem : t->data + (size_t) i * chunk;
                urb->buffer_length = (int) (last ? t->data_length - i * chunk : chunk);

                switch (p->opcode) {
                case ZCUSB_OP_CONTROL:
                        urb->type = USBDEVFS_URB_TYPE_CONTROL;
                        break;
                case ZCUSB_OP_INTERRUPT:
                        urb->type = USBDEVFS_URB_TYPE_INTERRUPT;
                        break;
                case ZCUSB_OP_ISO:
                        urb->type = USBDEVFS_URB_TYPE_ISO;
                        urb->flags = USBDEVFS_URB_ISO_ASAP;
                        urb->number_of_packets = (int) p->iso_packets;
                        for (unsigned k = 0; k < p->iso_packets; k++)
                                urb->iso_frame_desc[k].length = p->iso_lengths[k];
                        break;
                default:
                        urb->type = USBDEVFS_URB_TYPE_BULK;
                        break;
                }
                if (p->in && p->opcode != ZCUSB_OP_ISO) {
                        /* Mid-transfer short packets end the transfer; the
                         * kernel then drops the continuation URBs itself. */
                        if (!last || (t->flags & ZCUSB_SQE_SHORT_NOT_OK))
                                urb->flags |= USBDEVFS_URB_SHORT_NOT_OK;
                        if (i > 0)
                                urb->flags |= USBDEVFS_URB_BULK_CONTINUATION;
                }
                if (!p->in && last && (t->flags & ZCUSB_SQE_ZERO_PACKET))
                        urb->flags |= USBDEVFS_URB_ZERO_PACKET;
        }

        /* The first URB decides whether the transfer starts at all. */
        for (uint32_t i = 0; i < n; i++) {
                UsbfsUrb *u = ut->urbs[i];

                if (!TAILQ_EMPTY(&h->pending) || (r = usbfs_submit_one(h, u)) == -ENOMEM) {
                        TAILQ_INSERT_TAIL(&h->pending, u, link);
                        continue;
                }
                if (r < 0) {
                        if (i == 0) {
                                usbfs_transfer_release(h, ut);
                                return r;
                        }
                        /* A later chunk failed: end with what ran. */
                        TAILQ_INSERT_TAIL(&h->pending, u, link);
                        for (uint32_t k = i + 1; k < n; k++)
                                TAILQ_INSERT_TAIL(&h->pending, ut->urbs[k], link);
                        usbfs_retire(h, u, r, 0);
                        usbfs_update_io(h);
                        usbfs_transfer_maybe_done(h, ut);
                        return 0;
                }
        }
        usbfs_update_io(h);
        return 0;
}

static void usbfs_cancel(UsbfsInterface *h, BackendTransfer *t) {
        UsbfsTransfer *ut = t->priv;

        if (ut->n_urbs == 0)
                return;
        ut->stopping = true;
        for (unsigned i = 0; i < ut->n_urbs; i++) {
                UsbfsUrb *u = ut->urbs[i];

                if (u->retired)
                        continue;
                if (!u->submitted) {
                        if (ut->status == 0)
                                ut->status = -ENOENT;
                        usbfs_retire(h, u, -ENOENT, 0);
                } else if (ioctl(h->fd, USBDEVFS_DISCARDURB, &u->urb) < 0 && errno != EINVAL)
                        /* EINVAL: it completed already and waits to be reaped. */
                        log_debug_errno(errno, "%s: cannot discard an URB: %m", h->devnode);
        }
        usbfs_update_io(h);
        usbfs_transfer_maybe_done(h, ut); /* when nothing was at the kernel */
}

static uint64_t usbfs_transfer_memory(const TransferPlan *p) {
        /* Beyond the inline URB: split bulk transfers (at most as many as
         * without scatter-gather, the kernel allowing splitting) and iso
         * descriptors. */
        uint16_t mps = p->max_packet_size ?: 1;
        uint32_t chunk = USBFS_CHUNK_MAX / mps * mps;
        uint64_t n = 1;

        if (p->opcode == ZCUSB_OP_BULK && p->data_length > USBFS_CHUNK_MAX && chunk > 0)
                n = (p->data_length + chunk - 1) / chunk;
        if (n == 1 && p->opcode != ZCUSB_OP_ISO)
                return 0;
        return n * (sizeof(UsbfsUrb *) + sizeof(UsbfsUrb)) +
               (p->opcode == ZCUSB_OP_ISO ? p->iso_packets : 0) * sizeof(struct usbdevfs_iso_packet_desc);
}

const BackendOps backend_usbfs = {
        .name = "usbfs",
        .kind = BACKEND_USBFS,
        .transfer_priv_size = sizeof(UsbfsTransfer),
        .probe = usbfs_probe,
        .open_interface = usbfs_open_interface,
        .close_interface = usbfs_close_interface,
        .disconnect = usbfs_disconnect,
        .set_alt_setting = usbfs_set_alt_setting,
        .clear_halt = usbfs_clear_halt,
        .submit = usbfs_submit,
        .cancel = usbfs_cancel,
        .transfer_memory = usbfs_transfer_memory,
};
