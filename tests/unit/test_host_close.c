/* Closing: cp2p_host_close() from inside every kind of callback (streams,
 * connects, events, handlers), and graceful connection close (queued bytes
 * delivered, yamux GoAway sent, bounded by a deadline). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host_harness.h"

#define SINK_PROTO "/test/sink/1.0.0"

/* Two hosts, B listening with echo and sink handlers. */
typedef struct pair {
    world_t w;
    cp2p_host_t *a, *b;
    unsigned b_port;
    cp2p_multiaddr_t b_addr;
    int a_done, b_done; /* host close callbacks */
    int a_closes;       /* host_close calls made from callbacks on A */
} pair_t;

static void close_a(pair_t *p)
{
    p->a_closes++;
    cp2p_host_close(p->a, set_flag, &p->a_done);
}

static void close_b(pair_t *p)
{
    cp2p_host_close(p->b, set_flag, &p->b_done);
}

typedef struct sink {
    cp2p_stream_t *s;
    size_t got;
    int eof, status, ended;
    pair_t *p;
    int close_b_on_end; /* close host B from the read callback that ends the stream */
} sink_t;

static sink_t g_sink;

static void sink_read(cp2p_stream_t *s, int status, const uint8_t *d, size_t n, void *arg)
{
    sink_t *k = arg;
    if (status == 0) {
        k->got += n;
        return;
    }
    if (status == CP2P_ECLOSED) {
        k->eof = 1;
        return;
    }
    k->status = status;
    k->ended = 1;
    if (k->close_b_on_end)
        close_b(k->p);
}

static void sink_handler(cp2p_stream_t *s, void *arg)
{
    g_sink.s = s;
    assert_int_equal(cp2p_stream_read_start(s, sink_read, &g_sink), 0);
}

static void pair_init(pair_t *p)
{
    memset(p, 0, sizeof *p);
    memset(&g_sink, 0, sizeof g_sink);
    g_sink.p = p;
    world_init(&p->w);
    p->a = host_new(&p->w, NULL);
    p->b = host_new(&p->w, NULL);
    assert_int_equal(cp2p_host_set_handler(p->b, ECHO_PROTO, echo_handler, NULL), 0);
    assert_int_equal(cp2p_host_set_handler(p->b, SINK_PROTO, sink_handler, NULL), 0);
    host_listen(p->b, &p->b_port, &p->b_addr);
    assert_int_equal(cp2p_peerstore_add_addrs(cp2p_host_peerstore(p->a), cp2p_host_peer_id(p->b),
                                              &p->b_addr, 1, CP2P_TTL_PERMANENT, 0), 0);
}

/* Close what is still open and check the loop runs dry. */
static void pair_end(pair_t *p)
{
    if (!p->a_done && !p->a_closes)
        close_a(p);
    if (!p->b_done)
        close_b(p);
    world_run_until(&p->w, &p->a_done, 10000);
    world_run_until(&p->w, &p->b_done, 10000);
    if (g_sink.s)
        cp2p_stream_unref(g_sink.s);
    cp2p_multiaddr_free(&p->b_addr);
    world_end(&p->w);
}

/* ---- host close from callbacks ---- */

typedef struct opener {
    pair_t *p;
    cp2p_stream_t *s;
    int opened, status, read_status, reads_ended;
    int close_in_open, close_in_read, close_in_write, close_conn_in_open;
} opener_t;

static void opener_read(cp2p_stream_t *s, int status, const uint8_t *d, size_t n, void *arg)
{
    opener_t *o = arg;
    if (status == 0 || status == CP2P_ECLOSED)
        return;
    o->read_status = status;
    o->reads_ended++;
    if (o->close_in_read)
        close_a(o->p);
}

static void opener_written(cp2p_stream_t *s, int status, void *arg)
{
    opener_t *o = arg;
    if (o->close_in_write)
        close_a(o->p);
}

