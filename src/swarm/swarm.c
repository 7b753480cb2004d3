/* The swarm: listeners, the dialer, the connection list and its limits
 * (the "swarm" of the libp2p connections spec, minus the upgrade in conn.c). */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "swarm/swarm.h"

static void maybe_done(struct cp2p_swarm *sw);

static const cp2p_transport_vtable_t *const transports[] = {&cp2p_ws_transport, &cp2p_tcp_transport,
                                                              &cp2p_unix_transport};

typedef struct listener {
    const cp2p_transport_vtable_t *t;
    cp2p_listener_t *l;
} listener_t;

typedef enum { DIAL_WAIT, DIAL_TRANSPORT, DIAL_UPGRADE, DIAL_DONE } dial_phase_t;

typedef struct later {
    void (*fn)(void *arg);
    void *arg;
} later_t;

typedef struct dial {
    struct dial *prev, *next;
    cp2p_swarm_t *sw;
    int has_peer;
    cp2p_peer_id_t peer;
    cp2p_multiaddr_t *addrs;
    size_t n, idx;
    const cp2p_transport_vtable_t *t; /* NULL: the external dialer */
    cp2p_dial_t *td;
    void *ext_d;
    dial_phase_t phase;
    int linked;            /* in the swarm's list of dials */
    int status;
    cp2p_conn_t *conn;
    int holds_conn;
    struct dial *leader;   /* a dial to the same peer this one waits for */
    cp2p_swarm_dial_opts_t opts;
    uv_timer_t timer;
    cp2p_swarm_dial_cb cb;
    void *arg;
} dial_t;

/* An inbound connection expected from a hole punch: its upgrade role. */
typedef struct expect {
    cp2p_multiaddr_t remote; /* /ip4|ip6/../tcp/.. */
    int role;
    uint64_t until_ms;
} expect_t;

#define MAX_EXPECTS 32

struct cp2p_swarm {
    uv_loop_t *loop;
    expect_t expects[MAX_EXPECTS];
    cp2p_swarm_config_t cfg;
    cp2p_swarm_hooks_t hooks;
    cp2p_swarm_stats_t stats;
    listener_t *listeners;
    size_t nlisteners;
    cp2p_conn_t *head, *tail;
    size_t nconns;   /* in the list: upgrading or open */
    cp2p_rcmgr_t *rc;
    size_t mem_held;                /* connections not read because memory is full */
    size_t live;     /* connections whose handles are not closed yet */
    dial_t *dials;
    cp2p_swarm_ext_dialer_t ext;
    int has_ext;
    int handles;     /* dial timers, the close notifier and the run-later idler */
    uv_timer_t closer;
    /* Calls owed to a later turn (cp2p_swarm_later), run by the idler. */
    uv_idle_t idler;
    later_t *later;
    size_t nlater, cap_later;
    int in_call, idler_closing;
    int closing;
    void (*done)(void *arg);
    void *done_arg;
};

static const cp2p_transport_vtable_t *transport_for(const cp2p_multiaddr_t *ma)
{
    for (size_t i = 0; i < sizeof transports / sizeof transports[0]; i++)
        if (transports[i]->matches(ma))
            return transports[i];
    return NULL;
}

/* IP and port of an /ip4|ip6/../tcp|udp/.. address into out (18 bytes max);
 * their length, 0 if it has none. */
static size_t remote_ip_port(const cp2p_multiaddr_t *ma, uint8_t out[18])
{
    cp2p_multiaddr_component_t c, p;
    if ((cp2p_multiaddr_get(ma, CP2P_MA_IP4, &c) && cp2p_multiaddr_get(ma, CP2P_MA_IP6, &c)) ||
        c.value_len > 16 || cp2p_multiaddr_get(ma, CP2P_MA_TCP, &p) || p.value_len != 2)
        return 0;
    memcpy(out, c.value, c.value_len);
    memcpy(out + c.value_len, p.value, 2);
    return c.value_len + 2;
}

int cp2p_swarm_new(uv_loop_t *loop, const cp2p_swarm_config_t *cfg, const cp2p_swarm_hooks_t *hooks,
                   cp2p_swarm_t **out)
{
    if (!loop || !cfg || !cfg->identity || cfg->n_muxers == 0 ||
        cfg->n_muxers > CP2P_SWARM_MAX_MUXERS)
        return CP2P_EINVAL;
    cp2p_swarm_t *sw = calloc(1, sizeof *sw);
    if (!sw)
        return CP2P_ENOMEM;
    static const cp2p_rcmgr_config_t unlimited;
    int rc = cp2p_rcmgr_new(cfg->limits ? cfg->limits : &unlimited, &sw->rc);
    if (rc) {
        free(sw);
        return rc;
    }
    sw->loop = loop;
    sw->cfg = *cfg;
    sw->cfg.limits = NULL;
    if (hooks)
        sw->hooks = *hooks;
    uv_timer_init(loop, &sw->closer);
    sw->closer.data = sw;
    uv_idle_init(loop, &sw->idler);
    sw->idler.data = sw;
    sw->handles = 2;
    *out = sw;
    return 0;
}

