/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The records of attached vhci ports (remote-record.h): their text, the
 * strict parser, and how they are written and removed. Reaping them at
 * start is the integration test remote-orphan (it needs a fake vhci). */
#include <fcntl.h>
#include <sys/stat.h>

#include "remote-record.h"
#include "tests.h"
#include "util.h"

static const RemoteRecord example = {
        .vhci_port = 9, .devid = 0x10002, .host = "lab1.example", .port = 3240, .busid = "1-1.2",
};
static const char example_text[] = "vhci_port=9\ndevid=00010002\nhost=lab1.example\nport=3240\nbusid=1-1.2\n";

static bool parses(const char *text) {
        RemoteRecord rec;
        const char *why = NULL;
        int r = remote_record_parse(text, strlen(text), &rec, &why);

        check((r == 0) == (why == NULL));
        return r == 0;
}

static void test_format_parse(void) {
        char buf[REMOTE_RECORD_SIZE_MAX + 1];
        RemoteRecord rec = example, got;
        const char *why = NULL;
        int n;

        n = remote_record_format(&rec, buf, sizeof(buf));
        check(n == (int) strlen(example_text));
        check_streq(buf, example_text);
        check(remote_record_parse(buf, (size_t) n, &got, &why) == 0);
        check(got.vhci_port == 9 && got.devid == 0x10002 && got.port == 3240);
        check_streq(got.host, "lab1.example");
        check_streq(got.busid, "1-1.2");

        /* what it would not read back, it does not write */
        rec.devid = 0x10000;
        check(remote_record_format(&rec, buf, sizeof(buf)) == -EINVAL);
        rec = example, rec.vhci_port = REMOTE_RECORD_VHCI_PORT_MAX + 1;
        check(remote_record_format(&rec, buf, sizeof(buf)) == -EINVAL);
        rec = example, strcpy(rec.host, "-oProxyCommand");
        check(remote_record_format(&rec, buf, sizeof(buf)) == -EINVAL);
        check(remote_record_format(&example, buf, 10) == -EINVAL);
}

static void test_parse_strict(void) {
        static const char *const bad[] = {
                "",
                "vhci_port=9\n",
                /* no final newline, trailing text, a key twice, another order */
                "vhci_port=9\ndevid=00010002\nhost=h\nport=3240\nbusid=1-1",
                "vhci_port=9\ndevid=00010002\nhost=h\nport=3240\nbusid=1-1\nextra=1\n",
                "vhci_port=9\nvhci_port=9\ndevid=00010002\nhost=h\nport=3240\nbusid=1-1\n",
                "devid=00010002\nvhci_port=9\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port =9\ndevid=00010002\nhost=h\nport=3240\nbusid=1-1\n",
                /* values out of range or of the wrong shape */
                "vhci_port=3840\ndevid=00010002\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port=-1\ndevid=00010002\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port=+9\ndevid=00010002\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port=9\ndevid=10002\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port=9\ndevid=0x010002\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port=9\ndevid=00010080\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port=9\ndevid=00000002\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port=9\ndevid=0001000G\nhost=h\nport=3240\nbusid=1-1\n",
                "vhci_port=9\ndevid=00010002\nhost=\nport=3240\nbusid=1-1\n",
                "vhci_port=9\ndevid=00010002\nhost=a/b\nport=3240\nbusid=1-1\n",
                "vhci_port=9\ndevid=00010002\nhost=h\nport=0\nbusid=1-1\n",
                "vhci_port=9\ndevid=00010002\nhost=h\nport=65536\nbusid=1-1\n",
                "vhci_port=9\ndevid=00010002\nhost=h\nport=3240\nbusid=../1-1\n",
                "vhci_port=9\ndevid=00010002\nhost=h\nport=3240\nbusid=\n",
        };
        char big[REMOTE_RECORD_SIZE_MAX + 2];
        RemoteRecord rec;
        const char *why = NULL;
        int n;

        check(parses(example_text));
        check(parses("vhci_port=3839\ndevid=ffff007f\nhost=::1\nport=65535\nbusid=12-3\n"));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parses(bad[i])) {
                        fprintf(stderr, "parsed: %s\n", bad[i]);
                        check(false);
                }
        /* an embedded NUL ends nothing early */
        check(remote_record_parse("vhci_port=9\n\0", 13, &rec, &why) == -EINVAL);
        /* the longest host and bus id fit; a byte more than the limit does not */
        rec = example;
        memset(rec.host, 'a', HOST_NAME_MAX_LEN);
        rec.host[HOST_NAME_MAX_LEN] = '\0';
        strcpy(rec.busid, "1-1.2.3.4.5.6.7.8.9.10.11.12.13");
        check(strlen(rec.busid) == USBIP_BUSID_SIZE - 1);
        n = remote_record_format(&rec, big, sizeof(big));
        check(n > 0 && remote_record_parse(big, (size_t) n, &rec, &why) == 0);
        check(strlen(rec.host) == HOST_NAME_MAX_LEN);
        memset(big, 'a', sizeof(big));
        check(remote_record_parse(big, REMOTE_RECORD_SIZE_MAX + 1, &rec, &why) == -EINVAL);
        check_streq(why, "too large");
}

static void test_save_remove(void) {
        char dir[] = "/tmp/test-remote-record-XXXXXX", path[128], text[REMOTE_RECORD_SIZE_MAX + 1];
        struct stat st;
        ssize_t n;
        int fd;

        check(mkdtemp(dir));
        check(remote_record_save(NULL, &example) == 0);
        check(remote_record_remove(NULL, 9) == 0);

        check(remote_record_save(dir, &example) == 0);
        snprintf(path, sizeof(path), "%s/vhci-port-9", dir);
        check(stat(path, &st) == 0);
        check(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        check(fd >= 0);
        n = read(fd, text, sizeof(text) - 1);
        close(fd);
        check(n == (ssize_t) strlen(example_text));
        text[n] = '\0';
        check_streq(text, example_text);
        /* written again (a port reused): replaced whole, no temporary left */
        check(remote_record_save(dir, &example) == 0);
        snprintf(path, sizeof(path), "%s/.vhci-port-9.tmp", dir);
        check(access(path, F_OK) < 0 && errno == ENOENT);

        check(remote_record_remove(dir, 9) == 0);
        snprintf(path, sizeof(path), "%s/vhci-port-9", dir);
        check(access(path, F_OK) < 0 && errno == ENOENT);
        check(remote_record_remove(dir, 9) == 0);
        check(rmdir(dir) == 0);
        /* a directory that is not there: the error is said */
        check(remote_record_save(dir, &example) == -ENOENT);
}

int main(void) {
        RUN(test_format_parse);
        RUN(test_parse_strict);
        RUN(test_save_remove);
        return 0;
}
