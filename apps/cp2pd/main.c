/* cp2pd: the daemon, a drop-in for go-libp2p-daemon (p2pd): its flags, its
 * start-up output and its control protocol (go-libp2p-daemon specs/CONTROL.md). */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli_signals.h"

#include "cp2p/dht.h"
#include "cp2p/pubsub.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/autonat.h"
#include "cp2p/identify.h"
#include "cp2p/log.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"
#include "cp2p/nat.h"
#include "cp2p/ping.h"
#include "cp2p/relay.h"
#include "daemon/daemon.h"

#define MAX_ADDRS 16

/* Flags as p2pd (Go's flag package) takes them: -name or --name; booleans as
 * -name or -name=false, the others as -name value or -name=value. Every flag
 * of p2pd v0.9.2 is here with p2pd's default (tests/cli/daemon_help.sh holds
 * cp2pd -h to p2pd -h); the ones for features cp2p lacks either do what p2pd
 * does at their default or, set otherwise, stop cp2pd with a one-line error
 * (see lacking below). */
typedef struct opts {
    const char *listen, *host_addrs, *id, *muxer, *bootstrap_peers, *pubsub_router;
    const char *metrics_addr, *dht_datastore; /* cp2pd's own: p2pd has neither */
    const char *announce_addrs, *config_file;
    int no_listen, noise, tls, plaintext, dht, dht_client, dht_server, bootstrap, pubsub, relay,
        quiet, conn_manager, config_stdin, keep_private_addrs, dht_open_keys, echo;
    long conn_lo, conn_hi;
    uint64_t conn_grace_ms, idle_timeout_ms;
    /* cp2pd's own limits (issue #13); 0 = the host's default */
    long max_memory_mb, conns_per_ip, conns_per_subnet, max_pending;
    uint64_t handshake_ms;
    const char *limits;
    /* cp2pd's own: the control API (issue #14) */
    int allow_remote;
    const char *listen_mode;
    long max_clients, max_bridged, bridged_per_peer;
    /* features cp2p lacks, or no-ops in p2pd v0.9.2 too */
    int nat_port_map, autonat, auto_relay, force_public, force_private, pprof, pubsub_sign,
        pubsub_sign_strict, relay_active, relay_hop, relay_discovery, quic;
    long relay_hop_limit, pprof_port, persistent_max;
    uint64_t gossip_interval_ms, gossip_delay_ms;
} opts_t;

enum kind { STR, BOOL, INT, UINT, DUR };
enum { P2PD = 1, OURS = 2, OLD = 4 }; /* whose flag: p2pd v0.9.2's, cp2pd's own, older p2pd's */

