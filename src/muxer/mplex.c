/* Mplex /mplex/6.7.0 stream muxer, sans-I/O (libp2p specs mplex/README.md).
 * A stream id seen by the caller is (wire id << 1) | 1 if the remote opened it:
 * both sides number their own streams from 0, so the wire id alone is ambiguous. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/varint.h"
#include "muxer/muxer.h"

#define MAX_MSG (1u << 20) /* the spec's largest message body */
#define MAX_WIRE_ID ((1ull << 60) - 1)
#define DEFAULT_MAX_STREAMS 1024
#define DEFAULT_MAX_FRAME (64u << 10)
#define DEFAULT_MAX_BUFFERED (4u << 20)

enum {
    NEW_STREAM = 0,
    MSG_RECEIVER = 1,
    MSG_INITIATOR = 2,
    CLOSE_RECEIVER = 3,
    CLOSE_INITIATOR = 4,
    RESET_RECEIVER = 5,
    RESET_INITIATOR = 6
};

struct stream {
    uint64_t key;
    size_t buffered; /* delivered to the caller, not yet consumed */
    int local_closed;
    int remote_closed;
    struct stream *next;
};

struct cp2p_mux {
    cp2p_mux_config_t cfg;
    cp2p_mux_events_t ev;
    uint64_t next_id;
    struct stream **tab;
    size_t tab_size; /* a power of two */
    size_t count;
    cp2p_buf_t in;      /* an incomplete frame */
    cp2p_buf_t pending; /* input that arrived from inside a callback */
    int depth;
    int err;
};

static int remote_opened(uint64_t key)
{
    return (int)(key & 1);
}

static size_t slot(const cp2p_mux_t *m, uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (m->tab_size - 1);
}

static struct stream *find(const cp2p_mux_t *m, uint64_t key)
{
    for (struct stream *s = m->tab[slot(m, key)]; s; s = s->next)
        if (s->key == key)
            return s;
    return NULL;
}

static int grow(cp2p_mux_t *m)
{
    size_t size = m->tab_size * 2;
    struct stream **tab = calloc(size, sizeof(*tab));
    if (!tab)
        return CP2P_ENOMEM;
    struct stream **old = m->tab;
    size_t old_size = m->tab_size;
    m->tab = tab;
    m->tab_size = size;
    for (size_t i = 0; i < old_size; i++) {
        while (old[i]) {
            struct stream *s = old[i];
            old[i] = s->next;
            size_t j = slot(m, s->key);
            s->next = tab[j];
            tab[j] = s;
        }
    }
    free(old);
    return 0;
}

static struct stream *add(cp2p_mux_t *m, uint64_t key)
{
    if (m->count >= m->tab_size && grow(m))
        return NULL;
    struct stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->key = key;
    size_t j = slot(m, key);
    s->next = m->tab[j];
    m->tab[j] = s;
    m->count++;
    return s;
}

static void drop(cp2p_mux_t *m, uint64_t key)
{
    for (struct stream **pp = &m->tab[slot(m, key)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->key == key) {
            struct stream *s = *pp;
            *pp = s->next;
            free(s);
            m->count--;
            return;
        }
    }
}

/* The flag for a frame we send: the *_RECEIVER value, plus one if we opened the stream. */
static int send_frame(cp2p_mux_t *m, uint64_t key, int receiver_flag, const uint8_t *p,
                      size_t n, cp2p_buf_t *scratch)
{
    int flag = receiver_flag == NEW_STREAM ? NEW_STREAM : receiver_flag + !remote_opened(key);
    cp2p_buf_reset(scratch);
    int rc = cp2p_buf_append_uvarint(scratch, (key >> 1) << 3 | (uint64_t)flag);
    if (!rc)
        rc = cp2p_buf_append_uvarint(scratch, n);
    if (!rc)
        rc = cp2p_buf_append(scratch, p, n);
    if (!rc)
        rc = m->ev.send(m->ev.ctx, scratch->data, scratch->len);
    return rc;
}

