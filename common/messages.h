/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Sentences libzcusb and zcusbctl both say: one wording, in one place. */

/* A DEVICE argument that matches nothing the caller may see (zcusbd does not
 * tell apart "absent" from "hidden from you"). */
#define ZCUSB_MSG_NO_SUCH_DEVICE     "no such device, or you may not see it"
#define ZCUSB_MSG_NO_SUCH_DEVICE_FIX "'zcusbctl list' shows the devices you may see"
