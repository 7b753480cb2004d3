/* The rendezvous point, /rendezvous/1.0.0 (libp2p specs rendezvous/README.md,
 * "The Protocol", "Registration Lifetime"): REGISTER, UNREGISTER and
 * DISCOVER with cookies, over any number of requests per stream.
 *
 * Registrations are kept in order of a sequence number that grows with
 * every REGISTER (a refresh too), in one list per namespace and one list of
 * all. A cookie is that number (8 bytes, big endian) followed by the
 * namespace, the layout rust-libp2p uses and parses: the next DISCOVER
 * answers what came after it, so paging survives new registrations (they
 * come after every cookie) and costs the point no memory per client. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp2p/envelope.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/metrics.h"
#include "cp2p/peerstore.h"
#include "cp2p/rendezvous.h"
#include "discovery/rdv_msg.h"

#define NS_BUCKETS 1024
#define PEER_BUCKETS 4096
#define SWEEP_MS 1000
#define IDLE_MS 30000       /* a stream with no request for this long is reset */
#define REG_OVERHEAD 128    /* what one registration costs beside its record */
/* An answer fits the smallest stream write queue a host may have
 * (CP2P_HOST_MIN_STREAM_BUFFER); what does not fit comes on the next page. */
#define RESPONSE_BUDGET (CP2P_HOST_MIN_STREAM_BUFFER - 8192)

typedef struct ns_ent ns_ent_t;
typedef struct peer_ent peer_ent_t;
typedef struct ip_ent ip_ent_t;

typedef struct reg {
    ns_ent_t *ns;
    peer_ent_t *peer;
    ip_ent_t *ip; /* where it registered from; NULL when that is not counted */
    uint64_t seq;
    uint64_t expires_ms; /* uv_now */
    uint8_t *record;
    size_t record_len;
    int legacy; /* the record is in rust-libp2p's legacy envelope */
    struct reg *ns_prev, *ns_next, *all_prev, *all_next, *peer_next;
} reg_t;

struct ns_ent {
    char name[RDV_MAX_NAMESPACE + 1];
    size_t len;
    reg_t *head, *tail;
    size_t count;
    ns_ent_t *hnext;
};

struct peer_ent {
    cp2p_peer_id_t id;
    reg_t *regs;
    size_t count;
    int legacy; /* its last REGISTER came in the legacy envelope */
    peer_ent_t *hnext;
};

/* Registrations from one IPv4 address or IPv6 /64: identities cost
 * nothing, addresses do. */
struct ip_ent {
    uint8_t key[8];
    size_t len;
    size_t count;
    ip_ent_t *hnext;
};

typedef struct session {
    cp2p_rendezvous_server_t *srv; /* NULL once the server let it go */
    cp2p_stream_t *s;
    cp2p_buf_t in;
    size_t charged;
    int refs; /* the session itself, and each write under way */
    int ended;
    int writing; /* an answer is going out: requests wait */
    uint64_t last_ms;
    struct session *prev, *next;
} session_t;

struct cp2p_rendezvous_server {
    cp2p_host_t *h;
    cp2p_rendezvous_server_config_t cfg;
    cp2p_rendezvous_server_stats_t st;
    uv_timer_t sweep;
    void (*done)(void *);
    void *done_arg;
    uint64_t next_seq;
    reg_t *all_head, *all_tail;
    ns_ent_t *ns_tab[NS_BUCKETS];
    peer_ent_t *peer_tab[PEER_BUCKETS];
    ip_ent_t *ip_tab[PEER_BUCKETS];
    session_t *sessions;
    size_t n_sessions;
};

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* --- the tables --- */

static ns_ent_t *ns_find(cp2p_rendezvous_server_t *srv, const char *name, size_t len, int create)
{
    ns_ent_t **b = &srv->ns_tab[fnv((const uint8_t *)name, len) % NS_BUCKETS];
    for (ns_ent_t *e = *b; e; e = e->hnext)
        if (e->len == len && !memcmp(e->name, name, len))
            return e;
    if (!create)
        return NULL;
    ns_ent_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    memcpy(e->name, name, len);
    e->len = len;
    e->hnext = *b;
    *b = e;
    srv->st.namespaces++;
    return e;
}

