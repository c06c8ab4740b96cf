/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* zcusb-remote-connect: zcusbd's network hand. Started per connection by
 * zcusb-remote.socket (Accept=yes, the connection on fd 3), it reads one
 * RemoteRequest, connects to the USB/IP server with a deadline, does the
 * OP_REQ_IMPORT exchange with every reply field checked, and passes the
 * connected socket back to zcusbd with the device's description. It keeps
 * no state and holds no privilege (DynamicUser=, no capabilities). */
#include <fcntl.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "remote-wire.h"
#include "usbip-proto.h"
#include "util.h"

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

_printf_(3, 4) static int reply_fail(RemoteReply *reply, RemoteFailure failure, const char *fmt, ...) {
        va_list ap;

        reply->failure = failure;
        va_start(ap, fmt);
        vsnprintf(reply->message, sizeof(reply->message), fmt, ap);
        va_end(ap);
        return -1;
}

/* Wait for EVENTS on FD until DEADLINE: 1 ready, 0 timed out, < 0 error. */
static int wait_fd(int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                uint64_t now = now_ms();
                int r;

                if (now >= deadline)
                        return 0;
                r = poll(&p, 1, (int) (deadline - now));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 1;
        }
}

/* Read SIZE bytes: returns how many came (fewer on EOF), -ETIMEDOUT, or -errno. */
static ssize_t read_full(int fd, uint8_t *buf, size_t size, uint64_t deadline) {
        size_t got = 0;

        while (got < size) {
                ssize_t n;
                int r = wait_fd(fd, POLLIN, deadline);

                if (r == 0)
                        return -ETIMEDOUT;
                if (r < 0)
                        return r;
                n = recv(fd, buf + got, size - got, MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        return (ssize_t) got;
}

static int connect_server(const RemoteRequest *req, uint64_t deadline, RemoteReply *reply) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
        struct addrinfo *ai = NULL;
        char service[8];
        int r, last_error = ECONNREFUSED;

        snprintf(service, sizeof(service), "%u", req->port);
        r = getaddrinfo(req->host, service, &hints, &ai);
        if (r != 0)
                return reply_fail(reply, REMOTE_FAILURE_UNREACHABLE, "cannot resolve '%s': %s", req->host,
                                  r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));

        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                _cleanup_close_ int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                socklen_t len = sizeof(last_error);

                if (fd < 0) {
                        last_error = errno;
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
                        last_error = errno;
                        continue;
                }
                r = wait_fd(fd, POLLOUT, deadline);
                if (r == 0) {
                        freeaddrinfo(ai);
                        return reply_fail(reply, REMOTE_FAILURE_TIMEOUT, "connecting to %s port %u timed out",
                                          req->host, req->port);
                }
                if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &last_error, &len) < 0) {
                        last_error = r < 0 ? -r : errno;
                        continue;
                }
                if (last_error != 0)
                        continue;
                freeaddrinfo(ai);
                return TAKE_FD(fd);
        }
        freeaddrinfo(ai);
        return reply_fail(reply, REMOTE_FAILURE_UNREACHABLE, "cannot connect to %s port %u: %s", req->host,
                          req->port, strerror(last_error));
}

