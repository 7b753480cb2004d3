/* The rendezvous client, /rendezvous/1.0.0 (libp2p specs
 * rendezvous/README.md): REGISTER with our signed peer record (and again
 * before the granted TTL runs out), UNREGISTER, DISCOVER with cookies. One
 * stream per request, as rust-libp2p's client does: the request, our EOF,
 * then one answer. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp2p/envelope.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/peerstore.h"
#include "cp2p/rendezvous.h"
#include "discovery/rdv_msg.h"
#include "host/host_priv.h"

#define TICK_MS 250
#define REQUEST_TIMEOUT_MS 30000
#define CLOSE_TIMEOUT_MS 1000
#define RETRY_MS 60000
#define MAX_KEEPS 64
#define MAX_ADDR_TTL_MS (60 * 60 * 1000ULL)
#define ADDR_CHANGE_DELAY_MS 500 /* new addresses come in bursts: one REGISTER for them */

typedef struct keep keep_t;

typedef struct req {
    cp2p_rendezvous_t *rz;
    int type;          /* RDV_REGISTER, RDV_UNREGISTER, RDV_DISCOVER */
    keep_t *keep;      /* the registration this REGISTER refreshes (NULL once gone) */
    cp2p_peer_id_t server;
    cp2p_stream_t *s;
    cp2p_buf_t out, in;
    size_t charged;
    uint64_t deadline_ms;
    int opening;       /* cp2p_host_new_stream's callback is due */
    int finished;      /* the result was given; waiting for the open callback */
    cp2p_rendezvous_discover_cb dcb;
    void *arg;
    struct req *prev, *next;
} req_t;

struct keep {
    cp2p_peer_id_t server;
    char ns[RDV_MAX_NAMESPACE + 1];
    uint64_t ttl_s;
    uint64_t due_ms;   /* next REGISTER; 0 while one is under way */
    int legacy;        /* our record goes in the legacy envelope (rust-libp2p points) */
    req_t *req;
    cp2p_rendezvous_register_cb cb;
    void *arg;
    keep_t *next;
};

struct cp2p_rendezvous {
    cp2p_host_t *h;
    uv_timer_t tick;
    keep_t *keeps;
    size_t n_keeps;
    req_t *reqs;
    uint64_t record_seq;
    int record_format; /* CP2P_RENDEZVOUS_RECORD_* */
    int closing;
    void (*done)(void *);
    void *done_arg;
};

static uint64_t now_ms(cp2p_rendezvous_t *rz)
{
    return uv_now(cp2p_host_loop(rz->h));
}

/* --- requests --- */

static void rz_maybe_done(cp2p_rendezvous_t *rz);
static keep_t **keep_find(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server, const char *ns);
static void keep_drop(cp2p_rendezvous_t *rz, keep_t **pp);

static void req_free(req_t *r)
{
    cp2p_rendezvous_t *rz = r->rz;
    if (r->prev)
        r->prev->next = r->next;
    else
        rz->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->s) {
        if (r->charged)
            cp2p_stream_charge(r->s, -(long)r->charged);
        cp2p_stream_read_stop(r->s);
        cp2p_stream_unref(r->s);
    }
    cp2p_buf_free(&r->out);
    cp2p_buf_free(&r->in);
    free(r);
    rz_maybe_done(rz);
}

/* Our own record, sealed now from the addresses we advertise. */
static int seal_record(cp2p_rendezvous_t *rz, int legacy, cp2p_buf_t *out)
{
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    int rc = cp2p_host_addrs(rz->h, &addrs, &n);
    if (rc)
        return rc;
    if (n == 0) {
        free(addrs);
        return CP2P_ESTATE; /* nothing to tell: we cannot be reached */
    }
    cp2p_peer_record_t r = {.peer_id = *cp2p_host_peer_id(rz->h)};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r.seq = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (r.seq <= rz->record_seq)
        r.seq = rz->record_seq + 1;
    rz->record_seq = r.seq;
    for (size_t i = 0; i < n && i < CP2P_PEER_RECORD_MAX_ADDRS && !rc; i++)
        rc = cp2p_peer_record_add_addr(&r, addrs[i].bytes, addrs[i].len);
    if (!rc)
        rc = rdv_record_seal(cp2p_host_identity(rz->h), &r, legacy, out);
    cp2p_peer_record_clear(&r);
    cp2p_multiaddr_array_free(addrs, n);
    return rc;
}

