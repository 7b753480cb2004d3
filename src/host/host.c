/* The host: identity, configuration, peerstore, the protocol router (protocol
 * id -> handler) and the event bus, on top of the swarm. */
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>
#include <string.h>

#include "cp2p/error.h"
#include "host/host_priv.h"
#include "host/post.h"
#include "cp2p/host.h"
#include "cp2p/log.h"
#include "host/connmgr.h"
#include "swarm/swarm.h"

#define MAX_DIAL_ADDRS 16

typedef struct handler {
    char *protocol;
    cp2p_stream_handler_fn fn;
    void *arg;
} handler_t;

typedef struct subscriber {
    cp2p_event_fn fn;
    void *arg;
} subscriber_t;

struct cp2p_host {
    uv_loop_t *loop;
    cp2p_privkey_t *identity;
    cp2p_peer_id_t id;
    char *agent;
    cp2p_peerstore_t *ps;
    cp2p_swarm_t *sw;
    cp2p_connmgr_t *cm;
    uint32_t low_water, high_water, grace_ms;
    handler_t *handlers;
    size_t nhandlers;
    subscriber_t *subs;
    size_t nsubs;
    cp2p_multiaddr_t *announce;
    size_t nannounce;
    cp2p_multiaddr_t external[CP2P_HOST_MAX_EXTERNAL_ADDRS]; /* AutoNAT confirmed them */
    size_t nexternal;
    int closing;
    host_post_t *post; /* cp2p_host_post's queue */
    struct req *reqs;  /* connects and new streams under way (cp2p_host_cancel) */
    int keep_private_addrs;
    cp2p_reachability_t reach;
    int reach_forced;
    uint64_t addrs_dropped;
    cp2p_host_ext_transport_t ext;
    int has_ext;
    void (*done)(void *arg);
    void *done_arg;
};

static const cp2p_mux_vtable_t *const known_muxers[] = {&cp2p_yamux_vtable, &cp2p_mplex_vtable};
static const cp2p_sec_vtable_t *const known_securities[] = {&cp2p_noise_vtable, &cp2p_tls_vtable,
                                                            &cp2p_plaintext_vtable};

static handler_t *find_handler(cp2p_host_t *h, const char *id, size_t len)
{
    for (size_t i = 0; i < h->nhandlers; i++)
        if (strlen(h->handlers[i].protocol) == len && memcmp(h->handlers[i].protocol, id, len) == 0)
            return &h->handlers[i];
    return NULL;
}

int cp2p_host_later(cp2p_host_t *h, void (*fn)(void *arg), void *arg)
{
    if (!h || !fn)
        return CP2P_EINVAL;
    return cp2p_swarm_later(h->sw, fn, arg);
}

static void deliver(cp2p_host_t *h, const cp2p_event_t *ev)
{
    /* A copy, so that subscribers may subscribe or leave from the callback. */
    size_t n = h->nsubs;
    subscriber_t *subs = n ? malloc(n * sizeof *subs) : NULL;
    if (!subs)
        return;
    memcpy(subs, h->subs, n * sizeof *subs);
    for (size_t i = 0; i < n; i++)
        subs[i].fn(ev, subs[i].arg);
    free(subs);
}

/* An event caused by a public call, told on a later turn (libuv's rule):
 * what it points to is copied or referenced until then. */
typedef struct owed_event {
    cp2p_host_t *h;
    cp2p_event_t ev;
    cp2p_peer_id_t peer;
    cp2p_multiaddr_t addr;
} owed_event_t;

static void deliver_owed(void *arg)
{
    owed_event_t *o = arg;
    deliver(o->h, &o->ev);
    if (o->ev.conn)
        cp2p_conn_unref(o->ev.conn);
    if (o->ev.addr)
        cp2p_multiaddr_free(&o->addr);
    free(o);
}

cp2p_swarm_t *cp2p_host_swarm(cp2p_host_t *h)
{
    return h->sw;
}

void cp2p_host_emit(cp2p_host_t *h, const cp2p_event_t *ev)
{
    if (!cp2p_swarm_in_call(h->sw)) {
        deliver(h, ev);
        return;
    }
    owed_event_t *o = calloc(1, sizeof *o);
    if (!o || (ev->addr && cp2p_multiaddr_dup(ev->addr, &o->addr))) {
        free(o);
        deliver(h, ev); /* out of memory: better now than never */
        return;
    }
    o->h = h;
    o->ev = *ev;
    if (ev->peer) {
        o->peer = *ev->peer;
        o->ev.peer = &o->peer;
    }
    if (ev->addr)
        o->ev.addr = &o->addr;
    if (ev->conn)
        cp2p_conn_ref(ev->conn);
    if (cp2p_swarm_later(h->sw, deliver_owed, o)) {
        o->ev.conn = NULL;
        deliver(h, &o->ev);
        if (ev->conn)
            cp2p_conn_unref(ev->conn);
        if (ev->addr)
            cp2p_multiaddr_free(&o->addr);
        free(o);
    }
}

/* ---- swarm hooks ---- */

static int hook_match(void *ctx, const char *id, size_t len)
{
    return find_handler(ctx, id, len) != NULL;
}

