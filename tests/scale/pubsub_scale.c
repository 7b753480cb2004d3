/* pubsub_scale: many gossipsub nodes on one loop over loopback TCP (noise,
 * yamux), in a random topology, all subscribed to one topic; messages from
 * random publishers must reach every node. Reports delivery latency (p50,
 * p99), duplicates per delivered message and bytes on the wire per
 * delivered message; exits 0 when every node got every message, 1 if not,
 * 2 on a usage error.
 *
 *   pubsub_scale [--nodes N] [--degree D] [--messages M] [--rate PER_S]
 *                [--size BYTES] [--seed S] [--timeout S] [--json]
 *
 * --json prints one line for bench/run instead: {"type":"pubsub",...,
 * "perSecond": messages delivered everywhere per second from the first
 * publish to the last delivery, "p50Ms", "p99Ms", ...}.
 *
 * The nodes share one process (and one clock, so latency is exact); each
 * dials degree/2 random others, which gives each about `degree` neighbours. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/multiaddr.h"
#include "cp2p/pubsub.h"

#define TOPIC "scale"

typedef struct node {
    struct sim *sim;
    int idx;
    cp2p_host_t *h;
    cp2p_pubsub_t *ps;
    cp2p_identify_t *id;
    cp2p_multiaddr_t *addrs;
    size_t n_addrs;
} node_t;

typedef struct sim {
    uv_loop_t loop;
    uv_timer_t timer;
    node_t *nodes;
    int n, degree, messages, rate, size, timeout_s;
    int sent, closing, closed;
    uint64_t *sent_at;          /* [messages], ns */
    uint8_t *got;               /* [messages * n] */
    uint64_t deliveries, expected;
    double *lat;                /* ms, one per delivery */
    uint64_t t_start, t_last_sent, t_first_pub, t_last_delivery;
    int json;
    int phase;                  /* 0 wiring, 1 publishing, 2 draining */
    int status;
} sim_t;

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

