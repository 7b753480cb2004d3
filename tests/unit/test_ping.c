/* Ping between two hosts on loopback: round trips, stream reuse, and the
 * errors a misbehaving responder must cause (wrong echo, reset, EOF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/multiaddr.h"
#include "cp2p/ping.h"

typedef enum { GOOD, FLIP, RESET, CLOSE } behaviour_t;

typedef struct fixture {
    uv_loop_t loop;
    cp2p_host_t *a, *b;
    cp2p_peer_id_t b_id;
    int connected;
    int streams; /* ping streams b accepted */
    behaviour_t behaviour;
    int results;
    int last_status;
    uint64_t last_rtt;
    cp2p_ping_t *session;
    int closed;
} fixture_t;

static void timer_noop(uv_timer_t *t)
{
}

static void run_until(fixture_t *f, int *flag, int want)
{
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, timer_noop, 10000, 0);
    while (*flag < want && uv_is_active((uv_handle_t *)&t))
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(*flag >= want);
}

static void responder_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    fixture_t *f = arg;
    if (status < 0) {
        cp2p_stream_unref(s);
        return;
    }
    uint8_t out[256];
    if (n > sizeof out)
        n = sizeof out;
    memcpy(out, p, n);
    switch (f->behaviour) {
    case FLIP:
        out[0] ^= 1;
        /* fall through */
    case GOOD:
        cp2p_stream_write(s, out, n, NULL, NULL);
        break;
    case RESET:
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        break;
    case CLOSE:
        cp2p_stream_read_stop(s);
        cp2p_stream_close_write(s);
        cp2p_stream_unref(s);
        break;
    }
}

/* A test responder in place of the real one, to count streams and misbehave. */
static void responder(cp2p_stream_t *s, void *arg)
{
    fixture_t *f = arg;
    f->streams++;
    if (cp2p_stream_read_start(s, responder_read, f) < 0)
        cp2p_stream_unref(s);
}

static void on_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    fixture_t *f = arg;
    assert_int_equal(status, 0);
    assert_true(cp2p_peer_id_equal(peer, &f->b_id));
    f->connected = 1;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    assert_int_equal(cp2p_host_new(&f->loop, NULL, &f->a), 0);
    assert_int_equal(cp2p_host_new(&f->loop, NULL, &f->b), 0);
    f->b_id = *cp2p_host_peer_id(f->b);
    cp2p_multiaddr_t ma;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(cp2p_host_listen(f->b, &ma), 0);
    cp2p_multiaddr_free(&ma);
    cp2p_multiaddr_t *addrs;
    size_t n;
    assert_int_equal(cp2p_host_listen_addrs(f->b, &addrs, &n), 0);
    assert_true(n >= 1);
    assert_int_equal(cp2p_host_connect(f->a, &addrs[0], on_connect, f), 0);
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);
    run_until(f, &f->connected, 1);
    *state = f;
    return 0;
}

static void host_closed(void *arg)
{
    ((fixture_t *)arg)->closed++;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    cp2p_host_close(f->a, host_closed, f);
    cp2p_host_close(f->b, host_closed, f);
    run_until(f, &f->closed, 2);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void on_result(int status, uint64_t rtt_us, void *arg)
{
    fixture_t *f = arg;
    f->last_status = status;
    f->last_rtt = rtt_us;
    f->results++;
}

static void test_oneshot(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(cp2p_ping_enable(f->b), 0);
    assert_int_equal(cp2p_ping(f->a, &f->b_id, on_result, f), 0);
    assert_int_equal(f->results, 0); /* never before the call returns */
    run_until(f, &f->results, 1);
    assert_int_equal(f->last_status, 0);
    assert_true(f->last_rtt > 0 && f->last_rtt < 5000000);
}

static void test_session_reuses_stream(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(cp2p_host_set_handler(f->b, CP2P_PING_PROTOCOL_ID, responder, f), 0);
    cp2p_ping_t *p;
    assert_int_equal(cp2p_ping_new(f->a, &f->b_id, &p), 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(cp2p_ping_send(p, on_result, f), 0);
        assert_int_equal(cp2p_ping_send(p, on_result, f), CP2P_ESTATE);
        run_until(f, &f->results, i);
        assert_int_equal(f->last_status, 0);
    }
    assert_int_equal(f->streams, 1);
    cp2p_ping_free(p);
}

static void expect_failure(fixture_t *f, behaviour_t b, int status)
{
    f->behaviour = b;
    assert_int_equal(cp2p_host_set_handler(f->b, CP2P_PING_PROTOCOL_ID, responder, f), 0);
    cp2p_ping_t *p;
    assert_int_equal(cp2p_ping_new(f->a, &f->b_id, &p), 0);
    assert_int_equal(cp2p_ping_send(p, on_result, f), 0);
    run_until(f, &f->results, 1);
    assert_int_equal(f->last_status, status);
    /* after an error the next ping opens a new stream */
    f->behaviour = GOOD;
    assert_int_equal(cp2p_ping_send(p, on_result, f), 0);
    run_until(f, &f->results, 2);
    assert_int_equal(f->last_status, 0);
    assert_int_equal(f->streams, 2);
    cp2p_ping_free(p);
}

static void test_wrong_echo(void **state)
{
    expect_failure(*state, FLIP, CP2P_EPROTO);
}

static void test_reset(void **state)
{
    expect_failure(*state, RESET, CP2P_ERESET);
}

static void test_eof(void **state)
{
    expect_failure(*state, CLOSE, CP2P_ECLOSED);
}

static void test_cancel(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(cp2p_ping_enable(f->b), 0);
    cp2p_ping_t *p;
    assert_int_equal(cp2p_ping_new(f->a, &f->b_id, &p), 0);
    assert_int_equal(cp2p_ping_send(p, on_result, f), 0);
    cp2p_ping_free(p); /* while the stream is still opening */
    assert_int_equal(f->results, 1);
    assert_int_equal(f->last_status, CP2P_ECANCELED);
    /* the late open callback must not call back again nor touch freed memory */
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, timer_noop, 300, 0);
    while (uv_is_active((uv_handle_t *)&t))
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->results, 1);
}

static void test_unknown_peer(void **state)
{
    fixture_t *f = *state;
    cp2p_peer_id_t nobody = f->b_id;
    nobody.bytes[nobody.len - 1] ^= 0xff;
    int rc = cp2p_ping(f->a, &nobody, on_result, f);
    if (rc == 0) {
        run_until(f, &f->results, 1);
        assert_true(f->last_status < 0);
    } else {
        assert_true(rc < 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_oneshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_reuses_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_peer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
