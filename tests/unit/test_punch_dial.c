/* The swarm's hole punching dials (swarm.h cp2p_swarm_dial_with): the
 * upgrade role forced either way, an accepted connection taking the role
 * expected for its address, dials from the listen port, "direct only", and
 * two hosts dialling each other at once from their listen ports (DCUtR's
 * simultaneous open without the relay) ending on one working connection. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host_harness.h"
#include "host/host_priv.h"

typedef struct dialled {
    int done, status;
    cp2p_conn_t *c;
} dialled_t;

static void on_dialled(int status, cp2p_conn_t *c, void *arg)
{
    dialled_t *d = arg;
    d->done = 1;
    d->status = status;
    d->c = c;
}

/* /ip4/127.0.0.1/tcp/<port> */
static cp2p_multiaddr_t tcp_addr(unsigned port)
{
    char s[64];
    cp2p_multiaddr_t m;
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", port);
    assert_int_equal(cp2p_multiaddr_parse(s, &m), 0);
    return m;
}

static unsigned port_of(const cp2p_multiaddr_t *m)
{
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(m, CP2P_MA_TCP, &c), 0);
    return (unsigned)(c.value[0] << 8 | c.value[1]);
}

static const cp2p_host_config_t quick = {.negotiate_timeout_ms = 1500, .handshake_timeout_ms = 1500};

/* b dials a as the server of the upgrade; a's listener takes b's
 * connection as its client because it expects it. Then the same dial with
 * no expectation: two servers, nothing happens until the deadline. */
static void test_forced_role(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *a = host_new(&w, &quick), *b = host_new(&w, &quick);
    unsigned pa, pb;
    host_listen(a, &pa, NULL);
    host_listen(b, &pb, NULL);
    cp2p_multiaddr_t to_a = tcp_addr(pa), from_b = tcp_addr(pb);
    assert_int_equal(cp2p_swarm_expect_inbound(cp2p_host_swarm(a), &from_b, 1, 5000), 0);
    cp2p_swarm_dial_opts_t o = {.role = -1, .reuse_port = 2, .direct = 1};
    dialled_t d = {0};
    assert_int_equal(cp2p_swarm_dial_with(cp2p_host_swarm(b), cp2p_host_peer_id(a), &to_a, 1, &o,
                                          on_dialled, &d), 0);
    world_run_until(&w, &d.done, 5000);
    assert_int_equal(d.status, 0);
    assert_false(cp2p_conn_is_inbound(d.c));
    assert_int_equal(d.c->initiator, 0);
    /* from b's listen port, as a sees it */
    assert_int_equal(port_of(cp2p_conn_local_addr(d.c)), pb);
    world_run_for(&w, 100); /* a's side of the handshake ends after b's */
    cp2p_conn_t *ca = cp2p_host_conn_to(a, cp2p_host_peer_id(b));
    assert_non_null(ca);
    assert_true(cp2p_conn_is_inbound(ca));
    assert_int_equal(ca->initiator, 1);
    assert_int_equal(port_of(cp2p_conn_remote_addr(ca)), pb);
    assert_int_equal(cp2p_host_set_handler(b, ECHO_PROTO, echo_handler, NULL), 0);
    echo_roundtrip(&w, a, cp2p_host_peer_id(b), 100000);

    /* direct only: the open connection is the answer */
    dialled_t again = {0};
    assert_int_equal(cp2p_swarm_dial_with(cp2p_host_swarm(b), cp2p_host_peer_id(a), &to_a, 1, &o,
                                          on_dialled, &again), 0);
    world_run_until(&w, &again.done, 5000);
    assert_int_equal(again.status, 0);
    assert_ptr_equal(again.c, d.c);
    cp2p_conn_close(d.c);
    world_run_for(&w, 200);
    assert_null(cp2p_host_conn_to(a, cp2p_host_peer_id(b)));

    /* Two servers: neither speaks first. The 4-tuple of the last
     * connection may still be in TIME_WAIT: from any port then. */
    cp2p_host_t *c = host_new(&w, &quick);
    o.reuse_port = 1;
    dialled_t fail = {0};
    assert_int_equal(cp2p_swarm_dial_with(cp2p_host_swarm(c), cp2p_host_peer_id(a), &to_a, 1, &o,
                                          on_dialled, &fail), 0);
    world_run_until(&w, &fail.done, 8000);
    assert_int_not_equal(fail.status, 0);
    cp2p_multiaddr_free(&to_a);
    cp2p_multiaddr_free(&from_b);
    host_close_wait(&w, a);
    host_close_wait(&w, b);
    host_close_wait(&w, c);
    world_end(&w);
}

