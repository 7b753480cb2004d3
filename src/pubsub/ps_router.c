/* The pubsub router (libp2p pubsub spec; gossipsub v1.0 "Router State",
 * "Message Processing", "Heartbeat"; v1.1 backoff, peer exchange, flood
 * publishing, adaptive gossip, outbound quotas, spam protection; v1.2
 * IDONTWANT). Sans-I/O: see ps_router.h. Peers and topics are few (bounded
 * by max_peers and max_topics), so they live in arrays searched linearly;
 * message ids, which are many, live in keyed hash maps (ps_idmap.c). */
#include "pubsub/ps_router.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "pubsub/ps_idmap.h"
#include "pubsub/ps_rpc.h"
#include "pubsub/ps_score.h"

#define SIGN_PREFIX "libp2p-pubsub:"
#define MAX_ID 256                /* message ids longer than this are refused */
#define PENDING_TIMEOUT_MS 10000
#define DONTSEND_TICKS 3          /* heartbeats an IDONTWANT is kept */
#define TX_SLOTS 8                /* peers whose IWANT answers a cached message counts */

typedef struct ps_peer ps_peer_t;
typedef struct ps_topic ps_topic_t;

struct ps_peer {
    cp2p_peer_id_t id;
    ps_proto_t proto;
    int outbound;
    ps_topic_t **subs;            /* topics it is subscribed to */
    size_t n_subs, cap_subs;
    ps_rpc_build_t out;
    int dirty;
    uint32_t ihave_in, iasked, idontwant_in; /* this heartbeat */
    ps_idmap_t dontsend;          /* ids it told us not to send (v1.2) */
    ps_score_peer_t score;
};

typedef struct ps_mesh {
    ps_peer_t *p;
    uint64_t since;
} ps_mesh_t;

typedef struct ps_backoff {
    cp2p_peer_id_t id;
    uint64_t until;
} ps_backoff_t;

struct ps_topic {
    char *name;
    size_t len;
    int joined;
    ps_peer_t **peers;            /* subscribed peers */
    size_t n_peers, cap_peers;
    ps_mesh_t *mesh;
    size_t n_mesh, cap_mesh;
    ps_peer_t **fanout;
    size_t n_fanout, cap_fanout;
    uint64_t last_pub;
    ps_backoff_t *backoff;
    size_t n_backoff, cap_backoff;
    const cp2p_pubsub_topic_score_t *score; /* NULL: the topic adds nothing to scores */
};

typedef struct cached {          /* a message in the message cache */
    uint8_t *raw;
    size_t n;
    char *topic;
    struct {
        uint8_t who[8];
        uint8_t count;
    } tx[TX_SLOTS];
} cached_t;

typedef struct pending {         /* a message a validator has not answered yet */
    struct pending *next;
    uint64_t token, deadline;
    cp2p_peer_id_t src;
    uint8_t *raw;
    size_t n;
    uint8_t id[MAX_ID];
    size_t id_len;
} pending_t;

struct ps_router {
    cp2p_pubsub_config_t cfg;
    cp2p_gossipsub_params_t *gp;
    const cp2p_privkey_t *key;
    cp2p_peer_id_t self;
    ps_router_io_t io;
    ps_peer_t **peers;
    size_t n_peers;
    ps_topic_t **topics;
    size_t n_topics;
    ps_idmap_t seen, mcache;
    uint64_t hb, seqno, next_token;
    pending_t *pending;
    size_t n_pending;
    ps_score_t score;
    cp2p_pubsub_stats_t st;
    cp2p_buf_t frame;
    const char **joined_names;   /* ps_router_topics() output storage */
};

/* --- small helpers --- */

#define GROW(arr, n, cap)                                                             \
    ((n) < (cap) ? 0                                                                  \
                 : grow_array((void **)&(arr), &(cap), sizeof *(arr)))

static int grow_array(void **arr, size_t *cap, size_t elem)
{
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return CP2P_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static uint32_t rnd(uint32_t n)
{
    return n ? randombytes_uniform(n) : 0;
}

static void shuffle(ps_peer_t **v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd((uint32_t)i);
        ps_peer_t *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static int is_mesh_proto(const ps_peer_t *p)
{
    return p->proto != PS_FLOODSUB;
}

static ps_peer_t *peer_of(const ps_router_t *r, const cp2p_peer_id_t *id)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (cp2p_peer_id_equal(&r->peers[i]->id, id))
            return r->peers[i];
    return NULL;
}

static ps_topic_t *topic_of(const ps_router_t *r, const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < r->n_topics; i++)
        if (r->topics[i]->len == len && (len == 0 || !memcmp(r->topics[i]->name, name, len)))
            return r->topics[i];
    return NULL;
}

static ps_topic_t *topic_get(ps_router_t *r, const uint8_t *name, size_t len)
{
    ps_topic_t *t = topic_of(r, name, len);
    if (t || len > CP2P_PUBSUB_MAX_TOPIC_LEN || r->n_topics >= r->cfg.max_topics)
        return t;
    if (!(t = calloc(1, sizeof *t)) || !(t->name = malloc(len + 1))) {
        free(t);
        return NULL;
    }
    memcpy(t->name, name, len);
    t->name[len] = 0;
    t->len = len;
    if (r->cfg.score)
        for (size_t i = 0; i < r->cfg.score->n_topics; i++)
            if (!strcmp(r->cfg.score->topics[i].topic, t->name))
                t->score = &r->cfg.score->topics[i];
    ps_topic_t **v = realloc(r->topics, (r->n_topics + 1) * sizeof *v);
    if (!v) {
        free(t->name);
        free(t);
        return NULL;
    }
    r->topics = v;
    r->topics[r->n_topics++] = t;
    return t;
}

static void topic_free(ps_topic_t *t)
{
    free(t->name);
    free(t->peers);
    free(t->mesh);
    free(t->fanout);
    free(t->backoff);
    free(t);
}

/* Drop a topic nobody uses any more (not joined, no peers, no fanout). */
static void topic_maybe_drop(ps_router_t *r, ps_topic_t *t)
{
    if (t->joined || t->n_peers || t->n_fanout || t->n_backoff)
        return;
    for (size_t i = 0; i < r->n_topics; i++)
        if (r->topics[i] == t) {
            r->topics[i] = r->topics[--r->n_topics];
            break;
        }
    topic_free(t);
}

static int in_list(ps_peer_t *const *v, size_t n, const ps_peer_t *p)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == p)
            return 1;
    return 0;
}

static int list_remove(ps_peer_t **v, size_t *n, const ps_peer_t *p)
{
    for (size_t i = 0; i < *n; i++)
        if (v[i] == p) {
            v[i] = v[--*n];
            return 1;
        }
    return 0;
}

static ssize_t mesh_index(const ps_topic_t *t, const ps_peer_t *p)
{
    for (size_t i = 0; i < t->n_mesh; i++)
        if (t->mesh[i].p == p)
            return (ssize_t)i;
    return -1;
}

static int subscribed(const ps_topic_t *t, const ps_peer_t *p)
{
    return in_list(t->peers, t->n_peers, p);
}

static uint64_t backoff_until(const ps_topic_t *t, const ps_peer_t *p)
{
    for (size_t i = 0; i < t->n_backoff; i++)
        if (cp2p_peer_id_equal(&t->backoff[i].id, &p->id))
            return t->backoff[i].until;
    return 0;
}

