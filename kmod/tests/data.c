// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb-kmod-test, data: Loopback round trips over sizes and offsets
 * (registered and plain buffers), split transfers, copy mode, SourceSink
 * patterns, control requests; the bytes bounced are checked in the stats.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include "zcusb-kmod-test.h"

/*
 * Bytes the module must bounce (dummy_hcd: SG with the max-packet rule).
 * Zero copy needs the start at a packet boundary within its page; IN also
 * bounces what follows the last cache-line-aligned packet boundary, and
 * the whole transfer when that leaves nothing.
 */
static size_t exp_bounce(int in, size_t len, size_t pgoff, unsigned int mp)
{
	size_t e;

	if (zc_disabled)
		return len;
	if (!len)
		return 0;
	if (PAGE % mp || pgoff % mp)
		return len;
	if (!in || (pgoff + len) % LINE == 0)
		return 0;
	e = len - len % mp;
	while (e && (pgoff + e) % LINE)
		e -= mp;
	return e ? len - e : len;
}

/*
 * Loopback round trip: OUT n bytes at byte @off of the OUT area, IN into
 * the IN area at the same offset; the data must come back byte for byte
 * and nothing outside the IN range may change.
 */
void loop_roundtrip(struct dev *d, int registered, size_t n, size_t off)
{
	uint8_t *base = registered ? region : plain;
	uint8_t *outp = base + off, *inp = base + IN_AREA + off;
	/* Loopback ends a gadget request on a short packet or after buflen:
	 * a transfer of whole packets shorter than that needs a ZLP, which
	 * the gadget then echoes: room for it on IN */
	int zlp = n % d->mp == 0 && n % LOOP_BUFLEN != 0;
	size_t in_len = zlp ? n + d->mp : n;
	struct zcusb_completion c[2];
	struct stats a, b;
	char what[96];
	size_t i, bad = (size_t)-1;
	int ret;

	snprintf(what, sizeof(what), "loopback %s n=%zu off=%zu",
		 registered ? "registered" : "buffer_id 0", n, off);
	for (i = 0; i < n; i++)
		outp[i] = rnd8();
	memset(inp - (off >= 64 ? 64 : off), 0xee, in_len + 128);

	stats(&a);
	ret = xsubmit(d->fd, 2, registered ? region_id : 0,
		      registered ? IN_AREA + off : (uintptr_t)inp, in_len,
		      ZCUSB_TYPE_BULK, d->ep_in, 0);
	if (!ret)
		ret = xsubmit(d->fd, 1, registered ? region_id : 0,
			      registered ? off : (uintptr_t)outp, n,
			      ZCUSB_TYPE_BULK, d->ep_out,
			      zlp ? ZCUSB_SUBMIT_ZERO_PACKET : 0);
	if (ret) {
		CHECK(0, "%s: submit: %s", what, strerror(-ret));
		return;
	}
	ret = reap_n(d->fd, c, 2, 60000);
	stats(&b);
	if (ret) {
		CHECK(0, "%s: reap: %s", what, strerror(-ret));
		return;
	}
	for (i = 0; i < n; i++) {
		if (inp[i] != outp[i]) {
			bad = i;
			break;
		}
	}
	for (i = n; bad == (size_t)-1 && i < in_len + 64; i++)
		if (inp[i] != 0xee)
			bad = i;
	for (i = 1; bad == (size_t)-1 && i <= 64 && i <= off; i++)
		if (inp[-(long)i] != 0xee)
			bad = -i;
	CHECK(c[0].status == 0 && c[0].actual_length == n && c[1].status == 0 &&
	      c[1].actual_length == n && bad == (size_t)-1,
	      "%s: out %d/%u in %d/%u data %s", what, c[0].status,
	      c[0].actual_length, c[1].status, c[1].actual_length,
	      bad == (size_t)-1 ? "equal" : "DIFFERS");
	if (bad != (size_t)-1)
		printf("     first bad byte at %zd\n", (ssize_t)bad);
	check_stats(&a, &b, exp_bounce(0, n, (uintptr_t)outp % PAGE, d->mp) +
		    exp_bounce(1, in_len, (uintptr_t)inp % PAGE, d->mp),
		    n + in_len, what);
}

static const size_t sizes[] = { 1, 511, 512, 513, 4095, 4096, 65536,
				1 * MiB, 4 * MiB };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

void test_loopback(struct dev *d)
{
	static const size_t offs[] = { 0, 512, 100, 4000 };
	size_t i, j;
	int reg;

	section = "loopback";
	for (reg = 1; reg >= 0; reg--)
		for (j = 0; j < 4; j++)
			for (i = 0; i < NSIZES; i++)
				loop_roundtrip(d, reg, sizes[i], offs[j]);
}

