/* Unit tests for the cp2pd control protocol codec (src/daemon/control.c),
 * and against a live daemon (src/daemon/daemon.c): CONNMANAGER requests, the
 * control socket's path, mode and address, what STREAM_HANDLER may point at,
 * and the bridged streams' pool apart from the control clients'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/multiaddr.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "host_harness.h"

static cp2p_buf_t packed(const ProtobufCMessage *m)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_daemon_message_append(&b, m), 0);
    return b;
}

/* Decode the one frame in b as a request; returns the decoder's code. */
static int decode(const cp2p_buf_t *b, P2pd__Request **r, const char **why)
{
    const uint8_t *msg;
    size_t len;
    int k = cp2p_daemon_frame(b->data, b->len, &msg, &len);
    assert_int_equal(k, (int)b->len);
    return cp2p_daemon_request_decode(msg, len, r, why);
}

static void test_frame(void **state)
{
    const uint8_t *msg;
    size_t len;
    uint8_t ok[] = {3, 8, 5, 1};
    assert_int_equal(cp2p_daemon_frame(ok, 4, &msg, &len), 4);
    assert_int_equal(len, 3);
    assert_ptr_equal(msg, ok + 1);
    assert_int_equal(cp2p_daemon_frame(ok, 3, &msg, &len), CP2P_ETRUNC);
    assert_int_equal(cp2p_daemon_frame(ok, 0, &msg, &len), CP2P_ETRUNC);
    uint8_t big[] = {0x80, 0x80, 0x80, 0x01}; /* 2 MiB: over the limit */
    assert_int_equal(cp2p_daemon_frame(big, 4, &msg, &len), CP2P_EOVERFLOW);
    uint8_t endless[12];
    memset(endless, 0xff, sizeof endless);
    assert_true(cp2p_daemon_frame(endless, sizeof endless, &msg, &len) < 0);
    assert_int_not_equal(cp2p_daemon_frame(endless, sizeof endless, &msg, &len), CP2P_ETRUNC);
    uint8_t nonminimal[] = {0x81, 0x00};
    assert_int_equal(cp2p_daemon_frame(nonminimal, 2, &msg, &len), CP2P_EPARSE);
}

static void peer_of_fresh_key(cp2p_peer_id_t *id)
{
    cp2p_privkey_t *k;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &k), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), id), 0);
    cp2p_privkey_free(k);
}

static void test_connect(void **state)
{
    cp2p_peer_id_t id;
    peer_of_fresh_key(&id);
    cp2p_multiaddr_t ma;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/4001", &ma), 0);
    ProtobufCBinaryData addr = {.data = ma.bytes, .len = ma.len};
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__ConnectRequest c = P2PD__CONNECT_REQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__CONNECT;
    r.connect = &c;
    c.peer = (ProtobufCBinaryData){.data = id.bytes, .len = id.len};
    c.addrs = &addr;
    c.n_addrs = 1;
    cp2p_buf_t b = packed(&r.base);
    P2pd__Request *out = NULL;
    const char *why = NULL;
    assert_int_equal(decode(&b, &out, &why), 0);
    cp2p_peer_id_t got;
    assert_int_equal(cp2p_daemon_peer(&out->connect->peer, &got), 0);
    assert_true(cp2p_peer_id_equal(&got, &id));
    p2pd__request__free_unpacked(out, NULL);
    cp2p_buf_free(&b);

    /* a bad address, a bad peer, no body: refused with a reason */
    uint8_t junk[] = {0xff, 0xff};
    addr = (ProtobufCBinaryData){.data = junk, .len = 2};
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    assert_string_equal(why, "invalid multiaddr");
    cp2p_buf_free(&b);
    c.peer.len = 3;
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    assert_string_equal(why, "missing or invalid peer ID");
    cp2p_buf_free(&b);
    r.connect = NULL;
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);
    cp2p_multiaddr_free(&ma);
}

