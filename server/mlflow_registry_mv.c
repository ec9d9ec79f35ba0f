/* mlflow_registry_mv.c — model versions in MLflow's model-registry API, and sidetrack's
 * registry extensions (history and rollback); see mlflow_registry.c for the routes.
 *
 * model-versions/create numbers the version in the same transaction that makes it (the
 * store's per-model counter), so concurrent requests get 1..N without gaps. When the source
 * names a run's artifacts (runs:/<run>/<path>, or this server's mlflow-artifacts:/ URI) and
 * they are in the store, the version keeps the digest of its files (store_mv_digest), shown as
 * "sidetrack_digest"; any other source is accepted as MLflow accepts it, without a digest.
 * get-download-uri answers the mlflow-artifacts:/ URI of those files, which this server's
 * artifacts proxy serves. */
#include "mlflow_registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared field checks ---------------------------------------------------------------- */

static bool mv_name(struct mf *m, const char **out)
{
    char msg[160];
    if (!mf_str(m, "name", true, out))
        return false;
    if (store_rm_name_check(*out, msg, sizeof msg) < 0) {
        mf_invalid(m, "%s", msg);
        return false;
    }
    return true;
}

/* An optional string field of at most max bytes; false after a failure. */
static bool opt_str(struct mf *m, const char *field, size_t max, const char **out)
{
    *out = NULL;
    if (!mf_str(m, field, false, out))
        return !m->failed;
    if (strlen(*out) > max) {
        mf_invalid(m, "%s is %zu bytes long: this server keeps up to %zu", field, strlen(*out),
                   max);
        return false;
    }
    return true;
}

/* ---- create --------------------------------------------------------------------------------- */

struct mv_create {
    const char *name, *source, *run_id, *run_link, *description;
    json_t *tags;
    struct store_rm_by by;
    bool parsed; /* the source names a run's artifacts */
    char run_hex[33];
    char path[1024];
    char digest[65];
    uint64_t version;
};

