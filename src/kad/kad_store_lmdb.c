/* Kademlia stores on disk in LMDB: records, providers and the routing table
 * survive restarts (libp2p kad-dht spec, "Value storage and retrieval"). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "kad/kad_store.h"
#include "kad/kad_table.h"

/* Written once at creation; a database without it is not ours. */
#define FORMAT_KEY "format"
#define FORMAT_VALUE "cp2p-kad/1"

/* records:   sha256(key) -> received(8) expires(8) key_len(4) key value
 * providers: sha256(key) peer-id -> expires(8)
 * peers:     peer-id -> addresses (the saved routing table; see
 *            cp2p_kad_saved_peer_t, "" in stores from before addresses)
 * Hashing keys keeps them under LMDB's 511-byte key limit. */
typedef struct lmdb_store {
    cp2p_kad_store_t base;
    MDB_env *env;
    MDB_dbi meta, records, providers, peers;
} lmdb_store_t;

#define REC_HDR 20

static int map_err(int e, const char *what)
{
    if (e == 0)
        return 0;
    if (e == MDB_MAP_FULL)
        return CP2P_ELIMIT;
    if (e == ENOMEM)
        return CP2P_ENOMEM;
    cp2p_log_error("kad", "datastore: %s: %s", what, mdb_strerror(e));
    if (e == MDB_INVALID || e == MDB_VERSION_MISMATCH || e == MDB_CORRUPTED ||
        e == MDB_PAGE_NOTFOUND || e == MDB_INCOMPATIBLE)
        return CP2P_EPARSE;
    return CP2P_EIO;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Commit, or abort on the first error; returns the first error. */
static int finish(MDB_txn *txn, int rc, const char *what)
{
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return map_err(mdb_txn_commit(txn), what);
}

static int begin(lmdb_store_t *l, unsigned flags, MDB_txn **txn)
{
    return map_err(mdb_txn_begin(l->env, NULL, flags, txn), "begin");
}

static int lm_put_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                         const uint8_t *value, size_t value_len, uint64_t now_ms)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    cp2p_kad_key_t h;
    int rc = cp2p_kad_key_of(key, key_len, &h);
    if (rc)
        return rc;
    MDB_txn *txn;
    if ((rc = begin(l, 0, &txn)))
        return rc;
    MDB_val k = {sizeof h.b, h.b}, v;
    int e = mdb_get(txn, l->records, &k, &v);
    if (e == MDB_NOTFOUND) {
        MDB_stat st;
        e = mdb_stat(txn, l->records, &st);
        if (!e && st.ms_entries >= s->limits.max_records)
            rc = CP2P_ELIMIT;
    } else if (!e && v.mv_size >= REC_HDR + key_len) {
        /* Read in the write's own transaction: nothing lands in between. */
        const uint8_t *p = v.mv_data;
        if (get_u64(p + 8) > now_ms &&
            cp2p_kad_store_keeps_old(key, key_len, value, value_len, p + REC_HDR + key_len,
                                     v.mv_size - REC_HDR - key_len))
            rc = CP2P_EREFUSED;
    }
    if (e && e != MDB_NOTFOUND)
        rc = map_err(e, "read record");
    if (!rc) {
        v.mv_size = REC_HDR + key_len + value_len;
        e = mdb_put(txn, l->records, &k, &v, MDB_RESERVE);
        rc = map_err(e, "write record");
    }
    if (!rc) {
        uint8_t *p = v.mv_data;
        put_u64(p, now_ms);
        put_u64(p + 8, now_ms + CP2P_KAD_RECORD_TTL_MS);
        p[16] = (uint8_t)(key_len >> 24), p[17] = (uint8_t)(key_len >> 16);
        p[18] = (uint8_t)(key_len >> 8), p[19] = (uint8_t)key_len;
        memcpy(p + REC_HDR, key, key_len);
        if (value_len)
            memcpy(p + REC_HDR + key_len, value, value_len);
    }
    return finish(txn, rc, "commit record");
}

/* The stored record for key, checked for shape (the file may be damaged). */
static int read_record(lmdb_store_t *l, MDB_txn *txn, const uint8_t *key, size_t key_len,
                       MDB_val *v)
{
    cp2p_kad_key_t h;
    int rc = cp2p_kad_key_of(key, key_len, &h);
    if (rc)
        return rc;
    MDB_val k = {sizeof h.b, h.b};
    int e = mdb_get(txn, l->records, &k, v);
    if (e == MDB_NOTFOUND)
        return CP2P_ENOTFOUND;
    if (e)
        return map_err(e, "read record");
    const uint8_t *p = v->mv_data;
    if (v->mv_size < REC_HDR)
        return map_err(MDB_CORRUPTED, "record header");
    size_t klen = (size_t)p[16] << 24 | (size_t)p[17] << 16 | (size_t)p[18] << 8 | p[19];
    if (klen > v->mv_size - REC_HDR)
        return map_err(MDB_CORRUPTED, "record key length");
    /* Another key with the same sha256 would be a collision: absent for us. */
    if (klen != key_len || memcmp(p + REC_HDR, key, key_len))
        return CP2P_ENOTFOUND;
    return 0;
}

