// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb-kmod-test, xhci: a host controller with no_sg_constraint and real
 * DMA mapping. QEMU's usb-storage, driven with bulk-only transport. The
 * disk image holds byte (lba * 7 + i) & 0xff at byte i of sector lba
 * (run-kmod-tests.sh writes it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "zcusb-kmod-test.h"

static uint8_t disk_byte(uint32_t lba, uint32_t i)
{
	return (lba * 7 + i) & 0xff;
}

static uint32_t bot_tag;

/* One SCSI command; the data stage uses (bid, where, len). 0 or -errno/-EIO. */
static int bot_cmd(struct dev *d, const uint8_t *cdb, int cdblen, int in,
		   uint32_t bid, uint64_t where, uint32_t len,
		   struct stats *a, struct stats *b, uint32_t *actual)
{
	uint8_t *cbw = plain + 20 * MiB, *csw = plain + 20 * MiB + PAGE;
	struct zcusb_completion c;
	uint32_t tag = ++bot_tag;
	int ret;

	memset(cbw, 0, 31);
	memcpy(cbw, "USBC", 4);
	memcpy(cbw + 4, &tag, 4);
	memcpy(cbw + 8, &len, 4);
	cbw[12] = in ? 0x80 : 0;
	cbw[14] = cdblen;
	memcpy(cbw + 15, cdb, cdblen);
	ret = xsubmit(d->fd, 1, 0, (uintptr_t)cbw, 31, ZCUSB_TYPE_BULK, d->ep_out, 0);
	if (!ret)
		ret = xreap(d->fd, &c, 10000);
	if (ret || c.status)
		return ret ? ret : c.status;
	if (len) {
		stats(a);
		ret = xsubmit(d->fd, 2, bid, where, len, ZCUSB_TYPE_BULK,
			      in ? d->ep_in : d->ep_out, 0);
		stats(b);
		if (!ret)
			ret = xreap(d->fd, &c, 30000);
		if (ret || c.status)
			return ret ? ret : c.status;
		*actual = c.actual_length;
	}
	ret = xsubmit(d->fd, 3, 0, (uintptr_t)csw, 13, ZCUSB_TYPE_BULK, d->ep_in, 0);
	if (!ret)
		ret = xreap(d->fd, &c, 10000);
	if (ret || c.status)
		return ret ? ret : c.status;
	if (memcmp(csw, "USBS", 4) || memcmp(csw + 4, &tag, 4))
		return -EPROTO;
	return csw[12] ? -EIO : 0;
}

static int scsi_rw(struct dev *d, int in, uint32_t lba, uint32_t len,
		   uint32_t bid, uint64_t where, struct stats *a,
		   struct stats *b, uint32_t *actual)
{
	uint8_t cdb[10] = { in ? 0x28 : 0x2a, 0, lba >> 24, lba >> 16, lba >> 8,
			    lba, 0, (len / 512) >> 8, len / 512, 0 };
	int ret, tries;

	for (tries = 0; tries < 3; tries++) {
		ret = bot_cmd(d, cdb, 10, in, bid, where, len, a, b, actual);
		if (ret != -EIO)
			break;
		/* unit attention after reset: fetch the sense, retry */
		{
			uint8_t rs[6] = { 0x03, 0, 0, 0, 18, 0 };
			struct stats x, y;
			uint32_t n;

			bot_cmd(d, rs, 6, 1, 0, (uintptr_t)plain + 21 * MiB, 18,
				&x, &y, &n);
		}
	}
	return ret;
}

/* !constrained: IN bounces the partial cache lines at both ends */
static size_t exp_bounce_nosgc(int in, size_t len, size_t pgoff)
{
	size_t h, t;

	if (zc_disabled)
		return len;
	if (!in)
		return 0;
	h = (LINE - pgoff % LINE) % LINE;
	t = (pgoff + len) % LINE;
	return h + t >= len ? len : h + t;
}

void test_xhci(struct dev *d)
{
	static const size_t sz[] = { 512, 4096, 65536, 1 * MiB };
	static const size_t offs[] = { 0, 100, 4000 };
	uint32_t id, actual, lba;
	struct stats a, b;
	size_t i, j, k, bad;
	int reg, ret;

	section = "xhci";
	ret = bind_zcusb(d);
	CHECK(ret == 0, "bind %s (usb-storage on xHCI, bulk IN %#x OUT %#x, maxpacket %u): %s",
	      d->intf, d->ep_in, d->ep_out, d->mp, ret ? strerror(-ret) : "ok");
	if (ret || dev_open(d))
		return;
	ret = do_register(d->fd, region, REGION_LEN, &id);
	CHECK(ret == 0, "REGISTER -> id %u", id);
	for (reg = 1; reg >= 0; reg--) {
		for (j = 0; j < 3; j++) {
			for (i = 0; i < 4; i++) {
				size_t n = sz[i], off = offs[j];
				uint8_t *p = (reg ? region : plain) + IN_AREA + off;

				lba = 8 + i * 3 + j;
				memset(p, 0xee, n + 64);
				actual = 0;
				ret = scsi_rw(d, 1, lba, n, reg ? id : 0,
					      reg ? IN_AREA + off : (uintptr_t)p,
					      &a, &b, &actual);
				bad = (size_t)-1;
				for (k = 0; k < n && bad == (size_t)-1; k++)
					if (p[k] != disk_byte(lba + k / 512, k % 512))
						bad = k;
				CHECK(!ret && actual == n && bad == (size_t)-1 &&
				      p[n] == 0xee && p[n + 63] == 0xee,
				      "READ(10) %s n=%zu off=%zu: %s actual %u data %s",
				      reg ? "registered" : "buffer_id 0", n, off,
				      ret ? strerror(-ret) : "ok", actual,
				      bad == (size_t)-1 ? "ok" : "BAD");
				check_stats(&a, &b, exp_bounce_nosgc(1, n, (uintptr_t)p % PAGE),
					    n, "READ data stage");
			}
		}
	}
	/* OUT: write at unaligned offsets, read back page aligned */
	for (j = 0; j < 3; j++) {
		size_t n = 65536 + 512, off = offs[j];
		uint8_t *p = region + off, *q = region + IN_AREA;

		for (k = 0; k < n; k++)
			p[k] = rnd8();
		lba = 1024 + j * 256;
		ret = scsi_rw(d, 0, lba, n, id, off, &a, &b, &actual);
		CHECK(!ret && actual == n, "WRITE(10) n=%zu off=%zu: %s", n, off,
		      ret ? strerror(-ret) : "ok");
		check_stats(&a, &b, 0, n, "WRITE data stage");
		ret = scsi_rw(d, 1, lba, n, id, IN_AREA, &a, &b, &actual);
		CHECK(!ret && !memcmp(p, q, n), "read back n=%zu: %s", n,
		      ret ? strerror(-ret) : memcmp(p, q, n) ? "DIFFERS" : "equal");
	}
	dev_close(d);
}
