/* experiments.c — experiments: id -> {name, created} in DB_EXP, name -> id in DB_EXP_NAME.
 *
 * Ids are u64, stored big-endian so that DB_EXP iterates in id order. "Default" is 0 and is
 * written when the store is created (env.c); new experiments take meta's "next_exp", which
 * starts at 1. Values are msgpack maps {n: name, c: created_ms, u: updated_ms, d: deleted}
 * (u and d came later: absent means created_ms and false). Tags are in DB_EXPTAGS under the
 * id widened to 16 bytes, so that the run-keyed helpers' layout (16 + key + NUL) serves.
 */
#include "store_internal.h"

#include <errno.h>

static int exp_decode(const MDB_val *v, uint64_t id, struct store_experiment *out)
{
    struct st_mpr r = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size};
    uint32_t n;
    int rc = st_mpr_map(&r, &n);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    out->id = id;
    bool have_name = false;
    for (uint32_t i = 0; i < n; i++) {
        struct st_mp_val k, val;
        if ((rc = st_mpr_val(&r, &k)) < 0 || (rc = st_mpr_val(&r, &val)) < 0)
            return rc;
        if (st_mp_key_is(&k, "n")) {
            if ((rc = st_mp_as_str(&val, out->name, sizeof out->name)) < 0)
                return rc;
            have_name = true;
        } else if (st_mp_key_is(&k, "c")) {
            if ((rc = st_mp_as_i64(&val, &out->created_ms)) < 0)
                return rc;
            if (!out->updated_ms)
                out->updated_ms = out->created_ms;
        } else if (st_mp_key_is(&k, "u")) {
            if ((rc = st_mp_as_i64(&val, &out->updated_ms)) < 0)
                return rc;
        } else if (st_mp_key_is(&k, "d")) {
            if (val.type != MP_BOOL)
                return -EBADMSG;
            out->deleted = val.b;
        }
    }
    return have_name ? 0 : -EBADMSG;
}

static int name_ok(const char *name, size_t *len)
{
    if (!name || !*name)
        return -EINVAL;
    *len = strnlen(name, sizeof ((struct store_experiment *)0)->name);
    return *len < sizeof ((struct store_experiment *)0)->name ? 0 : -ENAMETOOLONG;
}

static int id_by_name(struct store_txn *t, const char *name, size_t len, uint64_t *id)
{
    MDB_val v;
    int rc = st_get(t, DB_EXP_NAME, name, len, &v);
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return -EBADMSG;
    *id = st_rd_be64(v.mv_data);
    return 0;
}

static int exp_put(struct store_txn *t, const struct store_experiment *e)
{
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 4);
    st_mpw_str(&w, "n");
    st_mpw_str(&w, e->name);
    st_mpw_str(&w, "c");
    st_mpw_int(&w, e->created_ms);
    st_mpw_str(&w, "u");
    st_mpw_int(&w, e->updated_ms);
    st_mpw_str(&w, "d");
    st_mpw_bool(&w, e->deleted);
    uint8_t key[8];
    st_be64(key, e->id);
    int rc = st_mpw_done(&w);
    if (rc == 0)
        rc = st_put(t, DB_EXP, key, 8, w.buf, w.len, 0);
    st_mpw_free(&w);
    return rc;
}

static int exp_new(struct store_txn *t, const char *name, size_t len, int64_t now_ms,
                   uint64_t *id);

int store_experiment_ensure(struct store_txn *t, const char *name, int64_t now_ms, uint64_t *id)
{
    size_t len;
    int rc = name_ok(name, &len);
    if (rc)
        return rc;
    rc = id_by_name(t, name, len, id);
    if (rc != -ENOENT)
        return rc;
    return exp_new(t, name, len, now_ms, id);
}