static void backoff_set(ps_topic_t *t, const cp2p_peer_id_t *id, uint64_t until)
{
    for (size_t i = 0; i < t->n_backoff; i++)
        if (cp2p_peer_id_equal(&t->backoff[i].id, id)) {
            if (t->backoff[i].until < until)
                t->backoff[i].until = until;
            return;
        }
    if (GROW(t->backoff, t->n_backoff, t->cap_backoff))
        return;
    t->backoff[t->n_backoff++] = (ps_backoff_t){*id, until};
}

static double score_of(ps_router_t *r, ps_peer_t *p, uint64_t now)
{
    return r->cfg.score ? ps_score_value(&r->score, &p->score, now) : 0;
}

/* The peer's pending RPC is sent at the end of the current entry point. */
static ps_rpc_build_t *out_of(ps_peer_t *p)
{
    p->dirty = 1;
    return &p->out;
}

static void flush(ps_router_t *r)
{
    for (size_t i = 0; i < r->n_peers; i++) {
        ps_peer_t *p = r->peers[i];
        if (!p->dirty)
            continue;
        p->dirty = 0;
        if (ps_build_empty(&p->out))
            continue;
        cp2p_buf_reset(&r->frame);
        if (ps_build_finish(&p->out, &r->frame) == 0)
            r->io.send(r->io.arg, &p->id, r->frame.data, r->frame.len);
        else
            ps_build_reset(&p->out);
    }
    if (r->frame.cap > 1024 * 1024)
        cp2p_buf_free(&r->frame);
}

/* --- mesh membership --- */

static void mesh_add(ps_router_t *r, ps_topic_t *t, ps_peer_t *p, uint64_t now)
{
    if (mesh_index(t, p) >= 0 || GROW(t->mesh, t->n_mesh, t->cap_mesh))
        return;
    t->mesh[t->n_mesh++] = (ps_mesh_t){p, now};
    if (r->cfg.score && t->score)
        ps_score_graft(&r->score, &p->score, t->score, now);
}

static void mesh_del(ps_router_t *r, ps_topic_t *t, ps_peer_t *p, uint64_t now)
{
    ssize_t i = mesh_index(t, p);
    if (i < 0)
        return;
    t->mesh[i] = t->mesh[--t->n_mesh];
    if (r->cfg.score && t->score)
        ps_score_prune(&r->score, &p->score, t->score, now);
}

static void send_graft(ps_topic_t *t, ps_peer_t *p)
{
    ps_build_graft(out_of(p), t->name, t->len);
}

/* PRUNE p from t, with peer exchange if px and the peer speaks v1.1+. */
static void send_prune(ps_router_t *r, ps_topic_t *t, ps_peer_t *p, int px, uint64_t backoff_ms,
                       uint64_t now)
{
    ps_px_t ex[64];
    size_t n = 0;
    if (px && !r->gp->no_px && p->proto >= PS_MESHSUB11) {
        ps_peer_t *cand[64];
        size_t nc = 0;
        for (size_t i = 0; i < t->n_peers && nc < 64; i++)
            if (t->peers[i] != p && is_mesh_proto(t->peers[i]) &&
                score_of(r, t->peers[i], now) >= 0)
                cand[nc++] = t->peers[i];
        shuffle(cand, nc);
        for (size_t i = 0; i < nc && n < r->gp->prune_peers && n < 64; i++)
            ex[n++] = (ps_px_t){{cand[i]->id.bytes, cand[i]->id.len}, {NULL, 0}};
    }
    uint64_t backoff_s = (backoff_ms + 999) / 1000;
    ps_build_prune(out_of(p), t->name, t->len, p->proto >= PS_MESHSUB11 ? backoff_s : 0,
                   ex, n);
    backoff_set(t, &p->id, now + backoff_ms);
}

/* Gossipsub peers of t that could join its mesh now. */
static size_t graft_candidates(ps_router_t *r, ps_topic_t *t, int outbound_only, uint64_t now,
                               ps_peer_t **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_peers && n < cap; i++) {
        ps_peer_t *p = t->peers[i];
        if (!is_mesh_proto(p) || mesh_index(t, p) >= 0 || (outbound_only && !p->outbound) ||
            backoff_until(t, p) > now || score_of(r, p, now) < 0)
            continue;
        out[n++] = p;
    }
    shuffle(out, n);
    return n;
}

/* Grafts up to want of t's candidates (outbound ones only if asked). */
static void graft_some(ps_router_t *r, ps_topic_t *t, int outbound_only, size_t want,
                       uint64_t now)
{
    ps_peer_t *cand[256];
    size_t n = graft_candidates(r, t, outbound_only, now, cand, 256);
    for (size_t i = 0; i < n && i < want; i++) {
        mesh_add(r, t, cand[i], now);
        send_graft(t, cand[i]);
    }
}

/* --- messages --- */

static size_t message_id(const ps_router_t *r, const ps_msg_t *m, uint8_t *out)
{
    if (r->cfg.msg_id_fn) {
        size_t n = r->cfg.msg_id_fn(m->from.p, m->from.n, m->seqno.p, m->seqno.n, m->data.p,
                                    m->data.n, out, MAX_ID, r->cfg.msg_id_arg);
        if (n && n <= MAX_ID)
            return n;
    }
    if ((m->has & (PS_F_FROM | PS_F_SEQNO)) == (PS_F_FROM | PS_F_SEQNO) &&
        m->from.n + m->seqno.n <= MAX_ID && m->from.n + m->seqno.n > 0) {
        /* The spec's default: from and seqno, as go-libp2p-pubsub has it. */
        memcpy(out, m->from.p, m->from.n);
        memcpy(out + m->from.n, m->seqno.p, m->seqno.n);
        return m->from.n + m->seqno.n;
    }
    /* Unsigned messages: the content (the spec's content-addressed id). */
    crypto_hash_sha256(out, m->data.p ? m->data.p : (const uint8_t *)"", m->data.n);
    return crypto_hash_sha256_BYTES;
}

static uint64_t seqno_value(const ps_bytes_t *b)
{
    uint64_t v = 0;
    for (size_t i = 0; i < b->n && i < 8; i++)
        v = v << 8 | b->p[i];
    return v;
}

/* The signing policy's checks (pubsub spec "Signature Policy Options"). */
static int check_signature(const ps_router_t *r, const ps_msg_t *m, cp2p_peer_id_t *from)
{
    if (r->cfg.sign_policy == CP2P_PUBSUB_STRICT_NO_SIGN)
        return (m->has & (PS_F_FROM | PS_F_SEQNO | PS_F_SIG | PS_F_KEY)) ? CP2P_ESIG : 0;
    if ((m->has & (PS_F_FROM | PS_F_SEQNO | PS_F_SIG)) != (PS_F_FROM | PS_F_SEQNO | PS_F_SIG))
        return CP2P_ESIG;
    if (cp2p_peer_id_from_bytes(m->from.p, m->from.n, from) != 0)
        return CP2P_ESIG;
    cp2p_pubkey_t *pk = NULL;
    int rc;
    if (m->has & PS_F_KEY) {
        rc = cp2p_pubkey_unmarshal(m->key.p, m->key.n, &pk);
        if (rc == 0 && !cp2p_peer_id_matches_pubkey(from, pk))
            rc = CP2P_ESIG;
    } else {
        rc = cp2p_peer_id_extract_pubkey(from, &pk);
    }
    if (rc == 0) {
        cp2p_buf_t b = {0};
        rc = cp2p_buf_append(&b, SIGN_PREFIX, sizeof SIGN_PREFIX - 1);
        if (!rc)
            rc = ps_msg_encode(m, 0, &b);
        if (!rc)
            rc = cp2p_pubkey_verify(pk, b.data, b.len, m->sig.p, m->sig.n);
        cp2p_buf_free(&b);
    }
    cp2p_pubkey_free(pk);
    return rc ? CP2P_ESIG : 0;
}

