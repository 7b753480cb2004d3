/* Multibase (multiformats/multibase spec) with the RFC 4648 base16/32/64 codings
 * and the base58btc / base36 big-number codings. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/multibase.h"

static const char B32_LOWER[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char B32_UPPER[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char B58_BTC[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char B36_LOWER[] = "0123456789abcdefghijklmnopqrstuvwxyz";
static const char HEX_LOWER[] = "0123456789abcdef";

/* Value of c in alph, or -1. The multibase tests require base16/32/36 to be
 * read case-insensitively, so those callers fold case first. */
static int digit(const char *alph, int radix, char c)
{
    const char *q = memchr(alph, c, (size_t)radix);
    return q ? (int)(q - alph) : -1;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int finish_text(cp2p_buf_t *out)
{
    int rc = cp2p_buf_reserve(out, 1);
    if (rc)
        return rc;
    out->data[out->len] = 0;
    return 0;
}

/* RFC 4648 bit packing for 5- or 6-bit alphabets. */
static int rfc4648_encode(const char *alph, unsigned bits, bool pad, const uint8_t *p, size_t n,
                          cp2p_buf_t *out)
{
    size_t nchars = (n * 8 + bits - 1) / bits;
    size_t block = bits == 5 ? 8 : 4;
    size_t total = pad ? (nchars + block - 1) / block * block : nchars;
    int rc = cp2p_buf_reserve(out, total + 1);
    if (rc)
        return rc;
    char *o = (char *)out->data + out->len;
    uint32_t acc = 0;
    unsigned have = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        have += 8;
        while (have >= bits) {
            have -= bits;
            o[k++] = alph[(acc >> have) & ((1u << bits) - 1)];
        }
    }
    if (have)
        o[k++] = alph[(acc << (bits - have)) & ((1u << bits) - 1)];
    while (k < total)
        o[k++] = '=';
    out->len += k;
    return finish_text(out);
}

static int rfc4648_decode(const char *alph, unsigned bits, bool pad, bool fold, const char *s,
                          size_t n, cp2p_buf_t *out)
{
    size_t block = bits == 5 ? 8 : 4;
    size_t data = n;
    if (pad) {
        if (n % block)
            return CP2P_EPARSE;
        while (data > 0 && s[data - 1] == '=')
            data--;
        /* The padding must be exactly what the encoder would have written. */
        size_t rem = data % block;
        if (n - data != (rem ? block - rem : 0))
            return CP2P_EPARSE;
    }
    /* A final character must carry at least one bit of a byte. */
    if ((data * bits) % 8 >= bits)
        return CP2P_EPARSE;
    /* +1 so that data is never NULL, even for empty output */
    int rc = cp2p_buf_reserve(out, data * bits / 8 + 1);
    if (rc)
        return rc;
    uint8_t *o = out->data + out->len;
    size_t k = 0;
    uint32_t acc = 0;
    unsigned have = 0;
    for (size_t i = 0; i < data; i++) {
        int d = digit(alph, 1 << bits, fold ? lower(s[i]) : s[i]);
        if (d < 0)
            return CP2P_EPARSE;
        acc = (acc << bits) | (uint32_t)d;
        have += bits;
        if (have >= 8) {
            have -= 8;
            o[k++] = (uint8_t)(acc >> have);
        }
    }
    /* Non-zero leftover bits would let two strings decode to the same bytes. */
    if (acc & ((1u << have) - 1))
        return CP2P_EPARSE;
    out->len += k;
    return 0;
}

static int base16_encode(const uint8_t *p, size_t n, cp2p_buf_t *out)
{
    if (n > (SIZE_MAX - 1) / 2)
        return CP2P_EOVERFLOW;
    int rc = cp2p_buf_reserve(out, 2 * n + 1);
    if (rc)
        return rc;
    char *o = (char *)out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = HEX_LOWER[p[i] >> 4];
        o[2 * i + 1] = HEX_LOWER[p[i] & 15];
    }
    out->len += 2 * n;
    return finish_text(out);
}

