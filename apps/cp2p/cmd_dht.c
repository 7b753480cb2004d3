/* cp2p dht: a Kademlia DHT node (libp2p kad-dht spec) driven by lines on
 * stdin, like the rust-libp2p ipfs-kad demo. Hidden options for tests:
 * --peers N runs N nodes in this process ("@i CMD" sends CMD to node i,
 * "@i STOP" stops it) and prints a "stat" line with hops and latency. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "cli_autonat.h"
#include "cli_signals.h"
#include "dht_control.h"
#include "cp2p/cid.h"
#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/mdns.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peerstore.h"
#include "cp2p/ping.h"

#define MAX_OPTS 16
#define MAX_LINE 70000 /* a PUT of the largest value fits */

typedef struct app app_t;

typedef struct node {
    app_t *app;
    int idx, stopped;
    cp2p_host_t *h;
    cp2p_identify_t *id;
    cp2p_dht_t *dht;
    cp2p_mdns_t *mdns;
    cp2p_metrics_t *metrics;
} node_t;

struct app {
    uv_loop_t loop;
    cli_signals_t sig; /* SIGINT, SIGTERM: stop */
    uv_timer_t later;
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    int in_is_stream, in_open;
    uv_fs_t fsreq;
    char fsbuf[65536];
    int64_t fsoff;
    cp2p_buf_t lines; /* bytes read, not yet run */
    int eof, busy, closing, serve, verbose_stats;
    size_t n_nodes, open_hosts;
    size_t booting; /* bootstraps under way */
    node_t *nodes;
    /* the command in flight */
    char cmd_key[MAX_LINE];
    uint64_t started;
    char cmd_name[16];
    node_t *cmd_node;
    cli_autonat_t nat; /* the first node's AutoNAT */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cp2p dht [options]   then commands on stdin, one per line:\n"
            "  PUT <key> <value>     store a record (the value is the rest of the line)\n"
            "  GET <key>             fetch a record\n"
            "  PUT_PROVIDER <key>    announce that we provide key\n"
            "  GET_PROVIDERS <key>   list the providers of key\n"
            "  FIND_PEER <peer id>   print the addresses of a peer\n"
            "A key is its bytes; for providers a CID means its multihash. Keys without a\n"
            "namespace (\"k1\", as in rust-libp2p's demo) take any value here (unless\n"
            "--no-open-keys) and on rust-libp2p peers, from anyone: nobody owns them, so any\n"
            "peer may overwrite them. js-libp2p and go-libp2p peers (and cp2pd by default)\n"
            "refuse them and take only /<ns>/<key> keys whose namespace they have a\n"
            "validator for (see --namespace).\n"
            "options:\n"
            "  --listen MA           listen on MA (default /ip4/0.0.0.0/tcp/0); repeatable\n"
            "  --bootstrap MA        a DHT peer, MA ending in /p2p/<id> (DNS names allowed); repeatable\n"
            "  --mdns                also find peers with mDNS on the local network\n"
            "  --key FILE            identity key (default: a fresh Ed25519 key)\n"
            "  --psk FILE            private network key: a swarm.key file (cp2p keygen --psk)\n"
            "  --datastore DIR       keep records, providers and the routing table in DIR (LMDB)\n"
            "  --client              client mode: ask, but do not serve the DHT\n"
            "  --namespace NS        accept any value under /NS/ keys (e.g. test); repeatable\n"
            "  --no-open-keys        refuse keys without a namespace (go-libp2p's default)\n"
            "  --records-per-peer N  records one remote peer may hold here (default 1024)\n"
            "  --providers-per-peer N  provider entries one remote peer may hold (default 8192)\n"
            "  --quorum N            peers that must store a PUT / values a GET collects\n"
            "  --protocol ID         DHT protocol (default " CP2P_DHT_PROTOCOL ")\n"
            "  --timeout S           per-request timeout in seconds (default 10)\n"
            "  --query-timeout S     a whole operation's timeout in seconds (default 60); an\n"
            "                        operation issued while the routing table is empty waits\n"
            "                        that long for the bootstrap peers, which are tried again\n"
            "                        (after 1 s, doubling to 60 s) whenever the table is empty\n"
            "  --serve               keep serving after stdin ends, until SIGINT/SIGTERM\n"
            "                        (without it the program exits at the end of stdin)\n"
            "  --metrics IP:PORT     serve GET /healthz and GET /metrics (Prometheus) over HTTP\n"
            "  --control MA          run the commands on a running cp2pd through its control\n"
            "                        socket (its -listen address) instead of starting a node\n"
            "  --help                this text\n");
    cli_autonat_usage(f);
}