const cp2p_swarm_config_t *cp2p_swarm_config(const cp2p_swarm_t *sw)
{
    return &sw->cfg;
}

const cp2p_swarm_hooks_t *cp2p_swarm_hooks(const cp2p_swarm_t *sw)
{
    return &sw->hooks;
}

cp2p_swarm_stats_t *cp2p_swarm_stats(cp2p_swarm_t *sw)
{
    return &sw->stats;
}

size_t cp2p_swarm_conn_count(const cp2p_swarm_t *sw)
{
    return sw->nconns;
}

/* ---- later: libuv's rule ---- */

void cp2p_swarm_enter(cp2p_swarm_t *sw)
{
    sw->in_call++;
}

void cp2p_swarm_leave(cp2p_swarm_t *sw)
{
    sw->in_call--;
}

int cp2p_swarm_in_call(const cp2p_swarm_t *sw)
{
    return sw->in_call > 0;
}

/* Rounds of owed callbacks one idle turn runs before the loop polls again:
 * a writer chained from its callbacks goes on without a poll per write, and
 * still lets the sockets be read. */
#define LATER_ROUNDS 16

static void on_idle(uv_idle_t *t)
{
    cp2p_swarm_t *sw = t->data;
    for (int round = 0; round < LATER_ROUNDS && sw->nlater; round++) {
        /* What the callbacks owe in turn waits for the next round. */
        later_t *run = sw->later;
        size_t n = sw->nlater;
        sw->later = NULL;
        sw->nlater = sw->cap_later = 0;
        for (size_t i = 0; i < n; i++)
            run[i].fn(run[i].arg);
        free(run);
    }
    if (!sw->nlater)
        uv_idle_stop(&sw->idler);
    maybe_done(sw);
}

int cp2p_swarm_later(cp2p_swarm_t *sw, void (*fn)(void *arg), void *arg)
{
    if (sw->idler_closing)
        return CP2P_ESTATE;
    if (sw->nlater == sw->cap_later) {
        size_t cap = sw->cap_later ? sw->cap_later * 2 : 16;
        later_t *a = realloc(sw->later, cap * sizeof *a);
        if (!a)
            return CP2P_ENOMEM;
        sw->later = a;
        sw->cap_later = cap;
    }
    sw->later[sw->nlater++] = (later_t){fn, arg};
    uv_idle_start(&sw->idler, on_idle); /* does nothing if started */
    return 0;
}

cp2p_rcmgr_t *cp2p_swarm_rcmgr(cp2p_swarm_t *sw)
{
    return sw->rc;
}

static void mem_unhold(cp2p_swarm_t *sw, cp2p_conn_t *c)
{
    if (!c->mem_held)
        return;
    c->mem_held = 0;
    sw->mem_held--;
    cp2p_conn_hold_input(c, 0);
}

void cp2p_swarm_mem_add(cp2p_swarm_t *sw, cp2p_conn_t *c, cp2p_rc_scope_t *extra, long delta)
{
    cp2p_rc_scope_t *sys = cp2p_rcmgr_system(sw->rc);
    cp2p_rc_scope_t *sc[] = {c->owner, extra, sys};
    cp2p_rc_charge(sc, 3, delta);
    /* Held connections are let go when the scope that held them is under
     * its mark again: look only when this release left one there. */
    if (delta >= 0 || !sw->mem_held ||
        !(cp2p_rc_mem_under_mark(sys) && cp2p_rc_mem_under_mark(c->owner)))
        return;
    for (cp2p_conn_t *a = sw->head; a && sw->mem_held; a = a->next)
        if (a->mem_held && cp2p_rc_mem_under_mark(a->owner))
            mem_unhold(sw, a);
}

int cp2p_swarm_mem_over(const cp2p_swarm_t *sw, const cp2p_conn_t *c)
{
    return cp2p_rc_mem_over(cp2p_rcmgr_system(sw->rc)) || cp2p_rc_mem_over(c->owner);
}

void cp2p_swarm_mem_hold(cp2p_swarm_t *sw, cp2p_conn_t *c)
{
    if (c->mem_held)
        return;
    c->mem_held = 1;
    sw->mem_held++;
    sw->stats.memory_holds++;
    cp2p_conn_hold_input(c, 1);
    const cp2p_rc_scope_t *sys = cp2p_rcmgr_system(sw->rc);
    const cp2p_rc_scope_t *full = cp2p_rc_mem_over(sys) ? sys : c->owner;
    if (cp2p_log_enabled(CP2P_LOG_WARN)) /* rate-limited per scope type (log.h) */
        cp2p_log_write_key(CP2P_LOG_WARN, "swarm", (unsigned)full->type,
                           "%s memory full (%llu of %llu bytes): %zu connection%s not read",
                           cp2p_rc_scope_name(full), (unsigned long long)full->used[RC_MEMORY],
                           (unsigned long long)full->limit[RC_MEMORY], sw->mem_held,
                           sw->mem_held == 1 ? "" : "s");
}

