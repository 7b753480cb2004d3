/* AutoNAT v1 (libp2p specs autonat/autonat-v1.md): the message codec, the
 * server's choice of dial-back addresses and rate limits, and the client's
 * reachability with confidence (go-libp2p's rules). Sans-I/O. */
#include <stdlib.h>
#include <string.h>

#include "autonat_v1.pb-c.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"
#include "protocols/autonat_engine.h"

/* --- codec --- */

const char *cp2p_autonat_status_name(int status)
{
    switch (status) {
    case CP2P_AUTONAT_OK: return "OK";
    case CP2P_AUTONAT_E_DIAL_ERROR: return "E_DIAL_ERROR";
    case CP2P_AUTONAT_E_DIAL_REFUSED: return "E_DIAL_REFUSED";
    case CP2P_AUTONAT_E_BAD_REQUEST: return "E_BAD_REQUEST";
    case CP2P_AUTONAT_E_INTERNAL_ERROR: return "E_INTERNAL_ERROR";
    default: return "unknown status";
    }
}

void cp2p_autonat_msg_free(cp2p_autonat_msg_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_addrs; i++)
        cp2p_multiaddr_free(&m->addrs[i]);
    m->n_addrs = 0;
    cp2p_multiaddr_free(&m->addr);
}

int cp2p_autonat_encode(const cp2p_autonat_msg_t *m, cp2p_buf_t *out)
{
    Autonat__Pb__Message pb = AUTONAT__PB__MESSAGE__INIT;
    Autonat__Pb__Message__Dial dial = AUTONAT__PB__MESSAGE__DIAL__INIT;
    Autonat__Pb__Message__PeerInfo info = AUTONAT__PB__MESSAGE__PEER_INFO__INIT;
    Autonat__Pb__Message__DialResponse resp = AUTONAT__PB__MESSAGE__DIAL_RESPONSE__INIT;
    ProtobufCBinaryData addrs[CP2P_AUTONAT_MAX_ADDRS];
    if (m->n_addrs > CP2P_AUTONAT_MAX_ADDRS)
        return CP2P_EINVAL;
    if (m->type >= 0) {
        pb.has_type = 1;
        pb.type = (Autonat__Pb__Message__MessageType)m->type;
    }
    if (m->has_dial) {
        if (m->has_peer_id) {
            info.has_id = 1;
            info.id = (ProtobufCBinaryData){m->peer.len, (uint8_t *)m->peer.bytes};
        }
        for (size_t i = 0; i < m->n_addrs; i++)
            addrs[i] = (ProtobufCBinaryData){m->addrs[i].len, m->addrs[i].bytes};
        info.n_addrs = m->n_addrs;
        info.addrs = addrs;
        dial.peer = &info;
        pb.dial = &dial;
    }
    if (m->has_response) {
        resp.has_status = m->status >= 0;
        resp.status = (Autonat__Pb__Message__ResponseStatus)m->status;
        if (m->text[0])
            resp.statustext = (char *)m->text;
        if (m->addr.len) {
            resp.has_addr = 1;
            resp.addr = (ProtobufCBinaryData){m->addr.len, m->addr.bytes};
        }
        pb.dialresponse = &resp;
    }
    size_t len = autonat__pb__message__get_packed_size(&pb);
    if (len > CP2P_AUTONAT_MAX_MESSAGE)
        return CP2P_EOVERFLOW;
    int rc = cp2p_buf_reserve(out, len + CP2P_UVARINT_MAX);
    if (rc)
        return rc;
    out->len += cp2p_uvarint_encode(len, out->data + out->len);
    out->len += autonat__pb__message__pack(&pb, out->data + out->len);
    return 0;
}

