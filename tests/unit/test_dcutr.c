/* DCUtR without I/O: HolePunch byte vectors, the 4 KiB cap, address
 * filtering, both roles of one attempt on a fake clock (RTT/2 timing),
 * and hostile input (huge, wrong type, endless, truncated, late). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "cp2p/multiaddr.h"
#include "protocols/dcutr.h"

static cp2p_multiaddr_t ma(const char *s)
{
    cp2p_multiaddr_t m = {0};
    assert_int_equal(cp2p_multiaddr_parse(s, &m), 0);
    return m;
}

/* CONNECT with /ip4/1.2.3.4/tcp/4001, as go and rust frame it. */
static const uint8_t CONNECT_1234[] = {0x0c, 0x08, 0x64, 0x12, 0x08, 0x04, 0x01, 0x02,
                                       0x03, 0x04, 0x06, 0x0f, 0xa1};
static const uint8_t SYNC[] = {0x03, 0x08, 0xac, 0x02};

static void test_vectors(void **state)
{
    cp2p_multiaddr_t a = ma("/ip4/1.2.3.4/tcp/4001");
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_dcutr_encode(CP2P_DCUTR_CONNECT, &a, 1, &b), 0);
    assert_int_equal(b.len, sizeof CONNECT_1234);
    assert_memory_equal(b.data, CONNECT_1234, sizeof CONNECT_1234);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_dcutr_encode(CP2P_DCUTR_SYNC, NULL, 0, &b), 0);
    assert_int_equal(b.len, sizeof SYNC);
    assert_memory_equal(b.data, SYNC, sizeof SYNC);
    cp2p_buf_free(&b);

    size_t hdr, body;
    assert_int_equal(cp2p_dcutr_frame(CONNECT_1234, sizeof CONNECT_1234, &hdr, &body), 0);
    assert_int_equal(hdr, 1);
    assert_int_equal(body, 12);
    cp2p_dcutr_msg_t m;
    assert_int_equal(cp2p_dcutr_decode(CONNECT_1234 + 1, 12, &m), 0);
    assert_int_equal(m.type, CP2P_DCUTR_CONNECT);
    assert_int_equal(m.n_addrs, 1);
    assert_true(cp2p_multiaddr_equal(&m.addrs[0], &a));
    cp2p_dcutr_msg_free(&m);
    assert_int_equal(cp2p_dcutr_decode(SYNC + 1, 3, &m), 0);
    assert_int_equal(m.type, CP2P_DCUTR_SYNC);
    assert_int_equal(m.n_addrs, 0);
    cp2p_dcutr_msg_free(&m);
    cp2p_multiaddr_free(&a);
}

static void test_decode_hostile(void **state)
{
    cp2p_dcutr_msg_t m;
    /* type 200: neither CONNECT nor SYNC */
    static const uint8_t wrong[] = {0x08, 0xc8, 0x01};
    assert_int_equal(cp2p_dcutr_decode(wrong, sizeof wrong, &m), CP2P_EPROTO);
    /* no type at all (it is required) */
    static const uint8_t notype[] = {0x12, 0x00};
    assert_int_equal(cp2p_dcutr_decode(notype, sizeof notype, &m), CP2P_EPARSE);
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(cp2p_dcutr_decode(junk, sizeof junk, &m), CP2P_EPARSE);
    /* An address that is not a multiaddr is dropped, the rest kept. */
    static const uint8_t badaddr[] = {0x08, 0x64, 0x12, 0x02, 0xff, 0xff, 0x12, 0x08, 0x04, 0x01,
                                      0x02, 0x03, 0x04, 0x06, 0x0f, 0xa1};
    assert_int_equal(cp2p_dcutr_decode(badaddr, sizeof badaddr, &m), 0);
    assert_int_equal(m.n_addrs, 1);
    assert_int_equal(m.n_dropped, 1);
    cp2p_dcutr_msg_free(&m);
    /* Over the cap, whatever it holds. */
    uint8_t *big = calloc(1, CP2P_DCUTR_MAX_MESSAGE + 1);
    assert_int_equal(cp2p_dcutr_decode(big, CP2P_DCUTR_MAX_MESSAGE + 1, &m), CP2P_EOVERFLOW);
    free(big);
    /* Frames: a prefix of 4097, one of 2^63, a cut prefix, a cut body. */
    size_t hdr, body;
    static const uint8_t p4097[] = {0x81, 0x20};
    assert_int_equal(cp2p_dcutr_frame(p4097, sizeof p4097, &hdr, &body), CP2P_EOVERFLOW);
    static const uint8_t phuge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(cp2p_dcutr_frame(phuge, sizeof phuge, &hdr, &body), CP2P_EOVERFLOW);
    assert_int_equal(cp2p_dcutr_frame(phuge, 3, &hdr, &body), CP2P_EOVERFLOW);
    assert_int_equal(cp2p_dcutr_frame(phuge, 2, &hdr, &body), CP2P_ETRUNC);
    assert_int_equal(cp2p_dcutr_frame(CONNECT_1234, 5, &hdr, &body), CP2P_ETRUNC);
}

