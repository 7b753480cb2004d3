/* Circuit relay v2, the relay's side (libp2p specs relay/circuit-v2.md,
 * "Hop Protocol", "Stop Protocol"): reservations with expiry and vouchers,
 * circuits spliced between a hop and a stop stream with backpressure both
 * ways, the Limit (duration, bytes per direction) enforced, and every count
 * bounded by the config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/relay.h"
#include "protocols/relay_msg.h"

#define TICK_MS 250
#define RESERVATION_TAG "relay-reservation"
#define RESERVATION_TAG_WEIGHT 10
/* Hop streams reading their request or waiting on the target's answer. */
#define MAX_PENDING_PER_LIMIT 2

typedef struct rsvp {
    struct rsvp *next;
    cp2p_peer_id_t peer;
    uint8_t ip[16];
    size_t iplen;
    uint64_t expire; /* unix seconds */
} rsvp_t;

typedef enum { HOP_READ, HOP_STOP_OPENING, HOP_STOP_READ, HOP_SPLICE } hop_state_t;

typedef struct hop hop_t;

/* One direction of a circuit: what `from` sends goes to `to`. */
typedef struct dir {
    hop_t *hop;
    cp2p_stream_t *from, *to;
    uint64_t sent;
    long inflight; /* bytes handed to `to` and charged to `from` */
    int eof;
} dir_t;

struct hop {
    struct hop *prev, *next;
    cp2p_relay_t *r;
    hop_state_t state;
    cp2p_stream_t *s;    /* the hop stream from the source */
    cp2p_stream_t *stop; /* the stop stream to the target */
    cp2p_buf_t in, stop_in;
    long charged_in, charged_stop;
    cp2p_peer_id_t src, dst;
    uint64_t deadline_ms; /* the handshake's, then the circuit's (0: none) */
    int counted;          /* holds a circuit slot */
    int pending;          /* callbacks still owed to this hop */
    int dead;
    dir_t d[2];           /* 0: source to target, 1: target to source */
};

struct cp2p_relay {
    cp2p_host_t *h;
    cp2p_relay_config_t cfg;
    rsvp_t *rsvps;
    size_t nrsvps;
    hop_t *hops;
    size_t npending, ncircuits;
    uv_timer_t tick;
    cp2p_relay_stats_t stats;
    int closing;
    void (*done)(void *arg);
    void *done_arg;
};

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static size_t conn_ip(cp2p_conn_t *c, uint8_t ip[16])
{
    cp2p_multiaddr_component_t comp;
    const cp2p_multiaddr_t *ma = cp2p_conn_remote_addr(c);
    if ((cp2p_multiaddr_get(ma, CP2P_MA_IP4, &comp) && cp2p_multiaddr_get(ma, CP2P_MA_IP6, &comp)) ||
        comp.value_len > 16)
        return 0;
    memcpy(ip, comp.value, comp.value_len);
    return comp.value_len;
}

/* ---- reservations ---- */

static void rsvp_drop(cp2p_relay_t *r, rsvp_t **pp)
{
    rsvp_t *v = *pp;
    *pp = v->next;
    r->nrsvps--;
    cp2p_host_untag_peer(r->h, &v->peer, RESERVATION_TAG);
    free(v);
}

/* Expired reservations, and those whose peer is no longer connected, go. */
static void rsvp_purge(cp2p_relay_t *r)
{
    uint64_t now = now_s();
    for (rsvp_t **pp = &r->rsvps; *pp;) {
        if ((*pp)->expire <= now || !cp2p_host_conn_to(r->h, &(*pp)->peer))
            rsvp_drop(r, pp);
        else
            pp = &(*pp)->next;
    }
}

static rsvp_t **rsvp_find(cp2p_relay_t *r, const cp2p_peer_id_t *peer)
{
    rsvp_t **pp = &r->rsvps;
    while (*pp && !cp2p_peer_id_equal(&(*pp)->peer, peer))
        pp = &(*pp)->next;
    return pp;
}

/* ---- hops ---- */