/* A short frame without a body; its own scratch keeps re-entrant calls apart. */
static int send_ctl(cp2p_mux_t *m, uint64_t key, int receiver_flag)
{
    uint8_t b[2 * CP2P_UVARINT_MAX];
    size_t n = cp2p_uvarint_encode((key >> 1) << 3 | (uint64_t)(receiver_flag + !remote_opened(key)), b);
    b[n++] = 0;
    return m->ev.send(m->ev.ctx, b, n);
}

static int mplex_create(cp2p_mux_t **out, int initiator, const cp2p_mux_config_t *cfg,
                        const cp2p_mux_events_t *events)
{
    if (!out || !events || !events->send)
        return CP2P_EINVAL;
    cp2p_mux_t *m = calloc(1, sizeof(*m));
    if (!m)
        return CP2P_ENOMEM;
    if (cfg)
        m->cfg = *cfg;
    if (!m->cfg.max_streams)
        m->cfg.max_streams = DEFAULT_MAX_STREAMS;
    if (!m->cfg.max_frame)
        m->cfg.max_frame = DEFAULT_MAX_FRAME;
    if (m->cfg.max_frame > MAX_MSG)
        m->cfg.max_frame = MAX_MSG;
    if (!m->cfg.max_buffered)
        m->cfg.max_buffered = DEFAULT_MAX_BUFFERED;
    m->ev = *events;
    m->tab_size = 16;
    m->tab = calloc(m->tab_size, sizeof(*m->tab));
    if (!m->tab) {
        free(m);
        return CP2P_ENOMEM;
    }
    *out = m;
    return 0;
}

static void mplex_destroy(cp2p_mux_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->tab_size; i++) {
        while (m->tab[i]) {
            struct stream *s = m->tab[i];
            m->tab[i] = s->next;
            free(s);
        }
    }
    free(m->tab);
    cp2p_buf_free(&m->in);
    cp2p_buf_free(&m->pending);
    free(m);
}

/* We give up on a stream: tell the remote, forget it, then tell the caller. */
static int reset_and_notify(cp2p_mux_t *m, uint64_t key)
{
    drop(m, key);
    int rc = send_ctl(m, key, RESET_RECEIVER);
    if (m->ev.stream_reset)
        m->ev.stream_reset(m->ev.ctx, key);
    return rc;
}

static int on_new_stream(cp2p_mux_t *m, uint64_t key)
{
    if (find(m, key)) {
        cp2p_log_debug("mplex", "NewStream for live stream %llu", (unsigned long long)(key >> 1));
        return CP2P_EPROTO;
    }
    if (m->count >= m->cfg.max_streams) {
        cp2p_log_debug("mplex", "stream limit reached, resetting %llu",
                       (unsigned long long)(key >> 1));
        return send_ctl(m, key, RESET_RECEIVER);
    }
    if (!add(m, key))
        return CP2P_ENOMEM;
    if (m->ev.stream_opened && m->ev.stream_opened(m->ev.ctx, key) < 0 && find(m, key)) {
        drop(m, key);
        return send_ctl(m, key, RESET_RECEIVER);
    }
    return 0;
}

static int on_message(cp2p_mux_t *m, uint64_t key, const uint8_t *p, size_t n)
{
    struct stream *s = find(m, key);
    if (!s || n == 0)
        return 0;
    if (s->remote_closed || n > m->cfg.max_buffered - s->buffered) {
        cp2p_log_debug("mplex", "stream %llu: %s, resetting", (unsigned long long)(key >> 1),
                       s->remote_closed ? "data after close" : "reader too slow");
        return reset_and_notify(m, key);
    }
    s->buffered += n;
    if (m->ev.stream_data)
        m->ev.stream_data(m->ev.ctx, key, p, n);
    return 0;
}

