/* A connection: a raw transport connection upgraded as the libp2p connections
 * spec says (multistream-select, security, multistream-select or TLS's ALPN,
 * muxer), glued to its socket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "core/iobuf.h"
#include "swarm/swarm.h"

/* Sealed output is kept in a few chunks rather than one growing buffer so
 * that a burst does not realloc-copy what was written before it. Bulk data
 * goes into pooled buffers (no fresh pages to fault in per flush); small
 * messages into small malloc'd ones, so that thousands of quiet connections
 * do not each touch a pooled buffer. */
#define N_CHUNKS CP2P_CONN_OUT_CHUNKS
#define POOLED_MIN (16 * 1024)
#define SWEEP_MS 1000

typedef struct wreq {
    uv_write_t req;
    cp2p_conn_t *c;
    size_t n, len;
    cp2p_buf_t bufs[N_CHUNKS];
    uint8_t heads[N_CHUNKS][CP2P_WIRE_MAX_HEAD]; /* the framing's, one per chunk */
    uint8_t nonce[CP2P_PNET_NONCE_SIZE], nonce_head[CP2P_WIRE_MAX_HEAD];
    cp2p_buf_t encoded;          /* everything, when the wire encodes (/wss) */
} wreq_t;

static void conn_maybe_free(cp2p_conn_t *c)
{
    if (c->refs > 0 || c->handles > 0)
        return;
    if (c->mux)
        c->muxvt->destroy(c->mux);
    if (c->sec)
        c->secvt->destroy(c->sec);
    if (c->mss)
        cp2p_mss_free(c->mss);
    if (c->remote_key)
        cp2p_pubkey_free(c->remote_key);
    for (size_t i = 0; i < c->nchunks; i++)
        cp2p_iobuf_release(&c->chunks[i]);
    cp2p_iobuf_release(&c->plain);
    cp2p_multiaddr_free(&c->local);
    cp2p_multiaddr_free(&c->remote);
    free(c->streams);
    cp2p_wire_free(c->wire, c->wire_state);
    cp2p_iobuf_put(c->rbuf);
    free(c);
}

void cp2p_conn_ref(cp2p_conn_t *c)
{
    c->refs++;
}

void cp2p_conn_unref(cp2p_conn_t *c)
{
    if (--c->refs == 0)
        conn_maybe_free(c);
}

void cp2p_conn_charge(cp2p_conn_t *c, cp2p_rc_scope_t *extra, long delta)
{
    c->mem += (size_t)delta;
    if (c->sw)
        cp2p_swarm_mem_add(c->sw, c, extra, delta);
}

/* The output queue grew or shrank by delta; the swarm's memory with it. */
static void queued_add(cp2p_conn_t *c, long delta)
{
    c->queued += (size_t)delta;
    cp2p_conn_charge(c, NULL, delta);
}

static void on_handle_closed(uv_handle_t *h)
{
    cp2p_conn_t *c = h->data;
    if (h != (uv_handle_t *)&c->timer)
        free(h);
    if (--c->handles == 0 && c->sw) {
        cp2p_swarm_t *sw = c->sw;
        /* What the connection still holds is no longer the swarm's. */
        cp2p_swarm_conn_release(sw, c);
        c->sw = NULL;
        cp2p_swarm_conn_gone(sw);
    }
    conn_maybe_free(c);
}

/* Who we talk to, for log lines. */
static const char *conn_name(const cp2p_conn_t *c, char *out, size_t cap)
{
    if (c->remote_key && cp2p_peer_id_to_string(&c->peer, out, cap) == 0)
        return out;
    cp2p_buf_t b = {0};
    snprintf(out, cap, "?");
    if (cp2p_multiaddr_to_string(&c->remote, &b) == 0)
        snprintf(out, cap, "%s", (const char *)b.data);
    cp2p_buf_free(&b);
    return out;
}

void cp2p_conn_violation(cp2p_conn_t *c, const char *what, int err)
{
    if (c->warned)
        return;
    c->warned = 1;
    char name[CP2P_PEER_ID_STRMAX];
    cp2p_log_warn("swarm", "%s: %s: %s", conn_name(c, name, sizeof name), what, cp2p_strerror(err));
}

static int is_violation(int status)
{
    return status != 0 && status != CP2P_ECLOSED && status != CP2P_EIO &&
           status != CP2P_ECANCELED && status != CP2P_ETIMEOUT && status != CP2P_ENOMEM &&
           status != CP2P_ELIMIT; /* the swarm logs its refusals itself */
}

