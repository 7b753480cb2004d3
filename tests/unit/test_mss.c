/* multistream-select 1.0.0: spec byte vectors, dialer/listener in memory,
 * na fallback, ls, leftover bytes, lazy dialer and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "mss/mss.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1
#define HDR "\x13/multistream/1.0.0\n"
#define KAD "\x10/ipfs/kad/1.0.0\n"
#define KAD023 "\x10/ipfs/kad/0.2.3\n"
#define NA "\x03na\n"

static void assert_buf(const cp2p_buf_t *b, const void *exp, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, exp, n);
}

static void test_dialer_opening_bytes(void **state)
{
    const char *protos[] = {"/ipfs/kad/1.0.0", "/ipfs/kad/0.2.3"};
    cp2p_mss_t *d;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_dialer_new(&d, protos, 2, 0), 0);
    assert_int_equal(cp2p_mss_start(d, &out), 0);
    /* header and first proposal in one write, as the spec recommends */
    assert_buf(&out, S(HDR KAD));
    assert_null(cp2p_mss_selected(d));
    assert_int_equal(cp2p_mss_start(d, &out), CP2P_ESTATE);
    cp2p_buf_reset(&out);

    /* the spec's "missing version support" example */
    assert_int_equal(cp2p_mss_input(d, S(HDR NA), &out), 0);
    assert_buf(&out, S(KAD023));
    assert_int_equal(cp2p_mss_input(d, S(KAD023), &out), CP2P_MSS_DONE);
    assert_string_equal(cp2p_mss_selected(d), "/ipfs/kad/0.2.3");
    size_t n;
    cp2p_mss_leftover(d, &n);
    assert_int_equal(n, 0);
    assert_int_equal(cp2p_mss_input(d, S("x"), &out), CP2P_ESTATE);
    cp2p_buf_free(&out);
    cp2p_mss_free(d);
}

static void test_listener_pipelined(void **state)
{
    const char *protos[] = {"/ipfs/kad/0.2.3", "/ipfs/kad/1.0.0"};
    cp2p_mss_t *l;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_listener_new(&l, protos, 2, NULL, NULL), 0);
    /* Without start(), the header goes out together with the first answer. */
    assert_int_equal(cp2p_mss_input(l, S(HDR KAD "hello"), &out), CP2P_MSS_DONE);
    assert_buf(&out, S(HDR KAD));
    assert_string_equal(cp2p_mss_selected(l), "/ipfs/kad/1.0.0");
    size_t n;
    const uint8_t *left = cp2p_mss_leftover(l, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(left, "hello", 5);
    cp2p_buf_free(&out);
    cp2p_mss_free(l);
}

static void test_listener_na_then_select(void **state)
{
    const char *protos[] = {"/ipfs/kad/0.2.3"};
    cp2p_mss_t *l;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_listener_new(&l, protos, 1, NULL, NULL), 0);
    assert_int_equal(cp2p_mss_start(l, &out), 0);
    assert_buf(&out, S(HDR));
    cp2p_buf_reset(&out);
    assert_int_equal(cp2p_mss_input(l, S(HDR KAD), &out), 0);
    assert_buf(&out, S(NA));
    assert_null(cp2p_mss_selected(l));
    cp2p_buf_reset(&out);
    assert_int_equal(cp2p_mss_input(l, S(KAD023), &out), CP2P_MSS_DONE);
    assert_buf(&out, S(KAD023));
    cp2p_buf_free(&out);
    cp2p_mss_free(l);
}

static void test_ls(void **state)
{
    const char *protos[] = {"/a", "/bc"};
    cp2p_mss_t *l;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_listener_new(&l, protos, 2, NULL, NULL), 0);
    assert_int_equal(cp2p_mss_start(l, &out), 0);
    cp2p_buf_reset(&out);
    assert_int_equal(cp2p_mss_input(l, S(HDR "\x03ls\n"), &out), 0);
    /* total 4 + 5 + 1 = 10: each id framed as a message, then the final newline */
    assert_buf(&out, S("\x0a\x03/a\n\x04/bc\n\n"));
    cp2p_buf_reset(&out);
    /* negotiation goes on after a listing */
    assert_int_equal(cp2p_mss_input(l, S("\x03/a\n"), &out), CP2P_MSS_DONE);
    assert_buf(&out, S("\x03/a\n"));

    /* a listener with nothing to list answers with the empty list */
    cp2p_mss_t *e;
    cp2p_buf_reset(&out);
    assert_int_equal(cp2p_mss_listener_new(&e, NULL, 0, NULL, NULL), 0);
    assert_int_equal(cp2p_mss_input(e, S(HDR "\x03ls\n"), &out), 0);
    assert_buf(&out, S(HDR "\x01\n"));
    cp2p_mss_free(e);
    cp2p_buf_free(&out);
    cp2p_mss_free(l);
}

