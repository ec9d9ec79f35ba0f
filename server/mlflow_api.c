/* mlflow_api.c — MLflow's tracking API: the route table, experiments and runs.
 *
 * Every route is registered twice, under /api/2.0/mlflow/ (clients) and /ajax-api/2.0/mlflow/
 * (MLflow's web UI), with the methods MLflow's server gives it; the framework answers other
 * methods with 405 and other paths with 404. A handler reads the request's fields (the JSON
 * body, or the query of a GET) through the mf_* readers, checks everything it can before it
 * writes, and writes in one store_update() transaction: a request is applied whole or not at
 * all. Metrics and log-batch are in mlflow_metrics.c, search in mlflow_search.c, artifacts in
 * mlflow_artifacts.c. */
#include "mlflow_api.h"
#include "mlflow_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- experiments ------------------------------------------------------------------------ */

struct exp_create {
    const char *name;
    json_t *tags;
    int64_t now;
    uint64_t id;
};

static int exp_create_tx(struct store_txn *t, void *arg)
{
    struct exp_create *c = arg;
    int rc = store_experiment_create(t, c->name, c->now, &c->id);
    size_t i;
    json_t *tag;
    json_array_foreach(c->tags, i, tag)
    {
        if (rc == 0)
            rc = store_exp_tag_set(t, c->id, json_string_value(json_object_get(tag, "key")),
                                   json_string_value(json_object_get(tag, "value")));
    }
    return rc;
}

static bool check_exp_name(struct mf *m, const char *name)
{
    if (!*name) {
        mf_invalid(m, "Invalid experiment name: '%s'", name);
        return false;
    }
    if (mf_utf8_len(name) > MF_MAX_EXPERIMENT_NAME || strlen(name) >= 512) {
        mf_invalid(m, "Experiment name exceeds the maximum length of %d characters",
                   MF_MAX_EXPERIMENT_NAME);
        return false;
    }
    return true;
}

/* tags: [{key, value}] checked as MLflow checks experiment or run tags. */
static bool check_tags(struct mf *m, json_t *tags)
{
    size_t i;
    json_t *tag;
    json_array_foreach(tags, i, tag)
    {
        json_t *k = json_object_get(tag, "key"), *v = json_object_get(tag, "value");
        if (!json_is_object(tag) || (k && !json_is_string(k)) || (v && !json_is_string(v))) {
            mf_invalid(m, "Invalid tag at index %zu: a tag is {\"key\": string, \"value\": "
                       "string}", i);
            return false;
        }
        if (!v)
            json_object_set_new(tag, "value", json_string(""));
        if (!mf_check_key(m, "tag", json_string_value(k)) ||
            !mf_check_len(m, "Tag value", json_string_value(json_object_get(tag, "value")),
                          MF_MAX_TAG_VALUE))
            return false;
    }
    return true;
}

static void exp_create(struct mf *m)
{
    struct exp_create c = {.now = mf_now_ms()};
    const char *loc;
    if (!mf_str(m, "name", true, &c.name) || !check_exp_name(m, c.name))
        return;
    if (mf_str(m, "artifact_location", false, &loc) && *loc) {
        mf_invalid(m, "artifact_location is not supported: this server keeps every artifact in "
                   "its own store (mlflow-artifacts:/<experiment_id>)");
        return;
    }
    if (m->failed || !(c.tags = mf_array(m, "tags")) || !check_tags(m, c.tags))
        return;
    int rc = mf_update(m, exp_create_tx, &c);
    if (rc == -EEXIST)
        mf_error(m, 400, "RESOURCE_ALREADY_EXISTS", "Experiment(name=%s) already exists.",
                 c.name);
    if (rc < 0) {
        mf_update_failed(m, rc);
        return;
    }
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, c.id);
    mf_ok(m, json_pack("{s:s}", "experiment_id", id));
}

static void exp_get(struct mf *m)
{
    const char *id;
    struct store_txn *t;
    struct store_experiment e;
    if (!mf_str(m, "experiment_id", true, &id) || !mf_begin_read(m, &t))
        return;
    if (mf_get_experiment(m, t, id, &e))
        mf_ok(m, json_pack("{s:o}", "experiment", mf_experiment_json(t, &e)));
    store_abort(t);
}

