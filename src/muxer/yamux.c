/* Yamux stream muxer, /yamux/1.0.0, as a sans-I/O session (hashicorp/yamux
 * spec.md: framing, message flow, flow control; libp2p specs yamux/README.md). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "muxer/muxer.h"
#include "muxer/yamux.h"

#define LOG "yamux"

enum { HDR_LEN = 12 };
enum { T_DATA = 0, T_WINDOW = 1, T_PING = 2, T_GOAWAY = 3 };
enum { F_SYN = 0x1, F_ACK = 0x2, F_FIN = 0x4, F_RST = 0x8 };
enum { GOAWAY_NORMAL = 0, GOAWAY_PROTO = 1 };

/* Both sides assume this window for every new stream (spec, Flow Control). */
#define SPEC_WINDOW (256u * 1024)

#define DEFAULT_MAX_STREAMS 1024u
#define DEFAULT_MAX_WINDOW (16u * 1024 * 1024)
#define DEFAULT_MAX_FRAME (256u * 1024)
/* Data frames from this size on are sent as header and body (see send_frame). */
#define BIG_BODY (16u * 1024)

struct stream {
    struct stream *next; /* hash chain */
    cp2p_mux_stream_id_t handle;
    uint32_t id;
    uint32_t send_window; /* bytes the remote still lets us send */
    /* Receive side: recv_avail + unconsumed + pending + (bytes of the data
     * frame being read and not yet delivered) == recv_window at all times. */
    uint32_t recv_window; /* the window we grant; grows with auto-tuning */
    uint32_t recv_avail;  /* bytes the remote may send before our next update */
    uint32_t unconsumed;  /* delivered to the caller, not yet consumed() */
    uint32_t pending;     /* consumed, not yet granted back */
    uint64_t consumed_since_grow;
    unsigned ack_pending : 1; /* inbound stream not yet acknowledged */
    unsigned local_fin : 1;
    unsigned remote_fin : 1;
    unsigned want_writable : 1;
};

struct cp2p_mux {
    cp2p_mux_events_t ev;
    cp2p_mux_config_t cfg;
    int initiator;
    uint32_t next_id;
    uint32_t gen; /* makes handles unique even if the remote reuses a wire id */

    struct stream **buckets;
    size_t nbuckets;
    size_t nstreams;

    uint8_t hdr[HDR_LEN];
    size_t hdr_len;
    uint32_t body_left;               /* payload of the current data frame still to come */
    cp2p_mux_stream_id_t body_stream; /* its stream, or 0 to discard the payload */
    uint16_t body_flags;