void cp2p_swarm_rc_refused(cp2p_swarm_t *sw, const cp2p_rc_scope_t *s, const char *what)
{
    if (!cp2p_log_enabled(CP2P_LOG_INFO))
        return;
    char name[CP2P_PEER_ID_STRMAX] = "";
    if (s->type == CP2P_RC_SCOPE_PEER)
        cp2p_peer_id_to_string(&s->peer, name, sizeof name);
    /* Rate-limited per scope type and resource (log.h). */
    cp2p_log_write_key(CP2P_LOG_INFO, "swarm", (unsigned)s->type * RC_NKINDS + s->last_refused,
                       "%s: %s%s%s %s limit %llu reached (%llu refused so far)", what,
                       cp2p_rc_scope_name(s), *name ? " " : "", name,
                       cp2p_rc_kind_name(s->last_refused),
                       (unsigned long long)s->limit[s->last_refused],
                       (unsigned long long)s->refused[s->last_refused]);
}

/* A connection's counts in its scopes: both directions and its own. */
static cp2p_rc_kind_t conn_kind(const cp2p_conn_t *c)
{
    return c->inbound ? RC_CONNS_IN : RC_CONNS_OUT;
}

static void release_counts(cp2p_swarm_t *sw, cp2p_conn_t *c)
{
    if (c->rc_owner) {
        c->rc_owner = 0;
        cp2p_rc_release(&c->owner, 1, conn_kind(c), RC_CONNS, 1);
    }
    if (c->rc_system) {
        c->rc_system = 0;
        cp2p_rc_scope_t *sys = cp2p_rcmgr_system(sw->rc);
        cp2p_rc_release(&sys, 1, conn_kind(c), RC_CONNS, 1);
    }
}

void cp2p_swarm_conn_release(cp2p_swarm_t *sw, cp2p_conn_t *c)
{
    mem_unhold(sw, c); /* the socket is closed: nothing is read again */
    release_counts(sw, c);
    cp2p_swarm_mem_add(sw, c, NULL, -(long)c->mem);
    cp2p_rc_scope_t *sys = cp2p_rcmgr_system(sw->rc);
    if (c->rc_fd) {
        c->rc_fd = 0;
        cp2p_rc_release(&sys, 1, RC_FDS, RC_NKINDS, 1);
    }
    if (c->owner && c->owner->type == CP2P_RC_SCOPE_PEER)
        cp2p_rcmgr_peer_put(c->owner);
    c->owner = NULL;
}

/* Inbound connections still upgrading. */
static size_t pending_in(cp2p_swarm_t *sw)
{
    return cp2p_rcmgr_transient(sw->rc)->used[RC_CONNS_IN];
}

/* Open connections and our own dials, what the system's conns limit bounds,
 * are full. */
static int system_full(cp2p_swarm_t *sw, cp2p_rc_kind_t dir)
{
    const cp2p_rc_scope_t *sys = cp2p_rcmgr_system(sw->rc);
    return cp2p_rc_full(sys, RC_CONNS) || cp2p_rc_full(sys, dir);
}

/* The upgrade proved the peer: the connection counts in the system scope and
 * moves from the transient scope to its peer's. A refusal closes it. */
static int upgraded(cp2p_swarm_t *sw, cp2p_conn_t *c)
{
    if (!c->upgrading)
        return 0;
    c->upgrading = 0;
    cp2p_rc_scope_t *sys = cp2p_rcmgr_system(sw->rc), *full;
    if (!c->rc_system) {
        if ((full = cp2p_rc_reserve(&sys, 1, conn_kind(c), RC_CONNS, 1))) {
            cp2p_swarm_rc_refused(sw, full, "inbound connection closed");
            return CP2P_ELIMIT;
        }
        c->rc_system = 1;
    }
    cp2p_rc_scope_t *peer = cp2p_rcmgr_peer(sw->rc, &c->peer);
    if (!peer)
        return CP2P_ENOMEM;
    uint64_t use[RC_NKINDS] = {[RC_MEMORY] = c->mem, [RC_CONNS] = 1};
    use[conn_kind(c)] = 1;
    if ((full = cp2p_rc_move(use, c->owner, peer))) {
        cp2p_rcmgr_peer_put(peer);
        cp2p_swarm_rc_refused(sw, full, c->inbound ? "inbound connection closed" : "dial failed");
        return CP2P_ELIMIT;
    }
    c->owner = peer;
    return 0;
}

void cp2p_swarm_set_reuse_port(cp2p_swarm_t *sw, int on)
{
    sw->cfg.reuse_port = on;
}

int cp2p_swarm_addr_relayed(const cp2p_multiaddr_t *ma)
{
    cp2p_multiaddr_component_t c;
    return cp2p_multiaddr_get(ma, CP2P_MA_P2P_CIRCUIT, &c) == 0;
}

/* A direct connection beats a relayed one (DCUtR: new streams go to the
 * direct connection once there is one). */
