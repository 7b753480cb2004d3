/* NAT-PMP reply parsing (RFC 6886 sections 3.2, 3.3 and 3.5). */
#include "nat/natpmp_msg.h"

#include <string.h>

#include "cp2p/error.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int cp2p_natpmp_reply_parse(const uint8_t *p, size_t n, cp2p_natpmp_reply_t *out)
{
    memset(out, 0, sizeof *out);
    if (n < 8 || n > CP2P_NATPMP_MAX_REPLY || p[0] != 0 || p[1] < 128)
        return CP2P_EPARSE;
    uint8_t op = (uint8_t)(p[1] - 128);
    if (op != CP2P_NATPMP_OP_PUBLIC && op != CP2P_NATPMP_OP_TCP)
        return CP2P_EPARSE;
    out->op = op;
    out->result = be16(p + 2);
    out->epoch = be32(p + 4);
    if (out->result != 0)
        return 0; /* the rest is undefined (3.5) */
    if (op == CP2P_NATPMP_OP_PUBLIC) {
        if (n != 12)
            return CP2P_EPARSE;
        memcpy(out->ip, p + 8, 4);
        return 0;
    }
    if (n != 16)
        return CP2P_EPARSE;
    out->iport = be16(p + 8);
    out->eport = be16(p + 10);
    out->lifetime = be32(p + 12);
    return 0;
}