static void cached_free(void *v)
{
    cached_t *c = v;
    free(c->raw);
    free(c->topic);
    free(c);
}

static void mcache_put(ps_router_t *r, const uint8_t *id, size_t id_len, const ps_topic_t *t,
                       const uint8_t *raw, size_t n)
{
    if (ps_idmap_get(&r->mcache, id, id_len))
        return;
    cached_t *c = calloc(1, sizeof *c);
    if (!c || !(c->raw = malloc(n ? n : 1)) || !(c->topic = strdup(t->name))) {
        if (c)
            free(c->raw);
        free(c);
        return;
    }
    memcpy(c->raw, raw, n);
    c->n = n;
    if (!ps_idmap_put(&r->mcache, id, id_len, r->hb + r->gp->mcache_len, c))
        cached_free(c);
}

/* Send raw to the topic's floodsub peers and mesh (or, for our own, to all
 * of its peers when flood publishing), but not to src, the author, or a
 * peer that said IDONTWANT. */
static void forward(ps_router_t *r, ps_topic_t *t, const ps_peer_t *src, const cp2p_peer_id_t *author,
                    const uint8_t *id, size_t id_len, const uint8_t *raw, size_t n, int own,
                    uint64_t now)
{
    int flood = own && !r->gp->no_flood_publish;
    const cp2p_pubsub_score_params_t *sp = r->cfg.score;
    for (size_t i = 0; i < t->n_peers; i++) {
        ps_peer_t *p = t->peers[i];
        if (p == src || (author && cp2p_peer_id_equal(&p->id, author)))
            continue;
        int to = !is_mesh_proto(p) || flood || mesh_index(t, p) >= 0 ||
                 (!t->joined && in_list(t->fanout, t->n_fanout, p));
        if (!to)
            continue;
        if (own && sp && score_of(r, p, now) < sp->publish_threshold)
            continue;
        if (p->dontsend.buckets && ps_idmap_get(&p->dontsend, id, id_len))
            continue;
        if (ps_build_msg(out_of(p), raw, n) == 0)
            r->st.msgs_out++;
    }
}

/* A message from src_id is valid: cache, deliver, forward. src is NULL
 * when that peer left while a validator thought. */
static void accept_msg(ps_router_t *r, ps_topic_t *t, ps_peer_t *src, const cp2p_peer_id_t *src_id,
                       const ps_msg_t *m, const uint8_t *id, size_t id_len, uint64_t now)
{
    cp2p_peer_id_t author;
    int has_author = (m->has & PS_F_FROM) && cp2p_peer_id_from_bytes(m->from.p, m->from.n, &author) == 0;
    mcache_put(r, id, id_len, t, m->raw.p, m->raw.n);
    if (r->cfg.score && src)
        ps_score_deliver(&r->score, &src->score, t->score, id, id_len, now);
    if (t->joined) {
        cp2p_pubsub_message_t d = {
            .topic = t->name,
            .data = m->data.p,
            .len = m->data.n,
            .from = has_author ? &author : NULL,
            .seqno = seqno_value(&m->seqno),
            .id = id,
            .id_len = id_len,
            .received_from = src_id,
        };
        r->st.delivered++;
        r->io.deliver(r->io.arg, &d);
    }
    forward(r, t, src, has_author ? &author : NULL, id, id_len, m->raw.p, m->raw.n, 0, now);
}

static void reject_msg(ps_router_t *r, ps_topic_t *t, ps_peer_t *src, cp2p_pubsub_result_t why,
                       uint64_t now)
{
    if (why == CP2P_PUBSUB_IGNORE) {
        r->st.ignored++;
        return;
    }
    r->st.rejected++;
    if (r->cfg.score && src)
        ps_score_invalid(&r->score, &src->score, t->score, now);
}

/* IDONTWANT (v1.2) to the mesh peers that speak it, for a large message
 * seen for the first time: sent now, not piggybacked, as the spec asks. */
static void send_idontwant(ps_router_t *r, ps_topic_t *t, const ps_peer_t *src, const uint8_t *id,
                           size_t id_len, size_t size)
{
    if (size < r->gp->idontwant_threshold)
        return;
    ps_bytes_t one = {id, id_len};
    for (size_t i = 0; i < t->n_mesh; i++) {
        ps_peer_t *p = t->mesh[i].p;
        if (p != src && p->proto >= PS_MESHSUB12)
            ps_build_idontwant(out_of(p), &one, 1);
    }
}

static void handle_msg(ps_router_t *r, ps_peer_t *src, const ps_msg_t *m, uint64_t now)
{
    r->st.msgs_in++;
    ps_topic_t *t = topic_of(r, m->topic.p, m->topic.n);
    if (!t || !t->joined) {
        /* Not ours: neither delivered nor relayed (rust-libp2p does the same). */
        r->st.ignored++;
        return;
    }
    uint8_t id[MAX_ID];
    if (m->raw.n > r->cfg.max_message_size) {
        reject_msg(r, t, src, CP2P_PUBSUB_REJECT, now);
        return;
    }
    size_t id_len = message_id(r, m, id);
    ps_idmap_expire(&r->seen, now);
    if (ps_idmap_get(&r->seen, id, id_len)) {
        r->st.duplicates++;
        if (r->cfg.score)
            ps_score_duplicate(&r->score, &src->score, t->score, id, id_len, now);
        return;
    }
    /* The signature before the seen cache: a forged copy must not make us
     * take the real message for a duplicate (a way to censor it). */
    cp2p_peer_id_t author;
    if (check_signature(r, m, &author) != 0) {
        cp2p_log_debug("pubsub", "message on %s with a bad signature (policy %d)",
                 t->name, r->cfg.sign_policy);
        reject_msg(r, t, src, CP2P_PUBSUB_REJECT, now);
        return;
    }
    ps_idmap_put(&r->seen, id, id_len, now + r->cfg.seen_ttl_ms, NULL);
    send_idontwant(r, t, src, id, id_len, m->raw.n);
    if ((m->has & PS_F_FROM) && m->from.n == r->self.len &&
        !memcmp(m->from.p, r->self.bytes, r->self.len)) {
        r->st.ignored++; /* our own, coming back */
        return;
    }
    cp2p_pubsub_message_t d = {
        .topic = t->name,
        .data = m->data.p,
        .len = m->data.n,
        .from = (m->has & PS_F_FROM) ? &author : NULL,
        .seqno = seqno_value(&m->seqno),
        .id = id,
        .id_len = id_len,
        .received_from = &src->id,
    };
    uint64_t token = ++r->next_token;
    if (r->n_pending >= r->cfg.max_pending) {
        r->st.ignored++;
        return;
    }
    cp2p_pubsub_result_t v = r->io.validate(r->io.arg, &d, token);
    if (v == CP2P_PUBSUB_ACCEPT) {
        accept_msg(r, t, src, &src->id, m, id, id_len, now);
    } else if (v == CP2P_PUBSUB_PENDING) {
        pending_t *pd = calloc(1, sizeof *pd);
        if (!pd || !(pd->raw = malloc(m->raw.n ? m->raw.n : 1))) {
            free(pd);
            r->st.ignored++;
            return;
        }
        memcpy(pd->raw, m->raw.p, m->raw.n);
        pd->n = m->raw.n;
        pd->token = token;
        pd->deadline = now + PENDING_TIMEOUT_MS;
        pd->src = src->id;
        memcpy(pd->id, id, id_len);
        pd->id_len = id_len;
        pd->next = r->pending;
        r->pending = pd;
        r->n_pending++;
    } else {
        reject_msg(r, t, src, v, now);
    }
}

