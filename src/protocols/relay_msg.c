/* Circuit relay v2 codec: HopMessage, StopMessage and the reservation
 * voucher (libp2p specs relay/circuit-v2.md, "Protobuf", "Reservation
 * Vouchers"). */
#include <stdlib.h>
#include <string.h>

#include "cp2p/envelope.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"
#include "protocols/relay_msg.h"

#include "circuit.pb-c.h"

static const uint8_t voucher_type[] = {0x03, 0x02};

static int put(cp2p_buf_t *out, size_t len, size_t (*pack)(const void *, uint8_t *),
               const void *pb)
{
    size_t before = out->len;
    int rc = cp2p_buf_append_uvarint(out, len);
    if (!rc)
        rc = cp2p_buf_reserve(out, len);
    if (rc) {
        out->len = before;
        return rc;
    }
    out->len += pack(pb, out->data + out->len);
    return 0;
}

static size_t pack_hop(const void *pb, uint8_t *p)
{
    return circuit__pb__hop_message__pack(pb, p);
}

static size_t pack_stop(const void *pb, uint8_t *p)
{
    return circuit__pb__stop_message__pack(pb, p);
}

int relay_msg_encode(int stop, const relay_msg_t *m, cp2p_buf_t *out)
{
    if (m->n_peer_addrs > RELAY_MSG_MAX_ADDRS || m->n_addrs > RELAY_MSG_MAX_ADDRS)
        return CP2P_EINVAL;
    ProtobufCBinaryData pa[RELAY_MSG_MAX_ADDRS], ra[RELAY_MSG_MAX_ADDRS];
    Circuit__Pb__Peer peer = CIRCUIT__PB__PEER__INIT;
    Circuit__Pb__Reservation rsvp = CIRCUIT__PB__RESERVATION__INIT;
    Circuit__Pb__Limit limit = CIRCUIT__PB__LIMIT__INIT;
    if (m->has_peer) {
        peer.has_id = 1;
        peer.id = (ProtobufCBinaryData){m->peer.len, (uint8_t *)m->peer.bytes};
        for (size_t i = 0; i < m->n_peer_addrs; i++)
            pa[i] = (ProtobufCBinaryData){m->peer_addrs[i].len, m->peer_addrs[i].bytes};
        peer.n_addrs = m->n_peer_addrs;
        peer.addrs = pa;
    }
    if (m->has_reservation) {
        rsvp.has_expire = 1;
        rsvp.expire = m->expire;
        for (size_t i = 0; i < m->n_addrs; i++)
            ra[i] = (ProtobufCBinaryData){m->addrs[i].len, m->addrs[i].bytes};
        rsvp.n_addrs = m->n_addrs;
        rsvp.addrs = ra;
        rsvp.has_voucher = m->voucher != NULL;
        rsvp.voucher = (ProtobufCBinaryData){m->voucher_len, m->voucher};
    }
    if (m->has_limit) {
        limit.has_duration = m->duration != 0;
        limit.duration = m->duration;
        limit.has_data = m->data != 0;
        limit.data = m->data;
    }
    if (stop) {
        Circuit__Pb__StopMessage pb = CIRCUIT__PB__STOP_MESSAGE__INIT;
        pb.has_type = 1;
        pb.type = (Circuit__Pb__StopMessage__Type)m->type;
        pb.peer = m->has_peer ? &peer : NULL;
        pb.limit = m->has_limit ? &limit : NULL;
        pb.has_status = m->status != 0;
        pb.status = (Circuit__Pb__Status)m->status;
        return put(out, circuit__pb__stop_message__get_packed_size(&pb), pack_stop, &pb);
    }
    Circuit__Pb__HopMessage pb = CIRCUIT__PB__HOP_MESSAGE__INIT;
    pb.has_type = 1;
    pb.type = (Circuit__Pb__HopMessage__Type)m->type;
    pb.peer = m->has_peer ? &peer : NULL;
    pb.reservation = m->has_reservation ? &rsvp : NULL;
    pb.limit = m->has_limit ? &limit : NULL;
    pb.has_status = m->status != 0;
    pb.status = (Circuit__Pb__Status)m->status;
    return put(out, circuit__pb__hop_message__get_packed_size(&pb), pack_hop, &pb);
}

