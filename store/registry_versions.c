/* registry_versions.c — model versions: numbering, their records and lineage index, status,
 * stages (with archive_existing), get-latest-versions, deletes (a version's, and a whole
 * model's, which is mostly its versions). registry.c has the schema and the models.
 */
#include "registry_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- versions ----------------------------------------------------------------------------- */

/* In the order they are written. */
#define MV_FIELD(key, type, member) RG_FIELD(struct store_mv, key, type, member)
static const struct rg_field mv_fields[] = {
    MV_FIELD("s", RG_STR, source),
    MV_FIELD("r", RG_STR, run_id),
    MV_FIELD("l", RG_STR, run_link),
    MV_FIELD("d", RG_STR, description),
    MV_FIELD("st", RG_INT, status),
    MV_FIELD("sm", RG_STR, status_message),
    MV_FIELD("g", RG_STR, digest),
    MV_FIELD("sg", RG_INT, stage),
    MV_FIELD("c", RG_I64, created_ms),
    MV_FIELD("u", RG_I64, updated_ms),
};
#define MV_NFIELDS (sizeof mv_fields / sizeof *mv_fields)

/* Version `version` of model m from its record v; the name and numbers come from m and the
 * key. */
static int mv_decode(const MDB_val *v, const struct store_rm *m, uint64_t version,
                     struct store_mv *out)
{
    memset(out, 0, sizeof *out);
    out->model_id = m->id;
    out->version = version;
    strcpy(out->name, m->name);
    return rg_rec_decode(v, mv_fields, MV_NFIELDS, out);
}

/* Reads version of model m; the name and numbers come from m and the key. */
int rg_mv_load(struct store_txn *t, const struct store_rm *m, uint64_t version,
               struct store_mv *out)
{
    uint8_t key[16];
    rg_mvkey(key, m->id, version);
    MDB_val v;
    int rc = st_get(t, DB_MV, key, 16, &v);
    return rc ? rc : mv_decode(&v, m, version, out);
}

int rg_mv_save(struct store_txn *t, const struct store_mv *mv)
{
    uint8_t key[16];
    rg_mvkey(key, mv->model_id, mv->version);
    return rg_rec_put(t, DB_MV, key, 16, mv_fields, MV_NFIELDS, mv);
}

/* mv_run key of a version: run_id + '\0' + model id + version. */
static size_t lineage_key(uint8_t *k, const struct store_mv *mv)
{
    size_t n = strlen(mv->run_id);
    memcpy(k, mv->run_id, n + 1);
    rg_mvkey(k + n + 1, mv->model_id, mv->version);
    return n + 17;
}

int store_mv_get(struct store_txn *t, const char *name, uint64_t version, struct store_mv *out)
{
    struct store_rm m;
    int rc = store_rm_get(t, name, &m);
    return rc ? rc : rg_mv_load(t, &m, version, out);
}

/* The common start of a write on a version: its model and the version itself. */
int rg_mv_for_write(struct store_txn *t, const char *name, uint64_t version,
                        const struct store_rm_by *by, struct store_rm *m, struct store_mv *mv)
{
    int rc = rg_rm_for_write(t, name, by, m);
    return rc ? rc : rg_mv_load(t, m, version, mv);
}