static void maybe_free(hop_t *hop);

static void hop_unlink(hop_t *hop)
{
    cp2p_relay_t *r = hop->r;
    if (!r)
        return;
    if (hop->prev)
        hop->prev->next = hop->next;
    else
        r->hops = hop->next;
    if (hop->next)
        hop->next->prev = hop->prev;
    hop->prev = hop->next = NULL;
    if (hop->state == HOP_SPLICE) {
        if (hop->counted)
            r->ncircuits--;
    } else {
        r->npending--;
        if (hop->counted)
            r->ncircuits--;
    }
    hop->counted = 0;
    hop->r = NULL;
}

static void drop_stream(cp2p_stream_t **sp, long *charged, int reset)
{
    cp2p_stream_t *s = *sp;
    if (!s)
        return;
    *sp = NULL;
    if (*charged)
        cp2p_stream_charge(s, -*charged);
    *charged = 0;
    cp2p_stream_read_stop(s);
    if (reset)
        cp2p_stream_reset(s);
    cp2p_stream_unref(s);
}

/* End the hop: both streams are reset unless both sides ended cleanly. */
static void hop_end(hop_t *hop, int reset)
{
    if (hop->dead)
        return;
    cp2p_log_debug("relay", "hop ends in state %d%s (sent %llu and %llu)", (int)hop->state,
                   reset ? " with a reset" : "", (unsigned long long)hop->d[0].sent,
                   (unsigned long long)hop->d[1].sent);
    hop->dead = 1;
    hop_unlink(hop);
    for (int i = 0; i < 2; i++)
        if (hop->d[i].inflight && hop->d[i].from) {
            cp2p_stream_charge(hop->d[i].from, -hop->d[i].inflight);
            hop->d[i].inflight = 0;
        }
    drop_stream(&hop->s, &hop->charged_in, reset);
    drop_stream(&hop->stop, &hop->charged_stop, reset);
    maybe_free(hop);
}

static void maybe_free(hop_t *hop)
{
    if (!hop->dead || hop->pending)
        return;
    cp2p_buf_free(&hop->in);
    cp2p_buf_free(&hop->stop_in);
    free(hop);
}

static void drain(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    if (status < 0)
        cp2p_stream_unref(s);
}

/* Answer with a status and let the stream go once the remote closes. */
static void hop_reply_end(hop_t *hop, int status)
{
    relay_msg_t m = {.type = HOP_STATUS, .status = status};
    cp2p_buf_t b = {0};
    cp2p_stream_t *s = hop->s;
    if (s && relay_msg_encode(0, &m, &b) == 0 && cp2p_stream_write(s, b.data, b.len, NULL, NULL) == 0 &&
        cp2p_stream_close_write(s) == 0) {
        cp2p_stream_charge(s, -hop->charged_in);
        hop->charged_in = 0;
        hop->s = NULL;
        cp2p_stream_read_start(s, drain, NULL); /* drain owns the reference now */
    }
    cp2p_buf_free(&b);
    hop_end(hop, 1);
}

static void fill_limit(const cp2p_relay_t *r, relay_msg_t *m)
{
    if (r->cfg.no_limit)
        return;
    m->has_limit = 1;
    m->duration = r->cfg.limit_duration_s;
    m->data = r->cfg.limit_data;
}

