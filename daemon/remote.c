/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "device.h"
#include "log.h"
#include "manager.h"
#include "module.h"
#include "remote-record.h"
#include "remote-wire.h"
#include "remote.h"
#include "util.h"
#include "vhci.h"
#include "zcusb-dbus.h"

/* From the sysfs write to the usb_device's uevent: enumeration over the
 * network, under TCG too. */
#define REMOTE_ENUMERATE_TIMEOUT_USEC (20 * USEC_PER_SEC)
#define REMOTE_BACKOFF_MAX_SEC 60

static const char *const state_names[_REMOTE_STATE_MAX] = {
        [REMOTE_CONNECTING] = "connecting",
        [REMOTE_ATTACHING]  = "attaching",
        [REMOTE_ATTACHED]   = "attached",
        [REMOTE_WAITING]    = "waiting",
        [REMOTE_DETACHED]   = "detached",
};

const char *remote_state_to_string(RemoteState s) {
        return s < _REMOTE_STATE_MAX ? state_names[s] : "?";
}

int remote_new(Manager *m, const char *host, uint16_t port, const char *busid, bool persistent, uid_t owner,
               Remote **ret) {
        Remote *r;

        if (!host_name_is_valid(host) || !usbip_busid_is_valid(busid) || port == 0)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        *r = (Remote) {
                .manager = m,
                .port = port,
                .persistent = persistent,
                .owner = owner,
                .helper_fd = -EBADF,
                .last_error = strdup(""),
                .device_path = strdup("/"),
        };
        if (!r->last_error || !r->device_path) {
                free(r->last_error);
                free(r->device_path);
                free(r);
                return -ENOMEM;
        }
        strcpy(r->host, host);
        strcpy(r->busid, busid);
        TAILQ_INSERT_TAIL(&m->remotes, r, link);
        m->n_remotes++;
        *ret = r;
        return 0;
}

static void remote_stop_helper(Remote *r) {
        r->helper_source = sd_event_source_disable_unref(r->helper_source);
        closep(&r->helper_fd);
        r->helper_fd = -EBADF;
}

static void remote_reply_error(Remote *r, const char *name, const char *message) {
        if (!r->pending)
                return;
        (void) sd_bus_reply_method_errorf(r->pending, name, "%s", message);
        r->pending = sd_bus_message_unref(r->pending);
}

/* The port is ours no longer: detached first when DETACH (only while it
 * holds our import), then its record goes, unless that detach failed: the
 * next zcusbd's start tries again. */
static void remote_drop_port(Remote *r, bool detach) {
        int k = 0;

        if (!r->has_port)
                return;
        if (detach) {
                k = vhci_detach_if_ours(r->vhci_port, usbip_devid(&r->device));
                if (k == -EINVAL)
                        k = 0; /* vhci-hcd freed it meanwhile */
                if (k < 0)
                        log_warning_errno(k, "Cannot detach vhci port %u (%s:%u/%s): %m", r->vhci_port, r->host,
                                          r->port, r->busid);
        }
        if (k >= 0) {
                k = remote_record_remove(r->manager->runtime_dir, r->vhci_port);
                if (k < 0)
                        log_warning_errno(k, "Cannot remove the record of vhci port %u: %m", r->vhci_port);
        }
        r->has_port = false;
}

static void remote_forget_device(Remote *r) {
        r->device_syspath = mfree_str(r->device_syspath);
        (void) free_and_strdup(&r->device_path, "/");
}

Remote *remote_free(Remote *r) {
        Manager *m;

        if (!r)
                return NULL;
        m = r->manager;
        remote_reply_error(r, ZCUSB_ERROR_FAILED, "The remote device was dropped before it was attached.");
        remote_stop_helper(r);
        r->timer = sd_event_source_disable_unref(r->timer);
        /* Who attached it detaches it: nothing outlives zcusbd on vhci
         * (after a crash, the next start detaches: remote-record.h). */
        remote_drop_port(r, true);
        TAILQ_REMOVE(&m->remotes, r, link);
        m->n_remotes--;
        free(r->last_error);
        free(r->device_syspath);
        free(r->device_path);
        free(r);
        return NULL;
}

void remote_free_all(Manager *m) {
        Remote *r;

        while ((r = TAILQ_FIRST(&m->remotes)))
                remote_free(r);
}

