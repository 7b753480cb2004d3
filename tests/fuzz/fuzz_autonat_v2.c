/* Fuzz target: the AutoNAT v2 decoders (a dial-request stream's messages,
 * a dial-back's) and the server's choice of address on what was decoded; a
 * decoded message must survive re-encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/autonat.h"
#include "protocols/autonat_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t nonce;
    size_t used;
    if (cp2p_autonat2_decode_dial_back(data, size, &nonce, &used) == 0 && used > size)
        abort();
    cp2p_autonat2_msg_t m, again;
    if (cp2p_autonat2_decode(data, size, &m, &used) != 0)
        return 0;
    if (used > size)
        abort();
    if (m.kind == CP2P_AUTONAT2_DIAL_REQUEST) {
        cp2p_multiaddr_t obs;
        cp2p_peer_id_t remote = {0};
        size_t idx;
        int need;
        if (cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/5000", &obs) == 0) {
            if (an2_pick(&obs, &m, 1, &remote, &idx, &need) == 0 && (idx >= m.n_addrs || !m.addrs[idx].len))
                abort();
            cp2p_multiaddr_free(&obs);
        }
    }
    static uint8_t zeros[CP2P_AUTONAT_V2_MAX_MESSAGE];
    if (m.kind == CP2P_AUTONAT2_DIAL_DATA_RESPONSE)
        m.data = zeros;
    cp2p_buf_t b = {0};
    if (m.kind != CP2P_AUTONAT2_NONE && cp2p_autonat2_encode(&m, &b) == 0) {
        if (cp2p_autonat2_decode(b.data, b.len, &again, NULL) != 0 || again.kind != m.kind ||
            again.nonce != m.nonce || again.num_bytes != m.num_bytes || again.data_len != m.data_len)
            abort();
        cp2p_autonat2_msg_free(&again);
    }
    cp2p_buf_free(&b);
    cp2p_autonat2_msg_free(&m);
    return 0;
}
