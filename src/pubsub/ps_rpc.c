/* Pubsub RPC codec (libp2p pubsub spec "The RPC" and "The Message";
 * gossipsub v1.0 "Protobuf", v1.1 "PRUNE Backoff and Peer Exchange", v1.2
 * "Protobuf Extension"). Written on the wire walker of core/pbscan.h rather
 * than protobuf-c: decoding points into the received bytes and allocates
 * one block sized by a first counting pass, so a small RPC cannot make us
 * allocate much, and a message forwarded is the same bytes we received. */
#include "pubsub/ps_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "core/pbscan.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"

/* Field numbers. */
enum { RPC_SUBS = 1, RPC_PUBLISH = 2, RPC_CONTROL = 3 };
enum { SUB_SUBSCRIBE = 1, SUB_TOPIC = 2 };
enum { MSG_FROM = 1, MSG_DATA = 2, MSG_SEQNO = 3, MSG_TOPIC = 4, MSG_SIG = 5, MSG_KEY = 6 };
enum { CTL_IHAVE = 1, CTL_IWANT = 2, CTL_GRAFT = 3, CTL_PRUNE = 4, CTL_IDONTWANT = 5 };
enum { IHAVE_TOPIC = 1, IHAVE_IDS = 2 };
enum { IWANT_IDS = 1 };
enum { PRUNE_TOPIC = 1, PRUNE_PEERS = 2, PRUNE_BACKOFF = 3 };
enum { PX_PEER = 1, PX_RECORD = 2 };

int ps_rpc_frame(const uint8_t *p, size_t n, size_t max, ps_bytes_t *body, size_t *used)
{
    uint64_t len;
    int k = cp2p_uvarint_decode(p, n, &len);
    if (k == CP2P_ETRUNC)
        return 0;
    if (k < 0)
        return CP2P_EPARSE;
    if (len > max)
        return CP2P_EOVERFLOW;
    if (n - (size_t)k < len)
        return 0;
    body->p = p + k;
    body->n = (size_t)len;
    *used = (size_t)k + (size_t)len;
    return 1;
}

/* The walk of one nested message: every field must have the wire type its
 * number has in the schema (wire[num], 0xff for unknown numbers, which are
 * skipped whatever their type). */
static int walk_check(const uint8_t *p, size_t n, const uint8_t *wire, size_t n_wire)
{
    size_t off = 0;
    cp2p_pb_field_t f;
    int rc;
    while ((rc = cp2p_pb_next(p, n, &off, &f)) == 1)
        if (f.num < n_wire && wire[f.num] != 0xff && wire[f.num] != f.wire)
            return CP2P_EPARSE;
    return rc;
}

static const uint8_t SUB_WIRE[] = {0xff, 0, 2};
static const uint8_t MSG_WIRE[] = {0xff, 2, 2, 2, 2, 2, 2};
static const uint8_t CTL_WIRE[] = {0xff, 2, 2, 2, 2, 2};
static const uint8_t IHAVE_WIRE[] = {0xff, 2, 2};
static const uint8_t IWANT_WIRE[] = {0xff, 2};
static const uint8_t PRUNE_WIRE[] = {0xff, 2, 2, 0};
static const uint8_t PX_WIRE[] = {0xff, 2, 2};
static const uint8_t RPC_WIRE[] = {0xff, 2, 2, 2};

typedef struct counts {
    size_t subs, msgs, ihave, iwant, idontwant, graft, prune, ids, px;
} counts_t;

