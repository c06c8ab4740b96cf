// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb-kmod-test, iso: isochronous OUT on QEMU's usb-audio (46f4:0002, a
 * full-speed speaker on the xHCI: interface 1, alternate setting 1 has iso
 * OUT endpoint 0x01, 192-byte packets, one per frame). SUBMIT's argument
 * checks, then transfers through SUBMIT (a registered range and a plain
 * address) and through an in-kernel queue: every completion 0, every
 * packet's status 0 and actual_length written back (192, or 0 when the
 * device's buffer was full: usb-audio takes a packet or drops it whole),
 * the lengths left as they were; refused entries end with the shared
 * table's errors.
 *
 * Then isochronous IN on zcusb-isodev (1209:0001, high speed; a usbredir
 * server on the host that QEMU's usb-redir puts on the xHCI, since
 * dummy_hcd has no iso and usb-audio is output only; zcusb-isodev.h):
 * interface 0, alternate setting 1, iso IN 0x81 of 1024 bytes a
 * millisecond. The same three ways in: every completion 0 and its
 * actual_length the sum of its packets', every packet's status 0, its
 * length untouched, its data (actual_length bytes at its offset) a whole
 * packet of the device's stream, in order, at the length the device sent
 * (zc_isodev_check()), the bytes after it untouched. A packet QEMU holds
 * no data for arrives empty (its usb-redir buffers about 120 packets
 * before it serves the first), one its buffer dropped is a gap in the
 * stream: both are counted, and at least half the packets must carry data.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "zcusb-kmod-test.h"
#include "../../tests/vm/tools/zcusb-isodev.h"

#define ISO_EP 0x01
#define ISO_MP 192u
#define ISO_PACKETS 8u
#define ISO_DESC (ISO_PACKETS * sizeof(struct zcusb_iso_packet))
#define ISO_LEN (ISO_DESC + ISO_PACKETS * ISO_MP)
#define ISO_AREA (16u * MiB)	/* where in the region transfers are laid out */

/* Descriptors then data at @p: @n packets of @len, results poisoned. */
static void iso_layout(uint8_t *p, uint32_t n, uint32_t len, uint32_t seed)
{
	struct zcusb_iso_packet *d = (void *)p;
	uint32_t i;

	for (i = 0; i < n; i++)
		d[i] = (struct zcusb_iso_packet){ .length = len, .actual_length = 0xdeadbeef,
						  .status = 0x7777, .reserved = 0x5a5a5a5a };
	for (i = 0; i < n * len; i++)
		p[n * sizeof(*d) + i] = (uint8_t)(seed + i);
}

/*
 * The results the module wrote at @p: each packet status 0, actual_length
 * 192 or 0, length and reserved untouched. Returns the bytes the packets
 * say they moved, or -1 if anything is wrong.
 */
static long iso_results(const uint8_t *p, uint32_t n, uint32_t len, unsigned int *full)
{
	const struct zcusb_iso_packet *d = (const void *)p;
	long sum = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (d[i].length != len || d[i].reserved != 0x5a5a5a5a || d[i].status != 0 ||
		    (d[i].actual_length != len && d[i].actual_length != 0))
			return -1;
		sum += d[i].actual_length;
		*full += d[i].actual_length == len;
	}
	return sum;
}

static int iso_submit(int fd, uint64_t ud, uint32_t bid, uint64_t where, uint32_t len,
		      uint32_t packets, uint16_t flags, uint8_t ep)
{
	struct zcusb_submit s;

	fill_submit(&s, ud, bid, where, len, ZCUSB_TYPE_ISO, ep, flags);
	s.iso_packets = packets;
	return ioctl(fd, ZCUSB_IOC_SUBMIT, &s) ? -errno : 0;
}

/* SUBMIT @s must fail with @err and start no URB (@kind, @what: for the line). */
static void check_refused(struct dev *d, struct zcusb_submit *s, int err, const char *kind,
			  const char *what)
{
	struct stats a, b;
	int ret;

	stats(&a);
	ret = ioctl(d->fd, ZCUSB_IOC_SUBMIT, s) ? errno : 0;
	stats(&b);
	CHECK(ret == err && b.urbs == a.urbs, "SUBMIT %s, %s: %s (want %s), URBs %lld", kind, what,
	      strerror(ret), strerror(err), b.urbs - a.urbs);
}