static int digest_norm(const char *in, char out[65])
{
    if (!in || !*in) {
        out[0] = '\0';
        return 0;
    }
    size_t i = 0;
    for (; i < 64 && isxdigit((unsigned char)in[i]); i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
    return i == 64 && in[64] == '\0' ? 0 : -EINVAL;
}

int store_mv_create(struct store_txn *t, const char *name, const struct store_mv_new *nv,
                    const struct store_rm_by *by, uint64_t *version)
{
    struct store_rm m;
    struct store_mv mv = {.status = nv && nv->status ? nv->status : STORE_MV_READY,
                          .stage = STORE_STAGE_NONE};
    int rc;
    if (!nv || !nv->source || !*nv->source)
        return -EINVAL;
    if ((rc = rg_opt_str(nv->source, STORE_MV_SOURCE_MAX)) < 0 ||
        (rc = rg_opt_str(nv->run_id, STORE_MV_RUN_ID_MAX)) < 0 ||
        (rc = rg_opt_str(nv->run_link, STORE_MV_RUN_LINK_MAX)) < 0 ||
        (rc = rg_opt_str(nv->description, STORE_RM_DESC_MAX)) < 0 ||
        (rc = rg_opt_str(nv->status_message, STORE_MV_STATUS_MSG_MAX)) < 0 ||
        (rc = digest_norm(nv->digest, mv.digest)) < 0)
        return rc;
    if (!strcmp(store_mv_status_name(mv.status), "UNKNOWN"))
        return -EINVAL;
    if ((rc = rg_rm_for_write(t, name, by, &m)) < 0)
        return rc;
    if (m.last_version == UINT64_MAX)
        return -EOVERFLOW;
    mv.model_id = m.id;
    mv.version = ++m.last_version;
    strcpy(mv.name, m.name);
    strcpy(mv.source, nv->source);
    snprintf(mv.run_id, sizeof mv.run_id, "%s", nv->run_id ? nv->run_id : "");
    snprintf(mv.run_link, sizeof mv.run_link, "%s", nv->run_link ? nv->run_link : "");
    snprintf(mv.description, sizeof mv.description, "%s",
             nv->description ? nv->description : "");
    snprintf(mv.status_message, sizeof mv.status_message, "%s",
             nv->status_message ? nv->status_message : "");
    mv.created_ms = mv.updated_ms = by->now_ms;
    if ((rc = rg_mv_save(t, &mv)) < 0)
        return rc;
    if (mv.run_id[0]) {
        uint8_t k[STORE_MV_RUN_ID_MAX + 17];
        if ((rc = st_put(t, DB_MV_RUN, k, lineage_key(k, &mv), "", 0, 0)) < 0)
            return rc;
    }
    struct rg_change c = {.kind = STORE_RM_VERSION_CREATED, .version = mv.version,
                          .after = mv.source};
    if ((rc = rg_rm_touch_log(t, &m, by, &c)) < 0)
        return rc;
    if (version)
        *version = mv.version;
    return 0;
}

int store_mv_set_description(struct store_txn *t, const char *name, uint64_t version,
                             const char *description, const struct store_rm_by *by)
{
    struct store_rm m;
    struct store_mv mv;
    int rc = rg_opt_str(description, STORE_RM_DESC_MAX);
    if (rc || (rc = rg_mv_for_write(t, name, version, by, &m, &mv)) < 0)
        return rc;
    char old[STORE_RM_DESC_MAX + 1];
    strcpy(old, mv.description);
    snprintf(mv.description, sizeof mv.description, "%s", description ? description : "");
    mv.updated_ms = by->now_ms;
    struct rg_change c = {.kind = STORE_RM_VERSION_DESCRIBED, .version = version,
                          .before = old, .after = mv.description};
    return (rc = rg_mv_save(t, &mv)) ? rc : rg_rm_touch_log(t, &m, by, &c);
}

int store_mv_set_status(struct store_txn *t, const char *name, uint64_t version, int status,
                        const char *message, const struct store_rm_by *by)
{
    struct store_rm m;
    struct store_mv mv;
    int rc = rg_opt_str(message, STORE_MV_STATUS_MSG_MAX);
    if (rc)
        return rc;
    if (!strcmp(store_mv_status_name(status), "UNKNOWN"))
        return -EINVAL;
    if ((rc = rg_mv_for_write(t, name, version, by, &m, &mv)) < 0)
        return rc;
    struct rg_change c = {.kind = STORE_RM_VERSION_STATUS, .version = version,
                          .before = store_mv_status_name(mv.status),
                          .after = store_mv_status_name(status)};
    mv.status = status;
    snprintf(mv.status_message, sizeof mv.status_message, "%s", message ? message : "");
    mv.updated_ms = by->now_ms;
    return (rc = rg_mv_save(t, &mv)) ? rc : rg_rm_touch_log(t, &m, by, &c);
}

/* ---- collecting a model's versions ---------------------------------------------------- */

struct mv_walk {
    const struct store_rm *m;
    int (*cb)(const struct store_mv *v, void *arg);
    void *arg;
    struct store_mv mv;
};

static int mv_walk_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct mv_walk *w = arg;
    if (k->mv_size != 16)
        return -EBADMSG;
    int rc = mv_decode(v, w->m, st_rd_be64((const uint8_t *)k->mv_data + 8), &w->mv);
    return rc ? rc : w->cb(&w->mv, w->arg);
}

int rg_mv_foreach_model(struct store_txn *t, const struct store_rm *m,
                        int (*cb)(const struct store_mv *v, void *arg), void *arg)
{
    struct mv_walk *w = malloc(sizeof *w);
    if (!w)
        return -ENOMEM;
    w->m = m;
    w->cb = cb;
    w->arg = arg;
    uint8_t prefix[8];
    st_be64(prefix, m->id);
    int rc = st_prefix_foreach(t, DB_MV, prefix, 8, mv_walk_one, w);
    free(w);
    return rc;
}

int store_mv_foreach(struct store_txn *t, const char *name,
                     int (*cb)(const struct store_mv *v, void *arg), void *arg)
{
    struct store_rm m;
    int rc = store_rm_get(t, name, &m);
    return rc ? rc : rg_mv_foreach_model(t, &m, cb, arg);
}

/* Version numbers (and one more field) gathered before the records are changed, so that no
 * cursor walks a database while it is written. */