static void on_closed(uv_handle_t *hd)
{
}

static void host_closed(void *arg)
{
    app_t *a = arg;
    if (--a->open_hosts)
        return;
    cli_signals_close(&a->sig);
    uv_close((uv_handle_t *)&a->later, on_closed);
    if (a->in_open)
        uv_close((uv_handle_t *)&a->in, on_closed);
    a->in_open = 0;
}

static void node_stop(node_t *n)
{
    if (n->stopped || !n->h)
        return;
    n->stopped = 1;
    if (n->metrics)
        cp2p_metrics_stop(n->metrics, NULL, NULL);
    if (n->mdns)
        cp2p_mdns_stop(n->mdns, NULL, NULL);
    cp2p_dht_free(n->dht);
    if (n->idx == 0)
        cli_autonat_stop(&n->app->nat);
    if (n->id)
        cp2p_identify_free(n->id);
    cp2p_host_close(n->h, host_closed, n->app);
}

static void shutdown_now(uv_timer_t *t)
{
    app_t *a = t->data;
    a->closing = 1;
    if (a->in_open && a->in_is_stream)
        uv_read_stop((uv_stream_t *)&a->in);
    for (size_t i = 0; i < a->n_nodes; i++)
        node_stop(&a->nodes[i]);
    if (!a->open_hosts)
        host_closed(a);
}

/* Never from inside a dht callback: the dht is freed here. */
static void shutdown_later(app_t *a)
{
    if (!a->closing)
        uv_timer_start(&a->later, shutdown_now, 0, 0);
}

static void on_signal(void *arg)
{
    shutdown_later(arg);
}

static const char *reason(int rc)
{
    return rc == CP2P_ENOTFOUND ? "not found" : cp2p_strerror(rc);
}

static const char *plural(uint32_t n)
{
    return n == 1 ? "" : "s";
}

/* 1 if key has no namespace ("/<ns>/..."): what rust-libp2p takes, and
 * js-libp2p and go-libp2p refuse. */
static int plain_key(const char *key)
{
    return key[0] != '/' || !strchr(key + 1, '/') || key[1] == '/';
}

/* Why the operation that just ended failed, in words: its status and how the
 * peers it asked answered (cp2p_dht_stats()->last). */
