/* Noise: the cacophony XX vector, the libp2p /noise handshake between two
 * in-memory sessions, tampering, framing limits and a 1 MiB round trip. */
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
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "noise.pb-c.h"
#include "security/noise.h"
#include "sec_harness.h"

static const cp2p_sec_vtable_t *V = &cp2p_noise_vtable;

/* ---- raw XX: cacophony vector Noise_XX_25519_ChaChaPoly_SHA256 ---- */

static const char *VEC_MSG[6][2] = {
    {"4c756477696720766f6e204d69736573",
     "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e204d69736573"},
    {"4d757272617920526f746862617264",
     "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c48378ffce2b65285"
     "e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f8a0db50f"
     "8814c7194e83f23dbd8d162c9326ad"},
    {"462e20412e20486179656b",
     "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169ae80a89be0865b57f"
     "58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030"},
    {"4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df"},
    {"4a65616e2d426170746973746520536179",
     "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5"},
    {"457567656e2042f6686d20766f6e2042617765726b",
     "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f"},
};

static void vector_pair(cp2p_noise_xx_t **i, cp2p_noise_xx_t **r)
{
    uint8_t pro[16], is[32], ie[32], rs[32], re[32];
    size_t pl = unhex("4a6f686e2047616c74", pro);
    unhex("e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1", is);
    unhex("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a", ie);
    unhex("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893", rs);
    unhex("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b", re);
    assert_int_equal(cp2p_noise_xx_new(i, 1, pro, pl, is, ie), 0);
    assert_int_equal(cp2p_noise_xx_new(r, 0, pro, pl, rs, re), 0);
}

static void test_cacophony_vector(void **state)
{
    cp2p_noise_xx_t *i, *r;
    vector_pair(&i, &r);
    uint8_t pay[64], ct[256], out[256];
    for (int m = 0; m < 6; m++) {
        size_t pn = unhex(VEC_MSG[m][0], pay), cn = unhex(VEC_MSG[m][1], ct);
        /* handshake: i, r, i; transport continues alternating: r, i, r */
        int from_i = m % 2 == 0;
        cp2p_noise_xx_t *tx = from_i ? i : r, *rx = from_i ? r : i;
        if (m < 3) {
            cp2p_buf_t msg = {0}, got = {0};
            assert_int_equal(cp2p_noise_xx_write(tx, pay, pn, &msg), 0);
            assert_int_equal(msg.len, cn);
            assert_memory_equal(msg.data, ct, cn);
            assert_int_equal(cp2p_noise_xx_read(rx, msg.data, msg.len, &got), 0);
            assert_int_equal(got.len, pn);
            assert_memory_equal(got.data, pay, pn);
            cp2p_buf_free(&msg);
            cp2p_buf_free(&got);
        } else {
            assert_int_equal(cp2p_noise_xx_encrypt(tx, pay, pn, out), 0);
            assert_int_equal(pn + 16, cn);
            assert_memory_equal(out, ct, cn);
            assert_int_equal(cp2p_noise_xx_decrypt(rx, ct, cn, out), 0);
            assert_memory_equal(out, pay, pn);
        }
        if (m == 2) {
            assert_true(cp2p_noise_xx_done(i) && cp2p_noise_xx_done(r));
            assert_memory_equal(cp2p_noise_xx_remote_static(i), cp2p_noise_xx_local_static(r), 32);
            assert_memory_equal(cp2p_noise_xx_remote_static(r), cp2p_noise_xx_local_static(i), 32);
        }
    }
    cp2p_noise_xx_free(i);
    cp2p_noise_xx_free(r);
}

