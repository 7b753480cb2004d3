/* AutoNAT v2 (libp2p specs autonat/autonat-v2.md): the messages of the
 * dial-request and dial-back streams, varint length-prefixed, with go-libp2p's
 * size caps. Sans-I/O. */
#include <stdlib.h>
#include <string.h>

#include "autonat_v2.pb-c.h"
#include "cp2p/autonat.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"

void cp2p_autonat2_msg_free(cp2p_autonat2_msg_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_addrs; i++)
        cp2p_multiaddr_free(&m->addrs[i]);
    m->n_addrs = 0;
}

static int frame(const ProtobufCMessage *pb, size_t max, cp2p_buf_t *out)
{
    size_t len = protobuf_c_message_get_packed_size(pb);
    if (len > max)
        return CP2P_EOVERFLOW;
    int rc = cp2p_buf_reserve(out, len + CP2P_UVARINT_MAX);
    if (rc)
        return rc;
    out->len += cp2p_uvarint_encode(len, out->data + out->len);
    out->len += protobuf_c_message_pack(pb, out->data + out->len);
    return 0;
}

/* The body of a length-prefixed message in p[0..n). */
static int unframe(const uint8_t *p, size_t n, size_t max, const uint8_t **body, size_t *len,
                   size_t *used)
{
    uint64_t l;
    int k = cp2p_uvarint_decode(p, n, &l);
    if (k == CP2P_ETRUNC && n >= 3)
        return CP2P_EOVERFLOW; /* three varint bytes are more than max already */
    if (k < 0)
        return k;
    if (l > max)
        return CP2P_EOVERFLOW;
    if (n - (size_t)k < l)
        return CP2P_ETRUNC;
    *body = p + k;
    *len = (size_t)l;
    if (used)
        *used = (size_t)k + (size_t)l;
    return 0;
}

int cp2p_autonat2_encode(const cp2p_autonat2_msg_t *m, cp2p_buf_t *out)
{
    Autonatv2__Pb__Message pb = AUTONATV2__PB__MESSAGE__INIT;
    Autonatv2__Pb__DialRequest dr = AUTONATV2__PB__DIAL_REQUEST__INIT;
    Autonatv2__Pb__DialResponse resp = AUTONATV2__PB__DIAL_RESPONSE__INIT;
    Autonatv2__Pb__DialDataRequest ddr = AUTONATV2__PB__DIAL_DATA_REQUEST__INIT;
    Autonatv2__Pb__DialDataResponse dd = AUTONATV2__PB__DIAL_DATA_RESPONSE__INIT;
    ProtobufCBinaryData addrs[CP2P_AUTONAT_V2_MAX_ADDRS];
    switch (m->kind) {
    case CP2P_AUTONAT2_DIAL_REQUEST:
        if (m->n_addrs > CP2P_AUTONAT_V2_MAX_ADDRS)
            return CP2P_EINVAL;
        for (size_t i = 0; i < m->n_addrs; i++)
            addrs[i] = (ProtobufCBinaryData){m->addrs[i].len, m->addrs[i].bytes};
        dr.n_addrs = m->n_addrs;
        dr.addrs = addrs;
        dr.nonce = m->nonce;
        pb.msg_case = AUTONATV2__PB__MESSAGE__MSG_DIAL_REQUEST;
        pb.dialrequest = &dr;
        break;
    case CP2P_AUTONAT2_DIAL_RESPONSE:
        resp.status = (Autonatv2__Pb__DialResponse__ResponseStatus)m->status;
        resp.addridx = m->addr_idx;
        resp.dialstatus = (Autonatv2__Pb__DialStatus)m->dial_status;
        pb.msg_case = AUTONATV2__PB__MESSAGE__MSG_DIAL_RESPONSE;
        pb.dialresponse = &resp;
        break;
    case CP2P_AUTONAT2_DIAL_DATA_REQUEST:
        ddr.addridx = m->addr_idx;
        ddr.numbytes = m->num_bytes;
        pb.msg_case = AUTONATV2__PB__MESSAGE__MSG_DIAL_DATA_REQUEST;
        pb.dialdatarequest = &ddr;
        break;
    case CP2P_AUTONAT2_DIAL_DATA_RESPONSE:
        dd.data = (ProtobufCBinaryData){m->data_len, (uint8_t *)m->data};
        pb.msg_case = AUTONATV2__PB__MESSAGE__MSG_DIAL_DATA_RESPONSE;
        pb.dialdataresponse = &dd;
        break;
    default:
        return CP2P_EINVAL;
    }
    return frame(&pb.base, CP2P_AUTONAT_V2_MAX_MESSAGE, out);
}

