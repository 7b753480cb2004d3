/* Keys of the libp2p peer-ids spec (peer-ids/peer-ids.md, "Keys" and "Key Types"):
 * protobuf encoding, Ed25519, secp256k1, ECDSA and RSA sign/verify on OpenSSL 3. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/log.h"
#include "keys.pb-c.h"

#define ED25519_LEN 32
#define SECP256K1_PUB_LEN 33
#define SECP256K1_PRIV_LEN 32
/* Key data larger than this is not any key we accept (an 8192-bit RSA
 * PKCS#1 key is about 4.7 KB). */
#define KEY_DATA_MAX (16 * 1024)
#define KEY_FILE_MAX (64 * 1024)

static CRYPTO_ONCE sodium_once = CRYPTO_ONCE_STATIC_INIT;
static int sodium_ok;

struct cp2p_pubkey {
    cp2p_key_type_t type;
    EVP_PKEY *pkey;
    uint8_t *raw; /* the canonical Data bytes: what peer IDs are derived from */
    size_t raw_len;
};

struct memo {
    struct memo *next;
    const void *tag;
    void *value;
    void (*free_fn)(void *);
};

struct cp2p_privkey {
    cp2p_key_type_t type;
    EVP_PKEY *pkey;
    cp2p_pubkey_t *pub;
    struct memo *memos;
};

int cp2p_key_type_parse(const char *name)
{
    static const char *names[] = {"rsa", "ed25519", "secp256k1", "ecdsa"};
    for (int i = 0; i < 4; i++)
        if (name && !strcasecmp(name, names[i]))
            return i;
    return -1;
}

const char *cp2p_key_type_name(cp2p_key_type_t t)
{
    switch (t) {
    case CP2P_KEY_RSA: return "RSA";
    case CP2P_KEY_ED25519: return "Ed25519";
    case CP2P_KEY_SECP256K1: return "secp256k1";
    case CP2P_KEY_ECDSA: return "ECDSA";
    }
    return "unknown";
}

static int valid_type(int t)
{
    return t >= CP2P_KEY_RSA && t <= CP2P_KEY_ECDSA;
}

/* OpenSSL leaves errors queued on failure; a hostile key must not leave state behind. */
static int crypto_fail(int rc)
{
    ERR_clear_error();
    return rc;
}

/* ---- EC helpers ---------------------------------------------------------- */

static int ec_group_name(const EVP_PKEY *pk, char *name, size_t cap)
{
    size_t len = 0;
    if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, name, cap, &len))
        return CP2P_EPARSE;
    return 0;
}

/* go-libp2p accepts the NIST curves it knows; we generate P-256 only. */
static int ecdsa_curve_ok(const EVP_PKEY *pk)
{
    char name[64];
    if (ec_group_name(pk, name, sizeof name))
        return 0;
    return !strcmp(name, "prime256v1") || !strcmp(name, "secp384r1") ||
           !strcmp(name, "secp521r1");
}

static EVP_PKEY *ec_fromdata(const char *group, const BIGNUM *priv, const uint8_t *pub,
                             size_t pub_len)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!bld || !ctx ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len) ||
        (priv && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv)))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!params || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pk, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pk = NULL;
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

/* The compressed public point (Bitcoin encoding) of a secp256k1 key. */
static int secp256k1_pub_raw(EVP_PKEY *pk, uint8_t out[SECP256K1_PUB_LEN])
{
    uint8_t buf[65]; /* room for an uncompressed point, should the format be ignored */
    size_t len = 0;
    /* OSSL_PKEY_PARAM_PUB_KEY honours the conversion format; the "encoded" key does not. */
    if (!EVP_PKEY_set_utf8_string_param(pk, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                        OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED) ||
        !EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof buf, &len) ||
        len != SECP256K1_PUB_LEN)
        return crypto_fail(CP2P_ECRYPTO);
    memcpy(out, buf, SECP256K1_PUB_LEN);
    return 0;
}

