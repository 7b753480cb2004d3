/* The cp2p program's commands. Adding one: a line in CP2P_COMMANDS and a
 * cmd_<name>.c defining int cmd_<name>(int argc, char **argv). */
#ifndef CP2P_CLI_H
#define CP2P_CLI_H

#include "cp2p/host.h"

#define CP2P_COMMANDS                                                                   \
    X(keygen, "write a new private key")                                                 \
    X(id, "print the peer ID of a key")                                                 \
    X(mdns, "discover peers on the local network (mDNS)")                               \
    X(ping, "serve ping, and ping a peer")                                              \
    X(dht, "a Kademlia DHT node: put, get and provide from stdin")                      \
    X(perf, "measure throughput with the perf protocol (libp2p perf runner flags)")

#define X(name, help) int cmd_##name(int argc, char **argv);
CP2P_COMMANDS
#undef X

/* Exit codes. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

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

#endif
