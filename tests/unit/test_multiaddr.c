/* Multiaddr: the spec's and go-multiaddr's valid and invalid addresses, binary
 * vectors, round trips, encapsulation and component access. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/multiaddr.h"

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        sscanf(h + 2 * i, "%2x", &x);
        out[i] = (uint8_t)x;
    }
    return n;
}

/* s parses to the binary hex, and both forms print as `canon`. */
static void vector(const char *s, const char *hex, const char *canon)
{
    uint8_t want[CP2P_MULTIADDR_MAX];
    size_t n = hex ? unhex(hex, want) : 0;
    cp2p_multiaddr_t ma = {0}, mb = {0};
    cp2p_buf_t t = {0};
    if (cp2p_multiaddr_parse(s, &ma) != 0)
        fail_msg("should parse: %s", s);
    if (hex) {
        assert_int_equal(ma.len, n);
        assert_memory_equal(ma.bytes, want, n);
    }
    assert_int_equal(cp2p_multiaddr_from_bytes(ma.bytes, ma.len, &mb), 0);
    assert_int_equal(cp2p_multiaddr_to_string(&mb, &t), 0);
    assert_string_equal((const char *)t.data, canon ? canon : s);
    assert_int_equal(t.len, strlen((const char *)t.data));
    cp2p_multiaddr_free(&ma);
    cp2p_multiaddr_free(&mb);
    cp2p_buf_free(&t);
}

static void test_binary_vectors(void **state)
{
    vector("/ip4/127.0.0.1/tcp/4001", "047f000001060fa1", NULL);
    vector("/ip4/192.0.2.42/tcp/443", "04c000022a0601bb", NULL);
    vector("/ip4/127.0.0.1/udp/1234", "047f000001910204d2", NULL);
    vector("/ip4/127.0.0.1/tcp/4321", "047f0000010610e1", NULL);
    vector("/ip4/127.0.0.1/udp/1234/ip4/127.0.0.1/tcp/4321",
           "047f000001910204d2047f0000010610e1", NULL);
    vector("/ip6zone/eth0/ip6/::1", "2a046574683029" "00000000000000000000000000000001", NULL);
    vector("/dns4/example.com/tcp/443/tls/sni/example.com/http",
           "360b6578616d706c652e636f6d0601bbc003c1030b6578616d706c652e636f6de003", NULL);
    vector("/ip4/0.0.0.0/udp/0/quic-v1/webtransport", "040000000091020000cd03d103", NULL);
    vector("/unix/tmp/p2p.sock", "90030d" "2f746d702f7032702e736f636b", NULL);
    vector("/p2p-circuit", "a202", NULL);
}

