/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>

#include "device.h"
#include "log.h"
#include "manager.h"
#include "util.h"
#include "zcusb-dbus.h"

/* The kernel caps the sysfs descriptors file at a few configurations of
 * wTotalLength <= 64 KiB each; anything beyond this is not a USB device. */
#define DESCRIPTORS_MAX (256 * 1024)

static void policy_strings_done(PolicyStrings *p) {
        free(p->enable);
        free(p->allow_users);
        free(p->allow_groups);
        free(p->detach);
        free(p->autobind);
        free(p->polkit);
        *p = (PolicyStrings) {};
}

static int policy_strings_read(PolicyStrings *p, sd_device *dev) {
        static const struct {
                const char *property;
                size_t offset;
        } table[] = {
                { "ZCUSB_ENABLE",       offsetof(PolicyStrings, enable) },
                { "ZCUSB_ALLOW_USERS",  offsetof(PolicyStrings, allow_users) },
                { "ZCUSB_ALLOW_GROUPS", offsetof(PolicyStrings, allow_groups) },
                { "ZCUSB_DETACH",       offsetof(PolicyStrings, detach) },
                { "ZCUSB_AUTOBIND",     offsetof(PolicyStrings, autobind) },
                { "ZCUSB_POLKIT",       offsetof(PolicyStrings, polkit) },
        };
        PolicyStrings n = {};

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                const char *v = NULL;
                char **field = (char **) ((uint8_t *) &n + table[i].offset);

                if (sd_device_get_property_value(dev, table[i].property, &v) < 0)
                        continue;
                if (free_and_strdup(field, v) < 0) {
                        policy_strings_done(&n);
                        return -ENOMEM;
                }
        }
        policy_strings_done(p);
        *p = n;
        return 0;
}

static PolicyProps policy_props(const PolicyStrings *s) {
        return (PolicyProps) {
                .enable = s->enable,
                .allow_users = s->allow_users,
                .allow_groups = s->allow_groups,
                .detach = s->detach,
                .polkit = s->polkit,
        };
}

static int read_sysattr_u16(sd_device *dev, const char *attr, unsigned base, uint16_t *ret) {
        const char *v;
        uint32_t n;
        int r;

        r = sd_device_get_sysattr_value(dev, attr, &v);
        if (r < 0)
                return r;
        r = safe_atou32(v, base, &n);
        if (r < 0)
                return r;
        if (n > UINT16_MAX)
                return -ERANGE;
        *ret = (uint16_t) n;
        return 0;
}

/* Optional string attributes (strings from the device) become "" when absent. */
static int read_sysattr_string(sd_device *dev, const char *attr, char **field) {
        const char *v = NULL;

        (void) sd_device_get_sysattr_value(dev, attr, &v);
        return free_and_strdup(field, v ?: "");
}

/* sd_device_get_sysattr_value() stops at the first NUL, and descriptors are
 * binary: read the file ourselves. */
static int read_descriptors(const char *syspath, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0;

        if (asprintf(&path, "%s/descriptors", syspath) < 0)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        buf = malloc(DESCRIPTORS_MAX);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, DESCRIPTORS_MAX - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == DESCRIPTORS_MAX)
                        return -EFBIG;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static const char *speed_name(uint32_t kbps) {
        switch (kbps) {
        case 1500:     return "low";
        case 12000:    return "full";
        case 480000:   return "high";
        case 5000000:  return "super";
        case 10000000:
        case 20000000: return "super-plus";
        default:       return "unknown";
        }
}

/* sysfs "speed" is in Mb/s: "1.5", "12", "480", "5000", ... */
static uint32_t parse_speed_kbps(const char *s) {
        uint32_t mbps;

        if (!s)
                return 0;
        if (streq(s, "1.5"))
                return 1500;
        if (safe_atou32(s, 10, &mbps) < 0 || mbps > UINT32_MAX / 1000)
                return 0;
        return mbps * 1000;
}

int device_object_path(uint16_t bus, uint16_t address, char **ret) {
        if (asprintf(ret, ZCUSB_DEVICE_PATH_PREFIX "/usb%u_%u", bus, address) < 0)
                return -ENOMEM;
        return 0;
}

