/* mlflow_registry.c — MLflow's model-registry REST API (model_registry.proto) over the
 * store's registry (store/registry.h): the route table, registered models, aliases, and the
 * JSON shapes; model versions and sidetrack's own history and rollback endpoints are in
 * mlflow_registry_mv.c.
 *
 * Routes are registered under /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/ with MLflow's
 * methods (PATCH for updates, DELETE for deletes, whose fields come in a JSON body or the
 * query). sidetrack's extensions live under /api/sidetrack/v1/models/. Every write is one
 * store_update() transaction that also records the change in the registry's history, with the
 * request's token name (or "anonymous") as the actor. On a read-only server (a store opened
 * read-only) the write routes answer 403 PERMISSION_DENIED, as web.c's guard does for the
 * tracking API.
 *
 * Errors follow MLflow's SqlAlchemyStore: RESOURCE_ALREADY_EXISTS for a taken name,
 * RESOURCE_DOES_NOT_EXIST (404) for a missing model, version or alias, INVALID_PARAMETER_VALUE
 * for bad names, aliases (`latest`, `v<N>` reserved), stages and versions. Deleting a tag or an
 * alias that is not there is not an error, as in MLflow. */
#include "mlflow_registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- shared helpers --------------------------------------------------------------------- */

void rg_by(const struct mf *m, char actor[STORE_RM_ACTOR_MAX + 1], struct store_rm_by *by)
{
    const char *id = m->req ? m->req->identity : NULL;
    snprintf(actor, STORE_RM_ACTOR_MAX + 1, "%s", id && *id ? id : "anonymous");
    by->actor = actor;
    by->now_ms = mf_now_ms();
}

bool rg_version(struct mf *m, uint64_t *out)
{
    const char *s;
    if (!mf_str(m, "version", true, &s))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *s == '+' || *s == ' ' || *end || errno) {
        mf_invalid(m, "Model version must be an integer, got '%.100s'", s);
        return false;
    }
    if (v == 0) { /* numbers start at 1 */
        const char *name = json_string_value(json_object_get(m->p, "name"));
        mf_missing_resource(m, "Model Version (name=%s, version=0) not found", name ? name : "");
        return false;
    }
    *out = v;
    return true;
}

bool rg_bool(struct mf *m, const char *name, bool required, bool *out)
{
    json_t *v = m->p ? json_object_get(m->p, name) : NULL;
    if (v && json_is_array(v) && !strcmp(m->req->method, "GET"))
        v = json_array_get(v, 0);
    if (!v || json_is_null(v)) {
        if (required)
            mf_invalid(m, "Missing value for required parameter '%s'. See the API docs for more "
                       "information about request parameters.", name);
        return false;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "false"))) {
        *out = !strcasecmp(s, "true");
        return true;
    }
    mf_invalid(m, "Invalid value for parameter '%s' supplied: a boolean (true or false) is "
               "expected", name);
    return false;
}

bool rg_check_tag(struct mf *m, const char *key, const char *value)
{
    return mf_check_key(m, "tag", key) && mf_check_len(m, "Tag value", value, MF_MAX_TAG_VALUE);
}

json_t *rg_tags(struct mf *m)
{
    json_t *tags = mf_array(m, "tags"), *tag;
    size_t i;
    if (!tags)
        return NULL;
    json_array_foreach(tags, i, tag)
    {
        json_t *k = json_object_get(tag, "key"), *v = json_object_get(tag, "value");
        if (!json_is_object(tag) || !json_is_string(k) || (v && !json_is_string(v))) {
            mf_invalid(m, "Invalid tag at index %zu: a tag is {\"key\": string, \"value\": "
                       "string}", i);
            return NULL;
        }
        if (!v)
            json_object_set_new(tag, "value", json_string(""));
        if (!rg_check_tag(m, json_string_value(k),
                          json_string_value(json_object_get(tag, "value"))))
            return NULL;
    }
    return tags;
}