    uint32_t ping_next;
    uint32_t pong;
    int have_pong;
    int local_goaway;
    int remote_goaway;
    int dead;
    int in_input;
    cp2p_buf_t out;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- stream table ---- */

static size_t bucket_of(const cp2p_mux_t *m, uint32_t id)
{
    return (id >> 1) & (m->nbuckets - 1);
}

static struct stream *find_id(const cp2p_mux_t *m, uint32_t id)
{
    for (struct stream *s = m->buckets[bucket_of(m, id)]; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static struct stream *find(const cp2p_mux_t *m, cp2p_mux_stream_id_t h)
{
    struct stream *s = find_id(m, (uint32_t)h);
    return s && s->handle == h ? s : NULL;
}

static int grow_table(cp2p_mux_t *m)
{
    size_t n = m->nbuckets * 2;
    struct stream **b = calloc(n, sizeof(*b));
    if (!b)
        return CP2P_ENOMEM;
    struct stream **old = m->buckets;
    size_t oldn = m->nbuckets;
    m->buckets = b;
    m->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        while (old[i]) {
            struct stream *s = old[i];
            old[i] = s->next;
            size_t k = bucket_of(m, s->id);
            s->next = b[k];
            b[k] = s;
        }
    }
    free(old);
    return 0;
}

static struct stream *new_stream(cp2p_mux_t *m, uint32_t id)
{
    if (m->nstreams >= m->nbuckets && grow_table(m) != 0)
        return NULL;
    struct stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    m->gen = m->gen == UINT32_MAX ? 1 : m->gen + 1;
    s->handle = (cp2p_mux_stream_id_t)m->gen << 32 | id;
    s->id = id;
    s->send_window = SPEC_WINDOW;
    s->recv_window = m->cfg.initial_window;
    s->recv_avail = SPEC_WINDOW;
    /* The part of our initial window above the spec's goes out with SYN/ACK. */
    s->pending = m->cfg.initial_window - SPEC_WINDOW;
    size_t k = bucket_of(m, id);
    s->next = m->buckets[k];
    m->buckets[k] = s;
    m->nstreams++;
    return s;
}

static void free_stream(cp2p_mux_t *m, struct stream *s)
{
    struct stream **pp = &m->buckets[bucket_of(m, s->id)];
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    m->nstreams--;
    free(s);
}

/* ---- output ---- */

static int send_frame(cp2p_mux_t *m, uint8_t type, uint16_t flags, uint32_t id, uint32_t len,
                      const uint8_t *body)
{
    uint8_t h[HDR_LEN];
    h[0] = 0;
    h[1] = type;
    put16(h + 2, flags);
    put32(h + 4, id);
    put32(h + 8, len);
    int rc;
    if (type != T_DATA || len == 0) {
        rc = m->ev.send(m->ev.ctx, h, HDR_LEN);
    } else if (len >= BIG_BODY) {
        /* A large body goes out from the caller's memory: copying it next to
         * its header would cost more than the security layer's few extra
         * bytes for sealing the header on its own. */
        rc = m->ev.send(m->ev.ctx, h, HDR_LEN);
        if (rc == 0)
            rc = m->ev.send(m->ev.ctx, body, len);
    } else {
        /* One send per small frame, so a security layer below seals header and payload together. */
        m->out.len = 0;
        rc = cp2p_buf_append(&m->out, h, HDR_LEN);
        if (rc == 0)
            rc = cp2p_buf_append(&m->out, body, len);
        if (rc == 0)
            rc = m->ev.send(m->ev.ctx, m->out.data, m->out.len);
    }
    /* A frame that did not go out leaves the two sides' state apart for good. */
    if (rc < 0)
        m->dead = 1;
    return rc < 0 ? rc : 0;
}

static int send_stream_frame(cp2p_mux_t *m, struct stream *s, uint8_t type, uint16_t flags,
                             uint32_t len, const uint8_t *body)
{
    if (s->ack_pending) {
        flags |= F_ACK;
        s->ack_pending = 0;
    }
    return send_frame(m, type, flags, s->id, len, body);
}

/* Grant the remote what the caller has consumed, in one window update. */
static int send_update(cp2p_mux_t *m, struct stream *s, uint16_t flags)
{
    uint32_t delta = s->pending;
    /* Auto-tuning without a clock: a reader that has consumed a whole window
     * since the window last grew and holds nothing unread keeps pace with the
     * sender, so only the window can hold the sender back: double it, up to
     * max_window. Memory stays bounded by max_window per stream. */
    if (s->unconsumed == 0 && s->consumed_since_grow >= s->recv_window &&
        s->recv_window < m->cfg.max_window) {
        uint32_t room = m->cfg.max_window - s->recv_window;
        uint32_t grow = s->recv_window < room ? s->recv_window : room;
        s->recv_window += grow;
        delta += grow;
        s->consumed_since_grow = 0;
    }
    s->pending = 0;
    s->recv_avail += delta;
    return send_stream_frame(m, s, T_WINDOW, flags, delta, NULL);
}

static int reset_stream(cp2p_mux_t *m, struct stream *s)
{
    s->ack_pending = 0; /* a bare RST is how a stream is refused */
    int rc = send_stream_frame(m, s, T_WINDOW, F_RST, 0, NULL);
    free_stream(m, s);
    return rc;
}

static int protocol_error(cp2p_mux_t *m, int rc, const char *why)
{
    cp2p_log_debug(LOG, "protocol error: %s", why);
    if (!m->dead)
        send_frame(m, T_GOAWAY, 0, 0, GOAWAY_PROTO, NULL);
    m->dead = 1;
    return rc;
}

/* ---- input ---- */

static void remote_closed(cp2p_mux_t *m, cp2p_mux_stream_id_t h)
{
    struct stream *s = find(m, h);
    if (!s || s->remote_fin)
        return;
    s->remote_fin = 1;
    m->ev.stream_eof(m->ev.ctx, h);
}

static void remote_reset(cp2p_mux_t *m, struct stream *s)
{
    cp2p_mux_stream_id_t h = s->handle;
    free_stream(m, s);
    m->ev.stream_reset(m->ev.ctx, h);
}

static void skip_body(cp2p_mux_t *m, uint8_t type, uint32_t len)
{
    if (type != T_DATA)
        return;
    m->body_stream = 0;
    m->body_flags = 0;
    m->body_left = len;
}

static void end_data_frame(cp2p_mux_t *m)
{
    if (m->body_stream && (m->body_flags & F_FIN))
        remote_closed(m, m->body_stream);
    m->body_stream = 0;
}

static void take_body(cp2p_mux_t *m, const uint8_t *p, uint32_t n)
{
    m->body_left -= n;
    /* Looked up again for every piece: a callback may have reset the stream. */
    struct stream *s = m->body_stream ? find(m, m->body_stream) : NULL;
    if (s) {
        s->unconsumed += n;
        m->ev.stream_data(m->ev.ctx, s->handle, p, n);
    }
    if (m->body_left == 0)
        end_data_frame(m);
}

/* A SYN: returns the new stream, or NULL with *rc set when it was refused or failed. */
static struct stream *open_inbound(cp2p_mux_t *m, uint32_t id, int *rc)
{
    *rc = 0;
    if ((id & 1) == (m->initiator ? 1u : 0u)) {
        *rc = protocol_error(m, CP2P_EPROTO, "SYN with our stream id parity");
        return NULL;
    }
    if (m->local_goaway || m->remote_goaway || m->nstreams >= m->cfg.max_streams) {
        *rc = send_frame(m, T_WINDOW, F_RST, id, 0, NULL);
        return NULL;
    }
    struct stream *s = new_stream(m, id);
    if (!s) {
        *rc = send_frame(m, T_WINDOW, F_RST, id, 0, NULL);
        return NULL;
    }
    s->ack_pending = 1;
    cp2p_mux_stream_id_t h = s->handle;
    int ok = m->ev.stream_opened(m->ev.ctx, h);
    s = find(m, h);
    if (!s) /* reset from inside the callback */
        return NULL;
    if (ok < 0) {
        *rc = reset_stream(m, s);
        return NULL;
    }
    if (s->ack_pending)
        *rc = send_update(m, s, 0);
    return *rc < 0 ? NULL : s;
}

static int stream_frame(cp2p_mux_t *m, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    int rc = 0;
    struct stream *s = find_id(m, id);
    if (flags & F_RST) {
        if (s)
            remote_reset(m, s);
        skip_body(m, type, len);
        return 0;
    }
    if (flags & F_SYN) {
        if (s)
            return protocol_error(m, CP2P_EPROTO, "SYN for an open stream");
        s = open_inbound(m, id, &rc);
        if (rc < 0)
            return rc;
    }
    if (!s) {
        /* Frames still in flight after a reset or refusal: drop them politely. */
        skip_body(m, type, len);
        return 0;
    }
    cp2p_mux_stream_id_t h = s->handle;

    if (type == T_WINDOW) {
        uint64_t w = (uint64_t)s->send_window + len;
        s->send_window = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
        int wake = s->want_writable && s->send_window > 0 && !s->local_fin;
        if (wake) {
            s->want_writable = 0;
            m->ev.stream_writable(m->ev.ctx, h);
        }
        if (flags & F_FIN)
            remote_closed(m, h);
        return 0;
    }

    if (len > s->recv_avail)
        return protocol_error(m, CP2P_EPROTO, "data beyond the receive window");
    if (s->remote_fin && len > 0) {
        /* Only this stream is broken, not the session. */
        rc = reset_stream(m, s);
        m->ev.stream_reset(m->ev.ctx, h);
        skip_body(m, type, len);
        return rc;
    }
    s->recv_avail -= len;
    m->body_stream = h;
    m->body_flags = flags;
    m->body_left = len;
    if (len == 0)
        end_data_frame(m);
    return 0;
}

static int handle_header(cp2p_mux_t *m)
{
    const uint8_t *h = m->hdr;
    uint8_t type = h[1];
    uint16_t flags = (uint16_t)(h[2] << 8 | h[3]);
    uint32_t id = get32(h + 4);
    uint32_t len = get32(h + 8);

    if (h[0] != 0)
        return protocol_error(m, CP2P_EPARSE, "unknown version");
    switch (type) {
    case T_DATA:
    case T_WINDOW:
        if (id == 0)
            return protocol_error(m, CP2P_EPROTO, "stream frame on stream 0");
        return stream_frame(m, type, flags, id, len);
    case T_PING:
        if (id != 0)
            return protocol_error(m, CP2P_EPROTO, "ping on a stream");
        if (flags & F_SYN)
            return send_frame(m, T_PING, F_ACK, 0, len, NULL);
        if (flags & F_ACK) {
            m->pong = len;
            m->have_pong = 1;
        }
        return 0;
    case T_GOAWAY:
        if (id != 0)
            return protocol_error(m, CP2P_EPROTO, "go away on a stream");
        if (!m->remote_goaway) {
            m->remote_goaway = 1;
            if (m->ev.goaway)
                m->ev.goaway(m->ev.ctx, len);
        }
        return 0;
    default:
        return protocol_error(m, CP2P_EPARSE, "unknown frame type");
    }
}

static int yamux_input(cp2p_mux_t *m, const uint8_t *p, size_t n)
{
    if (!m || (!p && n))
        return CP2P_EINVAL;
    if (m->dead)
        return CP2P_ECLOSED;
    if (m->in_input)
        return CP2P_ESTATE;
    m->in_input = 1;
    int rc = 0;
    while (n > 0 && rc == 0 && !m->dead) {
        if (m->body_left) {
            uint32_t k = n < m->body_left ? (uint32_t)n : m->body_left;
            take_body(m, p, k);
            p += k;
            n -= k;
            continue;
        }
        size_t k = HDR_LEN - m->hdr_len;
        if (k > n)
            k = n;
        memcpy(m->hdr + m->hdr_len, p, k);
        m->hdr_len += k;
        p += k;
        n -= k;
        if (m->hdr_len == HDR_LEN) {
            m->hdr_len = 0;
            rc = handle_header(m);
        }
    }
    m->in_input = 0;
    /* A callback's write() may have found the connection broken. */
    if (rc == 0 && m->dead)
        rc = CP2P_ECLOSED;
    return rc;
}

/* ---- caller API ---- */

static int yamux_create(cp2p_mux_t **out, int initiator, const cp2p_mux_config_t *cfg,
                        const cp2p_mux_events_t *events)
{
    if (!out || !events || !events->send || !events->stream_opened || !events->stream_data ||
        !events->stream_eof || !events->stream_reset || !events->stream_writable)
        return CP2P_EINVAL;
    cp2p_mux_config_t c = {0};
    if (cfg)
        c = *cfg;
    if (!c.max_streams)
        c.max_streams = DEFAULT_MAX_STREAMS;
    if (!c.initial_window)
        c.initial_window = SPEC_WINDOW;
    if (!c.max_window)
        c.max_window = c.initial_window > DEFAULT_MAX_WINDOW ? c.initial_window : DEFAULT_MAX_WINDOW;
    if (!c.max_frame)
        c.max_frame = DEFAULT_MAX_FRAME;
    if (c.initial_window < SPEC_WINDOW || c.max_window < c.initial_window)
        return CP2P_EINVAL;

    cp2p_mux_t *m = calloc(1, sizeof(*m));
    if (!m)
        return CP2P_ENOMEM;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets) {
        free(m);
        return CP2P_ENOMEM;
    }
    m->ev = *events;
    m->cfg = c;
    m->initiator = initiator ? 1 : 0;
    m->next_id = initiator ? 1 : 2; /* client odd, server even */
    *out = m;
    return 0;
}

static void yamux_destroy(cp2p_mux_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        while (m->buckets[i]) {
            struct stream *s = m->buckets[i];
            m->buckets[i] = s->next;
            free(s);
        }
    }
    free(m->buckets);
    cp2p_buf_free(&m->out);
    free(m);
}