static void remote_set_state(Remote *r, RemoteState state) {
        if (r->state == state)
                return;
        log_debug("Remote %s:%u/%s: %s -> %s.", r->host, r->port, r->busid, remote_state_to_string(r->state),
                  remote_state_to_string(state));
        r->state = state;
        remote_emit_changed(r->manager);
}

static int remote_on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Remote *r = userdata;

        (void) s, (void) usec;
        r->timer = sd_event_source_disable_unref(r->timer);
        (void) remote_start(r);
        return 0;
}

/* Persistent ones wait and retry (1 s, 2 s, 4 s ... 60 s); the others end. */
static void remote_retry_or_free(Remote *r) {
        unsigned shift = r->failures < 7 ? r->failures : 6;
        uint64_t delay = (UINT64_C(1) << shift);
        int k;

        if (!r->persistent || r->manager->shutting_down) {
                remote_emit_changed(r->manager);
                remote_free(r);
                return;
        }
        if (delay > REMOTE_BACKOFF_MAX_SEC)
                delay = REMOTE_BACKOFF_MAX_SEC;
        r->failures++;
        remote_set_state(r, REMOTE_WAITING);
        r->timer = sd_event_source_disable_unref(r->timer);
        k = sd_event_add_time_relative(r->manager->event, &r->timer, CLOCK_MONOTONIC, delay * USEC_PER_SEC, 0,
                                       remote_on_retry, r);
        if (k < 0)
                log_warning_errno(k, "Cannot schedule a retry for %s:%u/%s: %m", r->host, r->port, r->busid);
        else
                log_info("Remote %s:%u/%s: retrying in %llu s.", r->host, r->port, r->busid,
                         (unsigned long long) delay);
}

/* The one way a step fails: the caller hears ERROR_NAME, the log says why,
 * the port (if any) is given back. May free R. Returns -EIO. */
_printf_(3, 4) static int remote_fail(Remote *r, const char *error_name, const char *fmt, ...) {
        _cleanup_free_ char *message = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        va_end(ap);
        log_warning("Remote %s:%u/%s: %s", r->host, r->port, r->busid, message ?: "out of memory");
        (void) free_and_strdup(&r->last_error, message ?: "out of memory");
        remote_reply_error(r, error_name, message ?: "out of memory");
        remote_stop_helper(r);
        r->timer = sd_event_source_disable_unref(r->timer);
        remote_drop_port(r, true);
        remote_forget_device(r);
        remote_retry_or_free(r);
        return -EIO;
}

static int remote_on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Remote *r = userdata;

        (void) s, (void) usec;
        r->timer = sd_event_source_disable_unref(r->timer);
        if (r->state == REMOTE_CONNECTING)
                (void) remote_fail(r, ZCUSB_ERROR_TIMEOUT, "No answer from %s port %u within %u s.", r->host, r->port,
                            r->manager->config.remote_timeout_sec);
        else
                (void) remote_fail(r, ZCUSB_ERROR_FAILED,
                            "vhci-hcd accepted %s from %s but no USB device appeared on port %u in time.",
                            r->busid, r->host, r->vhci_port);
        return 0;
}

static int remote_arm_timer(Remote *r, uint64_t usec) {
        r->timer = sd_event_source_disable_unref(r->timer);
        return sd_event_add_time_relative(r->manager->event, &r->timer, CLOCK_MONOTONIC, usec, 0, remote_on_timeout,
                                          r);
}

static const char *failure_error_name(uint32_t failure) {
        switch (failure) {
        case REMOTE_FAILURE_UNREACHABLE: return ZCUSB_ERROR_REMOTE_UNREACHABLE;
        case REMOTE_FAILURE_TIMEOUT:     return ZCUSB_ERROR_TIMEOUT;
        case REMOTE_FAILURE_PROTOCOL:    return ZCUSB_ERROR_REMOTE_PROTOCOL;
        case REMOTE_FAILURE_REFUSED:     return ZCUSB_ERROR_REMOTE_REFUSED;
        }
        return ZCUSB_ERROR_FAILED;
}

/* The helper is less trusted than zcusbd (it talks to the network): its
 * reply is checked like any input. Returns the socket (>= 0) or fails R. */
