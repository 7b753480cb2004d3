/* Ping, /ipfs/ping/1.0.0 (libp2p specs ping/ping.md): an echo responder and
 * an initiator that reuses one stream for repeated 32-byte round trips. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <uv.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/ping.h"

/* --- responder --- */

static void echo_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);

/* The echo is written before more is read, so a remote that sends faster than
 * it reads is held back by the muxer window instead of our memory. */
static void echo_written(cp2p_stream_t *s, int status, void *arg)
{
    if (status < 0)
        cp2p_log_debug("ping", "echo write failed: %s", cp2p_strerror(status));
    /* After a failed write the restarted reader reports the stream's end. */
    if (cp2p_stream_read_start(s, echo_read, NULL) < 0)
        cp2p_stream_unref(s);
}

static void echo_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    if (status == 0) {
        cp2p_stream_read_stop(s);
        int rc = cp2p_stream_write(s, p, n, echo_written, NULL);
        if (rc < 0) {
            cp2p_log_info("ping", "resetting stream: echo write refused: %s", cp2p_strerror(rc));
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        return;
    }
    if (status == CP2P_ECLOSED)
        cp2p_stream_close_write(s);
    cp2p_stream_unref(s);
}

void cp2p_echo_stream(cp2p_stream_t *s)
{
    if (cp2p_stream_read_start(s, echo_read, NULL) < 0)
        cp2p_stream_unref(s);
}

static void ping_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_echo_stream(s);
}

int cp2p_ping_enable(cp2p_host_t *h)
{
    return cp2p_host_set_handler(h, CP2P_PING_PROTOCOL_ID, ping_handler, NULL);
}

/* --- initiator --- */

struct cp2p_ping {
    cp2p_host_t *h;
    cp2p_peer_id_t peer;
    cp2p_stream_t *s;
    int opening;   /* a new_stream callback is due */
    int freed;     /* cp2p_ping_free() ran while opening: free in that callback */
    int oneshot;   /* cp2p_ping(): free after the first result */
    cp2p_ping_cb cb; /* non-NULL while a ping is outstanding */
    void *cb_arg;
    uint8_t sent[CP2P_PING_SIZE];
    uint8_t got[CP2P_PING_SIZE];
    size_t got_n;
    uint64_t t0_ns;
};

static void drop_stream(cp2p_ping_t *p, int graceful)
{
    if (!p->s)
        return;
    cp2p_stream_read_stop(p->s);
    if (graceful)
        cp2p_stream_close_write(p->s);
    else
        cp2p_stream_reset(p->s);
    cp2p_stream_unref(p->s);
    p->s = NULL;
}

/* The user's callback may free p or start the next ping, so p is not touched after it. */
static void finish(cp2p_ping_t *p, int status, uint64_t rtt_us)
{
    cp2p_ping_cb cb = p->cb;
    void *arg = p->cb_arg;
    p->cb = NULL;
    if (status < 0)
        drop_stream(p, 0);
    if (p->oneshot) {
        p->oneshot = 0;
        cp2p_ping_free(p);
    }
    if (cb)
        cb(status, rtt_us, arg);
}

static int send_payload(cp2p_ping_t *p)
{
    if (RAND_bytes(p->sent, sizeof p->sent) != 1)
        return CP2P_ECRYPTO;
    p->got_n = 0;
    p->t0_ns = uv_hrtime();
    return cp2p_stream_write(p->s, p->sent, sizeof p->sent, NULL, NULL);
}

