/* Streams over a connection's muxer, each negotiated with multistream-select
 * (libp2p connections spec, protocol negotiation), with end-to-end backpressure. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "core/iobuf.h"
#include "swarm/swarm.h"

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
    /* Resource manager: the transient scope while negotiating, then the
     * protocol's (NULL: none); the direction reserved (0 once given back)
     * and the memory charged to that scope. */
    cp2p_rc_scope_t *scope;
    cp2p_rc_kind_t rc_dir;
    size_t scope_mem;

    wreq_t *whead, *wtail;
    size_t wbytes;     /* bytes the muxer has not taken yet */
    int queue_ref;     /* a non-empty queue holds one reference */
    int close_pending, write_closed;
    int pumping;

    /* Callbacks owed (libuv's rule: never inside the call that caused
     * them), delivered in this order on a later loop turn: writes the muxer
     * took, the end, data buffered for a reader that started. */
    wreq_t *dhead, *dtail;
    int end_owed, end_status;
    stream_state_t end_was;
    int drain_owed;
    int later;         /* queued for delivery; the queue holds a reference */
};

static void drain(cp2p_stream_t *s);

/* Inside a public call of this swarm, or past the swarm's life (an API call
 * on a dead stream): callbacks wait for a later loop turn. */
static int deferring(const cp2p_stream_t *s)
{
    return !s->conn->sw || cp2p_swarm_in_call(s->conn->sw);
}

static void enter_conn(cp2p_conn_t *c)
{
    if (c->sw)
        cp2p_swarm_enter(c->sw);
}

static void enter(cp2p_stream_t *s)
{
    enter_conn(s->conn);
}

static void leave(cp2p_conn_t *c)
{
    if (c->sw)
        cp2p_swarm_leave(c->sw);
}

/* A public call on s: both s and its connection stay alive through it, and
 * the callbacks it causes are owed (call_end returns what call_begin took). */
static cp2p_conn_t *call_begin(cp2p_stream_t *s)
{
    cp2p_conn_t *c = s->conn;
    cp2p_conn_ref(c);
    s->refs++;
    enter(s);
    return c;
}

static void call_end(cp2p_stream_t *s, cp2p_conn_t *c)
{
    cp2p_stream_unref(s);
    leave(c);
    cp2p_conn_unref(c);
}

/* ---- resources ---- */

/* The stream's scopes: its peer's (or the transient one of a connection
 * still upgrading), its own (transient or protocol) and the system's. */
static size_t scopes_of(cp2p_conn_t *c, cp2p_rc_scope_t *own, cp2p_rc_scope_t **sc)
{
    cp2p_rcmgr_t *m = cp2p_swarm_rcmgr(c->sw);
    sc[0] = c->owner;
    sc[1] = own;
    sc[2] = cp2p_rcmgr_system(m);
    return 3;
}

/* A new stream takes one of kind in its scopes; 0 or CP2P_ELIMIT (counted
 * and logged). */
static int reserve_stream(cp2p_conn_t *c, cp2p_rc_kind_t kind, const char *what)
{
    cp2p_rc_scope_t *sc[3], *full;
    size_t n = scopes_of(c, cp2p_rcmgr_transient(cp2p_swarm_rcmgr(c->sw)), sc);
    if (!(full = cp2p_rc_reserve(sc, n, kind, RC_STREAMS, 1)))
        return 0;
    cp2p_swarm_rc_refused(c->sw, full, what);
    return CP2P_ELIMIT;
}

static void adopt_stream(cp2p_stream_t *s, cp2p_rc_kind_t kind)
{
    s->scope = cp2p_rcmgr_transient(cp2p_swarm_rcmgr(s->conn->sw));
    s->rc_dir = kind;
}

static void unreserve_stream(cp2p_conn_t *c, cp2p_rc_scope_t *own, cp2p_rc_kind_t kind)
{
    cp2p_rc_scope_t *sc[3];
    size_t n = scopes_of(c, own, sc);
    cp2p_rc_release(sc, n, kind, RC_STREAMS, 1);
}

/* The stream ended: its count and its scope's memory go back. */
static void release_stream(cp2p_stream_t *s)
{
    if (s->rc_dir && s->conn->sw)
        unreserve_stream(s->conn, s->scope, s->rc_dir);
    s->rc_dir = 0;
    if (s->scope && s->scope_mem)
        cp2p_rc_charge(&s->scope, 1, -(long)s->scope_mem);
    s->scope_mem = 0;
    s->scope = NULL;
}

