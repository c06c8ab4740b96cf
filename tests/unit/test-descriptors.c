/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "usb-descriptors.h"
#include "util.h"

/* A Gadget-Zero-like device: config 1 with interface 0 alt 0 (bulk 0x81/0x02)
 * and alt 1 (+ iso 0x83/0x04); config 2 with a single interrupt endpoint. */
static const uint8_t gadget[] = {
        /* device */
        18, 1, 0x00, 0x02, 0xff, 0, 0, 64, 0x25, 0x05, 0xa0, 0xa4, 0x00, 0x01, 1, 2, 3, 2,
        /* config 1: wTotalLength = 9 + 9 + 7 + 7 + 9 + 7 + 7 + 7 + 7 + 5 = 74 */
        9, 2, 74, 0, 1, 1, 0, 0x80, 50,
        9, 4, 0, 0, 2, 0xff, 0, 0, 0,
        7, 5, 0x81, 2, 0x00, 0x02, 0,
        7, 5, 0x02, 2, 0x00, 0x02, 0,
        9, 4, 0, 1, 4, 0xff, 0, 0, 0,
        7, 5, 0x81, 2, 0x00, 0x02, 0,
        7, 5, 0x02, 2, 0x00, 0x02, 0,
        7, 5, 0x83, 1, 0x00, 0x04, 4,
        7, 5, 0x04, 1, 0x00, 0x04, 4,
        5, 0x24, 1, 2, 3, /* a class-specific descriptor: skipped */
        /* config 2 */
        9, 2, 25, 0, 1, 2, 0, 0x80, 50,
        9, 4, 3, 0, 1, 3, 1, 1, 0,
        7, 5, 0x85, 3, 8, 0, 10,
};

static void test_parse_active(void) {
        UsbDescriptors d;

        check(usb_descriptors_parse(gadget, sizeof(gadget), 1, &d) == 0);
        check(d.vendor_id == 0x0525 && d.product_id == 0xa4a0 && d.bcd_device == 0x0100);
        check(d.device_class == 0xff && d.n_configurations == 2);
        check(d.configuration_value == 1);
        check(d.n_alt_settings == 2);
        check(d.alt_settings[0].interface_number == 0 && d.alt_settings[0].alt_setting == 0);
        check(d.alt_settings[0].n_endpoints == 2);
        check(d.alt_settings[1].alt_setting == 1 && d.alt_settings[1].n_endpoints == 4);
        check(d.alt_settings[0].endpoints[0].address == 0x81);
        check(d.alt_settings[0].endpoints[0].max_packet_size == 512);

        const UsbEndpoint *e = usb_descriptors_find_endpoint(&d, 0, 1, 0x83);
        check(e && e->max_packet_size == 1024 && e->interval == 4);
        check_streq(usb_endpoint_type_to_string(e->attributes), "isochronous");
        check(!usb_descriptors_find_endpoint(&d, 0, 0, 0x83)); /* only in alt 1 */
        check(!usb_descriptors_find_endpoint(&d, 1, 0, 0x81));
        usb_descriptors_done(&d);

        check(usb_descriptors_parse(gadget, sizeof(gadget), 2, &d) == 0);
        check(d.configuration_value == 2 && d.n_alt_settings == 1);
        check(d.alt_settings[0].interface_number == 3 && d.alt_settings[0].class == 3);
        check_streq(usb_endpoint_type_to_string(d.alt_settings[0].endpoints[0].attributes), "interrupt");
        usb_descriptors_done(&d);

        /* Unconfigured (0) or unknown: the first configuration describes it. */
        check(usb_descriptors_parse(gadget, sizeof(gadget), 0, &d) == 0);
        check(d.configuration_value == 1);
        usb_descriptors_done(&d);

        /* A device descriptor alone is a device without interfaces. */
        check(usb_descriptors_parse(gadget, 18, 1, &d) == 0);
        check(d.n_alt_settings == 0 && d.configuration_value == 0);
        usb_descriptors_done(&d);
}

static void check_bad(const uint8_t *buf, size_t len) {
        UsbDescriptors d;
        check(usb_descriptors_parse(buf, len, 1, &d) == -EBADMSG);
}

static void test_malformed(void) {
        uint8_t b[sizeof(gadget)];

        check_bad(gadget, 0);
        check_bad(gadget, 17);
        check_bad(gadget, 18 + 5);        /* a truncated config header */
        check_bad(gadget, 18 + 73);       /* wTotalLength beyond the data */

        memcpy(b, gadget, sizeof(b));
        b[1] = 2;                         /* not a device descriptor */
        check_bad(b, sizeof(b));

        memcpy(b, gadget, sizeof(b));
        b[18 + 9] = 0;                    /* bLength 0 would loop forever */
        check_bad(b, sizeof(b));

        memcpy(b, gadget, sizeof(b));
        b[18 + 9] = 200;                  /* bLength past the configuration */
        check_bad(b, sizeof(b));

        memcpy(b, gadget, sizeof(b));
        b[18 + 2] = 5;                    /* wTotalLength smaller than the header */
        check_bad(b, sizeof(b));

        memcpy(b, gadget, sizeof(b));
        b[18 + 18 + 2] = 0x80;            /* an endpoint 0 descriptor */
        check_bad(b, sizeof(b));

        memcpy(b, gadget, sizeof(b));
        b[18 + 18] = 6;                   /* a short endpoint descriptor */
        check_bad(b, sizeof(b));
}

static void test_too_many_endpoints(void) {
        uint8_t buf[18 + 9 + 9 + 31 * 7];
        size_t pos = 0, total = 9 + 9 + 31 * 7;
        UsbDescriptors d;

        memcpy(buf, gadget, 18);
        pos = 18;
        uint8_t config[] = { 9, 2, (uint8_t) total, (uint8_t) (total >> 8), 1, 1, 0, 0x80, 50 };
        memcpy(buf + pos, config, 9), pos += 9;
        uint8_t iface[] = { 9, 4, 0, 0, 31, 0xff, 0, 0, 0 };
        memcpy(buf + pos, iface, 9), pos += 9;
        for (int i = 0; i < 31; i++) {
                uint8_t ep[] = { 7, 5, (uint8_t) (1 + i % 15 + (i >= 15 ? 0x80 : 0)), 2, 0, 2, 0 };
                memcpy(buf + pos, ep, 7), pos += 7;
        }
        check(usb_descriptors_parse(buf, pos, 1, &d) == -EBADMSG);
        check(usb_descriptors_parse(buf, pos - 7, 1, &d) == -EBADMSG); /* wTotalLength now too long */
}

int main(void) {
        RUN(test_parse_active);
        RUN(test_malformed);
        RUN(test_too_many_endpoints);
        return 0;
}