/* The outcome of a REGISTER for k: when to send the next (or, with drop,
 * the end of k), then the caller's callback, last: it may unregister, close
 * or register again, so k is not touched after it. */
static void keep_result(cp2p_rendezvous_t *rz, keep_t *k, int status, int code, uint64_t ttl,
                        int drop)
{
    cp2p_rendezvous_register_cb cb = k->cb;
    void *arg = k->arg;
    k->req = NULL;
    if (drop) {
        keep_drop(rz, keep_find(rz, &k->server, k->ns));
    } else if (status == 0 && ttl) {
        uint64_t ms = ttl * 1000 / 4 * 3;
        k->due_ms = now_ms(rz) + (ms ? ms : 1);
    } else {
        k->due_ms = now_ms(rz) + RETRY_MS;
    }
    if (cb)
        cb(status, code, ttl, arg);
}

/* The request is over, with this result: the caller is told (we are in a
 * stream, timer or open callback: a later turn than the call). */
static void req_result(req_t *r, int status, const rdv_msg_t *m)
{
    cp2p_rendezvous_t *rz = r->rz;
    if (r->finished)
        return;
    r->finished = 1;
    if (r->type == RDV_REGISTER && r->keep) {
        keep_t *k = r->keep;
        r->keep = NULL;
        int code = m ? m->status : 0;
        uint64_t ttl = m && m->has_ttl ? m->ttl : 0;
        if (!status && m && m->status != RDV_S_OK)
            status = CP2P_EREFUSED;
        if (!status && m && !m->has_ttl)
            ttl = k->ttl_s ? k->ttl_s : CP2P_RENDEZVOUS_DEFAULT_TTL_S;
        /* A rust-libp2p point cannot read a standard record: it drops the
         * stream without an answer. Once, the legacy envelope is tried. */
        if (rz->record_format == CP2P_RENDEZVOUS_RECORD_AUTO && !k->legacy && !rz->closing &&
            (status == CP2P_EPROTO || status == CP2P_ERESET ||
             (status == CP2P_EREFUSED && code == RDV_S_E_INVALID_SIGNED_PEER_RECORD))) {
            cp2p_log_info("rendezvous", "register under %s: no answer to a standard record, "
                                        "trying rust-libp2p's legacy envelope", k->ns);
            k->legacy = 1;
            k->req = NULL;
            k->due_ms = now_ms(rz);
            return;
        }
        if (status)
            cp2p_log_info("rendezvous", "register under %s failed: %s%s%s", k->ns,
                          cp2p_strerror(status), code ? " " : "", code ? rdv_status_name(code) : "");
        /* Asking again cannot change the point's mind but when it is full
         * or broken: a refusal for what we sent ends the registration. */
        int drop = status == CP2P_EREFUSED && code != RDV_S_E_UNAVAILABLE &&
                   code != RDV_S_E_INTERNAL_ERROR;
        keep_result(rz, k, status, code, ttl, drop);
    } else if (r->type == RDV_DISCOVER && r->dcb) {
        cp2p_rendezvous_discover_cb cb = r->dcb;
        r->dcb = NULL;
        if (status || !m) {
            cb(status ? status : CP2P_EPROTO, 0, NULL, 0, NULL, 0, r->arg);
        } else if (m->status != RDV_S_OK) {
            cb(CP2P_EREFUSED, m->status, NULL, 0, NULL, 0, r->arg);
        } else {
            cp2p_rendezvous_peer_t *peers = calloc(m->n_regs ? m->n_regs : 1, sizeof *peers);
            cp2p_multiaddr_t *all = calloc(m->n_regs * CP2P_PEER_RECORD_MAX_ADDRS + 1, sizeof *all);
            cp2p_multiaddr_t kept[CP2P_PEER_RECORD_MAX_ADDRS];
            size_t np = 0, na = 0;
            cp2p_peerstore_t *ps = cp2p_host_peerstore(rz->h);
            cp2p_conn_t *via = cp2p_host_conn_to(rz->h, &r->server);
            uint64_t now = now_ms(rz);
            for (size_t i = 0; peers && all && i < m->n_regs; i++) {
                const rdv_reg_t *g = &m->regs[i];
                cp2p_peer_record_t rec = {0};
                int legacy = 0;
                if (!g->record || rdv_record_open(g->record, g->record_len, &rec, &legacy) != 0) {
                    cp2p_log_info("rendezvous", "discover: a registration whose record does "
                                                "not verify, left out");
                    continue;
                }
                cp2p_multiaddr_t *mine = all + na;
                size_t n = 0;
                for (size_t j = 0; j < rec.n_addrs; j++)
                    if (cp2p_multiaddr_from_bytes(rec.addrs[j], rec.addr_lens[j], &mine[n]) == 0)
                        n++;
                na += n;
                uint64_t ttl_ms = (g->has_ttl ? g->ttl : CP2P_RENDEZVOUS_DEFAULT_TTL_S) * 1000;
                if (ttl_ms > MAX_ADDR_TTL_MS)
                    ttl_ms = MAX_ADDR_TTL_MS;
                if (!cp2p_peer_id_equal(&rec.peer_id, cp2p_host_peer_id(rz->h))) {
                    size_t k = cp2p_host_plausible_addrs(rz->h, via, mine, n, kept);
                    cp2p_peerstore_add_addrs_from(ps, &rec.peer_id, kept, k, ttl_ms, now,
                                                  CP2P_ADDR_CLAIMED);
                    /* The peerstore's record is passed on (identify, cp2pd): only
                     * one in the envelope everyone reads. */
                    if (!legacy)
                        cp2p_peerstore_set_record(ps, &rec.peer_id, g->record, g->record_len,
                                                  rec.seq);
                    if (n) {
                        cp2p_event_t ev = {.type = CP2P_EVENT_PEER_DISCOVERED,
                                           .peer = &rec.peer_id,
                                           .addr = &mine[0]};
                        cp2p_host_emit(rz->h, &ev);
                    }
                }
                peers[np].peer = rec.peer_id;
                peers[np].ns = g->ns;
                peers[np].ttl_s = g->has_ttl ? g->ttl : CP2P_RENDEZVOUS_DEFAULT_TTL_S;
                peers[np].addrs = mine;
                peers[np].n_addrs = n;
                np++;
                cp2p_peer_record_clear(&rec);
            }
            if (!peers || !all)
                cb(CP2P_ENOMEM, 0, NULL, 0, NULL, 0, r->arg);
            else
                cb(0, 0, peers, np, m->has_cookie ? m->cookie : NULL,
                   m->has_cookie ? m->cookie_len : 0, r->arg);
            if (all)
                cp2p_multiaddr_array_free(all, na);
            free(peers);
        }
    }
}