int cp2p_autonat2_decode(const uint8_t *p, size_t n, cp2p_autonat2_msg_t *out, size_t *used)
{
    memset(out, 0, sizeof *out);
    const uint8_t *body;
    size_t len;
    int rc = unframe(p, n, CP2P_AUTONAT_V2_MAX_MESSAGE, &body, &len, used);
    if (rc)
        return rc;
    Autonatv2__Pb__Message *pb = autonatv2__pb__message__unpack(NULL, len, body);
    if (!pb)
        return CP2P_EPARSE;
    switch (pb->msg_case) {
    case AUTONATV2__PB__MESSAGE__MSG_DIAL_REQUEST:
        out->kind = CP2P_AUTONAT2_DIAL_REQUEST;
        out->nonce = pb->dialrequest->nonce;
        for (size_t i = 0; i < pb->dialrequest->n_addrs; i++) {
            /* A bad address keeps its index: the response's addrIdx counts it. */
            if (out->n_addrs == CP2P_AUTONAT_V2_MAX_ADDRS) {
                out->n_addrs_dropped++;
                continue;
            }
            ProtobufCBinaryData *a = &pb->dialrequest->addrs[i];
            if (cp2p_multiaddr_from_bytes(a->data, a->len, &out->addrs[out->n_addrs]) < 0) {
                out->addrs[out->n_addrs] = (cp2p_multiaddr_t){0};
                out->n_addrs_dropped++;
            }
            out->n_addrs++;
        }
        break;
    case AUTONATV2__PB__MESSAGE__MSG_DIAL_RESPONSE:
        out->kind = CP2P_AUTONAT2_DIAL_RESPONSE;
        out->status = (uint32_t)pb->dialresponse->status;
        out->addr_idx = pb->dialresponse->addridx;
        out->dial_status = (uint32_t)pb->dialresponse->dialstatus;
        break;
    case AUTONATV2__PB__MESSAGE__MSG_DIAL_DATA_REQUEST:
        out->kind = CP2P_AUTONAT2_DIAL_DATA_REQUEST;
        out->addr_idx = pb->dialdatarequest->addridx;
        out->num_bytes = pb->dialdatarequest->numbytes;
        break;
    case AUTONATV2__PB__MESSAGE__MSG_DIAL_DATA_RESPONSE:
        out->kind = CP2P_AUTONAT2_DIAL_DATA_RESPONSE;
        out->data_len = pb->dialdataresponse->data.len;
        break;
    default:
        out->kind = CP2P_AUTONAT2_NONE;
        break;
    }
    autonatv2__pb__message__free_unpacked(pb, NULL);
    return 0;
}

int cp2p_autonat2_encode_dial_back(uint64_t nonce, cp2p_buf_t *out)
{
    Autonatv2__Pb__DialBack pb = AUTONATV2__PB__DIAL_BACK__INIT;
    pb.nonce = nonce;
    return frame(&pb.base, CP2P_AUTONAT_V2_MAX_DIAL_BACK, out);
}

int cp2p_autonat2_decode_dial_back(const uint8_t *p, size_t n, uint64_t *nonce, size_t *used)
{
    const uint8_t *body;
    size_t len;
    int rc = unframe(p, n, CP2P_AUTONAT_V2_MAX_DIAL_BACK, &body, &len, used);
    if (rc)
        return rc;
    Autonatv2__Pb__DialBack *pb = autonatv2__pb__dial_back__unpack(NULL, len, body);
    if (!pb)
        return CP2P_EPARSE;
    *nonce = pb->nonce;
    autonatv2__pb__dial_back__free_unpacked(pb, NULL);
    return 0;
}

int cp2p_autonat2_encode_dial_back_response(cp2p_buf_t *out)
{
    Autonatv2__Pb__DialBackResponse pb = AUTONATV2__PB__DIAL_BACK_RESPONSE__INIT;
    /* status OK is 0, proto3's default: an empty message, as go sends it. */
    return frame(&pb.base, CP2P_AUTONAT_V2_MAX_DIAL_BACK, out);
}
