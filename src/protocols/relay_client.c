/* Circuit relay v2, the client's side (libp2p specs relay/circuit-v2.md):
 * reservations kept on relays (refreshed, made again when the relay goes),
 * circuits accepted on the stop protocol and dialled on the hop protocol,
 * AutoRelay over static relays. A circuit becomes a connection of the host
 * through a socket pair: one end is the raw connection the swarm upgrades
 * (conn.c's one code path), the other is pumped to and from the relay
 * stream with backpressure both ways. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/relay.h"
#include "host/host_priv.h"
#include "protocols/relay_msg.h"

#define PUMP_HIGH (256 * 1024) /* stream bytes queued for the socket pair */
#define PUMP_CHUNK (64 * 1024)
#define TICK_MS 1000
#define RESERVE_TIMEOUT_MS 30000
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS (5 * 60 * 1000)
#define AUTORELAY_COOLDOWN_MS 60000
#define MAX_PENDING_STOPS 64
#define RELAY_TAG "relay-client"
#define RELAY_TAG_WEIGHT 10

static const char *const hop_proto[] = {CP2P_RELAY_HOP_PROTOCOL_ID};

/* ---- the pump: a relay stream <-> one end of a socket pair ---- */

typedef struct pump {
    cp2p_stream_t *s;
    uv_pipe_t pipe;
    cp2p_buf_t out;   /* stream bytes for the pipe, not yet in a write */
    uv_write_t wreq;
    uint8_t *wbuf;    /* the bytes of the write under way */
    size_t wlen;
    int writing;
    long charged;     /* out and wbuf, counted in the stream's scopes */
    uv_shutdown_t sreq;
    int shut;
    int s_reading, s_eof, pipe_eof;
    int s_writes;     /* stream writes whose callback is owed */
    int closed, dead;
    uint8_t rbuf[PUMP_CHUNK];
} pump_t;

static void pump_maybe_free(pump_t *p)
{
    if (!p->dead || !p->closed || p->s_writes)
        return;
    cp2p_buf_free(&p->out);
    free(p->wbuf);
    free(p);
}

static void pump_closed(uv_handle_t *h)
{
    pump_t *p = h->data;
    p->closed = 1;
    pump_maybe_free(p);
}

static void pump_end(pump_t *p, int reset)
{
    if (p->dead)
        return;
    cp2p_log_debug("relay", "circuit pump ends%s (stream eof %d, socket eof %d)",
                   reset ? " with a reset" : "", p->s_eof, p->pipe_eof);
    p->dead = 1;
    if (p->s) {
        if (p->charged)
            cp2p_stream_charge(p->s, -p->charged);
        p->charged = 0;
        cp2p_stream_read_stop(p->s);
        if (reset)
            cp2p_stream_reset(p->s);
        cp2p_stream_unref(p->s);
        p->s = NULL;
    }
    uv_close((uv_handle_t *)&p->pipe, pump_closed);
}

static void pump_check_done(pump_t *p)
{
    if (p->s_eof && p->pipe_eof && !p->writing && !p->out.len && !p->s_writes)
        pump_end(p, 0);
}

static void pump_stream_read(cp2p_stream_t *s, int status, const uint8_t *d, size_t n, void *arg);
static void pump_kick(pump_t *p);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    pump_t *p = req->data;
    if (p->dead)
        return;
    pump_check_done(p);
}

static void pump_written(uv_write_t *req, int status)
{
    pump_t *p = req->data;
    p->writing = 0;
    free(p->wbuf);
    p->wbuf = NULL;
    if (p->dead)
        return;
    cp2p_stream_charge(p->s, -(long)p->wlen);
    p->charged -= (long)p->wlen;
    if (status < 0) {
        pump_end(p, 1);
        return;
    }
    pump_kick(p);
}

static void pump_kick(pump_t *p)
{
    if (p->dead)
        return;
    if (!p->writing && p->out.len) {
        size_t n;
        p->wbuf = cp2p_buf_steal(&p->out, &n);
        p->wlen = n;
        uv_buf_t b = uv_buf_init((char *)p->wbuf, (unsigned)n);
        p->wreq.data = p;
        if (uv_write(&p->wreq, (uv_stream_t *)&p->pipe, &b, 1, pump_written) < 0) {
            pump_end(p, 1);
            return;
        }
        p->writing = 1;
    }
    if (p->s && !p->s_eof && !p->s_reading && p->out.len < PUMP_HIGH) {
        if (cp2p_stream_read_start(p->s, pump_stream_read, p) < 0) {
            pump_end(p, 1);
            return;
        }
        p->s_reading = 1;
    }
    if (p->s_eof && !p->writing && !p->out.len && !p->shut) {
        p->shut = 1;
        p->sreq.data = p;
        if (uv_shutdown(&p->sreq, (uv_stream_t *)&p->pipe, on_shutdown) < 0) {
            pump_end(p, 1);
            return;
        }
    }
}

static void pump_stream_read(cp2p_stream_t *s, int status, const uint8_t *d, size_t n, void *arg)
{
    pump_t *p = arg;
    if (p->dead)
        return;
    if (status == 0) {
        if (cp2p_buf_append(&p->out, d, n) < 0) {
            pump_end(p, 1);
            return;
        }
        /* What the remote sent and the socket pair has not taken yet. */
        p->charged += (long)n;
        if (cp2p_stream_charge(s, (long)n) < 0) {
            pump_end(p, 1);
            return;
        }
        if (p->out.len >= PUMP_HIGH) {
            cp2p_stream_read_stop(s);
            p->s_reading = 0;
        }
        pump_kick(p);
        return;
    }
    if (status != CP2P_ECLOSED) {
        pump_end(p, 1);
        return;
    }
    p->s_eof = 1;
    p->s_reading = 0;
    pump_kick(p);
}

