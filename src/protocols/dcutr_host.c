/* DCUtR on a host (libp2p specs relay/DCUtR.md): the glue that runs the
 * engine of protocols/dcutr.c over /libp2p/dcutr streams, times B's dial
 * with the loop's clock, and dials with the roles, port reuse and "direct
 * only" of the swarm's hole punching dials. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/dcutr.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/peerstore.h"
#include "cp2p/stream.h"
#include "host/host_priv.h"
#include "protocols/dcutr.h"
#include "swarm/swarm.h"

/* After our punch dial failed, how long an inbound connection from the
 * peer's simultaneous dial (it reached our listener first) may take. */
#define WAIT_DIRECT_MS 2000
/* Punches under way at once (each one holds a stream and a dial). */
#define MAX_PUNCHES 64
#define MAX_OURS 32

typedef enum { P_UNILATERAL, P_OPENING, P_EXCHANGE, P_DIALING, P_WAIT_DIRECT, P_GRACE, P_DONE } phase_t;

typedef struct punch {
    struct punch *next;
    cp2p_dcutr_t *d;
    cp2p_peer_id_t peer;
    int b;                 /* we are B: we opened the stream and retry */
    cp2p_conn_t *relayed;  /* a reference */
    cp2p_stream_t *s;      /* a reference, during an exchange */
    long charged;          /* bytes of s counted in the resource manager */
    cp2p_dcutr_engine_t e;
    int has_engine;
    uv_timer_t timer;
    int timer_closed;
    int attempt;
    phase_t phase;
    int pending;           /* stream opens and dials whose callbacks are owed to us */
} punch_t;

/* Where peers on direct connections last said they see us (identify):
 * behind a NAT the router's outside address is known from these only, often
 * from the relay alone, long before AutoNAT could confirm it; go puts them in
 * its CONNECT too. The newest few, distinct. */
#define MAX_OBSERVED 8

struct cp2p_dcutr {
    cp2p_host_t *h;
    cp2p_dcutr_config_t cfg;
    cp2p_dcutr_stats_t stats;
    punch_t *punches;
    size_t npunches;
    int freed;
    cp2p_multiaddr_t observed[MAX_OBSERVED];
    size_t n_observed;
};

static void char_peer(const cp2p_peer_id_t *p, char *out, size_t n)
{
    if (cp2p_peer_id_to_string(p, out, n))
        snprintf(out, n, "?");
}

/* ---- punches' life ---- */

static void dcutr_maybe_free(cp2p_dcutr_t *d)
{
    if (d->freed && !d->punches) {
        for (size_t i = 0; i < d->n_observed; i++)
            cp2p_multiaddr_free(&d->observed[i]);
        free(d);
    }
}

/* An observed address of ours, newest last; the oldest goes when full. */
static void note_observed(cp2p_dcutr_t *d, const cp2p_multiaddr_t *a)
{
    cp2p_multiaddr_component_t c;
    if (cp2p_multiaddr_get(a, CP2P_MA_P2P_CIRCUIT, &c) == 0)
        return;
    for (size_t i = 0; i < d->n_observed; i++)
        if (cp2p_multiaddr_equal(&d->observed[i], a)) {
            cp2p_multiaddr_t keep = d->observed[i];
            memmove(d->observed + i, d->observed + i + 1, (d->n_observed - i - 1) * sizeof keep);
            d->observed[d->n_observed - 1] = keep;
            return;
        }
    cp2p_multiaddr_t copy;
    if (cp2p_multiaddr_dup(a, &copy))
        return;
    if (d->n_observed == MAX_OBSERVED) {
        cp2p_multiaddr_free(&d->observed[0]);
        memmove(d->observed, d->observed + 1, (MAX_OBSERVED - 1) * sizeof copy);
        d->n_observed--;
    }
    d->observed[d->n_observed++] = copy;
}

static void unlink_punch(punch_t *p)
{
    cp2p_dcutr_t *d = p->d;
    for (punch_t **pp = &d->punches; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            d->npunches--;
            break;
        }
}