static int on_frame(cp2p_mux_t *m, int flag, uint64_t id, const uint8_t *p, size_t n)
{
    /* Frames the remote sends as initiator concern streams it opened. */
    int remote = flag == NEW_STREAM || flag == MSG_INITIATOR || flag == CLOSE_INITIATOR ||
                 flag == RESET_INITIATOR;
    uint64_t key = id << 1 | (uint64_t)remote;
    struct stream *s;
    switch (flag) {
    case NEW_STREAM:
        return on_new_stream(m, key);
    case MSG_RECEIVER:
    case MSG_INITIATOR:
        return on_message(m, key, p, n);
    case CLOSE_RECEIVER:
    case CLOSE_INITIATOR:
        s = find(m, key);
        if (s && !s->remote_closed) {
            s->remote_closed = 1;
            if (m->ev.stream_eof)
                m->ev.stream_eof(m->ev.ctx, key);
        }
        return 0;
    default: /* reset */
        if (find(m, key)) {
            drop(m, key);
            if (m->ev.stream_reset)
                m->ev.stream_reset(m->ev.ctx, key);
        }
        return 0;
    }
}

/* A varint at p: >0 bytes used, 0 if incomplete, or an error. Values above
 * max are refused as soon as the varint is long enough to show it. */
static int read_varint(const uint8_t *p, size_t n, uint64_t max, uint64_t *v, int too_big)
{
    int k = cp2p_uvarint_decode(p, n, v);
    if (k == CP2P_ETRUNC)
        return n >= cp2p_uvarint_len(max) ? too_big : 0;
    if (k < 0)
        return CP2P_EPARSE;
    return *v > max ? too_big : k;
}

/* Handles the whole frames in p; returns the bytes used or an error. */
static long run(cp2p_mux_t *m, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        uint64_t hdr, len;
        int a = read_varint(p + off, n - off, UINT64_MAX >> 1, &hdr, CP2P_EPARSE);
        if (a <= 0)
            return a < 0 ? a : (long)off;
        if ((hdr & 7) == 7)
            return CP2P_EPROTO;
        int b = read_varint(p + off + a, n - off - a, MAX_MSG, &len, CP2P_EPROTO);
        if (b <= 0)
            return b < 0 ? b : (long)off;
        size_t body = off + (size_t)a + (size_t)b;
        if (n - body < len)
            break;
        off = body + (size_t)len;
        int rc = on_frame(m, (int)(hdr & 7), hdr >> 3, p + body, (size_t)len);
        if (rc)
            return rc;
    }
    return (long)off;
}

static int feed(cp2p_mux_t *m, const uint8_t *p, size_t n)
{
    long used;
    if (m->in.len == 0) {
        /* The common case: parse the caller's bytes in place, keep only a partial frame. */
        used = run(m, p, n);
        if (used < 0)
            return (int)used;
        return cp2p_buf_append(&m->in, p + used, n - (size_t)used);
    }
    int rc = cp2p_buf_append(&m->in, p, n);
    if (rc)
        return rc;
    used = run(m, m->in.data, m->in.len);
    if (used < 0)
        return (int)used;
    cp2p_buf_consume(&m->in, (size_t)used);
    return 0;
}

static int mplex_input(cp2p_mux_t *m, const uint8_t *p, size_t n)
{
    if (!m || (n && !p))
        return CP2P_EINVAL;
    if (m->err)
        return m->err;
    /* From inside a callback: the frame being delivered still points into
     * our buffer, so queue the bytes and let the outer call handle them. */
    if (m->depth)
        return cp2p_buf_append(&m->pending, p, n);
    m->depth++;
    int rc = feed(m, p, n);
    while (!rc && m->pending.len) {
        cp2p_buf_t more = m->pending;
        memset(&m->pending, 0, sizeof(m->pending));
        rc = feed(m, more.data, more.len);
        cp2p_buf_free(&more);
    }
    m->depth--;
    if (rc) {
        cp2p_log_debug("mplex", "connection failed: %s", cp2p_strerror(rc));
        m->err = rc;
    }
    return rc;
}

