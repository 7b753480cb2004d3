/* The mDNS engine, without sockets: what it announces, what it learns from
 * js-libp2p's, go-libp2p's, rust-libp2p's and its own responses, query rate limits, expiry, goodbyes, and
 * hostile records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"
#include "discovery/dns.h"
#include "discovery/mdns_engine.h"

#define ID_A "12D3KooWGvyDAm4UXtvYFF1jizv73YyVaqLFKMFZhhvBwD4p3Jj3"
#define ID_B "12D3KooWHjp65fzsn6LVyQ37AncejYvSRZPQiTUS6ZHJ53FbeRK5"
#define ID_JS "12D3KooWDAdjRf7PhgZJ4hNxrn19pNDaHxdr4hRJSEvSNXxsgUFA"

/* A response of js-libp2p's @libp2p/mdns (PTR and TXT records all in the
 * answers, no compression), for ID_JS at 10.77.0.4 and 127.0.0.1. */
static const char js_response_hex[] =
    "000084000000000300000000045f703270045f756470056c6f63616c00000c00010000007800513f6b3278346c397071"
    "376d337a7472306131623263336434653566366737683869396a306b6c6d6e6f707172737475767778797a3031323334"
    "35363738396162045f703270045f756470056c6f63616c003f6b3278346c397071376d337a7472306131623263336434"
    "653566366737683869396a306b6c6d6e6f707172737475767778797a303132333435363738396162045f703270045f75"
    "6470056c6f63616c000010000100000078005a59646e73616464723d2f6970342f31302e37372e302e342f7463702f34"
    "303033352f7032702f313244334b6f6f574441646a5266375068675a4a34684e78726e3139704e446148786472346852"
    "4a534576534e587873675546413f6b3278346c397071376d337a7472306131623263336434653566366737683869396a"
    "306b6c6d6e6f707172737475767778797a303132333435363738396162045f703270045f756470056c6f63616c000010"
    "000100000078005a59646e73616464723d2f6970342f3132372e302e302e312f7463702f34303033352f7032702f3132"
    "44334b6f6f574441646a5266375068675a4a34684e78726e3139704e4461487864723468524a534576534e5878736755"
    "4641";

/* What rust-libp2p 0.57 (libp2p-mdns 0.49) answers a query with, captured in
 * tests/cli/mdns_mixed.sh's namespaces: the PTR points to "<peer-name>."
 * alone, not to <peer-name>._p2p._udp.local, and the TXT record (cache-flush
 * class) is named so; ID_RUST at 10.77.0.3. */
#define ID_RUST "12D3KooWE7MocgH5QpxqRaS1h8N6swQz6LAB8vJTwmedkB1JJWmD"
static const char rust_response_hex[] =
    "20cd84000000000100000001045f703270045f756470056c6f63616c00000c0001000000780028263474463159795144"
    "4f4e49774b554f6a724776756d45596c7665554d37535939386f70345741002634744631597951444f4e49774b554f6a"
    "724776756d45596c7665554d37535939386f70345741000010800100000078005a59646e73616464723d2f6970342f31"
    "302e37372e302e332f7463702f33373536392f7032702f313244334b6f6f5745374d6f63674835517078715261533168"
    "384e367377517a364c414238764a54776d65646b42314a4a576d44";

/* go-libp2p v0.52.0's (zeroconf's) answer to a query, and its goodbye
 * (everything in the answers, cache-flush classes, TTL 0), from ID_GO at
 * 10.77.0.2: one TXT record of two strings, its loopback address first. */
#define ID_GO "12D3KooWFgCoCM94yAoP7WTXYTUjpLh1nKHwJEBzSqgAfwDW1jU9"
static const char go_response_hex[] =
    "343484000000000100000003045f703270045f756470056c6f63616c00000c000100000c80002b283364316174717169"
    "766c777a7a67393762666e796f6d326d67303232346167336268767773797a77c00cc0270021000100000c8000360000"
    "00000fa1283364316174717169766c777a7a67393762666e796f6d326d67303232346167336268767773797a77056c6f"
    "63616c00c0270010000100000c8000b459646e73616464723d2f6970342f3132372e302e302e312f7463702f34323233"
    "392f7032702f313244334b6f6f574667436f434d393479416f50375754585954556a704c68316e4b48774a45427a5371"
    "674166774457316a553959646e73616464723d2f6970342f31302e37372e302e322f7463702f34323233392f7032702f"
    "313244334b6f6f574667436f434d393479416f50375754585954556a704c68316e4b48774a45427a5371674166774457"
    "316a5539c064000100010000007800047f000001";
