/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>

#include "usb-descriptors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The first byte picks the active configuration; the rest is "descriptors". */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        UsbDescriptors d;

        if (size < 1)
                return 0;
        if (usb_descriptors_parse(data + 1, size - 1, data[0], &d) == 0) {
                for (size_t i = 0; i < d.n_alt_settings; i++)
                        (void) usb_descriptors_find_endpoint(&d, d.alt_settings[i].interface_number,
                                                             d.alt_settings[i].alt_setting, 0x81);
                usb_descriptors_done(&d);
        }
        return 0;
}
