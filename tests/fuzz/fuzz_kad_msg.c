/* Fuzz target: Kademlia RPC framing and decoding; whatever decodes must
 * re-encode and decode to the same message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kad/kad_msg.h"

static int same_peers(const cp2p_kad_peer_t *a, const cp2p_kad_peer_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!cp2p_peer_id_equal(&a[i].id, &b[i].id) || a[i].n_addrs != b[i].n_addrs ||
            a[i].connection != b[i].connection)
            return 0;
        for (size_t j = 0; j < a[i].n_addrs; j++)
            if (!cp2p_multiaddr_equal(&a[i].addrs[j], &b[i].addrs[j]))
                return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *body;
    size_t body_len;
    cp2p_kad_msg_t m = {0}, again = {0};
    cp2p_buf_t out = {0};
    if (cp2p_kad_msg_frame(data, size, &body, &body_len) <= 0)
        return 0;
    if (cp2p_kad_msg_decode(body, body_len, &m) != 0)
        return 0;
    if (cp2p_kad_msg_write(&m, &out) != 0)
        abort();
    if (cp2p_kad_msg_frame(out.data, out.len, &body, &body_len) != (int)out.len ||
        cp2p_kad_msg_decode(body, body_len, &again) != 0)
        abort();
    if (again.type != m.type || again.key_len != m.key_len ||
        memcmp(again.key, m.key, m.key_len) || again.has_record != m.has_record ||
        again.rec_value_len != m.rec_value_len || again.n_closer != m.n_closer ||
        again.n_providers != m.n_providers || again.n_dropped != 0 ||
        !same_peers(again.closer, m.closer, m.n_closer) ||
        !same_peers(again.providers, m.providers, m.n_providers))
        abort();
    cp2p_kad_msg_clear(&m);
    cp2p_kad_msg_clear(&again);
    cp2p_buf_free(&out);
    return 0;
}
