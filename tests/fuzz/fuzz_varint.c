/* Fuzz target: unsigned varint decoding; a decoded value must re-encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t v;
    int n = cp2p_uvarint_decode(data, size, &v);
    if (n > 0) {
        uint8_t out[CP2P_UVARINT_MAX];
        size_t m = cp2p_uvarint_encode(v, out);
        if (m != (size_t)n || memcmp(out, data, m) != 0)
            abort();
    }
    return 0;
}
