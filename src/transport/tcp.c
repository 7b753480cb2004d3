/* TCP transport (libp2p addressing spec: /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>)
 * over libuv: listeners, dialers with asynchronous name resolution. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "transport/transport.h"

#define LISTEN_BACKLOG 511
/* Listeners a port-reusing dial chooses from. */
#define CP2P_TCP_MAX_REUSE 8

typedef struct target {
    int family;     /* AF_INET, AF_INET6, or AF_UNSPEC for /dns */
    int is_name;
    char host[256]; /* numeric address or DNS name */
    char port[6];
} target_t;

/* /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>, optionally followed by /p2p/<id>. */
static int parse_target(const cp2p_multiaddr_t *ma, target_t *t)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c;
    memset(t, 0, sizeof *t);
    cp2p_multiaddr_iter_init(&it, ma);
    if (!cp2p_multiaddr_iter_next(&it, &c))
        return CP2P_EINVAL;
    switch (c.code) {
    case CP2P_MA_IP4:
    case CP2P_MA_IP6:
        t->family = c.code == CP2P_MA_IP4 ? AF_INET : AF_INET6;
        if (uv_inet_ntop(t->family, c.value, t->host, sizeof t->host))
            return CP2P_EPARSE;
        break;
    case CP2P_MA_DNS:
    case CP2P_MA_DNS4:
    case CP2P_MA_DNS6:
        if (c.value_len == 0 || c.value_len >= sizeof t->host || memchr(c.value, 0, c.value_len))
            return CP2P_EPARSE;
        t->family = c.code == CP2P_MA_DNS4 ? AF_INET : c.code == CP2P_MA_DNS6 ? AF_INET6 : AF_UNSPEC;
        t->is_name = 1;
        memcpy(t->host, c.value, c.value_len);
        break;
    default:
        return CP2P_EUNSUPPORTED;
    }
    if (!cp2p_multiaddr_iter_next(&it, &c) || c.code != CP2P_MA_TCP || c.value_len != 2)
        return CP2P_EUNSUPPORTED;
    snprintf(t->port, sizeof t->port, "%u", (unsigned)(c.value[0] << 8 | c.value[1]));
    if (cp2p_multiaddr_iter_next(&it, &c) &&
        (c.code != CP2P_MA_P2P || cp2p_multiaddr_iter_next(&it, &c)))
        return CP2P_EUNSUPPORTED;
    return 0;
}

static int tcp_matches(const cp2p_multiaddr_t *ma)
{
    target_t t;
    return parse_target(ma, &t) == 0;
}

static int ma_from_sockaddr(const struct sockaddr *sa, cp2p_multiaddr_t *out)
{
    cp2p_buf_t b = {0};
    uint16_t port;
    int rc;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        rc = cp2p_buf_append_uvarint(&b, CP2P_MA_IP4);
        if (!rc)
            rc = cp2p_buf_append(&b, &s4->sin_addr, 4);
        port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        rc = cp2p_buf_append_uvarint(&b, CP2P_MA_IP6);
        if (!rc)
            rc = cp2p_buf_append(&b, &s6->sin6_addr, 16);
        port = ntohs(s6->sin6_port);
    } else {
        return CP2P_EUNSUPPORTED;
    }
    uint8_t pb[2] = {(uint8_t)(port >> 8), (uint8_t)port};
    if (!rc)
        rc = cp2p_buf_append_uvarint(&b, CP2P_MA_TCP);
    if (!rc)
        rc = cp2p_buf_append(&b, pb, 2);
    if (rc) {
        cp2p_buf_free(&b);
        return rc;
    }
    out->bytes = cp2p_buf_steal(&b, &out->len);
    return 0;
}