void ps_router_validated(ps_router_t *r, uint64_t token, cp2p_pubsub_result_t result, uint64_t now)
{
    for (pending_t **pp = &r->pending; *pp; pp = &(*pp)->next) {
        pending_t *pd = *pp;
        if (pd->token != token)
            continue;
        *pp = pd->next;
        r->n_pending--;
        ps_msg_t m;
        ps_peer_t *src = peer_of(r, &pd->src);
        ps_topic_t *t = NULL;
        if (ps_msg_decode(pd->raw, pd->n, &m) == 0)
            t = topic_of(r, m.topic.p, m.topic.n);
        if (t && t->joined) {
            if (result == CP2P_PUBSUB_ACCEPT)
                accept_msg(r, t, src, &pd->src, &m, pd->id, pd->id_len, now);
            else
                reject_msg(r, t, src, result, now);
        }
        free(pd->raw);
        free(pd);
        flush(r);
        return;
    }
}

/* --- control --- */

static void handle_sub(ps_router_t *r, ps_peer_t *p, const ps_sub_t *s, uint64_t now)
{
    ps_topic_t *t = s->subscribe ? topic_get(r, s->topic.p, s->topic.n)
                                 : topic_of(r, s->topic.p, s->topic.n);
    if (!t)
        return;
    if (s->subscribe) {
        if (subscribed(t, p) || p->n_subs >= r->cfg.max_peer_topics ||
            GROW(t->peers, t->n_peers, t->cap_peers) || GROW(p->subs, p->n_subs, p->cap_subs)) {
            topic_maybe_drop(r, t);
            return;
        }
        t->peers[t->n_peers++] = p;
        p->subs[p->n_subs++] = t;
        if (r->io.peer_topic)
            r->io.peer_topic(r->io.arg, &p->id, t->name, 1);
    } else {
        if (!list_remove(t->peers, &t->n_peers, p))
            return;
        for (size_t i = 0; i < p->n_subs; i++)
            if (p->subs[i] == t) {
                p->subs[i] = p->subs[--p->n_subs];
                break;
            }
        mesh_del(r, t, p, now);
        list_remove(t->fanout, &t->n_fanout, p);
        if (r->io.peer_topic)
            r->io.peer_topic(r->io.arg, &p->id, t->name, 0);
        topic_maybe_drop(r, t);
    }
}

static void handle_graft(ps_router_t *r, ps_peer_t *p, ps_bytes_t name, uint64_t now)
{
    r->st.graft_in++;
    ps_topic_t *t = topic_of(r, name.p, name.n);
    /* v1.1 spam protection: a GRAFT for a topic we are not in is ignored. */
    if (!t || !t->joined || !is_mesh_proto(p) || mesh_index(t, p) >= 0)
        return;
    if (backoff_until(t, p) > now) {
        /* Too early after a PRUNE: refuse and extend the backoff. */
        if (r->cfg.score)
            ps_score_penalty(&r->score, &p->score, 1);
        send_prune(r, t, p, 0, r->gp->prune_backoff_ms, now);
        return;
    }
    if (score_of(r, p, now) < 0) {
        send_prune(r, t, p, 0, r->gp->prune_backoff_ms, now);
        return;
    }
    if (t->n_mesh >= r->gp->d_hi && !p->outbound) {
        send_prune(r, t, p, 1, r->gp->prune_backoff_ms, now);
        return;
    }
    mesh_add(r, t, p, now);
}

static void handle_prune(ps_router_t *r, ps_peer_t *p, const ps_prune_t *pr, uint64_t now)
{
    r->st.prune_in++;
    ps_topic_t *t = topic_of(r, pr->topic.p, pr->topic.n);
    if (!t)
        return;
    mesh_del(r, t, p, now);
    uint64_t ms = pr->has_backoff && pr->backoff_s ? pr->backoff_s * 1000 : r->gp->prune_backoff_ms;
    if (ms > 3600ull * 1000)
        ms = 3600ull * 1000; /* a peer may not keep us away for longer than an hour */
    backoff_set(t, &p->id, now + ms);
    if (!r->io.px || !pr->n_px)
        return;
    double accept = r->cfg.score ? r->cfg.score->accept_px_threshold : 0;
    if (score_of(r, p, now) < accept)
        return;
    for (size_t i = 0; i < pr->n_px && i < r->gp->prune_peers; i++) {
        cp2p_peer_id_t id;
        if (cp2p_peer_id_from_bytes(pr->px[i].peer.p, pr->px[i].peer.n, &id) == 0 &&
            !cp2p_peer_id_equal(&id, &r->self) && !peer_of(r, &id))
            r->io.px(r->io.arg, &id, pr->px[i].record.p, pr->px[i].record.n);
    }
}

static void handle_ihave(ps_router_t *r, ps_peer_t *p, const ps_ids_t *ih, uint64_t now)
{
    r->st.ihave_in++;
    const cp2p_pubsub_score_params_t *sp = r->cfg.score;
    if (sp && score_of(r, p, now) < sp->gossip_threshold)
        return;
    if (++p->ihave_in > r->gp->max_ihave_messages || p->iasked >= r->gp->max_ihave_length)
        return;
    ps_topic_t *t = topic_of(r, ih->topic.p, ih->topic.n);
    if (!t || !t->joined)
        return;
    ps_idmap_expire(&r->seen, now);
    ps_bytes_t want[512];
    size_t n = 0;
    for (size_t i = 0; i < ih->n_ids && n < 512 && p->iasked < r->gp->max_ihave_length; i++) {
        const ps_bytes_t *id = &ih->ids[i];
        if (id->n == 0 || id->n > MAX_ID || ps_idmap_get(&r->seen, id->p, id->n))
            continue;
        want[n++] = *id;
        p->iasked++;
    }
    if (n) {
        ps_build_iwant(out_of(p), want, n);
        if (sp) {
            /* One id of those asked for stands for the promise (v1.1 spam protection). */
            size_t k = rnd((uint32_t)n);
            ps_score_promise(&r->score, &p->score, want[k].p, want[k].n,
                             now + r->gp->iwant_followup_ms);
        }
    }
}

