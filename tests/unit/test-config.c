/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <sys/stat.h>

#include "config.h"
#include "tests.h"
#include "util.h"

static void test_defaults(void) {
        Config c;

        config_init(&c);
        check(c.backend == BACKEND_CHOICE_AUTO);
        check(c.load_module);
        check(c.kernel_queues);
#if defined(__x86_64__) || defined(__i386__)
        check(c.usbfs_staging);
#else
        check(!c.usbfs_staging);
#endif
        check(c.bytes_per_client == 256u << 20);
        check(c.claims_per_client == 8);
}

static void test_all_keys(void) {
        _cleanup_free_ char *err = NULL;
        Config c;

        config_init(&c);
        check(config_parse_string(&c, "t.conf",
                                  "# comment\n"
                                  "[Daemon]\n"
                                  "Backend=usbfs\n"
                                  "LoadModule=no\n"
                                  "KernelQueues=no\n"
                                  "UsbfsStaging=no\n"
                                  "LogLevel=debug\n"
                                  "\n"
                                  "[Quota]\n"
                                  "BytesPerClient=64M\n"
                                  "BytesPerUser = 1G\n"
                                  "BytesGlobal=0\n"
                                  "ClaimsPerClient=0\n"
                                  "BuffersPerClient=3\n"
                                  "QueuesPerClient=4\n"
                                  "InFlightPerClient=4096\n",
                                  &err) == 0);
        check(!err);
        check(c.backend == BACKEND_CHOICE_USBFS);
        check(!c.load_module);
        check(!c.kernel_queues);
        check(!c.usbfs_staging);
        check(c.log_level == 7);
        check(c.bytes_per_client == 64u << 20);
        check(c.bytes_per_user == 1u << 30);
        check(c.bytes_global == 0); /* 0 = none allowed, a valid setting */
        check(c.claims_per_client == 0);
        check(c.buffers_per_client == 3);
        check(c.queues_per_client == 4);
        check(c.in_flight_per_client == 4096);
}

/* Each bad input names file and line, says what is wrong, changes nothing. */
static void check_error(const char *text, const char *expected) {
        _cleanup_free_ char *err = NULL;
        Config c, before;

        config_init(&c);
        c.claims_per_client = 77;
        before = c;
        check(config_parse_string(&c, "bad.conf", text, &err) == -EINVAL);
        if (!err || !strstr(err, expected)) {
                fprintf(stderr, "got '%s', expected '%s'\n", err ? err : "(null)", expected);
                abort();
        }
        check(memcmp(&c, &before, sizeof(c)) == 0);
}

static void test_errors(void) {
        check_error("[Quota]\nClaimsPerClient=1\nBogus=1\n", "bad.conf:3: unknown key 'Bogus' in section [Quota]");
        check_error("[Quota]\nBytesPerClient=12Q\n", "bad.conf:2: '12Q' is not a size");
        check_error("[Quota]\nBytesPerClient=-1\n", "bad.conf:2: '-1' is not a size");
        check_error("[Quota]\nBytesPerClient=99999999999999999999\n", "bad.conf:2: size '99999999999999999999' is too large");
        check_error("[Quota]\nBytesPerClient=20000000T\n", "bad.conf:2: size '20000000T' is too large");
        check_error("[Quota]\nClaimsPerClient=4294967296\n", "bad.conf:2: count '4294967296' is too large");
        check_error("[Quota]\nClaimsPerClient=two\n", "bad.conf:2: 'two' is not a non-negative whole number");
        check_error("[Quota]\nClaimsPerClient=\n", "bad.conf:2: ClaimsPerClient= needs a value");
        check_error("[Nope]\nX=1\n", "bad.conf:2: unknown section [Nope]");
        check_error("Backend=usbfs\n", "bad.conf:1: 'Backend' is outside any section");
        check_error("[Daemon]\nBackend=fast\n", "bad.conf:2: Backend=fast is not one of auto, usbfs, zcusb");
        check_error("[Daemon]\nLoadModule=maybe\n", "bad.conf:2: 'maybe' is not a boolean");
        check_error("[Daemon]\nLogLevel=loud\n", "bad.conf:2: LogLevel=loud is not one of");
        /* Seconds, each key within its own bounds: one parser, one message. */
        check_error("[Polkit]\nTimeoutSec=0\n", "bad.conf:2: '0' is not a number of seconds from 1 to 86400");
        check_error("[Polkit]\nInteractiveTimeoutSec=86401\n", "'86401' is not a number of seconds from 1 to 86400");
        check_error("[Remote]\nTimeoutSec=601\n", "bad.conf:2: '601' is not a number of seconds from 1 to 600");
        check_error("[Remote]\nTimeoutSec=-1\n", "'-1' is not a number of seconds from 1 to 600");
        check_error("[Remote]\nLinkTimeoutSec=3601\n",
                    "'3601' is not a number of seconds from 0 (the kernel's TCP timeouts) to 3600");
        check_error("[Remote]\nLinkTimeoutSec=30s\n", "'30s' is not a number of seconds from 0");
        /* inih's own syntax error comes first and must not borrow a later message. */
        check_error("[Daemon]\nthis line has no equals sign\n[Quota]\nBogus=1\n", "bad.conf:2: syntax error");
        check_error("[Quota]\nBogus=1\nthis line has no equals sign\n", "bad.conf:2: unknown key 'Bogus'");
        /* Attach= is a word list (spaces, tabs, commas); the bad word is named, cut at 64 */
        check_error("[Remote]\nAttach=lab1/1-1, ,lab2:3240\n", "bad.conf:2: Attach=: 'lab2:3240' is not HOST[:PORT]/BUSID");
        char long_target[400];
        memset(long_target, 'a', sizeof(long_target));
        memcpy(long_target + sizeof(long_target) - 5, "/1-1", 5);
        _cleanup_free_ char *text = NULL;
        check(asprintf(&text, "[Remote]\nAttach=lab1/1-1\t%s\n", long_target) > 0);
        check_error(text, "bad.conf:2: Attach=: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is not");
}

