/* cp2pd control server on libuv (go-libp2p-daemon specs/CONTROL.md): control
 * sockets, request dispatch, and stream bridging with backpressure between
 * host streams and client sockets (STREAM_OPEN, STREAM_HANDLER). */
#include "daemon/daemon.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "daemon/control.h"
#include "daemon/session.h"

#define LOG "daemon"
#define READ_CHUNK (64 * 1024)
/* Responses a client has not read yet: past this we stop reading its requests. */
#define MAX_UNREAD_RESPONSES (1024 * 1024)

typedef struct handler {
    char *protocol;
    cp2p_multiaddr_t addr;
} handler_t;

struct cp2p_daemon {
    cp2p_host_t *h;
    uv_loop_t *loop;
    cp2p_dht_t *dht;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    cp2p_multiaddr_t control;
    char *unix_path; /* removed on close */
    uint32_t max_clients;
    uint32_t n_clients;
    cp2p_daemon_client_t *clients; /* every live client, for close */
    handler_t handlers[CP2P_DAEMON_MAX_HANDLERS];
    size_t n_handlers;
    cp2p_daemon_stats_t stats;
    int closing;
    size_t open_handles; /* listener + clients not yet closed */
    void (*done)(void *);
    void *done_arg;
};

typedef enum { C_CONNECTING, C_REQUEST, C_BUSY, C_BRIDGE, C_CLOSING } client_state_t;

struct cp2p_daemon_client {
    cp2p_daemon_t *d;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    client_state_t state;
    int in_process; /* process() is on the stack: replies do not re-enter it */
    int refs;       /* the socket handle + asynchronous operations under way */
    size_t unread;  /* bytes queued to the socket, not yet written */
    cp2p_buf_t in;  /* request bytes not yet handled */
    /* bridge */
    cp2p_stream_t *s;
    int to_stream_busy;  /* a stream write is in flight: the socket is not read */
    size_t charged;      /* stream bytes on their way to the socket, in the stream's scopes */
    int client_eof, stream_eof;
    cp2p_daemon_client_t *prev, *next;
    uint8_t rbuf[READ_CHUNK];
};

typedef struct wreq {
    uv_write_t req;
    cp2p_daemon_client_t *c;
    size_t len;
    uint8_t data[];
} wreq_t;

static void client_close(cp2p_daemon_client_t *c);
static void process(cp2p_daemon_client_t *c);
static void bridge_start(cp2p_daemon_client_t *c, cp2p_stream_t *s);
static void stream_resume(cp2p_daemon_client_t *c);
static void bridge_maybe_end(cp2p_daemon_client_t *c);

/* --- client lifetime --- */

static void maybe_done(cp2p_daemon_t *d)
{
    if (d->closing && d->open_handles == 0) {
        void (*done)(void *) = d->done;
        void *arg = d->done_arg;
        for (size_t i = 0; i < d->n_handlers; i++) {
            free(d->handlers[i].protocol);
            cp2p_multiaddr_free(&d->handlers[i].addr);
        }
        cp2p_multiaddr_free(&d->control);
        free(d->unix_path);
        free(d);
        if (done)
            done(arg);
    }
}

static void client_unref(cp2p_daemon_client_t *c)
{
    if (--c->refs > 0)
        return;
    cp2p_daemon_t *d = c->d;
    cp2p_buf_free(&c->in);
    free(c);
    d->open_handles--;
    maybe_done(d);
}

static void on_client_closed(uv_handle_t *hd)
{
    client_unref(hd->data);
}