static void test_stream_requests(void **state)
{
    cp2p_peer_id_t id;
    peer_of_fresh_key(&id);
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__StreamOpenRequest so = P2PD__STREAM_OPEN_REQUEST__INIT;
    char *protos[CP2P_DAEMON_MAX_PROTOCOLS + 1];
    for (size_t i = 0; i <= CP2P_DAEMON_MAX_PROTOCOLS; i++)
        protos[i] = "/echo/1.0.0";
    r.type = P2PD__REQUEST__TYPE__STREAM_OPEN;
    r.streamopen = &so;
    so.peer = (ProtobufCBinaryData){.data = id.bytes, .len = id.len};
    so.proto = protos;
    P2pd__Request *out = NULL;
    const char *why;
    size_t counts[] = {0, 1, CP2P_DAEMON_MAX_PROTOCOLS, CP2P_DAEMON_MAX_PROTOCOLS + 1};
    int want[] = {CP2P_EPARSE, 0, 0, CP2P_EPARSE};
    for (size_t i = 0; i < 4; i++) {
        so.n_proto = counts[i];
        cp2p_buf_t b = packed(&r.base);
        assert_int_equal(decode(&b, &out, &why), want[i]);
        if (!want[i])
            p2pd__request__free_unpacked(out, NULL);
        cp2p_buf_free(&b);
    }
    char nl[] = "/a\n/b";
    protos[0] = nl;
    so.n_proto = 1;
    cp2p_buf_t b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);

    /* handler addresses the daemon can dial: unix and tcp only */
    P2pd__StreamHandlerRequest sh = P2PD__STREAM_HANDLER_REQUEST__INIT;
    protos[0] = "/echo/1.0.0";
    r = (P2pd__Request)P2PD__REQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__STREAM_HANDLER;
    r.streamhandler = &sh;
    sh.proto = protos;
    sh.n_proto = 1;
    const char *addrs[] = {"/unix/tmp/h.sock", "/ip4/127.0.0.1/tcp/5000", "/ip4/127.0.0.1/udp/5000",
                           "/dns4/example.com/tcp/1"};
    int ok[] = {0, 0, CP2P_EPARSE, CP2P_EPARSE};
    for (size_t i = 0; i < 4; i++) {
        cp2p_multiaddr_t ma;
        assert_int_equal(cp2p_multiaddr_parse(addrs[i], &ma), 0);
        sh.addr = (ProtobufCBinaryData){.data = ma.bytes, .len = ma.len};
        b = packed(&r.base);
        assert_int_equal(decode(&b, &out, &why), ok[i]);
        if (!ok[i])
            p2pd__request__free_unpacked(out, NULL);
        cp2p_buf_free(&b);
        cp2p_multiaddr_free(&ma);
    }
}

static void test_dht_requests(void **state)
{
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__DHTRequest d = P2PD__DHTREQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__DHT;
    r.dht = &d;
    P2pd__Request *out = NULL;
    const char *why;
    uint8_t key[CP2P_DAEMON_MAX_KEY + 1];
    memset(key, 'k', sizeof key);
    d.type = P2PD__DHTREQUEST__TYPE__GET_VALUE;
    cp2p_buf_t b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE); /* no key */
    cp2p_buf_free(&b);
    d.has_key = 1;
    d.key = (ProtobufCBinaryData){.data = key, .len = sizeof key};
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE); /* key too long */
    cp2p_buf_free(&b);
    d.key.len = CP2P_DAEMON_MAX_KEY;
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), 0);
    p2pd__request__free_unpacked(out, NULL);
    cp2p_buf_free(&b);
    d.type = P2PD__DHTREQUEST__TYPE__PUT_VALUE; /* key without value */
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);
    d.type = P2PD__DHTREQUEST__TYPE__PROVIDE; /* a CID is needed, not a key */
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    assert_string_equal(why, "missing or invalid CID");
    cp2p_buf_free(&b);
    d.type = 42;
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);
}

