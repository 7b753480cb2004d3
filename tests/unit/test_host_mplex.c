/* mplex has no flow control: a stream whose reader stopped makes its
 * connection stop reading the socket (head-of-line blocking), so nothing is
 * buffered without bound and nothing is reset; reading again delivers all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host_harness.h"

#define TOTAL (96u << 20)

typedef struct sink {
    cp2p_stream_t *s;
    size_t received;
    int corrupt, done, status;
} sink_t;

/* B keeps the stream without reading it. */
static void hold_handler(cp2p_stream_t *s, void *arg)
{
    ((sink_t *)arg)->s = s;
}

static void sink_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    sink_t *k = arg;
    if (status == 0) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pattern(k->received + i))
                k->corrupt = 1;
        k->received += n;
        return;
    }
    k->status = status;
    k->done = 1;
    if (status == CP2P_ECLOSED)
        cp2p_stream_close_write(s);
}

static void test_stopped_reader_pauses_connection(void **state)
{
    const char *const sec[] = {"/plaintext/2.0.0"}; /* fast: the test is about the muxer */
    const char *const mux[] = {"/mplex/6.7.0"};
    cp2p_host_config_t cfg = {.security = sec, .n_security = 1, .muxers = mux, .n_muxers = 1};
    world_t w;
    world_init(&w);
    cp2p_host_t *a = host_new(&w, &cfg), *b = host_new(&w, &cfg);
    sink_t k = {0};
    assert_int_equal(cp2p_host_set_handler(b, ECHO_PROTO, hold_handler, &k), 0);
    unsigned port;
    cp2p_multiaddr_t b_addr;
    host_listen(b, &port, &b_addr);
    assert_int_equal(host_connect_wait(&w, a, &b_addr), 0);

    client_t c;
    client_start(a, cp2p_host_peer_id(b), &c, TOTAL);
    /* Until the sender stops making progress: every buffer on the way is full. */
    size_t last = (size_t)-1;
    while (c.sent != last) {
        last = c.sent;
        world_run_for(&w, 500);
    }
    assert_non_null(k.s);
    assert_false(c.finished); /* not reset */
    assert_true(c.sent < TOTAL - (16u << 20));
    cp2p_conn_t *bc = cp2p_host_conn_to(b, cp2p_host_peer_id(a));
    assert_non_null(bc);
    assert_int_equal(bc->holds, 1);

    assert_int_equal(cp2p_stream_read_start(k.s, sink_read, &k), 0);
    assert_int_equal(k.received, 0); /* what is buffered comes on a later turn */
    world_run_for(&w, 20);
    assert_true(k.received > 0);
    assert_int_equal(bc->holds, 0);
    world_run_until(&w, &c.finished, 30000);
    assert_int_equal(c.read_status, CP2P_ECLOSED);
    assert_true(k.done);
    assert_int_equal(k.status, CP2P_ECLOSED);
    assert_int_equal(k.received, TOTAL);
    assert_false(k.corrupt);

    cp2p_stream_unref(c.s);
    cp2p_stream_unref(k.s);
    cp2p_multiaddr_free(&b_addr);
    host_close_wait(&w, a);
    host_close_wait(&w, b);
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stopped_reader_pauses_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
