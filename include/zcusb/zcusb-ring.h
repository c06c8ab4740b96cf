/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * zcusb queue ABI: the layout of the shared memory a queue lives in.
 *
 * Claim.OpenQueue() returns a memfd holding, at offset 0, a struct
 * zcusb_ring_header, then the submission ring (sq_entries struct zcusb_sqe at
 * sq_offset) and the completion ring (cq_entries struct zcusb_cqe at
 * cq_offset), plus two eventfds: "submit" (client -> zcusbd) and "complete"
 * (zcusbd -> client).
 *
 * Indices are free-running uint32_t, masked with (entries - 1); entries are
 * powers of two. Each index has one writer:
 *   sq_tail  client   (store-release after filling the entry)
 *   sq_head  zcusbd   (store-release after copying the entry out)
 *   cq_tail  zcusbd   (store-release after filling the entry)
 *   cq_head  client   (store-release after reading the entry)
 * Full: tail - head == entries. Empty: tail == head.
 *
 * Ordering, as in io_uring: zcusbd publishes an sq_head that covers a
 * submission before the cq_tail that covers its completion. A client that has
 * reaped a completion may therefore count that transfer's submission slot
 * free, and one that keeps at most sq_entries transfers between submitting and
 * reaping them never finds the submission ring full. Whatever plays zcusbd's
 * side (zcusbd, its test doubles, a future in-kernel consumer) keeps this
 * order. A full ring otherwise means entries zcusbd has not taken yet (their
 * completions would not fit): backpressure, not an error. At its in-flight
 * limit (InFlightPerClient=) a client's transfer entries are still taken, as
 * far as their completions fit, and wait in zcusbd, in order, until a
 * transfer ends; NOP and CANCEL entries never wait behind them (a CANCEL of a
 * waiting entry completes it with -ECANCELED). A waiting entry's timeout_ms
 * counts from when it starts.
 *
 * Doorbells, so that a busy queue costs no syscall per transfer:
 * - zcusbd sets ZCUSB_SQ_NEED_WAKEUP in sq_flags when it will not look at the
 *   ring again by itself. The client, after publishing sq_tail, issues a full
 *   barrier, reads sq_flags and writes the submit eventfd only when the flag
 *   is set; one write covers every entry published before it. zcusbd sets the
 *   flag whenever it stops looking, transfers in flight or not, so an entry
 *   behind a transfer that never completes (a CANCEL of it, say) is taken at
 *   once. The one exception: right after posting completions while at least
 *   half of the most transfers the queue has had in flight at once still
 *   are in flight, it leaves the flag clear, takes what the client
 *   resubmits at the next completion, and sets the flag again if none comes
 *   within a grace period (4 to 50 ms, four times the queue's usual time
 *   between completions), so a streaming client rings no doorbell per
 *   batch; a queue drained below that half rings, so its endpoint never
 *   waits for transfers the client has already resubmitted. (zcusbd before
 *   issue #11 left the flag clear whenever transfers were in flight and
 *   polled the ring every few milliseconds: a client that follows this rule
 *   works with either.) zcusb.ko, when it serves a queue itself,
 *   keeps the flag set: the doorbell's write runs the module's pass in the
 *   writer's own syscall. A
 *   client that is slow to reap may find entries left on the ring for want
 *   of completion slots: zcusbd polls for those, as reaping rings no
 *   doorbell.
 * - zcusbd writes the complete eventfd after posting completions unless the
 *   client has set ZCUSB_CQ_NO_WAKEUP in cq_flags (a client that busy-polls).
 *
 * zcusbd never trusts this memory: it reads each submission entry exactly
 * once into private memory, checks it, then acts; it keeps its own copies of
 * sq_head and cq_tail and never reads them back. A ring whose sq_tail runs
 * more than sq_entries ahead is marked ZCUSB_SQ_BROKEN and no longer served.
 *
 * Every transfer produces exactly one completion, and zcusbd takes a
 * submission only when its completion is certain to fit, so the completion
 * ring cannot overflow while the client consumes it.
 */

#ifdef __KERNEL__
/* zcusb.ko serves rings itself (in-kernel queues) */
#include <linux/types.h>
#ifndef UINT32_C
#define UINT32_C(c) c##U
#endif
#else
#include <stdint.h>
#endif

#ifdef __cplusplus
#define ZCUSB_STATIC_ASSERT static_assert
#else
#define ZCUSB_STATIC_ASSERT _Static_assert
#endif

#define ZCUSB_RING_MAGIC   UINT32_C(0x5a435552) /* "ZCUR" */
#define ZCUSB_RING_VERSION 1

#define ZCUSB_RING_MIN_ENTRIES 1
#define ZCUSB_RING_MAX_ENTRIES 4096

/* sq_flags, written by zcusbd */
#define ZCUSB_SQ_NEED_WAKEUP (1u << 0)
#define ZCUSB_SQ_BROKEN      (1u << 1) /* hostile indices seen: queue is dead */
#define ZCUSB_SQ_DEAD        (1u << 2) /* claim ended (device gone, released, revoked) */

