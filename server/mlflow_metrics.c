/* mlflow_metrics.c — metrics: runs/log-metric, runs/log-batch, metrics/get-history and the
 * web UI's metrics/get-history-bulk-interval.
 *
 * log-batch is the hot path of MLflow's clients (mlflow.log_metrics, autologging): up to 1000
 * metrics a request. Everything in the request is checked first (MLflow's limits and names),
 * then it is written in one transaction: params, tags, and the metrics grouped by key so that
 * each series is appended to once (one tail-block rewrite per key, not per point). A refused
 * request (a param that would change, a deleted run) writes nothing.
 *
 * Histories can be long (millions of points): they are written as JSON text directly rather
 * than built as jansson objects. */
#include "mlflow_batch.h"
#include "mlflow_internal.h"
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON text out --------------------------------------------------------------------- */

/* A double as jansson writes it (%.17g, with ".0" on integral values), or protobuf's
 * "NaN"/"Infinity"/"-Infinity". */
static void sb_double(struct sync_buf *b, double v)
{
    char buf[40];
    int n;
    if (isnan(v))
        n = snprintf(buf, sizeof buf, "\"NaN\"");
    else if (isinf(v))
        n = snprintf(buf, sizeof buf, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else {
        n = snprintf(buf, sizeof buf, "%.17g", v);
        if (!strpbrk(buf, ".eE"))
            n += snprintf(buf + n, sizeof buf - (size_t)n, ".0");
    }
    sync_buf_put(b, buf, (size_t)n);
}

/* {"key":K,"value":V,"timestamp":T,"step":S[,"run_id":R]} with K already JSON. */
static void sb_point(struct sync_buf *b, const char *key_json, const struct store_point *p,
                     const char *run_hex)
{
    char buf[96];
    sync_buf_puts(b, "{\"key\":");
    sync_buf_puts(b, key_json);
    sync_buf_puts(b, ",\"value\":");
    sb_double(b, p->value);
    int n = snprintf(buf, sizeof buf, ",\"timestamp\":%" PRId64 ",\"step\":%" PRId64, p->ts_ms,
                     p->step);
    sync_buf_put(b, buf, (size_t)n);
    if (run_hex) {
        n = snprintf(buf, sizeof buf, ",\"run_id\":\"%s\"", run_hex);
        sync_buf_put(b, buf, (size_t)n);
    }
    sync_buf_put(b, "}", 1);
}

static char *key_json(const char *key)
{
    json_t *s = mf_jstr(key);
    char *out = json_dumps(s, JSON_ENCODE_ANY);
    json_decref(s);
    return out;
}

/* ---- writing ----------------------------------------------------------------------------- */

struct kv {
    const char *key, *value;
};

struct bm { /* one metric of a batch */
    const char *key;
    struct store_point p;
    uint32_t kid; /* the batch's number for its key (batch_sort) */
};

struct batch {
    uint8_t id[16];
    const char *hex;
    struct bm *m;
    struct store_point *pts; /* the metrics' points, grouped by key (m sorted the same way) */
    size_t nm;
    struct kv *params, *tags;
    size_t np, nt;
    const char *conflict;  /* the param whose value would change */
    char old_value[MF_MAX_PARAM_VALUE * 4 + 1];
};

static int find_old(const char *key, const char *value, void *arg)
{
    struct batch *b = arg;
    if (strcmp(key, b->conflict) != 0)
        return 0;
    snprintf(b->old_value, sizeof b->old_value, "%s", value);
    return 1;
}

static int batch_tx(struct store_txn *t, void *arg)
{
    struct batch *b = arg;
    struct store_run r;
    int rc = store_run_get(t, b->id, &r);
    if (rc < 0)
        return rc;
    if (r.deleted)
        return MF_REFUSED - 1;
    for (size_t i = 0; i < b->np; i++) {
        rc = store_param_put(t, b->id, b->params[i].key, b->params[i].value);
        if (rc == -EEXIST) {
            b->conflict = b->params[i].key;
            b->old_value[0] = '\0';
            store_params_foreach(t, b->id, find_old, b);
            return MF_REFUSED;
        }
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < b->nt; i++) {
        if (!strcmp(b->tags[i].key, "mlflow.runName") &&
            (rc = store_run_set_name(t, b->id, b->tags[i].value)) < 0)
            return rc;
        if ((rc = store_tag_set(t, b->id, b->tags[i].key, b->tags[i].value)) < 0)
            return rc;
    }
    for (size_t i = 0; i < b->nm;) {
        size_t j = i + 1;
        while (j < b->nm && b->m[j].kid == b->m[i].kid)
            j++;
        if ((rc = store_metric_append(t, b->id, b->m[i].key, b->pts + i, j - i)) < 0)
            return rc;
        i = j;
    }
    return 0;
}

static const char *attempted(const struct batch *b)
{
    for (size_t i = 0; i < b->np; i++)
        if (!strcmp(b->params[i].key, b->conflict))
            return b->params[i].value;
    return "";
}

/* Groups the metrics by key, in request order within a key (the order of each history):
 * keys are numbered through a small hash table, then a stable counting sort by number, so a
 * batch of 1000 points costs ~1000 hashes instead of ~10,000 string comparisons. */
static int batch_sort(struct batch *b)
{
    if (b->nm < 2) {
        for (size_t i = 0; i < b->nm; i++) {
            b->m[i].kid = 0;
            b->pts[i] = b->m[i].p;
        }
        return 0;
    }
    size_t slots = 16;
    while (slots < 2 * b->nm)
        slots *= 2;
    uint32_t *slot = malloc(slots * sizeof *slot); /* kid + 1; 0: empty */
    uint32_t *first = malloc(b->nm * sizeof *first), *count = calloc(b->nm + 1, sizeof *count);
    struct bm *sorted = malloc(b->nm * sizeof *sorted);
    if (!slot || !first || !count || !sorted) {
        free(slot), free(first), free(count), free(sorted);
        return -ENOMEM;
    }
    memset(slot, 0, slots * sizeof *slot);
    uint32_t nkeys = 0;
    for (size_t i = 0; i < b->nm; i++) {
        uint64_t h = 1469598103934665603ull; /* FNV-1a */
        for (const unsigned char *c = (const unsigned char *)b->m[i].key; *c; c++)
            h = (h ^ *c) * 1099511628211ull;
        size_t k = (size_t)h & (slots - 1);
        while (slot[k] && strcmp(b->m[first[slot[k] - 1]].key, b->m[i].key) != 0)
            k = (k + 1) & (slots - 1);
        if (!slot[k]) {
            first[nkeys] = (uint32_t)i;
            slot[k] = ++nkeys;
        }
        b->m[i].kid = slot[k] - 1;
        count[b->m[i].kid + 1]++;
    }
    for (uint32_t k = 1; k <= nkeys; k++)
        count[k] += count[k - 1];
    for (size_t i = 0; i < b->nm; i++)
        sorted[count[b->m[i].kid]++] = b->m[i];
    memcpy(b->m, sorted, b->nm * sizeof *sorted);
    for (size_t i = 0; i < b->nm; i++)
        b->pts[i] = b->m[i].p;
    free(slot), free(first), free(count), free(sorted);
    return 0;
}

/* Writes a checked, sorted batch (batch_sort) in one transaction and answers. */
static void batch_write(struct mf *m, struct batch *b)
{
    int rc = mf_update(m, batch_tx, b);
    if (rc == -ENOENT)
        mf_missing_resource(m, "Run with id=%s not found", b->hex);
    else if (rc == MF_REFUSED - 1)
        mf_invalid(m, "The run %s must be in the 'active' state. Current state is deleted.",
                   b->hex);
    else if (rc == MF_REFUSED)
        mf_invalid(m, "Changing param values is not allowed. Param with key='%s' was already "
                   "logged with value='%.1000s' for run ID='%s'. Attempted logging new value "
                   "'%.1000s'.", b->conflict, b->old_value, b->hex, attempted(b));
    else if (rc >= 0)
        mf_ok(m, NULL);
    mf_update_failed(m, rc);
}

/* A metric {key, value, timestamp, step} of the request into out; false (request failed)
 * when it breaks MLflow's rules. */
static bool read_metric(struct mf *m, json_t *o, bool ts_required, struct bm *out)
{
    json_t *k = json_object_get(o, "key"), *v = json_object_get(o, "value"),
           *ts = json_object_get(o, "timestamp"), *st = json_object_get(o, "step");
    if (!json_is_object(o) || (k && !json_is_string(k))) {
        mf_invalid(m, "Invalid metric: expected {\"key\": string, \"value\": number, "
                   "\"timestamp\": number, \"step\": number}");
        return false;
    }
    out->key = k ? json_string_value(k) : "";
    if (!mf_check_key(m, "metric", out->key))
        return false;
    out->p.ts_ms = 0;
    out->p.step = 0;
    if (ts && !json_is_null(ts)) {
        if (!mf_json_i64(ts, &out->p.ts_ms))
            out->p.ts_ms = -1; /* refused below, once the value is known */
    } else if (ts_required) {
        mf_invalid(m, "Missing value for required parameter 'timestamp'. See the API docs for "
                   "more information about request parameters.");
        return false;
    }
    if (!mf_json_double(v, &out->p.value)) {
        char *text = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
        mf_invalid(m, "Got invalid value %.100s for metric '%s' (timestamp=%" PRId64 "). Please "
                   "specify value as a valid double (64-bit floating point)",
                   text ? text : "None", out->key, out->p.ts_ms);
        free(text);
        return false;
    }
    if (out->p.ts_ms < 0) {
        mf_invalid(m, "Got invalid timestamp for metric '%s' (value=%g). Timestamp must be a "
                   "nonnegative long (64-bit integer) ", out->key, out->p.value);
        return false;
    }
    if (st && !json_is_null(st) && !mf_json_i64(st, &out->p.step)) {
        mf_invalid(m, "Got invalid step for metric '%s' (value=%g). Step must be a valid long "
                   "(64-bit integer).", out->key, out->p.value);
        return false;
    }
    return true;
}

static bool batch_limit(struct mf *m, const char *what, size_t limit, size_t n)
{
    if (n <= limit)
        return true;
    mf_invalid(m, "A batch logging request can contain at most %zu %s. Got %zu %s. Please split "
               "up %s across multiple requests and try again.", limit, what, n, what, what);
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* MLflow refuses a batch that gives one param twice. */
static bool params_unique(struct mf *m, const struct kv *p, size_t n)
{
    if (n < 2)
        return true;
    const char **keys = malloc(n * sizeof *keys);
    if (!keys) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++)
        keys[i] = p[i].key;
    qsort(keys, n, sizeof *keys, cmp_str);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(keys[i], keys[i - 1]))
            dup = keys[i];
    if (dup)
        mf_invalid(m, "Duplicate parameter keys have been submitted: ['%s']. Please ensure the "
                   "request contains only one param value per param key.", dup);
    free(keys);
    return !dup;
}

