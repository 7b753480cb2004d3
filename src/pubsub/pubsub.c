/* Pubsub on a host (libp2p pubsub spec "Stream management"): one outbound
 * stream per peer that we only write, one inbound stream per peer that we
 * only read, RPCs framed by a uvarint length; the router of ps_router.c
 * decides what goes where. Here: streams, the heartbeat timer, validators,
 * and keeping the library's rule that no user callback runs inside the
 * call that caused it. */
#include "cp2p/pubsub.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cp2p/envelope.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peerstore.h"
#include "cp2p/stream.h"
#include "pubsub/ps_router.h"
#include "pubsub/ps_rpc.h"

#define LOG "pubsub"
#define MAX_PX_DIALS 16
#define EARLY_MAX (256 * 1024) /* RPCs held for a peer until our stream to it opens */

typedef struct link {              /* our streams with one peer */
    struct link *next;
    cp2p_pubsub_t *ps;
    cp2p_peer_id_t peer;
    cp2p_stream_t *out, *in;
    int opening, added, gone, failing;
    int cbs;                       /* callbacks still owed to us (open, writes) */
    size_t queued;                 /* written, not yet taken by the muxer */
    cp2p_buf_t early;              /* RPCs for it before our stream opened */
    cp2p_buf_t rx;
    size_t charged;
} link_t;

typedef struct topic_sub {
    struct topic_sub *next;
    char *name;
    cp2p_pubsub_message_fn fn;
    void *arg;
    cp2p_pubsub_validator_fn vfn;
    void *varg;
} topic_sub_t;

typedef struct deferred {          /* a delivery told on a later turn */
    struct deferred *next;
    cp2p_pubsub_t *ps;
    char *topic;
    uint8_t *data, *id;
    size_t len, id_len;
    cp2p_peer_id_t from, received_from;
    int has_from;
    uint64_t seqno;
} deferred_t;

struct cp2p_pubsub {
    cp2p_host_t *h;
    uv_loop_t *loop;
    ps_router_t *r;
    const cp2p_pubsub_config_t *cfg;
    const char *protocols[4];
    size_t n_protocols;
    link_t *links;
    topic_sub_t *subs;
    deferred_t *deferred;
    cp2p_pubsub_peer_fn peer_fn;
    void *peer_arg;
    uv_timer_t heartbeat;
    int in_api, closing, handles;
    size_t px_dials;
    uint64_t dropped;
    void (*done)(void *);
    void *done_arg;
};

static uint64_t now_ms(cp2p_pubsub_t *ps)
{
    return uv_now(ps->loop);
}

static topic_sub_t *sub_of(cp2p_pubsub_t *ps, const char *topic)
{
    for (topic_sub_t *s = ps->subs; s; s = s->next)
        if (!strcmp(s->name, topic))
            return s;
    return NULL;
}

static link_t *link_of(cp2p_pubsub_t *ps, const cp2p_peer_id_t *peer)
{
    for (link_t *l = ps->links; l; l = l->next)
        if (!l->gone && cp2p_peer_id_equal(&l->peer, peer))
            return l;
    return NULL;
}

static ps_proto_t proto_of(const char *id)
{
    if (!strcmp(id, CP2P_GOSSIPSUB_PROTOCOL_1_2))
        return PS_MESHSUB12;
    if (!strcmp(id, CP2P_GOSSIPSUB_PROTOCOL_1_1))
        return PS_MESHSUB11;
    if (!strcmp(id, CP2P_GOSSIPSUB_PROTOCOL_1_0))
        return PS_MESHSUB10;
    return PS_FLOODSUB;
}

static void finish_close(cp2p_pubsub_t *ps);

/* A link goes once it is dropped and owed no callback; during a close, the
 * last one to go ends it. */
static void link_maybe_free(link_t *l)
{
    if (!l->gone || l->cbs)
        return;
    cp2p_pubsub_t *ps = l->ps;
    for (link_t **lp = &ps->links; *lp; lp = &(*lp)->next)
        if (*lp == l) {
            *lp = l->next;
            break;
        }
    cp2p_buf_free(&l->early);
    cp2p_buf_free(&l->rx);
    free(l);
    if (ps->closing && !ps->r)
        finish_close(ps);
}

