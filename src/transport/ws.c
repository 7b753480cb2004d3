/* WebSocket transport (libp2p: /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/ws):
 * the TCP transport's sockets, upgraded with RFC 6455's opening handshake
 * here, then handed to the swarm with the framing (ws_proto.c) that its
 * connection runs on every byte. Noise and yamux go on top as over TCP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "transport/transport.h"
#include "transport/ws_proto.h"

/* Inbound upgrades one listener runs at once, and how long each may take:
 * sockets that connect and say nothing cost a slot for that long only. */
#define WS_MAX_PENDING 128
#define WS_HANDSHAKE_TIMEOUT_MS 10000
#define WS_READ_MAX (16 * 1024)

static const cp2p_wire_vtable_t ws_wire = {
    .decode = (ssize_t (*)(void *, uint8_t *, size_t, cp2p_buf_t *, int *))cp2p_ws_decode,
    .frame = (size_t (*)(void *, uint8_t *, size_t, uint8_t *))cp2p_ws_frame,
    .close_frame = (int (*)(void *, cp2p_buf_t *))cp2p_ws_close_frame,
};

/* .../tcp/<port>/ws[/p2p/<id>] -> the TCP part, and "host:port" for the
 * Host header. */
static int split(const cp2p_multiaddr_t *ma, cp2p_multiaddr_t *tcp, char *host, size_t cap)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c, first = {0};
    int n = 0, ws_at = -1, bad = 0, has_port = 0;
    unsigned port = 0;
    cp2p_multiaddr_iter_init(&it, ma);
    while (cp2p_multiaddr_iter_next(&it, &c)) {
        if (n == 0)
            first = c;
        if (n == 1 && c.code == CP2P_MA_TCP && c.value_len == 2) {
            port = (unsigned)(c.value[0] << 8 | c.value[1]);
            has_port = 1;
        }
        if (n == 2)
            ws_at = c.code == CP2P_MA_WS ? 2 : -1;
        bad |= n == 3 && c.code != CP2P_MA_P2P;
        n++;
    }
    if (ws_at != 2 || n > 4 || bad || !has_port)
        return CP2P_EUNSUPPORTED;
    char name[256];
    if (first.code == CP2P_MA_IP4 || first.code == CP2P_MA_IP6) {
        if (uv_inet_ntop(first.code == CP2P_MA_IP4 ? AF_INET : AF_INET6, first.value, name, sizeof name))
            return CP2P_EPARSE;
        snprintf(host, cap, first.code == CP2P_MA_IP6 ? "[%s]:%u" : "%s:%u", name, port);
    } else if (first.code == CP2P_MA_DNS || first.code == CP2P_MA_DNS4 || first.code == CP2P_MA_DNS6) {
        if (first.value_len >= sizeof name)
            return CP2P_EPARSE;
        memcpy(name, first.value, first.value_len);
        name[first.value_len] = 0;
        snprintf(host, cap, "%s:%u", name, port);
    } else {
        return CP2P_EUNSUPPORTED;
    }
    if (!tcp)
        return 0;
    int rc = cp2p_multiaddr_dup(ma, tcp);
    if (!rc && (rc = cp2p_multiaddr_decapsulate_code(tcp, CP2P_MA_WS)))
        cp2p_multiaddr_free(tcp);
    return rc;
}

static int ws_matches(const cp2p_multiaddr_t *ma)
{
    char host[300];
    return split(ma, NULL, host, sizeof host) == 0;
}

/* addr/ws, in place. */
static int add_ws(cp2p_multiaddr_t *addr)
{
    cp2p_multiaddr_t ws, out;
    int rc = cp2p_multiaddr_parse("/ws", &ws);
    if (rc)
        return rc;
    rc = cp2p_multiaddr_encapsulate(addr, &ws, &out);
    cp2p_multiaddr_free(&ws);
    if (rc)
        return rc;
    cp2p_multiaddr_free(addr);
    *addr = out;
    return 0;
}

