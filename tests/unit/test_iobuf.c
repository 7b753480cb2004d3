/* The pool of large I/O buffers (core/iobuf.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/iobuf.h"

static void test_buffers_are_reused(void **state)
{
    uint8_t *a = cp2p_iobuf_get();
    assert_non_null(a);
    memset(a, 0xa5, CP2P_IOBUF_SIZE); /* all of it is ours (ASan checks) */
    cp2p_iobuf_put(a);
    assert_ptr_equal(cp2p_iobuf_get(), a); /* the warm one comes back */
    cp2p_iobuf_put(a);
    cp2p_iobuf_put(NULL);
}

static void test_pool_is_bounded(void **state)
{
    uint8_t *b[CP2P_IOBUF_KEEP + 4];
    for (size_t i = 0; i < CP2P_IOBUF_KEEP + 4; i++)
        assert_non_null(b[i] = cp2p_iobuf_get());
    /* Giving all back keeps the first CP2P_IOBUF_KEEP and frees the rest
     * (LeakSanitizer would see a lost one); the kept ones come back, last
     * in first out. */
    for (size_t i = 0; i < CP2P_IOBUF_KEEP + 4; i++)
        cp2p_iobuf_put(b[i]);
    for (size_t i = CP2P_IOBUF_KEEP; i-- > 0;)
        assert_ptr_equal(cp2p_iobuf_get(), b[i]);
    for (size_t i = 0; i < CP2P_IOBUF_KEEP; i++)
        cp2p_iobuf_put(b[i]);
}

static void test_attached_buffer_grows_and_is_released(void **state)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_iobuf_attach(&b), 0);
    assert_int_equal(b.cap, CP2P_IOBUF_SIZE);
    assert_int_equal(b.len, 0);
    uint8_t *first = b.data;
    assert_int_equal(cp2p_iobuf_attach(&b), 0); /* already has storage: unchanged */
    assert_ptr_equal(b.data, first);
    /* Past the pooled size it is an ordinary growing buffer, freed by malloc. */
    static uint8_t big[CP2P_IOBUF_SIZE + 1];
    memset(big, 7, sizeof big);
    assert_int_equal(cp2p_buf_append(&b, big, sizeof big), 0);
    assert_true(b.cap > CP2P_IOBUF_SIZE);
    assert_memory_equal(b.data, big, sizeof big);
    cp2p_iobuf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len + b.cap, 0);
    /* One that stayed within the pooled size goes back to the pool. */
    assert_int_equal(cp2p_iobuf_attach(&b), 0);
    uint8_t *p = b.data;
    assert_int_equal(cp2p_buf_append(&b, "x", 1), 0);
    cp2p_iobuf_release(&b);
    assert_ptr_equal(cp2p_iobuf_get(), p);
    cp2p_iobuf_put(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffers_are_reused),
        cmocka_unit_test(test_pool_is_bounded),
        cmocka_unit_test(test_attached_buffer_grows_and_is_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