/* Forget the peer: its streams go, the router drops it. */
static void link_drop(link_t *l, int reset)
{
    if (l->gone)
        return;
    cp2p_pubsub_t *ps = l->ps;
    l->gone = 1;
    if (l->added && ps->r)
        ps_router_remove_peer(ps->r, &l->peer, now_ms(ps));
    cp2p_stream_t *ss[2] = {l->in, l->out};
    l->in = l->out = NULL;
    for (int i = 0; i < 2; i++) {
        if (!ss[i])
            continue;
        if (i == 0 && ss[i]) {
            cp2p_stream_charge(ss[i], -(long)l->charged);
            l->charged = 0;
        }
        if (reset)
            cp2p_stream_reset(ss[i]);
        else
            cp2p_stream_close_write(ss[i]);
        cp2p_stream_unref(ss[i]);
    }
    link_maybe_free(l);
}

static link_t *link_get(cp2p_pubsub_t *ps, const cp2p_peer_id_t *peer)
{
    link_t *l = link_of(ps, peer);
    if (l || !(l = calloc(1, sizeof *l)))
        return l;
    l->ps = ps;
    l->peer = *peer;
    l->next = ps->links;
    ps->links = l;
    return l;
}

/* The router knows the peer once we have a stream with it either way. */
static void link_add(link_t *l, const char *protocol, cp2p_stream_t *s)
{
    if (l->added)
        return;
    cp2p_conn_t *c = cp2p_stream_conn(s);
    int outbound = c && !cp2p_conn_is_inbound(c);
    int rc = ps_router_add_peer(l->ps->r, &l->peer, proto_of(protocol), outbound, now_ms(l->ps));
    if (rc == 0 || rc == CP2P_EEXIST) {
        l->added = 1;
        /* P6 (IP colocation) counts peers by the IP they connect from. */
        const cp2p_multiaddr_t *ra = c ? cp2p_conn_remote_addr(c) : NULL;
        cp2p_multiaddr_component_t ip;
        if (ra && (cp2p_multiaddr_get(ra, CP2P_MA_IP4, &ip) == 0 ||
                   cp2p_multiaddr_get(ra, CP2P_MA_IP6, &ip) == 0)) {
            uint64_t h = 1469598103934665603ull; /* FNV-1a: a key, not a defence */
            for (size_t i = 0; i < ip.value_len; i++)
                h = (h ^ ip.value[i]) * 1099511628211ull;
            ps_router_set_peer_ip(l->ps->r, &l->peer, h ? h : 1);
        }
        return;
    }
    cp2p_log_info(LOG, "refused a pubsub peer: %s", cp2p_strerror(rc));
    link_drop(l, 1);
}

typedef struct pending_write {
    link_t *l;
    size_t n;
} pending_write_t;

static void written(cp2p_stream_t *s, int status, void *arg)
{
    (void)s;
    pending_write_t *w = arg;
    link_t *l = w->l;
    l->queued -= w->n;
    free(w);
    l->cbs--;
    if (!l->gone && status < 0)
        link_drop(l, 1);
    link_maybe_free(l);
}

static void fail_later(void *arg)
{
    link_t *l = arg;
    l->cbs--;
    if (!l->gone)
        link_drop(l, 1);
    link_maybe_free(l);
}

/* A write failed inside the router's call (a publish, an RPC being
 * handled): the peer goes on a later turn, so the router is not changed
 * under itself and no callback of ours runs inside an API call. */
static void link_fail(link_t *l)
{
    if (l->failing || l->gone)
        return;
    l->failing = 1;
    l->cbs++;
    if (cp2p_host_later(l->ps->h, fail_later, l) != 0)
        l->cbs--; /* the host is closing: its streams go anyway */
}

