/* Noise_XX_25519_ChaChaPoly_SHA256 (Noise Protocol Framework rev 34, sections 4-5, 7, 12)
 * and the libp2p /noise secure session over it (libp2p specs noise/README.md r5). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "noise.pb-c.h"
#include "security/noise.h"

#define HASHLEN 32
#define DHLEN 32
#define PROTOCOL_NAME "Noise_XX_25519_ChaChaPoly_SHA256" /* exactly HASHLEN bytes */
#define SIG_PREFIX "noise-libp2p-static-key:"
#define SIG_PREFIX_LEN (sizeof(SIG_PREFIX) - 1)
#define FRAME_HDR 2

/* ---- CipherState (Noise 5.1) ---- */

struct cipher {
    EVP_CIPHER_CTX *ctx; /* keyed once, then only the nonce changes per message */
    int has_key;
    uint64_t n;
};

static int cipher_set_key(struct cipher *c, const uint8_t *k)
{
    if (!c->ctx && !(c->ctx = EVP_CIPHER_CTX_new()))
        return CP2P_ENOMEM;
    if (EVP_CipherInit_ex2(c->ctx, EVP_chacha20_poly1305(), k, NULL, 1, NULL) != 1)
        return CP2P_ECRYPTO;
    c->has_key = 1;
    c->n = 0;
    return 0;
}

static int cipher_start(struct cipher *c, int enc)
{
    /* 2^64-1 is reserved (Noise 5.1), so a nonce can never repeat by wrapping. */
    if (c->n == UINT64_MAX)
        return CP2P_ELIMIT;
    uint8_t iv[12] = {0};
    for (int i = 0; i < 8; i++)
        iv[4 + i] = (uint8_t)(c->n >> (8 * i));
    return EVP_CipherInit_ex2(c->ctx, NULL, NULL, iv, enc, NULL) == 1 ? 0 : CP2P_ECRYPTO;
}

/* out receives n + 16 bytes; n <= CP2P_NOISE_MAX_MSG, so the int casts hold. */
static int cipher_seal(struct cipher *c, const uint8_t *ad, size_t adlen, const uint8_t *p,
                       size_t n, uint8_t *out)
{
    int len, rc = cipher_start(c, 1);
    if (rc)
        return rc;
    if ((adlen && EVP_CipherUpdate(c->ctx, NULL, &len, ad, (int)adlen) != 1) ||
        (n && EVP_CipherUpdate(c->ctx, out, &len, p, (int)n) != 1) ||
        EVP_CipherFinal_ex(c->ctx, out + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_GET_TAG, CP2P_NOISE_TAG_LEN, out + n) != 1)
        return CP2P_ECRYPTO;
    c->n++;
    return 0;
}

/* out receives n - 16 bytes; they are unauthenticated garbage if this fails. */
static int cipher_open(struct cipher *c, const uint8_t *ad, size_t adlen, const uint8_t *ct,
                       size_t n, uint8_t *out)
{
    if (n < CP2P_NOISE_TAG_LEN)
        return CP2P_EPROTO;
    size_t m = n - CP2P_NOISE_TAG_LEN;
    int len, rc = cipher_start(c, 0);
    if (rc)
        return rc;
    if ((adlen && EVP_CipherUpdate(c->ctx, NULL, &len, ad, (int)adlen) != 1) ||
        (m && EVP_CipherUpdate(c->ctx, out, &len, ct, (int)m) != 1) ||
        EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_SET_TAG, CP2P_NOISE_TAG_LEN,
                            (void *)(ct + m)) != 1)
        return CP2P_ECRYPTO;
    if (EVP_CipherFinal_ex(c->ctx, out + m, &len) != 1)
        return CP2P_EPROTO; /* bad tag: forged or corrupted */
    c->n++;
    return 0;
}

static void cipher_clear(struct cipher *c)
{
    EVP_CIPHER_CTX_free(c->ctx);
    memset(c, 0, sizeof *c);
}

/* Room for n more bytes at the end of b. At least one byte is reserved so the
 * returned pointer is never NULL, even for an empty message. */
static uint8_t *room(cp2p_buf_t *b, size_t n)
{
    if (cp2p_buf_reserve(b, n ? n : 1))
        return NULL;
    return b->data + b->len;
}

/* ---- SymmetricState (Noise 5.2) ---- */

/* SHA-256 fetched once: EVP_sha256() and EVP_Q_mac looked the algorithm up in
 * OpenSSL's tables, under a lock, some twenty times a handshake. */
static EVP_MD *sha256_md;
static CRYPTO_ONCE sha256_once = CRYPTO_ONCE_STATIC_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