/* DCUtR's punch without the relay: each host dials the other's listen
 * address from its own listen port at the same moment, a as the client and b
 * as the server, each expecting the other's dial. Whether the SYNs cross or
 * one listener answers first, one connection comes up that both agree on. */
static void test_simultaneous_punch(void **state)
{
    for (int round = 0; round < 5; round++) {
        world_t w;
        world_init(&w);
        cp2p_host_t *a = host_new(&w, &quick), *b = host_new(&w, &quick);
        unsigned pa, pb;
        host_listen(a, &pa, NULL);
        host_listen(b, &pb, NULL);
        cp2p_multiaddr_t addr_a = tcp_addr(pa), addr_b = tcp_addr(pb);
        assert_int_equal(cp2p_swarm_expect_inbound(cp2p_host_swarm(a), &addr_b, 1, 5000), 0);
        assert_int_equal(cp2p_swarm_expect_inbound(cp2p_host_swarm(b), &addr_a, -1, 5000), 0);
        cp2p_swarm_dial_opts_t oa = {.role = 1, .reuse_port = 2, .direct = 1};
        cp2p_swarm_dial_opts_t ob = {.role = -1, .reuse_port = 2, .direct = 1};
        dialled_t da = {0}, db = {0};
        /* b first in even rounds, a first in odd ones */
        if (round & 1)
            assert_int_equal(cp2p_swarm_dial_with(cp2p_host_swarm(a), cp2p_host_peer_id(b), &addr_b, 1,
                                                  &oa, on_dialled, &da), 0);
        assert_int_equal(cp2p_swarm_dial_with(cp2p_host_swarm(b), cp2p_host_peer_id(a), &addr_a, 1, &ob,
                                              on_dialled, &db), 0);
        if (!(round & 1))
            assert_int_equal(cp2p_swarm_dial_with(cp2p_host_swarm(a), cp2p_host_peer_id(b), &addr_b, 1,
                                                  &oa, on_dialled, &da), 0);
        world_run_until(&w, &da.done, 5000);
        world_run_until(&w, &db.done, 5000);
        world_run_for(&w, 100); /* an accepted connection may trail a failed dial */
        cp2p_conn_t *ab = cp2p_host_conn_to(a, cp2p_host_peer_id(b));
        cp2p_conn_t *ba = cp2p_host_conn_to(b, cp2p_host_peer_id(a));
        assert_non_null(ab);
        assert_non_null(ba);
        assert_int_equal(ab->initiator, 1);
        assert_int_equal(ba->initiator, 0);
        assert_int_equal(port_of(cp2p_conn_local_addr(ab)), pa);
        assert_int_equal(port_of(cp2p_conn_remote_addr(ab)), pb);
        assert_int_equal(cp2p_host_set_handler(a, ECHO_PROTO, echo_handler, NULL), 0);
        echo_roundtrip(&w, b, cp2p_host_peer_id(a), 10000);
        cp2p_multiaddr_free(&addr_a);
        cp2p_multiaddr_free(&addr_b);
        host_close_wait(&w, a);
        host_close_wait(&w, b);
        world_end(&w);
    }
}

/* The expectation table is bounded: the oldest expectation gives way. */
static void test_expect_bounded(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *a = host_new(&w, NULL);
    for (unsigned i = 0; i < 1000; i++) {
        cp2p_multiaddr_t m = tcp_addr(1000 + i);
        assert_int_equal(cp2p_swarm_expect_inbound(cp2p_host_swarm(a), &m, 1, 1000 + i), 0);
        cp2p_multiaddr_free(&m);
    }
    cp2p_multiaddr_t bad;
    assert_int_equal(cp2p_multiaddr_parse("/dns4/example.com/tcp/1", &bad), 0);
    assert_int_equal(cp2p_swarm_expect_inbound(cp2p_host_swarm(a), &bad, 1, 1000), CP2P_EINVAL);
    cp2p_multiaddr_free(&bad);
    host_close_wait(&w, a);
    world_end(&w);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forced_role),
        cmocka_unit_test(test_simultaneous_punch),
        cmocka_unit_test(test_expect_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
