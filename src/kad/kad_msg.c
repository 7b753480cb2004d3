/* Kademlia RPC message codec: protobuf Message framed with a uvarint length
 * (libp2p kad-dht spec, "RPC messages"). */
#include <stdlib.h>
#include <string.h>

#include "core/pbscan.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"
#include "kad.pb-c.h"
#include "kad/kad_msg.h"

static int too_big(const cp2p_kad_msg_t *m)
{
    if (m->key_len > CP2P_KAD_MAX_KEY || m->n_closer > CP2P_KAD_MAX_MSG_PEERS ||
        m->n_providers > CP2P_KAD_MAX_MSG_PROVIDERS)
        return 1;
    if (m->has_record &&
        (m->rec_key_len > CP2P_KAD_MAX_KEY || m->rec_value_len > CP2P_KAD_MAX_VALUE ||
         (m->time_received && strlen(m->time_received) > CP2P_KAD_MAX_TIME_RECEIVED)))
        return 1;
    const cp2p_kad_peer_t *lists[2] = {m->closer, m->providers};
    size_t counts[2] = {m->n_closer, m->n_providers};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++)
            if (lists[l][i].n_addrs > CP2P_KAD_MAX_PEER_ADDRS)
                return 1;
    return 0;
}

/* Fills pb[0..n) from peers; the address arrays come from one block per list. */
static int pb_peers(const cp2p_kad_peer_t *peers, size_t n, Kad__Message__Peer *pb,
                    Kad__Message__Peer **ptrs, ProtobufCBinaryData **addrs_block)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += peers[i].n_addrs;
    *addrs_block = NULL;
    if (total && !(*addrs_block = calloc(total, sizeof **addrs_block)))
        return CP2P_ENOMEM;
    ProtobufCBinaryData *a = *addrs_block;
    for (size_t i = 0; i < n; i++) {
        kad__message__peer__init(&pb[i]);
        pb[i].id.data = (uint8_t *)peers[i].id.bytes;
        pb[i].id.len = peers[i].id.len;
        pb[i].connection = (Kad__Message__ConnectionType)peers[i].connection;
        pb[i].n_addrs = peers[i].n_addrs;
        pb[i].addrs = peers[i].n_addrs ? a : NULL;
        for (size_t j = 0; j < peers[i].n_addrs; j++, a++) {
            a->data = peers[i].addrs[j].bytes;
            a->len = peers[i].addrs[j].len;
        }
        ptrs[i] = &pb[i];
    }
    return 0;
}

int cp2p_kad_msg_write(const cp2p_kad_msg_t *m, cp2p_buf_t *out)
{
    if (!m || !out || (!m->key && m->key_len) || (m->n_closer && !m->closer) ||
        (m->n_providers && !m->providers))
        return CP2P_EINVAL;
    if (too_big(m))
        return CP2P_EOVERFLOW;
    Kad__Message__Peer closer[CP2P_KAD_MAX_MSG_PEERS], prov[CP2P_KAD_MAX_MSG_PROVIDERS];
    Kad__Message__Peer *closer_p[CP2P_KAD_MAX_MSG_PEERS], *prov_p[CP2P_KAD_MAX_MSG_PROVIDERS];
    ProtobufCBinaryData *closer_addrs = NULL, *prov_addrs = NULL;
    int rc = pb_peers(m->closer, m->n_closer, closer, closer_p, &closer_addrs);
    if (!rc)
        rc = pb_peers(m->providers, m->n_providers, prov, prov_p, &prov_addrs);
    if (!rc) {
        Kad__Message pm = KAD__MESSAGE__INIT;
        Kad__Record rec = KAD__RECORD__INIT;
        pm.type = (Kad__Message__MessageType)m->type;
        pm.key.data = m->key;
        pm.key.len = m->key_len;
        if (m->has_record) {
            rec.key.data = m->rec_key;
            rec.key.len = m->rec_key_len;
            rec.value.data = m->rec_value;
            rec.value.len = m->rec_value_len;
            if (m->time_received)
                rec.timereceived = m->time_received;
            pm.record = &rec;
        }
        pm.n_closerpeers = m->n_closer;
        pm.closerpeers = m->n_closer ? closer_p : NULL;
        pm.n_providerpeers = m->n_providers;
        pm.providerpeers = m->n_providers ? prov_p : NULL;
        size_t len = kad__message__get_packed_size(&pm);
        if (len > CP2P_KAD_MAX_MESSAGE)
            rc = CP2P_EOVERFLOW;
        if (!rc)
            rc = cp2p_buf_reserve(out, len + CP2P_UVARINT_MAX);
        if (!rc) {
            out->len += cp2p_uvarint_encode(len, out->data + out->len);
            out->len += kad__message__pack(&pm, out->data + out->len);
        }
    }
    free(closer_addrs);
    free(prov_addrs);
    return rc;
}