void rg_fail(struct mf *m, int rc, const char *name, uint64_t version, const char *alias)
{
    if (m->failed)
        return;
    switch (rc) {
    case -EEXIST:
        mf_error(m, 400, "RESOURCE_ALREADY_EXISTS", "Registered Model (name=%s) already exists.",
                 name);
        break;
    case -ENOENT:
        if (alias)
            mf_missing_resource(m, "Registered model alias %s not found.", alias);
        else if (version)
            mf_missing_resource(m, "Model Version (name=%s, version=%" PRIu64 ") not found", name,
                                version);
        else
            mf_missing_resource(m, "Registered Model with name=%s not found", name);
        break;
    case -EINVAL:
    case -ENAMETOOLONG:
    case -ENODATA:
    case -EIDRM:
        mf_invalid(m, "%s", store_rm_strerror(rc));
        break;
    case -ENOSPC:
        mf_error(m, 507, "INTERNAL_ERROR", "cannot write to the store: %s", store_rm_strerror(rc));
        break;
    default:
        mf_error(m, 500, "INTERNAL_ERROR", "the registry: %s", store_rm_strerror(rc));
    }
}

int rg_update(struct mf *m, int (*fn)(struct store_txn *t, void *arg), void *arg,
              const char *name, uint64_t version, const char *alias)
{
    int rc = store_update(m->s, fn, arg);
    if (rc < 0)
        rg_fail(m, rc, name, version, alias);
    return rc;
}

/* One order_by entry: column and direction. */
static bool order_entry(const char *s, char *col, size_t collen, bool *desc)
{
    while (*s == ' ')
        s++;
    size_t n = strcspn(s, " ");
    if (n == 0 || n >= collen)
        return false;
    memcpy(col, s, n);
    col[n] = '\0';
    s += n;
    while (*s == ' ')
        s++;
    *desc = false;
    if (!strncasecmp(s, "DESC", 4))
        *desc = true, s += 4;
    else if (!strncasecmp(s, "ASC", 3))
        s += 3;
    while (*s == ' ')
        s++;
    return *s == '\0';
}

bool rg_order_ok(struct mf *m, bool versions)
{
    json_t *order = mf_array(m, "order_by"), *e;
    size_t i;
    if (!order)
        return false;
    json_array_foreach(order, i, e)
    {
        char col[64];
        bool desc, ok = json_is_string(e) && order_entry(json_string_value(e), col, sizeof col,
                                                           &desc);
        /* the store's order: name ascending, then (versions) the number descending */
        if (ok && i == 0)
            ok = !strcmp(col, "name") && !desc;
        else if (ok && i == 1)
            ok = versions && (!strcmp(col, "version_number") || !strcmp(col, "version")) && desc;
        else
            ok = false;
        if (!ok) {
            mf_invalid(m, "Invalid order_by clause '%.200s': this server returns %s",
                       json_is_string(e) ? json_string_value(e) : "?",
                       versions ? "versions ordered by name ASC, version_number DESC"
                                : "registered models ordered by name ASC");
            return false;
        }
    }
    return true;
}

bool rg_search_query(struct mf *m, bool versions, unsigned max_max, struct store_rm_query *q)
{
    int64_t max = 0;
    mf_str(m, "filter", false, &q->filter);
    if (m->failed || (!mf_i64(m, "max_results", false, &max) && m->failed) ||
        (mf_str(m, "page_token", false, &q->page_token), m->failed) || !rg_order_ok(m, versions))
        return false;
    if (max < 0 || (uint64_t)max > max_max) {
        mf_invalid(m, "Invalid value for request parameter max_results. It must be at most %u, "
                   "but got value %" PRId64, max_max, max);
        return false;
    }
    q->max_results = (size_t)max;
    return true;
}

bool rg_search_ok(struct mf *m, int rc, const char *errbuf)
{
    if (rc == -EINVAL)
        mf_invalid(m, "%s", errbuf[0] ? errbuf : store_rm_strerror(rc));
    else if (rc < 0)
        rg_fail(m, rc, "", 0, NULL);
    return rc >= 0;
}

/* ---- JSON --------------------------------------------------------------------------------- */

static int add_tag(const char *key, const char *value, void *arg)
{
    return json_array_append_new(arg, json_pack("{s:o, s:o}", "key", mf_jstr(key), "value",
                                                 mf_jstr(value))) ? -ENOMEM : 0;
}

struct alias_list {
    uint64_t version; /* 0: every alias of the model, as {alias, version} */
    json_t *out;
};

static int add_alias(const char *alias, uint64_t version, void *arg)
{
    struct alias_list *l = arg;
    if (l->version && version != l->version)
        return 0;
    json_t *e;
    if (l->version) {
        e = mf_jstr(alias);
    } else {
        char v[24];
        snprintf(v, sizeof v, "%" PRIu64, version);
        e = json_pack("{s:o, s:s}", "alias", mf_jstr(alias), "version", v);
    }
    return json_array_append_new(l->out, e) ? -ENOMEM : 0;
}