/* Negotiated: the stream leaves the transient scope for its protocol's. */
static int attach_protocol(cp2p_stream_t *s)
{
    cp2p_conn_t *c = s->conn;
    if (!s->rc_dir || !c->sw)
        return 0;
    cp2p_rc_scope_t *proto = cp2p_rcmgr_protocol(cp2p_swarm_rcmgr(c->sw), s->protocol);
    uint64_t use[RC_NKINDS] = {[RC_STREAMS] = 1, [RC_MEMORY] = s->scope_mem};
    use[s->rc_dir] = 1;
    cp2p_rc_scope_t *full = cp2p_rc_move(use, s->scope, proto);
    if (full) {
        cp2p_swarm_stats(c->sw)->streams_refused++;
        cp2p_swarm_rc_refused(c->sw, full, s->inbound ? "inbound stream reset" : "stream open failed");
        return CP2P_ELIMIT;
    }
    /* Without a scope of its own (past CP2P_RCMGR_MAX_PROTOCOLS) the stream
     * still counts in its peer's and the system's. */
    s->scope = proto;
    if (!proto)
        s->scope_mem = 0;
    return 0;
}

/* Memory the stream holds for its remote: its connection's scopes and its
 * own. CP2P_ELIMIT when that took its protocol over its memory limit. */
static int charge(cp2p_stream_t *s, long delta)
{
    cp2p_rc_scope_t *own = s->scope;
    cp2p_conn_charge(s->conn, own, delta);
    if (!own)
        return 0;
    s->scope_mem += (size_t)delta;
    if (delta <= 0 || own->type != CP2P_RC_SCOPE_PROTOCOL || !cp2p_rc_mem_over(own))
        return 0;
    cp2p_rc_refuse(own, RC_MEMORY);
    if (s->conn->sw)
        cp2p_swarm_rc_refused(s->conn->sw, own, "stream reset");
    return CP2P_ELIMIT;
}

int cp2p_stream_charge(cp2p_stream_t *s, long delta)
{
    return charge(s, delta);
}