static void ns_drop_if_empty(cp2p_rendezvous_server_t *srv, ns_ent_t *e)
{
    if (e->count)
        return;
    ns_ent_t **pp = &srv->ns_tab[fnv((const uint8_t *)e->name, e->len) % NS_BUCKETS];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    free(e);
    srv->st.namespaces--;
}

static peer_ent_t *peer_find(cp2p_rendezvous_server_t *srv, const cp2p_peer_id_t *id, int create)
{
    peer_ent_t **b = &srv->peer_tab[fnv(id->bytes, id->len) % PEER_BUCKETS];
    for (peer_ent_t *e = *b; e; e = e->hnext)
        if (cp2p_peer_id_equal(&e->id, id))
            return e;
    if (!create)
        return NULL;
    peer_ent_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->id = *id;
    e->hnext = *b;
    *b = e;
    srv->st.peers++;
    return e;
}

static void peer_drop_if_empty(cp2p_rendezvous_server_t *srv, peer_ent_t *e)
{
    if (e->count)
        return;
    peer_ent_t **pp = &srv->peer_tab[fnv(e->id.bytes, e->id.len) % PEER_BUCKETS];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    free(e);
    srv->st.peers--;
}

/* The IP a stream came from, as a key (IPv6: its /64); 0 if it is not one
 * we count (loopback unless limit_loopback, no IP at all). */
static size_t ip_key(cp2p_rendezvous_server_t *srv, cp2p_stream_t *s, uint8_t key[8])
{
    cp2p_conn_t *c = cp2p_stream_conn(s);
    const cp2p_multiaddr_t *ma = c ? cp2p_conn_remote_addr(c) : NULL;
    cp2p_multiaddr_component_t comp;
    if (!ma || !ma->len)
        return 0;
    size_t n = 0;
    if (cp2p_multiaddr_get(ma, CP2P_MA_IP4, &comp) == 0 && comp.value_len == 4)
        n = 4;
    else if (cp2p_multiaddr_get(ma, CP2P_MA_IP6, &comp) == 0 && comp.value_len == 16)
        n = 8;
    if (!n)
        return 0;
    if (!srv->cfg.limit_loopback && cp2p_ip_scope(comp.value, comp.value_len) == CP2P_IP_LOOPBACK)
        return 0;
    memcpy(key, comp.value, n);
    return n;
}

static ip_ent_t *ip_find(cp2p_rendezvous_server_t *srv, const uint8_t *key, size_t len, int create)
{
    ip_ent_t **b = &srv->ip_tab[fnv(key, len) % PEER_BUCKETS];
    for (ip_ent_t *e = *b; e; e = e->hnext)
        if (e->len == len && !memcmp(e->key, key, len))
            return e;
    if (!create)
        return NULL;
    ip_ent_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    memcpy(e->key, key, len);
    e->len = len;
    e->hnext = *b;
    *b = e;
    return e;
}

static void ip_release(cp2p_rendezvous_server_t *srv, ip_ent_t *e)
{
    if (!e || --e->count)
        return;
    ip_ent_t **pp = &srv->ip_tab[fnv(e->key, e->len) % PEER_BUCKETS];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    free(e);
}

static reg_t *reg_of(peer_ent_t *p, const ns_ent_t *ns)
{
    for (reg_t *r = p ? p->regs : NULL; r; r = r->peer_next)
        if (r->ns == ns)
            return r;
    return NULL;
}

/* Out of the ordered lists (not the peer's). */
static void reg_unlink_order(cp2p_rendezvous_server_t *srv, reg_t *r)
{
    if (r->ns_prev)
        r->ns_prev->ns_next = r->ns_next;
    else
        r->ns->head = r->ns_next;
    if (r->ns_next)
        r->ns_next->ns_prev = r->ns_prev;
    else
        r->ns->tail = r->ns_prev;
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else
        srv->all_head = r->all_next;
    if (r->all_next)
        r->all_next->all_prev = r->all_prev;
    else
        srv->all_tail = r->all_prev;
    r->ns_prev = r->ns_next = r->all_prev = r->all_next = NULL;
}

/* At the ends of the ordered lists, with a new sequence number. */
static void reg_link_order(cp2p_rendezvous_server_t *srv, reg_t *r)
{
    r->seq = srv->next_seq++;
    r->ns_prev = r->ns->tail;
    if (r->ns->tail)
        r->ns->tail->ns_next = r;
    else
        r->ns->head = r;
    r->ns->tail = r;
    r->all_prev = srv->all_tail;
    if (srv->all_tail)
        srv->all_tail->all_next = r;
    else
        srv->all_head = r;
    srv->all_tail = r;
}

