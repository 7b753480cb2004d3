/* Fuzz target: the Identify message decoder (what a remote writes on
 * /ipfs/id/1.0.0 before EOF); a decoded message must survive re-encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/identify.h"

static int same_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_identify_msg_t m, again;
    if (cp2p_identify_decode(data, size, &m) != 0)
        return 0;
    cp2p_buf_t b = {0};
    if (cp2p_identify_encode(&m, &b) != 0)
        abort();
    /* One merged message may exceed the per-message cap that split ones met. */
    if (b.len <= CP2P_IDENTIFY_MAX_MESSAGE) {
        if (cp2p_identify_decode(b.data, b.len, &again) != 0)
            abort();
        if (again.n_protocols != m.n_protocols || again.n_listen_addrs != m.n_listen_addrs ||
            !same_bytes(again.public_key, again.public_key_len, m.public_key, m.public_key_len))
            abort();
        for (size_t i = 0; i < m.n_listen_addrs; i++)
            if (!same_bytes(again.listen_addrs[i], again.listen_addr_lens[i], m.listen_addrs[i],
                            m.listen_addr_lens[i]))
                abort();
        cp2p_identify_msg_free(&again);
    }
    cp2p_buf_free(&b);
    cp2p_identify_msg_free(&m);
    return 0;
}
