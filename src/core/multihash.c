/* Multihash (multiformats/multihash spec): <varint code><varint length><digest>;
 * sha2-256 through OpenSSL. */
#include <openssl/evp.h>

#include "cp2p/error.h"
#include "cp2p/multihash.h"
#include "cp2p/varint.h"

int cp2p_multihash_parse(const uint8_t *p, size_t n, cp2p_multihash_view_t *out)
{
    uint64_t code, len;
    int a = cp2p_uvarint_decode(p, n, &code);
    if (a < 0)
        return a;
    int b = cp2p_uvarint_decode(p + a, n - (size_t)a, &len);
    if (b < 0)
        return b;
    size_t off = (size_t)a + (size_t)b;
    if (len > CP2P_MH_MAX_DIGEST)
        return CP2P_EOVERFLOW;
    if (len > n - off)
        return CP2P_ETRUNC;
    if (code == CP2P_MH_SHA2_256 && len != 32)
        return CP2P_EPARSE;
    out->code = code;
    out->digest = p + off;
    out->digest_len = (size_t)len;
    return (int)(off + len);
}

int cp2p_multihash_parse_exact(const uint8_t *p, size_t n, cp2p_multihash_view_t *out)
{
    cp2p_multihash_view_t v;
    int rc = cp2p_multihash_parse(p, n, &v);
    if (rc < 0)
        return rc;
    if ((size_t)rc != n)
        return CP2P_EPARSE;
    *out = v;
    return rc;
}

int cp2p_multihash_encode(uint64_t code, const uint8_t *digest, size_t len, cp2p_buf_t *out)
{
    if (code >> 63 || len > CP2P_MH_MAX_DIGEST || (code == CP2P_MH_SHA2_256 && len != 32))
        return CP2P_EINVAL;
    size_t before = out->len;
    int rc = cp2p_buf_append_uvarint(out, code);
    if (!rc)
        rc = cp2p_buf_append_uvarint(out, len);
    if (!rc)
        rc = cp2p_buf_append(out, digest, len);
    if (rc)
        out->len = before;
    return rc;
}

int cp2p_multihash_sum(uint64_t code, const uint8_t *data, size_t n, cp2p_buf_t *out)
{
    if (code == CP2P_MH_IDENTITY)
        return n > CP2P_MH_MAX_DIGEST ? CP2P_EOVERFLOW : cp2p_multihash_encode(code, data, n, out);
    if (code != CP2P_MH_SHA2_256)
        return CP2P_EUNSUPPORTED;
    uint8_t md[32];
    unsigned mdlen = 0;
    if (!EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != sizeof(md))
        return CP2P_ECRYPTO;
    return cp2p_multihash_encode(code, md, sizeof(md), out);
}