struct symmetric {
    struct cipher cs;
    EVP_MD_CTX *md; /* for every hash of the handshake; freed at split */
    uint8_t ck[HASHLEN];
    uint8_t h[HASHLEN];
};

/* out = SHA-256(a || b); out may alias a or b. */
static int sha256(EVP_MD_CTX *md, const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
                  uint8_t *out)
{
    unsigned int len = 0;
    int ok = md && EVP_DigestInit_ex(md, sha256_md, NULL) == 1 &&
             EVP_DigestUpdate(md, a, an) == 1 && (bn == 0 || EVP_DigestUpdate(md, b, bn) == 1) &&
             EVP_DigestFinal_ex(md, out, &len) == 1 && len == HASHLEN;
    return ok ? 0 : CP2P_ECRYPTO;
}

static int mix_hash(struct symmetric *ss, const uint8_t *d, size_t n)
{
    return sha256(ss->md, ss->h, HASHLEN, d, n, ss->h);
}

/* HMAC-SHA256 (RFC 2104) with a HASHLEN-byte key, on the hash context we hold. */
#define SHA256_BLOCK 64
static int hmac(EVP_MD_CTX *md, const uint8_t *key, const uint8_t *d, size_t n, uint8_t *out)
{
    uint8_t pad[SHA256_BLOCK], inner[HASHLEN];
    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < HASHLEN; i++)
        pad[i] ^= key[i];
    int rc = sha256(md, pad, sizeof pad, d, n, inner);
    if (!rc) {
        memset(pad, 0x5c, sizeof pad);
        for (size_t i = 0; i < HASHLEN; i++)
            pad[i] ^= key[i];
        rc = sha256(md, pad, sizeof pad, inner, HASHLEN, out);
    }
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(inner, sizeof inner);
    return rc;
}

/* HKDF with two outputs (Noise 4.3); o1 may alias ck. */
static int hkdf2(EVP_MD_CTX *md, const uint8_t *ck, const uint8_t *ikm, size_t n, uint8_t *o1,
                 uint8_t *o2)
{
    uint8_t tk[HASHLEN], in[HASHLEN + 1];
    int rc = hmac(md, ck, ikm, n, tk);
    if (!rc)
        rc = hmac(md, tk, (const uint8_t *)"\x01", 1, o1);
    if (!rc) {
        memcpy(in, o1, HASHLEN);
        in[HASHLEN] = 2;
        rc = hmac(md, tk, in, HASHLEN + 1, o2);
    }
    OPENSSL_cleanse(tk, sizeof tk);
    OPENSSL_cleanse(in, sizeof in);
    return rc;
}

static int mix_key(struct symmetric *ss, const uint8_t *ikm)
{
    uint8_t k[HASHLEN];
    int rc = hkdf2(ss->md, ss->ck, ikm, DHLEN, ss->ck, k);
    if (!rc)
        rc = cipher_set_key(&ss->cs, k);
    OPENSSL_cleanse(k, sizeof k);
    return rc;
}

static int encrypt_and_hash(struct symmetric *ss, const uint8_t *p, size_t n, cp2p_buf_t *out)
{
    size_t clen = n + (ss->cs.has_key ? CP2P_NOISE_TAG_LEN : 0);
    uint8_t *c = room(out, clen);
    if (!c)
        return CP2P_ENOMEM;
    int rc = 0;
    if (ss->cs.has_key)
        rc = cipher_seal(&ss->cs, ss->h, HASHLEN, p, n, c);
    else if (n)
        memcpy(c, p, n);
    if (!rc)
        rc = mix_hash(ss, c, clen);
    if (!rc)
        out->len += clen;
    return rc;
}

static int decrypt_and_hash(struct symmetric *ss, const uint8_t *c, size_t n, cp2p_buf_t *out)
{
    if (ss->cs.has_key && n < CP2P_NOISE_TAG_LEN)
        return CP2P_EPROTO;
    size_t plen = n - (ss->cs.has_key ? CP2P_NOISE_TAG_LEN : 0);
    uint8_t *p = room(out, plen);
    if (!p)
        return CP2P_ENOMEM;
    int rc = 0;
    if (ss->cs.has_key)
        rc = cipher_open(&ss->cs, ss->h, HASHLEN, c, n, p);
    else if (n)
        memcpy(p, c, n);
    if (!rc)
        rc = mix_hash(ss, c, n);
    if (!rc)
        out->len += plen;
    return rc;
}

/* ---- X25519 (Noise 12.1) ---- */

/* The key object is kept for the DHs: importing a raw X25519 private key
 * makes OpenSSL derive its public half, a scalar multiplication as costly as
 * the DH itself, so importing it again for every DH made handshakes slow. */