static void req_end(req_t *r, int status, const rdv_msg_t *m)
{
    req_result(r, status, m);
    if (r->opening)
        return; /* freed by the open callback */
    req_free(r);
}

static void req_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    req_t *r = arg;
    if (r->type == RDV_UNREGISTER) { /* no answer comes: we wait for the end */
        if (status < 0)
            req_end(r, 0, NULL);
        return;
    }
    if (status < 0) {
        req_end(r, status == CP2P_ECLOSED ? CP2P_EPROTO : status, NULL);
        return;
    }
    if (n > RDV_MAX_RESPONSE + 16 - r->in.len || cp2p_buf_append(&r->in, p, n) < 0) {
        req_end(r, CP2P_EOVERFLOW, NULL);
        return;
    }
    r->charged += n;
    if (cp2p_stream_charge(s, (long)n) < 0) {
        req_end(r, CP2P_ELIMIT, NULL);
        return;
    }
    size_t hdr, len;
    int rc = rdv_frame(r->in.data, r->in.len, RDV_MAX_RESPONSE, &hdr, &len);
    if (rc == CP2P_ETRUNC)
        return;
    rdv_msg_t m;
    if (!rc)
        rc = rdv_msg_decode(r->in.data + hdr, len, &m);
    if (!rc && m.type != (r->type == RDV_REGISTER ? RDV_REGISTER_RESPONSE : RDV_DISCOVER_RESPONSE)) {
        rdv_msg_free(&m);
        rc = CP2P_EPROTO;
    }
    if (rc) {
        cp2p_log_info("rendezvous", "bad answer from the point: %s", cp2p_strerror(rc));
        req_end(r, CP2P_EPROTO, NULL);
        return;
    }
    req_end(r, 0, &m);
    rdv_msg_free(&m);
}

