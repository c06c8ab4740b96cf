/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <grp.h>
#include <pwd.h>
#include <stdint.h>

#include "policy.h"
#include "util.h"

static int nss_user_to_uid(const char *name, uid_t *ret) {
        struct passwd pw, *result = NULL;
        char buf[4096];

        if (getpwnam_r(name, &pw, buf, sizeof(buf), &result) != 0 || !result)
                return -ENOENT;
        *ret = result->pw_uid;
        return 0;
}

static int nss_group_to_gid(const char *name, gid_t *ret) {
        struct group gr, *result = NULL;
        char buf[16384];

        if (getgrnam_r(name, &gr, buf, sizeof(buf), &result) != 0 || !result)
                return -ENOENT;
        *ret = result->gr_gid;
        return 0;
}

const PolicyResolver policy_resolver_nss = {
        .user_to_uid = nss_user_to_uid,
        .group_to_gid = nss_group_to_gid,
};

PolicyProps policy_props_merge(const PolicyProps *device, const PolicyProps *interface) {
        PolicyProps m = device ? *device : (PolicyProps) {};

        if (interface) {
                if (interface->enable)
                        m.enable = interface->enable;
                if (interface->allow_users)
                        m.allow_users = interface->allow_users;
                if (interface->allow_groups)
                        m.allow_groups = interface->allow_groups;
                if (interface->detach)
                        m.detach = interface->detach;
                if (interface->polkit)
                        m.polkit = interface->polkit;
        }
        return m;
}

bool policy_caller_is_root(const Caller *c) {
        return c->uid == 0;
}

/* Calls cb for each token of LIST; stops and returns true when cb does. */
static bool list_any(const char *list, bool (*cb)(const char *token, void *userdata), void *userdata) {
        const char *p = list, *w;
        size_t n;

        if (!list)
                return false;
        while ((w = word_list_next(&p, &n))) {
                char token[256];

                /* longer words cannot be names: skipped */
                if (word_copy(w, n, token, sizeof(token)) && cb(token, userdata))
                        return true;
        }
        return false;
}

/* A token that is all digits is a number, anything else a name. */
static int token_to_id(const char *token, int (*lookup)(const char *, uint32_t *), uint32_t *ret) {
        uint64_t v;

        if (safe_atou64(token, 10, &v) >= 0) {
                if (v >= UINT32_MAX) /* (uid_t) -1 is never a user */
                        return -ERANGE;
                *ret = (uint32_t) v;
                return 0;
        }
        return lookup(token, ret);
}

struct user_match {
        uid_t uid;
        const PolicyResolver *r;
};

static bool user_cb(const char *token, void *userdata) {
        struct user_match *m = userdata;
        uid_t uid;

        return token_to_id(token, m->r->user_to_uid, &uid) >= 0 && uid == m->uid;
}

bool policy_list_has_user(const char *list, uid_t uid, const PolicyResolver *r) {
        struct user_match m = { .uid = uid, .r = r };
        return list_any(list, user_cb, &m);
}

struct group_match {
        const gid_t *gids;
        size_t n_gids;
        const PolicyResolver *r;
};

static bool group_cb(const char *token, void *userdata) {
        struct group_match *m = userdata;
        gid_t gid;

        if (token_to_id(token, m->r->group_to_gid, &gid) < 0)
                return false;
        for (size_t i = 0; i < m->n_gids; i++)
                if (m->gids[i] == gid)
                        return true;
        return false;
}

bool policy_list_has_group(const char *list, const gid_t *gids, size_t n_gids, const PolicyResolver *r) {
        struct group_match m = { .gids = gids, .n_gids = n_gids, .r = r };
        return list_any(list, group_cb, &m);
}

PolicyVerdict policy_claim_verdict(const PolicyProps *p, const Caller *c, const PolicyResolver *r) {
        int enable = p->enable ? parse_boolean(p->enable) : -1;

        if (policy_caller_is_root(c))
                return enable != 0 ? POLICY_ALLOW : POLICY_DENY;
        if (enable != 1)
                return POLICY_DENY;
        if (policy_list_has_user(p->allow_users, c->uid, r) ||
            policy_list_has_group(p->allow_groups, c->gids, c->n_gids, r))
                return POLICY_ALLOW;
        if (p->polkit && parse_boolean(p->polkit) == 1)
                return POLICY_ASK_POLKIT;
        return POLICY_DENY;
}

bool policy_may_claim(const PolicyProps *p, const Caller *c, const PolicyResolver *r) {
        return policy_claim_verdict(p, c, r) == POLICY_ALLOW;
}

int caller_copy(const Caller *from, Caller *to) {
        *to = (Caller) { .uid = from->uid, .pid = from->pid };
        if (from->n_gids == 0)
                return 0;
        to->gids = calloc(from->n_gids, sizeof(gid_t));
        if (!to->gids)
                return -ENOMEM;
        memcpy(to->gids, from->gids, from->n_gids * sizeof(gid_t));
        to->n_gids = from->n_gids;
        return 0;
}

void caller_done(Caller *c) {
        free(c->gids);
        *c = (Caller) {};
}