static void close_handles(cp2p_conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)c->sock))
        return;
    uv_close((uv_handle_t *)c->sock, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_close_deadline(uv_timer_t *t)
{
    close_handles(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    cp2p_conn_t *c = req->data;
    c->shut_done = 1;
    /* Closing a socket with unread input makes the kernel answer with a RST,
     * which may destroy what the remote has not read yet: wait for its EOF. */
    if (status < 0 || c->remote_eof)
        close_handles(c);
}

static int write_out(cp2p_conn_t *c);

/* Private network: the queued chunks are XORed with our stream just before
 * they go to the socket, so what is queued stays plain until then. */
static void protect_chunks(cp2p_conn_t *c)
{
    if (!c->cfg.has_psk)
        return;
    for (size_t i = 0; i < c->nchunks; i++)
        cp2p_pnet_xor(&c->pn_out, c->cfg.psk, c->chunks[i].data, c->chunks[i].len);
}

/* The framing's own frames (websocket pongs and close), as they are, in a
 * write of their own; bounded, as a remote that pings and never reads
 * would otherwise queue them without end. */
typedef struct raw_req {
    uv_write_t req;
    cp2p_conn_t *c;
    size_t len;
    uint8_t data[];
} raw_req_t;

static void on_raw_written(uv_write_t *req, int status)
{
    raw_req_t *r = req->data;
    r->c->wire_queued -= r->len;
    free(r);
}

static int send_raw(cp2p_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->wire_queued + n > CP2P_CONN_WIRE_QUEUE_MAX)
        return CP2P_ELIMIT;
    raw_req_t *r = malloc(sizeof *r + n);
    if (!r)
        return CP2P_ENOMEM;
    memcpy(r->data, p, n);
    r->c = c;
    r->len = n;
    r->req.data = r;
    uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)n);
    if (uv_write(&r->req, c->sock, &b, 1, on_raw_written)) {
        free(r);
        return CP2P_EIO;
    }
    c->wire_queued += n;
    return 0;
}

/* A websocket ends with a close frame before the FIN. */
static void send_wire_close(cp2p_conn_t *c)
{
    cp2p_buf_t b = {0};
    if (c->wire && c->wire->close_frame(c->wire_state, &b) == 0)
        send_raw(c, b.data, b.len);
    cp2p_buf_free(&b);
}

/* Our bytes go out, then our FIN (uv_shutdown waits for the writes); the
 * remote's EOF or the deadline closes the handles. */
static void close_gracefully(cp2p_conn_t *c)
{
    uv_timer_start(&c->timer, on_close_deadline, CP2P_CONN_CLOSE_TIMEOUT_MS, 0);
    c->shutdown_req.data = c;
    int rc = write_out(c);
    send_wire_close(c);
    if (rc || uv_shutdown(&c->shutdown_req, c->sock, on_shutdown))
        close_handles(c);
}

/* A broken or hostile connection gets one non-blocking try to carry what is
 * queued (a GoAway, a multistream "na"), and no waiting. */
static void close_now(cp2p_conn_t *c)
{
    /* uv_write tries the socket at once; closing cancels what did not fit. */
    write_out(c);
    close_handles(c);
}

void cp2p_conn_close_with(cp2p_conn_t *c, int status)
{
    if (c->state == CONN_CLOSED)
        return;
    int was_open = c->state == CONN_OPEN;
    char name[CP2P_PEER_ID_STRMAX];
    if (is_violation(status))
        cp2p_conn_violation(c, was_open                              ? "closing connection"
                               : c->cfg.has_psk && c->state == CONN_SEC_NEGOTIATING
                                   ? "upgrade failed (a peer outside the private network?)"
                                   : "upgrade failed",
                            status);
    else
        cp2p_log_debug("swarm", "%s: connection closed: %s", conn_name(c, name, sizeof name),
                       status ? cp2p_strerror(status) : "local close");
    int graceful = status == 0 || status == CP2P_ECANCELED || status == CP2P_ECLOSED;
    /* While the muxer may still send: the FINs the app asked for, then no
     * new streams, please. */
    if (was_open && graceful) {
        cp2p_conn_send_closes(c);
        if (status != CP2P_ECLOSED)
            c->muxvt->goaway(c->mux);
    } else if (was_open && status == CP2P_ELIMIT) {
        c->muxvt->goaway(c->mux); /* refused for a limit: say so, then go */
    }
    c->state = CONN_CLOSED;
    c->refs++;
    /* Before any callback: one may close the swarm, which closes what is
     * still in its list. */
    cp2p_swarm_t *sw = c->sw;
    if (sw)
        cp2p_swarm_conn_unlink(sw, c);
    cp2p_conn_kill_streams(c, CP2P_ERESET);
    if (sw) {
        cp2p_swarm_stats_t *st = cp2p_swarm_stats(sw);
        if (!was_open && status != CP2P_ECANCELED)
            st->conns_failed++;
        else if (was_open && is_violation(status))
            st->conns_errored++;
    }
    if (c->ready) {
        cp2p_conn_ready_fn fn = c->ready;
        c->ready = NULL;
        fn(c, status ? status : CP2P_ECANCELED, c->ready_arg);
    }
    if (sw)
        cp2p_swarm_conn_closed(sw, c);
    if (graceful)
        close_gracefully(c);
    else
        close_now(c);
    cp2p_conn_unref(c);
}

