/* remote.c — records that sync targets keep in the store they read from (DB_REMOTE), e.g. the
 * mlflow target's local-to-remote run ids: committed with the rest, so they survive restarts.
 * Key: target + '\0' + key bytes. */
#include "store_internal.h"

#include <errno.h>

/* ---- sync targets' records (store_remote_*) ---- */

static int remote_key(uint8_t *k, const char *target, const void *key, size_t klen)
{
    size_t tl = target ? strlen(target) : 0;
    if (!tl || (klen && !key))
        return -EINVAL;
    if (tl + 1 + klen > ST_MAX_KEY)
        return -ENAMETOOLONG;
    memcpy(k, target, tl + 1);
    if (klen)
        memcpy(k + tl + 1, key, klen);
    return (int)(tl + 1 + klen);
}

/* remote_key() for a write: first the transaction must be writable. */
static int remote_wkey(struct store_txn *t, uint8_t k[ST_MAX_KEY], const char *target,
                       const void *key, size_t klen)
{
    int rc = st_writable(t);
    return rc ? rc : remote_key(k, target, key, klen);
}

int store_remote_put(struct store_txn *t, const char *target, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    uint8_t k[ST_MAX_KEY];
    int kl = remote_wkey(t, k, target, key, klen);
    if (kl < 0)
        return kl;
    return st_put(t, DB_REMOTE, k, (size_t)kl, val, vlen, 0);
}

int store_remote_get(struct store_txn *t, const char *target, const void *key, size_t klen,
                     const void **val, size_t *vlen)
{
    uint8_t k[ST_MAX_KEY];
    int kl = remote_key(k, target, key, klen);
    if (kl < 0)
        return kl;
    if (!st_has_db(t, DB_REMOTE))
        return -ENOENT;
    MDB_val v;
    int rc = st_get(t, DB_REMOTE, k, (size_t)kl, &v);
    if (rc == 0) {
        *val = v.mv_data;
        *vlen = v.mv_size;
    }
    return rc;
}

int store_remote_del(struct store_txn *t, const char *target, const void *key, size_t klen)
{
    uint8_t k[ST_MAX_KEY];
    int kl = remote_wkey(t, k, target, key, klen);
    if (kl < 0)
        return kl;
    return st_del(t, DB_REMOTE, k, (size_t)kl);
}

struct remote_ctx {
    size_t tl;
    int (*cb)(const void *key, size_t klen, const void *val, size_t vlen, void *arg);
    void *arg;
};

static int remote_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct remote_ctx *c = arg;
    return c->cb((const uint8_t *)k->mv_data + c->tl, k->mv_size - c->tl, v->mv_data,
                 v->mv_size, c->arg);
}

int store_remote_foreach(struct store_txn *t, const char *target, const void *prefix,
                         size_t plen,
                         int (*cb)(const void *key, size_t klen, const void *val, size_t vlen,
                                   void *arg),
                         void *arg)
{
    uint8_t k[ST_MAX_KEY];
    int kl = remote_key(k, target, prefix, plen);
    if (kl < 0)
        return kl;
    if (!st_has_db(t, DB_REMOTE))
        return 0;
    struct remote_ctx c = {strlen(target) + 1, cb, arg};
    return st_prefix_foreach(t, DB_REMOTE, k, (size_t)kl, remote_one, &c);
}