static void hook_inbound_stream(void *ctx, cp2p_stream_t *s)
{
    cp2p_host_t *h = ctx;
    const char *p = cp2p_stream_protocol(s);
    handler_t *hd = find_handler(h, p, strlen(p));
    if (!hd) { /* removed while the stream negotiated */
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    hd->fn(s, hd->arg);
}

static size_t trim(cp2p_host_t *h, uint64_t spare_after_ms);

static void hook_connected(void *ctx, cp2p_conn_t *c)
{
    cp2p_host_t *h = ctx;
    uint64_t now = uv_now(h->loop);
    const cp2p_peer_id_t *peer = cp2p_conn_peer(c);
    /* The remote address of an inbound connection is an ephemeral port: not
     * worth dialling back. */
    if (!cp2p_conn_is_inbound(c))
        cp2p_peerstore_add_addrs_from(h->ps, peer, cp2p_conn_remote_addr(c), 1,
                                      CP2P_TTL_CONNECTED, now, CP2P_ADDR_CONFIRMED);
    else
        cp2p_peerstore_touch(h->ps, peer);
    cp2p_peerstore_set_pubkey(h->ps, peer, cp2p_conn_remote_key(c));
    if (cp2p_connmgr_connected(h->cm, peer, now))
        cp2p_log_warn("host", "connection manager full: a peer is not tracked");
    cp2p_event_t ev = {.type = CP2P_EVENT_CONNECTED, .peer = peer, .conn = c};
    cp2p_host_emit(h, &ev);
    /* After the event, so that subscribers never see a connection closed
     * before they heard of it. */
    if (!h->closing && cp2p_swarm_conn_count(h->sw) > h->high_water)
        trim(h, now >= h->grace_ms ? now - h->grace_ms : 0);
}

static void hook_disconnected(void *ctx, cp2p_conn_t *c)
{
    cp2p_host_t *h = ctx;
    const cp2p_peer_id_t *peer = cp2p_conn_peer(c);
    cp2p_connmgr_disconnected(h->cm, peer);
    if (!cp2p_swarm_conn_to(h->sw, peer))
        cp2p_peerstore_update_addrs_ttl(h->ps, peer, CP2P_TTL_CONNECTED,
                                        CP2P_TTL_RECENTLY_CONNECTED, uv_now(h->loop));
    cp2p_event_t ev = {.type = CP2P_EVENT_DISCONNECTED, .peer = peer, .conn = c};
    cp2p_host_emit(h, &ev);
}

/* ---- life cycle ---- */

static void req_end(struct req *r);

static void host_free(cp2p_host_t *h)
{
    while (h->reqs) /* none should be left once the swarm closed: defensive */
        req_end(h->reqs);
    for (size_t i = 0; i < h->nhandlers; i++)
        free(h->handlers[i].protocol);
    free(h->handlers);
    free(h->subs);
    free(h->agent);
    cp2p_multiaddr_array_free(h->announce, h->nannounce);
    for (size_t i = 0; i < h->nexternal; i++)
        cp2p_multiaddr_free(&h->external[i]);
    cp2p_connmgr_free(h->cm);
    if (h->ps)
        cp2p_peerstore_free(h->ps);
    if (h->identity)
        cp2p_privkey_free(h->identity);
    free(h);
}

static void free_host(void *h)
{
    host_free(h);
}

static int pick_muxers(const cp2p_host_config_t *cfg, cp2p_swarm_config_t *sc)
{
    static const char *const defaults[] = {"/yamux/1.0.0", "/mplex/6.7.0"};
    const char *const *names = cfg && cfg->n_muxers ? cfg->muxers : defaults;
    size_t n = cfg && cfg->n_muxers ? cfg->n_muxers : 2;
    if (!names || n > CP2P_SWARM_MAX_MUXERS)
        return CP2P_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const cp2p_mux_vtable_t *m = NULL;
        for (size_t j = 0; j < sizeof known_muxers / sizeof known_muxers[0]; j++)
            if (names[i] && strcmp(names[i], known_muxers[j]->protocol_id) == 0)
                m = known_muxers[j];
        if (!m)
            return CP2P_EUNSUPPORTED;
        sc->muxers[sc->n_muxers++] = m;
    }
    return 0;
}

static int pick_securities(const cp2p_host_config_t *cfg, cp2p_swarm_config_t *sc)
{
    static const char *const defaults[] = {"/noise"};
    const char *const *names = cfg && cfg->n_security ? cfg->security : defaults;
    size_t n = cfg && cfg->n_security ? cfg->n_security : 1;
    if (!names || n > CP2P_SWARM_MAX_SECURITIES)
        return CP2P_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const cp2p_sec_vtable_t *v = NULL;
        for (size_t j = 0; j < sizeof known_securities / sizeof known_securities[0]; j++)
            if (names[i] && strcmp(names[i], known_securities[j]->protocol_id) == 0)
                v = known_securities[j];
        if (!v)
            return CP2P_EUNSUPPORTED;
        sc->securities[sc->n_securities++] = v;
    }
    return 0;
}

/* An eighth of the machine's memory, at least 64 MiB (as go-libp2p's
 * resource manager scales its system memory limit). */
static uint32_t default_memory_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    uint64_t mb = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 8 >> 20 : 0;
    return mb < 64 ? 64 : mb > UINT32_MAX ? UINT32_MAX : (uint32_t)mb;
}

/* Seven eighths of the soft descriptor limit, at least 64. */
static uint64_t default_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    uint64_t n = (uint64_t)rl.rlim_cur - (uint64_t)rl.rlim_cur / 8;
    return n < 64 ? 64 : n;
}