static const char go_goodbye_hex[] =
    "000080000000000500000000283364316174717169766c777a7a67393762666e796f6d326d6730323234616733626876"
    "7773797a77045f703270045f756470056c6f63616c0000218001000000000036000000000fa128336431617471716976"
    "6c777a7a67393762666e796f6d326d67303232346167336268767773797a77056c6f63616c0028336431617471716976"
    "6c777a7a67393762666e796f6d326d67303232346167336268767773797a77045f703270045f756470056c6f63616c00"
    "001080010000000000b459646e73616464723d2f6970342f3132372e302e302e312f7463702f34323233392f7032702f"
    "313244334b6f6f574667436f434d393479416f50375754585954556a704c68316e4b48774a45427a5371674166774457"
    "316a553959646e73616464723d2f6970342f31302e37372e302e322f7463702f34323233392f7032702f313244334b6f"
    "6f574667436f434d393479416f50375754585954556a704c68316e4b48774a45427a5371674166774457316a5539045f"
    "703270045f756470056c6f63616c00000c000100000000003a283364316174717169766c777a7a67393762666e796f6d"
    "326d67303232346167336268767773797a77045f703270045f756470056c6f63616c00095f7365727669636573075f64"
    "6e732d7364045f756470056c6f63616c00000c0001000000000011045f703270045f756470056c6f63616c0028336431"
    "6174717169766c777a7a67393762666e796f6d326d67303232346167336268767773797a77056c6f63616c0000018001"
    "0000000000047f000001";

typedef struct seen {
    int discovered, refreshed, expired;
    char last[256];
} seen_t;

static void on_event(cp2p_mdns_engine_event_t type, const cp2p_peer_id_t *peer,
                     const cp2p_multiaddr_t *addr, uint32_t ttl, void *arg)
{
    seen_t *s = arg;
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_peer_id_to_string(peer, id, sizeof id), 0);
    assert_int_equal(cp2p_multiaddr_to_string(addr, &b), 0);
    snprintf(s->last, sizeof s->last, "%s %s", id, (char *)b.data);
    cp2p_buf_free(&b);
    if (type == CP2P_MDNS_ENGINE_DISCOVERED)
        s->discovered++;
    else if (type == CP2P_MDNS_ENGINE_REFRESHED)
        s->refreshed++;
    else
        s->expired++;
}

static cp2p_mdns_engine_t *engine(const char *id, const char *name, seen_t *s)
{
    cp2p_peer_id_t self;
    assert_int_equal(cp2p_peer_id_parse(id, &self), 0);
    cp2p_mdns_engine_config_t cfg = {.peer_name = name};
    cp2p_mdns_engine_t *e;
    assert_int_equal(cp2p_mdns_engine_new(&cfg, &self, on_event, s, &e), 0);
    return e;
}

static void set_addrs(cp2p_mdns_engine_t *e, const char *const *strs, size_t n)
{
    cp2p_multiaddr_t ma[8];
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cp2p_multiaddr_parse(strs[i], &ma[i]), 0);
    assert_int_equal(cp2p_mdns_engine_set_addrs(e, ma, n), 0);
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&ma[i]);
}

static const char *const addrs_a[] = {"/ip4/10.77.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4001",
                                      "/ip6/fd77::1/tcp/4001", "/ip6/fe80::1/tcp/4001",
                                      "/unix/run/cp2p.sock"};

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static int input(cp2p_mdns_engine_t *e, unsigned link, const cp2p_buf_t *pkt, uint64_t now,
                 cp2p_buf_t *reply)
{
    cp2p_buf_t none = {0};
    int rc = cp2p_mdns_engine_input(e, link, NULL, 0, pkt->data, pkt->len, now,
                                    reply ? reply : &none);
    assert_int_equal(none.len, 0);
    return rc;
}

