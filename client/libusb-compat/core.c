/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Contexts, options, logging, errors and versions of the libusb-1.0 API. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "compat-internal.h"

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct libusb_context *default_ctx;
static libusb_log_cb global_log_cb;

struct libusb_context *compat_ctx(struct libusb_context *ctx) {
        return ctx ?: default_ctx;
}

/* ---- errors ---- */

int compat_error(int r) {
        switch (r) {
        case 0:             return LIBUSB_SUCCESS;
        case -EIO:
        case -EPROTO:
        case -EBADMSG:      return LIBUSB_ERROR_IO;
        case -EINVAL:       return LIBUSB_ERROR_INVALID_PARAM;
        case -EACCES:
        case -EPERM:        return LIBUSB_ERROR_ACCESS;
        case -ENODEV:
        case -ESHUTDOWN:
        case -ECONNRESET:   /* zcusbd left the bus */
        case -EHOSTUNREACH: return LIBUSB_ERROR_NO_DEVICE;
        case -ENOENT:
        case -ENXIO:        return LIBUSB_ERROR_NOT_FOUND;
        case -EBUSY:        return LIBUSB_ERROR_BUSY;
        case -ETIMEDOUT:    return LIBUSB_ERROR_TIMEOUT;
        case -EOVERFLOW:    return LIBUSB_ERROR_OVERFLOW;
        case -EPIPE:        return LIBUSB_ERROR_PIPE;
        case -EINTR:        return LIBUSB_ERROR_INTERRUPTED;
        case -ENOMEM:
        case -EDQUOT:       return LIBUSB_ERROR_NO_MEM;
        case -EOPNOTSUPP:
        case -ENOSYS:       return LIBUSB_ERROR_NOT_SUPPORTED;
        default:            return LIBUSB_ERROR_OTHER;
        }
}

enum libusb_transfer_status compat_transfer_status(int status) {
        switch (status) {
        case 0:          return LIBUSB_TRANSFER_COMPLETED;
        case -ETIMEDOUT: return LIBUSB_TRANSFER_TIMED_OUT;
        case -EPIPE:     return LIBUSB_TRANSFER_STALL;
        case -ECANCELED: return LIBUSB_TRANSFER_CANCELLED;
        case -EOVERFLOW: return LIBUSB_TRANSFER_OVERFLOW;
        case -ENODEV:
        case -ESHUTDOWN:
        case -ECONNRESET: return LIBUSB_TRANSFER_NO_DEVICE;
        default:         return LIBUSB_TRANSFER_ERROR; /* -EREMOTEIO (short), -EACCES (revoked), ... */
        }
}

static const struct {
        int code;
        const char *name;
        const char *text;
} error_table[] = {
        { LIBUSB_SUCCESS,             "LIBUSB_SUCCESS",             "Success" },
        { LIBUSB_ERROR_IO,            "LIBUSB_ERROR_IO",            "Input/Output Error" },
        { LIBUSB_ERROR_INVALID_PARAM, "LIBUSB_ERROR_INVALID_PARAM", "Invalid parameter" },
        { LIBUSB_ERROR_ACCESS,        "LIBUSB_ERROR_ACCESS",        "Access denied (insufficient permissions)" },
        { LIBUSB_ERROR_NO_DEVICE,     "LIBUSB_ERROR_NO_DEVICE",     "No such device (it may have been disconnected)" },
        { LIBUSB_ERROR_NOT_FOUND,     "LIBUSB_ERROR_NOT_FOUND",     "Entity not found" },
        { LIBUSB_ERROR_BUSY,          "LIBUSB_ERROR_BUSY",          "Resource busy" },
        { LIBUSB_ERROR_TIMEOUT,       "LIBUSB_ERROR_TIMEOUT",       "Operation timed out" },
        { LIBUSB_ERROR_OVERFLOW,      "LIBUSB_ERROR_OVERFLOW",      "Overflow" },
        { LIBUSB_ERROR_PIPE,          "LIBUSB_ERROR_PIPE",          "Pipe error" },
        { LIBUSB_ERROR_INTERRUPTED,   "LIBUSB_ERROR_INTERRUPTED",   "System call interrupted (perhaps due to signal)" },
        { LIBUSB_ERROR_NO_MEM,        "LIBUSB_ERROR_NO_MEM",        "Insufficient memory" },
        { LIBUSB_ERROR_NOT_SUPPORTED, "LIBUSB_ERROR_NOT_SUPPORTED", "Operation not supported or unimplemented on this platform" },
        { LIBUSB_ERROR_OTHER,         "LIBUSB_ERROR_OTHER",         "Other error" },
};

