/* Peer IDs (libp2p peer-ids spec, "Peer Ids" and "String representation"):
 * derivation from a public key, binary and text forms. */
#include <string.h>

#include "cp2p/cid.h"
#include "cp2p/error.h"
#include "cp2p/multibase.h"
#include "cp2p/multihash.h"
#include "cp2p/peer.h"

/* Encoded keys up to this size are inlined (identity multihash), per the spec. */
#define INLINE_KEY_MAX 42

int cp2p_peer_id_from_pubkey(const cp2p_pubkey_t *k, cp2p_peer_id_t *out)
{
    if (!k || !out)
        return CP2P_EINVAL;
    cp2p_buf_t key = {0}, mh = {0};
    int rc = cp2p_pubkey_marshal(k, &key);
    if (!rc)
        rc = cp2p_multihash_sum(key.len <= INLINE_KEY_MAX ? CP2P_MH_IDENTITY : CP2P_MH_SHA2_256,
                                key.data, key.len, &mh);
    if (!rc)
        rc = cp2p_peer_id_from_bytes(mh.data, mh.len, out);
    cp2p_buf_free(&key);
    cp2p_buf_free(&mh);
    return rc;
}

int cp2p_peer_id_from_bytes(const uint8_t *p, size_t n, cp2p_peer_id_t *out)
{
    if (!out || (!p && n))
        return CP2P_EINVAL;
    if (n > CP2P_PEER_ID_MAX)
        return CP2P_EOVERFLOW;
    cp2p_multihash_view_t v;
    int rc = cp2p_multihash_parse_exact(p, n, &v);
    if (rc < 0)
        return rc;
    if (v.code != CP2P_MH_IDENTITY && v.code != CP2P_MH_SHA2_256)
        return CP2P_EUNSUPPORTED;
    out->len = (uint8_t)n;
    memcpy(out->bytes, p, n);
    return 0;
}

int cp2p_peer_id_parse(const char *s, cp2p_peer_id_t *out)
{
    if (!s || !out)
        return CP2P_EINVAL;
    size_t n = strlen(s);
    if (n == 0)
        return CP2P_EPARSE;
    /* Longer than any ID we can hold in any base; saves decoding hostile junk. */
    if (n > CP2P_PEER_ID_STRMAX * 2)
        return CP2P_EOVERFLOW;
    cp2p_buf_t b = {0};
    int rc;
    if (s[0] == '1' || (n >= 2 && s[0] == 'Q' && s[1] == 'm')) {
        rc = cp2p_base_decode(CP2P_BASE58BTC, s, n, &b);
        if (!rc)
            rc = cp2p_peer_id_from_bytes(b.data, b.len, out);
    } else {
        cp2p_cid_view_t cid;
        rc = cp2p_cid_parse(s, n, &b, &cid);
        if (!rc && (cid.version != 1 || cid.codec != CP2P_CODEC_LIBP2P_KEY))
            rc = CP2P_EPARSE;
        if (!rc)
            rc = cp2p_peer_id_from_bytes(cid.mh_bytes, cid.mh_len, out);
    }
    cp2p_buf_free(&b);
    return rc == CP2P_EUNSUPPORTED || rc == CP2P_ETRUNC ? CP2P_EPARSE : rc;
}

static int copy_text(const cp2p_buf_t *b, char *out, size_t cap)
{
    if (b->len + 1 > cap)
        return CP2P_EOVERFLOW;
    memcpy(out, b->data, b->len);
    out[b->len] = '\0';
    return 0;
}

int cp2p_peer_id_to_string(const cp2p_peer_id_t *id, char *out, size_t cap)
{
    if (!id || !out)
        return CP2P_EINVAL;
    cp2p_buf_t b = {0};
    int rc = cp2p_base_encode(CP2P_BASE58BTC, id->bytes, id->len, &b);
    if (!rc)
        rc = copy_text(&b, out, cap);
    cp2p_buf_free(&b);
    return rc;
}

int cp2p_peer_id_to_cid_string(const cp2p_peer_id_t *id, char *out, size_t cap)
{
    if (!id || !out)
        return CP2P_EINVAL;
    cp2p_buf_t b = {0};
    int rc = cp2p_cid_format_v1(CP2P_BASE32, CP2P_CODEC_LIBP2P_KEY, id->bytes, id->len, &b);
    if (!rc)
        rc = copy_text(&b, out, cap);
    cp2p_buf_free(&b);
    return rc;
}

int cp2p_peer_id_equal(const cp2p_peer_id_t *a, const cp2p_peer_id_t *b)
{
    return a && b && a->len == b->len && !memcmp(a->bytes, b->bytes, a->len);
}

int cp2p_peer_id_extract_pubkey(const cp2p_peer_id_t *id, cp2p_pubkey_t **out)
{
    if (!id || !out)
        return CP2P_EINVAL;
    cp2p_multihash_view_t v;
    int rc = cp2p_multihash_parse_exact(id->bytes, id->len, &v);
    if (rc < 0)
        return rc;
    if (v.code != CP2P_MH_IDENTITY)
        return CP2P_ENOTFOUND;
    return cp2p_pubkey_unmarshal(v.digest, v.digest_len, out);
}

int cp2p_peer_id_matches_pubkey(const cp2p_peer_id_t *id, const cp2p_pubkey_t *k)
{
    cp2p_peer_id_t mine;
    return id && k && !cp2p_peer_id_from_pubkey(k, &mine) && cp2p_peer_id_equal(id, &mine);
}
