/* TLS: the spec's certificate vectors, our certificates, handshakes between two
 * in-memory sessions for every key type, raw OpenSSL peers presenting bad
 * certificates, ALPN muxer choice, tampering and a 1 MiB round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "security/tls.h"
#include "sec_harness.h"

static const cp2p_sec_vtable_t *V = &cp2p_tls_vtable;

/* ---- the spec's test vectors (tls/tls.md, "Test vectors") ---- */

static const char *VEC_CERT[4] = {
    "308201ae30820156a0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c"
    "69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f343039363031"
    "30313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059"
    "301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7"
    "a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea3"
    "7c307a3078060a2b0601040183a25a0101046a3068042408011220a77f1d92fedb59dddaea5a1c4abd1ac2fbde"
    "7d7b879ed364501809923d7c11b90440d90d2769db992d5e6195dbb08e706b6651e024fda6cfb8846694a43551"
    "9941cac215a8207792e42849cccc6cd8136c6e4bde92a58c5e08cfd4206eb5fe0bf909300a06082a8648ce3d04"
    "03020346003043021f50f6b6c52711a881778718238f650c9fb48943ae6ee6d28427dc6071ae55e702203625f1"
    "16a7a454db9c56986c82a25682f7248ea1cb764d322ea983ed36a31b77",
    "308201f63082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c"
    "69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f343039363031"
    "30313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059"
    "301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7"
    "a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea3"
    "81c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d0201"
    "06082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf"
    "6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f2044730450220064ea8124774"
    "caf8f50e57f436aa62350ce652418c019df5d98a3ac666c9386a022100aa59d704a931b5f72fb9222cb6cc51f9"
    "54d04a4e2e5450f8805fe8918f71eaae300a06082a8648ce3d04030203470030440220799395b0b6c1e940a7e4"
    "484705f610ab51ed376f19ff9d7c16757cfbf61b8d4302206205c03fbb0f95205c779be86581d3e31c01871ad5"
    "d1f3435bcf375cb0e5088a",
    "308201ba3082015fa0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c"
    "69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f343039363031"
    "30313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059"
    "301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7"
    "a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea3"
    "8184308181307f060a2b0601040183a25a01010471306f0425080212210206dc6968726765b820f050263ececf"
    "7f71e4955892776c0970542efd689d2382044630440220145e15a991961f0d08cd15425bb95ec93f6ffa03c5a3"
    "85eedc34ecf464c7a8ab022026b3109b8a3f40ef833169777eb2aa337cfb6282f188de0666d1bcec2a4690dd30"
    "0a06082a8648ce3d0403020349003046022100e1a217eeef9ec9204b3f774a08b70849646b6a1e6b8b27f93dc0"
    "0ed58545d9fe022100b00dafa549d0f03547878338c7b15e7502888f6d45db387e5ae6b5d46899cef0",
    "308201f73082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c"
    "69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f343039363031"
    "30313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059"
    "301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7"
    "a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea3"
    "81c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d0201"
    "06082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf"
    "6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f204473045022100bb6e03577b"
    "7cc7a3cd1558df0da2b117dfdcc0399bc2504ebe7de6f65cade72802206de96e2a5be9b6202adba24ee0362e49"
    "0641ac45c240db71fe955f2c5cf8df6e300a06082a8648ce3d0403020348003045022100e847f267f43717358f"
    "850355bdcabbefb2cfbf8a3c043b203a14788a092fe8db022027c1d04a2d41fd6b57a7e8b3989e470325de4406"
    "e52e084e34a3fd56eef0d0df",
};
static const char *VEC_PEER[3] = {
    "12D3KooWM6CgA9iBFZmcYAHA6A2qvbAxqfkmrYiRQuz3XEsk4Ksv",
    "QmfXbAwNjJLXfesgztEHe8HwgVDCMMpZ9Eax1HYq6hn9uE",
    "16Uiu2HAkutTMoTzDw1tCvSRtu6YoixJwS46S1ZFxW8hSx9fWHiPs",
};

