/* AutoNAT v1, /libp2p/autonat/1.0.0 (libp2p specs autonat/autonat-v1.md):
 * the service (dial-backs from a dialer host of its own) and the client
 * (probes of connected servers, the host's reachability), glued to the host.
 * The decisions are in autonat_engine.c. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <uv.h>

#include "cp2p/autonat.h"
#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/peerstore.h"
#include "host/host_priv.h"
#include "protocols/autonat_engine.h"

#define TICK_MS 250

typedef struct srv_req srv_req_t;
typedef struct probe probe_t;

struct cp2p_autonat {
    cp2p_host_t *h;
    cp2p_autonat_config_t cfg;
    uv_timer_t timer;
    int freed;
    /* service */
    cp2p_host_t *dialer;
    an_throttle_t thr;
    srv_req_t *reqs;
    /* client */
    an_reach_t reach;
    uint64_t next_probe; /* loop time of the next probe */
    probe_t *probe;      /* at most one under way */
    struct server {
        cp2p_peer_id_t id;
        uint64_t last; /* last probe; 0 never */
    } servers[CP2P_AUTONAT_MAX_SERVERS];
    size_t nservers;
    cp2p_autonat_stats_t st;
};

static uint64_t now_ms(cp2p_autonat_t *a)
{
    return uv_now(cp2p_host_loop(a->h));
}

static void log_peer(const char *what, const cp2p_peer_id_t *p, const char *detail)
{
    char id[CP2P_PEER_ID_STRMAX] = "?";
    cp2p_peer_id_to_string(p, id, sizeof id);
    cp2p_log_debug("autonat", "%s %s: %s", what, id, detail);
}

/* ==== service ==== */

struct srv_req {
    cp2p_autonat_t *a;    /* NULL once AutoNAT is freed */
    srv_req_t *next;
    cp2p_stream_t *s;
    cp2p_peer_id_t peer;
    cp2p_buf_t buf;       /* the request, charged to the stream */
    uint64_t deadline;    /* stream deadline, then the dial's */
    an_verdict_t v;
    size_t next_addr;
    int dialing;          /* a connect of the dialer is under way */
    int answered;
};