static void on_message(cp2p_pubsub_t *ps, const cp2p_pubsub_message_t *m, void *arg)
{
    (void)ps;
    node_t *nd = arg;
    sim_t *s = nd->sim;
    unsigned idx;
    char head[16]; /* the data is not NUL-terminated: parse a copy of its start */
    size_t k = m->len < sizeof head - 1 ? m->len : sizeof head - 1;
    memcpy(head, m->data, k);
    head[k] = 0;
    if (sscanf(head, "m%u", &idx) != 1 || idx >= (unsigned)s->messages)
        return;
    uint8_t *g = &s->got[(size_t)idx * s->n + nd->idx];
    if (*g)
        return;
    *g = 1;
    s->t_last_delivery = now_ns();
    s->lat[s->deliveries++] = (double)(s->t_last_delivery - s->sent_at[idx]) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void closed_one(void *arg)
{
    sim_t *s = arg;
    if (++s->closed == s->n)
        uv_close((uv_handle_t *)&s->timer, NULL);
}

static void ps_closed(void *arg)
{
    node_t *nd = arg;
    cp2p_identify_free(nd->id);
    cp2p_host_close(nd->h, closed_one, nd->sim);
}

static void report_and_stop(sim_t *s)
{
    if (s->closing++)
        return;
    cp2p_pubsub_stats_t st;
    uint64_t dups = 0, bytes = 0;
    for (int i = 0; i < s->n; i++) {
        cp2p_pubsub_stats(s->nodes[i].ps, &st);
        dups += st.duplicates;
        cp2p_host_stats_t hs;
        cp2p_host_stats(s->nodes[i].h, &hs);
        bytes += hs.bytes_out;
    }
    qsort(s->lat, s->deliveries, sizeof *s->lat, cmp_double);
    double p50 = s->deliveries ? s->lat[s->deliveries / 2] : 0;
    double p99 = s->deliveries ? s->lat[(size_t)((double)s->deliveries * 0.99)] : 0;
    double secs = (double)(now_ns() - s->t_start) / 1e9;
    double span = (double)(s->t_last_delivery - s->t_first_pub) / 1e9;
    if (s->json) {
        printf("{\"type\":\"pubsub\",\"nodes\":%d,\"degree\":%d,\"messages\":%d,\"delivered\":%llu,"
               "\"expected\":%llu,\"seconds\":%.3f,\"perSecond\":%.1f,\"p50Ms\":%.2f,\"p99Ms\":%.2f,"
               "\"dupsPerDelivery\":%.2f,\"bytesPerDelivery\":%.0f}\n",
               s->n, s->degree, s->messages, (unsigned long long)s->deliveries,
               (unsigned long long)s->expected, span, span > 0 ? s->messages / span : 0, p50, p99,
               s->deliveries ? (double)dups / (double)s->deliveries : 0,
               s->deliveries ? (double)bytes / (double)s->deliveries : 0);
    } else
    printf("nodes %d degree %d messages %d: delivered %llu of %llu; latency p50 %.1f ms p99 %.1f ms; "
           "duplicates per delivery %.2f; bytes on the wire per delivery %.0f; %.1f s\n",
           s->n, s->degree, s->messages, (unsigned long long)s->deliveries,
           (unsigned long long)s->expected, p50, p99,
           s->deliveries ? (double)dups / (double)s->deliveries : 0,
           s->deliveries ? (double)bytes / (double)s->deliveries : 0, secs);
    if (s->deliveries < s->expected) {
        int shown = 0;
        for (int m = 0; m < s->messages && shown < 5; m++)
            for (int i = 0; i < s->n && shown < 5; i++)
                if (!s->got[(size_t)m * s->n + i]) {
                    printf("missing: message %d at node %d\n", m, i);
                    shown++;
                }
    }
    fflush(stdout);
    s->status = s->deliveries == s->expected ? 0 : 1;
    for (int i = 0; i < s->n; i++)
        cp2p_pubsub_close(s->nodes[i].ps, ps_closed, &s->nodes[i]);
}

static void publish_one(sim_t *s)
{
    int from = rand() % s->n;
    char *buf = malloc((size_t)s->size + 32);
    int len = snprintf(buf, 32, "m%d ", s->sent);
    memset(buf + len, 'x', (size_t)(s->size > len ? s->size - len : 0));
    len = s->size > len ? s->size : len;
    s->sent_at[s->sent] = now_ns();
    if (!s->sent)
        s->t_first_pub = s->sent_at[0];
    /* The publisher is a subscriber too: it has its own message. */
    s->got[(size_t)s->sent * s->n + from] = 1;
    s->deliveries++;
    s->lat[s->deliveries - 1] = 0;
    int rc = cp2p_pubsub_publish(s->nodes[from].ps, TOPIC, (const uint8_t *)buf, (size_t)len);
    if (rc)
        fprintf(stderr, "pubsub_scale: publish: %s\n", cp2p_strerror(rc));
    free(buf);
    s->sent++;
}

static void on_tick(uv_timer_t *t)
{
    sim_t *s = t->data;
    uint64_t now = now_ns();
    if (s->phase == 0) {
        /* Wired once every node has a peer in the topic and meshes formed. */
        int ready = 1;
        for (int i = 0; i < s->n && ready; i++)
            ready = cp2p_pubsub_mesh_peers(s->nodes[i].ps, TOPIC, NULL, 0) > 0;
        if (ready && now - s->t_start > 2000000000ull) {
            s->phase = 1;
            if (!s->json)
                printf("wired: %d nodes in %.1f s\n", s->n, (double)(now - s->t_start) / 1e9);
            fflush(stdout);
            s->t_start = now;
        } else if (now - s->t_start > (uint64_t)s->timeout_s * 1000000000ull) {
            fprintf(stderr, "pubsub_scale: the mesh did not form in %d s\n", s->timeout_s);
            report_and_stop(s);
        }
        return;
    }
    if (s->phase == 1) {
        /* rate messages a second, 10 ms at a time */
        uint64_t due = (now - s->t_start) * (uint64_t)s->rate / 1000000000ull + 1;
        while ((uint64_t)s->sent < due && s->sent < s->messages)
            publish_one(s);
        if (s->sent == s->messages) {
            s->phase = 2;
            s->t_last_sent = now;
        }
        return;
    }
    if (s->deliveries == s->expected ||
        now - s->t_last_sent > (uint64_t)s->timeout_s * 1000000000ull)
        report_and_stop(s);
}

static void connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    (void)h, (void)peer, (void)arg;
    if (status < 0)
        fprintf(stderr, "pubsub_scale: connect: %s\n", cp2p_strerror(status));
}

