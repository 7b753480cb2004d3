/* Rendezvous message codec (libp2p specs rendezvous/README.md, "Protobuf"):
 * varint-framed Message protobufs, every field held to the caps of
 * rdv_msg.h before anything is copied out of protobuf-c's tree. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/varint.h"
#include "discovery/rdv_msg.h"
#include "rendezvous.pb-c.h"

const char *rdv_status_name(int status)
{
    switch (status) {
    case RDV_S_OK: return "OK";
    case RDV_S_E_INVALID_NAMESPACE: return "E_INVALID_NAMESPACE";
    case RDV_S_E_INVALID_SIGNED_PEER_RECORD: return "E_INVALID_SIGNED_PEER_RECORD";
    case RDV_S_E_INVALID_TTL: return "E_INVALID_TTL";
    case RDV_S_E_INVALID_COOKIE: return "E_INVALID_COOKIE";
    case RDV_S_E_NOT_AUTHORIZED: return "E_NOT_AUTHORIZED";
    case RDV_S_E_INTERNAL_ERROR: return "E_INTERNAL_ERROR";
    case RDV_S_E_UNAVAILABLE: return "E_UNAVAILABLE";
    default: return "unknown";
    }
}

int rdv_frame(const uint8_t *p, size_t n, size_t max, size_t *hdr, size_t *len)
{
    uint64_t l;
    int h = cp2p_uvarint_decode(p, n, &l);
    if (h < 0)
        return h == CP2P_ETRUNC ? CP2P_ETRUNC : CP2P_EPARSE;
    if (l > max)
        return CP2P_EOVERFLOW;
    if (l > n - (size_t)h)
        return CP2P_ETRUNC;
    *hdr = (size_t)h;
    *len = (size_t)l;
    return 0;
}

static int copy_str(char **dst, const char *src, size_t max)
{
    if (!src)
        src = "";
    size_t n = strlen(src);
    if (n > max)
        return CP2P_EOVERFLOW;
    *dst = malloc(n + 1);
    if (!*dst)
        return CP2P_ENOMEM;
    memcpy(*dst, src, n + 1);
    return 0;
}

static int copy_bytes(uint8_t **dst, size_t *dst_len, const ProtobufCBinaryData *src, size_t max)
{
    if (src->len > max)
        return CP2P_EOVERFLOW;
    *dst = malloc(src->len ? src->len : 1);
    if (!*dst)
        return CP2P_ENOMEM;
    if (src->len)
        memcpy(*dst, src->data, src->len);
    *dst_len = src->len;
    return 0;
}

static void reg_free(rdv_reg_t *r)
{
    free(r->ns);
    free(r->record);
    memset(r, 0, sizeof *r);
}

static int reg_from(rdv_reg_t *r, const Rendezvous__Pb__Message__Register *pb)
{
    int rc = copy_str(&r->ns, pb->ns, RDV_MAX_NAMESPACE);
    if (!rc && pb->has_signedpeerrecord)
        rc = copy_bytes(&r->record, &r->record_len, &pb->signedpeerrecord, RDV_MAX_RECORD);
    r->has_ttl = pb->has_ttl;
    r->ttl = pb->ttl;
    return rc;
}

static int from_pb(rdv_msg_t *m, const Rendezvous__Pb__Message *pb)
{
    if (!pb->has_type)
        return CP2P_EPARSE;
    m->type = (int)pb->type;
    switch (pb->type) {
    case RENDEZVOUS__PB__MESSAGE__MESSAGE_TYPE__REGISTER:
        if (!pb->register_)
            return CP2P_EPARSE;
        return reg_from(&m->reg, pb->register_);
    case RENDEZVOUS__PB__MESSAGE__MESSAGE_TYPE__REGISTER_RESPONSE: {
        const Rendezvous__Pb__Message__RegisterResponse *r = pb->registerresponse;
        if (!r)
            return CP2P_EPARSE;
        m->status = r->has_status ? (int)r->status : RDV_S_OK;
        m->has_ttl = r->has_ttl;
        m->ttl = r->ttl;
        return r->statustext ? copy_str(&m->status_text, r->statustext, RDV_MAX_STATUS_TEXT) : 0;
    }
    case RENDEZVOUS__PB__MESSAGE__MESSAGE_TYPE__UNREGISTER:
        if (!pb->unregister)
            return CP2P_EPARSE;
        return copy_str(&m->ns, pb->unregister->ns, RDV_MAX_NAMESPACE);
    case RENDEZVOUS__PB__MESSAGE__MESSAGE_TYPE__DISCOVER: {
        const Rendezvous__Pb__Message__Discover *d = pb->discover;
        if (!d)
            return CP2P_EPARSE;
        m->has_limit = d->has_limit;
        m->limit = d->limit;
        int rc = d->ns ? copy_str(&m->ns, d->ns, RDV_MAX_NAMESPACE) : 0;
        if (!rc && d->has_cookie) {
            m->has_cookie = 1;
            rc = copy_bytes(&m->cookie, &m->cookie_len, &d->cookie, RDV_MAX_COOKIE);
        }
        return rc;
    }
    case RENDEZVOUS__PB__MESSAGE__MESSAGE_TYPE__DISCOVER_RESPONSE: {
        const Rendezvous__Pb__Message__DiscoverResponse *d = pb->discoverresponse;
        if (!d)
            return CP2P_EPARSE;
        if (d->n_registrations > RDV_MAX_REGISTRATIONS)
            return CP2P_EOVERFLOW;
        m->status = d->has_status ? (int)d->status : RDV_S_OK;
        int rc = d->statustext ? copy_str(&m->status_text, d->statustext, RDV_MAX_STATUS_TEXT) : 0;
        if (!rc && d->has_cookie) {
            m->has_cookie = 1;
            rc = copy_bytes(&m->cookie, &m->cookie_len, &d->cookie, RDV_MAX_COOKIE);
        }
        if (!rc && d->n_registrations) {
            m->regs = calloc(d->n_registrations, sizeof *m->regs);
            if (!m->regs)
                return CP2P_ENOMEM;
            for (size_t i = 0; i < d->n_registrations && !rc; i++) {
                rc = reg_from(&m->regs[i], d->registrations[i]);
                m->n_regs = i + 1;
            }
        }
        return rc;
    }
    default:
        return CP2P_EPARSE;
    }
}

int rdv_msg_decode(const uint8_t *p, size_t n, rdv_msg_t *out)
{
    memset(out, 0, sizeof *out);
    if (n > RDV_MAX_RESPONSE)
        return CP2P_EOVERFLOW;
    Rendezvous__Pb__Message *pb = rendezvous__pb__message__unpack(NULL, n, p);
    if (!pb)
        return CP2P_EPARSE;
    int rc = from_pb(out, pb);
    rendezvous__pb__message__free_unpacked(pb, NULL);
    if (rc)
        rdv_msg_free(out);
    return rc;
}

void rdv_msg_free(rdv_msg_t *m)
{
    reg_free(&m->reg);
    for (size_t i = 0; i < m->n_regs; i++)
        reg_free(&m->regs[i]);
    free(m->regs);
    free(m->ns);
    free(m->cookie);
    free(m->status_text);
    memset(m, 0, sizeof *m);
}

static void reg_to(Rendezvous__Pb__Message__Register *pb, const rdv_reg_t *r)
{
    pb->ns = r->ns;
    pb->has_signedpeerrecord = r->record != NULL;
    pb->signedpeerrecord = (ProtobufCBinaryData){r->record_len, r->record};
    pb->has_ttl = r->has_ttl;
    pb->ttl = r->ttl;
}

int rdv_msg_encode(const rdv_msg_t *m, cp2p_buf_t *out)
{
    Rendezvous__Pb__Message pb = RENDEZVOUS__PB__MESSAGE__INIT;
    Rendezvous__Pb__Message__Register reg = RENDEZVOUS__PB__MESSAGE__REGISTER__INIT;
    Rendezvous__Pb__Message__RegisterResponse rr = RENDEZVOUS__PB__MESSAGE__REGISTER_RESPONSE__INIT;
    Rendezvous__Pb__Message__Unregister un = RENDEZVOUS__PB__MESSAGE__UNREGISTER__INIT;
    Rendezvous__Pb__Message__Discover d = RENDEZVOUS__PB__MESSAGE__DISCOVER__INIT;
    Rendezvous__Pb__Message__DiscoverResponse dr = RENDEZVOUS__PB__MESSAGE__DISCOVER_RESPONSE__INIT;
    Rendezvous__Pb__Message__Register *regs = NULL, **reg_ptrs = NULL;

    pb.has_type = 1;
    pb.type = (Rendezvous__Pb__Message__MessageType)m->type;
    switch (m->type) {
    case RDV_REGISTER:
        reg_to(&reg, &m->reg);
        pb.register_ = &reg;
        break;
    case RDV_REGISTER_RESPONSE:
        rr.has_status = 1;
        rr.status = (Rendezvous__Pb__Message__ResponseStatus)m->status;
        rr.statustext = m->status_text;
        rr.has_ttl = m->has_ttl;
        rr.ttl = m->ttl;
        pb.registerresponse = &rr;
        break;
    case RDV_UNREGISTER:
        un.ns = m->ns;
        pb.unregister = &un;
        break;
    case RDV_DISCOVER:
        d.ns = m->ns;
        d.has_limit = m->has_limit;
        d.limit = m->limit;
        d.has_cookie = m->has_cookie;
        d.cookie = (ProtobufCBinaryData){m->cookie_len, m->cookie};
        pb.discover = &d;
        break;
    case RDV_DISCOVER_RESPONSE:
        if (m->n_regs) {
            regs = calloc(m->n_regs, sizeof *regs);
            reg_ptrs = calloc(m->n_regs, sizeof *reg_ptrs);
            if (!regs || !reg_ptrs) {
                free(regs);
                free(reg_ptrs);
                return CP2P_ENOMEM;
            }
            for (size_t i = 0; i < m->n_regs; i++) {
                Rendezvous__Pb__Message__Register init = RENDEZVOUS__PB__MESSAGE__REGISTER__INIT;
                regs[i] = init;
                reg_to(&regs[i], &m->regs[i]);
                reg_ptrs[i] = &regs[i];
            }
        }
        dr.n_registrations = m->n_regs;
        dr.registrations = reg_ptrs;
        dr.has_cookie = m->has_cookie;
        dr.cookie = (ProtobufCBinaryData){m->cookie_len, m->cookie};
        dr.has_status = 1;
        dr.status = (Rendezvous__Pb__Message__ResponseStatus)m->status;
        dr.statustext = m->status_text;
        pb.discoverresponse = &dr;
        break;
    default:
        return CP2P_EINVAL;
    }
    size_t len = rendezvous__pb__message__get_packed_size(&pb);
    size_t before = out->len;
    int rc = cp2p_buf_append_uvarint(out, len);
    if (!rc)
        rc = cp2p_buf_reserve(out, len);
    if (!rc)
        out->len += rendezvous__pb__message__pack(&pb, out->data + out->len);
    else
        out->len = before;
    free(regs);
    free(reg_ptrs);
    return rc;
}

/* --- the two envelopes of a peer record --- */

