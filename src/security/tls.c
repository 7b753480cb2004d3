/* The libp2p TLS handshake /tls/1.0.0 (libp2p specs tls/tls.md) over OpenSSL memory BIOs,
 * with muxer choice by ALPN (connections/inlined-muxer-negotiation.md, "over TLS"). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "security/tls.h"

#define SIG_PREFIX "libp2p-tls-handshake:"
#define SIG_PREFIX_LEN (sizeof(SIG_PREFIX) - 1)
#define EXT_OID "1.3.6.1.4.1.53594.1.1"
/* Clocks of peers lag behind ours; go-libp2p backdates by the same hour. */
#define NOT_BEFORE_SKEW (-60 * 60)
#define VALIDITY_DAYS (100 * 365)
#define FEED_CHUNK (64 * 1024) /* wire bytes handed to OpenSSL at once */
#define READ_CHUNK (16 * 1024) /* the plaintext of one TLS record at most */

/* The extension's OID as DER content bytes: compared directly, so the OID
 * never has to be registered in OpenSSL's global object table. */
static const uint8_t ext_oid_der[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xa2, 0x5a, 0x01, 0x01};

/* ALPN wire format, by preference: the muxers we speak, then "libp2p", which
 * the spec requires last and which leaves the choice to multistream-select. */
static const uint8_t alpn_offer[] = "\x0c/yamux/1.0.0\x0c/mplex/6.7.0\x06libp2p";
#define ALPN_OFFER_LEN (sizeof alpn_offer - 1)
static const char *const muxers[] = {"/yamux/1.0.0", "/mplex/6.7.0"};

/* SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING } */
typedef struct {
    ASN1_OCTET_STRING *public_key;
    ASN1_OCTET_STRING *signature;
} signed_key;

ASN1_SEQUENCE(signed_key) = {
    ASN1_SIMPLE(signed_key, public_key, ASN1_OCTET_STRING),
    ASN1_SIMPLE(signed_key, signature, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(signed_key)

/* OpenSSL queues errors on failure; hostile input must leave nothing behind. */
static int ssl_fail(int rc, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        cp2p_log_debug("tls", "%s: %s", what, ERR_reason_error_string(e));
    ERR_clear_error();
    return rc;
}

/* "libp2p-tls-handshake:" || the certificate's SubjectPublicKeyInfo, what the host key signs. */
static int signed_message(X509 *x, cp2p_buf_t *msg)
{
    unsigned char *spki = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
    if (n <= 0)
        return ssl_fail(CP2P_EPARSE, "subject public key");
    int rc = cp2p_buf_append(msg, SIG_PREFIX, SIG_PREFIX_LEN);
    if (!rc)
        rc = cp2p_buf_append(msg, spki, (size_t)n);
    OPENSSL_free(spki);
    return rc;
}

/* ---- our certificate ---- */

static int add_signed_key(const cp2p_privkey_t *identity, X509 *x)
{
    cp2p_buf_t key = {0}, msg = {0}, sig = {0};
    signed_key *sk = NULL;
    unsigned char *der = NULL;
    ASN1_OCTET_STRING *val = NULL;
    ASN1_OBJECT *oid = NULL;
    X509_EXTENSION *ext = NULL;
    int rc = signed_message(x, &msg);
    if (!rc)
        rc = cp2p_privkey_sign(identity, msg.data, msg.len, &sig);
    if (!rc)
        rc = cp2p_pubkey_marshal(cp2p_privkey_public(identity), &key);
    if (!rc && key.len < INT_MAX && sig.len < INT_MAX) {
        int len = -1;
        rc = CP2P_ECRYPTO;
        if ((sk = (signed_key *)ASN1_item_new(ASN1_ITEM_rptr(signed_key))) &&
            ASN1_OCTET_STRING_set(sk->public_key, key.data, (int)key.len) &&
            ASN1_OCTET_STRING_set(sk->signature, sig.data, (int)sig.len) &&
            (len = ASN1_item_i2d((ASN1_VALUE *)sk, &der, ASN1_ITEM_rptr(signed_key))) > 0 &&
            (val = ASN1_OCTET_STRING_new()) && ASN1_OCTET_STRING_set(val, der, len) &&
            (oid = OBJ_txt2obj(EXT_OID, 1)) &&
            (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, val)) && X509_add_ext(x, ext, -1))
            rc = 0;
    }
    ASN1_item_free((ASN1_VALUE *)sk, ASN1_ITEM_rptr(signed_key));
    OPENSSL_free(der);
    ASN1_OCTET_STRING_free(val);
    ASN1_OBJECT_free(oid);
    X509_EXTENSION_free(ext);
    cp2p_buf_free(&key);
    cp2p_buf_free(&msg);
    cp2p_buf_free(&sig);
    return rc;
}

/* A random positive serial, also written into the subject so that no two of
 * our certificates have the same name. */
static int set_serial_and_names(X509 *x)
{
    uint64_t serial;
    char text[24];
    if (RAND_bytes((unsigned char *)&serial, sizeof serial) != 1)
        return 0;
    serial = (serial >> 1) | 1;
    snprintf(text, sizeof text, "%llu", (unsigned long long)serial);
    X509_NAME *name = X509_get_subject_name(x);
    return ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) &&
           X509_NAME_add_entry_by_NID(name, NID_serialNumber, MBSTRING_ASC,
                                      (const unsigned char *)text, -1, -1, 0) &&
           X509_set_issuer_name(x, name);
}

