/* Gossipsub v1.1 peer score (see ps_score.h): P1 time in mesh, P2 first
 * deliveries, P3/P3b mesh delivery rate and failures, P4 invalid messages,
 * P5 application score, P6 IP colocation, P7 behaviour penalty. */
#include "pubsub/ps_score.h"

#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"

#define MAX_RETAINED 4096
#define DELIVERY_SLOTS 16  /* peers whose near-first deliveries of one message are counted */

struct ps_retained {
    ps_retained_t *next;
    cp2p_peer_id_t id;
    uint64_t until;
    ps_tstats_t *t;
    double behaviour;
};

typedef struct delivery {
    uint64_t first;
    const void *peers[DELIVERY_SLOTS]; /* compared, never dereferenced */
    size_t n;
} delivery_t;

int ps_score_init(ps_score_t *s, const cp2p_pubsub_score_params_t *in,
                  const cp2p_pubsub_score_params_t **cfg)
{
    memset(s, 0, sizeof *s);
    s->params = *in;
    if (in->n_topics) {
        if (!(s->topics = calloc(in->n_topics, sizeof *s->topics)))
            return CP2P_ENOMEM;
        for (size_t i = 0; i < in->n_topics; i++) {
            s->topics[i] = in->topics[i];
            if (!in->topics[i].topic || !(s->topics[i].topic = strdup(in->topics[i].topic))) {
                s->params.n_topics = i;
                s->params.topics = s->topics;
                return CP2P_EINVAL;
            }
        }
    }
    s->params.topics = s->topics;
    cp2p_pubsub_score_params_t *p = &s->params;
    if (!p->decay_interval_ms)
        p->decay_interval_ms = 1000;
    if (p->decay_to_zero <= 0)
        p->decay_to_zero = 0.01;
    if (!p->retain_score_ms)
        p->retain_score_ms = 3600 * 1000;
    int rc = ps_idmap_init(&s->deliveries, 65536, free);
    if (!rc)
        rc = ps_idmap_init(&s->promises, 65536, NULL);
    *cfg = &s->params;
    return rc;
}

static void retained_free(ps_retained_t *r)
{
    free(r->t);
    free(r);
}

void ps_score_free(ps_score_t *s)
{
    for (size_t i = 0; s->topics && i < s->params.n_topics; i++)
        free((char *)s->topics[i].topic);
    free(s->topics);
    while (s->retained) {
        ps_retained_t *r = s->retained;
        s->retained = r->next;
        retained_free(r);
    }
    if (s->deliveries.buckets)
        ps_idmap_free(&s->deliveries);
    if (s->promises.buckets)
        ps_idmap_free(&s->promises);
    memset(s, 0, sizeof *s);
}

static ps_tstats_t *stats(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp)
{
    if (!tp || !p->t || tp < s->topics || tp >= s->topics + s->params.n_topics)
        return NULL;
    return &p->t[tp - s->topics];
}

void ps_score_connect(ps_score_t *s, ps_score_peer_t *p, const cp2p_peer_id_t *id, uint64_t now)
{
    (void)now;
    p->id = *id;
    p->t = s->params.n_topics ? calloc(s->params.n_topics, sizeof *p->t) : NULL;
    /* A score kept from an earlier connection comes back, penalties too. */
    for (ps_retained_t **rp = &s->retained; *rp; rp = &(*rp)->next) {
        ps_retained_t *r = *rp;
        if (!cp2p_peer_id_equal(&r->id, id))
            continue;
        *rp = r->next;
        s->n_retained--;
        if (p->t && r->t)
            memcpy(p->t, r->t, s->params.n_topics * sizeof *p->t);
        p->behaviour = r->behaviour;
        retained_free(r);
        break;
    }
    p->next = s->peers;
    s->peers = p;
    p->linked = 1;
}

