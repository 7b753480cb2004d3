/* Health and metrics over HTTP/1.1 (RFC 9112, the subset a probe and a
 * Prometheus scraper use) on the host's loop; the body of /metrics is the
 * Prometheus text exposition format 0.0.4. Subsystems above the host give
 * their samples through cp2p_metrics_source_t. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"

#define MAX_METHOD 16
#define MAX_TARGET 2048
#define EVICT_LOG_MS 1000 /* at most one log line a second about evicted clients */

typedef struct client client_t;

struct cp2p_metrics {
    cp2p_host_t *h;
    cp2p_metrics_source_t sources[CP2P_METRICS_MAX_SOURCES];
    uv_tcp_t listener;
    uv_prepare_t pace;  /* before each poll: the turn's accept count starts again */
    unsigned accepted;  /* connections accepted this turn */
    int deferred;       /* one waits to be accepted next turn */
    uint32_t idle_ms, max_clients, max_per_ip, n_clients;
    int limit_loopback;
    uint64_t last_evict_log;
    client_t *clients; /* newest first */
    size_t open; /* the listener and every client not yet freed */
    int stopping;
    void (*done)(void *arg);
    void *done_arg;
    cp2p_metrics_stats_t st;
};

struct client {
    cp2p_metrics_t *m;
    client_t *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sreq;
    int handles, closing, answered, written;
    uint64_t since; /* accepted at (loop time) */
    uint8_t key[16]; /* the address that counts for max_clients_per_ip: IPv4, IPv6 /64 */
    size_t keylen;   /* 0: not counted (loopback, unknown) */
    cp2p_buf_t out;
    size_t len, scanned; /* bytes read; bytes searched for the blank line */
    size_t line;         /* the request line's length with its LF, once read; else 0 */
    char buf[CP2P_METRICS_MAX_REQUEST];
};

static void release(cp2p_metrics_t *m)
{
    if (--m->open || !m->stopping)
        return;
    void (*done)(void *) = m->done;
    void *arg = m->done_arg;
    free(m);
    if (done)
        done(arg);
}

/* ---- the text format ---- */

