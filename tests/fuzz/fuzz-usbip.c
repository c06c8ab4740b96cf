/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usbip-proto.h"
#include "vhci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a USB/IP server sends back to OP_REQ_IMPORT, read as the connect
 * helper reads it (8-byte header, then the 312-byte device when the header
 * says so), with the bus id asked for taken from the first byte; and, when
 * the first byte is odd, the rest read as a vhci-hcd status table. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const busids[] = { "1-1", "9-9", "3-2.4", "1-1.1.1.1.1.1" };
        uint8_t header[USBIP_OP_HEADER_SIZE] = {}, device[USBIP_DEVICE_SIZE] = {};
        const char *busid;
        char why[200];
        uint32_t status;
        UsbipDevice d;

        if (size < 1)
                return 0;
        busid = busids[(data[0] >> 1) % 4];
        if (data[0] & 1) {
                VhciPort *ports = NULL;
                size_t n = 0;
                char *text = strndup((const char *) data + 1, size - 1);

                if (text && vhci_parse_status(text, &ports, &n) == 0)
                        for (uint32_t speed = 0; speed < 8; speed++)
                                (void) vhci_pick_port(ports, n, speed, NULL, 0);
                free(ports);
                free(text);
                return 0;
        }
        data++, size--;
        memcpy(header, data, size < sizeof(header) ? size : sizeof(header));
        if (size < sizeof(header) || usbip_parse_reply_header(header, &status, why, sizeof(why)) < 0)
                return 0;
        data += sizeof(header), size -= sizeof(header);
        if (size < sizeof(device))
                return 0;
        memcpy(device, data, sizeof(device));
        if (usbip_parse_device(device, busid, &d, why, sizeof(why)) == 0 &&
            usbip_device_check(&d, busid, why, sizeof(why)) != 0)
                abort(); /* the two checks must agree */
        return 0;
}
