/* cp2p relay: a circuit relay v2 server (libp2p specs relay/circuit-v2.md)
 * with ping and identify, printing its peer ID and listen addresses; with
 * --rendezvous a rendezvous point too (rendezvous/README.md), where peers
 * behind NAT that reserved here meet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "cli_autonat.h"
#include "cli_signals.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/log.h"
#include "cp2p/multiaddr.h"
#include "cp2p/ping.h"
#include "cp2p/relay.h"
#include "cp2p/rendezvous.h"

#define MAX_LISTEN 8

typedef struct app {
    uv_loop_t loop;
    cp2p_host_t *h;
    cp2p_identify_t *id;
    cp2p_relay_t *relay;
    cp2p_rendezvous_server_t *rdv;
    cli_autonat_t nat; /* the AutoNAT service runs by default */
    cli_signals_t sig;
    uv_timer_t stats;
    int stats_on;
    int closing;
    int exit_code;
} app_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cp2p relay [--listen MULTIADDR]... [options]\n"
            "  --listen MA                 listen on MA (default /ip4/0.0.0.0/tcp/0); repeatable\n"
            "  --key FILE                  identity key (default: a fresh Ed25519 key)\n"
            "  --reservation-ttl S         how long a reservation lasts (default %d)\n"
            "  --max-reservations N        reservations held at once (default %d)\n"
            "  --max-reservations-per-ip N reservations from one IP address (default %d)\n"
            "  --max-circuits N            open circuits (default %d)\n"
            "  --max-circuits-per-peer N   open circuits from or to one peer (default %d)\n"
            "  --limit-duration S          a circuit's life in seconds (default %d)\n"
            "  --limit-data BYTES          bytes per direction per circuit (default %d)\n"
            "  --no-limit                  circuits without duration and data limits\n"
            "  --rendezvous                also run a rendezvous point (/rendezvous/1.0.0, the\n"
            "                              limits of cp2p rendezvous' defaults)\n"
            "  --stats S                   print the relay's counters every S seconds\n"
            "  --no-autonat-service        do not answer AutoNAT dial-back requests (on by default)\n"
            "  --help                      this text\n",
            CP2P_RELAY_DEFAULT_RESERVATION_TTL_S, CP2P_RELAY_DEFAULT_MAX_RESERVATIONS,
            CP2P_RELAY_DEFAULT_MAX_RESERVATIONS_PER_IP, CP2P_RELAY_DEFAULT_MAX_CIRCUITS,
            CP2P_RELAY_DEFAULT_MAX_CIRCUITS_PER_PEER, CP2P_RELAY_DEFAULT_LIMIT_DURATION_S,
            CP2P_RELAY_DEFAULT_LIMIT_DATA);
    cli_autonat_usage(f);
}

static void on_closed_handle(uv_handle_t *hd)
{
}

static void host_closed(void *arg)
{
    app_t *a = arg;
    a->h = NULL;
    cli_signals_close(&a->sig);
    uv_close((uv_handle_t *)&a->stats, on_closed_handle);
}

static void relay_closed(void *arg)
{
    app_t *a = arg;
    cli_autonat_stop(&a->nat);
    cp2p_identify_free(a->id);
    a->id = NULL;
    cp2p_host_close(a->h, host_closed, a);
}

static void rdv_closed(void *arg)
{
    app_t *a = arg;
    if (a->relay)
        cp2p_relay_close(a->relay, relay_closed, a);
    else
        relay_closed(a);
}

static void shutdown_app(app_t *a, int code)
{
    if (a->closing)
        return;
    a->closing = 1;
    a->exit_code = code;
    uv_timer_stop(&a->stats);
    if (a->rdv)
        cp2p_rendezvous_server_close(a->rdv, rdv_closed, a);
    else
        rdv_closed(a);
}

static void on_signal(void *arg)
{
    shutdown_app(arg, 0);
}

static void print_stats(app_t *a)
{
    cp2p_relay_stats_t s;
    cp2p_relay_stats(a->relay, &s);
    printf("relay stats reservations=%llu circuits=%llu reservations_accepted=%llu "
           "reservations_refused=%llu circuits_opened=%llu circuits_refused=%llu "
           "circuits_limited=%llu bytes_relayed=%llu\n",
           (unsigned long long)s.reservations, (unsigned long long)s.circuits,
           (unsigned long long)s.reservations_accepted, (unsigned long long)s.reservations_refused,
           (unsigned long long)s.circuits_opened, (unsigned long long)s.circuits_refused,
           (unsigned long long)s.circuits_limited, (unsigned long long)s.bytes_relayed);
    if (a->rdv) {
        cp2p_rendezvous_server_stats_t r;
        cp2p_rendezvous_server_stats(a->rdv, &r);
        printf("rendezvous registrations=%llu peers=%llu namespaces=%llu registered=%llu "
               "refused=%llu refused_limit=%llu discovers=%llu\n",
               (unsigned long long)r.registrations, (unsigned long long)r.peers,
               (unsigned long long)r.namespaces, (unsigned long long)r.registered,
               (unsigned long long)r.refused, (unsigned long long)r.refused_limit,
               (unsigned long long)r.discovers);
    }
    fflush(stdout);
}

