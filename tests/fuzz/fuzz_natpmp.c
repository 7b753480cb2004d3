/* Fuzz target: a NAT-PMP datagram from the gateway (src/nat/natpmp_msg.c).
 * What parses must be a reply of the length its opcode and result say, and
 * its fields must be the bytes they were read from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nat/natpmp_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_natpmp_reply_t r;
    if (cp2p_natpmp_reply_parse(data, size, &r))
        return 0;
    if (size < 8 || data[0] != 0 || data[1] != 128 + r.op)
        abort();
    if (r.result != (uint16_t)(data[2] << 8 | data[3]))
        abort();
    if (r.result == 0) {
        if (r.op == CP2P_NATPMP_OP_PUBLIC && (size != 12 || memcmp(r.ip, data + 8, 4)))
            abort();
        if (r.op == CP2P_NATPMP_OP_TCP &&
            (size != 16 || r.iport != (uint16_t)(data[8] << 8 | data[9]) ||
             r.eport != (uint16_t)(data[10] << 8 | data[11])))
            abort();
    }
    return 0;
}