/* Keep the swarm's memory in step with what rbuf holds. */
static int charge_rbuf(cp2p_stream_t *s)
{
    int rc = 0;
    if (s->rbuf.len != s->charged) {
        rc = charge(s, (long)s->rbuf.len - (long)s->charged);
        s->charged = s->rbuf.len;
    }
    return rc;
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
    enter(s); /* the reset below may take the connection down */
    if (s->state == ST_OPEN)
        count_end(s);
    release_stream(s);
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
    leave(c);
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

typedef struct later_timer {
    uv_timer_t timer;
    cp2p_stream_t *s;
} later_timer_t;

static void later_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_later_timer(uv_timer_t *t)
{
    later_timer_t *l = t->data;
    cp2p_stream_run_later(l->s);
    uv_close((uv_handle_t *)&l->timer, later_timer_closed);
}

static void run_later(void *s)
{
    cp2p_stream_run_later(s);
}

/* Queue the stream for cp2p_stream_run_later: the swarm's queue, or a
 * timer of its own once the swarm let go of the connection. */
static void schedule(cp2p_stream_t *s)
{
    if (s->later)
        return;
    s->later = 1;
    s->refs++;
    if (s->conn->sw && cp2p_swarm_later(s->conn->sw, run_later, s) == 0)
        return;
    later_timer_t *l = malloc(sizeof *l);
    if (!l || uv_timer_init(s->conn->loop, &l->timer)) {
        free(l);
        cp2p_stream_run_later(s); /* out of memory: better late than never */
        return;
    }
    l->timer.data = l;
    l->s = s;
    uv_timer_start(&l->timer, on_later_timer, 0, 0);
}

/* A write the muxer took in full: its callback, now or owed. */
static void write_done(cp2p_stream_t *s, wreq_t *w)
{
    if (!w->cb) {
        wreq_free(w);
        return;
    }
    if (!deferring(s) && !s->dhead) {
        w->cb(s, 0, w->arg);
        wreq_free(w);
        return;
    }
    w->next = NULL;
    if (s->dtail)
        s->dtail->next = w;
    else
        s->dhead = w;
    s->dtail = w;
    schedule(s);
}

void cp2p_stream_run_later(cp2p_stream_t *s)
{
    s->later = 0;
    while (s->dhead) {
        wreq_t *w = s->dhead;
        if (!(s->dhead = w->next))
            s->dtail = NULL;
        w->cb(s, 0, w->arg);
        wreq_free(w);
    }
    /* Only the queue's reference left: the application dropped the stream
     * (and nothing is queued or negotiating), so nobody is told, as when
     * the last reference goes before the end. */
    int held = s->refs > 1;
    if (s->end_owed) {
        s->end_owed = 0;
        if (held)
            notify_end(s, s->end_was, s->end_status);
    }
    if (s->drain_owed) {
        s->drain_owed = 0;
        if (held)
            drain(s);
    }
    cp2p_stream_unref(s); /* the queue's */
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
    release_stream(s);
    s->refs++;
    if (mux_alive(s))
        s->conn->muxvt->reset(s->conn->mux, s->id);
    s->released = 1;
    detach(s);
    check_hold(s);
    if (deferring(s) || s->later) {
        s->end_owed = 1;
        s->end_was = was;
        s->end_status = status;
        schedule(s);
    } else {
        notify_end(s, was, status);
    }
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
            write_done(s, w);
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
    cp2p_conn_t *c = call_begin(s);
    int rc = stream_write(s, p, n, cb, arg);
    call_end(s, c);
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
    /* The callback of a write taken at once is owed: a record for it now,
     * so that nothing can fail once bytes are on their way. */
    wreq_t *done = NULL;
    if (cb && !(done = malloc(sizeof *done)))
        return CP2P_ENOMEM;
    /* Nothing queued ahead: the muxer seals straight from the caller's
     * memory, and only what it cannot take now is copied. An error is left
     * to pump(), which ends the stream as for any queued write. */
    if (!s->whead && cp2p_conn_writable(c)) {
        long k = c->muxvt->write(c->mux, s->id, p, n);
        if (k > 0) {
            took = (size_t)k;
            cp2p_swarm_stats_t *st = stats_of(s);
            if (st)
                st->bytes_out += (uint64_t)k;
        }
    }
    if (took == n) {
        if (done) {
            *done = (wreq_t){.cb = cb, .arg = arg};
            write_done(s, done);
        }
        cp2p_conn_flush(c);
        return 0;
    }
    free(done);
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

long cp2p_stream_try_write(cp2p_stream_t *s, const uint8_t *p, size_t n)
{
    if (s->state == ST_DEAD)
        return s->err ? s->err : CP2P_ERESET;
    if (s->state != ST_OPEN || s->write_closed || s->close_pending)
        return CP2P_ESTATE;
    if (s->whead || !n || !cp2p_conn_writable(s->conn))
        return 0;
    cp2p_conn_t *c = call_begin(s);
    long k = c->muxvt->write(c->mux, s->id, p, n);
    if (k > 0) {
        cp2p_swarm_stats_t *st = stats_of(s);
        if (st)
            st->bytes_out += (uint64_t)k;
        cp2p_conn_flush(c);
    } else if (k < 0) {
        stream_end(s, (int)k);
    }
    call_end(s, c);
    return k;
}

int cp2p_stream_close_write(cp2p_stream_t *s)
{
    if (s->state != ST_OPEN || s->write_closed || s->close_pending)
        return s->state == ST_DEAD ? CP2P_ERESET : CP2P_ESTATE;
    s->close_pending = 1;
    cp2p_conn_t *c = call_begin(s);
    if (!s->whead)
        pump(s);
    cp2p_conn_flush(c);
    call_end(s, c);
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
    enter(s);
    stream_end(s, CP2P_ERESET);
    cp2p_conn_flush(c);
    leave(c);
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
    /* What is buffered comes on a later turn (so does what arrives in
     * between: it queues behind it). */
    if (s->rbuf.len || s->err || (s->eof && !s->eof_told)) {
        s->drain_owed = 1;
        schedule(s);
    }
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
    int rc = attach_protocol(s);
    if (!rc)
        rc = charge_rbuf(s);
    if (rc) {
        stream_end(s, rc);
        return;
    }
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

static int open_stream(cp2p_conn_t *c, const char *const *protocols, size_t n,
                       cp2p_stream_open_cb cb, void *arg);

int cp2p_conn_open_stream(cp2p_conn_t *c, const char *const *protocols, size_t n,
                          cp2p_stream_open_cb cb, void *arg)
{
    cp2p_conn_ref(c);
    enter_conn(c);
    int rc = open_stream(c, protocols, n, cb, arg);
    leave(c);
    cp2p_conn_unref(c);
    return rc;
}

static int open_stream(cp2p_conn_t *c, const char *const *protocols, size_t n,
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
    if ((rc = reserve_stream(c, RC_STREAMS_OUT, "stream open failed"))) {
        cp2p_mss_free(mss);
        return rc;
    }
    cp2p_rc_scope_t *tr = cp2p_rcmgr_transient(cp2p_swarm_rcmgr(c->sw));
    cp2p_mux_stream_id_t id;
    if ((rc = c->muxvt->open_stream(c->mux, &id))) {
        unreserve_stream(c, tr, RC_STREAMS_OUT);
        cp2p_mss_free(mss);
        return rc;
    }
    cp2p_stream_t *s = stream_new(c, id, 0);
    if (!s) {
        unreserve_stream(c, tr, RC_STREAMS_OUT);
        c->muxvt->reset(c->mux, id);
        cp2p_mss_free(mss);
        return CP2P_ENOMEM;
    }
    adopt_stream(s, RC_STREAMS_OUT);
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
        cp2p_swarm_stats(c->sw)->streams_refused++;
        return CP2P_ELIMIT;
    }
    if (reserve_stream(c, RC_STREAMS_IN, "inbound stream refused")) {
        cp2p_swarm_stats(c->sw)->streams_refused++;
        return CP2P_ELIMIT;
    }
    cp2p_stream_t *s = stream_new(c, id, 1);
    if (!s) {
        unreserve_stream(c, cp2p_rcmgr_transient(cp2p_swarm_rcmgr(c->sw)), RC_STREAMS_IN);
        return CP2P_ENOMEM;
    }
    adopt_stream(s, RC_STREAMS_IN);
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
    } else if (charge_rbuf(s)) {
        cp2p_swarm_stats(s->conn->sw)->streams_refused++;
        stream_end(s, CP2P_ELIMIT);
    } else {
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