int cp2p_kad_msg_frame(const uint8_t *p, size_t n, const uint8_t **body, size_t *body_len)
{
    if ((!p && n) || !body || !body_len)
        return CP2P_EINVAL;
    uint64_t len;
    int h = cp2p_uvarint_decode(p, n, &len);
    if (h < 0)
        return h;
    if (len > CP2P_KAD_MAX_MESSAGE)
        return CP2P_EOVERFLOW;
    if (n - (size_t)h < len)
        return CP2P_ETRUNC;
    *body = p + h;
    *body_len = (size_t)len;
    return h + (int)len;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* Keep the valid addresses of one remote peer, up to the limit. */
static int take_addrs(const Kad__Message__Peer *pp, cp2p_kad_peer_t *out, size_t *dropped)
{
    size_t want = pp->n_addrs < CP2P_KAD_MAX_PEER_ADDRS ? pp->n_addrs : CP2P_KAD_MAX_PEER_ADDRS;
    *dropped += pp->n_addrs - want;
    if (!want)
        return 0;
    if (!(out->addrs = calloc(want, sizeof *out->addrs)))
        return CP2P_ENOMEM;
    for (size_t i = 0; i < want; i++) {
        int rc = cp2p_multiaddr_from_bytes(pp->addrs[i].data, pp->addrs[i].len,
                                           &out->addrs[out->n_addrs]);
        if (rc == CP2P_ENOMEM)
            return rc;
        if (rc)
            (*dropped)++;
        else
            out->n_addrs++;
    }
    return 0;
}

static int take_peers(Kad__Message__Peer **pps, size_t n, size_t max, cp2p_kad_peer_t **out,
                      size_t *count, size_t *dropped)
{
    size_t want = n < max ? n : max;
    *dropped += n - want;
    if (!want)
        return 0;
    if (!(*out = calloc(want, sizeof **out)))
        return CP2P_ENOMEM;
    for (size_t i = 0; i < want; i++) {
        cp2p_kad_peer_t *p = &(*out)[*count];
        if (cp2p_peer_id_from_bytes(pps[i]->id.data, pps[i]->id.len, &p->id)) {
            (*dropped)++;
            continue;
        }
        unsigned ct = (unsigned)pps[i]->connection;
        p->connection = ct <= CP2P_KAD_CANNOT_CONNECT ? (cp2p_kad_conn_type_t)ct
                                                      : CP2P_KAD_NOT_CONNECTED;
        (*count)++; /* counted before the addresses so clear() frees them on failure */
        int rc = take_addrs(pps[i], p, dropped);
        if (rc)
            return rc;
    }
    return 0;
}

/* What unpacking would allocate, counted on the wire first: empty
 * closerPeers entries cost 2 bytes each there and a hundred once unpacked,
 * so a 4 MiB message could take hundreds of MiB (issue #13). */
static int wire_bounded(const uint8_t *p, size_t n)
{
    size_t off = 0, peers[2] = {0, 0};
    cp2p_pb_field_t f;
    int rc;
    while ((rc = cp2p_pb_next(p, n, &off, &f)) == 1) {
        if (f.num != 8 && f.num != 9)
            continue;
        size_t cap = f.num == 8 ? CP2P_KAD_WIRE_MAX_PEERS : CP2P_KAD_WIRE_MAX_PROVIDERS;
        if (++peers[f.num - 8] > cap)
            return CP2P_EOVERFLOW;
        long addrs = f.wire == 2 ? cp2p_pb_count(f.data, f.len, 2) : 0;
        if (addrs < 0)
            return CP2P_EPARSE;
        if (addrs > CP2P_KAD_WIRE_MAX_PEER_ADDRS)
            return CP2P_EOVERFLOW;
    }
    return rc < 0 ? rc : 0;
}

int cp2p_kad_msg_decode(const uint8_t *p, size_t n, cp2p_kad_msg_t *m)
{
    if ((!p && n) || !m)
        return CP2P_EINVAL;
    cp2p_kad_msg_clear(m);
    if (n > CP2P_KAD_MAX_MESSAGE)
        return CP2P_EOVERFLOW;
    int brc = wire_bounded(p, n);
    if (brc)
        return brc;
    Kad__Message *pm = kad__message__unpack(NULL, n, p);
    if (!pm)
        return CP2P_EPARSE;
    int rc = 0;
    if ((unsigned)pm->type > CP2P_KAD_PING)
        rc = CP2P_EUNSUPPORTED;
    else if (pm->key.len > CP2P_KAD_MAX_KEY)
        rc = CP2P_EOVERFLOW;
    else if (pm->record &&
             (pm->record->key.len > CP2P_KAD_MAX_KEY ||
              pm->record->value.len > CP2P_KAD_MAX_VALUE ||
              strlen(pm->record->timereceived) > CP2P_KAD_MAX_TIME_RECEIVED))
        rc = CP2P_EOVERFLOW;
    if (!rc) {
        m->type = (cp2p_kad_msg_type_t)pm->type;
        m->key_len = pm->key.len;
        if (!(m->key = dup_bytes(pm->key.data, pm->key.len)))
            rc = CP2P_ENOMEM;
    }
    if (!rc && pm->record) {
        const Kad__Record *r = pm->record;
        m->has_record = 1;
        m->rec_key_len = r->key.len;
        m->rec_value_len = r->value.len;
        m->rec_key = dup_bytes(r->key.data, r->key.len);
        m->rec_value = dup_bytes(r->value.data, r->value.len);
        if (r->timereceived[0])
            m->time_received = strdup(r->timereceived);
        if (!m->rec_key || !m->rec_value || (r->timereceived[0] && !m->time_received))
            rc = CP2P_ENOMEM;
    }
    if (!rc)
        rc = take_peers(pm->closerpeers, pm->n_closerpeers, CP2P_KAD_MAX_MSG_PEERS, &m->closer,
                        &m->n_closer, &m->n_dropped);
    if (!rc)
        rc = take_peers(pm->providerpeers, pm->n_providerpeers, CP2P_KAD_MAX_MSG_PROVIDERS,
                        &m->providers, &m->n_providers, &m->n_dropped);
    kad__message__free_unpacked(pm, NULL);
    if (rc)
        cp2p_kad_msg_clear(m);
    return rc;
}

static void free_peers(cp2p_kad_peer_t *peers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < peers[i].n_addrs; j++)
            cp2p_multiaddr_free(&peers[i].addrs[j]);
        free(peers[i].addrs);
    }
    free(peers);
}

void cp2p_kad_msg_clear(cp2p_kad_msg_t *m)
{
    if (!m)
        return;
    free(m->key);
    free(m->rec_key);
    free(m->rec_value);
    free(m->time_received);
    free_peers(m->closer, m->n_closer);
    free_peers(m->providers, m->n_providers);
    memset(m, 0, sizeof *m);
}