/* Pass 1 over a ControlMessage: check it and count its entries. */
static int count_control(const uint8_t *p, size_t n, counts_t *c)
{
    int rc = walk_check(p, n, CTL_WIRE, sizeof CTL_WIRE);
    if (rc < 0)
        return rc;
    size_t off = 0;
    cp2p_pb_field_t f, g;
    while (cp2p_pb_next(p, n, &off, &f) == 1) {
        size_t o2 = 0;
        switch (f.num) {
        case CTL_IHAVE:
        case CTL_IWANT:
        case CTL_IDONTWANT: {
            const uint8_t *w = f.num == CTL_IHAVE ? IHAVE_WIRE : IWANT_WIRE;
            size_t nw = f.num == CTL_IHAVE ? sizeof IHAVE_WIRE : sizeof IWANT_WIRE;
            uint32_t ids = f.num == CTL_IHAVE ? IHAVE_IDS : IWANT_IDS;
            if ((rc = walk_check(f.data, f.len, w, nw)) < 0)
                return rc;
            while (cp2p_pb_next(f.data, f.len, &o2, &g) == 1)
                c->ids += g.num == ids;
            *(f.num == CTL_IHAVE ? &c->ihave : f.num == CTL_IWANT ? &c->iwant : &c->idontwant) += 1;
            break;
        }
        case CTL_GRAFT:
            if ((rc = walk_check(f.data, f.len, IHAVE_WIRE, 2)) < 0)
                return rc;
            c->graft++;
            break;
        case CTL_PRUNE:
            if ((rc = walk_check(f.data, f.len, PRUNE_WIRE, sizeof PRUNE_WIRE)) < 0)
                return rc;
            while (cp2p_pb_next(f.data, f.len, &o2, &g) == 1)
                if (g.num == PRUNE_PEERS) {
                    if ((rc = walk_check(g.data, g.len, PX_WIRE, sizeof PX_WIRE)) < 0)
                        return rc;
                    c->px++;
                }
            c->prune++;
            break;
        }
    }
    return 0;
}

static int count_rpc(const uint8_t *p, size_t n, counts_t *c)
{
    int rc = walk_check(p, n, RPC_WIRE, sizeof RPC_WIRE);
    if (rc < 0)
        return rc;
    size_t off = 0;
    cp2p_pb_field_t f;
    while (cp2p_pb_next(p, n, &off, &f) == 1) {
        if (f.num == RPC_SUBS) {
            if ((rc = walk_check(f.data, f.len, SUB_WIRE, sizeof SUB_WIRE)) < 0)
                return rc;
            c->subs++;
        } else if (f.num == RPC_PUBLISH) {
            if ((rc = walk_check(f.data, f.len, MSG_WIRE, sizeof MSG_WIRE)) < 0)
                return rc;
            c->msgs++;
        } else if (f.num == RPC_CONTROL) {
            if ((rc = count_control(f.data, f.len, c)) < 0)
                return rc;
        }
    }
    if (c->subs > PS_RPC_MAX_SUBS || c->msgs > PS_RPC_MAX_MSGS ||
        c->ihave + c->iwant + c->idontwant + c->graft + c->prune > PS_RPC_MAX_CONTROL ||
        c->ids > PS_RPC_MAX_IDS || c->px > PS_RPC_MAX_PX)
        return CP2P_EOVERFLOW;
    return 0;
}

int ps_msg_decode(const uint8_t *p, size_t n, ps_msg_t *m)
{
    memset(m, 0, sizeof *m);
    int rc = walk_check(p, n, MSG_WIRE, sizeof MSG_WIRE);
    if (rc < 0)
        return rc;
    m->raw.p = p;
    m->raw.n = n;
    size_t off = 0;
    cp2p_pb_field_t f;
    while (cp2p_pb_next(p, n, &off, &f) == 1) {
        ps_bytes_t *dst;
        unsigned bit;
        switch (f.num) {
        case MSG_FROM: dst = &m->from, bit = PS_F_FROM; break;
        case MSG_DATA: dst = &m->data, bit = PS_F_DATA; break;
        case MSG_SEQNO: dst = &m->seqno, bit = PS_F_SEQNO; break;
        case MSG_TOPIC: dst = &m->topic, bit = PS_F_TOPIC; break;
        case MSG_SIG: dst = &m->sig, bit = PS_F_SIG; break;
        case MSG_KEY: dst = &m->key, bit = PS_F_KEY; break;
        default: continue;
        }
        /* A repeated scalar field: protobuf keeps the last one. */
        dst->p = f.data;
        dst->n = f.len;
        m->has |= bit;
    }
    return 0;
}

