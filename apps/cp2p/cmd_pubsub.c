/* cp2p pubsub: a chat over gossipsub or floodsub, like rust-libp2p's chat
 * example: each line of stdin is published to the first topic ("PUBLISH
 * <topic> <text>" names another), each message from a peer is printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "cli_signals.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/mdns.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"
#include "cp2p/ping.h"
#include "cp2p/pubsub.h"

#define MAX_LIST 16
#define MAX_LINE (64 * 1024)

typedef struct app {
    uv_loop_t loop;
    cp2p_host_t *h;
    cp2p_pubsub_t *ps;
    cp2p_identify_t *id;
    cp2p_mdns_t *mdns;
    cp2p_metrics_t *metrics;
    cli_signals_t sig;
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    int in_open, closing;
    char rbuf[4096];
    cp2p_buf_t lines;
    const char **topics;
    size_t n_topics;
} app_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cp2p pubsub --topic T [--topic T2]... [options]\n"
            "  each line of stdin is published to the first topic; 'PUBLISH <topic> <text>'\n"
            "  publishes to another. Prints 'Got message: '<text>' with id: <id> from peer: <id>'\n"
            "  for each message, and 'subscribed <peer id> <topic>' / 'unsubscribed ...'.\n"
            "  --topic T         join topic T; repeatable (at least one)\n"
            "  --listen MA       listen on MA (default /ip4/0.0.0.0/tcp/0); repeatable\n"
            "  --dial MA         connect to MA (/ip4/../tcp/../p2p/<id>); repeatable\n"
            "  --mdns            find peers on the local network and connect to them\n"
            "  --router R        gossipsub (default) or floodsub\n"
            "  --score           score peers (gossipsub v1.1, cp2p_pubsub_score_defaults): one\n"
            "                    invalid message graylists its sender for a while\n"
            "  --no-sign         publish unsigned messages and refuse signed ones (StrictNoSign;\n"
            "                    message ids are the SHA-256 of the data)\n"
            "  --key FILE        identity key (default: a fresh Ed25519 key)\n"
            "  --psk FILE        private network key: a swarm.key file (cp2p keygen --psk)\n"
            "  --metrics IP:PORT serve GET /healthz and GET /metrics (Prometheus) over HTTP\n"
            "  --help            this text\n");
}

static void host_closed(void *arg)
{
    app_t *a = arg;
    a->h = NULL;
    cli_signals_close(&a->sig);
}

static void pubsub_closed(void *arg)
{
    app_t *a = arg;
    a->ps = NULL;
    if (a->id)
        cp2p_identify_free(a->id);
    a->id = NULL;
    cp2p_host_close(a->h, host_closed, a);
}

static void mdns_stopped(void *arg)
{
    app_t *a = arg;
    if (a->ps)
        cp2p_pubsub_close(a->ps, pubsub_closed, a);
    else
        pubsub_closed(a);
}

static void input_closed(uv_handle_t *hd)
{
    (void)hd;
}

static void shutdown_app(app_t *a)
{
    if (a->closing)
        return;
    a->closing = 1;
    if (a->in_open) {
        a->in_open = 0;
        uv_close((uv_handle_t *)&a->in, input_closed);
    }
    if (a->metrics)
        cp2p_metrics_stop(a->metrics, NULL, NULL);
    a->metrics = NULL;
    if (a->mdns) {
        cp2p_mdns_stop(a->mdns, mdns_stopped, a);
        a->mdns = NULL;
    } else if (a->h) {
        mdns_stopped(a);
    } else {
        host_closed(a);
    }
}

static void on_signal(void *arg)
{
    shutdown_app(arg);
}

static void hex(const uint8_t *p, size_t n, char *out, size_t cap)
{
    static const char d[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < cap; i++) {
        out[k++] = d[p[i] >> 4];
        out[k++] = d[p[i] & 15];
    }
    out[k] = 0;
}

static void on_message(cp2p_pubsub_t *ps, const cp2p_pubsub_message_t *m, void *arg)
{
    (void)ps, (void)arg;
    char id[1024], from[CP2P_PEER_ID_STRMAX];
    hex(m->id, m->id_len, id, sizeof id);
    cp2p_peer_id_to_string(m->from ? m->from : m->received_from, from, sizeof from);
    printf("Got message: '%.*s' with id: %s from peer: %s\n", (int)m->len, (const char *)m->data,
           id, from);
    fflush(stdout);
}

static void on_peer(cp2p_pubsub_t *ps, const cp2p_peer_id_t *peer, const char *topic,
                    int subscribed, void *arg)
{
    (void)ps, (void)arg;
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(peer, id, sizeof id);
    printf("%s %s %s\n", subscribed ? "subscribed" : "unsubscribed", id, topic);
    fflush(stdout);
}

static void publish_line(app_t *a, char *line)
{
    const char *topic = a->topics[0];
    char *text = line;
    if (!strncmp(line, "PUBLISH ", 8)) {
        char *p = line + 8;
        topic = cli_next_word(&p);
        text = p ? cli_rest(p) : "";
        if (!topic) {
            printf("Expected: PUBLISH <topic> <text>\n");
            return;
        }
    }
    if (!*text)
        return;
    int rc = cp2p_pubsub_publish(a->ps, topic, (const uint8_t *)text, strlen(text));
    if (rc)
        printf("Publish error: %s\n", cp2p_strerror(rc));
    else if (cp2p_pubsub_topic_peers(a->ps, topic, NULL, 0) == 0)
        printf("Publish error: no peer is subscribed to %s yet (InsufficientPeers)\n", topic);
    fflush(stdout);
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    app_t *a = hd->data;
    *b = uv_buf_init(a->rbuf, sizeof a->rbuf);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    app_t *a = s->data;
    if (n < 0) {
        /* stdin ended: the chat goes on until a signal, as rust's does. */
        uv_read_stop(s);
        return;
    }
    if (a->lines.len + (size_t)n > MAX_LINE && !memchr(a->lines.data, '\n', a->lines.len)) {
        printf("Line too long (at most %d bytes)\n", MAX_LINE);
        cp2p_buf_reset(&a->lines);
        return;
    }
    cp2p_buf_append(&a->lines, b->base, (size_t)n);
    uint8_t *nl;
    while (!a->closing && a->lines.len && (nl = memchr(a->lines.data, '\n', a->lines.len))) {
        size_t len = (size_t)(nl - a->lines.data);
        *nl = 0;
        if (len && nl[-1] == '\r')
            nl[-1] = 0;
        publish_line(a, (char *)a->lines.data);
        cp2p_buf_consume(&a->lines, len + 1);
    }
}