static void opener_opened(int status, cp2p_stream_t *s, void *arg)
{
    opener_t *o = arg;
    o->opened++;
    o->status = status;
    o->s = s;
    if (status) {
        if (o->close_in_open)
            close_a(o->p);
        return;
    }
    assert_int_equal(cp2p_stream_read_start(s, opener_read, o), 0);
    if (o->close_in_write)
        assert_int_equal(cp2p_stream_write(s, (const uint8_t *)"hello", 5, opener_written, o), 0);
    if (o->close_conn_in_open)
        cp2p_conn_close(cp2p_stream_conn(s));
    if (o->close_in_open)
        close_a(o->p);
}

/* A stream from A to B; A connects on the way (B's address is in its peerstore). */
static void open_from_a(pair_t *p, opener_t *o, const char *proto)
{
    const char *const protos[] = {proto};
    assert_int_equal(cp2p_host_new_stream(p->a, cp2p_host_peer_id(p->b), protos, 1, opener_opened, o), 0);
}

/* The reported bug: closing the host from a read callback that a closing
 * connection runs spun forever in cp2p_swarm_close. */
static void test_close_in_read_cb_while_conn_closes(void **state)
{
    pair_t p;
    pair_init(&p);
    opener_t o = {.p = &p, .close_in_read = 1, .close_conn_in_open = 1};
    open_from_a(&p, &o, ECHO_PROTO);
    world_run_until(&p.w, &p.a_done, 10000);
    assert_int_equal(o.opened, 1);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.read_status, CP2P_ERESET);
    assert_int_equal(o.reads_ended, 1);
    assert_int_equal(p.a_closes, 1);
    cp2p_stream_unref(o.s);
    pair_end(&p);
}

/* The same on the accepting side: B's handler stream dies as A goes away. */
static void test_close_in_handler_read_cb(void **state)
{
    pair_t p;
    pair_init(&p);
    g_sink.close_b_on_end = 1;
    opener_t o = {.p = &p};
    open_from_a(&p, &o, SINK_PROTO);
    world_run_until(&p.w, &o.opened, 10000);
    world_run_until(&p.w, (const int *)&g_sink.s, 10000);
    close_a(&p);
    world_run_until(&p.w, &p.b_done, 10000);
    assert_int_equal(g_sink.status, CP2P_ERESET);
    cp2p_stream_unref(o.s);
    pair_end(&p);
}

static void test_close_in_open_cb(void **state)
{
    pair_t p;
    pair_init(&p);
    opener_t o = {.p = &p, .close_in_open = 1};
    open_from_a(&p, &o, ECHO_PROTO);
    world_run_until(&p.w, &p.a_done, 10000);
    assert_int_equal(o.opened, 1);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.reads_ended, 1); /* the reader learns the stream died */
    cp2p_stream_unref(o.s);
    pair_end(&p);
}

static void test_close_in_failed_open_cb(void **state)
{
    pair_t p;
    pair_init(&p);
    opener_t o = {.p = &p, .close_in_open = 1};
    open_from_a(&p, &o, "/test/nobody/1.0.0");
    world_run_until(&p.w, &p.a_done, 10000);
    assert_int_equal(o.opened, 1);
    assert_int_equal(o.status, CP2P_ENEGOTIATE);
    assert_int_equal(p.a_closes, 1);
    pair_end(&p);
}

static void test_close_in_write_cb(void **state)
{
    pair_t p;
    pair_init(&p);
    opener_t o = {.p = &p, .close_in_write = 1};
    open_from_a(&p, &o, ECHO_PROTO);
    world_run_until(&p.w, &p.a_done, 10000);
    assert_int_equal(p.a_closes, 1);
    cp2p_stream_unref(o.s);
    pair_end(&p);
}

/* A stream that is still opening when the host closes: its callback may
 * close the host again, which must change nothing. */
static void test_close_twice_from_cancelled_open(void **state)
{
    pair_t p;
    pair_init(&p);
    opener_t o = {.p = &p, .close_in_open = 1};
    open_from_a(&p, &o, ECHO_PROTO);
    close_a(&p);
    world_run_until(&p.w, &p.a_done, 10000);
    assert_int_equal(o.opened, 1);
    assert_true(o.status < 0);
    assert_int_equal(p.a_closes, 2);
    pair_end(&p);
}