static void req_opened(int status, cp2p_stream_t *s, void *arg)
{
    req_t *r = arg;
    r->opening = 0;
    if (status < 0) {
        req_end(r, status, NULL);
        return;
    }
    r->s = s;
    if (r->finished) { /* timed out or cancelled meanwhile */
        cp2p_stream_reset(s);
        req_free(r);
        return;
    }
    int rc = cp2p_stream_write(s, r->out.data, r->out.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_close_write(s);
    if (!rc)
        rc = cp2p_stream_read_start(s, req_read, r);
    if (rc < 0) {
        cp2p_stream_reset(s);
        req_end(r, rc, NULL);
    }
}

static const char *const PROTOS[] = {CP2P_RENDEZVOUS_PROTOCOL_ID};

/* A request of m to server; 0 or a negative code (then nothing is under way). */
static int req_start(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server, const rdv_msg_t *m,
                     uint64_t timeout_ms, req_t **out)
{
    req_t *r = calloc(1, sizeof *r);
    if (!r)
        return CP2P_ENOMEM;
    r->rz = rz;
    r->type = m->type;
    r->server = *server;
    r->deadline_ms = now_ms(rz) + timeout_ms;
    int rc = rdv_msg_encode(m, &r->out);
    if (!rc) {
        r->opening = 1;
        rc = cp2p_host_new_stream(rz->h, server, PROTOS, 1, req_opened, r);
    }
    if (rc < 0) {
        cp2p_buf_free(&r->out);
        free(r);
        return rc;
    }
    r->next = rz->reqs;
    if (r->next)
        r->next->prev = r;
    rz->reqs = r;
    if (out)
        *out = r;
    return 0;
}

/* Cut a request short (timeout, close): its result is status. */
static void req_cancel(req_t *r, int status)
{
    if (r->finished)
        return;
    if (r->opening) {
        req_result(r, status, NULL);
        cp2p_host_cancel(r->rz->h, r); /* req_opened frees it */
        return;
    }
    if (r->s)
        cp2p_stream_reset(r->s);
    req_end(r, status, NULL);
}

/* --- registrations --- */

static int keep_send(cp2p_rendezvous_t *rz, keep_t *k)
{
    rdv_msg_t m = {.type = RDV_REGISTER};
    cp2p_buf_t rec = {0};
    int rc = seal_record(rz, k->legacy, &rec);
    if (rc)
        return rc;
    m.reg.ns = k->ns;
    m.reg.record = rec.data;
    m.reg.record_len = rec.len;
    m.reg.has_ttl = k->ttl_s != 0;
    m.reg.ttl = k->ttl_s;
    req_t *r = NULL;
    rc = req_start(rz, &k->server, &m, REQUEST_TIMEOUT_MS, &r);
    cp2p_buf_free(&rec);
    if (rc)
        return rc;
    r->keep = k;
    k->req = r;
    k->due_ms = 0;
    return 0;
}

static keep_t **keep_find(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server, const char *ns)
{
    keep_t **pp = &rz->keeps;
    for (; *pp; pp = &(*pp)->next)
        if (cp2p_peer_id_equal(&(*pp)->server, server) && !strcmp((*pp)->ns, ns))
            break;
    return pp;
}

static void keep_drop(cp2p_rendezvous_t *rz, keep_t **pp)
{
    keep_t *k = *pp;
    *pp = k->next;
    rz->n_keeps--;
    if (k->req)
        k->req->keep = NULL; /* its answer goes nowhere */
    free(k);
}

int cp2p_rendezvous_register(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server, const char *ns,
                             uint64_t ttl_s, cp2p_rendezvous_register_cb cb, void *arg)
{
    size_t len = ns ? strlen(ns) : 0;
    if (!rz || !server || len == 0 || len > RDV_MAX_NAMESPACE || ttl_s > CP2P_RENDEZVOUS_MAX_TTL_S)
        return CP2P_EINVAL;
    if (rz->closing)
        return CP2P_ESTATE;
    keep_t **pp = keep_find(rz, server, ns);
    keep_t *k = *pp;
    int fresh = !k;
    if (fresh) {
        if (rz->n_keeps >= MAX_KEEPS)
            return CP2P_ELIMIT;
        k = calloc(1, sizeof *k);
        if (!k)
            return CP2P_ENOMEM;
        k->server = *server;
        memcpy(k->ns, ns, len + 1);
        k->legacy = rz->record_format == CP2P_RENDEZVOUS_RECORD_LEGACY;
    }
    k->ttl_s = ttl_s;
    k->cb = cb;
    k->arg = arg;
    if (k->req) /* one under way: its answer counts */
        return 0;
    int rc = keep_send(rz, k);
    if (rc == CP2P_ESTATE) {
        /* No address to tell yet (a relay reservation or a port mapping
         * still under way): the first one the host advertises sends it. */
        k->due_ms = now_ms(rz) + RETRY_MS;
        rc = 0;
    }
    if (rc) {
        if (fresh)
            free(k);
        return rc;
    }
    if (fresh) {
        k->next = rz->keeps;
        rz->keeps = k;
        rz->n_keeps++;
    }
    return 0;
}

static int send_unregister(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server, const char *ns,
                           uint64_t timeout_ms)
{
    rdv_msg_t m = {.type = RDV_UNREGISTER, .ns = (char *)ns};
    return req_start(rz, server, &m, timeout_ms, NULL);
}

int cp2p_rendezvous_unregister(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server, const char *ns)
{
    if (!rz || !server || !ns)
        return CP2P_EINVAL;
    keep_t **pp = keep_find(rz, server, ns);
    if (!*pp)
        return CP2P_ENOTFOUND;
    keep_drop(rz, pp);
    return send_unregister(rz, server, ns, REQUEST_TIMEOUT_MS);
}

int cp2p_rendezvous_discover(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server, const char *ns,
                             uint64_t limit, const uint8_t *cookie, size_t cookie_len,
                             cp2p_rendezvous_discover_cb cb, void *arg)
{
    if (!rz || !server || !cb || (ns && strlen(ns) > RDV_MAX_NAMESPACE) ||
        cookie_len > RDV_MAX_COOKIE)
        return CP2P_EINVAL;
    if (rz->closing)
        return CP2P_ESTATE;
    rdv_msg_t m = {.type = RDV_DISCOVER, .ns = ns && ns[0] ? (char *)ns : NULL};
    m.has_limit = limit != 0;
    m.limit = limit;
    m.has_cookie = cookie && cookie_len;
    m.cookie = (uint8_t *)cookie;
    m.cookie_len = cookie_len;
    req_t *r = NULL;
    int rc = req_start(rz, server, &m, REQUEST_TIMEOUT_MS, &r);
    if (rc)
        return rc;
    r->dcb = cb;
    r->arg = arg;
    return 0;
}

/* A new address of ours (a listen address, a relay reservation, a mapped
 * port) goes to every point soon: a registration carries the addresses of
 * the moment it was sealed. */
static void on_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_rendezvous_t *rz = arg;
    if (ev->type != CP2P_EVENT_LISTEN_ADDR || rz->closing)
        return;
    uint64_t soon = now_ms(rz) + ADDR_CHANGE_DELAY_MS;
    for (keep_t *k = rz->keeps; k; k = k->next)
        if (k->due_ms > soon)
            k->due_ms = soon;
}

