/* metrics_view.c — GET/POST /api/sidetrack/v1/metrics/view: the series a chart draws.
 *
 *   ?run_id=A&run_id=B&key=loss&key=acc&points=2000[&start_step=S&end_step=E]
 *   (POST: the same fields as a JSON object; run_id and key as arrays or single strings)
 *   -> {"series":[{"run_id":"A","key":"loss","count":N,"downsampled":true,
 *                  "steps":[...],"timestamps":[...],"values":[...]}, ...]}
 *
 * One series per (run, key), runs in the order given, then keys. count is the number of
 * points in the step range; when it is more than `points` the series is downsampled by
 * store_metric_view() (min/max per step bucket, in step order), else it is every point in
 * logged order. A value that is NaN or infinite is null: a chart draws a gap. A run without
 * the metric gives count 0 and empty arrays; a run that does not exist fails the request
 * (RESOURCE_DOES_NOT_EXIST), as do bad fields (INVALID_PARAMETER_VALUE).
 *
 * The answer can hold millions of numbers (100 runs × 100 keys × N): it is written as text
 * straight into one buffer, never built as a jansson tree. All series are read in one read
 * transaction, so they are one consistent snapshot.
 */
#include "metrics_view.h"

#include "mlflow_internal.h"
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MV_PATH "/api/sidetrack/v1/metrics/view"
#define MV_MAX_POINTS 100000
#define MV_DEFAULT_POINTS 2000
#define MV_MAX_RUNS 100
#define MV_MAX_KEYS 100

/* Appends the shortest text that reads back as v ("%.17g" is exact but long; most values
 * round-trip with fewer digits), or null for NaN and infinities. */
static void mv_double(struct sync_buf *b, double v)
{
    if (!isfinite(v)) {
        sync_buf_put(b, "null", 4);
        return;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v)
        n = snprintf(buf, sizeof buf, "%.17g", v);
    sync_buf_put(b, buf, (size_t)n);
}

static void mv_i64(struct sync_buf *b, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRId64, v);
    sync_buf_put(b, buf, (size_t)n);
}

static void mv_series(struct sync_buf *b, const char *hex, const char *key_json,
                      const struct store_metric_view *v)
{
    sync_buf_printf(b, "{\"run_id\":\"%s\",\"key\":", hex);
    sync_buf_puts(b, key_json);
    sync_buf_printf(b, ",\"count\":%" PRIu64 ",\"downsampled\":%s,\"steps\":[", v->count,
                    v->downsampled ? "true" : "false");
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            sync_buf_put(b, ",", 1);
        mv_i64(b, v->pts[i].step);
    }
    sync_buf_puts(b, "],\"timestamps\":[");
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            sync_buf_put(b, ",", 1);
        mv_i64(b, v->pts[i].ts_ms);
    }
    sync_buf_puts(b, "],\"values\":[");
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            sync_buf_put(b, ",", 1);
        mv_double(b, v->pts[i].value);
    }
    sync_buf_puts(b, "]}");
}

/* The strings of a repeated field, checked: 1 to max of them, each a non-empty string. */
static json_t *mv_strings(struct mf *m, const char *name, size_t max)
{
    json_t *one = m->p ? json_object_get(m->p, name) : NULL;
    if (json_is_string(one)) { /* a single value, in a POST too: as a one-element list */
        json_t *a = json_array();
        json_array_append(a, one);
        json_object_set_new(m->p, name, a);
    }
    json_t *a = mf_array(m, name);
    if (!a)
        return NULL;
    size_t n = json_array_size(a);
    if (n == 0) {
        mf_invalid(m, "Missing value for required parameter '%s'", name);
        return NULL;
    }
    if (n > max) {
        mf_invalid(m, "At most %zu values of '%s' may be given, got %zu", max, name, n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_string(v) || json_string_length(v) == 0) {
            mf_invalid(m, "Each value of '%s' must be a non-empty string", name);
            return NULL;
        }
    }
    return a;
}

static char *mv_key_json(const char *key)
{
    json_t *s = mf_jstr(key);
    char *out = json_dumps(s, JSON_ENCODE_ANY);
    json_decref(s);
    return out;
}