static int map_uv_error(int err)
{
    switch (err) {
    case UV_ECONNREFUSED: return CP2P_ECONNREFUSED;
    case UV_ENETUNREACH: case UV_EHOSTUNREACH: case UV_EADDRNOTAVAIL: case UV_EAI_NONAME:
    case UV_EAI_AGAIN: case UV_EAI_FAIL: case UV_EAI_NODATA: case UV_EAI_ADDRFAMILY:
        return CP2P_EUNREACHABLE;
    case UV_ETIMEDOUT: return CP2P_ETIMEOUT;
    case UV_ECANCELED: return CP2P_ECANCELED;
    case UV_ENOMEM: return CP2P_ENOMEM;
    default: return CP2P_EIO;
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void cp2p_wire_free(const cp2p_wire_vtable_t *vt, void *w)
{
    if (vt && vt->free)
        vt->free(w);
    else
        free(w);
}

void cp2p_rawconn_free(cp2p_rawconn_t *rc)
{
    if (!rc)
        return;
    if (rc->stream)
        uv_close((uv_handle_t *)rc->stream, free_handle);
    free(rc->local.bytes);
    free(rc->remote.bytes);
    cp2p_wire_free(rc->wire, rc->wire_state);
    cp2p_buf_free(&rc->early);
    free(rc);
}

/* Wraps a connected socket; frees tcp (by closing it) on failure. */
static cp2p_rawconn_t *rawconn_new(uv_tcp_t *tcp)
{
    struct sockaddr_storage la, ra;
    int ll = sizeof la, rl = sizeof ra;
    cp2p_rawconn_t *rc = calloc(1, sizeof *rc);
    if (!rc || uv_tcp_getsockname(tcp, (struct sockaddr *)&la, &ll) ||
        uv_tcp_getpeername(tcp, (struct sockaddr *)&ra, &rl) ||
        ma_from_sockaddr((struct sockaddr *)&la, &rc->local) ||
        ma_from_sockaddr((struct sockaddr *)&ra, &rc->remote)) {
        cp2p_rawconn_free(rc);
        uv_close((uv_handle_t *)tcp, free_handle);
        return NULL;
    }
    /* Muxed protocols interleave small frames (acks, window updates); Nagle
     * would hold them back behind data. */
    uv_tcp_nodelay(tcp, 1);
    rc->stream = (uv_stream_t *)tcp;
    return rc;
}

/* ---- listening ---- */

struct cp2p_listener {
    uv_tcp_t tcp;
    cp2p_accept_fn fn;
    void *arg;
};

static void on_connection(uv_stream_t *server, int status)
{
    cp2p_listener_t *l = server->data;
    if (status < 0) {
        cp2p_log_warn("tcp", "accept failed: %s", uv_strerror(status));
        return;
    }
    uv_tcp_t *c = malloc(sizeof *c);
    if (!c || uv_tcp_init(server->loop, c)) {
        free(c);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)c)) {
        uv_close((uv_handle_t *)c, free_handle);
        return;
    }
    cp2p_rawconn_t *rc = rawconn_new(c);
    if (rc)
        l->fn(l->arg, rc);
}

static int resolve_sync(uv_loop_t *loop, const target_t *t, struct sockaddr_storage *ss)
{
    struct addrinfo hints = {0}, *res;
    uv_getaddrinfo_t req;
    hints.ai_family = t->family;
    hints.ai_socktype = SOCK_STREAM;
    if (!t->is_name)
        hints.ai_flags = AI_NUMERICHOST;
    int r = uv_getaddrinfo(loop, &req, NULL, t->host, t->port, &hints);
    if (r)
        return map_uv_error(r);
    res = req.addrinfo;
    if (!res || res->ai_addrlen > sizeof *ss) {
        uv_freeaddrinfo(res);
        return CP2P_EUNREACHABLE;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    return 0;
}

/* Port reuse (go-libp2p's reuseport, rust-libp2p's PortUse::Reuse): every
 * listener has SO_REUSEPORT, so a dial can bind to the listen port and a NAT
 * maps our dials to the same external port as the one identify observed and
 * a hole punch needs (TCP simultaneous open). */
static int set_reuseport(uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    int on = 1;
    if (uv_fileno((uv_handle_t *)tcp, &fd))
        return UV_EBADF;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on))
        return -errno;
    return 0;
}