static void test_raw_rejects(void **state)
{
    cp2p_noise_xx_t *i, *r;
    vector_pair(&i, &r);
    cp2p_buf_t m = {0}, p = {0};
    static uint8_t big[70000];
    /* out of turn */
    assert_int_equal(cp2p_noise_xx_write(r, NULL, 0, &m), CP2P_ESTATE);
    assert_int_equal(cp2p_noise_xx_encrypt(i, big, 1, big), CP2P_ESTATE);
    /* a message over 65535 bytes cannot be written or read */
    assert_int_equal(cp2p_noise_xx_write(i, big, CP2P_NOISE_MAX_MSG - 31, &m), CP2P_EOVERFLOW);
    assert_int_equal(m.len, 0);
    assert_int_equal(cp2p_noise_xx_read(r, big, CP2P_NOISE_MAX_MSG + 1, &p), CP2P_EOVERFLOW);
    /* message 1 shorter than an ephemeral key */
    assert_int_equal(cp2p_noise_xx_write(i, NULL, 0, &m), 0);
    assert_int_equal(cp2p_noise_xx_read(r, m.data, 31, &p), CP2P_EPROTO);
    assert_int_equal(cp2p_noise_xx_read(r, m.data, m.len, &p), CP2P_ESTATE); /* stays broken */
    cp2p_noise_xx_free(i);
    cp2p_noise_xx_free(r);

    /* message 2 one byte short, then a flipped bit in every byte of message 2 */
    for (size_t k = 0; k <= 96; k++) {
        vector_pair(&i, &r);
        m.len = 0;
        assert_int_equal(cp2p_noise_xx_write(i, NULL, 0, &m), 0);
        assert_int_equal(cp2p_noise_xx_read(r, m.data, m.len, &p), 0);
        m.len = 0;
        assert_int_equal(cp2p_noise_xx_write(r, NULL, 0, &m), 0);
        assert_int_equal(m.len, 96);
        if (k == 96)
            assert_int_equal(cp2p_noise_xx_read(i, m.data, 95, &p), CP2P_EPROTO);
        else {
            m.data[k] ^= 0x40;
            assert_true(cp2p_noise_xx_read(i, m.data, m.len, &p) < 0);
        }
        assert_int_equal(p.len, 0);
        cp2p_noise_xx_free(i);
        cp2p_noise_xx_free(r);
    }

    /* transport: over-long, too short for a tag, a flipped bit */
    vector_pair(&i, &r);
    for (int k = 0; k < 3; k++) {
        m.len = 0;
        cp2p_noise_xx_t *tx = k % 2 ? r : i, *rx = k % 2 ? i : r;
        assert_int_equal(cp2p_noise_xx_write(tx, NULL, 0, &m), 0);
        assert_int_equal(cp2p_noise_xx_read(rx, m.data, m.len, &p), 0);
    }
    assert_int_equal(cp2p_noise_xx_encrypt(i, big, CP2P_NOISE_MAX_PLAIN + 1, big), CP2P_EOVERFLOW);
    assert_int_equal(cp2p_noise_xx_decrypt(r, big, CP2P_NOISE_MAX_MSG + 1, big), CP2P_EOVERFLOW);
    assert_int_equal(cp2p_noise_xx_decrypt(r, big, 15, big), CP2P_EPROTO);
    uint8_t ct[32], pt[16];
    assert_int_equal(cp2p_noise_xx_encrypt(i, (const uint8_t *)"0123456789abcdef", 16, ct), 0);
    ct[3] ^= 1;
    assert_int_equal(cp2p_noise_xx_decrypt(r, ct, 32, pt), CP2P_EPROTO);
    cp2p_noise_xx_free(i);
    cp2p_noise_xx_free(r);
    bufs_free(&m, &p, NULL);
}

/* ---- the libp2p session ---- */

/* Runs the handshake; tamper(msg index 0..2, frame) may alter each frame. */
static int handshake(cp2p_sec_t *a, cp2p_sec_t *b, int flip_msg, size_t flip_bit, int *a_rc,
                     int *b_rc)
{
    cp2p_buf_t w = {0}, w2 = {0}, plain = {0};
    int rc = V->start(b, &w);
    assert_int_equal(rc, 0);
    assert_int_equal(w.len, 0); /* the responder does not speak first */
    assert_int_equal(V->start(a, &w), 0);
    assert_int_equal(w.len, 2 + 32);
    assert_int_equal(w.data[0] << 8 | w.data[1], 32);
    *a_rc = *b_rc = 0;
    for (int msg = 0; msg < 3; msg++) {
        cp2p_sec_t *to = msg % 2 ? a : b;
        int *to_rc = msg % 2 ? a_rc : b_rc;
        if (msg == flip_msg && flip_bit / 8 < w.len - 2)
            w.data[2 + flip_bit / 8] ^= (uint8_t)(1u << (flip_bit % 8));
        w2.len = 0;
        *to_rc = V->input(to, w.data, w.len, &w2, &plain);
        assert_int_equal(plain.len, 0);
        if (*to_rc)
            break;
        cp2p_buf_t t = w;
        w = w2;
        w2 = t;
        if (msg == 2)
            assert_int_equal(w.len, 0);
    }
    rc = *a_rc ? *a_rc : *b_rc;
    bufs_free(&w, &w2, &plain, NULL);
    return rc;
}