static void do_reserve(hop_t *hop)
{
    cp2p_relay_t *r = hop->r;
    cp2p_conn_t *c = cp2p_stream_conn(hop->s);
    if (cp2p_conn_is_relayed(c)) {
        r->stats.reservations_refused++;
        hop_reply_end(hop, RELAY_PERMISSION_DENIED);
        return;
    }
    rsvp_purge(r);
    uint8_t ip[16];
    size_t iplen = conn_ip(c, ip);
    rsvp_t **pp = rsvp_find(r, &hop->src), *v = *pp;
    if (!v) {
        size_t same_ip = 0;
        for (rsvp_t *o = r->rsvps; o; o = o->next)
            same_ip += o->iplen == iplen && !memcmp(o->ip, ip, iplen);
        const char *why = r->nrsvps >= r->cfg.max_reservations ? "reservations"
                          : same_ip >= r->cfg.max_reservations_per_ip ? "reservations from its IP"
                                                                       : NULL;
        if (!why && !(v = calloc(1, sizeof *v)))
            why = "memory";
        if (why) {
            r->stats.reservations_refused++;
            cp2p_log_write_key(CP2P_LOG_INFO, "relay", 1, "reservation refused: %s full (%zu held)",
                               why, r->nrsvps);
            hop_reply_end(hop, RELAY_RESERVATION_REFUSED);
            return;
        }
        v->peer = hop->src;
        v->next = r->rsvps;
        r->rsvps = v;
        r->nrsvps++;
        cp2p_host_tag_peer(r->h, &v->peer, RESERVATION_TAG, RESERVATION_TAG_WEIGHT);
    }
    memcpy(v->ip, ip, iplen);
    v->iplen = iplen;
    v->expire = now_s() + r->cfg.reservation_ttl_s;
    r->stats.reservations_accepted++;

    relay_msg_t m = {.type = HOP_STATUS, .status = RELAY_OK, .has_reservation = 1,
                     .expire = v->expire};
    fill_limit(r, &m);
    cp2p_multiaddr_t *addrs = NULL, me = {0};
    size_t n = 0;
    cp2p_buf_t b = {0}, voucher = {0};
    const cp2p_peer_id_t *self = cp2p_host_peer_id(r->h);
    char id[CP2P_PEER_ID_STRMAX], txt[CP2P_PEER_ID_STRMAX + 8];
    cp2p_peer_id_to_string(self, id, sizeof id);
    snprintf(txt, sizeof txt, "/p2p/%s", id);
    if (cp2p_host_addrs(r->h, &addrs, &n) == 0 && cp2p_multiaddr_parse(txt, &me) == 0) {
        cp2p_multiaddr_component_t comp;
        for (size_t i = 0; i < n && m.n_addrs < RELAY_MSG_MAX_ADDRS; i++)
            if (cp2p_multiaddr_get(&addrs[i], CP2P_MA_P2P_CIRCUIT, &comp) != 0 &&
                cp2p_multiaddr_encapsulate(&addrs[i], &me, &m.addrs[m.n_addrs]) == 0)
                m.n_addrs++;
    }
    if (relay_voucher_seal(cp2p_host_identity(r->h), self, &hop->src, v->expire, &voucher) == 0) {
        m.voucher = voucher.data;
        m.voucher_len = voucher.len;
    }
    int rc = relay_msg_encode(0, &m, &b);
    m.voucher = NULL;
    cp2p_buf_free(&voucher);
    cp2p_multiaddr_array_free(addrs, n);
    cp2p_multiaddr_free(&me);
    relay_msg_clear(&m);
    cp2p_stream_t *s = hop->s;
    if (!rc)
        rc = cp2p_stream_write(s, b.data, b.len, NULL, NULL);
    cp2p_buf_free(&b);
    if (!rc && cp2p_stream_close_write(s) == 0) {
        cp2p_stream_charge(s, -hop->charged_in);
        hop->charged_in = 0;
        hop->s = NULL;
        cp2p_stream_read_start(s, drain, NULL);
    }
    if (cp2p_log_enabled(CP2P_LOG_DEBUG)) {
        char who[CP2P_PEER_ID_STRMAX];
        cp2p_peer_id_to_string(&hop->src, who, sizeof who);
        cp2p_log_debug("relay", "reservation for %s until %llu (%zu held)", who,
                       (unsigned long long)v->expire, r->nrsvps);
    }
    hop_end(hop, rc != 0);
}

/* ---- circuits ---- */

static void splice_start(hop_t *hop);
static void dir_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);

