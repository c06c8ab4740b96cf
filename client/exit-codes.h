/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Exit codes (client/CLI.md), shared by every zcusbctl command and by the VM
 * tier's zcusb-loopback, whose callers read them the same way. */
enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,
        EXIT_USAGE = 2,
        EXIT_NO_DEVICE = 3,
        EXIT_ACCESS = 4,
        EXIT_UNREACHABLE = 5,
        EXIT_TRANSFER = 6,
};

/* A libzcusb failure (-errno) as an exit code: the daemon's verdicts have
 * codes of their own; FALLBACK covers the rest. */
int exit_code_for(int r, int fallback);
