/* Private networks (libp2p specs pnet/Private-Networks-PSK-V1.md): the PSK v1
 * key file, and the XSalsa20 stream (libsodium's) at any byte offset. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "transport/pnet.h"

#define BLOCK 64 /* XSalsa20's keystream block */

void cp2p_pnet_stream_init(cp2p_pnet_stream_t *s)
{
    if (sodium_init() < 0) /* idempotent; randombytes wants it */
        cp2p_log_error("pnet", "libsodium did not start");
    randombytes_buf(s->nonce, sizeof s->nonce);
    s->off = 0;
}

void cp2p_pnet_xor(cp2p_pnet_stream_t *s, const uint8_t key[CP2P_PNET_KEY_SIZE], uint8_t *p, size_t n)
{
    size_t skip = (size_t)(s->off % BLOCK);
    if (skip && n) { /* finish the block the last call began */
        uint8_t blk[BLOCK] = {0};
        crypto_stream_xsalsa20_xor_ic(blk, blk, BLOCK, s->nonce, s->off / BLOCK, key);
        size_t k = BLOCK - skip < n ? BLOCK - skip : n;
        for (size_t i = 0; i < k; i++)
            p[i] ^= blk[skip + i];
        sodium_memzero(blk, sizeof blk);
        p += k;
        n -= k;
        s->off += k;
    }
    if (n) /* now at a block boundary: libsodium takes any length from there */
        crypto_stream_xsalsa20_xor_ic(p, p, n, s->nonce, s->off / BLOCK, key);
    s->off += n;
}

/* The next line of [*p, end) without its LF or CRLF; NULL if no LF. */
static const uint8_t *line(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *s = *p, *lf = memchr(s, '\n', (size_t)(end - s));
    if (!lf)
        return NULL;
    *len = (size_t)(lf - s);
    if (*len && s[*len - 1] == '\r')
        (*len)--;
    *p = lf + 1;
    return s;
}

static int is(const uint8_t *s, size_t n, const char *want)
{
    return n == strlen(want) && !memcmp(s, want, n);
}

int cp2p_pnet_key_parse(const uint8_t *text, size_t len, uint8_t key[CP2P_PNET_KEY_SIZE])
{
    if (!text || !key)
        return CP2P_EINVAL;
    const uint8_t *p = text, *end = text + len, *l;
    size_t n;
    if (!(l = line(&p, end, &n)) || !is(l, n, "/key/swarm/psk/1.0.0/") || !(l = line(&p, end, &n)))
        return CP2P_EPARSE;
    size_t left = (size_t)(end - p), got = 0;
    if (is(l, n, "/bin/")) {
        if (left < CP2P_PNET_KEY_SIZE)
            return CP2P_EPARSE;
        memcpy(key, p, CP2P_PNET_KEY_SIZE);
        return 0;
    }
    if (is(l, n, "/base16/")) {
        /* Exactly 64 hex digits; what follows is not read (go-libp2p's rule). */
        if (left < 2 * CP2P_PNET_KEY_SIZE ||
            sodium_hex2bin(key, CP2P_PNET_KEY_SIZE, (const char *)p, 2 * CP2P_PNET_KEY_SIZE, NULL,
                           &got, NULL) ||
            got != CP2P_PNET_KEY_SIZE)
            return CP2P_EPARSE;
        return 0;
    }
    if (is(l, n, "/base64/")) {
        /* 44 characters of standard base64 (line breaks skipped, as go's
         * decoder does), the last one padding. */
        char b64[44];
        size_t k = 0;
        for (; p < end && k < sizeof b64; p++)
            if (*p != '\r' && *p != '\n')
                b64[k++] = (char)*p;
        if (k != sizeof b64 ||
            sodium_base642bin(key, CP2P_PNET_KEY_SIZE, b64, sizeof b64, NULL, &got, NULL,
                              sodium_base64_VARIANT_ORIGINAL) ||
            got != CP2P_PNET_KEY_SIZE)
            return CP2P_EPARSE;
        return 0;
    }
    return CP2P_EPARSE;
}

int cp2p_pnet_key_load(const char *path, uint8_t key[CP2P_PNET_KEY_SIZE])
{
    if (!path || !key)
        return CP2P_EINVAL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return CP2P_EIO;
    uint8_t buf[CP2P_PNET_KEY_FILE_MAX + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return CP2P_EIO;
    if (n > CP2P_PNET_KEY_FILE_MAX)
        return CP2P_EOVERFLOW;
    int rc = cp2p_pnet_key_parse(buf, n, key);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

int cp2p_pnet_key_generate(cp2p_buf_t *out)
{
    uint8_t k[CP2P_PNET_KEY_SIZE];
    char hex[2 * CP2P_PNET_KEY_SIZE + 1];
    if (sodium_init() < 0)
        return CP2P_ECRYPTO;
    randombytes_buf(k, sizeof k);
    sodium_bin2hex(hex, sizeof hex, k, sizeof k);
    sodium_memzero(k, sizeof k);
    int rc = cp2p_buf_append(out, "/key/swarm/psk/1.0.0/\n/base16/\n", 31);
    if (!rc)
        rc = cp2p_buf_append(out, hex, 2 * CP2P_PNET_KEY_SIZE);
    if (!rc)
        rc = cp2p_buf_append(out, "\n", 1);
    sodium_memzero(hex, sizeof hex);
    return rc;
}
