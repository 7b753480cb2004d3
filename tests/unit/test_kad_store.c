/* Kademlia stores: the same behaviour from the memory and LMDB backends,
 * expiry, limits, persistence across restarts and kill -9, bad directories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "kad/kad_store.h"

#define T0 1700000000000ULL /* wall-clock ms */
#define HOUR (3600ULL * 1000)

static cp2p_peer_id_t make_id(uint8_t seed)
{
    cp2p_peer_id_t id = {.len = 34, .bytes = {0x12, 0x20}};
    memset(id.bytes + 2, seed, 32);
    return id;
}

static char *temp_dir(void)
{
    char tmpl[] = "/tmp/cp2p-kad-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void remove_dir(char *dir)
{
    const char *names[] = {"data.mdb", "lock.mdb", "junk.txt"};
    char path[512];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    free(dir);
}

static void check_records(cp2p_kad_store_t *s)
{
    const uint8_t *k = (const uint8_t *)"/v/hello";
    cp2p_buf_t b = {0};
    uint64_t rx = 0;
    assert_int_equal(cp2p_kad_store_get_record(s, k, 8, T0, &b, NULL), CP2P_ENOTFOUND);
    assert_int_equal(cp2p_kad_store_put_record(s, k, 8, (const uint8_t *)"one", 3, T0), 0);
    assert_int_equal(cp2p_kad_store_put_record(s, k, 8, (const uint8_t *)"two!", 4, T0 + 10), 0);
    assert_int_equal(cp2p_kad_store_get_record(s, k, 8, T0 + 20, &b, &rx), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "two!", 4);
    assert_true(rx == T0 + 10);
    assert_int_equal(cp2p_kad_store_record_count(s), 1);
    /* An empty value is a value. */
    assert_int_equal(cp2p_kad_store_put_record(s, (const uint8_t *)"e", 1, NULL, 0, T0), 0);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_kad_store_get_record(s, (const uint8_t *)"e", 1, T0, &b, NULL), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(cp2p_kad_store_remove_record(s, (const uint8_t *)"e", 1), 0);
    assert_int_equal(cp2p_kad_store_remove_record(s, (const uint8_t *)"e", 1), CP2P_ENOTFOUND);

    /* The record TTL is 36 h from the last put. */
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_kad_store_get_record(s, k, 8, T0 + 10 + 36 * HOUR - 1, &b, NULL), 0);
    assert_int_equal(cp2p_kad_store_get_record(s, k, 8, T0 + 10 + 36 * HOUR, &b, NULL),
                     CP2P_ENOTFOUND);

    static uint8_t big[CP2P_KAD_MAX_VALUE + 1];
    assert_int_equal(cp2p_kad_store_put_record(s, k, 8, big, sizeof big, T0), CP2P_EOVERFLOW);
    assert_int_equal(cp2p_kad_store_put_record(s, big, CP2P_KAD_MAX_KEY + 1, big, 1, T0),
                     CP2P_EOVERFLOW);
    assert_int_equal(cp2p_kad_store_put_record(s, NULL, 0, big, 1, T0), CP2P_EINVAL);
    cp2p_buf_free(&b);
}

static void check_providers(cp2p_kad_store_t *s)
{
    const uint8_t *k = (const uint8_t *)"\x12\x20-cid-";
    cp2p_peer_id_t a = make_id(1), b = make_id(2), out[8];
    assert_int_equal(cp2p_kad_store_get_providers(s, k, 7, T0, out, 8), 0);
    assert_int_equal(cp2p_kad_store_add_provider(s, k, 7, &a, T0), 0);
    assert_int_equal(cp2p_kad_store_add_provider(s, k, 7, &b, T0 + HOUR), 0);
    assert_int_equal(cp2p_kad_store_add_provider(s, k, 7, &a, T0 + 2 * HOUR), 0); /* renew */
    assert_int_equal(cp2p_kad_store_provider_count(s), 2);
    assert_int_equal(cp2p_kad_store_get_providers(s, k, 7, T0, out, 8), 2);
    assert_int_equal(cp2p_kad_store_get_providers(s, k, 7, T0, out, 1), 1);
    /* Another key that is a prefix of this one shares nothing. */
    assert_int_equal(cp2p_kad_store_get_providers(s, k, 6, T0, out, 8), 0);
    /* b expires 48 h after its add, a 48 h after its renewal. */
    assert_int_equal(cp2p_kad_store_get_providers(s, k, 7, T0 + 49 * HOUR, out, 8), 1);
    assert_true(cp2p_peer_id_equal(&out[0], &a));
    assert_int_equal(cp2p_kad_store_get_providers(s, k, 7, T0 + 50 * HOUR, out, 8), 0);
}

