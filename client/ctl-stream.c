/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The stream engine of zcusbctl read / write (ctl-stream.h): keeps every slot
 * of the buffer in flight, retires completions in submission order, shows
 * progress.
 */
#include <time.h>

#include "ctl-stream.h"
#include "zcusbctl.h"

#define PROGRESS_INTERVAL_MS 500
/* zcusbd rings no doorbell when it takes entries: while the ring is full,
 * look again this often. */
#define RING_FULL_POLL_MS 1

static double now_seconds(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint64_t now_ms(void) {
        return (uint64_t) (now_seconds() * 1000.0);
}

typedef struct Slot {
        uint32_t length; /* bytes asked for */
        uint32_t actual;
        int status;
        bool done;
} Slot;

typedef struct Stream {
        const StreamParams *p;
        struct zcusb_claim *claim;
        struct zcusb_queue *queue;
        struct zcusb_buffer *buffer;
        uint8_t *data;
        Slot *slots;

        uint64_t next_seq, oldest_seq; /* in flight: [oldest_seq, next_seq) */
        struct zcusb_sqe staged;       /* transfer next_seq, its slot filled, when the ring was full */
        bool has_staged;
        uint64_t total;                /* p->total, until the input turns out shorter */
        uint64_t produced;             /* write: bytes taken from the source */
        uint64_t in_flight_bytes;      /* read: bytes asked for and not yet retired */
        uint64_t moved;                /* bytes the device took or gave */
        uint64_t transfers, errors;
        int error;                     /* the first failed transfer's status */
        uint64_t error_seq;

        uint64_t rng;

        double start;
        uint64_t progress_ms;
        bool progress;
} Stream;

static uint8_t *slot_region(const Stream *s, uint64_t seq) {
        return s->data + (size_t) (seq % s->p->queue_depth) * s->p->transfer_size;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Read up to N bytes; fewer only at the end of the input. */
static ssize_t read_full(int fd, uint8_t *p, size_t n) {
        size_t got = 0;

        while (got < n) {
                ssize_t k = read(fd, p + got, n - got);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        return (ssize_t) got;
}

static void fill_pattern(Stream *s, uint8_t *p, uint32_t n) {
        switch (s->p->pattern) {
        case PATTERN_COUNTER:
                for (uint32_t i = 0; i < n; i++)
                        p[i] = (uint8_t) (s->produced + i);
                break;
        case PATTERN_RANDOM:
                for (uint32_t i = 0; i < n; i++) {
                        /* xorshift64: fast, and good enough to defeat compression and dedup */
                        if (i % 8 == 0) {
                                s->rng ^= s->rng << 13;
                                s->rng ^= s->rng >> 7;
                                s->rng ^= s->rng << 17;
                        }
                        p[i] = (uint8_t) (s->rng >> (8 * (i % 8)));
                }
                break;
        default:
                memset(p, 0, n);
                break;
        }
}

/* Fill the slot of transfer next_seq and stage its entry, unless nothing is
 * left to move. Returns EXIT_OK, or an exit code after reporting. */
static int stream_stage(Stream *s) {
        const StreamParams *p = s->p;
        uint8_t *region = slot_region(s, s->next_seq);
        uint64_t left;
        uint32_t length;

        if (p->in) {
                /* Short reads leave bytes owed: ask for them again. */
                left = s->total - s->moved - s->in_flight_bytes;
                if (left == 0)
                        return EXIT_OK;
                length = (uint32_t) (left < p->transfer_size ? left : p->transfer_size);
        } else {
                left = s->total - s->produced;
                if (left == 0)
                        return EXIT_OK;
                length = (uint32_t) (left < p->transfer_size ? left : p->transfer_size);
                if (p->fd >= 0) {
                        ssize_t got = read_full(p->fd, region, length);
                        if (got < 0)
                                return fail(EXIT_FAIL, "reading %s: %s", p->fd_name, strerror((int) -got));
                        if (got == 0) {
                                s->total = s->produced; /* end of input */
                                return EXIT_OK;
                        }
                        length = (uint32_t) got;
                } else if (p->pattern != PATTERN_ZEROS) /* a fresh memfd is zeros already */
                        fill_pattern(s, region, length);
        }

        zcusb_prep_transfer(&s->staged, (enum zcusb_opcode) p->opcode, p->endpoint, zcusb_buffer_id(s->buffer),
                            (uint64_t) (region - s->data), length, p->timeout_ms, s->next_seq);
        s->has_staged = true;
        return EXIT_OK;
}

/* Keep every slot busy while there is data to move. */
static int stream_fill(Stream *s, struct zcusb *ctx) {
        const StreamParams *p = s->p;

        while (s->error == 0 && s->next_seq - s->oldest_seq < p->queue_depth) {
                int r;

                if (!s->has_staged) {
                        r = stream_stage(s);
                        if (r != EXIT_OK)
                                return r;
                        if (!s->has_staged)
                                break; /* nothing left to move */
                }

                /* A full ring is backpressure: keep the filled slot and submit
                 * it once zcusbd took an entry (stream_loop() looks again).
                 * zcusbd keeps zcusb-ring.h's ordering, so this does not
                 * happen with it: the ring has at least queue-depth slots, at
                 * most queue-depth transfers are ours, and a reaped one's slot
                 * is free. A consumer that frees slots late is still served. */
                r = zcusb_queue_submit(s->queue, &s->staged);
                if (r == -EAGAIN)
                        break;
                if (r < 0)
                        return fail_lib(ctx, r, EXIT_TRANSFER);
                s->has_staged = false;

                s->slots[s->next_seq % p->queue_depth] = (Slot) { .length = s->staged.length };
                s->next_seq++;
                if (p->in)
                        s->in_flight_bytes += s->staged.length;
                else
                        s->produced += s->staged.length;
        }
        return EXIT_OK;
}

/* Take completions, then retire finished slots in submission order.
 * Returns EXIT_OK, an exit code after reporting, or -errno from the ring. */
static int stream_reap(Stream *s) {
        struct zcusb_cqe cqes[64];
        int n;

        n = zcusb_queue_reap(s->queue, cqes, ELEMENTSOF(cqes));
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++) {
                uint64_t seq = cqes[i].user_data;
                Slot *slot;

                if (seq < s->oldest_seq || seq >= s->next_seq)
                        continue; /* not one of ours in flight: ignore rather than trust */
                slot = &s->slots[seq % s->p->queue_depth];
                slot->done = true;
                slot->status = cqes[i].status;
                slot->actual = cqes[i].actual_length < slot->length ? cqes[i].actual_length : slot->length;
        }

        while (s->oldest_seq < s->next_seq) {
                Slot *slot = &s->slots[s->oldest_seq % s->p->queue_depth];

                if (!slot->done)
                        break;
                s->transfers++;
                if (s->p->in)
                        s->in_flight_bytes -= slot->length;
                /* After a failure the stream has a gap: keep nothing past it. */
                if (s->error == 0) {
                        s->moved += slot->actual;
                        if (s->p->in && s->p->fd >= 0 && slot->actual > 0) {
                                int r = write_all(s->p->fd, slot_region(s, s->oldest_seq), slot->actual);
                                if (r < 0)
                                        return fail(EXIT_FAIL, "writing %s: %s; check the free space", s->p->fd_name,
                                                    strerror(-r));
                        }
                }
                if (slot->status != 0) {
                        s->errors++;
                        if (s->error == 0) {
                                s->error = slot->status > 0 ? -EPROTO : slot->status;
                                s->error_seq = s->oldest_seq;
                        }
                }
                slot->done = false;
                s->oldest_seq++;
        }
        return EXIT_OK;
}

static void stream_progress(Stream *s, bool final) {
        uint64_t now = now_ms();
        double seconds = now_seconds() - s->start;

        if (!s->progress)
                return;
        if (final) {
                fputs("\r\033[K", stderr);
                return;
        }
        if (now - s->progress_ms < PROGRESS_INTERVAL_MS)
                return;
        s->progress_ms = now;
        if (s->total != UINT64_MAX)
                fprintf(stderr, "\r\033[K%.1f / %.1f MiB  %.1f MB/s", (double) s->moved / 1048576.0,
                        (double) s->total / 1048576.0, seconds > 0 ? (double) s->moved / seconds / 1e6 : 0.0);
        else
                fprintf(stderr, "\r\033[K%.1f MiB  %.1f MB/s", (double) s->moved / 1048576.0,
                        seconds > 0 ? (double) s->moved / seconds / 1e6 : 0.0);
        fflush(stderr);
}

static int stream_loop(Stream *s, struct zcusb *ctx) {
        const StreamParams *p = s->p;
        uint64_t last_completion = now_ms();
        int r;

        for (;;) {
                r = stream_fill(s, ctx);
                if (r != EXIT_OK)
                        return r;
                if (s->error != 0 || (s->oldest_seq == s->next_seq && !s->has_staged))
                        return EXIT_OK; /* failed (Release cancels the rest), or all done */

                r = zcusb_queue_wait(s->queue, s->has_staged ? RING_FULL_POLL_MS : PROGRESS_INTERVAL_MS);
                if (r == -EINTR)
                        continue;
                if (r < 0) {
                        /* The queue died under us: the claim ended. */
                        s->error = r;
                        s->error_seq = s->oldest_seq;
                        return EXIT_OK;
                }
                if (r == 0) {
                        /* The eventfd cannot say zcusbd died; the bus can. */
                        if (zcusb_claim_is_ended(s->claim, NULL) > 0) {
                                s->error = zcusb_queue_wait(s->queue, 0);
                                if (s->error >= 0)
                                        s->error = -ECONNRESET; /* zcusbd left the bus */
                                s->error_seq = s->oldest_seq;
                                return EXIT_OK;
                        }
                        if (p->timeout_ms > 0 && now_ms() - last_completion > (uint64_t) p->timeout_ms + IDLE_SLACK_MS)
                                return fail(EXIT_TRANSFER, "zcusbd completed no transfer for %u ms although "
                                            "each has a %u ms timeout; check 'systemctl status zcusbd'",
                                            p->timeout_ms + IDLE_SLACK_MS, p->timeout_ms);
                        stream_progress(s, false);
                        continue;
                }
                last_completion = now_ms();
                r = stream_reap(s);
                if (r < 0) {
                        s->error = r;
                        s->error_seq = s->oldest_seq;
                        return EXIT_OK;
                }
                if (r != EXIT_OK)
                        return r;
                stream_progress(s, false);
        }
}

int stream_run(struct zcusb *ctx, struct zcusb_claim *claim, const StreamParams *p, StreamResult *ret) {
        _cleanup_free_ Slot *slots = NULL;
        unsigned entries = 1;
        Stream s;
        double seconds;
        int r;

        slots = calloc(p->queue_depth, sizeof(Slot));
        if (!slots)
                return fail(EXIT_FAIL, "out of memory");

        while (entries < p->queue_depth)
                entries <<= 1;

        s = (Stream) {
                .p = p,
                .claim = claim,
                .slots = slots,
                .total = p->total,
                .rng = UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t) time(NULL),
                .progress = isatty(STDERR_FILENO),
        };

        r = zcusb_buffer_alloc(claim, (size_t) p->transfer_size * p->queue_depth, &s.buffer);
        if (r < 0)
                return fail_lib(ctx, r, EXIT_FAIL);
        s.data = zcusb_buffer_data(s.buffer);
        r = zcusb_queue_open(claim, entries, &s.queue);
        if (r < 0)
                return fail_lib(ctx, r, EXIT_FAIL);

        s.start = now_seconds();
        s.progress_ms = now_ms();
        r = stream_loop(&s, ctx);
        seconds = now_seconds() - s.start;
        stream_progress(&s, true);
        if (r != EXIT_OK)
                return r;

        *ret = (StreamResult) {
                .moved = s.moved,
                .transfers = s.transfers,
                .errors = s.errors,
                .seconds = seconds,
                .error = s.error,
                .error_seq = s.error_seq,
        };
        return EXIT_OK;
}
