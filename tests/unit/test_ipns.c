/* IPNS record verification and selection (ipfs/specs ipns-record.md), with
 * records built here: DAG-CBOR by hand, signed with an Ed25519 key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "ipns.pb-c.h"
#include "cp2p/dht.h"
#include "cp2p/host.h"
#include "cp2p/multiaddr.h"
#include "kad/ipns.h"
#include "kad/kad_store.h"
#include "kad/kad_validate.h"

#define NOW 1700000000 /* 2023-11-14T22:13:20Z */
#define LATER "2030-01-01T00:00:00Z"

typedef struct fields {
    const char *value, *validity;
    uint64_t vtype, seq, ttl;
} fields_t;

static void cbor_head(cp2p_buf_t *b, int major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    int n = v < 24 ? 0 : v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    assert_int_equal(cp2p_buf_append_byte(b, n == 0 ? (uint8_t)(m | v)
                                              : (uint8_t)(m | (n == 1 ? 24 : n == 2 ? 25 : n == 4 ? 26 : 27))),
                     0);
    for (int i = n - 1; i >= 0; i--)
        assert_int_equal(cp2p_buf_append_byte(b, (uint8_t)(v >> (8 * i))), 0);
}

static void cbor_str(cp2p_buf_t *b, int major, const char *s)
{
    cbor_head(b, major, strlen(s));
    assert_int_equal(cp2p_buf_append(b, s, strlen(s)), 0);
}

/* Keys in DAG-CBOR order: by length, then bytewise. */
static void build_data(const fields_t *f, cp2p_buf_t *out)
{
    cbor_head(out, 5, 5);
    cbor_str(out, 3, "TTL");
    cbor_head(out, 0, f->ttl);
    cbor_str(out, 3, "Value");
    cbor_str(out, 2, f->value);
    cbor_str(out, 3, "Sequence");
    cbor_head(out, 0, f->seq);
    cbor_str(out, 3, "Validity");
    cbor_str(out, 2, f->validity);
    cbor_str(out, 3, "ValidityType");
    cbor_head(out, 0, f->vtype);
}

static void sign_data(const cp2p_privkey_t *k, const uint8_t *d, size_t n, cp2p_buf_t *sig)
{
    cp2p_buf_t msg = {0};
    assert_int_equal(cp2p_buf_append(&msg, "ipns-signature:", 15), 0);
    assert_int_equal(cp2p_buf_append(&msg, d, n), 0);
    assert_int_equal(cp2p_privkey_sign(k, msg.data, msg.len, sig), 0);
    cp2p_buf_free(&msg);
}

static void pack(const Ipns__IpnsEntry *e, cp2p_buf_t *out)
{
    size_t n = ipns__ipns_entry__get_packed_size(e);
    assert_int_equal(cp2p_buf_reserve(out, n), 0);
    out->len = ipns__ipns_entry__pack(e, out->data);
}

static ProtobufCBinaryData bin(const void *p, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

/* A V2-only record of f signed by k; e may preset V1 fields and pubKey. */
static void build(const cp2p_privkey_t *k, const fields_t *f, Ipns__IpnsEntry *e, cp2p_buf_t *out)
{
    cp2p_buf_t data = {0}, sig = {0};
    build_data(f, &data);
    sign_data(k, data.data, data.len, &sig);
    e->has_data = e->has_signaturev2 = 1;
    e->data = bin(data.data, data.len);
    e->signaturev2 = bin(sig.data, sig.len);
    pack(e, out);
    cp2p_buf_free(&data);
    cp2p_buf_free(&sig);
}

static void name_of(const cp2p_privkey_t *k, cp2p_peer_id_t *id)
{
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), id), 0);
}

static const fields_t GOOD = {"/ipfs/bafkqaddwgevxmmraojswg33smq", LATER, 0, 7, 300000000000u};