static int lm_get_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                         uint64_t now_ms, cp2p_buf_t *out, uint64_t *received_ms)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    MDB_txn *txn;
    MDB_val v;
    int rc = begin(l, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    rc = read_record(l, txn, key, key_len, &v);
    if (!rc) {
        const uint8_t *p = v.mv_data;
        if (get_u64(p + 8) <= now_ms)
            rc = CP2P_ENOTFOUND;
        else {
            if (received_ms)
                *received_ms = get_u64(p);
            rc = cp2p_buf_append(out, p + REC_HDR + key_len, v.mv_size - REC_HDR - key_len);
        }
    }
    mdb_txn_abort(txn);
    return rc;
}

static int lm_remove_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    MDB_txn *txn;
    MDB_val v;
    int rc = begin(l, 0, &txn);
    if (rc)
        return rc;
    cp2p_kad_key_t h;
    rc = read_record(l, txn, key, key_len, &v);
    if (!rc)
        rc = cp2p_kad_key_of(key, key_len, &h);
    if (!rc) {
        MDB_val k = {sizeof h.b, h.b};
        rc = map_err(mdb_del(txn, l->records, &k, NULL), "delete record");
    }
    return finish(txn, rc, "commit delete");
}

/* Count key's providers not expired at now_ms, copying up to cap of them to out. */
static int scan_providers(lmdb_store_t *l, MDB_txn *txn, const cp2p_kad_key_t *h,
                          uint64_t now_ms, cp2p_peer_id_t *out, size_t cap, size_t *count)
{
    MDB_cursor *cur;
    int e = mdb_cursor_open(txn, l->providers, &cur);
    if (e)
        return map_err(e, "cursor");
    MDB_val k = {sizeof h->b, (void *)h->b}, v;
    size_t n = 0;
    int rc = 0;
    for (e = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !e;
         e = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= sizeof h->b || memcmp(k.mv_data, h->b, sizeof h->b))
            break;
        size_t id_len = k.mv_size - sizeof h->b;
        if (v.mv_size != 8 || id_len > CP2P_PEER_ID_MAX) {
            rc = map_err(MDB_CORRUPTED, "provider entry");
            break;
        }
        if (get_u64(v.mv_data) <= now_ms)
            continue;
        if (out && n < cap) {
            out[n].len = (uint8_t)id_len;
            memcpy(out[n].bytes, (uint8_t *)k.mv_data + sizeof h->b, id_len);
        }
        n++;
    }
    if (!rc && e && e != MDB_NOTFOUND)
        rc = map_err(e, "read providers");
    mdb_cursor_close(cur);
    *count = n;
    return rc;
}

static int lm_add_provider(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                           const cp2p_peer_id_t *peer, uint64_t now_ms)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    uint8_t kb[CP2P_KAD_KEY_LEN + CP2P_PEER_ID_MAX], exp[8];
    cp2p_kad_key_t h;
    int rc = cp2p_kad_key_of(key, key_len, &h);
    if (rc)
        return rc;
    memcpy(kb, h.b, sizeof h.b);
    memcpy(kb + sizeof h.b, peer->bytes, peer->len);
    MDB_val k = {sizeof h.b + peer->len, kb}, v;
    MDB_txn *txn;
    if ((rc = begin(l, 0, &txn)))
        return rc;
    int e = mdb_get(txn, l->providers, &k, &v);
    if (e == MDB_NOTFOUND) {
        /* Expired entries still count until expire() drops them: the bound
         * is on what the file holds. */
        MDB_stat st;
        size_t per_key = 0;
        e = mdb_stat(txn, l->providers, &st);
        if (!e && st.ms_entries >= s->limits.max_providers)
            rc = CP2P_ELIMIT;
        if (!e && !rc)
            rc = scan_providers(l, txn, &h, 0, NULL, 0, &per_key);
        if (!e && !rc && per_key >= s->limits.max_providers_per_key)
            rc = CP2P_ELIMIT;
    }
    if (e && e != MDB_NOTFOUND)
        rc = map_err(e, "read provider");
    if (!rc) {
        put_u64(exp, now_ms + CP2P_KAD_PROVIDER_TTL_MS);
        v = (MDB_val){sizeof exp, exp};
        rc = map_err(mdb_put(txn, l->providers, &k, &v, 0), "write provider");
    }
    return finish(txn, rc, "commit provider");
}