static void write_out(link_t *l, const uint8_t *p, size_t n)
{
    cp2p_pubsub_t *ps = l->ps;
    if (l->failing)
        return;
    if (l->queued + l->early.len + n > ps->cfg->max_queued) {
        /* It does not read what we send: drop, do not buffer without end. */
        ps->dropped++;
        return;
    }
    if (!l->out) {
        /* Our stream is being opened: a little waits for it, the rest is
         * dropped (a peer holding it open costs us at most this). */
        if (l->early.len + n > EARLY_MAX || cp2p_buf_append(&l->early, p, n) < 0)
            ps->dropped++;
        return;
    }
    long took = cp2p_stream_try_write(l->out, p, n);
    if (took < 0) {
        link_fail(l);
        return;
    }
    if ((size_t)took == n)
        return;
    /* The rest waits in the stream's queue; a write callback counts it out. */
    size_t rest = n - (size_t)took;
    pending_write_t *w = malloc(sizeof *w);
    int rc = w ? cp2p_stream_write(l->out, p + took, rest, written, w) : CP2P_ENOMEM;
    if (rc == 0) {
        *w = (pending_write_t){l, rest};
        l->cbs++;
        l->queued += rest;
        return;
    }
    free(w);
    if (rc == CP2P_EAGAIN || rc == CP2P_ENOMEM)
        ps->dropped++;
    else
        link_fail(l);
}

/* --- the router's callbacks --- */

static void io_send(void *arg, const cp2p_peer_id_t *peer, const uint8_t *p, size_t n)
{
    link_t *l = link_of(arg, peer);
    if (l)
        write_out(l, p, n);
}

static void run_deferred(void *arg)
{
    deferred_t *d = arg;
    cp2p_pubsub_t *ps = d->ps;
    for (deferred_t **dp = &ps->deferred; *dp; dp = &(*dp)->next)
        if (*dp == d) {
            *dp = d->next;
            break;
        }
    topic_sub_t *s = ps->closing ? NULL : sub_of(ps, d->topic);
    if (s && s->fn) {
        cp2p_pubsub_message_t m = {d->topic, d->data, d->len, d->has_from ? &d->from : NULL,
                                   d->seqno, d->id, d->id_len, &d->received_from};
        s->fn(ps, &m, s->arg);
    }
    free(d->topic);
    free(d->data);
    free(d->id);
    free(d);
}

static void io_deliver(void *arg, const cp2p_pubsub_message_t *m)
{
    cp2p_pubsub_t *ps = arg;
    topic_sub_t *s = sub_of(ps, m->topic);
    if (!s || !s->fn)
        return;
    if (!ps->in_api) {
        s->fn(ps, m, s->arg);
        return;
    }
    deferred_t *d = calloc(1, sizeof *d);
    if (!d || !(d->topic = strdup(m->topic)) || !(d->data = malloc(m->len ? m->len : 1)) ||
        !(d->id = malloc(m->id_len ? m->id_len : 1))) {
        if (d) {
            free(d->topic);
            free(d->data);
        }
        free(d);
        return;
    }
    d->ps = ps;
    memcpy(d->data, m->data, m->len);
    d->len = m->len;
    memcpy(d->id, m->id, m->id_len);
    d->id_len = m->id_len;
    if (m->from) {
        d->from = *m->from;
        d->has_from = 1;
    }
    d->received_from = *m->received_from;
    d->seqno = m->seqno;
    if (cp2p_host_later(ps->h, run_deferred, d) != 0) {
        free(d->topic);
        free(d->data);
        free(d->id);
        free(d);
        return;
    }
    d->next = ps->deferred;
    ps->deferred = d;
}

static cp2p_pubsub_result_t io_validate(void *arg, const cp2p_pubsub_message_t *m, uint64_t token)
{
    cp2p_pubsub_t *ps = arg;
    topic_sub_t *s = sub_of(ps, m->topic);
    if (!s || !s->vfn)
        return CP2P_PUBSUB_ACCEPT;
    cp2p_pubsub_result_t v = s->vfn(ps, m, token, s->varg);
    return v <= CP2P_PUBSUB_PENDING ? v : CP2P_PUBSUB_REJECT;
}

static void io_peer_topic(void *arg, const cp2p_peer_id_t *peer, const char *topic, int subscribed)
{
    cp2p_pubsub_t *ps = arg;
    if (ps->peer_fn && !ps->closing)
        ps->peer_fn(ps, peer, topic, subscribed, ps->peer_arg);
}

