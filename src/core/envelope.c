/* Signed envelopes (libp2p RFC 0002, "Wire Format", "Signature Production /
 * Verification") and peer records (RFC 0003, "Address Record Format"). */
#include <stdlib.h>
#include <string.h>

#include "cp2p/envelope.h"
#include "cp2p/error.h"
#include "envelope.pb-c.h"
#include "peer_record.pb-c.h"

/* The spec's signing buffer: each of domain, type and payload with a uvarint length prefix. */
static int signing_buffer(const char *domain, const uint8_t *type, size_t type_len,
                          const uint8_t *payload, size_t n, cp2p_buf_t *out)
{
    int rc = cp2p_buf_append_lp(out, domain, strlen(domain));
    if (!rc)
        rc = cp2p_buf_append_lp(out, type, type_len);
    if (!rc)
        rc = cp2p_buf_append_lp(out, payload, n);
    return rc;
}

int cp2p_envelope_seal(const cp2p_privkey_t *k, const char *domain, const uint8_t *type,
                       size_t type_len, const uint8_t *payload, size_t n, cp2p_buf_t *out)
{
    if (!k || !domain || !out || (!type && type_len) || (!payload && n))
        return CP2P_EINVAL;
    cp2p_buf_t key = {0}, msg = {0}, sig = {0};
    int rc = cp2p_pubkey_marshal(cp2p_privkey_public(k), &key);
    if (!rc)
        rc = signing_buffer(domain, type, type_len, payload, n, &msg);
    if (!rc)
        rc = cp2p_privkey_sign(k, msg.data, msg.len, &sig);
    if (!rc) {
        Envelope__Envelope e = ENVELOPE__ENVELOPE__INIT;
        e.public_key.data = key.data;
        e.public_key.len = key.len;
        e.payload_type.data = (uint8_t *)type;
        e.payload_type.len = type_len;
        e.payload.data = (uint8_t *)payload;
        e.payload.len = n;
        e.signature.data = sig.data;
        e.signature.len = sig.len;
        size_t len = envelope__envelope__get_packed_size(&e);
        rc = cp2p_buf_reserve(out, len);
        if (!rc)
            out->len += envelope__envelope__pack(&e, out->data + out->len);
    }
    cp2p_buf_free(&key);
    cp2p_buf_free(&msg);
    cp2p_buf_free(&sig);
    return rc;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

int cp2p_envelope_open(const uint8_t *p, size_t n, const char *domain, cp2p_envelope_t **out)
{
    if ((!p && n) || !domain || !out)
        return CP2P_EINVAL;
    if (n > CP2P_ENVELOPE_MAX)
        return CP2P_EOVERFLOW;
    Envelope__Envelope *e = envelope__envelope__unpack(NULL, n, p);
    if (!e)
        return CP2P_EPARSE;
    cp2p_envelope_t *env = NULL;
    cp2p_pubkey_t *key = NULL;
    cp2p_buf_t msg = {0};
    int rc = e->signature.len ? cp2p_pubkey_unmarshal(e->public_key.data, e->public_key.len, &key)
                              : CP2P_EPARSE;
    if (!rc)
        rc = signing_buffer(domain, e->payload_type.data, e->payload_type.len, e->payload.data,
                            e->payload.len, &msg);
    if (!rc)
        rc = cp2p_pubkey_verify(key, msg.data, msg.len, e->signature.data, e->signature.len);
    if (!rc && !(env = calloc(1, sizeof *env)))
        rc = CP2P_ENOMEM;
    if (!rc) {
        env->payload_type = dup_bytes(e->payload_type.data, e->payload_type.len);
        env->payload_type_len = e->payload_type.len;
        env->payload = dup_bytes(e->payload.data, e->payload.len);
        env->payload_len = e->payload.len;
        env->pubkey = key;
        key = NULL;
        if (!env->payload_type || !env->payload)
            rc = CP2P_ENOMEM;
    }
    if (rc) {
        cp2p_envelope_free(env);
        env = NULL;
    }
    cp2p_pubkey_free(key);
    cp2p_buf_free(&msg);
    envelope__envelope__free_unpacked(e, NULL);
    if (!rc)
        *out = env;
    return rc;
}

void cp2p_envelope_free(cp2p_envelope_t *e)
{
    if (!e)
        return;
    cp2p_pubkey_free(e->pubkey);
    free(e->payload_type);
    free(e->payload);
    free(e);
}

int cp2p_peer_record_add_addr(cp2p_peer_record_t *r, const uint8_t *ma, size_t len)
{
    if (!r || !ma || len == 0)
        return CP2P_EINVAL;
    if (len > CP2P_PEER_RECORD_MAX_ADDR_LEN)
        return CP2P_EOVERFLOW;
    if (r->n_addrs >= CP2P_PEER_RECORD_MAX_ADDRS)
        return CP2P_ELIMIT;
    uint8_t *d = dup_bytes(ma, len);
    if (!d)
        return CP2P_ENOMEM;
    r->addrs[r->n_addrs] = d;
    r->addr_lens[r->n_addrs++] = len;
    return 0;
}

void cp2p_peer_record_clear(cp2p_peer_record_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_addrs; i++)
        free(r->addrs[i]);
    memset(r, 0, sizeof *r);
}