static void close_on_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    pair_t *p = arg;
    p->a_closes += status == 0 ? 100 : 1; /* tells success from failure */
    cp2p_host_close(p->a, set_flag, &p->a_done);
}

static void test_close_in_connect_cb(void **state)
{
    pair_t p;
    pair_init(&p);
    assert_int_equal(cp2p_host_connect(p.a, &p.b_addr, close_on_connect, &p), 0);
    world_run_until(&p.w, &p.a_done, 10000);
    assert_int_equal(p.a_closes, 100);
    pair_end(&p);
}

static void test_close_in_failed_connect_cb(void **state)
{
    pair_t p;
    pair_init(&p);
    /* B's port with B gone: refused. */
    int done = 0;
    cp2p_host_close(p.b, set_flag, &done);
    world_run_until(&p.w, &done, 10000);
    p.b = host_new(&p.w, NULL);
    assert_int_equal(cp2p_host_connect(p.a, &p.b_addr, close_on_connect, &p), 0);
    world_run_until(&p.w, &p.a_done, 10000);
    assert_int_equal(p.a_closes, 1);
    pair_end(&p);
}

typedef struct event_closer {
    pair_t *p;
    cp2p_host_t *h;
    cp2p_event_type_t type;
    int *done;
    int seen;
} event_closer_t;

static void close_on_event(const cp2p_event_t *ev, void *arg)
{
    event_closer_t *e = arg;
    if (ev->type != e->type)
        return;
    e->seen++;
    cp2p_host_close(e->h, set_flag, e->done);
}

static void test_close_in_connected_event(void **state)
{
    pair_t p;
    pair_init(&p);
    event_closer_t e = {.p = &p, .h = p.a, .type = CP2P_EVENT_CONNECTED, .done = &p.a_done};
    assert_int_equal(cp2p_host_subscribe(p.a, close_on_event, &e), 0);
    connect_result_t r = {0};
    assert_int_equal(cp2p_host_connect(p.a, &p.b_addr, on_connect_result, &r), 0);
    world_run_until(&p.w, &p.a_done, 10000);
    assert_int_equal(e.seen, 1);
    /* The connection the subscriber saw was closed under the dial. */
    assert_true(r.done);
    assert_true(r.status < 0);
    p.a_closes = 1;
    pair_end(&p);
}

static void test_close_in_disconnected_event(void **state)
{
    pair_t p;
    pair_init(&p);
    event_closer_t e = {.p = &p, .h = p.b, .type = CP2P_EVENT_DISCONNECTED, .done = &p.b_done};
    assert_int_equal(cp2p_host_subscribe(p.b, close_on_event, &e), 0);
    assert_int_equal(host_connect_wait(&p.w, p.a, &p.b_addr), 0);
    /* Two connections on B, one from another host: B closes while the
     * second one is still in its list. */
    cp2p_host_t *c = host_new(&p.w, NULL);
    assert_int_equal(host_connect_wait(&p.w, c, &p.b_addr), 0);
    cp2p_conn_close(cp2p_host_conn_to(p.a, cp2p_host_peer_id(p.b)));
    world_run_until(&p.w, &p.b_done, 10000);
    assert_int_equal(e.seen, 2); /* the second came from B's own close */
    host_close_wait(&p.w, c);
    pair_end(&p);
}

static void close_in_handler(cp2p_stream_t *s, void *arg)
{
    pair_t *p = arg;
    close_b(p);
    cp2p_stream_unref(s);
}

static void test_close_in_handler(void **state)
{
    pair_t p;
    pair_init(&p);
    assert_int_equal(cp2p_host_set_handler(p.b, "/test/closer", close_in_handler, &p), 0);
    opener_t o = {.p = &p};
    open_from_a(&p, &o, "/test/closer");
    world_run_until(&p.w, &p.b_done, 10000);
    world_run_until(&p.w, &o.opened, 10000);
    if (o.s)
        cp2p_stream_unref(o.s);
    pair_end(&p);
}

