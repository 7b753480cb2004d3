/* Insertion-ordered id map with expiry (see ps_idmap.h). */
#include "pubsub/ps_idmap.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"

static uint64_t hash_of(const ps_idmap_t *m, const uint8_t *id, size_t len)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, id, len, m->key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

int ps_idmap_init(ps_idmap_t *m, size_t max, void (*free_value)(void *))
{
    memset(m, 0, sizeof *m);
    if (sodium_init() < 0)
        return CP2P_ECRYPTO;
    m->n_buckets = 64;
    while (m->n_buckets < max && m->n_buckets < (1u << 20))
        m->n_buckets <<= 1;
    if (!(m->buckets = calloc(m->n_buckets, sizeof *m->buckets)))
        return CP2P_ENOMEM;
    m->max = max;
    m->free_value = free_value;
    randombytes_buf(m->key, sizeof m->key);
    return 0;
}

void ps_idmap_free(ps_idmap_t *m)
{
    while (m->oldest)
        ps_idmap_del(m, m->oldest);
    free(m->buckets);
    memset(m, 0, sizeof *m);
}

ps_ident_t *ps_idmap_get(const ps_idmap_t *m, const uint8_t *id, size_t len)
{
    if (!m->buckets)
        return NULL;
    uint64_t h = hash_of(m, id, len);
    for (ps_ident_t *e = m->buckets[h & (m->n_buckets - 1)]; e; e = e->chain)
        if (e->hash == h && e->len == len && !memcmp(e->id, id, len))
            return e;
    return NULL;
}

ps_ident_t *ps_idmap_put(ps_idmap_t *m, const uint8_t *id, size_t len, uint64_t expiry, void *value)
{
    if (!m->buckets)
        return NULL;
    if (m->count >= m->max && m->oldest)
        ps_idmap_del(m, m->oldest);
    ps_ident_t *e = malloc(sizeof *e + len);
    if (!e)
        return NULL;
    e->hash = hash_of(m, id, len);
    e->expiry = expiry;
    e->value = value;
    e->len = len;
    memcpy(e->id, id, len);
    ps_ident_t **b = &m->buckets[e->hash & (m->n_buckets - 1)];
    e->chain = *b;
    *b = e;
    e->newer = NULL;
    e->older = m->newest;
    if (m->newest)
        m->newest->newer = e;
    else
        m->oldest = e;
    m->newest = e;
    m->count++;
    return e;
}

void ps_idmap_del(ps_idmap_t *m, ps_ident_t *e)
{
    ps_ident_t **b = &m->buckets[e->hash & (m->n_buckets - 1)];
    while (*b != e)
        b = &(*b)->chain;
    *b = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        m->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        m->newest = e->older;
    m->count--;
    if (m->free_value && e->value)
        m->free_value(e->value);
    free(e);
}

void ps_idmap_expire(ps_idmap_t *m, uint64_t now)
{
    while (m->oldest && m->oldest->expiry <= now)
        ps_idmap_del(m, m->oldest);
}