/* The host key never signs the certificate itself: a fresh P-256 key does, so
 * any host key type works with any TLS stack (spec, "Peer Authentication"). */
static int make_cert(const cp2p_privkey_t *identity, X509 **cert, EVP_PKEY **key)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int rc = k && x ? 0 : CP2P_ECRYPTO;
    if (!rc && !(X509_set_version(x, X509_VERSION_3) && set_serial_and_names(x) &&
                 X509_gmtime_adj(X509_getm_notBefore(x), NOT_BEFORE_SKEW) &&
                 X509_time_adj_ex(X509_getm_notAfter(x), VALIDITY_DAYS, 0, NULL) &&
                 X509_set_pubkey(x, k)))
        rc = CP2P_ECRYPTO;
    if (!rc)
        rc = add_signed_key(identity, x);
    if (!rc && X509_sign(x, k, EVP_sha256()) <= 0)
        rc = CP2P_ECRYPTO;
    if (rc) {
        X509_free(x);
        EVP_PKEY_free(k);
        return ssl_fail(rc, "certificate");
    }
    *cert = x;
    *key = k;
    return 0;
}

int cp2p_tls_cert_generate(const cp2p_privkey_t *identity, cp2p_buf_t *der)
{
    if (!identity || !der)
        return CP2P_EINVAL;
    X509 *x;
    EVP_PKEY *k;
    int rc = make_cert(identity, &x, &k);
    if (rc)
        return rc;
    int n = i2d_X509(x, NULL);
    rc = n > 0 ? cp2p_buf_reserve(der, (size_t)n) : CP2P_ECRYPTO;
    if (!rc) {
        unsigned char *p = der->data + der->len;
        der->len += (size_t)i2d_X509(x, &p);
    }
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

/* ---- the remote's certificate ---- */

static int is_libp2p_ext(const X509_EXTENSION *e)
{
    const ASN1_OBJECT *o = X509_EXTENSION_get_object((X509_EXTENSION *)e);
    return OBJ_length(o) == sizeof ext_oid_der &&
           !memcmp(OBJ_get0_data(o), ext_oid_der, sizeof ext_oid_der);
}

/* The one libp2p extension; a second one would leave us to pick which to believe. */
static int find_signed_key(X509 *x, const ASN1_OCTET_STRING **val)
{
    *val = NULL;
    int n = X509_get_ext_count(x);
    for (int i = 0; i < n; i++) {
        X509_EXTENSION *e = X509_get_ext(x, i);
        if (is_libp2p_ext(e)) {
            if (*val)
                return CP2P_EPROTO;
            *val = X509_EXTENSION_get_data(e);
        } else if (X509_EXTENSION_get_critical(e) && !X509_supported_extension(e)) {
            return CP2P_EPROTO;
        }
    }
    return *val ? 0 : CP2P_EPROTO;
}

/* The certificate's own key (what the TLS handshake is signed with): our
 * chain check replaces OpenSSL's, so its security level is ours to apply.
 * ECDSA on the NIST curves, Ed25519 or Ed448, or RSA of 2048 to 8192 bits. */
static int cert_key_ok(EVP_PKEY *pk)
{
    int id = EVP_PKEY_get_base_id(pk), bits = EVP_PKEY_get_bits(pk);
    if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448)
        return 1;
    if (id == EVP_PKEY_RSA)
        return bits >= CP2P_RSA_MIN_BITS && bits <= CP2P_RSA_MAX_BITS;
    if (id != EVP_PKEY_EC)
        return 0;
    char curve[64];
    size_t len = 0;
    if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve, &len))
        return 0;
    return !strcmp(curve, "prime256v1") || !strcmp(curve, "P-256") || !strcmp(curve, "secp384r1") ||
           !strcmp(curve, "P-384") || !strcmp(curve, "secp521r1") || !strcmp(curve, "P-521");
}