static void test_valid(void **state)
{
    cp2p_privkey_t *a;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &a), 0);
    cp2p_peer_id_t id;
    name_of(a, &id);
    Ipns__IpnsEntry e = IPNS__IPNS_ENTRY__INIT;
    cp2p_buf_t rec = {0};
    build(a, &GOOD, &e, &rec);
    cp2p_ipns_data_t d;
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, &d), 0);
    assert_true(d.sequence == 7 && d.ttl == 300000000000u && d.validity_type == 0);
    assert_true(d.eol_s == 1893456000 && d.eol_ns == 0);

    /* Through the DHT validator, with the key as "/ipns/" + peer ID bytes. */
    uint8_t key[80];
    memcpy(key, "/ipns/", 6);
    memcpy(key + 6, id.bytes, id.len);
    assert_int_equal(cp2p_kad_validate_at(key, 6 + id.len, rec.data, rec.len, NOW), 0);
    assert_int_equal(cp2p_kad_validate(key, 6 + id.len, rec.data, rec.len), 0);

    /* The same with pubKey given and matching V1 copies. */
    cp2p_buf_t pk = {0}, rec2 = {0};
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(a), &pk), 0);
    Ipns__IpnsEntry e2 = IPNS__IPNS_ENTRY__INIT;
    e2.has_pubkey = e2.has_value = e2.has_validity = e2.has_validitytype = 1;
    e2.has_sequence = e2.has_ttl = 1;
    e2.pubkey = bin(pk.data, pk.len);
    e2.value = bin(GOOD.value, strlen(GOOD.value));
    e2.validity = bin(GOOD.validity, strlen(GOOD.validity));
    e2.sequence = GOOD.seq;
    e2.ttl = GOOD.ttl;
    build(a, &GOOD, &e2, &rec2);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec2.data, rec2.len, NOW, NULL), 0);
    cp2p_buf_free(&pk);
    cp2p_buf_free(&rec);
    cp2p_buf_free(&rec2);
    cp2p_privkey_free(a);
}

static void test_tampered(void **state)
{
    cp2p_privkey_t *a, *b;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &a), 0);
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &b), 0);
    cp2p_peer_id_t id;
    name_of(a, &id);
    cp2p_buf_t rec = {0}, pk = {0};

    /* Bad signature: one bit of signatureV2 flipped. */
    Ipns__IpnsEntry e = IPNS__IPNS_ENTRY__INIT;
    build(a, &GOOD, &e, &rec);
    rec.data[rec.len - 1] ^= 1; /* data is last: flip the signed bytes */
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL), CP2P_ESIG);
    cp2p_buf_reset(&rec);

    /* Wrong key: signed by b under a's name, with and without b's pubKey. */
    e = (Ipns__IpnsEntry)IPNS__IPNS_ENTRY__INIT;
    build(b, &GOOD, &e, &rec);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL), CP2P_ESIG);
    cp2p_buf_reset(&rec);
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(b), &pk), 0);
    e = (Ipns__IpnsEntry)IPNS__IPNS_ENTRY__INIT;
    e.has_pubkey = 1;
    e.pubkey = bin(pk.data, pk.len);
    build(b, &GOOD, &e, &rec);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL),
                     CP2P_EPEERID);
    cp2p_buf_reset(&rec);

    /* Expired: Validity before now, and exactly now (must be later). */
    fields_t old = GOOD;
    old.validity = "2023-11-14T22:13:19.999999999Z";
    e = (Ipns__IpnsEntry)IPNS__IPNS_ENTRY__INIT;
    build(a, &old, &e, &rec);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL),
                     CP2P_ETIMEOUT);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW - 1, NULL), 0);
    cp2p_buf_reset(&rec);

    /* A V1 copy that differs from the signed data. */
    e = (Ipns__IpnsEntry)IPNS__IPNS_ENTRY__INIT;
    e.has_sequence = 1;
    e.sequence = GOOD.seq + 1;
    build(a, &GOOD, &e, &rec);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL), CP2P_EPROTO);
    cp2p_buf_reset(&rec);
    e = (Ipns__IpnsEntry)IPNS__IPNS_ENTRY__INIT;
    e.has_value = 1;
    e.value = bin("/ipfs/other", 11);
    build(a, &GOOD, &e, &rec);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL), CP2P_EPROTO);
    cp2p_buf_reset(&rec);

    /* Missing signatureV2. */
    e = (Ipns__IpnsEntry)IPNS__IPNS_ENTRY__INIT;
    e.has_data = 1;
    e.data = bin("\xa0", 1);
    pack(&e, &rec);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL), CP2P_EPARSE);
    cp2p_buf_reset(&rec);

    /* Oversized: a Value that pushes the entry past 10 KiB. */
    char *big = malloc(11000);
    assert_non_null(big);
    memset(big, 'a', 10999);
    big[10999] = 0;
    fields_t huge = GOOD;
    huge.value = big;
    e = (Ipns__IpnsEntry)IPNS__IPNS_ENTRY__INIT;
    build(a, &huge, &e, &rec);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL),
                     CP2P_EOVERFLOW);
    free(big);
    cp2p_buf_free(&rec);
    cp2p_buf_free(&pk);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* Truncated CBOR, even when properly signed, is refused. */
