/* WebSocket transport (libp2p: /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/ws,
 * and over TLS: .../wss, .../tls/ws, .../tls/sni/<name>/ws): the TCP
 * transport's sockets, upgraded here (TLS when asked, then RFC 6455's
 * opening handshake), then handed to the swarm with the framing its
 * connection runs on every byte (ws_proto.c; tls_pipe.c below it for wss).
 * Noise and yamux go on top as over TCP. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "core/iobuf.h"
#include "transport/tls_pipe.h"
#include "transport/transport.h"
#include "transport/ws_proto.h"

/* Inbound upgrades one listener runs at once, and how long each may take:
 * sockets that connect and say nothing cost a slot for that long only. */
#define WS_MAX_PENDING 128
#define WS_HANDSHAKE_TIMEOUT_MS 10000
#define WS_READ_MAX (16 * 1024)
/* What a peer may send past the upgrade's head before the upgrade is done. */
#define WS_EARLY_MAX (64 * 1024)

/* ---- the framings the connection runs ---- */

static ssize_t ws_decode(void *w, uint8_t *p, size_t n, size_t cap, cp2p_buf_t *reply, int *eof)
{
    return cp2p_ws_decode(w, p, n, reply, eof);
}

static size_t ws_frame(void *w, uint8_t *p, size_t n, uint8_t *head)
{
    return cp2p_ws_frame(w, p, n, head);
}

static int ws_close(void *w, cp2p_buf_t *out)
{
    return cp2p_ws_close_frame(w, out);
}

static const cp2p_wire_vtable_t ws_wire = {.decode = ws_decode, .frame = ws_frame, .close_frame = ws_close};

/* /wss: websocket frames inside TLS records. */
typedef struct wss {
    cp2p_ws_framer_t ws;
    cp2p_tls_pipe_t *tls;
    cp2p_buf_t plain;     /* decrypted during the upgrade, past its head */
} wss_t;

/* The websocket frames in fr, encrypted, appended to out. */
static int wss_seal(wss_t *s, const uint8_t *fr, size_t n, cp2p_buf_t *out)
{
    int rc = cp2p_tls_pipe_write(s->tls, fr, n);
    return rc ? rc : cp2p_tls_pipe_output(s->tls, out);
}

static ssize_t wss_decode(void *w, uint8_t *p, size_t n, size_t cap, cp2p_buf_t *reply, int *eof)
{
    wss_t *s = w;
    int rc = cp2p_tls_pipe_feed(s->tls, p, n), closed = 0;
    if (rc)
        return rc;
    size_t off = 0;
    if (s->plain.len) { /* never more than one read of the upgrade: it fits */
        off = s->plain.len < cap ? s->plain.len : cap;
        memcpy(p, s->plain.data, off);
        cp2p_buf_consume(&s->plain, off);
    }
    ssize_t k = cp2p_tls_pipe_read(s->tls, p + off, cap - off, &closed);
    if (k < 0)
        return k;
    cp2p_buf_t plain_reply = {0};
    ssize_t got = cp2p_ws_decode(&s->ws, p, off + (size_t)k, &plain_reply, eof);
    if (got >= 0 && plain_reply.len)
        rc = cp2p_tls_pipe_write(s->tls, plain_reply.data, plain_reply.len);
    cp2p_buf_free(&plain_reply);
    if (!rc)
        rc = cp2p_tls_pipe_output(s->tls, reply); /* and what TLS itself answers */
    if (closed)
        *eof = 1;
    return got < 0 ? got : rc ? rc : got;
}

static int wss_encode(void *w, uint8_t *p, size_t n, cp2p_buf_t *out)
{
    wss_t *s = w;
    uint8_t head[CP2P_WS_MAX_FRAME_HEAD];
    size_t h = cp2p_ws_frame(&s->ws, p, n, head);
    int rc = cp2p_tls_pipe_write(s->tls, head, h);
    return rc ? rc : wss_seal(s, p, n, out);
}