void ps_score_disconnect(ps_score_t *s, ps_score_peer_t *p, uint64_t now)
{
    if (!p->linked)
        return;
    for (ps_score_peer_t **pp = &s->peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    p->linked = 0;
    /* Promises it made can no longer be checked against it. */
    for (ps_ident_t *e = s->promises.oldest, *nx; e; e = nx) {
        nx = e->newer;
        if (e->value == p)
            ps_idmap_del(&s->promises, e);
    }
    ps_retained_t *r = NULL;
    if (s->n_retained < MAX_RETAINED && (r = calloc(1, sizeof *r))) {
        r->id = p->id;
        r->until = now + s->params.retain_score_ms;
        r->behaviour = p->behaviour;
        r->t = p->t; /* handed over */
        for (size_t i = 0; r->t && i < s->params.n_topics; i++)
            r->t[i].in_mesh = 0;
        p->t = NULL;
        r->next = s->retained;
        s->retained = r;
        s->n_retained++;
    }
    free(p->t);
    p->t = NULL;
}

void ps_score_set_ip(ps_score_t *s, ps_score_peer_t *p, uint64_t ip)
{
    (void)s;
    p->ip = ip;
}

double ps_score_value(ps_score_t *s, ps_score_peer_t *p, uint64_t now)
{
    const cp2p_pubsub_score_params_t *sp = &s->params;
    double score = 0;
    for (size_t i = 0; p->t && i < sp->n_topics; i++) {
        const cp2p_pubsub_topic_score_t *tp = &sp->topics[i];
        const ps_tstats_t *t = &p->t[i];
        double ts = 0;
        if (t->in_mesh) {
            uint64_t mt = now - t->graft_time;
            double p1 = tp->time_in_mesh_quantum_ms > 0 ? (double)mt / tp->time_in_mesh_quantum_ms : 0;
            if (p1 > tp->time_in_mesh_cap)
                p1 = tp->time_in_mesh_cap;
            ts += p1 * tp->time_in_mesh_weight;
            if ((double)mt > tp->mesh_deliveries_activation_ms &&
                t->mesh_deliveries < tp->mesh_deliveries_threshold) {
                double d = tp->mesh_deliveries_threshold - t->mesh_deliveries;
                ts += d * d * tp->mesh_deliveries_weight;
            }
        }
        ts += t->first_deliveries * tp->first_deliveries_weight;
        ts += t->mesh_failure * tp->mesh_failure_weight;
        ts += t->invalid * t->invalid * tp->invalid_weight;
        score += ts * tp->topic_weight;
    }
    if (sp->topic_score_cap > 0 && score > sp->topic_score_cap)
        score = sp->topic_score_cap;
    if (sp->app_specific)
        score += sp->app_specific(&p->id, sp->app_specific_arg) * sp->app_specific_weight;
    if (p->colocated > sp->ip_colocation_threshold) {
        double surplus = (double)(p->colocated - sp->ip_colocation_threshold);
        score += surplus * surplus * sp->ip_colocation_weight;
    }
    if (p->behaviour > sp->behaviour_penalty_threshold) {
        double excess = p->behaviour - sp->behaviour_penalty_threshold;
        score += excess * excess * sp->behaviour_penalty_weight;
    }
    return score;
}

void ps_score_graft(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                    uint64_t now)
{
    ps_tstats_t *t = stats(s, p, tp);
    if (!t)
        return;
    t->in_mesh = 1;
    t->graft_time = now;
    t->mesh_time = 0;
}

void ps_score_prune(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                    uint64_t now)
{
    ps_tstats_t *t = stats(s, p, tp);
    if (!t || !t->in_mesh)
        return;
    /* P3b: a peer pruned while under-delivering keeps the deficit. */
    if ((double)(now - t->graft_time) > tp->mesh_deliveries_activation_ms &&
        t->mesh_deliveries < tp->mesh_deliveries_threshold) {
        double d = tp->mesh_deliveries_threshold - t->mesh_deliveries;
        t->mesh_failure += d * d;
    }
    t->in_mesh = 0;
}

static void bump(double *v, double cap)
{
    *v += 1;
    if (cap > 0 && *v > cap)
        *v = cap;
}

void ps_score_deliver(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                      const uint8_t *id, size_t len, uint64_t now)
{
    ps_ident_t *pr = ps_idmap_get(&s->promises, id, len);
    if (pr)
        ps_idmap_del(&s->promises, pr); /* kept */
    ps_tstats_t *t = stats(s, p, tp);
    if (!t)
        return;
    bump(&t->first_deliveries, tp->first_deliveries_cap);
    if (t->in_mesh)
        bump(&t->mesh_deliveries, tp->mesh_deliveries_cap);
    if (!ps_idmap_get(&s->deliveries, id, len)) {
        delivery_t *d = calloc(1, sizeof *d);
        if (d) {
            d->first = now;
            d->peers[d->n++] = p;
            /* Kept as long as the window could matter, a second at least. */
            if (!ps_idmap_put(&s->deliveries, id, len, now + 1000 + (uint64_t)tp->mesh_delivery_window_ms, d))
                free(d);
        }
    }
}

void ps_score_duplicate(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                        const uint8_t *id, size_t len, uint64_t now)
{
    ps_tstats_t *t = stats(s, p, tp);
    ps_ident_t *e = ps_idmap_get(&s->deliveries, id, len);
    if (!t || !e || !t->in_mesh)
        return;
    delivery_t *d = e->value;
    if ((double)(now - d->first) > tp->mesh_delivery_window_ms)
        return;
    for (size_t i = 0; i < d->n; i++)
        if (d->peers[i] == p)
            return;
    if (d->n < DELIVERY_SLOTS)
        d->peers[d->n++] = p;
    bump(&t->mesh_deliveries, tp->mesh_deliveries_cap);
}

void ps_score_invalid(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                      uint64_t now)
{
    (void)now;
    ps_tstats_t *t = stats(s, p, tp);
    if (t)
        t->invalid += 1;
}

void ps_score_penalty(ps_score_t *s, ps_score_peer_t *p, double count)
{
    (void)s;
    p->behaviour += count;
}

void ps_score_promise(ps_score_t *s, ps_score_peer_t *p, const uint8_t *id, size_t len,
                      uint64_t deadline)
{
    if (!ps_idmap_get(&s->promises, id, len))
        ps_idmap_put(&s->promises, id, len, deadline, p);
}

static void decay(double *v, double factor, double to_zero)
{
    *v *= factor;
    if (*v < to_zero)
        *v = 0;
}

void ps_score_tick(ps_score_t *s, uint64_t now)
{
    const cp2p_pubsub_score_params_t *sp = &s->params;
    /* Promises past their deadline were broken (insertion order is deadline
     * order: one follow-up time for all). */
    while (s->promises.oldest && s->promises.oldest->expiry <= now) {
        ps_score_peer_t *p = s->promises.oldest->value;
        if (p)
            p->behaviour += 1;
        ps_idmap_del(&s->promises, s->promises.oldest);
    }
    ps_idmap_expire(&s->deliveries, now);
    for (ps_retained_t **rp = &s->retained; *rp;) {
        ps_retained_t *r = *rp;
        if (r->until > now) {
            rp = &r->next;
            continue;
        }
        *rp = r->next;
        s->n_retained--;
        retained_free(r);
    }
    if (now - s->last_decay < sp->decay_interval_ms)
        return;
    s->last_decay = now;
    for (ps_score_peer_t *p = s->peers; p; p = p->next) {
        for (size_t i = 0; p->t && i < sp->n_topics; i++) {
            const cp2p_pubsub_topic_score_t *tp = &sp->topics[i];
            ps_tstats_t *t = &p->t[i];
            decay(&t->first_deliveries, tp->first_deliveries_decay, sp->decay_to_zero);
            decay(&t->mesh_deliveries, tp->mesh_deliveries_decay, sp->decay_to_zero);
            decay(&t->mesh_failure, tp->mesh_failure_decay, sp->decay_to_zero);
            decay(&t->invalid, tp->invalid_decay, sp->decay_to_zero);
        }
        decay(&p->behaviour, sp->behaviour_penalty_decay, sp->decay_to_zero);
        /* P6: peers on one IP (a few hundred peers at most: counted directly). */
        p->colocated = 0;
        if (p->ip)
            for (ps_score_peer_t *q = s->peers; q; q = q->next)
                p->colocated += q->ip == p->ip;
    }
}