static void exp_get_by_name(struct mf *m)
{
    const char *name;
    struct store_txn *t;
    struct store_experiment e;
    if (!mf_str(m, "experiment_name", true, &name) || !mf_begin_read(m, &t))
        return;
    int rc = store_experiment_by_name(t, name, &e);
    if (rc == 0)
        mf_ok(m, json_pack("{s:o}", "experiment", mf_experiment_json(t, &e)));
    else if (rc == -ENOENT)
        mf_missing_resource(m, "Could not find experiment with name '%s'", name);
    else
        mf_store_error(m, rc, "experiment");
    store_abort(t);
}

/* Experiment changes: one op on one experiment, in a write transaction. */
struct exp_op {
    enum { EXP_DELETE, EXP_RESTORE, EXP_RENAME, EXP_TAG } op;
    uint64_t id;
    const char *text, *key, *value;
    int64_t now;
    bool was_deleted; /* the experiment's state when the txn began */
};

static int exp_op_tx(struct store_txn *t, void *arg)
{
    struct exp_op *o = arg;
    struct store_experiment e;
    int rc = store_experiment_get(t, o->id, &e);
    if (rc < 0)
        return rc;
    o->was_deleted = e.deleted;
    if ((o->op == EXP_RENAME || o->op == EXP_TAG) && e.deleted)
        return MF_REFUSED;
    switch (o->op) {
    case EXP_DELETE: return store_experiment_set_deleted(t, o->id, true, o->now);
    case EXP_RESTORE: return store_experiment_set_deleted(t, o->id, false, o->now);
    case EXP_RENAME: return store_experiment_rename(t, o->id, o->value, o->now);
    case EXP_TAG: return store_exp_tag_set(t, o->id, o->key, o->value);
    }
    return -EINVAL;
}

static void exp_change(struct mf *m, struct exp_op *o)
{
    o->now = mf_now_ms();
    int rc = mf_update(m, exp_op_tx, o);
    if (rc == -ENOENT)
        mf_missing_resource(m, "No Experiment with id=%s exists", o->text);
    else if (rc == -EEXIST)
        mf_error(m, 400, "RESOURCE_ALREADY_EXISTS", "Experiment(name=%s) already exists.",
                 o->value);
    else if (rc == MF_REFUSED && o->op == EXP_RENAME)
        mf_error(m, 400, "INVALID_STATE", "Cannot rename a non-active experiment.");
    else if (rc == MF_REFUSED)
        mf_invalid(m, "The experiment %s must be in the 'active' state. Current state is "
                   "deleted.", o->text);
    else if (rc >= 0)
        mf_ok(m, NULL);
    mf_update_failed(m, rc);
}

static void exp_delete_restore(struct mf *m, bool del)
{
    struct exp_op o = {.op = del ? EXP_DELETE : EXP_RESTORE};
    if (!mf_str(m, "experiment_id", true, &o.text) || !mf_exp_id(m, o.text, &o.id))
        return;
    if (del && o.id == 0) {
        mf_invalid(m, "Cannot delete the default experiment '0'. This is an internally "
                   "reserved experiment.");
        return;
    }
    exp_change(m, &o);
}

static void exp_delete(struct mf *m) { exp_delete_restore(m, true); }
static void exp_restore(struct mf *m) { exp_delete_restore(m, false); }

static void exp_update(struct mf *m)
{
    struct exp_op o = {.op = EXP_RENAME};
    if (!mf_str(m, "experiment_id", true, &o.text) || !mf_exp_id(m, o.text, &o.id))
        return;
    if (!mf_str(m, "new_name", false, &o.value)) {
        if (!m->failed)
            mf_ok(m, NULL); /* nothing to change */
        return;
    }
    if (check_exp_name(m, o.value))
        exp_change(m, &o);
}