static int wss_close(void *w, cp2p_buf_t *out)
{
    wss_t *s = w;
    cp2p_buf_t fr = {0};
    int rc = cp2p_ws_close_frame(&s->ws, &fr);
    if (!rc)
        rc = cp2p_tls_pipe_write(s->tls, fr.data, fr.len);
    cp2p_buf_free(&fr);
    cp2p_tls_pipe_shutdown(s->tls);
    return rc ? rc : cp2p_tls_pipe_output(s->tls, out);
}

static void wss_free(void *w)
{
    wss_t *s = w;
    cp2p_tls_pipe_free(s->tls);
    cp2p_buf_free(&s->plain);
    free(s);
}

static const cp2p_wire_vtable_t wss_wire = {
    .decode = wss_decode,
    .encode = wss_encode,
    .close_frame = wss_close,
    /* A record begun in an earlier read (16 KiB + 256), and the upgrade's
     * plaintext tail (64 KiB), must fit beside a partial Noise frame. */
    .read_max = 128 * 1024,
    .free = wss_free,
};

/* One client context for every /wss dial of the process: loading the
 * system's roots costs milliseconds. */
static cp2p_tls_ctx_t *client_ctx;
static pthread_once_t client_once = PTHREAD_ONCE_INIT;
static void client_ctx_init(void)
{
    client_ctx = cp2p_tls_client_ctx();
}

/* ---- addresses ---- */

typedef struct target {
    cp2p_multiaddr_t tcp;   /* the TCP part */
    cp2p_multiaddr_t suffix; /* what follows it up to /p2p: /ws, /wss, /tls/ws, /tls/sni/x/ws */
    char host[300];         /* "host:port" for the Host header */
    char name[256];         /* the TLS server name (DNS or IP) */
    int tls;
} target_t;

static void target_free(target_t *t)
{
    cp2p_multiaddr_free(&t->tcp);
    cp2p_multiaddr_free(&t->suffix);
}

/* .../tcp/<port>/(ws|wss|tls/ws|tls/sni/<name>/ws)[/p2p/<id>]; with t NULL,
 * only whether it is one. */
static int split(const cp2p_multiaddr_t *ma, target_t *t)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c, first = {0}, sni = {0};
    int n = 0, state = 0, tls = 0, has_port = 0;
    unsigned port = 0;
    size_t tcp_end = 0, suffix_end = 0;
    cp2p_multiaddr_iter_init(&it, ma);
    /* states: 0 host, 1 tcp, 2 after tcp, 3 after tls, 4 after sni, 5 done (ws), 6 p2p */
    while (cp2p_multiaddr_iter_next(&it, &c)) {
        size_t end = (size_t)(c.value + c.value_len - ma->bytes);
        if (state == 0) {
            first = c;
            state = 1;
        } else if (state == 1) {
            if (c.code != CP2P_MA_TCP || c.value_len != 2)
                return CP2P_EUNSUPPORTED;
            port = (unsigned)(c.value[0] << 8 | c.value[1]);
            has_port = 1;
            tcp_end = end;
            state = 2;
        } else if (state == 2 && (c.code == CP2P_MA_WS || c.code == CP2P_MA_WSS)) {
            tls = c.code == CP2P_MA_WSS;
            state = 5;
            suffix_end = end;
        } else if (state == 2 && c.code == CP2P_MA_TLS) {
            tls = 1;
            state = 3;
        } else if (state == 3 && c.code == CP2P_MA_SNI) {
            sni = c;
            state = 4;
        } else if ((state == 3 || state == 4) && c.code == CP2P_MA_WS) {
            state = 5;
            suffix_end = end;
        } else if (state == 5 && c.code == CP2P_MA_P2P) {
            state = 6;
        } else {
            return CP2P_EUNSUPPORTED;
        }
        n++;
    }
    (void)n;
    if (state < 5 || !has_port)
        return CP2P_EUNSUPPORTED;
    if (first.code != CP2P_MA_IP4 && first.code != CP2P_MA_IP6 && first.code != CP2P_MA_DNS &&
        first.code != CP2P_MA_DNS4 && first.code != CP2P_MA_DNS6)
        return CP2P_EUNSUPPORTED;
    if (!t)
        return 0;
    memset(t, 0, sizeof *t);
    t->tls = tls;
    if (first.code == CP2P_MA_IP4 || first.code == CP2P_MA_IP6) {
        if (uv_inet_ntop(first.code == CP2P_MA_IP4 ? AF_INET : AF_INET6, first.value, t->name, sizeof t->name))
            return CP2P_EPARSE;
        snprintf(t->host, sizeof t->host, first.code == CP2P_MA_IP6 ? "[%s]:%u" : "%s:%u", t->name, port);
    } else {
        if (first.value_len >= sizeof t->name)
            return CP2P_EPARSE;
        memcpy(t->name, first.value, first.value_len);
        t->name[first.value_len] = 0;
        snprintf(t->host, sizeof t->host, "%s:%u", t->name, port);
    }
    if (sni.value_len) {
        if (sni.value_len >= sizeof t->name)
            return CP2P_EPARSE;
        memcpy(t->name, sni.value, sni.value_len);
        t->name[sni.value_len] = 0;
    }
    int rc = cp2p_multiaddr_from_bytes(ma->bytes, tcp_end, &t->tcp);
    if (!rc && (rc = cp2p_multiaddr_from_bytes(ma->bytes + tcp_end, suffix_end - tcp_end, &t->suffix)))
        cp2p_multiaddr_free(&t->tcp);
    return rc;
}

