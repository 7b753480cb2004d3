/* The Kademlia DHT on a host (libp2p kad-dht spec: "Kademlia routing table",
 * "Peer routing", "Value storage and retrieval", "Content provider
 * advertisement and discovery", "Bootstrap process"): lookups and upkeep. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/peerstore.h"
#include "kad/kad_query.h"
#include "kad/kad_rpc.h"
#include "kad/kad_validate.h"

#define LOG "kad"
#define MAX_DEPTHS 512       /* peers whose hop count a lookup remembers */
#define MAX_REFRESHES 4      /* bucket refreshes started per maintenance round */
#define MAINT_MAX_MS 60000
/* A put or provide that found too few peers to store at (a table still
 * filling, peers busy or gone) looks again this many times, after a pause. */
#define STORE_RETRIES 2
#define STORE_RETRY_MS 1000
/* go-libp2p's connection manager tag for routing-table members: trims spare them. */
#define TABLE_TAG "kbucket"
#define TABLE_TAG_WEIGHT 5
/* The seeds of an empty routing table are tried again after these delays;
 * a lookup waiting for them looks at the table this often. */
#define RESEED_FIRST_MS 1000
#define RESEED_MAX_MS 60000
#define WAIT_POLL_MS 250

typedef enum {
    OP_CLOSEST, OP_FIND_PEER, OP_GET, OP_PUT, OP_PROVIDE, OP_PROVIDERS, OP_BOOTSTRAP, OP_REFRESH
} op_kind_t;

typedef struct value {
    cp2p_peer_id_t from;
    int local;
    uint8_t *v;
    size_t n;
} value_t;

typedef struct depth {
    cp2p_peer_id_t peer;
    uint32_t hops;
} depth_t;

struct kad_op {
    kad_op_t *next;
    cp2p_dht_t *d;
    op_kind_t kind;
    uint8_t *key, *value;
    size_t key_len, value_len;
    cp2p_kad_key_t target;
    cp2p_peer_id_t peer; /* OP_FIND_PEER */
    cp2p_kad_query_t *q;
    uint64_t deadline;
    int phase;           /* 0: lookup, 1: storing at the closest */
    int started;         /* stepped once: answers and failures drive it now */
    int cancelled;       /* cp2p_dht_cancel: ends with CP2P_ECANCELED on the next kick */
    int storing;         /* our own copy is being committed; the lookup waits */
    int store_rc;        /* how committing our own copy failed */
    int retries;
    uint64_t retry_at;   /* the next lookup of a retried store starts then */
    size_t pending, ok, need;
    value_t *vals;
    size_t n_vals, max_vals;
    cp2p_peer_id_t *found;
    size_t n_found, max_found;
    depth_t *depths;
    size_t n_depths;
    uint32_t answer_hops;
    cp2p_dht_outcome_t lk, st; /* how the lookup's peers and the store's answered */
    int waited;          /* found the table empty and waited for the seeds */
    int reseed;          /* the bootstrap of the seeds that reseed() started */
    union {
        cp2p_dht_done_cb done;
        cp2p_dht_value_cb value;
        cp2p_dht_peers_cb peers;
    } cb;
    void *arg;
};

/* A record we put or a key we provide: we keep it alive in the network. */
struct kad_own {
    kad_own_t *next;
    int provider;
    uint8_t *key, *value;
    size_t key_len, value_len;
    uint64_t due;
};

static void step(kad_op_t *op);
static int store_again(kad_op_t *op, uint64_t now);
static int op_query(kad_op_t *op);
static void reseed_arm(cp2p_dht_t *d, int urgent);
static int op_start(cp2p_dht_t *d, op_kind_t kind, const uint8_t *key, size_t key_len,
                    kad_op_t **out);

/* ---- shared with kad_rpc.c ---- */

uint64_t kad_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The length of key's namespace ("/ns/..."), 0 if it has none. */
static size_t ns_len_of(const uint8_t *key, size_t key_len)
{
    if (key_len < 3 || key[0] != '/')
        return 0;
    const uint8_t *slash = memchr(key + 1, '/', key_len - 1);
    return slash ? (size_t)(slash - key - 1) : 0;
}

int kad_key_is_open(const cp2p_dht_t *d, const uint8_t *key, size_t key_len)
{
    size_t ns_len = ns_len_of(key, key_len);
    if (!ns_len)
        return d->open_keys;
    for (size_t i = 0; i < d->n_open_ns; i++)
        if (strlen(d->open_ns[i]) == ns_len && !memcmp(d->open_ns[i], key + 1, ns_len))
            return 1;
    return 0;
}

int kad_validate(const cp2p_dht_t *d, const uint8_t *key, size_t key_len, const uint8_t *v,
                 size_t n)
{
    if (kad_key_is_open(d, key, key_len))
        return 0;
    if (!ns_len_of(key, key_len))
        return CP2P_EUNSUPPORTED; /* a key nobody owns, and open_keys is off */
    return cp2p_kad_validate(key, key_len, v, n);
}

static void on_ping(cp2p_dht_t *d, kad_rpc_t *r, int status, const cp2p_kad_msg_t *resp)
{
    kad_peer_seen(d, &r->peer, status == 0);
}

void kad_peer_seen(cp2p_dht_t *d, const cp2p_peer_id_t *peer, int ok)
{
    if (!ok) {
        cp2p_kad_table_remove(d->table, peer);
        return;
    }
    cp2p_peer_id_t stale;
    /* A full bucket keeps its old members while they answer (Kademlia's
     * preference for long-lived peers); the newcomer waits as a replacement. */
    if (cp2p_kad_table_add(d->table, peer, uv_now(d->loop), &stale) == CP2P_ELIMIT) {
        cp2p_kad_msg_t ping = {.type = CP2P_KAD_PING};
        kad_rpc_send(d, &stale, &ping, on_ping, NULL);
    }
}

void kad_fill_peers(cp2p_dht_t *d, const cp2p_peer_id_t *ids, size_t n, cp2p_kad_peer_t *out,
                    cp2p_multiaddr_t (*addrs)[CP2P_KAD_MAX_PEER_ADDRS])
{
    cp2p_peerstore_t *ps = cp2p_host_peerstore(d->h);
    for (size_t i = 0; i < n; i++) {
        /* what third parties told us is not ours to pass on */
        size_t na = cp2p_peerstore_addrs_from(ps, &ids[i], uv_now(d->loop), CP2P_ADDR_CLAIMED,
                                              addrs[i], CP2P_KAD_MAX_PEER_ADDRS);
        out[i] = (cp2p_kad_peer_t){.id = ids[i], .addrs = addrs[i],
                                   .n_addrs = na < CP2P_KAD_MAX_PEER_ADDRS ? na
                                                                           : CP2P_KAD_MAX_PEER_ADDRS,
                                   .connection = cp2p_host_conn_to(d->h, &ids[i])
                                                     ? CP2P_KAD_CONNECTED
                                                     : CP2P_KAD_NOT_CONNECTED};
    }
}