/* A repeated field: left out when empty, as protobuf's JSON does. */
static void set_list(json_t *o, const char *key, json_t *arr)
{
    if (json_array_size(arr))
        json_object_set_new(o, key, arr);
    else
        json_decref(arr);
}

static void set_str(json_t *o, const char *key, const char *s)
{
    if (s && *s)
        json_object_set_new(o, key, mf_jstr(s));
}

void rg_reply_page(struct mf *m, const char *key, json_t *items, const char *next_page_token)
{
    json_t *body = json_object();
    set_list(body, key, items);
    set_str(body, "next_page_token", next_page_token);
    mf_ok(m, body);
}

json_t *rg_version_json(struct store_txn *t, const struct store_mv *v)
{
    char ver[24];
    snprintf(ver, sizeof ver, "%" PRIu64, v->version);
    json_t *o = json_pack("{s:o, s:s, s:I, s:I, s:s, s:o, s:o, s:s}", "name", mf_jstr(v->name),
                          "version", ver, "creation_timestamp", (json_int_t)v->created_ms,
                          "last_updated_timestamp", (json_int_t)v->updated_ms, "current_stage",
                          store_mv_stage_name(v->stage), "description", mf_jstr(v->description),
                          "source", mf_jstr(v->source), "status",
                          store_mv_status_name(v->status));
    if (!o)
        return json_object();
    set_str(o, "run_id", v->run_id);
    set_str(o, "status_message", v->status_message);
    set_str(o, "run_link", v->run_link);
    json_t *tags = json_array();
    store_mv_tags_foreach(t, v->name, v->version, add_tag, tags);
    set_list(o, "tags", tags);
    struct alias_list al = {.version = v->version, .out = json_array()};
    store_rm_aliases_foreach(t, v->name, add_alias, &al);
    set_list(o, "aliases", al.out);
    /* sidetrack's: the SHA-256 of the model's files (docs/registry.md "Model digest");
     * MLflow's clients ignore fields they do not know */
    set_str(o, "sidetrack_digest", v->digest);
    return o;
}

struct latest {
    struct store_mv v[4];
    size_t n;
};

static int take_latest(const struct store_mv *v, void *arg)
{
    struct latest *l = arg;
    if (l->n < 4)
        l->v[l->n++] = *v;
    return 0;
}

json_t *rg_model_json(struct store_txn *t, const struct store_rm *r)
{
    json_t *o = json_pack("{s:o, s:I, s:I, s:o}", "name", mf_jstr(r->name),
                          "creation_timestamp", (json_int_t)r->created_ms,
                          "last_updated_timestamp", (json_int_t)r->updated_ms, "description",
                          mf_jstr(r->description));
    if (!o)
        return json_object();
    /* gathered first: no other store call runs inside the walk */
    struct latest *l = calloc(1, sizeof *l);
    if (l && store_mv_latest(t, r->name, NULL, 0, take_latest, l) == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l->n; i++)
            json_array_append_new(arr, rg_version_json(t, &l->v[i]));
        set_list(o, "latest_versions", arr);
    }
    free(l);
    json_t *tags = json_array();
    store_rm_tags_foreach(t, r->name, add_tag, tags);
    set_list(o, "tags", tags);
    struct alias_list al = {.out = json_array()};
    store_rm_aliases_foreach(t, r->name, add_alias, &al);
    set_list(o, "aliases", al.out);
    return o;
}

/* {"model_version": ...} of name's version, or {"registered_model": ...} of name when version
 * is 0, in a fresh read transaction. */
static void reply_record(struct mf *m, const char *name, uint64_t version)
{
    struct store_txn *t;
    union {
        struct store_mv v;
        struct store_rm r;
    } *u = malloc(sizeof *u);
    if (!u) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        return;
    }
    if (mf_begin_read(m, &t)) {
        int rc = version ? store_mv_get(t, name, version, &u->v) : store_rm_get(t, name, &u->r);
        if (rc)
            rg_fail(m, rc, name, version, NULL);
        else if (version)
            mf_ok(m, json_pack("{s:o}", "model_version", rg_version_json(t, &u->v)));
        else
            mf_ok(m, json_pack("{s:o}", "registered_model", rg_model_json(t, &u->r)));
        store_abort(t);
    }
    free(u);
}