/* However many addresses we have, the message stays under the cap, and a
 * remote's list is cut at CP2P_DCUTR_MAX_ADDRS. */
static void test_caps(void **state)
{
    size_t n = 1000;
    cp2p_multiaddr_t *a = calloc(n, sizeof *a);
    for (size_t i = 0; i < n; i++) {
        char s[64];
        snprintf(s, sizeof s, "/ip6/2001:db8::%zx/tcp/%zu", i + 1, 1000 + i);
        a[i] = ma(s);
    }
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_dcutr_encode(CP2P_DCUTR_CONNECT, a, n, &b), 0);
    size_t hdr, body;
    assert_int_equal(cp2p_dcutr_frame(b.data, b.len, &hdr, &body), 0);
    assert_true(body <= CP2P_DCUTR_MAX_MESSAGE);
    assert_true(body > CP2P_DCUTR_MAX_MESSAGE - 64);
    cp2p_dcutr_msg_t m;
    assert_int_equal(cp2p_dcutr_decode(b.data + hdr, body, &m), 0);
    assert_int_equal(m.n_addrs, CP2P_DCUTR_MAX_ADDRS);
    assert_true(m.n_dropped > 100);
    assert_true(cp2p_multiaddr_equal(&m.addrs[0], &a[0]));
    cp2p_dcutr_msg_free(&m);
    cp2p_buf_free(&b);
    cp2p_multiaddr_array_free(a, n);
}

static void test_usable(void **state)
{
    const char *pub[] = {"/ip4/1.2.3.4/tcp/4001", "/ip6/2606:4700::1/tcp/1",
                         "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"};
    const char *priv[] = {"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.2/tcp/4001", "/ip4/10.0.0.1/tcp/1"};
    const char *never[] = {"/ip4/1.2.3.4/udp/4001/quic-v1", "/ip4/1.2.3.4/tcp/4001/ws",
                           "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit",
                           "/dns4/example.com/tcp/4001", "/ip4/0.0.0.0/tcp/4001", "/ip4/224.0.0.1/tcp/1"};
    for (size_t i = 0; i < sizeof pub / sizeof *pub; i++) {
        cp2p_multiaddr_t m = ma(pub[i]);
        assert_true(cp2p_dcutr_addr_usable(&m, 0));
        cp2p_multiaddr_free(&m);
    }
    for (size_t i = 0; i < sizeof priv / sizeof *priv; i++) {
        cp2p_multiaddr_t m = ma(priv[i]);
        assert_false(cp2p_dcutr_addr_usable(&m, 0));
        assert_true(cp2p_dcutr_addr_usable(&m, 1));
        cp2p_multiaddr_free(&m);
    }
    for (size_t i = 0; i < sizeof never / sizeof *never; i++) {
        cp2p_multiaddr_t m = ma(never[i]);
        assert_false(cp2p_dcutr_addr_usable(&m, 1));
        cp2p_multiaddr_free(&m);
    }
}

typedef struct pair {
    cp2p_dcutr_engine_t a, b;
    cp2p_multiaddr_t aaddr[2], baddr[2];
} pair_t;

static void pair_init(pair_t *p, int allow_private, uint64_t now)
{
    p->aaddr[0] = ma("/ip4/5.6.7.8/tcp/1111");
    p->aaddr[1] = ma("/ip4/192.168.0.2/tcp/1111");
    p->baddr[0] = ma("/ip4/1.2.3.4/tcp/2222");
    p->baddr[1] = ma("/ip4/1.2.3.4/tcp/2222/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit");
    assert_int_equal(cp2p_dcutr_engine_init(&p->a, CP2P_DCUTR_ROLE_A, allow_private, p->aaddr, 2, now, 60000), 0);
    assert_int_equal(cp2p_dcutr_engine_init(&p->b, CP2P_DCUTR_ROLE_B, allow_private, p->baddr, 2, now, 60000), 0);
}

static void pair_free(pair_t *p)
{
    cp2p_dcutr_engine_free(&p->a);
    cp2p_dcutr_engine_free(&p->b);
    for (int i = 0; i < 2; i++) {
        cp2p_multiaddr_free(&p->aaddr[i]);
        cp2p_multiaddr_free(&p->baddr[i]);
    }
}