static void ping_read(cp2p_stream_t *s, int status, const uint8_t *data, size_t n, void *arg)
{
    cp2p_ping_t *p = arg;
    if (status < 0) {
        cp2p_log_debug("ping", "stream ended: %s", cp2p_strerror(status));
        /* An EOF in the middle of a ping is as bad as a reset. */
        if (p->cb)
            finish(p, status == CP2P_ECLOSED ? CP2P_ECLOSED : CP2P_ERESET, 0);
        else
            drop_stream(p, 0);
        return;
    }
    if (!p->cb || n > sizeof p->got - p->got_n) {
        cp2p_log_info("ping", "resetting stream: the remote sent more than it was sent");
        if (p->cb)
            finish(p, CP2P_EPROTO, 0);
        else
            drop_stream(p, 0);
        return;
    }
    memcpy(p->got + p->got_n, data, n);
    p->got_n += n;
    if (p->got_n < sizeof p->got)
        return;
    if (memcmp(p->got, p->sent, sizeof p->sent) != 0) {
        cp2p_log_info("ping", "resetting stream: the echo differs from the payload");
        finish(p, CP2P_EPROTO, 0);
        return;
    }
    finish(p, 0, (uv_hrtime() - p->t0_ns) / 1000);
}

static void opened(int status, cp2p_stream_t *s, void *arg)
{
    cp2p_ping_t *p = arg;
    p->opening = 0;
    if (p->freed) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        free(p);
        return;
    }
    if (status < 0) {
        finish(p, status, 0);
        return;
    }
    p->s = s;
    int rc = cp2p_stream_read_start(s, ping_read, p);
    if (!rc)
        rc = send_payload(p);
    if (rc < 0)
        finish(p, rc, 0);
}

int cp2p_ping_new(cp2p_host_t *h, const cp2p_peer_id_t *peer, cp2p_ping_t **out)
{
    if (!h || !peer || !out)
        return CP2P_EINVAL;
    cp2p_ping_t *p = calloc(1, sizeof *p);
    if (!p)
        return CP2P_ENOMEM;
    p->h = h;
    p->peer = *peer;
    *out = p;
    return 0;
}

int cp2p_ping_send(cp2p_ping_t *p, cp2p_ping_cb cb, void *arg)
{
    if (!cb)
        return CP2P_EINVAL;
    if (p->cb || p->opening)
        return CP2P_ESTATE;
    if (p->s) {
        int rc = send_payload(p);
        if (rc < 0) {
            drop_stream(p, 0);
            return rc;
        }
    } else {
        static const char *const protos[] = {CP2P_PING_PROTOCOL_ID};
        int rc = cp2p_host_new_stream(p->h, &p->peer, protos, 1, opened, p);
        if (rc < 0)
            return rc;
        p->opening = 1;
    }
    p->cb = cb;
    p->cb_arg = arg;
    return 0;
}

/* An outstanding ping's cancellation, told on a later turn. */
typedef struct cancelled {
    cp2p_ping_cb cb;
    void *arg;
} cancelled_t;

static void tell_cancelled(void *arg)
{
    cancelled_t *c = arg;
    c->cb(CP2P_ECANCELED, 0, c->arg);
    free(c);
}

void cp2p_ping_free(cp2p_ping_t *p)
{
    if (!p)
        return;
    cp2p_ping_cb cb = p->cb;
    void *arg = p->cb_arg;
    cp2p_host_t *h = p->h;
    p->cb = NULL;
    drop_stream(p, cb == NULL);
    if (p->opening)
        p->freed = 1;
    else
        free(p);
    if (!cb)
        return;
    cancelled_t *c = malloc(sizeof *c);
    if (c) {
        *c = (cancelled_t){cb, arg};
        if (cp2p_host_later(h, tell_cancelled, c) == 0)
            return;
        free(c);
    }
    cb(CP2P_ECANCELED, 0, arg); /* out of memory or a closed host: better now than never */
}

int cp2p_ping(cp2p_host_t *h, const cp2p_peer_id_t *peer, cp2p_ping_cb cb, void *arg)
{
    cp2p_ping_t *p;
    int rc = cp2p_ping_new(h, peer, &p);
    if (rc)
        return rc;
    rc = cp2p_ping_send(p, cb, arg);
    if (rc) {
        free(p);
        return rc;
    }
    p->oneshot = 1;
    return 0;
}
