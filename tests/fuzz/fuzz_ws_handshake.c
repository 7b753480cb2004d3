/* Fuzz target: the websocket upgrade's HTTP head, read by a server and by a
 * client (libhttp-parser underneath), whole and a byte at a time: both
 * readings agree, and what the head takes is never more than was given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/ws_proto.h"

static int run(int client, const uint8_t *data, size_t size, size_t step, size_t *taken)
{
    cp2p_ws_handshake_t h;
    cp2p_buf_t out = {0};
    if (client)
        cp2p_ws_client_start(&h, "h:1", &out);
    else
        cp2p_ws_server_init(&h);
    cp2p_buf_reset(&out);
    int rc = 0;
    *taken = 0;
    for (size_t off = 0; off < size && rc == 0;) {
        size_t k = size - off < step ? size - off : step, used = 0;
        rc = cp2p_ws_handshake_input(&h, data + off, k, &used, &out);
        if (used > k)
            abort();
        *taken += used;
        off += k;
    }
    cp2p_ws_handshake_free(&h);
    cp2p_buf_free(&out);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t a, b;
    /* The server's reading does not depend on how the bytes arrive. */
    int whole = run(0, data, size, size ? size : 1, &a), bytes = run(0, data, size, 1, &b);
    if ((whole > 0) != (bytes > 0) || (whole > 0 && a != b))
        abort();
    run(1, data, size, size ? size : 1, &a); /* a client's key is random: it must fail */
    return 0;
}
