/* multistream-select 1.0.0: a sans-I/O protocol negotiation engine.
 *
 * Usage: create a dialer (ordered proposals) or a listener (supported ids
 * and/or a match callback), call cp2p_mss_start() once and send what it
 * appended, then feed every byte read from the channel to cp2p_mss_input()
 * and send what it appends, until it returns CP2P_MSS_DONE or an error.
 * Once done, cp2p_mss_selected() names the protocol and cp2p_mss_leftover()
 * holds bytes that arrived after the last negotiation message: they belong
 * to the selected protocol. */
#ifndef CP2P_MSS_H
#define CP2P_MSS_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

#define CP2P_MSS_PROTOCOL_ID "/multistream/1.0.0"
/* Largest message on the wire, the length prefix's value, newline included
 * (what go-multistream and js-multistream-select accept). */
#define CP2P_MSS_MAX_MSG 1024
/* Messages one negotiation may receive (header, proposals, "ls", answers):
 * each may earn a reply, so a remote that repeats "ls" or proposes forever
 * would make us write without end. A real negotiation takes a handful. */
#define CP2P_MSS_MAX_MESSAGES 64

/* Dialer flag: with a single proposal, consider it selected as soon as
 * cp2p_mss_start() returns, so application data may follow the proposal in
 * the same write. The confirmation is still read (and checked) by input(). */
#define CP2P_MSS_LAZY 1u

/* cp2p_mss_input() result when negotiation has finished. */
#define CP2P_MSS_DONE 1

typedef struct cp2p_mss cp2p_mss_t;

/* Listener match callback: return nonzero to accept the protocol id
 * (id[len] is 0; ids with embedded NULs never reach it). */
typedef int (*cp2p_mss_match_fn)(void *ctx, const char *id, size_t len);

/* protocols: n ids tried in order; copied. CP2P_EINVAL if n == 0, an id is
 * empty, too long or contains '\n', or CP2P_MSS_LAZY is set with n != 1. */
int cp2p_mss_dialer_new(cp2p_mss_t **out, const char *const *protocols, size_t n,
                        unsigned flags);
/* protocols (may be NULL with n == 0) are matched exactly and listed in
 * answer to "ls"; match (may be NULL) can accept further ids. Copied. */
int cp2p_mss_listener_new(cp2p_mss_t **out, const char *const *protocols, size_t n,
                          cp2p_mss_match_fn match, void *match_ctx);
void cp2p_mss_free(cp2p_mss_t *m);

/* Appends the opening bytes: the dialer's header and first proposal, the
 * listener's header. Call once, before input(). */
int cp2p_mss_start(cp2p_mss_t *m, cp2p_buf_t *out);
/* Bytes from the remote, any amount. Appends replies to out. Returns 0 while
 * negotiating, CP2P_MSS_DONE when a protocol is agreed, or a negative error
 * (CP2P_ENEGOTIATE: every proposal refused; CP2P_EPARSE / CP2P_EOVERFLOW:
 * malformed message; CP2P_EPROTO: unexpected message; CP2P_ELIMIT: more than
 * CP2P_MSS_MAX_MESSAGES messages), after which the
 * channel must be closed. Input after DONE is CP2P_ESTATE. */
int cp2p_mss_input(cp2p_mss_t *m, const uint8_t *p, size_t n, cp2p_buf_t *out);

/* The agreed protocol once input() returned DONE (for a lazy dialer, right
 * after start()), else NULL. Owned by m. */
const char *cp2p_mss_selected(const cp2p_mss_t *m);
/* Bytes received after the final negotiation message; owned by m, valid until
 * cp2p_mss_free(). */
const uint8_t *cp2p_mss_leftover(const cp2p_mss_t *m, size_t *n);

#endif
