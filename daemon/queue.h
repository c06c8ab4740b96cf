/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "forward.h"
#include "ring.h"

/* A submission/completion ring pair in a memfd, with its two eventfds. */
struct Queue {
        Claim *claim;
        uint32_t id;
        int fd;
        uint8_t *map;
        size_t size;
        Ring ring;

        int submit_fd;   /* client -> zcusbd */
        int complete_fd; /* zcusbd -> client */
        sd_event_source *submit_source;
        sd_event_source *defer_source; /* rescan + doorbell, once per batch */
        sd_event_source *poll_source;  /* rescan while relying on completions */

        unsigned in_flight;            /* transfers started from this queue */
        struct zcusb_cqe *backlog;     /* completions the ring had no room for */
        uint32_t n_backlog;
        bool posted;                   /* completions posted since the last doorbell */

        TAILQ_ENTRY(Queue) link;
};

int queue_new(Claim *c, uint32_t id, uint32_t entries, Queue **ret);
Queue *queue_free(Queue *q);

/* Schedule a rescan of the submission ring and a doorbell for completions. */
void queue_kick(Queue *q);

/* Post a completion (to the ring, or to the backlog when it is full). */
void queue_complete(Queue *q, uint64_t user_data, int status, uint32_t actual);
