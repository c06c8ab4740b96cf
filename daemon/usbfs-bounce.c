/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "log.h"
#include "usbfs-bounce.h"
#include "util.h"

/* usbfs charges this memory to usbcore's usbfs_memory_mb, which every usbfs
 * user of the machine shares (16 MiB by default), for as long as it is
 * mapped. zcusbd keeps what a deep stream of one interface needs, and all
 * of its interfaces together at most a quarter of that budget: the rest is
 * left to other programs and to URBs that go without. */
#define USBFS_BOUNCE_INTERFACE_MAX (1024u * 1024u)
#define USBFS_BOUNCE_PROCESS_MAX (4u * 1024u * 1024u)
/* Requests that go without after a failed mmap (the budget was used up, or
 * the node cannot be mapped) before the next try: no syscall per transfer. */
#define USBFS_BOUNCE_RETRY_AFTER 256u

static size_t bounce_held_total; /* zcusbd runs on one thread */

uint64_t usbfs_memory_limit(void) {
        _cleanup_fclose_ FILE *f = fopen("/sys/module/usbcore/parameters/usbfs_memory_mb", "re");
        unsigned long long mb;

        if (!f || fscanf(f, "%llu", &mb) != 1 || mb > UINT32_MAX)
                return 0;
        return (uint64_t) mb * 1024 * 1024;
}

static size_t bounce_process_max(void) {
        uint64_t limit = usbfs_memory_limit();

        if (limit == 0 || limit / 4 > USBFS_BOUNCE_PROCESS_MAX)
                return USBFS_BOUNCE_PROCESS_MAX;
        return (size_t) (limit / 4);
}

void usbfs_bounce_pool_init(UsbfsBouncePool *p, int fd) {
        /* Read once per claimed interface, not per transfer: a stream that
         * has all its buffers in use asks for one more with every transfer. */
        *p = (UsbfsBouncePool) { .fd = fd, .process_max = fd >= 0 ? bounce_process_max() : 0 };
}

static unsigned bounce_class(size_t length) {
        unsigned shift = USBFS_BOUNCE_MIN_SHIFT;

        while (((size_t) 1 << shift) < length)
                shift++;
        return shift - USBFS_BOUNCE_MIN_SHIFT;
}

static void bounce_unmap(UsbfsBouncePool *p, UsbfsBounce *b) {
        /* An URB the kernel still holds (a device that went away) keeps
         * usbfs's memory alive by itself. */
        (void) munmap(b->mem, b->size);
        p->held -= b->size;
        bounce_held_total -= b->size;
        free(b);
}

/* Room for SIZE more bytes, unmapping free buffers of other sizes if need
 * be (a client that moved from one transfer size to another). */
static bool bounce_make_room(UsbfsBouncePool *p, size_t size) {
        size_t process_max = p->process_max;

        for (unsigned class = 0; class < USBFS_BOUNCE_CLASSES; class++) {
                UsbfsBounce *b;

                while (p->held + size > USBFS_BOUNCE_INTERFACE_MAX || bounce_held_total + size > process_max) {
                        b = p->free[class];
                        if (!b)
                                break;
                        p->free[class] = b->next;
                        bounce_unmap(p, b);
                }
        }
        return p->held + size <= USBFS_BOUNCE_INTERFACE_MAX && bounce_held_total + size <= process_max;
}

UsbfsBounce *usbfs_bounce_get(UsbfsBouncePool *p, size_t length) {
        UsbfsBounce *b;
        unsigned class;
        size_t size;
        void *mem;

        if (p->fd < 0 || length == 0 || length > USBFS_BOUNCE_MAX)
                return NULL;
        class = bounce_class(length);
        b = p->free[class];
        if (b) {
                p->free[class] = b->next;
                b->next = NULL;
                return b;
        }

        size = (size_t) 1 << (class + USBFS_BOUNCE_MIN_SHIFT);
        if (p->skip > 0) {
                p->skip--;
                return NULL;
        }
        if (!bounce_make_room(p, size))
                return NULL;
        b = malloc(sizeof(*b));
        if (!b)
                return NULL;
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
        if (mem == MAP_FAILED) {
                /* ENOMEM: usbfs_memory_mb used up; ENODEV and the like: no
                 * usbfs mmap (a kernel before 4.6, an emulated node). */
                log_debug_errno(errno, "No usbfs staging buffer of %zu bytes: %m", size);
                p->skip = USBFS_BOUNCE_RETRY_AFTER;
                free(b);
                return NULL;
        }
        *b = (UsbfsBounce) { .mem = mem, .size = size };
        p->held += size;
        bounce_held_total += size;
        return b;
}

void usbfs_bounce_put(UsbfsBouncePool *p, UsbfsBounce *b) {
        unsigned class;

        if (!b)
                return;
        class = bounce_class(b->size);
        b->next = p->free[class];
        p->free[class] = b;
}

void usbfs_bounce_pool_done(UsbfsBouncePool *p) {
        for (unsigned class = 0; class < USBFS_BOUNCE_CLASSES; class++) {
                UsbfsBounce *b;

                while ((b = p->free[class])) {
                        p->free[class] = b->next;
                        bounce_unmap(p, b);
                }
        }
        if (p->held != 0)
                log_error("usbfs staging buffers of %zu bytes not given back: bug.", p->held);
}
