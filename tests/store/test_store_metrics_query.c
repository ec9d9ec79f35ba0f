/* test_store_metrics_query.c — metric queries for charts (store_metric_steps,
 * store_metric_view): step ranges in logged order, views that keep minima, maxima and gaps,
 * small series returned whole, unknown series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "fixture.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return xorshift64(&rng); }

static void append(struct store *s, const uint8_t run[16], const char *key,
                   const struct store_point *pts, size_t n)
{
    struct store_txn *t;
    assert_int_equal(store_begin(s, true, &t), 0);
    assert_int_equal(store_metric_append(t, run, key, pts, n), 0);
    assert_int_equal(store_commit(t), 0);
}

static bool same_point(const struct store_point *a, const struct store_point *b)
{
    return a->step == b->step && a->ts_ms == b->ts_ms && dbl_bits(a->value) == dbl_bits(b->value);
}

static void view(struct store *s, const uint8_t run[16], const char *key, int64_t lo,
                 int64_t hi, size_t max, struct store_metric_view *v)
{
    struct store_txn *t;
    assert_int_equal(store_begin(s, false, &t), 0);
    assert_int_equal(store_metric_view(t, run, key, lo, hi, max, v), 0);
    store_abort(t);
}

/* Every point of a view is a point of the series, and they come in step order. */
static void assert_view_sound(const struct store_metric_view *v, const struct store_point *all,
                              size_t nall, size_t max)
{
    assert_true(v->n <= max);
    for (size_t i = 0; i < v->n; i++) {
        if (i > 0)
            assert_true(v->pts[i - 1].step <= v->pts[i].step);
        bool found = false;
        for (size_t j = 0; j < nall && !found; j++)
            found = same_point(&v->pts[i], &all[j]);
        assert_true(found);
    }
}

static void test_steps_range_in_logged_order(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 1, 1);
    enum { N = 20000 };
    struct store_point *pts = malloc(N * sizeof *pts);
    for (size_t i = 0; i < N; i++) /* steps out of order, repeated, negative */
        pts[i] = (struct store_point){(int64_t)(rnd() % 5000) - 1000, (int64_t)i, (double)i};
    append(f->s, run, "loss", pts, N);

    struct store_txn *t;
    assert_int_equal(store_begin(f->s, false, &t), 0);
    struct point_collect c = {0};
    assert_int_equal(store_metric_steps(t, run, "loss", 100, 300, collect_points, &c), 0);
    size_t k = 0;
    for (size_t i = 0; i < N; i++) {
        if (pts[i].step < 100 || pts[i].step > 300)
            continue;
        assert_true(k < c.n);
        assert_true(same_point(&c.pts[k], &pts[i]));
        k++;
    }
    assert_int_equal(c.n, k);

    c.n = 0;
    assert_int_equal(store_metric_steps(t, run, "loss", INT64_MIN, INT64_MAX, collect_points, &c), 0);
    assert_int_equal(c.n, N);
    assert_memory_equal(c.pts, pts, N * sizeof *pts);

    c.n = 0; /* a range with nothing in it: no points, no error */
    assert_int_equal(store_metric_steps(t, run, "loss", 10000, 20000, collect_points, &c), 0);
    assert_int_equal(c.n, 0);
    store_abort(t);
    free(c.pts);
    free(pts);
}

static void test_view_keeps_a_spike_in_a_million_points(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 2, 1);
    enum { N = 1000000, SPIKE = 777777, DIP = 123457 };
    struct store_point *pts = malloc(N * sizeof *pts);
    for (size_t i = 0; i < N; i++)
        pts[i] = (struct store_point){(int64_t)i, 1700000000000 + (int64_t)i,
                                      1.0 + 0.001 * (double)(rnd() % 1000)};
    pts[SPIKE].value = 1e6;
    pts[DIP].value = -1e6;
    append(f->s, run, "loss", pts, N);

    struct store_metric_view v;
    view(f->s, run, "loss", INT64_MIN, INT64_MAX, 100, &v);
    assert_int_equal(v.count, N);
    assert_true(v.downsampled);
    assert_true(v.n <= 100);
    assert_true(v.n >= 50); /* 25 buckets, first and last of each at least */
    bool spike = false, dip = false;
    for (size_t i = 0; i < v.n; i++) {
        spike |= same_point(&v.pts[i], &pts[SPIKE]);
        dip |= same_point(&v.pts[i], &pts[DIP]);
        if (i > 0)
            assert_true(v.pts[i - 1].step < v.pts[i].step);
    }
    assert_true(spike);
    assert_true(dip);
    /* the ends of the series are kept too */
    assert_true(same_point(&v.pts[0], &pts[0]));
    assert_true(same_point(&v.pts[v.n - 1], &pts[N - 1]));
    store_metric_view_free(&v);

    /* a step range of the same series: only its points, its count */
    view(f->s, run, "loss", 700000, 800000, 400, &v);
    assert_int_equal(v.count, 100001);
    assert_true(v.downsampled && v.n <= 400);
    spike = false;
    for (size_t i = 0; i < v.n; i++) {
        assert_true(v.pts[i].step >= 700000 && v.pts[i].step <= 800000);
        spike |= same_point(&v.pts[i], &pts[SPIKE]);
    }
    assert_true(spike);
    assert_true(v.pts[0].step == 700000 && v.pts[v.n - 1].step == 800000);
    store_metric_view_free(&v);
    free(pts);
}