static int mv_create_tx(struct store_txn *t, void *arg)
{
    struct mv_create *c = arg;
    uint8_t run[16];
    int rc;
    c->digest[0] = '\0';
    if (c->parsed && store_run_id_parse(c->run_hex, run) == 0) {
        rc = store_mv_digest(t, run, c->path, c->digest, NULL, NULL);
        if (rc == -ENOENT)
            c->digest[0] = '\0'; /* nothing there (yet): a version without a digest */
        else if (rc < 0)
            return rc;
    }
    struct store_mv_new nv = {
        .source = c->source,
        .run_id = c->run_id && *c->run_id ? c->run_id : c->parsed ? c->run_hex : NULL,
        .run_link = c->run_link,
        .description = c->description,
        .digest = c->digest,
        .status = STORE_MV_READY,
    };
    if ((rc = store_mv_create(t, c->name, &nv, &c->by, &c->version)) < 0)
        return rc;
    size_t i;
    json_t *tag;
    json_array_foreach(c->tags, i, tag)
    {
        rc = store_mv_tag_set(t, c->name, c->version,
                              json_string_value(json_object_get(tag, "key")),
                              json_string_value(json_object_get(tag, "value")), &c->by);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void rg_mv_create(struct mf *m)
{
    struct mv_create c = {0};
    char actor[STORE_RM_ACTOR_MAX + 1];
    if (!mv_name(m, &c.name) || !mf_str(m, "source", true, &c.source) ||
        !opt_str(m, "run_id", STORE_MV_RUN_ID_MAX, &c.run_id) ||
        !opt_str(m, "run_link", STORE_MV_RUN_LINK_MAX, &c.run_link) ||
        !opt_str(m, "description", STORE_RM_DESC_MAX, &c.description) || !(c.tags = rg_tags(m)))
        return;
    if (!*c.source || strlen(c.source) > STORE_MV_SOURCE_MAX) {
        mf_invalid(m, "source must be a URI of 1 to %u bytes, got %zu", STORE_MV_SOURCE_MAX,
                   strlen(c.source));
        return;
    }
    c.parsed = store_mv_source_parse(c.source, c.run_hex, c.path, sizeof c.path) == 0;
    rg_by(m, actor, &c.by);
    if (rg_update(m, mv_create_tx, &c, c.name, 0, NULL) >= 0)
        rg_reply_version(m, c.name, c.version);
}

/* ---- one version: get, update, delete, tags, stage ----------------------------------------- */

struct mv_op {
    enum { MV_DESCRIBE, MV_DELETE, MV_TAG, MV_DELTAG, MV_STAGE } op;
    const char *name, *key, *value;
    uint64_t version;
    int stage;
    bool archive;
    struct store_rm_by by;
};

static int mv_op_tx(struct store_txn *t, void *arg)
{
    struct mv_op *o = arg;
    int rc;
    switch (o->op) {
    case MV_DESCRIBE: return store_mv_set_description(t, o->name, o->version, o->value, &o->by);
    case MV_DELETE: return store_mv_delete(t, o->name, o->version, &o->by);
    case MV_TAG: return store_mv_tag_set(t, o->name, o->version, o->key, o->value, &o->by);
    case MV_DELTAG: {
        /* MLflow: a tag that is not there is no error; a version that is not there is */
        struct store_mv *v = malloc(sizeof *v);
        rc = v ? store_mv_get(t, o->name, o->version, v) : -ENOMEM;
        free(v);
        if (rc < 0)
            return rc;
        rc = store_mv_tag_delete(t, o->name, o->version, o->key, &o->by);
        return rc == -ENOENT ? 0 : rc;
    }
    case MV_STAGE:
        return store_mv_transition(t, o->name, o->version, o->stage, o->archive, &o->by);
    }
    return -EINVAL;
}

static void mv_run(struct mf *m, struct mv_op *o)
{
    char actor[STORE_RM_ACTOR_MAX + 1];
    rg_by(m, actor, &o->by);
    if (rg_update(m, mv_op_tx, o, o->name, o->version, NULL) < 0)
        return;
    if (o->op == MV_DESCRIBE || o->op == MV_STAGE)
        rg_reply_version(m, o->name, o->version);
    else
        mf_ok(m, NULL);
}

void rg_mv_get(struct mf *m)
{
    const char *name;
    uint64_t version;
    if (mv_name(m, &name) && rg_version(m, &version))
        rg_reply_version(m, name, version);
}

void rg_mv_update(struct mf *m)
{
    struct mv_op o = {.op = MV_DESCRIBE};
    if (!mv_name(m, &o.name) || !rg_version(m, &o.version) ||
        !opt_str(m, "description", STORE_RM_DESC_MAX, &o.value))
        return;
    if (o.value)
        mv_run(m, &o);
    else
        rg_reply_version(m, o.name, o.version); /* nothing to change */
}

void rg_mv_delete(struct mf *m)
{
    struct mv_op o = {.op = MV_DELETE};
    if (mv_name(m, &o.name) && rg_version(m, &o.version))
        mv_run(m, &o);
}

void rg_mv_set_tag(struct mf *m)
{
    struct mv_op o = {.op = MV_TAG};
    if (mv_name(m, &o.name) && rg_version(m, &o.version) && mf_str(m, "key", true, &o.key) &&
        mf_str(m, "value", true, &o.value) && rg_check_tag(m, o.key, o.value))
        mv_run(m, &o);
}

void rg_mv_delete_tag(struct mf *m)
{
    struct mv_op o = {.op = MV_DELTAG};
    if (mv_name(m, &o.name) && rg_version(m, &o.version) && mf_str(m, "key", true, &o.key) &&
        mf_check_key(m, "tag", o.key))
        mv_run(m, &o);
}

void rg_mv_transition(struct mf *m)
{
    struct mv_op o = {.op = MV_STAGE};
    const char *stage;
    if (!mv_name(m, &o.name) || !rg_version(m, &o.version) || !mf_str(m, "stage", true, &stage))
        return;
    if (store_mv_stage_parse(stage, &o.stage) < 0) {
        mf_invalid(m, "Invalid Model Version stage: %.100s. Value must be one of None, Staging, "
                   "Production, Archived.", stage);
        return;
    }
    if (!rg_bool(m, "archive_existing_versions", true, &o.archive))
        return;
    if (o.archive && o.stage != STORE_STAGE_STAGING && o.stage != STORE_STAGE_PRODUCTION) {
        mf_invalid(m, "Model version transition cannot archive existing model versions because "
                   "'%s' is not an Active stage. Valid stages are Staging and Production.",
                   store_mv_stage_name(o.stage));
        return;
    }
    mv_run(m, &o);
}

void rg_mv_download_uri(struct mf *m)
{
    const char *name;
    uint64_t version;
    struct store_txn *t;
    if (!mv_name(m, &name) || !rg_version(m, &version) || !mf_begin_read(m, &t))
        return;
    struct store_mv *v = malloc(sizeof *v);
    int rc = v ? store_mv_get(t, name, version, v) : -ENOMEM;
    if (rc < 0) {
        rg_fail(m, rc, name, version, NULL);
    } else {
        /* this server's URI of the files when they are a run's artifacts here; else the
         * source as given (MLflow answers the version's storage location or its source) */
        char hex[33], path[1024], uri[STORE_MV_SOURCE_MAX + 128];
        uint8_t id[16];
        struct store_run r;
        snprintf(uri, sizeof uri, "%s", v->source);
        if (store_mv_source_parse(v->source, hex, path, sizeof path) == 0 &&
            store_run_id_parse(hex, id) == 0 && store_run_get(t, id, &r) == 0)
            snprintf(uri, sizeof uri, "mlflow-artifacts:/%" PRIu64 "/%s/artifacts%s%s",
                     r.experiment_id, hex, *path ? "/" : "", path);
        mf_ok(m, json_pack("{s:o}", "artifact_uri", mf_jstr(uri)));
    }
    free(v);
    store_abort(t);
}

/* ---- search ----------------------------------------------------------------------------------- */

void rg_mv_search(struct mf *m)
{
    struct store_rm_query q = {0};
    char errbuf[256] = "";
    if (!rg_search_query(m, true, STORE_MV_SEARCH_MAX_MAX, &q))
        return;
    struct store_txn *t;
    struct store_mv_page page = {0};
    if (!mf_begin_read(m, &t))
        return;
    int rc = store_mv_search(t, &q, &page, errbuf, sizeof errbuf);
    if (rg_search_ok(m, rc, errbuf)) {
        json_t *arr = json_array();
        struct store_mv *v = malloc(sizeof *v);
        for (size_t i = 0; v && i < page.n; i++)
            if (store_mv_get(t, page.refs[i].name, page.refs[i].version, v) == 0)
                json_array_append_new(arr, rg_version_json(t, v));
        free(v);
        rg_reply_page(m, "model_versions", arr, page.next_page_token);
    }
    store_mv_page_free(&page);
    store_abort(t);
}

/* ---- sidetrack's extensions: history and rollback ------------------------------------------ */

static void set_version(json_t *o, const char *key, uint64_t v)
{
    if (!v)
        return;
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    json_object_set_new(o, key, json_string(s));
}

static int add_event(const struct store_rm_event *e, void *arg)
{
    json_t *o = json_pack("{s:I, s:I, s:s, s:o, s:o}", "seq", (json_int_t)e->seq, "timestamp",
                          (json_int_t)e->time_ms, "change", store_rm_change_name(e->kind),
                          "actor", mf_jstr(e->actor), "name", mf_jstr(e->model));
    if (!o)
        return -ENOMEM;
    set_version(o, "version", e->version);
    if (e->key[0])
        json_object_set_new(o, "key", mf_jstr(e->key));
    set_version(o, "from_version", e->from_version);
    set_version(o, "to_version", e->to_version);
    if (e->undoes)
        json_object_set_new(o, "undoes", json_integer((json_int_t)e->undoes));
    if (e->before[0])
        json_object_set_new(o, "before", mf_jstr(e->before));
    if (e->after[0])
        json_object_set_new(o, "after", mf_jstr(e->after));
    return json_array_append_new(arg, o) ? -ENOMEM : 0;
}

#define RG_HISTORY_MAX 1000

/* GET /api/sidetrack/v1/models/history?name=&max_results=&page_token=: the model's changes,
 * newest first. */
void rg_history(struct mf *m)
{
    const char *name, *token = NULL;
    int64_t max = 0;
    if (!mv_name(m, &name) || (!mf_i64(m, "max_results", false, &max) && m->failed) ||
        (mf_str(m, "page_token", false, &token), m->failed))
        return;
    if (max < 0 || max > RG_HISTORY_MAX) {
        mf_invalid(m, "Invalid value for request parameter max_results. It must be at most %d, "
                   "but got value %" PRId64, RG_HISTORY_MAX, max);
        return;
    }
    struct store_txn *t;
    if (!mf_begin_read(m, &t))
        return;
    char next[STORE_RM_TOKEN_MAX] = "";
    json_t *events = json_array();
    int rc = store_rm_history(t, name, (size_t)max, token, add_event, events, next);
    store_abort(t);
    if (rc == -EINVAL) {
        json_decref(events);
        mf_invalid(m, "Invalid page_token '%.100s'", token ? token : "");
        return;
    }
    if (rc < 0) {
        json_decref(events);
        rg_fail(m, rc, name, 0, NULL);
        return;
    }
    json_t *body = json_pack("{s:o}", "events", events);
    if (next[0])
        json_object_set_new(body, "next_page_token", json_string(next));
    mf_ok(m, body);
}

struct rollback {
    const char *name, *alias;
    struct store_rm_by by;
    uint64_t from, to;
};

static int rollback_tx(struct store_txn *t, void *arg)
{
    struct rollback *r = arg;
    return store_rm_rollback(t, r->name, r->alias, &r->by, &r->from, &r->to);
}

/* POST /api/sidetrack/v1/models/alias/rollback {name, alias}: the alias goes back to the
 * version it named before its latest change (store_rm_rollback). */
void rg_rollback(struct mf *m)
{
    struct rollback r = {0};
    char actor[STORE_RM_ACTOR_MAX + 1];
    if (!mv_name(m, &r.name) || !mf_str(m, "alias", true, &r.alias))
        return;
    rg_by(m, actor, &r.by);
    int rc = store_update(m->s, rollback_tx, &r);
    if (rc == -ENODATA) {
        mf_invalid(m, "Alias '%s' of registered model '%s' has no earlier version to roll back "
                   "to", r.alias, r.name);
        return;
    }
    if (rc == -EIDRM) {
        mf_invalid(m, "Cannot roll back alias '%s' of registered model '%s': the version it "
                   "named before has been deleted", r.alias, r.name);
        return;
    }
    if (rc < 0) {
        rg_fail(m, rc, r.name, 0, NULL);
        return;
    }
    struct store_txn *t;
    struct store_mv *v = malloc(sizeof *v);
    if (!v || !mf_begin_read(m, &t)) {
        if (!v)
            mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        free(v);
        return;
    }
    json_t *body = json_pack("{s:o}", "alias", mf_jstr(r.alias));
    set_version(body, "from_version", r.from);
    set_version(body, "to_version", r.to);
    if (store_mv_get(t, r.name, r.to, v) == 0)
        json_object_set_new(body, "model_version", rg_version_json(t, v));
    store_abort(t);
    free(v);
    mf_ok(m, body);
}