static int lm_get_providers(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                            uint64_t now_ms, cp2p_peer_id_t *out, size_t cap)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    cp2p_kad_key_t h;
    MDB_txn *txn;
    size_t n = 0;
    int rc = cp2p_kad_key_of(key, key_len, &h);
    if (rc || (rc = begin(l, MDB_RDONLY, &txn)))
        return rc;
    rc = scan_providers(l, txn, &h, now_ms, out, cap, &n);
    mdb_txn_abort(txn);
    return rc ? rc : (int)(n < cap ? n : cap);
}

/* Delete the entries of dbi whose expiry (at value offset off) has passed. */
static int expire_db(MDB_txn *txn, MDB_dbi dbi, size_t off, uint64_t now_ms, int *gone)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int e = mdb_cursor_open(txn, dbi, &cur);
    if (e)
        return map_err(e, "cursor");
    while (!(e = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
        if (v.mv_size < off + 8 || get_u64((uint8_t *)v.mv_data + off) <= now_ms) {
            if ((e = mdb_cursor_del(cur, 0)))
                break;
            (*gone)++;
        }
    }
    mdb_cursor_close(cur);
    return e == MDB_NOTFOUND ? 0 : map_err(e, "expire");
}

static int lm_expire(cp2p_kad_store_t *s, uint64_t now_ms)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    MDB_txn *txn;
    int gone = 0, rc = begin(l, 0, &txn);
    if (rc)
        return rc;
    rc = expire_db(txn, l->records, 8, now_ms, &gone);
    if (!rc)
        rc = expire_db(txn, l->providers, 0, now_ms, &gone);
    rc = finish(txn, rc, "commit expire");
    return rc ? rc : gone;
}

static size_t entries(lmdb_store_t *l, MDB_dbi dbi)
{
    MDB_txn *txn;
    MDB_stat st = {0};
    if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn))
        return 0;
    mdb_stat(txn, dbi, &st);
    mdb_txn_abort(txn);
    return st.ms_entries;
}

static size_t lm_record_count(cp2p_kad_store_t *s)
{
    return entries((lmdb_store_t *)s, ((lmdb_store_t *)s)->records);
}

static size_t lm_provider_count(cp2p_kad_store_t *s)
{
    return entries((lmdb_store_t *)s, ((lmdb_store_t *)s)->providers);
}

static int lm_save_peers(cp2p_kad_store_t *s, const cp2p_kad_saved_peer_t *peers, size_t n)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    MDB_txn *txn;
    int rc = begin(l, 0, &txn);
    if (rc)
        return rc;
    rc = map_err(mdb_drop(txn, l->peers, 0), "clear peers");
    for (size_t i = 0; !rc && i < n; i++) {
        MDB_val k = {peers[i].id.len, (void *)peers[i].id.bytes},
                v = {peers[i].addrs_len, (void *)peers[i].addrs};
        rc = map_err(mdb_put(txn, l->peers, &k, &v, 0), "write peer");
    }
    return finish(txn, rc, "commit peers");
}

static int lm_load_peers(cp2p_kad_store_t *s, cp2p_kad_saved_peer_t *out, size_t cap)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = begin(l, MDB_RDONLY, &txn), e;
    if (rc)
        return rc;
    if ((e = mdb_cursor_open(txn, l->peers, &cur))) {
        mdb_txn_abort(txn);
        return map_err(e, "cursor");
    }
    size_t n = 0;
    while (n < cap && !(e = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
        /* A damaged entry is skipped (damaged addresses are dropped): the
         * table refills from the network. */
        if (cp2p_peer_id_from_bytes(k.mv_data, k.mv_size, &out[n].id) == 0) {
            out[n].addrs_len = v.mv_size <= CP2P_KAD_SAVED_ADDR_BYTES ? (uint16_t)v.mv_size : 0;
            memcpy(out[n].addrs, v.mv_data, out[n].addrs_len);
            n++;
        }
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (e && e != MDB_NOTFOUND)
        return map_err(e, "read peers");
    return (int)n;
}

static void lm_free(cp2p_kad_store_t *s)
{
    lmdb_store_t *l = (lmdb_store_t *)s;
    mdb_env_close(l->env);
    free(l);
}

static const cp2p_kad_store_ops_t lmdb_ops = {
    .put_record = lm_put_record,
    .get_record = lm_get_record,
    .remove_record = lm_remove_record,
    .add_provider = lm_add_provider,
    .get_providers = lm_get_providers,
    .expire = lm_expire,
    .record_count = lm_record_count,
    .provider_count = lm_provider_count,
    .save_peers = lm_save_peers,
    .load_peers = lm_load_peers,
    .free = lm_free,
};

/* A directory without data.mdb must be empty (or hold only our lock file):
 * creating a database among someone else's files would be a mess to undo. */
static int check_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT || mkdir(dir, 0700) != 0) {
            cp2p_log_error("kad", "datastore %s: %s", dir, strerror(errno));
            return CP2P_EIO;
        }
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        cp2p_log_error("kad", "datastore %s: not a directory", dir);
        return CP2P_EIO;
    }
    DIR *d = opendir(dir);
    if (!d) {
        cp2p_log_error("kad", "datastore %s: %s", dir, strerror(errno));
        return CP2P_EIO;
    }
    int has_data = 0, foreign = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            !strcmp(de->d_name, "lock.mdb"))
            continue;
        if (!strcmp(de->d_name, "data.mdb"))
            has_data = 1;
        else
            foreign = 1;
    }
    closedir(d);
    if (foreign && !has_data) {
        cp2p_log_error("kad", "datastore %s: not empty and not a cp2p datastore", dir);
        return CP2P_EPARSE;
    }
    return 0;
}