static socklen_t sa_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static uint16_t sa_port(const struct sockaddr *sa)
{
    return ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                          : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* SO_REUSEPORT lets a second process (same user) listen on a port that is
 * taken, and share its connections: a plain bind first keeps "in use" an
 * error, as it was. */
static int port_free(const struct sockaddr *sa)
{
    if (sa_port(sa) == 0)
        return 0;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1, rc = 0;
    if (fd < 0)
        return 0; /* the real bind will tell */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, sa, sa_len(sa)) && errno == EADDRINUSE)
        rc = UV_EADDRINUSE;
    close(fd);
    return rc;
}

static int tcp_listen(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_accept_fn fn, void *arg,
                      cp2p_listener_t **out)
{
    target_t t;
    struct sockaddr_storage ss;
    int rc = parse_target(ma, &t);
    if (rc)
        return rc == CP2P_EUNSUPPORTED ? rc : CP2P_EINVAL;
    if ((rc = resolve_sync(loop, &t, &ss)))
        return rc;
    cp2p_listener_t *l = calloc(1, sizeof *l);
    if (!l)
        return CP2P_ENOMEM;
    l->fn = fn;
    l->arg = arg;
    l->tcp.data = l;
    /* uv_tcp_bind sets SO_REUSEADDR, so a restarted host can rebind at once. */
    int r = uv_tcp_init_ex(loop, &l->tcp, ss.ss_family);
    if (r) {
        free(l);
        return map_uv_error(r);
    }
    r = port_free((struct sockaddr *)&ss);
    if (!r)
        r = set_reuseport(&l->tcp);
    if (!r)
        r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (!r)
        r = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    if (r) {
        cp2p_log_warn("tcp", "listen on %s port %s: %s", t.host, t.port, uv_strerror(r));
        uv_close((uv_handle_t *)&l->tcp, free_handle);
        return r == UV_EADDRINUSE ? CP2P_EEXIST : map_uv_error(r);
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (cp2p_log_enabled(CP2P_LOG_DEBUG) &&
        uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &blen) == 0)
        cp2p_log_debug("tcp", "listening on %s port %u", t.host,
                       ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                        : ((struct sockaddr_in6 *)&bound)->sin6_port));
    *out = l;
    return 0;
}

static int push_addr(cp2p_multiaddr_t **addrs, size_t *n, const struct sockaddr *sa)
{
    cp2p_multiaddr_t ma;
    int rc = ma_from_sockaddr(sa, &ma);
    if (rc)
        return rc;
    cp2p_multiaddr_t *a = realloc(*addrs, (*n + 1) * sizeof *a);
    if (!a) {
        free(ma.bytes);
        return CP2P_ENOMEM;
    }
    a[(*n)++] = ma;
    *addrs = a;
    return 0;
}

static int is_wildcard(const struct sockaddr *sa)
{
    static const uint8_t zero[16];
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == 0;
    return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, zero, 16) == 0;
}

static int tcp_listener_addrs(cp2p_listener_t *l, cp2p_multiaddr_t **addrs, size_t *n)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len))
        return CP2P_EIO;
    if (!is_wildcard((struct sockaddr *)&ss))
        return push_addr(addrs, n, (struct sockaddr *)&ss);
    uv_interface_address_t *ifs;
    int count, rc = 0;
    if (uv_interface_addresses(&ifs, &count))
        return CP2P_EIO;
    uint16_t port = ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port;
    for (int i = 0; i < count && !rc; i++) {
        struct sockaddr_storage a;
        memcpy(&a, &ifs[i].address, sizeof ifs[i].address);
        if (a.ss_family != ss.ss_family)
            continue;
        /* Link-local IPv6 needs a zone to be dialled, which /ip6 cannot carry. */
        if (a.ss_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)&a)->sin6_addr))
            continue;
        if (a.ss_family == AF_INET)
            ((struct sockaddr_in *)&a)->sin_port = port;
        else
            ((struct sockaddr_in6 *)&a)->sin6_port = port;
        rc = push_addr(addrs, n, (struct sockaddr *)&a);
    }
    uv_free_interface_addresses(ifs, count);
    return rc;
}

static void listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void tcp_listener_close(cp2p_listener_t *l)
{
    uv_close((uv_handle_t *)&l->tcp, listener_closed);
}