int cp2p_autonat_decode(const uint8_t *p, size_t n, cp2p_autonat_msg_t *out, size_t *used)
{
    memset(out, 0, sizeof *out);
    out->type = -1;
    uint64_t len;
    int k = cp2p_uvarint_decode(p, n, &len);
    if (k == CP2P_ETRUNC && n >= 3) /* 3 varint bytes already say more than 4096 */
        return CP2P_EOVERFLOW;
    if (k < 0)
        return k;
    if (len > CP2P_AUTONAT_MAX_MESSAGE)
        return CP2P_EOVERFLOW;
    if (n - (size_t)k < len)
        return CP2P_ETRUNC;
    Autonat__Pb__Message *pb = autonat__pb__message__unpack(NULL, len, p + k);
    if (!pb)
        return CP2P_EPARSE;
    int rc = 0;
    /* An unknown type is no type: the server refuses it as a bad request. */
    if (pb->has_type && (pb->type == 0 || pb->type == 1))
        out->type = pb->type;
    if (pb->dial) {
        out->has_dial = 1;
        Autonat__Pb__Message__PeerInfo *info = pb->dial->peer;
        if (info && info->has_id) {
            if (cp2p_peer_id_from_bytes(info->id.data, info->id.len, &out->peer) < 0)
                rc = CP2P_EPARSE;
            else
                out->has_peer_id = 1;
        }
        for (size_t i = 0; !rc && info && i < info->n_addrs; i++) {
            if (out->n_addrs == CP2P_AUTONAT_MAX_ADDRS ||
                cp2p_multiaddr_from_bytes(info->addrs[i].data, info->addrs[i].len,
                                          &out->addrs[out->n_addrs]) < 0) {
                out->n_addrs_dropped++;
                continue;
            }
            out->n_addrs++;
        }
    }
    if (!rc && pb->dialresponse) {
        Autonat__Pb__Message__DialResponse *r = pb->dialresponse;
        out->has_response = 1;
        out->status = r->has_status ? (int)r->status : -1;
        if (r->statustext) {
            size_t tl = strlen(r->statustext);
            if (tl >= sizeof out->text)
                tl = sizeof out->text - 1;
            memcpy(out->text, r->statustext, tl);
            out->text[tl] = 0;
        }
        if (r->has_addr && r->addr.len &&
            cp2p_multiaddr_from_bytes(r->addr.data, r->addr.len, &out->addr) < 0)
            out->addr = (cp2p_multiaddr_t){0}; /* a bad address only loses the address */
    }
    autonat__pb__message__free_unpacked(pb, NULL);
    if (rc) {
        cp2p_autonat_msg_free(out);
        return rc;
    }
    if (used)
        *used = (size_t)k + len;
    return 0;
}

/* --- rate limits --- */

int an_throttle_init(an_throttle_t *t, uint32_t global_max, uint32_t peer_max, uint32_t reset_ms)
{
    memset(t, 0, sizeof *t);
    t->global_max = global_max;
    t->peer_max = peer_max;
    t->reset_ms = reset_ms;
    t->peers = calloc(global_max ? global_max : 1, sizeof *t->peers);
    return t->peers ? 0 : CP2P_ENOMEM;
}

void an_throttle_free(an_throttle_t *t)
{
    free(t->peers);
    t->peers = NULL;
}

int an_throttle_take(an_throttle_t *t, const cp2p_peer_id_t *peer, uint64_t now_ms)
{
    if (now_ms >= t->reset_at) {
        t->global = 0;
        t->npeers = 0;
        t->reset_at = now_ms + t->reset_ms;
    }
    if (t->global >= t->global_max)
        return CP2P_ELIMIT;
    struct an_peer_count *pc = NULL;
    for (size_t i = 0; i < t->npeers && !pc; i++)
        if (cp2p_peer_id_equal(&t->peers[i].id, peer))
            pc = &t->peers[i];
    if (pc && pc->n >= t->peer_max)
        return CP2P_ELIMIT;
    if (!pc) { /* npeers <= global < global_max */
        pc = &t->peers[t->npeers++];
        pc->id = *peer;
        pc->n = 0;
    }
    pc->n++;
    t->global++;
    return 0;
}

/* --- the server's decision --- */

/* The leading IP component, or 0 if there is none. */
static int leading_ip(const cp2p_multiaddr_t *ma, cp2p_multiaddr_component_t *c)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_iter_init(&it, ma);
    if (cp2p_multiaddr_iter_next(&it, c) <= 0)
        return 0;
    return c->code == CP2P_MA_IP4 || c->code == CP2P_MA_IP6;
}

static int scope_ok(const cp2p_multiaddr_t *ma, int allow_private)
{
    cp2p_ip_scope_t s = cp2p_multiaddr_ip_scope(ma);
    return s == CP2P_IP_PUBLIC || (allow_private && (s == CP2P_IP_PRIVATE || s == CP2P_IP_LOOPBACK));
}

/* A copy of a without its /p2p/ (which must be the remote's), or CP2P_EINVAL
 * if it is relayed or names another peer. */
