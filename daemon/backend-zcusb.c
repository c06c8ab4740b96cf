/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The zcusb.ko backend: the interface is bound to zcusb.ko, which exposes it
 * as /dev/zcusb/<interface>. Transfers name the daemon's mapping of the
 * client's memfd; the module pins those pages (once per buffer: registered)
 * and DMAs straight into them. Zero copies end to end.
 *
 * Binding (kmod/README.md): "+intf" to the driver's allow list, "VID PID" to
 * its new_id, unbind from any other driver, then bind. Release undoes it and
 * re-binds the driver that was detached.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "backend.h"
#include "log.h"
#include "module.h"
#include "util.h"
#include "zcusb_abi.h"

#define ZCUSB_DRIVER_DIR "/sys/bus/usb/drivers/zcusb"

typedef struct Registration {
        const BackendBuffer *buffer;
        uint32_t id;
        TAILQ_ENTRY(Registration) link;
} Registration;

/* The backend's part of a transfer (BackendTransfer.priv): its address is
 * the user_data the module echoes back, so a completion finds it at once. */
typedef struct ZcusbTransfer {
        BackendTransfer *transfer;
        TAILQ_ENTRY(ZcusbTransfer) link;
} ZcusbTransfer;

struct BackendInterface {
        uint8_t number;
        char *name; /* "1-1:1.0" */
        int fd;
        bool autobound; /* bound to zcusb.ko at plug (ZCUSB_AUTOBIND): stays bound */
        bool gone;
        int queue_stats; /* QUEUE_STATS: 0 not asked yet, > 0 the module has it, < 0 it has not */
        sd_event_source *io;
        TAILQ_HEAD(, Registration) registrations;
        TAILQ_HEAD(, ZcusbTransfer) in_flight;
};

typedef BackendInterface ZcusbInterface;

static int zcusb_probe(const Config *c, char **reason) {
        return module_ensure_loaded(c->load_module, reason);
}

static int write_sysfs(const char *path, const char *value) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        size_t n = strlen(value);

        if (fd < 0)
                return -errno;
        if (write(fd, value, n) != (ssize_t) n)
                return -errno;
        return 0;
}

/* The driver bound to interface NAME, or NULL. */
static char *interface_driver(const char *name) {
        _cleanup_free_ char *link = NULL;
        char target[4096];
        ssize_t n;

        if (asprintf(&link, "/sys/bus/usb/devices/%s/driver", name) < 0)
                return NULL;
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
                return NULL;
        target[n] = '\0';
        return strdup(strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
}

static int driver_file_write(const char *driver, const char *file, const char *value) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "/sys/bus/usb/drivers/%s/%s", driver, file) < 0)
                return -ENOMEM;
        return write_sysfs(path, value);
}

static void interface_update_io(ZcusbInterface *i) {
        (void) sd_event_source_set_enabled(i->io, TAILQ_EMPTY(&i->in_flight) ? SD_EVENT_OFF : SD_EVENT_ON);
}

/* A reaped iso transfer's results, which the module wrote into the
 * descriptors: the core's copy, which it writes back. */
static void transfer_read_iso_results(BackendTransfer *t) {
        const uint8_t *descriptors = t->buffer->map + t->plan.offset;

        for (uint32_t k = 0; k < t->plan.iso_packets; k++) {
                struct zcusb_iso_packet p;

                memcpy(&p, descriptors + k * sizeof(p), sizeof(p)); /* shared memory: read once */
                t->iso_actual[k] = p.actual_length;
                t->iso_status[k] = p.status;
        }
}

static void interface_complete(ZcusbInterface *i, ZcusbTransfer *zt, int status, uint32_t actual) {
        TAILQ_REMOVE(&i->in_flight, zt, link);
        backend_transfer_done(zt->transfer, status, actual); /* frees zt */
}

/* Nothing more will come back: complete what is left with -ENODEV. */
static void interface_fail_all(ZcusbInterface *i) {
        ZcusbTransfer *zt;

        while ((zt = TAILQ_FIRST(&i->in_flight)))
                interface_complete(i, zt, -ENODEV, 0);
        interface_update_io(i);
}

