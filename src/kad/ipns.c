/* IPNS record verification and selection (ipfs/specs src/ipns/ipns-record.md,
 * "Record Verification"), with the few DAG-CBOR rules its data map needs. */
#include <string.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "ipns.pb-c.h"
#include "kad/ipns.h"

/* Remote data under a signature we have not checked yet: every length is
 * checked against what is left before it is used. */
typedef struct cbor {
    const uint8_t *p;
    size_t n, off;
} cbor_t;

/* One item head. DAG-CBOR allows only definite lengths in their shortest
 * form, which also makes the signed bytes of a record unique. */
static int head(cbor_t *c, int *major, uint64_t *v)
{
    static const uint64_t least[4] = {24, 0x100, 0x10000, 0x100000000u};
    if (c->off >= c->n)
        return CP2P_ETRUNC;
    uint8_t b = c->p[c->off++];
    unsigned ai = b & 31u;
    *major = b >> 5;
    if (ai < 24) {
        *v = ai;
        return 0;
    }
    if (ai > 27)
        return CP2P_EPARSE;
    size_t len = (size_t)1 << (ai - 24);
    if (c->n - c->off < len)
        return CP2P_ETRUNC;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++)
        x = x << 8 | c->p[c->off++];
    if (x < least[ai - 24])
        return CP2P_EPARSE;
    *v = x;
    return 0;
}

/* The payload of a byte or text string whose head gave length len. */
static int take(cbor_t *c, uint64_t len, const uint8_t **s)
{
    if (len > c->n - c->off)
        return CP2P_ETRUNC;
    *s = c->p + c->off;
    c->off += (size_t)len;
    return 0;
}

/* DAG-CBOR map keys are text, sorted by length then bytewise; this also
 * forbids duplicates. */
static int key_after(const uint8_t *k, uint64_t klen, const uint8_t *prev, size_t prev_len)
{
    return !prev || klen > prev_len || (klen == prev_len && memcmp(k, prev, klen) > 0);
}

/* Bounds for values under keys we do not know: depth keeps the recursion
 * off the stack's edge, the item budget keeps hostile input from costing
 * more than a fixed amount of work per record. */
enum { SKIP_DEPTH = 8, SKIP_ITEMS = 1024 };

/* Step over one well-formed DAG-CBOR value; malformed input stays an error. */
static int skip(cbor_t *c, unsigned depth, unsigned *budget)
{
    const uint8_t *s;
    uint64_t v;
    int major, rc;
    if (!depth || !*budget)
        return CP2P_EPARSE;
    (*budget)--;
    if (c->off >= c->n)
        return CP2P_ETRUNC;
    if (c->p[c->off] >> 5 == 7) {
        /* Only false, true, null and 64-bit floats exist in DAG-CBOR; a
         * float's bits are not a length, so head()'s shortest-form rule
         * does not apply. */
        unsigned ai = c->p[c->off++] & 31u;
        if (ai >= 20 && ai <= 22)
            return 0;
        if (ai != 27)
            return CP2P_EPARSE;
        return take(c, 8, &s);
    }
    if ((rc = head(c, &major, &v)))
        return rc;
    switch (major) {
    case 0:
    case 1:
        return 0;
    case 2:
    case 3:
        return take(c, v, &s);
    case 4:
        if (v > c->n - c->off)
            return CP2P_ETRUNC;
        for (uint64_t i = 0; i < v; i++)
            if ((rc = skip(c, depth - 1, budget)))
                return rc;
        return 0;
    case 5: {
        if (v > (c->n - c->off) / 2)
            return CP2P_ETRUNC;
        const uint8_t *prev = NULL;
        size_t prev_len = 0;
        for (uint64_t i = 0; i < v; i++) {
            const uint8_t *k;
            uint64_t klen;
            if ((rc = head(c, &major, &klen)))
                return rc;
            if (major != 3)
                return CP2P_EPARSE;
            if ((rc = take(c, klen, &k)))
                return rc;
            if (!key_after(k, klen, prev, prev_len))
                return CP2P_EPARSE;
            prev = k;
            prev_len = (size_t)klen;
            if ((rc = skip(c, depth - 1, budget)))
                return rc;
        }
        return 0;
    }
    case 6:
        /* Tag 42 (a CID) over a byte string is the only tag DAG-CBOR has. */
        if (v != 42)
            return CP2P_EPARSE;
        if ((rc = head(c, &major, &v)))
            return rc;
        if (major != 2)
            return CP2P_EPARSE;
        return take(c, v, &s);
    }
    return CP2P_EPARSE;
}