static void px_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    (void)h, (void)status, (void)peer;
    cp2p_pubsub_t *ps = arg;
    ps->px_dials--;
    if (ps->closing && !ps->r)
        finish_close(ps);
}

/* Peer exchange: the signed record's addresses (checked by its signature)
 * go to the peerstore as a third party's word, and we dial. */
static void io_px(void *arg, const cp2p_peer_id_t *peer, const uint8_t *record, size_t n)
{
    cp2p_pubsub_t *ps = arg;
    if (ps->closing || ps->px_dials >= MAX_PX_DIALS || cp2p_host_conn_to(ps->h, peer))
        return;
    if (n) {
        cp2p_peer_record_t rec = {0};
        if (cp2p_peer_record_open(record, n, &rec, NULL) == 0 &&
            cp2p_peer_id_equal(&rec.peer_id, peer)) {
            cp2p_multiaddr_t addrs[CP2P_PEER_RECORD_MAX_ADDRS];
            size_t na = 0;
            for (size_t i = 0; i < rec.n_addrs; i++)
                if (cp2p_multiaddr_from_bytes(rec.addrs[i], rec.addr_lens[i], &addrs[na]) == 0)
                    na++;
            cp2p_peerstore_add_addrs_from(cp2p_host_peerstore(ps->h), peer, addrs, na,
                                          CP2P_TTL_TEMP, now_ms(ps), CP2P_ADDR_THIRD_PARTY);
            for (size_t i = 0; i < na; i++)
                cp2p_multiaddr_free(&addrs[i]);
        }
        cp2p_peer_record_clear(&rec);
    }
    if (cp2p_host_connect_peer(ps->h, peer, px_connected, ps) == 0)
        ps->px_dials++;
}

/* --- streams --- */

static void out_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    (void)s, (void)p, (void)n;
    link_t *l = arg;
    /* Nothing comes on our stream; its end is the peer's going away. */
    if (status < 0 && !l->gone && l->out == s)
        link_drop(l, status != CP2P_ECLOSED);
}

static void opened(int status, cp2p_stream_t *s, void *arg)
{
    link_t *l = arg;
    l->cbs--;
    l->opening = 0;
    if (l->gone || l->ps->closing) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        link_maybe_free(l);
        return;
    }
    if (status < 0) {
        /* It does not take our stream (or went): a peer we cannot answer
         * is no pubsub peer, whatever it opened to us (and what we held
         * for it goes with it). */
        link_drop(l, 1);
        return;
    }
    l->out = s;
    link_add(l, cp2p_stream_protocol(s), s);
    if (l->gone)
        return;
    cp2p_stream_read_start(s, out_read, l);
    if (l->early.len) {
        cp2p_buf_t b = l->early;
        memset(&l->early, 0, sizeof l->early);
        write_out(l, b.data, b.len);
        cp2p_buf_free(&b);
    }
}

static void open_out(cp2p_pubsub_t *ps, const cp2p_peer_id_t *peer)
{
    link_t *l = link_get(ps, peer);
    if (!l || l->out || l->opening)
        return;
    l->opening = 1;
    l->cbs++;
    if (cp2p_host_new_stream(ps->h, peer, ps->protocols, ps->n_protocols, opened, l) != 0) {
        l->opening = 0;
        l->cbs--;
        if (!l->in)
            link_drop(l, 1);
    }
}