static void test_spec_vectors(void **state)
{
    uint8_t der[1024];
    for (int i = 0; i < 4; i++) {
        size_t n = unhex(VEC_CERT[i], der);
        cp2p_pubkey_t *k = NULL;
        int rc = cp2p_tls_cert_check(der, n, &k);
        if (i == 3) {
            /* the host key did not sign this certificate's key */
            assert_int_equal(rc, CP2P_ESIG);
            assert_null(k);
            continue;
        }
        assert_int_equal(rc, 0);
        cp2p_peer_id_t got, want;
        assert_int_equal(cp2p_peer_id_from_pubkey(k, &got), 0);
        assert_int_equal(cp2p_peer_id_parse(VEC_PEER[i], &want), 0);
        assert_true(cp2p_peer_id_equal(&got, &want));
        cp2p_pubkey_free(k);
        /* truncated, trailing byte, a flipped bit in the signature */
        assert_int_equal(cp2p_tls_cert_check(der, n - 1, &k), CP2P_EPARSE);
        der[n] = 0;
        assert_int_equal(cp2p_tls_cert_check(der, n + 1, &k), CP2P_EPARSE);
        der[n - 3] ^= 1;
        assert_int_equal(cp2p_tls_cert_check(der, n, &k), CP2P_ESIG);
    }
    assert_int_equal(cp2p_tls_cert_check(der, 0, &(cp2p_pubkey_t *){NULL}), CP2P_EPARSE);
    assert_int_equal(cp2p_tls_cert_check(der, CP2P_TLS_CERT_MAX + 1, &(cp2p_pubkey_t *){NULL}),
                     CP2P_EOVERFLOW);
}

static const uint8_t EXT_OID_DER[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xa2, 0x5a, 0x01, 0x01};

/* Our certificate, read back with OpenSSL alone. */
static void test_our_certificate(void **state)
{
    static const cp2p_key_type_t types[] = {CP2P_KEY_ED25519, CP2P_KEY_SECP256K1, CP2P_KEY_ECDSA,
                                            CP2P_KEY_RSA};
    for (int t = 0; t < 4; t++) {
        ident_t id;
        ident(&id, types[t]);
        cp2p_buf_t der = {0};
        assert_int_equal(cp2p_tls_cert_generate(id.key, &der), 0);
        cp2p_pubkey_t *k = NULL;
        assert_int_equal(cp2p_tls_cert_check(der.data, der.len, &k), 0);
        assert_true(cp2p_pubkey_equal(k, cp2p_privkey_public(id.key)));
        cp2p_pubkey_free(k);

        const unsigned char *p = der.data;
        X509 *x = d2i_X509(NULL, &p, (long)der.len);
        assert_non_null(x);
        assert_int_equal(X509_get_version(x), X509_VERSION_3);
        EVP_PKEY *pk = X509_get0_pubkey(x);
        assert_true(EVP_PKEY_is_a(pk, "EC"));
        assert_int_equal(X509_verify(x, pk), 1);
        assert_int_equal(X509_get_ext_count(x), 1);
        X509_EXTENSION *e = X509_get_ext(x, 0);
        assert_true(X509_EXTENSION_get_critical(e));
        const ASN1_OBJECT *o = X509_EXTENSION_get_object(e);
        assert_int_equal(OBJ_length(o), sizeof EXT_OID_DER);
        assert_memory_equal(OBJ_get0_data(o), EXT_OID_DER, sizeof EXT_OID_DER);
        assert_int_equal(X509_cmp_current_time(X509_get0_notBefore(x)), -1);
        assert_int_equal(X509_cmp_current_time(X509_get0_notAfter(x)), 1);
        X509_free(x);
        /* two certificates for the same identity differ (fresh key, fresh serial) */
        cp2p_buf_t der2 = {0};
        assert_int_equal(cp2p_tls_cert_generate(id.key, &der2), 0);
        assert_false(der2.len == der.len && !memcmp(der2.data, der.data, der.len));
        bufs_free(&der, &der2, NULL);
        cp2p_privkey_free(id.key);
    }
}