static void pump_pipe_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);
static void pump_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);

static void pump_stream_written(cp2p_stream_t *s, int status, void *arg)
{
    pump_t *p = arg;
    p->s_writes--;
    if (p->dead) {
        pump_maybe_free(p);
        return;
    }
    if (status < 0) {
        pump_end(p, 1);
        return;
    }
    if (!p->pipe_eof && uv_read_start((uv_stream_t *)&p->pipe, pump_alloc, pump_pipe_read) < 0)
        pump_end(p, 1);
    else
        pump_check_done(p);
}

static void pump_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    pump_t *p = h->data;
    *b = uv_buf_init((char *)p->rbuf, sizeof p->rbuf);
}

static void pump_pipe_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    pump_t *p = st->data;
    if (p->dead || n == 0)
        return;
    if (n == UV_EOF) {
        p->pipe_eof = 1;
        uv_read_stop(st);
        if (p->s)
            cp2p_stream_close_write(p->s);
        pump_check_done(p);
        return;
    }
    if (n < 0) {
        pump_end(p, 1);
        return;
    }
    /* One write at a time: the stream's window and the connection's output
     * stop the socket pair being read, and so the swarm's writes. */
    if (cp2p_stream_write(p->s, p->rbuf, (size_t)n, pump_stream_written, p) < 0) {
        pump_end(p, 1);
        return;
    }
    p->s_writes++;
    uv_read_stop(st);
}

static uv_pipe_t *pipe_end(uv_loop_t *loop, int fd, void *data)
{
    uv_pipe_t *pp = malloc(sizeof *pp);
    if (!pp)
        return NULL;
    uv_pipe_init(loop, pp, 0);
    pp->data = data;
    if (uv_pipe_open(pp, fd) < 0) {
        uv_close((uv_handle_t *)pp, (uv_close_cb)free);
        return NULL;
    }
    return pp;
}

/* Make the socket pair for stream s (taken over), the first bytes of the
 * circuit in lead[0..n); the raw connection for the swarm in *out, with
 * local and remote (copied). On failure s is reset. */
static int pump_new(uv_loop_t *loop, cp2p_stream_t *s, const uint8_t *lead, size_t n,
                    const cp2p_multiaddr_t *local, const cp2p_multiaddr_t *remote,
                    cp2p_rawconn_t **out)
{
    int fds[2] = {-1, -1};
    pump_t *p = calloc(1, sizeof *p);
    cp2p_rawconn_t *rc = calloc(1, sizeof *rc);
    int err = p && rc ? 0 : CP2P_ENOMEM;
    if (!err && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        err = CP2P_EIO;
    if (!err && (cp2p_multiaddr_dup(local, &rc->local) || cp2p_multiaddr_dup(remote, &rc->remote) ||
                 (n && cp2p_buf_append(&p->out, lead, n))))
        err = CP2P_ENOMEM;
    if (!err && !(rc->stream = (uv_stream_t *)pipe_end(loop, fds[0], NULL))) {
        err = CP2P_EIO;
    }
    if (!err) {
        fds[0] = -1;
        uv_pipe_init(loop, &p->pipe, 0);
        p->pipe.data = p;
        if (uv_pipe_open(&p->pipe, fds[1]) < 0) {
            err = CP2P_EIO;
        } else {
            fds[1] = -1;
        }
        if (err) {
            /* the pipe handle closes on a later turn; p must outlive it */
            p->dead = 1;
            uv_close((uv_handle_t *)&p->pipe, pump_closed);
            p = NULL;
        }
    }
    if (err) {
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        cp2p_rawconn_free(rc);
        if (p) {
            cp2p_buf_free(&p->out);
            free(p);
        }
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return err;
    }
    p->s = s;
    if (p->out.len) {
        p->charged = (long)p->out.len;
        cp2p_stream_charge(s, p->charged);
    }
    if (uv_read_start((uv_stream_t *)&p->pipe, pump_alloc, pump_pipe_read) < 0) {
        pump_end(p, 1);
        cp2p_rawconn_free(rc);
        return CP2P_EIO;
    }
    pump_kick(p);
    *out = rc;
    return 0;
}

/* ---- the client ---- */

typedef enum { R_IDLE, R_CONNECTING, R_OPENING, R_READING } rsv_state_t;

typedef struct rsv {
    struct rsv *next;
    int voucher;             /* of the last reservation: 1 checked, 0 none, -1 bad */
    cp2p_relay_client_t *c; /* NULL once the client let go */
    cp2p_peer_id_t relay;
    cp2p_multiaddr_t addr;   /* the relay, with /p2p/<relay> */
    cp2p_multiaddr_t listen; /* addr/p2p-circuit */
    rsv_state_t state;
    int reserved;
    uint64_t expire;
    uv_timer_t timer;        /* the attempt's deadline, the refresh or the retry */
    cp2p_stream_t *s;
    cp2p_buf_t in;
    uint32_t backoff_ms;
    int autorelay;
    int pending;             /* host callbacks owed */
    int closing, closed;
} rsv_t;

typedef struct stop_in {
    struct stop_in *prev, *next;
    cp2p_relay_client_t *c;
    cp2p_stream_t *s;
    cp2p_buf_t in;
    uint64_t deadline_ms;
} stop_in_t;

typedef struct cdial {
    struct cdial *prev, *next;
    cp2p_relay_client_t *c;
    cp2p_host_t *h;
    cp2p_peer_id_t relay, target;
    cp2p_multiaddr_t relay_addr; /* with /p2p/<relay>; empty: from the peerstore */
    cp2p_dial_fn fn;
    void *arg;
    cp2p_stream_t *s;
    cp2p_buf_t in;
    int cancelled;
    int pending;
} cdial_t;

typedef struct static_relay {
    cp2p_multiaddr_t addr;
    cp2p_peer_id_t id;
    uint64_t cooldown_until;
} static_relay_t;

struct cp2p_relay_client {
    cp2p_host_t *h;
    cp2p_relay_event_fn on_event;
    void *event_arg;
    rsv_t *rsvs;
    size_t nrsvs;
    stop_in_t *stops;
    size_t nstops;
    cdial_t *dials;
    static_relay_t statics[CP2P_RELAY_MAX_STATIC_RELAYS];
    size_t nstatics;
    uint32_t max_relays;
    int autorelay;
    uv_timer_t tick;
    int closing;
    void (*done)(void *arg);
    void *done_arg;
};

static void emit(cp2p_relay_client_t *c, cp2p_relay_event_type_t type, rsv_t *v, int status)
{
    if (!c || !c->on_event)
        return;
    cp2p_relay_event_t ev = {type, &v->relay, &v->listen, v->expire, status, v->voucher};
    c->on_event(&ev, c->event_arg);
}

/* The relay's peer ID and the address without /p2p-circuit (and what
 * follows); *target the peer after it, if any. CP2P_EINVAL when there is no
 * relay peer ID, CP2P_EUNSUPPORTED for a circuit over a circuit. */
static int split_circuit(const cp2p_multiaddr_t *ma, cp2p_multiaddr_t *relay_addr,
                         cp2p_peer_id_t *relay, int *has_target, cp2p_peer_id_t *target)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t comp;
    size_t cut = 0;
    int circuits = 0, has_relay = 0;
    *has_target = 0;
    cp2p_multiaddr_iter_init(&it, ma);
    while (cp2p_multiaddr_iter_next(&it, &comp)) {
        if (comp.code == CP2P_MA_P2P_CIRCUIT) {
            if (circuits++)
                return CP2P_EUNSUPPORTED;
            cut = (size_t)(comp.raw - ma->bytes);
        } else if (comp.code == CP2P_MA_P2P) {
            cp2p_peer_id_t id;
            if (cp2p_peer_id_from_bytes(comp.value, comp.value_len, &id))
                return CP2P_EINVAL;
            if (circuits) {
                *target = id;
                *has_target = 1;
            } else {
                *relay = id;
                has_relay = 1;
            }
        } else if (circuits) {
            return CP2P_EUNSUPPORTED; /* /p2p-circuit/<something else> */
        }
    }
    if (!circuits || !has_relay)
        return CP2P_EINVAL;
    return cp2p_multiaddr_from_bytes(ma->bytes, cut, relay_addr);
}

