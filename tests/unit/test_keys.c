/* Keys: the peer-ids spec's test vectors, sign/verify for every type across
 * encodings, js-libp2p signatures, and rejection of malformed keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/keys.h"

#define FIXTURES CP2P_SOURCE_DIR "/tests/fixtures/keys/"

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

/* Looks up `name` in a "<name> <hex>..." fixture file; returns the hex of column `col`. */
static char *fixture_field(const char *file, const char *name, int col)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    static char line[32768];
    char *res = NULL;
    while (!res && fgets(line, sizeof line, f)) {
        char *save = NULL, *tok = strtok_r(line, " \n", &save);
        if (!tok || strcmp(tok, name))
            continue;
        for (int i = 0; i < col && tok; i++)
            tok = strtok_r(NULL, " \n", &save);
        res = tok ? strdup(tok) : NULL;
    }
    fclose(f);
    assert_non_null(res);
    return res;
}

static size_t vector(const char *name, uint8_t *out, size_t cap)
{
    char *hex = fixture_field(FIXTURES "spec_vectors.txt", name, 1);
    size_t n = unhex(hex, out, cap);
    free(hex);
    return n;
}

static uint8_t priv_bytes[8192], pub_bytes[8192];

static void check_spec_vector(const char *type)
{
    char name[64];
    snprintf(name, sizeof name, "%s-priv", type);
    size_t priv_len = vector(name, priv_bytes, sizeof priv_bytes);
    snprintf(name, sizeof name, "%s-pub", type);
    size_t pub_len = vector(name, pub_bytes, sizeof pub_bytes);

    cp2p_privkey_t *sk = NULL;
    cp2p_pubkey_t *pk = NULL;
    assert_int_equal(cp2p_privkey_unmarshal(priv_bytes, priv_len, &sk), 0);
    assert_int_equal(cp2p_pubkey_unmarshal(pub_bytes, pub_len, &pk), 0);
    assert_int_equal(cp2p_key_type_parse(type), (int)cp2p_privkey_type(sk));
    /* The public key must be derivable from the private key, byte for byte. */
    assert_true(cp2p_pubkey_equal(cp2p_privkey_public(sk), pk));
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(sk), &b), 0);
    assert_int_equal(b.len, pub_len);
    assert_memory_equal(b.data, pub_bytes, pub_len);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_privkey_marshal(sk, &b), 0);
    assert_int_equal(b.len, priv_len);
    assert_memory_equal(b.data, priv_bytes, priv_len);
    cp2p_buf_free(&b);

    /* And the vector key signs in a way its public key accepts. */
    cp2p_buf_t sig = {0};
    assert_int_equal(cp2p_privkey_sign(sk, (const uint8_t *)"libp2p", 6, &sig), 0);
    assert_int_equal(cp2p_pubkey_verify(pk, (const uint8_t *)"libp2p", 6, sig.data, sig.len), 0);
    cp2p_buf_free(&sig);
    cp2p_privkey_free(sk);
    cp2p_pubkey_free(pk);
}

static void test_spec_ed25519(void **state) { check_spec_vector("ed25519"); }
static void test_spec_secp256k1(void **state) { check_spec_vector("secp256k1"); }
static void test_spec_ecdsa(void **state) { check_spec_vector("ecdsa"); }
static void test_spec_rsa(void **state) { check_spec_vector("rsa"); }

/* Sign with a generated key; verify with a key rebuilt from the marshalled
 * public bytes, as the remote side would. Also reload the private key. */