/* OpenSSL 3.0 does not derive the public point on import, so compute it here. */
static EVP_PKEY *secp256k1_from_scalar(const uint8_t *d, size_t n)
{
    EVP_PKEY *pk = NULL;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp256k1);
    BIGNUM *priv = BN_bin2bn(d, (int)n, NULL);
    EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
    uint8_t pub[SECP256K1_PUB_LEN];
    if (!g || !priv || !pt || BN_is_zero(priv) || BN_cmp(priv, EC_GROUP_get0_order(g)) >= 0 ||
        !EC_POINT_mul(g, pt, priv, NULL, NULL, NULL) ||
        EC_POINT_point2oct(g, pt, POINT_CONVERSION_COMPRESSED, pub, sizeof pub, NULL) !=
            sizeof pub)
        goto out;
    pk = ec_fromdata("secp256k1", priv, pub, sizeof pub);
out:
    EC_POINT_free(pt);
    BN_clear_free(priv);
    EC_GROUP_free(g);
    return pk;
}

/* Bitcoin requires low-S signatures (BIP 62); OpenSSL does not normalise. */
static int secp256k1_low_s(cp2p_buf_t *sig, size_t start)
{
    const uint8_t *p = sig->data + start;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)(sig->len - start));
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp256k1);
    BIGNUM *half = NULL, *s2 = NULL, *r2 = NULL;
    int rc = CP2P_ECRYPTO;
    if (!es || !g)
        goto out;
    const BIGNUM *r, *s, *order = EC_GROUP_get0_order(g);
    ECDSA_SIG_get0(es, &r, &s);
    half = BN_dup(order);
    if (!half || !BN_rshift1(half, half))
        goto out;
    if (BN_cmp(s, half) <= 0) {
        rc = 0;
        goto out;
    }
    s2 = BN_new();
    r2 = BN_dup(r);
    if (!s2 || !r2 || !BN_sub(s2, order, s) || !ECDSA_SIG_set0(es, r2, s2))
        goto out;
    r2 = s2 = NULL;
    int len = i2d_ECDSA_SIG(es, NULL);
    if (len <= 0)
        goto out;
    sig->len = start;
    if ((rc = cp2p_buf_reserve(sig, (size_t)len)))
        goto out;
    uint8_t *w = sig->data + start;
    if (i2d_ECDSA_SIG(es, &w) != len) {
        rc = CP2P_ECRYPTO;
        goto out;
    }
    sig->len = start + (size_t)len;
    rc = 0;
out:
    BN_free(half);
    BN_free(s2);
    BN_free(r2);
    ECDSA_SIG_free(es);
    EC_GROUP_free(g);
    return rc ? crypto_fail(rc) : 0;
}

/* ---- public keys ---------------------------------------------------------- */

static int der_pubkey_raw(EVP_PKEY *pk, uint8_t **raw, size_t *len)
{
    uint8_t *der = NULL;
    int n = i2d_PUBKEY(pk, &der);
    if (n <= 0)
        return crypto_fail(CP2P_ECRYPTO);
    *raw = malloc((size_t)n);
    if (!*raw) {
        OPENSSL_free(der);
        return CP2P_ENOMEM;
    }
    memcpy(*raw, der, (size_t)n);
    OPENSSL_free(der);
    *len = (size_t)n;
    return 0;
}

/* An RSA key of an accepted size whose public exponent is below 2^31 (as
 * Go's crypto/rsa requires): a huge exponent makes every public operation,
 * and the pairwise check of a private key, as slow as a private one. */
static int rsa_shape_ok(const EVP_PKEY *pk)
{
    int bits = EVP_PKEY_get_bits(pk);
    BIGNUM *e = NULL;
    int ok = EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA && bits >= CP2P_RSA_MIN_BITS &&
             bits <= CP2P_RSA_MAX_BITS && EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) &&
             BN_num_bits(e) <= 31 && BN_is_odd(e) && !BN_is_one(e);
    BN_free(e);
    return ok;
}

