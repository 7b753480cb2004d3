/* Peer IDs: the peer-ids spec's examples, derivation from the spec's key
 * vectors (IDs computed by js-libp2p), both text forms, and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"

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

static void check_key_id(const char *pub_hex, const char *b58, const char *cid, int inline_key)
{
    uint8_t b[128];
    size_t n = unhex(pub_hex, b);
    cp2p_pubkey_t *pk = NULL, *back = NULL;
    cp2p_peer_id_t id, parsed;
    char s[CP2P_PEER_ID_STRMAX];
    assert_int_equal(cp2p_pubkey_unmarshal(b, n, &pk), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(pk, &id), 0);
    assert_int_equal(cp2p_peer_id_to_string(&id, s, sizeof s), 0);
    assert_string_equal(s, b58);
    assert_int_equal(cp2p_peer_id_to_cid_string(&id, s, sizeof s), 0);
    assert_string_equal(s, cid);
    assert_int_equal(cp2p_peer_id_parse(b58, &parsed), 0);
    assert_true(cp2p_peer_id_equal(&id, &parsed));
    assert_int_equal(cp2p_peer_id_parse(cid, &parsed), 0);
    assert_true(cp2p_peer_id_equal(&id, &parsed));
    assert_true(cp2p_peer_id_matches_pubkey(&parsed, pk));
    if (inline_key) {
        assert_int_equal(id.bytes[0], 0x00); /* identity multihash */
        assert_int_equal(cp2p_peer_id_extract_pubkey(&id, &back), 0);
        assert_true(cp2p_pubkey_equal(pk, back));
        cp2p_pubkey_free(back);
    } else {
        assert_int_equal(id.bytes[0], 0x12); /* sha2-256 */
        assert_int_equal(cp2p_peer_id_extract_pubkey(&id, &back), CP2P_ENOTFOUND);
    }
    cp2p_pubkey_free(pk);
}

static void test_spec_keys(void **state)
{
    check_key_id("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
                 "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
                 "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6", 1);
    check_key_id("08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99",
                 "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY",
                 "bafzaajiiaijcca3xo7uzjzcsyilaj6i54cj44qk7kqzpoao5rti2pjx6udtdbp6kte", 1);
}

/* The spec's examples: the sha256 ID in both forms names the same peer. */
static void test_spec_examples(void **state)
{
    cp2p_peer_id_t a, b;
    char s[CP2P_PEER_ID_STRMAX];
    assert_int_equal(cp2p_peer_id_parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", &a), 0);
    assert_int_equal(
        cp2p_peer_id_parse("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe", &b), 0);
    assert_true(cp2p_peer_id_equal(&a, &b));
    assert_int_equal(a.len, 34);
    assert_int_equal(cp2p_peer_id_to_cid_string(&a, s, sizeof s), 0);
    assert_string_equal(s, "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");

    assert_int_equal(cp2p_peer_id_parse("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", &a), 0);
    assert_int_equal(a.len, 38);
    assert_int_equal(cp2p_peer_id_to_string(&a, s, sizeof s), 0);
    assert_string_equal(s, "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
    cp2p_pubkey_t *pk = NULL;
    assert_int_equal(cp2p_peer_id_extract_pubkey(&a, &pk), 0);
    assert_int_equal(cp2p_pubkey_type(pk), CP2P_KEY_ED25519);
    assert_true(cp2p_peer_id_matches_pubkey(&a, pk));
    assert_false(cp2p_peer_id_matches_pubkey(&b, pk));
    cp2p_pubkey_free(pk);
}

static void test_generated(void **state)
{
    for (int t = CP2P_KEY_RSA; t <= CP2P_KEY_ECDSA; t++) {
        cp2p_privkey_t *sk = NULL;
        cp2p_peer_id_t id, back;
        char s[CP2P_PEER_ID_STRMAX];
        assert_int_equal(cp2p_privkey_generate((cp2p_key_type_t)t, 0, &sk), 0);
        assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(sk), &id), 0);
        /* Ed25519 and secp256k1 keys are short enough to inline, the others are hashed. */
        int inline_key = t == CP2P_KEY_ED25519 || t == CP2P_KEY_SECP256K1;
        assert_int_equal(id.bytes[0], inline_key ? 0x00 : 0x12);
        assert_int_equal(cp2p_peer_id_to_string(&id, s, sizeof s), 0);
        if (t == CP2P_KEY_ED25519)
            assert_memory_equal(s, "12D3KooW", 8);
        if (t == CP2P_KEY_SECP256K1)
            assert_memory_equal(s, "16Uiu2HA", 8);
        if (!inline_key)
            assert_memory_equal(s, "Qm", 2);
        assert_int_equal(cp2p_peer_id_parse(s, &back), 0);
        assert_true(cp2p_peer_id_equal(&id, &back));
        assert_int_equal(cp2p_peer_id_to_string(&id, s, 10), CP2P_EOVERFLOW);
        cp2p_privkey_free(sk);
    }
}

static void test_rejects(void **state)
{
    cp2p_peer_id_t id;
    assert_int_not_equal(cp2p_peer_id_parse("", &id), 0);
    assert_int_not_equal(cp2p_peer_id_parse("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5S0", &id), 0);
    assert_int_not_equal(cp2p_peer_id_parse("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5S", &id), 0);
    assert_int_not_equal(cp2p_peer_id_parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5", &id), 0);
    /* A CID with another codec (dag-pb) is not a peer ID. */
    assert_int_not_equal(
        cp2p_peer_id_parse("bafybeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe", &id), 0);
    assert_int_not_equal(cp2p_peer_id_parse("xyz", &id), 0);
    /* Binary: sha1 (0x11) multihash, wrong length, trailing bytes, too long. */
    uint8_t sha1[22] = {0x11, 20};
    assert_int_equal(cp2p_peer_id_from_bytes(sha1, sizeof sha1, &id), CP2P_EUNSUPPORTED);
    uint8_t bad[36] = {0x12, 32};
    assert_int_not_equal(cp2p_peer_id_from_bytes(bad, 33, &id), 0);
    assert_int_not_equal(cp2p_peer_id_from_bytes(bad, 35, &id), 0);
    uint8_t big[80] = {0x00, 78};
    assert_int_equal(cp2p_peer_id_from_bytes(big, sizeof big, &id), CP2P_EOVERFLOW);
    /* An identity ID whose content is not a public key has none to extract. */
    uint8_t junk[6] = {0x00, 4, 1, 2, 3, 4};
    cp2p_pubkey_t *pk = NULL;
    assert_int_equal(cp2p_peer_id_from_bytes(junk, sizeof junk, &id), 0);
    assert_int_not_equal(cp2p_peer_id_extract_pubkey(&id, &pk), 0);
    assert_null(pk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_keys),
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
