/* cp2p rendezvous: run a rendezvous point (/rendezvous/1.0.0, libp2p specs
 * rendezvous/README.md) with identify and ping, and print its counters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "cli_signals.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"
#include "cp2p/ping.h"
#include "cp2p/rendezvous.h"

#define MAX_LISTEN 8

typedef struct app {
    uv_loop_t loop;
    cp2p_host_t *h;
    cp2p_identify_t *id;
    cp2p_rendezvous_server_t *srv;
    cp2p_metrics_t *metrics;
    cli_signals_t sig;
    uv_timer_t timer;
    uint64_t stats_ms;
    int closing;
    int exit_code;
} app_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cp2p rendezvous --listen MULTIADDR... [options]\n"
            "  --listen MA            listen on MA (e.g. /ip4/0.0.0.0/tcp/4001); repeatable\n"
            "  --key FILE             identity key (default: a fresh Ed25519 key)\n"
            "  --min-ttl S            shortest registration accepted (default %d s)\n"
            "  --max-ttl S            longest (default and at most %d s)\n"
            "  --max-per-peer N       registrations of one peer (default %d)\n"
            "  --max-per-namespace N  registrations in one namespace (default %d)\n"
            "  --max-total N          registrations in all (default %d)\n"
            "  --max-per-ip N         registrations from one IPv4 address or IPv6 /64 (default %d;\n"
            "                         loopback is not counted unless --limit-loopback)\n"
            "  --limit-loopback       count loopback addresses in --max-per-ip too\n"
            "  --stats S              print the counters every S seconds (and on exit)\n"
            "  --metrics IP:PORT      serve GET /healthz and GET /metrics (Prometheus) over HTTP\n"
            "  --help                 this text\n"
            "prints 'Local peer id', 'Listening on' lines, and with --stats\n"
            "'rendezvous registrations=N peers=N namespaces=N registered=N refused=N ...'\n",
            CP2P_RENDEZVOUS_DEFAULT_MIN_TTL_S, CP2P_RENDEZVOUS_MAX_TTL_S,
            CP2P_RENDEZVOUS_DEFAULT_MAX_PER_PEER, CP2P_RENDEZVOUS_DEFAULT_MAX_PER_NAMESPACE,
            CP2P_RENDEZVOUS_DEFAULT_MAX_TOTAL, CP2P_RENDEZVOUS_DEFAULT_MAX_PER_IP);
}

static void print_stats(app_t *a)
{
    cp2p_rendezvous_server_stats_t st;
    cp2p_rendezvous_server_stats(a->srv, &st);
    printf("rendezvous registrations=%llu peers=%llu namespaces=%llu bytes=%llu registered=%llu "
           "refused=%llu refused_limit=%llu unregistered=%llu expired=%llu discovers=%llu "
           "bad_messages=%llu streams_refused=%llu\n",
           (unsigned long long)st.registrations, (unsigned long long)st.peers,
           (unsigned long long)st.namespaces, (unsigned long long)st.bytes,
           (unsigned long long)st.registered, (unsigned long long)st.refused,
           (unsigned long long)st.refused_limit, (unsigned long long)st.unregistered,
           (unsigned long long)st.expired, (unsigned long long)st.discovers,
           (unsigned long long)st.bad_messages, (unsigned long long)st.streams_refused);
    fflush(stdout);
}

static void on_timer(uv_timer_t *t)
{
    print_stats(t->data);
}

static void host_closed(void *arg)
{
    app_t *a = arg;
    a->h = NULL;
    cli_signals_close(&a->sig);
    uv_close((uv_handle_t *)&a->timer, NULL);
}

static void server_closed(void *arg)
{
    app_t *a = arg;
    cp2p_identify_free(a->id);
    a->id = NULL;
    cp2p_host_close(a->h, host_closed, a);
}

static void shutdown_app(app_t *a, int code)
{
    if (a->closing)
        return;
    a->closing = 1;
    a->exit_code = code;
    uv_timer_stop(&a->timer);
    if (a->metrics) /* it reads the server's counters: it goes first */
        cp2p_metrics_stop(a->metrics, NULL, NULL);
    a->metrics = NULL;
    if (a->srv) {
        if (a->stats_ms)
            print_stats(a);
        cp2p_rendezvous_server_close(a->srv, server_closed, a);
        a->srv = NULL;
    } else {
        server_closed(a);
    }
}

static void on_signal(void *arg)
{
    shutdown_app(arg, 0);
}

