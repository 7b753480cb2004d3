/* Fuzz target: pubsub RPC framing and decoding, then the router fed the
 * same bytes as an RPC from a peer (subscriptions, messages, control). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/keys.h"
#include "pubsub/ps_router.h"
#include "pubsub/ps_rpc.h"

static void io_send(void *arg, const cp2p_peer_id_t *peer, const uint8_t *p, size_t n)
{
    (void)arg, (void)peer;
    ps_bytes_t body;
    size_t used;
    /* What we send must frame and decode. */
    ps_rpc_t r;
    if (ps_rpc_frame(p, n, SIZE_MAX, &body, &used) != 1 || used != n ||
        ps_rpc_decode(body.p, body.n, &r) != 0)
        abort();
    ps_rpc_clear(&r);
}
static void io_deliver(void *arg, const cp2p_pubsub_message_t *m) { (void)arg, (void)m; }
static cp2p_pubsub_result_t io_validate(void *arg, const cp2p_pubsub_message_t *m, uint64_t t)
{
    (void)arg, (void)m, (void)t;
    return CP2P_PUBSUB_ACCEPT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cp2p_privkey_t *key;
    static ps_router_t *r;
    static cp2p_peer_id_t peer;
    if (!r) {
        cp2p_privkey_t *pk;
        if (cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &key) || cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &pk) ||
            cp2p_peer_id_from_pubkey(cp2p_privkey_public(pk), &peer))
            abort();
        cp2p_privkey_free(pk);
        ps_router_io_t io = {NULL, io_send, io_deliver, io_validate, NULL, NULL};
        cp2p_pubsub_config_t cfg = {.sign_policy = CP2P_PUBSUB_STRICT_NO_SIGN};
        if (ps_router_new(&cfg, key, &io, 0, &r) || ps_router_add_peer(r, &peer, PS_MESHSUB12, 1, 0) ||
            ps_router_join(r, "t", 0))
            abort();
    }
    ps_bytes_t body;
    size_t used;
    if (ps_rpc_frame(data, size, 1 << 20, &body, &used) == 1) {
        ps_rpc_t rpc;
        if (ps_rpc_decode(body.p, body.n, &rpc) == 0) {
            for (size_t i = 0; i < rpc.n_msgs; i++) {
                cp2p_buf_t out = {0};
                ps_msg_t again;
                if (ps_msg_encode(&rpc.msgs[i], 1, &out) || ps_msg_decode(out.data, out.len, &again) ||
                    again.has != rpc.msgs[i].has || again.data.n != rpc.msgs[i].data.n)
                    abort();
                cp2p_buf_free(&out);
            }
            ps_rpc_clear(&rpc);
        }
    }
    static uint64_t now;
    ps_router_rpc(r, &peer, data, size, now += 100);
    if (now % 1000 == 0)
        ps_router_heartbeat(r, now);
    return 0;
}