/* The given limits, their zero fields filled from def. */
static void limits_or(const cp2p_rc_limits_t *given, const cp2p_rc_limits_t *def,
                      cp2p_rc_limits_t *out)
{
    for (size_t i = 0; i < CP2P_RC_NLIMITS; i++) {
        uint64_t g = cp2p_rc_limit_get(given, i);
        cp2p_rc_limit_set(out, i, g ? g : cp2p_rc_limit_get(def, i));
    }
}

static uint64_t at_least(uint64_t v, uint64_t min)
{
    return v < min ? min : v;
}

/* The resource manager's limits: the config's, else the defaults host.h
 * lists, which scale with the system memory limit. */
static void pick_limits(const cp2p_host_config_t *cfg, uint64_t memory, uint32_t conns,
                        uint32_t pending, cp2p_rcmgr_config_t *out)
{
    static const cp2p_rc_limits_t none;
    uint64_t g = at_least(memory >> 30, 1);
    cp2p_rc_limits_t d = {
        .memory = memory,
        .conns = conns,
        .streams_in = CP2P_HOST_DEFAULT_SYSTEM_STREAMS_IN * g,
        .streams_out = CP2P_HOST_DEFAULT_SYSTEM_STREAMS_OUT * g,
        .fds = default_fds(),
    };
    limits_or(cfg ? &cfg->system_limits : &none, &d, &out->system);
    d = (cp2p_rc_limits_t){
        .memory = at_least(memory / 16, 16u << 20),
        .conns_in = pending,
        .streams_in = CP2P_HOST_DEFAULT_TRANSIENT_STREAMS_IN,
    };
    limits_or(cfg ? &cfg->transient_limits : &none, &d, &out->transient);
    d = (cp2p_rc_limits_t){
        .memory = at_least(memory / 16, 64u << 20),
        .conns = CP2P_HOST_DEFAULT_PEER_CONNS,
        .streams_in = CP2P_HOST_DEFAULT_PEER_STREAMS_IN,
        .streams_out = CP2P_HOST_DEFAULT_PEER_STREAMS_OUT,
    };
    limits_or(cfg ? &cfg->peer_limits : &none, &d, &out->peer);
    d = (cp2p_rc_limits_t){
        .memory = at_least(memory / 4, 64u << 20),
        .streams_in = CP2P_HOST_DEFAULT_PROTOCOL_STREAMS_IN * g,
        .streams_out = CP2P_HOST_DEFAULT_PROTOCOL_STREAMS_OUT * g,
    };
    limits_or(cfg ? &cfg->protocol_limits : &none, &d, &out->protocol);
}

static uint32_t or_default(const cp2p_host_config_t *cfg, size_t off, uint32_t def)
{
    uint32_t v = 0;
    if (cfg)
        memcpy(&v, (const char *)cfg + off, sizeof v);
    return v ? v : def;
}

int cp2p_host_new(uv_loop_t *loop, const cp2p_host_config_t *cfg, cp2p_host_t **out)
{
    cp2p_privkey_t *identity = cfg ? cfg->identity : NULL;
    if (!loop || !out) {
        if (identity)
            cp2p_privkey_free(identity);
        return CP2P_EINVAL;
    }
    cp2p_host_t *h = calloc(1, sizeof *h);
    if (!h) {
        if (identity)
            cp2p_privkey_free(identity);
        return CP2P_ENOMEM;
    }
    h->loop = loop;
    h->identity = identity;
    int rc = 0;
    if (!h->identity)
        rc = cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &h->identity);
    if (!rc)
        rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(h->identity), &h->id);
    const char *agent = cfg && cfg->agent_version ? cfg->agent_version : CP2P_HOST_DEFAULT_AGENT_VERSION;
    if (!rc && !(h->agent = strdup(agent)))
        rc = CP2P_ENOMEM;
    if (!rc)
        rc = cp2p_peerstore_new(0, &h->ps);
    if (!rc)
        rc = cp2p_connmgr_new(&h->cm);
    h->low_water = or_default(cfg, offsetof(cp2p_host_config_t, conn_low_water),
                              CP2P_HOST_DEFAULT_CONN_LOW_WATER);
    h->high_water = or_default(cfg, offsetof(cp2p_host_config_t, conn_high_water),
                               CP2P_HOST_DEFAULT_CONN_HIGH_WATER);
    h->grace_ms = cfg && cfg->conn_grace_ms == CP2P_HOST_NO_GRACE
                      ? 0
                      : or_default(cfg, offsetof(cp2p_host_config_t, conn_grace_ms),
                                   CP2P_HOST_DEFAULT_CONN_GRACE_MS);
    if (!rc && h->low_water > h->high_water)
        rc = CP2P_EINVAL;

    cp2p_swarm_config_t sc = {.identity = h->identity};
    if (!rc)
        rc = pick_muxers(cfg, &sc);
    if (!rc)
        rc = pick_securities(cfg, &sc);
#define DEF(field, d) sc.field = or_default(cfg, offsetof(cp2p_host_config_t, field), d)
    DEF(max_streams_per_conn, CP2P_HOST_DEFAULT_MAX_STREAMS_PER_CONN);
    DEF(max_stream_buffer, CP2P_HOST_DEFAULT_MAX_STREAM_BUFFER);
    DEF(dial_timeout_ms, CP2P_HOST_DEFAULT_DIAL_TIMEOUT_MS);
    DEF(negotiate_timeout_ms, CP2P_HOST_DEFAULT_NEGOTIATE_TIMEOUT_MS);
    DEF(handshake_timeout_ms, CP2P_HOST_DEFAULT_HANDSHAKE_TIMEOUT_MS);
    DEF(max_conns_per_ip, CP2P_HOST_DEFAULT_MAX_CONNS_PER_IP);
    DEF(max_conns_per_subnet, CP2P_HOST_DEFAULT_MAX_CONNS_PER_SUBNET);