static int put(cp2p_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put(cp2p_buf_t *b, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    int rc = n < 0 ? CP2P_EINVAL : cp2p_buf_reserve(b, (size_t)n + 1);
    if (!rc) {
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
    return rc;
}

static int metric(cp2p_buf_t *b, const char *name, const char *type, const char *help,
                  uint64_t v)
{
    return put(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
               (unsigned long long)v);
}

/* A label value: backslash, double quote and newline escaped (the format's rule). */
static void label_value(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            out[o++] = '\\';
            out[o++] = *s == '\n' ? 'n' : *s;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = 0;
}

/* One family of the resource manager's samples: scope (and protocol) and
 * resource labels; which: 0 used, 1 limit (none where unlimited), 2 refused. */
static int render_rc_family(cp2p_buf_t *b, const cp2p_rc_scope_stat_t *st, size_t n, int which)
{
    static const char *const names[] = {"cp2p_rcmgr_used", "cp2p_rcmgr_limit",
                                        "cp2p_rcmgr_refused_total"};
    static const char *const helps[] = {
        "Resources in use per resource manager scope (peer: the fullest peer).",
        "Resource limits per resource manager scope (peer: each peer's).",
        "Reservations refused per resource manager scope and resource."};
    int rc = put(b, "# HELP %s %s\n# TYPE %s %s\n", names[which], helps[which], names[which],
                 which == 2 ? "counter" : "gauge");
    for (size_t i = 0; !rc && i < n; i++) {
        static const char *const types[] = {"system", "transient", "peer", "protocol"};
        char proto[512] = "";
        if (st[i].type == CP2P_RC_SCOPE_PROTOCOL) {
            char v[480];
            label_value(v, sizeof v, st[i].name);
            snprintf(proto, sizeof proto, ",protocol=\"%s\"", v);
        }
        for (size_t k = 0; !rc && k < CP2P_RC_NLIMITS; k++) {
            uint64_t lim = cp2p_rc_limit_get(&st[i].limit, k);
            const cp2p_rc_limits_t *src = which == 0 ? &st[i].used : which == 1 ? &st[i].limit
                                                                              : &st[i].refused;
            if (!lim && !cp2p_rc_limit_get(&st[i].used, k) && !cp2p_rc_limit_get(&st[i].refused, k))
                continue; /* a resource this scope neither limits nor uses */
            if (which == 1 && !lim)
                continue;
            rc = put(b, "%s{scope=\"%s\"%s,resource=\"%s\"} %llu\n", names[which],
                     types[st[i].type], proto, cp2p_rc_limit_name(k),
                     (unsigned long long)cp2p_rc_limit_get(src, k));
        }
    }
    return rc;
}

static int render_resources(cp2p_host_t *h, cp2p_buf_t *b)
{
    size_t n = cp2p_host_resources(h, NULL, 0);
    cp2p_rc_scope_stat_t *st = malloc(n * sizeof *st);
    if (!st)
        return CP2P_ENOMEM;
    n = cp2p_host_resources(h, st, n);
    int rc = metric(b, "cp2p_rcmgr_peers", "gauge", "Peers with a resource scope (a connection).",
                    n > 2 ? st[2].n : 0);
    for (int which = 0; !rc && which < 3; which++)
        rc = render_rc_family(b, st, n, which);
    free(st);
    return rc;
}

static size_t listen_addr_count(cp2p_host_t *h)
{
    cp2p_multiaddr_t *addrs;
    size_t n;
    if (cp2p_host_listen_addrs(h, &addrs, &n))
        return 0;
    cp2p_multiaddr_array_free(addrs, n);
    return n;
}

int cp2p_metrics_render(cp2p_host_t *h, const cp2p_metrics_source_t *sources, cp2p_buf_t *b)
{
    if (!h || !b)
        return CP2P_EINVAL;
    char id[CP2P_PEER_ID_STRMAX], agent[512];
    cp2p_peer_id_to_string(cp2p_host_peer_id(h), id, sizeof id);
    label_value(agent, sizeof agent, cp2p_host_agent_version(h));
    cp2p_host_stats_t hs;
    cp2p_host_stats(h, &hs);
    int rc = put(b, "# HELP cp2p_info This host: its peer ID and agent version.\n"
                    "# TYPE cp2p_info gauge\ncp2p_info{peer_id=\"%s\",agent_version=\"%s\"} 1\n",
                 id, agent);
    rc = rc ? rc : metric(b, "cp2p_listen_addresses", "gauge", "Addresses the host listens on.",
                          listen_addr_count(h));
    rc = rc ? rc : metric(b, "cp2p_connections", "gauge",
                          "Connections being upgraded or open.", cp2p_host_conn_count(h));
    rc = rc ? rc : metric(b, "cp2p_connections_opened_total", "counter",
                          "Connections upgraded, inbound and outbound.", hs.conns_opened);
    rc = rc ? rc : metric(b, "cp2p_connections_failed_total", "counter",
                          "Connection upgrades that failed.", hs.conns_failed);
    rc = rc ? rc : metric(b, "cp2p_connections_rejected_total", "counter",
                          "Inbound connections over the connection limit.", hs.conns_rejected);
    rc = rc ? rc : metric(b, "cp2p_connections_errored_total", "counter",
                          "Open connections closed because the remote broke a protocol.",
                          hs.conns_errored);
    rc = rc ? rc : put(b, "# HELP cp2p_streams_opened_total Streams negotiated to a protocol.\n"
                          "# TYPE cp2p_streams_opened_total counter\n"
                          "cp2p_streams_opened_total{direction=\"inbound\"} %llu\n"
                          "cp2p_streams_opened_total{direction=\"outbound\"} %llu\n",
                       (unsigned long long)hs.streams_opened_in,
                       (unsigned long long)hs.streams_opened_out);
    rc = rc ? rc : metric(b, "cp2p_streams", "gauge", "Streams open now.", hs.streams_open);
    rc = rc ? rc : metric(b, "cp2p_streams_bad_total", "counter",
                          "Streams reset because the remote broke the protocol negotiation.",
                          hs.streams_bad);
    rc = rc ? rc : metric(b, "cp2p_stream_bytes_in_total", "counter",
                          "Stream payload bytes received.", hs.bytes_in);
    rc = rc ? rc : metric(b, "cp2p_stream_bytes_out_total", "counter",
                          "Stream payload bytes sent.", hs.bytes_out);
    rc = rc ? rc : metric(b, "cp2p_memory_used_bytes", "gauge",
                          "Memory held for remotes: output queues and stream buffers.",
                          hs.memory_used);
    rc = rc ? rc : metric(b, "cp2p_memory_limit_bytes", "gauge",
                          "The limit of the memory held for remotes.", hs.memory_limit);
    rc = rc ? rc : metric(b, "cp2p_memory_holds_total", "counter",
                          "Times a connection was not read because that memory was full.",
                          hs.memory_holds);
    rc = rc ? rc : metric(b, "cp2p_peerstore_peers", "gauge", "Peers in the peerstore.",
                          cp2p_peerstore_count(cp2p_host_peerstore(h)));
    rc = rc ? rc : metric(b, "cp2p_streams_refused_total", "counter",
                          "Inbound streams refused or reset for a resource limit.",
                          hs.streams_refused);
    rc = rc ? rc : render_resources(h, b);
    for (size_t i = 0; !rc && sources && i < CP2P_METRICS_MAX_SOURCES && sources[i].collect; i++) {
        cp2p_metric_t ms[CP2P_METRICS_MAX_PER_SOURCE];
        size_t n = sources[i].collect(sources[i].subsystem, ms, CP2P_METRICS_MAX_PER_SOURCE);
        for (size_t k = 0; !rc && k < n && k < CP2P_METRICS_MAX_PER_SOURCE; k++)
            rc = metric(b, ms[k].name, ms[k].type, ms[k].help, ms[k].value);
    }
    return rc;
}

static int render_own(cp2p_metrics_t *m, cp2p_buf_t *b)
{
    int rc = metric(b, "cp2p_metrics_requests_total", "counter",
                    "Requests to this endpoint answered 200.", m->st.requests);
    rc = rc ? rc : metric(b, "cp2p_metrics_bad_requests_total", "counter",
                          "Requests to this endpoint answered 4xx.", m->st.bad_requests);
    rc = rc ? rc : metric(b, "cp2p_metrics_timeouts_total", "counter",
                          "Clients of this endpoint closed for being too slow.", m->st.timeouts);
    rc = rc ? rc : metric(b, "cp2p_metrics_evicted_total", "counter",
                          "Clients of this endpoint closed to make room for a newer one.",
                          m->st.evicted);
    return rc;
}

/* ---- clients ---- */

static void client_handle_closed(uv_handle_t *hd)
{
    client_t *c = hd->data;
    if (--c->handles)
        return;
    cp2p_metrics_t *m = c->m;
    cp2p_buf_free(&c->out);
    free(c);
    release(m);
}

static void client_close(client_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    cp2p_metrics_t *m = c->m;
    if (c->prev)
        c->prev->next = c->next;
    else
        m->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    m->n_clients--;
    uv_close((uv_handle_t *)&c->timer, client_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, client_handle_closed);
}

static void drain_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0)
        client_close(s->data);
}

