/* Fuzz target: multibase decoding; what decodes must re-encode and decode to the
 * same bytes, and the input bytes must survive every base. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/multibase.h"

static const cp2p_base_t BASES[] = {CP2P_BASE16, CP2P_BASE32, CP2P_BASE32UPPER,
                                    CP2P_BASE36, CP2P_BASE58BTC, CP2P_BASE64,
                                    CP2P_BASE64URL, CP2P_BASE64URLPAD};

static void roundtrip(cp2p_base_t base, const uint8_t *p, size_t n)
{
    cp2p_buf_t t = {0}, d = {0};
    if (cp2p_multibase_encode(base, p, n, &t) != 0)
        abort();
    if (strlen((const char *)t.data) != t.len)
        abort();
    cp2p_base_t got;
    if (cp2p_multibase_decode((const char *)t.data, t.len, &got, &d) != 0 || got != base)
        abort();
    if (d.len != n || (n && memcmp(d.data, p, n) != 0))
        abort();
    cp2p_buf_free(&t);
    cp2p_buf_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_buf_t b = {0};
    cp2p_base_t base;
    if (cp2p_multibase_decode((const char *)data, size, &base, &b) == 0)
        roundtrip(base, b.data, b.len);
    cp2p_buf_free(&b);
    if (size <= 512)
        for (size_t i = 0; i < sizeof BASES / sizeof BASES[0]; i++)
            roundtrip(BASES[i], data, size);
    return 0;
}