int relay_msg_frame(const uint8_t *p, size_t n, size_t *hdr, size_t *len)
{
    uint64_t v;
    int h = cp2p_uvarint_decode(p, n, &v);
    if (h == CP2P_ETRUNC)
        return n >= 10 ? CP2P_EPARSE : 0;
    if (h < 0)
        return h == CP2P_EOVERFLOW ? CP2P_EOVERFLOW : CP2P_EPARSE;
    if (v > RELAY_MSG_MAX)
        return CP2P_EOVERFLOW;
    if (n - (size_t)h < v)
        return 0;
    *hdr = (size_t)h;
    *len = (size_t)v;
    return 1;
}

static void take_addrs(ProtobufCBinaryData *in, size_t n, cp2p_multiaddr_t *out, size_t *nout)
{
    for (size_t i = 0; i < n && *nout < RELAY_MSG_MAX_ADDRS; i++)
        if (cp2p_multiaddr_from_bytes(in[i].data, in[i].len, &out[*nout]) == 0)
            (*nout)++;
}

static int take_peer(Circuit__Pb__Peer *p, relay_msg_t *m)
{
    if (!p)
        return 0;
    if (!p->has_id || cp2p_peer_id_from_bytes(p->id.data, p->id.len, &m->peer))
        return CP2P_EPARSE;
    m->has_peer = 1;
    take_addrs(p->addrs, p->n_addrs, m->peer_addrs, &m->n_peer_addrs);
    return 0;
}

static void take_limit(Circuit__Pb__Limit *l, relay_msg_t *m)
{
    if (!l)
        return;
    m->has_limit = 1;
    m->duration = l->has_duration ? l->duration : 0;
    m->data = l->has_data ? l->data : 0;
}

int relay_msg_decode(int stop, const uint8_t *p, size_t n, relay_msg_t *m)
{
    memset(m, 0, sizeof *m);
    if (n > RELAY_MSG_MAX)
        return CP2P_EOVERFLOW;
    int rc = 0;
    if (stop) {
        Circuit__Pb__StopMessage *pb = circuit__pb__stop_message__unpack(NULL, n, p);
        if (!pb)
            return CP2P_EPARSE;
        if (!pb->has_type || ((int)pb->type != STOP_CONNECT && (int)pb->type != STOP_STATUS))
            rc = CP2P_EPARSE;
        m->type = (int)pb->type;
        m->status = pb->has_status ? (int)pb->status : 0;
        if (!rc)
            rc = take_peer(pb->peer, m);
        take_limit(pb->limit, m);
        circuit__pb__stop_message__free_unpacked(pb, NULL);
    } else {
        Circuit__Pb__HopMessage *pb = circuit__pb__hop_message__unpack(NULL, n, p);
        if (!pb)
            return CP2P_EPARSE;
        if (!pb->has_type || (int)pb->type > HOP_STATUS || (int)pb->type < HOP_RESERVE)
            rc = CP2P_EPARSE;
        m->type = (int)pb->type;
        m->status = pb->has_status ? (int)pb->status : 0;
        if (!rc)
            rc = take_peer(pb->peer, m);
        take_limit(pb->limit, m);
        Circuit__Pb__Reservation *r = pb->reservation;
        if (!rc && r) {
            m->has_reservation = 1;
            m->expire = r->has_expire ? r->expire : 0;
            take_addrs(r->addrs, r->n_addrs, m->addrs, &m->n_addrs);
            if (r->has_voucher && r->voucher.len) {
                m->voucher = malloc(r->voucher.len);
                if (!m->voucher)
                    rc = CP2P_ENOMEM;
                else
                    memcpy(m->voucher, r->voucher.data, m->voucher_len = r->voucher.len);
            }
        }
        circuit__pb__hop_message__free_unpacked(pb, NULL);
    }
    if (rc)
        relay_msg_clear(m);
    return rc;
}

