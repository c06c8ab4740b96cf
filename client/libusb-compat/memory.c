/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A claim's zcusb buffer memory (compat-internal.h: Arena): libusb_dev_mem_alloc()
 * (zero copy) and the staging memory ordinary buffers are copied through both
 * take pages of the claim's arenas. A new arena is asked of zcusbd only when
 * none has room; arenas go back when their claim ends, when more than
 * ARENA_KEEP_EMPTY stands empty, or when zcusbd's quota is short.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "compat-internal.h"

#define PAGE 4096u
#define ARENA_MIN (4u << 20)         /* bytes of a new arena, at least */
#define ARENA_KEEP_EMPTY (16u << 20) /* empty arena bytes a claim keeps for later */

static size_t pages_of(size_t size) {
        return (size ? size + PAGE - 1 : PAGE) / PAGE;
}

/* ---- arenas ---- */

static bool page_used(const Arena *a, size_t i) {
        return a->used[i / 64] & (UINT64_C(1) << (i % 64));
}

static void pages_mark(Arena *a, size_t first, size_t n, bool used) {
        for (size_t i = first; i < first + n; i++) {
                if (used)
                        a->used[i / 64] |= UINT64_C(1) << (i % 64);
                else
                        a->used[i / 64] &= ~(UINT64_C(1) << (i % 64));
        }
        if (used)
                a->used_pages += n;
        else
                a->used_pages -= n;
}

/* First fit of PAGES free pages in A, marked used. */
static bool arena_take(Arena *a, size_t pages, size_t *ret_first) {
        size_t run = 0;

        if (a->pages - a->used_pages < pages)
                return false;
        for (size_t i = 0; i < a->pages; i++) {
                if (i % 64 == 0 && a->used[i / 64] == UINT64_MAX) {
                        run = 0;
                        i += 63;
                        continue;
                }
                run = page_used(a, i) ? 0 : run + 1;
                if (run == pages) {
                        *ret_first = i + 1 - pages;
                        pages_mark(a, *ret_first, pages, true);
                        return true;
                }
        }
        return false;
}

static Arena *arena_of(struct libusb_device_handle *handle, const CompatClaim *c, const uint8_t *p) {
        Arena *a;

        LIST_FOREACH(a, &handle->arenas, link)
                if (a->claim == c && p >= a->data && p < a->data + a->pages * PAGE)
                        return a;
        return NULL;
}

/* Only our mapping: the buffer is zcusbd's (and libzcusb's) business. */
static void arena_unmap_free(Arena *a) {
        LIST_REMOVE(a, link);
        (void) munmap(a->data, a->size);
        free(a->used);
        free(a);
}

/* An arena nothing uses, back to zcusbd; false if zcusbd says a transfer still does. */
static bool arena_give_back(struct libusb_context *ctx, Arena *a) {
        int r;

        bus_lock(ctx);
        r = zcusb_buffer_free(a->buffer);
        bus_unlock(ctx);
        if (r == -EBUSY)
                return false;
        arena_unmap_free(a);
        return true;
}

/* The empty arenas of every live claim of CTX back to zcusbd (its quota is the client's). */
static unsigned arenas_trim(struct libusb_context *ctx) {
        struct libusb_device_handle *h;
        unsigned n = 0;

        LIST_FOREACH(h, &ctx->handles, link)
                for (Arena *a = LIST_FIRST(&h->arenas), *next; a; a = next) {
                        next = LIST_NEXT(a, link);
                        if (a->claim && a->used_pages == 0 && arena_give_back(ctx, a))
                                n++;
                }
        return n;
}

static int buffer_alloc(CompatClaim *c, size_t bytes, struct zcusb_buffer **ret) {
        struct libusb_context *ctx = c->handle->dev->ctx;
        int r;

        bus_lock(ctx);
        r = zcusb_buffer_alloc(c->claim, bytes, ret);
        if (r < 0)
                log_dbg(ctx, "a buffer of %zu bytes: %s", bytes, zcusb_last_error_message(ctx->zc));
        bus_unlock(ctx);
        return r;
}

