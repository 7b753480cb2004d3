/* How the commands of cp2p and cp2pd stop: SIGPIPE ignored (a peer that
 * goes away is an error code, not the end of the process), and SIGINT or
 * SIGTERM calling the command's own stop, which closes what it opened and,
 * last, these handles, so that uv_run returns. */
#ifndef CP2P_CLI_SIGNALS_H
#define CP2P_CLI_SIGNALS_H

#include <uv.h>

typedef struct cli_signals {
    uv_signal_t sigint, sigterm;
    void (*fn)(void *arg);
    void *arg;
    int closed;
} cli_signals_t;

/* fn(arg) on SIGINT or SIGTERM (each time: fn must tolerate a second call). */
void cli_signals_start(cli_signals_t *s, uv_loop_t *loop, void (*fn)(void *arg), void *arg);
/* Close both handles; a second call does nothing. */
void cli_signals_close(cli_signals_t *s);

#endif
