/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Claim object as a client reads it over D-Bus: zcusbd's real claim
 * vtable on one end of a socketpair bus, a client on the other, one event
 * loop, a claim whose queue the kernel serves (fake_backend_kq). A GetAll is
 * one snapshot of the counters: one read of the kernel's counters per queue
 * for the whole call, not one per property. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "claim-dbus.h"
#include "claim.h"
#include "fake-backend.h"
#include "lifecycle-harness.h"
#include "log.h"
#include "manager.h"
#include "queue.h"
#include "tests.h"
#include "zcusb-dbus.h"

typedef struct Pair {
        sd_bus *server, *client;
} Pair;

/* zcusbd's Claim objects on SERVER, as manager_connect_bus() adds them. */
static void pair_open(Pair *p, Manager *m) {
        int fds[2];
        sd_id128_t id;

        check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        check(sd_id128_randomize(&id) >= 0);
        check(sd_bus_new(&p->server) >= 0);
        check(sd_bus_set_fd(p->server, fds[0], fds[0]) >= 0);
        check(sd_bus_set_server(p->server, true, id) >= 0);
        check(sd_bus_add_fallback_vtable(p->server, NULL, ZCUSB_CLAIM_PATH_PREFIX, ZCUSB_CLAIM_INTERFACE,
                                         claim_vtable, claim_object_find, m) >= 0);
        check(sd_bus_start(p->server) >= 0);
        check(sd_bus_attach_event(p->server, m->event, 0) >= 0);

        check(sd_bus_new(&p->client) >= 0);
        check(sd_bus_set_fd(p->client, fds[1], fds[1]) >= 0);
        check(sd_bus_start(p->client) >= 0);
        check(sd_bus_attach_event(p->client, m->event, 0) >= 0);
}

static void pair_close(Pair *p) {
        p->client = sd_bus_flush_close_unref(p->client);
        p->server = sd_bus_flush_close_unref(p->server);
}

typedef struct Reply {
        bool done;
        int error; /* 0, or the method error's errno */
        uint64_t submitted, completed, failed, bytes_in, bytes_out;
        uint32_t in_flight;
        unsigned counters_seen;
} Reply;

static int on_get_all(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Reply *r = userdata;
        const char *name;

        (void) ret_error;
        r->done = true;
        if (sd_bus_message_is_method_error(m, NULL)) {
                r->error = sd_bus_message_get_errno(m) ?: EIO;
                return 0;
        }
        check(sd_bus_message_enter_container(m, 'a', "{sv}") > 0);
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                static const struct {
                        const char *name;
                        size_t offset;
                } t[] = {
                        { "Submitted", offsetof(Reply, submitted) }, { "Completed", offsetof(Reply, completed) },
                        { "Failed", offsetof(Reply, failed) },       { "BytesIn", offsetof(Reply, bytes_in) },
                        { "BytesOut", offsetof(Reply, bytes_out) },
                };
                bool known = false;

                check(sd_bus_message_read(m, "s", &name) > 0);
                for (size_t i = 0; i < ELEMENTSOF(t); i++)
                        if (streq(name, t[i].name)) {
                                check(sd_bus_message_read(m, "v", "t", (uint64_t *) ((uint8_t *) r + t[i].offset)) > 0);
                                r->counters_seen++;
                                known = true;
                        }
                if (streq(name, "InFlight")) {
                        check(sd_bus_message_read(m, "v", "u", &r->in_flight) > 0);
                        r->counters_seen++;
                        known = true;
                }
                if (!known)
                        check(sd_bus_message_skip(m, "v") >= 0);
                check(sd_bus_message_exit_container(m) > 0);
        }
        check(sd_bus_message_exit_container(m) > 0);
        return 0;
}

static Reply get_all(Pair *p, Manager *m, const char *path) {
        Reply r = {};

        check(sd_bus_call_method_async(p->client, NULL, NULL, path, "org.freedesktop.DBus.Properties", "GetAll",
                                       on_get_all, &r, "s", ZCUSB_CLAIM_INTERFACE) >= 0);
        for (unsigned i = 0; i < 1000 && !r.done; i++)
                check(sd_event_run(m->event, 10 * 1000) >= 0);
        check(r.done);
        return r;
}

static void test_get_all_one_snapshot(void) {
        const TransferCounters live = { .submitted = 10, .completed = 6, .failed = 1,
                                        .bytes_in = 3000, .bytes_out = 4000, .in_flight = 3 };
        Harness h;
        Pair p = {};
        Reply r;
        unsigned reads;

        harness_new(&h, NULL);
        h.m->backend = &fake_backend_kq;
        harness_claim(&h);
        check(h.queue->kernel);
        pair_open(&p, h.m);

        fake.kq_counters = live;
        reads = fake.n_queue_counters;
        r = get_all(&p, h.m, h.claim->object_path);
        check(r.error == 0);
        check(r.counters_seen == 6);
        check(fake.n_queue_counters == reads + 1); /* six counters, one read */
        check(r.submitted == 10 && r.completed == 6 && r.failed == 1 && r.bytes_in == 3000 && r.bytes_out == 4000);
        check(r.in_flight == 3);

        /* the next call reads again: a snapshot per call, not a cache */
        fake.kq_counters.completed = 8;
        fake.kq_counters.in_flight = 1;
        r = get_all(&p, h.m, h.claim->object_path);
        check(fake.n_queue_counters == reads + 2);
        check(r.completed == 8 && r.in_flight == 1);

        pair_close(&p);
        harness_release(&h);
        harness_finish(&h, "GetAll one snapshot", true);
}

int main(void) {
        log_set_max_level(LOG_ERR);

        RUN(test_get_all_one_snapshot);
        return 0;
}
