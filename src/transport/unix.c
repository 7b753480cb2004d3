/* Unix domain socket transport (multiaddr /unix/<path>, as rust-libp2p's
 * uds transport): listeners and dialers on libuv pipes. Both ends of a
 * connection name the listener's path: a dialled unix socket has no name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "transport/transport.h"

#define LISTEN_BACKLOG 511

/* /unix/<path>, optionally followed by /p2p/<id>; the path NUL-terminated
 * into out (sockaddr_un's size bounds it). */
static int parse_path(const cp2p_multiaddr_t *ma, char out[sizeof(((struct sockaddr_un *)0)->sun_path)])
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c;
    cp2p_multiaddr_iter_init(&it, ma);
    if (!cp2p_multiaddr_iter_next(&it, &c) || c.code != CP2P_MA_UNIX)
        return CP2P_EUNSUPPORTED;
    if (c.value_len == 0 || memchr(c.value, 0, c.value_len))
        return CP2P_EPARSE;
    if (c.value_len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        cp2p_log_warn("unix", "a socket path of %zu bytes: the kernel takes at most %zu",
                      c.value_len, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return CP2P_EOVERFLOW;
    }
    memcpy(out, c.value, c.value_len);
    out[c.value_len] = 0;
    if (cp2p_multiaddr_iter_next(&it, &c) &&
        (c.code != CP2P_MA_P2P || cp2p_multiaddr_iter_next(&it, &c)))
        return CP2P_EUNSUPPORTED;
    return 0;
}

/* Any /unix address, so that listen and dial can say what is wrong with it. */
static int unix_matches(const cp2p_multiaddr_t *ma)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c;
    cp2p_multiaddr_iter_init(&it, ma);
    return cp2p_multiaddr_iter_next(&it, &c) && c.code == CP2P_MA_UNIX;
}