static int base16_decode(const char *s, size_t n, cp2p_buf_t *out)
{
    if (n % 2)
        return CP2P_EPARSE;
    int rc = cp2p_buf_reserve(out, n / 2 + 1);
    if (rc)
        return rc;
    uint8_t *o = out->data + out->len;
    for (size_t i = 0; i < n; i += 2) {
        int hi = digit(HEX_LOWER, 16, lower(s[i]));
        int lo = digit(HEX_LOWER, 16, lower(s[i + 1]));
        if (hi < 0 || lo < 0)
            return CP2P_EPARSE;
        o[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    out->len += n / 2;
    return 0;
}

/* Big-number radix conversion for base58 and base36. Digits are grouped so
 * that one limb holds `group` digits (radix^group < 2^32), which keeps the
 * quadratic cost a few times lower than digit-at-a-time; the input cap bounds it. */
static uint32_t ipow(uint32_t b, unsigned e)
{
    uint32_t r = 1;
    while (e--)
        r *= b;
    return r;
}

static int bignum_encode(const char *alph, uint32_t radix, unsigned group, const uint8_t *p,
                         size_t n, cp2p_buf_t *out)
{
    size_t zeros = 0;
    while (zeros < n && p[zeros] == 0)
        zeros++;
    /* Each radix-digit carries at least log2(36) > 5 bits. */
    size_t maxdigits = (n - zeros) * 8 / 5 + 1;
    size_t nlimbs = maxdigits / group + 2;
    uint32_t *limb = calloc(nlimbs, sizeof(*limb));
    if (!limb)
        return CP2P_ENOMEM;
    const uint64_t big = ipow(radix, group);
    size_t used = 0;
    for (size_t i = zeros; i < n;) {
        unsigned take = (unsigned)((n - i) % 4 ? (n - i) % 4 : 4);
        uint64_t carry = 0;
        for (unsigned j = 0; j < take; j++)
            carry = carry << 8 | p[i + j];
        i += take;
        unsigned shift = 8 * take;
        for (size_t k = 0; k < used; k++) {
            uint64_t t = ((uint64_t)limb[k] << shift) + carry;
            limb[k] = (uint32_t)(t % big);
            carry = t / big;
        }
        while (carry) {
            limb[used++] = (uint32_t)(carry % big);
            carry /= big;
        }
    }
    size_t ndig = used * group;
    int rc = cp2p_buf_reserve(out, zeros + ndig + 1);
    if (rc) {
        free(limb);
        return rc;
    }
    char *o = (char *)out->data + out->len;
    size_t k = 0;
    for (size_t z = 0; z < zeros; z++)
        o[k++] = alph[0];
    bool started = false;
    for (size_t l = used; l-- > 0;) {
        uint32_t v = limb[l];
        char tmp[8];
        for (unsigned j = group; j-- > 0;) {
            tmp[j] = alph[v % radix];
            v /= radix;
        }
        for (unsigned j = 0; j < group; j++) {
            if (!started && tmp[j] == alph[0])
                continue;
            started = true;
            o[k++] = tmp[j];
        }
    }
    free(limb);
    out->len += k;
    return finish_text(out);
}

static int bignum_decode(const char *alph, uint32_t radix, unsigned group, bool fold,
                         const char *s, size_t n, cp2p_buf_t *out)
{
    size_t zeros = 0;
    while (zeros < n && s[zeros] == alph[0])
        zeros++;
    /* Each digit carries less than 6 bits. */
    size_t nlimbs = ((n - zeros) * 6 / 8) / 4 + 2;
    uint32_t *limb = calloc(nlimbs, sizeof(*limb));
    if (!limb)
        return CP2P_ENOMEM;
    size_t used = 0;
    int rc = 0;
    for (size_t i = zeros; i < n;) {
        unsigned take = (unsigned)((n - i) % group ? (n - i) % group : group);
        uint64_t carry = 0;
        for (unsigned j = 0; j < take; j++) {
            int d = digit(alph, (int)radix, fold ? lower(s[i + j]) : s[i + j]);
            if (d < 0) {
                rc = CP2P_EPARSE;
                goto done;
            }
            carry = carry * radix + (uint64_t)d;
        }
        i += take;
        uint64_t mul = ipow(radix, take);
        for (size_t k = 0; k < used; k++) {
            uint64_t t = (uint64_t)limb[k] * mul + carry;
            limb[k] = (uint32_t)t;
            carry = t >> 32;
        }
        if (carry)
            limb[used++] = (uint32_t)carry;
    }
    size_t nbytes = used * 4;
    rc = cp2p_buf_reserve(out, zeros + nbytes + 1);
    if (rc)
        goto done;
    uint8_t *o = out->data + out->len;
    size_t k = 0;
    memset(o, 0, zeros);
    k = zeros;
    bool started = false;
    for (size_t l = used; l-- > 0;) {
        for (int sh = 24; sh >= 0; sh -= 8) {
            uint8_t b = (uint8_t)(limb[l] >> sh);
            if (!started && b == 0)
                continue;
            started = true;
            o[k++] = b;
        }
    }
    out->len += k;
done:
    free(limb);
    return rc;
}

int cp2p_base_encode(cp2p_base_t base, const uint8_t *p, size_t n, cp2p_buf_t *out)
{
    if (n > CP2P_MULTIBASE_MAX)
        return CP2P_EOVERFLOW;
    switch (base) {
    case CP2P_BASE16:
        return base16_encode(p, n, out);
    case CP2P_BASE32:
        return rfc4648_encode(B32_LOWER, 5, false, p, n, out);
    case CP2P_BASE32UPPER:
        return rfc4648_encode(B32_UPPER, 5, false, p, n, out);
    case CP2P_BASE36:
        return bignum_encode(B36_LOWER, 36, 6, p, n, out);
    case CP2P_BASE58BTC:
        return bignum_encode(B58_BTC, 58, 5, p, n, out);
    case CP2P_BASE64:
        return rfc4648_encode(B64_STD, 6, false, p, n, out);
    case CP2P_BASE64URL:
        return rfc4648_encode(B64_URL, 6, false, p, n, out);
    case CP2P_BASE64URLPAD:
        return rfc4648_encode(B64_URL, 6, true, p, n, out);
    }
    return CP2P_EUNSUPPORTED;
}

static int decode(cp2p_base_t base, const char *s, size_t n, cp2p_buf_t *out)
{
    switch (base) {
    case CP2P_BASE16:
        return base16_decode(s, n, out);
    case CP2P_BASE32:
    case CP2P_BASE32UPPER:
        return rfc4648_decode(B32_LOWER, 5, false, true, s, n, out);
    case CP2P_BASE36:
        return bignum_decode(B36_LOWER, 36, 6, true, s, n, out);
    case CP2P_BASE58BTC:
        return bignum_decode(B58_BTC, 58, 5, false, s, n, out);
    case CP2P_BASE64:
        return rfc4648_decode(B64_STD, 6, false, false, s, n, out);
    case CP2P_BASE64URL:
        return rfc4648_decode(B64_URL, 6, false, false, s, n, out);
    case CP2P_BASE64URLPAD:
        return rfc4648_decode(B64_URL, 6, true, false, s, n, out);
    }
    return CP2P_EUNSUPPORTED;
}

int cp2p_base_decode(cp2p_base_t base, const char *s, size_t n, cp2p_buf_t *out)
{
    if (n > CP2P_MULTIBASE_MAX)
        return CP2P_EOVERFLOW;
    size_t before = out->len;
    int rc = decode(base, s, n, out);
    if (rc)
        out->len = before;
    return rc;
}

int cp2p_multibase_encode(cp2p_base_t base, const uint8_t *p, size_t n, cp2p_buf_t *out)
{
    size_t before = out->len;
    int rc = cp2p_buf_append_byte(out, (uint8_t)base);
    if (!rc)
        rc = cp2p_base_encode(base, p, n, out);
    if (rc)
        out->len = before;
    return rc;
}

int cp2p_multibase_decode(const char *s, size_t n, cp2p_base_t *base, cp2p_buf_t *out)
{
    if (n == 0)
        return CP2P_EPARSE;
    cp2p_base_t b;
    switch (s[0]) {
    case CP2P_BASE16:
    case 'F': /* base16upper reads the same once case is folded */
        b = CP2P_BASE16;
        break;
    case CP2P_BASE32:
    case CP2P_BASE32UPPER:
    case CP2P_BASE36:
    case CP2P_BASE58BTC:
    case CP2P_BASE64:
    case CP2P_BASE64URL:
    case CP2P_BASE64URLPAD:
        b = (cp2p_base_t)s[0];
        break;
    case 'K': /* base36upper */
        b = CP2P_BASE36;
        break;
    default:
        return CP2P_EUNSUPPORTED;
    }
    int rc = cp2p_base_decode(b, s + 1, n - 1, out);
    if (!rc && base)
        *base = b;
    return rc;
}
