/* cp2pd: the daemon, a drop-in for go-libp2p-daemon (p2pd): its flags, its
 * start-up output and its control protocol (go-libp2p-daemon specs/CONTROL.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/log.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"
#include "cp2p/ping.h"
#include "daemon/daemon.h"

#define MAX_ADDRS 16

/* Flags as p2pd (Go's flag package) takes them: -name or --name; booleans as
 * -name or -name=false, the others as -name value or -name=value. */
typedef struct opts {
    const char *listen, *host_addrs, *id, *muxer, *bootstrap_peers, *pubsub_router;
    const char *metrics_addr, *dht_datastore; /* cp2pd's own: p2pd has neither */
    int no_listen, noise, tls, plaintext, dht, dht_client, dht_server, bootstrap, pubsub, relay,
        quiet;
} opts_t;

static const struct flag {
    const char *name;
    int is_bool;
    size_t off;
    const char *help;
} flags[] = {
#define S(n, f, h) {n, 0, offsetof(opts_t, f), h}
#define B(n, f, h) {n, 1, offsetof(opts_t, f), h}
    S("listen", listen, "control socket multiaddr: /unix/<path> or /ip4/<ip>/tcp/<port> (default /unix/tmp/p2pd.sock)"),
    S("hostAddrs", host_addrs, "comma separated multiaddrs the host listens on (default /ip4/0.0.0.0/tcp/0)"),
    B("noListenAddrs", no_listen, "listen on no address (dial only)"),
    S("id", id, "identity: a private key file in the libp2p protobuf format (default: a fresh Ed25519 key)"),
    B("noise", noise, "offer /noise (default true)"),
    B("tls", tls, "offer /tls/1.0.0 (default true)"),
    B("plaintext", plaintext, "offer /plaintext/2.0.0 (default true)"),
    S("muxer", muxer, "yamux or mplex (default yamux)"),
    B("dht", dht, "enable the DHT in server mode"),
    B("dhtClient", dht_client, "enable the DHT in client mode"),
    B("dhtServer", dht_server, "enable the DHT in server mode"),
    B("bootstrap", bootstrap, "connect to the bootstrap peers and bootstrap the DHT"),
    B("b", bootstrap, "same as -bootstrap"),
    S("bootstrapPeers", bootstrap_peers, "comma separated bootstrap peer multiaddrs with /p2p/<id>"),
    B("pubsub", pubsub, "enable pubsub (not available yet: PUBSUB requests answer an error)"),
    S("pubsubRouter", pubsub_router, "gossipsub or floodsub"),
    B("relay", relay, "circuit relay (accepted for compatibility; cp2p has no relay yet)"),
    B("q", quiet, "be quiet: print nothing at start-up"),
    S("metricsAddr", metrics_addr, "serve GET /healthz and GET /metrics (Prometheus) on IP:PORT (cp2pd only)"),
    S("dhtDatastore", dht_datastore, "keep DHT records, providers and routing table in this directory (LMDB; cp2pd only)"),
#undef S
#undef B
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cp2pd [flags]\n"
               "A libp2p daemon driven through the go-libp2p-daemon control protocol.\n");
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        fprintf(f, "  -%-15s %s\n", flags[i].name, flags[i].help);
    fprintf(f, "set CP2P_LOG=error|warn|info|debug|trace for logs on stderr\n");
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (!strcmp(v, yes[i]))
            return *out = 1, 0;
        if (!strcmp(v, no[i]))
            return *out = 0, 0;
    }
    return -1;
}

static int parse_flags(int argc, char **argv, opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            fprintf(stderr, "cp2pd: unexpected argument %s (try 'cp2pd -h')\n", a);
            return 2;
        }
        a += a[1] == '-' ? 2 : 1;
        if (!strcmp(a, "h") || !strcmp(a, "help")) {
            usage(stdout);
            return 1;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const struct flag *f = NULL;
        for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
            if (strlen(flags[k].name) == len && !strncmp(flags[k].name, a, len))
                f = &flags[k];
        if (!f) {
            fprintf(stderr, "cp2pd: flag provided but not defined: -%.*s (try 'cp2pd -h')\n",
                    (int)len, a);
            return 2;
        }
        void *field = (char *)o + f->off;
        if (f->is_bool) {
            if (parse_bool(eq ? eq + 1 : "true", field) < 0) {
                fprintf(stderr, "cp2pd: invalid boolean value %s for -%s\n", eq + 1, f->name);
                return 2;
            }
        } else if (eq) {
            *(const char **)field = eq + 1;
        } else if (i + 1 < argc) {
            *(const char **)field = argv[++i];
        } else {
            fprintf(stderr, "cp2pd: flag needs an argument: -%s\n", f->name);
            return 2;
        }
    }
    return 0;
}

