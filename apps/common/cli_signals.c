/* See cli_signals.h. */
#include <signal.h>

#include "cli_signals.h"

static void on_signal(uv_signal_t *sig, int signum)
{
    cli_signals_t *s = sig->data;
    s->fn(s->arg);
}

void cli_signals_start(cli_signals_t *s, uv_loop_t *loop, void (*fn)(void *arg), void *arg)
{
    signal(SIGPIPE, SIG_IGN);
    s->fn = fn;
    s->arg = arg;
    s->closed = 0;
    uv_signal_init(loop, &s->sigint);
    uv_signal_init(loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
}

void cli_signals_close(cli_signals_t *s)
{
    if (s->closed++)
        return;
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
}
