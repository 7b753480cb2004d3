/* Two hosts on one loop: connect, streams to an echo handler over yamux and
 * mplex, negotiation failures, peer ID checks, limits, resets, hostile peers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "cp2p/error.h"
#include "security/noise.h"
#include "swarm/swarm.h"
#include "cp2p/host.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peerstore.h"

#define ECHO_PROTO "/test/echo/1.0.0"

typedef struct world {
    uv_loop_t loop;
    cp2p_host_t *a, *b;
    cp2p_multiaddr_t b_addr; /* /ip4/127.0.0.1/tcp/<port> */
    unsigned b_port;
    int handler_resets;      /* reads on B that ended with CP2P_ERESET */
    int connected_events, disconnected_events, listen_events;
    uv_timer_t deadline;
    int expired;
} world_t;

/* ---- echo handler with backpressure ---- */

typedef struct echo {
    cp2p_stream_t *s;
    world_t *w;
    size_t pending;
    int done; /* EOF or error seen */
} echo_t;

static void echo_maybe_free(echo_t *e)
{
    if (e->done && e->pending == 0) {
        cp2p_stream_unref(e->s);
        free(e);
    }
}

static void echo_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);

static void echo_written(cp2p_stream_t *s, int status, void *arg)
{
    echo_t *e = arg;
    e->pending--;
    if (!e->done && e->pending == 0) {
        /* read_start may deliver EOF before it returns: hold e until then. */
        e->pending++;
        cp2p_stream_read_start(s, echo_read, e);
        e->pending--;
    }
    echo_maybe_free(e);
}

static void echo_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    echo_t *e = arg;
    if (status == 0) {
        assert_int_equal(cp2p_stream_write(s, p, n, echo_written, e), 0);
        e->pending++;
        /* Stop reading while our writes wait: the sender's window shuts. */
        if (e->pending > 4)
            cp2p_stream_read_stop(s);
        return;
    }
    if (status == CP2P_ECLOSED)
        cp2p_stream_close_write(s);
    else if (status == CP2P_ERESET)
        e->w->handler_resets++;
    e->done = 1;
    echo_maybe_free(e);
}

static void echo_handler(cp2p_stream_t *s, void *arg)
{
    echo_t *e = calloc(1, sizeof *e);
    e->s = s;
    e->w = arg;
    assert_string_equal(cp2p_stream_protocol(s), ECHO_PROTO);
    assert_int_equal(cp2p_stream_read_start(s, echo_read, e), 0);
}

/* ---- helpers ---- */

static void on_event(const cp2p_event_t *ev, void *arg)
{
    world_t *w = arg;
    if (ev->type == CP2P_EVENT_CONNECTED)
        w->connected_events++;
    else if (ev->type == CP2P_EVENT_DISCONNECTED)
        w->disconnected_events++;
    else if (ev->type == CP2P_EVENT_LISTEN_ADDR)
        w->listen_events++;
}

static void deadline_flag(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static void deadline_cb(uv_timer_t *t)
{
    world_t *w = t->data;
    w->expired = 1;
}

/* Run the loop until *flag becomes nonzero (or fail after 20 s). */
static void run_until(world_t *w, const int *flag)
{
    uv_timer_start(&w->deadline, deadline_cb, 20000, 0);
    while (!*flag && !w->expired)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->deadline);
    assert_false(w->expired);
}

static cp2p_host_t *new_host(world_t *w, const char *muxer, uint32_t max_conns)
{
    cp2p_host_config_t cfg = {0};
    const char *m[1] = {muxer};
    if (muxer) {
        cfg.muxers = m;
        cfg.n_muxers = 1;
    }
    cfg.max_connections = max_conns;
    cp2p_host_t *h;
    assert_int_equal(cp2p_host_new(&w->loop, &cfg, &h), 0);
    return h;
}

static void make_world(world_t *w, const char *a_mux, const char *b_mux, uint32_t b_max_conns)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    uv_timer_init(&w->loop, &w->deadline);
    w->deadline.data = w;
    w->a = new_host(w, a_mux, 0);
    w->b = new_host(w, b_mux, b_max_conns);
    assert_int_equal(cp2p_host_subscribe(w->b, on_event, w), 0);
    assert_int_equal(cp2p_host_set_handler(w->b, ECHO_PROTO, echo_handler, w), 0);
    cp2p_multiaddr_t l;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &l), 0);
    assert_int_equal(cp2p_host_listen(w->b, &l), 0);
    cp2p_multiaddr_free(&l);
    assert_int_equal(w->listen_events, 0); /* told on a later turn, never inside the call */
    while (w->listen_events < 1)
        uv_run(&w->loop, UV_RUN_ONCE);
    assert_int_equal(w->listen_events, 1);
    cp2p_multiaddr_t *addrs;
    size_t n;
    assert_int_equal(cp2p_host_listen_addrs(w->b, &addrs, &n), 0);
    assert_int_equal(n, 1);
    w->b_addr = addrs[0];
    free(addrs);
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(&w->b_addr, CP2P_MA_TCP, &c), 0);
    w->b_port = (unsigned)(c.value[0] << 8 | c.value[1]);
}

