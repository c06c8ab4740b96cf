/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ffs-gadget: the gadget side of a USB device the VM tier controls, over
 * FunctionFS (gadget.sh: `gadget_add NAME ffs` mounts the function's functionfs
 * at /run/zcusb-ffs/NAME; start this program, wait for --ready, then
 * `gadget_plug NAME`).
 *
 *   ffs-gadget --dir /run/zcusb-ffs/NAME [--control FIFO] [--status FILE]
 *              [--ready FILE] [--chunk SIZE]
 *
 * One vendor-class interface with a bulk IN and a bulk OUT endpoint (full, high
 * and SuperSpeed descriptors). IN serves zcusb-pattern.h's stream, endlessly, from
 * byte 0; everything read on OUT must be that stream, where a stream may start
 * over at byte 0 whenever the host begins a new one (each writer starts at 0).
 *
 * Fault commands, one per line on the --control FIFO (created if missing):
 *   stall          halt the IN endpoint (FunctionFS: I/O in the wrong direction);
 *                  the host's IN transfers then fail with a stall
 *   stall-out      the same for the OUT endpoint
 *   unstall        clear both halts on the gadget side (FUNCTIONFS_CLEAR_HALT)
 *   delay MS       wait MS ms before every IN write and OUT read (0: none)
 *   status         rewrite the --status file now
 *   disconnect     exit: closing ep0 makes FunctionFS unbind the gadget from its
 *                  UDC, i.e. the host sees an unplug
 * SIGTERM/SIGINT act as "disconnect". A command interrupts blocked endpoint
 * I/O, so it takes effect at once.
 *
 * --status FILE is rewritten (atomically) after each command and every 0.5 s
 * while counters change, as shell-readable KEY=VALUE lines: state, in_bytes,
 * out_bytes, out_errors, out_streams, stalled_in, stalled_out, delay_ms, commands.
 * Log lines go to stderr. Exit: 0 after disconnect with no OUT data error,
 * 1 when OUT data was wrong (or on setup errors), 2 usage.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zcusb-pattern.h"

#define MAX_CHUNK (1u << 20)

static struct {
        const char *dir, *control, *status, *ready;
        size_t chunk;
} opt = { .chunk = 64u << 10 };

static int ep0 = -1, ep_in = -1, ep_out = -1;
static pthread_t in_thread, out_thread;
static int wake_pipe[2] = { -1, -1 }; /* signal handler -> control thread */

/* Fault state, under lock; cond wakes the endpoint threads. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool want_stall_in, want_stall_out, stalled_in, stalled_out;
static unsigned delay_ms;
static unsigned long commands;

static atomic_uint_fast64_t in_bytes, out_bytes, out_errors, out_streams;
static atomic_int fstate; /* last FunctionFS event type seen, -1 none */

static double t0;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...) {
        char line[512];
        va_list ap;
        int n;

        n = snprintf(line, sizeof(line), "ffs-gadget [%8.3f] ", now() - t0);
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t) n, fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s\n", line);
}

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...) {
        va_list ap;

        fputs("ffs-gadget: error: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

/* ---- descriptors ---- */

struct ep_pair_fs {
        struct usb_interface_descriptor intf;
        struct usb_endpoint_descriptor_no_audio in, out;
} __attribute__((packed));

struct ep_pair_ss {
        struct usb_interface_descriptor intf;
        struct usb_endpoint_descriptor_no_audio in;
        struct usb_ss_ep_comp_descriptor in_comp;
        struct usb_endpoint_descriptor_no_audio out;
        struct usb_ss_ep_comp_descriptor out_comp;
} __attribute__((packed));

/* The descriptors are little endian; static initialisers need constants. */
#if __BYTE_ORDER != __LITTLE_ENDIAN
#error "ffs-gadget writes its descriptors in host order: a little-endian host is needed"
#endif
#define LE16(x) ((__le16) (x))
#define LE32(x) ((__le32) (x))

#define INTF { .bLength = USB_DT_INTERFACE_SIZE, .bDescriptorType = USB_DT_INTERFACE, \
               .bInterfaceNumber = 0, .bNumEndpoints = 2, .bInterfaceClass = USB_CLASS_VENDOR_SPEC, \
               .iInterface = 1 }

#define EP(addr, mps) { .bLength = USB_DT_ENDPOINT_SIZE, .bDescriptorType = USB_DT_ENDPOINT, \
                        .bEndpointAddress = (addr), .bmAttributes = USB_ENDPOINT_XFER_BULK, \
                        .wMaxPacketSize = LE16(mps) }