typedef struct app {
    uv_loop_t loop;
    cp2p_host_t *h;
    cp2p_identify_t *id;
    cp2p_dht_t *dht;
    cp2p_daemon_t *daemon;
    cp2p_metrics_t *metrics;
    uv_signal_t sigint, sigterm;
    int closing;
} app_t;

static void on_closed_handle(uv_handle_t *hd)
{
}

static void host_closed(void *arg)
{
    app_t *a = arg;
    uv_close((uv_handle_t *)&a->sigint, on_closed_handle);
    uv_close((uv_handle_t *)&a->sigterm, on_closed_handle);
}

static void daemon_closed(void *arg)
{
    app_t *a = arg;
    a->daemon = NULL;
    if (a->dht)
        cp2p_dht_free(a->dht);
    a->dht = NULL;
    if (a->id)
        cp2p_identify_free(a->id);
    a->id = NULL;
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
    if (a->daemon)
        cp2p_daemon_close(a->daemon, daemon_closed, a);
    else
        daemon_closed(a);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    shutdown_app(sig->data);
}

static int fail(app_t *a, const char *what, const char *detail)
{
    fprintf(stderr, "cp2pd: %s: %s\n", what, detail);
    return 1;
}

/* Each of a comma separated list of multiaddrs, parsed; CP2P_E* on the first bad one. */
static int each_addr(const char *list, int (*fn)(app_t *, const cp2p_multiaddr_t *), app_t *a,
                     const char **bad)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return CP2P_ENOMEM;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        cp2p_multiaddr_t ma;
        while (*t == ' ')
            t++;
        if (!*t)
            continue;
        rc = cp2p_multiaddr_parse(t, &ma);
        if (!rc) {
            rc = fn(a, &ma);
            cp2p_multiaddr_free(&ma);
        }
        if (rc < 0)
            *bad = list + (t - copy);
    }
    free(copy);
    return rc;
}

static int listen_one(app_t *a, const cp2p_multiaddr_t *ma)
{
    return cp2p_host_listen(a->h, ma);
}

static void on_bootstrap_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer,
                                   void *arg)
{
    if (status < 0)
        cp2p_log_warn("cp2pd", "bootstrap peer: %s", cp2p_strerror(status));
}

static void on_bootstrapped(cp2p_dht_t *d, int status, void *arg)
{
    if (status < 0)
        cp2p_log_warn("cp2pd", "DHT bootstrap: %s", cp2p_strerror(status));
}

static int bootstrap_one(app_t *a, const cp2p_multiaddr_t *ma)
{
    cp2p_multiaddr_component_t c;
    cp2p_peer_id_t peer;
    int rc = cp2p_multiaddr_get(ma, CP2P_MA_P2P, &c);
    if (!rc)
        rc = cp2p_peer_id_from_bytes(c.value, c.value_len, &peer);
    if (rc < 0)
        return CP2P_EINVAL;
    if (a->dht) {
        cp2p_multiaddr_t transport;
        rc = cp2p_multiaddr_dup(ma, &transport);
        if (!rc)
            cp2p_multiaddr_decapsulate_code(&transport, CP2P_MA_P2P);
        if (!rc)
            rc = cp2p_dht_add_peer(a->dht, &peer, &transport, 1);
        cp2p_multiaddr_free(&transport);
        if (rc < 0)
            return rc;
    }
    return cp2p_host_connect(a->h, ma, on_bootstrap_connected, a);
}

