/* query.c — the "query" scenario: how fast the store answers what the UI and the API ask.
 *
 * It builds its own scratch store: 10,000 runs (1,000 with --quick), each with 10 params, 3
 * tags and 5 metrics of 10 points, plus one run whose metric "loss" has 1,000,000 points
 * (100,000 with --quick). Then, each timed 7 times in a fresh read transaction (median, min
 * and max printed, in ms):
 *   search-10k       store_search_runs with a 3-clause filter over every run
 *                    (metrics.acc > 0.9 and params.lr = '0.01' and tags.team LIKE 'vi%')
 *   history-1m       the full history of the 1M-point metric (store_metric_history)
 *   history-1m-view  its 2,000-point view (store_metric_view)
 * The store lives in $TMPDIR or /tmp: a warm page cache, as a server's would be. Targets
 * (issue 7): search <= 50 ms, view <= 20 ms.
 */
#include "bench.h"
#include "search.h"
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q_REPS 7

static uint64_t q_rng = 0x2545F4914F6CDD1Dull;
static uint64_t q_rand(void)
{
    q_rng ^= q_rng << 13;
    q_rng ^= q_rng >> 7;
    q_rng ^= q_rng << 17;
    return q_rng;
}

static void q_run_id(uint8_t id[16], uint32_t n)
{
    memset(id, 0x5a, 16);
    id[12] = (uint8_t)(n >> 24);
    id[13] = (uint8_t)(n >> 16);
    id[14] = (uint8_t)(n >> 8);
    id[15] = (uint8_t)n;
}

static int q_fill_run(struct store_txn *t, uint32_t n, uint64_t exp)
{
    static const char *const lrs[] = {"0.1", "0.01", "0.001"};
    static const char *const teams[] = {"vision", "vitals", "nlp", "speech"};
    static const char *const metrics[] = {"acc", "loss", "f1", "precision", "recall"};
    struct store_run r = {.experiment_id = exp, .status = STORE_RUN_FINISHED,
                          .start_ms = 1700000000000 + n, .end_ms = 1700000100000 + n};
    q_run_id(r.id, n);
    snprintf(r.name, sizeof r.name, "run-%" PRIu32, n);
    snprintf(r.user, sizeof r.user, "bench");
    int rc = store_run_start(t, &r);
    char k[32], v[32];
    for (int i = 0; rc >= 0 && i < 10; i++) {
        snprintf(k, sizeof k, i == 0 ? "lr" : "param_%d", i);
        snprintf(v, sizeof v, "%" PRIu64, q_rand() % 1000);
        rc = store_param_put(t, r.id, k, i == 0 ? lrs[q_rand() % 3] : v);
    }
    if (rc >= 0)
        rc = store_tag_set(t, r.id, "team", teams[q_rand() % 4]);
    if (rc >= 0)
        rc = store_tag_set(t, r.id, "dataset", "imagenet");
    if (rc >= 0)
        rc = store_tag_set(t, r.id, "mlflow.user", "bench");
    for (int m = 0; rc >= 0 && m < 5; m++) {
        struct store_point pts[10];
        for (int i = 0; i < 10; i++)
            pts[i] = (struct store_point){i, r.start_ms + i, (double)(q_rand() % 10000) / 1e4};
        rc = store_metric_append(t, r.id, metrics[m], pts, 10);
    }
    return rc < 0 ? rc : 0;
}

static int q_build(struct store *s, uint32_t runs, uint64_t big_points, uint8_t big[16])
{
    struct store_txn *t;
    uint64_t exp_id = 0;
    int rc = 0;
    for (uint32_t n = 0; rc == 0 && n < runs; n += 500) {
        if ((rc = store_begin(s, true, &t)) < 0)
            return rc;
        if (n == 0)
            rc = store_experiment_ensure(t, "bench-query", 1700000000000, &exp_id);
        for (uint32_t i = n; rc == 0 && i < n + 500 && i < runs; i++)
            rc = q_fill_run(t, i, exp_id);
        rc = rc < 0 ? (store_abort(t), rc) : store_commit(t);
    }
    /* the long series: a noisy decaying loss, logged in chunks as a trainer would */
    q_run_id(big, runs);
    struct store_point *pts = malloc(10000 * sizeof *pts);
    if (!pts)
        return -ENOMEM;
    for (uint64_t done = 0; rc == 0 && done < big_points;) {
        if ((rc = store_begin(s, true, &t)) < 0)
            break;
        if (done == 0) {
            struct store_run r = {.experiment_id = exp_id, .status = STORE_RUN_RUNNING,
                                  .start_ms = 1700000000000};
            memcpy(r.id, big, 16);
            snprintf(r.name, sizeof r.name, "long-run");
            rc = store_run_start(t, &r);
        }
        for (int c = 0; rc == 0 && c < 10 && done < big_points; c++) {
            size_t n = big_points - done < 10000 ? (size_t)(big_points - done) : 10000;
            for (size_t i = 0; i < n; i++) {
                double x = (double)(done + i);
                pts[i] = (struct store_point){(int64_t)(done + i), 1700000000000 + (int64_t)x * 5,
                                              2.0 * exp(-x / 3e5) + (double)(q_rand() % 1000) / 1e4};
            }
            rc = store_metric_append(t, big, "loss", pts, n);
            done += n;
        }
        rc = rc < 0 ? (store_abort(t), rc) : store_commit(t);
    }
    free(pts);
    return rc;
}