/* A metric of the body into out, by MLflow's rules (the key is checked later, once per key). */
static bool batch_metric(struct mf *m, const struct mf_jentry *e, struct bm *out)
{
    char text[128];
    if (!e->is_object || (e->key.kind != MF_JABSENT && e->key.kind != MF_JSTR)) {
        mf_invalid(m, "Invalid metric: expected {\"key\": string, \"value\": number, "
                   "\"timestamp\": number, \"step\": number}");
        return false;
    }
    out->key = e->key.kind == MF_JSTR ? e->key.s : "";
    out->p.ts_ms = 0;
    out->p.step = 0;
    bool ts_ok = e->timestamp.kind == MF_JABSENT || e->timestamp.kind == MF_JNULL ||
                 mf_jval_i64(&e->timestamp, &out->p.ts_ms);
    if (!mf_jval_double(&e->value, &out->p.value)) {
        mf_jval_text(&e->value, text, sizeof text);
        mf_invalid(m, "Got invalid value %s for metric '%s' (timestamp=%" PRId64 "). Please "
                   "specify value as a valid double (64-bit floating point)", text, out->key,
                   out->p.ts_ms);
        return false;
    }
    if (!ts_ok || out->p.ts_ms < 0) {
        mf_jval_text(&e->timestamp, text, sizeof text);
        mf_invalid(m, "Got invalid timestamp %s for metric '%s' (value=%g). Timestamp must be a "
                   "nonnegative long (64-bit integer) ", text, out->key, out->p.value);
        return false;
    }
    if (e->step.kind != MF_JABSENT && e->step.kind != MF_JNULL &&
        !mf_jval_i64(&e->step, &out->p.step)) {
        mf_jval_text(&e->step, text, sizeof text);
        mf_invalid(m, "Got invalid step %s for metric '%s' (value=%g). Step must be a valid "
                   "long (64-bit integer).", text, out->key, out->p.value);
        return false;
    }
    return true;
}

