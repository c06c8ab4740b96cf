/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The claim the transfer-check tests check against: interface 0 (alt
 * settings 0 and 1) of a device that also has interface 1 (someone else's),
 * buffers 1 (64 KiB), 2 (4 KiB) and 3 (4 GiB). One copy per test program. */
#include <errno.h>
#include <stdint.h>

#include "transfer-check.h"
#include "util.h"

#define KIB 1024u
#define GIB (UINT32_C(1) << 30)

static UsbAltSetting alt_settings[] = {
        {
                .interface_number = 0, .alt_setting = 0, .class = 0xff, .n_endpoints = 4,
                .endpoints = {
                        { .address = 0x81, .attributes = 2, .max_packet_size = 512 },
                        { .address = 0x02, .attributes = 2, .max_packet_size = 512 },
                        { .address = 0x85, .attributes = 3, .max_packet_size = 64, .interval = 4 },
                        { .address = 0x87, .attributes = 3, .max_packet_size = 0, .interval = 4 }, /* broken device */
                },
        },
        {
                .interface_number = 0, .alt_setting = 1, .class = 0xff, .n_endpoints = 2,
                .endpoints = {
                        { .address = 0x83, .attributes = 1 | (1 << 2), .max_packet_size = 1024, .interval = 1 },
                        { .address = 0x04, .attributes = 1 | (1 << 2), .max_packet_size = 0x1400, .interval = 1 },
                },
        },
        {
                .interface_number = 1, .alt_setting = 0, .class = 0xff, .n_endpoints = 1,
                .endpoints = {
                        { .address = 0x86, .attributes = 2, .max_packet_size = 512 },
                },
        },
};

static UsbDescriptors descriptors = {
        .bcd_usb = 0x0200,
        .max_packet_size0 = 64,
        .vendor_id = 0x1d6b,
        .product_id = 0x0104,
        .n_configurations = 1,
        .configuration_value = 1,
        .n_alt_settings = ELEMENTSOF(alt_settings),
        .alt_settings = alt_settings,
};

static inline int buffer_size(void *userdata, uint32_t id, uint64_t *ret) {
        unsigned *calls = userdata;

        (*calls)++;
        switch (id) {
        case 1: *ret = 64 * KIB; return 0;
        case 2: *ret = 4 * KIB; return 0;
        case 3: *ret = UINT64_C(4) << 30; return 0; /* big enough that only the length rules bite */
        default: return -ENOENT;
        }
}

static unsigned buffer_calls;

static inline TransferContext ctx_for(uint8_t alt) {
        return (TransferContext) {
                .interface_number = 0,
                .alt_setting = alt,
                .descriptors = &descriptors,
                .buffer_size = buffer_size,
                .userdata = &buffer_calls,
        };
}

static inline struct zcusb_sqe sqe_for(uint8_t opcode, uint8_t endpoint, uint32_t length) {
        return (struct zcusb_sqe) {
                .opcode = opcode,
                .endpoint = endpoint,
                .buffer_id = 1,
                .offset = 0,
                .length = length,
                .timeout_ms = 1000,
                .user_data = 42,
        };
}

/* A setup packet, as the bytes a client writes. */
#define SETUP(type, req, value, index, len)                                                             \
        ((const uint8_t[8]) { (type), (req), (value) & 0xff, (value) >> 8, (index) & 0xff, (index) >> 8, \
                              (len) & 0xff, (len) >> 8 })