static void test_response(void **state)
{
    seen_t s = {0};
    cp2p_mdns_engine_t *a = engine(ID_A, "peera", &s);
    assert_string_equal(cp2p_mdns_engine_peer_name(a), "peera");
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_mdns_engine_response(a, 120, &b), CP2P_ENOTFOUND);
    assert_int_equal(b.len, 0);
    set_addrs(a, addrs_a, 5);
    assert_int_equal(cp2p_mdns_engine_response(a, 120, &b), 0);
    assert_true(b.len <= CP2P_MDNS_MAX_PACKET);

    cp2p_dns_msg_t m;
    assert_int_equal(cp2p_dns_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.flags, CP2P_DNS_FLAG_QR | CP2P_DNS_FLAG_AA);
    assert_int_equal(m.nq, 0);
    assert_int_equal(m.nan, 1);
    cp2p_dns_name_t svc, inst, host;
    cp2p_dns_name_from_text("_p2p._udp.local", &svc);
    cp2p_dns_name_from_text("peera._p2p._udp.local", &inst);
    cp2p_dns_name_from_text("peera.local", &host);
    assert_int_equal(m.rr[0].type, CP2P_DNS_TYPE_PTR);
    assert_true(cp2p_dns_name_equal(&m.rr[0].name, &svc));
    assert_true(cp2p_dns_name_equal(&m.rr[0].target, &inst));
    /* Loopback, link-local and unix socket addresses are left out. */
    int txt = 0, srv = 0, a4 = 0, a6 = 0;
    for (size_t i = 1; i < m.nan + m.nar; i++) {
        const cp2p_dns_rr_t *rr = &m.rr[i];
        assert_int_equal(rr->ttl, 120);
        assert_int_equal(rr->cls, CP2P_DNS_CLASS_IN);
        if (rr->type == CP2P_DNS_TYPE_TXT) {
            size_t off = 0, len;
            const uint8_t *p;
            assert_true(cp2p_dns_name_equal(&rr->name, &inst));
            assert_true(cp2p_dns_txt_next(rr, &off, &p, &len));
            const char *want = txt++ ? "dnsaddr=/ip6/fd77::1/tcp/4001/p2p/" ID_A
                                     : "dnsaddr=/ip4/10.77.0.1/tcp/4001/p2p/" ID_A;
            assert_int_equal(len, strlen(want));
            assert_memory_equal(p, want, len);
        } else if (rr->type == CP2P_DNS_TYPE_SRV) {
            srv++;
            assert_int_equal(rr->port, 4001);
            assert_true(cp2p_dns_name_equal(&rr->target, &host));
        } else if (rr->type == CP2P_DNS_TYPE_A) {
            a4++;
            assert_memory_equal(rr->rdata, "\x0a\x4d\x00\x01", 4);
        } else if (rr->type == CP2P_DNS_TYPE_AAAA) {
            a6++;
        }
    }
    assert_int_equal(txt, 2);
    assert_int_equal(srv, 1);
    assert_int_equal(a4, 1);
    assert_int_equal(a6, 1);
    cp2p_dns_msg_free(&m);

    /* Our own response, looped back to us, is no discovery. */
    assert_int_equal(input(a, 0, &b, 0, NULL), 0);
    assert_int_equal(s.discovered, 0);
    cp2p_buf_free(&b);
    cp2p_mdns_engine_free(a);
}

static void test_js_response(void **state)
{
    seen_t s = {0};
    cp2p_mdns_engine_t *e = engine(ID_B, NULL, &s);
    assert_true(strlen(cp2p_mdns_engine_peer_name(e)) >= 32);
    cp2p_buf_t pkt = {0};
    assert_int_equal(cp2p_buf_reserve(&pkt, sizeof js_response_hex / 2), 0);
    pkt.len = unhex(js_response_hex, pkt.data);
    assert_int_equal(input(e, 0, &pkt, 1000, NULL), 0);
    assert_int_equal(s.discovered, 2);
    assert_string_equal(s.last, ID_JS " /ip4/127.0.0.1/tcp/40035");
    assert_int_equal(cp2p_mdns_engine_tracked(e), 2);

    /* Seen again: a refresh, not a discovery; the TTL starts over. */
    assert_int_equal(input(e, 0, &pkt, 60000, NULL), 0);
    assert_int_equal(s.discovered, 2);
    assert_int_equal(s.refreshed, 2);
    assert_int_equal(cp2p_mdns_engine_expire(e, 179999), 180000);
    assert_int_equal(s.expired, 0);
    assert_int_equal(cp2p_mdns_engine_expire(e, 180000), UINT64_MAX);
    assert_int_equal(s.expired, 2);
    assert_int_equal(cp2p_mdns_engine_tracked(e), 0);
    assert_int_equal(cp2p_mdns_engine_stats(e)->discovered, 2);
    assert_int_equal(cp2p_mdns_engine_stats(e)->expired, 2);
    cp2p_buf_free(&pkt);
    cp2p_mdns_engine_free(e);
}