int cp2p_peer_record_encode(const cp2p_peer_record_t *r, cp2p_buf_t *out)
{
    if (!r || !out || r->n_addrs > CP2P_PEER_RECORD_MAX_ADDRS)
        return CP2P_EINVAL;
    PeerRecord__PeerRecord__AddressInfo infos[CP2P_PEER_RECORD_MAX_ADDRS];
    PeerRecord__PeerRecord__AddressInfo *ptrs[CP2P_PEER_RECORD_MAX_ADDRS];
    for (size_t i = 0; i < r->n_addrs; i++) {
        peer_record__peer_record__address_info__init(&infos[i]);
        infos[i].multiaddr.data = r->addrs[i];
        infos[i].multiaddr.len = r->addr_lens[i];
        ptrs[i] = &infos[i];
    }
    PeerRecord__PeerRecord pr = PEER_RECORD__PEER_RECORD__INIT;
    pr.peer_id.data = (uint8_t *)r->peer_id.bytes;
    pr.peer_id.len = r->peer_id.len;
    pr.seq = r->seq;
    pr.n_addresses = r->n_addrs;
    pr.addresses = ptrs;
    size_t len = peer_record__peer_record__get_packed_size(&pr);
    int rc = cp2p_buf_reserve(out, len);
    if (!rc)
        out->len += peer_record__peer_record__pack(&pr, out->data + out->len);
    return rc;
}

int cp2p_peer_record_decode(const uint8_t *p, size_t n, cp2p_peer_record_t *r)
{
    if ((!p && n) || !r)
        return CP2P_EINVAL;
    cp2p_peer_record_clear(r);
    if (n > CP2P_ENVELOPE_MAX)
        return CP2P_EOVERFLOW;
    PeerRecord__PeerRecord *pr = peer_record__peer_record__unpack(NULL, n, p);
    if (!pr)
        return CP2P_EPARSE;
    int rc = pr->n_addresses > CP2P_PEER_RECORD_MAX_ADDRS ? CP2P_ELIMIT : 0;
    if (!rc)
        rc = cp2p_peer_id_from_bytes(pr->peer_id.data, pr->peer_id.len, &r->peer_id);
    r->seq = pr->seq;
    for (size_t i = 0; !rc && i < pr->n_addresses; i++) {
        ProtobufCBinaryData *ma = &pr->addresses[i]->multiaddr;
        rc = ma->len ? cp2p_peer_record_add_addr(r, ma->data, ma->len) : CP2P_EPARSE;
    }
    peer_record__peer_record__free_unpacked(pr, NULL);
    if (rc) {
        cp2p_peer_record_clear(r);
        /* Whatever is wrong inside a record came from the remote: a parse error. */
        return rc == CP2P_ENOMEM || rc == CP2P_ELIMIT || rc == CP2P_EOVERFLOW ? rc : CP2P_EPARSE;
    }
    return 0;
}

int cp2p_peer_record_seal(const cp2p_privkey_t *k, const cp2p_peer_record_t *r, cp2p_buf_t *out)
{
    if (!k || !r || !out)
        return CP2P_EINVAL;
    if (!cp2p_peer_id_matches_pubkey(&r->peer_id, cp2p_privkey_public(k)))
        return CP2P_EINVAL;
    cp2p_buf_t payload = {0};
    int rc = cp2p_peer_record_encode(r, &payload);
    if (!rc)
        rc = cp2p_envelope_seal(k, CP2P_PEER_RECORD_DOMAIN, CP2P_PEER_RECORD_TYPE,
                                CP2P_PEER_RECORD_TYPE_LEN, payload.data, payload.len, out);
    cp2p_buf_free(&payload);
    return rc;
}

int cp2p_peer_record_open(const uint8_t *p, size_t n, cp2p_peer_record_t *r,
                          cp2p_pubkey_t **signer)
{
    if ((!p && n) || !r)
        return CP2P_EINVAL;
    cp2p_peer_record_clear(r);
    cp2p_envelope_t *env = NULL;
    int rc = cp2p_envelope_open(p, n, CP2P_PEER_RECORD_DOMAIN, &env);
    if (rc)
        return rc;
    if (env->payload_type_len != CP2P_PEER_RECORD_TYPE_LEN ||
        memcmp(env->payload_type, CP2P_PEER_RECORD_TYPE, CP2P_PEER_RECORD_TYPE_LEN))
        rc = CP2P_EPARSE;
    if (!rc)
        rc = cp2p_peer_record_decode(env->payload, env->payload_len, r);
    /* Anyone can sign a record; only the peer's own key may speak for it. */
    if (!rc && !cp2p_peer_id_matches_pubkey(&r->peer_id, env->pubkey))
        rc = CP2P_EPEERID;
    if (!rc && signer) {
        *signer = env->pubkey;
        env->pubkey = NULL;
    }
    if (rc)
        cp2p_peer_record_clear(r);
    cp2p_envelope_free(env);
    return rc;
}