static void reg_remove(cp2p_rendezvous_server_t *srv, reg_t *r)
{
    reg_unlink_order(srv, r);
    reg_t **pp = &r->peer->regs;
    while (*pp != r)
        pp = &(*pp)->peer_next;
    *pp = r->peer_next;
    r->peer->count--;
    r->ns->count--;
    srv->st.registrations--;
    srv->st.bytes -= r->record_len + REG_OVERHEAD;
    peer_drop_if_empty(srv, r->peer);
    ns_drop_if_empty(srv, r->ns);
    ip_release(srv, r->ip);
    free(r->record);
    free(r);
}

/* --- requests --- */

static int do_register(cp2p_rendezvous_server_t *srv, cp2p_stream_t *s, const rdv_reg_t *in,
                       uint64_t *ttl_out, const char **why)
{
    const cp2p_peer_id_t *from = cp2p_stream_peer(s);
    size_t ns_len = strlen(in->ns);
    if (ns_len == 0 || ns_len > RDV_MAX_NAMESPACE) {
        *why = "namespace must be 1 to 255 bytes";
        return RDV_S_E_INVALID_NAMESPACE;
    }
    if (!in->record || in->record_len > CP2P_RENDEZVOUS_MAX_RECORD) {
        *why = "no signed peer record, or one over 8192 bytes";
        return RDV_S_E_INVALID_SIGNED_PEER_RECORD;
    }
    uint64_t ttl = in->has_ttl ? in->ttl : CP2P_RENDEZVOUS_DEFAULT_TTL_S;
    if (ttl < srv->cfg.min_ttl_s || ttl > srv->cfg.max_ttl_s) {
        *why = "ttl out of range";
        return RDV_S_E_INVALID_TTL;
    }
    uint64_t now = uv_now(cp2p_host_loop(srv->h));
    ns_ent_t *ns = ns_find(srv, in->ns, ns_len, 0);
    peer_ent_t *peer = peer_find(srv, from, 0);
    reg_t *r = reg_of(peer, ns);
    uint64_t cost = in->record_len + REG_OVERHEAD;
    uint64_t held = r ? r->record_len + REG_OVERHEAD : 0;
    const char *limit = NULL;
    uint8_t ipk[8];
    size_t ipn = r ? 0 : ip_key(srv, s, ipk);
    ip_ent_t *ip = ipn ? ip_find(srv, ipk, ipn, 0) : NULL;
    if (!r) {
        if (ip && ip->count >= srv->cfg.max_per_ip)
            limit = "registrations per IP address";
        else if (peer && peer->count >= srv->cfg.max_per_peer)
            limit = "registrations per peer";
        else if (ns && ns->count >= srv->cfg.max_per_namespace)
            limit = "registrations per namespace";
        else if (srv->st.registrations >= srv->cfg.max_total)
            limit = "registrations";
    }
    if (!limit && srv->st.bytes - held + cost > srv->cfg.max_bytes)
        limit = "bytes held";
    if (limit) {
        srv->st.refused_limit++;
        *why = "the point is full";
        cp2p_log_debug("rendezvous", "register refused: over the limit of %s", limit);
        return RDV_S_E_UNAVAILABLE;
    }
    /* A signature verification is the dearest step: a point that is full
     * refuses before it (the registering peer is the stream's, proven by
     * the connection's handshake). */
    cp2p_peer_record_t rec = {0};
    int legacy = 0;
    int rc = rdv_record_open(in->record, in->record_len, &rec, &legacy);
    cp2p_peer_id_t signer = rec.peer_id;
    cp2p_peer_record_clear(&rec);
    if (rc) {
        *why = "signed peer record does not verify";
        return RDV_S_E_INVALID_SIGNED_PEER_RECORD;
    }
    if (!cp2p_peer_id_equal(&signer, from)) {
        *why = "a peer may register only itself";
        return RDV_S_E_NOT_AUTHORIZED;
    }
    uint8_t *copy = malloc(in->record_len);
    if (!copy) {
        *why = "out of memory";
        return RDV_S_E_INTERNAL_ERROR;
    }
    memcpy(copy, in->record, in->record_len);
    if (r) {
        reg_unlink_order(srv, r);
        free(r->record);
        srv->st.bytes -= held;
    } else {
        if (!ns)
            ns = ns_find(srv, in->ns, ns_len, 1);
        if (!peer)
            peer = peer_find(srv, from, 1);
        if (ipn && !ip)
            ip = ip_find(srv, ipk, ipn, 1);
        r = (ns && peer && (ip || !ipn)) ? calloc(1, sizeof *r) : NULL;
        if (!r) {
            if (ip && !ip->count) {
                ip->count = 1;
                ip_release(srv, ip);
            }
            free(copy);
            if (ns)
                ns_drop_if_empty(srv, ns);
            if (peer)
                peer_drop_if_empty(srv, peer);
            *why = "out of memory";
            return RDV_S_E_INTERNAL_ERROR;
        }
        r->ns = ns;
        r->peer = peer;
        r->ip = ip;
        if (ip)
            ip->count++;
        r->peer_next = peer->regs;
        peer->regs = r;
        peer->count++;
        ns->count++;
        srv->st.registrations++;
    }
    r->record = copy;
    r->record_len = in->record_len;
    r->legacy = legacy;
    peer->legacy = legacy;
    r->expires_ms = now + ttl * 1000;
    srv->st.bytes += cost;
    reg_link_order(srv, r);
    *ttl_out = ttl;
    return RDV_S_OK;
}

