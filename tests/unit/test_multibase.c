/* Multibase: the multibase spec's test vectors, RFC 4648 vectors and strict rejection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/multibase.h"

/* Encoding `in` in `base` gives `text` (prefix included), and `text` decodes back. */
static void vector(cp2p_base_t base, const void *in, size_t n, const char *text)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_multibase_encode(base, in, n, &b), 0);
    assert_int_equal(b.len, strlen(text));
    assert_string_equal((const char *)b.data, text);
    cp2p_buf_free(&b);

    cp2p_base_t got = 0;
    assert_int_equal(cp2p_multibase_decode(text, strlen(text), &got, &b), 0);
    assert_int_equal(got, base);
    assert_int_equal(b.len, n);
    if (n)
        assert_memory_equal(b.data, in, n);
    cp2p_buf_free(&b);
}

static void decodes_to(const char *text, const char *want, size_t n)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_multibase_decode(text, strlen(text), NULL, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, want, n);
    cp2p_buf_free(&b);
}

static void rejects(const char *text, int err)
{
    cp2p_buf_t b = {0};
    cp2p_buf_append(&b, "keep", 4);
    assert_int_equal(cp2p_multibase_decode(text, strlen(text), NULL, &b), err);
    /* a failed decode leaves the buffer as it was */
    assert_int_equal(b.len, 4);
    cp2p_buf_free(&b);
}

static void test_spec_basic(void **state)
{
    static const struct {
        const char *in;
        size_t n;
        const char *b16, *b32, *b32u, *b36, *b58, *b64, *b64u, *b64up;
    } v[] = {
        {"yes mani !", 10, "f796573206d616e692021", "bpfsxgidnmfxgsibb", "BPFSXGIDNMFXGSIBB",
         "k2lcpzo5yikidynfl", "z7paNL19xttacUY", "meWVzIG1hbmkgIQ", "ueWVzIG1hbmkgIQ",
         "UeWVzIG1hbmkgIQ=="},
        {"\0yes mani !", 11, "f00796573206d616e692021", "bab4wk4zanvqw42jaee",
         "BAB4WK4ZANVQW42JAEE", "k02lcpzo5yikidynfl", "z17paNL19xttacUY", "mAHllcyBtYW5pICE",
         "uAHllcyBtYW5pICE", "UAHllcyBtYW5pICE="},
        {"\0\0yes mani !", 12, "f0000796573206d616e692021", "baaahszltebwwc3tjeaqq",
         "BAAAHSZLTEBWWC3TJEAQQ", "k002lcpzo5yikidynfl", "z117paNL19xttacUY",
         "mAAB5ZXMgbWFuaSAh", "uAAB5ZXMgbWFuaSAh", "UAAB5ZXMgbWFuaSAh"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        vector(CP2P_BASE16, v[i].in, v[i].n, v[i].b16);
        vector(CP2P_BASE32, v[i].in, v[i].n, v[i].b32);
        vector(CP2P_BASE32UPPER, v[i].in, v[i].n, v[i].b32u);
        vector(CP2P_BASE36, v[i].in, v[i].n, v[i].b36);
        vector(CP2P_BASE58BTC, v[i].in, v[i].n, v[i].b58);
        vector(CP2P_BASE64, v[i].in, v[i].n, v[i].b64);
        vector(CP2P_BASE64URL, v[i].in, v[i].n, v[i].b64u);
        vector(CP2P_BASE64URLPAD, v[i].in, v[i].n, v[i].b64up);
    }
}

static void test_spec_case_insensitive(void **state)
{
    decodes_to("f68656c6c6f20776F726C64", "hello world", 11);
    decodes_to("F68656c6c6f20776F726C64", "hello world", 11);
    decodes_to("bnbswy3dpeB3W64TMMQ", "hello world", 11);
    decodes_to("Bnbswy3dpeB3W64TMMQ", "hello world", 11);
    decodes_to("kfUvrsIvVnfRbjWaJo", "hello world", 11);
    decodes_to("KfUVrSIVVnFRbJWAJo", "hello world", 11);
    decodes_to("F796573206D616E692021", "yes mani !", 10);
    decodes_to("K2LCPZO5YIKIDYNFL", "yes mani !", 10);
}

static void test_rfc4648(void **state)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const b64[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const b32[] = {"",         "MY======", "MZXQ====",        "MZXW6===",
                                      "MZXW6YQ=", "MZXW6YTB", "MZXW6YTBOI======"};
    static const char *const b16[] = {"", "66", "666F", "666F6F", "666F6F62", "666F6F6261",
                                      "666F6F626172"};
    for (size_t i = 0; i < 7; i++) {
        char want[32];
        size_t n = strlen(in[i]);
        snprintf(want, sizeof want, "U%s", b64[i]);
        vector(CP2P_BASE64URLPAD, in[i], n, want);
        snprintf(want, sizeof want, "m%.*s", (int)strcspn(b64[i], "="), b64[i]);
        vector(CP2P_BASE64, in[i], n, want);
        snprintf(want, sizeof want, "B%.*s", (int)strcspn(b32[i], "="), b32[i]);
        vector(CP2P_BASE32UPPER, in[i], n, want);
        snprintf(want, sizeof want, "F%s", b16[i]);
        decodes_to(want, in[i], n);
    }
}

static void test_alphabets_differ(void **state)
{
    static const uint8_t x[] = {0xfb, 0xff, 0xbf};
    vector(CP2P_BASE64, x, 3, "m+/+/");
    vector(CP2P_BASE64URL, x, 3, "u-_-_");
    rejects("m-_-_", CP2P_EPARSE);
    rejects("u+/+/", CP2P_EPARSE);
}

static void test_rejects(void **state)
{
    rejects("", CP2P_EPARSE);
    rejects("!abc", CP2P_EUNSUPPORTED);
    rejects("f6", CP2P_EPARSE);          /* odd hex */
    rejects("f6g", CP2P_EPARSE);
    rejects("fzz", CP2P_EPARSE);
    rejects("bm", CP2P_EPARSE);          /* one base32 char cannot make a byte */
    rejects("bmz", CP2P_EPARSE);         /* "my" is "f"; "mz" has a stray low bit */
    rejects("bmy======", CP2P_EPARSE);   /* base32 here has no padding */
    rejects("bm1", CP2P_EPARSE);
    rejects("mZg==", CP2P_EPARSE);       /* padding where there is none */
    rejects("mZh", CP2P_EPARSE);         /* non-canonical trailing bits */
    rejects("mZ", CP2P_EPARSE);
    rejects("mZm 9v", CP2P_EPARSE);
    rejects("UZg", CP2P_EPARSE);         /* missing padding */
    rejects("UZg=", CP2P_EPARSE);        /* short padding */
    rejects("UZg===", CP2P_EPARSE);
    rejects("UZ=g=", CP2P_EPARSE);
    rejects("UZm9v====", CP2P_EPARSE);
    rejects("z0", CP2P_EPARSE);          /* not in the bitcoin alphabet */
    rejects("zO", CP2P_EPARSE);
    rejects("zI", CP2P_EPARSE);
    rejects("zl", CP2P_EPARSE);
    rejects("z7paNL19xttacU+", CP2P_EPARSE);
    rejects("k2lcpzo5yikidyn-", CP2P_EPARSE);

    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_base_decode(CP2P_BASE58BTC, "1\0" "2", 3, &b), CP2P_EPARSE);
    char *big = malloc(CP2P_MULTIBASE_MAX + 2);
    memset(big, 'z', CP2P_MULTIBASE_MAX + 1);
    assert_int_equal(cp2p_multibase_decode(big, CP2P_MULTIBASE_MAX + 1, NULL, &b), 0);
    big[0] = 'A';
    assert_int_equal(cp2p_base_decode(CP2P_BASE58BTC, big, CP2P_MULTIBASE_MAX + 1, &b),
                     CP2P_EOVERFLOW);
    free(big);
    cp2p_buf_free(&b);
}