static int check_signed_key(X509 *x, const ASN1_OCTET_STRING *val, cp2p_pubkey_t **out)
{
    const unsigned char *p = ASN1_STRING_get0_data(val);
    long n = ASN1_STRING_length(val);
    signed_key *sk = (signed_key *)ASN1_item_d2i(NULL, &p, n, ASN1_ITEM_rptr(signed_key));
    if (!sk || p != ASN1_STRING_get0_data(val) + n) {
        ASN1_item_free((ASN1_VALUE *)sk, ASN1_ITEM_rptr(signed_key));
        return ssl_fail(CP2P_EPARSE, "libp2p extension");
    }
    cp2p_pubkey_t *key = NULL;
    cp2p_buf_t msg = {0};
    int rc = cp2p_pubkey_unmarshal(ASN1_STRING_get0_data(sk->public_key),
                                   (size_t)ASN1_STRING_length(sk->public_key), &key);
    /* Structure first, signatures last: garbage costs no public-key operation. */
    EVP_PKEY *pk = X509_get0_pubkey(x);
    if (!rc && (!pk || !cert_key_ok(pk)))
        rc = ssl_fail(CP2P_EUNSUPPORTED, "certificate key type or size");
    if (!rc && X509_verify(x, pk) != 1)
        rc = ssl_fail(CP2P_ESIG, "certificate self-signature");
    if (!rc)
        rc = signed_message(x, &msg);
    if (!rc)
        rc = cp2p_pubkey_verify(key, msg.data, msg.len, ASN1_STRING_get0_data(sk->signature),
                                (size_t)ASN1_STRING_length(sk->signature));
    ASN1_item_free((ASN1_VALUE *)sk, ASN1_ITEM_rptr(signed_key));
    cp2p_buf_free(&msg);
    if (rc) {
        cp2p_pubkey_free(key);
        return rc;
    }
    *out = key;
    return 0;
}

static int check_cert(X509 *x, cp2p_pubkey_t **host_key)
{
    const ASN1_BIT_STRING *issuer_uid, *subject_uid;
    X509_get0_uids(x, &issuer_uid, &subject_uid);
    if (X509_get_version(x) != X509_VERSION_3 || issuer_uid || subject_uid)
        return CP2P_EPROTO;
    /* -1: notBefore is not after now; 1: notAfter is after now; 0: unreadable time. */
    if (X509_cmp_current_time(X509_get0_notBefore(x)) != -1 ||
        X509_cmp_current_time(X509_get0_notAfter(x)) != 1)
        return ssl_fail(CP2P_EPROTO, "certificate validity");
    const ASN1_OCTET_STRING *val;
    int rc = find_signed_key(x, &val);
    return rc ? rc : check_signed_key(x, val, host_key);
}

