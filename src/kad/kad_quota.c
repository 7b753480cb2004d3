/* Per-peer store quotas: a hash table of peers, each with the array of its
 * charges (at most its records + providers limits). See kad_quota.h. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "cp2p/error.h"
#include "kad/kad_quota.h"

typedef struct charge {
    uint64_t key_hash; /* keyed by the table's random seed: remotes cannot aim collisions */
    uint64_t bytes;
    uint64_t expires;
    uint8_t kind;
} charge_t;

typedef struct qpeer {
    struct qpeer *next;
    cp2p_peer_id_t id;
    charge_t *v;
    uint32_t n, cap;
    uint32_t count[2];
    uint64_t bytes;
} qpeer_t;

struct kad_quota {
    kad_quota_limits_t lim;
    qpeer_t **buckets;
    size_t mask;
    size_t entries;
    uint64_t seed[2];
};

static uint64_t hash(const kad_quota_t *q, uint64_t salt, const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ q->seed[0] ^ salt;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    h ^= q->seed[1];
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

int kad_quota_new(const kad_quota_limits_t *limits, kad_quota_t **out)
{
    kad_quota_t *q = calloc(1, sizeof *q);
    if (!q)
        return CP2P_ENOMEM;
    q->lim = *limits;
    size_t nb = 256;
    while (nb < q->lim.max_entries / 8 && nb < (1u << 16))
        nb <<= 1;
    q->mask = nb - 1;
    q->buckets = calloc(nb, sizeof *q->buckets);
    if (!q->buckets || RAND_bytes((unsigned char *)q->seed, sizeof q->seed) != 1) {
        free(q->buckets);
        free(q);
        return CP2P_ENOMEM;
    }
    *out = q;
    return 0;
}

void kad_quota_free(kad_quota_t *q)
{
    if (!q)
        return;
    for (size_t b = 0; b <= q->mask; b++)
        for (qpeer_t *p = q->buckets[b], *next; p; p = next) {
            next = p->next;
            free(p->v);
            free(p);
        }
    free(q->buckets);
    free(q);
}

static qpeer_t **find(const kad_quota_t *q, const cp2p_peer_id_t *id)
{
    qpeer_t **pp = &q->buckets[hash(q, 0, id->bytes, id->len) & q->mask];
    while (*pp && !cp2p_peer_id_equal(&(*pp)->id, id))
        pp = &(*pp)->next;
    return pp;
}

static void drop_charge(kad_quota_t *q, qpeer_t *p, uint32_t i)
{
    p->count[p->v[i].kind]--;
    p->bytes -= p->v[i].bytes;
    p->v[i] = p->v[--p->n];
    q->entries--;
}

static void expire(kad_quota_t *q, qpeer_t *p, uint64_t now)
{
    for (uint32_t i = p->n; i-- > 0;)
        if (p->v[i].expires <= now)
            drop_charge(q, p, i);
}

/* Drop every peer's expired charges, and the peers left with none. */
static void expire_all(kad_quota_t *q, uint64_t now)
{
    for (size_t b = 0; b <= q->mask; b++)
        for (qpeer_t **pp = &q->buckets[b]; *pp;) {
            qpeer_t *p = *pp;
            expire(q, p, now);
            if (p->n) {
                pp = &p->next;
                continue;
            }
            *pp = p->next;
            free(p->v);
            free(p);
        }
}

static int over(const kad_quota_t *q, const qpeer_t *p, kad_quota_kind_t kind, uint64_t more,
                int new_entry)
{
    uint32_t lim = kind == KAD_QUOTA_RECORD ? q->lim.records : q->lim.providers;
    return (new_entry && p->count[kind] >= lim) || p->bytes + more > q->lim.bytes;
}

int kad_quota_charge(kad_quota_t *q, const cp2p_peer_id_t *peer, kad_quota_kind_t kind,
                     const uint8_t *key, size_t key_len, uint64_t bytes, uint64_t now_ms,
                     uint64_t expires_ms)
{
    if (!peer || peer->len == 0 || peer->len > CP2P_PEER_ID_MAX)
        return CP2P_EINVAL;
    qpeer_t **pp = find(q, peer), *p = *pp;
    uint64_t kh = hash(q, 1 + (uint64_t)kind, key, key_len);
    if (p) {
        for (uint32_t i = 0; i < p->n; i++) {
            charge_t *c = &p->v[i];
            if (c->kind != kind || c->key_hash != kh)
                continue;
            /* renewed: only a bigger value needs room */
            if (bytes > c->bytes && over(q, p, kind, bytes - c->bytes, 0)) {
                expire(q, p, now_ms);
                return CP2P_ELIMIT; /* the old charge stays, as the old value does */
            }
            p->bytes = p->bytes - c->bytes + bytes;
            c->bytes = bytes;
            c->expires = expires_ms;
            return 0;
        }
        if (over(q, p, kind, bytes, 1)) {
            expire(q, p, now_ms);
            if (over(q, p, kind, bytes, 1))
                return CP2P_ELIMIT;
        }
    } else if (bytes > q->lim.bytes ||
               (kind == KAD_QUOTA_RECORD ? q->lim.records : q->lim.providers) == 0) {
        return CP2P_ELIMIT;
    }
    if (q->entries >= q->lim.max_entries) {
        expire_all(q, now_ms);
        pp = find(q, peer);
        p = *pp;
        if (q->entries >= q->lim.max_entries)
            return CP2P_ELIMIT;
    }
    if (!p) {
        if (!(p = calloc(1, sizeof *p)))
            return CP2P_ENOMEM;
        p->id = *peer;
        *pp = p;
    }
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 8;
        charge_t *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return CP2P_ENOMEM; /* p stays, with what it had (maybe nothing) */
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = (charge_t){kh, bytes, expires_ms, (uint8_t)kind};
    p->count[kind]++;
    p->bytes += bytes;
    q->entries++;
    return 0;
}

void kad_quota_of(const kad_quota_t *q, const cp2p_peer_id_t *peer, uint32_t *records,
                  uint32_t *providers, uint64_t *bytes)
{
    const qpeer_t *p = *find(q, peer);
    *records = p ? p->count[KAD_QUOTA_RECORD] : 0;
    *providers = p ? p->count[KAD_QUOTA_PROVIDER] : 0;
    *bytes = p ? p->bytes : 0;
}