static void interface_reap(ZcusbInterface *i) {
        for (;;) {
                struct zcusb_completion c = {};

                if (TAILQ_EMPTY(&i->in_flight))
                        break;
                if (ioctl(i->fd, ZCUSB_IOC_REAP, &c) < 0) {
                        if (errno == EAGAIN)
                                break;
                        if (errno == ENODEV) {
                                i->gone = true;
                                interface_fail_all(i);
                                return;
                        }
                        log_warning_errno(errno, "zcusb %s: reaping failed: %m", i->name);
                        break;
                }
                /* user_data is the ZcusbTransfer we submitted: the module
                 * returns each exactly once. */
                ZcusbTransfer *zt = (ZcusbTransfer *) (uintptr_t) c.user_data;

                if (zt->transfer->plan.opcode == ZCUSB_OP_ISO)
                        transfer_read_iso_results(zt->transfer);
                interface_complete(i, zt, c.status, c.actual_length);
        }
        interface_update_io(i);
}

static int interface_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ZcusbInterface *i = userdata;

        (void) s, (void) fd;
        interface_reap(i);
        if (revents & (EPOLLERR | EPOLLHUP)) {
                i->gone = true;
                interface_fail_all(i);
        }
        backend_batch_done();
        return 0;
}

static void interface_free(ZcusbInterface *i) {
        Registration *r;

        if (!TAILQ_EMPTY(&i->in_flight))
                log_error("zcusb %s: closed with transfers in flight: bug.", i->name);
        while ((r = TAILQ_FIRST(&i->registrations))) {
                TAILQ_REMOVE(&i->registrations, r, link);
                free(r);
        }
        sd_event_source_disable_unref(i->io);
        if (i->fd >= 0)
                close(i->fd); /* the module kills, waits and unpins */
        free(i->name);
        free(i);
}

/* Undo a bind: the interface leaves zcusb.ko (and its allow list) and, when
 * we detached a driver, goes back to it. */
static void unbind_interface(const char *name, const char *reattach_driver) {
        _cleanup_free_ char *deny = NULL;
        int r;

        (void) driver_file_write("zcusb", "unbind", name);
        if (asprintf(&deny, "-%s", name) >= 0)
                (void) driver_file_write("zcusb", "allow", deny);
        if (reattach_driver) {
                r = driver_file_write(reattach_driver, "bind", name);
                if (r < 0)
                        log_warning_errno(r, "Cannot re-attach '%s' to %s: %m", reattach_driver, name);
        }
}

static int bind_interface(const BackendDeviceInfo *device, const char *name, const char *current_driver) {
        _cleanup_free_ char *allow = NULL, *id = NULL, *now = NULL;
        int r;

        if (asprintf(&allow, "+%s", name) < 0 || asprintf(&id, "%04x %04x", device->vendor_id, device->product_id) < 0)
                return -ENOMEM;
        r = driver_file_write("zcusb", "allow", allow);
        if (r < 0)
                return log_debug_errno(r, "zcusb: cannot allow %s: %m", name);
        r = driver_file_write("zcusb", "new_id", id);
        if (r < 0 && r != -EEXIST)
                return log_debug_errno(r, "zcusb: cannot add id %s: %m", id);
        if (current_driver) {
                r = driver_file_write(current_driver, "unbind", name);
                if (r < 0)
                        return log_debug_errno(r, "Cannot unbind %s from %s: %m", name, current_driver);
        }
        now = interface_driver(name);
        if (!streq_ptr(now, "zcusb")) {
                r = driver_file_write("zcusb", "bind", name);
                if (r < 0)
                        return log_debug_errno(r, "zcusb: cannot bind %s: %m", name);
        }
        return 0;
}