static int yamux_open_stream(cp2p_mux_t *m, cp2p_mux_stream_id_t *id)
{
    if (!m || !id)
        return CP2P_EINVAL;
    if (m->dead || m->local_goaway || m->remote_goaway)
        return CP2P_ECLOSED;
    if (m->nstreams >= m->cfg.max_streams || m->next_id > UINT32_MAX - 2)
        return CP2P_ELIMIT;
    struct stream *s = new_stream(m, m->next_id);
    if (!s)
        return CP2P_ENOMEM;
    m->next_id += 2;
    /* SYN on a window update, as go, rust and js do: the stream exists for
     * the remote before any data, and the update carries any extra window. */
    int rc = send_update(m, s, F_SYN);
    if (rc < 0) {
        free_stream(m, s);
        return rc;
    }
    *id = s->handle;
    return 0;
}

static long yamux_write(cp2p_mux_t *m, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n)
{
    if (!m || (!p && n))
        return CP2P_EINVAL;
    if (m->dead)
        return CP2P_ECLOSED;
    struct stream *s = find(m, id);
    if (!s)
        return CP2P_ENOTFOUND;
    if (s->local_fin)
        return CP2P_ECLOSED;
    if (n > LONG_MAX)
        n = LONG_MAX;
    size_t done = 0;
    while (done < n && s->send_window > 0) {
        size_t k = n - done;
        if (k > s->send_window)
            k = s->send_window;
        if (k > m->cfg.max_frame)
            k = m->cfg.max_frame;
        int rc = send_stream_frame(m, s, T_DATA, 0, (uint32_t)k, p + done);
        if (rc < 0)
            return rc;
        s->send_window -= (uint32_t)k;
        done += k;
    }
    if (done < n)
        s->want_writable = 1;
    return (long)done;
}