static void exp_set_tag(struct mf *m)
{
    struct exp_op o = {.op = EXP_TAG};
    if (!mf_str(m, "experiment_id", true, &o.text) || !mf_exp_id(m, o.text, &o.id) ||
        !mf_str(m, "key", true, &o.key) || !mf_str(m, "value", true, &o.value) ||
        !mf_check_key(m, "tag", o.key) || !mf_check_len(m, "Tag value", o.value, MF_MAX_TAG_VALUE))
        return;
    exp_change(m, &o);
}

/* ---- runs --------------------------------------------------------------------------------- */

/* MLflow's generated run names: adjective-noun-number. */
static void random_run_name(char *buf, size_t len)
{
    static const char *const adj[] = {
        "able", "brave", "bright", "calm", "clever", "crisp", "dapper", "eager", "fair",
        "gentle", "glad", "honest", "jolly", "keen", "kind", "lively", "lucky", "merry",
        "nimble", "polite", "proud", "quick", "quiet", "rare", "shy", "silent", "smooth",
        "sunny", "swift", "tidy", "upbeat", "vivid", "warm", "wise", "witty", "zealous"};
    static const char *const noun[] = {
        "ant", "bass", "bear", "bee", "cat", "colt", "crab", "crow", "deer", "dove", "eel",
        "elk", "finch", "fox", "frog", "goat", "hare", "hawk", "heron", "lark", "lynx", "mole",
        "moth", "newt", "owl", "panda", "robin", "seal", "shrew", "snail", "swan", "toad",
        "trout", "wolf", "wren", "yak"};
    uint32_t r[3] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        r[0] = (uint32_t)mf_now_ms();
        r[1] = r[0] >> 7;
        r[2] = r[0] >> 13;
    }
    snprintf(buf, len, "%s-%s-%u", adj[r[0] % (sizeof adj / sizeof *adj)],
             noun[r[1] % (sizeof noun / sizeof *noun)], r[2] % 1000);
}

static bool check_run_name(struct mf *m, const char *name)
{
    if (!mf_check_len(m, "Run name", name, MF_MAX_RUN_NAME))
        return false;
    if (strlen(name) >= sizeof ((struct store_run *)0)->name) {
        mf_invalid(m, "Run name '%.100s...' is %zu bytes in UTF-8: this server keeps up to 255",
                   name, strlen(name));
        return false;
    }
    return true;
}

struct run_create {
    struct store_run run;
    json_t *tags;
    bool name_tag, user_tag;
};

static int run_create_tx(struct store_txn *t, void *arg)
{
    struct run_create *c = arg;
    struct store_experiment e;
    int rc = store_experiment_get(t, c->run.experiment_id, &e);
    if (rc < 0)
        return rc;
    if (e.deleted)
        return MF_REFUSED;
    if ((rc = store_run_start(t, &c->run)) < 0)
        return rc;
    size_t i;
    json_t *tag;
    json_array_foreach(c->tags, i, tag)
    {
        rc = store_tag_set(t, c->run.id, json_string_value(json_object_get(tag, "key")),
                           json_string_value(json_object_get(tag, "value")));
        if (rc < 0)
            return rc;
    }
    if (!c->name_tag && (rc = store_tag_set(t, c->run.id, "mlflow.runName", c->run.name)) < 0)
        return rc;
    if (!c->user_tag && c->run.user[0] &&
        (rc = store_tag_set(t, c->run.id, "mlflow.user", c->run.user)) < 0)
        return rc;
    return 0;
}

