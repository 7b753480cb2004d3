/* CID: v0 and v1 of the same content, the peer-ids spec's examples, strict decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/cid.h"
#include "cp2p/error.h"

static const char V0[] = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n";
static const char V1[] = "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

static int parse(const char *s, cp2p_buf_t *b, cp2p_cid_view_t *v)
{
    return cp2p_cid_parse(s, strlen(s), b, v);
}

static void test_v0_to_v1(void **state)
{
    cp2p_buf_t b0 = {0}, b1 = {0}, t = {0};
    cp2p_cid_view_t c0, c1;
    assert_int_equal(parse(V0, &b0, &c0), 0);
    assert_int_equal(c0.version, 0);
    assert_int_equal(c0.codec, CP2P_CODEC_DAG_PB);
    assert_int_equal(c0.mh.code, CP2P_MH_SHA2_256);
    assert_int_equal(c0.mh_len, 34);

    assert_int_equal(cp2p_cid_format_v1(CP2P_BASE32, c0.codec, c0.mh_bytes, c0.mh_len, &t), 0);
    assert_string_equal((const char *)t.data, V1);

    assert_int_equal(parse(V1, &b1, &c1), 0);
    assert_int_equal(c1.version, 1);
    assert_int_equal(c1.codec, CP2P_CODEC_DAG_PB);
    assert_int_equal(c1.mh_len, 34);
    assert_memory_equal(c1.mh_bytes, c0.mh_bytes, 34);
    assert_int_equal(b1.len, 36);
    assert_memory_equal(b1.data, "\x01\x70\x12\x20", 4);

    /* the same CID in base58btc multibase text */
    cp2p_buf_reset(&t);
    assert_int_equal(cp2p_cid_format_v1(CP2P_BASE58BTC, c0.codec, c0.mh_bytes, c0.mh_len, &t), 0);
    assert_int_equal(((const char *)t.data)[0], 'z');
    cp2p_buf_reset(&b1);
    assert_int_equal(parse((const char *)t.data, &b1, &c1), 0);
    assert_memory_equal(c1.mh_bytes, c0.mh_bytes, 34);
    cp2p_buf_free(&b0);
    cp2p_buf_free(&b1);
    cp2p_buf_free(&t);
}

/* The "hello world" raw-leaf CID that ipfs add --cid-version 1 prints. */
static void test_raw_hello(void **state)
{
    cp2p_buf_t mh = {0}, t = {0};
    assert_int_equal(cp2p_multihash_sum(CP2P_MH_SHA2_256, (const uint8_t *)"hello world", 11, &mh), 0);
    assert_int_equal(cp2p_cid_format_v1(CP2P_BASE32, CP2P_CODEC_RAW, mh.data, mh.len, &t), 0);
    assert_string_equal((const char *)t.data,
                        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e");
    cp2p_buf_free(&mh);
    cp2p_buf_free(&t);
}

static void test_peer_id_cid(void **state)
{
    cp2p_buf_t b = {0}, t = {0};
    cp2p_cid_view_t c;
    assert_int_equal(parse("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe", &b, &c), 0);
    assert_int_equal(c.version, 1);
    assert_int_equal(c.codec, CP2P_CODEC_LIBP2P_KEY);
    assert_int_equal(c.mh.code, CP2P_MH_SHA2_256);
    /* The bare multihash of a peer ID reads as a v0 CID too ("Qm..."). */
    assert_int_equal(cp2p_base_encode(CP2P_BASE58BTC, c.mh_bytes, c.mh_len, &t), 0);
    assert_int_equal(t.len, 46);
    assert_memory_equal(t.data, "Qm", 2);
    cp2p_buf_free(&b);
    cp2p_buf_free(&t);

    /* An ed25519 peer ID is an identity multihash of the 36-byte protobuf key. */
    static const char ED[] = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    assert_int_equal(cp2p_base_decode(CP2P_BASE58BTC, ED, strlen(ED), &b), 0);
    cp2p_multihash_view_t mh;
    assert_int_equal(cp2p_multihash_parse_exact(b.data, b.len, &mh), 38);
    assert_int_equal(mh.code, CP2P_MH_IDENTITY);
    assert_int_equal(mh.digest_len, 36);
    assert_int_equal(cp2p_cid_format_v1(CP2P_BASE32, CP2P_CODEC_LIBP2P_KEY, b.data, b.len, &t), 0);
    assert_memory_equal(t.data, "bafzaa", 6);
    cp2p_buf_t b2 = {0};
    assert_int_equal(parse((const char *)t.data, &b2, &c), 0);
    assert_int_equal(c.mh_len, b.len);
    assert_memory_equal(c.mh_bytes, b.data, b.len);
    cp2p_buf_free(&b);
    cp2p_buf_free(&b2);
    cp2p_buf_free(&t);
}

static void test_rejects(void **state)
{
    cp2p_buf_t b = {0}, t = {0};
    cp2p_cid_view_t c;
    uint8_t bin[40];

    assert_int_equal(parse(V0, &b, &c), 0);
    memcpy(bin, b.data, 34);
    cp2p_buf_reset(&b);
    /* v0 in multibase form is not a CID */
    assert_int_equal(cp2p_multibase_encode(CP2P_BASE58BTC, bin, 34, &t), 0);
    assert_int_equal(parse((const char *)t.data, &b, &c), CP2P_EPARSE);
    assert_int_equal(b.len, 0);
    /* "Qm" text of the wrong length is read as multibase and fails */
    assert_int_equal(parse("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1", &b, &c), CP2P_EUNSUPPORTED);
    assert_int_equal(parse("", &b, &c), CP2P_EPARSE);
    assert_int_equal(parse("b", &b, &c), CP2P_EPARSE);

    assert_int_equal(cp2p_cid_decode(bin, 33, &c) < 0, 1);
    /* v1 with a truncated or padded multihash */
    uint8_t v1[40] = {0x01, 0x70};
    memcpy(v1 + 2, bin, 34);
    assert_int_equal(cp2p_cid_decode(v1, 36, &c), 0);
    assert_int_equal(cp2p_cid_decode(v1, 35, &c), CP2P_ETRUNC);
    assert_int_equal(cp2p_cid_decode(v1, 37, &c), CP2P_EPARSE);
    v1[0] = 0x02;
    assert_int_equal(cp2p_cid_decode(v1, 36, &c), CP2P_EUNSUPPORTED);
    v1[0] = 0x00;
    assert_int_equal(cp2p_cid_decode(v1, 36, &c), CP2P_EPARSE);
    /* a 0x12 0x20 prefix that is not exactly 34 bytes is neither v0 nor v1 */
    assert_int_equal(cp2p_cid_decode(bin, 34, &c), 0);
    memcpy(v1, bin, 34);
    v1[34] = 0;
    assert_int_equal(cp2p_cid_decode(v1, 35, &c), CP2P_EPARSE);

    assert_int_equal(cp2p_cid_encode_v1(CP2P_CODEC_RAW, bin, 33, &b), CP2P_EINVAL);
    cp2p_buf_free(&b);
    cp2p_buf_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v0_to_v1),
        cmocka_unit_test(test_raw_hello),
        cmocka_unit_test(test_peer_id_cid),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
