/* Fuzz target: an mplex session fed hostile frames in chunks, with callbacks
 * that re-enter it (write, reset, consume, release). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "muxer/muxer.h"

#define MUX cp2p_mplex_vtable

typedef struct {
    cp2p_mux_t *m;
    uint8_t mode;
    size_t sent;
} fz_t;

static int fz_send(void *ctx, const uint8_t *p, size_t n)
{
    fz_t *f = ctx;
    if (n == 0 || n > (1u << 20) + 20)
        abort();
    f->sent += n;
    return 0;
}

static int fz_opened(void *ctx, cp2p_mux_stream_id_t id)
{
    fz_t *f = ctx;
    return (f->mode & 1) && (id & 2) ? -1 : 0;
}

static void fz_data(void *ctx, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n)
{
    fz_t *f = ctx;
    if (n == 0)
        abort();
    if (f->mode & 2)
        MUX.write(f->m, id, p, n);
    if (f->mode & 4)
        MUX.consumed(f->m, id, n);
    if ((f->mode & 8) && p[0] == 'R')
        MUX.reset(f->m, id);
    if ((f->mode & 16) && p[0] == 'C')
        MUX.close_write(f->m, id);
}

static void fz_eof(void *ctx, cp2p_mux_stream_id_t id)
{
    fz_t *f = ctx;
    if (f->mode & 32) {
        MUX.close_write(f->m, id);
        MUX.release(f->m, id);
    }
}

static void fz_reset(void *ctx, cp2p_mux_stream_id_t id)
{
    fz_t *f = ctx;
    /* the id is dead: every call on it must fail cleanly */
    if (MUX.write(f->m, id, (const uint8_t *)"x", 1) >= 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fz_t f = {.mode = data[0]};
    size_t chunk = (size_t)data[1] + 1;
    data += 2;
    size -= 2;
    cp2p_mux_config_t cfg = {.max_streams = 4, .max_frame = 16, .max_buffered = 64};
    cp2p_mux_events_t ev = {&f, fz_send, fz_opened, fz_data, fz_eof, fz_reset, NULL, NULL};
    if (MUX.create(&f.m, f.mode >> 7, (f.mode & 64) ? &cfg : NULL, &ev))
        abort();
    cp2p_mux_stream_id_t id;
    if (MUX.open_stream(f.m, &id) == 0)
        MUX.write(f.m, id, (const uint8_t *)"hello", 5);
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += chunk) {
        size_t k = size - off < chunk ? size - off : chunk;
        rc = MUX.input(f.m, data + off, k);
    }
    /* a failed session stays failed */
    if (rc < 0 && MUX.input(f.m, (const uint8_t *)"", 0) != rc)
        abort();
    MUX.destroy(f.m);
    return 0;
}
