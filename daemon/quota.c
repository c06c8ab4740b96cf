/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "quota.h"
#include "util.h"

static QuotaUser *ledger_find(const QuotaLedger *l, uid_t uid) {
        for (size_t i = 0; i < l->n_users; i++)
                if (l->users[i].uid == uid)
                        return &l->users[i];
        return NULL;
}

uint64_t quota_user_bytes(const QuotaLedger *l, uid_t uid) {
        QuotaUser *u = ledger_find(l, uid);
        return u ? u->bytes : 0;
}

static int over(char **why, const char *what, uint64_t used, uint64_t want, uint64_t limit) {
        char a[32], b[32], c[32];

        if (why && asprintf(why, "%s quota exceeded: %s in use + %s requested > %s allowed", what,
                            format_size(a, sizeof(a), used), format_size(b, sizeof(b), want),
                            format_size(c, sizeof(c), limit)) < 0)
                *why = NULL;
        return -EDQUOT;
}

/* used + want > limit, without overflow. */
static bool exceeds(uint64_t used, uint64_t want, uint64_t limit) {
        return used > limit || want > limit - used;
}

int quota_charge_bytes(QuotaLedger *l, const Config *c, QuotaAccount *a, uint64_t bytes, char **why) {
        QuotaUser *u = ledger_find(l, a->uid);
        uint64_t user_bytes = u ? u->bytes : 0;

        if (bytes == 0)
                return 0;
        if (exceeds(a->bytes, bytes, c->bytes_per_client))
                return over(why, "Per-client memory", a->bytes, bytes, c->bytes_per_client);
        if (exceeds(user_bytes, bytes, c->bytes_per_user))
                return over(why, "Per-user memory", user_bytes, bytes, c->bytes_per_user);
        if (exceeds(l->bytes, bytes, c->bytes_global)) {
                char b[32], g[32];

                /* What everyone holds is not the caller's to know. */
                if (why && asprintf(why, "Global memory quota exceeded: %s requested, %s allowed for all users "
                                    "together", format_size(b, sizeof(b), bytes),
                                    format_size(g, sizeof(g), c->bytes_global)) < 0)
                        *why = NULL;
                return -EDQUOT;
        }

        if (!u) {
                QuotaUser *n = realloc(l->users, (l->n_users + 1) * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                l->users = n;
                u = &n[l->n_users++];
                *u = (QuotaUser) { .uid = a->uid };
        }
        u->bytes += bytes;
        a->bytes += bytes;
        l->bytes += bytes;
        return 0;
}

void quota_uncharge_bytes(QuotaLedger *l, QuotaAccount *a, uint64_t bytes) {
        QuotaUser *u = ledger_find(l, a->uid);

        /* Uncharging more than was charged is a bug in the caller: clamp to
         * what this account holds, so no total can wrap around into
         * "everything is free" or lose another account's charge. */
        if (bytes > a->bytes)
                bytes = a->bytes;
        a->bytes -= bytes;
        l->bytes -= bytes <= l->bytes ? bytes : l->bytes;
        if (u) {
                u->bytes -= bytes <= u->bytes ? bytes : u->bytes;
                if (u->bytes == 0) {
                        *u = l->users[--l->n_users];
                        if (l->n_users == 0) {
                                free(l->users);
                                l->users = NULL;
                        }
                }
        }
}

static uint32_t count_limit(const Config *c, QuotaCount kind) {
        switch (kind) {
        case QUOTA_CLAIMS:    return c->claims_per_client;
        case QUOTA_BUFFERS:   return c->buffers_per_client;
        case QUOTA_QUEUES:    return c->queues_per_client;
        case QUOTA_IN_FLIGHT: return c->in_flight_per_client;
        default:              return 0;
        }
}

static const char *count_name(QuotaCount kind) {
        static const char *const names[] = {
                [QUOTA_CLAIMS] = "ClaimsPerClient",
                [QUOTA_BUFFERS] = "BuffersPerClient",
                [QUOTA_QUEUES] = "QueuesPerClient",
                [QUOTA_IN_FLIGHT] = "InFlightPerClient",
        };
        return kind < _QUOTA_COUNT_MAX ? names[kind] : "?";
}

int quota_take(const Config *c, QuotaAccount *a, QuotaCount kind, char **why) {
        uint32_t limit = count_limit(c, kind);

        if (kind >= _QUOTA_COUNT_MAX)
                return -EINVAL;
        if (a->counts[kind] >= limit) {
                if (why && asprintf(why, "%s quota exceeded: %" PRIu32 " in use, %" PRIu32 " allowed",
                                    count_name(kind), a->counts[kind], limit) < 0)
                        *why = NULL;
                return -EDQUOT;
        }
        a->counts[kind]++;
        return 0;
}

void quota_put(QuotaAccount *a, QuotaCount kind) {
        if (kind < _QUOTA_COUNT_MAX && a->counts[kind] > 0)
                a->counts[kind]--;
}

void quota_ledger_done(QuotaLedger *l) {
        free(l->users);
        *l = (QuotaLedger) {};
}