int cmd_rendezvous(int argc, char **argv)
{
    app_t a = {0};
    const char *listen_v[MAX_LISTEN];
    cli_list_t listen = {listen_v, 0, MAX_LISTEN};
    const char *key_file = NULL, *metrics = NULL;
    double min_ttl = 0, max_ttl = 0, per_peer = 0, per_ns = 0, total = 0, stats = 0, per_ip = 0;
    int limit_loopback = 0;
    const cli_opt_t opts[] = {
        CLI_OPTION("--listen", CLI_LIST, &listen),
        CLI_OPTION("--key", CLI_STR, &key_file),
        CLI_OPTION("--metrics", CLI_STR, &metrics),
        CLI_NUMBER("--min-ttl", &min_ttl, 1, CP2P_RENDEZVOUS_MAX_TTL_S),
        CLI_NUMBER("--max-ttl", &max_ttl, 1, CP2P_RENDEZVOUS_MAX_TTL_S),
        CLI_NUMBER("--max-per-peer", &per_peer, 1, 1e6),
        CLI_NUMBER("--max-per-namespace", &per_ns, 1, 1e7),
        CLI_NUMBER("--max-total", &total, 1, 1e7),
        CLI_NUMBER("--max-per-ip", &per_ip, 1, 1e7),
        CLI_OPTION("--limit-loopback", CLI_FLAG, &limit_loopback),
        CLI_NUMBER("--stats", &stats, 0.01, 86400),
        CLI_END,
    };
    int prc = cli_parse("rendezvous", argc, argv, opts, usage, NULL);
    if (prc)
        return prc == CLI_HELP ? CLI_OK : prc;
    if (!listen.n)
        return cli_usage("rendezvous", "give --listen");
    cp2p_rendezvous_server_config_t scfg = {
        .min_ttl_s = (uint32_t)min_ttl,
        .max_ttl_s = (uint32_t)max_ttl,
        .max_per_peer = (uint32_t)per_peer,
        .max_per_namespace = (uint32_t)per_ns,
        .max_total = (uint32_t)total,
        .max_per_ip = (uint32_t)per_ip,
        .limit_loopback = limit_loopback,
    };
    if (min_ttl && max_ttl && min_ttl > max_ttl)
        return cli_usage("rendezvous", "--min-ttl is over --max-ttl");
    if (!max_ttl && min_ttl > CP2P_RENDEZVOUS_MAX_TTL_S)
        return cli_usage("rendezvous", "--min-ttl is over %d", CP2P_RENDEZVOUS_MAX_TTL_S);
    cp2p_host_config_t cfg = {0};
    int rc;
    if (key_file && (rc = cp2p_privkey_load_file(key_file, &cfg.identity)) < 0)
        return cli_fail("rendezvous", "cannot read key %s: %s", key_file, cli_key_error(rc));
    a.stats_ms = (uint64_t)(stats * 1000);
    uv_loop_init(&a.loop);
    uv_timer_init(&a.loop, &a.timer);
    a.timer.data = &a;
    cli_signals_start(&a.sig, &a.loop, on_signal, &a);

    char what[CP2P_MULTIADDR_STRMAX + 32] = "cannot create the host";
    rc = cp2p_host_new(&a.loop, &cfg, &a.h);
    if (!rc)
        rc = cp2p_ping_enable(a.h);
    if (!rc)
        rc = cp2p_identify_enable(a.h, NULL, &a.id);
    if (!rc) {
        snprintf(what, sizeof what, "cannot start the rendezvous point");
        rc = cp2p_rendezvous_server_new(a.h, &scfg, &a.srv);
    }
    for (size_t i = 0; !rc && i < listen.n; i++) {
        cp2p_multiaddr_t ma;
        snprintf(what, sizeof what, "cannot listen on %s", listen.v[i]);
        rc = cp2p_multiaddr_parse(listen.v[i], &ma);
        if (!rc) {
            rc = cp2p_host_listen(a.h, &ma);
            cp2p_multiaddr_free(&ma);
        }
    }
    if (!rc && metrics) {
        cp2p_metrics_config_t cfg_m = {.listen = metrics,
                                       .sources = {cp2p_rendezvous_server_metrics_source(a.srv)}};
        snprintf(what, sizeof what, "cannot serve metrics on %s (IP:PORT expected)", metrics);
        rc = cp2p_metrics_start(a.h, &cfg_m, &a.metrics);
    }
    if (!rc) {
        cli_print_peer_id(a.h);
        rc = cli_print_listen_addrs(a.h, "Listening on ");
    }
    if (rc) {
        fprintf(stderr, "cp2p: rendezvous: %s: %s\n", what, cp2p_strerror(rc));
        if (a.h) {
            shutdown_app(&a, 1);
        } else {
            cli_signals_close(&a.sig);
            uv_close((uv_handle_t *)&a.timer, NULL);
        }
        a.exit_code = 1;
    } else if (a.stats_ms) {
        uv_timer_start(&a.timer, on_timer, a.stats_ms, a.stats_ms);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    return a.exit_code;
}
