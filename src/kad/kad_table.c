/* Kademlia routing table: XOR metric over sha256 keys and k-buckets with a
 * replacement cache (libp2p kad-dht spec, "Kademlia routing table"). */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "kad/kad_table.h"

typedef struct entry {
    cp2p_peer_id_t id;
    cp2p_kad_key_t key;
    uint64_t last_seen_ms;
} entry_t;

typedef struct bucket {
    entry_t *members; /* k slots, allocated on first use; least recently seen first */
    size_t n;
    entry_t repl[CP2P_KAD_REPLACEMENTS]; /* most recently seen last */
    size_t n_repl;
    uint64_t refreshed_ms;
} bucket_t;

struct cp2p_kad_table {
    cp2p_peer_id_t self;
    cp2p_kad_key_t self_key;
    size_t k;
    size_t size;
    cp2p_kad_table_change_fn on_change;
    void *change_arg;
    bucket_t buckets[CP2P_KAD_BUCKETS];
};

static void changed(cp2p_kad_table_t *t, const cp2p_peer_id_t *peer, int member)
{
    if (t->on_change)
        t->on_change(peer, member, t->change_arg);
}

void cp2p_kad_table_on_change(cp2p_kad_table_t *t, cp2p_kad_table_change_fn fn, void *arg)
{
    t->on_change = fn;
    t->change_arg = arg;
}

int cp2p_kad_key_of(const uint8_t *p, size_t n, cp2p_kad_key_t *out)
{
    unsigned int len = 0;
    if ((!p && n) || !out)
        return CP2P_EINVAL;
    if (!EVP_Digest(p, n, out->b, &len, EVP_sha256(), NULL) || len != CP2P_KAD_KEY_LEN)
        return CP2P_ECRYPTO;
    return 0;
}

int cp2p_kad_key_of_peer(const cp2p_peer_id_t *id, cp2p_kad_key_t *out)
{
    if (!id)
        return CP2P_EINVAL;
    return cp2p_kad_key_of(id->bytes, id->len, out);
}

unsigned cp2p_kad_key_cpl(const cp2p_kad_key_t *a, const cp2p_kad_key_t *b)
{
    for (unsigned i = 0; i < CP2P_KAD_KEY_LEN; i++) {
        uint8_t x = a->b[i] ^ b->b[i];
        if (x)
            return i * 8 + (unsigned)__builtin_clz(x) - 24;
    }
    return CP2P_KAD_KEY_LEN * 8;
}

int cp2p_kad_key_cmp(const cp2p_kad_key_t *target, const cp2p_kad_key_t *a,
                     const cp2p_kad_key_t *b)
{
    for (unsigned i = 0; i < CP2P_KAD_KEY_LEN; i++) {
        uint8_t da = a->b[i] ^ target->b[i], db = b->b[i] ^ target->b[i];
        if (da != db)
            return da < db ? -1 : 1;
    }
    return 0;
}

int cp2p_kad_table_new(const cp2p_peer_id_t *self, size_t k, cp2p_kad_table_t **out)
{
    if (!self || !out || k > CP2P_KAD_MAX_K)
        return CP2P_EINVAL;
    cp2p_kad_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return CP2P_ENOMEM;
    t->self = *self;
    t->k = k ? k : CP2P_DHT_DEFAULT_K;
    int rc = cp2p_kad_key_of_peer(self, &t->self_key);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void cp2p_kad_table_free(cp2p_kad_table_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < CP2P_KAD_BUCKETS; i++)
        free(t->buckets[i].members);
    free(t);
}

static long find(const entry_t *v, size_t n, const cp2p_peer_id_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (cp2p_peer_id_equal(&v[i].id, id))
            return (long)i;
    return -1;
}

static void take_out(entry_t *v, size_t *n, size_t i)
{
    memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof *v);
    (*n)--;
}

static bucket_t *bucket_of(cp2p_kad_table_t *t, const cp2p_kad_key_t *key)
{
    unsigned cpl = cp2p_kad_key_cpl(&t->self_key, key);
    return cpl >= CP2P_KAD_BUCKETS ? NULL : &t->buckets[cpl];
}

int cp2p_kad_table_add(cp2p_kad_table_t *t, const cp2p_peer_id_t *peer, uint64_t now_ms,
                       cp2p_peer_id_t *stale)
{
    if (!t || !peer || peer->len == 0)
        return CP2P_EINVAL;
    entry_t e = {.id = *peer, .last_seen_ms = now_ms};
    int rc = cp2p_kad_key_of_peer(peer, &e.key);
    if (rc)
        return rc;
    bucket_t *b = bucket_of(t, &e.key);
    if (!b || cp2p_peer_id_equal(peer, &t->self))
        return CP2P_EINVAL;
    long i = find(b->members, b->n, peer);
    if (i >= 0) {
        take_out(b->members, &b->n, (size_t)i);
        b->members[b->n++] = e;
        return 0;
    }
    if (b->n < t->k) {
        if (!b->members && !(b->members = calloc(t->k, sizeof *b->members)))
            return CP2P_ENOMEM;
        b->members[b->n++] = e;
        t->size++;
        changed(t, peer, 1);
        return 0;
    }
    /* Full: long-lived peers are the likeliest to stay, so the newcomer waits. */
    i = find(b->repl, b->n_repl, peer);
    if (i >= 0)
        take_out(b->repl, &b->n_repl, (size_t)i);
    else if (b->n_repl == CP2P_KAD_REPLACEMENTS)
        take_out(b->repl, &b->n_repl, 0);
    b->repl[b->n_repl++] = e;
    if (stale)
        *stale = b->members[0].id;
    return CP2P_ELIMIT;
}