/* Random bytes with runs of leading zeros survive every base. */
static void test_roundtrip(void **state)
{
    static const cp2p_base_t bases[] = {CP2P_BASE16, CP2P_BASE32, CP2P_BASE32UPPER,
                                        CP2P_BASE36, CP2P_BASE58BTC, CP2P_BASE64,
                                        CP2P_BASE64URL, CP2P_BASE64URLPAD};
    uint8_t in[300];
    srand(7);
    for (size_t len = 0; len < sizeof in; len += 1 + len / 4) {
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)rand();
        for (size_t z = 0; z < len && z < 3 * (len % 3); z++)
            in[z] = 0;
        for (size_t k = 0; k < sizeof bases / sizeof bases[0]; k++) {
            cp2p_buf_t t = {0}, d = {0};
            assert_int_equal(cp2p_base_encode(bases[k], in, len, &t), 0);
            assert_int_equal(strlen((const char *)t.data), t.len);
            assert_int_equal(cp2p_base_decode(bases[k], (const char *)t.data, t.len, &d), 0);
            assert_int_equal(d.len, len);
            if (len)
                assert_memory_equal(d.data, in, len);
            cp2p_buf_free(&t);
            cp2p_buf_free(&d);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_basic),
        cmocka_unit_test(test_spec_case_insensitive),
        cmocka_unit_test(test_rfc4648),
        cmocka_unit_test(test_alphabets_differ),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