#define SS_COMP { .bLength = USB_DT_SS_EP_COMP_SIZE, .bDescriptorType = USB_DT_SS_ENDPOINT_COMP }

static const struct {
        struct usb_functionfs_descs_head_v2 header;
        __le32 fs_count, hs_count, ss_count;
        struct ep_pair_fs fs, hs;
        struct ep_pair_ss ss;
} __attribute__((packed)) descriptors = {
        .header = {
                .magic = LE32(FUNCTIONFS_DESCRIPTORS_MAGIC_V2),
                .length = LE32(sizeof(descriptors)),
                .flags = LE32(FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC | FUNCTIONFS_HAS_SS_DESC),
        },
        .fs_count = LE32(3),
        .hs_count = LE32(3),
        .ss_count = LE32(5),
        .fs = { INTF, EP(1 | USB_DIR_IN, 64), EP(2 | USB_DIR_OUT, 64) },
        .hs = { INTF, EP(1 | USB_DIR_IN, 512), EP(2 | USB_DIR_OUT, 512) },
        .ss = { INTF, EP(1 | USB_DIR_IN, 1024), SS_COMP, EP(2 | USB_DIR_OUT, 1024), SS_COMP },
};

#define INTERFACE_NAME "zcusb ffs-gadget"
static const struct {
        struct usb_functionfs_strings_head header;
        struct {
                __le16 code;
                char str1[sizeof(INTERFACE_NAME)];
        } __attribute__((packed)) lang0;
} __attribute__((packed)) strings = {
        .header = {
                .magic = LE32(FUNCTIONFS_STRINGS_MAGIC),
                .length = LE32(sizeof(strings)),
                .str_count = LE32(1),
                .lang_count = LE32(1),
        },
        .lang0 = { LE16(0x0409), INTERFACE_NAME },
};

/* ---- status ---- */

static const char *event_name(int type) {
        switch (type) {
        case FUNCTIONFS_BIND: return "bound";
        case FUNCTIONFS_UNBIND: return "unbound";
        case FUNCTIONFS_ENABLE: return "enabled";
        case FUNCTIONFS_DISABLE: return "disabled";
        case FUNCTIONFS_SETUP: return "enabled"; /* a setup request arrives while configured */
        case FUNCTIONFS_SUSPEND: return "suspended";
        case FUNCTIONFS_RESUME: return "enabled";
        default: return "ready";
        }
}

static void write_status(void) {
        static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER; /* one writer of FILE.tmp */
        char tmp[4096];
        FILE *f;

        if (!opt.status)
                return;
        pthread_mutex_lock(&status_lock);
        snprintf(tmp, sizeof(tmp), "%s.tmp", opt.status);
        f = fopen(tmp, "we");
        if (!f) {
                say("cannot write %s: %m", tmp);
                pthread_mutex_unlock(&status_lock);
                return;
        }
        pthread_mutex_lock(&lock);
        fprintf(f,
                "state=%s\nin_bytes=%" PRIuFAST64 "\nout_bytes=%" PRIuFAST64 "\nout_errors=%" PRIuFAST64
                "\nout_streams=%" PRIuFAST64 "\nstalled_in=%d\nstalled_out=%d\ndelay_ms=%u\ncommands=%lu\n",
                event_name(atomic_load(&fstate)), atomic_load(&in_bytes), atomic_load(&out_bytes),
                atomic_load(&out_errors), atomic_load(&out_streams), stalled_in, stalled_out, delay_ms, commands);
        pthread_mutex_unlock(&lock);
        if (fclose(f) != 0 || rename(tmp, opt.status) < 0)
                say("cannot write %s: %m", opt.status);
        pthread_mutex_unlock(&status_lock);
}

/* ---- endpoint threads ---- */

static void on_interrupt_signal(int sig) {
        (void) sig; /* only interrupts a blocking read/write (no SA_RESTART) */
}