static int key_is(const uint8_t *k, size_t n, const char *name)
{
    return n == strlen(name) && !memcmp(k, name, n);
}

enum { F_VALUE = 1, F_VALIDITY = 2, F_VTYPE = 4, F_SEQ = 8, F_TTL = 16, F_ALL = 31 };

int cp2p_ipns_data_decode(const uint8_t *p, size_t n, cp2p_ipns_data_t *out)
{
    if ((!p && n) || !out)
        return CP2P_EINVAL;
    memset(out, 0, sizeof *out);
    cbor_t c = {p, n, 0};
    int major, rc;
    uint64_t count;
    if ((rc = head(&c, &major, &count)))
        return rc;
    if (major != 5)
        return CP2P_EPARSE;
    /* A pair takes at least two bytes: this bounds the loop by the input. */
    if (count > (n - c.off) / 2)
        return CP2P_ETRUNC;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    unsigned seen = 0, budget = SKIP_ITEMS;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *k, *s = NULL;
        uint64_t klen, v;
        if ((rc = head(&c, &major, &klen)))
            return rc;
        if (major != 3)
            return CP2P_EPARSE;
        if ((rc = take(&c, klen, &k)))
            return rc;
        /* DAG-CBOR sorts keys by length, then bytewise; this also forbids
         * duplicates, so no field can be given twice with two meanings. */
        if (!key_after(k, klen, prev, prev_len))
            return CP2P_EPARSE;
        prev = k;
        prev_len = (size_t)klen;
        int known = key_is(k, klen, "Value") || key_is(k, klen, "Validity") ||
                    key_is(k, klen, "ValidityType") || key_is(k, klen, "Sequence") ||
                    key_is(k, klen, "TTL");
        if (!known) {
            /* The spec says unknown fields are ignored, whatever their shape. */
            if ((rc = skip(&c, SKIP_DEPTH, &budget)))
                return rc;
            continue;
        }
        if ((rc = head(&c, &major, &v)))
            return rc;
        if (major == 2 || major == 3) {
            if ((rc = take(&c, v, &s)))
                return rc;
        } else if (major != 0) {
            return CP2P_EUNSUPPORTED;
        }
        int bytes = major == 2, uint = major == 0;
        if (key_is(k, klen, "Value")) {
            if (!bytes)
                return CP2P_EPARSE;
            out->value = s;
            out->value_len = (size_t)v;
            seen |= F_VALUE;
        } else if (key_is(k, klen, "Validity")) {
            if (!bytes)
                return CP2P_EPARSE;
            out->validity = s;
            out->validity_len = (size_t)v;
            seen |= F_VALIDITY;
        } else if (key_is(k, klen, "ValidityType")) {
            if (!uint)
                return CP2P_EPARSE;
            out->validity_type = v;
            seen |= F_VTYPE;
        } else if (key_is(k, klen, "Sequence")) {
            if (!uint)
                return CP2P_EPARSE;
            out->sequence = v;
            seen |= F_SEQ;
        } else if (key_is(k, klen, "TTL")) {
            if (!uint)
                return CP2P_EPARSE;
            out->ttl = v;
            seen |= F_TTL;
        }
    }
    if (c.off != n || seen != F_ALL)
        return CP2P_EPARSE;
    if (out->validity_type == 0 &&
        cp2p_ipns_time_parse(out->validity, out->validity_len, &out->eol_s, &out->eol_ns))
        return CP2P_EPARSE;
    return 0;
}

/* k decimal digits at s; -1 if any is not a digit. */
static int num(const uint8_t *s, size_t k)
{
    int v = 0;
    for (size_t i = 0; i < k; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar, counted
 * in 400-year eras so that no table of years is needed. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int cp2p_ipns_time_parse(const uint8_t *s, size_t n, int64_t *sec, uint32_t *nsec)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s || !sec || !nsec || n < 20)
        return CP2P_EPARSE;
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return CP2P_EPARSE;
    int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
    int h = num(s + 11, 2), mi = num(s + 14, 2), se = num(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 60)
        return CP2P_EPARSE;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return CP2P_EPARSE;
    size_t i = 19;
    uint32_t ns = 0;
    if (s[i] == '.') {
        /* Nanoseconds are all the spec carries; more digits are refused. */
        size_t k = 0;
        uint32_t scale = 100000000;
        for (i++; i < n && k < 10 && s[i] >= '0' && s[i] <= '9'; i++, k++) {
            ns += (uint32_t)(s[i] - '0') * scale;
            scale /= 10;
        }
        if (k == 0 || k > 9)
            return CP2P_EPARSE;
    }
    int64_t off = 0;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = num(s + i + 1, 2), om = num(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return CP2P_EPARSE;
        off = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    }
    if (i != n)
        return CP2P_EPARSE;
    *sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    *nsec = ns;
    return 0;
}

