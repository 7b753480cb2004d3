/* Fuzz target: the circuit relay v2 codec (what a remote writes on the hop
 * and stop streams, and the vouchers relays hand out): a framed message is
 * decoded as a HopMessage and as a StopMessage; what decodes must survive
 * re-encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "protocols/relay_msg.h"

static void roundtrip(int stop, const uint8_t *p, size_t n)
{
    relay_msg_t m, again;
    if (relay_msg_decode(stop, p, n, &m) != 0)
        return;
    cp2p_buf_t b = {0};
    if (relay_msg_encode(stop, &m, &b) != 0)
        abort();
    size_t hdr, len;
    if (relay_msg_frame(b.data, b.len, &hdr, &len) != 1 || hdr + len != b.len)
        abort();
    if (relay_msg_decode(stop, b.data + hdr, len, &again) != 0)
        abort();
    if (again.type != m.type || again.status != m.status || again.has_peer != m.has_peer ||
        (m.has_peer && !cp2p_peer_id_equal(&again.peer, &m.peer)) ||
        again.n_addrs != m.n_addrs || again.n_peer_addrs != m.n_peer_addrs ||
        again.expire != m.expire || again.voucher_len != m.voucher_len ||
        again.duration != m.duration || again.data != m.data)
        abort();
    relay_msg_clear(&again);
    relay_msg_clear(&m);
    cp2p_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t hdr, len;
    if (relay_msg_frame(data, size, &hdr, &len) == 1) {
        roundtrip(0, data + hdr, len);
        roundtrip(1, data + hdr, len);
    }
    roundtrip(0, data, size);
    roundtrip(1, data, size);
    cp2p_peer_id_t relay, peer;
    uint64_t exp;
    relay_voucher_open(data, size, &relay, &peer, &exp);
    return 0;
}