/* Wait DELAY_MS (or until the fault state changes); returns with LOCK held
 * and the current delay finished. */
static void wait_delay_locked(void) {
        while (delay_ms > 0) {
                unsigned ms = delay_ms;
                struct timespec until;
                int r;

                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += ms / 1000;
                until.tv_nsec += (long) (ms % 1000) * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                r = pthread_cond_timedwait(&cond, &lock, &until);
                if (r == ETIMEDOUT)
                        return;
                if (delay_ms == ms)
                        continue; /* some other change: keep waiting the same delay */
                /* the delay changed: start over with the new one */
        }
}

/* Halt EP by I/O in the wrong direction (FunctionFS's way). 0 or -errno. */
static int halt_endpoint(int fd, bool in) {
        uint8_t b[512] = {};
        ssize_t n = in ? read(fd, b, sizeof(b)) : write(fd, b, sizeof(b));

        if (n < 0 && errno == EBADMSG)
                return 0; /* halted */
        return n < 0 ? -errno : -EPROTO;
}

/* Before each transfer of an endpoint thread: apply the stall state (halting
 * and clearing outside the lock: both wait until the function is enabled)
 * and the delay. Returns once I/O may proceed. */
static void ep_gate(bool in) {
        bool *want = in ? &want_stall_in : &want_stall_out, *stalled = in ? &stalled_in : &stalled_out;
        int fd = in ? ep_in : ep_out;
        const char *name = in ? "IN" : "OUT";

        pthread_mutex_lock(&lock);
        for (;;) {
                if (*want && !*stalled) {
                        int r;

                        pthread_mutex_unlock(&lock);
                        r = halt_endpoint(fd, in);
                        pthread_mutex_lock(&lock);
                        if (r == 0) {
                                *stalled = true;
                                say("%s endpoint halted (stall)", name);
                        } else {
                                if (r != -EINTR)
                                        say("halting %s failed: %s; retrying", name, strerror(-r));
                                pthread_mutex_unlock(&lock);
                                usleep(50000);
                                pthread_mutex_lock(&lock);
                        }
                        continue;
                }
                if (!*want && *stalled) {
                        int r;

                        /* Also outside the lock: it waits for the function to be enabled. */
                        pthread_mutex_unlock(&lock);
                        r = ioctl(fd, FUNCTIONFS_CLEAR_HALT) < 0 ? -errno : 0;
                        pthread_mutex_lock(&lock);
                        if (r < 0)
                                say("clearing the %s halt: %s", name, strerror(-r));
                        else
                                say("%s halt cleared", name);
                        *stalled = false;
                        continue;
                }
                if (*stalled) {
                        pthread_cond_wait(&cond, &lock);
                        continue;
                }
                wait_delay_locked();
                if (*want)
                        continue; /* a stall came during the delay */
                break;
        }
        pthread_mutex_unlock(&lock);
}

static void *in_main(void *arg) {
        uint8_t *buf = malloc(opt.chunk);
        uint64_t offset = 0;

        (void) arg;
        if (!buf)
                die("out of memory");
        zc_pattern_fill(buf, offset, opt.chunk);
        for (;;) {
                ssize_t n;

                ep_gate(true);
                n = write(ep_in, buf, opt.chunk);
                if (n < 0) {
                        /* EINTR: a command came (nothing counted, the chunk is sent again);
                         * ESHUTDOWN: the function was disabled (host reset, unplug). */
                        if (errno == EINTR)
                                say("IN write interrupted by a command: chunk at stream byte %" PRIu64
                                    " taken back", offset);
                        else if (errno != ESHUTDOWN)
                                say("IN write: %m");
                        if (errno != EINTR)
                                usleep(20000);
                        continue;
                }
                if ((size_t) n != opt.chunk)
                        say("IN write sent %zd of %zu bytes", n, opt.chunk);
                offset += (uint64_t) n;
                atomic_fetch_add(&in_bytes, (uint64_t) n);
                zc_pattern_fill(buf, offset, opt.chunk);
        }
        return NULL;
}

/* Check N bytes the host sent, continuing the stream at *OFFSET; a new stream
 * (from byte 0) may begin at any word of it. */
