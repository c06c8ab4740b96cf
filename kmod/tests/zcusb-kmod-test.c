// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb-kmod-test: exercises zcusb.ko on dummy_hcd gadgets (run by
 * run-kmod-tests.sh inside a QEMU guest, as root).
 *
 *   zcusb-kmod-test --loopback GADGET_DIR --sourcesink GADGET_DIR
 *                   [--cycles N] [--module NAME]
 *
 * GADGET_DIR is the configfs directory of the gadget (its UDC file is used
 * to unplug and replug the device). The host side is found by VID:PID:
 * Loopback 0525:a4a1 (bulk OUT echoed on bulk IN), SourceSink 0525:a4a0
 * with pattern=1 (bulk IN sends (i % maxpacket) % 63, bulk OUT checks the
 * same and halts on a mismatch). Endpoint addresses are read from sysfs.
 *
 * Prints "ok"/"FAIL" lines, a closing "N passed, N failed" line and the
 * marker line "ZCUSB-KMOD-TEST: PASS" (or FAIL). Exit 0 only on PASS.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../zcusb_abi.h"

#define DRV "/sys/bus/usb/drivers/zcusb"
#define MiB (1024u * 1024u)
#define PAGE 4096u
#define LINE 64u		/* x86-64 L1_CACHE_BYTES */
#define LOOP_BUFLEN 65536u	/* Loopback bulk_buflen set by the runner */

#define REGION_LEN (24u * MiB)
#define IN_AREA (10u * MiB)

static unsigned int passed, failed;
static const char *section = "";

static void result(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s %s: ", ok ? "ok  " : "FAIL", section);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (ok)
		passed++;
	else
		failed++;
}

#define CHECK(cond, ...) result(!!(cond), __VA_ARGS__)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- sysfs ------------------------------------------------------------ */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	return 0;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

static int write_param(const char *name, const char *val)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/module/zcusb/parameters/%s", name);
	return write_file(path, val);
}

struct stats {
	long long zc, bounced, urbs, pinned;
};

static void stats(struct stats *s)
{
	char buf[512];

	memset(s, 0, sizeof(*s));
	if (read_file(DRV "/stats", buf, sizeof(buf)) ||
	    sscanf(buf, "zerocopy_bytes %lld\nbounced_bytes %lld\nurbs %lld\npinned_pages %lld",
		   &s->zc, &s->bounced, &s->urbs, &s->pinned) != 4) {
		printf("cannot read %s/stats\n", DRV);
		s->pinned = -1;
	}
}

/* --- devices ---------------------------------------------------------- */

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

static int find_intf(struct dev *d)
{
	char path[512], v[32], p[32], want_v[8], want_p[8];
	struct dirent *de;
	DIR *dir = opendir("/sys/bus/usb/devices");

	sscanf(d->vidpid, "%7s %7s", want_v, want_p);
	if (!dir)
		return -1;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || strchr(de->d_name, ':'))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/idVendor",
			 de->d_name);
		if (read_file(path, v, sizeof(v)))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/idProduct",
			 de->d_name);
		if (read_file(path, p, sizeof(p)))
			continue;
		if (!strcmp(v, want_v) && !strcmp(p, want_p)) {
			snprintf(d->intf, sizeof(d->intf), "%.40s:1.0",
				 de->d_name);
			snprintf(d->node, sizeof(d->node), "/dev/zcusb/%.60s",
				 d->intf);
			closedir(dir);
			return 0;
		}
	}
	closedir(dir);
	return -1;
}

static int wait_path(const char *path, int present, double secs)
{
	double end = now() + secs;

	while (now() < end) {
		if ((access(path, F_OK) == 0) == present)
			return 0;
		usleep(20000);
	}
	return -1;
}

static int bound_to_zcusb(struct dev *d)
{
	char path[256], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/driver", d->intf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = 0;
	return strcmp(strrchr(link, '/') + 1, "zcusb") == 0;
}

/* The documented sequence: allow, new_id, unbind elsewhere, bind. */
static int bind_zcusb(struct dev *d)
{
	char buf[128], path[256];
	int ret;

	snprintf(buf, sizeof(buf), "+%s", d->intf);
	ret = write_file(DRV "/allow", buf);
	if (ret)
		return ret;
	ret = write_file(DRV "/new_id", d->vidpid);
	if (ret && ret != -EEXIST)
		return ret;
	if (!bound_to_zcusb(d)) {
		snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/driver/unbind",
			 d->intf);
		write_file(path, d->intf);	/* bound elsewhere: take it */
		ret = write_file(DRV "/bind", d->intf);
		if (ret && !bound_to_zcusb(d))
			return ret;
	}
	return wait_path(d->node, 1, 10);
}