static void check_expire(cp2p_kad_store_t *s)
{
    size_t recs = cp2p_kad_store_record_count(s), provs = cp2p_kad_store_provider_count(s);
    assert_true(recs > 0 && provs > 0);
    assert_int_equal(cp2p_kad_store_expire(s, T0), 0);
    assert_int_equal(cp2p_kad_store_expire(s, T0 + 100 * HOUR), (int)(recs + provs));
    assert_int_equal(cp2p_kad_store_record_count(s), 0);
    assert_int_equal(cp2p_kad_store_provider_count(s), 0);
}

/* The saved table keeps each peer's addresses, at most CP2P_KAD_SAVED_ADDRS. */
static void check_peers(cp2p_kad_store_t *s)
{
    cp2p_kad_saved_peer_t in[3] = {{.id = make_id(5)}, {.id = make_id(6)}, {.id = make_id(7)}},
                          out[4];
    cp2p_multiaddr_t a[CP2P_KAD_SAVED_ADDRS + 2], back[CP2P_KAD_SAVED_ADDRS + 2];
    for (int i = 0; i < CP2P_KAD_SAVED_ADDRS + 2; i++) {
        char text[64];
        snprintf(text, sizeof text, "/ip4/10.0.0.%d/tcp/%d", i + 1, 4000 + i);
        assert_int_equal(cp2p_multiaddr_parse(text, &a[i]), 0);
    }
    cp2p_kad_saved_peer_set_addrs(&in[2], a, CP2P_KAD_SAVED_ADDRS + 2);
    assert_int_equal(cp2p_kad_store_load_peers(s, out, 4), 0);
    assert_int_equal(cp2p_kad_store_save_peers(s, in, 3), 0);
    assert_int_equal(cp2p_kad_store_save_peers(s, in + 1, 2), 0); /* replaces */
    assert_int_equal(cp2p_kad_store_load_peers(s, out, 4), 2);
    int i7 = cp2p_peer_id_equal(&out[1].id, &in[2].id);
    assert_true(cp2p_peer_id_equal(&out[!i7].id, &in[1].id));
    assert_true(cp2p_peer_id_equal(&out[i7].id, &in[2].id));
    assert_int_equal(cp2p_kad_saved_peer_addrs(&out[!i7], back, CP2P_KAD_SAVED_ADDRS + 2), 0);
    assert_int_equal(cp2p_kad_saved_peer_addrs(&out[i7], back, CP2P_KAD_SAVED_ADDRS + 2),
                     CP2P_KAD_SAVED_ADDRS);
    for (int i = 0; i < CP2P_KAD_SAVED_ADDRS; i++) {
        assert_int_equal(back[i].len, a[i].len);
        assert_memory_equal(back[i].bytes, a[i].bytes, a[i].len);
        cp2p_multiaddr_free(&back[i]);
    }
    /* Damaged addresses end the list; the peer stays. */
    out[i7].addrs[0] = 200;
    assert_int_equal(cp2p_kad_saved_peer_addrs(&out[i7], back, CP2P_KAD_SAVED_ADDRS), 0);
    for (int i = 0; i < CP2P_KAD_SAVED_ADDRS + 2; i++)
        cp2p_multiaddr_free(&a[i]);
}

static void check_limits(cp2p_kad_store_t *s)
{
    cp2p_peer_id_t p;
    for (uint8_t i = 0; i < 3; i++) {
        p = make_id(i);
        assert_int_equal(cp2p_kad_store_add_provider(s, (const uint8_t *)"k", 1, &p, T0), 0);
    }
    p = make_id(9);
    assert_int_equal(cp2p_kad_store_add_provider(s, (const uint8_t *)"k", 1, &p, T0), CP2P_ELIMIT);
    assert_int_equal(cp2p_kad_store_put_record(s, (const uint8_t *)"a", 1, (const uint8_t *)"1", 1, T0), 0);
    assert_int_equal(cp2p_kad_store_put_record(s, (const uint8_t *)"b", 1, (const uint8_t *)"1", 1, T0), 0);
    assert_int_equal(cp2p_kad_store_put_record(s, (const uint8_t *)"c", 1, (const uint8_t *)"1", 1, T0),
                     CP2P_ELIMIT);
    /* Replacing a stored record is not a new one. */
    assert_int_equal(cp2p_kad_store_put_record(s, (const uint8_t *)"a", 1, (const uint8_t *)"2", 1, T0), 0);
    cp2p_kad_saved_peer_t many[5] = {0};
    assert_int_equal(cp2p_kad_store_save_peers(s, many, 5), CP2P_ELIMIT);
}

static const cp2p_kad_store_limits_t small = {
    .max_records = 2, .max_providers_per_key = 3, .max_peers = 4};

static void test_memory(void **state)
{
    cp2p_kad_store_t *s;
    assert_int_equal(cp2p_kad_store_new_memory(NULL, &s), 0);
    check_records(s);
    check_providers(s);
    check_expire(s);
    check_peers(s);
    cp2p_kad_store_free(s);
    assert_int_equal(cp2p_kad_store_new_memory(&small, &s), 0);
    check_limits(s);
    cp2p_kad_store_free(s);
}

