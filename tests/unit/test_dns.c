/* DNS message codec: names, real and compressed packets, encode/decode round
 * trips, and malformed packets (truncation, pointer loops, huge counts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "discovery/dns.h"

/* What js-libp2p's @libp2p/mdns sends as its query (multicast-dns, dns-packet). */
static const uint8_t js_query[] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x04, '_',  'p',  '2',  'p',  0x04, '_',  'u',  'd',  'p',
                                   0x05, 'l',  'o',  'c',  'a',  'l',  0x00, 0x00, 0x0c, 0x00, 0x01};

static void name_of(const char *s, cp2p_dns_name_t *n)
{
    assert_int_equal(cp2p_dns_name_from_text(s, n), 0);
}

static void assert_name(const cp2p_dns_name_t *n, const char *want)
{
    char text[1024];
    assert_int_equal(cp2p_dns_name_to_text(n, text, sizeof text), 0);
    assert_string_equal(text, want);
}

static void test_names(void **state)
{
    cp2p_dns_name_t a, b, svc;
    name_of("_p2p._udp.local", &a);
    assert_int_equal(a.len, 17);
    name_of("_P2P._UDP.Local.", &b);
    assert_true(cp2p_dns_name_equal(&a, &b));
    name_of("_p2p._udp.localx", &b);
    assert_false(cp2p_dns_name_equal(&a, &b));
    assert_name(&a, "_p2p._udp.local");

    svc = a;
    assert_int_equal(cp2p_dns_name_prepend("peer1", 5, &svc, &a), 0);
    assert_name(&a, "peer1._p2p._udp.local");
    const uint8_t *label;
    size_t len;
    assert_true(cp2p_dns_name_child_label(&a, &svc, &label, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(label, "peer1", 5);
    assert_false(cp2p_dns_name_child_label(&svc, &svc, &label, &len));
    name_of("x.peer1._p2p._udp.local", &b);
    assert_false(cp2p_dns_name_child_label(&b, &svc, &label, &len));

    /* A byte that is not plain is escaped so the text stays unambiguous. */
    assert_int_equal(cp2p_dns_name_prepend("a.b", 3, &svc, &a), 0);
    assert_name(&a, "a\\046b._p2p._udp.local");

    char big[300];
    memset(big, 'a', 64);
    big[64] = 0;
    assert_int_equal(cp2p_dns_name_from_text(big, &a), CP2P_EINVAL); /* label of 64 */
    assert_int_equal(cp2p_dns_name_from_text("a..b", &a), CP2P_EINVAL);
    for (int i = 0; i < 300; i++)
        big[i] = i % 2 ? '.' : 'a';
    big[299] = 0;
    assert_int_equal(cp2p_dns_name_from_text(big, &a), CP2P_EINVAL); /* 300 bytes */
}

static void test_js_query(void **state)
{
    cp2p_dns_msg_t m;
    assert_int_equal(cp2p_dns_decode(js_query, sizeof js_query, &m), 0);
    assert_int_equal(m.flags, 0);
    assert_int_equal(m.nq, 1);
    assert_int_equal(m.nan + m.nns + m.nar, 0);
    assert_name(&m.q[0].name, "_p2p._udp.local");
    assert_int_equal(m.q[0].type, CP2P_DNS_TYPE_PTR);
    assert_int_equal(m.q[0].cls, CP2P_DNS_CLASS_IN);
    assert_false(m.q[0].unicast_response);
    cp2p_dns_msg_free(&m);

    /* Our own query is byte for byte the same. */
    cp2p_buf_t b = {0};
    cp2p_dns_name_t svc;
    name_of("_p2p._udp.local", &svc);
    assert_int_equal(cp2p_dns_put_header(&b, 0, 0, 1, 0, 0, 0), 0);
    assert_int_equal(cp2p_dns_put_question(&b, &svc, CP2P_DNS_TYPE_PTR, CP2P_DNS_CLASS_IN), 0);
    assert_int_equal(b.len, sizeof js_query);
    assert_memory_equal(b.data, js_query, sizeof js_query);
    cp2p_buf_free(&b);
}

static void put(cp2p_buf_t *b, const void *p, size_t n)
{
    assert_int_equal(cp2p_buf_append(b, p, n), 0);
}

#define PUT(b, ...)                                                                              \
    do {                                                                                         \
        const uint8_t x_[] = {__VA_ARGS__};                                                      \
        put(b, x_, sizeof x_);                                                                   \
    } while (0)

/* A response as Bonjour-like responders send it: compressed names, an
 * unrelated A record, a TTL with the top bit set, cache-flush bits. */
static void build_compressed(cp2p_buf_t *b)
{
    static const char addr[] = "dnsaddr=/ip4/10.0.0.5/tcp/4001/p2p/x";
    PUT(b, 0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 2);
    /* 12: _p2p._udp.local PTR abc.<12> */
    PUT(b, 4, '_', 'p', '2', 'p', 4, '_', 'u', 'd', 'p', 5, 'l', 'o', 'c', 'a', 'l', 0);
    PUT(b, 0, 12, 0, 1, 0, 0, 0, 120, 0, 6);
    PUT(b, 3, 'a', 'b', 'c', 0xc0, 12); /* 39: abc._p2p._udp.local */
    /* 45: printer.<22 = local> A 10.0.0.5, cache flush */
    PUT(b, 7, 'p', 'r', 'i', 'n', 't', 'e', 'r', 0xc0, 22);
    PUT(b, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 10, 0, 0, 5);
    /* 69: <39> TXT, TTL 0x80000000 */
    PUT(b, 0xc0, 39, 0, 16, 0, 1, 0x80, 0, 0, 0, 0, (uint8_t)(1 + strlen(addr) + 4));
    PUT(b, (uint8_t)strlen(addr));
    put(b, addr, strlen(addr));
    PUT(b, 3, 'x', '=', '1');
    /* <39> SRV 0 0 4001 <45 = printer.local> */
    PUT(b, 0xc0, 39, 0, 33, 0, 1, 0, 0, 0, 120, 0, 8, 0, 0, 0, 0, 0x0f, 0xa1, 0xc0, 45);
}

static void test_compressed(void **state)
{
    cp2p_buf_t b = {0};
    build_compressed(&b);
    cp2p_dns_msg_t m;
    assert_int_equal(cp2p_dns_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.flags, CP2P_DNS_FLAG_QR | CP2P_DNS_FLAG_AA);
    assert_int_equal(m.nan, 2);
    assert_int_equal(m.nar, 2);
    assert_int_equal(m.rr[0].type, CP2P_DNS_TYPE_PTR);
    assert_name(&m.rr[0].name, "_p2p._udp.local");
    assert_name(&m.rr[0].target, "abc._p2p._udp.local");
    assert_int_equal(m.rr[0].ttl, 120);
    assert_int_equal(m.rr[1].type, CP2P_DNS_TYPE_A);
    assert_name(&m.rr[1].name, "printer.local");
    assert_true(m.rr[1].cache_flush);
    assert_int_equal(m.rr[1].cls, CP2P_DNS_CLASS_IN);
    assert_memory_equal(m.rr[1].rdata, "\x0a\x00\x00\x05", 4);
    assert_int_equal(m.rr[2].type, CP2P_DNS_TYPE_TXT);
    assert_name(&m.rr[2].name, "abc._p2p._udp.local");
    assert_int_equal(m.rr[2].ttl, 0);
    size_t off = 0, len;
    const uint8_t *s;
    assert_true(cp2p_dns_txt_next(&m.rr[2], &off, &s, &len));
    assert_int_equal(len, strlen("dnsaddr=/ip4/10.0.0.5/tcp/4001/p2p/x"));
    assert_memory_equal(s, "dnsaddr=", 8);
    assert_true(cp2p_dns_txt_next(&m.rr[2], &off, &s, &len));
    assert_int_equal(len, 3);
    assert_false(cp2p_dns_txt_next(&m.rr[2], &off, &s, &len));
    assert_int_equal(m.rr[3].type, CP2P_DNS_TYPE_SRV);
    assert_int_equal(m.rr[3].port, 4001);
    assert_name(&m.rr[3].target, "printer.local");
    cp2p_dns_msg_free(&m);

    /* Cut anywhere, it is refused, never read past the end. */
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        int rc = cp2p_dns_decode(copy, n, &m);
        assert_true(rc == CP2P_ETRUNC || rc == CP2P_EPARSE);
        assert_null(m.rr);
        free(copy);
    }
    cp2p_buf_free(&b);
}

static void test_roundtrip(void **state)
{
    cp2p_dns_name_t svc, inst, host;
    name_of("_p2p._udp.local", &svc);
    name_of("peer._p2p._udp.local", &inst);
    name_of("peer.local", &host);
    const uint8_t ip4[4] = {10, 77, 0, 1};
    const uint8_t ip6[16] = {0xfd, 0x77, [15] = 1};
    const char *strs[] = {"dnsaddr=/ip4/10.77.0.1/tcp/1", ""};
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_dns_put_header(&b, 7, CP2P_DNS_FLAG_QR, 0, 1, 0, 4), 0);
    assert_int_equal(cp2p_dns_put_ptr(&b, &svc, 120, &inst), 0);
    assert_int_equal(cp2p_dns_put_txt(&b, &inst, 120, strs, 2), 0);
    assert_int_equal(cp2p_dns_put_srv(&b, &inst, 120, 4001, &host), 0);
    assert_int_equal(cp2p_dns_put_a(&b, &host, 60, ip4), 0);
    assert_int_equal(cp2p_dns_put_aaaa(&b, &host, 0, ip6), 0);
    cp2p_dns_msg_t m;
    assert_int_equal(cp2p_dns_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.id, 7);
    assert_int_equal(m.nan, 1);
    assert_int_equal(m.nar, 4);
    assert_true(cp2p_dns_name_equal(&m.rr[0].target, &inst));
    size_t off = 0, len;
    const uint8_t *s;
    assert_true(cp2p_dns_txt_next(&m.rr[1], &off, &s, &len));
    assert_int_equal(len, strlen(strs[0]));
    assert_true(cp2p_dns_txt_next(&m.rr[1], &off, &s, &len));
    assert_int_equal(len, 0);
    assert_int_equal(m.rr[2].port, 4001);
    assert_true(cp2p_dns_name_equal(&m.rr[2].target, &host));
    assert_memory_equal(m.rr[3].rdata, ip4, 4);
    assert_int_equal(m.rr[3].ttl, 60);
    assert_memory_equal(m.rr[4].rdata, ip6, 16);
    cp2p_dns_msg_free(&m);

    char longstr[257];
    memset(longstr, 'a', 256);
    longstr[256] = 0;
    const char *too_long[] = {longstr};
    assert_int_equal(cp2p_dns_put_txt(&b, &inst, 120, too_long, 1), CP2P_EOVERFLOW);
    cp2p_buf_free(&b);
}

