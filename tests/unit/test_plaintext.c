/* Plaintext 2.0.0: the Exchange on the wire, handshakes for every key type,
 * lying or malformed Exchanges, byte-at-a-time input and a 1 MiB pass-through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "cp2p/varint.h"
#include "plaintext.pb-c.h"
#include "security/security.h"
#include "sec_harness.h"

static const cp2p_sec_vtable_t *V = &cp2p_plaintext_vtable;

/* A length-prefixed Exchange; id/key NULL leave the field out. */
static void exchange(cp2p_buf_t *out, const uint8_t *id, size_t id_len, const uint8_t *key,
                     size_t key_len)
{
    Plaintext__Exchange ex = PLAINTEXT__EXCHANGE__INIT;
    ex.has_id = id != NULL;
    ex.id.data = (uint8_t *)id;
    ex.id.len = id_len;
    ex.has_pubkey = key != NULL;
    ex.pubkey.data = (uint8_t *)key;
    ex.pubkey.len = key_len;
    size_t n = plaintext__exchange__get_packed_size(&ex);
    out->len = 0;
    assert_int_equal(cp2p_buf_append_uvarint(out, n), 0);
    assert_int_equal(cp2p_buf_reserve(out, n), 0);
    out->len += plaintext__exchange__pack(&ex, out->data + out->len);
}

static void check_handshake(cp2p_key_type_t ta, cp2p_key_type_t tb)
{
    ident_t ia, ib;
    ident(&ia, ta);
    ident(&ib, tb);
    cp2p_sec_t *a, *b;
    sec_pair(V, &a, &b, &ia, &ib, &ib.id);
    cp2p_buf_t wa = {0}, wb = {0}, x = {0}, pa = {0}, pb = {0};
    assert_int_equal(V->seal(a, (const uint8_t *)"x", 1, &x), CP2P_ESTATE);
    assert_int_equal(V->start(a, &wa), 0);
    assert_int_equal(V->start(b, &wb), 0);
    assert_int_equal(V->start(b, &x), 0); /* sent once only */
    assert_int_equal(x.len, 0);

    /* A's bytes, decoded by hand: varint length, then {id, pubkey} */
    uint64_t len;
    int h = cp2p_uvarint_decode(wa.data, wa.len, &len);
    assert_true(h > 0);
    assert_int_equal(h + len, wa.len);
    Plaintext__Exchange *ex = plaintext__exchange__unpack(NULL, len, wa.data + h);
    assert_non_null(ex);
    assert_true(ex->has_id && ex->has_pubkey);
    assert_int_equal(ex->id.len, ia.id.len);
    assert_memory_equal(ex->id.data, ia.id.bytes, ia.id.len);
    cp2p_buf_t key = {0};
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(ia.key), &key), 0);
    assert_int_equal(ex->pubkey.len, key.len);
    assert_memory_equal(ex->pubkey.data, key.data, key.len);
    plaintext__exchange__free_unpacked(ex, NULL);
    cp2p_buf_free(&key);

    /* application bytes may follow the Exchange in the same read */
    assert_int_equal(cp2p_buf_append(&wa, "hello", 5), 0);
    assert_int_equal(V->input(b, wa.data, wa.len, &x, &pb), 0);
    assert_int_equal(V->input(a, wb.data, wb.len, &x, &pa), 0);
    assert_int_equal(x.len, 0);
    assert_true(cp2p_sec_established(a) && cp2p_sec_established(b));
    assert_int_equal(pb.len, 5);
    assert_memory_equal(pb.data, "hello", 5);
    assert_int_equal(pa.len, 0);
    sec_check_remotes(a, b, &ia, &ib);
    assert_string_equal(V->protocol_id, "/plaintext/2.0.0");
    /* then bytes pass through as they are */
    wb.len = 0;
    assert_int_equal(V->seal(b, (const uint8_t *)"pong", 4, &wb), 0);
    assert_int_equal(wb.len, 4);
    assert_memory_equal(wb.data, "pong", 4);
    assert_int_equal(V->input(a, wb.data, wb.len, &x, &pa), 0);
    assert_memory_equal(pa.data, "pong", 4);
    V->destroy(a);
    V->destroy(b);
    bufs_free(&wa, &wb, &x, &pa, &pb, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

static void test_handshake_key_types(void **state)
{
    check_handshake(CP2P_KEY_ED25519, CP2P_KEY_ED25519);
    check_handshake(CP2P_KEY_SECP256K1, CP2P_KEY_ECDSA);
    check_handshake(CP2P_KEY_RSA, CP2P_KEY_ED25519);
}

/* One hand-made Exchange to a fresh responder (or initiator expecting `expect`). */
static int feed_one(const ident_t *us, const cp2p_peer_id_t *expect, const cp2p_buf_t *w)
{
    cp2p_sec_t *s;
    cp2p_buf_t out = {0}, plain = {0};
    assert_int_equal(V->create(&s, expect != NULL, us->key, expect), 0);
    /* input before start still sends our Exchange first */
    int rc = V->input(s, w->data, w->len, &out, &plain);
    assert_true(out.len > 0);
    assert_int_equal(cp2p_sec_established(s), rc == 0);
    if (rc) {
        assert_null(cp2p_sec_remote_peer(s));
        assert_int_equal(V->input(s, w->data, w->len, &out, &plain), rc); /* sticky */
        assert_int_equal(V->seal(s, (const uint8_t *)"x", 1, &out), rc);
    }
    V->destroy(s);
    bufs_free(&out, &plain, NULL);
    return rc;
}

static void test_bad_exchanges(void **state)
{
    ident_t us, them, other;
    ident(&us, CP2P_KEY_ED25519);
    ident(&them, CP2P_KEY_ED25519);
    ident(&other, CP2P_KEY_SECP256K1);
    cp2p_buf_t key = {0}, okey = {0}, w = {0};
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(them.key), &key), 0);
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(other.key), &okey), 0);

    exchange(&w, them.id.bytes, them.id.len, key.data, key.len);
    assert_int_equal(feed_one(&us, NULL, &w), 0);
    assert_int_equal(feed_one(&us, &them.id, &w), 0);
    assert_int_equal(feed_one(&us, &other.id, &w), CP2P_EPEERID);
    /* an id that is not the key's */
    exchange(&w, other.id.bytes, other.id.len, key.data, key.len);
    assert_int_equal(feed_one(&us, NULL, &w), CP2P_EPROTO);
    exchange(&w, them.id.bytes, them.id.len, okey.data, okey.len);
    assert_int_equal(feed_one(&us, &them.id, &w), CP2P_EPROTO);
    /* missing fields */
    exchange(&w, NULL, 0, key.data, key.len);
    assert_int_equal(feed_one(&us, NULL, &w), CP2P_EPROTO);
    exchange(&w, them.id.bytes, them.id.len, NULL, 0);
    assert_int_equal(feed_one(&us, NULL, &w), CP2P_EPROTO);
    exchange(&w, NULL, 0, NULL, 0);
    assert_int_equal(w.len, 1); /* a zero length prefix */
    assert_int_equal(feed_one(&us, NULL, &w), CP2P_EPROTO);
    /* a key the keys module refuses, garbage protobuf */
    key.data[key.len - 1] ^= 0xff;
    exchange(&w, them.id.bytes, them.id.len, key.data, 3);
    assert_true(feed_one(&us, NULL, &w) < 0);
    w.len = 0;
    assert_int_equal(cp2p_buf_append(&w, "\x02\xff\xff", 3), 0);
    assert_int_equal(feed_one(&us, NULL, &w), CP2P_EPARSE);
    /* lengths: over the bound, non-minimal varint, a varint that never ends */
    w.len = 0;
    assert_int_equal(cp2p_buf_append_uvarint(&w, 8193), 0);
    assert_int_equal(feed_one(&us, NULL, &w), CP2P_EOVERFLOW);
    w.len = 0;
    assert_int_equal(cp2p_buf_append(&w, "\x85\x00", 2), 0);
    assert_int_equal(feed_one(&us, NULL, &w), CP2P_EPARSE);
    w.len = 0;
    assert_int_equal(cp2p_buf_append(&w, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10), 0);
    assert_int_equal(feed_one(&us, NULL, &w), CP2P_EOVERFLOW);
    bufs_free(&key, &okey, &w, NULL);
    cp2p_privkey_free(us.key);
    cp2p_privkey_free(them.key);
    cp2p_privkey_free(other.key);
}

