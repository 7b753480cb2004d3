/* Growable byte buffer (include/cp2p/buf.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"
#include "core/iobuf.h"

int cp2p_buf_reserve(cp2p_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return CP2P_ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return CP2P_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cp2p_buf_append(cp2p_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = cp2p_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int cp2p_buf_append_byte(cp2p_buf_t *b, uint8_t c)
{
    return cp2p_buf_append(b, &c, 1);
}

int cp2p_buf_append_uvarint(cp2p_buf_t *b, uint64_t v)
{
    uint8_t tmp[CP2P_UVARINT_MAX];
    size_t n = cp2p_uvarint_encode(v, tmp);
    return cp2p_buf_append(b, tmp, n);
}

int cp2p_buf_append_lp(cp2p_buf_t *b, const void *p, size_t n)
{
    int rc = cp2p_buf_append_uvarint(b, n);
    return rc ? rc : cp2p_buf_append(b, p, n);
}

void cp2p_buf_consume(cp2p_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void cp2p_buf_reset(cp2p_buf_t *b)
{
    b->len = 0;
}

void cp2p_buf_free(cp2p_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *cp2p_buf_steal(cp2p_buf_t *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- the I/O buffer pool (core/iobuf.h) ---- */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *pool[CP2P_IOBUF_KEEP];
static size_t pool_n;

uint8_t *cp2p_iobuf_get(void)
{
    uint8_t *p = NULL;
    pthread_mutex_lock(&pool_lock);
    if (pool_n)
        p = pool[--pool_n];
    pthread_mutex_unlock(&pool_lock);
    return p ? p : malloc(CP2P_IOBUF_SIZE);
}

void cp2p_iobuf_put(uint8_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&pool_lock);
    if (pool_n < CP2P_IOBUF_KEEP) {
        pool[pool_n++] = p;
        p = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    free(p);
}

int cp2p_iobuf_attach(cp2p_buf_t *b)
{
    if (b->data)
        return 0;
    if (!(b->data = cp2p_iobuf_get()))
        return CP2P_ENOMEM;
    b->len = 0;
    b->cap = CP2P_IOBUF_SIZE;
    return 0;
}

void cp2p_iobuf_release(cp2p_buf_t *b)
{
    /* A buffer that grew was moved by realloc: it is malloc's, not ours. */
    if (b->cap == CP2P_IOBUF_SIZE)
        cp2p_iobuf_put(b->data);
    else
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