static void run_create(struct mf *m)
{
    struct run_create c = {.run = {.status = STORE_RUN_RUNNING}};
    const char *exp, *name = NULL, *user = NULL;
    if (!mf_str(m, "experiment_id", true, &exp) || !mf_exp_id(m, exp, &c.run.experiment_id))
        return;
    mf_str(m, "run_name", false, &name);
    mf_str(m, "user_id", false, &user);
    if (m->failed || !mf_i64(m, "start_time", false, &c.run.start_ms)) {
        if (m->failed)
            return;
        c.run.start_ms = mf_now_ms();
    }
    if (!(c.tags = mf_array(m, "tags")) || !check_tags(m, c.tags))
        return;
    size_t i;
    json_t *tag;
    json_array_foreach(c.tags, i, tag)
    {
        const char *k = json_string_value(json_object_get(tag, "key"));
        const char *v = json_string_value(json_object_get(tag, "value"));
        if (!strcmp(k, "mlflow.runName")) {
            c.name_tag = true;
            if (!name || !*name)
                name = v;
        } else if (!strcmp(k, "mlflow.user")) {
            c.user_tag = true;
            if (!user || !*user)
                user = v;
        }
    }
    if (name && *name) {
        if (!check_run_name(m, name))
            return;
        snprintf(c.run.name, sizeof c.run.name, "%s", name);
    } else {
        random_run_name(c.run.name, sizeof c.run.name);
    }
    if (user && strlen(user) >= sizeof c.run.user) {
        mf_invalid(m, "user_id '%.100s' is too long: this server keeps up to 63 bytes", user);
        return;
    }
    snprintf(c.run.user, sizeof c.run.user, "%s", user ? user : "");
    if (c.name_tag && name && *name) {
        /* the tag and the name must agree: the run's name wins, as in MLflow */
        json_array_foreach(c.tags, i, tag)
        {
            if (!strcmp(json_string_value(json_object_get(tag, "key")), "mlflow.runName"))
                json_object_set_new(tag, "value", json_string(c.run.name));
        }
    }
    if (getrandom(c.run.id, 16, 0) != 16) {
        mf_error(m, 500, "INTERNAL_ERROR", "no random bytes for a run id");
        return;
    }
    int rc = mf_update(m, run_create_tx, &c);
    if (rc == -ENOENT)
        mf_missing_resource(m, "No Experiment with id=%s exists", exp);
    else if (rc == MF_REFUSED)
        mf_invalid(m, "The experiment %s must be in the 'active' state. Current state is "
                   "deleted.", exp);
    if (rc < 0) {
        mf_update_failed(m, rc);
        return;
    }
    struct store_txn *t;
    struct store_run r;
    char hex[33];
    store_run_id_hex(c.run.id, hex);
    if (!mf_begin_read(m, &t))
        return;
    if (mf_get_run(m, t, hex, &r))
        mf_ok(m, json_pack("{s:o}", "run", mf_run_json(t, &r)));
    store_abort(t);
}

static void run_get(struct mf *m)
{
    const char *hex;
    struct store_txn *t;
    struct store_run r;
    if (!mf_run_field(m, &hex) || !mf_begin_read(m, &t))
        return;
    if (mf_get_run(m, t, hex, &r))
        mf_ok(m, json_pack("{s:o}", "run", mf_run_json(t, &r)));
    store_abort(t);
}

/* A change of one run, checked against the run's state inside the transaction. */
struct run_op {
    enum { RUN_UPDATE, RUN_DELETE, RUN_RESTORE, RUN_PARAM, RUN_TAG, RUN_DELTAG } op;
    uint8_t id[16];
    const char *hex, *key, *value, *name;
    int status;
    int64_t end_ms;
    bool has_end;
    char old_value[MF_MAX_PARAM_VALUE * 4 + 1]; /* RUN_PARAM refused: the value kept */
    struct store_run after;
};

static int find_param(const char *key, const char *value, void *arg)
{
    struct run_op *o = arg;
    if (strcmp(key, o->key) != 0)
        return 0;
    snprintf(o->old_value, sizeof o->old_value, "%s", value);
    return 1;
}