/* ---- dialling ---- */

struct cp2p_dial {
    uv_loop_t *loop;
    cp2p_dial_fn fn;
    void *arg;
    int cancelled;
    uv_getaddrinfo_t gai;
    struct addrinfo *res, *cur; /* candidates, tried in order */
    uv_tcp_t *tcp;
    uv_connect_t req;
    int last_err;
    int sync_err; /* a failure while tcp_dial still runs: returned, not called back */
    int in_dial;
    /* Port reuse: the listeners' bound addresses a dial may bind to. */
    struct sockaddr_storage reuse[CP2P_TCP_MAX_REUSE];
    size_t nreuse;
    int reused; /* the socket under way is bound to a listen port */
    int strict; /* no fallback to another port */
};

static void dial_free(cp2p_dial_t *d)
{
    if (d->res)
        uv_freeaddrinfo(d->res);
    free(d);
}

static void dial_finish(cp2p_dial_t *d, int status, cp2p_rawconn_t *rc)
{
    if (d->in_dial) { /* only failures come this early: libuv defers connects */
        d->sync_err = status;
        return;
    }
    if (d->cancelled) {
        cp2p_rawconn_free(rc);
    } else {
        d->fn(d->arg, status, rc);
    }
    dial_free(d);
}

static void try_next(cp2p_dial_t *d);

static void on_connect(uv_connect_t *req, int status)
{
    cp2p_dial_t *d = req->data;
    uv_tcp_t *tcp = d->tcp;
    d->tcp = NULL;
    if (d->cancelled) { /* the cancel closed the handle */
        dial_free(d);
        return;
    }
    if (status == 0) {
        cp2p_rawconn_t *rc = rawconn_new(tcp);
        dial_finish(d, rc ? 0 : CP2P_ENOMEM, rc);
        return;
    }
    uv_close((uv_handle_t *)tcp, free_handle);
    d->last_err = map_uv_error(status);
    d->cur = d->cur->ai_next;
    try_next(d);
}

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* The listen address a dial to dst binds to, as go's reuseport picks it: a
 * listener of dst's family, on loopback for a loopback dst, else on the
 * wildcard (the kernel picks the source address), else on a specific
 * non-loopback address. NULL: no listener fits, dial from any port. */
static const struct sockaddr *reuse_for(const cp2p_dial_t *d, const struct sockaddr *dst)
{
    const struct sockaddr *wild = NULL, *specific = NULL;
    for (size_t i = 0; i < d->nreuse; i++) {
        const struct sockaddr *l = (const struct sockaddr *)&d->reuse[i];
        if (l->sa_family != dst->sa_family)
            continue;
        if (is_wildcard(l))
            wild = wild ? wild : l;
        else if (is_loopback(l) == is_loopback(dst) && !specific)
            specific = l;
    }
    if (is_loopback(dst))
        return specific ? specific : wild;
    return wild ? wild : specific;
}

/* A socket for the current candidate: bound to a listen port when asked and
 * possible. */
static int open_socket(cp2p_dial_t *d, int reuse)
{
    const struct sockaddr *src = reuse ? reuse_for(d, d->cur->ai_addr) : NULL;
    d->tcp = malloc(sizeof *d->tcp);
    if (!d->tcp || uv_tcp_init_ex(d->loop, d->tcp, d->cur->ai_family)) {
        free(d->tcp);
        d->tcp = NULL;
        return CP2P_ENOMEM;
    }
    d->reused = 0;
    if (src && set_reuseport(d->tcp) == 0 && uv_tcp_bind(d->tcp, src, 0) == 0)
        d->reused = 1;
    else if (src)
        cp2p_log_debug("tcp", "port reuse: cannot bind to listen port %u", sa_port(src));
    return 0;
}

