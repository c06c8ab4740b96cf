/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * zcusb.ko user ABI: one char device per bound interface, /dev/zcusb/<intf>
 * (e.g. /dev/zcusb/1-1:1.0), opened by zcusbd only (mode 0600 root).
 *
 * Transfers name memory of the opener: either a range registered once
 * (ZCUSB_IOC_REGISTER: pages pinned and charged until unregistered or close)
 * or, with buffer_id 0, a user address pinned for that transfer only. The
 * module builds a scatter-gather list over those pages and submits URBs that
 * DMA straight into them; when the host controller cannot take the list (no
 * SG support, too many entries, an element that is not a multiple of
 * wMaxPacketSize where the controller needs it), it splits or bounces instead
 * of failing. Control transfers always go through a kernel copy.
 *
 * Completions are read with ZCUSB_IOC_REAP (non-blocking, -EAGAIN when none)
 * and signalled by poll() readiness (EPOLLIN). Disconnect completes every
 * transfer with -ENODEV and makes every later call fail with -ENODEV.
 *
 * In-kernel queues (kmod/README.md, "In-kernel queues"): QUEUE_ATTACH hands
 * the module a client's queue (the ring memfd of zcusb-ring.h and its submit
 * and complete eventfds); the module then consumes the submission ring and
 * fills the completion ring itself, woken by the submit eventfd, and checks
 * every entry as zcusbd's transfer-check.c does. Buffer ids in the ring are
 * the client's: BUFFER_ALIAS names a registered range under such an id.
 * QUEUE_DETACH (or closing this file) stops serving the queue: transfers in
 * flight complete with the given status, and the final private indices are
 * returned so that zcusbd can go on serving the ring itself. Closing the
 * file (zcusbd stopped or killed) detaches every queue with -ESHUTDOWN and
 * marks its ring ZCUSB_SQ_DEAD. QUEUE_STATS reads what the module counted
 * for a queue (as zcusbd counts the queues it serves); QUEUE_DETACH can
 * write the final counters, taken once the module served no more.
 */
#ifndef _UAPI_ZCUSB_ABI_H
#define _UAPI_ZCUSB_ABI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define ZCUSB_ABI_VERSION 1

struct zcusb_version {
	__u32 abi_version;      /* ZCUSB_ABI_VERSION */
	__u32 zerocopy;         /* 0 while the module's disable_zerocopy is set */
	__u32 max_transfer;     /* largest length one transfer may have */
	__u32 features;         /* ZCUSB_FEATURE_* (older modules: 0) */
};

/* ZCUSB_TYPE_ISO in SUBMIT and ZCUSB_OP_ISO in in-kernel queues */
#define ZCUSB_FEATURE_ISO (1u << 0)

struct zcusb_register {
	__u64 addr;             /* page aligned */
	__u64 length;           /* multiple of the page size */
	__u32 buffer_id;        /* out: > 0 */
	__u32 reserved;
};

#define ZCUSB_TYPE_BULK       2
#define ZCUSB_TYPE_INTERRUPT  3
#define ZCUSB_TYPE_CONTROL    0
/*
 * Isochronous (ZCUSB_FEATURE_ISO): the data is laid out as in an ISO ring
 * entry (zcusb-ring.h): iso_packets struct zcusb_iso_packet, then the packet
 * data, packed. The module reads each length once at SUBMIT and writes
 * actual_length and status back before the completion is reported. Packet
 * data goes through a kernel buffer (host controllers take an iso URB as one
 * contiguous buffer); IN data of packet i lands at its offset, the sum of the
 * lengths before it, actual_length bytes of it.
 */
#define ZCUSB_TYPE_ISO        1

#define ZCUSB_SUBMIT_SHORT_NOT_OK  (1u << 0)
#define ZCUSB_SUBMIT_ZERO_PACKET   (1u << 1)

struct zcusb_submit {
	__u64 user_data;        /* returned by REAP; also the CANCEL key */
	__u64 addr;             /* buffer_id 0: user address of the data */
	__u64 offset;           /* buffer_id > 0: offset into the registered range */
	__u32 buffer_id;
	__u32 length;           /* data bytes (control: data stage only;
				 * iso: descriptors and data) */
	__u8  type;             /* ZCUSB_TYPE_* */
	__u8  endpoint;         /* bEndpointAddress; 0 for control */
	__u16 flags;            /* ZCUSB_SUBMIT_* */
	__u32 iso_packets;      /* ZCUSB_TYPE_ISO: 1-128 (older modules:
				 * "reserved", 0); else 0 */
	__u8  setup[8];         /* control: the setup packet */
};