static const char *why(const node_t *n, int status, const char *put_key, char *out, size_t cap)
{
    const cp2p_dht_outcome_t *o = &cp2p_dht_stats(n->dht)->last;
    int at = o->bootstrap_wait && status != CP2P_ENOTFOUND
                 ? snprintf(out, cap, "no peer in the routing table, and the bootstrap peers: ")
                 : 0;
    char *p = out + at;
    size_t left = cap - (size_t)at;
    switch (status) {
    case CP2P_EREFUSED:
        at = snprintf(p, left, "refused by %u of %u peer%s", o->refused, o->asked, plural(o->asked));
        if (put_key && plain_key(put_key) && at > 0 && (size_t)at < left)
            snprintf(p + at, left - (size_t)at,
                     " (js-libp2p, go-libp2p and cp2pd take only keys under a namespace they "
                     "have a validator for: use /<namespace>/%s, with that namespace set up on "
                     "those peers and --namespace <namespace> here; or they hold all they take "
                     "from one peer)", put_key);

        break;
    case CP2P_EQUORUM:
        snprintf(p, left,
                 "too few peers for the quorum: %u of the %u needed took it (%u refused, "
                 "%u unreachable, %u timed out)",
                 o->answered, o->needed, o->refused, o->unreachable, o->timed_out);
        break;
    case CP2P_ETIMEOUT:
        snprintf(p, left, "timed out: %u of %u peer%s asked did not answer in time", o->timed_out,
                 o->asked, plural(o->asked));
        break;
    case CP2P_EUNREACHABLE:
        snprintf(p, left, "peer unreachable: no connection to %u of %u peer%s asked",
                 o->unreachable, o->asked, plural(o->asked));
        break;
    case CP2P_ENOTFOUND:
        if (o->asked)
            snprintf(p, left, "not found (%u of %u peer%s asked answered)", o->answered, o->asked,
                     plural(o->asked));
        else
            snprintf(p, left, "no peer to ask: the routing table is empty (give --bootstrap MA "
                              "or --mdns)");
        break;
    default:
        snprintf(p, left, "%s", cp2p_strerror(status));
    }
    return out;
}

static void run_lines(app_t *a);

static void command_done(app_t *a, node_t *n)
{
    if (a->verbose_stats && n && !n->stopped)
        printf("stat %s hops=%u ms=%.2f\n", a->cmd_name, cp2p_dht_stats(n->dht)->last_hops,
               (double)(uv_hrtime() - a->started) / 1e6);
    fflush(stdout);
    a->busy = 0;
    if (!a->closing)
        run_lines(a);
}

static void on_put(cp2p_dht_t *d, int status, void *arg)
{
    app_t *a = arg;
    char w[512];
    if (status == 0)
        printf("Successfully put record \"%s\"\n", a->cmd_key);
    else
        printf("Failed to put record \"%s\": %s\n", a->cmd_key,
               why(a->cmd_node, status, a->cmd_key, w, sizeof w));
    command_done(a, a->cmd_node);
}

static void on_get(cp2p_dht_t *d, int status, const uint8_t *v, size_t n, void *arg)
{
    app_t *a = arg;
    char w[512];
    if (status == 0)
        printf("Got record \"%s\" \"%.*s\"\n", a->cmd_key, (int)n, (const char *)v);
    else
        printf("Failed to get record \"%s\": %s\n", a->cmd_key,
               why(a->cmd_node, status, NULL, w, sizeof w));
    command_done(a, a->cmd_node);
}

static void on_provide(cp2p_dht_t *d, int status, void *arg)
{
    app_t *a = arg;
    char w[512];
    if (status == 0)
        printf("Successfully put provider record \"%s\"\n", a->cmd_key);
    else
        printf("Failed to put provider record \"%s\": %s\n", a->cmd_key,
               why(a->cmd_node, status, NULL, w, sizeof w));
    command_done(a, a->cmd_node);
}

static void on_providers(cp2p_dht_t *d, int status, const cp2p_peer_id_t *peers, size_t n,
                         void *arg)
{
    app_t *a = arg;
    char id[CP2P_PEER_ID_STRMAX], w[512];
    for (size_t i = 0; i < n; i++) {
        cp2p_peer_id_to_string(&peers[i], id, sizeof id);
        printf("Peer %s provides key \"%s\"\n", id, a->cmd_key);
    }
    if (status == CP2P_ENOTFOUND && cp2p_dht_stats(d)->last.answered)
        printf("No providers found for key \"%s\"\n", a->cmd_key);
    else if (status < 0)
        printf("Failed to get providers for key \"%s\": %s\n", a->cmd_key,
               why(a->cmd_node, status, NULL, w, sizeof w));
    command_done(a, a->cmd_node);
}

