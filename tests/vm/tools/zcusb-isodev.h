/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The VM tiers' isochronous IN device. dummy_hcd has no isochronous transfers and
 * QEMU's usb-audio is output only, so tests/vm/host/zcusb-isodev plays one: a usbredir
 * server that QEMU's usb-redir device puts on the guest's xHCI as a high-speed device.
 *
 *   VID:PID ZC_ISODEV_VID:ZC_ISODEV_PID, one configuration, interface 0:
 *     alternate setting 0: no endpoints
 *     alternate setting 1: iso IN ZC_ISODEV_EP_IN and iso OUT ZC_ISODEV_EP_OUT,
 *                          wMaxPacketSize ZC_ISODEV_PACKET, bInterval ZC_ISODEV_INTERVAL
 *
 * IN stream: the device produces one packet a millisecond from the moment the host starts
 * the stream. Packet K (K counts every packet produced, whether the guest took it or not,
 * so a gap in K is a packet lost on the way) carries the zcusb-pattern.h stream bytes from
 * offset K * ZC_ISODEV_PACKET, zc_isodev_in_length(K) of them: every eighth packet is
 * short, so a reader sees per-packet lengths that differ from what it asked for. A packet
 * the guest asks for while QEMU holds none arrives empty (status 0, length 0).
 *
 * OUT: the device checks what it receives with zc_isodev_check() (the writer sends the
 * zcusb-pattern.h stream from any offset, in packets of any length) and counts it in its
 * stats file.
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "zcusb-pattern.h"

#define ZC_ISODEV_VID      0x1209 /* pid.codes */
#define ZC_ISODEV_PID      0x0001 /* its test PID */
#define ZC_ISODEV_INTERFACE 0
#define ZC_ISODEV_ALT      1
#define ZC_ISODEV_EP_IN    0x81
#define ZC_ISODEV_EP_OUT   0x02
#define ZC_ISODEV_PACKET   1024
#define ZC_ISODEV_INTERVAL 4 /* high speed: 2^(4-1) microframes, one packet a millisecond */

static inline uint32_t zc_isodev_in_length(uint64_t k) {
        return k % 8 == 7 ? 200 + (uint32_t) (k / 8 % 512) : ZC_ISODEV_PACKET;
}

/* What a reader of a stream saw. */
typedef struct ZcIsodevReader {
        uint64_t next_offset; /* the stream offset after the last packet seen */
        uint64_t packets;     /* non-empty packets, each checked */
        uint64_t empty;       /* packets that arrived empty */
        uint64_t lost;        /* IN: packet numbers skipped between two packets seen */
        uint64_t bytes;
} ZcIsodevReader;

/*
 * Check one received packet, LEN bytes at P, against the stream read so far. IN (the
 * device's stream, as the guest reads it): the packet must be a whole packet K of the
 * device's, K after the last one seen. OUT (what the guest wrote, as the device reads
 * it): any run of stream bytes that starts at an 8-byte word, at or after where the last
 * packet ended. Returns 0 and counts it, or -1 with WHY filled.
 */
static inline int zc_isodev_check(ZcIsodevReader *r, bool in, const uint8_t *p, uint32_t len, char *why,
                                  size_t why_size) {
        uint64_t w, offset;
        size_t bad;

        if (len == 0) {
                r->empty++;
                return 0;
        }
        if (len < 8) {
                snprintf(why, why_size, "a packet of %" PRIu32 " bytes (at least one 8-byte stream word expected)", len);
                return -1;
        }
        memcpy(&w, p, 8);
        offset = zc_pattern_index(le64toh(w)) * 8;
        if (r->packets > 0 && offset < r->next_offset) {
                snprintf(why, why_size, "stream offset %" PRIu64 " after %" PRIu64 " (repeated or reordered)", offset,
                         r->next_offset);
                return -1;
        }
        if (in) {
                uint64_t k = offset / ZC_ISODEV_PACKET;

                if (offset % ZC_ISODEV_PACKET != 0) {
                        snprintf(why, why_size, "first word 0x%016" PRIx64 " is not the start of a packet", le64toh(w));
                        return -1;
                }
                if (len != zc_isodev_in_length(k)) {
                        snprintf(why, why_size, "packet %" PRIu64 " has %" PRIu32 " bytes, the device sent %" PRIu32, k,
                                 len, zc_isodev_in_length(k));
                        return -1;
                }
                if (r->packets > 0)
                        r->lost += k - (r->next_offset + ZC_ISODEV_PACKET - 1) / ZC_ISODEV_PACKET;
        }
        bad = zc_pattern_check(p, offset, len);
        if (bad != len) {
                snprintf(why, why_size, "stream offset %" PRIu64 " + %zu is 0x%02x, not 0x%02x", offset, bad, p[bad],
                         zc_pattern_byte(offset + bad));
                return -1;
        }
        r->next_offset = offset + len;
        r->packets++;
        r->bytes += len;
        return 0;
}