struct vlist {
    struct rg_u64s vs;
    int stage; /* with stage_only, only the versions in this stage */
    bool stage_only;
    uint64_t skip;
};

int rg_u64s_add(struct rg_u64s *l, uint64_t x)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return 0;
}

static int vlist_one(const struct store_mv *v, void *arg)
{
    struct vlist *l = arg;
    if (v->version == l->skip || (l->stage_only && v->stage != l->stage))
        return 0;
    return rg_u64s_add(&l->vs, v->version);
}

/* ---- deleting ---------------------------------------------------------------------------- */

/* Removes a version's record, lineage entry and tags (not its aliases, nor any history). */
static int mv_erase(struct store_txn *t, const struct store_mv *mv)
{
    uint8_t k[STORE_MV_RUN_ID_MAX + 17];
    int rc;
    if (mv->run_id[0] && (rc = st_del(t, DB_MV_RUN, k, lineage_key(k, mv))) < 0 &&
        rc != -ENOENT)
        return rc;
    rg_mvkey(k, mv->model_id, mv->version);
    if ((rc = st_del(t, DB_MV, k, 16)) < 0)
        return rc;
    return rg_del_prefix(t, DB_RM_TAGS, k, 16);
}

struct alias_hits {
    uint64_t version;
    char (*names)[STORE_RM_ALIAS_MAX + 1];
    size_t n, cap;
};

static int alias_hit(const char *alias, uint64_t version, void *arg)
{
    struct alias_hits *h = arg;
    if (version != h->version)
        return 0;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4;
        void *nn = realloc(h->names, cap * sizeof *h->names);
        if (!nn)
            return -ENOMEM;
        h->names = nn;
        h->cap = cap;
    }
    snprintf(h->names[h->n++], sizeof h->names[0], "%s", alias);
    return 0;
}

int store_mv_delete(struct store_txn *t, const char *name, uint64_t version,
                    const struct store_rm_by *by)
{
    struct store_rm m;
    struct store_mv mv;
    int rc = rg_mv_for_write(t, name, version, by, &m, &mv);
    if (rc || (rc = mv_erase(t, &mv)) < 0)
        return rc;
    struct alias_hits h = {.version = version};
    rc = store_rm_aliases_foreach(t, name, alias_hit, &h);
    for (size_t i = 0; rc == 0 && i < h.n; i++) {
        uint8_t k[8 + STORE_RM_ALIAS_MAX];
        size_t an = strlen(h.names[i]);
        st_be64(k, m.id);
        memcpy(k + 8, h.names[i], an);
        struct rg_change c = {.kind = STORE_RM_ALIAS_DROPPED, .version = version,
                              .key = h.names[i], .from = version};
        if ((rc = st_del(t, DB_RM_ALIAS, k, 8 + an)) == 0)
            rc = rg_hist_put(t, &m, by, &c);
    }
    free(h.names);
    if (rc)
        return rc;
    struct rg_change c = {.kind = STORE_RM_VERSION_DELETED, .version = version,
                          .before = mv.source};
    return rg_rm_touch_log(t, &m, by, &c);
}

static int erase_one(const struct store_mv *v, void *arg)
{
    struct vlist *l = arg;
    return rg_u64s_add(&l->vs, v->version);
}

int store_rm_delete(struct store_txn *t, const char *name, const struct store_rm_by *by)
{
    struct store_rm m;
    int rc = rg_rm_for_write(t, name, by, &m);
    if (rc)
        return rc;
    struct vlist l = {0};
    rc = rg_mv_foreach_model(t, &m, erase_one, &l);
    struct store_mv *mv = rc ? NULL : malloc(sizeof *mv);
    if (!rc && !mv)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < l.vs.n; i++)
        if ((rc = rg_mv_load(t, &m, l.vs.v[i], mv)) == 0)
            rc = mv_erase(t, mv);
    free(mv);
    free(l.vs.v);
    if (rc)
        return rc;
    uint8_t key[8];
    st_be64(key, m.id);
    if ((rc = rg_del_prefix(t, DB_RM_TAGS, key, 8)) < 0 ||
        (rc = rg_del_prefix(t, DB_RM_ALIAS, key, 8)) < 0 ||
        (rc = st_del(t, DB_RM_NAME, m.name, strlen(m.name))) < 0 ||
        (rc = st_del(t, DB_RM, key, 8)) < 0)
        return rc;
    struct rg_change c = {.kind = STORE_RM_MODEL_DELETED};
    return rg_hist_put(t, &m, by, &c);
}

/* ---- stages ------------------------------------------------------------------------------ */