static int open_legacy(const uint8_t *p, size_t n, cp2p_peer_record_t *r)
{
    cp2p_envelope_t *env = NULL;
    int rc = cp2p_envelope_open(p, n, RDV_LEGACY_DOMAIN, &env);
    if (rc)
        return rc;
    size_t tl = strlen(RDV_LEGACY_TYPE);
    if (env->payload_type_len != tl || memcmp(env->payload_type, RDV_LEGACY_TYPE, tl))
        rc = CP2P_EPARSE;
    if (!rc)
        rc = cp2p_peer_record_decode(env->payload, env->payload_len, r);
    if (!rc && !cp2p_peer_id_matches_pubkey(&r->peer_id, env->pubkey))
        rc = CP2P_EPEERID;
    if (rc)
        cp2p_peer_record_clear(r);
    cp2p_envelope_free(env);
    return rc;
}

int rdv_record_open(const uint8_t *p, size_t n, cp2p_peer_record_t *r, int *legacy)
{
    int rc = cp2p_peer_record_open(p, n, r, NULL);
    int old = 0;
    if (rc == CP2P_ESIG || rc == CP2P_EPARSE) {
        /* A legacy envelope fails the standard one's signature (another
         * domain) or payload type: the other one decides. */
        int rc2 = open_legacy(p, n, r);
        if (!rc2) {
            rc = 0;
            old = 1;
        }
    }
    if (legacy)
        *legacy = old;
    return rc;
}

int rdv_record_seal(const cp2p_privkey_t *k, const cp2p_peer_record_t *r, int legacy, cp2p_buf_t *out)
{
    if (!legacy)
        return cp2p_peer_record_seal(k, r, out);
    cp2p_buf_t payload = {0};
    int rc = cp2p_peer_record_encode(r, &payload);
    if (!rc)
        rc = cp2p_envelope_seal(k, RDV_LEGACY_DOMAIN, (const uint8_t *)RDV_LEGACY_TYPE,
                                strlen(RDV_LEGACY_TYPE), payload.data, payload.len, out);
    cp2p_buf_free(&payload);
    return rc;
}
