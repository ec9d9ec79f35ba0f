/* mlflow_json.c — MLflow's entities as JSON, the readers of request fields, ids and errors.
 *
 * The shapes follow what MLflow's server writes (message_to_json in proto_json_utils.py):
 * protobuf's JSON with the proto field names, int64 fields as JSON numbers, unset fields and
 * empty repeated fields left out, doubles that JSON cannot hold as "NaN", "Infinity" and
 * "-Infinity". Experiment ids are strings, as in the protos. */
#include "mlflow_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t mf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- responses ------------------------------------------------------------------------ */

void mf_error(struct mf *m, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_resp_verror(m->resp, status, code, fmt, ap);
    va_end(ap);
    m->failed = true;
}

void mf_store_error(struct mf *m, int rc, const char *what)
{
    if (rc == -ENOENT)
        mf_missing_resource(m, "%s does not exist", what);
    else if (rc == -ENOSPC)
        mf_error(m, 507, "INTERNAL_ERROR", "%s: %s", what, store_strerror(rc));
    else
        mf_error(m, 500, "INTERNAL_ERROR", "%s: %s", what, store_strerror(rc));
}

void mf_ok(struct mf *m, json_t *body)
{
    http_resp_json(m->resp, 200, body ? body : json_object());
}

/* ---- field readers -------------------------------------------------------------------- */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "dict";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "str";
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "NoneType";
    }
}

static void bad_type(struct mf *m, const char *name, const json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    mf_invalid(m,
               "Invalid value %.200s for parameter '%s' supplied. Hint: Value was of type '%s'. "
               "See the API docs for more information about request parameters.",
               text ? text : "?", name, type_name(v));
    free(text);
}

static void missing(struct mf *m, const char *name)
{
    mf_invalid(m,
               "Missing value for required parameter '%s'. See the API docs for more information "
               "about request parameters.",
               name);
}

/* The field's value; the first one when a GET query repeated it. NULL when absent. */
static json_t *field(struct mf *m, const char *name)
{
    json_t *v = m->p ? json_object_get(m->p, name) : NULL;
    if (v && json_is_array(v) && m->req && !strcmp(m->req->method, "GET"))
        v = json_array_get(v, 0);
    return v && !json_is_null(v) ? v : NULL;
}

