/* Peerstore: address TTLs and expiry, limits, eviction of the least recently seen peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peerstore.h"

static cp2p_peer_id_t pid(uint32_t n)
{
    cp2p_peer_id_t id = {.len = 6};
    id.bytes[0] = 0x00; /* identity multihash, 4 bytes of digest */
    id.bytes[1] = 4;
    memcpy(&id.bytes[2], &n, 4);
    return id;
}

/* /ip4/10.0.<hi>.<lo>/tcp/4001 in binary form */
static uint8_t addr_bytes[300][8];
static cp2p_multiaddr_t addr(unsigned n)
{
    uint8_t *b = addr_bytes[n];
    const uint8_t tmpl[8] = {0x04, 10, 0, 0, 0, 0x06, 0x0f, 0xa1};
    memcpy(b, tmpl, 8);
    b[3] = (uint8_t)(n >> 8);
    b[4] = (uint8_t)n;
    return (cp2p_multiaddr_t){b, 8};
}

static int has_addr(cp2p_peerstore_t *ps, const cp2p_peer_id_t *p, uint64_t now, unsigned n)
{
    cp2p_multiaddr_t out[CP2P_PEERSTORE_MAX_ADDRS];
    size_t k = cp2p_peerstore_addrs(ps, p, now, out, CP2P_PEERSTORE_MAX_ADDRS);
    cp2p_multiaddr_t want = addr(n);
    for (size_t i = 0; i < k && i < CP2P_PEERSTORE_MAX_ADDRS; i++)
        if (out[i].len == want.len && memcmp(out[i].bytes, want.bytes, want.len) == 0)
            return 1;
    return 0;
}

static void test_addr_ttl(void **state)
{
    cp2p_peerstore_t *ps;
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    cp2p_peer_id_t p = pid(1);
    cp2p_multiaddr_t a[2] = {addr(1), addr(2)};
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, a, 2, 1000, 0), 0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 999, NULL, 0), 2);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 1000, NULL, 0), 0);
    /* add keeps the later expiry, set takes the new one exactly */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, a, 1, 10, 0), 0);
    assert_true(has_addr(ps, &p, 500, 1));
    assert_int_equal(cp2p_peerstore_set_addrs(ps, &p, a, 1, 10, 0), 0);
    assert_false(has_addr(ps, &p, 500, 1));
    assert_true(has_addr(ps, &p, 500, 2));
    /* set with TTL 0 removes */
    assert_int_equal(cp2p_peerstore_set_addrs(ps, &p, &a[1], 1, 0, 0), 0);
    assert_false(has_addr(ps, &p, 0, 2));
    /* connected addresses live until their TTL is changed */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, a, 2, CP2P_TTL_CONNECTED, 0), 0);
    assert_true(has_addr(ps, &p, UINT64_MAX - 1, 2));
    assert_int_equal(cp2p_peerstore_update_addrs_ttl(ps, &p, CP2P_TTL_CONNECTED,
                                                     CP2P_TTL_RECENTLY_CONNECTED, 100), 0);
    assert_true(has_addr(ps, &p, 100 + CP2P_TTL_RECENTLY_CONNECTED - 1, 1));
    assert_false(has_addr(ps, &p, 100 + CP2P_TTL_RECENTLY_CONNECTED, 1));
    cp2p_peerstore_expire(ps, 100 + CP2P_TTL_RECENTLY_CONNECTED);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 0, NULL, 0), 0);
    /* a huge TTL does not wrap around */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, a, 1, UINT64_MAX - 5, 100), 0);
    assert_true(has_addr(ps, &p, UINT64_MAX - 1, 1));
    /* empty and oversized addresses are skipped */
    cp2p_multiaddr_t bad[2] = {{NULL, 0}, {addr_bytes[0], 100000}};
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, bad, 2, 1000, 0), 0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 0, NULL, 0), 1);
    cp2p_peerstore_free(ps);
}

/* An address with /p2p/<the peer> at its end (how rust-libp2p's DHT answers
 * write the addresses it dialed) is the address without it: one entry, given
 * without the suffix; one ending in /p2p/ of another peer is not the peer's. */