static void on_stats(uv_timer_t *t)
{
    print_stats(t->data);
}

int cmd_relay(int argc, char **argv)
{
    app_t a = {.nat = CLI_AUTONAT_INIT(a.nat)};
    int no_service = 0;
    const char *listen_v[MAX_LISTEN];
    cli_list_t listen = {listen_v, 0, MAX_LISTEN};
    const char *key_file = NULL;
    double ttl = 0, max_rsv = 0, max_rsv_ip = 0, max_circ = 0, max_circ_peer = 0, dur = 0,
           data = 0, stats = 0;
    int no_limit = 0, rendezvous = 0;
    const cli_opt_t opts[] = {
        CLI_OPTION("--listen", CLI_LIST, &listen),
        CLI_OPTION("--key", CLI_STR, &key_file),
        CLI_NUMBER("--reservation-ttl", &ttl, 1, 86400 * 365),
        CLI_NUMBER("--max-reservations", &max_rsv, 1, 1e6),
        CLI_NUMBER("--max-reservations-per-ip", &max_rsv_ip, 1, 1e6),
        CLI_NUMBER("--max-circuits", &max_circ, 1, 1e6),
        CLI_NUMBER("--max-circuits-per-peer", &max_circ_peer, 1, 1e6),
        CLI_NUMBER("--limit-duration", &dur, 1, 86400 * 365),
        CLI_NUMBER("--limit-data", &data, 1, 1e15),
        CLI_OPTION("--no-limit", CLI_FLAG, &no_limit),
        CLI_OPTION("--rendezvous", CLI_FLAG, &rendezvous),
        CLI_NUMBER("--stats", &stats, 0.1, 86400),
        CLI_OPTION("--no-autonat-service", CLI_FLAG, &no_service),
        CLI_AUTONAT_OPTIONS(&a.nat),
        CLI_END,
    };
    int prc = cli_parse("relay", argc, argv, opts, usage, NULL);
    if (prc)
        return prc == CLI_HELP ? CLI_OK : prc;
    cp2p_host_config_t cfg = {0};
    a.nat.service = !no_service;
    int rc = cli_autonat_config(&a.nat, "relay", &cfg);
    if (rc)
        return rc;
    if (key_file && (rc = cp2p_privkey_load_file(key_file, &cfg.identity)) < 0)
        return cli_fail("relay", "cannot read key %s: %s", key_file, cli_key_error(rc));
    cp2p_relay_config_t rcfg = {
        .reservation_ttl_s = (uint32_t)ttl,
        .max_reservations = (uint32_t)max_rsv,
        .max_reservations_per_ip = (uint32_t)max_rsv_ip,
        .max_circuits = (uint32_t)max_circ,
        .max_circuits_per_peer = (uint32_t)max_circ_peer,
        .limit_duration_s = (uint32_t)dur,
        .limit_data = (uint64_t)data,
        .no_limit = no_limit,
    };
    uv_loop_init(&a.loop);
    uv_timer_init(&a.loop, &a.stats);
    a.stats.data = &a;
    cli_signals_start(&a.sig, &a.loop, on_signal, &a);
    char what[CP2P_MULTIADDR_STRMAX + 32] = "cannot create the host";
    rc = cp2p_host_new(&a.loop, &cfg, &a.h);
    if (!rc)
        rc = cp2p_ping_enable(a.h);
    if (!rc)
        rc = cp2p_identify_enable(a.h, NULL, &a.id);
    if (!rc) {
        snprintf(what, sizeof what, "cannot start the relay service");
        rc = cp2p_relay_start(a.h, &rcfg, &a.relay);
    }
    if (!rc && rendezvous) {
        snprintf(what, sizeof what, "cannot start the rendezvous point");
        rc = cp2p_rendezvous_server_new(a.h, NULL, &a.rdv);
    }
    if (!listen.n)
        listen.v[listen.n++] = "/ip4/0.0.0.0/tcp/0";
    for (size_t i = 0; !rc && i < listen.n; i++) {
        cp2p_multiaddr_t ma;
        snprintf(what, sizeof what, "cannot listen on %s", listen.v[i]);
        rc = cp2p_multiaddr_parse(listen.v[i], &ma);
        if (!rc) {
            rc = cp2p_host_listen(a.h, &ma);
            cp2p_multiaddr_free(&ma);
        }
    }
    if (!rc) {
        cli_print_peer_id(a.h);
        rc = cli_print_listen_addrs(a.h, "Listening on ");
    }
    if (!rc) {
        snprintf(what, sizeof what, "cannot start AutoNAT");
        rc = cli_autonat_start(&a.nat, a.h);
    }
    if (!rc && stats > 0)
        uv_timer_start(&a.stats, on_stats, (uint64_t)(stats * 1000), (uint64_t)(stats * 1000));
    if (rc) {
        fprintf(stderr, "cp2p: relay: %s: %s\n", what, cp2p_strerror(rc));
        if (a.h)
            shutdown_app(&a, 1);
        else
            host_closed(&a);
        a.exit_code = 1;
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    return a.exit_code;
}
