/* Kademlia RPCs on libp2p streams (libp2p kad-dht spec, "RPC messages"): our
 * requests to other peers and the server side answering theirs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/peerstore.h"
#include "kad/kad_rpc.h"

#define LOG "kad"

struct kad_srv {
    kad_srv_t *next;
    cp2p_dht_t *d;
    cp2p_stream_t *s;
    cp2p_buf_t in;
    uint64_t deadline;
    /* A PUT_VALUE or ADD_PROVIDER is being committed: reading stops and
     * reply (the acknowledgement) waits for the commit. */
    int storing, stopped, eof;
    cp2p_kad_msg_type_t storing_type;
    cp2p_buf_t reply;
    size_t charged; /* of in, counted in the host's memory limit */
};

/* answer() queued a store write: the reply comes from srv_stored(). */
#define STORING 1

/* Count what a request or an answer being assembled holds in the host's
 * resource scopes: *charged follows len. CP2P_ELIMIT: the protocol's memory
 * is full, and the stream should go. */
static int charge(cp2p_stream_t *s, size_t *charged, size_t len)
{
    int rc = 0;
    if (s && len != *charged)
        rc = cp2p_stream_charge(s, (long)len - (long)*charged);
    *charged = len;
    return rc;
}

/* what (a string literal) is part of the format, so that each use is
 * rate-limited on its own (log.h). */
#define log_peer(what, peer, why)                                                         \
    do {                                                                                  \
        if (cp2p_log_enabled(CP2P_LOG_INFO)) {                                            \
            char id_[CP2P_PEER_ID_STRMAX];                                                \
            cp2p_peer_id_to_string(peer, id_, sizeof id_);                                \
            cp2p_log_info(LOG, what " %s: %s", id_, why);                                 \
        }                                                                                 \
    } while (0)

/* A record or provider from a peer that was not stored: its store or write
 * queue is full, or the write failed. Counted; logged at warn (log.h keeps a
 * flood of them to a few lines and a count of the rest). */
static void not_stored(cp2p_dht_t *d, cp2p_kad_msg_type_t type, const cp2p_peer_id_t *from,
                       const char *why)
{
    d->stats.not_stored++;
    if (!cp2p_log_enabled(CP2P_LOG_WARN))
        return;
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(from, id, sizeof id);
    cp2p_log_warn(LOG, "did not store a %s from %s: %s (%llu not stored so far)",
                  type == CP2P_KAD_PUT_VALUE ? "record" : "provider", id, why,
                  (unsigned long long)d->stats.not_stored);
}

/* Why a write could not be queued (kad_write_*). */
static const char *queue_error(int rc)
{
    return rc == CP2P_ELIMIT ? "the store's write queue is full" : cp2p_strerror(rc);
}

/* ---- the server side ---- */

