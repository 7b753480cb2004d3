/* The swarm: connections (a raw transport connection upgraded with
 * multistream-select, a security session and a muxer), their streams, the
 * dialer and the listeners. Internal to the library; the host sits on top
 * and gives the swarm callbacks, never the other way round. */
#ifndef CP2P_SWARM_H
#define CP2P_SWARM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cp2p/buf.h"
#include "cp2p/conn.h"
#include "cp2p/keys.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"
#include "cp2p/stream.h"
#include "mss/mss.h"
#include "muxer/muxer.h"
#include "security/security.h"
#include "swarm/rcmgr.h"
#include "transport/pnet.h"
#include "transport/transport.h"

#define CP2P_SWARM_MAX_MUXERS 4
#define CP2P_SWARM_MAX_SECURITIES 4
/* Unsent wire bytes per connection above which streams stop feeding the
 * muxer, and below which they start again. */
#define CP2P_CONN_HIGH_WATER (1024 * 1024)
#define CP2P_CONN_LOW_WATER (256 * 1024)
/* Stream data stops at the high-water mark, after at most one more stream
 * window (max_stream_buffer). Output beyond that and this slack was caused by
 * the remote (multistream replies, yamux ACKs, RSTs and window updates it
 * asked for): then the socket is not read either until the queue is back
 * under the high-water mark, so a remote that does not read our answers stops
 * being read, while a bulk transfer both ways never stops both readers.
 * Before the connection is open the marks are lower: a handshake never needs
 * more. */
#define CP2P_CONN_CONTROL_SLACK (256 * 1024)
#define CP2P_CONN_UPGRADE_HIGH_WATER (64 * 1024)
#define CP2P_CONN_UPGRADE_LOW_WATER (16 * 1024)
/* Progress for the stall check: in each negotiation timeout, the remote must
 * take this much of what was queued at its start (or all of it, if less). A
 * reader that takes a trickle keeps nothing alive. */
#define CP2P_CONN_MIN_PROGRESS (64 * 1024)
/* What a stream may still receive after its connection stopped reading for
 * it: the rest of one socket read, decrypted, and one whole muxer frame
 * (mplex: up to 1 MiB). */
#define CP2P_CONN_INPUT_SLACK (2 * 1024 * 1024)
/* Buffers handed to one uv_write. */
#define CP2P_CONN_OUT_CHUNKS 8
/* The transport framing's own frames (websocket pongs) a remote may have
 * queued and not read: past it, the connection is closed. */
#define CP2P_CONN_WIRE_QUEUE_MAX (64 * 1024)
/* A connection closed on purpose gets this long to deliver what it queued
 * and to see the remote's EOF. */
#define CP2P_CONN_CLOSE_TIMEOUT_MS 2000

typedef struct cp2p_swarm cp2p_swarm_t;

typedef struct cp2p_swarm_config {
    const cp2p_privkey_t *identity; /* borrowed */
    const cp2p_mux_vtable_t *muxers[CP2P_SWARM_MAX_MUXERS];
    size_t n_muxers;
    const cp2p_sec_vtable_t *securities[CP2P_SWARM_MAX_SECURITIES]; /* preference order */
    size_t n_securities;
    uint32_t max_streams_per_conn, max_stream_buffer;
    uint32_t dial_timeout_ms, negotiate_timeout_ms;
    uint32_t handshake_timeout_ms; /* see cp2p_host_config_t */
    uint32_t max_conns_per_ip, max_conns_per_subnet; /* inbound; 0 = no limit */
    int limit_loopback;
    /* Port reuse for every dial (go-libp2p's default, which hole punching
     * through a NAT needs: identify then observes our listen port's
     * mapping): 1 = from a listen port when one fits, else any port. */
    int reuse_port;
    /* The resource manager's limits (read by cp2p_swarm_new only). The system
     * scope's conns bound open connections and our dials; the transient
     * scope's conns_in the inbound connections still upgrading. */
    const cp2p_rcmgr_config_t *limits;
    /* A private network: every connection runs XSalsa20 under this key
     * below everything else (transport/pnet.h). */
    int has_psk;
    uint8_t psk[CP2P_PNET_KEY_SIZE];
    cp2p_listen_opts_t listen_opts; /* borrowed strings: /wss's certificate */
} cp2p_swarm_config_t;