static void sign_verify_type(cp2p_key_type_t type)
{
    cp2p_privkey_t *sk = NULL, *sk2 = NULL;
    cp2p_pubkey_t *pk = NULL;
    assert_int_equal(cp2p_privkey_generate(type, 0, &sk), 0);
    assert_int_equal(cp2p_privkey_type(sk), type);

    cp2p_buf_t pub = {0}, priv = {0}, sig = {0};
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(sk), &pub), 0);
    assert_int_equal(pub.data[0], 0x08);
    assert_int_equal(pub.data[1], (uint8_t)type);
    assert_int_equal(cp2p_pubkey_unmarshal(pub.data, pub.len, &pk), 0);
    assert_int_equal(cp2p_pubkey_type(pk), type);

    const uint8_t msg[] = "a message from a peer";
    assert_int_equal(cp2p_privkey_sign(sk, msg, sizeof msg, &sig), 0);
    assert_int_equal(cp2p_pubkey_verify(pk, msg, sizeof msg, sig.data, sig.len), 0);
    assert_int_equal(cp2p_pubkey_verify(pk, msg, sizeof msg - 1, sig.data, sig.len), CP2P_ESIG);
    sig.data[sig.len / 2] ^= 0x01;
    assert_int_equal(cp2p_pubkey_verify(pk, msg, sizeof msg, sig.data, sig.len), CP2P_ESIG);
    assert_int_equal(cp2p_pubkey_verify(pk, msg, sizeof msg, sig.data, 0), CP2P_ESIG);

    assert_int_equal(cp2p_privkey_marshal(sk, &priv), 0);
    assert_int_equal(cp2p_privkey_unmarshal(priv.data, priv.len, &sk2), 0);
    assert_true(cp2p_pubkey_equal(cp2p_privkey_public(sk2), pk));
    cp2p_buf_reset(&sig);
    assert_int_equal(cp2p_privkey_sign(sk2, msg, sizeof msg, &sig), 0);
    assert_int_equal(cp2p_pubkey_verify(pk, msg, sizeof msg, sig.data, sig.len), 0);

    cp2p_pubkey_t *dup = NULL;
    assert_int_equal(cp2p_pubkey_dup(pk, &dup), 0);
    assert_true(cp2p_pubkey_equal(dup, cp2p_privkey_public(sk)));
    cp2p_pubkey_free(dup);

    cp2p_buf_free(&pub);
    cp2p_buf_free(&priv);
    cp2p_buf_free(&sig);
    cp2p_pubkey_free(pk);
    cp2p_privkey_free(sk);
    cp2p_privkey_free(sk2);
}

static int memo_frees;
static void memo_free(void *v)
{
    memo_frees++;
    free(v);
}

/* Memos live as long as the key, one per tag. */
static void test_memo(void **state)
{
    static const char tag1, tag2;
    cp2p_privkey_t *k = NULL;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &k), 0);
    assert_null(cp2p_privkey_memo(k, &tag1));
    int *v1 = malloc(sizeof *v1), *v2 = malloc(sizeof *v2);
    assert_int_equal(cp2p_privkey_set_memo(k, &tag1, v1, memo_free), 0);
    assert_int_equal(cp2p_privkey_set_memo(k, &tag2, v2, memo_free), 0);
    assert_ptr_equal(cp2p_privkey_memo(k, &tag1), v1);
    assert_ptr_equal(cp2p_privkey_memo(k, &tag2), v2);
    memo_frees = 0;
    assert_int_equal(cp2p_privkey_set_memo(k, NULL, malloc(1), memo_free), CP2P_EINVAL);
    assert_int_equal(memo_frees, 1); /* a refused value is freed too */
    cp2p_privkey_free(k);
    assert_int_equal(memo_frees, 3);
}

static void test_sign_verify_all(void **state)
{
    sign_verify_type(CP2P_KEY_ED25519);
    sign_verify_type(CP2P_KEY_SECP256K1);
    sign_verify_type(CP2P_KEY_ECDSA);
    sign_verify_type(CP2P_KEY_RSA);
}

/* A signature by one key never verifies under another key of the same type. */
static void test_wrong_key(void **state)
{
    cp2p_privkey_t *a = NULL, *b = NULL;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &a), 0);
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &b), 0);
    assert_false(cp2p_pubkey_equal(cp2p_privkey_public(a), cp2p_privkey_public(b)));
    cp2p_buf_t sig = {0};
    assert_int_equal(cp2p_privkey_sign(a, (const uint8_t *)"x", 1, &sig), 0);
    assert_int_equal(cp2p_pubkey_verify(cp2p_privkey_public(b), (const uint8_t *)"x", 1, sig.data,
                                        sig.len),
                     CP2P_ESIG);
    cp2p_buf_free(&sig);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* secp256k1 signatures must be low-S (BIP 62), as go-libp2p's are. */
