/* Streams over a connection's muxer, each negotiated with multistream-select
 * (libp2p connections spec, protocol negotiation), with end-to-end backpressure. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "core/iobuf.h"
#include "swarm/swarm.h"

/* How deep write callbacks that write again may nest before writes are
 * queued instead (the stack stays small however tiny the writes). */
#define MAX_NESTED_WRITES 8

typedef struct wreq {
    struct wreq *next;
    size_t off, len;
    int payload;       /* the application's, not multistream-select's */
    int pooled;        /* the memory is an I/O buffer from the pool */
    cp2p_stream_write_cb cb;
    void *arg;
    uint8_t data[];
} wreq_t;

typedef enum { ST_NEGOTIATING, ST_OPEN, ST_DEAD } stream_state_t;

struct cp2p_stream {
    int refs;
    cp2p_conn_t *conn; /* a reference */
    cp2p_mux_stream_id_t id;
    int inbound;
    stream_state_t state;
    int released;      /* the muxer has forgotten the id */

    cp2p_mss_t *mss;   /* while negotiating; holds one reference */
    size_t neg_in;     /* bytes given to mss, to report as consumed */
    uint64_t deadline;
    cp2p_stream_open_cb open_cb;
    void *open_arg;
    char *protocol;

    cp2p_stream_read_cb rcb;
    void *rarg;
    int reading;
    int delivering;
    cp2p_buf_t rbuf;   /* received, not yet delivered; consumed() not yet called */
    int eof, eof_told;
    int err;           /* to tell the reader when it starts */
    int holding;       /* rbuf is over the limit: the connection stops reading */
    size_t charged;    /* rbuf bytes counted in the swarm's memory */

    wreq_t *whead, *wtail;
    size_t wbytes;     /* bytes the muxer has not taken yet */
    int queue_ref;     /* a non-empty queue holds one reference */
    int close_pending, write_closed;
    int pumping;
    int nested;        /* write callbacks run from cp2p_stream_write, one inside another */
    int in_call;       /* inside cp2p_stream_write or close_write: an end is told later */
};

void cp2p_stream_charge(cp2p_stream_t *s, long delta)
{
    cp2p_conn_charge(s->conn, delta);
}

/* Keep the swarm's memory in step with what rbuf holds. */
static void charge_rbuf(cp2p_stream_t *s)
{
    if (s->rbuf.len != s->charged) {
        cp2p_conn_charge(s->conn, (long)s->rbuf.len - (long)s->charged);
        s->charged = s->rbuf.len;
    }
}

static void wreq_free(wreq_t *w)
{
    if (w->pooled)
        cp2p_iobuf_put((uint8_t *)w);
    else
        free(w);
}

/* The swarm's counters, or NULL once the swarm let go of the connection. */
static cp2p_swarm_stats_t *stats_of(cp2p_stream_t *s)
{
    return s->conn->sw ? cp2p_swarm_stats(s->conn->sw) : NULL;
}

/* An open stream ends (closed, reset or dropped). */
static void count_end(cp2p_stream_t *s)
{
    cp2p_swarm_stats_t *st = stats_of(s);
    if (st && st->streams_open)
        st->streams_open--;
}

static cp2p_stream_t *find(cp2p_conn_t *c, cp2p_mux_stream_id_t id)
{
    for (size_t i = 0; i < c->nstreams; i++)
        if (c->streams[i]->id == id)
            return c->streams[i];
    return NULL;
}

static void detach(cp2p_stream_t *s)
{
    cp2p_conn_t *c = s->conn;
    for (size_t i = 0; i < c->nstreams; i++)
        if (c->streams[i] == s) {
            c->streams[i] = c->streams[--c->nstreams];
            return;
        }
}

static int mux_alive(const cp2p_stream_t *s)
{
    return !s->released && s->conn->state == CONN_OPEN;
}

/* Only a muxer without flow control (mplex) lets rbuf pass the limit; yamux
 * grants no window beyond it. */