static void on_peer(cp2p_dht_t *d, int status, const cp2p_peer_id_t *peers, size_t n, void *arg)
{
    app_t *a = arg;
    char w[512];
    if (status < 0) {
        printf("Failed to find peer %s: %s\n", a->cmd_key, why(a->cmd_node, status, NULL, w, sizeof w));
    } else {
        node_t *nd = a->cmd_node;
        cp2p_multiaddr_t addrs[CP2P_PEERSTORE_MAX_ADDRS];
        size_t na = cp2p_peerstore_addrs(cp2p_host_peerstore(nd->h), &peers[0],
                                         uv_now(&a->loop), addrs, CP2P_PEERSTORE_MAX_ADDRS);
        for (size_t i = 0; i < na && i < CP2P_PEERSTORE_MAX_ADDRS; i++) {
            cp2p_buf_t s = {0};
            if (cp2p_multiaddr_to_string(&addrs[i], &s) == 0)
                printf("Peer %s has address %s\n", a->cmd_key, (char *)s.data);
            cp2p_buf_free(&s);
        }
        if (!na)
            printf("Found peer %s without addresses\n", a->cmd_key);
    }
    command_done(a, a->cmd_node);
}

/* A provider key: a CID's multihash, else the bytes as given. */
static void provider_key(const char *s, cp2p_buf_t *out)
{
    cp2p_buf_t bytes = {0};
    cp2p_cid_view_t cid;
    if (cp2p_cid_parse(s, strlen(s), &bytes, &cid) == 0)
        cp2p_buf_append(out, cid.mh_bytes, cid.mh_len);
    else
        cp2p_buf_append(out, s, strlen(s));
    cp2p_buf_free(&bytes);
}

/* Start one command; 1 if it runs asynchronously. */
static int run_line(app_t *a, char *line)
{
    char *p = line;
    char *cmd = cli_next_word(&p);
    if (!cmd)
        return 0;
    node_t *n = &a->nodes[0];
    if (cmd[0] == '@') {
        long i = strtol(cmd + 1, NULL, 10);
        if (i < 0 || (size_t)i >= a->n_nodes || !(cmd = cli_next_word(&p))) {
            printf("Expected: @<node 0..%zu> <command>\n", a->n_nodes - 1);
            return 0;
        }
        n = &a->nodes[i];
        if (!strcmp(cmd, "STOP")) {
            node_stop(n);
            printf("Stopped node %ld\n", i);
            return 0;
        }
    }
    if (n->stopped) {
        printf("Node %d is stopped\n", n->idx);
        return 0;
    }
    char *key = cli_next_word(&p);
    char *value = cli_rest(p);
    size_t vlen = strlen(value);
    a->cmd_node = n;
    snprintf(a->cmd_name, sizeof a->cmd_name, "%s", cmd);
    a->started = uv_hrtime();
    snprintf(a->cmd_key, sizeof a->cmd_key, "%s", key ? key : "");
    int rc;
    cp2p_buf_t k = {0};
    if (!strcmp(cmd, "PUT")) {
        if (!key || !vlen) {
            printf("Expected: PUT <key> <value>\n");
            return 0;
        }
        rc = cp2p_dht_put(n->dht, (const uint8_t *)key, strlen(key), (const uint8_t *)value,
                          vlen, on_put, a);
        if (rc < 0)
            printf("Failed to put record \"%s\": %s\n", key, reason(rc));
    } else if (!strcmp(cmd, "GET") && key && !vlen) {
        rc = cp2p_dht_get(n->dht, (const uint8_t *)key, strlen(key), on_get, a);
        if (rc < 0)
            printf("Failed to get record \"%s\": %s\n", key, reason(rc));
    } else if (!strcmp(cmd, "PUT_PROVIDER") && key && !vlen) {
        provider_key(key, &k);
        rc = cp2p_dht_provide(n->dht, k.data, k.len, on_provide, a);
        if (rc < 0)
            printf("Failed to put provider record \"%s\": %s\n", key, reason(rc));
    } else if (!strcmp(cmd, "GET_PROVIDERS") && key && !vlen) {
        provider_key(key, &k);
        rc = cp2p_dht_find_providers(n->dht, k.data, k.len, 0, on_providers, a);
        if (rc < 0)
            printf("Failed to get providers for key \"%s\": %s\n", key, reason(rc));
    } else if (!strcmp(cmd, "FIND_PEER") && key && !vlen) {
        cp2p_peer_id_t id;
        rc = cp2p_peer_id_parse(key, &id);
        if (!rc)
            rc = cp2p_dht_find_peer(n->dht, &id, on_peer, a);
        if (rc < 0)
            printf("Failed to find peer %s: %s\n", key, rc == CP2P_EPARSE ? "not a peer id"
                                                                       : reason(rc));
    } else {
        printf("Expected: PUT <key> <value> | GET <key> | PUT_PROVIDER <key> | "
               "GET_PROVIDERS <key> | FIND_PEER <peer id>\n");
        return 0;
    }
    cp2p_buf_free(&k);
    return rc == 0;
}

