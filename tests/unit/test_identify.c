/* Identify: the message codec (wire vectors, merging of split messages,
 * limits) and two hosts identifying each other, then a push. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "cp2p/error.h"
#include "cp2p/identify.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peerstore.h"

/* Field tags: protocolVersion 5, agentVersion 6, publicKey 1, listenAddrs 2,
 * observedAddr 4, protocols 3, signedPeerRecord 8. */
static const uint8_t VECTOR[] = {
    30,                                                   /* length prefix */
    0x2a, 10, 'i', 'p', 'f', 's', '/', '0', '.', '1', '.', '0',
    0x32, 2, 'j', 's',
    0x1a, 2, '/', 'a',
    0x12, 8, 0x04, 127, 0, 0, 1, 0x06, 0x10, 0x92, /* /ip4/127.0.0.1/tcp/4242 */
};

static void test_decode_vector(void **state)
{
    cp2p_identify_msg_t m;
    assert_int_equal(cp2p_identify_decode(VECTOR, sizeof VECTOR, &m), 0);
    assert_string_equal(m.protocol_version, "ipfs/0.1.0");
    assert_string_equal(m.agent_version, "js");
    assert_int_equal(m.n_protocols, 1);
    assert_string_equal(m.protocols[0], "/a");
    assert_int_equal(m.n_listen_addrs, 1);
    assert_int_equal(m.listen_addr_lens[0], 8);
    assert_memory_equal(m.listen_addrs[0], VECTOR + 23, 8);
    assert_null(m.public_key);
    assert_null(m.signed_peer_record);
    cp2p_identify_msg_free(&m);
}

static void test_roundtrip_and_merge(void **state)
{
    uint8_t a1[] = {1, 2, 3}, a2[] = {4, 5};
    uint8_t *addrs[] = {a1, a2};
    size_t lens[] = {3, 2};
    char *protos[] = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"};
    uint8_t key[] = {8, 1, 18, 0};
    cp2p_identify_msg_t m = {
        .protocol_version = "ipfs/0.1.0",
        .agent_version = "cp2p/0.1.0",
        .public_key = key,
        .public_key_len = sizeof key,
        .listen_addrs = addrs,
        .listen_addr_lens = lens,
        .n_listen_addrs = 2,
        .observed_addr = a2,
        .observed_addr_len = 2,
        .protocols = protos,
        .n_protocols = 2,
        .signed_peer_record = a1,
        .signed_peer_record_len = 3,
    };
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_identify_encode(&m, &b), 0);
    assert_int_equal(b.data[0], b.len - 1);
    /* A second message, as go-libp2p sends when the first would be too large. */
    cp2p_identify_msg_t m2 = {.agent_version = "later", .protocols = protos, .n_protocols = 1};
    assert_int_equal(cp2p_identify_encode(&m2, &b), 0);

    cp2p_identify_msg_t d;
    assert_int_equal(cp2p_identify_decode(b.data, b.len, &d), 0);
    assert_string_equal(d.protocol_version, "ipfs/0.1.0");
    assert_string_equal(d.agent_version, "later");
    assert_int_equal(d.public_key_len, sizeof key);
    assert_memory_equal(d.public_key, key, sizeof key);
    assert_int_equal(d.n_listen_addrs, 2);
    assert_memory_equal(d.listen_addrs[1], a2, 2);
    assert_int_equal(d.observed_addr_len, 2);
    assert_int_equal(d.signed_peer_record_len, 3);
    assert_int_equal(d.n_protocols, 3);
    assert_string_equal(d.protocols[2], "/ipfs/ping/1.0.0");
    cp2p_identify_msg_free(&d);

    /* cut anywhere inside the second message: truncated */
    assert_int_equal(cp2p_identify_decode(b.data, b.len - 1, &d), CP2P_ETRUNC);
    assert_null(d.agent_version);
    cp2p_buf_free(&b);
}

static void test_limits(void **state)
{
    cp2p_identify_msg_t d;
    assert_int_equal(cp2p_identify_decode(NULL, 0, &d), CP2P_ETRUNC);

    /* more than CP2P_IDENTIFY_MAX_MESSAGES messages */
    cp2p_buf_t b = {0};
    for (int i = 0; i <= CP2P_IDENTIFY_MAX_MESSAGES; i++)
        assert_int_equal(cp2p_buf_append(&b, VECTOR, sizeof VECTOR), 0);
    assert_int_equal(cp2p_identify_decode(b.data, b.len, &d), CP2P_ELIMIT);
    assert_int_equal(cp2p_identify_decode(b.data, b.len - sizeof VECTOR, &d), 0);
    cp2p_identify_msg_free(&d);
    cp2p_buf_reset(&b);

    /* one message over 8 KiB */
    assert_int_equal(cp2p_buf_append_uvarint(&b, CP2P_IDENTIFY_MAX_MESSAGE + 1), 0);
    assert_int_equal(cp2p_identify_decode(b.data, b.len, &d), CP2P_EOVERFLOW);
    cp2p_buf_reset(&b);

    /* too many protocols across messages */
    char *protos[CP2P_IDENTIFY_MAX_PROTOCOLS / 2 + 1];
    for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
        protos[i] = "/p";
    cp2p_identify_msg_t m = {.protocols = protos, .n_protocols = sizeof protos / sizeof protos[0]};
    assert_int_equal(cp2p_identify_encode(&m, &b), 0);
    assert_int_equal(cp2p_identify_encode(&m, &b), 0);
    assert_int_equal(cp2p_identify_decode(b.data, b.len, &d), CP2P_ELIMIT);
    cp2p_buf_free(&b);

    /* not protobuf: field 1 claims more bytes than the message has */
    static const uint8_t bad[] = {3, 0x0a, 5, 1};
    assert_int_equal(cp2p_identify_decode(bad, sizeof bad, &d), CP2P_EPARSE);
    /* wrong wire type for a string */
    static const uint8_t bad2[] = {2, 0x28, 1};
    assert_int_equal(cp2p_identify_decode(bad2, sizeof bad2, &d), CP2P_EPARSE);
}