/* A short IN: the device sends less than asked; the rest must not hang. */
static void loop_short(struct dev *d, size_t n, size_t in_len, size_t off)
{
	struct zcusb_completion c[2];
	int ret;

	memset(region + off, 0x5a, n);
	ret = xsubmit(d->fd, 2, region_id, IN_AREA + off, in_len,
		      ZCUSB_TYPE_BULK, d->ep_in, 0);
	if (!ret)
		ret = xsubmit(d->fd, 1, region_id, off, n, ZCUSB_TYPE_BULK,
			      d->ep_out, 0);
	if (!ret)
		ret = reap_n(d->fd, c, 2, 30000);
	CHECK(!ret && c[0].status == 0 && c[1].status == 0 &&
	      c[1].actual_length == n && !memcmp(region + off,
						 region + IN_AREA + off, n),
	      "short IN: out %zu, in buffer %zu at off %zu -> status %d actual %u (%s)",
	      n, in_len, off, ret ? ret : c[1].status, ret ? 0 : c[1].actual_length,
	      ret ? strerror(-ret) : "reaped");
}

void test_split(struct dev *d)
{
	static const size_t sz[] = { 513, 4096, 65536, 1 * MiB };
	struct stats a, b;
	size_t i;

	section = "split";
	/* no SG: one URB per page (or bounce chunk) */
	write_param("max_sg_entries", "0");
	stats(&a);
	loop_roundtrip(d, 1, 1 * MiB, 0);
	stats(&b);
	CHECK(b.urbs - a.urbs >= 512,
	      "no SG: 1 MiB out + in took %lld URBs (>= 512)", b.urbs - a.urbs);
	for (i = 0; i < 4; i++) {
		loop_roundtrip(d, 1, sz[i], 100);
		loop_roundtrip(d, 0, sz[i], 512);
	}
	loop_short(d, 1000, 8192, 0);
	loop_short(d, 1000, 65536, 100);
	loop_roundtrip(d, 1, 4096, 0);

	/* SG, but one entry per URB */
	write_param("max_sg_entries", "1");
	for (i = 0; i < 4; i++)
		loop_roundtrip(d, 1, sz[i], i & 1 ? 0 : 100);
	loop_short(d, 1000, 3 * PAGE, 0);
	loop_roundtrip(d, 0, 65536, 0);
	write_param("max_sg_entries", "-1");
	loop_short(d, 1000, 3 * PAGE, 0);
}

void test_copy_mode(struct dev *d)
{
	static const size_t sz[] = { 1, 4096, 65536, 1 * MiB };
	size_t i;

	section = "disable_zerocopy";
	CHECK(write_param("disable_zerocopy", "1") == 0, "set disable_zerocopy=1");
	zc_disabled = 1;
	{
		struct zcusb_version v;

		int r = ioctl(d->fd, ZCUSB_IOC_VERSION, &v);

		CHECK(r == 0 && v.zerocopy == 0, "VERSION reports zerocopy 0");
	}
	for (i = 0; i < 4; i++) {
		loop_roundtrip(d, 1, sz[i], 0);
		loop_roundtrip(d, 0, sz[i], 100);
	}
	write_param("disable_zerocopy", "0");
	zc_disabled = 0;
}

static int ss_pattern_ok(const uint8_t *p, size_t n, unsigned int mp,
			 size_t *bad)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] != (uint8_t)((i % mp) % 63)) {
			*bad = i;
			return 0;
		}
	}
	return 1;
}

