// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb-kmod-test, limits: SUBMIT and REGISTER argument checks, the
 * max_pinned_mb limit, exclusive open; the allow list and unbind/bind
 * cycles.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zcusb-kmod-test.h"

void test_validation(struct dev *d)
{
	struct zcusb_submit s;
	struct zcusb_completion c;
	struct zcusb_register r;
	struct zcusb_version v = { 0 };
	uint32_t id;
	void *ro;
	int ret;

	section = "validation";
	ret = ioctl(d->fd, ZCUSB_IOC_VERSION, &v);
	CHECK(ret == 0 &&
	      v.abi_version == ZCUSB_ABI_VERSION && v.zerocopy == 1 &&
	      v.max_transfer >= 4 * MiB,
	      "VERSION: abi %u zerocopy %u max_transfer %u", v.abi_version,
	      v.zerocopy, v.max_transfer);

#define SUB_EXPECT(err, desc, ...) do {					\
		memset(&s, 0, sizeof(s));				\
		s.user_data = 9;					\
		s.type = ZCUSB_TYPE_BULK;				\
		s.endpoint = d->ep_in;					\
		s.buffer_id = region_id;				\
		s.length = 512;						\
		__VA_ARGS__;						\
		ret = ioctl(d->fd, ZCUSB_IOC_SUBMIT, &s) ? -errno : 0;	\
		CHECK(ret == -(err), "SUBMIT %s -> %s", desc,		\
		      ret ? strerror(-ret) : "0");			\
	} while (0)

	SUB_EXPECT(EINVAL, "iso_packets on a bulk transfer", s.iso_packets = 1);
	SUB_EXPECT(EINVAL, "unknown flag", s.flags = 0x80);
	SUB_EXPECT(EINVAL, "endpoint not in the interface", s.endpoint = 0x85);
	SUB_EXPECT(EINVAL, "interrupt on a bulk endpoint",
		   s.type = ZCUSB_TYPE_INTERRUPT);
	SUB_EXPECT(EINVAL, "unknown type", s.type = 7);
	SUB_EXPECT(EINVAL, "ZERO_PACKET on IN", s.flags = ZCUSB_SUBMIT_ZERO_PACKET);
	SUB_EXPECT(EINVAL, "SHORT_NOT_OK on OUT", s.endpoint = d->ep_out;
		   s.flags = ZCUSB_SUBMIT_SHORT_NOT_OK);
	SUB_EXPECT(EINVAL, "setup bytes on bulk", s.setup[3] = 1);
	SUB_EXPECT(EMSGSIZE, "length above max_transfer", s.length = v.max_transfer + 1);
	SUB_EXPECT(ENOENT, "unknown buffer_id", s.buffer_id = 999);
	SUB_EXPECT(EINVAL, "range past the end of the buffer",
		   s.offset = REGION_LEN - 100);
	SUB_EXPECT(EINVAL, "offset overflow", s.offset = ~0ull - 10);
	SUB_EXPECT(EINVAL, "addr with a buffer_id", s.addr = 4096);
	SUB_EXPECT(EINVAL, "offset without a buffer_id", s.buffer_id = 0;
		   s.offset = 4096);
	SUB_EXPECT(EFAULT, "kernel address", s.buffer_id = 0;
		   s.addr = 0xffff888000000000ull);
	SUB_EXPECT(EFAULT, "address wrap", s.buffer_id = 0; s.addr = ~0ull - 100);
	SUB_EXPECT(EFAULT, "unmapped address", s.buffer_id = 0; s.addr = 4096);
	SUB_EXPECT(EINVAL, "control with an endpoint", s.type = ZCUSB_TYPE_CONTROL;
		   s.setup[0] = 0x80; s.setup[1] = 6; s.setup[6] = 0;
		   s.setup[7] = 2);
	SUB_EXPECT(EINVAL, "control wLength != length", s.type = ZCUSB_TYPE_CONTROL;
		   s.endpoint = 0; s.setup[0] = 0x80; s.setup[1] = 6;
		   s.setup[3] = 1; s.setup[6] = 18);

	ret = ioctl(d->fd, ZCUSB_IOC_REAP, &c) ? -errno : 0;
	CHECK(ret == -EAGAIN, "REAP with nothing completed -> %s", strerror(-ret));
	ret = ioctl(d->fd, _IO('Z', 99)) ? -errno : 0;
	CHECK(ret == -ENOTTY, "unknown ioctl -> %s", strerror(-ret));