static void client_close(cp2p_daemon_client_t *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    cp2p_daemon_t *d = c->d;
    if (c->prev)
        c->prev->next = c->next;
    else
        d->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    d->n_clients--;
    if (c->s) {
        cp2p_stream_t *s = c->s;
        c->s = NULL;
        if (c->charged)
            cp2p_stream_charge(s, -(long)c->charged);
        c->charged = 0;
        cp2p_stream_read_stop(s);
        if (!(c->client_eof && c->stream_eof))
            cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
    uv_close(&c->io.handle, on_client_closed);
}

/* A new client socket, initialised for unix or tcp as addr says (NULL:
 * the listener's kind). NULL when over max_clients. */
static cp2p_daemon_client_t *client_new(cp2p_daemon_t *d, int is_unix)
{
    if (d->n_clients >= d->max_clients) {
        d->stats.clients_rejected++;
        if (d->stats.clients_rejected == 1)
            cp2p_log_warn(LOG, "over %u clients: refusing more", d->max_clients);
        return NULL;
    }
    cp2p_daemon_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int rc = is_unix ? uv_pipe_init(d->loop, &c->io.pipe, 0) : uv_tcp_init(d->loop, &c->io.tcp);
    if (rc < 0) {
        free(c);
        return NULL;
    }
    c->d = d;
    c->refs = 1;
    c->io.handle.data = c;
    c->next = d->clients;
    if (d->clients)
        d->clients->prev = c;
    d->clients = c;
    d->n_clients++;
    d->open_handles++;
    return c;
}

/* --- writing to the client --- */

static void on_client_written(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    cp2p_daemon_client_t *c = w->c;
    c->unread -= w->len;
    free(w);
    if (c->state == C_CLOSING)
        return;
    if (status < 0) {
        cp2p_log_debug(LOG, "client write: %s", uv_strerror(status));
        client_close(c);
    } else if (c->state == C_REQUEST) {
        process(c);
    } else if (c->state == C_BRIDGE && c->unread == 0) {
        if (c->charged && c->s)
            cp2p_stream_charge(c->s, -(long)c->charged);
        c->charged = 0;
        if (c->stream_eof)
            bridge_maybe_end(c);
        else
            stream_resume(c);
    }
}

int cp2p_daemon_send(cp2p_daemon_client_t *c, const uint8_t *p, size_t n)
{
    if (c->state == C_CLOSING)
        return CP2P_ECLOSED;
    wreq_t *w = malloc(sizeof *w + n);
    if (!w)
        return CP2P_ENOMEM;
    memcpy(w->data, p, n);
    w->c = c;
    w->len = n;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    int rc = uv_write(&w->req, &c->io.stream, &b, 1, on_client_written);
    if (rc < 0) {
        free(w);
        return CP2P_EIO;
    }
    c->unread += n;
    return 0;
}

/* Send a response held in b (which is freed) and go back to reading requests
 * unless the request turned the connection into something else. */
void cp2p_daemon_reply(cp2p_daemon_client_t *c, cp2p_buf_t *b, int rc)
{
    if (rc == 0)
        rc = cp2p_daemon_send(c, b->data, b->len);
    cp2p_buf_free(b);
    if (rc < 0) {
        client_close(c);
        return;
    }
    if (c->state == C_BUSY) {
        c->state = C_REQUEST;
        if (!c->in_process)
            process(c);
    }
}

void cp2p_daemon_reply_status(cp2p_daemon_client_t *c, const char *err)
{
    cp2p_buf_t b = {0};
    cp2p_daemon_reply(c, &b, cp2p_daemon_status_append(&b, err));
}

cp2p_host_t *cp2p_daemon_host(cp2p_daemon_client_t *c)
{
    return c->d->h;
}

cp2p_dht_t *cp2p_daemon_dht(cp2p_daemon_client_t *c)
{
    return c->d->dht;
}

/* An asynchronous operation holds the client until its callback; 0 there
 * means the client went away meanwhile and the result is for nobody. */
void cp2p_daemon_hold(cp2p_daemon_client_t *c)
{
    c->refs++;
}

int cp2p_daemon_release(cp2p_daemon_client_t *c)
{
    int alive = c->state != C_CLOSING;
    client_unref(c);
    return alive;
}

/* --- the bridge: socket <-> host stream --- */

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    cp2p_daemon_client_t *c = hd->data;
    *buf = uv_buf_init((char *)c->rbuf, sizeof c->rbuf);
}

static void on_sock_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Reading an already reading socket is fine here (libuv says UV_EALREADY). */
static int read_on(cp2p_daemon_client_t *c)
{
    int rc = uv_read_start(&c->io.stream, on_alloc, on_sock_read);
    return rc == UV_EALREADY ? 0 : rc;
}

static void bridge_maybe_end(cp2p_daemon_client_t *c)
{
    if (c->client_eof && c->stream_eof && c->unread == 0)
        client_close(c);
}

static void on_stream_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);

static void stream_resume(cp2p_daemon_client_t *c)
{
    if (cp2p_stream_read_start(c->s, on_stream_read, c) < 0)
        client_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    cp2p_daemon_client_t *c = req->data;
    if (cp2p_daemon_release(c))
        bridge_maybe_end(c);
}

/* Stream -> socket: one write in flight at a time, so a client that does not
 * read shuts the stream's window. */
