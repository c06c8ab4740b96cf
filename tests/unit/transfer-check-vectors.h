/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Control requests a claim of one interface may and may not send (dbus/API.md,
 * "Control requests"), as one table of named setup packets. Plain C with no
 * daemon types, so that zcusbd's checker (tests/unit/test-transfer-check.c)
 * and zcusb.ko's run the very same table.
 *
 * Every vector assumes this device and claim:
 *   the claim holds interface 0, its current alternate setting is 0;
 *   interface 0 alt 0 has endpoints 0x81 (bulk IN), 0x02 (bulk OUT),
 *     0x85 and 0x87 (interrupt IN);
 *   interface 0 alt 1 has endpoints 0x83 (iso IN) and 0x04 (iso OUT);
 *   interface 1 (someone else's) has endpoint 0x86 (bulk IN).
 * A refused request completes with -EPERM and never reaches the device; an
 * allowed one is sent as it is (the device may still stall it). wLength is
 * the data stage: the transfer is 8 + wLength bytes. */

#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/types.h>
#else
#include <errno.h>
#include <stdint.h>
#endif

enum control_vector_expect {
        CONTROL_REFUSED,
        CONTROL_ALLOWED,
};

struct control_vector {
        const char *name;
        uint8_t request_type; /* bmRequestType: direction | type << 5 | recipient */
        uint8_t request;      /* bRequest */
        uint16_t value;       /* wValue */
        uint16_t index;       /* wIndex */
        uint16_t length;      /* wLength */
        enum control_vector_expect expect;
};

#define CONTROL_VECTOR(n, t, r, v, i, l, e) \
        { .name = (n), .request_type = (t), .request = (r), .value = (v), .index = (i), .length = (l), .expect = (e) }
#define ALLOW(n, t, r, v, i, l) CONTROL_VECTOR(n, t, r, v, i, l, CONTROL_ALLOWED)
#define REFUSE(n, t, r, v, i, l) CONTROL_VECTOR(n, t, r, v, i, l, CONTROL_REFUSED)

static const struct control_vector control_vectors[] = {
        /* Standard GETs to the device, IN only. */
        ALLOW("GET_STATUS(device)", 0x80, 0x00, 0x0000, 0x0000, 2),
        ALLOW("GET_DESCRIPTOR(DEVICE)", 0x80, 0x06, 0x0100, 0x0000, 18),
        ALLOW("GET_DESCRIPTOR(CONFIGURATION)", 0x80, 0x06, 0x0200, 0x0000, 9),
        ALLOW("GET_DESCRIPTOR(STRING 2, language 0x0409)", 0x80, 0x06, 0x0302, 0x0409, 255),
        ALLOW("GET_DESCRIPTOR(BOS)", 0x80, 0x06, 0x0f00, 0x0000, 5),
        ALLOW("GET_CONFIGURATION", 0x80, 0x08, 0x0000, 0x0000, 1),
        REFUSE("GET_STATUS(device), host-to-device", 0x00, 0x00, 0x0000, 0x0000, 0),
        REFUSE("GET_DESCRIPTOR(DEVICE), host-to-device", 0x00, 0x06, 0x0100, 0x0000, 18),
        REFUSE("GET_CONFIGURATION, host-to-device", 0x00, 0x08, 0x0000, 0x0000, 0),
        REFUSE("GET_INTERFACE to the device", 0x80, 0x0a, 0x0000, 0x0000, 1),
        REFUSE("SYNCH_FRAME to the device", 0x80, 0x0c, 0x0000, 0x0000, 2),

        /* Device-wide state: features, address, configuration, descriptors, link. */
        REFUSE("SET_FEATURE(TEST_MODE, Test_Packet)", 0x00, 0x03, 0x0002, 0x0400, 0),
        REFUSE("SET_FEATURE(TEST_MODE, Test_J)", 0x00, 0x03, 0x0002, 0x0100, 0),
        REFUSE("SET_FEATURE(TEST_MODE) with the IN bit set", 0x80, 0x03, 0x0002, 0x0400, 0),
        REFUSE("SET_FEATURE(TEST_MODE) through interface recipient", 0x01, 0x03, 0x0002, 0x0400, 0),
        REFUSE("SET_FEATURE(DEVICE_REMOTE_WAKEUP)", 0x00, 0x03, 0x0001, 0x0000, 0),
        REFUSE("CLEAR_FEATURE(DEVICE_REMOTE_WAKEUP)", 0x00, 0x01, 0x0001, 0x0000, 0),
        REFUSE("CLEAR_FEATURE(device, selector 0)", 0x00, 0x01, 0x0000, 0x0000, 0),
        REFUSE("SET_FEATURE(U1_ENABLE)", 0x00, 0x03, 0x0030, 0x0000, 0),
        REFUSE("SET_FEATURE(U2_ENABLE)", 0x00, 0x03, 0x0031, 0x0000, 0),
        REFUSE("SET_FEATURE(LTM_ENABLE)", 0x00, 0x03, 0x0032, 0x0000, 0),
        REFUSE("CLEAR_FEATURE(U1_ENABLE)", 0x00, 0x01, 0x0030, 0x0000, 0),
        REFUSE("SET_ADDRESS", 0x00, 0x05, 0x0009, 0x0000, 0),
        REFUSE("SET_CONFIGURATION(1)", 0x00, 0x09, 0x0001, 0x0000, 0),
        REFUSE("SET_CONFIGURATION(0): unconfigure", 0x00, 0x09, 0x0000, 0x0000, 0),
        REFUSE("SET_CONFIGURATION with the IN bit set", 0x80, 0x09, 0x0001, 0x0000, 0),
        REFUSE("SET_DESCRIPTOR(DEVICE)", 0x00, 0x07, 0x0100, 0x0000, 18),
        REFUSE("SET_SEL", 0x00, 0x30, 0x0000, 0x0000, 6),
        REFUSE("SET_ISOCH_DELAY", 0x00, 0x31, 0x0028, 0x0000, 0),
        REFUSE("unknown standard request 0x20 (IN)", 0x80, 0x20, 0x0000, 0x0000, 4),
        REFUSE("unknown standard request 0xff (IN)", 0x80, 0xff, 0x0000, 0x0000, 4),
        REFUSE("unknown standard request 0x0d (OUT)", 0x00, 0x0d, 0x0000, 0x0000, 0),

        /* Standard requests to the claimed interface. */
        ALLOW("GET_STATUS(interface 0)", 0x81, 0x00, 0x0000, 0x0000, 2),
        ALLOW("GET_INTERFACE(interface 0)", 0x81, 0x0a, 0x0000, 0x0000, 1),
        ALLOW("GET_DESCRIPTOR(HID report, interface 0)", 0x81, 0x06, 0x2200, 0x0000, 64),
        REFUSE("SET_INTERFACE(interface 0, alt 1): use SetAltSetting", 0x01, 0x0b, 0x0001, 0x0000, 0),
        REFUSE("SET_INTERFACE(interface 0, alt 0)", 0x01, 0x0b, 0x0000, 0x0000, 0),
        REFUSE("SET_FEATURE(FUNCTION_SUSPEND, interface 0)", 0x01, 0x03, 0x0000, 0x0000, 0),
        REFUSE("CLEAR_FEATURE(interface 0)", 0x01, 0x01, 0x0000, 0x0000, 0),
        REFUSE("GET_STATUS(interface 0), host-to-device", 0x01, 0x00, 0x0000, 0x0000, 0),
        REFUSE("GET_CONFIGURATION to interface 0", 0x81, 0x08, 0x0000, 0x0000, 1),
        REFUSE("SYNCH_FRAME to interface 0", 0x81, 0x0c, 0x0000, 0x0000, 2),
        REFUSE("SET_DESCRIPTOR(HID report, interface 0)", 0x01, 0x07, 0x2200, 0x0000, 8),

        /* Other interfaces. */
        REFUSE("GET_STATUS(interface 1)", 0x81, 0x00, 0x0000, 0x0001, 2),
        REFUSE("GET_DESCRIPTOR(HID report, interface 1)", 0x81, 0x06, 0x2200, 0x0001, 64),
        REFUSE("SET_INTERFACE(interface 1, alt 0)", 0x01, 0x0b, 0x0000, 0x0001, 0),
        REFUSE("class SET_IDLE to interface 1", 0x21, 0x0a, 0x0000, 0x0001, 0),
        REFUSE("class IN to interface 1, interface 0 in the high byte", 0xa1, 0x01, 0x0000, 0x0001, 1),
        REFUSE("vendor OUT to interface 1", 0x41, 0x01, 0x0000, 0x0001, 0),
        REFUSE("vendor IN to interface 1 (wIndex 0x0101)", 0xc1, 0x01, 0x0000, 0x0101, 4),
        REFUSE("vendor OUT to interface 255", 0x41, 0x01, 0x0000, 0x00ff, 0),
        REFUSE("class to interface 0x81 (an endpoint number as interface)", 0x21, 0x01, 0x0000, 0x0081, 0),

        /* Standard requests to the claim's endpoints (current alt setting). */
        ALLOW("GET_STATUS(endpoint 0x81)", 0x82, 0x00, 0x0000, 0x0081, 2),
        ALLOW("GET_STATUS(endpoint 0x02)", 0x82, 0x00, 0x0000, 0x0002, 2),
        ALLOW("GET_STATUS(endpoint 0x85)", 0x82, 0x00, 0x0000, 0x0085, 2),
        ALLOW("SYNCH_FRAME(endpoint 0x81)", 0x82, 0x0c, 0x0000, 0x0081, 2),
        REFUSE("CLEAR_FEATURE(ENDPOINT_HALT, 0x81): use ClearHalt", 0x02, 0x01, 0x0000, 0x0081, 0),
        REFUSE("CLEAR_FEATURE(ENDPOINT_HALT, 0x02): use ClearHalt", 0x02, 0x01, 0x0000, 0x0002, 0),
        REFUSE("CLEAR_FEATURE(ENDPOINT_HALT, 0x81) with the IN bit set", 0x82, 0x01, 0x0000, 0x0081, 0),
        REFUSE("SET_FEATURE(ENDPOINT_HALT, 0x81)", 0x02, 0x03, 0x0000, 0x0081, 0),
        REFUSE("GET_STATUS(endpoint 0x81), host-to-device", 0x02, 0x00, 0x0000, 0x0081, 0),
        REFUSE("GET_DESCRIPTOR to endpoint 0x81", 0x82, 0x06, 0x0100, 0x0081, 18),

        /* Endpoints that are not the claim's now. */
        REFUSE("CLEAR_FEATURE(ENDPOINT_HALT, 0x86): interface 1's", 0x02, 0x01, 0x0000, 0x0086, 0),
        REFUSE("GET_STATUS(endpoint 0x86): interface 1's", 0x82, 0x00, 0x0000, 0x0086, 2),
        REFUSE("CLEAR_FEATURE(ENDPOINT_HALT, 0x83): alt 1 only", 0x02, 0x01, 0x0000, 0x0083, 0),
        REFUSE("GET_STATUS(endpoint 0x83): alt 1 only", 0x82, 0x00, 0x0000, 0x0083, 2),
        REFUSE("GET_STATUS(endpoint 0x04): alt 1 only", 0x82, 0x00, 0x0000, 0x0004, 2),
        REFUSE("GET_STATUS(endpoint 0x01): direction is part of the address", 0x82, 0x00, 0x0000, 0x0001, 2),
        REFUSE("GET_STATUS(endpoint 0x00)", 0x82, 0x00, 0x0000, 0x0000, 2),
        REFUSE("GET_STATUS(endpoint 0x80)", 0x82, 0x00, 0x0000, 0x0080, 2),
        REFUSE("GET_STATUS(endpoint 0x81, reserved high byte set)", 0x82, 0x00, 0x0000, 0x0181, 2),
        REFUSE("class to endpoint 0x86: interface 1's", 0x22, 0x01, 0x0100, 0x0086, 3),
        REFUSE("vendor to endpoint 0x83: alt 1 only", 0x42, 0x01, 0x0000, 0x0083, 0),

        /* Class requests: the claimed interface or its endpoints only. */
        ALLOW("class HID SET_REPORT, interface 0", 0x21, 0x09, 0x0200, 0x0000, 8),
        ALLOW("class HID GET_REPORT, interface 0", 0xa1, 0x01, 0x0100, 0x0000, 8),
        ALLOW("class HID SET_IDLE, interface 0", 0x21, 0x0a, 0x0000, 0x0000, 0),
        ALLOW("class UVC GET_CUR, interface 0, entity 3 in the high byte", 0xa1, 0x81, 0x0200, 0x0300, 2),
        ALLOW("class UAC SET_CUR(sampling frequency), endpoint 0x02", 0x22, 0x01, 0x0100, 0x0002, 3),
        ALLOW("class UAC GET_CUR(sampling frequency), endpoint 0x81", 0xa2, 0x81, 0x0100, 0x0081, 3),
        ALLOW("class request 0x09 to interface 0 (not SET_CONFIGURATION)", 0x21, 0x09, 0x0001, 0x0000, 0),
        REFUSE("class OUT to the device", 0x20, 0x00, 0x0000, 0x0000, 0),
        REFUSE("class hub GET_STATUS to the device", 0xa0, 0x00, 0x0000, 0x0000, 4),
        REFUSE("class hub GET_DESCRIPTOR(HUB) to the device", 0xa0, 0x06, 0x2900, 0x0000, 9),
        REFUSE("class hub SET_HUB_DEPTH to the device", 0x20, 0x0c, 0x0001, 0x0000, 0),

        /* Vendor requests: the device, the claimed interface or its endpoints. */
        ALLOW("vendor OUT 0x5b to the device (SourceSink)", 0x40, 0x5b, 0x0000, 0x0000, 64),
        ALLOW("vendor IN 0x5c to the device (SourceSink)", 0xc0, 0x5c, 0x0000, 0x0000, 64),
        ALLOW("vendor IN to the device, any wValue/wIndex", 0xc0, 0x01, 0x1234, 0x5678, 4),
        ALLOW("vendor OUT to the device, no data stage", 0x40, 0x01, 0x0000, 0x0000, 0),
        ALLOW("vendor OUT 0x05 to the device (not SET_ADDRESS)", 0x40, 0x05, 0x0007, 0x0000, 0),
        ALLOW("vendor OUT 0xa0 firmware load (FX2)", 0x40, 0xa0, 0xe600, 0x0000, 1),
        ALLOW("vendor OUT register write (RTL-SDR)", 0x40, 0x00, 0x2001, 0x0110, 1),
        ALLOW("vendor OUT to interface 0", 0x41, 0x01, 0x0000, 0x0000, 0),
        ALLOW("vendor IN to interface 0, high byte set", 0xc1, 0x01, 0x0000, 0x0500, 4),
        ALLOW("vendor OUT to endpoint 0x81", 0x42, 0x01, 0x0000, 0x0081, 0),
        ALLOW("vendor IN to endpoint 0x02", 0xc2, 0x01, 0x0000, 0x0002, 4),

        /* Recipient 3, "other": hub ports. Never, whatever the type. */
        REFUSE("hub SET_PORT_FEATURE(PORT_RESET, port 1)", 0x23, 0x03, 0x0004, 0x0001, 0),
        REFUSE("hub SET_PORT_FEATURE(PORT_POWER, port 1)", 0x23, 0x03, 0x0008, 0x0001, 0),
        REFUSE("hub CLEAR_PORT_FEATURE(PORT_ENABLE, port 1)", 0x23, 0x01, 0x0001, 0x0001, 0),
        REFUSE("hub SET_PORT_FEATURE(PORT_TEST, port 1)", 0x23, 0x03, 0x0015, 0x0401, 0),
        REFUSE("hub GET_PORT_STATUS(port 1)", 0xa3, 0x00, 0x0000, 0x0001, 4),
        REFUSE("hub CLEAR_TT_BUFFER(port 1)", 0x23, 0x08, 0x0181, 0x0001, 0),
        REFUSE("standard GET_STATUS to 'other'", 0x83, 0x00, 0x0000, 0x0000, 2),
        REFUSE("standard SET_FEATURE to 'other'", 0x03, 0x03, 0x0002, 0x0000, 0),
        REFUSE("vendor OUT to 'other'", 0x43, 0x01, 0x0000, 0x0000, 0),
        REFUSE("vendor IN to 'other'", 0xc3, 0x01, 0x0000, 0x0000, 4),

        /* Reserved recipients 4-31. */
        REFUSE("standard GET_STATUS to recipient 4", 0x84, 0x00, 0x0000, 0x0000, 2),
        REFUSE("class to recipient 4", 0x24, 0x00, 0x0000, 0x0000, 0),
        REFUSE("vendor OUT to recipient 4", 0x44, 0x01, 0x0000, 0x0000, 0),
        REFUSE("vendor IN to recipient 5", 0xc5, 0x01, 0x0000, 0x0000, 4),
        REFUSE("standard GET_DESCRIPTOR to recipient 31", 0x9f, 0x06, 0x0100, 0x0000, 18),
        REFUSE("standard SET_CONFIGURATION to recipient 31", 0x1f, 0x09, 0x0001, 0x0000, 0),
        REFUSE("vendor OUT to recipient 31", 0x5f, 0x01, 0x0000, 0x0000, 0),
        REFUSE("vendor IN to recipient 31", 0xdf, 0x01, 0x0000, 0x0000, 4),
        REFUSE("class IN to recipient 16", 0xb0, 0x01, 0x0000, 0x0000, 4),

        /* Reserved type 3. */
        REFUSE("reserved type to the device, OUT", 0x60, 0x00, 0x0000, 0x0000, 0),
        REFUSE("reserved type to the device, IN", 0xe0, 0x00, 0x0000, 0x0000, 4),
        REFUSE("reserved type to interface 0", 0x61, 0x01, 0x0000, 0x0000, 0),
        REFUSE("reserved type to endpoint 0x81", 0xe2, 0x01, 0x0000, 0x0081, 4),
        REFUSE("reserved type to 'other'", 0x63, 0x03, 0x0004, 0x0001, 0),
};

#undef ALLOW
#undef REFUSE
#undef CONTROL_VECTOR

/* Isochronous ring entries, as the ring carries them: ISO_PACKETS packet
 * descriptors at OFFSET into a 64 KiB buffer, then DATA bytes; every packet
 * PACKET bytes long but the last, LAST bytes. On alt 1 (the current setting
 * for these): 0x83 iso IN, wMaxPacketSize 1024 (read as a SuperSpeed
 * endpoint: up to 16 x 3 x 1024), 0x04 iso OUT, 0x1400 (high bandwidth,
 * 3 x 1024). EXPECT: 0, or the completion's errno (checked as a number: the
 * two checkers must give the same one). */
#define ISO_VECTOR_BUFFER_SIZE (64u * 1024u)

struct iso_vector {
        const char *name;
        uint8_t endpoint;
        uint32_t offset;
        uint32_t iso_packets;
        uint32_t data;
        uint32_t packet;
        uint32_t last;
        int expect;
};

#define ISO_VECTOR(n, ep, off, np, d, p, l, e) \
        { .name = (n), .endpoint = (ep), .offset = (off), .iso_packets = (np), .data = (d), .packet = (p), \
          .last = (l), .expect = (e) }

static const struct iso_vector iso_vectors[] = {
        ISO_VECTOR("one packet", 0x83, 0, 1, 100, 100, 100, 0),
        ISO_VECTOR("8 packets fill the data", 0x04, 0, 8, 800, 100, 100, 0),
        ISO_VECTOR("8 packets in more data than they use", 0x04, 0, 8, 4096, 100, 100, 0),
        ISO_VECTOR("lengths one byte beyond the data", 0x04, 0, 8, 799, 100, 100, -EINVAL),
        ISO_VECTOR("zero-length packets, no data", 0x83, 0, 4, 0, 0, 0, 0),
        ISO_VECTOR("no packets", 0x83, 0, 0, 100, 0, 0, -EINVAL),
        ISO_VECTOR("128 packets", 0x83, 0, 128, 128 * 100, 100, 100, 0),
        ISO_VECTOR("129 packets", 0x83, 0, 129, 129 * 100, 100, 100, -EINVAL),
        ISO_VECTOR("descriptors at offset 2", 0x83, 2, 4, 400, 100, 100, -EINVAL),
        ISO_VECTOR("descriptors at offset 4", 0x83, 4, 4, 400, 100, 100, 0),
        ISO_VECTOR("region ends at the buffer's end", 0x83, 65536 - 64 - 400, 4, 400, 100, 100, 0),
        ISO_VECTOR("region one byte past the buffer", 0x83, 65536 - 64 - 400 + 4, 4, 401, 100, 100, -EFAULT),
        ISO_VECTOR("3 x 1024 on the high-bandwidth endpoint", 0x04, 0, 1, 3072, 3072, 3072, 0),
        ISO_VECTOR("3 x 1024 + 1 on the high-bandwidth endpoint", 0x04, 0, 1, 3073, 3073, 3073, -EMSGSIZE),
        ISO_VECTOR("16 x 3 x 1024 on the SuperSpeed-sized endpoint", 0x83, 0, 1, 49152, 49152, 49152, 0),
        ISO_VECTOR("one byte more than SuperSpeed allows", 0x83, 0, 1, 49153, 49153, 49153, -EMSGSIZE),
        ISO_VECTOR("a 4 GiB - 1 packet after a small one", 0x04, 0, 2, 200, 100, 0xffffffffu, -EMSGSIZE),
        ISO_VECTOR("the most packets at their limit, beyond the data", 0x04, 0, 128, 65536 - 128 * 16, 3072,
                   3072, -EINVAL),
        ISO_VECTOR("iso on the bulk IN endpoint of alt 0", 0x81, 0, 1, 100, 100, 100, -EINVAL),
        ISO_VECTOR("iso on an endpoint of no alt", 0x88, 0, 1, 100, 100, 100, -EINVAL),
};

#undef ISO_VECTOR
