/* Kademlia record and provider stores: the checked interface and the memory
 * backend (libp2p kad-dht spec, "Value storage and retrieval", "Content
 * provider advertisement and discovery"). */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "kad/kad_store.h"
#include "kad/kad_validate.h"

void cp2p_kad_store_limits_defaults(cp2p_kad_store_limits_t *l)
{
    if (!l->max_records)
        l->max_records = CP2P_KAD_STORE_DEFAULT_MAX_RECORDS;
    if (!l->max_providers)
        l->max_providers = CP2P_KAD_STORE_DEFAULT_MAX_PROVIDERS;
    if (!l->max_providers_per_key)
        l->max_providers_per_key = CP2P_KAD_STORE_DEFAULT_MAX_PROVIDERS_PER_KEY;
    if (!l->max_peers)
        l->max_peers = CP2P_KAD_STORE_DEFAULT_MAX_PEERS;
    if (!l->max_bytes)
        l->max_bytes = CP2P_KAD_STORE_DEFAULT_MAX_BYTES;
}

static int bad_key(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len)
{
    if (!s || !key || key_len == 0)
        return CP2P_EINVAL;
    return key_len > CP2P_KAD_MAX_KEY ? CP2P_EOVERFLOW : 0;
}

int cp2p_kad_store_put_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                              const uint8_t *value, size_t value_len, uint64_t now_ms)
{
    int rc = bad_key(s, key, key_len);
    if (rc)
        return rc;
    if (!value && value_len)
        return CP2P_EINVAL;
    if (value_len > CP2P_KAD_MAX_VALUE)
        return CP2P_EOVERFLOW;
    return s->ops->put_record(s, key, key_len, value, value_len, now_ms);
}

int cp2p_kad_store_get_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                              uint64_t now_ms, cp2p_buf_t *out, uint64_t *received_ms)
{
    int rc = bad_key(s, key, key_len);
    if (rc)
        return rc;
    return out ? s->ops->get_record(s, key, key_len, now_ms, out, received_ms) : CP2P_EINVAL;
}

int cp2p_kad_store_remove_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len)
{
    int rc = bad_key(s, key, key_len);
    return rc ? rc : s->ops->remove_record(s, key, key_len);
}

int cp2p_kad_store_add_provider(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                                const cp2p_peer_id_t *peer, uint64_t now_ms)
{
    int rc = bad_key(s, key, key_len);
    if (rc)
        return rc;
    if (!peer || peer->len == 0 || peer->len > CP2P_PEER_ID_MAX)
        return CP2P_EINVAL;
    return s->ops->add_provider(s, key, key_len, peer, now_ms);
}

int cp2p_kad_store_get_providers(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                                 uint64_t now_ms, cp2p_peer_id_t *out, size_t cap)
{
    int rc = bad_key(s, key, key_len);
    if (rc)
        return rc;
    if (!out && cap)
        return CP2P_EINVAL;
    return s->ops->get_providers(s, key, key_len, now_ms, out, cap);
}

int cp2p_kad_store_expire(cp2p_kad_store_t *s, uint64_t now_ms)
{
    return s ? s->ops->expire(s, now_ms) : CP2P_EINVAL;
}

size_t cp2p_kad_store_record_count(cp2p_kad_store_t *s)
{
    return s ? s->ops->record_count(s) : 0;
}

size_t cp2p_kad_store_provider_count(cp2p_kad_store_t *s)
{
    return s ? s->ops->provider_count(s) : 0;
}

int cp2p_kad_store_save_peers(cp2p_kad_store_t *s, const cp2p_kad_saved_peer_t *peers, size_t n)
{
    if (!s || (!peers && n))
        return CP2P_EINVAL;
    if (n > s->limits.max_peers)
        return CP2P_ELIMIT;
    for (size_t i = 0; i < n; i++)
        if (peers[i].id.len == 0 || peers[i].id.len > CP2P_PEER_ID_MAX ||
            peers[i].addrs_len > CP2P_KAD_SAVED_ADDR_BYTES)
            return CP2P_EINVAL;
    return s->ops->save_peers(s, peers, n);
}