/* The import itself. Returns the connected socket, or -1 with REPLY filled. */
static int import_device(const RemoteRequest *req, RemoteReply *reply) {
        uint64_t deadline = now_ms() + req->timeout_ms;
        uint8_t request[USBIP_IMPORT_REQUEST_SIZE], header[USBIP_OP_HEADER_SIZE], device[USBIP_DEVICE_SIZE];
        char why[200];
        uint32_t status;
        ssize_t n;
        int one = 1, r;
        _cleanup_close_ int fd = -EBADF;

        fd = connect_server(req, deadline, reply);
        if (fd < 0)
                return -1;
        /* As usbip(8) does: the kernel's URB traffic wants no Nagle delay,
         * and keepalive notices a peer that vanished without a FIN. */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));

        (void) usbip_build_import_request(req->busid, request);
        r = wait_fd(fd, POLLOUT, deadline);
        if (r <= 0 || send(fd, request, sizeof(request), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t) sizeof(request))
                return reply_fail(reply, r == 0 ? REMOTE_FAILURE_TIMEOUT : REMOTE_FAILURE_UNREACHABLE,
                                  "cannot send the import request to %s port %u: %s", req->host, req->port,
                                  r == 0 ? "timed out" : strerror(r < 0 ? -r : errno));

        n = read_full(fd, header, sizeof(header), deadline);
        if (n == -ETIMEDOUT)
                return reply_fail(reply, REMOTE_FAILURE_TIMEOUT, "%s port %u did not answer the import within %u ms",
                                  req->host, req->port, req->timeout_ms);
        if (n < 0)
                return reply_fail(reply, REMOTE_FAILURE_UNREACHABLE, "reading from %s port %u failed: %s", req->host,
                                  req->port, strerror((int) -n));
        if (n < (ssize_t) sizeof(header))
                return reply_fail(reply, REMOTE_FAILURE_PROTOCOL,
                                  "truncated reply: %s port %u closed the connection after %zd of %d header bytes",
                                  req->host, req->port, n, USBIP_OP_HEADER_SIZE);
        r = usbip_parse_reply_header(header, &status, why, sizeof(why));
        if (r == -ECONNREFUSED)
                return reply_fail(reply, REMOTE_FAILURE_REFUSED, "%s port %u, bus id %s: %s", req->host, req->port,
                                  req->busid, why);
        if (r < 0)
                return reply_fail(reply, REMOTE_FAILURE_PROTOCOL, "%s port %u is not a USB/IP 1.1.1 server: %s",
                                  req->host, req->port, why);

        n = read_full(fd, device, sizeof(device), deadline);
        if (n == -ETIMEDOUT)
                return reply_fail(reply, REMOTE_FAILURE_TIMEOUT,
                                  "truncated reply: %s port %u sent no device description within %u ms", req->host,
                                  req->port, req->timeout_ms);
        if (n < 0)
                return reply_fail(reply, REMOTE_FAILURE_UNREACHABLE, "reading from %s port %u failed: %s", req->host,
                                  req->port, strerror((int) -n));
        if (n < (ssize_t) sizeof(device))
                return reply_fail(reply, REMOTE_FAILURE_PROTOCOL,
                                  "truncated reply: %s port %u closed the connection after %zd of %d device bytes",
                                  req->host, req->port, n, USBIP_DEVICE_SIZE);
        r = usbip_parse_device(device, req->busid, &reply->device, why, sizeof(why));
        if (r < 0)
                return reply_fail(reply, REMOTE_FAILURE_PROTOCOL, "%s port %u sent a bad device description: %s",
                                  req->host, req->port, why);

        /* Nothing may follow until vhci-hcd submits the first URB: more
         * bytes would be read by the kernel as URB replies. A short grace
         * catches a reply split over two segments. */
        if (wait_fd(fd, POLLIN, now_ms() + 20) > 0) {
                uint8_t extra[64];

                n = recv(fd, extra, sizeof(extra), MSG_PEEK | MSG_DONTWAIT);
                if (n > 0)
                        return reply_fail(reply, REMOTE_FAILURE_PROTOCOL,
                                          "oversized reply: %s port %u sent more than the %d-byte import reply",
                                          req->host, req->port, USBIP_IMPORT_REPLY_SIZE);
                if (n == 0)
                        return reply_fail(reply, REMOTE_FAILURE_UNREACHABLE,
                                          "%s port %u closed the connection right after the import", req->host,
                                          req->port);
        }
        /* The kernel's rx/tx threads want a blocking socket. */
        r = fcntl(fd, F_GETFL);
        if (r < 0 || fcntl(fd, F_SETFL, r & ~O_NONBLOCK) < 0)
                return reply_fail(reply, REMOTE_FAILURE_UNREACHABLE, "cannot set up the socket: %s", strerror(errno));
        reply->failure = REMOTE_OK;
        snprintf(reply->message, sizeof(reply->message), "imported %s from %s port %u", req->busid, req->host,
                 req->port);
        return TAKE_FD(fd);
}

