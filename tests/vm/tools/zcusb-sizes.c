/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zcusb-sizes: a libzcusb client for the real-kernel tier (tests/vm/cases/75-kmod-backend.sh,
 * 76-kmod-fallback.sh) against the Loopback gadget (0525:a4a1, bulk OUT echoed to bulk IN).
 *
 *   zcusb-sizes [OPTIONS] verify SIZE...   for each SIZE: one IN and one OUT transfer of SIZE
 *                                          bytes in flight together, data checked byte for byte,
 *                                          bytes after SIZE untouched; then nothing else echoed
 *   zcusb-sizes [OPTIONS] hold             claim, register both buffers (one round trip), leave
 *                                          one IN transfer pending, print "ready PATH BACKEND",
 *                                          wait for SIGTERM/SIGINT, release, exit 0
 *   zcusb-sizes [OPTIONS] cycles MIN SECS  claim / alloc / queue / 512-byte round trip / release
 *                                          until at least MIN cycles and SECS seconds are done
 *   zcusb-sizes [OPTIONS] stream SECS      1 MiB round trips for SECS seconds (stop at an error).
 *                                          After a status a vanishing device may cause first
 *                                          (-EPROTO, -EILSEQ, -ETIME, -ESHUTDOWN) it keeps trying
 *                                          for 10 s: exit 3 once -ENODEV comes ("first failure"
 *                                          names the status seen before)
 *
 * Options: --device DEV (0525:a4a1), --interface N (0), --in EP (0x81), --out EP (0x02),
 *   --offset N (0: where in both buffers verify's transfers start; 512 with 32256 bytes is the
 *   seed case's layout, a 3584-byte first SG element and seven 4096-byte pages),
 *   --gadget-buflen N (65536: the Loopback's bulk_buflen, which decides when a ZLP is needed),
 *   --expect-backend NAME (fail unless the claim's Backend property is NAME).
 * SIZE takes K and M suffixes (binary). Every claim prints "backend NAME" (the Claim's Backend
 * property, read over the claim's own connection: only it may read it).
 * Exit: 0 ok, 1 failure, 2 usage, 3 the device went away (-ENODEV).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zcusb.h>

#define EXIT_GONE 3
#define TIMEOUT_MS 20000
#define MAX_SIZE (16u << 20)

typedef struct Options {
        const char *device;
        unsigned interface;
        uint8_t ep_in, ep_out;
        unsigned gadget_buflen;
        const char *expect_backend;
        uint32_t offset; /* of verify's transfers in both buffers */
} Options;

typedef struct Session {
        const Options *opt;
        struct zcusb *ctx;
        struct zcusb_claim *claim;
        struct zcusb_buffer *out, *in;
        struct zcusb_queue *queue;
        uint16_t mps_out;
        size_t capacity; /* bytes a round trip may move */
        int last_status; /* of the last transfer that failed */
        char backend[16];
} Session;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Report R for WHAT; returns the exit status it means. */
static int report(const Session *s, const char *what, int r) {
        const char *message = s && s->ctx ? zcusb_last_error_message(s->ctx) : "";

        fprintf(stderr, "zcusb-sizes: %s: %s (%s)\n", what, *message ? message : zcusb_strerror(r),
                strerror(r < 0 ? -r : r));
        return r == -ENODEV ? EXIT_GONE : EXIT_FAILURE;
}

static int parse_size(const char *s, uint32_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno || end == s)
                return -EINVAL;
        if (*end == 'K' || *end == 'k')
                v <<= 10, end++;
        else if (*end == 'M' || *end == 'm')
                v <<= 20, end++;
        if (*end || v == 0 || v > MAX_SIZE)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

static void session_close(Session *s) {
        zcusb_close(s->ctx); /* releases the claim with its buffers and queue */
        memset(s, 0, sizeof(*s));
}

/* Connect, claim, check both endpoints, allocate two buffers of CAPACITY bytes
 * (the IN one a page more, for the guard bytes) and a queue. */
static int session_open(Session *s, const Options *opt, size_t capacity, int verbose) {
        struct zcusb_endpoint ep;
        struct zcusb_usage usage;
        int r;

        memset(s, 0, sizeof(*s));
        s->opt = opt;
        s->capacity = capacity;
        r = zcusb_open(&s->ctx);
        if (r < 0)
                return report(s, "connecting to zcusbd", r);
        r = zcusb_claim_interface(s->ctx, opt->device, (uint8_t) opt->interface, &s->claim);
        if (r < 0)
                return report(s, "claim", r);
        r = zcusb_claim_get_usage(s->claim, &usage);
        if (r < 0)
                return report(s, "reading the claim's properties", r);
        snprintf(s->backend, sizeof(s->backend), "%s", usage.backend);
        if (verbose)
                printf("backend %s\n", s->backend);
        if (opt->expect_backend && strcmp(opt->expect_backend, s->backend) != 0) {
                fprintf(stderr, "zcusb-sizes: the claim's Backend is \"%s\", expected \"%s\"\n", s->backend,
                        opt->expect_backend);
                return EXIT_FAILURE;
        }
        r = zcusb_claim_get_endpoint(s->claim, opt->ep_out, &ep);
        if (r < 0 || (ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) != ZCUSB_ENDPOINT_TYPE_BULK)
                return report(s, "no bulk OUT endpoint of that address", r < 0 ? r : -ENOENT);
        s->mps_out = ep.max_packet_size & 0x7ff;
        r = zcusb_claim_get_endpoint(s->claim, opt->ep_in, &ep);
        if (r < 0 || (ep.attributes & ZCUSB_ENDPOINT_TYPE_MASK) != ZCUSB_ENDPOINT_TYPE_BULK)
                return report(s, "no bulk IN endpoint of that address", r < 0 ? r : -ENOENT);
        if (s->mps_out == 0) {
                fprintf(stderr, "zcusb-sizes: OUT endpoint with a max packet size of 0\n");
                return EXIT_FAILURE;
        }
        r = zcusb_buffer_alloc(s->claim, capacity + opt->offset, &s->out);
        if (r < 0)
                return report(s, "allocating the OUT buffer", r);
        r = zcusb_buffer_alloc(s->claim, capacity + opt->offset + 4096, &s->in);
        if (r < 0)
                return report(s, "allocating the IN buffer", r);
        r = zcusb_queue_open(s->claim, 4, &s->queue);
        if (r < 0)
                return report(s, "opening a queue", r);
        return 0;
}

/* Deterministic bytes that differ for every size and round. */
static void fill_pattern(uint8_t *p, uint32_t n, uint64_t seed) {
        uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;

        for (uint32_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p[i] = (uint8_t) (x >> 24);
        }
}

static int submit(Session *s, uint8_t ep, struct zcusb_buffer *b, uint32_t length, uint16_t flags,
                  unsigned timeout_ms, uint64_t user_data) {
        struct zcusb_sqe sqe;

        zcusb_prep_transfer(&sqe, ZCUSB_OP_BULK, ep, zcusb_buffer_id(b), s->opt->offset, length, timeout_ms,
                            user_data);
        sqe.flags = flags;
        return zcusb_queue_submit(s->queue, &sqe);
}

/* Wait for the completions of user_data 1..N (any order) into CQES[user_data - 1]. */
static int wait_all(Session *s, struct zcusb_cqe *cqes, unsigned n) {
        unsigned got = 0;

        while (got < n) {
                struct zcusb_cqe batch[8];
                int r = zcusb_queue_wait(s->queue, TIMEOUT_MS + 5000);

                if (r == -EINTR)
                        continue;
                if (r == 0)
                        return report(s, "no completion from zcusbd", -ETIMEDOUT);
                if (r < 0)
                        return report(s, "waiting for completions", r);
                r = zcusb_queue_reap(s->queue, batch, 8);
                if (r < 0)
                        return report(s, "reaping", r);
                for (int i = 0; i < r; i++) {
                        if (batch[i].user_data < 1 || batch[i].user_data > n) {
                                fprintf(stderr, "zcusb-sizes: completion for user_data %" PRIu64 " never submitted\n",
                                        batch[i].user_data);
                                return EXIT_FAILURE;
                        }
                        cqes[batch[i].user_data - 1] = batch[i];
                        got++;
                }
        }
        return 0;
}

/* Send SIZE bytes, read them back, compare. */
static int round_trip(Session *s, uint32_t size, uint64_t seed) {
        uint8_t *out = (uint8_t *) zcusb_buffer_data(s->out) + s->opt->offset;
        uint8_t *in = (uint8_t *) zcusb_buffer_data(s->in) + s->opt->offset;
        struct zcusb_cqe cqes[2] = {};
        uint32_t in_length = size;
        uint16_t flags = 0;
        int r;

        if (size > s->capacity) {
                fprintf(stderr, "zcusb-sizes: %" PRIu32 " bytes do not fit the buffers\n", size);
                return EXIT_FAILURE;
        }
        fill_pattern(out, size, seed);
        memset(in, 0xa5, (size_t) size + 4096); /* the guard: IN may not write past SIZE */
        /* The Loopback ends a gadget request at bulk_buflen or at a short packet: a
         * transfer whose tail is a non-empty multiple of the packet size needs a ZLP,
         * and its echo ends with one too. An IN transfer of exactly SIZE bytes would
         * leave that ZLP to the next one: ask for a packet more, the ZLP ends it. */
        if (size % s->mps_out == 0 && size % s->opt->gadget_buflen != 0) {
                flags = ZCUSB_SQE_ZERO_PACKET;
                in_length = size + s->mps_out;
        }
        r = submit(s, s->opt->ep_in, s->in, in_length, 0, TIMEOUT_MS, 1);
        if (r < 0)
                return report(s, "submitting IN", r);
        r = submit(s, s->opt->ep_out, s->out, size, flags, TIMEOUT_MS, 2);
        if (r < 0)
                return report(s, "submitting OUT", r);
        r = wait_all(s, cqes, 2);
        if (r != 0)
                return r;
        for (unsigned i = 0; i < 2; i++)
                if (cqes[i].status < 0) {
                        s->last_status = cqes[i].status;
                        fprintf(stderr, "zcusb-sizes: %s of %" PRIu32 " bytes failed: %s\n", i ? "OUT" : "IN", size,
                                zcusb_strerror(cqes[i].status));
                        return cqes[i].status == -ENODEV ? EXIT_GONE : EXIT_FAILURE;
                }
        if (cqes[1].actual_length != size || cqes[0].actual_length != size) {
                fprintf(stderr, "zcusb-sizes: %" PRIu32 " bytes: OUT moved %" PRIu32 ", IN %" PRIu32 "\n", size,
                        cqes[1].actual_length, cqes[0].actual_length);
                return EXIT_FAILURE;
        }
        if (memcmp(in, out, size) != 0) {
                uint32_t i = 0;

                while (in[i] == out[i])
                        i++;
                fprintf(stderr, "zcusb-sizes: %" PRIu32 " bytes: first difference at byte %" PRIu32
                                ": sent 0x%02x, got 0x%02x\n", size, i, out[i], in[i]);
                return EXIT_FAILURE;
        }
        for (uint32_t i = size; i < size + 4096; i++)
                if (in[i] != 0xa5) {
                        fprintf(stderr, "zcusb-sizes: %" PRIu32 " bytes: byte %" PRIu32 " after the end changed\n",
                                size, i);
                        return EXIT_FAILURE;
                }
        return 0;
}

/* Nothing left to read: an IN transfer times out. */
static int check_drained(Session *s) {
        struct zcusb_cqe cqe = {};
        int r;

        r = submit(s, s->opt->ep_in, s->in, s->capacity < 65536 ? (uint32_t) s->capacity : 65536, 0, 300, 1);
        if (r < 0)
                return report(s, "submitting IN", r);
        r = wait_all(s, &cqe, 1);
        if (r != 0)
                return r;
        if (cqe.status != -ETIMEDOUT) {
                fprintf(stderr, "zcusb-sizes: after the last round trip an IN transfer ended with %s and %" PRIu32
                                " bytes; expected a timeout (nothing left)\n", zcusb_strerror(cqe.status),
                        cqe.actual_length);
                return EXIT_FAILURE;
        }
        return 0;
}

static int do_verify(const Options *opt, int n, char **sizes) {
        uint32_t v[64], max = 0;
        Session s;
        int r;

        if (n < 1 || n > 64) {
                fprintf(stderr, "zcusb-sizes: verify needs 1 to 64 sizes\n");
                return 2;
        }
        for (int i = 0; i < n; i++) {
                if (parse_size(sizes[i], &v[i]) < 0) {
                        fprintf(stderr, "zcusb-sizes: bad size '%s' (1..16M)\n", sizes[i]);
                        return 2;
                }
                max = v[i] > max ? v[i] : max;
        }
        r = session_open(&s, opt, ((size_t) max + 4095) & ~(size_t) 4095, 1);
        for (int i = 0; r == 0 && i < n; i++) {
                double t = now();

                r = round_trip(&s, v[i], (uint64_t) v[i] << 8 | (unsigned) i);
                if (r == 0)
                        printf("ok %" PRIu32 " bytes out and back in %.3f s\n", v[i], now() - t);
        }
        if (r == 0)
                r = check_drained(&s);
        if (r == 0)
                printf("verified %d sizes over %s\n", n, s.backend);
        session_close(&s);
        return r;
}

static int do_hold(const Options *opt) {
        sigset_t set;
        Session s;
        int r, sig;

        /* Blocked before anything else, so a signal is never lost. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigprocmask(SIG_BLOCK, &set, NULL);

        r = session_open(&s, opt, 1u << 20, 1);
        if (r == 0)
                r = round_trip(&s, 4096, 1);
        if (r == 0) {
                r = submit(&s, opt->ep_in, s.in, 65536, 0, 0, 99);
                if (r < 0)
                        r = report(&s, "submitting the pending IN transfer", r);
        }
        if (r == 0) {
                printf("ready %s %s\n", zcusb_claim_get_object_path(s.claim), s.backend);
                fflush(stdout);
                if (sigwait(&set, &sig) == 0)
                        printf("signal %d: releasing\n", sig);
        }
        session_close(&s);
        return r;
}

static int do_cycles(const Options *opt, const char *min_s, const char *secs_s) {
        long min = strtol(min_s, NULL, 10);
        double secs = strtod(secs_s, NULL), start = now(), elapsed = 0;
        long n = 0;
        int r = 0;

        if (min < 1 || secs < 0) {
                fprintf(stderr, "zcusb-sizes: cycles MIN SECS: MIN >= 1, SECS >= 0\n");
                return 2;
        }
        while (n < min || elapsed < secs) {
                Session s;

                r = session_open(&s, opt, 65536, 0);
                if (r == 0)
                        r = round_trip(&s, 512, (uint64_t) n);
                session_close(&s);
                if (r != 0) {
                        fprintf(stderr, "zcusb-sizes: cycle %ld failed\n", n + 1);
                        break;
                }
                n++;
                elapsed = now() - start;
        }
        printf("cycles %ld in %.1f s, %.1f ms each\n", n, elapsed, n ? elapsed * 1000 / (double) n : 0.0);
        return r;
}

static bool gone_status(int st) {
        return st == -EPROTO || st == -EILSEQ || st == -ETIME || st == -ESHUTDOWN;
}

static int do_stream(const Options *opt, const char *secs_s) {
        double secs = strtod(secs_s, NULL), start = now(), failed_at;
        unsigned long long bytes = 0;
        uint64_t i = 0;
        Session s;
        int r;

        r = session_open(&s, opt, 1u << 20, 1);
        printf("streaming\n");
        fflush(stdout);
        for (; r == 0 && now() - start < secs; i++) {
                r = round_trip(&s, 1u << 20, i);
                if (r == 0)
                        bytes += 1u << 20;
        }
        printf("%llu bytes each way in %.1f s\n", bytes, now() - start);
        if (r == EXIT_FAILURE && gone_status(s.last_status)) {
                printf("first failure: %d (%s); trying on\n", s.last_status, strerror(-s.last_status));
                failed_at = now();
                while (r == EXIT_FAILURE && gone_status(s.last_status) && now() - failed_at < 10) {
                        struct timespec pause = { .tv_nsec = 100 * 1000 * 1000 };

                        nanosleep(&pause, NULL);
                        r = round_trip(&s, 4096, i++);
                }
                printf("then: %s after %.2f s\n", r == EXIT_GONE ? "no device (-ENODEV)" : r == 0 ? "success" : "failure",
                       now() - failed_at);
        }
        session_close(&s);
        return r;
}

static int parse_u8(const char *s, uint8_t *ret) {
        char *end;
        long v = strtol(s, &end, 0);

        if (*end || end == s || v < 0 || v > 255)
                return -EINVAL;
        *ret = (uint8_t) v;
        return 0;
}

int main(int argc, char *argv[]) {
        Options opt = {
                .device = "0525:a4a1",
                .ep_in = 0x81,
                .ep_out = 0x02,
                .gadget_buflen = 65536,
        };
        uint8_t iface = 0;
        int i = 1;

        setvbuf(stdout, NULL, _IOLBF, 0);
        for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
                const char *o = argv[i], *v = argv[i + 1];
                int bad = 0;

                if (strcmp(o, "--device") == 0)
                        opt.device = v;
                else if (strcmp(o, "--interface") == 0)
                        bad = parse_u8(v, &iface);
                else if (strcmp(o, "--in") == 0)
                        bad = parse_u8(v, &opt.ep_in) || !(opt.ep_in & 0x80);
                else if (strcmp(o, "--out") == 0)
                        bad = parse_u8(v, &opt.ep_out) || (opt.ep_out & 0x80);
                else if (strcmp(o, "--gadget-buflen") == 0)
                        bad = (opt.gadget_buflen = (unsigned) strtoul(v, NULL, 0)) == 0;
                else if (strcmp(o, "--expect-backend") == 0)
                        opt.expect_backend = v;
                else if (strcmp(o, "--offset") == 0)
                        bad = parse_size(v, &opt.offset) < 0 || opt.offset >= MAX_SIZE;
                else
                        bad = 1;
                if (bad) {
                        fprintf(stderr, "zcusb-sizes: bad option %s %s\n", o, v);
                        return 2;
                }
        }
        opt.interface = iface;
        if (i >= argc)
                goto usage;
        if (strcmp(argv[i], "verify") == 0)
                return do_verify(&opt, argc - i - 1, argv + i + 1);
        if (strcmp(argv[i], "hold") == 0 && argc == i + 1)
                return do_hold(&opt);
        if (strcmp(argv[i], "cycles") == 0 && argc == i + 3)
                return do_cycles(&opt, argv[i + 1], argv[i + 2]);
        if (strcmp(argv[i], "stream") == 0 && argc == i + 2)
                return do_stream(&opt, argv[i + 1]);
usage:
        fprintf(stderr, "Usage: %s [--device DEV] [--interface N] [--in EP] [--out EP] [--gadget-buflen N]\n"
                        "       [--expect-backend NAME] [--offset N] verify SIZE... | hold | cycles MIN SECS | stream SECS\n",
                argv[0]);
        return 2;
}