static void check_hold(cp2p_stream_t *s)
{
    int over = s->state != ST_DEAD && s->rbuf.len > s->conn->cfg.max_stream_buffer;
    if (over != s->holding) {
        s->holding = over;
        cp2p_conn_hold_input(s->conn, over);
    }
}

static cp2p_stream_t *stream_new(cp2p_conn_t *c, cp2p_mux_stream_id_t id, int inbound)
{
    if (c->nstreams == c->cap_streams) {
        size_t cap = c->cap_streams ? c->cap_streams * 2 : 8;
        cp2p_stream_t **a = realloc(c->streams, cap * sizeof *a);
        if (!a)
            return NULL;
        c->streams = a;
        c->cap_streams = cap;
    }
    cp2p_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->refs = 1;
    s->conn = c;
    cp2p_conn_ref(c);
    s->id = id;
    s->inbound = inbound;
    s->deadline = uv_now(c->sock->loop) + c->cfg.negotiate_timeout_ms;
    c->streams[c->nstreams++] = s;
    cp2p_conn_watch(c);
    return s;
}

void cp2p_stream_ref(cp2p_stream_t *s)
{
    s->refs++;
}

void cp2p_stream_unref(cp2p_stream_t *s)
{
    if (--s->refs > 0)
        return;
    cp2p_conn_t *c = s->conn;
    if (s->state == ST_OPEN)
        count_end(s);
    /* Dropping the last reference to a stream still open both ways aborts it. */
    if (mux_alive(s))
        c->muxvt->reset(c->mux, s->id);
    detach(s);
    if (s->holding) {
        s->holding = 0;
        cp2p_conn_hold_input(c, 0);
    }
    if (s->mss)
        cp2p_mss_free(s->mss);
    free(s->protocol);
    cp2p_buf_free(&s->rbuf);
    charge_rbuf(s);
    free(s);
    cp2p_conn_flush(c);
    cp2p_conn_unref(c);
}

static void release_if_done(cp2p_stream_t *s)
{
    if (s->write_closed && s->eof && mux_alive(s)) {
        s->conn->muxvt->release(s->conn->mux, s->id);
        s->released = 1;
    }
}

/* The stream is over: fail what waits on it. */
/* The callbacks of an ended stream: its queued writes fail, then its
 * opener or its reader is told. */
static void notify_end(cp2p_stream_t *s, stream_state_t was, int status)
{
    while (s->whead) {
        wreq_t *w = s->whead;
        s->whead = w->next;
        if (w->cb)
            w->cb(s, status, w->arg);
        wreq_free(w);
    }
    s->wtail = NULL;
    s->wbytes = 0;
    if (s->queue_ref) {
        s->queue_ref = 0;
        s->refs--;
    }
    if (was == ST_NEGOTIATING) {
        cp2p_stream_open_cb cb = s->open_cb;
        s->open_cb = NULL;
        if (cb)
            cb(status, NULL, s->open_arg);
        s->refs--; /* the negotiation's */
    } else if (s->reading) {
        s->reading = 0;
        s->rcb(s, status, NULL, 0, s->rarg);
    } else {
        s->err = status;
    }
}

typedef struct deferred_end {
    uv_timer_t timer;
    cp2p_stream_t *s;
    stream_state_t was;
    int status;
} deferred_end_t;

static void deferred_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_deferred_end(uv_timer_t *t)
{
    deferred_end_t *d = t->data;
    cp2p_stream_t *s = d->s;
    notify_end(s, d->was, d->status);
    cp2p_stream_unref(s);
    uv_close((uv_handle_t *)&d->timer, deferred_closed);
}

/* A stream that dies inside one of its own calls (a write the muxer
 * refuses) tells its callbacks on a later loop turn (libuv's rule): the
 * caller may be in the middle of using what a callback would free. */
