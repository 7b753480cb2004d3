/* cp2pd DHT requests (go-libp2p-daemon specs/DHT.md): single answers for
 * FIND_PEER, GET_VALUE, GET_PUBLIC_KEY, PUT_VALUE, PROVIDE; a BEGIN, VALUE...,
 * END stream for FIND_PROVIDERS, GET_CLOSEST_PEERS and SEARCH_VALUE. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/cid.h"
#include "cp2p/error.h"
#include "daemon/control.h"
#include "daemon/session.h"

#define DEFAULT_PROVIDERS 20

/* An error as p2pd words it where clients may look for it. */
static const char *dht_error(int status)
{
    return status == CP2P_ENOTFOUND ? "routing: not found" : cp2p_strerror(status);
}

static uint64_t now_ms(cp2p_daemon_client_t *c)
{
    return uv_now(cp2p_host_loop(cp2p_daemon_host(c)));
}

/* PeerInfo with the addresses the peerstore has for peer; bin holds them. */
static size_t peer_info(cp2p_daemon_client_t *c, const cp2p_peer_id_t *peer, P2pd__PeerInfo *pi,
                        cp2p_multiaddr_t *addrs, ProtobufCBinaryData *bin)
{
    size_t n = cp2p_peerstore_addrs(cp2p_host_peerstore(cp2p_daemon_host(c)), peer, now_ms(c),
                                    addrs, CP2P_PEERSTORE_MAX_ADDRS);
    if (n > CP2P_PEERSTORE_MAX_ADDRS)
        n = CP2P_PEERSTORE_MAX_ADDRS;
    for (size_t i = 0; i < n; i++)
        bin[i] = (ProtobufCBinaryData){.data = addrs[i].bytes, .len = addrs[i].len};
    p2pd__peer_info__init(pi);
    pi->id.data = (uint8_t *)peer->bytes;
    pi->id.len = peer->len;
    pi->addrs = bin;
    pi->n_addrs = n;
    return n;
}

/* Response{OK, dht: d} as the one answer. */
static void reply_dht(cp2p_daemon_client_t *c, P2pd__DHTResponse *d)
{
    P2pd__Response r = P2PD__RESPONSE__INIT;
    r.dht = d;
    cp2p_buf_t b = {0};
    cp2p_daemon_reply(c, &b, cp2p_daemon_message_append(&b, &r.base));
}

static void on_done(cp2p_dht_t *d, int status, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (cp2p_daemon_release(c))
        cp2p_daemon_reply_status(c, status < 0 ? dht_error(status) : NULL);
}

static void on_peer(cp2p_dht_t *d, int status, const cp2p_peer_id_t *peers, size_t n, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (!cp2p_daemon_release(c))
        return;
    if (status < 0 || n == 0) {
        cp2p_daemon_reply_status(c, dht_error(status < 0 ? status : CP2P_ENOTFOUND));
        return;
    }
    cp2p_multiaddr_t addrs[CP2P_PEERSTORE_MAX_ADDRS];
    ProtobufCBinaryData bin[CP2P_PEERSTORE_MAX_ADDRS];
    P2pd__PeerInfo pi;
    P2pd__DHTResponse dr = P2PD__DHTRESPONSE__INIT;
    peer_info(c, &peers[0], &pi, addrs, bin);
    dr.type = P2PD__DHTRESPONSE__TYPE__VALUE;
    dr.peer = &pi;
    reply_dht(c, &dr);
}

static void reply_value(cp2p_daemon_client_t *c, const uint8_t *value, size_t n)
{
    P2pd__DHTResponse dr = P2PD__DHTRESPONSE__INIT;
    dr.type = P2PD__DHTRESPONSE__TYPE__VALUE;
    dr.has_value = 1;
    dr.value = (ProtobufCBinaryData){.data = (uint8_t *)value, .len = n};
    reply_dht(c, &dr);
}

static void on_value(cp2p_dht_t *d, int status, const uint8_t *value, size_t n, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (!cp2p_daemon_release(c))
        return;
    if (status < 0)
        cp2p_daemon_reply_status(c, dht_error(status));
    else
        reply_value(c, value, n);
}