static int append_circuit(const cp2p_multiaddr_t *a, cp2p_multiaddr_t *out)
{
    cp2p_multiaddr_t circ;
    int rc = cp2p_multiaddr_parse("/p2p-circuit", &circ);
    if (rc)
        return rc;
    rc = cp2p_multiaddr_encapsulate(a, &circ, out);
    cp2p_multiaddr_free(&circ);
    return rc;
}

static void drain(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    if (status < 0)
        cp2p_stream_unref(s);
}

/* Close our side, and let the stream go once the remote closes too. */
static void let_go(cp2p_stream_t *s)
{
    if (cp2p_stream_close_write(s) < 0 || cp2p_stream_read_start(s, drain, NULL) < 0) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
}

/* One framed message from what s sent: 1 (in *m, the rest left in buf), 0
 * for more, <0 for a bad one. Bytes wait in buf, charged to s. */
static int read_message(cp2p_stream_t *s, cp2p_buf_t *buf, int stop, const uint8_t *p, size_t n,
                        relay_msg_t *m)
{
    if (n > RELAY_MSG_MAX + 16 + PUMP_CHUNK - buf->len || cp2p_buf_append(buf, p, n) < 0)
        return CP2P_EOVERFLOW;
    size_t hdr, len;
    int rc = relay_msg_frame(buf->data, buf->len, &hdr, &len);
    if (rc <= 0)
        return rc;
    rc = relay_msg_decode(stop, buf->data + hdr, len, m);
    if (rc < 0)
        return rc;
    cp2p_buf_consume(buf, hdr + len);
    cp2p_stream_read_stop(s);
    return 1;
}

static int status_error(int status)
{
    return status == RELAY_RESOURCE_LIMIT_EXCEEDED || status == RELAY_RESERVATION_REFUSED
               ? CP2P_ELIMIT
               : status == RELAY_NO_RESERVATION ? CP2P_ENORESERVATION
               : status == RELAY_CONNECTION_FAILED ? CP2P_EUNREACHABLE
                                                    : CP2P_EREFUSED;
}

/* ---- reservations ---- */

static void rsv_start(rsv_t *v);
static void autorelay_fill(cp2p_relay_client_t *c);

static void rsv_timer_closed(uv_handle_t *h)
{
    rsv_t *v = h->data;
    v->closed = 1;
    if (!v->pending) {
        cp2p_multiaddr_free(&v->addr);
        cp2p_multiaddr_free(&v->listen);
        cp2p_buf_free(&v->in);
        free(v);
    }
}

static void rsv_maybe_free(rsv_t *v)
{
    if (v->closing && v->closed && !v->pending)
        rsv_timer_closed((uv_handle_t *)&v->timer);
}

static void rsv_drop_stream(rsv_t *v)
{
    if (v->s) {
        cp2p_stream_read_stop(v->s);
        cp2p_stream_reset(v->s);
        cp2p_stream_unref(v->s);
        v->s = NULL;
    }
    cp2p_buf_reset(&v->in);
}