static int run_op_tx(struct store_txn *t, void *arg)
{
    struct run_op *o = arg;
    struct store_run r;
    int rc = store_run_get(t, o->id, &r);
    if (rc < 0)
        return rc;
    if (r.deleted && o->op != RUN_DELETE && o->op != RUN_RESTORE)
        return MF_REFUSED - 1;
    switch (o->op) {
    case RUN_UPDATE:
        if (o->name && ((rc = store_run_set_name(t, o->id, o->name)) < 0 ||
                        (rc = store_tag_set(t, o->id, "mlflow.runName", o->name)) < 0))
            return rc;
        if ((o->status || o->has_end) &&
            (rc = store_run_end(t, o->id, o->status ? o->status : r.status,
                                o->has_end ? o->end_ms : r.end_ms)) < 0)
            return rc;
        return store_run_get(t, o->id, &o->after);
    case RUN_DELETE: return store_run_set_deleted(t, o->id, true);
    case RUN_RESTORE: return store_run_set_deleted(t, o->id, false);
    case RUN_PARAM:
        rc = store_param_put(t, o->id, o->key, o->value);
        if (rc == -EEXIST) {
            o->old_value[0] = '\0';
            store_params_foreach(t, o->id, find_param, o);
            return MF_REFUSED;
        }
        return rc < 0 ? rc : 0;
    case RUN_TAG:
        /* MLflow: the tag mlflow.runName is the run's name */
        if (!strcmp(o->key, "mlflow.runName") && (rc = store_run_set_name(t, o->id, o->value)) < 0)
            return rc;
        return store_tag_set(t, o->id, o->key, o->value);
    case RUN_DELTAG: return store_tag_delete(t, o->id, o->key);
    }
    return -EINVAL;
}

static void run_change(struct mf *m, struct run_op *o)
{
    int rc = mf_update(m, run_op_tx, o);
    if (rc == -ENOENT && o->op == RUN_DELTAG)
        mf_missing_resource(m, "No tag with name: %s in run with id %s", o->key, o->hex);
    else if (rc == -ENOENT)
        mf_missing_resource(m, "Run with id=%s not found", o->hex);
    else if (rc == MF_REFUSED - 1)
        mf_invalid(m, "The run %s must be in the 'active' state. Current state is deleted.",
                   o->hex);
    else if (rc == MF_REFUSED)
        mf_invalid(m, "Changing param values is not allowed. Param with key='%s' was already "
                   "logged with value='%.1000s' for run ID='%s'. Attempted logging new value "
                   "'%.1000s'.", o->key, o->old_value, o->hex, o->value);
    else if (rc == -ENAMETOOLONG || rc == -EINVAL)
        mf_invalid(m, "Invalid key or value for run %s: %s", o->hex, store_strerror(rc));
    else if (rc >= 0 && o->op == RUN_UPDATE)
        mf_ok(m, json_pack("{s:o}", "run_info", mf_run_info_json(&o->after)));
    else if (rc >= 0)
        mf_ok(m, NULL);
    mf_update_failed(m, rc);
}

/* run_id (or the older run_uuid) into o. */
static bool run_arg(struct mf *m, struct run_op *o)
{
    return mf_run_field(m, &o->hex) && mf_run_id(m, o->hex, o->id);
}

static void run_update(struct mf *m)
{
    struct run_op *o = calloc(1, sizeof *o);
    const char *status = NULL;
    if (!o) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        return;
    }
    o->op = RUN_UPDATE;
    if (!run_arg(m, o))
        goto out;
    if (mf_str(m, "status", false, &status) && !(o->status = mf_status_parse(status))) {
        mf_invalid(m, "Invalid value '%s' for parameter 'status': one of RUNNING, SCHEDULED, "
                   "FINISHED, FAILED, KILLED", status);
        goto out;
    }
    o->has_end = mf_i64(m, "end_time", false, &o->end_ms);
    if (!m->failed && mf_str(m, "run_name", false, &o->name) && !check_run_name(m, o->name))
        goto out;
    if (o->name && !*o->name)
        o->name = NULL;
    if (!m->failed)
        run_change(m, o);
out:
    free(o);
}

static void run_simple(struct mf *m, int op)
{
    struct run_op *o = calloc(1, sizeof *o);
    if (!o) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        return;
    }
    o->op = op;
    if (!run_arg(m, o))
        goto out;
    if (op == RUN_PARAM || op == RUN_TAG || op == RUN_DELTAG) {
        if (!mf_str(m, "key", true, &o->key))
            goto out;
        if (op != RUN_DELTAG && !mf_str(m, "value", true, &o->value))
            goto out;
        if (op == RUN_PARAM && (!mf_check_key(m, "parameter", o->key) ||
                                !mf_check_len(m, "Param value", o->value, MF_MAX_PARAM_VALUE)))
            goto out;
        if (op == RUN_TAG && (!mf_check_key(m, "tag", o->key) ||
                              !mf_check_len(m, "Tag value", o->value, MF_MAX_TAG_VALUE)))
            goto out;
        if (op == RUN_TAG && !strcmp(o->key, "mlflow.runName") && !check_run_name(m, o->value))
            goto out;
    }
    run_change(m, o);
