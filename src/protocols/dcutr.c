/* DCUtR (libp2p specs relay/DCUtR.md, "The Protocol" and "RPC messages"):
 * the HolePunch codec and one attempt's state machine, without I/O. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/varint.h"
#include "holepunch.pb-c.h"
#include "protocols/dcutr.h"

void cp2p_dcutr_msg_free(cp2p_dcutr_msg_t *m)
{
    cp2p_multiaddr_array_free(m->addrs, m->n_addrs);
    memset(m, 0, sizeof *m);
}

int cp2p_dcutr_encode(int type, const cp2p_multiaddr_t *addrs, size_t n, cp2p_buf_t *out)
{
    Holepunch__Pb__HolePunch pb = HOLEPUNCH__PB__HOLE_PUNCH__INIT;
    ProtobufCBinaryData *bin = n ? calloc(n, sizeof *bin) : NULL;
    if (n && !bin)
        return CP2P_ENOMEM;
    pb.type = (Holepunch__Pb__HolePunch__Type)type;
    /* Each address costs a tag, its length and its bytes: stop before the cap. */
    size_t size = 3;
    for (size_t i = 0; i < n; i++) {
        size_t cost = 1 + cp2p_uvarint_len(addrs[i].len) + addrs[i].len;
        if (size + cost > CP2P_DCUTR_MAX_MESSAGE)
            break;
        size += cost;
        bin[pb.n_obsaddrs++] = (ProtobufCBinaryData){addrs[i].len, addrs[i].bytes};
    }
    pb.obsaddrs = bin;
    size_t len = holepunch__pb__hole_punch__get_packed_size(&pb);
    size_t before = out->len;
    int rc = cp2p_buf_append_uvarint(out, len);
    if (!rc)
        rc = cp2p_buf_reserve(out, len);
    if (!rc)
        out->len += holepunch__pb__hole_punch__pack(&pb, out->data + out->len);
    else
        out->len = before;
    free(bin);
    return rc;
}

int cp2p_dcutr_frame(const uint8_t *p, size_t n, size_t *hdr, size_t *body)
{
    uint64_t len;
    int h = cp2p_uvarint_decode(p, n, &len);
    if (h == CP2P_ETRUNC && n >= 3) /* a prefix for 4 KiB takes two bytes */
        return CP2P_EOVERFLOW;
    if (h < 0)
        return h;
    if (len > CP2P_DCUTR_MAX_MESSAGE)
        return CP2P_EOVERFLOW;
    if (len > n - (size_t)h)
        return CP2P_ETRUNC;
    *hdr = (size_t)h;
    *body = (size_t)len;
    return 0;
}

int cp2p_dcutr_decode(const uint8_t *p, size_t n, cp2p_dcutr_msg_t *out)
{
    memset(out, 0, sizeof *out);
    if (n > CP2P_DCUTR_MAX_MESSAGE)
        return CP2P_EOVERFLOW;
    Holepunch__Pb__HolePunch *pb = holepunch__pb__hole_punch__unpack(NULL, n, p);
    if (!pb)
        return CP2P_EPARSE;
    int rc = 0;
    if (pb->type != HOLEPUNCH__PB__HOLE_PUNCH__TYPE__CONNECT &&
        pb->type != HOLEPUNCH__PB__HOLE_PUNCH__TYPE__SYNC)
        rc = CP2P_EPROTO;
    out->type = (int)pb->type;
    size_t want = pb->n_obsaddrs < CP2P_DCUTR_MAX_ADDRS ? pb->n_obsaddrs : CP2P_DCUTR_MAX_ADDRS;
    if (!rc && want && !(out->addrs = calloc(want, sizeof *out->addrs)))
        rc = CP2P_ENOMEM;
    for (size_t i = 0; !rc && i < pb->n_obsaddrs; i++) {
        /* go-libp2p skips what does not parse; so do we. */
        if (out->n_addrs == want ||
            cp2p_multiaddr_from_bytes(pb->obsaddrs[i].data, pb->obsaddrs[i].len,
                                      &out->addrs[out->n_addrs]) != 0) {
            out->n_dropped++;
            continue;
        }
        out->n_addrs++;
    }
    holepunch__pb__hole_punch__free_unpacked(pb, NULL);
    if (rc)
        cp2p_dcutr_msg_free(out);
    return rc;
}

