/* registry.c — the model registry's records: registered models, their tags and aliases, each
 * change written with its audit entry in the caller's transaction (registry.h is the
 * contract; registry_versions.c has the versions and stages, registry_history.c reads the
 * history back and rolls aliases back, registry_search.c searches).
 *
 * Schema (named databases; ids and versions big-endian u64 so that keys sort by number):
 *   rm        model id (8) -> msgpack {n: name, d: description, c: created_ms, u: updated_ms,
 *             lv: last version number given}
 *   rm_name   name -> model id (8): what keeps names unique, as exp_name does for experiments
 *   mv        model id (8) + version (8) -> msgpack {s: source, r: run_id, l: run_link,
 *             d: description, st: status, sm: status message, g: digest, sg: stage, c, u}
 *   mv_run    run_id + '\0' + model id (8) + version (8) -> "" (lineage: run -> versions)
 *   rm_tags   model id (8) + version (8; 0 for the model's own) + key + '\0' -> value, so that
 *             the run-tag helpers' 16-byte owner layout serves, and a model's prefix holds
 *             every tag under it
 *   rm_alias  model id (8) + alias -> version (8)
 *   rm_hist   model id (8) + seq (8) -> msgpack event (registry_history.c decodes it)
 *   meta      "next_rm" -> u64 (the next model id), "next_rmh" -> u64 (the next history seq)
 *
 * Models are keyed by an id rather than their name so that a rename rewrites two small
 * records instead of every version, tag, alias and history entry; ids are never reused, so a
 * deleted model's history stays readable under its id and a new model of the same name starts
 * a history of its own. Each model keeps the highest version number it ever gave, which makes
 * version numbers gap-free in creation order and never reused after a delete; LMDB's single
 * writer makes concurrent creations take turns.
 */
#include "registry_internal.h"
#include "registry_rules.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* ---- words ---------------------------------------------------------------------------- */

const char *store_rm_strerror(int err)
{
    switch (err) {
    case -EINVAL: return "invalid argument (a bad name, alias, stage, status, digest, filter "
                         "or page token, or a reserved alias)";
    case -EEXIST: return "a registered model with this name already exists";
    case -ENOENT: return "no such registered model, version, alias or tag";
    case -ENODATA: return "the alias has no earlier version to roll back to";
    case -EIDRM: return "the version the alias pointed at before has been deleted";
    case -ENAMETOOLONG: return "name, key or value too long";
    default: return store_strerror(err);
    }
}

static void put_msg(char *msg, size_t len, const char *fmt, const char *arg)
{
    if (msg && len)
        snprintf(msg, len, fmt, arg);
}

int store_rm_name_check(const char *name, char *msg, size_t msglen)
{
    switch (store_rm_name_rule(name)) {
    case STORE_RM_RULE_OK:
        return 0;
    case STORE_RM_RULE_TOO_LONG:
        put_msg(msg, msglen, "Registered model name '%.64s...' is longer than 256 bytes.", name);
        return -ENAMETOOLONG;
    default:
        put_msg(msg, msglen, "%sRegistered model name cannot be empty.", "");
        return -EINVAL;
    }
}

/* The rule is registry_rules.h's (the client library applies it too); the sentences are
 * MLflow's. */
int store_rm_alias_check(const char *alias, char *msg, size_t msglen)
{
    switch (store_rm_alias_rule(alias)) {
    case STORE_RM_RULE_OK:
        return 0;
    case STORE_RM_RULE_EMPTY:
        put_msg(msg, msglen, "%sRegistered model alias name cannot be empty.", "");
        return -EINVAL;
    case STORE_RM_RULE_TOO_LONG:
        put_msg(msg, msglen, "Registered model alias name '%.64s...' exceeds the length limit "
                             "of 255.", alias);
        return -ENAMETOOLONG;
    case STORE_RM_RULE_BAD_CHAR:
        put_msg(msg, msglen, "Invalid alias name: '%s'. Names may only contain "
                             "alphanumerics, underscores (_), and dashes (-).", alias);
        return -EINVAL;
    case STORE_RM_RULE_LATEST:
        put_msg(msg, msglen, "%s'latest' alias name (case insensitive) is reserved.", "");
        return -EINVAL;
    case STORE_RM_RULE_VERSION:
        put_msg(msg, msglen, "Version alias name '%s' is reserved.", alias);
        return -EINVAL;
    }
    return -EINVAL;
}