/* --- the clock --- */

static void on_tick(uv_timer_t *t)
{
    cp2p_rendezvous_t *rz = t->data;
    uint64_t now = now_ms(rz);
    for (req_t *r = rz->reqs, *next; r; r = next) {
        next = r->next;
        if (!r->finished && now >= r->deadline_ms)
            req_cancel(r, CP2P_ETIMEOUT);
    }
    /* One due registration at a time, from the head again after each: a
     * callback may change the list. A sent one is due no more, a failed one
     * in a minute, so this ends. */
    while (!rz->closing) {
        keep_t *k = rz->keeps;
        while (k && (!k->due_ms || now < k->due_ms))
            k = k->next;
        if (!k)
            break;
        int rc = keep_send(rz, k);
        if (rc) {
            cp2p_log_info("rendezvous", "cannot register again under %s: %s", k->ns,
                          cp2p_strerror(rc));
            keep_result(rz, k, rc, 0, 0, 0);
        }
    }
}

int cp2p_rendezvous_set_record_format(cp2p_rendezvous_t *rz, int format)
{
    if (!rz || format < CP2P_RENDEZVOUS_RECORD_AUTO || format > CP2P_RENDEZVOUS_RECORD_LEGACY)
        return CP2P_EINVAL;
    rz->record_format = format;
    for (keep_t *k = rz->keeps; k; k = k->next)
        if (format != CP2P_RENDEZVOUS_RECORD_AUTO)
            k->legacy = format == CP2P_RENDEZVOUS_RECORD_LEGACY;
    return 0;
}

