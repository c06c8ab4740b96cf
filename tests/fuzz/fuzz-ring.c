/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's consume path against a hostile client: the input plays the
 * client, which owns sq_tail, cq_head, the submission entries and the bytes
 * of its buffers, and may scribble on any of them between (and, for buffer
 * contents, during) the daemon's steps. The daemon side runs as zcusbd's
 * queue_process() does: fetch -> check entry -> check payload -> complete.
 *
 * Besides ASan/UBSan, it checks that the daemon never writes shared memory it
 * does not own, never loops, and that every accepted plan stays inside its
 * buffer. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "util.h"
#include "transfer-check.h"
#include "usb-descriptors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ASSERT(x)                                                                            \
        do {                                                                                 \
                if (!(x)) {                                                                  \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #x); \
                        abort();                                                             \
                }                                                                            \
        } while (0)

#define PAGE 4096u
#define MAX_OPS 512

static UsbAltSetting alt_settings[] = {
        {
                .interface_number = 0, .alt_setting = 0, .n_endpoints = 4,
                .endpoints = {
                        { .address = 0x81, .attributes = 2, .max_packet_size = 512 },
                        { .address = 0x02, .attributes = 2, .max_packet_size = 512 },
                        { .address = 0x85, .attributes = 3, .max_packet_size = 64 },
                        { .address = 0x87, .attributes = 3, .max_packet_size = 0 },
                },
        },
        {
                .interface_number = 0, .alt_setting = 1, .n_endpoints = 4,
                .endpoints = {
                        { .address = 0x83, .attributes = 5, .max_packet_size = 1024 },
                        { .address = 0x04, .attributes = 5, .max_packet_size = 0x1400 },
                        { .address = 0x88, .attributes = 1, .max_packet_size = 0 },
                        { .address = 0x09, .attributes = 1, .max_packet_size = 0x1fff },
                },
        },
        {
                .interface_number = 1, .alt_setting = 0, .n_endpoints = 1,
                .endpoints = { { .address = 0x86, .attributes = 2, .max_packet_size = 512 } },
        },
};

static const UsbDescriptors descriptors = {
        .bcd_usb = 0x0200,
        .max_packet_size0 = 64,
        .n_configurations = 1,
        .configuration_value = 1,
        .n_alt_settings = ELEMENTSOF(alt_settings),
        .alt_settings = alt_settings,
};

static const uint8_t endpoint_choices[] = { 0x00, 0x81, 0x02, 0x85, 0x87, 0x83, 0x04, 0x88, 0x09, 0x86, 0x80, 0x01 };

typedef struct Input {
        const uint8_t *data;
        size_t size, pos;
} Input;

/* Past the end of the input everything reads as zero. */
static uint8_t u8(Input *in) {
        return in->pos < in->size ? in->data[in->pos++] : 0;
}

static uint16_t u16(Input *in) {
        uint16_t lo = u8(in);
        return (uint16_t) (lo | u8(in) << 8);
}

static uint32_t u32(Input *in) {
        uint32_t lo = u16(in);
        return lo | (uint32_t) u16(in) << 16;
}

static void bytes(Input *in, void *dst, size_t n) {
        uint8_t *d = dst;
        for (size_t i = 0; i < n; i++)
                d[i] = u8(in);
}

typedef struct Buffer {
        uint8_t *map;
        uint64_t size;
} Buffer;

typedef struct State {
        Ring ring;
        uint8_t *mem;
        size_t mem_size;
        Buffer buffers[3]; /* ids 1 and 2; 0 is never valid */
        TransferContext ctx;
        uint64_t next_user_data;
        /* queue.c's bookkeeping: transfers started and not yet completed, and
         * completions that did not fit because the client moved cq_head wrongly. */
        uint32_t in_flight;
        uint64_t in_flight_user_data[2 * 8];
        uint32_t n_backlog;
        struct zcusb_cqe backlog[2 * 8];
} State;

static int buffer_size(void *userdata, uint32_t id, uint64_t *ret) {
        State *s = userdata;

        if (id == 0 || id >= 3 || !s->buffers[id].map)
                return -ENOENT;
        *ret = s->buffers[id].size;
        return 0;
}

static struct zcusb_ring_header *hdr(State *s) {
        return s->ring.header;
}

/* The client's view: the entry at its tail. */
static struct zcusb_sqe *client_slot(State *s, uint32_t index) {
        return &s->ring.sq[index & (s->ring.sq_entries - 1)];
}