static const char *const status_names[] = {
    [STORE_MV_PENDING_REGISTRATION] = "PENDING_REGISTRATION",
    [STORE_MV_FAILED_REGISTRATION] = "FAILED_REGISTRATION",
    [STORE_MV_READY] = "READY",
};
static const char *const stage_names[] = {
    [STORE_STAGE_NONE] = "None", [STORE_STAGE_STAGING] = "Staging",
    [STORE_STAGE_PRODUCTION] = "Production", [STORE_STAGE_ARCHIVED] = "Archived",
};

const char *store_mv_status_name(int status)
{
    return status >= STORE_MV_PENDING_REGISTRATION && status <= STORE_MV_READY
               ? status_names[status] : "UNKNOWN";
}

int store_mv_status_parse(const char *s, int *status)
{
    for (int i = STORE_MV_PENDING_REGISTRATION; s && i <= STORE_MV_READY; i++)
        if (strcmp(s, status_names[i]) == 0) {
            *status = i;
            return 0;
        }
    return -EINVAL;
}

const char *store_mv_stage_name(int stage)
{
    return stage >= STORE_STAGE_NONE && stage <= STORE_STAGE_ARCHIVED ? stage_names[stage]
                                                                       : "UNKNOWN";
}

int store_mv_stage_parse(const char *s, int *stage)
{
    for (int i = STORE_STAGE_NONE; s && i <= STORE_STAGE_ARCHIVED; i++)
        if (strcasecmp(s, stage_names[i]) == 0) {
            *stage = i;
            return 0;
        }
    return -EINVAL;
}

/* ---- small helpers ---------------------------------------------------------------------- */

/* A string argument that may be NULL (""), at most max bytes. */
int rg_opt_str(const char *s, size_t max)
{
    return !s || strnlen(s, max + 1) <= max ? 0 : -ENAMETOOLONG;
}

static int by_ok(const struct store_rm_by *by)
{
    if (!by)
        return -EINVAL;
    return rg_opt_str(by->actor, STORE_RM_ACTOR_MAX);
}

void rg_mvkey(uint8_t k[16], uint64_t id, uint64_t version)
{
    st_be64(k, id);
    st_be64(k + 8, version);
}

int rg_rec_decode(const MDB_val *v, const struct rg_field *f, size_t nf, void *rec)
{
    struct st_mpr r = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size};
    uint32_t n;
    int rc = st_mpr_map(&r, &n);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        struct st_mp_val k, val;
        if ((rc = st_mpr_val(&r, &k)) < 0 || (rc = st_mpr_val(&r, &val)) < 0)
            return rc;
        const struct rg_field *d = f;
        while (d < f + nf && !st_mp_key_is(&k, d->key))
            d++;
        if (d == f + nf)
            continue;
        void *p = (char *)rec + d->off;
        int64_t x = 0;
        uint64_t u = 0;
        switch (d->type) {
        case RG_STR: rc = st_mp_as_str(&val, p, d->size); break;
        case RG_I64: rc = st_mp_as_i64(&val, p); break;
        case RG_U64: rc = st_mp_as_u64(&val, p); break;
        case RG_INT:
            if ((rc = st_mp_as_i64(&val, &x)) == 0)
                *(int *)p = (int)x;
            break;
        case RG_ENUM:
            if ((rc = st_mp_as_u64(&val, &u)) == 0)
                *(int *)p = u <= (uint64_t)d->max ? (int)u : 0;
            break;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int rg_mpw_put(struct store_txn *t, enum st_db db, const void *key, size_t klen,
               struct st_mpw *w)
{
    int rc = st_mpw_done(w);
    if (rc == 0)
        rc = st_put(t, db, key, klen, w->buf, w->len, 0);
    st_mpw_free(w);
    return rc;
}

int rg_rec_put(struct store_txn *t, enum st_db db, const void *key, size_t klen,
               const struct rg_field *f, size_t nf, const void *rec)
{
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, (uint32_t)nf);
    for (const struct rg_field *d = f; d < f + nf; d++) {
        const void *p = (const char *)rec + d->off;
        st_mpw_str(&w, d->key);
        switch (d->type) {
        case RG_STR: st_mpw_str(&w, p); break;
        case RG_I64: st_mpw_int(&w, *(const int64_t *)p); break;
        case RG_U64: st_mpw_uint(&w, *(const uint64_t *)p); break;
        case RG_INT: st_mpw_int(&w, *(const int *)p); break;
        case RG_ENUM: st_mpw_uint(&w, (uint64_t)*(const int *)p); break;
        }
    }
    return rg_mpw_put(t, db, key, klen, &w);
}

