/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "backend.h"
#include "util.h"

static int zcusb_probe(char **reason) {
        if (reason)
                *reason = strdup("the zcusb.ko backend is not part of this zcusbd version");
        return 0;
}

/* Only probe is set until the module's backend lands: backend_select() never
 * returns it, so nothing else is ever called. */
const BackendOps backend_zcusb = {
        .name = "zcusb.ko",
        .probe = zcusb_probe,
};

const BackendOps *backend_select(BackendChoice choice, char **reason) {
        if (choice != BACKEND_CHOICE_USBFS && backend_zcusb.probe(reason) > 0)
                return &backend_zcusb;
        return &backend_usbfs;
}
