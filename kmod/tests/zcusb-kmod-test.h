/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcusb-kmod-test: what its sources share. zcusb-kmod-test.c (main: the
 * order of the sections), harness.c (reporting, sysfs, devices, SUBMIT/REAP
 * helpers, memory, stats), data.c (Loopback, split, copy mode, SourceSink,
 * control), limits.c (argument checks, limits, bind/unbind cycles),
 * faults.c (cancel, SIGKILL, unplug, rmmod), xhci.c (usb-storage on xHCI),
 * queue.c (in-kernel queues), iso.c (isochronous: OUT on QEMU's usb-audio,
 * IN on zcusb-isodev through QEMU's usb-redir).
 */
#ifndef ZCUSB_KMOD_TEST_H
#define ZCUSB_KMOD_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "../../include/zcusb/zcusb_abi.h"
#include "../../include/zcusb/zcusb-ring.h"

#define DRV "/sys/bus/usb/drivers/zcusb"
#define MiB (1024u * 1024u)
#define PAGE 4096u
#define LINE 64u		/* x86-64 L1_CACHE_BYTES */
#define LOOP_BUFLEN 65536u	/* Loopback bulk_buflen set by the runner */

#define REGION_LEN (24u * MiB)
#define IN_AREA (10u * MiB)

/* --- harness.c -------------------------------------------------------- */

extern unsigned int passed, failed;
extern const char *section;	/* named in every result line */

extern uint8_t *region;		/* registered memfd mapping */
extern uint8_t *plain;		/* another memfd mapping, never registered */
extern uint32_t region_id;	/* its id on the Loopback fd */
extern int zc_disabled;		/* disable_zerocopy=1 is set */

void result(int ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define CHECK(cond, ...) result(!!(cond), __VA_ARGS__)

double now(void);

int write_file(const char *path, const char *s);
int read_file(const char *path, char *buf, size_t len);
int write_param(const char *name, const char *val);

struct stats {
	long long zc, bounced, urbs, pinned;
};

void stats(struct stats *s);
void check_stats(const struct stats *a, const struct stats *b, size_t bounced,
		 size_t total, const char *what);

struct dev {
	const char *what;
	const char *vidpid;	/* "0525 a4a1" */
	char gadget[256];	/* configfs dir */
	char udc[64];		/* its UDC name */
	char intf[64];		/* host interface, e.g. 3-1:1.0 */
	char node[128];		/* /dev/zcusb/... */
	unsigned int mp;	/* wMaxPacketSize of the bulk IN endpoint */
	uint8_t ep_in, ep_out;	/* bulk endpoints, from sysfs */
	int fd;
};

int find_intf(struct dev *d);
int wait_path(const char *path, int present, double secs);
int bind_zcusb(struct dev *d);
void find_eps(struct dev *d);
int setup_dev(struct dev *d);
int dev_open(struct dev *d);
void dev_close(struct dev *d);

void fill_submit(struct zcusb_submit *s, uint64_t ud, uint32_t bid,
		 uint64_t where, uint32_t len, uint8_t type, uint8_t ep,
		 uint16_t flags);
int xsubmit(int fd, uint64_t ud, uint32_t bid, uint64_t where, uint32_t len,
	    uint8_t type, uint8_t ep, uint16_t flags);
int xreap(int fd, struct zcusb_completion *c, int timeout_ms);
int reap_n(int fd, struct zcusb_completion *out, int n, int timeout_ms);

void *map_memfd(const char *name, size_t len);
int do_register(int fd, void *addr, uint64_t len, uint32_t *id);
uint8_t rnd8(void);

/* --- the sections ----------------------------------------------------- */

/* data.c */
void loop_roundtrip(struct dev *d, int registered, size_t n, size_t off);
void test_loopback(struct dev *d);
void test_split(struct dev *d);
void test_copy_mode(struct dev *d);
void test_sourcesink(struct dev *d);
void test_control(struct dev *d);

/* limits.c */
void test_validation(struct dev *d);
void test_cycles(struct dev *d, int n);

/* faults.c */
void test_cancel(struct dev *d);
void test_sigkill(struct dev *d);
void test_unplug(struct dev *d);
void test_rmmod(struct dev *d, const char *module);

/* queue.c */
void test_queue(struct dev *d);
void test_queue_doorbell(struct dev *d);
/* xhci.c */
void test_xhci(struct dev *d);

/* --- queue.c: an in-kernel queue driven as a client drives it ---------- */
struct tq {
	int ring_fd, submit_fd, complete_fd;
	size_t size;
	uint8_t *map;
	struct zcusb_ring_header *h;
	struct zcusb_sqe *sq;
	struct zcusb_cqe *cq;
	uint32_t entries, tail, head, id;
};

int tq_open(struct tq *q, int fd, uint32_t entries);
void tq_close(struct tq *q);
void tq_push(struct tq *q, const struct zcusb_sqe *e);
void tq_ring(struct tq *q);
int tq_reap(struct tq *q, struct zcusb_cqe *out, int timeout_ms);

/* --- iso.c ------------------------------------------------------------- */
void test_iso(struct dev *d);
void test_iso_in(struct dev *d);

#endif /* ZCUSB_KMOD_TEST_H */