static void punch_maybe_free(punch_t *p)
{
    if (p->phase != P_DONE || p->pending || !p->timer_closed)
        return;
    cp2p_dcutr_t *d = p->d;
    unlink_punch(p);
    free(p);
    dcutr_maybe_free(d);
}

static void timer_closed(uv_handle_t *h)
{
    punch_t *p = h->data;
    p->timer_closed = 1;
    punch_maybe_free(p);
}

static void drop_stream(punch_t *p, int reset)
{
    if (!p->s)
        return;
    if (p->charged)
        cp2p_stream_charge(p->s, -p->charged);
    p->charged = 0;
    cp2p_stream_read_stop(p->s);
    if (reset)
        cp2p_stream_reset(p->s);
    else
        cp2p_stream_close_write(p->s);
    cp2p_stream_unref(p->s);
    p->s = NULL;
}

static void drop_engine(punch_t *p)
{
    if (p->has_engine)
        cp2p_dcutr_engine_free(&p->e);
    p->has_engine = 0;
}

/* The end: no callback runs for the punch after this. */
static void punch_end(punch_t *p)
{
    if (p->phase == P_DONE)
        return;
    p->phase = P_DONE;
    drop_stream(p, 1);
    drop_engine(p);
    if (p->relayed) {
        cp2p_conn_unref(p->relayed);
        p->relayed = NULL;
    }
    uv_close((uv_handle_t *)&p->timer, timer_closed);
}

static void report(punch_t *p, int status, cp2p_conn_t *direct)
{
    cp2p_dcutr_t *d = p->d;
    char name[CP2P_PEER_ID_STRMAX];
    char_peer(&p->peer, name, sizeof name);
    if (status == 0) {
        d->stats.direct++;
        cp2p_buf_t b = {0};
        cp2p_multiaddr_to_string(cp2p_conn_remote_addr(direct), &b);
        cp2p_log_info("dcutr", "%s: direct connection %.*s (%s, %d attempt%s)", name, (int)b.len,
                      b.data ? (char *)b.data : "", p->b ? "B" : "A", p->attempt,
                      p->attempt == 1 ? "" : "s");
        cp2p_buf_free(&b);
    } else {
        d->stats.failed++;
        cp2p_log_info("dcutr", "%s: hole punch failed after %d attempt%s (%s): staying relayed", name,
                      p->attempt, p->attempt == 1 ? "" : "s", cp2p_strerror(status));
    }
    if (d->cfg.on_result && !d->freed) {
        cp2p_dcutr_result_t r = {.peer = &p->peer, .status = status, .conn = direct,
                                 .attempts = p->attempt, .initiator = p->b};
        d->cfg.on_result(&r, d->cfg.arg);
    }
}

static void on_timer(uv_timer_t *t);

static void arm(punch_t *p, uint64_t at)
{
    uint64_t now = uv_now(cp2p_host_loop(p->d->h));
    uv_timer_start(&p->timer, on_timer, at > now ? at - now : 0, 0);
}

static void fail(punch_t *p, int status)
{
    if (p->phase == P_DONE)
        return;
    report(p, status, NULL);
    punch_end(p);
}

static void succeed(punch_t *p, cp2p_conn_t *direct)
{
    if (p->phase == P_DONE || p->phase == P_GRACE)
        return;
    drop_stream(p, 0);
    drop_engine(p);
    report(p, 0, direct);
    uint32_t grace = p->d->cfg.relay_grace_ms;
    if (grace == CP2P_DCUTR_KEEP_RELAYED || !p->relayed) {
        punch_end(p);
        return;
    }
    p->phase = P_GRACE;
    uv_timer_start(&p->timer, on_timer, grace, 0);
}

static void begin_attempt(punch_t *p);

/* This attempt failed: B tries again, A waits for B's next stream. */
static void attempt_failed(punch_t *p, int status)
{
    drop_stream(p, 1);
    drop_engine(p);
    if (p->b && p->attempt < (int)p->d->cfg.attempts && p->relayed &&
        status != CP2P_EPROTO && status != CP2P_EPARSE && status != CP2P_EOVERFLOW &&
        status != CP2P_ENOTFOUND && status != CP2P_ENEGOTIATE) {
        begin_attempt(p);
        return;
    }
    fail(p, status);
}

