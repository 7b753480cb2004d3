/* libuv's rule, checked at every public call that can cause a callback: the
 * callback runs on a later loop turn, never inside the call. Each callback
 * here fails if it finds the test inside a call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "host_harness.h"

#define HOLD_PROTO "/test/hold/1.0.0"

static int inside; /* the test is inside a cp2p call */
static int calls;  /* callbacks seen */

#define CALL(expr)                                                                                \
    do {                                                                                          \
        inside = 1;                                                                               \
        expr;                                                                                     \
        inside = 0;                                                                               \
    } while (0)

static void seen(void)
{
    assert_false(inside);
    calls++;
}

static void on_written(cp2p_stream_t *s, int status, void *arg)
{
    (void)s, (void)status, (void)arg;
    seen();
}

static int last_read;
static void on_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    (void)s, (void)p, (void)n, (void)arg;
    last_read = status;
    seen();
}

static cp2p_stream_t *held;
static void hold_handler(cp2p_stream_t *s, void *arg)
{
    (void)arg;
    held = s;
}

static cp2p_stream_t *opened_s;
static int opened_done, opened_status;
static void on_opened(int status, cp2p_stream_t *s, void *arg)
{
    (void)arg;
    seen();
    opened_done = 1;
    opened_status = status;
    opened_s = s;
}

static int events;
static void on_event(const cp2p_event_t *ev, void *arg)
{
    (void)ev, (void)arg;
    seen();
    events++;
}

static int connect_done, connect_status;
static void on_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    (void)h, (void)peer, (void)arg;
    seen();
    connect_done = 1;
    connect_status = status;
}

static cp2p_stream_t *open_held(host_pair_t *p)
{
    static const char *const protos[] = {HOLD_PROTO};
    opened_done = 0;
    held = NULL;
    CALL(assert_int_equal(cp2p_host_new_stream(p->a, &p->b_id, protos, 1, on_opened, NULL), 0));
    world_run_until(&p->w, &opened_done, 5000);
    assert_int_equal(opened_status, 0);
    while (!held)
        uv_run(&p->w.loop, UV_RUN_ONCE);
    return opened_s;
}

static void test_stream_calls(void **state)
{
    (void)state;
    host_pair_t p;
    host_pair_new(&p, NULL);
    assert_int_equal(cp2p_host_set_handler(p.b, HOLD_PROTO, hold_handler, NULL), 0);
    assert_int_equal(cp2p_host_subscribe(p.b, on_event, NULL), 0);
    unsigned port;
    cp2p_multiaddr_t addr;
    /* listen: the address event comes later */
    events = 0;
    CALL(host_listen(p.b, &port, &addr));
    assert_int_equal(events, 0);
    world_run_until(&p.w, &events, 1000);
    assert_int_equal(host_connect_wait(&p.w, p.a, &addr), 0);
    cp2p_multiaddr_free(&addr);

    /* write taken at once: its callback comes later */
    cp2p_stream_t *s = open_held(&p);
    int before = calls;
    CALL(assert_int_equal(cp2p_stream_write(s, (const uint8_t *)"abc", 3, on_written, NULL), 0));
    assert_int_equal(calls, before);
    world_run_until_n(&p.w, &calls, before + 1, 1000);

    /* read_start with data buffered: delivered later */
    static uint8_t big[300 * 1024]; /* over yamux's first window: some waits in the queue */
    CALL(assert_int_equal(cp2p_stream_write(held, (const uint8_t *)"xyz", 3, NULL, NULL), 0));
    world_run_for(&p.w, 50);
    before = calls;
    CALL(assert_int_equal(cp2p_stream_read_start(s, on_read, NULL), 0));
    assert_int_equal(calls, before);
    world_run_until_n(&p.w, &calls, before + 1, 1000);
    assert_int_equal(last_read, 0);

    /* reset with queued writes: their failures come later */
    before = calls;
    CALL(assert_int_equal(cp2p_stream_write(s, big, sizeof big, on_written, NULL), 0));
    CALL(assert_int_equal(cp2p_stream_reset(s), 0));
    assert_int_equal(calls, before);
    world_run_until_n(&p.w, &calls, before + 1, 1000);
    cp2p_stream_unref(s);
    cp2p_stream_unref(held);

    /* closing a connection: the streams' ends and the event come later */
    s = open_held(&p);
    CALL(assert_int_equal(cp2p_stream_read_start(s, on_read, NULL), 0));
    cp2p_stream_t *bs = held;
    CALL(assert_int_equal(cp2p_stream_read_start(bs, on_read, NULL), 0));
    world_run_for(&p.w, 20);
    before = calls;
    events = 0;
    CALL(cp2p_conn_close(cp2p_stream_conn(bs)));
    assert_int_equal(calls, before);
    world_run_until(&p.w, &events, 1000); /* DISCONNECTED on b */
    world_run_until_n(&p.w, &calls, before + 3, 2000); /* both readers too */
    cp2p_stream_unref(s);
    cp2p_stream_unref(bs);
    host_pair_end(&p);
}