static void rz_handle_free(uv_handle_t *hd)
{
    free(hd->data);
}

int cp2p_rendezvous_new(cp2p_host_t *h, cp2p_rendezvous_t **out)
{
    cp2p_rendezvous_t *rz = calloc(1, sizeof *rz);
    if (!rz)
        return CP2P_ENOMEM;
    rz->h = h;
    uv_timer_init(cp2p_host_loop(h), &rz->tick);
    rz->tick.data = rz;
    uv_timer_start(&rz->tick, on_tick, TICK_MS, TICK_MS);
    int rc = cp2p_host_subscribe(h, on_event, rz);
    if (rc) {
        uv_close((uv_handle_t *)&rz->tick, rz_handle_free);
        return rc;
    }
    *out = rz;
    return 0;
}

static void rz_freed(uv_handle_t *hd)
{
    cp2p_rendezvous_t *rz = hd->data;
    void (*done)(void *) = rz->done;
    void *arg = rz->done_arg;
    free(rz);
    if (done)
        done(arg);
}

static void rz_maybe_done(cp2p_rendezvous_t *rz)
{
    if (rz->closing == 1 && !rz->reqs) {
        rz->closing = 2;
        uv_timer_stop(&rz->tick);
        uv_close((uv_handle_t *)&rz->tick, rz_freed);
    }
}

static void rz_close_later(void *arg)
{
    cp2p_rendezvous_t *rz = arg;
    /* What is under way but the UNREGISTERs ends now, with CP2P_ECANCELED. */
    for (req_t *r = rz->reqs, *next; r; r = next) {
        next = r->next;
        if (r->type != RDV_UNREGISTER)
            req_cancel(r, CP2P_ECANCELED);
    }
    rz->closing = 1;
    rz_maybe_done(rz);
}

void cp2p_rendezvous_close(cp2p_rendezvous_t *rz, void (*done)(void *arg), void *arg)
{
    if (!rz || rz->closing)
        return;
    rz->closing = -1; /* no new work; the rest on a later turn */
    cp2p_host_unsubscribe(rz->h, on_event, rz);
    rz->done = done;
    rz->done_arg = arg;
    while (rz->keeps) {
        keep_t *k = rz->keeps;
        /* Only where a connection is open: a dial at close time helps nobody. */
        if (cp2p_host_conn_to(rz->h, &k->server))
            send_unregister(rz, &k->server, k->ns, CLOSE_TIMEOUT_MS);
        keep_drop(rz, &rz->keeps);
    }
    if (cp2p_host_later(rz->h, rz_close_later, rz) < 0)
        rz_close_later(rz);
}
