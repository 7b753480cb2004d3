/* multistream-select 1.0.0 negotiation engine (multiformats/multistream-select
 * README; libp2p specs connections/README.md "Protocol Negotiation"). */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/varint.h"
#include "mss/mss.h"

enum { ST_INIT, ST_HEADER, ST_NEGOTIATE, ST_DONE, ST_FAILED };

struct cp2p_mss {
    int dialer;
    unsigned flags;
    int state;
    int err;
    int sent_header;
    char **ids;
    size_t *lens;
    size_t n;
    size_t next; /* dialer: the proposal awaiting an answer */
    cp2p_mss_match_fn match;
    void *match_ctx;
    char *selected; /* dialer: one of ids; listener: owned copy */
    cp2p_buf_t in;
    size_t received; /* messages so far */
};

static const char HEADER[] = CP2P_MSS_PROTOCOL_ID;

static int append_msg(cp2p_buf_t *out, const void *p, size_t n)
{
    int rc = cp2p_buf_append_uvarint(out, n + 1);
    if (!rc)
        rc = cp2p_buf_append(out, p, n);
    return rc ? rc : cp2p_buf_append_byte(out, '\n');
}

static int is(const uint8_t *msg, size_t len, const char *s, size_t slen)
{
    return len == slen && memcmp(msg, s, len) == 0;
}

static int valid_id(const char *id)
{
    size_t len = strlen(id);
    return len > 0 && len + 1 <= CP2P_MSS_MAX_MSG && !memchr(id, '\n', len);
}

static int copy_ids(cp2p_mss_t *m, const char *const *protocols, size_t n)
{
    if (n == 0)
        return 0;
    m->ids = calloc(n, sizeof(*m->ids));
    m->lens = calloc(n, sizeof(*m->lens));
    if (!m->ids || !m->lens)
        return CP2P_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!protocols[i] || !valid_id(protocols[i]))
            return CP2P_EINVAL;
        m->ids[i] = strdup(protocols[i]);
        if (!m->ids[i])
            return CP2P_ENOMEM;
        m->lens[i] = strlen(protocols[i]);
        m->n = i + 1;
    }
    return 0;
}