static int zcusb_open_interface(sd_event *event, const Config *config, const BackendDeviceInfo *device,
                                uint8_t interface, bool may_detach, BackendInterface **ret, char **ret_detached,
                                char **ret_driver) {
        _cleanup_free_ char *name = NULL, *driver = NULL, *node = NULL;
        struct zcusb_version v = {};
        bool autobound = false;
        ZcusbInterface *i;
        int fd, r;

        *ret_detached = *ret_driver = NULL;
        if (access(ZCUSB_DRIVER_DIR, F_OK) < 0)
                return -ENOENT;
        if (asprintf(&name, "%s:%u.%u", device->sysname, device->configuration, interface) < 0)
                return -ENOMEM;

        driver = interface_driver(name);
        if (driver && streq(driver, "usbfs"))
                return -EBUSY;
        if (driver && !streq(driver, "zcusb") && !may_detach) {
                *ret_driver = TAKE_PTR(driver);
                return -EBUSY;
        }
        if (driver && streq(driver, "zcusb")) {
                driver = mfree_str(driver); /* auto-bound at plug time (ZCUSB_AUTOBIND) */
                autobound = true;
        }

        r = bind_interface(device, name, driver);
        if (r < 0) {
                unbind_interface(name, driver);
                return r;
        }

        if (asprintf(&node, "/dev/zcusb/%s", name) < 0) {
                unbind_interface(name, driver);
                return -ENOMEM;
        }
        fd = open(node, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                unbind_interface(name, driver);
                return log_debug_errno(r, "Cannot open %s: %m", node);
        }
        if (ioctl(fd, ZCUSB_IOC_VERSION, &v) < 0 || v.abi_version != ZCUSB_ABI_VERSION) {
                log_warning("%s: zcusb.ko ABI %u, zcusbd speaks %u.", node, v.abi_version, ZCUSB_ABI_VERSION);
                close(fd);
                unbind_interface(name, driver);
                return -EPROTO;
        }
        if (device->iso && !(v.features & ZCUSB_FEATURE_ISO)) {
                log_info("%s: this zcusb.ko has no isochronous transfers (an older module).", node);
                close(fd);
                unbind_interface(name, driver);
                return -EOPNOTSUPP;
        }

        i = calloc(1, sizeof(*i));
        if (!i) {
                close(fd);
                unbind_interface(name, driver);
                return -ENOMEM;
        }
        *i = (ZcusbInterface) { .number = interface, .name = TAKE_PTR(name), .fd = fd, .autobound = autobound };
        TAILQ_INIT(&i->registrations);
        TAILQ_INIT(&i->in_flight);
        r = sd_event_add_io(event, &i->io, fd, EPOLLIN, interface_on_io, i);
        if (r < 0) {
                unbind_interface(i->name, driver);
                interface_free(i);
                return r;
        }
        interface_update_io(i);
        *ret_detached = TAKE_PTR(driver);
        *ret = i;
        return 0;
}

static void zcusb_close_interface(ZcusbInterface *i, const char *reattach_driver) {
        _cleanup_free_ char *name = NULL;
        bool unbind;

        if (!i)
                return;
        name = strdup(i->name);
        /* An interface the admin's udev rule gave to zcusb.ko stays there,
         * ready for the next claim, as it was before this one. */
        unbind = !i->gone && !i->autobound;
        interface_free(i);
        if (name && unbind)
                unbind_interface(name, reattach_driver);
}

static void zcusb_disconnect(ZcusbInterface *i) {
        interface_reap(i);
        interface_fail_all(i);
        i->gone = true;
}

static int zcusb_set_alt_setting(ZcusbInterface *i, uint8_t alt_setting) {
        struct zcusb_alt a = { .alt_setting = alt_setting };

        if (ioctl(i->fd, ZCUSB_IOC_SET_ALT, &a) < 0)
                return -errno;
        return 0;
}

static int zcusb_clear_halt(ZcusbInterface *i, uint8_t endpoint) {
        uint32_t ep = endpoint;

        if (ioctl(i->fd, ZCUSB_IOC_CLEAR_HALT, &ep) < 0)
                return -errno;
        return 0;
}

static int interface_register(ZcusbInterface *i, const BackendBuffer *b, uint32_t *ret) {
        struct zcusb_register reg = { .addr = (uint64_t) (uintptr_t) b->map, .length = b->size };
        Registration *r;

        TAILQ_FOREACH(r, &i->registrations, link)
                if (r->buffer == b) {
                        *ret = r->id;
                        return 0;
                }
        /* Pin once, reuse for every transfer into this buffer. */
        if (ioctl(i->fd, ZCUSB_IOC_REGISTER, &reg) < 0)
                return -errno;
        r = calloc(1, sizeof(*r));
        if (!r) {
                (void) ioctl(i->fd, ZCUSB_IOC_UNREGISTER, &reg.buffer_id);
                return -ENOMEM;
        }
        *r = (Registration) { .buffer = b, .id = reg.buffer_id };
        TAILQ_INSERT_TAIL(&i->registrations, r, link);
        *ret = r->id;
        return 0;
}