static void set_flag(void *arg)
{
    *(int *)arg = 1;
}

static void end_world(world_t *w)
{
    int a_done = 0, b_done = 0;
    cp2p_host_close(w->a, set_flag, &a_done);
    cp2p_host_close(w->b, set_flag, &b_done);
    uv_close((uv_handle_t *)&w->deadline, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_true(a_done && b_done);
    cp2p_multiaddr_free(&w->b_addr);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* b_addr + /p2p/<id> */
static cp2p_multiaddr_t addr_with_id(const cp2p_multiaddr_t *base, const cp2p_peer_id_t *id)
{
    char s[CP2P_PEER_ID_STRMAX], full[512];
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_peer_id_to_string(id, s, sizeof s), 0);
    assert_int_equal(cp2p_multiaddr_to_string(base, &b), 0);
    snprintf(full, sizeof full, "%s/p2p/%s", (char *)b.data, s);
    cp2p_buf_free(&b);
    cp2p_multiaddr_t m;
    assert_int_equal(cp2p_multiaddr_parse(full, &m), 0);
    return m;
}

typedef struct connect_result {
    int done, status;
    cp2p_peer_id_t peer;
} connect_result_t;

static void on_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    connect_result_t *r = arg;
    r->done = 1;
    r->status = status;
    if (peer)
        r->peer = *peer;
}

static int connect_to(world_t *w, cp2p_host_t *from, const cp2p_multiaddr_t *to)
{
    connect_result_t r = {0};
    assert_int_equal(cp2p_host_connect(from, to, on_connect, &r), 0);
    assert_false(r.done); /* never from inside the call */
    run_until(w, &r.done);
    if (r.status == 0)
        assert_true(cp2p_peer_id_equal(&r.peer, cp2p_host_peer_id(w->b)));
    return r.status;
}

/* ---- a client that streams `total` bytes and checks the echo ---- */

typedef struct client {
    world_t *w;
    cp2p_stream_t *s;
    size_t total, sent, received;
    size_t chunk; /* bytes per write; CHUNK if 0 */
    int open_status, opened, finished, read_status;
} client_t;

#define CHUNK 65536

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 + (i >> 8));
}

static void client_send(client_t *c);

static void client_written(cp2p_stream_t *s, int status, void *arg)
{
    client_t *c = arg;
    assert_int_equal(status, 0);
    client_send(c);
}

static void client_send(client_t *c)
{
    if (c->sent == c->total) {
        assert_int_equal(cp2p_stream_close_write(c->s), 0);
        return;
    }
    size_t chunk = c->chunk ? c->chunk : CHUNK;
    size_t n = c->total - c->sent < chunk ? c->total - c->sent : chunk;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(c->sent + i);
    c->sent += n;
    assert_int_equal(cp2p_stream_write(c->s, buf, n, client_written, c), 0);
    free(buf);
}

static void client_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    client_t *c = arg;
    if (status == 0) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pattern(c->received + i))
                fail_msg("echo differs at byte %zu", c->received + i);
        c->received += n;
        return;
    }
    c->read_status = status;
    c->finished = 1;
}

static void client_opened(int status, cp2p_stream_t *s, void *arg)
{
    client_t *c = arg;
    c->opened = 1;
    c->open_status = status;
    c->s = s;
    if (status)
        return;
    assert_string_equal(cp2p_stream_protocol(s), ECHO_PROTO);
    assert_int_equal(cp2p_stream_read_start(s, client_read, c), 0);
    client_send(c);
}

static void client_start(world_t *w, client_t *c, size_t total)
{
    static const char *const protos[] = {"/test/nope/1.0.0", ECHO_PROTO};
    memset(c, 0, sizeof *c);
    c->w = w;
    c->total = total;
    /* The first proposal is refused, the second taken. */
    assert_int_equal(cp2p_host_new_stream(w->a, cp2p_host_peer_id(w->b), protos, 2, client_opened, c), 0);
}

static void client_check(client_t *c)
{
    assert_int_equal(c->open_status, 0);
    assert_int_equal(c->read_status, CP2P_ECLOSED);
    assert_int_equal(c->received, c->total);
    cp2p_stream_unref(c->s);
}

static void echo_in(const char *a_mux, const char *b_mux, const char *expect_mux, size_t total,
                    size_t chunk)
{
    world_t w;
    make_world(&w, a_mux, b_mux, 0);
    cp2p_multiaddr_t to = addr_with_id(&w.b_addr, cp2p_host_peer_id(w.b));
    assert_int_equal(connect_to(&w, w.a, &to), 0);
    cp2p_multiaddr_free(&to);
    cp2p_conn_t *conn = cp2p_host_conn_to(w.a, cp2p_host_peer_id(w.b));
    assert_non_null(conn);
    assert_string_equal(cp2p_conn_muxer_id(conn), expect_mux);
    assert_false(cp2p_conn_is_inbound(conn));
    assert_non_null(cp2p_conn_remote_key(conn));
    assert_int_equal(w.connected_events, 1);

    client_t c;
    client_start(&w, &c, total);
    c.chunk = chunk;
    run_until(&w, &c.finished);
    client_check(&c);
    end_world(&w);
}