static void dir_written(cp2p_stream_t *s, int status, void *arg)
{
    dir_t *d = arg;
    hop_t *hop = d->hop;
    hop->pending--;
    if (hop->dead) {
        maybe_free(hop);
        return;
    }
    if (d->inflight) {
        cp2p_stream_charge(d->from, -d->inflight);
        d->inflight = 0;
    }
    cp2p_relay_t *r = hop->r;
    if (status < 0) {
        hop_end(hop, 1);
        return;
    }
    if (!r->cfg.no_limit && r->cfg.limit_data && d->sent >= r->cfg.limit_data) {
        r->stats.circuits_limited++;
        cp2p_log_debug("relay", "circuit reset: its data limit of %llu bytes is reached",
                       (unsigned long long)r->cfg.limit_data);
        hop_end(hop, 1);
        return;
    }
    if (!d->eof && cp2p_stream_read_start(d->from, dir_read, d) < 0)
        hop_end(hop, 1);
}

/* Forward p[0..n) from d->from to d->to, up to the data limit; reading
 * stops until `to` took it (a side that does not read stops the other). */
static int dir_forward(dir_t *d, const uint8_t *p, size_t n)
{
    hop_t *hop = d->hop;
    cp2p_relay_t *r = hop->r;
    if (!r->cfg.no_limit && r->cfg.limit_data) {
        uint64_t left = r->cfg.limit_data - (d->sent < r->cfg.limit_data ? d->sent : r->cfg.limit_data);
        if (n > left)
            n = (size_t)left;
    }
    if (!n)
        return 0;
    int rc = cp2p_stream_write(d->to, p, n, dir_written, d);
    if (rc < 0)
        return rc;
    hop->pending++;
    d->sent += n;
    r->stats.bytes_relayed += n;
    d->inflight = (long)n;
    cp2p_stream_read_stop(d->from);
    /* The copy the write holds is what the source made us hold. */
    if (cp2p_stream_charge(d->from, (long)n) < 0)
        return CP2P_ELIMIT;
    return 0;
}

static void dir_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    dir_t *d = arg;
    hop_t *hop = d->hop;
    if (hop->dead)
        return;
    if (status == 0) {
        if (dir_forward(d, p, n) < 0)
            hop_end(hop, 1);
        return;
    }
    if (status != CP2P_ECLOSED) {
        hop_end(hop, 1);
        return;
    }
    d->eof = 1;
    cp2p_stream_close_write(d->to);
    if (hop->d[0].eof && hop->d[1].eof)
        hop_end(hop, 0);
}

static void splice_start(hop_t *hop)
{
    cp2p_relay_t *r = hop->r;
    r->npending--;
    hop->state = HOP_SPLICE;
    hop->deadline_ms = r->cfg.no_limit || !r->cfg.limit_duration_s
                           ? 0
                           : uv_now(cp2p_host_loop(r->h)) + (uint64_t)r->cfg.limit_duration_s * 1000;
    r->stats.circuits_opened++;
    hop->d[0] = (dir_t){hop, hop->s, hop->stop, 0, 0, 0};
    hop->d[1] = (dir_t){hop, hop->stop, hop->s, 0, 0, 0};
    /* What either side sent after its message belongs to the circuit. */
    cp2p_stream_charge(hop->s, -hop->charged_in);
    cp2p_stream_charge(hop->stop, -hop->charged_stop);
    hop->charged_in = hop->charged_stop = 0;
    int rc = 0;
    if (hop->in.len)
        rc = dir_forward(&hop->d[0], hop->in.data, hop->in.len);
    if (!rc && hop->stop_in.len)
        rc = dir_forward(&hop->d[1], hop->stop_in.data, hop->stop_in.len);
    cp2p_buf_free(&hop->in);
    cp2p_buf_free(&hop->stop_in);
    for (int i = 0; !rc && i < 2; i++)
        if (!hop->d[i].inflight)
            rc = cp2p_stream_read_start(hop->d[i].from, dir_read, &hop->d[i]);
    if (rc < 0)
        hop_end(hop, 1);
}

static void stop_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);

