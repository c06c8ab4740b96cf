/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/mman.h>

#include "backend.h"
#include "buffer.h"
#include "claim.h"
#include "log.h"
#include "queue.h"
#include "util.h"
#include "zcusb-dbus.h"

/* Buffers larger than this are refused outright, whatever the quota. */
#define BUFFER_SIZE_MAX (UINT64_C(1) << 40)

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

int buffer_new(Claim *c, uint64_t size, Buffer **ret, int *ret_fd, sd_bus_error *error) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t rounded = buffer_round_size(size);
        Buffer *b;
        void *map;
        int r;

        if (size == 0 || rounded == 0 || rounded > BUFFER_SIZE_MAX || rounded > (uint64_t) SIZE_MAX)
                return sd_bus_error_setf(error, ZCUSB_ERROR_INVALID_ARGUMENT,
                                         "Buffer size %llu is not between 1 byte and 1 TiB.",
                                         (unsigned long long) size);

        r = claim_take_count(c, QUOTA_BUFFERS, error);
        if (r < 0)
                return r;
        r = claim_charge(c, rounded, error);
        if (r < 0) {
                claim_put_count(c, QUOTA_BUFFERS);
                return r;
        }
        b = calloc(1, sizeof(*b));
        r = b ? memfd_new_sealed("zcusb-buffer", (size_t) rounded, &fd, &map) : -ENOMEM;
        if (r < 0) {
                free(b);
                claim_uncharge(c, rounded);
                claim_put_count(c, QUOTA_BUFFERS);
                log_warning_errno(r, "Cannot allocate a %llu-byte buffer: %m", (unsigned long long) rounded);
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED, "zcusbd cannot allocate a %llu-byte buffer: %s.",
                                         (unsigned long long) rounded, strerror(-r));
        }
        *b = (Buffer) {
                .backend = { .map = map, .size = rounded, .id = c->next_buffer_id++ },
                .claim = c,
        };
        TAILQ_INSERT_TAIL(&c->buffers, b, link);
        c->n_buffers++;
        r = queue_kernel_add_buffer(c, &b->backend);
        if (r < 0) {
                buffer_free(b);
                return sd_bus_error_setf(error, ZCUSB_ERROR_FAILED,
                                         "zcusb.ko cannot pin the buffer for this claim's queues: %s.", strerror(-r));
        }
        *ret = b;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

Buffer *buffer_free(Buffer *b) {
        Claim *c;

        if (!b)
                return NULL;
        c = b->claim;
        if (b->users > 0)
                log_error("Buffer %u of %s freed with %u transfers on it: bug.", b->backend.id, c->object_path,
                          b->users);
        TAILQ_REMOVE(&c->buffers, b, link);
        c->n_buffers--;
        if (c->backend_interface && c->backend->forget_buffer)
                c->backend->forget_buffer(c->backend_interface, &b->backend);
        munmap(b->backend.map, (size_t) b->backend.size);
        claim_uncharge(c, b->backend.size);
        claim_put_count(c, QUOTA_BUFFERS);
        free(b);
        return NULL;
}
