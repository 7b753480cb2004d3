/* DCUtR on hosts over loopback, through a real circuit relay v2: A dials B
 * through the relay, B runs the exchange, both dial (a simultaneous open on
 * the listen ports), the new direct connection carries new streams and the
 * relayed one closes after its grace period. Then the failures: a peer with
 * nothing to dial stays relayed after three attempts and says so; a
 * hostile A (a huge message, the wrong type, endless messages) breaks only
 * its own punch. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host_harness.h"
#include "cp2p/dcutr.h"
#include "cp2p/identify.h"
#include "cp2p/relay.h"

typedef struct node {
    cp2p_host_t *h;
    cp2p_relay_client_t *rc;
    cp2p_identify_t *id;
    cp2p_dcutr_t *d;
    int results, ok, last_status, last_attempts, initiator, reserved;
    int direct_remote_relayed; /* the result's connection went through a relay */
} node_t;

static void on_result(const cp2p_dcutr_result_t *r, void *arg)
{
    node_t *n = arg;
    n->results++;
    n->ok += r->status == 0;
    n->last_status = r->status;
    n->last_attempts = r->attempts;
    n->initiator = r->initiator;
    if (r->conn)
        n->direct_remote_relayed = cp2p_conn_is_relayed(r->conn);
}

static void on_relay_event(const cp2p_relay_event_t *ev, void *arg)
{
    if (ev->type == CP2P_RELAY_RESERVED)
        ((node_t *)arg)->reserved++;
}

static void node_new(world_t *w, node_t *n, int dcutr, int tcp)
{
    memset(n, 0, sizeof *n);
    n->h = host_new(w, NULL);
    cp2p_relay_client_config_t rcfg = {.on_event = on_relay_event, .event_arg = n};
    assert_int_equal(cp2p_relay_client_enable(n->h, &rcfg, &n->rc), 0);
    assert_int_equal(cp2p_identify_enable(n->h, NULL, &n->id), 0);
    assert_int_equal(cp2p_host_set_handler(n->h, ECHO_PROTO, echo_handler, NULL), 0);
    if (dcutr) {
        cp2p_dcutr_config_t cfg = {.allow_private = 1, .relay_grace_ms = 300,
                                   .on_result = on_result, .arg = n};
        assert_int_equal(cp2p_dcutr_enable(n->h, &cfg, &n->d), 0);
    }
    if (tcp) {
        unsigned port;
        host_listen(n->h, &port, NULL);
    }
}

static void node_end(world_t *w, node_t *n)
{
    if (n->d)
        cp2p_dcutr_free(n->d);
    cp2p_identify_free(n->id);
    int done = 0;
    cp2p_relay_client_close(n->rc, set_flag, &done);
    world_run_until(w, &done, 5000);
    host_close_wait(w, n->h);
}

typedef struct relay_node {
    cp2p_host_t *h;
    cp2p_relay_t *r;
    cp2p_multiaddr_t addr;
} relay_node_t;

static void relay_new(world_t *w, relay_node_t *n)
{
    n->h = host_new(w, NULL);
    cp2p_relay_config_t cfg = {.no_limit = 1};
    assert_int_equal(cp2p_relay_start(n->h, &cfg, &n->r), 0);
    unsigned port;
    host_listen(n->h, &port, &n->addr);
}

static void relay_end(world_t *w, relay_node_t *n)
{
    int done = 0;
    cp2p_relay_close(n->r, set_flag, &done);
    world_run_until(w, &done, 5000);
    host_close_wait(w, n->h);
    cp2p_multiaddr_free(&n->addr);
}

static void circuit_addr(const relay_node_t *r, const cp2p_host_t *target, cp2p_multiaddr_t *out)
{
    cp2p_buf_t s = {0};
    assert_int_equal(cp2p_multiaddr_to_string(&r->addr, &s), 0);
    char txt[512], id[CP2P_PEER_ID_STRMAX] = "";
    if (target)
        cp2p_peer_id_to_string(cp2p_host_peer_id(target), id, sizeof id);
    snprintf(txt, sizeof txt, "%.*s/p2p-circuit%s%s", (int)s.len, (char *)s.data,
             target ? "/p2p/" : "", id);
    cp2p_buf_free(&s);
    assert_int_equal(cp2p_multiaddr_parse(txt, out), 0);
}

/* B reserves on r; A dials B through it. */
static void relay_connect(world_t *w, relay_node_t *r, node_t *a, node_t *b)
{
    cp2p_multiaddr_t l;
    circuit_addr(r, NULL, &l);
    assert_int_equal(cp2p_host_listen(b->h, &l), 0);
    cp2p_multiaddr_free(&l);
    world_run_until_n(w, &b->reserved, 1, 10000);
    cp2p_multiaddr_t to;
    circuit_addr(r, b->h, &to);
    assert_int_equal(host_connect_wait(w, a->h, &to), 0);
    cp2p_multiaddr_free(&to);
}