int cp2p_tls_cert_check(const uint8_t *der, size_t n, cp2p_pubkey_t **host_key)
{
    if (!host_key || (n && !der))
        return CP2P_EINVAL;
    if (n > CP2P_TLS_CERT_MAX)
        return CP2P_EOVERFLOW;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)n);
    int rc = x && p == der + n ? check_cert(x, host_key) : ssl_fail(CP2P_EPARSE, "certificate");
    X509_free(x);
    return rc;
}

/* ---- the session ---- */

struct cp2p_sec {
    cp2p_sec_base_t base; /* first: see security.h */
    SSL *ssl;
    BIO *net_in;  /* wire bytes waiting for OpenSSL; owned by ssl */
    BIO *net_out; /* records OpenSSL wrote for the wire; owned by ssl */
    cp2p_peer_id_t expected;
    int has_expected;
    int initiator;
    int read_closed; /* the remote sent close_notify: it sends nothing more, we still may */
    int verify_err; /* why our certificate check refused the remote */
    const char *muxer;
    uint8_t alpn[sizeof alpn_offer]; /* what this session offers or accepts by ALPN */
    size_t alpn_len;
};

/* Replaces X.509 path validation: the spec's rules are not a CA chain. Failing
 * here makes OpenSSL abort the handshake with an alert the remote can see. */
static int verify_chain(X509_STORE_CTX *c, void *arg)
{
    cp2p_sec_t *s = arg;
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(c);
    X509 *leaf = X509_STORE_CTX_get0_cert(c);
    cp2p_pubkey_t *key = NULL;
    int rc = leaf && chain && sk_X509_num(chain) == 1 ? check_cert(leaf, &key) : CP2P_EPROTO;
    if (!rc)
        rc = cp2p_peer_id_from_pubkey(key, &s->base.remote_peer);
    if (!rc && s->has_expected && !cp2p_peer_id_equal(&s->expected, &s->base.remote_peer))
        rc = CP2P_EPEERID;
    if (rc) {
        cp2p_pubkey_free(key);
        s->verify_err = rc;
        X509_STORE_CTX_set_error(c, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    cp2p_pubkey_free(s->base.remote_key);
    s->base.remote_key = key;
    return 1;
}

static const uint8_t *alpn_find(const uint8_t *list, size_t n, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < n; i += 1 + (size_t)list[i]) {
        size_t k = list[i];
        if (k > n - i - 1)
            return NULL;
        if (k == len && !memcmp(list + i + 1, p, len))
            return list + i + 1;
    }
    return NULL;
}

/* The spec wants the client's order to win, the reverse of SSL_select_next_proto. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
        unsigned int k = in[i];
        if (k > inlen - i - 1)
            break;
        const cp2p_sec_t *s = arg;
        const uint8_t *ours = alpn_find(s->alpn, s->alpn_len, in + i + 1, k);
        if (ours && k) {
            *out = ours;
            *outlen = (unsigned char)k;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL *new_ssl(cp2p_sec_t *s, const cp2p_privkey_t *identity)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    SSL *ssl = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx || make_cert(identity, &cert, &key))
        goto out;
    /* No tickets, no resumption: every connection proves its identity afresh. */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_max_cert_list(ctx, CP2P_TLS_CERT_MAX);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, verify_chain, s);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, s);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_use_certificate(ctx, cert) || !SSL_CTX_use_PrivateKey(ctx, key) ||
        !(ssl = SSL_new(ctx)))
        goto out;
    if (!(s->net_in = BIO_new(BIO_s_mem())) || !(s->net_out = BIO_new(BIO_s_mem()))) {
        BIO_free(s->net_in);
        SSL_free(ssl);
        ssl = NULL;
        goto out;
    }
    /* An empty read BIO means "wait for more bytes", not end of stream. */
    BIO_set_mem_eof_return(s->net_in, -1);
    SSL_set_bio(ssl, s->net_in, s->net_out);
    if (s->initiator) {
        /* No SNI: the spec keeps it for announcing future versions. */
        SSL_set_connect_state(ssl);
        if (SSL_set_alpn_protos(ssl, s->alpn, (unsigned)s->alpn_len) != 0) {
            SSL_free(ssl);
            ssl = NULL;
        }
    } else {
        SSL_set_accept_state(ssl);
    }
