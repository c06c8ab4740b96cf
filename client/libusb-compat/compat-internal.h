/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libusb-1.0 on top of libzcusb: the private structures of the compat
 * library (client/libusb-compat). The public side is the distribution's own
 * <libusb.h>, compiled against, never copied.
 *
 * Locking, outermost first:
 *   events_lock   libusb_lock_events(): one thread handles events
 *   ctx->lock     devices, handles, claims, transfers in flight, staging
 *   ctx->bus_lock every call that talks D-Bus through ctx->zc (libzcusb wants
 *                 one thread at a time on a context)
 * A thread may take bus_lock while holding ctx->lock, never the reverse.
 * Transfer callbacks and hotplug callbacks run with neither ctx->lock nor
 * bus_lock held (they may submit, open, claim...).
 */

#include <libusb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "zcusb-internal.h"

#define COMPAT_QUEUE_ENTRIES 256 /* submission slots per claimed interface */
/* Transfers on the ring at once; the rest of the ring is for cancels. More
 * wait in the library (claim->waiting) and go as completions free slots. */
#define COMPAT_MAX_IN_FLIGHT 192
#define COMPAT_MAX_PORTS 7

/* ---- errors and logging (core.c) ---- */

/* zcusbd's negative errno -> LIBUSB_ERROR_*: the one table. */
int compat_error(int r);
/* A completion's negative errno -> LIBUSB_TRANSFER_*. */
enum libusb_transfer_status compat_transfer_status(int status);

_printf_(4, 5) void compat_log(struct libusb_context *ctx, enum libusb_log_level level, const char *function,
                               const char *fmt, ...);
#define log_err(ctx, ...)  compat_log(ctx, LIBUSB_LOG_LEVEL_ERROR, __func__, __VA_ARGS__)
#define log_warn(ctx, ...) compat_log(ctx, LIBUSB_LOG_LEVEL_WARNING, __func__, __VA_ARGS__)
#define log_info(ctx, ...) compat_log(ctx, LIBUSB_LOG_LEVEL_INFO, __func__, __VA_ARGS__)
#define log_dbg(ctx, ...)  compat_log(ctx, LIBUSB_LOG_LEVEL_DEBUG, __func__, __VA_ARGS__)
/* Log that FUNCTION cannot be offered and why; returns LIBUSB_ERROR_NOT_SUPPORTED. */
int compat_not_supported(struct libusb_context *ctx, const char *function, const char *why);

/* The default context when CTX is NULL (libusb's rule), else CTX. */
struct libusb_context *compat_ctx(struct libusb_context *ctx);

/* ---- descriptors (descriptor-parse.c: pure, fuzzed) ---- */

/* The raw blob of Device.Descriptors: device descriptor, then configurations. */
int compat_parse_device_descriptor(const uint8_t *raw, size_t size, struct libusb_device_descriptor *ret);
/* The configuration at position INDEX of the blob, or (BY_VALUE) the one whose
 * bConfigurationValue is INDEX. LIBUSB_ERROR_NOT_FOUND, _IO (malformed), _NO_MEM. */
int compat_parse_config(const uint8_t *raw, size_t size, uint8_t index, bool by_value,
                        struct libusb_config_descriptor **ret);
/* The raw bytes of configuration INDEX within the blob (for GET_DESCRIPTOR). */
int compat_find_config_raw(const uint8_t *raw, size_t size, uint8_t index, const uint8_t **ret, size_t *ret_size);
int compat_parse_bos(const uint8_t *raw, size_t size, struct libusb_bos_descriptor **ret);
void compat_free_config(struct libusb_config_descriptor *config);
void compat_free_bos(struct libusb_bos_descriptor *bos);

/* ---- devices (device.c) ---- */

struct libusb_device {
        struct libusb_context *ctx;
        int refcount;          /* atomic */
        LIST_ENTRY(libusb_device) link; /* ctx->devices while zcusbd lists it */
        bool listed;

        char *object;          /* /org/zcusb1/device/usbB_A */
        char *port_path;       /* kernel name: 1-1.2 */
        uint8_t bus_number, device_address;
        uint8_t port_numbers[COMPAT_MAX_PORTS];
        int n_ports;
        enum libusb_speed speed;
        uint8_t active_config;
        uint8_t *raw;          /* Device.Descriptors */
        size_t raw_size;
        struct libusb_device_descriptor descriptor;
        /* Kernel drivers bound, by interface number (Device.Interfaces). */
        bool driver_bound[256];
};

/* Fetch (or refresh) the device at OBJECT into ctx->devices; returns it
 * without a new reference. Called with ctx->lock held. */
int device_lookup_or_add(struct libusb_context *ctx, const char *object, struct libusb_device **ret);
struct libusb_device *device_find(struct libusb_context *ctx, const char *object);
void device_unlist(struct libusb_device *dev);
/* The endpoint descriptor of ENDPOINT in the active configuration's
 * INTERFACE/ALT, or NULL. */
