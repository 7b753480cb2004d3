/* Stress: several hosts on one loop dialling each other at the same moment in
 * both directions, echo streams of random sizes, connections closed while
 * streams open, streams reset while writes are queued, hosts closed and
 * recreated with everything in flight, and finally all hosts closed at once,
 * over yamux and mplex.
 * Bounded by wall time (CP2P_STRESS_MS, default 2500); the seed comes from
 * CP2P_STRESS_SEED or the clock and is printed. Meant to run under ASan and
 * valgrind as well: it checks every callback runs exactly once, echoes are
 * intact and nothing is left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host_harness.h"

#define NHOSTS 4
#define CHUNK 16384
#define RESET_PROTO "/test/reset/1.0.0"

typedef struct stress stress_t;

typedef struct node {
    cp2p_host_t *h;
    cp2p_multiaddr_t addr;
    int closing;
} node_t;

typedef struct op {
    struct op *prev, *next;
    stress_t *st;
    cp2p_stream_t *s;
    size_t total, sent, received;
    int opened;      /* open callback calls */
    int writes_out;  /* write callbacks still due */
    int read_done;
    int flood;       /* fill the queue, then reset */
    int closing_conn;
    int busy;        /* inside a call that may run our callbacks */
    uint8_t buf[CHUNK];
} op_t;

struct stress {
    world_t w;
    node_t nodes[NHOSTS];
    uint64_t rng;
    op_t *ops;
    size_t live_ops;
    uv_timer_t tick;
    uint64_t end_ms;
    int running, stopped;
    int hosts_closing;
    /* what happened, for the summary and the checks */
    unsigned long opened_ok, open_failed, echoes_ok, corrupt, bad_counts, resets, conn_closes,
        host_restarts, dials;
};

static uint32_t rnd(stress_t *st, uint32_t n)
{
    st->rng ^= st->rng << 13;
    st->rng ^= st->rng >> 7;
    st->rng ^= st->rng << 17;
    return (uint32_t)(st->rng >> 11) % n;
}

static uint8_t pat(size_t i)
{
    return (uint8_t)(i * 13 + (i >> 9));
}

/* ---- ops ---- */

static void op_maybe_end(op_t *o)
{
    if (o->busy || !o->opened || o->writes_out || (o->s && !o->read_done))
        return;
    if (o->opened != 1 || o->writes_out < 0)
        o->st->bad_counts++;
    if (o->s) {
        if (o->received > o->sent)
            o->st->corrupt++;
        cp2p_stream_unref(o->s);
    }
    if (o->prev)
        o->prev->next = o->next;
    else
        o->st->ops = o->next;
    if (o->next)
        o->next->prev = o->prev;
    o->st->live_ops--;
    free(o);
}

static void op_reset(op_t *o)
{
    if (!o->s || o->read_done)
        return;
    o->st->resets++;
    /* Our own reset is not reported to our reader. */
    o->read_done = 1;
    o->busy++;
    cp2p_stream_reset(o->s);
    o->busy--;
    /* Queued writes have failed by now. */
    op_maybe_end(o);
}

static void op_send(op_t *o);

static void op_written(cp2p_stream_t *s, int status, void *arg)
{
    op_t *o = arg;
    o->writes_out--;
    o->busy++; /* op_send may end o: this frame still uses it */
    if (status == 0 && !o->flood && !o->read_done)
        op_send(o);
    o->busy--;
    op_maybe_end(o);
}

static void op_send_chunks(op_t *o);

static void op_send(op_t *o)
{
    o->busy++;
    op_send_chunks(o);
    o->busy--;
    op_maybe_end(o);
}

static void op_send_chunks(op_t *o)
{
    while (!o->read_done) {
        if (o->sent == o->total) {
            cp2p_stream_close_write(o->s);
            return;
        }
        size_t n = o->total - o->sent < CHUNK ? o->total - o->sent : CHUNK;
        for (size_t i = 0; i < n; i++)
            o->buf[i] = pat(o->sent + i);
        /* Counted before the write, given back if it fails. */
        o->writes_out++;
        o->sent += n;
        int rc = cp2p_stream_write(o->s, o->buf, n, op_written, o);
        if (rc < 0) {
            o->writes_out--;
            o->sent -= n;
            if (rc == CP2P_EAGAIN && o->flood)
                return; /* the queue is full: reset it at the next tick */
            op_reset(o);
            return;
        }
        if (!o->flood)
            return; /* the next chunk goes from the callback */
    }
}