/* ---- graceful close ---- */

typedef struct writer {
    pair_t *p;
    cp2p_stream_t *s;
    size_t chunk, total, sent;
    uint8_t *buf;
} writer_t;

static void writer_next(writer_t *wr);

static void writer_written(cp2p_stream_t *s, int status, void *arg)
{
    writer_t *wr = arg;
    assert_int_equal(status, 0);
    if (wr->sent < wr->total) {
        writer_next(wr);
        return;
    }
    /* The muxer took the last bytes; they may still sit in our socket
     * queue. Exit at once, as cp2p ping does after its last reply. */
    assert_int_equal(cp2p_stream_close_write(s), 0);
    close_a(wr->p);
}

static void writer_next(writer_t *wr)
{
    wr->sent += wr->chunk;
    assert_int_equal(cp2p_stream_write(wr->s, wr->buf, wr->chunk, writer_written, wr), 0);
}

static void writer_opened(int status, cp2p_stream_t *s, void *arg)
{
    writer_t *wr = arg;
    assert_int_equal(status, 0);
    wr->s = s;
    writer_next(wr);
}

static void test_close_delivers_queued_bytes(void **state)
{
    pair_t p;
    pair_init(&p);
    writer_t wr = {.p = &p, .chunk = 1 << 20, .total = 8 << 20};
    wr.buf = calloc(1, wr.chunk);
    static const char *const protos[] = {SINK_PROTO};
    assert_int_equal(host_connect_wait(&p.w, p.a, &p.b_addr), 0);
    assert_int_equal(cp2p_host_new_stream(p.a, cp2p_host_peer_id(p.b), protos, 1, writer_opened, &wr), 0);
    world_run_until(&p.w, &p.a_done, 20000);
    world_run_until(&p.w, &g_sink.ended, 10000);
    assert_int_equal(g_sink.got, wr.total);
    assert_true(g_sink.eof); /* the stream's FIN came through before the connection went */
    cp2p_host_stats_t st;
    cp2p_host_stats(p.b, &st);
    assert_int_equal(st.conns_errored, 0);
    cp2p_stream_unref(wr.s);
    free(wr.buf);
    pair_end(&p);
}

/* A writer that keeps the stream's queue full. */
#define FLOOD_PROTO "/test/flood/1.0.0"
#define FLOOD_CHUNK 65536

typedef struct flood {
    cp2p_stream_t *s;
    uint64_t taken, last_ms;
    uv_loop_t *loop;
    int in_more, dead;
    uint8_t buf[FLOOD_CHUNK];
} flood_t;

static flood_t g_flood;

static void flood_more(flood_t *f);

static void flood_written(cp2p_stream_t *s, int status, void *arg)
{
    flood_t *f = arg;
    if (status < 0) {
        f->dead = 1;
        return;
    }
    f->taken += FLOOD_CHUNK;
    f->last_ms = uv_now(f->loop);
    flood_more(f);
}

static void flood_more(flood_t *f)
{
    if (f->in_more)
        return;
    f->in_more = 1;
    while (!f->dead && cp2p_stream_write(f->s, f->buf, FLOOD_CHUNK, flood_written, f) == 0)
        ;
    f->in_more = 0;
}

static void flood_handler(cp2p_stream_t *s, void *arg)
{
    g_flood.s = s;
    g_flood.loop = arg;
    g_flood.last_ms = uv_now(arg);
    flood_more(&g_flood);
}

/* Bytes the muxer took sit in the socket's backlog when the connection is
 * closed: every one of them reaches a remote that resumes reading. */
