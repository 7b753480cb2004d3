/* cp2p mdns: find peers on the local network and be found (libp2p
 * discovery/mdns spec); prints one line per discovered and expired address. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "cli_signals.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/mdns.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"

#define MAX_LISTEN 8

typedef struct app {
    uv_loop_t loop;
    cp2p_host_t *h;
    cp2p_mdns_t *mdns;
    cp2p_metrics_t *metrics;
    cli_signals_t sig; /* SIGINT, SIGTERM: stop */
    int closing;
    int stats;
} app_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cp2p mdns [--listen MULTIADDR]... [options]\n"
            "  --listen MA       listen on MA (default /ip4/0.0.0.0/tcp/0); repeatable\n"
            "  --interval S      seconds between queries (default 10)\n"
            "  --ttl S           TTL of our records in seconds (default 120)\n"
            "  --dial            connect to the peers discovered (prints 'connected <peer id>')\n"
            "  --loopback        use loopback interfaces and announce loopback addresses\n"
            "  --no-ipv4, --no-ipv6  leave that family out\n"
            "  --key FILE        identity key (default: a fresh Ed25519 key)\n"
            "  --psk FILE        private network key: a swarm.key file (cp2p keygen --psk)\n"
            "  --stats           print the packet counters on exit\n"
            "  --metrics IP:PORT serve GET /healthz and GET /metrics (Prometheus) over HTTP\n"
            "  --help            this text\n"
            "prints 'discovered <peer id> <multiaddr>' and 'expired <peer id> <multiaddr>'\n");
}

static void host_closed(void *arg)
{
    app_t *a = arg;
    a->h = NULL;
    cli_signals_close(&a->sig);
}

static void mdns_stopped(void *arg)
{
    app_t *a = arg;
    cp2p_host_close(a->h, host_closed, a);
}

static void shutdown_app(app_t *a)
{
    if (a->closing)
        return;
    a->closing = 1;
    if (a->metrics)
        cp2p_metrics_stop(a->metrics, NULL, NULL);
    a->metrics = NULL;
    if (!a->mdns) {
        mdns_stopped(a);
        return;
    }
    if (a->stats) {
        cp2p_mdns_stats_t st;
        cp2p_mdns_stats(a->mdns, &st);
        printf("stats received=%llu malformed=%llu rejected=%llu sent=%llu send_errors=%llu "
               "discovered=%llu expired=%llu over_limit=%llu\n",
               (unsigned long long)st.rx_packets, (unsigned long long)st.rx_malformed,
               (unsigned long long)st.rx_rejected, (unsigned long long)st.tx_packets,
               (unsigned long long)st.tx_errors, (unsigned long long)st.discovered,
               (unsigned long long)st.expired, (unsigned long long)st.over_limit);
        fflush(stdout);
    }
    cp2p_mdns_stop(a->mdns, mdns_stopped, a);
    a->mdns = NULL;
}

static void on_signal(void *arg)
{
    shutdown_app(arg);
}

static void on_mdns(cp2p_mdns_event_type_t type, const cp2p_peer_id_t *peer,
                    const cp2p_multiaddr_t *addr, void *arg)
{
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_buf_t s = {0};
    if (cp2p_peer_id_to_string(peer, id, sizeof id) || cp2p_multiaddr_to_string(addr, &s)) {
        cp2p_buf_free(&s);
        return;
    }
    printf("%s %s %s\n", type == CP2P_MDNS_DISCOVERED ? "discovered" : "expired", id, (char *)s.data);
    fflush(stdout);
    cp2p_buf_free(&s);
}

static void on_host_event(const cp2p_event_t *ev, void *arg)
{
    char id[CP2P_PEER_ID_STRMAX];
    if (ev->type != CP2P_EVENT_CONNECTED || cp2p_peer_id_to_string(ev->peer, id, sizeof id))
        return;
    printf("connected %s\n", id);
    fflush(stdout);
}

int cmd_mdns(int argc, char **argv)
{
    app_t a = {0};
    cp2p_mdns_config_t mc = {0};
    const char *listen_v[MAX_LISTEN];
    cli_list_t listen = {listen_v, 0, MAX_LISTEN};
    const char *psk_file = NULL;
    uint8_t psk[32];
    const char *key_file = NULL, *metrics = NULL;
    double interval = 0, ttl = 0;
    int stats = 0;
    const cli_opt_t opts[] = {
        CLI_OPTION("--listen", CLI_LIST, &listen),
        CLI_OPTION("--dial", CLI_FLAG, &mc.dial),
        CLI_OPTION("--loopback", CLI_FLAG, &mc.loopback),
        CLI_OPTION("--no-ipv4", CLI_FLAG, &mc.no_ipv4),
        CLI_OPTION("--no-ipv6", CLI_FLAG, &mc.no_ipv6),
        CLI_OPTION("--stats", CLI_FLAG, &stats),
        CLI_OPTION("--key", CLI_STR, &key_file),
        CLI_OPTION("--psk", CLI_STR, &psk_file),
        CLI_OPTION("--metrics", CLI_STR, &metrics),
        CLI_NUMBER("--interval", &interval, 0.001, 86400 * 365),
        CLI_NUMBER("--ttl", &ttl, 1, 86400 * 365),
        CLI_END,
    };
    int prc = cli_parse("mdns", argc, argv, opts, usage, NULL);
    if (prc)
        return prc == CLI_HELP ? CLI_OK : prc;
    a.stats = stats;
    if (interval)
        mc.interval_ms = (uint32_t)(interval * 1000) ? (uint32_t)(interval * 1000) : 1;
    if (ttl)
        mc.ttl_s = (uint32_t)ttl;
    if (mc.no_ipv4 && mc.no_ipv6)
        return cli_usage("mdns", "--no-ipv4 and --no-ipv6 leave nothing");
    if (!listen.n)
        listen.v[listen.n++] = "/ip4/0.0.0.0/tcp/0";

    cp2p_host_config_t cfg = {0};
    int rc;
    if (psk_file && cli_load_psk("mdns", psk_file, psk))
        return CLI_FAIL;
    cfg.psk = psk_file ? psk : NULL;
    if (key_file && (rc = cp2p_privkey_load_file(key_file, &cfg.identity)) < 0)
        return cli_fail("mdns", "cannot read key %s: %s", key_file, cli_key_error(rc));
    uv_loop_init(&a.loop);
    cli_signals_start(&a.sig, &a.loop, on_signal, &a);

    char what[CP2P_MULTIADDR_STRMAX + 32] = "cannot create the host";
    rc = cp2p_host_new(&a.loop, &cfg, &a.h);
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
        cli_print_listen_addrs(a.h, "Listening on ");
        snprintf(what, sizeof what, "cannot start mDNS");
        if (mc.dial)
            rc = cp2p_host_subscribe(a.h, on_host_event, &a);
    }
    if (!rc)
        rc = cp2p_mdns_start(a.h, &mc, on_mdns, &a, &a.mdns);
    if (!rc && metrics) {
        cp2p_metrics_config_t cfg_m = {.listen = metrics, .sources = {cp2p_mdns_metrics_source(a.mdns)}};
        snprintf(what, sizeof what, "cannot serve metrics on %s (IP:PORT expected)", metrics);
        rc = cp2p_metrics_start(a.h, &cfg_m, &a.metrics);
    }
    int code = 0;
    if (rc) {
        fprintf(stderr, "cp2p: mdns: %s: %s\n", what, cp2p_strerror(rc));
        code = 1;
        if (a.h)
            shutdown_app(&a);
        else
            host_closed(&a);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    return code;
}