static void echo_mib(const char *a_mux, const char *b_mux, const char *expect_mux)
{
    echo_in(a_mux, b_mux, expect_mux, 1 << 20, 0);
}

/* ---- tests ---- */

static void test_echo_yamux(void **state)
{
    echo_mib(NULL, NULL, "/yamux/1.0.0");
}

static void test_echo_mplex(void **state)
{
    echo_mib("/mplex/6.7.0", NULL, "/mplex/6.7.0");
}

/* Each write is called back at once while the connection takes more, and
 * writes again from its callback: the bytes keep their order and the stack
 * does not grow with the number of writes. */
static void test_tiny_writes_chained_from_callbacks(void **state)
{
    echo_in(NULL, NULL, "/yamux/1.0.0", 100000, 7);
    echo_in("/mplex/6.7.0", NULL, "/mplex/6.7.0", 20000, 1);
}

static void test_muxer_preference_falls_back(void **state)
{
    /* A prefers yamux, B only speaks mplex. */
    static const char *const am[] = {"/yamux/1.0.0", "/mplex/6.7.0"};
    world_t w;
    make_world(&w, NULL, "/mplex/6.7.0", 0);
    cp2p_host_close(w.a, NULL, NULL);
    cp2p_host_config_t cfg = {.muxers = am, .n_muxers = 2};
    assert_int_equal(cp2p_host_new(&w.loop, &cfg, &w.a), 0);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    assert_string_equal(cp2p_conn_muxer_id(cp2p_host_conn_to(w.a, cp2p_host_peer_id(w.b))),
                        "/mplex/6.7.0");
    end_world(&w);
}

typedef struct open_result {
    int done, status;
    cp2p_stream_t *s;
} open_result_t;

static void on_open(int status, cp2p_stream_t *s, void *arg)
{
    open_result_t *r = arg;
    r->done = 1;
    r->status = status;
    r->s = s;
}

static void test_unknown_protocol(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    static const char *const protos[] = {"/test/unknown/1.0.0", "/test/other/2.0.0"};
    open_result_t r = {0};
    assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(w.b), protos, 2, on_open, &r), 0);
    run_until(&w, &r.done);
    assert_int_equal(r.status, CP2P_ENEGOTIATE);
    assert_null(r.s);
    /* The connection survives a failed stream. */
    client_t c;
    client_start(&w, &c, 1000);
    run_until(&w, &c.finished);
    client_check(&c);
    end_world(&w);
}

static void test_wrong_peer_id(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    /* A's own ID is surely not B's; use a third host's. */
    cp2p_host_t *other = new_host(&w, NULL, 0);
    cp2p_multiaddr_t to = addr_with_id(&w.b_addr, cp2p_host_peer_id(other));
    assert_int_equal(connect_to(&w, w.a, &to), CP2P_EPEERID);
    cp2p_multiaddr_free(&to);
    assert_null(cp2p_host_conn_to(w.a, cp2p_host_peer_id(w.b)));
    cp2p_host_close(other, NULL, NULL);
    end_world(&w);
}

static void test_closed_port(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    /* B's port, once B stops listening. */
    char s[64];
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", w.b_port);
    int b_done = 0;
    cp2p_host_close(w.b, set_flag, &b_done);
    run_until(&w, &b_done);
    w.b = new_host(&w, NULL, 0);
    cp2p_multiaddr_t to;
    assert_int_equal(cp2p_multiaddr_parse(s, &to), 0);
    connect_result_t r = {0};
    assert_int_equal(cp2p_host_connect(w.a, &to, on_connect, &r), 0);
    run_until(&w, &r.done);
    assert_int_equal(r.status, CP2P_ECONNREFUSED);
    cp2p_multiaddr_free(&to);
    end_world(&w);
}

typedef struct resetter {
    int opened, status;
    cp2p_stream_t *s;
} resetter_t;

static void reset_opened(int status, cp2p_stream_t *s, void *arg)
{
    resetter_t *r = arg;
    r->opened = 1;
    r->status = status;
    r->s = s;
}

static void written_ignore(cp2p_stream_t *s, int status, void *arg)
{
    *(int *)arg = 1;
}

static void test_reset_reaches_remote(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    static const char *const protos[] = {ECHO_PROTO};
    resetter_t r = {0};
    assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(w.b), protos, 1, reset_opened, &r), 0);
    run_until(&w, &r.opened);
    assert_int_equal(r.status, 0);
    int written = 0;
    assert_int_equal(cp2p_stream_write(r.s, (const uint8_t *)"x", 1, written_ignore, &written), 0);
    run_until(&w, &written);
    assert_int_equal(cp2p_stream_reset(r.s), 0);
    assert_int_equal(cp2p_stream_write(r.s, (const uint8_t *)"x", 1, NULL, NULL), CP2P_ERESET);
    cp2p_stream_unref(r.s);
    run_until(&w, &w.handler_resets);
    assert_int_equal(w.handler_resets, 1);
    end_world(&w);
}