/* The racing client: flips bytes of the region while the daemon works. */
static void scribble(Buffer *b, uint64_t offset, uint32_t length, uint8_t seed) {
        uint64_t n = length < 64 ? length : 64;
        for (uint64_t i = 0; i < n; i++)
                b->map[offset + i] ^= (uint8_t) (seed + i * 37);
}

/* What an accepted plan promises the backend. */
static void check_plan(State *s, const struct zcusb_sqe *sqe, const TransferPlan *p) {
        const Buffer *b = &s->buffers[sqe->buffer_id];

        ASSERT(sqe->buffer_id >= 1 && sqe->buffer_id < 3 && b->map);
        ASSERT(p->offset == sqe->offset && p->length == sqe->length);
        ASSERT(p->offset <= b->size && p->length <= b->size - p->offset);
        ASSERT(p->length <= UINT32_C(1) << 30);
        ASSERT(p->data_offset <= p->length);
        ASSERT(p->data_length <= p->length - p->data_offset);
        switch (p->opcode) {
        case ZCUSB_OP_CONTROL:
                ASSERT(sqe->endpoint == 0);
                ASSERT(p->data_offset == ZCUSB_CONTROL_SETUP_SIZE);
                ASSERT(p->data_length == (uint32_t) (p->setup[6] | p->setup[7] << 8));
                ASSERT(p->in == !!(p->setup[0] & 0x80));
                break;
        case ZCUSB_OP_ISO: {
                const UsbEndpoint *ep = usb_descriptors_find_endpoint(s->ctx.descriptors, s->ctx.interface_number,
                                                                      s->ctx.alt_setting, p->endpoint);
                uint64_t total = 0;

                ASSERT(ep && (ep->attributes & 3) == 1);
                ASSERT(p->iso_packets >= 1 && p->iso_packets <= ZCUSB_ISO_MAX_PACKETS);
                ASSERT(p->data_offset == p->iso_packets * sizeof(struct zcusb_iso_packet));
                ASSERT(p->offset % 4 == 0);
                for (uint32_t i = 0; i < p->iso_packets; i++) {
                        ASSERT(p->iso_lengths[i] <= usb_iso_packet_max(ep->max_packet_size));
                        total += p->iso_lengths[i];
                }
                ASSERT(total == p->data_length);
                break;
        }
        case ZCUSB_OP_BULK:
        case ZCUSB_OP_INTERRUPT: {
                const UsbEndpoint *ep = usb_descriptors_find_endpoint(s->ctx.descriptors, s->ctx.interface_number,
                                                                      s->ctx.alt_setting, p->endpoint);
                ASSERT(ep && (ep->attributes & 3) == (p->opcode == ZCUSB_OP_BULK ? 2 : 3));
                ASSERT(ep->max_packet_size > 0);
                ASSERT(p->in == !!(p->endpoint & 0x80));
                ASSERT(!p->in || p->length > 0);
                ASSERT(sqe->iso_packets == 0);
                break;
        }
        default:
                ASSERT(0);
        }
}

/* One entry, as queue_handle_entry() does it; returns the completion status,
 * *started when it would go to the backend. */
static int handle_entry(State *s, const struct zcusb_sqe *sqe, uint8_t mode, bool *started) {
        TransferPlan plan, saved;
        const char *why = NULL;
        Buffer *b;
        int r;

        r = transfer_check_entry(sqe, &s->ctx, &plan, &why);
        if (r < 0) {
                ASSERT(why);
                return r;
        }
        if (sqe->opcode == ZCUSB_OP_NOP || sqe->opcode == ZCUSB_OP_CANCEL)
                return sqe->opcode == ZCUSB_OP_NOP ? 0 : -ENOENT;

        ASSERT(sqe->buffer_id >= 1 && sqe->buffer_id < 3);
        b = &s->buffers[sqe->buffer_id];
        ASSERT(b->map);
        ASSERT(plan.offset <= b->size && plan.length <= b->size - plan.offset);

        /* The client rewrites its region between the two checks. */
        if (mode & 1)
                scribble(b, plan.offset, plan.length, mode);
        r = transfer_check_payload(&plan, &s->ctx, b->map + plan.offset, &why);
        if (r < 0) {
                ASSERT(why);
                return r;
        }
        check_plan(s, sqe, &plan);

        /* ... and after them: the plan is private and does not move. */
        saved = plan;
        if (mode & 2)
                scribble(b, plan.offset, plan.length, (uint8_t) (mode + 1));
        ASSERT(memcmp(&saved, &plan, sizeof(plan)) == 0);
        *started = true;
        return 0;
}

