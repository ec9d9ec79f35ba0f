/* kv_get.c — point lookups of one param or tag of a run, for search: a filter or an order_by
 * on one key reads that key alone instead of walking every param or tag of every run. */
#include "store_internal.h"

#include <errno.h>

static int kv_get(struct store_txn *t, enum st_db db, const uint8_t run[16], const char *key,
                  const char **value, size_t *len)
{
    if (!st_has_db(t, db))
        return -ENOENT;
    uint8_t k[ST_MAX_KEY];
    int kl = st_runkey(k, run, key);
    if (kl < 0)
        return kl == -ENAMETOOLONG ? -ENOENT : kl; /* no stored key is that long */
    MDB_val v;
    int rc = st_get(t, db, k, (size_t)kl, &v);
    if (rc)
        return rc;
    *value = v.mv_data;
    *len = v.mv_size;
    return 0;
}

int store_param_get(struct store_txn *t, const uint8_t run[16], const char *key,
                    const char **value, size_t *len)
{
    return kv_get(t, DB_PARAMS, run, key, value, len);
}

int store_tag_get(struct store_txn *t, const uint8_t run[16], const char *key,
                  const char **value, size_t *len)
{
    return kv_get(t, DB_TAGS, run, key, value, len);
}