/* ---- dialling ---- */

static void on_dialled(int status, cp2p_conn_t *c, void *arg)
{
    punch_t *p = arg;
    p->pending--;
    if (p->phase != P_DIALING) {
        punch_maybe_free(p);
        return;
    }
    cp2p_swarm_t *sw = cp2p_host_swarm(p->d->h);
    if (status == 0 && c && !cp2p_swarm_addr_relayed(cp2p_conn_remote_addr(c))) {
        succeed(p, c);
        return;
    }
    cp2p_conn_t *direct = cp2p_swarm_direct_conn_to(sw, &p->peer);
    if (direct) {
        succeed(p, direct);
        return;
    }
    cp2p_log_debug("dcutr", "punch dial failed (%s): waiting for the peer's", cp2p_strerror(status));
    p->phase = P_WAIT_DIRECT;
    uint32_t wait = p->d->cfg.dial_timeout_ms < WAIT_DIRECT_MS ? p->d->cfg.dial_timeout_ms : WAIT_DIRECT_MS;
    uv_timer_start(&p->timer, on_timer, wait, 0);
}

/* Our role in the new connection's upgrade: A is the client; B the server,
 * but the client on its last attempt, as go-libp2p (a peer from before the
 * roles were fixed has them the other way round). */
static int our_role(const punch_t *p)
{
    if (!p->b)
        return 1;
    return p->attempt >= (int)p->d->cfg.attempts && p->attempt > 1 ? 1 : -1;
}

/* The peer's dial may reach our listener before ours leaves: that
 * connection takes our role too. Set as soon as the peer's addresses are
 * known, before our answer lets it dial (on loopback, B's timer of half an
 * RTT can run out before A has read SYNC). */
static void expect_peer(punch_t *p)
{
    cp2p_swarm_t *sw = cp2p_host_swarm(p->d->h);
    uint32_t ms = p->d->cfg.stream_timeout_ms + p->d->cfg.dial_timeout_ms + WAIT_DIRECT_MS;
    for (size_t i = 0; i < p->e.n_remote; i++)
        cp2p_swarm_expect_inbound(sw, &p->e.remote[i], our_role(p), ms);
}

static void punch_dial(punch_t *p)
{
    cp2p_swarm_t *sw = cp2p_host_swarm(p->d->h);
    cp2p_swarm_dial_opts_t o = {.role = our_role(p), .reuse_port = 2, .direct = 1};
    expect_peer(p);
    p->phase = P_DIALING;
    uv_timer_stop(&p->timer);
    int rc = cp2p_swarm_dial_with(sw, &p->peer, p->e.remote, p->e.n_remote, &o, on_dialled, p);
    if (rc) {
        attempt_failed(p, rc);
        return;
    }
    p->pending++;
}

/* ---- the exchange ---- */

static int send_out(punch_t *p, cp2p_buf_t *out)
{
    int rc = 0;
    if (out->len && p->s)
        rc = cp2p_stream_write(p->s, out->data, out->len, NULL, NULL);
    cp2p_buf_free(out);
    return rc < 0 ? rc : 0;
}

static void after_engine(punch_t *p, int rc)
{
    if (rc < 0) {
        if (rc == CP2P_EPROTO || rc == CP2P_EPARSE || rc == CP2P_EOVERFLOW)
            p->d->stats.protocol_errors++;
        char name[CP2P_PEER_ID_STRMAX];
        char_peer(&p->peer, name, sizeof name);
        cp2p_log_debug("dcutr", "%s: exchange failed: %s", name, cp2p_strerror(rc));
        attempt_failed(p, rc);
        return;
    }
    if (rc == 1 || p->e.state == DCUTR_ST_DIAL) {
        drop_stream(p, 0);
        punch_dial(p);
        return;
    }
    uint64_t next = cp2p_dcutr_engine_next_ms(&p->e);
    if (next != UINT64_MAX)
        arm(p, next);
}