/* ---- two sessions ---- */

/* The responder does not speak first. */
static int run(cp2p_sec_t *a, cp2p_sec_t *b, int *a_rc, int *b_rc)
{
    return sec_run(V, a, b, 1, a_rc, b_rc);
}

static void established_pair(cp2p_sec_t **a, cp2p_sec_t **b, const ident_t *ia, const ident_t *ib)
{
    sec_established_pair(V, 1, a, b, ia, ib);
}

static void check_handshake(cp2p_key_type_t ta, cp2p_key_type_t tb)
{
    ident_t ia, ib;
    ident(&ia, ta);
    ident(&ib, tb);
    cp2p_sec_t *a, *b;
    sec_pair(V, &a, &b, &ia, &ib, &ib.id);
    assert_false(cp2p_sec_established(a));
    assert_null(cp2p_sec_remote_peer(a));
    cp2p_buf_t w = {0};
    assert_int_equal(V->seal(a, (const uint8_t *)"x", 1, &w), CP2P_ESTATE);
    cp2p_buf_free(&w);
    int ra, rb;
    assert_int_equal(run(a, b, &ra, &rb), 0);
    assert_true(cp2p_sec_established(a));
    assert_true(cp2p_sec_established(b));
    sec_check_remotes(a, b, &ia, &ib);
    assert_string_equal(V->protocol_id, "/tls/1.0.0");
    /* both offer yamux first: ALPN settles the muxer */
    assert_string_equal(cp2p_tls_muxer(a), "/yamux/1.0.0");
    assert_string_equal(cp2p_tls_muxer(b), "/yamux/1.0.0");
    sec_ping_pong(V, a, b);
    V->destroy(a);
    V->destroy(b);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

static void test_handshake_ed25519(void **state)
{
    check_handshake(CP2P_KEY_ED25519, CP2P_KEY_ED25519);
}

static void test_handshake_secp256k1(void **state)
{
    check_handshake(CP2P_KEY_SECP256K1, CP2P_KEY_SECP256K1);
}

static void test_handshake_ecdsa(void **state)
{
    check_handshake(CP2P_KEY_ECDSA, CP2P_KEY_ECDSA);
}

static void test_handshake_rsa(void **state)
{
    check_handshake(CP2P_KEY_RSA, CP2P_KEY_ED25519);
    check_handshake(CP2P_KEY_SECP256K1, CP2P_KEY_RSA);
}

static void test_expected_peer(void **state)
{
    ident_t ia, ib, ic;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    ident(&ic, CP2P_KEY_ED25519);
    cp2p_sec_t *a, *b;
    int ra, rb;
    /* dialled C but B answered: the initiator refuses, and its alert stops B */
    sec_pair(V, &a, &b, &ia, &ib, &ic.id);
    assert_int_equal(run(a, b, &ra, &rb), CP2P_EPEERID);
    assert_int_equal(ra, CP2P_EPEERID);
    assert_false(cp2p_sec_established(a));
    assert_null(cp2p_sec_remote_peer(a));
    assert_null(cp2p_sec_remote_key(a));
    cp2p_buf_t w = {0}, p = {0};
    assert_int_equal(V->seal(a, (const uint8_t *)"x", 1, &w), CP2P_EPEERID);
    assert_int_equal(V->input(a, (const uint8_t *)"\0\0", 2, &w, &p), CP2P_EPEERID);
    assert_int_equal(w.len, 0);
    V->destroy(a);
    V->destroy(b);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
    cp2p_privkey_free(ic.key);
}

/* ---- a raw OpenSSL peer with a certificate made here, independently of tls.c ---- */

enum {
    CERT_GOOD,
    CERT_NO_EXT,
    CERT_BAD_EXT_SIG,
    CERT_EXT_GARBAGE,
    CERT_TWO_EXTS,
    CERT_UNKNOWN_CRITICAL,
    CERT_EXPIRED,
    CERT_NOT_YET_VALID,
    CERT_CHAIN_OF_TWO,
    CERT_WEAK_RSA, /* a 1024-bit RSA certificate key (issue #14) */
    CERT_NONE,
};

static void der_len(cp2p_buf_t *b, size_t n)
{
    if (n < 0x80) {
        assert_int_equal(cp2p_buf_append_byte(b, (uint8_t)n), 0);
    } else {
        assert_true(n < 0x10000);
        uint8_t l[3] = {0x82, (uint8_t)(n >> 8), (uint8_t)n};
        assert_int_equal(cp2p_buf_append(b, l, 3), 0);
    }
}

static void der_tlv(cp2p_buf_t *b, uint8_t tag, const uint8_t *p, size_t n)
{
    assert_int_equal(cp2p_buf_append_byte(b, tag), 0);
    der_len(b, n);
    assert_int_equal(cp2p_buf_append(b, p, n), 0);
}

static void add_ext(X509 *x, const char *oid, int critical, const uint8_t *p, size_t n)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
    assert_true(o && v && ASN1_OCTET_STRING_set(v, p, (int)n));
    X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, o, critical, v);
    assert_non_null(e);
    assert_true(X509_add_ext(x, e, -1));
    X509_EXTENSION_free(e);
    ASN1_OCTET_STRING_free(v);
    ASN1_OBJECT_free(o);
}

