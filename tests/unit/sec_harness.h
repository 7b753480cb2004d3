/* Helpers a given test program does not use are fine. */
#pragma GCC diagnostic ignored "-Wunused-function"
/* Shared by test_noise.c, test_tls.c and test_plaintext.c (included once by
 * each): identities, an in-memory handshake between two sessions of one
 * security vtable, chunked input and the 1 MiB round trip. Every helper takes
 * the vtable it drives. Include after cmocka.h. */
#ifndef CP2P_TEST_SEC_HARNESS_H
#define CP2P_TEST_SEC_HARNESS_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/buf.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "security/security.h"

typedef struct {
    cp2p_privkey_t *key;
    cp2p_peer_id_t id;
} ident_t;

static void ident(ident_t *t, cp2p_key_type_t type)
{
    assert_int_equal(cp2p_privkey_generate(type, 0, &t->key), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(t->key), &t->id), 0);
}

/* Hex text to bytes; returns the byte count. */
static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* Frees each buffer of a NULL-terminated list. */
static void bufs_free(cp2p_buf_t *b, ...)
{
    va_list ap;
    va_start(ap, b);
    for (; b; b = va_arg(ap, cp2p_buf_t *))
        cp2p_buf_free(b);
    va_end(ap);
}

/* An initiator a (expecting expect_b, may be NULL) and a responder b. */
static void sec_pair(const cp2p_sec_vtable_t *v, cp2p_sec_t **a, cp2p_sec_t **b,
                     const ident_t *ia, const ident_t *ib, const cp2p_peer_id_t *expect_b)
{
    assert_int_equal(v->create(a, 1, ia->key, expect_b), 0);
    assert_int_equal(v->create(b, 0, ib->key, NULL), 0);
}

/* Moves bytes between a (initiator) and b until both are quiet; the first
 * error wins. quiet_responder: b must not speak first. */
static int sec_run(const cp2p_sec_vtable_t *v, cp2p_sec_t *a, cp2p_sec_t *b, int quiet_responder,
                   int *a_rc, int *b_rc)
{
    cp2p_buf_t to_b = {0}, to_a = {0}, plain = {0};
    *a_rc = v->start(a, &to_b);
    *b_rc = v->start(b, &to_a);
    if (quiet_responder)
        assert_int_equal(to_a.len, 0);
    for (int round = 0; round < 10 && !*a_rc && !*b_rc && (to_a.len || to_b.len); round++) {
        cp2p_buf_t in = to_b;
        memset(&to_b, 0, sizeof to_b);
        if (in.len)
            *b_rc = v->input(b, in.data, in.len, &to_a, &plain);
        cp2p_buf_free(&in);
        in = to_a;
        memset(&to_a, 0, sizeof to_a);
        if (in.len)
            *a_rc = v->input(a, in.data, in.len, &to_b, &plain);
        cp2p_buf_free(&in);
    }
    assert_int_equal(plain.len, 0);
    bufs_free(&to_a, &to_b, &plain, NULL);
    return *a_rc ? *a_rc : *b_rc;
}

/* a dials b expecting ib's id; both are established on return. */
static void sec_established_pair(const cp2p_sec_vtable_t *v, int quiet_responder, cp2p_sec_t **a,
                                 cp2p_sec_t **b, const ident_t *ia, const ident_t *ib)
{
    int ra, rb;
    sec_pair(v, a, b, ia, ib, &ib->id);
    assert_int_equal(sec_run(v, *a, *b, quiet_responder, &ra, &rb), 0);
    assert_true(cp2p_sec_established(*a) && cp2p_sec_established(*b));
}

/* Each side knows the other's peer id and key. */
static void sec_check_remotes(cp2p_sec_t *a, cp2p_sec_t *b, const ident_t *ia, const ident_t *ib)
{
    assert_true(cp2p_peer_id_equal(cp2p_sec_remote_peer(a), &ib->id));
    assert_true(cp2p_peer_id_equal(cp2p_sec_remote_peer(b), &ia->id));
    assert_true(cp2p_pubkey_equal(cp2p_sec_remote_key(a), cp2p_privkey_public(ib->key)));
    assert_true(cp2p_pubkey_equal(cp2p_sec_remote_key(b), cp2p_privkey_public(ia->key)));
}