static void test_between_engines(void **state)
{
    seen_t sa = {0}, sb = {0};
    cp2p_mdns_engine_t *a = engine(ID_A, "peera", &sa), *b = engine(ID_B, "peerb", &sb);
    set_addrs(a, addrs_a, 4);
    cp2p_buf_t q = {0}, reply = {0}, bye = {0};
    assert_int_equal(cp2p_mdns_engine_query(b, &q), 0);

    /* a answers b's query, once a second per link. */
    assert_int_equal(input(a, 0, &q, 5000, &reply), 0);
    assert_true(reply.len > 0);
    cp2p_buf_t again = {0};
    assert_int_equal(input(a, 0, &q, 5999, &again), 0);
    assert_int_equal(again.len, 0);
    /* ... and answers it once the second has passed (a new host's query
     * must not go unanswered because ours, looped back, came first). */
    assert_int_equal(cp2p_mdns_engine_deferred_due(a), 6000);
    assert_int_equal(cp2p_mdns_engine_deferred(a, 0, 5999, &again), 0);
    assert_int_equal(cp2p_mdns_engine_deferred(a, 0, 6000, &again), 1);
    assert_true(again.len > 0);
    assert_int_equal(cp2p_mdns_engine_deferred(a, 0, 6001, &again), 0);
    assert_int_equal(cp2p_mdns_engine_deferred_due(a), UINT64_MAX);
    cp2p_buf_reset(&again);
    assert_int_equal(input(a, 1, &q, 5999, &again), 0); /* another link has its own second */
    assert_true(again.len > 0);
    cp2p_buf_reset(&again);
    assert_int_equal(input(a, 0, &q, 7001, &again), 0);
    assert_true(again.len > 0);
    cp2p_buf_free(&again);
    /* b, which has no address, answers nothing. */
    assert_int_equal(input(b, 0, &q, 5000, NULL), 0);

    assert_int_equal(input(b, 0, &reply, 5000, NULL), 0);
    assert_int_equal(sb.discovered, 2);
    assert_string_equal(sb.last, ID_A " /ip6/fd77::1/tcp/4001");

    /* Goodbye: gone one second later (RFC 6762 10.1). */
    assert_int_equal(cp2p_mdns_engine_response(a, 0, &bye), 0);
    assert_int_equal(input(b, 0, &bye, 7000, NULL), 0);
    assert_int_equal(cp2p_mdns_engine_expire(b, 7999), 8000);
    assert_int_equal(sb.expired, 0);
    cp2p_mdns_engine_expire(b, 8000);
    assert_int_equal(sb.expired, 2);
    /* A goodbye for what we do not know is nothing. */
    assert_int_equal(input(b, 0, &bye, 9000, NULL), 0);
    assert_int_equal(cp2p_mdns_engine_tracked(b), 0);

    cp2p_buf_free(&q);
    cp2p_buf_free(&reply);
    cp2p_buf_free(&bye);
    cp2p_mdns_engine_free(a);
    cp2p_mdns_engine_free(b);
}

/* A query from a source not heard from lately is a new querier, once; the
 * same source again is not, until it has been silent for two minutes. */
static void test_new_querier(void **state)
{
    seen_t sa = {0}, sb = {0};
    cp2p_mdns_engine_t *a = engine(ID_A, "peera", &sa), *b = engine(ID_B, "peerb", &sb);
    set_addrs(a, addrs_a, 4);
    cp2p_buf_t q = {0}, reply = {0};
    assert_int_equal(cp2p_mdns_engine_query(b, &q), 0);
    const uint8_t src1[] = {10, 77, 0, 2, 0x14, 0xe9}, src2[] = {10, 77, 0, 3, 0x14, 0xe9};
    assert_int_equal(cp2p_mdns_engine_take_new_querier(a), 0);
    assert_int_equal(cp2p_mdns_engine_input(a, 0, src1, sizeof src1, q.data, q.len, 1000, &reply), 0);
    assert_int_equal(cp2p_mdns_engine_take_new_querier(a), 1);
    assert_int_equal(cp2p_mdns_engine_take_new_querier(a), 0);
    /* Known: also when the reply itself is rate-limited. */
    assert_int_equal(cp2p_mdns_engine_input(a, 0, src1, sizeof src1, q.data, q.len, 1500, &reply), 0);
    assert_int_equal(cp2p_mdns_engine_take_new_querier(a), 0);
    assert_int_equal(cp2p_mdns_engine_input(a, 0, src2, sizeof src2, q.data, q.len, 1600, &reply), 0);
    assert_int_equal(cp2p_mdns_engine_take_new_querier(a), 1);
    assert_int_equal(cp2p_mdns_engine_input(a, 0, src1, sizeof src1, q.data, q.len, 200000, &reply), 0);
    assert_int_equal(cp2p_mdns_engine_take_new_querier(a), 1);
    /* A response is no query; a source too long is not remembered. */
    assert_int_equal(cp2p_mdns_engine_input(b, 0, src2, sizeof src2, reply.data, reply.len, 2000, &q), 0);
    assert_int_equal(cp2p_mdns_engine_take_new_querier(b), 0);
    uint8_t big[CP2P_MDNS_MAX_SOURCE + 1] = {1};
    cp2p_buf_t q2 = {0};
    assert_int_equal(cp2p_mdns_engine_query(b, &q2), 0);
    assert_int_equal(cp2p_mdns_engine_input(a, 0, big, sizeof big, q2.data, q2.len, 300000, &reply), 0);
    assert_int_equal(cp2p_mdns_engine_take_new_querier(a), 0);
    /* Many sources: the table stays bounded and the oldest make room. */
    for (unsigned i = 0; i < 1000; i++) {
        uint8_t src[4] = {(uint8_t)(i >> 8), (uint8_t)i, 1, 2};
        cp2p_mdns_engine_input(a, 0, src, sizeof src, q2.data, q2.len, 400000 + i, &reply);
        assert_int_equal(cp2p_mdns_engine_take_new_querier(a), 1);
    }
    cp2p_buf_free(&q);
    cp2p_buf_free(&q2);
    cp2p_buf_free(&reply);
    cp2p_mdns_engine_free(a);
    cp2p_mdns_engine_free(b);
}