static void check_out(const uint8_t *p, size_t n, uint64_t *offset) {
        static unsigned reported;

        while (n > 0) {
                size_t good = zc_pattern_check(p, *offset, n), back;
                uint64_t w = 0;

                if (good == n) {
                        *offset += n;
                        break;
                }
                /* Go back to the start of the word holding the first wrong byte:
                 * a new stream starts on a word. */
                back = (size_t) ((*offset + good) % 8);
                if (back > good)
                        back = good; /* the word began in an earlier read */
                good -= back;
                *offset += good;
                p += good;
                n -= good;
                if (*offset % 8 == 0 && n >= 8) {
                        memcpy(&w, p, 8);
                        if (le64toh(w) == zc_pattern_word(0)) {
                                atomic_fetch_add(&out_streams, 1);
                                *offset = 0;
                                continue;
                        }
                }
                atomic_fetch_add(&out_errors, 1);
                {
                        size_t bad = zc_pattern_check(p, *offset, n);

                        if (reported++ < 5)
                                say("OUT DATA MISMATCH at stream byte %" PRIu64 ": got 0x%02x, expected 0x%02x",
                                    *offset + bad, p[bad], zc_pattern_byte(*offset + bad));
                }
                /* Count it and go on with the next word (a corrupted word stays one
                 * error; lost or repeated data makes every later word one). */
                if (*offset % 8 == 0 && n >= 8) {
                        *offset += 8;
                        p += 8;
                        n -= 8;
                        continue;
                }
                *offset += n;
                break;
        }
}

static void *out_main(void *arg) {
        uint8_t *buf = malloc(opt.chunk);
        uint64_t offset = 0;
        bool first = true;

        (void) arg;
        if (!buf)
                die("out of memory");
        for (;;) {
                ssize_t n;

                ep_gate(false);
                n = read(ep_out, buf, opt.chunk);
                if (n < 0) {
                        if (errno == EINTR)
                                say("OUT read interrupted by a command");
                        else if (errno != ESHUTDOWN)
                                say("OUT read: %m");
                        if (errno != EINTR)
                                usleep(20000);
                        continue;
                }
                if (first && n > 0) {
                        atomic_fetch_add(&out_streams, 1); /* the first stream, from byte 0 */
                        first = false;
                }
                check_out(buf, (size_t) n, &offset);
                atomic_fetch_add(&out_bytes, (uint64_t) n);
        }
        return NULL;
}

/* ---- ep0 events ---- */

static void *ep0_main(void *arg) {
        struct usb_functionfs_event ev[4];

        (void) arg;
        for (;;) {
                ssize_t n = read(ep0, ev, sizeof(ev));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        say("ep0 read: %m");
                        usleep(100000);
                        continue;
                }
                for (size_t i = 0; i < (size_t) n / sizeof(ev[0]); i++) {
                        int type = ev[i].type;

                        if (type == FUNCTIONFS_SETUP) {
                                const struct usb_ctrlrequest *s = &ev[i].u.setup;
                                uint8_t b = 0;

                                say("setup request type 0x%02x request 0x%02x: not supported, stalling",
                                    s->bRequestType, s->bRequest);
                                /* I/O against the request's direction stalls ep0. */
                                if (s->bRequestType & USB_DIR_IN)
                                        (void) !read(ep0, &b, 0);
                                else
                                        (void) !write(ep0, &b, 0);
                                continue;
                        }
                        atomic_store(&fstate, type);
                        say("event: %s", type == FUNCTIONFS_BIND      ? "bind" :
                                         type == FUNCTIONFS_UNBIND    ? "unbind" :
                                         type == FUNCTIONFS_ENABLE    ? "enable" :
                                         type == FUNCTIONFS_DISABLE   ? "disable" :
                                         type == FUNCTIONFS_SUSPEND   ? "suspend" :
                                         type == FUNCTIONFS_RESUME    ? "resume" : "unknown");
                }
                write_status();
        }
        return NULL;
}

/* ---- control ---- */

static void on_exit_signal(int sig) {
        char c = (char) sig;

        (void) !write(wake_pipe[1], &c, 1);
}

static void kick_endpoints(void) {
        pthread_cond_broadcast(&cond);
        pthread_kill(in_thread, SIGUSR2);
        pthread_kill(out_thread, SIGUSR2);
}

