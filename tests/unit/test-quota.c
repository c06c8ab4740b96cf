/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Byte accounting per client, per uid and in all, and per-client counts.
 * 0 means none allowed; a refused request changes nothing. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "quota.h"
#include "tests.h"
#include "util.h"

#define KIB UINT64_C(1024)
#define MIB (UINT64_C(1) << 20)

static Config limits(uint64_t client, uint64_t user, uint64_t global) {
        Config c;

        config_init(&c);
        c.bytes_per_client = client;
        c.bytes_per_user = user;
        c.bytes_global = global;
        return c;
}

/* Everything the ledger and the accounts hold, to compare before and after. */
typedef struct Snapshot {
        uint64_t global;
        size_t n_users;
        QuotaUser users[8];
        QuotaAccount accounts[4];
} Snapshot;

static Snapshot snapshot(const QuotaLedger *l, QuotaAccount *const *accounts, size_t n) {
        Snapshot s;

        memset(&s, 0, sizeof(s));
        check(l->n_users <= ELEMENTSOF(s.users));
        check(n <= ELEMENTSOF(s.accounts));
        s.global = l->bytes;
        s.n_users = l->n_users;
        if (l->n_users > 0)
                memcpy(s.users, l->users, l->n_users * sizeof(*l->users));
        for (size_t i = 0; i < n; i++)
                s.accounts[i] = *accounts[i];
        return s;
}

/* A refused charge: -EDQUOT, the expected sentence, nothing changed. */
static void check_refused(QuotaLedger *l, const Config *c, QuotaAccount *a, uint64_t bytes, const char *expected,
                          QuotaAccount *const *all, size_t n) {
        Snapshot before = snapshot(l, all, n), after;
        QuotaUser *users_before = l->users;
        _cleanup_free_ char *why = NULL;

        check(quota_charge_bytes(l, c, a, bytes, &why) == -EDQUOT);
        check_streq(why, expected);
        after = snapshot(l, all, n);
        check(memcmp(&before, &after, sizeof(before)) == 0);
        check(l->users == users_before);

        /* Without anywhere to put the reason: same answer. */
        check(quota_charge_bytes(l, c, a, bytes, NULL) == -EDQUOT);
        after = snapshot(l, all, n);
        check(memcmp(&before, &after, sizeof(before)) == 0);
}

static void test_charge_uncharge(void) {
        Config c = limits(MIB, 2 * MIB, 4 * MIB);
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1000 };
        char *why = NULL;

        check(quota_user_bytes(&l, 1000) == 0);
        check(quota_charge_bytes(&l, &c, &a, 4096, &why) == 0);
        check(!why);
        check(a.bytes == 4096);
        check(l.bytes == 4096);
        check(l.n_users == 1);
        check(quota_user_bytes(&l, 1000) == 4096);
        check(quota_user_bytes(&l, 1001) == 0);

        check(quota_charge_bytes(&l, &c, &a, 8192, &why) == 0);
        check(a.bytes == 12288 && l.bytes == 12288 && quota_user_bytes(&l, 1000) == 12288);
        check(l.n_users == 1);

        quota_uncharge_bytes(&l, &a, 4096);
        check(a.bytes == 8192 && l.bytes == 8192 && quota_user_bytes(&l, 1000) == 8192);
        quota_uncharge_bytes(&l, &a, 8192);
        check(a.bytes == 0 && l.bytes == 0 && quota_user_bytes(&l, 1000) == 0);
        /* The user is gone from the ledger, not left with 0 bytes. */
        check(l.n_users == 0);
        check(!l.users);

        /* Counts are not touched by byte accounting. */
        for (size_t i = 0; i < _QUOTA_COUNT_MAX; i++)
                check(a.counts[i] == 0);
        quota_ledger_done(&l);
}

static void test_per_client_limit(void) {
        Config c = limits(MIB, 4 * MIB, 8 * MIB);
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1000 }, b = { .uid = 1000 };
        QuotaAccount *all[] = { &a, &b };

        check(quota_charge_bytes(&l, &c, &a, 512 * KIB, NULL) == 0);
        check_refused(&l, &c, &a, 512 * KIB + 1,
                      "Per-client memory quota exceeded: 512K in use + 524289 requested > 1M allowed", all, 2);
        check_refused(&l, &c, &a, 1 * MIB,
                      "Per-client memory quota exceeded: 512K in use + 1M requested > 1M allowed", all, 2);
        /* The exact limit is allowed; one byte more is not. */
        check(quota_charge_bytes(&l, &c, &a, 512 * KIB, NULL) == 0);
        check(a.bytes == MIB);
        check_refused(&l, &c, &a, 1, "Per-client memory quota exceeded: 1M in use + 1 requested > 1M allowed", all, 2);
        /* Another client of the same uid has its own per-client allowance. */
        check(quota_charge_bytes(&l, &c, &b, MIB, NULL) == 0);
        check(quota_user_bytes(&l, 1000) == 2 * MIB);
        check(l.bytes == 2 * MIB);
        quota_ledger_done(&l);
}

