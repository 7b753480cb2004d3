/* The resource manager's scopes and their counters (the model of
 * go-libp2p's resource manager: a use counts in its scope and every scope
 * above it, and a reservation is all or nothing). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "swarm/rcmgr.h"

#define PEER_BUCKETS 1024

struct cp2p_rcmgr {
    cp2p_rc_scope_t system, transient;
    uint64_t peer_limit[RC_NKINDS];
    uint64_t peer_refused[RC_NKINDS]; /* every peer's, those gone included */
    uint64_t peer_memory_peak;
    uint64_t protocol_limit[RC_NKINDS];
    cp2p_rc_scope_t *peers[PEER_BUCKETS];
    size_t npeers;
    cp2p_rc_scope_t *protocols;
    size_t nprotocols;
};

static const struct {
    const char *name;
    size_t off;
} fields[RC_NKINDS] = {
#define F(k, x) [k] = {#x, offsetof(cp2p_rc_limits_t, x)}
    F(RC_MEMORY, memory),   F(RC_CONNS, conns),     F(RC_CONNS_IN, conns_in),
    F(RC_CONNS_OUT, conns_out), F(RC_STREAMS, streams), F(RC_STREAMS_IN, streams_in),
    F(RC_STREAMS_OUT, streams_out), F(RC_FDS, fds),
#undef F
};

const char *cp2p_rc_limit_name(size_t i)
{
    return i < RC_NKINDS ? fields[i].name : NULL;
}

uint64_t cp2p_rc_limit_get(const cp2p_rc_limits_t *l, size_t i)
{
    uint64_t v = 0;
    if (i < RC_NKINDS)
        memcpy(&v, (const char *)l + fields[i].off, sizeof v);
    return v;
}

void cp2p_rc_limit_set(cp2p_rc_limits_t *l, size_t i, uint64_t v)
{
    if (i < RC_NKINDS)
        memcpy((char *)l + fields[i].off, &v, sizeof v);
}

const char *cp2p_rc_kind_name(cp2p_rc_kind_t k)
{
    return k < RC_NKINDS ? fields[k].name : "?";
}

const char *cp2p_rc_scope_name(const cp2p_rc_scope_t *s)
{
    switch (s->type) {
    case CP2P_RC_SCOPE_SYSTEM: return "system";
    case CP2P_RC_SCOPE_TRANSIENT: return "transient";
    case CP2P_RC_SCOPE_PEER: return "peer";
    default: return s->protocol;
    }
}

static void to_array(const cp2p_rc_limits_t *l, uint64_t *v)
{
    for (size_t k = 0; k < RC_NKINDS; k++)
        v[k] = cp2p_rc_limit_get(l, k);
}

static void from_array(const uint64_t *v, cp2p_rc_limits_t *l)
{
    for (size_t k = 0; k < RC_NKINDS; k++)
        cp2p_rc_limit_set(l, k, v[k]);
}

/* 0 and CP2P_RC_UNLIMITED both mean no limit inside. */
static void limits_in(const cp2p_rc_limits_t *l, uint64_t *v)
{
    to_array(l, v);
    for (int k = 0; k < RC_NKINDS; k++)
        if (v[k] == CP2P_RC_UNLIMITED)
            v[k] = 0;
}

int cp2p_rcmgr_new(const cp2p_rcmgr_config_t *cfg, cp2p_rcmgr_t **out)
{
    cp2p_rcmgr_t *m = calloc(1, sizeof *m);
    if (!m)
        return CP2P_ENOMEM;
    m->system.type = CP2P_RC_SCOPE_SYSTEM;
    m->transient.type = CP2P_RC_SCOPE_TRANSIENT;
    m->system.m = m->transient.m = m;
    limits_in(&cfg->system, m->system.limit);
    limits_in(&cfg->transient, m->transient.limit);
    limits_in(&cfg->peer, m->peer_limit);
    limits_in(&cfg->protocol, m->protocol_limit);
    *out = m;
    return 0;
}

void cp2p_rcmgr_free(cp2p_rcmgr_t *m)
{
    if (!m)
        return;
    for (size_t b = 0; b < PEER_BUCKETS; b++)
        for (cp2p_rc_scope_t *s = m->peers[b], *n; s; s = n) {
            n = s->next;
            free(s);
        }
    for (cp2p_rc_scope_t *s = m->protocols, *n; s; s = n) {
        n = s->next;
        free(s->protocol);
        free(s);
    }
    free(m);
}

cp2p_rc_scope_t *cp2p_rcmgr_system(cp2p_rcmgr_t *m)
{
    return &m->system;
}

cp2p_rc_scope_t *cp2p_rcmgr_transient(cp2p_rcmgr_t *m)
{
    return &m->transient;
}

