/* The circuit relay v2 codec (src/protocols/relay_msg.c): byte vectors of
 * the spec's messages, framing limits, vouchers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "protocols/relay_msg.h"

static void test_status_vector(void **state)
{
    relay_msg_t m = {.type = HOP_STATUS, .status = RELAY_OK};
    cp2p_buf_t b = {0};
    assert_int_equal(relay_msg_encode(0, &m, &b), 0);
    /* len 4: type (field 1) = 2, status (field 5) = 100 */
    static const uint8_t want[] = {0x04, 0x08, 0x02, 0x28, 0x64};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    size_t hdr, len;
    assert_int_equal(relay_msg_frame(b.data, b.len, &hdr, &len), 1);
    assert_int_equal(hdr, 1);
    assert_int_equal(len, 4);
    relay_msg_t d;
    assert_int_equal(relay_msg_decode(0, b.data + hdr, len, &d), 0);
    assert_int_equal(d.type, HOP_STATUS);
    assert_int_equal(d.status, RELAY_OK);
    relay_msg_clear(&d);
    cp2p_buf_free(&b);
}

static void test_reserve_vector(void **state)
{
    /* RESERVE is type 0, which is still written: go and rust read it as required. */
    relay_msg_t m = {.type = HOP_RESERVE};
    cp2p_buf_t b = {0};
    assert_int_equal(relay_msg_encode(0, &m, &b), 0);
    static const uint8_t want[] = {0x02, 0x08, 0x00};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    cp2p_buf_free(&b);
}

static void test_connect_roundtrip(void **state)
{
    cp2p_privkey_t *k;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &k), 0);
    relay_msg_t m = {.type = STOP_CONNECT, .has_peer = 1, .has_limit = 1, .duration = 120,
                     .data = 131072};
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &m.peer), 0);
    cp2p_buf_t b = {0};
    assert_int_equal(relay_msg_encode(1, &m, &b), 0);
    size_t hdr, len;
    /* Every prefix short of the whole is "more, please". */
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(relay_msg_frame(b.data, i, &hdr, &len), 0);
    assert_int_equal(relay_msg_frame(b.data, b.len, &hdr, &len), 1);
    relay_msg_t d;
    assert_int_equal(relay_msg_decode(1, b.data + hdr, len, &d), 0);
    assert_int_equal(d.type, STOP_CONNECT);
    assert_true(d.has_peer && cp2p_peer_id_equal(&d.peer, &m.peer));
    assert_true(d.has_limit);
    assert_int_equal(d.duration, 120);
    assert_int_equal(d.data, 131072);
    relay_msg_clear(&d);
    cp2p_buf_free(&b);

    /* A voucher opens to what was sealed, and only under its own domain. */
    cp2p_peer_id_t relay = m.peer, peer, r2, p2;
    uint64_t exp;
    peer = relay;
    peer.bytes[peer.len - 1] ^= 1;
    assert_int_equal(relay_voucher_seal(k, &relay, &peer, 1234567, &b), 0);
    assert_int_equal(relay_voucher_open(b.data, b.len, &r2, &p2, &exp), 0);
    assert_true(cp2p_peer_id_equal(&r2, &relay));
    assert_true(cp2p_peer_id_equal(&p2, &peer));
    assert_int_equal(exp, 1234567);
    b.data[b.len - 1] ^= 1;
    assert_true(relay_voucher_open(b.data, b.len, &r2, &p2, &exp) < 0);
    cp2p_buf_free(&b);
    cp2p_privkey_free(k);
}

static void test_bad_input(void **state)
{
    size_t hdr, len;
    /* A length over the cap is refused before its bytes come. */
    uint8_t big[] = {0x81, 0x20}; /* 4097 */
    assert_int_equal(relay_msg_frame(big, sizeof big, &hdr, &len), CP2P_EOVERFLOW);
    uint8_t nonmin[] = {0x80, 0x00};
    assert_true(relay_msg_frame(nonmin, sizeof nonmin, &hdr, &len) < 0);
    relay_msg_t d;
    /* no type */
    uint8_t notype[] = {0x28, 0x64};
    assert_int_equal(relay_msg_decode(0, notype, sizeof notype, &d), CP2P_EPARSE);
    /* a peer whose id is no multihash */
    uint8_t badpeer[] = {0x08, 0x01, 0x12, 0x03, 0x0a, 0x01, 0xff};
    assert_int_equal(relay_msg_decode(0, badpeer, sizeof badpeer, &d), CP2P_EPARSE);
    /* garbage */
    uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(relay_msg_decode(1, junk, sizeof junk, &d), CP2P_EPARSE);
    /* unknown type */
    uint8_t type9[] = {0x08, 0x09};
    assert_int_equal(relay_msg_decode(0, type9, sizeof type9, &d), CP2P_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_vector),
        cmocka_unit_test(test_reserve_vector),
        cmocka_unit_test(test_connect_roundtrip),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