void relay_msg_clear(relay_msg_t *m)
{
    for (size_t i = 0; i < m->n_peer_addrs; i++)
        cp2p_multiaddr_free(&m->peer_addrs[i]);
    for (size_t i = 0; i < m->n_addrs; i++)
        cp2p_multiaddr_free(&m->addrs[i]);
    free(m->voucher);
    memset(m, 0, sizeof *m);
}

const char *relay_status_name(int status)
{
    switch (status) {
    case RELAY_OK: return "OK";
    case RELAY_RESERVATION_REFUSED: return "RESERVATION_REFUSED";
    case RELAY_RESOURCE_LIMIT_EXCEEDED: return "RESOURCE_LIMIT_EXCEEDED";
    case RELAY_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case RELAY_CONNECTION_FAILED: return "CONNECTION_FAILED";
    case RELAY_NO_RESERVATION: return "NO_RESERVATION";
    case RELAY_MALFORMED_MESSAGE: return "MALFORMED_MESSAGE";
    case RELAY_UNEXPECTED_MESSAGE: return "UNEXPECTED_MESSAGE";
    default: return "UNKNOWN";
    }
}

int relay_voucher_seal(const cp2p_privkey_t *relay_key, const cp2p_peer_id_t *relay,
                       const cp2p_peer_id_t *peer, uint64_t expiration, cp2p_buf_t *out)
{
    Circuit__Pb__Voucher v = CIRCUIT__PB__VOUCHER__INIT;
    v.has_relay = v.has_peer = v.has_expiration = 1;
    v.relay = (ProtobufCBinaryData){relay->len, (uint8_t *)relay->bytes};
    v.peer = (ProtobufCBinaryData){peer->len, (uint8_t *)peer->bytes};
    v.expiration = expiration;
    uint8_t payload[2 * (CP2P_PEER_ID_MAX + 2) + 16];
    size_t n = circuit__pb__voucher__get_packed_size(&v);
    if (n > sizeof payload)
        return CP2P_EOVERFLOW;
    circuit__pb__voucher__pack(&v, payload);
    return cp2p_envelope_seal(relay_key, RELAY_VOUCHER_DOMAIN, voucher_type, sizeof voucher_type,
                              payload, n, out);
}

int relay_voucher_open(const uint8_t *p, size_t n, cp2p_peer_id_t *relay, cp2p_peer_id_t *peer,
                       uint64_t *expiration)
{
    cp2p_envelope_t *e;
    int rc = cp2p_envelope_open(p, n, RELAY_VOUCHER_DOMAIN, &e);
    if (rc)
        return rc;
    Circuit__Pb__Voucher *v = NULL;
    if (e->payload_type_len != sizeof voucher_type ||
        memcmp(e->payload_type, voucher_type, sizeof voucher_type))
        rc = CP2P_EPARSE;
    if (!rc && !(v = circuit__pb__voucher__unpack(NULL, e->payload_len, e->payload)))
        rc = CP2P_EPARSE;
    if (!rc && (!v->has_relay || !v->has_peer ||
                cp2p_peer_id_from_bytes(v->relay.data, v->relay.len, relay) ||
                cp2p_peer_id_from_bytes(v->peer.data, v->peer.len, peer)))
        rc = CP2P_EPARSE;
    if (!rc && !cp2p_peer_id_matches_pubkey(relay, e->pubkey))
        rc = CP2P_EPEERID;
    if (!rc)
        *expiration = v->has_expiration ? v->expiration : 0;
    if (v)
        circuit__pb__voucher__free_unpacked(v, NULL);
    cp2p_envelope_free(e);
    return rc;
}