static void test_connmanager_requests(void **state)
{
    cp2p_peer_id_t id;
    peer_of_fresh_key(&id);
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__ConnManagerRequest cm = P2PD__CONN_MANAGER_REQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__CONNMANAGER;
    r.connmanager = &cm;
    P2pd__Request *out = NULL;
    const char *why;
    char tag[] = "important";
    char longtag[CP2P_DAEMON_MAX_TAG_LEN + 2];
    memset(longtag, 'x', sizeof longtag - 1);
    longtag[sizeof longtag - 1] = 0;
    struct {
        int type, has_peer, has_weight;
        char *tag;
        int64_t weight;
        int want;
    } cases[] = {
        {P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER, 1, 1, tag, 5, 0},
        {P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER, 0, 1, tag, 5, CP2P_EPARSE},
        {P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER, 1, 0, tag, 5, 0}, /* no weight: 0, as in p2pd */
        {P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER, 1, 1, NULL, 5, CP2P_EPARSE},
        {P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER, 1, 1, longtag, 5, CP2P_EPARSE},
        {P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER, 1, 1, tag, INT64_C(1) << 40, CP2P_EPARSE},
        {P2PD__CONN_MANAGER_REQUEST__TYPE__UNTAG_PEER, 1, 0, tag, 0, 0},
        {P2PD__CONN_MANAGER_REQUEST__TYPE__UNTAG_PEER, 1, 0, NULL, 0, CP2P_EPARSE},
        {P2PD__CONN_MANAGER_REQUEST__TYPE__UNTAG_PEER, 0, 0, tag, 0, CP2P_EPARSE},
        {P2PD__CONN_MANAGER_REQUEST__TYPE__TRIM, 0, 0, NULL, 0, 0},
        {42, 0, 0, NULL, 0, CP2P_EPARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cm.type = cases[i].type;
        cm.has_peer = cases[i].has_peer;
        cm.peer = (ProtobufCBinaryData){.data = id.bytes, .len = id.len};
        cm.has_weight = cases[i].has_weight;
        cm.weight = cases[i].weight;
        cm.tag = cases[i].tag;
        cp2p_buf_t b = packed(&r.base);
        assert_int_equal(decode(&b, &out, &why), cases[i].want);
        if (!cases[i].want)
            p2pd__request__free_unpacked(out, NULL);
        cp2p_buf_free(&b);
    }
    r.connmanager = NULL;
    cp2p_buf_t b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);
}

/* ---- a live daemon ---- */

enum { OK = P2PD__RESPONSE__TYPE__OK, ERR = P2PD__RESPONSE__TYPE__ERROR };

/* A blocking client socket is enough: the daemon's answers are read while
 * the loop runs. */
static int control_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Send one request and run the loop until its response is in; returns the
 * response type. */
static int control_call(world_t *w, int fd, const P2pd__Request *r)
{
    cp2p_buf_t b = packed(&r->base);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    cp2p_buf_free(&b);
    uint8_t in[4096];
    size_t n = 0;
    const uint8_t *msg;
    size_t len;
    for (int tries = 0; cp2p_daemon_frame(in, n, &msg, &len) == CP2P_ETRUNC; tries++) {
        assert_true(tries < 1000);
        uv_run(&w->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) == 1) {
            ssize_t k = read(fd, in + n, sizeof in - n);
            assert_true(k > 0);
            n += (size_t)k;
        }
    }
    P2pd__Response *resp = p2pd__response__unpack(NULL, len, msg);
    assert_non_null(resp);
    int type = resp->type;
    p2pd__response__free_unpacked(resp, NULL);
    return type;
}

static int cm_call(world_t *w, int fd, int type, const cp2p_peer_id_t *peer, char *tag,
                   int64_t weight)
{
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__ConnManagerRequest cm = P2PD__CONN_MANAGER_REQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__CONNMANAGER;
    r.connmanager = &cm;
    cm.type = type;
    if (peer) {
        cm.has_peer = 1;
        cm.peer = (ProtobufCBinaryData){.data = (uint8_t *)peer->bytes, .len = peer->len};
    }
    cm.tag = tag;
    cm.has_weight = type == P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER;
    cm.weight = weight;
    return control_call(w, fd, &r);
}