static int same(const ProtobufCBinaryData *b, const uint8_t *p, size_t n)
{
    return b->len == n && (n == 0 || !memcmp(b->data, p, n));
}

/* Step 7: V1 copies are unsigned, so any that is present must equal the
 * signed one or a legacy reader could be shown something else. */
static int v1_matches(const Ipns__IpnsEntry *e, const cp2p_ipns_data_t *d)
{
    return (!e->has_value || same(&e->value, d->value, d->value_len)) &&
           (!e->has_validity || same(&e->validity, d->validity, d->validity_len)) &&
           (!e->has_validitytype ||
            (e->validitytype >= 0 && (uint64_t)e->validitytype == d->validity_type)) &&
           (!e->has_sequence || e->sequence == d->sequence) &&
           (!e->has_ttl || e->ttl == d->ttl);
}

static const char SIG_PREFIX[] = "ipns-signature:";

int cp2p_ipns_validate(const uint8_t *name, size_t name_len, const uint8_t *rec, size_t rec_len,
                       int64_t now, cp2p_ipns_data_t *out)
{
    if ((!name && name_len) || (!rec && rec_len))
        return CP2P_EINVAL;
    if (rec_len > CP2P_IPNS_MAX_RECORD)
        return CP2P_EOVERFLOW;
    cp2p_peer_id_t id;
    if (cp2p_peer_id_from_bytes(name, name_len, &id))
        return CP2P_EPARSE;
    Ipns__IpnsEntry *e = ipns__ipns_entry__unpack(NULL, rec_len, rec);
    if (!e)
        return CP2P_EPARSE;
    cp2p_pubkey_t *k = NULL;
    cp2p_buf_t msg = {0};
    cp2p_ipns_data_t d = {0};
    int rc = CP2P_EPARSE;
    if (!e->has_signaturev2 || !e->signaturev2.len || !e->has_data || !e->data.len)
        goto done;
    /* Without pubKey the name must inline the key (identity multihash). */
    rc = e->has_pubkey ? cp2p_pubkey_unmarshal(e->pubkey.data, e->pubkey.len, &k)
                       : cp2p_peer_id_extract_pubkey(&id, &k);
    if (rc) {
        rc = rc == CP2P_EUNSUPPORTED ? rc : CP2P_EPARSE;
        goto done;
    }
    if (!cp2p_peer_id_matches_pubkey(&id, k)) {
        rc = CP2P_EPEERID;
        goto done;
    }
    if ((rc = cp2p_ipns_data_decode(e->data.data, e->data.len, &d))) {
        rc = rc == CP2P_EUNSUPPORTED ? rc : CP2P_EPARSE;
        goto done;
    }
    if (cp2p_buf_append(&msg, SIG_PREFIX, sizeof SIG_PREFIX - 1) ||
        cp2p_buf_append(&msg, e->data.data, e->data.len)) {
        rc = CP2P_ENOMEM;
        goto done;
    }
    if (cp2p_pubkey_verify(k, msg.data, msg.len, e->signaturev2.data, e->signaturev2.len)) {
        rc = CP2P_ESIG;
        goto done;
    }
    if (!v1_matches(e, &d)) {
        rc = CP2P_EPROTO;
        goto done;
    }
    if (d.validity_type != 0) {
        rc = CP2P_EUNSUPPORTED;
        goto done;
    }
    if (d.eol_s < now || (d.eol_s == now && d.eol_ns == 0)) {
        rc = CP2P_ETIMEOUT;
        goto done;
    }
    if (out) {
        *out = d;
        out->value = out->validity = NULL;
    }
    rc = 0;
done:
    cp2p_buf_free(&msg);
    cp2p_pubkey_free(k);
    ipns__ipns_entry__free_unpacked(e, NULL);
    return rc;
}

int cp2p_ipns_compare(const cp2p_ipns_data_t *a, const cp2p_ipns_data_t *b)
{
    if (a->sequence != b->sequence)
        return a->sequence > b->sequence ? 1 : -1;
    if (a->eol_s != b->eol_s)
        return a->eol_s > b->eol_s ? 1 : -1;
    if (a->eol_ns != b->eol_ns)
        return a->eol_ns > b->eol_ns ? 1 : -1;
    return 0;
}