static int tx_allowed(cached_t *c, const ps_peer_t *p, uint32_t max)
{
    const uint8_t *who = p->id.bytes + (p->id.len >= 8 ? p->id.len - 8 : 0);
    size_t free_slot = TX_SLOTS;
    for (size_t i = 0; i < TX_SLOTS; i++) {
        if (c->tx[i].count && !memcmp(c->tx[i].who, who, 8)) {
            if (c->tx[i].count >= max)
                return 0;
            c->tx[i].count++;
            return 1;
        }
        if (!c->tx[i].count && free_slot == TX_SLOTS)
            free_slot = i;
    }
    if (free_slot == TX_SLOTS)
        return 0; /* many peers asked for this one already */
    memcpy(c->tx[free_slot].who, who, 8);
    c->tx[free_slot].count = 1;
    return 1;
}

static void handle_iwant(ps_router_t *r, ps_peer_t *p, const ps_ids_t *iw, uint64_t now)
{
    r->st.iwant_in++;
    const cp2p_pubsub_score_params_t *sp = r->cfg.score;
    if (sp && score_of(r, p, now) < sp->gossip_threshold)
        return;
    for (size_t i = 0; i < iw->n_ids; i++) {
        ps_ident_t *e = ps_idmap_get(&r->mcache, iw->ids[i].p, iw->ids[i].n);
        if (!e)
            continue;
        cached_t *c = e->value;
        if (!tx_allowed(c, p, r->gp->gossip_retransmission))
            continue;
        if (ps_build_msg(out_of(p), c->raw, c->n) == 0)
            r->st.msgs_out++;
    }
}

static void handle_idontwant(ps_router_t *r, ps_peer_t *p, const ps_ids_t *idw)
{
    r->st.idontwant_in++;
    if (p->proto < PS_MESHSUB12)
        return;
    if (!p->dontsend.buckets && ps_idmap_init(&p->dontsend, r->gp->max_idontwant_messages * DONTSEND_TICKS, NULL))
        return;
    for (size_t i = 0; i < idw->n_ids && p->idontwant_in < r->gp->max_idontwant_messages; i++) {
        const ps_bytes_t *id = &idw->ids[i];
        p->idontwant_in++;
        if (id->n && id->n <= MAX_ID && !ps_idmap_get(&p->dontsend, id->p, id->n))
            ps_idmap_put(&p->dontsend, id->p, id->n, r->hb + DONTSEND_TICKS, NULL);
    }
}

int ps_router_rpc(ps_router_t *r, const cp2p_peer_id_t *id, const uint8_t *p, size_t n, uint64_t now)
{
    ps_peer_t *peer = peer_of(r, id);
    if (!peer)
        return CP2P_ENOTFOUND;
    ps_rpc_t rpc;
    int rc = ps_rpc_decode(p, n, &rpc);
    if (rc < 0) {
        r->st.invalid_rpcs++;
        if (r->cfg.score)
            ps_score_penalty(&r->score, &peer->score, 1);
        return rc;
    }
    const cp2p_pubsub_score_params_t *sp = r->cfg.score;
    if (sp && score_of(r, peer, now) < sp->graylist_threshold) {
        ps_rpc_clear(&rpc); /* graylisted: everything it says is ignored */
        r->st.graylisted_rpcs++;
        return 0;
    }
    for (size_t i = 0; i < rpc.n_subs; i++)
        handle_sub(r, peer, &rpc.subs[i], now);
    for (size_t i = 0; i < rpc.n_msgs; i++)
        handle_msg(r, peer, &rpc.msgs[i], now);
    if (is_mesh_proto(peer) && r->cfg.router == CP2P_PUBSUB_GOSSIPSUB) {
        for (size_t i = 0; i < rpc.n_idontwant; i++)
            handle_idontwant(r, peer, &rpc.idontwant[i]);
        for (size_t i = 0; i < rpc.n_ihave; i++)
            handle_ihave(r, peer, &rpc.ihave[i], now);
        for (size_t i = 0; i < rpc.n_iwant; i++)
            handle_iwant(r, peer, &rpc.iwant[i], now);
        for (size_t i = 0; i < rpc.n_graft; i++)
            handle_graft(r, peer, rpc.graft[i], now);
        for (size_t i = 0; i < rpc.n_prune; i++)
            handle_prune(r, peer, &rpc.prune[i], now);
    }
    ps_rpc_clear(&rpc);
    flush(r);
    return 0;
}

/* --- peers --- */

int ps_router_add_peer(ps_router_t *r, const cp2p_peer_id_t *id, ps_proto_t proto, int outbound,
                       uint64_t now)
{
    if (peer_of(r, id))
        return CP2P_EEXIST;
    if (r->n_peers >= r->cfg.max_peers)
        return CP2P_ELIMIT;
    ps_peer_t *p = calloc(1, sizeof *p);
    ps_peer_t **v = realloc(r->peers, (r->n_peers + 1) * sizeof *v);
    if (!p || !v) {
        free(p);
        if (v)
            r->peers = v;
        return CP2P_ENOMEM;
    }
    r->peers = v;
    p->id = *id;
    p->proto = proto;
    p->outbound = outbound;
    if (r->cfg.score)
        ps_score_connect(&r->score, &p->score, id, now);
    r->peers[r->n_peers++] = p;
    /* The hello: every topic we are in. */
    for (size_t i = 0; i < r->n_topics; i++)
        if (r->topics[i]->joined)
            ps_build_sub(out_of(p), r->topics[i]->name, r->topics[i]->len, 1);
    flush(r);
    return 0;
}

void ps_router_remove_peer(ps_router_t *r, const cp2p_peer_id_t *id, uint64_t now)
{
    ps_peer_t *p = peer_of(r, id);
    if (!p)
        return;
    for (size_t i = r->n_topics; i-- > 0;) {
        ps_topic_t *t = r->topics[i];
        mesh_del(r, t, p, now);
        list_remove(t->fanout, &t->n_fanout, p);
        if (list_remove(t->peers, &t->n_peers, p) && r->io.peer_topic)
            r->io.peer_topic(r->io.arg, &p->id, t->name, 0);
        topic_maybe_drop(r, t);
    }
    if (r->cfg.score)
        ps_score_disconnect(&r->score, &p->score, now);
    list_remove(r->peers, &r->n_peers, p);
    ps_build_free(&p->out);
    if (p->dontsend.buckets)
        ps_idmap_free(&p->dontsend);
    free(p->subs);
    free(p);
}

void ps_router_set_peer_ip(ps_router_t *r, const cp2p_peer_id_t *peer, uint64_t ip_hash)
{
    ps_peer_t *p = peer_of(r, peer);
    if (p && r->cfg.score)
        ps_score_set_ip(&r->score, &p->score, ip_hash);
}

int ps_router_has_peer(const ps_router_t *r, const cp2p_peer_id_t *peer)
{
    return peer_of(r, peer) != NULL;
}

/* --- our side: join, leave, publish --- */