void cp2p_kad_saved_peer_set_addrs(cp2p_kad_saved_peer_t *p, const cp2p_multiaddr_t *addrs,
                                   size_t n)
{
    size_t off = 0, kept = 0;
    for (size_t i = 0; i < n && kept < CP2P_KAD_SAVED_ADDRS; i++) {
        size_t len = addrs[i].len;
        if (!len || len > 255 || off + 1 + len > CP2P_KAD_SAVED_ADDR_BYTES)
            continue;
        p->addrs[off] = (uint8_t)len;
        memcpy(p->addrs + off + 1, addrs[i].bytes, len);
        off += 1 + len;
        kept++;
    }
    p->addrs_len = (uint16_t)off;
}

size_t cp2p_kad_saved_peer_addrs(const cp2p_kad_saved_peer_t *p, cp2p_multiaddr_t *out,
                                 size_t cap)
{
    size_t off = 0, n = 0;
    size_t end = p->addrs_len < CP2P_KAD_SAVED_ADDR_BYTES ? p->addrs_len
                                                          : CP2P_KAD_SAVED_ADDR_BYTES;
    while (n < cap && off < end) {
        size_t len = p->addrs[off];
        if (!len || off + 1 + len > end ||
            cp2p_multiaddr_from_bytes(p->addrs + off + 1, len, &out[n]) < 0)
            break;
        off += 1 + len;
        n++;
    }
    return n;
}

int cp2p_kad_store_load_peers(cp2p_kad_store_t *s, cp2p_kad_saved_peer_t *out, size_t cap)
{
    if (!s || (!out && cap))
        return CP2P_EINVAL;
    return s->ops->load_peers(s, out, cap);
}

void cp2p_kad_store_free(cp2p_kad_store_t *s)
{
    if (s)
        s->ops->free(s);
}

/* ---- memory backend ---- */

#define NBUCKETS 4096

typedef struct rec {
    struct rec *next;
    uint8_t *key, *value;
    size_t key_len, value_len;
    uint64_t received_ms, expires_ms;
} rec_t;

typedef struct prov {
    cp2p_peer_id_t id;
    uint64_t expires_ms;
} prov_t;

typedef struct pkey {
    struct pkey *next;
    uint8_t *key;
    size_t key_len;
    prov_t *p;
    size_t n, cap;
} pkey_t;

typedef struct mem {
    cp2p_kad_store_t base;
    rec_t *recs[NBUCKETS];
    pkey_t *pkeys[NBUCKETS];
    size_t n_recs, n_provs;
    uint64_t bytes;
    cp2p_kad_saved_peer_t *peers;
    size_t n_peers;
} mem_t;

static size_t slot(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return (size_t)(h % NBUCKETS);
}

static rec_t **rec_find(mem_t *m, const uint8_t *key, size_t key_len)
{
    rec_t **pp = &m->recs[slot(key, key_len)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->key_len == key_len && !memcmp((*pp)->key, key, key_len))
            break;
    return pp;
}

static pkey_t **pkey_find(mem_t *m, const uint8_t *key, size_t key_len)
{
    pkey_t **pp = &m->pkeys[slot(key, key_len)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->key_len == key_len && !memcmp((*pp)->key, key, key_len))
            break;
    return pp;
}

static void rec_unlink(mem_t *m, rec_t **pp)
{
    rec_t *r = *pp;
    *pp = r->next;
    m->bytes -= r->key_len + r->value_len;
    m->n_recs--;
    free(r->key);
    free(r->value);
    free(r);
}

