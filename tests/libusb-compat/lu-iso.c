/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A plain libusb-1.0 isochronous program: selects alternate setting ALT of
 * interface INTERFACE (0) of VID:PID (0525:a4a0), runs TRANSFERS iso IN
 * transfers of PACKETS packets of SIZE bytes (each packet checked: full
 * length, COMPLETED, data = the stream byte offset % 251 from --offset), then
 * as many iso OUT transfers carrying that pattern from 0. --in=0 skips the IN
 * transfers (a device with an iso OUT endpoint only, such as QEMU's usb-audio), --out=0
 * the OUT ones.
 * --pattern=isodev: the device is the VM tier's zcusb-isodev (zcusb-isodev.h): each IN
 * packet is checked with zc_isodev_check() (a whole packet of its stream, in order; short
 * and empty packets allowed, counted), OUT carries zcusb-pattern.h's stream from --offset.
 * Prints one JSON line; exit 0 when all is as expected.
 * lu-iso [--device=VID:PID] [--interface=0] [--alt=1] [--in=0x83] [--out=0x04] [--packets=8]
 *        [--size=1024] [--transfers=4] [--offset=N] [--pattern=isodev]
 */
#include <libusb.h>

#include "lu-common.h"
#include "../vm/tools/zcusb-isodev.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int done;
static bool isodev;
static ZcIsodevReader in_reader;

static void LIBUSB_CALL on_done(struct libusb_transfer *t) {
        (void) t;
        done = 1;
}

static int run(libusb_device_handle *h, unsigned ep, int packets, int size, long long *offset, int *bad) {
        struct libusb_transfer *t = libusb_alloc_transfer(packets);
        unsigned char *buf = malloc((size_t) packets * (size_t) size);
        int r;

        if (!(ep & LIBUSB_ENDPOINT_IN) && isodev)
                zc_pattern_fill(buf, (uint64_t) *offset, (size_t) packets * (size_t) size);
        else if (!(ep & LIBUSB_ENDPOINT_IN))
                for (int i = 0; i < packets * size; i++)
                        buf[i] = (unsigned char) ((*offset + i) % 251);
        libusb_fill_iso_transfer(t, h, (unsigned char) ep, buf, packets * size, packets, on_done, NULL, 2000);
        libusb_set_iso_packet_lengths(t, (unsigned) size);
        done = 0;
        r = libusb_submit_transfer(t);
        if (r < 0) {
                fprintf(stderr, "lu-iso: submit: %s\n", libusb_error_name(r));
                return r;
        }
        while (!done)
                libusb_handle_events_completed(NULL, &done);
        if (t->status != LIBUSB_TRANSFER_COMPLETED) {
                fprintf(stderr, "lu-iso: transfer status %s\n", libusb_error_name(t->status));
                (*bad)++;
        }
        for (int k = 0; k < packets; k++) {
                const unsigned char *p = libusb_get_iso_packet_buffer_simple(t, (unsigned) k);
                unsigned actual = t->iso_packet_desc[k].actual_length;
                char why[160];

                if ((ep & LIBUSB_ENDPOINT_IN) && isodev) {
                        if (t->iso_packet_desc[k].status != LIBUSB_TRANSFER_COMPLETED || actual > (unsigned) size ||
                            zc_isodev_check(&in_reader, true, p, actual, why, sizeof(why)) < 0) {
                                fprintf(stderr, "lu-iso: IN packet %d: status %d, %u bytes: %s\n", k,
                                        t->iso_packet_desc[k].status, actual,
                                        actual > (unsigned) size ? "longer than asked for" : why);
                                (*bad)++;
                        }
                        *offset += actual;
                        continue;
                }
                if (t->iso_packet_desc[k].status != LIBUSB_TRANSFER_COMPLETED ||
                    (int) t->iso_packet_desc[k].actual_length != size) {
                        (*bad)++;
                        continue;
                }
                if (ep & LIBUSB_ENDPOINT_IN)
                        for (int i = 0; i < size; i++)
                                if (p[i] != (unsigned char) ((*offset + i) % 251)) {
                                        (*bad)++;
                                        break;
                                }
                *offset += size;
        }
        libusb_free_transfer(t);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        int alt = 1, packets = 8, size = 1024, transfers = 4, bad_in = 0, bad_out = 0, interface = 0, r;
        unsigned in = 0x83, out = 0x04, vid = 0x0525, pid = 0xa4a0;
        long long in_offset = 0, out_offset = 0, first_offset;
        libusb_device_handle *h;

        for (int i = 1; i < argc; i++) {
                if (sscanf(argv[i], "--alt=%d", &alt) == 1 || sscanf(argv[i], "--in=%x", &in) == 1 ||
                    sscanf(argv[i], "--out=%x", &out) == 1 || sscanf(argv[i], "--packets=%d", &packets) == 1 ||
                    sscanf(argv[i], "--size=%d", &size) == 1 || sscanf(argv[i], "--transfers=%d", &transfers) == 1 ||
                    sscanf(argv[i], "--offset=%lld", &in_offset) == 1 ||
                    sscanf(argv[i], "--device=%x:%x", &vid, &pid) == 2 ||
                    sscanf(argv[i], "--interface=%d", &interface) == 1)
                        continue;
                if (strcmp(argv[i], "--pattern=isodev") == 0) {
                        isodev = true;
                        continue;
                }
                fprintf(stderr, "lu-iso: unknown argument %s\n", argv[i]);
                return 2;
        }
        if (isodev) /* --offset: where our OUT stream starts */
                out_offset = in_offset, in_offset = 0;
        first_offset = out_offset;
        h = lu_open_claim("lu-iso", (int) vid, (int) pid, interface, false);
        if (!h)
                return 3;
        r = libusb_set_interface_alt_setting(h, interface, alt);
        if (r < 0) {
                fprintf(stderr, "lu-iso: alt %d: %s\n", alt, libusb_error_name(r));
                return 3;
        }
        for (int k = 0; in && k < transfers; k++)
                if (run(h, in, packets, size, &in_offset, &bad_in) < 0)
                        bad_in++;
        for (int k = 0; out && k < transfers; k++)
                if (run(h, out, packets, size, &out_offset, &bad_out) < 0)
                        bad_out++;
        printf("{\"in_bytes\":%lld,\"out_bytes\":%lld,\"bad_in\":%d,\"bad_out\":%d,\"max_iso_packet\":%d",
               in_offset, out_offset - first_offset, bad_in, bad_out,
               libusb_get_max_iso_packet_size(libusb_get_device(h), (unsigned char) (in ? in : out)));
        if (isodev)
                printf(",\"in_filled_packets\":%" PRIu64 ",\"in_empty_packets\":%" PRIu64 ",\"in_lost_packets\":%" PRIu64,
                       in_reader.packets, in_reader.empty, in_reader.lost);
        printf("}\n");
        libusb_release_interface(h, interface);
        libusb_close(h);
        libusb_exit(NULL);
        return bad_in || bad_out ? 1 : 0;
}
