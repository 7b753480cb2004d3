/* Fuzz target: what a remote writes on /libp2p/dcutr. The first byte picks
 * the role; the rest goes through the HolePunch decoder (a decoded message
 * must survive re-encoding) and, in chunks, through one attempt's engine. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "protocols/dcutr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int role = data[0] & 1, chunk = (data[0] >> 1) + 1;
    data++;
    size--;

    cp2p_dcutr_msg_t m, again;
    if (cp2p_dcutr_decode(data, size, &m) == 0) {
        cp2p_buf_t b = {0};
        if (cp2p_dcutr_encode(m.type, m.addrs, m.n_addrs, &b) != 0)
            abort();
        size_t hdr, body;
        if (cp2p_dcutr_frame(b.data, b.len, &hdr, &body) != 0 ||
            cp2p_dcutr_decode(b.data + hdr, body, &again) != 0 || again.type != m.type ||
            again.n_addrs > m.n_addrs)
            abort();
        for (size_t i = 0; i < again.n_addrs; i++)
            if (!cp2p_multiaddr_equal(&again.addrs[i], &m.addrs[i]))
                abort();
        cp2p_dcutr_msg_free(&again);
        cp2p_buf_free(&b);
        cp2p_dcutr_msg_free(&m);
    }

    cp2p_multiaddr_t mine = {0};
    if (cp2p_multiaddr_parse("/ip4/1.2.3.4/tcp/4001", &mine))
        abort();
    cp2p_dcutr_engine_t e;
    cp2p_buf_t out = {0};
    if (cp2p_dcutr_engine_init(&e, role ? CP2P_DCUTR_ROLE_B : CP2P_DCUTR_ROLE_A, 1, &mine, 1, 0, 1000))
        abort();
    cp2p_dcutr_engine_start(&e, 0, &out);
    uint64_t now = 0;
    for (size_t off = 0; off < size; off += (size_t)chunk) {
        size_t n = size - off < (size_t)chunk ? size - off : (size_t)chunk;
        int rc = cp2p_dcutr_engine_input(&e, data + off, n, ++now, &out);
        if (rc != 0)
            break;
        if (e.in.len > 3 + CP2P_DCUTR_MAX_MESSAGE || out.len > 3 * (2 + CP2P_DCUTR_MAX_MESSAGE))
            abort();
    }
    cp2p_dcutr_engine_tick(&e, now + 5000);
    cp2p_dcutr_engine_eof(&e);
    cp2p_dcutr_engine_free(&e);
    cp2p_buf_free(&out);
    cp2p_multiaddr_free(&mine);
    return 0;
}