/* B sends CONNECT at t=1000, A answers, B hears it at t=1080: RTT 80, B
 * sends SYNC and dials at 1120; A dials when SYNC arrives. Each one dials
 * the other's usable addresses only. */
static void test_roles_and_rtt(void **state)
{
    pair_t p;
    pair_init(&p, 0, 1000);
    cp2p_buf_t b2a = {0}, a2b = {0};
    assert_int_equal(cp2p_dcutr_engine_start(&p.a, 1000, &a2b), 0);
    assert_int_equal(a2b.len, 0); /* A waits */
    assert_int_equal(cp2p_dcutr_engine_start(&p.b, 1000, &b2a), 0);
    assert_true(b2a.len > 0);
    assert_int_equal(cp2p_dcutr_engine_next_ms(&p.b), 61000);
    assert_int_equal(cp2p_dcutr_engine_input(&p.a, b2a.data, b2a.len, 1040, &a2b), 0);
    assert_true(a2b.len > 0);
    assert_int_equal(p.a.n_remote, 1); /* the relay address is gone */
    cp2p_multiaddr_t want = ma("/ip4/1.2.3.4/tcp/2222");
    assert_true(cp2p_multiaddr_equal(&p.a.remote[0], &want));
    cp2p_multiaddr_free(&want);
    cp2p_buf_reset(&b2a);
    assert_int_equal(cp2p_dcutr_engine_input(&p.b, a2b.data, a2b.len, 1080, &b2a), 0);
    assert_int_equal(p.b.rtt_ms, 80);
    assert_int_equal(b2a.len, sizeof SYNC);
    assert_memory_equal(b2a.data, SYNC, sizeof SYNC);
    assert_int_equal(p.b.n_remote, 1); /* 192.168.0.2 is private */
    assert_int_equal(cp2p_dcutr_engine_next_ms(&p.b), 1120);
    assert_int_equal(cp2p_dcutr_engine_tick(&p.b, 1119), 0);
    assert_int_equal(cp2p_dcutr_engine_tick(&p.b, 1120), 1);
    assert_int_equal(p.b.state, DCUTR_ST_DIAL);
    assert_int_equal(cp2p_dcutr_engine_input(&p.a, b2a.data, b2a.len, 1120, &a2b), 1);
    assert_int_equal(p.a.state, DCUTR_ST_DIAL);
    /* Both may see the stream end now. */
    assert_int_equal(cp2p_dcutr_engine_eof(&p.a), 0);
    assert_int_equal(cp2p_dcutr_engine_eof(&p.b), 0);
    cp2p_buf_free(&b2a);
    cp2p_buf_free(&a2b);
    pair_free(&p);
}

/* One byte at a time is the same exchange; private addresses kept when allowed. */
static void test_bytewise_private(void **state)
{
    pair_t p;
    pair_init(&p, 1, 0);
    cp2p_buf_t b2a = {0}, a2b = {0};
    assert_int_equal(cp2p_dcutr_engine_start(&p.b, 0, &b2a), 0);
    for (size_t i = 0; i < b2a.len; i++)
        assert_int_equal(cp2p_dcutr_engine_input(&p.a, b2a.data + i, 1, 5, &a2b), 0);
    assert_int_equal(p.a.state, DCUTR_ST_WAIT_SYNC);
    cp2p_buf_reset(&b2a);
    for (size_t i = 0; i < a2b.len; i++)
        assert_int_equal(cp2p_dcutr_engine_input(&p.b, a2b.data + i, 1, 10, &b2a), 0);
    assert_int_equal(p.b.n_remote, 2);
    assert_int_equal(p.b.rtt_ms, 10);
    assert_int_equal(cp2p_dcutr_engine_tick(&p.b, 15), 1);
    assert_int_equal(cp2p_dcutr_engine_input(&p.a, b2a.data, 2, 15, &a2b), 0);
    assert_int_equal(cp2p_dcutr_engine_input(&p.a, b2a.data + 2, b2a.len - 2, 15, &a2b), 1);
    cp2p_buf_free(&b2a);
    cp2p_buf_free(&a2b);
    pair_free(&p);
}

