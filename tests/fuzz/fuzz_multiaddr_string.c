/* Fuzz target: multiaddr strings (from configuration, the daemon's control
 * protocol and the CLI); the canonical form must be a fixed point. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/multiaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    cp2p_multiaddr_t ma = {0}, back = {0};
    if (cp2p_multiaddr_parse(s, &ma) == 0) {
        cp2p_buf_t t = {0}, t2 = {0};
        if (cp2p_multiaddr_to_string(&ma, &t) != 0)
            abort();
        if (cp2p_multiaddr_parse((const char *)t.data, &back) != 0)
            abort();
        if (!cp2p_multiaddr_equal(&ma, &back))
            abort();
        if (cp2p_multiaddr_to_string(&back, &t2) != 0 || t2.len != t.len ||
            memcmp(t.data, t2.data, t.len) != 0)
            abort();
        cp2p_buf_free(&t);
        cp2p_buf_free(&t2);
    }
    cp2p_multiaddr_free(&ma);
    cp2p_multiaddr_free(&back);
    free(s);
    return 0;
}
