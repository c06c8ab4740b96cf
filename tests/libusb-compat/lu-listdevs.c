/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A plain libusb-1.0 program (compiled against <libusb.h>, linked against
 * libusb-1.0.so.0): lists every device with its descriptors and strings as
 * JSON lines, one per device. The tests run it with the compat library and
 * compare with what the fixtures (tier 2) or the real libusb as root (tier 3)
 * say. Usage: lu-listdevs [--no-strings]
 */
#include <libusb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void hex(const unsigned char *p, int n) {
        putchar('"');
        for (int i = 0; i < n; i++)
                printf("%02x", p[i]);
        putchar('"');
}

static void string(libusb_device_handle *h, uint8_t index) {
        unsigned char s[256];
        int r;

        if (!h || !index) {
                printf("null");
                return;
        }
        r = libusb_get_string_descriptor_ascii(h, index, s, sizeof(s));
        if (r < 0)
                printf("\"<%s>\"", libusb_error_name(r));
        else
                printf("\"%s\"", s);
}

int main(int argc, char **argv) {
        bool strings = !(argc > 1 && strcmp(argv[1], "--no-strings") == 0);
        libusb_device **list;
        ssize_t n;
        int r;

        r = libusb_init(NULL);
        if (r < 0) {
                fprintf(stderr, "libusb_init: %s\n", libusb_error_name(r));
                return 1;
        }
        n = libusb_get_device_list(NULL, &list);
        if (n < 0) {
                fprintf(stderr, "libusb_get_device_list: %s\n", libusb_error_name((int) n));
                return 1;
        }
        for (ssize_t i = 0; i < n; i++) {
                libusb_device *dev = list[i], *parent = libusb_get_parent(dev);
                struct libusb_device_descriptor d;
                libusb_device_handle *h = NULL;
                uint8_t ports[8];
                int np;

                libusb_get_device_descriptor(dev, &d);
                if (strings && libusb_open(dev, &h) < 0)
                        h = NULL;
                printf("{\"bus\":%u,\"address\":%u,\"speed\":%d,\"vid\":%u,\"pid\":%u,\"bcd_usb\":%u,"
                       "\"class\":%u,\"configurations\":%u,\"parent\":",
                       libusb_get_bus_number(dev), libusb_get_device_address(dev), libusb_get_device_speed(dev),
                       d.idVendor, d.idProduct, d.bcdUSB, d.bDeviceClass, d.bNumConfigurations);
                if (parent)
                        printf("[%u,%u]", libusb_get_bus_number(parent), libusb_get_device_address(parent));
                else
                        printf("null");
                np = libusb_get_port_numbers(dev, ports, sizeof(ports));
                printf(",\"ports\":[");
                for (int k = 0; k < np; k++)
                        printf("%s%u", k ? "," : "", ports[k]);
                printf("],\"manufacturer\":");
                string(h, d.iManufacturer);
                printf(",\"product\":");
                string(h, d.iProduct);
                printf(",\"serial\":");
                string(h, d.iSerialNumber);
                printf(",\"configs\":[");
                for (uint8_t c = 0; c < d.bNumConfigurations; c++) {
                        struct libusb_config_descriptor *cfg;

                        if (libusb_get_config_descriptor(dev, c, &cfg) < 0) {
                                printf("%snull", c ? "," : "");
                                continue;
                        }
                        printf("%s{\"value\":%u,\"total\":%u,\"extra\":", c ? "," : "", cfg->bConfigurationValue,
                               cfg->wTotalLength);
                        hex(cfg->extra, cfg->extra_length);
                        printf(",\"interfaces\":[");
                        for (int k = 0; k < cfg->bNumInterfaces; k++)
                                for (int a = 0; a < cfg->interface[k].num_altsetting; a++) {
                                        const struct libusb_interface_descriptor *alt = &cfg->interface[k].altsetting[a];
                                        printf("%s{\"number\":%u,\"alt\":%u,\"class\":%u,\"extra\":", k || a ? "," : "",
                                               alt->bInterfaceNumber, alt->bAlternateSetting, alt->bInterfaceClass);
                                        hex(alt->extra, alt->extra_length);
                                        printf(",\"endpoints\":[");
                                        for (int e = 0; e < alt->bNumEndpoints; e++) {
                                                const struct libusb_endpoint_descriptor *ep = &alt->endpoint[e];
                                                printf("%s[%u,%u,%u,%u]", e ? "," : "", ep->bEndpointAddress,
                                                       ep->bmAttributes, ep->wMaxPacketSize, ep->bInterval);
                                        }
                                        printf("]}");
                                }
                        printf("]}");
                        libusb_free_config_descriptor(cfg);
                }
                printf("]");
                if (h) {
                        struct libusb_bos_descriptor *bos;
                        r = libusb_get_bos_descriptor(h, &bos);
                        if (r == 0) {
                                printf(",\"bos_caps\":[");
                                for (int k = 0; k < bos->bNumDeviceCaps; k++)
                                        printf("%s%u", k ? "," : "", bos->dev_capability[k]->bDevCapabilityType);
                                printf("]");
                                libusb_free_bos_descriptor(bos);
                        } else
                                printf(",\"bos\":\"%s\"", libusb_error_name(r));
                        libusb_close(h);
                }
                printf("}\n");
        }
        libusb_free_device_list(list, 1);
        libusb_exit(NULL);
        return 0;
}