static void test_punch_direct(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    relay_new(&w, &r);
    node_t a, b;
    node_new(&w, &a, 1, 1);
    node_new(&w, &b, 1, 1);
    relay_connect(&w, &r, &a, &b);
    const cp2p_peer_id_t *bid = cp2p_host_peer_id(b.h), *aid = cp2p_host_peer_id(a.h);
    /* Before the punch, A's only way to B is the circuit. */
    world_run_until_n(&w, &b.results, 1, 20000);
    assert_int_equal(b.last_status, 0);
    /* A reports each of B's attempts; one of them made the connection. */
    world_run_until_n(&w, &a.ok, 1, 20000);
    assert_int_equal(a.last_status, 0);
    assert_true(b.initiator);
    assert_false(a.initiator);
    assert_false(a.direct_remote_relayed);
    assert_false(b.direct_remote_relayed);
    assert_true(b.last_attempts >= 1);
    /* New streams go to the direct connection. */
    cp2p_conn_t *ab = cp2p_host_conn_to(a.h, bid), *ba = cp2p_host_conn_to(b.h, aid);
    assert_non_null(ab);
    assert_non_null(ba);
    assert_false(cp2p_conn_is_relayed(ab));
    assert_false(cp2p_conn_is_relayed(ba));
    client_t c;
    client_start(a.h, bid, &c, 100000);
    world_run_until(&w, &c.opened, 5000);
    assert_int_equal(c.open_status, 0);
    assert_false(cp2p_conn_is_relayed(cp2p_stream_conn(c.s)));
    world_run_until(&w, &c.finished, 10000);
    assert_int_equal(c.received, 100000);
    assert_false(c.corrupt);
    cp2p_stream_unref(c.s);
    /* After the grace period the circuit is gone: A keeps the relay and B. */
    world_run_for(&w, 1000);
    assert_int_equal(cp2p_host_conn_count(a.h), 2);
    assert_int_equal(cp2p_host_conn_count(b.h), 2);
    echo_roundtrip(&w, b.h, aid, 1000);
    cp2p_dcutr_stats_t st;
    cp2p_dcutr_stats(b.d, &st);
    assert_int_equal(st.direct, 1);
    assert_int_equal(st.failed, 0);
    node_end(&w, &a);
    node_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

/* A listens on nothing but the relay: B has no address to dial, each
 * attempt fails, and after three the connection stays relayed and works. */
static void test_punch_fails_stays_relayed(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    relay_new(&w, &r);
    node_t a, b;
    node_new(&w, &a, 1, 0);
    node_new(&w, &b, 1, 1);
    relay_connect(&w, &r, &a, &b);
    world_run_until_n(&w, &b.results, 1, 20000);
    assert_true(b.last_status < 0);
    assert_int_equal(b.last_attempts, CP2P_DCUTR_DEFAULT_ATTEMPTS);
    cp2p_dcutr_stats_t st;
    cp2p_dcutr_stats(b.d, &st);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.attempts, CP2P_DCUTR_DEFAULT_ATTEMPTS);
    assert_int_equal(st.direct, 0);
    cp2p_conn_t *ab = cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h));
    assert_non_null(ab);
    assert_true(cp2p_conn_is_relayed(ab));
    echo_roundtrip(&w, a.h, cp2p_host_peer_id(b.h), 1000);
    node_end(&w, &a);
    node_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

/* A hostile A: its dcutr handler answers with what the test says. */
static const uint8_t *hostile_bytes;
static size_t hostile_len;
static int hostile_repeat;

static void hostile_written(cp2p_stream_t *s, int status, void *arg)
{
    if (status == 0 && hostile_repeat-- > 0 &&
        cp2p_stream_write(s, hostile_bytes, hostile_len, hostile_written, NULL) == 0)
        return;
    cp2p_stream_unref(s);
}

static void hostile_handler(cp2p_stream_t *s, void *arg)
{
    if (cp2p_stream_write(s, hostile_bytes, hostile_len, hostile_written, NULL))
        cp2p_stream_unref(s);
}

static void hostile_case(const uint8_t *bytes, size_t len, int repeat)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    relay_new(&w, &r);
    node_t a, b;
    node_new(&w, &a, 0, 1);
    node_new(&w, &b, 1, 1);
    hostile_bytes = bytes;
    hostile_len = len;
    hostile_repeat = repeat;
    assert_int_equal(cp2p_host_set_handler(a.h, CP2P_DCUTR_PROTOCOL_ID, hostile_handler, NULL), 0);
    relay_connect(&w, &r, &a, &b);
    world_run_until_n(&w, &b.results, 1, 20000);
    assert_true(b.last_status < 0);
    cp2p_dcutr_stats_t st;
    cp2p_dcutr_stats(b.d, &st);
    assert_int_equal(st.protocol_errors, 1);
    assert_int_equal(st.attempts, 1); /* a broken remote is not tried again */
    /* The relayed connection itself is fine. */
    echo_roundtrip(&w, a.h, cp2p_host_peer_id(b.h), 1000);
    node_end(&w, &a);
    node_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

static void test_hostile_huge(void **state)
{
    static uint8_t huge[8192];
    huge[0] = 0xff;
    huge[1] = 0x3f; /* 8191 */
    hostile_case(huge, sizeof huge, 0);
}

static void test_hostile_wrong_type(void **state)
{
    static const uint8_t sync[] = {0x03, 0x08, 0xac, 0x02};
    hostile_case(sync, sizeof sync, 0);
}

static void test_hostile_endless(void **state)
{
    /* CONNECT for 1.2.3.4 (not dialled: B gives up on the second one) */
    static const uint8_t connect[] = {0x0c, 0x08, 0x64, 0x12, 0x08, 0x04, 0x01, 0x02,
                                      0x03, 0x04, 0x06, 0x0f, 0xa1};
    hostile_case(connect, sizeof connect, 1000);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_punch_direct),
        cmocka_unit_test(test_punch_fails_stays_relayed),
        cmocka_unit_test(test_hostile_huge),
        cmocka_unit_test(test_hostile_wrong_type),
        cmocka_unit_test(test_hostile_endless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