static int start_input(app_t *a)
{
    uv_handle_type t = uv_guess_handle(0);
    int rc;
    if (t == UV_TTY)
        rc = uv_tty_init(&a->loop, &a->in.tty, 0, 1);
    else if (t == UV_NAMED_PIPE && !(rc = uv_pipe_init(&a->loop, &a->in.pipe, 0)))
        rc = uv_pipe_open(&a->in.pipe, 0);
    else
        return 0; /* /dev/null or a file: nothing to publish, listen only */
    a->in_open = 1;
    a->in.pipe.data = a;
    if (rc)
        return CP2P_EIO;
    return uv_read_start((uv_stream_t *)&a->in, alloc_cb, read_cb) ? CP2P_EIO : 0;
}

static void connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    (void)h, (void)peer;
    if (status < 0)
        fprintf(stderr, "cp2p: pubsub: cannot connect to %s: %s\n", (const char *)arg,
                cp2p_strerror(status));
}

static int dial(app_t *a, const char *s)
{
    cp2p_multiaddr_t ma;
    int rc = cp2p_multiaddr_parse(s, &ma);
    if (rc)
        return rc;
    rc = cp2p_host_connect(a->h, &ma, connected, (void *)s);
    cp2p_multiaddr_free(&ma);
    return rc;
}