static void test_connection_reuse_and_events(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    cp2p_multiaddr_t to = addr_with_id(&w.b_addr, cp2p_host_peer_id(w.b));
    assert_int_equal(connect_to(&w, w.a, &to), 0);
    assert_int_equal(connect_to(&w, w.a, &to), 0);
    cp2p_multiaddr_free(&to);
    assert_int_equal(cp2p_host_conn_count(w.a), 1);
    /* The dialled address went to A's peerstore. */
    cp2p_multiaddr_t got[4];
    assert_int_equal(cp2p_peerstore_addrs(cp2p_host_peerstore(w.a), cp2p_host_peer_id(w.b),
                                          uv_now(&w.loop), got, 4), 1);
    cp2p_conn_close(cp2p_host_conn_to(w.a, cp2p_host_peer_id(w.b)));
    run_until(&w, &w.disconnected_events);
    assert_int_equal(w.connected_events, 1);
    assert_int_equal(cp2p_host_conn_count(w.a), 0);
    /* A stream by peer ID alone redials from the peerstore. */
    client_t c;
    client_start(&w, &c, 5000);
    run_until(&w, &c.finished);
    client_check(&c);
    assert_int_equal(w.connected_events, 2);
    end_world(&w);
}

static void test_connection_limit(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 1);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    cp2p_host_t *c = new_host(&w, NULL, 0);
    connect_result_t r = {0};
    assert_int_equal(cp2p_host_connect(c, &w.b_addr, on_connect, &r), 0);
    run_until(&w, &r.done);
    assert_true(r.status < 0);
    assert_int_equal(cp2p_host_conn_count(w.b), 1);
    cp2p_host_stats_t st;
    cp2p_host_stats(w.b, &st);
    assert_int_equal(st.conns_rejected, 1);
    assert_int_equal(st.conns_opened, 1);
    cp2p_host_close(c, NULL, NULL);
    end_world(&w);
}

static void test_fifty_streams(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    enum { N = 50 };
    client_t *c = calloc(N, sizeof *c);
    for (int i = 0; i < N; i++)
        client_start(&w, &c[i], (1 << 20) + (size_t)i);
    for (int i = 0; i < N; i++) {
        run_until(&w, &c[i].finished);
        client_check(&c[i]);
    }
    free(c);
    end_world(&w);
}

/* A raw TCP client that sends garbage instead of multistream-select. */
typedef struct garbage {
    uv_tcp_t tcp;
    uv_connect_t req;
    uv_write_t wr;
    int closed;
    char rbuf[256];
} garbage_t;

static void g_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    garbage_t *g = h->data;
    *b = uv_buf_init(g->rbuf, sizeof g->rbuf);
}

static void g_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    garbage_t *g = s->data;
    if (n < 0) {
        g->closed = 1;
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void g_connected(uv_connect_t *req, int status)
{
    garbage_t *g = req->data;
    assert_int_equal(status, 0);
    static char junk[300];
    memset(junk, 0xff, sizeof junk);
    uv_buf_t b = uv_buf_init(junk, sizeof junk);
    uv_write(&g->wr, (uv_stream_t *)&g->tcp, &b, 1, NULL);
    uv_read_start((uv_stream_t *)&g->tcp, g_alloc, g_read);
}

static void test_garbage_peer(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    garbage_t g = {0};
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", (int)w.b_port, &sa);
    uv_tcp_init(&w.loop, &g.tcp);
    g.tcp.data = &g;
    g.req.data = &g;
    assert_int_equal(uv_tcp_connect(&g.req, &g.tcp, (struct sockaddr *)&sa, g_connected), 0);
    run_until(&w, &g.closed);
    cp2p_host_stats_t st;
    cp2p_host_stats(w.b, &st);
    assert_int_equal(st.conns_failed, 1);
    /* B still serves others. */
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    client_t c;
    client_start(&w, &c, 1000);
    run_until(&w, &c.finished);
    client_check(&c);
    end_world(&w);
}

/* ---- backpressure: a reader that stops shuts the sender's window ---- */

static cp2p_stream_t *g_sink;

static void sink_handler(cp2p_stream_t *s, void *arg)
{
    g_sink = s; /* keeps the handler's reference, reads nothing yet */
}

typedef struct sink_reader {
    size_t got;
    int eof;
} sink_reader_t;

static void sink_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    sink_reader_t *r = arg;
    if (status == 0)
        r->got += n;
    else
        r->eof = 1;
}

static void sink_opened(int status, cp2p_stream_t *s, void *arg)
{
    client_t *c = arg;
    assert_int_equal(status, 0);
    c->opened = 1;
    c->s = s;
    client_send(c); /* writes only: nothing comes back */
}