static void defer_end(cp2p_stream_t *s, stream_state_t was, int status)
{
    deferred_end_t *d = malloc(sizeof *d);
    if (!d || uv_timer_init(s->conn->sock->loop, &d->timer)) {
        free(d);
        notify_end(s, was, status); /* out of memory: better late than never */
        return;
    }
    d->timer.data = d;
    d->s = s;
    d->was = was;
    d->status = status;
    s->refs++;
    uv_timer_start(&d->timer, on_deferred_end, 0, 0);
}

static void stream_end(cp2p_stream_t *s, int status)
{
    if (s->state == ST_DEAD)
        return;
    stream_state_t was = s->state;
    s->state = ST_DEAD;
    /* An open stream's EOF comes through eof/drain: a dead muxer or
     * connection is a broken stream, never a clean end for its reader. */
    if (was == ST_OPEN && status == CP2P_ECLOSED)
        status = CP2P_ERESET;
    if (was == ST_OPEN)
        count_end(s);
    s->refs++;
    if (mux_alive(s))
        s->conn->muxvt->reset(s->conn->mux, s->id);
    s->released = 1;
    detach(s);
    check_hold(s);
    if (s->in_call)
        defer_end(s, was, status);
    else
        notify_end(s, was, status);
    cp2p_stream_unref(s);
}

static void pump(cp2p_stream_t *s)
{
    cp2p_conn_t *c = s->conn;
    if (s->pumping)
        return;
    s->pumping = 1;
    s->refs++;
    while (s->whead && s->state != ST_DEAD) {
        if (!cp2p_conn_writable(c)) {
            c->blocked = 1;
            break;
        }
        wreq_t *w = s->whead;
        long k = c->muxvt->write(c->mux, s->id, w->data + w->off, w->len - w->off);
        if (k < 0) {
            stream_end(s, (int)k);
            break;
        }
        if (k == 0)
            break; /* no window: stream_writable will call again */
        w->off += (size_t)k;
        s->wbytes -= (size_t)k;
        cp2p_swarm_stats_t *st = w->payload ? stats_of(s) : NULL;
        if (st)
            st->bytes_out += (uint64_t)k;
        if (w->off == w->len) {
            s->whead = w->next;
            if (!s->whead)
                s->wtail = NULL;
            if (w->cb)
                w->cb(s, 0, w->arg);
            wreq_free(w);
        }
    }
    if (!s->whead && s->state != ST_DEAD) {
        if (s->close_pending && mux_alive(s)) {
            s->close_pending = 0;
            s->write_closed = 1;
            int rc = c->muxvt->close_write(c->mux, s->id);
            if (rc < 0)
                stream_end(s, rc);
            else
                release_if_done(s);
        }
        if (s->queue_ref) {
            s->queue_ref = 0;
            s->refs--;
        }
    }
    s->pumping = 0;
    cp2p_stream_unref(s);
}

static int enqueue(cp2p_stream_t *s, const uint8_t *p, size_t n, cp2p_stream_write_cb cb, void *arg)
{
    /* A bulk write that waits for window is copied into warm pooled memory,
     * not into a fresh mapping that faults on every page. */
    int pooled = n >= 16 * 1024 && sizeof(wreq_t) + n <= CP2P_IOBUF_SIZE;
    wreq_t *w = pooled ? (wreq_t *)cp2p_iobuf_get() : malloc(sizeof *w + n);
    if (!w)
        return CP2P_ENOMEM;
    w->pooled = pooled;
    memcpy(w->data, p, n);
    w->next = NULL;
    w->payload = 0;
    w->off = 0;
    w->len = n;
    w->cb = cb;
    w->arg = arg;
    if (s->wtail)
        s->wtail->next = w;
    else
        s->whead = w;
    s->wtail = w;
    s->wbytes += n;
    if (!s->queue_ref) {
        s->queue_ref = 1;
        s->refs++;
    }
    return 0;
}

static int stream_write(cp2p_stream_t *s, const uint8_t *p, size_t n, cp2p_stream_write_cb cb,
                        void *arg);

