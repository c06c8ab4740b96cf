/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zcusb-isodev: the VM tiers' isochronous IN device, played on the host. dummy_hcd has no
 * isochronous transfers and QEMU's usb-audio is output only, so nothing in the guest has an
 * iso IN endpoint to test zcusb.ko and zcusbd with. This program is a usbredir server (the
 * "usb host" side of the usbredir protocol, the role usbredirhost plays for a real device)
 * that QEMU's usb-redir device puts on the guest's xHCI:
 *
 *   -chardev socket,id=isodev,path=SOCK -device usb-redir,chardev=isodev,bus=xhci.0,id=isodev
 *
 * It plays the device tests/vm/tools/zcusb-isodev.h defines (1209:0001, high speed, interface
 * 0 alternate setting 1: iso IN 0x81 and iso OUT 0x02 of 1024 bytes, bInterval 4): answers
 * the control requests QEMU passes on, produces the IN stream (packet K, K counting the
 * milliseconds since QEMU started the stream, carries zcusb-pattern.h's stream from K * 1024)
 * and checks what arrives on OUT with zc_isodev_check(). libusbredirparser does all the
 * protocol's marshalling.
 *
 *   zcusb-isodev --socket PATH [--stats FILE] [--verbose]
 *
 * Listens on the unix socket PATH (bound under a temporary name, then renamed, so PATH
 * accepts connections as soon as it exists), takes one connection (QEMU's chardev connects
 * as a client), removes PATH and serves it until the peer closes: then it exits 0. Errors
 * exit 1, a usage error 2, SIGTERM/SIGINT/SIGHUP 1 (after writing the stats).
 *
 * --stats FILE: one JSON object, rewritten (temporary file + rename) at most every 100 ms
 * while something changes, and at exit: in_streams_started, in_packets_sent,
 * in_packets_skipped (produced but never sent: this process fell more than 32 behind, or QEMU
 * was not reading), out_streams_started, out_packets (every iso packet received on 0x02),
 * out_bytes, out_empty, out_errors (packets zc_isodev_check() refused), out_first_error (its
 * reason, or null), configured (the bConfigurationValue, 0 or 1), alt_setting. The OUT checker
 * lives as long as the process: each writer continues the stream at or after where the last
 * one ended (zcusb-iso --stream-offset).
 *
 * --verbose: a line on stderr for each control request, stream start and stop and alternate
 * setting change (never per packet). Errors always go to stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <usbredirparser.h>

#include "isodev.h"

/* usbredir's endpoint index: OUT 0x00-0x0f at 0-15, IN 0x80-0x8f at 16-31 */
#define EP2I(ep)  ((((ep) & 0x80) >> 3) | ((ep) & 0x0f))
#define N_EPS     32
#define PACKET_NS UINT64_C(1000000) /* one IN packet a millisecond */
#define MAX_BEHIND 32               /* packets produced late before the older ones are skipped */
#define MAX_QUEUED (512 * 1024)     /* bytes queued for QEMU before IN packets are skipped */


/* --- the parser's I/O --------------------------------------------------------------------- */

static int cb_read(void *priv, uint8_t *data, int count) {
        Dev *d = priv;
        ssize_t n = recv(d->conn, data, (size_t) count, 0);

        if (n > 0)
                return (int) n;
        if (n == 0 || errno == ECONNRESET) {
                d->peer_closed = true;
                return -1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
        d->io_error = -errno;
        return -1;
}

static int cb_write(void *priv, uint8_t *data, int count) {
        Dev *d = priv;
        ssize_t n = send(d->conn, data, (size_t) count, MSG_NOSIGNAL);

        if (n >= 0)
                return (int) n;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
        if (errno == EPIPE || errno == ECONNRESET)
                d->peer_closed = true;
        else
                d->io_error = -errno;
        return -1;
}

static void cb_log(void *priv, int level, const char *msg) {
        Dev *d = priv;

        if (level <= usbredirparser_warning || (d->verbose && level <= usbredirparser_info))
                error_log("%s", msg); /* the library says "usbredirparser: ..." */
}

/* --- the device's state ------------------------------------------------------------------- */

/* interface_info and ep_info for the current configuration and alternate setting. */
static void send_info(Dev *d) {
        struct usb_redir_interface_info_header ii = { 0 };
        struct usb_redir_ep_info_header ei = { 0 };

        if (d->configuration) {
                ii.interface_count = 1;
                ii.interface[0] = ZC_ISODEV_INTERFACE;
                ii.interface_class[0] = 0xff;
        }
        for (int i = 0; i < N_EPS; i++)
                ei.type[i] = usb_redir_type_invalid;
        /* the control endpoint, as usbredirhost describes it */
        ei.type[EP2I(0x00)] = ei.type[EP2I(0x80)] = usb_redir_type_control;
        ei.max_packet_size[EP2I(0x00)] = ei.max_packet_size[EP2I(0x80)] = EP0_SIZE;
        /* interval: bInterval as the descriptor has it, as usbredirhost sends it */
        if (ep_exists(d, ZC_ISODEV_EP_IN)) {
                const uint8_t eps[] = { ZC_ISODEV_EP_IN, ZC_ISODEV_EP_OUT };

                for (size_t i = 0; i < sizeof(eps); i++) {
                        int k = EP2I(eps[i]);

                        ei.type[k] = usb_redir_type_iso;
                        ei.interval[k] = ZC_ISODEV_INTERVAL;
                        ei.interface[k] = ZC_ISODEV_INTERFACE;
                        ei.max_packet_size[k] = ZC_ISODEV_PACKET;
                }
        }
        usbredirparser_send_interface_info(d->parser, &ii);
        usbredirparser_send_ep_info(d->parser, &ei);
}

static void timer_set(Dev *d, bool on) {
        struct itimerspec its = { 0 };

        if (on) {
                its.it_interval.tv_nsec = (long) PACKET_NS;
                its.it_value.tv_nsec = (long) PACKET_NS;
        }
        if (timerfd_settime(d->timer, 0, &its, NULL) < 0)
                error_log("timerfd_settime: %s", strerror(errno)); /* EINVAL only: a bug here */
}

static void in_stop(Dev *d, const char *why) {
        if (!d->in_running)
                return;
        d->in_running = false;
        timer_set(d, false);
        verbose_log(d, "IN stream stopped (%s) after packet %" PRIu64, why, d->in_next);
}

static void streams_stop(Dev *d, const char *why) {
        in_stop(d, why);
        if (d->out_running)
                verbose_log(d, "OUT stream stopped (%s)", why);
        d->out_running = false;
}

static void send_in_packet(Dev *d, uint64_t k) {
        uint8_t buf[ZC_ISODEV_PACKET];
        uint32_t len = zc_isodev_in_length(k);
        struct usb_redir_iso_packet_header h = {
                .endpoint = ZC_ISODEV_EP_IN, .status = usb_redir_success, .length = (uint16_t) len,
        };

        zc_pattern_fill(buf, k * ZC_ISODEV_PACKET, len);
        usbredirparser_send_iso_packet(d->parser, k, &h, buf, (int) len);
        d->st.in_packets_sent++;
}

/* Send the IN packets due by now: packet K at K ms after the start (packet 0 at once). */
static void in_produce(Dev *d) {
        uint64_t due;

        if (!d->in_running)
                return;
        due = (now_ns() - d->in_start_ns) / PACKET_NS + 1;
        if (due <= d->in_next)
                return;
        if (due - d->in_next > MAX_BEHIND) {
                d->st.in_packets_skipped += due - MAX_BEHIND - d->in_next;
                d->in_next = due - MAX_BEHIND;
        }
        for (; d->in_next < due; d->in_next++) {
                if (usbredirparser_get_bufferered_output_size(d->parser) > MAX_QUEUED)
                        d->st.in_packets_skipped++; /* QEMU is not reading: the device's packet is lost */
                else
                        send_in_packet(d, d->in_next);
        }
        d->stats_dirty = true;
}

/* --- control requests ------------------------------------------------------------------- */

static void cb_control_packet(void *priv, uint64_t id, struct usb_redir_control_packet_header *h, uint8_t *data,
                              int data_len) {
        Dev *d = priv;
        struct usb_redir_control_packet_header r = *h;
        uint8_t buf[256];
        bool in = h->endpoint & 0x80;
        int n = control_answer(d, h, buf, sizeof(buf));

        verbose_log(d, "control: bmRequestType 0x%02x bRequest 0x%02x wValue 0x%04x wIndex 0x%04x wLength %u: %s",
             h->requesttype, h->request, h->value, h->index, h->length, n < 0 ? "stall" : "ok");
        if (n < 0) {
                r.status = usb_redir_stall;
                r.length = 0;
                usbredirparser_send_control_packet(d->parser, id, &r, NULL, 0);
        } else if (in) {
                r.status = usb_redir_success;
                r.length = (uint16_t) (n < h->length ? n : h->length);
                usbredirparser_send_control_packet(d->parser, id, &r, buf, r.length);
        } else {
                r.status = usb_redir_success;
                r.length = (uint16_t) data_len;
                usbredirparser_send_control_packet(d->parser, id, &r, NULL, 0);
        }
        if (data)
                usbredirparser_free_packet_data(d->parser, data);
}

/* --- usbredir's control packets ---------------------------------------------------------- */

static void cb_hello(void *priv, struct usb_redir_hello_header *hello) {
        Dev *d = priv;
        struct usb_redir_device_connect_header c = {
                .speed = usb_redir_speed_high,
                .device_class = 0xff,
                .device_subclass = 0,
                .device_protocol = 0,
                .vendor_id = ZC_ISODEV_VID,
                .product_id = ZC_ISODEV_PID,
                .device_version_bcd = 0x0100,
        };

        verbose_log(d, "hello from \"%.64s\": connecting %04x:%04x, high speed", hello->version, ZC_ISODEV_VID,
             ZC_ISODEV_PID);
        send_info(d);
        usbredirparser_send_device_connect(d->parser, &c);
}

static void cb_reset(void *priv) {
        Dev *d = priv;

        /* as libusb_reset_device() leaves a device: the configuration kept, alternate setting 0 */
        streams_stop(d, "reset");
        d->alt = 0;
        d->stats_dirty = true;
        verbose_log(d, "reset");
        send_info(d);
}

static void cb_set_configuration(void *priv, uint64_t id, struct usb_redir_set_configuration_header *sc) {
        Dev *d = priv;
        struct usb_redir_configuration_status_header st = {
                .status = usb_redir_success,
                .configuration = sc->configuration,
        };

        verbose_log(d, "set_configuration %u", sc->configuration);
        if (sc->configuration > 1) {
                st.status = usb_redir_stall;
                st.configuration = d->configuration;
        } else {
                streams_stop(d, "set_configuration");
                d->configuration = sc->configuration;
                d->alt = 0;
                d->stats_dirty = true;
                send_info(d);
        }
        usbredirparser_send_configuration_status(d->parser, id, &st);
}

static void cb_get_configuration(void *priv, uint64_t id) {
        Dev *d = priv;
        struct usb_redir_configuration_status_header st = {
                .status = usb_redir_success,
                .configuration = d->configuration,
        };

        usbredirparser_send_configuration_status(d->parser, id, &st);
}

static void cb_set_alt_setting(void *priv, uint64_t id, struct usb_redir_set_alt_setting_header *sa) {
        Dev *d = priv;
        struct usb_redir_alt_setting_status_header st = {
                .status = usb_redir_success,
                .interface = sa->interface,
                .alt = sa->alt,
        };

        verbose_log(d, "set_alt_setting interface %u alt %u", sa->interface, sa->alt);
        if (!d->configuration || sa->interface != ZC_ISODEV_INTERFACE || sa->alt > ZC_ISODEV_ALT) {
                st.status = usb_redir_stall;
                st.alt = d->alt;
        } else {
                streams_stop(d, "set_alt_setting");
                d->alt = sa->alt;
                d->stats_dirty = true;
                /* QEMU learns the endpoints' types from ep_info */
                send_info(d);
        }
        usbredirparser_send_alt_setting_status(d->parser, id, &st);
}

static void cb_get_alt_setting(void *priv, uint64_t id, struct usb_redir_get_alt_setting_header *ga) {
        Dev *d = priv;
        struct usb_redir_alt_setting_status_header st = {
                .status = usb_redir_success,
                .interface = ga->interface,
                .alt = d->alt,
        };

        if (!d->configuration || ga->interface != ZC_ISODEV_INTERFACE) {
                st.status = usb_redir_stall;
                st.alt = 0;
        }
        usbredirparser_send_alt_setting_status(d->parser, id, &st);
}

static void cb_start_iso_stream(void *priv, uint64_t id, struct usb_redir_start_iso_stream_header *s) {
        Dev *d = priv;
        struct usb_redir_iso_stream_status_header st = { .status = usb_redir_success, .endpoint = s->endpoint };

        verbose_log(d, "start_iso_stream endpoint 0x%02x pkts_per_urb %u no_urbs %u", s->endpoint, s->pkts_per_urb,
             s->no_urbs);
        if (!ep_exists(d, s->endpoint)) {
                error_log("start_iso_stream on endpoint 0x%02x, which configuration %u alternate setting %u lacks",
                    s->endpoint, d->configuration, d->alt);
                st.status = usb_redir_stall;
        } else if (s->endpoint == ZC_ISODEV_EP_IN) {
                /* a start while running starts over: K counts from this start */
                d->in_running = true;
                d->in_start_ns = now_ns();
                d->in_next = 0;
                d->st.in_streams_started++;
                timer_set(d, true);
                in_produce(d);
        } else {
                d->out_running = true;
                d->st.out_streams_started++;
        }
        d->stats_dirty = true;
        usbredirparser_send_iso_stream_status(d->parser, id, &st);
}

static void cb_stop_iso_stream(void *priv, uint64_t id, struct usb_redir_stop_iso_stream_header *s) {
        Dev *d = priv;
        struct usb_redir_iso_stream_status_header st = { .status = usb_redir_success, .endpoint = s->endpoint };

        if (s->endpoint == ZC_ISODEV_EP_IN)
                in_stop(d, "stop_iso_stream");
        else if (s->endpoint == ZC_ISODEV_EP_OUT && d->out_running) {
                d->out_running = false;
                verbose_log(d, "OUT stream stopped (stop_iso_stream)");
        }
        usbredirparser_send_iso_stream_status(d->parser, id, &st);
}

static void cb_iso_packet(void *priv, uint64_t id, struct usb_redir_iso_packet_header *h, uint8_t *data,
                          int data_len) {
        Dev *d = priv;
        char why[200]; /* with "OUT packet N: ", within out_first_error */

        (void) id; /* QEMU numbers nothing it does not expect an answer to */

        if (h->endpoint != ZC_ISODEV_EP_OUT) {
                error_log("iso packet on endpoint 0x%02x (%d bytes) ignored: only 0x%02x takes data", h->endpoint,
                    data_len, ZC_ISODEV_EP_OUT);
        } else {
                d->st.out_packets++;
                d->st.out_bytes += (uint64_t) data_len;
                if (zc_isodev_check(&d->out_reader, false, data, (uint32_t) data_len, why, sizeof(why)) < 0) {
                        if (d->st.out_errors++ == 0) {
                                snprintf(d->st.out_first_error, sizeof(d->st.out_first_error),
                                         "OUT packet %" PRIu64 ": %s", d->st.out_packets, why);
                                error_log("%s", d->st.out_first_error);
                        }
                }
                d->st.out_empty = d->out_reader.empty;
                d->stats_dirty = true;
        }
        if (data)
                usbredirparser_free_packet_data(d->parser, data);
}

/* --- what this device does not have: refused, never a crash -------------------------------- */

static void cb_bulk_packet(void *priv, uint64_t id, struct usb_redir_bulk_packet_header *h, uint8_t *data,
                           int data_len) {
        Dev *d = priv;
        struct usb_redir_bulk_packet_header r = *h;

        error_log("bulk packet on endpoint 0x%02x (%d bytes): no bulk endpoints, stalled", h->endpoint, data_len);
        r.status = usb_redir_stall;
        r.length = r.length_high = 0;
        usbredirparser_send_bulk_packet(d->parser, id, &r, NULL, 0);
        if (data)
                usbredirparser_free_packet_data(d->parser, data);
}

static void cb_interrupt_packet(void *priv, uint64_t id, struct usb_redir_interrupt_packet_header *h, uint8_t *data,
                                int data_len) {
        Dev *d = priv;
        struct usb_redir_interrupt_packet_header r = *h;

        error_log("interrupt packet on endpoint 0x%02x (%d bytes): no interrupt endpoints, stalled", h->endpoint,
                  data_len);
        r.status = usb_redir_stall;
        r.length = 0;
        usbredirparser_send_interrupt_packet(d->parser, id, &r, NULL, 0);
        if (data)
                usbredirparser_free_packet_data(d->parser, data);
}

static void cb_start_interrupt_receiving(void *priv, uint64_t id,
                                         struct usb_redir_start_interrupt_receiving_header *s) {
        Dev *d = priv;
        struct usb_redir_interrupt_receiving_status_header st = { .status = usb_redir_stall, .endpoint = s->endpoint };

        error_log("start_interrupt_receiving on endpoint 0x%02x: no interrupt endpoints, stalled", s->endpoint);
        usbredirparser_send_interrupt_receiving_status(d->parser, id, &st);
}

static void cb_stop_interrupt_receiving(void *priv, uint64_t id,
                                        struct usb_redir_stop_interrupt_receiving_header *s) {
        Dev *d = priv;
        struct usb_redir_interrupt_receiving_status_header st = { .status = usb_redir_success,
                                                                   .endpoint = s->endpoint };

        usbredirparser_send_interrupt_receiving_status(d->parser, id, &st);
}

static void cb_start_bulk_receiving(void *priv, uint64_t id, struct usb_redir_start_bulk_receiving_header *s) {
        Dev *d = priv;
        struct usb_redir_bulk_receiving_status_header st = {
                .stream_id = s->stream_id, .endpoint = s->endpoint, .status = usb_redir_stall,
        };

        error_log("start_bulk_receiving on endpoint 0x%02x: no bulk endpoints, stalled", s->endpoint);
        usbredirparser_send_bulk_receiving_status(d->parser, id, &st);
}

static void cb_stop_bulk_receiving(void *priv, uint64_t id, struct usb_redir_stop_bulk_receiving_header *s) {
        Dev *d = priv;
        struct usb_redir_bulk_receiving_status_header st = {
                .stream_id = s->stream_id, .endpoint = s->endpoint, .status = usb_redir_success,
        };

        usbredirparser_send_bulk_receiving_status(d->parser, id, &st);
}

static void cb_alloc_bulk_streams(void *priv, uint64_t id, struct usb_redir_alloc_bulk_streams_header *a) {
        Dev *d = priv;
        struct usb_redir_bulk_streams_status_header st = {
                .endpoints = a->endpoints, .no_streams = a->no_streams, .status = usb_redir_inval,
        };

        error_log("alloc_bulk_streams for endpoints 0x%08" PRIx32 ": no bulk endpoints, refused", a->endpoints);
        usbredirparser_send_bulk_streams_status(d->parser, id, &st);
}

static void cb_free_bulk_streams(void *priv, uint64_t id, struct usb_redir_free_bulk_streams_header *f) {
        Dev *d = priv;
        struct usb_redir_bulk_streams_status_header st = {
                .endpoints = f->endpoints, .no_streams = 0, .status = usb_redir_success,
        };

        usbredirparser_send_bulk_streams_status(d->parser, id, &st);
}

static void cb_cancel_data_packet(void *priv, uint64_t id) {
        Dev *d = priv;

        /* every data packet is answered as it arrives: nothing is pending to cancel */
        verbose_log(d, "cancel_data_packet %" PRIu64 ": already answered", id);
}

static void cb_filter_reject(void *priv) {
        (void) priv;
        error_log("QEMU rejected the device (filter_reject: its filter, or a speed the port lacks)");
}

static void cb_filter_filter(void *priv, struct usbredirfilter_rule *rules, int rules_count) {
        Dev *d = priv;

        verbose_log(d, "filter with %d rules from QEMU (ignored)", rules_count);
        free(rules); /* the callback owns them */
}

static void cb_device_disconnect_ack(void *priv) {
        Dev *d = priv;

        verbose_log(d, "device_disconnect_ack");
}

/* --- setup and the loop ------------------------------------------------------------------ */

static void parser_setup(Dev *d) {
        struct usbredirparser *p = d->parser;
        uint32_t caps[USB_REDIR_CAPS_SIZE] = { 0 };

        p->priv = d;
        p->log_func = cb_log;
        p->read_func = cb_read;
        p->write_func = cb_write;
        p->hello_func = cb_hello;
        p->reset_func = cb_reset;
        p->set_configuration_func = cb_set_configuration;
        p->get_configuration_func = cb_get_configuration;
        p->set_alt_setting_func = cb_set_alt_setting;
        p->get_alt_setting_func = cb_get_alt_setting;
        p->start_iso_stream_func = cb_start_iso_stream;
        p->stop_iso_stream_func = cb_stop_iso_stream;
        p->start_interrupt_receiving_func = cb_start_interrupt_receiving;
        p->stop_interrupt_receiving_func = cb_stop_interrupt_receiving;
        p->alloc_bulk_streams_func = cb_alloc_bulk_streams;
        p->free_bulk_streams_func = cb_free_bulk_streams;
        p->cancel_data_packet_func = cb_cancel_data_packet;
        p->control_packet_func = cb_control_packet;
        p->bulk_packet_func = cb_bulk_packet;
        p->iso_packet_func = cb_iso_packet;
        p->interrupt_packet_func = cb_interrupt_packet;
        p->filter_reject_func = cb_filter_reject;
        p->filter_filter_func = cb_filter_filter;
        p->device_disconnect_ack_func = cb_device_disconnect_ack;
        p->start_bulk_receiving_func = cb_start_bulk_receiving;
        p->stop_bulk_receiving_func = cb_stop_bulk_receiving;

        /* what QEMU needs of a usbredir host on an xHCI (usbredir_do_attach) and a bit more */
        usbredirparser_caps_set_cap(caps, usb_redir_cap_connect_device_version);
        usbredirparser_caps_set_cap(caps, usb_redir_cap_filter);
        usbredirparser_caps_set_cap(caps, usb_redir_cap_ep_info_max_packet_size);
        usbredirparser_caps_set_cap(caps, usb_redir_cap_64bits_ids);
        usbredirparser_caps_set_cap(caps, usb_redir_cap_32bits_bulk_length);
        usbredirparser_init(p, PROGRAM " (zcusb VM tier)", caps, USB_REDIR_CAPS_SIZE, usbredirparser_fl_usb_host);
}

/* Serve the connection until the peer closes (0), a signal or an error (-errno). */
static int serve(Dev *d, int sfd) {
        for (;;) {
                struct pollfd p[3] = {
                        { .fd = d->conn, .events = POLLIN },
                        { .fd = d->timer, .events = POLLIN },
                        { .fd = sfd, .events = POLLIN },
                };
                int r;

                if (usbredirparser_has_data_to_write(d->parser))
                        p[0].events |= POLLOUT;
                r = poll(p, 3, stats_timeout_ms(d));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        error_log("poll: %s", strerror(-r));
                        return r;
                }
                if (p[2].revents & POLLIN) {
                        struct signalfd_siginfo si;

                        if (read(sfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
                                error_log("stopped by signal %s before QEMU closed the connection",
                                    strsignal((int) si.ssi_signo));
                        return -EINTR;
                }
                if (p[1].revents & POLLIN) {
                        uint64_t expirations;

                        if (read(d->timer, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
                                r = -errno;
                                error_log("reading the timerfd: %s", strerror(-r));
                                return r;
                        }
                        in_produce(d);
                }
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        r = usbredirparser_do_read(d->parser);
                        if (r == usbredirparser_read_parse_error)
                                error_log("a malformed packet from the peer, skipped");
                        else if (r < 0 && !d->peer_closed) {
                                error_log("reading from QEMU: %s", strerror(d->io_error ? -d->io_error : EIO));
                                return d->io_error ? d->io_error : -EIO;
                        }
                }
                if (!d->peer_closed && usbredirparser_has_data_to_write(d->parser) &&
                    usbredirparser_do_write(d->parser) < 0 && !d->peer_closed) {
                        error_log("writing to QEMU: %s", strerror(d->io_error ? -d->io_error : EIO));
                        return d->io_error ? d->io_error : -EIO;
                }
                if (d->peer_closed)
                        return 0;
                stats_flush(d, false);
        }
}

static void usage(FILE *to) {
        fprintf(to,
                "Usage: %s --socket PATH [--stats FILE] [--verbose]\n"
                "Plays the iso test device 1209:0001 (tests/vm/tools/zcusb-isodev.h) for QEMU's usb-redir:\n"
                "listens on the unix socket PATH, serves one connection, exits 0 when QEMU closes it.\n",
                PROGRAM);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket",  required_argument, NULL, 's' },
                { "stats",   required_argument, NULL, 'S' },
                { "verbose", no_argument,       NULL, 'v' },
                { "help",    no_argument,       NULL, 'h' },
                { 0 }
        };
        Dev d = { .conn = -1, .timer = -1, .configuration = 1 };
        const char *path = NULL;
        sigset_t mask;
        int c, lfd, sfd, r;

        while ((c = getopt_long(argc, argv, "s:S:vh", options, NULL)) >= 0) {
                switch (c) {
                case 's':
                        path = optarg;
                        break;
                case 'S':
                        d.stats_path = optarg;
                        break;
                case 'v':
                        d.verbose = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!path || optind != argc) {
                usage(stderr);
                return 2;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                error_log("signalfd: %s", strerror(errno));
                return 1;
        }
        d.timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (d.timer < 0) {
                error_log("timerfd_create(CLOCK_MONOTONIC): %s", strerror(errno));
                return 1;
        }
        d.stats_dirty = true;
        stats_flush(&d, true); /* the file exists from the start */

        lfd = listen_at(path);
        if (lfd < 0)
                return 1;
        verbose_log(&d, "listening on %s", path);
        d.conn = accept_one(lfd, sfd, path);
        close(lfd);
        unlink(path);
        if (d.conn < 0) {
                stats_flush(&d, true);
                return 1;
        }
        verbose_log(&d, "connected");

        d.parser = usbredirparser_create();
        if (!d.parser) {
                error_log("usbredirparser_create: out of memory");
                return 1;
        }
        parser_setup(&d);
        r = serve(&d, sfd);
        streams_stop(&d, r == 0 ? "QEMU closed the connection" : "exit");
        stats_flush(&d, true);
        usbredirparser_destroy(d.parser);
        close(d.conn);
        close(d.timer);
        close(sfd);
        if (r == 0)
                verbose_log(&d, "QEMU closed the connection: %" PRIu64 " IN streams, %" PRIu64 " IN packets sent, %" PRIu64
                     " skipped; %" PRIu64 " OUT packets, %" PRIu64 " errors",
                     d.st.in_streams_started, d.st.in_packets_sent, d.st.in_packets_skipped, d.st.out_packets,
                     d.st.out_errors);
        return r == 0 ? 0 : 1;
}