static int match_prefix(void *ctx, const char *id, size_t len)
{
    (*(int *)ctx)++;
    return strncmp(id, "/echo/", 6) == 0 && strlen(id) == len;
}

static void test_match_callback(void **state)
{
    int calls = 0;
    cp2p_mss_t *l;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_listener_new(&l, NULL, 0, match_prefix, &calls), 0);
    assert_int_equal(cp2p_mss_input(l, S(HDR "\x05/x/1\n"), &out), 0);
    /* an id with an embedded NUL is refused without asking the callback */
    assert_int_equal(cp2p_mss_input(l, S("\x09/echo/\0a\n"), &out), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(cp2p_mss_input(l, S("\x0a/echo/2.0\n"), &out), CP2P_MSS_DONE);
    assert_int_equal(calls, 2);
    assert_buf(&out, S(HDR NA NA "\x0a/echo/2.0\n"));
    assert_string_equal(cp2p_mss_selected(l), "/echo/2.0");
    cp2p_buf_free(&out);
    cp2p_mss_free(l);
}

/* Run a dialer and a listener against each other, feeding `chunk` bytes at a time. */
static int converse(cp2p_mss_t *d, cp2p_mss_t *l, size_t chunk, const char *d_tail,
                    const char *l_tail)
{
    cp2p_buf_t to_l = {0}, to_d = {0};
    int rd = cp2p_mss_start(d, &to_l);
    int rl = cp2p_mss_start(l, &to_d);
    assert_int_equal(rd, 0);
    assert_int_equal(rl, 0);
    int d_done = 0, l_done = 0, err = 0;
    for (int rounds = 0; rounds < 10000 && !err && (!d_done || !l_done); rounds++) {
        if (d_done && d_tail) {
            cp2p_buf_append(&to_l, d_tail, strlen(d_tail));
            d_tail = NULL;
        }
        if (l_done && l_tail) {
            cp2p_buf_append(&to_d, l_tail, strlen(l_tail));
            l_tail = NULL;
        }
        if (!l_done && to_l.len) {
            size_t k = to_l.len < chunk ? to_l.len : chunk;
            uint8_t tmp[4096];
            memcpy(tmp, to_l.data, k);
            cp2p_buf_consume(&to_l, k);
            int r = cp2p_mss_input(l, tmp, k, &to_d);
            if (r < 0)
                err = r;
            l_done = r == CP2P_MSS_DONE;
        }
        if (!d_done && to_d.len && !err) {
            size_t k = to_d.len < chunk ? to_d.len : chunk;
            uint8_t tmp[4096];
            memcpy(tmp, to_d.data, k);
            cp2p_buf_consume(&to_d, k);
            int r = cp2p_mss_input(d, tmp, k, &to_l);
            if (r < 0)
                err = r;
            d_done = r == CP2P_MSS_DONE;
        }
        if (!err && !to_l.len && !to_d.len && !d_tail && !l_tail && (!d_done || !l_done))
            err = CP2P_ESTATE; /* deadlock */
    }
    /* Bytes that reached a side after it finished are its leftover too. */
    cp2p_buf_free(&to_l);
    cp2p_buf_free(&to_d);
    return err;
}

static void test_in_memory(void **state)
{
    const char *want[] = {"/noise", "/tls/1.0.0", "/plaintext/2.0.0"};
    const char *have[] = {"/plaintext/2.0.0", "/tls/1.0.0"};
    size_t chunks[] = {1, 2, 7, 4096};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        cp2p_mss_t *d, *l;
        assert_int_equal(cp2p_mss_dialer_new(&d, want, 3, 0), 0);
        assert_int_equal(cp2p_mss_listener_new(&l, have, 2, NULL, NULL), 0);
        assert_int_equal(converse(d, l, chunks[c], NULL, NULL), 0);
        /* the dialer's order wins: its first proposal the listener has */
        assert_string_equal(cp2p_mss_selected(d), "/tls/1.0.0");
        assert_string_equal(cp2p_mss_selected(l), "/tls/1.0.0");
        cp2p_mss_free(d);
        cp2p_mss_free(l);
    }
}

static void test_in_memory_no_common(void **state)
{
    const char *want[] = {"/a", "/b"};
    const char *have[] = {"/c"};
    cp2p_mss_t *d, *l;
    assert_int_equal(cp2p_mss_dialer_new(&d, want, 2, 0), 0);
    assert_int_equal(cp2p_mss_listener_new(&l, have, 1, NULL, NULL), 0);
    assert_int_equal(converse(d, l, 3, NULL, NULL), CP2P_ENEGOTIATE);
    assert_null(cp2p_mss_selected(d));
    /* the failure sticks */
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_input(d, S(NA), &out), CP2P_ENEGOTIATE);
    assert_int_equal(out.len, 0);
    cp2p_mss_free(d);
    cp2p_mss_free(l);
}