static int mplex_open_stream(cp2p_mux_t *m, cp2p_mux_stream_id_t *id)
{
    if (!m || !id)
        return CP2P_EINVAL;
    if (m->err)
        return CP2P_ECLOSED;
    if (m->count >= m->cfg.max_streams || m->next_id > MAX_WIRE_ID)
        return CP2P_ELIMIT;
    uint64_t key = m->next_id << 1;
    /* Named after its number, as go-mplex and js-mplex do. */
    char name[24];
    int len = snprintf(name, sizeof(name), "%llu", (unsigned long long)m->next_id);
    if (!add(m, key))
        return CP2P_ENOMEM;
    m->next_id++;
    cp2p_buf_t scratch = {0};
    int rc = send_frame(m, key, NEW_STREAM, (const uint8_t *)name, (size_t)len, &scratch);
    cp2p_buf_free(&scratch);
    if (rc) {
        drop(m, key);
        return rc;
    }
    *id = key;
    return 0;
}

static long mplex_write(cp2p_mux_t *m, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n)
{
    if (!m || (n && !p) || n > LONG_MAX)
        return CP2P_EINVAL;
    if (m->err)
        return CP2P_ECLOSED;
    struct stream *s = find(m, id);
    if (!s)
        return CP2P_ERESET;
    if (s->local_closed)
        return CP2P_ECLOSED;
    cp2p_buf_t scratch = {0};
    size_t off = 0;
    int rc = 0;
    while (off < n && !rc) {
        /* A send callback may have reset the stream under us. */
        if (off && !find(m, id)) {
            rc = CP2P_ERESET;
            break;
        }
        size_t k = n - off < m->cfg.max_frame ? n - off : m->cfg.max_frame;
        rc = send_frame(m, id, MSG_RECEIVER, p + off, k, &scratch);
        off += k;
    }
    cp2p_buf_free(&scratch);
    return rc ? rc : (long)n;
}

static int mplex_close_write(cp2p_mux_t *m, cp2p_mux_stream_id_t id)
{
    if (!m)
        return CP2P_EINVAL;
    struct stream *s = find(m, id);
    if (!s)
        return CP2P_ERESET;
    if (s->local_closed)
        return 0;
    s->local_closed = 1;
    return m->err ? 0 : send_ctl(m, id, CLOSE_RECEIVER);
}

static int mplex_reset(cp2p_mux_t *m, cp2p_mux_stream_id_t id)
{
    if (!m)
        return CP2P_EINVAL;
    if (!find(m, id))
        return CP2P_ERESET;
    drop(m, id);
    return m->err ? 0 : send_ctl(m, id, RESET_RECEIVER);
}

static int mplex_consumed(cp2p_mux_t *m, cp2p_mux_stream_id_t id, size_t n)
{
    if (!m)
        return CP2P_EINVAL;
    struct stream *s = find(m, id);
    if (!s)
        return CP2P_ERESET;
    s->buffered -= n < s->buffered ? n : s->buffered;
    return 0;
}

static void mplex_release(cp2p_mux_t *m, cp2p_mux_stream_id_t id)
{
    if (!m)
        return;
    struct stream *s = find(m, id);
    if (!s)
        return;
    /* Released before both sides closed: the remote must not wait for us. */
    if (!(s->local_closed && s->remote_closed))
        mplex_reset(m, id);
    else
        drop(m, id);
}

static int mplex_goaway(cp2p_mux_t *m)
{
    return m ? 0 : CP2P_EINVAL;
}

static int mplex_ping(cp2p_mux_t *m, uint32_t *opaque)
{
    return CP2P_EUNSUPPORTED;
}

const cp2p_mux_vtable_t cp2p_mplex_vtable = {
    .protocol_id = "/mplex/6.7.0",
    .create = mplex_create,
    .destroy = mplex_destroy,
    .input = mplex_input,
    .open_stream = mplex_open_stream,
    .write = mplex_write,
    .close_write = mplex_close_write,
    .reset = mplex_reset,
    .consumed = mplex_consumed,
    .release = mplex_release,
    .goaway = mplex_goaway,
    .ping = mplex_ping,
};