void cp2p_conn_close(cp2p_conn_t *c)
{
    cp2p_swarm_t *sw = c->sw;
    if (sw)
        cp2p_swarm_enter(sw); /* the streams are told on a later turn */
    cp2p_conn_close_with(c, 0);
    if (sw)
        cp2p_swarm_leave(sw);
}

/* ---- output ---- */

/* The chunk that takes the next `need` bytes; NULL if out of memory. */
static cp2p_buf_t *out_chunk(cp2p_conn_t *c, size_t need)
{
    cp2p_buf_t *b = c->nchunks ? &c->chunks[c->nchunks - 1] : NULL;
    if (b && (b->len + need <= b->cap || need < POOLED_MIN || c->nchunks == N_CHUNKS))
        return b; /* it fits, or it grows */
    if (!b || b->len)
        b = &c->chunks[c->nchunks++];
    else
        cp2p_iobuf_release(b); /* empty, and too small */
    if (need >= POOLED_MIN && cp2p_iobuf_attach(b))
        return NULL;
    return b;
}

/* Bytes n plaintext bytes may take once sealed (noise: 18 per 65,519; TLS:
 * about 22 per 16 KiB record); a short guess only costs a realloc. */
static size_t sealed_size(size_t n)
{
    return n + n / 512 + 64;
}

int cp2p_conn_send(cp2p_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->state == CONN_CLOSED)
        return CP2P_ECLOSED;
    cp2p_buf_t *b = out_chunk(c, sealed_size(n));
    if (!b)
        return CP2P_ENOMEM;
    size_t before = b->len;
    /* Everything after the security handshake is sealed. */
    int rc = c->state >= CONN_MUX_NEGOTIATING ? c->secvt->seal(c->sec, p, n, b)
                                               : cp2p_buf_append(b, p, n);
    queued_add(c, (long)(b->len - before));
    return rc;
}

int cp2p_conn_writable(const cp2p_conn_t *c)
{
    return c->state == CONN_OPEN && c->queued < CP2P_CONN_HIGH_WATER;
}

/* Where reading stops and where it starts again (swarm.h). */
static size_t hold_mark(const cp2p_conn_t *c)
{
    return c->state == CONN_OPEN
               ? CP2P_CONN_HIGH_WATER + c->cfg.max_stream_buffer + CP2P_CONN_CONTROL_SLACK
               : CP2P_CONN_UPGRADE_HIGH_WATER;
}

static size_t release_mark(const cp2p_conn_t *c)
{
    return c->state == CONN_OPEN ? CP2P_CONN_HIGH_WATER : CP2P_CONN_UPGRADE_LOW_WATER;
}

/* Stop reading a remote that does not read what it made us queue, and any
 * remote just read while the swarm's memory is full. */
static void hold_if_backed_up(cp2p_conn_t *c)
{
    if (c->state == CONN_CLOSED)
        return;
    if (!c->out_held && c->queued >= hold_mark(c)) {
        c->out_held = 1;
        cp2p_conn_hold_input(c, 1);
    }
    if (!c->mem_held && c->sw && cp2p_swarm_mem_over(c->sw, c))
        cp2p_swarm_mem_hold(c->sw, c);
}

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = req->data;
    cp2p_conn_t *c = w->c;
    queued_add(c, -(long)w->len);
    for (size_t i = 0; i < w->n; i++)
        cp2p_iobuf_release(&w->bufs[i]);
    cp2p_buf_free(&w->encoded);
    free(w);
    if (status < 0) {
        if (c->state != CONN_CLOSED)
            cp2p_conn_close_with(c, CP2P_EIO);
        else
            close_handles(c);
        return;
    }
    if (c->out_held && c->queued < release_mark(c) && c->state != CONN_CLOSED) {
        c->out_held = 0;
        cp2p_conn_hold_input(c, 0);
    }
    if (c->blocked && c->queued < CP2P_CONN_LOW_WATER && c->state == CONN_OPEN) {
        c->blocked = 0;
        c->refs++;
        cp2p_conn_pump_streams(c);
        cp2p_conn_flush(c);
        cp2p_conn_unref(c);
    }
}