#define REG_EXPECT(err, desc, ...) do {					\
		memset(&r, 0, sizeof(r));				\
		r.addr = (uintptr_t)plain;				\
		r.length = PAGE;					\
		__VA_ARGS__;						\
		ret = ioctl(d->fd, ZCUSB_IOC_REGISTER, &r) ? -errno : 0; \
		CHECK(ret == -(err), "REGISTER %s -> %s", desc,	\
		      ret ? strerror(-ret) : "0");			\
		if (!ret)						\
			ioctl(d->fd, ZCUSB_IOC_UNREGISTER, &r.buffer_id); \
	} while (0)

	REG_EXPECT(EINVAL, "unaligned address", r.addr += 8);
	REG_EXPECT(EINVAL, "unaligned length", r.length = 100);
	REG_EXPECT(EINVAL, "zero length", r.length = 0);
	REG_EXPECT(EINVAL, "reserved != 0", r.reserved = 1);
	REG_EXPECT(ENOMEM, "more than max_pinned_mb", r.length = 1ull << 40);
	REG_EXPECT(EFAULT, "kernel address", r.addr = 0xffff888000000000ull);
	REG_EXPECT(EFAULT, "wrapping range", r.addr = ~0ull & ~4095ull;
		   r.length = 2 * PAGE);
	ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REG_EXPECT(EFAULT, "read-only mapping", r.addr = (uintptr_t)ro);
	munmap(ro, PAGE);
	REG_EXPECT(0, "one page", (void)0);

	write_param("max_pinned_mb", "1");
	REG_EXPECT(ENOMEM, "2 MiB with max_pinned_mb=1 (24 MiB already pinned)",
		   r.length = 2 * MiB);
	write_param("max_pinned_mb", "256");

	id = 12345;
	ret = ioctl(d->fd, ZCUSB_IOC_UNREGISTER, &id) ? -errno : 0;
	CHECK(ret == -ENOENT, "UNREGISTER unknown id -> %s", strerror(-ret));

	ret = open(d->node, O_RDWR);
	CHECK(ret < 0 && errno == EBUSY, "second open -> %s",
	      ret < 0 ? strerror(errno) : "opened");
	if (ret >= 0)
		close(ret);
}

void test_cycles(struct dev *d, int n)
{
	struct zcusb_version v;
	struct stats s;
	int i, bad = 0;
	double t = now();

	section = "cycles";
	{
		char buf[128], list[512];
		int r1, r2, r3;

		r1 = write_file(DRV "/unbind", d->intf);
		snprintf(buf, sizeof(buf), "-%s", d->intf);
		r2 = write_file(DRV "/allow", buf);
		r3 = write_file(DRV "/bind", d->intf);
		read_file(DRV "/allow", list, sizeof(list));
		CHECK(!r1 && !r2 && r3 == -ENODEV && !strstr(list, d->intf),
		      "after \"-%s\" bind is refused: %s", d->intf,
		      r3 ? strerror(-r3) : "BOUND");
		snprintf(buf, sizeof(buf), "+%s", d->intf);
		r2 = write_file(DRV "/allow", buf);
		r3 = write_file(DRV "/bind", d->intf);
		CHECK(!r2 && !r3 && !wait_path(d->node, 1, 5),
		      "after \"+%s\" bind works again", d->intf);
		r1 = write_file(DRV "/allow", "+bad/name");
		CHECK(r1 == -EINVAL, "allow rejects a malformed name: %s",
		      r1 ? strerror(-r1) : "accepted");
	}
	for (i = 0; i < n && bad < 3; i++) {
		if (write_file(DRV "/unbind", d->intf) ||
		    wait_path(d->node, 0, 5) || write_file(DRV "/bind", d->intf) ||
		    wait_path(d->node, 1, 5) || dev_open(d)) {
			printf("cycle %d: %s\n", i, strerror(errno));
			bad++;
			continue;
		}
		if (ioctl(d->fd, ZCUSB_IOC_VERSION, &v) ||
		    xsubmit(d->fd, 1, 0, (uintptr_t)plain + (i % 8) * 512, 512,
			    ZCUSB_TYPE_BULK, d->ep_in, 0))
			bad++;
		dev_close(d);	/* release kills the pending IN */
	}
	stats(&s);
	CHECK(!bad && s.pinned == 0,
	      "%d unbind/bind/open/submit/close cycles in %.1fs, %d bad, pinned_pages %lld",
	      i, now() - t, bad, s.pinned);
}