static const struct flag {
    const char *name;
    enum kind kind;
    size_t off;
    int whose;
    const char *def;  /* the default as p2pd -h prints it; NULL: the zero value */
    const char *help;
} flags[] = {
#define F(k, n, f, w, d, h) {n, k, offsetof(opts_t, f), w, d, h}
    F(STR, "listen", listen, P2PD, "/unix/tmp/p2pd.sock", "daemon control listen multiaddr: /unix/<path> (an existing path is refused unless it is a stale socket of ours) or /ip4|ip6/<ip>/tcp/<port> on loopback"),
    F(BOOL, "allowRemoteControl", allow_remote, OURS, NULL, "let -listen be a TCP address that is not loopback (refused without it): whoever reaches it controls the daemon, and STREAM_HANDLER may then point at any TCP address; logs a warning (cp2pd only)"),
    F(STR, "listenMode", listen_mode, OURS, NULL, "the unix control socket's mode, octal, 0600 to 0777 (0600 when not given, whatever the umask; cp2pd only)"),
    F(INT, "maxClients", max_clients, OURS, NULL, "control connections, STREAM_OPEN bridges included (1024 when not given; cp2pd only)"),
    F(INT, "maxBridgedStreams", max_bridged, OURS, NULL, "remote peers' streams bridged to STREAM_HANDLER addresses, a pool apart from -maxClients; they count in the peer and protocol scopes of -limits too (1024 when not given; cp2pd only)"),
    F(INT, "bridgedStreamsPerPeer", bridged_per_peer, OURS, NULL, "of those, one peer's at most (an eighth of -maxBridgedStreams when not given; cp2pd only)"),
    F(STR, "hostAddrs", host_addrs, P2PD, NULL, "comma separated list of multiaddrs the host should listen on (when not given: /ip4/0.0.0.0/tcp/0 and /ip6/::/tcp/0 if the machine has IPv6, the TCP ones of p2pd's defaults)"),
    F(BOOL, "noListenAddrs", no_listen, P2PD, NULL, "sets the host to listen on no addresses (dial only)"),
    F(STR, "id", id, P2PD, NULL, "peer identity; private key file in the libp2p protobuf format (when not given: a fresh Ed25519 key)"),
    F(BOOL, "noise", noise, P2PD, "true", "Enables Noise channel security protocol"),
    F(BOOL, "tls", tls, P2PD, "true", "Enables TLS1.3 channel security protocol"),
    /* p2pd's default is true; see README (cp2pd: flags) and daemon_help.sh */
    F(BOOL, "plaintext", plaintext, P2PD, NULL, "Enables Plaintext channel security protocol: no encryption and no authentication (a peer only claims its key), for tests. Off by default in cp2pd, on in p2pd: offered beside noise and tls it lets a man in the middle downgrade a connection to it"),
    F(STR, "muxer", muxer, P2PD, "yamux", "muxer to use for connections: yamux or mplex"),
    F(BOOL, "echo", echo, P2PD, "true", "Enables echo protocol: /echo/1.0.0 sends back what it reads (a STREAM_HANDLER for /echo/1.0.0 replaces it)"),
    F(BOOL, "dht", dht, P2PD, NULL, "Enables the DHT in full node mode (cp2pd: server mode; p2pd's full mode is kad-dht's auto mode, a client until AutoNAT finds the host public)"),
    F(BOOL, "dhtClient", dht_client, P2PD, NULL, "Enables the DHT in client mode"),
    F(BOOL, "dhtServer", dht_server, P2PD, NULL, "Enables the DHT in server mode"),
    F(BOOL, "b", bootstrap, P2PD, NULL, "connects to bootstrap peers and bootstraps the dht if enabled (cp2pd: the -bootstrapPeers; it has no default list)"),
    F(BOOL, "bootstrap", bootstrap, OURS, NULL, "same as -b (cp2pd only)"),
    F(STR, "bootstrapPeers", bootstrap_peers, P2PD, NULL, "comma separated list of bootstrap peers, multiaddrs with /p2p/<id> (p2pd defaults to the IPFS DHT peers; cp2pd to none)"),
    F(BOOL, "connManager", conn_manager, P2PD, NULL, "Enables the Connection Manager with -connLo, -connHi and -connGrace (without it: 160, 192, 20s)"),
    F(INT, "connLo", conn_lo, P2PD, "256", "Connection Manager Low Water mark"),
    F(INT, "connHi", conn_hi, P2PD, "512", "Connection Manager High Water mark"),
    F(DUR, "connGrace", conn_grace_ms, P2PD, "2m0s", "Connection Manager grace period, a Go duration"),
    F(DUR, "idleTimeout", idle_timeout_ms, OLD, NULL, "exit when no client has been connected for this long (0: never; older p2pd's flag)"),
    F(STR, "announceAddrs", announce_addrs, P2PD, NULL, "comma separated list of multiaddrs the host should announce to the network instead of the listen addresses"),
    F(STR, "metricsAddr", metrics_addr, P2PD, NULL, "serve GET /healthz and GET /metrics (Prometheus) on IP:PORT"),
    F(BOOL, "q", quiet, P2PD, NULL, "be quiet: print nothing at start-up"),
    F(STR, "f", config_file, P2PD, NULL, "a file from which to read a json representation of the daemon config (not in cp2pd: an error; use flags)"),
    F(BOOL, "i", config_stdin, P2PD, NULL, "have the daemon read the json config from stdin (not in cp2pd: an error; use flags)"),
    F(STR, "dhtDatastore", dht_datastore, OURS, NULL, "keep DHT records, providers and routing table in this directory (LMDB; cp2pd only)"),
    F(BOOL, "dhtOpenKeys", dht_open_keys, OURS, NULL, "let DHT keys without a namespace take any value from anyone (rust-libp2p's default; without it they are refused, as go-libp2p refuses them; cp2pd only)"),
    F(BOOL, "keepPrivateAddrs", keep_private_addrs, OURS, NULL, "keep the loopback and private addresses that peers on public addresses claim (private deployments that route them; cp2pd only)"),
    F(INT, "maxMemoryMB", max_memory_mb, OURS, NULL, "memory remotes may make the host hold, in MiB (an eighth of the machine's when not given; cp2pd only)"),
    F(INT, "connsPerIP", conns_per_ip, OURS, NULL, "inbound connections from one IP address (16 when not given; loopback not limited; cp2pd only)"),
    F(INT, "connsPerSubnet", conns_per_subnet, OURS, NULL, "inbound connections from one IPv4 /24 or IPv6 /56 (64 when not given; cp2pd only)"),
    F(INT, "maxPendingInbound", max_pending, OURS, NULL, "inbound connections still upgrading (256 when not given; cp2pd only)"),
    F(STR, "limits", limits, OURS, NULL, "resource manager limits, comma separated SCOPE.RESOURCE=N: scope system, transient, peer, protocol or protocol:ID; resource memory (KiB/MiB/GiB), conns, conns_in, conns_out, streams, streams_in, streams_out, fds; N may be unlimited (cp2pd only)"),
    F(DUR, "handshakeTimeout", handshake_ms, OURS, NULL, "an inbound connection's upgrade deadline, a Go duration (5s when not given; cp2pd only)"),
    /* features cp2p lacks: at their defaults they are what cp2pd does */
    F(BOOL, "relay", relay, P2PD, "true", "Enables circuit relay: serves circuit relay v2 (hop) to other peers, with go-libp2p's limits (README, Limits). Dialling and listening through relays (/p2p-circuit) is always on, as in p2pd"),
    F(BOOL, "relayActive", relay_active, P2PD, NULL, "Enables active mode for relay (no effect in p2pd v0.9.2 either)"),
    F(BOOL, "relayHop", relay_hop, P2PD, NULL, "Enables hop for relay (no effect in p2pd v0.9.2 either)"),
    F(BOOL, "relayDiscovery", relay_discovery, P2PD, NULL, "Enables passive discovery for relay (no effect in p2pd v0.9.2 either)"),
    F(INT, "relayHopLimit", relay_hop_limit, P2PD, NULL, "Sets the hop limit for hop relays (no effect in p2pd v0.9.2 either: circuit relay v2 has no hops to count)"),
    F(BOOL, "autoRelay", auto_relay, P2PD, NULL, "Enables autorelay; as in p2pd v0.9.2, it needs -relay and a DHT, and has no relays to use: p2pd configures no static relays"),
    F(BOOL, "autonat", autonat, P2PD, NULL, "Enables the AutoNAT service: dial back peers that ask (AutoNAT v1 and v2; loopback and private addresses only with -keepPrivateAddrs)"),
    F(BOOL, "forceReachabilityPublic", force_public, P2PD, NULL, "Set up ForceReachability as public for autonat"),
    F(BOOL, "forceReachabilityPrivate", force_private, P2PD, NULL, "Set up ForceReachability as private for autonat"),
    F(BOOL, "natPortMap", nat_port_map, P2PD, NULL, "Enables NAT port mapping (NAT-PMP, then UPnP IGD): prints 'port mapping: MA' and announces MA (unless -announceAddrs)"),
    F(BOOL, "pubsub", pubsub, P2PD, NULL, "Enables pubsub (gossipsub or floodsub, see -pubsubRouter); without it PUBSUB requests answer \"PubSub not enabled\", as in p2pd"),
    F(STR, "pubsubRouter", pubsub_router, P2PD, "gossipsub", "Specifies the pubsub router implementation: gossipsub or floodsub (with -pubsub only)"),
    F(BOOL, "pubsubSign", pubsub_sign, P2PD, "true", "Enables pubsub message signing (with -pubsub only)"),
    F(BOOL, "pubsubSignStrict", pubsub_sign_strict, P2PD, "true", "Enables or disables pubsub strict signature verification (with -pubsub only)"),
    F(DUR, "gossipsubHeartbeatInterval", gossip_interval_ms, P2PD, NULL, "Specifies the gossipsub heartbeat interval (with -pubsub only)"),
    F(DUR, "gossipsubHeartbeatInitialDelay", gossip_delay_ms, P2PD, NULL, "Specifies the gossipsub initial heartbeat delay (with -pubsub only)"),
    F(BOOL, "pprof", pprof, P2PD, NULL, "p2pd: serve Go's HTTP profiler. cp2pd is not a Go program and has none: a warning, and nothing else (profile cp2pd with perf(1); -metricsAddr serves its counters)"),
    F(UINT, "pprofPort", pprof_port, P2PD, NULL, "Binds the HTTP pprof handler to a specific port; has no effect unless the pprof option is enabled (none in cp2pd)"),
    F(INT, "persistentConnMaxMsgSize", persistent_max, OLD, "4194304", "older p2pd's persistent control connections, which cp2pd does not have: a warning when set"),
    F(BOOL, "quic", quic, OLD, NULL, "older p2pd's QUIC switch, deprecated there: no effect"),
#undef F
};