static int decode_bytes(const uint8_t *p, size_t n)
{
    cp2p_dns_msg_t m;
    int rc = cp2p_dns_decode(p, n, &m);
    if (rc == 0)
        cp2p_dns_msg_free(&m);
    else
        assert_null(m.q);
    return rc;
}

#define DECODE(...)                                                                              \
    ({                                                                                           \
        const uint8_t p_[] = {__VA_ARGS__};                                                      \
        decode_bytes(p_, sizeof p_);                                                             \
    })

static void test_hostile(void **state)
{
    /* A pointer to itself, a loop through a label, a forward pointer. */
    assert_int_equal(DECODE(0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 12, 0, 1), CP2P_EPARSE);
    assert_int_equal(DECODE(0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0xc0, 12, 0, 12, 0, 1),
                     CP2P_EPARSE);
    assert_int_equal(DECODE(0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 18, 0, 12, 0, 1, 0),
                     CP2P_EPARSE);
    /* Two names pointing at each other through the rdata of a PTR. */
    assert_int_equal(DECODE(0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 24, 0, 12, 0, 1, 0, 0, 0,
                            1, 0, 2, 0xc0, 12),
                     CP2P_EPARSE);
    /* Label types 01 and 10. */
    assert_int_equal(DECODE(0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 12, 0, 1), CP2P_EPARSE);
    assert_int_equal(DECODE(0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 12, 0, 1), CP2P_EPARSE);
    /* Huge counts, and counts the packet cannot hold. */
    assert_int_equal(DECODE(0, 0, 0x84, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
                     CP2P_EOVERFLOW);
    assert_int_equal(DECODE(0, 0, 0x84, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0),
                     CP2P_ETRUNC);
    /* Shorter than a header; empty. */
    assert_int_equal(DECODE(0, 0, 0), CP2P_ETRUNC);
    assert_int_equal(decode_bytes((const uint8_t *)"", 0), CP2P_ETRUNC);
    /* rdata: A of 5 bytes, a TXT string past its rdata, a PTR with trailing bytes. */
    assert_int_equal(DECODE(0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 5,
                            1, 2, 3, 4, 5),
                     CP2P_EPARSE);
    assert_int_equal(DECODE(0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 16, 0, 1, 0, 0, 0, 1, 0, 2,
                            5, 'a', 'b', 'c'),
                     CP2P_EPARSE);
    assert_int_equal(DECODE(0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 12, 0, 1, 0, 0, 0, 1, 0, 3,
                            0, 'x', 'y'),
                     CP2P_EPARSE);
    /* rdlen past the end. */
    assert_int_equal(DECODE(0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 99, 0, 1, 0, 0, 0, 1, 0, 9,
                            1),
                     CP2P_ETRUNC);
    /* An unknown type passes with its rdata; a wrong class is the caller's business. */
    assert_int_equal(DECODE(0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 99, 0, 3, 0, 0, 0, 1, 0, 2,
                            0xc0, 0xff),
                     0);

    /* A name of more than 255 bytes, in labels of 63. */
    cp2p_buf_t b = {0};
    PUT(&b, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0);
    for (int i = 0; i < 5; i++) {
        uint8_t l[64];
        l[0] = 63;
        memset(l + 1, 'a' + i, 63);
        put(&b, l, 64);
    }
    PUT(&b, 0, 0, 12, 0, 1);
    assert_int_equal(decode_bytes(b.data, b.len), CP2P_EOVERFLOW);
    cp2p_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),       cmocka_unit_test(test_js_query),
        cmocka_unit_test(test_compressed),  cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
