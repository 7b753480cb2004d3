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
#include "host_harness.h"

typedef enum { GOOD, FLIP, RESET, CLOSE } behaviour_t;

typedef struct fixture {
    host_pair_t hp;
    int streams; /* ping streams b accepted */
    behaviour_t behaviour;
    int results;
    int last_status;
    uint64_t last_rtt;
    cp2p_ping_t *session;
} fixture_t;

static void run_until(fixture_t *f, int *flag, int want)
{
    world_run_until_n(&f->hp.w, flag, want, 10000);
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

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    host_pair_new(&f->hp, NULL);
    host_pair_connect(&f->hp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    host_pair_end(&f->hp);
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
    assert_int_equal(cp2p_ping_enable(f->hp.b), 0);
    assert_int_equal(cp2p_ping(f->hp.a, &f->hp.b_id, on_result, f), 0);
    assert_int_equal(f->results, 0); /* never before the call returns */
    run_until(f, &f->results, 1);
    assert_int_equal(f->last_status, 0);
    assert_true(f->last_rtt > 0 && f->last_rtt < 5000000);
}

static void test_session_reuses_stream(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(cp2p_host_set_handler(f->hp.b, CP2P_PING_PROTOCOL_ID, responder, f), 0);
    cp2p_ping_t *p;
    assert_int_equal(cp2p_ping_new(f->hp.a, &f->hp.b_id, &p), 0);
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
    assert_int_equal(cp2p_host_set_handler(f->hp.b, CP2P_PING_PROTOCOL_ID, responder, f), 0);
    cp2p_ping_t *p;
    assert_int_equal(cp2p_ping_new(f->hp.a, &f->hp.b_id, &p), 0);
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
    assert_int_equal(cp2p_ping_enable(f->hp.b), 0);
    cp2p_ping_t *p;
    assert_int_equal(cp2p_ping_new(f->hp.a, &f->hp.b_id, &p), 0);
    assert_int_equal(cp2p_ping_send(p, on_result, f), 0);
    cp2p_ping_free(p); /* while the stream is still opening */
    assert_int_equal(f->results, 0); /* told on a later turn, never inside the free */
    world_run_until_n(&f->hp.w, &f->results, 1, 1000);
    assert_int_equal(f->last_status, CP2P_ECANCELED);
    /* the late open callback must not call back again nor touch freed memory */
    world_run_for(&f->hp.w, 300);
    assert_int_equal(f->results, 1);
}

/* A session freed between any two loop turns of its pings (opening, the
 * payload written, the echo on its way, between pings): each ping's
 * callback runs exactly once, the one outstanding at the free with
 * CP2P_ECANCELED, never inside the free. */
static void test_free_at_every_turn(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(cp2p_ping_enable(f->hp.b), 0);
    for (int k = 0; k < 40; k++) {
        cp2p_ping_t *p;
        f->results = 0;
        assert_int_equal(cp2p_ping_new(f->hp.a, &f->hp.b_id, &p), 0);
        int sent = 1, last = 0;
        assert_int_equal(cp2p_ping_send(p, on_result, f), 0);
        for (int i = 0; i < k; i++) {
            uv_run(&f->hp.w.loop, UV_RUN_NOWAIT); /* one turn, never blocking */
            if (f->results == sent && f->last_status == 0 && sent < 3) {
                assert_int_equal(cp2p_ping_send(p, on_result, f), 0);
                sent++;
            }
        }
        last = f->results;
        cp2p_ping_free(p);
        assert_int_equal(f->results, last); /* nothing inside the free */
        world_run_for(&f->hp.w, 30);
        assert_int_equal(f->results, sent); /* each exactly once */
        assert_true(f->last_status == 0 || f->last_status == CP2P_ECANCELED);
    }
}

static void test_unknown_peer(void **state)
{
    fixture_t *f = *state;
    cp2p_peer_id_t nobody = f->hp.b_id;
    nobody.bytes[nobody.len - 1] ^= 0xff;
    int rc = cp2p_ping(f->hp.a, &nobody, on_result, f);
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
        cmocka_unit_test_setup_teardown(test_free_at_every_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_peer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