static void test_close_with_dials_under_way(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    cp2p_host_t *a = host_new(&w, NULL), *b = host_new(&w, NULL);
    unsigned port;
    cp2p_multiaddr_t addr;
    host_listen(b, &port, &addr);
    world_run_for(&w, 10);
    connect_done = 0;
    CALL(assert_int_equal(cp2p_host_connect(a, &addr, on_connect, NULL), 0));
    assert_int_equal(connect_done, 0);
    /* a closes while the dial is under way: told later, before the close is done */
    int closed = 0;
    CALL(cp2p_host_close(a, set_flag, &closed));
    assert_int_equal(connect_done, 0);
    world_run_until(&w, &closed, 5000);
    assert_int_equal(connect_done, 1);
    assert_true(connect_status < 0);
    cp2p_multiaddr_free(&addr);
    host_close_wait(&w, b);
    world_end(&w);
}

static void drop_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_stream_unref(s);
}

static int opens, open_status, connects, conn_status;
static void count_open(int status, cp2p_stream_t *s, void *arg)
{
    seen();
    opens++;
    open_status = status;
    if (s)
        cp2p_stream_unref(s);
}

static void count_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    seen();
    connects++;
    conn_status = status;
}

/* cp2p_host_cancel: a connect and new streams (on a connection and with a
 * dial first) cancelled at every stage are each told once, later, with
 * CP2P_ECANCELED, and nothing after; other callers' requests go on. */
static void test_cancel(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    cp2p_host_t *a = host_new(&w, NULL), *b = host_new(&w, NULL);
    assert_int_equal(cp2p_host_set_handler(b, HOLD_PROTO, drop_handler, NULL), 0);
    unsigned port;
    cp2p_multiaddr_t addr;
    host_listen(b, &port, &addr);
    world_run_for(&w, 10);
    static const char *const protos[] = {HOLD_PROTO};
    int mine, other;
    assert_int_equal(host_connect_wait(&w, a, &addr), 0); /* b's address into a's peerstore */
    for (int k = 0; k < 12; k++) {
        /* odd rounds from no connection: the new streams dial first */
        cp2p_conn_t *c = cp2p_host_conn_to(a, cp2p_host_peer_id(b));
        if (c && k % 2) {
            cp2p_conn_close(c);
            while (cp2p_host_conn_to(a, cp2p_host_peer_id(b)))
                uv_run(&w.loop, UV_RUN_ONCE);
        }
        connects = opens = 0;
        /* a dial (the first rounds), then streams on the connection */
        CALL(assert_int_equal(cp2p_host_connect(a, &addr, count_connect, &mine), 0));
        CALL(assert_int_equal(cp2p_host_new_stream(a, cp2p_host_peer_id(b), protos, 1, count_open,
                                                   &mine), 0));
        CALL(assert_int_equal(cp2p_host_new_stream(a, cp2p_host_peer_id(b), protos, 1, count_open,
                                                   &other), 0));
        for (int i = 0; i < k; i++)
            uv_run(&w.loop, UV_RUN_NOWAIT);
        int n;
        CALL(n = cp2p_host_cancel(a, &mine));
        assert_true(n >= 0 && n <= 2);
        if (k < 2)
            assert_int_equal(n, 2); /* nothing had a turn to end */
        world_run_for(&w, 100);
        assert_int_equal(connects, 1);
        assert_int_equal(opens, 2);
        if (n == 2)
            assert_int_equal(conn_status, CP2P_ECANCELED);
    }
    assert_int_equal(cp2p_host_cancel(a, &mine), 0); /* nothing left */
    cp2p_multiaddr_free(&addr);
    host_close_wait(&w, a);
    host_close_wait(&w, b);
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_calls),
        cmocka_unit_test(test_close_with_dials_under_way),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
