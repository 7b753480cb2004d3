/* Fuzz target: websocket frames (RFC 6455 5.2) as a server and as a client
 * decode them, in pieces whose size the first byte picks. What comes out
 * is never more than went in, the replies (pongs, close) never more than
 * three times it (a client's 2-byte ping costs a 6-byte masked pong), and
 * nothing is decoded after a close. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/ws_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] + 1;
    for (int client = 0; client < 2; client++) {
        cp2p_ws_framer_t f;
        cp2p_ws_framer_init(&f, client);
        uint8_t *p = malloc(size);
        memcpy(p, data + 1, size - 1);
        cp2p_buf_t reply = {0};
        int eof = 0;
        for (size_t off = 0; off < size - 1;) {
            size_t k = size - 1 - off < step ? size - 1 - off : step;
            ssize_t n = cp2p_ws_decode(&f, p + off, k, &reply, &eof);
            if (n < 0)
                break;
            if ((size_t)n > k || reply.len > 3 * (off + k) + 8)
                abort();
            if (eof && cp2p_ws_decode(&f, p + off, k, &reply, &eof) != 0)
                abort();
            if (eof)
                break;
            off += k;
        }
        cp2p_buf_free(&reply);
        free(p);
    }
    return 0;
}
