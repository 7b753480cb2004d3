/* Fuzz target: PublicKey / PrivateKey protobufs and peer IDs from hostile bytes.
 * A public key that parses must marshal back to the same bytes (one key, one ID). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/keys.h"
#include "cp2p/peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_pubkey_t *pk = NULL;
    if (cp2p_pubkey_unmarshal(data, size, &pk) == 0) {
        cp2p_buf_t b = {0};
        if (cp2p_pubkey_marshal(pk, &b) || b.len != size || memcmp(b.data, data, size))
            abort();
        cp2p_buf_free(&b);
        /* Verify must survive any key with any signature. */
        cp2p_pubkey_verify(pk, data, size, data, size);
        cp2p_peer_id_t id;
        if (cp2p_peer_id_from_pubkey(pk, &id) || !cp2p_peer_id_matches_pubkey(&id, pk))
            abort();
        cp2p_pubkey_free(pk);
    }

    cp2p_privkey_t *sk = NULL;
    if (cp2p_privkey_unmarshal(data, size, &sk) == 0) {
        cp2p_buf_t sig = {0};
        if (cp2p_privkey_sign(sk, data, size, &sig) ||
            cp2p_pubkey_verify(cp2p_privkey_public(sk), data, size, sig.data, sig.len))
            abort();
        cp2p_buf_free(&sig);
        cp2p_privkey_free(sk);
    }

    cp2p_peer_id_t id;
    if (cp2p_peer_id_from_bytes(data, size, &id) == 0) {
        char s[CP2P_PEER_ID_STRMAX];
        cp2p_peer_id_t back;
        if (cp2p_peer_id_to_string(&id, s, sizeof s) || cp2p_peer_id_parse(s, &back) ||
            !cp2p_peer_id_equal(&id, &back))
            abort();
        if (cp2p_peer_id_extract_pubkey(&id, &pk) == 0)
            cp2p_pubkey_free(pk);
    }
    char text[256];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    cp2p_peer_id_parse(text, &id);
    return 0;
}