int cp2p_dcutr_addr_usable(const cp2p_multiaddr_t *ma, int allow_private)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c;
    cp2p_multiaddr_iter_init(&it, ma);
    if (!cp2p_multiaddr_iter_next(&it, &c) || (c.code != CP2P_MA_IP4 && c.code != CP2P_MA_IP6))
        return 0;
    if (!cp2p_multiaddr_iter_next(&it, &c) || c.code != CP2P_MA_TCP)
        return 0;
    if (cp2p_multiaddr_iter_next(&it, &c) && (c.code != CP2P_MA_P2P || cp2p_multiaddr_iter_next(&it, &c)))
        return 0; /* /ws, /p2p-circuit, ...: not a plain TCP address */
    switch (cp2p_multiaddr_ip_scope(ma)) {
    case CP2P_IP_PUBLIC:
        return 1;
    case CP2P_IP_PRIVATE:
    case CP2P_IP_LOOPBACK:
        return allow_private;
    default:
        return 0;
    }
}

/* ---- one attempt ---- */

static int keep_usable(const cp2p_multiaddr_t *in, size_t n, int allow_private,
                       cp2p_multiaddr_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!n)
        return 0;
    cp2p_multiaddr_t *a = calloc(n, sizeof *a);
    if (!a)
        return CP2P_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n && k < CP2P_DCUTR_MAX_ADDRS; i++) {
        if (!cp2p_dcutr_addr_usable(&in[i], allow_private))
            continue;
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++)
            dup = cp2p_multiaddr_equal(&a[j], &in[i]);
        if (dup)
            continue;
        int rc = cp2p_multiaddr_dup(&in[i], &a[k]);
        if (rc) {
            cp2p_multiaddr_array_free(a, k);
            return rc;
        }
        k++;
    }
    *out = a;
    *nout = k;
    return 0;
}

int cp2p_dcutr_engine_init(cp2p_dcutr_engine_t *e, cp2p_dcutr_role_t role, int allow_private,
                           const cp2p_multiaddr_t *ours, size_t n, uint64_t now_ms,
                           uint32_t timeout_ms)
{
    memset(e, 0, sizeof *e);
    e->role = role;
    e->allow_private = allow_private;
    e->state = role == CP2P_DCUTR_ROLE_B ? DCUTR_ST_IDLE : DCUTR_ST_WAIT_CONNECT;
    e->deadline = now_ms + timeout_ms;
    return keep_usable(ours, n, allow_private, &e->ours, &e->n_ours);
}

void cp2p_dcutr_engine_free(cp2p_dcutr_engine_t *e)
{
    cp2p_multiaddr_array_free(e->ours, e->n_ours);
    cp2p_multiaddr_array_free(e->remote, e->n_remote);
    cp2p_buf_free(&e->in);
    memset(e, 0, sizeof *e);
}

static int fail(cp2p_dcutr_engine_t *e, int rc)
{
    e->state = DCUTR_ST_FAILED;
    if (!e->error)
        e->error = rc;
    return rc;
}

int cp2p_dcutr_engine_start(cp2p_dcutr_engine_t *e, uint64_t now_ms, cp2p_buf_t *out)
{
    if (e->role == CP2P_DCUTR_ROLE_A)
        return 0;
    if (e->state != DCUTR_ST_IDLE)
        return CP2P_ESTATE;
    if (!e->n_ours)
        return fail(e, CP2P_ENOTFOUND);
    int rc = cp2p_dcutr_encode(CP2P_DCUTR_CONNECT, e->ours, e->n_ours, out);
    if (rc)
        return fail(e, rc);
    e->t_connect = now_ms;
    e->state = DCUTR_ST_WAIT_CONNECT;
    return 0;
}