/* The one word splitter of the configuration's and udev properties' lists. */
static void test_word_list(void) {
        const char *p = " a,b\t\tlonger-word ,,", *w;
        const char *want[] = { "a", "b", "longer-word" };
        char buf[8];
        size_t n, i = 0;

        while ((w = word_list_next(&p, &n))) {
                check(i < 3 && n == strlen(want[i]) && strncmp(w, want[i], n) == 0);
                check(word_copy(w, n, buf, sizeof(buf)) == (n < sizeof(buf)));
                i++;
        }
        check(i == 3 && *p == '\0');
        p = "";
        check(!word_list_next(&p, &n));
        p = " \t, ";
        check(!word_list_next(&p, &n));
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        check(f);
        check(fputs(text, f) >= 0);
        check(fclose(f) == 0);
}

static void test_dropins(void) {
        char dir[] = "/tmp/zcusb-test-config-XXXXXX";
        _cleanup_free_ char *main_path = NULL, *dropins = NULL, *a = NULL, *b = NULL, *ignored = NULL, *err = NULL;
        Config c;

        check(mkdtemp(dir));
        check(asprintf(&main_path, "%s/zcusbd.conf", dir) > 0);
        check(asprintf(&dropins, "%s/zcusbd.conf.d", dir) > 0);
        check(asprintf(&a, "%s/10-a.conf", dropins) > 0);
        check(asprintf(&b, "%s/20-b.conf", dropins) > 0);
        check(asprintf(&ignored, "%s/30-c.conf.disabled", dropins) > 0);

        /* Missing file: defaults, unless the caller insists it exists. */
        config_init(&c);
        check(config_load(&c, main_path, false, &err) == 0);
        check(c.claims_per_client == 8);
        check(config_load(&c, main_path, true, &err) == -ENOENT);
        check(strstr(err, "cannot open"));
        free(TAKE_PTR(err));

        write_file(main_path, "[Quota]\nClaimsPerClient=2\nBuffersPerClient=5\n");
        check(mkdir(dropins, 0755) == 0);
        write_file(b, "[Quota]\nClaimsPerClient=4\n");
        write_file(a, "[Quota]\nClaimsPerClient=3\nQueuesPerClient=1\n");
        write_file(ignored, "[Quota]\nClaimsPerClient=99\n");
        config_init(&c);
        check(config_load(&c, main_path, true, &err) == 0);
        check(c.claims_per_client == 4);  /* 20-b wins over 10-a over the main file */
        check(c.buffers_per_client == 5);
        check(c.queues_per_client == 1);

        /* A bad drop-in: its name and line, and nothing applied. */
        write_file(b, "[Quota]\n\nClaimsPerClient=x\n");
        config_init(&c);
        check(config_load(&c, main_path, true, &err) == -EINVAL);
        check(strstr(err, "20-b.conf:3: 'x' is not"));
        check(c.claims_per_client == 8);

        unlink(a), unlink(b), unlink(ignored), unlink(main_path), rmdir(dropins), rmdir(dir);
}

static void test_sizes(void) {
        uint64_t v;
        char buf[32];

        check(parse_size("0", &v) == 0 && v == 0);
        check(parse_size("4096", &v) == 0 && v == 4096);
        check(parse_size("4K", &v) == 0 && v == 4096);
        check(parse_size("4KiB", &v) == 0 && v == 4096);
        check(parse_size("3T", &v) == 0 && v == (UINT64_C(3) << 40));
        check(parse_size("16777215T", &v) == 0);
        check(parse_size("16777216T", &v) == -ERANGE);
        check(parse_size("1.5G", &v) == -EINVAL);
        check(parse_size(" 1", &v) == -EINVAL);
        check(parse_size("", &v) == -EINVAL);
        check(parse_size("k", &v) == -EINVAL);
        check_streq(format_size(buf, sizeof(buf), 256u << 20), "256M");
        check_streq(format_size(buf, sizeof(buf), UINT64_C(2) << 30), "2G");
        check_streq(format_size(buf, sizeof(buf), 1000), "1000");
        check_streq(format_size(buf, sizeof(buf), 0), "0");
}

int main(void) {
        RUN(test_defaults);
        RUN(test_all_keys);
        RUN(test_errors);
        RUN(test_word_list);
        RUN(test_dropins);
        RUN(test_sizes);
        return 0;
}