static int remote_read_reply(Remote *r, RemoteReply *reply) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        struct iovec iov = { .iov_base = reply, .iov_len = sizeof(*reply) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        _cleanup_close_ int fd = -EBADF;
        char why[200];
        ssize_t n;
        int type = 0, domain = 0;
        socklen_t len = sizeof(int);
        struct stat st;
        bool extra_fds = false;

        n = recvmsg(r->helper_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return -EAGAIN;
        if (n < 0)
                return remote_fail(r, ZCUSB_ERROR_FAILED, "The connect helper failed: %m.");
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                        int f;

                        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (fd < 0)
                                fd = f;
                        else {
                                close(f);
                                extra_fds = true;
                        }
                }
        }
        if (n == 0)
                return remote_fail(r, ZCUSB_ERROR_FAILED,
                                   "The connect helper exited without an answer (see journalctl -u "
                                   "'zcusb-remote@*').");
        if (n != (ssize_t) sizeof(*reply) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || extra_fds ||
            reply->version != REMOTE_WIRE_VERSION || reply->failure >= _REMOTE_FAILURE_MAX)
                return remote_fail(r, ZCUSB_ERROR_FAILED, "The connect helper sent a malformed reply.");
        reply->message[sizeof(reply->message) - 1] = '\0';
        if (reply->failure != REMOTE_OK)
                return remote_fail(r, failure_error_name(reply->failure), "%s.", reply->message);

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
            getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || (domain != AF_INET && domain != AF_INET6))
                return remote_fail(r, ZCUSB_ERROR_FAILED, "The connect helper did not pass a TCP socket.");
        if (usbip_device_check(&reply->device, r->busid, why, sizeof(why)) < 0)
                return remote_fail(r, ZCUSB_ERROR_REMOTE_PROTOCOL, "%s port %u sent a bad device description: %s.",
                                   r->host, r->port, why);
        return TAKE_FD(fd);
}

static bool vhci_loaded(void) {
        return access("/sys/module/vhci_hcd", F_OK) >= 0;
}

/* So that a crash of zcusbd does not leave the port attached for good. */
static void remote_record_port(Remote *r) {
        RemoteRecord rec = {
                .vhci_port = r->vhci_port,
                .devid = usbip_devid(&r->device),
                .port = r->port,
        };
        int k;

        strcpy(rec.host, r->host);
        strcpy(rec.busid, r->busid);
        k = remote_record_save(r->manager->runtime_dir, &rec);
        if (k < 0)
                log_warning_errno(k, "Cannot record vhci port %u in %s (%m): if zcusbd crashes, it stays attached.",
                                  r->vhci_port, r->manager->runtime_dir);
}

static int remote_hand_to_vhci(Remote *r, int fd) {
        const UsbipDevice *d = &r->device;
        int k;

        if (!vhci_loaded() && r->manager->config.load_module) {
                k = module_load_by_name("vhci-hcd");
                if (k < 0)
                        log_debug_errno(k, "Cannot load vhci-hcd: %m");
        }
        if (!vhci_loaded())
                return remote_fail(r, ZCUSB_ERROR_FAILED,
                                   "vhci-hcd is not loaded: enable zcusb-vhci.service (systemctl enable --now "
                                   "zcusb-vhci.service) and restart zcusbd.");
        k = vhci_socket_set_link_timeout(fd, r->manager->config.remote_link_timeout_sec);
        if (k < 0)
                log_warning_errno(k, "Cannot set the link timeout of the connection to %s port %u (%m): a server "
                                  "that vanishes is noticed only after the kernel's TCP timeouts.", r->host, r->port);
        k = vhci_attach(fd, usbip_devid(d), d->speed, &r->vhci_port);
        if (k == -EBUSY)
                return remote_fail(r, ZCUSB_ERROR_BUSY, "Every %s vhci-hcd port is in use.",
                                   d->speed == USBIP_SPEED_SUPER ? "SuperSpeed" : "high-speed");
        if (k == -EROFS || k == -EACCES || k == -EPERM)
                return remote_fail(r, ZCUSB_ERROR_FAILED,
                                   "zcusbd may not write to " VHCI_SYSFS_DIR "/attach (%s): vhci-hcd must be loaded "
                                   "before zcusbd starts (zcusb-vhci.service).", strerror(-k));
        if (k < 0)
                return remote_fail(r, ZCUSB_ERROR_FAILED, "vhci-hcd refused the device: %s.", strerror(-k));
        r->has_port = true;
        log_info("Remote %s:%u/%s (%04x:%04x) handed to vhci-hcd port %u.", r->host, r->port, r->busid,
                 d->vendor_id, d->product_id, r->vhci_port);
        remote_record_port(r);
        k = remote_arm_timer(r, REMOTE_ENUMERATE_TIMEOUT_USEC);
        if (k < 0)
                return remote_fail(r, ZCUSB_ERROR_FAILED, "Cannot set a timer: %s.", strerror(-k));
        remote_set_state(r, REMOTE_ATTACHING);
        return 0;
}