/* What the daemon may write in shared memory: sq_flags, sq_head and cq_tail
 * (published), and completion slots from its old cq_tail to its new one. */
static void check_writes(State *s, const uint8_t *before, uint32_t old_cq_tail) {
        /* The daemon's own idea of the layout: the header's is the client's to scribble on. */
        size_t sq_begin = (size_t) ((uint8_t *) s->ring.sq - s->mem);
        size_t cq_begin = (size_t) ((uint8_t *) s->ring.cq - s->mem);
        uint32_t posted = s->ring.cq_tail - old_cq_tail;

        /* The layout fields and everything else in the header but the three indices. */
        ASSERT(memcmp(s->mem, before, offsetof(struct zcusb_ring_header, sq_head)) == 0);
        ASSERT(memcmp(s->mem + offsetof(struct zcusb_ring_header, sq_tail),
                      before + offsetof(struct zcusb_ring_header, sq_tail), sizeof(struct zcusb_ring_index)) == 0);
        ASSERT(memcmp(s->mem + offsetof(struct zcusb_ring_header, cq_head),
                      before + offsetof(struct zcusb_ring_header, cq_head), sizeof(struct zcusb_ring_index)) == 0);
        ASSERT(memcmp(s->mem + offsetof(struct zcusb_ring_header, cq_flags),
                      before + offsetof(struct zcusb_ring_header, cq_flags),
                      PAGE - offsetof(struct zcusb_ring_header, cq_flags)) == 0);
        /* Index lines: only the value, never the padding. */
        ASSERT(memcmp(s->mem + offsetof(struct zcusb_ring_header, sq_head) + 4,
                      before + offsetof(struct zcusb_ring_header, sq_head) + 4, 60) == 0);
        ASSERT(memcmp(s->mem + offsetof(struct zcusb_ring_header, sq_flags) + 4,
                      before + offsetof(struct zcusb_ring_header, sq_flags) + 4, 60) == 0);
        ASSERT(memcmp(s->mem + offsetof(struct zcusb_ring_header, cq_tail) + 4,
                      before + offsetof(struct zcusb_ring_header, cq_tail) + 4, 60) == 0);
        /* The submission ring is read-only to the daemon, and so is the gap after it. */
        ASSERT(memcmp(s->mem + sq_begin, before + sq_begin, cq_begin - sq_begin) == 0);
        /* Completion slots: only the ones just posted. */
        ASSERT(posted <= s->ring.cq_entries);
        for (uint32_t i = 0; i < s->ring.cq_entries; i++) {
                uint32_t rel = (i - old_cq_tail) & (s->ring.cq_entries - 1);
                if (rel < posted)
                        continue;
                ASSERT(memcmp(s->mem + cq_begin + i * sizeof(struct zcusb_cqe),
                              before + cq_begin + i * sizeof(struct zcusb_cqe), sizeof(struct zcusb_cqe)) == 0);
        }
        {
                size_t cq_end = cq_begin + (size_t) s->ring.cq_entries * sizeof(struct zcusb_cqe);
                ASSERT(memcmp(s->mem + cq_end, before + cq_end, s->mem_size - cq_end) == 0);
        }
        ASSERT(hdr(s)->cq_tail.value == s->ring.cq_tail);
        ASSERT(hdr(s)->sq_head.value == s->ring.sq_head);
}

/* queue_complete(): post, or keep it while the client's cq_head is wrong. */
static void complete(State *s, uint64_t user_data, int status) {
        struct zcusb_cqe cqe = { .user_data = user_data, .status = status };

        if (s->n_backlog == 0 && ring_post_cqe(&s->ring, &cqe) >= 0)
                return;
        if (s->n_backlog < s->ring.cq_entries)
                s->backlog[s->n_backlog++] = cqe;
}

static void flush_backlog(State *s) {
        uint32_t n = 0;

        while (n < s->n_backlog && ring_post_cqe(&s->ring, &s->backlog[n]) >= 0)
                n++;
        memmove(s->backlog, s->backlog + n, (s->n_backlog - n) * sizeof(*s->backlog));
        s->n_backlog -= n;
}

/* queue_process(). MODE bit 2: the transfers in flight complete first; bit 3:
 * accepted transfers stay in flight instead of completing at once; bits 0-1:
 * the client rewrites the payload between and after the checks. */