static void test_iso_refused(struct dev *d, uint32_t id)
{
	static const struct {
		const char *what;
		uint64_t off;
		uint32_t len, packets, plen;
		uint16_t flags;
		uint8_t ep, type;
		int err;
	} cases[] = {
		{ "no packets", 0, ISO_LEN, 0, ISO_MP, 0, ISO_EP, ZCUSB_TYPE_ISO, EINVAL },
		{ "129 packets", 0, 129 * 16 + 129 * ISO_MP, 129, ISO_MP, 0, ISO_EP, ZCUSB_TYPE_ISO, EINVAL },
		{ "a packet of 193 bytes on a 192-byte endpoint", 0, ISO_DESC + ISO_PACKETS * 193,
		  ISO_PACKETS, 193, 0, ISO_EP, ZCUSB_TYPE_ISO, EMSGSIZE },
		{ "lengths beyond the data", 0, ISO_LEN - 1, ISO_PACKETS, ISO_MP, 0, ISO_EP,
		  ZCUSB_TYPE_ISO, EINVAL },
		{ "a region shorter than its descriptors", 0, ISO_DESC - 1, ISO_PACKETS, 0, 0, ISO_EP,
		  ZCUSB_TYPE_ISO, EINVAL },
		{ "descriptors at offset 2", 2, ISO_LEN, ISO_PACKETS, ISO_MP, 0, ISO_EP, ZCUSB_TYPE_ISO,
		  EINVAL },
		{ "SHORT_NOT_OK", 0, ISO_LEN, ISO_PACKETS, ISO_MP, ZCUSB_SUBMIT_SHORT_NOT_OK, ISO_EP,
		  ZCUSB_TYPE_ISO, EINVAL },
		{ "an endpoint the setting lacks", 0, ISO_LEN, ISO_PACKETS, ISO_MP, 0, 0x81,
		  ZCUSB_TYPE_ISO, EINVAL },
		{ "iso_packets on a bulk transfer", 0, ISO_LEN, ISO_PACKETS, ISO_MP, 0, ISO_EP,
		  ZCUSB_TYPE_BULK, EINVAL },
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zcusb_submit s;

		iso_layout(region + ISO_AREA + cases[i].off, cases[i].packets ? cases[i].packets : 1,
			   cases[i].plen, 0);
		fill_submit(&s, 100 + i, id, ISO_AREA + cases[i].off, cases[i].len, cases[i].type,
			    cases[i].ep, cases[i].flags);
		s.iso_packets = cases[i].packets;
		check_refused(d, &s, cases[i].err, "iso", cases[i].what);
	}
}

/*
 * A stream through SUBMIT: @depth transfers in flight until @n are reaped.
 * Transfer k is laid out by @layout in slot k % depth (@slot bytes each from
 * @base) and submitted from the registered range (buffer @id) or from its
 * plain address; @done sees each completion with its slot. @what names the
 * transfers in the lines. Returns 0, or -1 after a failed check.
 */
struct iso_stream {
	struct dev *d;
	uint32_t id;
	int registered;
	uint8_t *base;
	size_t slot;
	uint32_t len, packets;
	uint8_t ep;
	const char *what;
	void (*layout)(uint8_t *p, unsigned int k);
	void (*done)(void *ctx, uint8_t *p, const struct zcusb_completion *c);
	void *ctx;
};