/* --- two hosts on loopback --- */

typedef struct pair {
    uv_loop_t loop;
    cp2p_host_t *h[2];
    cp2p_identify_t *id[2];
    int identified[2];
    int closed;
} pair_t;

static void timer_noop(uv_timer_t *t)
{
}

static void run_until(pair_t *p, int *flag, int want)
{
    uv_timer_t t;
    uv_timer_init(&p->loop, &t);
    uv_timer_start(&t, timer_noop, 10000, 0);
    while (*flag < want && uv_is_active((uv_handle_t *)&t))
        uv_run(&p->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&p->loop, UV_RUN_NOWAIT);
    assert_true(*flag >= want);
}

static void on_event0(const cp2p_event_t *ev, void *arg)
{
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED)
        ((pair_t *)arg)->identified[0]++;
}

static void on_event1(const cp2p_event_t *ev, void *arg)
{
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED)
        ((pair_t *)arg)->identified[1]++;
}

static void on_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    assert_int_equal(status, 0);
}

static void on_closed(void *arg)
{
    ((pair_t *)arg)->closed++;
}

static void noop_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_stream_reset(s);
    cp2p_stream_unref(s);
}

static void test_hosts_identify_and_push(void **state)
{
    pair_t p = {0};
    uv_loop_init(&p.loop);
    cp2p_host_config_t cfg = {.agent_version = "test-agent/1"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cp2p_host_new(&p.loop, &cfg, &p.h[i]), 0);
        assert_int_equal(cp2p_identify_enable(p.h[i], NULL, &p.id[i]), 0);
    }
    assert_int_equal(cp2p_host_subscribe(p.h[0], on_event0, &p), 0);
    assert_int_equal(cp2p_host_subscribe(p.h[1], on_event1, &p), 0);
    cp2p_multiaddr_t ma;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(cp2p_host_listen(p.h[1], &ma), 0);
    cp2p_multiaddr_free(&ma);
    cp2p_multiaddr_t *addrs;
    size_t n;
    assert_int_equal(cp2p_host_listen_addrs(p.h[1], &addrs, &n), 0);
    assert_int_equal(cp2p_host_connect(p.h[0], &addrs[0], on_connect, &p), 0);
    run_until(&p, &p.identified[0], 1);
    run_until(&p, &p.identified[1], 1);

    /* host 0 learned host 1's agent, protocols, listen address, key and record */
    cp2p_peerstore_t *ps = cp2p_host_peerstore(p.h[0]);
    const cp2p_peer_id_t *b = cp2p_host_peer_id(p.h[1]);
    assert_string_equal(cp2p_peerstore_agent_version(ps, b), "test-agent/1");
    assert_string_equal(cp2p_peerstore_protocol_version(ps, b), CP2P_IDENTIFY_PROTOCOL_VERSION);
    assert_true(cp2p_peerstore_supports(ps, b, CP2P_IDENTIFY_PUSH_PROTOCOL_ID));
    assert_non_null(cp2p_peerstore_pubkey(ps, b));
    size_t rec_len;
    uint64_t seq1;
    const uint8_t *rec = cp2p_peerstore_record(ps, b, &rec_len, &seq1);
    assert_non_null(rec);
    uint8_t *rec1 = malloc(rec_len);
    memcpy(rec1, rec, rec_len);
    size_t rec1_len = rec_len;
    cp2p_multiaddr_t got[4];
    assert_int_equal(cp2p_peerstore_addrs(ps, b, uv_now(&p.loop), got, 4), n);
    assert_true(cp2p_multiaddr_equal(&got[0], &addrs[0]));
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);

    /* a new protocol on host 1 reaches host 0 by push */
    assert_false(cp2p_peerstore_supports(ps, b, "/test/1.0.0"));
    assert_int_equal(cp2p_host_set_handler(p.h[1], "/test/1.0.0", noop_handler, NULL), 0);
    assert_int_equal(cp2p_identify_push(p.id[1]), 0);
    run_until(&p, &p.identified[0], 2);
    assert_true(cp2p_peerstore_supports(ps, b, "/test/1.0.0"));
    /* the addresses did not change: the same record, not sealed again */
    rec = cp2p_peerstore_record(ps, b, &rec_len, NULL);
    assert_int_equal(rec_len, rec1_len);
    assert_memory_equal(rec, rec1, rec_len);

    /* a new listen address is pushed in a new record */
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(cp2p_host_listen(p.h[1], &ma), 0);
    cp2p_multiaddr_free(&ma);
    uint64_t seq2 = seq1;
    uv_timer_t t;
    uv_timer_init(&p.loop, &t);
    uv_timer_start(&t, timer_noop, 10000, 0);
    while (seq2 == seq1 && uv_is_active((uv_handle_t *)&t)) {
        uv_run(&p.loop, UV_RUN_ONCE);
        assert_non_null(cp2p_peerstore_record(ps, b, &rec_len, &seq2));
    }
    uv_close((uv_handle_t *)&t, NULL);
    assert_true(seq2 > seq1);
    assert_int_equal(cp2p_peerstore_addrs(ps, b, uv_now(&p.loop), got, 4), 2);
    free(rec1);

    /* announce addresses replace the listen ones in what host 1 advertises */
    cp2p_multiaddr_t pub;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/203.0.113.7/tcp/4001", &pub), 0);
    assert_int_equal(cp2p_host_set_announce_addrs(p.h[1], &pub, 1), 0);
    assert_int_equal(cp2p_host_addrs(p.h[1], &addrs, &n), 0);
    assert_int_equal(n, 1);
    assert_true(cp2p_multiaddr_equal(&addrs[0], &pub));
    cp2p_multiaddr_free(&addrs[0]);
    free(addrs);
    uint64_t seq3 = seq2;
    uv_timer_t t3;
    uv_timer_init(&p.loop, &t3);
    uv_timer_start(&t3, timer_noop, 10000, 0);
    while (seq3 == seq2 && uv_is_active((uv_handle_t *)&t3)) {
        uv_run(&p.loop, UV_RUN_ONCE);
        assert_non_null(cp2p_peerstore_record(ps, b, &rec_len, &seq3));
    }
    uv_close((uv_handle_t *)&t3, NULL);
    assert_true(seq3 > seq2);
    size_t ng = cp2p_peerstore_addrs(ps, b, uv_now(&p.loop), got, 4);
    int seen = 0;
    for (size_t i = 0; i < ng && i < 4; i++)
        seen |= cp2p_multiaddr_equal(&got[i], &pub);
    assert_true(seen);
    assert_int_equal(cp2p_host_set_announce_addrs(p.h[1], NULL, 0), 0);
    assert_int_equal(cp2p_host_addrs(p.h[1], &addrs, &n), 0);
    assert_int_equal(n, 2); /* the listen addresses again */
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);
    cp2p_multiaddr_free(&pub);

    for (int i = 0; i < 2; i++) {
        cp2p_identify_free(p.id[i]);
        cp2p_host_close(p.h[i], on_closed, &p);
    }
    run_until(&p, &p.closed, 2);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p.loop), 0);
}