static void test_close_flushes_socket_backlog(void **state)
{
    memset(&g_flood, 0, sizeof g_flood);
    world_t w;
    world_init(&w);
    cp2p_host_t *h = host_new(&w, NULL);
    assert_int_equal(cp2p_host_set_handler(h, FLOOD_PROTO, flood_handler, &w.loop), 0);
    unsigned port;
    host_listen(h, &port, NULL);
    rawpeer_t rp;
    /* Small kernel buffers: a real backlog in libuv. */
    rp_connect_buf(&w, &rp, port, RP_MUXED, "/yamux/1.0.0", 32 * 1024);
    cp2p_conn_t *c = cp2p_host_conn_to(h, &rp.id);
    assert_non_null(c);
    int sndbuf = 32 * 1024;
    uv_send_buffer_size((uv_handle_t *)c->sock, &sndbuf);
    rp_attach_yamux(&rp, 64 << 20);
    cp2p_mux_stream_id_t id;
    assert_int_equal(cp2p_yamux_vtable.open_stream(rp.mux, &id), 0);
    static const char proposal[] = "\x13/multistream/1.0.0\n\x12" FLOOD_PROTO "\n";
    cp2p_yamux_vtable.write(rp.mux, id, (const uint8_t *)proposal, sizeof proposal - 1);
    uv_read_stop((uv_stream_t *)&rp.tcp);
    /* Until the muxer takes no more: the socket's backlog is full. */
    for (int i = 0; i < 500 && !(g_flood.s && uv_now(&w.loop) - g_flood.last_ms >= 200); i++)
        world_run_for(&w, 10);
    assert_true(g_flood.taken > 0);
    /* Above the low-water mark the streams wait; libuv holds a backlog. */
    assert_true(c->queued >= CP2P_CONN_LOW_WATER);
    assert_true(uv_stream_get_write_queue_size(c->sock) >= CP2P_CONN_LOW_WATER / 2);
    cp2p_conn_close(c);
    uint64_t taken = g_flood.taken;
    rp_read_start(&rp);
    rp_wait_closed_by_remote(&w, &rp);
    assert_true(rp.eof);
    /* The stream's data: its multistream reply, then what the muxer took. */
    assert_int_equal(rp.data_in, taken + sizeof proposal - 1);
    assert_true(rp.goaway);
    cp2p_stream_unref(g_flood.s);
    rp_close(&rp);
    host_close_wait(&w, h);
    rp_free(&w, &rp);
    world_end(&w);
}

static void never_opened(int status, cp2p_stream_t *s, void *arg)
{
    fail_msg("a stream opened on a connection the remote said GoAway on");
}

/* A remote's GoAway keeps new streams off the connection. Our close puts a
 * GoAway, then our FIN, on the wire; once the remote closes too, the
 * connection is gone at once, not at the deadline. */
static void test_close_sends_goaway(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *h = host_new(&w, NULL);
    unsigned port;
    host_listen(h, &port, NULL);
    rawpeer_t rp;
    rp_connect(&w, &rp, port, RP_MUXED, "/yamux/1.0.0");
    rp_attach_yamux(&rp, 256 * 1024);
    cp2p_conn_t *c = NULL;
    for (int i = 0; i < 100 && !c; i++) {
        c = cp2p_host_conn_to(h, &rp.id);
        if (!c)
            world_run_for(&w, 10);
    }
    assert_non_null(c);
    /* The remote's GoAway first: the connection takes no new streams. */
    assert_int_equal(cp2p_yamux_vtable.goaway(rp.mux), 0);
    for (int i = 0; i < 100 && cp2p_host_conn_to(h, &rp.id); i++)
        world_run_for(&w, 10);
    assert_null(cp2p_host_conn_to(h, &rp.id));
    static const char *const protos[] = {ECHO_PROTO};
    assert_int_equal(cp2p_conn_open_stream(c, protos, 1, never_opened, NULL), CP2P_ECLOSED);
    cp2p_conn_close(c);
    rp_wait_closed_by_remote(&w, &rp);
    assert_true(rp.eof);
    assert_true(rp.goaway);
    assert_int_equal(rp.goaway_code, 0);
    uint64_t t0 = uv_now(&w.loop);
    rp_close(&rp);
    host_close_wait(&w, h);
    assert_true(uv_now(&w.loop) - t0 < CP2P_CONN_CLOSE_TIMEOUT_MS / 2);
    rp_free(&w, &rp);
    world_end(&w);
}

