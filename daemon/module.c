/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <libkmod.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "log.h"
#include "module.h"
#include "util.h"

static void kmod_ctx_unrefp(struct kmod_ctx **c) {
        kmod_unref(*c);
}

static void kmod_module_unrefp(struct kmod_module **m) {
        kmod_module_unref(*m);
}

/* libkmod writes to stderr by default; its "module not found" is expected
 * where zcusb.ko is not installed, so route it through our log at debug. */
_printf_(6, 0) static void kmod_log(void *data, int priority, const char *file, int line, const char *fn,
                                   const char *format, va_list args) {
        char buf[512];

        (void) data, (void) priority, (void) file, (void) line, (void) fn;
        vsnprintf(buf, sizeof(buf), format, args);
        buf[strcspn(buf, "\n")] = '\0';
        log_debug("libkmod: %s", buf);
}

static int set_reason(char **reason, const char *text, int r) {
        if (reason && asprintf(reason, "%s%s%s", text, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "") < 0)
                *reason = NULL;
        return 0;
}

int module_ensure_loaded(bool load, char **reason) {
        _cleanup_(kmod_ctx_unrefp) struct kmod_ctx *ctx = NULL;
        _cleanup_(kmod_module_unrefp) struct kmod_module *mod = NULL;
        int r;

        if (access("/sys/module/zcusb", F_OK) >= 0)
                return 1;
        if (!load)
                return set_reason(reason, "zcusb.ko is not loaded and LoadModule=no", 0);

        ctx = kmod_new(NULL, NULL);
        if (!ctx)
                return set_reason(reason, "cannot set up libkmod", -ENOMEM);
        kmod_set_log_fn(ctx, kmod_log, NULL);
        r = kmod_module_new_from_name(ctx, "zcusb", &mod);
        if (r < 0)
                return set_reason(reason, "zcusb.ko cannot be looked up", r);
        r = kmod_module_probe_insert_module(mod, KMOD_PROBE_FAIL_ON_LOADED, NULL, NULL, NULL, NULL);
        if (r == -EEXIST)
                return 1;
        if (r == -ENOENT || r == -ENOSYS) {
                struct utsname u;
                char dir[sizeof("/lib/modules/") + sizeof(u.release)];

                /* ProtectKernelModules= (the shipped unit) hides the tree:
                 * "not installed" would send the admin the wrong way. */
                if (uname(&u) >= 0 && snprintf(dir, sizeof(dir), "/lib/modules/%s", u.release) > 0 &&
                    access(dir, F_OK) < 0)
                        return set_reason(reason, "zcusb.ko is not loaded and zcusbd cannot load it itself "
                                          "(no /lib/modules here: ProtectKernelModules=); zcusb-load.service "
                                          "loads it before zcusbd starts: see systemctl status zcusb-load", 0);
                return set_reason(reason, "zcusb.ko is not installed for this kernel (see kmod/README.md)", 0);
        }
        if (r < 0)
                return set_reason(reason, "loading zcusb.ko failed", r);
        log_info("Loaded zcusb.ko.");
        return 1;
}

char *module_version(void) {
        _cleanup_fclose_ FILE *f = fopen("/sys/module/zcusb/version", "re");
        char buf[64];

        if (!f || !fgets(buf, sizeof(buf), f))
                return access("/sys/module/zcusb", F_OK) >= 0 ? strdup("unknown") : NULL;
        buf[strcspn(buf, "\n")] = '\0';
        return strdup(buf);
}

int module_load_by_name(const char *name) {
        _cleanup_(kmod_ctx_unrefp) struct kmod_ctx *ctx = NULL;
        _cleanup_(kmod_module_unrefp) struct kmod_module *mod = NULL;
        int r;

        ctx = kmod_new(NULL, NULL);
        if (!ctx)
                return -ENOMEM;
        kmod_set_log_fn(ctx, kmod_log, NULL);
        r = kmod_module_new_from_name(ctx, name, &mod);
        if (r < 0)
                return r;
        r = kmod_module_probe_insert_module(mod, KMOD_PROBE_FAIL_ON_LOADED, NULL, NULL, NULL, NULL);
        if (r == -EEXIST)
                return 0;
        if (r < 0)
                return r;
        log_info("Loaded %s.", name);
        return 0;
}