static const char *const transfer_status_names[] = {
        [LIBUSB_TRANSFER_COMPLETED] = "LIBUSB_TRANSFER_COMPLETED",
        [LIBUSB_TRANSFER_ERROR] = "LIBUSB_TRANSFER_ERROR",
        [LIBUSB_TRANSFER_TIMED_OUT] = "LIBUSB_TRANSFER_TIMED_OUT",
        [LIBUSB_TRANSFER_CANCELLED] = "LIBUSB_TRANSFER_CANCELLED",
        [LIBUSB_TRANSFER_STALL] = "LIBUSB_TRANSFER_STALL",
        [LIBUSB_TRANSFER_NO_DEVICE] = "LIBUSB_TRANSFER_NO_DEVICE",
        [LIBUSB_TRANSFER_OVERFLOW] = "LIBUSB_TRANSFER_OVERFLOW",
};

const char *LIBUSB_CALL libusb_error_name(int code) {
        /* libusb names both error codes (<= 0) and transfer statuses (> 0). */
        if (code > 0 && (size_t) code < ELEMENTSOF(transfer_status_names))
                return transfer_status_names[code];
        for (size_t i = 0; i < ELEMENTSOF(error_table); i++)
                if (error_table[i].code == code)
                        return error_table[i].name;
        return "**UNKNOWN**";
}

const char *LIBUSB_CALL libusb_strerror(int code) {
        for (size_t i = 0; i < ELEMENTSOF(error_table); i++)
                if (error_table[i].code == code)
                        return error_table[i].text;
        return "**UNKNOWN**";
}

int LIBUSB_CALL libusb_setlocale(const char *locale) {
        /* Only English texts, as libusb without translations. */
        if (!locale || strlen(locale) < 2)
                return LIBUSB_ERROR_INVALID_PARAM;
        if ((locale[0] != 'e' && locale[0] != 'E') || (locale[1] != 'n' && locale[1] != 'N') ||
            (locale[2] != '\0' && locale[2] != '_' && locale[2] != '-' && locale[2] != '.'))
                return LIBUSB_ERROR_NOT_FOUND;
        return LIBUSB_SUCCESS;
}

const struct libusb_version *LIBUSB_CALL libusb_get_version(void) {
        static const struct libusb_version version = {
                .major = 1, .minor = 0, .micro = 26, .nano = 0, .rc = "",
                .describe = "https://libusb.info (zcusb compatibility library)",
        };
        return &version;
}

int LIBUSB_CALL libusb_has_capability(uint32_t capability) {
        switch (capability) {
        case LIBUSB_CAP_HAS_CAPABILITY:
        case LIBUSB_CAP_HAS_HOTPLUG:
        case LIBUSB_CAP_SUPPORTS_DETACH_KERNEL_DRIVER: /* zcusbd does it per its policy (ZCUSB_DETACH) */
                return 1;
        default:
                return 0;
        }
}

/* ---- logging ---- */

void compat_log(struct libusb_context *ctx, enum libusb_log_level level, const char *function, const char *fmt,
                ...) {
        static const char *const names[] = { "", "error", "warning", "info", "debug" };
        char text[1024];
        int ctx_level;
        va_list ap;

        ctx = compat_ctx(ctx);
        ctx_level = ctx ? ctx->log_level : LIBUSB_LOG_LEVEL_NONE;
        if (!ctx) {
                const char *e = getenv("LIBUSB_DEBUG");
                ctx_level = e ? atoi(e) : LIBUSB_LOG_LEVEL_NONE;
        }
        if (level == LIBUSB_LOG_LEVEL_NONE || (int) level > ctx_level)
                return;

        int n = snprintf(text, sizeof(text), "libusb: %s [%s] ", names[level], function);
        va_start(ap, fmt);
        if (n >= 0 && (size_t) n < sizeof(text))
                (void) vsnprintf(text + n, sizeof(text) - (size_t) n, fmt, ap);
        va_end(ap);
        n = (int) strlen(text);
        if ((size_t) n + 1 < sizeof(text)) {
                text[n] = '\n';
                text[n + 1] = '\0';
        }
        if (global_log_cb)
                global_log_cb(ctx, level, text);
        if (ctx && ctx->log_cb)
                ctx->log_cb(ctx, level, text);
        if (!global_log_cb && !(ctx && ctx->log_cb))
                fputs(text, stderr);
}