static void test_addr_p2p_suffix(void **state)
{
    cp2p_peerstore_t *ps;
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    cp2p_peer_id_t p = pid(1), q = pid(2);
    uint8_t own[32], other[32], bare[16];
    cp2p_multiaddr_t a1 = addr(1);
    memcpy(own, a1.bytes, 8);
    own[8] = 0xa5, own[9] = 0x03, own[10] = p.len; /* /p2p/ (421), then the multihash */
    memcpy(own + 11, p.bytes, p.len);
    memcpy(other, own, sizeof other);
    memcpy(other + 11, q.bytes, q.len);
    memcpy(bare, own + 8, 3 + p.len); /* nothing but /p2p/<peer> */
    cp2p_multiaddr_t check;
    assert_int_equal(cp2p_multiaddr_from_bytes(own, 11 + p.len, &check), 0);
    cp2p_multiaddr_free(&check);
    cp2p_multiaddr_t in[4] = {{own, 11 + p.len}, addr(1), {other, 11 + q.len}, {bare, 3 + p.len}};
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, in, 4, 1000, 0), 0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 0, NULL, 0), 1);
    assert_true(has_addr(ps, &p, 0, 1));
    /* for q, /p2p/<q> is its own suffix */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &q, &in[2], 1, 1000, 0), 0);
    assert_true(has_addr(ps, &q, 0, 1));
    /* the suffixed form removes the address kept without it */
    assert_int_equal(cp2p_peerstore_set_addrs(ps, &p, in, 1, 0, 0), 0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 0, NULL, 0), 0);
    cp2p_peerstore_free(ps);
}

/* The freshest addresses are kept: a full list makes room by dropping the
 * expired ones first, then the oldest. */
static void test_addr_limit(void **state)
{
    cp2p_peerstore_t *ps;
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    cp2p_peer_id_t p = pid(7);
    for (unsigned i = 0; i < 100; i++) {
        cp2p_multiaddr_t a = addr(i);
        assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, &a, 1, 1000, 0), 0);
    }
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 0, NULL, 0), CP2P_PEERSTORE_MAX_ADDRS);
    assert_true(has_addr(ps, &p, 0, 99));
    assert_true(has_addr(ps, &p, 0, 100 - CP2P_PEERSTORE_MAX_ADDRS));
    assert_false(has_addr(ps, &p, 0, 99 - CP2P_PEERSTORE_MAX_ADDRS));
    cp2p_peerstore_free(ps);

    /* expired ones go first */
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    for (unsigned i = 0; i < CP2P_PEERSTORE_MAX_ADDRS; i++) {
        cp2p_multiaddr_t a = addr(i);
        assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, &a, 1, i >= 10 && i < 20 ? 50 : 1000,
                                                  0), 0);
    }
    cp2p_multiaddr_t a = addr(99);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, &a, 1, 1000, 60), 0);
    assert_true(has_addr(ps, &p, 60, 99));
    assert_true(has_addr(ps, &p, 60, 0)); /* the oldest, yet not expired */
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 60, NULL, 0), CP2P_PEERSTORE_MAX_ADDRS - 9);
    cp2p_peerstore_free(ps);
}

static void add_from(cp2p_peerstore_t *ps, const cp2p_peer_id_t *p, unsigned first, unsigned n,
                     cp2p_addr_source_t src)
{
    for (unsigned i = first; i < first + n; i++) {
        cp2p_multiaddr_t a = addr(i);
        assert_int_equal(cp2p_peerstore_add_addrs_from(ps, p, &a, 1, 1000, 0, src), 0);
    }
}

static int index_of(cp2p_peerstore_t *ps, const cp2p_peer_id_t *p, unsigned n)
{
    cp2p_multiaddr_t out[CP2P_PEERSTORE_MAX_ADDRS];
    size_t k = cp2p_peerstore_addrs(ps, p, 0, out, CP2P_PEERSTORE_MAX_ADDRS);
    cp2p_multiaddr_t want = addr(n);
    for (size_t i = 0; i < k && i < CP2P_PEERSTORE_MAX_ADDRS; i++)
        if (out[i].len == want.len && memcmp(out[i].bytes, want.bytes, want.len) == 0)
            return (int)i;
    return -1;
}

/* What third parties say never displaces what the peer said or a
 * connection proved; listing (dialling) order is best source, then newest. */
