/* Unsigned varint: the spec's examples, minimality and length limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"

static void roundtrip(uint64_t v, const uint8_t *enc, size_t n)
{
    uint8_t out[CP2P_UVARINT_MAX];
    assert_int_equal(cp2p_uvarint_encode(v, out), n);
    assert_memory_equal(out, enc, n);
    assert_int_equal(cp2p_uvarint_len(v), n);
    uint64_t got = 0;
    assert_int_equal(cp2p_uvarint_decode(enc, n, &got), (int)n);
    assert_true(got == v);
}

static void test_spec_examples(void **state)
{
    roundtrip(1, (const uint8_t *)"\x01", 1);
    roundtrip(127, (const uint8_t *)"\x7f", 1);
    roundtrip(128, (const uint8_t *)"\x80\x01", 2);
    roundtrip(255, (const uint8_t *)"\xff\x01", 2);
    roundtrip(300, (const uint8_t *)"\xac\x02", 2);
    roundtrip(16384, (const uint8_t *)"\x80\x80\x01", 3);
    roundtrip(0, (const uint8_t *)"\x00", 1);
    roundtrip((1ULL << 63) - 1, (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 9);
}

static void test_rejects(void **state)
{
    uint64_t v;
    assert_int_equal(cp2p_uvarint_decode((const uint8_t *)"\x80", 1, &v), CP2P_ETRUNC);
    assert_int_equal(cp2p_uvarint_decode((const uint8_t *)"", 0, &v), CP2P_ETRUNC);
    /* non-minimal forms of 1 and 0 */
    assert_int_equal(cp2p_uvarint_decode((const uint8_t *)"\x81\x00", 2, &v), CP2P_EPARSE);
    assert_int_equal(cp2p_uvarint_decode((const uint8_t *)"\x80\x80\x00", 3, &v), CP2P_EPARSE);
    /* ten bytes: longer than the spec's nine */
    assert_int_equal(cp2p_uvarint_decode((const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                                         10, &v),
                     CP2P_EOVERFLOW);
}

static void test_buf_lp(void **state)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_buf_append_lp(&b, "hello", 5), 0);
    assert_int_equal(b.len, 6);
    assert_int_equal(b.data[0], 5);
    cp2p_buf_consume(&b, 1);
    assert_memory_equal(b.data, "hello", 5);
    cp2p_buf_free(&b);
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_buf_lp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