static void on_tick(uv_timer_t *t)
{
    cp2p_dht_t *d = t->data;
    kad_rpc_expire(d, uv_now(d->loop));
    kad_op_t *next;
    for (kad_op_t *op = d->ops; op; op = next) {
        next = op->next;
        step(op);
    }
    if (!d->ops && !kad_rpc_busy(d))
        uv_timer_stop(&d->tick);
}

/* New operations take their first step here, out of the API call that made
 * them (callbacks never run inside it) yet without waiting for a tick. */
static void finish(kad_op_t *op, int status);

static void on_kick(uv_timer_t *t)
{
    cp2p_dht_t *d = t->data;
    kad_op_t *next;
    for (kad_op_t *op = d->ops; op; op = next) {
        next = op->next;
        if (op->cancelled)
            finish(op, CP2P_ECANCELED);
        else if (!op->started)
            step(op);
    }
}

int cp2p_dht_cancel(cp2p_dht_t *d, void *arg)
{
    if (!d)
        return CP2P_EINVAL;
    int n = 0;
    for (kad_op_t *op = d->ops; op; op = op->next)
        if (op->arg == arg && op->kind != OP_REFRESH && op->cb.done && !op->cancelled) {
            op->cancelled = 1;
            n++;
        }
    if (n && !d->close_asked && !d->closing)
        uv_timer_start(&d->kick, on_kick, 0, 0);
    return n;
}

void kad_arm_tick(cp2p_dht_t *d)
{
    if (!uv_is_active((uv_handle_t *)&d->tick))
        uv_timer_start(&d->tick, on_tick, 0, KAD_TICK_MS);
}

/* ---- operations ---- */

/* Addresses in an answer from `from`: what it says of itself is its claim;
 * what it says of others is held apart, briefly (go-libp2p-kad-dht's
 * TempAddrTTL), and never displaces better (include/cp2p/peerstore.h).
 * Either must fit the connection the answer came over. */
static void learn_addrs(cp2p_dht_t *d, const cp2p_peer_id_t *from, const cp2p_kad_peer_t *peers,
                        size_t n)
{
    cp2p_peerstore_t *ps = cp2p_host_peerstore(d->h);
    const cp2p_peer_id_t *self = cp2p_host_peer_id(d->h);
    const cp2p_conn_t *via = cp2p_host_conn_to(d->h, from);
    for (size_t i = 0; i < n; i++) {
        if (!peers[i].n_addrs || cp2p_peer_id_equal(&peers[i].id, self))
            continue;
        cp2p_multiaddr_t kept[CP2P_KAD_MAX_PEER_ADDRS];
        size_t na = peers[i].n_addrs < CP2P_KAD_MAX_PEER_ADDRS ? peers[i].n_addrs
                                                               : CP2P_KAD_MAX_PEER_ADDRS;
        size_t k = cp2p_host_plausible_addrs(d->h, via, peers[i].addrs, na, kept);
        if (cp2p_peer_id_equal(&peers[i].id, from))
            cp2p_peerstore_add_addrs_from(ps, &peers[i].id, kept, k, CP2P_TTL_ADDRESS,
                                          uv_now(d->loop), CP2P_ADDR_CLAIMED);
        else
            cp2p_peerstore_add_addrs_from(ps, &peers[i].id, kept, k, CP2P_TTL_TEMP,
                                          uv_now(d->loop), CP2P_ADDR_THIRD_PARTY);
    }
}

static uint32_t hops_of(const kad_op_t *op, const cp2p_peer_id_t *peer)
{
    for (size_t i = 0; i < op->n_depths; i++)
        if (cp2p_peer_id_equal(&op->depths[i].peer, peer))
            return op->depths[i].hops;
    return 1;
}

static void note_depth(kad_op_t *op, const cp2p_peer_id_t *peer, uint32_t hops)
{
    for (size_t i = 0; i < op->n_depths; i++)
        if (cp2p_peer_id_equal(&op->depths[i].peer, peer))
            return;
    if (op->n_depths < MAX_DEPTHS)
        op->depths[op->n_depths++] = (depth_t){*peer, hops};
}

static void op_free(kad_op_t *op)
{
    cp2p_kad_query_free(op->q);
    for (size_t i = 0; i < op->n_vals; i++)
        free(op->vals[i].v);
    free(op->vals);
    free(op->found);
    free(op->depths);
    free(op->key);
    free(op->value);
    free(op);
}

static void send_value(cp2p_dht_t *d, const cp2p_peer_id_t *to, kad_op_t *op,
                       const uint8_t *key, size_t key_len, const uint8_t *v, size_t n,
                       kad_rpc_done_fn done);

static void on_correction(cp2p_dht_t *d, kad_rpc_t *r, int status, const cp2p_kad_msg_t *resp)
{
    kad_peer_seen(d, &r->peer, status == 0);
}

/* The best value of a GET, correcting the peers that sent another one. */
static int best_value(kad_op_t *op)
{
    cp2p_dht_t *d = op->d;
    if (!op->n_vals)
        return CP2P_ENOTFOUND;
    int best = 0;
    if (!kad_key_is_open(d, op->key, op->key_len)) {
        const uint8_t *vs[CP2P_KAD_MAX_K + 1];
        size_t lens[CP2P_KAD_MAX_K + 1];
        for (size_t i = 0; i < op->n_vals; i++) {
            vs[i] = op->vals[i].v;
            lens[i] = op->vals[i].n;
        }
        best = cp2p_kad_select(op->key, op->key_len, vs, lens, op->n_vals);
        if (best < 0)
            return best;
    }
    const value_t *b = &op->vals[best];
    for (size_t i = 0; i < op->n_vals; i++) {
        const value_t *o = &op->vals[i];
        if (!o->local && (o->n != b->n || memcmp(o->v, b->v, b->n)))
            send_value(d, &o->from, NULL, op->key, op->key_len, b->v, b->n, on_correction);
    }
    return best;
}

/* ---- outcomes: what the peers asked said, and the status that names it ---- */

static void count_outcome(cp2p_dht_outcome_t *o, int status)
{
    if (status == 0)
        o->answered++;
    else if (status == CP2P_ETIMEOUT)
        o->timed_out++;
    else if (status == CP2P_ERESET || status == CP2P_EPROTO || status == CP2P_ECLOSED ||
             status == CP2P_ENEGOTIATE)
        o->refused++;
    else
        o->unreachable++;
}

/* The failure an outcome shows: too few for the quorum, then refusals, then
 * silence, then no connection; CP2P_ENOTFOUND when nobody was asked. */
