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
typedef struct srv2 srv2_t;
typedef struct probe probe_t;
typedef struct dial_back dial_back_t;

struct cp2p_autonat {
    cp2p_host_t *h;
    cp2p_autonat_config_t cfg;
    uv_timer_t timer;
    int freed;
    /* service */
    cp2p_host_t *dialer;
    an_throttle_t thr;
    srv_req_t *reqs;
    an_throttle_t thr2;  /* v2: per minute, in all and per peer */
    uint32_t dd_count;   /* v2: requests that needed dial data this minute */
    uint64_t dd_reset_at;
    srv2_t *reqs2;
    /* client */
    an_reach_t reach;
    uint64_t next_probe; /* loop time of the next probe */
    probe_t *probe;      /* at most one under way */
    dial_back_t *dbs;    /* v2 dial-back streams being read */
    an_candidates_t cands; /* observed addresses to confirm */
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

/* ==== service, v2 (libp2p specs autonat/autonat-v2.md) ==== */

enum { S2_REQUEST, S2_DATA, S2_DIALING, S2_DIAL_BACK };

struct srv2 {
    cp2p_autonat_t *a;    /* NULL once AutoNAT is freed */
    srv2_t *next;
    cp2p_stream_t *s;     /* the dial-request stream */
    cp2p_stream_t *db;    /* the dial-back stream, on the dialer's connection */
    cp2p_peer_id_t peer;
    cp2p_buf_t buf;       /* what is read and not yet decoded, charged to s */
    uint64_t deadline;
    int state;
    int pending;          /* a connect or new_stream of the dialer is under way */
    uint64_t nonce;
    size_t idx;
    cp2p_multiaddr_t addr;
    uint64_t data_want, data_got;
};

static void s2_unlink(srv2_t *r)
{
    if (!r->a)
        return;
    for (srv2_t **p = &r->a->reqs2; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    r->a = NULL;
}

static void s2_drop_stream(cp2p_stream_t **sp, cp2p_buf_t *buf, int reset)
{
    cp2p_stream_t *s = *sp;
    if (!s)
        return;
    *sp = NULL;
    if (buf && buf->len)
        cp2p_stream_charge(s, -(long)buf->len);
    if (buf)
        buf->len = 0;
    cp2p_stream_read_stop(s);
    if (reset)
        cp2p_stream_reset(s);
    cp2p_stream_unref(s);
}

static void s2_free(srv2_t *r, int reset)
{
    s2_unlink(r);
    s2_drop_stream(&r->s, &r->buf, reset);
    s2_drop_stream(&r->db, NULL, 1);
    cp2p_buf_free(&r->buf);
    cp2p_multiaddr_free(&r->addr);
    free(r);
}

static int s2_send(cp2p_stream_t *s, const cp2p_autonat2_msg_t *m)
{
    cp2p_buf_t out = {0};
    int rc = cp2p_autonat2_encode(m, &out);
    if (!rc)
        rc = cp2p_stream_write(s, out.data, out.len, NULL, NULL);
    cp2p_buf_free(&out);
    return rc;
}

/* The last message: a DialResponse, then our side closes. */
static void s2_answer(srv2_t *r, uint32_t status, uint32_t dial_status)
{
    cp2p_autonat2_msg_t m = {.kind = CP2P_AUTONAT2_DIAL_RESPONSE, .status = status,
                             .addr_idx = (uint32_t)r->idx, .dial_status = dial_status};
    log_peer("v2 answer to", &r->peer,
             status != CP2P_AUTONAT2_RESPONSE_OK ? "refused"
             : dial_status == CP2P_AUTONAT2_DIAL_OK ? "OK" : "dial error");
    cp2p_stream_t *s = r->s;
    if (r->buf.len)
        cp2p_stream_charge(s, -(long)r->buf.len);
    r->buf.len = 0;
    r->s = NULL;
    int rc = s2_send(s, &m);
    if (!rc)
        rc = cp2p_stream_close_write(s);
    if (!rc)
        rc = cp2p_stream_read_start(s, drain, NULL);
    if (rc < 0) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
}

static void s2_finish(srv2_t *r, uint32_t dial_status)
{
    if (r->a && r->a->dialer) {
        cp2p_conn_t *c;
        s2_drop_stream(&r->db, NULL, 0);
        while ((c = cp2p_host_conn_to(r->a->dialer, &r->peer)) != NULL)
            cp2p_conn_close(c);
    }
    if (r->s)
        s2_answer(r, CP2P_AUTONAT2_RESPONSE_OK, dial_status);
    s2_free(r, 0);
}

/* Anything (the DialBackResponse, EOF, a reset) says the DialBack got there
 * or never will; go-libp2p counts the dial-back done once written. */
static void s2_db_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    srv2_t *r = arg;
    if (!r->a) {
        s2_free(r, 1);
        return;
    }
    s2_finish(r, CP2P_AUTONAT2_DIAL_OK);
}

static void s2_db_opened(int status, cp2p_stream_t *s, void *arg)
{
    srv2_t *r = arg;
    r->pending = 0;
    if (status == 0)
        r->db = s;
    if (!r->a) {
        s2_free(r, 1);
        return;
    }
    if (status < 0) {
        log_peer("v2 dial-back stream failed to", &r->peer, cp2p_strerror(status));
        s2_finish(r, CP2P_AUTONAT2_DIAL_BACK_ERROR);
        return;
    }
    cp2p_buf_t out = {0};
    int rc = cp2p_autonat2_encode_dial_back(r->nonce, &out);
    if (!rc)
        rc = cp2p_stream_write(s, out.data, out.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_close_write(s);
    if (!rc)
        rc = cp2p_stream_read_start(s, s2_db_read, r);
    cp2p_buf_free(&out);
    if (rc < 0)
        s2_finish(r, CP2P_AUTONAT2_DIAL_BACK_ERROR);
}

static void s2_dialed(cp2p_host_t *dh, int status, const cp2p_peer_id_t *peer, void *arg)
{
    srv2_t *r = arg;
    r->pending = 0;
    if (!r->a) {
        s2_free(r, 1);
        return;
    }
    if (status < 0) {
        log_peer("v2 dial-back failed to", &r->peer, cp2p_strerror(status));
        s2_finish(r, CP2P_AUTONAT2_DIAL_ERROR);
        return;
    }
    static const char *const protos[] = {CP2P_AUTONAT_V2_DIAL_BACK_ID};
    r->state = S2_DIAL_BACK;
    r->deadline = now_ms(r->a) + 5000; /* go-libp2p's dialBackStreamTimeout */
    if (cp2p_host_new_stream(dh, &r->peer, protos, 1, s2_db_opened, r) < 0) {
        s2_finish(r, CP2P_AUTONAT2_DIAL_BACK_ERROR);
        return;
    }
    r->pending = 1;
}

static void s2_dial(srv2_t *r)
{
    cp2p_autonat_t *a = r->a;
    cp2p_stream_read_stop(r->s);
    a->st.dialbacks++;
    r->state = S2_DIALING;
    r->deadline = now_ms(a) + a->cfg.dial_timeout_ms;
    char id[CP2P_PEER_ID_STRMAX], s[CP2P_PEER_ID_STRMAX + 8];
    cp2p_multiaddr_t p2p = {0}, full = {0};
    int rc = cp2p_peer_id_to_string(&r->peer, id, sizeof id);
    if (!rc) {
        snprintf(s, sizeof s, "/p2p/%s", id);
        rc = cp2p_multiaddr_parse(s, &p2p);
    }
    if (!rc)
        rc = cp2p_multiaddr_encapsulate(&r->addr, &p2p, &full);
    if (!rc)
        rc = cp2p_host_connect(a->dialer, &full, s2_dialed, r);
    cp2p_multiaddr_free(&p2p);
    cp2p_multiaddr_free(&full);
    if (rc < 0) {
        s2_finish(r, CP2P_AUTONAT2_DIAL_ERROR);
        return;
    }
    r->pending = 1;
}

static int peer_reqs2(cp2p_autonat_t *a, const cp2p_peer_id_t *peer)
{
    int n = 0;
    for (srv2_t *r = a->reqs2; r; r = r->next)
        n += cp2p_peer_id_equal(&r->peer, peer);
    return n;
}

static void s2_request(srv2_t *r, const cp2p_autonat2_msg_t *m)
{
    cp2p_autonat_t *a = r->a;
    a->st.requests_v2++;
    const cp2p_multiaddr_t *observed = cp2p_conn_remote_addr(cp2p_stream_conn(r->s));
    int need_data = 0;
    if (an2_pick(observed, m, a->cfg.allow_private, &r->peer, &r->idx, &need_data) < 0) {
        a->st.addrs_refused += m->n_addrs;
        s2_answer(r, CP2P_AUTONAT2_E_DIAL_REFUSED, CP2P_AUTONAT2_DIAL_UNUSED);
        s2_free(r, 0);
        return;
    }
    uint64_t now = now_ms(a);
    if (now >= a->dd_reset_at) {
        a->dd_count = 0;
        a->dd_reset_at = now + 60000;
    }
    if ((need_data && a->dd_count >= CP2P_AUTONAT_V2_DEFAULT_DIAL_DATA_RPM) ||
        an_throttle_take(&a->thr2, &r->peer, now) < 0) {
        a->st.rejected_v2++;
        s2_answer(r, CP2P_AUTONAT2_E_REQUEST_REJECTED, CP2P_AUTONAT2_DIAL_UNUSED);
        s2_free(r, 0);
        return;
    }
    r->nonce = m->nonce;
    if (an_dialable_copy(&m->addrs[r->idx], &r->peer, &r->addr) < 0) {
        s2_answer(r, CP2P_AUTONAT2_E_INTERNAL_ERROR, CP2P_AUTONAT2_DIAL_UNUSED);
        s2_free(r, 0);
        return;
    }
    if (!need_data) {
        s2_dial(r);
        return;
    }
    /* The amplification protection: the client pays in bytes first. */
    a->dd_count++;
    a->st.dial_data_asked++;
    uint32_t rnd = 0;
    RAND_bytes((unsigned char *)&rnd, sizeof rnd);
    r->data_want = CP2P_AUTONAT_V2_MIN_DIAL_DATA +
                   rnd % (CP2P_AUTONAT_V2_MAX_DIAL_DATA - CP2P_AUTONAT_V2_MIN_DIAL_DATA);
    cp2p_autonat2_msg_t ask = {.kind = CP2P_AUTONAT2_DIAL_DATA_REQUEST, .addr_idx = (uint32_t)r->idx,
                               .num_bytes = r->data_want};
    r->state = S2_DATA;
    if (s2_send(r->s, &ask) < 0)
        s2_free(r, 1);
}

static void s2_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    srv2_t *r = arg;
    if (status < 0 || !r->a) {
        s2_free(r, status != CP2P_ECLOSED);
        return;
    }
    /* The dial data comes in many messages, and one read may hold several:
     * at most one message's worth is held at a time. */
    const size_t cap = CP2P_AUTONAT_V2_MAX_MESSAGE + 3;
    while (n > 0 || r->buf.len) {
        size_t take = n < cap - r->buf.len ? n : cap - r->buf.len;
        if (take && (cp2p_buf_append(&r->buf, p, take) < 0 ||
                     cp2p_stream_charge(s, (long)take) == CP2P_ELIMIT)) {
            s2_free(r, 1);
            return;
        }
        p += take;
        n -= take;
        cp2p_autonat2_msg_t m;
        size_t used;
        int rc = cp2p_autonat2_decode(r->buf.data, r->buf.len, &m, &used);
        if (rc == CP2P_ETRUNC) {
            if (r->buf.len == cap) {
                log_peer("v2: resetting stream of", &r->peer, "message too long");
                s2_free(r, 1);
                return;
            }
            if (!n)
                return;
            continue;
        }
        int want = r->state == S2_REQUEST ? CP2P_AUTONAT2_DIAL_REQUEST : CP2P_AUTONAT2_DIAL_DATA_RESPONSE;
        if (rc < 0 || m.kind != want || r->state > S2_DATA) {
            if (!rc)
                cp2p_autonat2_msg_free(&m);
            log_peer("v2: resetting stream of", &r->peer, rc < 0 ? cp2p_strerror(rc) : "unexpected message");
            s2_free(r, 1);
            return;
        }
        cp2p_stream_charge(s, -(long)used);
        cp2p_buf_consume(&r->buf, used);
        if (r->state == S2_REQUEST) {
            s2_request(r, &m); /* may free r */
            cp2p_autonat2_msg_free(&m);
            return;
        }
        r->data_got += m.data_len;
        if (r->data_got >= r->data_want) {
            s2_dial(r);
            return;
        }
    }
}

static void on_stream2(cp2p_stream_t *s, void *arg)
{
    cp2p_autonat_t *a = arg;
    if (peer_reqs2(a, cp2p_stream_peer(s)) >= CP2P_AUTONAT_V2_MAX_CONCURRENT_PER_PEER) {
        a->st.rejected_v2++;
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    srv2_t *r = calloc(1, sizeof *r);
    if (!r) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    r->a = a;
    r->s = s;
    r->peer = *cp2p_stream_peer(s);
    r->deadline = now_ms(a) + 15000; /* go-libp2p's streamTimeout */
    r->next = a->reqs2;
    a->reqs2 = r;
    if (cp2p_stream_read_start(s, s2_read, r) < 0)
        s2_free(r, 1);
}

/* ==== client ==== */

struct probe {
    cp2p_autonat_t *a;  /* NULL once AutoNAT is freed */
    cp2p_stream_t *s;
    cp2p_peer_id_t peer;
    cp2p_buf_t buf;
    uint64_t deadline;
    int opening;
    /* v2 */
    int v2;
    uint64_t nonce;
    int got_dial_back;  /* a dial-back brought our nonce */
    int sent_data;      /* the dial data went (once per request) */
    size_t nsent;       /* addresses in the request */
    int cand;           /* the candidate it tests (its address alone), or -1 */
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
    if (a && p->cand >= 0 && (size_t)p->cand < a->cands.n) {
        an_candidate_t *c = &a->cands.c[p->cand];
        if (status == CP2P_AUTONAT_OK) {
            c->state = AN_CAND_CONFIRMED;
            a->st.candidates_confirmed++;
            cp2p_buf_t txt = {0};
            cp2p_multiaddr_to_string(&c->addr, &txt);
            cp2p_log_info("autonat", "observed address confirmed: %s", txt.data ? (char *)txt.data : "?");
            cp2p_buf_free(&txt);
            cp2p_host_add_external_addr(a->h, &c->addr);
        } else {
            c->state = status == CP2P_AUTONAT_E_DIAL_ERROR ? AN_CAND_FAILED : AN_CAND_DUE;
            a->st.candidates_failed += status == CP2P_AUTONAT_E_DIAL_ERROR;
            /* A wrong observation says nothing of our other addresses. */
            if (status != CP2P_AUTONAT_OK) {
                a->next_probe = now_ms(a) + a->cfg.retry_ms;
                probe_free(p, reset);
                return;
            }
        }
    }
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

/* Worth asking to be dialled on: an address with an IP, not relayed, a
 * routable one unless allow_private. */
static int worth_asking(cp2p_autonat_t *a, const cp2p_multiaddr_t *ma)
{
    cp2p_ip_scope_t sc = cp2p_multiaddr_ip_scope(ma);
    cp2p_multiaddr_component_t c;
    if (cp2p_multiaddr_get(ma, CP2P_MA_P2P_CIRCUIT, &c) == 0)
        return 0;
    return sc == CP2P_IP_PUBLIC ||
           (a->cfg.allow_private && (sc == CP2P_IP_PRIVATE || sc == CP2P_IP_LOOPBACK));
}

/* What we ask to be dialled on: our advertised addresses worth asking. */
static int build_request(cp2p_autonat_t *a, cp2p_buf_t *out)
{
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    int rc = cp2p_host_addrs(a->h, &addrs, &n);
    if (rc)
        return rc;
    cp2p_autonat_msg_t m = {.type = 0, .has_dial = 1, .has_peer_id = 1,
                            .peer = *cp2p_host_peer_id(a->h)};
    if (a->probe && a->probe->cand >= 0)
        m.addrs[m.n_addrs++] = a->cands.c[a->probe->cand].addr; /* borrowed */
    for (size_t i = 0; i < n && m.n_addrs < CP2P_AUTONAT_MAX_ADDRS && !(a->probe && a->probe->cand >= 0); i++)
        if (worth_asking(a, &addrs[i]))
            m.addrs[m.n_addrs++] = addrs[i]; /* borrowed */
    rc = cp2p_autonat_encode(&m, out);
    cp2p_multiaddr_array_free(addrs, n);
    return rc;
}

static int build_request2(cp2p_autonat_t *a, probe_t *p, cp2p_buf_t *out);
static void probe2_read(cp2p_stream_t *s, int status, const uint8_t *d, size_t n, void *arg);

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
    int rc = p->v2 ? build_request2(p->a, p, &req) : build_request(p->a, &req);
    if (!rc)
        rc = cp2p_stream_write(s, req.data, req.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_read_start(s, p->v2 ? probe2_read : probe_read, p);
    cp2p_buf_free(&req);
    if (rc < 0)
        probe_done(p, -1, 1);
}

/* ---- client, v2 ---- */

static int build_request2(cp2p_autonat_t *a, probe_t *p, cp2p_buf_t *out)
{
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    int rc = cp2p_host_addrs(a->h, &addrs, &n);
    if (rc)
        return rc;
    cp2p_autonat2_msg_t m = {.kind = CP2P_AUTONAT2_DIAL_REQUEST, .nonce = p->nonce};
    if (p->cand >= 0)
        m.addrs[m.n_addrs++] = a->cands.c[p->cand].addr; /* borrowed */
    for (size_t i = 0; i < n && m.n_addrs < CP2P_AUTONAT_MAX_ADDRS && p->cand < 0; i++)
        if (worth_asking(a, &addrs[i]))
            m.addrs[m.n_addrs++] = addrs[i]; /* borrowed */
    p->nsent = m.n_addrs;
    rc = m.n_addrs ? cp2p_autonat2_encode(&m, out) : CP2P_ENOTFOUND;
    cp2p_multiaddr_array_free(addrs, n);
    return rc;
}

/* What a DialResponse says of the address it names. OK is believed only if
 * our nonce came back on a dial-back (the spec: else the server may lie). */
static int v2_observation(probe_t *p, const cp2p_autonat2_msg_t *m)
{
    if (m->status != CP2P_AUTONAT2_RESPONSE_OK || m->addr_idx >= p->nsent)
        return -1;
    if (m->dial_status == CP2P_AUTONAT2_DIAL_ERROR)
        return CP2P_AUTONAT_E_DIAL_ERROR;
    if ((m->dial_status == CP2P_AUTONAT2_DIAL_OK || m->dial_status == CP2P_AUTONAT2_DIAL_BACK_ERROR) &&
        p->got_dial_back)
        return CP2P_AUTONAT_OK;
    if (m->dial_status == CP2P_AUTONAT2_DIAL_OK)
        log_peer("v2: OK without our nonce from", &p->peer, "not believed");
    return -1;
}

/* The dial data: numBytes in DialDataResponse messages, at most
 * CP2P_AUTONAT_V2_MAX_DIAL_DATA whatever is asked. */
static int send_dial_data(probe_t *p, uint64_t num)
{
    static const uint8_t zeros[CP2P_AUTONAT_V2_DIAL_DATA_CHUNK];
    cp2p_buf_t out = {0};
    int rc = 0;
    for (uint64_t sent = 0; !rc && sent < num; sent += sizeof zeros) {
        cp2p_autonat2_msg_t m = {.kind = CP2P_AUTONAT2_DIAL_DATA_RESPONSE, .data = zeros,
                                 .data_len = num - sent < sizeof zeros ? (size_t)(num - sent) : sizeof zeros};
        rc = cp2p_autonat2_encode(&m, &out);
    }
    if (!rc)
        rc = cp2p_stream_write(p->s, out.data, out.len, NULL, NULL);
    cp2p_buf_free(&out);
    return rc;
}

static void probe2_read(cp2p_stream_t *s, int status, const uint8_t *d, size_t n, void *arg)
{
    probe_t *p = arg;
    if (status < 0) {
        probe_done(p, -1, status != CP2P_ECLOSED);
        return;
    }
    if (p->buf.len + n > CP2P_AUTONAT_V2_MAX_MESSAGE + 3 || cp2p_buf_append(&p->buf, d, n) < 0 ||
        cp2p_stream_charge(s, (long)n) == CP2P_ELIMIT) {
        probe_done(p, -1, 1);
        return;
    }
    for (;;) {
        cp2p_autonat2_msg_t m;
        size_t used;
        int rc = cp2p_autonat2_decode(p->buf.data, p->buf.len, &m, &used);
        if (rc == CP2P_ETRUNC)
            return;
        if (rc < 0) {
            probe_done(p, -1, 1);
            return;
        }
        cp2p_stream_charge(s, -(long)used);
        cp2p_buf_consume(&p->buf, used);
        if (m.kind == CP2P_AUTONAT2_DIAL_DATA_REQUEST && !p->sent_data && m.addr_idx < p->nsent &&
            m.num_bytes <= CP2P_AUTONAT_V2_MAX_DIAL_DATA) {
            p->sent_data = 1;
            if (send_dial_data(p, m.num_bytes) < 0) {
                probe_done(p, -1, 1);
                return;
            }
            continue;
        }
        if (m.kind == CP2P_AUTONAT2_DIAL_RESPONSE) {
            probe_done(p, v2_observation(p, &m), 0);
            return;
        }
        cp2p_autonat2_msg_free(&m);
        log_peer("v2: resetting probe to", &p->peer, "unexpected message, or too much dial data asked");
        probe_done(p, -1, 1);
        return;
    }
}

/* A dial-back: on a connection of its own, from the server's dialer. */
struct dial_back {
    cp2p_autonat_t *a; /* NULL once AutoNAT is freed */
    dial_back_t *next;
    cp2p_buf_t buf;
};

static void db_unlink(dial_back_t *db)
{
    if (!db->a)
        return;
    for (dial_back_t **p = &db->a->dbs; *p; p = &(*p)->next)
        if (*p == db) {
            *p = db->next;
            break;
        }
    db->a = NULL;
}

static void db_read(cp2p_stream_t *s, int status, const uint8_t *d, size_t n, void *arg)
{
    dial_back_t *db = arg;
    uint64_t nonce;
    int rc = status;
    if (!rc && (db->buf.len + n > CP2P_AUTONAT_V2_MAX_DIAL_BACK + 3 ||
                cp2p_buf_append(&db->buf, d, n) < 0))
        rc = CP2P_EOVERFLOW;
    if (!rc) {
        cp2p_stream_charge(s, (long)n);
        rc = cp2p_autonat2_decode_dial_back(db->buf.data, db->buf.len, &nonce, NULL);
        if (rc == CP2P_ETRUNC)
            return;
    }
    if (db->buf.len)
        cp2p_stream_charge(s, -(long)db->buf.len);
    cp2p_buf_free(&db->buf);
    cp2p_stream_read_stop(s);
    cp2p_autonat_t *a = db->a;
    db_unlink(db);
    probe_t *p = a ? a->probe : NULL;
    if (!rc && p && p->v2 && p->nonce == nonce) {
        p->got_dial_back = 1;
        a->st.dial_backs_v2++;
        cp2p_buf_t out = {0};
        rc = cp2p_autonat2_encode_dial_back_response(&out);
        if (!rc)
            rc = cp2p_stream_write(s, out.data, out.len, NULL, NULL);
        if (!rc)
            rc = cp2p_stream_close_write(s);
        if (!rc)
            rc = cp2p_stream_read_start(s, drain, NULL);
        cp2p_buf_free(&out);
    } else if (!rc) {
        rc = CP2P_EPROTO; /* not ours: a dial-back nobody asked for */
    }
    free(db);
    if (rc < 0) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
}

static void on_dial_back(cp2p_stream_t *s, void *arg)
{
    dial_back_t *db = calloc(1, sizeof *db);
    if (!db) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    db->a = arg;
    db->next = db->a->dbs;
    db->a->dbs = db;
    if (cp2p_stream_read_start(s, db_read, db) < 0) {
        db_unlink(db);
        free(db);
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
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
    p->cand = -1;
    for (size_t i = 0; i < a->cands.n && p->cand < 0; i++)
        if (a->cands.c[i].state == AN_CAND_DUE) {
            p->cand = (int)i;
            a->cands.c[i].state = AN_CAND_PROBING;
        }
    p->deadline = now + a->cfg.request_timeout_ms;
    sv->last = now;
    /* v2 where the server has it: it tests one address, and proves it with our nonce. */
    p->v2 = !a->cfg.disable_v2 &&
            cp2p_peerstore_supports(cp2p_host_peerstore(a->h), &sv->id, CP2P_AUTONAT_V2_DIAL_REQUEST_ID);
    if (p->v2) {
        RAND_bytes((unsigned char *)&p->nonce, sizeof p->nonce);
        a->st.probes_v2++;
    }
    static const char *const v1[] = {CP2P_AUTONAT_V1_PROTOCOL_ID};
    static const char *const v2[] = {CP2P_AUTONAT_V2_DIAL_REQUEST_ID};
    if (cp2p_host_new_stream(a->h, &sv->id, p->v2 ? v2 : v1, 1, probe_opened, p) < 0) {
        free(p);
        a->next_probe = now + a->cfg.retry_ms;
        return;
    }
    p->opening = 1;
    a->probe = p;
    a->st.probes++;
    log_peer(p->v2 ? "probing (v2)" : "probing (v1)", &sv->id, "asking for a dial-back");
    a->next_probe = UINT64_MAX;
}

static int tcp_port(const cp2p_multiaddr_t *ma)
{
    cp2p_multiaddr_component_t c;
    if (cp2p_multiaddr_get(ma, CP2P_MA_TCP, &c) < 0 || c.value_len != 2)
        return -1;
    return c.value[0] << 8 | c.value[1];
}

/* Only what is seen of a connection from our listening port says where
 * others can reach us (an outbound connection's port is ephemeral, unless
 * the port is reused); and only what we do not advertise yet is news. */
static void observed(cp2p_autonat_t *a, const cp2p_event_t *ev)
{
    int local = tcp_port(cp2p_conn_local_addr(ev->conn));
    cp2p_multiaddr_component_t c;
    if (local < 0 || tcp_port(ev->addr) < 0 || !worth_asking(a, ev->addr) ||
        cp2p_multiaddr_get(ev->addr, CP2P_MA_P2P, &c) == 0)
        return;
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    int ours = 0, known = 0;
    if (cp2p_host_listen_addrs(a->h, &addrs, &n) == 0)
        for (size_t i = 0; i < n; i++)
            ours |= tcp_port(&addrs[i]) == local;
    cp2p_multiaddr_array_free(addrs, n);
    if (!ours)
        return;
    if (cp2p_host_addrs(a->h, &addrs, &n) == 0)
        for (size_t i = 0; i < n; i++)
            known |= cp2p_multiaddr_equal(&addrs[i], ev->addr);
    cp2p_multiaddr_array_free(addrs, n);
    if (known)
        return;
    if (an_candidates_observe(&a->cands, ev->addr, ev->peer, now_ms(a)) >= 0 && !a->probe &&
        a->next_probe != UINT64_MAX) {
        uint64_t soon = now_ms(a) + TICK_MS;
        if (soon < a->next_probe)
            a->next_probe = soon;
    }
}

static void on_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_autonat_t *a = arg;
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED) {
        cp2p_peerstore_t *ps = cp2p_host_peerstore(a->h);
        if (!cp2p_peerstore_supports(ps, ev->peer, CP2P_AUTONAT_V1_PROTOCOL_ID) &&
            (a->cfg.disable_v2 || !cp2p_peerstore_supports(ps, ev->peer, CP2P_AUTONAT_V2_DIAL_REQUEST_ID)))
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
    } else if (ev->type == CP2P_EVENT_OBSERVED_ADDR && ev->conn && ev->addr) {
        observed(a, ev);
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
    for (srv2_t *r = a->reqs2, *next; r; r = next) {
        next = r->next;
        if (now < r->deadline)
            continue;
        r->deadline = UINT64_MAX;
        if (r->state == S2_DIALING && r->pending) {
            cp2p_host_cancel(a->dialer, r); /* its callback answers E_DIAL_ERROR */
        } else if (r->state == S2_DIAL_BACK) {
            if (r->pending)
                cp2p_host_cancel(a->dialer, r);
            else
                s2_finish(r, CP2P_AUTONAT2_DIAL_OK); /* the DialBack went; no answer is owed */
        } else {
            log_peer("v2: resetting stream of", &r->peer, "no request or dial data in time");
            s2_free(r, 1);
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
    a->cands.threshold = a->cfg.observed_threshold ? a->cfg.observed_threshold : 4;
    a->next_probe = now_ms(a) + a->cfg.boot_delay_ms;
    int rc = an_throttle_init(&a->thr, a->cfg.global_max, a->cfg.peer_max, a->cfg.reset_ms);
    if (!rc && (rc = an_throttle_init(&a->thr2, CP2P_AUTONAT_V2_DEFAULT_RPM,
                                      CP2P_AUTONAT_V2_DEFAULT_PEER_RPM, 60000)) < 0)
        an_throttle_free(&a->thr);
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
        if (!rc && !a->cfg.disable_v2)
            rc = cp2p_host_set_handler(h, CP2P_AUTONAT_V2_DIAL_REQUEST_ID, on_stream2, a);
        if (rc) {
            cp2p_host_remove_handler(h, CP2P_AUTONAT_V1_PROTOCOL_ID);
            if (a->dialer)
                cp2p_host_close(a->dialer, NULL, NULL);
            an_throttle_free(&a->thr);
            an_throttle_free(&a->thr2);
            free(a);
            return rc;
        }
    }
    if (a->cfg.client && !a->cfg.disable_v2 &&
        (rc = cp2p_host_set_handler(h, CP2P_AUTONAT_V2_DIAL_BACK_ID, on_dial_back, a)) < 0)
        a->cfg.client = 0; /* nothing to undo below but the service */
    if (!rc && a->cfg.client && (rc = cp2p_host_subscribe(h, on_event, a)) < 0)
        cp2p_host_remove_handler(h, CP2P_AUTONAT_V2_DIAL_BACK_ID);
    if (rc) {
        cp2p_host_remove_handler(h, CP2P_AUTONAT_V1_PROTOCOL_ID);
        cp2p_host_remove_handler(h, CP2P_AUTONAT_V2_DIAL_REQUEST_ID);
        if (a->dialer)
            cp2p_host_close(a->dialer, NULL, NULL);
        an_throttle_free(&a->thr);
        an_throttle_free(&a->thr2);
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
    if (a->cfg.service) {
        cp2p_host_remove_handler(a->h, CP2P_AUTONAT_V1_PROTOCOL_ID);
        if (!a->cfg.disable_v2)
            cp2p_host_remove_handler(a->h, CP2P_AUTONAT_V2_DIAL_REQUEST_ID);
    }
    if (a->cfg.client) {
        cp2p_host_unsubscribe(a->h, on_event, a);
        if (!a->cfg.disable_v2)
            cp2p_host_remove_handler(a->h, CP2P_AUTONAT_V2_DIAL_BACK_ID);
    }
    while (a->dbs)
        db_unlink(a->dbs); /* each is freed when its stream ends */
    while (a->reqs2) {
        srv2_t *r = a->reqs2;
        if (r->pending) {
            s2_unlink(r); /* its callback frees it, when the dialer's close cancels it */
            s2_drop_stream(&r->s, &r->buf, 1);
        } else {
            s2_free(r, 1);
        }
    }
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
    an_throttle_free(&a->thr2);
    an_candidates_free(&a->cands);
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, timer_closed);
}

void cp2p_autonat_stats(const cp2p_autonat_t *a, cp2p_autonat_stats_t *out)
{
    *out = a->st;
}