static int num(const char *v, int min, int max, int *out)
{
    char *end;
    long x = strtol(v ? v : "", &end, 10);
    if (!v || *end || x < min || x > max)
        return -1;
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv)
{
    sim_t s = {.n = 100, .degree = 6, .messages = 1000, .rate = 200, .size = 64, .timeout_s = 60};
    unsigned seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, sd = 0;
        if (!strcmp(o, "--json")) {
            s.json = 1;
            continue;
        }
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            printf("usage: pubsub_scale [--nodes N] [--degree D] [--messages M] [--rate PER_S]\n"
                   "                    [--size BYTES] [--seed S] [--timeout S] [--json]\n");
            return 0;
        } else if (!strcmp(o, "--nodes"))
            bad = num(v, 2, 2000, &s.n);
        else if (!strcmp(o, "--degree"))
            bad = num(v, 1, 64, &s.degree);
        else if (!strcmp(o, "--messages"))
            bad = num(v, 1, 1000000, &s.messages);
        else if (!strcmp(o, "--rate"))
            bad = num(v, 1, 100000, &s.rate);
        else if (!strcmp(o, "--size"))
            bad = num(v, 8, 1 << 20, &s.size);
        else if (!strcmp(o, "--timeout"))
            bad = num(v, 1, 3600, &s.timeout_s);
        else if (!strcmp(o, "--seed"))
            bad = num(v, 0, 1 << 30, &sd), seed = (unsigned)sd;
        else
            bad = -1;
        if (bad) {
            fprintf(stderr, "pubsub_scale: bad option %s %s (try --help)\n", o, v ? v : "");
            return 2;
        }
        i++;
    }
    srand(seed);
    uv_loop_init(&s.loop);
    s.nodes = calloc((size_t)s.n, sizeof *s.nodes);
    s.sent_at = calloc((size_t)s.messages, sizeof *s.sent_at);
    s.got = calloc((size_t)s.messages * (size_t)s.n, 1);
    s.lat = calloc((size_t)s.messages * (size_t)s.n, sizeof *s.lat);
    s.expected = (uint64_t)s.messages * (uint64_t)s.n;
    cp2p_multiaddr_t any;
    cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &any);
    for (int i = 0; i < s.n; i++) {
        node_t *nd = &s.nodes[i];
        nd->sim = &s;
        nd->idx = i;
        cp2p_host_config_t hc = {0};
        int rc = cp2p_host_new(&s.loop, &hc, &nd->h);
        if (!rc)
            rc = cp2p_identify_enable(nd->h, NULL, &nd->id);
        if (!rc)
            rc = cp2p_pubsub_new(nd->h, NULL, &nd->ps);
        if (!rc)
            rc = cp2p_pubsub_join(nd->ps, TOPIC, on_message, nd);
        if (!rc)
            rc = cp2p_host_listen(nd->h, &any);
        if (!rc)
            rc = cp2p_host_listen_addrs(nd->h, &nd->addrs, &nd->n_addrs);
        if (rc) {
            fprintf(stderr, "pubsub_scale: node %d: %s\n", i, cp2p_strerror(rc));
            return 1;
        }
    }
    cp2p_multiaddr_free(&any);
    /* Each dials degree/2 others at random (at least one). */
    int dials = s.degree / 2 ? s.degree / 2 : 1;
    for (int i = 0; i < s.n; i++)
        for (int k = 0; k < dials; k++) {
            int j = rand() % s.n;
            if (j == i)
                j = (j + 1) % s.n;
            cp2p_multiaddr_t ma;
            cp2p_buf_t str = {0};
            char id[CP2P_PEER_ID_STRMAX];
            cp2p_peer_id_to_string(cp2p_host_peer_id(s.nodes[j].h), id, sizeof id);
            cp2p_multiaddr_to_string(&s.nodes[j].addrs[0], &str);
            char full[CP2P_MULTIADDR_STRMAX + CP2P_PEER_ID_STRMAX + 8];
            snprintf(full, sizeof full, "%s/p2p/%s", (char *)str.data, id);
            cp2p_buf_free(&str);
            if (cp2p_multiaddr_parse(full, &ma) == 0) {
                cp2p_host_connect(s.nodes[i].h, &ma, connected, NULL);
                cp2p_multiaddr_free(&ma);
            }
        }
    for (int i = 0; i < s.n; i++)
        cp2p_multiaddr_array_free(s.nodes[i].addrs, s.nodes[i].n_addrs);
    s.t_start = now_ns();
    uv_timer_init(&s.loop, &s.timer);
    s.timer.data = &s;
    uv_timer_start(&s.timer, on_tick, 10, 10);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    uv_loop_close(&s.loop);
    free(s.nodes);
    free(s.sent_at);
    free(s.got);
    free(s.lat);
    return s.status;
}