/* A remote that neither reads nor closes holds a closing connection for the
 * deadline, no longer. */
static void test_close_is_bounded(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *h = host_new(&w, NULL);
    unsigned port;
    host_listen(h, &port, NULL);
    rawpeer_t rp;
    rp_connect(&w, &rp, port, RP_MUXED, "/yamux/1.0.0");
    uv_read_stop((uv_stream_t *)&rp.tcp);
    uint64_t t0 = uv_now(&w.loop);
    host_close_wait(&w, h);
    uint64_t took = uv_now(&w.loop) - t0;
    assert_true(took >= CP2P_CONN_CLOSE_TIMEOUT_MS - 50);
    assert_true(took < CP2P_CONN_CLOSE_TIMEOUT_MS + 1000);
    rp_free(&w, &rp);
    world_end(&w);
}

/* A new connection over the high watermark trims down to the low one: the
 * untagged peer goes, the tagged one stays. */
static void test_conn_manager_trims_over_high_water(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *bad;
    cp2p_host_config_t inverted = {.conn_low_water = 5, .conn_high_water = 4};
    assert_int_equal(cp2p_host_new(&w.loop, &inverted, &bad), CP2P_EINVAL);

    cp2p_host_config_t cfg = {.conn_low_water = 1, .conn_high_water = 1,
                              .conn_grace_ms = CP2P_HOST_NO_GRACE};
    cp2p_host_t *a = host_new(&w, &cfg), *b = host_new(&w, NULL), *c = host_new(&w, NULL);
    cp2p_multiaddr_t addr_b, addr_c;
    unsigned port;
    host_listen(b, &port, &addr_b);
    host_listen(c, &port, &addr_c);
    const cp2p_peer_id_t *pb = cp2p_host_peer_id(b), *pc = cp2p_host_peer_id(c);
    assert_int_equal(cp2p_host_tag_peer(a, pb, "friend", 10), 0);
    assert_int_equal(cp2p_host_tag_peer(a, pc, "", 10), CP2P_EINVAL);
    assert_int_equal(host_connect_wait(&w, a, &addr_b), 0);
    assert_int_equal(cp2p_host_trim(a), 0); /* at the low watermark already */
    /* the dial saw its own connection trimmed */
    assert_int_equal(host_connect_wait(&w, a, &addr_c), CP2P_ECLOSED);
    assert_null(cp2p_host_conn_to(a, pc));
    assert_non_null(cp2p_host_conn_to(a, pb));

    /* untagged, b is worth no more than c: the older one goes first */
    assert_int_equal(cp2p_host_untag_peer(a, pb, "friend"), 0);
    assert_int_equal(host_connect_wait(&w, a, &addr_c), 0);
    assert_null(cp2p_host_conn_to(a, pb));
    assert_non_null(cp2p_host_conn_to(a, pc));

    host_close_wait(&w, a);
    host_close_wait(&w, b);
    host_close_wait(&w, c);
    cp2p_multiaddr_free(&addr_b);
    cp2p_multiaddr_free(&addr_c);
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_in_read_cb_while_conn_closes),
        cmocka_unit_test(test_close_in_handler_read_cb),
        cmocka_unit_test(test_close_in_open_cb),
        cmocka_unit_test(test_close_in_failed_open_cb),
        cmocka_unit_test(test_close_in_write_cb),
        cmocka_unit_test(test_close_twice_from_cancelled_open),
        cmocka_unit_test(test_close_in_connect_cb),
        cmocka_unit_test(test_close_in_failed_connect_cb),
        cmocka_unit_test(test_close_in_connected_event),
        cmocka_unit_test(test_close_in_disconnected_event),
        cmocka_unit_test(test_close_in_handler),
        cmocka_unit_test(test_close_delivers_queued_bytes),
        cmocka_unit_test(test_close_flushes_socket_backlog),
        cmocka_unit_test(test_close_sends_goaway),
        cmocka_unit_test(test_close_is_bounded),
        cmocka_unit_test(test_conn_manager_trims_over_high_water),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
