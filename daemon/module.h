/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* zcusb.ko, found (and loaded, when LOAD) through libkmod. Returns 1 when
 * the module is live, 0 when not (why in *reason), < 0 on error. */
int module_ensure_loaded(bool load, char **reason);

/* The module's MODULE_VERSION, or NULL when it is not loaded. */
char *module_version(void);

/* Load module NAME (e.g. "vhci-hcd") through libkmod with its
 * dependencies. 0 when loaded (now or before), < 0 errno otherwise. */
int module_load_by_name(const char *name);
