/* Fuzz target: IPNS record verification (ipfs/specs ipns-record.md) and its
 * DAG-CBOR data decoder; the first input byte picks which one is fed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kad/ipns.h"
#include "kad/kad_validate.h"

/* The name of an Ed25519 peer: an identity multihash of its protobuf key. */
static const uint8_t NAME[] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20, 1,  2,  3,  4,  5,  6,
                               7,    8,    9,    10,   11,   12,   13, 14, 15, 16, 17, 18,
                               19,   20,   21,   22,   23,   24,   25, 26, 27, 28, 29, 30,
                               31,   32};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    cp2p_ipns_data_t d;
    if (data[0] & 1) {
        if (cp2p_ipns_data_decode(data + 1, size - 1, &d) == 0) {
            /* Whatever decodes points inside the input. */
            if (d.value < data + 1 || d.value + d.value_len > data + size ||
                d.validity < data + 1 || d.validity + d.validity_len > data + size)
                abort();
        }
        return 0;
    }
    /* A whole record under a fixed name, at a fixed time. */
    if (cp2p_ipns_validate(NAME, sizeof NAME, data + 1, size - 1, 1700000000, &d) == 0 &&
        (d.value || d.validity))
        abort();
    uint8_t key[6 + sizeof NAME];
    memcpy(key, "/ipns/", 6);
    memcpy(key + 6, NAME, sizeof NAME);
    const uint8_t *vals[1] = {data + 1};
    size_t lens[1] = {size - 1};
    (void)cp2p_kad_select_at(key, sizeof key, vals, lens, 1, 1700000000);
    return 0;
}