static void test_connmanager_live(void **state)
{
    world_t w;
    world_init(&w);
    /* Trim keeps one connection; nothing trims by itself with two. */
    cp2p_host_config_t cfg = {.conn_low_water = 1, .conn_high_water = 8};
    cp2p_host_t *a = host_new(&w, &cfg), *b = host_new(&w, NULL), *c = host_new(&w, NULL);
    cp2p_multiaddr_t addr_b, addr_c;
    unsigned port;
    host_listen(b, &port, &addr_b);
    host_listen(c, &port, &addr_c);
    assert_int_equal(host_connect_wait(&w, a, &addr_b), 0);
    assert_int_equal(host_connect_wait(&w, a, &addr_c), 0);
    const cp2p_peer_id_t *pb = cp2p_host_peer_id(b), *pc = cp2p_host_peer_id(c);

    char path[64], control[80];
    snprintf(path, sizeof path, "/tmp/cp2p-test-cm-%d.sock", (int)getpid());
    snprintf(control, sizeof control, "/unix%s", path);
    cp2p_daemon_config_t dc = {.control = control};
    cp2p_daemon_t *d;
    assert_int_equal(cp2p_daemon_new(a, &dc, &d), 0);
    int fd = control_connect(path);

    enum {
        TAG = P2PD__CONN_MANAGER_REQUEST__TYPE__TAG_PEER,
        UNTAG = P2PD__CONN_MANAGER_REQUEST__TYPE__UNTAG_PEER,
        TRIM = P2PD__CONN_MANAGER_REQUEST__TYPE__TRIM
    };
    char keep[] = "keep", gone[] = "gone";
    assert_int_equal(cm_call(&w, fd, TAG, pb, keep, 10), OK);
    assert_int_equal(cm_call(&w, fd, TAG, pc, gone, 50), OK);
    assert_int_equal(cm_call(&w, fd, UNTAG, pc, gone, 0), OK);
    assert_int_equal(cm_call(&w, fd, TAG, pb, NULL, 1), ERR);   /* no tag */
    assert_int_equal(cm_call(&w, fd, UNTAG, NULL, keep, 0), ERR); /* no peer */
    assert_int_equal(cm_call(&w, fd, TRIM, NULL, NULL, 0), OK);
    assert_null(cp2p_host_conn_to(a, pc));
    assert_non_null(cp2p_host_conn_to(a, pb));
    assert_int_equal(cp2p_host_conn_count(a), 1);

    close(fd);
    int done = 0;
    cp2p_daemon_close(d, set_flag, &done);
    world_run_until(&w, &done, 10000);
    host_close_wait(&w, a);
    host_close_wait(&w, b);
    host_close_wait(&w, c);
    cp2p_multiaddr_free(&addr_b);
    cp2p_multiaddr_free(&addr_c);
    world_end(&w);
}

/* ---- the control socket: path, mode, address (issue #14) ---- */

static int daemon_try(world_t *w, cp2p_host_t *h, cp2p_daemon_config_t *dc, cp2p_daemon_t **d,
                      char *err, size_t cap)
{
    err[0] = 0;
    dc->error = err;
    dc->error_cap = cap;
    int rc = cp2p_daemon_new(h, dc, d);
    if (rc < 0)
        world_run_for(w, 20); /* its listener closes on a later turn */
    return rc;
}

static void daemon_close_wait(world_t *w, cp2p_daemon_t *d)
{
    int done = 0;
    cp2p_daemon_close(d, set_flag, &done);
    world_run_until(w, &done, 10000);
}