static void on_read(cp2p_stream_t *s, int status, const uint8_t *data, size_t n, void *arg)
{
    punch_t *p = arg;
    if (p->phase != P_EXCHANGE || s != p->s)
        return;
    uint64_t now = uv_now(cp2p_host_loop(p->d->h));
    int rc;
    if (status == 0) {
        cp2p_buf_t out = {0};
        size_t known = p->e.n_remote;
        rc = cp2p_dcutr_engine_input(&p->e, data, n, now, &out);
        if (rc >= 0 && p->e.n_remote && !known)
            expect_peer(p); /* before our CONNECT or SYNC leaves */
        if (rc >= 0) {
            int w = send_out(p, &out);
            if (w < 0)
                rc = w;
        } else {
            cp2p_buf_free(&out);
        }
        /* What the engine holds of a partial message is the remote's doing. */
        long delta = (long)p->e.in.len - p->charged;
        if (rc >= 0 && delta && p->s) {
            p->charged += delta;
            if (cp2p_stream_charge(p->s, delta) == CP2P_ELIMIT)
                rc = CP2P_ELIMIT;
        }
    } else if (status == CP2P_ECLOSED) {
        rc = cp2p_dcutr_engine_eof(&p->e);
    } else {
        rc = p->e.state == DCUTR_ST_WAIT_TIMER ? 0 : status;
        if (rc == 0)
            drop_stream(p, 0);
    }
    after_engine(p, rc);
}

static int start_exchange(punch_t *p, cp2p_stream_t *s)
{
    cp2p_dcutr_t *d = p->d;
    /* What we advertise (announced or confirmed external addresses) and
     * what we listen on (go sends its listen and observed addresses); the
     * engine drops relay addresses and, unless allowed, private ones. */
    cp2p_multiaddr_t *ours = NULL, *listen = NULL;
    size_t n = 0, nl = 0;
    int rc = cp2p_host_addrs(d->h, &ours, &n);
    if (!rc && !cp2p_host_listen_addrs(d->h, &listen, &nl) && nl) {
        cp2p_multiaddr_t *all = realloc(ours, (n + nl) * sizeof *all);
        if (all) {
            memcpy(all + n, listen, nl * sizeof *all);
            ours = all;
            n += nl;
            free(listen); /* the addresses moved into ours */
            listen = NULL;
            nl = 0;
        }
    }
    cp2p_multiaddr_array_free(listen, nl);
    if (!rc && d->n_observed) {
        cp2p_multiaddr_t *all = realloc(ours, (n + d->n_observed) * sizeof *all);
        for (size_t i = 0; all && i < d->n_observed; i++)
            if (cp2p_multiaddr_dup(&d->observed[d->n_observed - 1 - i], &all[n]) == 0) /* newest first */
                n++;
        if (all)
            ours = all;
    }
    if (rc)
        return rc;
    uint64_t now = uv_now(cp2p_host_loop(d->h));
    rc = cp2p_dcutr_engine_init(&p->e, p->b ? CP2P_DCUTR_ROLE_B : CP2P_DCUTR_ROLE_A,
                                d->cfg.allow_private, ours, n, now, d->cfg.stream_timeout_ms);
    cp2p_multiaddr_array_free(ours, n);
    if (rc)
        return rc;
    p->has_engine = 1;
    p->s = s;
    p->phase = P_EXCHANGE;
    d->stats.attempts++;
    cp2p_buf_t out = {0};
    rc = cp2p_dcutr_engine_start(&p->e, now, &out);
    if (!rc)
        rc = send_out(p, &out);
    else
        cp2p_buf_free(&out);
    if (!rc)
        rc = cp2p_stream_read_start(s, on_read, p);
    if (!rc)
        arm(p, cp2p_dcutr_engine_next_ms(&p->e));
    return rc;
}

static void on_open(int status, cp2p_stream_t *s, void *arg)
{
    punch_t *p = arg;
    p->pending--;
    if (p->phase != P_OPENING) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        punch_maybe_free(p);
        return;
    }
    if (status) {
        /* A peer without /libp2p/dcutr: nothing to retry. */
        fail(p, status == CP2P_ENEGOTIATE ? CP2P_EUNSUPPORTED : status);
        return;
    }
    int rc = start_exchange(p, s);
    if (rc)
        attempt_failed(p, rc);
}

