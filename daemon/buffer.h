/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-bus.h>

#include "backend.h"
#include "forward.h"

/* A sealed memfd shared with the client: the client maps it, zcusbd maps it
 * too and points transfers into it. zcusbd keeps only the mapping; the fd
 * exists to be handed to the client once.
 *
 * buffer_new() takes the claim's BuffersPerClient= count, charges the size,
 * creates the memfd and links the buffer into its claim; buffer_free()
 * undoes all of it (and tells the backend to drop what it holds for it). */
struct Buffer {
        BackendBuffer backend; /* map, size (whole pages), id: what backends see */
        Claim *claim;
        unsigned users;        /* transfers in flight on it */
        TAILQ_ENTRY(Buffer) link;
};

/* A memfd of SIZE bytes sealed against shrinking, growing and unsealing,
 * mapped shared and writable: what buffers and queue rings live in. */
int memfd_new_sealed(const char *name, size_t size, int *ret_fd, void **ret_map);

/* A buffer of at least SIZE bytes for claim C; *ret_fd (the caller's to
 * close) is what the client maps. Named bus errors go to *error. */
int buffer_new(Claim *c, uint64_t size, Buffer **ret, int *ret_fd, sd_bus_error *error);
/* Only for a buffer no transfer uses (users == 0). */
Buffer *buffer_free(Buffer *b);

static inline void buffer_freep(Buffer **b) {
        buffer_free(*b);
}

/* Round SIZE up to whole pages; 0 if it would overflow. */
uint64_t buffer_round_size(uint64_t size);
