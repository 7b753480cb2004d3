/* Fuzz target: signed envelopes and peer records (RFC 0002/0003) from hostile bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_envelope_t *e = NULL;
    if (cp2p_envelope_open(data, size, CP2P_PEER_RECORD_DOMAIN, &e) == 0)
        cp2p_envelope_free(e);

    cp2p_peer_record_t r = {0};
    cp2p_pubkey_t *signer = NULL;
    if (cp2p_peer_record_open(data, size, &r, &signer) == 0) {
        if (!signer || !cp2p_peer_id_matches_pubkey(&r.peer_id, signer))
            abort();
        cp2p_pubkey_free(signer);
    }
    cp2p_peer_record_clear(&r);

    /* A decoded record re-encodes and decodes to the same record. */
    if (cp2p_peer_record_decode(data, size, &r) == 0) {
        cp2p_buf_t b = {0};
        cp2p_peer_record_t again = {0};
        if (cp2p_peer_record_encode(&r, &b) || cp2p_peer_record_decode(b.data, b.len, &again) ||
            !cp2p_peer_id_equal(&r.peer_id, &again.peer_id) || r.seq != again.seq ||
            r.n_addrs != again.n_addrs)
            abort();
        for (size_t i = 0; i < r.n_addrs; i++)
            if (r.addr_lens[i] != again.addr_lens[i] ||
                memcmp(r.addrs[i], again.addrs[i], r.addr_lens[i]))
                abort();
        cp2p_peer_record_clear(&again);
        cp2p_buf_free(&b);
    }
    cp2p_peer_record_clear(&r);
    return 0;
}