/* Hands the chunks to one uv_write; nonzero if the socket refused them. */
static int write_out(cp2p_conn_t *c)
{
    if (c->nchunks == 0)
        return 0;
    wreq_t *w = calloc(1, sizeof *w);
    if (!w)
        return CP2P_ENOMEM;
    protect_chunks(c);
    for (size_t i = 0; i < c->nchunks; i++) {
        if (c->chunks[i].len == 0)
            cp2p_iobuf_release(&c->chunks[i]);
        else
            w->bufs[w->n++] = c->chunks[i];
    }
    memset(c->chunks, 0, sizeof c->chunks);
    c->nchunks = 0;
    if (w->n == 0) {
        free(w);
        return 0;
    }
    /* Private network: the nonce goes first, in the clear (framed, over a
     * websocket); not counted as queued. */
    uv_buf_t ub[2 * N_CHUNKS + 2];
    size_t k = 0;
    int rc = 0;
    const cp2p_wire_vtable_t *wv = c->wire;
    if (c->cfg.has_psk && !c->pn_sent) {
        memcpy(w->nonce, c->pn_out.nonce, sizeof w->nonce); /* a client's framing masks it in place */
        if (wv && wv->encode)
            rc = wv->encode(c->wire_state, w->nonce, sizeof w->nonce, &w->encoded);
        else if (wv)
            ub[k++] = uv_buf_init((char *)w->nonce_head,
                                  (unsigned)wv->frame(c->wire_state, w->nonce, sizeof w->nonce,
                                                      w->nonce_head));
        if (!wv || !wv->encode)
            ub[k++] = uv_buf_init((char *)w->nonce, sizeof w->nonce);
        c->pn_sent = 1;
    }
    for (size_t i = 0; i < w->n; i++) {
        cp2p_buf_t *b = &w->bufs[i];
        w->len += b->len;
        if (wv && wv->encode) {
            if (!rc)
                rc = wv->encode(c->wire_state, b->data, b->len, &w->encoded);
            continue;
        }
        if (wv)
            ub[k++] = uv_buf_init((char *)w->heads[i],
                                  (unsigned)wv->frame(c->wire_state, b->data, b->len, w->heads[i]));
        ub[k++] = uv_buf_init((char *)b->data, (unsigned)b->len);
    }
    if (wv && wv->encode)
        ub[k++] = uv_buf_init((char *)w->encoded.data, (unsigned)w->encoded.len);
    w->c = c;
    w->req.data = w;
    int r = rc ? rc : uv_write(&w->req, c->sock, ub, (unsigned)k, on_write);
    if (r) {
        queued_add(c, -(long)w->len);
        for (size_t i = 0; i < w->n; i++)
            cp2p_iobuf_release(&w->bufs[i]);
        cp2p_buf_free(&w->encoded);
        free(w);
        return CP2P_EIO;
    }
    c->issued += w->len;
    return 0;
}

void cp2p_conn_flush(cp2p_conn_t *c)
{
    if (c->nchunks == 0 || c->state == CONN_CLOSED)
        return;
    int rc = write_out(c);
    if (rc) {
        cp2p_conn_close_with(c, rc);
        return;
    }
    hold_if_backed_up(c);
    cp2p_conn_watch(c);
}

/* ---- the upgrade ---- */

static int mss_reply(cp2p_conn_t *c, const uint8_t *p, size_t n)
{
    cp2p_buf_t reply = {0};
    int rc = cp2p_mss_input(c->mss, p, n, &reply);
    if (reply.len) {
        int wrc = cp2p_conn_send(c, reply.data, reply.len);
        if (wrc && rc >= 0)
            rc = wrc;
    }
    cp2p_buf_free(&reply);
    return rc;
}

static int start_mss(cp2p_conn_t *c, const char *const *ids, size_t n)
{
    int rc = !c->initiator ? cp2p_mss_listener_new(&c->mss, ids, n, NULL, NULL)
                        : cp2p_mss_dialer_new(&c->mss, ids, n, 0);
    if (rc)
        return rc;
    /* The dialer's header and first proposal leave together (pipelining). */
    cp2p_buf_t b = {0};
    rc = cp2p_mss_start(c->mss, &b);
    if (!rc)
        rc = cp2p_conn_send(c, b.data, b.len);
    cp2p_buf_free(&b);
    return rc;
}

static int start_security(cp2p_conn_t *c)
{
    const char *sel = cp2p_mss_selected(c->mss);
    for (size_t i = 0; i < c->cfg.n_securities; i++)
        if (sel && strcmp(sel, c->cfg.securities[i]->protocol_id) == 0)
            c->secvt = c->cfg.securities[i];
    if (!c->secvt)
        return CP2P_ENEGOTIATE;
    int rc = c->secvt->create(&c->sec, c->initiator, c->cfg.identity,
                              c->has_expected ? &c->expected : NULL);
    if (rc)
        return rc;
    /* The handshake (TLS's ALPN) may only settle on a muxer this connection
     * is configured for. */
    if (c->secvt->offer_muxers) {
        const char *ids[CP2P_SWARM_MAX_MUXERS];
        for (size_t i = 0; i < c->cfg.n_muxers; i++)
            ids[i] = c->cfg.muxers[i]->protocol_id;
        if ((rc = c->secvt->offer_muxers(c->sec, ids, c->cfg.n_muxers)))
            return rc;
    }
    c->state = CONN_SECURING;
    cp2p_buf_t *b = out_chunk(c, 0);
    if (!b)
        return CP2P_ENOMEM;
    size_t before = b->len;
    rc = c->secvt->start(c->sec, b);
    queued_add(c, (long)(b->len - before));
    return rc;
}