static int ws_matches(const cp2p_multiaddr_t *ma)
{
    return split(ma, NULL) == 0;
}

/* addr + suffix, in place. */
static int add_suffix(cp2p_multiaddr_t *addr, const cp2p_multiaddr_t *suffix)
{
    cp2p_multiaddr_t out;
    int rc = cp2p_multiaddr_encapsulate(addr, suffix, &out);
    if (rc)
        return rc;
    cp2p_multiaddr_free(addr);
    *addr = out;
    return 0;
}

/* ---- one opening handshake, either side ---- */

typedef struct upgrade upgrade_t;
typedef void (*upgrade_fn)(upgrade_t *u, int status);

/* Lives until its timer has closed and its writes have called back (refs). */
struct upgrade {
    int refs, closing, finished, failed;
    cp2p_rawconn_t *rc;   /* the socket, until handed on or closed */
    cp2p_tls_pipe_t *tls; /* /wss: TLS first, then the upgrade inside it */
    int tls_done, client;
    const char *host;     /* a client's Host header (its dial's) */
    cp2p_ws_handshake_t hs;
    uv_timer_t timer;     /* the deadline (servers; a dial has the swarm's) */
    upgrade_fn done;      /* once: 0 (take the socket with upgrade_take) or why not */
    void *owner;
    upgrade_t *prev, *next;
    cp2p_multiaddr_t suffix; /* /ws, /wss, /tls/ws ...: the connection's addresses end so */
    cp2p_buf_t early;     /* read past the head (plaintext under TLS) */
    uint8_t rbuf[WS_READ_MAX];
    uint8_t plain[WS_READ_MAX + 1024];
};

static void upgrade_unref(upgrade_t *u)
{
    if (--u->refs > 0)
        return;
    cp2p_ws_handshake_free(&u->hs);
    cp2p_tls_pipe_free(u->tls);
    cp2p_multiaddr_free(&u->suffix);
    cp2p_buf_free(&u->early);
    free(u);
}

static void on_timer_closed(uv_handle_t *h)
{
    upgrade_unref(h->data);
}