/* ---- one opening handshake, either side ---- */

typedef struct upgrade upgrade_t;
typedef void (*upgrade_fn)(upgrade_t *u, int status);

/* Lives until its timer has closed and its write has called back (refs). */
struct upgrade {
    int refs, closing, finished, failed;
    cp2p_rawconn_t *rc;   /* the socket, until handed on or closed */
    cp2p_ws_handshake_t hs;
    uv_timer_t timer;     /* the deadline (servers; a dial has the swarm's) */
    upgrade_fn done;      /* once: 0 (take the socket with upgrade_take) or why not */
    void *owner;
    upgrade_t *prev, *next;
    uv_write_t wreq;
    cp2p_buf_t out;       /* the request or response being written */
    cp2p_buf_t early;     /* read past the head */
    uint8_t rbuf[WS_READ_MAX];
};

static void upgrade_unref(upgrade_t *u)
{
    if (--u->refs > 0)
        return;
    cp2p_ws_handshake_free(&u->hs);
    cp2p_buf_free(&u->out);
    cp2p_buf_free(&u->early);
    free(u);
}

static void on_timer_closed(uv_handle_t *h)
{
    upgrade_unref(h->data);
}

static upgrade_t *upgrade_new(uv_loop_t *loop, upgrade_fn done, void *owner)
{
    upgrade_t *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
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

static void on_written(uv_write_t *req, int status)
{
    upgrade_t *u = req->data;
    /* A server's answer is out: a refusal ends here, an acceptance is done. */
    if (!u->hs.client)
        finish(u, status < 0 ? CP2P_EIO : u->failed ? u->failed : 0);
    else if (status < 0)
        finish(u, CP2P_EIO);
    upgrade_unref(u);
}

static int send_out(upgrade_t *u)
{
    uv_buf_t b = uv_buf_init((char *)u->out.data, (unsigned)u->out.len);
    u->wreq.data = u;
    if (uv_write(&u->wreq, u->rc->stream, &b, 1, on_written))
        return CP2P_EIO;
    u->refs++;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    upgrade_t *u = h->data;
    *buf = uv_buf_init((char *)u->rbuf, sizeof u->rbuf);
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
    size_t used = 0;
    int rc = cp2p_ws_handshake_input(&u->hs, u->rbuf, (size_t)n, &used, &u->out);
    if (rc == 0)
        return;
    if (rc > 0 && used < (size_t)n && cp2p_buf_append(&u->early, u->rbuf + used, (size_t)n - used))
        rc = CP2P_ENOMEM;
    if (u->hs.client) {
        finish(u, rc > 0 ? 0 : rc);
        return;
    }
    /* Server: the 101 (or the refusal) goes out; reading stops meanwhile. */
    uv_read_stop(s);
    if (rc < 0)
        u->failed = rc;
    if (!u->out.len || send_out(u))
        finish(u, rc < 0 ? rc : CP2P_EIO);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, CP2P_ETIMEOUT);
}

/* Starts the handshake on rc (taken over; closed by upgrade_end unless
 * taken with upgrade_take). host: the client's Host header. */
static int upgrade_start(upgrade_t *u, cp2p_rawconn_t *rc, const char *host)
{
    u->rc = rc;
    rc->stream->data = u;
    if (host) {
        int r = cp2p_ws_client_start(&u->hs, host, &u->out);
        if (r || (r = send_out(u)))
            return r;
    } else {
        cp2p_ws_server_init(&u->hs);
        uv_timer_start(&u->timer, on_timeout, WS_HANDSHAKE_TIMEOUT_MS, 0);
    }
    return uv_read_start(rc->stream, on_alloc, on_read) ? CP2P_EIO : 0;
}