int store_experiment_create(struct store_txn *t, const char *name, int64_t now_ms, uint64_t *id)
{
    size_t len;
    int rc = name_ok(name, &len);
    if (rc)
        return rc;
    uint64_t old;
    rc = id_by_name(t, name, len, &old);
    if (rc == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    return exp_new(t, name, len, now_ms, id);
}

static int exp_new(struct store_txn *t, const char *name, size_t len, int64_t now_ms,
                   uint64_t *id)
{
    int rc;
    if ((rc = st_writable(t)) != 0)
        return rc;

    uint64_t next;
    if ((rc = st_meta_next(t, "next_exp", &next)) < 0)
        return rc;
    struct store_experiment e = {.id = next, .created_ms = now_ms, .updated_ms = now_ms};
    memcpy(e.name, name, len);
    uint8_t key[8];
    st_be64(key, next);
    rc = exp_put(t, &e);
    if (rc == 0)
        rc = st_put(t, DB_EXP_NAME, name, len, key, 8, 0);
    if (rc == 0)
        *id = next;
    return rc;
}

int store_experiment_rename(struct store_txn *t, uint64_t id, const char *name, int64_t now_ms)
{
    size_t len;
    int rc = name_ok(name, &len);
    if (rc || (rc = st_writable(t)) != 0)
        return rc;
    struct store_experiment e;
    if ((rc = store_experiment_get(t, id, &e)) < 0)
        return rc;
    if (strcmp(e.name, name) == 0)
        return 0;
    uint64_t other;
    if ((rc = id_by_name(t, name, len, &other)) == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    if ((rc = st_del(t, DB_EXP_NAME, e.name, strlen(e.name))) < 0 && rc != -ENOENT)
        return rc;
    memset(e.name, 0, sizeof e.name);
    memcpy(e.name, name, len);
    e.updated_ms = now_ms;
    uint8_t key[8];
    st_be64(key, id);
    if ((rc = st_put(t, DB_EXP_NAME, name, len, key, 8, 0)) < 0)
        return rc;
    return exp_put(t, &e);
}

int store_experiment_set_deleted(struct store_txn *t, uint64_t id, bool deleted, int64_t now_ms)
{
    int rc = st_writable(t);
    struct store_experiment e;
    if (rc || (rc = store_experiment_get(t, id, &e)) < 0)
        return rc;
    e.deleted = deleted;
    e.updated_ms = now_ms;
    return exp_put(t, &e);
}

static void exp_owner(uint64_t id, uint8_t owner[16])
{
    memset(owner, 0, 8);
    st_be64(owner + 8, id);
}

int store_exp_tag_set(struct store_txn *t, uint64_t id, const char *key, const char *value)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    if (!value)
        return -EINVAL;
    struct store_experiment e;
    if ((rc = store_experiment_get(t, id, &e)) < 0)
        return rc;
    uint8_t owner[16], k[ST_MAX_KEY];
    exp_owner(id, owner);
    int kl = st_runkey(k, owner, key);
    if (kl < 0)
        return kl;
    return st_put(t, DB_EXPTAGS, k, (size_t)kl, value, strlen(value), 0);
}

int store_exp_tags_foreach(struct store_txn *t, uint64_t id,
                           int (*cb)(const char *key, const char *value, void *arg), void *arg)
{
    uint8_t owner[16];
    exp_owner(id, owner);
    return st_kv_foreach(t, DB_EXPTAGS, owner, cb, arg);
}

int store_experiment_get(struct store_txn *t, uint64_t id, struct store_experiment *out)
{
    uint8_t key[8];
    st_be64(key, id);
    MDB_val v;
    int rc = st_get(t, DB_EXP, key, 8, &v);
    if (rc)
        return rc;
    return exp_decode(&v, id, out);
}

int store_experiment_by_name(struct store_txn *t, const char *name, struct store_experiment *out)
{
    size_t len;
    uint64_t id;
    int rc = name_ok(name, &len);
    if (rc == 0)
        rc = id_by_name(t, name, len, &id);
    if (rc == 0)
        rc = store_experiment_get(t, id, out);
    return rc;
}

struct exp_ctx {
    int (*cb)(const struct store_experiment *e, void *arg);
    void *arg;
};

static int exp_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct exp_ctx *c = arg;
    if (k->mv_size != 8)
        return -EBADMSG;
    struct store_experiment e;
    int rc = exp_decode(v, st_rd_be64(k->mv_data), &e);
    return rc ? rc : c->cb(&e, c->arg);
}

int store_experiment_foreach(struct store_txn *t,
                             int (*cb)(const struct store_experiment *e, void *arg), void *arg)
{
    struct exp_ctx c = {cb, arg};
    return st_prefix_foreach(t, DB_EXP, NULL, 0, exp_one, &c);
}