static void run_for(world_t *w, uint64_t ms)
{
    int flag = 0;
    uv_timer_t t;
    uv_timer_init(&w->loop, &t);
    t.data = &flag;
    uv_timer_start(&t, deadline_flag, ms, 0);
    while (!flag)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT); /* let the close finish: t lives on this stack */
}

static void test_backpressure(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    assert_int_equal(cp2p_host_set_handler(w.b, "/test/sink", sink_handler, NULL), 0);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    static const char *const protos[] = {"/test/sink"};
    client_t c;
    memset(&c, 0, sizeof c);
    c.w = &w;
    c.total = 8 << 20;
    g_sink = NULL;
    assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(w.b), protos, 1, sink_opened, &c), 0);
    run_for(&w, 300);
    assert_non_null(g_sink);
    /* The muxer took no more than B's receive window (256 KiB) and a chunk. */
    assert_true(c.sent < c.total);
    assert_true(c.sent <= 512 * 1024);
    sink_reader_t r = {0};
    assert_int_equal(cp2p_stream_read_start(g_sink, sink_read, &r), 0);
    run_until(&w, &r.eof);
    assert_int_equal(r.got, c.total);
    cp2p_stream_unref(g_sink);
    cp2p_stream_unref(c.s);
    end_world(&w);
}

/* ---- timeouts and limits ---- */

static void silent_accept(uv_stream_t *server, int status)
{
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(server->loop, c);
    assert_int_equal(uv_accept(server, (uv_stream_t *)c), 0);
    server->data = c; /* kept open, never answers */
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void test_negotiation_timeout(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    uv_tcp_t server;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&w.loop, &server);
    server.data = NULL;
    assert_int_equal(uv_tcp_bind(&server, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&server, 8, silent_accept), 0);
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
    char s[64];
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", ntohs(bound.sin_port));
    cp2p_host_config_t cfg = {.negotiate_timeout_ms = 200};
    cp2p_host_t *h;
    assert_int_equal(cp2p_host_new(&w.loop, &cfg, &h), 0);
    cp2p_multiaddr_t to;
    assert_int_equal(cp2p_multiaddr_parse(s, &to), 0);
    connect_result_t r = {0};
    uint64_t t0 = uv_now(&w.loop);
    assert_int_equal(cp2p_host_connect(h, &to, on_connect, &r), 0);
    run_until(&w, &r.done);
    assert_int_equal(r.status, CP2P_ETIMEOUT);
    assert_true(uv_now(&w.loop) - t0 >= 190);
    cp2p_multiaddr_free(&to);
    cp2p_host_close(h, NULL, NULL);
    if (server.data)
        uv_close((uv_handle_t *)server.data, free_handle);
    uv_close((uv_handle_t *)&server, NULL);
    end_world(&w);
}

static void test_stream_limit(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    int b_done = 0;
    cp2p_host_close(w.b, set_flag, &b_done);
    run_until(&w, &b_done);
    cp2p_host_config_t cfg = {.max_streams_per_conn = 1};
    assert_int_equal(cp2p_host_new(&w.loop, &cfg, &w.b), 0);
    assert_int_equal(cp2p_host_set_handler(w.b, ECHO_PROTO, echo_handler, &w), 0);
    assert_int_equal(cp2p_host_listen(w.b, &w.b_addr), 0); /* same port again: SO_REUSEADDR */
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    static const char *const protos[] = {ECHO_PROTO};
    open_result_t r1 = {0}, r2 = {0};
    assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(w.b), protos, 1, on_open, &r1), 0);
    run_until(&w, &r1.done);
    assert_int_equal(r1.status, 0);
    assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(w.b), protos, 1, on_open, &r2), 0);
    run_until(&w, &r2.done);
    assert_true(r2.status < 0);
    assert_null(r2.s);
    cp2p_stream_unref(r1.s);
    end_world(&w);
}

static void test_two_listen_addrs_dns_and_joined_dials(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    cp2p_multiaddr_t l;
    assert_int_equal(cp2p_multiaddr_parse("/dns4/localhost/tcp/0", &l), 0);
    assert_int_equal(cp2p_host_listen(w.b, &l), 0);
    cp2p_multiaddr_free(&l);
    while (w.listen_events < 2) /* told on a later turn */
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(w.listen_events, 2);
    cp2p_multiaddr_t *addrs;
    size_t n;
    assert_int_equal(cp2p_host_listen_addrs(w.b, &addrs, &n), 0);
    assert_int_equal(n, 2);
    assert_false(cp2p_multiaddr_equal(&addrs[0], &addrs[1]));
    /* Two dials at once to the same peer, by name: one connection. */
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(&addrs[1], CP2P_MA_TCP, &c), 0);
    char s[64];
    snprintf(s, sizeof s, "/dns4/localhost/tcp/%u", (unsigned)(c.value[0] << 8 | c.value[1]));
    cp2p_multiaddr_t base, to;
    assert_int_equal(cp2p_multiaddr_parse(s, &base), 0);
    to = addr_with_id(&base, cp2p_host_peer_id(w.b));
    connect_result_t r1 = {0}, r2 = {0};
    assert_int_equal(cp2p_host_connect(w.a, &to, on_connect, &r1), 0);
    assert_int_equal(cp2p_host_connect(w.a, &to, on_connect, &r2), 0);
    run_until(&w, &r1.done);
    run_until(&w, &r2.done);
    assert_int_equal(r1.status, 0);
    assert_int_equal(r2.status, 0);
    assert_int_equal(cp2p_host_conn_count(w.a), 1);
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);
    cp2p_multiaddr_free(&base);
    cp2p_multiaddr_free(&to);
    end_world(&w);
}

