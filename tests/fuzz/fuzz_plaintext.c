/* Fuzz target: the /plaintext/2.0.0 session fed hostile bytes. The first byte
 * picks a responder or an initiator expecting a fixed peer; the second seeds
 * the read sizes. Whatever follows an accepted Exchange must come out as is. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/buf.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "security/security.h"

static const cp2p_sec_vtable_t *V = &cp2p_plaintext_vtable;
static cp2p_privkey_t *id_a;
static cp2p_peer_id_t expected;
/* The Ed25519 key of the tls spec's first test vector: a known key, so the
 * seed corpus can hold an Exchange the initiator accepts. */
static const uint8_t expected_key[32] = {
    0xa7, 0x7f, 0x1d, 0x92, 0xfe, 0xdb, 0x59, 0xdd, 0xda, 0xea, 0x5a, 0x1c, 0x4a, 0xbd, 0x1a, 0xc2,
    0xfb, 0xde, 0x7d, 0x7b, 0x87, 0x9e, 0xd3, 0x64, 0x50, 0x18, 0x09, 0x92, 0x3d, 0x7c, 0x11, 0xb9};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t sizes[] = {1, 2, 3, 7, 64, 1000, 65537};
    if (!id_a) {
        cp2p_pubkey_t *k;
        if (cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &id_a) ||
            cp2p_pubkey_from_raw(CP2P_KEY_ED25519, expected_key, 32, &k) ||
            cp2p_peer_id_from_pubkey(k, &expected))
            abort();
        cp2p_pubkey_free(k);
    }
    if (size < 2)
        return 0;
    int initiator = data[0] & 1;
    unsigned seed = data[1];
    data += 2;
    size -= 2;
    cp2p_sec_t *s;
    cp2p_buf_t w = {0}, plain = {0};
    if (V->create(&s, initiator, id_a, initiator ? &expected : NULL) || V->start(s, &w))
        abort();
    int rc = 0;
    size_t off = 0, at_established = 0;
    while (off < size && rc == 0) {
        size_t k = sizes[seed++ % 7];
        if (k > size - off)
            k = size - off;
        int before = cp2p_sec_established(s);
        size_t plain_before = plain.len;
        rc = V->input(s, data + off, k, &w, &plain);
        if (!before && rc == 0 && cp2p_sec_established(s))
            at_established = off + k - (plain.len - plain_before);
        off += k;
    }
    if (rc == 0 && cp2p_sec_established(s)) {
        /* the bytes after the Exchange, untouched */
        if (plain.len != size - at_established ||
            (plain.len && memcmp(plain.data, data + at_established, plain.len)))
            abort();
        if (!cp2p_sec_remote_key(s) ||
            !cp2p_peer_id_matches_pubkey(cp2p_sec_remote_peer(s), cp2p_sec_remote_key(s)))
            abort();
        if (initiator && !cp2p_peer_id_equal(cp2p_sec_remote_peer(s), &expected))
            abort();
    } else if (plain.len) {
        abort();
    }
    V->destroy(s);
    cp2p_buf_free(&w);
    cp2p_buf_free(&plain);
    return 0;
}