/* What the swarm tells the layer above. */
typedef struct cp2p_swarm_hooks {
    void *ctx;
    /* Inbound stream protocol router: nonzero if a handler exists for id. */
    int (*match)(void *ctx, const char *id, size_t len);
    /* An inbound stream negotiated to a protocol match() accepted; s is a new
     * reference the callee owns. */
    void (*inbound_stream)(void *ctx, cp2p_stream_t *s);
    void (*connected)(void *ctx, cp2p_conn_t *c);
    void (*disconnected)(void *ctx, cp2p_conn_t *c);
} cp2p_swarm_hooks_t;

typedef struct cp2p_swarm_stats {
    uint64_t conns_opened;   /* upgraded successfully */
    uint64_t conns_failed;   /* upgrade failed: protocol error, timeout, wrong peer */
    uint64_t conns_rejected; /* inbound over the connection limit */
    uint64_t conns_errored;  /* closed after a protocol violation once open */
    uint64_t streams_in, streams_out; /* negotiated to a protocol */
    uint64_t streams_open;   /* negotiated and not yet ended */
    uint64_t streams_bad;    /* reset because the remote broke the negotiation */
    uint64_t bytes_in, bytes_out; /* stream payload delivered / taken by the muxer */
    uint64_t memory_holds;   /* times a connection stopped being read because memory was full */
    uint64_t streams_refused; /* inbound streams refused or reset for a resource limit */
} cp2p_swarm_stats_t;

/* ---- connections and streams (conn.c, stream.c) ---- */

typedef enum {
    CONN_SEC_NEGOTIATING, /* multistream-select for the security protocol */
    CONN_SECURING,        /* the security handshake (noise, tls, plaintext) */
    CONN_MUX_NEGOTIATING, /* multistream-select for the muxer, encrypted */
    CONN_OPEN,
    CONN_CLOSED
} cp2p_conn_state_t;

typedef void (*cp2p_conn_ready_fn)(cp2p_conn_t *c, int status, void *arg);

struct cp2p_conn {
    int refs;
    int handles;                 /* open libuv handles (socket, timer) */
    cp2p_swarm_t *sw;            /* NULL once the swarm let go of it */
    cp2p_swarm_config_t cfg;     /* a copy: the connection may outlive the swarm */
    cp2p_conn_t *prev, *next;    /* the swarm's list */
    cp2p_conn_state_t state;
    int inbound;
    int initiator;               /* our role in multistream-select, the security
                                    handshake and the muxer: !inbound, unless a
                                    hole punch (DCUtR) set it */
    int upgrading;               /* counted as pending by the swarm until open or closed */
    uv_loop_t *loop;
    uv_stream_t *sock;
    uv_timer_t timer;            /* negotiation deadline, then stream deadlines and
                                    stalled output, then the close deadline */
    cp2p_multiaddr_t local, remote;
    cp2p_conn_ready_fn ready;    /* runs once: upgraded or failed */
    void *ready_arg;

    cp2p_mss_t *mss;
    const cp2p_sec_vtable_t *secvt;
    cp2p_sec_t *sec;
    const cp2p_mux_vtable_t *muxvt;
    cp2p_mux_t *mux;
    int has_expected;
    cp2p_peer_id_t expected, peer;
    cp2p_pubkey_t *remote_key;

    uint8_t *rbuf;               /* a pooled socket read buffer, held only during a read
                                    or while rtail > 0 */
    size_t rtail;                /* a partial frame at rbuf's start, left by open_in_place */
    cp2p_buf_t plain;            /* decrypted bytes not yet given to mss or the muxer */
    cp2p_buf_t chunks[CP2P_CONN_OUT_CHUNKS]; /* sealed bytes waiting for uv_write */
    size_t nchunks;
    size_t queued;               /* bytes in chunks and in uv_write requests */
    int blocked;                 /* a stream waits for queued to drop */
    int warned;                  /* a violation was logged already */
    int pending_error;           /* failure to report from the timer */
    int goaway;                  /* the remote takes no new streams (yamux GoAway) */
    int holds;                   /* streams over their buffer limit, or output over the
                                    high-water mark: the socket is not read */
    int out_held;                /* one of the holds: queued output over the high-water mark */
    int mem_held;                /* one of the holds: its peer's or the system's memory is full */
    size_t mem;                  /* bytes charged to the swarm: queued output, stream buffers */
    /* Resource manager: the transient scope while upgrading, then the peer's;
     * what the connection reserved from it and from the system scope. */
    cp2p_rc_scope_t *owner;
    int rc_owner, rc_system, rc_fd;