static void test_per_user_limit(void) {
        Config c = limits(MIB, MIB + 4 * KIB, 8 * MIB);
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1000 }, b = { .uid = 1000 }, other = { .uid = 1001 };
        QuotaAccount *all[] = { &a, &b, &other };

        /* Two clients of one uid share the per-uid limit. */
        check(quota_charge_bytes(&l, &c, &a, 768 * KIB, NULL) == 0);
        check(quota_charge_bytes(&l, &c, &b, 256 * KIB, NULL) == 0);
        check(quota_user_bytes(&l, 1000) == MIB);
        check(l.n_users == 1);
        check_refused(&l, &c, &b, 8 * KIB,
                      "Per-user memory quota exceeded: 1M in use + 8K requested > 1028K allowed", all, 3);
        check(quota_charge_bytes(&l, &c, &b, 4 * KIB, NULL) == 0); /* exactly the limit */
        check(quota_user_bytes(&l, 1000) == MIB + 4 * KIB);
        check_refused(&l, &c, &a, 1, "Per-user memory quota exceeded: 1028K in use + 1 requested > 1028K allowed",
                      all, 3);
        check(b.bytes == 260 * KIB && a.bytes == 768 * KIB);

        /* Another uid is not affected. */
        check(quota_charge_bytes(&l, &c, &other, MIB, NULL) == 0);
        check(l.n_users == 2);
        check(quota_user_bytes(&l, 1001) == MIB);
        check(l.bytes == 2 * MIB + 4 * KIB);

        /* Freeing in one client makes room for the other. */
        quota_uncharge_bytes(&l, &a, 4 * KIB);
        check(quota_charge_bytes(&l, &c, &b, 4 * KIB, NULL) == 0);
        check_refused(&l, &c, &b, 1, "Per-user memory quota exceeded: 1028K in use + 1 requested > 1028K allowed",
                      all, 3);
        quota_ledger_done(&l);
        check(!l.users && l.n_users == 0 && l.bytes == 0);
}

static void test_global_limit(void) {
        Config c = limits(MIB, MIB, 2 * MIB);
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1 }, b = { .uid = 2 }, d = { .uid = 3 };
        QuotaAccount *all[] = { &a, &b, &d };

        check(quota_charge_bytes(&l, &c, &a, MIB, NULL) == 0);
        check(quota_charge_bytes(&l, &c, &b, MIB - 1, NULL) == 0);
        check_refused(&l, &c, &d, 2, "Global memory quota exceeded: 2 requested, 2M allowed for all users together", all, 3);
        check(l.n_users == 2); /* the refused uid did not get an entry */
        check(quota_charge_bytes(&l, &c, &d, 1, NULL) == 0);
        check(l.bytes == 2 * MIB);
        check(l.n_users == 3);
        check_refused(&l, &c, &d, 1, "Global memory quota exceeded: 1 requested, 2M allowed for all users together", all, 3);

        /* Removing a user from the middle keeps the others intact. */
        quota_uncharge_bytes(&l, &a, MIB);
        check(l.n_users == 2);
        check(quota_user_bytes(&l, 1) == 0);
        check(quota_user_bytes(&l, 2) == MIB - 1);
        check(quota_user_bytes(&l, 3) == 1);
        check(l.bytes == MIB);
        quota_ledger_done(&l);
}

/* Each limit is checked in turn: the first one exceeded is named. */
static void test_which_limit(void) {
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1 };
        QuotaAccount *all[] = { &a };
        Config c;

        c = limits(10, 100, 100);
        check_refused(&l, &c, &a, 11, "Per-client memory quota exceeded: 0 in use + 11 requested > 10 allowed", all, 1);
        c = limits(100, 10, 100);
        check_refused(&l, &c, &a, 11, "Per-user memory quota exceeded: 0 in use + 11 requested > 10 allowed", all, 1);
        c = limits(100, 100, 10);
        check_refused(&l, &c, &a, 11, "Global memory quota exceeded: 11 requested, 10 allowed for all users together", all, 1);
        c = limits(10, 10, 10);
        check_refused(&l, &c, &a, 11, "Per-client memory quota exceeded: 0 in use + 11 requested > 10 allowed", all, 1);
        check(l.n_users == 0 && !l.users);
}