static void test_secp256k1_low_s(void **state)
{
    /* n/2 of secp256k1, big-endian. */
    static const uint8_t half[32] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4,
                                     0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};
    cp2p_privkey_t *sk = NULL;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_SECP256K1, 0, &sk), 0);
    for (int i = 0; i < 32; i++) {
        cp2p_buf_t sig = {0};
        uint8_t msg[1] = {(uint8_t)i};
        assert_int_equal(cp2p_privkey_sign(sk, msg, 1, &sig), 0);
        /* DER: 30 L 02 rl r... 02 sl s... */
        size_t off = 3 + sig.data[3] + 1;
        size_t sl = sig.data[off];
        const uint8_t *s = sig.data + off + 1;
        if (sl == 33) {
            assert_int_equal(s[0], 0); /* a leading 0 would mean s >= 2^255 > n/2 */
            s++;
            sl--;
        }
        assert_true(sl < 32 || memcmp(s, half, 32) <= 0);
        assert_int_equal(cp2p_pubkey_verify(cp2p_privkey_public(sk), msg, 1, sig.data, sig.len), 0);
        cp2p_buf_free(&sig);
    }
    cp2p_privkey_free(sk);
}

/* Signatures made by js-libp2p (tests/fixtures/keys/gen.mjs) verify here. */
static void test_js_signatures(void **state)
{
    static const char *types[] = {"ed25519", "secp256k1", "rsa"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char *pub_hex = fixture_field(FIXTURES "signatures.txt", types[i], 1);
        char *msg_hex = fixture_field(FIXTURES "signatures.txt", types[i], 2);
        char *sig_hex = fixture_field(FIXTURES "signatures.txt", types[i], 3);
        static uint8_t pub[4096], msg[1024], sig[1024];
        size_t pub_len = unhex(pub_hex, pub, sizeof pub);
        size_t msg_len = unhex(msg_hex, msg, sizeof msg);
        size_t sig_len = unhex(sig_hex, sig, sizeof sig);
        cp2p_pubkey_t *pk = NULL;
        assert_int_equal(cp2p_pubkey_unmarshal(pub, pub_len, &pk), 0);
        assert_int_equal(cp2p_pubkey_verify(pk, msg, msg_len, sig, sig_len), 0);
        msg[0] ^= 1;
        assert_int_equal(cp2p_pubkey_verify(pk, msg, msg_len, sig, sig_len), CP2P_ESIG);
        cp2p_pubkey_free(pk);
        free(pub_hex);
        free(msg_hex);
        free(sig_hex);
    }
}

static int pub_rc(const char *hex)
{
    uint8_t b[512];
    size_t n = unhex(hex, b, sizeof b);
    cp2p_pubkey_t *pk = NULL;
    int rc = cp2p_pubkey_unmarshal(b, n, &pk);
    cp2p_pubkey_free(pk);
    return rc;
}

static int priv_rc(const char *hex)
{
    uint8_t b[512];
    size_t n = unhex(hex, b, sizeof b);
    cp2p_privkey_t *sk = NULL;
    int rc = cp2p_privkey_unmarshal(b, n, &sk);
    cp2p_privkey_free(sk);
    return rc;
}

#define ED_PUB "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
#define ED_SEED "7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d"

static void test_rejects_protobuf(void **state)
{
    assert_int_equal(pub_rc("08011220" ED_PUB), 0);
    assert_int_equal(pub_rc("08051220" ED_PUB), CP2P_EUNSUPPORTED);     /* unknown type */
    assert_int_equal(pub_rc("1220" ED_PUB), CP2P_EPARSE);               /* no Type */
    assert_int_equal(pub_rc("0801"), CP2P_EPARSE);                      /* no Data */
    assert_int_equal(pub_rc("12200801" ED_PUB), CP2P_EPARSE);           /* truncated / misordered */
    assert_int_equal(pub_rc("1220" ED_PUB "0801"), CP2P_EPARSE);        /* fields out of order */
    assert_int_equal(pub_rc("08011220" ED_PUB "1801"), CP2P_EPARSE);    /* extra field */
    assert_int_equal(pub_rc("0881001220" ED_PUB), CP2P_EPARSE);         /* non-minimal varint */
    assert_int_equal(pub_rc("0801122000" ED_PUB), CP2P_EPARSE);         /* length mismatch */
    assert_int_equal(pub_rc("08011220" ED_PUB "00"), CP2P_EPARSE);      /* trailing byte */
    assert_int_equal(pub_rc("0801121f" ED_PUB), CP2P_EPARSE);           /* truncated Data */
    assert_int_equal(pub_rc(""), CP2P_EPARSE);
}