const struct libusb_endpoint_descriptor *device_find_endpoint(const struct libusb_config_descriptor *config,
                                                               uint8_t interface, uint8_t alt, uint8_t endpoint);

/* ---- handles and claims (handle.c), their memory (memory.c) ---- */

/* A zcusb buffer of a claim carved into pages, for staging memory (ordinary
 * buffers, copied in and out) and for libusb_dev_mem_alloc() (zero copy).
 * Asking zcusbd for a buffer costs a D-Bus round trip and the pinning of every
 * page, and libusb programs allocate dev_mem per transfer and free it per
 * stream: so arenas stay with their claim and what is freed is used again.
 * DATA is a mapping of the program's own: dev_mem outlives the claim, whose
 * release has zcusbd free the buffer and libzcusb unmap its mapping. */
typedef struct Arena {
        LIST_ENTRY(Arena) link;      /* handle->arenas */
        struct CompatClaim *claim;   /* NULL once the interface is released */
        struct zcusb_buffer *buffer; /* NULL then too */
        uint32_t buffer_id;
        uint8_t *data;
        size_t size;                 /* of the buffer and of DATA */
        size_t pages;
        size_t used_pages;           /* by staging and dev_mem */
        size_t dev_mem_pages;        /* by dev_mem */
        uint64_t *used;              /* a bit per page */
} Arena;

/* Memory from libusb_dev_mem_alloc(): pages of an arena. */
typedef struct DevMem {
        LIST_ENTRY(DevMem) link; /* handle->dev_mem */
        Arena *arena;
        uint8_t *data;
        size_t size;             /* as asked for */
        size_t pages;
} DevMem;

typedef struct CompatTransfer CompatTransfer;

typedef struct CompatClaim {
        struct libusb_device_handle *handle;
        uint64_t id;            /* epoll's key: never reused */
        uint8_t interface;
        uint8_t alt_setting;
        struct zcusb_claim *claim;
        struct zcusb_queue *queue;
        int queue_fd;
        bool dead;              /* ended: transfers fail NO_DEVICE */
        /* In flight on the ring, by slot; user_data = generation << 16 | slot. */
        CompatTransfer *slots[COMPAT_MAX_IN_FLIGHT];
        uint16_t generation[COMPAT_MAX_IN_FLIGHT];
        unsigned in_flight;     /* transfers in slots */
        unsigned ring_used;     /* entries whose completion is outstanding: transfers + cancels */
        unsigned cancels_pending; /* transfers in slots whose CANCEL found the ring full */
        TAILQ_HEAD(, CompatTransfer) waiting; /* submission ring full */
        LIST_ENTRY(CompatClaim) link;           /* ctx->claims */
} CompatClaim;

struct libusb_device_handle {
        struct libusb_device *dev;
        LIST_ENTRY(libusb_device_handle) link;
        CompatClaim *claims[256];
        LIST_HEAD(, Arena) arenas;  /* of its claims, and those of released ones dev_mem still uses */
        LIST_HEAD(, DevMem) dev_mem;
        struct libusb_config_descriptor *config; /* the active one, parsed once */
};

/* The claim whose current alt setting has ENDPOINT, or for endpoint 0 any
 * claim of the handle; NULL if none. ctx->lock held. */
CompatClaim *handle_claim_for_endpoint(struct libusb_device_handle *handle, uint8_t endpoint);
/* Claim C is new: its first arena, which its first transfer or dev_mem needs
 * (ctx->lock held; a failure is left for then). */
void memory_claim_new(CompatClaim *c);
/* Claim C is being released: its arenas leave it (ctx->lock held). */
void memory_claim_released(CompatClaim *c);
/* The handle is being closed: what dev_mem is left goes (its claims are released). */
void memory_handle_closed(struct libusb_device_handle *handle);
/* SIZE bytes of staging memory of claim C: *ret_data, *ret_buffer_id, *ret_offset. */
int staging_alloc(CompatClaim *c, size_t size, uint8_t **ret_data, uint32_t *ret_buffer_id, uint64_t *ret_offset);
void staging_release(CompatClaim *c, const uint8_t *data, size_t size);
/* The dev_mem region of claim C holding [P, P+SIZE), or NULL. */
const DevMem *dev_mem_find(struct libusb_device_handle *handle, CompatClaim *c, const uint8_t *p, size_t size);

/* ---- transfers (io.c) ---- */

typedef enum TransferState {
        TRANSFER_IDLE,
        TRANSFER_WAITING,   /* on claim->waiting: the ring was full */
        TRANSFER_IN_FLIGHT, /* on the ring */
        TRANSFER_DONE,      /* on ctx->done, its callback not yet run */
} TransferState;

