/* Fuzz target: the libp2p tls certificate check (tls/tls.md, "Peer Authentication")
 * fed a hostile DER certificate, as the remote's handshake would deliver it. */
#include <stdint.h>
#include <stdlib.h>

#include "cp2p/peer.h"
#include "security/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_pubkey_t *key = NULL;
    int rc = cp2p_tls_cert_check(data, size, &key);
    if (rc == 0) {
        /* an accepted certificate always names a usable peer */
        cp2p_peer_id_t id;
        if (!key || cp2p_peer_id_from_pubkey(key, &id) || !cp2p_peer_id_matches_pubkey(&id, key))
            abort();
    } else if (key) {
        abort();
    }
    cp2p_pubkey_free(key);
    return 0;
}