static void test_truncated(void **state)
{
    cp2p_privkey_t *a;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &a), 0);
    cp2p_peer_id_t id;
    name_of(a, &id);
    cp2p_buf_t data = {0}, sig = {0}, rec = {0};
    build_data(&GOOD, &data);
    cp2p_ipns_data_t d;
    assert_int_equal(cp2p_ipns_data_decode(data.data, data.len, &d), 0);
    for (size_t n = 0; n < data.len; n++)
        assert_true(cp2p_ipns_data_decode(data.data, n, &d) < 0);
    assert_int_equal(cp2p_ipns_data_decode(data.data, data.len - 3, &d), CP2P_ETRUNC);

    size_t cut = data.len - 5;
    sign_data(a, data.data, cut, &sig);
    Ipns__IpnsEntry e = IPNS__IPNS_ENTRY__INIT;
    e.has_data = e.has_signaturev2 = 1;
    e.data = bin(data.data, cut);
    e.signaturev2 = bin(sig.data, sig.len);
    pack(&e, &rec);
    assert_int_equal(cp2p_ipns_validate(id.bytes, id.len, rec.data, rec.len, NOW, NULL), CP2P_EPARSE);
    cp2p_buf_free(&data);
    cp2p_buf_free(&sig);
    cp2p_buf_free(&rec);
    cp2p_privkey_free(a);
}

/* A valid data map with an extra first key "_x" whose value is x. */
static void extra_key(cp2p_buf_t *b, const uint8_t *x, size_t n)
{
    cp2p_buf_reset(b);
    cbor_head(b, 5, 6);
    cbor_str(b, 3, "_x");
    assert_int_equal(cp2p_buf_append(b, x, n), 0);
    cbor_str(b, 3, "TTL");
    cbor_head(b, 0, 1);
    cbor_str(b, 3, "Value");
    cbor_str(b, 2, "v");
    cbor_str(b, 3, "Sequence");
    cbor_head(b, 0, 1000000);
    cbor_str(b, 3, "Validity");
    cbor_str(b, 2, LATER);
    cbor_str(b, 3, "ValidityType");
    cbor_head(b, 0, 0);
}

