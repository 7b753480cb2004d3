/* Private networks: the PSK v1 key file in its three encodings and its
 * rejects, the XSalsa20 stream at any split, and hosts: same key connect and
 * carry an echo (noise, tls; 4 MiB), another key or none do not, and
 * LIBP2P_FORCE_PNET=1 refuses a host without a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>

#include "host_harness.h"
#include "cp2p/pnet.h"
#include "transport/pnet.h"

static const char *HEX = "dffb7e3135399a8b1612b2aaca1c36a3a8ac2cd0cca51ceeb2ced87d308cac6d";

static void want_key(const char *text, size_t len, int rc, const uint8_t *key)
{
    uint8_t k[32];
    assert_int_equal(cp2p_pnet_key_parse((const uint8_t *)text, len, k), rc);
    if (!rc && key)
        assert_memory_equal(k, key, 32);
}

static void test_key_file(void **state)
{
    (void)state;
    uint8_t key[32];
    size_t got;
    assert_int_equal(sodium_hex2bin(key, 32, HEX, 64, NULL, &got, NULL), 0);
    char t[256], b64[64];
    sodium_bin2base64(b64, sizeof b64, key, 32, sodium_base64_VARIANT_ORIGINAL);

    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%s\n", HEX);
    want_key(t, strlen(t), 0, key);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\r\n/base16/\r\n%s", HEX); /* CRLF, no last LF */
    want_key(t, strlen(t), 0, key);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base64/\n%s\n", b64);
    want_key(t, strlen(t), 0, key);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base64/\n%.20s\n%s\n", b64, b64 + 20); /* wrapped */
    want_key(t, strlen(t), 0, key);
    size_t n = (size_t)snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/bin/\n");
    memcpy(t + n, key, 32);
    want_key(t, n + 32, 0, key);

    /* rejects */
    snprintf(t, sizeof t, "/key/swarm/psk/2.0.0/\n/base16/\n%s\n", HEX);
    want_key(t, strlen(t), CP2P_EPARSE, NULL);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base32/\n%s\n", HEX);
    want_key(t, strlen(t), CP2P_EPARSE, NULL);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%.62s\n", HEX); /* short */
    want_key(t, strlen(t), CP2P_EPARSE, NULL);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%.63sz\n", HEX); /* not hex */
    want_key(t, strlen(t), CP2P_EPARSE, NULL);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base64/\n%.40s\n", b64);
    want_key(t, strlen(t), CP2P_EPARSE, NULL);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/bin/\nshort");
    want_key(t, strlen(t), CP2P_EPARSE, NULL);
    want_key("/key/swarm/psk/1.0.0/", 21, CP2P_EPARSE, NULL); /* no line end */
    want_key("", 0, CP2P_EPARSE, NULL);

    /* a generated key parses, and two differ */
    cp2p_buf_t a = {0}, b = {0};
    uint8_t ka[32], kb[32];
    assert_int_equal(cp2p_pnet_key_generate(&a), 0);
    assert_int_equal(cp2p_pnet_key_generate(&b), 0);
    assert_int_equal(cp2p_pnet_key_parse(a.data, a.len, ka), 0);
    assert_int_equal(cp2p_pnet_key_parse(b.data, b.len, kb), 0);
    assert_memory_not_equal(ka, kb, 32);
    cp2p_buf_free(&a);
    cp2p_buf_free(&b);

    /* files */
    char path[] = "/tmp/cp2p-psk-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%s\n", HEX);
    assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
    close(fd);
    assert_int_equal(cp2p_pnet_key_load(path, ka), 0);
    assert_memory_equal(ka, key, 32);
    unlink(path);
    assert_int_equal(cp2p_pnet_key_load(path, ka), CP2P_EIO);
}

/* The stream at any split is the one-shot XSalsa20 of the whole. */
static void test_stream_splits(void **state)
{
    (void)state;
    uint8_t key[32], whole[3000], split[3000];
    randombytes_buf(key, sizeof key);
    randombytes_buf(whole, sizeof whole);
    memcpy(split, whole, sizeof split);
    cp2p_pnet_stream_t s;
    cp2p_pnet_stream_init(&s);
    crypto_stream_xsalsa20_xor(whole, whole, sizeof whole, s.nonce, key);
    static const size_t cuts[] = {1, 63, 64, 65, 0, 7, 128, 5, 1000, 3};
    size_t off = 0;
    for (size_t i = 0; off < sizeof split; i++) {
        size_t k = cuts[i % 10];
        if (k > sizeof split - off)
            k = sizeof split - off;
        cp2p_pnet_xor(&s, key, split + off, k);
        off += k;
    }
    assert_int_equal(s.off, sizeof split);
    assert_memory_equal(split, whole, sizeof whole);
    /* two streams' nonces differ */
    cp2p_pnet_stream_t t;
    cp2p_pnet_stream_init(&t);
    assert_memory_not_equal(s.nonce, t.nonce, sizeof s.nonce);
}

static void pair_with_keys(host_pair_t *p, const uint8_t *ka, const uint8_t *kb, const char *sec)
{
    const char *secs[] = {sec};
    cp2p_host_config_t ca = {.psk = ka, .security = secs, .n_security = 1};
    cp2p_host_config_t cb = ca;
    cb.psk = kb;
    world_init(&p->w);
    p->a = host_new(&p->w, &ca);
    p->b = host_new(&p->w, &cb);
    p->b_id = *cp2p_host_peer_id(p->b);
}

static int connect_status(host_pair_t *p)
{
    unsigned port;
    cp2p_multiaddr_t addr;
    host_listen(p->b, &port, &addr);
    int rc = host_connect_wait(&p->w, p->a, &addr);
    cp2p_multiaddr_free(&addr);
    return rc;
}

static void test_same_key_connects(void **state)
{
    (void)state;
    static const char *const secs[] = {"/noise", "/tls/1.0.0"};
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    for (size_t i = 0; i < 2; i++) {
        host_pair_t p;
        pair_with_keys(&p, key, key, secs[i]);
        assert_int_equal(cp2p_host_set_handler(p.b, ECHO_PROTO, echo_handler, NULL), 0);
        assert_int_equal(connect_status(&p), 0);
        echo_roundtrip(&p.w, p.a, &p.b_id, 4 << 20);
        host_pair_end(&p);
    }
}

static void test_other_key_or_none_fails(void **state)
{
    (void)state;
    uint8_t k1[32], k2[32];
    randombytes_buf(k1, sizeof k1);
    randombytes_buf(k2, sizeof k2);
    const uint8_t *pairs[][2] = {{k1, k2}, {k1, NULL}, {NULL, k1}};
    for (size_t i = 0; i < 3; i++) {
        host_pair_t p;
        pair_with_keys(&p, pairs[i][0], pairs[i][1], "/noise");
        assert_int_not_equal(connect_status(&p), 0);
        assert_int_equal(cp2p_host_conn_count(p.a), 0);
        host_pair_end(&p);
    }
}

static void test_force_pnet(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    setenv("LIBP2P_FORCE_PNET", "1", 1);
    cp2p_host_t *h = NULL;
    assert_int_equal(cp2p_host_new(&w.loop, NULL, &h), CP2P_EINVAL);
    uint8_t key[32] = {1};
    cp2p_host_config_t cfg = {.psk = key};
    h = host_new(&w, &cfg);
    unsetenv("LIBP2P_FORCE_PNET");
    host_close_wait(&w, h);
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_stream_splits),
        cmocka_unit_test(test_same_key_connects),
        cmocka_unit_test(test_other_key_or_none_fails),
        cmocka_unit_test(test_force_pnet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