/* Open our tables, writing the format marker into a new database and
 * refusing one that holds anything else. */
static int open_tables(lmdb_store_t *l, const char *dir)
{
    MDB_txn *txn;
    MDB_dbi main_db;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = begin(l, 0, &txn), e;
    if (rc)
        return rc;
    static const char *const ours[] = {"meta", "records", "providers", "peers"};
    size_t n_main = 0;
    e = mdb_dbi_open(txn, NULL, 0, &main_db);
    if (!e)
        e = mdb_cursor_open(txn, main_db, &cur);
    if (e)
        return finish(txn, map_err(e, "open"), "");
    while (!rc && !(e = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
        int known = 0;
        for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
            known |= k.mv_size == strlen(ours[i]) && !memcmp(k.mv_data, ours[i], k.mv_size);
        if (!known) {
            cp2p_log_error("kad", "datastore %s: a database that is not cp2p's", dir);
            rc = CP2P_EPARSE;
        }
        n_main++;
    }
    mdb_cursor_close(cur);
    if (!rc && e != MDB_NOTFOUND)
        rc = map_err(e, "read");
    if (!rc)
        rc = map_err(mdb_dbi_open(txn, "meta", MDB_CREATE, &l->meta), "open meta");
    if (!rc)
        rc = map_err(mdb_dbi_open(txn, "records", MDB_CREATE, &l->records), "open records");
    if (!rc)
        rc = map_err(mdb_dbi_open(txn, "providers", MDB_CREATE, &l->providers), "open providers");
    if (!rc)
        rc = map_err(mdb_dbi_open(txn, "peers", MDB_CREATE, &l->peers), "open peers");
    if (!rc) {
        k = (MDB_val){strlen(FORMAT_KEY), FORMAT_KEY};
        e = mdb_get(txn, l->meta, &k, &v);
        if (e == MDB_NOTFOUND && n_main == 0) {
            v = (MDB_val){strlen(FORMAT_VALUE), FORMAT_VALUE};
            rc = map_err(mdb_put(txn, l->meta, &k, &v, 0), "write format");
        } else if (e || v.mv_size != strlen(FORMAT_VALUE) ||
                   memcmp(v.mv_data, FORMAT_VALUE, v.mv_size)) {
            cp2p_log_error("kad", "datastore %s: unknown format", dir);
            rc = CP2P_EPARSE;
        }
    }
    return finish(txn, rc, "commit open");
}

int cp2p_kad_store_open_lmdb(const char *dir, const cp2p_kad_store_limits_t *limits,
                             cp2p_kad_store_t **out)
{
    if (!dir || !*dir || !out)
        return CP2P_EINVAL;
    int rc = check_dir(dir);
    if (rc)
        return rc;
    lmdb_store_t *l = calloc(1, sizeof *l);
    if (!l)
        return CP2P_ENOMEM;
    l->base.ops = &lmdb_ops;
    l->base.blocking = 1;
    if (limits)
        l->base.limits = *limits;
    cp2p_kad_store_limits_defaults(&l->base.limits);
    int e = mdb_env_create(&l->env);
    if (!e)
        e = mdb_env_set_maxdbs(l->env, 4);
    if (!e)
        e = mdb_env_set_mapsize(l->env, (size_t)l->base.limits.max_bytes);
    /* Default flags: every commit is synced, so a returned put survives a crash. */
    if (!e)
        e = mdb_env_open(l->env, dir, MDB_NOTLS, 0600);
    rc = e ? map_err(e, dir) : open_tables(l, dir);
    if (rc) {
        if (l->env)
            mdb_env_close(l->env);
        free(l);
        return rc;
    }
    *out = &l->base;
    return 0;
}
