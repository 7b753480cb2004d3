/* cp2p dht --control: the same stdin commands and output as cp2p dht, run by
 * a cp2pd that is already up, through its control socket (go-libp2p-daemon
 * specs/DHT.md requests). For operators: "kubectl exec" into a running peer
 * and put or get records there instead of starting a second node. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <netinet/in.h>

#include "cli.h"
#include "cp2p/cid.h"
#include "cp2p/error.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"
#include "daemon/control.h"
#include "dht_control.h"

#define MAX_LINE 70000
#define IO_TIMEOUT_S 90 /* longer than a DHT query (60 s): a daemon that says nothing is gone */

typedef struct ctl {
    int fd;
    int broken;      /* the socket failed: the exit code says so */
    cp2p_buf_t in;
    size_t consumed; /* the frame handed out last, dropped on the next read */
} ctl_t;

static int ctl_connect(const char *control, int *fd_out)
{
    cp2p_multiaddr_t ma;
    cp2p_multiaddr_component_t c, port;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    memset(&ss, 0, sizeof ss);
    int rc = cp2p_multiaddr_parse(control, &ma);
    if (rc)
        return rc;
    if (cp2p_multiaddr_get(&ma, CP2P_MA_UNIX, &c) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        if (c.value_len >= sizeof sun->sun_path)
            rc = CP2P_EOVERFLOW;
        sun->sun_family = AF_UNIX;
        if (!rc)
            memcpy(sun->sun_path, c.value, c.value_len);
        len = sizeof *sun;
    } else if (cp2p_multiaddr_get(&ma, CP2P_MA_TCP, &port) == 0 && port.value_len == 2) {
        uint16_t p = (uint16_t)(port.value[0] << 8 | port.value[1]);
        if (cp2p_multiaddr_get(&ma, CP2P_MA_IP4, &c) == 0) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(p);
            memcpy(&sin->sin_addr, c.value, 4);
            len = sizeof *sin;
        } else if (cp2p_multiaddr_get(&ma, CP2P_MA_IP6, &c) == 0) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(p);
            memcpy(&sin6->sin6_addr, c.value, 16);
            len = sizeof *sin6;
        } else {
            rc = CP2P_EUNSUPPORTED;
        }
    } else {
        rc = CP2P_EUNSUPPORTED;
    }
    cp2p_multiaddr_free(&ma);
    if (rc)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return CP2P_EIO;
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        rc = errno == ECONNREFUSED || errno == ENOENT ? CP2P_ECONNREFUSED : CP2P_EIO;
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