static int outcome_status(const cp2p_dht_outcome_t *o)
{
    if (o->answered && o->needed && o->answered < o->needed)
        return CP2P_EQUORUM;
    if (o->refused)
        return CP2P_EREFUSED;
    if (o->timed_out)
        return CP2P_ETIMEOUT;
    if (o->unreachable)
        return CP2P_EUNREACHABLE;
    return CP2P_ENOTFOUND;
}

/* What op reports in stats.last: the store requests once it sent some, else
 * its lookup, else (it waited for the seeds and nobody answered) the last
 * bootstrap. */
static cp2p_dht_outcome_t op_outcome(const kad_op_t *op)
{
    cp2p_dht_outcome_t o = op->lk;
    if (op->st.asked) {
        o = op->st;
        o.needed = (uint32_t)op->need;
    } else if (op->waited && !op->lk.answered) {
        o = op->d->boot_outcome;
        o.bootstrap_wait = 1;
    }
    return o;
}

/* A lookup that ended without a result: not found if peers answered,
 * else why none did. */
static int no_result(const kad_op_t *op)
{
    if (op->lk.answered)
        return CP2P_ENOTFOUND;
    cp2p_dht_outcome_t o = op_outcome(op);
    return outcome_status(&o);
}

static void finish(kad_op_t *op, int status)
{
    cp2p_dht_t *d = op->d;
    if (op->cancelled)
        status = CP2P_ECANCELED; /* whatever it came to meanwhile */
    for (kad_op_t **pp = &d->ops; *pp; pp = &(*pp)->next)
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    kad_rpc_forget_op(d, op);
    kad_write_forget(d, op);
    cp2p_kad_table_mark_refreshed(d->table, &op->target, uv_now(d->loop));
    d->stats.last_hops = op->answer_hops;
    d->stats.last = op_outcome(op);
    cp2p_peer_id_t closest[CP2P_KAD_MAX_K];
    size_t n;
    switch (op->kind) {
    case OP_CLOSEST:
        n = status ? 0 : cp2p_kad_query_closest(op->q, closest, d->k);
        op->cb.peers(d, status ? status : n ? 0 : no_result(op), closest, n, op->arg);
        break;
    case OP_FIND_PEER:
        if (!status && !op->n_found)
            status = no_result(op);
        op->cb.peers(d, status, status ? NULL : &op->peer, status ? 0 : 1, op->arg);
        break;
    case OP_GET: {
        int best = status ? status : best_value(op);
        if (best == CP2P_ENOTFOUND)
            best = no_result(op);
        if (best < 0)
            op->cb.value(d, best, NULL, 0, op->arg);
        else
            op->cb.value(d, 0, op->vals[best].v, op->vals[best].n, op->arg);
        break;
    }
    case OP_PROVIDERS:
        if (!status && !op->n_found)
            status = no_result(op);
        op->cb.peers(d, status, op->found, status ? 0 : op->n_found, op->arg);
        break;
    case OP_BOOTSTRAP:
        d->boot_outcome = op->lk;
        if (op->reseed)
            d->reseeding = 0;
        if (cp2p_kad_table_size(d->table)) {
            if (op->reseed) {
                d->reseed_ms = RESEED_FIRST_MS;
                cp2p_log_info(LOG, "bootstrap peers reached: %zu in the routing table",
                              cp2p_kad_table_size(d->table));
            }
        } else {
            if (!status)
                status = outcome_status(&op->lk);
            reseed_arm(d, 0);
        }
        /* fall through */
    case OP_PUT:
    case OP_PROVIDE:
        if (op->cb.done)
            op->cb.done(d, status, op->arg);
        break;
    case OP_REFRESH:
        break;
    }
    op_free(op);
}

static void on_lookup_answer(cp2p_dht_t *d, kad_rpc_t *r, int status,
                             const cp2p_kad_msg_t *m)
{
    kad_peer_seen(d, &r->peer, status == 0);
    if (status == 0)
        learn_addrs(d, &r->peer, m->closer, m->n_closer);
    kad_op_t *op = r->op;
    if (!op)
        return;
    count_outcome(&op->lk, status);
    if (status < 0) {
        cp2p_kad_query_on_failure(op->q, &r->peer);
        step(op);
        return;
    }
    const cp2p_peer_id_t *self = cp2p_host_peer_id(d->h);
    uint32_t hops = hops_of(op, &r->peer);
    cp2p_peer_id_t ids[CP2P_KAD_MAX_MSG_PEERS];
    size_t n = 0;
    for (size_t i = 0; i < m->n_closer; i++) {
        if (cp2p_peer_id_equal(&m->closer[i].id, self))
            continue;
        ids[n++] = m->closer[i].id;
        note_depth(op, &m->closer[i].id, hops + 1);
    }
    if (cp2p_kad_query_on_response(op->q, &r->peer, ids, n) < 0)
        return; /* a late answer: the lookup has moved on */
    if (op->kind == OP_GET && m->has_record) {
        if (m->rec_key_len != op->key_len || memcmp(m->rec_key, op->key, op->key_len) ||
            kad_validate(d, op->key, op->key_len, m->rec_value, m->rec_value_len)) {
            d->stats.invalid_records++;
        } else if (op->n_vals < op->max_vals) {
            value_t *v = &op->vals[op->n_vals];
            v->v = malloc(m->rec_value_len ? m->rec_value_len : 1);
            if (v->v) {
                memcpy(v->v, m->rec_value, m->rec_value_len);
                v->n = m->rec_value_len;
                v->from = r->peer;
                v->local = 0;
                if (!op->n_vals++)
                    op->answer_hops = hops;
            }
            if (op->n_vals >= op->need)
                cp2p_kad_query_stop(op->q);
        }
    } else if (op->kind == OP_PROVIDERS) {
        learn_addrs(d, &r->peer, m->providers, m->n_providers);
        for (size_t i = 0; i < m->n_providers && op->n_found < op->max_found; i++) {
            size_t j = 0;
            while (j < op->n_found && !cp2p_peer_id_equal(&op->found[j], &m->providers[i].id))
                j++;
            if (j == op->n_found) {
                op->found[op->n_found++] = m->providers[i].id;
                op->answer_hops = hops;
            }
        }
        if (op->n_found >= op->max_found)
            cp2p_kad_query_stop(op->q);
    } else if (op->kind == OP_FIND_PEER) {
        int found = cp2p_peer_id_equal(&r->peer, &op->peer);
        for (size_t i = 0; i < m->n_closer && !found; i++)
            found = m->closer[i].n_addrs && cp2p_peer_id_equal(&m->closer[i].id, &op->peer);
        if (found) {
            op->n_found = 1;
            op->answer_hops = hops;
            cp2p_kad_query_stop(op->q);
        }
    } else if (hops > op->answer_hops) {
        op->answer_hops = hops;
    }
    step(op);
}