static void test_addr_sources(void **state)
{
    cp2p_peerstore_t *ps;
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    cp2p_peer_id_t p = pid(9);
    add_from(ps, &p, 1, 2, CP2P_ADDR_CLAIMED);
    add_from(ps, &p, 3, 1, CP2P_ADDR_CONFIRMED);
    assert_int_equal(index_of(ps, &p, 3), 0);
    assert_int_equal(index_of(ps, &p, 2), 1);
    assert_int_equal(index_of(ps, &p, 1), 2);

    /* a flood of third-party addresses: the newest few are held, last */
    add_from(ps, &p, 100, 40, CP2P_ADDR_THIRD_PARTY);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 0, NULL, 0),
                     3 + CP2P_PEERSTORE_MAX_THIRD_PARTY_ADDRS);
    assert_int_equal(index_of(ps, &p, 139), 3);
    assert_int_equal(index_of(ps, &p, 100), -1);
    assert_int_equal(index_of(ps, &p, 3), 0);
    /* and never passed on */
    assert_int_equal(cp2p_peerstore_addrs_from(ps, &p, 0, CP2P_ADDR_CLAIMED, NULL, 0), 3);

    /* a third party repeating a claimed address does not demote it; the
     * peer claiming a third-party address raises it */
    add_from(ps, &p, 1, 1, CP2P_ADDR_THIRD_PARTY);
    assert_int_equal(cp2p_peerstore_addrs_from(ps, &p, 0, CP2P_ADDR_CLAIMED, NULL, 0), 3);
    add_from(ps, &p, 139, 1, CP2P_ADDR_CLAIMED);
    assert_int_equal(cp2p_peerstore_addrs_from(ps, &p, 0, CP2P_ADDR_CLAIMED, NULL, 0), 4);
    assert_int_equal(index_of(ps, &p, 139), 1); /* the newest claim */

    /* claims fill the list: third-party addresses make room first */
    add_from(ps, &p, 200, CP2P_PEERSTORE_MAX_ADDRS - 4, CP2P_ADDR_CLAIMED);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 0, NULL, 0), CP2P_PEERSTORE_MAX_ADDRS);
    assert_int_equal(cp2p_peerstore_addrs_from(ps, &p, 0, CP2P_ADDR_CLAIMED, NULL, 0),
                     CP2P_PEERSTORE_MAX_ADDRS);
    /* now a third party finds no room, and a newer claim displaces the oldest claim */
    add_from(ps, &p, 150, 1, CP2P_ADDR_THIRD_PARTY);
    assert_int_equal(index_of(ps, &p, 150), -1);
    add_from(ps, &p, 290, 1, CP2P_ADDR_CLAIMED);
    assert_true(index_of(ps, &p, 290) >= 0);
    assert_int_equal(index_of(ps, &p, 1), -1);
    assert_int_equal(index_of(ps, &p, 3), 0); /* the confirmed one stays first */

    /* replacing the claims leaves what a connection confirmed */
    cp2p_peerstore_free(ps);
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    cp2p_multiaddr_t a[2] = {addr(1), addr(2)};
    assert_int_equal(cp2p_peerstore_add_addrs_from(ps, &p, a, 1, CP2P_TTL_CONNECTED, 0,
                                                   CP2P_ADDR_CONFIRMED), 0);
    assert_int_equal(cp2p_peerstore_add_addrs_from(ps, &p, a, 2, CP2P_TTL_CONNECTED, 0,
                                                   CP2P_ADDR_CLAIMED), 0);
    assert_int_equal(cp2p_peerstore_update_addrs_ttl_from(ps, &p, CP2P_ADDR_CLAIMED,
                                                          CP2P_TTL_CONNECTED, 0, 0), 0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &p, 0, NULL, 0), 1);
    assert_true(has_addr(ps, &p, 0, 1));
    assert_int_equal(cp2p_peerstore_add_addrs_from(ps, &p, a, 1, 10, 0, 7), CP2P_EINVAL);
    cp2p_peerstore_free(ps);
}

static void test_eviction(void **state)
{
    cp2p_peerstore_t *ps;
    assert_int_equal(cp2p_peerstore_new(3, &ps), 0);
    cp2p_peer_id_t p[5];
    for (uint32_t i = 0; i < 5; i++)
        p[i] = pid(100 + i);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cp2p_peerstore_set_agent_version(ps, &p[i], "a"), 0);
    assert_int_equal(cp2p_peerstore_touch(ps, &p[0]), 0); /* p[1] is now the oldest */
    assert_int_equal(cp2p_peerstore_set_agent_version(ps, &p[3], "b"), 0);
    assert_int_equal(cp2p_peerstore_count(ps), 3);
    assert_null(cp2p_peerstore_agent_version(ps, &p[1]));
    assert_string_equal(cp2p_peerstore_agent_version(ps, &p[0]), "a");
    cp2p_peer_id_t list[3];
    assert_int_equal(cp2p_peerstore_peers(ps, list, 3), 3);
    assert_memory_equal(&list[0], &p[3], sizeof p[3]);
    assert_memory_equal(&list[1], &p[0], sizeof p[0]);
    assert_memory_equal(&list[2], &p[2], sizeof p[2]);
    assert_int_equal(cp2p_peerstore_remove(ps, &p[0]), 0);
    assert_int_equal(cp2p_peerstore_remove(ps, &p[0]), CP2P_ENOTFOUND);
    assert_int_equal(cp2p_peerstore_count(ps), 2);
    cp2p_peerstore_free(ps);
}

