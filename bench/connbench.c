/* cp2p's side of the bench/ workloads that are not bulk transfer: connection
 * rate (TCP + Noise + Yamux, then a 1-byte /perf/1.0.0 exchange: libp2p specs
 * perf/perf.md "Handshakes per second"), memory of idle connections and
 * streams held against a perf server, and Kademlia lookups in a local
 * network. Built by bench/run against the static library; prints one JSON line.
 *
 *   connbench rate --server-address IP:PORT --conns N [--parallel K]
 *   connbench idle --server-address IP:PORT --conns N --streams S --server-pid PID
 *   connbench dht --nodes N --seconds S [--parallel K] */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <uv.h>

#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/multiaddr.h"
#include "cp2p/perf.h"

#define MAX_PARALLEL 64

static uv_loop_t loop;
static cp2p_multiaddr_t server; /* /ip4/../tcp/../p2p/<fixed id> */
static cp2p_multiaddr_t server_bare; /* without /p2p: every dial is a new connection */
static cp2p_peer_id_t server_id;
static long want, started, finished;
static int failed;

static void die(const char *what, int rc)
{
    fprintf(stderr, "connbench: %s: %s\n", what, cp2p_strerror(rc));
    exit(1);
}

static void timer_noop(uv_timer_t *t)
{
}

/* Run the loop until *done or the deadline. */
static void run_until(long *done, long target, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, timer_noop, ms, 0);
    while (*done < target && !failed && uv_is_active((uv_handle_t *)&t))
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static long rss_kib(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static cp2p_host_t *new_host(uint32_t conns)
{
    /* Every connection is wanted, all of them to one peer: no connection
     * manager trims, and no scope limits counts. */
    cp2p_host_config_t cfg = {.max_connections = conns, .max_streams_per_conn = 4096,
                              .conn_low_water = conns, .conn_high_water = conns};
    cfg.peer_limits = cfg.protocol_limits = (cp2p_rc_limits_t){
        .conns = CP2P_RC_UNLIMITED, .streams_in = CP2P_RC_UNLIMITED,
        .streams_out = CP2P_RC_UNLIMITED};
    cfg.system_limits = (cp2p_rc_limits_t){.streams_in = CP2P_RC_UNLIMITED,
                                           .streams_out = CP2P_RC_UNLIMITED};
    cp2p_host_t *h;
    int rc = cp2p_host_new(&loop, &cfg, &h);
    if (rc)
        die("host", rc);
    return h;
}

static void set_server(const char *address)
{
    char ma[160], host[64];
    const char *colon = strrchr(address, ':');
    if (!colon || (size_t)(colon - address) >= sizeof host)
        die("--server-address", CP2P_EINVAL);
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = 0;
    snprintf(ma, sizeof ma, "/ip4/%s/tcp/%s", host, colon + 1);
    int rc = cp2p_multiaddr_parse(ma, &server_bare);
    snprintf(ma + strlen(ma), sizeof ma - strlen(ma), "/p2p/%s", CP2P_PERF_SERVER_PEER_ID);
    if (!rc)
        rc = cp2p_multiaddr_parse(ma, &server);
    if (!rc)
        rc = cp2p_peer_id_parse(CP2P_PERF_SERVER_PEER_ID, &server_id);
    if (rc)
        die("--server-address", rc);
}

/* ---- rate: each worker is a host that connects, exchanges a byte, closes ---- */

typedef struct worker {
    cp2p_host_t *h;
    cp2p_perf_t *p;
    uint64_t t0;
} worker_t;

static double ttfb_ms[1 << 20];

static void worker_next(worker_t *w);

static void worker_done(int status, void *arg)
{
    worker_t *w = arg;
    if (status < 0) {
        fprintf(stderr, "connbench: perf: %s\n", cp2p_strerror(status));
        failed = 1;
        return;
    }
    long i = finished++;
    if (i < (long)(sizeof ttfb_ms / sizeof *ttfb_ms))
        ttfb_ms[i] = (double)(uv_hrtime() - w->t0) / 1e6;
    cp2p_conn_t *c = cp2p_host_conn_to(w->h, &server_id);
    if (c)
        cp2p_conn_close(c);
    worker_next(w);
}

static void worker_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    worker_t *w = arg;
    int rc = status;
    cp2p_perf_free(w->p); /* the previous run's, over by now */
    w->p = NULL;
    if (!rc)
        rc = cp2p_perf_start(h, peer, 1, 1, worker_done, w, &w->p);
    if (rc < 0) {
        fprintf(stderr, "connbench: connect: %s\n", cp2p_strerror(rc));
        failed = 1;
    }
}