static void test_zero_limits(void) {
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1 };
        QuotaAccount *all[] = { &a };
        Config c;

        c = limits(0, MIB, MIB);
        check_refused(&l, &c, &a, 1, "Per-client memory quota exceeded: 0 in use + 1 requested > 0 allowed", all, 1);
        check_refused(&l, &c, &a, 4096, "Per-client memory quota exceeded: 0 in use + 4K requested > 0 allowed", all, 1);
        c = limits(MIB, 0, MIB);
        check_refused(&l, &c, &a, 1, "Per-user memory quota exceeded: 0 in use + 1 requested > 0 allowed", all, 1);
        c = limits(MIB, MIB, 0);
        check_refused(&l, &c, &a, 1, "Global memory quota exceeded: 1 requested, 0 allowed for all users together", all, 1);
        c = limits(0, 0, 0);
        check_refused(&l, &c, &a, UINT64_MAX,
                      "Per-client memory quota exceeded: 0 in use + 18446744073709551615 requested > 0 allowed", all, 1);
        check(l.n_users == 0 && !l.users && l.bytes == 0);
}

static void test_overflow(void) {
        Config c = limits(UINT64_MAX, UINT64_MAX, UINT64_MAX);
        Config small = limits(MIB, MIB, MIB);
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1 }, b = { .uid = 2 };
        QuotaAccount *all[] = { &a, &b };

        check_refused(&l, &small, &a, UINT64_MAX,
                      "Per-client memory quota exceeded: 0 in use + 18446744073709551615 requested > 1M allowed", all,
                      2);

        /* With limits at the very top, sums must still not wrap. */
        check(quota_charge_bytes(&l, &c, &a, 4096, NULL) == 0);
        check_refused(&l, &c, &a, UINT64_MAX,
                      "Per-client memory quota exceeded: 4K in use + 18446744073709551615 requested > "
                      "18446744073709551615 allowed",
                      all, 2);
        check_refused(&l, &c, &a, UINT64_MAX - 4095,
                      "Per-client memory quota exceeded: 4K in use + 18014398509481980K requested > "
                      "18446744073709551615 allowed",
                      all, 2);
        /* The global sum wraps even when each client's would not. */
        check(quota_charge_bytes(&l, &c, &b, UINT64_MAX - 4096, NULL) == 0);
        check(l.bytes == UINT64_MAX);
        check_refused(&l, &c, &b, 1,
                      "Global memory quota exceeded: 1 requested, 18446744073709551615 allowed for all users "
                      "together",
                      all, 2);
        check(quota_user_bytes(&l, 1) == 4096 && quota_user_bytes(&l, 2) == UINT64_MAX - 4096);
        quota_ledger_done(&l);
}

static void test_uncharge_clamps(void) {
        Config c = limits(MIB, MIB, MIB);
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1000 }, stranger = { .uid = 5 };

        check(quota_charge_bytes(&l, &c, &a, 100, NULL) == 0);
        quota_uncharge_bytes(&l, &a, 1000);
        check(a.bytes == 0 && l.bytes == 0);
        check(quota_user_bytes(&l, 1000) == 0);
        check(l.n_users == 0 && !l.users);
        /* Nothing wrapped round into "everything is free"... */
        check(quota_charge_bytes(&l, &c, &a, MIB, NULL) == 0);
        check(quota_charge_bytes(&l, &c, &a, 1, NULL) == -EDQUOT);
        quota_uncharge_bytes(&l, &a, UINT64_MAX);
        check(a.bytes == 0 && l.bytes == 0 && l.n_users == 0);

        /* An account that never charged anything. */
        quota_uncharge_bytes(&l, &stranger, 4096);
        check(stranger.bytes == 0 && l.bytes == 0 && l.n_users == 0);
        quota_uncharge_bytes(&l, &stranger, 0);
        check(l.n_users == 0);
        quota_ledger_done(&l);
}

/* Found by these tests, see the report to the lead. An over-uncharge by one
 * client must not release bytes another client of the same uid still holds. */
static void test_uncharge_clamps_per_account(void) {
        Config c = limits(MIB, MIB, MIB);
        QuotaLedger l = {};
        QuotaAccount a = { .uid = 1000 }, b = { .uid = 1000 };

        check(quota_charge_bytes(&l, &c, &a, 100, NULL) == 0);
        check(quota_charge_bytes(&l, &c, &b, 100, NULL) == 0);
        quota_uncharge_bytes(&l, &a, 150);
        check(a.bytes == 0);
        check(b.bytes == 100);
        check(quota_user_bytes(&l, 1000) == 100);
        check(l.bytes == 100);
        quota_ledger_done(&l);
}