out:
    free(o);
}

static void run_delete(struct mf *m) { run_simple(m, RUN_DELETE); }
static void run_restore(struct mf *m) { run_simple(m, RUN_RESTORE); }
static void run_log_param(struct mf *m) { run_simple(m, RUN_PARAM); }
static void run_set_tag(struct mf *m) { run_simple(m, RUN_TAG); }
static void run_delete_tag(struct mf *m) { run_simple(m, RUN_DELTAG); }

/* log-inputs: {run_id, datasets: [{tags: [{key, value}], dataset: {name, digest, source_type,
 * source, schema?, profile?}}]}. Each input is kept as the DatasetInput's JSON, keyed by the
 * dataset's name and digest (the same dataset again replaces it). */
struct inputs_op {
    uint8_t id[16];
    json_t *datasets;
};

static int inputs_tx(struct store_txn *t, void *arg)
{
    struct inputs_op *o = arg;
    struct store_run r;
    int rc = mf_run_writable(t, o->id, &r);
    if (rc < 0)
        return rc;
    size_t i;
    json_t *d;
    json_array_foreach(o->datasets, i, d)
    {
        json_t *ds = json_object_get(d, "dataset");
        char key[65];
        mf_input_key(json_string_value(json_object_get(ds, "name")),
                     json_string_value(json_object_get(ds, "digest")), key);
        char *text = json_dumps(d, JSON_COMPACT);
        if (!text)
            return -ENOMEM;
        rc = store_input_put(t, o->id, key, text);
        free(text);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool check_dataset(struct mf *m, size_t i, json_t *d)
{
    static const struct { const char *field; size_t max; bool required; } f[] = {
        {"name", 500, true},        {"digest", 36, true},       {"source_type", 10000, true},
        {"source", 65535, true},    {"schema", 1048575, false}, {"profile", 16777215, false},
    };
    json_t *ds = json_object_get(d, "dataset");
    if (!json_is_object(d) || !json_is_object(ds)) {
        mf_invalid(m, "Invalid dataset input at index %zu: {\"dataset\": {...}, \"tags\": [...]}",
                   i);
        return false;
    }
    for (size_t k = 0; k < sizeof f / sizeof *f; k++) {
        json_t *v = json_object_get(ds, f[k].field);
        if (!v && !f[k].required)
            continue;
        if (!json_is_string(v) || (f[k].required && !*json_string_value(v))) {
            mf_invalid(m, "Dataset at index %zu: '%s' must be a non-empty string", i, f[k].field);
            return false;
        }
        char label[64];
        snprintf(label, sizeof label, "Dataset %s", f[k].field);
        if (!mf_check_len(m, label, json_string_value(v), f[k].max))
            return false;
    }
    json_t *tags = json_object_get(d, "tags"), *tag;
    size_t j;
    if (tags && !json_is_array(tags)) {
        mf_invalid(m, "Dataset input at index %zu: 'tags' must be a list", i);
        return false;
    }
    json_array_foreach(tags, j, tag)
    {
        json_t *k = json_object_get(tag, "key"), *v = json_object_get(tag, "value");
        if (!json_is_string(k) || !json_is_string(v) || !*json_string_value(k)) {
            mf_invalid(m, "Dataset input at index %zu: tag %zu needs a key and a value", i, j);
            return false;
        }
        if (!mf_check_len(m, "Input tag key", json_string_value(k), 255) ||
            !mf_check_len(m, "Input tag value", json_string_value(v), 500))
            return false;
    }
    return true;
}

static void run_log_inputs(struct mf *m)
{
    struct inputs_op o;
    const char *hex;
    if (!mf_str(m, "run_id", true, &hex) || !mf_run_id(m, hex, o.id) ||
        !(o.datasets = mf_array(m, "datasets")))
        return;
    if (json_array_size(o.datasets) > 1000) {
        mf_invalid(m, "A batch logging request can contain at most 1000 datasets. Got %zu "
                   "datasets. Please split up datasets across multiple requests and try again.",
                   json_array_size(o.datasets));
        return;
    }
    size_t i;
    json_t *d;
    json_array_foreach(o.datasets, i, d)
    {
        if (!check_dataset(m, i, d))
            return;
    }
    int rc = mf_update(m, inputs_tx, &o);
    if (rc == -ENOENT)
        mf_missing_resource(m, "Run with id=%s not found", hex);
    else if (rc == MF_REFUSED)
        mf_invalid(m, "The run %s must be in the 'active' state. Current state is deleted.",
                   hex);
    else if (rc >= 0)
        mf_ok(m, NULL);
    mf_update_failed(m, rc);
}

/* ---- routes ------------------------------------------------------------------------------- */

static const struct mf_route tracking[] = {
    {"POST", "experiments/create", exp_create, 0},
    {"GET", "experiments/get", exp_get, 0},
    {"GET", "experiments/get-by-name", exp_get_by_name, 0},
    {"GET", "experiments/search", mf_search_experiments, 0},
    {"POST", "experiments/search", mf_search_experiments, 0},
    {"POST", "experiments/update", exp_update, 0},
    {"POST", "experiments/delete", exp_delete, 0},
    {"POST", "experiments/restore", exp_restore, 0},
    {"POST", "experiments/set-experiment-tag", exp_set_tag, 0},
    {"POST", "runs/create", run_create, 0},
    {"GET", "runs/get", run_get, 0},
    {"POST", "runs/update", run_update, 0},
    {"POST", "runs/delete", run_delete, 0},
    {"POST", "runs/restore", run_restore, 0},
    {"POST", "runs/search", mf_search_runs, 0},
    {"POST", "runs/log-batch", mf_log_batch, MF_RAW},
    {"POST", "runs/log-metric", mf_log_metric, 0},
    {"POST", "runs/log-parameter", run_log_param, 0},
    {"POST", "runs/set-tag", run_set_tag, 0},
    {"POST", "runs/delete-tag", run_delete_tag, 0},
    {"POST", "runs/log-inputs", run_log_inputs, 0},
    {"GET", "metrics/get-history", mf_get_history, 0},
    {"GET", "metrics/get-history-bulk-interval", mf_get_history_bulk, 0},
    {"GET", "artifacts/list", mf_list_artifacts, 0},
};
#define NTRACKING (sizeof tracking / sizeof *tracking)

/* Where a route's handler and store are kept: routes point here for the process's life. */
struct bound {
    mf_fn fn;
    unsigned flags;
    struct store *s;
};
static struct bound bounds[160];
static size_t nbounds;

static void dispatch(const struct http_req *req, struct http_resp *resp, void *arg)
{
    const struct bound *b = arg;
    struct mf m = {.req = req, .resp = resp, .s = b->s};
    if (!(b->flags & MF_RAW) && !(m.p = http_params(req, resp)))
        return;
    b->fn(&m);
    json_decref(m.p);
}

int mf_route_add(struct http_server *h, const char *method, const char *path,
                 unsigned http_flags, mf_fn fn, unsigned mf_flags, struct store *s)
{
    if (nbounds == sizeof bounds / sizeof *bounds)
        return -ENOSPC;
    struct bound *b = &bounds[nbounds++];
    *b = (struct bound){fn, mf_flags, s};
    return http_route(h, method, path, http_flags, dispatch, b);
}

int mlflow_api_register(struct http_server *h, struct store *s)
{
    static const char *const prefixes[] = {"/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"};
    for (size_t i = 0; i < NTRACKING; i++) {
        for (size_t p = 0; p < 2; p++) {
            char path[128];
            snprintf(path, sizeof path, "%s%s", prefixes[p], tracking[i].path);
            int rc = mf_route_add(h, tracking[i].method, path, HTTP_EXACT, tracking[i].fn,
                                  tracking[i].flags, s);
            if (rc < 0)
                return rc;
        }
    }
    int rc = mf_artifacts_register(h, s);
    return rc < 0 ? rc : mf_registry_register(h, s);
}