    /* Output progress, to tell a slow remote from one that stopped reading. */
    uint64_t issued;             /* bytes ever handed to uv_write */
    uint64_t mark_sent;          /* issued minus libuv's backlog, when this window began */
    uint64_t mark_need;          /* what the window must see sent to count as progress */
    uint64_t progress_ms;        /* when this window began */

    /* Closing gracefully: the socket's write side is shut once the queued
     * bytes are out; the handles close on the remote's EOF or the deadline. */
    uv_shutdown_t shutdown_req;
    int shut_done, remote_eof;

    /* Private network: our stream (its nonce goes out first, once), the
     * remote's (its nonce is the first 24 bytes read). */
    cp2p_pnet_stream_t pn_out, pn_in;
    size_t pn_in_have;
    int pn_sent;
    /* The transport's framing (websocket), and its own frames (pongs, close)
     * on their way out. */
    const cp2p_wire_vtable_t *wire;
    void *wire_state;
    size_t wire_queued;

    cp2p_stream_t **streams;     /* live streams (weak: a stream removes itself) */
    size_t nstreams, cap_streams;
    int watching;                /* the timer checks stream deadlines and output */
};

/* Takes over rc. expected may be NULL. ready runs once with the upgrade's
 * result (never from inside this call). The swarm holds the first reference. */
int cp2p_conn_new(cp2p_swarm_t *sw, cp2p_rawconn_t *rc, int inbound, const cp2p_peer_id_t *expected,
                  cp2p_conn_ready_fn ready, void *arg, cp2p_conn_t **out);
/* The same with the upgrade's role given: initiator 1 = the client of
 * multistream-select, the security handshake and the muxer, whatever the
 * direction (a TCP simultaneous open has two dialers: DCUtR says which one
 * is the client, and multistream's simultaneous open is not used). */
int cp2p_conn_new_role(cp2p_swarm_t *sw, cp2p_rawconn_t *rc, int inbound, int initiator,
                       const cp2p_peer_id_t *expected, cp2p_conn_ready_fn ready, void *arg,
                       cp2p_conn_t **out);
/* Close with a reason (0 = local request). Streams die with CP2P_ERESET. The
 * connection leaves the swarm's list before any callback runs. A local close
 * (0, CP2P_ECANCELED) or the remote's EOF (CP2P_ECLOSED) still delivers what
 * was queued (after a yamux GoAway), within CP2P_CONN_CLOSE_TIMEOUT_MS; on
 * any other error the queued bytes get one non-blocking try. */
void cp2p_conn_close_with(cp2p_conn_t *c, int status);
/* A stream without flow control (mplex) buffered more than it may: stop
 * reading the socket while any stream holds it (head-of-line blocking, the
 * only backpressure mplex has); hold = 0 lets go again. */
void cp2p_conn_hold_input(cp2p_conn_t *c, int hold);
/* Account delta bytes held for this connection's remote (stream receive
 * buffers; conn.c charges its own output queue) to the swarm's memory, and
 * to extra (a stream's scope) too if not NULL. */
void cp2p_conn_charge(cp2p_conn_t *c, cp2p_rc_scope_t *extra, long delta);
/* Put bytes on the wire (sealed once the connection is secured). */
int cp2p_conn_send(cp2p_conn_t *c, const uint8_t *p, size_t n);
/* Hand pending bytes to the socket. Every entry point calls it before returning. */
void cp2p_conn_flush(cp2p_conn_t *c);
/* 1 while the unsent bytes are under the high-water mark. */
int cp2p_conn_writable(const cp2p_conn_t *c);

/* Run the timer as a periodic check of stream negotiation deadlines and of
 * output the remote does not take. */
void cp2p_conn_watch(cp2p_conn_t *c);
/* Log a remote's protocol violation, once per connection. */
void cp2p_conn_violation(cp2p_conn_t *c, const char *what, int err);