static X509 *make_cert(const cp2p_privkey_t *host, int how, EVP_PKEY **key_out)
{
    EVP_PKEY *k = how == CERT_WEAK_RSA ? EVP_RSA_gen(1024) : EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_true(k && x);
    assert_true(X509_set_version(x, X509_VERSION_3));
    assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 7));
    long from = how == CERT_NOT_YET_VALID ? 3600 : -7200;
    long to = how == CERT_EXPIRED ? -3600 : 3600;
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to));
    assert_true(X509_set_pubkey(x, k));

    unsigned char *spki = NULL;
    int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
    assert_true(spki_len > 0);
    cp2p_buf_t msg = {0}, sig = {0}, key = {0}, body = {0}, sk = {0};
    assert_int_equal(cp2p_buf_append(&msg, "libp2p-tls-handshake:", 21), 0);
    assert_int_equal(cp2p_buf_append(&msg, spki, (size_t)spki_len), 0);
    if (how == CERT_BAD_EXT_SIG)
        msg.data[msg.len - 1] ^= 1;
    assert_int_equal(cp2p_privkey_sign(host, msg.data, msg.len, &sig), 0);
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(host), &key), 0);
    der_tlv(&body, 0x04, key.data, key.len);
    der_tlv(&body, 0x04, sig.data, sig.len);
    der_tlv(&sk, 0x30, body.data, body.len);
    if (how == CERT_EXT_GARBAGE)
        sk.data[1] ^= 0x01; /* the SEQUENCE length no longer fits */
    if (how != CERT_NO_EXT)
        add_ext(x, "1.3.6.1.4.1.53594.1.1", 1, sk.data, sk.len);
    if (how == CERT_TWO_EXTS)
        add_ext(x, "1.3.6.1.4.1.53594.1.1", 0, sk.data, sk.len);
    if (how == CERT_UNKNOWN_CRITICAL)
        add_ext(x, "1.3.6.1.4.1.99999.1", 1, (const uint8_t *)"\x05\x00", 2);
    /* a known critical extension and an unknown non-critical one are fine */
    add_ext(x, "2.5.29.19", 1, (const uint8_t *)"\x30\x00", 2);
    add_ext(x, "1.3.6.1.4.1.99999.2", 0, (const uint8_t *)"\x05\x00", 2);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    OPENSSL_free(spki);
    bufs_free(&msg, &sig, &key, &body, &sk, NULL);
    *key_out = k;
    return x;
}

static int accept_all(int ok, X509_STORE_CTX *c)
{
    return 1;
}