int cmd_pubsub(int argc, char **argv)
{
    app_t a = {0};
    const char *topic_v[MAX_LIST], *listen_v[MAX_LIST], *dial_v[MAX_LIST];
    cli_list_t topics = {topic_v, 0, MAX_LIST}, listen = {listen_v, 0, MAX_LIST},
               dials = {dial_v, 0, MAX_LIST};
    const char *psk_file = NULL;
    uint8_t psk[32];
    const char *key_file = NULL, *metrics = NULL, *router = "gossipsub";
    int mdns = 0, no_sign = 0, score = 0;
    const cli_opt_t opts[] = {
        CLI_OPTION("--topic", CLI_LIST, &topics),
        CLI_OPTION("--listen", CLI_LIST, &listen),
        CLI_OPTION("--dial", CLI_LIST, &dials),
        CLI_OPTION("--mdns", CLI_FLAG, &mdns),
        CLI_OPTION("--router", CLI_STR, &router),
        CLI_OPTION("--no-sign", CLI_FLAG, &no_sign),
        CLI_OPTION("--score", CLI_FLAG, &score),
        CLI_OPTION("--key", CLI_STR, &key_file),
        CLI_OPTION("--psk", CLI_STR, &psk_file),
        CLI_OPTION("--metrics", CLI_STR, &metrics),
        CLI_END,
    };
    int prc = cli_parse("pubsub", argc, argv, opts, usage, NULL);
    if (prc)
        return prc == CLI_HELP ? CLI_OK : prc;
    if (!topics.n)
        return cli_usage("pubsub", "--topic is needed");
    cp2p_pubsub_config_t pc = {0};
    if (!strcmp(router, "floodsub"))
        pc.router = CP2P_PUBSUB_FLOODSUB;
    else if (strcmp(router, "gossipsub"))
        return cli_usage("pubsub", "--router %s: gossipsub or floodsub expected", router);
    if (no_sign)
        pc.sign_policy = CP2P_PUBSUB_STRICT_NO_SIGN;
    cp2p_pubsub_score_params_t sp;
    cp2p_pubsub_topic_score_t tsp[MAX_LIST];
    if (score) {
        cp2p_pubsub_score_defaults(&sp, tsp, topics.v, topics.n);
        pc.score = &sp; /* copied by cp2p_pubsub_new */
    }
    if (!listen.n)
        listen.v[listen.n++] = "/ip4/0.0.0.0/tcp/0";
    a.topics = topics.v;
    a.n_topics = topics.n;

    cp2p_host_config_t cfg = {0};
    int rc;
    if (psk_file && cli_load_psk("pubsub", psk_file, psk))
        return CLI_FAIL;
    cfg.psk = psk_file ? psk : NULL;
    if (key_file && (rc = cp2p_privkey_load_file(key_file, &cfg.identity)) < 0)
        return cli_fail("pubsub", "cannot read key %s: %s", key_file, cli_key_error(rc));
    uv_loop_init(&a.loop);
    cli_signals_start(&a.sig, &a.loop, on_signal, &a);

    char what[CP2P_MULTIADDR_STRMAX + 64] = "cannot create the host";
    rc = cp2p_host_new(&a.loop, &cfg, &a.h);
    if (!rc)
        rc = cp2p_ping_enable(a.h);
    if (!rc)
        rc = cp2p_identify_enable(a.h, NULL, &a.id);
    if (!rc) {
        snprintf(what, sizeof what, "cannot start pubsub");
        rc = cp2p_pubsub_new(a.h, &pc, &a.ps);
    }
    if (!rc)
        cp2p_pubsub_set_peer_fn(a.ps, on_peer, &a);
    for (size_t i = 0; !rc && i < topics.n; i++) {
        snprintf(what, sizeof what, "cannot join %s", topics.v[i]);
        rc = cp2p_pubsub_join(a.ps, topics.v[i], on_message, &a);
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
    if (!rc) {
        cli_print_peer_id(a.h);
        cli_print_listen_addrs(a.h, "Listening on ");
    }
    for (size_t i = 0; !rc && i < dials.n; i++) {
        snprintf(what, sizeof what, "cannot dial %s", dials.v[i]);
        rc = dial(&a, dials.v[i]);
    }
    if (!rc && mdns) {
        cp2p_mdns_config_t mc = {.dial = 1};
        snprintf(what, sizeof what, "cannot start mDNS");
        rc = cp2p_mdns_start(a.h, &mc, NULL, NULL, &a.mdns);
    }
    if (!rc && metrics) {
        cp2p_metrics_config_t cm = {.listen = metrics, .sources = {cp2p_pubsub_metrics_source(a.ps)}};
        snprintf(what, sizeof what, "cannot serve metrics on %s (IP:PORT expected)", metrics);
        rc = cp2p_metrics_start(a.h, &cm, &a.metrics);
    }
    if (!rc) {
        snprintf(what, sizeof what, "cannot read stdin");
        rc = start_input(&a);
    }
    int code = 0;
    if (rc) {
        fprintf(stderr, "cp2p: pubsub: %s: %s\n", what, cp2p_strerror(rc));
        code = 1;
        shutdown_app(&a);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    cp2p_buf_free(&a.lines);
    return code;
}