static void op_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    op_t *o = arg;
    if (status == 0) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pat(o->received + i))
                o->st->corrupt++;
        o->received += n;
        return;
    }
    if (o->read_done)
        return;
    if (status == CP2P_ECLOSED && o->received == o->total && o->sent == o->total)
        o->st->echoes_ok++;
    o->read_done = 1;
    op_maybe_end(o);
}

static void op_opened(int status, cp2p_stream_t *s, void *arg)
{
    op_t *o = arg;
    o->opened++;
    o->s = s;
    if (status < 0) {
        o->st->open_failed++;
        op_maybe_end(o);
        return;
    }
    o->st->opened_ok++;
    if (cp2p_stream_read_start(s, op_read, o) < 0) {
        o->read_done = 1;
        op_maybe_end(o);
        return;
    }
    if (o->closing_conn) {
        o->busy++;
        cp2p_conn_close(cp2p_stream_conn(s));
        o->busy--;
        op_maybe_end(o);
        return;
    }
    op_send(o);
}

static op_t *op_start(stress_t *st, int from, int to, const char *proto, size_t total)
{
    node_t *a = &st->nodes[from], *b = &st->nodes[to];
    if (!a->h || a->closing || !b->h || b->closing || from == to)
        return NULL;
    op_t *o = calloc(1, sizeof *o);
    assert_non_null(o);
    o->st = st;
    o->total = total;
    o->next = st->ops;
    if (st->ops)
        st->ops->prev = o;
    st->ops = o;
    st->live_ops++;
    const char *const protos[] = {proto};
    int rc = cp2p_host_new_stream(a->h, cp2p_host_peer_id(b->h), protos, 1, op_opened, o);
    if (rc < 0) {
        o->opened = 1;
        op_maybe_end(o);
        return NULL;
    }
    return o->opened ? NULL : o; /* it may be over already */
}

/* ---- hosts ---- */

static void reset_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_stream_reset(s);
    cp2p_stream_unref(s);
}

static void node_start(stress_t *st, int i)
{
    node_t *n = &st->nodes[i];
    /* Odd hosts speak only mplex: pairs of even hosts use yamux. */
    static const char *const mplex_only[] = {"/mplex/6.7.0"};
    cp2p_host_config_t cfg = {.muxers = i % 2 ? mplex_only : NULL, .n_muxers = i % 2};
    n->h = host_new(&st->w, &cfg);
    assert_int_equal(cp2p_host_set_handler(n->h, ECHO_PROTO, echo_handler, NULL), 0);
    assert_int_equal(cp2p_host_set_handler(n->h, RESET_PROTO, reset_handler, NULL), 0);
    unsigned port;
    host_listen(n->h, &port, &n->addr);
    /* Everyone knows everyone's current address. */
    for (int j = 0; j < NHOSTS; j++) {
        node_t *m = &st->nodes[j];
        if (j == i || !m->h || m->closing)
            continue;
        cp2p_peerstore_add_addrs(cp2p_host_peerstore(m->h), cp2p_host_peer_id(n->h), &n->addr, 1,
                                 CP2P_TTL_PERMANENT, uv_now(&st->w.loop));
        cp2p_peerstore_add_addrs(cp2p_host_peerstore(n->h), cp2p_host_peer_id(m->h), &m->addr, 1,
                                 CP2P_TTL_PERMANENT, uv_now(&st->w.loop));
    }
}

typedef struct restart {
    stress_t *st;
    int i;
} restart_t;

static void node_closed(void *arg)
{
    restart_t *r = arg;
    stress_t *st = r->st;
    node_t *n = &st->nodes[r->i];
    n->h = NULL;
    n->closing = 0;
    cp2p_multiaddr_free(&n->addr);
    st->hosts_closing--;
    if (st->running)
        node_start(st, r->i);
    free(r);
}

static void node_close(stress_t *st, int i)
{
    node_t *n = &st->nodes[i];
    if (!n->h || n->closing)
        return;
    restart_t *r = malloc(sizeof *r);
    assert_non_null(r);
    r->st = st;
    r->i = i;
    n->closing = 1;
    st->hosts_closing++;
    cp2p_host_close(n->h, node_closed, r);
}

static void ignore_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
}

/* Both directions at the same moment. */
static void dial_pair(stress_t *st, int i, int j)
{
    node_t *a = &st->nodes[i], *b = &st->nodes[j];
    if (i == j || !a->h || a->closing || !b->h || b->closing)
        return;
    st->dials++;
    cp2p_host_connect(a->h, &b->addr, ignore_connect, NULL);
    cp2p_host_connect(b->h, &a->addr, ignore_connect, NULL);
}