static void test_cbor_rules(void **state)
{
    cp2p_ipns_data_t d;
    /* Keys out of DAG-CBOR order ("Value" before "TTL"). */
    cp2p_buf_t b = {0};
    cbor_head(&b, 5, 2);
    cbor_str(&b, 3, "Value");
    cbor_str(&b, 2, "x");
    cbor_str(&b, 3, "TTL");
    cbor_head(&b, 0, 1);
    assert_int_equal(cp2p_ipns_data_decode(b.data, b.len, &d), CP2P_EPARSE);
    /* A non-minimal integer: 5 in one extra byte. */
    static const uint8_t nonmin[] = {0xa1, 0x63, 'T', 'T', 'L', 0x18, 0x05};
    assert_int_equal(cp2p_ipns_data_decode(nonmin, sizeof nonmin, &d), CP2P_EPARSE);
    /* Indefinite-length map, huge count. */
    static const uint8_t indef[] = {0xbf, 0xff};
    assert_int_equal(cp2p_ipns_data_decode(indef, sizeof indef, &d), CP2P_EPARSE);
    static const uint8_t many[] = {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(cp2p_ipns_data_decode(many, sizeof many, &d), CP2P_ETRUNC);
    /* Unknown extra keys are ignored whatever their value's shape. */
    static const uint8_t str[] = {0x62, 'h', 'i'};
    extra_key(&b, str, sizeof str);
    assert_int_equal(cp2p_ipns_data_decode(b.data, b.len, &d), 0);
    assert_true(d.sequence == 1000000 && d.value_len == 1 && d.value[0] == 'v');
    /* {"a": [1, {"b": null}], "bb": 42(h'01'), "ccc": 1.0} like _namespace. */
    static const uint8_t nested[] = {0xa3, 0x61, 'a',  0x82, 0x01, 0xa1, 0x61, 'b',
                                     0xf6, 0x62, 'b',  'b',  0xd8, 0x2a, 0x41, 0x01,
                                     0x63, 'c',  'c',  'c',  0xfb, 0x3f, 0xf0, 0,
                                     0,    0,    0,    0,    0};
    extra_key(&b, nested, sizeof nested);
    assert_int_equal(cp2p_ipns_data_decode(b.data, b.len, &d), 0);
    assert_true(d.sequence == 1000000 && d.value_len == 1 && d.value[0] == 'v');
    /* Nine nested arrays: past the depth bound, refused. */
    static const uint8_t deep[] = {0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x80};
    extra_key(&b, deep, sizeof deep);
    assert_int_equal(cp2p_ipns_data_decode(b.data, b.len, &d), CP2P_EPARSE);
    extra_key(&b, deep + 1, sizeof deep - 1);
    assert_int_equal(cp2p_ipns_data_decode(b.data, b.len, &d), 0);
    /* Malformed nested values stay errors: unsorted keys, a bad tag. */
    static const uint8_t unsorted[] = {0xa2, 0x61, 'b', 0x01, 0x61, 'a', 0x01};
    extra_key(&b, unsorted, sizeof unsorted);
    assert_int_equal(cp2p_ipns_data_decode(b.data, b.len, &d), CP2P_EPARSE);
    static const uint8_t tag[] = {0xc1, 0x01};
    extra_key(&b, tag, sizeof tag);
    assert_int_equal(cp2p_ipns_data_decode(b.data, b.len, &d), CP2P_EPARSE);
    cp2p_buf_free(&b);
}

static void test_time(void **state)
{
    int64_t s;
    uint32_t ns;
#define T(str) cp2p_ipns_time_parse((const uint8_t *)(str), strlen(str), &s, &ns)
    assert_int_equal(T("1970-01-01T00:00:00.000000001Z"), 0);
    assert_true(s == 0 && ns == 1);
    assert_int_equal(T("2000-02-29T12:00:00.5+01:00"), 0);
    assert_true(s == 951822000 && ns == 500000000);
    assert_int_equal(T("1969-12-31t23:59:59z"), 0);
    assert_true(s == -1);
    assert_int_equal(T("2001-02-29T00:00:00Z"), CP2P_EPARSE);
    assert_int_equal(T("2001-13-01T00:00:00Z"), CP2P_EPARSE);
    assert_int_equal(T("2001-01-01T00:00:00"), CP2P_EPARSE);
    assert_int_equal(T("2001-01-01T00:00:00.Z"), CP2P_EPARSE);
    assert_int_equal(T("2001-01-01T00:00:00.0000000001Z"), CP2P_EPARSE);
    assert_int_equal(T("2001-01-01T00:00:00Zjunk"), CP2P_EPARSE);
    assert_int_equal(T("2001-01-01 00:00:00Z"), CP2P_EPARSE);
#undef T
}

static void test_select(void **state)
{
    cp2p_privkey_t *a;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &a), 0);
    cp2p_peer_id_t id;
    name_of(a, &id);
    uint8_t key[80];
    memcpy(key, "/ipns/", 6);
    memcpy(key + 6, id.bytes, id.len);
    size_t klen = 6 + id.len;
    fields_t f[5] = {GOOD, GOOD, GOOD, GOOD, GOOD};
    f[0].seq = 1, f[0].validity = "2031-01-01T00:00:00Z";
    f[1].seq = 2, f[1].validity = "2030-01-01T00:00:00Z";
    f[2].seq = 2, f[2].validity = "2030-01-01T00:00:00.000000001Z";
    f[3].seq = 9, f[3].validity = "2020-01-01T00:00:00Z"; /* expired */
    f[4].seq = 2, f[4].validity = "2030-01-01T00:00:00.000000001Z";
    cp2p_buf_t rec[5] = {{0}};
    const uint8_t *vals[6];
    size_t lens[6];
    for (int i = 0; i < 5; i++) {
        Ipns__IpnsEntry e = IPNS__IPNS_ENTRY__INIT;
        build(a, &f[i], &e, &rec[i]);
        vals[i] = rec[i].data;
        lens[i] = rec[i].len;
    }
    vals[5] = (const uint8_t *)"junk";
    lens[5] = 4;
    /* Highest Sequence, then latest Validity; the first of equals wins. */
    assert_int_equal(cp2p_kad_select_at(key, klen, vals, lens, 6, NOW), 2);
    assert_int_equal(cp2p_kad_select_at(key, klen, vals, lens, 2, NOW), 1);
    assert_int_equal(cp2p_kad_select_at(key, klen, vals + 3, lens + 3, 1, NOW), CP2P_ENOTFOUND);
    /* Before it expired, the record with Sequence 9 wins. */
    assert_int_equal(cp2p_kad_select_at(key, klen, vals, lens, 6, 1500000000), 3);
    for (int i = 0; i < 5; i++)
        cp2p_buf_free(&rec[i]);
    cp2p_privkey_free(a);
}

