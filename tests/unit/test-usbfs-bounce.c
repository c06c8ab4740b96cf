/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The usbfs staging-buffer pool: size classes, reuse, the per-interface and
 * process-wide limits, and a node that cannot be mapped. A memfd stands in
 * for the usbfs file (the pool only maps it); the data path over real usbfs
 * memory is tested in the VM (tests/vm/cases/50-transfer.sh). */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests.h"
#include "usbfs-bounce.h"
#include "util.h"

#define KIB 1024u

static int memfd(void) {
        int fd = memfd_create("test-usbfs-bounce", MFD_CLOEXEC);

        check(fd >= 0);
        check(ftruncate(fd, USBFS_BOUNCE_MAX) == 0);
        return fd;
}

static void test_off_and_sizes(void) {
        UsbfsBouncePool p;
        UsbfsBounce *b;
        int fd = memfd();

        usbfs_bounce_pool_init(&p, -EBADF); /* UsbfsStaging=no */
        check(!usbfs_bounce_get(&p, 64 * KIB));
        usbfs_bounce_pool_done(&p);

        usbfs_bounce_pool_init(&p, fd);
        check(!usbfs_bounce_get(&p, 0));
        check(!usbfs_bounce_get(&p, USBFS_BOUNCE_MAX + 1));
        check(p.held == 0);

        b = usbfs_bounce_get(&p, 1);
        check(b && b->size == 4 * KIB && b->mem);
        usbfs_bounce_put(&p, b);
        b = usbfs_bounce_get(&p, 4 * KIB + 1);
        check(b && b->size == 8 * KIB);
        usbfs_bounce_put(&p, b);
        b = usbfs_bounce_get(&p, USBFS_BOUNCE_MAX);
        check(b && b->size == USBFS_BOUNCE_MAX);
        usbfs_bounce_put(&p, b);
        check(p.held == 4 * KIB + 8 * KIB + USBFS_BOUNCE_MAX);
        usbfs_bounce_pool_done(&p);
        check(p.held == 0);
        close(fd);
}

static void test_reuse(void) {
        UsbfsBouncePool p;
        UsbfsBounce *a, *b;
        int fd = memfd();

        usbfs_bounce_pool_init(&p, fd);
        a = usbfs_bounce_get(&p, 64 * KIB);
        check(a);
        usbfs_bounce_put(&p, a);
        /* same class: the one given back, no second mapping */
        b = usbfs_bounce_get(&p, 40 * KIB);
        check(b == a);
        check(p.held == 64 * KIB);
        /* in use: another class maps anew */
        a = usbfs_bounce_get(&p, 16 * KIB);
        check(a && a != b && a->size == 16 * KIB);
        usbfs_bounce_put(&p, a);
        usbfs_bounce_put(&p, b);
        usbfs_bounce_put(&p, NULL);
        usbfs_bounce_pool_done(&p);
        close(fd);
}

static void test_interface_limit(void) {
        UsbfsBounce *got[17] = {};
        UsbfsBouncePool p;
        int fd = memfd();

        usbfs_bounce_pool_init(&p, fd);
        /* 1 MiB per interface: sixteen of 64 KiB, not seventeen */
        for (unsigned i = 0; i < 16; i++) {
                got[i] = usbfs_bounce_get(&p, 64 * KIB);
                check(got[i]);
        }
        check(p.held == 1024 * KIB);
        check(!usbfs_bounce_get(&p, 64 * KIB));
        check(!usbfs_bounce_get(&p, 4 * KIB));
        /* one given back is had again */
        usbfs_bounce_put(&p, got[3]);
        got[16] = usbfs_bounce_get(&p, 64 * KIB);
        check(got[16] == got[3]);
        for (unsigned i = 4; i < 17; i++)
                usbfs_bounce_put(&p, got[i]);
        for (unsigned i = 0; i < 3; i++)
                usbfs_bounce_put(&p, got[i]);
        /* all free: a client that moved to 256 KiB transfers gets four,
         * the 64 KiB ones unmapped to make room */
        for (unsigned i = 0; i < 4; i++) {
                got[i] = usbfs_bounce_get(&p, 256 * KIB);
                check(got[i] && got[i]->size == 256 * KIB);
        }
        check(p.held == 1024 * KIB);
        check(!usbfs_bounce_get(&p, 64 * KIB)); /* none free to unmap */
        for (unsigned i = 0; i < 4; i++)
                usbfs_bounce_put(&p, got[i]);
        usbfs_bounce_pool_done(&p);
        close(fd);
}

static void test_process_limit(void) {
        uint64_t limit = usbfs_memory_limit();
        size_t expected = limit == 0 || limit / 4 > 4096 * KIB ? 4096 * KIB : (size_t) (limit / 4);
        UsbfsBouncePool pools[8];
        UsbfsBounce *got[8][16] = {};
        size_t total = 0;
        int fd = memfd();

        /* all of zcusbd together: at most a quarter of usbfs_memory_mb, 4 MiB at most */
        for (unsigned k = 0; k < 8; k++) {
                usbfs_bounce_pool_init(&pools[k], fd);
                for (unsigned i = 0; i < 16; i++)
                        if ((got[k][i] = usbfs_bounce_get(&pools[k], 64 * KIB)))
                                total += 64 * KIB;
        }
        check(total == expected / (64 * KIB) * (64 * KIB));
        /* freed by one interface's end, the budget goes to another */
        for (unsigned i = 0; i < 16; i++)
                usbfs_bounce_put(&pools[0], got[0][i]);
        usbfs_bounce_pool_done(&pools[0]);
        if (pools[7].held < 1024 * KIB) {
                UsbfsBounce *b = usbfs_bounce_get(&pools[7], 64 * KIB);

                check(b);
                usbfs_bounce_put(&pools[7], b);
        }
        for (unsigned k = 1; k < 8; k++) {
                for (unsigned i = 0; i < 16; i++)
                        usbfs_bounce_put(&pools[k], got[k][i]);
                usbfs_bounce_pool_done(&pools[k]);
        }
        close(fd);
}

static void test_unmappable(void) {
        UsbfsBouncePool p;
        int pipefd[2];

        /* what umockdev's emulated node is: a FIFO, which cannot be mapped */
        check(pipe2(pipefd, O_CLOEXEC) == 0);
        usbfs_bounce_pool_init(&p, pipefd[0]);
        check(!usbfs_bounce_get(&p, 64 * KIB));
        check(p.held == 0 && p.skip > 0);
        /* the next requests go without, with no mmap() each */
        for (unsigned i = 0; i < 10; i++)
                check(!usbfs_bounce_get(&p, 64 * KIB));
        usbfs_bounce_pool_done(&p);
        close(pipefd[0]);
        close(pipefd[1]);
}

int main(void) {
        RUN(test_off_and_sizes);
        RUN(test_reuse);
        RUN(test_interface_limit);
        RUN(test_process_limit);
        RUN(test_unmappable);
        return 0;
}