static void test_control_socket(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *h = host_new(&w, NULL);
    char path[64], control[80], err[512];
    snprintf(path, sizeof path, "/tmp/cp2p-test-ctl-%d.sock", (int)getpid());
    snprintf(control, sizeof control, "/unix%s", path);
    unlink(path);

    /* 0600 under umask 000, or the mode asked for */
    mode_t old = umask(0);
    cp2p_daemon_config_t dc = {.control = control};
    cp2p_daemon_t *d, *d2;
    assert_int_equal(daemon_try(&w, h, &dc, &d, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a live socket at the path: refused, and left alone */
    assert_int_equal(daemon_try(&w, h, &dc, &d2, err, sizeof err), CP2P_EEXIST);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "in use"));
    int fd = control_connect(path);
    close(fd);
    daemon_close_wait(&w, d);
    assert_int_equal(lstat(path, &st), -1); /* removed on close */
    dc.unix_mode = 0660;
    assert_int_equal(daemon_try(&w, h, &dc, &d, err, sizeof err), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    daemon_close_wait(&w, d);
    umask(old);
    dc.unix_mode = 0;

    /* a stale socket (nobody listens) is replaced */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    close(s);
    assert_int_equal(daemon_try(&w, h, &dc, &d, err, sizeof err), 0);
    close(control_connect(path));
    daemon_close_wait(&w, d);

    /* a regular file, or a symlink, is not replaced */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("keep", f);
    fclose(f);
    assert_int_equal(daemon_try(&w, h, &dc, &d, err, sizeof err), CP2P_EEXIST);
    assert_non_null(strstr(err, "not a socket"));
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_size, 4);
    unlink(path);
    assert_int_equal(symlink("/nonexistent", path), 0);
    assert_int_equal(daemon_try(&w, h, &dc, &d, err, sizeof err), CP2P_EEXIST);
    unlink(path);

    /* TCP: loopback only, unless allow_remote */
    assert_int_equal(cp2p_daemon_control_is_local("/ip4/127.0.0.1/tcp/0"), 1);
    assert_int_equal(cp2p_daemon_control_is_local("/ip4/127.9.9.9/tcp/0"), 1);
    assert_int_equal(cp2p_daemon_control_is_local("/ip6/::1/tcp/0"), 1);
    assert_int_equal(cp2p_daemon_control_is_local("/ip6/::ffff:127.0.0.1/tcp/0"), 1);
    assert_int_equal(cp2p_daemon_control_is_local("/unix/tmp/x.sock"), 1);
    assert_int_equal(cp2p_daemon_control_is_local("/ip4/0.0.0.0/tcp/0"), 0);
    assert_int_equal(cp2p_daemon_control_is_local("/ip6/::/tcp/0"), 0);
    assert_int_equal(cp2p_daemon_control_is_local("/ip4/10.1.2.3/tcp/5"), 0);
    assert_true(cp2p_daemon_control_is_local("/ip4/127.0.0.1/udp/5") < 0);
    assert_true(cp2p_daemon_control_is_local("/dns4/localhost/tcp/5") < 0);
    cp2p_daemon_config_t tc = {.control = "/ip4/0.0.0.0/tcp/0"};
    assert_int_equal(daemon_try(&w, h, &tc, &d, err, sizeof err), CP2P_EINVAL);
    assert_non_null(strstr(err, "not loopback"));
    tc.allow_remote = 1;
    capture_t cap;
    capture_start(&cap);
    assert_int_equal(daemon_try(&w, h, &tc, &d, err, sizeof err), 0);
    char *logged = capture_end(&cap);
    assert_non_null(strstr(logged, "is not loopback"));
    free(logged);
    daemon_close_wait(&w, d);

    host_close_wait(&w, h);
    world_end(&w);
}

/* ---- STREAM_HANDLER addresses ---- */

static int handler_call(world_t *w, int fd, const char *addr, char *proto)
{
    cp2p_multiaddr_t ma;
    assert_int_equal(cp2p_multiaddr_parse(addr, &ma), 0);
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__StreamHandlerRequest sh = P2PD__STREAM_HANDLER_REQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__STREAM_HANDLER;
    r.streamhandler = &sh;
    sh.addr = (ProtobufCBinaryData){.data = ma.bytes, .len = ma.len};
    sh.proto = &proto;
    sh.n_proto = 1;
    int type = control_call(w, fd, &r);
    cp2p_multiaddr_free(&ma);
    return type;
}

static int unix_listener(const char *path)
{
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 64), 0);
    return fd;
}