static void run_lines(app_t *a)
{
    while (!a->busy && !a->closing) {
        uint8_t *nl = a->lines.len ? memchr(a->lines.data, '\n', a->lines.len) : NULL;
        if (!nl && !(a->eof && a->lines.len))
            break;
        size_t len = nl ? (size_t)(nl - a->lines.data) : a->lines.len;
        char *line = malloc(len + 1);
        if (!line)
            break;
        memcpy(line, a->lines.data, len);
        line[len] = 0;
        if (len && line[len - 1] == '\r')
            line[len - 1] = 0;
        cp2p_buf_consume(&a->lines, nl ? len + 1 : len);
        a->busy = run_line(a, line);
        free(line);
        fflush(stdout);
    }
    if (a->eof && !a->busy && !a->lines.len && !a->serve)
        shutdown_later(a);
}

static void got_input(app_t *a, const char *p, ssize_t n)
{
    if (n < 0) {
        a->eof = 1;
    } else if (a->lines.len + (size_t)n > MAX_LINE &&
               !memchr(a->lines.data, '\n', a->lines.len)) {
        printf("Line too long (at most %d bytes)\n", MAX_LINE);
        cp2p_buf_reset(&a->lines);
    } else {
        cp2p_buf_append(&a->lines, p, (size_t)n);
    }
    run_lines(a);
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
    app_t *a = hd->data;
    *b = uv_buf_init(a->fsbuf, sizeof a->fsbuf);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    app_t *a = s->data;
    if (n == 0)
        return;
    if (n < 0)
        uv_read_stop(s);
    got_input(a, b->base, n < 0 ? -1 : n);
}

static void fs_read_cb(uv_fs_t *req)
{
    app_t *a = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (a->closing)
        return;
    got_input(a, a->fsbuf, n > 0 ? n : -1);
    if (n > 0) {
        a->fsoff += n;
        uv_buf_t b = uv_buf_init(a->fsbuf, sizeof a->fsbuf);
        uv_fs_read(&a->loop, &a->fsreq, 0, &b, 1, a->fsoff, fs_read_cb);
    }
}

/* Pipes and terminals are read on the loop; a regular file through the pool. */
static int start_input(app_t *a)
{
    uv_handle_type t = uv_guess_handle(0);
    int rc;
    if (t == UV_TTY) {
        rc = uv_tty_init(&a->loop, &a->in.tty, 0, 1);
    } else if (t == UV_NAMED_PIPE) {
        rc = uv_pipe_init(&a->loop, &a->in.pipe, 0);
        if (!rc && (rc = uv_pipe_open(&a->in.pipe, 0)))
            uv_close((uv_handle_t *)&a->in.pipe, on_closed);
    } else {
        a->fsreq.data = a;
        uv_buf_t b = uv_buf_init(a->fsbuf, sizeof a->fsbuf);
        return uv_fs_read(&a->loop, &a->fsreq, 0, &b, 1, 0, fs_read_cb) < 0 ? CP2P_EIO : 0;
    }
    if (rc)
        return CP2P_EIO;
    a->in_open = a->in_is_stream = 1;
    a->in.pipe.data = a;
    return uv_read_start((uv_stream_t *)&a->in, alloc_cb, read_cb) ? CP2P_EIO : 0;
}

