/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libzcusb: the client library of zcusbd, the zero-copy USB broker.
 *
 * A program opens a context (one D-Bus connection to org.zcusb1), claims a
 * USB interface, allocates buffers (shared memory it maps and zcusbd maps
 * too) and opens queues (a submission ring and a completion ring in shared
 * memory, see zcusb-ring.h). Transfers never go over D-Bus: zcusb_queue_submit()
 * writes a struct zcusb_sqe naming a buffer region and zcusb_queue_reap()
 * returns a struct zcusb_cqe per finished transfer. The whole D-Bus surface is
 * documented in dbus/API.md.
 *
 * Errors: every function that can fail returns a negative errno-style code
 * (see zcusb_strerror()); the daemon's named errors map to
 *   org.zcusb1.Error.AccessDenied    -EACCES
 *   org.zcusb1.Error.NoSuchDevice    -ENODEV  (also: the object is gone)
 *   org.zcusb1.Error.Busy            -EBUSY
 *   org.zcusb1.Error.QuotaExceeded   -EDQUOT
 *   org.zcusb1.Error.InvalidArgument -EINVAL
 *   zcusbd not running / bus gone    -EHOSTUNREACH, -ECONNRESET, -ETIMEDOUT
 * and zcusb_last_error_message() keeps the human sentence of the last failure.
 *
 * Thread safety:
 * - A context and everything that talks D-Bus through it (claims, buffer
 *   alloc/free, queue open/close, the synchronous transfer helpers,
 *   zcusb_claim_get_usage(), zcusb_last_error_message()) must be used by one
 *   thread at a time. Serialise those calls yourself if several threads share
 *   a context.
 * - The data path of a queue (zcusb_queue_submit*(), zcusb_queue_reap(),
 *   zcusb_queue_wait(), zcusb_queue_get_fd(), zcusb_queue_set_completion_wakeup())
 *   touches only that queue's shared memory and eventfds, never the context.
 *   Distinct queues may therefore be driven from distinct threads at once,
 *   also concurrently with context calls. On one queue, at most one thread may
 *   submit at a time and at most one thread may reap/wait at a time; the
 *   submitting and the reaping thread may differ.
 * - zcusb_queue_close(), zcusb_buffer_free() and zcusb_claim_release() must not
 *   run while another thread still uses the object they free.
 * - Buffer memory (zcusb_buffer_data()) is yours to synchronise: do not touch
 *   a region between submitting a transfer on it and reaping its completion.
 *
 * A context must not be used across fork(): sd-bus refuses (-ECHILD).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "zcusb-dbus.h"
#include "zcusb-ring.h"