static int check_request(const RemoteRequest *req, RemoteReply *reply) {
        if (req->version != REMOTE_WIRE_VERSION)
                return reply_fail(reply, REMOTE_FAILURE_BAD_REQUEST, "request version %u, expected %u", req->version,
                                  REMOTE_WIRE_VERSION);
        if (strnlen(req->host, sizeof(req->host)) >= sizeof(req->host) || isempty(req->host))
                return reply_fail(reply, REMOTE_FAILURE_BAD_REQUEST, "bad host name");
        if (strnlen(req->busid, sizeof(req->busid)) >= sizeof(req->busid) || !usbip_busid_is_valid(req->busid))
                return reply_fail(reply, REMOTE_FAILURE_BAD_REQUEST, "bad bus id");
        if (req->port == 0 || req->timeout_ms == 0 || req->timeout_ms > 600 * 1000)
                return reply_fail(reply, REMOTE_FAILURE_BAD_REQUEST, "bad port or timeout");
        return 0;
}

static int send_reply(int conn, const RemoteReply *reply, int fd) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) reply, .iov_len = sizeof(*reply) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (fd >= 0) {
                struct cmsghdr *c;

                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        return sendmsg(conn, &mh, MSG_NOSIGNAL) == (ssize_t) sizeof(*reply) ? 0 : -errno;
}

static void help(void) {
        printf("Usage: zcusb-remote-connect\n\n"
               "zcusbd's USB/IP connect helper. Started by zcusb-remote.socket for each\n"
               "connection from zcusbd (the connection on fd 3); not for interactive use.\n"
               "It connects to a USB/IP server, imports one device and hands the socket\n"
               "to zcusbd. See zcusbd(8).\n");
}

int main(int argc, char *argv[]) {
        RemoteRequest req = {};
        RemoteReply reply = { .version = REMOTE_WIRE_VERSION };
        _cleanup_close_ int sock = -EBADF;
        int conn, r;
        ssize_t n;

        if (argc > 1) {
                if (streq(argv[1], "--help") || streq(argv[1], "-h")) {
                        help();
                        return 0;
                }
                if (streq(argv[1], "--version")) {
                        printf("zcusb-remote-connect %s\n", ZCUSB_VERSION);
                        return 0;
                }
                fprintf(stderr, "zcusb-remote-connect: takes no arguments; see --help\n");
                return 2;
        }
        r = sd_listen_fds(true);
        if (r != 1) {
                fprintf(stderr, "zcusb-remote-connect: expected one connection from zcusb-remote.socket "
                        "(Accept=yes), got %d file descriptors\n", r < 0 ? 0 : r);
                return 2;
        }
        conn = SD_LISTEN_FDS_START;

        /* zcusbd sends its request at once; a peer that does not is gone. */
        if (wait_fd(conn, POLLIN, now_ms() + 5000) <= 0)
                return 1;
        n = recv(conn, &req, sizeof(req), MSG_TRUNC);
        if (n != (ssize_t) sizeof(req))
                (void) reply_fail(&reply, REMOTE_FAILURE_BAD_REQUEST, "request of %zd bytes, expected %zu", n,
                                  sizeof(req));
        else if (check_request(&req, &reply) >= 0) {
                /* getaddrinfo() has no deadline of its own: past the
                 * request's, SIGALRM ends us and zcusbd reports a timeout. */
                alarm(req.timeout_ms / 1000 + 2);
                sock = import_device(&req, &reply);
                alarm(0);
        }
        if (reply.failure != REMOTE_OK)
                fprintf(stderr, "zcusb-remote-connect: %s\n", reply.message);
        r = send_reply(conn, &reply, sock);
        if (r < 0) {
                fprintf(stderr, "zcusb-remote-connect: cannot answer zcusbd: %s\n", strerror(-r));
                return 1;
        }
        return reply.failure == REMOTE_OK ? 0 : 1;
}