static void in_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    link_t *l = arg;
    cp2p_pubsub_t *ps = l->ps;
    if (l->gone || l->in != s)
        return;
    if (status < 0) {
        /* Its side is done: with no inbound stream the peer is gone. */
        link_drop(l, status != CP2P_ECLOSED);
        return;
    }
    if (cp2p_buf_append(&l->rx, p, n) < 0) {
        link_drop(l, 1);
        return;
    }
    size_t max = (size_t)ps->cfg->max_message_size + 64 * 1024;
    size_t off = 0;
    while (!l->gone) {
        ps_bytes_t body;
        size_t used;
        int rc = ps_rpc_frame(l->rx.data + off, l->rx.len - off, max, &body, &used);
        if (rc == 0)
            break;
        if (rc < 0) {
            cp2p_log_info(LOG, "dropping a pubsub peer: %s RPC",
                          rc == CP2P_EOVERFLOW ? "an oversized" : "a malformed");
            link_drop(l, 1);
            return;
        }
        off += used;
        rc = ps_router_rpc(ps->r, &l->peer, body.p, body.n, now_ms(ps));
        if (rc < 0 && rc != CP2P_ENOTFOUND)
            cp2p_log_debug(LOG, "a bad RPC: %s", cp2p_strerror(rc));
    }
    if (l->gone)
        return;
    cp2p_buf_consume(&l->rx, off);
    /* What waits for the rest of a frame is held for the peer: counted. */
    long delta = (long)l->rx.len - (long)l->charged;
    if (delta && cp2p_stream_charge(s, delta) == CP2P_ELIMIT) {
        l->charged = l->rx.len;
        link_drop(l, 1);
        return;
    }
    l->charged = l->rx.len;
    if (!l->rx.len && l->rx.cap > 64 * 1024)
        cp2p_buf_free(&l->rx);
}

static void on_stream(cp2p_stream_t *s, void *arg)
{
    cp2p_pubsub_t *ps = arg;
    const cp2p_peer_id_t *peer = cp2p_stream_peer(s);
    link_t *l = ps->closing ? NULL : link_get(ps, peer);
    if (!l || l->in) {
        /* One inbound stream per peer, as go-libp2p-pubsub keeps it. */
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    l->in = s;
    link_add(l, cp2p_stream_protocol(s), s);
    if (l->gone)
        return;
    if (cp2p_stream_read_start(s, in_read, l) < 0) {
        link_drop(l, 1);
        return;
    }
    open_out(ps, peer);
}

static int speaks_pubsub(cp2p_pubsub_t *ps, const cp2p_peer_id_t *peer)
{
    cp2p_peerstore_t *st = cp2p_host_peerstore(ps->h);
    for (size_t i = 0; i < ps->n_protocols; i++)
        if (cp2p_peerstore_supports(st, peer, ps->protocols[i]))
            return 1;
    return 0;
}

static void on_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_pubsub_t *ps = arg;
    if (ps->closing || !ev->peer)
        return;
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED) {
        if (speaks_pubsub(ps, ev->peer))
            open_out(ps, ev->peer);
    } else if (ev->type == CP2P_EVENT_DISCONNECTED) {
        link_t *l = link_of(ps, ev->peer);
        if (l && !cp2p_host_conn_to(ps->h, ev->peer))
            link_drop(l, 1);
    }
}

static void on_heartbeat(uv_timer_t *t)
{
    cp2p_pubsub_t *ps = t->data;
    ps_router_heartbeat(ps->r, now_ms(ps));
}

/* --- the API --- */

