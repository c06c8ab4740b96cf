/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <linux/usbdevice_fs.h>
#include <sys/ioctl.h>

#include "device.h"
#include "log.h"
#include "util.h"

/* Descriptors sysfs does not hold (strings in every language, BOS, device
 * qualifier, other-speed configurations) are read from the device with a
 * standard GET_DESCRIPTOR on its usbfs node, which needs no claimed
 * interface. Only these read-only, side-effect-free types are asked for. */

#define USB_DT_STRING             0x03
#define USB_DT_DEVICE_QUALIFIER   0x06
#define USB_DT_OTHER_SPEED_CONFIG 0x07
#define USB_DT_BOS                0x0f
#define USB_REQ_GET_DESCRIPTOR    0x06

/* The whole request blocks zcusbd's loop; answers are cached, and a device
 * that does not answer within this costs each caller this once. */
#define DESCRIPTOR_TIMEOUT_MS 500
/* ... and after such a silence zcusbd asks that device nothing new for this
 * long (uncached requests fail -ETIMEDOUT at once), so callers rotating
 * through uncached (type, index, language) keys cannot hold zcusbd's loop
 * more than DESCRIPTOR_TIMEOUT_MS in every DESCRIPTOR_QUIET_USEC. */
#define DESCRIPTOR_QUIET_USEC (10 * USEC_PER_SEC)
/* Bound per device: a caller walking every index x language cannot make
 * zcusbd grow without limit (beyond it answers are read, not kept). */
#define DESCRIPTOR_CACHE_MAX 64

struct DescriptorCacheEntry {
        uint8_t type, index;
        uint16_t language;
        int error; /* negative errno, or 0 */
        size_t size;
        uint8_t *data;
};

bool device_descriptor_type_allowed(uint8_t type) {
        switch (type) {
        case USB_DT_STRING:
        case USB_DT_DEVICE_QUALIFIER:
        case USB_DT_OTHER_SPEED_CONFIG:
        case USB_DT_BOS:
                return true;
        default:
                return false;
        }
}

void device_descriptor_cache_clear(Device *d) {
        for (size_t i = 0; i < d->n_descriptor_cache; i++)
                free(d->descriptor_cache[i].data);
        free(d->descriptor_cache);
        d->descriptor_cache = NULL;
        d->n_descriptor_cache = 0;
}

static int control_get_descriptor(int fd, uint8_t type, uint8_t index, uint16_t language, uint8_t *buf,
                                  uint16_t length) {
        struct usbdevfs_ctrltransfer ct = {
                .bRequestType = 0x80, /* IN, standard, device */
                .bRequest = USB_REQ_GET_DESCRIPTOR,
                .wValue = (uint16_t) (type << 8 | index),
                .wIndex = language,
                .wLength = length,
                .timeout = DESCRIPTOR_TIMEOUT_MS,
                .data = buf,
        };
        int n;

        n = ioctl(fd, USBDEVFS_CONTROL, &ct);
        if (n < 0)
                return -errno;
        return n;
}

/* Read into a fresh allocation. Descriptors with a total length (BOS, other
 * speed configuration) are read twice: the header for the length, then all
 * of it, as the USB spec's host software does. */
static int read_from_device(const Device *d, uint8_t type, uint8_t index, uint16_t language, uint8_t **ret,
                            size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint16_t want = 255;
        int n;

        if (isempty(d->devnode))
                return -ENODEV;
        fd = open(d->devnode, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        buf = malloc(UINT16_MAX);
        if (!buf)
                return -ENOMEM;
        if (type == USB_DT_BOS || type == USB_DT_OTHER_SPEED_CONFIG) {
                n = control_get_descriptor(fd, type, index, language, buf, type == USB_DT_BOS ? 5 : 9);
                if (n < 0)
                        return n;
                if (n < 4 || buf[1] != type)
                        return -EPROTO;
                want = (uint16_t) (buf[2] | buf[3] << 8);
                if (want < n)
                        return -EPROTO;
        } else if (type == USB_DT_DEVICE_QUALIFIER)
                want = 10;
        n = control_get_descriptor(fd, type, index, language, buf, want);
        if (n < 0)
                return n;
        /* Hostile or broken devices: what comes back must say what it is. */
        if (n < 2 || buf[1] != type || buf[0] > n)
                return -EPROTO;
        if (type == USB_DT_STRING)
                n = buf[0];
        *ret_size = (size_t) n;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* Errors that are the device's answer (stall, garbage, silence): worth caching. */
static bool device_answered(int r) {
        return r == -EPIPE || r == -EPROTO || r == -ETIMEDOUT || r == -EOVERFLOW || r == -EREMOTEIO ||
               r == -EILSEQ;
}

int device_read_descriptor(Device *d, uint8_t type, uint8_t index, uint16_t language, const uint8_t **ret,
                           size_t *ret_size) {
        DescriptorCacheEntry *e, *n;
        uint8_t *data = NULL;
        size_t size = 0;
        int r;

        if (!device_descriptor_type_allowed(type))
                return -EOPNOTSUPP;

        for (size_t i = 0; i < d->n_descriptor_cache; i++) {
                e = &d->descriptor_cache[i];
                if (e->type != type || e->index != index || e->language != language)
                        continue;
                if (e->error < 0)
                        return e->error;
                *ret = e->data;
                *ret_size = e->size;
                return 0;
        }

        uint64_t now = now_monotonic_usec();
        if (now < d->descriptor_quiet_until)
                return -ETIMEDOUT;
        r = read_from_device(d, type, index, language, &data, &size);
        if (r == -ETIMEDOUT) {
                d->descriptor_quiet_until = now + DESCRIPTOR_QUIET_USEC;
                log_info("%s did not answer GET_DESCRIPTOR within %u ms: asking it nothing new for %u s.",
                         d->sysname, DESCRIPTOR_TIMEOUT_MS, (unsigned) (DESCRIPTOR_QUIET_USEC / USEC_PER_SEC));
        }
        if (r < 0)
                log_debug_errno(r, "%s: GET_DESCRIPTOR(type %#x, index %u, language %#x) failed: %m",
                                d->sysname, type, index, language);
        /* Device gone, out of memory, interrupted: not the device's answer. */
        if (r < 0 && !device_answered(r))
                return r;
        if (d->n_descriptor_cache >= DESCRIPTOR_CACHE_MAX) {
                if (r < 0)
                        return r;
                /* Not cached: keep it in the last slot, replacing the answer there. */
                e = &d->descriptor_cache[d->n_descriptor_cache - 1];
                free(e->data);
        } else {
                n = realloc(d->descriptor_cache, (d->n_descriptor_cache + 1) * sizeof(*n));
                if (!n) {
                        free(data);
                        return -ENOMEM;
                }
                d->descriptor_cache = n;
                e = &n[d->n_descriptor_cache++];
        }
        *e = (DescriptorCacheEntry) {
                .type = type,
                .index = index,
                .language = language,
                .error = r < 0 ? r : 0,
                .size = size,
                .data = data,
        };
        if (r < 0)
                return r;
        *ret = e->data;
        *ret_size = e->size;
        return 0;
}