static void load_hex(cp2p_buf_t *pkt, const char *hex)
{
    cp2p_buf_reset(pkt);
    assert_int_equal(cp2p_buf_reserve(pkt, strlen(hex) / 2), 0);
    pkt->len = unhex(hex, pkt->data);
}

static int input_from(cp2p_mdns_engine_t *e, const uint8_t *src, size_t src_len,
                      const cp2p_buf_t *pkt, uint64_t now)
{
    cp2p_buf_t none = {0};
    int rc = cp2p_mdns_engine_input(e, 0, src, src_len, pkt->data, pkt->len, now, &none);
    assert_int_equal(none.len, 0);
    return rc;
}

/* rust-libp2p's instance is found through its PTR record; a TXT record of a
 * name no PTR of our service points to, outside the service, is not ours. */
static void test_rust_response(void **state)
{
    seen_t s = {0};
    cp2p_mdns_engine_t *e = engine(ID_B, "peerb", &s);
    const uint8_t src[] = {10, 77, 0, 3, 0xa3, 0x4e};
    cp2p_buf_t pkt = {0};
    load_hex(&pkt, rust_response_hex);
    assert_int_equal(input_from(e, src, sizeof src, &pkt, 1000), 0);
    assert_int_equal(s.discovered, 1);
    assert_string_equal(s.last, ID_RUST " /ip4/10.77.0.3/tcp/37569");
    assert_int_equal(cp2p_mdns_engine_expire(e, 1000), 121000); /* its TTL, 120 s */

    cp2p_dns_name_t svc, other, stray;
    cp2p_dns_name_from_text("_p2p._udp.local", &svc);
    cp2p_dns_name_from_text("_http._tcp.local", &other);
    cp2p_dns_name_from_text("stray", &stray);
    const char *txt = "dnsaddr=/ip4/10.77.0.9/tcp/1/p2p/" ID_A;
    cp2p_buf_reset(&pkt);
    cp2p_dns_put_header(&pkt, 0, CP2P_DNS_FLAG_QR, 0, 0, 0, 1);
    cp2p_dns_put_txt(&pkt, &stray, 120, &txt, 1);
    assert_int_equal(input_from(e, src, sizeof src, &pkt, 2000), 0);
    cp2p_buf_reset(&pkt); /* pointed to, but by another service */
    cp2p_dns_put_header(&pkt, 0, CP2P_DNS_FLAG_QR, 0, 1, 0, 1);
    cp2p_dns_put_ptr(&pkt, &other, 120, &stray);
    cp2p_dns_put_txt(&pkt, &stray, 120, &txt, 1);
    assert_int_equal(input_from(e, src, sizeof src, &pkt, 2000), 0);
    assert_int_equal(s.discovered, 1);
    cp2p_buf_reset(&pkt); /* pointed to by ours: read, and checked like any */
    cp2p_dns_put_header(&pkt, 0, CP2P_DNS_FLAG_QR, 0, 1, 0, 1);
    cp2p_dns_put_ptr(&pkt, &svc, 120, &stray);
    cp2p_dns_put_txt(&pkt, &stray, 120, &txt, 1);
    assert_int_equal(input_from(e, src, sizeof src, &pkt, 2000), 0);
    assert_int_equal(s.discovered, 2);
    assert_string_equal(s.last, ID_A " /ip4/10.77.0.9/tcp/1");
    cp2p_buf_free(&pkt);
    cp2p_mdns_engine_free(e);
}

/* go-libp2p's answer: its loopback address is left out when it came over the
 * link, kept when it came over loopback; its goodbye expires the rest. */
