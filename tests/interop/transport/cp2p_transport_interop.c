/* cp2p's test application for the libp2p transport-interop suite: one program
 * that is the listener or the dialer of a cell, configured by the environment,
 * meeting its peer through Redis, on the public library API only.
 *
 * The contract, as the two runners state it (read from github.com/libp2p/
 * test-plans transport-interop/README.md, src/generator.ts and
 * src/compose-stdout-helper.ts, and github.com/libp2p/unified-testing
 * docs/write-a-transport-test-app.md and transport/lib/run-single-test.sh;
 * the js, python, nim, go and rust apps of both agree with them):
 *
 *   meaning           test-plans (legacy)     unified-testing
 *   transport         transport               TRANSPORT        tcp, ws, wss, quic-v1, webtransport,
 *                                                              webrtc-direct, webrtc
 *   secure channel    security                SECURE_CHANNEL   noise, tls (unset for quic-v1 & co.)
 *   muxer             muxer                   MUXER            yamux, mplex (likewise)
 *   role              is_dialer               IS_DIALER        "true" | "false"
 *   listen IP         ip (default 0.0.0.0)    LISTENER_IP      always 0.0.0.0 in a container: publish
 *                                                              the non-loopback address it expands to
 *   Redis             redis_addr (host:port,  REDIS_ADDR       host:port
 *                     default redis:6379)
 *   timeout (s)       test_timeout_seconds    TEST_TIMEOUT_SECS default 180; js-libp2p reads
 *                                                              test_timeout_secs, so we do too
 *   namespace         -                       TEST_KEY         8 hex digits
 *   verbose logs      -                       DEBUG            "true" | "false"
 *   Redis key         listenerAddr            <TEST_KEY>_listener_multiaddr
 *   dialer's stdout   {"handshakePlusOneRTTMillis": F, "pingRTTMilllis": F}
 *                     (sic, three l's: the runner looks for exactly that key)
 *                                             latency:
 *                                               handshake_plus_one_rtt: F
 *                                               ping_rtt: F
 *                                               unit: ms
 *
 * Flow. Listener: listen on /ip4/<ip>/tcp/0, RPUSH <key> its address with
 * /p2p/<id>, serve ping until it is killed (SIGTERM, SIGINT: exit 0) or the
 * timeout passes (exit 1). Dialer: BLPOP <key> (waiting at most the
 * timeout), take the time, dial, ping once; pingRTT is that ping's round
 * trip, handshakePlusOneRTT the time from before the dial to its pong;
 * print the result (stdout carries nothing else; logs go to stderr), exit
 * 0. Any failure exits non-zero, which both runners count as a failed cell.
 *
 * Which names: either set is read, the unified name first when both are set.
 * TEST_KEY decides the protocol: set, the Redis key is namespaced and the
 * result is YAML (unified-testing); unset, the key is listenerAddr and the
 * result is JSON (test-plans), whatever the case of the other names.
 *
 * Exit codes: 0 done; 1 a runtime failure (Redis unreachable, dial or ping
 * failed, timeout); 2 the environment asks for what cp2p cannot do: a
 * missing or unknown value, or a transport the suite knows but cp2p does
 * not have yet (quic-v1, ws, wss: issue #19; webtransport, webrtc-direct,
 * webrtc). A runner gives such a cell no special status (it is a failure),
 * which is why cp2p's entry in the suite lists tcp only.
 *
 * Redis is spoken with hiredis's blocking calls, before the loop runs (the
 * listener's RPUSH, once it listens: the kernel queues a dial that comes
 * before uv_run) or instead of it (the dialer's BLPOP): no Redis I/O ever
 * competes with the loop. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis.h>
#include <uv.h>

#include <cp2p/error.h>
#include <cp2p/host.h>
#include <cp2p/identify.h>
#include <cp2p/log.h>
#include <cp2p/multiaddr.h>
#include <cp2p/ping.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_CONFIG = 2 };

#define DEFAULT_TIMEOUT_S 180
#define LEGACY_KEY "listenerAddr"

typedef struct config {
    const char *transport, *security, *muxer, *ip, *redis_addr, *test_key;
    const char *security_id, *muxer_id; /* protocol ids for the host */
    int is_dialer;
    int debug;
    long timeout_s;
    char redis_host[256];
    int redis_port;
    char key[128]; /* the Redis list the listener's address goes through */
} config_t;

