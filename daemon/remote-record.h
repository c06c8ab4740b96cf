/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "host-port.h"
#include "usbip-proto.h"

/* What outlives a crash of zcusbd: one record per vhci-hcd port it
 * attached, in its runtime directory ($RUNTIME_DIRECTORY: systemd's
 * RuntimeDirectory=zcusbd, kept over restarts), removed once zcusbd
 * detaches or forgets the port. The next zcusbd detaches what a previous
 * one left attached (remote_record_reap) before it attaches anything. A
 * record is a hint, never trusted beyond a range-checked port and devid:
 * the port is detached only while vhci's status table shows that devid. */

#define REMOTE_RECORD_PREFIX "vhci-port-"
/* vhci-hcd numbers ports across its controllers: at most 128 of them, each
 * with two root hubs of at most 15 ports. */
#define REMOTE_RECORD_VHCI_PORT_MAX (128 * 2 * 15 - 1)
/* Larger files are not records. */
#define REMOTE_RECORD_SIZE_MAX 512

typedef struct RemoteRecord {
        uint32_t vhci_port;
        uint32_t devid; /* as vhci_attach() was given it: busnum << 16 | devnum */
        char host[HOST_NAME_MAX_LEN + 1];
        uint16_t port;
        char busid[USBIP_BUSID_SIZE];
} RemoteRecord;

/* "vhci_port=N\ndevid=XXXXXXXX\nhost=H\nport=P\nbusid=B\n". Returns the
 * length, or -EINVAL for a record that would not parse back. */
int remote_record_format(const RemoteRecord *rec, char *buf, size_t size);
/* Exactly that: each key once, in that order, every value checked. Returns
 * 0, or -EINVAL with *ret_why saying what is wrong. */
int remote_record_parse(const char *text, size_t len, RemoteRecord *ret, const char **ret_why);

/* $RUNTIME_DIRECTORY (its first entry), or NULL when unset: then zcusbd
 * keeps no records (said once at debug level). */
int remote_record_dir_from_env(char **ret);

/* Written atomically (a temporary file renamed over REMOTE_RECORD_PREFIX N),
 * mode 0600. DIR NULL: nothing done. */
int remote_record_save(const char *dir, const RemoteRecord *rec);
/* 0 also when there was none. */
int remote_record_remove(const char *dir, uint32_t vhci_port);

/* At start: detach each recorded port that still holds the recorded
 * import, log it, remove the record. Malformed records are logged and
 * removed; a record whose detach failed stays for the next start. */
void remote_record_reap(const char *dir);