static void established_pair(cp2p_sec_t **a, cp2p_sec_t **b, const ident_t *ia, const ident_t *ib)
{
    int ra, rb;
    sec_pair(V, a, b, ia, ib, &ib->id);
    assert_int_equal(handshake(*a, *b, -1, 0, &ra, &rb), 0);
    assert_true(cp2p_sec_established(*a) && cp2p_sec_established(*b));
}

static void check_handshake(cp2p_key_type_t ta, cp2p_key_type_t tb)
{
    ident_t ia, ib;
    ident(&ia, ta);
    ident(&ib, tb);
    cp2p_sec_t *a, *b;
    sec_pair(V, &a, &b, &ia, &ib, NULL);
    assert_false(cp2p_sec_established(a));
    assert_null(cp2p_sec_remote_peer(a));
    int ra, rb;
    assert_int_equal(handshake(a, b, -1, 0, &ra, &rb), 0);
    assert_true(cp2p_sec_established(a));
    assert_true(cp2p_sec_established(b));
    sec_check_remotes(a, b, &ia, &ib);
    assert_string_equal(V->protocol_id, "/noise");
    sec_ping_pong(V, a, b);
    V->destroy(a);
    V->destroy(b);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* One static key per identity, made on its first session and freed with the
 * key; sessions that share it still handshake, each with its own keys. */
static void test_static_per_identity(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    cp2p_sec_t *a1, *b1, *a2, *b2;
    established_pair(&a1, &b1, &ia, &ib);
    established_pair(&a2, &b2, &ia, &ib);
    assert_memory_equal(cp2p_noise_local_static(a1), cp2p_noise_local_static(a2), 32);
    assert_memory_equal(cp2p_noise_local_static(b1), cp2p_noise_local_static(b2), 32);
    assert_memory_not_equal(cp2p_noise_local_static(a1), cp2p_noise_local_static(b1), 32);
    /* the same static keys, yet other session keys: a1's record is not b2's */
    cp2p_buf_t w = {0}, x = {0}, plain = {0};
    assert_int_equal(V->seal(a1, (const uint8_t *)"ping", 4, &w), 0);
    assert_true(V->input(b2, w.data, w.len, &x, &plain) < 0);
    V->destroy(a1);
    V->destroy(b1);
    V->destroy(a2);
    V->destroy(b2);
    bufs_free(&w, &x, &plain, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

static void test_handshake_ed25519(void **state)
{
    check_handshake(CP2P_KEY_ED25519, CP2P_KEY_ED25519);
}

static void test_handshake_mixed(void **state)
{
    check_handshake(CP2P_KEY_ED25519, CP2P_KEY_SECP256K1);
    check_handshake(CP2P_KEY_SECP256K1, CP2P_KEY_ECDSA);
}

static void test_expected_peer(void **state)
{
    ident_t ia, ib, ic;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    ident(&ic, CP2P_KEY_ED25519);
    cp2p_sec_t *a, *b;
    int ra, rb;
    sec_pair(V, &a, &b, &ia, &ib, &ib.id);
    assert_int_equal(handshake(a, b, -1, 0, &ra, &rb), 0);
    V->destroy(a);
    V->destroy(b);
    /* dialled C but B answered: the initiator refuses and sends no message 3 */
    sec_pair(V, &a, &b, &ia, &ib, &ic.id);
    assert_int_equal(handshake(a, b, -1, 0, &ra, &rb), CP2P_EPEERID);
    assert_int_equal(ra, CP2P_EPEERID);
    assert_false(cp2p_sec_established(a));
    assert_null(cp2p_sec_remote_peer(a));
    cp2p_buf_t w = {0}, p = {0};
    assert_int_equal(V->seal(a, (const uint8_t *)"x", 1, &w), CP2P_EPEERID);
    assert_int_equal(V->input(a, (const uint8_t *)"\0\0", 2, &w, &p), CP2P_EPEERID);
    V->destroy(a);
    V->destroy(b);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
    cp2p_privkey_free(ic.key);
}

static void test_handshake_tamper(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    /* Every bit of every handshake message body (2 + 32, ~170 and ~170 bytes). */
    for (int msg = 0; msg < 3; msg++) {
        for (size_t bit = 0;; bit++) {
            cp2p_sec_t *a, *b;
            int ra, rb;
            sec_pair(V, &a, &b, &ia, &ib, NULL);
            int rc = handshake(a, b, msg, bit, &ra, &rb);
            /* rc == 0: the bit is past the end of this message, all were tried */
            int done = rc == 0;
            if (done)
                assert_true(bit >= 8 * 32);
            else
                assert_false(cp2p_sec_established(msg == 2 ? b : a));
            V->destroy(a);
            V->destroy(b);
            if (done)
                break;
        }
    }
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
    assert_int_equal(w.len, 2 + 5 + 16);
    for (size_t bit = 16; bit < 8 * w.len; bit++) {
        V->destroy(b);
        V->destroy(a);
        established_pair(&a, &b, &ia, &ib);
        w.len = 0;
        assert_int_equal(V->seal(a, (const uint8_t *)"hello", 5, &w), 0);
        w.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        p.len = 0;
        assert_int_equal(V->input(b, w.data, w.len, &x, &p), CP2P_EPROTO);
        assert_int_equal(p.len, 0);
        /* the failure is sticky */
        assert_int_equal(V->input(b, w.data, 1, &x, &p), CP2P_EPROTO);
    }
    /* frames too short to hold a tag, including the empty frame */
    for (int len = 0; len < 16; len++) {
        V->destroy(b);
        V->destroy(a);
        established_pair(&a, &b, &ia, &ib);
        uint8_t f[18] = {0, (uint8_t)len};
        assert_int_equal(V->input(b, f, 2 + len, &x, &p), CP2P_EPROTO);
    }
    /* a replayed frame fails: the nonce moved on */
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

static void test_nonce_exhaustion(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    cp2p_sec_t *a, *b;
    cp2p_buf_t w = {0}, x = {0}, p = {0};
    established_pair(&a, &b, &ia, &ib);
    assert_int_equal(cp2p_noise_set_nonces(a, UINT64_MAX - 1, 0), 0);
    assert_int_equal(cp2p_noise_set_nonces(b, 0, UINT64_MAX - 1), 0);
    assert_int_equal(V->seal(a, (const uint8_t *)"last", 4, &w), 0);
    assert_int_equal(V->input(b, w.data, w.len, &x, &p), 0);
    assert_memory_equal(p.data, "last", 4);
    size_t before = w.len;
    assert_int_equal(V->seal(a, (const uint8_t *)"more", 4, &w), CP2P_ELIMIT);
    assert_int_equal(w.len, before);
    /* the receiver's nonces are spent too */
    assert_int_equal(V->input(b, w.data, w.len, &x, &p), CP2P_ELIMIT);
    V->destroy(a);
    V->destroy(b);
    bufs_free(&w, &x, &p, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* ---- open_in_place: transport frames decrypted in the caller's buffer ---- */

typedef struct {
    cp2p_buf_t got; /* everything delivered, in order */
    size_t calls;
    size_t fail_at; /* deliver fails on this call (1-based); 0: never */
} sink_t;

static int sink(void *arg, const uint8_t *p, size_t n)
{
    sink_t *k = arg;
    assert_true(n > 0);
    if (++k->calls == k->fail_at)
        return CP2P_ENOMEM;
    return cp2p_buf_append(&k->got, p, n);
}

/* As conn.c does: each chunk lands after the kept partial frame, whatever
 * open_in_place did not use moves to the start. Returns the first error. */
static int open_chunks(cp2p_sec_t *b, const uint8_t *w, size_t n, const size_t *cuts,
                       size_t ncuts, sink_t *k)
{
    uint8_t *buf = malloc(n ? n : 1);
    size_t tail = 0, off = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && !rc; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        memcpy(buf + tail, w + off, end - off);
        size_t have = tail + end - off, used = 99;
        off = end;
        rc = V->open_in_place(b, buf, have, &used, sink, k);
        if (!rc) {
            assert_true(used <= have);
            memmove(buf, buf + used, have - used);
            tail = have - used;
        }
    }
    if (!rc)
        assert_true(tail < 2 || tail < 2 + ((size_t)buf[0] << 8 | buf[1]));
    free(buf);
    return rc;
}

static void test_in_place_splits(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    cp2p_sec_t *a, *b;
    established_pair(&a, &b, &ia, &ib);
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    cp2p_buf_t w = {0};
    assert_int_equal(V->seal(a, (const uint8_t *)"hello", 5, &w), 0);
    assert_int_equal(V->seal(a, msg, sizeof msg, &w), 0);
    assert_int_equal(V->seal(a, (const uint8_t *)"x", 1, &w), 0);
    const uint8_t want[] = "hello";
    /* every single cut, and every pair of cuts one to three bytes apart */
    for (size_t cut = 0; cut <= w.len; cut++) {
        for (size_t gap = 0; gap <= 3; gap++) {
            size_t cuts[2] = {cut, cut + gap <= w.len ? cut + gap : w.len};
            sink_t k = {0};
            assert_int_equal(cp2p_noise_set_nonces(b, 0, 0), 0);
            assert_int_equal(open_chunks(b, w.data, w.len, cuts, gap ? 2 : 1, &k), 0);
            assert_int_equal(k.got.len, 5 + sizeof msg + 1);
            assert_memory_equal(k.got.data, want, 5);
            assert_memory_equal(k.got.data + 5, msg, sizeof msg);
            assert_int_equal(k.got.data[5 + sizeof msg], 'x');
            assert_int_equal(k.calls, 3);
            cp2p_buf_free(&k.got);
        }
    }
    /* one byte at a time */
    size_t *all = malloc(w.len * sizeof *all);
    for (size_t i = 0; i < w.len; i++)
        all[i] = i;
    sink_t k = {0};
    assert_int_equal(cp2p_noise_set_nonces(b, 0, 0), 0);
    assert_int_equal(open_chunks(b, w.data, w.len, all, w.len, &k), 0);
    assert_int_equal(k.got.len, 5 + sizeof msg + 1);
    cp2p_buf_free(&k.got);
    free(all);
    /* full 65535-byte frames, cut at odd places */
    size_t big = 2 * CP2P_NOISE_MAX_PLAIN + 1000;
    uint8_t *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (uint8_t)(i * 13);
    w.len = 0;
    assert_int_equal(cp2p_noise_set_nonces(a, 0, 0), 0);
    assert_int_equal(V->seal(a, p, big, &w), 0);
    const size_t cuts[] = {1, 2, 65536, 65537, 65538, 100000, 131072, w.len - 1};
    assert_int_equal(cp2p_noise_set_nonces(b, 0, 0), 0);
    k = (sink_t){0};
    assert_int_equal(open_chunks(b, w.data, w.len, cuts, 8, &k), 0);
    assert_int_equal(k.got.len, big);
    assert_memory_equal(k.got.data, p, big);
    assert_int_equal(k.calls, 3);
    cp2p_buf_free(&k.got);
    free(p);
    V->destroy(a);
    V->destroy(b);
    bufs_free(&w, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* A frame input began buffering (the handshake's last read) is finished by
 * open_in_place from the front of its bytes. */
static void test_in_place_after_input(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    cp2p_sec_t *a, *b;
    established_pair(&a, &b, &ia, &ib);
    cp2p_buf_t w = {0}, x = {0}, p = {0};
    assert_int_equal(V->seal(a, (const uint8_t *)"hello", 5, &w), 0);
    assert_int_equal(V->seal(a, (const uint8_t *)"world", 5, &w), 0);
    for (size_t first = 1; first < 23; first++) {
        sink_t k = {0};
        assert_int_equal(cp2p_noise_set_nonces(b, 0, 0), 0);
        p.len = 0;
        assert_int_equal(V->input(b, w.data, first, &x, &p), 0);
        assert_int_equal(p.len, 0);
        /* the rest of the first frame, one byte short, then the remainder */
        uint8_t buf[64];
        size_t rest = 23 - first - 1, used = 0;
        memcpy(buf, w.data + first, rest);
        assert_int_equal(V->open_in_place(b, buf, rest, &used, sink, &k), 0);
        assert_int_equal(used, rest);
        assert_int_equal(k.calls, 0);
        memcpy(buf, w.data + 22, w.len - 22);
        assert_int_equal(V->open_in_place(b, buf, w.len - 22, &used, sink, &k), 0);
        assert_int_equal(used, w.len - 22);
        assert_int_equal(k.got.len, 10);
        assert_memory_equal(k.got.data, "helloworld", 10);
        cp2p_buf_free(&k.got);
    }
    V->destroy(a);
    V->destroy(b);
    bufs_free(&w, &x, &p, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* A new established pair in place of *a and *b; w gets a's frames "ok" and
 * "hello" (20 and 23 bytes). */
static void fresh_pair(cp2p_sec_t **a, cp2p_sec_t **b, const ident_t *ia, const ident_t *ib,
                       cp2p_buf_t *w)
{
    V->destroy(*a);
    V->destroy(*b);
    established_pair(a, b, ia, ib);
    w->len = 0;
    assert_int_equal(V->seal(*a, (const uint8_t *)"ok", 2, w), 0);
    assert_int_equal(V->seal(*a, (const uint8_t *)"hello", 5, w), 0);
    assert_int_equal(w->len, 20 + 23);
}

static void test_in_place_rejects(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    cp2p_sec_t *a = NULL, *b = NULL;
    cp2p_buf_t w = {0};
    uint8_t buf[128];
    size_t used;
    sink_t k = {0};
    /* not before the handshake; and TLS cannot */
    assert_int_equal(V->create(&a, 1, ia.key, NULL), 0);
    assert_int_equal(V->open_in_place(a, buf, 0, &used, sink, &k), CP2P_ESTATE);
    assert_null(cp2p_tls_vtable.open_in_place);
    /* a tampered second frame: the first is delivered, none of the second */
    for (size_t bit = 8 * (20 + 2); bit < 8 * (20 + 23); bit++) {
        fresh_pair(&a, &b, &ia, &ib, &w);
        memcpy(buf, w.data, w.len);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        k.calls = k.got.len = 0;
        assert_int_equal(V->open_in_place(b, buf, w.len, &used, sink, &k), CP2P_EPROTO);
        assert_int_equal(k.calls, 1);
        assert_int_equal(k.got.len, 2);
        /* sticky, even for good bytes */
        memcpy(buf, w.data, w.len);
        assert_int_equal(V->open_in_place(b, buf, w.len, &used, sink, &k), CP2P_EPROTO);
        assert_int_equal(used, 0);
        assert_int_equal(k.calls, 1);
    }
    /* frames too short for a tag */
    for (int len = 0; len < 16; len++) {
        fresh_pair(&a, &b, &ia, &ib, &w);
        memset(buf, 0, sizeof buf);
        buf[1] = (uint8_t)len;
        assert_int_equal(V->open_in_place(b, buf, 2 + len, &used, sink, &k), CP2P_EPROTO);
    }
    /* the longest length: waited for while partial, refused once whole */
    fresh_pair(&a, &b, &ia, &ib, &w);
    uint8_t *big = calloc(1, 2 + CP2P_NOISE_MAX_MSG);
    big[0] = big[1] = 0xff;
    k.calls = 0;
    assert_int_equal(V->open_in_place(b, big, 1 + CP2P_NOISE_MAX_MSG, &used, sink, &k), 0);
    assert_int_equal(used, 0);
    assert_int_equal(V->open_in_place(b, big, 2 + CP2P_NOISE_MAX_MSG, &used, sink, &k),
                     CP2P_EPROTO);
    assert_int_equal(k.calls, 0);
    free(big);
    /* a failing deliver stops at its frame, which counts as used; sticky */
    fresh_pair(&a, &b, &ia, &ib, &w);
    assert_int_equal(V->seal(a, (const uint8_t *)"more", 4, &w), 0);
    memcpy(buf, w.data, w.len);
    sink_t f = {.fail_at = 2};
    assert_int_equal(V->open_in_place(b, buf, w.len, &used, sink, &f), CP2P_ENOMEM);
    assert_int_equal(used, 20 + 23);
    assert_int_equal(f.calls, 2);
    assert_int_equal(V->open_in_place(b, buf + 43, w.len - 43, &used, sink, &f), CP2P_ENOMEM);
    assert_int_equal(f.calls, 2);
    cp2p_buf_free(&f.got);
    cp2p_buf_free(&k.got);
    V->destroy(a);
    V->destroy(b);
    bufs_free(&w, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* Frames of at most 65535 bytes, all full but the last. */
static void check_wire(const cp2p_buf_t *w, size_t n)
{
    size_t frames = 0;
    for (size_t off = 0; off < w->len; frames++) {
        assert_true(off + 2 <= w->len);
        size_t len = (size_t)w->data[off] << 8 | w->data[off + 1];
        assert_true(off + 2 + len == w->len || len == CP2P_NOISE_MAX_MSG);
        off += 2 + len;
    }
    assert_int_equal(frames, (n + CP2P_NOISE_MAX_PLAIN - 1) / CP2P_NOISE_MAX_PLAIN);
    assert_int_equal(w->len, n + frames * 18);
}

static void test_mib_round_trip(void **state)
{
    const size_t chunks[] = {1, 7, 65537, (1 << 20) + 100};
    sec_mib_round_trip(V, 1, chunks, sizeof chunks / sizeof chunks[0], 0, check_wire);
}

/* Handshake bytes split into small reads, and transport data in the same read as message 3. */
static void test_handshake_chunked(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_SECP256K1);
    cp2p_sec_t *a, *b;
    sec_pair(V, &a, &b, &ia, &ib, &ib.id);
    cp2p_buf_t w1 = {0}, w2 = {0}, w3 = {0}, p = {0};
    assert_int_equal(V->start(a, &w1), 0);
    assert_int_equal(V->input(b, NULL, 0, &w2, &p), 0); /* an empty read does nothing */
    for (size_t k = 0; k < w1.len; k++) {
        assert_int_equal(w2.len, 0);
        assert_int_equal(V->input(b, w1.data + k, 1, &w2, &p), 0);
    }
    assert_true(w2.len > 2);
    for (size_t k = 0; k < w2.len; k += 3) {
        assert_false(cp2p_sec_established(a));
        assert_int_equal(V->input(a, w2.data + k, w2.len - k < 3 ? w2.len - k : 3, &w3, &p), 0);
    }
    assert_true(cp2p_sec_established(a));
    assert_int_equal(V->seal(a, (const uint8_t *)"early", 5, &w3), 0);
    w2.len = 0;
    assert_int_equal(V->input(b, w3.data, w3.len, &w2, &p), 0);
    assert_int_equal(w2.len, 0);
    assert_true(cp2p_sec_established(b));
    assert_true(cp2p_peer_id_equal(cp2p_sec_remote_peer(b), &ia.id));
    assert_int_equal(p.len, 5);
    assert_memory_equal(p.data, "early", 5);
    /* a second message 1 after the handshake is just a frame that fails to authenticate */
    assert_int_equal(V->input(b, w1.data, w1.len, &w2, &p), CP2P_EPROTO);
    V->destroy(a);
    V->destroy(b);
    bufs_free(&w1, &w2, &w3, &p, NULL);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

/* ---- a raw XX peer sending hand-made payloads to a session ---- */

static int framed_write(cp2p_noise_xx_t *x, const uint8_t *pl, size_t n, cp2p_buf_t *out)
{
    out->len = 0;
    assert_int_equal(cp2p_buf_append(out, "\0\0", 2), 0);
    int rc = cp2p_noise_xx_write(x, pl, n, out);
    out->data[0] = (uint8_t)((out->len - 2) >> 8);
    out->data[1] = (uint8_t)(out->len - 2);
    return rc;
}

static void build_payload(const uint8_t *key, size_t klen, const uint8_t *sig, size_t slen,
                          cp2p_buf_t *out)
{
    Noise__NoiseHandshakePayload pl = NOISE__NOISE_HANDSHAKE_PAYLOAD__INIT;
    pl.has_identity_key = key != NULL;
    pl.identity_key.data = (uint8_t *)key;
    pl.identity_key.len = klen;
    pl.has_identity_sig = sig != NULL;
    pl.identity_sig.data = (uint8_t *)sig;
    pl.identity_sig.len = slen;
    out->len = 0;
    assert_int_equal(cp2p_buf_reserve(out, noise__noise_handshake_payload__get_packed_size(&pl)), 0);
    out->len = noise__noise_handshake_payload__pack(&pl, out->data);
}

enum { BAD_GARBAGE, BAD_EMPTY, BAD_NO_SIG, BAD_SIG, BAD_KEY_TYPE, BAD_MSG1_DATA, GOOD };

/* A raw initiator against a responder session; returns what the session says to message 3. */
static int raw_initiator(const ident_t *ib, const ident_t *ia, int how)
{
    cp2p_sec_t *b;
    cp2p_noise_xx_t *x;
    cp2p_buf_t w = {0}, o = {0}, p = {0}, pl = {0}, sig = {0}, key = {0};
    assert_int_equal(V->create(&b, 0, ib->key, NULL), 0);
    assert_int_equal(cp2p_noise_xx_new(&x, 1, NULL, 0, NULL, NULL), 0);
    int rc = framed_write(x, (const uint8_t *)"hi", how == BAD_MSG1_DATA ? 2 : 0, &w);
    assert_int_equal(rc, 0);
    rc = V->input(b, w.data, w.len, &o, &p);
    if (how == BAD_MSG1_DATA)
        goto out;
    assert_int_equal(rc, 0);
    assert_true(o.len > 2);
    assert_int_equal(cp2p_noise_xx_read(x, o.data + 2, o.len - 2, &pl), 0);

    /* The responder's payload, checked independently of the session code. */
    Noise__NoiseHandshakePayload *got = noise__noise_handshake_payload__unpack(NULL, pl.len, pl.data);
    assert_non_null(got);
    assert_true(got->has_identity_key && got->has_identity_sig);
    assert_null(got->extensions);
    cp2p_pubkey_t *rk;
    assert_int_equal(cp2p_pubkey_unmarshal(got->identity_key.data, got->identity_key.len, &rk), 0);
    assert_true(cp2p_pubkey_equal(rk, cp2p_privkey_public(ib->key)));
    uint8_t tbs[24 + 32];
    memcpy(tbs, "noise-libp2p-static-key:", 24);
    memcpy(tbs + 24, cp2p_noise_xx_remote_static(x), 32);
    assert_int_equal(cp2p_pubkey_verify(rk, tbs, sizeof tbs, got->identity_sig.data,
                                        got->identity_sig.len),
                     0);
    cp2p_pubkey_free(rk);
    noise__noise_handshake_payload__free_unpacked(got, NULL);

    memcpy(tbs + 24, cp2p_noise_xx_local_static(x), 32);
    if (how == BAD_SIG)
        tbs[30] ^= 1;
    assert_int_equal(cp2p_privkey_sign(ia->key, tbs, sizeof tbs, &sig), 0);
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(ia->key), &key), 0);
    if (how == BAD_KEY_TYPE)
        key.data[1] = 9; /* PublicKey.Type, field 1: a type the spec does not define */
    switch (how) {
    case BAD_GARBAGE:
        build_payload(key.data, key.len, sig.data, sig.len, &pl);
        pl.data[0] = 0xff; /* field 31, wire type 7: invalid */
        break;
    case BAD_EMPTY:
        pl.len = 0;
        break;
    case BAD_NO_SIG:
        build_payload(key.data, key.len, NULL, 0, &pl);
        break;
    default:
        build_payload(key.data, key.len, sig.data, sig.len, &pl);
    }
    assert_int_equal(framed_write(x, pl.data, pl.len, &w), 0);
    o.len = 0;
    rc = V->input(b, w.data, w.len, &o, &p);
    assert_int_equal(o.len, 0);
    assert_int_equal(cp2p_sec_established(b), rc == 0);
    if (rc == 0)
        assert_true(cp2p_peer_id_equal(cp2p_sec_remote_peer(b), &ia->id));
out:
    V->destroy(b);
    cp2p_noise_xx_free(x);
    bufs_free(&w, &o, &p, &pl, &sig, &key, NULL);
    return rc;
}

static void test_bad_payloads(void **state)
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    assert_int_equal(raw_initiator(&ib, &ia, GOOD), 0);
    assert_int_equal(raw_initiator(&ib, &ia, BAD_GARBAGE), CP2P_EPARSE);
    assert_int_equal(raw_initiator(&ib, &ia, BAD_EMPTY), CP2P_EPROTO);
    assert_int_equal(raw_initiator(&ib, &ia, BAD_NO_SIG), CP2P_EPROTO);
    assert_int_equal(raw_initiator(&ib, &ia, BAD_SIG), CP2P_ESIG);
    assert_int_equal(raw_initiator(&ib, &ia, BAD_KEY_TYPE), CP2P_EUNSUPPORTED);
    assert_int_equal(raw_initiator(&ib, &ia, BAD_MSG1_DATA), CP2P_EPROTO);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cacophony_vector),
        cmocka_unit_test(test_raw_rejects),
        cmocka_unit_test(test_handshake_ed25519),
        cmocka_unit_test(test_handshake_mixed),
        cmocka_unit_test(test_expected_peer),
        cmocka_unit_test(test_handshake_tamper),
        cmocka_unit_test(test_transport_tamper),
        cmocka_unit_test(test_nonce_exhaustion),
        cmocka_unit_test(test_mib_round_trip),
        cmocka_unit_test(test_handshake_chunked),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_static_per_identity),
        cmocka_unit_test(test_in_place_splits),
        cmocka_unit_test(test_in_place_after_input),
        cmocka_unit_test(test_in_place_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
