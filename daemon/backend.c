/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "backend.h"
#include "util.h"

static int usbfs_probe(char **reason) {
        (void) reason;
        return 1; /* usbfs is part of every kernel that has USB host support */
}

const BackendOps backend_usbfs = {
        .name = "usbfs",
        .probe = usbfs_probe,
};

static int zcusb_probe(char **reason) {
        if (reason)
                *reason = strdup("the zcusb.ko backend is not part of this zcusbd version");
        return 0;
}

const BackendOps backend_zcusb = {
        .name = "zcusb.ko",
        .probe = zcusb_probe,
};

const BackendOps *backend_select(BackendChoice choice, char **reason) {
        if (choice != BACKEND_CHOICE_USBFS && backend_zcusb.probe(reason) > 0)
                return &backend_zcusb;
        return &backend_usbfs;
}
