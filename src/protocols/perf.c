/* Perf, /perf/1.0.0 (libp2p specs perf/perf.md): the server (read the 8-byte
 * size, drain the upload to EOF, then send the asked bytes) and the client. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/perf.h"

#define HDR_LEN 8
/* Large writes keep callbacks and muxer frames few per byte; one write is in
 * flight per stream, so this is also what a stream holds queued. */
#define CHUNK (256 * 1024)

/* The spec lets the bytes be anything fixed; zeros cost nothing to make. */
static const uint8_t zeros[CHUNK];

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static size_t next_chunk(uint64_t left)
{
    return left < CHUNK ? (size_t)left : CHUNK;
}

int cp2p_perf_server_identity(cp2p_privkey_t **out)
{
    /* The libp2p PrivateKey protobuf: Type = Ed25519, Data = the 32-byte seed. */
    uint8_t pb[4 + 32] = {0x08, 0x01, 0x12, 0x20};
    return cp2p_privkey_unmarshal(pb, sizeof pb, out);
}

/* ---- server ---- */

typedef struct serving {
    struct serving *prev, *next;
    cp2p_perf_server_t *srv;
    cp2p_stream_t *s;
    uint8_t hdr[HDR_LEN];
    size_t hdr_n;
    uint64_t left; /* bytes still to send */
    int writing;   /* sent() is owed, even after the stream's end */
    int ended;     /* serving_end() ran while writing: sent() frees it */
} serving_t;

struct cp2p_perf_server {
    cp2p_host_t *h;
    serving_t *active;
    cp2p_perf_server_stats_t stats;
};

static void serving_end(serving_t *v, int reset)
{
    cp2p_perf_server_t *srv = v->srv;
    if (v->prev)
        v->prev->next = v->next;
    else
        srv->active = v->next;
    if (v->next)
        v->next->prev = v->prev;
    cp2p_stream_read_stop(v->s);
    if (reset)
        cp2p_stream_reset(v->s);
    cp2p_stream_unref(v->s);
    if (v->writing)
        v->ended = 1;
    else
        free(v);
}

static void send_next(serving_t *v);

static void sent(cp2p_stream_t *s, int status, void *arg)
{
    serving_t *v = arg;
    v->writing = 0;
    if (v->ended) {
        free(v);
        return;
    }
    if (status < 0) {
        cp2p_log_debug("perf", "send failed: %s", cp2p_strerror(status));
        serving_end(v, 1);
        return;
    }
    send_next(v);
}

static void send_next(serving_t *v)
{
    if (v->left == 0) {
        int rc = cp2p_stream_close_write(v->s);
        if (!rc)
            v->srv->stats.served++;
        serving_end(v, rc < 0);
        return;
    }
    /* What the muxer takes now goes without a callback; the rest is queued. */
    long k;
    while (v->left && (k = cp2p_stream_try_write(v->s, zeros, next_chunk(v->left))) > 0)
        v->left -= (uint64_t)k;
    if (v->left == 0) {
        send_next(v);
        return;
    }
    size_t n = next_chunk(v->left);
    v->left -= n;
    int rc = cp2p_stream_write(v->s, zeros, n, sent, v);
    v->writing = rc == 0;
    if (rc < 0) {
        cp2p_log_debug("perf", "send refused: %s", cp2p_strerror(rc));
        serving_end(v, 1);
    }
}

static void server_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    serving_t *v = arg;
    if (status == 0) {
        /* The header; whatever follows it is upload, counted by nobody. */
        size_t k = HDR_LEN - v->hdr_n < n ? HDR_LEN - v->hdr_n : n;
        memcpy(v->hdr + v->hdr_n, p, k);
        v->hdr_n += k;
        return;
    }
    if (status != CP2P_ECLOSED) {
        serving_end(v, 0);
        return;
    }
    if (v->hdr_n < HDR_LEN) {
        v->srv->stats.malformed++;
        cp2p_log_info("perf", "resetting stream: EOF after %zu of the %d header bytes", v->hdr_n,
                      HDR_LEN);
        serving_end(v, 1);
        return;
    }
    /* The upload is over, so sending now never overlaps it (spec, server step 3). */
    cp2p_stream_read_stop(s);
    v->left = get_be64(v->hdr);
    send_next(v);
}

static void perf_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_perf_server_t *srv = arg;
    serving_t *v = calloc(1, sizeof *v);
    if (!v) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    srv->stats.streams++;
    v->srv = srv;
    v->s = s;
    v->next = srv->active;
    if (v->next)
        v->next->prev = v;
    srv->active = v;
    /* A refused start delivered nothing, so v is still ours to end. */
    if (cp2p_stream_read_start(s, server_read, v) < 0)
        serving_end(v, 1);
}

int cp2p_perf_enable(cp2p_host_t *h, cp2p_perf_server_t **out)
{
    if (!h)
        return CP2P_EINVAL;
    cp2p_perf_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return CP2P_ENOMEM;
    srv->h = h;
    int rc = cp2p_host_set_handler(h, CP2P_PERF_PROTOCOL_ID, perf_handler, srv);
    if (rc) {
        free(srv);
        return rc;
    }
    if (out)
        *out = srv;
    return 0;
}

void cp2p_perf_server_free(cp2p_perf_server_t *srv)
{
    if (!srv)
        return;
    cp2p_host_remove_handler(srv->h, CP2P_PERF_PROTOCOL_ID);
    while (srv->active)
        serving_end(srv->active, 1);
    free(srv);
}

void cp2p_perf_server_stats(const cp2p_perf_server_t *srv, cp2p_perf_server_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (srv)
        *out = srv->stats;
}