static void test_round_trips(void **state)
{
    static const char *const same[] = {
        "/ip4/1.2.3.4",
        "/ip4/0.0.0.0",
        "/ip4/192.0.2.0/ipcidr/24",
        "/ip6/::1",
        "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21",
        "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/udp/1234/quic",
        "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/udp/1234/quic-v1",
        "/ip6/2001:db8::/ipcidr/32",
        "/ip6zone/x/ip6/fe80::1",
        "/ip6zone/x%y/ip6/fe80::1",
        "/ip6zone/x%y/ip6/::",
        "/ip6/::ffff:127.0.0.1/tcp/111",
        "/udp/0",
        "/tcp/65535",
        "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
        "/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
        "/p2p/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP/unix/a/b/c",
        "/tcp/1234/tls/http",
        "/unix/a/b/c/d/e",
        "/unix/stdio",
        "/ip4/1.2.3.4/tcp/80/unix/a/b/c/d/e/f",
        "/ip4/127.0.0.1/tcp/127/tls/ws",
        "/ip4/127.0.0.1/tcp/127/noise",
        "/ip4/127.0.0.1/tcp/127/wss",
        "/ip4/127.0.0.1/tcp/127/webrtc-direct",
        "/ip4/127.0.0.1/udp/127/webrtc",
        "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/"
        "uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
        "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
        "/dns6/example.com/tcp/1/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/p2p-circuit/"
        "p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        vector(same[i], NULL, NULL);
    /* Accepted spellings that print differently. */
    vector("/ip4/127.0.0.1/tcp/1234/", NULL, "/ip4/127.0.0.1/tcp/1234");
    vector("/ipfs/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP", NULL,
           "/p2p/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP");
    vector("/ip6/2001:DB8:0:0:0:0:0:1", NULL, "/ip6/2001:db8::1");
    /* CIDv1 peer IDs print as the base58btc multihash they hold */
    vector("/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7", NULL,
           "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC");
    vector("/p2p/bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u", NULL,
           "/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV");
    /* base32 in, base64url out (the same md5 multihash, converted with Python's base64) */
    vector("/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy",
           NULL, "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/u1QEQOFj2IjCsPJFfMAxmQxLGPw");
}

static void test_string_rejects(void **state)
{
    static const char *const bad[] = {
        "", "/", "//", "ip4/1.2.3.4", "/ip4", "/ip4/::1", "/ip4/fdpsofodsajfdoisa",
        "/ip4/1.2.3", "/ip4/1.2.3.256", "/ip4/1.2.3.4.5", "/ip4/::/ipcidr/256",
        "/ip6/::/ipcidr/1026", "/ip6/::/ipcidr/-1", "/ip6", "/ip6/1.2.3.4", "/ip6/:::",
        "/ip6zone", "/ip6zone/", "/ip6zone//ip6/fe80::1", "/udp", "/tcp", "/udp/65536",
        "/tcp/65536", "/tcp/-1", "/tcp/+1", "/tcp/0x10", "/tcp/080", "/tcp/1 ", "/tcp/99999999999",
        "/quic/65536", "/quic-v1/65536", "/ip4/127.0.0.1/udp/jfodsajfidosajfoidsa",
        "/ip4/127.0.0.1/tcp", "/ip4/127.0.0.1/quic/1234", "/ip4/127.0.0.1/quic-v1/1234",
        "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash",
        "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmp",
        "/ip4/127.0.0.1/ipfs", "/ip4/127.0.0.1/ipfs/tcp", "/ip4/127.0.0.1/p2p",
        "/ip4/127.0.0.1/p2p/tcp", "/unix", "/ip4/1.2.3.4/tcp/80/unix",
        "/ip4/127.0.0.1/tcp/9090/http/p2p-webcrt-direct", "/onion/timaq4ygg2iegci7:80",
        "/dns", "/dns4//tcp/1",
        "/p2p/QmxoHT6iViN5xAjoz1VZ553cL31U9F94ht3QvWR1FrEbZY", /* sha256 digest over 32 bytes */
        "/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl-",
        "/p2p/?unknownmultibase",
        "/p2p/k2jmtxwoe2phm1hbqp0e7nufqf6umvuu2e9qd7ana7h411a0haqj6i2z", /* not libp2p-key */
        "/p2p/bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", /* dag-pb */
        "/p2p/0abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cp2p_multiaddr_t ma = {0};
        int rc = cp2p_multiaddr_parse(bad[i], &ma);
        if (rc >= 0)
            fail_msg("should have failed: %s", bad[i]);
        assert_null(ma.bytes);
    }
    char big[CP2P_MULTIADDR_STRMAX + 10];
    memset(big, 0, sizeof big);
    strcpy(big, "/dns/");
    memset(big + 5, 'a', sizeof big - 6);
    cp2p_multiaddr_t ma = {0};
    assert_int_equal(cp2p_multiaddr_parse(big, &ma), CP2P_EOVERFLOW);
    big[CP2P_MULTIADDR_MAX + 100] = 0; /* short enough as text, too long as bytes */
    assert_int_equal(cp2p_multiaddr_parse(big, &ma), CP2P_EOVERFLOW);
}

static void bytes_reject(const char *hex, int err)
{
    uint8_t b[64];
    size_t n = unhex(hex, b);
    cp2p_multiaddr_t ma = {0};
    int rc = cp2p_multiaddr_from_bytes(b, n, &ma);
    if (rc != err)
        fail_msg("%s: got %d, want %d", hex, rc, err);
    assert_null(ma.bytes);
}

static void test_bytes_rejects(void **state)
{
    bytes_reject("", CP2P_EPARSE);
    bytes_reject("047f0000", CP2P_ETRUNC);             /* short ip4 */
    bytes_reject("047f000001060f", CP2P_ETRUNC);       /* short port */
    bytes_reject("047f00000106", CP2P_ETRUNC);
    bytes_reject("047f000001ff", CP2P_ETRUNC);         /* unfinished varint code */
    bytes_reject("80", CP2P_ETRUNC);
    bytes_reject("05", CP2P_EUNSUPPORTED);             /* unknown code */
    bytes_reject("8400", CP2P_EPARSE);                 /* non-minimal code 4 */
    bytes_reject("ffffffffffffffffff01", CP2P_EOVERFLOW);
    bytes_reject("3600", CP2P_EPARSE);                 /* empty dns name */
    bytes_reject("36036162", CP2P_ETRUNC);
    bytes_reject("3603612f62", CP2P_EPARSE);           /* '/' in a name */
    bytes_reject("3603610062", CP2P_EPARSE);           /* NUL in a name */
    bytes_reject("9003026162", CP2P_EPARSE);           /* unix path without leading '/' */
    bytes_reject("9003022f61047f000001", CP2P_EPARSE); /* something after unix */
    bytes_reject("9003022f2f", CP2P_EPARSE);           /* path ending in '/' */
    /* p2p: sha256 with a 33-byte digest (go-multiaddr's TestInvalidP2PAddrBytes) */
    bytes_reject("a503221221c05877cbae039d70a5e600ea02c6f9f2942439285c9e344e26f8d280c850fad6",
                 CP2P_EPARSE);
    bytes_reject("a50304130201ff", CP2P_EPARSE);       /* sha2-512 code: not a peer ID */
    bytes_reject("a503040003616263", CP2P_EPARSE);     /* multihash shorter than value */
    bytes_reject("d20300", CP2P_EPARSE);               /* empty certhash */
}

static void test_encapsulate_decapsulate(void **state)
{
    cp2p_multiaddr_t a = {0}, b = {0}, c = {0}, u = {0}, x = {0};
    cp2p_buf_t t = {0};
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/udp/1234", &a), 0);
    assert_int_equal(cp2p_multiaddr_parse("/udp/5678", &b), 0);
    assert_int_equal(cp2p_multiaddr_encapsulate(&a, &b, &c), 0);
    assert_int_equal(cp2p_multiaddr_to_string(&c, &t), 0);
    assert_string_equal((const char *)t.data, "/ip4/127.0.0.1/udp/1234/udp/5678");

    /* cuts at the last udp, then the only one */
    assert_int_equal(cp2p_multiaddr_decapsulate_code(&c, CP2P_MA_UDP), 0);
    assert_true(cp2p_multiaddr_equal(&c, &a));
    assert_int_equal(cp2p_multiaddr_decapsulate_code(&c, CP2P_MA_TCP), CP2P_ENOTFOUND);
    assert_true(cp2p_multiaddr_equal(&c, &a));
    assert_int_equal(cp2p_multiaddr_decapsulate_code(&c, CP2P_MA_UDP), 0);
    cp2p_buf_reset(&t);
    assert_int_equal(cp2p_multiaddr_to_string(&c, &t), 0);
    assert_string_equal((const char *)t.data, "/ip4/127.0.0.1");
    assert_int_equal(cp2p_multiaddr_decapsulate_code(&c, CP2P_MA_IP4), 0);
    assert_int_equal(c.len, 0);
    cp2p_buf_reset(&t);
    assert_int_equal(cp2p_multiaddr_to_string(&c, &t), 0);
    assert_string_equal((const char *)t.data, "");

    /* nothing may follow a unix path but a peer ID */
    assert_int_equal(cp2p_multiaddr_parse("/unix/tmp/s", &u), 0);
    assert_int_equal(cp2p_multiaddr_encapsulate(&u, &a, &x), CP2P_EPARSE);
    {
        const char *id = "12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV";
        char s[160];
        cp2p_multiaddr_t up, p2p, joined;
        cp2p_multiaddr_component_t pc;
        snprintf(s, sizeof s, "/p2p/%s", id);
        assert_int_equal(cp2p_multiaddr_parse(s, &p2p), 0);
        assert_int_equal(cp2p_multiaddr_encapsulate(&u, &p2p, &joined), 0);
        snprintf(s, sizeof s, "/unix/tmp/s/p2p/%s", id);
        assert_int_equal(cp2p_multiaddr_parse(s, &up), 0);
        assert_true(cp2p_multiaddr_equal(&up, &joined));
        assert_int_equal(cp2p_multiaddr_get(&up, CP2P_MA_UNIX, &pc), 0);
        assert_int_equal(pc.value_len, 6);
        assert_memory_equal(pc.value, "/tmp/s", 6);
        cp2p_buf_t st = {0};
        assert_int_equal(cp2p_multiaddr_to_string(&up, &st), 0);
        assert_string_equal((const char *)st.data, s);
        cp2p_buf_free(&st);
        /* ...and only at the end */
        cp2p_multiaddr_t bad;
        assert_int_equal(cp2p_multiaddr_encapsulate(&joined, &p2p, &bad), CP2P_EPARSE);
        snprintf(s, sizeof s, "/unix/tmp/s/p2p/%s/tcp/1", id);
        assert_int_equal(cp2p_multiaddr_parse(s, &bad), 0); /* all of it is the path */
        assert_int_equal(cp2p_multiaddr_get(&bad, CP2P_MA_P2P, &pc), CP2P_ENOTFOUND);
        cp2p_multiaddr_free(&bad);
        /* a path that ends like a peer ID has no string form of its own */
        assert_int_equal(cp2p_multiaddr_from_bytes((const uint8_t *)"\x90\x03\x0a/a/p2p/xyz", 13, &bad),
                         CP2P_EPARSE);
        cp2p_multiaddr_free(&up);
        cp2p_multiaddr_free(&p2p);
        cp2p_multiaddr_free(&joined);
    }
    assert_int_equal(cp2p_multiaddr_encapsulate(&a, &u, &x), 0);
    assert_false(cp2p_multiaddr_equal(&x, &a));
    cp2p_multiaddr_free(&c);
    assert_int_equal(cp2p_multiaddr_dup(&x, &c), 0);
    assert_true(cp2p_multiaddr_equal(&x, &c));

    cp2p_multiaddr_free(&a);
    cp2p_multiaddr_free(&b);
    cp2p_multiaddr_free(&c);
    cp2p_multiaddr_free(&u);
    cp2p_multiaddr_free(&x);
    cp2p_buf_free(&t);
}

static void test_components(void **state)
{
    cp2p_multiaddr_t ma = {0};
    cp2p_multiaddr_component_t c;
    cp2p_multiaddr_iter_t it;
    cp2p_buf_t t = {0};
    assert_int_equal(cp2p_multiaddr_parse("/ip6/fe80::1/tcp/4001/p2p/"
                                          "12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
                                          &ma), 0);
    static const uint64_t codes[] = {CP2P_MA_IP6, CP2P_MA_TCP, CP2P_MA_P2P};
    static const char *const names[] = {"ip6", "tcp", "p2p"};
    static const char *const values[] = {"fe80::1", "4001",
                                         "12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV"};
    static const size_t lens[] = {16, 2, 38};
    size_t i = 0;
    cp2p_multiaddr_iter_init(&it, &ma);
    while (cp2p_multiaddr_iter_next(&it, &c)) {
        assert_true(i < 3);
        assert_int_equal(c.code, codes[i]);
        assert_string_equal(c.name, names[i]);
        assert_int_equal(c.value_len, lens[i]);
        cp2p_buf_reset(&t);
        assert_int_equal(cp2p_multiaddr_value_to_string(&c, &t), 0);
        assert_string_equal((const char *)t.data, values[i]);
        i++;
    }
    assert_int_equal(i, 3);

    assert_int_equal(cp2p_multiaddr_get(&ma, CP2P_MA_TCP, &c), 0);
    assert_int_equal(c.value[0] << 8 | c.value[1], 4001);
    assert_int_equal(c.raw_len, 3);
    assert_int_equal(cp2p_multiaddr_get(&ma, CP2P_MA_UDP, &c), CP2P_ENOTFOUND);

    uint64_t code = 0;
    assert_int_equal(cp2p_multiaddr_protocol_code("quic-v1", &code), 0);
    assert_int_equal(code, 461);
    assert_int_equal(cp2p_multiaddr_protocol_code("ipfs", &code), 0);
    assert_int_equal(code, 421);
    assert_int_equal(cp2p_multiaddr_protocol_code("nope", &code), CP2P_ENOTFOUND);
    assert_string_equal(cp2p_multiaddr_protocol_name(421), "p2p");
    assert_string_equal(cp2p_multiaddr_protocol_name(290), "p2p-circuit");
    assert_null(cp2p_multiaddr_protocol_name(5));
    cp2p_multiaddr_free(&ma);
    cp2p_buf_free(&t);
}

static void test_array_dup_free(void **state)
{
    const char *txt[] = {"/ip4/1.2.3.4/tcp/1", "/dns4/example.com/tcp/443", "/ip6/::1/tcp/2"};
    cp2p_multiaddr_t in[3], *out;
    for (int i = 0; i < 3; i++)
        assert_int_equal(cp2p_multiaddr_parse(txt[i], &in[i]), 0);
    assert_int_equal(cp2p_multiaddr_array_dup(in, 3, &out), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(cp2p_multiaddr_equal(&in[i], &out[i]));
        assert_ptr_not_equal(in[i].bytes, out[i].bytes); /* copies, not views */
        cp2p_multiaddr_free(&in[i]);
    }
    cp2p_multiaddr_array_free(out, 3);
    assert_int_equal(cp2p_multiaddr_array_dup(in, 0, &out), 0);
    assert_null(out);
    cp2p_multiaddr_array_free(NULL, 0);
}

static void test_ip_scope(void **state)
{
    static const struct {
        const char *ma;
        cp2p_ip_scope_t scope;
    } v[] = {
        {"/ip4/8.8.8.8/tcp/1", CP2P_IP_PUBLIC},
        {"/ip4/11.77.0.1/tcp/4001", CP2P_IP_PUBLIC},
        {"/ip4/127.0.0.1/tcp/6379", CP2P_IP_LOOPBACK},
        {"/ip4/127.255.0.9", CP2P_IP_LOOPBACK},
        {"/ip4/10.9.9.9/tcp/22", CP2P_IP_PRIVATE},
        {"/ip4/172.16.0.1", CP2P_IP_PRIVATE},
        {"/ip4/172.32.0.1", CP2P_IP_PUBLIC},
        {"/ip4/192.168.1.1", CP2P_IP_PRIVATE},
        {"/ip4/100.64.0.1", CP2P_IP_PRIVATE},
        {"/ip4/100.128.0.1", CP2P_IP_PUBLIC},
        {"/ip4/192.0.2.1", CP2P_IP_PRIVATE},
        {"/ip4/198.18.0.1", CP2P_IP_PRIVATE},
        {"/ip4/169.254.169.254/tcp/80", CP2P_IP_UNUSABLE},
        {"/ip4/0.0.0.0/tcp/4001", CP2P_IP_UNUSABLE},
        {"/ip4/224.0.0.251/udp/5353", CP2P_IP_UNUSABLE},
        {"/ip4/255.255.255.255", CP2P_IP_UNUSABLE},
        {"/ip6/::1/tcp/1", CP2P_IP_LOOPBACK},
        {"/ip6/::/tcp/1", CP2P_IP_UNUSABLE},
        {"/ip6/fe80::1/tcp/1", CP2P_IP_UNUSABLE},
        {"/ip6zone/eth0/ip6/fe80::1/tcp/1", CP2P_IP_UNUSABLE},
        {"/ip6/ff02::fb", CP2P_IP_UNUSABLE},
        {"/ip6/fd77::2/tcp/1", CP2P_IP_PRIVATE},
        {"/ip6/2001:db8::1", CP2P_IP_PRIVATE},
        {"/ip6/2606:4700::1111/tcp/443", CP2P_IP_PUBLIC},
        {"/ip6/::ffff:127.0.0.1", CP2P_IP_LOOPBACK},
        {"/ip6/::ffff:8.8.4.4", CP2P_IP_PUBLIC},
        {"/dns4/example.com/tcp/1", CP2P_IP_NONE},
        {"/unix/tmp/s", CP2P_IP_NONE},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cp2p_multiaddr_t ma;
        assert_int_equal(cp2p_multiaddr_parse(v[i].ma, &ma), 0);
        if (cp2p_multiaddr_ip_scope(&ma) != v[i].scope)
            fail_msg("%s: scope %d, want %d", v[i].ma, cp2p_multiaddr_ip_scope(&ma), v[i].scope);
        cp2p_multiaddr_free(&ma);
    }
    cp2p_multiaddr_t empty = {0};
    assert_int_equal(cp2p_multiaddr_ip_scope(&empty), CP2P_IP_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_vectors),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_string_rejects),
        cmocka_unit_test(test_bytes_rejects),
        cmocka_unit_test(test_encapsulate_decapsulate),
        cmocka_unit_test(test_components),
        cmocka_unit_test(test_array_dup_free),
        cmocka_unit_test(test_ip_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
