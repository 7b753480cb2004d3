/* Fuzz target: binary multiaddrs (as received from peers in identify, kad and
 * relay messages); what validates must print and parse back to the same bytes,
 * and has an IP scope. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/multiaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_multiaddr_t ma = {0}, back = {0};
    if (cp2p_multiaddr_from_bytes(data, size, &ma) != 0)
        return 0;
    cp2p_buf_t s = {0};
    if (cp2p_multiaddr_to_string(&ma, &s) != 0)
        abort();
    if (cp2p_multiaddr_parse((const char *)s.data, &back) != 0)
        abort();
    if (!cp2p_multiaddr_equal(&ma, &back))
        abort();
    cp2p_multiaddr_component_t c;
    cp2p_multiaddr_iter_t it;
    size_t total = 0;
    cp2p_multiaddr_iter_init(&it, &ma);
    while (cp2p_multiaddr_iter_next(&it, &c))
        total += c.raw_len;
    if (total != size)
        abort();
    /* the scope that decides which claimed addresses are kept */
    if ((unsigned)cp2p_multiaddr_ip_scope(&ma) > CP2P_IP_PUBLIC)
        abort();
    cp2p_multiaddr_free(&ma);
    cp2p_multiaddr_free(&back);
    cp2p_buf_free(&s);
    return 0;
}