static int iso_stream_run(const struct iso_stream *st, unsigned int n, unsigned int depth)
{
	unsigned int sent = 0, done = 0;

	while (done < n) {
		struct zcusb_completion c;
		uint8_t *p;

		while (sent < n && sent - done < depth) {
			p = st->base + (sent % depth) * st->slot;
			st->layout(p, sent);
			if (iso_submit(st->d->fd, sent, st->registered ? st->id : 0,
				       st->registered ? (uint64_t)(p - region) : (uintptr_t)p, st->len,
				       st->packets, 0, st->ep)) {
				CHECK(0, "SUBMIT %s %u: %s", st->what, sent, strerror(errno));
				return -1;
			}
			sent++;
		}
		if (xreap(st->d->fd, &c, 5000)) {
			CHECK(0, "REAP %s after %u of %u: timed out", st->what, done, n);
			return -1;
		}
		st->done(st->ctx, st->base + (c.user_data % depth) * st->slot, &c);
		done++;
	}
	return 0;
}

/* What an OUT stream got: bad transfers, packets taken whole, bytes. */
struct out_run {
	unsigned int bad, full;
	long bytes;
};

static void out_layout(uint8_t *p, unsigned int k)
{
	iso_layout(p, ISO_PACKETS, ISO_MP, k);
}

static void out_done(void *ctx, uint8_t *p, const struct zcusb_completion *c)
{
	struct out_run *run = ctx;
	long sum = iso_results(p, ISO_PACKETS, ISO_MP, &run->full);

	if (c->status || sum < 0 || (uint64_t)sum != c->actual_length)
		run->bad++;
	else
		run->bytes += sum;
}

/* @n transfers through SUBMIT, @depth in flight, each checked. */
static void test_iso_submit(struct dev *d, uint32_t id, int registered, unsigned int n,
			    unsigned int depth)
{
	struct out_run run = {};
	const struct iso_stream st = {
		.d = d, .id = id, .registered = registered,
		.base = registered ? region + ISO_AREA : plain + ISO_AREA, .slot = 4096,
		.len = ISO_LEN, .packets = ISO_PACKETS, .ep = ISO_EP, .what = "iso",
		.layout = out_layout, .done = out_done, .ctx = &run,
	};
	double t0 = now();

	if (iso_stream_run(&st, n, depth))
		return;
	CHECK(run.bad == 0 && run.full > 0,
	      "%u iso OUT transfers of %u x %u bytes (%s, %u in flight): %u bad, %u of %u packets "
	      "taken whole, %ld bytes in %.2f s",
	      n, ISO_PACKETS, ISO_MP, registered ? "registered range" : "buffer_id 0", depth, run.bad,
	      run.full, n * ISO_PACKETS, run.bytes, now() - t0);
}

static struct zcusb_sqe iso_sqe(uint64_t off, uint32_t len, uint32_t packets, uint64_t ud)
{
	return (struct zcusb_sqe){ .opcode = ZCUSB_OP_ISO, .endpoint = ISO_EP, .buffer_id = 9,
				   .offset = off, .length = len, .iso_packets = packets,
				   .user_data = ud, .timeout_ms = 5000 };
}