#undef DEF
    sc.limit_loopback = cfg && cfg->limit_loopback;
    if (cfg) {
        sc.listen_opts.tls_cert_file = cfg->wss_cert_file;
        sc.listen_opts.tls_key_file = cfg->wss_key_file;
    }
    if (cfg && cfg->psk) {
        sc.has_psk = 1;
        memcpy(sc.psk, cfg->psk, sizeof sc.psk);
    } else if (!rc && getenv("LIBP2P_FORCE_PNET") && !strcmp(getenv("LIBP2P_FORCE_PNET"), "1")) {
        cp2p_log_error("host", "LIBP2P_FORCE_PNET=1 and no private network key given");
        rc = CP2P_EINVAL;
    }
    h->keep_private_addrs = cfg && cfg->keep_private_addrs;
    if (cfg && (cfg->force_reachability == CP2P_REACHABILITY_PUBLIC ||
                cfg->force_reachability == CP2P_REACHABILITY_PRIVATE)) {
        h->reach = cfg->force_reachability;
        h->reach_forced = 1;
    }
    uint64_t memory = (uint64_t)or_default(cfg, offsetof(cp2p_host_config_t, max_memory_mb),
                                           default_memory_mb()) << 20;
    cp2p_rcmgr_config_t limits;
    pick_limits(cfg, memory,
                or_default(cfg, offsetof(cp2p_host_config_t, max_connections),
                           CP2P_HOST_DEFAULT_MAX_CONNECTIONS),
                or_default(cfg, offsetof(cp2p_host_config_t, max_pending_inbound),
                           CP2P_HOST_DEFAULT_MAX_PENDING_INBOUND),
                &limits);
    sc.limits = &limits;
    if (sc.max_stream_buffer < CP2P_HOST_MIN_STREAM_BUFFER)
        sc.max_stream_buffer = CP2P_HOST_MIN_STREAM_BUFFER;
    cp2p_swarm_hooks_t hooks = {
        .ctx = h,
        .match = hook_match,
        .inbound_stream = hook_inbound_stream,
        .connected = hook_connected,
        .disconnected = hook_disconnected,
    };
    if (!rc)
        rc = post_new(loop, &h->post);
    int swarm_failed = 0;
    if (!rc)
        swarm_failed = (rc = cp2p_swarm_new(loop, &sc, &hooks, &h->sw)) < 0;
    explicit_bzero(sc.psk, sizeof sc.psk); /* the swarm keeps its own copy */
    if (swarm_failed) {
        post_close(h->post, free_host, h); /* its handle closes on a later turn */
        return rc;
    }
    if (rc) {
        host_free(h);
        return rc;
    }
    char id[CP2P_PEER_ID_STRMAX];
    if (cp2p_peer_id_to_string(&h->id, id, sizeof id) == 0)
        cp2p_log_debug("host", "host %s created", id);
    *out = h;
    return 0;
}

static void post_closed(void *arg)
{
    cp2p_host_t *h = arg;
    void (*done)(void *) = h->done;
    void *done_arg = h->done_arg;
    host_free(h);
    if (done)
        done(done_arg);
}

/* Last the posts: work handed over while the host closed still runs. */
static void swarm_closed(void *arg)
{
    cp2p_host_t *h = arg;
    post_close(h->post, post_closed, h);
}

int cp2p_host_post(cp2p_host_t *h, void (*fn)(void *arg), void *arg)
{
    if (!h || !fn)
        return CP2P_EINVAL;
    return post_push(h->post, fn, arg);
}

void cp2p_host_close(cp2p_host_t *h, void (*done)(void *arg), void *arg)
{
    /* A second call (say from a callback the first one ran) must not take
     * the first caller's done away. */
    if (h->closing)
        return;
    h->closing = 1;
    h->done = done;
    h->done_arg = arg;
    cp2p_swarm_close(h->sw, swarm_closed, h);
}

const cp2p_peer_id_t *cp2p_host_peer_id(const cp2p_host_t *h)
{
    return &h->id;
}

const cp2p_privkey_t *cp2p_host_identity(const cp2p_host_t *h)
{
    return h->identity;
}

uv_loop_t *cp2p_host_loop(cp2p_host_t *h)
{
    return h->loop;
}

cp2p_peerstore_t *cp2p_host_peerstore(cp2p_host_t *h)
{
    return h->ps;
}

const char *cp2p_host_agent_version(const cp2p_host_t *h)
{
    return h->agent;
}

size_t cp2p_host_conn_count(const cp2p_host_t *h)
{
    return cp2p_swarm_conn_count(h->sw);
}