static void test_view_keeps_nan_and_inf_as_gaps(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 3, 1);
    enum { N = 10000 };
    struct store_point *pts = malloc(N * sizeof *pts);
    for (size_t i = 0; i < N; i++)
        pts[i] = (struct store_point){(int64_t)i * 10, (int64_t)i, (double)(i % 7)};
    const size_t gaps[] = {1234, 5000, 8765};
    pts[gaps[0]].value = NAN;
    pts[gaps[1]].value = INFINITY;
    pts[gaps[2]].value = -INFINITY;
    append(f->s, run, "acc", pts, N);

    struct store_metric_view v;
    view(f->s, run, "acc", INT64_MIN, INT64_MAX, 200, &v);
    assert_int_equal(v.count, N);
    assert_true(v.downsampled);
    assert_view_sound(&v, pts, N, 200);
    for (size_t g = 0; g < 3; g++) {
        bool found = false;
        for (size_t i = 0; i < v.n; i++)
            found |= same_point(&v.pts[i], &pts[gaps[g]]);
        assert_true(found);
    }
    /* infinities are gaps, not the bucket's extremes: min and max stay finite values */
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < v.n; i++)
        if (isfinite(v.pts[i].value)) {
            lo = fmin(lo, v.pts[i].value);
            hi = fmax(hi, v.pts[i].value);
        }
    assert_true(lo == 0.0 && hi == 6.0);
    store_metric_view_free(&v);

    /* a tiny view of a series full of gaps still fits its bound */
    for (size_t i = 0; i < N; i += 3)
        pts[i].value = NAN;
    run_id(run, 3, 2);
    append(f->s, run, "acc", pts, N);
    for (size_t max = 1; max <= 12; max++) {
        view(f->s, run, "acc", INT64_MIN, INT64_MAX, max, &v);
        assert_int_equal(v.count, N);
        assert_true(v.n >= 1);
        assert_view_sound(&v, pts, N, max);
        store_metric_view_free(&v);
    }
    free(pts);
}

static void test_view_of_a_small_series_is_the_series(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 4, 1);
    struct store_point pts[50];
    for (size_t i = 0; i < 50; i++) /* logged out of step order: kept as logged */
        pts[i] = (struct store_point){(int64_t)(49 - i), (int64_t)i, i == 7 ? NAN : (double)i};
    append(f->s, run, "lr", pts, 50);
    struct store_metric_view v;
    view(f->s, run, "lr", INT64_MIN, INT64_MAX, 100, &v);
    assert_int_equal(v.count, 50);
    assert_false(v.downsampled);
    assert_int_equal(v.n, 50);
    for (size_t i = 0; i < 50; i++)
        assert_true(same_point(&v.pts[i], &pts[i]));
    store_metric_view_free(&v);

    view(f->s, run, "lr", INT64_MIN, INT64_MAX, 50, &v); /* exactly N */
    assert_false(v.downsampled);
    assert_int_equal(v.n, 50);
    store_metric_view_free(&v);

    view(f->s, run, "lr", 10, 19, 100, &v);
    assert_int_equal(v.count, 10);
    assert_int_equal(v.n, 10);
    assert_int_equal(v.pts[0].step, 19);
    store_metric_view_free(&v);
}