static upgrade_t *upgrade_new(uv_loop_t *loop, const cp2p_multiaddr_t *suffix, upgrade_fn done,
                              void *owner)
{
    upgrade_t *u = calloc(1, sizeof *u);
    if (!u || cp2p_multiaddr_dup(suffix, &u->suffix)) {
        free(u);
        return NULL;
    }
    u->refs = 1;
    u->done = done;
    u->owner = owner;
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    return u;
}

/* Ends u: the socket, if still its own, and the timer close. */
static void upgrade_end(upgrade_t *u)
{
    if (u->closing)
        return;
    u->closing = 1;
    if (u->rc) {
        uv_read_stop(u->rc->stream);
        cp2p_rawconn_free(u->rc);
        u->rc = NULL;
    }
    uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}

static void finish(upgrade_t *u, int status)
{
    if (u->finished || u->closing)
        return;
    u->finished = 1;
    uv_read_stop(u->rc->stream);
    uv_timer_stop(&u->timer);
    u->done(u, status);
}

typedef struct up_write {
    uv_write_t req;
    upgrade_t *u;
    int last; /* a server's answer: the upgrade ends once it is out */
    size_t len;
    uint8_t data[];
} up_write_t;

static void on_written(uv_write_t *req, int status)
{
    up_write_t *w = req->data;
    upgrade_t *u = w->u;
    if (status < 0)
        finish(u, CP2P_EIO);
    else if (w->last)
        finish(u, u->failed);
    free(w);
    upgrade_unref(u);
}

static int send_raw(upgrade_t *u, const uint8_t *p, size_t n, int last)
{
    up_write_t *w = malloc(sizeof *w + n);
    if (!w)
        return CP2P_ENOMEM;
    memcpy(w->data, p, n);
    w->u = u;
    w->last = last;
    w->len = n;
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    if (uv_write(&w->req, u->rc->stream, &b, 1, on_written)) {
        free(w);
        return CP2P_EIO;
    }
    u->refs++;
    return 0;
}

/* What TLS wants sent (handshake flights, records), if anything. */
static int send_tls(upgrade_t *u, int last)
{
    cp2p_buf_t out = {0};
    int rc = cp2p_tls_pipe_output(u->tls, &out);
    if (!rc && (out.len || last))
        rc = send_raw(u, out.data, out.len, last);
    cp2p_buf_free(&out);
    return rc;
}

/* Upgrade bytes (request, response, refusal), through TLS under /wss. */
static int send_plain(upgrade_t *u, const cp2p_buf_t *b, int last)
{
    if (!u->tls)
        return send_raw(u, b->data, b->len, last);
    int rc = cp2p_tls_pipe_write(u->tls, b->data, b->len);
    return rc ? rc : send_tls(u, last);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    upgrade_t *u = h->data;
    *buf = uv_buf_init((char *)u->rbuf, sizeof u->rbuf);
}