/* ---- client ---- */

struct cp2p_perf {
    cp2p_host_t *h;
    cp2p_stream_t *s;
    uint64_t upload, download;
    uint64_t queued;   /* upload bytes handed to the stream */
    uint64_t uploaded; /* upload bytes the muxer took */
    uint64_t downloaded;
    int opening;       /* the new_stream callback is due */
    int writing;       /* uploaded() is owed, even after the stream's end */
    int freed;         /* cp2p_perf_free() ran while opening or writing */
    cp2p_perf_cb cb;   /* NULL once it ran */
    void *arg;
    uint8_t hdr[HDR_LEN];
};

static void drop_stream(cp2p_perf_t *p, int reset)
{
    if (!p->s)
        return;
    cp2p_stream_read_stop(p->s);
    if (reset)
        cp2p_stream_reset(p->s);
    cp2p_stream_unref(p->s);
    p->s = NULL;
}

static void finish(cp2p_perf_t *p, int status)
{
    cp2p_perf_cb cb = p->cb;
    p->cb = NULL;
    drop_stream(p, status < 0);
    if (cb)
        cb(status, p->arg);
}

static void upload_next(cp2p_perf_t *p);

static void uploaded(cp2p_stream_t *s, int status, void *arg)
{
    cp2p_perf_t *p = arg;
    p->writing = 0;
    if (p->freed) {
        free(p);
        return;
    }
    if (status < 0 || !p->s)
        return; /* the reader hears of the stream's death and finishes */
    upload_next(p);
}

static void upload_next(cp2p_perf_t *p)
{
    p->uploaded = p->queued; /* the muxer took all that was queued before */
    int rc;
    if (p->queued == p->upload) {
        rc = cp2p_stream_close_write(p->s);
    } else {
        /* What the muxer takes now goes without a callback; the rest is queued. */
        long k;
        while (p->queued < p->upload &&
               (k = cp2p_stream_try_write(p->s, zeros, next_chunk(p->upload - p->queued))) > 0)
            p->queued += (uint64_t)k;
        if (p->queued == p->upload) {
            upload_next(p);
            return;
        }
        size_t n = next_chunk(p->upload - p->queued);
        p->queued += n;
        rc = cp2p_stream_write(p->s, zeros, n, uploaded, p);
        p->writing = rc == 0;
    }
    if (rc < 0)
        finish(p, rc);
}

static void client_read(cp2p_stream_t *s, int status, const uint8_t *data, size_t n, void *arg)
{
    cp2p_perf_t *p = arg;
    if (status == 0) {
        if (n > p->download - p->downloaded) {
            cp2p_log_info("perf", "resetting stream: the server sent more than asked");
            finish(p, CP2P_EPROTO);
            return;
        }
        p->downloaded += n;
        return;
    }
    if (status == CP2P_ECLOSED) {
        /* EOF before our upload went out would mean the server did not wait for it. */
        int ok = p->downloaded == p->download && p->uploaded == p->upload;
        finish(p, ok ? 0 : CP2P_EPROTO);
        return;
    }
    finish(p, status);
}

static void opened(int status, cp2p_stream_t *s, void *arg)
{
    cp2p_perf_t *p = arg;
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
        finish(p, status);
        return;
    }
    p->s = s;
    put_be64(p->hdr, p->download);
    int rc = cp2p_stream_read_start(s, client_read, p);
    if (!rc && p->cb)
        rc = cp2p_stream_write(s, p->hdr, HDR_LEN, NULL, NULL);
    if (rc < 0)
        finish(p, rc);
    else if (p->cb)
        upload_next(p);
}

int cp2p_perf_start(cp2p_host_t *h, const cp2p_peer_id_t *peer, uint64_t upload,
                    uint64_t download, cp2p_perf_cb cb, void *arg, cp2p_perf_t **out)
{
    if (!h || !peer || !cb || !out)
        return CP2P_EINVAL;
    cp2p_perf_t *p = calloc(1, sizeof *p);
    if (!p)
        return CP2P_ENOMEM;
    p->h = h;
    p->upload = upload;
    p->download = download;
    p->cb = cb;
    p->arg = arg;
    static const char *const protos[] = {CP2P_PERF_PROTOCOL_ID};
    int rc = cp2p_host_new_stream(h, peer, protos, 1, opened, p);
    if (rc) {
        free(p);
        return rc;
    }
    p->opening = 1;
    *out = p;
    return 0;
}

void cp2p_perf_progress(const cp2p_perf_t *p, uint64_t *up, uint64_t *down)
{
    if (up)
        *up = p->uploaded;
    if (down)
        *down = p->downloaded;
}

/* A run cancelled by its free, told on a later turn. */
typedef struct cancelled {
    cp2p_perf_cb cb;
    void *arg;
} cancelled_t;

static void tell_cancelled(void *arg)
{
    cancelled_t *c = arg;
    c->cb(CP2P_ECANCELED, c->arg);
    free(c);
}

void cp2p_perf_free(cp2p_perf_t *p)
{
    if (!p)
        return;
    cp2p_perf_cb cb = p->cb;
    p->cb = NULL;
    finish(p, CP2P_ECANCELED);
    cancelled_t *c = cb ? malloc(sizeof *c) : NULL;
    if (c) {
        *c = (cancelled_t){cb, p->arg};
        if (cp2p_host_later(p->h, tell_cancelled, c)) {
            free(c);
            c = NULL;
        }
    }
    if (cb && !c)
        cb(CP2P_ECANCELED, p->arg); /* out of memory or a closed host: better now than never */
    if (p->opening || p->writing)
        p->freed = 1;
    else
        free(p);
}