/* One whole message. */
static int on_message(cp2p_dcutr_engine_t *e, const cp2p_dcutr_msg_t *m, uint64_t now_ms,
                      cp2p_buf_t *out)
{
    int rc;
    switch (e->state) {
    case DCUTR_ST_WAIT_CONNECT:
        if (m->type != CP2P_DCUTR_CONNECT)
            return fail(e, CP2P_EPROTO);
        if ((rc = keep_usable(m->addrs, m->n_addrs, e->allow_private, &e->remote, &e->n_remote)))
            return fail(e, rc);
        /* Nothing to dial: both sides give up (go: "didn't receive any
         * public addresses in CONNECT"). */
        if (!e->n_remote)
            return fail(e, CP2P_ENOTFOUND);
        if (e->role == CP2P_DCUTR_ROLE_A) {
            if (!e->n_ours)
                return fail(e, CP2P_ENOTFOUND);
            if ((rc = cp2p_dcutr_encode(CP2P_DCUTR_CONNECT, e->ours, e->n_ours, out)))
                return fail(e, rc);
            e->state = DCUTR_ST_WAIT_SYNC;
            return 0;
        }
        e->rtt_ms = now_ms - e->t_connect;
        if ((rc = cp2p_dcutr_encode(CP2P_DCUTR_SYNC, NULL, 0, out)))
            return fail(e, rc);
        e->dial_at = now_ms + e->rtt_ms / 2;
        e->state = DCUTR_ST_WAIT_TIMER;
        return 0;
    case DCUTR_ST_WAIT_SYNC:
        if (m->type != CP2P_DCUTR_SYNC)
            return fail(e, CP2P_EPROTO);
        e->state = DCUTR_ST_DIAL;
        return 1;
    default:
        /* Anything after the last message of our role is a violation. */
        return fail(e, CP2P_EPROTO);
    }
}

int cp2p_dcutr_engine_input(cp2p_dcutr_engine_t *e, const uint8_t *p, size_t n, uint64_t now_ms,
                            cp2p_buf_t *out)
{
    if (e->state == DCUTR_ST_FAILED)
        return e->error;
    if (e->state == DCUTR_ST_IDLE || e->state == DCUTR_ST_DIAL || e->state == DCUTR_ST_WAIT_TIMER)
        return n ? fail(e, CP2P_EPROTO) : 0;
    int result = 0;
    while (n && result == 0) {
        /* Keep at most one frame: the prefix and a body under the cap. */
        size_t room = 3 + CP2P_DCUTR_MAX_MESSAGE - e->in.len, take = n < room ? n : room;
        if (cp2p_buf_append(&e->in, p, take))
            return fail(e, CP2P_ENOMEM);
        p += take;
        n -= take;
        size_t hdr, body;
        int rc;
        while ((rc = cp2p_dcutr_frame(e->in.data, e->in.len, &hdr, &body)) == 0) {
            cp2p_dcutr_msg_t m;
            if ((rc = cp2p_dcutr_decode(e->in.data + hdr, body, &m)))
                return fail(e, rc);
            rc = on_message(e, &m, now_ms, out);
            cp2p_dcutr_msg_free(&m);
            cp2p_buf_consume(&e->in, hdr + body);
            if (rc)
                return rc;
            if (e->in.len && (e->state == DCUTR_ST_WAIT_TIMER || e->state == DCUTR_ST_DIAL))
                return fail(e, CP2P_EPROTO);
        }
        if (rc != CP2P_ETRUNC)
            return fail(e, rc);
        if (n && (e->state == DCUTR_ST_WAIT_TIMER || e->state == DCUTR_ST_DIAL))
            return fail(e, CP2P_EPROTO);
    }
    return result;
}

int cp2p_dcutr_engine_eof(cp2p_dcutr_engine_t *e)
{
    if (e->state == DCUTR_ST_DIAL || e->state == DCUTR_ST_WAIT_TIMER)
        return e->in.len ? fail(e, CP2P_EPROTO) : 0;
    return fail(e, e->state == DCUTR_ST_FAILED ? e->error : CP2P_ECLOSED);
}

uint64_t cp2p_dcutr_engine_next_ms(const cp2p_dcutr_engine_t *e)
{
    switch (e->state) {
    case DCUTR_ST_WAIT_TIMER:
        return e->dial_at;
    case DCUTR_ST_WAIT_CONNECT:
    case DCUTR_ST_WAIT_SYNC:
        return e->deadline;
    default:
        return UINT64_MAX;
    }
}

int cp2p_dcutr_engine_tick(cp2p_dcutr_engine_t *e, uint64_t now_ms)
{
    if (e->state == DCUTR_ST_WAIT_TIMER) {
        if (now_ms < e->dial_at)
            return 0;
        e->state = DCUTR_ST_DIAL;
        return 1;
    }
    if ((e->state == DCUTR_ST_WAIT_CONNECT || e->state == DCUTR_ST_WAIT_SYNC) &&
        now_ms >= e->deadline)
        return fail(e, CP2P_ETIMEOUT);
    return 0;
}