static void test_go_response(void **state)
{
    seen_t s = {0}, sl = {0};
    cp2p_mdns_engine_t *e = engine(ID_B, "peerb", &s), *l = engine(ID_B, "peerl", &sl);
    const uint8_t src[] = {10, 77, 0, 2, 0x14, 0xe9}, lo[] = {127, 0, 0, 1, 0x14, 0xe9};
    uint8_t lo6[18] = {[15] = 1, [16] = 0x14, [17] = 0xe9};
    cp2p_buf_t pkt = {0};
    load_hex(&pkt, go_response_hex);
    assert_int_equal(input_from(e, src, sizeof src, &pkt, 1000), 0);
    assert_int_equal(s.discovered, 1);
    assert_string_equal(s.last, ID_GO " /ip4/10.77.0.2/tcp/42239");
    assert_int_equal(input_from(l, lo, sizeof lo, &pkt, 1000), 0);
    assert_int_equal(sl.discovered, 2);
    assert_int_equal(input_from(l, lo6, sizeof lo6, &pkt, 1000), 0);
    assert_int_equal(sl.refreshed, 2);

    load_hex(&pkt, go_goodbye_hex);
    assert_int_equal(input_from(e, src, sizeof src, &pkt, 5000), 0);
    assert_int_equal(cp2p_mdns_engine_expire(e, 5999), 6000);
    assert_int_equal(s.expired, 0);
    assert_int_equal(cp2p_mdns_engine_expire(e, 6000), UINT64_MAX);
    assert_int_equal(s.expired, 1);
    assert_int_equal(cp2p_mdns_engine_stats(e)->rx_rejected, 0);
    /* With loopback on (peers on this host, cp2p mdns --loopback), the
     * loopback address is kept whatever the source: multicast over lo may
     * leave from the host's own address. */
    seen_t so = {0};
    cp2p_peer_id_t self;
    assert_int_equal(cp2p_peer_id_parse(ID_B, &self), 0);
    cp2p_mdns_engine_config_t cfg = {.peer_name = "peero", .loopback = 1};
    cp2p_mdns_engine_t *o;
    assert_int_equal(cp2p_mdns_engine_new(&cfg, &self, on_event, &so, &o), 0);
    load_hex(&pkt, go_response_hex);
    assert_int_equal(input_from(o, src, sizeof src, &pkt, 1000), 0);
    assert_int_equal(so.discovered, 2);
    cp2p_mdns_engine_free(o);
    cp2p_buf_free(&pkt);
    cp2p_mdns_engine_free(e);
    cp2p_mdns_engine_free(l);
}

/* One peer's response announcing n addresses 10.9.<k>.<i>. */
static void fresh_peer_response(unsigned k, size_t n, cp2p_buf_t *out)
{
    cp2p_privkey_t *key;
    cp2p_peer_id_t id;
    char ids[CP2P_PEER_ID_STRMAX];
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &key), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(key), &id), 0);
    assert_int_equal(cp2p_peer_id_to_string(&id, ids, sizeof ids), 0);
    seen_t unused = {0};
    cp2p_mdns_engine_t *x = engine(ids, NULL, &unused);
    cp2p_multiaddr_t ma[CP2P_MDNS_MAX_ANNOUNCED];
    for (size_t i = 0; i < n; i++) {
        char a[64];
        snprintf(a, sizeof a, "/ip4/10.9.%u.%zu/tcp/4001", k, i + 1);
        assert_int_equal(cp2p_multiaddr_parse(a, &ma[i]), 0);
    }
    assert_int_equal(cp2p_mdns_engine_set_addrs(x, ma, n), 0);
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&ma[i]);
    assert_int_equal(cp2p_mdns_engine_response(x, 120, out), 0);
    cp2p_mdns_engine_free(x);
    cp2p_privkey_free(key);
}

/* One peer, or one sender making up peers, cannot take the whole table
 * (issue #13): a real peer is still found after the flood. */
