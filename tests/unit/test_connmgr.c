/* Unit tests for the connection manager's tag table (src/host/connmgr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cp2p/error.h"
#include "host/connmgr.h"

/* Distinct, well-formed enough ids: the table only compares them. */
static cp2p_peer_id_t peer(int i)
{
    cp2p_peer_id_t id;
    memset(&id, 0, sizeof id);
    id.len = 4;
    memcpy(id.bytes, &i, sizeof i);
    return id;
}

static void test_tags(void **state)
{
    cp2p_connmgr_t *m;
    assert_int_equal(cp2p_connmgr_new(&m), 0);
    cp2p_peer_id_t a = peer(1);
    assert_int_equal(cp2p_connmgr_tag(m, &a, "x", 5), 0);
    assert_int_equal(cp2p_connmgr_tag(m, &a, "y", 7), 0);
    assert_int_equal(cp2p_connmgr_value(m, &a), 12);
    assert_int_equal(cp2p_connmgr_tag(m, &a, "x", -1), 0); /* replaces */
    assert_int_equal(cp2p_connmgr_value(m, &a), 6);
    assert_int_equal(cp2p_connmgr_untag(m, &a, "y"), 0);
    assert_int_equal(cp2p_connmgr_untag(m, &a, "y"), 0); /* absent: fine */
    assert_int_equal(cp2p_connmgr_value(m, &a), -1);

    /* bounds: tag name length, tags per peer */
    char longtag[CP2P_CONNMGR_MAX_TAG_LEN + 2];
    memset(longtag, 't', sizeof longtag - 1);
    longtag[sizeof longtag - 1] = 0;
    assert_int_equal(cp2p_connmgr_tag(m, &a, longtag, 1), CP2P_EINVAL);
    longtag[CP2P_CONNMGR_MAX_TAG_LEN] = 0;
    assert_int_equal(cp2p_connmgr_tag(m, &a, longtag, 1), 0);
    assert_int_equal(cp2p_connmgr_tag(m, &a, "", 1), CP2P_EINVAL);
    cp2p_peer_id_t b = peer(2);
    char name[16];
    for (int i = 0; i < CP2P_CONNMGR_MAX_TAGS; i++) {
        snprintf(name, sizeof name, "t%d", i);
        assert_int_equal(cp2p_connmgr_tag(m, &b, name, 1), 0);
    }
    assert_int_equal(cp2p_connmgr_tag(m, &b, "one-more", 1), CP2P_ELIMIT);
    assert_int_equal(cp2p_connmgr_value(m, &b), CP2P_CONNMGR_MAX_TAGS);
    cp2p_connmgr_free(m);
}

static void test_peer_limit(void **state)
{
    cp2p_connmgr_t *m;
    assert_int_equal(cp2p_connmgr_new(&m), 0);
    for (int i = 0; i < CP2P_CONNMGR_MAX_PEERS; i++) {
        cp2p_peer_id_t p = peer(i);
        assert_int_equal(cp2p_connmgr_tag(m, &p, "t", 1), 0);
    }
    cp2p_peer_id_t extra = peer(CP2P_CONNMGR_MAX_PEERS);
    assert_int_equal(cp2p_connmgr_tag(m, &extra, "t", 1), CP2P_ELIMIT);
    assert_int_equal(cp2p_connmgr_connected(m, &extra, 0), CP2P_ELIMIT);
    /* an untagged, unconnected peer leaves the table: room again */
    cp2p_peer_id_t first = peer(0);
    assert_int_equal(cp2p_connmgr_untag(m, &first, "t"), 0);
    assert_int_equal(cp2p_connmgr_connected(m, &extra, 0), 0);
    cp2p_connmgr_disconnected(m, &extra);
    cp2p_connmgr_disconnected(m, &extra); /* more than connected: ignored */
    cp2p_connmgr_free(m);
}

static void test_victims(void **state)
{
    cp2p_connmgr_t *m;
    assert_int_equal(cp2p_connmgr_new(&m), 0);
    cp2p_peer_id_t p[5], out[5];
    for (int i = 0; i < 5; i++) {
        p[i] = peer(i);
        assert_int_equal(cp2p_connmgr_connected(m, &p[i], 0), 0); /* p0 oldest */
    }
    assert_int_equal(cp2p_connmgr_connected(m, &p[4], 0), 0); /* p4: two connections */
    assert_int_equal(cp2p_connmgr_tag(m, &p[0], "keep", 10), 0);
    assert_int_equal(cp2p_connmgr_tag(m, &p[1], "zero", 0), 0);
    assert_int_equal(cp2p_connmgr_tag(m, &p[2], "bad", -5), 0);
    cp2p_peer_id_t gone = peer(9);
    assert_int_equal(cp2p_connmgr_tag(m, &gone, "x", -100), 0); /* not connected: never picked */

    /* order: p2 (-5), p3 (untagged 0), p4 (untagged 0, newer), p1 (tagged 0), p0 (10) */
    assert_int_equal(cp2p_connmgr_victims(m, 6, UINT64_MAX, out, 5), 5);
    int want[] = {2, 3, 4, 1, 0};
    for (int i = 0; i < 5; i++)
        assert_true(cp2p_peer_id_equal(&out[i], &p[want[i]]));
    /* p4 frees two connections */
    assert_int_equal(cp2p_connmgr_victims(m, 4, UINT64_MAX, out, 5), 3);
    assert_int_equal(cp2p_connmgr_victims(m, 0, UINT64_MAX, out, 5), 0);
    assert_int_equal(cp2p_connmgr_victims(m, 6, UINT64_MAX, out, 2), 2); /* capped */

    /* a peer that reconnects becomes the newest */
    cp2p_connmgr_disconnected(m, &p[3]);
    assert_int_equal(cp2p_connmgr_connected(m, &p[3], 0), 0);
    assert_int_equal(cp2p_connmgr_victims(m, 2, UINT64_MAX, out, 5), 2);
    assert_true(cp2p_peer_id_equal(&out[1], &p[4]));
    cp2p_connmgr_free(m);
}

/* Peers connected within the grace period are spared by an automatic trim. */
static void test_grace(void **state)
{
    cp2p_connmgr_t *m;
    assert_int_equal(cp2p_connmgr_new(&m), 0);
    cp2p_peer_id_t old = peer(1), young = peer(2);
    assert_int_equal(cp2p_connmgr_connected(m, &old, 1000), 0);
    assert_int_equal(cp2p_connmgr_connected(m, &young, 5000), 0);
    cp2p_peer_id_t out[2];
    assert_int_equal(cp2p_connmgr_victims(m, 2, 4000, out, 2), 1);
    assert_true(cp2p_peer_id_equal(&out[0], &old));
    assert_int_equal(cp2p_connmgr_victims(m, 2, 999, out, 2), 0);
    assert_int_equal(cp2p_connmgr_victims(m, 2, UINT64_MAX, out, 2), 2);
    cp2p_connmgr_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_peer_limit),
        cmocka_unit_test(test_victims),
        cmocka_unit_test(test_grace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