static int yamux_close_write(cp2p_mux_t *m, cp2p_mux_stream_id_t id)
{
    if (!m)
        return CP2P_EINVAL;
    if (m->dead)
        return CP2P_ECLOSED;
    struct stream *s = find(m, id);
    if (!s)
        return CP2P_ENOTFOUND;
    if (s->local_fin)
        return 0;
    s->local_fin = 1;
    s->want_writable = 0;
    return send_stream_frame(m, s, T_WINDOW, F_FIN, 0, NULL);
}

static int yamux_reset(cp2p_mux_t *m, cp2p_mux_stream_id_t id)
{
    if (!m)
        return CP2P_EINVAL;
    struct stream *s = find(m, id);
    if (!s)
        return CP2P_ENOTFOUND;
    if (m->dead) {
        free_stream(m, s);
        return 0;
    }
    return reset_stream(m, s);
}

static int yamux_consumed(cp2p_mux_t *m, cp2p_mux_stream_id_t id, size_t n)
{
    if (!m)
        return CP2P_EINVAL;
    if (m->dead)
        return CP2P_ECLOSED;
    struct stream *s = find(m, id);
    if (!s)
        return CP2P_ENOTFOUND;
    if (n > s->unconsumed)
        return CP2P_EINVAL;
    s->unconsumed -= (uint32_t)n;
    s->pending += (uint32_t)n;
    s->consumed_since_grow += n;
    /* Updates in halves of the window keep the sender busy without a frame
     * per read; nothing is owed to a remote that has finished sending. */
    if (s->remote_fin || s->pending < s->recv_window / 2)
        return 0;
    return send_update(m, s, 0);
}

