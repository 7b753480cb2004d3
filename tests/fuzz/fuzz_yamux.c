/* Fuzz target: yamux session input. Byte 0 picks the role and how the
 * application behaves, byte 1 how the input is cut; the rest is the wire.
 * Every frame we send must be well formed, and a reader that never consumes
 * must never be handed more than the initial window per stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "muxer/muxer.h"

#define Y cp2p_yamux_vtable
#define MAX_TRACK 64
#define SPEC_WINDOW (256u * 1024)
#define MAX_FRAME 4096u

struct app {
    cp2p_mux_t *m;
    uint8_t mode;
    size_t ntrack;
    struct {
        cp2p_mux_stream_id_t id;
        uint64_t unconsumed;
    } track[MAX_TRACK];
};

enum { M_INITIATOR = 1, M_CONSUME = 2, M_ECHO = 4, M_RESET = 8, M_REJECT = 16, M_CLOSE = 32 };

static int on_send(void *ctx, const uint8_t *p, size_t n)
{
    if (n < 12 || p[0] != 0 || p[1] > 3)
        abort();
    uint32_t len = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    if (n != 12 + (p[1] == 0 ? len : 0) || (p[1] == 0 && len > MAX_FRAME))
        abort();
    return 0;
}

static int on_opened(void *ctx, cp2p_mux_stream_id_t id)
{
    struct app *a = ctx;
    return (a->mode & M_REJECT) && (id & 2) ? CP2P_EPROTO : 0;
}

static void on_data(void *ctx, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n)
{
    struct app *a = ctx;
    if (!(a->mode & M_CONSUME)) {
        size_t i = 0;
        while (i < a->ntrack && a->track[i].id != id)
            i++;
        if (i == a->ntrack && a->ntrack < MAX_TRACK)
            a->track[a->ntrack++].id = id;
        if (i < a->ntrack) {
            a->track[i].unconsumed += n;
            if (a->track[i].unconsumed > SPEC_WINDOW)
                abort();
        }
    } else if (Y.consumed(a->m, id, n) != 0) {
        abort();
    }
    if (a->mode & M_ECHO)
        Y.write(a->m, id, p, n);
    if ((a->mode & M_RESET) && (n & 1))
        Y.reset(a->m, id);
}

static void on_eof(void *ctx, cp2p_mux_stream_id_t id)
{
    struct app *a = ctx;
    if (a->mode & M_CLOSE) {
        Y.close_write(a->m, id);
        Y.release(a->m, id);
    }
}

static void on_reset(void *ctx, cp2p_mux_stream_id_t id)
{
    struct app *a = ctx;
    /* The id is dead: using it must fail, not crash. */
    if (Y.write(a->m, id, (const uint8_t *)"x", 1) >= 0)
        abort();
}

static void on_writable(void *ctx, cp2p_mux_stream_id_t id)
{
    struct app *a = ctx;
    if (a->mode & M_ECHO)
        Y.write(a->m, id, (const uint8_t *)"more", 4);
}

static void on_goaway(void *ctx, uint32_t code)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static struct app a;
    memset(&a, 0, sizeof(a));
    a.mode = data[0];
    size_t cut = data[1] ? data[1] : size;
    cp2p_mux_events_t ev = {
        .ctx = &a,
        .send = on_send,
        .stream_opened = on_opened,
        .stream_data = on_data,
        .stream_eof = on_eof,
        .stream_reset = on_reset,
        .stream_writable = on_writable,
        .goaway = on_goaway,
    };
    cp2p_mux_config_t cfg = {.max_streams = 32, .max_frame = MAX_FRAME};
    if (Y.create(&a.m, a.mode & M_INITIATOR, &cfg, &ev) != 0)
        abort();
    if (a.mode & M_INITIATOR) {
        cp2p_mux_stream_id_t id;
        if (Y.open_stream(a.m, &id) == 0)
            Y.write(a.m, id, (const uint8_t *)"hello", 5);
    }
    data += 2;
    size -= 2;
    while (size > 0) {
        size_t k = size < cut ? size : cut;
        if (Y.input(a.m, data, k) < 0)
            break;
        data += k;
        size -= k;
    }
    uint32_t opaque;
    Y.ping(a.m, &opaque);
    Y.goaway(a.m);
    Y.destroy(a.m);
    return 0;
}
