/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The daemon's object types, for headers that only pass pointers around. */
typedef struct Manager Manager;
typedef struct Device Device;
typedef struct Peer Peer;
typedef struct Claim Claim;
typedef struct Buffer Buffer;
typedef struct Queue Queue;
typedef struct Transfer Transfer;
typedef struct ClaimRequest ClaimRequest;
typedef struct Remote Remote;

