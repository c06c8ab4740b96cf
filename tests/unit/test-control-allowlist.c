/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control-request allow-list (dbus/API.md, "Control requests"): the
 * shared vectors of transfer-check-vectors.h (and its iso entries), the sentences of refusals, and
 * a sweep of every request type, recipient and request code against an
 * oracle written from the rule, not from the code. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests.h"
#include "transfer-check-fixture.h"
#include "transfer-check-vectors.h"
#include "transfer-check.h"

/* A control transfer of SETUP with its wLength of data, on alt setting ALT:
 * 0 or the errno, and *why set exactly when refused. */
static int control_request(uint8_t alt, const uint8_t setup[8], const char **ret_why) {
        static uint8_t region[8 + UINT16_MAX];
        uint16_t length = (uint16_t) (setup[6] | setup[7] << 8);
        struct zcusb_sqe s = sqe_for(ZCUSB_OP_CONTROL, 0, 8u + length);
        TransferContext ctx = ctx_for(alt);
        const char *why = NULL;
        TransferPlan plan;
        int r;

        s.buffer_id = 3;
        check(transfer_check_entry(&s, &ctx, &plan, &why) == 0);
        memcpy(region, setup, 8);
        r = transfer_check_payload(&plan, &ctx, region, &why);
        check(r < 0 ? why && why[0] : !why);
        if (ret_why)
                *ret_why = why;
        return r;
}

static const char *vector_expect_to_string(enum control_vector_expect e) {
        return e == CONTROL_ALLOWED ? "allowed" : "refused";
}

/* The shared table (transfer-check-vectors.h): every vector is checked and
 * every mismatch named before the test fails. */
static void test_control_vectors(void) {
        unsigned failed = 0;

        for (size_t i = 0; i < ELEMENTSOF(control_vectors); i++) {
                const struct control_vector *v = &control_vectors[i];
                int r = control_request(0, SETUP(v->request_type, v->request, v->value, v->index, v->length), NULL);
                int expected = v->expect == CONTROL_ALLOWED ? 0 : -EPERM;

                if (r != expected) {
                        printf("  vector \"%s\" (%02x %02x %04x %04x %04x): expected %s, got %d\n", v->name,
                               v->request_type, v->request, v->value, v->index, v->length,
                               vector_expect_to_string(v->expect), r);
                        failed++;
                }
        }
        printf("  %zu control vectors, %u failed\n", ELEMENTSOF(control_vectors), failed);
        check(failed == 0);
}

/* An iso entry of the shared table on alt 1: the entry's checks, then the
 * descriptors' (written into a buffer as a client would). 0 or the errno. */
static int iso_request(const struct iso_vector *v) {
        static uint8_t buffer[ISO_VECTOR_BUFFER_SIZE];
        struct zcusb_sqe s = sqe_for(ZCUSB_OP_ISO, v->endpoint, v->iso_packets * 16 + v->data);
        TransferContext ctx = ctx_for(1);
        const char *why = NULL;
        TransferPlan plan;
        int r;

        s.offset = v->offset;
        s.iso_packets = v->iso_packets;
        r = transfer_check_entry(&s, &ctx, &plan, &why);
        if (r < 0)
                return r;
        for (uint32_t k = 0; k < v->iso_packets; k++) {
                struct zcusb_iso_packet p = { .length = k + 1 == v->iso_packets ? v->last : v->packet };
                memcpy(buffer + v->offset + k * sizeof(p), &p, sizeof(p));
        }
        r = transfer_check_payload(&plan, &ctx, buffer + v->offset, &why);
        check(r < 0 ? why && why[0] : !why);
        return r;
}

/* The shared iso table: the same numbers zcusb.ko's checker gives. */
static void test_iso_vectors(void) {
        unsigned failed = 0;

        for (size_t i = 0; i < ELEMENTSOF(iso_vectors); i++) {
                const struct iso_vector *v = &iso_vectors[i];
                int r = iso_request(v);

                if (r != v->expect) {
                        printf("  iso vector \"%s\": expected %d, got %d\n", v->name, v->expect, r);
                        failed++;
                }
        }
        printf("  %zu iso vectors, %u failed\n", ELEMENTSOF(iso_vectors), failed);
        check(failed == 0);
}

/* The refusals that have a method of their own say which. */
static void test_control_refusal_reasons(void) {
        const char *why;

        check(control_request(0, SETUP(0x01, 0x0b, 1, 0, 0), &why) == -EPERM);
        check(strstr(why, "SetAltSetting"));
        check(control_request(0, SETUP(0x02, 0x01, 0, 0x81, 0), &why) == -EPERM);
        check(strstr(why, "ClearHalt"));
        check(control_request(0, SETUP(0x00, 0x03, 2, 0x0400, 0), &why) == -EPERM);
        check(!strstr(why, "ClearHalt") && !strstr(why, "SetAltSetting"));
        check(control_request(0, SETUP(0x23, 0x03, 4, 1, 0), &why) == -EPERM);
        check(strstr(why, "other"));
}

/* The rule, written from dbus/API.md ("Control requests") independently of
 * transfer-check.c, for the fixture above: the claim holds interface 0. */
enum { ORACLE_DEVICE, ORACLE_INTERFACE, ORACLE_ENDPOINT, ORACLE_ADDRESSABLE };