static void pkey_unlink(mem_t *m, pkey_t **pp)
{
    pkey_t *k = *pp;
    *pp = k->next;
    m->bytes -= k->key_len + k->n * sizeof *k->p;
    m->n_provs -= k->n;
    free(k->key);
    free(k->p);
    free(k);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

int cp2p_kad_store_keeps_old(const uint8_t *key, size_t key_len, const uint8_t *value,
                             size_t value_len, const uint8_t *old, size_t old_len)
{
    /* The new one first: between equals (and values without an order) it wins. */
    const uint8_t *vals[2] = {value, old};
    size_t lens[2] = {value_len, old_len};
    return cp2p_kad_select(key, key_len, vals, lens, 2) == 1;
}

static int mem_put_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                          const uint8_t *value, size_t value_len, uint64_t now_ms)
{
    mem_t *m = (mem_t *)s;
    rec_t **pp = rec_find(m, key, key_len);
    if (*pp && (*pp)->expires_ms > now_ms &&
        cp2p_kad_store_keeps_old(key, key_len, value, value_len, (*pp)->value, (*pp)->value_len))
        return CP2P_EREFUSED;
    uint64_t old = *pp ? (*pp)->key_len + (*pp)->value_len : 0;
    if (!*pp && m->n_recs >= s->limits.max_records)
        return CP2P_ELIMIT;
    if (m->bytes - old + key_len + value_len > s->limits.max_bytes)
        return CP2P_ELIMIT;
    uint8_t *v = dup_bytes(value, value_len);
    if (!v)
        return CP2P_ENOMEM;
    rec_t *r = *pp;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)) || !(r->key = dup_bytes(key, key_len))) {
            free(r);
            free(v);
            return CP2P_ENOMEM;
        }
        r->key_len = key_len;
        *pp = r;
        m->n_recs++;
    }
    free(r->value);
    r->value = v;
    r->value_len = value_len;
    r->received_ms = now_ms;
    r->expires_ms = now_ms + CP2P_KAD_RECORD_TTL_MS;
    m->bytes = m->bytes - old + key_len + value_len;
    return 0;
}

static int mem_get_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                          uint64_t now_ms, cp2p_buf_t *out, uint64_t *received_ms)
{
    rec_t *r = *rec_find((mem_t *)s, key, key_len);
    if (!r || r->expires_ms <= now_ms)
        return CP2P_ENOTFOUND;
    if (received_ms)
        *received_ms = r->received_ms;
    return cp2p_buf_append(out, r->value, r->value_len);
}

static int mem_remove_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len)
{
    mem_t *m = (mem_t *)s;
    rec_t **pp = rec_find(m, key, key_len);
    if (!*pp)
        return CP2P_ENOTFOUND;
    rec_unlink(m, pp);
    return 0;
}

static int mem_add_provider(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                            const cp2p_peer_id_t *peer, uint64_t now_ms)
{
    mem_t *m = (mem_t *)s;
    const cp2p_kad_store_limits_t *l = &s->limits;
    pkey_t **pp = pkey_find(m, key, key_len), *k = *pp;
    for (size_t i = 0; k && i < k->n; i++)
        if (cp2p_peer_id_equal(&k->p[i].id, peer)) {
            k->p[i].expires_ms = now_ms + CP2P_KAD_PROVIDER_TTL_MS;
            return 0;
        }
    if (m->n_provs >= l->max_providers || (k && k->n >= l->max_providers_per_key) ||
        m->bytes + key_len + sizeof(prov_t) > l->max_bytes)
        return CP2P_ELIMIT;
    if (!k) {
        if (!(k = calloc(1, sizeof *k)) || !(k->key = dup_bytes(key, key_len))) {
            free(k);
            return CP2P_ENOMEM;
        }
        k->key_len = key_len;
        *pp = k;
        m->bytes += key_len;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4;
        prov_t *np = realloc(k->p, cap * sizeof *np);
        if (!np)
            return CP2P_ENOMEM;
        k->p = np;
        k->cap = cap;
    }
    k->p[k->n++] = (prov_t){.id = *peer, .expires_ms = now_ms + CP2P_KAD_PROVIDER_TTL_MS};
    m->n_provs++;
    m->bytes += sizeof(prov_t);
    return 0;
}