static bool batch_kvs(struct mf *m, const struct mf_jentry *e, size_t n, bool param,
                      struct kv *out)
{
    for (size_t i = 0; i < n; i++) {
        if (!e[i].is_object || (e[i].key.kind != MF_JABSENT && e[i].key.kind != MF_JSTR) ||
            (e[i].value.kind != MF_JABSENT && e[i].value.kind != MF_JSTR)) {
            mf_invalid(m, "Invalid %s at index %zu: expected {\"key\": string, \"value\": "
                       "string}", param ? "param" : "tag", i);
            return false;
        }
        out[i].key = e[i].key.kind == MF_JSTR ? e[i].key.s : NULL;
        out[i].value = e[i].value.kind == MF_JSTR ? e[i].value.s : "";
        if (!mf_check_key(m, param ? "parameter" : "tag", out[i].key) ||
            !mf_check_len(m, param ? "Param value" : "Tag value", out[i].value,
                          param ? MF_MAX_PARAM_VALUE : MF_MAX_TAG_VALUE))
            return false;
    }
    return true;
}

void mf_log_batch(struct mf *m)
{
    if (m->req->body_len > MF_MAX_BATCH_BYTES) {
        mf_invalid(m, "Batched logging API requests must be at most %d bytes, got a request of "
                   "size %zu.", MF_MAX_BATCH_BYTES, m->req->body_len);
        return;
    }
    struct mf_jbatch jb;
    char err[256];
    int rc = mf_batch_parse((const char *)m->req->body, m->req->body_len, &jb, err, sizeof err);
    if (rc < 0) {
        if (rc == -EINVAL)
            mf_error(m, 400, "MALFORMED_REQUEST", "%s", err);
        else
            mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        mf_batch_free(&jb);
        return;
    }
    struct batch *b = calloc(1, sizeof *b);
    if (!b) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        goto out;
    }
    if (jb.run_id.kind == MF_JABSENT || jb.run_id.kind == MF_JNULL) {
        mf_invalid(m, "Missing value for required parameter 'run_id'. See the API docs for more "
                   "information about request parameters.");
        goto out;
    }
    if (jb.run_id.kind != MF_JSTR) {
        mf_invalid(m, "Invalid value for parameter 'run_id' supplied: expected a string");
        goto out;
    }
    b->hex = jb.run_id.s;
    b->nm = jb.nm;
    b->np = jb.np;
    b->nt = jb.nt;
    if (!mf_run_id(m, b->hex, b->id) ||
        !batch_limit(m, "metrics", MF_MAX_METRICS_PER_BATCH, b->nm) ||
        !batch_limit(m, "params", MF_MAX_PARAMS_TAGS_PER_BATCH, b->np) ||
        !batch_limit(m, "tags", MF_MAX_PARAMS_TAGS_PER_BATCH, b->nt) ||
        !batch_limit(m, "metrics, params, and tags", MF_MAX_ENTITIES_PER_BATCH,
                     b->nm + b->np + b->nt))
        goto out;
    b->m = malloc((b->nm + 1) * sizeof *b->m);
    b->pts = malloc((b->nm + 1) * sizeof *b->pts);
    b->params = malloc((b->np + 1) * sizeof *b->params);
    b->tags = malloc((b->nt + 1) * sizeof *b->tags);
    if (!b->m || !b->pts || !b->params || !b->tags) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->nm; i++)
        if (!batch_metric(m, &jb.metrics[i], &b->m[i]))
            goto out;
    if (batch_sort(b) < 0) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->nm; i++) /* grouped: each key once */
        if ((i == 0 || b->m[i].kid != b->m[i - 1].kid) && !mf_check_key(m, "metric", b->m[i].key))
            goto out;
    if (!batch_kvs(m, jb.params, b->np, true, b->params) ||
        !batch_kvs(m, jb.tags, b->nt, false, b->tags) || !params_unique(m, b->params, b->np))
        goto out;
    batch_write(m, b);