static const char *const dcutr_ids[] = {CP2P_DCUTR_PROTOCOL_ID};

static void begin_attempt(punch_t *p)
{
    p->attempt++;
    p->phase = P_OPENING;
    uv_timer_stop(&p->timer);
    int rc = p->relayed ? cp2p_conn_open_stream(p->relayed, dcutr_ids, 1, on_open, p) : CP2P_ECLOSED;
    if (rc) {
        fail(p, rc);
        return;
    }
    p->pending++;
}

static void on_timer(uv_timer_t *t)
{
    punch_t *p = t->data;
    switch (p->phase) {
    case P_EXCHANGE:
        after_engine(p, cp2p_dcutr_engine_tick(&p->e, uv_now(t->loop)));
        break;
    case P_WAIT_DIRECT: {
        cp2p_conn_t *direct = cp2p_swarm_direct_conn_to(cp2p_host_swarm(p->d->h), &p->peer);
        if (direct)
            succeed(p, direct);
        else
            attempt_failed(p, CP2P_EUNREACHABLE);
        break;
    }
    case P_GRACE:
        /* New streams already go to the direct connection. */
        if (p->relayed && cp2p_swarm_direct_conn_to(cp2p_host_swarm(p->d->h), &p->peer))
            cp2p_conn_close(p->relayed);
        punch_end(p);
        break;
    default:
        break;
    }
}

static punch_t *find_punch(cp2p_dcutr_t *d, const cp2p_peer_id_t *peer)
{
    for (punch_t *p = d->punches; p; p = p->next)
        if (p->phase != P_DONE && cp2p_peer_id_equal(&p->peer, peer))
            return p;
    return NULL;
}

static punch_t *punch_new(cp2p_dcutr_t *d, cp2p_conn_t *c, int b)
{
    if (d->npunches >= MAX_PUNCHES)
        return NULL;
    punch_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->d = d;
    p->b = b;
    p->peer = *cp2p_conn_peer(c);
    cp2p_conn_ref(c);
    p->relayed = c;
    uv_timer_init(cp2p_host_loop(d->h), &p->timer);
    p->timer.data = p;
    p->next = d->punches;
    d->punches = p;
    d->npunches++;
    d->stats.punches++;
    return p;
}

/* ---- B: an inbound relayed connection ---- */

static void on_unilateral(int status, cp2p_conn_t *c, void *arg)
{
    punch_t *p = arg;
    p->pending--;
    if (p->phase != P_UNILATERAL) {
        punch_maybe_free(p);
        return;
    }
    if (status == 0 && c && !cp2p_swarm_addr_relayed(cp2p_conn_remote_addr(c))) {
        succeed(p, c);
        return;
    }
    begin_attempt(p);
}

static void start_later(void *arg)
{
    punch_t *p = arg;
    p->pending--;
    if (p->phase != P_OPENING || p->attempt) {
        punch_maybe_free(p);
        return;
    }
    begin_attempt(p);
}

int cp2p_dcutr_upgrade(cp2p_dcutr_t *d, cp2p_conn_t *c)
{
    if (!d || !c || d->freed)
        return CP2P_EINVAL;
    if (find_punch(d, cp2p_conn_peer(c)))
        return CP2P_EEXIST;
    punch_t *p = punch_new(d, c, 1);
    if (!p)
        return CP2P_ELIMIT;
    /* The spec's unilateral upgrade: A may be reachable on a public address. */
    cp2p_multiaddr_t view[16], pub[16];
    size_t n = cp2p_peerstore_addrs(cp2p_host_peerstore(d->h), &p->peer,
                                    uv_now(cp2p_host_loop(d->h)), view, 16), k = 0;
    for (size_t i = 0; i < n && i < 16; i++)
        if (cp2p_dcutr_addr_usable(&view[i], 0))
            pub[k++] = view[i];
    if (k) {
        p->phase = P_UNILATERAL;
        cp2p_swarm_dial_opts_t o = {.direct = 1, .reuse_port = 1};
        if (cp2p_swarm_dial_with(cp2p_host_swarm(d->h), &p->peer, pub, k, &o, on_unilateral, p) == 0) {
            p->pending++;
            return 0;
        }
    }
    /* From the loop: a failure's result callback never runs in here. */
    p->phase = P_OPENING;
    if (cp2p_host_later(d->h, start_later, p)) {
        punch_end(p);
        return CP2P_ENOMEM;
    }
    p->pending++;
    return 0;
}