static void on_bootstrapped(cp2p_dht_t *d, int status, void *arg)
{
    node_t *n = arg;
    size_t np = cp2p_dht_routing_table_size(d);
    char w[512];
    if (n->idx == 0 && status)
        fprintf(stderr, "cp2p: dht: bootstrap failed: %s; trying again while the routing table "
                        "is empty\n", why(n, status, NULL, w, sizeof w));
    else if (n->idx == 0)
        fprintf(stderr, "cp2p: dht: bootstrap done, %zu peer%s in the routing table\n", np,
                np == 1 ? "" : "s");
    /* With --peers, scripts wait for this before their first command. */
    if (!--n->app->booting && n->app->n_nodes > 1)
        fprintf(stderr, "cp2p: dht: every node bootstrapped\n");
}

/* MA/p2p/<id>: its peer and the address without /p2p. */
static int add_bootstrap(node_t *n, const char *s)
{
    cp2p_multiaddr_t ma;
    cp2p_multiaddr_component_t c;
    cp2p_peer_id_t id;
    int rc = cp2p_multiaddr_parse(s, &ma);
    if (rc)
        return rc;
    rc = cp2p_multiaddr_get(&ma, CP2P_MA_P2P, &c);
    if (!rc)
        rc = cp2p_peer_id_from_bytes(c.value, c.value_len, &id);
    if (!rc)
        rc = cp2p_multiaddr_decapsulate_code(&ma, CP2P_MA_P2P);
    if (!rc && cp2p_peer_id_equal(&id, cp2p_host_peer_id(n->h)))
        rc = CP2P_EEXIST; /* ourselves: nothing to do */
    else if (!rc)
        rc = cp2p_dht_add_peer(n->dht, &id, &ma, 1);
    cp2p_multiaddr_free(&ma);
    return rc == CP2P_EEXIST ? 0 : rc;
}

typedef struct opts {
    const char *listen[MAX_OPTS], *boot[MAX_OPTS], *ns[MAX_OPTS];
    size_t n_listen, n_boot, n_ns;
    const char *key_file, *metrics, *psk_file;
    int mdns;
    uint8_t psk[32];
    cp2p_dht_config_t cfg;
} opts_t;