static void srv_end(kad_srv_t *v, int reset)
{
    cp2p_dht_t *d = v->d;
    for (kad_srv_t **pp = &d->srvs; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    d->n_srvs--;
    kad_write_forget(d, v);
    cp2p_buf_free(&v->reply);
    charge(v->s, &v->charged, 0);
    cp2p_stream_read_stop(v->s);
    if (reset)
        cp2p_stream_reset(v->s);
    cp2p_stream_unref(v->s);
    cp2p_buf_free(&v->in);
    free(v);
}

static void srv_bad(kad_srv_t *v, const char *why)
{
    v->d->stats.bad_messages++;
    log_peer("bad request from", cp2p_stream_peer(v->s), why);
    srv_end(v, 1);
}

static void rfc3339(uint64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03u000000Z", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

static void srv_stored(cp2p_dht_t *d, int rc, void *arg);

/* Answer one request into out, or STORING when the answer waits for a store
 * write; CP2P_EPROTO when the request is unacceptable. */
static int answer(kad_srv_t *v, const cp2p_peer_id_t *from, const cp2p_kad_msg_t *req,
                  cp2p_buf_t *out)
{
    cp2p_dht_t *d = v->d;
    uint64_t now = kad_wall_ms();
    cp2p_kad_msg_t resp = {.type = req->type};
    if (req->type == CP2P_KAD_PING)
        return cp2p_kad_msg_write(&resp, out);
    if (!req->key_len)
        return CP2P_EPROTO;
    resp.key = req->key;
    resp.key_len = req->key_len;

    if (req->type == CP2P_KAD_PUT_VALUE) {
        if (!req->has_record || req->rec_key_len != req->key_len ||
            memcmp(req->rec_key, req->key, req->key_len) ||
            kad_validate(d, req->key, req->key_len, req->rec_value, req->rec_value_len)) {
            d->stats.invalid_records++;
            return CP2P_EPROTO;
        }
        int rc = kad_quota_charge(d->quota, from, KAD_QUOTA_RECORD, req->key, req->key_len,
                                  req->key_len + req->rec_value_len, now,
                                  now + CP2P_KAD_RECORD_TTL_MS);
        if (rc < 0)
            return rc;
        /* The spec's acknowledgement is the request echoed, once stored. */
        rc = cp2p_kad_msg_write(req, &v->reply);
        if (!rc)
            rc = kad_write_record(d, req->key, req->key_len, req->rec_value, req->rec_value_len,
                                  now, srv_stored, v);
        if (rc < 0) {
            not_stored(d, req->type, from, queue_error(rc));
            return rc;
        }
        return STORING;
    }
    if (req->type == CP2P_KAD_ADD_PROVIDER) {
        cp2p_peerstore_t *ps = cp2p_host_peerstore(d->h);
        /* A peer may only announce itself (once). ADD_PROVIDER has no
         * answer, but the next request on the stream waits for the commit. */
        for (size_t i = 0; i < req->n_providers; i++) {
            const cp2p_kad_peer_t *p = &req->providers[i];
            if (!cp2p_peer_id_equal(&p->id, from))
                continue;
            int rc = kad_quota_charge(d->quota, from, KAD_QUOTA_PROVIDER, req->key,
                                      req->key_len, req->key_len + from->len, now,
                                      now + CP2P_KAD_PROVIDER_TTL_MS);
            if (rc < 0)
                return rc;
            cp2p_multiaddr_t kept[CP2P_KAD_MAX_PEER_ADDRS];
            size_t na = p->n_addrs < CP2P_KAD_MAX_PEER_ADDRS ? p->n_addrs
                                                             : CP2P_KAD_MAX_PEER_ADDRS;
            size_t k = cp2p_host_plausible_addrs(d->h, cp2p_stream_conn(v->s), p->addrs, na,
                                                 kept);
            cp2p_peerstore_add_addrs_from(ps, from, kept, k, CP2P_TTL_ADDRESS, uv_now(d->loop),
                                          CP2P_ADDR_CLAIMED);
            rc = kad_write_provider(d, req->key, req->key_len, from, now, srv_stored, v);
            if (rc < 0)
                not_stored(d, req->type, from, queue_error(rc));
            return rc < 0 ? 0 : STORING;
        }
        return 0;
    }

    cp2p_kad_key_t target;
    cp2p_peer_id_t ids[CP2P_KAD_MAX_K + 1], wanted;
    cp2p_multiaddr_t addrs[CP2P_KAD_MAX_K + 1][CP2P_KAD_MAX_PEER_ADDRS];
    cp2p_kad_peer_t closer[CP2P_KAD_MAX_K + 1];
    cp2p_kad_key_of(req->key, req->key_len, &target);
    size_t n = cp2p_kad_table_closest(d->table, &target, ids, d->k);
    /* FIND_NODE for a peer we are connected to but do not route (a DHT
     * client, say): name it too, with the addresses it confirmed, as
     * go-libp2p-kad-dht does for the peers it knows, so that lookups through
     * us find it (not the asker itself; not what third parties claimed). */
    int extra = 0;
    if (req->type == CP2P_KAD_FIND_NODE &&
        cp2p_peer_id_from_bytes(req->key, req->key_len, &wanted) == 0 &&
        !cp2p_peer_id_equal(&wanted, from) && cp2p_host_conn_to(d->h, &wanted)) {
        size_t i = 0;
        while (i < n && !cp2p_peer_id_equal(&ids[i], &wanted))
            i++;
        if (i == n) {
            ids[n++] = wanted;
            extra = 1;
        }
    }
    kad_fill_peers(d, ids, n, closer, addrs);
    if (extra && closer[n - 1].n_addrs == 0)
        n--;
    resp.closer = closer;
    resp.n_closer = n;

    cp2p_buf_t value = {0};
    char when[64];
    cp2p_peer_id_t pids[64];
    cp2p_multiaddr_t paddrs[64][CP2P_KAD_MAX_PEER_ADDRS];
    cp2p_kad_peer_t providers[64];
    if (req->type == CP2P_KAD_GET_VALUE) {
        uint64_t received;
        if (cp2p_kad_store_get_record(d->store, req->key, req->key_len, now, &value, &received) ==
            0) {
            rfc3339(received, when, sizeof when);
            resp.has_record = 1;
            resp.rec_key = req->key;
            resp.rec_key_len = req->key_len;
            resp.rec_value = value.data;
            resp.rec_value_len = value.len;
            resp.time_received = when;
        }
    } else if (req->type == CP2P_KAD_GET_PROVIDERS) {
        int np = cp2p_kad_store_get_providers(d->store, req->key, req->key_len, now, pids, 64);
        if (np > 0) {
            kad_fill_peers(d, pids, (size_t)np, providers, paddrs);
            resp.providers = providers;
            resp.n_providers = (size_t)np;
        }
    } else if (req->type != CP2P_KAD_FIND_NODE) {
        return CP2P_EPROTO;
    }
    int rc = cp2p_kad_msg_write(&resp, out);
    cp2p_buf_free(&value);
    return rc;
}

static void srv_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);

/* Answer the complete requests buffered, one at a time; a request that
 * stores holds the next ones (and reading) until its commit returned. */
static void srv_process(kad_srv_t *v)
{
    cp2p_dht_t *d = v->d;
    while (!v->storing) {
        const uint8_t *body;
        size_t body_len;
        int used = cp2p_kad_msg_frame(v->in.data, v->in.len, &body, &body_len);
        if (used == CP2P_ETRUNC)
            break;
        if (used < 0 || body_len > KAD_MAX_REQUEST) {
            srv_bad(v, "bad length prefix");
            return;
        }
        cp2p_kad_msg_t req = {0};
        if (cp2p_kad_msg_decode(body, body_len, &req) < 0) {
            srv_bad(v, "malformed message");
            return;
        }
        cp2p_buf_t out = {0};
        int rc = answer(v, cp2p_stream_peer(v->s), &req, &out);
        v->storing_type = req.type;
        cp2p_kad_msg_clear(&req);
        if (rc == 0 && out.len)
            rc = cp2p_stream_write(v->s, out.data, out.len, NULL, NULL);
        cp2p_buf_free(&out);
        if (rc == CP2P_ELIMIT) {
            d->stats.quota_refused++;
            log_peer("refused a store from", cp2p_stream_peer(v->s), "over its store quota");
            srv_end(v, 1); /* no acknowledgement: the putter counts a failure */
            return;
        }
        if (rc < 0) {
            srv_bad(v, rc == CP2P_EPROTO ? "unacceptable request" : cp2p_strerror(rc));
            return;
        }
        cp2p_buf_consume(&v->in, (size_t)used);
        charge(v->s, &v->charged, v->in.len);
        if (rc == STORING) {
            v->storing = 1;
            if (!v->stopped && !v->eof) {
                v->stopped = 1;
                cp2p_stream_read_stop(v->s);
            }
            return;
        }
        d->stats.requests_in++;
    }
    if (v->eof && !v->storing) {
        cp2p_stream_close_write(v->s);
        srv_end(v, 0);
    } else if (v->stopped) {
        /* Last: buffered data and EOF are delivered (and v may end) inside,
         * so its result cannot be acted on here; a stream that could not
         * resume is reset at its deadline. */
        v->stopped = 0;
        cp2p_stream_read_start(v->s, srv_read, v);
    }
}

static void srv_stored(cp2p_dht_t *d, int rc, void *arg)
{
    kad_srv_t *v = arg;
    v->storing = 0;
    if (rc == CP2P_EREFUSED) {
        /* Older than what we hold (an IPNS rollback): the putter is told by
         * the reset, as go-libp2p-kad-dht tells it with an error. */
        d->stats.stale_records++;
        log_peer("refused a record older than the one held from", cp2p_stream_peer(v->s),
                 "not better by its namespace's selector");
    } else if (rc < 0) {
        not_stored(d, v->storing_type, cp2p_stream_peer(v->s),
                   rc == CP2P_ELIMIT ? "the store is full" : cp2p_strerror(rc));
    }
    if (rc < 0) {
        if (v->storing_type == CP2P_KAD_PUT_VALUE) {
            srv_end(v, 1); /* no acknowledgement: the putter counts a failure */
            return;
        }
    }
    if (v->reply.len) {
        int wrc = cp2p_stream_write(v->s, v->reply.data, v->reply.len, NULL, NULL);
        cp2p_buf_free(&v->reply);
        if (wrc < 0) {
            srv_end(v, 1);
            return;
        }
    }
    d->stats.requests_in++;
    v->deadline = uv_now(d->loop) + d->request_timeout_ms;
    srv_process(v);
}

static void srv_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    kad_srv_t *v = arg;
    cp2p_dht_t *d = v->d;
    if (status == CP2P_ECLOSED) {
        v->eof = 1;
        if (!v->storing)
            srv_process(v);
        return;
    }
    if (status < 0) {
        srv_end(v, 0);
        return;
    }
    if (v->in.len + n > KAD_MAX_REQUEST + 16) {
        srv_bad(v, "request too large");
        return;
    }
    if (cp2p_buf_append(&v->in, p, n) < 0) {
        srv_end(v, 1);
        return;
    }
    if (charge(v->s, &v->charged, v->in.len)) {
        srv_bad(v, "over the protocol's memory limit");
        return;
    }
    v->deadline = uv_now(d->loop) + d->request_timeout_ms;
    if (!v->storing)
        srv_process(v);
}