out:
    if (b) {
        free(b->m);
        free(b->pts);
        free(b->params);
        free(b->tags);
        free(b);
    }
    mf_batch_free(&jb);
}

void mf_log_metric(struct mf *m)
{
    struct batch b = {0};
    struct bm one;
    if (!mf_run_field(m, &b.hex) || !mf_run_id(m, b.hex, b.id))
        return;
    if (!json_object_get(m->p, "key")) {
        mf_invalid(m, "Missing value for required parameter 'key'. See the API docs for more "
                   "information about request parameters.");
        return;
    }
    if (!json_object_get(m->p, "value")) {
        mf_invalid(m, "Missing value for required parameter 'value'. See the API docs for more "
                   "information about request parameters.");
        return;
    }
    if (!read_metric(m, m->p, true, &one))
        return;
    b.m = &one;
    b.pts = &one.p;
    b.nm = 1;
    batch_sort(&b);
    batch_write(m, &b);
}

/* ---- reading --------------------------------------------------------------------------- */

#define MF_MAX_HISTORY_PAGE 25000

/* Reads run, key and the run's summary of it; false (request failed) when the run is not
 * there. *have false: the run has no such metric. */
static bool history_start(struct mf *m, struct store_txn *t, const char *hex, uint8_t id[16],
                          const char *key, struct store_metric_summary *sum, bool *have)
{
    struct store_run r;
    if (!mf_get_run(m, t, hex, &r))
        return false;
    memcpy(id, r.id, 16);
    int rc = store_metric_summary_get(t, id, key, sum);
    *have = rc == 0;
    if (rc < 0 && rc != -ENOENT && rc != -EINVAL && rc != -ENAMETOOLONG) {
        mf_store_error(m, rc, "metric history");
        return false;
    }
    return true;
}

