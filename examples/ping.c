/* A ping server and client (libp2p's /ipfs/ping/1.0.0) on the cp2p library.
 *
 *   ping                      serve ping on 127.0.0.1 (any free port) and print
 *                             the address to dial, until SIGINT or SIGTERM
 *   ping <multiaddr>          dial /ip4/A/tcp/P/p2p/<peer id>, ping it 3 times,
 *                             print the round trips, exit 0
 *
 * What it shows: one host on one libuv loop; a server enables the protocols
 * it answers (ping here); every call reports through a callback that runs on
 * a later loop turn; a host closes asynchronously, and uv_run returns once
 * everything it had is closed. */
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include <cp2p/error.h>
#include <cp2p/host.h>
#include <cp2p/multiaddr.h>
#include <cp2p/ping.h>

typedef struct app {
    uv_loop_t *loop;
    cp2p_host_t *host;
    cp2p_ping_t *ping; /* the client's session: one stream for every ping */
    uv_signal_t sigint, sigterm;
    int left;          /* pings still to send */
    int status;        /* the exit status */
    int stopping;
} app_t;

/* Everything ends here: signals stop, the ping session and the host close;
 * uv_run returns when their handles are gone. */
static void stop(app_t *a, int status)
{
    if (a->stopping++) /* a cancelled ping reports too: once is enough */
        return;
    a->status = status;
    cp2p_ping_free(a->ping); /* NULL is fine; an outstanding ping is cancelled */
    a->ping = NULL;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    cp2p_host_close(a->host, NULL, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    stop(s->data, 0);
}

static void on_pong(int status, uint64_t rtt_us, void *arg)
{
    app_t *a = arg;
    if (status < 0) {
        fprintf(stderr, "ping failed: %s\n", cp2p_strerror(status));
        stop(a, 1);
        return;
    }
    printf("pong: %.2f ms\n", (double)rtt_us / 1000);
    if (--a->left == 0) {
        stop(a, 0);
        return;
    }
    int rc = cp2p_ping_send(a->ping, on_pong, a);
    if (rc < 0)
        stop(a, 1);
}

static void on_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    app_t *a = arg;
    if (status < 0) {
        fprintf(stderr, "cannot connect: %s\n", cp2p_strerror(status));
        stop(a, 1);
        return;
    }
    int rc = cp2p_ping_new(h, peer, &a->ping);
    if (rc == 0)
        rc = cp2p_ping_send(a->ping, on_pong, a);
    if (rc < 0) {
        fprintf(stderr, "cannot ping: %s\n", cp2p_strerror(rc));
        stop(a, 1);
    }
}

/* Print each listen address with /p2p/<our id>: what the client dials. */
static void print_addrs(cp2p_host_t *h)
{
    cp2p_multiaddr_t *addrs; /* a malloc'd array of multiaddrs the caller frees */
    size_t n;
    char id[CP2P_PEER_ID_STRMAX];
    if (cp2p_host_listen_addrs(h, &addrs, &n) < 0)
        return;
    cp2p_peer_id_to_string(cp2p_host_peer_id(h), id, sizeof id);
    for (size_t i = 0; i < n; i++) {
        cp2p_buf_t s = {0};
        if (cp2p_multiaddr_to_string(&addrs[i], &s) == 0)
            printf("listening on %s/p2p/%s\n", (const char *)s.data, id);
        cp2p_buf_free(&s);
    }
    cp2p_multiaddr_array_free(addrs, n);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    app_t a = {.loop = uv_default_loop(), .left = 3};
    if (argc > 2 || (argc == 2 && argv[1][0] != '/')) {
        fprintf(stderr, "usage: %s [multiaddr to ping]\n", argv[0]);
        return 2;
    }
    int rc = cp2p_host_new(a.loop, NULL, &a.host); /* NULL: defaults, a fresh Ed25519 key */
    if (rc < 0) {
        fprintf(stderr, "cannot make a host: %s\n", cp2p_strerror(rc));
        return 1;
    }
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);

    cp2p_multiaddr_t ma = {0}; /* parsed into malloc'd bytes: cp2p_multiaddr_free */
    rc = cp2p_multiaddr_parse(argc == 1 ? "/ip4/127.0.0.1/tcp/0" : argv[1], &ma);
    if (rc == 0 && argc == 1) {
        rc = cp2p_host_listen(a.host, &ma);
        if (rc == 0)
            rc = cp2p_ping_enable(a.host); /* a server answers only what it enables */
        if (rc == 0)
            print_addrs(a.host);
    } else if (rc == 0) {
        rc = cp2p_host_connect(a.host, &ma, on_connected, &a); /* on_connected comes later */
    }
    cp2p_multiaddr_free(&ma);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", argc == 1 ? "cannot listen" : "bad address",
                cp2p_strerror(rc));
        stop(&a, 1);
    }
    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
    return a.status;
}