static void refuse_circuit(hop_t *hop, int status, const char *why)
{
    hop->r->stats.circuits_refused++;
    cp2p_log_write_key(CP2P_LOG_INFO, "relay", 2, "circuit refused: %s", why);
    hop_reply_end(hop, status);
}

static void stop_opened(int status, cp2p_stream_t *s, void *arg)
{
    hop_t *hop = arg;
    hop->pending--;
    if (hop->dead) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        maybe_free(hop);
        return;
    }
    if (status < 0) {
        refuse_circuit(hop, RELAY_CONNECTION_FAILED, "cannot open a stop stream to the target");
        return;
    }
    hop->stop = s;
    hop->state = HOP_STOP_READ;
    relay_msg_t m = {.type = STOP_CONNECT, .has_peer = 1, .peer = hop->src};
    fill_limit(hop->r, &m);
    cp2p_buf_t b = {0};
    int rc = relay_msg_encode(1, &m, &b);
    if (!rc)
        rc = cp2p_stream_write(s, b.data, b.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_read_start(s, stop_read, hop);
    cp2p_buf_free(&b);
    if (rc < 0)
        refuse_circuit(hop, RELAY_CONNECTION_FAILED, "cannot write to the target");
}

/* Append to a hop's input until one message is there: 1 with it in *m and
 * the rest left in buf, 0 for more, <0 on a bad message. */
static int take_message(cp2p_stream_t *s, cp2p_buf_t *buf, long *charged, int stop,
                        const uint8_t *p, size_t n, relay_msg_t *m)
{
    if (n > RELAY_MSG_MAX + 16 + 64 * 1024 - buf->len || cp2p_buf_append(buf, p, n) < 0)
        return CP2P_EOVERFLOW;
    if (cp2p_stream_charge(s, (long)n) < 0) {
        *charged += (long)n;
        return CP2P_ELIMIT;
    }
    *charged += (long)n;
    size_t hdr, len;
    int rc = relay_msg_frame(buf->data, buf->len, &hdr, &len);
    if (rc <= 0)
        return rc;
    rc = relay_msg_decode(stop, buf->data + hdr, len, m);
    if (rc < 0)
        return rc;
    cp2p_buf_consume(buf, hdr + len);
    /* Stop reading: what follows is the circuit's, read once it is spliced. */
    cp2p_stream_read_stop(s);
    return 1;
}

static void stop_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    hop_t *hop = arg;
    if (hop->dead || hop->state != HOP_STOP_READ)
        return;
    if (status < 0) {
        refuse_circuit(hop, RELAY_CONNECTION_FAILED, "the target closed the stop stream");
        return;
    }
    relay_msg_t m;
    int rc = take_message(s, &hop->stop_in, &hop->charged_stop, 1, p, n, &m);
    if (rc == 0)
        return;
    if (rc < 0 || m.type != STOP_STATUS || m.status != RELAY_OK) {
        if (rc > 0)
            relay_msg_clear(&m);
        refuse_circuit(hop, RELAY_CONNECTION_FAILED, rc < 0 ? "a bad stop answer" : "the target refused");
        return;
    }
    relay_msg_clear(&m);
    relay_msg_t ok = {.type = HOP_STATUS, .status = RELAY_OK};
    fill_limit(hop->r, &ok);
    cp2p_buf_t b = {0};
    rc = relay_msg_encode(0, &ok, &b);
    if (!rc)
        rc = cp2p_stream_write(hop->s, b.data, b.len, NULL, NULL);
    cp2p_buf_free(&b);
    if (rc < 0) {
        hop_end(hop, 1);
        return;
    }
    splice_start(hop);
}

static size_t circuits_of(cp2p_relay_t *r, const cp2p_peer_id_t *peer)
{
    size_t n = 0;
    for (hop_t *o = r->hops; o; o = o->next)
        n += o->counted && (cp2p_peer_id_equal(&o->src, peer) || cp2p_peer_id_equal(&o->dst, peer));
    return n;
}