static int start_muxer(cp2p_conn_t *c, const char *sel);

static int secured(cp2p_conn_t *c)
{
    const cp2p_peer_id_t *rp = cp2p_sec_remote_peer(c->sec);
    const cp2p_pubkey_t *rk = cp2p_sec_remote_key(c->sec);
    if (!rp || !rk)
        return CP2P_EPROTO;
    if (c->has_expected && !cp2p_peer_id_equal(rp, &c->expected))
        return CP2P_EPEERID;
    c->peer = *rp;
    int rc = cp2p_pubkey_dup(rk, &c->remote_key);
    if (rc)
        return rc;
    c->state = CONN_MUX_NEGOTIATING;
    /* The handshake may have settled the muxer (inlined muxer negotiation):
     * then there is no multistream-select round. */
    const char *early = c->secvt->early_muxer ? c->secvt->early_muxer(c->sec) : NULL;
    if (early)
        return start_muxer(c, early);
    const char *ids[CP2P_SWARM_MAX_MUXERS];
    for (size_t i = 0; i < c->cfg.n_muxers; i++)
        ids[i] = c->cfg.muxers[i]->protocol_id;
    return start_mss(c, ids, c->cfg.n_muxers);
}

/* sel: the muxer multistream-select or TLS's ALPN agreed on. */
static int start_muxer(cp2p_conn_t *c, const char *sel)
{
    for (size_t i = 0; i < c->cfg.n_muxers; i++)
        if (sel && strcmp(sel, c->cfg.muxers[i]->protocol_id) == 0)
            c->muxvt = c->cfg.muxers[i];
    if (!c->muxvt)
        return CP2P_ENEGOTIATE;
    /* A reader that stops leaves at most one window buffered, so the window
     * may not grow past what a stream is allowed to buffer. */
    cp2p_mux_config_t mc = {
        .max_streams = c->cfg.max_streams_per_conn,
        .max_window = c->cfg.max_stream_buffer,
        /* The streams stop the socket at max_stream_buffer; beyond the
         * slack the remote ignored that and the muxer resets the stream. */
        .max_buffered = c->cfg.max_stream_buffer + CP2P_CONN_INPUT_SLACK,
    };
    cp2p_mux_events_t ev;
    cp2p_conn_mux_events(c, &ev);
    int rc = c->muxvt->create(&c->mux, c->initiator, &mc, &ev);
    if (rc)
        return rc;
    if (c->mss) {
        size_t ln;
        const uint8_t *lo = cp2p_mss_leftover(c->mss, &ln);
        if ((rc = cp2p_buf_append(&c->plain, lo, ln)))
            return rc;
        cp2p_mss_free(c->mss);
        c->mss = NULL;
    }
    c->state = CONN_OPEN;
    uv_timer_stop(&c->timer);
    char name[CP2P_PEER_ID_STRMAX];
    cp2p_log_debug("swarm", "%s: %s connection open, %s", conn_name(c, name, sizeof name),
                   c->inbound ? "inbound" : "outbound", c->muxvt->protocol_id);
    if (c->sw)
        cp2p_swarm_stats(c->sw)->conns_opened++;
    if (c->ready) {
        cp2p_conn_ready_fn fn = c->ready;
        c->ready = NULL;
        fn(c, 0, c->ready_arg);
    }
    return 0;
}

/* Decrypted bytes: the muxer's multistream-select, then the muxer. */
static int plain_input(cp2p_conn_t *c)
{
    while (c->plain.len && c->state != CONN_CLOSED) {
        int rc;
        if (c->state == CONN_MUX_NEGOTIATING) {
            cp2p_buf_t in = c->plain;
            memset(&c->plain, 0, sizeof c->plain);
            rc = mss_reply(c, in.data, in.len);
            cp2p_iobuf_release(&in);
            if (rc != CP2P_MSS_DONE)
                return rc;
            if ((rc = start_muxer(c, cp2p_mss_selected(c->mss))))
                return rc;
        } else if (c->state == CONN_OPEN) {
            rc = c->muxvt->input(c->mux, c->plain.data, c->plain.len);
            cp2p_buf_reset(&c->plain);
            return rc < 0 ? rc : 0;
        } else {
            return CP2P_EPROTO;
        }
    }
    return 0;
}

static int secure_input(cp2p_conn_t *c, const uint8_t *p, size_t n)
{
    int was = cp2p_sec_established(c->sec);
    cp2p_buf_t *b = out_chunk(c, 0);
    if (!b || (n >= POOLED_MIN && cp2p_iobuf_attach(&c->plain)))
        return CP2P_ENOMEM;
    size_t before = b->len;
    int rc = c->secvt->input(c->sec, p, n, b, &c->plain);
    queued_add(c, (long)(b->len - before));
    if (rc >= 0 && !was && cp2p_sec_established(c->sec))
        rc = secured(c);
    if (rc >= 0)
        rc = plain_input(c);
    /* Like the read buffer, the plaintext buffer is held only while in use. */
    if (!c->plain.len)
        cp2p_iobuf_release(&c->plain);
    return rc;
}

