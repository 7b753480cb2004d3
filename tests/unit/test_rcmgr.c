/* The resource manager: its accounting alone, then each scope's limits as a
 * remote peer meets them through real hosts on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "host_harness.h"
#include "cp2p/metrics.h"
#include "swarm/rcmgr.h"

#define HOLD_PROTO "/test/hold/1.0.0"

/* ---- the accounting ---- */

static void test_reserve_all_or_nothing(void **state)
{
    (void)state;
    cp2p_rcmgr_config_t cfg = {.system = {.streams_in = 3}, .peer = {.streams = 2}};
    cp2p_rcmgr_t *m;
    assert_int_equal(cp2p_rcmgr_new(&cfg, &m), 0);
    cp2p_peer_id_t p1 = {.len = 3, .bytes = {1, 2, 3}}, p2 = {.len = 3, .bytes = {1, 2, 4}};
    cp2p_rc_scope_t *a = cp2p_rcmgr_peer(m, &p1), *b = cp2p_rcmgr_peer(m, &p2);
    cp2p_rc_scope_t *sys = cp2p_rcmgr_system(m);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(cp2p_rcmgr_peer(m, &p1), a); /* a second reference */
    cp2p_rc_scope_t *sa[] = {a, sys, sys}, *sb[] = {b, sys};
    /* The system listed twice counts once. */
    assert_null(cp2p_rc_reserve(sa, 3, RC_STREAMS_IN, RC_STREAMS, 1));
    assert_int_equal(sys->used[RC_STREAMS_IN], 1);
    assert_null(cp2p_rc_reserve(sa, 3, RC_STREAMS_IN, RC_STREAMS, 1));
    /* a's total is full: refused there, and nothing taken anywhere. */
    assert_ptr_equal(cp2p_rc_reserve(sa, 3, RC_STREAMS_IN, RC_STREAMS, 1), a);
    assert_int_equal(sys->used[RC_STREAMS_IN], 2);
    assert_int_equal(a->refused[RC_STREAMS], 1);
    assert_null(cp2p_rc_reserve(sb, 2, RC_STREAMS_IN, RC_STREAMS, 1));
    /* The system's inbound streams are full now, whatever b's own room. */
    assert_ptr_equal(cp2p_rc_reserve(sb, 2, RC_STREAMS_IN, RC_STREAMS, 1), sys);
    assert_int_equal(b->used[RC_STREAMS], 1);
    cp2p_rc_release(sa, 3, RC_STREAMS_IN, RC_STREAMS, 1);
    assert_null(cp2p_rc_reserve(sb, 2, RC_STREAMS_IN, RC_STREAMS, 1));

    cp2p_rc_scope_stat_t st[4];
    assert_int_equal(cp2p_rcmgr_stats(m, st, 4), 3);
    assert_string_equal(st[2].name, "peer");
    assert_int_equal(st[2].n, 2);
    assert_int_equal(st[2].used.streams, 2);  /* the fullest peer */
    assert_int_equal(st[2].refused.streams, 1);
    assert_int_equal(st[0].refused.streams_in, 1);

    /* A peer scope goes with its last reference; its refusals stay counted. */
    cp2p_rcmgr_peer_put(a);
    assert_int_equal(cp2p_rcmgr_peer_stat(m, &p1, &st[3]), 0);
    cp2p_rcmgr_peer_put(a);
    assert_int_equal(cp2p_rcmgr_peer_stat(m, &p1, &st[3]), CP2P_ENOTFOUND);
    cp2p_rcmgr_stats(m, st, 4);
    assert_int_equal(st[2].n, 1);
    assert_int_equal(st[2].refused.streams, 1);
    cp2p_rcmgr_peer_put(b);
    cp2p_rcmgr_free(m);
}