static int remote_on_helper(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Remote *r = userdata;
        RemoteReply reply = {};
        _cleanup_close_ int sock = -EBADF;

        (void) s, (void) fd, (void) revents;
        sock = remote_read_reply(r, &reply);
        if (sock == -EAGAIN || sock < 0)
                return 0; /* wait for more / R failed (and may be freed) */
        remote_stop_helper(r);
        r->device = reply.device;
        (void) remote_hand_to_vhci(r, sock);
        /* vhci-hcd took its own reference to the socket (or failed): ours goes. */
        return 0;
}

int remote_start(Remote *r) {
        const Config *c = &r->manager->config;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        RemoteRequest req = {
                .version = REMOTE_WIRE_VERSION,
                .timeout_ms = c->remote_timeout_sec * 1000,
                .port = r->port,
        };
        int k;

        r->detaching = false;
        remote_forget_device(r);
        remote_set_state(r, REMOTE_CONNECTING);
        strcpy(req.host, r->host);
        strcpy(req.busid, r->busid);

        r->helper_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (r->helper_fd < 0)
                return remote_fail(r, ZCUSB_ERROR_FAILED, "Cannot create a socket: %m.");
        strcpy(sa.sun_path, c->remote_helper_socket);
        if (connect(r->helper_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno == EAGAIN)
                        return remote_fail(r, ZCUSB_ERROR_BUSY, "Too many imports at once; try again.");
                return remote_fail(r, ZCUSB_ERROR_FAILED,
                                   "Cannot reach the connect helper at %s (%m): is zcusb-remote.socket running?",
                                   c->remote_helper_socket);
        }
        if (send(r->helper_fd, &req, sizeof(req), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t) sizeof(req))
                return remote_fail(r, ZCUSB_ERROR_FAILED, "Cannot send to the connect helper: %m.");
        k = sd_event_add_io(r->manager->event, &r->helper_source, r->helper_fd, EPOLLIN, remote_on_helper, r);
        if (k >= 0)
                /* The helper answers at the deadline itself; a second more
                 * covers a helper that hangs or dies. */
                k = remote_arm_timer(r, (c->remote_timeout_sec + 2) * USEC_PER_SEC);
        if (k < 0)
                return remote_fail(r, ZCUSB_ERROR_FAILED, "Cannot watch the connect helper: %s.", strerror(-k));
        log_info("Remote %s:%u/%s: importing.", r->host, r->port, r->busid);
        return 0;
}

int remote_detach(Remote *r) {
        int k;

        if (!r->has_port) {
                /* Not on vhci (yet or any more): nothing to wait for. */
                if (r->persistent) {
                        remote_stop_helper(r);
                        r->timer = sd_event_source_disable_unref(r->timer);
                        remote_reply_error(r, ZCUSB_ERROR_FAILED, "Detached before it was attached.");
                        remote_set_state(r, REMOTE_DETACHED);
                } else {
                        remote_emit_changed(r->manager);
                        remote_free(r);
                }
                return 0;
        }
        k = vhci_detach(r->vhci_port);
        if (k < 0 && k != -EINVAL)
                return k;
        r->detaching = true;
        return 0;
}