static void on_store_answer(cp2p_dht_t *d, kad_rpc_t *r, int status, const cp2p_kad_msg_t *m)
{
    /* A reset is a refusal (a record it does not take, its quota): the peer
     * is alive and stays in the table. */
    kad_peer_seen(d, &r->peer, status == 0 || status == CP2P_ERESET);
    kad_op_t *op = r->op;
    if (!op)
        return;
    op->pending--;
    count_outcome(&op->st, status);
    if (status == 0)
        op->ok++;
    step(op);
}

static void send_value(cp2p_dht_t *d, const cp2p_peer_id_t *to, kad_op_t *op,
                       const uint8_t *key, size_t key_len, const uint8_t *v, size_t n,
                       kad_rpc_done_fn done)
{
    char when[40];
    time_t t = (time_t)(kad_wall_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S.000000000Z", &tm);
    cp2p_kad_msg_t m = {.type = CP2P_KAD_PUT_VALUE, .key = (uint8_t *)key, .key_len = key_len,
                        .has_record = 1, .rec_key = (uint8_t *)key, .rec_key_len = key_len,
                        .rec_value = (uint8_t *)v, .rec_value_len = n, .time_received = when};
    if (kad_rpc_send(d, to, &m, done, op) == 0 && op) {
        op->pending++;
        op->st.asked++;
    }
}

/* The lookup is over: store at the closest peers, or report. */
static void lookup_done(kad_op_t *op)
{
    cp2p_dht_t *d = op->d;
    if (op->kind != OP_PUT && op->kind != OP_PROVIDE) {
        finish(op, 0);
        return;
    }
    if (op->kind == OP_PUT && !op->value) {
        finish(op, CP2P_ENOMEM);
        return;
    }
    cp2p_peer_id_t closest[CP2P_KAD_MAX_K];
    size_t n = cp2p_kad_query_closest(op->q, closest, d->k);
    op->phase = 1;
    if (op->kind == OP_PUT) {
        for (size_t i = 0; i < n; i++)
            send_value(d, &closest[i], op, op->key, op->key_len, op->value, op->value_len,
                       on_store_answer);
    } else {
        cp2p_multiaddr_t *addrs = NULL;
        size_t na = 0;
        cp2p_host_addrs(d->h, &addrs, &na);
        cp2p_kad_peer_t self = {.id = *cp2p_host_peer_id(d->h), .addrs = addrs,
                                .n_addrs = na < CP2P_KAD_MAX_PEER_ADDRS ? na
                                                                        : CP2P_KAD_MAX_PEER_ADDRS,
                                .connection = CP2P_KAD_CONNECTED};
        cp2p_kad_msg_t m = {.type = CP2P_KAD_ADD_PROVIDER, .key = op->key,
                            .key_len = op->key_len, .providers = &self, .n_providers = 1};
        for (size_t i = 0; i < n; i++)
            if (kad_rpc_send(d, &closest[i], &m, on_store_answer, op) == 0) {
                op->pending++;
                op->st.asked++;
            }
        cp2p_multiaddr_array_free(addrs, na);
    }
    size_t quorum = d->quorum ? d->quorum : d->k / 2 + 1;
    op->need = op->pending < quorum ? op->pending : quorum;
    if (!op->pending && !store_again(op, uv_now(d->loop)))
        finish(op, no_result(op));
}

static int ask(kad_op_t *op, const cp2p_peer_id_t *peer)
{
    static const cp2p_kad_msg_type_t types[] = {
        [OP_CLOSEST] = CP2P_KAD_FIND_NODE, [OP_FIND_PEER] = CP2P_KAD_FIND_NODE,
        [OP_GET] = CP2P_KAD_GET_VALUE,     [OP_PUT] = CP2P_KAD_FIND_NODE,
        [OP_PROVIDE] = CP2P_KAD_FIND_NODE, [OP_PROVIDERS] = CP2P_KAD_GET_PROVIDERS,
        [OP_BOOTSTRAP] = CP2P_KAD_FIND_NODE, [OP_REFRESH] = CP2P_KAD_FIND_NODE};
    cp2p_kad_msg_t m = {.type = types[op->kind], .key = op->key, .key_len = op->key_len};
    op->lk.asked++;
    int rc = kad_rpc_send(op->d, peer, &m, on_lookup_answer, op);
    if (rc < 0)
        count_outcome(&op->lk, rc);
    return rc;
}

/* The lookup found nobody (the table is empty) but seeds may come back:
 * wait for them rather than fail, while time is left. */
static int should_wait(const kad_op_t *op, uint64_t now)
{
    cp2p_dht_t *d = op->d;
    return op->kind != OP_BOOTSTRAP && op->kind != OP_REFRESH && !op->lk.answered &&
           !op->n_vals && d->n_seeds && !d->closing && !cp2p_kad_table_size(d->table) &&
           now + WAIT_POLL_MS < op->deadline;
}

static void step(kad_op_t *op)
{
    cp2p_dht_t *d = op->d;
    uint64_t now = uv_now(d->loop);
    if (op->storing)
        return;
    op->started = 1;
    if (op->store_rc < 0) {
        finish(op, op->store_rc);
        return;
    }
    if (op->phase == 1) {
        if (op->ok >= op->need && op->need) {
            finish(op, 0);
        } else if ((!op->pending && !store_again(op, now)) || now >= op->deadline) {
            cp2p_dht_outcome_t o = op_outcome(op);
            finish(op, outcome_status(&o));
        }
        return;
    }
    if (op->retry_at) {
        if (now < op->retry_at)
            return;
        op->retry_at = 0;
        int rc = op_query(op);
        if (rc < 0) {
            finish(op, rc);
            return;
        }
    }
    if (now >= op->deadline)
        cp2p_kad_query_stop(op->q);
    for (;;) {
        cp2p_peer_id_t peers[CP2P_KAD_MAX_ALPHA];
        size_t n = cp2p_kad_query_next(op->q, now, peers, d->alpha);
        int failed = 0;
        for (size_t i = 0; i < n; i++)
            if (ask(op, &peers[i]) < 0) {
                cp2p_kad_query_on_failure(op->q, &peers[i]);
                kad_peer_seen(d, &peers[i], 0);
                failed = 1;
            }
        if (!failed)
            break;
    }
    if (cp2p_kad_query_done(op->q)) {
        if (should_wait(op, now)) {
            if (!op->waited)
                cp2p_log_debug(LOG, "the routing table is empty: a lookup waits for the bootstrap peers");
            op->waited = 1;
            op->retry_at = now + WAIT_POLL_MS;
            reseed_arm(d, 1);
            return;
        }
        lookup_done(op);
    }
}

/* A new lookup for op, seeded from the routing table. */
static int op_query(kad_op_t *op)
{
    cp2p_dht_t *d = op->d;
    cp2p_kad_query_config_t qc = {.k = d->k, .alpha = d->alpha,
                                  .request_timeout_ms = d->request_timeout_ms,
                                  .self = cp2p_host_peer_id(d->h)};
    cp2p_kad_query_t *q;
    int rc = cp2p_kad_query_new(&op->target, &qc, &q);
    cp2p_peer_id_t seeds[CP2P_KAD_MAX_K];
    size_t n = rc ? 0 : cp2p_kad_table_closest(d->table, &op->target, seeds, d->k);
    if (!rc)
        rc = cp2p_kad_query_add_peers(q, seeds, n);
    if (rc) {
        cp2p_kad_query_free(q);
        return rc;
    }
    cp2p_kad_query_free(op->q);
    op->q = q;
    op->n_depths = 0;
    for (size_t i = 0; i < n; i++)
        note_depth(op, &seeds[i], 1);
    return 0;
}

/* Storing reached too few peers: look again later rather than fail while
 * time is left (under load a table may still be filling). 1 if retrying. */
static int store_again(kad_op_t *op, uint64_t now)
{
    /* Refusals are answers: asking again changes nothing. */
    int worth = !op->st.asked || op->st.unreachable || op->st.timed_out;
    if (!worth || op->retries >= STORE_RETRIES || now + STORE_RETRY_MS >= op->deadline)
        return 0;
    op->retries++;
    op->phase = 0;
    op->ok = op->pending = op->need = 0;
    op->st = (cp2p_dht_outcome_t){0};
    op->retry_at = now + STORE_RETRY_MS;
    kad_rpc_forget_op(op->d, op); /* late acknowledgements count no more */
    kad_arm_tick(op->d);
    return 1;
}

/* The caller sets the callback and what the kind needs before the next loop turn. */
static int op_start(cp2p_dht_t *d, op_kind_t kind, const uint8_t *key, size_t key_len,
                    kad_op_t **out)
{
    if (!d || !key || !key_len || key_len > CP2P_KAD_MAX_KEY)
        return CP2P_EINVAL;
    if (d->closing || d->close_asked)
        return CP2P_ESTATE;
    kad_op_t *op = calloc(1, sizeof *op);
    if (!op)
        return CP2P_ENOMEM;
    op->d = d;
    op->kind = kind;
    op->key = malloc(key_len);
    op->depths = calloc(MAX_DEPTHS, sizeof *op->depths);
    op->key_len = key_len;
    int rc = op->key && op->depths ? 0 : CP2P_ENOMEM;
    if (!rc) {
        memcpy(op->key, key, key_len);
        rc = cp2p_kad_key_of(key, key_len, &op->target);
    }
    if (!rc)
        rc = op_query(op);
    if (rc) {
        op_free(op);
        return rc;
    }
    op->deadline = uv_now(d->loop) + d->query_timeout_ms;
    op->next = d->ops;
    d->ops = op;
    kad_arm_tick(d);
    uv_timer_start(&d->kick, on_kick, 0, 0);
    if (out)
        *out = op;
    return 0;
}

static int value_copy(kad_op_t *op, const uint8_t *v, size_t n)
{
    op->value = malloc(n ? n : 1);
    if (!op->value)
        return CP2P_ENOMEM;
    memcpy(op->value, v, n);
    op->value_len = n;
    return 0;
}

/* ---- records and keys we keep alive ---- */

static int own_add(cp2p_dht_t *d, int provider, const uint8_t *key, size_t key_len,
                   const uint8_t *value, size_t value_len)
{
    kad_own_t *o = d->own;
    while (o && !(o->provider == provider && o->key_len == key_len &&
                  !memcmp(o->key, key, key_len)))
        o = o->next;
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o || !(o->key = malloc(key_len))) {
            free(o);
            return CP2P_ENOMEM;
        }
        memcpy(o->key, key, key_len);
        o->key_len = key_len;
        o->provider = provider;
        o->next = d->own;
        d->own = o;
    }
    if (!provider) {
        uint8_t *v = malloc(value_len ? value_len : 1);
        if (!v)
            return CP2P_ENOMEM;
        memcpy(v, value, value_len);
        free(o->value);
        o->value = v;
        o->value_len = value_len;
    }
    o->due = uv_now(d->loop) + (provider ? d->provider_republish_ms : d->record_republish_ms);
    return 0;
}