static void test_rejects_keys(void **state)
{
    /* Ed25519: only 32-byte public keys; private keys of 32, 64 or 96 bytes
     * whose stored public half matches the seed. */
    assert_int_equal(pub_rc("0801121f" "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce2"),
                     CP2P_EPARSE);
    assert_int_equal(priv_rc("08011220" ED_SEED), 0);
    assert_int_equal(priv_rc("08011240" ED_SEED ED_PUB), 0);
    assert_int_equal(priv_rc("08011260" ED_SEED ED_PUB ED_PUB), 0);
    assert_int_equal(priv_rc("08011240" ED_SEED ED_SEED), CP2P_EPARSE);
    assert_int_equal(priv_rc("08011260" ED_SEED ED_PUB ED_SEED), CP2P_EPARSE);
    assert_int_equal(priv_rc("08011210" "7e0830617c4a7de83925dfb2694556b1"), CP2P_EPARSE);

    /* secp256k1: compressed points on the curve only; scalars in [1, n). */
    assert_int_equal(pub_rc("08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"), 0);
    assert_int_equal(pub_rc("08021221047777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"),
                     CP2P_EPARSE);
    /* x = p is not reduced to 0 silently */
    assert_int_equal(pub_rc("0802122102fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f"),
                     CP2P_EPARSE);
    assert_int_equal(priv_rc("080212200000000000000000000000000000000000000000000000000000000000000000"),
                     CP2P_EPARSE);
    assert_int_equal(priv_rc("08021220fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"),
                     CP2P_EPARSE);
    assert_int_equal(priv_rc("08021220fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140"), 0);

    /* ECDSA: a SEC1 key whose stored public point is not the scalar's (found by fuzzing). */
    size_t pn = vector("ecdsa-priv", priv_bytes, sizeof priv_bytes);
    priv_bytes[15] ^= 0x04;
    cp2p_privkey_t *bad = NULL;
    assert_int_equal(cp2p_privkey_unmarshal(priv_bytes, pn, &bad), CP2P_EPARSE);
    assert_null(bad);

    /* ECDSA: SubjectPublicKeyInfo with nothing after it; the point must be on the curve. */
    size_t n = vector("ecdsa-pub", pub_bytes, sizeof pub_bytes);
    cp2p_pubkey_t *pk = NULL;
    pub_bytes[n - 1] ^= 1;
    assert_int_equal(cp2p_pubkey_unmarshal(pub_bytes, n, &pk), CP2P_EPARSE);
    pub_bytes[n - 1] ^= 1;
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_ECDSA, pub_bytes + 4, n - 5, &pk), CP2P_EPARSE);
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_ECDSA, pub_bytes + 4, n - 4, &pk), 0);
    cp2p_pubkey_free(pk);
    /* An ECDSA SPKI is not an RSA key, nor the other way round. */
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_RSA, pub_bytes + 4, n - 4, &pk), CP2P_EPARSE);

    /* RSA below 2048 bits is refused, public or private. */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(small);
    uint8_t *der = NULL;
    int len = i2d_PUBKEY(small, &der);
    assert_true(len > 0);
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_RSA, der, (size_t)len, &pk), CP2P_EPARSE);
    OPENSSL_free(der);
    der = NULL;
    len = i2d_PrivateKey(small, &der);
    assert_true(len > 0 && len < 1000);
    uint8_t pb[1024] = {0x08, 0x00, 0x12, 0x80 | (uint8_t)(len & 0x7f), (uint8_t)(len >> 7)};
    memcpy(pb + 5, der, (size_t)len);
    cp2p_privkey_t *sk = NULL;
    assert_int_equal(cp2p_privkey_unmarshal(pb, (size_t)len + 5, &sk), CP2P_EPARSE);
    OPENSSL_free(der);
    EVP_PKEY_free(small);
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_RSA, 1024, &(cp2p_privkey_t *){NULL}),
                     CP2P_EINVAL);
}

