/* Multihash: known sha2-256 and identity encodings, and rejection of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/multihash.h"

/* sha2-256("hello world"), the usual published digest. */
static const uint8_t HELLO_MH[] = {
    0x12, 0x20, 0xb9, 0x4d, 0x27, 0xb9, 0x93, 0x4d, 0x3e, 0x08, 0xa5, 0x2e, 0x52,
    0xd7, 0xda, 0x7d, 0xab, 0xfa, 0xc4, 0x84, 0xef, 0xe3, 0x7a, 0x53, 0x80, 0xee,
    0x90, 0x88, 0xf7, 0xac, 0xe2, 0xef, 0xcd, 0xe9};

static void test_sum_sha256(void **state)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_multihash_sum(CP2P_MH_SHA2_256, (const uint8_t *)"hello world", 11, &b), 0);
    assert_int_equal(b.len, sizeof HELLO_MH);
    assert_memory_equal(b.data, HELLO_MH, sizeof HELLO_MH);
    cp2p_multihash_view_t v;
    assert_int_equal(cp2p_multihash_parse_exact(b.data, b.len, &v), 34);
    assert_int_equal(v.code, CP2P_MH_SHA2_256);
    assert_int_equal(v.digest_len, 32);
    assert_ptr_equal(v.digest, b.data + 2);
    cp2p_buf_free(&b);
}

static void test_identity(void **state)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_multihash_sum(CP2P_MH_IDENTITY, (const uint8_t *)"abc", 3, &b), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "\x00\x03" "abc", 5);
    cp2p_buf_free(&b);

    uint8_t big[CP2P_MH_MAX_DIGEST + 1] = {0};
    assert_int_equal(cp2p_multihash_sum(CP2P_MH_IDENTITY, big, sizeof big, &b), CP2P_EOVERFLOW);
    assert_int_equal(cp2p_multihash_sum(0x13, big, 3, &b), CP2P_EUNSUPPORTED);
    assert_int_equal(b.len, 0);
    cp2p_buf_free(&b);
}

static void test_parse_prefix_and_unknown(void **state)
{
    /* An unknown code (sha2-512, 0x13) with a 2-byte digest, then trailing bytes. */
    static const uint8_t p[] = {0x13, 0x02, 0xaa, 0xbb, 0xcc};
    cp2p_multihash_view_t v;
    assert_int_equal(cp2p_multihash_parse(p, sizeof p, &v), 4);
    assert_int_equal(v.code, 0x13);
    assert_int_equal(v.digest_len, 2);
    assert_int_equal(cp2p_multihash_parse_exact(p, sizeof p, &v), CP2P_EPARSE);
    /* two-byte varint code (blake2b-256 = 0xb220) */
    static const uint8_t q[] = {0xa0, 0xe4, 0x02, 0x01, 0x42};
    assert_int_equal(cp2p_multihash_parse_exact(q, sizeof q, &v), 5);
    assert_int_equal(v.code, 0xb220);
}

static void test_rejects(void **state)
{
    cp2p_multihash_view_t v;
    assert_int_equal(cp2p_multihash_parse(HELLO_MH, 33, &v), CP2P_ETRUNC);
    assert_int_equal(cp2p_multihash_parse(HELLO_MH, 1, &v), CP2P_ETRUNC);
    assert_int_equal(cp2p_multihash_parse(HELLO_MH, 0, &v), CP2P_ETRUNC);
    static const uint8_t short_sha[] = {0x12, 0x01, 0x00};
    assert_int_equal(cp2p_multihash_parse(short_sha, 3, &v), CP2P_EPARSE);
    static const uint8_t too_long[] = {0x00, 0x81, 0x01};
    assert_int_equal(cp2p_multihash_parse(too_long, 3, &v), CP2P_EOVERFLOW);
    static const uint8_t nonmin[] = {0x80, 0x00, 0x00};
    assert_int_equal(cp2p_multihash_parse(nonmin, 3, &v), CP2P_EPARSE);

    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_multihash_encode(CP2P_MH_SHA2_256, HELLO_MH, 20, &b), CP2P_EINVAL);
    assert_int_equal(cp2p_multihash_encode(CP2P_MH_SHA2_256, HELLO_MH + 2, 32, &b), 0);
    assert_memory_equal(b.data, HELLO_MH, sizeof HELLO_MH);
    cp2p_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_sha256),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_parse_prefix_and_unknown),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