static void try_next(cp2p_dial_t *d)
{
    for (; d->cur; d->cur = d->cur->ai_next) {
        if (d->cur->ai_family != AF_INET && d->cur->ai_family != AF_INET6)
            continue;
        for (int reuse = d->nreuse > 0; reuse >= 0; reuse--) {
            if (open_socket(d, reuse)) {
                dial_finish(d, CP2P_ENOMEM, NULL);
                return;
            }
            d->req.data = d;
            int r = uv_tcp_connect(&d->req, d->tcp, d->cur->ai_addr, on_connect);
            if (r == 0)
                return;
            uv_close((uv_handle_t *)d->tcp, free_handle);
            d->tcp = NULL;
            d->last_err = map_uv_error(r);
            /* The 4-tuple from our listen port is taken (a connection to the
             * same listener exists): go's reuseport falls back to any port. */
            if (!d->reused || d->strict || (r != UV_EADDRNOTAVAIL && r != UV_EADDRINUSE))
                break;
        }
    }
    dial_finish(d, d->last_err, NULL);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    cp2p_dial_t *d = req->data;
    d->res = d->cur = res;
    if (d->cancelled) {
        dial_free(d);
        return;
    }
    if (status < 0 || !res) {
        cp2p_log_debug("tcp", "resolution failed: %s", status < 0 ? uv_strerror(status) : "empty");
        dial_finish(d, CP2P_EUNREACHABLE, NULL);
        return;
    }
    try_next(d);
}

static int dial_common(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_listener_t *const *ls,
                       size_t nls, int strict, cp2p_dial_fn fn, void *arg, cp2p_dial_t **out)
{
    target_t t;
    int rc = parse_target(ma, &t);
    if (rc)
        return rc == CP2P_EUNSUPPORTED ? rc : CP2P_EINVAL;
    cp2p_dial_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    d->loop = loop;
    d->fn = fn;
    d->arg = arg;
    d->last_err = CP2P_EUNREACHABLE;
    d->gai.data = d;
    d->strict = strict;
    for (size_t i = 0; i < nls && d->nreuse < CP2P_TCP_MAX_REUSE; i++) {
        int len = sizeof d->reuse[0];
        if (ls[i] && uv_tcp_getsockname(&ls[i]->tcp, (struct sockaddr *)&d->reuse[d->nreuse], &len) == 0)
            d->nreuse++;
    }
    struct addrinfo hints = {0};
    hints.ai_family = t.family;
    hints.ai_socktype = SOCK_STREAM;
    if (!t.is_name)
        hints.ai_flags = AI_NUMERICHOST;
    /* A numeric host is only parsed, right here: a trip through the thread
     * pool (two thread wakeups) per dial cost more than the parse. The
     * callback still never runs before tcp_dial returns. */
    int r = uv_getaddrinfo(loop, &d->gai, t.is_name ? on_resolved : NULL, t.host, t.port, &hints);
    if (r) {
        free(d);
        return map_uv_error(r);
    }
    if (!t.is_name) {
        d->res = d->cur = d->gai.addrinfo;
        d->in_dial = 1;
        try_next(d);
        d->in_dial = 0;
        if (d->sync_err) {
            rc = d->sync_err;
            dial_free(d);
            return rc;
        }
    }
    *out = d;
    return 0;
}

static int tcp_dial(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_dial_fn fn, void *arg,
                    cp2p_dial_t **out)
{
    return dial_common(loop, ma, NULL, 0, 0, fn, arg, out);
}

static int tcp_dial_reuse(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_listener_t *const *ls,
                          size_t nls, int strict, cp2p_dial_fn fn, void *arg, cp2p_dial_t **out)
{
    return dial_common(loop, ma, ls, nls, strict, fn, arg, out);
}

static void tcp_dial_cancel(cp2p_dial_t *d)
{
    d->cancelled = 1;
    if (d->tcp)
        uv_close((uv_handle_t *)d->tcp, free_handle);
    else
        uv_cancel((uv_req_t *)&d->gai);
}

const cp2p_transport_vtable_t cp2p_tcp_transport = {
    .name = "tcp",
    .matches = tcp_matches,
    .listen = tcp_listen,
    .listener_addrs = tcp_listener_addrs,
    .listener_close = tcp_listener_close,
    .dial = tcp_dial,
    .dial_cancel = tcp_dial_cancel,
    .dial_reuse = tcp_dial_reuse,
};