static int mem_get_providers(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                             uint64_t now_ms, cp2p_peer_id_t *out, size_t cap)
{
    pkey_t *k = *pkey_find((mem_t *)s, key, key_len);
    size_t n = 0;
    for (size_t i = 0; k && i < k->n && n < cap; i++)
        if (k->p[i].expires_ms > now_ms)
            out[n++] = k->p[i].id;
    return (int)n;
}

static int mem_expire(cp2p_kad_store_t *s, uint64_t now_ms)
{
    mem_t *m = (mem_t *)s;
    int gone = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        for (rec_t **pp = &m->recs[b]; *pp;) {
            if ((*pp)->expires_ms <= now_ms) {
                rec_unlink(m, pp);
                gone++;
            } else {
                pp = &(*pp)->next;
            }
        }
        for (pkey_t **pp = &m->pkeys[b]; *pp;) {
            pkey_t *k = *pp;
            size_t kept = 0;
            for (size_t i = 0; i < k->n; i++)
                if (k->p[i].expires_ms > now_ms)
                    k->p[kept++] = k->p[i];
            gone += (int)(k->n - kept);
            m->n_provs -= k->n - kept;
            m->bytes -= (k->n - kept) * sizeof *k->p;
            k->n = kept;
            if (kept == 0)
                pkey_unlink(m, pp);
            else
                pp = &k->next;
        }
    }
    return gone;
}

static size_t mem_record_count(cp2p_kad_store_t *s)
{
    return ((mem_t *)s)->n_recs;
}

static size_t mem_provider_count(cp2p_kad_store_t *s)
{
    return ((mem_t *)s)->n_provs;
}

static int mem_save_peers(cp2p_kad_store_t *s, const cp2p_kad_saved_peer_t *peers, size_t n)
{
    mem_t *m = (mem_t *)s;
    cp2p_kad_saved_peer_t *copy = NULL;
    if (n && !(copy = malloc(n * sizeof *copy)))
        return CP2P_ENOMEM;
    if (n)
        memcpy(copy, peers, n * sizeof *copy);
    free(m->peers);
    m->peers = copy;
    m->n_peers = n;
    return 0;
}

static int mem_load_peers(cp2p_kad_store_t *s, cp2p_kad_saved_peer_t *out, size_t cap)
{
    mem_t *m = (mem_t *)s;
    size_t n = m->n_peers < cap ? m->n_peers : cap;
    if (n)
        memcpy(out, m->peers, n * sizeof *out);
    return (int)n;
}

static void mem_free(cp2p_kad_store_t *s)
{
    mem_t *m = (mem_t *)s;
    for (size_t b = 0; b < NBUCKETS; b++) {
        while (m->recs[b])
            rec_unlink(m, &m->recs[b]);
        while (m->pkeys[b])
            pkey_unlink(m, &m->pkeys[b]);
    }
    free(m->peers);
    free(m);
}

static const cp2p_kad_store_ops_t mem_ops = {
    .put_record = mem_put_record,
    .get_record = mem_get_record,
    .remove_record = mem_remove_record,
    .add_provider = mem_add_provider,
    .get_providers = mem_get_providers,
    .expire = mem_expire,
    .record_count = mem_record_count,
    .provider_count = mem_provider_count,
    .save_peers = mem_save_peers,
    .load_peers = mem_load_peers,
    .free = mem_free,
};

int cp2p_kad_store_new_memory(const cp2p_kad_store_limits_t *limits, cp2p_kad_store_t **out)
{
    if (!out)
        return CP2P_EINVAL;
    mem_t *m = calloc(1, sizeof *m);
    if (!m)
        return CP2P_ENOMEM;
    m->base.ops = &mem_ops;
    if (limits)
        m->base.limits = *limits;
    cp2p_kad_store_limits_defaults(&m->base.limits);
    *out = &m->base;
    return 0;
}