/* Remove v from its client and free it once its handles and callbacks are done. */
static void rsv_remove(rsv_t *v)
{
    cp2p_relay_client_t *c = v->c;
    if (c) {
        for (rsv_t **pp = &c->rsvs; *pp; pp = &(*pp)->next)
            if (*pp == v) {
                *pp = v->next;
                break;
            }
        c->nrsvs--;
        cp2p_host_untag_peer(c->h, &v->relay, RELAY_TAG);
    }
    int had = v->reserved;
    v->reserved = 0;
    v->c = NULL;
    v->closing = 1;
    rsv_drop_stream(v);
    if (had && c && !c->closing)
        cp2p_host_addrs_changed(c->h, NULL);
    uv_close((uv_handle_t *)&v->timer, rsv_timer_closed);
}

static void on_rsv_timer(uv_timer_t *t);

static void rsv_failed(rsv_t *v, int status)
{
    cp2p_relay_client_t *c = v->c;
    rsv_drop_stream(v);
    v->state = R_IDLE;
    int lost = v->reserved;
    v->reserved = 0;
    if (cp2p_log_enabled(CP2P_LOG_INFO)) {
        char id[CP2P_PEER_ID_STRMAX];
        cp2p_peer_id_to_string(&v->relay, id, sizeof id);
        cp2p_log_info("relay", "%s on relay %s: %s", lost ? "reservation lost" : "cannot reserve", id,
                      status >= 100 ? relay_status_name(status) : cp2p_strerror(status));
    }
    if (lost && c)
        cp2p_host_addrs_changed(c->h, NULL);
    emit(c, lost ? CP2P_RELAY_RESERVATION_LOST : CP2P_RELAY_RESERVE_FAILED, v, status);
    if (!v->c)
        return; /* the event's callback closed the client */
    if (v->autorelay) {
        for (size_t i = 0; i < c->nstatics; i++)
            if (cp2p_peer_id_equal(&c->statics[i].id, &v->relay))
                c->statics[i].cooldown_until = uv_now(cp2p_host_loop(c->h)) + AUTORELAY_COOLDOWN_MS;
        rsv_remove(v);
        autorelay_fill(c);
        return;
    }
    uint32_t delay = lost ? RETRY_MIN_MS : v->backoff_ms;
    v->backoff_ms = v->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : v->backoff_ms * 2;
    uv_timer_start(&v->timer, on_rsv_timer, delay, 0);
}

static void rsv_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    rsv_t *v = arg;
    if (!v->c || v->s != s || v->state != R_READING)
        return;
    if (status < 0) {
        rsv_failed(v, status == CP2P_ECLOSED ? CP2P_EPROTO : status);
        return;
    }
    relay_msg_t m;
    int rc = read_message(s, &v->in, 0, p, n, &m);
    if (rc == 0)
        return;
    if (rc < 0) {
        rsv_failed(v, CP2P_EPROTO);
        return;
    }
    if (m.type != HOP_STATUS || m.status != RELAY_OK || !m.has_reservation) {
        int st = m.type == HOP_STATUS && m.status && m.status != RELAY_OK ? m.status : CP2P_EPROTO;
        relay_msg_clear(&m);
        rsv_failed(v, st);
        return;
    }
    uint64_t now = (uint64_t)time(NULL);
    uint64_t expire = m.expire > now ? m.expire : now + 60;
    v->voucher = 0;
    if (m.voucher) {
        cp2p_peer_id_t vr, vp;
        uint64_t vexp;
        int ok = relay_voucher_open(m.voucher, m.voucher_len, &vr, &vp, &vexp) == 0 &&
                 cp2p_peer_id_equal(&vr, &v->relay) && cp2p_peer_id_equal(&vp, cp2p_host_peer_id(v->c->h));
        v->voucher = ok ? 1 : -1;
        if (!ok)
            cp2p_log_info("relay", "the relay's reservation voucher does not check out (taken anyway: "
                          "vouchers are advisory)");
    }
    relay_msg_clear(&m);
    v->s = NULL;
    cp2p_buf_reset(&v->in);
    let_go(s);
    cp2p_relay_client_t *c = v->c;
    int first = !v->reserved;
    v->reserved = 1;
    v->expire = expire;
    v->state = R_IDLE;
    v->backoff_ms = RETRY_MIN_MS;
    /* Refresh with a quarter of the time left, as go-libp2p does around
     * the last minutes of an hour. */
    uint64_t ttl_ms = (expire - now) * 1000;
    uint64_t refresh = ttl_ms - ttl_ms / 4;
    if (refresh < 1000)
        refresh = 1000;
    uv_timer_start(&v->timer, on_rsv_timer, refresh, 0);
    if (cp2p_log_enabled(CP2P_LOG_INFO)) {
        cp2p_buf_t b = {0};
        cp2p_multiaddr_to_string(&v->listen, &b);
        cp2p_log_info("relay", "reserved on %s for %llu s", b.data ? (char *)b.data : "?",
                      (unsigned long long)(expire - now));
        cp2p_buf_free(&b);
    }
    if (first)
        cp2p_host_addrs_changed(c->h, &v->listen);
    emit(c, CP2P_RELAY_RESERVED, v, 0);
}

static void rsv_opened(int status, cp2p_stream_t *s, void *arg)
{
    rsv_t *v = arg;
    v->pending--;
    if (!v->c || v->state != R_OPENING) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        rsv_maybe_free(v);
        return;
    }
    if (status < 0) {
        rsv_failed(v, status);
        return;
    }
    v->s = s;
    v->state = R_READING;
    relay_msg_t m = {.type = HOP_RESERVE};
    cp2p_buf_t b = {0};
    int rc = relay_msg_encode(0, &m, &b);
    if (!rc)
        rc = cp2p_stream_write(s, b.data, b.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_read_start(s, rsv_read, v);
    cp2p_buf_free(&b);
    if (rc < 0)
        rsv_failed(v, rc);
}