static void test_iso_queue(struct dev *d, uint32_t id)
{
	struct zcusb_buffer_alias al = { .buffer_id = id, .client_id = 9 };
	struct zcusb_queue_detach det = {};
	unsigned int i, k, n = 32, bad = 0, full = 0, reaped = 0;
	struct zcusb_sqe e;
	struct zcusb_cqe c;
	struct tq q;
	int ret;

	ret = ioctl(d->fd, ZCUSB_IOC_BUFFER_ALIAS, &al);
	CHECK(ret == 0, "BUFFER_ALIAS for the queue: %s", ret ? strerror(errno) : "ok");
	ret = tq_open(&q, d->fd, 16);
	CHECK(ret == 0, "QUEUE_ATTACH on the usb-audio fd: %s", ret ? strerror(-ret) : "ok");
	if (ret)
		return;
	for (i = 0; i < n; i++) {
		iso_layout(region + ISO_AREA + i * 4096, ISO_PACKETS, ISO_MP, i);
		e = iso_sqe(ISO_AREA + i * 4096, ISO_LEN, ISO_PACKETS, i);
		tq_push(&q, &e);
		if (i % 4 != 3)
			continue;
		/* 4 in flight (8 ms of audio each), all reaped before the next 4 */
		tq_ring(&q);
		for (k = 0; k < 4; k++, reaped++) {
			long sum;

			if (tq_reap(&q, &c, 5000)) {
				CHECK(0, "queue iso: no completion for entry %u", reaped);
				goto out;
			}
			sum = c.user_data < n ?
				iso_results(region + ISO_AREA + c.user_data * 4096, ISO_PACKETS,
					    ISO_MP, &full) : -1;
			if (c.status || sum < 0 || (uint64_t)sum != c.actual_length)
				bad++;
		}
	}
	CHECK(reaped == n && bad == 0 && full > 0,
	      "queue: %u iso OUT entries of %u x %u bytes: %u reaped, %u bad, %u of %u packets taken whole",
	      n, ISO_PACKETS, ISO_MP, reaped, bad, full, n * ISO_PACKETS);

	/* refused entries: the shared table's errors, and the queue goes on */
	iso_layout(region + ISO_AREA, ISO_PACKETS, 193, 0);
	e = iso_sqe(ISO_AREA, ISO_DESC + ISO_PACKETS * 193, ISO_PACKETS, 1000);
	tq_push(&q, &e);
	e = iso_sqe(ISO_AREA, ISO_LEN, 129, 1001);
	tq_push(&q, &e);
	iso_layout(region + ISO_AREA + 4096, ISO_PACKETS, ISO_MP, 7);
	e = iso_sqe(ISO_AREA + 4096, ISO_LEN - 1, ISO_PACKETS, 1002);
	tq_push(&q, &e);
	e = iso_sqe(ISO_AREA + 4096, ISO_LEN, ISO_PACKETS, 1003);
	tq_push(&q, &e);
	tq_ring(&q);
	{
		int want[] = { -EMSGSIZE, -EINVAL, -EINVAL, 0 }, got[4] = { 1, 1, 1, 1 };

		for (i = 0; i < 4; i++)
			if (tq_reap(&q, &c, 5000) == 0 && c.user_data >= 1000 && c.user_data < 1004)
				got[c.user_data - 1000] = c.status;
		CHECK(!memcmp(want, got, sizeof(want)),
		      "queue: refused iso entries end %d %d %d (want -EMSGSIZE -EINVAL -EINVAL), the "
		      "next one %d", got[0], got[1], got[2], got[3]);
	}
out:
	det.queue_id = q.id;
	det.end_status = -ESHUTDOWN;
	ret = ioctl(d->fd, ZCUSB_IOC_QUEUE_DETACH, &det);
	CHECK(ret == 0, "QUEUE_DETACH: %s", ret ? strerror(errno) : "ok");
	tq_close(&q);
}

/* Alternate setting 0 again (@reset_alt), close: nothing may stay pinned. */
static void iso_end(struct dev *d, int reset_alt)
{
	struct zcusb_alt a = { .alt_setting = 0 };
	struct stats s;
	int ret;

	if (reset_alt) {
		ret = ioctl(d->fd, ZCUSB_IOC_SET_ALT, &a);
		CHECK(ret == 0, "SET_ALT 0: %s", ret ? strerror(errno) : "ok");
	}
	dev_close(d);
	stats(&s);
	CHECK(s.pinned == 0, "pinned_pages %lld after close", s.pinned);
}

/*
 * Bind @d to zcusb.ko (@what: which device), open it, register the test
 * region (its id in @id) and select alternate setting @alt (@alt_what: its
 * endpoints). 0, or -1 with the device closed again.
 */
static int iso_begin(struct dev *d, const char *what, uint8_t alt, const char *alt_what,
		     uint32_t *id)
{
	struct zcusb_alt a = { .alt_setting = alt };
	int ret = bind_zcusb(d);

	CHECK(ret == 0, "bind %s (%s): %s", d->intf, what, ret ? strerror(-ret) : "ok");
	if (ret || dev_open(d))
		return -1;
	ret = do_register(d->fd, region, REGION_LEN, id);
	CHECK(ret == 0, "REGISTER -> id %u", *id);
	ret = ioctl(d->fd, ZCUSB_IOC_SET_ALT, &a);
	CHECK(ret == 0, "SET_ALT %u (%s): %s", alt, alt_what, ret ? strerror(errno) : "ok");
	if (ret) {
		iso_end(d, 0);
		return -1;
	}
	return 0;
}