/* The upgrade's plaintext p[0..n). */
static void upgrade_input(upgrade_t *u, const uint8_t *p, size_t n)
{
    if (u->hs.done) { /* past the head: the framing's */
        if (u->early.len + n > WS_EARLY_MAX || cp2p_buf_append(&u->early, p, n))
            finish(u, CP2P_ELIMIT);
        return;
    }
    size_t used = 0;
    cp2p_buf_t out = {0};
    int rc = cp2p_ws_handshake_input(&u->hs, p, n, &used, &out);
    if (rc == 0)
        return;
    if (rc > 0 && used < n && cp2p_buf_append(&u->early, p + used, n - used))
        rc = CP2P_ENOMEM;
    if (u->client) {
        cp2p_buf_free(&out);
        if (rc < 0)
            finish(u, rc);
        return; /* done: finished by on_read once the read is taken in */
    }
    /* Server: the 101 (or the refusal) goes out, and the upgrade ends then. */
    if (rc < 0)
        u->failed = rc;
    if (!out.len || send_plain(u, &out, 1))
        finish(u, rc < 0 ? rc : CP2P_EIO);
    cp2p_buf_free(&out);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    upgrade_t *u = s->data;
    if (n == 0 || u->finished)
        return;
    if (n < 0) {
        finish(u, n == UV_EOF ? CP2P_ECLOSED : CP2P_EIO);
        return;
    }
    if (!u->tls) {
        upgrade_input(u, u->rbuf, (size_t)n);
    } else {
        int rc = cp2p_tls_pipe_feed(u->tls, u->rbuf, (size_t)n);
        if (!rc && !u->tls_done) {
            rc = cp2p_tls_pipe_handshake(u->tls);
            if (rc >= 0) {
                int sent = send_tls(u, 0);
                rc = sent ? sent : rc;
            }
            if (rc == 1) {
                u->tls_done = 1;
                rc = 0;
                if (u->client) {
                    cp2p_buf_t req = {0};
                    rc = cp2p_ws_client_start(&u->hs, u->host, &req);
                    u->hs.client = 1;
                    if (!rc)
                        rc = send_plain(u, &req, 0);
                    cp2p_buf_free(&req);
                }
            } else if (rc == 0) {
                return; /* more handshake to come */
            }
        }
        /* Everything TLS has decrypted, into the upgrade (and past it). */
        while (!rc && !u->finished) {
            int closed = 0;
            ssize_t k = cp2p_tls_pipe_read(u->tls, u->plain, sizeof u->plain, &closed);
            if (k < 0 || closed) {
                rc = k < 0 ? (int)k : CP2P_ECLOSED;
                break;
            }
            if (k == 0)
                break;
            upgrade_input(u, u->plain, (size_t)k);
        }
        if (!rc)
            rc = send_tls(u, 0); /* what TLS answers to what it read (tickets, alerts) */
        if (rc) {
            finish(u, rc);
            return;
        }
    }
    if (u->client && u->hs.done && !u->finished)
        finish(u, 0);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, CP2P_ETIMEOUT);
}

/* Starts the handshake on rc (taken over; closed by upgrade_end unless
 * taken with upgrade_take). host: the client's Host header (servers: NULL);
 * ctx and name: TLS first, with that server name (servers: NULL). */
static int upgrade_start(upgrade_t *u, cp2p_rawconn_t *rc, const char *host, cp2p_tls_ctx_t *ctx,
                         const char *name)
{
    u->rc = rc;
    rc->stream->data = u;
    u->client = host != NULL;
    u->host = host;
    if (ctx && !(u->tls = cp2p_tls_pipe_new(ctx, u->client ? name : NULL)))
        return CP2P_ENOMEM;
    int r = 0;
    if (u->client && u->tls) {
        r = cp2p_tls_pipe_handshake(u->tls); /* the ClientHello */
        r = r < 0 ? r : send_tls(u, 0);
    } else if (u->client) {
        cp2p_buf_t req = {0};
        r = cp2p_ws_client_start(&u->hs, host, &req);
        if (!r)
            r = send_raw(u, req.data, req.len, 0);
        cp2p_buf_free(&req);
    } else {
        cp2p_ws_server_init(&u->hs);
        uv_timer_start(&u->timer, on_timeout, WS_HANDSHAKE_TIMEOUT_MS, 0);
    }
    if (r)
        return r;
    return uv_read_start(rc->stream, on_alloc, on_read) ? CP2P_EIO : 0;
}

/* The socket goes on, framed, with what was read past the head. */
static cp2p_rawconn_t *upgrade_take(upgrade_t *u)
{
    cp2p_rawconn_t *rc = u->rc;
    if (add_suffix(&rc->local, &u->suffix) || add_suffix(&rc->remote, &u->suffix))
        return NULL;
    if (u->tls) {
        wss_t *w = calloc(1, sizeof *w);
        if (!w)
            return NULL;
        cp2p_ws_framer_init(&w->ws, u->client);
        w->tls = u->tls;
        w->plain = u->early; /* plaintext: the wire hands it out first */
        u->tls = NULL;
        rc->wire = &wss_wire;
        rc->wire_state = w;
    } else {
        cp2p_ws_framer_t *f = malloc(sizeof *f);
        if (!f)
            return NULL;
        cp2p_ws_framer_init(f, u->client);
        rc->wire = &ws_wire;
        rc->wire_state = f;
        rc->early = u->early;
    }
    memset(&u->early, 0, sizeof u->early);
    u->rc = NULL;
    return rc;
}

