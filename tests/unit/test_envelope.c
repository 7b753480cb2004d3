/* Signed envelopes and peer records: round trips, a js-libp2p envelope, and
 * rejection of bad signatures, other domains and records signed by another peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/envelope.h"
#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"

#define FIXTURES CP2P_SOURCE_DIR "/tests/fixtures/keys/"

static const uint8_t MA1[] = {0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1}; /* /ip4/127.0.0.1/tcp/4001 */
static const uint8_t MA2[] = {0x04, 10, 0, 0, 1, 0x91, 0x02, 0x0f, 0xa1}; /* /ip4/10.0.0.1/udp/4001 */

static cp2p_privkey_t *key(cp2p_key_type_t t)
{
    cp2p_privkey_t *k = NULL;
    assert_int_equal(cp2p_privkey_generate(t, 0, &k), 0);
    return k;
}

/* The RFC's signing buffer, built by hand: a signature over it must verify. */
static void test_envelope_signing_buffer(void **state)
{
    cp2p_privkey_t *k = key(CP2P_KEY_ED25519);
    cp2p_buf_t env = {0};
    assert_int_equal(cp2p_envelope_seal(k, "my-domain", (const uint8_t *)"\x03\x01", 2,
                                        (const uint8_t *)"hello", 5, &env), 0);
    cp2p_envelope_t *e = NULL;
    assert_int_equal(cp2p_envelope_open(env.data, env.len, "my-domain", &e), 0);
    assert_int_equal(e->payload_len, 5);
    assert_memory_equal(e->payload, "hello", 5);
    assert_int_equal(e->payload_type_len, 2);
    assert_memory_equal(e->payload_type, "\x03\x01", 2);
    assert_true(cp2p_pubkey_equal(e->pubkey, cp2p_privkey_public(k)));
    cp2p_envelope_free(e);

    /* The signature field (5) is the last one written; check it against the
     * buffer the RFC describes. Ed25519 signatures are 64 bytes. */
    const uint8_t *sig = env.data + env.len - 64;
    assert_int_equal(sig[-2], 0x2a);
    assert_int_equal(sig[-1], 64);
    const uint8_t want[] = "\x09my-domain\x02\x03\x01\x05hello";
    assert_int_equal(cp2p_pubkey_verify(cp2p_privkey_public(k), want, sizeof want - 1, sig, 64), 0);

    /* Another domain, a flipped payload bit, a flipped signature bit: all refused. */
    e = NULL;
    assert_int_equal(cp2p_envelope_open(env.data, env.len, "other-domain", &e), CP2P_ESIG);
    assert_null(e);
    size_t at = 0;
    while (at + 5 <= env.len && memcmp(env.data + at, "hello", 5))
        at++;
    assert_true(at + 5 <= env.len);
    env.data[at] ^= 1;
    assert_int_equal(cp2p_envelope_open(env.data, env.len, "my-domain", &e), CP2P_ESIG);
    env.data[at] ^= 1;
    env.data[env.len - 1] ^= 1;
    assert_int_equal(cp2p_envelope_open(env.data, env.len, "my-domain", &e), CP2P_ESIG);
    env.data[env.len - 1] ^= 1;
    /* Truncated anywhere: never accepted. */
    for (size_t n = 0; n < env.len; n++)
        assert_int_not_equal(cp2p_envelope_open(env.data, n, "my-domain", &e), 0);
    cp2p_buf_free(&env);
    cp2p_privkey_free(k);
}

static void test_peer_record_roundtrip(void **state)
{
    for (int t = CP2P_KEY_RSA; t <= CP2P_KEY_ECDSA; t++) {
        cp2p_privkey_t *k = key((cp2p_key_type_t)t);
        cp2p_peer_record_t r = {0}, got = {0};
        assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &r.peer_id), 0);
        r.seq = 42;
        assert_int_equal(cp2p_peer_record_add_addr(&r, MA1, sizeof MA1), 0);
        assert_int_equal(cp2p_peer_record_add_addr(&r, MA2, sizeof MA2), 0);
        cp2p_buf_t env = {0};
        assert_int_equal(cp2p_peer_record_seal(k, &r, &env), 0);
        cp2p_pubkey_t *signer = NULL;
        assert_int_equal(cp2p_peer_record_open(env.data, env.len, &got, &signer), 0);
        assert_true(cp2p_peer_id_equal(&got.peer_id, &r.peer_id));
        assert_true(got.seq == 42);
        assert_int_equal(got.n_addrs, 2);
        assert_int_equal(got.addr_lens[1], sizeof MA2);
        assert_memory_equal(got.addrs[1], MA2, sizeof MA2);
        assert_true(cp2p_pubkey_equal(signer, cp2p_privkey_public(k)));
        /* A peer record is not valid in another domain. */
        cp2p_envelope_t *e = NULL;
        assert_int_equal(cp2p_envelope_open(env.data, env.len, "libp2p-routing-state", &e), CP2P_ESIG);
        cp2p_pubkey_free(signer);
        cp2p_peer_record_clear(&got);
        cp2p_peer_record_clear(&r);
        cp2p_buf_free(&env);
        cp2p_privkey_free(k);
    }
}