/* cq_flags, written by the client */
#define ZCUSB_CQ_NO_WAKEUP   (1u << 0)

/* An index on a cache line of its own: producer and consumer never share one. */
struct zcusb_ring_index {
        uint32_t value;
        uint32_t pad[15];
};

struct zcusb_ring_header {
        uint32_t magic;
        uint32_t version;
        uint32_t header_size; /* sizeof(struct zcusb_ring_header) */
        uint32_t sq_entries;
        uint32_t cq_entries;
        uint32_t sqe_size;
        uint32_t cqe_size;
        uint32_t sq_offset;   /* bytes from the start of the mapping */
        uint32_t cq_offset;
        uint32_t ring_size;   /* bytes to map */
        int32_t end_status;   /* zcusbd, before setting ZCUSB_SQ_DEAD: why the claim ended
                               * (-ENODEV unplugged, -ESHUTDOWN zcusbd stopping, -EACCES
                               * revoked, -ECANCELED released); 0 while alive */
        uint32_t reserved0[5];

        struct zcusb_ring_index sq_head;
        struct zcusb_ring_index sq_tail;
        struct zcusb_ring_index sq_flags;
        struct zcusb_ring_index cq_head;
        struct zcusb_ring_index cq_tail;
        struct zcusb_ring_index cq_flags;
};

enum zcusb_opcode {
        ZCUSB_OP_NOP = 0,       /* completes at once with status 0: tests, wakeups */
        ZCUSB_OP_BULK = 1,
        ZCUSB_OP_INTERRUPT = 2,
        ZCUSB_OP_CONTROL = 3,   /* buffer: 8-byte setup packet, then wLength data */
        ZCUSB_OP_ISO = 4,       /* buffer: iso_packets zcusb_iso_packet, then data */
        ZCUSB_OP_CANCEL = 5,    /* cancel the in-flight transfer whose user_data is cancel_user_data */
};

/* sqe flags */
#define ZCUSB_SQE_SHORT_NOT_OK (1u << 0) /* an IN transfer that ends short fails with -EREMOTEIO */
#define ZCUSB_SQE_ZERO_PACKET  (1u << 1) /* end an OUT transfer of a multiple of maxpacket with a ZLP */

struct zcusb_sqe {
        uint8_t opcode;
        uint8_t endpoint;         /* bEndpointAddress; 0 for control */
        uint16_t flags;
        uint32_t buffer_id;       /* from Claim.AllocBuffer */
        uint64_t offset;          /* into the buffer */
        uint32_t length;          /* bytes at offset (control: 8 + wLength; iso: descriptors + data) */
        uint32_t timeout_ms;      /* 0: none */
        uint32_t iso_packets;     /* ZCUSB_OP_ISO: number of packets */
        uint32_t reserved0;
        uint64_t user_data;       /* returned in the completion */
        uint64_t cancel_user_data;/* ZCUSB_OP_CANCEL: the transfer to cancel */
        uint64_t reserved1[2];
};

struct zcusb_cqe {
        uint64_t user_data;
        int32_t status;         /* 0 or -errno: -ETIMEDOUT, -EPIPE (stall), -ENODEV (unplugged),
                                 * -ECANCELED, -EOVERFLOW, -EREMOTEIO (short with SHORT_NOT_OK),
                                 * -ESHUTDOWN (zcusbd stopping), -EACCES (revoked), -EINVAL,
                                 * -ENOENT (unknown buffer/transfer), -EPROTO (bus error),
                                 * -EPERM (control request not allowed), -EDQUOT (the
                                 * client's memory quota cannot hold zcusbd's state for it) */
        uint32_t actual_length; /* bytes moved (control: data stage only) */
        uint32_t flags;
        uint32_t reserved[3];
};

/* Iso packet descriptors, at the start of an ISO transfer's region. zcusbd
 * reads length once at submission and writes actual_length and status back
 * at completion. Packet data follows the descriptors, packed. */
struct zcusb_iso_packet {
        uint32_t length;
        uint32_t actual_length;
        int32_t status;
        uint32_t reserved;
};

#define ZCUSB_ISO_MAX_PACKETS 128
#define ZCUSB_CONTROL_SETUP_SIZE 8

ZCUSB_STATIC_ASSERT(sizeof(struct zcusb_ring_index) == 64, "ring index is one cache line");
ZCUSB_STATIC_ASSERT(sizeof(struct zcusb_ring_header) == 64 + 6 * 64, "ring header layout");
ZCUSB_STATIC_ASSERT(sizeof(struct zcusb_sqe) == 64, "sqe layout");
ZCUSB_STATIC_ASSERT(sizeof(struct zcusb_cqe) == 32, "cqe layout");
ZCUSB_STATIC_ASSERT(sizeof(struct zcusb_iso_packet) == 16, "iso packet layout");
ZCUSB_STATIC_ASSERT(__builtin_offsetof(struct zcusb_ring_header, sq_head) == 64, "sq_head offset");
ZCUSB_STATIC_ASSERT(__builtin_offsetof(struct zcusb_sqe, user_data) == 32, "user_data offset");