static void req_unlink(srv_req_t *r)
{
    if (!r->a)
        return;
    for (srv_req_t **p = &r->a->reqs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    r->a = NULL;
}

static void req_free(srv_req_t *r, int reset)
{
    req_unlink(r);
    if (r->s) {
        if (r->buf.len)
            cp2p_stream_charge(r->s, -(long)r->buf.len);
        cp2p_stream_read_stop(r->s);
        if (reset)
            cp2p_stream_reset(r->s);
        cp2p_stream_unref(r->s);
    }
    cp2p_buf_free(&r->buf);
    an_verdict_free(&r->v);
    free(r);
}

static void drain(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    if (status < 0)
        cp2p_stream_unref(s);
}

/* Send the answer, close our side and let the stream go once the client
 * closes its own. */
static void answer(srv_req_t *r, int status, const char *text, const cp2p_multiaddr_t *addr)
{
    cp2p_autonat_t *a = r->a;
    cp2p_autonat_msg_t m = {.type = 1, .has_response = 1, .status = status};
    if (text)
        snprintf(m.text, sizeof m.text, "%s", text);
    if (addr)
        m.addr = *addr;
    if (a) {
        switch (status) {
        case CP2P_AUTONAT_OK: a->st.answered_ok++; break;
        case CP2P_AUTONAT_E_DIAL_ERROR: a->st.answered_dial_error++; break;
        case CP2P_AUTONAT_E_DIAL_REFUSED: a->st.answered_refused++; break;
        default: a->st.answered_bad++; break;
        }
    }
    log_peer("answer to", &r->peer, cp2p_autonat_status_name(status));
    cp2p_buf_t out = {0};
    int rc = cp2p_autonat_encode(&m, &out);
    cp2p_stream_t *s = r->s;
    if (r->buf.len)
        cp2p_stream_charge(s, -(long)r->buf.len);
    r->buf.len = 0;
    r->s = NULL;
    if (!rc)
        rc = cp2p_stream_write(s, out.data, out.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_close_write(s);
    if (!rc)
        rc = cp2p_stream_read_start(s, drain, NULL);
    cp2p_buf_free(&out);
    if (rc < 0) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
    r->answered = 1;
}

static void try_next_addr(srv_req_t *r);

static void dialed(cp2p_host_t *dh, int status, const cp2p_peer_id_t *peer, void *arg)
{
    srv_req_t *r = arg;
    r->dialing = 0;
    if (!r->a) { /* freed meanwhile */
        req_free(r, 1);
        return;
    }
    if (status == 0) {
        cp2p_conn_t *c = cp2p_host_conn_to(dh, &r->peer);
        cp2p_multiaddr_t ra = {0};
        if (c)
            cp2p_multiaddr_dup(cp2p_conn_remote_addr(c), &ra);
        answer(r, CP2P_AUTONAT_OK, NULL, ra.len ? &ra : &r->v.dial_addrs[r->next_addr - 1]);
        cp2p_multiaddr_free(&ra);
        /* The dial-back proved what it had to: a later one must be new. */
        while ((c = cp2p_host_conn_to(dh, &r->peer)) != NULL)
            cp2p_conn_close(c);
        req_free(r, 0);
        return;
    }
    log_peer("dial-back failed to", &r->peer, cp2p_strerror(status));
    if (status == CP2P_ECANCELED || r->next_addr >= r->v.ndial) {
        answer(r, CP2P_AUTONAT_E_DIAL_ERROR, "dial failed", NULL);
        req_free(r, 0);
        return;
    }
    try_next_addr(r);
}

/* The addresses one after another (the first that answers is enough); the
 * request's deadline bounds them all. */
static void try_next_addr(srv_req_t *r)
{
    while (r->next_addr < r->v.ndial) {
        const cp2p_multiaddr_t *base = &r->v.dial_addrs[r->next_addr++];
        cp2p_buf_t b = {0};
        char id[CP2P_PEER_ID_STRMAX];
        cp2p_multiaddr_t p2p = {0}, full = {0};
        int rc = cp2p_peer_id_to_string(&r->peer, id, sizeof id);
        if (!rc)
            rc = cp2p_buf_append(&b, "/p2p/", 5);
        if (!rc)
            rc = cp2p_buf_append(&b, id, strlen(id) + 1);
        if (!rc)
            rc = cp2p_multiaddr_parse((const char *)b.data, &p2p);
        if (!rc)
            rc = cp2p_multiaddr_encapsulate(base, &p2p, &full);
        if (!rc)
            rc = cp2p_host_connect(r->a->dialer, &full, dialed, r);
        cp2p_buf_free(&b);
        cp2p_multiaddr_free(&p2p);
        cp2p_multiaddr_free(&full);
        if (!rc) {
            r->dialing = 1;
            return;
        }
    }
    answer(r, CP2P_AUTONAT_E_DIAL_ERROR, "dial failed", NULL);
    req_free(r, 0);
}

static int dialing_peer(cp2p_autonat_t *a, const cp2p_peer_id_t *peer)
{
    for (srv_req_t *r = a->reqs; r; r = r->next)
        if (r->dialing && cp2p_peer_id_equal(&r->peer, peer))
            return 1;
    return 0;
}

static void req_decide(srv_req_t *r, const cp2p_autonat_msg_t *m)
{
    cp2p_autonat_t *a = r->a;
    a->st.requests++;
    const cp2p_multiaddr_t *observed = cp2p_conn_remote_addr(cp2p_stream_conn(r->s));
    if (dialing_peer(a, &r->peer)) {
        /* One dial-back per peer at a time: two would share a connection. */
        a->st.rate_limited++;
        answer(r, CP2P_AUTONAT_E_DIAL_REFUSED, "a dial-back to this peer is under way", NULL);
        req_free(r, 0);
        return;
    }
    an_server_decide(&a->thr, now_ms(a), a->cfg.allow_private, &r->peer, observed, m, &r->v);
    a->st.addrs_refused += r->v.refused;
    if (r->v.rate_limited)
        a->st.rate_limited++;
    if (!r->v.dial) {
        answer(r, r->v.status, r->v.text, NULL);
        req_free(r, 0);
        return;
    }
    a->st.dialbacks++;
    r->deadline = now_ms(a) + a->cfg.dial_timeout_ms;
    try_next_addr(r);
}

static void req_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    srv_req_t *r = arg;
    if (status < 0 || !r->a) {
        req_free(r, status != CP2P_ECLOSED);
        return;
    }
    if (r->buf.len + n > CP2P_AUTONAT_MAX_MESSAGE + 3 || cp2p_buf_append(&r->buf, p, n) < 0) {
        log_peer("resetting stream of", &r->peer, "request too long");
        req_free(r, 1);
        return;
    }
    if (cp2p_stream_charge(s, (long)n) == CP2P_ELIMIT) {
        req_free(r, 1);
        return;
    }
    cp2p_autonat_msg_t m;
    int rc = cp2p_autonat_decode(r->buf.data, r->buf.len, &m, NULL);
    if (rc == CP2P_ETRUNC)
        return;
    cp2p_stream_read_stop(s);
    if (rc < 0) {
        log_peer("resetting stream of", &r->peer, cp2p_strerror(rc));
        if (r->a)
            r->a->st.answered_bad++;
        req_free(r, 1);
        return;
    }
    req_decide(r, &m);
    cp2p_autonat_msg_free(&m);
}

static void on_stream(cp2p_stream_t *s, void *arg)
{
    cp2p_autonat_t *a = arg;
    srv_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    r->a = a;
    r->s = s;
    r->peer = *cp2p_stream_peer(s);
    r->deadline = now_ms(a) + a->cfg.stream_timeout_ms;
    r->next = a->reqs;
    a->reqs = r;
    if (cp2p_stream_read_start(s, req_read, r) < 0)
        req_free(r, 1);
}

/* ==== client ==== */

struct probe {
    cp2p_autonat_t *a;  /* NULL once AutoNAT is freed */
    cp2p_stream_t *s;
    cp2p_peer_id_t peer;
    cp2p_buf_t buf;
    uint64_t deadline;
    int opening;
};

static void probe_free(probe_t *p, int reset)
{
    if (p->a && p->a->probe == p)
        p->a->probe = NULL;
    if (p->s) {
        if (p->buf.len)
            cp2p_stream_charge(p->s, -(long)p->buf.len);
        cp2p_stream_read_stop(p->s);
        if (reset) {
            cp2p_stream_reset(p->s);
            cp2p_stream_unref(p->s);
        } else if (cp2p_stream_close_write(p->s) < 0 ||
                   cp2p_stream_read_start(p->s, drain, NULL) < 0) {
            cp2p_stream_reset(p->s);
            cp2p_stream_unref(p->s);
        }
    }
    cp2p_buf_free(&p->buf);
    free(p);
}

static void schedule(cp2p_autonat_t *a)
{
    int sure = a->reach.status != CP2P_REACHABILITY_UNKNOWN &&
               a->reach.confidence >= CP2P_AUTONAT_MAX_CONFIDENCE;
    a->next_probe = now_ms(a) + (sure ? a->cfg.refresh_ms : a->cfg.retry_ms);
}

static void probe_done(probe_t *p, int status, int reset)
{
    cp2p_autonat_t *a = p->a;
    if (a) {
        cp2p_reachability_t obs = an_observation(status);
        if (status == CP2P_AUTONAT_OK)
            a->st.probe_ok++;
        else if (status == CP2P_AUTONAT_E_DIAL_ERROR)
            a->st.probe_dial_error++;
        else
            a->st.probe_other++;
        log_peer("probe answered by", &p->peer, status >= 0 ? cp2p_autonat_status_name(status) : "no answer");
        if (an_reach_record(&a->reach, obs))
            cp2p_host_set_reachability(a->h, a->reach.status);
        a->st.confidence = a->reach.confidence;
        schedule(a);
    }
    probe_free(p, reset);
}

static void probe_read(cp2p_stream_t *s, int status, const uint8_t *d, size_t n, void *arg)
{
    probe_t *p = arg;
    if (status < 0) {
        probe_done(p, -1, status != CP2P_ECLOSED);
        return;
    }
    if (p->buf.len + n > CP2P_AUTONAT_MAX_MESSAGE + 3 || cp2p_buf_append(&p->buf, d, n) < 0 ||
        cp2p_stream_charge(s, (long)n) == CP2P_ELIMIT) {
        probe_done(p, -1, 1);
        return;
    }
    cp2p_autonat_msg_t m;
    int rc = cp2p_autonat_decode(p->buf.data, p->buf.len, &m, NULL);
    if (rc == CP2P_ETRUNC)
        return;
    if (rc < 0 || m.type != 1 || !m.has_response) {
        if (!rc)
            cp2p_autonat_msg_free(&m);
        probe_done(p, -1, 1);
        return;
    }
    if (m.status != CP2P_AUTONAT_OK && m.text[0])
        log_peer("probe refused by", &p->peer, m.text);
    int st = m.status;
    cp2p_autonat_msg_free(&m);
    probe_done(p, st, 0);
}

/* What we ask to be dialled on: our advertised addresses with an IP, the
 * routable ones only unless allow_private. */
static int build_request(cp2p_autonat_t *a, cp2p_buf_t *out)
{
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    int rc = cp2p_host_addrs(a->h, &addrs, &n);
    if (rc)
        return rc;
    cp2p_autonat_msg_t m = {.type = 0, .has_dial = 1, .has_peer_id = 1,
                            .peer = *cp2p_host_peer_id(a->h)};
    for (size_t i = 0; i < n && m.n_addrs < CP2P_AUTONAT_MAX_ADDRS; i++) {
        cp2p_ip_scope_t sc = cp2p_multiaddr_ip_scope(&addrs[i]);
        cp2p_multiaddr_component_t c;
        if (cp2p_multiaddr_get(&addrs[i], CP2P_MA_P2P_CIRCUIT, &c) == 0)
            continue;
        if (sc == CP2P_IP_PUBLIC ||
            (a->cfg.allow_private && (sc == CP2P_IP_PRIVATE || sc == CP2P_IP_LOOPBACK)))
            m.addrs[m.n_addrs++] = addrs[i]; /* borrowed */
    }
    rc = cp2p_autonat_encode(&m, out);
    cp2p_multiaddr_array_free(addrs, n);
    return rc;
}

static void probe_opened(int status, cp2p_stream_t *s, void *arg)
{
    probe_t *p = arg;
    p->opening = 0;
    if (status < 0) {
        probe_done(p, -1, 0);
        return;
    }
    p->s = s;
    if (!p->a) {
        probe_free(p, 1);
        return;
    }
    cp2p_buf_t req = {0};
    int rc = build_request(p->a, &req);
    if (!rc)
        rc = cp2p_stream_write(s, req.data, req.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_read_start(s, probe_read, p);
    cp2p_buf_free(&req);
    if (rc < 0)
        probe_done(p, -1, 1);
}

static int server_usable(cp2p_autonat_t *a, struct server *sv, uint64_t now)
{
    if (sv->last && now < sv->last + a->cfg.peer_period_ms)
        return 0;
    cp2p_conn_t *c = cp2p_host_conn_to(a->h, &sv->id);
    if (!c)
        return 0;
    /* go-libp2p's skipPeer: a server we reach over a private address sees
     * us from inside our network. */
    cp2p_ip_scope_t sc = cp2p_multiaddr_ip_scope(cp2p_conn_remote_addr(c));
    return sc == CP2P_IP_PUBLIC || (a->cfg.allow_private && (sc == CP2P_IP_PRIVATE || sc == CP2P_IP_LOOPBACK));
}

static void start_probe(cp2p_autonat_t *a)
{
    uint64_t now = now_ms(a);
    size_t pick[CP2P_AUTONAT_MAX_SERVERS], np = 0;
    for (size_t i = 0; i < a->nservers; i++)
        if (server_usable(a, &a->servers[i], now))
            pick[np++] = i;
    if (!np) {
        a->next_probe = now + a->cfg.retry_ms;
        return;
    }
    uint32_t rnd = 0;
    RAND_bytes((unsigned char *)&rnd, sizeof rnd);
    struct server *sv = &a->servers[pick[rnd % np]];
    probe_t *p = calloc(1, sizeof *p);
    if (!p)
        return;
    p->a = a;
    p->peer = sv->id;
    p->deadline = now + a->cfg.request_timeout_ms;
    sv->last = now;
    static const char *const protos[] = {CP2P_AUTONAT_V1_PROTOCOL_ID};
    if (cp2p_host_new_stream(a->h, &sv->id, protos, 1, probe_opened, p) < 0) {
        free(p);
        a->next_probe = now + a->cfg.retry_ms;
        return;
    }
    p->opening = 1;
    a->probe = p;
    a->st.probes++;
    a->next_probe = UINT64_MAX;
}

static void on_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_autonat_t *a = arg;
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED) {
        if (!cp2p_peerstore_supports(cp2p_host_peerstore(a->h), ev->peer, CP2P_AUTONAT_V1_PROTOCOL_ID))
            return;
        for (size_t i = 0; i < a->nservers; i++)
            if (cp2p_peer_id_equal(&a->servers[i].id, ev->peer))
                return;
        if (a->nservers == CP2P_AUTONAT_MAX_SERVERS)
            return;
        a->servers[a->nservers++] = (struct server){.id = *ev->peer};
        /* While we know nothing, a new server is worth asking soon. */
        if (a->reach.status == CP2P_REACHABILITY_UNKNOWN && !a->probe && a->next_probe != UINT64_MAX) {
            uint64_t soon = now_ms(a) + a->cfg.boot_delay_ms;
            if (soon < a->next_probe)
                a->next_probe = soon;
        }
    } else if (ev->type == CP2P_EVENT_DISCONNECTED) {
        if (cp2p_host_conn_to(a->h, ev->peer))
            return;
        for (size_t i = 0; i < a->nservers; i++)
            if (cp2p_peer_id_equal(&a->servers[i].id, ev->peer)) {
                a->servers[i] = a->servers[--a->nservers];
                break;
            }
    }
}

