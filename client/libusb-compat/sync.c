/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Synchronous transfers: an asynchronous one, and events handled until it ends (as libusb). */
#include <stdlib.h>
#include <string.h>

#include "compat-internal.h"

static void LIBUSB_CALL sync_callback(struct libusb_transfer *t) {
        *(int *) t->user_data = 1;
}

static void wait_for_completion(struct libusb_transfer *t) {
        struct libusb_context *ctx = t->dev_handle->dev->ctx;
        int *completed = t->user_data;

        while (!*completed) {
                int r = libusb_handle_events_completed(ctx, completed);
                if (r < 0) {
                        if (r == LIBUSB_ERROR_INTERRUPTED)
                                continue;
                        log_err(ctx, "handling events failed (%s): cancelling the transfer", libusb_error_name(r));
                        libusb_cancel_transfer(t);
                }
        }
}

static int status_to_error(enum libusb_transfer_status status) {
        switch (status) {
        case LIBUSB_TRANSFER_COMPLETED: return 0;
        case LIBUSB_TRANSFER_TIMED_OUT: return LIBUSB_ERROR_TIMEOUT;
        case LIBUSB_TRANSFER_STALL:     return LIBUSB_ERROR_PIPE;
        case LIBUSB_TRANSFER_OVERFLOW:  return LIBUSB_ERROR_OVERFLOW;
        case LIBUSB_TRANSFER_NO_DEVICE: return LIBUSB_ERROR_NO_DEVICE;
        case LIBUSB_TRANSFER_ERROR:
        case LIBUSB_TRANSFER_CANCELLED: return LIBUSB_ERROR_IO;
        default:                        return LIBUSB_ERROR_OTHER;
        }
}

int LIBUSB_CALL libusb_control_transfer(libusb_device_handle *handle, uint8_t request_type, uint8_t request,
                                        uint16_t value, uint16_t index, unsigned char *data, uint16_t length,
                                        unsigned int timeout) {
        struct libusb_transfer *t;
        unsigned char *buffer;
        int completed = 0, r;

        t = libusb_alloc_transfer(0);
        if (!t)
                return LIBUSB_ERROR_NO_MEM;
        buffer = malloc(LIBUSB_CONTROL_SETUP_SIZE + (size_t) length);
        if (!buffer) {
                libusb_free_transfer(t);
                return LIBUSB_ERROR_NO_MEM;
        }
        libusb_fill_control_setup(buffer, request_type, request, value, index, length);
        if ((request_type & LIBUSB_ENDPOINT_DIR_MASK) == LIBUSB_ENDPOINT_OUT && length)
                memcpy(buffer + LIBUSB_CONTROL_SETUP_SIZE, data, length);
        libusb_fill_control_transfer(t, handle, buffer, sync_callback, &completed, timeout);
        t->flags = LIBUSB_TRANSFER_FREE_BUFFER;
        r = libusb_submit_transfer(t);
        if (r < 0) {
                libusb_free_transfer(t);
                return r;
        }
        wait_for_completion(t);
        if ((request_type & LIBUSB_ENDPOINT_DIR_MASK) == LIBUSB_ENDPOINT_IN && t->actual_length > 0)
                memcpy(data, libusb_control_transfer_get_data(t), (size_t) t->actual_length);
        r = t->status == LIBUSB_TRANSFER_COMPLETED ? t->actual_length : status_to_error(t->status);
        libusb_free_transfer(t);
        return r;
}

static int do_sync(libusb_device_handle *handle, unsigned char endpoint, unsigned char *buffer, int length,
                   int *transferred, unsigned int timeout, unsigned char type) {
        struct libusb_transfer *t;
        int completed = 0, r;

        t = libusb_alloc_transfer(0);
        if (!t)
                return LIBUSB_ERROR_NO_MEM;
        libusb_fill_bulk_transfer(t, handle, endpoint, buffer, length, sync_callback, &completed, timeout);
        t->type = type;
        r = libusb_submit_transfer(t);
        if (r < 0) {
                libusb_free_transfer(t);
                return r;
        }
        wait_for_completion(t);
        if (transferred)
                *transferred = t->actual_length;
        r = status_to_error(t->status);
        libusb_free_transfer(t);
        return r;
}

int LIBUSB_CALL libusb_bulk_transfer(libusb_device_handle *handle, unsigned char endpoint, unsigned char *data,
                                     int length, int *transferred, unsigned int timeout) {
        return do_sync(handle, endpoint, data, length, transferred, timeout, LIBUSB_TRANSFER_TYPE_BULK);
}

int LIBUSB_CALL libusb_interrupt_transfer(libusb_device_handle *handle, unsigned char endpoint,
                                          unsigned char *data, int length, int *transferred,
                                          unsigned int timeout) {
        return do_sync(handle, endpoint, data, length, transferred, timeout, LIBUSB_TRANSFER_TYPE_INTERRUPT);
}
