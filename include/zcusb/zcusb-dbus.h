/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/* Names of zcusbd's D-Bus surface, shared by the daemon and its clients.
 * The API itself is documented in dbus/API.md. */

#define ZCUSB_BUS_NAME            "org.zcusb1"
#define ZCUSB_MANAGER_PATH        "/org/zcusb1"
#define ZCUSB_DEVICE_PATH_PREFIX  "/org/zcusb1/device"
#define ZCUSB_CLAIM_PATH_PREFIX   "/org/zcusb1/claim"
#define ZCUSB_MANAGER_INTERFACE   "org.zcusb1.Manager"
#define ZCUSB_DEVICE_INTERFACE    "org.zcusb1.Device"
#define ZCUSB_CLAIM_INTERFACE     "org.zcusb1.Claim"

#define ZCUSB_ERROR_ACCESS_DENIED    "org.zcusb1.Error.AccessDenied"
#define ZCUSB_ERROR_NO_SUCH_DEVICE   "org.zcusb1.Error.NoSuchDevice"
#define ZCUSB_ERROR_BUSY             "org.zcusb1.Error.Busy"
#define ZCUSB_ERROR_INVALID_ARGUMENT "org.zcusb1.Error.InvalidArgument"
#define ZCUSB_ERROR_QUOTA_EXCEEDED   "org.zcusb1.Error.QuotaExceeded"
/* Not the caller's doing: zcusbd could not do it (its journal says why). */
#define ZCUSB_ERROR_FAILED           "org.zcusb1.Error.Failed"
/* polkit (ZCUSB_POLKIT=1 interfaces): the user dismissed or cancelled the
 * authentication dialog. */
#define ZCUSB_ERROR_AUTHORIZATION_CANCELLED   "org.zcusb1.Error.AuthorizationCancelled"
/* polkit could not be asked (not running, no answer in time): not a denial. */
#define ZCUSB_ERROR_AUTHORIZATION_UNAVAILABLE "org.zcusb1.Error.AuthorizationUnavailable"
/* polkit would grant it after authentication, and the caller did not allow
 * interaction: the D-Bus standard error, so generic clients know to retry
 * with the ALLOW_INTERACTIVE_AUTHORIZATION header flag. */
#define ZCUSB_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"

/* The polkit action a ClaimInterface may need. */
#define ZCUSB_POLKIT_ACTION_CLAIM "org.zcusb1.claim"

/* Manager.ClaimInterfaceWithFlags flags; other bits are refused. */
#define ZCUSB_CLAIM_INTERACTIVE (UINT64_C(1) << 0) /* polkit may ask the user (AllowUserInteraction) */
#define ZCUSB_CLAIM_FLAGS_ALL   ZCUSB_CLAIM_INTERACTIVE

/* Remote (USB/IP) devices: AttachRemote's refusals and failures. */
#define ZCUSB_ERROR_HOST_NOT_ALLOWED   "org.zcusb1.Error.HostNotAllowed"
#define ZCUSB_ERROR_TIMEOUT            "org.zcusb1.Error.Timeout"
#define ZCUSB_ERROR_REMOTE_UNREACHABLE "org.zcusb1.Error.RemoteUnreachable"
#define ZCUSB_ERROR_REMOTE_PROTOCOL    "org.zcusb1.Error.RemoteProtocol"
#define ZCUSB_ERROR_REMOTE_REFUSED     "org.zcusb1.Error.RemoteRefused"
