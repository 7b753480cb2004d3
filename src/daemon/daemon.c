/* cp2pd control server on libuv (go-libp2p-daemon specs/CONTROL.md): control
 * sockets, request dispatch, and stream bridging with backpressure between
 * host streams and client sockets (STREAM_OPEN, STREAM_HANDLER). */
#define _GNU_SOURCE /* struct ucred */
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    cp2p_daemon_ps_t *ps; /* subscriptions; NULL without a pubsub */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    cp2p_multiaddr_t control;
    char *unix_path; /* removed on close if it is still our socket */
    dev_t unix_dev;  /* our socket file, once bound */
    ino_t unix_ino;
    uint16_t control_port; /* TCP: the bound port */
    int control_remote;    /* TCP on an address that is not loopback (allow_remote) */
    uint32_t max_clients, n_clients; /* the control pool */
    uint32_t max_streams, max_streams_per_peer, n_streams; /* the bridged pool */
    uint64_t last_log_clients, last_log_streams; /* loop times of the last refusals logged */
    cp2p_daemon_client_t *clients; /* every live client, for close */
    handler_t handlers[CP2P_DAEMON_MAX_HANDLERS];
    size_t n_handlers;
    cp2p_daemon_stats_t stats;
    int closing;
    size_t open_handles; /* listener + clients not yet closed */
    void (*done)(void *);
    void *done_arg;
};

/* C_SUBSCRIBED: a SUBSCRIBE's message stream (cp2p_daemon_subscribe). */
typedef enum { C_CONNECTING, C_REQUEST, C_BUSY, C_BRIDGE, C_SUBSCRIBED, C_CLOSING } client_state_t;

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
    int bridged;           /* in the bridged pool: a remote peer's stream to a handler */
    cp2p_peer_id_t peer;   /* bridged: whose */
    int in_process; /* process() is on the stack: replies do not re-enter it */
    int refs;       /* the socket handle + asynchronous operations under way */
    size_t unread;  /* bytes queued to the socket, not yet written */
    cp2p_buf_t in;  /* request bytes not yet handled */
    /* the current request's deadline: its timeout field, else p2pd's 60 s */
    uv_timer_t deadline;
    int timed_out;  /* it passed: what was under way is cancelled */
    /* CONNECT and STREAM_OPEN to a peer of no known address look it up in the
     * DHT first, as p2pd's routed host does */
    cp2p_peer_id_t target;
    char **protos;
    size_t n_protos;
    /* bridge */
    cp2p_stream_t *s;
    int to_stream_busy;  /* a stream write is in flight: the socket is not read */
    size_t charged;      /* stream bytes on their way to the socket, in the stream's scopes */
    int client_eof, stream_eof;
    /* subscribed: told when the client goes */
    void (*on_end)(void *arg);
    void *end_arg;
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
static int read_on(cp2p_daemon_client_t *c);
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
        cp2p_daemon_ps_free(d->ps);
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

static void free_protos(cp2p_daemon_client_t *c)
{
    for (size_t i = 0; i < c->n_protos; i++)
        free(c->protos[i]);
    free(c->protos);
    c->protos = NULL;
    c->n_protos = 0;
}

static void client_close(cp2p_daemon_client_t *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    cp2p_daemon_t *d = c->d;
    if (c->on_end) {
        void (*on_end)(void *) = c->on_end;
        c->on_end = NULL;
        on_end(c->end_arg);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        d->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->bridged)
        d->n_streams--;
    else
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
    uv_close((uv_handle_t *)&c->deadline, on_client_closed);
    free_protos(c);
}

/* A pool's refusals are logged at most once a second: a flood must not flood
 * the log. */
static int refusal_log_due(cp2p_daemon_t *d, uint64_t *last)
{
    uint64_t now = uv_now(d->loop);
    if (*last && now - *last < 1000)
        return 0;
    *last = now ? now : 1;
    return 1;
}