static void test_handler_addresses(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *h = host_new(&w, NULL);
    char path[64], control[80], hpath[64], link[64], file[64], a[128];
    int pid = (int)getpid();
    snprintf(path, sizeof path, "/tmp/cp2p-test-sh-%d.sock", pid);
    snprintf(control, sizeof control, "/unix%s", path);
    snprintf(hpath, sizeof hpath, "/tmp/cp2p-test-sh-%d-h.sock", pid);
    snprintf(link, sizeof link, "/tmp/cp2p-test-sh-%d-l.sock", pid);
    snprintf(file, sizeof file, "/tmp/cp2p-test-sh-%d-f", pid);
    unlink(path);
    cp2p_daemon_config_t dc = {.control = control};
    cp2p_daemon_t *d;
    assert_int_equal(cp2p_daemon_new(h, &dc, &d), 0);
    int fd = control_connect(path);
    int hl = unix_listener(hpath);
    unlink(link);
    assert_int_equal(symlink(path, link), 0);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);

    char proto[] = "/p/1.0.0";
    struct { const char *prefix, *arg; int want; } cases[] = {
        {"/unix", hpath, OK},
        {"/ip4/127.0.0.1/tcp/", "4001", OK},   /* @libp2p/daemon-client's way */
        {"/ip6/::1/tcp/", "4001", OK},
        {"/unix", path, ERR},                  /* the control socket */
        {"/unix", link, ERR},                  /* through a symlink */
        {"/unix", file, ERR},                  /* not a socket */
        {"/unix", "/tmp/cp2p-no-such.sock", ERR},
        {"/ip4/192.0.2.1/tcp/", "80", ERR},    /* not loopback */
        {"/ip4/0.0.0.0/tcp/", "4001", ERR},
        {"/ip6/::/tcp/", "4001", ERR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(a, sizeof a, "%s%s", cases[i].prefix, cases[i].arg);
        int got = handler_call(&w, fd, a, proto);
        if (got != cases[i].want)
            fail_msg("STREAM_HANDLER at %s: %d, not %d", a, got, cases[i].want);
    }
    cp2p_daemon_stats_t st;
    cp2p_daemon_stats(d, &st);
    assert_int_equal(st.handlers_refused, 7);
    close(fd);
    daemon_close_wait(&w, d);

    /* a loopback TCP control socket: loopback TCP only, never its own port */
    cp2p_daemon_config_t tc = {.control = "/ip4/127.0.0.1/tcp/0"};
    assert_int_equal(cp2p_daemon_new(h, &tc, &d), 0);
    cp2p_multiaddr_t ctl;
    assert_int_equal(cp2p_daemon_control_addr(d, &ctl), 0);
    cp2p_multiaddr_component_t pc;
    assert_int_equal(cp2p_multiaddr_get(&ctl, CP2P_MA_TCP, &pc), 0);
    unsigned port = (unsigned)(pc.value[0] << 8 | pc.value[1]);
    cp2p_multiaddr_free(&ctl);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    char own[64], own2[64];
    snprintf(own, sizeof own, "/ip4/127.0.0.1/tcp/%u", port);
    snprintf(own2, sizeof own2, "/ip4/127.0.0.2/tcp/%u", port);
    snprintf(a, sizeof a, "/unix%s", hpath);
    assert_int_equal(handler_call(&w, fd, "/ip4/127.0.0.1/tcp/4001", proto), OK);
    assert_int_equal(handler_call(&w, fd, own, proto), ERR);
    assert_int_equal(handler_call(&w, fd, own2, proto), ERR);
    assert_int_equal(handler_call(&w, fd, a, proto), ERR);
    assert_int_equal(handler_call(&w, fd, "/ip4/192.0.2.1/tcp/80", proto), ERR);
    close(fd);
    daemon_close_wait(&w, d);

    close(hl);
    unlink(hpath);
    unlink(link);
    unlink(file);
    host_close_wait(&w, h);
    world_end(&w);
}

/* ---- the bridged pool: remote peers' streams apart from control clients ---- */

typedef struct opener {
    int opened, failed;
    cp2p_stream_t *s[16];
    size_t n;
} opener_t;

static void on_opened(int status, cp2p_stream_t *s, void *arg)
{
    opener_t *o = arg;
    if (status < 0) {
        o->failed++;
        return;
    }
    o->opened++;
    o->s[o->n++] = s;
}

static void open_streams(world_t *w, cp2p_host_t *from, const cp2p_peer_id_t *to, opener_t *o,
                         int n)
{
    const char *protos[] = {"/pool/1.0.0"};
    int want = o->opened + o->failed + n;
    for (int i = 0; i < n; i++)
        assert_int_equal(cp2p_host_new_stream(from, to, protos, 1, on_opened, o), 0);
    for (int i = 0; i < 500 && o->opened + o->failed < want; i++)
        world_run_for(w, 10);
    assert_int_equal(o->opened + o->failed, want);
    world_run_for(w, 100); /* the daemon takes them or resets them */
}

