/* cp2pd control protocol codec: framing and validation of p2pd.Request
 * (go-libp2p-daemon specs/CONTROL.md, DHT.md, PUBSUB.md, CM.md). */
#include "daemon/control.h"

#include <limits.h>
#include <string.h>

#include "cp2p/cid.h"
#include "cp2p/error.h"
#include "cp2p/multiaddr.h"
#include "cp2p/varint.h"

int cp2p_daemon_frame(const uint8_t *p, size_t n, const uint8_t **msg, size_t *msg_len)
{
    uint64_t len;
    int k = cp2p_uvarint_decode(p, n < CP2P_UVARINT_MAX ? n : CP2P_UVARINT_MAX, &len);
    if (k == CP2P_ETRUNC && n >= CP2P_UVARINT_MAX)
        return CP2P_EOVERFLOW;
    if (k < 0)
        return k;
    if (len > CP2P_DAEMON_MAX_MESSAGE)
        return CP2P_EOVERFLOW;
    if (n - (size_t)k < len)
        return CP2P_ETRUNC;
    *msg = p + k;
    *msg_len = (size_t)len;
    return k + (int)len;
}

int cp2p_daemon_peer(const ProtobufCBinaryData *b, cp2p_peer_id_t *out)
{
    return cp2p_peer_id_from_bytes(b->data, b->len, out);
}

static int valid_peer(const ProtobufCBinaryData *b)
{
    cp2p_peer_id_t id;
    return b->len > 0 && cp2p_daemon_peer(b, &id) == 0;
}

static int valid_addr(const ProtobufCBinaryData *b)
{
    cp2p_multiaddr_t ma;
    if (b->len == 0 || cp2p_multiaddr_from_bytes(b->data, b->len, &ma) < 0)
        return 0;
    cp2p_multiaddr_free(&ma);
    return 1;
}

static int valid_protocols(char **protos, size_t n)
{
    if (n == 0 || n > CP2P_DAEMON_MAX_PROTOCOLS)
        return 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(protos[i]);
        /* multistream-select frames protocol ids as lines */
        if (len == 0 || len > CP2P_DAEMON_MAX_PROTOCOL_LEN || strchr(protos[i], '\n'))
            return 0;
    }
    return 1;
}

/* A handler address must be one the daemon can dial back: unix or tcp. */
static int valid_handler_addr(const ProtobufCBinaryData *b)
{
    cp2p_multiaddr_t ma;
    cp2p_multiaddr_component_t c;
    if (b->len == 0 || cp2p_multiaddr_from_bytes(b->data, b->len, &ma) < 0)
        return 0;
    int ok = cp2p_multiaddr_get(&ma, CP2P_MA_UNIX, &c) == 0 ||
             ((cp2p_multiaddr_get(&ma, CP2P_MA_IP4, &c) == 0 ||
               cp2p_multiaddr_get(&ma, CP2P_MA_IP6, &c) == 0) &&
              cp2p_multiaddr_get(&ma, CP2P_MA_TCP, &c) == 0);
    cp2p_multiaddr_free(&ma);
    return ok;
}

static int valid_key(const P2pd__DHTRequest *r)
{
    return r->has_key && r->key.len > 0 && r->key.len <= CP2P_DAEMON_MAX_KEY;
}

static int valid_cid(const P2pd__DHTRequest *r)
{
    cp2p_cid_view_t v;
    return r->has_cid && cp2p_cid_decode(r->cid.data, r->cid.len, &v) == 0;
}

static const char *check_dht(const P2pd__DHTRequest *r)
{
    if (!r)
        return "Malformed request; missing parameters"; /* p2pd's words */
    if (r->has_count && r->count < 0)
        return "negative count";
    switch (r->type) {
    case P2PD__DHTREQUEST__TYPE__FIND_PEER:
    case P2PD__DHTREQUEST__TYPE__FIND_PEERS_CONNECTED_TO_PEER:
    case P2PD__DHTREQUEST__TYPE__GET_PUBLIC_KEY:
        return r->has_peer && valid_peer(&r->peer) ? NULL : "missing or invalid peer ID";
    case P2PD__DHTREQUEST__TYPE__FIND_PROVIDERS:
    case P2PD__DHTREQUEST__TYPE__PROVIDE:
        return valid_cid(r) ? NULL : "missing or invalid CID";
    case P2PD__DHTREQUEST__TYPE__GET_CLOSEST_PEERS:
    case P2PD__DHTREQUEST__TYPE__GET_VALUE:
    case P2PD__DHTREQUEST__TYPE__SEARCH_VALUE:
        return valid_key(r) ? NULL : "missing or oversized key";
    case P2PD__DHTREQUEST__TYPE__PUT_VALUE:
        return valid_key(r) && r->has_value ? NULL : "missing key or value";
    default:
        return "unknown DHT request type";
    }
}

