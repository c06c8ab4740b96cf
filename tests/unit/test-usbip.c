/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The USB/IP import reply checks, vhci-hcd status tables and port choice, the link timeout,
 * HOST[:PORT]/BUSID parsing, and zcusbd.conf's [Remote] keys. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "config.h"
#include "host-port.h"
#include "tests.h"
#include "usbip-proto.h"
#include "util.h"
#include "vhci.h"

static void put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8), p[1] = (uint8_t) v;
}

static void put32(uint8_t *p, uint32_t v) {
        put16(p, (uint16_t) (v >> 16)), put16(p + 2, (uint16_t) v);
}

static void make_device(uint8_t *dev, const char *busid, uint32_t busnum, uint32_t devnum, uint32_t speed) {
        memset(dev, 0, USBIP_DEVICE_SIZE);
        strcpy((char *) dev, "/sys/devices/platform/dummy_hcd.0/usb1/1-1");
        strcpy((char *) dev + 256, busid);
        put32(dev + 288, busnum);
        put32(dev + 292, devnum);
        put32(dev + 296, speed);
        put16(dev + 300, 0x0525);
        put16(dev + 302, 0xa4a0);
        dev[310] = 1; /* bNumConfigurations */
        dev[311] = 1; /* bNumInterfaces */
}

static void test_busid(void) {
        check(usbip_busid_is_valid("1-1"));
        check(usbip_busid_is_valid("3-2.4.1"));
        check(usbip_busid_is_valid("12-10"));
        check(!usbip_busid_is_valid(""));
        check(!usbip_busid_is_valid("1"));
        check(!usbip_busid_is_valid("-1"));
        check(!usbip_busid_is_valid("1-"));
        check(!usbip_busid_is_valid("1-1."));
        check(!usbip_busid_is_valid("1.1-1"));
        check(!usbip_busid_is_valid("1-1-1"));
        check(!usbip_busid_is_valid("1-1 "));
        check(!usbip_busid_is_valid("../1-1"));
        check(!usbip_busid_is_valid("1-11111111111111111111111111111111")); /* 34 chars */
}

static void test_request(void) {
        uint8_t buf[USBIP_IMPORT_REQUEST_SIZE];

        check(usbip_build_import_request("1-1", buf) == USBIP_IMPORT_REQUEST_SIZE);
        check(buf[0] == 0x01 && buf[1] == 0x11 && buf[2] == 0x80 && buf[3] == 0x03);
        check(buf[4] == 0 && buf[5] == 0 && buf[6] == 0 && buf[7] == 0);
        check(memcmp(buf + 8, "1-1\0\0", 5) == 0 && buf[39] == 0);
        check(usbip_build_import_request("x", buf) == -EINVAL);
}

static void test_header(void) {
        uint8_t h[8];
        uint32_t status;
        char why[200];

        put16(h, 0x0111), put16(h + 2, 0x0003), put32(h + 4, 0);
        check(usbip_parse_reply_header(h, &status, why, sizeof(why)) == 0);
        put16(h, 0x0106);
        check(usbip_parse_reply_header(h, &status, why, sizeof(why)) == -EPROTO);
        check(strstr(why, "version"));
        put16(h, 0x0111), put16(h + 2, 0x0005);
        check(usbip_parse_reply_header(h, &status, why, sizeof(why)) == -EPROTO);
        put16(h + 2, 0x0003), put32(h + 4, 2);
        check(usbip_parse_reply_header(h, &status, why, sizeof(why)) == -ECONNREFUSED);
        check(status == 2 && strstr(why, "busy"));
}