static void print_startup(app_t *a, const opts_t *o)
{
    cp2p_buf_t s = {0};
    cp2p_multiaddr_t ctl;
    if (cp2p_daemon_control_addr(a->daemon, &ctl) == 0) {
        cp2p_multiaddr_to_string(&ctl, &s);
        cp2p_multiaddr_free(&ctl);
    }
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(cp2p_host_peer_id(a->h), id, sizeof id);
    printf("Control socket: %s\nPeer ID: %s\nPeer Addrs:\n", s.len ? (char *)s.data : "", id);
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    if (cp2p_host_listen_addrs(a->h, &addrs, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            cp2p_buf_reset(&s);
            if (cp2p_multiaddr_to_string(&addrs[i], &s) == 0)
                printf("%s\n", (char *)s.data);
            cp2p_multiaddr_free(&addrs[i]);
        }
        free(addrs);
    }
    if (o->bootstrap && o->bootstrap_peers) {
        printf("Bootstrap peers:\n");
        char *copy = strdup(o->bootstrap_peers), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
            printf("%s\n", t);
        free(copy);
    }
    cp2p_buf_free(&s);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    opts_t o = {.listen = "/unix/tmp/p2pd.sock", .noise = 1, .tls = 1, .plaintext = 1, .relay = 1,
                .muxer = "yamux", .pubsub_router = "gossipsub"};
    int rc = parse_flags(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    app_t a = {0};
    if (strcmp(o.muxer, "yamux") && strcmp(o.muxer, "mplex"))
        return fail(&a, "-muxer", "must be yamux or mplex");
    if (strcmp(o.pubsub_router, "gossipsub") && strcmp(o.pubsub_router, "floodsub"))
        return fail(&a, "-pubsubRouter", "must be gossipsub or floodsub");
    /* Offered in p2pd's order; a daemon that could secure nothing would only
     * fail every connection later. */
    const char *sec_id[3];
    size_t n_sec = 0;
    if (o.noise)
        sec_id[n_sec++] = "/noise";
    if (o.tls)
        sec_id[n_sec++] = "/tls/1.0.0";
    if (o.plaintext)
        sec_id[n_sec++] = "/plaintext/2.0.0";
    if (!n_sec)
        return fail(&a, "security", "-noise, -tls and -plaintext are all false");
    if (o.pubsub && !o.quiet)
        fprintf(stderr, "cp2pd: pubsub is not available yet: PUBSUB requests will fail\n");

    const char *mux_id[1] = {!strcmp(o.muxer, "yamux") ? "/yamux/1.0.0" : "/mplex/6.7.0"};
    cp2p_host_config_t cfg = {.muxers = mux_id, .n_muxers = 1, .security = sec_id,
                              .n_security = n_sec};
    if (o.id && (rc = cp2p_privkey_load_file(o.id, &cfg.identity)) < 0)
        return fail(&a, o.id, cp2p_strerror(rc));

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&a.loop);
    uv_signal_init(&a.loop, &a.sigint);
    uv_signal_init(&a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);

    const char *what = "cannot start the host", *bad = NULL;
    rc = cp2p_host_new(&a.loop, &cfg, &a.h);
    if (rc < 0) {
        fail(&a, what, cp2p_strerror(rc));
        uv_close((uv_handle_t *)&a.sigint, on_closed_handle);
        uv_close((uv_handle_t *)&a.sigterm, on_closed_handle);
        uv_run(&a.loop, UV_RUN_DEFAULT);
        uv_loop_close(&a.loop);
        return 1;
    }
    rc = cp2p_ping_enable(a.h);
    if (!rc)
        rc = cp2p_identify_enable(a.h, NULL, &a.id);
    if (!rc && (o.dht || o.dht_client || o.dht_server)) {
        what = "cannot start the DHT";
        cp2p_dht_config_t dcfg = {.mode = o.dht_client && !o.dht && !o.dht_server
                                              ? CP2P_DHT_MODE_CLIENT
                                              : CP2P_DHT_MODE_SERVER,
                                      .datastore = o.dht_datastore};
        rc = cp2p_dht_new(a.h, &dcfg, &a.dht);
    }
    if (!rc && !o.no_listen) {
        what = "cannot listen on -hostAddrs";
        rc = each_addr(o.host_addrs ? o.host_addrs : "/ip4/0.0.0.0/tcp/0", listen_one, &a, &bad);
    }
    if (!rc) {
        what = "cannot open the control socket";
        cp2p_daemon_config_t dc = {.control = o.listen, .dht = a.dht};
        rc = cp2p_daemon_new(a.h, &dc, &a.daemon);
    }
    if (!rc && o.bootstrap && o.bootstrap_peers) {
        what = "bad -bootstrapPeers";
        rc = each_addr(o.bootstrap_peers, bootstrap_one, &a, &bad);
        if (!rc && a.dht)
            rc = cp2p_dht_bootstrap(a.dht, on_bootstrapped, &a);
    }
    if (!rc && o.metrics_addr) {
        what = "cannot serve -metricsAddr (IP:PORT expected)";
        cp2p_metrics_config_t mc = {.listen = o.metrics_addr, .dht = a.dht};
        rc = cp2p_metrics_start(a.h, &mc, &a.metrics);
    }
    int code = 0;
    if (rc < 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s%s%s", bad ? bad : "", bad ? ": " : "",
                 cp2p_strerror(rc));
        code = fail(&a, what, detail);
        shutdown_app(&a);
    } else if (!o.quiet) {
        print_startup(&a, &o);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    return code;
}