static const char *check_connmanager(const P2pd__ConnManagerRequest *r)
{
    if (!r)
        return "Malformed request; missing parameters";
    switch (r->type) {
    case P2PD__CONN_MANAGER_REQUEST__TYPE__TRIM:
        return NULL;
    case P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER:
        /* no weight: 0, as in p2pd; the host keeps weights as int */
        if (r->weight < INT_MIN || r->weight > INT_MAX)
            return "weight out of range";
        /* fall through */
    case P2PD__CONN_MANAGER_REQUEST__TYPE__UNTAG_PEER:
        if (!r->has_peer || !valid_peer(&r->peer))
            return "missing or invalid peer ID";
        if (!r->tag || !*r->tag)
            return "Malformed request; missing tag parameter";
        if (strlen(r->tag) > CP2P_DAEMON_MAX_TAG_LEN)
            return "tag too long";
        return NULL;
    default:
        return "unknown CONNMANAGER request type";
    }
}

static const char *check(const P2pd__Request *r)
{
    switch (r->type) {
    case P2PD__REQUEST__TYPE__IDENTIFY:
    case P2PD__REQUEST__TYPE__LIST_PEERS:
        return NULL;
    case P2PD__REQUEST__TYPE__CONNECT:
        if (!r->connect)
            return "Malformed request; missing parameters";
        if (!valid_peer(&r->connect->peer))
            return "missing or invalid peer ID";
        if (r->connect->n_addrs > CP2P_DAEMON_MAX_ADDRS)
            return "too many addresses";
        for (size_t i = 0; i < r->connect->n_addrs; i++)
            if (!valid_addr(&r->connect->addrs[i]))
                return "invalid multiaddr";
        return NULL;
    case P2PD__REQUEST__TYPE__STREAM_OPEN:
        if (!r->streamopen)
            return "Malformed request; missing parameters";
        if (!valid_peer(&r->streamopen->peer))
            return "missing or invalid peer ID";
        return valid_protocols(r->streamopen->proto, r->streamopen->n_proto)
                   ? NULL
                   : "missing, too many or invalid protocol ids";
    case P2PD__REQUEST__TYPE__STREAM_HANDLER:
        if (!r->streamhandler)
            return "Malformed request; missing parameters";
        if (!valid_handler_addr(&r->streamhandler->addr))
            return "handler address must be /unix/... or /ip4|ip6/.../tcp/...";
        return valid_protocols(r->streamhandler->proto, r->streamhandler->n_proto)
                   ? NULL
                   : "missing, too many or invalid protocol ids";
    case P2PD__REQUEST__TYPE__DHT:
        return check_dht(r->dht);
    case P2PD__REQUEST__TYPE__CONNMANAGER:
        return check_connmanager(r->connmanager);
    case P2PD__REQUEST__TYPE__DISCONNECT:
        if (!r->disconnect)
            return "Malformed request; missing parameters";
        return valid_peer(&r->disconnect->peer) ? NULL : "missing or invalid peer ID";
    case P2PD__REQUEST__TYPE__PUBSUB:
        return r->pubsub ? NULL : "Malformed request; missing parameters";
    case P2PD__REQUEST__TYPE__PEERSTORE:
        return r->peerstore && r->peerstore->has_id && valid_peer(&r->peerstore->id)
                   ? NULL
                   : "missing or invalid peer ID";
    default:
        return "unknown request type";
    }
}

int cp2p_daemon_request_decode(const uint8_t *p, size_t n, P2pd__Request **out,
                               const char **why)
{
    P2pd__Request *r = p2pd__request__unpack(NULL, n, p);
    if (!r) {
        *why = "malformed request";
        return CP2P_EPARSE;
    }
    if ((*why = check(r)) != NULL) {
        p2pd__request__free_unpacked(r, NULL);
        return CP2P_EPARSE;
    }
    *out = r;
    return 0;
}

int cp2p_daemon_message_append(cp2p_buf_t *out, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > CP2P_DAEMON_MAX_MESSAGE)
        return CP2P_EOVERFLOW;
    int rc = cp2p_buf_append_uvarint(out, n);
    if (!rc)
        rc = cp2p_buf_reserve(out, n);
    if (rc < 0)
        return rc;
    out->len += protobuf_c_message_pack(m, out->data + out->len);
    return 0;
}

int cp2p_daemon_status_append(cp2p_buf_t *out, const char *msg)
{
    P2pd__Response r = P2PD__RESPONSE__INIT;
    P2pd__ErrorResponse e = P2PD__ERROR_RESPONSE__INIT;
    if (msg) {
        r.type = P2PD__RESPONSE__TYPE__ERROR;
        e.msg = (char *)msg;
        r.error = &e;
    }
    return cp2p_daemon_message_append(out, &r.base);
}