static void do_unregister(cp2p_rendezvous_server_t *srv, const cp2p_peer_id_t *from, const char *ns)
{
    ns_ent_t *e = ns_find(srv, ns, strlen(ns), 0);
    reg_t *r = reg_of(peer_find(srv, from, 0), e);
    if (r) {
        reg_remove(srv, r);
        srv->st.unregistered++;
    }
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The answer to a DISCOVER, into out (a response message whose regs point
 * into the registrations: valid until the next change). */
/* rust-libp2p's client fails a whole DISCOVER answer on one record in the
 * standard envelope: a peer that registered in the legacy one, or whose
 * identify says rust-libp2p, is answered with the legacy records only. */
static int legacy_reader(cp2p_rendezvous_server_t *srv, const cp2p_peer_id_t *from)
{
    peer_ent_t *p = peer_find(srv, from, 0);
    if (p)
        return p->legacy;
    const char *agent = cp2p_peerstore_agent_version(cp2p_host_peerstore(srv->h), from);
    return agent && !strncmp(agent, "rust-libp2p", 11);
}

static int do_discover(cp2p_rendezvous_server_t *srv, const cp2p_peer_id_t *from,
                       const rdv_msg_t *q, rdv_msg_t *out, uint8_t *cookie, rdv_reg_t *regs)
{
    int legacy_only = legacy_reader(srv, from);
    const char *ns = q->ns && q->ns[0] ? q->ns : NULL;
    size_t ns_len = ns ? strlen(ns) : 0;
    uint64_t after = 0;
    if (q->has_cookie && q->cookie_len) {
        if (q->cookie_len < 8 || q->cookie_len - 8 != ns_len ||
            (ns_len && memcmp(q->cookie + 8, ns, ns_len)))
            return RDV_S_E_INVALID_COOKIE;
        after = get_be64(q->cookie);
        if (after >= srv->next_seq)
            return RDV_S_E_INVALID_COOKIE;
    }
    uint64_t limit = srv->cfg.max_discover;
    if (q->has_limit && q->limit && q->limit < limit)
        limit = q->limit;
    uint64_t now = uv_now(cp2p_host_loop(srv->h));
    ns_ent_t *e = ns ? ns_find(srv, ns, ns_len, 0) : NULL;
    reg_t *r = ns ? (e ? e->head : NULL) : srv->all_head;
    size_t n = 0, bytes = 0;
    uint64_t last = after;
    for (; r && n < limit; r = ns ? r->ns_next : r->all_next) {
        if (r->seq <= after || r->expires_ms <= now || (legacy_only && !r->legacy))
            continue;
        size_t cost = r->record_len + r->ns->len + 32;
        if (bytes + cost > RESPONSE_BUDGET)
            break; /* the rest on the next page */
        bytes += cost;
        regs[n].ns = r->ns->name;
        regs[n].record = r->record;
        regs[n].record_len = r->record_len;
        regs[n].has_ttl = 1;
        regs[n].ttl = (r->expires_ms - now + 999) / 1000;
        last = r->seq;
        n++;
    }
    put_be64(cookie, last);
    if (ns_len)
        memcpy(cookie + 8, ns, ns_len);
    out->regs = regs;
    out->n_regs = n;
    out->has_cookie = 1;
    out->cookie = cookie;
    out->cookie_len = 8 + ns_len;
    return RDV_S_OK;
}

/* --- streams --- */

static void session_release(session_t *ss)
{
    if (--ss->refs == 0) {
        cp2p_buf_free(&ss->in);
        free(ss);
    }
}

static void session_end(session_t *ss, int reset)
{
    if (ss->ended)
        return;
    ss->ended = 1;
    cp2p_rendezvous_server_t *srv = ss->srv;
    if (srv) {
        if (ss->prev)
            ss->prev->next = ss->next;
        else
            srv->sessions = ss->next;
        if (ss->next)
            ss->next->prev = ss->prev;
        srv->n_sessions--;
        ss->srv = NULL;
    }
    if (ss->charged)
        cp2p_stream_charge(ss->s, -(long)ss->charged);
    ss->charged = 0;
    cp2p_stream_read_stop(ss->s);
    if (reset)
        cp2p_stream_reset(ss->s);
    cp2p_stream_unref(ss->s);
    ss->s = NULL;
    session_release(ss);
}

static void session_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);
static void process(session_t *ss);