/* A stream of answers: OK with BEGIN, one DHTResponse per item, then END. */
static int stream_begin(cp2p_buf_t *b)
{
    P2pd__Response r = P2PD__RESPONSE__INIT;
    P2pd__DHTResponse dr = P2PD__DHTRESPONSE__INIT;
    dr.type = P2PD__DHTRESPONSE__TYPE__BEGIN;
    r.dht = &dr;
    return cp2p_daemon_message_append(b, &r.base);
}

static int stream_end(cp2p_buf_t *b)
{
    P2pd__DHTResponse dr = P2PD__DHTRESPONSE__INIT;
    dr.type = P2PD__DHTRESPONSE__TYPE__END;
    return cp2p_daemon_message_append(b, &dr.base);
}

static void on_search_value(cp2p_dht_t *d, int status, const uint8_t *value, size_t n, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (!cp2p_daemon_release(c))
        return;
    /* p2pd streams what its search finds: nothing (BEGIN, END) when it found
     * nothing, whatever the reason, the deadline included */
    cp2p_buf_t b = {0};
    P2pd__DHTResponse dr = P2PD__DHTRESPONSE__INIT;
    dr.type = P2PD__DHTRESPONSE__TYPE__VALUE;
    dr.has_value = 1;
    dr.value = (ProtobufCBinaryData){.data = (uint8_t *)value, .len = n};
    int rc = stream_begin(&b);
    if (!rc && status == 0)
        rc = cp2p_daemon_message_append(&b, &dr.base);
    if (!rc)
        rc = stream_end(&b);
    cp2p_daemon_reply(c, &b, rc);
}

static void on_providers(cp2p_dht_t *d, int status, const cp2p_peer_id_t *peers, size_t n,
                         void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (!cp2p_daemon_release(c))
        return;
    if (status < 0 && status != CP2P_ENOTFOUND && !cp2p_daemon_timed_out(c)) {
        cp2p_daemon_reply_status(c, cp2p_strerror(status));
        return;
    }
    cp2p_buf_t b = {0};
    int rc = stream_begin(&b);
    for (size_t i = 0; !rc && status == 0 && i < n; i++) {
        cp2p_multiaddr_t addrs[CP2P_PEERSTORE_MAX_ADDRS];
        ProtobufCBinaryData bin[CP2P_PEERSTORE_MAX_ADDRS];
        P2pd__PeerInfo pi;
        P2pd__DHTResponse dr = P2PD__DHTRESPONSE__INIT;
        peer_info(c, &peers[i], &pi, addrs, bin);
        dr.type = P2PD__DHTRESPONSE__TYPE__VALUE;
        dr.peer = &pi;
        rc = cp2p_daemon_message_append(&b, &dr.base);
    }
    if (!rc)
        rc = stream_end(&b);
    cp2p_daemon_reply(c, &b, rc);
}

static void on_closest(cp2p_dht_t *d, int status, const cp2p_peer_id_t *peers, size_t n, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (!cp2p_daemon_release(c))
        return;
    if (status < 0 && !cp2p_daemon_timed_out(c)) {
        cp2p_daemon_reply_status(c, cp2p_strerror(status));
        return;
    }
    cp2p_buf_t b = {0};
    int rc = stream_begin(&b);
    for (size_t i = 0; !rc && status == 0 && i < n; i++) {
        P2pd__DHTResponse dr = P2PD__DHTRESPONSE__INIT;
        dr.type = P2PD__DHTRESPONSE__TYPE__VALUE;
        dr.has_value = 1;
        dr.value = (ProtobufCBinaryData){.data = (uint8_t *)peers[i].bytes, .len = peers[i].len};
        rc = cp2p_daemon_message_append(&b, &dr.base);
    }
    if (!rc)
        rc = stream_end(&b);
    cp2p_daemon_reply(c, &b, rc);
}

/* GET_PUBLIC_KEY: what the peerstore or the peer ID itself knows first; the
 * DHT's /pk/ record (verified by the DHT) otherwise. */