/* ---- rollbacks (issue #14): a record is stored only if it is at least as
 * good as the one held ---- */

static const fields_t AT_SEQ = {"/ipfs/bafkqaddwgevxmmraojswg33smq", LATER, 0, 0, 300000000000u};

/* The key and a record of sequence seq for k's name. */
static size_t ipns_key(const cp2p_privkey_t *k, uint8_t *key)
{
    cp2p_peer_id_t id;
    name_of(k, &id);
    memcpy(key, "/ipns/", 6);
    memcpy(key + 6, id.bytes, id.len);
    return 6 + id.len;
}

static void record_at(const cp2p_privkey_t *k, uint64_t seq, cp2p_buf_t *out)
{
    fields_t f = AT_SEQ;
    f.seq = seq;
    Ipns__IpnsEntry e = IPNS__IPNS_ENTRY__INIT;
    build(k, &f, &e, out);
}

static void check_store(cp2p_kad_store_t *st, const cp2p_privkey_t *k)
{
    uint8_t key[80];
    size_t kl = ipns_key(k, key);
    cp2p_buf_t r5 = {0}, r1 = {0}, r6 = {0}, got = {0};
    record_at(k, 5, &r5);
    record_at(k, 1, &r1);
    record_at(k, 6, &r6);
    uint64_t now = 1000;
    assert_int_equal(cp2p_kad_store_put_record(st, key, kl, r5.data, r5.len, now), 0);
    assert_int_equal(cp2p_kad_store_put_record(st, key, kl, r1.data, r1.len, now), CP2P_EREFUSED);
    assert_int_equal(cp2p_kad_store_get_record(st, key, kl, now, &got, NULL), 0);
    assert_true(got.len == r5.len && !memcmp(got.data, r5.data, r5.len)); /* still 5 */
    /* The same record again is fine (a republish), a newer one replaces it. */
    assert_int_equal(cp2p_kad_store_put_record(st, key, kl, r5.data, r5.len, now), 0);
    assert_int_equal(cp2p_kad_store_put_record(st, key, kl, r6.data, r6.len, now), 0);
    got.len = 0;
    assert_int_equal(cp2p_kad_store_get_record(st, key, kl, now, &got, NULL), 0);
    assert_true(got.len == r6.len && !memcmp(got.data, r6.data, r6.len));
    /* Keys without an order are overwritten, as before. */
    assert_int_equal(cp2p_kad_store_put_record(st, (const uint8_t *)"k", 1, (const uint8_t *)"a", 1, now), 0);
    assert_int_equal(cp2p_kad_store_put_record(st, (const uint8_t *)"k", 1, (const uint8_t *)"b", 1, now), 0);
    cp2p_buf_free(&r5);
    cp2p_buf_free(&r1);
    cp2p_buf_free(&r6);
    cp2p_buf_free(&got);
}

static void test_store_refuses_rollback(void **state)
{
    (void)state;
    cp2p_privkey_t *k;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &k), 0);
    cp2p_kad_store_t *st;
    assert_int_equal(cp2p_kad_store_new_memory(NULL, &st), 0);
    check_store(st, k);
    cp2p_kad_store_free(st);
    char dir[] = "/tmp/cp2p-ipns-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(cp2p_kad_store_open_lmdb(dir, NULL, &st), 0);
    check_store(st, k);
    cp2p_kad_store_free(st);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    cp2p_privkey_free(k);
}