static cp2p_conn_t *conn_to(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer, int direct_only)
{
    cp2p_conn_t *relayed = NULL;
    for (cp2p_conn_t *c = sw->head; c; c = c->next)
        if (c->state == CONN_OPEN && !c->goaway && cp2p_peer_id_equal(&c->peer, peer)) {
            if (!cp2p_swarm_addr_relayed(&c->remote))
                return c;
            if (!relayed)
                relayed = c;
        }
    return direct_only ? NULL : relayed;
}

cp2p_conn_t *cp2p_swarm_conn_to(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer)
{
    return conn_to(sw, peer, 0);
}

cp2p_conn_t *cp2p_swarm_direct_conn_to(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer)
{
    return conn_to(sw, peer, 1);
}

/* IP and port of two /ip/../tcp/.. addresses are the same. */
static int same_endpoint(const cp2p_multiaddr_t *a, const cp2p_multiaddr_t *b)
{
    uint8_t ia[18], ib[18];
    size_t la = remote_ip_port(a, ia), lb = remote_ip_port(b, ib);
    return la && la == lb && !memcmp(ia, ib, la);
}

int cp2p_swarm_expect_inbound(cp2p_swarm_t *sw, const cp2p_multiaddr_t *remote, int role,
                              uint32_t ms)
{
    uint8_t tmp[18];
    if (!remote_ip_port(remote, tmp) || (role != 1 && role != -1))
        return CP2P_EINVAL;
    uint64_t now = uv_now(sw->loop);
    expect_t *slot = &sw->expects[0];
    for (size_t i = 0; i < MAX_EXPECTS; i++) {
        expect_t *e = &sw->expects[i];
        if (e->remote.bytes && same_endpoint(&e->remote, remote)) {
            slot = e;
            break;
        }
        if (!e->remote.bytes || e->until_ms < slot->until_ms)
            slot = e; /* free, or the one that expires first */
    }
    cp2p_multiaddr_t copy;
    int rc = cp2p_multiaddr_dup(remote, &copy);
    if (rc)
        return rc;
    cp2p_multiaddr_free(&slot->remote);
    slot->remote = copy;
    slot->role = role;
    slot->until_ms = now + ms;
    return 0;
}

/* The role an accepted connection from remote takes: 1 initiator, 0 the
 * usual responder. */
static int inbound_role(cp2p_swarm_t *sw, const cp2p_multiaddr_t *remote)
{
    uint64_t now = uv_now(sw->loop);
    if (cp2p_swarm_addr_relayed(remote)) /* a circuit names the relay's IP and port */
        return 0;
    for (size_t i = 0; i < MAX_EXPECTS; i++) {
        expect_t *e = &sw->expects[i];
        if (!e->remote.bytes)
            continue;
        if (e->until_ms < now) {
            cp2p_multiaddr_free(&e->remote);
            continue;
        }
        if (same_endpoint(&e->remote, remote))
            return e->role == 1;
    }
    return 0;
}

static void idler_closed(uv_handle_t *h)
{
    cp2p_swarm_t *sw = h->data;
    sw->handles--;
    maybe_done(sw);
}

static void maybe_done(cp2p_swarm_t *sw)
{
    if (!sw->closing || sw->live || sw->nlater)
        return;
    /* Nothing can be owed any more: connections are gone, and their
     * streams' later calls go to timers of their own. */
    if (!sw->idler_closing) {
        sw->idler_closing = 1;
        uv_close((uv_handle_t *)&sw->idler, idler_closed);
        return;
    }
    if (sw->handles)
        return;
    void (*done)(void *) = sw->done;
    void *arg = sw->done_arg;
    free(sw->listeners);
    for (size_t i = 0; i < MAX_EXPECTS; i++)
        cp2p_multiaddr_free(&sw->expects[i].remote);
    cp2p_rcmgr_free(sw->rc);
    free(sw);
    if (done)
        done(arg);
}

static void link_conn(cp2p_swarm_t *sw, cp2p_conn_t *c)
{
    c->prev = sw->tail;
    if (sw->tail)
        sw->tail->next = c;
    else
        sw->head = c;
    sw->tail = c;
    sw->nconns++;
    sw->live++;
    c->upgrading = 1;
}

void cp2p_swarm_conn_unlink(cp2p_swarm_t *sw, cp2p_conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        sw->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        sw->tail = c->prev;
    c->prev = c->next = NULL;
    sw->nconns--;
    c->upgrading = 0;
    release_counts(sw, c);
}

void cp2p_swarm_conn_closed(cp2p_swarm_t *sw, cp2p_conn_t *c)
{
    if (c->mux && sw->hooks.disconnected)
        sw->hooks.disconnected(sw->hooks.ctx, c);
    cp2p_conn_unref(c);
}

void cp2p_swarm_conn_gone(cp2p_swarm_t *sw)
{
    sw->live--;
    maybe_done(sw);
}

/* ---- listening ---- */

/* What a new connection reserves before it exists: a socket, an upgrade
 * slot in the transient scope and, for our dials, a connection in the
 * system scope (an inbound one takes that when its upgrade is done). The
 * scope that refused, or NULL. */