static void on_stream_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (status == 0) {
        cp2p_stream_read_stop(s);
        if (cp2p_daemon_send(c, p, n) < 0) {
            client_close(c);
            return;
        }
        /* Held for the remote until the client took it: its scopes count it. */
        c->charged += n;
        if (cp2p_stream_charge(s, (long)n) < 0)
            client_close(c); /* the protocol's memory is full */
        return;
    }
    if (status != CP2P_ECLOSED) {
        cp2p_log_debug(LOG, "bridged stream: %s", cp2p_strerror(status));
        client_close(c);
        return;
    }
    c->stream_eof = 1;
    c->shutdown_req.data = c;
    cp2p_daemon_hold(c);
    if (uv_shutdown(&c->shutdown_req, &c->io.stream, on_shutdown) < 0) {
        client_unref(c);
        client_close(c);
    }
}

static void on_stream_written(cp2p_stream_t *s, int status, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    c->to_stream_busy = 0;
    if (!cp2p_daemon_release(c))
        return;
    if (status < 0)
        client_close(c);
    else if (!c->client_eof && read_on(c) < 0)
        client_close(c);
}

/* Socket -> stream: the socket is not read while a write waits for the muxer. */
static int bridge_to_stream(cp2p_daemon_client_t *c, const uint8_t *p, size_t n)
{
    /* stopped first: the muxer may take the bytes and call back at once */
    uv_read_stop(&c->io.stream);
    cp2p_daemon_hold(c);
    c->to_stream_busy = 1;
    int rc = cp2p_stream_write(c->s, p, n, on_stream_written, c);
    if (rc < 0) {
        c->to_stream_busy = 0;
        client_unref(c);
    }
    return rc;
}

static void bridge_start(cp2p_daemon_client_t *c, cp2p_stream_t *s)
{
    c->state = C_BRIDGE;
    c->s = s;
    c->d->stats.streams++;
    /* bytes the client sent right after its request belong to the stream */
    if (c->in.len && bridge_to_stream(c, c->in.data, c->in.len) < 0) {
        client_close(c);
        return;
    }
    cp2p_buf_free(&c->in);
    if (cp2p_stream_read_start(s, on_stream_read, c) < 0 ||
        (!c->to_stream_busy && read_on(c) < 0))
        client_close(c);
}

/* --- reading from the client --- */

static void on_sock_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    cp2p_daemon_client_t *c = st->data;
    if (nread == 0 || c->state == C_CLOSING)
        return;
    if (nread < 0) {
        if (c->state == C_BRIDGE && nread == UV_EOF) {
            uv_read_stop(st);
            c->client_eof = 1;
            if (cp2p_stream_close_write(c->s) < 0)
                client_close(c);
            else
                bridge_maybe_end(c);
        } else if (nread == UV_EOF && c->state == C_REQUEST) {
            /* clients half-close after their request: answer it first */
            c->client_eof = 1;
            process(c);
        } else {
            client_close(c);
        }
        return;
    }
    if (c->state == C_BRIDGE) {
        if (bridge_to_stream(c, (const uint8_t *)buf->base, (size_t)nread) < 0)
            client_close(c);
        return;
    }
    if (cp2p_buf_append(&c->in, buf->base, (size_t)nread) < 0) {
        client_close(c);
        return;
    }
    process(c);
}

/* --- requests --- */

static void fill_peer_info(P2pd__PeerInfo *pi, const cp2p_peer_id_t *id, ProtobufCBinaryData *addrs,
                           size_t n)
{
    pi->id.data = (uint8_t *)id->bytes;
    pi->id.len = id->len;
    pi->addrs = addrs;
    pi->n_addrs = n;
}

static void do_identify(cp2p_daemon_client_t *c)
{
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    cp2p_buf_t b = {0};
    int rc = cp2p_host_addrs(c->d->h, &addrs, &n);
    ProtobufCBinaryData *bin = n ? calloc(n, sizeof *bin) : NULL;
    if (!rc && n && !bin)
        rc = CP2P_ENOMEM;
    if (!rc) {
        const cp2p_peer_id_t *self = cp2p_host_peer_id(c->d->h);
        P2pd__Response r = P2PD__RESPONSE__INIT;
        P2pd__IdentifyResponse id = P2PD__IDENTIFY_RESPONSE__INIT;
        id.id.data = (uint8_t *)self->bytes;
        id.id.len = self->len;
        for (size_t i = 0; i < n; i++)
            bin[i] = (ProtobufCBinaryData){.data = addrs[i].bytes, .len = addrs[i].len};
        id.addrs = bin;
        id.n_addrs = n;
        r.identify = &id;
        rc = cp2p_daemon_message_append(&b, &r.base);
    }
    cp2p_multiaddr_array_free(addrs, n);
    free(bin);
    cp2p_daemon_reply(c, &b, rc);
}