static void test_device(void) {
        uint8_t dev[USBIP_DEVICE_SIZE];
        UsbipDevice d;
        char why[200];

        make_device(dev, "1-1", 1, 2, 3);
        check(usbip_parse_device(dev, "1-1", &d, why, sizeof(why)) == 0);
        check(d.busnum == 1 && d.devnum == 2 && d.speed == 3 && d.vendor_id == 0x0525 && d.product_id == 0xa4a0);
        check(usbip_devid(&d) == 0x10002);
        check_streq(d.busid, "1-1");

        check(usbip_parse_device(dev, "1-2", &d, why, sizeof(why)) == -EPROTO); /* wrong busid */
        check(strstr(why, "not '1-2'"));
        make_device(dev, "1-1", 1, 2, 6);
        check(usbip_parse_device(dev, "1-1", &d, why, sizeof(why)) == -EPROTO); /* SuperSpeedPlus */
        make_device(dev, "1-1", 1, 2, 0);
        check(usbip_parse_device(dev, "1-1", &d, why, sizeof(why)) == -EPROTO);
        make_device(dev, "1-1", 0x10000, 2, 3);
        check(usbip_parse_device(dev, "1-1", &d, why, sizeof(why)) == -EPROTO); /* devid overflow */
        make_device(dev, "1-1", 1, 0, 3);
        check(usbip_parse_device(dev, "1-1", &d, why, sizeof(why)) == -EPROTO);
        make_device(dev, "1-1", 1, 128, 3);
        check(usbip_parse_device(dev, "1-1", &d, why, sizeof(why)) == -EPROTO);
        make_device(dev, "1-1", 1, 2, 3);
        memset(dev + 256, 'x', 32); /* busid without its NUL */
        check(usbip_parse_device(dev, "1-1", &d, why, sizeof(why)) == -EPROTO);
        make_device(dev, "1-1", 1, 2, 3);
        memset(dev, 'x', 256); /* path without its NUL */
        check(usbip_parse_device(dev, "1-1", &d, why, sizeof(why)) == -EPROTO);
}

/* As vhci_sysfs.c prints it (6.1: "%06u" sockfd when used, the all-zero
 * placeholder when free), two controllers' worth in one file for brevity. */
static const char status_text[] =
        "hub port sta spd dev      sockfd local_busid\n"
        "hs  0000 006 003 00010002 000005 3-1\n"
        "hs  0001 004 000 00000000 000000 0-0\n"
        "ss  0008 006 005 00010003 000006 4-1\n"
        "ss  0009 004 000 00000000 0000000000000000 0-0\n";

static void test_vhci_status(void) {
        _cleanup_free_ VhciPort *ports = NULL;
        size_t n = 0;
        uint32_t skip = 1;

        check(vhci_parse_status(status_text, &ports, &n) == 0);
        check(n == 4);
        check(ports[0].port == 0 && !ports[0].super_speed && ports[0].status == 6);
        check(ports[0].devid == 0x00010002 && ports[2].devid == 0x00010003);
        check_streq(ports[0].local_busid, "3-1");
        check(ports[3].port == 9 && ports[3].super_speed && ports[3].status == VHCI_STATUS_NULL);

        check(vhci_pick_port(ports, n, USBIP_SPEED_HIGH, NULL, 0) == 1);
        check(vhci_pick_port(ports, n, USBIP_SPEED_FULL, NULL, 0) == 1);
        check(vhci_pick_port(ports, n, USBIP_SPEED_SUPER, NULL, 0) == 9);
        check(vhci_pick_port(ports, n, USBIP_SPEED_HIGH, &skip, 1) == -EBUSY);

        free(ports), ports = NULL, n = 0;
        check(vhci_parse_status("", &ports, &n) == -EINVAL);
        check(vhci_parse_status("garbage\n", &ports, &n) == -EINVAL);
        check(vhci_parse_status("hub port sta spd dev sockfd local_busid\nxx 1 2 3 4 5 6\n", &ports, &n) == -EINVAL);
        check(vhci_parse_status("hub port sta spd dev sockfd local_busid\nhs 1 2\n", &ports, &n) == -EINVAL);
}

