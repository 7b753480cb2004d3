/* libFuzzer target: cp2pd control requests (src/daemon/control.c), framed
 * and unframed, as a hostile client sends them. */
#include <stddef.h>
#include <stdint.h>

#include "daemon/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *msg;
    size_t len;
    P2pd__Request *r = NULL;
    const char *why;
    for (size_t off = 0; off < size;) {
        int k = cp2p_daemon_frame(data + off, size - off, &msg, &len);
        if (k < 0)
            break;
        if (cp2p_daemon_request_decode(msg, len, &r, &why) == 0)
            p2pd__request__free_unpacked(r, NULL);
        off += (size_t)k;
    }
    if (cp2p_daemon_request_decode(data, size, &r, &why) == 0)
        p2pd__request__free_unpacked(r, NULL);
    return 0;
}
