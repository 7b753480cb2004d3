/* Perf between two hosts on loopback: exact upload and download counts, the
 * runner's fixed server identity, a short header (reset, and the server goes
 * on serving), a server that sends too much, and cancelling. */
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
#include "cp2p/perf.h"
#include "host_harness.h"

typedef struct fixture {
    host_pair_t hp;
    cp2p_perf_server_t *srv;
    int results, last_status;
    /* a raw perf stream */
    cp2p_stream_t *raw;
    int raw_opened, raw_ended, raw_status;
    uint64_t raw_bytes;
    uint64_t extra; /* the misbehaving server sends this many bytes too many */
} fixture_t;

static void run_until(fixture_t *f, int *flag, int want)
{
    world_run_until_n(&f->hp.w, flag, want, 20000);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    cp2p_host_config_t bc = {0};
    assert_int_equal(cp2p_perf_server_identity(&bc.identity), 0);
    host_pair_new(&f->hp, &bc);
    assert_int_equal(cp2p_perf_enable(f->hp.b, &f->srv), 0);
    host_pair_connect(&f->hp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    cp2p_perf_server_free(f->srv);
    host_pair_end(&f->hp);
    free(f);
    return 0;
}

static void on_result(int status, void *arg)
{
    fixture_t *f = arg;
    f->last_status = status;
    f->results++;
}

/* One run; returns its status and checks the counts when it succeeded. */
static int perf_run(fixture_t *f, uint64_t up, uint64_t down)
{
    cp2p_perf_t *p;
    int want = f->results + 1;
    assert_int_equal(cp2p_perf_start(f->hp.a, &f->hp.b_id, up, down, on_result, f, &p), 0);
    assert_int_equal(f->results, want - 1); /* never before the call returns */
    run_until(f, &f->results, want);
    uint64_t u, d;
    cp2p_perf_progress(p, &u, &d);
    if (f->last_status == 0) {
        assert_int_equal(u, up);
        assert_int_equal(d, down);
    }
    cp2p_perf_free(p);
    assert_int_equal(f->results, want); /* no second call from free */
    return f->last_status;
}

static void test_fixed_identity(void **state)
{
    fixture_t *f = *state;
    char id[CP2P_PEER_ID_STRMAX];
    assert_int_equal(cp2p_peer_id_to_string(&f->hp.b_id, id, sizeof id), 0);
    assert_string_equal(id, CP2P_PERF_SERVER_PEER_ID);
}

static void test_exact_counts(void **state)
{
    fixture_t *f = *state;
    /* Sizes around the chunk and Noise frame boundaries, and zero. */
    assert_int_equal(perf_run(f, 0, 0), 0);
    assert_int_equal(perf_run(f, 1, 0), 0);
    assert_int_equal(perf_run(f, 0, 1), 0);
    assert_int_equal(perf_run(f, 3 * 1024 * 1024 + 5, 0), 0);
    assert_int_equal(perf_run(f, 0, 5 * 1024 * 1024 + 7), 0);
    assert_int_equal(perf_run(f, 65519, 262145), 0);
    cp2p_perf_server_stats_t st;
    cp2p_perf_server_stats(f->srv, &st);
    assert_int_equal(st.streams, 6);
    assert_int_equal(st.served, 6);
    assert_int_equal(st.malformed, 0);
}

static void test_concurrent(void **state)
{
    fixture_t *f = *state;
    cp2p_perf_t *p[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(
            cp2p_perf_start(f->hp.a, &f->hp.b_id, 300000 + i, 200000 - i, on_result, f, &p[i]), 0);
    run_until(f, &f->results, 8);
    for (int i = 0; i < 8; i++) {
        uint64_t u, d;
        cp2p_perf_progress(p[i], &u, &d);
        assert_int_equal(u, 300000 + i);
        assert_int_equal(d, 200000 - i);
        cp2p_perf_free(p[i]);
    }
    assert_int_equal(f->last_status, 0);
}

/* ---- a raw stream, to send what the client never would ---- */

static void raw_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    fixture_t *f = arg;
    if (status == 0) {
        f->raw_bytes += n;
        return;
    }
    f->raw_status = status;
    f->raw_ended = 1;
    cp2p_stream_unref(s);
    f->raw = NULL;
}

static void raw_opened(int status, cp2p_stream_t *s, void *arg)
{
    fixture_t *f = arg;
    assert_int_equal(status, 0);
    f->raw = s;
    f->raw_opened = 1;
    assert_int_equal(cp2p_stream_read_start(s, raw_read, f), 0);
}

static void send_raw(fixture_t *f, const uint8_t *p, size_t n)
{
    static const char *const protos[] = {CP2P_PERF_PROTOCOL_ID};
    f->raw_opened = f->raw_ended = 0;
    f->raw_bytes = 0;
    assert_int_equal(cp2p_host_new_stream(f->hp.a, &f->hp.b_id, protos, 1, raw_opened, f), 0);
    run_until(f, &f->raw_opened, 1);
    if (n)
        assert_int_equal(cp2p_stream_write(f->raw, p, n, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_close_write(f->raw), 0);
    run_until(f, &f->raw_ended, 1);
}

static void test_short_header(void **state)
{
    fixture_t *f = *state;
    static const uint8_t five[5] = {0, 0, 0, 0, 0};
    send_raw(f, five, sizeof five);
    assert_int_equal(f->raw_status, CP2P_ERESET);
    assert_int_equal(f->raw_bytes, 0);
    send_raw(f, NULL, 0);
    assert_int_equal(f->raw_status, CP2P_ERESET);
    cp2p_perf_server_stats_t st;
    cp2p_perf_server_stats(f->srv, &st);
    assert_int_equal(st.malformed, 2);
    /* The connection and the server are fine: a real run still works. */
    assert_int_equal(perf_run(f, 1000, 2000), 0);
    cp2p_perf_server_stats(f->srv, &st);
    assert_int_equal(st.served, 1);
}

static void test_raw_exchange(void **state)
{
    fixture_t *f = *state;
    /* Header asking 70000 bytes, then 9 bytes of upload in the same write. */
    uint8_t msg[17] = {0, 0, 0, 0, 0, 1, 0x11, 0x70};
    send_raw(f, msg, sizeof msg);
    assert_int_equal(f->raw_status, CP2P_ECLOSED);
    assert_int_equal(f->raw_bytes, 70000);
}

/* ---- a server that sends more than it was asked ---- */

static void greedy_written(cp2p_stream_t *s, int status, void *arg)
{
    cp2p_stream_close_write(s);
    cp2p_stream_unref(s);
}

static void greedy_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    fixture_t *f = arg;
    static uint8_t junk[64];
    if (status == 0)
        return;
    cp2p_stream_read_stop(s);
    if (status != CP2P_ECLOSED || cp2p_stream_write(s, junk, 10 + f->extra, greedy_written, f))
        cp2p_stream_unref(s);
}

static void greedy_handler(cp2p_stream_t *s, void *arg)
{
    if (cp2p_stream_read_start(s, greedy_read, arg) < 0)
        cp2p_stream_unref(s);
}

static void test_server_sends_too_much(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(cp2p_host_set_handler(f->hp.b, CP2P_PERF_PROTOCOL_ID, greedy_handler, f), 0);
    f->extra = 1;
    assert_int_equal(perf_run(f, 100, 10), CP2P_EPROTO);
    f->extra = 0;
    assert_int_equal(perf_run(f, 100, 11), CP2P_EPROTO); /* too few */
    assert_int_equal(perf_run(f, 100, 10), 0);
}

static void test_cancel(void **state)
{
    fixture_t *f = *state;
    cp2p_perf_t *p;
    assert_int_equal(cp2p_perf_start(f->hp.a, &f->hp.b_id, 1 << 20, 1 << 20, on_result, f, &p), 0);
    cp2p_perf_free(p); /* while the stream is still opening */
    assert_int_equal(f->results, 0); /* told on a later turn, never inside the free */
    world_run_until_n(&f->hp.w, &f->results, 1, 1000);
    assert_int_equal(f->last_status, CP2P_ECANCELED);
    world_run_for(&f->hp.w, 300);
    assert_int_equal(f->results, 1);
    /* and once under way */
    assert_int_equal(cp2p_perf_start(f->hp.a, &f->hp.b_id, 1ull << 40, 0, on_result, f, &p), 0);
    world_run_for(&f->hp.w, 200);
    uint64_t u;
    cp2p_perf_progress(p, &u, NULL);
    assert_true(u > 0);
    cp2p_perf_free(p);
    assert_int_equal(f->results, 1);
    world_run_until_n(&f->hp.w, &f->results, 2, 1000);
    assert_int_equal(f->last_status, CP2P_ECANCELED);
    assert_int_equal(perf_run(f, 10, 10), 0);
}

/* Freed between any two loop turns of a run, the client and then the
 * server: writes whose done callbacks the stream still owes are let go of
 * safely, and each run is told once. */
static void test_free_at_every_turn(void **state)
{
    fixture_t *f = *state;
    for (int k = 0; k < 60; k++) {
        cp2p_perf_t *p;
        int want = f->results + 1;
        assert_int_equal(cp2p_perf_start(f->hp.a, &f->hp.b_id, 256 << 10, 256 << 10, on_result,
                                         f, &p), 0);
        for (int i = 0; i < k && f->results < want; i++)
            uv_run(&f->hp.w.loop, UV_RUN_ONCE);
        cp2p_perf_free(p);
        run_until(f, &f->results, want);
    }
    for (int k = 0; k < 60; k++) {
        cp2p_perf_t *p;
        int want = f->results + 1;
        assert_int_equal(cp2p_perf_start(f->hp.a, &f->hp.b_id, 64 << 10, 1 << 20, on_result, f,
                                         &p), 0);
        for (int i = 0; i < k && f->results < want; i++)
            uv_run(&f->hp.w.loop, UV_RUN_ONCE);
        cp2p_perf_server_free(f->srv);
        assert_int_equal(cp2p_perf_enable(f->hp.b, &f->srv), 0);
        run_until(f, &f->results, want);
        cp2p_perf_free(p);
    }
    assert_int_equal(perf_run(f, 10, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fixed_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_sends_too_much, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_at_every_turn, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