static void session_written(cp2p_stream_t *s, int status, void *arg)
{
    session_t *ss = arg;
    ss->writing = 0;
    if (!ss->ended) {
        if (status < 0)
            session_end(ss, 1);
        else
            process(ss);
    }
    session_release(ss);
}

static int reply(session_t *ss, const rdv_msg_t *m)
{
    cp2p_buf_t out = {0};
    int rc = rdv_msg_encode(m, &out);
    if (!rc) {
        /* The next request waits for this answer to go: a client that asks
         * and never reads holds one answer of ours, not thousands. */
        cp2p_stream_read_stop(ss->s);
        rc = cp2p_stream_write(ss->s, out.data, out.len, session_written, ss);
        if (!rc) {
            ss->refs++;
            ss->writing = 1;
        }
    }
    cp2p_buf_free(&out);
    return rc;
}

/* One request; < 0 ends the stream. */
static int handle(session_t *ss, const rdv_msg_t *q)
{
    cp2p_rendezvous_server_t *srv = ss->srv;
    const cp2p_peer_id_t *from = cp2p_stream_peer(ss->s);
    rdv_msg_t a = {0};
    switch (q->type) {
    case RDV_REGISTER: {
        const char *why = NULL;
        uint64_t ttl = 0;
        a.type = RDV_REGISTER_RESPONSE;
        a.status = do_register(srv, ss->s, &q->reg, &ttl, &why);
        if (a.status == RDV_S_OK) {
            srv->st.registered++;
            a.has_ttl = 1;
            a.ttl = ttl;
        } else {
            srv->st.refused++;
            a.status_text = (char *)why;
        }
        return reply(ss, &a);
    }
    case RDV_UNREGISTER:
        do_unregister(srv, from, q->ns);
        return 0;
    case RDV_DISCOVER: {
        rdv_reg_t *regs = calloc(srv->cfg.max_discover, sizeof *regs);
        uint8_t cookie[8 + RDV_MAX_NAMESPACE];
        if (!regs)
            return CP2P_ENOMEM;
        a.type = RDV_DISCOVER_RESPONSE;
        a.status = do_discover(srv, from, q, &a, cookie, regs);
        if (a.status != RDV_S_OK)
            a.status_text = "the cookie is not one of ours for this namespace";
        srv->st.discovers++;
        int rc = reply(ss, &a);
        free(regs);
        return rc;
    }
    default:
        return CP2P_EPROTO; /* responses are not requests */
    }
}

static void bad(session_t *ss, const char *what, int rc)
{
    ss->srv->st.bad_messages++;
    cp2p_log_info("rendezvous", "resetting stream: %s: %s", what, cp2p_strerror(rc));
    session_end(ss, 1);
}