static void shut_down(uv_shutdown_t *r, int status)
{
    if (status < 0)
        client_close(r->data);
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *b);

/* Half-close, then read and drop what the client still sends until it
 * closes too: closing with unread bytes would reset the connection and could
 * cost the client our answer. The idle timer bounds the wait. */
static void written(uv_write_t *w, int status)
{
    client_t *c = w->data;
    c->written = status >= 0;
    c->sreq.data = c;
    if (status < 0 || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shut_down) ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, drain_read))
        client_close(c);
}

static void respond(client_t *c, int code, const char *reason, const char *type,
                    const char *extra_header, const cp2p_buf_t *body, int head_only)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->answered = 1;
    if (code == 200)
        c->m->st.requests++;
    else if (code >= 400 && code < 500)
        c->m->st.bad_requests++;
    size_t n = body ? body->len : 0;
    int rc = put(&c->out,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 code, reason, type, n, extra_header ? extra_header : "");
    if (!rc && n && !head_only)
        rc = cp2p_buf_append(&c->out, body->data, n);
    uv_buf_t ub = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    c->wr.data = c;
    if (rc || uv_write(&c->wr, (uv_stream_t *)&c->tcp, &ub, 1, written))
        client_close(c);
}

static void respond_text(client_t *c, int code, const char *reason, const char *text,
                         const char *extra_header)
{
    cp2p_buf_t body = {0};
    if (cp2p_buf_append(&body, text, strlen(text)) == 0)
        respond(c, code, reason, "text/plain; charset=utf-8", extra_header, &body, 0);
    else
        client_close(c);
    cp2p_buf_free(&body);
}

static int is_token_char(char ch)
{
    return ch >= 'A' && ch <= 'Z';
}

/* The request line: METHOD SP TARGET SP HTTP/1.x. Headers are read (and
 * bounded) but not used: nothing in them changes the answer. */