/* Deletes every entry whose key starts with prefix. */
int rg_del_prefix(struct store_txn *t, enum st_db db, const void *prefix, size_t plen)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c);
    if (rc)
        return st_txn_err(t, rc);
    for (;;) {
        MDB_val k = {plen, (void *)prefix}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc || k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : st_txn_err(t, rc);
}

/* ---- models ----------------------------------------------------------------------------- */

#define RM_FIELD(key, type, member) RG_FIELD(struct store_rm, key, type, member)
static const struct rg_field rm_fields[] = {
    RM_FIELD("n", RG_STR, name),
    RM_FIELD("d", RG_STR, description),
    RM_FIELD("c", RG_I64, created_ms),
    RM_FIELD("u", RG_I64, updated_ms),
    RM_FIELD("lv", RG_U64, last_version),
};
#define RM_NFIELDS (sizeof rm_fields / sizeof *rm_fields)

static int rm_decode(const MDB_val *v, uint64_t id, struct store_rm *out)
{
    memset(out, 0, sizeof *out);
    out->id = id;
    int rc = rg_rec_decode(v, rm_fields, RM_NFIELDS, out);
    return rc ? rc : out->name[0] ? 0 : -EBADMSG;
}

static int rm_save(struct store_txn *t, const struct store_rm *m)
{
    uint8_t key[8];
    st_be64(key, m->id);
    return rg_rec_put(t, DB_RM, key, 8, rm_fields, RM_NFIELDS, m);
}

int store_rm_get_id(struct store_txn *t, uint64_t id, struct store_rm *out)
{
    if (!st_has_db(t, DB_RM))
        return -ENOENT;
    uint8_t key[8];
    st_be64(key, id);
    MDB_val v;
    int rc = st_get(t, DB_RM, key, 8, &v);
    return rc ? rc : rm_decode(&v, id, out);
}

int store_rm_get(struct store_txn *t, const char *name, struct store_rm *out)
{
    int rc = store_rm_name_check(name, NULL, 0);
    if (rc)
        return rc;
    if (!st_has_db(t, DB_RM))
        return -ENOENT;
    MDB_val v;
    if ((rc = st_get(t, DB_RM_NAME, name, strlen(name), &v)) < 0)
        return rc;
    if (v.mv_size != 8)
        return -EBADMSG;
    return store_rm_get_id(t, st_rd_be64(v.mv_data), out);
}

/* The common start of a write on a model: a writable txn, a good actor, the model. */
int rg_rm_for_write(struct store_txn *t, const char *name, const struct store_rm_by *by,
                        struct store_rm *m)
{
    int rc = st_writable(t);
    if (rc || (rc = by_ok(by)) < 0)
        return rc;
    return store_rm_get(t, name, m);
}