/* Find the bulk endpoints of the interface and the IN one's max packet. */
static void find_eps(struct dev *d)
{
	char dir[128], path[512], buf[32], type[32];
	struct dirent *de;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/sys/bus/usb/devices/%s", d->intf);
	dp = opendir(dir);
	if (!dp)
		return;
	while ((de = readdir(dp))) {
		unsigned int addr;

		if (strncmp(de->d_name, "ep_", 3))
			continue;
		snprintf(path, sizeof(path), "%s/%s/type", dir, de->d_name);
		if (read_file(path, type, sizeof(type)) || strcmp(type, "Bulk"))
			continue;
		addr = strtoul(de->d_name + 3, NULL, 16);
		if (addr & 0x80) {
			d->ep_in = addr;
			snprintf(path, sizeof(path), "%s/%s/wMaxPacketSize", dir,
				 de->d_name);
			if (!read_file(path, buf, sizeof(buf)))
				d->mp = strtoul(buf, NULL, 16) & 0x7ff;
		} else {
			d->ep_out = addr;
		}
	}
	closedir(dp);
}

static int setup_dev(struct dev *d)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/UDC", d->gadget);
	if (read_file(path, d->udc, sizeof(d->udc)) || !d->udc[0]) {
		printf("%s: gadget %s is not bound to a UDC\n", d->what, d->gadget);
		return -1;
	}
	if (find_intf(d)) {
		printf("%s: no host device %s\n", d->what, d->vidpid);
		return -1;
	}
	find_eps(d);
	d->fd = -1;
	printf("%s: %s, bulk IN %#x OUT %#x, wMaxPacketSize %u\n", d->what,
	       d->intf, d->ep_in, d->ep_out, d->mp);
	return 0;
}

static int dev_open(struct dev *d)
{
	d->fd = open(d->node, O_RDWR | O_CLOEXEC);
	return d->fd < 0 ? -errno : 0;
}