static void do_connect(hop_t *hop, const relay_msg_t *m)
{
    cp2p_relay_t *r = hop->r;
    if (cp2p_conn_is_relayed(cp2p_stream_conn(hop->s))) {
        refuse_circuit(hop, RELAY_PERMISSION_DENIED, "its source is on a relayed connection");
        return;
    }
    if (!m->has_peer) {
        refuse_circuit(hop, RELAY_MALFORMED_MESSAGE, "CONNECT without a peer");
        return;
    }
    hop->dst = m->peer;
    rsvp_purge(r);
    rsvp_t *v = *rsvp_find(r, &hop->dst);
    cp2p_conn_t *to = cp2p_host_conn_to(r->h, &hop->dst);
    if (!v || !to) {
        refuse_circuit(hop, RELAY_NO_RESERVATION, "the target has no reservation");
        return;
    }
    if (cp2p_conn_is_relayed(to)) {
        refuse_circuit(hop, RELAY_PERMISSION_DENIED, "its target is on a relayed connection");
        return;
    }
    if (r->ncircuits >= r->cfg.max_circuits || circuits_of(r, &hop->src) >= r->cfg.max_circuits_per_peer ||
        circuits_of(r, &hop->dst) >= r->cfg.max_circuits_per_peer) {
        refuse_circuit(hop, RELAY_RESOURCE_LIMIT_EXCEEDED, "circuit limit reached");
        return;
    }
    hop->counted = 1;
    r->ncircuits++;
    static const char *const stop_proto[] = {CP2P_RELAY_STOP_PROTOCOL_ID};
    hop->state = HOP_STOP_OPENING;
    int rc = cp2p_host_new_stream(r->h, &hop->dst, stop_proto, 1, stop_opened, hop);
    if (rc < 0) {
        refuse_circuit(hop, RELAY_CONNECTION_FAILED, "cannot open a stop stream");
        return;
    }
    hop->pending++;
}

static void hop_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    hop_t *hop = arg;
    if (hop->dead || hop->state != HOP_READ)
        return;
    if (status < 0) {
        hop_end(hop, status != CP2P_ECLOSED);
        return;
    }
    relay_msg_t m;
    int rc = take_message(s, &hop->in, &hop->charged_in, 0, p, n, &m);
    if (rc == 0)
        return;
    if (rc < 0) {
        cp2p_log_write_key(CP2P_LOG_INFO, "relay", 3, "bad hop request: %s", cp2p_strerror(rc));
        hop_reply_end(hop, RELAY_MALFORMED_MESSAGE);
        return;
    }
    if (m.type == HOP_RESERVE)
        do_reserve(hop);
    else if (m.type == HOP_CONNECT)
        do_connect(hop, &m);
    else
        hop_reply_end(hop, RELAY_UNEXPECTED_MESSAGE);
    relay_msg_clear(&m);
}

static void on_hop(cp2p_stream_t *s, void *arg)
{
    cp2p_relay_t *r = arg;
    size_t cap = MAX_PENDING_PER_LIMIT * (r->cfg.max_circuits + r->cfg.max_reservations);
    hop_t *hop = r->npending < cap ? calloc(1, sizeof *hop) : NULL;
    if (!hop) {
        cp2p_log_write_key(CP2P_LOG_INFO, "relay", 4, "hop stream refused: %zu requests pending",
                           r->npending);
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    hop->r = r;
    hop->s = s;
    hop->src = *cp2p_stream_peer(s);
    hop->deadline_ms = uv_now(cp2p_host_loop(r->h)) + r->cfg.handshake_timeout_ms;
    hop->next = r->hops;
    if (r->hops)
        r->hops->prev = hop;
    r->hops = hop;
    r->npending++;
    if (cp2p_stream_read_start(s, hop_read, hop) < 0)
        hop_end(hop, 1);
}

static void on_tick(uv_timer_t *t)
{
    cp2p_relay_t *r = t->data;
    uint64_t now = uv_now(t->loop);
    /* An ended hop leaves the list, so starting over always ends. */
    for (hop_t *hop = r->hops; hop;) {
        if (!hop->deadline_ms || now < hop->deadline_ms) {
            hop = hop->next;
            continue;
        }
        if (hop->state == HOP_SPLICE) {
            r->stats.circuits_limited++;
            cp2p_log_debug("relay", "circuit reset: its duration limit of %u s is reached",
                           r->cfg.limit_duration_s);
        }
        hop_end(hop, 1);
        hop = r->hops;
    }
}

/* A reservation lasts while its peer is connected (the spec's "Reservation"). */
static void on_host_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_relay_t *r = arg;
    if (ev->type != CP2P_EVENT_DISCONNECTED || cp2p_host_conn_to(r->h, ev->peer))
        return;
    rsvp_t **pp = rsvp_find(r, ev->peer);
    if (*pp)
        rsvp_drop(r, pp);
}

