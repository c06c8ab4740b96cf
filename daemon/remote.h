/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "forward.h"
#include "host-port.h"
#include "policy.h"
#include "usbip-proto.h"

/* A USB/IP device zcusbd imports (AttachRemote, or [Remote] Attach= in
 * zcusbd.conf). zcusbd has no network access: zcusb-remote-connect (a
 * socket-activated helper) connects and imports and passes the socket back;
 * zcusbd hands it to vhci-hcd, whose new usb_device then arrives through
 * udev like any other and is served as a Device. The Remote only tracks
 * which local device it became. */

typedef enum RemoteState {
        REMOTE_CONNECTING, /* the helper connects and imports */
        REMOTE_ATTACHING,  /* handed to vhci-hcd; waiting for the usb_device */
        REMOTE_ATTACHED,
        REMOTE_WAITING,    /* persistent: dropped or failed, retried after a backoff */
        REMOTE_DETACHED,   /* persistent: detached by an administrator, not retried */
        _REMOTE_STATE_MAX,
} RemoteState;


struct Remote {
        Manager *manager;
        TAILQ_ENTRY(Remote) link;

        char host[HOST_NAME_MAX_LEN + 1];
        uint16_t port;
        char busid[USBIP_BUSID_SIZE];
        bool persistent; /* from the configuration: re-attached when dropped */
        uid_t owner;     /* who attached it (root for persistent ones) */

        RemoteState state;
        char *last_error; /* "" when none */
        unsigned failures; /* in a row, for the backoff */
        bool detaching;    /* DetachRemote asked; the device removal ends it */

        sd_bus_message *pending; /* the AttachRemote call, answered once the device is there */

        int helper_fd;
        sd_event_source *helper_source;
        sd_event_source *timer; /* the current step's deadline, or the next retry */

        bool has_port;
        uint32_t vhci_port;
        UsbipDevice device;
        char *device_syspath; /* the local usb_device, once it is there */
        char *device_path;    /* its object path; "/" when none */
};

int remote_new(Manager *m, const char *host, uint16_t port, const char *busid, bool persistent, uid_t owner,
               Remote **ret);
/* Unlinks; a device still attached on vhci is detached; a waiting
 * AttachRemote gets ERROR_NAME (or Failed). */
Remote *remote_free(Remote *r);
void remote_free_all(Manager *m);

/* Connect through the helper and import (asynchronously). Failures answer
 * a pending call; < 0 means it failed at once and R may be gone. */
int remote_start(Remote *r);
/* DetachRemote: the port is detached; the device's removal ends the Remote. */
int remote_detach(Remote *r);

/* From manager.c: a usb_device appeared / went. */
void remote_on_device_added(Manager *m, Device *d);
void remote_on_device_removed(Manager *m, Device *d);

/* [Remote] Attach= entries: attached now and kept attached. */
int remote_start_persistent(Manager *m);

Remote *remote_find(Manager *m, const char *host, uint16_t port, const char *busid);
Remote *remote_find_by_device(Manager *m, const char *object_path);

/* Policy from zcusbd.conf [Remote], never from the caller: root always may
 * attach; others when AllowUsers=/AllowGroups= name them. */
bool remote_may_attach(Manager *m, const Caller *c);
/* Is HOST (as written) in AllowHosts= ("*" allows any)? */
bool remote_host_allowed(Manager *m, const char *host);

const char *remote_state_to_string(RemoteState s);

/* remote-dbus.c */
extern const sd_bus_vtable remote_manager_vtable[];
/* RemoteDevices changed (sent as an invalidation: values only to who asks). */
void remote_emit_changed(Manager *m);
