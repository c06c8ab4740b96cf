/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "exit-codes.h"
#include "util.h"

struct zcusb;

/* Print "zcusbctl: MESSAGE" to stderr and return CODE. */
_printf_(2, 3) int fail(int code, const char *fmt, ...);

/* Report a failed libzcusb call R with its sentence and a fix; the exit code
 * is exit_code_for(R, FALLBACK). In ctl-transfer.c. */
int fail_lib(struct zcusb *ctx, int r, int fallback);