/* Parse Data of a public key. Only the canonical encoding is accepted, so that
 * one key has exactly one peer ID. */
static EVP_PKEY *pubkey_parse(cp2p_key_type_t type, const uint8_t *p, size_t n)
{
    EVP_PKEY *pk = NULL;
    switch (type) {
    case CP2P_KEY_ED25519:
        if (n == ED25519_LEN)
            pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, p, n);
        return pk;
    case CP2P_KEY_SECP256K1:
        if (n == SECP256K1_PUB_LEN && (p[0] == 2 || p[0] == 3))
            pk = ec_fromdata("secp256k1", NULL, p, n);
        break;
    case CP2P_KEY_ECDSA:
    case CP2P_KEY_RSA: {
        const uint8_t *q = p;
        pk = d2i_PUBKEY(NULL, &q, (long)n);
        if (pk && (size_t)(q - p) != n) {
            EVP_PKEY_free(pk);
            return NULL;
        }
        break;
    }
    }
    if (!pk)
        return NULL;
    int ok = 0;
    if (type == CP2P_KEY_SECP256K1) {
        uint8_t raw[SECP256K1_PUB_LEN];
        ok = !secp256k1_pub_raw(pk, raw) && !memcmp(raw, p, n);
    } else if (type == CP2P_KEY_ECDSA) {
        ok = ecdsa_curve_ok(pk);
    } else {
        ok = rsa_shape_ok(pk);
    }
    if (ok && (type == CP2P_KEY_ECDSA || type == CP2P_KEY_RSA)) {
        uint8_t *raw = NULL;
        size_t len = 0;
        ok = !der_pubkey_raw(pk, &raw, &len) && len == n && !memcmp(raw, p, n);
        free(raw);
    }
    if (!ok) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

static int pubkey_new(cp2p_key_type_t type, EVP_PKEY *pk, const uint8_t *raw, size_t n,
                      cp2p_pubkey_t **out)
{
    cp2p_pubkey_t *k = calloc(1, sizeof *k);
    if (!k || !(k->raw = malloc(n))) {
        free(k);
        EVP_PKEY_free(pk);
        return CP2P_ENOMEM;
    }
    memcpy(k->raw, raw, n);
    k->raw_len = n;
    k->type = type;
    k->pkey = pk;
    *out = k;
    return 0;
}

int cp2p_pubkey_from_raw(cp2p_key_type_t type, const uint8_t *p, size_t n, cp2p_pubkey_t **out)
{
    if (!out || (!p && n))
        return CP2P_EINVAL;
    if (!valid_type(type))
        return CP2P_EUNSUPPORTED;
    if (n == 0 || n > KEY_DATA_MAX)
        return CP2P_EPARSE;
    EVP_PKEY *pk = pubkey_parse(type, p, n);
    if (!pk)
        return crypto_fail(CP2P_EPARSE);
    return pubkey_new(type, pk, p, n, out);
}

/* Unpacks a PublicKey or PrivateKey message and insists it is in the spec's
 * deterministic form: re-encoding must give back the very same bytes. */
static int key_pb_unpack(int priv, const uint8_t *p, size_t n, int *type, const uint8_t **data,
                         size_t *data_len, void **msg)
{
    if (n > KEY_DATA_MAX + 16)
        return CP2P_EPARSE;
    ProtobufCMessage *m = priv ? (ProtobufCMessage *)keys__private_key__unpack(NULL, n, p)
                               : (ProtobufCMessage *)keys__public_key__unpack(NULL, n, p);
    if (!m)
        return CP2P_EPARSE;
    /* protobuf-c keeps unknown fields and packs them again, so check them apart. */
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *re = len == n && m->n_unknown_fields == 0 ? malloc(len ? len : 1) : NULL;
    int same = re && protobuf_c_message_pack(m, re) == n && !memcmp(re, p, n);
    free(re);
    if (!same) {
        protobuf_c_message_free_unpacked(m, NULL);
        return CP2P_EPARSE;
    }
    if (priv) {
        Keys__PrivateKey *k = (Keys__PrivateKey *)m;
        *type = (int)k->type;
        *data = k->data.data;
        *data_len = k->data.len;
    } else {
        Keys__PublicKey *k = (Keys__PublicKey *)m;
        *type = (int)k->type;
        *data = k->data.data;
        *data_len = k->data.len;
    }
    *msg = m;
    return valid_type(*type) ? 0 : (protobuf_c_message_free_unpacked(m, NULL), CP2P_EUNSUPPORTED);
}