/* Writes one history entry for model m (its id and current name). */
int rg_hist_put(struct store_txn *t, const struct store_rm *m, const struct store_rm_by *by,
                const struct rg_change *c)
{
    uint64_t seq;
    int rc = st_meta_next(t, "next_rmh", &seq);
    if (rc)
        return rc;
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 11);
    st_mpw_str(&w, "t");
    st_mpw_int(&w, by->now_ms);
    st_mpw_str(&w, "k");
    st_mpw_uint(&w, (uint64_t)c->kind);
    st_mpw_str(&w, "a");
    st_mpw_str(&w, by->actor ? by->actor : "");
    st_mpw_str(&w, "m");
    st_mpw_str(&w, m->name);
    st_mpw_str(&w, "v");
    st_mpw_uint(&w, c->version);
    st_mpw_str(&w, "key");
    st_mpw_str(&w, c->key ? c->key : "");
    st_mpw_str(&w, "fv");
    st_mpw_uint(&w, c->from);
    st_mpw_str(&w, "tv");
    st_mpw_uint(&w, c->to);
    st_mpw_str(&w, "ud");
    st_mpw_uint(&w, c->undoes);
    st_mpw_str(&w, "b");
    st_mpw_str(&w, c->before ? c->before : "");
    st_mpw_str(&w, "af");
    st_mpw_str(&w, c->after ? c->after : "");
    uint8_t key[16];
    rg_mvkey(key, m->id, seq);
    return rg_mpw_put(t, DB_RM_HIST, key, 16, &w);
}

/* Stamps the model as changed now and saves it, then records the change. */
int rg_rm_touch_log(struct store_txn *t, struct store_rm *m, const struct store_rm_by *by,
                        const struct rg_change *c)
{
    m->updated_ms = by->now_ms;
    int rc = rm_save(t, m);
    return rc ? rc : rg_hist_put(t, m, by, c);
}