/* A new arena of claim C with room for PAGES. */
static int arena_new(CompatClaim *c, size_t pages, Arena **ret) {
        struct libusb_context *ctx = c->handle->dev->ctx;
        size_t need = pages * PAGE, bytes = need < ARENA_MIN ? ARENA_MIN : need;
        struct zcusb_buffer *buffer = NULL;
        Arena *a;
        int r;

        r = buffer_alloc(c, bytes, &buffer);
        /* Short of quota: what stands empty first, then no more than needed. */
        if (r == -EDQUOT && arenas_trim(ctx) > 0)
                r = buffer_alloc(c, bytes, &buffer);
        if (r == -EDQUOT && need < bytes)
                r = buffer_alloc(c, need, &buffer);
        if (r < 0)
                return r;

        r = -ENOMEM;
        a = calloc(1, sizeof(*a));
        if (a) {
                a->size = zcusb_buffer_size(buffer);
                a->pages = a->size / PAGE;
                a->used = calloc((a->pages + 63) / 64, sizeof(uint64_t));
        }
        if (a && a->used) {
                /* A second mapping of the same pages, ours: it outlives the claim. */
                a->data = mremap(zcusb_buffer_data(buffer), 0, a->size, MREMAP_MAYMOVE);
                r = a->data == MAP_FAILED ? -errno : 0;
        }
        if (r < 0) {
                if (a)
                        free(a->used);
                free(a);
                bus_lock(ctx);
                (void) zcusb_buffer_free(buffer);
                bus_unlock(ctx);
                return r;
        }
        a->claim = c;
        a->buffer = buffer;
        a->buffer_id = zcusb_buffer_id(buffer);
        LIST_INSERT_HEAD(&c->handle->arenas, a, link);
        log_dbg(ctx, "interface %u: new arena of %zu bytes (buffer %u)", c->interface, a->size, a->buffer_id);
        *ret = a;
        return 0;
}

/* PAGES pages of one of claim C's arenas, a new one if none has room. */
static int claim_take(CompatClaim *c, size_t pages, Arena **ret, size_t *ret_first) {
        Arena *a;
        int r;

        LIST_FOREACH(a, &c->handle->arenas, link)
                if (a->claim == c && arena_take(a, pages, ret_first)) {
                        *ret = a;
                        return 0;
                }
        r = arena_new(c, pages, &a);
        if (r < 0) {
                log_warn(c->handle->dev->ctx, "interface %u: no zcusb buffer for %zu bytes: %s", c->interface,
                         pages * PAGE, zcusb_last_error_message(c->handle->dev->ctx->zc));
                return r;
        }
        if (!arena_take(a, pages, ret_first))
                return -EPROTO; /* zcusbd's buffer is smaller than asked for: libzcusb checks */
        *ret = a;
        return 0;
}

void memory_claim_new(CompatClaim *c) {
        Arena *a;

        /* The cost of an arena (a D-Bus round trip, zcusbd allocating and
         * zcusb.ko pinning 4 MiB) is the claim's, not its first transfer's:
         * every claim that moves data, control requests included, needs one,
         * and programs set up (claim, allocate) before they measure or stream.
         * If zcusbd says no, the first use asks again (maybe for less). */
        if (arena_new(c, ARENA_MIN / PAGE, &a) < 0)
                log_dbg(c->handle->dev->ctx, "interface %u: no first arena: %s", c->interface,
                        zcusb_last_error_message(c->handle->dev->ctx->zc));
}

void memory_claim_released(CompatClaim *c) {
        struct libusb_device_handle *h = c->handle;

        /* Its transfers are flushed: what is left used is dev_mem. */
        for (Arena *a = LIST_FIRST(&h->arenas), *next; a; a = next) {
                next = LIST_NEXT(a, link);
                if (a->claim != c)
                        continue;
                a->claim = NULL;
                a->buffer = NULL; /* zcusbd frees it with the claim */
                if (a->dev_mem_pages == 0)
                        arena_unmap_free(a);
        }
}

void memory_handle_closed(struct libusb_device_handle *h) {
        DevMem *m;

        while ((m = LIST_FIRST(&h->dev_mem))) {
                LIST_REMOVE(m, link);
                free(m);
        }
        while (!LIST_EMPTY(&h->arenas))
                arena_unmap_free(LIST_FIRST(&h->arenas));
}

/* ---- staging: ordinary memory goes through a claim's zcusb buffers ---- */

int staging_alloc(CompatClaim *c, size_t size, uint8_t **ret_data, uint32_t *ret_buffer_id, uint64_t *ret_offset) {
        size_t first;
        Arena *a;
        int r;

        r = claim_take(c, pages_of(size), &a, &first);
        if (r < 0)
                return r;
        *ret_data = a->data + first * PAGE;
        *ret_buffer_id = a->buffer_id;
        *ret_offset = first * PAGE;
        return 0;
}