static void consume(State *s, uint8_t mode, uint8_t *before) {
        Ring *r = &s->ring;
        uint32_t old_cq_tail = r->cq_tail;
        unsigned iterations = 0;
        bool looked_again = false;

        memcpy(before, s->mem, s->mem_size);
        if (mode & 4) {
                for (uint32_t i = 0; i < s->in_flight; i++)
                        complete(s, s->in_flight_user_data[i], -EPIPE);
                s->in_flight = 0;
        }
        flush_backlog(s);

        for (;;) {
                struct zcusb_sqe sqe;
                bool was_broken, started = false;
                uint32_t space;
                int ret;

                /* Each pass takes an entry whose completion has a slot (bounded
                 * by the ring) or ends; a wakeup race may add one pass. */
                ASSERT(++iterations <= 2 * r->cq_entries + 2);

                space = ring_cq_space(r);
                ASSERT(space <= r->cq_entries);
                ASSERT(s->in_flight <= r->cq_entries && s->n_backlog <= r->cq_entries);
                if (space <= s->in_flight + s->n_backlog) /* queue_can_take() */
                        break;
                was_broken = r->broken;
                ret = ring_fetch_sqe(r, &sqe);
                if (ret < 0) {
                        ASSERT(ret == -EPROTO);
                        ASSERT(r->broken);
                        /* Said so when it broke (the client may clear the flag later). */
                        if (!was_broken)
                                ASSERT(hdr(s)->sq_flags.value & ZCUSB_SQ_BROKEN);
                        break;
                }
                if (ret == 0) {
                        /* "Arrived after all" must mean something is there. */
                        ASSERT(!looked_again);
                        if (ring_set_need_wakeup(r, s->in_flight == 0)) {
                                looked_again = true;
                                continue;
                        }
                        break;
                }
                looked_again = false;
                ASSERT(!r->broken);
                /* The copy is the entry the client published at that slot. */
                ASSERT(memcmp(&sqe, client_slot(s, r->sq_head - 1), sizeof(sqe)) == 0);
                ret = handle_entry(s, &sqe, mode, &started);
                if (started && (mode & 8)) {
                        ASSERT(s->in_flight < ELEMENTSOF(s->in_flight_user_data));
                        s->in_flight_user_data[s->in_flight++] = sqe.user_data;
                } else {
                        /* Its slot was reserved: it must fit. */
                        uint32_t tail = r->cq_tail;
                        complete(s, sqe.user_data, ret);
                        ASSERT(r->cq_tail == tail + 1);
                }
        }
        if (r->broken) {
                struct zcusb_sqe sqe;
                ASSERT(ring_fetch_sqe(r, &sqe) == -EPROTO);
                ASSERT(!ring_set_need_wakeup(r, true));
        }
        ring_publish(r);
        (void) ring_client_wants_wakeup(r);
        check_writes(s, before, old_cq_tail);
}

/* The client fills the entry at its tail and publishes it. Input layout:
 * opcode, endpoint choice, buffer id, flags, extra, then offset and length
 * (u16 each, or u64 and u32 when extra has 0x40: anything at all). Read one
 * at a time: the order of calls inside an initializer is unspecified. */
static void client_submit(State *s, Input *in) {
        struct zcusb_sqe e = { .timeout_ms = 100, .user_data = ++s->next_user_data };
        uint32_t tail = hdr(s)->sq_tail.value;
        uint8_t flags, extra;

        e.opcode = u8(in) % 7;
        e.endpoint = endpoint_choices[u8(in) % sizeof(endpoint_choices)];
        e.buffer_id = u8(in) % 4;
        flags = u8(in);
        e.flags = flags & 0x80 ? (uint16_t) (flags << 8 | flags) : flags & 3;
        extra = u8(in);
        if (extra & 0x40) {
                e.offset = u32(in);
                e.offset |= (uint64_t) u32(in) << 32;
                e.length = u32(in);
        } else {
                /* Small, to land inside the buffers; iso wants 4-byte alignment. */
                e.offset = u16(in) & (extra & 0x20 ? 0x1fff : 0x1ffc);
                e.length = u16(in) & 0x1fff;
        }

        if (e.opcode == ZCUSB_OP_ISO)
                e.iso_packets = extra % 130;
        else if (extra & 0x80)
                e.iso_packets = extra & 3;
        if (e.opcode == ZCUSB_OP_CANCEL)
                e.cancel_user_data = s->next_user_data - 1;
        *client_slot(s, tail) = e;
        __atomic_store_n(&hdr(s)->sq_tail.value, tail + 1, __ATOMIC_RELEASE);
}