static int q_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void q_report(const char *scenario, double *ms, const char *what, uint64_t n,
                     const struct load_probe *lp)
{
    qsort(ms, Q_REPS, sizeof *ms, q_cmp);
    jl_begin(scenario);
    jl_f("ms", ms[Q_REPS / 2], 3);
    jl_f("min_ms", ms[0], 3);
    jl_f("max_ms", ms[Q_REPS - 1], 3);
    jl_i64("reps", Q_REPS);
    jl_u64(what, n);
    load_report(lp); /* figures taken while other programs ran are not figures */
    jl_end();
}

struct q_sum {
    uint64_t n;
    double sum;
};

static int q_hist_cb(const struct store_point *pts, size_t n, void *arg)
{
    struct q_sum *s = arg;
    for (size_t i = 0; i < n; i++)
        s->sum += pts[i].value;
    s->n += n;
    return 0;
}

static int q_time_search(struct store *s, uint32_t runs)
{
    double ms[Q_REPS];
    size_t matches = 0;
    struct load_probe lp;
    load_begin(&lp);
    for (int r = 0; r < Q_REPS; r++) {
        struct store_txn *t;
        char err[256] = "";
        struct store_run_query q = {
            .filter = "metrics.acc > 0.9 and params.lr = '0.01' and tags.team LIKE 'vi%'",
            .max_results = STORE_SEARCH_MAX_MAX};
        struct store_run_page page = {0};
        uint64_t t0 = now_ns();
        int rc = store_begin(s, false, &t);
        if (rc == 0) {
            rc = store_search_runs(t, &q, &page, err, sizeof err);
            store_abort(t);
        }
        ms[r] = (double)(now_ns() - t0) / 1e6;
        matches = page.n;
        store_run_page_free(&page);
        if (rc < 0) {
            warnx_("query: search failed: %s %s", store_strerror(rc), err);
            return 1;
        }
    }
    /* acc > 0.9 (~10%), lr 0.01 (1/3), team vision or vitals (1/2): ~1.7% of the runs */
    if (matches == 0 || matches > runs / 10) {
        warnx_("query: the search found %zu of %" PRIu32 " runs, not about 1.7%%", matches, runs);
        return 1;
    }
    q_report(runs >= 10000 ? "search-10k" : "search-1k", ms, "matches", matches, &lp);
    return 0;
}

static int q_time_history(struct store *s, const uint8_t big[16], uint64_t points, bool quick)
{
    double ms[Q_REPS];
    struct load_probe lp;
    load_begin(&lp);
    for (int r = 0; r < Q_REPS; r++) {
        struct store_txn *t;
        struct q_sum sum = {0};
        uint64_t t0 = now_ns();
        int rc = store_begin(s, false, &t);
        if (rc == 0) {
            rc = store_metric_history(t, big, "loss", q_hist_cb, &sum);
            store_abort(t);
        }
        ms[r] = (double)(now_ns() - t0) / 1e6;
        if (rc < 0 || sum.n != points || !isfinite(sum.sum)) {
            warnx_("query: the history gave %" PRIu64 " of %" PRIu64 " points: %s", sum.n,
                   points, rc < 0 ? store_strerror(rc) : "wrong count");
            return 1;
        }
    }
    q_report(quick ? "history-100k" : "history-1m", ms, "points", points, &lp);

    uint64_t kept = 0;
    load_begin(&lp);
    for (int r = 0; r < Q_REPS; r++) {
        struct store_txn *t;
        struct store_metric_view v = {0};
        uint64_t t0 = now_ns();
        int rc = store_begin(s, false, &t);
        if (rc == 0) {
            rc = store_metric_view(t, big, "loss", INT64_MIN, INT64_MAX, 2000, &v);
            store_abort(t);
        }
        ms[r] = (double)(now_ns() - t0) / 1e6;
        kept = v.n;
        bool ok = rc == 0 && v.count == points && v.n > 0 && v.n <= 2000;
        store_metric_view_free(&v);
        if (!ok) {
            warnx_("query: the view failed: %s", rc < 0 ? store_strerror(rc) : "wrong shape");
            return 1;
        }
    }
    q_report(quick ? "history-100k-view" : "history-1m-view", ms, "points", kept, &lp);
    return 0;
}

int bench_query(const struct bench_opts *o)
{
    uint32_t runs = o->quick ? 1000 : 10000;
    uint64_t points = o->ops ? o->ops : o->quick ? 100000 : 1000000;
    char dir[512];
    int rc = scratch_store_dir(dir, sizeof dir, "query");
    if (rc < 0) {
        warnx_("query: cannot make a scratch folder: %s", strerror(-rc));
        return 1;
    }
    struct store *s;
    if ((rc = store_open(&s, dir, STORE_NOSYNC, 0)) < 0) {
        warnx_("query: cannot open a store in %s: %s", dir, store_strerror(rc));
        scratch_remove(dir);
        return 1;
    }
    uint8_t big[16];
    uint64_t t0 = now_ns();
    int fail = 0;
    if ((rc = q_build(s, runs, points, big)) < 0) {
        warnx_("query: cannot build the store: %s", store_strerror(rc));
        fail = 1;
    } else {
        jl_begin("query-build");
        jl_u64("runs", runs + 1);
        jl_u64("long_points", points);
        jl_f("seconds", (double)(now_ns() - t0) / 1e9, 2);
        jl_end();
        fail = q_time_search(s, runs) | q_time_history(s, big, points, o->quick);
    }
    store_close(s);
    scratch_remove(dir);
    return fail;
}