/* Fills ids[0..) with the fields numbered num of p; returns how many. */
static size_t take_ids(const uint8_t *p, size_t n, uint32_t num, ps_bytes_t *ids)
{
    size_t off = 0, k = 0;
    cp2p_pb_field_t f;
    while (cp2p_pb_next(p, n, &off, &f) == 1)
        if (f.num == num)
            ids[k++] = (ps_bytes_t){f.data, f.len};
    return k;
}

/* The last field numbered num of p (an optional string), or an empty one. */
static ps_bytes_t last_bytes(const uint8_t *p, size_t n, uint32_t num)
{
    ps_bytes_t b = {p, 0};
    size_t off = 0;
    cp2p_pb_field_t f;
    while (cp2p_pb_next(p, n, &off, &f) == 1)
        if (f.num == num && f.wire == 2)
            b = (ps_bytes_t){f.data, f.len};
    return b;
}

typedef struct cursor {
    ps_bytes_t *ids;
    ps_px_t *px;
} cursor_t;

static void fill_control(const uint8_t *p, size_t n, ps_rpc_t *r, cursor_t *c)
{
    size_t off = 0;
    cp2p_pb_field_t f, g;
    while (cp2p_pb_next(p, n, &off, &f) == 1) {
        switch (f.num) {
        case CTL_IHAVE: {
            ps_ids_t *e = &r->ihave[r->n_ihave++];
            e->topic = last_bytes(f.data, f.len, IHAVE_TOPIC);
            e->ids = c->ids;
            e->n_ids = take_ids(f.data, f.len, IHAVE_IDS, c->ids);
            c->ids += e->n_ids;
            break;
        }
        case CTL_IWANT:
        case CTL_IDONTWANT: {
            ps_ids_t *e = f.num == CTL_IWANT ? &r->iwant[r->n_iwant++]
                                             : &r->idontwant[r->n_idontwant++];
            e->ids = c->ids;
            e->n_ids = take_ids(f.data, f.len, IWANT_IDS, c->ids);
            c->ids += e->n_ids;
            break;
        }
        case CTL_GRAFT:
            r->graft[r->n_graft++] = last_bytes(f.data, f.len, IHAVE_TOPIC);
            break;
        case CTL_PRUNE: {
            ps_prune_t *e = &r->prune[r->n_prune++];
            e->topic = last_bytes(f.data, f.len, PRUNE_TOPIC);
            e->px = c->px;
            size_t o2 = 0;
            while (cp2p_pb_next(f.data, f.len, &o2, &g) == 1) {
                if (g.num == PRUNE_BACKOFF) {
                    e->backoff_s = g.value;
                    e->has_backoff = 1;
                } else if (g.num == PRUNE_PEERS) {
                    ps_px_t *x = &e->px[e->n_px++];
                    x->peer = last_bytes(g.data, g.len, PX_PEER);
                    x->record = last_bytes(g.data, g.len, PX_RECORD);
                }
            }
            c->px += e->n_px;
            break;
        }
        }
    }
}