static void zcusb_forget_buffer(ZcusbInterface *i, const BackendBuffer *b) {
        Registration *r;

        TAILQ_FOREACH(r, &i->registrations, link)
                if (r->buffer == b) {
                        /* Only called once every transfer on b was reaped,
                         * so the module has no reason to say EBUSY. */
                        if (ioctl(i->fd, ZCUSB_IOC_UNREGISTER, &r->id) < 0)
                                log_warning_errno(errno, "zcusb %s: cannot unregister buffer %u; its pages "
                                                  "stay pinned until the claim ends: %m", i->name, b->id);
                        TAILQ_REMOVE(&i->registrations, r, link);
                        free(r);
                        return;
                }
}

static int zcusb_submit(ZcusbInterface *i, BackendTransfer *t) {
        ZcusbTransfer *zt = t->priv;
        struct zcusb_submit s = {
                .user_data = (uint64_t) (uintptr_t) zt,
                .endpoint = t->plan.endpoint,
        };
        int r;

        if (i->gone)
                return -ENODEV;

        switch (t->plan.opcode) {
        case ZCUSB_OP_BULK:
        case ZCUSB_OP_INTERRUPT:
                s.type = t->plan.opcode == ZCUSB_OP_BULK ? ZCUSB_TYPE_BULK : ZCUSB_TYPE_INTERRUPT;
                r = interface_register(i, t->buffer, &s.buffer_id);
                if (r < 0)
                        return r;
                s.offset = (uint64_t) (t->data - t->buffer->map);
                s.length = t->data_length;
                break;
        case ZCUSB_OP_ISO:
                /* The module reads the descriptors (checking them again)
                 * and writes the results back into them. */
                s.type = ZCUSB_TYPE_ISO;
                s.iso_packets = t->plan.iso_packets;
                r = interface_register(i, t->buffer, &s.buffer_id);
                if (r < 0)
                        return r;
                s.offset = t->plan.offset;
                s.length = t->plan.length;
                break;
        case ZCUSB_OP_CONTROL:
                /* The module copies control data; hand it our private copy. */
                s.type = ZCUSB_TYPE_CONTROL;
                s.endpoint = 0;
                memcpy(s.setup, t->data, sizeof(s.setup));
                s.addr = (uint64_t) (uintptr_t) (t->data + ZCUSB_CONTROL_SETUP_SIZE);
                s.length = t->data_length - ZCUSB_CONTROL_SETUP_SIZE;
                break;
        default:
                return -EOPNOTSUPP;
        }
        if (t->flags & ZCUSB_SQE_SHORT_NOT_OK)
                s.flags |= ZCUSB_SUBMIT_SHORT_NOT_OK;
        if (t->flags & ZCUSB_SQE_ZERO_PACKET)
                s.flags |= ZCUSB_SUBMIT_ZERO_PACKET;

        if (ioctl(i->fd, ZCUSB_IOC_SUBMIT, &s) < 0)
                return -errno;
        zt->transfer = t;
        TAILQ_INSERT_TAIL(&i->in_flight, zt, link);
        interface_update_io(i);
        return 0;
}

static void zcusb_cancel(ZcusbInterface *i, BackendTransfer *t) {
        uint64_t user_data = (uint64_t) (uintptr_t) t->priv;

        if (ioctl(i->fd, ZCUSB_IOC_CANCEL, &user_data) < 0 && errno != ENOENT)
                log_debug_errno(errno, "zcusb %s: cancel failed: %m", i->name);
}

static int zcusb_add_buffer(ZcusbInterface *i, const BackendBuffer *b) {
        struct zcusb_buffer_alias a = { .client_id = b->id };
        int r;

        if (i->gone)
                return -ENODEV;
        r = interface_register(i, b, &a.buffer_id);
        if (r < 0)
                return r;
        if (ioctl(i->fd, ZCUSB_IOC_BUFFER_ALIAS, &a) < 0)
                return errno == ENOTTY ? -EOPNOTSUPP : -errno;
        return 0;
}

