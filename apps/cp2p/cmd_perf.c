/* cp2p perf: the perf protocol (libp2p specs perf/perf.md) with the command
 * line and JSON output of the libp2p perf runner (test-plans perf/README.md):
 * a server with the runner's fixed identity, and a client that reports. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "cli_signals.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/multiaddr.h"
#include "cp2p/perf.h"

#define MAX_STREAMS 256
#define REPORT_MS 1000

typedef struct app app_t;

typedef struct run {
    app_t *app;
    cp2p_perf_t *p;
    int done;
} run_t;

struct app {
    uv_loop_t loop;
    cp2p_host_t *h;
    cp2p_perf_server_t *srv;
    cli_signals_t sig; /* SIGINT, SIGTERM: stop */
    uv_timer_t report, closer;
    int closing, exit_code;
    /* client */
    cp2p_peer_id_t server;
    uint64_t upload, download; /* per stream */
    long streams, finished;
    run_t runs[MAX_STREAMS];
    uint64_t t0, t_last;
    uint64_t last_up, last_down;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cp2p perf --run-server --server-address IP:PORT\n"
            "       cp2p perf --server-address IP:PORT [--transport tcp|ws] --upload-bytes N "
            "--download-bytes M [--streams K]\n"
            "  --run-server          serve /perf/1.0.0 as %s (the perf runner's\n"
            "                        fixed identity); runs until interrupted\n"
            "  --server-address A    where the server listens, or the server to measure\n"
            "  --transport T         tcp (default) or ws (websocket over tcp); the server's too\n"
            "  --upload-bytes N      bytes to send per stream (default 0)\n"
            "  --download-bytes M    bytes to ask back per stream (default 0)\n"
            "  --streams K           K concurrent streams on the one connection (default 1)\n"
            "  --help                this text\n"
            "The client prints one JSON line a second, {\"type\":\"intermediary\",...} with the\n"
            "bytes of that interval, then {\"type\":\"final\",\"timeSeconds\":T,\"uploadBytes\":U,\n"
            "\"downloadBytes\":D}, T counting from before the connection is made.\n",
            CP2P_PERF_SERVER_PEER_ID);
}

static void on_closed_handle(uv_handle_t *hd)
{
}

static void host_closed(void *arg)
{
    app_t *a = arg;
    a->h = NULL;
    cli_signals_close(&a->sig);
    uv_close((uv_handle_t *)&a->report, on_closed_handle);
    uv_close((uv_handle_t *)&a->closer, on_closed_handle);
}

static void close_host(uv_timer_t *t)
{
    app_t *a = t->data;
    for (long i = 0; i < a->streams; i++) {
        cp2p_perf_free(a->runs[i].p);
        a->runs[i].p = NULL;
    }
    cp2p_perf_server_free(a->srv);
    a->srv = NULL;
    cp2p_host_close(a->h, host_closed, a);
}

static void shutdown_app(app_t *a, int code)
{
    if (a->closing)
        return;
    a->closing = 1;
    a->exit_code = code;
    uv_timer_stop(&a->report);
    /* From the loop, never from inside the host callback that brought us here. */
    uv_timer_start(&a->closer, close_host, 0, 0);
}

static void on_signal(void *arg)
{
    shutdown_app(arg, 0);
}

/* IP:PORT or [IP6]:PORT -> /ip4|ip6/IP/tcp/PORT, then /ws for ws. */
static int parse_address(const char *s, int ws, cp2p_multiaddr_t *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return CP2P_EPARSE;
    size_t n = (size_t)(colon - s);
    if (s[0] == '[' && colon[-1] == ']') {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof host)
        return CP2P_EPARSE;
    memcpy(host, s, n);
    host[n] = 0;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port > 65535)
        return CP2P_EPARSE;
    uint8_t bin[16];
    const char *proto = uv_inet_pton(AF_INET, host, bin) == 0    ? "ip4"
                        : uv_inet_pton(AF_INET6, host, bin) == 0 ? "ip6"
                                                                 : NULL;
    if (!proto)
        return CP2P_EPARSE;
    char ma[128];
    snprintf(ma, sizeof ma, "/%s/%s/tcp/%lu%s", proto, host, port, ws ? "/ws" : "");
    return cp2p_multiaddr_parse(ma, out);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return 0;
    *out = strtoull(s, &end, 10);
    return *end == 0;
}

