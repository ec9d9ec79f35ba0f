/* registry_history.c — the registry's audit history read back, and alias rollback from it.
 *
 * registry.c writes one entry per change into rm_hist under (model id, seq), seq counting up
 * store-wide, so a model's history is one key range in change order; it is read newest first
 * with a cursor walking backwards. Page tokens are the seq of the last entry handed out, so a
 * page stays where it was while newer changes arrive.
 *
 * Rollback reads the alias's own changes newest first like an undo stack: each rollback
 * entry cancels the nearest earlier set/move/delete that it undid, and the first change left
 * uncancelled is the one to undo (its "from" is where the alias goes back to). Removals that
 * come from deleting a version are not moves a user made, so they are skipped.
 */
#include "registry_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

const char *store_rm_change_name(int kind)
{
    static const char *const names[] = {
        [STORE_RM_MODEL_CREATED] = "model_created",
        [STORE_RM_MODEL_RENAMED] = "model_renamed",
        [STORE_RM_MODEL_DELETED] = "model_deleted",
        [STORE_RM_MODEL_DESCRIBED] = "model_description",
        [STORE_RM_MODEL_TAG_SET] = "model_tag_set",
        [STORE_RM_MODEL_TAG_DELETED] = "model_tag_deleted",
        [STORE_RM_VERSION_CREATED] = "version_created",
        [STORE_RM_VERSION_DELETED] = "version_deleted",
        [STORE_RM_VERSION_DESCRIBED] = "version_description",
        [STORE_RM_VERSION_STATUS] = "version_status",
        [STORE_RM_VERSION_STAGE] = "version_stage",
        [STORE_RM_VERSION_TAG_SET] = "version_tag_set",
        [STORE_RM_VERSION_TAG_DELETED] = "version_tag_deleted",
        [STORE_RM_ALIAS_SET] = "alias_set",
        [STORE_RM_ALIAS_DELETED] = "alias_deleted",
        [STORE_RM_ALIAS_DROPPED] = "alias_dropped",
        [STORE_RM_ALIAS_ROLLBACK] = "alias_rollback",
    };
    return kind >= STORE_RM_MODEL_CREATED && kind <= STORE_RM_ALIAS_ROLLBACK ? names[kind]
                                                                            : "unknown";
}

#define EV_FIELD(key, type, member) RG_FIELD(struct store_rm_event, key, type, member)
static const struct rg_field ev_fields[] = {
    EV_FIELD("t", RG_I64, time_ms),
    {"k", RG_ENUM, offsetof(struct store_rm_event, kind), sizeof(int), STORE_RM_ALIAS_ROLLBACK},
    EV_FIELD("a", RG_STR, actor),
    EV_FIELD("m", RG_STR, model),
    EV_FIELD("v", RG_U64, version),
    EV_FIELD("key", RG_STR, key),
    EV_FIELD("fv", RG_U64, from_version),
    EV_FIELD("tv", RG_U64, to_version),
    EV_FIELD("ud", RG_U64, undoes),
    EV_FIELD("b", RG_STR, before),
    EV_FIELD("af", RG_STR, after),
};

static int ev_decode(const MDB_val *k, const MDB_val *v, struct store_rm_event *e)
{
    if (k->mv_size != 16)
        return -EBADMSG;
    memset(e, 0, sizeof *e);
    e->model_id = st_rd_be64(k->mv_data);
    e->seq = st_rd_be64((const uint8_t *)k->mv_data + 8);
    int rc = rg_rec_decode(v, ev_fields, sizeof ev_fields / sizeof *ev_fields, e);
    return rc ? rc : e->kind ? 0 : -EBADMSG;
}

/* Calls fn for each history entry of model id with seq < below, newest first; a nonzero
 * return of fn stops the walk and is returned. */