static int dialable_copy(const cp2p_multiaddr_t *a, const cp2p_peer_id_t *remote,
                         cp2p_multiaddr_t *out)
{
    cp2p_multiaddr_component_t c;
    if (cp2p_multiaddr_get(a, CP2P_MA_P2P_CIRCUIT, &c) == 0)
        return CP2P_EINVAL;
    if (cp2p_multiaddr_get(a, CP2P_MA_P2P, &c) == 0) {
        cp2p_peer_id_t id;
        if (cp2p_peer_id_from_bytes(c.value, c.value_len, &id) < 0 || !cp2p_peer_id_equal(&id, remote))
            return CP2P_EINVAL;
    }
    int rc = cp2p_multiaddr_dup(a, out);
    if (!rc && cp2p_multiaddr_get(out, CP2P_MA_P2P, &c) == 0)
        rc = cp2p_multiaddr_decapsulate_code(out, CP2P_MA_P2P);
    if (rc)
        cp2p_multiaddr_free(out);
    return rc;
}

int an_dialable_copy(const cp2p_multiaddr_t *a, const cp2p_peer_id_t *remote, cp2p_multiaddr_t *out)
{
    return dialable_copy(a, remote, out);
}

static void refuse(an_verdict_t *v, int status, const char *text)
{
    v->dial = 0;
    v->status = status;
    v->text = text;
}

void an_verdict_free(an_verdict_t *v)
{
    for (size_t i = 0; i < v->ndial; i++)
        cp2p_multiaddr_free(&v->dial_addrs[i]);
    v->ndial = 0;
}

void an_server_decide(an_throttle_t *t, uint64_t now_ms, int allow_private,
                      const cp2p_peer_id_t *remote, const cp2p_multiaddr_t *observed,
                      const cp2p_autonat_msg_t *req, an_verdict_t *v)
{
    memset(v, 0, sizeof *v);
    if (req->type != 0 || !req->has_dial) {
        refuse(v, CP2P_AUTONAT_E_BAD_REQUEST, "expected a dial message");
        return;
    }
    if (req->has_peer_id && !cp2p_peer_id_equal(&req->peer, remote)) {
        refuse(v, CP2P_AUTONAT_E_BAD_REQUEST, "peer id mismatch");
        return;
    }
    cp2p_multiaddr_component_t oip;
    if (!observed || !leading_ip(observed, &oip)) {
        refuse(v, CP2P_AUTONAT_E_INTERNAL_ERROR, "expected an IP address");
        return;
    }
    if (!scope_ok(observed, allow_private) ||
        cp2p_multiaddr_get(observed, CP2P_MA_P2P_CIRCUIT, &oip) == 0) {
        refuse(v, CP2P_AUTONAT_E_DIAL_REFUSED, "refusing to dial peer with blocked observed address");
        return;
    }
    leading_ip(observed, &oip);
    /* The observed address first, as go-libp2p: with port reuse it is the
     * client's listening port. */
    const cp2p_multiaddr_t *cand[1 + CP2P_AUTONAT_MAX_ADDRS];
    size_t nc = 0;
    cand[nc++] = observed;
    for (size_t i = 0; i < req->n_addrs; i++)
        cand[nc++] = &req->addrs[i];
    v->refused = req->n_addrs_dropped;
    for (size_t i = 0; i < nc && v->ndial < CP2P_AUTONAT_MAX_ADDRS; i++) {
        cp2p_multiaddr_component_t ip;
        /* The spec: never an IP other than the observed one (a client could
         * make us attack a third party). */
        if (!leading_ip(cand[i], &ip) || ip.code != oip.code || ip.value_len != oip.value_len ||
            memcmp(ip.value, oip.value, ip.value_len) != 0 || !scope_ok(cand[i], allow_private)) {
            v->refused++;
            continue;
        }
        cp2p_multiaddr_t copy;
        if (dialable_copy(cand[i], remote, &copy) < 0) {
            v->refused++;
            continue;
        }
        int dup = 0;
        for (size_t j = 0; j < v->ndial && !dup; j++)
            dup = cp2p_multiaddr_equal(&v->dial_addrs[j], &copy);
        if (dup) {
            cp2p_multiaddr_free(&copy);
            continue;
        }
        v->dial_addrs[v->ndial++] = copy;
    }
    if (!v->ndial) {
        refuse(v, CP2P_AUTONAT_E_DIAL_REFUSED, "no dialable addresses");
        return;
    }
    if (an_throttle_take(t, remote, now_ms) < 0) {
        an_verdict_free(v);
        v->rate_limited = 1;
        refuse(v, CP2P_AUTONAT_E_DIAL_REFUSED, "too many dials");
        return;
    }
    v->dial = 1;
}

/* --- v2: the server's choice --- */