static void dev_close(struct dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* --- transfers -------------------------------------------------------- */

static int xsubmit(int fd, uint64_t ud, uint32_t bid, uint64_t where,
		   uint32_t len, uint8_t type, uint8_t ep, uint16_t flags)
{
	struct zcusb_submit s;

	memset(&s, 0, sizeof(s));
	s.user_data = ud;
	s.buffer_id = bid;
	if (bid)
		s.offset = where;
	else
		s.addr = where;
	s.length = len;
	s.type = type;
	s.endpoint = ep;
	s.flags = flags;
	return ioctl(fd, ZCUSB_IOC_SUBMIT, &s) ? -errno : 0;
}

static int xreap(int fd, struct zcusb_completion *c, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	double end = now() + timeout_ms / 1000.0;

	for (;;) {
		if (ioctl(fd, ZCUSB_IOC_REAP, c) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		if (now() >= end)
			return -ETIMEDOUT;
		poll(&p, 1, 100);
	}
}

/* reap n completions, store them by user_data 1..n */
static int reap_n(int fd, struct zcusb_completion *out, int n, int timeout_ms)
{
	struct zcusb_completion c;
	int i, ret;

	for (i = 0; i < n; i++) {
		ret = xreap(fd, &c, timeout_ms);
		if (ret)
			return ret;
		if (c.user_data < 1 || c.user_data > (uint64_t)n)
			return -EINVAL;
		out[c.user_data - 1] = c;
	}
	return 0;
}

static uint8_t *region;		/* registered memfd mapping */
static uint8_t *plain;		/* another memfd mapping, never registered */
static uint32_t region_id;
static int zc_disabled;

static void *map_memfd(const char *name, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	void *p;

	if (fd < 0 || ftruncate(fd, len))
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static int do_register(int fd, void *addr, uint64_t len, uint32_t *id)
{
	struct zcusb_register r;

	memset(&r, 0, sizeof(r));
	r.addr = (uintptr_t)addr;
	r.length = len;
	if (ioctl(fd, ZCUSB_IOC_REGISTER, &r))
		return -errno;
	*id = r.buffer_id;
	return 0;
}

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

static uint32_t rng = 12345;

static uint8_t rnd8(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void check_stats(const struct stats *a, const struct stats *b,
			size_t bounced, size_t total, const char *what)
{
	long long db = b->bounced - a->bounced, dz = b->zc - a->zc;

	CHECK(db == (long long)bounced && dz == (long long)(total - bounced),
	      "%s: stats bounced +%lld (want %zu), zerocopy +%lld (want %zu)",
	      what, db, bounced, dz, total - bounced);
}

/*
 * Loopback round trip: OUT n bytes at byte @off of the OUT area, IN into
 * the IN area at the same offset; the data must come back byte for byte
 * and nothing outside the IN range may change.
 */
static void loop_roundtrip(struct dev *d, int registered, size_t n, size_t off)
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

static void test_loopback(struct dev *d)
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

static void test_split(struct dev *d)
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

static void test_copy_mode(struct dev *d)
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

static void test_sourcesink(struct dev *d)
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

	memset(&s, 0, sizeof(s));
	s.user_data = 77;
	s.buffer_id = bid;
	if (bid)
		s.offset = where;
	else
		s.addr = where;
	s.length = len;
	s.type = ZCUSB_TYPE_CONTROL;
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

static void test_control(struct dev *d)
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
	CHECK(ret == -EINVAL, "SET_INTERFACE through control refused (use SET_ALT): %s",
	      strerror(-ret));
	ret = ctrl(d->fd, 0, 0, 0x81, 0, 0, 5, 2, &c);
	CHECK(ret == -EPERM, "request to another interface refused: %s",
	      strerror(-ret));
}

static void test_validation(struct dev *d)
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

	SUB_EXPECT(EINVAL, "reserved != 0", s.reserved = 1);
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

static void test_cancel(struct dev *d)
{
	struct pollfd p = { .fd = d->fd, .events = POLLIN };
	struct zcusb_completion c;
	struct zcusb_alt alt = { 0, 0 };
	uint64_t ud = 0xfeed;
	int ret;

	section = "cancel";
	ret = xsubmit(d->fd, ud, region_id, IN_AREA, 4096, ZCUSB_TYPE_BULK,
		      d->ep_in, 0);
	CHECK(ret == 0, "IN with nothing to read submitted: %d", ret);
	CHECK(poll(&p, 1, 300) == 0, "poll: nothing completed yet");
	ret = ioctl(d->fd, ZCUSB_IOC_UNREGISTER, &region_id) ? -errno : 0;
	CHECK(ret == -EBUSY, "UNREGISTER of a buffer in use -> %s", strerror(-ret));
	ret = ioctl(d->fd, ZCUSB_IOC_SET_ALT, &alt) ? -errno : 0;
	CHECK(ret == -EBUSY, "SET_ALT while a transfer is pending -> %s",
	      strerror(-ret));
	ret = ioctl(d->fd, ZCUSB_IOC_CANCEL, &ud) ? -errno : 0;
	CHECK(ret == 0, "CANCEL -> %s", ret ? strerror(-ret) : "0");
	ret = xreap(d->fd, &c, 5000);
	CHECK(!ret && c.user_data == ud && c.status == -ECANCELED &&
	      c.actual_length == 0, "cancelled IN completes: status %d (%s) actual %u",
	      c.status, strerror(-c.status), c.actual_length);
	ret = ioctl(d->fd, ZCUSB_IOC_CANCEL, &ud) ? -errno : 0;
	CHECK(ret == -ENOENT, "CANCEL of nothing pending -> %s", strerror(-ret));
	ret = ioctl(d->fd, ZCUSB_IOC_SET_ALT, &alt) ? -errno : 0;
	CHECK(ret == 0, "SET_ALT 0 when idle -> %s", ret ? strerror(-ret) : "0");
	alt.alt_setting = 5;
	ret = ioctl(d->fd, ZCUSB_IOC_SET_ALT, &alt) ? -errno : 0;
	CHECK(ret == -EINVAL, "SET_ALT 5 (no such altsetting) -> %s", strerror(-ret));
	{
		uint32_t ep = d->ep_in;

		ret = ioctl(d->fd, ZCUSB_IOC_CLEAR_HALT, &ep) ? -errno : 0;
		CHECK(ret == 0, "CLEAR_HALT %#x -> %s", ep, ret ? strerror(-ret) : "0");
		ep = 0x83;
		ret = ioctl(d->fd, ZCUSB_IOC_CLEAR_HALT, &ep) ? -errno : 0;
		CHECK(ret == -EINVAL, "CLEAR_HALT of a foreign endpoint -> %s",
		      strerror(-ret));
	}
	loop_roundtrip(d, 1, 4096, 0);	/* still works after all that */
}

static void test_sigkill(struct dev *d)
{
	struct stats s;
	int pfd[2], status;
	char ch;
	pid_t pid;
	double end;

	section = "sigkill";
	if (pipe(pfd))
		return;
	pid = fork();
	if (pid == 0) {
		uint8_t *m = map_memfd("child", 8 * MiB);
		uint8_t *m2 = map_memfd("child2", MiB);
		uint32_t id;

		close(pfd[0]);
		if (!m || !m2 || dev_open(d) || do_register(d->fd, m, 8 * MiB, &id) ||
		    xsubmit(d->fd, 1, id, 0, 65536, ZCUSB_TYPE_BULK, d->ep_in, 0) ||
		    xsubmit(d->fd, 2, 0, (uintptr_t)m2, 65536, ZCUSB_TYPE_BULK,
			    d->ep_in, 0))
			_exit(1);
		if (write(pfd[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	if (read(pfd[0], &ch, 1) != 1) {
		CHECK(0, "child could not open/register/submit");
		waitpid(pid, &status, 0);
		close(pfd[0]);
		return;
	}
	close(pfd[0]);
	stats(&s);
	CHECK(s.pinned == 2048 + 16, "child holds %lld pinned pages (8 MiB registered + 64 KiB in flight)",
	      s.pinned);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	end = now() + 5;
	do {
		stats(&s);
		if (s.pinned == 0)
			break;
		usleep(20000);
	} while (now() < end);
	CHECK(WIFSIGNALED(status) && s.pinned == 0,
	      "after SIGKILL: pinned_pages %lld", s.pinned);
}

static void test_unplug(struct dev *d)
{
	char path[300];
	struct pollfd p;
	struct zcusb_completion c;
	int ret;
	double t;

	section = "unplug";
	if (dev_open(d)) {
		CHECK(0, "open %s: %s", d->node, strerror(errno));
		return;
	}
	ret = xsubmit(d->fd, 3, 0, (uintptr_t)plain, 8192, ZCUSB_TYPE_BULK,
		      d->ep_in, 0);
	CHECK(ret == 0, "IN pending before unplug: %d", ret);
	snprintf(path, sizeof(path), "%s/UDC", d->gadget);
	CHECK(write_file(path, "\n") == 0, "gadget unbound from %s", d->udc);
	p.fd = d->fd;
	p.events = POLLIN;
	t = now();
	/* the completion may wake us before disconnect() has finished */
	do {
		p.revents = 0;
		ret = poll(&p, 1, 500);
	} while (!(p.revents & POLLHUP) && now() - t < 15);
	CHECK(ret == 1 && (p.revents & POLLHUP) && (p.revents & POLLERR) &&
	      (p.revents & POLLIN),
	      "poll after unplug: revents %#x (IN|ERR|HUP) after %.2fs",
	      p.revents, now() - t);
	ret = xreap(d->fd, &c, 1000);
	CHECK(!ret && c.user_data == 3 && c.status == -ENODEV,
	      "pending IN completed with %d (%s)", ret ? ret : c.status,
	      strerror(-(ret ? ret : c.status)));
	ret = xsubmit(d->fd, 4, 0, (uintptr_t)plain, 512, ZCUSB_TYPE_BULK,
		      d->ep_in, 0);
	CHECK(ret == -ENODEV, "SUBMIT after unplug -> %s", strerror(-ret));
	ret = ioctl(d->fd, ZCUSB_IOC_REAP, &c) ? -errno : 0;
	CHECK(ret == -ENODEV, "REAP after unplug, nothing left -> %s",
	      strerror(-ret));
	dev_close(d);
	CHECK(write_file(path, d->udc) == 0, "gadget bound to %s again", d->udc);
	/* same port, same name: the dynamic id and the allow list bind it */
	CHECK(wait_path(d->node, 1, 30) == 0, "%s is back after replug", d->node);
}

static void test_cycles(struct dev *d, int n)
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

/*
 * xHCI (no_sg_constraint, real DMA mapping): QEMU's usb-storage, driven
 * with bulk-only transport. The disk image holds byte (lba * 7 + i) & 0xff
 * at byte i of sector lba (run-kmod-tests.sh writes it).
 */
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

static void test_xhci(struct dev *d)
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

static void test_rmmod(struct dev *d, const char *module)
{
	int ret;

	section = "rmmod";
	if (dev_open(d)) {
		CHECK(0, "open: %s", strerror(errno));
		return;
	}
	ret = syscall(SYS_delete_module, module, O_NONBLOCK) ? errno : 0;
	CHECK(ret == EWOULDBLOCK || ret == EBUSY, "rmmod while open refused: %s",
	      ret ? strerror(ret) : "UNLOADED");
	dev_close(d);
	ret = syscall(SYS_delete_module, module, O_NONBLOCK) ? errno : 0;
	CHECK(ret == 0, "rmmod after close: %s", ret ? strerror(ret) : "ok");
	CHECK(access("/sys/module/zcusb", F_OK) != 0 && access(d->node, F_OK) != 0,
	      "module and device node gone");
}

int main(int argc, char **argv)
{
	struct dev loop = { .what = "loopback", .vidpid = "0525 a4a1", .fd = -1 };
	struct dev ss = { .what = "sourcesink", .vidpid = "0525 a4a0", .fd = -1 };
	struct dev stor = { .what = "usb-storage", .vidpid = "46f4 0001", .fd = -1 };
	int storage = 0;
	const char *module = "zcusb";
	struct stats s;
	int cycles = 1000, i, ret;
	double t0 = now();

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--loopback"))
			snprintf(loop.gadget, sizeof(loop.gadget), "%s", argv[i + 1]);
		else if (!strcmp(argv[i], "--sourcesink"))
			snprintf(ss.gadget, sizeof(ss.gadget), "%s", argv[i + 1]);
		else if (!strcmp(argv[i], "--cycles"))
			cycles = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--module"))
			module = argv[i + 1];
		else if (!strcmp(argv[i], "--storage"))
			storage = atoi(argv[i + 1]);
	}
	if (!loop.gadget[0] || !ss.gadget[0]) {
		fprintf(stderr, "usage: %s --loopback DIR --sourcesink DIR [--cycles N]\n",
			argv[0]);
		return 2;
	}

	section = "setup";
	region = map_memfd("zcusb-test", REGION_LEN);
	plain = map_memfd("zcusb-plain", REGION_LEN);
	CHECK(region && plain, "memfd buffers mapped");
	if (!region || !plain || setup_dev(&loop) || setup_dev(&ss))
		goto out;
	CHECK(loop.mp == 512 && ss.mp == 512, "wMaxPacketSize %u/%u (high speed)",
	      loop.mp, ss.mp);
	ret = bind_zcusb(&loop);
	CHECK(ret == 0, "bind %s (%s): %s", loop.intf, loop.what,
	      ret ? strerror(-ret) : "ok");
	ret = bind_zcusb(&ss);
	CHECK(ret == 0, "bind %s (%s): %s", ss.intf, ss.what,
	      ret ? strerror(-ret) : "ok");
	{
		char buf[256];

		char *nl;

		read_file(DRV "/allow", buf, sizeof(buf));
		while ((nl = strchr(buf, '\n')))
			*nl = ' ';
		CHECK(strstr(buf, loop.intf) && strstr(buf, ss.intf),
		      "allow lists %s", buf);
	}
	if (failed || dev_open(&loop) || dev_open(&ss)) {
		CHECK(0, "open: %s", strerror(errno));
		goto out;
	}
	ret = do_register(loop.fd, region, REGION_LEN, &region_id);
	CHECK(ret == 0 && region_id > 0, "REGISTER %u MiB memfd -> id %u",
	      REGION_LEN / MiB, region_id);
	stats(&s);
	CHECK(s.pinned == REGION_LEN / PAGE, "pinned_pages %lld", s.pinned);

	test_validation(&loop);
	test_loopback(&loop);
	test_split(&loop);
	test_copy_mode(&loop);
	test_cancel(&loop);

	/* SourceSink gets the registered range on its own fd */
	{
		uint32_t lid = region_id;

		ret = do_register(ss.fd, region, REGION_LEN, &region_id);
		CHECK(ret == 0, "REGISTER on the SourceSink fd -> id %u", region_id);
		test_sourcesink(&ss);
		test_control(&ss);
		region_id = lid;
	}
	dev_close(&ss);
	dev_close(&loop);
	section = "close";
	stats(&s);
	CHECK(s.pinned == 0, "pinned_pages back to %lld after close", s.pinned);

	if (storage) {
		section = "xhci";
		if (find_intf(&stor)) {
			CHECK(0, "no usb-storage device %s on xHCI", stor.vidpid);
		} else {
			find_eps(&stor);
			test_xhci(&stor);
		}
	}
	test_sigkill(&loop);
	test_unplug(&loop);
	test_cycles(&loop, cycles);
	stats(&s);
	printf("stats: zerocopy_bytes %lld bounced_bytes %lld urbs %lld pinned_pages %lld\n",
	       s.zc, s.bounced, s.urbs, s.pinned);
	test_rmmod(&loop, module);
out:
	printf("test time %.1fs\n", now() - t0);
	printf("%u passed, %u failed\n", passed, failed);
	printf("ZCUSB-KMOD-TEST: %s\n", failed || !passed ? "FAIL" : "PASS");
	return failed || !passed ? 1 : 0;
}