int compat_not_supported(struct libusb_context *ctx, const char *function, const char *why) {
        compat_log(ctx, LIBUSB_LOG_LEVEL_WARNING, function, "not supported through zcusbd: %s", why);
        return LIBUSB_ERROR_NOT_SUPPORTED;
}

void LIBUSB_CALL libusb_set_log_cb(libusb_context *ctx, libusb_log_cb cb, int mode) {
        if (mode & LIBUSB_LOG_CB_GLOBAL)
                global_log_cb = cb;
        if ((mode & LIBUSB_LOG_CB_CONTEXT) && compat_ctx(ctx))
                compat_ctx(ctx)->log_cb = cb;
}

void LIBUSB_CALL libusb_set_debug(libusb_context *ctx, int level) {
        ctx = compat_ctx(ctx);
        if (ctx && !getenv("LIBUSB_DEBUG"))
                ctx->log_level = level < 0 ? 0 : level > 4 ? 4 : level;
}

int LIBUSB_CALL libusb_set_option(libusb_context *ctx, enum libusb_option option, ...) {
        va_list ap;
        int level;

        ctx = compat_ctx(ctx);
        switch (option) {
        case LIBUSB_OPTION_LOG_LEVEL:
                va_start(ap, option);
                level = va_arg(ap, int);
                va_end(ap);
                if (level < LIBUSB_LOG_LEVEL_NONE || level > LIBUSB_LOG_LEVEL_DEBUG)
                        return LIBUSB_ERROR_INVALID_PARAM;
                if (ctx && !getenv("LIBUSB_DEBUG"))
                        ctx->log_level = level;
                return LIBUSB_SUCCESS;
        case LIBUSB_OPTION_NO_DEVICE_DISCOVERY:
                /* Devices still come from zcusbd only; libusb_wrap_sys_device() is
                 * what such programs use next, and that cannot be offered. */
                if (ctx)
                        ctx->no_device_discovery = true;
                return LIBUSB_SUCCESS;
        case LIBUSB_OPTION_USE_USBDK:
                return compat_not_supported(ctx, __func__, "UsbDk is a Windows backend");
        default:
                return LIBUSB_ERROR_INVALID_PARAM;
        }
}

/* ---- contexts ---- */

void bus_lock(struct libusb_context *ctx) {
        pthread_mutex_lock(&ctx->bus_lock);
}

void bus_unlock(struct libusb_context *ctx) {
        pthread_mutex_unlock(&ctx->bus_lock);
        ctx_wake(ctx);
}

void ctx_wake(struct libusb_context *ctx) {
        uint64_t one = 1;
        (void) !write(ctx->wake_fd, &one, sizeof(one));
}

static void ctx_free(struct libusb_context *ctx) {
        struct libusb_device *dev;
        struct libusb_device_handle *h;

        if (!ctx)
                return;
        while ((h = LIST_FIRST(&ctx->handles))) {
                log_warn(ctx, "device handle %p still open at libusb_exit(): closing it", (void *) h);
                libusb_close(h);
        }
        hotplug_exit(ctx);
        while ((dev = LIST_FIRST(&ctx->devices)))
                device_unlist(dev);
        if (ctx->transfers_done)
                log_info(ctx, "%llu transfers: %llu bytes zero-copy (dev_mem), %llu bytes through staging buffers",
                         (unsigned long long) ctx->transfers_done, (unsigned long long) ctx->bytes_zero_copy,
                         (unsigned long long) ctx->bytes_staged);
        zcusb_close(ctx->zc);
        if (ctx->epoll_fd >= 0)
                close(ctx->epoll_fd);
        if (ctx->wake_fd >= 0)
                close(ctx->wake_fd);
        pthread_mutex_destroy(&ctx->lock);
        pthread_mutex_destroy(&ctx->bus_lock);
        pthread_mutex_destroy(&ctx->events_lock);
        pthread_mutex_destroy(&ctx->waiters_lock);
        pthread_mutex_destroy(&ctx->hotplug_lock);
        pthread_cond_destroy(&ctx->waiters_cond);
        free(ctx);
}

