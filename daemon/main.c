/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "manager.h"
#include "remote-record.h"
#include "remote.h"
#include "util.h"

static const char *arg_bus_address;
static const char *arg_config = ZCUSB_CONFIG_FILE;
static bool arg_config_explicit;
static bool arg_check_config;
static int arg_log_level = -1;

static void help(void) {
        printf("Usage: zcusbd [OPTIONS]\n\n"
               "Zero-copy USB broker: gives unprivileged and sandboxed clients the USB\n"
               "interfaces policy allows them, over D-Bus (org.zcusb1).\n"
               "Normally started by systemd (zcusbd.service) or D-Bus activation.\n\n"
               "Options:\n"
               "  -h --help               Show this help and exit\n"
               "     --version            Show the version and exit\n"
               "     --bus-address=ADDR   Serve on this D-Bus address instead of the system bus\n"
               "     --config=FILE        Configuration file (default %s);\n"
               "                          drop-ins are read from FILE.d/*.conf\n"
               "     --check-config       Parse the configuration, print it and exit\n"
               "     --log-level=LEVEL    err, warning, notice, info or debug (overrides LogLevel=)\n\n"
               "Exit status: 0 on a clean stop, %d when the configuration is invalid,\n"
               "1 on any other failure.\n\n"
               "See zcusbd(8) and zcusbd.conf(5).\n",
               ZCUSB_CONFIG_FILE, EX_CONFIG);
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_BUS_ADDRESS,
                ARG_CONFIG,
                ARG_CHECK_CONFIG,
                ARG_LOG_LEVEL,
        };
        static const struct option options[] = {
                { "help",         no_argument,       NULL, 'h' },
                { "version",      no_argument,       NULL, ARG_VERSION },
                { "bus-address",  required_argument, NULL, ARG_BUS_ADDRESS },
                { "config",       required_argument, NULL, ARG_CONFIG },
                { "check-config", no_argument,       NULL, ARG_CHECK_CONFIG },
                { "log-level",    required_argument, NULL, ARG_LOG_LEVEL },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("zcusbd %s\n", ZCUSB_VERSION);
                        return 0;
                case ARG_BUS_ADDRESS:
                        arg_bus_address = optarg;
                        break;
                case ARG_CONFIG:
                        arg_config = optarg;
                        arg_config_explicit = true;
                        break;
                case ARG_CHECK_CONFIG:
                        arg_check_config = true;
                        break;
                case ARG_LOG_LEVEL:
                        arg_log_level = log_level_from_string(optarg);
                        if (arg_log_level < 0) {
                                fprintf(stderr, "zcusbd: --log-level=%s: use err, warning, notice, info or debug\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                default:
                        fprintf(stderr, "zcusbd: see 'zcusbd --help'\n");
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "zcusbd: unexpected argument '%s'; see 'zcusbd --help'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static void print_config(const Config *c) {
        char a[32], b[32], g[32];

        printf("[Daemon]\nBackend=%s\nLoadModule=%s\n\n", backend_choice_to_string(c->backend),
               c->load_module ? "yes" : "no");
        printf("[Quota]\nBytesPerClient=%s\nBytesPerUser=%s\nBytesGlobal=%s\n"
               "ClaimsPerClient=%u\nBuffersPerClient=%u\nQueuesPerClient=%u\nInFlightPerClient=%u\n"
               "ClientsPerUser=%u\nClientsGlobal=%u\n",
               format_size(a, sizeof(a), c->bytes_per_client), format_size(b, sizeof(b), c->bytes_per_user),
               format_size(g, sizeof(g), c->bytes_global), c->claims_per_client, c->buffers_per_client,
               c->queues_per_client, c->in_flight_per_client, c->clients_per_user, c->clients_global);
        printf("\n[Remote]\nAllowHosts=%s\nAllowUsers=%s\nAllowGroups=%s\nAttach=%s\nTimeoutSec=%u\n"
               "LinkTimeoutSec=%u\nMaxDevices=%u\nHelperSocket=%s\n",
               c->remote_allow_hosts, c->remote_allow_users, c->remote_allow_groups, c->remote_attach,
               c->remote_timeout_sec, c->remote_link_timeout_sec, c->remote_max_devices, c->remote_helper_socket);
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) s;
        log_info("Received %s, stopping.", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping: ending claims.");
        manager_shutdown(m);
        return 0;
}

/* zcusbd holds two eventfds per queue and a device fd per claim: size the
 * soft fd limit from the configured quotas (up to the hard limit, which
 * systemd sets high), so that clients within their quotas never make it
 * run out of descriptors. Beyond it, answers are named errors. */
static void raise_fd_limit(const Config *c) {
        uint64_t want = (uint64_t) c->clients_global * ((uint64_t) c->queues_per_client * 2 + c->claims_per_client) +
                        1024; /* the bus, udev, devices, the log: slack */
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
                return;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || want < rl.rlim_max ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_warning_errno(errno, "Cannot raise the file descriptor limit to %llu: %m",
                                  (unsigned long long) rl.rlim_cur);
        else if (rl.rlim_cur < want)
                log_warning("File descriptor limit %llu is below the %llu the quotas may need (raise "
                            "LimitNOFILE= or lower ClientsGlobal=).", (unsigned long long) rl.rlim_cur,
                            (unsigned long long) want);
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *config_error = NULL;
        Config config;
        int r, exit_code = 0;

        log_setup();
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EX_USAGE : 0;

        config_init(&config);
        r = config_load(&config, arg_config, arg_config_explicit, &config_error);
        if (r < 0) {
                log_error("Invalid configuration: %s", config_error ?: strerror(-r));
                if (config_error && !arg_check_config)
                        (void) sd_notifyf(false, "STATUS=Invalid configuration: %s", config_error);
                return EX_CONFIG;
        }
        log_set_max_level(arg_log_level >= 0 ? arg_log_level : config.log_level);
        if (arg_check_config) {
                print_config(&config);
                return 0;
        }

        raise_fd_limit(&config);
        r = manager_new(&config, &m);
        if (r < 0)
                return log_error_errno(r, "Cannot set up: %m"), 1;

        /* Watchdog pings come from the loop itself: a stuck loop gets us restarted. */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Cannot enable the watchdog: %m");
        r = sd_event_add_signal(m->event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_exit_signal, m);
        if (r < 0)
                return log_error_errno(r, "Cannot handle signals: %m"), 1;

        r = manager_connect_bus(m, arg_bus_address);
        if (r < 0)
                return 1;
        /* Ports a crashed zcusbd left attached go before anything is
         * attached again. */
        remote_record_reap(m->runtime_dir);
        r = manager_start_udev(m);
        if (r < 0)
                return 1;
        r = manager_request_name(m);
        if (r < 0)
                return 1;
        /* After enumeration, so an attached device is recognised as it comes. */
        r = remote_start_persistent(m);
        if (r < 0)
                return 1;

        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving %zu USB devices, backend %s.", m->n_devices,
                          m->backend->name);
        log_info("zcusbd %s ready on %s, backend %s.", ZCUSB_VERSION, arg_bus_address ?: "the system bus",
                 m->backend->name);

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), 1;
        exit_code = r;
        log_info("Stopped.");
        return exit_code;
}

int main(int argc, char *argv[]) {
        return run(argc, argv);
}