#ifdef __cplusplus
extern "C" {
#endif

struct zcusb;        /* a connection to zcusbd */
struct zcusb_claim;  /* one claimed interface */
struct zcusb_buffer; /* one shared-memory buffer of a claim */
struct zcusb_queue;  /* one submission/completion ring pair of a claim */

/* ---- errors ---- */

/* A sentence for ERR (negative or positive errno), worded for zcusb where the
 * code has a zcusb meaning (-EDQUOT is the memory quota, -EPIPE a stall...).
 * Never NULL; the string is static. */
const char *zcusb_strerror(int err);

/* The human sentence of the last failure on CTX (the daemon's message for a
 * D-Bus error, else what the library found wrong). Never NULL: "" when no call
 * failed yet. Successful calls do not clear it. Valid until the next call on
 * CTX. */
const char *zcusb_last_error_message(struct zcusb *ctx);

/* ---- context ---- */

/* Connect to zcusbd on the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured). */
int zcusb_open(struct zcusb **ret);
/* Connect to zcusbd on the bus at a D-Bus ADDRESS ("unix:path=/run/...") */
int zcusb_open_address(const char *address, struct zcusb **ret);
/* Releases every claim still held (and so frees their buffers and queues),
 * then disconnects. NULL is a no-op. */
void zcusb_close(struct zcusb *ctx);

/* ---- claims ---- */

/* Claim interface INTERFACE of DEVICE for this context's connection. DEVICE is
 * an object path (/org/zcusb1/device/usb1_3), BUS:ADDR as lsusb prints it
 * (001:003), VID:PID[:SERIAL] in hex (0525:a4a0) or a sysfs path
 * (/sys/bus/usb/devices/1-1). Errors: -EINVAL (DEVICE malformed, or no such
 * interface), -ENODEV, -ENOTUNIQ (VID:PID matches several devices), -EACCES,
 * -EBUSY, -EDQUOT (too many claims). */
int zcusb_claim_interface(struct zcusb *ctx, const char *device, uint8_t interface, struct zcusb_claim **ret);

/* The same with FLAGS (ZCUSB_CLAIM_*, zcusb-dbus.h). ZCUSB_CLAIM_INTERACTIVE:
 * where polkit decides (an interface marked ZCUSB_POLKIT=1), the user may be
 * asked to authenticate, and the call waits for them (up to 330 s). Without it
 * such a claim fails with -ENOKEY when polkit wants a password. More errors:
 * -ECANCELED (the user dismissed the dialog), -EHOSTDOWN (polkit could not
 * be asked), -EINVAL (unknown flags). Since LIBZCUSB_0.2. */
int zcusb_claim_interface_with_flags(struct zcusb *ctx, const char *device, uint8_t interface, uint64_t flags,
                                     struct zcusb_claim **ret);

/* Release the interface: in-flight transfers are cancelled, every buffer and
 * queue of the claim is freed (their handles become invalid), a kernel driver
 * zcusbd detached is re-attached. The claim handle is freed whatever this
 * returns; an error only says the daemon did not confirm (it cleans up when
 * the connection closes at the latest). NULL is a no-op returning 0. */
int zcusb_claim_release(struct zcusb_claim *claim);

/* The claim's D-Bus object path, the device's object path and the interface. */
const char *zcusb_claim_get_object_path(const struct zcusb_claim *claim);
const char *zcusb_claim_get_device_path(const struct zcusb_claim *claim);
uint8_t zcusb_claim_get_interface(const struct zcusb_claim *claim);

/* The end reason of a claim whose zcusbd left the bus without ending it
 * (crashed or was killed); the claim's calls then fail with -ECONNRESET. */
#define ZCUSB_END_DAEMON_GONE "daemon-gone"

/* 1 when zcusbd ended the claim (device removed, access revoked, daemon
 * shutdown; its queues are dead) or left the bus, with *ret_reason (may be
 * NULL) set to the reason of the Ended signal or ZCUSB_END_DAEMON_GONE; 0
 * while it lives. Reads pending bus messages. A queue's completion eventfd
 * cannot tell that zcusbd died: a client waiting on it should call this when
 * a wait times out. */
int zcusb_claim_is_ended(struct zcusb_claim *claim, const char **ret_reason);

/* -EBUSY while transfers are in flight. */
int zcusb_claim_set_alt_setting(struct zcusb_claim *claim, uint8_t alt_setting);
int zcusb_claim_clear_halt(struct zcusb_claim *claim, uint8_t endpoint);

/* The Claim object's properties. Grows only at the end, into reserved[]. */
struct zcusb_usage {
        uint64_t quota_bytes;   /* the caller's byte quota */
        uint64_t used_bytes;    /* charged to this connection: buffers + rings */
        uint32_t in_flight;
        uint32_t buffers;
        uint32_t queues;
        uint8_t alt_setting;
        char backend[15];       /* "usbfs" or "zcusb.ko", NUL-terminated */
        uint64_t submitted;
        uint64_t completed;
        uint64_t failed;
        uint64_t bytes_in;
        uint64_t bytes_out;
        uint64_t reserved[8];
};
int zcusb_claim_get_usage(struct zcusb_claim *claim, struct zcusb_usage *ret);

#define ZCUSB_ENDPOINT_TYPE_MASK      0x03
#define ZCUSB_ENDPOINT_TYPE_CONTROL   0
#define ZCUSB_ENDPOINT_TYPE_ISO       1
#define ZCUSB_ENDPOINT_TYPE_BULK      2
#define ZCUSB_ENDPOINT_TYPE_INTERRUPT 3
#define ZCUSB_ENDPOINT_DIR_IN         0x80

struct zcusb_endpoint {
        uint8_t address;          /* bEndpointAddress */
        uint8_t attributes;       /* bmAttributes: type in ZCUSB_ENDPOINT_TYPE_MASK */
        uint16_t max_packet_size; /* wMaxPacketSize */
        uint8_t interval;         /* bInterval */
};
/* Look ENDPOINT up in the claimed interface's current alternate setting
 * (from the Device object's Interfaces property). -ENOENT when it has none. */
int zcusb_claim_get_endpoint(struct zcusb_claim *claim, uint8_t endpoint, struct zcusb_endpoint *ret);

/* ---- buffers ---- */

/* Allocate SIZE bytes (rounded up to whole pages by zcusbd) of shared memory
 * charged to this connection, mapped read-write. -EDQUOT over quota. */
int zcusb_buffer_alloc(struct zcusb_claim *claim, size_t size, struct zcusb_buffer **ret);
void *zcusb_buffer_data(const struct zcusb_buffer *buffer);
size_t zcusb_buffer_size(const struct zcusb_buffer *buffer);
/* The id a struct zcusb_sqe names the buffer by. */
uint32_t zcusb_buffer_id(const struct zcusb_buffer *buffer);
/* Unmap and free. -EBUSY while a transfer uses the buffer: then nothing is
 * freed and the handle stays valid; reap its completions and try again. On
 * any other outcome the handle is freed (an error then only says zcusbd did
 * not confirm). NULL is a no-op returning 0. */
int zcusb_buffer_free(struct zcusb_buffer *buffer);

/* ---- queues ---- */

/* Open a queue with ENTRIES submission slots (a power of two, 1..4096) and
 * twice as many completion slots. The ring is checked before use (magic,
 * version, sizes, every offset inside the mapping): -EPROTO if it is wrong. */
int zcusb_queue_open(struct zcusb_claim *claim, unsigned entries, struct zcusb_queue **ret);
/* Cancels the queue's in-flight transfers, then frees it. Like
 * zcusb_buffer_free() the handle is freed whatever this returns. */
int zcusb_queue_close(struct zcusb_queue *queue);

/* Submit one transfer. Returns 0; -EAGAIN when the submission ring is full,
 * which is backpressure, not a failure: nothing was queued, wait for and reap
 * a completion (zcusb_queue_wait(), zcusb_queue_reap()), then submit again.
 * zcusbd frees a transfer's slot before it posts the completion (zcusb-ring.h),
 * so a caller that keeps at most ENTRIES transfers between submitting and
 * reaping them never gets -EAGAIN. -ENODEV when the claim ended (device gone,
 * released, revoked), -EPROTO when zcusbd marked the ring broken. */
int zcusb_queue_submit(struct zcusb_queue *queue, const struct zcusb_sqe *sqe);
/* Submit up to N transfers in order with one index update and at most one
 * doorbell. Returns how many were queued (> 0), or the error above when none
 * was. */
int zcusb_queue_submit_batch(struct zcusb_queue *queue, const struct zcusb_sqe *sqes, unsigned n);

/* Copy up to MAX completions, oldest first, into OUT and free their slots.
 * Returns how many (0: none ready). Never blocks. -EPROTO if zcusbd's index is
 * impossible. */
int zcusb_queue_reap(struct zcusb_queue *queue, struct zcusb_cqe *out, unsigned max);

/* Wait until completions are ready, for at most TIMEOUT_MS (-1: forever, 0:
 * just look). Returns the number ready (> 0; reap them), 0 on timeout,
 * -ENODEV/-EPROTO when the queue is dead and nothing is left to reap, -EINTR
 * when a signal arrived, -EINVAL when completion wakeups are turned off. */
int zcusb_queue_wait(struct zcusb_queue *queue, int timeout_ms);

/* The completion eventfd, for your own poll loop (POLLIN). When it is
 * readable, call zcusb_queue_wait(queue, 0), which drains it, then reap. */
int zcusb_queue_get_fd(const struct zcusb_queue *queue);

/* Turn zcusbd's completion doorbell off (a busy-polling reaper saves the
 * eventfd write per completion) or back on (the default). */
void zcusb_queue_set_completion_wakeup(struct zcusb_queue *queue, bool enabled);

/* Fill SQE for a bulk/interrupt/iso/control transfer on a region of BUFFER_ID. */
static inline void zcusb_prep_transfer(struct zcusb_sqe *sqe, enum zcusb_opcode opcode, uint8_t endpoint,
                                       uint32_t buffer_id, uint64_t offset, uint32_t length,
                                       uint32_t timeout_ms, uint64_t user_data) {
        memset(sqe, 0, sizeof(*sqe));
        sqe->opcode = (uint8_t) opcode;
        sqe->endpoint = endpoint;
        sqe->buffer_id = buffer_id;
        sqe->offset = offset;
        sqe->length = length;
        sqe->timeout_ms = timeout_ms;
        sqe->user_data = user_data;
}

/* Write a control setup packet (little endian on the wire) to DST: the first
 * ZCUSB_CONTROL_SETUP_SIZE bytes of a ZCUSB_OP_CONTROL region. */
static inline void zcusb_fill_control_setup(void *dst, uint8_t request_type, uint8_t request, uint16_t value,
                                            uint16_t index, uint16_t length) {
        uint8_t *p = (uint8_t *) dst;

        p[0] = request_type;
        p[1] = request;
        p[2] = (uint8_t) value;
        p[3] = (uint8_t) (value >> 8);
        p[4] = (uint8_t) index;
        p[5] = (uint8_t) (index >> 8);
        p[6] = (uint8_t) length;
        p[7] = (uint8_t) (length >> 8);
}

/* ---- synchronous transfers, for simple programs ----
 *
 * Each runs one transfer on a small queue the claim opens the first time it
 * needs one, and waits for it. TIMEOUT_MS 0 waits forever. Returns 0 or the
 * transfer's status (-ETIMEDOUT, -EPIPE stall, -ENODEV, ...); *ACTUAL (may be
 * NULL) gets the bytes moved, also when the transfer failed part way. A full
 * submission ring is waited out, never returned. */

/* LENGTH bytes at OFFSET of BUFFER; the direction is ENDPOINT's bit 7. */
int zcusb_bulk_transfer(struct zcusb_claim *claim, uint8_t endpoint, struct zcusb_buffer *buffer, uint64_t offset,
                        uint32_t length, unsigned timeout_ms, uint32_t *actual);
int zcusb_interrupt_transfer(struct zcusb_claim *claim, uint8_t endpoint, struct zcusb_buffer *buffer,
                             uint64_t offset, uint32_t length, unsigned timeout_ms, uint32_t *actual);
/* DATA is ordinary memory (copied through a claim-internal buffer): read for an
 * OUT request (bit 7 of REQUEST_TYPE clear), written for an IN request. */
int zcusb_control_transfer(struct zcusb_claim *claim, uint8_t request_type, uint8_t request, uint16_t value,
                           uint16_t index, void *data, uint16_t length, unsigned timeout_ms, uint32_t *actual);

#ifdef __cplusplus
}
#endif