/* ---- a stream dying with writes queued: its write callbacks run first ---- */

static void resetter_handler(cp2p_stream_t *s, void *arg)
{
    /* The first bytes are enough: reset, which the writer sees with its
     * writes still queued behind the window. */
    cp2p_stream_reset(s);
    cp2p_stream_unref(s);
}

typedef struct dying {
    cp2p_stream_t *s;
    int opened, write_cbs, write_status, read_cbs, read_start_rc;
    int in_cb_reset; /* what the write callback does: reset, or read again */
} dying_t;

static void dying_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    ((dying_t *)arg)->read_cbs++;
}

static void dying_written(cp2p_stream_t *s, int status, void *arg)
{
    dying_t *d = arg;
    d->write_cbs++;
    d->write_status = status;
    /* Either way, the app is done with the stream: no read callback after. */
    if (d->in_cb_reset)
        assert_int_equal(cp2p_stream_reset(s), 0);
    else
        d->read_start_rc = cp2p_stream_read_start(s, dying_read, d);
}

static void dying_opened(int status, cp2p_stream_t *s, void *arg)
{
    dying_t *d = arg;
    assert_int_equal(status, 0);
    d->s = s;
    d->opened = 1;
    assert_int_equal(cp2p_stream_read_start(s, dying_read, d), 0);
    /* More than the 256 KiB window: the rest waits in our queue. */
    size_t n = 1 << 20;
    uint8_t *buf = calloc(1, n);
    assert_int_equal(cp2p_stream_write(s, buf, n, dying_written, d), 0);
    free(buf);
}

static void dying_stream(int in_cb_reset)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    assert_int_equal(cp2p_host_set_handler(w.b, "/test/resetter", resetter_handler, NULL), 0);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    static const char *const protos[] = {"/test/resetter"};
    dying_t d = {.in_cb_reset = in_cb_reset};
    assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(w.b), protos, 1, dying_opened, &d), 0);
    run_until(&w, &d.write_cbs);
    run_for(&w, 100);
    assert_int_equal(d.write_cbs, 1);
    assert_int_equal(d.write_status, CP2P_ERESET);
    if (!in_cb_reset)
        assert_true(d.read_start_rc < 0);
    assert_int_equal(d.read_cbs, 0);
    cp2p_stream_unref(d.s);
    end_world(&w);
}

static void test_reset_in_write_cb_of_dying_stream(void **state)
{
    dying_stream(1);
}

static void test_read_start_in_write_cb_of_dying_stream(void **state)
{
    dying_stream(0);
}

/* The remote says goodbye and closes; we read only once the stream is over,
 * and drop our last reference in the read callback that reports the end:
 * read_start must not touch the stream after that (ASan sees it if it does). */
static void sayer_handler(cp2p_stream_t *s, void *arg)
{
    assert_int_equal(cp2p_stream_write(s, (const uint8_t *)"bye", 3, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_close_write(s), 0);
    cp2p_stream_unref(s);
}

typedef struct last_ref {
    cp2p_stream_t *s;
    int opened, ended, got;
} last_ref_t;

static void last_ref_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    last_ref_t *l = arg;
    if (status == 0) {
        l->got += (int)n;
        return;
    }
    assert_int_equal(status, CP2P_ECLOSED);
    l->ended = 1;
    cp2p_stream_unref(s); /* our last reference */
}

static void last_ref_opened(int status, cp2p_stream_t *s, void *arg)
{
    last_ref_t *l = arg;
    assert_int_equal(status, 0);
    l->s = s;
    l->opened = 1;
    assert_int_equal(cp2p_stream_close_write(s), 0);
}

static void test_last_unref_in_read_cb(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    assert_int_equal(cp2p_host_set_handler(w.b, "/test/sayer", sayer_handler, NULL), 0);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    static const char *const protos[] = {"/test/sayer"};
    last_ref_t l = {0};
    assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(w.b), protos, 1, last_ref_opened, &l), 0);
    run_until(&w, &l.opened);
    run_for(&w, 200); /* "bye" and the remote's close arrive while nobody reads */
    assert_int_equal(cp2p_stream_read_start(l.s, last_ref_read, &l), 0);
    assert_int_equal(l.ended, 0); /* delivered on a later turn, never inside the call */
    run_until(&w, &l.ended);
    assert_int_equal(l.got, 3);
    end_world(&w);
}