static int map_uv_error(int err)
{
    switch (err) {
    case UV_ECONNREFUSED: return CP2P_ECONNREFUSED;
    case UV_ENOENT: case UV_ENOTDIR: return CP2P_EUNREACHABLE;
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

/* Wraps a connected pipe; frees it (by closing it) on failure. */
static cp2p_rawconn_t *rawconn_new(uv_pipe_t *pipe, const char *path)
{
    cp2p_rawconn_t *rc = calloc(1, sizeof *rc);
    char s[8 + sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(s, sizeof s, "/unix%s%s", path[0] == '/' ? "" : "/", path);
    if (!rc || cp2p_multiaddr_parse(s, &rc->local) || cp2p_multiaddr_parse(s, &rc->remote)) {
        cp2p_rawconn_free(rc);
        uv_close((uv_handle_t *)pipe, free_handle);
        return NULL;
    }
    rc->stream = (uv_stream_t *)pipe;
    return rc;
}

/* ---- listening ---- */

struct cp2p_listener {
    uv_pipe_t pipe;
    cp2p_accept_fn fn;
    void *arg;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void on_connection(uv_stream_t *server, int status)
{
    cp2p_listener_t *l = server->data;
    if (status < 0) {
        cp2p_log_warn("unix", "accept failed: %s", uv_strerror(status));
        return;
    }
    uv_pipe_t *c = malloc(sizeof *c);
    if (!c || uv_pipe_init(server->loop, c, 0)) {
        free(c);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)c)) {
        uv_close((uv_handle_t *)c, free_handle);
        return;
    }
    cp2p_rawconn_t *rc = rawconn_new(c, l->path);
    if (rc)
        l->fn(l->arg, rc);
}

/* A socket file nobody listens on (a host that died without closing): 1.
 * connect() on a unix socket never waits, so this may run on the loop. */
static int is_stale_socket(const char *path)
{
    struct stat st;
    if (stat(path, &st) || !S_ISSOCK(st.st_mode))
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int stale = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

static int unix_listen(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_accept_fn fn, void *arg,
                       cp2p_listener_t **out)
{
    cp2p_listener_t *l = calloc(1, sizeof *l);
    if (!l)
        return CP2P_ENOMEM;
    int rc = parse_path(ma, l->path);
    if (rc) {
        free(l);
        return rc;
    }
    l->fn = fn;
    l->arg = arg;
    l->pipe.data = l;
    int r = uv_pipe_init(loop, &l->pipe, 0);
    if (r) {
        free(l);
        return map_uv_error(r);
    }
    r = uv_pipe_bind(&l->pipe, l->path);
    if (r == UV_EADDRINUSE && is_stale_socket(l->path)) {
        cp2p_log_info("unix", "%s: removing the socket of a listener that is gone", l->path);
        unlink(l->path);
        r = uv_pipe_bind(&l->pipe, l->path);
    }
    if (!r)
        r = uv_listen((uv_stream_t *)&l->pipe, LISTEN_BACKLOG, on_connection);
    if (r) {
        cp2p_log_warn("unix", "listen on %s: %s", l->path, uv_strerror(r));
        uv_close((uv_handle_t *)&l->pipe, free_handle);
        return r == UV_EADDRINUSE ? CP2P_EEXIST : map_uv_error(r);
    }
    cp2p_log_debug("unix", "listening on %s", l->path);
    *out = l;
    return 0;
}

static int unix_listener_addrs(cp2p_listener_t *l, cp2p_multiaddr_t **addrs, size_t *n)
{
    char s[8 + sizeof l->path];
    snprintf(s, sizeof s, "/unix%s%s", l->path[0] == '/' ? "" : "/", l->path);
    cp2p_multiaddr_t ma;
    int rc = cp2p_multiaddr_parse(s, &ma);
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

static void listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void unix_listener_close(cp2p_listener_t *l)
{
    unlink(l->path); /* ours: bound by us, gone with us */
    uv_close((uv_handle_t *)&l->pipe, listener_closed);
}

/* ---- dialling ---- */

struct cp2p_dial {
    cp2p_dial_fn fn;
    void *arg;
    int cancelled;
    uv_pipe_t *pipe;
    uv_connect_t req;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void on_connect(uv_connect_t *req, int status)
{
    cp2p_dial_t *d = req->data;
    if (d->cancelled) { /* the cancel closed the handle */
        free(d);
        return;
    }
    if (status == 0) {
        cp2p_rawconn_t *rc = rawconn_new(d->pipe, d->path);
        d->fn(d->arg, rc ? 0 : CP2P_ENOMEM, rc);
    } else {
        uv_close((uv_handle_t *)d->pipe, free_handle);
        d->fn(d->arg, map_uv_error(status), NULL);
    }
    free(d);
}

static int unix_dial(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_dial_fn fn, void *arg,
                     cp2p_dial_t **out)
{
    cp2p_dial_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    int rc = parse_path(ma, d->path);
    if (rc) {
        free(d);
        return rc;
    }
    d->fn = fn;
    d->arg = arg;
    d->pipe = malloc(sizeof *d->pipe);
    if (!d->pipe || uv_pipe_init(loop, d->pipe, 0)) {
        free(d->pipe);
        free(d);
        return CP2P_ENOMEM;
    }
    d->req.data = d;
    /* libuv reports every outcome, even an immediate failure, through on_connect. */
    uv_pipe_connect(&d->req, d->pipe, d->path, on_connect);
    *out = d;
    return 0;
}

static void unix_dial_cancel(cp2p_dial_t *d)
{
    d->cancelled = 1;
    uv_close((uv_handle_t *)d->pipe, free_handle);
}

const cp2p_transport_vtable_t cp2p_unix_transport = {
    .name = "unix",
    .matches = unix_matches,
    .listen = unix_listen,
    .listener_addrs = unix_listener_addrs,
    .listener_close = unix_listener_close,
    .dial = unix_dial,
    .dial_cancel = unix_dial_cancel,
};
