/* Fuzz target: the AutoNAT v1 message decoder (what a client or server
 * writes on /libp2p/autonat/1.0.0) and the server's decision on what it
 * decoded; a decoded message must survive re-encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/autonat.h"
#include "protocols/autonat_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_autonat_msg_t m, again;
    size_t used;
    if (cp2p_autonat_decode(data, size, &m, &used) != 0)
        return 0;
    if (used > size)
        abort();
    cp2p_buf_t b = {0};
    if (cp2p_autonat_encode(&m, &b) == 0) {
        if (cp2p_autonat_decode(b.data, b.len, &again, NULL) != 0)
            abort();
        if (again.n_addrs != m.n_addrs || again.type != m.type || again.has_dial != m.has_dial ||
            again.has_response != m.has_response)
            abort();
        for (size_t i = 0; i < m.n_addrs; i++)
            if (!cp2p_multiaddr_equal(&again.addrs[i], &m.addrs[i]))
                abort();
        cp2p_autonat_msg_free(&again);
    }
    cp2p_buf_free(&b);
    an_throttle_t t;
    if (an_throttle_init(&t, 30, 3, 60000) == 0) {
        cp2p_multiaddr_t obs;
        cp2p_peer_id_t remote = m.has_peer_id ? m.peer : (cp2p_peer_id_t){0};
        if (cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/5000", &obs) == 0) {
            an_verdict_t v;
            an_server_decide(&t, 0, 1, &remote, &obs, &m, &v);
            if (v.dial && (v.ndial == 0 || v.ndial > CP2P_AUTONAT_MAX_ADDRS))
                abort();
            an_verdict_free(&v);
            cp2p_multiaddr_free(&obs);
        }
        an_throttle_free(&t);
    }
    cp2p_autonat_msg_free(&m);
    return 0;
}