int cp2p_stream_write(cp2p_stream_t *s, const uint8_t *p, size_t n, cp2p_stream_write_cb cb, void *arg)
{
    s->refs++;
    s->in_call++;
    int rc = stream_write(s, p, n, cb, arg);
    s->in_call--;
    cp2p_stream_unref(s);
    return rc;
}

static int stream_write(cp2p_stream_t *s, const uint8_t *p, size_t n, cp2p_stream_write_cb cb,
                        void *arg)
{
    if (s->state == ST_DEAD)
        return s->err ? s->err : CP2P_ERESET;
    if (s->state != ST_OPEN || s->write_closed || s->close_pending)
        return CP2P_ESTATE;
    if (s->whead && s->wbytes + n > s->conn->cfg.max_stream_buffer)
        return CP2P_EAGAIN;
    cp2p_conn_t *c = s->conn;
    size_t took = 0;
    /* Nothing queued ahead: the muxer seals straight from the caller's
     * memory, and only what it cannot take now is copied. An error is left
     * to pump(), which ends the stream as for any queued write. */
    if (!s->whead && s->nested < MAX_NESTED_WRITES && cp2p_conn_writable(c)) {
        long k = c->muxvt->write(c->mux, s->id, p, n);
        if (k > 0) {
            took = (size_t)k;
            cp2p_swarm_stats_t *st = stats_of(s);
            if (st)
                st->bytes_out += (uint64_t)k;
        }
    }
    if (took == n) {
        s->refs++; /* the callback may drop the caller's reference */
        /* Out to the socket before the callback seals more: the remote
         * decrypts this while we encrypt the next. */
        cp2p_conn_flush(c);
        if (cb) {
            s->nested++;
            cb(s, 0, arg);
            s->nested--;
        }
        cp2p_conn_flush(c);
        cp2p_stream_unref(s);
        return 0;
    }
    int rc = enqueue(s, p + took, n - took, cb, arg);
    if (rc && took) {
        /* Part of the write is on its way: the stream cannot go on. */
        stream_end(s, rc);
        return rc;
    }
    if (rc)
        return rc;
    s->wtail->payload = 1;
    pump(s);
    cp2p_conn_flush(s->conn);
    return 0;
}

int cp2p_stream_close_write(cp2p_stream_t *s)
{
    if (s->state != ST_OPEN || s->write_closed || s->close_pending)
        return s->state == ST_DEAD ? CP2P_ERESET : CP2P_ESTATE;
    s->close_pending = 1;
    s->refs++;
    s->in_call++;
    if (!s->whead)
        pump(s);
    cp2p_conn_flush(s->conn);
    s->in_call--;
    cp2p_stream_unref(s);
    return 0;
}

int cp2p_stream_reset(cp2p_stream_t *s)
{
    /* Our own reset is not news to our reader, even when the stream is
     * already dying (a write callback of its end may be the caller). */
    s->reading = 0;
    if (s->state == ST_DEAD)
        return 0;
    cp2p_conn_t *c = s->conn;
    cp2p_conn_ref(c);
    stream_end(s, CP2P_ERESET);
    cp2p_conn_flush(c);
    cp2p_conn_unref(c);
    return 0;
}

static void consumed(cp2p_stream_t *s, size_t n)
{
    if (n && mux_alive(s))
        s->conn->muxvt->consumed(s->conn->mux, s->id, n);
}

/* Give the reader what is buffered, then EOF or an error. */
static void drain(cp2p_stream_t *s)
{
    if (s->delivering)
        return;
    s->delivering = 1;
    s->refs++;
    while (s->reading && s->rbuf.len) {
        cp2p_buf_t b = s->rbuf;
        memset(&s->rbuf, 0, sizeof s->rbuf);
        s->rcb(s, 0, b.data, b.len, s->rarg);
        consumed(s, b.len);
        cp2p_buf_free(&b);
        charge_rbuf(s);
    }
    check_hold(s);
    if (s->reading && s->eof && !s->eof_told && !s->rbuf.len) {
        s->eof_told = 1;
        s->rcb(s, CP2P_ECLOSED, NULL, 0, s->rarg);
    }
    if (s->reading && s->err) {
        int e = s->err;
        s->err = 0;
        s->reading = 0;
        s->rcb(s, e, NULL, 0, s->rarg);
    }
    s->delivering = 0;
    cp2p_stream_unref(s);
}

