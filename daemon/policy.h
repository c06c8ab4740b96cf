/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Who may claim what, decided from udev properties (udev/POLICY.md) and the
 * caller's bus credentials. Pure logic: no bus, no udev. */

typedef struct Caller {
        uid_t uid;
        pid_t pid;   /* as the bus driver saw it at connection time; 0 if unknown. Informational only */
        gid_t *gids; /* every group of the caller, primary included */
        size_t n_gids;
} Caller;

/* The ZCUSB_* properties of a device or interface; NULL = not set. */
typedef struct PolicyProps {
        const char *enable;
        const char *allow_users;
        const char *allow_groups;
        const char *detach;
        const char *polkit; /* ZCUSB_POLKIT: callers not granted above may ask polkit */
} PolicyProps;

typedef enum PolicyVerdict {
        POLICY_DENY,
        POLICY_ALLOW,
        POLICY_ASK_POLKIT, /* not granted by udev policy, but polkit may grant it */
} PolicyVerdict;

/* Name lookups, replaceable in tests. Return 0 and fill *ret, or -ENOENT. */
typedef struct PolicyResolver {
        int (*user_to_uid)(const char *name, uid_t *ret);
        int (*group_to_gid)(const char *name, gid_t *ret);
} PolicyResolver;

extern const PolicyResolver policy_resolver_nss;

/* The interface's properties override the device's, one by one. */
PolicyProps policy_props_merge(const PolicyProps *device, const PolicyProps *interface);

bool policy_caller_is_root(const Caller *c);

/* May this caller claim an interface with these (merged) properties? root
 * may unless ZCUSB_ENABLE=0; others need ZCUSB_ENABLE=1 and a grant from
 * ZCUSB_ALLOW_USERS/GROUPS, or else ZCUSB_POLKIT=1 makes the answer polkit's. */
PolicyVerdict policy_claim_verdict(const PolicyProps *p, const Caller *c, const PolicyResolver *r);
/* Granted without asking anyone. */
bool policy_may_claim(const PolicyProps *p, const Caller *c, const PolicyResolver *r);

/* Does LIST (names or numbers, separated by spaces or commas) name the uid /
 * one of the gids? Unknown names match nothing. */
bool policy_list_has_user(const char *list, uid_t uid, const PolicyResolver *r);
bool policy_list_has_group(const char *list, const gid_t *gids, size_t n_gids, const PolicyResolver *r);

int caller_copy(const Caller *from, Caller *to);
void caller_done(Caller *c);