void test_sourcesink(struct dev *d)
{
	static const size_t in_sizes[] = { 512, 4096, 65536, 1 * MiB, 4 * MiB };
	static const size_t offs[] = { 0, 100 };
	struct zcusb_completion c;
	struct stats a, b;
	size_t i, j, k, bad;
	int reg, ret;

	section = "sourcesink";
	/* IN: the pattern source (transfers are whole packets) */
	for (reg = 1; reg >= 0; reg--) {
		for (j = 0; j < 2; j++) {
			for (i = 0; i < 5; i++) {
				size_t n = in_sizes[i], off = offs[j];
				uint8_t *p = (reg ? region : plain) + IN_AREA + off;

				memset(p, 0xee, n + 64);
				stats(&a);
				ret = xsubmit(d->fd, 1, reg ? region_id : 0,
					      reg ? IN_AREA + off : (uintptr_t)p,
					      n, ZCUSB_TYPE_BULK, d->ep_in, 0);
				if (!ret)
					ret = xreap(d->fd, &c, 60000);
				stats(&b);
				bad = 0;
				CHECK(!ret && c.status == 0 && c.actual_length == n &&
				      ss_pattern_ok(p, n, d->mp, &bad) &&
				      p[n] == 0xee && p[n + 63] == 0xee,
				      "IN %s n=%zu off=%zu: status %d actual %u pattern %s",
				      reg ? "registered" : "buffer_id 0", n, off,
				      ret ? ret : c.status, ret ? 0 : c.actual_length,
				      bad ? "BAD" : "ok");
				check_stats(&a, &b, exp_bounce(1, n, (uintptr_t)p % PAGE,
							       d->mp), n, "IN");
			}
		}
	}
	/* OUT: the sink checks the pattern and halts the endpoint if wrong */
	for (j = 0; j < 2; j++) {
		for (i = 0; i < NSIZES; i++) {
			size_t n = sizes[i], off = offs[j];
			uint8_t *p = region + off;

			for (k = 0; k < n; k++)
				p[k] = (k % d->mp) % 63;
			ret = xsubmit(d->fd, 1, region_id, off, n,
				      ZCUSB_TYPE_BULK, d->ep_out, 0);
			if (!ret)
				ret = xreap(d->fd, &c, 60000);
			CHECK(!ret && c.status == 0 && c.actual_length == n,
			      "OUT n=%zu off=%zu: status %d actual %u", n, off,
			      ret ? ret : c.status, ret ? 0 : c.actual_length);
		}
	}
}

static int ctrl(int fd, uint32_t bid, uint64_t where, uint8_t rt, uint8_t req,
		uint16_t val, uint16_t idx, uint16_t len,
		struct zcusb_completion *c)
{
	struct zcusb_submit s;
	int ret;

	fill_submit(&s, 77, bid, where, len, ZCUSB_TYPE_CONTROL, 0, 0);
	s.setup[0] = rt;
	s.setup[1] = req;
	s.setup[2] = val & 0xff;
	s.setup[3] = val >> 8;
	s.setup[4] = idx & 0xff;
	s.setup[5] = idx >> 8;
	s.setup[6] = len & 0xff;
	s.setup[7] = len >> 8;
	if (ioctl(fd, ZCUSB_IOC_SUBMIT, &s))
		return -errno;
	ret = xreap(fd, c, 10000);
	return ret;
}

void test_control(struct dev *d)
{
	struct zcusb_completion c;
	struct stats a, b;
	uint8_t *p = region + 3 * PAGE + 7, *q = plain + 5 * PAGE + 1;
	int i, ret;

	section = "control";
	stats(&a);
	ret = ctrl(d->fd, region_id, 3 * PAGE + 7, 0x80, 6, 0x0100, 0, 18, &c);
	stats(&b);
	CHECK(!ret && c.status == 0 && c.actual_length == 18 && p[0] == 18 &&
	      p[1] == 1 && p[8] == 0x25 && p[9] == 0x05,
	      "GET_DESCRIPTOR(device) into a registered range: status %d len %u idVendor %02x%02x",
	      ret ? ret : c.status, c.actual_length, p[9], p[8]);
	check_stats(&a, &b, 18, 18, "control");
	for (i = 0; i < 64; i++)
		q[i] = rnd8();
	ret = ctrl(d->fd, 0, (uintptr_t)q, 0x40, 0x5b, 0, 0, 64, &c);
	CHECK(!ret && c.status == 0 && c.actual_length == 64,
	      "vendor 0x5b OUT 64 bytes (buffer_id 0): %d", ret ? ret : c.status);
	memset(p, 0, 64);
	ret = ctrl(d->fd, region_id, 3 * PAGE + 7, 0xc0, 0x5c, 0, 0, 64, &c);
	CHECK(!ret && c.status == 0 && c.actual_length == 64 && !memcmp(p, q, 64),
	      "vendor 0x5c IN reads them back: %d len %u", ret ? ret : c.status,
	      c.actual_length);
	ret = ctrl(d->fd, 0, 0, 0x00, 9, 1, 0, 0, &c);
	CHECK(ret == -EPERM, "SET_CONFIGURATION refused: %s", strerror(-ret));
	ret = ctrl(d->fd, 0, 0, 0x01, 11, 0, 0, 0, &c);
	CHECK(ret == -EPERM, "SET_INTERFACE through control refused (use SET_ALT): %s",
	      strerror(-ret));
	ret = ctrl(d->fd, 0, 0, 0x81, 0, 0, 5, 2, &c);
	CHECK(ret == -EPERM, "request to another interface refused: %s",
	      strerror(-ret));
}
