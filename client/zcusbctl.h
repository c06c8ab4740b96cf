/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "util.h"

/* Exit codes (client/CLI.md), shared by every zcusbctl command. */
enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,
        EXIT_USAGE = 2,
        EXIT_NO_DEVICE = 3,
        EXIT_ACCESS = 4,
        EXIT_UNREACHABLE = 5,
        EXIT_TRANSFER = 6,
};

/* Print "zcusbctl: MESSAGE" to stderr and return CODE. */
_printf_(2, 3) int fail(int code, const char *fmt, ...);