static int keypair(uint8_t *priv, uint8_t *pub, const uint8_t *fixed, EVP_PKEY **key)
{
    if (fixed)
        memcpy(priv, fixed, DHLEN);
    else if (RAND_bytes(priv, DHLEN) != 1)
        return CP2P_ECRYPTO;
    *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, DHLEN);
    size_t len = DHLEN;
    int ok = *key && EVP_PKEY_get_raw_public_key(*key, pub, &len) == 1 && len == DHLEN;
    return ok ? 0 : CP2P_ECRYPTO;
}

/* Fails on a low-order remote point (all-zero output), which only a hostile peer sends. */
static int dh(EVP_PKEY *k, EVP_PKEY *peer, uint8_t *out)
{
    EVP_PKEY_CTX *c = k && peer ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    size_t len = DHLEN;
    int ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
             EVP_PKEY_derive(c, out, &len) == 1 && len == DHLEN;
    EVP_PKEY_CTX_free(c);
    return ok ? 0 : CP2P_ECRYPTO;
}

static int mix_dh(struct symmetric *ss, EVP_PKEY *k, EVP_PKEY *peer)
{
    uint8_t shared[DHLEN];
    int rc = dh(k, peer, shared);
    if (!rc)
        rc = mix_key(ss, shared);
    OPENSSL_cleanse(shared, sizeof shared);
    return rc;
}

/* The remote ephemeral key serves two DHs and is imported once; the remote
 * static key serves one. */
static int mix_dh_raw(struct symmetric *ss, EVP_PKEY *k, const uint8_t *pub)
{
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, DHLEN);
    int rc = mix_dh(ss, k, peer);
    EVP_PKEY_free(peer);
    return rc;
}

/* ---- HandshakeState for XX (Noise 5.3, 7.5):  -> e   <- e, ee, s, es   -> s, se ---- */

struct cp2p_noise_xx {
    int initiator;
    int step; /* handshake messages done, 0..3; -1 once broken */
    struct symmetric ss;
    uint8_t s_priv[DHLEN], s_pub[DHLEN], e_priv[DHLEN], e_pub[DHLEN];
    EVP_PKEY *s_key, *e_key; /* the same keys, for the DHs; freed at split */
    uint8_t rs[DHLEN], re[DHLEN];
    EVP_PKEY *re_key; /* re, for the DHs; freed at split */
    int has_rs;
    struct cipher tx, rx;
};

/* s_key (with its public half s_pub) is shared and taken by reference; without
 * it the static key comes from s_priv, or is generated. */