void rg_reply_version(struct mf *m, const char *name, uint64_t version)
{
    reply_record(m, name, version);
}

static void reply_model(struct mf *m, const char *name) { reply_record(m, name, 0); }

/* ---- registered models -------------------------------------------------------------------- */

/* Changes of one model (and its aliases), each one transaction. */
struct rm_op {
    enum { RM_CREATE, RM_RENAME, RM_DESCRIBE, RM_DELETE, RM_TAG, RM_DELTAG, RM_ALIAS,
           RM_DELALIAS } op;
    const char *name, *text, *key, *value;
    uint64_t version;
    json_t *tags;
    struct store_rm_by by;
};

static int rm_op_tx(struct store_txn *t, void *arg)
{
    struct rm_op *o = arg;
    struct store_rm r;
    int rc;
    switch (o->op) {
    case RM_CREATE: {
        if ((rc = store_rm_create(t, o->name, o->text, &o->by, NULL)) < 0)
            return rc;
        size_t i;
        json_t *tag;
        json_array_foreach(o->tags, i, tag)
        {
            rc = store_rm_tag_set(t, o->name, json_string_value(json_object_get(tag, "key")),
                                  json_string_value(json_object_get(tag, "value")), &o->by);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    case RM_RENAME: return store_rm_rename(t, o->name, o->text, &o->by);
    case RM_DESCRIBE: return store_rm_set_description(t, o->name, o->text, &o->by);
    case RM_DELETE: return store_rm_delete(t, o->name, &o->by);
    case RM_TAG: return store_rm_tag_set(t, o->name, o->key, o->value, &o->by);
    case RM_ALIAS: return store_rm_alias_set(t, o->name, o->key, o->version, &o->by);
    case RM_DELTAG:
    case RM_DELALIAS:
        /* MLflow: a tag or alias that is not there is no error; a model that is not there is */
        if ((rc = store_rm_get(t, o->name, &r)) < 0)
            return rc;
        rc = o->op == RM_DELTAG ? store_rm_tag_delete(t, o->name, o->key, &o->by)
                                : store_rm_alias_delete(t, o->name, o->key, &o->by);
        return rc == -ENOENT ? 0 : rc;
    }
    return -EINVAL;
}

/* The model name field (name by default), checked by MLflow's rules. */
static bool model_name(struct mf *m, const char *field, const char **out)
{
    char msg[160];
    if (!mf_str(m, field, true, out))
        return false;
    if (store_rm_name_check(*out, msg, sizeof msg) < 0) {
        mf_invalid(m, "%s", msg);
        return false;
    }
    return true;
}

static bool description(struct mf *m, const char **out)
{
    if (!mf_str(m, "description", false, out))
        return !m->failed;
    if (strlen(*out) > STORE_RM_DESC_MAX) {
        mf_invalid(m, "description is %zu bytes long: this server keeps up to %u", strlen(*out),
                   STORE_RM_DESC_MAX);
        return false;
    }
    return true;
}

static bool alias_field(struct mf *m, const char **out)
{
    char msg[200];
    if (!mf_str(m, "alias", true, out))
        return false;
    if (store_rm_alias_check(*out, msg, sizeof msg) < 0) {
        mf_invalid(m, "%s", msg);
        return false;
    }
    return true;
}

static void rm_run(struct mf *m, struct rm_op *o)
{
    char actor[STORE_RM_ACTOR_MAX + 1];
    rg_by(m, actor, &o->by);
    int rc = store_update(m->s, rm_op_tx, o);
    if (rc == -EEXIST && o->op == RM_RENAME)
        mf_error(m, 400, "RESOURCE_ALREADY_EXISTS", "Registered Model (name=%s) already exists.",
                 o->text);
    else if (rc == -ENOENT && o->op == RM_ALIAS)
        rg_fail(m, rc, o->name, o->version, NULL); /* the model or the version */
    else if (rc < 0)
        rg_fail(m, rc, o->name, 0, NULL);
    if (rc < 0)
        return;
    if (o->op == RM_CREATE || o->op == RM_DESCRIBE)
        reply_model(m, o->name);
    else if (o->op == RM_RENAME)
        reply_model(m, o->text);
    else
        mf_ok(m, NULL);
}

static void rm_create(struct mf *m)
{
    struct rm_op o = {.op = RM_CREATE};
    if (model_name(m, "name", &o.name) && description(m, &o.text) && (o.tags = rg_tags(m)))
        rm_run(m, &o);
}

static void rm_rename(struct mf *m)
{
    struct rm_op o = {.op = RM_RENAME};
    if (model_name(m, "name", &o.name) && model_name(m, "new_name", &o.text))
        rm_run(m, &o);
}

static void rm_update(struct mf *m)
{
    struct rm_op o = {.op = RM_DESCRIBE};
    if (!model_name(m, "name", &o.name) || !description(m, &o.text))
        return;
    if (o.text)
        rm_run(m, &o);
    else
        reply_model(m, o.name); /* nothing to change */
}

static void rm_delete(struct mf *m)
{
    struct rm_op o = {.op = RM_DELETE};
    if (model_name(m, "name", &o.name))
        rm_run(m, &o);
}

static void rm_get(struct mf *m)
{
    const char *name;
    if (model_name(m, "name", &name))
        reply_model(m, name);
}

static void rm_set_tag(struct mf *m)
{
    struct rm_op o = {.op = RM_TAG};
    if (model_name(m, "name", &o.name) && mf_str(m, "key", true, &o.key) &&
        mf_str(m, "value", true, &o.value) && rg_check_tag(m, o.key, o.value))
        rm_run(m, &o);
}

static void rm_delete_tag(struct mf *m)
{
    struct rm_op o = {.op = RM_DELTAG};
    if (model_name(m, "name", &o.name) && mf_str(m, "key", true, &o.key) &&
        mf_check_key(m, "tag", o.key))
        rm_run(m, &o);
}

static void rm_set_alias(struct mf *m)
{
    struct rm_op o = {.op = RM_ALIAS};
    if (model_name(m, "name", &o.name) && alias_field(m, &o.key) && rg_version(m, &o.version))
        rm_run(m, &o);
}

static void rm_delete_alias(struct mf *m)
{
    struct rm_op o = {.op = RM_DELALIAS};
    if (model_name(m, "name", &o.name) && alias_field(m, &o.key))
        rm_run(m, &o);
}

static void rm_get_by_alias(struct mf *m)
{
    const char *name, *alias;
    uint64_t version = 0;
    struct store_txn *t;
    if (!model_name(m, "name", &name) || !alias_field(m, &alias) || !mf_begin_read(m, &t))
        return;
    struct store_rm *r = malloc(sizeof *r);
    int rc = r ? store_rm_get(t, name, r) : -ENOMEM;
    const char *missing = NULL; /* the model is there: what is missing is the alias */
    if (rc == 0) {
        rc = store_rm_alias_get(t, name, alias, &version);
        missing = alias;
    }
    store_abort(t);
    free(r);
    if (rc < 0)
        rg_fail(m, rc, name, 0, missing);
    else
        rg_reply_version(m, name, version);
}

static void rm_latest(struct mf *m)
{
    const char *name;
    json_t *stages, *s;
    int want[4];
    size_t i, n = 0;
    if (!model_name(m, "name", &name) || !(stages = mf_array(m, "stages")))
        return;
    json_array_foreach(stages, i, s)
    {
        int st;
        if (!json_is_string(s) || store_mv_stage_parse(json_string_value(s), &st) < 0) {
            mf_invalid(m, "Invalid Model Version stage: %.100s. Value must be one of None, "
                       "Staging, Production, Archived.",
                       json_is_string(s) ? json_string_value(s) : "?");
            return;
        }
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup |= want[k] == st;
        if (!dup && n < 4)
            want[n++] = st;
    }
    struct store_txn *t;
    struct store_rm r;
    struct latest *l = calloc(1, sizeof *l);
    if (!l || !mf_begin_read(m, &t)) {
        if (!l)
            mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        free(l);
        return;
    }
    int rc = store_rm_get(t, name, &r);
    if (rc == 0)
        rc = store_mv_latest(t, name, want, n, take_latest, l);
    if (rc < 0) {
        rg_fail(m, rc, name, 0, NULL);
    } else {
        json_t *arr = json_array();
        for (i = 0; i < l->n; i++)
            json_array_append_new(arr, rg_version_json(t, &l->v[i]));
        json_t *body = json_object();
        set_list(body, "model_versions", arr);
        mf_ok(m, body);
    }
    store_abort(t);
    free(l);
}

static void rm_search(struct mf *m)
{
    struct store_rm_query q = {0};
    char errbuf[256] = "";
    if (!rg_search_query(m, false, STORE_RM_SEARCH_MAX_MAX, &q))
        return;
    struct store_txn *t;
    struct store_rm_page page = {0};
    if (!mf_begin_read(m, &t))
        return;
    int rc = store_rm_search(t, &q, &page, errbuf, sizeof errbuf);
    if (rg_search_ok(m, rc, errbuf)) {
        json_t *arr = json_array();
        struct store_rm *r = malloc(sizeof *r);
        for (size_t i = 0; r && i < page.n; i++)
            if (store_rm_get(t, page.names[i], r) == 0)
                json_array_append_new(arr, rg_model_json(t, r));
        free(r);
        rg_reply_page(m, "registered_models", arr, page.next_page_token);
    }
    store_rm_page_free(&page);
    store_abort(t);
}

/* ---- routes ------------------------------------------------------------------------------- */

static const struct rg_route {
    const char *method, *path;
    mf_fn fn;
    bool writes;
} routes[] = {
    {"POST", "registered-models/create", rm_create, true},
    {"GET", "registered-models/get", rm_get, false},
    {"POST", "registered-models/rename", rm_rename, true},
    {"PATCH", "registered-models/update", rm_update, true},
    {"DELETE", "registered-models/delete", rm_delete, true},
    {"GET", "registered-models/search", rm_search, false},
    {"POST", "registered-models/set-tag", rm_set_tag, true},
    {"DELETE", "registered-models/delete-tag", rm_delete_tag, true},
    {"GET", "registered-models/get-latest-versions", rm_latest, false},
    {"POST", "registered-models/get-latest-versions", rm_latest, false},
    {"POST", "registered-models/alias", rm_set_alias, true},
    {"DELETE", "registered-models/alias", rm_delete_alias, true},
    {"GET", "registered-models/alias", rm_get_by_alias, false},
    {"POST", "model-versions/create", rg_mv_create, true},
    {"GET", "model-versions/get", rg_mv_get, false},
    {"PATCH", "model-versions/update", rg_mv_update, true},
    {"DELETE", "model-versions/delete", rg_mv_delete, true},
    {"GET", "model-versions/search", rg_mv_search, false},
    {"POST", "model-versions/set-tag", rg_mv_set_tag, true},
    {"DELETE", "model-versions/delete-tag", rg_mv_delete_tag, true},
    {"POST", "model-versions/transition-stage", rg_mv_transition, true},
    {"GET", "model-versions/get-download-uri", rg_mv_download_uri, false},
};

/* sidetrack's extensions, beside its other /api/sidetrack/v1/ endpoints. */
static const struct rg_route extensions[] = {
    {"GET", "/api/sidetrack/v1/models/history", rg_history, false},
    {"POST", "/api/sidetrack/v1/models/alias/rollback", rg_rollback, true},
};

static void refuse_readonly(struct mf *m)
{
    mf_error(m, 403, "PERMISSION_DENIED",
             "This server is read-only (--read-only): %s %s is not allowed", m->req->method,
             m->req->path);
}

/* A store opened read-only refuses a write transaction at once (store_begin), without
 * touching LMDB's writer lock when it is writable. */
static bool store_read_only(struct store *s)
{
    struct store_txn *t = NULL;
    int rc = store_begin(s, true, &t);
    store_abort(t);
    return rc == -EROFS;
}

int mf_registry_register(struct http_server *h, struct store *s)
{
    static const char *const prefixes[] = {"/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"};
    bool ro = store_read_only(s);
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        for (size_t p = 0; p < 2; p++) {
            char path[128];
            snprintf(path, sizeof path, "%s%s", prefixes[p], routes[i].path);
            int rc = mf_route_add(h, routes[i].method, path, HTTP_EXACT,
                                  ro && routes[i].writes ? refuse_readonly : routes[i].fn, 0, s);
            if (rc < 0)
                return rc;
        }
    }
    for (size_t i = 0; i < sizeof extensions / sizeof *extensions; i++) {
        const struct rg_route *e = &extensions[i];
        int rc = mf_route_add(h, e->method, e->path, HTTP_EXACT,
                              ro && e->writes ? refuse_readonly : e->fn, 0, s);
        if (rc < 0)
            return rc;
    }
    return 0;
}
