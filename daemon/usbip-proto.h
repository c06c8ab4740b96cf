/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The USB/IP import exchange (Documentation/usb/usbip_protocol.rst): what
 * an importer sends and strictly checks. Pure: no I/O. All fields on the
 * wire are big-endian. */

#define USBIP_VERSION             0x0111
#define USBIP_OP_REQ_IMPORT       0x8003
#define USBIP_OP_REP_IMPORT       0x0003
#define USBIP_BUSID_SIZE          32
#define USBIP_PATH_SIZE           256
#define USBIP_OP_HEADER_SIZE      8
#define USBIP_DEVICE_SIZE         312
#define USBIP_IMPORT_REQUEST_SIZE (USBIP_OP_HEADER_SIZE + USBIP_BUSID_SIZE)
#define USBIP_IMPORT_REPLY_SIZE   (USBIP_OP_HEADER_SIZE + USBIP_DEVICE_SIZE)
#define USBIP_DEFAULT_PORT        3240

/* enum usb_device_speed */
#define USBIP_SPEED_LOW        1
#define USBIP_SPEED_FULL       2
#define USBIP_SPEED_HIGH       3
#define USBIP_SPEED_WIRELESS   4
#define USBIP_SPEED_SUPER      5
#define USBIP_SPEED_SUPER_PLUS 6

typedef struct UsbipDevice {
        char path[USBIP_PATH_SIZE];
        char busid[USBIP_BUSID_SIZE];
        uint32_t busnum;
        uint32_t devnum;
        uint32_t speed;
        uint16_t vendor_id, product_id, bcd_device;
        uint8_t device_class, device_subclass, device_protocol;
        uint8_t configuration_value, num_configurations, num_interfaces;
} UsbipDevice;

/* A bus id as usbip-host names exported devices ("1-1", "3-2.4"): what we
 * send and what the reply must echo. */
bool usbip_busid_is_valid(const char *busid);

/* OP_REQ_IMPORT for BUSID into BUF. Returns the size, or -EINVAL for a bad busid. */
int usbip_build_import_request(const char *busid, uint8_t buf[static USBIP_IMPORT_REQUEST_SIZE]);

/* Check OP_REP_IMPORT's 8-byte header. Returns 0 when a device follows,
 * -ECONNREFUSED when the server said no (*ret_status = its status),
 * -EPROTO for a wrong version or code. WHY says what was wrong. */
int usbip_parse_reply_header(const uint8_t buf[static USBIP_OP_HEADER_SIZE], uint32_t *ret_status, char *why,
                             size_t why_size);

/* Parse and check the 312-byte device that follows: NUL-terminated strings,
 * the bus id we asked for, a speed vhci-hcd can attach, bus and device
 * numbers that fit the devid. Returns 0 or -EPROTO (WHY says which field). */
int usbip_parse_device(const uint8_t buf[static USBIP_DEVICE_SIZE], const char *want_busid, UsbipDevice *ret,
                       char *why, size_t why_size);

/* The same checks on a parsed device (zcusbd re-checks what its helper sent). */
int usbip_device_check(const UsbipDevice *d, const char *want_busid, char *why, size_t why_size);

/* vhci-hcd's devid for the attach file: busnum << 16 | devnum. */
static inline uint32_t usbip_devid(const UsbipDevice *d) {
        return d->busnum << 16 | d->devnum;
}

const char *usbip_status_to_string(uint32_t status);