/* ---- client ---- */

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void totals(app_t *a, uint64_t *up, uint64_t *down)
{
    *up = *down = 0;
    for (long i = 0; i < a->streams; i++) {
        uint64_t u = 0, d = 0;
        if (a->runs[i].p)
            cp2p_perf_progress(a->runs[i].p, &u, &d);
        *up += u;
        *down += d;
    }
}

static void print_line(const char *type, double t, uint64_t up, uint64_t down)
{
    printf("{\"type\":\"%s\",\"timeSeconds\":%.9f,\"uploadBytes\":%" PRIu64
           ",\"downloadBytes\":%" PRIu64 "}\n",
           type, t, up, down);
    fflush(stdout);
}

static void on_report(uv_timer_t *t)
{
    app_t *a = t->data;
    uint64_t now = uv_hrtime(), up, down;
    totals(a, &up, &down);
    print_line("intermediary", seconds(now - a->t_last), up - a->last_up, down - a->last_down);
    a->t_last = now;
    a->last_up = up;
    a->last_down = down;
}

static void on_run_done(int status, void *arg)
{
    run_t *r = arg;
    app_t *a = r->app;
    r->done = 1;
    if (a->closing)
        return;
    if (status < 0) {
        fprintf(stderr, "cp2p: perf: perf stream failed: %s\n", cp2p_strerror(status));
        shutdown_app(a, CLI_FAIL);
        return;
    }
    if (++a->finished < a->streams)
        return;
    uint64_t up, down;
    totals(a, &up, &down);
    print_line("final", seconds(uv_hrtime() - a->t0), up, down);
    shutdown_app(a, CLI_OK);
}

static void on_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    app_t *a = arg;
    if (a->closing)
        return;
    if (status < 0) {
        fprintf(stderr, "cp2p: perf: cannot reach the server: %s\n", cp2p_strerror(status));
        shutdown_app(a, CLI_FAIL);
        return;
    }
    for (long i = 0; i < a->streams; i++) {
        a->runs[i].app = a;
        int rc = cp2p_perf_start(h, peer, a->upload, a->download, on_run_done, &a->runs[i],
                                 &a->runs[i].p);
        if (rc < 0) {
            fprintf(stderr, "cp2p: perf: cannot open a perf stream: %s\n", cp2p_strerror(rc));
            shutdown_app(a, CLI_FAIL);
            return;
        }
    }
    uv_timer_start(&a->report, on_report, REPORT_MS, REPORT_MS);
}

/* ---- server ---- */