/* ==== both: one timer ==== */

static void tick(uv_timer_t *t)
{
    cp2p_autonat_t *a = t->data;
    uint64_t now = now_ms(a);
    for (srv_req_t *r = a->reqs, *next; r; r = next) {
        next = r->next;
        if (now < r->deadline || r->answered)
            continue;
        if (r->dialing) {
            /* Its callback answers, with ECANCELED, on a later turn. */
            r->deadline = UINT64_MAX;
            cp2p_host_cancel(a->dialer, r);
        } else {
            log_peer("resetting stream of", &r->peer, "no request in time");
            req_free(r, 1);
        }
    }
    if (a->probe && now >= a->probe->deadline) {
        probe_t *p = a->probe;
        if (p->opening) {
            p->deadline = UINT64_MAX;
            cp2p_host_cancel(a->h, p);
        } else {
            probe_done(p, -1, 1);
        }
    }
    if (a->cfg.client && !cp2p_host_reachability_forced(a->h) && !a->probe && now >= a->next_probe)
        start_probe(a);
}

static void timer_closed(uv_handle_t *t)
{
    free(t->data);
}

int cp2p_autonat_enable(cp2p_host_t *h, const cp2p_autonat_config_t *cfg, cp2p_autonat_t **out)
{
    if (!h)
        return CP2P_EINVAL;
    cp2p_autonat_t *a = calloc(1, sizeof *a);
    if (!a)
        return CP2P_ENOMEM;
    a->h = h;
    if (cfg)
        a->cfg = *cfg;
    else
        a->cfg.client = 1;
#define DEF(f, v) if (!a->cfg.f) a->cfg.f = (v)
    DEF(global_max, CP2P_AUTONAT_DEFAULT_GLOBAL_MAX);
    DEF(peer_max, CP2P_AUTONAT_DEFAULT_PEER_MAX);
    DEF(reset_ms, CP2P_AUTONAT_DEFAULT_RESET_MS);
    DEF(dial_timeout_ms, CP2P_AUTONAT_DEFAULT_DIAL_TIMEOUT_MS);
    DEF(stream_timeout_ms, CP2P_AUTONAT_DEFAULT_STREAM_TIMEOUT_MS);
    DEF(boot_delay_ms, CP2P_AUTONAT_DEFAULT_BOOT_DELAY_MS);
    DEF(retry_ms, CP2P_AUTONAT_DEFAULT_RETRY_MS);
    DEF(refresh_ms, CP2P_AUTONAT_DEFAULT_REFRESH_MS);
    DEF(request_timeout_ms, CP2P_AUTONAT_DEFAULT_REQUEST_TIMEOUT_MS);
    DEF(peer_period_ms, CP2P_AUTONAT_DEFAULT_PEER_PERIOD_MS);
#undef DEF
    a->cfg.dialer_config = NULL; /* not kept */
    a->next_probe = now_ms(a) + a->cfg.boot_delay_ms;
    int rc = an_throttle_init(&a->thr, a->cfg.global_max, a->cfg.peer_max, a->cfg.reset_ms);
    if (rc) {
        free(a);
        return rc;
    }
    if (a->cfg.service) {
        /* Its own key and no listener: the dial-back can never ride on the
         * client's connection to us (go-libp2p does the same). */
        cp2p_host_config_t dc = {0};
        if (a->cfg.dialer_config)
            dc = *a->cfg.dialer_config;
        dc.identity = NULL;
        dc.dial_timeout_ms = a->cfg.dial_timeout_ms;
        dc.keep_private_addrs = a->cfg.allow_private;
        dc.force_reachability = CP2P_REACHABILITY_UNKNOWN;
        rc = cp2p_host_new(cp2p_host_loop(h), &dc, &a->dialer);
        if (!rc)
            rc = cp2p_host_set_handler(h, CP2P_AUTONAT_V1_PROTOCOL_ID, on_stream, a);
        if (rc) {
            if (a->dialer)
                cp2p_host_close(a->dialer, NULL, NULL);
            an_throttle_free(&a->thr);
            free(a);
            return rc;
        }
    }
    if (a->cfg.client && (rc = cp2p_host_subscribe(h, on_event, a)) < 0) {
        cp2p_host_remove_handler(h, CP2P_AUTONAT_V1_PROTOCOL_ID);
        if (a->dialer)
            cp2p_host_close(a->dialer, NULL, NULL);
        an_throttle_free(&a->thr);
        free(a);
        return rc;
    }
    uv_timer_init(cp2p_host_loop(h), &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, tick, TICK_MS, TICK_MS);
    if (!out)
        uv_unref((uv_handle_t *)&a->timer);
    else
        *out = a;
    return 0;
}

void cp2p_autonat_free(cp2p_autonat_t *a)
{
    if (!a || a->freed)
        return;
    a->freed = 1;
    if (a->cfg.service)
        cp2p_host_remove_handler(a->h, CP2P_AUTONAT_V1_PROTOCOL_ID);
    if (a->cfg.client)
        cp2p_host_unsubscribe(a->h, on_event, a);
    while (a->reqs) {
        srv_req_t *r = a->reqs;
        if (r->dialing) {
            req_unlink(r); /* its callback frees it, when the dialer's close cancels it */
            if (r->s) {
                cp2p_stream_reset(r->s);
            }
        } else {
            req_free(r, 1);
        }
    }
    if (a->probe) {
        probe_t *p = a->probe;
        a->probe = NULL;
        p->a = NULL;
        if (p->opening)
            cp2p_host_cancel(a->h, p); /* its callback frees it */
        else
            probe_free(p, 1);
    }
    if (a->dialer)
        cp2p_host_close(a->dialer, NULL, NULL);
    an_throttle_free(&a->thr);
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, timer_closed);
}

void cp2p_autonat_stats(const cp2p_autonat_t *a, cp2p_autonat_stats_t *out)
{
    *out = a->st;
}