int cp2p_stream_read_start(cp2p_stream_t *s, cp2p_stream_read_cb cb, void *arg)
{
    if (!cb)
        return CP2P_EINVAL;
    if (s->state == ST_DEAD && !s->err && !s->rbuf.len) {
        /* Nothing more will be delivered: a reader registered before (say
         * by a write callback of a dying stream) is not called either. */
        s->reading = 0;
        return CP2P_ERESET;
    }
    s->rcb = cb;
    s->rarg = arg;
    s->reading = 1;
    cp2p_stream_ref(s); /* the read callback may drop the caller's last reference */
    drain(s);
    cp2p_conn_flush(s->conn);
    cp2p_stream_unref(s);
    return 0;
}

int cp2p_stream_read_stop(cp2p_stream_t *s)
{
    s->reading = 0;
    return 0;
}

const char *cp2p_stream_protocol(const cp2p_stream_t *s)
{
    return s->protocol;
}

const cp2p_peer_id_t *cp2p_stream_peer(const cp2p_stream_t *s)
{
    return &s->conn->peer;
}

cp2p_conn_t *cp2p_stream_conn(cp2p_stream_t *s)
{
    return s->conn;
}

int cp2p_stream_is_inbound(const cp2p_stream_t *s)
{
    return s->inbound;
}

/* ---- negotiation ---- */

static int match_protocol(void *ctx, const char *id, size_t len)
{
    cp2p_stream_t *s = ctx;
    cp2p_swarm_t *sw = s->conn->sw;
    if (!sw)
        return 0;
    const cp2p_swarm_hooks_t *h = cp2p_swarm_hooks(sw);
    return h->match && h->match(h->ctx, id, len);
}

static int send_mss(cp2p_stream_t *s, cp2p_buf_t *out)
{
    int rc = out->len ? enqueue(s, out->data, out->len, NULL, NULL) : 0;
    cp2p_buf_free(out);
    if (!rc)
        pump(s);
    return rc;
}

static void negotiated(cp2p_stream_t *s)
{
    size_t ln;
    const uint8_t *lo = cp2p_mss_leftover(s->mss, &ln);
    s->protocol = strdup(cp2p_mss_selected(s->mss));
    if (!s->protocol || cp2p_buf_append(&s->rbuf, lo, ln)) {
        stream_end(s, CP2P_ENOMEM);
        return;
    }
    charge_rbuf(s);
    /* The leftover is application data: consumed once the reader has it. */
    consumed(s, s->neg_in - ln);
    cp2p_mss_free(s->mss);
    s->mss = NULL;
    s->state = ST_OPEN;
    cp2p_swarm_stats_t *st = stats_of(s);
    if (st) {
        st->streams_open++;
        st->bytes_in += ln;
        if (s->inbound)
            st->streams_in++;
        else
            st->streams_out++;
    }
    cp2p_swarm_t *sw = s->conn->sw;
    if (!s->inbound) {
        cp2p_stream_open_cb cb = s->open_cb;
        s->open_cb = NULL;
        cb(0, s, s->open_arg); /* hands over the negotiation's reference */
    } else if (sw && cp2p_swarm_hooks(sw)->inbound_stream) {
        const cp2p_swarm_hooks_t *h = cp2p_swarm_hooks(sw);
        h->inbound_stream(h->ctx, s);
    } else {
        stream_end(s, CP2P_ECLOSED);
        cp2p_stream_unref(s);
    }
}