void cp2p_host_stats(cp2p_host_t *h, cp2p_host_stats_t *out)
{
    const cp2p_swarm_stats_t *st = cp2p_swarm_stats(h->sw);
    out->conns_opened = st->conns_opened;
    out->conns_failed = st->conns_failed;
    out->conns_rejected = st->conns_rejected;
    out->conns_errored = st->conns_errored;
    out->streams_opened_in = st->streams_in;
    out->streams_opened_out = st->streams_out;
    out->streams_open = st->streams_open;
    out->streams_bad = st->streams_bad;
    out->bytes_in = st->bytes_in;
    out->bytes_out = st->bytes_out;
    const cp2p_rc_scope_t *sys = cp2p_rcmgr_system(cp2p_swarm_rcmgr(h->sw));
    out->memory_used = sys->used[RC_MEMORY];
    out->memory_limit = sys->limit[RC_MEMORY];
    out->memory_peak = sys->memory_peak;
    out->memory_holds = st->memory_holds;
    out->streams_refused = st->streams_refused;
    out->addrs_dropped = h->addrs_dropped;
}

static int plausible(cp2p_ip_scope_t claim, cp2p_ip_scope_t via, int keep_private)
{
    if (claim == CP2P_IP_UNUSABLE)
        return 0;
    if (claim == CP2P_IP_NONE || claim == CP2P_IP_PUBLIC || keep_private)
        return 1;
    if (via == CP2P_IP_PUBLIC)
        return 0;
    return claim == CP2P_IP_PRIVATE || via == CP2P_IP_LOOPBACK || via == CP2P_IP_NONE;
}

size_t cp2p_host_plausible_addrs(cp2p_host_t *h, const cp2p_conn_t *via,
                                 const cp2p_multiaddr_t *in, size_t n, cp2p_multiaddr_t *out)
{
    cp2p_ip_scope_t v = via ? cp2p_multiaddr_ip_scope(cp2p_conn_remote_addr(via))
                            : CP2P_IP_LOOPBACK;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (plausible(cp2p_multiaddr_ip_scope(&in[i]), v, h->keep_private_addrs))
            out[k++] = in[i];
    if (k < n) {
        h->addrs_dropped += n - k;
        cp2p_log_debug("host", "dropped %zu of %zu claimed addresses: they do not fit the "
                       "address the claim came from", n - k, n);
    }
    return k;
}

size_t cp2p_host_resources(cp2p_host_t *h, cp2p_rc_scope_stat_t *out, size_t cap)
{
    return cp2p_rcmgr_stats(cp2p_swarm_rcmgr(h->sw), out, cap);
}

int cp2p_host_peer_resources(cp2p_host_t *h, const cp2p_peer_id_t *peer,
                             cp2p_rc_scope_stat_t *out)
{
    if (!peer || !out)
        return CP2P_EINVAL;
    return cp2p_rcmgr_peer_stat(cp2p_swarm_rcmgr(h->sw), peer, out);
}

int cp2p_host_set_protocol_limits(cp2p_host_t *h, const char *protocol,
                                  const cp2p_rc_limits_t *limits)
{
    return cp2p_rcmgr_set_protocol_limits(cp2p_swarm_rcmgr(h->sw), protocol, limits);
}

cp2p_conn_t *cp2p_host_conn_to(cp2p_host_t *h, const cp2p_peer_id_t *peer)
{
    return cp2p_swarm_conn_to(h->sw, peer);
}

/* ---- connection manager ---- */

int cp2p_host_tag_peer(cp2p_host_t *h, const cp2p_peer_id_t *peer, const char *tag, int weight)
{
    return cp2p_connmgr_tag(h->cm, peer, tag, weight);
}

int cp2p_host_untag_peer(cp2p_host_t *h, const cp2p_peer_id_t *peer, const char *tag)
{
    return cp2p_connmgr_untag(h->cm, peer, tag);
}

static size_t trim(cp2p_host_t *h, uint64_t spare_after_ms)
{
    size_t count = cp2p_swarm_conn_count(h->sw);
    if (count <= h->low_water)
        return 0;
    size_t excess = count - h->low_water;
    /* The victims are copied out first: closing may run the disconnected
     * hook, which changes the table. */
    cp2p_peer_id_t *victims = malloc(excess * sizeof *victims);
    if (!victims)
        return 0;
    size_t n = cp2p_connmgr_victims(h->cm, excess, spare_after_ms, victims, excess);
    for (size_t i = 0; i < n; i++) {
        cp2p_conn_t *c;
        /* Closing unlinks the connection at once, so this ends. */
        while ((c = cp2p_swarm_conn_to(h->sw, &victims[i])) != NULL)
            cp2p_conn_close(c);
    }
    free(victims);
    if (n)
        cp2p_log_debug("host", "trimmed %zu peers (%zu connections, low water %u)", n, count,
                       (unsigned)h->low_water);
    return n;
}

size_t cp2p_host_trim(cp2p_host_t *h)
{
    cp2p_swarm_enter(h->sw); /* the closed connections' callbacks come later */
    size_t n = trim(h, UINT64_MAX);
    cp2p_swarm_leave(h->sw);
    return n;
}

/* ---- listening ---- */

static int ext_matches(void *ctx, const cp2p_multiaddr_t *ma)
{
    cp2p_host_t *h = ctx;
    return h->has_ext && h->ext.matches(h->ext.ctx, ma);
}

static int ext_dial(void *ctx, const cp2p_multiaddr_t *ma, const cp2p_peer_id_t *peer,
                    cp2p_dial_fn fn, void *arg, void **out)
{
    cp2p_host_t *h = ctx;
    return h->ext.dial(h->ext.ctx, ma, peer, fn, arg, out);
}

static void ext_dial_cancel(void *ctx, void *d)
{
    cp2p_host_t *h = ctx;
    if (h->has_ext)
        h->ext.dial_cancel(h->ext.ctx, d);
}