int cp2p_kad_table_remove(cp2p_kad_table_t *t, const cp2p_peer_id_t *peer)
{
    if (!t || !peer)
        return CP2P_EINVAL;
    cp2p_kad_key_t key;
    int rc = cp2p_kad_key_of_peer(peer, &key);
    if (rc)
        return rc;
    bucket_t *b = bucket_of(t, &key);
    if (!b)
        return CP2P_ENOTFOUND;
    long i = find(b->repl, b->n_repl, peer);
    if (i >= 0) {
        take_out(b->repl, &b->n_repl, (size_t)i);
        return 0;
    }
    if ((i = find(b->members, b->n, peer)) < 0)
        return CP2P_ENOTFOUND;
    take_out(b->members, &b->n, (size_t)i);
    t->size--;
    changed(t, peer, 0);
    if (b->n_repl) {
        b->members[b->n++] = b->repl[--b->n_repl];
        t->size++;
        changed(t, &b->members[b->n - 1].id, 1);
    }
    return 0;
}

int cp2p_kad_table_contains(const cp2p_kad_table_t *t, const cp2p_peer_id_t *peer)
{
    cp2p_kad_key_t key;
    if (!t || !peer || cp2p_kad_key_of_peer(peer, &key))
        return 0;
    unsigned cpl = cp2p_kad_key_cpl(&t->self_key, &key);
    if (cpl >= CP2P_KAD_BUCKETS)
        return 0;
    return find(t->buckets[cpl].members, t->buckets[cpl].n, peer) >= 0;
}

size_t cp2p_kad_table_size(const cp2p_kad_table_t *t)
{
    return t ? t->size : 0;
}

size_t cp2p_kad_table_k(const cp2p_kad_table_t *t)
{
    return t ? t->k : 0;
}

size_t cp2p_kad_table_closest(const cp2p_kad_table_t *t, const cp2p_kad_key_t *target,
                              cp2p_peer_id_t *out, size_t cap)
{
    if (!t || !target || !out || !cap)
        return 0;
    /* Insertion into a short sorted list: tables hold a few thousand peers at most. */
    const entry_t **best = malloc(cap * sizeof *best);
    if (!best)
        return 0;
    size_t n = 0;
    for (size_t bi = 0; bi < CP2P_KAD_BUCKETS; bi++) {
        const bucket_t *b = &t->buckets[bi];
        for (size_t i = 0; i < b->n; i++) {
            const entry_t *e = &b->members[i];
            size_t pos = n;
            while (pos > 0 && cp2p_kad_key_cmp(target, &e->key, &best[pos - 1]->key) < 0)
                pos--;
            if (pos >= cap)
                continue;
            size_t last = n < cap ? n : cap - 1;
            memmove(&best[pos + 1], &best[pos], (last - pos) * sizeof *best);
            best[pos] = e;
            if (n < cap)
                n++;
        }
    }
    for (size_t i = 0; i < n; i++)
        out[i] = best[i]->id;
    free(best);
    return n;
}

size_t cp2p_kad_table_peers(const cp2p_kad_table_t *t, cp2p_peer_id_t *out, size_t cap)
{
    if (!t)
        return 0;
    size_t n = 0;
    for (size_t bi = 0; bi < CP2P_KAD_BUCKETS; bi++)
        for (size_t i = 0; i < t->buckets[bi].n; i++, n++)
            if (out && n < cap)
                out[n] = t->buckets[bi].members[i].id;
    return n;
}

size_t cp2p_kad_table_stale_buckets(const cp2p_kad_table_t *t, uint64_t now_ms,
                                    uint64_t max_age_ms, unsigned *cpls, size_t cap)
{
    if (!t || !cpls)
        return 0;
    unsigned deepest = 0;
    for (unsigned i = 0; i < CP2P_KAD_BUCKETS; i++)
        if (t->buckets[i].n)
            deepest = i + 1;
    if (deepest > CP2P_KAD_MAX_REFRESH_CPL)
        deepest = CP2P_KAD_MAX_REFRESH_CPL;
    size_t n = 0;
    for (unsigned i = 0; i <= deepest && n < cap; i++) {
        uint64_t r = t->buckets[i].refreshed_ms;
        if (r == 0 || now_ms - r >= max_age_ms)
            cpls[n++] = i;
    }
    return n;
}

void cp2p_kad_table_mark_refreshed(cp2p_kad_table_t *t, const cp2p_kad_key_t *target,
                                   uint64_t now_ms)
{
    if (!t || !target)
        return;
    bucket_t *b = bucket_of(t, target);
    if (b)
        b->refreshed_ms = now_ms;
}

int cp2p_kad_table_refresh_target(const cp2p_kad_table_t *t, unsigned cpl, cp2p_peer_id_t *out)
{
    if (!t || !out || cpl > CP2P_KAD_MAX_REFRESH_CPL)
        return CP2P_EINVAL;
    cp2p_peer_id_t id = {.len = 34, .bytes = {0x12, 0x20}};
    /* The chance of missing for 2^(cpl+8) tries is about e^-128. */
    for (unsigned long tries = 0; tries < (1ul << (cpl + 8)); tries++) {
        cp2p_kad_key_t key;
        if (RAND_bytes(id.bytes + 2, 32) != 1 || cp2p_kad_key_of_peer(&id, &key))
            return CP2P_ECRYPTO;
        if (cp2p_kad_key_cpl(&t->self_key, &key) == cpl) {
            *out = id;
            return 0;
        }
    }
    return CP2P_ELIMIT;
}