static cp2p_rc_scope_t *reserve_new(cp2p_swarm_t *sw, int inbound)
{
    cp2p_rc_scope_t *sys = cp2p_rcmgr_system(sw->rc), *tr = cp2p_rcmgr_transient(sw->rc), *full;
    cp2p_rc_kind_t kind = inbound ? RC_CONNS_IN : RC_CONNS_OUT;
    if ((full = cp2p_rc_reserve(&sys, 1, RC_FDS, RC_NKINDS, 1)))
        return full;
    if ((full = cp2p_rc_reserve(&tr, 1, kind, RC_CONNS, 1))) {
        cp2p_rc_release(&sys, 1, RC_FDS, RC_NKINDS, 1);
        return full;
    }
    if (!inbound && (full = cp2p_rc_reserve(&sys, 1, kind, RC_CONNS, 1))) {
        cp2p_rc_release(&tr, 1, kind, RC_CONNS, 1);
        cp2p_rc_release(&sys, 1, RC_FDS, RC_NKINDS, 1);
        return full;
    }
    return NULL;
}

/* The new connection owns what reserve_new took. */
static void adopt(cp2p_conn_t *c)
{
    c->rc_fd = c->rc_owner = 1;
    c->rc_system = !c->inbound;
}

/* conn_new failed: give back what reserve_new took. */
static void unreserve_new(cp2p_swarm_t *sw, int inbound)
{
    cp2p_rc_scope_t *sys = cp2p_rcmgr_system(sw->rc), *tr = cp2p_rcmgr_transient(sw->rc);
    cp2p_rc_kind_t kind = inbound ? RC_CONNS_IN : RC_CONNS_OUT;
    cp2p_rc_release(&tr, 1, kind, RC_CONNS, 1);
    if (!inbound)
        cp2p_rc_release(&sys, 1, kind, RC_CONNS, 1);
    cp2p_rc_release(&sys, 1, RC_FDS, RC_NKINDS, 1);
}

/* Counted always; logged (log.h keeps a flood to a few lines). */
static void refused(cp2p_swarm_t *sw, const char *what, size_t n)
{
    sw->stats.conns_rejected++;
    cp2p_log_info("swarm", "%s %zu (%llu refused so far)", what, n,
                  (unsigned long long)sw->stats.conns_rejected);
}

static void on_inbound_ready(cp2p_conn_t *c, int status, void *arg)
{
    cp2p_swarm_t *sw = arg;
    if (status)
        return;
    /* Upgrades are not bounded by the system's connections; the open ones are. */
    int rc = upgraded(sw, c);
    if (rc) {
        sw->stats.conns_rejected++;
        cp2p_conn_close_with(c, rc);
        return;
    }
    if (sw->hooks.connected)
        sw->hooks.connected(sw->hooks.ctx, c);
}

/* The IP of a connection's remote address into out (16 bytes); its length. */
static size_t remote_ip(const cp2p_multiaddr_t *ma, uint8_t out[16])
{
    cp2p_multiaddr_component_t c;
    if ((cp2p_multiaddr_get(ma, CP2P_MA_IP4, &c) && cp2p_multiaddr_get(ma, CP2P_MA_IP6, &c)) ||
        c.value_len > 16)
        return 0;
    memcpy(out, c.value, c.value_len);
    return c.value_len;
}

/* Every upgrade slot is taken: the oldest upgrading connection of the
 * address that holds the most slots gives way to the newcomer. */
static void make_room(cp2p_swarm_t *sw)
{
    struct slot {
        uint8_t ip[16];
        size_t len;
        cp2p_conn_t *c;
    } *v = malloc(pending_in(sw) * sizeof *v);
    size_t n = 0, most = 0;
    cp2p_conn_t *victim = NULL;
    for (cp2p_conn_t *a = sw->head; v && a && n < pending_in(sw); a = a->next)
        if (a->upgrading && a->inbound) {
            v[n].len = remote_ip(&a->remote, v[n].ip);
            v[n++].c = a;
        }
    /* Oldest first: the first slot of an address is its oldest. */
    for (size_t i = 0; i < n; i++) {
        size_t count = 0, j = 0;
        while (j < i && !(v[j].len == v[i].len && !memcmp(v[j].ip, v[i].ip, v[i].len)))
            j++;
        if (j < i)
            continue; /* counted with its first */
        for (j = i; j < n; j++)
            count += v[j].len == v[i].len && !memcmp(v[j].ip, v[i].ip, v[i].len);
        if (count > most) {
            most = count;
            victim = v[i].c;
        }
    }
    free(v);
    if (victim) {
        refused(sw, "an upgrading connection gave way: upgrading from its address:",
                most);
        cp2p_conn_close_with(victim, CP2P_ELIMIT);
    }
}