static int ctx_new(struct libusb_context **ret) {
        struct libusb_context *ctx;
        struct epoll_event ev = { .events = EPOLLIN };
        const char *e;
        int r;

        ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
                return LIBUSB_ERROR_NO_MEM;
        ctx->refcount = 1;
        ctx->epoll_fd = ctx->wake_fd = -1;
        pthread_mutex_init(&ctx->lock, NULL);
        pthread_mutex_init(&ctx->bus_lock, NULL);
        pthread_mutex_init(&ctx->events_lock, NULL);
        pthread_mutex_init(&ctx->waiters_lock, NULL);
        pthread_mutex_init(&ctx->hotplug_lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&ctx->waiters_cond, &ca);
        pthread_condattr_destroy(&ca);
        LIST_INIT(&ctx->devices);
        LIST_INIT(&ctx->handles);
        LIST_INIT(&ctx->claims);
        TAILQ_INIT(&ctx->done);
        LIST_INIT(&ctx->hotplug_callbacks);
        TAILQ_INIT(&ctx->hotplug_events);
        ctx->next_hotplug_handle = 1;
        e = getenv("LIBUSB_DEBUG");
        if (e)
                ctx->log_level = atoi(e) < 0 ? 0 : atoi(e) > 4 ? 4 : atoi(e);

        ctx->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        ctx->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (ctx->epoll_fd < 0 || ctx->wake_fd < 0) {
                ctx_free(ctx);
                return LIBUSB_ERROR_OTHER;
        }
        ev.data.u64 = 0; /* 0: the wake fd, 1: the bus, others: claims */
        if (epoll_ctl(ctx->epoll_fd, EPOLL_CTL_ADD, ctx->wake_fd, &ev) < 0) {
                ctx_free(ctx);
                return LIBUSB_ERROR_OTHER;
        }
        ctx->next_claim_id = 2;

        r = zcusb_open(&ctx->zc);
        if (r < 0) {
                log_err(ctx, "cannot reach zcusbd on the system bus: %s (%s). Is zcusbd installed, and is "
                        "the system bus reachable from here (DBUS_SYSTEM_BUS_ADDRESS)?",
                        zcusb_strerror(r), ctx->zc ? zcusb_last_error_message(ctx->zc) : "");
                ctx->zc = NULL;
                ctx_free(ctx);
                return r == -EACCES ? LIBUSB_ERROR_ACCESS : LIBUSB_ERROR_OTHER;
        }
        ev.data.u64 = 1;
        if (epoll_ctl(ctx->epoll_fd, EPOLL_CTL_ADD, sd_bus_get_fd(ctx->zc->bus), &ev) < 0) {
                ctx_free(ctx);
                return LIBUSB_ERROR_OTHER;
        }
        *ret = ctx;
        return LIBUSB_SUCCESS;
}

int LIBUSB_CALL libusb_init(libusb_context **ret) {
        struct libusb_context *ctx;
        int r;

        if (ret) {
                r = ctx_new(&ctx);
                if (r < 0)
                        return r;
                *ret = ctx;
                log_dbg(ctx, "libusb-1.0 on zcusbd (compat library), context %p", (void *) ctx);
                return LIBUSB_SUCCESS;
        }
        pthread_mutex_lock(&default_lock);
        if (default_ctx) {
                default_ctx->refcount++;
                r = LIBUSB_SUCCESS;
        } else
                r = ctx_new(&default_ctx);
        pthread_mutex_unlock(&default_lock);
        return r;
}

void LIBUSB_CALL libusb_exit(libusb_context *ctx) {
        if (ctx) {
                ctx_free(ctx);
                return;
        }
        pthread_mutex_lock(&default_lock);
        if (default_ctx && --default_ctx->refcount == 0) {
                ctx_free(default_ctx);
                default_ctx = NULL;
        }
        pthread_mutex_unlock(&default_lock);
}