static void test_lazy_dialer(void **state)
{
    const char *one[] = {"/yamux/1.0.0"};
    cp2p_mss_t *d;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_dialer_new(&d, one, 1, CP2P_MSS_LAZY), 0);
    assert_int_equal(cp2p_mss_start(d, &out), 0);
    /* optimistic: data may follow the proposal at once */
    assert_string_equal(cp2p_mss_selected(d), "/yamux/1.0.0");
    assert_buf(&out, S(HDR "\x0d/yamux/1.0.0\n"));
    cp2p_buf_reset(&out);
    /* the confirmation and the remote's first data arrive byte by byte */
    static const char in[] = HDR "\x0d/yamux/1.0.0\n" "DATA";
    int r = 0;
    size_t i;
    for (i = 0; i < sizeof(in) - 1 && r == 0; i++)
        r = cp2p_mss_input(d, (const uint8_t *)in + i, 1, &out);
    assert_int_equal(r, CP2P_MSS_DONE);
    assert_int_equal(out.len, 0);
    /* done exactly at the echo's newline: the data was never taken */
    assert_int_equal(i, sizeof(in) - 1 - 4);
    cp2p_mss_free(d);

    /* refused: the optimistic guess is withdrawn */
    assert_int_equal(cp2p_mss_dialer_new(&d, one, 1, CP2P_MSS_LAZY), 0);
    assert_int_equal(cp2p_mss_start(d, &out), 0);
    assert_int_equal(cp2p_mss_input(d, S(HDR NA), &out), CP2P_ENEGOTIATE);
    assert_null(cp2p_mss_selected(d));
    cp2p_mss_free(d);

    const char *two[] = {"/a", "/b"};
    assert_int_equal(cp2p_mss_dialer_new(&d, two, 2, CP2P_MSS_LAZY), CP2P_EINVAL);
    cp2p_buf_free(&out);
}

static void test_leftover_dialer(void **state)
{
    const char *one[] = {"/a"};
    cp2p_mss_t *d;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_dialer_new(&d, one, 1, 0), 0);
    assert_int_equal(cp2p_mss_start(d, &out), 0);
    assert_int_equal(cp2p_mss_input(d, S(HDR "\x03/a"), &out), 0);
    assert_null(cp2p_mss_leftover(d, NULL));
    assert_int_equal(cp2p_mss_input(d, S("\n\x03/a\nmore"), &out), CP2P_MSS_DONE);
    size_t n;
    const uint8_t *left = cp2p_mss_leftover(d, &n);
    /* a second "/a" after the echo is application data, not negotiation */
    assert_int_equal(n, 8);
    assert_memory_equal(left, "\x03/a\nmore", 8);
    cp2p_buf_free(&out);
    cp2p_mss_free(d);
}

static int listener_on(const uint8_t *p, size_t n)
{
    const char *protos[] = {"/a"};
    cp2p_mss_t *l;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_listener_new(&l, protos, 1, NULL, NULL), 0);
    int r = cp2p_mss_input(l, p, n, &out);
    if (r < 0) /* sticky */
        assert_int_equal(cp2p_mss_input(l, S(HDR), &out), r);
    cp2p_buf_free(&out);
    cp2p_mss_free(l);
    return r;
}

static int dialer_on(const uint8_t *p, size_t n)
{
    const char *protos[] = {"/a"};
    cp2p_mss_t *d;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_dialer_new(&d, protos, 1, 0), 0);
    assert_int_equal(cp2p_mss_start(d, &out), 0);
    int r = cp2p_mss_input(d, p, n, &out);
    cp2p_buf_free(&out);
    cp2p_mss_free(d);
    return r;
}

/* "ls" and refused proposals earn replies: a remote that repeats them
 * without end is cut off once the budget is spent, with bounded output. */
static void test_message_budget(void **state)
{
    const char *protos[] = {"/a"};
    cp2p_mss_t *l;
    cp2p_buf_t in = {0}, out = {0};
    assert_int_equal(cp2p_buf_append(&in, S(HDR)), 0);
    for (int i = 0; i < CP2P_MSS_MAX_MESSAGES - 2; i++)
        assert_int_equal(i % 2 ? cp2p_buf_append(&in, S("\x03ls\n"))
                               : cp2p_buf_append(&in, S("\x03/b\n")),
                         0);
    assert_int_equal(cp2p_mss_listener_new(&l, protos, 1, NULL, NULL), 0);
    /* Up to the budget the negotiation goes on, and may still succeed. */
    assert_int_equal(cp2p_mss_input(l, in.data, in.len, &out), 0);
    assert_int_equal(cp2p_mss_input(l, S("\x03/a\n"), &out), CP2P_MSS_DONE);
    cp2p_mss_free(l);
    cp2p_buf_reset(&out);
    /* One more is too many, wherever the input is split. */
    assert_int_equal(cp2p_buf_append(&in, S("\x03ls\n\x03ls\n")), 0);
    assert_int_equal(cp2p_mss_listener_new(&l, protos, 1, NULL, NULL), 0);
    assert_int_equal(cp2p_mss_input(l, in.data, in.len, &out), CP2P_ELIMIT);
    assert_true(out.len < 64 * 32);
    assert_int_equal(cp2p_mss_input(l, S("\x03/a\n"), &out), CP2P_ELIMIT);
    cp2p_mss_free(l);
    cp2p_buf_free(&in);
    cp2p_buf_free(&out);
}