/* Plaintext straight from the read buffer to the muxer. */
static int deliver(void *arg, const uint8_t *p, size_t n)
{
    cp2p_conn_t *c = arg;
    int rc = c->muxvt->input(c->mux, p, n);
    if (rc < 0)
        return rc;
    /* The muxer may have closed the connection: the rest goes unread. */
    return c->state == CONN_OPEN ? 0 : CP2P_ECLOSED;
}

/* The open connection's fast path (issue #8): frames are decrypted in the
 * read buffer, n bytes at its start, with no second buffer; a partial frame
 * moves to the start and waits there for the next read. */
static int open_input(cp2p_conn_t *c, size_t n)
{
    size_t used = 0;
    int rc = c->secvt->open_in_place(c->sec, c->rbuf, n, &used, deliver, c);
    c->rtail = rc < 0 ? 0 : n - used;
    if (c->rtail && used)
        memmove(c->rbuf, c->rbuf + used, c->rtail);
    return rc;
}

static int conn_input(cp2p_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->state == CONN_SEC_NEGOTIATING) {
        int rc = mss_reply(c, p, n);
        if (rc != CP2P_MSS_DONE)
            return rc;
        if ((rc = start_security(c)))
            return rc;
        /* Bytes after the agreement are the first Noise message; the copy
         * lets the engine go before the muxer's negotiation needs the slot. */
        size_t ln;
        const uint8_t *lo = cp2p_mss_leftover(c->mss, &ln);
        cp2p_buf_t left = {0};
        rc = cp2p_buf_append(&left, lo, ln);
        cp2p_mss_free(c->mss);
        c->mss = NULL;
        if (!rc && left.len)
            rc = secure_input(c, left.data, left.len);
        cp2p_buf_free(&left);
        return rc;
    }
    if (c->state == CONN_CLOSED)
        return 0;
    return secure_input(c, p, n);
}

/* The read buffer is borrowed from the pool for one read at a time: large
 * reads keep most Noise frames whole in it (a frame that straddles two
 * reads is copied), and an idle connection holds none. A connection keeps
 * it between reads only for a partial frame (rtail bytes, at most one
 * frame, so the read after them still gets more than 190 KiB). */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cp2p_conn_t *c = h->data;
    if (!c->rbuf)
        c->rbuf = cp2p_iobuf_get();
    /* A zero-length buffer makes libuv report UV_ENOBUFS to on_read. */
    size_t room = c->rbuf ? CP2P_IOBUF_SIZE - c->rtail : 0;
    if (c->wire && c->wire->read_max && room > c->wire->read_max)
        room = c->wire->read_max;
    *buf = uv_buf_init((char *)c->rbuf + c->rtail, room);
}

static void give_back_rbuf(cp2p_conn_t *c)
{
    cp2p_iobuf_put(c->rbuf);
    c->rbuf = NULL;
    c->rtail = 0;
}

/* Once the muxer runs, a session that can decrypts in place. */
static int in_place(const cp2p_conn_t *c)
{
    return c->state == CONN_OPEN && c->secvt->open_in_place;
}

/* Private network: the n bytes just read at rbuf + rtail lose the remote's
 * nonce, if it is still coming, and are decrypted in place; what is left. */
static size_t unprotect_input(cp2p_conn_t *c, size_t n)
{
    uint8_t *p = c->rbuf + c->rtail;
    if (c->pn_in_have < CP2P_PNET_NONCE_SIZE) {
        size_t k = CP2P_PNET_NONCE_SIZE - c->pn_in_have;
        if (k > n)
            k = n;
        memcpy(c->pn_in.nonce + c->pn_in_have, p, k);
        c->pn_in_have += k;
        memmove(p, p + k, n - k);
        n -= k;
    }
    cp2p_pnet_xor(&c->pn_in, c->cfg.psk, p, n);
    return n;
}

/* The connection's bytes in the n just read at rbuf + rtail, once the
 * transport's framing and the private network are off: their length, or a
 * negative error. *eof: the framing said the remote is done. */
