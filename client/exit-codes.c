/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "exit-codes.h"

int exit_code_for(int r, int fallback) {
        switch (-r) {
        case ENODEV:
                return EXIT_NO_DEVICE;
        case EACCES:
        case ENOKEY:    /* polkit wants the user to authenticate */
        case ECANCELED: /* the user cancelled the authentication a claim needed */
                return EXIT_ACCESS;
        case EHOSTUNREACH:
        case ECONNRESET:
        case ENOTCONN:
                return EXIT_UNREACHABLE;
        case ENOTUNIQ:
                return EXIT_USAGE;
        default:
                return fallback;
        }
}