bool mf_str(struct mf *m, const char *name, bool required, const char **out)
{
    *out = NULL;
    json_t *v = field(m, name);
    if (!v) {
        if (required)
            missing(m, name);
        return false;
    }
    if (json_is_integer(v)) { /* experiment_id: 1 from a client that sends it as a number */
        char buf[32];
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        json_object_set_new(m->p, name, json_string(buf));
        v = json_object_get(m->p, name);
    }
    if (!json_is_string(v)) {
        bad_type(m, name, v);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

bool mf_json_i64(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = x;
    return true;
}

bool mf_i64(struct mf *m, const char *name, bool required, int64_t *out)
{
    json_t *v = field(m, name);
    if (!v) {
        if (required)
            missing(m, name);
        return false;
    }
    if (mf_json_i64(v, out))
        return true;
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 9.2e18) {
        *out = (int64_t)json_real_value(v);
        return true;
    }
    bad_type(m, name, v);
    return false;
}

bool mf_json_double(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    if (!strcmp(s, "NaN"))
        *out = NAN;
    else if (!strcmp(s, "Infinity"))
        *out = INFINITY;
    else if (!strcmp(s, "-Infinity"))
        *out = -INFINITY;
    else {
        char *end;
        *out = strtod(s, &end);
        return end != s && !*end;
    }
    return true;
}

bool mf_run_field(struct mf *m, const char **hex)
{
    if (mf_str(m, "run_id", false, hex))
        return true;
    if (!m->failed && mf_str(m, "run_uuid", false, hex))
        return true;
    if (!m->failed)
        missing(m, "run_id");
    return false;
}

json_t *mf_array(struct mf *m, const char *name)
{
    json_t *v = m->p ? json_object_get(m->p, name) : NULL;
    if (!v || json_is_null(v)) {
        json_object_set_new(m->p, name, json_array());
        return json_object_get(m->p, name);
    }
    if (json_is_array(v))
        return v;
    if (json_is_string(v) && !strcmp(m->req->method, "GET")) { /* ?name=one */
        json_t *a = json_array();
        json_array_append(a, v);
        json_object_set_new(m->p, name, a);
        return a;
    }
    bad_type(m, name, v);
    return NULL;
}

/* ---- ids ------------------------------------------------------------------------------- */

bool mf_run_id(struct mf *m, const char *hex, uint8_t id[16])
{
    if (store_run_id_parse(hex, id) == 0)
        return true;
    mf_missing_resource(m, "Run with id=%s not found", hex);
    return false;
}

bool mf_get_run(struct mf *m, struct store_txn *t, const char *hex, struct store_run *r)
{
    uint8_t id[16];
    if (!mf_run_id(m, hex, id))
        return false;
    int rc = store_run_get(t, id, r);
    if (rc == -ENOENT)
        mf_missing_resource(m, "Run with id=%s not found", hex);
    else if (rc < 0)
        mf_store_error(m, rc, "run");
    return rc == 0;
}

int mf_run_writable(struct store_txn *t, const uint8_t id[16], struct store_run *r)
{
    int rc = store_run_get(t, id, r);
    if (rc < 0)
        return rc;
    return r->deleted ? MF_REFUSED : 0;
}

bool mf_run_active(struct mf *m, const struct store_run *r, const char *hex)
{
    if (!r->deleted)
        return true;
    mf_invalid(m, "The run %s must be in the 'active' state. Current state is deleted.", hex);
    return false;
}

bool mf_exp_id(struct mf *m, const char *text, uint64_t *id)
{
    /* MLflow's _EXPERIMENT_ID_REGEX first; then ours are decimal numbers */
    size_t n = strlen(text);
    bool shape = n >= 1 && n <= 64;
    for (size_t i = 0; shape && i < n; i++) {
        char c = text[i];
        shape = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (i > 0 && (c == '_' || c == '-'));
    }
    if (!shape) {
        mf_invalid(m, "Invalid experiment ID: '%s'", text);
        return false;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || text[0] == '-' || text[0] == '+') {
        mf_missing_resource(m, "No Experiment with id=%s exists", text);
        return false;
    }
    *id = v;
    return true;
}

bool mf_get_experiment(struct mf *m, struct store_txn *t, const char *text,
                       struct store_experiment *e)
{
    uint64_t id;
    if (!mf_exp_id(m, text, &id))
        return false;
    int rc = store_experiment_get(t, id, e);
    if (rc == -ENOENT)
        mf_missing_resource(m, "No Experiment with id=%s exists", text);
    else if (rc < 0)
        mf_store_error(m, rc, "experiment");
    return rc == 0;
}

bool mf_begin_read(struct mf *m, struct store_txn **t)
{
    int rc = store_begin(m->s, false, t);
    if (rc < 0)
        mf_store_error(m, rc, "cannot read the store");
    return rc == 0;
}

int mf_update(struct mf *m, int (*fn)(struct store_txn *t, void *arg), void *arg)
{
    int rc = store_update(m->s, fn, arg);
    if (rc < 0 && !MF_IS_REFUSAL(rc) && rc != -ENOENT && rc != -EEXIST && rc != -EINVAL &&
        rc != -ENAMETOOLONG)
        mf_store_error(m, rc, "cannot write to the store");
    return rc;
}

void mf_update_failed(struct mf *m, int rc)
{
    if (rc < 0 && !m->failed)
        mf_invalid(m, "%s", store_strerror(rc));
}

void mf_input_key(const char *name, const char *digest, char out[65])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t h[32];
    unsigned hl = 0;
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
        EVP_DigestUpdate(c, name, strlen(name) + 1) &&
        EVP_DigestUpdate(c, digest, strlen(digest)) && EVP_DigestFinal_ex(c, h, &hl)) {
        for (int i = 0; i < 32; i++)
            snprintf(out + 2 * i, 3, "%02x", h[i]);
    } else {
        snprintf(out, 65, "%.32s", digest);
    }
    EVP_MD_CTX_free(c);
}

/* ---- shapes ----------------------------------------------------------------------------- */

json_t *mf_double(double v)
{
    if (isnan(v))
        return json_string("NaN");
    if (isinf(v))
        return json_string(v > 0 ? "Infinity" : "-Infinity");
    return json_real(v);
}

json_t *mf_metric_json(const char *key, const struct store_point *p)
{
    return json_pack("{s:o, s:o, s:I, s:I}", "key", mf_jstr(key), "value", mf_double(p->value),
                     "timestamp", (json_int_t)p->ts_ms, "step", (json_int_t)p->step);
}

const char *mf_lifecycle(bool deleted) { return deleted ? "deleted" : "active"; }

int mf_status_parse(const char *s)
{
    for (int st = STORE_RUN_RUNNING; st <= STORE_RUN_KILLED; st++)
        if (!strcmp(s, store_run_status_name(st)))
            return st;
    return 0;
}

/* A JSON string of s; bytes that are not UTF-8 (a value from an old or foreign producer)
 * become U+FFFD rather than failing the whole response. */