/* A write that fails inside cp2p_stream_write (here the Noise send nonce is
 * spent, so nothing can be sealed) ends the stream. Its reader learns it on a
 * later loop turn, never inside the write: a reader that frees its state on
 * an error (as the Kademlia server does) would otherwise pull that state from
 * under the caller, which still uses it after the write returns (issue #13;
 * ASan shows the use after free if the order is wrong). */
typedef struct doomed {
    cp2p_stream_t *s;
    int opened, in_write, told, status;
    uint8_t buf[64];
} doomed_t;

static int doomed_told;

static void doomed_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    doomed_t *d = arg;
    if (status == 0)
        return;
    assert_false(d->in_write);
    doomed_told++;
    d->status = status;
    cp2p_stream_unref(s);
    free(d); /* as kad_rpc.c's srv_end does */
}

static void doomed_opened(int status, cp2p_stream_t *s, void *arg)
{
    doomed_t *d = arg;
    assert_int_equal(status, 0);
    d->s = s;
    d->opened = 1;
}

static void test_write_failure_tells_reader_later(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    assert_int_equal(connect_to(&w, w.a, &w.b_addr), 0);
    static const char *const protos[] = {ECHO_PROTO};
    doomed_t *d = calloc(1, sizeof *d);
    assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(w.b), protos, 1, doomed_opened, d), 0);
    run_until(&w, &d->opened);
    cp2p_stream_t *s = d->s;
    assert_int_equal(cp2p_stream_read_start(s, doomed_read, d), 0);
    cp2p_conn_t *c = cp2p_stream_conn(s);
    assert_int_equal(cp2p_noise_set_nonces(c->sec, UINT64_MAX, 0), 0);
    doomed_told = 0;
    cp2p_stream_ref(s);
    d->in_write = 1;
    int rc = cp2p_stream_write(s, d->buf, sizeof d->buf, NULL, NULL);
    d->in_write = 0; /* d is still ours: its reader has not run */
    assert_int_equal(doomed_told, 0);
    (void)rc; /* the failure shows in the write's result or in the reader */
    int gone = 0;
    for (int i = 0; i < 100 && !doomed_told; i++)
        uv_run(&w.loop, UV_RUN_NOWAIT);
    gone = doomed_told;
    assert_int_equal(gone, 1);
    assert_true(cp2p_stream_write(s, (const uint8_t *)"x", 1, NULL, NULL) < 0);
    cp2p_stream_unref(s);
    end_world(&w);
}

/* h listens on an ephemeral loopback port: that address (the caller frees it). */
static cp2p_multiaddr_t listen_loopback(cp2p_host_t *h)
{
    cp2p_multiaddr_t l, *addrs, first;
    size_t na;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &l), 0);
    assert_int_equal(cp2p_host_listen(h, &l), 0);
    cp2p_multiaddr_free(&l);
    assert_int_equal(cp2p_host_listen_addrs(h, &addrs, &na), 0);
    assert_int_equal(cp2p_multiaddr_dup(&addrs[0], &first), 0);
    cp2p_multiaddr_array_free(addrs, na);
    return first;
}

/* The memory remotes make a host hold is bounded across connections
 * (issue #13): streams that are not read fill their buffers up to the
 * host's max_memory_mb, then the connection is not read; once the reader
 * takes the data, reading resumes and everything arrives. */
enum { SINK_STREAMS = 12, SINK_BYTES = 256 * 1024 };

typedef struct sink {
    cp2p_stream_t *s[SINK_STREAMS];
    size_t got[SINK_STREAMS];
    int n, ended;
} memsink_t;

static void memsink_handler(cp2p_stream_t *s, void *arg)
{
    memsink_t *k = arg;
    assert_true(k->n < SINK_STREAMS);
    k->s[k->n++] = s; /* not read yet */
}

static void memsink_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    memsink_t *k = arg;
    int i = 0;
    while (k->s[i] != s)
        i++;
    if (status == 0) {
        k->got[i] += n;
        return;
    }
    if (status != CP2P_ECLOSED)
        fprintf(stderr, "stream %d of %d: %s after %zu bytes\n", i, k->n, cp2p_strerror(status), k->got[i]);
    assert_int_equal(status, CP2P_ECLOSED);
    k->ended++;
}

typedef struct source {
    int opened;
    uint8_t *data;
    cp2p_stream_t *s[SINK_STREAMS]; /* kept until the end: dropped, a stream is reset */
} source_t;