static size_t bucket(const cp2p_peer_id_t *p)
{
    uint32_t h = 2166136261u; /* FNV-1a over the multihash's last bytes: the digest */
    size_t from = p->len > 8 ? p->len - 8u : 0;
    for (size_t i = from; i < p->len; i++)
        h = (h ^ p->bytes[i]) * 16777619u;
    return h % PEER_BUCKETS;
}

static cp2p_rc_scope_t *find_peer(cp2p_rcmgr_t *m, const cp2p_peer_id_t *peer)
{
    for (cp2p_rc_scope_t *s = m->peers[bucket(peer)]; s; s = s->next)
        if (cp2p_peer_id_equal(&s->peer, peer))
            return s;
    return NULL;
}

cp2p_rc_scope_t *cp2p_rcmgr_peer(cp2p_rcmgr_t *m, const cp2p_peer_id_t *peer)
{
    cp2p_rc_scope_t *s = find_peer(m, peer);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return NULL;
        s->type = CP2P_RC_SCOPE_PEER;
        s->m = m;
        s->peer = *peer;
        memcpy(s->limit, m->peer_limit, sizeof s->limit);
        size_t b = bucket(peer);
        s->next = m->peers[b];
        m->peers[b] = s;
        m->npeers++;
    }
    s->refs++;
    return s;
}

void cp2p_rcmgr_peer_put(cp2p_rc_scope_t *s)
{
    if (!s || --s->refs > 0)
        return;
    cp2p_rcmgr_t *m = s->m;
    cp2p_rc_scope_t **pp = &m->peers[bucket(&s->peer)];
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    m->npeers--;
    free(s);
}

static cp2p_rc_scope_t *find_protocol(cp2p_rcmgr_t *m, const char *id)
{
    for (cp2p_rc_scope_t *s = m->protocols; s; s = s->next)
        if (!strcmp(s->protocol, id))
            return s;
    return NULL;
}

cp2p_rc_scope_t *cp2p_rcmgr_protocol(cp2p_rcmgr_t *m, const char *id)
{
    cp2p_rc_scope_t *s = find_protocol(m, id);
    if (s || m->nprotocols >= CP2P_RCMGR_MAX_PROTOCOLS)
        return s;
    if (!(s = calloc(1, sizeof *s)) || !(s->protocol = strdup(id))) {
        free(s);
        return NULL;
    }
    s->type = CP2P_RC_SCOPE_PROTOCOL;
    s->m = m;
    memcpy(s->limit, m->protocol_limit, sizeof s->limit);
    /* Kept in order of arrival, so the stats list them stably. */
    cp2p_rc_scope_t **pp = &m->protocols;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    m->nprotocols++;
    return s;
}

int cp2p_rcmgr_set_protocol_limits(cp2p_rcmgr_t *m, const char *id, const cp2p_rc_limits_t *l)
{
    if (!id || !*id || !l)
        return CP2P_EINVAL;
    cp2p_rc_scope_t *s = cp2p_rcmgr_protocol(m, id);
    if (!s)
        return CP2P_ELIMIT;
    uint64_t v[RC_NKINDS];
    to_array(l, v);
    for (int k = 0; k < RC_NKINDS; k++)
        s->limit[k] = v[k] == CP2P_RC_UNLIMITED ? 0 : v[k] ? v[k] : m->protocol_limit[k];
    return 0;
}

void cp2p_rc_refuse(cp2p_rc_scope_t *s, cp2p_rc_kind_t k)
{
    s->refused[k]++;
    s->last_refused = k;
    if (s->type == CP2P_RC_SCOPE_PEER)
        s->m->peer_refused[k]++;
}

static int listed_before(cp2p_rc_scope_t *const *sc, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (sc[j] == sc[i])
            return 1;
    return 0;
}

static int over_by(const cp2p_rc_scope_t *s, cp2p_rc_kind_t k, uint64_t n)
{
    return k < RC_NKINDS && s->limit[k] && s->used[k] + n > s->limit[k];
}

cp2p_rc_scope_t *cp2p_rc_reserve(cp2p_rc_scope_t *const *sc, size_t k, cp2p_rc_kind_t kind,
                                 cp2p_rc_kind_t total, uint64_t n)
{
    for (size_t i = 0; i < k; i++) {
        cp2p_rc_scope_t *s = sc[i];
        if (!s || listed_before(sc, i))
            continue;
        if (over_by(s, kind, n) || over_by(s, total, n)) {
            cp2p_rc_refuse(s, over_by(s, kind, n) ? kind : total);
            return s;
        }
    }
    for (size_t i = 0; i < k; i++) {
        if (!sc[i] || listed_before(sc, i))
            continue;
        sc[i]->used[kind] += n;
        if (total < RC_NKINDS)
            sc[i]->used[total] += n;
    }
    return NULL;
}

static void take(uint64_t *v, uint64_t n)
{
    *v = *v > n ? *v - n : 0;
}