/* Stream side of a connection (stream.c). */
int cp2p_conn_open_stream(cp2p_conn_t *c, const char *const *protocols, size_t n,
                          cp2p_stream_open_cb cb, void *arg);
/* The muxer event table for a connection's session. */
void cp2p_conn_mux_events(cp2p_conn_t *c, cp2p_mux_events_t *ev);
/* Feed streams that have queued writes (the socket drained). */
void cp2p_conn_pump_streams(cp2p_conn_t *c);
/* Send the FIN of streams whose close waits only on a write callback still
 * running (a graceful close is about to stop the muxer). */
void cp2p_conn_send_closes(cp2p_conn_t *c);
/* Deliver the callbacks a stream owes (stream.c; the swarm's queue runs it)
 * and drop the queue's reference. */
void cp2p_stream_run_later(cp2p_stream_t *s);
/* Kill every stream (the connection is closing). */
void cp2p_conn_kill_streams(cp2p_conn_t *c, int status);
/* Reset streams whose negotiation passed its deadline; 1 if some still negotiate. */
int cp2p_conn_expire_streams(cp2p_conn_t *c, uint64_t now_ms);

/* ---- the swarm (swarm.c) ---- */

int cp2p_swarm_new(uv_loop_t *loop, const cp2p_swarm_config_t *cfg, const cp2p_swarm_hooks_t *hooks,
                   cp2p_swarm_t **out);
/* Closes listeners, dials and connections; done runs when all handles are closed. */
void cp2p_swarm_close(cp2p_swarm_t *sw, void (*done)(void *arg), void *arg);
const cp2p_swarm_config_t *cp2p_swarm_config(const cp2p_swarm_t *sw);
const cp2p_swarm_hooks_t *cp2p_swarm_hooks(const cp2p_swarm_t *sw);
cp2p_swarm_stats_t *cp2p_swarm_stats(cp2p_swarm_t *sw);

/* On success the new listener's bound addresses are appended to *addrs
 * (a realloc'd array of *n values the caller frees) if addrs is not NULL. */
int cp2p_swarm_listen(cp2p_swarm_t *sw, const cp2p_multiaddr_t *ma, cp2p_multiaddr_t **addrs,
                      size_t *n);
int cp2p_swarm_listen_addrs(cp2p_swarm_t *sw, cp2p_multiaddr_t **addrs, size_t *n);

/* Connections no transport of the swarm makes: a relayed circuit
 * (src/protocols/relay_client.c) is a byte stream that the swarm upgrades
 * like a TCP connection, through the one code path of conn.c. The layer
 * above gives the swarm a dialer for the addresses it matches (dial's peer
 * is the dial's expected peer, or NULL; fn runs once unless cancelled), and
 * hands over the raw connections it accepted. */
typedef struct cp2p_swarm_ext_dialer {
    void *ctx;
    int (*matches)(void *ctx, const cp2p_multiaddr_t *ma);
    int (*dial)(void *ctx, const cp2p_multiaddr_t *ma, const cp2p_peer_id_t *peer,
                cp2p_dial_fn fn, void *arg, void **out);
    void (*dial_cancel)(void *ctx, void *d);
} cp2p_swarm_ext_dialer_t;
/* d is copied; NULL removes it. */
void cp2p_swarm_set_ext_dialer(cp2p_swarm_t *sw, const cp2p_swarm_ext_dialer_t *d);
/* An inbound raw connection (taken over: freed on failure). No per-IP limits:
 * its address is the relay's. */
void cp2p_swarm_accept_raw(cp2p_swarm_t *sw, cp2p_rawconn_t *rc);

/* c is borrowed (NULL on error). */
typedef void (*cp2p_swarm_dial_cb)(int status, cp2p_conn_t *c, void *arg);
/* Dial addrs in order until one upgrades. With peer, an open connection to it
 * is reused and the handshake must prove it. cb never runs from inside. */
int cp2p_swarm_dial(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer, const cp2p_multiaddr_t *addrs,
                    size_t n, cp2p_swarm_dial_cb cb, void *arg);
