/* Fuzz target: the /noise session fed hostile bytes. The first byte picks what
 * the rest is: raw wire bytes to a responder or initiator, the decrypted payload
 * of message 3, or application data to round-trip before trailing garbage,
 * through input or through open_in_place. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/buf.h"
#include "cp2p/keys.h"
#include "security/noise.h"

static const cp2p_sec_vtable_t *V = &cp2p_noise_vtable;
static cp2p_privkey_t *id_a, *id_b;

/* Feeds n bytes in chunks whose sizes cycle through a few odd values. */
static int feed(cp2p_sec_t *s, const uint8_t *p, size_t n, unsigned seed, cp2p_buf_t *w,
                cp2p_buf_t *plain)
{
    static const size_t sizes[] = {1, 2, 3, 7, 64, 1000, 65537};
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; seed++) {
        size_t k = sizes[seed % 7];
        if (k > n - off)
            k = n - off;
        rc = V->input(s, p + off, k, w, plain);
        off += k;
    }
    return rc;
}

static int append(void *arg, const uint8_t *p, size_t n)
{
    if (n == 0)
        abort(); /* plaintext is never empty */
    return cp2p_buf_append(arg, p, n);
}

/* As conn.c does with open_in_place: chunks land after the kept partial
 * frame, which then moves to the front. */
static int feed_in_place(cp2p_sec_t *s, const uint8_t *p, size_t n, unsigned seed,
                         cp2p_buf_t *plain)
{
    static const size_t sizes[] = {1, 2, 3, 7, 64, 1000, 65537};
    uint8_t *buf = malloc(n + 1);
    size_t tail = 0;
    int rc = 0;
    if (!buf)
        abort();
    for (size_t off = 0; off < n && rc == 0; seed++) {
        size_t k = sizes[seed % 7], used = 0;
        if (k > n - off)
            k = n - off;
        memcpy(buf + tail, p + off, k);
        off += k;
        rc = V->open_in_place(s, buf, tail + k, &used, append, plain);
        if (used > tail + k)
            abort();
        memmove(buf, buf + used, tail + k - used);
        tail += k - used;
        /* what stays is one partial frame */
        if (!rc && tail >= 2 && tail >= 2 + ((size_t)buf[0] << 8 | buf[1]))
            abort();
    }
    free(buf);
    return rc;
}

static void run_pair(cp2p_sec_t *a, cp2p_sec_t *b)
{
    cp2p_buf_t w = {0}, w2 = {0}, p = {0};
    if (V->start(a, &w) || V->input(b, w.data, w.len, &w2, &p))
        abort();
    w.len = 0;
    if (V->input(a, w2.data, w2.len, &w, &p) || V->input(b, w.data, w.len, &w2, &p) ||
        !cp2p_sec_established(a) || !cp2p_sec_established(b))
        abort();
    cp2p_buf_free(&w);
    cp2p_buf_free(&w2);
    cp2p_buf_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!id_a && (cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &id_a) ||
                  cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &id_b)))
        abort();
    if (size < 2)
        return 0;
    unsigned mode = data[0] % 5, seed = data[1];
    data += 2;
    size -= 2;
    cp2p_sec_t *a = NULL, *b = NULL;
    cp2p_noise_xx_t *x = NULL;
    cp2p_buf_t w = {0}, w2 = {0}, plain = {0};
    if (V->create(&a, 1, id_a, NULL) || V->create(&b, 0, id_b, NULL))
        abort();
    switch (mode) {
    case 0: /* wire bytes to a responder */
        feed(b, data, size, seed, &w, &plain);
        break;
    case 1: /* wire bytes to an initiator that sent message 1 */
        if (V->start(a, &w))
            abort();
        feed(a, data, size, seed, &w, &plain);
        break;
    case 2: { /* a raw initiator sends our bytes as its message 3 payload */
        if (size > CP2P_NOISE_MAX_MSG - 64)
            size = CP2P_NOISE_MAX_MSG - 64;
        cp2p_buf_t pl = {0};
        if (cp2p_noise_xx_new(&x, 1, NULL, 0, NULL, NULL) || cp2p_buf_append(&w, "\0\0", 2) ||
            cp2p_noise_xx_write(x, NULL, 0, &w))
            abort();
        w.data[1] = (uint8_t)(w.len - 2);
        if (V->input(b, w.data, w.len, &w2, &plain) ||
            cp2p_noise_xx_read(x, w2.data + 2, w2.len - 2, &pl))
            abort();
        w.len = 0;
        if (cp2p_buf_append(&w, "\0\0", 2) || cp2p_noise_xx_write(x, data, size, &w))
            abort();
        w.data[0] = (uint8_t)((w.len - 2) >> 8);
        w.data[1] = (uint8_t)(w.len - 2);
        if (V->input(b, w.data, w.len, &w2, &plain) == 0 && !cp2p_sec_established(b))
            abort();
        cp2p_buf_free(&pl);
        break;
    }
    case 3: { /* application data must round-trip; garbage after it must not crash */
        run_pair(a, b);
        size_t half = size / 2;
        if (V->seal(a, data, half, &w))
            abort();
        if (feed(b, w.data, w.len, seed, &w2, &plain) || plain.len != half ||
            (half && memcmp(plain.data, data, half)))
            abort();
        feed(b, data + half, size - half, seed, &w2, &plain);
        break;
    }
    case 4: { /* the same through open_in_place */
        run_pair(a, b);
        size_t half = size / 2;
        if (V->seal(a, data, half, &w))
            abort();
        if (feed_in_place(b, w.data, w.len, seed, &plain) || plain.len != half ||
            (half && memcmp(plain.data, data, half)))
            abort();
        feed_in_place(b, data + half, size - half, seed, &plain);
        break;
    }
    }
    cp2p_noise_xx_free(x);
    V->destroy(a);
    V->destroy(b);
    cp2p_buf_free(&w);
    cp2p_buf_free(&w2);
    cp2p_buf_free(&plain);
    return 0;
}
