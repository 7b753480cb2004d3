/* Iterative lookup state machine with alpha parallel requests and per-request
 * timeouts (libp2p kad-dht spec, "Peer routing"). */
#include <stdlib.h>
#include <string.h>

#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "kad/kad_query.h"

typedef struct cand {
    cp2p_peer_id_t id;
    cp2p_kad_key_t key;
    cp2p_kad_peer_state_t state;
    uint64_t deadline_ms;
} cand_t;

struct cp2p_kad_query {
    cp2p_kad_key_t target;
    size_t k, alpha, max;
    uint64_t timeout_ms;
    int has_self;
    cp2p_peer_id_t self;
    int stopped;
    cand_t *c; /* sorted by distance to target, closest first */
    size_t n;
    cp2p_kad_query_stats_t stats;
};

int cp2p_kad_query_new(const cp2p_kad_key_t *target, const cp2p_kad_query_config_t *cfg,
                       cp2p_kad_query_t **out)
{
    cp2p_kad_query_config_t d = {0};
    if (!cfg)
        cfg = &d;
    if (!target || !out || cfg->k > CP2P_KAD_MAX_K || cfg->alpha > CP2P_KAD_MAX_ALPHA ||
        cfg->max_candidates > CP2P_KAD_MAX_CANDIDATES)
        return CP2P_EINVAL;
    cp2p_kad_query_t *q = calloc(1, sizeof *q);
    if (!q)
        return CP2P_ENOMEM;
    q->target = *target;
    q->k = cfg->k ? cfg->k : CP2P_DHT_DEFAULT_K;
    q->alpha = cfg->alpha ? cfg->alpha : CP2P_DHT_DEFAULT_ALPHA;
    q->timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms
                                            : CP2P_DHT_DEFAULT_REQUEST_TIMEOUT_MS;
    q->max = cfg->max_candidates ? cfg->max_candidates : CP2P_KAD_DEFAULT_MAX_CANDIDATES;
    if (q->max < q->k)
        q->max = q->k;
    if (cfg->self) {
        q->has_self = 1;
        q->self = *cfg->self;
    }
    if (!(q->c = calloc(q->max, sizeof *q->c))) {
        free(q);
        return CP2P_ENOMEM;
    }
    *out = q;
    return 0;
}

void cp2p_kad_query_free(cp2p_kad_query_t *q)
{
    if (!q)
        return;
    free(q->c);
    free(q);
}