static int ctl_send(ctl_t *t, const ProtobufCMessage *m)
{
    cp2p_buf_t b = {0};
    int rc = cp2p_daemon_message_append(&b, m);
    for (size_t off = 0; !rc && off < b.len;) {
        ssize_t n = write(t->fd, b.data + off, b.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = CP2P_EIO, t->broken = 1;
        else
            off += (size_t)n;
    }
    cp2p_buf_free(&b);
    return rc;
}

/* The next frame's body into *msg (valid until the next call). */
static int ctl_recv(ctl_t *t, const uint8_t **msg, size_t *len)
{
    cp2p_buf_consume(&t->in, t->consumed);
    t->consumed = 0;
    for (;;) {
        int k = cp2p_daemon_frame(t->in.data, t->in.len, msg, len);
        if (k > 0) {
            t->consumed = (size_t)k;
            return 0;
        }
        if (k != CP2P_ETRUNC)
            return t->broken = 1, k;
        uint8_t buf[16384];
        ssize_t n = read(t->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            t->broken = 1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? CP2P_ETIMEOUT : CP2P_EIO;
        if (n == 0)
            return CP2P_ECLOSED;
        if (cp2p_buf_append(&t->in, buf, (size_t)n))
            return CP2P_ENOMEM;
    }
}

/* Send a DHT request and read the Response; *out is freed by the caller. On
 * an ERROR response, why holds the daemon's words and CP2P_EPROTO is returned. */
static int ctl_dht(ctl_t *t, P2pd__DHTRequest *d, P2pd__Response **out, char *why, size_t cap)
{
    P2pd__Request r = P2PD__REQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__DHT;
    r.dht = d;
    const uint8_t *msg;
    size_t len;
    int rc = ctl_send(t, &r.base);
    if (!rc)
        rc = ctl_recv(t, &msg, &len);
    if (rc) {
        snprintf(why, cap, "control socket: %s", cp2p_strerror(rc));
        return rc;
    }
    *out = p2pd__response__unpack(NULL, len, msg);
    if (!*out) {
        snprintf(why, cap, "control socket: malformed response");
        return CP2P_EPARSE;
    }
    if ((*out)->type == P2PD__RESPONSE__TYPE__ERROR) {
        const char *em = (*out)->error && (*out)->error->msg ? (*out)->error->msg : "error";
        /* p2pd's words, and cp2pd's: said as a local lookup says it */
        snprintf(why, cap, "%s", !strcmp(em, "routing: not found") ? "not found" : em);
        return CP2P_EPROTO;
    }
    return 0;
}

static void print_peer_addrs(const char *who, const P2pd__PeerInfo *pi)
{
    for (size_t i = 0; i < pi->n_addrs; i++) {
        cp2p_multiaddr_t ma;
        cp2p_buf_t s = {0};
        if (cp2p_multiaddr_from_bytes(pi->addrs[i].data, pi->addrs[i].len, &ma) == 0) {
            if (cp2p_multiaddr_to_string(&ma, &s) == 0)
                printf("Peer %s has address %s\n", who, (char *)s.data);
            cp2p_multiaddr_free(&ma);
        }
        cp2p_buf_free(&s);
    }
    if (!pi->n_addrs)
        printf("Found peer %s without addresses\n", who);
}

static void run_command(ctl_t *t, const char *cmd, const char *key, const char *value)
{
    P2pd__DHTRequest d = P2PD__DHTREQUEST__INIT;
    P2pd__Response *resp = NULL;
    char why[512];
    cp2p_buf_t cid = {0};
    cp2p_cid_view_t view;
    cp2p_peer_id_t id;
    int rc;
    if (!strcmp(cmd, "PUT") && key && *value) {
        d.type = P2PD__DHTREQUEST__TYPE__PUT_VALUE;
        d.has_key = d.has_value = 1;
        d.key = (ProtobufCBinaryData){.data = (uint8_t *)key, .len = strlen(key)};
        d.value = (ProtobufCBinaryData){.data = (uint8_t *)value, .len = strlen(value)};
        if ((rc = ctl_dht(t, &d, &resp, why, sizeof why)))
            printf("Failed to put record \"%s\": %s\n", key, why);
        else
            printf("Successfully put record \"%s\"\n", key);
    } else if (!strcmp(cmd, "GET") && key && !*value) {
        d.type = P2PD__DHTREQUEST__TYPE__GET_VALUE;
        d.has_key = 1;
        d.key = (ProtobufCBinaryData){.data = (uint8_t *)key, .len = strlen(key)};
        if ((rc = ctl_dht(t, &d, &resp, why, sizeof why)))
            printf("Failed to get record \"%s\": %s\n", key, why);
        else if (!resp->dht || !resp->dht->has_value)
            printf("Failed to get record \"%s\": no value in the answer\n", key);
        else
            printf("Got record \"%s\" \"%.*s\"\n", key, (int)resp->dht->value.len,
                   (const char *)resp->dht->value.data);
    } else if ((!strcmp(cmd, "PUT_PROVIDER") || !strcmp(cmd, "GET_PROVIDERS")) && key &&
               !*value) {
        int put = cmd[0] == 'P';
        /* The daemon's requests take CIDs, where cp2p dht also takes any bytes. */
        if (cp2p_cid_parse(key, strlen(key), &cid, &view)) {
            printf("Failed to %s \"%s\": cp2pd takes a CID\n",
                   put ? "put provider record" : "get providers for key", key);
        } else {
            d.type = put ? P2PD__DHTREQUEST__TYPE__PROVIDE : P2PD__DHTREQUEST__TYPE__FIND_PROVIDERS;
            d.has_cid = 1;
            d.cid = (ProtobufCBinaryData){.data = cid.data, .len = cid.len};
            rc = ctl_dht(t, &d, &resp, why, sizeof why);
            if (put && rc)
                printf("Failed to put provider record \"%s\": %s\n", key, why);
            else if (put)
                printf("Successfully put provider record \"%s\"\n", key);
            else if (rc)
                printf("Failed to get providers for key \"%s\": %s\n", key, why);
            else {
                size_t found = 0;
                const uint8_t *msg;
                size_t len;
                /* OK with BEGIN, then one DHTResponse per provider, then END. */
                while ((rc = ctl_recv(t, &msg, &len)) == 0) {
                    P2pd__DHTResponse *dr = p2pd__dhtresponse__unpack(NULL, len, msg);
                    int end = !dr || dr->type == P2PD__DHTRESPONSE__TYPE__END;
                    char s[CP2P_PEER_ID_STRMAX];
                    if (dr && dr->peer && cp2p_peer_id_from_bytes(dr->peer->id.data,
                                                                   dr->peer->id.len, &id) == 0) {
                        cp2p_peer_id_to_string(&id, s, sizeof s);
                        printf("Peer %s provides key \"%s\"\n", s, key);
                        found++;
                    }
                    if (dr)
                        p2pd__dhtresponse__free_unpacked(dr, NULL);
                    if (end)
                        break;
                }
                if (rc)
                    printf("Failed to get providers for key \"%s\": control socket: %s\n", key,
                           cp2p_strerror(rc));
                else if (!found)
                    printf("No providers found for key \"%s\"\n", key);
            }
        }
    } else if (!strcmp(cmd, "FIND_PEER") && key && !*value) {
        if (cp2p_peer_id_parse(key, &id)) {
            printf("Failed to find peer %s: not a peer id\n", key);
        } else {
            d.type = P2PD__DHTREQUEST__TYPE__FIND_PEER;
            d.has_peer = 1;
            d.peer = (ProtobufCBinaryData){.data = id.bytes, .len = id.len};
            if (ctl_dht(t, &d, &resp, why, sizeof why))
                printf("Failed to find peer %s: %s\n", key, why);
            else if (!resp->dht || !resp->dht->peer)
                printf("Failed to find peer %s: no peer in the answer\n", key);
            else
                print_peer_addrs(key, resp->dht->peer);
        }
    } else {
        printf("Expected: PUT <key> <value> | GET <key> | PUT_PROVIDER <key> | "
               "GET_PROVIDERS <key> | FIND_PEER <peer id>\n");
    }
    if (resp)
        p2pd__response__free_unpacked(resp, NULL);
    cp2p_buf_free(&cid);
    fflush(stdout);
}

int cp2p_dht_control_run(const char *control)
{
    ctl_t t = {.fd = -1};
    int rc = ctl_connect(control, &t.fd);
    if (rc) {
        fprintf(stderr, "cp2p: dht: cannot reach cp2pd at %s: %s\n", control, cp2p_strerror(rc));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > MAX_LINE) {
            printf("Line too long (at most %d bytes)\n", MAX_LINE);
            continue;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        char *p = line, *cmd = cli_next_word(&p), *key = cli_next_word(&p);
        if (cmd)
            run_command(&t, cmd, key, cli_rest(p));
    }
    free(line);
    close(t.fd);
    cp2p_buf_free(&t.in);
    return t.broken ? 1 : 0;
}