/* A flag for a feature cp2pd cannot honour yet, set to what p2pd would act on:
 * cp2pd stops, naming the feature. None left: every p2pd feature is in. */
static const struct lacking {
    const char *flag, *feature;
} lacking[] = {
    {NULL, NULL},
};

static const char *kind_name(const struct flag *f)
{
    static const char *const names[] = {[STR] = "string", [BOOL] = "", [INT] = "int",
                                        [UINT] = "uint", [DUR] = "duration"};
    return names[f->kind];
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const struct flag *const *)a)->name, (*(const struct flag *const *)b)->name);
}

/* As Go's flag.PrintDefaults lays them out (p2pd -h), so that the two can be
 * read alike: sorted, "  -name type", the usage on the next line after "    \t"
 * (on the same one after a tab for a short name without a type), then
 * " (default X)" unless the default is the zero value, quoted for strings. */
static void usage(FILE *f)
{
    const struct flag *sorted[sizeof flags / sizeof *flags];
    size_t n = sizeof flags / sizeof *flags;
    for (size_t i = 0; i < n; i++)
        sorted[i] = &flags[i];
    qsort(sorted, n, sizeof *sorted, by_name);
    fprintf(f, "Usage of cp2pd (a libp2p daemon driven through the go-libp2p-daemon control protocol):\n");
    for (size_t i = 0; i < n; i++) {
        const struct flag *fl = sorted[i];
        char head[64];
        int len = snprintf(head, sizeof head, "  -%s%s%s", fl->name, *kind_name(fl) ? " " : "",
                           kind_name(fl));
        fprintf(f, "%s%s%s", head, len <= 4 ? "\t" : "\n    \t", fl->help);
        if (fl->def)
            fprintf(f, fl->kind == STR ? " (default \"%s\")" : " (default %s)", fl->def);
        fputc('\n', f);
    }
    fprintf(f, "Set CP2P_LOG=error|warn|info|debug|trace for logs on stderr.\n");
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

static int parse_int(const char *v, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 0);
    if (errno || end == v || *end)
        return -1;
    *out = n;
    return 0;
}