/* Index of the first candidate not closer than key. */
static size_t lower_bound(const cp2p_kad_query_t *q, const cp2p_kad_key_t *key)
{
    size_t lo = 0, hi = q->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp2p_kad_key_cmp(&q->target, &q->c[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static cand_t *lookup(const cp2p_kad_query_t *q, const cp2p_peer_id_t *id)
{
    cp2p_kad_key_t key;
    if (cp2p_kad_key_of_peer(id, &key))
        return NULL;
    size_t i = lower_bound(q, &key);
    for (; i < q->n && !memcmp(q->c[i].key.b, key.b, sizeof key.b); i++)
        if (cp2p_peer_id_equal(&q->c[i].id, id))
            return &q->c[i];
    return NULL;
}

static int insert(cp2p_kad_query_t *q, const cp2p_peer_id_t *id)
{
    if (id->len == 0 || (q->has_self && cp2p_peer_id_equal(id, &q->self)) || lookup(q, id))
        return 0;
    cand_t nc = {.id = *id, .state = CP2P_KAD_PEER_HEARD};
    int rc = cp2p_kad_key_of_peer(id, &nc.key);
    if (rc)
        return rc;
    size_t pos = lower_bound(q, &nc.key);
    if (q->n == q->max) {
        /* Forget the farthest candidate we are not waiting on. */
        size_t victim = q->n;
        while (victim > 0 && q->c[victim - 1].state == CP2P_KAD_PEER_WAITING)
            victim--;
        if (victim == 0 || pos >= victim) {
            q->stats.dropped++;
            return 0;
        }
        victim--;
        memmove(&q->c[victim], &q->c[victim + 1], (q->n - victim - 1) * sizeof *q->c);
        q->n--;
        q->stats.dropped++;
    }
    memmove(&q->c[pos + 1], &q->c[pos], (q->n - pos) * sizeof *q->c);
    q->c[pos] = nc;
    q->n++;
    return 0;
}

int cp2p_kad_query_add_peers(cp2p_kad_query_t *q, const cp2p_peer_id_t *peers, size_t n)
{
    if (!q || (!peers && n))
        return CP2P_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = insert(q, &peers[i]);
        if (rc)
            return rc;
    }
    return 0;
}

size_t cp2p_kad_query_in_flight(const cp2p_kad_query_t *q)
{
    size_t w = 0;
    for (size_t i = 0; q && i < q->n; i++)
        w += q->c[i].state == CP2P_KAD_PEER_WAITING;
    return w;
}

size_t cp2p_kad_query_next(cp2p_kad_query_t *q, uint64_t now_ms, cp2p_peer_id_t *out, size_t cap)
{
    if (!q)
        return 0;
    for (size_t i = 0; i < q->n; i++)
        if (q->c[i].state == CP2P_KAD_PEER_WAITING && q->c[i].deadline_ms <= now_ms) {
            q->c[i].state = CP2P_KAD_PEER_FAILED;
            q->stats.timeouts++;
        }
    if (q->stopped || !out)
        return 0;
    size_t in_flight = cp2p_kad_query_in_flight(q), written = 0, seen = 0;
    /* Peers beyond the k closest live ones can only matter once one of those
     * fails, so they are not asked until then. */
    for (size_t i = 0; i < q->n && seen < q->k && written < cap && in_flight < q->alpha; i++) {
        cand_t *c = &q->c[i];
        if (c->state == CP2P_KAD_PEER_FAILED)
            continue;
        seen++;
        if (c->state != CP2P_KAD_PEER_HEARD)
            continue;
        c->state = CP2P_KAD_PEER_WAITING;
        c->deadline_ms = now_ms + q->timeout_ms;
        out[written++] = c->id;
        in_flight++;
        q->stats.requests++;
    }
    return written;
}

int cp2p_kad_query_on_response(cp2p_kad_query_t *q, const cp2p_peer_id_t *peer,
                               const cp2p_peer_id_t *closer, size_t n)
{
    if (!q || !peer || (!closer && n))
        return CP2P_EINVAL;
    cand_t *c = lookup(q, peer);
    if (!c || c->state != CP2P_KAD_PEER_WAITING)
        return CP2P_ESTATE;
    c->state = CP2P_KAD_PEER_SUCCEEDED;
    q->stats.successes++;
    return q->stopped ? 0 : cp2p_kad_query_add_peers(q, closer, n);
}

int cp2p_kad_query_on_failure(cp2p_kad_query_t *q, const cp2p_peer_id_t *peer)
{
    if (!q || !peer)
        return CP2P_EINVAL;
    cand_t *c = lookup(q, peer);
    if (!c || c->state != CP2P_KAD_PEER_WAITING)
        return CP2P_ESTATE;
    c->state = CP2P_KAD_PEER_FAILED;
    q->stats.failures++;
    return 0;
}

void cp2p_kad_query_stop(cp2p_kad_query_t *q)
{
    if (q)
        q->stopped = 1;
}

int cp2p_kad_query_done(const cp2p_kad_query_t *q)
{
    if (!q || q->stopped)
        return 1;
    size_t seen = 0;
    for (size_t i = 0; i < q->n && seen < q->k; i++) {
        if (q->c[i].state == CP2P_KAD_PEER_FAILED)
            continue;
        if (q->c[i].state != CP2P_KAD_PEER_SUCCEEDED)
            return 0;
        seen++;
    }
    return 1;
}

uint64_t cp2p_kad_query_next_deadline(const cp2p_kad_query_t *q)
{
    uint64_t d = UINT64_MAX;
    for (size_t i = 0; q && i < q->n; i++)
        if (q->c[i].state == CP2P_KAD_PEER_WAITING && q->c[i].deadline_ms < d)
            d = q->c[i].deadline_ms;
    return d;
}

size_t cp2p_kad_query_closest(const cp2p_kad_query_t *q, cp2p_peer_id_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; q && out && i < q->n && n < cap; i++)
        if (q->c[i].state == CP2P_KAD_PEER_SUCCEEDED)
            out[n++] = q->c[i].id;
    return n;
}

int cp2p_kad_query_peer_state(const cp2p_kad_query_t *q, const cp2p_peer_id_t *peer)
{
    if (!q || !peer)
        return CP2P_EINVAL;
    const cand_t *c = lookup(q, peer);
    return c ? (int)c->state : CP2P_ENOTFOUND;
}

const cp2p_kad_query_stats_t *cp2p_kad_query_stats(const cp2p_kad_query_t *q)
{
    return q ? &q->stats : NULL;
}