static void negotiate_input(cp2p_stream_t *s, const uint8_t *p, size_t n)
{
    cp2p_buf_t out = {0};
    s->neg_in += n;
    int rc = cp2p_mss_input(s->mss, p, n, &out);
    int wrc = send_mss(s, &out);
    if (rc >= 0 && wrc)
        rc = wrc;
    if (rc == CP2P_MSS_DONE)
        negotiated(s);
    else if (rc < 0) {
        cp2p_swarm_stats_t *st = stats_of(s);
        if (rc != CP2P_ENEGOTIATE) {
            cp2p_conn_violation(s->conn, "stream negotiation", rc);
            if (st)
                st->streams_bad++;
        }
        stream_end(s, rc);
    }
}

int cp2p_conn_open_stream(cp2p_conn_t *c, const char *const *protocols, size_t n,
                          cp2p_stream_open_cb cb, void *arg)
{
    if (!cb || !protocols || n == 0)
        return CP2P_EINVAL;
    if (c->state != CONN_OPEN)
        return CP2P_ECLOSED;
    if (c->nstreams >= c->cfg.max_streams_per_conn)
        return CP2P_ELIMIT;
    cp2p_mss_t *mss;
    int rc = cp2p_mss_dialer_new(&mss, protocols, n, 0);
    if (rc)
        return rc;
    cp2p_mux_stream_id_t id;
    if ((rc = c->muxvt->open_stream(c->mux, &id))) {
        cp2p_mss_free(mss);
        return rc;
    }
    cp2p_stream_t *s = stream_new(c, id, 0);
    if (!s) {
        c->muxvt->reset(c->mux, id);
        cp2p_mss_free(mss);
        return CP2P_ENOMEM;
    }
    s->mss = mss;
    s->open_cb = cb;
    s->open_arg = arg;
    cp2p_buf_t out = {0};
    rc = cp2p_mss_start(mss, &out);
    if (!rc)
        rc = send_mss(s, &out);
    else
        cp2p_buf_free(&out);
    if (rc) {
        s->open_cb = NULL;
        stream_end(s, rc);
        return rc;
    }
    cp2p_conn_flush(c);
    return 0;
}

/* ---- muxer events ---- */

static int ev_send(void *ctx, const uint8_t *p, size_t n)
{
    return cp2p_conn_send(ctx, p, n);
}

static int ev_opened(void *ctx, cp2p_mux_stream_id_t id)
{
    cp2p_conn_t *c = ctx;
    if (c->state != CONN_OPEN || !c->sw)
        return CP2P_ECLOSED;
    if (c->nstreams >= c->cfg.max_streams_per_conn) {
        cp2p_log_debug("swarm", "inbound stream refused: %u streams", (unsigned)c->nstreams);
        return CP2P_ELIMIT;
    }
    cp2p_stream_t *s = stream_new(c, id, 1);
    if (!s)
        return CP2P_ENOMEM;
    cp2p_buf_t out = {0};
    int rc = cp2p_mss_listener_new(&s->mss, NULL, 0, match_protocol, s);
    if (!rc)
        rc = cp2p_mss_start(s->mss, &out);
    if (!rc)
        rc = send_mss(s, &out);
    else
        cp2p_buf_free(&out);
    if (rc) {
        s->released = 1; /* the session resets it on our refusal */
        stream_end(s, rc);
    }
    return rc;
}

static void ev_data(void *ctx, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n)
{
    cp2p_stream_t *s = find(ctx, id);
    if (!s)
        return;
    s->refs++;
    cp2p_swarm_stats_t *st = stats_of(s);
    if (st && s->state == ST_OPEN)
        st->bytes_in += n;
    if (s->state == ST_NEGOTIATING) {
        negotiate_input(s, p, n);
    } else if (s->reading && !s->rbuf.len && !s->delivering) {
        s->rcb(s, 0, p, n, s->rarg);
        consumed(s, n);
    } else if (cp2p_buf_append(&s->rbuf, p, n)) {
        stream_end(s, CP2P_ENOMEM);
    } else {
        charge_rbuf(s);
        check_hold(s);
    }
    cp2p_stream_unref(s);
}

