/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A claim's zcusb buffer memory: libusb_dev_mem_alloc() (zero copy) and the
 * staging memory ordinary buffers are copied through. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "compat-internal.h"

#define PAGE 4096u
#define STAGING_ARENA_MIN (4u << 20) /* one zcusb buffer carved into pages */

/* ---- dev_mem: zcusb buffer memory, zero copy ---- */

unsigned char *LIBUSB_CALL libusb_dev_mem_alloc(libusb_device_handle *handle, size_t length) {
        struct libusb_context *ctx = handle->dev->ctx;
        CompatClaim *c = NULL;
        DevMem *m;
        int r;

        if (length == 0)
                return NULL;
        pthread_mutex_lock(&ctx->lock);
        for (unsigned i = 0; i < 256 && !c; i++)
                c = handle->claims[i];
        if (!c) {
                pthread_mutex_unlock(&ctx->lock);
                log_warn(ctx, "zcusb buffers belong to a claimed interface: claim one before libusb_dev_mem_alloc()");
                return NULL;
        }
        m = calloc(1, sizeof(*m));
        if (!m) {
                pthread_mutex_unlock(&ctx->lock);
                return NULL;
        }
        bus_lock(ctx);
        r = zcusb_buffer_alloc(c->claim, length, &m->buffer);
        if (r < 0)
                log_warn(ctx, "libusb_dev_mem_alloc(%zu): %s", length, zcusb_last_error_message(ctx->zc));
        bus_unlock(ctx);
        if (r < 0) {
                free(m);
                pthread_mutex_unlock(&ctx->lock);
                return NULL;
        }
        m->claim = c;
        m->size = length;
        /* A second mapping of the same shared pages for the program: it outlives
         * the claim (libzcusb unmaps its own when the interface is released),
         * so a program freeing dev_mem after releasing never touches freed memory. */
        m->data = mremap(zcusb_buffer_data(m->buffer), 0, zcusb_buffer_size(m->buffer), MREMAP_MAYMOVE);
        if (m->data == MAP_FAILED) {
                bus_lock(ctx);
                (void) zcusb_buffer_free(m->buffer);
                bus_unlock(ctx);
                free(m);
                pthread_mutex_unlock(&ctx->lock);
                return NULL;
        }
        m->map_size = zcusb_buffer_size(m->buffer);
        LIST_INSERT_HEAD(&handle->dev_mem, m, link);
        pthread_mutex_unlock(&ctx->lock);
        return m->data;
}

int LIBUSB_CALL libusb_dev_mem_free(libusb_device_handle *handle, unsigned char *buffer, size_t length) {
        struct libusb_context *ctx = handle->dev->ctx;
        DevMem *m;
        int r;

        (void) length;
        pthread_mutex_lock(&ctx->lock);
        LIST_FOREACH(m, &handle->dev_mem, link)
                if (m->data == buffer)
                        break;
        if (!m) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_INVALID_PARAM;
        }
        if (m->buffer) {
                bus_lock(ctx);
                r = zcusb_buffer_free(m->buffer);
                bus_unlock(ctx);
                if (r == -EBUSY) {
                        pthread_mutex_unlock(&ctx->lock);
                        return LIBUSB_ERROR_BUSY;
                }
        }
        LIST_REMOVE(m, link);
        (void) munmap(m->data, m->map_size);
        free(m);
        pthread_mutex_unlock(&ctx->lock);
        return LIBUSB_SUCCESS;
}

DevMem *handle_find_dev_mem(struct libusb_device_handle *handle, CompatClaim *c, const uint8_t *p, size_t size) {
        DevMem *m;

        LIST_FOREACH(m, &handle->dev_mem, link)
                if (m->claim == c && c && p >= m->data && size <= m->size && (size_t) (p - m->data) <= m->size - size)
                        return m;
        return NULL;
}

/* ---- staging: ordinary memory goes through a claim's zcusb buffers ---- */

static bool page_used(const StagingArena *a, size_t i) {
        return a->used[i / 64] & (UINT64_C(1) << (i % 64));
}

static void pages_mark(StagingArena *a, size_t first, size_t n, bool used) {
        for (size_t i = first; i < first + n; i++) {
                if (used)
                        a->used[i / 64] |= UINT64_C(1) << (i % 64);
                else
                        a->used[i / 64] &= ~(UINT64_C(1) << (i % 64));
        }
}

static bool arena_alloc(StagingArena *a, size_t pages, size_t *ret_first) {
        size_t run = 0;

        for (size_t i = 0; i < a->pages; i++) {
                run = page_used(a, i) ? 0 : run + 1;
                if (run == pages) {
                        *ret_first = i + 1 - pages;
                        pages_mark(a, *ret_first, pages, true);
                        return true;
                }
        }
        return false;
}

int staging_alloc(CompatClaim *c, size_t size, uint8_t **ret_data, uint32_t *ret_buffer_id, uint64_t *ret_offset) {
        struct libusb_context *ctx = c->handle->dev->ctx;
        size_t pages = (size ? size + PAGE - 1 : PAGE) / PAGE, first, bytes;
        StagingArena *a;
        int r;

        LIST_FOREACH(a, &c->arenas, link)
                if (arena_alloc(a, pages, &first))
                        goto found;

        bytes = pages * PAGE < STAGING_ARENA_MIN ? STAGING_ARENA_MIN : pages * PAGE;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->pages = bytes / PAGE;
        a->used = calloc((a->pages + 63) / 64, sizeof(uint64_t));
        if (!a->used) {
                free(a);
                return -ENOMEM;
        }
        bus_lock(ctx);
        r = zcusb_buffer_alloc(c->claim, bytes, &a->buffer);
        if (r < 0)
                log_warn(ctx, "staging buffer of %zu bytes: %s", bytes, zcusb_last_error_message(ctx->zc));
        bus_unlock(ctx);
        if (r < 0) {
                free(a->used);
                free(a);
                return r;
        }
        a->data = zcusb_buffer_data(a->buffer);
        LIST_INSERT_HEAD(&c->arenas, a, link);
        (void) arena_alloc(a, pages, &first);
found:
        *ret_data = a->data + first * PAGE;
        *ret_buffer_id = zcusb_buffer_id(a->buffer);
        *ret_offset = first * PAGE;
        return 0;
}

void staging_release(CompatClaim *c, const uint8_t *data, size_t size) {
        size_t pages = (size ? size + PAGE - 1 : PAGE) / PAGE;
        StagingArena *a;

        LIST_FOREACH(a, &c->arenas, link)
                if (data >= a->data && data < a->data + a->pages * PAGE) {
                        pages_mark(a, (size_t) (data - a->data) / PAGE, pages, false);
                        return;
                }
}

void staging_free_all(CompatClaim *c) {
        StagingArena *a;

        /* The buffers go with the claim (zcusb_claim_release()); only our side here. */
        while ((a = LIST_FIRST(&c->arenas))) {
                LIST_REMOVE(a, link);
                free(a->used);
                free(a);
        }
}
