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
 * With --storage 1, the xHCI's devices too: QEMU's usb-storage 46f4:0001,
 * its usb-audio 46f4:0002 (iso OUT) and zcusb-isodev 1209:0001 (iso IN,
 * tests/vm/tools/zcusb-isodev.h).
 *
 * Prints "ok"/"FAIL" lines, a closing "N passed, N failed" line and the
 * marker line "ZCUSB-KMOD-TEST: PASS" (or FAIL). Exit 0 only on PASS.
 *
 * This file runs the sections in order; zcusb-kmod-test.h says which
 * source holds what.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zcusb-kmod-test.h"

int main(int argc, char **argv)
{
	struct dev loop = { .what = "loopback", .vidpid = "0525 a4a1", .fd = -1 };
	struct dev ss = { .what = "sourcesink", .vidpid = "0525 a4a0", .fd = -1 };
	struct dev stor = { .what = "usb-storage", .vidpid = "46f4 0001", .fd = -1 };
	struct dev audio = { .what = "usb-audio", .vidpid = "46f4 0002", .fd = -1 };
	struct dev isodev = { .what = "zcusb-isodev", .vidpid = "1209 0001", .fd = -1 };
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
	if (!region || !plain)
		goto out;
	/* A gadget that is not there is a failure, never an empty pass. */
	ret = setup_dev(&loop);
	CHECK(ret == 0, "%s gadget %s found on the host", loop.what, loop.gadget);
	if (ret)
		goto out;
	ret = setup_dev(&ss);
	CHECK(ret == 0, "%s gadget %s found on the host", ss.what, ss.gadget);
	if (ret)
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
	test_queue(&loop);
	test_queue_doorbell(&loop);
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
		section = "iso";
		if (find_intf(&audio)) {
			CHECK(0, "no usb-audio device %s on xHCI", audio.vidpid);
		} else {
			/* its streaming interface: 1 */
			audio.intf[strlen(audio.intf) - 1] = '1';
			audio.node[strlen(audio.node) - 1] = '1';
			test_iso(&audio);
		}
		/* through QEMU's usb-redir from the host: its attach may come late */
		section = "iso-in";
		for (i = 0; i < 100 && find_intf(&isodev); i++)
			usleep(100000);
		if (find_intf(&isodev))
			CHECK(0, "no zcusb-isodev %s on xHCI after 10 s (run-kmod-tests.sh's usb-redir)",
			      isodev.vidpid);
		else
			test_iso_in(&isodev);
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
