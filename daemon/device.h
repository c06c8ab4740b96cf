/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-device.h>

#include "policy.h"
#include "usb-descriptors.h"

#include "forward.h"

typedef struct DescriptorCacheEntry DescriptorCacheEntry;

/* The ZCUSB_* udev properties of one device or interface, owned copies. */
typedef struct PolicyStrings {
        char *enable;
        char *allow_users;
        char *allow_groups;
        char *detach;
        char *autobind;
        char *polkit;
} PolicyStrings;

/* One usb_interface the kernel has registered (it may have a driver). */
typedef struct Interface {
        uint8_t number;
        char *sysname; /* e.g. "1-1:1.0" */
        char *driver;  /* "" if unbound */
        PolicyStrings policy;
} Interface;

struct Device {
        Manager *manager;
        uint64_t id;       /* never reused: what peers remember it by */
        TAILQ_ENTRY(Device) link;

        char *syspath;
        char *sysname;     /* kernel name, e.g. "1-1.2": the port path */
        char *object_path; /* /org/zcusb1/device/usbBUS_ADDR */

        uint16_t bus_number;
        uint16_t device_address;
        uint16_t vendor_id, product_id, device_version;
        uint8_t device_class, device_subclass, device_protocol;
        uint8_t active_configuration;
        char *manufacturer, *product, *serial; /* never NULL */
        char *speed;                           /* never NULL */
        uint32_t speed_kbps;

        UsbDescriptors descriptors;
        /* The sysfs "descriptors" file as read: device descriptor and every
         * configuration, byte for byte (the Descriptors property). */
        uint8_t *raw_descriptors;
        size_t raw_descriptors_size;
        /* Descriptors read from the device on request (device-descriptor-cache.c). */
        DescriptorCacheEntry *descriptor_cache;
        size_t n_descriptor_cache;
        uint64_t descriptor_quiet_until; /* CLOCK_MONOTONIC usec: the device timed out, ask it nothing new before */
        PolicyStrings policy;

        Interface *interfaces;
        size_t n_interfaces;

        char *devnode;            /* /dev/bus/usb/BBB/DDD, "" if none */
        TAILQ_HEAD(, Claim) claims;
};

int device_new(Manager *m, sd_device *dev, Device **ret);
Device *device_free(Device *d);

/* Re-read attributes and udev properties after a change/bind/unbind event.
 * Sets *interfaces_changed / *config_changed for PropertiesChanged. */
int device_update(Device *d, sd_device *dev, bool *config_changed);

/* An interface appeared, changed or got/lost a driver. */
int device_update_interface(Device *d, sd_device *iface, bool *changed);
bool device_remove_interface(Device *d, const char *sysname);

const Interface *device_find_interface(const Device *d, uint8_t number);
PolicyProps device_interface_policy(const Device *d, uint8_t number);

PolicyVerdict device_claim_verdict(const Device *d, const Caller *c, uint8_t number);
/* Granted by udev policy alone (polkit not counted). */
bool device_may_claim_interface(const Device *d, const Caller *c, uint8_t number);
/* root sees everything; others what they may claim at least one interface
 * of, or may ask polkit for (ZCUSB_POLKIT=1). */
bool device_visible_to(const Device *d, const Caller *c);

/* Each distinct interface number of the active configuration, ascending. */
size_t device_interface_numbers(const Device *d, uint8_t numbers[static 256]);

/* A descriptor of TYPE/INDEX (LANGUAGE for strings) read from the device with
 * GET_DESCRIPTOR, for the types a caller may ask for (device_descriptor_type_allowed()).
 * Answers repeat from a per-device cache, failures too (a device that stalls
 * a request stalls it again). Returns 0 with *ret and *ret_size pointing into the
 * cache (valid until the device is freed), -EPIPE when the device refused,
 * -EOPNOTSUPP for a type not allowed, -ENODEV without a device node, other
 * errno from usbfs. */
int device_read_descriptor(Device *d, uint8_t type, uint8_t index, uint16_t language, const uint8_t **ret,
                           size_t *ret_size);
bool device_descriptor_type_allowed(uint8_t type);
void device_descriptor_cache_clear(Device *d);

int device_object_path(uint16_t bus, uint16_t address, char **ret);


static inline void device_freep(Device **d) {
        device_free(*d);
}