/* Over a per-address or per-subnet limit: the newcomer is refused. */
static int over_ip_limits(cp2p_swarm_t *sw, const cp2p_multiaddr_t *remote)
{
    uint8_t ip[16], other[16];
    size_t len = remote_ip(remote, ip);
    if (!len || (cp2p_ip_scope(ip, len) == CP2P_IP_LOOPBACK && !sw->cfg.limit_loopback))
        return 0;
    size_t subnet = len == 4 ? 3 : 7; /* bytes: /24, /56 */
    size_t same = 0, near = 0;
    for (cp2p_conn_t *c = sw->head; c; c = c->next) {
        if (!c->inbound || remote_ip(&c->remote, other) != len)
            continue;
        same += !memcmp(ip, other, len);
        near += !memcmp(ip, other, subnet);
    }
    if (sw->cfg.max_conns_per_ip && same >= sw->cfg.max_conns_per_ip) {
        refused(sw, "inbound connection refused: connections from its address:", same);
        return 1;
    }
    if (sw->cfg.max_conns_per_subnet && near >= sw->cfg.max_conns_per_subnet) {
        refused(sw, "inbound connection refused: connections from its subnet:", near);
        return 1;
    }
    return 0;
}

static void accept_raw(cp2p_swarm_t *sw, cp2p_rawconn_t *rc);

static void on_accept(void *arg, cp2p_rawconn_t *rc)
{
    cp2p_swarm_t *sw = arg;
    if (sw->closing) {
        cp2p_rawconn_free(rc);
        return;
    }
    if (over_ip_limits(sw, &rc->remote)) {
        cp2p_rawconn_free(rc);
        return;
    }
    accept_raw(sw, rc);
}

void cp2p_swarm_accept_raw(cp2p_swarm_t *sw, cp2p_rawconn_t *rc)
{
    if (sw->closing) {
        cp2p_rawconn_free(rc);
        return;
    }
    accept_raw(sw, rc);
}

static void accept_raw(cp2p_swarm_t *sw, cp2p_rawconn_t *rc)
{
    if (system_full(sw, RC_CONNS_IN)) {
        refused(sw, "inbound connection refused: connections open:",
                cp2p_rcmgr_system(sw->rc)->used[RC_CONNS]);
        cp2p_rawconn_free(rc);
        return;
    }
    if (cp2p_rc_full(cp2p_rcmgr_transient(sw->rc), RC_CONNS_IN))
        make_room(sw);
    cp2p_rc_scope_t *full = reserve_new(sw, 1);
    if (full) {
        sw->stats.conns_rejected++;
        cp2p_swarm_rc_refused(sw, full, "inbound connection refused");
        cp2p_rawconn_free(rc);
        return;
    }
    cp2p_conn_t *c;
    int initiator = inbound_role(sw, &rc->remote);
    if (initiator)
        cp2p_log_debug("swarm", "an expected hole punch connection: we are its client");
    if (cp2p_conn_new_role(sw, rc, 1, initiator, NULL, on_inbound_ready, sw, &c) == 0) {
        adopt(c);
        link_conn(sw, c);
    } else {
        unreserve_new(sw, 1);
    }
}

int cp2p_swarm_listen(cp2p_swarm_t *sw, const cp2p_multiaddr_t *ma, cp2p_multiaddr_t **addrs,
                      size_t *n)
{
    if (sw->closing)
        return CP2P_ESTATE;
    const cp2p_transport_vtable_t *t = transport_for(ma);
    if (!t)
        return CP2P_EUNSUPPORTED;
    listener_t *a = realloc(sw->listeners, (sw->nlisteners + 1) * sizeof *a);
    if (!a)
        return CP2P_ENOMEM;
    sw->listeners = a;
    cp2p_listener_t *l;
    int rc = t->listen_with ? t->listen_with(sw->loop, ma, &sw->cfg.listen_opts, on_accept, sw, &l)
                            : t->listen(sw->loop, ma, on_accept, sw, &l);
    if (rc)
        return rc;
    a[sw->nlisteners].t = t;
    a[sw->nlisteners].l = l;
    sw->nlisteners++;
    return addrs ? t->listener_addrs(l, addrs, n) : 0;
}