struct zcusb_completion {
	__u64 user_data;
	__s32 status;           /* 0 or -errno */
	__u32 actual_length;
};

struct zcusb_alt {
	__u32 alt_setting;
	__u32 reserved;
};

/* a range registered on this file, named by the client's buffer id */
struct zcusb_buffer_alias {
	__u32 buffer_id;        /* from REGISTER */
	__u32 client_id;        /* the id ring entries use; 0 removes the alias */
};

struct zcusb_queue_attach {
	__s32 ring_fd;          /* memfd holding the ring (zcusb-ring.h) */
	__s32 submit_fd;        /* eventfd: client -> module */
	__s32 complete_fd;      /* eventfd: module -> client */
	__u32 sq_entries;       /* as zcusbd laid the ring out */
	__u32 queue_id;         /* out: > 0 (in: 0) */
	__u32 flags;            /* 0 */
	__u32 sq_head;          /* zcusbd's private indices: where the */
	__u32 cq_tail;          /* module takes over */
	__u64 reserved;
};

struct zcusb_queue_detach {
	__u32 queue_id;
	__s32 end_status;       /* status of transfers still in flight (-errno) */
	__u32 sq_head;          /* out: the module's private indices, which */
	__u32 cq_tail;          /* out: the ring's header may not show */
	__u64 stats_addr;       /* 0, or where to write the queue's final
				 * struct zcusb_queue_stats (modules without
				 * QUEUE_STATS: must be 0, -EINVAL) */
};

/*
 * What the module counted for one in-kernel queue since QUEUE_ATTACH, as
 * zcusbd counts the queues it serves: every entry taken off the ring is
 * submitted; it ends completed (status 0; NOP, and CANCEL whatever it
 * answers) or failed (refused by the checks, or ended with an error); the
 * bytes are the actual_length of completed transfers, by direction (control:
 * data stage). submitted == completed + failed + in_flight.
 */
struct zcusb_queue_stats {
	__u32 queue_id;         /* in */
	__u32 reserved;         /* 0 */
	__u64 submitted;        /* out: the counters */
	__u64 completed;
	__u64 failed;
	__u64 bytes_in;
	__u64 bytes_out;
	__u64 in_flight;        /* out: taken, completion not posted yet */
	__u64 reserved2[2];     /* 0 in, 0 out */
};

#define ZCUSB_IOC_MAGIC 'Z'
#define ZCUSB_IOC_VERSION     _IOR(ZCUSB_IOC_MAGIC, 0, struct zcusb_version)
#define ZCUSB_IOC_REGISTER    _IOWR(ZCUSB_IOC_MAGIC, 1, struct zcusb_register)
#define ZCUSB_IOC_UNREGISTER  _IOW(ZCUSB_IOC_MAGIC, 2, __u32)
#define ZCUSB_IOC_SUBMIT      _IOW(ZCUSB_IOC_MAGIC, 3, struct zcusb_submit)
#define ZCUSB_IOC_REAP        _IOR(ZCUSB_IOC_MAGIC, 4, struct zcusb_completion)
#define ZCUSB_IOC_CANCEL      _IOW(ZCUSB_IOC_MAGIC, 5, __u64)
#define ZCUSB_IOC_SET_ALT     _IOW(ZCUSB_IOC_MAGIC, 6, struct zcusb_alt)
#define ZCUSB_IOC_CLEAR_HALT  _IOW(ZCUSB_IOC_MAGIC, 7, __u32)
/* added in ABI 1 without a version bump: older modules say -ENOTTY */
#define ZCUSB_IOC_BUFFER_ALIAS _IOW(ZCUSB_IOC_MAGIC, 8, struct zcusb_buffer_alias)
#define ZCUSB_IOC_QUEUE_ATTACH _IOWR(ZCUSB_IOC_MAGIC, 9, struct zcusb_queue_attach)
#define ZCUSB_IOC_QUEUE_DETACH _IOWR(ZCUSB_IOC_MAGIC, 10, struct zcusb_queue_detach)
#define ZCUSB_IOC_QUEUE_STATS  _IOWR(ZCUSB_IOC_MAGIC, 11, struct zcusb_queue_stats)

#endif /* _UAPI_ZCUSB_ABI_H */