int ps_router_join(ps_router_t *r, const char *topic, uint64_t now)
{
    size_t len = strlen(topic);
    if (len == 0 || len > CP2P_PUBSUB_MAX_TOPIC_LEN)
        return CP2P_EINVAL;
    ps_topic_t *t = topic_get(r, (const uint8_t *)topic, len);
    if (!t)
        return r->n_topics >= r->cfg.max_topics ? CP2P_ELIMIT : CP2P_ENOMEM;
    if (t->joined)
        return 0;
    t->joined = 1;
    for (size_t i = 0; i < r->n_peers; i++)
        ps_build_sub(out_of(r->peers[i]), t->name, t->len, 1);
    if (r->cfg.router == CP2P_PUBSUB_GOSSIPSUB) {
        /* The mesh: fanout peers first, then other peers of the topic. */
        for (size_t i = 0; i < t->n_fanout && t->n_mesh < r->gp->d; i++)
            if (backoff_until(t, t->fanout[i]) <= now && score_of(r, t->fanout[i], now) >= 0)
                mesh_add(r, t, t->fanout[i], now);
        t->n_fanout = 0;
        ps_peer_t *cand[256];
        size_t n = graft_candidates(r, t, 0, now, cand, 256);
        for (size_t i = 0; i < n && t->n_mesh < r->gp->d; i++)
            mesh_add(r, t, cand[i], now);
        for (size_t i = 0; i < t->n_mesh; i++)
            send_graft(t, t->mesh[i].p);
    }
    flush(r);
    return 0;
}

int ps_router_leave(ps_router_t *r, const char *topic, uint64_t now)
{
    ps_topic_t *t = topic_of(r, (const uint8_t *)topic, strlen(topic));
    if (!t || !t->joined)
        return CP2P_ENOTFOUND;
    t->joined = 0;
    for (size_t i = 0; i < r->n_peers; i++)
        ps_build_sub(out_of(r->peers[i]), t->name, t->len, 0);
    while (t->n_mesh) {
        ps_peer_t *p = t->mesh[0].p;
        send_prune(r, t, p, 1, r->gp->unsubscribe_backoff_ms, now);
        mesh_del(r, t, p, now);
    }
    flush(r);
    topic_maybe_drop(r, t);
    return 0;
}

int ps_router_joined(const ps_router_t *r, const char *topic)
{
    ps_topic_t *t = topic_of(r, (const uint8_t *)topic, strlen(topic));
    return t && t->joined;
}

int ps_router_publish(ps_router_t *r, const char *topic, const uint8_t *data, size_t len,
                      uint64_t now)
{
    size_t tlen = strlen(topic);
    if (tlen == 0 || tlen > CP2P_PUBSUB_MAX_TOPIC_LEN || (!data && len))
        return CP2P_EINVAL;
    if (len > r->cfg.max_message_size)
        return CP2P_EOVERFLOW;
    ps_topic_t *t = topic_get(r, (const uint8_t *)topic, tlen);
    if (!t)
        return r->n_topics >= r->cfg.max_topics ? CP2P_ELIMIT : CP2P_ENOMEM;
    uint8_t seq[8];
    cp2p_buf_t key = {0}, raw = {0}, sig = {0};
    ps_msg_t m = {.data = {data, len}, .topic = {(const uint8_t *)t->name, t->len},
                  .has = PS_F_DATA | PS_F_TOPIC};
    int rc = 0;
    if (r->cfg.sign_policy == CP2P_PUBSUB_STRICT_SIGN) {
        uint64_t s = ++r->seqno;
        for (int i = 0; i < 8; i++)
            seq[i] = (uint8_t)(s >> (56 - 8 * i));
        m.from = (ps_bytes_t){r->self.bytes, r->self.len};
        m.seqno = (ps_bytes_t){seq, 8};
        m.has |= PS_F_FROM | PS_F_SEQNO;
        cp2p_pubkey_t *embedded = NULL;
        if (cp2p_peer_id_extract_pubkey(&r->self, &embedded) != 0) {
            /* The peer id is a hash of the key: the key travels with the message. */
            if ((rc = cp2p_pubkey_marshal(cp2p_privkey_public(r->key), &key)) == 0) {
                m.key = (ps_bytes_t){key.data, key.len};
                m.has |= PS_F_KEY;
            }
        }
        cp2p_pubkey_free(embedded);
        if (!rc && !(rc = cp2p_buf_append(&raw, SIGN_PREFIX, sizeof SIGN_PREFIX - 1)) &&
            !(rc = ps_msg_encode(&m, 0, &raw)) &&
            !(rc = cp2p_privkey_sign(r->key, raw.data, raw.len, &sig))) {
            m.sig = (ps_bytes_t){sig.data, sig.len};
            m.has |= PS_F_SIG;
        }
        cp2p_buf_reset(&raw);
    }
    if (!rc)
        rc = ps_msg_encode(&m, 1, &raw);
    if (!rc && raw.len > (size_t)r->cfg.max_message_size + 4096)
        rc = CP2P_EOVERFLOW;
    if (!rc) {
        m.raw = (ps_bytes_t){raw.data, raw.len};
        uint8_t id[MAX_ID];
        size_t id_len = message_id(r, &m, id);
        ps_idmap_put(&r->seen, id, id_len, now + r->cfg.seen_ttl_ms, NULL);
        r->st.published++;
        t->last_pub = now;
        if (!t->joined && r->cfg.router == CP2P_PUBSUB_GOSSIPSUB && t->n_fanout == 0) {
            ps_peer_t *cand[256];
            size_t n = graft_candidates(r, t, 0, now, cand, 256);
            for (size_t i = 0; i < n && t->n_fanout < r->gp->d; i++)
                if (!GROW(t->fanout, t->n_fanout, t->cap_fanout))
                    t->fanout[t->n_fanout++] = cand[i];
        }
        mcache_put(r, id, id_len, t, raw.data, raw.len);
        if (t->joined && r->cfg.deliver_own) {
            cp2p_pubsub_message_t d = {.topic = t->name, .data = data, .len = len,
                                       .from = (m.has & PS_F_FROM) ? &r->self : NULL,
                                       .seqno = seqno_value(&m.seqno), .id = id,
                                       .id_len = id_len, .received_from = &r->self};
            r->st.delivered++;
            r->io.deliver(r->io.arg, &d);
        }
        forward(r, t, NULL, NULL, id, id_len, raw.data, raw.len, 1, now);
        flush(r);
        topic_maybe_drop(r, t);
    }
    cp2p_buf_free(&key);
    cp2p_buf_free(&raw);
    cp2p_buf_free(&sig);
    return rc;
}

/* --- heartbeat --- */

typedef struct scored {
    ps_peer_t *p;
    double s;
    uint64_t since;
} scored_t;