static void worker_next(worker_t *w)
{
    if (started == want)
        return;
    started++;
    w->t0 = uv_hrtime();
    int rc = cp2p_host_connect(w->h, &server, worker_connected, w);
    if (rc < 0)
        die("connect", rc);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_rate(long parallel)
{
    worker_t w[MAX_PARALLEL] = {{0}};
    for (long i = 0; i < parallel; i++)
        w[i].h = new_host(16);
    uint64_t t0 = uv_hrtime();
    for (long i = 0; i < parallel; i++)
        worker_next(&w[i]);
    run_until(&finished, want, 600000);
    double s = (double)(uv_hrtime() - t0) / 1e9;
    if (failed || finished < want)
        die("rate", CP2P_ETIMEOUT);
    long n = finished < (long)(sizeof ttfb_ms / sizeof *ttfb_ms) ? finished : (long)(sizeof ttfb_ms / sizeof *ttfb_ms);
    qsort(ttfb_ms, (size_t)n, sizeof *ttfb_ms, cmp_double);
    printf("{\"type\":\"conns\",\"connections\":%ld,\"seconds\":%.6f,\"perSecond\":%.1f,"
           "\"ttfbMs\":{\"p50\":%.3f,\"p99\":%.3f}}\n",
           finished, s, (double)finished / s, ttfb_ms[n / 2], ttfb_ms[(long)(n * 0.99)]);
}

/* ---- idle: many connections, then many streams, held open ---- */

static long idle_connected;
static long idle_streams;

static void idle_on_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    if (status < 0) {
        fprintf(stderr, "connbench: connect: %s\n", cp2p_strerror(status));
        failed = 1;
        return;
    }
    idle_connected++;
    if (started < want) {
        started++;
        int rc = cp2p_host_connect(h, &server_bare, idle_on_connect, NULL);
        if (rc < 0)
            die("connect", rc);
    }
}

static void idle_stream_open(int status, cp2p_stream_t *s, void *arg)
{
    if (status < 0) {
        fprintf(stderr, "connbench: stream: %s\n", cp2p_strerror(status));
        failed = 1;
        return;
    }
    idle_streams++; /* s is kept open, never read or written, until exit */
}

static void settle(void)
{
    long never = 0;
    run_until(&never, 1, 1500);
}

static void run_idle(long conns, long streams, long server_pid)
{
    cp2p_host_t *h = new_host((uint32_t)conns + 16);
    settle();
    long s0 = rss_kib(server_pid), c0 = rss_kib(getpid());
    want = conns;
    for (long i = 0; i < 64 && started < want; i++) {
        started++;
        int rc = cp2p_host_connect(h, &server_bare, idle_on_connect, NULL);
        if (rc < 0)
            die("connect", rc);
    }
    run_until(&idle_connected, conns, 600000);
    if (failed || idle_connected < conns)
        die("idle connections", CP2P_ETIMEOUT);
    settle();
    long s1 = rss_kib(server_pid), c1 = rss_kib(getpid());
    /* Streams go on one connection: the oldest to the server. */
    static const char *const protos[] = {CP2P_PERF_PROTOCOL_ID};
    for (long i = 0; i < streams; i++) {
        int rc = cp2p_host_new_stream(h, &server_id, protos, 1, idle_stream_open, NULL);
        if (rc < 0)
            die("stream", rc);
    }
    run_until(&idle_streams, streams, 120000);
    if (failed || idle_streams < streams)
        die("idle streams", CP2P_ETIMEOUT);
    settle();
    long s2 = rss_kib(server_pid), c2 = rss_kib(getpid());
    printf("{\"type\":\"idle\",\"connections\":%ld,\"streams\":%ld,"
           "\"serverKiBPerConn\":%.2f,\"clientKiBPerConn\":%.2f,"
           "\"serverKiBPerStream\":%.2f,\"clientKiBPerStream\":%.2f}\n",
           conns, streams, (double)(s1 - s0) / conns, (double)(c1 - c0) / conns,
           streams ? (double)(s2 - s1) / streams : 0, streams ? (double)(c2 - c1) / streams : 0);
}

/* ---- dht: a local network in this process, lookups of random keys ---- */

typedef struct dnode {
    cp2p_host_t *h;
    cp2p_dht_t *d;
    cp2p_identify_t *id;
} dnode_t;

static long lookups_done, lookups_failed;
static uint64_t dht_deadline;
static dnode_t *dnodes;
static long n_dnodes;

static void lookup_next(void);

static void lookup_done(cp2p_dht_t *d, int status, const cp2p_peer_id_t *peers, size_t n,
                        void *arg)
{
    if (status < 0 || n == 0)
        lookups_failed++;
    else
        lookups_done++;
    lookup_next();
}

static void lookup_next(void)
{
    if (uv_hrtime() >= dht_deadline) {
        finished++;
        return;
    }
    uint8_t key[32];
    RAND_bytes(key, sizeof key);
    cp2p_dht_t *d = dnodes[rand() % n_dnodes].d;
    int rc = cp2p_dht_closest_peers(d, key, sizeof key, lookup_done, NULL);
    if (rc < 0)
        die("lookup", rc);
}