static ssize_t unwrap_input(cp2p_conn_t *c, size_t n, int *eof)
{
    if (c->wire) {
        cp2p_buf_t reply = {0};
        ssize_t k = c->wire->decode(c->wire_state, c->rbuf + c->rtail, n, CP2P_IOBUF_SIZE - c->rtail,
                                    &reply, eof);
        int rc = k >= 0 && reply.len ? send_raw(c, reply.data, reply.len) : 0;
        cp2p_buf_free(&reply);
        if (k < 0 || rc < 0)
            return k < 0 ? k : rc;
        n = (size_t)k;
    }
    return (ssize_t)(c->cfg.has_psk ? unprotect_input(c, n) : n);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    cp2p_conn_t *c = st->data;
    int eof = 0;
    if (nread > 0 && (c->wire || c->cfg.has_psk) && c->state != CONN_CLOSED) {
        nread = unwrap_input(c, (size_t)nread, &eof);
        if (nread < 0) {
            give_back_rbuf(c);
            cp2p_conn_close_with(c, (int)nread);
            return;
        }
        if (eof && nread == 0)
            nread = UV_EOF; /* a websocket close frame, and nothing before it */
    }
    /* Nothing read (EAGAIN) keeps a partial frame waiting. */
    if (nread < 0 || c->state == CONN_CLOSED || (nread == 0 && !c->rtail))
        give_back_rbuf(c);
    if (nread == 0) {
        cp2p_conn_flush(c); /* a first read can release output (see conn_new) */
        return;
    }
    if (nread == UV_EOF)
        c->remote_eof = 1;
    if (c->state == CONN_CLOSED) {
        /* Closing gracefully: input is dropped until the remote's EOF. */
        if (nread < 0 && (nread != UV_EOF || c->shut_done))
            close_handles(c);
        return;
    }
    if (nread < 0) {
        cp2p_conn_close_with(c, nread == UV_EOF ? CP2P_ECLOSED : CP2P_EIO);
        return;
    }
    c->refs++;
    int rc = in_place(c) ? open_input(c, c->rtail + (size_t)nread)
                         : conn_input(c, c->rbuf, (size_t)nread);
    if (!c->rtail || c->state == CONN_CLOSED)
        give_back_rbuf(c);
    if (rc == 0 && eof) {
        c->remote_eof = 1;
        rc = CP2P_ECLOSED;
    }
    if (rc < 0) {
        cp2p_conn_close_with(c, rc);
    } else {
        cp2p_conn_flush(c);
        hold_if_backed_up(c);
    }
    cp2p_conn_unref(c);
}

void cp2p_conn_hold_input(cp2p_conn_t *c, int hold)
{
    c->holds += hold ? 1 : -1;
    if (uv_is_closing((uv_handle_t *)c->sock))
        return;
    /* A closing connection reads again: it waits for the remote's EOF. */
    if (hold && c->holds == 1)
        uv_read_stop(c->sock);
    else if (!hold && c->holds == 0 && uv_read_start(c->sock, on_alloc, on_read)) {
        if (c->state != CONN_CLOSED)
            cp2p_conn_close_with(c, CP2P_EIO);
        else
            close_handles(c);
    }
}

/* Output the remote has not taken enough of for a whole negotiation timeout:
 * it stopped reading, or reads a trickle to look alive (go-yamux's
 * ConnectionWriteTimeout, in bytes). Each window must see sent what was
 * backed up at its start, or CP2P_CONN_MIN_PROGRESS of it, so a slow link
 * with a big backlog is not stalled. */
static int output_stalled(cp2p_conn_t *c, uint64_t now)
{
    size_t backlog = uv_stream_get_write_queue_size(c->sock);
    uint64_t sent = c->issued - backlog;
    if (backlog == 0 || sent - c->mark_sent >= c->mark_need) {
        c->mark_sent = sent;
        c->mark_need = backlog < CP2P_CONN_MIN_PROGRESS ? backlog : CP2P_CONN_MIN_PROGRESS;
        c->progress_ms = now;
        return 0;
    }
    return now - c->progress_ms >= c->cfg.negotiate_timeout_ms;
}

static void on_timer(uv_timer_t *t)
{
    cp2p_conn_t *c = t->data;
    if (c->state < CONN_OPEN) {
        cp2p_conn_close_with(c, c->pending_error ? c->pending_error : CP2P_ETIMEOUT);
        return;
    }
    c->refs++;
    uint64_t now = uv_now(t->loop);
    int waiting = cp2p_conn_expire_streams(c, now);
    if (c->state == CONN_OPEN && output_stalled(c, now)) {
        cp2p_conn_violation(c, "remote stopped reading", CP2P_ETIMEOUT);
        if (c->sw)
            cp2p_swarm_stats(c->sw)->conns_errored++;
        cp2p_conn_close_with(c, CP2P_ETIMEOUT);
    } else if (c->state == CONN_OPEN && !waiting && !c->queued) {
        uv_timer_stop(t);
        c->watching = 0;
    }
    cp2p_conn_flush(c);
    cp2p_conn_unref(c);
}

void cp2p_conn_watch(cp2p_conn_t *c)
{
    if (c->watching || c->state != CONN_OPEN)
        return;
    c->watching = 1;
    c->progress_ms = uv_now(c->sock->loop);
    c->mark_sent = c->issued - uv_stream_get_write_queue_size(c->sock);
    c->mark_need = 0;
    uint64_t every = c->cfg.negotiate_timeout_ms / 2;
    if (every > SWEEP_MS)
        every = SWEEP_MS;
    uv_timer_start(&c->timer, on_timer, every ? every : 1, every ? every : 1);
}