void test_iso(struct dev *d)
{
	struct zcusb_version v = {};
	char alt_what[64];
	uint32_t id = 0;
	int ret;

	section = "iso";
	snprintf(alt_what, sizeof(alt_what), "iso OUT %#x, %u-byte packets", ISO_EP, ISO_MP);
	if (iso_begin(d, "usb-audio on xHCI", 1, alt_what, &id))
		return;
	ret = ioctl(d->fd, ZCUSB_IOC_VERSION, &v);
	CHECK(ret == 0 && (v.features & ZCUSB_FEATURE_ISO), "VERSION features %#x (ISO)", v.features);

	test_iso_refused(d, id);
	test_iso_submit(d, id, 1, 64, 4);
	test_iso_submit(d, id, 0, 16, 2);
	test_iso_queue(d, id);
	iso_end(d, 1);
}

/* --- iso IN: zcusb-isodev ---------------------------------------------- */

#define IN_EP ZC_ISODEV_EP_IN
#define IN_MP ZC_ISODEV_PACKET
#define IN_PACKETS 16u
#define IN_DESC (IN_PACKETS * sizeof(struct zcusb_iso_packet))
#define IN_LEN (IN_DESC + IN_PACKETS * IN_MP)
#define IN_SLOT (32u * 1024u)	/* room for one transfer (IN_LEN: 16640) */
#define IN_POISON 0xa5

/* What a stream of IN transfers got: the device's stream as read, the bad ones. */
struct in_run {
	ZcIsodevReader r;
	unsigned int bad;
	char why[192];		/* the first bad transfer's reason */
};

static void __attribute__((format(printf, 2, 3))) in_bad(struct in_run *run, const char *fmt, ...)
{
	va_list ap;

	if (run->bad++)
		return;
	va_start(ap, fmt);
	vsnprintf(run->why, sizeof(run->why), fmt, ap);
	va_end(ap);
}

/* Descriptors (@n packets of IN_MP) then poisoned data at @p. */
static void in_layout(uint8_t *p, uint32_t n)
{
	struct zcusb_iso_packet *d = (void *)p;
	uint32_t i;

	for (i = 0; i < n; i++)
		d[i] = (struct zcusb_iso_packet){ .length = IN_MP, .actual_length = 0xdeadbeef,
						  .status = 0x7777, .reserved = 0x5a5a5a5a };
	memset(p + n * sizeof(*d), IN_POISON, n * IN_MP);
}

/*
 * The transfer @ud at @p ended with @status and @actual bytes: each packet
 * status 0, length and reserved untouched, actual_length <= IN_MP and its
 * bytes the device's next packet, the rest of its room still poisoned; the
 * packets' sum the completion's.
 */
static void in_check(struct in_run *run, const uint8_t *p, int status, uint64_t actual,
		     uint64_t ud)
{
	const struct zcusb_iso_packet *d = (const void *)p;
	const uint8_t *data = p + IN_DESC;
	uint64_t sum = 0;
	char why[128];
	uint32_t i, k;

	if (status) {
		in_bad(run, "transfer %llu: status %d", (unsigned long long)ud, status);
		return;
	}
	for (i = 0; i < IN_PACKETS; i++, data += IN_MP) {
		if (d[i].length != IN_MP || d[i].reserved != 0x5a5a5a5a || d[i].status != 0 ||
		    d[i].actual_length > IN_MP) {
			in_bad(run, "transfer %llu packet %u: length %u actual_length %u status %d reserved %#x",
			       (unsigned long long)ud, i, d[i].length, d[i].actual_length, d[i].status,
			       d[i].reserved);
			return;
		}
		for (k = d[i].actual_length; k < IN_MP && data[k] == IN_POISON; k++)
			;
		if (k < IN_MP) {
			in_bad(run, "transfer %llu packet %u: byte %u, after its %u, was written",
			       (unsigned long long)ud, i, k, d[i].actual_length);
			return;
		}
		if (zc_isodev_check(&run->r, true, data, d[i].actual_length, why, sizeof(why))) {
			in_bad(run, "transfer %llu packet %u: %s", (unsigned long long)ud, i, why);
			return;
		}
		sum += d[i].actual_length;
	}
	if (sum != actual)
		in_bad(run, "transfer %llu: actual_length %llu, its packets' %llu", (unsigned long long)ud,
		       (unsigned long long)actual, (unsigned long long)sum);
}