/* ---- seeds: bootstrap peers tried again while the table is empty ---- */

static void on_reseed(uv_timer_t *t)
{
    cp2p_dht_t *d = t->data;
    if (d->closing || d->reseeding || cp2p_kad_table_size(d->table))
        return;
    uint64_t now = uv_now(d->loop);
    for (size_t i = 0; i < d->n_seeds; i++)
        cp2p_kad_table_add(d->table, &d->seeds[i], now, NULL);
    const cp2p_peer_id_t *self = cp2p_host_peer_id(d->h);
    kad_op_t *op;
    if (op_start(d, OP_BOOTSTRAP, self->bytes, self->len, &op) == 0) {
        op->reseed = 1;
        d->reseeding = 1;
    }
    d->reseed_ms = d->reseed_ms * 2 < RESEED_MAX_MS ? d->reseed_ms * 2 : RESEED_MAX_MS;
}

/* Try the seeds again after the current delay, or within a second while a
 * lookup waits for them (urgent), unless the table has peers or a try runs. */
static void reseed_arm(cp2p_dht_t *d, int urgent)
{
    if (d->closing || !d->n_seeds || d->reseeding || cp2p_kad_table_size(d->table))
        return;
    for (kad_op_t *op = d->ops; op && !urgent; op = op->next)
        urgent = op->waited;
    uint64_t delay = urgent && d->reseed_ms > RESEED_FIRST_MS ? RESEED_FIRST_MS : d->reseed_ms;
    if (uv_is_active((uv_handle_t *)&d->reseed) && uv_timer_get_due_in(&d->reseed) <= delay)
        return;
    cp2p_log_info(LOG, "no peer in the routing table: trying the %zu bootstrap peer%s again in %.1f s",
                  d->n_seeds, d->n_seeds == 1 ? "" : "s", (double)delay / 1000);
    uv_timer_start(&d->reseed, on_reseed, delay, 0);
}