/* Bytes the transport read before handing the socket over (a websocket
 * upgrade's tail): as if just read. Nothing is open yet, so no callback can
 * run; failures are reported from the loop like the rest of conn_new's. */
static int early_input(cp2p_conn_t *c, const cp2p_buf_t *early)
{
    if (early->len > CP2P_IOBUF_SIZE || !(c->rbuf = cp2p_iobuf_get()))
        return CP2P_ENOMEM;
    memcpy(c->rbuf, early->data, early->len);
    int eof = 0;
    ssize_t n = unwrap_input(c, early->len, &eof);
    int rc = n < 0 ? (int)n : conn_input(c, c->rbuf, (size_t)n);
    give_back_rbuf(c);
    return rc < 0 ? rc : eof ? CP2P_ECLOSED : 0;
}

int cp2p_conn_new(cp2p_swarm_t *sw, cp2p_rawconn_t *rc, int inbound, const cp2p_peer_id_t *expected,
                  cp2p_conn_ready_fn ready, void *arg, cp2p_conn_t **out)
{
    return cp2p_conn_new_role(sw, rc, inbound, !inbound, expected, ready, arg, out);
}

int cp2p_conn_new_role(cp2p_swarm_t *sw, cp2p_rawconn_t *rc, int inbound, int initiator,
                       const cp2p_peer_id_t *expected, cp2p_conn_ready_fn ready, void *arg,
                       cp2p_conn_t **out)
{
    cp2p_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        cp2p_rawconn_free(rc);
        return CP2P_ENOMEM;
    }
    c->refs = 1;
    c->sw = sw;
    c->owner = cp2p_rcmgr_transient(cp2p_swarm_rcmgr(sw));
    c->cfg = *cp2p_swarm_config(sw);
    c->inbound = inbound;
    c->initiator = initiator;
    c->ready = ready;
    c->ready_arg = arg;
    if (expected) {
        c->has_expected = 1;
        c->expected = *expected;
    }
    if (c->cfg.has_psk)
        cp2p_pnet_stream_init(&c->pn_out);
    c->sock = rc->stream;
    c->loop = c->sock->loop;
    c->sock->data = c;
    c->local = rc->local;
    c->remote = rc->remote;
    c->wire = rc->wire;
    c->wire_state = rc->wire_state;
    cp2p_buf_t early = rc->early;
    free(rc);
    uv_timer_init(c->sock->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;

    const char *ids[CP2P_SWARM_MAX_SECURITIES];
    for (size_t i = 0; i < c->cfg.n_securities; i++)
        ids[i] = c->cfg.securities[i]->protocol_id;
    int r = start_mss(c, ids, c->cfg.n_securities);
    if (!r && early.len)
        r = early_input(c, &early);
    cp2p_buf_free(&early);
    if (!r)
        r = uv_read_start(c->sock, on_alloc, on_read) ? CP2P_EIO : 0;
    /* Over a websocket the listener's first bytes (its multistream header,
     * a private network's nonce) wait until the dialer has said something:
     * js-libp2p over Node's ws loses a message that comes with the 101
     * response, and the dialer speaks first anyway. */
    if (!r && !(c->inbound && c->wire))
        r = write_out(c);
    /* A failure is reported like any other, from the loop, never from here. */
    c->pending_error = r;
    uint32_t deadline = inbound && c->cfg.handshake_timeout_ms ? c->cfg.handshake_timeout_ms
                                                               : c->cfg.negotiate_timeout_ms;
    uv_timer_start(&c->timer, on_timer, r ? 0 : deadline, 0);
    *out = c;
    return 0;
}

const cp2p_peer_id_t *cp2p_conn_peer(const cp2p_conn_t *c)
{
    return &c->peer;
}

const cp2p_pubkey_t *cp2p_conn_remote_key(const cp2p_conn_t *c)
{
    return c->remote_key;
}

const cp2p_multiaddr_t *cp2p_conn_remote_addr(const cp2p_conn_t *c)
{
    return &c->remote;
}

const cp2p_multiaddr_t *cp2p_conn_local_addr(const cp2p_conn_t *c)
{
    return &c->local;
}

const char *cp2p_conn_muxer_id(const cp2p_conn_t *c)
{
    return c->muxvt ? c->muxvt->protocol_id : NULL;
}

int cp2p_conn_is_inbound(const cp2p_conn_t *c)
{
    return c->inbound;
}

int cp2p_conn_is_relayed(const cp2p_conn_t *c)
{
    cp2p_multiaddr_component_t comp;
    return cp2p_multiaddr_get(&c->remote, CP2P_MA_P2P_CIRCUIT, &comp) == 0;
}
