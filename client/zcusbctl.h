/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "exit-codes.h"
#include "util.h"

#include <systemd/sd-bus.h>

struct zcusb;

/* -j/--json was given. */
extern bool arg_json;

/* A failed bus call R as an exit code and a message naming cause and fix. */
int fail_bus(int r, const sd_bus_error *e, const char *what);
/* DEVICE (any form 'zcusbctl --help' lists) -> object path, or an exit code. */
int resolve_device(sd_bus *bus, const char *arg, char **ret);

/* Print "zcusbctl: MESSAGE" to stderr and return CODE. */
_printf_(2, 3) int fail(int code, const char *fmt, ...);

/* Report a failed libzcusb call R with its sentence and a fix; the exit code
 * is exit_code_for(R, FALLBACK). In ctl-transfer.c. */
int fail_lib(struct zcusb *ctx, int r, int fallback);