static void handle_request(client_t *c)
{
    char *p = c->buf;
    if (memchr(p, 0, c->len)) {
        respond_text(c, 400, "Bad Request", "bad request: NUL byte\n", NULL);
        return;
    }
    char *eol = memchr(p, '\n', c->len);
    if (eol > p && eol[-1] == '\r')
        eol--;
    char *method = p, *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1 || sp1 == method || sp1 - method > MAX_METHOD) {
        respond_text(c, 400, "Bad Request", "bad request line\n", NULL);
        return;
    }
    for (char *q = method; q < sp1; q++)
        if (!is_token_char(*q)) {
            respond_text(c, 400, "Bad Request", "bad request method\n", NULL);
            return;
        }
    char *target = sp1 + 1, *sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (!sp2 || *target != '/' || sp2 - target > MAX_TARGET ||
        eol - (sp2 + 1) != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) && memcmp(sp2 + 1, "HTTP/1.0", 8))) {
        respond_text(c, 400, "Bad Request", "bad request line\n", NULL);
        return;
    }
    for (char *q = target; q < sp2; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f) {
            respond_text(c, 400, "Bad Request", "bad request target\n", NULL);
            return;
        }
    size_t mlen = (size_t)(sp1 - method);
    int get = mlen == 3 && !memcmp(method, "GET", 3);
    int head = mlen == 4 && !memcmp(method, "HEAD", 4);
    char *q = memchr(target, '?', (size_t)(sp2 - target));
    size_t plen = (size_t)((q ? q : sp2) - target);
    int healthz = plen == 8 && !memcmp(target, "/healthz", 8);
    int metrics = plen == 8 && !memcmp(target, "/metrics", 8);
    if (!healthz && !metrics) {
        respond_text(c, 404, "Not Found", "not found: try /healthz or /metrics\n", NULL);
        return;
    }
    if (!get && !head) {
        respond_text(c, 405, "Method Not Allowed", "method not allowed: use GET\n",
                     "Allow: GET, HEAD\r\n");
        return;
    }
    cp2p_metrics_t *m = c->m;
    cp2p_buf_t body = {0};
    if (healthz) {
        /* Answering at all shows the loop runs (liveness); an address to be
         * reached at shows the host can serve (readiness). */
        if (listen_addr_count(m->h) == 0) {
            respond_text(c, 503, "Service Unavailable", "not listening\n", NULL);
            return;
        }
        cp2p_buf_append(&body, "ok\n", 3);
        respond(c, 200, "OK", "text/plain; charset=utf-8", NULL, &body, head);
    } else {
        int rc = cp2p_metrics_render(m->h, m->sources, &body);
        if (!rc)
            rc = render_own(m, &body);
        if (rc) {
            cp2p_buf_free(&body);
            client_close(c);
            return;
        }
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, &body, head);
    }
    cp2p_buf_free(&body);
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
    client_t *c = hd->data;
    if (c->answered) /* draining: the request is no longer needed */
        *b = uv_buf_init(c->buf, sizeof c->buf);
    else
        *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

/* The blank line that ends the headers: LF LF or LF CR LF; on the way, the
 * end of the request line (c->line). Each byte is looked at once, however
 * the request is split into reads. */
static int request_complete(client_t *c)
{
    for (size_t i = c->scanned; i < c->len; i++) {
        if (c->buf[i] != '\n')
            continue;
        if (!c->line)
            c->line = i + 1;
        if (i >= 1 && (c->buf[i - 1] == '\n' ||
                       (i >= 2 && c->buf[i - 1] == '\r' && c->buf[i - 2] == '\n')))
            return 1;
    }
    c->scanned = c->len;
    return 0;
}

/* A request line for /healthz: answered without waiting for the headers, so
 * a probe is served as soon as it has said what it wants. handle_request
 * checks the rest of the line. */
static int healthz_line(const client_t *c)
{
    const char *sp = memchr(c->buf, ' ', c->line);
    size_t at = sp ? (size_t)(sp + 1 - c->buf) : c->line;
    return c->line - at > 8 && !memcmp(sp + 1, "/healthz", 8) && (sp[9] == ' ' || sp[9] == '?');
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    client_t *c = s->data;
    if (c->closing || c->answered)
        return;
    if (n < 0) {
        client_close(c); /* EOF or error before a whole request */
        return;
    }
    c->len += (size_t)n;
    size_t had_line = c->line;
    if (request_complete(c) || (!had_line && c->line && healthz_line(c)))
        handle_request(c);
    else if (c->len == sizeof c->buf)
        respond_text(c, 431, "Request Header Fields Too Large", "request too large\n", NULL);
}

