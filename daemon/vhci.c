/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>

#include "log.h"
#include "usbip-proto.h"
#include "util.h"
#include "vhci.h"

int vhci_parse_status(const char *text, VhciPort **ports, size_t *n_ports) {
        const char *line = text;
        bool header = false;

        while (line && *line) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                char buf[160], hub[4], busid[32];
                unsigned port, status, devid;
                VhciPort *p;

                if (len == 0 || len >= sizeof(buf))
                        return -EINVAL;
                memcpy(buf, line, len);
                buf[len] = '\0';
                line = nl ? nl + 1 : NULL;

                if (!header) {
                        if (!startswith(buf, "hub port sta"))
                                return -EINVAL;
                        header = true;
                        continue;
                }
                /* hub port sta spd dev sockfd local_busid */
                if (sscanf(buf, "%3s %u %u %*u %x %*s %31s", hub, &port, &status, &devid, busid) != 5)
                        return -EINVAL;
                if (!streq(hub, "hs") && !streq(hub, "ss"))
                        return -EINVAL;
                p = reallocarray(*ports, *n_ports + 1, sizeof(VhciPort));
                if (!p)
                        return -ENOMEM;
                *ports = p;
                p[*n_ports] = (VhciPort) {
                        .port = port, .super_speed = streq(hub, "ss"), .status = status, .devid = devid,
                };
                strcpy(p[*n_ports].local_busid, busid);
                (*n_ports)++;
        }
        return header ? 0 : -EINVAL;
}

int vhci_pick_port(const VhciPort *ports, size_t n_ports, uint32_t speed, const uint32_t *skip, size_t n_skip) {
        bool want_ss = speed == USBIP_SPEED_SUPER;

        for (size_t i = 0; i < n_ports; i++) {
                bool skipped = false;

                if (ports[i].super_speed != want_ss || ports[i].status != VHCI_STATUS_NULL)
                        continue;
                for (size_t j = 0; j < n_skip; j++)
                        skipped = skipped || skip[j] == ports[i].port;
                if (!skipped)
                        return (int) ports[i].port;
        }
        return -EBUSY;
}

static int read_text(int dirfd, const char *name, char **ret) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;

        if (fd < 0)
                return -errno;
        for (;;) {
                char *t = realloc(buf, size + 4096 + 1);
                ssize_t n;

                if (!t)
                        return -ENOMEM;
                buf = t;
                n = read(fd, buf + size, 4096);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > 1024 * 1024)
                        return -EFBIG;
        }
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

static int port_compare(const void *a, const void *b) {
        const VhciPort *x = a, *y = b;

        return x->port < y->port ? -1 : x->port > y->port;
}

int vhci_read_ports(VhciPort **ret, size_t *ret_n) {
        _cleanup_free_ VhciPort *ports = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;
        DIR *d;
        int r = 0;

        fd = open(VHCI_SYSFS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -EBADF; /* the DIR owns it now */
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                _cleanup_free_ char *text = NULL;

                /* "status", "status.1", ...: one per controller */
                if (!streq(de->d_name, "status") && !startswith(de->d_name, "status."))
                        continue;
                r = read_text(dirfd(d), de->d_name, &text);
                if (r >= 0)
                        r = vhci_parse_status(text, &ports, &n);
        }
        closedir(d);
        if (r < 0)
                return r;
        /* Lowest free port first, as usbip(8) picks: readdir's order is none. */
        if (n > 0)
                qsort(ports, n, sizeof(VhciPort), port_compare);
        *ret = TAKE_PTR(ports);
        *ret_n = n;
        return 0;
}

static int write_attr(const char *name, const char *text) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *path = NULL;
        ssize_t n;

        if (asprintf(&path, "%s/%s", VHCI_SYSFS_DIR, name) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = write(fd, text, strlen(text));
        if (n < 0)
                return -errno;
        return (size_t) n == strlen(text) ? 0 : -EIO;
}

int vhci_socket_set_link_timeout(int sockfd, uint32_t seconds) {
        int one = 1, idle = (int) (seconds + 1) / 2, interval = (int) (seconds + 5) / 6, count = 3;
        unsigned user_timeout_ms = seconds * 1000;

        if (seconds == 0)
                return 0;
        if (idle < 1)
                idle = 1;
        if (interval < 1)
                interval = 1;
        if (setsockopt(sockfd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0 ||
            setsockopt(sockfd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
            setsockopt(sockfd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) < 0 ||
            setsockopt(sockfd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count)) < 0 ||
            setsockopt(sockfd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms)) < 0)
                return -errno;
        return 0;
}

int vhci_attach(int sockfd, uint32_t devid, uint32_t speed, uint32_t *ret_port) {
        uint32_t tried[8];
        size_t n_tried = 0;

        /* Another importer (usbip attach by hand) may take the port we
         * picked: vhci then says EINVAL ("already used") and we go on. */
        for (;;) {
                _cleanup_free_ VhciPort *ports = NULL;
                char line[64];
                size_t n = 0;
                int r, port;

                r = vhci_read_ports(&ports, &n);
                if (r < 0)
                        return r;
                port = vhci_pick_port(ports, n, speed, tried, n_tried);
                if (port < 0)
                        return port;
                snprintf(line, sizeof(line), "%d %d %u %u", port, sockfd, devid, speed);
                r = write_attr("attach", line);
                if (r >= 0) {
                        *ret_port = (uint32_t) port;
                        return 0;
                }
                if (r != -EINVAL || n_tried == ELEMENTSOF(tried))
                        return r;
                log_debug("vhci port %d was taken under us, trying another.", port);
                tried[n_tried++] = (uint32_t) port;
        }
}

int vhci_detach(uint32_t port) {
        char line[16];

        snprintf(line, sizeof(line), "%u", port);
        return write_attr("detach", line);
}

/* PORT as its status table says now; -ENOENT when no controller has it. */
static int vhci_read_port(uint32_t port, VhciPort *ret) {
        _cleanup_free_ VhciPort *ports = NULL;
        size_t n = 0;
        int r;

        r = vhci_read_ports(&ports, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (ports[i].port == port) {
                        *ret = ports[i];
                        return 0;
                }
        return -ENOENT;
}

int vhci_detach_if_ours(uint32_t port, uint32_t devid) {
        VhciPort p;
        int r;

        r = vhci_read_port(port, &p);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (p.status == VHCI_STATUS_NULL || p.devid != devid)
                return 0;
        r = vhci_detach(port);
        return r < 0 ? r : 1;
}

int vhci_port_device(uint32_t port, char ret[static 32]) {
        VhciPort p;
        int r;

        r = vhci_read_port(port, &p);
        if (r < 0)
                return r;
        strcpy(ret, streq(p.local_busid, "0-0") ? "" : p.local_busid);
        return 0;
}
