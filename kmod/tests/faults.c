// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb-kmod-test, faults: CANCEL, SET_ALT and CLEAR_HALT, an opener
 * killed with transfers in flight, unplug with a pending IN, rmmod.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zcusb-kmod-test.h"

void test_cancel(struct dev *d)
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

void test_sigkill(struct dev *d)
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

void test_unplug(struct dev *d)
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

void test_rmmod(struct dev *d, const char *module)
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