static void rsv_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    rsv_t *v = arg;
    v->pending--;
    if (!v->c || v->state != R_CONNECTING) {
        rsv_maybe_free(v);
        return;
    }
    if (status < 0) {
        rsv_failed(v, status);
        return;
    }
    cp2p_host_tag_peer(h, &v->relay, RELAY_TAG, RELAY_TAG_WEIGHT);
    v->state = R_OPENING;
    int rc = cp2p_host_new_stream(h, &v->relay, hop_proto, 1, rsv_opened, v);
    if (rc < 0) {
        rsv_failed(v, rc);
        return;
    }
    v->pending++;
}

static void rsv_start(rsv_t *v)
{
    cp2p_relay_client_t *c = v->c;
    v->state = R_CONNECTING;
    uv_timer_start(&v->timer, on_rsv_timer, RESERVE_TIMEOUT_MS, 0);
    int rc = cp2p_host_connect(c->h, &v->addr, rsv_connected, v);
    if (rc < 0) {
        /* Told from the timer, never inside the caller's call. */
        v->state = R_IDLE;
        uv_timer_start(&v->timer, on_rsv_timer, v->backoff_ms, 0);
        v->backoff_ms = v->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : v->backoff_ms * 2;
        return;
    }
    v->pending++;
}

static void on_rsv_timer(uv_timer_t *t)
{
    rsv_t *v = t->data;
    if (!v->c)
        return;
    if (v->state == R_IDLE)
        rsv_start(v);
    else
        rsv_failed(v, CP2P_ETIMEOUT);
}

static rsv_t *rsv_find(cp2p_relay_client_t *c, const cp2p_peer_id_t *relay)
{
    for (rsv_t *v = c->rsvs; v; v = v->next)
        if (cp2p_peer_id_equal(&v->relay, relay))
            return v;
    return NULL;
}

static int rsv_add(cp2p_relay_client_t *c, const cp2p_multiaddr_t *ma, int autorelay)
{
    cp2p_multiaddr_t addr;
    cp2p_peer_id_t relay, target;
    int has_target;
    cp2p_multiaddr_t circ = {0};
    int rc;
    /* "<relay>/p2p/R" or "<relay>/p2p/R/p2p-circuit" */
    cp2p_multiaddr_component_t comp;
    if (cp2p_multiaddr_get(ma, CP2P_MA_P2P_CIRCUIT, &comp) != 0) {
        if ((rc = append_circuit(ma, &circ)))
            return rc;
        ma = &circ;
    }
    rc = split_circuit(ma, &addr, &relay, &has_target, &target);
    cp2p_multiaddr_free(&circ);
    if (rc)
        return rc;
    if (has_target || addr.len == 0 || cp2p_peer_id_equal(&relay, cp2p_host_peer_id(c->h))) {
        cp2p_multiaddr_free(&addr);
        return CP2P_EINVAL;
    }
    if (rsv_find(c, &relay)) {
        cp2p_multiaddr_free(&addr);
        return CP2P_EEXIST;
    }
    if (c->nrsvs >= CP2P_RELAY_MAX_RESERVATIONS) {
        cp2p_multiaddr_free(&addr);
        return CP2P_ELIMIT;
    }
    rsv_t *v = calloc(1, sizeof *v);
    if (!v || (rc = append_circuit(&addr, &v->listen))) {
        free(v);
        cp2p_multiaddr_free(&addr);
        return v ? rc : CP2P_ENOMEM;
    }
    v->c = c;
    v->relay = relay;
    v->addr = addr;
    v->autorelay = autorelay;
    v->backoff_ms = RETRY_MIN_MS;
    uv_timer_init(cp2p_host_loop(c->h), &v->timer);
    v->timer.data = v;
    v->next = c->rsvs;
    c->rsvs = v;
    c->nrsvs++;
    /* Started from the timer: the events come after this call. */
    uv_timer_start(&v->timer, on_rsv_timer, 0, 0);
    return 0;
}

int cp2p_relay_client_listen(cp2p_relay_client_t *c, const cp2p_multiaddr_t *relay)
{
    if (!c || !relay || c->closing)
        return CP2P_EINVAL;
    return rsv_add(c, relay, 0);
}

int cp2p_relay_client_unlisten(cp2p_relay_client_t *c, const cp2p_peer_id_t *relay)
{
    rsv_t *v = c && relay ? rsv_find(c, relay) : NULL;
    if (!v)
        return CP2P_ENOTFOUND;
    rsv_remove(v);
    return 0;
}

size_t cp2p_relay_client_relays(const cp2p_relay_client_t *c, cp2p_peer_id_t *out, size_t cap)
{
    size_t n = 0;
    for (rsv_t *v = c->rsvs; v; v = v->next)
        if (v->reserved) {
            if (n < cap)
                out[n] = v->relay;
            n++;
        }
    return n;
}

/* ---- AutoRelay ---- */

static void autorelay_fill(cp2p_relay_client_t *c)
{
    if (!c->autorelay || c->closing)
        return;
    size_t have = 0;
    for (rsv_t *v = c->rsvs; v; v = v->next)
        have += v->autorelay;
    uint64_t now = uv_now(cp2p_host_loop(c->h));
    for (size_t i = 0; i < c->nstatics && have < c->max_relays; i++) {
        static_relay_t *s = &c->statics[i];
        if (s->cooldown_until > now || rsv_find(c, &s->id))
            continue;
        if (rsv_add(c, &s->addr, 1) == 0)
            have++;
    }
}

int cp2p_relay_autorelay_start(cp2p_relay_client_t *c)
{
    if (!c || !c->nstatics)
        return CP2P_EINVAL;
    c->autorelay = 1;
    autorelay_fill(c);
    return 0;
}

void cp2p_relay_autorelay_stop(cp2p_relay_client_t *c)
{
    if (!c)
        return;
    c->autorelay = 0;
    for (rsv_t *v = c->rsvs, *next; v; v = next) {
        next = v->next;
        if (v->autorelay)
            rsv_remove(v);
    }
}

/* ---- the stop protocol: circuits to us ---- */