static void test_bridged_pool(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *h = host_new(&w, NULL), *p1 = host_new(&w, NULL), *p2 = host_new(&w, NULL);
    unsigned port;
    cp2p_multiaddr_t addr;
    host_listen(h, &port, &addr);
    assert_int_equal(host_connect_wait(&w, p1, &addr), 0);
    assert_int_equal(host_connect_wait(&w, p2, &addr), 0);
    char path[64], control[80], hpath[64], a[96];
    snprintf(path, sizeof path, "/tmp/cp2p-test-pool-%d.sock", (int)getpid());
    snprintf(control, sizeof control, "/unix%s", path);
    snprintf(hpath, sizeof hpath, "/tmp/cp2p-test-pool-%d-h.sock", (int)getpid());
    unlink(path);
    cp2p_daemon_config_t dc = {.control = control, .max_clients = 2, .max_streams = 4,
                               .max_streams_per_peer = 3};
    cp2p_daemon_t *d;
    assert_int_equal(cp2p_daemon_new(h, &dc, &d), 0);
    int hl = unix_listener(hpath);
    int fd = control_connect(path);
    snprintf(a, sizeof a, "/unix%s", hpath);
    char proto[] = "/pool/1.0.0";
    assert_int_equal(handler_call(&w, fd, a, proto), OK);

    /* one peer gets its share, a second one the rest of the pool */
    opener_t o1 = {0}, o2 = {0};
    open_streams(&w, p1, cp2p_host_peer_id(h), &o1, 5);
    cp2p_daemon_stats_t st;
    cp2p_daemon_stats(d, &st);
    assert_int_equal(st.open_streams, 3);
    assert_int_equal(st.streams_rejected, 2);
    open_streams(&w, p2, cp2p_host_peer_id(h), &o2, 3);
    cp2p_daemon_stats(d, &st);
    assert_int_equal(st.open_streams, 4);
    assert_int_equal(st.streams_rejected, 4);
    /* the control pool is untouched: a second client, then a third refused */
    int fd2 = control_connect(path);
    P2pd__Request id = P2PD__REQUEST__INIT;
    id.type = P2PD__REQUEST__TYPE__IDENTIFY;
    assert_int_equal(control_call(&w, fd2, &id), OK);
    assert_int_equal(control_call(&w, fd, &id), OK);
    int fd3 = control_connect(path);
    struct pollfd pf = {.fd = fd3, .events = POLLIN};
    for (int i = 0; i < 200 && poll(&pf, 1, 0) == 0; i++)
        world_run_for(&w, 10);
    char c;
    assert_int_equal(read(fd3, &c, 1), 0); /* accepted and closed */
    cp2p_daemon_stats(d, &st);
    assert_int_equal(st.open_clients, 2);
    assert_int_equal(st.clients_rejected, 1);
    close(fd3);

    /* streams given back make room again */
    for (size_t i = 0; i < o1.n; i++) {
        cp2p_stream_reset(o1.s[i]);
        cp2p_stream_unref(o1.s[i]);
    }
    world_run_for(&w, 200);
    cp2p_daemon_stats(d, &st);
    assert_int_equal(st.open_streams, 1);
    opener_t o3 = {0};
    open_streams(&w, p1, cp2p_host_peer_id(h), &o3, 1);
    cp2p_daemon_stats(d, &st);
    assert_int_equal(st.open_streams, 2);

    for (size_t i = 0; i < o2.n; i++)
        cp2p_stream_unref(o2.s[i]);
    for (size_t i = 0; i < o3.n; i++)
        cp2p_stream_unref(o3.s[i]);
    close(fd);
    close(fd2);
    daemon_close_wait(&w, d);
    close(hl);
    unlink(hpath);
    host_close_wait(&w, p1);
    host_close_wait(&w, p2);
    host_close_wait(&w, h);
    cp2p_multiaddr_free(&addr);
    world_end(&w);
}

static void test_status(void **state)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_daemon_status_append(&b, "boom"), 0);
    const uint8_t *msg;
    size_t len;
    assert_int_equal(cp2p_daemon_frame(b.data, b.len, &msg, &len), (int)b.len);
    P2pd__Response *r = p2pd__response__unpack(NULL, len, msg);
    assert_non_null(r);
    assert_int_equal(r->type, P2PD__RESPONSE__TYPE__ERROR);
    assert_string_equal(r->error->msg, "boom");
    p2pd__response__free_unpacked(r, NULL);
    cp2p_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_stream_requests),
        cmocka_unit_test(test_dht_requests),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_connmanager_requests),
        cmocka_unit_test(test_connmanager_live),
        cmocka_unit_test(test_control_socket),
        cmocka_unit_test(test_handler_addresses),
        cmocka_unit_test(test_bridged_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
