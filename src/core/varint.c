/* Unsigned varint, multiformats/unsigned-varint spec (minimal, at most 9 bytes). */
#include "cp2p/varint.h"
#include "cp2p/error.h"

size_t cp2p_uvarint_encode(uint64_t v, uint8_t *out)
{
    size_t i = 0;
    while (v >= 0x80) {
        out[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[i++] = (uint8_t)v;
    return i;
}

size_t cp2p_uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int cp2p_uvarint_decode(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < CP2P_UVARINT_MAX; i++) {
        if (i >= n)
            return CP2P_ETRUNC;
        uint8_t c = p[i];
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            /* A last byte of zero (after the first) means a shorter form existed. */
            if (c == 0 && i > 0)
                return CP2P_EPARSE;
            *v = x;
            return (int)(i + 1);
        }
    }
    return CP2P_EOVERFLOW;
}
