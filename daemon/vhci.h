/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* vhci-hcd's sysfs face (drivers/usb/usbip/vhci_sysfs.c): the status
 * tables, and the attach/detach files through which a connected USB/IP
 * socket becomes a local USB device. */

#define VHCI_SYSFS_DIR "/sys/devices/platform/vhci_hcd.0"
#define VHCI_STATUS_NULL 4 /* VDEV_ST_NULL: the port is free */

typedef struct VhciPort {
        uint32_t port;     /* global port number, as attach/detach take it */
        bool super_speed;  /* on the SuperSpeed root hub ("ss") */
        uint32_t status;   /* VDEV_ST_* */
        uint32_t devid;    /* the remote device's busnum << 16 | devnum, as attach was given */
        char local_busid[32]; /* the attached usb_device's name, "0-0" when none */
} VhciPort;

/* Parse one status file ("hub port sta spd dev sockfd local_busid" rows).
 * Appends to *ports (grown), returns 0 or -EINVAL for text that is not a
 * vhci status table. */
int vhci_parse_status(const char *text, VhciPort **ports, size_t *n_ports);

/* A free port on the root hub SPEED needs (SuperSpeed devices on "ss",
 * the others on "hs"), not in SKIP; -EBUSY when none. */
int vhci_pick_port(const VhciPort *ports, size_t n_ports, uint32_t speed, const uint32_t *skip, size_t n_skip);

/* Every port of every vhci controller, read now. -ENOENT when vhci-hcd is
 * not loaded. */
int vhci_read_ports(VhciPort **ret, size_t *ret_n);

/* How long the connection of SOCKFD (TCP) may go unanswered before the
 * kernel drops it, which vhci-hcd then turns into an unplug: TCP keepalive
 * probes while idle (first after SECONDS/2, then every SECONDS/6, three
 * lost), TCP_USER_TIMEOUT while data waits for acknowledgement. Left as the
 * kernel has it (keepalive after 2 hours, retransmissions for ~15 minutes)
 * when SECONDS is 0. Returns 0 or -errno. */
int vhci_socket_set_link_timeout(int sockfd, uint32_t seconds);

/* Hand SOCKFD to the kernel on a free port of the right speed (retrying
 * another port when one is taken under us). On success *ret_port is the
 * port; the kernel holds its own reference to the socket. */
int vhci_attach(int sockfd, uint32_t devid, uint32_t speed, uint32_t *ret_port);
int vhci_detach(uint32_t port);
/* Detach PORT only if it still holds the import of DEVID: vhci-hcd frees a
 * port by itself when the connection drops, and someone else's import may
 * have it by now. 1 when detached, 0 when it was not ours (nothing done). */
int vhci_detach_if_ours(uint32_t port, uint32_t devid);

/* The name of the usb_device on PORT ("" when none yet). */
int vhci_port_device(uint32_t port, char ret[static 32]);