/* ---- listening ---- */

struct cp2p_listener {
    cp2p_listener_t *tcp;
    uv_loop_t *loop;
    cp2p_accept_fn fn;
    void *arg;
    cp2p_multiaddr_t suffix;
    cp2p_tls_ctx_t *tls;  /* /wss: the certificate we show */
    upgrade_t *pending;   /* inbound upgrades under way, newest first */
    size_t n_pending;
};

static void unlink_pending(cp2p_listener_t *l, upgrade_t *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        l->pending = u->next;
    if (u->next)
        u->next->prev = u->prev;
    l->n_pending--;
}

static void server_done(upgrade_t *u, int status)
{
    cp2p_listener_t *l = u->owner;
    unlink_pending(l, u);
    cp2p_rawconn_t *rc = status ? NULL : upgrade_take(u);
    if (status && status != CP2P_ECLOSED)
        cp2p_log_debug("ws", "an inbound websocket upgrade failed: %s", cp2p_strerror(status));
    upgrade_end(u);
    if (rc)
        l->fn(l->arg, rc);
}

static void on_tcp_accept(void *arg, cp2p_rawconn_t *rc)
{
    cp2p_listener_t *l = arg;
    if (l->n_pending >= WS_MAX_PENDING) {
        /* The oldest gives way (the list's tail): sockets that connect and
         * say nothing cannot keep a peer that speaks out. */
        upgrade_t *old = l->pending;
        while (old->next)
            old = old->next;
        cp2p_log_warn("ws", "%d websocket upgrades under way: the oldest gives way", WS_MAX_PENDING);
        unlink_pending(l, old);
        upgrade_end(old);
    }
    upgrade_t *u = upgrade_new(l->loop, &l->suffix, server_done, l);
    if (!u) {
        cp2p_rawconn_free(rc);
        return;
    }
    u->next = l->pending;
    if (l->pending)
        l->pending->prev = u;
    l->pending = u;
    l->n_pending++;
    if (upgrade_start(u, rc, NULL, l->tls, NULL)) {
        unlink_pending(l, u);
        upgrade_end(u);
    }
}