json_t *mf_jstr(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    size_t n = strlen(s);
    char *buf = malloc(3 * n + 1), *o = buf;
    if (!buf)
        return json_string("");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int len = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3
                                : (*p & 0xF8) == 0xF0 ? 4 : 0;
        json_t *one = len ? json_stringn((const char *)p, (size_t)len) : NULL;
        if (one) {
            memcpy(o, p, (size_t)len);
            o += len;
            p += len;
            json_decref(one);
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
        }
    }
    *o = '\0';
    v = json_string(buf);
    free(buf);
    return v ? v : json_string("");
}

static int add_kv(const char *key, const char *value, void *arg)
{
    json_t *o = json_object();
    json_object_set_new(o, "key", mf_jstr(key));
    json_object_set_new(o, "value", mf_jstr(value));
    return json_array_append_new(arg, o) ? -ENOMEM : 0;
}

static void set_nonempty(json_t *o, const char *name, json_t *arr)
{
    if (json_array_size(arr))
        json_object_set_new(o, name, arr);
    else
        json_decref(arr);
}

json_t *mf_experiment_json(struct store_txn *t, const struct store_experiment *e)
{
    char id[24], loc[48];
    snprintf(id, sizeof id, "%" PRIu64, e->id);
    snprintf(loc, sizeof loc, "mlflow-artifacts:/%" PRIu64, e->id);
    json_t *o = json_pack("{s:s, s:o, s:s, s:s, s:I, s:I}", "experiment_id", id, "name", mf_jstr(e->name),
                          "artifact_location", loc, "lifecycle_stage", mf_lifecycle(e->deleted),
                          "last_update_time", (json_int_t)e->updated_ms, "creation_time",
                          (json_int_t)e->created_ms);
    json_t *tags = json_array();
    store_exp_tags_foreach(t, e->id, add_kv, tags);
    set_nonempty(o, "tags", tags);
    return o;
}

json_t *mf_run_info_json(const struct store_run *r)
{
    char id[33], exp[24], uri[96];
    store_run_id_hex(r->id, id);
    snprintf(exp, sizeof exp, "%" PRIu64, r->experiment_id);
    snprintf(uri, sizeof uri, "mlflow-artifacts:/%s/%s/artifacts", exp, id);
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:o, s:s, s:I, s:s, s:s}", "run_id", id,
                          "run_uuid", id, "run_name", mf_jstr(r->name), "experiment_id", exp,
                          "user_id", mf_jstr(r->user), "status", store_run_status_name(r->status), "start_time",
                          (json_int_t)r->start_ms, "artifact_uri", uri, "lifecycle_stage",
                          mf_lifecycle(r->deleted));
    if (r->end_ms)
        json_object_set_new(o, "end_time", json_integer(r->end_ms));
    return o;
}

static int add_metric(const char *key, const struct store_metric_summary *s, void *arg)
{
    return json_array_append_new(arg, mf_metric_json(key, &s->latest)) ? -ENOMEM : 0;
}

struct tag_walk {
    json_t *arr;
    bool has_name, has_user;
};

static int add_tag(const char *key, const char *value, void *arg)
{
    struct tag_walk *w = arg;
    w->has_name |= !strcmp(key, "mlflow.runName");
    w->has_user |= !strcmp(key, "mlflow.user");
    return add_kv(key, value, w->arr);
}

static int add_input(const char *key, const char *value, void *arg)
{
    json_t *v = json_loads(value, 0, NULL);
    if (v)
        json_array_append_new(arg, v);
    return 0;
}

json_t *mf_run_json(struct store_txn *t, const struct store_run *r)
{
    json_t *data = json_object(), *metrics = json_array(), *params = json_array(),
           *inputs = json_array();
    struct tag_walk tw = {.arr = json_array()};
    store_metric_keys_foreach(t, r->id, add_metric, metrics);
    store_params_foreach(t, r->id, add_kv, params);
    store_tags_foreach(t, r->id, add_tag, &tw);
    /* Runs that came from agents carry their name and user in the run itself: show them the
     * way MLflow's clients look for them too. */
    if (!tw.has_name && r->name[0])
        add_kv("mlflow.runName", r->name, tw.arr);
    if (!tw.has_user && r->user[0])
        add_kv("mlflow.user", r->user, tw.arr);
    store_inputs_foreach(t, r->id, add_input, inputs);
    set_nonempty(data, "metrics", metrics);
    set_nonempty(data, "params", params);
    set_nonempty(data, "tags", tw.arr);
    json_t *in = json_object();
    set_nonempty(in, "dataset_inputs", inputs);
    return json_pack("{s:o, s:o, s:o}", "info", mf_run_info_json(r), "data", data, "inputs", in);
}

void mf_respond_buf(struct mf *m, struct sync_buf *b)
{
    if (b->err) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory for the response");
        sync_buf_free(b);
        return;
    }
    struct http_resp *r = m->resp;
    free(r->body);
    r->body = b->data;
    r->len = b->len;
    r->status = 200;
    snprintf(r->content_type, sizeof r->content_type, "application/json");
}