int an2_pick(const cp2p_multiaddr_t *observed, const cp2p_autonat2_msg_t *req, int allow_private,
             const cp2p_peer_id_t *remote, size_t *idx, int *need_data)
{
    cp2p_multiaddr_component_t oip, ip, c;
    int have_obs = observed && leading_ip(observed, &oip);
    for (size_t i = 0; i < req->n_addrs; i++) {
        const cp2p_multiaddr_t *a = &req->addrs[i];
        /* What our dialer can dial: ip4/ip6 over tcp, not relayed, not someone else's. */
        if (!a->len || !leading_ip(a, &ip) || cp2p_multiaddr_get(a, CP2P_MA_TCP, &c) < 0 ||
            !scope_ok(a, allow_private))
            continue;
        cp2p_multiaddr_t copy;
        if (dialable_copy(a, remote, &copy) < 0)
            continue;
        cp2p_multiaddr_free(&copy);
        *idx = i;
        *need_data = !have_obs || ip.code != oip.code || ip.value_len != oip.value_len ||
                     memcmp(ip.value, oip.value, ip.value_len) != 0;
        return 0;
    }
    return CP2P_ENOTFOUND;
}

/* --- address candidates --- */

int an_candidates_observe(an_candidates_t *t, const cp2p_multiaddr_t *addr,
                          const cp2p_peer_id_t *observer, uint64_t now)
{
    an_candidate_t *c = NULL;
    for (size_t i = 0; i < t->n && !c; i++)
        if (cp2p_multiaddr_equal(&t->c[i].addr, addr))
            c = &t->c[i];
    if (!c) {
        /* Slots never move: a probe under way holds its candidate's index. */
        size_t slot = t->n;
        if (t->n == AN_MAX_CANDIDATES) {
            slot = SIZE_MAX;
            for (size_t i = 0; i < t->n; i++)
                if (t->c[i].state != AN_CAND_CONFIRMED && t->c[i].state != AN_CAND_PROBING &&
                    (slot == SIZE_MAX || t->c[i].seen < t->c[slot].seen))
                    slot = i;
            if (slot == SIZE_MAX)
                return -1;
        }
        cp2p_multiaddr_t copy;
        if (cp2p_multiaddr_dup(addr, &copy) < 0)
            return -1;
        c = &t->c[slot];
        if (slot < t->n)
            cp2p_multiaddr_free(&c->addr);
        else
            t->n++;
        memset(c, 0, sizeof *c);
        c->addr = copy;
    }
    c->seen = now;
    for (size_t i = 0; i < c->nobs; i++)
        if (cp2p_peer_id_equal(&c->observers[i], observer))
            return -1;
    if (c->nobs < AN_MAX_OBSERVERS)
        c->observers[c->nobs++] = *observer;
    if (c->state == AN_CAND_OBSERVED && c->nobs >= (t->threshold ? t->threshold : 1)) {
        c->state = AN_CAND_DUE;
        return (int)(c - t->c);
    }
    return -1;
}

void an_candidates_free(an_candidates_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        cp2p_multiaddr_free(&t->c[i].addr);
    t->n = 0;
}

/* --- the client's reachability --- */

cp2p_reachability_t an_observation(int status)
{
    if (status == CP2P_AUTONAT_OK)
        return CP2P_REACHABILITY_PUBLIC;
    if (status == CP2P_AUTONAT_E_DIAL_ERROR)
        return CP2P_REACHABILITY_PRIVATE;
    return CP2P_REACHABILITY_UNKNOWN;
}

int an_reach_record(an_reach_t *r, cp2p_reachability_t obs)
{
    if (obs == CP2P_REACHABILITY_PUBLIC) {
        /* A dial-back that worked is proof: taken at once. */
        if (r->status != CP2P_REACHABILITY_PUBLIC) {
            r->status = obs;
            r->confidence = 0;
            return 1;
        }
        if (r->confidence < CP2P_AUTONAT_MAX_CONFIDENCE)
            r->confidence++;
        return 0;
    }
    if (obs == CP2P_REACHABILITY_PRIVATE) {
        if (r->status != CP2P_REACHABILITY_PRIVATE) {
            if (r->confidence > 0) {
                r->confidence--;
                return 0;
            }
            r->status = obs;
            r->confidence = 0;
            return 1;
        }
        if (r->confidence < CP2P_AUTONAT_MAX_CONFIDENCE)
            r->confidence++;
        return 0;
    }
    if (r->confidence > 0) {
        r->confidence--;
        return 0;
    }
    if (r->status == CP2P_REACHABILITY_UNKNOWN)
        return 0;
    r->status = CP2P_REACHABILITY_UNKNOWN;
    return 1;
}