typedef struct {
    SSL *ssl;
    BIO *in, *out;
} raw_t;

static void raw_new(raw_t *r, int client, const cp2p_privkey_t *host, int how, const char *alpn,
                    int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    assert_non_null(ctx);
    assert_true(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION));
    assert_true(SSL_CTX_set_max_proto_version(ctx, max_version));
    SSL_CTX_set_verify(ctx, client ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, accept_all);
    if (how == CERT_WEAK_RSA)
        SSL_CTX_set_security_level(ctx, 0); /* the attacker's side takes any key */
    if (how != CERT_NONE) {
        EVP_PKEY *k;
        X509 *x = make_cert(host, how == CERT_CHAIN_OF_TWO ? CERT_GOOD : how, &k);
        assert_true(SSL_CTX_use_certificate(ctx, x) && SSL_CTX_use_PrivateKey(ctx, k));
        if (how == CERT_CHAIN_OF_TWO) {
            EVP_PKEY *k2;
            X509 *x2 = make_cert(host, CERT_GOOD, &k2);
            assert_true(SSL_CTX_add_extra_chain_cert(ctx, x2)); /* ctx owns x2 now */
            EVP_PKEY_free(k2);
        }
        X509_free(x);
        EVP_PKEY_free(k);
    }
    r->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    r->in = BIO_new(BIO_s_mem());
    r->out = BIO_new(BIO_s_mem());
    assert_true(r->ssl && r->in && r->out);
    BIO_set_mem_eof_return(r->in, -1);
    SSL_set_bio(r->ssl, r->in, r->out);
    if (client) {
        SSL_set_connect_state(r->ssl);
        uint8_t list[64];
        size_t n = strlen(alpn);
        list[0] = (uint8_t)n;
        memcpy(list + 1, alpn, n);
        assert_int_equal(SSL_set_alpn_protos(r->ssl, list, (unsigned)n + 1), 0);
    } else {
        SSL_set_accept_state(r->ssl);
    }
}

/* Runs a session against a raw peer; returns what the session said last. */
static int run_raw(cp2p_sec_t *s, raw_t *r)
{
    cp2p_buf_t to_raw = {0}, plain = {0};
    int rc = V->start(s, &to_raw);
    for (int round = 0; round < 10 && !rc; round++) {
        if (to_raw.len)
            assert_int_equal(BIO_write(r->in, to_raw.data, (int)to_raw.len), (int)to_raw.len);
        to_raw.len = 0;
        SSL_do_handshake(r->ssl);
        uint8_t buf[16384];
        int n = BIO_read(r->out, buf, sizeof buf);
        if (n <= 0)
            break;
        rc = V->input(s, buf, (size_t)n, &to_raw, &plain);
    }
    /* the last words, an alert if we refused */
    if (to_raw.len)
        assert_int_equal(BIO_write(r->in, to_raw.data, (int)to_raw.len), (int)to_raw.len);
    bufs_free(&to_raw, &plain, NULL);
    return rc;
}

static void raw_free(raw_t *r)
{
    SSL_free(r->ssl);
}

/* Our session as server against a raw client, then as client against a raw server. */
static void check_raw(const ident_t *us, const ident_t *them, int how, int want)
{
    for (int we_initiate = 0; we_initiate < 2; we_initiate++) {
        if (how == CERT_NONE && we_initiate)
            continue; /* a server always has a certificate */
        raw_t r;
        raw_new(&r, !we_initiate, them->key, how, "libp2p", TLS1_3_VERSION);
        cp2p_sec_t *s;
        assert_int_equal(V->create(&s, we_initiate, us->key, we_initiate ? &them->id : NULL), 0);
        int rc = run_raw(s, &r);
        assert_int_equal(rc, want);
        assert_int_equal(cp2p_sec_established(s), want == 0);
        if (want == 0) {
            assert_true(cp2p_peer_id_equal(cp2p_sec_remote_peer(s), &them->id));
            assert_null(cp2p_tls_muxer(s)); /* "libp2p" was chosen: multistream-select decides */
        } else {
            /* our alert ends the raw peer's handshake, or its session if it had finished */
            uint8_t b[16];
            int ret = SSL_is_init_finished(r.ssl) ? SSL_read(r.ssl, b, sizeof b)
                                                  : SSL_do_handshake(r.ssl);
            assert_int_equal(SSL_get_error(r.ssl, ret), SSL_ERROR_SSL);
        }
        V->destroy(s);
        raw_free(&r);
    }
}