struct CompatTransfer {
        TransferState state;
        CompatClaim *claim;
        bool cancelling;
        bool cancel_pending;    /* its CANCEL waits for a slot on the ring */
        bool staged;            /* data goes through staging memory */
        uint8_t *stage;         /* that memory */
        size_t stage_size;
        uint32_t buffer_id;
        uint64_t offset;
        uint32_t zc_length;
        uint16_t slot;
        int status_override;    /* set when completed locally: LIBUSB_TRANSFER_* + 1 */
        int result;             /* completion status (negative errno) */
        uint32_t actual;
        TAILQ_ENTRY(CompatTransfer) link; /* claim->waiting or ctx->done */
        struct libusb_transfer pub; /* last: ends in iso_packet_desc[] */
};

static inline CompatTransfer *compat_transfer(struct libusb_transfer *t) {
        return (CompatTransfer *) ((uint8_t *) t - offsetof(CompatTransfer, pub));
}

/* Reap claim C's ring, moving finished transfers to ctx->done. ctx->lock held. */
void io_reap_claim(CompatClaim *c);
/* Every transfer of C still in flight or waiting ends with STATUS (ctx->lock held). */
void io_flush_claim(CompatClaim *c, enum libusb_transfer_status status);
/* Run the callbacks of ctx->done. Takes ctx->lock itself. */
void io_run_completions(struct libusb_context *ctx);
/* Push pending cancels, then waiting transfers of C onto the ring as slots
 * free up. ctx->lock held. */
void io_submit_waiting(CompatClaim *c);
/* Try the pending cancels of every claim again (the ring may have room with
 * no completion to say so); true if some still wait. ctx->lock held. */
bool io_retry_cancels(struct libusb_context *ctx);

/* ---- hotplug (hotplug.c) ---- */

typedef struct HotplugCallback HotplugCallback;
typedef struct HotplugEvent HotplugEvent;
int hotplug_init(struct libusb_context *ctx);
void hotplug_exit(struct libusb_context *ctx);
/* Deliver queued DeviceAdded/DeviceRemoved to the callbacks (no lock held). */
void hotplug_dispatch(struct libusb_context *ctx);

/* ---- the context (core.c, events.c) ---- */

struct libusb_context {
        int refcount; /* the default context is shared by libusb_init(NULL) callers */
        pthread_mutex_t lock;
        pthread_mutex_t bus_lock;
        struct zcusb *zc;
        int log_level;
        libusb_log_cb log_cb;
        bool no_device_discovery;

        LIST_HEAD(, libusb_device) devices;
        LIST_HEAD(, libusb_device_handle) handles;
        LIST_HEAD(, CompatClaim) claims;
        uint64_t next_claim_id;
        TAILQ_HEAD(, CompatTransfer) done;
        bool completing; /* io_run_completions() runs callbacks in completing_thread */
        pthread_t completing_thread;

        /* Events: one epoll fd is the only pollfd a program sees; in it the
         * queues' completion eventfds, the bus fd and a wake eventfd. */
        int epoll_fd;
        int wake_fd;
        pthread_mutex_t events_lock;
        pthread_mutex_t waiters_lock;
        pthread_cond_t waiters_cond;
        pthread_t event_handler;
        bool event_handler_set;
        int interrupted; /* atomic: libusb_interrupt_event_handler() */
        libusb_pollfd_added_cb pollfd_added;
        libusb_pollfd_removed_cb pollfd_removed;
        void *pollfd_user_data;

        /* hotplug */
        bool subscribed;
        char *daemon_name; /* zcusbd's unique name: the only sender of device signals we believe */
        sd_bus_slot *added_slot, *removed_slot;
        LIST_HEAD(, HotplugCallback) hotplug_callbacks;
        /* Queued by the signal handlers, which sd-bus may run inside any libzcusb call
         * (with ctx->lock held): their own lock, taken with nothing else. */
        pthread_mutex_t hotplug_lock;
        TAILQ_HEAD(, HotplugEvent) hotplug_events;
        int next_hotplug_handle;

        /* statistics, logged at libusb_exit() */
        uint64_t bytes_zero_copy, bytes_staged, transfers_done;
};

void bus_lock(struct libusb_context *ctx);
/* Also wakes the event handler: a call may have queued signals in sd-bus
 * that the bus fd will not announce again. */
void bus_unlock(struct libusb_context *ctx);
void ctx_wake(struct libusb_context *ctx);
/* Add or remove a claim's completion eventfd from the epoll set. */
int events_watch_claim(struct libusb_context *ctx, CompatClaim *c);
void events_unwatch_claim(struct libusb_context *ctx, CompatClaim *c);
/* Standard GET_DESCRIPTOR to the device, answered from the Descriptors blob or
 * Device.GetDescriptor: bytes written to DATA (at most LENGTH), or LIBUSB_ERROR_*.
 * Takes bus_lock; ctx->lock must not be held. */
int descriptor_request(struct libusb_device *dev, uint8_t type, uint8_t index, uint16_t language, uint8_t *data,
                       uint16_t length);