int ps_rpc_decode(const uint8_t *p, size_t n, ps_rpc_t *r)
{
    memset(r, 0, sizeof *r);
    counts_t c = {0};
    int rc = count_rpc(p, n, &c);
    if (rc < 0)
        return rc;
    size_t n_ids_lists = c.ihave + c.iwant + c.idontwant;
    size_t size = c.subs * sizeof(ps_sub_t) + c.msgs * sizeof(ps_msg_t) +
                  n_ids_lists * sizeof(ps_ids_t) + c.graft * sizeof(ps_bytes_t) +
                  c.prune * sizeof(ps_prune_t) + c.ids * sizeof(ps_bytes_t) +
                  c.px * sizeof(ps_px_t);
    if (size == 0)
        return 0;
    /* Every element type is pointers and sizes: one alignment fits all. */
    uint8_t *b = calloc(1, size);
    if (!b)
        return CP2P_ENOMEM;
    r->block_ = b;
    r->subs = (ps_sub_t *)b, b += c.subs * sizeof(ps_sub_t);
    r->msgs = (ps_msg_t *)b, b += c.msgs * sizeof(ps_msg_t);
    r->ihave = (ps_ids_t *)b, b += c.ihave * sizeof(ps_ids_t);
    r->iwant = (ps_ids_t *)b, b += c.iwant * sizeof(ps_ids_t);
    r->idontwant = (ps_ids_t *)b, b += c.idontwant * sizeof(ps_ids_t);
    r->graft = (ps_bytes_t *)b, b += c.graft * sizeof(ps_bytes_t);
    r->prune = (ps_prune_t *)b, b += c.prune * sizeof(ps_prune_t);
    cursor_t cur = {(ps_bytes_t *)b, NULL};
    b += c.ids * sizeof(ps_bytes_t);
    cur.px = (ps_px_t *)b;

    size_t off = 0;
    cp2p_pb_field_t f, g;
    while (cp2p_pb_next(p, n, &off, &f) == 1) {
        if (f.num == RPC_SUBS) {
            ps_sub_t *s = &r->subs[r->n_subs++];
            size_t o2 = 0;
            s->topic = (ps_bytes_t){f.data, 0};
            while (cp2p_pb_next(f.data, f.len, &o2, &g) == 1) {
                if (g.num == SUB_SUBSCRIBE)
                    s->subscribe = g.value != 0;
                else if (g.num == SUB_TOPIC)
                    s->topic = (ps_bytes_t){g.data, g.len};
            }
        } else if (f.num == RPC_PUBLISH) {
            ps_msg_decode(f.data, f.len, &r->msgs[r->n_msgs++]);
        } else if (f.num == RPC_CONTROL) {
            fill_control(f.data, f.len, r, &cur);
        }
    }
    return 0;
}

void ps_rpc_clear(ps_rpc_t *r)
{
    free(r->block_);
    memset(r, 0, sizeof *r);
}

/* --- encoding --- */

static int put_tag(cp2p_buf_t *b, uint32_t num, unsigned wire)
{
    return cp2p_buf_append_uvarint(b, (uint64_t)num << 3 | wire);
}

static int put_bytes(cp2p_buf_t *b, uint32_t num, const void *p, size_t n)
{
    int rc = put_tag(b, num, 2);
    return rc ? rc : cp2p_buf_append_lp(b, p, n);
}

static int put_varint(cp2p_buf_t *b, uint32_t num, uint64_t v)
{
    int rc = put_tag(b, num, 0);
    return rc ? rc : cp2p_buf_append_uvarint(b, v);
}

/* Appends field num holding the nested message in tmp, then empties tmp. */
static int put_nested(cp2p_buf_t *b, uint32_t num, cp2p_buf_t *tmp)
{
    int rc = put_bytes(b, num, tmp->data, tmp->len);
    cp2p_buf_reset(tmp);
    return rc;
}

int ps_msg_encode(const ps_msg_t *m, int with_sig, cp2p_buf_t *out)
{
    const struct {
        unsigned bit;
        uint32_t num;
        const ps_bytes_t *v;
    } f[] = {{PS_F_FROM, MSG_FROM, &m->from},   {PS_F_DATA, MSG_DATA, &m->data},
             {PS_F_SEQNO, MSG_SEQNO, &m->seqno}, {PS_F_TOPIC, MSG_TOPIC, &m->topic},
             {PS_F_SIG, MSG_SIG, &m->sig},       {PS_F_KEY, MSG_KEY, &m->key}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!(m->has & f[i].bit) || (!with_sig && (f[i].bit & (PS_F_SIG | PS_F_KEY))))
            continue;
        int rc = put_bytes(out, f[i].num, f[i].v->p, f[i].v->n);
        if (rc)
            return rc;
    }
    return 0;
}

int ps_build_sub(ps_rpc_build_t *b, const char *topic, size_t len, int subscribe)
{
    cp2p_buf_t t = {0};
    int rc = put_varint(&t, SUB_SUBSCRIBE, subscribe ? 1 : 0);
    if (!rc)
        rc = put_bytes(&t, SUB_TOPIC, topic, len);
    if (!rc)
        rc = put_bytes(&b->body, RPC_SUBS, t.data, t.len);
    cp2p_buf_free(&t);
    b->entries += !rc;
    return rc;
}