/* A Go time.Duration string ("90s", "1h30m", "250ms", "0") in milliseconds. */
static int parse_duration(const char *v, uint64_t *out_ms)
{
    static const struct { const char *unit; double ms; } units[] = {
        {"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 6e4}, {"h", 3.6e6}};
    if (!strcmp(v, "0"))
        return *out_ms = 0, 0;
    double total = 0;
    const char *p = v;
    if (!*p)
        return -1;
    while (*p) {
        char *end;
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            return -1;
        double n = strtod(p, &end);
        if (end == p)
            return -1;
        p = end;
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
            size_t l = strlen(units[i].unit);
            if (!strncmp(p, units[i].unit, l) && l > best_len)
                best = i, best_len = l;
        }
        if (!best_len)
            return -1;
        total += n * units[best].ms;
        p += best_len;
    }
    if (total > 1e15)
        return -1;
    *out_ms = (uint64_t)total;
    return 0;
}

static int set_flag(const struct flag *f, opts_t *o, const char *v)
{
    void *field = (char *)o + f->off;
    long n;
    switch (f->kind) {
    case STR: *(const char **)field = *v ? v : NULL; return 0; /* "": not given, as in p2pd */
    case BOOL: return parse_bool(v, field);
    case INT: return parse_int(v, field);
    case UINT: return parse_int(v, &n) < 0 || n < 0 ? -1 : (*(long *)field = n, 0);
    case DUR: return parse_duration(v, field);
    }
    return -1;
}

static const struct flag *find_flag(const char *name, size_t len)
{
    for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
        if (strlen(flags[k].name) == len && !strncmp(flags[k].name, name, len))
            return &flags[k];
    return NULL;
}

/* 0: go on; 1: -h was given (exit 0); 2: a bad flag (exit 2, as Go's flag does). */
static int parse_flags(int argc, char **argv, opts_t *o)
{
    for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
        if (flags[k].def && set_flag(&flags[k], o, flags[k].def) < 0)
            abort(); /* a default that does not parse: a bug in the table */
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
        const struct flag *f = find_flag(a, len);
        if (!f) {
            fprintf(stderr, "cp2pd: flag provided but not defined: -%.*s (try 'cp2pd -h')\n",
                    (int)len, a);
            return 2;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (f->kind == BOOL && !v)
            v = "true";
        if (!v && i + 1 < argc)
            v = argv[++i];
        if (!v) {
            fprintf(stderr, "cp2pd: flag needs an argument: -%s\n", f->name);
            return 2;
        }
        if (set_flag(f, o, v) < 0) {
            fprintf(stderr, "cp2pd: invalid value \"%s\" for flag -%s\n", v, f->name);
            return 2;
        }
    }
    return 0;
}

/* The flags for features cp2pd lacks: an error for those set to something
 * cp2pd cannot do, a warning for the Go-only ones. */
static int check_lacking(const opts_t *o)
{
    for (size_t i = 0; i < sizeof lacking / sizeof *lacking && lacking[i].flag; i++) {
        const struct flag *f = find_flag(lacking[i].flag, strlen(lacking[i].flag));
        if (*(const int *)((const char *)o + f->off)) {
            fprintf(stderr, "cp2pd: -%s: %s\n", f->name, lacking[i].feature);
            return 1;
        }
    }
    if (o->pprof && !o->quiet)
        fprintf(stderr, "cp2pd: -pprof: cp2pd has no Go profiler to serve: ignored (profile it "
                        "with perf; -metricsAddr serves its counters)\n");
    if (o->persistent_max != 4 << 20 && !o->quiet)
        fprintf(stderr, "cp2pd: -persistentConnMaxMsgSize has no effect: cp2pd has no "
                        "persistent control connections\n");
    return 0;
}

typedef struct app {
    uv_loop_t loop;
    cp2p_host_t *h;
    cp2p_identify_t *id;
    cp2p_autonat_t *an;
    cp2p_dht_t *dht;
    cp2p_pubsub_t *pubsub;
    cp2p_daemon_t *daemon;
    cp2p_metrics_t *metrics;
    cp2p_nat_t *nat; /* -natPortMap */
    cp2p_relay_t *relay;
    cp2p_relay_client_t *relay_client;
    cli_signals_t sig; /* SIGINT, SIGTERM: stop */
    uv_signal_t usr1;  /* SIGUSR1: print the connections, as p2pd does */
    uv_timer_t idle;
    uint64_t idle_timeout_ms, idle_since;
    cp2p_multiaddr_t announce[CP2P_HOST_MAX_ANNOUNCE_ADDRS];
    size_t n_announce;
    int closing;
} app_t;

static void on_closed_handle(uv_handle_t *hd)
{
}

static void close_handles(app_t *a)
{
    cli_signals_close(&a->sig);
    uv_close((uv_handle_t *)&a->usr1, on_closed_handle);
    uv_close((uv_handle_t *)&a->idle, on_closed_handle);
}

/* -echo: /echo/1.0.0 sends back what it reads, until the remote closes. */
static void echo_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_echo_stream(s);
}

/* SIGUSR1: p2pd's diagnostics on stdout (the routing table's size where p2pd
 * prints the table itself). */
