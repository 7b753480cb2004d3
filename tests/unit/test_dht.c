/* The DHT glue with several hosts on one loop: put/get, providers, find_peer,
 * and lookups that go on past a peer that never answers or sends garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/multiaddr.h"
#include "kad/kad_rpc.h"

#define N 5
#define TIMEOUT_MS 400

typedef struct world {
    uv_loop_t loop;
    cp2p_host_t *h[N + 2]; /* N dht nodes, then a silent and a garbage peer */
    cp2p_dht_t *d[N];
    cp2p_identify_t *id[N + 2];
    cp2p_multiaddr_t addr[N + 2];
    cp2p_stream_t *held[16];
    size_t n_held;
} world_t;

typedef struct result {
    int done, status;
    char value[64];
    size_t n;
    cp2p_peer_id_t peers[8];
} result_t;

static void on_done(cp2p_dht_t *d, int status, void *arg)
{
    result_t *r = arg;
    r->done = 1;
    r->status = status;
}

static void on_value(cp2p_dht_t *d, int status, const uint8_t *v, size_t n, void *arg)
{
    result_t *r = arg;
    r->done = 1;
    r->status = status;
    r->n = n < sizeof r->value ? n : sizeof r->value - 1;
    if (v)
        memcpy(r->value, v, r->n);
}

static void on_peers(cp2p_dht_t *d, int status, const cp2p_peer_id_t *p, size_t n, void *arg)
{
    result_t *r = arg;
    r->done = 1;
    r->status = status;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        r->peers[i] = p[i];
}

static void run_until(world_t *w, result_t *r, uint64_t max_ms)
{
    uint64_t end = uv_now(&w->loop) + max_ms;
    while (!r->done && uv_now(&w->loop) < end)
        uv_run(&w->loop, UV_RUN_ONCE);
    assert_true(r->done);
}

/* Reads requests and never answers. */
static void silent_handler(cp2p_stream_t *s, void *arg)
{
    world_t *w = arg;
    assert_true(w->n_held < 16);
    w->held[w->n_held++] = s;
}

/* Answers every request with a length prefix and bytes that are no protobuf. */
static void garbage_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    static const uint8_t junk[] = {8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (status == 0)
        cp2p_stream_write(s, junk, sizeof junk, NULL, NULL);
    else
        cp2p_stream_unref(s);
}

static void garbage_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_stream_read_start(s, garbage_read, NULL);
}

static void make_world(world_t *w)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    cp2p_multiaddr_t l;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &l), 0);
    cp2p_dht_config_t cfg = {.open_keys = 1, .request_timeout_ms = TIMEOUT_MS,
                             .query_timeout_ms = 20000, .quorum = 2};
    for (int i = 0; i < N + 2; i++) {
        assert_int_equal(cp2p_host_new(&w->loop, NULL, &w->h[i]), 0);
        /* Identify tells who serves the DHT: inbound peers enter the table. */
        assert_int_equal(cp2p_identify_enable(w->h[i], NULL, &w->id[i]), 0);
        assert_int_equal(cp2p_host_listen(w->h[i], &l), 0);
        cp2p_multiaddr_t *a;
        size_t n;
        assert_int_equal(cp2p_host_listen_addrs(w->h[i], &a, &n), 0);
        w->addr[i] = a[0];
        for (size_t j = 1; j < n; j++)
            cp2p_multiaddr_free(&a[j]);
        free(a);
        if (i < N)
            assert_int_equal(cp2p_dht_new(w->h[i], &cfg, &w->d[i]), 0);
    }
    cp2p_multiaddr_free(&l);
    assert_int_equal(cp2p_host_set_handler(w->h[N], CP2P_DHT_PROTOCOL, silent_handler, w), 0);
    assert_int_equal(cp2p_host_set_handler(w->h[N + 1], CP2P_DHT_PROTOCOL, garbage_handler, w), 0);
    /* A chain: each node knows only the one before it. */
    for (int i = 1; i < N; i++) {
        assert_int_equal(cp2p_dht_add_peer(w->d[i], cp2p_host_peer_id(w->h[i - 1]),
                                           &w->addr[i - 1], 1), 0);
        result_t r = {0};
        assert_int_equal(cp2p_dht_bootstrap(w->d[i], on_done, &r), 0);
        assert_false(r.done); /* never before the call returns */
        run_until(w, &r, 10000);
        assert_int_equal(r.status, 0);
    }
}

