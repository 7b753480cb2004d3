/* A Kademlia DHT put and get on the cp2p library: three hosts on one loop,
 * each knowing only the one before it (a -> b -> c). c stores a record, a
 * finds it through b; the program prints the value and exits 0.
 *
 * What it shows: a DHT on a host (with identify, which tells who speaks the
 * DHT); a bootstrap peer given by address; the chain of callbacks of
 * asynchronous operations; keys under a namespace the DHT takes any value
 * for (open_namespaces); teardown: the DHTs, then the hosts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <cp2p/dht.h>
#include <cp2p/error.h>
#include <cp2p/host.h>
#include <cp2p/identify.h>
#include <cp2p/multiaddr.h>

#define N 3
static const char KEY[] = "/example/greeting";
static const char VALUE[] = "hello from c";

typedef struct node {
    cp2p_host_t *host;
    cp2p_identify_t *id;
    cp2p_dht_t *dht;
    cp2p_multiaddr_t addr; /* where it listens */
} node_t;

static node_t nodes[N];
static int booted, status = 1;

/* Teardown in order: the DHTs first (each on the next loop turn, its
 * pending operations cancelled), then what they ran on. */
static void dht_closed(void *arg)
{
    static int closed;
    if (++closed < N)
        return;
    for (int i = 0; i < N; i++) {
        cp2p_identify_free(nodes[i].id);
        cp2p_multiaddr_free(&nodes[i].addr);
        if (nodes[i].host)
            cp2p_host_close(nodes[i].host, NULL, NULL); /* uv_run returns once all closed */
    }
}

static void stop(void)
{
    static int stopping;
    if (stopping++) /* cancelled operations report too: once is enough */
        return;
    for (int i = 0; i < N; i++)
        if (nodes[i].dht)
            cp2p_dht_close(nodes[i].dht, dht_closed, NULL); /* safe inside a DHT callback */
        else
            dht_closed(NULL); /* never made (a failed start) */
}

static void on_got(cp2p_dht_t *d, int rc, const uint8_t *v, size_t n, void *arg)
{
    if (rc < 0) {
        fprintf(stderr, "get: %s\n", cp2p_strerror(rc));
    } else {
        printf("a got %s = %.*s\n", KEY, (int)n, (const char *)v);
        status = n == strlen(VALUE) && !memcmp(v, VALUE, n) ? 0 : 1;
    }
    stop();
}

static void on_put(cp2p_dht_t *d, int rc, void *arg)
{
    if (rc < 0) {
        fprintf(stderr, "put: %s\n", cp2p_strerror(rc));
        stop();
        return;
    }
    printf("c put %s\n", KEY);
    rc = cp2p_dht_get(nodes[0].dht, (const uint8_t *)KEY, strlen(KEY), on_got, NULL);
    if (rc < 0) {
        fprintf(stderr, "get: %s\n", cp2p_strerror(rc));
        stop();
    }
}

static void on_bootstrapped(cp2p_dht_t *d, int rc, void *arg)
{
    if (rc < 0) {
        fprintf(stderr, "bootstrap: %s\n", cp2p_strerror(rc));
        stop();
        return;
    }
    if (++booted < N - 1)
        return;
    rc = cp2p_dht_put(nodes[N - 1].dht, (const uint8_t *)KEY, strlen(KEY),
                      (const uint8_t *)VALUE, strlen(VALUE), on_put, NULL);
    if (rc < 0) {
        fprintf(stderr, "put: %s\n", cp2p_strerror(rc));
        stop();
    }
}

int main(void)
{
    uv_loop_t *loop = uv_default_loop();
    static const char *const open_ns[] = {"example"}; /* /example/... takes any value */
    cp2p_dht_config_t cfg = {.open_namespaces = open_ns, .n_open_namespaces = 1, .quorum = 1};
    cp2p_multiaddr_t any;
    int rc = cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &any);
    for (int i = 0; rc == 0 && i < N; i++) {
        node_t *n = &nodes[i];
        cp2p_multiaddr_t *addrs;
        size_t count;
        rc = cp2p_host_new(loop, NULL, &n->host);
        if (rc == 0)
            rc = cp2p_identify_enable(n->host, NULL, &n->id);
        if (rc == 0)
            rc = cp2p_host_listen(n->host, &any);
        if (rc == 0)
            rc = cp2p_host_listen_addrs(n->host, &addrs, &count);
        if (rc == 0) {
            rc = cp2p_multiaddr_dup(&addrs[0], &n->addr);
            cp2p_multiaddr_array_free(addrs, count);
        }
        if (rc == 0)
            rc = cp2p_dht_new(n->host, &cfg, &n->dht);
        /* b knows a, c knows b: c's record reaches a only through b */
        if (rc == 0 && i > 0)
            rc = cp2p_dht_add_peer(n->dht, cp2p_host_peer_id(nodes[i - 1].host),
                                   &nodes[i - 1].addr, 1);
        if (rc == 0 && i > 0)
            rc = cp2p_dht_bootstrap(n->dht, on_bootstrapped, NULL);
    }
    cp2p_multiaddr_free(&any);
    if (rc < 0) {
        fprintf(stderr, "cannot start: %s\n", cp2p_strerror(rc));
        stop();
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return status;
}