void cp2p_host_set_ext_transport(cp2p_host_t *h, const cp2p_host_ext_transport_t *t)
{
    h->has_ext = t != NULL;
    if (t)
        h->ext = *t;
    static const cp2p_swarm_ext_dialer_t d = {NULL, ext_matches, ext_dial, ext_dial_cancel};
    cp2p_swarm_ext_dialer_t mine = d;
    mine.ctx = h;
    cp2p_swarm_set_ext_dialer(h->sw, t ? &mine : NULL);
}

void cp2p_host_accept_raw(cp2p_host_t *h, cp2p_rawconn_t *rc)
{
    cp2p_swarm_accept_raw(h->sw, rc);
}

void cp2p_host_addrs_changed(cp2p_host_t *h, const cp2p_multiaddr_t *added)
{
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    if (!added && cp2p_host_addrs(h, &addrs, &n) == 0 && n)
        added = &addrs[0]; /* identify pushes the whole set on any of them */
    if (added) {
        cp2p_event_t ev = {.type = CP2P_EVENT_LISTEN_ADDR, .addr = added};
        cp2p_swarm_enter(h->sw); /* told on a later turn */
        cp2p_host_emit(h, &ev);
        cp2p_swarm_leave(h->sw);
    }
    cp2p_multiaddr_array_free(addrs, n);
}

int cp2p_host_listen(cp2p_host_t *h, const cp2p_multiaddr_t *ma)
{
    if (ma && h->has_ext && h->ext.matches(h->ext.ctx, ma))
        return h->ext.listen(h->ext.ctx, ma);
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    int rc = cp2p_swarm_listen(h->sw, ma, &addrs, &n);
    cp2p_swarm_enter(h->sw); /* subscribers hear of the addresses on a later turn */
    for (size_t i = 0; i < n; i++) {
        if (!rc) {
            cp2p_event_t ev = {.type = CP2P_EVENT_LISTEN_ADDR, .addr = &addrs[i]};
            cp2p_host_emit(h, &ev);
        }
        cp2p_multiaddr_free(&addrs[i]);
    }
    cp2p_swarm_leave(h->sw);
    free(addrs);
    return rc;
}

int cp2p_host_listen_addrs(cp2p_host_t *h, cp2p_multiaddr_t **addrs, size_t *n)
{
    *addrs = NULL;
    *n = 0;
    int rc = cp2p_swarm_listen_addrs(h->sw, addrs, n);
    if (!rc && h->has_ext)
        rc = h->ext.listen_addrs(h->ext.ctx, addrs, n);
    if (rc) {
        cp2p_multiaddr_array_free(*addrs, *n);
        *addrs = NULL;
        *n = 0;
    }
    return rc;
}

int cp2p_host_set_announce_addrs(cp2p_host_t *h, const cp2p_multiaddr_t *addrs, size_t n)
{
    if (n > CP2P_HOST_MAX_ANNOUNCE_ADDRS || (n && !addrs))
        return CP2P_EINVAL;
    cp2p_multiaddr_t *copy;
    int rc = cp2p_multiaddr_array_dup(addrs, n, &copy);
    if (rc)
        return rc;
    cp2p_multiaddr_array_free(h->announce, h->nannounce);
    h->announce = copy;
    h->nannounce = n;
    cp2p_swarm_enter(h->sw); /* subscribers hear of the addresses on a later turn */
    for (size_t i = 0; i < n; i++) {
        cp2p_event_t ev = {.type = CP2P_EVENT_LISTEN_ADDR, .addr = &h->announce[i]};
        cp2p_host_emit(h, &ev);
    }
    cp2p_swarm_leave(h->sw);
    return 0;
}

static int base_addrs(cp2p_host_t *h, cp2p_multiaddr_t **addrs, size_t *n)
{
    if (!h->nannounce)
        return cp2p_host_listen_addrs(h, addrs, n);
    int rc = cp2p_multiaddr_array_dup(h->announce, h->nannounce, addrs);
    *n = rc ? 0 : h->nannounce;
    return rc;
}

int cp2p_host_addrs(cp2p_host_t *h, cp2p_multiaddr_t **addrs, size_t *n)
{
    int rc = base_addrs(h, addrs, n);
    if (rc || !h->nexternal)
        return rc;
    cp2p_multiaddr_t *a = realloc(*addrs, (*n + h->nexternal) * sizeof *a);
    if (!a)
        return 0; /* the base set alone, rather than nothing */
    *addrs = a;
    for (size_t i = 0; i < h->nexternal; i++) {
        int dup = 0;
        for (size_t j = 0; j < *n && !dup; j++)
            dup = cp2p_multiaddr_equal(&a[j], &h->external[i]);
        if (!dup && cp2p_multiaddr_dup(&h->external[i], &a[*n]) == 0)
            (*n)++;
    }
    return 0;
}

int cp2p_host_add_external_addr(cp2p_host_t *h, const cp2p_multiaddr_t *ma)
{
    for (size_t i = 0; i < h->nexternal; i++)
        if (cp2p_multiaddr_equal(&h->external[i], ma))
            return CP2P_EEXIST;
    cp2p_multiaddr_t copy;
    int rc = cp2p_multiaddr_dup(ma, &copy);
    if (rc)
        return rc;
    if (h->nexternal == CP2P_HOST_MAX_EXTERNAL_ADDRS) {
        cp2p_multiaddr_free(&h->external[0]);
        memmove(&h->external[0], &h->external[1], (h->nexternal - 1) * sizeof h->external[0]);
        h->nexternal--;
    }
    h->external[h->nexternal++] = copy;
    cp2p_host_addrs_changed(h, &copy);
    return 0;
}