int cp2p_pubsub_new(cp2p_host_t *h, const cp2p_pubsub_config_t *cfg, cp2p_pubsub_t **out)
{
    if (!h || !out)
        return CP2P_EINVAL;
    cp2p_pubsub_t *ps = calloc(1, sizeof *ps);
    if (!ps)
        return CP2P_ENOMEM;
    ps->h = h;
    ps->loop = cp2p_host_loop(h);
    ps_router_io_t io = {ps, io_send, io_deliver, io_validate, io_peer_topic, io_px};
    int rc = ps_router_new(cfg, cp2p_host_identity(h), &io, uv_now(ps->loop), &ps->r);
    if (rc) {
        free(ps);
        return rc;
    }
    ps->cfg = ps_router_config(ps->r);
    if (ps->cfg->router == CP2P_PUBSUB_FLOODSUB) {
        ps->protocols[ps->n_protocols++] = CP2P_FLOODSUB_PROTOCOL;
    } else {
        ps->protocols[ps->n_protocols++] = CP2P_GOSSIPSUB_PROTOCOL_1_2;
        ps->protocols[ps->n_protocols++] = CP2P_GOSSIPSUB_PROTOCOL_1_1;
        ps->protocols[ps->n_protocols++] = CP2P_GOSSIPSUB_PROTOCOL_1_0;
        ps->protocols[ps->n_protocols++] = CP2P_FLOODSUB_PROTOCOL;
    }
    for (size_t i = 0; i < ps->n_protocols && !rc; i++)
        rc = cp2p_host_set_handler(h, ps->protocols[i], on_stream, ps);
    if (!rc)
        rc = cp2p_host_subscribe(h, on_event, ps);
    if (rc) {
        for (size_t i = 0; i < ps->n_protocols; i++)
            cp2p_host_remove_handler(h, ps->protocols[i]);
        ps_router_free(ps->r);
        free(ps);
        return rc;
    }
    uv_timer_init(ps->loop, &ps->heartbeat);
    ps->heartbeat.data = ps;
    ps->handles = 1;
    if (ps->cfg->router == CP2P_PUBSUB_GOSSIPSUB)
        uv_timer_start(&ps->heartbeat, on_heartbeat, ps->cfg->gossipsub.heartbeat_initial_delay_ms,
                       ps->cfg->gossipsub.heartbeat_ms);
    else /* floodsub: the seen cache and validators still expire */
        uv_timer_start(&ps->heartbeat, on_heartbeat, 1000, 1000);
    /* Peers connected before us. */
    cp2p_peer_id_t peers[256];
    size_t np = cp2p_peerstore_peers(cp2p_host_peerstore(h), peers, 256);
    for (size_t i = 0; i < np && i < 256; i++)
        if (cp2p_host_conn_to(h, &peers[i]) && speaks_pubsub(ps, &peers[i]))
            open_out(ps, &peers[i]);
    *out = ps;
    return 0;
}

static void finish_close(cp2p_pubsub_t *ps)
{
    if (ps->handles || ps->links || ps->px_dials)
        return;
    void (*done)(void *) = ps->done;
    void *arg = ps->done_arg;
    free(ps);
    if (done)
        done(arg);
}

static void heartbeat_closed(uv_handle_t *hd)
{
    cp2p_pubsub_t *ps = hd->data;
    ps->handles = 0;
    finish_close(ps);
}

static void close_later(void *arg)
{
    cp2p_pubsub_t *ps = arg;
    /* Leave every topic (PRUNEs and unsubscriptions go out), then drop. */
    uint64_t now = now_ms(ps);
    while (ps->subs) {
        topic_sub_t *s = ps->subs;
        ps->subs = s->next;
        ps_router_leave(ps->r, s->name, now);
        free(s->name);
        free(s);
    }
    for (link_t *l = ps->links, *nx; l; l = nx) {
        nx = l->next;
        link_drop(l, 0);
    }
    ps_router_free(ps->r);
    ps->r = NULL;
    uv_close((uv_handle_t *)&ps->heartbeat, heartbeat_closed);
}

void cp2p_pubsub_close(cp2p_pubsub_t *ps, void (*done)(void *arg), void *arg)
{
    if (!ps || ps->closing)
        return;
    ps->closing = 1;
    ps->done = done;
    ps->done_arg = arg;
    cp2p_host_unsubscribe(ps->h, on_event, ps);
    for (size_t i = 0; i < ps->n_protocols; i++)
        cp2p_host_remove_handler(ps->h, ps->protocols[i]);
    uv_timer_stop(&ps->heartbeat);
    if (ps->px_dials)
        cp2p_host_cancel(ps->h, ps);
    /* Deferred deliveries are dropped by run_deferred (closing is set); the
     * teardown runs after them, on a later turn. */
    if (cp2p_host_later(ps->h, close_later, ps) != 0)
        close_later(ps);
}

int cp2p_pubsub_join(cp2p_pubsub_t *ps, const char *topic, cp2p_pubsub_message_fn fn, void *arg)
{
    if (!ps || !topic || ps->closing)
        return CP2P_EINVAL;
    topic_sub_t *s = sub_of(ps, topic);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || !(s->name = strdup(topic))) {
            free(s);
            return CP2P_ENOMEM;
        }
        s->next = ps->subs;
        ps->subs = s;
    }
    s->fn = fn;
    s->arg = arg;
    ps->in_api = 1;
    int rc = ps_router_join(ps->r, topic, now_ms(ps));
    ps->in_api = 0;
    if (rc && !s->vfn) {
        ps->subs = s->next;
        free(s->name);
        free(s);
    }
    return rc;
}