static void on_idle(uv_timer_t *t)
{
    client_t *c = t->data;
    if (!c->answered)
        c->m->st.timeouts++;
    client_close(c);
}

/* ---- sharing the slots ---- */

/* The address a client counts under for max_clients_per_ip: IPv4 (also when
 * mapped into IPv6) or IPv6 /64, the block one host usually has; none for
 * loopback unless limit_loopback. */
static void client_key(client_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len))
        return;
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff}, lo6[16] = {[15] = 1};
    const uint8_t *ip;
    size_t n;
    if (ss.ss_family == AF_INET) {
        ip = (const uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr;
        n = 4;
    } else if (ss.ss_family == AF_INET6) {
        ip = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        n = memcmp(ip, mapped, 12) ? 8 : 4;
        if (n == 4)
            ip += 12;
        else if (!memcmp(ip, lo6, 16) && !c->m->limit_loopback)
            return;
    } else {
        return;
    }
    if (n == 4 && ip[0] == 127 && !c->m->limit_loopback)
        return;
    memcpy(c->key, ip, n);
    c->keylen = n;
}

/* The same address for the limits (the clients not counted per IP make one
 * address of their own). */
static int same_addr(const client_t *a, const client_t *b)
{
    return a->keylen == b->keylen && !memcmp(a->key, b->key, a->keylen);
}

/* The clients of a's address other than the newcomer c (a scan of at most
 * max_clients clients). */
static uint32_t count_addr(const cp2p_metrics_t *m, const client_t *a, const client_t *c)
{
    uint32_t n = 0;
    for (const client_t *o = m->clients; o; o = o->next)
        n += o != c && same_addr(o, a);
    return n;
}

/* Who gives way for the newcomer c: a client of c's address when of_addr,
 * else of the address holding the most clients (so a probe from an address
 * of its own is the last to go); of those, one already answered (waiting for
 * its close) before one still sending its request before one being answered,
 * and the oldest of its kind (the one that had the most time). */
static client_t *victim(cp2p_metrics_t *m, const client_t *c, int of_addr)
{
    const client_t *addr = c;
    if (!of_addr) {
        uint32_t most = 0;
        addr = NULL;
        for (const client_t *o = m->clients; o; o = o->next) { /* ties: the older */
            uint32_t n = o == c ? 0 : count_addr(m, o, c);
            if (n && n >= most) {
                most = n;
                addr = o;
            }
        }
        if (!addr)
            return NULL;
    }
    client_t *v = NULL;
    int best = 3;
    for (client_t *o = m->clients; o; o = o->next) { /* newest first */
        if (o == c || !same_addr(o, addr))
            continue;
        int rank = o->written ? 0 : !o->answered ? 1 : 2;
        if (rank <= best) {
            v = o;
            best = rank;
        }
    }
    return v;
}

/* Counted always; logged at most once a second (a flood is one line). */
static void evict(cp2p_metrics_t *m, client_t *v, const char *limit, uint32_t n)
{
    m->st.evicted++;
    uint64_t now = uv_now(m->listener.loop);
    if (!m->last_evict_log || now >= m->last_evict_log + EVICT_LOG_MS) {
        m->last_evict_log = now;
        struct sockaddr_storage ss;
        int len = sizeof ss;
        char addr[64] = "?", what[64];
        int named = !uv_tcp_getpeername(&v->tcp, (struct sockaddr *)&ss, &len);
        if (named && ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, addr, sizeof addr);
        else if (named)
            uv_ip4_name((struct sockaddr_in *)&ss, addr, sizeof addr);
        if (v->answered)
            snprintf(what, sizeof what, "was %sanswered", v->written ? "" : "being ");
        else
            snprintf(what, sizeof what, "had sent %zu byte%s of a request", v->len,
                     v->len == 1 ? "" : "s");
        cp2p_log_info("metrics",
                      "a client of %s gave way to a newer client (limit %u %s): it %s in %llu ms "
                      "(%llu evicted so far)",
                      addr, n, limit, what, (unsigned long long)(now - v->since),
                      (unsigned long long)m->st.evicted);
    }
    client_close(v);
}

/* The newcomer c, already counted: over a limit, an older client goes. */
static void make_room(cp2p_metrics_t *m, client_t *c)
{
    client_t *v = NULL;
    if (c->keylen && count_addr(m, c, c) >= m->max_per_ip && (v = victim(m, c, 1)))
        evict(m, v, "clients from its address", m->max_per_ip);
    else if (m->n_clients > m->max_clients && (v = victim(m, c, 0)))
        evict(m, v, "clients", m->max_clients);
}