void remote_on_device_added(Manager *m, Device *d) {
        Remote *r, *next;

        if (!strstr(d->syspath, "/vhci_hcd."))
                return;
        TAILQ_FOREACH_SAFE(r, &m->remotes, link, next) {
                char name[32];

                if (r->state != REMOTE_ATTACHING || vhci_port_device(r->vhci_port, name) < 0 ||
                    !streq(name, d->sysname))
                        continue;
                if (free_and_strdup(&r->device_syspath, d->syspath) < 0 ||
                    free_and_strdup(&r->device_path, d->object_path) < 0) {
                        (void) remote_fail(r, ZCUSB_ERROR_FAILED, "Out of memory.");
                        continue;
                }
                r->timer = sd_event_source_disable_unref(r->timer);
                r->failures = 0;
                (void) free_and_strdup(&r->last_error, "");
                log_info("Remote %s:%u/%s is %s at %s.", r->host, r->port, r->busid, d->sysname, d->object_path);
                if (r->pending) {
                        (void) sd_bus_reply_method_return(r->pending, "o", d->object_path);
                        r->pending = sd_bus_message_unref(r->pending);
                }
                remote_set_state(r, REMOTE_ATTACHED);
        }
}

void remote_on_device_removed(Manager *m, Device *d) {
        Remote *r, *next;

        TAILQ_FOREACH_SAFE(r, &m->remotes, link, next) {
                if (!streq_ptr(r->device_syspath, d->syspath))
                        continue;
                /* vhci-hcd frees the port with the device. */
                remote_drop_port(r, false);
                remote_forget_device(r);
                if (r->detaching) {
                        log_info("Remote %s:%u/%s detached.", r->host, r->port, r->busid);
                        r->detaching = false;
                        if (r->persistent)
                                remote_set_state(r, REMOTE_DETACHED);
                        else {
                                remote_emit_changed(m);
                                remote_free(r);
                        }
                        continue;
                }
                log_notice("Remote %s:%u/%s dropped (server gone or network down).", r->host, r->port, r->busid);
                (void) free_and_strdup(&r->last_error, "The connection dropped.");
                remote_retry_or_free(r);
        }
}

int remote_start_persistent(Manager *m) {
        const char *p = m->config.remote_attach, *word;
        size_t n;

        while ((word = word_list_next(&p, &n))) {
                char w[REMOTE_TARGET_MAX_LEN + 1], host[HOST_NAME_MAX_LEN + 1], busid[32];
                uint16_t port;
                Remote *r;
                int k;

                /* config.c checked the syntax already */
                if (!word_copy(word, n, w, sizeof(w)) ||
                    parse_remote_target(w, USBIP_DEFAULT_PORT, host, &port, busid) < 0 ||
                    remote_find(m, host, port, busid))
                        continue;
                k = remote_new(m, host, port, busid, true, 0, &r);
                if (k < 0)
                        return log_error_errno(k, "Cannot set up Attach=%s: %m", w);
                (void) remote_start(r);
        }
        return 0;
}

Remote *remote_find(Manager *m, const char *host, uint16_t port, const char *busid) {
        Remote *r;

        TAILQ_FOREACH(r, &m->remotes, link)
                if (r->port == port && strcasecmp(r->host, host) == 0 && streq(r->busid, busid))
                        return r;
        return NULL;
}

Remote *remote_find_by_device(Manager *m, const char *object_path) {
        Remote *r;

        TAILQ_FOREACH(r, &m->remotes, link)
                if (r->device_syspath && streq(r->device_path, object_path))
                        return r;
        return NULL;
}

bool remote_may_attach(Manager *m, const Caller *c) {
        return policy_caller_is_root(c) ||
               policy_list_has_user(m->config.remote_allow_users, c->uid, &policy_resolver_nss) ||
               policy_list_has_group(m->config.remote_allow_groups, c->gids, c->n_gids, &policy_resolver_nss);
}

bool remote_host_allowed(Manager *m, const char *host) {
        const char *p = m->config.remote_allow_hosts, *word;
        size_t n;

        /* As written, never resolved: zcusbd has no network, and a name's
         * addresses may change; the admin lists what callers may name. */
        while ((word = word_list_next(&p, &n))) {
                char w[HOST_NAME_MAX_LEN + 1];

                /* longer words cannot be host names: skipped */
                if (word_copy(word, n, w, sizeof(w)) && (streq(w, "*") || strcasecmp(w, host) == 0))
                        return true;
        }
        return false;
}