/* One line for a stream of @n transfers: none bad, at least half the packets with data. */
static void in_report(const struct in_run *run, unsigned int n, const char *how, double t0)
{
	const ZcIsodevReader *r = &run->r;

	CHECK(run->bad == 0 && r->packets * 2 >= n * IN_PACKETS,
	      "%u iso IN transfers of %u x %u bytes (%s): %u bad%s%s, %llu of %u packets with data "
	      "(checked), %llu empty, %llu lost, %llu bytes in %.2f s",
	      n, IN_PACKETS, IN_MP, how, run->bad, run->bad ? ", first: " : "", run->why,
	      (unsigned long long)r->packets, n * IN_PACKETS, (unsigned long long)r->empty,
	      (unsigned long long)r->lost, (unsigned long long)r->bytes, now() - t0);
}

static void test_iso_in_refused(struct dev *d, uint32_t id)
{
	static const struct {
		const char *what;
		uint32_t plen;
		uint16_t flags;
		uint8_t ep;
		int err;
	} cases[] = {
		/* the module lets 1024 through (a SuperSpeed endpoint's bursts), the core does not */
		{ "a packet of 1025 bytes on the 1024-byte high-speed endpoint", IN_MP + 1, 0, IN_EP,
		  EMSGSIZE },
		{ "IN on 0x82 (the setting has 0x02 OUT only)", IN_MP, 0, 0x82, EINVAL },
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zcusb_submit s;

		in_layout(region + ISO_AREA, IN_PACKETS);
		((struct zcusb_iso_packet *)(region + ISO_AREA))[3].length = cases[i].plen;
		fill_submit(&s, 200 + i, id, ISO_AREA, IN_DESC + IN_PACKETS * (IN_MP + 1),
			    ZCUSB_TYPE_ISO, cases[i].ep, cases[i].flags);
		s.iso_packets = IN_PACKETS;
		check_refused(d, &s, cases[i].err, "iso IN", cases[i].what);
	}
}

/* @n transfers through SUBMIT, @depth in flight, the stream checked across them. */
static void in_stream_layout(uint8_t *p, unsigned int k)
{
	(void)k;
	in_layout(p, IN_PACKETS);
}

static void in_done(void *ctx, uint8_t *p, const struct zcusb_completion *c)
{
	in_check(ctx, p, c->status, c->actual_length, c->user_data);
}

static void test_iso_in_submit(struct dev *d, uint32_t id, int registered, unsigned int n,
			       unsigned int depth)
{
	struct in_run run = {};
	const struct iso_stream st = {
		.d = d, .id = id, .registered = registered,
		.base = registered ? region + ISO_AREA : plain + ISO_AREA, .slot = IN_SLOT,
		.len = IN_LEN, .packets = IN_PACKETS, .ep = IN_EP, .what = "iso IN",
		.layout = in_stream_layout, .done = in_done, .ctx = &run,
	};
	double t0 = now();
	char how[64];

	if (iso_stream_run(&st, n, depth))
		return;
	snprintf(how, sizeof(how), "%s, %u in flight", registered ? "registered range" : "buffer_id 0",
		 depth);
	in_report(&run, n, how, t0);
}

static struct zcusb_sqe in_sqe(uint64_t off, uint32_t len, uint32_t packets, uint64_t ud)
{
	struct zcusb_sqe e = iso_sqe(off, len, packets, ud);

	e.endpoint = IN_EP;
	return e;
}