struct hist_out {
    struct sync_buf *b;
    const char *key_json;
    const char *run_hex;
    size_t n;
};

static int hist_chunk(const struct store_point *pts, size_t n, void *arg)
{
    struct hist_out *h = arg;
    for (size_t i = 0; i < n; i++) {
        if (h->n++)
            sync_buf_put(h->b, ",", 1);
        sb_point(h->b, h->key_json, &pts[i], h->run_hex);
    }
    return h->b->err ? -ENOMEM : 0;
}

void mf_get_history(struct mf *m)
{
    const char *hex, *key, *token = NULL;
    int64_t max = 0;
    bool paged;
    if (!mf_run_field(m, &hex) || !mf_str(m, "metric_key", true, &key))
        return;
    paged = mf_i64(m, "max_results", false, &max);
    paged |= mf_str(m, "page_token", false, &token) && *token;
    if (m->failed)
        return;
    if (paged && !max)
        max = MF_MAX_HISTORY_PAGE;
    if (max < 0 || max > MF_MAX_HISTORY_PAGE) {
        mf_invalid(m, "max_results must be between 1 and %d, got %" PRId64, MF_MAX_HISTORY_PAGE,
                   max);
        return;
    }
    uint64_t off = 0;
    if (token && *token) {
        char *end;
        off = strtoull(token, &end, 10);
        if (*end || token[0] == '-') {
            mf_invalid(m, "Invalid page token '%.100s'", token);
            return;
        }
    }
    struct store_txn *t;
    uint8_t id[16];
    struct store_metric_summary sum;
    bool have;
    if (!mf_begin_read(m, &t))
        return;
    if (!history_start(m, t, hex, id, key, &sum, &have)) {
        store_abort(t);
        return;
    }
    struct sync_buf b = {0};
    char *kj = key_json(key);
    struct hist_out h = {.b = &b, .key_json = kj ? kj : "\"\""};
    sync_buf_puts(&b, "{\"metrics\":[");
    int rc = 0;
    uint64_t next = 0;
    if (have && !paged) {
        rc = store_metric_history(t, id, key, hist_chunk, &h);
    } else if (have && off < sum.count) {
        size_t n = (size_t)(sum.count - off < (uint64_t)max ? sum.count - off : (uint64_t)max);
        struct store_point *pts = malloc(n * sizeof *pts);
        rc = pts ? store_metric_range(t, id, key, off, n, pts) : -ENOMEM;
        if (rc == 0)
            hist_chunk(pts, n, &h);
        free(pts);
        if (off + n < sum.count)
            next = off + n;
    }
    store_abort(t);
    free(kj);
    if (rc < 0) {
        sync_buf_free(&b);
        mf_store_error(m, rc, "metric history");
        return;
    }
    if (h.n == 0) { /* protobuf's JSON leaves an empty list out */
        b.len = 0;
        sync_buf_puts(&b, "{");
    } else {
        sync_buf_puts(&b, "]");
    }
    if (next) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s\"next_page_token\":\"%" PRIu64 "\"", h.n ? "," : "", next);
        sync_buf_puts(&b, buf);
    }
    sync_buf_puts(&b, "}");
    mf_respond_buf(m, &b);
}