static void on_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (cp2p_daemon_release(c))
        cp2p_daemon_reply_status(c, status < 0 ? cp2p_strerror(status) : NULL);
}

static void do_connect(cp2p_daemon_client_t *c, const P2pd__ConnectRequest *r)
{
    cp2p_peer_id_t peer;
    cp2p_daemon_peer(&r->peer, &peer);
    cp2p_multiaddr_t addrs[CP2P_DAEMON_MAX_ADDRS];
    size_t n = 0;
    for (size_t i = 0; i < r->n_addrs; i++)
        if (cp2p_multiaddr_from_bytes(r->addrs[i].data, r->addrs[i].len, &addrs[n]) == 0)
            n++;
    cp2p_peerstore_t *ps = cp2p_host_peerstore(c->d->h);
    int rc = n ? cp2p_peerstore_add_addrs(ps, &peer, addrs, n, CP2P_TTL_ADDRESS, uv_now(c->d->loop))
               : 0;
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    if (!rc) {
        cp2p_daemon_hold(c);
        rc = cp2p_host_connect_peer(c->d->h, &peer, on_connected, c);
        if (rc < 0)
            client_unref(c);
    }
    if (rc < 0)
        cp2p_daemon_reply_status(c, cp2p_strerror(rc));
}

static void do_disconnect(cp2p_daemon_client_t *c, const P2pd__DisconnectRequest *r)
{
    cp2p_peer_id_t peer;
    cp2p_daemon_peer(&r->peer, &peer);
    cp2p_conn_t *conn = cp2p_host_conn_to(c->d->h, &peer);
    if (conn)
        cp2p_conn_close(conn);
    cp2p_daemon_reply_status(c, NULL);
}

static void do_list_peers(cp2p_daemon_client_t *c)
{
    cp2p_peerstore_t *ps = cp2p_host_peerstore(c->d->h);
    size_t total = cp2p_peerstore_count(ps), n = 0;
    cp2p_peer_id_t *ids = total ? calloc(total, sizeof *ids) : NULL;
    P2pd__PeerInfo *infos = total ? calloc(total, sizeof *infos) : NULL;
    P2pd__PeerInfo **ptrs = total ? calloc(total, sizeof *ptrs) : NULL;
    ProtobufCBinaryData *addrs = total ? calloc(total, sizeof *addrs) : NULL;
    cp2p_buf_t b = {0};
    int rc = total && !(ids && infos && ptrs && addrs) ? CP2P_ENOMEM : 0;
    if (!rc) {
        total = cp2p_peerstore_peers(ps, ids, total);
        for (size_t i = 0; i < total; i++) {
            cp2p_conn_t *conn = cp2p_host_conn_to(c->d->h, &ids[i]);
            if (!conn)
                continue;
            const cp2p_multiaddr_t *ra = cp2p_conn_remote_addr(conn);
            P2pd__PeerInfo pi = P2PD__PEER_INFO__INIT;
            infos[n] = pi;
            addrs[n] = (ProtobufCBinaryData){.data = ra ? ra->bytes : NULL, .len = ra ? ra->len : 0};
            fill_peer_info(&infos[n], &ids[i], &addrs[n], ra && ra->len ? 1 : 0);
            ptrs[n] = &infos[n];
            n++;
        }
        P2pd__Response r = P2PD__RESPONSE__INIT;
        r.peers = ptrs;
        r.n_peers = n;
        rc = cp2p_daemon_message_append(&b, &r.base);
    }
    free(ids);
    free(infos);
    free(ptrs);
    free(addrs);
    cp2p_daemon_reply(c, &b, rc);
}

static int append_stream_info(cp2p_buf_t *b, cp2p_stream_t *s, int as_response)
{
    const cp2p_peer_id_t *peer = cp2p_stream_peer(s);
    const cp2p_multiaddr_t *ra = cp2p_conn_remote_addr(cp2p_stream_conn(s));
    P2pd__StreamInfo si = P2PD__STREAM_INFO__INIT;
    si.peer.data = (uint8_t *)peer->bytes;
    si.peer.len = peer->len;
    if (ra) {
        si.addr.data = ra->bytes;
        si.addr.len = ra->len;
    }
    si.proto = (char *)cp2p_stream_protocol(s);
    if (!as_response)
        return cp2p_daemon_message_append(b, &si.base);
    P2pd__Response r = P2PD__RESPONSE__INIT;
    r.streaminfo = &si;
    return cp2p_daemon_message_append(b, &r.base);
}