static void on_usr1(uv_signal_t *sig, int signum)
{
    app_t *a = sig->data;
    if (a->closing)
        return;
    if (a->dht)
        printf("DHT Routing Table:\n%zu peers\n\n\n", cp2p_dht_routing_table_size(a->dht));
    cp2p_peerstore_t *ps = cp2p_host_peerstore(a->h);
    size_t total = cp2p_peerstore_count(ps), n = 0;
    cp2p_peer_id_t *ids = total ? calloc(total, sizeof *ids) : NULL;
    total = ids ? cp2p_peerstore_peers(ps, ids, total) : 0;
    for (size_t i = 0; i < total; i++)
        if (cp2p_host_conn_to(a->h, &ids[i]))
            ids[n++] = ids[i];
    printf("Connections and streams (%zu):\n", n);
    cp2p_buf_t ma = {0};
    for (size_t i = 0; i < n; i++) {
        char id[CP2P_PEER_ID_STRMAX];
        cp2p_conn_t *c = cp2p_host_conn_to(a->h, &ids[i]);
        const cp2p_multiaddr_t *ra = cp2p_conn_remote_addr(c);
        cp2p_buf_reset(&ma);
        if (!ra || cp2p_multiaddr_to_string(ra, &ma) < 0)
            cp2p_buf_reset(&ma);
        cp2p_peer_id_to_string(&ids[i], id, sizeof id);
        const char *pv = cp2p_peerstore_protocol_version(ps, &ids[i]);
        const char *av = cp2p_peerstore_agent_version(ps, &ids[i]);
        printf("peer: %s, multiaddr: %s\n\tprotoVersion: %s, agent: %s\n\tprotocols: [", id,
               ma.len ? (char *)ma.data : "", pv ? pv : "(unknown)", av ? av : "(unknown)");
        const char *protos[CP2P_PEERSTORE_MAX_PROTOCOLS];
        size_t np = cp2p_peerstore_protocols(ps, &ids[i], protos, CP2P_PEERSTORE_MAX_PROTOCOLS);
        for (size_t k = 0; k < np && k < CP2P_PEERSTORE_MAX_PROTOCOLS; k++)
            printf("%s%s", k ? " " : "", protos[k]);
        cp2p_rc_scope_stat_t st;
        printf("]\n\tstreams (%llu)\n",
               cp2p_host_peer_resources(a->h, &ids[i], &st) == 0 ? (unsigned long long)st.used.streams : 0ULL);
    }
    cp2p_buf_free(&ma);
    free(ids);
    fflush(stdout);
}

static void host_closed(void *arg)
{
    close_handles(arg);
}

static void pubsub_closed(void *arg);

static void nat_closed(void *arg)
{
    app_t *a = arg;
    a->nat = NULL;
    pubsub_closed(a);
}

static void pubsub_closed(void *arg)
{
    app_t *a = arg;
    a->pubsub = NULL;
    cp2p_relay_client_close(a->relay_client, NULL, NULL);
    a->relay_client = NULL;
    cp2p_relay_close(a->relay, NULL, NULL);
    a->relay = NULL;
    if (a->nat) { /* the mappings come off the gateway before the host goes */
        cp2p_nat_close(a->nat, nat_closed, a);
        return;
    }
    if (a->dht)
        cp2p_dht_free(a->dht);
    a->dht = NULL;
    cp2p_autonat_free(a->an);
    a->an = NULL;
    if (a->id)
        cp2p_identify_free(a->id);
    a->id = NULL;
    cp2p_host_close(a->h, host_closed, a);
}