struct mv_req {
    json_t *runs, *keys;
    int64_t points, start, end;
};

static bool mv_parse(struct mf *m, struct mv_req *q)
{
    q->points = MV_DEFAULT_POINTS;
    q->start = INT64_MIN;
    q->end = INT64_MAX;
    if (!(q->runs = mv_strings(m, "run_id", MV_MAX_RUNS)) ||
        !(q->keys = mv_strings(m, "key", MV_MAX_KEYS)))
        return false;
    mf_i64(m, "points", false, &q->points);
    mf_i64(m, "start_step", false, &q->start);
    mf_i64(m, "end_step", false, &q->end);
    if (m->failed)
        return false;
    if (q->points < 1 || q->points > MV_MAX_POINTS) {
        mf_invalid(m, "points must be between 1 and %d, got %" PRId64, MV_MAX_POINTS, q->points);
        return false;
    }
    if (q->start > q->end) {
        mf_invalid(m, "start_step (%" PRId64 ") must not be greater than end_step (%" PRId64 ")",
                   q->start, q->end);
        return false;
    }
    for (size_t i = 0; i < json_array_size(q->keys); i++) {
        const char *key = json_string_value(json_array_get(q->keys, i));
        if (strlen(key) > MF_MAX_KEY) {
            mf_invalid(m, "Metric key '%.100s' is longer than %d characters", key, MF_MAX_KEY);
            return false;
        }
    }
    return true;
}

static void mv_handle(struct mf *m)
{
    struct mv_req q;
    if (!mv_parse(m, &q))
        return;
    size_t nr = json_array_size(q.runs), nk = json_array_size(q.keys);
    uint8_t (*ids)[16] = malloc(nr * sizeof *ids);
    char **kj = calloc(nk, sizeof *kj);
    struct store_txn *t = NULL;
    struct sync_buf b = {0};
    if (!ids || !kj) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        goto out;
    }
    for (size_t k = 0; k < nk; k++)
        if (!(kj[k] = mv_key_json(json_string_value(json_array_get(q.keys, k))))) {
            mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
            goto out;
        }
    if (!mf_begin_read(m, &t))
        goto out;
    /* every run is checked before anything is written: an unknown one fails the request */
    for (size_t r = 0; r < nr; r++) {
        struct store_run run;
        if (!mf_get_run(m, t, json_string_value(json_array_get(q.runs, r)), &run))
            goto out;
        memcpy(ids[r], run.id, 16);
    }
    sync_buf_puts(&b, "{\"series\":[");
    for (size_t r = 0; r < nr; r++) {
        char hex[33];
        store_run_id_hex(ids[r], hex);
        for (size_t k = 0; k < nk; k++) {
            const char *key = json_string_value(json_array_get(q.keys, k));
            struct store_metric_view v;
            int rc = store_metric_view(t, ids[r], key, q.start, q.end, (size_t)q.points, &v);
            if (rc == -ENOENT || rc == -EINVAL || rc == -ENAMETOOLONG) {
                v = (struct store_metric_view){0}; /* no such metric: an empty series */
            } else if (rc < 0) {
                mf_store_error(m, rc, "cannot read a metric history");
                goto out;
            }
            if (r || k)
                sync_buf_put(&b, ",", 1);
            mv_series(&b, hex, kj[k], &v);
            store_metric_view_free(&v);
        }
    }
    sync_buf_puts(&b, "]}");
    store_abort(t);
    t = NULL;
    mf_respond_buf(m, &b);
    b = (struct sync_buf){0};
out:
    store_abort(t);
    sync_buf_free(&b);
    if (kj)
        for (size_t k = 0; k < nk; k++)
            free(kj[k]);
    free(kj);
    free(ids);
}

int metrics_view_register(struct http_server *h, struct store *s)
{
    int rc = mf_route_add(h, "GET", MV_PATH, HTTP_EXACT, mv_handle, 0, s);
    if (rc == 0)
        rc = mf_route_add(h, "POST", MV_PATH, HTTP_EXACT, mv_handle, 0, s);
    return rc;
}