static void ev_eof(void *ctx, cp2p_mux_stream_id_t id)
{
    cp2p_stream_t *s = find(ctx, id);
    if (!s)
        return;
    s->refs++;
    if (s->state == ST_NEGOTIATING) {
        stream_end(s, CP2P_ECLOSED);
    } else {
        s->eof = 1;
        release_if_done(s);
        drain(s);
    }
    cp2p_stream_unref(s);
}

static void ev_reset(void *ctx, cp2p_mux_stream_id_t id)
{
    cp2p_stream_t *s = find(ctx, id);
    if (!s)
        return;
    s->released = 1;
    stream_end(s, CP2P_ERESET);
}

static void ev_writable(void *ctx, cp2p_mux_stream_id_t id)
{
    cp2p_stream_t *s = find(ctx, id);
    if (s)
        pump(s);
}

/* Streams under way go on; new ones go to another connection. */
static void ev_goaway(void *ctx, uint32_t code)
{
    cp2p_conn_t *c = ctx;
    c->goaway = 1;
}

void cp2p_conn_mux_events(cp2p_conn_t *c, cp2p_mux_events_t *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->ctx = c;
    ev->send = ev_send;
    ev->stream_opened = ev_opened;
    ev->stream_data = ev_data;
    ev->stream_eof = ev_eof;
    ev->stream_reset = ev_reset;
    ev->stream_writable = ev_writable;
    ev->goaway = ev_goaway;
}

/* ---- the connection's view of its streams ---- */

/* Streams referenced in a snapshot, since callbacks may add or drop streams. */
static size_t snapshot(cp2p_conn_t *c, cp2p_stream_t ***out)
{
    *out = NULL;
    if (!c->nstreams)
        return 0;
    cp2p_stream_t **a = malloc(c->nstreams * sizeof *a);
    if (!a)
        return 0;
    memcpy(a, c->streams, c->nstreams * sizeof *a);
    for (size_t i = 0; i < c->nstreams; i++)
        a[i]->refs++;
    *out = a;
    return c->nstreams;
}

static void snapshot_free(cp2p_stream_t **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cp2p_stream_unref(a[i]);
    free(a);
}

void cp2p_conn_pump_streams(cp2p_conn_t *c)
{
    cp2p_stream_t **a;
    size_t n = snapshot(c, &a);
    /* pump() marks the connection blocked again if the socket fills up. */
    for (size_t i = 0; i < n; i++)
        if (a[i]->whead)
            pump(a[i]);
    snapshot_free(a, n);
}

void cp2p_conn_send_closes(cp2p_conn_t *c)
{
    /* No callbacks run here, so the array is walked as it is. */
    for (size_t i = 0; i < c->nstreams; i++) {
        cp2p_stream_t *s = c->streams[i];
        if (s->state == ST_OPEN && s->close_pending && !s->whead && mux_alive(s)) {
            s->close_pending = 0;
            s->write_closed = 1;
            c->muxvt->close_write(c->mux, s->id);
        }
    }
}

void cp2p_conn_kill_streams(cp2p_conn_t *c, int status)
{
    cp2p_stream_t **a;
    size_t n = snapshot(c, &a);
    for (size_t i = 0; i < n; i++)
        stream_end(a[i], status);
    snapshot_free(a, n);
}

int cp2p_conn_expire_streams(cp2p_conn_t *c, uint64_t now_ms)
{
    cp2p_stream_t **a;
    size_t n = snapshot(c, &a);
    int waiting = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i]->state != ST_NEGOTIATING)
            continue;
        if (a[i]->deadline <= now_ms)
            stream_end(a[i], CP2P_ETIMEOUT);
        else
            waiting = 1;
    }
    snapshot_free(a, n);
    return waiting;
}