/* ---- life ---- */

#define OR(v, d) ((v) ? (v) : (d))

int cp2p_relay_start(cp2p_host_t *h, const cp2p_relay_config_t *cfg, cp2p_relay_t **out)
{
    if (!h || !out)
        return CP2P_EINVAL;
    cp2p_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        return CP2P_ENOMEM;
    static const cp2p_relay_config_t none;
    const cp2p_relay_config_t *c = cfg ? cfg : &none;
    r->h = h;
    r->cfg = *c;
    r->cfg.reservation_ttl_s = OR(c->reservation_ttl_s, CP2P_RELAY_DEFAULT_RESERVATION_TTL_S);
    r->cfg.max_reservations = OR(c->max_reservations, CP2P_RELAY_DEFAULT_MAX_RESERVATIONS);
    r->cfg.max_reservations_per_ip =
        OR(c->max_reservations_per_ip, CP2P_RELAY_DEFAULT_MAX_RESERVATIONS_PER_IP);
    r->cfg.max_circuits = OR(c->max_circuits, CP2P_RELAY_DEFAULT_MAX_CIRCUITS);
    r->cfg.max_circuits_per_peer = OR(c->max_circuits_per_peer, CP2P_RELAY_DEFAULT_MAX_CIRCUITS_PER_PEER);
    r->cfg.limit_duration_s = OR(c->limit_duration_s, CP2P_RELAY_DEFAULT_LIMIT_DURATION_S);
    r->cfg.limit_data = OR(c->limit_data, CP2P_RELAY_DEFAULT_LIMIT_DATA);
    r->cfg.handshake_timeout_ms = OR(c->handshake_timeout_ms, CP2P_RELAY_HANDSHAKE_TIMEOUT_MS);
    int rc = cp2p_host_set_handler(h, CP2P_RELAY_HOP_PROTOCOL_ID, on_hop, r);
    if (!rc && (rc = cp2p_host_subscribe(h, on_host_event, r)))
        cp2p_host_remove_handler(h, CP2P_RELAY_HOP_PROTOCOL_ID);
    if (rc) {
        free(r);
        return rc;
    }
    uv_timer_init(cp2p_host_loop(h), &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
    *out = r;
    return 0;
}

static void tick_closed(uv_handle_t *t)
{
    cp2p_relay_t *r = t->data;
    void (*done)(void *) = r->done;
    void *arg = r->done_arg;
    free(r);
    if (done)
        done(arg);
}

void cp2p_relay_close(cp2p_relay_t *r, void (*done)(void *arg), void *arg)
{
    if (!r || r->closing)
        return;
    r->closing = 1;
    r->done = done;
    r->done_arg = arg;
    cp2p_host_remove_handler(r->h, CP2P_RELAY_HOP_PROTOCOL_ID);
    cp2p_host_unsubscribe(r->h, on_host_event, r);
    while (r->hops)
        hop_end(r->hops, 1);
    while (r->rsvps)
        rsvp_drop(r, &r->rsvps);
    uv_close((uv_handle_t *)&r->tick, tick_closed);
}

void cp2p_relay_stats(const cp2p_relay_t *r, cp2p_relay_stats_t *out)
{
    *out = r->stats;
    out->reservations = r->nrsvps;
    out->circuits = r->ncircuits;
}
