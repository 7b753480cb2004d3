/* A chat over a protocol of our own, /cp2p-example/chat/1.0.0, on the cp2p
 * library: stream reads, writes and backpressure.
 *
 *   chat                      listen on 127.0.0.1 (any free port), print the
 *                             address; print what each peer sends and send it
 *                             back, until SIGINT or SIGTERM
 *   chat <multiaddr>          dial it, send standard input, print what comes
 *                             back; at the end of input close our side and exit
 *                             0 once the other side closed too
 *
 * Backpressure: the client reads its next chunk of input only once the
 * stream's muxer took the last one (the write's callback says so); the
 * server stops reading a stream while its echo is queued. Nobody holds more
 * than one chunk, however fast the other side sends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <cp2p/error.h>
#include <cp2p/host.h>
#include <cp2p/multiaddr.h>
#include <cp2p/stream.h>

#define CHAT "/cp2p-example/chat/1.0.0"

typedef struct app {
    uv_loop_t *loop;
    cp2p_host_t *host;
    cp2p_stream_t *stream; /* the client's */
    uv_fs_t in;            /* the client's read of standard input (file, pipe or tty) */
    int reading;           /* a read of it is under way */
    uv_signal_t sigint, sigterm;
    char buf[4096];
    int status, stopping;
} app_t;

static void stop(app_t *a, int status)
{
    if (a->stopping++)
        return;
    a->status = status;
    if (a->stream) {
        cp2p_stream_reset(a->stream); /* nothing more to say: abort what is left */
        cp2p_stream_unref(a->stream);
        a->stream = NULL;
    }
    if (a->reading)
        uv_cancel((uv_req_t *)&a->in); /* its callback still comes, with UV_ECANCELED */
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    cp2p_host_close(a->host, NULL, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    stop(s->data, 0);
}

/* ---- server: echo every chunk back, reading again once it is taken ---- */

static void serve_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);

static void echoed(cp2p_stream_t *s, int status, void *arg)
{
    if (status == 0)
        cp2p_stream_read_start(s, serve_read, arg); /* the echo left: read on */
    /* else the stream died; its read callback says so and drops it */
}

static void serve_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    if (status == CP2P_ECLOSED) { /* the peer finished: finish our side too */
        cp2p_stream_close_write(s);
        cp2p_stream_unref(s);
        return;
    }
    if (status < 0) { /* reset or broken: the last callback */
        cp2p_stream_unref(s);
        return;
    }
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(cp2p_stream_peer(s), id, sizeof id);
    printf("%.8s...: %.*s", id + strlen(id) - 8, (int)n, (const char *)p);
    fflush(stdout);
    cp2p_stream_read_stop(s); /* hold the peer while our echo is queued */
    if (cp2p_stream_write(s, p, n, echoed, arg) < 0) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
}

/* A peer opened a chat stream: the handler owns this reference. */
static void on_chat(cp2p_stream_t *s, void *arg)
{
    if (cp2p_stream_read_start(s, serve_read, arg) < 0) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
}

/* ---- client: standard input to the stream, the stream to standard output ---- */

static void read_input(app_t *a);

static void sent(cp2p_stream_t *s, int status, void *arg)
{
    app_t *a = arg;
    if (status == 0 && a->stream && !a->stopping)
        read_input(a); /* the muxer took the chunk: read the next one */
}

static void on_input(uv_fs_t *req)
{
    app_t *a = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    a->reading = 0;
    if (a->stopping || !a->stream)
        return;
    if (n == 0) { /* end of input: EOF after what is queued */
        cp2p_stream_close_write(a->stream);
        return;
    }
    if (n < 0) {
        fprintf(stderr, "input: %s\n", uv_strerror((int)n));
        stop(a, 1);
        return;
    }
    /* One chunk at a time: the next read waits for the muxer to take this
     * one, so input goes at the stream's pace, never piling up here. */
    if (cp2p_stream_write(a->stream, (const uint8_t *)a->buf, (size_t)n, sent, a) < 0)
        stop(a, 1);
}

static void read_input(app_t *a)
{
    uv_buf_t b = uv_buf_init(a->buf, sizeof a->buf);
    a->in.data = a;
    a->reading = 1;
    int rc = uv_fs_read(a->loop, &a->in, 0, &b, 1, -1, on_input);
    if (rc < 0) {
        a->reading = 0;
        fprintf(stderr, "input: %s\n", uv_strerror(rc));
        stop(a, 1);
    }
}

static void client_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    app_t *a = arg;
    if (status == CP2P_ECLOSED) { /* the server closed its side after ours: done */
        cp2p_stream_unref(a->stream);
        a->stream = NULL;
        stop(a, 0);
        return;
    }
    if (status < 0) {
        fprintf(stderr, "chat stream: %s\n", cp2p_strerror(status));
        stop(a, 1);
        return;
    }
    fwrite(p, 1, n, stdout);
    fflush(stdout);
}

static void on_opened(int status, cp2p_stream_t *s, void *arg)
{
    app_t *a = arg;
    if (status < 0) {
        fprintf(stderr, "cannot open a chat stream: %s\n", cp2p_strerror(status));
        stop(a, 1);
        return;
    }
    a->stream = s; /* ours: unref it when done */
    int rc = cp2p_stream_read_start(s, client_read, a);
    if (rc < 0) {
        fprintf(stderr, "cannot read the stream: %s\n", cp2p_strerror(rc));
        stop(a, 1);
        return;
    }
    read_input(a);
}

static void on_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    app_t *a = arg;
    static const char *const protos[] = {CHAT};
    int rc = status < 0 ? status : cp2p_host_new_stream(h, peer, protos, 1, on_opened, a);
    if (rc < 0) {
        fprintf(stderr, "cannot connect: %s\n", cp2p_strerror(rc));
        stop(a, 1);
    }
}

static void print_addrs(cp2p_host_t *h)
{
    cp2p_multiaddr_t *addrs;
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
    static app_t a; /* static: zeroed, and alive for every callback */
    a.loop = uv_default_loop();
    if (argc > 2 || (argc == 2 && argv[1][0] != '/')) {
        fprintf(stderr, "usage: %s [multiaddr to chat with]\n", argv[0]);
        return 2;
    }
    int rc = cp2p_host_new(a.loop, NULL, &a.host);
    if (rc < 0) {
        fprintf(stderr, "cannot make a host: %s\n", cp2p_strerror(rc));
        return 1;
    }
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);

    cp2p_multiaddr_t ma = {0};
    rc = cp2p_multiaddr_parse(argc == 1 ? "/ip4/127.0.0.1/tcp/0" : argv[1], &ma);
    if (rc == 0 && argc == 1) {
        rc = cp2p_host_set_handler(a.host, CHAT, on_chat, &a);
        if (rc == 0)
            rc = cp2p_host_listen(a.host, &ma);
        if (rc == 0)
            print_addrs(a.host);
    } else if (rc == 0) {
        rc = cp2p_host_connect(a.host, &ma, on_connected, &a);
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
