/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Staging buffers in usbfs's own memory (an mmap of the device node, the
 * memory libusb_dev_mem_alloc() gives): an URB whose buffer lies in it needs
 * no kernel buffer, so usbfs neither allocates (and, with init_on_alloc,
 * zeroes) one per URB nor copies into or out of it. zcusbd copies between
 * the client's memfd and the staging buffer instead: the same one copy, less
 * kernel work per transfer. Sizes go by powers of two, 4 KiB to
 * USBFS_BOUNCE_MAX; ended ones are kept for the next transfers. */

#define USBFS_BOUNCE_MIN_SHIFT 12u
#define USBFS_BOUNCE_MAX_SHIFT 18u
#define USBFS_BOUNCE_MAX (1u << USBFS_BOUNCE_MAX_SHIFT) /* 256 KiB */
#define USBFS_BOUNCE_CLASSES (USBFS_BOUNCE_MAX_SHIFT - USBFS_BOUNCE_MIN_SHIFT + 1)

typedef struct UsbfsBounce {
        struct UsbfsBounce *next; /* on its pool's free list */
        uint8_t *mem;
        size_t size;
} UsbfsBounce;

typedef struct UsbfsBouncePool {
        int fd; /* the interface's usbfs file (its memory goes with it); < 0: staging off */
        size_t held; /* bytes mapped, in use or free */
        size_t process_max; /* zcusbd's limit over all pools, as usbfs_memory_mb was at init */
        unsigned skip; /* after a failed mmap, this many requests go without */
        UsbfsBounce *free[USBFS_BOUNCE_CLASSES];
} UsbfsBouncePool;

/* usbcore's usbfs_memory_mb in bytes, the budget of every usbfs user of the
 * machine (URB buffers and mmaps); 0: none set, or unknown. */
uint64_t usbfs_memory_limit(void);

void usbfs_bounce_pool_init(UsbfsBouncePool *p, int fd);
/* NULL: none for this transfer (too large, over the limits, no usbfs mmap
 * on this kernel or node); its URB points at the client's memory instead. */
UsbfsBounce *usbfs_bounce_get(UsbfsBouncePool *p, size_t length);
void usbfs_bounce_put(UsbfsBouncePool *p, UsbfsBounce *b);
/* Unmaps the free ones; all must have been put back. */
void usbfs_bounce_pool_done(UsbfsBouncePool *p);