static void test_move_and_memory(void **state)
{
    (void)state;
    cp2p_rcmgr_config_t cfg = {.transient = {.memory = 1000},
                               .protocol = {.streams_in = 1, .memory = 400}};
    cp2p_rcmgr_t *m;
    assert_int_equal(cp2p_rcmgr_new(&cfg, &m), 0);
    cp2p_rc_scope_t *tr = cp2p_rcmgr_transient(m), *p = cp2p_rcmgr_protocol(m, "/x/1");
    assert_ptr_equal(cp2p_rcmgr_protocol(m, "/x/1"), p);
    assert_string_equal(cp2p_rc_scope_name(p), "/x/1");
    assert_null(cp2p_rc_reserve(&tr, 1, RC_STREAMS_IN, RC_STREAMS, 2));
    cp2p_rc_charge(&tr, 1, 800);
    assert_false(cp2p_rc_mem_over(tr));
    cp2p_rc_charge(&tr, 1, 200);
    assert_true(cp2p_rc_mem_over(tr));
    assert_false(cp2p_rc_mem_under_mark(tr));
    /* A stream with 300 bytes moves to its protocol: counts and memory go. */
    uint64_t use[RC_NKINDS] = {[RC_STREAMS] = 1, [RC_STREAMS_IN] = 1, [RC_MEMORY] = 300};
    assert_null(cp2p_rc_move(use, tr, p));
    assert_int_equal(tr->used[RC_MEMORY], 700);
    assert_true(cp2p_rc_mem_under_mark(tr));
    assert_int_equal(p->used[RC_STREAMS_IN], 1);
    assert_int_equal(p->used[RC_MEMORY], 300);
    /* The second is refused by the protocol's stream limit: nothing moves. */
    assert_ptr_equal(cp2p_rc_move(use, tr, p), p);
    assert_int_equal(tr->used[RC_STREAMS_IN], 1);
    assert_int_equal(tr->used[RC_MEMORY], 700);
    assert_int_equal(p->refused[RC_STREAMS_IN], 1);
    cp2p_rc_charge(&p, 1, 100);
    assert_true(cp2p_rc_mem_over(p));
    assert_int_equal(p->memory_peak, 400);
    cp2p_rc_charge(&p, 1, -400);
    assert_int_equal(p->used[RC_MEMORY], 0);

    /* Per-protocol limits: 0 keeps the default, unlimited lifts it. */
    cp2p_rc_limits_t l = {.streams_in = CP2P_RC_UNLIMITED, .memory = 10};
    assert_int_equal(cp2p_rcmgr_set_protocol_limits(m, "/y/1", &l), 0);
    cp2p_rc_scope_t *y = cp2p_rcmgr_protocol(m, "/y/1");
    assert_int_equal(y->limit[RC_STREAMS_IN], 0);
    assert_int_equal(y->limit[RC_MEMORY], 10);
    assert_int_equal(cp2p_rcmgr_set_protocol_limits(m, "", &l), CP2P_EINVAL);
    /* Protocol scopes are bounded. */
    char id[32];
    for (int i = 0; i < CP2P_RCMGR_MAX_PROTOCOLS; i++) {
        snprintf(id, sizeof id, "/p/%d", i);
        (void)cp2p_rcmgr_protocol(m, id);
    }
    assert_null(cp2p_rcmgr_protocol(m, "/one/too/many"));
    assert_non_null(cp2p_rcmgr_protocol(m, "/x/1"));
    cp2p_rcmgr_free(m);
}

/* ---- through hosts ---- */

/* A handler that keeps every stream it gets, unread, until told. */
typedef struct holder {
    cp2p_stream_t *s[64];
    int n;
    size_t got; /* bytes read once reading started */
    int ended;
} holder_t;

static void hold_handler(cp2p_stream_t *s, void *arg)
{
    holder_t *h = arg;
    if (h->n < 64)
        h->s[h->n++] = s;
    else
        cp2p_stream_unref(s);
}

static void holder_reset(holder_t *h)
{
    for (int i = 0; i < h->n; i++) {
        cp2p_stream_reset(h->s[i]);
        cp2p_stream_unref(h->s[i]);
    }
    h->n = 0;
}

typedef struct opened {
    int done, status;
    cp2p_stream_t *s;
    int read_status; /* the first error or EOF a reader saw */
    int read_done;
} opened_t;

static void opened_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    (void)s, (void)p, (void)n;
    opened_t *o = arg;
    if (status) {
        o->read_status = status;
        o->read_done = 1;
    }
}

static void on_opened(int status, cp2p_stream_t *s, void *arg)
{
    opened_t *o = arg;
    o->done = 1;
    o->status = status;
    o->s = s;
    if (!status)
        assert_int_equal(cp2p_stream_read_start(s, opened_read, o), 0);
}

static int open_wait(world_t *w, cp2p_host_t *from, const cp2p_peer_id_t *to, const char *proto,
                     opened_t *o)
{
    const char *protos[] = {proto};
    memset(o, 0, sizeof *o);
    int rc = cp2p_host_new_stream(from, to, protos, 1, on_opened, o);
    if (rc)
        return rc;
    world_run_until(w, &o->done, 5000);
    return o->status;
}