static int hist_walk_back(struct store_txn *t, uint64_t id, uint64_t below,
                          int (*fn)(const struct store_rm_event *e, void *arg), void *arg)
{
    if (!st_has_db(t, DB_RM_HIST))
        return 0;
    struct store_rm_event *e = malloc(sizeof *e);
    MDB_cursor *c = NULL;
    int rc = e ? mdb_cursor_open(t->txn, t->s->dbi[DB_RM_HIST], &c) : ENOMEM;
    if (rc) {
        free(e);
        return rc == ENOMEM ? -ENOMEM : st_txn_err(t, rc);
    }
    uint8_t start[16];
    rg_mvkey(start, id, below);
    MDB_val k = {16, start}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    int r = 0;
    while (rc == 0 && k.mv_size >= 8 && st_rd_be64(k.mv_data) == id) {
        if ((r = ev_decode(&k, &v, e)) != 0 || (r = fn(e, arg)) != 0)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(c);
    free(e);
    if (r)
        return r;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : st_txn_err(t, rc);
}

/* ---- listing ------------------------------------------------------------------------------ */

struct page {
    size_t max, n;
    int (*cb)(const struct store_rm_event *e, void *arg);
    void *arg;
    uint64_t last;
    bool more;
};

static int page_one(const struct store_rm_event *e, void *arg)
{
    struct page *p = arg;
    if (p->n == p->max) {
        p->more = true;
        return 1;
    }
    int rc = p->cb(e, p->arg);
    if (rc)
        return rc;
    p->n++;
    p->last = e->seq;
    return 0;
}

static int token_parse(const char *tok, uint64_t *below)
{
    *below = UINT64_MAX;
    if (!tok || !*tok)
        return 0;
    uint64_t v = 0;
    for (const char *p = tok; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0)
        return -EINVAL;
    *below = v;
    return 0;
}

int store_rm_history_id(struct store_txn *t, uint64_t model_id, size_t max,
                        const char *page_token,
                        int (*cb)(const struct store_rm_event *e, void *arg), void *arg,
                        char next_token[STORE_RM_TOKEN_MAX])
{
    uint64_t below;
    next_token[0] = '\0';
    int rc = token_parse(page_token, &below);
    if (rc)
        return rc;
    struct page p = {.max = max ? max : 100, .cb = cb, .arg = arg};
    rc = hist_walk_back(t, model_id, below, page_one, &p);
    if (rc < 0 || (rc > 0 && !p.more))
        return rc;
    if (p.more)
        snprintf(next_token, STORE_RM_TOKEN_MAX, "%llu", (unsigned long long)p.last);
    return 0;
}

int store_rm_history(struct store_txn *t, const char *name, size_t max, const char *page_token,
                     int (*cb)(const struct store_rm_event *e, void *arg), void *arg,
                     char next_token[STORE_RM_TOKEN_MAX])
{
    struct store_rm m;
    next_token[0] = '\0';
    int rc = store_rm_get(t, name, &m);
    return rc ? rc : store_rm_history_id(t, m.id, max, page_token, cb, arg, next_token);
}

/* ---- rollback ----------------------------------------------------------------------------- */

struct undo {
    const char *alias;
    unsigned pending;    /* rollbacks seen that have not met the change they undid yet */
    bool found;
    uint64_t target, seq;
};

static int undo_one(const struct store_rm_event *e, void *arg)
{
    struct undo *u = arg;
    if (strcmp(e->key, u->alias) != 0)
        return 0;
    switch (e->kind) {
    case STORE_RM_ALIAS_ROLLBACK:
        u->pending++;
        return 0;
    case STORE_RM_ALIAS_SET:
    case STORE_RM_ALIAS_DELETED:
        if (u->pending) {
            u->pending--;
            return 0;
        }
        u->found = true;
        u->target = e->from_version;
        u->seq = e->seq;
        return 1;
    default:
        return 0; /* tag changes of the same key, alias_dropped */
    }
}

int store_rm_rollback(struct store_txn *t, const char *name, const char *alias,
                      const struct store_rm_by *by, uint64_t *from, uint64_t *to)
{
    struct store_rm m;
    int rc = store_rm_alias_check(alias, NULL, 0);
    if (rc || (rc = rg_rm_for_write(t, name, by, &m)) < 0)
        return rc;
    struct undo u = {.alias = alias};
    if ((rc = hist_walk_back(t, m.id, UINT64_MAX, undo_one, &u)) < 0)
        return rc;
    if (!u.found || u.target == 0)
        return -ENODATA;
    uint8_t k[16];
    MDB_val v;
    rg_mvkey(k, m.id, u.target);
    if ((rc = st_get(t, DB_MV, k, 16, &v)) < 0)
        return rc == -ENOENT ? -EIDRM : rc;
    uint64_t cur = 0;
    if ((rc = rg_alias_lookup(t, m.id, alias, &cur)) < 0 && rc != -ENOENT)
        return rc;
    struct rg_change c = {.kind = STORE_RM_ALIAS_ROLLBACK, .undoes = u.seq};
    if ((rc = rg_alias_move(t, &m, alias, cur, u.target, &c, by)) < 0)
        return rc;
    if (from)
        *from = cur;
    if (to)
        *to = u.target;
    return 0;
}