static void stop_end(stop_in_t *st, int reset)
{
    cp2p_relay_client_t *c = st->c;
    if (st->prev)
        st->prev->next = st->next;
    else
        c->stops = st->next;
    if (st->next)
        st->next->prev = st->prev;
    c->nstops--;
    if (st->s) {
        cp2p_stream_read_stop(st->s);
        if (reset)
            cp2p_stream_reset(st->s);
        cp2p_stream_unref(st->s);
    }
    cp2p_buf_free(&st->in);
    free(st);
}

static void stop_answer(cp2p_stream_t *s, int status)
{
    relay_msg_t m = {.type = STOP_STATUS, .status = status};
    cp2p_buf_t b = {0};
    if (relay_msg_encode(1, &m, &b) == 0)
        cp2p_stream_write(s, b.data, b.len, NULL, NULL);
    cp2p_buf_free(&b);
}

static void stop_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    stop_in_t *st = arg;
    if (status < 0) {
        stop_end(st, 1);
        return;
    }
    relay_msg_t m;
    int rc = read_message(s, &st->in, 1, p, n, &m);
    if (rc == 0)
        return;
    cp2p_relay_client_t *c = st->c;
    if (rc < 0 || m.type != STOP_CONNECT || !m.has_peer) {
        if (rc > 0)
            relay_msg_clear(&m);
        stop_answer(s, rc < 0 ? RELAY_MALFORMED_MESSAGE : RELAY_UNEXPECTED_MESSAGE);
        st->s = NULL;
        let_go(s);
        stop_end(st, 0);
        return;
    }
    cp2p_peer_id_t src = m.peer;
    relay_msg_clear(&m);
    /* As go-libp2p and js-libp2p do, a relay we did not reserve on through
     * this client may terminate circuits here too (a reservation made by
     * other means, as the @libp2p/interop suite makes them), but never over
     * a relayed connection: no circuits of circuits. */
    if (cp2p_conn_is_relayed(cp2p_stream_conn(s))) {
        cp2p_log_write_key(CP2P_LOG_INFO, "relay", 5, "circuit refused: its relay is relayed itself");
        stop_answer(s, RELAY_PERMISSION_DENIED);
        st->s = NULL;
        let_go(s);
        stop_end(st, 0);
        return;
    }
    const cp2p_peer_id_t *relay = cp2p_stream_peer(s);
    rsv_t *v = rsv_find(c, relay);
    stop_answer(s, RELAY_OK);
    /* Remote: the relay's address, the circuit, the source. */
    cp2p_multiaddr_t remote = {0};
    cp2p_buf_t txt = {0};
    char id[CP2P_PEER_ID_STRMAX], rid[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(&src, id, sizeof id);
    cp2p_peer_id_to_string(relay, rid, sizeof rid);
    rc = cp2p_multiaddr_to_string(cp2p_conn_remote_addr(cp2p_stream_conn(s)), &txt);
    if (!rc) {
        char tail[2 * CP2P_PEER_ID_STRMAX + 32];
        snprintf(tail, sizeof tail, "/p2p/%s/p2p-circuit", rid);
        rc = cp2p_buf_append(&txt, tail, strlen(tail) + 1);
    }
    if (!rc)
        rc = cp2p_multiaddr_parse((char *)txt.data, &remote);
    cp2p_buf_free(&txt);
    st->s = NULL;
    cp2p_rawconn_t *raw = NULL;
    if (!rc)
        rc = pump_new(cp2p_host_loop(c->h), s, st->in.data, st->in.len, v ? &v->listen : &remote,
                      &remote, &raw);
    else {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
    cp2p_multiaddr_free(&remote);
    if (!rc) {
        cp2p_log_debug("relay", "circuit from %s through %s", id, rid);
        cp2p_host_accept_raw(c->h, raw);
    } else {
        cp2p_log_info("relay", "cannot take a circuit: %s", cp2p_strerror(rc));
    }
    stop_end(st, 0);
}

static void on_stop(cp2p_stream_t *s, void *arg)
{
    cp2p_relay_client_t *c = arg;
    stop_in_t *st = c->nstops < MAX_PENDING_STOPS ? calloc(1, sizeof *st) : NULL;
    if (!st) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    st->c = c;
    st->s = s;
    st->deadline_ms = uv_now(cp2p_host_loop(c->h)) + CP2P_RELAY_HANDSHAKE_TIMEOUT_MS;
    st->next = c->stops;
    if (c->stops)
        c->stops->prev = st;
    c->stops = st;
    c->nstops++;
    if (cp2p_stream_read_start(s, stop_read, st) < 0)
        stop_end(st, 1);
}

/* ---- dialling through a relay ---- */

static void cdial_unlink(cdial_t *d)
{
    cp2p_relay_client_t *c = d->c;
    if (!c)
        return;
    if (d->prev)
        d->prev->next = d->next;
    else
        c->dials = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
    d->c = NULL;
}

static void cdial_maybe_free(cdial_t *d)
{
    if (!d->cancelled || d->pending)
        return;
    cdial_unlink(d);
    if (d->s) {
        cp2p_stream_read_stop(d->s);
        cp2p_stream_reset(d->s);
        cp2p_stream_unref(d->s);
    }
    cp2p_multiaddr_free(&d->relay_addr);
    cp2p_buf_free(&d->in);
    free(d);
}

/* Tell the swarm, once, and end. */
static void cdial_finish(cdial_t *d, int status, cp2p_rawconn_t *rc)
{
    if (!d->cancelled) {
        d->cancelled = 1;
        d->fn(d->arg, status, rc);
    } else if (rc) {
        cp2p_rawconn_free(rc);
    }
    cdial_maybe_free(d);
}

static void cdial_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    cdial_t *d = arg;
    if (d->cancelled || d->s != s)
        return;
    if (status < 0) {
        cdial_finish(d, status == CP2P_ECLOSED ? CP2P_EPROTO : status, NULL);
        return;
    }
    relay_msg_t m;
    int rc = read_message(s, &d->in, 0, p, n, &m);
    if (rc == 0)
        return;
    if (rc < 0 || m.type != HOP_STATUS || m.status != RELAY_OK) {
        int st = rc < 0 ? CP2P_EPROTO : m.status ? status_error(m.status) : CP2P_EPROTO;
        if (rc > 0) {
            char id[CP2P_PEER_ID_STRMAX];
            cp2p_peer_id_to_string(&d->relay, id, sizeof id);
            cp2p_log_info("relay", "relay %s refused the circuit: %s", id,
                          relay_status_name(m.status));
            relay_msg_clear(&m);
        }
        cdial_finish(d, st, NULL);
        return;
    }
    relay_msg_clear(&m);
    cp2p_multiaddr_t local = {0}, remote = {0};
    rc = cp2p_multiaddr_parse("/p2p-circuit", &local);
    if (!rc) {
        char txt[CP2P_PEER_ID_STRMAX + 32], rid[CP2P_PEER_ID_STRMAX];
        cp2p_multiaddr_t tail;
        cp2p_peer_id_to_string(&d->relay, rid, sizeof rid);
        snprintf(txt, sizeof txt, "/p2p/%s/p2p-circuit", rid);
        rc = cp2p_multiaddr_parse(txt, &tail);
        if (!rc) {
            cp2p_multiaddr_t base = d->relay_addr;
            if (base.len)
                cp2p_multiaddr_decapsulate_code(&base, CP2P_MA_P2P); /* a view, cut in place */
            rc = base.len ? cp2p_multiaddr_encapsulate(&base, &tail, &remote)
                          : cp2p_multiaddr_dup(&tail, &remote);
            cp2p_multiaddr_free(&tail);
        }
    }
    d->s = NULL;
    cp2p_rawconn_t *raw = NULL;
    if (!rc)
        rc = pump_new(cp2p_host_loop(d->h), s, d->in.data, d->in.len, &local, &remote, &raw);
    else {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
    cp2p_multiaddr_free(&local);
    cp2p_multiaddr_free(&remote);
    cdial_finish(d, rc, rc ? NULL : raw);
}

static void cdial_opened(int status, cp2p_stream_t *s, void *arg)
{
    cdial_t *d = arg;
    d->pending--;
    if (d->cancelled) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        cdial_maybe_free(d);
        return;
    }
    if (status < 0) {
        cdial_finish(d, status == CP2P_ENEGOTIATE ? CP2P_EUNSUPPORTED : status, NULL);
        return;
    }
    d->s = s;
    relay_msg_t m = {.type = HOP_CONNECT, .has_peer = 1, .peer = d->target};
    cp2p_buf_t b = {0};
    int rc = relay_msg_encode(0, &m, &b);
    if (!rc)
        rc = cp2p_stream_write(s, b.data, b.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_read_start(s, cdial_read, d);
    cp2p_buf_free(&b);
    if (rc < 0)
        cdial_finish(d, rc, NULL);
}

static void cdial_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    cdial_t *d = arg;
    d->pending--;
    if (d->cancelled) {
        cdial_maybe_free(d);
        return;
    }
    if (status < 0) {
        cdial_finish(d, status, NULL);
        return;
    }
    int rc = cp2p_host_new_stream(h, &d->relay, hop_proto, 1, cdial_opened, d);
    if (rc < 0) {
        cdial_finish(d, rc, NULL);
        return;
    }
    d->pending++;
}

