/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>

#include "compat-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The compat library's parser of zcusbd's Descriptors blob (device bytes):
 * byte 0 picks what to parse (bit 7: BOS; else bit 6: by value, bits 0-5:
 * the index or value), the rest is the blob. Every structure built is walked
 * (ASan sees any bad length) and freed (LSan sees any leak). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct libusb_device_descriptor dd;
        struct libusb_config_descriptor *config;
        struct libusb_bos_descriptor *bos;
        const uint8_t *raw;
        size_t raw_size;
        unsigned sum = 0;

        if (size < 1)
                return 0;
        if (data[0] & 0x80) {
                if (compat_parse_bos(data + 1, size - 1, &bos) == 0) {
                        for (unsigned i = 0; i < bos->bNumDeviceCaps; i++)
                                for (unsigned k = 0; k < bos->dev_capability[i]->bLength; k++)
                                        sum += ((const uint8_t *) bos->dev_capability[i])[k];
                        compat_free_bos(bos);
                }
                return (int) (sum & 0);
        }
        (void) compat_parse_device_descriptor(data + 1, size - 1, &dd);
        (void) compat_find_config_raw(data + 1, size - 1, data[0] & 0x3f, &raw, &raw_size);
        if (compat_parse_config(data + 1, size - 1, data[0] & 0x3f, data[0] & 0x40, &config) != 0)
                return 0;
        for (int i = 0; i < config->extra_length; i++)
                sum += config->extra[i];
        for (unsigned i = 0; i < config->bNumInterfaces; i++)
                for (int j = 0; j < config->interface[i].num_altsetting; j++) {
                        const struct libusb_interface_descriptor *a = &config->interface[i].altsetting[j];
                        for (int k = 0; k < a->extra_length; k++)
                                sum += a->extra[k];
                        for (unsigned e = 0; e < a->bNumEndpoints; e++) {
                                sum += a->endpoint[e].bEndpointAddress;
                                for (int k = 0; k < a->endpoint[e].extra_length; k++)
                                        sum += a->endpoint[e].extra[k];
                        }
                }
        compat_free_config(config);
        return (int) (sum & 0);
}
