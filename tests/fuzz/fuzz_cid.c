/* Fuzz target: CID and multihash, binary and text. A CID that decodes must
 * re-encode to the same bytes; text that parses must survive a format/parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/cid.h"

static void text(const char *s, size_t n)
{
    cp2p_buf_t bin = {0}, t = {0}, bin2 = {0};
    cp2p_cid_view_t c, c2;
    if (cp2p_cid_parse(s, n, &bin, &c) == 0) {
        if (c.mh_bytes < bin.data || c.mh_bytes + c.mh_len > bin.data + bin.len)
            abort();
        if (cp2p_cid_format_v1(CP2P_BASE32, c.codec, c.mh_bytes, c.mh_len, &t) != 0)
            abort();
        if (cp2p_cid_parse((const char *)t.data, t.len, &bin2, &c2) != 0)
            abort();
        if (c2.codec != c.codec || c2.mh_len != c.mh_len || memcmp(c2.mh_bytes, c.mh_bytes, c.mh_len))
            abort();
    }
    cp2p_buf_free(&bin);
    cp2p_buf_free(&bin2);
    cp2p_buf_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_multihash_view_t mh;
    int n = cp2p_multihash_parse(data, size, &mh);
    if (n > 0) {
        cp2p_buf_t b = {0};
        if ((size_t)n > size || cp2p_multihash_encode(mh.code, mh.digest, mh.digest_len, &b) != 0)
            abort();
        if (b.len != (size_t)n || memcmp(b.data, data, b.len) != 0)
            abort();
        cp2p_buf_free(&b);
    }

    cp2p_cid_view_t c;
    if (cp2p_cid_decode(data, size, &c) == 0) {
        if (c.mh_bytes + c.mh_len != data + size)
            abort();
        if (c.version == 1) {
            cp2p_buf_t b = {0};
            if (cp2p_cid_encode_v1(c.codec, c.mh_bytes, c.mh_len, &b) != 0)
                abort();
            if (b.len != size || memcmp(b.data, data, size) != 0)
                abort();
            cp2p_buf_free(&b);
        }
    }
    text((const char *)data, size);
    return 0;
}