typedef struct app {
    config_t *cfg;
    uv_loop_t *loop;
    cp2p_host_t *host;
    cp2p_identify_t *id;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    uint64_t t0_ns;   /* before the dial */
    int status;       /* the exit code */
    int stopping;
} app_t;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cp2p-transport-interop: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The first of names (NULL-terminated) that is set and not empty. */
static const char *env_first(const char *const *names, const char **which)
{
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v) {
            if (which)
                *which = *names;
            return v;
        }
    }
    return NULL;
}
#define ENV(which, ...) env_first((const char *const[]){__VA_ARGS__, NULL}, which)

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "true") || !strcmp(v, "1")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(v, "false") || !strcmp(v, "0")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* host:port, [v6]:port or host (port 6379). */
static int parse_redis_addr(config_t *c)
{
    const char *a = c->redis_addr, *colon = strrchr(a, ':');
    const char *host = a, *host_end = colon ? colon : a + strlen(a);
    c->redis_port = 6379;
    if (*a == '[') {
        const char *rb = strchr(a, ']');
        if (!rb || (rb[1] && rb[1] != ':'))
            return -1;
        host = a + 1;
        host_end = rb;
        colon = rb[1] ? rb + 1 : NULL;
    } else if (colon && strchr(a, ':') != colon) {
        colon = NULL; /* a bare IPv6 address */
        host_end = a + strlen(a);
    }
    if (colon) {
        char *end;
        errno = 0;
        long p = strtol(colon + 1, &end, 10);
        if (errno || *end || p < 1 || p > 65535)
            return -1;
        c->redis_port = (int)p;
    }
    size_t n = (size_t)(host_end - host);
    if (n == 0 || n >= sizeof c->redis_host)
        return -1;
    memcpy(c->redis_host, host, n);
    c->redis_host[n] = 0;
    return 0;
}