static int create(cp2p_mss_t **out, int dialer, const char *const *protocols, size_t n,
                  unsigned flags)
{
    cp2p_mss_t *m = calloc(1, sizeof(*m));
    if (!m)
        return CP2P_ENOMEM;
    m->dialer = dialer;
    m->flags = flags;
    int rc = copy_ids(m, protocols, n);
    if (rc) {
        cp2p_mss_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int cp2p_mss_dialer_new(cp2p_mss_t **out, const char *const *protocols, size_t n,
                        unsigned flags)
{
    if (!out || !protocols || n == 0 || ((flags & CP2P_MSS_LAZY) && n != 1))
        return CP2P_EINVAL;
    return create(out, 1, protocols, n, flags);
}

int cp2p_mss_listener_new(cp2p_mss_t **out, const char *const *protocols, size_t n,
                          cp2p_mss_match_fn match, void *match_ctx)
{
    if (!out || (n && !protocols))
        return CP2P_EINVAL;
    int rc = create(out, 0, protocols, n, 0);
    if (!rc) {
        (*out)->match = match;
        (*out)->match_ctx = match_ctx;
    }
    return rc;
}

void cp2p_mss_free(cp2p_mss_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->ids[i]);
    free(m->ids);
    free(m->lens);
    if (!m->dialer)
        free(m->selected);
    cp2p_buf_free(&m->in);
    free(m);
}

static int fail(cp2p_mss_t *m, int err, const char *why)
{
    cp2p_log_debug("mss", "%s: %s", m->dialer ? "dialer" : "listener", why);
    m->state = ST_FAILED;
    m->err = err;
    return err;
}

int cp2p_mss_start(cp2p_mss_t *m, cp2p_buf_t *out)
{
    if (!m || !out)
        return CP2P_EINVAL;
    if (m->state != ST_INIT)
        return CP2P_ESTATE;
    int rc = append_msg(out, HEADER, sizeof(HEADER) - 1);
    if (!rc && m->dialer)
        rc = append_msg(out, m->ids[0], m->lens[0]);
    if (rc)
        return rc;
    m->sent_header = 1;
    m->state = ST_HEADER;
    if (m->flags & CP2P_MSS_LAZY)
        m->selected = m->ids[0];
    return 0;
}

/* One message at p: >0 bytes it spans, 0 if incomplete, or a negative error.
 * A length that cannot fit is refused before its bytes arrive. */
static int read_msg(const uint8_t *p, size_t n, const uint8_t **body, size_t *len)
{
    uint64_t v;
    int k = cp2p_uvarint_decode(p, n, &v);
    if (k == CP2P_ETRUNC)
        return n >= cp2p_uvarint_len(CP2P_MSS_MAX_MSG) ? CP2P_EOVERFLOW : 0;
    if (k < 0)
        return CP2P_EPARSE;
    if (v > CP2P_MSS_MAX_MSG)
        return CP2P_EOVERFLOW;
    if (v == 0)
        return CP2P_EPARSE;
    if (n - (size_t)k < v)
        return 0;
    if (p[k + v - 1] != '\n')
        return CP2P_EPARSE;
    *body = p + k;
    *len = (size_t)v - 1;
    return k + (int)v;
}

static int append_ls(const cp2p_mss_t *m, cp2p_buf_t *out)
{
    /* One message whose body is the listed ids, each itself a message. */
    cp2p_buf_t body = {0};
    int rc = 0;
    for (size_t i = 0; i < m->n && !rc; i++)
        rc = append_msg(&body, m->ids[i], m->lens[i]);
    if (!rc)
        rc = append_msg(out, body.data, body.len);
    cp2p_buf_free(&body);
    return rc;
}

/* 1 if the listener takes id (then m->selected holds it), 0 if not, or an error. */
static int accept_id(cp2p_mss_t *m, const uint8_t *id, size_t len)
{
    if (len == 0 || memchr(id, 0, len))
        return 0;
    for (size_t i = 0; i < m->n; i++) {
        if (is(id, len, m->ids[i], m->lens[i])) {
            m->selected = strdup(m->ids[i]);
            return m->selected ? 1 : CP2P_ENOMEM;
        }
    }
    if (!m->match)
        return 0;
    char *s = malloc(len + 1);
    if (!s)
        return CP2P_ENOMEM;
    memcpy(s, id, len);
    s[len] = 0;
    if (!m->match(m->match_ctx, s, len)) {
        free(s);
        return 0;
    }
    m->selected = s;
    return 1;
}

static int dialer_msg(cp2p_mss_t *m, const uint8_t *msg, size_t len, cp2p_buf_t *out)
{
    if (m->state == ST_HEADER) {
        if (!is(msg, len, HEADER, sizeof(HEADER) - 1))
            return fail(m, CP2P_EPROTO, "remote does not speak multistream 1.0.0");
        m->state = ST_NEGOTIATE;
        return 0;
    }
    if (is(msg, len, m->ids[m->next], m->lens[m->next])) {
        m->selected = m->ids[m->next];
        m->state = ST_DONE;
        return 0;
    }
    if (!is(msg, len, "na", 2))
        return fail(m, CP2P_EPROTO, "unexpected answer to a proposal");
    if (++m->next == m->n) {
        m->selected = NULL;
        return fail(m, CP2P_ENEGOTIATE, "every proposal refused");
    }
    int rc = append_msg(out, m->ids[m->next], m->lens[m->next]);
    return rc ? fail(m, rc, "out of memory") : 0;
}

static int listener_msg(cp2p_mss_t *m, const uint8_t *msg, size_t len, cp2p_buf_t *out)
{
    int rc;
    if (m->state == ST_HEADER) {
        if (!is(msg, len, HEADER, sizeof(HEADER) - 1))
            return fail(m, CP2P_EPROTO, "remote does not speak multistream 1.0.0");
        m->state = ST_NEGOTIATE;
        return 0;
    }
    if (is(msg, len, "ls", 2)) {
        rc = append_ls(m, out);
    } else {
        rc = accept_id(m, msg, len);
        if (rc == 1) {
            m->state = ST_DONE;
            rc = append_msg(out, msg, len);
        } else if (rc == 0) {
            rc = append_msg(out, "na", 2);
        }
    }
    return rc ? fail(m, rc, "out of memory") : 0;
}

int cp2p_mss_input(cp2p_mss_t *m, const uint8_t *p, size_t n, cp2p_buf_t *out)
{
    if (!m || !out || (n && !p))
        return CP2P_EINVAL;
    if (m->state == ST_FAILED)
        return m->err;
    if (m->state == ST_DONE)
        return CP2P_ESTATE;
    if (m->state == ST_INIT) {
        if (m->dialer)
            return CP2P_ESTATE;
        /* A listener that skipped start() still owes its header first. */
        int rc = cp2p_mss_start(m, out);
        if (rc)
            return rc;
    }
    int rc = cp2p_buf_append(&m->in, p, n);
    if (rc)
        return fail(m, rc, "out of memory");
    size_t off = 0;
    while (m->state == ST_HEADER || m->state == ST_NEGOTIATE) {
        const uint8_t *msg;
        size_t len;
        int k = read_msg(m->in.data + off, m->in.len - off, &msg, &len);
        if (k == 0)
            break;
        if (k < 0)
            return fail(m, k, "malformed message");
        off += (size_t)k;
        if (++m->received > CP2P_MSS_MAX_MESSAGES)
            return fail(m, CP2P_ELIMIT, "too many messages");
        rc = m->dialer ? dialer_msg(m, msg, len, out) : listener_msg(m, msg, len, out);
        if (rc)
            return rc;
    }
    cp2p_buf_consume(&m->in, off);
    return m->state == ST_DONE ? CP2P_MSS_DONE : 0;
}

const char *cp2p_mss_selected(const cp2p_mss_t *m)
{
    return m && (m->state == ST_DONE || (m->flags & CP2P_MSS_LAZY)) &&
                   m->state != ST_FAILED
               ? m->selected
               : NULL;
}

const uint8_t *cp2p_mss_leftover(const cp2p_mss_t *m, size_t *n)
{
    if (!m || m->state != ST_DONE) {
        if (n)
            *n = 0;
        return NULL;
    }
    if (n)
        *n = m->in.len;
    return m->in.data;
}