/* ---- get-history-bulk-interval ------------------------------------------------------------
 * MLflow's UI asks for one metric of up to 100 runs, sampled to at most max_results steps
 * (default and most 2500) over [start_step, end_step]: the steps are the union of the runs'
 * steps in the range, sampled evenly (first and last kept), and every point of each run at a
 * sampled step is returned, by run (in the order given), then step, then timestamp. */

#define MF_BULK_MAX_RUNS 100
#define MF_BULK_MAX_RESULTS 2500

struct pts {
    struct store_point *p;
    size_t n, cap;
    int64_t lo, hi;
};

static int collect(const struct store_point *p, size_t n, void *arg)
{
    struct pts *v = arg;
    for (size_t i = 0; i < n; i++) {
        if (p[i].step < v->lo || p[i].step > v->hi)
            continue;
        if (v->n == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 1024;
            struct store_point *q = realloc(v->p, cap * sizeof *q);
            if (!q)
                return -ENOMEM;
            v->p = q;
            v->cap = cap;
        }
        v->p[v->n++] = p[i];
    }
    return 0;
}

static int cmp_step_ts(const void *a, const void *b)
{
    const struct store_point *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return (x->ts_ms > y->ts_ms) - (x->ts_ms < y->ts_ms);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool in_sorted(const int64_t *s, size_t n, int64_t v)
{
    return bsearch(&v, s, n, sizeof *s, cmp_i64) != NULL;
}

void mf_get_history_bulk(struct mf *m)
{
    const char *key;
    int64_t max = MF_BULK_MAX_RESULTS, lo = INT64_MIN, hi = INT64_MAX;
    json_t *ids = mf_array(m, "run_ids");
    if (!ids || !mf_str(m, "metric_key", true, &key))
        return;
    mf_i64(m, "max_results", false, &max);
    bool has_lo = mf_i64(m, "start_step", false, &lo), has_hi = mf_i64(m, "end_step", false, &hi);
    if (m->failed)
        return;
    size_t nruns = json_array_size(ids);
    if (nruns == 0) {
        mf_invalid(m, "GetMetricHistoryBulkInterval request must specify at least one run_id.");
        return;
    }
    if (nruns > MF_BULK_MAX_RUNS) {
        mf_invalid(m, "GetMetricHistoryBulkInterval request cannot specify more than %d "
                   "run_ids. Received %zu run_ids.", MF_BULK_MAX_RUNS, nruns);
        return;
    }
    if (has_lo != has_hi) {
        mf_invalid(m, "If either start step or end step are specified, both must be specified.");
        return;
    }
    if (lo > hi) {
        mf_invalid(m, "end_step must be greater than start_step. Found start_step=%" PRId64
                   " and end_step=%" PRId64 ".", lo, hi);
        return;
    }
    if (max < 1 || max > MF_BULK_MAX_RESULTS) {
        mf_invalid(m, "max_results must be between 1 and %d.", MF_BULK_MAX_RESULTS);
        return;
    }
    struct store_txn *t;
    if (!mf_begin_read(m, &t))
        return;
    struct pts *per = calloc(nruns, sizeof *per);
    char (*hexes)[33] = calloc(nruns, sizeof *hexes);
    int64_t *steps = NULL;
    size_t nsteps = 0;
    int rc = per && hexes ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < nruns; i++) {
        const char *hex = json_string_value(json_array_get(ids, i));
        struct store_metric_summary sum;
        uint8_t id[16];
        bool have;
        if (!hex) {
            mf_invalid(m, "run_ids must be strings");
            break;
        }
        snprintf(hexes[i], sizeof hexes[i], "%s", hex);
        if (!history_start(m, t, hex, id, key, &sum, &have))
            break;
        per[i].lo = lo;
        per[i].hi = hi;
        if (have && (rc = store_metric_history(t, id, key, collect, &per[i])) == 0)
            qsort(per[i].p, per[i].n, sizeof *per[i].p, cmp_step_ts);
        nsteps += per[i].n;
    }
    store_abort(t);
    /* the union of steps, sampled */
    if (rc == 0 && !m->failed && nsteps && !(steps = malloc(nsteps * sizeof *steps)))
        rc = -ENOMEM;
    size_t ns = 0;
    if (steps) {
        for (size_t i = 0; i < nruns; i++)
            for (size_t j = 0; j < per[i].n; j++)
                steps[ns++] = per[i].p[j].step;
        qsort(steps, ns, sizeof *steps, cmp_i64);
        size_t u = 0;
        for (size_t j = 0; j < ns; j++)
            if (!u || steps[j] != steps[u - 1])
                steps[u++] = steps[j];
        ns = u;
        if (ns > (size_t)max) {
            size_t k = (size_t)max;
            for (size_t j = 0; j < k; j++) /* evenly, the first and the last included */
                steps[j] = steps[k == 1 ? 0 : j * (ns - 1) / (k - 1)];
            ns = k;
        }
    }
    if (rc == 0 && !m->failed) {
        struct sync_buf b = {0};
        char *kj = key_json(key);
        struct hist_out h = {.b = &b, .key_json = kj ? kj : "\"\""};
        sync_buf_puts(&b, "{\"metrics\":[");
        for (size_t i = 0; i < nruns; i++) {
            h.run_hex = hexes[i];
            for (size_t j = 0; j < per[i].n; j++)
                if (in_sorted(steps, ns, per[i].p[j].step))
                    hist_chunk(&per[i].p[j], 1, &h);
        }
        if (h.n == 0) {
            b.len = 0;
            sync_buf_puts(&b, "{");
        } else {
            sync_buf_puts(&b, "]");
        }
        sync_buf_puts(&b, "}");
        free(kj);
        mf_respond_buf(m, &b);
    } else if (rc < 0 && !m->failed) {
        mf_store_error(m, rc, "metric history");
    }
    for (size_t i = 0; per && i < nruns; i++)
        free(per[i].p);
    free(per);
    free(hexes);
    free(steps);
}