/* ---- reachability ---- */

cp2p_reachability_t cp2p_host_reachability(const cp2p_host_t *h)
{
    return h->reach;
}

int cp2p_host_reachability_forced(const cp2p_host_t *h)
{
    return h->reach_forced;
}

const char *cp2p_reachability_name(cp2p_reachability_t r)
{
    return r == CP2P_REACHABILITY_PUBLIC ? "public" : r == CP2P_REACHABILITY_PRIVATE ? "private" : "unknown";
}

void cp2p_host_set_reachability(cp2p_host_t *h, cp2p_reachability_t r)
{
    if (h->reach_forced || h->reach == r)
        return;
    h->reach = r;
    cp2p_log_info("host", "reachability: %s", cp2p_reachability_name(r));
    cp2p_event_t ev = {.type = CP2P_EVENT_REACHABILITY, .reachability = r};
    cp2p_host_emit(h, &ev);
}

/* ---- handlers and events ---- */

int cp2p_host_set_handler(cp2p_host_t *h, const char *protocol_id, cp2p_stream_handler_fn fn,
                          void *arg)
{
    if (!protocol_id || !*protocol_id || !fn || strlen(protocol_id) >= CP2P_MSS_MAX_MSG ||
        strchr(protocol_id, '\n'))
        return CP2P_EINVAL;
    handler_t *hd = find_handler(h, protocol_id, strlen(protocol_id));
    if (!hd) {
        handler_t *a = realloc(h->handlers, (h->nhandlers + 1) * sizeof *a);
        if (!a)
            return CP2P_ENOMEM;
        h->handlers = a;
        char *p = strdup(protocol_id);
        if (!p)
            return CP2P_ENOMEM;
        hd = &a[h->nhandlers++];
        hd->protocol = p;
    }
    hd->fn = fn;
    hd->arg = arg;
    return 0;
}

int cp2p_host_remove_handler(cp2p_host_t *h, const char *protocol_id)
{
    handler_t *hd = protocol_id ? find_handler(h, protocol_id, strlen(protocol_id)) : NULL;
    if (!hd)
        return CP2P_ENOTFOUND;
    free(hd->protocol);
    *hd = h->handlers[--h->nhandlers];
    return 0;
}

size_t cp2p_host_protocols(cp2p_host_t *h, const char **out, size_t cap)
{
    for (size_t i = 0; i < h->nhandlers && i < cap; i++)
        out[i] = h->handlers[i].protocol;
    return h->nhandlers;
}

int cp2p_host_subscribe(cp2p_host_t *h, cp2p_event_fn fn, void *arg)
{
    if (!fn)
        return CP2P_EINVAL;
    subscriber_t *a = realloc(h->subs, (h->nsubs + 1) * sizeof *a);
    if (!a)
        return CP2P_ENOMEM;
    h->subs = a;
    a[h->nsubs].fn = fn;
    a[h->nsubs].arg = arg;
    h->nsubs++;
    return 0;
}

int cp2p_host_unsubscribe(cp2p_host_t *h, cp2p_event_fn fn, void *arg)
{
    for (size_t i = 0; i < h->nsubs; i++)
        if (h->subs[i].fn == fn && h->subs[i].arg == arg) {
            memmove(&h->subs[i], &h->subs[i + 1], (h->nsubs - i - 1) * sizeof *h->subs);
            h->nsubs--;
            return 0;
        }
    return CP2P_ENOTFOUND;
}

/* ---- dialling and streams ---- */

/* A connect or a new stream under way for the program: kept in h->reqs so
 * that cp2p_host_cancel can find it by its argument. A cancelled one tells
 * its caller CP2P_ECANCELED on a later turn at once, and whatever it still
 * produces (a stream) is dropped when it comes. */
typedef struct req {
    struct req *prev, *next;
    cp2p_host_t *h;
    int cancelled;
    void *arg;
    cp2p_connect_cb connect_cb;    /* a connect, or */
    cp2p_stream_open_cb stream_cb; /* a new stream, with its protocols */
    size_t n;
    char **protocols;
} req_t;

static req_t *req_new(cp2p_host_t *h, void *arg)
{
    req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->arg = arg;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    return r;
}

static void req_end(req_t *r)
{
    cp2p_host_t *h = r->h;
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    for (size_t i = 0; i < r->n; i++)
        free(r->protocols[i]);
    free(r->protocols);
    free(r);
}

static void on_connected(int status, cp2p_conn_t *c, void *arg)
{
    req_t *r = arg;
    if (!r->cancelled)
        r->connect_cb(r->h, status, c ? cp2p_conn_peer(c) : NULL, r->arg);
    req_end(r);
}

static int dial(cp2p_host_t *h, const cp2p_peer_id_t *peer, const cp2p_multiaddr_t *addrs, size_t n,
                cp2p_connect_cb cb, void *arg)
{
    req_t *r = req_new(h, arg);
    if (!r)
        return CP2P_ENOMEM;
    r->connect_cb = cb;
    int rc = cp2p_swarm_dial(h->sw, peer, addrs, n, on_connected, r);
    if (rc)
        req_end(r);
    return rc;
}

typedef struct told {
    cp2p_host_t *h;
    cp2p_connect_cb connect_cb;
    cp2p_stream_open_cb stream_cb;
    void *arg;
} told_t;