static int ext_matches(void *ctx, const cp2p_multiaddr_t *ma)
{
    cp2p_multiaddr_component_t comp;
    return cp2p_multiaddr_get(ma, CP2P_MA_P2P_CIRCUIT, &comp) == 0;
}

static int ext_dial(void *ctx, const cp2p_multiaddr_t *ma, const cp2p_peer_id_t *peer,
                    cp2p_dial_fn fn, void *arg, void **out)
{
    cp2p_relay_client_t *c = ctx;
    cdial_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    int has_target;
    int rc = split_circuit(ma, &d->relay_addr, &d->relay, &has_target, &d->target);
    if (!rc && !has_target) {
        if (peer)
            d->target = *peer;
        else
            rc = CP2P_EINVAL;
    }
    if (!rc && peer && !cp2p_peer_id_equal(peer, &d->target))
        rc = CP2P_EPEERID;
    if (!rc && (cp2p_peer_id_equal(&d->relay, &d->target) ||
                cp2p_peer_id_equal(&d->relay, cp2p_host_peer_id(c->h))))
        rc = CP2P_EINVAL;
    if (rc) {
        cp2p_multiaddr_free(&d->relay_addr);
        free(d);
        return rc;
    }
    d->c = c;
    d->h = c->h;
    d->fn = fn;
    d->arg = arg;
    cp2p_multiaddr_component_t first;
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_iter_init(&it, &d->relay_addr);
    int transportless = !cp2p_multiaddr_iter_next(&it, &first) || first.code == CP2P_MA_P2P;
    rc = transportless ? cp2p_host_connect_peer(c->h, &d->relay, cdial_connected, d)
                       : cp2p_host_connect(c->h, &d->relay_addr, cdial_connected, d);
    if (rc < 0) {
        cp2p_multiaddr_free(&d->relay_addr);
        free(d);
        return rc;
    }
    d->pending++;
    d->next = c->dials;
    if (c->dials)
        c->dials->prev = d;
    c->dials = d;
    *out = d;
    return 0;
}

static void ext_dial_cancel(void *ctx, void *dp)
{
    cdial_t *d = dp;
    if (!d)
        return;
    d->cancelled = 1;
    cdial_maybe_free(d);
}

