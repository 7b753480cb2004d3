/* The cp2p program's commands. Adding one: a line in CP2P_COMMANDS and a
 * cmd_<name>.c defining int cmd_<name>(int argc, char **argv). */
#ifndef CP2P_CLI_H
#define CP2P_CLI_H

#include <stdio.h>

#include "cp2p/host.h"

#define CP2P_COMMANDS                                                                   \
    X(keygen, "write a new private key")                                                 \
    X(id, "print the peer ID of a key")                                                 \
    X(mdns, "discover peers on the local network (mDNS)")                               \
    X(ping, "serve ping, and ping a peer")                                              \
    X(relay, "run a circuit relay v2 server")                                            \
    X(dht, "a Kademlia DHT node: put, get and provide from stdin")                      \
    X(pubsub, "publish and subscribe (gossipsub, floodsub): a chat on stdin")              \
    X(perf, "measure throughput with the perf protocol (libp2p perf runner flags)")    \
    X(rendezvous, "run a rendezvous point (/rendezvous/1.0.0)")

#define X(name, help) int cmd_##name(int argc, char **argv);
CP2P_COMMANDS
#undef X

/* Exit codes. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* The commands' options, as a table cli_parse reads: "--name" (aliases
 * after '|', e.g. "--verbose|-v"), what it takes and where it goes. A
 * number outside [min, max] is refused ("bad option --ttl 0"). */
typedef enum {
    CLI_FLAG, /* no value: *(int *)dst = 1 */
    CLI_STR,  /* *(const char **)dst = the value */
    CLI_LIST, /* appended to (cli_list_t *)dst, at most its cap */
    CLI_NUM   /* *(double *)dst = the value, a number in [min, max] */
} cli_opt_kind_t;
typedef struct cli_opt {
    const char *name;
    cli_opt_kind_t kind;
    void *dst;
    double min, max;
} cli_opt_t;
#define CLI_OPTION(name, kind, dst) {name, kind, dst, 0, 0}
#define CLI_NUMBER(name, dst, min, max) {name, CLI_NUM, dst, min, max}
#define CLI_END {NULL, CLI_FLAG, NULL, 0, 0}
typedef struct cli_list {
    const char **v;
    size_t n, cap;
} cli_list_t;
/* Parse argv[1..argc) for cmd against opts (ended by a NULL name). -h and
 * --help print usage to stdout and return CLI_HELP. Arguments that are no
 * option go to positional (at most its cap; NULL: none allowed). CLI_OK, or
 * CLI_USAGE with the reason printed (cli_usage). */
enum { CLI_HELP = -1 };
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt_t *opts,
              void (*usage)(FILE *), cli_list_t *positional);

/* Prints "cp2p: <what>: <reason>" on one line to stderr; returns CLI_FAIL. */
int cli_fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As cli_fail, for misuse; adds a hint to run --help and returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "Local peer id: <id>", flushed. */
void cli_print_peer_id(cp2p_host_t *h);
/* One "<prefix><multiaddr>/p2p/<id>" line per listen address, flushed. */
int cli_print_listen_addrs(cp2p_host_t *h, const char *prefix);
/* The next blank-separated word of *p, terminated in place; NULL at the end. */
char *cli_next_word(char **p);
/* p without its leading and trailing blanks (trimmed in place). */
char *cli_rest(char *p);
/* Why a key file could not be read, in words for the user. */
const char *cli_key_error(int rc);
/* --psk FILE: the private network key into key (32 bytes); 0, or CLI_FAIL
 * with the reason printed. */
int cli_load_psk(const char *cmd, const char *path, uint8_t key[32]);


#endif