static int scored_desc(const void *a, const void *b)
{
    double x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void maintain_mesh(ps_router_t *r, ps_topic_t *t, uint64_t now)
{
    const cp2p_gossipsub_params_t *g = r->gp;
    /* Peers with a negative score leave every mesh. */
    for (size_t i = t->n_mesh; i-- > 0;) {
        ps_peer_t *p = t->mesh[i].p;
        if (score_of(r, p, now) < 0) {
            send_prune(r, t, p, 0, g->prune_backoff_ms, now);
            mesh_del(r, t, p, now);
        }
    }
    if (t->n_mesh < g->d_lo)
        graft_some(r, t, 0, g->d - t->n_mesh, now);
    if (t->n_mesh > g->d_hi) {
        /* Keep the d_score best, then others at random up to d, with at
         * least d_out outbound peers among those kept. */
        size_t n = t->n_mesh;
        scored_t *v = malloc(n * sizeof *v);
        if (v) {
            for (size_t i = 0; i < n; i++)
                v[i] = (scored_t){t->mesh[i].p, score_of(r, t->mesh[i].p, now), t->mesh[i].since};
            for (size_t i = n; i > 1; i--) { /* random order among equal scores */
                size_t j = rnd((uint32_t)i);
                scored_t tmp = v[i - 1];
                v[i - 1] = v[j];
                v[j] = tmp;
            }
            qsort(v, n, sizeof *v, scored_desc);
            for (size_t i = n; i > g->d_score + 1; i--) { /* shuffle past the d_score best */
                size_t j = g->d_score + rnd((uint32_t)(i - g->d_score));
                scored_t tmp = v[i - 1];
                v[i - 1] = v[j];
                v[j] = tmp;
            }
            size_t out = 0;
            for (size_t i = 0; i < g->d; i++)
                out += v[i].p->outbound;
            for (size_t i = g->d; i < n && out < g->d_out; i++) {
                if (!v[i].p->outbound)
                    continue;
                /* Swap it for the last kept inbound peer. */
                for (size_t k = g->d; k-- > 0;)
                    if (!v[k].p->outbound) {
                        scored_t tmp = v[k];
                        v[k] = v[i];
                        v[i] = tmp;
                        out++;
                        break;
                    }
            }
            for (size_t i = g->d; i < n; i++) {
                send_prune(r, t, v[i].p, 1, g->prune_backoff_ms, now);
                mesh_del(r, t, v[i].p, now);
            }
            free(v);
        }
    }
    if (t->n_mesh >= g->d_lo) {
        size_t out = 0;
        for (size_t i = 0; i < t->n_mesh; i++)
            out += t->mesh[i].p->outbound;
        if (out < g->d_out)
            graft_some(r, t, 1, g->d_out - out, now);
    }
    /* Opportunistic grafting (v1.1): a mesh whose median score is low takes
     * in peers that score above it. */
    const cp2p_pubsub_score_params_t *sp = r->cfg.score;
    if (sp && g->opportunistic_graft_ticks && r->hb % g->opportunistic_graft_ticks == 0 &&
        t->n_mesh > 1) {
        double *s = malloc(t->n_mesh * sizeof *s);
        if (s) {
            for (size_t i = 0; i < t->n_mesh; i++)
                s[i] = score_of(r, t->mesh[i].p, now);
            for (size_t i = 1; i < t->n_mesh; i++) /* insertion sort: meshes are small */
                for (size_t k = i; k > 0 && s[k - 1] > s[k]; k--) {
                    double tmp = s[k];
                    s[k] = s[k - 1];
                    s[k - 1] = tmp;
                }
            double median = s[t->n_mesh / 2];
            free(s);
            if (median < sp->opportunistic_graft_threshold) {
                ps_peer_t *cand[256];
                size_t n = graft_candidates(r, t, 0, now, cand, 256), added = 0;
                for (size_t i = 0; i < n && added < g->opportunistic_graft_peers; i++)
                    if (score_of(r, cand[i], now) > median) {
                        mesh_add(r, t, cand[i], now);
                        send_graft(t, cand[i]);
                        added++;
                    }
            }
        }
    }
}

static void maintain_fanout(ps_router_t *r, ps_topic_t *t, uint64_t now)
{
    if (!t->n_fanout)
        return;
    if (now - t->last_pub > r->gp->fanout_ttl_ms) {
        t->n_fanout = 0;
        return;
    }
    const cp2p_pubsub_score_params_t *sp = r->cfg.score;
    for (size_t i = t->n_fanout; i-- > 0;)
        if (sp && score_of(r, t->fanout[i], now) < sp->publish_threshold)
            t->fanout[i] = t->fanout[--t->n_fanout];
    ps_peer_t *cand[256];
    size_t n = graft_candidates(r, t, 0, now, cand, 256);
    for (size_t i = 0; i < n && t->n_fanout < r->gp->d; i++)
        if (!in_list(t->fanout, t->n_fanout, cand[i]) && !GROW(t->fanout, t->n_fanout, t->cap_fanout))
            t->fanout[t->n_fanout++] = cand[i];
}

/* IHAVE for the messages of the last mcache_gossip windows, to gossip
 * factor of the topic's other peers (at least d_lazy). */
static void emit_gossip(ps_router_t *r, ps_topic_t *t, uint64_t now)
{
    const cp2p_gossipsub_params_t *g = r->gp;
    size_t cap = g->max_ihave_length, n = 0;
    ps_bytes_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return;
    uint64_t min_expiry = r->hb + g->mcache_len - g->mcache_gossip;
    for (ps_ident_t *e = r->mcache.newest; e && e->expiry > min_expiry; e = e->older) {
        cached_t *c = e->value;
        if (strcmp(c->topic, t->name))
            continue;
        if (n < cap)
            ids[n++] = (ps_bytes_t){e->id, e->len};
        else { /* keep a random sample of cap ids */
            size_t j = rnd((uint32_t)(n + 1));
            if (j < cap)
                ids[j] = (ps_bytes_t){e->id, e->len};
        }
    }
    if (n) {
        const cp2p_pubsub_score_params_t *sp = r->cfg.score;
        ps_peer_t **peers = malloc(t->n_peers * sizeof *peers + 1);
        size_t np = 0;
        for (size_t i = 0; peers && i < t->n_peers; i++) {
            ps_peer_t *p = t->peers[i];
            if (!is_mesh_proto(p) || mesh_index(t, p) >= 0 ||
                in_list(t->fanout, t->n_fanout, p) ||
                (sp && score_of(r, p, now) < sp->gossip_threshold))
                continue;
            peers[np++] = p;
        }
        size_t target = (size_t)(g->gossip_factor * (double)np);
        if (target < g->d_lazy)
            target = g->d_lazy;
        if (peers) {
            shuffle(peers, np);
            for (size_t i = 0; i < np && i < target; i++)
                ps_build_ihave(out_of(peers[i]), t->name, t->len, ids, n);
        }
        free(peers);
    }
    free(ids);
}

void ps_router_heartbeat(ps_router_t *r, uint64_t now)
{
    r->hb++;
    ps_idmap_expire(&r->seen, now);
    if (r->cfg.score)
        ps_score_tick(&r->score, now);
    /* Validators that never answered: their messages are ignored. */
    for (pending_t **pp = &r->pending; *pp;) {
        pending_t *pd = *pp;
        if (pd->deadline > now) {
            pp = &pd->next;
            continue;
        }
        *pp = pd->next;
        r->n_pending--;
        r->st.ignored++;
        free(pd->raw);
        free(pd);
    }
    for (size_t i = r->n_topics; i-- > 0;) {
        ps_topic_t *t = r->topics[i];
        for (size_t k = t->n_backoff; k-- > 0;)
            if (t->backoff[k].until <= now)
                t->backoff[k] = t->backoff[--t->n_backoff];
        if (r->cfg.router == CP2P_PUBSUB_GOSSIPSUB) {
            if (t->joined)
                maintain_mesh(r, t, now);
            else
                maintain_fanout(r, t, now);
            if (t->joined || t->n_fanout)
                emit_gossip(r, t, now);
        }
        topic_maybe_drop(r, t);
    }
    ps_idmap_expire(&r->mcache, r->hb);
    for (size_t i = 0; i < r->n_peers; i++) {
        ps_peer_t *p = r->peers[i];
        p->ihave_in = p->iasked = p->idontwant_in = 0;
        if (p->dontsend.buckets)
            ps_idmap_expire(&p->dontsend, r->hb);
    }
    flush(r);
}

/* --- setup and queries --- */

static void defaults(cp2p_pubsub_config_t *c)
{
    cp2p_gossipsub_params_t *g = &c->gossipsub;
#define DEF(x, v) if (!(x)) (x) = (v)
    DEF(c->max_message_size, CP2P_PUBSUB_DEFAULT_MAX_MESSAGE);
    DEF(c->seen_ttl_ms, 120000);
    DEF(c->max_topics, CP2P_PUBSUB_DEFAULT_MAX_TOPICS);
    DEF(c->max_peer_topics, CP2P_PUBSUB_DEFAULT_MAX_PEER_TOPICS);
    DEF(c->max_peers, CP2P_PUBSUB_DEFAULT_MAX_PEERS);
    DEF(c->max_queued, CP2P_PUBSUB_DEFAULT_MAX_QUEUED);
    DEF(c->max_pending, CP2P_PUBSUB_DEFAULT_MAX_PENDING);
    DEF(g->d, 6);
    DEF(g->d_lo, 5);
    DEF(g->d_hi, 12);
    DEF(g->d_score, 4);
    DEF(g->d_out, 2);
    DEF(g->d_lazy, 6);
    DEF(g->gossip_factor, 0.25);
    DEF(g->heartbeat_ms, 1000);
    DEF(g->heartbeat_initial_delay_ms, 100);
    DEF(g->fanout_ttl_ms, 60000);
    DEF(g->mcache_len, 5);
    DEF(g->mcache_gossip, 3);
    DEF(g->prune_backoff_ms, 60000);
    DEF(g->unsubscribe_backoff_ms, 10000);
    DEF(g->prune_peers, 16);
    DEF(g->max_ihave_length, 5000);
    DEF(g->max_ihave_messages, 10);
    DEF(g->max_idontwant_messages, 1000);
    DEF(g->idontwant_threshold, 1024);
    DEF(g->gossip_retransmission, 3);
    DEF(g->iwant_followup_ms, 3000);
    DEF(g->opportunistic_graft_ticks, 60);
    DEF(g->opportunistic_graft_peers, 2);
#undef DEF
    if (g->mcache_gossip > g->mcache_len)
        g->mcache_gossip = g->mcache_len;
    if (g->d_score > g->d)
        g->d_score = g->d;
    if (g->d_out >= g->d_lo)
        g->d_out = g->d_lo ? g->d_lo - 1 : 0;
    if (g->max_ihave_length > PS_RPC_MAX_IDS)
        g->max_ihave_length = PS_RPC_MAX_IDS;
}

int ps_router_new(const cp2p_pubsub_config_t *cfg, const cp2p_privkey_t *key,
                  const ps_router_io_t *io, uint64_t now, ps_router_t **out)
{
    if (!key || !io || !io->send || !io->deliver || !io->validate || !out)
        return CP2P_EINVAL;
    ps_router_t *r = calloc(1, sizeof *r);
    if (!r)
        return CP2P_ENOMEM;
    if (cfg)
        r->cfg = *cfg;
    defaults(&r->cfg);
    r->gp = &r->cfg.gossipsub;
    r->key = key;
    r->io = *io;
    int rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(key), &r->self);
    if (!rc)
        rc = ps_idmap_init(&r->seen, CP2P_PUBSUB_DEFAULT_SEEN_MAX, NULL);
    if (!rc)
        rc = ps_idmap_init(&r->mcache, CP2P_PUBSUB_DEFAULT_MCACHE_MAX, cached_free);
    if (!rc && cfg && cfg->score)
        rc = ps_score_init(&r->score, cfg->score, &r->cfg.score);
    if (rc) {
        ps_router_free(r);
        return rc;
    }
    /* seqnos start at the time, as go-libp2p-pubsub's do, so a restarted
     * peer does not reuse the seqnos of its earlier life. */
    (void)now;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->seqno = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    *out = r;
    return 0;
}