out:
    SSL_CTX_free(ctx); /* ssl holds its own reference */
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ssl)
        ssl_fail(0, "setup");
    return ssl;
}

static int sec_create(cp2p_sec_t **out, int initiator, const cp2p_privkey_t *identity,
                      const cp2p_peer_id_t *expected_remote)
{
    if (!out || !identity)
        return CP2P_EINVAL;
    cp2p_sec_t *s = calloc(1, sizeof *s);
    if (!s)
        return CP2P_ENOMEM;
    s->initiator = !!initiator;
    memcpy(s->alpn, alpn_offer, ALPN_OFFER_LEN);
    s->alpn_len = ALPN_OFFER_LEN;
    if (expected_remote) {
        s->expected = *expected_remote;
        s->has_expected = 1;
    }
    if (!(s->ssl = new_ssl(s, identity))) {
        free(s);
        return CP2P_ECRYPTO;
    }
    *out = s;
    return 0;
}

static void sec_destroy(cp2p_sec_t *s)
{
    if (!s)
        return;
    SSL_free(s->ssl);
    cp2p_pubkey_free(s->base.remote_key);
    free(s);
}

/* Moves what OpenSSL wrote (records, alerts) to the wire. */
static int drain(cp2p_sec_t *s, cp2p_buf_t *wire_out)
{
    size_t n;
    while ((n = BIO_ctrl_pending(s->net_out)) > 0) {
        if (n > FEED_CHUNK)
            n = FEED_CHUNK;
        int rc = cp2p_buf_reserve(wire_out, n);
        if (rc)
            return rc;
        int got = BIO_read(s->net_out, wire_out->data + wire_out->len, (int)n);
        if (got <= 0)
            return ssl_fail(CP2P_ECRYPTO, "drain");
        wire_out->len += (size_t)got;
    }
    return 0;
}