static void test_bad_certificates(void **state)
{
    ident_t us, them;
    ident(&us, CP2P_KEY_ED25519);
    ident(&them, CP2P_KEY_SECP256K1);
    check_raw(&us, &them, CERT_GOOD, 0);
    check_raw(&us, &them, CERT_NO_EXT, CP2P_EPROTO);
    check_raw(&us, &them, CERT_BAD_EXT_SIG, CP2P_ESIG);
    check_raw(&us, &them, CERT_EXT_GARBAGE, CP2P_EPARSE);
    check_raw(&us, &them, CERT_TWO_EXTS, CP2P_EPROTO);
    check_raw(&us, &them, CERT_UNKNOWN_CRITICAL, CP2P_EPROTO);
    check_raw(&us, &them, CERT_EXPIRED, CP2P_EPROTO);
    check_raw(&us, &them, CERT_NOT_YET_VALID, CP2P_EPROTO);
    check_raw(&us, &them, CERT_CHAIN_OF_TWO, CP2P_EPROTO);
    check_raw(&us, &them, CERT_WEAK_RSA, CP2P_EUNSUPPORTED);
    check_raw(&us, &them, CERT_NONE, CP2P_EPROTO);
    cp2p_privkey_free(us.key);
    cp2p_privkey_free(them.key);
}

