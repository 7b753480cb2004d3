/* Kademlia record validation and selection by namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "kad/kad_validate.h"

/* "/pk/" + the binary peer ID of k. */
static size_t pk_key(const cp2p_privkey_t *k, uint8_t *out)
{
    cp2p_peer_id_t id;
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id), 0);
    memcpy(out, "/pk/", 4);
    memcpy(out + 4, id.bytes, id.len);
    return 4 + id.len;
}

static void test_pk(void **state)
{
    cp2p_privkey_t *a, *b;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &a), 0);
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ECDSA, 0, &b), 0);
    uint8_t ka[128], kb[128];
    size_t la = pk_key(a, ka), lb = pk_key(b, kb);
    cp2p_buf_t va = {0}, vb = {0};
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(a), &va), 0);
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(b), &vb), 0);

    assert_int_equal(cp2p_kad_validate(ka, la, va.data, va.len), 0);
    /* ECDSA keys are long: the ID is a sha2-256 hash of the key. */
    assert_int_equal(cp2p_kad_validate(kb, lb, vb.data, vb.len), 0);
    assert_int_equal(cp2p_kad_validate(ka, la, vb.data, vb.len), CP2P_EPEERID);
    assert_int_equal(cp2p_kad_validate(ka, la, (const uint8_t *)"junk", 4), CP2P_EPARSE);
    assert_int_equal(cp2p_kad_validate((const uint8_t *)"/pk/xx", 6, va.data, va.len), CP2P_EPARSE);

    const uint8_t *vals[3] = {(const uint8_t *)"junk", vb.data, va.data};
    size_t lens[3] = {4, vb.len, va.len};
    assert_int_equal(cp2p_kad_select(ka, la, vals, lens, 3), 2);
    assert_int_equal(cp2p_kad_select(ka, la, vals, lens, 2), CP2P_ENOTFOUND);
    cp2p_buf_free(&va);
    cp2p_buf_free(&vb);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void test_namespaces(void **state)
{
    const uint8_t *v = (const uint8_t *)"anything";
    assert_int_equal(cp2p_kad_validate((const uint8_t *)"plain-key", 9, v, 8), 0);
    assert_int_equal(cp2p_kad_validate((const uint8_t *)"/x", 2, v, 8), 0);
    assert_int_equal(cp2p_kad_validate((const uint8_t *)"//y", 3, v, 8), 0);
    assert_int_equal(cp2p_kad_validate((const uint8_t *)"", 0, v, 8), 0);
    /* An /ipns/ name must be a peer ID multihash: "abc" is not one. */
    assert_int_equal(cp2p_kad_validate((const uint8_t *)"/ipns/abc", 9, v, 8), CP2P_EPARSE);
    assert_int_equal(cp2p_kad_validate((const uint8_t *)"/other/abc", 10, v, 8),
                     CP2P_EUNSUPPORTED);
    const uint8_t *vals[2] = {(const uint8_t *)"first", (const uint8_t *)"second"};
    size_t lens[2] = {5, 6};
    assert_int_equal(cp2p_kad_select((const uint8_t *)"k", 1, vals, lens, 2), 0);
    assert_int_equal(cp2p_kad_select((const uint8_t *)"k", 1, vals, lens, 0), CP2P_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pk),
        cmocka_unit_test(test_namespaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
