/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "backend.h"

const BackendOps *backend_select(const Config *c, char **reason) {
        if (c->backend == BACKEND_CHOICE_USBFS)
                return &backend_usbfs;
        if (backend_zcusb.probe(c, reason) > 0)
                return &backend_zcusb;
        /* Backend=zcusb: no silent fallback; claims fail and say why. */
        return c->backend == BACKEND_CHOICE_MODULE ? &backend_zcusb : &backend_usbfs;
}