static void set_flag(void *arg)
{
    (*(int *)arg)++;
}

static void end_world(world_t *w)
{
    int closed = 0;
    for (size_t i = 0; i < w->n_held; i++)
        cp2p_stream_unref(w->held[i]);
    for (int i = 0; i < N + 2; i++) {
        if (i < N)
            cp2p_dht_free(w->d[i]);
        cp2p_identify_free(w->id[i]);
        cp2p_host_close(w->h[i], set_flag, &closed);
        cp2p_multiaddr_free(&w->addr[i]);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, N + 2);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

static void test_put_get_providers_find(void **state)
{
    world_t w;
    make_world(&w);
    result_t r = {0};
    assert_int_equal(cp2p_dht_put(w.d[N - 1], (const uint8_t *)"color", 5,
                                  (const uint8_t *)"blue", 4, on_done, &r), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, 0);

    memset(&r, 0, sizeof r);
    assert_int_equal(cp2p_dht_get(w.d[0], (const uint8_t *)"color", 5, on_value, &r), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 4);
    assert_memory_equal(r.value, "blue", 4);

    memset(&r, 0, sizeof r);
    assert_int_equal(cp2p_dht_get(w.d[1], (const uint8_t *)"nothing", 7, on_value, &r), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, CP2P_ENOTFOUND);

    /* Keys without a namespace are refused unless open_keys is set. */
    cp2p_dht_t *closed;
    cp2p_dht_config_t ccfg = {.mode = CP2P_DHT_MODE_CLIENT};
    assert_int_equal(cp2p_dht_new(w.h[N], &ccfg, &closed), 0);
    assert_int_equal(cp2p_dht_put(closed, (const uint8_t *)"color", 5, (const uint8_t *)"red", 3,
                                  on_done, &r), CP2P_EUNSUPPORTED);
    cp2p_dht_free(closed);

    /* A /pk/ record that is not the key's public key is refused. */
    assert_int_equal(cp2p_dht_put(w.d[0], (const uint8_t *)"/pk/xyz", 7, (const uint8_t *)"k", 1,
                                  on_done, &r), CP2P_EPARSE);

    memset(&r, 0, sizeof r);
    assert_int_equal(cp2p_dht_provide(w.d[2], (const uint8_t *)"\x12\x20mh", 4, on_done, &r), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(cp2p_dht_find_providers(w.d[0], (const uint8_t *)"\x12\x20mh", 4, 0,
                                             on_peers, &r), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    assert_true(cp2p_peer_id_equal(&r.peers[0], cp2p_host_peer_id(w.h[2])));

    memset(&r, 0, sizeof r);
    assert_int_equal(cp2p_dht_find_peer(w.d[0], cp2p_host_peer_id(w.h[N - 1]), on_peers, &r), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, 0);
    assert_true(cp2p_peer_id_equal(&r.peers[0], cp2p_host_peer_id(w.h[N - 1])));
    assert_true(cp2p_dht_stats(w.d[0])->requests_in > 0);

    /* The record and the provider record were stored at (at least) one peer. */
    size_t records = 0, providers = 0;
    for (int i = 0; i < N; i++) {
        cp2p_dht_holdings_t ho;
        cp2p_dht_holdings(w.d[i], &ho);
        records += ho.records;
        providers += ho.providers;
        assert_true(cp2p_dht_routing_table_size(w.d[i]) > 0);
    }
    assert_true(records >= 1);
    assert_true(providers >= 1);
    end_world(&w);
}

static void test_hostile_peers_do_not_stall(void **state)
{
    world_t w;
    make_world(&w);
    cp2p_dht_t *d = w.d[0];
    assert_int_equal(cp2p_dht_add_peer(d, cp2p_host_peer_id(w.h[N]), &w.addr[N], 1), 0);
    assert_int_equal(cp2p_dht_add_peer(d, cp2p_host_peer_id(w.h[N + 1]), &w.addr[N + 1], 1), 0);
    size_t before = cp2p_dht_routing_table_size(d);

    result_t r = {0};
    uint64_t t0 = uv_now(&w.loop);
    assert_int_equal(cp2p_dht_get(d, (const uint8_t *)"missing", 7, on_value, &r), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, CP2P_ENOTFOUND);
    /* One request timeout (plus scheduling), not the whole query timeout. */
    assert_true(uv_now(&w.loop) - t0 < 4 * TIMEOUT_MS);
    const cp2p_dht_stats_t *st = cp2p_dht_stats(d);
    assert_true(st->timeouts >= 1);
    assert_true(st->bad_messages >= 1);
    /* Both left the routing table; the honest peers stayed. */
    assert_int_equal(cp2p_dht_routing_table_size(d), before - 2);

    /* The DHT still works afterwards. */
    memset(&r, 0, sizeof r);
    assert_int_equal(cp2p_dht_put(d, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1, on_done,
                                  &r), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, 0);
    end_world(&w);
}

static void test_free_cancels(void **state)
{
    world_t w;
    make_world(&w);
    result_t r = {0};
    assert_int_equal(cp2p_dht_get(w.d[0], (const uint8_t *)"x", 1, on_value, &r), 0);
    cp2p_dht_free(w.d[0]);
    assert_true(r.done);
    assert_int_equal(r.status, CP2P_ECANCELED);
    w.d[0] = NULL;
    end_world(&w);
}

static void count_call(void *arg)
{
    (*(int *)arg)++;
}

static int gone_in_cb;

/* A put whose callback closes its own DHT (what a program's last step does). */
static void close_in_callback(cp2p_dht_t *d, int status, void *arg)
{
    result_t *r = arg;
    r->done++;
    r->status = status;
    cp2p_dht_close(d, count_call, &gone_in_cb);
    cp2p_dht_close(d, count_call, &gone_in_cb); /* a second close does nothing */
}

/* cp2p_dht_close: callbacks of pending operations never inside the call,
 * each exactly once with CP2P_ECANCELED, done after them; no new operation
 * once closing; and safe from the DHT's own callback. */
static void test_close(void **state)
{
    world_t w;
    make_world(&w);
    result_t g = {0}, p = {0};
    int gone = 0;
    assert_int_equal(cp2p_dht_get(w.d[0], (const uint8_t *)"x", 1, on_value, &g), 0);
    assert_int_equal(cp2p_dht_provide(w.d[0], (const uint8_t *)"\x12\x20mh", 4, on_done, &p), 0);
    cp2p_dht_close(w.d[0], count_call, &gone);
    assert_false(g.done);
    assert_false(p.done);
    result_t late = {0};
    assert_int_equal(cp2p_dht_get(w.d[0], (const uint8_t *)"y", 1, on_value, &late),
                     CP2P_ESTATE);
    while (!gone)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(g.done, 1);
    assert_int_equal(g.status, CP2P_ECANCELED);
    assert_int_equal(p.done, 1);
    assert_int_equal(p.status, CP2P_ECANCELED);
    w.d[0] = NULL;

    /* cancelled: told later, once, with CP2P_ECANCELED; others go on */
    result_t c1 = {0}, c2 = {0}, keep = {0};
    assert_int_equal(cp2p_dht_get(w.d[1], (const uint8_t *)"x", 1, on_value, &c1), 0);
    assert_int_equal(cp2p_dht_provide(w.d[1], (const uint8_t *)"\x12\x20mh", 4, on_done, &c2), 0);
    assert_int_equal(cp2p_dht_put(w.d[1], (const uint8_t *)"k2", 2, (const uint8_t *)"v", 1,
                                  on_done, &keep), 0);
    assert_int_equal(cp2p_dht_cancel(w.d[1], &c1), 1);
    assert_int_equal(cp2p_dht_cancel(w.d[1], &c2), 1);
    assert_int_equal(cp2p_dht_cancel(w.d[1], &c2), 0); /* already */
    assert_false(c1.done || c2.done);
    run_until(&w, &keep, 10000);
    assert_int_equal(keep.status, 0);
    assert_int_equal(c1.done, 1);
    assert_int_equal(c1.status, CP2P_ECANCELED);
    assert_int_equal(c2.done, 1);
    assert_int_equal(c2.status, CP2P_ECANCELED);

    /* closed from inside its own put's callback */
    result_t r = {0};
    assert_int_equal(cp2p_dht_put(w.d[1], (const uint8_t *)"k", 1, (const uint8_t *)"v", 1,
                                  close_in_callback, &r), 0);
    while (!gone_in_cb)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(r.done, 1);
    assert_int_equal(gone_in_cb, 1);
    w.d[1] = NULL;
    end_world(&w);
}

/* Freed between any two loop turns of a provide from a new host: whatever
 * the DHT had pending then (a dial, a stream opening, a lookup, an
 * ADD_PROVIDER whose write's done callback the stream still owes) is let go
 * of safely. */
static void test_free_at_every_turn(void **state)
{
    world_t w;
    make_world(&w);
    cp2p_dht_config_t cfg = {.open_keys = 1, .request_timeout_ms = TIMEOUT_MS,
                             .query_timeout_ms = 20000, .quorum = 2};
    result_t r = {0};
    int closed = 0, k;
    for (k = 0; k < 400; k++) {
        cp2p_host_t *h;
        cp2p_dht_t *d;
        assert_int_equal(cp2p_host_new(&w.loop, NULL, &h), 0);
        assert_int_equal(cp2p_dht_new(h, &cfg, &d), 0);
        assert_int_equal(cp2p_dht_add_peer(d, cp2p_host_peer_id(w.h[1]), &w.addr[1], 1), 0);
        memset(&r, 0, sizeof r);
        assert_int_equal(cp2p_dht_provide(d, (const uint8_t *)"\x12\x20mh", 4, on_done, &r), 0);
        for (int i = 0; i < k && !r.done; i++)
            uv_run(&w.loop, UV_RUN_ONCE);
        int done = r.done;
        cp2p_dht_free(d);
        cp2p_host_close(h, set_flag, &closed);
        if (done)
            break;
    }
    while (closed < k + 1)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_true(r.done);
    assert_int_equal(r.status, 0);
    end_world(&w);
}

static void tick_fired(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

/* Lookups must move on answers, not on the deadline tick: with every tick
 * parked on a callback that only counts, a put and a get still finish. */
static void test_lookup_not_paced_by_tick(void **state)
{
    world_t w;
    make_world(&w);
    int fired = 0;
    for (int i = 0; i < N; i++) {
        uv_timer_stop(&w.d[i]->tick);
        w.d[i]->tick.data = &fired;
        uv_timer_start(&w.d[i]->tick, tick_fired, 10000, 0);
    }
    result_t r = {0}, g = {0};
    assert_int_equal(cp2p_dht_put(w.d[N - 1], (const uint8_t *)"k", 1, (const uint8_t *)"v", 1,
                                  on_done, &r), 0);
    while (!r.done && !fired)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(r.status, 0);
    assert_int_equal(cp2p_dht_get(w.d[0], (const uint8_t *)"k", 1, on_value, &g), 0);
    while (!g.done && !fired)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(fired, 0);
    assert_int_equal(g.status, 0);
    assert_memory_equal(g.value, "v", 1);
    for (int i = 0; i < N; i++) {
        uv_timer_stop(&w.d[i]->tick);
        w.d[i]->tick.data = w.d[i];
    }
    end_world(&w);
}

static void on_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    result_t *r = arg;
    r->done = 1;
    r->status = status;
}

/* Routing-table members carry the "kbucket" tag, so a trim spares them: the
 * table peer (connected first, so the older one) stays and the untagged
 * newcomer goes. Without the tag the trim would cut the older one. */
static void test_table_peers_spared_by_trim(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cp2p_multiaddr_t l, *a;
    size_t na;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &l), 0);
    cp2p_host_config_t hc = {.conn_low_water = 1, .conn_high_water = 100};
    cp2p_host_t *h[3];
    cp2p_identify_t *id[3];
    cp2p_dht_t *d[2];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp2p_host_new(&loop, i == 0 ? &hc : NULL, &h[i]), 0);
        assert_int_equal(cp2p_identify_enable(h[i], NULL, &id[i]), 0);
        assert_int_equal(cp2p_host_listen(h[i], &l), 0);
        if (i < 2)
            assert_int_equal(cp2p_dht_new(h[i], NULL, &d[i]), 0);
    }
    assert_int_equal(cp2p_host_listen_addrs(h[0], &a, &na), 0);
    assert_int_equal(cp2p_dht_add_peer(d[1], cp2p_host_peer_id(h[0]), a, 1), 0);
    result_t b = {0}, c = {0};
    assert_int_equal(cp2p_dht_bootstrap(d[1], on_done, &b), 0);
    uint64_t end = uv_now(&loop) + 10000;
    while ((!b.done || !cp2p_dht_routing_table_size(d[0])) && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(cp2p_dht_routing_table_size(d[0]), 1); /* h[1], told by identify */
    assert_int_equal(cp2p_host_connect(h[2], &a[0], on_connected, &c), 0);
    while (!c.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(c.status, 0);
    while (!cp2p_host_conn_to(h[0], cp2p_host_peer_id(h[2])))
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(cp2p_host_trim(h[0]), 1);
    assert_non_null(cp2p_host_conn_to(h[0], cp2p_host_peer_id(h[1])));
    assert_null(cp2p_host_conn_to(h[0], cp2p_host_peer_id(h[2])));

    int closed = 0;
    for (int i = 0; i < 3; i++) {
        if (i < 2)
            cp2p_dht_free(d[i]);
        cp2p_identify_free(id[i]);
        cp2p_host_close(h[i], set_flag, &closed);
    }
    for (size_t i = 0; i < na; i++)
        cp2p_multiaddr_free(&a[i]);
    free(a);
    cp2p_multiaddr_free(&l);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 3);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A put that finds nobody to store at (its table still empty) looks again a
 * moment later instead of failing: here the table fills in the meantime. */
static void test_put_retries_when_nobody_found(void **state)
{
    world_t w;
    make_world(&w);
    cp2p_host_t *h;
    cp2p_dht_t *d;
    cp2p_multiaddr_t l;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &l), 0);
    assert_int_equal(cp2p_host_new(&w.loop, NULL, &h), 0);
    assert_int_equal(cp2p_host_listen(h, &l), 0);
    cp2p_dht_config_t cfg = {.open_keys = 1, .quorum = 2};
    assert_int_equal(cp2p_dht_new(h, &cfg, &d), 0);
    result_t r = {0};
    assert_int_equal(cp2p_dht_put(d, (const uint8_t *)"late", 4, (const uint8_t *)"v", 1, on_done,
                                  &r), 0);
    uint64_t until = uv_now(&w.loop) + 300;
    while (!r.done && uv_now(&w.loop) < until)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_false(r.done);
    assert_int_equal(cp2p_dht_add_peer(d, cp2p_host_peer_id(w.h[0]), &w.addr[0], 1), 0);
    run_until(&w, &r, 10000);
    assert_int_equal(r.status, 0);
    result_t g = {0};
    assert_int_equal(cp2p_dht_get(w.d[N - 1], (const uint8_t *)"late", 4, on_value, &g), 0);
    run_until(&w, &g, 10000);
    assert_int_equal(g.status, 0);
    cp2p_dht_free(d);
    int closed = 0;
    cp2p_host_close(h, set_flag, &closed);
    cp2p_multiaddr_free(&l);
    end_world(&w);
    assert_int_equal(closed, 1);
}