/* A validly signed record whose peer ID is someone else's is refused. */
static void test_peer_record_wrong_key(void **state)
{
    cp2p_privkey_t *mallory = key(CP2P_KEY_ED25519), *alice = key(CP2P_KEY_ED25519);
    cp2p_peer_record_t r = {0}, got = {0};
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(alice), &r.peer_id), 0);
    assert_int_equal(cp2p_peer_record_add_addr(&r, MA1, sizeof MA1), 0);
    cp2p_buf_t env = {0}, payload = {0};
    assert_int_equal(cp2p_peer_record_seal(mallory, &r, &env), CP2P_EINVAL);
    assert_int_equal(cp2p_peer_record_encode(&r, &payload), 0);
    assert_int_equal(cp2p_envelope_seal(mallory, CP2P_PEER_RECORD_DOMAIN, CP2P_PEER_RECORD_TYPE,
                                        CP2P_PEER_RECORD_TYPE_LEN, payload.data, payload.len, &env),
                     0);
    assert_int_equal(cp2p_peer_record_open(env.data, env.len, &got, NULL), CP2P_EPEERID);
    assert_int_equal(got.n_addrs, 0);
    /* Right key, wrong payload type. */
    cp2p_buf_reset(&env);
    assert_int_equal(cp2p_envelope_seal(alice, CP2P_PEER_RECORD_DOMAIN, (const uint8_t *)"\x03\x02", 2,
                                        payload.data, payload.len, &env),
                     0);
    assert_int_equal(cp2p_peer_record_open(env.data, env.len, &got, NULL), CP2P_EPARSE);
    cp2p_buf_free(&env);
    cp2p_buf_free(&payload);
    cp2p_peer_record_clear(&r);
    cp2p_privkey_free(mallory);
    cp2p_privkey_free(alice);
}

static void test_peer_record_limits(void **state)
{
    cp2p_peer_record_t r = {0};
    uint8_t big[CP2P_PEER_RECORD_MAX_ADDR_LEN + 1] = {0};
    assert_int_equal(cp2p_peer_record_add_addr(&r, big, sizeof big), CP2P_EOVERFLOW);
    for (int i = 0; i < CP2P_PEER_RECORD_MAX_ADDRS; i++)
        assert_int_equal(cp2p_peer_record_add_addr(&r, MA1, sizeof MA1), 0);
    assert_int_equal(cp2p_peer_record_add_addr(&r, MA1, sizeof MA1), CP2P_ELIMIT);

    /* Hand-made records: 33 addresses, an empty address, a bad peer ID. */
    cp2p_buf_t b = {0};
    cp2p_buf_append(&b, "\x0a\x06\x00\x04\x01\x02\x03\x04", 8); /* identity peer id */
    for (int i = 0; i < CP2P_PEER_RECORD_MAX_ADDRS + 1; i++)
        cp2p_buf_append(&b, "\x1a\x03\x0a\x01\x04", 5);
    cp2p_peer_record_t got = {0};
    assert_int_equal(cp2p_peer_record_decode(b.data, b.len, &got), CP2P_ELIMIT);
    assert_int_equal(cp2p_peer_record_decode(b.data, b.len - 5, &got), 0);
    assert_int_equal(got.n_addrs, CP2P_PEER_RECORD_MAX_ADDRS);
    assert_int_equal(cp2p_peer_record_decode((const uint8_t *)"\x0a\x06\x00\x04\x01\x02\x03\x04\x1a\x00",
                                             10, &got),
                     CP2P_EPARSE);
    assert_int_equal(cp2p_peer_record_decode((const uint8_t *)"\x0a\x03\x11\x01\x00", 5, &got),
                     CP2P_EPARSE);
    assert_int_equal(got.n_addrs, 0);
    cp2p_buf_free(&b);
    cp2p_peer_record_clear(&r);
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* An envelope sealed by js-libp2p (tests/fixtures/keys/gen.mjs). */
static void test_js_peer_record(void **state)
{
    FILE *f = fopen(FIXTURES "peer_record.txt", "r");
    assert_non_null(f);
    static uint8_t env[4096], peer[64], addrs[2][64];
    size_t env_len = 0, peer_len = 0, addr_lens[2], n_addrs = 0;
    unsigned long long seq = 0;
    char line[8192], hex[8192];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "envelope %8191s", hex) == 1)
            env_len = unhex(hex, env, sizeof env);
        else if (sscanf(line, "peer %8191s", hex) == 1)
            peer_len = unhex(hex, peer, sizeof peer);
        else if (sscanf(line, "seq %llu", &seq) == 1)
            continue;
        else if (n_addrs < 2 && sscanf(line, "addr %8191s", hex) == 1) {
            addr_lens[n_addrs] = unhex(hex, addrs[n_addrs], sizeof addrs[0]);
            n_addrs++;
        }
    }
    fclose(f);
    assert_true(env_len > 0 && peer_len > 0 && n_addrs == 2);

    cp2p_peer_record_t r = {0};
    assert_int_equal(cp2p_peer_record_open(env, env_len, &r, NULL), 0);
    assert_int_equal(r.peer_id.len, peer_len);
    assert_memory_equal(r.peer_id.bytes, peer, peer_len);
    assert_true(r.seq == seq);
    assert_int_equal(r.n_addrs, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(r.addr_lens[i], addr_lens[i]);
        assert_memory_equal(r.addrs[i], addrs[i], addr_lens[i]);
    }
    cp2p_peer_record_clear(&r);
    env[env_len / 2] ^= 0x40;
    assert_int_not_equal(cp2p_peer_record_open(env, env_len, &r, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_signing_buffer),
        cmocka_unit_test(test_peer_record_roundtrip),
        cmocka_unit_test(test_peer_record_wrong_key),
        cmocka_unit_test(test_peer_record_limits),
        cmocka_unit_test(test_js_peer_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