static void test_malformed(void **state)
{
    /* non-minimal varint */
    assert_int_equal(listener_on(S("\x93\x00/multistream/1.0.0\n")), CP2P_EPARSE);
    /* ten-byte varint */
    assert_int_equal(listener_on(S("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")), CP2P_EPARSE);
    /* 1025 > 1024: refused as soon as the length is known */
    assert_int_equal(listener_on(S("\x81\x08")), CP2P_EOVERFLOW);
    /* a third length byte can only mean too long */
    assert_int_equal(listener_on(S("\x80\x80")), CP2P_EOVERFLOW);
    /* empty message, missing newline */
    assert_int_equal(listener_on(S("\x00")), CP2P_EPARSE);
    assert_int_equal(listener_on(S("\x13/multistream/1.0.0x")), CP2P_EPARSE);
    assert_int_equal(listener_on(S(HDR "\x02/a")), CP2P_EPARSE);
    /* wrong first message */
    assert_int_equal(listener_on(S("\x13/multistream/2.0.0\n")), CP2P_EPROTO);
    assert_int_equal(listener_on(S("\x03/a\n")), CP2P_EPROTO);
    /* truncation is not an error, just not done yet */
    assert_int_equal(listener_on(S("\x13/multistream")), 0);
    assert_int_equal(listener_on(S(HDR "\x03/a")), 0);
    /* 1024 is the largest accepted message */
    uint8_t big[2 + 1024];
    big[0] = 0x80;
    big[1] = 0x08;
    memset(big + 2, 'x', 1023);
    big[2 + 1023] = '\n';
    assert_int_equal(listener_on(big, sizeof(big)), CP2P_EPROTO);

    /* dialer: wrong header, an answer that is neither echo nor na */
    assert_int_equal(dialer_on(S("\x03na\n")), CP2P_EPROTO);
    assert_int_equal(dialer_on(S(HDR "\x03/b\n")), CP2P_EPROTO);
    assert_int_equal(dialer_on(S(HDR HDR)), CP2P_EPROTO);
    assert_int_equal(dialer_on(S(HDR "\x03/a")), 0);
    assert_int_equal(dialer_on(S(HDR "\x03/a\n")), CP2P_MSS_DONE);
}

static void test_bad_arguments(void **state)
{
    cp2p_mss_t *m;
    char longid[1025];
    memset(longid, 'p', 1024);
    longid[1024] = 0;
    const char *bad1[] = {""};
    const char *bad2[] = {"/a\n"};
    const char *bad3[] = {longid};
    assert_int_equal(cp2p_mss_dialer_new(&m, NULL, 0, 0), CP2P_EINVAL);
    assert_int_equal(cp2p_mss_dialer_new(&m, bad1, 1, 0), CP2P_EINVAL);
    assert_int_equal(cp2p_mss_dialer_new(&m, bad2, 1, 0), CP2P_EINVAL);
    assert_int_equal(cp2p_mss_listener_new(&m, bad3, 1, NULL, NULL), CP2P_EINVAL);
    longid[1023] = 0; /* 1023 + newline = 1024 fits */
    assert_int_equal(cp2p_mss_dialer_new(&m, bad3, 1, 0), 0);
    cp2p_mss_free(m);
    cp2p_buf_t out = {0};
    const char *ok[] = {"/a"};
    assert_int_equal(cp2p_mss_dialer_new(&m, ok, 1, 0), 0);
    assert_int_equal(cp2p_mss_input(m, S(HDR), &out), CP2P_ESTATE); /* before start */
    cp2p_mss_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dialer_opening_bytes),
        cmocka_unit_test(test_listener_pipelined),
        cmocka_unit_test(test_listener_na_then_select),
        cmocka_unit_test(test_ls),
        cmocka_unit_test(test_match_callback),
        cmocka_unit_test(test_in_memory),
        cmocka_unit_test(test_in_memory_no_common),
        cmocka_unit_test(test_lazy_dialer),
        cmocka_unit_test(test_leftover_dialer),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_message_budget),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