static int ssl_error(cp2p_sec_t *s, int ret, const char *what)
{
    switch (SSL_get_error(s->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return CP2P_ECLOSED;
    default:
        return ssl_fail(s->verify_err ? s->verify_err : CP2P_EPROTO, what);
    }
}

static int handshake(cp2p_sec_t *s)
{
    int ret = SSL_do_handshake(s->ssl);
    if (ret != 1)
        return ssl_error(s, ret, "handshake");
    /* The verify callback ran and accepted, or the handshake could not have completed. */
    if (!s->base.remote_key)
        return CP2P_EPROTO;
    const unsigned char *alpn;
    unsigned int len;
    SSL_get0_alpn_selected(s->ssl, &alpn, &len);
    for (size_t i = 0; i < sizeof muxers / sizeof muxers[0]; i++)
        if (len == strlen(muxers[i]) && !memcmp(alpn, muxers[i], len))
            s->muxer = muxers[i];
    s->base.established = 1;
    if (cp2p_log_enabled(CP2P_LOG_DEBUG)) {
        char id[CP2P_PEER_ID_STRMAX];
        if (cp2p_peer_id_to_string(&s->base.remote_peer, id, sizeof id) == 0)
            cp2p_log_debug("tls", "secured with %s, muxer %s", id, s->muxer ? s->muxer : "by mss");
    }
    return 0;
}

static int read_plain(cp2p_sec_t *s, cp2p_buf_t *plain_out)
{
    for (;;) {
        size_t got = 0;
        if (cp2p_buf_reserve(plain_out, READ_CHUNK))
            return CP2P_ENOMEM;
        if (SSL_read_ex(s->ssl, plain_out->data + plain_out->len, READ_CHUNK, &got) == 1) {
            plain_out->len += got;
            continue;
        }
        int rc = ssl_error(s, 0, "read");
        if (rc == CP2P_ECLOSED) {
            /* The bytes before close_notify are good: deliver them, refuse only what follows. */
            s->read_closed = 1;
            rc = 0;
        }
        return rc;
    }
}

static int sec_start(cp2p_sec_t *s, cp2p_buf_t *wire_out)
{
    int rc = cp2p_sec_begin(s, wire_out != NULL, 0);
    if (rc || !s->initiator)
        return rc;
    rc = handshake(s);
    if (!rc)
        rc = drain(s, wire_out);
    return cp2p_sec_settle(s, "tls", rc);
}

static int sec_input(cp2p_sec_t *s, const uint8_t *in, size_t n, cp2p_buf_t *wire_out,
                     cp2p_buf_t *plain_out)
{
    int rc = cp2p_sec_begin(s, wire_out && plain_out && (in || !n), 0);
    if (rc)
        return rc;
    if (s->read_closed)
        return cp2p_sec_settle(s, "tls", n ? CP2P_ECLOSED : 0);
    /* In slices, so OpenSSL never holds more than a slice and one partial record. */
    do {
        size_t k = n < FEED_CHUNK ? n : FEED_CHUNK;
        if (k && BIO_write(s->net_in, in, (int)k) != (int)k)
            rc = ssl_fail(CP2P_ENOMEM, "buffer");
        in += k;
        n -= k;
        if (!rc && !s->base.established)
            rc = handshake(s);
        if (!rc && s->base.established && !s->read_closed)
            rc = read_plain(s, plain_out);
        /* Alerts go out too: they tell the remote why we stop. */
        int d = drain(s, wire_out);
        if (!rc)
            rc = d;
    } while (!rc && n > 0 && !s->read_closed);
    if (!rc && s->read_closed && (n > 0 || BIO_ctrl_pending(s->net_in) > 0))
        rc = CP2P_ECLOSED; /* bytes after close_notify in this very read */
    return cp2p_sec_settle(s, "tls", rc);
}




static int sec_seal(cp2p_sec_t *s, const uint8_t *p, size_t n, cp2p_buf_t *wire_out)
{
    int rc = cp2p_sec_begin(s, wire_out && (p || !n), 1);
    if (rc)
        return rc;
    while (!rc && n > 0) {
        size_t k = n < FEED_CHUNK ? n : FEED_CHUNK, done = 0;
        if (SSL_write_ex(s->ssl, p, k, &done) != 1 || done != k)
            rc = ssl_fail(CP2P_ECRYPTO, "write");
        if (!rc)
            rc = drain(s, wire_out);
        p += k;
        n -= k;
    }
    return cp2p_sec_settle(s, "tls", rc); /* records may be half out: unusable then */
}

int cp2p_tls_offer_muxers(cp2p_sec_t *s, const char *const *ids, size_t n)
{
    if (!s || s->base.established)
        return CP2P_ESTATE;
    /* Kept in the order of alpn_offer, so the offer never outgrows its
     * buffer; "libp2p" stays last as the spec requires. */
    size_t len = 0;
    for (size_t j = 0; j < sizeof muxers / sizeof muxers[0]; j++)
        for (size_t i = 0; i < n; i++)
            if (ids[i] && !strcmp(ids[i], muxers[j])) {
                size_t k = strlen(muxers[j]);
                s->alpn[len++] = (uint8_t)k;
                memcpy(s->alpn + len, muxers[j], k);
                len += k;
                break;
            }
    memcpy(s->alpn + len, "\x06libp2p", 7);
    s->alpn_len = len + 7;
    if (s->initiator && SSL_set_alpn_protos(s->ssl, s->alpn, (unsigned)s->alpn_len) != 0)
        return ssl_fail(CP2P_ECRYPTO, "alpn");
    return 0;
}

const char *cp2p_tls_muxer(const cp2p_sec_t *s)
{
    return s && s->base.established ? s->muxer : NULL;
}

const cp2p_sec_vtable_t cp2p_tls_vtable = {
    .protocol_id = "/tls/1.0.0",
    .create = sec_create,
    .destroy = sec_destroy,
    .start = sec_start,
    .input = sec_input,
    .seal = sec_seal,
    .offer_muxers = cp2p_tls_offer_muxers,
    .early_muxer = cp2p_tls_muxer,
};