static void on_stream_open(int status, cp2p_stream_t *s, void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (!cp2p_daemon_release(c)) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        return;
    }
    if (status < 0) {
        cp2p_daemon_reply_status(c, cp2p_strerror(status));
        return;
    }
    cp2p_buf_t b = {0};
    int rc = append_stream_info(&b, s, 1);
    if (!rc)
        rc = cp2p_daemon_send(c, b.data, b.len);
    cp2p_buf_free(&b);
    if (rc < 0) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        client_close(c);
        return;
    }
    bridge_start(c, s);
}

static void do_stream_open(cp2p_daemon_client_t *c, const P2pd__StreamOpenRequest *r)
{
    cp2p_peer_id_t peer;
    cp2p_daemon_peer(&r->peer, &peer);
    cp2p_daemon_hold(c);
    int rc = cp2p_host_new_stream(c->d->h, &peer, (const char *const *)r->proto, r->n_proto,
                                  on_stream_open, c);
    if (rc < 0) {
        client_unref(c);
        cp2p_daemon_reply_status(c, cp2p_strerror(rc));
    }
}

/* --- inbound streams: dial the client's handler, send StreamInfo, bridge --- */

static void on_handler_connected(uv_connect_t *req, int status)
{
    cp2p_daemon_client_t *c = req->data;
    if (!cp2p_daemon_release(c))
        return;
    cp2p_buf_t b = {0};
    int rc = status < 0 ? CP2P_ECONNREFUSED : append_stream_info(&b, c->s, 0);
    if (!rc)
        rc = cp2p_daemon_send(c, b.data, b.len);
    cp2p_buf_free(&b);
    if (rc < 0) {
        c->d->stats.handler_failures++;
        cp2p_log_info(LOG, "stream handler for %s unreachable: %s", cp2p_stream_protocol(c->s),
                      status < 0 ? uv_strerror(status) : cp2p_strerror(rc));
        client_close(c);
        return;
    }
    cp2p_stream_t *s = c->s;
    c->s = NULL;
    bridge_start(c, s);
}

static int dial_handler(cp2p_daemon_client_t *c, const cp2p_multiaddr_t *ma)
{
    cp2p_multiaddr_component_t comp;
    c->connect_req.data = c;
    if (cp2p_multiaddr_get(ma, CP2P_MA_UNIX, &comp) == 0) {
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        if (comp.value_len >= sizeof path)
            return CP2P_EOVERFLOW;
        memcpy(path, comp.value, comp.value_len);
        path[comp.value_len] = 0;
        uv_pipe_connect(&c->connect_req, &c->io.pipe, path, on_handler_connected);
        return 0;
    }
    struct sockaddr_storage ss = {0};
    cp2p_multiaddr_component_t port;
    if (cp2p_multiaddr_get(ma, CP2P_MA_TCP, &port) < 0 || port.value_len != 2)
        return CP2P_EINVAL;
    uint16_t p = (uint16_t)(port.value[0] << 8 | port.value[1]);
    if (cp2p_multiaddr_get(ma, CP2P_MA_IP4, &comp) == 0 && comp.value_len == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(p);
        memcpy(&sin->sin_addr, comp.value, 4);
    } else if (cp2p_multiaddr_get(ma, CP2P_MA_IP6, &comp) == 0 && comp.value_len == 16) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(p);
        memcpy(&sin6->sin6_addr, comp.value, 16);
    } else {
        return CP2P_EINVAL;
    }
    return uv_tcp_connect(&c->connect_req, &c->io.tcp, (struct sockaddr *)&ss,
                          on_handler_connected) < 0
               ? CP2P_EUNREACHABLE
               : 0;
}

static const handler_t *find_handler(const cp2p_daemon_t *d, const char *protocol)
{
    for (size_t i = 0; i < d->n_handlers; i++)
        if (!strcmp(d->handlers[i].protocol, protocol))
            return &d->handlers[i];
    return NULL;
}

