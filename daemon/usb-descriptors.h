/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Parser for the raw descriptors the kernel exposes in sysfs ("descriptors":
 * the device descriptor, then every configuration with its interface and
 * endpoint descriptors). The content comes from the device: nothing in it is
 * trusted, every length is checked. */

#define USB_MAX_ENDPOINTS 30 /* 15 IN + 15 OUT besides ep0 */

typedef struct UsbEndpoint {
        uint8_t address;    /* bEndpointAddress: bit 7 = IN */
        uint8_t attributes; /* bmAttributes: bits 0-1 = transfer type */
        uint16_t max_packet_size;
        uint8_t interval;
} UsbEndpoint;

typedef struct UsbAltSetting {
        uint8_t interface_number;
        uint8_t alt_setting;
        uint8_t class, subclass, protocol;
        uint8_t n_endpoints;
        UsbEndpoint endpoints[USB_MAX_ENDPOINTS];
} UsbAltSetting;

typedef struct UsbDescriptors {
        uint16_t bcd_usb;
        uint8_t device_class, device_subclass, device_protocol;
        uint8_t max_packet_size0;
        uint16_t vendor_id, product_id, bcd_device;
        uint8_t n_configurations;
        uint8_t configuration_value; /* the one parsed below */
        size_t n_alt_settings;
        UsbAltSetting *alt_settings;
} UsbDescriptors;

/* Parse BUF and keep the configuration whose bConfigurationValue is
 * ACTIVE_CONFIG (or the first one when none matches, e.g. unconfigured).
 * Returns 0, -EBADMSG for malformed input, -ENOMEM. */
int usb_descriptors_parse(const uint8_t *buf, size_t len, uint8_t active_config, UsbDescriptors *ret);
void usb_descriptors_done(UsbDescriptors *d);

/* The endpoint with ADDRESS in the given interface/alt setting, or NULL. */
const UsbEndpoint *usb_descriptors_find_endpoint(const UsbDescriptors *d, uint8_t interface_number,
                                                 uint8_t alt_setting, uint8_t address);

const char *usb_endpoint_type_to_string(uint8_t attributes);
