/* Fuzz target: the rendezvous codec (what a client sends a point, and a
 * point a client, on /rendezvous/1.0.0): a frame, then its message; a
 * decoded message must survive re-encoding with every field the same, and
 * the records it carries go through the point's check (either envelope). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/rdv_msg.h"

static int same(const void *a, size_t an, const void *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int same_str(const char *a, const char *b)
{
    if (!a || !b)
        return a == b || (!a && !b[0]) || (!b && !a[0]);
    return !strcmp(a, b);
}

static int same_reg(const rdv_reg_t *a, const rdv_reg_t *b)
{
    return same_str(a->ns, b->ns) && same(a->record, a->record_len, b->record, b->record_len) &&
           a->has_ttl == b->has_ttl && (!a->has_ttl || a->ttl == b->ttl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t hdr, len;
    if (rdv_frame(data, size, RDV_MAX_RESPONSE, &hdr, &len) != 0)
        return 0;
    rdv_msg_t m, again;
    if (rdv_msg_decode(data + hdr, len, &m) != 0)
        return 0;
    cp2p_buf_t b = {0};
    if (rdv_msg_encode(&m, &b) != 0)
        abort();
    if (rdv_frame(b.data, b.len, RDV_MAX_RESPONSE + 64, &hdr, &len) != 0 || hdr + len != b.len)
        abort();
    if (rdv_msg_decode(b.data + hdr, len, &again) != 0)
        abort();
    if (again.type != m.type || again.n_regs != m.n_regs || again.status != m.status)
        abort();
    if (m.type == RDV_REGISTER && !same_reg(&m.reg, &again.reg))
        abort();
    for (size_t i = 0; i < m.n_regs; i++)
        if (!same_reg(&m.regs[i], &again.regs[i]))
            abort();
    if (!same(m.cookie, m.cookie_len, again.cookie, again.cookie_len))
        abort();
    if ((m.type == RDV_UNREGISTER || m.type == RDV_DISCOVER) && !same_str(m.ns, again.ns))
        abort();
    cp2p_peer_record_t rec = {0};
    if (m.type == RDV_REGISTER && m.reg.record && rdv_record_open(m.reg.record, m.reg.record_len, &rec, NULL) == 0)
        cp2p_peer_record_clear(&rec);
    for (size_t i = 0; i < m.n_regs && i < 4; i++)
        if (m.regs[i].record && rdv_record_open(m.regs[i].record, m.regs[i].record_len, &rec, NULL) == 0)
            cp2p_peer_record_clear(&rec);
    rdv_msg_free(&again);
    rdv_msg_free(&m);
    cp2p_buf_free(&b);
    return 0;
}