static int ws_listen_with(uv_loop_t *loop, const cp2p_multiaddr_t *ma, const cp2p_listen_opts_t *o,
                          cp2p_accept_fn fn, void *arg, cp2p_listener_t **out)
{
    target_t t;
    int rc = split(ma, &t);
    if (rc)
        return rc;
    cp2p_listener_t *l = calloc(1, sizeof *l);
    if (!l) {
        target_free(&t);
        return CP2P_ENOMEM;
    }
    if (t.tls) {
        if (!o || !o->tls_cert_file || !o->tls_key_file) {
            cp2p_log_warn("ws", "listening on /wss needs a certificate and a key (wss_cert_file, wss_key_file)");
            rc = CP2P_EINVAL;
        } else if (!(l->tls = cp2p_tls_server_ctx(o->tls_cert_file, o->tls_key_file))) {
            rc = CP2P_ECRYPTO;
        }
    }
    l->loop = loop;
    l->fn = fn;
    l->arg = arg;
    l->suffix = t.suffix;
    memset(&t.suffix, 0, sizeof t.suffix);
    if (!rc)
        rc = cp2p_tcp_transport.listen(loop, &t.tcp, on_tcp_accept, l, &l->tcp);
    target_free(&t);
    if (rc) {
        cp2p_tls_ctx_free(l->tls);
        cp2p_multiaddr_free(&l->suffix);
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

static int ws_listen(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_accept_fn fn, void *arg,
                     cp2p_listener_t **out)
{
    return ws_listen_with(loop, ma, NULL, fn, arg, out);
}

static int ws_listener_addrs(cp2p_listener_t *l, cp2p_multiaddr_t **addrs, size_t *n)
{
    size_t from = *n;
    int rc = cp2p_tcp_transport.listener_addrs(l->tcp, addrs, n);
    for (size_t i = from; !rc && i < *n; i++)
        rc = add_suffix(&(*addrs)[i], &l->suffix);
    return rc;
}

static void ws_listener_close(cp2p_listener_t *l)
{
    cp2p_tcp_transport.listener_close(l->tcp);
    while (l->pending) {
        upgrade_t *u = l->pending;
        unlink_pending(l, u);
        upgrade_end(u);
    }
    cp2p_tls_ctx_free(l->tls); /* the sessions hold references of their own */
    cp2p_multiaddr_free(&l->suffix);
    free(l);
}

/* ---- dialling ---- */

struct cp2p_dial {
    cp2p_dial_t *tcp;    /* the TCP dial, until it answers */
    upgrade_t *u;        /* then the upgrade */
    cp2p_dial_fn fn;
    void *arg;
    target_t t;
};

static void dial_free(cp2p_dial_t *d)
{
    target_free(&d->t);
    free(d);
}

static void client_done(upgrade_t *u, int status)
{
    cp2p_dial_t *d = u->owner;
    cp2p_rawconn_t *rc = status ? NULL : upgrade_take(u);
    upgrade_end(u);
    d->fn(d->arg, rc ? 0 : status ? status : CP2P_ENOMEM, rc);
    dial_free(d);
}

static void on_tcp_dialled(void *arg, int status, cp2p_rawconn_t *rc)
{
    cp2p_dial_t *d = arg;
    d->tcp = NULL;
    if (!status && !(d->u = upgrade_new(rc->stream->loop, &d->t.suffix, client_done, d))) {
        cp2p_rawconn_free(rc);
        status = CP2P_ENOMEM;
    }
    if (status) {
        d->fn(d->arg, status, NULL);
        dial_free(d);
        return;
    }
    cp2p_tls_ctx_t *ctx = NULL;
    if (d->t.tls) {
        pthread_once(&client_once, client_ctx_init);
        if (!(ctx = client_ctx)) {
            upgrade_end(d->u);
            d->fn(d->arg, CP2P_ECRYPTO, NULL);
            dial_free(d);
            return;
        }
    }
    int r = upgrade_start(d->u, rc, d->t.host, ctx, d->t.name);
    if (r)
        finish(d->u, r); /* client_done reports it and frees d */
}

static int ws_dial(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_dial_fn fn, void *arg,
                   cp2p_dial_t **out)
{
    cp2p_dial_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    int rc = split(ma, &d->t);
    if (rc) {
        free(d);
        return rc;
    }
    d->fn = fn;
    d->arg = arg;
    rc = cp2p_tcp_transport.dial(loop, &d->t.tcp, on_tcp_dialled, d, &d->tcp);
    if (rc) {
        dial_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

static void ws_dial_cancel(cp2p_dial_t *d)
{
    if (d->tcp) {
        cp2p_tcp_transport.dial_cancel(d->tcp);
    } else if (d->u) {
        d->u->finished = 1; /* done will not run */
        upgrade_end(d->u);
    }
    dial_free(d);
}

const cp2p_transport_vtable_t cp2p_ws_transport = {
    .name = "ws",
    .matches = ws_matches,
    .listen = ws_listen,
    .listen_with = ws_listen_with,
    .listener_addrs = ws_listener_addrs,
    .listener_close = ws_listener_close,
    .dial = ws_dial,
    .dial_cancel = ws_dial_cancel,
};