/* The socket goes on, framed, with what was read past the head. */
static cp2p_rawconn_t *upgrade_take(upgrade_t *u)
{
    cp2p_rawconn_t *rc = u->rc;
    cp2p_ws_framer_t *f = malloc(sizeof *f);
    if (!f || add_ws(&rc->local) || add_ws(&rc->remote)) {
        free(f);
        return NULL;
    }
    cp2p_ws_framer_init(f, u->hs.client);
    rc->wire = &ws_wire;
    rc->wire_state = f;
    rc->early = u->early;
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
    upgrade_t *pending; /* inbound upgrades under way */
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
    upgrade_t *u = upgrade_new(l->loop, server_done, l);
    if (!u) {
        cp2p_rawconn_free(rc);
        return;
    }
    u->next = l->pending;
    if (l->pending)
        l->pending->prev = u;
    l->pending = u;
    l->n_pending++;
    if (upgrade_start(u, rc, NULL)) {
        unlink_pending(l, u);
        upgrade_end(u);
    }
}

static int ws_listen(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_accept_fn fn, void *arg,
                     cp2p_listener_t **out)
{
    char host[300];
    cp2p_multiaddr_t tcp;
    int rc = split(ma, &tcp, host, sizeof host);
    if (rc)
        return rc;
    cp2p_listener_t *l = calloc(1, sizeof *l);
    if (!l) {
        cp2p_multiaddr_free(&tcp);
        return CP2P_ENOMEM;
    }
    l->loop = loop;
    l->fn = fn;
    l->arg = arg;
    rc = cp2p_tcp_transport.listen(loop, &tcp, on_tcp_accept, l, &l->tcp);
    cp2p_multiaddr_free(&tcp);
    if (rc) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

static int ws_listener_addrs(cp2p_listener_t *l, cp2p_multiaddr_t **addrs, size_t *n)
{
    size_t from = *n;
    int rc = cp2p_tcp_transport.listener_addrs(l->tcp, addrs, n);
    for (size_t i = from; !rc && i < *n; i++)
        rc = add_ws(&(*addrs)[i]);
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
    free(l);
}

/* ---- dialling ---- */

struct cp2p_dial {
    cp2p_dial_t *tcp;    /* the TCP dial, until it answers */
    upgrade_t *u;        /* then the upgrade */
    cp2p_dial_fn fn;
    void *arg;
    char host[300];
};

static void client_done(upgrade_t *u, int status)
{
    cp2p_dial_t *d = u->owner;
    cp2p_rawconn_t *rc = status ? NULL : upgrade_take(u);
    upgrade_end(u);
    d->fn(d->arg, rc ? 0 : status ? status : CP2P_ENOMEM, rc);
    free(d);
}

static void on_tcp_dialled(void *arg, int status, cp2p_rawconn_t *rc)
{
    cp2p_dial_t *d = arg;
    d->tcp = NULL;
    if (status) {
        d->fn(d->arg, status, NULL);
        free(d);
        return;
    }
    d->u = upgrade_new(rc->stream->loop, client_done, d);
    if (!d->u) {
        cp2p_rawconn_free(rc);
        d->fn(d->arg, CP2P_ENOMEM, NULL);
        free(d);
        return;
    }
    int r = upgrade_start(d->u, rc, d->host);
    if (r)
        finish(d->u, r); /* client_done reports it and frees d */
}

static int ws_dial(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_dial_fn fn, void *arg,
                   cp2p_dial_t **out)
{
    cp2p_dial_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    cp2p_multiaddr_t tcp;
    int rc = split(ma, &tcp, d->host, sizeof d->host);
    if (rc) {
        free(d);
        return rc;
    }
    d->fn = fn;
    d->arg = arg;
    rc = cp2p_tcp_transport.dial(loop, &tcp, on_tcp_dialled, d, &d->tcp);
    cp2p_multiaddr_free(&tcp);
    if (rc) {
        free(d);
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
    free(d);
}

const cp2p_transport_vtable_t cp2p_ws_transport = {
    .name = "ws",
    .matches = ws_matches,
    .listen = ws_listen,
    .listener_addrs = ws_listener_addrs,
    .listener_close = ws_listener_close,
    .dial = ws_dial,
    .dial_cancel = ws_dial_cancel,
};
