/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "devspec.h"
#include "tests.h"
#include "util.h"

static void test_valid(void) {
        DevSpec s;

        check(devspec_parse("/org/zcusb1/device/usb1_3", &s, NULL) == 0);
        check(s.kind == DEVSPEC_OBJECT_PATH);
        check_streq(s.path, "/org/zcusb1/device/usb1_3");

        check(devspec_parse("001:003", &s, NULL) == 0);
        check(s.kind == DEVSPEC_BUS_ADDRESS && s.bus == 1 && s.address == 3);
        check(devspec_parse("2:127", &s, NULL) == 0);
        check(s.kind == DEVSPEC_BUS_ADDRESS && s.bus == 2 && s.address == 127);

        check(devspec_parse("0525:a4a0", &s, NULL) == 0);
        check(s.kind == DEVSPEC_VID_PID && s.vendor_id == 0x0525 && s.product_id == 0xa4a0 && !s.serial);
        check(devspec_parse("0525:A4A0:SN:12", &s, NULL) == 0); /* a serial may contain ':' */
        check(s.kind == DEVSPEC_VID_PID && s.product_id == 0xa4a0);
        check_streq(s.serial, "SN:12");

        check(devspec_parse("/sys/bus/usb/devices/1-1.2", &s, NULL) == 0);
        check(s.kind == DEVSPEC_SYSFS);
        check_streq(devspec_sysfs_name(s.path), "1-1.2");
        check(devspec_parse("/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1", &s, NULL) == 0);
        check_streq(devspec_sysfs_name(s.path), "1-1");
}

static void check_invalid(const char *s) {
        const char *why = NULL;
        DevSpec spec;

        if (devspec_parse(s, &spec, &why) != -EINVAL || !why) {
                fprintf(stderr, "'%s' was accepted\n", s);
                abort();
        }
}

static void test_invalid(void) {
        check_invalid("");
        check_invalid("zz:1");
        check_invalid("1:");
        check_invalid(":1");
        check_invalid("1:2:3");
        check_invalid("0:1");      /* no bus 0 */
        check_invalid("1:0");      /* no address 0 */
        check_invalid("1:128");    /* addresses end at 127 */
        check_invalid("1234:3");   /* neither BUS:ADDR nor VID:PID */
        check_invalid("0525:a4a");
        check_invalid("0525:a4a0x");
        check_invalid("0525:a4a0:");
        check_invalid("/org/zcusb1/device/");
        check_invalid("/org/zcusb1/device/a-b");
        check_invalid("/org/zcusb1/device/a//b");
        check_invalid("/dev/bus/usb/001/003");
        check_invalid("/sys/bus/usb/devices/");
        check_invalid("usb1_3");
}

int main(void) {
        RUN(test_valid);
        RUN(test_invalid);
        return 0;
}