/* Fill a buffer region with a control setup packet or iso descriptors. */
static void client_payload(State *s, Input *in) {
        Buffer *b = &s->buffers[1 + (u8(in) & 1)];
        uint64_t offset = u16(in) & 0x1ffc;
        uint8_t kind = u8(in);

        if (!b->map || offset >= b->size)
                return;
        if (kind & 1) {
                uint8_t setup[8];
                bytes(in, setup, sizeof(setup));
                memcpy(b->map + offset, setup, b->size - offset < 8 ? b->size - offset : 8);
        } else {
                unsigned n = 1 + (kind >> 1) % 8;
                for (unsigned i = 0; i < n && offset + 16 * (i + 1) <= b->size; i++) {
                        struct zcusb_iso_packet p = { .length = u16(in) };
                        memcpy(b->map + offset + 16 * i, &p, sizeof(p));
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Input in = { .data = data, .size = size };
        State s = {};
        uint8_t *before = NULL;
        uint32_t entries, start;
        uint8_t b;

        if (size < 4)
                return 0;

        b = u8(&in);
        entries = 1u << (b & 3);
        s.mem_size = ring_size(entries);
        s.mem = aligned_alloc(PAGE, s.mem_size);
        before = malloc(s.mem_size);
        if (!s.mem || !before)
                goto out;
        memset(s.mem, 0, s.mem_size);
        ring_init(&s.ring, s.mem, entries);

        /* Both sides start wherever the input says, near UINT32_MAX included. */
        start = (b & 4) ? UINT32_MAX - (u8(&in) & 15) : u32(&in);
        s.ring.sq_head = s.ring.cq_tail = start;
        hdr(&s)->sq_head.value = hdr(&s)->sq_tail.value = start;
        hdr(&s)->cq_head.value = hdr(&s)->cq_tail.value = start;

        s.ctx = (TransferContext) {
                .interface_number = 0,
                .alt_setting = (b >> 3) & 1,
                .descriptors = &descriptors,
                .buffer_size = buffer_size,
                .userdata = &s,
        };
        /* Buffers sized exactly, so ASan sees any byte read past them. */
        s.buffers[1].size = u16(&in) & 0x1fff;
        s.buffers[2].size = u8(&in);
        for (int i = 1; i < 3; i++) {
                s.buffers[i].map = malloc(s.buffers[i].size ?: 1);
                if (!s.buffers[i].map)
                        goto out;
                memset(s.buffers[i].map, 0, s.buffers[i].size);
        }

        for (unsigned op = 0; op < MAX_OPS && in.pos < in.size; op++) {
                struct zcusb_ring_header *h = hdr(&s);

                switch (u8(&in) % 12) {
                case 0:
                        h->sq_tail.value = u32(&in);
                        break;
                case 1:
                        h->sq_tail.value += (uint32_t) (int32_t) (int8_t) u8(&in);
                        break;
                case 2:
                        h->cq_head.value = u32(&in);
                        break;
                case 3:
                        h->cq_head.value += (uint32_t) (int32_t) (int8_t) u8(&in);
                        break;
                case 4: { /* raw bytes into any submission slot */
                        uint8_t slot = u8(&in);
                        bytes(&in, &s.ring.sq[slot & (entries - 1)], sizeof(struct zcusb_sqe));
                        break;
                }
                case 5:
                case 6:
                        client_submit(&s, &in);
                        break;
                case 7: { /* raw bytes into a buffer */
                        Buffer *buf = &s.buffers[1 + (u8(&in) & 1)];
                        uint64_t off = u16(&in);
                        uint8_t n = u8(&in);
                        for (uint8_t i = 0; i < n && off + i < buf->size; i++)
                                buf->map[off + i] = u8(&in);
                        break;
                }
                case 8:
                        client_payload(&s, &in);
                        break;
                case 9:
                case 10:
                        consume(&s, u8(&in), before);
                        break;
                case 11: { /* scribble on the header, layout fields and indices alike */
                        uint16_t off = u16(&in) % sizeof(struct zcusb_ring_header);
                        ((uint8_t *) h)[off] = u8(&in);
                        /* A client that consumed its completions. */
                        if (off & 1)
                                h->cq_head.value = h->cq_tail.value;
                        break;
                }
                }
        }
        consume(&s, 0, before);

out:
        for (int i = 1; i < 3; i++)
                free(s.buffers[i].map);
        free(before);
        free(s.mem);
        return 0;
}