static void on_maint(uv_timer_t *t)
{
    cp2p_dht_t *d = t->data;
    uint64_t now = uv_now(d->loop);
    kad_write_expire(d, kad_wall_ms());
    for (kad_own_t *o = d->own; o; o = o->next) {
        if (o->due > now)
            continue;
        kad_op_t *op;
        if (o->provider) {
            o->due = now + d->provider_republish_ms;
            kad_write_provider(d, o->key, o->key_len, cp2p_host_peer_id(d->h), kad_wall_ms(),
                               NULL, NULL);
            op_start(d, OP_PROVIDE, o->key, o->key_len, NULL);
        } else {
            o->due = now + d->record_republish_ms;
            kad_write_record(d, o->key, o->key_len, o->value, o->value_len, kad_wall_ms(), NULL,
                             NULL);
            if (op_start(d, OP_PUT, o->key, o->key_len, &op) == 0 &&
                value_copy(op, o->value, o->value_len) < 0)
                op->deadline = 0; /* fails at its first step */
        }
    }
    unsigned cpls[MAX_REFRESHES];
    size_t n = cp2p_kad_table_size(d->table)
                   ? cp2p_kad_table_stale_buckets(d->table, now, d->refresh_ms, cpls,
                                                  MAX_REFRESHES)
                   : 0;
    for (size_t i = 0; i < n; i++) {
        cp2p_peer_id_t target;
        if (cp2p_kad_table_refresh_target(d->table, cpls[i], &target) == 0)
            op_start(d, OP_REFRESH, target.bytes, target.len, NULL);
    }
    kad_write_table(d);
}

/* ---- the saved routing table ---- */

#define MAX_SAVED (CP2P_KAD_MAX_K * 16)

int kad_snapshot_peers(cp2p_dht_t *d, cp2p_kad_saved_peer_t **out, size_t *n)
{
    cp2p_peer_id_t ids[MAX_SAVED];
    size_t np = cp2p_kad_table_peers(d->table, ids, MAX_SAVED);
    if (np > MAX_SAVED)
        np = MAX_SAVED;
    cp2p_kad_saved_peer_t *v = calloc(np ? np : 1, sizeof *v);
    if (!v)
        return CP2P_ENOMEM;
    cp2p_peerstore_t *ps = cp2p_host_peerstore(d->h);
    for (size_t i = 0; i < np; i++) {
        cp2p_multiaddr_t addrs[CP2P_KAD_SAVED_ADDRS];
        size_t na = cp2p_peerstore_addrs(ps, &ids[i], uv_now(d->loop), addrs,
                                         CP2P_KAD_SAVED_ADDRS);
        if (na > CP2P_KAD_SAVED_ADDRS)
            na = CP2P_KAD_SAVED_ADDRS;
        v[i].id = ids[i];
        cp2p_kad_saved_peer_set_addrs(&v[i], addrs, na);
    }
    *out = v;
    *n = np;
    return 0;
}

/* Where the saved table's peers were: a peer restarted on its datastore
 * reaches them without a bootstrap. Identify and lookups correct them. */
static void load_table(cp2p_dht_t *d)
{
    cp2p_kad_saved_peer_t *saved = calloc(MAX_SAVED, sizeof *saved);
    int ns = saved ? cp2p_kad_store_load_peers(d->store, saved, MAX_SAVED) : 0;
    cp2p_peerstore_t *ps = cp2p_host_peerstore(d->h);
    for (int i = 0; i < ns; i++) {
        cp2p_multiaddr_t addrs[CP2P_KAD_SAVED_ADDRS];
        size_t na = cp2p_kad_saved_peer_addrs(&saved[i], addrs, CP2P_KAD_SAVED_ADDRS);
        if (na)
            cp2p_peerstore_add_addrs(ps, &saved[i].id, addrs, na, CP2P_TTL_ADDRESS,
                                     uv_now(d->loop));
        for (size_t j = 0; j < na; j++)
            cp2p_multiaddr_free(&addrs[j]);
        cp2p_kad_table_add(d->table, &saved[i].id, uv_now(d->loop), NULL);
    }
    free(saved);
}

static void on_table_change(const cp2p_peer_id_t *peer, int member, void *arg)
{
    cp2p_dht_t *d = arg;
    if (member)
        cp2p_host_tag_peer(d->h, peer, TABLE_TAG, TABLE_TAG_WEIGHT);
    else
        cp2p_host_untag_peer(d->h, peer, TABLE_TAG);
    if (!d->writes_closing)
        kad_write_table(d);
    if (!member)
        reseed_arm(d, 0); /* the last peer left */
}

/* The last handle (or the store) closed: the DHT is gone. */
static void release(cp2p_dht_t *d)
{
    if (--d->open_handles)
        return;
    void (*done)(void *) = d->done;
    void *arg = d->done_arg;
    free(d);
    if (done)
        done(arg);
}

void kad_store_closed(cp2p_dht_t *d)
{
    cp2p_kad_store_free(d->store);
    d->store = NULL;
    release(d);
}

/* ---- membership: identify tells who serves the protocol ---- */

static void on_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_dht_t *d = arg;
    if (ev->type != CP2P_EVENT_PEER_IDENTIFIED || !ev->peer)
        return;
    if (cp2p_peerstore_supports(cp2p_host_peerstore(d->h), ev->peer, d->protocol))
        kad_peer_seen(d, ev->peer, 1);
    else
        cp2p_kad_table_remove(d->table, ev->peer);
}

/* ---- the API ---- */

