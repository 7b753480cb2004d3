/* Fuzz target: multistream-select dialer and listener fed hostile bytes in
 * chunks; checks that what they write back is well framed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/buf.h"
#include "cp2p/varint.h"
#include "mss/mss.h"

static int yes_if_short(void *ctx, const char *id, size_t len)
{
    return len < 8 && strlen(id) == len;
}

/* Every byte we send must be a sequence of complete multistream messages. */
static void check_framed(const cp2p_buf_t *b)
{
    size_t off = 0;
    while (off < b->len) {
        uint64_t v;
        int k = cp2p_uvarint_decode(b->data + off, b->len - off, &v);
        if (k <= 0 || v == 0 || v > b->len - off - (size_t)k ||
            b->data[off + (size_t)k + v - 1] != '\n')
            abort();
        off += (size_t)k + v;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    const char *protos[] = {"/a", "/noise", "/yamux/1.0.0"};
    cp2p_mss_t *m;
    int rc;
    if (mode & 1)
        rc = cp2p_mss_dialer_new(&m, (mode & 2) ? protos + 2 : protos, (mode & 2) ? 1 : 3,
                                 (mode & 2) ? CP2P_MSS_LAZY : 0);
    else
        rc = cp2p_mss_listener_new(&m, protos, 3, (mode & 2) ? yes_if_short : NULL, NULL);
    if (rc)
        abort();
    cp2p_buf_t out = {0};
    if (cp2p_mss_start(m, &out))
        abort();
    size_t chunk = (mode >> 2) + 1, fed = 0;
    int r = 0;
    while (fed < size && r == 0) {
        size_t k = size - fed < chunk ? size - fed : chunk;
        r = cp2p_mss_input(m, data + fed, k, &out);
        fed += k;
    }
    check_framed(&out);
    if (r == CP2P_MSS_DONE) {
        size_t n;
        const uint8_t *left = cp2p_mss_leftover(m, &n);
        /* the leftover is exactly the tail of what we fed */
        if (!cp2p_mss_selected(m) || n > fed || (n && memcmp(left, data + fed - n, n)))
            abort();
    } else if (r < 0 && cp2p_mss_selected(m)) {
        abort();
    }
    cp2p_buf_free(&out);
    cp2p_mss_free(m);
    return 0;
}