static void tell_cancelled(void *arg)
{
    told_t *t = arg;
    if (t->connect_cb)
        t->connect_cb(t->h, CP2P_ECANCELED, NULL, t->arg);
    else
        t->stream_cb(CP2P_ECANCELED, NULL, t->arg);
    free(t);
}

int cp2p_host_cancel(cp2p_host_t *h, void *arg)
{
    if (!h)
        return CP2P_EINVAL;
    int n = 0;
    for (req_t *r = h->reqs; r; r = r->next) {
        if (r->cancelled || r->arg != arg)
            continue;
        told_t *t = malloc(sizeof *t);
        if (!t)
            return n ? n : CP2P_ENOMEM;
        *t = (told_t){h, r->connect_cb, r->stream_cb, r->arg};
        if (cp2p_host_later(h, tell_cancelled, t)) {
            free(t); /* the host is closing: its close tells them */
            break;
        }
        r->cancelled = 1;
        n++;
    }
    return n;
}

int cp2p_host_connect(cp2p_host_t *h, const cp2p_multiaddr_t *addr, cp2p_connect_cb cb, void *arg)
{
    if (!addr || !cb)
        return CP2P_EINVAL;
    cp2p_multiaddr_component_t comp, c;
    cp2p_peer_id_t peer;
    /* The last /p2p/: a relayed address names the relay first. */
    int has_peer = 0;
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_iter_init(&it, addr);
    while (cp2p_multiaddr_iter_next(&it, &c))
        if (c.code == CP2P_MA_P2P) {
            comp = c;
            has_peer = 1;
        } else if (c.code == CP2P_MA_P2P_CIRCUIT) {
            has_peer = 0;
        }
    if (has_peer) {
        int rc = cp2p_peer_id_from_bytes(comp.value, comp.value_len, &peer);
        if (rc)
            return rc;
        if (cp2p_peer_id_equal(&peer, &h->id))
            return CP2P_EINVAL; /* dialling ourselves */
    }
    return dial(h, has_peer ? &peer : NULL, addr, 1, cb, arg);
}

int cp2p_host_connect_peer(cp2p_host_t *h, const cp2p_peer_id_t *peer, cp2p_connect_cb cb, void *arg)
{
    if (!peer || !cb)
        return CP2P_EINVAL;
    cp2p_multiaddr_t addrs[MAX_DIAL_ADDRS];
    size_t n = 0;
    if (!cp2p_swarm_conn_to(h->sw, peer)) {
        n = cp2p_peerstore_addrs(h->ps, peer, uv_now(h->loop), addrs, MAX_DIAL_ADDRS);
        if (n == 0)
            return CP2P_EUNREACHABLE;
        if (n > MAX_DIAL_ADDRS)
            n = MAX_DIAL_ADDRS;
        /* Direct addresses first: a relayed circuit is limited, the last resort. */
        cp2p_multiaddr_t circuits[MAX_DIAL_ADDRS];
        size_t k = 0, nc = 0;
        cp2p_multiaddr_component_t c;
        for (size_t i = 0; i < n; i++) {
            if (cp2p_multiaddr_get(&addrs[i], CP2P_MA_P2P_CIRCUIT, &c) == 0)
                circuits[nc++] = addrs[i];
            else
                addrs[k++] = addrs[i];
        }
        memcpy(&addrs[k], circuits, nc * sizeof *circuits);
    }
    return dial(h, peer, addrs, n, cb, arg);
}

static void on_req_stream(int status, cp2p_stream_t *s, void *arg)
{
    req_t *r = arg;
    if (r->cancelled) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
    } else {
        r->stream_cb(status, s, r->arg);
    }
    req_end(r);
}

static void on_stream_conn(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    req_t *r = arg;
    if (r->cancelled) {
        req_end(r);
        return;
    }
    cp2p_conn_t *c = status ? NULL : cp2p_swarm_conn_to(h->sw, peer);
    if (!status && !c)
        status = CP2P_ECLOSED;
    if (!status)
        status = cp2p_conn_open_stream(c, (const char *const *)r->protocols, r->n, on_req_stream, r);
    if (status) {
        r->stream_cb(status, NULL, r->arg);
        req_end(r);
    }
}

int cp2p_host_new_stream(cp2p_host_t *h, const cp2p_peer_id_t *peer, const char *const *protocols,
                         size_t n, cp2p_stream_open_cb cb, void *arg)
{
    if (!peer || !protocols || n == 0 || !cb)
        return CP2P_EINVAL;
    req_t *r = req_new(h, arg);
    if (!r)
        return CP2P_ENOMEM;
    r->stream_cb = cb;
    cp2p_conn_t *c = cp2p_swarm_conn_to(h->sw, peer);
    int rc;
    if (c) {
        rc = cp2p_conn_open_stream(c, protocols, n, on_req_stream, r);
    } else if (!(r->protocols = calloc(n, sizeof *r->protocols))) {
        rc = CP2P_ENOMEM;
    } else {
        rc = 0;
        for (; !rc && r->n < n; r->n++)
            if (!protocols[r->n] || !(r->protocols[r->n] = strdup(protocols[r->n])))
                rc = protocols[r->n] ? CP2P_ENOMEM : CP2P_EINVAL;
        if (!rc)
            rc = cp2p_host_connect_peer(h, peer, on_stream_conn, r);
    }
    if (rc)
        req_end(r);
    return rc;
}