static void on_connection(uv_stream_t *server, int status)
{
    cp2p_metrics_t *m = server->data;
    if (status < 0 || m->stopping)
        return;
    if (m->accepted >= CP2P_METRICS_ACCEPTS_PER_TURN) {
        /* Not accepted now: libuv stops watching the listener until
         * uv_accept, which the next turn's on_pace does. */
        m->deferred = 1;
        return;
    }
    m->accepted++;
    client_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->m = m;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    m->open++;
    m->n_clients++;
    c->next = m->clients;
    if (m->clients)
        m->clients->prev = c;
    m->clients = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        client_close(c);
        return;
    }
    c->since = uv_now(server->loop);
    client_key(c);
    make_room(m, c);
    /* The timer bounds the whole exchange, not the gap between bytes: a
     * client sending one byte a second still goes. */
    uv_timer_start(&c->timer, on_idle, m->idle_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb))
        client_close(c);
}

/* ---- the server ---- */

static int parse_listen(const char *s, struct sockaddr_storage *ss)
{
    if (!s)
        return CP2P_EINVAL;
    const char *colon = strrchr(s, ':');
    if (!colon || !colon[1] || strlen(colon + 1) > 5)
        return CP2P_EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return CP2P_EINVAL;
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        if (hl - 2 >= sizeof host)
            return CP2P_EINVAL;
        memcpy(host, s + 1, hl - 2);
        host[hl - 2] = 0;
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) ? CP2P_EINVAL : 0;
    }
    if (hl == 0 || hl >= sizeof host)
        return CP2P_EINVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) ? CP2P_EINVAL : 0;
}

static void listener_closed(uv_handle_t *hd)
{
    release(hd->data);
}

static void on_pace(uv_prepare_t *p)
{
    cp2p_metrics_t *m = p->data;
    m->accepted = 0;
    if (m->deferred && !m->stopping) {
        m->deferred = 0;
        on_connection((uv_stream_t *)&m->listener, 0);
    }
}

int cp2p_metrics_start(cp2p_host_t *h, const cp2p_metrics_config_t *cfg, cp2p_metrics_t **out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (!h || !cfg || !out || parse_listen(cfg->listen, &ss))
        return CP2P_EINVAL;
    cp2p_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return CP2P_ENOMEM;
    m->h = h;
    memcpy(m->sources, cfg->sources, sizeof m->sources);
    m->idle_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : CP2P_METRICS_DEFAULT_IDLE_TIMEOUT_MS;
    m->max_clients = cfg->max_clients ? cfg->max_clients : CP2P_METRICS_DEFAULT_MAX_CLIENTS;
    m->max_per_ip = cfg->max_clients_per_ip ? cfg->max_clients_per_ip
                                            : CP2P_METRICS_DEFAULT_MAX_CLIENTS_PER_IP;
    m->limit_loopback = cfg->limit_loopback;
    uv_tcp_init(cp2p_host_loop(h), &m->listener);
    uv_prepare_init(cp2p_host_loop(h), &m->pace);
    m->listener.data = m->pace.data = m;
    m->open = 2;
    uv_prepare_start(&m->pace, on_pace);
    int r = uv_tcp_bind(&m->listener, (const struct sockaddr *)&ss, 0);
    if (!r)
        r = uv_listen((uv_stream_t *)&m->listener, 64, on_connection);
    if (r) {
        cp2p_log_warn("metrics", "cannot listen on %s: %s", cfg->listen, uv_strerror(r));
        m->stopping = 1;
        uv_close((uv_handle_t *)&m->listener, listener_closed);
        uv_close((uv_handle_t *)&m->pace, listener_closed);
        return CP2P_EIO;
    }
    *out = m;
    return 0;
}

int cp2p_metrics_port(const cp2p_metrics_t *m)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!m || uv_tcp_getsockname(&m->listener, (struct sockaddr *)&ss, &len))
        return CP2P_EINVAL;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void cp2p_metrics_stats(const cp2p_metrics_t *m, cp2p_metrics_stats_t *out)
{
    *out = m->st;
}

void cp2p_metrics_stop(cp2p_metrics_t *m, void (*done)(void *arg), void *arg)
{
    if (!m || m->stopping)
        return;
    m->stopping = 1;
    m->done = done;
    m->done_arg = arg;
    while (m->clients)
        client_close(m->clients);
    uv_close((uv_handle_t *)&m->listener, listener_closed);
    uv_close((uv_handle_t *)&m->pace, listener_closed);
}
