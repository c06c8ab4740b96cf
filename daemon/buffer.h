/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "forward.h"

/* A sealed memfd shared with the client: the client maps it, zcusbd maps it
 * too and points transfers into it. Charged to the claim's client. */
struct Buffer {
        Claim *claim;
        uint32_t id;
        int fd;
        uint8_t *map;
        uint64_t size;  /* whole pages */
        unsigned users; /* transfers in flight on it */
        TAILQ_ENTRY(Buffer) link;
};

/* A memfd of SIZE bytes sealed against shrinking, growing and unsealing,
 * mapped shared and writable: what buffers and queue rings live in. */
int memfd_new_sealed(const char *name, size_t size, int *ret_fd, void **ret_map);

/* Create a buffer of at least SIZE bytes. The caller charges and uncharges. */
int buffer_new(Claim *c, uint32_t id, uint64_t size, Buffer **ret);
Buffer *buffer_free(Buffer *b);

/* Round SIZE up to whole pages; 0 if it would overflow. */
uint64_t buffer_round_size(uint64_t size);