static void close_conn(stress_t *st, int i, int j)
{
    node_t *a = &st->nodes[i], *b = &st->nodes[j];
    if (i == j || !a->h || a->closing || !b->h || b->closing)
        return;
    cp2p_conn_t *c = cp2p_host_conn_to(a->h, cp2p_host_peer_id(b->h));
    if (c) {
        st->conn_closes++;
        cp2p_conn_close(c);
    }
}

/* ---- the run ---- */

static void on_tick(uv_timer_t *t)
{
    stress_t *st = t->data;
    if (uv_now(&st->w.loop) >= st->end_ms) {
        uv_timer_stop(t);
        st->running = 0;
        st->stopped = 1;
        return;
    }
    /* Floods reset while their writes wait. */
    for (op_t *o = st->ops; o;) {
        if (o->flood && o->s && !o->read_done && o->opened) {
            op_reset(o);
            o = st->ops; /* callbacks may have ended others */
        } else {
            o = o->next;
        }
    }
    for (int k = 0; k < 3; k++) {
        int i = (int)rnd(st, NHOSTS), j = (int)rnd(st, NHOSTS);
        uint32_t what = rnd(st, 100);
        op_t *o;
        if (what < 40) {
            op_start(st, i, j, ECHO_PROTO, rnd(st, 4) ? rnd(st, 64 * 1024) : rnd(st, 600 * 1024));
        } else if (what < 50) {
            dial_pair(st, i, j);
        } else if (what < 60) {
            if ((o = op_start(st, i, j, ECHO_PROTO, 1 << 20)))
                o->flood = 1;
        } else if (what < 66) {
            close_conn(st, i, j);
        } else if (what < 72) {
            /* A stream opening on a connection that closes under it. */
            op_start(st, i, j, ECHO_PROTO, 1000);
            close_conn(st, i, j);
        } else if (what < 78) {
            if ((o = op_start(st, i, j, ECHO_PROTO, 1000)))
                o->closing_conn = 1;
        } else if (what < 86) {
            /* Some op, whatever its state. */
            size_t skip = st->live_ops ? rnd(st, (uint32_t)st->live_ops) : 0;
            for (o = st->ops; o && skip; o = o->next)
                skip--;
            if (o)
                op_reset(o);
        } else if (what < 92) {
            op_start(st, i, j, rnd(st, 2) ? RESET_PROTO : "/test/none/1.0.0", 1000);
        } else if (what < 93) {
            st->host_restarts++;
            node_close(st, i);
        }
    }
}

static void test_stress(void **state)
{
    stress_t *st = calloc(1, sizeof *st);
    assert_non_null(st);
    world_init(&st->w);
    const char *e = getenv("CP2P_STRESS_SEED");
    st->rng = e ? strtoull(e, NULL, 0) : uv_hrtime();
    if (!st->rng)
        st->rng = 1;
    uint64_t seed = st->rng;
    e = getenv("CP2P_STRESS_MS");
    uint64_t run_ms = e ? strtoull(e, NULL, 0) : 2500;
    /* Remote errors are expected here by the hundred. */
    cp2p_log_level_t level = cp2p_log_get_level();
    cp2p_log_set_level(CP2P_LOG_ERROR);
    st->running = 1;
    for (int i = 0; i < NHOSTS; i++)
        node_start(st, i);
    for (int i = 0; i < NHOSTS; i++)
        for (int j = i + 1; j < NHOSTS; j++)
            dial_pair(st, i, j);
    uv_timer_init(&st->w.loop, &st->tick);
    st->tick.data = st;
    st->end_ms = uv_now(&st->w.loop) + run_ms;
    uv_timer_start(&st->tick, on_tick, 2, 2);
    world_run_until(&st->w, &st->stopped, run_ms + 30000);

    /* Everything in flight, every host at once. */
    for (int i = 0; i < NHOSTS; i++)
        node_close(st, i);
    uv_close((uv_handle_t *)&st->tick, NULL);
    while (st->hosts_closing)
        uv_run(&st->w.loop, UV_RUN_ONCE);
    cp2p_log_set_level(level);
    print_message("stress seed=%llu: %lu streams opened, %lu refused or failed, %lu echoes intact, "
                  "%lu resets, %lu connection closes, %lu dials, %lu host restarts\n",
                  (unsigned long long)seed, st->opened_ok, st->open_failed, st->echoes_ok,
                  st->resets, st->conn_closes, st->dials, st->host_restarts);
    assert_int_equal(st->live_ops, 0); /* every callback came */
    assert_int_equal(st->corrupt, 0);
    assert_int_equal(st->bad_counts, 0);
    assert_true(st->echoes_ok > 10);
    assert_true(st->resets > 0);
    assert_true(st->conn_closes > 0);
    world_end(&st->w);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
