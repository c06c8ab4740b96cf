/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "usbip-proto.h"

/* zcusbd <-> zcusb-remote-connect, one request and one reply over an
 * AF_UNIX SOCK_SEQPACKET connection (the helper's socket unit accepts it).
 * zcusbd has no network access of its own: the helper, which has nothing
 * but network access, connects to the USB/IP server, does the import and
 * passes the connected TCP socket back with SCM_RIGHTS. Both ends are built
 * together, yet zcusbd checks every reply field: the helper faces the
 * network. */

#define REMOTE_WIRE_VERSION 1
#define REMOTE_HOST_MAX 256

typedef struct RemoteRequest {
        uint32_t version;
        uint32_t timeout_ms; /* for resolving, connecting and the exchange together */
        uint16_t port;
        char host[REMOTE_HOST_MAX]; /* NUL-terminated */
        char busid[USBIP_BUSID_SIZE];
} RemoteRequest;

typedef enum RemoteFailure {
        REMOTE_OK = 0,
        REMOTE_FAILURE_BAD_REQUEST,  /* zcusbd sent nonsense: a bug */
        REMOTE_FAILURE_UNREACHABLE,  /* name not resolved, connection refused, no route */
        REMOTE_FAILURE_TIMEOUT,      /* the server did not answer in time */
        REMOTE_FAILURE_PROTOCOL,     /* truncated, oversized, wrong version/code/busid, bad fields */
        REMOTE_FAILURE_REFUSED,      /* the server answered with a non-zero status */
        _REMOTE_FAILURE_MAX,
} RemoteFailure;

typedef struct RemoteReply {
        uint32_t version;
        uint32_t failure;  /* RemoteFailure */
        char message[256]; /* NUL-terminated; why, for the caller */
        UsbipDevice device; /* when failure == REMOTE_OK, with the socket as SCM_RIGHTS */
} RemoteReply;
