/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The test data stream of the VM tier's tools (zcusb-loopback on the host side,
 * ffs-gadget on the gadget side): byte N of a stream belongs to the 64-bit
 * little-endian word N / 8, whose value is
 *
 *     word(i) = (i ^ ZC_PATTERN_SEED) * ZC_PATTERN_MUL   (mod 2^64)
 *
 * Unlike a byte counter, no two words of a stream are equal, so a dropped,
 * repeated or reordered block is caught wherever it happens; and since the
 * multiplier is odd the index can be read back from any aligned word
 * (zc_pattern_index()), which lets a reader join a stream that started
 * earlier (the FunctionFS gadget serves one endless stream).
 */

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ZC_PATTERN_SEED UINT64_C(0x7a637573622d766d) /* "zcusb-vm" */
#define ZC_PATTERN_MUL  UINT64_C(0x9e3779b97f4a7c15)

static inline uint64_t zc_pattern_word(uint64_t index) {
        return (index ^ ZC_PATTERN_SEED) * ZC_PATTERN_MUL;
}

/* The inverse of ZC_PATTERN_MUL mod 2^64 (Newton's iteration: each step doubles
 * the correct low bits; 3 correct ones to start with, 6 steps give 64+). */
static inline uint64_t zc_pattern_mul_inverse(void) {
        uint64_t x = ZC_PATTERN_MUL;

        for (int i = 0; i < 6; i++)
                x *= 2 - ZC_PATTERN_MUL * x;
        return x;
}

/* The index I with zc_pattern_word(I) == W. */
static inline uint64_t zc_pattern_index(uint64_t w) {
        return (w * zc_pattern_mul_inverse()) ^ ZC_PATTERN_SEED;
}

static inline uint8_t zc_pattern_byte(uint64_t offset) {
        return (uint8_t) (zc_pattern_word(offset / 8) >> (8 * (offset % 8)));
}

/* Fill P with the LEN stream bytes starting at stream offset OFFSET. */
static inline void zc_pattern_fill(uint8_t *p, uint64_t offset, size_t len) {
        while (len > 0 && offset % 8 != 0) {
                *p++ = zc_pattern_byte(offset++);
                len--;
        }
        for (; len >= 8; len -= 8, p += 8, offset += 8) {
                uint64_t w = htole64(zc_pattern_word(offset / 8));
                memcpy(p, &w, 8);
        }
        for (; len > 0; len--)
                *p++ = zc_pattern_byte(offset++);
}

/* Compare P with the stream bytes at OFFSET. Returns the index in P of the
 * first wrong byte, or LEN when all LEN bytes are right. */
static inline size_t zc_pattern_check(const uint8_t *p, uint64_t offset, size_t len) {
        size_t i = 0;

        while (i < len && (offset + i) % 8 != 0) {
                if (p[i] != zc_pattern_byte(offset + i))
                        return i;
                i++;
        }
        for (; len - i >= 8; i += 8) {
                uint64_t w;

                memcpy(&w, p + i, 8);
                if (le64toh(w) != zc_pattern_word((offset + i) / 8))
                        break; /* the byte loop below finds which one */
        }
        for (; i < len; i++)
                if (p[i] != zc_pattern_byte(offset + i))
                        return i;
        return len;
}