/* A truncated Exchange waits; a byte at a time completes it. */
static void test_byte_at_a_time(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_RSA); /* a long Exchange: a two-byte length prefix */
    ident(&ib, CP2P_KEY_ED25519);
    cp2p_sec_t *a, *b;
    sec_pair(V, &a, &b, &ia, &ib, &ib.id);
    cp2p_buf_t wa = {0}, wb = {0}, pa = {0}, pb = {0};
    assert_int_equal(V->start(a, &wa), 0);
    assert_int_equal(V->start(b, &wb), 0);
    assert_true(wa.len > 128 + 2);
    assert_int_equal(cp2p_buf_append(&wa, "!", 1), 0);
    assert_int_equal(V->input(b, NULL, 0, &wb, &pb), 0);
    for (size_t k = 0; k < wa.len; k++) {
        assert_int_equal(cp2p_sec_established(b), k == wa.len - 1);
        assert_int_equal(V->input(b, wa.data + k, 1, &wb, &pb), 0);
    }
    assert_true(cp2p_sec_established(b));
    assert_int_equal(pb.len, 1);
    assert_int_equal(pb.data[0], '!');
    assert_int_equal(V->input(a, wb.data, wb.len, &wa, &pa), 0);
    assert_true(cp2p_sec_established(a));
    assert_true(cp2p_peer_id_equal(cp2p_sec_remote_peer(b), &ia.id));
    V->destroy(a);
    V->destroy(b);
    bufs_free(&wa, &wb, &pa, &pb, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* Plaintext adds nothing: the wire is the data. */
static void check_wire(const cp2p_buf_t *w, size_t n)
{
    assert_int_equal(w->len, n);
}

static void test_mib_round_trip(void **state)
{
    const size_t chunks[] = {1, 7, 65537, (1 << 20) + 100};
    sec_mib_round_trip(V, 0, chunks, sizeof chunks / sizeof chunks[0], 100003, check_wire);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_key_types),
        cmocka_unit_test(test_bad_exchanges),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_mib_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