static void test_type_names(void **state)
{
    assert_int_equal(cp2p_key_type_parse("Ed25519"), CP2P_KEY_ED25519);
    assert_int_equal(cp2p_key_type_parse("SECP256K1"), CP2P_KEY_SECP256K1);
    assert_int_equal(cp2p_key_type_parse("ecdsa"), CP2P_KEY_ECDSA);
    assert_int_equal(cp2p_key_type_parse("rsa"), CP2P_KEY_RSA);
    assert_int_equal(cp2p_key_type_parse("dsa"), -1);
    assert_int_equal(cp2p_key_type_parse(""), -1);
}

static void test_file_roundtrip(void **state)
{
    char path[] = CP2P_BINARY_DIR "/test_keys_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    cp2p_privkey_t *sk = NULL, *sk2 = NULL;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &sk), 0);
    assert_int_equal(cp2p_privkey_save_file(sk, path), 0);
    assert_int_equal(cp2p_privkey_load_file(path, &sk2), 0);
    assert_true(cp2p_pubkey_equal(cp2p_privkey_public(sk), cp2p_privkey_public(sk2)));
    unlink(path);
    cp2p_privkey_free(sk2);
    sk2 = NULL;
    assert_int_equal(cp2p_privkey_load_file(path, &sk2), CP2P_ENOTFOUND);
    cp2p_privkey_free(sk);
}

/* An RSA public key with exponent e, as the protobuf PublicKey cp2p reads. */
static void rsa_with_e(unsigned long long e, cp2p_buf_t *out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
    BIGNUM *bn = BN_new();
    EVP_PKEY *pk = NULL;
    assert_true(ctx && bn && BN_set_word(bn, e));
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048), 1);
    assert_int_equal(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, bn), 1);
    assert_int_equal(EVP_PKEY_keygen(ctx, &pk), 1);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pk, &der);
    assert_true(n > 0 && n < 16384);
    uint8_t head[] = {0x08, 0x00, 0x12, (uint8_t)(0x80 | (n & 0x7f)), (uint8_t)(n >> 7)};
    assert_int_equal(cp2p_buf_append(out, head, sizeof head), 0);
    assert_int_equal(cp2p_buf_append(out, der, (size_t)n), 0);
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    BN_free(bn);
    EVP_PKEY_CTX_free(ctx);
}

/* Go's crypto/rsa takes exponents below 2^31 only; a huge one makes every
 * verification as slow as a signature. */
static void test_rsa_exponent_bounded(void **state)
{
    (void)state;
    cp2p_buf_t ok = {0}, big = {0};
    rsa_with_e(65537, &ok);
    rsa_with_e((1ull << 33) + 1, &big);
    cp2p_pubkey_t *k;
    assert_int_equal(cp2p_pubkey_unmarshal(ok.data, ok.len, &k), 0);
    cp2p_pubkey_free(k);
    assert_int_equal(cp2p_pubkey_unmarshal(big.data, big.len, &k), CP2P_EPARSE);
    cp2p_buf_free(&ok);
    cp2p_buf_free(&big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_ed25519),     cmocka_unit_test(test_spec_secp256k1),
        cmocka_unit_test(test_spec_ecdsa),       cmocka_unit_test(test_spec_rsa),
        cmocka_unit_test(test_rsa_exponent_bounded),
        cmocka_unit_test(test_sign_verify_all),  cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_secp256k1_low_s),  cmocka_unit_test(test_js_signatures),
        cmocka_unit_test(test_rejects_protobuf), cmocka_unit_test(test_rejects_keys),
        cmocka_unit_test(test_type_names),       cmocka_unit_test(test_file_roundtrip),
        cmocka_unit_test(test_memo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