static void test_engine_hostile(void **state)
{
    cp2p_buf_t out = {0};
    cp2p_multiaddr_t mine = ma("/ip4/1.2.3.4/tcp/1");
    cp2p_dcutr_engine_t e;

    /* SYNC before CONNECT */
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_A, 0, &mine, 1, 0, 1000), 0);
    assert_int_equal(cp2p_dcutr_engine_input(&e, SYNC, sizeof SYNC, 1, &out), CP2P_EPROTO);
    assert_int_equal(e.state, DCUTR_ST_FAILED);
    assert_int_equal(cp2p_dcutr_engine_input(&e, CONNECT_1234, sizeof CONNECT_1234, 1, &out), CP2P_EPROTO);
    assert_int_equal(out.len, 0);
    cp2p_dcutr_engine_free(&e);

    /* A huge prefix fails as soon as it is seen, before any body. */
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_A, 0, &mine, 1, 0, 1000), 0);
    static const uint8_t huge[] = {0xff, 0xff, 0x03};
    assert_int_equal(cp2p_dcutr_engine_input(&e, huge, sizeof huge, 1, &out), CP2P_EOVERFLOW);
    cp2p_dcutr_engine_free(&e);

    /* A body of junk under the cap */
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_A, 0, &mine, 1, 0, 1000), 0);
    uint8_t junk[4098];
    junk[0] = 0x80;
    junk[1] = 0x20; /* 4096 */
    memset(junk + 2, 0xff, sizeof junk - 2);
    assert_int_equal(cp2p_dcutr_engine_input(&e, junk, sizeof junk, 1, &out), CP2P_EPARSE);
    cp2p_dcutr_engine_free(&e);

    /* Endless: after SYNC, A takes nothing more; B nothing after CONNECT. */
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_A, 0, &mine, 1, 0, 1000), 0);
    assert_int_equal(cp2p_dcutr_engine_input(&e, CONNECT_1234, sizeof CONNECT_1234, 1, &out), 0);
    assert_int_equal(cp2p_dcutr_engine_input(&e, SYNC, sizeof SYNC, 1, &out), 1);
    assert_int_equal(cp2p_dcutr_engine_input(&e, SYNC, sizeof SYNC, 1, &out), CP2P_EPROTO);
    cp2p_dcutr_engine_free(&e);
    cp2p_buf_reset(&out);
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_B, 0, &mine, 1, 0, 1000), 0);
    assert_int_equal(cp2p_dcutr_engine_start(&e, 0, &out), 0);
    uint8_t two[2 * sizeof CONNECT_1234];
    memcpy(two, CONNECT_1234, sizeof CONNECT_1234);
    memcpy(two + sizeof CONNECT_1234, CONNECT_1234, sizeof CONNECT_1234);
    assert_int_equal(cp2p_dcutr_engine_input(&e, two, sizeof two, 4, &out), CP2P_EPROTO);
    cp2p_dcutr_engine_free(&e);

    /* B answered with SYNC (wrong type), and a CONNECT with nothing usable. */
    cp2p_buf_reset(&out);
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_B, 0, &mine, 1, 0, 1000), 0);
    assert_int_equal(cp2p_dcutr_engine_start(&e, 0, &out), 0);
    assert_int_equal(cp2p_dcutr_engine_input(&e, SYNC, sizeof SYNC, 4, &out), CP2P_EPROTO);
    cp2p_dcutr_engine_free(&e);
    cp2p_multiaddr_t relay = ma("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit");
    cp2p_buf_t msg = {0};
    assert_int_equal(cp2p_dcutr_encode(CP2P_DCUTR_CONNECT, &relay, 1, &msg), 0);
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_A, 0, &mine, 1, 0, 1000), 0);
    assert_int_equal(cp2p_dcutr_engine_input(&e, msg.data, msg.len, 1, &out), CP2P_ENOTFOUND);
    cp2p_dcutr_engine_free(&e);
    cp2p_buf_free(&msg);

    /* We have nothing usable to offer: B does not start. */
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_B, 0, &relay, 1, 0, 1000), 0);
    assert_int_equal(cp2p_dcutr_engine_start(&e, 0, &out), CP2P_ENOTFOUND);
    cp2p_dcutr_engine_free(&e);

    /* A silent remote: the deadline; a stream that ends early. */
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_A, 0, &mine, 1, 0, 1000), 0);
    assert_int_equal(cp2p_dcutr_engine_tick(&e, 999), 0);
    assert_int_equal(cp2p_dcutr_engine_tick(&e, 1000), CP2P_ETIMEOUT);
    cp2p_dcutr_engine_free(&e);
    assert_int_equal(cp2p_dcutr_engine_init(&e, CP2P_DCUTR_ROLE_A, 0, &mine, 1, 0, 1000), 0);
    assert_int_equal(cp2p_dcutr_engine_input(&e, CONNECT_1234, 5, 1, &out), 0);
    assert_int_equal(cp2p_dcutr_engine_eof(&e), CP2P_ECLOSED);
    cp2p_dcutr_engine_free(&e);

    cp2p_multiaddr_free(&relay);
    cp2p_multiaddr_free(&mine);
    cp2p_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_decode_hostile),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_usable),
        cmocka_unit_test(test_roles_and_rtt),
        cmocka_unit_test(test_bytewise_private),
        cmocka_unit_test(test_engine_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