int cp2p_pubsub_leave(cp2p_pubsub_t *ps, const char *topic)
{
    if (!ps || !topic || ps->closing)
        return CP2P_EINVAL;
    ps->in_api = 1;
    int rc = ps_router_leave(ps->r, topic, now_ms(ps));
    ps->in_api = 0;
    topic_sub_t *s = sub_of(ps, topic);
    if (s) {
        s->fn = NULL;
        if (!s->vfn)
            for (topic_sub_t **sp = &ps->subs; *sp; sp = &(*sp)->next)
                if (*sp == s) {
                    *sp = s->next;
                    free(s->name);
                    free(s);
                    break;
                }
    }
    return rc;
}

int cp2p_pubsub_publish(cp2p_pubsub_t *ps, const char *topic, const uint8_t *data, size_t len)
{
    if (!ps || !topic || ps->closing)
        return CP2P_EINVAL;
    ps->in_api = 1;
    int rc = ps_router_publish(ps->r, topic, data, len, now_ms(ps));
    ps->in_api = 0;
    return rc;
}

int cp2p_pubsub_set_validator(cp2p_pubsub_t *ps, const char *topic, cp2p_pubsub_validator_fn fn,
                              void *arg)
{
    if (!ps || !topic || ps->closing)
        return CP2P_EINVAL;
    topic_sub_t *s = sub_of(ps, topic);
    if (!s) {
        if (!fn)
            return 0;
        if (!(s = calloc(1, sizeof *s)) || !(s->name = strdup(topic))) {
            free(s);
            return CP2P_ENOMEM;
        }
        s->next = ps->subs;
        ps->subs = s;
    }
    s->vfn = fn;
    s->varg = arg;
    return 0;
}

int cp2p_pubsub_validated(cp2p_pubsub_t *ps, uint64_t token, cp2p_pubsub_result_t result)
{
    if (!ps || ps->closing || result > CP2P_PUBSUB_IGNORE)
        return CP2P_EINVAL;
    ps->in_api = 1;
    ps_router_validated(ps->r, token, result, now_ms(ps));
    ps->in_api = 0;
    return 0;
}

int cp2p_pubsub_set_peer_fn(cp2p_pubsub_t *ps, cp2p_pubsub_peer_fn fn, void *arg)
{
    if (!ps)
        return CP2P_EINVAL;
    ps->peer_fn = fn;
    ps->peer_arg = arg;
    return 0;
}

size_t cp2p_pubsub_topics(cp2p_pubsub_t *ps, const char **out, size_t cap)
{
    return ps && ps->r ? ps_router_topics(ps->r, out, cap) : 0;
}

size_t cp2p_pubsub_topic_peers(cp2p_pubsub_t *ps, const char *topic, cp2p_peer_id_t *out, size_t cap)
{
    return ps && ps->r ? ps_router_topic_peers(ps->r, topic, out, cap) : 0;
}

size_t cp2p_pubsub_mesh_peers(cp2p_pubsub_t *ps, const char *topic, cp2p_peer_id_t *out, size_t cap)
{
    return ps && ps->r && topic ? ps_router_mesh_peers(ps->r, topic, out, cap) : 0;
}

int cp2p_pubsub_peer_score(cp2p_pubsub_t *ps, const cp2p_peer_id_t *peer, double *out)
{
    if (!ps || !ps->r || !peer || !out)
        return CP2P_EINVAL;
    return ps_router_score(ps->r, peer, now_ms(ps), out);
}

void cp2p_pubsub_stats(const cp2p_pubsub_t *ps, cp2p_pubsub_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (ps && ps->r)
        ps_router_stats(ps->r, out, uv_now(ps->loop));
    if (ps)
        out->dropped_queue_full = ps->dropped;
}