static int key_pb_pack(int priv, cp2p_key_type_t type, const uint8_t *data, size_t n,
                       cp2p_buf_t *out)
{
    ProtobufCMessage *m;
    Keys__PublicKey pub = KEYS__PUBLIC_KEY__INIT;
    Keys__PrivateKey prv = KEYS__PRIVATE_KEY__INIT;
    if (priv) {
        prv.type = (Keys__KeyType)type;
        prv.data.data = (uint8_t *)data;
        prv.data.len = n;
        m = &prv.base;
    } else {
        pub.type = (Keys__KeyType)type;
        pub.data.data = (uint8_t *)data;
        pub.data.len = n;
        m = &pub.base;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    int rc = cp2p_buf_reserve(out, len);
    if (rc)
        return rc;
    out->len += protobuf_c_message_pack(m, out->data + out->len);
    return 0;
}

int cp2p_pubkey_unmarshal(const uint8_t *p, size_t n, cp2p_pubkey_t **out)
{
    if (!out || (!p && n))
        return CP2P_EINVAL;
    int type;
    const uint8_t *data;
    size_t len;
    void *msg;
    int rc = key_pb_unpack(0, p, n, &type, &data, &len, &msg);
    if (rc)
        return rc;
    rc = cp2p_pubkey_from_raw((cp2p_key_type_t)type, data, len, out);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

int cp2p_pubkey_marshal(const cp2p_pubkey_t *k, cp2p_buf_t *out)
{
    if (!k || !out)
        return CP2P_EINVAL;
    return key_pb_pack(0, k->type, k->raw, k->raw_len, out);
}

static void sodium_start(void)
{
    sodium_ok = sodium_init() >= 0;
}

/* Ed25519 by libsodium: 36 us a verification against OpenSSL 3.0's 80, and
 * every connection verifies one (noise) or two (identify's record). */
static int ed25519_verify(const cp2p_pubkey_t *k, const uint8_t *msg, size_t n,
                          const uint8_t *sig, size_t sig_len)
{
    if (!CRYPTO_THREAD_run_once(&sodium_once, sodium_start) || !sodium_ok)
        return crypto_fail(CP2P_ECRYPTO);
    if (sig_len != crypto_sign_BYTES || k->raw_len != crypto_sign_PUBLICKEYBYTES)
        return CP2P_ESIG;
    return crypto_sign_verify_detached(sig, msg, n, k->raw) == 0 ? 0 : CP2P_ESIG;
}

int cp2p_pubkey_verify(const cp2p_pubkey_t *k, const uint8_t *msg, size_t n, const uint8_t *sig,
                       size_t sig_len)
{
    if (!k || (!msg && n) || (!sig && sig_len))
        return CP2P_EINVAL;
    if (sig_len == 0 || sig_len > KEY_DATA_MAX)
        return CP2P_ESIG;
    if (k->type == CP2P_KEY_ED25519)
        return ed25519_verify(k, msg, n, sig, sig_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return CP2P_ENOMEM;
    const EVP_MD *md = k->type == CP2P_KEY_ED25519 ? NULL : EVP_sha256();
    int ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : crypto_fail(CP2P_ESIG);
}

cp2p_key_type_t cp2p_pubkey_type(const cp2p_pubkey_t *k)
{
    return k->type;
}

int cp2p_pubkey_equal(const cp2p_pubkey_t *a, const cp2p_pubkey_t *b)
{
    return a && b && a->type == b->type && a->raw_len == b->raw_len &&
           !memcmp(a->raw, b->raw, a->raw_len);
}

int cp2p_pubkey_dup(const cp2p_pubkey_t *k, cp2p_pubkey_t **out)
{
    if (!k || !out)
        return CP2P_EINVAL;
    if (!EVP_PKEY_up_ref(k->pkey))
        return CP2P_ECRYPTO;
    return pubkey_new(k->type, k->pkey, k->raw, k->raw_len, out);
}

void cp2p_pubkey_free(cp2p_pubkey_t *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k->raw);
    free(k);
}

/* ---- private keys ---------------------------------------------------------- */

/* Wraps pk (owned from here on) and derives the public half from it. */
static int privkey_new(cp2p_key_type_t type, EVP_PKEY *pk, cp2p_privkey_t **out)
{
    uint8_t small[SECP256K1_PUB_LEN];
    uint8_t *raw = small;
    size_t len = 0;
    int rc = 0;
    switch (type) {
    case CP2P_KEY_ED25519:
        len = ED25519_LEN;
        if (!EVP_PKEY_get_raw_public_key(pk, small, &len))
            rc = crypto_fail(CP2P_ECRYPTO);
        break;
    case CP2P_KEY_SECP256K1:
        len = SECP256K1_PUB_LEN;
        rc = secp256k1_pub_raw(pk, small);
        break;
    case CP2P_KEY_ECDSA:
    case CP2P_KEY_RSA:
        rc = der_pubkey_raw(pk, &raw, &len);
        break;
    }
    cp2p_privkey_t *k = NULL;
    if (!rc && !(k = calloc(1, sizeof *k)))
        rc = CP2P_ENOMEM;
    if (!rc)
        rc = cp2p_pubkey_from_raw(type, raw, len, &k->pub);
    if (raw != small)
        free(raw);
    if (rc) {
        free(k);
        EVP_PKEY_free(pk);
        return rc;
    }
    k->type = type;
    k->pkey = pk;
    *out = k;
    return 0;
}

int cp2p_privkey_generate(cp2p_key_type_t type, int bits, cp2p_privkey_t **out)
{
    if (!out)
        return CP2P_EINVAL;
    EVP_PKEY *pk = NULL;
    switch (type) {
    case CP2P_KEY_ED25519:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    case CP2P_KEY_SECP256K1:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
        break;
    case CP2P_KEY_ECDSA:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case CP2P_KEY_RSA:
        if (bits == 0)
            bits = CP2P_RSA_MIN_BITS;
        if (bits < CP2P_RSA_MIN_BITS || bits > CP2P_RSA_MAX_BITS)
            return CP2P_EINVAL;
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
        break;
    default:
        return CP2P_EUNSUPPORTED;
    }
    if (!pk)
        return crypto_fail(CP2P_ECRYPTO);
    return privkey_new(type, pk, out);
}

static EVP_PKEY *ed25519_priv_parse(const uint8_t *p, size_t n)
{
    /* 32: bare seed; 64: seed||pub (preferred); 96: seed||pub||pub (legacy).
     * A stored public half must be the one the seed gives. */
    if (n != 32 && n != 64 && n != 96)
        return NULL;
    if (n == 96 && memcmp(p + 32, p + 64, 32))
        return NULL;
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, p, ED25519_LEN);
    uint8_t pub[ED25519_LEN];
    size_t len = sizeof pub;
    if (pk && n > 32 &&
        (!EVP_PKEY_get_raw_public_key(pk, pub, &len) || memcmp(pub, p + 32, ED25519_LEN))) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

static EVP_PKEY *der_priv_parse(int evp_type, const uint8_t *p, size_t n)
{
    const uint8_t *q = p;
    EVP_PKEY *pk = d2i_PrivateKey(evp_type, NULL, &q, (long)n);
    if (!pk)
        return NULL;
    if (evp_type == EVP_PKEY_RSA && !rsa_shape_ok(pk)) { /* before the costly check */
        EVP_PKEY_free(pk);
        return NULL;
    }
    /* SEC1 and PKCS#1 carry public parts that OpenSSL takes on trust; a key
     * whose halves disagree would sign what its public key never verifies. */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    int ok = (size_t)(q - p) == n && ctx && EVP_PKEY_pairwise_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

int cp2p_privkey_unmarshal(const uint8_t *p, size_t n, cp2p_privkey_t **out)
{
    if (!out || (!p && n))
        return CP2P_EINVAL;
    int type;
    const uint8_t *data;
    size_t len;
    void *msg;
    int rc = key_pb_unpack(1, p, n, &type, &data, &len, &msg);
    if (rc)
        return rc;
    EVP_PKEY *pk = NULL;
    switch ((cp2p_key_type_t)type) {
    case CP2P_KEY_ED25519:
        pk = ed25519_priv_parse(data, len);
        break;
    case CP2P_KEY_SECP256K1:
        if (len == SECP256K1_PRIV_LEN)
            pk = secp256k1_from_scalar(data, len);
        break;
    case CP2P_KEY_ECDSA:
        pk = der_priv_parse(EVP_PKEY_EC, data, len);
        if (pk && !ecdsa_curve_ok(pk)) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
        break;
    case CP2P_KEY_RSA:
        pk = der_priv_parse(EVP_PKEY_RSA, data, len); /* sizes checked there */
        break;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    if (!pk)
        return crypto_fail(CP2P_EPARSE);
    return privkey_new((cp2p_key_type_t)type, pk, out);
}

int cp2p_privkey_marshal(const cp2p_privkey_t *k, cp2p_buf_t *out)
{
    if (!k || !out)
        return CP2P_EINVAL;
    uint8_t small[64];
    uint8_t *data = small;
    size_t len = 0;
    int rc = 0;
    switch (k->type) {
    case CP2P_KEY_ED25519:
        len = ED25519_LEN;
        if (!EVP_PKEY_get_raw_private_key(k->pkey, small, &len))
            return crypto_fail(CP2P_ECRYPTO);
        memcpy(small + ED25519_LEN, k->pub->raw, ED25519_LEN);
        len = 2 * ED25519_LEN;
        break;
    case CP2P_KEY_SECP256K1: {
        BIGNUM *d = NULL;
        if (!EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
            BN_bn2binpad(d, small, SECP256K1_PRIV_LEN) != SECP256K1_PRIV_LEN)
            rc = crypto_fail(CP2P_ECRYPTO);
        BN_clear_free(d);
        len = SECP256K1_PRIV_LEN;
        break;
    }
    case CP2P_KEY_ECDSA:
    case CP2P_KEY_RSA: {
        /* SEC1 ECPrivateKey (x509.MarshalECPrivateKey) and PKCS#1 RSAPrivateKey. */
        data = NULL;
        int n = i2d_PrivateKey(k->pkey, &data);
        if (n <= 0)
            return crypto_fail(CP2P_ECRYPTO);
        len = (size_t)n;
        break;
    }
    }
    if (!rc)
        rc = key_pb_pack(1, k->type, data, len, out);
    if (data != small)
        OPENSSL_clear_free(data, len);
    OPENSSL_cleanse(small, sizeof small);
    return rc;
}

int cp2p_privkey_sign(const cp2p_privkey_t *k, const uint8_t *msg, size_t n, cp2p_buf_t *sig)
{
    if (!k || !sig || (!msg && n))
        return CP2P_EINVAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return CP2P_ENOMEM;
    const EVP_MD *md = k->type == CP2P_KEY_ED25519 ? NULL : EVP_sha256();
    size_t len = 0, start = sig->len;
    int rc = CP2P_ECRYPTO;
    /* Ed25519 is one-shot, so use the one-shot call for every type. */
    if (EVP_DigestSignInit(ctx, NULL, md, NULL, k->pkey) == 1 &&
        EVP_DigestSign(ctx, NULL, &len, msg, n) == 1) {
        rc = cp2p_buf_reserve(sig, len);
        if (!rc && EVP_DigestSign(ctx, sig->data + start, &len, msg, n) == 1)
            sig->len = start + len;
        else if (!rc)
            rc = CP2P_ECRYPTO;
    }
    EVP_MD_CTX_free(ctx);
    if (!rc && k->type == CP2P_KEY_SECP256K1)
        rc = secp256k1_low_s(sig, start);
    if (rc) {
        sig->len = start;
        return crypto_fail(rc);
    }
    return 0;
}

const cp2p_pubkey_t *cp2p_privkey_public(const cp2p_privkey_t *k)
{
    return k->pub;
}

cp2p_key_type_t cp2p_privkey_type(const cp2p_privkey_t *k)
{
    return k->type;
}

void *cp2p_privkey_memo(const cp2p_privkey_t *k, const void *tag)
{
    for (const struct memo *m = k ? k->memos : NULL; m; m = m->next)
        if (m->tag == tag)
            return m->value;
    return NULL;
}

int cp2p_privkey_set_memo(const cp2p_privkey_t *k, const void *tag, void *value,
                          void (*free_fn)(void *))
{
    struct memo *m = k && tag && free_fn ? calloc(1, sizeof *m) : NULL;
    if (!m) {
        if (free_fn)
            free_fn(value);
        return k && tag && free_fn ? CP2P_ENOMEM : CP2P_EINVAL;
    }
    *m = (struct memo){.tag = tag, .value = value, .free_fn = free_fn};
    /* Keys are heap objects, never const-defined: the cast only drops the
     * borrowers' promise not to change the key itself, which memos keep. */
    cp2p_privkey_t *mk = (cp2p_privkey_t *)k;
    m->next = mk->memos;
    mk->memos = m;
    return 0;
}

void cp2p_privkey_free(cp2p_privkey_t *k)
{
    if (!k)
        return;
    while (k->memos) {
        struct memo *m = k->memos;
        k->memos = m->next;
        m->free_fn(m->value);
        free(m);
    }
    EVP_PKEY_free(k->pkey);
    cp2p_pubkey_free(k->pub);
    free(k);
}

/* ---- files ---------------------------------------------------------------- */

int cp2p_privkey_load_file(const char *path, cp2p_privkey_t **out)
{
    if (!path || !out)
        return CP2P_EINVAL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        cp2p_log_debug("keys", "open %s: %s", path, strerror(errno));
        return errno == ENOENT ? CP2P_ENOTFOUND : CP2P_EIO;
    }
    uint8_t *buf = malloc(KEY_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, KEY_FILE_MAX + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    int rc;
    if (!buf)
        rc = CP2P_ENOMEM;
    else if (err)
        rc = CP2P_EIO;
    else if (n > KEY_FILE_MAX)
        rc = CP2P_EOVERFLOW;
    else
        rc = cp2p_privkey_unmarshal(buf, n, out);
    if (buf)
        OPENSSL_clear_free(buf, KEY_FILE_MAX + 1);
    return rc;
}

int cp2p_privkey_save_file(const cp2p_privkey_t *k, const char *path)
{
    if (!k || !path)
        return CP2P_EINVAL;
    cp2p_buf_t b = {0};
    int rc = cp2p_privkey_marshal(k, &b);
    if (rc)
        return rc;
    /* Created 0600 from the start: the key is never readable by others, even briefly. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = errno == EEXIST ? CP2P_EEXIST : CP2P_EIO;
    } else {
        size_t off = 0;
        while (off < b.len) {
            ssize_t w = write(fd, b.data + off, b.len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = CP2P_EIO;
                break;
            }
            off += (size_t)w;
        }
        /* An existing file keeps its old mode under O_CREAT; tighten it. */
        if (fchmod(fd, 0600))
            rc = CP2P_EIO;
        if (close(fd))
            rc = CP2P_EIO;
    }
    OPENSSL_cleanse(b.data, b.len);
    cp2p_buf_free(&b);
    return rc;
}