int ps_build_msg(ps_rpc_build_t *b, const uint8_t *raw, size_t n)
{
    int rc = put_bytes(&b->body, RPC_PUBLISH, raw, n);
    b->entries += !rc;
    return rc;
}

static int build_ids(ps_rpc_build_t *b, uint32_t ctl_num, const char *topic, size_t len,
                     const ps_bytes_t *ids, size_t n)
{
    cp2p_buf_t t = {0};
    int rc = 0;
    uint32_t ids_num = IWANT_IDS;
    if (ctl_num == CTL_IHAVE) {
        rc = put_bytes(&t, IHAVE_TOPIC, topic, len);
        ids_num = IHAVE_IDS;
    }
    for (size_t i = 0; i < n && !rc; i++)
        rc = put_bytes(&t, ids_num, ids[i].p, ids[i].n);
    if (!rc)
        rc = put_nested(&b->ctl, ctl_num, &t);
    cp2p_buf_free(&t);
    b->entries += !rc;
    return rc;
}

int ps_build_ihave(ps_rpc_build_t *b, const char *topic, size_t len, const ps_bytes_t *ids,
                   size_t n)
{
    return build_ids(b, CTL_IHAVE, topic, len, ids, n);
}

int ps_build_iwant(ps_rpc_build_t *b, const ps_bytes_t *ids, size_t n)
{
    return build_ids(b, CTL_IWANT, NULL, 0, ids, n);
}

int ps_build_idontwant(ps_rpc_build_t *b, const ps_bytes_t *ids, size_t n)
{
    return build_ids(b, CTL_IDONTWANT, NULL, 0, ids, n);
}

int ps_build_graft(ps_rpc_build_t *b, const char *topic, size_t len)
{
    cp2p_buf_t t = {0};
    int rc = put_bytes(&t, IHAVE_TOPIC, topic, len);
    if (!rc)
        rc = put_nested(&b->ctl, CTL_GRAFT, &t);
    cp2p_buf_free(&t);
    b->entries += !rc;
    return rc;
}

int ps_build_prune(ps_rpc_build_t *b, const char *topic, size_t len, uint64_t backoff_s,
                   const ps_px_t *px, size_t n_px)
{
    cp2p_buf_t t = {0}, x = {0};
    int rc = put_bytes(&t, PRUNE_TOPIC, topic, len);
    for (size_t i = 0; i < n_px && !rc; i++) {
        rc = put_bytes(&x, PX_PEER, px[i].peer.p, px[i].peer.n);
        if (!rc && px[i].record.n)
            rc = put_bytes(&x, PX_RECORD, px[i].record.p, px[i].record.n);
        if (!rc)
            rc = put_nested(&t, PRUNE_PEERS, &x);
    }
    if (!rc)
        rc = put_varint(&t, PRUNE_BACKOFF, backoff_s);
    if (!rc)
        rc = put_nested(&b->ctl, CTL_PRUNE, &t);
    cp2p_buf_free(&t);
    cp2p_buf_free(&x);
    b->entries += !rc;
    return rc;
}

int ps_build_empty(const ps_rpc_build_t *b)
{
    return b->body.len == 0 && b->ctl.len == 0;
}

int ps_build_finish(ps_rpc_build_t *b, cp2p_buf_t *out)
{
    int rc = 0;
    if (b->ctl.len)
        rc = put_nested(&b->body, RPC_CONTROL, &b->ctl);
    if (!rc)
        rc = cp2p_buf_append_lp(out, b->body.data, b->body.len);
    ps_build_reset(b);
    return rc;
}

void ps_build_reset(ps_rpc_build_t *b)
{
    cp2p_buf_reset(&b->body);
    cp2p_buf_reset(&b->ctl);
    b->entries = 0;
}

void ps_build_free(ps_rpc_build_t *b)
{
    cp2p_buf_free(&b->body);
    cp2p_buf_free(&b->ctl);
    b->entries = 0;
}