static void test_iso_in_queue(struct dev *d, uint32_t id)
{
	struct zcusb_buffer_alias al = { .buffer_id = id, .client_id = 9 };
	struct zcusb_queue_detach det = {};
	unsigned int i, n = 32, depth = 4, pushed = 0, reaped = 0;
	struct in_run run = {};
	double t0 = now();
	struct zcusb_sqe e;
	struct zcusb_cqe c;
	struct tq q;
	int ret;

	ret = ioctl(d->fd, ZCUSB_IOC_BUFFER_ALIAS, &al);
	CHECK(ret == 0, "BUFFER_ALIAS for the queue: %s", ret ? strerror(errno) : "ok");
	ret = tq_open(&q, d->fd, 16);
	CHECK(ret == 0, "QUEUE_ATTACH on the zcusb-isodev fd: %s", ret ? strerror(-ret) : "ok");
	if (ret)
		return;
	/* @depth entries in flight all along: one pushed for each reaped */
	while (reaped < n) {
		while (pushed < n && pushed - reaped < depth) {
			in_layout(region + ISO_AREA + (pushed % depth) * IN_SLOT, IN_PACKETS);
			e = in_sqe(ISO_AREA + (pushed % depth) * IN_SLOT, IN_LEN, IN_PACKETS, pushed);
			tq_push(&q, &e);
			pushed++;
		}
		tq_ring(&q);
		if (tq_reap(&q, &c, 5000)) {
			CHECK(0, "queue iso IN: no completion for entry %u", reaped);
			goto out;
		}
		if (c.user_data != reaped)
			in_bad(&run, "entry %llu completed as the %uth", (unsigned long long)c.user_data,
			       reaped);
		else
			in_check(&run, region + ISO_AREA + (c.user_data % depth) * IN_SLOT, c.status,
				 c.actual_length, c.user_data);
		reaped++;
	}
	in_report(&run, n, "queue, 4 in flight", t0);

	/* refused entries, and the queue goes on */
	in_layout(region + ISO_AREA, IN_PACKETS);
	((struct zcusb_iso_packet *)(region + ISO_AREA))[0].length = IN_MP + 1;
	e = in_sqe(ISO_AREA, IN_DESC + IN_PACKETS * (IN_MP + 1), IN_PACKETS, 1000);
	tq_push(&q, &e);
	in_layout(region + ISO_AREA + IN_SLOT, IN_PACKETS);
	e = in_sqe(ISO_AREA + IN_SLOT, IN_LEN, IN_PACKETS, 1001);
	e.endpoint = 0x82;
	tq_push(&q, &e);
	e = in_sqe(ISO_AREA + IN_SLOT, IN_LEN, IN_PACKETS, 1002);
	tq_push(&q, &e);
	tq_ring(&q);
	{
		int want[] = { -EMSGSIZE, -EINVAL, 0 }, got[3] = { 1, 1, 1 };

		for (i = 0; i < 3; i++)
			if (tq_reap(&q, &c, 5000) == 0 && c.user_data >= 1000 && c.user_data < 1003)
				got[c.user_data - 1000] = c.status;
		CHECK(!memcmp(want, got, sizeof(want)),
		      "queue: refused iso IN entries end %d (a 1025-byte packet, want -EMSGSIZE) %d "
		      "(IN on 0x82, want -EINVAL), the next one %d", got[0], got[1], got[2]);
	}
out:
	det.queue_id = q.id;
	det.end_status = -ESHUTDOWN;
	ret = ioctl(d->fd, ZCUSB_IOC_QUEUE_DETACH, &det);
	CHECK(ret == 0, "QUEUE_DETACH: %s", ret ? strerror(errno) : "ok");
	tq_close(&q);
}

void test_iso_in(struct dev *d)
{
	char alt_what[64];
	uint32_t id = 0;

	section = "iso-in";
	snprintf(alt_what, sizeof(alt_what), "iso IN %#x, %u-byte packets, one a millisecond", IN_EP,
		 IN_MP);
	if (iso_begin(d, "zcusb-isodev through usb-redir on xHCI", ZC_ISODEV_ALT, alt_what, &id))
		return;
	test_iso_in_refused(d, id);
	test_iso_in_submit(d, id, 1, 32, 4);
	test_iso_in_submit(d, id, 0, 16, 4);
	test_iso_in_queue(d, id);
	iso_end(d, 1);
}