/* Serve the requests buffered, one answer out at a time. */
static void process(session_t *ss)
{
    while (!ss->ended && !ss->writing && ss->in.len) {
        size_t hdr, len;
        int rc = rdv_frame(ss->in.data, ss->in.len, RDV_MAX_REQUEST, &hdr, &len);
        if (rc == CP2P_ETRUNC)
            break;
        rdv_msg_t q;
        if (!rc)
            rc = rdv_msg_decode(ss->in.data + hdr, len, &q);
        if (rc) {
            bad(ss, "bad request", rc);
            return;
        }
        cp2p_buf_consume(&ss->in, hdr + len);
        cp2p_stream_charge(ss->s, -(long)(hdr + len));
        ss->charged -= hdr + len;
        rc = handle(ss, &q);
        rdv_msg_free(&q);
        if (rc < 0) {
            bad(ss, "cannot answer", rc);
            return;
        }
    }
    if (!ss->ended && !ss->writing && cp2p_stream_read_start(ss->s, session_read, ss) < 0)
        session_end(ss, 1);
}

static void session_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    session_t *ss = arg;
    if (status < 0) {
        if (status == CP2P_ECLOSED)
            cp2p_stream_close_write(s);
        session_end(ss, status != CP2P_ECLOSED);
        return;
    }
    ss->last_ms = uv_now(cp2p_host_loop(ss->srv->h));
    if (n > RDV_MAX_REQUEST + 16 - ss->in.len) {
        bad(ss, "request too large", CP2P_EOVERFLOW);
        return;
    }
    if (cp2p_buf_append(&ss->in, p, n) < 0) {
        session_end(ss, 1);
        return;
    }
    ss->charged += n;
    if (cp2p_stream_charge(s, (long)n) < 0) {
        bad(ss, "over the protocol's memory", CP2P_ELIMIT);
        return;
    }
    process(ss);
}