static int device_read_descriptors(Device *d) {
        _cleanup_free_ uint8_t *raw = NULL;
        UsbDescriptors desc;
        size_t len = 0;
        int r;

        r = read_descriptors(d->syspath, &raw, &len);
        if (r == -ENOENT) /* unplugged while its events were on their way */
                return log_debug_errno(r, "%s: descriptors gone: %m", d->sysname);
        if (r < 0)
                return log_warning_errno(r, "%s: cannot read descriptors: %m", d->sysname);
        r = usb_descriptors_parse(raw, len, d->active_configuration, &desc);
        if (r < 0)
                return log_warning_errno(r, "%s: malformed descriptors (%zu bytes): %m", d->sysname, len);
        usb_descriptors_done(&d->descriptors);
        d->descriptors = desc;
        /* read_descriptors() sized the buffer for the worst case. */
        uint8_t *shrunk = realloc(raw, len > 0 ? len : 1);
        if (shrunk)
                raw = shrunk;
        free(d->raw_descriptors);
        d->raw_descriptors = TAKE_PTR(raw);
        d->raw_descriptors_size = len;
        d->device_class = desc.device_class;
        d->device_subclass = desc.device_subclass;
        d->device_protocol = desc.device_protocol;
        return 0;
}

int device_new(Manager *m, sd_device *dev, Device **ret) {
        _cleanup_(device_freep) Device *d = NULL;
        const char *syspath, *sysname, *v = NULL;
        uint16_t u;
        int r;

        r = sd_device_get_syspath(dev, &syspath);
        if (r < 0)
                return r;
        r = sd_device_get_sysname(dev, &sysname);
        if (r < 0)
                return r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->manager = m;
        d->id = ++m->next_device_id;
        TAILQ_INIT(&d->claims);
        d->syspath = strdup(syspath);
        d->sysname = strdup(sysname);
        if (!d->syspath || !d->sysname)
                return -ENOMEM;

        r = read_sysattr_u16(dev, "busnum", 10, &d->bus_number);
        if (r < 0)
                return log_warning_errno(r, "%s: no usable busnum: %m", sysname);
        r = read_sysattr_u16(dev, "devnum", 10, &d->device_address);
        if (r < 0)
                return log_warning_errno(r, "%s: no usable devnum: %m", sysname);
        r = read_sysattr_u16(dev, "idVendor", 16, &d->vendor_id);
        if (r < 0)
                return log_warning_errno(r, "%s: no usable idVendor: %m", sysname);
        r = read_sysattr_u16(dev, "idProduct", 16, &d->product_id);
        if (r < 0)
                return log_warning_errno(r, "%s: no usable idProduct: %m", sysname);
        if (read_sysattr_u16(dev, "bcdDevice", 16, &u) >= 0)
                d->device_version = u;

        r = device_object_path(d->bus_number, d->device_address, &d->object_path);
        if (r < 0)
                return r;

        const char *devnode = NULL;
        (void) sd_device_get_devname(dev, &devnode);
        if (free_and_strdup(&d->devnode, strempty(devnode)) < 0)
                return -ENOMEM;

        if (read_sysattr_string(dev, "manufacturer", &d->manufacturer) < 0 ||
            read_sysattr_string(dev, "product", &d->product) < 0 ||
            read_sysattr_string(dev, "serial", &d->serial) < 0)
                return -ENOMEM;

        (void) sd_device_get_sysattr_value(dev, "speed", &v);
        d->speed_kbps = parse_speed_kbps(v);
        d->speed = strdup(speed_name(d->speed_kbps));
        if (!d->speed)
                return -ENOMEM;

        bool unused;
        r = device_update(d, dev, &unused);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(d);
        return 0;
}

int device_update(Device *d, sd_device *dev, bool *config_changed) {
        uint16_t config = 0;
        int r;

        *config_changed = false;
        r = policy_strings_read(&d->policy, dev);
        if (r < 0)
                return r;

        /* Empty while unconfigured. */
        (void) read_sysattr_u16(dev, "bConfigurationValue", 10, &config);
        if (config > UINT8_MAX)
                config = 0;
        if (!d->descriptors.alt_settings || config != d->active_configuration) {
                *config_changed = d->descriptors.alt_settings != NULL;
                d->active_configuration = (uint8_t) config;
                /* Unreadable descriptors leave a device without interfaces,
                 * which is still worth listing (ids, speed). */
                (void) device_read_descriptors(d);
        }
        return 0;
}

static void interface_done(Interface *i) {
        free(i->sysname);
        free(i->driver);
        policy_strings_done(&i->policy);
}

