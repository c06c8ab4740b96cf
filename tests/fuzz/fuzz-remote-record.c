/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote-record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A record file of zcusbd's runtime directory as the next start reads it
 * (remote_record_parse); what parses is written again and must read back
 * the same. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char text[REMOTE_RECORD_SIZE_MAX + 1];
        RemoteRecord rec, again;
        const char *why = NULL;
        int n;

        if (remote_record_parse((const char *) data, size, &rec, &why) < 0) {
                if (!why)
                        abort();
                return 0;
        }
        n = remote_record_format(&rec, text, sizeof(text));
        if (n < 0 || remote_record_parse(text, (size_t) n, &again, &why) < 0 || again.vhci_port != rec.vhci_port ||
            again.devid != rec.devid || again.port != rec.port || strcmp(again.host, rec.host) != 0 ||
            strcmp(again.busid, rec.busid) != 0)
                abort();
        return 0;
}