void cp2p_pubsub_score_defaults(cp2p_pubsub_score_params_t *p, cp2p_pubsub_topic_score_t *topics,
                                const char *const *names, size_t n)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n; i++)
        topics[i] = (cp2p_pubsub_topic_score_t){
            .topic = names[i], .topic_weight = 1,
            .time_in_mesh_weight = 0.01, .time_in_mesh_quantum_ms = 1000, .time_in_mesh_cap = 1000,
            .first_deliveries_weight = 1, .first_deliveries_decay = 0.9, .first_deliveries_cap = 100,
            .mesh_deliveries_decay = 0.9, .mesh_failure_decay = 0.9,
            .invalid_weight = -100, .invalid_decay = 0.99,
        };
    p->topics = topics;
    p->n_topics = n;
    p->behaviour_penalty_weight = -10;
    p->behaviour_penalty_decay = 0.99;
    p->decay_interval_ms = 1000;
    p->decay_to_zero = 0.01;
    p->retain_score_ms = 3600 * 1000;
    p->gossip_threshold = -10;
    p->publish_threshold = -50;
    p->graylist_threshold = -80;
    p->accept_px_threshold = 10;
    p->opportunistic_graft_threshold = 3;
}

static size_t collect(const void *sub, cp2p_metric_t *out, size_t cap)
{
    const cp2p_pubsub_t *ps = sub;
    cp2p_pubsub_stats_t s;
    cp2p_pubsub_stats(ps, &s);
    size_t peers = 0, mesh = 0, topics = 0;
    for (const link_t *l = ps->links; l; l = l->next)
        peers += l->added && !l->gone;
    if (ps->r) {
        const char *names[64];
        size_t n = ps_router_topics(ps->r, names, 64);
        topics = n;
        for (size_t i = 0; i < n && i < 64; i++)
            mesh += ps_router_mesh_peers(ps->r, names[i], NULL, 0);
    }
    const cp2p_metric_t all[] = {
        {"cp2p_pubsub_peers", "gauge", "Peers we have pubsub streams with.", peers},
        {"cp2p_pubsub_topics", "gauge", "Topics joined.", topics},
        {"cp2p_pubsub_mesh_peers", "gauge", "Mesh links, summed over the joined topics (the first 64).", mesh},
        {"cp2p_pubsub_negative_score_peers", "gauge", "Peers whose score is below 0 (scoring on).", s.negative_peers},
        {"cp2p_pubsub_messages_in_total", "counter", "Pubsub messages received.", s.msgs_in},
        {"cp2p_pubsub_messages_out_total", "counter", "Pubsub messages sent to peers.", s.msgs_out},
        {"cp2p_pubsub_published_total", "counter", "Messages we published.", s.published},
        {"cp2p_pubsub_delivered_total", "counter", "Messages delivered to the application.", s.delivered},
        {"cp2p_pubsub_duplicates_total", "counter", "Messages received again.", s.duplicates},
        {"cp2p_pubsub_rejected_total", "counter", "Messages rejected (bad signature, validator).", s.rejected},
        {"cp2p_pubsub_ignored_total", "counter", "Messages ignored.", s.ignored},
        {"cp2p_pubsub_invalid_rpcs_total", "counter", "Malformed or oversized RPCs.", s.invalid_rpcs},
        {"cp2p_pubsub_dropped_total", "counter", "RPCs dropped because the peer did not read.", s.dropped_queue_full},
        {"cp2p_pubsub_graylisted_rpcs_total", "counter", "RPCs ignored from peers scored below the graylist threshold.", s.graylisted_rpcs},
        {"cp2p_pubsub_graylisted_peers", "gauge", "Peers scored below the graylist threshold now.", s.graylisted_peers},
    };
    size_t n = sizeof all / sizeof *all < cap ? sizeof all / sizeof *all : cap;
    memcpy(out, all, n * sizeof *out);
    return n;
}

cp2p_metrics_source_t cp2p_pubsub_metrics_source(const cp2p_pubsub_t *ps)
{
    return (cp2p_metrics_source_t){ps ? collect : NULL, ps};
}