int device_update_interface(Device *d, sd_device *iface, bool *changed) {
        const char *sysname, *driver = NULL;
        Interface *i = NULL, *n;
        uint16_t number;
        int r;

        *changed = false;
        r = sd_device_get_sysname(iface, &sysname);
        if (r < 0)
                return r;
        r = read_sysattr_u16(iface, "bInterfaceNumber", 16, &number);
        if (r < 0 || number > UINT8_MAX)
                return log_debug_errno(r < 0 ? r : -ERANGE, "%s: no usable bInterfaceNumber", sysname);
        (void) sd_device_get_driver(iface, &driver);

        for (size_t k = 0; k < d->n_interfaces; k++)
                if (streq(d->interfaces[k].sysname, sysname))
                        i = &d->interfaces[k];

        if (!i) {
                n = realloc(d->interfaces, (d->n_interfaces + 1) * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                d->interfaces = n;
                i = &n[d->n_interfaces];
                *i = (Interface) { .number = (uint8_t) number };
                i->sysname = strdup(sysname);
                i->driver = strdup("");
                if (!i->sysname || !i->driver) {
                        interface_done(i);
                        return -ENOMEM;
                }
                d->n_interfaces++;
                *changed = true;
        }

        if (!streq(i->driver, strempty(driver))) {
                r = free_and_strdup(&i->driver, strempty(driver));
                if (r < 0)
                        return r;
                *changed = true;
        }
        i->number = (uint8_t) number;
        return policy_strings_read(&i->policy, iface);
}

bool device_remove_interface(Device *d, const char *sysname) {
        for (size_t k = 0; k < d->n_interfaces; k++) {
                if (!streq(d->interfaces[k].sysname, sysname))
                        continue;
                interface_done(&d->interfaces[k]);
                memmove(&d->interfaces[k], &d->interfaces[k + 1],
                        (d->n_interfaces - k - 1) * sizeof(Interface));
                d->n_interfaces--;
                return true;
        }
        return false;
}

const Interface *device_find_interface(const Device *d, uint8_t number) {
        for (size_t k = 0; k < d->n_interfaces; k++)
                if (d->interfaces[k].number == number)
                        return &d->interfaces[k];
        return NULL;
}

PolicyProps device_interface_policy(const Device *d, uint8_t number) {
        const Interface *i = device_find_interface(d, number);
        PolicyProps dp = policy_props(&d->policy), ip;

        if (!i)
                return dp;
        ip = policy_props(&i->policy);
        return policy_props_merge(&dp, &ip);
}

PolicyVerdict device_claim_verdict(const Device *d, const Caller *c, uint8_t number) {
        PolicyProps p = device_interface_policy(d, number);
        return policy_claim_verdict(&p, c, &policy_resolver_nss);
}

bool device_may_claim_interface(const Device *d, const Caller *c, uint8_t number) {
        return device_claim_verdict(d, c, number) == POLICY_ALLOW;
}

size_t device_interface_numbers(const Device *d, uint8_t numbers[static 256]) {
        bool seen[256] = {};
        size_t n = 0;

        for (size_t k = 0; k < d->descriptors.n_alt_settings; k++)
                seen[d->descriptors.alt_settings[k].interface_number] = true;
        for (unsigned i = 0; i < 256; i++)
                if (seen[i])
                        numbers[n++] = (uint8_t) i;
        return n;
}

bool device_visible_to(const Device *d, const Caller *c) {
        uint8_t numbers[256];
        size_t n;

        if (policy_caller_is_root(c))
                return true;
        n = device_interface_numbers(d, numbers);
        /* One it might get through polkit counts: it must see what to ask for. */
        for (size_t k = 0; k < n; k++)
                if (device_claim_verdict(d, c, numbers[k]) != POLICY_DENY)
                        return true;
        return false;
}

Device *device_free(Device *d) {
        if (!d)
                return NULL;
        free(d->syspath);
        free(d->sysname);
        free(d->object_path);
        free(d->manufacturer);
        free(d->product);
        free(d->serial);
        free(d->speed);
        free(d->devnode);
        usb_descriptors_done(&d->descriptors);
        free(d->raw_descriptors);
        device_descriptor_cache_clear(d);
        policy_strings_done(&d->policy);
        for (size_t k = 0; k < d->n_interfaces; k++)
                interface_done(&d->interfaces[k]);
        free(d->interfaces);
        free(d);
        return NULL;
}