static void test_lmdb(void **state)
{
    char *dir = temp_dir();
    cp2p_kad_store_t *s;
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), 0);
    check_records(s);
    check_providers(s);
    check_expire(s);
    check_peers(s);
    cp2p_kad_store_free(s);
    remove_dir(dir);

    dir = temp_dir();
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, &small, &s), 0);
    check_limits(s);
    cp2p_kad_store_free(s);
    remove_dir(dir);
}

static void test_lmdb_restart(void **state)
{
    char *dir = temp_dir();
    cp2p_kad_store_t *s;
    cp2p_peer_id_t p = make_id(3), out[2];
    cp2p_kad_saved_peer_t sp = {.id = p}, sout[2];
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), 0);
    assert_int_equal(cp2p_kad_store_put_record(s, (const uint8_t *)"key", 3, (const uint8_t *)"val", 3, T0), 0);
    assert_int_equal(cp2p_kad_store_add_provider(s, (const uint8_t *)"cid", 3, &p, T0), 0);
    assert_int_equal(cp2p_kad_store_save_peers(s, &sp, 1), 0);
    cp2p_kad_store_free(s);

    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), 0);
    cp2p_buf_t b = {0};
    uint64_t rx;
    assert_int_equal(cp2p_kad_store_get_record(s, (const uint8_t *)"key", 3, T0 + HOUR, &b, &rx), 0);
    assert_memory_equal(b.data, "val", 3);
    assert_true(rx == T0);
    assert_int_equal(cp2p_kad_store_get_providers(s, (const uint8_t *)"cid", 3, T0, out, 2), 1);
    assert_true(cp2p_peer_id_equal(&out[0], &p));
    assert_int_equal(cp2p_kad_store_load_peers(s, sout, 2), 1);
    assert_true(cp2p_peer_id_equal(&sout[0].id, &p));
    cp2p_kad_store_free(s);
    cp2p_buf_free(&b);
    remove_dir(dir);
}

/* A child writes, reports success through a pipe, and is killed with SIGKILL
 * before it can close anything; every reported write must be there. */
static void test_lmdb_kill9(void **state)
{
    char *dir = temp_dir();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        cp2p_kad_store_t *s;
        if (cp2p_kad_store_open_lmdb(dir, NULL, &s))
            _exit(1);
        for (uint32_t i = 0;; i++) {
            uint8_t key[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
            if (cp2p_kad_store_put_record(s, key, 4, key, 4, T0))
                _exit(1);
            if (write(fds[1], key, 4) != 4)
                _exit(1);
        }
    }
    close(fds[1]);
    uint8_t last[4];
    uint32_t acked = 0;
    while (acked < 20 && read(fds[0], last, 4) == 4)
        acked++;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    /* Drain what else was acknowledged before the kill. */
    while (read(fds[0], last, 4) == 4)
        acked++;
    close(fds[0]);

    cp2p_kad_store_t *s;
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), 0);
    cp2p_buf_t b = {0};
    for (uint32_t i = 0; i < acked; i++) {
        uint8_t key[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        cp2p_buf_reset(&b);
        assert_int_equal(cp2p_kad_store_get_record(s, key, 4, T0, &b, NULL), 0);
        assert_memory_equal(b.data, key, 4);
    }
    assert_true(cp2p_kad_store_record_count(s) >= acked);
    cp2p_buf_free(&b);
    cp2p_kad_store_free(s);
    remove_dir(dir);
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_lmdb_bad_dirs(void **state)
{
    cp2p_kad_store_t *s = NULL;

    /* data.mdb full of garbage */
    char *dir = temp_dir();
    static uint8_t junk[16384];
    memset(junk, 0x5a, sizeof junk);
    write_file(dir, "data.mdb", junk, sizeof junk);
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), CP2P_EPARSE);
    assert_null(s);
    remove_dir(dir);

    /* a directory of someone else's files */
    dir = temp_dir();
    write_file(dir, "junk.txt", "hello", 5);
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), CP2P_EPARSE);
    remove_dir(dir);

    /* a path that is a file */
    dir = temp_dir();
    write_file(dir, "junk.txt", "hello", 5);
    char path[512];
    snprintf(path, sizeof path, "%s/junk.txt", dir);
    assert_int_equal(cp2p_kad_store_open_lmdb(path, NULL, &s), CP2P_EIO);
    remove_dir(dir);

    /* a missing directory is created */
    dir = temp_dir();
    rmdir(dir);
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), 0);
    cp2p_kad_store_free(s);
    remove_dir(dir);

    /* a data.mdb cut short after a valid start */
    dir = temp_dir();
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), 0);
    assert_int_equal(cp2p_kad_store_put_record(s, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1, T0), 0);
    cp2p_kad_store_free(s);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &s), CP2P_EPARSE);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_lmdb),
        cmocka_unit_test(test_lmdb_restart),
        cmocka_unit_test(test_lmdb_kill9),
        cmocka_unit_test(test_lmdb_bad_dirs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