/* Room in the bridged pool for one more of peer's streams: under
 * max_streams, and under max_streams_per_peer for that peer (the pool holds
 * at most max_streams, so counting them is bounded). */
static int bridged_room(cp2p_daemon_t *d, const cp2p_peer_id_t *peer)
{
    if (d->n_streams >= d->max_streams) {
        if (refusal_log_due(d, &d->last_log_streams))
            cp2p_log_warn(LOG, "%u bridged streams: resetting remote peers' new streams",
                          d->max_streams);
        return 0;
    }
    uint32_t mine = 0;
    for (cp2p_daemon_client_t *c = d->clients; c; c = c->next)
        if (c->bridged && cp2p_peer_id_equal(&c->peer, peer))
            mine++;
    if (mine >= d->max_streams_per_peer) {
        if (refusal_log_due(d, &d->last_log_streams)) {
            char id[CP2P_PEER_ID_STRMAX];
            cp2p_peer_id_to_string(peer, id, sizeof id);
            cp2p_log_info(LOG, "peer %s holds %u bridged streams: resetting its new ones", id,
                          mine);
        }
        return 0;
    }
    return 1;
}

/* A new client socket, unix or tcp. peer NULL: a control connection, in the
 * control pool; else a remote peer's stream to bridge, in the bridged pool.
 * NULL when its pool is full. */