static void test_table_shares(void **state)
{
    seen_t sv = {0}, sa = {0};
    cp2p_mdns_engine_t *v = engine(ID_B, "victim", &sv), *a = engine(ID_A, "peera", &sa);
    set_addrs(a, addrs_a, 4);
    const uint8_t evil[] = {10, 9, 0, 1, 0x14, 0xe9}, honest[] = {10, 77, 0, 1, 0x14, 0xe9};
    cp2p_buf_t b = {0};
    fresh_peer_response(0, 40, &b);
    assert_int_equal(cp2p_mdns_engine_input(v, 0, evil, sizeof evil, b.data, b.len, 1000, &b), 0);
    assert_int_equal(sv.discovered, CP2P_MDNS_MAX_PER_PEER);
    assert_int_equal(cp2p_mdns_engine_stats(v)->over_limit, 40 - CP2P_MDNS_MAX_PER_PEER);
    for (unsigned k = 1; k <= 40; k++) {
        cp2p_buf_reset(&b);
        fresh_peer_response(k, 40, &b);
        cp2p_mdns_engine_input(v, 0, evil, sizeof evil, b.data, b.len, 1000 + k, &b);
    }
    assert_int_equal(cp2p_mdns_engine_tracked(v), CP2P_MDNS_MAX_PER_SOURCE);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_mdns_engine_response(a, 120, &b), 0);
    int before = sv.discovered;
    assert_int_equal(cp2p_mdns_engine_input(v, 0, honest, sizeof honest, b.data, b.len, 2000, &b), 0);
    assert_int_equal(sv.discovered, before + 2); /* loopback and link-local stay out */
    assert_true(strstr(sv.last, ID_A) != NULL);
    cp2p_buf_free(&b);
    cp2p_mdns_engine_free(v);
    cp2p_mdns_engine_free(a);
}

/* A response with one TXT record for <label>._p2p._udp.local. */
static void txt_response(cp2p_buf_t *b, const char *label, uint16_t cls, const char *txt)
{
    cp2p_dns_name_t svc, inst;
    cp2p_dns_name_from_text("_p2p._udp.local", &svc);
    assert_int_equal(cp2p_dns_name_prepend(label, strlen(label), &svc, &inst), 0);
    assert_int_equal(cp2p_dns_put_header(b, 0, CP2P_DNS_FLAG_QR, 0, 1, 0, 1), 0);
    assert_int_equal(cp2p_dns_put_ptr(b, &svc, 120, &inst), 0);
    size_t at = b->len + inst.len + 2;
    assert_int_equal(cp2p_dns_put_txt(b, &inst, 120, &txt, 1), 0);
    b->data[at] = (uint8_t)(cls >> 8);
    b->data[at + 1] = (uint8_t)cls;
}

static void test_hostile(void **state)
{
    seen_t s = {0};
    cp2p_mdns_engine_t *e = engine(ID_B, "peerb", &s);
    set_addrs(e, addrs_a, 1);
    cp2p_mdns_stats_t *st = cp2p_mdns_engine_stats(e);
    cp2p_buf_t b = {0}, reply = {0};
    struct {
        uint16_t cls;
        const char *txt;
        int rc;
    } cases[] = {
        {3, "dnsaddr=/ip4/10.0.0.1/tcp/1/p2p/" ID_A, CP2P_EPROTO}, /* class CH */
        {1, "dnsaddr=/ip4/300.0.0.1/tcp/1/p2p/" ID_A, CP2P_EPROTO},
        {1, "dnsaddr=/ip4/10.0.0.1/tcp/1", CP2P_EPROTO},            /* no peer id */
        {1, "dnsaddr=/p2p/" ID_A, CP2P_EPROTO},                     /* no address */
        {1, "dnsaddr=/ip4/10.0.0.1/tcp/1/p2p/" ID_A "/tcp/2", CP2P_EPROTO},
        {1, "something=else", 0},                                    /* not ours to read */
        {1, "dnsaddr=/ip4/10.0.0.1/tcp/1/p2p/" ID_B, 0},             /* our own id */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cp2p_buf_reset(&b);
        txt_response(&b, "evil", cases[i].cls, cases[i].txt);
        assert_int_equal(input(e, 0, &b, 0, NULL), cases[i].rc);
    }
    assert_int_equal(st->rx_rejected, 5);
    assert_int_equal(s.discovered, 0);

    /* A wrong class on a question about us; a question with class ANY is fine. */
    cp2p_dns_name_t svc, other;
    cp2p_dns_name_from_text("_p2p._udp.local", &svc);
    cp2p_dns_name_from_text("_http._tcp.local", &other);
    cp2p_buf_reset(&b);
    cp2p_dns_put_header(&b, 0, 0, 1, 0, 0, 0);
    cp2p_dns_put_question(&b, &svc, CP2P_DNS_TYPE_PTR, 3);
    assert_int_equal(input(e, 0, &b, 0, &reply), CP2P_EPROTO);
    assert_int_equal(reply.len, 0);
    assert_int_equal(st->rx_rejected, 6);
    cp2p_buf_reset(&b);
    cp2p_dns_put_header(&b, 0, 0, 1, 0, 0, 0);
    cp2p_dns_put_question(&b, &svc, CP2P_DNS_TYPE_ANY, CP2P_DNS_CLASS_ANY | 0x8000);
    assert_int_equal(input(e, 0, &b, 0, &reply), 0);
    assert_true(reply.len > 0);
    /* Other services' questions and records are none of our business. */
    cp2p_buf_reset(&b);
    cp2p_buf_reset(&reply);
    cp2p_dns_put_header(&b, 0, 0, 1, 0, 0, 0);
    cp2p_dns_put_question(&b, &other, CP2P_DNS_TYPE_PTR, CP2P_DNS_CLASS_IN);
    assert_int_equal(input(e, 1, &b, 0, &reply), 0);
    assert_int_equal(reply.len, 0);
    cp2p_buf_reset(&b);
    const char *junk = "dnsaddr=junk";
    cp2p_dns_put_header(&b, 0, CP2P_DNS_FLAG_QR, 0, 1, 0, 0);
    cp2p_dns_put_txt(&b, &other, 120, &junk, 1);
    assert_int_equal(input(e, 0, &b, 0, NULL), 0);

    /* Malformed, another opcode, an error rcode. */
    uint8_t bad[] = {0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 12};
    assert_int_equal(cp2p_mdns_engine_input(e, 0, NULL, 0, bad, sizeof bad, 0, &reply), CP2P_ETRUNC);
    cp2p_buf_reset(&b);
    txt_response(&b, "x", 1, "dnsaddr=/ip4/10.0.0.1/tcp/1/p2p/" ID_A);
    b.data[2] |= 0x28; /* opcode 5 */
    assert_int_equal(input(e, 0, &b, 0, NULL), CP2P_EUNSUPPORTED);
    b.data[2] &= 0x87;
    b.data[3] |= 3; /* NXDOMAIN */
    assert_int_equal(input(e, 0, &b, 0, NULL), CP2P_EUNSUPPORTED);
    assert_int_equal(st->rx_malformed, 3);
    assert_int_equal(s.discovered, 0);
    assert_int_equal(cp2p_mdns_engine_input(e, CP2P_MDNS_MAX_LINKS, NULL, 0, bad, sizeof bad, 0, &reply),
                     CP2P_EINVAL);

    /* The same packet, well formed, is believed. */
    b.data[3] &= 0xf0;
    assert_int_equal(input(e, 0, &b, 0, NULL), 0);
    assert_int_equal(s.discovered, 1);
    assert_int_equal(st->rx_packets, 15);
    cp2p_buf_free(&b);
    cp2p_buf_free(&reply);
    cp2p_mdns_engine_free(e);
}

