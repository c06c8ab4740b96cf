/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * zcusb-isodev in three parts: the device and its usbredir side (zcusb-isodev.c), its
 * descriptors and answers to standard requests (isodev-ch9.c), and the process around it
 * (isodev-io.c: logging, the stats file, the listening socket).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <usbredirparser.h>

#include "zcusb-isodev.h"

#define PROGRAM  "zcusb-isodev"
#define NSEC     UINT64_C(1000000000)
#define EP0_SIZE 64 /* bMaxPacketSize0 */
#define STATS_NS (100 * UINT64_C(1000000)) /* the stats file is rewritten at most this often */

typedef struct Stats {
        uint64_t in_streams_started, in_packets_sent, in_packets_skipped;
        uint64_t out_streams_started, out_packets, out_bytes, out_empty, out_errors;
        char out_first_error[256];
} Stats;

typedef struct Dev {
        struct usbredirparser *parser;
        int conn, timer;
        bool verbose;
        bool peer_closed;   /* EOF, EPIPE or ECONNRESET: the normal end */
        int io_error;       /* another failed read or write (negative errno) */
        uint8_t configuration, alt;
        bool in_running, out_running;
        uint64_t in_start_ns, in_next; /* when the IN stream started; K of its next packet */
        ZcIsodevReader out_reader;
        Stats st;
        const char *stats_path;
        bool stats_dirty, stats_failed;
        uint64_t stats_written_ns;
} Dev;

void __attribute__((format(printf, 1, 2))) error_log(const char *fmt, ...);
/* Only with --verbose. */
void __attribute__((format(printf, 2, 3))) verbose_log(const Dev *d, const char *fmt, ...);
uint64_t now_ns(void);

/* Write the stats if they changed and the last write is STATS_NS ago (or FORCE). */
void stats_flush(Dev *d, bool force);
/* poll()'s timeout: until the next stats write is due, or -1. */
int stats_timeout_ms(const Dev *d);

/* Listen on PATH (bound as PATH.tmp, then renamed) and return the socket, or -errno. */
int listen_at(const char *path);
/* Wait for one connection on LFD (or a signal on SFD): the connected socket, or -errno. */
int accept_one(int lfd, int sfd, const char *path);

/* Whether EP is an endpoint of the current configuration and alternate setting. */
bool ep_exists(const Dev *d, uint8_t ep);
/*
 * The answer to a standard request QEMU passed on: IN data into BUF and its length, 0 for an
 * OUT request taken, or -1 to stall.
 */
int control_answer(Dev *d, const struct usb_redir_control_packet_header *h, uint8_t *buf, size_t size);