void cp2p_rc_release(cp2p_rc_scope_t *const *sc, size_t k, cp2p_rc_kind_t kind,
                     cp2p_rc_kind_t total, uint64_t n)
{
    for (size_t i = 0; i < k; i++) {
        if (!sc[i] || listed_before(sc, i))
            continue;
        take(&sc[i]->used[kind], n);
        if (total < RC_NKINDS)
            take(&sc[i]->used[total], n);
    }
}

static void add_memory(cp2p_rc_scope_t *s, long delta)
{
    if (delta < 0) {
        take(&s->used[RC_MEMORY], (uint64_t)-delta);
        return;
    }
    s->used[RC_MEMORY] += (uint64_t)delta;
    if (s->used[RC_MEMORY] > s->memory_peak)
        s->memory_peak = s->used[RC_MEMORY];
    if (s->type == CP2P_RC_SCOPE_PEER && s->used[RC_MEMORY] > s->m->peer_memory_peak)
        s->m->peer_memory_peak = s->used[RC_MEMORY];
}

void cp2p_rc_charge(cp2p_rc_scope_t *const *sc, size_t k, long delta)
{
    for (size_t i = 0; i < k; i++)
        if (sc[i] && !listed_before(sc, i))
            add_memory(sc[i], delta);
}

int cp2p_rc_mem_over(const cp2p_rc_scope_t *s)
{
    return s && s->limit[RC_MEMORY] && s->used[RC_MEMORY] >= s->limit[RC_MEMORY];
}

int cp2p_rc_full(const cp2p_rc_scope_t *s, cp2p_rc_kind_t kind)
{
    return s->limit[kind] && s->used[kind] >= s->limit[kind];
}

int cp2p_rc_mem_under_mark(const cp2p_rc_scope_t *s)
{
    return !s || !s->limit[RC_MEMORY] || s->used[RC_MEMORY] < s->limit[RC_MEMORY] / 4 * 3;
}

cp2p_rc_scope_t *cp2p_rc_move(const uint64_t *use, cp2p_rc_scope_t *from, cp2p_rc_scope_t *to)
{
    if (from == to)
        return NULL;
    for (int k = 0; k < RC_NKINDS; k++)
        if (k != RC_MEMORY && use[k] && to && over_by(to, (cp2p_rc_kind_t)k, use[k])) {
            cp2p_rc_refuse(to, (cp2p_rc_kind_t)k);
            return to;
        }
    for (int k = 0; k < RC_NKINDS; k++) {
        if (!use[k])
            continue;
        if (k == RC_MEMORY) {
            if (from)
                add_memory(from, -(long)use[k]);
            if (to)
                add_memory(to, (long)use[k]);
            continue;
        }
        if (from)
            take(&from->used[k], use[k]);
        if (to)
            to->used[k] += use[k];
    }
    return NULL;
}

static void fill(const cp2p_rc_scope_t *s, cp2p_rc_scope_stat_t *o)
{
    memset(o, 0, sizeof *o);
    o->type = s->type;
    o->name = cp2p_rc_scope_name(s);
    o->n = 1;
    from_array(s->used, &o->used);
    from_array(s->limit, &o->limit);
    from_array(s->refused, &o->refused);
    o->memory_peak = s->memory_peak;
}

size_t cp2p_rcmgr_stats(cp2p_rcmgr_t *m, cp2p_rc_scope_stat_t *out, size_t cap)
{
    size_t n = 0;
    if (n < cap)
        fill(&m->system, &out[n]);
    n++;
    if (n < cap)
        fill(&m->transient, &out[n]);
    n++;
    if (n < cap) {
        cp2p_rc_scope_t all = {.type = CP2P_RC_SCOPE_PEER, .memory_peak = m->peer_memory_peak};
        memcpy(all.limit, m->peer_limit, sizeof all.limit);
        memcpy(all.refused, m->peer_refused, sizeof all.refused);
        for (size_t b = 0; b < PEER_BUCKETS; b++)
            for (const cp2p_rc_scope_t *s = m->peers[b]; s; s = s->next)
                for (int k = 0; k < RC_NKINDS; k++)
                    if (s->used[k] > all.used[k])
                        all.used[k] = s->used[k];
        fill(&all, &out[n]);
        out[n].n = m->npeers;
    }
    n++;
    for (const cp2p_rc_scope_t *s = m->protocols; s; s = s->next, n++)
        if (n < cap)
            fill(s, &out[n]);
    return n;
}

int cp2p_rcmgr_peer_stat(cp2p_rcmgr_t *m, const cp2p_peer_id_t *peer, cp2p_rc_scope_stat_t *out)
{
    const cp2p_rc_scope_t *s = find_peer(m, peer);
    if (!s)
        return CP2P_ENOTFOUND;
    fill(s, out);
    return 0;
}
