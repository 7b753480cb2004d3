/* The connection manager's tag table (go-libp2p's basic connection manager:
 * tags, weights, trimming down to a low watermark). See connmgr.h. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "host/connmgr.h"

typedef struct tag {
    char name[CP2P_CONNMGR_MAX_TAG_LEN + 1];
    int weight;
} tag_t;

typedef struct entry {
    cp2p_peer_id_t id;
    tag_t tags[CP2P_CONNMGR_MAX_TAGS];
    size_t ntags;
    uint32_t conns;
    uint64_t since; /* order of connection: a counter, not a clock, so tests are exact */
    uint64_t connected_ms;
} entry_t;

struct cp2p_connmgr {
    entry_t *peers; /* unordered; an entry lives while it has tags or connections */
    size_t n, cap;
    uint64_t seq;
};

int cp2p_connmgr_new(cp2p_connmgr_t **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : CP2P_ENOMEM;
}

void cp2p_connmgr_free(cp2p_connmgr_t *m)
{
    if (!m)
        return;
    free(m->peers);
    free(m);
}

static entry_t *find(const cp2p_connmgr_t *m, const cp2p_peer_id_t *peer)
{
    for (size_t i = 0; i < m->n; i++)
        if (cp2p_peer_id_equal(&m->peers[i].id, peer))
            return &m->peers[i];
    return NULL;
}

static entry_t *add(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer)
{
    if (m->n == CP2P_CONNMGR_MAX_PEERS)
        return NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        if (cap > CP2P_CONNMGR_MAX_PEERS)
            cap = CP2P_CONNMGR_MAX_PEERS;
        entry_t *a = realloc(m->peers, cap * sizeof *a);
        if (!a)
            return NULL;
        m->peers = a;
        m->cap = cap;
    }
    entry_t *e = &m->peers[m->n++];
    memset(e, 0, sizeof *e);
    e->id = *peer;
    return e;
}

/* An entry with neither tags nor connections says nothing: drop it so that
 * the table only holds what matters. */
static void drop_if_idle(cp2p_connmgr_t *m, entry_t *e)
{
    if (e->ntags || e->conns)
        return;
    *e = m->peers[--m->n];
}

int cp2p_connmgr_tag(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer, const char *tag, int weight)
{
    size_t len = tag ? strlen(tag) : 0;
    if (!peer || len == 0 || len > CP2P_CONNMGR_MAX_TAG_LEN)
        return CP2P_EINVAL;
    entry_t *e = find(m, peer);
    if (!e && !(e = add(m, peer)))
        return m->n == CP2P_CONNMGR_MAX_PEERS ? CP2P_ELIMIT : CP2P_ENOMEM;
    for (size_t i = 0; i < e->ntags; i++)
        if (strcmp(e->tags[i].name, tag) == 0) {
            e->tags[i].weight = weight;
            return 0;
        }
    if (e->ntags == CP2P_CONNMGR_MAX_TAGS) {
        drop_if_idle(m, e);
        return CP2P_ELIMIT;
    }
    memcpy(e->tags[e->ntags].name, tag, len + 1);
    e->tags[e->ntags++].weight = weight;
    return 0;
}

int cp2p_connmgr_untag(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer, const char *tag)
{
    if (!peer || !tag)
        return CP2P_EINVAL;
    entry_t *e = find(m, peer);
    if (!e)
        return 0;
    for (size_t i = 0; i < e->ntags; i++)
        if (strcmp(e->tags[i].name, tag) == 0) {
            e->tags[i] = e->tags[--e->ntags];
            break;
        }
    drop_if_idle(m, e);
    return 0;
}

static int64_t value_of(const entry_t *e)
{
    int64_t v = 0; /* at most 16 ints: cannot overflow */
    for (size_t i = 0; i < e->ntags; i++)
        v += e->tags[i].weight;
    return v;
}

int64_t cp2p_connmgr_value(const cp2p_connmgr_t *m, const cp2p_peer_id_t *peer)
{
    const entry_t *e = find(m, peer);
    return e ? value_of(e) : 0;
}

int cp2p_connmgr_connected(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer, uint64_t now_ms)
{
    entry_t *e = find(m, peer);
    if (!e && !(e = add(m, peer)))
        return m->n == CP2P_CONNMGR_MAX_PEERS ? CP2P_ELIMIT : CP2P_ENOMEM;
    if (e->conns++ == 0) {
        e->since = m->seq++;
        e->connected_ms = now_ms;
    }
    return 0;
}

void cp2p_connmgr_disconnected(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer)
{
    entry_t *e = find(m, peer);
    /* A peer that could not be tracked when it connected is not here. */
    if (!e || e->conns == 0)
        return;
    e->conns--;
    drop_if_idle(m, e);
}

/* Nonzero if a should go before b. */
static int less_valuable(const entry_t *a, const entry_t *b)
{
    int64_t va = value_of(a), vb = value_of(b);
    if (va != vb)
        return va < vb;
    if ((a->ntags == 0) != (b->ntags == 0))
        return a->ntags == 0;
    return a->since < b->since;
}

size_t cp2p_connmgr_victims(const cp2p_connmgr_t *m, size_t excess, uint64_t spare_after_ms,
                            cp2p_peer_id_t *out, size_t cap)
{
    /* Selection by repeated minimum: O(n * picks), and both are bounded by
     * the connection limit, so no scratch array is needed. */
    size_t picked = 0, freed = 0;
    const entry_t *last = NULL;
    while (freed < excess && picked < cap) {
        const entry_t *best = NULL;
        for (size_t i = 0; i < m->n; i++) {
            const entry_t *e = &m->peers[i];
            if (e->conns == 0 || e->connected_ms > spare_after_ms ||
                (last && !less_valuable(last, e)))
                continue;
            if (!best || less_valuable(e, best))
                best = e;
        }
        if (!best)
            break;
        out[picked++] = best->id;
        freed += best->conns;
        last = best;
    }
    return picked;
}
