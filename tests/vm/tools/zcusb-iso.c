/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zcusb-iso: isochronous transfers through zcusbd with libzcusb, the VM tier's
 * iso tool. OUT: for QEMU's usb-audio speaker (46f4:0002, interface 1, alternate
 * setting 1, iso OUT 0x01 of 192 bytes a frame) and zcusb-isodev's OUT endpoint.
 * IN (--in): reads zcusb-isodev's stream (zcusb-isodev.h: 1209:0001, interface 0,
 * alternate setting 1, iso IN 0x81 of 1024 bytes a millisecond) and checks it.
 *
 *   zcusb-iso [OPTIONS] DEVICE
 *   --interface N (1)       the streaming interface to claim
 *   --alt-setting N (1)     the alternate setting to select (it must have an iso OUT endpoint)
 *   --endpoint EP (auto)    the iso endpoint (default: the first one of that setting in the
 *                           direction asked for; 0x81..0x8f implies --in)
 *   --in                    read zcusb-isodev's IN stream instead of writing
 *   --min-filled PCT (50)   IN: at least PCT percent of the packets must carry data (QEMU's
 *                           usb-redir answers a packet it holds no data for with 0 bytes)
 *   --transfers N (64)      iso transfers to stream
 *   --packets P (32)        packets per transfer (1..ZCUSB_ISO_MAX_PACKETS)
 *   --packet-size S (auto)  bytes per packet (default: what the endpoint allows)
 *   --in-flight K (4)       transfers kept in flight
 *   --stream-offset N (0)   the data is zcusb-pattern.h's stream from byte N (a distinct N
 *                           per run lets a reader find this run's bytes at the device)
 *   --settle-ms MS (0)      after the last completion, wait MS before selecting alternate
 *                           setting 0 and releasing (a device that buffers what it received,
 *                           such as QEMU's usb-audio, plays it out meanwhile)
 *   --no-bad                skip the malformed requests
 *   --timeout MS (5000)     per transfer
 *   --json                  one JSON line instead of the text summary
 * DEVICE as zcusbctl takes it (object path, BUS:ADDR, VID:PID[:SERIAL], sysfs path).
 *
 * Checks every completion: CQE status 0, CQE actual_length == the transfer's data bytes,
 * every packet descriptor's status 0 and actual_length == length (IN: <= length, and the
 * CQE's actual_length their sum; each packet's data, at its offset in the packed data, is
 * checked with zc_isodev_check(): a whole packet of the device's stream, in order, at the
 * length the device sent it; bytes after a short packet's end stay as they were or are 0,
 * as usbfs leaves them). Unless --no-bad, it also
 * submits malformed iso requests, before the stream and once in its middle (with stream
 * transfers in flight): more packets than ZCUSB_ISO_MAX_PACKETS, no packets, descriptor
 * lengths adding up to more than the region, a packet larger than the endpoint allows. Each
 * must be refused, at submission or with a CQE status (-EINVAL; -EMSGSIZE or -EINVAL for the
 * oversized packet), and leave its region untouched (zcusbd writes no results back into
 * the descriptors of a refused request); the stream around them must be unaffected.
 *
 * JSON: transfers, packets, packet_size, bytes, seconds, mb_per_s, in_flight, interface,
 * alt_setting, endpoint, direction, max_packet_size, interval, stream_offset, bad_requests, bad_statuses
 * (what each malformed request got, in submission order), backend (the claim's Backend
 * property), served_by (who consumed the ring: "daemon" over usbfs, where zcusbd always
 * does; libzcusb does not read the claim's ServedBy property, so over zcusb.ko "unknown"),
 * submitted, completed, failed, bytes_out, bytes_in (the claim's counters after the stream);
 * IN also filled_packets, empty_packets, lost_packets (packet numbers of the device's stream
 * that never arrived: dropped by QEMU's buffer, which a real-time stream may do).
 * Exit: 0 all as expected; 1 a check failed; 2 usage; 3 no such device; 4 access denied;
 * 5 zcusbd unreachable; 6 a transfer failed (client/exit-codes.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zcusb.h>

#include "zcusb-isodev.h"
#include "zcusb-pattern.h"

#define MAX_IN_FLIGHT 64u
#define SENTINEL      UINT32_C(0x5a5a5a5a)
#define USER_BAD      (UINT64_C(1) << 62)
#define N_BAD_KINDS   4
#define IN_POISON     0xa5 /* IN data regions before each submission */

typedef struct Options {
        const char *device;
        uint8_t interface;
        uint8_t alt_setting;
        uint8_t endpoint; /* 0: the first iso endpoint in the direction asked for */
        bool in;
        unsigned min_filled; /* IN: percent of packets that must carry data */
        uint32_t transfers;
        uint32_t packets;
        uint32_t packet_size; /* 0: the endpoint's */
        unsigned in_flight;
        uint64_t stream_offset;
        unsigned settle_ms;
        bool bad;
        unsigned timeout_ms;
        bool json;
} Options;

typedef struct Slot {
        bool busy;
        uint64_t seq;
} Slot;

typedef struct Iso {
        const Options *o;
        struct zcusb *ctx;
        struct zcusb_claim *claim;
        struct zcusb_buffer *buffer;
        struct zcusb_queue *queue;
        uint8_t *data;
        uint8_t ep;
        struct zcusb_endpoint epd;
        uint32_t packet_size;
        size_t slot_size;     /* descriptors + data of one transfer, 64-aligned */
        size_t bad_base;      /* the malformed requests' region */
        size_t bad_size;
        Slot slots[MAX_IN_FLIGHT];
        uint64_t submitted, completed;
        uint64_t bytes_moved; /* the stream's, as the completions report it */
        ZcIsodevReader reader; /* IN */
        uint64_t next_expected; /* completions arrive in submission order on one endpoint */
        bool out_of_order;
        int bad_status[2 * N_BAD_KINDS];
        unsigned n_bad;
        unsigned n_bad_cqe;  /* of those, refused by zcusbd with a completion */
        bool bad_pending;
        unsigned bad_pending_kind;
} Iso;

static const char *program = "zcusb-iso";

#include "tool-common.h"

static void usage(FILE *to) {
        fprintf(to,
                "Usage: %s [--interface 1] [--alt-setting 1] [--endpoint EP] [--transfers 64] [--packets 32]\n"
                "       [--packet-size S] [--in-flight 4] [--stream-offset N] [--settle-ms MS] [--no-bad]\n"
                "       [--in] [--min-filled PCT] [--timeout MS] [--json] DEVICE\n"
                "Streams iso OUT transfers of zcusb-pattern.h's data through zcusbd (or, --in, reads\n"
                "zcusb-isodev's iso IN stream) and checks every completion and packet; malformed iso\n"
                "requests must be refused and change nothing.\n",
                program);
}

static int parse_options(int argc, char **argv, Options *o) {
        static const struct option options[] = {
                TOOL_LONG_OPTIONS,
                { "alt-setting",   required_argument, NULL, 'a' },
                { "endpoint",      required_argument, NULL, 'e' },
                { "transfers",     required_argument, NULL, 'n' },
                { "packets",       required_argument, NULL, 'p' },
                { "packet-size",   required_argument, NULL, 's' },
                { "in-flight",     required_argument, NULL, 'q' },
                { "stream-offset", required_argument, NULL, 'o' },
                { "settle-ms",     required_argument, NULL, 'S' },
                { "no-bad",        no_argument,       NULL, 'B' },
                { "in",            no_argument,       NULL, 'I' },
                { "min-filled",    required_argument, NULL, 'F' },
                {}
        };
        uint64_t v;
        int c;

        *o = (Options) {
                .interface = 1,
                .alt_setting = 1,
                .transfers = 64,
                .packets = 32,
                .in_flight = 4,
                .bad = true,
                .min_filled = 50,
                .timeout_ms = 5000,
        };
        while ((c = tool_getopt(argc, argv, "hn:p:q:j", options, usage, &o->interface, &o->timeout_ms, &o->json)) > 0) {
                switch (c) {
                case 'a':
                        if (parse_number("--alt-setting", optarg, 1, 255, "a number in 1..255 (setting 0 of a "
                                         "streaming interface has no endpoint)", &v) < 0)
                                return EXIT_USAGE;
                        o->alt_setting = (uint8_t) v;
                        break;
                case 'e':
                        if (parse_number("--endpoint", optarg, 1, 0x8f, NULL, &v) < 0)
                                return EXIT_USAGE;
                        if ((v & 0x70) || !(v & 0x0f))
                                return fail(EXIT_USAGE, "--endpoint %s: not an endpoint address (0x01..0x0f OUT, "
                                            "0x81..0x8f IN)", optarg);
                        o->endpoint = (uint8_t) (v & 0x0f);
                        if (v & 0x80)
                                o->in = true;
                        break;
                case 'I':
                        o->in = true;
                        break;
                case 'F':
                        if (parse_number("--min-filled", optarg, 0, 100, "a percentage (0..100)", &v) < 0)
                                return EXIT_USAGE;
                        o->min_filled = (unsigned) v;
                        break;
                case 'n':
                        if (parse_number("--transfers", optarg, 1, UINT32_MAX / 2, "a positive number", &v) < 0)
                                return EXIT_USAGE;
                        o->transfers = (uint32_t) v;
                        break;
                case 'p':
                        if (parse_number("--packets", optarg, 1, ZCUSB_ISO_MAX_PACKETS, NULL, &v) < 0)
                                return EXIT_USAGE;
                        o->packets = (uint32_t) v;
                        break;
                case 's':
                        if (parse_number("--packet-size", optarg, 1, 3 * 1024 * 16, NULL, &v) < 0)
                                return EXIT_USAGE;
                        o->packet_size = (uint32_t) v;
                        break;
                case 'q':
                        if (parse_number("--in-flight", optarg, 1, MAX_IN_FLIGHT, NULL, &v) < 0)
                                return EXIT_USAGE;
                        o->in_flight = (unsigned) v;
                        break;
                case 'o':
                        if (parse_number("--stream-offset", optarg, 0, UINT64_MAX, "a number", &o->stream_offset) < 0)
                                return EXIT_USAGE;
                        break;
                case 'S':
                        if (parse_number("--settle-ms", optarg, 0, 600000, "a number of milliseconds up to 600000",
                                         &v) < 0)
                                return EXIT_USAGE;
                        o->settle_ms = (unsigned) v;
                        break;
                case 'B':
                        o->bad = false;
                        break;
                }
        }
        if (c == 0)
                return EXIT_USAGE;
        return tool_device(argc, argv, usage, &o->device);
}

static size_t align64(size_t n) {
        return (n + 63) & ~(size_t) 63;
}

/* The endpoint to stream to, in the alternate setting just selected. */
static int find_endpoint(Iso *s) {
        const Options *o = s->o;
        int r;

        uint8_t dir = o->in ? 0x80 : 0;

        for (uint8_t n = o->endpoint ? o->endpoint : 1; n <= (o->endpoint ? o->endpoint : 0x0f); n++) {
                uint8_t a = n | dir;

                r = zcusb_claim_get_endpoint(s->claim, a, &s->epd);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return fail_lib(s->ctx, "reading the endpoint's descriptor", r, EXIT_FAIL);
                if ((s->epd.attributes & ZCUSB_ENDPOINT_TYPE_MASK) == ZCUSB_ENDPOINT_TYPE_ISO) {
                        s->ep = a;
                        return EXIT_OK;
                }
                if (o->endpoint)
                        return fail(EXIT_USAGE, "endpoint 0x%02x of interface %u, alternate setting %u is not "
                                    "isochronous (bmAttributes 0x%02x)", a, o->interface, o->alt_setting,
                                    s->epd.attributes);
        }
        if (o->endpoint)
                return fail(EXIT_USAGE, "interface %u, alternate setting %u has no endpoint 0x%02x", o->interface,
                            o->alt_setting, o->endpoint | dir);
        return fail(EXIT_USAGE, "interface %u, alternate setting %u has no isochronous %s endpoint", o->interface,
                    o->alt_setting, o->in ? "IN" : "OUT");
}

static uint32_t endpoint_packet_max(const struct zcusb_endpoint *e) {
        uint32_t mult = 1 + ((e->max_packet_size >> 11) & 3);

        return (uint32_t) (e->max_packet_size & 0x7ff) * (mult > 3 ? 3 : mult);
}

static uint8_t *slot_region(const Iso *s, unsigned k) {
        return s->data + (size_t) k * s->slot_size;
}

static uint64_t stream_pos(const Iso *s, uint64_t seq) {
        return s->o->stream_offset + seq * (uint64_t) s->o->packets * s->packet_size;
}

static int submit_stream(Iso *s, uint64_t seq) {
        const Options *o = s->o;
        unsigned k = (unsigned) (seq % o->in_flight);
        uint8_t *region = slot_region(s, k);
        struct zcusb_iso_packet *d = (struct zcusb_iso_packet *) region;
        uint32_t hdr = o->packets * (uint32_t) sizeof(*d);
        struct zcusb_sqe sqe;
        int r;

        for (uint32_t i = 0; i < o->packets; i++)
                d[i] = (struct zcusb_iso_packet) {
                        .length = s->packet_size, .actual_length = SENTINEL, .status = (int32_t) SENTINEL,
                };
        if (o->in)
                memset(region + hdr, IN_POISON, (size_t) o->packets * s->packet_size);
        else
                zc_pattern_fill(region + hdr, stream_pos(s, seq), (size_t) o->packets * s->packet_size);
        zcusb_prep_transfer(&sqe, ZCUSB_OP_ISO, s->ep, zcusb_buffer_id(s->buffer), (uint64_t) (region - s->data),
                            hdr + o->packets * s->packet_size, o->timeout_ms, seq);
        sqe.iso_packets = o->packets;
        r = zcusb_queue_submit(s->queue, &sqe);
        if (r < 0)
                return fail_lib(s->ctx, "submitting an iso transfer", r, EXIT_TRANSFER);
        s->slots[k] = (Slot) { .busy = true, .seq = seq };
        s->submitted++;
        return EXIT_OK;
}

static const char *const bad_names[N_BAD_KINDS] = {
        "more packets than ZCUSB_ISO_MAX_PACKETS",
        "no packets",
        "packet lengths adding up to more than the region",
        "a packet larger than the endpoint allows",
};

/* Fill the malformed request KIND into the bad region and its SQE. */
static void prep_bad(Iso *s, unsigned kind, struct zcusb_sqe *sqe) {
        struct zcusb_iso_packet *d = (struct zcusb_iso_packet *) (s->data + s->bad_base);
        uint32_t n = kind == 0 ? ZCUSB_ISO_MAX_PACKETS + 1 : 4;
        uint32_t length;

        for (uint32_t i = 0; i < ZCUSB_ISO_MAX_PACKETS + 1; i++)
                d[i] = (struct zcusb_iso_packet) {
                        .length = s->packet_size, .actual_length = SENTINEL, .status = (int32_t) SENTINEL,
                };
        switch (kind) {
        case 0: /* room for every descriptor and packet: only the count is wrong */
                length = n * (uint32_t) sizeof(*d) + n * s->packet_size;
                break;
        case 1:
                n = 0;
                length = 4 * (uint32_t) sizeof(*d) + 4 * s->packet_size;
                break;
        case 2: /* one byte short of the packets' sum */
                length = n * (uint32_t) sizeof(*d) + n * s->packet_size - 1;
                break;
        default: /* packet 2 one byte over the endpoint's size; the region holds it */
                d[2].length = endpoint_packet_max(&s->epd) + 1;
                length = n * (uint32_t) sizeof(*d) + (n - 1) * s->packet_size + d[2].length;
                break;
        }
        zcusb_prep_transfer(sqe, ZCUSB_OP_ISO, s->ep, zcusb_buffer_id(s->buffer), s->bad_base, length,
                            s->o->timeout_ms, USER_BAD | kind);
        sqe->iso_packets = n;
}

/* The region of a refused request must be as we wrote it. */
static int check_bad_untouched(const Iso *s, unsigned kind) {
        const struct zcusb_iso_packet *d = (const struct zcusb_iso_packet *) (s->data + s->bad_base);

        for (uint32_t i = 0; i < ZCUSB_ISO_MAX_PACKETS + 1; i++)
                if (d[i].actual_length != SENTINEL || d[i].status != (int32_t) SENTINEL)
                        return fail(EXIT_FAIL, "the refused request (%s) changed packet descriptor %u: actual_length "
                                    "%u, status %d (both were 0x%08x)", bad_names[kind], i, d[i].actual_length,
                                    d[i].status, SENTINEL);
        return EXIT_OK;
}

static bool bad_status_ok(unsigned kind, int status) {
        if (kind == 3)
                return status == -EMSGSIZE || status == -EINVAL;
        return status == -EINVAL;
}

/* Submit malformed request KIND. Refused at submission: checked at once;
 * else its completion is checked when reaped. */
static int submit_bad(Iso *s, unsigned kind) {
        struct zcusb_sqe sqe;
        int r;

        prep_bad(s, kind, &sqe);
        r = zcusb_queue_submit(s->queue, &sqe);
        if (r == -EAGAIN)
                return fail(EXIT_FAIL, "the submission ring is full (more in flight than its entries?)");
        if (r < 0) {
                /* refused by the library: as good as a CQE status, if it is the right one */
                if (!bad_status_ok(kind, r))
                        return fail(EXIT_FAIL, "malformed iso request (%s) refused at submission with %s, expected "
                                    "%s", bad_names[kind], zcusb_strerror(r), kind == 3 ? "-EMSGSIZE or -EINVAL" :
                                    "-EINVAL");
                s->bad_status[s->n_bad++] = r;
                return check_bad_untouched(s, kind);
        }
        s->bad_pending = true;
        s->bad_pending_kind = kind;
        return EXIT_OK;
}

static int check_bad_cqe(Iso *s, const struct zcusb_cqe *c) {
        unsigned kind = (unsigned) (c->user_data & ~USER_BAD);

        if (!s->bad_pending || kind != s->bad_pending_kind)
                return fail(EXIT_FAIL, "a completion for a malformed request that is not in flight (user_data 0x%"
                            PRIx64 ")", c->user_data);
        s->bad_pending = false;
        if (!bad_status_ok(kind, c->status))
                return fail(EXIT_FAIL, "malformed iso request (%s) completed with status %d (%s), expected %s",
                            bad_names[kind], c->status, c->status ? zcusb_strerror(c->status) : "success",
                            kind == 3 ? "-EMSGSIZE or -EINVAL" : "-EINVAL");
        if (c->actual_length != 0)
                return fail(EXIT_FAIL, "malformed iso request (%s) reports %u bytes moved", bad_names[kind],
                            c->actual_length);
        s->bad_status[s->n_bad++] = c->status;
        s->n_bad_cqe++;
        return check_bad_untouched(s, kind);
}

static int check_stream_cqe(Iso *s, const struct zcusb_cqe *c) {
        const Options *o = s->o;
        uint64_t seq = c->user_data;
        unsigned k = (unsigned) (seq % o->in_flight);
        const struct zcusb_iso_packet *d = (const struct zcusb_iso_packet *) slot_region(s, k);
        const uint8_t *data = slot_region(s, k) + o->packets * sizeof(*d);
        uint32_t want = o->packets * s->packet_size;
        uint64_t sum = 0;
        char why[160];

        if (!s->slots[k].busy || s->slots[k].seq != seq)
                return fail(EXIT_FAIL, "a completion for a transfer that is not in flight (user_data 0x%" PRIx64 ")",
                            c->user_data);
        s->slots[k].busy = false;
        if (seq != s->next_expected)
                s->out_of_order = true;
        s->next_expected = seq + 1;
        if (c->status != 0) {
                const char *reason = NULL;

                if (zcusb_claim_is_ended(s->claim, &reason) > 0)
                        return fail(exit_code_for(c->status, EXIT_TRANSFER), "iso transfer %" PRIu64 " failed: %s "
                                    "(the claim ended: %s)", seq, zcusb_strerror(c->status), reason ? reason : "?");
                return fail(exit_code_for(c->status, EXIT_TRANSFER), "iso transfer %" PRIu64 " on endpoint 0x%02x "
                            "failed: status %d, %s", seq, s->ep, c->status, zcusb_strerror(c->status));
        }
        for (uint32_t i = 0; i < o->packets; i++) {
                if (d[i].length != s->packet_size)
                        return fail(EXIT_FAIL, "iso transfer %" PRIu64 ": packet %u's length became %u (was %u)", seq, i,
                                    d[i].length, s->packet_size);
                if (d[i].status != 0)
                        return fail(EXIT_TRANSFER, "iso transfer %" PRIu64 ": packet %u has status %d (%s)%s", seq, i,
                                    d[i].status, zcusb_strerror(d[i].status),
                                    d[i].status == (int32_t) SENTINEL ? ": no result was written back" : "");
                if (o->in ? d[i].actual_length > d[i].length : d[i].actual_length != d[i].length)
                        return fail(EXIT_TRANSFER, "iso transfer %" PRIu64 ": packet %u moved %u of %u bytes%s", seq, i,
                                    d[i].actual_length, d[i].length,
                                    d[i].actual_length == SENTINEL ? " (no result was written back)" : "");
                if (o->in) {
                        const uint8_t *p = data + (size_t) i * s->packet_size;

                        if (zc_isodev_check(&s->reader, true, p, d[i].actual_length, why, sizeof(why)) < 0)
                                return fail(EXIT_FAIL, "iso transfer %" PRIu64 ", packet %u: %s", seq, i, why);
                        /* usbfs zeroes an IN buffer before the transfer and
                                 * copies all of it back; zcusb.ko leaves it be */
                        for (uint32_t b = d[i].actual_length; b < d[i].length; b++)
                                if (p[b] != IN_POISON && p[b] != 0)
                                        return fail(EXIT_FAIL, "iso transfer %" PRIu64 ", packet %u of %u bytes: "
                                                    "byte %u beyond its end was written (0x%02x)", seq, i,
                                                    d[i].actual_length, b, p[b]);
                }
                sum += d[i].actual_length;
        }
        if (o->in)
                want = (uint32_t) sum;
        if (c->actual_length != want || sum != want)
                return fail(EXIT_FAIL, "iso transfer %" PRIu64 ": the completion reports %u bytes, the packets %" PRIu64
                            ", %u were sent", seq, c->actual_length, sum, want);
        s->completed++;
        s->bytes_moved += sum;
        return EXIT_OK;
}

static int reap(Iso *s) {
        struct zcusb_cqe cqes[64];
        int n = zcusb_queue_reap(s->queue, cqes, 64), r;

        if (n < 0)
                return fail_lib(s->ctx, "reaping completions", n, EXIT_FAIL);
        for (int i = 0; i < n; i++) {
                r = cqes[i].user_data & USER_BAD ? check_bad_cqe(s, &cqes[i]) : check_stream_cqe(s, &cqes[i]);
                if (r != EXIT_OK)
                        return r;
        }
        return EXIT_OK;
}

/* Wait for completions and check them; fail when none comes in time. */
static int wait_and_reap(Iso *s) {
        double start = now_seconds();
        int r;

        for (;;) {
                r = zcusb_queue_wait(s->queue, 1000);
                if (r == -EINTR)
                        continue;
                if (r < 0)
                        return fail_wait(s->ctx, s->claim, r);
                if (r > 0)
                        return reap(s);
                if ((now_seconds() - start) * 1000.0 > (double) s->o->timeout_ms + 5000.0)
                        return fail(EXIT_TRANSFER, "no completion for %.1f s although each transfer has a %u ms "
                                    "timeout", now_seconds() - start, s->o->timeout_ms);
        }
}

/* Wait until the malformed request in flight, if any, has completed. */
static int wait_bad(Iso *s) {
        int r;

        while (s->bad_pending) {
                r = wait_and_reap(s);
                if (r != EXIT_OK)
                        return r;
        }
        return EXIT_OK;
}

/* The malformed requests, one at a time, with nothing else in flight. */
static int run_bad_alone(Iso *s) {
        int r;

        for (unsigned kind = 0; kind < N_BAD_KINDS; kind++) {
                r = submit_bad(s, kind);
                if (r == EXIT_OK)
                        r = wait_bad(s);
                if (r != EXIT_OK)
                        return r;
        }
        return EXIT_OK;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int run(Iso *s) {
        const Options *o = s->o;
        struct zcusb_usage u;
        unsigned entries = 1;
        uint64_t next = 0;
        double start, seconds;
        uint64_t bytes;
        int r;

        r = zcusb_claim_set_alt_setting(s->claim, o->alt_setting);
        if (r < 0)
                return fail_lib(s->ctx, "selecting the alternate setting", r, EXIT_FAIL);
        r = find_endpoint(s);
        if (r != EXIT_OK)
                return r;
        s->packet_size = o->packet_size ? o->packet_size : endpoint_packet_max(&s->epd);
        if (s->packet_size == 0)
                return fail(EXIT_FAIL, "endpoint 0x%02x allows packets of 0 bytes (wMaxPacketSize 0x%04x)", s->ep,
                            s->epd.max_packet_size);

        s->slot_size = align64((size_t) o->packets * (sizeof(struct zcusb_iso_packet) + s->packet_size));
        s->bad_base = (size_t) o->in_flight * s->slot_size;
        s->bad_size = align64((size_t) (ZCUSB_ISO_MAX_PACKETS + 1) *
                              (sizeof(struct zcusb_iso_packet) + endpoint_packet_max(&s->epd) + 1));
        r = zcusb_buffer_alloc(s->claim, s->bad_base + s->bad_size, &s->buffer);
        if (r < 0)
                return fail_lib(s->ctx, "allocating the buffer", r, EXIT_FAIL);
        s->data = zcusb_buffer_data(s->buffer);
        while (entries < o->in_flight + 1)
                entries <<= 1;
        r = zcusb_queue_open(s->claim, entries, &s->queue);
        if (r < 0)
                return fail_lib(s->ctx, "opening a queue", r, EXIT_FAIL);

        if (o->bad) {
                r = run_bad_alone(s);
                if (r != EXIT_OK)
                        return r;
        }

        start = now_seconds();
        while (s->completed < o->transfers) {
                while (next < o->transfers && next - s->completed < o->in_flight) {
                        r = submit_stream(s, next++);
                        if (r != EXIT_OK)
                                return r;
                        /* halfway, with the stream in flight: one more malformed request */
                        if (o->bad && next == (o->transfers + 1) / 2 && s->n_bad == N_BAD_KINDS) {
                                r = submit_bad(s, 0);
                                if (r != EXIT_OK)
                                        return r;
                        }
                }
                r = wait_and_reap(s);
                if (r != EXIT_OK)
                        return r;
        }
        r = wait_bad(s);
        if (r != EXIT_OK)
                return r;
        seconds = now_seconds() - start;
        bytes = s->bytes_moved;

        r = zcusb_claim_get_usage(s->claim, &u);
        if (r < 0)
                return fail_lib(s->ctx, "reading the claim's counters", r, EXIT_FAIL);
        /* dbus/API.md: Submitted counts every entry acted on, Failed the refused ones; a
         * kernel-served queue's entries count the same. */
        if ((o->in ? u.bytes_in : u.bytes_out) != bytes || (o->in ? u.bytes_out : u.bytes_in) != 0 ||
            u.completed != o->transfers || u.failed != s->n_bad_cqe ||
            u.submitted != o->transfers + s->n_bad_cqe || u.in_flight != 0)
                return fail(EXIT_FAIL, "the claim's counters are submitted %" PRIu64 ", completed %" PRIu64 ", failed %"
                            PRIu64 ", bytes %s %" PRIu64 " (%s %" PRIu64 "), in flight %" PRIu32 "; expected %" PRIu64
                            ", %" PRIu32 ", %u, %" PRIu64 " (0), 0 (%" PRIu32 " transfers, %u refused by zcusbd)",
                            u.submitted, u.completed, u.failed, o->in ? "in" : "out", o->in ? u.bytes_in : u.bytes_out,
                            o->in ? "out" : "in", o->in ? u.bytes_out : u.bytes_in, u.in_flight,
                            o->transfers + (uint64_t) s->n_bad_cqe, o->transfers, s->n_bad_cqe, bytes, o->transfers,
                            s->n_bad_cqe);
        if (o->in) {
                uint64_t packets = (uint64_t) o->transfers * o->packets;

                if (s->reader.packets * 100 < packets * o->min_filled)
                        return fail(EXIT_FAIL, "only %" PRIu64 " of %" PRIu64 " packets carried data (%" PRIu64
                                    " empty; --min-filled %u%%)", s->reader.packets, packets, s->reader.empty,
                                    o->min_filled);
        }
        if (o->settle_ms)
                sleep_ms(o->settle_ms);
        r = zcusb_claim_set_alt_setting(s->claim, 0);
        if (r < 0)
                return fail_lib(s->ctx, "selecting alternate setting 0 again", r, EXIT_FAIL);

        {
                double mbps = seconds > 0 ? (double) bytes / seconds / 1e6 : 0.0;
                const char *served = strcmp(u.backend, "usbfs") == 0 ? "daemon" : "unknown";

                if (o->json) {
                        printf("{\"transfers\":%" PRIu32 ",\"packets\":%" PRIu64 ",\"packet_size\":%" PRIu32
                               ",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"mb_per_s\":%.3f,\"in_flight\":%u"
                               ",\"interface\":%u,\"alt_setting\":%u,\"endpoint\":\"0x%02x\",\"max_packet_size\":%u"
                               ",\"direction\":\"%s\",\"interval\":%u,\"stream_offset\":%" PRIu64
                               ",\"bad_requests\":%u,\"bad_statuses\":[",
                               o->transfers, (uint64_t) o->transfers * o->packets, s->packet_size, bytes, seconds,
                               mbps, o->in_flight, o->interface, o->alt_setting, s->ep, s->epd.max_packet_size,
                               o->in ? "in" : "out", s->epd.interval, o->stream_offset, s->n_bad);
                        for (unsigned i = 0; i < s->n_bad; i++)
                                printf("%s%d", i ? "," : "", s->bad_status[i]);
                        printf("],\"in_order\":%s,\"backend\":\"%s\",\"served_by\":\"%s\",\"submitted\":%" PRIu64
                               ",\"completed\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"bytes_out\":%" PRIu64
                               ",\"bytes_in\":%" PRIu64,
                               s->out_of_order ? "false" : "true", u.backend, served, u.submitted, u.completed,
                               u.failed, u.bytes_out, u.bytes_in);
                        if (o->in)
                                printf(",\"filled_packets\":%" PRIu64 ",\"empty_packets\":%" PRIu64
                                       ",\"lost_packets\":%" PRIu64, s->reader.packets, s->reader.empty,
                                       s->reader.lost);
                        printf("}\n");
                } else {
                        printf("%" PRIu32 " iso %s transfers of %" PRIu32 " packets x %" PRIu32 " bytes %s endpoint "
                               "0x%02x (interface %u, alternate setting %u): %" PRIu64 " bytes in %.3f s, %.3f MB/s, ",
                               o->transfers, o->in ? "IN" : "OUT", o->packets, s->packet_size, o->in ? "from" : "to",
                               s->ep, o->interface, o->alt_setting, bytes, seconds, mbps);
                        if (o->in)
                                printf("%" PRIu64 " packets with data, each whole and in order, %" PRIu64 " empty, %"
                                       PRIu64 " of the device's stream lost\n", s->reader.packets, s->reader.empty,
                                       s->reader.lost);
                        else
                                printf("every packet complete\n");
                        if (o->bad) {
                                printf("malformed requests refused:");
                                for (unsigned i = 0; i < s->n_bad; i++)
                                        printf(" %d", s->bad_status[i]);
                                printf("\n");
                        }
                        printf("backend %s, served by %s\n", u.backend, served);
                }
        }
        return EXIT_OK;
}

int main(int argc, char **argv) {
        Options o;
        Iso s = { .o = &o };
        int code = parse_options(argc, argv, &o);

        if (code == EXIT_OK)
                code = open_claim(o.device, o.interface, &s.ctx, &s.claim);
        if (code != EXIT_OK)
                return code;
        return close_claim(s.ctx, run(&s));
}