void staging_release(CompatClaim *c, const uint8_t *data, size_t size) {
        Arena *a = arena_of(c->handle, c, data);

        if (a)
                pages_mark(a, (size_t) (data - a->data) / PAGE, pages_of(size), false);
}

/* ---- dev_mem: zcusb buffer memory, zero copy ---- */

unsigned char *LIBUSB_CALL libusb_dev_mem_alloc(libusb_device_handle *handle, size_t length) {
        struct libusb_context *ctx = handle->dev->ctx;
        CompatClaim *c = NULL;
        size_t first;
        DevMem *m;
        Arena *a;
        int r;

        if (length == 0 || length > SIZE_MAX - PAGE)
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
        m->size = length;
        m->pages = pages_of(length);
        r = claim_take(c, m->pages, &a, &first);
        if (r < 0) {
                pthread_mutex_unlock(&ctx->lock);
                free(m);
                return NULL;
        }
        m->arena = a;
        m->data = a->data + first * PAGE;
        a->dev_mem_pages += m->pages;
        LIST_INSERT_HEAD(&handle->dev_mem, m, link);
        pthread_mutex_unlock(&ctx->lock);
        /* Not cleared: a fresh arena is zeros, pages used again hold what the
         * program left there. usbfs clears (its memory is the kernel's); libusb
         * promises nothing, and a portable program cannot count on it (dev_mem
         * exists on Linux only, the fallback is malloc()). Clearing costs what
         * moving the bytes costs, which zero copy is for. */
        return m->data;
}

/* A transfer of C in flight or waiting has its data in M. */
static bool dev_mem_in_use(const CompatClaim *c, const DevMem *m) {
        uint64_t start = (uint64_t) (m->data - m->arena->data), end = start + m->pages * PAGE;
        const CompatTransfer *ct;

        for (unsigned slot = 0; slot < COMPAT_MAX_IN_FLIGHT; slot++) {
                ct = c->slots[slot];
                if (ct && !ct->staged && ct->buffer_id == m->arena->buffer_id && ct->offset < end &&
                    ct->offset + ct->zc_length > start)
                        return true;
        }
        TAILQ_FOREACH(ct, &c->waiting, link)
                if (!ct->staged && ct->buffer_id == m->arena->buffer_id && ct->offset < end &&
                    ct->offset + ct->zc_length > start)
                        return true;
        return false;
}

int LIBUSB_CALL libusb_dev_mem_free(libusb_device_handle *handle, unsigned char *buffer, size_t length) {
        struct libusb_context *ctx = handle->dev->ctx;
        size_t empty = 0;
        DevMem *m;
        Arena *a, *o;

        (void) length;
        pthread_mutex_lock(&ctx->lock);
        LIST_FOREACH(m, &handle->dev_mem, link)
                if (m->data == buffer)
                        break;
        if (!m) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_INVALID_PARAM;
        }
        a = m->arena;
        if (a->claim && dev_mem_in_use(a->claim, m)) {
                pthread_mutex_unlock(&ctx->lock);
                return LIBUSB_ERROR_BUSY;
        }
        LIST_REMOVE(m, link);
        pages_mark(a, (size_t) (m->data - a->data) / PAGE, m->pages, false);
        a->dev_mem_pages -= m->pages;
        free(m);

        if (!a->claim) {
                if (a->dev_mem_pages == 0)
                        arena_unmap_free(a);
        } else if (a->used_pages == 0) {
                LIST_FOREACH(o, &handle->arenas, link)
                        if (o != a && o->claim == a->claim && o->used_pages == 0)
                                empty += o->size;
                if (empty >= ARENA_KEEP_EMPTY)
                        (void) arena_give_back(ctx, a);
        }
        pthread_mutex_unlock(&ctx->lock);
        return LIBUSB_SUCCESS;
}

const DevMem *dev_mem_find(struct libusb_device_handle *handle, CompatClaim *c, const uint8_t *p, size_t size) {
        const DevMem *m;

        LIST_FOREACH(m, &handle->dev_mem, link)
                if (m->arena->claim == c && c && p >= m->data && size <= m->size &&
                    (size_t) (p - m->data) <= m->size - size)
                        return m;
        return NULL;
}