static void yamux_release(cp2p_mux_t *m, cp2p_mux_stream_id_t id)
{
    if (!m)
        return;
    struct stream *s = find(m, id);
    if (!s)
        return;
    /* Released while still open one way: the remote must not wait for it. */
    if (!(s->local_fin && s->remote_fin) && !m->dead) {
        reset_stream(m, s);
        return;
    }
    free_stream(m, s);
}

static int yamux_goaway(cp2p_mux_t *m)
{
    if (!m)
        return CP2P_EINVAL;
    if (m->dead)
        return CP2P_ECLOSED;
    if (m->local_goaway)
        return 0;
    m->local_goaway = 1;
    return send_frame(m, T_GOAWAY, 0, 0, GOAWAY_NORMAL, NULL);
}

static int yamux_ping(cp2p_mux_t *m, uint32_t *opaque)
{
    if (!m)
        return CP2P_EINVAL;
    if (m->dead)
        return CP2P_ECLOSED;
    uint32_t v = m->ping_next++;
    int rc = send_frame(m, T_PING, F_SYN, 0, v, NULL);
    if (rc == 0 && opaque)
        *opaque = v;
    return rc;
}

size_t cp2p_yamux_stream_count(const cp2p_mux_t *m)
{
    return m ? m->nstreams : 0;
}

int cp2p_yamux_last_pong(const cp2p_mux_t *m, uint32_t *opaque)
{
    if (!m || !m->have_pong)
        return CP2P_ENOTFOUND;
    if (opaque)
        *opaque = m->pong;
    return 0;
}

int cp2p_yamux_stream_windows(const cp2p_mux_t *m, cp2p_mux_stream_id_t id,
                              uint32_t *send_window, uint32_t *recv_window)
{
    struct stream *s = m ? find(m, id) : NULL;
    if (!s)
        return CP2P_ENOTFOUND;
    if (send_window)
        *send_window = s->send_window;
    if (recv_window)
        *recv_window = s->recv_window;
    return 0;
}

const cp2p_mux_vtable_t cp2p_yamux_vtable = {
    .protocol_id = "/yamux/1.0.0",
    .create = yamux_create,
    .destroy = yamux_destroy,
    .input = yamux_input,
    .open_stream = yamux_open_stream,
    .write = yamux_write,
    .close_write = yamux_close_write,
    .reset = yamux_reset,
    .consumed = yamux_consumed,
    .release = yamux_release,
    .goaway = yamux_goaway,
    .ping = yamux_ping,
};