static cp2p_daemon_client_t *client_new(cp2p_daemon_t *d, int is_unix, const cp2p_peer_id_t *peer)
{
    if (peer && !bridged_room(d, peer)) {
        d->stats.streams_rejected++;
        return NULL;
    }
    if (!peer && d->n_clients >= d->max_clients) {
        d->stats.clients_rejected++;
        if (refusal_log_due(d, &d->last_log_clients))
            cp2p_log_warn(LOG, "%u control clients: refusing more", d->max_clients);
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
    c->refs = 2; /* the socket handle and the deadline timer */
    c->io.handle.data = c;
    uv_timer_init(d->loop, &c->deadline);
    c->deadline.data = c;
    c->next = d->clients;
    if (d->clients)
        d->clients->prev = c;
    d->clients = c;
    if (peer) {
        c->bridged = 1;
        c->peer = *peer;
        d->n_streams++;
    } else {
        d->n_clients++;
    }
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
    uv_timer_stop(&c->deadline);
    c->timed_out = 0;
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
    if (err && c->timed_out)
        err = "context deadline exceeded"; /* what p2pd answers */
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

cp2p_daemon_ps_t *cp2p_daemon_ps(cp2p_daemon_client_t *c)
{
    return c->d->ps;
}

int cp2p_daemon_subscribe(cp2p_daemon_client_t *c, void (*on_end)(void *arg), void *arg)
{
    cp2p_buf_t b = {0};
    int rc = cp2p_daemon_status_append(&b, NULL);
    uv_timer_stop(&c->deadline);
    if (!rc)
        rc = cp2p_daemon_send(c, b.data, b.len);
    cp2p_buf_free(&b);
    if (rc < 0) {
        client_close(c);
        return rc;
    }
    c->state = C_SUBSCRIBED;
    c->on_end = on_end;
    c->end_arg = arg;
    cp2p_buf_free(&c->in);
    if (read_on(c) < 0) {
        client_close(c);
        return CP2P_EIO;
    }
    return 0;
}

int cp2p_daemon_push(cp2p_daemon_client_t *c, const uint8_t *p, size_t n)
{
    if (c->state != C_SUBSCRIBED)
        return CP2P_ECLOSED;
    if (c->unread + n > CP2P_DAEMON_MAX_PUSH_QUEUED)
        return 1;
    int rc = cp2p_daemon_send(c, p, n);
    if (rc < 0)
        client_close(c);
    return rc;
}

static void on_deadline(uv_timer_t *t)
{
    cp2p_daemon_client_t *c = t->data;
    c->timed_out = 1;
    cp2p_host_cancel(c->d->h, c);
    if (c->d->dht)
        cp2p_dht_cancel(c->d->dht, c);
}

void cp2p_daemon_deadline(cp2p_daemon_client_t *c, int64_t seconds)
{
    uint64_t ms = seconds > 0 && seconds < INT64_MAX / 1000 ? (uint64_t)seconds * 1000
                                                             : CP2P_DAEMON_DEFAULT_TIMEOUT_MS;
    c->timed_out = 0;
    uv_timer_start(&c->deadline, on_deadline, ms, 0);
}

int cp2p_daemon_timed_out(const cp2p_daemon_client_t *c)
{
    return c->timed_out;
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
    if (c->state == C_SUBSCRIBED) {
        /* What a subscriber sends is ignored, as p2pd ignores it; its end
         * ends the subscription. */
        if (nread < 0)
            client_close(c);
        return;
    }
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

/* No connection to peer and no address of it: p2pd's routed host asks the DHT. */
static int needs_lookup(cp2p_daemon_client_t *c, const cp2p_peer_id_t *peer)
{
    cp2p_multiaddr_t one[1]; /* a view into the peerstore */
    if (!c->d->dht || cp2p_host_conn_to(c->d->h, peer))
        return 0;
    return cp2p_peerstore_addrs(cp2p_host_peerstore(c->d->h), peer, uv_now(c->d->loop), one, 1) == 0;
}

static void on_stream_open(int status, cp2p_stream_t *s, void *arg);

/* The DHT found the target of a CONNECT (c->protos NULL) or STREAM_OPEN. */
static void on_target_found(cp2p_dht_t *dht, int status, const cp2p_peer_id_t *peers, size_t n,
                            void *arg)
{
    cp2p_daemon_client_t *c = arg;
    if (!cp2p_daemon_release(c))
        return;
    if (status < 0) {
        free_protos(c);
        /* as p2pd words it */
        cp2p_daemon_reply_status(c, status == CP2P_ENOTFOUND ? "routing: not found" : cp2p_strerror(status));
        return;
    }
    cp2p_daemon_hold(c);
    int rc = c->protos ? cp2p_host_new_stream(c->d->h, &c->target, (const char *const *)c->protos,
                                              c->n_protos, on_stream_open, c)
                       : cp2p_host_connect_peer(c->d->h, &c->target, on_connected, c);
    free_protos(c);
    if (rc < 0 && cp2p_daemon_release(c))
        cp2p_daemon_reply_status(c, cp2p_strerror(rc));
}

static int look_up(cp2p_daemon_client_t *c, const cp2p_peer_id_t *peer)
{
    c->target = *peer;
    cp2p_daemon_hold(c);
    int rc = cp2p_dht_find_peer(c->d->dht, peer, on_target_found, c);
    if (rc < 0)
        client_unref(c);
    return rc;
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
    cp2p_daemon_deadline(c, r->has_timeout ? r->timeout : 0);
    if (!rc && needs_lookup(c, &peer)) {
        rc = look_up(c, &peer);
    } else if (!rc) {
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
    uv_timer_stop(&c->deadline);
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
    cp2p_daemon_deadline(c, r->has_timeout ? r->timeout : 0);
    int rc;
    if (needs_lookup(c, &peer)) {
        c->protos = calloc(r->n_proto + 1, sizeof *c->protos);
        rc = c->protos ? 0 : CP2P_ENOMEM;
        for (size_t i = 0; !rc && i < r->n_proto; i++)
            if ((c->protos[c->n_protos] = strdup(r->proto[i])))
                c->n_protos++;
            else
                rc = CP2P_ENOMEM;
        if (!rc)
            rc = look_up(c, &peer);
        if (rc < 0)
            free_protos(c);
    } else {
        cp2p_daemon_hold(c);
        rc = cp2p_host_new_stream(c->d->h, &peer, (const char *const *)r->proto, r->n_proto,
                                  on_stream_open, c);
        if (rc < 0)
            client_unref(c);
    }
    if (rc < 0)
        cp2p_daemon_reply_status(c, cp2p_strerror(rc));
}

/* --- addresses --- */

/* 1: the multiaddr's IP is loopback (127.0.0.0/8, ::1, or 127/8 mapped into
 * IPv6); 0: another IP; CP2P_EINVAL: it has no IP. */
static int ip_is_loopback(const cp2p_multiaddr_t *ma)
{
    static const uint8_t one[16] = {[15] = 1}, mapped[12] = {[10] = 0xff, [11] = 0xff};
    cp2p_multiaddr_component_t c;
    if (cp2p_multiaddr_get(ma, CP2P_MA_IP4, &c) == 0 && c.value_len == 4)
        return c.value[0] == 127;
    if (cp2p_multiaddr_get(ma, CP2P_MA_IP6, &c) == 0 && c.value_len == 16)
        return !memcmp(c.value, one, 16) || (!memcmp(c.value, mapped, 12) && c.value[12] == 127);
    return CP2P_EINVAL;
}

/* /ip4|ip6/<ip>/tcp/<port> as a socket address. */
static int tcp_sockaddr(const cp2p_multiaddr_t *ma, struct sockaddr_storage *ss, uint16_t *port)
{
    cp2p_multiaddr_component_t comp, pc;
    if (cp2p_multiaddr_get(ma, CP2P_MA_TCP, &pc) < 0 || pc.value_len != 2)
        return CP2P_EUNSUPPORTED;
    *port = (uint16_t)(pc.value[0] << 8 | pc.value[1]);
    memset(ss, 0, sizeof *ss);
    if (cp2p_multiaddr_get(ma, CP2P_MA_IP4, &comp) == 0 && comp.value_len == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(*port);
        memcpy(&sin->sin_addr, comp.value, 4);
    } else if (cp2p_multiaddr_get(ma, CP2P_MA_IP6, &comp) == 0 && comp.value_len == 16) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(*port);
        memcpy(&sin6->sin6_addr, comp.value, 16);
    } else {
        return CP2P_EUNSUPPORTED;
    }
    return 0;
}

/* A /unix/ component's path, NUL terminated, into path[cap]. */
static int unix_path_of(const cp2p_multiaddr_component_t *comp, char *path, size_t cap)
{
    if (comp->value_len >= cap || memchr(comp->value, 0, comp->value_len))
        return CP2P_EOVERFLOW;
    memcpy(path, comp->value, comp->value_len);
    path[comp->value_len] = 0;
    return 0;
}

int cp2p_daemon_control_is_local(const char *control)
{
    cp2p_multiaddr_t ma;
    cp2p_multiaddr_component_t comp;
    int rc = cp2p_multiaddr_parse(control, &ma);
    if (rc < 0)
        return rc;
    if (cp2p_multiaddr_get(&ma, CP2P_MA_UNIX, &comp) == 0)
        rc = 1;
    else if (cp2p_multiaddr_get(&ma, CP2P_MA_TCP, &comp) < 0 || (rc = ip_is_loopback(&ma)) < 0)
        rc = CP2P_EUNSUPPORTED;
    cp2p_multiaddr_free(&ma);
    return rc;
}

/* --- inbound streams: dial the client's handler, send StreamInfo, bridge --- */

#define SUN_PATH_CAP sizeof(((struct sockaddr_un *)0)->sun_path)

/* The unix socket a handler dial reached is our own control socket (its
 * path became a symlink to it after STREAM_HANDLER, say): its peer is the
 * name our listener bound, in our own process. When in doubt, it is. */
static int handler_is_control(cp2p_daemon_client_t *c)
{
    cp2p_daemon_t *d = c->d;
    uv_os_fd_t fd;
    if (!d->unix_path || c->io.handle.type != UV_NAMED_PIPE)
        return 0;
    if (uv_fileno(&c->io.handle, &fd) < 0)
        return 1;
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0)
        return 1;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > off ? strnlen(sa.sun_path, len - off) : 0;
    if (n != strlen(d->unix_path) || memcmp(sa.sun_path, d->unix_path, n))
        return 0;
#ifdef SO_PEERCRED
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
        return cr.pid == getpid();
#endif
    return 1;
}

static void on_handler_connected(uv_connect_t *req, int status)
{
    cp2p_daemon_client_t *c = req->data;
    if (!cp2p_daemon_release(c))
        return;
    cp2p_buf_t b = {0};
    int self = status == 0 && handler_is_control(c);
    int rc = status < 0 ? CP2P_ECONNREFUSED
             : self     ? CP2P_EREFUSED
                        : append_stream_info(&b, c->s, 0);
    if (!rc)
        rc = cp2p_daemon_send(c, b.data, b.len);
    cp2p_buf_free(&b);
    if (rc < 0) {
        c->d->stats.handler_failures++;
        if (self)
            cp2p_log_warn(LOG, "stream handler for %s leads to the control socket: not bridged",
                          cp2p_stream_protocol(c->s));
        else
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
        char path[SUN_PATH_CAP];
        int rc = unix_path_of(&comp, path, sizeof path);
        if (rc < 0)
            return rc;
        uv_pipe_connect(&c->connect_req, &c->io.pipe, path, on_handler_connected);
        return 0;
    }
    struct sockaddr_storage ss;
    uint16_t port;
    if (tcp_sockaddr(ma, &ss, &port) < 0)
        return CP2P_EINVAL;
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
        hd ? client_new(d, cp2p_multiaddr_get(&hd->addr, CP2P_MA_UNIX, &comp) == 0,
                        cp2p_stream_peer(s))
           : NULL;
    if (!c) {
        if (!hd)
            d->stats.handler_failures++; /* else counted in streams_rejected */
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

/* NULL if a STREAM_HANDLER may point at ma (daemon.h says what may be), else
 * why not, for the client. */
static const char *handler_refusal(const cp2p_daemon_t *d, const cp2p_multiaddr_t *ma)
{
    cp2p_multiaddr_component_t comp;
    if (cp2p_multiaddr_get(ma, CP2P_MA_UNIX, &comp) == 0) {
        if (!d->unix_path)
            return d->control_remote
                       ? "the control socket is TCP: a handler address must be TCP too"
                       : "the control socket is TCP: a handler address must be loopback TCP too";
        char path[SUN_PATH_CAP];
        struct stat st;
        if (unix_path_of(&comp, path, sizeof path) < 0)
            return "handler socket path too long";
        if (stat(path, &st) < 0)
            return errno == ENOENT ? "no such handler socket: listen on it first"
                                   : "cannot stat the handler socket";
        if (!S_ISSOCK(st.st_mode))
            return "the handler address is not a socket";
        if (st.st_dev == d->unix_dev && st.st_ino == d->unix_ino)
            return "the handler address is the control socket";
        return NULL;
    }
    struct sockaddr_storage ss;
    uint16_t port;
    if (tcp_sockaddr(ma, &ss, &port) < 0)
        return "handler address must be /unix/... or /ip4|ip6/.../tcp/...";
    /* any address of ours may reach a listener on the control port */
    if (!d->unix_path && port == d->control_port)
        return "the handler address is the control socket (its TCP port)";
    if (!d->control_remote && ip_is_loopback(ma) != 1)
        return d->unix_path ? "a handler address must be a unix socket or loopback TCP"
                            : "a handler address must be loopback TCP, as the control socket is";
    return NULL;
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
    const char *why = handler_refusal(d, &ma);
    if (why) {
        d->stats.handlers_refused++;
        cp2p_log_info(LOG, "STREAM_HANDLER refused: %s", why);
        cp2p_multiaddr_free(&ma);
        cp2p_daemon_reply_status(c, why);
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
        cp2p_daemon_pubsub_request(c, r->pubsub);
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
    cp2p_daemon_client_t *c = client_new(d, server->type == UV_NAMED_PIPE, NULL);
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

/* Why the daemon did not start, into cfg->error (else the log). */
__attribute__((format(printf, 3, 4))) static int start_error(const cp2p_daemon_config_t *cfg,
                                                             int rc, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (cfg->error && cfg->error_cap)
        snprintf(cfg->error, cfg->error_cap, "%s", line);
    else
        cp2p_log_error(LOG, "%s", line);
    return rc;
}

/* What is at the control socket's path before we bind: nothing, or a stale
 * socket of ours, which is removed. Anything else is refused: a live socket
 * (another daemon), one we cannot probe or of another user, a file, a
 * directory, a symlink (never followed). */
static int clear_unix_path(const cp2p_daemon_config_t *cfg, const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0; /* nothing there, or nothing we may see: bind says */
    if (!S_ISSOCK(st.st_mode))
        return start_error(cfg, CP2P_EEXIST,
                           "control socket %s: exists and is not a socket (not replaced)", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) { /* a full backlog: EAGAIN, not a wait */
        int err = errno;
        if (fd >= 0)
            close(fd);
        return start_error(cfg, CP2P_EIO, "control socket %s: %s", path, strerror(err));
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path)); /* shorter than sun_path: checked */
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa), err = errno;
    close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
        return start_error(cfg, CP2P_EEXIST, "control socket %s: in use by a running daemon",
                           path);
    if (err != ECONNREFUSED)
        return start_error(cfg, CP2P_EEXIST,
                           "control socket %s: exists, cannot tell if in use (%s)", path,
                           strerror(err));
    if (st.st_uid != geteuid())
        return start_error(cfg, CP2P_EEXIST, "control socket %s: a stale socket of another user",
                           path);
    if (unlink(path) < 0 && errno != ENOENT)
        return start_error(cfg, CP2P_EIO, "control socket %s: cannot remove the stale socket (%s)",
                           path, strerror(errno));
    cp2p_log_info(LOG, "control socket %s: replaced a stale socket", path);
    return 0;
}

/* Bind the unix control socket with mode, whatever the umask: chmod before
 * listen, while connect() to it is still refused. */
static int listen_unix(cp2p_daemon_t *d, const cp2p_daemon_config_t *cfg, unsigned mode)
{
    const char *path = d->unix_path;
    int rc = clear_unix_path(cfg, path);
    if (rc < 0)
        return rc;
    uv_pipe_init(d->loop, &d->listener.pipe, 0);
    d->open_handles++;
    d->listener.handle.data = d;
    if ((rc = uv_pipe_bind(&d->listener.pipe, path)) < 0)
        return start_error(cfg, CP2P_EIO, "control socket %s: %s", path, uv_strerror(rc));
    struct stat st;
    if (lstat(path, &st) == 0) {
        d->unix_dev = st.st_dev;
        d->unix_ino = st.st_ino;
    }
    if (chmod(path, mode) < 0)
        return start_error(cfg, CP2P_EIO, "control socket %s: cannot set mode %04o (%s)", path,
                           mode, strerror(errno));
    if ((rc = uv_listen(&d->listener.stream, 511, on_client)) < 0)
        return start_error(cfg, CP2P_EIO, "control socket %s: %s", path, uv_strerror(rc));
    return 0;
}

static int listen_tcp(cp2p_daemon_t *d, const cp2p_daemon_config_t *cfg)
{
    struct sockaddr_storage ss;
    uint16_t port;
    int loopback = ip_is_loopback(&d->control);
    if (tcp_sockaddr(&d->control, &ss, &port) < 0 || loopback < 0)
        return start_error(cfg, CP2P_EUNSUPPORTED, "control socket %s: /unix/<path> or "
                           "/ip4|ip6/<ip>/tcp/<port> expected", cfg->control);
    if (!loopback && !cfg->allow_remote)
        return start_error(cfg, CP2P_EINVAL, "control socket %s: not loopback, so whoever "
                           "reaches it controls the daemon (allow_remote not set)", cfg->control);
    d->control_remote = !loopback;
    uv_tcp_init(d->loop, &d->listener.tcp);
    d->open_handles++;
    d->listener.handle.data = d;
    int rc = uv_tcp_bind(&d->listener.tcp, (struct sockaddr *)&ss, 0);
    if (!rc)
        rc = uv_listen(&d->listener.stream, 511, on_client);
    int len = sizeof ss;
    if (!rc)
        rc = uv_tcp_getsockname(&d->listener.tcp, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        return start_error(cfg, CP2P_EIO, "control socket %s: %s", cfg->control, uv_strerror(rc));
    d->control_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static int listen_control(cp2p_daemon_t *d, const cp2p_daemon_config_t *cfg)
{
    int rc = cp2p_multiaddr_parse(cfg->control, &d->control);
    if (rc < 0)
        return start_error(cfg, rc, "control socket %s: not a multiaddr", cfg->control);
    cp2p_multiaddr_component_t comp;
    if (cp2p_multiaddr_get(&d->control, CP2P_MA_UNIX, &comp) < 0)
        return listen_tcp(d, cfg);
    unsigned mode = cfg->unix_mode ? cfg->unix_mode : CP2P_DAEMON_DEFAULT_UNIX_MODE;
    if (mode > 0777)
        return start_error(cfg, CP2P_EINVAL, "control socket mode %o: not a permission mode", mode);
    char path[SUN_PATH_CAP];
    if (unix_path_of(&comp, path, sizeof path) < 0)
        return start_error(cfg, CP2P_EOVERFLOW, "control socket %s: path too long", cfg->control);
    if (!(d->unix_path = strdup(path)))
        return CP2P_ENOMEM;
    return listen_unix(d, cfg, mode);
}

/* Remove the socket file if it is still the one we bound. */
static void unlink_ours(cp2p_daemon_t *d)
{
    struct stat st;
    if (d->unix_path && d->unix_ino && lstat(d->unix_path, &st) == 0 &&
        st.st_dev == d->unix_dev && st.st_ino == d->unix_ino)
        unlink(d->unix_path);
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
    if (cfg->pubsub && cp2p_daemon_ps_new(cfg->pubsub, &d->ps) < 0) {
        free(d);
        return CP2P_ENOMEM;
    }
    d->max_clients = cfg->max_clients ? cfg->max_clients : CP2P_DAEMON_DEFAULT_MAX_CLIENTS;
    d->max_streams = cfg->max_streams ? cfg->max_streams : CP2P_DAEMON_DEFAULT_MAX_STREAMS;
    d->max_streams_per_peer = cfg->max_streams_per_peer
                                  ? cfg->max_streams_per_peer
                                  : d->max_streams / CP2P_DAEMON_DEFAULT_STREAMS_PER_PEER_DIVISOR;
    if (d->max_streams_per_peer == 0)
        d->max_streams_per_peer = 1;
    int rc = listen_control(d, cfg);
    if (rc < 0) {
        d->closing = 1;
        unlink_ours(d);
        if (d->open_handles)
            uv_close(&d->listener.handle, on_listener_closed);
        else
            maybe_done(d);
        return rc;
    }
    if (d->control_remote) {
        cp2p_multiaddr_t bound;
        cp2p_buf_t s = {0};
        if (cp2p_daemon_control_addr(d, &bound) == 0) {
            cp2p_multiaddr_to_string(&bound, &s);
            cp2p_multiaddr_free(&bound);
        }
        cp2p_log_warn(LOG, "control socket %s is not loopback: anyone who can reach it controls "
                      "this daemon (streams as this peer, dials, handlers anywhere)",
                      s.len ? (const char *)s.data : cfg->control);
        cp2p_buf_free(&s);
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
    out->open_streams = d->n_streams;
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
    unlink_ours(d);
    uv_close(&d->listener.handle, on_listener_closed);
}