static int stage_set(struct store_txn *t, struct store_rm *m, struct store_mv *mv, int stage,
                     const struct store_rm_by *by)
{
    struct rg_change c = {.kind = STORE_RM_VERSION_STAGE, .version = mv->version,
                          .before = store_mv_stage_name(mv->stage),
                          .after = store_mv_stage_name(stage)};
    mv->stage = stage;
    mv->updated_ms = by->now_ms;
    int rc = rg_mv_save(t, mv);
    return rc ? rc : rg_rm_touch_log(t, m, by, &c);
}

int store_mv_transition(struct store_txn *t, const char *name, uint64_t version, int stage,
                        bool archive_existing, const struct store_rm_by *by)
{
    if (stage < STORE_STAGE_NONE || stage > STORE_STAGE_ARCHIVED)
        return -EINVAL;
    if (archive_existing && stage != STORE_STAGE_STAGING && stage != STORE_STAGE_PRODUCTION)
        return -EINVAL;
    struct store_rm m;
    struct store_mv *mv = malloc(sizeof *mv);
    if (!mv)
        return -ENOMEM;
    int rc = rg_mv_for_write(t, name, version, by, &m, mv);
    struct vlist l = {.stage = stage, .stage_only = true, .skip = version};
    if (rc == 0 && archive_existing)
        rc = rg_mv_foreach_model(t, &m, vlist_one, &l);
    if (rc == 0 && mv->stage != stage)
        rc = stage_set(t, &m, mv, stage, by);
    for (size_t i = 0; rc == 0 && i < l.vs.n; i++)
        if ((rc = rg_mv_load(t, &m, l.vs.v[i], mv)) == 0)
            rc = stage_set(t, &m, mv, STORE_STAGE_ARCHIVED, by);
    free(l.vs.v);
    free(mv);
    return rc;
}

struct latest {
    uint64_t top[4];
};

static int latest_one(const struct store_mv *v, void *arg)
{
    struct latest *l = arg;
    if (v->stage >= STORE_STAGE_NONE && v->stage <= STORE_STAGE_ARCHIVED)
        l->top[v->stage] = v->version; /* versions come in increasing order */
    return 0;
}

int store_mv_latest(struct store_txn *t, const char *name, const int *stages, size_t n,
                    int (*cb)(const struct store_mv *v, void *arg), void *arg)
{
    static const int all[] = {STORE_STAGE_NONE, STORE_STAGE_STAGING, STORE_STAGE_PRODUCTION,
                              STORE_STAGE_ARCHIVED};
    if (n == 0) {
        stages = all;
        n = 4;
    }
    for (size_t i = 0; i < n; i++)
        if (stages[i] < STORE_STAGE_NONE || stages[i] > STORE_STAGE_ARCHIVED)
            return -EINVAL;
    struct store_rm m;
    struct latest l = {{0}};
    int rc = store_rm_get(t, name, &m);
    if (rc || (rc = rg_mv_foreach_model(t, &m, latest_one, &l)) < 0)
        return rc;
    struct store_mv *mv = malloc(sizeof *mv);
    if (!mv)
        return -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (l.top[stages[i]] && (rc = rg_mv_load(t, &m, l.top[stages[i]], mv)) == 0)
            rc = cb(mv, arg);
    free(mv);
    return rc;
}

/* ---- lineage ----------------------------------------------------------------------------- */

struct run_walk {
    struct store_txn *t;
    size_t plen;
    int (*cb)(const struct store_mv *v, void *arg);
    void *arg;
    struct store_rm m;
    struct store_mv mv;
};

static int run_walk_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct run_walk *w = arg;
    (void)v;
    if (k->mv_size != w->plen + 16)
        return 0; /* a longer run id that starts with this one */
    const uint8_t *p = (const uint8_t *)k->mv_data + w->plen;
    uint64_t id = st_rd_be64(p);
    int rc = w->m.id == id ? 0 : store_rm_get_id(w->t, id, &w->m);
    if (rc == 0)
        rc = rg_mv_load(w->t, &w->m, st_rd_be64(p + 8), &w->mv);
    if (rc == -ENOENT)
        return -EBADMSG; /* an index entry without its version */
    return rc ? rc : w->cb(&w->mv, w->arg);
}

int store_mv_by_run(struct store_txn *t, const char *run_id,
                    int (*cb)(const struct store_mv *v, void *arg), void *arg)
{
    if (!run_id || !*run_id)
        return -EINVAL;
    int rc = rg_opt_str(run_id, STORE_MV_RUN_ID_MAX);
    if (rc)
        return rc;
    if (!st_has_db(t, DB_MV_RUN))
        return 0;
    struct run_walk *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->t = t;
    w->plen = strlen(run_id) + 1;
    w->cb = cb;
    w->arg = arg;
    rc = st_prefix_foreach(t, DB_MV_RUN, run_id, w->plen, run_walk_one, w);
    free(w);
    return rc;
}

