/* One control connection of cp2pd as seen by the request handlers that live
 * outside daemon.c (the DHT requests). Loop thread only. */
#ifndef CP2P_DAEMON_SESSION_H
#define CP2P_DAEMON_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/dht.h"
#include "cp2p/host.h"
#include "cp2p/pubsub.h"
#include "p2pd.pb-c.h"

typedef struct cp2p_daemon_client cp2p_daemon_client_t;

cp2p_host_t *cp2p_daemon_host(cp2p_daemon_client_t *c);
cp2p_dht_t *cp2p_daemon_dht(cp2p_daemon_client_t *c);
/* Queue bytes to the client socket (copied); more may follow. */
int cp2p_daemon_send(cp2p_daemon_client_t *c, const uint8_t *p, size_t n);
/* The last answer to the current request: send b unless rc < 0 (then the
 * client is closed), free b, and read the next request. */
void cp2p_daemon_reply(cp2p_daemon_client_t *c, cp2p_buf_t *b, int rc);
/* reply with OK (err NULL) or an ERROR response. */
void cp2p_daemon_reply_status(cp2p_daemon_client_t *c, const char *err);
/* An asynchronous operation holds the client until its callback, which
 * calls release: 0 there means the client went away and the result is for
 * nobody (then do not touch c again). */
void cp2p_daemon_hold(cp2p_daemon_client_t *c);
int cp2p_daemon_release(cp2p_daemon_client_t *c);

/* The current request's deadline, p2pd's: seconds from its timeout field,
 * or CP2P_DAEMON_DEFAULT_TIMEOUT_MS for 0 and less. When it passes, the
 * host's and the DHT's operations with c as their arg are cancelled, and an
 * ERROR answer says "context deadline exceeded". The reply stops it. */
#define CP2P_DAEMON_DEFAULT_TIMEOUT_MS 60000
void cp2p_daemon_deadline(cp2p_daemon_client_t *c, int64_t seconds);
/* 1 when the deadline passed before the answer. */
int cp2p_daemon_timed_out(const cp2p_daemon_client_t *c);

/* Answers a validated DHT request (in src/daemon/dht.c). */
void cp2p_daemon_dht_request(cp2p_daemon_client_t *c, const P2pd__DHTRequest *r);

/* A SUBSCRIBE turns the connection into a stream of messages (PUBSUB.md):
 * after the OK answer the client sends nothing more that counts; when it
 * goes (closes, errs, or the daemon closes), on_end(arg) runs once, inside
 * the close. Messages go with cp2p_daemon_push. */
int cp2p_daemon_subscribe(cp2p_daemon_client_t *c, void (*on_end)(void *arg), void *arg);
/* Queue one framed message to a subscribed client. One that does not read
 * loses messages past CP2P_DAEMON_MAX_PUSH_QUEUED queued bytes (as p2pd's
 * subscriptions drop past their buffer): 0 sent, 1 dropped, < 0 gone. */
#define CP2P_DAEMON_MAX_PUSH_QUEUED (4 * 1024 * 1024)
int cp2p_daemon_push(cp2p_daemon_client_t *c, const uint8_t *p, size_t n);

/* The daemon's pubsub requests (src/daemon/pubsub.c): the state kept per
 * daemon (subscriptions by topic), made at the daemon's start when it has a
 * pubsub, and the answers to validated PUBSUB requests. */
typedef struct cp2p_daemon_ps cp2p_daemon_ps_t;
int cp2p_daemon_ps_new(cp2p_pubsub_t *ps, cp2p_daemon_ps_t **out);
void cp2p_daemon_ps_free(cp2p_daemon_ps_t *dps);
cp2p_daemon_ps_t *cp2p_daemon_ps(cp2p_daemon_client_t *c);
void cp2p_daemon_pubsub_request(cp2p_daemon_client_t *c, const P2pd__PSRequest *r);

#endif