static void __attribute__((noreturn)) disconnect(const char *why) {
        int code = atomic_load(&out_errors) ? 1 : 0;

        say("disconnect (%s): in_bytes=%" PRIuFAST64 " out_bytes=%" PRIuFAST64 " out_errors=%" PRIuFAST64
            "; exiting, FunctionFS unbinds the gadget", why, atomic_load(&in_bytes), atomic_load(&out_bytes),
            atomic_load(&out_errors));
        atomic_store(&fstate, FUNCTIONFS_UNBIND);
        write_status();
        /* exit() closes ep0 and the endpoint files with everything else. */
        _exit(code);
}

static void command(char *line) {
        char *end = line + strlen(line);
        unsigned long v;

        while (end > line && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
                *--end = '\0';
        if (!*line)
                return;
        say("command: %s", line);
        pthread_mutex_lock(&lock);
        commands++;
        if (strcmp(line, "stall") == 0 || strcmp(line, "stall-in") == 0)
                want_stall_in = true;
        else if (strcmp(line, "stall-out") == 0)
                want_stall_out = true;
        else if (strcmp(line, "unstall") == 0)
                want_stall_in = want_stall_out = false;
        else if (strncmp(line, "delay ", 6) == 0 && (v = strtoul(line + 6, &end, 10), *end == '\0' && v <= 600000))
                delay_ms = (unsigned) v;
        else if (strcmp(line, "disconnect") == 0) {
                pthread_mutex_unlock(&lock);
                disconnect("command");
        } else if (strcmp(line, "status") != 0)
                say("unknown command '%s' (stall, stall-out, unstall, delay MS, status, disconnect)", line);
        pthread_mutex_unlock(&lock);
        kick_endpoints();
        /* Stalls are set by the endpoint threads: give them a moment so the
         * status file says whether it took. */
        for (int i = 0; i < 100; i++) {
                bool settled;

                pthread_mutex_lock(&lock);
                settled = stalled_in == want_stall_in && stalled_out == want_stall_out;
                pthread_mutex_unlock(&lock);
                if (settled)
                        break;
                usleep(20000);
        }
        write_status();
}

static void control_loop(void) {
        char buf[1024];
        size_t have = 0;
        int fifo = -1;
        uint64_t last_in = UINT64_MAX, last_out = UINT64_MAX;

        if (opt.control) {
                if (mkfifo(opt.control, 0600) < 0 && errno != EEXIST)
                        die("mkfifo %s: %m", opt.control);
                /* O_RDWR: we never see EOF when a writer closes. */
                fifo = open(opt.control, O_RDWR | O_CLOEXEC | O_NONBLOCK);
                if (fifo < 0)
                        die("open %s: %m", opt.control);
        }
        for (;;) {
                struct pollfd p[2] = { { .fd = wake_pipe[0], .events = POLLIN }, { .fd = fifo, .events = POLLIN } };
                uint64_t i_b = atomic_load(&in_bytes), o_b = atomic_load(&out_bytes);

                if (i_b != last_in || o_b != last_out) {
                        write_status();
                        last_in = i_b;
                        last_out = o_b;
                }
                if (poll(p, fifo >= 0 ? 2 : 1, 500) < 0 && errno != EINTR)
                        die("poll: %m");
                if (p[0].revents & POLLIN) {
                        char c = 0;

                        (void) !read(wake_pipe[0], &c, 1);
                        disconnect(c == SIGINT ? "SIGINT" : "SIGTERM");
                }
                if (fifo >= 0 && (p[1].revents & POLLIN)) {
                        ssize_t n = read(fifo, buf + have, sizeof(buf) - 1 - have);
                        char *nl;

                        if (n <= 0)
                                continue;
                        have += (size_t) n;
                        buf[have] = '\0';
                        while ((nl = strchr(buf, '\n'))) {
                                *nl = '\0';
                                command(buf);
                                have -= (size_t) (nl + 1 - buf);
                                memmove(buf, nl + 1, have + 1);
                        }
                        if (have == sizeof(buf) - 1) {
                                say("command line too long: dropped");
                                have = 0;
                        }
                }
        }
}

/* ---- setup ---- */

static int open_in_dir(const char *name, int flags) {
        char path[4096];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", opt.dir, name);
        fd = open(path, flags | O_CLOEXEC);
        if (fd < 0)
                die("open %s: %m%s", path,
                    errno == ENOENT ? " (is functionfs mounted there? gadget.sh: gadget_add NAME ffs)" : "");
        return fd;
}

static size_t parse_chunk(const char *s) {
        char *end;
        unsigned long v = strtoul(s, &end, 0);

        if (*end == 'K' || *end == 'k') {
                v <<= 10;
                end++;
        }
        if (*end != '\0' || v == 0 || v > MAX_CHUNK || v % 512 != 0) {
                fprintf(stderr, "ffs-gadget: --chunk '%s': a multiple of 512 up to 1M\n", s);
                exit(2);
        }
        return v;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "dir",     required_argument, NULL, 'd' },
                { "control", required_argument, NULL, 'c' },
                { "status",  required_argument, NULL, 's' },
                { "ready",   required_argument, NULL, 'r' },
                { "chunk",   required_argument, NULL, 'k' },
                { "help",    no_argument,       NULL, 'h' },
                {}
        };
        struct sigaction sa = { .sa_handler = on_interrupt_signal };
        pthread_t ep0_thread;
        int c;

        t0 = now();
        atomic_store(&fstate, -1);
        while ((c = getopt_long(argc, argv, "d:c:s:r:k:h", options, NULL)) >= 0) {
                switch (c) {
                case 'd': opt.dir = optarg; break;
                case 'c': opt.control = optarg; break;
                case 's': opt.status = optarg; break;
                case 'r': opt.ready = optarg; break;
                case 'k': opt.chunk = parse_chunk(optarg); break;
                case 'h':
                        printf("Usage: ffs-gadget --dir FUNCTIONFS_MOUNT [--control FIFO] [--status FILE] "
                               "[--ready FILE] [--chunk 64K]\n");
                        return 0;
                default:
                        return 2;
                }
        }
        if (!opt.dir || optind != argc) {
                fprintf(stderr, "ffs-gadget: --dir FUNCTIONFS_MOUNT is required (and nothing else); see --help\n");
                return 2;
        }

        /* SIGUSR2 only interrupts blocked endpoint I/O; SIGTERM/SIGINT disconnect. */
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR2, &sa, NULL) < 0)
                die("sigaction: %m");
        if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                die("pipe2: %m");
        sa.sa_handler = on_exit_signal;
        if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
                die("sigaction: %m");
        signal(SIGPIPE, SIG_IGN);
        /* A blocked mask is inherited across exec: make sure ours reach us (the threads
         * inherit this mask). */
        {
                sigset_t set;

                sigemptyset(&set);
                sigaddset(&set, SIGUSR2);
                sigaddset(&set, SIGTERM);
                sigaddset(&set, SIGINT);
                if (pthread_sigmask(SIG_UNBLOCK, &set, NULL) != 0)
                        die("pthread_sigmask failed");
        }

        ep0 = open_in_dir("ep0", O_RDWR);
        if (write(ep0, &descriptors, sizeof(descriptors)) != (ssize_t) sizeof(descriptors))
                die("writing the descriptors to %s/ep0: %m", opt.dir);
        if (write(ep0, &strings, sizeof(strings)) != (ssize_t) sizeof(strings))
                die("writing the strings to %s/ep0: %m", opt.dir);
        /* FunctionFS numbers the endpoint files in descriptor order. */
        ep_in = open_in_dir("ep1", O_RDWR);
        ep_out = open_in_dir("ep2", O_RDWR);

        if (pthread_create(&in_thread, NULL, in_main, NULL) != 0 ||
            pthread_create(&out_thread, NULL, out_main, NULL) != 0 ||
            pthread_create(&ep0_thread, NULL, ep0_main, NULL) != 0)
                die("pthread_create failed");

        write_status();
        if (opt.ready) {
                FILE *f = fopen(opt.ready, "we");
                if (!f || fprintf(f, "%d\n", (int) getpid()) < 0 || fclose(f) != 0)
                        die("writing %s: %m", opt.ready);
        }
        say("ready: descriptors written to %s/ep0, endpoints ep1 (bulk IN) and ep2 (bulk OUT), chunk %zu", opt.dir,
            opt.chunk);
        control_loop();
        return 0;
}