int cp2p_swarm_listen_addrs(cp2p_swarm_t *sw, cp2p_multiaddr_t **addrs, size_t *n)
{
    for (size_t i = 0; i < sw->nlisteners; i++) {
        int rc = sw->listeners[i].t->listener_addrs(sw->listeners[i].l, addrs, n);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- dialling ---- */

static void dial_next(dial_t *d);

void cp2p_swarm_set_ext_dialer(cp2p_swarm_t *sw, const cp2p_swarm_ext_dialer_t *d)
{
    sw->has_ext = d != NULL;
    if (d)
        sw->ext = *d;
}

static void cancel_transport(dial_t *d)
{
    if (d->t)
        d->t->dial_cancel(d->td);
    else if (d->sw->has_ext)
        d->sw->ext.dial_cancel(d->sw->ext.ctx, d->ext_d);
    d->td = NULL;
    d->ext_d = NULL;
}

static void dial_timer_closed(uv_handle_t *h)
{
    dial_t *d = h->data;
    cp2p_swarm_t *sw = d->sw;
    free(d);
    sw->handles--;
    maybe_done(sw);
}

static void dial_unlink(dial_t *d)
{
    cp2p_swarm_t *sw = d->sw;
    if (!d->linked)
        return;
    d->linked = 0;
    if (d->prev)
        d->prev->next = d->next;
    else
        sw->dials = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
}

static void dial_finish_later(dial_t *d, int status, cp2p_conn_t *c);

static void dial_finish(dial_t *d, int status, cp2p_conn_t *c)
{
    cp2p_swarm_t *sw = d->sw;
    if (sw->in_call) {
        /* Inside a public call (a close): the dialer hears on a later turn
         * (from the timer already started, if the dial was done). */
        dial_unlink(d);
        if (d->phase != DIAL_DONE)
            dial_finish_later(d, status, c);
        return;
    }
    dial_unlink(d);
    d->phase = DIAL_DONE;
    /* A connection reused from the list may have closed while we waited. */
    if (c && status == 0 && c->state != CONN_OPEN)
        status = CP2P_ECLOSED;
    d->cb(status, status ? NULL : c, d->arg);
    if (d->holds_conn)
        cp2p_conn_unref(c);
    for (dial_t *f = sw->dials; f;) {
        if (f->leader != d) {
            f = f->next;
            continue;
        }
        f->leader = NULL;
        dial_finish(f, status, c);
        f = sw->dials; /* the list may have changed under the callback */
    }
    for (size_t i = 0; i < d->n; i++)
        cp2p_multiaddr_free(&d->addrs[i]);
    free(d->addrs);
    uv_close((uv_handle_t *)&d->timer, dial_timer_closed);
}

static void on_dial_timer(uv_timer_t *t)
{
    dial_t *d = t->data;
    if (d->phase == DIAL_TRANSPORT) {
        /* This address took too long; the others may still answer. */
        cancel_transport(d);
        d->status = CP2P_ETIMEOUT;
        d->idx++;
        dial_next(d);
        return;
    }
    dial_finish(d, d->status, d->conn);
}

/* Report from the loop, never from inside the call that started the dial. */
static void dial_finish_later(dial_t *d, int status, cp2p_conn_t *c)
{
    d->phase = DIAL_DONE;
    d->status = status;
    d->conn = c;
    if (c) {
        cp2p_conn_ref(c);
        d->holds_conn = 1;
    }
    uv_timer_start(&d->timer, on_dial_timer, 0, 0);
}

static void on_outbound_ready(cp2p_conn_t *c, int status, void *arg)
{
    dial_t *d = arg;
    cp2p_swarm_t *sw = d->sw;
    /* The hook's callbacks may close the swarm, which finishes every dial
     * still in the list: this one is finished here, once. */
    dial_unlink(d);
    if (status == 0 && (status = upgraded(sw, c)))
        cp2p_conn_close_with(c, status);
    if (status == 0 && sw->hooks.connected)
        sw->hooks.connected(sw->hooks.ctx, c);
    dial_finish(d, status, c);
}

static void on_raw(void *arg, int status, cp2p_rawconn_t *rc)
{
    dial_t *d = arg;
    cp2p_swarm_t *sw = d->sw;
    d->td = NULL;
    d->ext_d = NULL;
    uv_timer_stop(&d->timer);
    if (status) {
        d->status = status;
        d->idx++;
        dial_next(d);
        return;
    }
    cp2p_rc_scope_t *full = reserve_new(sw, 0);
    if (full) {
        cp2p_swarm_rc_refused(sw, full, "dial failed");
        cp2p_rawconn_free(rc);
        dial_finish(d, CP2P_ELIMIT, NULL);
        return;
    }
    cp2p_conn_t *c;
    d->phase = DIAL_UPGRADE;
    int initiator = d->opts.role ? d->opts.role > 0 : 1;
    int r = cp2p_conn_new_role(sw, rc, 0, initiator, d->has_peer ? &d->peer : NULL,
                               on_outbound_ready, d, &c);
    if (r) {
        unreserve_new(sw, 0);
        dial_finish(d, r, NULL);
        return;
    }
    adopt(c);
    link_conn(sw, c);
}

static void dial_next(dial_t *d)
{
    for (; d->idx < d->n; d->idx++) {
        const cp2p_multiaddr_t *ma = &d->addrs[d->idx];
        cp2p_swarm_t *sw = d->sw;
        int ext = sw->has_ext && sw->ext.matches(sw->ext.ctx, ma);
        d->t = ext ? NULL : transport_for(ma);
        if (!d->t && !ext) {
            d->status = CP2P_EUNSUPPORTED;
            continue;
        }
        d->phase = DIAL_TRANSPORT;
        int reuse = d->opts.reuse_port ? d->opts.reuse_port : d->sw->cfg.reuse_port;
        int rc;
        if (ext) {
            rc = sw->ext.dial(sw->ext.ctx, ma, d->has_peer ? &d->peer : NULL, on_raw, d, &d->ext_d);
        } else if (reuse && d->t->dial_reuse) {
            cp2p_listener_t *ls[8];
            size_t nls = 0;
            for (size_t i = 0; i < d->sw->nlisteners && nls < 8; i++)
                if (d->sw->listeners[i].t == d->t)
                    ls[nls++] = d->sw->listeners[i].l;
            rc = d->t->dial_reuse(d->sw->loop, ma, ls, nls, reuse > 1, on_raw, d, &d->td);
        } else {
            rc = d->t->dial(d->sw->loop, ma, on_raw, d, &d->td);
        }
        if (rc == 0) {
            uv_timer_start(&d->timer, on_dial_timer, d->sw->cfg.dial_timeout_ms, 0);
            return;
        }
        d->status = rc;
    }
    dial_finish_later(d, d->status, NULL);
}

int cp2p_swarm_dial(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer, const cp2p_multiaddr_t *addrs,
                    size_t n, cp2p_swarm_dial_cb cb, void *arg)
{
    return cp2p_swarm_dial_with(sw, peer, addrs, n, NULL, cb, arg);
}

int cp2p_swarm_dial_with(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer, const cp2p_multiaddr_t *addrs,
                         size_t n, const cp2p_swarm_dial_opts_t *opts, cp2p_swarm_dial_cb cb,
                         void *arg)
{
    if (!cb || (n && !addrs) || (!n && !peer))
        return CP2P_EINVAL;
    if (sw->closing)
        return CP2P_ESTATE;
    dial_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    if (n && !(d->addrs = calloc(n, sizeof *d->addrs))) {
        free(d);
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = cp2p_multiaddr_dup(&addrs[i], &d->addrs[d->n]);
        if (rc) {
            for (size_t j = 0; j < d->n; j++)
                cp2p_multiaddr_free(&d->addrs[j]);
            free(d->addrs);
            free(d);
            return rc;
        }
        d->n++;
    }
    d->sw = sw;
    d->cb = cb;
    d->arg = arg;
    if (opts)
        d->opts = *opts;
    d->status = CP2P_EUNREACHABLE;
    if (peer) {
        d->has_peer = 1;
        d->peer = *peer;
    }
    uv_timer_init(sw->loop, &d->timer);
    d->timer.data = d;
    sw->handles++;
    d->linked = 1;
    d->next = sw->dials;
    if (sw->dials)
        sw->dials->prev = d;
    sw->dials = d;

    /* A direct dial (hole punch) wants a connection of its own: the
     * relayed one, or a dial under way (likely through a relay), will not do. */
    cp2p_conn_t *c = peer ? conn_to(sw, peer, d->opts.direct) : NULL;
    dial_t *leader = NULL;
    for (dial_t *o = d->next; peer && o && !c && !leader && !d->opts.direct; o = o->next)
        if (o->has_peer && !o->leader && !o->opts.direct && o->phase != DIAL_DONE &&
            cp2p_peer_id_equal(&o->peer, peer))
            leader = o;
    if (c)
        dial_finish_later(d, 0, c);
    else if (leader)
        d->leader = leader; /* one connection per peer: wait for the dial under way */
    else if (system_full(sw, RC_CONNS_OUT))
        dial_finish_later(d, CP2P_ELIMIT, NULL);
    else
        dial_next(d);
    return 0;
}

/* ---- closing ---- */

static void closer_closed(uv_handle_t *h)
{
    cp2p_swarm_t *sw = h->data;
    sw->handles--;
    maybe_done(sw);
}

void cp2p_swarm_close(cp2p_swarm_t *sw, void (*done)(void *arg), void *arg)
{
    if (sw->closing)
        return;
    sw->closing = 1;
    cp2p_swarm_enter(sw); /* streams and dials are told on a later turn */
    sw->done = done;
    sw->done_arg = arg;
    for (size_t i = 0; i < sw->nlisteners; i++)
        sw->listeners[i].t->listener_close(sw->listeners[i].l);
    sw->nlisteners = 0;
    /* Finishing a dial finishes its followers too, so rescan each time. */
    for (dial_t *d = sw->dials; d;) {
        if (d->phase == DIAL_UPGRADE || d->leader) {
            d = d->next;
            continue;
        }
        if (d->phase == DIAL_TRANSPORT)
            cancel_transport(d);
        dial_finish(d, d->phase == DIAL_DONE ? d->status : CP2P_ECANCELED, d->conn);
        d = sw->dials;
    }
    /* Upgrading dials end with their connection. A closing connection leaves
     * the list before its callbacks run, so the list shrinks at every step
     * even when a callback closes the swarm or another connection. */
    for (cp2p_conn_t *c; (c = sw->head);)
        cp2p_conn_close_with(c, CP2P_ECANCELED);
    while (sw->dials) {
        dial_t *d = sw->dials;
        if (d->phase == DIAL_TRANSPORT)
            cancel_transport(d);
        dial_finish(d, CP2P_ECANCELED, NULL);
    }
    cp2p_swarm_leave(sw);
    uv_close((uv_handle_t *)&sw->closer, closer_closed);
}
