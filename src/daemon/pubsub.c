/* cp2pd PUBSUB requests (go-libp2p-daemon specs/PUBSUB.md): GET_TOPICS,
 * LIST_PEERS and PUBLISH answer once; SUBSCRIBE answers OK and turns the
 * connection into a stream of PSMessages until the client closes it. Each
 * SUBSCRIBE is a subscription of its own, as in p2pd; the topic is joined
 * while one lasts and left with the last one. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "daemon/control.h"
#include "daemon/session.h"

#define LOG "cp2pd"

typedef struct sub {
    struct sub *next;
    cp2p_daemon_ps_t *dps;
    cp2p_daemon_client_t *c;
    char *topic;
} sub_t;

struct cp2p_daemon_ps {
    cp2p_pubsub_t *ps;
    sub_t *subs;
    uint64_t dropped; /* messages a subscriber did not read in time */
};

int cp2p_daemon_ps_new(cp2p_pubsub_t *ps, cp2p_daemon_ps_t **out)
{
    cp2p_daemon_ps_t *d = calloc(1, sizeof *d);
    if (!d)
        return CP2P_ENOMEM;
    d->ps = ps;
    *out = d;
    return 0;
}

void cp2p_daemon_ps_free(cp2p_daemon_ps_t *d)
{
    if (!d)
        return;
    /* The clients are closed first: every subscription has ended. */
    while (d->subs) {
        sub_t *s = d->subs;
        d->subs = s->next;
        free(s->topic);
        free(s);
    }
    free(d);
}

static int topic_has_subs(const cp2p_daemon_ps_t *d, const char *topic)
{
    for (const sub_t *s = d->subs; s; s = s->next)
        if (!strcmp(s->topic, topic))
            return 1;
    return 0;
}

static void on_message(cp2p_pubsub_t *ps, const cp2p_pubsub_message_t *m, void *arg)
{
    (void)ps;
    cp2p_daemon_ps_t *d = arg;
    uint8_t seq[8];
    for (int i = 0; i < 8; i++)
        seq[i] = (uint8_t)(m->seqno >> (56 - 8 * i));
    P2pd__PSMessage pm = P2PD__PSMESSAGE__INIT;
    char *topics[1] = {(char *)m->topic};
    pm.data = (ProtobufCBinaryData){.data = (uint8_t *)m->data, .len = m->len};
    pm.has_data = 1;
    if (m->from) {
        pm.from = (ProtobufCBinaryData){.data = (uint8_t *)m->from->bytes, .len = m->from->len};
        pm.has_from = 1;
        pm.seqno = (ProtobufCBinaryData){.data = seq, .len = 8};
        pm.has_seqno = 1;
    }
    pm.topicids = topics;
    pm.n_topicids = 1;
    cp2p_buf_t b = {0};
    if (cp2p_daemon_message_append(&b, &pm.base) < 0) {
        cp2p_buf_free(&b);
        return;
    }
    for (sub_t *s = d->subs, *nx; s; s = nx) {
        nx = s->next; /* a push that fails closes the client: s goes */
        if (strcmp(s->topic, m->topic))
            continue;
        if (cp2p_daemon_push(s->c, b.data, b.len) == 1 && d->dropped++ % 1000 == 0)
            cp2p_log_info(LOG, "a subscriber of %s does not read: messages dropped (%llu so far)",
                          m->topic, (unsigned long long)d->dropped);
    }
    cp2p_buf_free(&b);
}

/* The client of s went: the subscription ends; the last one leaves the topic. */
static void sub_end(void *arg)
{
    sub_t *s = arg;
    cp2p_daemon_ps_t *d = s->dps;
    for (sub_t **sp = &d->subs; *sp; sp = &(*sp)->next)
        if (*sp == s) {
            *sp = s->next;
            break;
        }
    if (!topic_has_subs(d, s->topic))
        cp2p_pubsub_leave(d->ps, s->topic);
    free(s->topic);
    free(s);
}