static void ignore_connect(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    (*(int *)arg)++;
}

static void count_closed(void *arg)
{
    (*(int *)arg)++;
}

/* Identify freed between any two loop turns of a new connection's exchange
 * (the stream opening, our message written, theirs on its way, a push):
 * nothing it had pending touches it afterwards (run under ASan). */
static void test_free_at_every_turn(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cp2p_host_t *b;
    cp2p_identify_t *bid;
    assert_int_equal(cp2p_host_new(&loop, NULL, &b), 0);
    assert_int_equal(cp2p_identify_enable(b, NULL, &bid), 0);
    cp2p_multiaddr_t ma, *addrs;
    size_t n;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(cp2p_host_listen(b, &ma), 0);
    cp2p_multiaddr_free(&ma);
    assert_int_equal(cp2p_host_listen_addrs(b, &addrs, &n), 0);
    int closed = 0, connects = 0;
    for (int k = 0; k < 40; k++) {
        cp2p_host_t *a;
        cp2p_identify_t *aid;
        assert_int_equal(cp2p_host_new(&loop, NULL, &a), 0);
        assert_int_equal(cp2p_identify_enable(a, NULL, &aid), 0);
        assert_int_equal(cp2p_host_connect(a, &addrs[0], ignore_connect, &connects), 0);
        for (int i = 0; i < k; i++)
            uv_run(&loop, UV_RUN_NOWAIT);
        cp2p_identify_free(aid);
        if (k % 2)
            cp2p_identify_push(bid); /* b pushes to a peer that no longer listens */
        cp2p_host_close(a, count_closed, &closed);
    }
    while (closed < 40)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(connects, 40); /* each connect told once, whatever happened */
    cp2p_multiaddr_array_free(addrs, n);
    cp2p_identify_free(bid);
    cp2p_host_close(b, count_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 41);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_vector),
        cmocka_unit_test(test_roundtrip_and_merge),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_hosts_identify_and_push),
        cmocka_unit_test(test_free_at_every_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