static void test_many_peers(void **state)
{
    cp2p_peerstore_t *ps;
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    for (uint32_t i = 0; i < CP2P_PEERSTORE_DEFAULT_MAX_PEERS + 500; i++) {
        cp2p_peer_id_t p = pid(i);
        cp2p_multiaddr_t a = addr(i % 300);
        assert_int_equal(cp2p_peerstore_add_addrs(ps, &p, &a, 1, 1000, 0), 0);
    }
    assert_int_equal(cp2p_peerstore_count(ps), CP2P_PEERSTORE_DEFAULT_MAX_PEERS);
    cp2p_peer_id_t first = pid(0), last = pid(CP2P_PEERSTORE_DEFAULT_MAX_PEERS + 499);
    assert_int_equal(cp2p_peerstore_addrs(ps, &first, 0, NULL, 0), 0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &last, 0, NULL, 0), 1);
    cp2p_peerstore_free(ps);
}

static void test_protocols_and_strings(void **state)
{
    cp2p_peerstore_t *ps;
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    cp2p_peer_id_t p = pid(9);
    const char *protos[] = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"};
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &p, protos, 2), 0);
    assert_true(cp2p_peerstore_supports(ps, &p, "/ipfs/ping/1.0.0"));
    assert_false(cp2p_peerstore_supports(ps, &p, "/echo/1.0.0"));
    const char *out[4];
    assert_int_equal(cp2p_peerstore_protocols(ps, &p, out, 4), 2);
    assert_string_equal(out[1], "/ipfs/id/1.0.0");
    /* a bad list changes nothing */
    const char *bad[] = {"/a", ""};
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &p, bad, 2), CP2P_EINVAL);
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &p, protos,
                                                  CP2P_PEERSTORE_MAX_PROTOCOLS + 1),
                     CP2P_ELIMIT);
    assert_true(cp2p_peerstore_supports(ps, &p, "/ipfs/id/1.0.0"));
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &p, NULL, 0), 0);
    assert_false(cp2p_peerstore_supports(ps, &p, "/ipfs/id/1.0.0"));

    char longs[CP2P_PEERSTORE_MAX_STRING + 1];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    assert_int_equal(cp2p_peerstore_set_agent_version(ps, &p, longs), CP2P_EINVAL);
    assert_int_equal(cp2p_peerstore_set_protocol_version(ps, &p, "ipfs/0.1.0"), 0);
    assert_string_equal(cp2p_peerstore_protocol_version(ps, &p), "ipfs/0.1.0");

    size_t n;
    uint64_t seq;
    assert_null(cp2p_peerstore_record(ps, &p, &n, &seq));
    assert_int_equal(cp2p_peerstore_set_record(ps, &p, (const uint8_t *)"env1", 4, 5), 0);
    assert_int_equal(cp2p_peerstore_set_record(ps, &p, (const uint8_t *)"env0", 4, 5),
                     CP2P_EEXIST);
    assert_int_equal(cp2p_peerstore_set_record(ps, &p, (const uint8_t *)"env22", 5, 6), 0);
    const uint8_t *r = cp2p_peerstore_record(ps, &p, &n, &seq);
    assert_int_equal(n, 5);
    assert_int_equal(seq, 6);
    assert_memory_equal(r, "env22", 5);
    cp2p_peerstore_free(ps);
}

static void test_pubkey(void **state)
{
    cp2p_peerstore_t *ps;
    assert_int_equal(cp2p_peerstore_new(0, &ps), 0);
    cp2p_privkey_t *k1, *k2;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &k1), 0);
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &k2), 0);
    cp2p_peer_id_t id1;
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k1), &id1), 0);
    assert_null(cp2p_peerstore_pubkey(ps, &id1));
    assert_int_equal(cp2p_peerstore_set_pubkey(ps, &id1, cp2p_privkey_public(k2)), CP2P_EPEERID);
    assert_null(cp2p_peerstore_pubkey(ps, &id1));
    assert_int_equal(cp2p_peerstore_set_pubkey(ps, &id1, cp2p_privkey_public(k1)), 0);
    assert_true(cp2p_pubkey_equal(cp2p_peerstore_pubkey(ps, &id1), cp2p_privkey_public(k1)));
    cp2p_privkey_free(k1);
    cp2p_privkey_free(k2);
    cp2p_peerstore_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_ttl),
        cmocka_unit_test(test_addr_limit),
        cmocka_unit_test(test_addr_p2p_suffix),
        cmocka_unit_test(test_addr_sources),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_many_peers),
        cmocka_unit_test(test_protocols_and_strings),
        cmocka_unit_test(test_pubkey),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
