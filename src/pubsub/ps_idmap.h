/* A map from message ids (byte strings) to values, kept in insertion order
 * and expired from the oldest end: the seen cache, the message cache and
 * the IDONTWANT sets of gossipsub all insert with one time to live each, so
 * the oldest entry is always the first to expire. Hashing is keyed SipHash
 * with a key drawn per map, so a peer cannot choose ids that collide. */
#ifndef CP2P_PS_IDMAP_H
#define CP2P_PS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_ident {
    struct ps_ident *chain;      /* bucket */
    struct ps_ident *older, *newer;
    uint64_t hash, expiry;
    void *value;
    size_t len;
    uint8_t id[];
} ps_ident_t;

typedef struct ps_idmap {
    ps_ident_t **buckets;
    size_t n_buckets, count, max;
    ps_ident_t *oldest, *newest;
    uint8_t key[16];
    void (*free_value)(void *value);
} ps_idmap_t;

/* max entries (the oldest are dropped past it); free_value may be NULL. */
int ps_idmap_init(ps_idmap_t *m, size_t max, void (*free_value)(void *));
void ps_idmap_free(ps_idmap_t *m);
ps_ident_t *ps_idmap_get(const ps_idmap_t *m, const uint8_t *id, size_t len);
/* A new entry (NULL on ENOMEM); the caller has checked that id is absent. */
ps_ident_t *ps_idmap_put(ps_idmap_t *m, const uint8_t *id, size_t len, uint64_t expiry, void *value);
void ps_idmap_del(ps_idmap_t *m, ps_ident_t *e);
/* Drops the entries whose expiry is <= now. */
void ps_idmap_expire(ps_idmap_t *m, uint64_t now);

#endif