static int conn_relayed(const cp2p_conn_t *c)
{
    return cp2p_swarm_addr_relayed(cp2p_conn_remote_addr(c));
}

static void on_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_dcutr_t *d = arg;
    if (d->freed || !ev->conn)
        return;
    if (ev->type == CP2P_EVENT_CONNECTED && !conn_relayed(ev->conn)) {
        /* The peer's punch reached our listener. */
        punch_t *p = find_punch(d, ev->peer);
        if (p && (p->phase == P_DIALING || p->phase == P_WAIT_DIRECT))
            succeed(p, ev->conn);
        return;
    }
    if (ev->type == CP2P_EVENT_OBSERVED_ADDR && ev->addr && !conn_relayed(ev->conn)) {
        note_observed(d, ev->addr);
        return;
    }
    /* Identify told us A's addresses (for the unilateral upgrade) and ours. */
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED && conn_relayed(ev->conn) &&
        cp2p_conn_is_inbound(ev->conn) && !find_punch(d, ev->peer) &&
        !cp2p_swarm_direct_conn_to(cp2p_host_swarm(d->h), ev->peer))
        cp2p_dcutr_upgrade(d, ev->conn);
}

/* ---- A: the stream B opens ---- */

static void handler(cp2p_stream_t *s, void *arg)
{
    cp2p_dcutr_t *d = arg;
    cp2p_conn_t *c = cp2p_stream_conn(s);
    if (d->freed || (!d->cfg.any_conn && !conn_relayed(c))) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    punch_t *p = find_punch(d, cp2p_conn_peer(c));
    if (p && (p->b || p->phase == P_GRACE)) {
        /* Both sides started (each thinks it is B), or we are done. */
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    if (p) { /* B's next attempt */
        drop_stream(p, 1);
        drop_engine(p);
    } else if (!(p = punch_new(d, c, 0))) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    p->attempt++;
    int rc = start_exchange(p, s);
    if (rc) {
        if (!p->s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        fail(p, rc);
    }
}

/* ---- set-up ---- */

int cp2p_dcutr_enable(cp2p_host_t *h, const cp2p_dcutr_config_t *cfg, cp2p_dcutr_t **out)
{
    if (!h || !out)
        return CP2P_EINVAL;
    cp2p_dcutr_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    d->h = h;
    if (cfg)
        d->cfg = *cfg;
    if (!d->cfg.attempts)
        d->cfg.attempts = CP2P_DCUTR_DEFAULT_ATTEMPTS;
    if (!d->cfg.stream_timeout_ms)
        d->cfg.stream_timeout_ms = 60000;
    if (!d->cfg.dial_timeout_ms)
        d->cfg.dial_timeout_ms = 10000;
    if (!d->cfg.relay_grace_ms)
        d->cfg.relay_grace_ms = 5000;
    int rc = cp2p_host_set_handler(h, CP2P_DCUTR_PROTOCOL_ID, handler, d);
    if (!rc && (rc = cp2p_host_subscribe(h, on_event, d)))
        cp2p_host_remove_handler(h, CP2P_DCUTR_PROTOCOL_ID);
    if (rc) {
        free(d);
        return rc;
    }
    cp2p_swarm_set_reuse_port(cp2p_host_swarm(h), 1);
    *out = d;
    return 0;
}

void cp2p_dcutr_free(cp2p_dcutr_t *d)
{
    if (!d || d->freed)
        return;
    d->freed = 1;
    cp2p_host_unsubscribe(d->h, on_event, d);
    cp2p_host_remove_handler(d->h, CP2P_DCUTR_PROTOCOL_ID);
    for (punch_t *p = d->punches; p; p = p->next)
        punch_end(p);
    dcutr_maybe_free(d);
}

void cp2p_dcutr_stats(const cp2p_dcutr_t *d, cp2p_dcutr_stats_t *out)
{
    *out = d->stats;
}