static int zcusb_attach_queue(ZcusbInterface *i, const BackendQueue *q, uint32_t *ret_id) {
        struct zcusb_queue_attach a = {
                .ring_fd = q->ring_fd, .submit_fd = q->submit_fd, .complete_fd = q->complete_fd,
                .sq_entries = q->sq_entries, .sq_head = q->sq_head, .cq_tail = q->cq_tail,
        };

        if (i->gone)
                return -ENODEV;
        if (ioctl(i->fd, ZCUSB_IOC_QUEUE_ATTACH, &a) < 0)
                return errno == ENOTTY ? -EOPNOTSUPP : -errno;
        *ret_id = a.queue_id;
        return 0;
}

/* Does the module count its queues (QUEUE_STATS)? Asked once per
 * interface: queue 0 is none, so a module that has it says ENOENT. */
static bool interface_has_queue_stats(ZcusbInterface *i) {
        static bool logged = false;
        struct zcusb_queue_stats st = {};

        if (i->queue_stats != 0)
                return i->queue_stats > 0;
        if (ioctl(i->fd, ZCUSB_IOC_QUEUE_STATS, &st) < 0 && (errno == ENOTTY || errno == EINVAL)) {
                i->queue_stats = -1;
                if (!logged)
                        log_debug("zcusb.ko has no QUEUE_STATS (an older module): the claims' counters leave "
                                  "out what its queues serve.");
                logged = true;
        } else
                i->queue_stats = 1;
        return i->queue_stats > 0;
}

static void counters_from_stats(const struct zcusb_queue_stats *st, TransferCounters *ret) {
        *ret = (TransferCounters) {
                .submitted = st->submitted, .completed = st->completed, .failed = st->failed,
                .bytes_in = st->bytes_in, .bytes_out = st->bytes_out, .in_flight = st->in_flight,
        };
}

static int zcusb_detach_queue(ZcusbInterface *i, uint32_t id, int end_status, BackendQueue *ret_q,
                              TransferCounters *ret_counters) {
        struct zcusb_queue_stats st = {};
        struct zcusb_queue_detach d = { .queue_id = id, .end_status = end_status };

        /* The final counters, written once the module serves no more: a
         * QUEUE_STATS before the detach would miss what ends in between. */
        if (interface_has_queue_stats(i))
                d.stats_addr = (uint64_t) (uintptr_t) &st;
        if (ioctl(i->fd, ZCUSB_IOC_QUEUE_DETACH, &d) < 0)
                return -errno;
        ret_q->sq_head = d.sq_head;
        ret_q->cq_tail = d.cq_tail;
        counters_from_stats(&st, ret_counters);
        return 0;
}

static int zcusb_queue_counters(ZcusbInterface *i, uint32_t id, TransferCounters *ret) {
        struct zcusb_queue_stats st = { .queue_id = id };

        if (!interface_has_queue_stats(i))
                return -EOPNOTSUPP;
        if (ioctl(i->fd, ZCUSB_IOC_QUEUE_STATS, &st) < 0)
                return -errno;
        counters_from_stats(&st, ret);
        return 0;
}

const BackendOps backend_zcusb = {
        .name = "zcusb.ko",
        .kind = BACKEND_ZCUSB,
        .transfer_priv_size = sizeof(ZcusbTransfer), /* the module holds the URBs, charged to it */
        .probe = zcusb_probe,
        .open_interface = zcusb_open_interface,
        .close_interface = zcusb_close_interface,
        .disconnect = zcusb_disconnect,
        .set_alt_setting = zcusb_set_alt_setting,
        .clear_halt = zcusb_clear_halt,
        .submit = zcusb_submit,
        .cancel = zcusb_cancel,
        .forget_buffer = zcusb_forget_buffer,
        .add_buffer = zcusb_add_buffer,
        .attach_queue = zcusb_attach_queue,
        .detach_queue = zcusb_detach_queue,
        .queue_counters = zcusb_queue_counters,
};
