/* Publish/subscribe (gossipsub) on the cp2p library: three hosts on one
 * loop in a line (a <- b <- c: b dials a, c dials b), all in one topic. Once
 * the mesh has formed, c publishes; a gets the message through b, prints
 * it and the program exits 0 (1 after 10 s without it).
 *
 * What it shows: pubsub on a host (with identify, which tells who speaks
 * gossipsub); joining a topic with a message callback; publishing; a timer
 * of the program's own on the same loop; teardown: pubsub, then the hosts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <cp2p/error.h>
#include <cp2p/host.h>
#include <cp2p/identify.h>
#include <cp2p/multiaddr.h>
#include <cp2p/pubsub.h>

#define N 3
static const char TOPIC[] = "example";
static const char TEXT[] = "hello from c";

typedef struct node {
    cp2p_host_t *host;
    cp2p_identify_t *id;
    cp2p_pubsub_t *ps;
    cp2p_multiaddr_t addr; /* where it listens, with /p2p/<id> */
} node_t;

static node_t nodes[N];
static uv_timer_t timer;
static int ticks, published, status = 1;

static void pubsub_closed(void *arg)
{
    node_t *n = arg;
    cp2p_identify_free(n->id);
    cp2p_multiaddr_free(&n->addr);
    cp2p_host_close(n->host, NULL, NULL); /* uv_run returns once all is closed */
}

static void stop(int st)
{
    static int stopping;
    if (stopping++)
        return;
    status = st;
    uv_close((uv_handle_t *)&timer, NULL);
    for (int i = 0; i < N; i++) {
        if (nodes[i].ps)
            cp2p_pubsub_close(nodes[i].ps, pubsub_closed, &nodes[i]);
        else if (nodes[i].host)
            pubsub_closed(&nodes[i]);
    }
}

/* A message on the topic at a (never inside cp2p_pubsub_publish). */
static void on_message(cp2p_pubsub_t *ps, const cp2p_pubsub_message_t *m, void *arg)
{
    (void)ps;
    if (arg != &nodes[0])
        return; /* b relays it too, and may print nothing */
    char from[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(m->from, from, sizeof from);
    printf("a got \"%.*s\" from %s on %s\n", (int)m->len, (const char *)m->data, from, m->topic);
    stop(m->len == strlen(TEXT) && !memcmp(m->data, TEXT, m->len) ? 0 : 1);
}

/* Every 100 ms: publish once a has a mesh peer (GRAFTs come with the
 * heartbeat), give up after 10 s. */
static void on_timer(uv_timer_t *t)
{
    (void)t;
    if (++ticks > 100) {
        fprintf(stderr, "pubsub: no message within 10 s\n");
        stop(1);
        return;
    }
    if (!published && cp2p_pubsub_mesh_peers(nodes[0].ps, TOPIC, NULL, 0) > 0 &&
        cp2p_pubsub_mesh_peers(nodes[2].ps, TOPIC, NULL, 0) > 0) {
        published = 1;
        int rc = cp2p_pubsub_publish(nodes[2].ps, TOPIC, (const uint8_t *)TEXT, strlen(TEXT));
        if (rc < 0) {
            fprintf(stderr, "pubsub: publish: %s\n", cp2p_strerror(rc));
            stop(1);
        }
    }
}

static void connected(cp2p_host_t *h, int rc, const cp2p_peer_id_t *peer, void *arg)
{
    (void)h, (void)peer, (void)arg;
    if (rc < 0) {
        fprintf(stderr, "pubsub: connect: %s\n", cp2p_strerror(rc));
        stop(1);
    }
}

static int start(uv_loop_t *loop, int i)
{
    node_t *n = &nodes[i];
    cp2p_multiaddr_t any;
    cp2p_multiaddr_t *addrs;
    size_t na;
    cp2p_buf_t s = {0};
    char id[CP2P_PEER_ID_STRMAX], full[CP2P_MULTIADDR_STRMAX + CP2P_PEER_ID_STRMAX];
    int rc = cp2p_host_new(loop, NULL, &n->host);
    if (!rc)
        rc = cp2p_identify_enable(n->host, NULL, &n->id);
    if (!rc)
        rc = cp2p_pubsub_new(n->host, NULL, &n->ps); /* gossipsub, signed messages */
    if (!rc)
        rc = cp2p_pubsub_join(n->ps, TOPIC, on_message, n);
    if (!rc && !(rc = cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &any))) {
        rc = cp2p_host_listen(n->host, &any);
        cp2p_multiaddr_free(&any);
    }
    if (!rc && !(rc = cp2p_host_listen_addrs(n->host, &addrs, &na))) {
        cp2p_peer_id_to_string(cp2p_host_peer_id(n->host), id, sizeof id);
        rc = cp2p_multiaddr_to_string(&addrs[0], &s);
        if (!rc) {
            snprintf(full, sizeof full, "%s/p2p/%s", (const char *)s.data, id);
            rc = cp2p_multiaddr_parse(full, &n->addr);
        }
        cp2p_buf_free(&s);
        cp2p_multiaddr_array_free(addrs, na);
    }
    if (!rc && i > 0) /* each dials the one before it */
        rc = cp2p_host_connect(n->host, &nodes[i - 1].addr, connected, NULL);
    return rc;
}

int main(void)
{
    uv_loop_t *loop = uv_default_loop();
    uv_timer_init(loop, &timer);
    int rc = 0;
    for (int i = 0; i < N && !rc; i++)
        if ((rc = start(loop, i)) < 0)
            fprintf(stderr, "pubsub: node %d: %s\n", i, cp2p_strerror(rc));
    if (rc)
        stop(1);
    else
        uv_timer_start(&timer, on_timer, 100, 100);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return status;
}