/* "ping" from a to b, an empty seal that sends nothing, "pong" from b to a. */
static void sec_ping_pong(const cp2p_sec_vtable_t *v, cp2p_sec_t *a, cp2p_sec_t *b)
{
    cp2p_buf_t w = {0}, x = {0}, plain = {0};
    assert_int_equal(v->seal(a, (const uint8_t *)"ping", 4, &w), 0);
    assert_int_equal(v->seal(b, (const uint8_t *)"", 0, &x), 0); /* nothing to send */
    assert_int_equal(x.len, 0);
    assert_int_equal(v->input(b, w.data, w.len, &x, &plain), 0);
    assert_int_equal(x.len, 0);
    assert_int_equal(plain.len, 4);
    assert_memory_equal(plain.data, "ping", 4);
    w.len = plain.len = 0;
    assert_int_equal(v->seal(b, (const uint8_t *)"pong", 4, &w), 0);
    assert_int_equal(v->input(a, w.data, w.len, &x, &plain), 0);
    assert_int_equal(plain.len, 4);
    assert_memory_equal(plain.data, "pong", 4);
    bufs_free(&w, &x, &plain, NULL);
}

/* Feeds w to a session in reads of chunk bytes; nothing may come back. */
static void feed_chunks(const cp2p_sec_vtable_t *v, cp2p_sec_t *to, const cp2p_buf_t *w,
                        size_t chunk, cp2p_buf_t *plain)
{
    cp2p_buf_t x = {0};
    for (size_t off = 0; off < w->len; off += chunk) {
        size_t k = w->len - off < chunk ? w->len - off : chunk;
        assert_int_equal(v->input(to, w->data + off, k, &x, plain), 0);
    }
    assert_int_equal(x.len, 0);
    cp2p_buf_free(&x);
}

/* 1 MiB sealed by one side (in seal_piece pieces, 0: at once), checked by
 * check_wire (may be NULL) and fed to the other in reads of each chunk
 * size; both directions, between two established sessions. */
static void sec_mib_round_trip(const cp2p_sec_vtable_t *v, int quiet_responder,
                               const size_t *chunks, size_t nchunks, size_t seal_piece,
                               void (*check_wire)(const cp2p_buf_t *w, size_t n))
{
    ident_t ia, ib;
    ident(&ia, CP2P_KEY_ED25519);
    ident(&ib, CP2P_KEY_ED25519);
    cp2p_sec_t *a, *b;
    sec_established_pair(v, quiet_responder, &a, &b, &ia, &ib);
    const size_t N = 1 << 20;
    uint8_t *data = malloc(N);
    assert_non_null(data);
    for (size_t k = 0; k < N; k++)
        data[k] = (uint8_t)(k * 131 + (k >> 9));
    size_t piece = seal_piece ? seal_piece : N;
    for (size_t c = 0; c < nchunks; c++) {
        for (int dir = 0; dir < 2; dir++) {
            cp2p_sec_t *tx = dir ? b : a, *rx = dir ? a : b;
            cp2p_buf_t w = {0}, plain = {0};
            for (size_t off = 0; off < N; off += piece)
                assert_int_equal(v->seal(tx, data + off, N - off < piece ? N - off : piece, &w),
                                 0);
            if (check_wire)
                check_wire(&w, N);
            feed_chunks(v, rx, &w, chunks[c], &plain);
            assert_int_equal(plain.len, N);
            assert_memory_equal(plain.data, data, N);
            bufs_free(&w, &plain, NULL);
        }
    }
    free(data);
    v->destroy(a);
    v->destroy(b);
    cp2p_privkey_free(ia.key);
    cp2p_privkey_free(ib.key);
}

#endif