static void get_public_key(cp2p_daemon_client_t *c, cp2p_dht_t *dht, const cp2p_peer_id_t *peer)
{
    const cp2p_pubkey_t *known = cp2p_peerstore_pubkey(cp2p_host_peerstore(cp2p_daemon_host(c)), peer);
    cp2p_pubkey_t *inlined = NULL;
    if (!known && cp2p_peer_id_extract_pubkey(peer, &inlined) == 0)
        known = inlined;
    if (known) {
        cp2p_buf_t k = {0};
        int rc = cp2p_pubkey_marshal(known, &k);
        cp2p_pubkey_free(inlined);
        if (rc < 0)
            cp2p_daemon_reply_status(c, cp2p_strerror(rc));
        else
            reply_value(c, k.data, k.len);
        cp2p_buf_free(&k);
        return;
    }
    uint8_t key[4 + CP2P_PEER_ID_MAX];
    memcpy(key, "/pk/", 4);
    memcpy(key + 4, peer->bytes, peer->len);
    cp2p_daemon_hold(c);
    int rc = cp2p_dht_get(dht, key, 4 + peer->len, on_value, c);
    if (rc < 0 && cp2p_daemon_release(c))
        cp2p_daemon_reply_status(c, dht_error(rc));
}

void cp2p_daemon_dht_request(cp2p_daemon_client_t *c, const P2pd__DHTRequest *r)
{
    cp2p_dht_t *dht = cp2p_daemon_dht(c);
    if (!dht) {
        cp2p_daemon_reply_status(c, "DHT not enabled");
        return;
    }
    cp2p_daemon_deadline(c, r->has_timeout ? r->timeout : 0);
    cp2p_peer_id_t peer;
    cp2p_cid_view_t cid;
    if (r->has_peer)
        cp2p_daemon_peer(&r->peer, &peer);
    if (r->has_cid)
        cp2p_cid_decode(r->cid.data, r->cid.len, &cid);
    if (r->type == P2PD__DHTREQUEST__TYPE__GET_PUBLIC_KEY) {
        get_public_key(c, dht, &peer);
        return;
    }
    if (r->type == P2PD__DHTREQUEST__TYPE__FIND_PEERS_CONNECTED_TO_PEER) {
        /* no such query in the kad-dht spec; go-libp2p-daemon answers the same */
        cp2p_daemon_reply_status(c, "not supported");
        return;
    }
    int rc = CP2P_EINVAL;
    cp2p_daemon_hold(c);
    switch (r->type) {
    case P2PD__DHTREQUEST__TYPE__FIND_PEER:
        rc = cp2p_dht_find_peer(dht, &peer, on_peer, c);
        break;
    case P2PD__DHTREQUEST__TYPE__FIND_PROVIDERS:
        rc = cp2p_dht_find_providers(dht, cid.mh_bytes, cid.mh_len,
                                     r->has_count && r->count > 0 ? (size_t)r->count
                                                                  : DEFAULT_PROVIDERS,
                                     on_providers, c);
        break;
    case P2PD__DHTREQUEST__TYPE__PROVIDE:
        rc = cp2p_dht_provide(dht, cid.mh_bytes, cid.mh_len, on_done, c);
        break;
    case P2PD__DHTREQUEST__TYPE__GET_CLOSEST_PEERS:
        rc = cp2p_dht_closest_peers(dht, r->key.data, r->key.len, on_closest, c);
        break;
    case P2PD__DHTREQUEST__TYPE__GET_VALUE:
        rc = cp2p_dht_get(dht, r->key.data, r->key.len, on_value, c);
        break;
    case P2PD__DHTREQUEST__TYPE__SEARCH_VALUE:
        rc = cp2p_dht_get(dht, r->key.data, r->key.len, on_search_value, c);
        break;
    case P2PD__DHTREQUEST__TYPE__PUT_VALUE:
        rc = cp2p_dht_put(dht, r->key.data, r->key.len, r->value.data, r->value.len, on_done, c);
        break;
    default: /* the decoder lets no other type through */
        break;
    }
    if (rc < 0 && cp2p_daemon_release(c))
        cp2p_daemon_reply_status(c, dht_error(rc));
}