static void source_opened(int status, cp2p_stream_t *s, void *arg)
{
    source_t *src = arg;
    assert_int_equal(status, 0);
    assert_int_equal(cp2p_stream_write(s, src->data, SINK_BYTES, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_close_write(s), 0);
    src->s[src->opened++] = s;
}

static void test_memory_limit(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    cp2p_host_config_t cfg = {.max_memory_mb = 2};
    cp2p_host_t *m;
    assert_int_equal(cp2p_host_new(&w.loop, &cfg, &m), 0);
    memsink_t k = {0};
    assert_int_equal(cp2p_host_set_handler(m, "/test/sink", memsink_handler, &k), 0);
    cp2p_multiaddr_t addr = listen_loopback(m);
    connect_result_t r = {0};
    assert_int_equal(cp2p_host_connect(w.a, &addr, on_connect, &r), 0);
    run_until(&w, &r.done);
    assert_int_equal(r.status, 0);
    cp2p_multiaddr_free(&addr);
    source_t src = {.data = calloc(1, SINK_BYTES)};
    static const char *const protos[] = {"/test/sink"};
    for (int i = 0; i < SINK_STREAMS; i++)
        assert_int_equal(cp2p_host_new_stream(w.a, cp2p_host_peer_id(m), protos, 1, source_opened, &src), 0);
    run_for(&w, 1500);
    cp2p_host_stats_t st;
    cp2p_host_stats(m, &st);
    assert_int_equal(st.memory_limit, 2 << 20);
    assert_true(st.memory_holds >= 1);
    assert_true(st.memory_peak < (2 << 20) + 512 * 1024);
    /* The reader takes it all: memory goes, reading resumes, all arrives. */
    for (int i = 0; i < k.n; i++)
        assert_int_equal(cp2p_stream_read_start(k.s[i], memsink_read, &k), 0);
    uv_timer_start(&w.deadline, deadline_cb, 20000, 0);
    while (k.ended < SINK_STREAMS && !w.expired)
        uv_run(&w.loop, UV_RUN_ONCE);
    uv_timer_stop(&w.deadline);
    assert_false(w.expired);
    for (int i = 0; i < SINK_STREAMS; i++) {
        assert_int_equal(k.got[i], SINK_BYTES);
        cp2p_stream_unref(k.s[i]);
        cp2p_stream_unref(src.s[i]);
    }
    cp2p_host_stats(m, &st);
    assert_true(st.memory_used < 64 * 1024);
    free(src.data);
    int m_done = 0;
    cp2p_host_close(m, set_flag, &m_done);
    end_world(&w);
    assert_true(m_done);
}

/* Inbound connections per address (issue #13): with loopback limited too,
 * a third connection from 127.0.0.1 is refused and counted; the host's own
 * dials are not affected. Without limit_loopback, loopback is not limited. */
static void test_conns_per_ip(void **state)
{
    world_t w;
    make_world(&w, NULL, NULL, 0);
    for (int limited = 1; limited >= 0; limited--) {
        cp2p_host_config_t cfg = {.max_conns_per_ip = 2, .limit_loopback = limited};
        cp2p_host_t *m, *dialers[3];
        assert_int_equal(cp2p_host_new(&w.loop, &cfg, &m), 0);
        cp2p_multiaddr_t addr = listen_loopback(m);
        for (int i = 0; i < 3; i++) {
            dialers[i] = new_host(&w, NULL, 0);
            connect_result_t r = {0};
            assert_int_equal(cp2p_host_connect(dialers[i], &addr, on_connect, &r), 0);
            run_until(&w, &r.done);
            if (limited && i == 2)
                assert_true(r.status < 0);
            else
                assert_int_equal(r.status, 0);
        }
        cp2p_host_stats_t st;
        cp2p_host_stats(m, &st);
        assert_int_equal(st.conns_rejected, limited ? 1 : 0);
        /* m still dials out: b is reached. */
        assert_int_equal(connect_to(&w, m, &w.b_addr), 0);
        cp2p_multiaddr_free(&addr);
        int done[4] = {0};
        cp2p_host_close(m, set_flag, &done[3]);
        for (int i = 0; i < 3; i++)
            cp2p_host_close(dialers[i], set_flag, &done[i]);
        for (int i = 0; i < 4; i++)
            run_until(&w, &done[i]);
    }
    end_world(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conns_per_ip),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_write_failure_tells_reader_later),
        cmocka_unit_test(test_echo_yamux),
        cmocka_unit_test(test_last_unref_in_read_cb),
        cmocka_unit_test(test_echo_mplex),
        cmocka_unit_test(test_tiny_writes_chained_from_callbacks),
        cmocka_unit_test(test_muxer_preference_falls_back),
        cmocka_unit_test(test_unknown_protocol),
        cmocka_unit_test(test_wrong_peer_id),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_reset_reaches_remote),
        cmocka_unit_test(test_connection_reuse_and_events),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_fifty_streams),
        cmocka_unit_test(test_garbage_peer),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_negotiation_timeout),
        cmocka_unit_test(test_stream_limit),
        cmocka_unit_test(test_two_listen_addrs_dns_and_joined_dials),
        cmocka_unit_test(test_reset_in_write_cb_of_dying_stream),
        cmocka_unit_test(test_read_start_in_write_cb_of_dying_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