static void test_config(void **state)
{
    cp2p_peer_id_t self;
    cp2p_mdns_engine_t *e;
    assert_int_equal(cp2p_peer_id_parse(ID_A, &self), 0);
    cp2p_mdns_engine_config_t cfg = {.peer_name = "has.dot"};
    assert_int_equal(cp2p_mdns_engine_new(&cfg, &self, NULL, NULL, &e), CP2P_EINVAL);
    cfg.peer_name = "0123456789012345678901234567890123456789012345678901234567890123"; /* 64 */
    assert_int_equal(cp2p_mdns_engine_new(&cfg, &self, NULL, NULL, &e), CP2P_EINVAL);
    cfg.peer_name = NULL;
    cfg.service = "_p2p-abc._udp.local";
    cfg.loopback = 1;
    assert_int_equal(cp2p_mdns_engine_new(&cfg, &self, NULL, NULL, &e), 0);
    set_addrs(e, addrs_a, 2);
    cp2p_buf_t q = {0}, r = {0};
    assert_int_equal(cp2p_mdns_engine_query(e, &q), 0);
    cp2p_dns_msg_t m;
    assert_int_equal(cp2p_dns_decode(q.data, q.len, &m), 0);
    char text[256];
    cp2p_dns_name_to_text(&m.q[0].name, text, sizeof text);
    assert_string_equal(text, "_p2p-abc._udp.local");
    cp2p_dns_msg_free(&m);
    /* With loopback on, 127.0.0.1 is announced too. */
    assert_int_equal(cp2p_mdns_engine_response(e, 120, &r), 0);
    assert_int_equal(cp2p_dns_decode(r.data, r.len, &m), 0);
    assert_int_equal(m.nar, 1 + 2 + 2); /* SRV, two A, two TXT */
    cp2p_dns_msg_free(&m);
    cp2p_buf_free(&q);
    cp2p_buf_free(&r);
    cp2p_mdns_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response),   cmocka_unit_test(test_js_response),
        cmocka_unit_test(test_rust_response), cmocka_unit_test(test_go_response),
        cmocka_unit_test(test_between_engines), cmocka_unit_test(test_new_querier),
        cmocka_unit_test(test_table_shares),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
