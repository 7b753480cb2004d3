/* CID (multiformats/cid spec): v0 and v1 in binary and text form, including the
 * spec's "decoding algorithm" for telling v0 from multibase text. */
#include <stdbool.h>

#include "cp2p/cid.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"

int cp2p_cid_decode(const uint8_t *p, size_t n, cp2p_cid_view_t *out)
{
    cp2p_cid_view_t v;
    int rc;
    /* A v0 CID is a bare sha2-256 multihash; 0x12 is never a valid v1 version. */
    if (n == 34 && p[0] == CP2P_MH_SHA2_256 && p[1] == 32) {
        rc = cp2p_multihash_parse_exact(p, n, &v.mh);
        if (rc < 0)
            return rc;
        v.version = 0;
        v.codec = CP2P_CODEC_DAG_PB;
        v.mh_bytes = p;
        v.mh_len = n;
        *out = v;
        return 0;
    }
    int a = cp2p_uvarint_decode(p, n, &v.version);
    if (a < 0)
        return a;
    if (v.version != 1)
        return v.version == 0 || v.version == CP2P_MH_SHA2_256 ? CP2P_EPARSE : CP2P_EUNSUPPORTED;
    int b = cp2p_uvarint_decode(p + a, n - (size_t)a, &v.codec);
    if (b < 0)
        return b;
    size_t off = (size_t)a + (size_t)b;
    rc = cp2p_multihash_parse_exact(p + off, n - off, &v.mh);
    if (rc < 0)
        return rc;
    v.mh_bytes = p + off;
    v.mh_len = n - off;
    *out = v;
    return 0;
}

int cp2p_cid_encode_v1(uint64_t codec, const uint8_t *mh, size_t mh_len, cp2p_buf_t *out)
{
    cp2p_multihash_view_t v;
    if (codec >> 63 || cp2p_multihash_parse_exact(mh, mh_len, &v) < 0)
        return CP2P_EINVAL;
    size_t before = out->len;
    int rc = cp2p_buf_append_byte(out, 1);
    if (!rc)
        rc = cp2p_buf_append_uvarint(out, codec);
    if (!rc)
        rc = cp2p_buf_append(out, mh, mh_len);
    if (rc)
        out->len = before;
    return rc;
}

int cp2p_cid_parse(const char *s, size_t n, cp2p_buf_t *bytes, cp2p_cid_view_t *out)
{
    size_t before = bytes->len;
    bool v0 = n == 46 && s[0] == 'Q' && s[1] == 'm';
    int rc = v0 ? cp2p_base_decode(CP2P_BASE58BTC, s, n, bytes)
                : cp2p_multibase_decode(s, n, NULL, bytes);
    if (!rc)
        rc = bytes->len > before ? cp2p_cid_decode(bytes->data + before, bytes->len - before, out)
                                 : CP2P_EPARSE;
    /* v0 has no multibase form, and "Qm..." text must really be v0. */
    if (!rc && (out->version == 0) != v0)
        rc = CP2P_EPARSE;
    if (rc)
        bytes->len = before;
    return rc;
}

int cp2p_cid_format_v1(cp2p_base_t base, uint64_t codec, const uint8_t *mh, size_t mh_len,
                       cp2p_buf_t *out)
{
    cp2p_buf_t bin = {0};
    int rc = cp2p_cid_encode_v1(codec, mh, mh_len, &bin);
    if (!rc)
        rc = cp2p_multibase_encode(base, bin.data, bin.len, out);
    cp2p_buf_free(&bin);
    return rc;
}