static int read_config(config_t *c)
{
    const char *name;
    memset(c, 0, sizeof *c);

    c->transport = ENV(&name, "TRANSPORT", "transport");
    if (!c->transport) {
        say("TRANSPORT (or transport) is not set");
        return EXIT_CONFIG;
    }
    static const char *const later[] = {"quic-v1", "quic", "ws", "wss", "webtransport",
                                        "webrtc-direct", "webrtc", NULL};
    if (strcmp(c->transport, "tcp")) {
        for (const char *const *t = later; *t; t++)
            if (!strcmp(c->transport, *t)) {
                say("transport %s is not supported by cp2p yet: tcp only (quic-v1, ws and wss "
                    "come with issue #19)", c->transport);
                return EXIT_CONFIG;
            }
        say("unknown transport '%s' (%s)", c->transport, name);
        return EXIT_CONFIG;
    }

    /* tcp needs both; only the standalone transports (quic-v1 ...) go without. */
    c->security = ENV(&name, "SECURE_CHANNEL", "security");
    if (!c->security) {
        say("SECURE_CHANNEL (or security) is not set: transport tcp needs one");
        return EXIT_CONFIG;
    }
    if (!strcmp(c->security, "noise"))
        c->security_id = "/noise";
    else if (!strcmp(c->security, "tls"))
        c->security_id = "/tls/1.0.0";
    else if (!strcmp(c->security, "plaintext"))
        c->security_id = "/plaintext/2.0.0";
    else {
        say("unknown secure channel '%s' (%s): noise, tls or plaintext", c->security, name);
        return EXIT_CONFIG;
    }
    c->muxer = ENV(&name, "MUXER", "muxer");
    if (!c->muxer) {
        say("MUXER (or muxer) is not set: transport tcp needs one");
        return EXIT_CONFIG;
    }
    if (!strcmp(c->muxer, "yamux"))
        c->muxer_id = "/yamux/1.0.0";
    else if (!strcmp(c->muxer, "mplex"))
        c->muxer_id = "/mplex/6.7.0";
    else {
        say("unknown muxer '%s' (%s): yamux or mplex", c->muxer, name);
        return EXIT_CONFIG;
    }

    const char *v = ENV(&name, "IS_DIALER", "is_dialer");
    if (!v) {
        say("IS_DIALER (or is_dialer) is not set");
        return EXIT_CONFIG;
    }
    if (parse_bool(v, &c->is_dialer)) {
        say("%s=%s: true or false expected", name, v);
        return EXIT_CONFIG;
    }

    c->ip = ENV(NULL, "LISTENER_IP", "ip");
    if (!c->ip)
        c->ip = "0.0.0.0";
    c->redis_addr = ENV(NULL, "REDIS_ADDR", "redis_addr");
    if (!c->redis_addr)
        c->redis_addr = "redis:6379";
    if (parse_redis_addr(c)) {
        say("bad Redis address '%s': host:port expected", c->redis_addr);
        return EXIT_CONFIG;
    }

    c->timeout_s = DEFAULT_TIMEOUT_S;
    v = ENV(&name, "TEST_TIMEOUT_SECS", "test_timeout_seconds", "test_timeout_secs");
    if (v) {
        char *end;
        errno = 0;
        c->timeout_s = strtol(v, &end, 10);
        if (errno || *end || c->timeout_s < 1 || c->timeout_s > 86400) {
            say("%s=%s: a number of seconds (1 to 86400) expected", name, v);
            return EXIT_CONFIG;
        }
    }

    /* Not a reason to fail: under test-plans DEBUG was js-libp2p's
     * (DEBUG=*:yamux:trace), no runner's. */
    v = ENV(&name, "DEBUG", "debug");
    if (v && parse_bool(v, &c->debug))
        say("%s=%s is not true or false: no debug logs", name, v);

    c->test_key = ENV(NULL, "TEST_KEY", "test_key");
    if (c->test_key) {
        if (strlen(c->test_key) > 64 || strpbrk(c->test_key, " \t\r\n")) {
            say("TEST_KEY=%s: a short word expected", c->test_key);
            return EXIT_CONFIG;
        }
        snprintf(c->key, sizeof c->key, "%s_listener_multiaddr", c->test_key);
    } else {
        snprintf(c->key, sizeof c->key, "%s", LEGACY_KEY);
    }
    return EXIT_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Connect to Redis, retrying until the deadline: in a compose file the
 * Redis container may come up after ours. */
static redisContext *redis_open(const config_t *c, double deadline)
{
    int said = 0;
    for (;;) {
        struct timeval tv = {.tv_sec = 2};
        redisContext *r = redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
        if (r && !r->err)
            return r;
        if (!said++)
            say("waiting for Redis at %s: %s", c->redis_addr, r ? r->errstr : "out of memory");
        if (r)
            redisFree(r);
        if (now_s() + 0.2 >= deadline) {
            say("Redis at %s unreachable for %ld s", c->redis_addr, c->timeout_s);
            return NULL;
        }
        struct timespec ts = {.tv_nsec = 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int redis_rpush(const config_t *c, const char *value, double deadline)
{
    redisContext *r = redis_open(c, deadline);
    if (!r)
        return -1;
    struct timeval tv = {.tv_sec = 10};
    redisSetTimeout(r, tv);
    const char *argv[] = {"RPUSH", c->key, value};
    redisReply *rep = redisCommandArgv(r, 3, argv, NULL);
    int rc = 0;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        say("RPUSH %s: %s", c->key, !rep ? r->errstr : rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        rc = -1;
    }
    if (rep)
        freeReplyObject(rep);
    redisFree(r);
    return rc;
}

/* The listener's address, from BLPOP key: into out (NUL-terminated). */
static int redis_blpop(const config_t *c, char *out, size_t cap, double deadline)
{
    redisContext *r = redis_open(c, deadline);
    if (!r)
        return -1;
    long wait_s = (long)(deadline - now_s());
    if (wait_s < 1)
        wait_s = 1;
    /* The socket waits a little longer than Redis does, so that a timeout
     * is Redis's nil reply, not a broken read. */
    struct timeval tv = {.tv_sec = wait_s + 5};
    redisSetTimeout(r, tv);
    char secs[32];
    snprintf(secs, sizeof secs, "%ld", wait_s);
    const char *argv[] = {"BLPOP", c->key, secs};
    redisReply *rep = redisCommandArgv(r, 3, argv, NULL);
    int rc = -1;
    if (!rep)
        say("BLPOP %s: %s", c->key, r->errstr);
    else if (rep->type == REDIS_REPLY_NIL)
        say("BLPOP %s: no listener address within %ld s", c->key, wait_s);
    else if (rep->type == REDIS_REPLY_ERROR)
        say("BLPOP %s: %s", c->key, rep->str);
    else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
             rep->element[1]->type != REDIS_REPLY_STRING || rep->element[1]->len >= cap)
        say("BLPOP %s: unexpected reply", c->key);
    else {
        memcpy(out, rep->element[1]->str, rep->element[1]->len);
        out[rep->element[1]->len] = 0;
        rc = 0;
    }
    if (rep)
        freeReplyObject(rep);
    redisFree(r);
    return rc;
}

/* The end of the run: everything we opened closes; uv_run returns once the
 * host and our handles are gone. */
static void stop(app_t *a, int status)
{
    if (a->stopping++)
        return;
    a->status = status;
    uv_close((uv_handle_t *)&a->timer, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    cp2p_identify_free(a->id);
    a->id = NULL;
    cp2p_host_close(a->host, NULL, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *a = s->data;
    if (!a->cfg->is_dialer)
        say("stopped by signal %d", signum);
    /* The runner kills a listener once its dialer is done: that is success.
     * A dialer stopped before its result has failed. */
    stop(a, a->cfg->is_dialer ? EXIT_FAIL : EXIT_OK);
}

static void on_timeout(uv_timer_t *t)
{
    app_t *a = t->data;
    say("%s: timed out after %ld s", a->cfg->is_dialer ? "dialer" : "listener", a->cfg->timeout_s);
    stop(a, EXIT_FAIL);
}

static void on_pong(int status, uint64_t rtt_us, void *arg)
{
    app_t *a = arg;
    if (a->stopping)
        return;
    if (status < 0) {
        say("ping failed: %s", cp2p_strerror(status));
        stop(a, EXIT_FAIL);
        return;
    }
    double total_ms = (double)(uv_hrtime() - a->t0_ns) / 1e6, rtt_ms = (double)rtt_us / 1e3;
    if (a->cfg->test_key)
        printf("latency:\n  handshake_plus_one_rtt: %.3f\n  ping_rtt: %.3f\n  unit: ms\n",
               total_ms, rtt_ms);
    else
        printf("{\"handshakePlusOneRTTMillis\": %.3f, \"pingRTTMilllis\": %.3f}\n", total_ms, rtt_ms);
    fflush(stdout);
    stop(a, ferror(stdout) ? EXIT_FAIL : EXIT_OK);
}

static void on_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    app_t *a = arg;
    if (a->stopping)
        return;
    if (status < 0) {
        say("dial failed: %s", cp2p_strerror(status));
        stop(a, EXIT_FAIL);
        return;
    }
    int rc = cp2p_ping(h, peer, on_pong, a);
    if (rc < 0) {
        say("cannot ping: %s", cp2p_strerror(rc));
        stop(a, EXIT_FAIL);
    }
}

/* The address to publish: of the listen addresses (0.0.0.0 expanded to the
 * interfaces'), the first of the widest scope: a container's own address
 * rather than loopback, which its peer could not reach. */
static int publish_addr(app_t *a, char *out, size_t cap)
{
    cp2p_multiaddr_t *addrs;
    size_t n, best = 0;
    int rc = cp2p_host_listen_addrs(a->host, &addrs, &n);
    if (rc < 0)
        return rc;
    if (n == 0) {
        free(addrs);
        return CP2P_ENOTFOUND;
    }
    for (size_t i = 1; i < n; i++)
        if (cp2p_multiaddr_ip_scope(&addrs[i]) > cp2p_multiaddr_ip_scope(&addrs[best]))
            best = i;
    cp2p_buf_t s = {0};
    rc = cp2p_multiaddr_to_string(&addrs[best], &s);
    if (rc == 0) {
        char id[CP2P_PEER_ID_STRMAX];
        cp2p_peer_id_to_string(cp2p_host_peer_id(a->host), id, sizeof id);
        if ((size_t)snprintf(out, cap, "%s/p2p/%s", (const char *)s.data, id) >= cap)
            rc = CP2P_EOVERFLOW;
    }
    cp2p_buf_free(&s);
    cp2p_multiaddr_array_free(addrs, n);
    return rc;
}

static int listen_and_publish(app_t *a, double deadline)
{
    char ma_s[128], addr[CP2P_MULTIADDR_STRMAX];
    snprintf(ma_s, sizeof ma_s, strchr(a->cfg->ip, ':') ? "/ip6/%s/tcp/0" : "/ip4/%s/tcp/0",
             a->cfg->ip);
    cp2p_multiaddr_t ma;
    int rc = cp2p_multiaddr_parse(ma_s, &ma);
    if (rc < 0) {
        say("bad listen IP '%s': %s", a->cfg->ip, cp2p_strerror(rc));
        return EXIT_CONFIG;
    }
    rc = cp2p_host_listen(a->host, &ma);
    cp2p_multiaddr_free(&ma);
    if (rc == 0)
        rc = publish_addr(a, addr, sizeof addr);
    if (rc < 0) {
        say("cannot listen on %s: %s", ma_s, cp2p_strerror(rc));
        return EXIT_FAIL;
    }
    say("listening on %s; RPUSH %s", addr, a->cfg->key);
    if (redis_rpush(a->cfg, addr, deadline))
        return EXIT_FAIL;
    return EXIT_OK;
}

static int dial(app_t *a, double deadline)
{
    char addr[CP2P_MULTIADDR_STRMAX];
    if (redis_blpop(a->cfg, addr, sizeof addr, deadline))
        return EXIT_FAIL;
    say("dialing %s (%s, %s)", addr, a->cfg->security, a->cfg->muxer);
    cp2p_multiaddr_t ma;
    int rc = cp2p_multiaddr_parse(addr, &ma);
    if (rc < 0) {
        say("the listener's address '%s' does not parse: %s", addr, cp2p_strerror(rc));
        return EXIT_FAIL;
    }
    a->t0_ns = uv_hrtime();
    rc = cp2p_host_connect(a->host, &ma, on_connected, a);
    cp2p_multiaddr_free(&ma);
    if (rc < 0) {
        say("cannot dial %s: %s", addr, cp2p_strerror(rc));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int main(void)
{
    config_t cfg;
    double start = now_s();
    signal(SIGPIPE, SIG_IGN);
    int rc = read_config(&cfg);
    if (rc)
        return rc;
    double deadline = start + (double)cfg.timeout_s;
    if (cfg.debug && !getenv("CP2P_LOG"))
        cp2p_log_set_level(CP2P_LOG_DEBUG);
    say("%s: transport %s, security %s, muxer %s, Redis %s, key %s, %s result, timeout %ld s",
        cfg.is_dialer ? "dialer" : "listener", cfg.transport, cfg.security, cfg.muxer,
        cfg.redis_addr, cfg.key, cfg.test_key ? "YAML" : "JSON", cfg.timeout_s);

    app_t a = {.cfg = &cfg, .loop = uv_default_loop()};
    cp2p_host_config_t hc = {
        .security = &cfg.security_id,
        .n_security = 1,
        .muxers = &cfg.muxer_id,
        .n_muxers = 1,
        .agent_version = "cp2p-transport-interop/" CP2P_HOST_DEFAULT_AGENT_VERSION,
    };
    rc = cp2p_host_new(a.loop, &hc, &a.host);
    if (rc == 0)
        rc = cp2p_ping_enable(a.host);
    if (rc == 0)
        rc = cp2p_identify_enable(a.host, NULL, &a.id);
    if (rc < 0) {
        say("cannot make the host: %s", cp2p_strerror(rc));
        if (a.host) {
            cp2p_host_close(a.host, NULL, NULL);
            uv_run(a.loop, UV_RUN_DEFAULT);
        }
        return EXIT_FAIL;
    }
    uv_timer_init(a.loop, &a.timer);
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    a.timer.data = a.sigint.data = a.sigterm.data = &a;

    /* The signal handlers come after the blocking Redis exchange: a signal
     * during it ends the process at once (their default), not once BLPOP
     * returns. */
    rc = cfg.is_dialer ? dial(&a, deadline) : listen_and_publish(&a, deadline);
    if (rc) {
        stop(&a, rc);
    } else {
        uv_signal_start(&a.sigint, on_signal, SIGINT);
        uv_signal_start(&a.sigterm, on_signal, SIGTERM);
        double left = deadline - now_s();
        uv_timer_start(&a.timer, on_timeout, left > 0 ? (uint64_t)(left * 1000) : 0, 0);
    }
    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
    return a.status;
}