void kad_rpc_serve(cp2p_stream_t *s, void *arg)
{
    cp2p_dht_t *d = arg;
    kad_srv_t *v = d->n_srvs < KAD_MAX_SERVED ? calloc(1, sizeof *v) : NULL;
    if (!v) {
        log_peer("refused a stream from", cp2p_stream_peer(s), "too many streams");
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    v->d = d;
    v->s = s;
    v->deadline = uv_now(d->loop) + d->request_timeout_ms;
    v->next = d->srvs;
    d->srvs = v;
    d->n_srvs++;
    kad_arm_tick(d);
    if (cp2p_stream_read_start(s, srv_read, v) < 0)
        srv_end(v, 1);
}

/* ---- our requests ---- */

static void rpc_unlink(cp2p_dht_t *d, kad_rpc_t *r)
{
    for (kad_rpc_t **pp = &d->rpcs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            return;
        }
}

static void rpc_free(kad_rpc_t *r)
{
    cp2p_buf_free(&r->req);
    cp2p_buf_free(&r->in);
    free(r);
}

/* Drop the stream; r itself stays while the stream is still being opened
 * or its write is still owed a done callback (the stream calls it even after
 * a reset), and frees itself there, out of the DHT's list. */
static void rpc_release(kad_rpc_t *r)
{
    if (r->s) {
        cp2p_stream_t *s = r->s;
        charge(s, &r->charged, 0);
        r->s = NULL;
        cp2p_stream_read_stop(s);
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
    if (r->writing && r->d) {
        rpc_unlink(r->d, r);
        r->d = NULL;
    }
    if (r->opening || r->writing)
        return;
    if (r->d)
        rpc_unlink(r->d, r);
    rpc_free(r);
}

/* Report the outcome once; keep = 1 leaves the stream to the remote's EOF. */
static void rpc_answer(kad_rpc_t *r, int status, const cp2p_kad_msg_t *resp, int keep)
{
    if (!r->answered) {
        r->answered = 1;
        r->done(r->d, r, status, resp);
    }
    if (!keep)
        rpc_release(r);
}

static void rpc_bad(kad_rpc_t *r, const char *why)
{
    r->d->stats.bad_messages++;
    log_peer("bad response from", &r->peer, why);
    rpc_answer(r, CP2P_EPROTO, NULL, 0);
}

static void rpc_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    kad_rpc_t *r = arg;
    if (status < 0) {
        rpc_answer(r, status == CP2P_ECLOSED ? CP2P_EPROTO : status, NULL, 0);
        return;
    }
    if (r->answered)
        return;
    if (r->in.len + n > CP2P_KAD_MAX_MESSAGE + 16) {
        rpc_bad(r, "response too large");
        return;
    }
    if (cp2p_buf_append(&r->in, p, n) < 0) {
        rpc_answer(r, CP2P_ENOMEM, NULL, 0);
        return;
    }
    if (charge(r->s, &r->charged, r->in.len)) {
        rpc_bad(r, "over the protocol's memory limit");
        return;
    }
    const uint8_t *body;
    size_t body_len;
    int used = cp2p_kad_msg_frame(r->in.data, r->in.len, &body, &body_len);
    if (used == CP2P_ETRUNC)
        return;
    cp2p_kad_msg_t m = {0};
    if (used < 0) {
        rpc_bad(r, "bad length prefix");
    } else if (cp2p_kad_msg_decode(body, body_len, &m) < 0) {
        rpc_bad(r, "malformed message");
    } else if (m.type != r->type) {
        rpc_bad(r, "answer of another type");
    } else {
        rpc_answer(r, 0, &m, 0);
    }
    cp2p_kad_msg_clear(&m);
}

static void rpc_written(cp2p_stream_t *s, int status, void *arg)
{
    kad_rpc_t *r = arg;
    r->writing = 0;
    if (r->s)
        rpc_answer(r, status, NULL, status == 0);
    else
        rpc_free(r); /* released while the write was owed */
}

static void rpc_opened(int status, cp2p_stream_t *s, void *arg)
{
    kad_rpc_t *r = arg;
    r->opening = 0;
    if (!r->d || r->answered) {
        if (s) {
            cp2p_stream_reset(s);
            cp2p_stream_unref(s);
        }
        if (r->d)
            rpc_unlink(r->d, r);
        rpc_free(r);
        return;
    }
    if (status < 0) {
        rpc_answer(r, status, NULL, 0);
        return;
    }
    r->s = s;
    /* ADD_PROVIDER has no answer: it is done once the muxer took it. */
    int oneway = r->type == CP2P_KAD_ADD_PROVIDER;
    r->writing = oneway;
    int rc = cp2p_stream_write(s, r->req.data, r->req.len, oneway ? rpc_written : NULL, r);
    if (rc < 0)
        r->writing = 0; /* no done callback owed */
    if (rc == 0)
        rc = cp2p_stream_close_write(s);
    if (rc == 0)
        rc = cp2p_stream_read_start(s, rpc_read, r);
    if (rc < 0)
        rpc_answer(r, rc, NULL, 0);
}

int kad_rpc_send(cp2p_dht_t *d, const cp2p_peer_id_t *peer, const cp2p_kad_msg_t *m,
                 kad_rpc_done_fn done, kad_op_t *op)
{
    kad_rpc_t *r = calloc(1, sizeof *r);
    if (!r)
        return CP2P_ENOMEM;
    int rc = cp2p_kad_msg_write(m, &r->req);
    if (rc < 0) {
        rpc_free(r);
        return rc;
    }
    r->d = d;
    r->op = op;
    r->peer = *peer;
    r->type = m->type;
    r->done = done;
    r->opening = 1;
    r->deadline = uv_now(d->loop) + d->request_timeout_ms;
    const char *protos[1] = {d->protocol};
    rc = cp2p_host_new_stream(d->h, peer, protos, 1, rpc_opened, r);
    if (rc < 0) {
        rpc_free(r);
        return rc;
    }
    r->next = d->rpcs;
    d->rpcs = r;
    d->stats.requests_out++;
    kad_arm_tick(d);
    return 0;
}

void kad_rpc_expire(cp2p_dht_t *d, uint64_t now)
{
    kad_rpc_t *next;
    for (kad_rpc_t *r = d->rpcs; r; r = next) {
        next = r->next;
        if (r->deadline > now)
            continue;
        if (!r->answered) {
            d->stats.timeouts++;
            log_peer("no answer from", &r->peer, "timeout");
            rpc_answer(r, CP2P_ETIMEOUT, NULL, 0);
        } else if (r->s) {
            rpc_release(r);
        }
    }
    kad_srv_t *vnext;
    for (kad_srv_t *v = d->srvs; v; v = vnext) {
        vnext = v->next;
        if (v->deadline <= now)
            srv_end(v, 1);
    }
}

void kad_rpc_forget_op(cp2p_dht_t *d, kad_op_t *op)
{
    for (kad_rpc_t *r = d->rpcs; r; r = r->next)
        if (r->op == op)
            r->op = NULL;
}

void kad_rpc_shutdown(cp2p_dht_t *d)
{
    while (d->rpcs) {
        kad_rpc_t *r = d->rpcs;
        d->rpcs = r->next;
        r->answered = 1;
        r->d = NULL; /* a request still opening frees itself in rpc_opened */
        rpc_release(r);
    }
    while (d->srvs)
        srv_end(d->srvs, 1);
}

int kad_rpc_busy(const cp2p_dht_t *d)
{
    return d->rpcs || d->srvs;
}