static int node_start(app_t *a, node_t *n, const opts_t *o, char *what, size_t cap)
{
    cp2p_host_config_t hc = {.psk = o->psk_file ? o->psk : NULL};
    int rc = 0;
    snprintf(what, cap, "cannot read key %s", o->key_file ? o->key_file : "");
    if (n->idx == 0 && (rc = cli_autonat_config(&a->nat, "dht", &hc)))
        return CP2P_EINVAL; /* checked before: cannot happen */
    if (o->key_file && n->idx == 0 && (rc = cp2p_privkey_load_file(o->key_file, &hc.identity)))
        return rc;
    snprintf(what, cap, "cannot create the host");
    rc = cp2p_host_new(&a->loop, &hc, &n->h);
    if (rc)
        return rc;
    a->open_hosts++;
    /* js-libp2p checks its routing table's old members with ping. */
    rc = cp2p_ping_enable(n->h);
    if (!rc)
        rc = cp2p_identify_enable(n->h, NULL, &n->id);
    cp2p_dht_config_t cfg = o->cfg;
    if (n->idx)
        cfg.datastore = NULL; /* only the first node keeps a datastore */
    snprintf(what, cap, "cannot open the datastore %s", cfg.datastore ? cfg.datastore : "");
    if (!rc)
        rc = cp2p_dht_new(n->h, &cfg, &n->dht);
    if (rc)
        return rc;
    const char *def = "/ip4/0.0.0.0/tcp/0";
    for (size_t i = 0; i < (o->n_listen ? o->n_listen : 1); i++) {
        const char *l = o->n_listen ? o->listen[i] : def;
        cp2p_multiaddr_t ma;
        snprintf(what, cap, "cannot listen on %s", l);
        rc = cp2p_multiaddr_parse(l, &ma);
        if (!rc) {
            rc = cp2p_host_listen(n->h, &ma);
            cp2p_multiaddr_free(&ma);
        }
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < o->n_boot; i++) {
        snprintf(what, cap, "bad bootstrap address %s (MA/p2p/<id> expected)", o->boot[i]);
        if ((rc = add_bootstrap(n, o->boot[i])))
            return rc;
    }
    if (n->idx) { /* the first node is every other node's way in */
        cp2p_multiaddr_t *addrs;
        size_t na;
        snprintf(what, cap, "cannot reach node 0");
        if ((rc = cp2p_host_listen_addrs(a->nodes[0].h, &addrs, &na)))
            return rc;
        rc = cp2p_dht_add_peer(n->dht, cp2p_host_peer_id(a->nodes[0].h), addrs, na);
        cp2p_multiaddr_array_free(addrs, na);
        if (rc)
            return rc;
    }
    if (o->mdns) {
        cp2p_mdns_config_t mc = {.dial = 1};
        snprintf(what, cap, "cannot start mDNS");
        if ((rc = cp2p_mdns_start(n->h, &mc, NULL, NULL, &n->mdns)))
            return rc;
    }
    if (o->metrics && n->idx == 0) {
        cp2p_metrics_config_t mc = {.listen = o->metrics,
                                    .sources = {cp2p_dht_metrics_source(n->dht),
                                                cp2p_mdns_metrics_source(n->mdns)}};
        snprintf(what, cap, "cannot serve metrics on %s (IP:PORT expected)", o->metrics);
        if ((rc = cp2p_metrics_start(n->h, &mc, &n->metrics)))
            return rc;
    }
    if (n->idx == 0) {
        cli_print_peer_id(n->h);
        cli_print_listen_addrs(n->h, "Listening on ");
        snprintf(what, cap, "cannot start AutoNAT");
        if ((rc = cli_autonat_start(&a->nat, n->h)))
            return rc;
    }
    /* A table saved in --datastore is as good a start as --bootstrap. */
    if (o->n_boot || n->idx || cp2p_dht_routing_table_size(n->dht))
        if (cp2p_dht_bootstrap(n->dht, on_bootstrapped, n) == 0)
            a->booting++;
    return 0;
}