int cp2p_dht_new(cp2p_host_t *h, const cp2p_dht_config_t *cfg, cp2p_dht_t **out)
{
    static const cp2p_dht_config_t defaults = {0};
    if (!h || !out)
        return CP2P_EINVAL;
    if (!cfg)
        cfg = &defaults;
    if (cfg->k > CP2P_KAD_MAX_K || cfg->alpha > CP2P_KAD_MAX_ALPHA ||
        (cfg->n_open_namespaces && !cfg->open_namespaces))
        return CP2P_EINVAL;
    cp2p_dht_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    d->h = h;
    d->loop = cp2p_host_loop(h);
    d->mode = cfg->mode;
    d->k = cfg->k ? cfg->k : CP2P_DHT_DEFAULT_K;
    d->alpha = cfg->alpha ? cfg->alpha : CP2P_DHT_DEFAULT_ALPHA;
    d->request_timeout_ms =
        cfg->request_timeout_ms ? cfg->request_timeout_ms : CP2P_DHT_DEFAULT_REQUEST_TIMEOUT_MS;
    d->query_timeout_ms =
        cfg->query_timeout_ms ? cfg->query_timeout_ms : CP2P_DHT_DEFAULT_QUERY_TIMEOUT_MS;
    d->quorum = cfg->quorum;
    d->open_keys = cfg->open_keys;
    d->refresh_ms = cfg->refresh_ms ? cfg->refresh_ms : CP2P_DHT_DEFAULT_REFRESH_MS;
    d->record_republish_ms =
        cfg->record_republish_ms ? cfg->record_republish_ms : CP2P_DHT_DEFAULT_RECORD_REPUBLISH_MS;
    d->provider_republish_ms = cfg->provider_republish_ms
                                   ? cfg->provider_republish_ms
                                   : CP2P_DHT_DEFAULT_PROVIDER_REPUBLISH_MS;
    d->protocol = strdup(cfg->protocol ? cfg->protocol : CP2P_DHT_PROTOCOL);
    d->open_ns = calloc(cfg->n_open_namespaces + 1, sizeof *d->open_ns);
    int rc = d->protocol && d->open_ns ? 0 : CP2P_ENOMEM;
    for (size_t i = 0; !rc && i < cfg->n_open_namespaces; i++) {
        d->open_ns[i] = strdup(cfg->open_namespaces[i]);
        rc = d->open_ns[i] ? 0 : CP2P_ENOMEM;
        d->n_open_ns += !rc;
    }
    if (!rc)
        rc = cp2p_kad_table_new(cp2p_host_peer_id(h), d->k, &d->table);
    if (!rc) {
        /* a sixteenth of the store each, by default */
        cp2p_kad_store_limits_t sl = {0};
        cp2p_kad_store_limits_defaults(&sl);
        kad_quota_limits_t ql = {
            .records = cfg->max_records_per_peer ? cfg->max_records_per_peer
                                                 : (uint32_t)(sl.max_records / 16),
            .providers = cfg->max_providers_per_peer ? cfg->max_providers_per_peer
                                                     : (uint32_t)(sl.max_providers / 16),
            .bytes = cfg->max_bytes_per_peer ? cfg->max_bytes_per_peer : sl.max_bytes / 16,
            .max_entries = 2 * (sl.max_records + sl.max_providers)};
        rc = kad_quota_new(&ql, &d->quota);
    }
    if (!rc)
        rc = cfg->datastore ? cp2p_kad_store_open_lmdb(cfg->datastore, NULL, &d->store)
                            : cp2p_kad_store_new_memory(NULL, &d->store);
    if (!rc && d->mode == CP2P_DHT_MODE_SERVER)
        rc = cp2p_host_set_handler(h, d->protocol, kad_rpc_serve, d);
    if (!rc)
        rc = cp2p_host_subscribe(h, on_event, d);
    if (rc) {
        if (d->table && d->mode == CP2P_DHT_MODE_SERVER && d->store)
            cp2p_host_remove_handler(h, d->protocol);
        cp2p_kad_store_free(d->store);
        cp2p_kad_table_free(d->table);
        kad_quota_free(d->quota);
        for (size_t i = 0; i < d->n_open_ns; i++)
            free(d->open_ns[i]);
        free(d->open_ns);
        free(d->protocol);
        free(d);
        return rc;
    }
    cp2p_kad_table_on_change(d->table, on_table_change, d); /* the saved peers are tagged too */
    load_table(d);
    uv_timer_init(d->loop, &d->tick);
    uv_timer_init(d->loop, &d->maint);
    uv_timer_init(d->loop, &d->kick);
    uv_timer_init(d->loop, &d->reseed);
    d->tick.data = d->maint.data = d->kick.data = d->reseed.data = d;
    d->reseed_ms = RESEED_FIRST_MS;
    d->open_handles = 5; /* four timers and the store (kad_store_closed) */
    uint64_t period = d->refresh_ms;
    if (d->record_republish_ms < period)
        period = d->record_republish_ms;
    if (d->provider_republish_ms < period)
        period = d->provider_republish_ms;
    if (period > MAINT_MAX_MS)
        period = MAINT_MAX_MS;
    uv_timer_start(&d->maint, on_maint, period, period);
    *out = d;
    return 0;
}

static void on_handle_closed(uv_handle_t *hd)
{
    release(hd->data);
}

static void on_close_kick(uv_timer_t *t)
{
    cp2p_dht_free(t->data);
}

void cp2p_dht_close(cp2p_dht_t *d, void (*done)(void *arg), void *arg)
{
    if (!d || d->closing || d->close_asked)
        return;
    d->close_asked = 1;
    d->done = done;
    d->done_arg = arg;
    /* The teardown (and the cancelled callbacks) on the next loop turn, out
     * of whatever callback called us. */
    uv_timer_stop(&d->kick);
    uv_timer_start(&d->kick, on_close_kick, 0, 0);
}

void cp2p_dht_free(cp2p_dht_t *d)
{
    if (!d || d->closing)
        return;
    d->closing = 1;
    cp2p_host_unsubscribe(d->h, on_event, d);
    if (d->mode == CP2P_DHT_MODE_SERVER)
        cp2p_host_remove_handler(d->h, d->protocol);
    while (d->ops)
        finish(d->ops, CP2P_ECANCELED);
    kad_rpc_shutdown(d);
    if (cp2p_kad_table_size(d->table))
        kad_write_table(d);
    /* The host may live on: our tags go with the table. */
    cp2p_peer_id_t peers[MAX_SAVED];
    size_t np = cp2p_kad_table_peers(d->table, peers, MAX_SAVED);
    for (size_t i = 0; i < np && i < MAX_SAVED; i++)
        cp2p_host_untag_peer(d->h, &peers[i], TABLE_TAG);
    kad_write_close(d); /* the store goes once the last write ended */
    while (d->own) {
        kad_own_t *o = d->own;
        d->own = o->next;
        free(o->key);
        free(o->value);
        free(o);
    }
    cp2p_kad_table_free(d->table);
    d->table = NULL;
    kad_quota_free(d->quota);
    d->quota = NULL;
    for (size_t i = 0; i < d->n_open_ns; i++)
        free(d->open_ns[i]);
    free(d->open_ns);
    free(d->protocol);
    uv_close((uv_handle_t *)&d->tick, on_handle_closed);
    uv_close((uv_handle_t *)&d->maint, on_handle_closed);
    uv_close((uv_handle_t *)&d->kick, on_handle_closed);
    uv_close((uv_handle_t *)&d->reseed, on_handle_closed);
}

int cp2p_dht_add_peer(cp2p_dht_t *d, const cp2p_peer_id_t *peer, const cp2p_multiaddr_t *addrs,
                      size_t n)
{
    if (!d || !peer || (n && !addrs))
        return CP2P_EINVAL;
    if (cp2p_peer_id_equal(peer, cp2p_host_peer_id(d->h)))
        return CP2P_EINVAL;
    int rc = n ? cp2p_peerstore_add_addrs(cp2p_host_peerstore(d->h), peer, addrs, n,
                                          CP2P_TTL_PERMANENT, uv_now(d->loop))
               : 0;
    if (rc)
        return rc;
    size_t i = 0;
    while (i < d->n_seeds && !cp2p_peer_id_equal(&d->seeds[i], peer))
        i++;
    if (i == d->n_seeds && d->n_seeds < CP2P_DHT_MAX_SEEDS)
        d->seeds[d->n_seeds++] = *peer;
    rc = cp2p_kad_table_add(d->table, peer, uv_now(d->loop), NULL);
    return rc == CP2P_ELIMIT ? 0 : rc;
}

