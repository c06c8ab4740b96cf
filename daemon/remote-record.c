/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "log.h"
#include "remote-record.h"
#include "util.h"
#include "vhci.h"

static const char *const record_keys[] = { "vhci_port", "devid", "host", "port", "busid" };

static bool devid_is_valid(uint32_t devid) {
        /* busnum 1..65535, devnum 1..127, as usbip_device_check() allows */
        return (devid >> 16) != 0 && (devid & 0xffff) != 0 && (devid & 0xffff) <= 127;
}

int remote_record_format(const RemoteRecord *rec, char *buf, size_t size) {
        int n;

        if (rec->vhci_port > REMOTE_RECORD_VHCI_PORT_MAX || !devid_is_valid(rec->devid) ||
            !host_name_is_valid(rec->host) || rec->port == 0 || !usbip_busid_is_valid(rec->busid))
                return -EINVAL;
        n = snprintf(buf, size, "%s=%u\n%s=%08x\n%s=%s\n%s=%u\n%s=%s\n", record_keys[0], rec->vhci_port,
                     record_keys[1], rec->devid, record_keys[2], rec->host, record_keys[3], rec->port,
                     record_keys[4], rec->busid);
        if (n < 0 || (size_t) n >= size || n > REMOTE_RECORD_SIZE_MAX)
                return -EINVAL;
        return n;
}

static int parse_fail(const char **ret_why, const char *why) {
        *ret_why = why;
        return -EINVAL;
}

int remote_record_parse(const char *text, size_t len, RemoteRecord *ret, const char **ret_why) {
        char buf[REMOTE_RECORD_SIZE_MAX + 1], *line = buf;
        const char *values[ELEMENTSOF(record_keys)];
        RemoteRecord rec = {};
        uint32_t u;

        if (len > REMOTE_RECORD_SIZE_MAX)
                return parse_fail(ret_why, "too large");
        if (len == 0 || memchr(text, '\0', len) || text[len - 1] != '\n')
                return parse_fail(ret_why, "not lines of text");
        memcpy(buf, text, len);
        buf[len] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(record_keys); i++) {
                char *nl = strchr(line, '\n');
                const char *v;

                if (!nl)
                        return parse_fail(ret_why, "a key is missing");
                *nl = '\0';
                v = startswith(line, record_keys[i]);
                if (!v || *v != '=')
                        return parse_fail(ret_why, "unexpected key");
                values[i] = v + 1;
                line = nl + 1;
        }
        if (*line)
                return parse_fail(ret_why, "text after the last key");

        if (safe_atou32(values[0], 10, &rec.vhci_port) < 0 || rec.vhci_port > REMOTE_RECORD_VHCI_PORT_MAX)
                return parse_fail(ret_why, "vhci port out of range");
        if (strlen(values[1]) != 8 || strspn(values[1], "0123456789abcdef") != 8 ||
            safe_atou32(values[1], 16, &rec.devid) < 0 || !devid_is_valid(rec.devid))
                return parse_fail(ret_why, "bad devid");
        if (strlen(values[2]) > HOST_NAME_MAX_LEN || !host_name_is_valid(values[2]))
                return parse_fail(ret_why, "bad host");
        strcpy(rec.host, values[2]);
        if (safe_atou32(values[3], 10, &u) < 0 || u == 0 || u > UINT16_MAX)
                return parse_fail(ret_why, "bad port");
        rec.port = (uint16_t) u;
        if (strlen(values[4]) >= sizeof(rec.busid) || !usbip_busid_is_valid(values[4]))
                return parse_fail(ret_why, "bad bus id");
        strcpy(rec.busid, values[4]);
        *ret = rec;
        return 0;
}

int remote_record_dir_from_env(char **ret) {
        const char *e = getenv("RUNTIME_DIRECTORY");
        size_t n;

        /* systemd separates several RuntimeDirectory= entries with ':' */
        n = e ? strcspn(e, ":") : 0;
        if (n == 0) {
                log_debug("RUNTIME_DIRECTORY is not set: no records of attached vhci ports are kept, so a crash of "
                          "zcusbd would leave its remote devices attached.");
                *ret = NULL;
                return 0;
        }
        if (e[0] != '/') {
                log_warning("RUNTIME_DIRECTORY=%s is not an absolute path: no records of attached vhci ports are "
                            "kept.", e);
                *ret = NULL;
                return 0;
        }
        *ret = strndup(e, n);
        return *ret ? 0 : -ENOMEM;
}

static void record_name(char buf[static 32], uint32_t vhci_port) {
        snprintf(buf, 32, REMOTE_RECORD_PREFIX "%u", vhci_port);
}