static void opened_drop(opened_t *o, int n)
{
    for (int i = 0; i < n; i++)
        if (o[i].s) {
            cp2p_stream_reset(o[i].s);
            cp2p_stream_unref(o[i].s);
            o[i].s = NULL;
        }
}

static cp2p_rc_scope_stat_t scope_named(cp2p_host_t *h, const char *name)
{
    cp2p_rc_scope_stat_t st[16];
    size_t n = cp2p_host_resources(h, st, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (!strcmp(st[i].name, name))
            return st[i];
    fail_msg("no scope %s", name);
    return st[0];
}

static void test_peer_stream_limit(void **state)
{
    (void)state;
    host_pair_t p;
    cp2p_host_config_t cfg = {.peer_limits = {.streams_in = 3}};
    host_pair_new(&p, &cfg);
    holder_t held = {0};
    assert_int_equal(cp2p_host_set_handler(p.b, HOLD_PROTO, hold_handler, &held), 0);
    host_pair_connect(&p);
    opened_t o[5];
    for (int i = 0; i < 3; i++)
        assert_int_equal(open_wait(&p.w, p.a, &p.b_id, HOLD_PROTO, &o[i]), 0);
    world_run_until_n(&p.w, &held.n, 3, 5000);
    /* The fourth and fifth are reset by b before any negotiation. */
    for (int i = 3; i < 5; i++)
        assert_true(open_wait(&p.w, p.a, &p.b_id, HOLD_PROTO, &o[i]) < 0);
    cp2p_host_stats_t st;
    cp2p_host_stats(p.b, &st);
    assert_int_equal(st.streams_refused, 2);
    cp2p_rc_scope_stat_t ps;
    assert_int_equal(cp2p_host_peer_resources(p.b, cp2p_host_peer_id(p.a), &ps), 0);
    assert_int_equal(ps.used.streams_in, 3);
    assert_int_equal(ps.refused.streams_in, 2);
    assert_int_equal(scope_named(p.b, HOLD_PROTO).used.streams_in, 3);
    assert_int_equal(scope_named(p.b, "system").used.streams_in, 3);
    assert_int_equal(scope_named(p.a, "system").used.streams_out, 3);

    /* /metrics shows the scopes. */
    cp2p_buf_t text = {0};
    assert_int_equal(cp2p_metrics_render(p.b, NULL, &text), 0);
    assert_int_equal(cp2p_buf_append(&text, (const uint8_t *)"", 1), 0);
    const char *t = (const char *)text.data;
    assert_non_null(strstr(t, "cp2p_rcmgr_used{scope=\"peer\",resource=\"streams_in\"} 3\n"));
    assert_non_null(strstr(t, "cp2p_rcmgr_limit{scope=\"peer\",resource=\"streams_in\"} 3\n"));
    assert_non_null(strstr(t, "cp2p_rcmgr_refused_total{scope=\"peer\",resource=\"streams_in\"} 2\n"));
    assert_non_null(strstr(t, "cp2p_rcmgr_used{scope=\"protocol\",protocol=\"" HOLD_PROTO
                              "\",resource=\"streams_in\"} 3\n"));
    assert_non_null(strstr(t, "cp2p_rcmgr_peers 1\n"));
    assert_non_null(strstr(t, "cp2p_streams_refused_total 2\n"));
    cp2p_buf_free(&text);

    /* Streams that end give their room back, on both sides. */
    holder_reset(&held);
    opened_drop(o, 5);
    world_run_for(&p.w, 100);
    assert_int_equal(scope_named(p.b, "system").used.streams_in, 0);
    assert_int_equal(scope_named(p.b, HOLD_PROTO).used.streams_in, 0);
    assert_int_equal(scope_named(p.a, "system").used.streams_out, 0);
    assert_int_equal(scope_named(p.a, "transient").used.streams_out, 0);
    assert_int_equal(open_wait(&p.w, p.a, &p.b_id, HOLD_PROTO, &o[0]), 0);
    world_run_until_n(&p.w, &held.n, 1, 5000);
    holder_reset(&held);
    opened_drop(o, 1);
    host_pair_end(&p);
}

static void test_protocol_limit(void **state)
{
    (void)state;
    host_pair_t p;
    host_pair_new(&p, NULL);
    holder_t held = {0};
    assert_int_equal(cp2p_host_set_handler(p.b, HOLD_PROTO, hold_handler, &held), 0);
    assert_int_equal(cp2p_host_set_handler(p.b, ECHO_PROTO, echo_handler, NULL), 0);
    cp2p_rc_limits_t l = {.streams_in = 2};
    assert_int_equal(cp2p_host_set_protocol_limits(p.b, HOLD_PROTO, &l), 0);
    host_pair_connect(&p);
    opened_t o[3];
    for (int i = 0; i < 2; i++)
        assert_int_equal(open_wait(&p.w, p.a, &p.b_id, HOLD_PROTO, &o[i]), 0);
    /* The third is reset once negotiated: its opener may or may not have
     * seen the negotiation first, its reader sees the reset. */
    if (open_wait(&p.w, p.a, &p.b_id, HOLD_PROTO, &o[2]) == 0) {
        world_run_until(&p.w, &o[2].read_done, 5000);
        assert_int_equal(o[2].read_status, CP2P_ERESET);
    }
    world_run_until_n(&p.w, &held.n, 2, 5000);
    world_run_for(&p.w, 50);
    assert_int_equal(held.n, 2);
    cp2p_rc_scope_stat_t ps = scope_named(p.b, HOLD_PROTO);
    assert_int_equal(ps.limit.streams_in, 2);
    assert_int_equal(ps.used.streams_in, 2);
    assert_int_equal(ps.refused.streams_in, 1);
    /* Other protocols are not affected. */
    echo_roundtrip(&p.w, p.a, &p.b_id, 100000);
    holder_reset(&held);
    opened_drop(o, 3);
    host_pair_end(&p);
}

static void test_outbound_stream_limit(void **state)
{
    (void)state;
    host_pair_t p;
    world_init(&p.w);
    cp2p_host_config_t cfg = {.system_limits = {.streams_out = 1}};
    p.a = host_new(&p.w, &cfg);
    p.b = host_new(&p.w, NULL);
    p.b_id = *cp2p_host_peer_id(p.b);
    holder_t held = {0};
    assert_int_equal(cp2p_host_set_handler(p.b, HOLD_PROTO, hold_handler, &held), 0);
    host_pair_connect(&p);
    opened_t o[2];
    assert_int_equal(open_wait(&p.w, p.a, &p.b_id, HOLD_PROTO, &o[0]), 0);
    int rc = open_wait(&p.w, p.a, &p.b_id, HOLD_PROTO, &o[1]);
    assert_int_equal(rc, CP2P_ELIMIT);
    assert_int_equal(scope_named(p.a, "system").refused.streams_out, 1);
    opened_drop(o, 2);
    world_run_until_n(&p.w, &held.n, 1, 5000);
    holder_reset(&held);
    host_pair_end(&p);
}

static void test_peer_conn_and_fd_limits(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    /* b takes one connection per peer and two sockets in all. */
    cp2p_host_config_t cfg = {.peer_limits = {.conns = 1}, .system_limits = {.fds = 2}};
    cp2p_host_t *b = host_new(&w, &cfg), *a = host_new(&w, NULL), *c = host_new(&w, NULL),
                *d = host_new(&w, NULL);
    unsigned port;
    cp2p_multiaddr_t full, bare;
    host_listen(b, &port, &full);
    char s[64];
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", port);
    assert_int_equal(cp2p_multiaddr_parse(s, &bare), 0);
    assert_int_equal(host_connect_wait(&w, a, &full), 0);
    /* Without /p2p every dial is a new connection: b closes a's second one
     * once its upgrade shows whose it is. */
    (void)host_connect_wait(&w, a, &bare);
    world_run_for(&w, 200);
    cp2p_rc_scope_stat_t ps;
    assert_int_equal(cp2p_host_peer_resources(b, cp2p_host_peer_id(a), &ps), 0);
    assert_int_equal(ps.used.conns, 1);
    assert_int_equal(ps.refused.conns, 1);
    assert_int_equal(cp2p_host_conn_count(b), 1);
    /* c takes the second socket; d finds none. */
    assert_int_equal(host_connect_wait(&w, c, &full), 0);
    assert_true(host_connect_wait(&w, d, &full) < 0);
    cp2p_rc_scope_stat_t sys = scope_named(b, "system");
    assert_int_equal(sys.used.fds, 2);
    assert_int_equal(sys.limit.fds, 2);
    assert_int_equal(sys.refused.fds, 1);
    assert_int_equal(scope_named(b, "peer").n, 2);
    cp2p_multiaddr_free(&full);
    cp2p_multiaddr_free(&bare);
    int closed = 0;
    cp2p_host_close(a, count_up, &closed);
    cp2p_host_close(c, count_up, &closed);
    cp2p_host_close(d, count_up, &closed);
    world_run_until_n(&w, &closed, 3, 10000);
    /* What they held goes back when their connections go. */
    world_run_for(&w, 300);
    sys = scope_named(b, "system");
    assert_int_equal(sys.used.fds, 0);
    assert_int_equal(sys.used.conns, 0);
    assert_int_equal(scope_named(b, "peer").n, 0);
    host_close_wait(&w, b);
    world_end(&w);
}

/* A peer that sends on streams b does not read fills its own memory scope:
 * b stops reading that connection, and takes everything once it reads. */
static void sink_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    (void)s, (void)p;
    holder_t *h = arg;
    if (status)
        h->ended++;
    else
        h->got += n;
}