/* How a dial is made (cp2p_swarm_dial_with; all zero: as cp2p_swarm_dial). */
typedef struct cp2p_swarm_dial_opts {
    /* The upgrade's role: 0 by direction (the dialer is the client), 1 the
     * client, -1 the server (DCUtR's roles for a simultaneous open). */
    int role;
    /* 1: from a listen port when one fits (else any); 2: only from it. */
    int reuse_port;
    /* Direct only: an open relayed connection (a /p2p-circuit remote) is not
     * reused, nor is a dial under way joined. */
    int direct;
} cp2p_swarm_dial_opts_t;
int cp2p_swarm_dial_with(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer, const cp2p_multiaddr_t *addrs,
                         size_t n, const cp2p_swarm_dial_opts_t *opts, cp2p_swarm_dial_cb cb,
                         void *arg);
/* For ms, a connection accepted from remote (its IP and port) takes the
 * upgrade role given (1 client, -1 server): a hole punch's simultaneous dial
 * may arrive at our listener before ours leaves, and DCUtR's roles hold for
 * it too. Bounded: the oldest expectation gives way. */
int cp2p_swarm_expect_inbound(cp2p_swarm_t *sw, const cp2p_multiaddr_t *remote, int role,
                              uint32_t ms);
/* Turn port reuse for every dial on or off (cp2p_swarm_config_t.reuse_port). */
void cp2p_swarm_set_reuse_port(cp2p_swarm_t *sw, int on);
/* 1 if ma goes through a relay (has /p2p-circuit). */
int cp2p_swarm_addr_relayed(const cp2p_multiaddr_t *ma);
/* The oldest open connection to peer that takes new streams, a direct one
 * before a relayed one, or NULL. */
cp2p_conn_t *cp2p_swarm_conn_to(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer);
/* The same, direct connections only. */
cp2p_conn_t *cp2p_swarm_direct_conn_to(cp2p_swarm_t *sw, const cp2p_peer_id_t *peer);
size_t cp2p_swarm_conn_count(const cp2p_swarm_t *sw);

/* Called by conn.c: the connection started closing (it leaves the list),
 * then it closed (the disconnected hook runs and the swarm drops its
 * reference), then its handles are closed (it detaches). */
void cp2p_swarm_conn_unlink(cp2p_swarm_t *sw, cp2p_conn_t *c);
void cp2p_swarm_conn_closed(cp2p_swarm_t *sw, cp2p_conn_t *c);
void cp2p_swarm_conn_gone(cp2p_swarm_t *sw);

/* Memory connections hold for their remotes, charged to the connection's
 * scope (transient or its peer's) and the system's, plus `extra` (a stream's
 * protocol scope, or NULL). A connection that has just been read while its
 * scope or the system is over its memory limit is not read again
 * (cp2p_swarm_mem_hold) until both are back under three quarters. */
void cp2p_swarm_mem_add(cp2p_swarm_t *sw, cp2p_conn_t *c, cp2p_rc_scope_t *extra, long delta);
int cp2p_swarm_mem_over(const cp2p_swarm_t *sw, const cp2p_conn_t *c);
void cp2p_swarm_mem_hold(cp2p_swarm_t *sw, cp2p_conn_t *c);
/* The connection's handles are closed: what it reserved goes back. */
void cp2p_swarm_conn_release(cp2p_swarm_t *sw, cp2p_conn_t *c);
cp2p_rcmgr_t *cp2p_swarm_rcmgr(cp2p_swarm_t *sw);
/* libuv's rule: no callback runs inside the public call that caused it.
 * Public entry points that can end streams, connections or dials bracket
 * themselves with enter/leave; while inside, callbacks are owed: streams
 * (stream.c), dials (swarm.c) and the host's events queue them with
 * cp2p_swarm_later, which runs fn(arg) on a later loop turn, before the
 * swarm's close is done (0, or CP2P_ENOMEM / CP2P_ESTATE when the queue
 * cannot take it: the swarm is past closing). */
void cp2p_swarm_enter(cp2p_swarm_t *sw);
void cp2p_swarm_leave(cp2p_swarm_t *sw);
int cp2p_swarm_in_call(const cp2p_swarm_t *sw);
int cp2p_swarm_later(cp2p_swarm_t *sw, void (*fn)(void *arg), void *arg);
/* Log a refusal for a resource limit (rate-limited per scope type and resource). */
void cp2p_swarm_rc_refused(cp2p_swarm_t *sw, const cp2p_rc_scope_t *s, const char *what);

#endif