int remote_record_save(const char *dir, const RemoteRecord *rec) {
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        char text[REMOTE_RECORD_SIZE_MAX + 1], name[32], tmp[48];
        ssize_t w;
        int n, r;

        if (!dir)
                return 0;
        n = remote_record_format(rec, text, sizeof(text));
        if (n < 0)
                return n;
        record_name(name, rec->vhci_port);
        /* Not a record name: a temporary file a crash left is removed at start. */
        snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        (void) unlinkat(dfd, tmp, 0);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        w = write(fd, text, (size_t) n);
        r = w < 0 ? -errno : w != n ? -EIO : 0;
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dfd, tmp, 0);
        return r;
}

int remote_record_remove(const char *dir, uint32_t vhci_port) {
        _cleanup_free_ char *path = NULL;
        char name[32];

        if (!dir)
                return 0;
        record_name(name, vhci_port);
        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/* The file NAME in DFD, at most REMOTE_RECORD_SIZE_MAX + 1 bytes of it (a
 * larger one is not a record: the parser says so). */
static int record_read(int dfd, const char *name, char buf[static REMOTE_RECORD_SIZE_MAX + 1], size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t len = 0;

        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        while (len < REMOTE_RECORD_SIZE_MAX + 1) {
                ssize_t n = read(fd, buf + len, REMOTE_RECORD_SIZE_MAX + 1 - len);

                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        *ret_len = len;
        return 0;
}

/* One record: detach its port if it still holds the recorded import.
 * Returns whether the record may go. */
static bool record_reap_one(const char *dir, int dfd, const char *name) {
        char text[REMOTE_RECORD_SIZE_MAX + 1];
        const char *why = NULL, *num = startswith(name, REMOTE_RECORD_PREFIX);
        RemoteRecord rec;
        uint32_t port;
        size_t len = 0;
        int k;

        if (!num || safe_atou32(num, 10, &port) < 0) {
                log_warning("%s/%s is not a record zcusbd writes; removing it.", dir, name);
                return true;
        }
        k = record_read(dfd, name, text, &len);
        if (k < 0) {
                log_warning_errno(k, "Cannot read %s/%s (%m); removing it.", dir, name);
                return true;
        }
        if (remote_record_parse(text, len, &rec, &why) >= 0 && rec.vhci_port != port)
                why = "its port is not the one in its name";
        if (why) {
                log_warning("Ignoring malformed record %s/%s (%s); removing it.", dir, name, why);
                return true;
        }

        k = vhci_detach_if_ours(rec.vhci_port, rec.devid);
        if (k == -EINVAL)
                k = 0; /* freed between the status read and the detach */
        if (k < 0) {
                log_warning_errno(k, "Cannot detach vhci port %u left attached by a previous zcusbd (%s:%u/%s): %m; "
                                  "trying again at the next start.", rec.vhci_port, rec.host, rec.port, rec.busid);
                return false;
        }
        if (k > 0)
                log_info("Detached vhci port %u left attached by a previous zcusbd (%s:%u/%s).", rec.vhci_port,
                         rec.host, rec.port, rec.busid);
        else
                log_info("vhci port %u no longer holds %s:%u/%s (freed, or attached by someone else since): left "
                         "alone.", rec.vhci_port, rec.host, rec.port, rec.busid);
        return true;
}

void remote_record_reap(const char *dir) {
        _cleanup_close_ int fd = -EBADF;
        DIR *d;

        if (!dir)
                return;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                log_warning_errno(errno, "Cannot open the runtime directory %s: %m", dir);
                return;
        }
        d = fdopendir(fd);
        if (!d) {
                log_warning_errno(errno, "Cannot read the runtime directory %s: %m", dir);
                return;
        }
        fd = -EBADF; /* the DIR owns it now */
        for (struct dirent *de; (de = readdir(d));) {
                bool tmp = de->d_name[0] == '.' && startswith(de->d_name + 1, REMOTE_RECORD_PREFIX);

                if (!tmp && !startswith(de->d_name, REMOTE_RECORD_PREFIX))
                        continue; /* not ours */
                if (tmp)
                        log_debug("Removing %s/%s, a record a previous zcusbd did not finish writing.", dir,
                                  de->d_name);
                if ((tmp || record_reap_one(dir, dirfd(d), de->d_name)) && unlinkat(dirfd(d), de->d_name, 0) < 0 &&
                    errno != ENOENT)
                        log_warning_errno(errno, "Cannot remove %s/%s: %m", dir, de->d_name);
        }
        closedir(d);
}