typedef struct done {
    int done, status;
} done_t;

static void on_dht_done(cp2p_dht_t *d, int status, void *arg)
{
    (void)d;
    done_t *r = arg;
    r->done = 1;
    r->status = status;
}

typedef struct got {
    cp2p_buf_t value;
    int done;
} got_t;

static void on_dht_value(cp2p_dht_t *d, int status, const uint8_t *v, size_t n, void *arg)
{
    (void)d;
    got_t *g = arg;
    if (!status)
        assert_int_equal(cp2p_buf_append(&g->value, v, n), 0);
    g->done = 1;
}

static void wait_done(uv_loop_t *loop, const int *done)
{
    uint64_t end = uv_now(loop) + 15000;
    while (!*done && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(*done);
}

static void count_closed(void *arg)
{
    (*(int *)arg)++;
}

/* A peer holding seq 5 is sent a validly signed seq 1 by another peer: it
 * refuses (the putter hears CP2P_EREFUSED) and still serves seq 5. */
static void test_peer_refuses_rollback(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cp2p_host_t *h[2];
    cp2p_dht_t *d[2];
    cp2p_multiaddr_t l, *addrs;
    size_t n;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &l), 0);
    cp2p_dht_config_t cfg = {.quorum = 1, .query_timeout_ms = 5000};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cp2p_host_new(&loop, NULL, &h[i]), 0);
        assert_int_equal(cp2p_host_listen(h[i], &l), 0);
        assert_int_equal(cp2p_dht_new(h[i], &cfg, &d[i]), 0);
    }
    cp2p_multiaddr_free(&l);
    assert_int_equal(cp2p_host_listen_addrs(h[0], &addrs, &n), 0);
    assert_int_equal(cp2p_dht_add_peer(d[1], cp2p_host_peer_id(h[0]), addrs, 1), 0);
    cp2p_multiaddr_array_free(addrs, n);

    cp2p_privkey_t *k;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &k), 0);
    uint8_t key[80];
    size_t kl = ipns_key(k, key);
    cp2p_buf_t r5 = {0}, r1 = {0};
    record_at(k, 5, &r5);
    record_at(k, 1, &r1);
    /* Node 0 holds seq 5 (put by its owner). */
    done_t put = {0};
    assert_int_equal(cp2p_dht_put(d[0], key, kl, r5.data, r5.len, on_dht_done, &put), 0);
    wait_done(&loop, &put.done);
    /* and refuses an older one of its own */
    assert_int_equal(cp2p_dht_put(d[0], key, kl, r1.data, r1.len, on_dht_done, &put), CP2P_EREFUSED);
    /* Node 1, which holds nothing, pushes seq 1 to node 0. */
    done_t attack = {0};
    assert_int_equal(cp2p_dht_put(d[1], key, kl, r1.data, r1.len, on_dht_done, &attack), 0);
    wait_done(&loop, &attack.done);
    assert_int_equal(attack.status, CP2P_EREFUSED);
    assert_int_equal(cp2p_dht_stats(d[0])->stale_records, 1);
    /* Node 0 still serves seq 5 (its own store first). */
    got_t g = {0};
    assert_int_equal(cp2p_dht_get(d[0], key, kl, on_dht_value, &g), 0);
    wait_done(&loop, &g.done);
    assert_true(g.value.len == r5.len && !memcmp(g.value.data, r5.data, r5.len));

    cp2p_buf_free(&g.value);
    cp2p_buf_free(&r5);
    cp2p_buf_free(&r1);
    cp2p_privkey_free(k);
    int closed = 0;
    for (int i = 0; i < 2; i++) {
        cp2p_dht_free(d[i]);
        cp2p_host_close(h[i], count_closed, &closed);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),     cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_truncated), cmocka_unit_test(test_cbor_rules),
        cmocka_unit_test(test_time),      cmocka_unit_test(test_select),
        cmocka_unit_test(test_store_refuses_rollback),
        cmocka_unit_test(test_peer_refuses_rollback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