int cmd_perf(int argc, char **argv)
{
    app_t *a = calloc(1, sizeof *a);
    if (!a)
        return cli_fail("perf", "out of memory");
    a->streams = 1;
    int server = 0, rc;
    const char *address = NULL, *transport = "tcp", *upload = NULL, *download = NULL;
    double streams = 1;
    /* The perf runner's --run-server, spelt --run-server=true|false too, and
     * --run-server true|false by the js implementation: made a plain flag. */
    char *args[64];
    int n = 0;
    for (int i = 0; i < argc && n < 64; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--run-server") || !strcmp(o, "--run-server=true")) {
            int off = i + 1 < argc && !strcmp(argv[i + 1], "false");
            server = !off;
            if (i + 1 < argc && (off || !strcmp(argv[i + 1], "true")))
                i++;
        } else if (strcmp(o, "--run-server=false")) {
            args[n++] = argv[i];
        }
    }
    const cli_opt_t opts[] = {
        CLI_OPTION("--server-address", CLI_STR, &address),
        CLI_OPTION("--transport", CLI_STR, &transport),
        CLI_OPTION("--upload-bytes", CLI_STR, &upload),
        CLI_OPTION("--download-bytes", CLI_STR, &download),
        CLI_NUMBER("--streams", &streams, 1, MAX_STREAMS),
        CLI_END,
    };
    rc = argc > 64 ? cli_usage("perf", "too many arguments")
                   : cli_parse("perf", n, args, opts, usage, NULL);
    if (!rc && strcmp(transport, "tcp") && strcmp(transport, "ws"))
        rc = cli_usage("perf", "transport %s is not supported (tcp or ws)", transport);
    if (!rc && upload && !parse_u64(upload, &a->upload))
        rc = cli_usage("perf", "bad --upload-bytes %s", upload);
    if (!rc && download && !parse_u64(download, &a->download))
        rc = cli_usage("perf", "bad --download-bytes %s", download);
    if (rc) {
        free(a);
        return rc == CLI_HELP ? CLI_OK : rc;
    }
    a->streams = (long)streams;
    cp2p_multiaddr_t ma;
    if (!address) {
        free(a);
        return cli_usage("perf", "give --server-address IP:PORT");
    }
    if (parse_address(address, !strcmp(transport, "ws"), &ma)) {
        free(a);
        return cli_usage("perf", "bad --server-address %s (want IP:PORT)", address);
    }

    /* A benchmark server takes as many connections and streams as it is
     * given, from one peer too: no connection manager trims, and neither a
     * peer's nor the protocol's scope limits counts. */
    cp2p_host_config_t cfg = {.max_connections = 65536, .max_streams_per_conn = 4096,
                              .conn_low_water = 65536, .conn_high_water = 65536};
    cfg.peer_limits = cfg.protocol_limits = (cp2p_rc_limits_t){
        .conns = CP2P_RC_UNLIMITED, .streams_in = CP2P_RC_UNLIMITED,
        .streams_out = CP2P_RC_UNLIMITED};
    cfg.system_limits = (cp2p_rc_limits_t){.streams_in = CP2P_RC_UNLIMITED,
                                           .streams_out = CP2P_RC_UNLIMITED};
    if (server && (rc = cp2p_perf_server_identity(&cfg.identity)) < 0) {
        cp2p_multiaddr_free(&ma);
        free(a);
        return cli_fail("perf", "cannot make the server identity: %s", cp2p_strerror(rc));
    }
    uv_loop_init(&a->loop);
    uv_timer_init(&a->loop, &a->report);
    uv_timer_init(&a->loop, &a->closer);
    a->report.data = a->closer.data = a;
    cli_signals_start(&a->sig, &a->loop, on_signal, a);

    const char *what = "cannot create the host";
    a->t0 = a->t_last = uv_hrtime();
    rc = cp2p_host_new(&a->loop, &cfg, &a->h);
    if (!rc && server) {
        what = "cannot serve perf";
        rc = cp2p_perf_enable(a->h, &a->srv);
        if (!rc) {
            what = "cannot listen";
            rc = cp2p_host_listen(a->h, &ma);
        }
        if (!rc)
            rc = cli_print_listen_addrs(a->h, "");
    } else if (!rc) {
        /* The runner's servers all have the fixed identity: dial it by ID. */
        char dial[CP2P_MULTIADDR_STRMAX + 80];
        cp2p_buf_t s = {0};
        cp2p_multiaddr_t full;
        what = "cannot dial the server";
        rc = cp2p_multiaddr_to_string(&ma, &s);
        if (!rc) {
            snprintf(dial, sizeof dial, "%s/p2p/%s", (char *)s.data, CP2P_PERF_SERVER_PEER_ID);
            rc = cp2p_multiaddr_parse(dial, &full);
        }
        cp2p_buf_free(&s);
        if (!rc) {
            rc = cp2p_host_connect(a->h, &full, on_connected, a);
            cp2p_multiaddr_free(&full);
        }
    }
    cp2p_multiaddr_free(&ma);
    if (rc) {
        fprintf(stderr, "cp2p: perf: %s (%s): %s\n", what, address, cp2p_strerror(rc));
        if (a->h)
            shutdown_app(a, CLI_FAIL);
        else
            host_closed(a);
        a->exit_code = CLI_FAIL;
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    int code = a->exit_code;
    free(a);
    return code;
}