typedef struct wlog {
    int n, order_ok, failed;
} wlog_t;

static void on_write(cp2p_dht_t *d, int rc, void *arg)
{
    wlog_t *l = arg;
    if (rc < 0)
        l->failed++;
    l->n++;
}


static wlog_t wseq;
static int wseq_next;

static void on_write_seq(cp2p_dht_t *d, int rc, void *arg)
{
    /* Callbacks come in the order the writes were queued. */
    if ((intptr_t)arg != wseq_next++)
        wseq.order_ok = 0;
    on_write(d, rc, &wseq);
}

/* Store writes on an LMDB datastore go through the pool one at a time: in
 * order, at most KAD_MAX_WRITES queued, and what was committed before
 * cp2p_dht_free() is there when the datastore is opened again; free with
 * writes queued and one running is clean. */
static void test_store_writes(void **state)
{
    char tmpl[] = "/tmp/cp2p-dht-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cp2p_host_t *h;
    cp2p_dht_t *d;
    assert_int_equal(cp2p_host_new(&loop, NULL, &h), 0);
    cp2p_dht_config_t cfg = {.open_keys = 1, .datastore = dir};
    assert_int_equal(cp2p_dht_new(h, &cfg, &d), 0);
    wseq = (wlog_t){.order_ok = 1};
    wseq_next = 0;
    int queued = 0, rc = 0;
    while (rc == 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", queued);
        rc = kad_write_record(d, (const uint8_t *)"k", 1, (const uint8_t *)v, strlen(v), 1,
                              on_write_seq, (void *)(intptr_t)queued);
        queued += rc == 0;
        assert_true(queued <= KAD_MAX_WRITES + 1);
    }
    assert_int_equal(rc, CP2P_ELIMIT);
    assert_true(queued >= KAD_MAX_WRITES); /* one may already run */
    while (wseq.n < queued)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(wseq.order_ok);
    assert_int_equal(wseq.failed, 0);
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_kad_store_get_record(d->store, (const uint8_t *)"k", 1, 2, &b, NULL), 0);
    char last[16];
    snprintf(last, sizeof last, "%d", queued - 1);
    assert_int_equal(b.len, strlen(last));
    assert_memory_equal(b.data, last, b.len);
    cp2p_buf_free(&b);

    /* Writes still queued when the dht goes: no callback, no leak, no crash. */
    wlog_t late = {0};
    assert_int_equal(kad_write_provider(d, (const uint8_t *)"p", 1, cp2p_host_peer_id(h), 1,
                                        on_write, &late), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(kad_write_record(d, (const uint8_t *)"k", 1, (const uint8_t *)"x", 1, 1,
                                          on_write, &late), 0);
    cp2p_dht_free(d);
    int closed = 0;
    cp2p_host_close(h, set_flag, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(late.n, 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    cp2p_kad_store_t *st;
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &st), 0);
    assert_int_equal(cp2p_kad_store_get_record(st, (const uint8_t *)"k", 1, 2, &b, NULL), 0);
    assert_true(b.len == 1 ? b.data[0] == 'x' : !memcmp(b.data, last, b.len));
    cp2p_buf_free(&b);
    cp2p_kad_store_free(st);
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_providers_find),
        cmocka_unit_test(test_hostile_peers_do_not_stall),
        cmocka_unit_test(test_free_cancels),
        cmocka_unit_test(test_free_at_every_turn),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_lookup_not_paced_by_tick),
        cmocka_unit_test(test_table_peers_spared_by_trim),
        cmocka_unit_test(test_store_writes),
        cmocka_unit_test(test_put_retries_when_nobody_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