static void on_stream(cp2p_stream_t *s, void *arg)
{
    cp2p_rendezvous_server_t *srv = arg;
    session_t *ss = srv->n_sessions < srv->cfg.max_streams ? calloc(1, sizeof *ss) : NULL;
    if (!ss) {
        srv->st.streams_refused++;
        cp2p_log_info("rendezvous", "refusing a stream: %zu being served", srv->n_sessions);
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    ss->srv = srv;
    ss->s = s;
    ss->refs = 1;
    ss->last_ms = uv_now(cp2p_host_loop(srv->h));
    ss->next = srv->sessions;
    if (ss->next)
        ss->next->prev = ss;
    srv->sessions = ss;
    srv->n_sessions++;
    if (cp2p_stream_read_start(s, session_read, ss) < 0)
        session_end(ss, 1);
}

static void on_sweep(uv_timer_t *t)
{
    cp2p_rendezvous_server_t *srv = t->data;
    uint64_t now = uv_now(cp2p_host_loop(srv->h));
    for (reg_t *r = srv->all_head, *next; r; r = next) {
        next = r->all_next;
        if (r->expires_ms <= now) {
            reg_remove(srv, r);
            srv->st.expired++;
        }
    }
    for (session_t *ss = srv->sessions, *next; ss; ss = next) {
        next = ss->next;
        if (now - ss->last_ms >= IDLE_MS)
            session_end(ss, 1);
    }
}

int cp2p_rendezvous_server_new(cp2p_host_t *h, const cp2p_rendezvous_server_config_t *cfg,
                               cp2p_rendezvous_server_t **out)
{
    cp2p_rendezvous_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return CP2P_ENOMEM;
    srv->h = h;
    if (cfg)
        srv->cfg = *cfg;
    cp2p_rendezvous_server_config_t *c = &srv->cfg;
    if (!c->min_ttl_s)
        c->min_ttl_s = CP2P_RENDEZVOUS_DEFAULT_MIN_TTL_S;
    if (!c->max_ttl_s || c->max_ttl_s > CP2P_RENDEZVOUS_MAX_TTL_S)
        c->max_ttl_s = CP2P_RENDEZVOUS_MAX_TTL_S;
    if (!c->max_per_peer)
        c->max_per_peer = CP2P_RENDEZVOUS_DEFAULT_MAX_PER_PEER;
    if (!c->max_per_namespace)
        c->max_per_namespace = CP2P_RENDEZVOUS_DEFAULT_MAX_PER_NAMESPACE;
    if (!c->max_total)
        c->max_total = CP2P_RENDEZVOUS_DEFAULT_MAX_TOTAL;
    if (!c->max_bytes)
        c->max_bytes = CP2P_RENDEZVOUS_DEFAULT_MAX_BYTES;
    if (!c->max_discover || c->max_discover > RDV_MAX_REGISTRATIONS)
        c->max_discover = CP2P_RENDEZVOUS_DEFAULT_MAX_DISCOVER;
    if (!c->max_streams)
        c->max_streams = CP2P_RENDEZVOUS_DEFAULT_MAX_STREAMS;
    if (!c->max_per_ip)
        c->max_per_ip = CP2P_RENDEZVOUS_DEFAULT_MAX_PER_IP;
    if (c->min_ttl_s > c->max_ttl_s) {
        free(srv);
        return CP2P_EINVAL;
    }
    /* Sequence numbers start at the wall clock in microseconds: cookies of a
     * point that restarted are behind every new registration. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srv->next_seq = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000 + 1;
    int rc = cp2p_host_set_handler(h, CP2P_RENDEZVOUS_PROTOCOL_ID, on_stream, srv);
    if (rc) {
        free(srv);
        return rc;
    }
    uv_timer_init(cp2p_host_loop(h), &srv->sweep);
    srv->sweep.data = srv;
    uv_timer_start(&srv->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    *out = srv;
    return 0;
}

static void server_freed(uv_handle_t *hd)
{
    cp2p_rendezvous_server_t *srv = hd->data;
    void (*done)(void *) = srv->done;
    void *arg = srv->done_arg;
    free(srv);
    if (done)
        done(arg);
}

void cp2p_rendezvous_server_close(cp2p_rendezvous_server_t *srv, void (*done)(void *arg), void *arg)
{
    if (!srv)
        return;
    cp2p_host_remove_handler(srv->h, CP2P_RENDEZVOUS_PROTOCOL_ID);
    while (srv->sessions)
        session_end(srv->sessions, 1);
    while (srv->all_head)
        reg_remove(srv, srv->all_head);
    srv->done = done;
    srv->done_arg = arg;
    uv_timer_stop(&srv->sweep);
    uv_close((uv_handle_t *)&srv->sweep, server_freed);
}

void cp2p_rendezvous_server_stats(const cp2p_rendezvous_server_t *srv,
                                  cp2p_rendezvous_server_stats_t *out)
{
    *out = srv->st;
}

static size_t collect_metrics(const void *srv, cp2p_metric_t *out, size_t cap)
{
    cp2p_rendezvous_server_stats_t s;
    cp2p_rendezvous_server_stats(srv, &s);
    const cp2p_metric_t all[] = {
        {"cp2p_rendezvous_registrations", "gauge", "Registrations held by the rendezvous point.", s.registrations},
        {"cp2p_rendezvous_namespaces", "gauge", "Namespaces with a registration.", s.namespaces},
        {"cp2p_rendezvous_peers", "gauge", "Peers with a registration.", s.peers},
        {"cp2p_rendezvous_bytes", "gauge", "Bytes of records and namespaces held.", s.bytes},
        {"cp2p_rendezvous_registered_total", "counter", "REGISTERs accepted, refreshes included.", s.registered},
        {"cp2p_rendezvous_refused_total", "counter", "REGISTERs answered with an error.", s.refused},
        {"cp2p_rendezvous_refused_limit_total", "counter", "REGISTERs refused for a limit (E_UNAVAILABLE).", s.refused_limit},
        {"cp2p_rendezvous_unregistered_total", "counter", "UNREGISTERs that removed a registration.", s.unregistered},
        {"cp2p_rendezvous_expired_total", "counter", "Registrations dropped when their TTL ran out.", s.expired},
        {"cp2p_rendezvous_discovers_total", "counter", "DISCOVERs answered.", s.discovers},
        {"cp2p_rendezvous_bad_messages_total", "counter", "Streams reset for a malformed or oversized request.", s.bad_messages},
        {"cp2p_rendezvous_streams_refused_total", "counter", "Streams refused: too many being served.", s.streams_refused},
    };
    size_t n = sizeof all / sizeof *all < cap ? sizeof all / sizeof *all : cap;
    memcpy(out, all, n * sizeof *out);
    return n;
}

cp2p_metrics_source_t cp2p_rendezvous_server_metrics_source(const cp2p_rendezvous_server_t *s)
{
    return (cp2p_metrics_source_t){s ? collect_metrics : NULL, s};
}