int cp2p_dht_bootstrap(cp2p_dht_t *d, cp2p_dht_done_cb cb, void *arg)
{
    if (!d || !cb)
        return CP2P_EINVAL;
    const cp2p_peer_id_t *self = cp2p_host_peer_id(d->h);
    kad_op_t *op;
    int rc = op_start(d, OP_BOOTSTRAP, self->bytes, self->len, &op);
    if (rc)
        return rc;
    op->cb.done = cb;
    op->arg = arg;
    on_maint(&d->maint); /* and the stale buckets */
    return 0;
}

/* A put or provide is reported only after our own copy is committed. */
static void on_stored(cp2p_dht_t *d, int rc, void *arg)
{
    kad_op_t *op = arg;
    op->storing = 0;
    op->store_rc = rc < 0 ? rc : 0;
    step(op);
}

static void store_first(kad_op_t *op, int queued)
{
    op->storing = queued == 0;
    op->store_rc = queued;
}

int cp2p_dht_put(cp2p_dht_t *d, const uint8_t *key, size_t key_len, const uint8_t *value,
                 size_t value_len, cp2p_dht_done_cb cb, void *arg)
{
    if (!d || !cb || !key || !key_len || (!value && value_len) || value_len > CP2P_KAD_MAX_VALUE)
        return CP2P_EINVAL;
    int rc = kad_validate(d, key, key_len, value, value_len);
    cp2p_buf_t held = {0};
    if (!rc && cp2p_kad_store_get_record(d->store, key, key_len, kad_wall_ms(), &held, NULL) == 0 &&
        cp2p_kad_store_keeps_old(key, key_len, value, value_len, held.data, held.len))
        rc = CP2P_EREFUSED; /* no rollback of our own either */
    cp2p_buf_free(&held);
    if (!rc)
        rc = own_add(d, 0, key, key_len, value, value_len);
    kad_op_t *op;
    if (!rc)
        rc = op_start(d, OP_PUT, key, key_len, &op);
    if (rc)
        return rc;
    op->cb.done = cb;
    op->arg = arg;
    if (value_copy(op, value, value_len) < 0)
        op->deadline = 0; /* fails at its first step */
    else
        store_first(op, kad_write_record(d, key, key_len, value, value_len, kad_wall_ms(),
                                         on_stored, op));
    return 0;
}

int cp2p_dht_get(cp2p_dht_t *d, const uint8_t *key, size_t key_len, cp2p_dht_value_cb cb,
                 void *arg)
{
    kad_op_t *op;
    int rc = cb ? op_start(d, OP_GET, key, key_len, &op) : CP2P_EINVAL;
    if (rc)
        return rc;
    op->cb.value = cb;
    op->arg = arg;
    op->need = d->quorum ? d->quorum : d->k / 2 + 1;
    op->max_vals = op->need < d->k ? op->need : d->k;
    op->vals = calloc(op->max_vals, sizeof *op->vals);
    cp2p_buf_t local = {0};
    if (!op->vals) {
        op->max_vals = 0;
        op->deadline = 0;
    } else if (cp2p_kad_store_get_record(d->store, key, key_len, kad_wall_ms(), &local, NULL) ==
               0) {
        op->vals[0].local = 1;
        op->vals[0].v = cp2p_buf_steal(&local, &op->vals[0].n);
        op->n_vals = op->vals[0].v ? 1 : 0;
    }
    cp2p_buf_free(&local);
    return 0;
}

int cp2p_dht_provide(cp2p_dht_t *d, const uint8_t *key, size_t key_len, cp2p_dht_done_cb cb,
                     void *arg)
{
    if (!d || !cb || !key || !key_len || key_len > CP2P_KAD_MAX_KEY)
        return CP2P_EINVAL;
    int rc = own_add(d, 1, key, key_len, NULL, 0);
    kad_op_t *op;
    if (!rc)
        rc = op_start(d, OP_PROVIDE, key, key_len, &op);
    if (rc)
        return rc;
    op->cb.done = cb;
    op->arg = arg;
    store_first(op, kad_write_provider(d, key, key_len, cp2p_host_peer_id(d->h), kad_wall_ms(),
                                       on_stored, op));
    return 0;
}

int cp2p_dht_find_providers(cp2p_dht_t *d, const uint8_t *key, size_t key_len, size_t max,
                            cp2p_dht_peers_cb cb, void *arg)
{
    kad_op_t *op;
    int rc = cb ? op_start(d, OP_PROVIDERS, key, key_len, &op) : CP2P_EINVAL;
    if (rc)
        return rc;
    op->cb.peers = cb;
    op->arg = arg;
    op->max_found = max && max < CP2P_DHT_MAX_PROVIDERS ? max : CP2P_DHT_MAX_PROVIDERS;
    op->found = calloc(op->max_found, sizeof *op->found);
    if (!op->found) {
        op->max_found = 0;
        op->deadline = 0;
        return 0;
    }
    int n = cp2p_kad_store_get_providers(d->store, key, key_len, kad_wall_ms(), op->found,
                                         op->max_found);
    op->n_found = n > 0 ? (size_t)n : 0;
    if (op->n_found >= op->max_found)
        cp2p_kad_query_stop(op->q);
    return 0;
}

int cp2p_dht_find_peer(cp2p_dht_t *d, const cp2p_peer_id_t *peer, cp2p_dht_peers_cb cb,
                       void *arg)
{
    kad_op_t *op;
    int rc = peer && cb ? op_start(d, OP_FIND_PEER, peer->bytes, peer->len, &op) : CP2P_EINVAL;
    if (rc)
        return rc;
    op->cb.peers = cb;
    op->arg = arg;
    op->peer = *peer;
    return 0;
}

int cp2p_dht_closest_peers(cp2p_dht_t *d, const uint8_t *key, size_t key_len,
                           cp2p_dht_peers_cb cb, void *arg)
{
    kad_op_t *op;
    int rc = cb ? op_start(d, OP_CLOSEST, key, key_len, &op) : CP2P_EINVAL;
    if (rc)
        return rc;
    op->cb.peers = cb;
    op->arg = arg;
    return 0;
}

size_t cp2p_dht_routing_table_size(const cp2p_dht_t *d)
{
    return d ? cp2p_kad_table_size(d->table) : 0;
}

const cp2p_dht_stats_t *cp2p_dht_stats(const cp2p_dht_t *d)
{
    return &d->stats;
}

void cp2p_dht_holdings(const cp2p_dht_t *d, cp2p_dht_holdings_t *out)
{
    out->records = cp2p_kad_store_record_count(d->store);
    out->providers = cp2p_kad_store_provider_count(d->store);
}