static void bootstrapped(cp2p_dht_t *d, int status, void *arg)
{
    finished++;
}

static void run_dht(long nodes, double seconds, long parallel)
{
    n_dnodes = nodes;
    dnodes = calloc((size_t)nodes, sizeof *dnodes);
    cp2p_multiaddr_t lo, *addrs = NULL;
    size_t na = 0;
    cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &lo);
    for (long i = 0; i < nodes; i++) {
        dnodes[i].h = new_host(1024);
        /* Identify is how a node learns that the peers dialing it are DHT
         * servers: without it node 0 (everyone's bootstrap peer) keeps an
         * empty table, and so would every table built through it. */
        int rc = cp2p_identify_enable(dnodes[i].h, NULL, &dnodes[i].id);
        if (!rc)
            rc = cp2p_host_listen(dnodes[i].h, &lo);
        if (!rc)
            rc = cp2p_dht_new(dnodes[i].h, NULL, &dnodes[i].d);
        if (rc)
            die("dht node", rc);
        if (i == 0 && (rc = cp2p_host_listen_addrs(dnodes[0].h, &addrs, &na)))
            die("listen addrs", rc);
        if (i > 0 && (rc = cp2p_dht_add_peer(dnodes[i].d, cp2p_host_peer_id(dnodes[0].h), addrs, na)))
            die("add peer", rc);
    }
    /* Everyone bootstraps from node 0, then again to fill their tables. */
    for (int round = 0; round < 2; round++) {
        finished = 0;
        for (long i = 1; i < nodes; i++)
            cp2p_dht_bootstrap(dnodes[i].d, bootstrapped, NULL);
        run_until(&finished, nodes - 1, 120000);
    }
    finished = 0;
    uint64_t rpcs0 = 0, rpcs1 = 0;
    for (long i = 0; i < nodes; i++)
        rpcs0 += cp2p_dht_stats(dnodes[i].d)->requests_out;
    uint64_t t0 = uv_hrtime();
    dht_deadline = t0 + (uint64_t)(seconds * 1e9);
    for (long i = 0; i < parallel; i++)
        lookup_next();
    run_until(&finished, parallel, (uint64_t)(seconds * 1000) + 60000);
    double s = (double)(uv_hrtime() - t0) / 1e9;
    for (long i = 0; i < nodes; i++)
        rpcs1 += cp2p_dht_stats(dnodes[i].d)->requests_out;
    /* RPCs per lookup shows the lookups walk the network (about k of them
     * with k or fewer nodes), not one peer with an empty table. */
    printf("{\"type\":\"dht\",\"nodes\":%ld,\"lookups\":%ld,\"failed\":%ld,\"seconds\":%.3f,"
           "\"perSecond\":%.1f,\"rpcsPerLookup\":%.1f}\n",
           nodes, lookups_done, lookups_failed, s, (double)lookups_done / s,
           lookups_done + lookups_failed
               ? (double)(rpcs1 - rpcs0) / (double)(lookups_done + lookups_failed) : 0);
    for (size_t i = 0; i < na; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);
    cp2p_multiaddr_free(&lo);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: connbench rate|idle|dht [options] (see the top of bench/connbench.c)\n");
        return 2;
    }
    long conns = 0, streams = 0, parallel = 1, pid = 0, nodes = 0;
    double seconds = 10;
    const char *address = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--server-address"))
            address = v;
        else if (!strcmp(o, "--conns"))
            conns = atol(v);
        else if (!strcmp(o, "--streams"))
            streams = atol(v);
        else if (!strcmp(o, "--parallel"))
            parallel = atol(v);
        else if (!strcmp(o, "--server-pid"))
            pid = atol(v);
        else if (!strcmp(o, "--nodes"))
            nodes = atol(v);
        else if (!strcmp(o, "--seconds"))
            seconds = atof(v);
        else {
            fprintf(stderr, "connbench: unknown option %s\n", o);
            return 2;
        }
    }
    if (parallel < 1 || parallel > MAX_PARALLEL)
        parallel = 1;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    if (address)
        set_server(address);
    want = conns;
    if (!strcmp(argv[1], "rate") && address && conns > 0)
        run_rate(parallel);
    else if (!strcmp(argv[1], "idle") && address && conns > 0 && pid > 0)
        run_idle(conns, streams, pid);
    else if (!strcmp(argv[1], "dht") && nodes > 1)
        run_dht(nodes, seconds, parallel);
    else {
        fprintf(stderr, "connbench: missing options\n");
        return 2;
    }
    fflush(stdout);
    /* Everything is dropped with the process: this is a benchmark, not a host. */
    _exit(failed);
}