int cmd_dht(int argc, char **argv)
{
    static app_t a;
    opts_t o = {0};
    int no_open_keys = 0, client = 0, serve = 0;
    double peers = 0, quorum = 0, timeout = 0, query_timeout = 0, records = 0, providers = 0;
    const char *control = NULL;
    memset(&a, 0, sizeof a);
    a.nat.announce = (cli_list_t){a.nat.announce_v, 0, 8};
    cli_list_t listen = {o.listen, 0, MAX_OPTS}, boot = {o.boot, 0, MAX_OPTS},
               ns = {o.ns, 0, MAX_OPTS};
    const cli_opt_t opts[] = {
        CLI_OPTION("--listen", CLI_LIST, &listen),
        CLI_OPTION("--bootstrap", CLI_LIST, &boot),
        CLI_OPTION("--namespace", CLI_LIST, &ns),
        CLI_OPTION("--mdns", CLI_FLAG, &o.mdns),
        CLI_OPTION("--client", CLI_FLAG, &client),
        CLI_OPTION("--serve", CLI_FLAG, &serve),
        CLI_OPTION("--no-open-keys", CLI_FLAG, &no_open_keys),
        CLI_OPTION("--key", CLI_STR, &o.key_file),
        CLI_OPTION("--psk", CLI_STR, &o.psk_file),
        CLI_OPTION("--metrics", CLI_STR, &o.metrics),
        CLI_OPTION("--control", CLI_STR, &control),
        CLI_OPTION("--datastore", CLI_STR, &o.cfg.datastore),
        CLI_OPTION("--protocol", CLI_STR, &o.cfg.protocol),
        CLI_NUMBER("--quorum", &quorum, 1, CP2P_DHT_DEFAULT_K * 3),
        CLI_NUMBER("--timeout", &timeout, 1, 3600),
        CLI_NUMBER("--query-timeout", &query_timeout, 1, 3600),
        CLI_NUMBER("--records-per-peer", &records, 1, UINT32_MAX),
        CLI_NUMBER("--providers-per-peer", &providers, 1, UINT32_MAX),
        CLI_NUMBER("--peers", &peers, 1, 1000),
        CLI_AUTONAT_OPTIONS(&a.nat),
        CLI_END,
    };
    int prc = cli_parse("dht", argc, argv, opts, usage, NULL);
    if (prc)
        return prc == CLI_HELP ? CLI_OK : prc;
    if (o.psk_file && cli_load_psk("dht", o.psk_file, o.psk))
        return CLI_FAIL;
    cp2p_host_config_t check = {0};
    if ((prc = cli_autonat_config(&a.nat, "dht", &check)))
        return prc;
    o.n_listen = listen.n;
    o.n_boot = boot.n;
    o.n_ns = ns.n;
    if (client)
        o.cfg.mode = CP2P_DHT_MODE_CLIENT;
    a.serve = serve;
    a.verbose_stats = peers > 0; /* --peers N: a network in one process, counted */
    if (!peers)
        peers = 1;
    o.cfg.quorum = (uint32_t)quorum;
    o.cfg.request_timeout_ms = (uint32_t)timeout * 1000;
    o.cfg.query_timeout_ms = (uint32_t)query_timeout * 1000;
    o.cfg.max_records_per_peer = (uint32_t)records;
    o.cfg.max_providers_per_peer = (uint32_t)providers;
    if (control)
        return cp2p_dht_control_run(control);
    o.cfg.open_namespaces = o.ns;
    o.cfg.n_open_namespaces = o.n_ns;
    o.cfg.open_keys = !no_open_keys; /* the original demo's keys ("k1") */

    uv_loop_init(&a.loop);
    uv_timer_init(&a.loop, &a.later);
    a.later.data = &a;
    cli_signals_start(&a.sig, &a.loop, on_signal, &a);
    a.nodes = calloc((size_t)peers, sizeof *a.nodes);
    int rc = a.nodes ? 0 : CP2P_ENOMEM;
    char what[CP2P_MULTIADDR_STRMAX + 64] = "out of memory";
    for (long i = 0; !rc && i < peers; i++) {
        a.nodes[i] = (node_t){.app = &a, .idx = (int)i};
        a.n_nodes++;
        rc = node_start(&a, &a.nodes[i], &o, what, sizeof what);
    }
    if (!rc) {
        snprintf(what, sizeof what, "cannot read stdin");
        rc = start_input(&a);
    }
    if (rc) {
        fprintf(stderr, "cp2p: dht: %s: %s\n", what,
                rc == CP2P_EPARSE && o.cfg.datastore && strstr(what, "datastore")
                    ? "not a cp2p datastore (damaged or foreign data)"
                    : cp2p_strerror(rc));
        a.closing = 1;
        shutdown_now(&a.later);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    cp2p_buf_free(&a.lines);
    free(a.nodes);
    return rc ? CLI_FAIL : CLI_OK;
}