typedef struct sender {
    cp2p_stream_t *s;
    size_t left, written;
    int done;
} sender_t;

static void sender_next(sender_t *x);

static void sender_written(cp2p_stream_t *s, int status, void *arg)
{
    (void)s;
    sender_t *x = arg;
    if (status) {
        x->done = 1;
        return;
    }
    sender_next(x);
}

static void sender_next(sender_t *x)
{
    static uint8_t chunk[64 * 1024];
    if (!x->left) {
        cp2p_stream_close_write(x->s);
        x->done = 1;
        return;
    }
    size_t n = x->left < sizeof chunk ? x->left : sizeof chunk;
    x->left -= n;
    x->written += n;
    assert_int_equal(cp2p_stream_write(x->s, chunk, n, sender_written, x), 0);
}

static void test_peer_memory_holds_reading(void **state)
{
    (void)state;
    host_pair_t p;
    cp2p_host_config_t cfg = {.peer_limits = {.memory = 600 * 1024}};
    host_pair_new(&p, &cfg);
    holder_t held = {0};
    assert_int_equal(cp2p_host_set_handler(p.b, HOLD_PROTO, hold_handler, &held), 0);
    host_pair_connect(&p);
    enum { STREAMS = 4, EACH = 1024 * 1024 };
    opened_t o[STREAMS];
    sender_t x[STREAMS] = {{0}};
    for (int i = 0; i < STREAMS; i++) {
        assert_int_equal(open_wait(&p.w, p.a, &p.b_id, HOLD_PROTO, &o[i]), 0);
        x[i].s = o[i].s;
        x[i].left = EACH;
        sender_next(&x[i]);
    }
    world_run_until_n(&p.w, &held.n, STREAMS, 5000);
    world_run_for(&p.w, 500);
    cp2p_rc_scope_stat_t ps;
    assert_int_equal(cp2p_host_peer_resources(p.b, cp2p_host_peer_id(p.a), &ps), 0);
    /* Held at the limit, give or take what one read and one frame bring. */
    assert_true(ps.used.memory >= 600 * 1024);
    assert_true(ps.used.memory < 600 * 1024 + 512 * 1024);
    cp2p_host_stats_t st;
    cp2p_host_stats(p.b, &st);
    assert_true(st.memory_holds >= 1);
    /* Reading gives the memory back and lets the connection be read again. */
    for (int i = 0; i < held.n; i++)
        assert_int_equal(cp2p_stream_read_start(held.s[i], sink_read, &held), 0);
    world_run_until_n(&p.w, &held.ended, STREAMS, 10000);
    assert_int_equal(held.got, (size_t)STREAMS * EACH);
    assert_int_equal(cp2p_host_peer_resources(p.b, cp2p_host_peer_id(p.a), &ps), 0);
    assert_int_equal(ps.used.memory, 0);
    holder_reset(&held);
    opened_drop(o, STREAMS);
    host_pair_end(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_all_or_nothing),
        cmocka_unit_test(test_move_and_memory),
        cmocka_unit_test(test_peer_stream_limit),
        cmocka_unit_test(test_protocol_limit),
        cmocka_unit_test(test_outbound_stream_limit),
        cmocka_unit_test(test_peer_conn_and_fd_limits),
        cmocka_unit_test(test_peer_memory_holds_reading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
