/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zcusb-loopback: stream test data through zcusbd with libzcusb and check every
 * byte (the VM tier's data-integrity tool; the stream is zcusb-pattern.h's).
 *
 *   zcusb-loopback [OPTIONS] DEVICE
 *     --mode loop   (default) write the pattern to the OUT endpoint and read it
 *                   back from the IN endpoint at the same time (a Loopback
 *                   gadget echoes OUT to IN), --queue-depth transfers in flight
 *                   each way; the IN data must be the stream from byte 0
 *     --mode in     read --bytes from the IN endpoint: the data must be a piece
 *                   of the pattern stream (joined at whatever byte the device is)
 *     --mode out    write --bytes of the pattern, from byte 0, to the OUT endpoint
 *     --mode claim  claim the interface, print the claim's usage as JSON, then
 *                   allocate --alloc SIZE (if given) and print the usage again;
 *                   with --hold keep all that until SIGTERM/SIGINT, then release
 *   --interface N (0)  --in-endpoint EP (0x81)  --out-endpoint EP (0x02)
 *   --bytes SIZE (16M)  --transfer-size SIZE (64K)  --queue-depth N (4, per direction)
 *   --timeout MS (10000, per transfer; 0 none)  --alloc SIZE  --hold  --json
 *   --counters  after the stream, read the claim's transfer counters with the queue
 *               still open, close the queue and read them again
 * SIZE takes K, M, G (binary). DEVICE as zcusbctl takes it (object path, BUS:ADDR,
 * VID:PID[:SERIAL], sysfs path).
 *
 * Prints "N bytes ... in T s, X MB/s" on stdout, or with --json one object: mode, bytes (moved
 * each way), seconds, mb_per_s, transfers_out, transfers_in, verified (true when IN data was
 * checked here: loop and in; out leaves the checking to the device), stream_offset (in: the
 * device's stream byte the read began at); with --counters also open_X and closed_X for X in
 * submitted, completed, failed, bytes_in, bytes_out, in_flight (the claim's properties with
 * the queue open, and after CloseQueue).
 * Exit: 0 ok; 1 data mismatch or other failure; 2 usage (also: DEVICE names more
 * than one); 3 no such device (also: gone mid-stream); 4 access denied; 5 zcusbd
 * unreachable; 6 a transfer failed (zcusbctl's codes: client/CLI.md, client/exit-codes.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zcusb.h>

#include "zcusb-pattern.h"

#define IDLE_SLACK_MS 5000u
#define MAX_DEPTH     256u

typedef enum Mode { MODE_LOOP, MODE_IN, MODE_OUT, MODE_CLAIM } Mode;

typedef struct Options {
        Mode mode;
        const char *device;
        uint8_t interface;
        uint8_t in_ep, out_ep;
        uint64_t bytes;
        uint32_t transfer_size;
        unsigned depth;
        unsigned timeout_ms;
        uint64_t alloc;
        bool hold;
        bool json;
        bool counters;
} Options;

typedef struct Slot {
        uint32_t length; /* asked for */
        uint32_t actual;
        int32_t status;
        bool done;
} Slot;

/* One direction of the stream: DEPTH slots of the shared buffer, retired in
 * submission order. */
typedef struct Dir {
        bool used, in;
        uint8_t ep;
        uint8_t opcode;
        unsigned depth;
        size_t base;               /* first slot's offset in the buffer */
        Slot slots[MAX_DEPTH];
        uint64_t next_seq, oldest_seq;
        uint64_t produced;         /* OUT: stream bytes handed to transfers */
        uint64_t in_flight_bytes;  /* IN: asked for, not yet retired */
        uint64_t moved;            /* retired bytes, in stream order */
        uint64_t transfers;
        uint64_t stream_base;      /* IN: stream offset of our first byte */
        bool synced;               /* IN: stream_base known */
} Dir;

static const char *program = "zcusb-loopback";

#include "tool-common.h"

static int parse_size(const char *s, uint64_t *ret) {
        char buf[64], *end;
        size_t n = strlen(s);
        unsigned shift = 0;
        unsigned long long v;

        if (n == 0 || n >= sizeof(buf) || *s == '-')
                return -EINVAL;
        memcpy(buf, s, n + 1);
        switch (buf[n - 1]) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        default: break;
        }
        if (shift)
                buf[--n] = '\0';
        errno = 0;
        v = strtoull(buf, &end, 0);
        if (errno != 0 || *end != '\0' || end == buf || v > (UINT64_MAX >> shift))
                return -EINVAL;
        *ret = (uint64_t) v << shift;
        return 0;
}

static void usage(FILE *to) {
        fprintf(to,
                "Usage: %s [--mode loop|in|out|claim] [--interface N] [--in-endpoint 0x81]\n"
                "       [--out-endpoint 0x02] [--bytes 16M] [--transfer-size 64K] [--queue-depth 4]\n"
                "       [--timeout MS] [--alloc SIZE] [--hold] [--json] [--counters] DEVICE\n"
                "Streams zcusb-pattern.h's test data through zcusbd and checks every byte.\n",
                program);
}

static int parse_options(int argc, char **argv, Options *o) {
        static const struct option options[] = {
                TOOL_LONG_OPTIONS,
                { "mode",          required_argument, NULL, 'm' },
                { "in-endpoint",   required_argument, NULL, 'I' },
                { "out-endpoint",  required_argument, NULL, 'O' },
                { "bytes",         required_argument, NULL, 'n' },
                { "transfer-size", required_argument, NULL, 's' },
                { "queue-depth",   required_argument, NULL, 'q' },
                { "alloc",         required_argument, NULL, 'a' },
                { "hold",          no_argument,       NULL, 'H' },
                { "counters",      no_argument,       NULL, 'C' },
                {}
        };
        uint64_t v;
        int c, r;

        *o = (Options) {
                .mode = MODE_LOOP,
                .in_ep = 0x81,
                .out_ep = 0x02,
                .bytes = UINT64_C(16) << 20,
                .transfer_size = 64u << 10,
                .depth = 4,
                .timeout_ms = 10000,
        };
        while ((c = tool_getopt(argc, argv, "hm:i:n:s:q:t:j", options, usage, &o->interface, &o->timeout_ms,
                                &o->json)) > 0) {
                switch (c) {
                case 'm':
                        if (strcmp(optarg, "loop") == 0)
                                o->mode = MODE_LOOP;
                        else if (strcmp(optarg, "in") == 0)
                                o->mode = MODE_IN;
                        else if (strcmp(optarg, "out") == 0)
                                o->mode = MODE_OUT;
                        else if (strcmp(optarg, "claim") == 0)
                                o->mode = MODE_CLAIM;
                        else
                                return fail(EXIT_USAGE, "--mode: '%s' is not loop, in, out or claim", optarg);
                        break;
                case 'I':
                        if (parse_number("--in-endpoint", optarg, ZCUSB_ENDPOINT_DIR_IN, 0xff,
                                         "an IN endpoint address (0x81..0x8f)", &v) < 0)
                                return EXIT_USAGE;
                        o->in_ep = (uint8_t) v;
                        break;
                case 'O':
                        if (parse_number("--out-endpoint", optarg, 1, 0x0f, "an OUT endpoint address (0x01..0x0f)",
                                         &v) < 0)
                                return EXIT_USAGE;
                        o->out_ep = (uint8_t) v;
                        break;
                case 'n':
                        if (parse_size(optarg, &o->bytes) < 0 || o->bytes == 0)
                                return fail(EXIT_USAGE, "--bytes: '%s' is not a size such as 4096, 64K or 256M", optarg);
                        break;
                case 's':
                        if (parse_size(optarg, &v) < 0 || v == 0 || v > (UINT32_C(64) << 20))
                                return fail(EXIT_USAGE, "--transfer-size: '%s' is not a size from 1 to 64M", optarg);
                        o->transfer_size = (uint32_t) v;
                        break;
                case 'q':
                        if (parse_number("--queue-depth", optarg, 1, MAX_DEPTH, NULL, &v) < 0)
                                return EXIT_USAGE;
                        o->depth = (unsigned) v;
                        break;
                case 'a':
                        if (parse_size(optarg, &o->alloc) < 0 || o->alloc == 0)
                                return fail(EXIT_USAGE, "--alloc: '%s' is not a size such as 64M", optarg);
                        break;
                case 'H':
                        o->hold = true;
                        break;
                case 'C':
                        o->counters = true;
                        break;
                }
        }
        if (c == 0)
                return EXIT_USAGE;
        r = tool_device(argc, argv, usage, &o->device);
        if (r != EXIT_OK)
                return r;
        if ((o->alloc || o->hold) && o->mode != MODE_CLAIM)
                return fail(EXIT_USAGE, "--alloc and --hold are for --mode claim");
        if (o->counters && o->mode == MODE_CLAIM)
                return fail(EXIT_USAGE, "--counters is for the stream modes");
        return EXIT_OK;
}

static void print_usage_json(const char *when, const struct zcusb_usage *u) {
        printf("{\"when\":\"%s\",\"quota_bytes\":%" PRIu64 ",\"used_bytes\":%" PRIu64 ",\"in_flight\":%" PRIu32
               ",\"buffers\":%" PRIu32 ",\"queues\":%" PRIu32 ",\"backend\":\"%s\"}\n",
               when, u->quota_bytes, u->used_bytes, u->in_flight, u->buffers, u->queues, u->backend);
        fflush(stdout);
}

static int run_claim(const Options *o, struct zcusb *ctx, struct zcusb_claim *claim) {
        struct zcusb_usage u;
        struct zcusb_buffer *b = NULL;
        sigset_t set;
        int r, sig;

        /* Blocked before anything is printed: a SIGTERM right after the output is kept. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (o->hold)
                sigprocmask(SIG_BLOCK, &set, NULL);

        r = zcusb_claim_get_usage(claim, &u);
        if (r < 0)
                return fail_lib(ctx, "reading the claim's usage", r, EXIT_FAIL);
        print_usage_json("claimed", &u);
        if (o->alloc) {
                r = zcusb_buffer_alloc(claim, (size_t) o->alloc, &b);
                if (r < 0)
                        return fail_lib(ctx, "allocating the buffer", r, EXIT_FAIL);
                r = zcusb_claim_get_usage(claim, &u);
                if (r < 0)
                        return fail_lib(ctx, "reading the claim's usage", r, EXIT_FAIL);
                print_usage_json("allocated", &u);
        }
        if (o->hold) {
                printf("{\"when\":\"holding\"}\n");
                fflush(stdout);
                if (sigwait(&set, &sig) != 0)
                        return fail(EXIT_FAIL, "sigwait failed");
        }
        return EXIT_OK;
}

typedef struct Stream {
        const Options *o;
        struct zcusb *ctx;
        struct zcusb_claim *claim;
        struct zcusb_queue *queue;
        struct zcusb_buffer *buffer;
        uint8_t *data;
        Dir dirs[2]; /* [0] OUT, [1] IN */
        int error;   /* exit code once something failed */
} Stream;

#define SEQ_MASK  ((UINT64_C(1) << 62) - 1)
#define USER_IN   (UINT64_C(1) << 62)

static uint8_t *slot_data(const Stream *s, const Dir *d, uint64_t seq) {
        return s->data + d->base + (size_t) (seq % d->depth) * s->o->transfer_size;
}

static int dir_setup(Stream *s, Dir *d, bool in, size_t base) {
        struct zcusb_endpoint ep;
        uint8_t addr = in ? s->o->in_ep : s->o->out_ep;
        int r;

        r = zcusb_claim_get_endpoint(s->claim, addr, &ep);
        if (r < 0)
                return fail_lib(s->ctx, in ? "IN endpoint" : "OUT endpoint", r, EXIT_USAGE);
        switch (ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) {
        case ZCUSB_ENDPOINT_TYPE_BULK:
                d->opcode = ZCUSB_OP_BULK;
                break;
        case ZCUSB_ENDPOINT_TYPE_INTERRUPT:
                d->opcode = ZCUSB_OP_INTERRUPT;
                break;
        default:
                return fail(EXIT_USAGE, "endpoint 0x%02x is neither bulk nor interrupt", addr);
        }
        d->used = true;
        d->in = in;
        d->ep = addr;
        d->depth = s->o->depth;
        d->base = base;
        return EXIT_OK;
}

/* Keep every slot of D busy while bytes are owed. */
static int dir_fill(Stream *s, Dir *d) {
        const Options *o = s->o;

        while (s->error == EXIT_OK && d->next_seq - d->oldest_seq < d->depth) {
                struct zcusb_sqe sqe;
                uint64_t left, seq = d->next_seq;
                uint32_t length;
                uint8_t *p = slot_data(s, d, seq);
                int r;

                left = d->in ? o->bytes - d->moved - d->in_flight_bytes : o->bytes - d->produced;
                if (left == 0)
                        break;
                length = left < o->transfer_size ? (uint32_t) left : o->transfer_size;
                if (!d->in)
                        zc_pattern_fill(p, d->produced, length);
                zcusb_prep_transfer(&sqe, (enum zcusb_opcode) d->opcode, d->ep, zcusb_buffer_id(s->buffer),
                                    (uint64_t) (p - s->data), length, o->timeout_ms, (d->in ? USER_IN : 0) | seq);
                r = zcusb_queue_submit(s->queue, &sqe);
                if (r < 0)
                        return fail_lib(s->ctx, "submitting a transfer", r, EXIT_TRANSFER);
                d->slots[seq % d->depth] = (Slot) { .length = length };
                d->next_seq++;
                if (d->in)
                        d->in_flight_bytes += length;
                else
                        d->produced += length;
        }
        return EXIT_OK;
}

static void dump_bytes(const char *what, const uint8_t *p, size_t n) {
        fprintf(stderr, "%s: %s:", program, what);
        for (size_t i = 0; i < n; i++)
                fprintf(stderr, " %02x", p[i]);
        fputc('\n', stderr);
}

/* Check a retired IN slot against the stream. */
static int check_in(Stream *s, Dir *d, uint64_t seq, const Slot *slot) {
        const uint8_t *p = slot_data(s, d, seq);
        uint64_t at;
        size_t bad;

        if (slot->actual == 0)
                return EXIT_OK;
        if (!d->synced) {
                if (s->o->mode == MODE_IN) {
                        uint64_t w;

                        if (slot->actual < 8)
                                return fail(EXIT_FAIL, "the first IN transfer brought %u bytes: too few to find the "
                                            "stream position (8 needed)", slot->actual);
                        memcpy(&w, p, 8);
                        d->stream_base = zc_pattern_index(le64toh(w)) * 8;
                        if (!s->o->json)
                                printf("joined the device's stream at byte %" PRIu64 "\n", d->stream_base);
                }
                d->synced = true;
        }
        at = d->stream_base + d->moved;
        bad = zc_pattern_check(p, at, slot->actual);
        if (bad == slot->actual)
                return EXIT_OK;

        {
                size_t from = bad >= 8 ? bad - 8 : 0, n = slot->actual - from < 24 ? slot->actual - from : 24;
                uint8_t want[24];

                zc_pattern_fill(want, at + from, n);
                fprintf(stderr, "%s: DATA MISMATCH at stream byte %" PRIu64 " (IN transfer %" PRIu64 ", byte %zu of "
                        "its %u): got 0x%02x, expected 0x%02x; %" PRIu64 " bytes before it were right\n",
                        program, at + bad, seq, bad, slot->actual, p[bad], zc_pattern_byte(at + bad),
                        d->moved + bad);
                dump_bytes("got     ", p + from, n);
                dump_bytes("expected", want, n);
                if (bad + 8 <= slot->actual) {
                        uint64_t w;

                        memcpy(&w, p + (bad & ~(size_t) 7), 8);
                        fprintf(stderr, "%s: the word there is stream word %" PRIu64 "'s (expected word %" PRIu64 ")\n",
                                program, zc_pattern_index(le64toh(w)), (at + (bad & ~(size_t) 7)) / 8);
                }
        }
        return EXIT_FAIL;
}

static const char *dir_name(const Dir *d) {
        return d->in ? "IN" : "OUT";
}

/* Take completions; retire each direction's slots in submission order. */
static int reap(Stream *s) {
        struct zcusb_cqe cqes[64];
        int n = zcusb_queue_reap(s->queue, cqes, 64);

        if (n < 0)
                return fail_lib(s->ctx, "reaping completions", n, EXIT_FAIL);
        for (int i = 0; i < n; i++) {
                Dir *d = &s->dirs[cqes[i].user_data & USER_IN ? 1 : 0];
                uint64_t seq = cqes[i].user_data & SEQ_MASK;
                Slot *slot;

                if (!d->used || seq < d->oldest_seq || seq >= d->next_seq)
                        return fail(EXIT_FAIL, "a completion for a transfer that is not in flight (user_data 0x%" PRIx64
                                    ")", cqes[i].user_data);
                slot = &d->slots[seq % d->depth];
                if (slot->done)
                        return fail(EXIT_FAIL, "two completions for %s transfer %" PRIu64, dir_name(d), seq);
                slot->done = true;
                slot->status = cqes[i].status;
                slot->actual = cqes[i].actual_length;
                if (slot->actual > slot->length)
                        return fail(EXIT_FAIL, "%s transfer %" PRIu64 " reports %u bytes moved of %u asked for",
                                    dir_name(d), seq, slot->actual, slot->length);
        }

        for (int k = 0; k < 2; k++) {
                Dir *d = &s->dirs[k];

                while (d->used && d->oldest_seq < d->next_seq) {
                        uint64_t seq = d->oldest_seq;
                        Slot *slot = &d->slots[seq % d->depth];
                        int r;

                        if (!slot->done)
                                break;
                        if (slot->status != 0) {
                                int code = exit_code_for(slot->status, EXIT_TRANSFER);
                                const char *reason = NULL;

                                if (zcusb_claim_is_ended(s->claim, &reason) > 0)
                                        return fail(code, "%s transfer %" PRIu64 " on endpoint 0x%02x failed: %s "
                                                    "(the claim ended: %s)", dir_name(d), seq, d->ep,
                                                    zcusb_strerror(slot->status), reason ? reason : "?");
                                return fail(code, "%s transfer %" PRIu64 " on endpoint 0x%02x failed: %s", dir_name(d),
                                            seq, d->ep, zcusb_strerror(slot->status));
                        }
                        if (d->in) {
                                r = check_in(s, d, seq, slot);
                                if (r != EXIT_OK)
                                        return r;
                                d->in_flight_bytes -= slot->length;
                        } else if (slot->actual != slot->length)
                                return fail(EXIT_FAIL, "OUT transfer %" PRIu64 " moved %u of %u bytes", seq, slot->actual,
                                            slot->length);
                        d->moved += slot->actual;
                        d->transfers++;
                        slot->done = false;
                        d->oldest_seq++;
                }
        }
        return EXIT_OK;
}

static bool dir_finished(const Stream *s, const Dir *d) {
        return !d->used || (d->moved == s->o->bytes && d->oldest_seq == d->next_seq);
}

/* --counters: the claim's transfer counters with the queue open (zcusbd adds
 * what a kernel serving it counted) and after CloseQueue (those counts are
 * the claim's own then). */
static int read_counters(Stream *s, struct zcusb_usage *open, struct zcusb_usage *closed) {
        int r;

        r = zcusb_claim_get_usage(s->claim, open);
        if (r < 0)
                return fail_lib(s->ctx, "reading the claim's counters", r, EXIT_FAIL);
        r = zcusb_queue_close(s->queue);
        s->queue = NULL;
        if (r < 0)
                return fail_lib(s->ctx, "closing the queue", r, EXIT_FAIL);
        r = zcusb_claim_get_usage(s->claim, closed);
        if (r < 0)
                return fail_lib(s->ctx, "reading the claim's counters", r, EXIT_FAIL);
        return EXIT_OK;
}

static void print_counters(const char *when, const struct zcusb_usage *u) {
        printf(",\"%s_submitted\":%" PRIu64 ",\"%s_completed\":%" PRIu64 ",\"%s_failed\":%" PRIu64
               ",\"%s_bytes_in\":%" PRIu64 ",\"%s_bytes_out\":%" PRIu64 ",\"%s_in_flight\":%" PRIu32, when,
               u->submitted, when, u->completed, when, u->failed, when, u->bytes_in, when, u->bytes_out, when,
               u->in_flight);
}

static int run_stream(Stream *s) {
        const Options *o = s->o;
        unsigned entries = 1, slots = 0;
        double start, seconds, last = now_seconds();
        struct zcusb_usage open_usage = {}, closed_usage = {};
        const Dir *main_dir;
        int r;

        if (o->mode != MODE_IN) {
                r = dir_setup(s, &s->dirs[0], false, 0);
                if (r != EXIT_OK)
                        return r;
                slots += o->depth;
        }
        if (o->mode != MODE_OUT) {
                r = dir_setup(s, &s->dirs[1], true, (size_t) slots * o->transfer_size);
                if (r != EXIT_OK)
                        return r;
                slots += o->depth;
        }
        while (entries < slots)
                entries <<= 1;

        r = zcusb_buffer_alloc(s->claim, (size_t) slots * o->transfer_size, &s->buffer);
        if (r < 0)
                return fail_lib(s->ctx, "allocating the buffer", r, EXIT_FAIL);
        s->data = zcusb_buffer_data(s->buffer);
        r = zcusb_queue_open(s->claim, entries, &s->queue);
        if (r < 0)
                return fail_lib(s->ctx, "opening a queue", r, EXIT_FAIL);

        start = now_seconds();
        for (;;) {
                for (int k = 0; k < 2; k++)
                        if (s->dirs[k].used) {
                                r = dir_fill(s, &s->dirs[k]);
                                if (r != EXIT_OK)
                                        return r;
                        }
                if (dir_finished(s, &s->dirs[0]) && dir_finished(s, &s->dirs[1]))
                        break;

                r = zcusb_queue_wait(s->queue, 1000);
                if (r == -EINTR)
                        continue;
                if (r < 0)
                        return fail_wait(s->ctx, s->claim, r);
                if (r == 0) {
                        if (o->timeout_ms > 0 && (now_seconds() - last) * 1000.0 > o->timeout_ms + IDLE_SLACK_MS)
                                return fail(EXIT_TRANSFER, "zcusbd completed no transfer for %.1f s although each has "
                                            "a %u ms timeout", now_seconds() - last, o->timeout_ms);
                        continue;
                }
                last = now_seconds();
                r = reap(s);
                if (r != EXIT_OK)
                        return r;
        }
        seconds = now_seconds() - start;
        if (o->counters) {
                r = read_counters(s, &open_usage, &closed_usage);
                if (r != EXIT_OK)
                        return r;
        }

        main_dir = s->dirs[1].used ? &s->dirs[1] : &s->dirs[0];
        {
                double mbps = seconds > 0 ? (double) main_dir->moved / seconds / 1e6 : 0.0;
                const char *mode = o->mode == MODE_LOOP ? "loop" : o->mode == MODE_IN ? "in" : "out";

                if (o->json) {
                        printf("{\"mode\":\"%s\",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"mb_per_s\":%.3f,"
                               "\"transfers_out\":%" PRIu64 ",\"transfers_in\":%" PRIu64 ",\"verified\":%s,"
                               "\"stream_offset\":%" PRIu64,
                               mode, main_dir->moved, seconds, mbps, s->dirs[0].transfers, s->dirs[1].transfers,
                               s->dirs[1].used ? "true" : "false", s->dirs[1].stream_base);
                        if (o->counters) {
                                print_counters("open", &open_usage);
                                print_counters("closed", &closed_usage);
                        }
                        printf("}\n");
                } else if (o->mode == MODE_LOOP)
                        printf("%" PRIu64 " bytes out and back in %.3f s, %.1f MB/s each way, every byte verified\n",
                               main_dir->moved, seconds, mbps);
                else
                        printf("%" PRIu64 " bytes %s in %.3f s, %.1f MB/s%s\n", main_dir->moved,
                               o->mode == MODE_IN ? "read" : "written", seconds, mbps,
                               o->mode == MODE_IN ? ", every byte verified" : "");
                if (!o->json && o->counters)
                        printf("claim counters (queue open / closed): submitted %" PRIu64 "/%" PRIu64 ", completed %"
                               PRIu64 "/%" PRIu64 ", failed %" PRIu64 "/%" PRIu64 ", bytes in %" PRIu64 "/%" PRIu64
                               ", bytes out %" PRIu64 "/%" PRIu64 ", in flight %" PRIu32 "/%" PRIu32 "\n",
                               open_usage.submitted, closed_usage.submitted, open_usage.completed,
                               closed_usage.completed, open_usage.failed, closed_usage.failed, open_usage.bytes_in,
                               closed_usage.bytes_in, open_usage.bytes_out, closed_usage.bytes_out,
                               open_usage.in_flight, closed_usage.in_flight);
        }
        return EXIT_OK;
}

int main(int argc, char **argv) {
        Options o;
        Stream s = { .o = &o };
        int code = parse_options(argc, argv, &o);

        if (code == EXIT_OK)
                code = open_claim(o.device, o.interface, &s.ctx, &s.claim);
        if (code != EXIT_OK)
                return code;
        return close_claim(s.ctx, o.mode == MODE_CLAIM ? run_claim(&o, s.ctx, s.claim) : run_stream(&s));
}
