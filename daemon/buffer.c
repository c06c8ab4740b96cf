/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/mman.h>

#include "buffer.h"
#include "util.h"

uint64_t buffer_round_size(uint64_t size) {
        uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);

        if (size > UINT64_MAX - page)
                return 0;
        return (size + page - 1) / page * page;
}

int memfd_new_sealed(const char *name, size_t size, int *ret_fd, void **ret_map) {
        _cleanup_close_ int fd = -EBADF;
        void *map;

        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0)
                return -errno;
        /* The client can then neither shrink the file under a transfer
         * (SIGBUS in zcusbd) nor grow it past its charge, nor lift the seals. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return -errno;
        map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        *ret_map = map;
        return 0;
}

int buffer_new(Claim *c, uint32_t id, uint64_t size, Buffer **ret) {
        _cleanup_close_ int fd = -EBADF;
        Buffer *b;
        void *map;
        int r;

        if (size == 0 || size > (uint64_t) SIZE_MAX)
                return -EINVAL;
        r = memfd_new_sealed("zcusb-buffer", (size_t) size, &fd, &map);
        if (r < 0)
                return r;

        b = calloc(1, sizeof(*b));
        if (!b) {
                munmap(map, (size_t) size);
                return -ENOMEM;
        }
        *b = (Buffer) { .claim = c, .id = id, .fd = TAKE_FD(fd), .map = map, .size = size };
        *ret = b;
        return 0;
}

Buffer *buffer_free(Buffer *b) {
        if (!b)
                return NULL;
        if (b->map)
                munmap(b->map, (size_t) b->size);
        if (b->fd >= 0)
                close(b->fd);
        free(b);
        return NULL;
}
