/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "policy.h"
#include "tests.h"
#include "util.h"

/* A fixed user/group database so results do not depend on the host. */
static int fake_user(const char *name, uid_t *ret) {
        if (streq(name, "alice")) return *ret = 1000, 0;
        if (streq(name, "bob"))   return *ret = 1001, 0;
        return -ENOENT;
}

static int fake_group(const char *name, gid_t *ret) {
        if (streq(name, "usbusers")) return *ret = 2000, 0;
        if (streq(name, "video"))    return *ret = 44, 0;
        return -ENOENT;
}

static const PolicyResolver fake = { .user_to_uid = fake_user, .group_to_gid = fake_group };

static gid_t alice_groups[] = { 1000, 2000 };
static const Caller alice = { .uid = 1000, .gids = alice_groups, .n_gids = 2 };
static gid_t bob_groups[] = { 1001 };
static const Caller bob = { .uid = 1001, .gids = bob_groups, .n_gids = 1 };
static const Caller root = { .uid = 0 };

static void test_lists(void) {
        check(policy_list_has_user("alice", 1000, &fake));
        check(policy_list_has_user("bob, alice", 1000, &fake));
        check(policy_list_has_user("  1000  ", 1000, &fake));
        check(policy_list_has_user("x,,,\t1000", 1000, &fake));
        check(!policy_list_has_user("bob", 1000, &fake));
        check(!policy_list_has_user("", 1000, &fake));
        check(!policy_list_has_user(NULL, 1000, &fake));
        check(!policy_list_has_user("nosuchuser", 1000, &fake));
        check(!policy_list_has_user("4294967295", (uid_t) -1, &fake)); /* the invalid uid never matches */
        check(!policy_list_has_user("99999999999999999999", 1000, &fake));
        check(!policy_list_has_user("alicex alic", 1000, &fake));

        char longtoken[600];
        memset(longtoken, 'a', sizeof(longtoken) - 1);
        longtoken[sizeof(longtoken) - 1] = '\0';
        check(!policy_list_has_user(longtoken, 1000, &fake));

        check(policy_list_has_group("usbusers", alice_groups, 2, &fake));
        check(policy_list_has_group("video 2000", alice_groups, 2, &fake));
        check(!policy_list_has_group("video", alice_groups, 2, &fake));
        check(!policy_list_has_group("usbusers", NULL, 0, &fake));
}

static void test_may_claim(void) {
        PolicyProps p = { .enable = "1", .allow_users = "bob", .allow_groups = "usbusers" };

        check(policy_may_claim(&p, &alice, &fake)); /* by group */
        check(policy_may_claim(&p, &bob, &fake));   /* by name */
        check(policy_may_claim(&p, &root, &fake));

        p.enable = NULL; /* not opted in: only root */
        check(!policy_may_claim(&p, &alice, &fake));
        check(policy_may_claim(&p, &root, &fake));

        p.enable = "0"; /* opted out: nobody, root included */
        check(!policy_may_claim(&p, &bob, &fake));
        check(!policy_may_claim(&p, &root, &fake));

        p.enable = "garbage";
        check(!policy_may_claim(&p, &bob, &fake));

        p = (PolicyProps) { .enable = "yes" }; /* opted in but nobody listed */
        check(!policy_may_claim(&p, &alice, &fake));
}

static void test_polkit_verdict(void) {
        PolicyProps p = { .enable = "1", .allow_users = "bob", .polkit = "1" };

        check(policy_claim_verdict(&p, &bob, &fake) == POLICY_ALLOW);        /* granted: polkit not asked */
        check(policy_claim_verdict(&p, &alice, &fake) == POLICY_ASK_POLKIT); /* not granted: polkit decides */
        check(!policy_may_claim(&p, &alice, &fake));
        check(policy_claim_verdict(&p, &root, &fake) == POLICY_ALLOW);

        p.enable = "0"; /* opted out wins over polkit, for root too */
        check(policy_claim_verdict(&p, &alice, &fake) == POLICY_DENY);
        check(policy_claim_verdict(&p, &root, &fake) == POLICY_DENY);

        p.enable = NULL; /* not opted in: polkit is not asked either */
        check(policy_claim_verdict(&p, &alice, &fake) == POLICY_DENY);

        p = (PolicyProps) { .enable = "1", .polkit = "0" };
        check(policy_claim_verdict(&p, &alice, &fake) == POLICY_DENY);
        p.polkit = "maybe";
        check(policy_claim_verdict(&p, &alice, &fake) == POLICY_DENY);

        /* the interface's ZCUSB_POLKIT overrides the device's */
        PolicyProps dev = { .enable = "1", .polkit = "1" }, iface = { .polkit = "0" };
        PolicyProps m = policy_props_merge(&dev, &iface);
        check(policy_claim_verdict(&m, &alice, &fake) == POLICY_DENY);
}

static void test_merge(void) {
        PolicyProps dev = { .enable = "1", .allow_users = "alice" };
        PolicyProps iface = { .allow_users = "bob" };
        PolicyProps m = policy_props_merge(&dev, &iface);

        check_streq(m.enable, "1");
        check_streq(m.allow_users, "bob");
        check(!m.allow_groups);
        check(policy_may_claim(&m, &bob, &fake));
        check(!policy_may_claim(&m, &alice, &fake));

        iface = (PolicyProps) { .enable = "0" }; /* one interface withheld */
        m = policy_props_merge(&dev, &iface);
        check(!policy_may_claim(&m, &alice, &fake));
        m = policy_props_merge(&dev, NULL);
        check(policy_may_claim(&m, &alice, &fake));
}

int main(void) {
        RUN(test_lists);
        RUN(test_may_claim);
        RUN(test_polkit_verdict);
        RUN(test_merge);
        return 0;
}