/* Steps that go back and forth defeat the header guess: the view is still exact. */
static void test_view_of_unordered_steps_keeps_extremes(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 5, 1);
    enum { N = 50000 };
    struct store_point *pts = malloc(N * sizeof *pts);
    double lo = INFINITY, hi = -INFINITY;
    int64_t smin = INT64_MAX, smax = INT64_MIN;
    for (size_t i = 0; i < N; i++) {
        pts[i] = (struct store_point){(int64_t)(rnd() % 1000000) - 500000, (int64_t)i,
                                      (double)(int64_t)(rnd() % 2000001) - 1e6};
        lo = fmin(lo, pts[i].value);
        hi = fmax(hi, pts[i].value);
        smin = pts[i].step < smin ? pts[i].step : smin;
        smax = pts[i].step > smax ? pts[i].step : smax;
    }
    append(f->s, run, "x", pts, N);
    struct store_metric_view v;
    view(f->s, run, "x", INT64_MIN, INT64_MAX, 1000, &v);
    assert_int_equal(v.count, N);
    assert_true(v.downsampled);
    assert_view_sound(&v, pts, N, 1000);
    double vlo = INFINITY, vhi = -INFINITY;
    for (size_t i = 0; i < v.n; i++) {
        vlo = fmin(vlo, v.pts[i].value);
        vhi = fmax(vhi, v.pts[i].value);
    }
    assert_true(vlo == lo && vhi == hi);
    assert_int_equal(v.pts[0].step, smin);
    assert_int_equal(v.pts[v.n - 1].step, smax);
    /* the range is used well: most buckets have points, so the view is not tiny */
    assert_true(v.n > 500);
    store_metric_view_free(&v);
    free(pts);
}

/* Growing steps take a fast path (runs of a bucket at once); the same points logged in
 * reverse take the point-by-point one: both views must be the same points. */
static void test_view_same_whatever_the_logged_order(void **state)
{
    struct fx *f = *state;
    uint8_t fwd[16], rev[16];
    run_id(fwd, 7, 1);
    run_id(rev, 7, 2);
    enum { N = 30011 };
    struct store_point *pts = malloc(N * sizeof *pts), *back = malloc(N * sizeof *back);
    for (size_t i = 0; i < N; i++) {
        pts[i] = (struct store_point){(int64_t)i * 3 + 17, (int64_t)i,
                                      (double)(rnd() >> 11) / 9007199254740992.0};
        if (i % 997 == 5)
            pts[i].value = NAN;
    }
    for (size_t i = 0; i < N; i++)
        back[i] = pts[N - 1 - i];
    append(f->s, fwd, "m", pts, N);
    append(f->s, rev, "m", back, N);
    const size_t sizes[] = {3, 4, 7, 100, 999, 2000, 20000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        struct store_metric_view a, b;
        view(f->s, fwd, "m", 40, 80000, sizes[k], &a);
        view(f->s, rev, "m", 40, 80000, sizes[k], &b);
        assert_int_equal(a.count, b.count);
        assert_true(a.downsampled && b.downsampled);
        assert_int_equal(a.n, b.n);
        for (size_t i = 0; i < a.n; i++)
            assert_true(same_point(&a.pts[i], &b.pts[i]));
        assert_view_sound(&a, pts, N, sizes[k]);
        store_metric_view_free(&a);
        store_metric_view_free(&b);
    }
    free(pts);
    free(back);
}

static void test_unknown_and_empty_series(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], other[16];
    run_id(run, 6, 1);
    run_id(other, 6, 2);
    struct store_point p = {5, 1, 1.5};
    append(f->s, run, "loss", &p, 1);

    struct store_txn *t;
    assert_int_equal(store_begin(f->s, false, &t), 0);
    struct store_metric_view v;
    assert_int_equal(store_metric_view(t, run, "nope", INT64_MIN, INT64_MAX, 10, &v), -ENOENT);
    assert_int_equal(store_metric_view(t, other, "loss", INT64_MIN, INT64_MAX, 10, &v), -ENOENT);
    struct point_collect c = {0};
    assert_int_equal(store_metric_steps(t, other, "loss", 0, 10, collect_points, &c), -ENOENT);
    assert_int_equal(store_metric_view(t, run, "loss", 10, 5, 10, &v), -EINVAL);
    assert_int_equal(store_metric_view(t, run, "loss", 0, 10, 0, &v), -EINVAL);
    assert_int_equal(store_metric_view(t, run, "", 0, 10, 10, &v), -EINVAL);

    assert_int_equal(store_metric_view(t, run, "loss", 6, 100, 10, &v), 0);
    assert_int_equal(v.count, 0);
    assert_int_equal(v.n, 0);
    assert_false(v.downsampled);
    store_metric_view_free(&v);
    assert_int_equal(store_metric_view(t, run, "loss", 5, 5, 1, &v), 0);
    assert_int_equal(v.count, 1);
    assert_int_equal(v.n, 1);
    assert_true(same_point(&v.pts[0], &p));
    store_metric_view_free(&v);
    store_abort(t);
    store_metric_view_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_steps_range_in_logged_order),
        FX_TEST(test_view_keeps_a_spike_in_a_million_points),
        FX_TEST(test_view_keeps_nan_and_inf_as_gaps),
        FX_TEST(test_view_of_a_small_series_is_the_series),
        FX_TEST(test_view_of_unordered_steps_keeps_extremes),
        FX_TEST(test_view_same_whatever_the_logged_order),
        FX_TEST(test_unknown_and_empty_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