void ps_router_free(ps_router_t *r)
{
    if (!r)
        return;
    while (r->n_peers)
        ps_router_remove_peer(r, &r->peers[r->n_peers - 1]->id, 0);
    for (size_t i = 0; i < r->n_topics; i++)
        topic_free(r->topics[i]);
    free(r->topics);
    free(r->peers);
    while (r->pending) {
        pending_t *pd = r->pending;
        r->pending = pd->next;
        free(pd->raw);
        free(pd);
    }
    if (r->seen.buckets)
        ps_idmap_free(&r->seen);
    if (r->mcache.buckets)
        ps_idmap_free(&r->mcache);
    ps_score_free(&r->score);
    cp2p_buf_free(&r->frame);
    free(r->joined_names);
    free(r);
}

const cp2p_pubsub_config_t *ps_router_config(const ps_router_t *r)
{
    return &r->cfg;
}

size_t ps_router_topics(const ps_router_t *r, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_topics; i++)
        if (r->topics[i]->joined) {
            if (n < cap)
                out[n] = r->topics[i]->name;
            n++;
        }
    return n;
}

size_t ps_router_topic_peers(const ps_router_t *r, const char *topic, cp2p_peer_id_t *out, size_t cap)
{
    size_t n = 0;
    if (!topic) {
        for (size_t i = 0; i < r->n_peers; i++)
            if (r->peers[i]->n_subs) {
                if (n < cap)
                    out[n] = r->peers[i]->id;
                n++;
            }
        return n;
    }
    ps_topic_t *t = topic_of(r, (const uint8_t *)topic, strlen(topic));
    for (size_t i = 0; t && i < t->n_peers; i++) {
        if (n < cap)
            out[n] = t->peers[i]->id;
        n++;
    }
    return n;
}

size_t ps_router_mesh_peers(const ps_router_t *r, const char *topic, cp2p_peer_id_t *out, size_t cap)
{
    ps_topic_t *t = topic_of(r, (const uint8_t *)topic, strlen(topic));
    size_t n = 0;
    for (size_t i = 0; t && i < t->n_mesh; i++) {
        if (n < cap)
            out[n] = t->mesh[i].p->id;
        n++;
    }
    return n;
}

int ps_router_score(const ps_router_t *r, const cp2p_peer_id_t *peer, uint64_t now, double *out)
{
    ps_peer_t *p = peer_of(r, peer);
    if (!p)
        return CP2P_ENOTFOUND;
    *out = score_of((ps_router_t *)r, p, now);
    return 0;
}

void ps_router_stats(const ps_router_t *r, cp2p_pubsub_stats_t *out, uint64_t now)
{
    *out = r->st;
    out->graylisted_peers = out->negative_peers = 0;
    for (size_t i = 0; r->cfg.score && i < r->n_peers; i++) {
        double v = score_of((ps_router_t *)r, r->peers[i], now);
        out->graylisted_peers += v < r->cfg.score->graylist_threshold;
        out->negative_peers += v < 0;
    }
}