static void on_inbound_stream(cp2p_stream_t *s, void *arg)
{
    cp2p_daemon_t *d = arg;
    const handler_t *hd = find_handler(d, cp2p_stream_protocol(s));
    cp2p_multiaddr_component_t comp;
    cp2p_daemon_client_t *c =
        hd ? client_new(d, cp2p_multiaddr_get(&hd->addr, CP2P_MA_UNIX, &comp) == 0) : NULL;
    if (!c) {
        d->stats.handler_failures++;
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    c->state = C_CONNECTING;
    c->s = s;
    cp2p_daemon_hold(c);
    if (dial_handler(c, &hd->addr) < 0) {
        d->stats.handler_failures++;
        client_unref(c);
        client_close(c);
    }
}

static void do_stream_handler(cp2p_daemon_client_t *c, const P2pd__StreamHandlerRequest *r)
{
    cp2p_daemon_t *d = c->d;
    cp2p_multiaddr_t ma;
    int rc = cp2p_multiaddr_from_bytes(r->addr.data, r->addr.len, &ma);
    if (rc < 0) {
        cp2p_daemon_reply_status(c, cp2p_strerror(rc));
        return;
    }
    for (size_t i = 0; !rc && i < r->n_proto; i++) {
        handler_t *hd = (handler_t *)find_handler(d, r->proto[i]);
        if (!hd) {
            if (d->n_handlers == CP2P_DAEMON_MAX_HANDLERS) {
                rc = CP2P_ELIMIT;
                break;
            }
            hd = &d->handlers[d->n_handlers];
            if (!(hd->protocol = strdup(r->proto[i]))) {
                rc = CP2P_ENOMEM;
                break;
            }
            hd->addr = (cp2p_multiaddr_t){0};
            d->n_handlers++;
        }
        cp2p_multiaddr_t copy;
        if ((rc = cp2p_multiaddr_dup(&ma, &copy)) < 0)
            break;
        cp2p_multiaddr_free(&hd->addr);
        hd->addr = copy;
        rc = cp2p_host_set_handler(d->h, r->proto[i], on_inbound_stream, d);
    }
    cp2p_multiaddr_free(&ma);
    cp2p_daemon_reply_status(c, rc < 0 ? cp2p_strerror(rc) : NULL);
}

static void do_peerstore(cp2p_daemon_client_t *c, const P2pd__PeerstoreRequest *r)
{
    cp2p_peerstore_t *ps = cp2p_host_peerstore(c->d->h);
    cp2p_peer_id_t peer;
    cp2p_daemon_peer(&r->id, &peer);
    P2pd__Response resp = P2PD__RESPONSE__INIT;
    P2pd__PeerstoreResponse pr = P2PD__PEERSTORE_RESPONSE__INIT;
    P2pd__PeerInfo pi = P2PD__PEER_INFO__INIT;
    const char *protos[CP2P_PEERSTORE_MAX_PROTOCOLS];
    cp2p_multiaddr_t addrs[CP2P_PEERSTORE_MAX_ADDRS];
    ProtobufCBinaryData bin[CP2P_PEERSTORE_MAX_ADDRS];
    resp.peerstore = &pr;
    if (r->type == P2PD__PEERSTORE_REQUEST__TYPE__GET_PROTOCOLS) {
        size_t n = cp2p_peerstore_protocols(ps, &peer, protos, CP2P_PEERSTORE_MAX_PROTOCOLS);
        pr.protos = (char **)protos;
        pr.n_protos = n < CP2P_PEERSTORE_MAX_PROTOCOLS ? n : CP2P_PEERSTORE_MAX_PROTOCOLS;
    } else if (r->type == P2PD__PEERSTORE_REQUEST__TYPE__GET_PEER_INFO) {
        size_t n = cp2p_peerstore_addrs(ps, &peer, uv_now(c->d->loop), addrs,
                                        CP2P_PEERSTORE_MAX_ADDRS);
        if (n > CP2P_PEERSTORE_MAX_ADDRS)
            n = CP2P_PEERSTORE_MAX_ADDRS;
        for (size_t i = 0; i < n; i++)
            bin[i] = (ProtobufCBinaryData){.data = addrs[i].bytes, .len = addrs[i].len};
        fill_peer_info(&pi, &peer, bin, n);
        pr.peer = &pi;
    } else {
        cp2p_daemon_reply_status(c, "unknown PEERSTORE request type");
        return;
    }
    cp2p_buf_t b = {0};
    cp2p_daemon_reply(c, &b, cp2p_daemon_message_append(&b, &resp.base));
}

/* Validated by the codec: TAG_PEER has a peer, a tag and a weight in int range. */
static void do_connmanager(cp2p_daemon_client_t *c, const P2pd__ConnManagerRequest *r)
{
    cp2p_peer_id_t peer;
    int rc = 0;
    switch (r->type) {
    case P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER:
        cp2p_daemon_peer(&r->peer, &peer);
        rc = cp2p_host_tag_peer(c->d->h, &peer, r->tag, (int)r->weight);
        break;
    case P2PD__CONN_MANAGER_REQUEST__TYPE__UNTAG_PEER:
        cp2p_daemon_peer(&r->peer, &peer);
        rc = cp2p_host_untag_peer(c->d->h, &peer, r->tag);
        break;
    default: /* TRIM */
        cp2p_host_trim(c->d->h);
        break;
    }
    cp2p_daemon_reply_status(c, rc ? cp2p_strerror(rc) : NULL);
}

static void dispatch(cp2p_daemon_client_t *c, const P2pd__Request *r)
{
    c->state = C_BUSY;
    switch (r->type) {
    case P2PD__REQUEST__TYPE__IDENTIFY:
        do_identify(c);
        break;
    case P2PD__REQUEST__TYPE__CONNECT:
        do_connect(c, r->connect);
        break;
    case P2PD__REQUEST__TYPE__DISCONNECT:
        do_disconnect(c, r->disconnect);
        break;
    case P2PD__REQUEST__TYPE__LIST_PEERS:
        do_list_peers(c);
        break;
    case P2PD__REQUEST__TYPE__STREAM_OPEN:
        do_stream_open(c, r->streamopen);
        break;
    case P2PD__REQUEST__TYPE__STREAM_HANDLER:
        do_stream_handler(c, r->streamhandler);
        break;
    case P2PD__REQUEST__TYPE__DHT:
        cp2p_daemon_dht_request(c, r->dht);
        break;
    case P2PD__REQUEST__TYPE__PEERSTORE:
        do_peerstore(c, r->peerstore);
        break;
    case P2PD__REQUEST__TYPE__CONNMANAGER:
        do_connmanager(c, r->connmanager);
        break;
    case P2PD__REQUEST__TYPE__PUBSUB:
        cp2p_daemon_reply_status(c, "pubsub not supported by cp2pd yet");
        break;
    default:
        cp2p_daemon_reply_status(c, "unknown request type");
        break;
    }
}

/* Handle the complete requests in c->in, one at a time: an asynchronous one
 * (CONNECT, STREAM_OPEN, DHT) stops reading until it has answered. */
static void process(cp2p_daemon_client_t *c)
{
    c->in_process = 1;
    while (c->state == C_REQUEST && c->unread < MAX_UNREAD_RESPONSES) {
        const uint8_t *msg;
        size_t len;
        int k = cp2p_daemon_frame(c->in.data, c->in.len, &msg, &len);
        if (k == CP2P_ETRUNC)
            break;
        if (k < 0) {
            c->d->stats.bad_requests++;
            cp2p_log_info(LOG, "client sent a bad frame (%s): closing it", cp2p_strerror(k));
            c->in_process = 0;
            client_close(c);
            return;
        }
        P2pd__Request *r = NULL;
        const char *why = NULL;
        int rc = cp2p_daemon_request_decode(msg, len, &r, &why);
        cp2p_buf_consume(&c->in, (size_t)k);
        if (rc < 0) {
            c->d->stats.bad_requests++;
            cp2p_log_info(LOG, "bad request: %s", why);
            c->state = C_BUSY;
            cp2p_daemon_reply_status(c, why);
            continue;
        }
        dispatch(c, r);
        p2pd__request__free_unpacked(r, NULL);
    }
    c->in_process = 0;
    if (c->state == C_BUSY && uv_read_stop(&c->io.stream) < 0)
        client_close(c);
    if (c->state != C_REQUEST)
        return;
    if (c->client_eof) {
        if (c->unread == 0)
            client_close(c);
        else
            uv_read_stop(&c->io.stream);
        return;
    }
    int rc = c->unread < MAX_UNREAD_RESPONSES ? read_on(c)
                                               : uv_read_stop(&c->io.stream);
    if (rc < 0)
        client_close(c);
}

/* --- the control listener --- */

static void free_handle(uv_handle_t *hd)
{
    free(hd);
}

static void on_client(uv_stream_t *server, int status)
{
    cp2p_daemon_t *d = server->data;
    if (status < 0) {
        cp2p_log_warn(LOG, "accept: %s", uv_strerror(status));
        return;
    }
    cp2p_daemon_client_t *c = client_new(d, server->type == UV_NAMED_PIPE);
    if (!c) {
        /* accept and close, so that the client sees a refusal and not a hang */
        union { uv_tcp_t tcp; uv_pipe_t pipe; } *tmp = malloc(sizeof *tmp);
        if (!tmp)
            return;
        if (server->type == UV_NAMED_PIPE)
            uv_pipe_init(d->loop, &tmp->pipe, 0);
        else
            uv_tcp_init(d->loop, &tmp->tcp);
        uv_accept(server, (uv_stream_t *)tmp);
        uv_close((uv_handle_t *)tmp, free_handle);
        return;
    }
    d->stats.clients++;
    c->state = C_REQUEST;
    if (uv_accept(server, &c->io.stream) < 0) {
        client_close(c);
        return;
    }
    process(c);
}

static int listen_control(cp2p_daemon_t *d, const char *control)
{
    int rc = cp2p_multiaddr_parse(control, &d->control);
    if (rc < 0)
        return rc;
    cp2p_multiaddr_component_t comp, port;
    struct sockaddr_storage ss = {0};
    if (cp2p_multiaddr_get(&d->control, CP2P_MA_UNIX, &comp) == 0) {
        if (comp.value_len >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return CP2P_EOVERFLOW;
        if (!(d->unix_path = strndup((const char *)comp.value, comp.value_len)))
            return CP2P_ENOMEM;
        struct stat st;
        if (lstat(d->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(d->unix_path);
        uv_pipe_init(d->loop, &d->listener.pipe, 0);
        rc = uv_pipe_bind(&d->listener.pipe, d->unix_path);
    } else if (cp2p_multiaddr_get(&d->control, CP2P_MA_TCP, &port) == 0 && port.value_len == 2) {
        uint16_t p = (uint16_t)(port.value[0] << 8 | port.value[1]);
        if (cp2p_multiaddr_get(&d->control, CP2P_MA_IP4, &comp) == 0) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(p);
            memcpy(&sin->sin_addr, comp.value, 4);
        } else if (cp2p_multiaddr_get(&d->control, CP2P_MA_IP6, &comp) == 0) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(p);
            memcpy(&sin6->sin6_addr, comp.value, 16);
        } else {
            return CP2P_EUNSUPPORTED;
        }
        uv_tcp_init(d->loop, &d->listener.tcp);
        rc = uv_tcp_bind(&d->listener.tcp, (struct sockaddr *)&ss, 0);
    } else {
        return CP2P_EUNSUPPORTED;
    }
    d->open_handles++;
    d->listener.handle.data = d;
    if (rc == 0)
        rc = uv_listen(&d->listener.stream, 511, on_client);
    if (rc < 0) {
        cp2p_log_error(LOG, "control socket %s: %s", control, uv_strerror(rc));
        return CP2P_EIO;
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *hd)
{
    cp2p_daemon_t *d = hd->data;
    d->open_handles--;
    maybe_done(d);
}

int cp2p_daemon_new(cp2p_host_t *h, const cp2p_daemon_config_t *cfg, cp2p_daemon_t **out)
{
    if (!h || !cfg || !cfg->control || !out)
        return CP2P_EINVAL;
    cp2p_daemon_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    d->h = h;
    d->loop = cp2p_host_loop(h);
    d->dht = cfg->dht;
    d->max_clients = cfg->max_clients ? cfg->max_clients : CP2P_DAEMON_DEFAULT_MAX_CLIENTS;
    int rc = listen_control(d, cfg->control);
    if (rc < 0) {
        d->closing = 1;
        if (d->open_handles)
            uv_close(&d->listener.handle, on_listener_closed);
        else
            maybe_done(d);
        return rc;
    }
    *out = d;
    return 0;
}

int cp2p_daemon_control_addr(const cp2p_daemon_t *d, cp2p_multiaddr_t *out)
{
    if (d->listener.handle.type != UV_TCP)
        return cp2p_multiaddr_dup(&d->control, out);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[64], s[128];
    if (uv_tcp_getsockname(&d->listener.tcp, (struct sockaddr *)&ss, &len) < 0)
        return CP2P_EIO;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(s, sizeof s, "/ip4/%s/tcp/%u", ip, ntohs(sin->sin_port));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, ip, sizeof ip);
        snprintf(s, sizeof s, "/ip6/%s/tcp/%u", ip, ntohs(sin6->sin6_port));
    }
    return cp2p_multiaddr_parse(s, out);
}

void cp2p_daemon_stats(const cp2p_daemon_t *d, cp2p_daemon_stats_t *out)
{
    *out = d->stats;
    out->open_clients = d->n_clients;
}

void cp2p_daemon_close(cp2p_daemon_t *d, void (*done)(void *arg), void *arg)
{
    d->closing = 1;
    d->done = done;
    d->done_arg = arg;
    for (size_t i = 0; i < d->n_handlers; i++)
        cp2p_host_remove_handler(d->h, d->handlers[i].protocol);
    while (d->clients)
        client_close(d->clients);
    if (d->unix_path)
        unlink(d->unix_path);
    uv_close(&d->listener.handle, on_listener_closed);
}
