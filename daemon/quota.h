/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "config.h"

/* Memory and object accounting (docs/architecture.md, "Objects and their life cycles"). Pure logic:
 * callers charge before they allocate and uncharge after they free. */

typedef enum QuotaCount {
        QUOTA_CLAIMS,
        QUOTA_BUFFERS,
        QUOTA_QUEUES,
        QUOTA_IN_FLIGHT,
        _QUOTA_COUNT_MAX,
} QuotaCount;

/* What one client (bus connection) holds. */
typedef struct QuotaAccount {
        uid_t uid;
        uint64_t bytes;
        uint32_t counts[_QUOTA_COUNT_MAX];
} QuotaAccount;

typedef struct QuotaUser {
        uid_t uid;
        uint64_t bytes;
} QuotaUser;

/* What everyone holds: per uid and in all. */
typedef struct QuotaLedger {
        uint64_t bytes;
        QuotaUser *users;
        size_t n_users;
} QuotaLedger;

/* Charge BYTES to ACCOUNT, its uid and the ledger, or change nothing and
 * return -EDQUOT with *why naming the limit and the numbers. */
int quota_charge_bytes(QuotaLedger *l, const Config *c, QuotaAccount *a, uint64_t bytes, char **why);
void quota_uncharge_bytes(QuotaLedger *l, QuotaAccount *a, uint64_t bytes);

int quota_take(const Config *c, QuotaAccount *a, QuotaCount kind, char **why);
void quota_put(QuotaAccount *a, QuotaCount kind);

uint64_t quota_user_bytes(const QuotaLedger *l, uid_t uid);
void quota_ledger_done(QuotaLedger *l);