static void daemon_closed(void *arg)
{
    app_t *a = arg;
    a->daemon = NULL;
    if (a->pubsub)
        cp2p_pubsub_close(a->pubsub, pubsub_closed, a);
    else
        pubsub_closed(a);
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

static void on_signal(void *arg)
{
    shutdown_app(arg);
}

/* -idleTimeout: p2pd exits when no client has used it for that long. */
static void on_idle_check(uv_timer_t *t)
{
    app_t *a = t->data;
    cp2p_daemon_stats_t st;
    cp2p_daemon_stats(a->daemon, &st);
    uint64_t now = uv_now(&a->loop);
    if (st.open_clients + st.open_streams > 0) {
        a->idle_since = now;
    } else if (now - a->idle_since >= a->idle_timeout_ms) {
        cp2p_log_info("cp2pd", "no client for %llu ms (-idleTimeout): exiting",
                      (unsigned long long)(now - a->idle_since));
        uv_timer_stop(t);
        shutdown_app(a);
    }
}

static int fail(app_t *a, const char *what, const char *detail)
{
    fprintf(stderr, "cp2pd: %s: %s\n", what, detail);
    return 1;
}

/* ---- -limits ---- */

/* The index of the cp2p_rc_limits_t field name[0..len), or -1. */
static long limit_index(const char *name, size_t len)
{
    for (size_t i = 0; cp2p_rc_limit_name(i); i++)
        if (strlen(cp2p_rc_limit_name(i)) == len && !memcmp(cp2p_rc_limit_name(i), name, len))
            return (long)i;
    return -1;
}

/* A count, "unlimited", or for memory a size with an optional KiB/MiB/GiB. */
static int limit_value(const char *s, int memory, uint64_t *out)
{
    if (!strcmp(s, "unlimited")) {
        *out = CP2P_RC_UNLIMITED;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return CP2P_EINVAL;
    int shift = !*end ? 0 : !memory ? -1 : !strcmp(end, "KiB") ? 10 : !strcmp(end, "MiB") ? 20
                                                  : !strcmp(end, "GiB") ? 30 : -1;
    if (shift < 0 || v == 0 || v > (UINT64_MAX >> shift) - 1)
        return CP2P_EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

/* Applies -limits to cfg (h NULL) or, for protocol:ID items, to h. */
static int apply_limits(const char *list, cp2p_host_config_t *cfg, cp2p_host_t *h,
                        char *bad, size_t cap)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return CP2P_ENOMEM;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        char *eq = strchr(t, '='), *dot = NULL;
        for (char *q = t; eq && q < eq; q++)
            if (*q == '.')
                dot = q; /* the last: protocol ids have dots of their own */
        snprintf(bad, cap, "%s", t);
        if (!eq || !dot) {
            rc = CP2P_EINVAL;
            break;
        }
        *dot = 0;
        cp2p_rc_limits_t one = {0}, *l = !strcmp(t, "system")      ? &cfg->system_limits
                                       : !strcmp(t, "transient") ? &cfg->transient_limits
                                       : !strcmp(t, "peer")      ? &cfg->peer_limits
                                       : !strcmp(t, "protocol")  ? &cfg->protocol_limits
                                       : !strncmp(t, "protocol:", 9) && t[9] ? &one : NULL;
        long f = l ? limit_index(dot + 1, (size_t)(eq - dot - 1)) : -1;
        uint64_t v;
        if (f < 0 || limit_value(eq + 1, !strcmp(cp2p_rc_limit_name((size_t)f), "memory"), &v)) {
            rc = CP2P_EINVAL;
            break;
        }
        cp2p_rc_limit_set(l, (size_t)f, v);
        if (l == &one && h)
            rc = cp2p_host_set_protocol_limits(h, t + 9, &one);
    }
    free(copy);
    return rc;
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

static int announce_one(app_t *a, const cp2p_multiaddr_t *ma)
{
    if (a->n_announce == CP2P_HOST_MAX_ANNOUNCE_ADDRS)
        return CP2P_ELIMIT;
    int rc = cp2p_multiaddr_dup(ma, &a->announce[a->n_announce]);
    if (!rc)
        a->n_announce++;
    return rc;
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

static void on_nat(const cp2p_nat_event_t *ev, void *arg)
{
    cp2p_buf_t s = {0};
    if (ev->type != CP2P_NAT_MAPPED || !ev->external || cp2p_multiaddr_to_string(ev->external, &s))
        return;
    printf("port mapping: %s\n", (char *)s.data);
    fflush(stdout);
    cp2p_buf_free(&s);
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
    if (cp2p_host_addrs(a->h, &addrs, &n) == 0) { /* p2pd prints the announced ones */
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
    opts_t o = {0}; /* the defaults are in flags[] */
    /* before -h too: a reader that stops early (cp2pd -h | grep -q) is no crash */
    signal(SIGPIPE, SIG_IGN);
    int rc = parse_flags(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (check_lacking(&o))
        return 1;
    app_t a = {0};
    if (!o.muxer)
        o.muxer = "yamux"; /* -muxer "": p2pd keeps go-libp2p's default, yamux */
    if (!o.listen)
        return fail(&a, "-listen", "empty");
    if (strcmp(o.muxer, "yamux") && strcmp(o.muxer, "mplex"))
        return fail(&a, "-muxer", "must be yamux or mplex");
    cp2p_pubsub_config_t psc = {.deliver_own = 1}; /* p2pd's subscribers see what it publishes */
    if (o.pubsub) {
        if (!strcmp(o.pubsub_router, "floodsub"))
            psc.router = CP2P_PUBSUB_FLOODSUB;
        else if (strcmp(o.pubsub_router, "gossipsub"))
            return fail(&a, "-pubsubRouter", "must be gossipsub or floodsub");
        /* p2pd's two switches make four policies; the two lax ones accept
         * messages whose author nobody checked, and cp2p has neither. */
        if (o.pubsub_sign != o.pubsub_sign_strict && o.pubsub_sign)
            return fail(&a, "-pubsubSignStrict=false", "LaxSign (signed, unsigned accepted) is not "
                        "available in cp2pd: use -pubsubSign=false -pubsubSignStrict=true for StrictNoSign");
        if (!o.pubsub_sign && !o.pubsub_sign_strict)
            return fail(&a, "-pubsubSign=false -pubsubSignStrict=false", "LaxNoSign is not available "
                        "in cp2pd: add -pubsubSignStrict=true for StrictNoSign");
        psc.sign_policy = o.pubsub_sign ? CP2P_PUBSUB_STRICT_SIGN : CP2P_PUBSUB_STRICT_NO_SIGN;
        psc.gossipsub.heartbeat_ms = (uint32_t)o.gossip_interval_ms;
        psc.gossipsub.heartbeat_initial_delay_ms = (uint32_t)o.gossip_delay_ms;
    }
    if (o.auto_relay && (!o.relay || !(o.dht || o.dht_client || o.dht_server)))
        return fail(&a, "-autoRelay", "can't have autorelay enabled without Relay enabled and DHT enabled");
    if (o.config_file || o.config_stdin)
        return fail(&a, o.config_file ? "-f" : "-i", "JSON configs are not available in cp2pd: use flags");
    int local = cp2p_daemon_control_is_local(o.listen);
    if (local < 0)
        return fail(&a, "-listen", "a /unix/<path> or /ip4|ip6/<ip>/tcp/<port> multiaddr expected");
    if (!local && !o.allow_remote) {
        char why[300];
        snprintf(why, sizeof why, "%s is not loopback, so whoever reaches it controls the daemon: "
                 "add -allowRemoteControl to listen there anyway", o.listen);
        return fail(&a, "-listen", why);
    }
    unsigned listen_mode = 0;
    if (o.listen_mode) {
        char *end;
        errno = 0;
        unsigned long m = strtoul(o.listen_mode, &end, 8);
        if (end == o.listen_mode || *end || errno || m > 0777 || (m & 0600) != 0600)
            return fail(&a, "-listenMode", "an octal mode from 0600 to 0777 expected");
        listen_mode = (unsigned)m;
        if (strncmp(o.listen, "/unix/", 6) && !o.quiet)
            fprintf(stderr, "cp2pd: -listenMode has no effect on a TCP control socket\n");
    }
    long pools[] = {o.max_clients, o.max_bridged, o.bridged_per_peer};
    for (size_t i = 0; i < 3; i++)
        if (pools[i] < 0 || pools[i] > 1000000)
            return fail(&a, "-maxClients/-maxBridgedStreams/-bridgedStreamsPerPeer",
                        "need 0 (the default) to 1000000");
    if (o.conn_manager && (o.conn_lo < 0 || o.conn_hi <= 0 || o.conn_lo > o.conn_hi ||
                           o.conn_hi > 1000000))
        return fail(&a, "-connLo/-connHi", "need 0 <= low <= high <= 1000000");
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

    const char *mux_id[1] = {!strcmp(o.muxer, "yamux") ? "/yamux/1.0.0" : "/mplex/6.7.0"};
    cp2p_host_config_t cfg = {.muxers = mux_id, .n_muxers = 1, .security = sec_id,
                              .n_security = n_sec};
    if (o.conn_manager) {
        cfg.conn_low_water = o.conn_lo ? (uint32_t)o.conn_lo : 1; /* 0 would mean "default" */
        cfg.conn_high_water = (uint32_t)o.conn_hi;
        cfg.conn_grace_ms = o.conn_grace_ms == 0 ? CP2P_HOST_NO_GRACE
                            : o.conn_grace_ms >= UINT32_MAX ? UINT32_MAX - 1
                                                            : (uint32_t)o.conn_grace_ms;
        /* room to go over high water, or the trim would never be reached */
        uint32_t room = cfg.conn_high_water + cfg.conn_high_water / 4 + 8;
        if (room > CP2P_HOST_DEFAULT_MAX_CONNECTIONS)
            cfg.max_connections = room;
    }
    cfg.max_memory_mb = o.max_memory_mb > 0 && o.max_memory_mb < UINT32_MAX ? (uint32_t)o.max_memory_mb : 0;
    cfg.max_conns_per_ip = o.conns_per_ip > 0 && o.conns_per_ip < UINT32_MAX ? (uint32_t)o.conns_per_ip : 0;
    cfg.max_conns_per_subnet =
        o.conns_per_subnet > 0 && o.conns_per_subnet < UINT32_MAX ? (uint32_t)o.conns_per_subnet : 0;
    cfg.max_pending_inbound = o.max_pending > 0 && o.max_pending < UINT32_MAX ? (uint32_t)o.max_pending : 0;
    cfg.keep_private_addrs = o.keep_private_addrs;
    if (o.force_public && o.force_private)
        return fail(&a, "-forceReachabilityPublic", "forceReachability must be public or private, not both");
    cfg.force_reachability = o.force_public    ? CP2P_REACHABILITY_PUBLIC
                             : o.force_private ? CP2P_REACHABILITY_PRIVATE
                                               : CP2P_REACHABILITY_UNKNOWN;
    cfg.handshake_timeout_ms = o.handshake_ms < UINT32_MAX ? (uint32_t)o.handshake_ms : UINT32_MAX - 1;
    char bad_limit[256] = "";
    if (o.limits && apply_limits(o.limits, &cfg, NULL, bad_limit, sizeof bad_limit)) {
        char why[400];
        snprintf(why, sizeof why, "%s is not SCOPE.RESOURCE=N with a known scope and resource (see -help)",
                 bad_limit);
        return fail(&a, "-limits", why);
    }
    if (o.id && (rc = cp2p_privkey_load_file(o.id, &cfg.identity)) < 0)
        return fail(&a, o.id, cp2p_strerror(rc));

    uv_loop_init(&a.loop);
    uv_timer_init(&a.loop, &a.idle);
    a.idle.data = &a;
    cli_signals_start(&a.sig, &a.loop, on_signal, &a);
    uv_signal_init(&a.loop, &a.usr1);
    a.usr1.data = &a;
    uv_signal_start(&a.usr1, on_usr1, SIGUSR1);

    const char *what = "cannot start the host", *bad = NULL;
    rc = cp2p_host_new(&a.loop, &cfg, &a.h);
    if (rc < 0) {
        fail(&a, what, cp2p_strerror(rc));
        close_handles(&a);
        uv_run(&a.loop, UV_RUN_DEFAULT);
        uv_loop_close(&a.loop);
        return 1;
    }
    if (o.limits) {
        what = "-limits";
        rc = apply_limits(o.limits, &cfg, a.h, bad_limit, sizeof bad_limit);
    }
    if (!rc)
        rc = cp2p_ping_enable(a.h);
    if (!rc && o.echo)
        rc = cp2p_host_set_handler(a.h, "/echo/1.0.0", echo_handler, NULL);
    if (!rc)
        rc = cp2p_identify_enable(a.h, NULL, &a.id);
    if (!rc) {
        /* As p2pd: the AutoNAT client always (unless forced), the service with -autonat. */
        what = "cannot start AutoNAT";
        cp2p_autonat_config_t ncfg = {.service = o.autonat, .client = 1,
                                      .allow_private = o.keep_private_addrs,
                                      .dialer_config = &cfg};
        rc = cp2p_autonat_enable(a.h, &ncfg, &a.an);
    }
    if (!rc) {
        what = "cannot start the circuit relay client";
        rc = cp2p_relay_client_enable(a.h, NULL, &a.relay_client);
    }
    if (!rc && o.relay) {
        what = "cannot start the circuit relay service (-relay)";
        rc = cp2p_relay_start(a.h, NULL, &a.relay);
    }
    if (!rc && (o.dht || o.dht_client || o.dht_server)) {
        what = "cannot start the DHT";
        cp2p_dht_config_t dcfg = {.mode = o.dht_client && !o.dht && !o.dht_server
                                              ? CP2P_DHT_MODE_CLIENT
                                              : CP2P_DHT_MODE_SERVER,
                                      .datastore = o.dht_datastore,
                                      .open_keys = o.dht_open_keys};
        rc = cp2p_dht_new(a.h, &dcfg, &a.dht);
    }
    if (!rc && o.pubsub) {
        what = "cannot start pubsub";
        rc = cp2p_pubsub_new(a.h, &psc, &a.pubsub);
    }
    if (!rc && !o.no_listen) {
        what = "cannot listen on -hostAddrs";
        rc = each_addr(o.host_addrs ? o.host_addrs : "/ip4/0.0.0.0/tcp/0", listen_one, &a, &bad);
        /* p2pd's defaults listen on IPv6 too, where the machine has it */
        if (!rc && !o.host_addrs && each_addr("/ip6/::/tcp/0", listen_one, &a, &bad) < 0) {
            cp2p_log_info("cp2pd", "no IPv6 listener (/ip6/::/tcp/0): %s", bad);
            bad = NULL;
        }
    }
    if (!rc && o.announce_addrs) {
        what = "bad -announceAddrs";
        rc = each_addr(o.announce_addrs, announce_one, &a, &bad);
        if (!rc)
            rc = cp2p_host_set_announce_addrs(a.h, a.announce, a.n_announce);
    }
    if (!rc && o.nat_port_map) {
        what = "cannot start port mapping";
        cp2p_nat_config_t nc = {.advertise = !o.announce_addrs}; /* -announceAddrs rules, as in p2pd */
        rc = cp2p_nat_start(a.h, &nc, o.quiet ? NULL : on_nat, &a, &a.nat);
    }
    char daemon_error[512] = "";
    if (!rc) {
        what = "cannot open the control socket";
        cp2p_daemon_config_t dc = {.control = o.listen, .dht = a.dht, .pubsub = a.pubsub,
                                   .max_clients = (uint32_t)o.max_clients,
                                   .max_streams = (uint32_t)o.max_bridged,
                                   .max_streams_per_peer = (uint32_t)o.bridged_per_peer,
                                   .unix_mode = listen_mode, .allow_remote = o.allow_remote,
                                   .error = daemon_error, .error_cap = sizeof daemon_error};
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
        cp2p_metrics_config_t mc = {.listen = o.metrics_addr};
        size_t ns = 0; /* a NULL collect ends the list: only the parts that run */
        if (a.dht)
            mc.sources[ns++] = cp2p_dht_metrics_source(a.dht);
        if (a.pubsub)
            mc.sources[ns++] = cp2p_pubsub_metrics_source(a.pubsub);
        rc = cp2p_metrics_start(a.h, &mc, &a.metrics);
    }
    int code = 0;
    if (rc < 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s%s%s", bad ? bad : "", bad ? ": " : "",
                 cp2p_strerror(rc));
        if (*daemon_error) { /* it says what and where itself */
            fprintf(stderr, "cp2pd: %s\n", daemon_error);
            code = 1;
        } else {
            code = fail(&a, what, detail);
        }
        shutdown_app(&a);
    } else {
        if (!o.quiet)
            print_startup(&a, &o);
        if (o.idle_timeout_ms) {
            a.idle_timeout_ms = o.idle_timeout_ms;
            a.idle_since = uv_now(&a.loop);
            uint64_t every = o.idle_timeout_ms < 1000 ? o.idle_timeout_ms : 1000;
            uv_timer_start(&a.idle, on_idle_check, every, every);
        }
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    for (size_t i = 0; i < a.n_announce; i++)
        cp2p_multiaddr_free(&a.announce[i]);
    return code;
}