/* ALPN: the client's order wins; no common protocol and TLS 1.2 end the handshake. */
static void test_alpn_and_version(void **state)
{
    ident_t us, them;
    ident(&us, CP2P_KEY_ED25519);
    ident(&them, CP2P_KEY_ED25519);
    static const struct {
        const char *offer;
        int version, want;
        const char *muxer;
    } cases[] = {
        {"/mplex/6.7.0", TLS1_3_VERSION, 0, "/mplex/6.7.0"},
        {"libp2p", TLS1_3_VERSION, 0, NULL},
        {"/other/1.0.0", TLS1_3_VERSION, CP2P_EPROTO, NULL},
        {"libp2p", TLS1_2_VERSION, CP2P_EPROTO, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raw_t r;
        raw_new(&r, 1, them.key, CERT_GOOD, cases[i].offer, cases[i].version);
        cp2p_sec_t *s;
        assert_int_equal(V->create(&s, 0, us.key, NULL), 0);
        assert_int_equal(run_raw(s, &r), cases[i].want);
        if (cases[i].want == 0) {
            assert_true(cp2p_sec_established(s));
            if (cases[i].muxer)
                assert_string_equal(cp2p_tls_muxer(s), cases[i].muxer);
            else
                assert_null(cp2p_tls_muxer(s));
        }
        V->destroy(s);
        raw_free(&r);
    }
    cp2p_privkey_free(us.key);
    cp2p_privkey_free(them.key);
}

static void raw_session(raw_t *r, cp2p_sec_t **s, const ident_t *us, const ident_t *them)
{
    raw_new(r, 1, them->key, CERT_GOOD, "libp2p", TLS1_3_VERSION);
    assert_int_equal(V->create(s, 0, us->key, NULL), 0);
    assert_int_equal(run_raw(*s, r), 0);
    assert_true(cp2p_sec_established(*s));
}

/* close_notify: the data before it arrives, nothing after it does, we may still send. */
static void test_close_notify(void **state)
{
    ident_t us, them;
    ident(&us, CP2P_KEY_ED25519);
    ident(&them, CP2P_KEY_ED25519);
    uint8_t buf[4096];
    cp2p_buf_t w = {0}, p = {0};
    for (int trailing = 0; trailing < 2; trailing++) {
        raw_t r;
        cp2p_sec_t *s;
        raw_session(&r, &s, &us, &them);
        assert_int_equal(SSL_write(r.ssl, "bye", 3), 3);
        assert_true(SSL_shutdown(r.ssl) >= 0);
        int n = BIO_read(r.out, buf, sizeof buf - 1);
        assert_true(n > 0);
        if (trailing)
            buf[n++] = 23; /* the start of one more record */
        p.len = 0;
        assert_int_equal(V->input(s, buf, (size_t)n, &w, &p), trailing ? CP2P_ECLOSED : 0);
        assert_int_equal(p.len, 3);
        assert_memory_equal(p.data, "bye", 3);
        if (!trailing) {
            assert_int_equal(V->input(s, NULL, 0, &w, &p), 0);
            /* half-closed: our direction still works */
            w.len = 0;
            assert_int_equal(V->seal(s, (const uint8_t *)"still", 5, &w), 0);
            assert_int_equal(BIO_write(r.in, w.data, (int)w.len), (int)w.len);
            assert_int_equal(SSL_read(r.ssl, buf, sizeof buf), 5);
            assert_memory_equal(buf, "still", 5);
            /* but the remote may not send again */
            assert_int_equal(V->input(s, buf, 1, &w, &p), CP2P_ECLOSED);
            assert_int_equal(V->input(s, NULL, 0, &w, &p), CP2P_ECLOSED);
        }
        V->destroy(s);
        raw_free(&r);
    }
    bufs_free(&w, &p, NULL);
    cp2p_privkey_free(us.key);
    cp2p_privkey_free(them.key);
}

/* ---- tampering, chunking, bulk ---- */

static void test_handshake_tamper(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    /* A flipped bit in the server's first flight, at spread-out places. */
    int tried = 0, failed = 0;
    for (size_t bit = 5; bit < 8 * 2000; bit += 97) {
        cp2p_sec_t *a, *b;
        cp2p_buf_t w1 = {0}, w2 = {0}, w3 = {0}, p = {0};
        sec_pair(V, &a, &b, &ia, &ib, &ib.id);
        assert_int_equal(V->start(a, &w1), 0);
        assert_int_equal(V->input(b, w1.data, w1.len, &w2, &p), 0);
        int past_end = bit / 8 >= w2.len;
        if (!past_end)
            w2.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = V->input(a, w2.data, w2.len, &w3, &p);
        /* Never established; an error, unless a record length grew and the
         * client still waits for bytes that will not come. */
        if (!past_end) {
            assert_false(cp2p_sec_established(a));
            tried++;
            failed += rc < 0;
        }
        assert_int_equal(p.len, 0);
        V->destroy(a);
        V->destroy(b);
        bufs_free(&w1, &w2, &w3, &p, NULL);
        if (past_end)
            break;
    }
    assert_true(tried > 50 && failed >= tried - 2);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

static void test_transport_tamper(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    cp2p_sec_t *a, *b;
    cp2p_buf_t w = {0}, x = {0}, p = {0};
    established_pair(&a, &b, &ia, &ib);
    assert_int_equal(V->seal(a, (const uint8_t *)"hello", 5, &w), 0);
    size_t len = w.len;
    assert_true(len > 5 + 16);
    /* Every bit of the record body (the 5-byte header is sampled too). */
    for (size_t bit = 0; bit < 8 * len; bit++) {
        V->destroy(b);
        V->destroy(a);
        established_pair(&a, &b, &ia, &ib);
        w.len = p.len = 0;
        assert_int_equal(V->seal(a, (const uint8_t *)"hello", 5, &w), 0);
        w.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = V->input(b, w.data, w.len, &x, &p);
        if (rc == 0) {
            /* a longer length field: the record is still incomplete, never delivered */
            assert_true(bit >= 24 && bit < 40);
            assert_int_equal(p.len, 0);
            continue;
        }
        assert_int_equal(p.len, 0);
        /* the failure is sticky */
        assert_int_equal(V->input(b, w.data, 1, &x, &p), rc);
        assert_int_equal(V->seal(b, (const uint8_t *)"x", 1, &x), rc);
    }
    /* a replayed record fails: the sequence number moved on */
    V->destroy(b);
    V->destroy(a);
    established_pair(&a, &b, &ia, &ib);
    w.len = p.len = 0;
    assert_int_equal(V->seal(a, (const uint8_t *)"hello", 5, &w), 0);
    assert_int_equal(V->input(b, w.data, w.len, &x, &p), 0);
    assert_int_equal(V->input(b, w.data, w.len, &x, &p), CP2P_EPROTO);
    V->destroy(a);
    V->destroy(b);
    bufs_free(&w, &x, &p, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* Handshake bytes one at a time, and data in the same read as the client's last flight. */
static void test_handshake_chunked(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ECDSA);
    cp2p_sec_t *a, *b;
    sec_pair(V, &a, &b, &ia, &ib, &ib.id);
    cp2p_buf_t w1 = {0}, w2 = {0}, w3 = {0}, p = {0};
    assert_int_equal(V->start(a, &w1), 0);
    assert_int_equal(V->input(b, NULL, 0, &w2, &p), 0); /* an empty read does nothing */
    assert_int_equal(w2.len, 0);
    for (size_t k = 0; k < w1.len; k++)
        assert_int_equal(V->input(b, w1.data + k, 1, &w2, &p), 0);
    assert_true(w2.len > 0);
    for (size_t k = 0; k < w2.len; k++) {
        assert_false(cp2p_sec_established(a));
        assert_int_equal(V->input(a, w2.data + k, 1, &w3, &p), 0);
    }
    assert_true(cp2p_sec_established(a));
    assert_false(cp2p_sec_established(b));
    assert_int_equal(V->seal(a, (const uint8_t *)"early", 5, &w3), 0);
    w2.len = 0;
    assert_int_equal(V->input(b, w3.data, w3.len, &w2, &p), 0);
    assert_int_equal(w2.len, 0); /* no session tickets */
    assert_true(cp2p_sec_established(b));
    assert_true(cp2p_peer_id_equal(cp2p_sec_remote_peer(b), &ia.id));
    assert_int_equal(p.len, 5);
    assert_memory_equal(p.data, "early", 5);
    V->destroy(a);
    V->destroy(b);
    bufs_free(&w1, &w2, &w3, &p, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* Records of at most 2^14 bytes plus overhead. */
static void check_wire(const cp2p_buf_t *w, size_t n)
{
    size_t records = 0;
    for (size_t off = 0; off < w->len; records++) {
        assert_true(off + 5 <= w->len);
        size_t len = (size_t)w->data[off + 3] << 8 | w->data[off + 4];
        assert_int_equal(w->data[off], 23); /* application_data */
        assert_true(len <= 16384 + 256);
        off += 5 + len;
        assert_true(off <= w->len);
    }
    assert_true(records >= n / 16384);
}

/* Sealed in odd pieces too. */
static void test_mib_round_trip(void **state)
{
    const size_t chunks[] = {1, 7, 16406, 65537, (1 << 20) + 100};
    sec_mib_round_trip(V, 1, chunks, sizeof chunks / sizeof chunks[0], 100003, check_wire);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_vectors),
        cmocka_unit_test(test_our_certificate),
        cmocka_unit_test(test_handshake_ed25519),
        cmocka_unit_test(test_handshake_secp256k1),
        cmocka_unit_test(test_handshake_ecdsa),
        cmocka_unit_test(test_handshake_rsa),
        cmocka_unit_test(test_expected_peer),
        cmocka_unit_test(test_bad_certificates),
        cmocka_unit_test(test_alpn_and_version),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_handshake_tamper),
        cmocka_unit_test(test_transport_tamper),
        cmocka_unit_test(test_handshake_chunked),
        cmocka_unit_test(test_mib_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
