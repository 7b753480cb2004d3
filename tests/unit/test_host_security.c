/* Hosts with a list of security protocols: each of noise, tls and plaintext
 * connects and echoes, a preference the listener lacks falls back, and no
 * common protocol fails the dial. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host_harness.h"

typedef struct pair {
    world_t w;
    cp2p_host_t *a, *b; /* a dials b */
    cp2p_multiaddr_t b_addr;
} pair_t;

static void pair_new(pair_t *p, const char *const *a_sec, size_t na, const char *const *b_sec,
                     size_t nb, const char *mux)
{
    const char *const muxers[] = {mux};
    cp2p_host_config_t ac = {.security = a_sec, .n_security = na};
    cp2p_host_config_t bc = {.security = b_sec, .n_security = nb};
    if (mux) {
        ac.muxers = bc.muxers = muxers;
        ac.n_muxers = bc.n_muxers = 1;
    }
    world_init(&p->w);
    p->a = host_new(&p->w, &ac);
    p->b = host_new(&p->w, &bc);
    assert_int_equal(cp2p_host_set_handler(p->b, ECHO_PROTO, echo_handler, NULL), 0);
    unsigned port;
    host_listen(p->b, &port, &p->b_addr);
}

static void pair_end(pair_t *p)
{
    cp2p_multiaddr_free(&p->b_addr);
    host_close_wait(&p->w, p->a);
    host_close_wait(&p->w, p->b);
    world_end(&p->w);
}

/* Connect a to b over sec and echo through it, muxed by mux (NULL: the default list). */
static void echo_over(const char *sec, const char *mux, const char *expect_mux)
{
    const char *const list[] = {sec};
    pair_t p;
    pair_new(&p, list, 1, list, 1, mux);
    assert_int_equal(host_connect_wait(&p.w, p.a, &p.b_addr), 0);
    cp2p_conn_t *c = cp2p_host_conn_to(p.a, cp2p_host_peer_id(p.b));
    assert_non_null(c);
    assert_string_equal(c->secvt->protocol_id, sec);
    assert_string_equal(cp2p_conn_muxer_id(c), expect_mux);
    echo_roundtrip(&p.w, p.a, cp2p_host_peer_id(p.b), 1 << 20);
    /* The stream counters saw it: one stream each way, the payload twice. */
    world_run_for(&p.w, 100);
    cp2p_host_stats_t sa, sb;
    cp2p_host_stats(p.a, &sa);
    cp2p_host_stats(p.b, &sb);
    assert_int_equal(sa.streams_opened_out, 1);
    assert_int_equal(sa.streams_opened_in, 0);
    assert_int_equal(sb.streams_opened_in, 1);
    assert_int_equal(sa.streams_open, 0);
    assert_int_equal(sb.streams_open, 0);
    assert_int_equal(sa.bytes_out, 1 << 20);
    assert_int_equal(sa.bytes_in, 1 << 20);
    assert_int_equal(sb.bytes_in, 1 << 20);
    assert_int_equal(sb.bytes_out, 1 << 20);
    assert_int_equal(sa.streams_bad + sb.streams_bad, 0);
    pair_end(&p);
}

static void test_noise(void **state)
{
    echo_over("/noise", NULL, "/yamux/1.0.0");
}

static void test_tls(void **state)
{
    echo_over("/tls/1.0.0", NULL, "/yamux/1.0.0");
}

/* ALPN must not settle on yamux when the hosts only speak mplex. */
static void test_tls_mplex(void **state)
{
    echo_over("/tls/1.0.0", "/mplex/6.7.0", "/mplex/6.7.0");
}

static void test_plaintext(void **state)
{
    echo_over("/plaintext/2.0.0", "/mplex/6.7.0", "/mplex/6.7.0");
}

static void test_preference_falls_back(void **state)
{
    const char *const a_sec[] = {"/tls/1.0.0", "/noise"};
    const char *const b_sec[] = {"/noise"};
    pair_t p;
    pair_new(&p, a_sec, 2, b_sec, 1, NULL);
    assert_int_equal(host_connect_wait(&p.w, p.a, &p.b_addr), 0);
    cp2p_conn_t *c = cp2p_host_conn_to(p.a, cp2p_host_peer_id(p.b));
    assert_non_null(c);
    assert_string_equal(c->secvt->protocol_id, "/noise");
    echo_roundtrip(&p.w, p.a, cp2p_host_peer_id(p.b), 4096);
    pair_end(&p);
}

static void test_no_common_security(void **state)
{
    const char *const a_sec[] = {"/tls/1.0.0", "/plaintext/2.0.0"};
    const char *const b_sec[] = {"/noise"};
    pair_t p;
    pair_new(&p, a_sec, 2, b_sec, 1, NULL);
    assert_int_equal(host_connect_wait(&p.w, p.a, &p.b_addr), CP2P_ENEGOTIATE);
    assert_null(cp2p_host_conn_to(p.a, cp2p_host_peer_id(p.b)));
    pair_end(&p);
}

static void test_unknown_security(void **state)
{
    const char *const sec[] = {"/noise", "/secio/1.0.0"};
    cp2p_host_config_t cfg = {.security = sec, .n_security = 2};
    uv_loop_t loop;
    cp2p_host_t *h;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(cp2p_host_new(&loop, &cfg, &h), CP2P_EUNSUPPORTED);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noise),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_tls_mplex),
        cmocka_unit_test(test_plaintext),
        cmocka_unit_test(test_preference_falls_back),
        cmocka_unit_test(test_no_common_security),
        cmocka_unit_test(test_unknown_security),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