static void test_host_port(void) {
        char host[HOST_NAME_MAX_LEN + 1], busid[32];
        uint16_t port;

        check(parse_host_port("lab1", 3240, host, &port) == 0 && port == 3240);
        check_streq(host, "lab1");
        check(parse_host_port("10.0.0.2:4000", 3240, host, &port) == 0 && port == 4000);
        check_streq(host, "10.0.0.2");
        check(parse_host_port("[::1]:3241", 3240, host, &port) == 0 && port == 3241);
        check_streq(host, "::1");
        check(parse_host_port("[fe80::1]", 3240, host, &port) == 0 && port == 3240);
        check(parse_host_port("lab1:0", 3240, host, &port) == -EINVAL);
        check(parse_host_port("lab1:65536", 3240, host, &port) == -EINVAL);
        check(parse_host_port("lab1:x", 3240, host, &port) == -EINVAL);
        check(parse_host_port("-oProxy", 3240, host, &port) == -EINVAL);
        check(parse_host_port("a/b", 3240, host, &port) == -EINVAL);
        check(parse_host_port("", 3240, host, &port) == -EINVAL);
        check(parse_host_port("[::1", 3240, host, &port) == -EINVAL);

        check(parse_remote_target("lab1:3240/1-1.2", 3240, host, &port, busid) == 0);
        check_streq(host, "lab1");
        check_streq(busid, "1-1.2");
        check(parse_remote_target("lab1", 3240, host, &port, busid) == -EINVAL);
        check(parse_remote_target("lab1/", 3240, host, &port, busid) == -EINVAL);

        check(host_name_is_valid("::1") && host_name_is_valid("lab-1.example") && !host_name_is_valid("a b") &&
              !host_name_is_valid("") && !host_name_is_valid("-x"));
}

static void test_config(void) {
        _cleanup_free_ char *error = NULL;
        Config c;

        config_init(&c);
        check(c.remote_timeout_sec == 10 && c.remote_max_devices == 8 && isempty(c.remote_allow_hosts));
        check(config_parse_string(&c, "t", "[Remote]\nAllowHosts=lab1 127.0.0.1\nAllowGroups=plugdev\n"
                                  "Attach=lab1/1-1 [::1]:3241/2-1.4\nTimeoutSec=3\n", &error) == 0);
        check_streq(c.remote_allow_hosts, "lab1 127.0.0.1");
        check(c.remote_timeout_sec == 3);
        check(config_parse_string(&c, "t", "[Remote]\nAttach=lab1\n", &error) == -EINVAL);
        check(strstr(error, "HOST[:PORT]/BUSID"));
        error = mfree_str(error);
        check(config_parse_string(&c, "t", "[Remote]\nAttach=lab1/nonsense\n", &error) == -EINVAL);
        error = mfree_str(error);
        check(config_parse_string(&c, "t", "[Remote]\nTimeoutSec=0\n", &error) == -EINVAL);
        error = mfree_str(error);
        check(config_parse_string(&c, "t", "[Remote]\nHelperSocket=relative\n", &error) == -EINVAL);
        check(c.remote_timeout_sec == 3); /* a bad file changes nothing */
        error = mfree_str(error);

        check(c.remote_link_timeout_sec == 30);
        check(config_parse_string(&c, "t", "[Remote]\nLinkTimeoutSec=0\n", &error) == 0);
        check(c.remote_link_timeout_sec == 0);
        check(config_parse_string(&c, "t", "[Remote]\nLinkTimeoutSec=3601\n", &error) == -EINVAL);
        check(strstr(error, "'3601' is not a number of seconds from 0"));
        check(c.remote_link_timeout_sec == 0);
}

static int tcp_option(int fd, int level, int name) {
        int v = -1;
        socklen_t len = sizeof(v);

        return getsockopt(fd, level, name, &v, &len) < 0 ? -errno : v;
}

/* The options the kernel then applies to the connection vhci-hcd holds. */
static void test_link_timeout(void) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        check(fd >= 0);
        check(vhci_socket_set_link_timeout(fd, 0) == 0);
        check(tcp_option(fd, SOL_SOCKET, SO_KEEPALIVE) == 0); /* untouched */
        check(vhci_socket_set_link_timeout(fd, 30) == 0);
        check(tcp_option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
        /* idle 15 s + 3 probes 5 s apart: a silent peer is gone after 30 s */
        check(tcp_option(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 15);
        check(tcp_option(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 5);
        check(tcp_option(fd, IPPROTO_TCP, TCP_KEEPCNT) == 3);
        check(tcp_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == 30000);
        check(vhci_socket_set_link_timeout(fd, 1) == 0);
        check(tcp_option(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 1 && tcp_option(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 1);
        check(vhci_socket_set_link_timeout(-1, 30) == -EBADF);
}

int main(void) {
        RUN(test_busid);
        RUN(test_request);
        RUN(test_header);
        RUN(test_device);
        RUN(test_vhci_status);
        RUN(test_host_port);
        RUN(test_config);
        RUN(test_link_timeout);
        return 0;
}