static int ext_listen(void *ctx, const cp2p_multiaddr_t *ma)
{
    cp2p_relay_client_t *c = ctx;
    cp2p_multiaddr_component_t comp;
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_iter_init(&it, ma);
    /* A bare /p2p-circuit: any relay, which is AutoRelay's job. */
    if (cp2p_multiaddr_iter_next(&it, &comp) && comp.code == CP2P_MA_P2P_CIRCUIT &&
        !cp2p_multiaddr_iter_next(&it, &comp))
        return c->nstatics ? cp2p_relay_autorelay_start(c) : CP2P_EUNSUPPORTED;
    int rc = rsv_add(c, ma, 0);
    return rc == CP2P_EEXIST ? 0 : rc;
}

static int ext_listen_addrs(void *ctx, cp2p_multiaddr_t **addrs, size_t *n)
{
    cp2p_relay_client_t *c = ctx;
    for (rsv_t *v = c->rsvs; v; v = v->next) {
        if (!v->reserved)
            continue;
        cp2p_multiaddr_t *a = realloc(*addrs, (*n + 1) * sizeof *a);
        if (!a)
            return CP2P_ENOMEM;
        *addrs = a;
        if (cp2p_multiaddr_dup(&v->listen, &a[*n]))
            return CP2P_ENOMEM;
        (*n)++;
    }
    return 0;
}

/* ---- events and time ---- */

static void on_host_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_relay_client_t *c = arg;
    if (ev->type != CP2P_EVENT_DISCONNECTED || cp2p_host_conn_to(c->h, ev->peer))
        return;
    rsv_t *v = rsv_find(c, ev->peer);
    if (v && (v->reserved || v->state != R_IDLE))
        rsv_failed(v, CP2P_ECLOSED);
}

static void on_tick(uv_timer_t *t)
{
    cp2p_relay_client_t *c = t->data;
    uint64_t now = uv_now(t->loop);
    for (stop_in_t *st = c->stops; st;) {
        if (now < st->deadline_ms) {
            st = st->next;
            continue;
        }
        stop_end(st, 1);
        st = c->stops;
    }
    autorelay_fill(c);
}

int cp2p_relay_client_enable(cp2p_host_t *h, const cp2p_relay_client_config_t *cfg,
                             cp2p_relay_client_t **out)
{
    if (!h || !out || (cfg && cfg->n_static_relays > CP2P_RELAY_MAX_STATIC_RELAYS))
        return CP2P_EINVAL;
    cp2p_relay_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return CP2P_ENOMEM;
    c->h = h;
    c->max_relays = CP2P_RELAY_DEFAULT_MAX_RELAYS;
    int rc = 0;
    if (cfg) {
        c->on_event = cfg->on_event;
        c->event_arg = cfg->event_arg;
        if (cfg->max_relays)
            c->max_relays = cfg->max_relays > CP2P_RELAY_MAX_RESERVATIONS ? CP2P_RELAY_MAX_RESERVATIONS
                                                                         : cfg->max_relays;
        for (size_t i = 0; !rc && i < cfg->n_static_relays; i++) {
            static_relay_t *s = &c->statics[c->nstatics];
            cp2p_multiaddr_component_t comp;
            rc = cfg->static_relays[i] ? cp2p_multiaddr_parse(cfg->static_relays[i], &s->addr)
                                       : CP2P_EINVAL;
            if (!rc && (cp2p_multiaddr_get(&s->addr, CP2P_MA_P2P, &comp) ||
                        cp2p_peer_id_from_bytes(comp.value, comp.value_len, &s->id)))
                rc = CP2P_EINVAL;
            if (!rc)
                c->nstatics++;
            else
                cp2p_multiaddr_free(&s->addr);
        }
    }
    if (!rc)
        rc = cp2p_host_set_handler(h, CP2P_RELAY_STOP_PROTOCOL_ID, on_stop, c);
    if (!rc && (rc = cp2p_host_subscribe(h, on_host_event, c)))
        cp2p_host_remove_handler(h, CP2P_RELAY_STOP_PROTOCOL_ID);
    if (rc) {
        for (size_t i = 0; i < c->nstatics; i++)
            cp2p_multiaddr_free(&c->statics[i].addr);
        free(c);
        return rc;
    }
    cp2p_host_ext_transport_t t = {c, ext_matches, ext_listen, ext_listen_addrs, ext_dial,
                                   ext_dial_cancel};
    cp2p_host_set_ext_transport(h, &t);
    uv_timer_init(cp2p_host_loop(h), &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    *out = c;
    return 0;
}

static void tick_closed(uv_handle_t *t)
{
    cp2p_relay_client_t *c = t->data;
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    for (size_t i = 0; i < c->nstatics; i++)
        cp2p_multiaddr_free(&c->statics[i].addr);
    free(c);
    if (done)
        done(arg);
}

void cp2p_relay_client_close(cp2p_relay_client_t *c, void (*done)(void *arg), void *arg)
{
    if (!c || c->closing)
        return;
    c->closing = 1;
    c->done = done;
    c->done_arg = arg;
    cp2p_host_set_ext_transport(c->h, NULL);
    cp2p_host_remove_handler(c->h, CP2P_RELAY_STOP_PROTOCOL_ID);
    cp2p_host_unsubscribe(c->h, on_host_event, c);
    int had = 0;
    while (c->rsvs) {
        had |= c->rsvs->reserved;
        rsv_remove(c->rsvs);
    }
    while (c->stops)
        stop_end(c->stops, 1);
    /* Dials under way never report: the swarm's own deadline ends them. */
    while (c->dials) {
        cdial_t *d = c->dials;
        cdial_unlink(d);
        d->cancelled = 1;
        cdial_maybe_free(d);
    }
    if (had)
        cp2p_host_addrs_changed(c->h, NULL);
    uv_close((uv_handle_t *)&c->tick, tick_closed);
}