static void test_counts(void) {
        static const struct {
                QuotaCount kind;
                const char *name;
        } kinds[] = {
                { QUOTA_CLAIMS, "ClaimsPerClient" },
                { QUOTA_BUFFERS, "BuffersPerClient" },
                { QUOTA_QUEUES, "QueuesPerClient" },
                { QUOTA_IN_FLIGHT, "InFlightPerClient" },
        };
        Config c;

        config_init(&c);
        c.claims_per_client = 2;
        c.buffers_per_client = 3;
        c.queues_per_client = 0;
        c.in_flight_per_client = 5;

        for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                QuotaCount kind = kinds[k].kind;
                uint32_t limit = kind == QUOTA_CLAIMS ? 2 : kind == QUOTA_BUFFERS ? 3 : kind == QUOTA_QUEUES ? 0 : 5;
                QuotaAccount a = { .uid = 1 }, before;
                _cleanup_free_ char *expected = NULL;

                for (uint32_t i = 0; i < limit; i++) {
                        char *why = NULL;
                        check(quota_take(&c, &a, kind, &why) == 0);
                        check(!why);
                        check(a.counts[kind] == i + 1);
                }
                before = a;
                check(asprintf(&expected, "%s quota exceeded: %u in use, %u allowed", kinds[k].name, limit, limit) >
                      0);
                for (int tries = 0; tries < 3; tries++) {
                        _cleanup_free_ char *why = NULL;
                        check(quota_take(&c, &a, kind, &why) == -EDQUOT);
                        check_streq(why, expected);
                        check(memcmp(&a, &before, sizeof(a)) == 0);
                }
                check(quota_take(&c, &a, kind, NULL) == -EDQUOT);
                check(memcmp(&a, &before, sizeof(a)) == 0);

                /* Other kinds are counted apart. */
                for (size_t o = 0; o < _QUOTA_COUNT_MAX; o++)
                        if (o != kind)
                                check(a.counts[o] == 0);

                /* Put one back: one more may be taken. */
                if (limit > 0) {
                        quota_put(&a, kind);
                        check(a.counts[kind] == limit - 1);
                        check(quota_take(&c, &a, kind, NULL) == 0);
                        check(a.counts[kind] == limit);
                }
                for (uint32_t i = 0; i < limit; i++)
                        quota_put(&a, kind);
                check(a.counts[kind] == 0);
                /* Put at 0 stays 0 (never wraps to "lots in use" or "lots free"). */
                quota_put(&a, kind);
                quota_put(&a, kind);
                check(a.counts[kind] == 0);
                check(a.bytes == 0);
        }

        /* Kinds out of range. */
        {
                QuotaAccount a = { .uid = 1 }, before;
                char *why = NULL;

                before = a;
                check(quota_take(&c, &a, _QUOTA_COUNT_MAX, &why) == -EINVAL);
                check(quota_take(&c, &a, (QuotaCount) 1000, &why) == -EINVAL);
                quota_put(&a, _QUOTA_COUNT_MAX);
                quota_put(&a, (QuotaCount) 1000);
                check(memcmp(&a, &before, sizeof(a)) == 0);
                free(why);
        }

        /* A limit of UINT32_MAX: the count stops there, never wraps. */
        {
                QuotaAccount a = { .uid = 1 };

                c.in_flight_per_client = UINT32_MAX;
                a.counts[QUOTA_IN_FLIGHT] = UINT32_MAX - 1;
                check(quota_take(&c, &a, QUOTA_IN_FLIGHT, NULL) == 0);
                check(a.counts[QUOTA_IN_FLIGHT] == UINT32_MAX);
                check(quota_take(&c, &a, QUOTA_IN_FLIGHT, NULL) == -EDQUOT);
                check(a.counts[QUOTA_IN_FLIGHT] == UINT32_MAX);
        }
}

int main(void) {
        RUN(test_charge_uncharge);
        RUN(test_per_client_limit);
        RUN(test_per_user_limit);
        RUN(test_global_limit);
        RUN(test_which_limit);
        RUN(test_zero_limits);
        RUN(test_overflow);
        RUN(test_uncharge_clamps);
        RUN(test_counts);
        RUN(test_uncharge_clamps_per_account);
        return 0;
}
