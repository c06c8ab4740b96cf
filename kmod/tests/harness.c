// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb-kmod-test harness: result reporting, sysfs, finding, binding and
 * opening the devices, SUBMIT/REAP helpers, test memory, statistics.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "zcusb-kmod-test.h"

unsigned int passed, failed;
const char *section = "";

uint8_t *region;		/* registered memfd mapping */
uint8_t *plain;			/* another memfd mapping, never registered */
uint32_t region_id;
int zc_disabled;

void result(int ok, const char *fmt, ...)
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

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- sysfs ------------------------------------------------------------ */

int write_file(const char *path, const char *s)
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

int read_file(const char *path, char *buf, size_t len)
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

int write_param(const char *name, const char *val)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/module/zcusb/parameters/%s", name);
	return write_file(path, val);
}

void stats(struct stats *s)
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

int find_intf(struct dev *d)
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

int wait_path(const char *path, int present, double secs)
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
int bind_zcusb(struct dev *d)
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
void find_eps(struct dev *d)
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

int setup_dev(struct dev *d)
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

int dev_open(struct dev *d)
{
	d->fd = open(d->node, O_RDWR | O_CLOEXEC);
	return d->fd < 0 ? -errno : 0;
}

void dev_close(struct dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* --- transfers -------------------------------------------------------- */

/* where: an offset into registered buffer bid, or (bid 0) a user address */
void fill_submit(struct zcusb_submit *s, uint64_t ud, uint32_t bid,
		 uint64_t where, uint32_t len, uint8_t type, uint8_t ep,
		 uint16_t flags)
{
	memset(s, 0, sizeof(*s));
	s->user_data = ud;
	s->buffer_id = bid;
	if (bid)
		s->offset = where;
	else
		s->addr = where;
	s->length = len;
	s->type = type;
	s->endpoint = ep;
	s->flags = flags;
}

int xsubmit(int fd, uint64_t ud, uint32_t bid, uint64_t where, uint32_t len,
	    uint8_t type, uint8_t ep, uint16_t flags)
{
	struct zcusb_submit s;

	fill_submit(&s, ud, bid, where, len, type, ep, flags);
	return ioctl(fd, ZCUSB_IOC_SUBMIT, &s) ? -errno : 0;
}

int xreap(int fd, struct zcusb_completion *c, int timeout_ms)
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
int reap_n(int fd, struct zcusb_completion *out, int n, int timeout_ms)
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

void *map_memfd(const char *name, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	void *p;

	if (fd < 0 || ftruncate(fd, len))
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

int do_register(int fd, void *addr, uint64_t len, uint32_t *id)
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

static uint32_t rng = 12345;

uint8_t rnd8(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

void check_stats(const struct stats *a, const struct stats *b, size_t bounced,
		 size_t total, const char *what)
{
	long long db = b->bounced - a->bounced, dz = b->zc - a->zc;

	CHECK(db == (long long)bounced && dz == (long long)(total - bounced),
	      "%s: stats bounced +%lld (want %zu), zerocopy +%lld (want %zu)",
	      what, db, bounced, dz, total - bounced);
}