int store_rm_create(struct store_txn *t, const char *name, const char *description,
                    const struct store_rm_by *by, struct store_rm *out)
{
    int rc = st_writable(t);
    if (rc || (rc = by_ok(by)) < 0 || (rc = store_rm_name_check(name, NULL, 0)) < 0 ||
        (rc = rg_opt_str(description, STORE_RM_DESC_MAX)) < 0)
        return rc;
    MDB_val v;
    size_t len = strlen(name);
    if ((rc = st_get(t, DB_RM_NAME, name, len, &v)) == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    struct store_rm m = {.created_ms = by->now_ms, .updated_ms = by->now_ms};
    if ((rc = st_meta_next(t, "next_rm", &m.id)) < 0)
        return rc;
    memcpy(m.name, name, len);
    if (description)
        strcpy(m.description, description);
    uint8_t key[8];
    st_be64(key, m.id);
    if ((rc = st_put(t, DB_RM_NAME, name, len, key, 8, 0)) < 0 || (rc = rm_save(t, &m)) < 0)
        return rc;
    struct rg_change c = {.kind = STORE_RM_MODEL_CREATED, .after = m.description};
    if ((rc = rg_hist_put(t, &m, by, &c)) < 0)
        return rc;
    if (out)
        *out = m;
    return 0;
}

int store_rm_rename(struct store_txn *t, const char *name, const char *new_name,
                    const struct store_rm_by *by)
{
    struct store_rm m;
    int rc = store_rm_name_check(new_name, NULL, 0);
    if (rc || (rc = rg_rm_for_write(t, name, by, &m)) < 0)
        return rc;
    if (strcmp(name, new_name) == 0)
        return 0;
    MDB_val v;
    size_t len = strlen(new_name);
    if ((rc = st_get(t, DB_RM_NAME, new_name, len, &v)) == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    uint8_t key[8];
    st_be64(key, m.id);
    if ((rc = st_del(t, DB_RM_NAME, name, strlen(name))) < 0 ||
        (rc = st_put(t, DB_RM_NAME, new_name, len, key, 8, 0)) < 0)
        return rc;
    char old[STORE_RM_NAME_MAX + 1];
    strcpy(old, m.name);
    memset(m.name, 0, sizeof m.name);
    memcpy(m.name, new_name, len);
    struct rg_change c = {.kind = STORE_RM_MODEL_RENAMED, .before = old, .after = m.name};
    return rg_rm_touch_log(t, &m, by, &c);
}

int store_rm_set_description(struct store_txn *t, const char *name, const char *description,
                             const struct store_rm_by *by)
{
    struct store_rm m;
    int rc = rg_opt_str(description, STORE_RM_DESC_MAX);
    if (rc || (rc = rg_rm_for_write(t, name, by, &m)) < 0)
        return rc;
    char old[STORE_RM_DESC_MAX + 1];
    strcpy(old, m.description);
    snprintf(m.description, sizeof m.description, "%s", description ? description : "");
    struct rg_change c = {.kind = STORE_RM_MODEL_DESCRIBED, .before = old,
                          .after = m.description};
    return rg_rm_touch_log(t, &m, by, &c);
}

struct rm_walk {
    struct store_txn *t;
    int (*cb)(const struct store_rm *m, void *arg);
    void *arg;
    struct store_rm m;
};

static int rm_walk_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct rm_walk *w = arg;
    (void)k;
    if (v->mv_size != 8)
        return -EBADMSG;
    int rc = store_rm_get_id(w->t, st_rd_be64(v->mv_data), &w->m);
    return rc ? (rc == -ENOENT ? -EBADMSG : rc) : w->cb(&w->m, w->arg);
}

int store_rm_foreach(struct store_txn *t, int (*cb)(const struct store_rm *m, void *arg),
                     void *arg)
{
    if (!st_has_db(t, DB_RM))
        return 0;
    struct rm_walk *w = malloc(sizeof *w);
    if (!w)
        return -ENOMEM;
    *w = (struct rm_walk){.t = t, .cb = cb, .arg = arg};
    int rc = st_prefix_foreach(t, DB_RM_NAME, NULL, 0, rm_walk_one, w);
    free(w);
    return rc;
}

/* ---- tags -------------------------------------------------------------------------------- */

static int tag_key(uint8_t *k, uint64_t id, uint64_t version, const char *key)
{
    if (!key || !*key)
        return -EINVAL;
    if (strnlen(key, STORE_RM_TAG_KEY_MAX + 1) > STORE_RM_TAG_KEY_MAX)
        return -ENAMETOOLONG;
    uint8_t owner[16];
    rg_mvkey(owner, id, version);
    return st_runkey(k, owner, key);
}

/* Sets or (value NULL) deletes a tag of model m (version 0) or of one of its versions. */
static int tag_change(struct store_txn *t, struct store_rm *m, struct store_mv *mv,
                      const char *key, const char *value, const struct store_rm_by *by)
{
    uint8_t k[ST_MAX_KEY];
    int kl = tag_key(k, m->id, mv ? mv->version : 0, key), rc;
    if (kl < 0)
        return kl;
    MDB_val v;
    char *old = NULL;
    if ((rc = st_get(t, DB_RM_TAGS, k, (size_t)kl, &v)) == 0) {
        if (value && v.mv_size == strlen(value) && memcmp(v.mv_data, value, v.mv_size) == 0)
            return 0;
        if (!(old = strndup(v.mv_data, v.mv_size)))
            return -ENOMEM;
    } else if (rc != -ENOENT || !value) {
        return rc;
    }
    rc = value ? st_put(t, DB_RM_TAGS, k, (size_t)kl, value, strlen(value), 0)
               : st_del(t, DB_RM_TAGS, k, (size_t)kl);
    struct rg_change c = {
        .kind = mv ? (value ? STORE_RM_VERSION_TAG_SET : STORE_RM_VERSION_TAG_DELETED)
                   : (value ? STORE_RM_MODEL_TAG_SET : STORE_RM_MODEL_TAG_DELETED),
        .version = mv ? mv->version : 0, .key = key, .before = old, .after = value};
    if (rc == 0 && mv) {
        mv->updated_ms = by->now_ms;
        rc = rg_mv_save(t, mv);
    }
    if (rc == 0)
        rc = rg_rm_touch_log(t, m, by, &c);
    free(old);
    return rc;
}

int store_rm_tag_set(struct store_txn *t, const char *name, const char *key, const char *value,
                     const struct store_rm_by *by)
{
    struct store_rm m;
    int rc = value ? rg_opt_str(value, STORE_RM_TAG_VALUE_MAX) : -EINVAL;
    if (rc || (rc = rg_rm_for_write(t, name, by, &m)) < 0)
        return rc;
    return tag_change(t, &m, NULL, key, value, by);
}

int store_rm_tag_delete(struct store_txn *t, const char *name, const char *key,
                        const struct store_rm_by *by)
{
    struct store_rm m;
    int rc = rg_rm_for_write(t, name, by, &m);
    return rc ? rc : tag_change(t, &m, NULL, key, NULL, by);
}

int store_rm_tags_foreach(struct store_txn *t, const char *name,
                          int (*cb)(const char *key, const char *value, void *arg), void *arg)
{
    struct store_rm m;
    uint8_t owner[16];
    int rc = store_rm_get(t, name, &m);
    if (rc)
        return rc;
    rg_mvkey(owner, m.id, 0);
    return st_kv_foreach(t, DB_RM_TAGS, owner, cb, arg);
}

static int mv_tag_change(struct store_txn *t, const char *name, uint64_t version,
                         const char *key, const char *value, const struct store_rm_by *by)
{
    struct store_rm m;
    struct store_mv *mv = malloc(sizeof *mv);
    if (!mv)
        return -ENOMEM;
    int rc = rg_mv_for_write(t, name, version, by, &m, mv);
    if (rc == 0)
        rc = tag_change(t, &m, mv, key, value, by);
    free(mv);
    return rc;
}

int store_mv_tag_set(struct store_txn *t, const char *name, uint64_t version, const char *key,
                     const char *value, const struct store_rm_by *by)
{
    int rc = value ? rg_opt_str(value, STORE_RM_TAG_VALUE_MAX) : -EINVAL;
    return rc ? rc : mv_tag_change(t, name, version, key, value, by);
}

int store_mv_tag_delete(struct store_txn *t, const char *name, uint64_t version,
                        const char *key, const struct store_rm_by *by)
{
    return mv_tag_change(t, name, version, key, NULL, by);
}

int store_mv_tags_foreach(struct store_txn *t, const char *name, uint64_t version,
                          int (*cb)(const char *key, const char *value, void *arg), void *arg)
{
    struct store_rm m;
    MDB_val v;
    uint8_t owner[16];
    int rc = store_rm_get(t, name, &m);
    if (rc)
        return rc;
    rg_mvkey(owner, m.id, version);
    if ((rc = st_get(t, DB_MV, owner, 16, &v)) < 0)
        return rc;
    return st_kv_foreach(t, DB_RM_TAGS, owner, cb, arg);
}

/* ---- aliases ----------------------------------------------------------------------------- */

static size_t alias_key(uint8_t *k, uint64_t id, const char *alias)
{
    size_t n = strlen(alias);
    st_be64(k, id);
    memcpy(k + 8, alias, n);
    return n + 8;
}

int rg_alias_lookup(struct store_txn *t, uint64_t id, const char *alias, uint64_t *version)
{
    uint8_t k[8 + STORE_RM_ALIAS_MAX];
    MDB_val v;
    int rc = st_get(t, DB_RM_ALIAS, k, alias_key(k, id, alias), &v);
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return -EBADMSG;
    *version = st_rd_be64(v.mv_data);
    return 0;
}

/* Points alias at version (0: removes it) and records the change as kind. */
int rg_alias_move(struct store_txn *t, struct store_rm *m, const char *alias, uint64_t from,
                  uint64_t to, const struct rg_change *c, const struct store_rm_by *by)
{
    uint8_t k[8 + STORE_RM_ALIAS_MAX], v[8];
    size_t kl = alias_key(k, m->id, alias);
    st_be64(v, to);
    int rc = to ? st_put(t, DB_RM_ALIAS, k, kl, v, 8, 0) : st_del(t, DB_RM_ALIAS, k, kl);
    if (rc)
        return rc;
    struct rg_change cc = *c;
    cc.key = alias;
    cc.from = from;
    cc.to = to;
    cc.version = to ? to : from;
    return rg_rm_touch_log(t, m, by, &cc);
}

int store_rm_alias_set(struct store_txn *t, const char *name, const char *alias,
                       uint64_t version, const struct store_rm_by *by)
{
    struct store_rm m;
    int rc = store_rm_alias_check(alias, NULL, 0);
    if (rc || (rc = rg_rm_for_write(t, name, by, &m)) < 0)
        return rc;
    uint8_t k[16];
    MDB_val v;
    rg_mvkey(k, m.id, version);
    if ((rc = st_get(t, DB_MV, k, 16, &v)) < 0)
        return rc;
    uint64_t cur = 0;
    if ((rc = rg_alias_lookup(t, m.id, alias, &cur)) < 0 && rc != -ENOENT)
        return rc;
    if (cur == version)
        return 0;
    struct rg_change c = {.kind = STORE_RM_ALIAS_SET};
    return rg_alias_move(t, &m, alias, cur, version, &c, by);
}

int store_rm_alias_delete(struct store_txn *t, const char *name, const char *alias,
                          const struct store_rm_by *by)
{
    struct store_rm m;
    uint64_t cur;
    int rc = alias && *alias && strnlen(alias, STORE_RM_ALIAS_MAX + 1) <= STORE_RM_ALIAS_MAX
                 ? 0 : -EINVAL;
    if (rc || (rc = rg_rm_for_write(t, name, by, &m)) < 0 ||
        (rc = rg_alias_lookup(t, m.id, alias, &cur)) < 0)
        return rc;
    struct rg_change c = {.kind = STORE_RM_ALIAS_DELETED};
    return rg_alias_move(t, &m, alias, cur, 0, &c, by);
}

int store_rm_alias_get(struct store_txn *t, const char *name, const char *alias,
                       uint64_t *version)
{
    struct store_rm m;
    if (!alias || !*alias || strnlen(alias, STORE_RM_ALIAS_MAX + 1) > STORE_RM_ALIAS_MAX)
        return -EINVAL;
    int rc = store_rm_get(t, name, &m);
    return rc ? rc : rg_alias_lookup(t, m.id, alias, version);
}

int store_mv_by_alias(struct store_txn *t, const char *name, const char *alias,
                      struct store_mv *out)
{
    uint64_t version;
    int rc = store_rm_alias_get(t, name, alias, &version);
    return rc ? rc : store_mv_get(t, name, version, out);
}

struct alias_walk {
    int (*cb)(const char *alias, uint64_t version, void *arg);
    void *arg;
};

static int alias_walk_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct alias_walk *w = arg;
    char alias[STORE_RM_ALIAS_MAX + 1];
    size_t n = k->mv_size - 8;
    if (n == 0 || n > STORE_RM_ALIAS_MAX || v->mv_size != 8)
        return -EBADMSG;
    memcpy(alias, (const char *)k->mv_data + 8, n);
    alias[n] = '\0';
    return w->cb(alias, st_rd_be64(v->mv_data), w->arg);
}

int store_rm_aliases_foreach(struct store_txn *t, const char *name,
                             int (*cb)(const char *alias, uint64_t version, void *arg),
                             void *arg)
{
    struct store_rm m;
    int rc = store_rm_get(t, name, &m);
    if (rc)
        return rc;
    uint8_t prefix[8];
    st_be64(prefix, m.id);
    struct alias_walk w = {cb, arg};
    return st_prefix_foreach(t, DB_RM_ALIAS, prefix, 8, alias_walk_one, &w);
}