static void subscribe(cp2p_daemon_client_t *c, cp2p_daemon_ps_t *d, const char *topic)
{
    sub_t *s = calloc(1, sizeof *s);
    if (!s || !(s->topic = strdup(topic))) {
        free(s);
        cp2p_daemon_reply_status(c, cp2p_strerror(CP2P_ENOMEM));
        return;
    }
    int rc = topic_has_subs(d, topic) ? 0 : cp2p_pubsub_join(d->ps, topic, on_message, d);
    if (rc < 0) {
        free(s->topic);
        free(s);
        cp2p_daemon_reply_status(c, cp2p_strerror(rc));
        return;
    }
    s->dps = d;
    s->c = c;
    s->next = d->subs;
    d->subs = s;
    /* On failure the client is closed, and sub_end has run. */
    cp2p_daemon_subscribe(c, sub_end, s);
}

void cp2p_daemon_pubsub_request(cp2p_daemon_client_t *c, const P2pd__PSRequest *r)
{
    cp2p_daemon_ps_t *d = cp2p_daemon_ps(c);
    if (!d) {
        cp2p_daemon_reply_status(c, "PubSub not enabled");
        return;
    }
    const char *topic = r->topic;
    if (r->type != P2PD__PSREQUEST__TYPE__GET_TOPICS && !topic) {
        cp2p_daemon_reply_status(c, "Malformed request; missing topic parameter");
        return;
    }
    P2pd__Response resp = P2PD__RESPONSE__INIT;
    P2pd__PSResponse pr = P2PD__PSRESPONSE__INIT;
    cp2p_buf_t b = {0};
    switch (r->type) {
    case P2PD__PSREQUEST__TYPE__GET_TOPICS: {
        size_t n = cp2p_pubsub_topics(d->ps, NULL, 0);
        const char **names = calloc(n ? n : 1, sizeof *names);
        if (!names) {
            cp2p_daemon_reply_status(c, cp2p_strerror(CP2P_ENOMEM));
            return;
        }
        pr.n_topics = cp2p_pubsub_topics(d->ps, names, n);
        pr.topics = (char **)names;
        resp.pubsub = &pr;
        cp2p_daemon_reply(c, &b, cp2p_daemon_message_append(&b, &resp.base));
        free(names);
        return;
    }
    case P2PD__PSREQUEST__TYPE__LIST_PEERS: {
        const char *t = *topic ? topic : NULL; /* "": every pubsub peer */
        size_t n = cp2p_pubsub_topic_peers(d->ps, t, NULL, 0);
        cp2p_peer_id_t *ids = calloc(n ? n : 1, sizeof *ids);
        ProtobufCBinaryData *bin = calloc(n ? n : 1, sizeof *bin);
        if (!ids || !bin) {
            free(ids);
            free(bin);
            cp2p_daemon_reply_status(c, cp2p_strerror(CP2P_ENOMEM));
            return;
        }
        n = cp2p_pubsub_topic_peers(d->ps, t, ids, n);
        for (size_t i = 0; i < n; i++)
            bin[i] = (ProtobufCBinaryData){.data = ids[i].bytes, .len = ids[i].len};
        pr.peerids = bin;
        pr.n_peerids = n;
        resp.pubsub = &pr;
        cp2p_daemon_reply(c, &b, cp2p_daemon_message_append(&b, &resp.base));
        free(ids);
        free(bin);
        return;
    }
    case P2PD__PSREQUEST__TYPE__PUBLISH: {
        int rc = cp2p_pubsub_publish(d->ps, topic, r->has_data ? r->data.data : (const uint8_t *)"",
                                     r->has_data ? r->data.len : 0);
        cp2p_daemon_reply_status(c, rc < 0 ? cp2p_strerror(rc) : NULL);
        return;
    }
    case P2PD__PSREQUEST__TYPE__SUBSCRIBE:
        subscribe(c, d, topic);
        return;
    default:
        cp2p_daemon_reply_status(c, "Unexpected request");
        return;
    }
}
