/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

/* zcusbctl attach / detach / remote: zcusbd's USB/IP imports. */
int ctl_attach(sd_bus *bus, int argc, char **argv);
int ctl_detach(sd_bus *bus, int argc, char **argv);
int ctl_remote(sd_bus *bus, int argc, char **argv);