/* [type][recipient]: which recipients each type may address at all. */
static const bool oracle_addressable[4][ORACLE_ADDRESSABLE] = {
        [0] = { true, true, true },    /* standard, limited further below */
        [1] = { false, true, true },   /* class: never device-wide */
        [2] = { true, true, true },    /* vendor */
        [3] = { false, false, false }, /* reserved */
};

/* The only standard requests, each device-to-host. */
static const struct {
        uint8_t recipient, request;
} oracle_standard_gets[] = {
        { ORACLE_DEVICE, 0x00 },    { ORACLE_DEVICE, 0x06 },    { ORACLE_DEVICE, 0x08 },
        { ORACLE_INTERFACE, 0x00 }, { ORACLE_INTERFACE, 0x06 }, { ORACLE_INTERFACE, 0x0a },
        { ORACLE_ENDPOINT, 0x00 },  { ORACLE_ENDPOINT, 0x0c },
};

/* Interface 0's endpoints, as the fixture's descriptors say. */
static const struct {
        uint8_t alt;
        uint16_t address;
} oracle_endpoints[] = {
        { 0, 0x81 }, { 0, 0x02 }, { 0, 0x85 }, { 0, 0x87 }, { 1, 0x83 }, { 1, 0x04 },
};

static bool oracle_allows(uint8_t alt, uint8_t request_type, uint8_t request, uint16_t index) {
        unsigned type = (request_type >> 5) & 3, recipient = request_type & 0x1f;
        bool owned = false;

        if (recipient >= ORACLE_ADDRESSABLE || !oracle_addressable[type][recipient])
                return false;
        if (recipient == ORACLE_INTERFACE && (index & 0xff) != 0)
                return false;
        if (recipient == ORACLE_ENDPOINT) {
                for (size_t i = 0; i < ELEMENTSOF(oracle_endpoints); i++)
                        owned = owned || (oracle_endpoints[i].alt == alt && oracle_endpoints[i].address == index);
                if (!owned)
                        return false;
        }
        if (type != 0)
                return true;
        if (!(request_type & 0x80))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(oracle_standard_gets); i++)
                if (oracle_standard_gets[i].recipient == recipient && oracle_standard_gets[i].request == request)
                        return true;
        return false;
}

/* One combination against the oracle; whether it was allowed. */
static bool sweep_one(unsigned alt, unsigned request_type, unsigned request, uint16_t value, uint16_t index) {
        uint16_t length = request_type & 0x80 ? 2 : 0;
        bool expected = oracle_allows((uint8_t) alt, (uint8_t) request_type, (uint8_t) request, index);
        int r = control_request((uint8_t) alt, SETUP(request_type, request, value, index, length), NULL);

        if (r != (expected ? 0 : -EPERM)) {
                fprintf(stderr, "alt %u setup %02x %02x %04x %04x: expected %s, got %d\n", alt, request_type,
                        request, value, index, expected ? "allowed" : "refused", r);
                check(false);
        }
        return expected;
}

/* Every type x recipient x direction x request code x a set of wIndex and
 * wValue that matter to someone, on both alt settings, against the oracle. */
static void test_control_sweep(void) {
        static const uint16_t indexes[] = {
                0x0000, /* interface 0; endpoint 0 OUT */
                0x0300, /* interface 0, UVC entity 3 in the high byte */
                0x0400, /* interface 0, TEST_MODE selector Test_Packet in the high byte */
                0x0001, /* interface 1; endpoint 0x01, which does not exist */
                0x0002, /* endpoint 0x02 (alt 0); interface 2, which does not exist */
                0x00ff, /* interface 255 */
                0x0080, /* endpoint 0 IN */
                0x0081, /* endpoint 0x81 (alt 0) */
                0x0085, /* endpoint 0x85 (alt 0) */
                0x0083, /* endpoint 0x83 (alt 1) */
                0x0004, /* endpoint 0x04 (alt 1) */
                0x0086, /* endpoint 0x86 (interface 1) */
                0x0181, /* endpoint 0x81, reserved high byte */
                0x0104, /* endpoint 0x04, reserved high byte */
                0xffff,
        };
        static const uint16_t values[] = {
                0x0000, /* ENDPOINT_HALT, FUNCTION_SUSPEND */
                0x0001, /* DEVICE_REMOTE_WAKEUP */
                0x0002, /* TEST_MODE */
                0x0100, /* descriptor type 1 */
        };
        uint64_t combinations = 0, allowed = 0;

        for (unsigned alt = 0; alt < 2; alt++)
                for (unsigned request_type = 0; request_type <= 0xff; request_type++)
                        for (unsigned request = 0; request <= 0xff; request++)
                                for (size_t i = 0; i < ELEMENTSOF(indexes); i++)
                                        for (size_t v = 0; v < ELEMENTSOF(values); v++) {
                                                allowed += sweep_one(alt, request_type, request, values[v],
                                                                     indexes[i]);
                                                combinations++;
                                        }
        printf("  %" PRIu64 " control request combinations checked against the oracle, %" PRIu64 " allowed\n",
               combinations, allowed);
}

int main(void) {
        RUN(test_control_vectors);
        RUN(test_iso_vectors);
        RUN(test_control_refusal_reasons);
        RUN(test_control_sweep);
        return 0;
}