static int xx_new(cp2p_noise_xx_t **out, int initiator, const uint8_t *prologue,
                  size_t prologue_len, EVP_PKEY *s_key, const uint8_t *s_pub,
                  const uint8_t *s_priv, const uint8_t *e_priv)
{
    if (!out || (prologue_len && !prologue))
        return CP2P_EINVAL;
    cp2p_noise_xx_t *x = calloc(1, sizeof *x);
    if (!x)
        return CP2P_ENOMEM;
    x->initiator = !!initiator;
    memcpy(x->ss.h, PROTOCOL_NAME, HASHLEN);
    memcpy(x->ss.ck, x->ss.h, HASHLEN);
    int rc = CRYPTO_THREAD_run_once(&sha256_once, sha256_fetch) && sha256_md &&
                     (x->ss.md = EVP_MD_CTX_new())
                 ? 0
                 : CP2P_ECRYPTO;
    if (!rc)
        rc = mix_hash(&x->ss, prologue, prologue_len);
    if (!rc && s_key) {
        if (EVP_PKEY_up_ref(s_key) == 1) {
            x->s_key = s_key;
            memcpy(x->s_pub, s_pub, DHLEN);
        } else {
            rc = CP2P_ECRYPTO;
        }
    } else if (!rc) {
        rc = keypair(x->s_priv, x->s_pub, s_priv, &x->s_key);
    }
    if (!rc)
        rc = keypair(x->e_priv, x->e_pub, e_priv, &x->e_key);
    if (rc) {
        cp2p_noise_xx_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

int cp2p_noise_xx_new(cp2p_noise_xx_t **out, int initiator, const uint8_t *prologue,
                      size_t prologue_len, const uint8_t *s_priv, const uint8_t *e_priv)
{
    return xx_new(out, initiator, prologue, prologue_len, NULL, NULL, s_priv, e_priv);
}

void cp2p_noise_xx_free(cp2p_noise_xx_t *x)
{
    if (!x)
        return;
    cipher_clear(&x->ss.cs);
    EVP_MD_CTX_free(x->ss.md);
    cipher_clear(&x->tx);
    cipher_clear(&x->rx);
    EVP_PKEY_free(x->s_key);
    EVP_PKEY_free(x->e_key);
    EVP_PKEY_free(x->re_key);
    OPENSSL_clear_free(x, sizeof *x);
}

static int split(cp2p_noise_xx_t *x)
{
    uint8_t k1[HASHLEN], k2[HASHLEN];
    int rc = hkdf2(x->ss.md, x->ss.ck, NULL, 0, k1, k2);
    if (!rc)
        rc = cipher_set_key(&x->tx, x->initiator ? k1 : k2);
    if (!rc)
        rc = cipher_set_key(&x->rx, x->initiator ? k2 : k1);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    /* The handshake secrets are no longer needed; forget them early. */
    cipher_clear(&x->ss.cs);
    EVP_MD_CTX_free(x->ss.md);
    x->ss.md = NULL;
    OPENSSL_cleanse(x->ss.ck, HASHLEN);
    OPENSSL_cleanse(x->s_priv, DHLEN);
    OPENSSL_cleanse(x->e_priv, DHLEN);
    EVP_PKEY_free(x->s_key);
    EVP_PKEY_free(x->e_key);
    EVP_PKEY_free(x->re_key);
    x->s_key = x->e_key = x->re_key = NULL;
    return rc;
}

/* Each XX message with an empty payload: e | e, s+tag, tag | s+tag, tag. */
static const size_t msg_min[3] = {DHLEN, DHLEN + DHLEN + 2 * CP2P_NOISE_TAG_LEN,
                                  DHLEN + 2 * CP2P_NOISE_TAG_LEN};

static int my_turn(const cp2p_noise_xx_t *x, int writing)
{
    if (x->step < 0 || x->step >= 3)
        return 0;
    int initiator_writes = x->step % 2 == 0;
    return writing ? initiator_writes == x->initiator : initiator_writes != x->initiator;
}

static int finish_step(cp2p_noise_xx_t *x, int rc)
{
    if (!rc && ++x->step == 3)
        rc = split(x);
    if (rc)
        x->step = -1;
    return rc;
}

int cp2p_noise_xx_write(cp2p_noise_xx_t *x, const uint8_t *payload, size_t n, cp2p_buf_t *msg_out)
{
    if (!x || !msg_out || (n && !payload))
        return CP2P_EINVAL;
    if (!my_turn(x, 1))
        return CP2P_ESTATE;
    if (n > CP2P_NOISE_MAX_MSG - msg_min[x->step])
        return CP2P_EOVERFLOW;
    size_t at = msg_out->len;
    struct symmetric *ss = &x->ss;
    int rc = 0;
    if (x->step < 2) {
        rc = cp2p_buf_append(msg_out, x->e_pub, DHLEN);
        if (!rc)
            rc = mix_hash(ss, x->e_pub, DHLEN);
    }
    if (!rc && x->step == 1) {
        rc = mix_dh(ss, x->e_key, x->re_key); /* ee */
        if (!rc)
            rc = encrypt_and_hash(ss, x->s_pub, DHLEN, msg_out);
        if (!rc)
            rc = mix_dh(ss, x->s_key, x->re_key); /* es */
    }
    if (!rc && x->step == 2) {
        rc = encrypt_and_hash(ss, x->s_pub, DHLEN, msg_out);
        if (!rc)
            rc = mix_dh(ss, x->s_key, x->re_key); /* se */
    }
    if (!rc)
        rc = encrypt_and_hash(ss, payload, n, msg_out);
    if (rc)
        msg_out->len = at;
    return finish_step(x, rc);
}

int cp2p_noise_xx_read(cp2p_noise_xx_t *x, const uint8_t *msg, size_t n, cp2p_buf_t *payload_out)
{
    if (!x || !payload_out || (n && !msg))
        return CP2P_EINVAL;
    if (!my_turn(x, 0))
        return CP2P_ESTATE;
    if (n > CP2P_NOISE_MAX_MSG)
        return CP2P_EOVERFLOW;
    if (n < msg_min[x->step])
        return finish_step(x, CP2P_EPROTO);
    size_t at = payload_out->len;
    struct symmetric *ss = &x->ss;
    /* Exact capacity: decrypt_and_hash writes the key straight into x->rs, never reallocates. */
    cp2p_buf_t rs = {x->rs, 0, DHLEN};
    int rc = 0;
    if (x->step < 2) {
        memcpy(x->re, msg, DHLEN);
        x->re_key = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, x->re, DHLEN);
        rc = x->re_key ? mix_hash(ss, x->re, DHLEN) : CP2P_ECRYPTO;
        msg += DHLEN;
        n -= DHLEN;
    }
    if (!rc && x->step == 1) {
        rc = mix_dh(ss, x->e_key, x->re_key); /* ee */
        if (!rc)
            rc = decrypt_and_hash(ss, msg, DHLEN + CP2P_NOISE_TAG_LEN, &rs);
        if (!rc)
            rc = mix_dh_raw(ss, x->e_key, x->rs); /* es */
    }
    if (!rc && x->step == 2) {
        rc = decrypt_and_hash(ss, msg, DHLEN + CP2P_NOISE_TAG_LEN, &rs);
        if (!rc)
            rc = mix_dh_raw(ss, x->e_key, x->rs); /* se */
    }
    if (!rc && x->step > 0) {
        x->has_rs = 1;
        msg += DHLEN + CP2P_NOISE_TAG_LEN;
        n -= DHLEN + CP2P_NOISE_TAG_LEN;
    }
    if (!rc)
        rc = decrypt_and_hash(ss, msg, n, payload_out);
    if (rc)
        payload_out->len = at;
    return finish_step(x, rc);
}

int cp2p_noise_xx_done(const cp2p_noise_xx_t *x)
{
    return x && x->step == 3;
}

const uint8_t *cp2p_noise_xx_local_static(const cp2p_noise_xx_t *x)
{
    return x->s_pub;
}

const uint8_t *cp2p_noise_xx_remote_static(const cp2p_noise_xx_t *x)
{
    return x->has_rs ? x->rs : NULL;
}

int cp2p_noise_xx_encrypt(cp2p_noise_xx_t *x, const uint8_t *p, size_t n, uint8_t *out)
{
    if (!x || !out || (n && !p))
        return CP2P_EINVAL;
    if (x->step != 3)
        return CP2P_ESTATE;
    if (n > CP2P_NOISE_MAX_PLAIN)
        return CP2P_EOVERFLOW;
    return cipher_seal(&x->tx, NULL, 0, p, n, out);
}

int cp2p_noise_xx_decrypt(cp2p_noise_xx_t *x, const uint8_t *c, size_t n, uint8_t *out)
{
    if (!x || (n && !c) || (n > CP2P_NOISE_TAG_LEN && !out))
        return CP2P_EINVAL;
    if (x->step != 3)
        return CP2P_ESTATE;
    if (n > CP2P_NOISE_MAX_MSG)
        return CP2P_EOVERFLOW;
    return cipher_open(&x->rx, NULL, 0, c, n, out);
}

/* ---- The libp2p session: framing and the signed handshake payload ---- */

struct cp2p_sec {
    cp2p_sec_base_t base; /* first: see security.h */
    cp2p_noise_xx_t *xx;
    const struct noise_static *st; /* the identity's, which outlives the session */
    cp2p_peer_id_t expected;
    int has_expected;
    int initiator;
    cp2p_buf_t rx; /* one partial frame, never more than FRAME_HDR + CP2P_NOISE_MAX_MSG */
};

/* One identity's static key and the payload that signs it, made on its first
 * session and kept with the key (cp2p_privkey_memo): a signature and a key
 * generation per handshake and side saved. go-libp2p and rust-libp2p keep one
 * static key per transport too; forward secrecy rests on the ephemeral keys. */
struct noise_static {
    EVP_PKEY *key;
    uint8_t pub[DHLEN];
    cp2p_buf_t payload; /* NoiseHandshakePayload: identity key, signature of pub */
};

static const char static_tag; /* the memo's tag: its address */

static void static_free(void *p)
{
    struct noise_static *st = p;
    if (!st)
        return;
    EVP_PKEY_free(st->key);
    cp2p_buf_free(&st->payload);
    free(st);
}

static int make_payload(const cp2p_privkey_t *identity, const uint8_t *s_pub, cp2p_buf_t *out)
{
    cp2p_buf_t key = {0}, sig = {0};
    uint8_t tbs[SIG_PREFIX_LEN + DHLEN];
    memcpy(tbs, SIG_PREFIX, SIG_PREFIX_LEN);
    memcpy(tbs + SIG_PREFIX_LEN, s_pub, DHLEN);
    int rc = cp2p_pubkey_marshal(cp2p_privkey_public(identity), &key);
    if (!rc)
        rc = cp2p_privkey_sign(identity, tbs, sizeof tbs, &sig);
    if (!rc) {
        Noise__NoiseHandshakePayload pl = NOISE__NOISE_HANDSHAKE_PAYLOAD__INIT;
        pl.has_identity_key = 1;
        pl.identity_key.data = key.data;
        pl.identity_key.len = key.len;
        pl.has_identity_sig = 1;
        pl.identity_sig.data = sig.data;
        pl.identity_sig.len = sig.len;
        size_t n = noise__noise_handshake_payload__get_packed_size(&pl);
        rc = cp2p_buf_reserve(out, n);
        if (!rc)
            out->len += noise__noise_handshake_payload__pack(&pl, out->data + out->len);
    }
    cp2p_buf_free(&key);
    cp2p_buf_free(&sig);
    return rc;
}

static int static_for(const cp2p_privkey_t *identity, const struct noise_static **out)
{
    struct noise_static *st = cp2p_privkey_memo(identity, &static_tag);
    if (st) {
        *out = st;
        return 0;
    }
    if (!(st = calloc(1, sizeof *st)))
        return CP2P_ENOMEM;
    uint8_t priv[DHLEN];
    int rc = keypair(priv, st->pub, NULL, &st->key);
    OPENSSL_cleanse(priv, sizeof priv);
    if (!rc)
        rc = make_payload(identity, st->pub, &st->payload);
    if (rc) {
        static_free(st);
        return rc;
    }
    if ((rc = cp2p_privkey_set_memo(identity, &static_tag, st, static_free)))
        return rc;
    *out = st;
    return 0;
}

static int sec_create(cp2p_sec_t **out, int initiator, const cp2p_privkey_t *identity,
                      const cp2p_peer_id_t *expected_remote)
{
    if (!out || !identity)
        return CP2P_EINVAL;
    const struct noise_static *st;
    int rc = static_for(identity, &st);
    if (rc)
        return rc;
    cp2p_sec_t *s = calloc(1, sizeof *s);
    if (!s)
        return CP2P_ENOMEM;
    s->st = st;
    rc = xx_new(&s->xx, initiator, NULL, 0, st->key, st->pub, NULL, NULL);
    if (rc) {
        free(s);
        return rc;
    }
    s->initiator = !!initiator;
    if (expected_remote) {
        s->expected = *expected_remote;
        s->has_expected = 1;
    }
    *out = s;
    return 0;
}

static void sec_destroy(cp2p_sec_t *s)
{
    if (!s)
        return;
    cp2p_noise_xx_free(s->xx);
    cp2p_buf_free(&s->rx);
    cp2p_pubkey_free(s->base.remote_key);
    free(s);
}

const uint8_t *cp2p_noise_local_static(const cp2p_sec_t *s)
{
    return s->st->pub;
}

/* Authenticates the remote: its identity key must have signed the Noise static key. */
static int check_payload(cp2p_sec_t *s, const uint8_t *p, size_t n)
{
    Noise__NoiseHandshakePayload *pl = noise__noise_handshake_payload__unpack(NULL, n, p);
    if (!pl)
        return CP2P_EPARSE;
    cp2p_pubkey_t *key = NULL;
    int rc = 0;
    if (!pl->has_identity_key || !pl->has_identity_sig)
        rc = CP2P_EPROTO;
    if (!rc)
        rc = cp2p_pubkey_unmarshal(pl->identity_key.data, pl->identity_key.len, &key);
    if (!rc) {
        uint8_t tbs[SIG_PREFIX_LEN + DHLEN];
        memcpy(tbs, SIG_PREFIX, SIG_PREFIX_LEN);
        memcpy(tbs + SIG_PREFIX_LEN, cp2p_noise_xx_remote_static(s->xx), DHLEN);
        rc = cp2p_pubkey_verify(key, tbs, sizeof tbs, pl->identity_sig.data,
                                pl->identity_sig.len);
    }
    if (!rc)
        rc = cp2p_peer_id_from_pubkey(key, &s->base.remote_peer);
    if (!rc && s->has_expected && !cp2p_peer_id_equal(&s->expected, &s->base.remote_peer))
        rc = CP2P_EPEERID;
    noise__noise_handshake_payload__free_unpacked(pl, NULL);
    if (rc) {
        cp2p_pubkey_free(key);
        return rc;
    }
    s->base.remote_key = key;
    return 0;
}

static int write_frame(cp2p_sec_t *s, const uint8_t *payload, size_t n, cp2p_buf_t *wire_out)
{
    size_t at = wire_out->len;
    int rc = cp2p_buf_append(wire_out, "\0\0", FRAME_HDR);
    if (!rc)
        rc = cp2p_noise_xx_write(s->xx, payload, n, wire_out);
    if (rc) {
        wire_out->len = at;
        return rc;
    }
    size_t len = wire_out->len - at - FRAME_HDR;
    wire_out->data[at] = (uint8_t)(len >> 8);
    wire_out->data[at + 1] = (uint8_t)len;
    return 0;
}

static int handshake_frame(cp2p_sec_t *s, const uint8_t *msg, size_t n, cp2p_buf_t *wire_out)
{
    cp2p_buf_t in = {0};
    int first = s->xx->step == 0; /* only the responder reads message 1 */
    int rc = cp2p_noise_xx_read(s->xx, msg, n, &in);
    if (!rc && first && in.len)
        rc = CP2P_EPROTO; /* message 1 is sent in the clear: it must not carry data */
    else if (!rc && !first)
        rc = check_payload(s, in.data, in.len);
    if (!rc && !cp2p_noise_xx_done(s->xx))
        rc = write_frame(s, s->st->payload.data, s->st->payload.len, wire_out);
    if (!rc && cp2p_noise_xx_done(s->xx)) {
        s->base.established = 1;
        if (cp2p_log_enabled(CP2P_LOG_DEBUG)) {
            char id[CP2P_PEER_ID_STRMAX];
            if (cp2p_peer_id_to_string(&s->base.remote_peer, id, sizeof id) == 0)
                cp2p_log_debug("noise", "secured with %s", id);
        }
    }
    cp2p_buf_free(&in);
    return rc;
}

static int transport_frame(cp2p_sec_t *s, const uint8_t *c, size_t n, cp2p_buf_t *plain_out)
{
    if (n < CP2P_NOISE_TAG_LEN)
        return CP2P_EPROTO;
    uint8_t *p = room(plain_out, n - CP2P_NOISE_TAG_LEN);
    if (!p)
        return CP2P_ENOMEM;
    int rc = cp2p_noise_xx_decrypt(s->xx, c, n, p);
    if (!rc)
        plain_out->len += n - CP2P_NOISE_TAG_LEN;
    return rc;
}

static int frame(cp2p_sec_t *s, const uint8_t *msg, size_t n, cp2p_buf_t *wire_out,
                 cp2p_buf_t *plain_out)
{
    return s->base.established ? transport_frame(s, msg, n, plain_out)
                          : handshake_frame(s, msg, n, wire_out);
}

/* Moves bytes from the input into b until it holds want bytes; returns b->len. */
static size_t take(cp2p_buf_t *b, size_t want, const uint8_t **in, size_t *n)
{
    if (b->len >= want)
        return b->len;
    size_t k = want - b->len < *n ? want - b->len : *n;
    memcpy(b->data + b->len, *in, k);
    b->len += k;
    *in += k;
    *n -= k;
    return b->len;
}

static int feed(cp2p_sec_t *s, const uint8_t *in, size_t n, cp2p_buf_t *wire_out,
                cp2p_buf_t *plain_out)
{
    int rc = 0;
    while (n > 0 && !rc) {
        if (s->rx.len == 0 && n >= FRAME_HDR) {
            /* Fast path: whole frames straight from the caller's bytes, no copy. */
            size_t len = (size_t)in[0] << 8 | in[1];
            if (n >= FRAME_HDR + len) {
                rc = frame(s, in + FRAME_HDR, len, wire_out, plain_out);
                in += FRAME_HDR + len;
                n -= FRAME_HDR + len;
                continue;
            }
        }
        if (!s->rx.data && (rc = cp2p_buf_reserve(&s->rx, FRAME_HDR + CP2P_NOISE_MAX_MSG)))
            break;
        if (take(&s->rx, FRAME_HDR, &in, &n) < FRAME_HDR)
            break;
        size_t len = (size_t)s->rx.data[0] << 8 | s->rx.data[1];
        if (take(&s->rx, FRAME_HDR + len, &in, &n) < FRAME_HDR + len)
            break;
        rc = frame(s, s->rx.data + FRAME_HDR, len, wire_out, plain_out);
        s->rx.len = 0;
    }
    /* A session between frames holds no buffer (memory per idle connection). */
    if (!s->rx.len)
        cp2p_buf_free(&s->rx);
    return rc;
}

static int sec_start(cp2p_sec_t *s, cp2p_buf_t *wire_out)
{
    int rc = cp2p_sec_begin(s, wire_out != NULL, 0);
    if (rc || !s->initiator)
        return rc;
    return cp2p_sec_settle(s, "noise", write_frame(s, NULL, 0, wire_out));
}

static int sec_input(cp2p_sec_t *s, const uint8_t *in, size_t n, cp2p_buf_t *wire_out,
                     cp2p_buf_t *plain_out)
{
    int rc = cp2p_sec_begin(s, wire_out && plain_out && (in || !n), 0);
    return rc ? rc : cp2p_sec_settle(s, "noise", feed(s, in, n, wire_out, plain_out));
}

/* One transport frame opened where it lies. AEAD: the plaintext overwrites
 * the ciphertext as it is decrypted (EVP allows out == in), but is handed on
 * only once the tag checked out; a forged frame's bytes are never seen. */
static int open_frame(cp2p_sec_t *s, uint8_t *c, size_t n,
                      int (*deliver)(void *, const uint8_t *, size_t), void *arg)
{
    if (n < CP2P_NOISE_TAG_LEN)
        return CP2P_EPROTO;
    int rc = cp2p_noise_xx_decrypt(s->xx, c, n, c);
    if (rc || n == CP2P_NOISE_TAG_LEN)
        return rc;
    rc = deliver(arg, c, n - CP2P_NOISE_TAG_LEN);
    return rc < 0 ? rc : 0;
}

static int open_frames(cp2p_sec_t *s, uint8_t *in, size_t n, size_t *used,
                       int (*deliver)(void *, const uint8_t *, size_t), void *arg)
{
    size_t off = 0;
    int rc = 0;
    if (s->rx.len) {
        /* A frame input began (the handshake's last read): finished in rx,
         * the one copy, then this session holds no buffer any more. */
        const uint8_t *p = in;
        size_t left = n, len = 0;
        int whole = 0;
        if (take(&s->rx, FRAME_HDR, &p, &left) >= FRAME_HDR) {
            len = (size_t)s->rx.data[0] << 8 | s->rx.data[1];
            whole = take(&s->rx, FRAME_HDR + len, &p, &left) == FRAME_HDR + len;
        }
        off = n - left;
        if (whole) {
            rc = open_frame(s, s->rx.data + FRAME_HDR, len, deliver, arg);
            cp2p_buf_free(&s->rx);
        }
    }
    while (!rc && !s->rx.len && n - off >= FRAME_HDR) {
        size_t len = (size_t)in[off] << 8 | in[off + 1];
        if (n - off < FRAME_HDR + len)
            break; /* partial: the caller keeps it */
        rc = open_frame(s, in + off + FRAME_HDR, len, deliver, arg);
        off += FRAME_HDR + len;
    }
    *used = off;
    return rc;
}

static int sec_open_in_place(cp2p_sec_t *s, uint8_t *in, size_t n, size_t *used,
                             int (*deliver)(void *, const uint8_t *, size_t), void *arg)
{
    if (used)
        *used = 0;
    int rc = cp2p_sec_begin(s, (in || !n) && used && deliver, 1);
    return rc ? rc : cp2p_sec_settle(s, "noise", open_frames(s, in, n, used, deliver, arg));
}

static int sec_seal(cp2p_sec_t *s, const uint8_t *p, size_t n, cp2p_buf_t *wire_out)
{
    int rc = cp2p_sec_begin(s, wire_out && (p || !n), 1);
    if (rc)
        return rc;
    if (n > SIZE_MAX / 2)
        return CP2P_EOVERFLOW;
    size_t frames = (n + CP2P_NOISE_MAX_PLAIN - 1) / CP2P_NOISE_MAX_PLAIN;
    size_t at = wire_out->len;
    rc = cp2p_buf_reserve(wire_out, n + frames * (FRAME_HDR + CP2P_NOISE_TAG_LEN));
    while (!rc && n > 0) {
        size_t k = n < CP2P_NOISE_MAX_PLAIN ? n : CP2P_NOISE_MAX_PLAIN;
        uint8_t *w = wire_out->data + wire_out->len;
        w[0] = (uint8_t)((k + CP2P_NOISE_TAG_LEN) >> 8);
        w[1] = (uint8_t)(k + CP2P_NOISE_TAG_LEN);
        rc = cp2p_noise_xx_encrypt(s->xx, p, k, w + FRAME_HDR);
        wire_out->len += FRAME_HDR + k + CP2P_NOISE_TAG_LEN;
        p += k;
        n -= k;
    }
    if (rc)
        wire_out->len = at; /* a nonce may be spent on a frame we drop: unusable now */
    return cp2p_sec_settle(s, "noise", rc);
}

int cp2p_noise_set_nonces(cp2p_sec_t *s, uint64_t send_n, uint64_t recv_n)
{
    if (!s || !s->base.established)
        return CP2P_ESTATE;
    s->xx->tx.n = send_n;
    s->xx->rx.n = recv_n;
    return 0;
}

const cp2p_sec_vtable_t cp2p_noise_vtable = {
    .protocol_id = "/noise",
    .create = sec_create,
    .destroy = sec_destroy,
    .start = sec_start,
    .input = sec_input,
    .seal = sec_seal,
    .open_in_place = sec_open_in_place,
};
