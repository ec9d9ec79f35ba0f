/* test_store_metrics.c — metric histories and summaries through the store: appends split
 * across calls, transactions and blocks read back exactly; MLflow's "latest" rule; the space
 * a point takes. */
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

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) { return xorshift64(&rng); }

static void assert_history(struct store *s, const uint8_t run[16], const char *key,
                           const struct store_point *want, size_t n, struct point_collect *out)
{
    struct store_txn *t;
    assert_int_equal(store_begin(s, false, &t), 0);
    struct point_collect c = {0};
    assert_int_equal(store_metric_history(t, run, key, collect_points, &c), 0);
    store_abort(t);
    assert_int_equal(c.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(c.pts[i].step, want[i].step);
        assert_int_equal(c.pts[i].ts_ms, want[i].ts_ms);
        assert_int_equal(dbl_bits(c.pts[i].value), dbl_bits(want[i].value));
    }
    if (out)
        *out = c;
    else
        free(c.pts);
}

static void metric_append_across_many_calls_equals_history(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0xab, 1);
    enum { N = 30000 };
    struct store_point *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    size_t na = 0, nb = 0;
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    int calls = 0;
    while (na < N || nb < N) {
        bool to_a = (rnd() & 1) ? na < N : nb >= N;
        struct store_point *dst = to_a ? a : b;
        size_t *cnt = to_a ? &na : &nb;
        size_t k = 1 + rnd() % (rnd() % 4 == 0 ? 900 : 5);
        if (*cnt + k > N)
            k = N - *cnt;
        for (size_t i = 0; i < k; i++) {
            size_t j = *cnt + i;
            double v = rnd() % 50 == 0 ? NAN : rnd() % 50 == 0 ? -INFINITY
                                                               : 1.0 / (double)(j + 1);
            dst[j] = (struct store_point){(int64_t)j - 5, 1700000000000 + (int64_t)(j * 7), v};
        }
        assert_int_equal(store_metric_append(t, run, to_a ? "loss" : "loss/val", dst + *cnt, k), 0);
        *cnt += k;
        if (++calls % 50 == 0) { /* across transactions too */
            assert_int_equal(store_commit(t), 0);
            assert_int_equal(store_begin(f->s, true, &t), 0);
        }
    }
    assert_int_equal(store_commit(t), 0);
    assert_history(f->s, run, "loss", a, N, NULL);
    assert_history(f->s, run, "loss/val", b, N, NULL);

    /* and after the store is closed and opened again */
    store_close(f->s);
    assert_int_equal(store_open(&f->s, f->dir, 0, 0), 0);
    assert_history(f->s, run, "loss", a, N, NULL);
    free(a);
    free(b);
}

static void metric_history_comes_in_blocks_that_split_at_the_size_limit(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x11, 2);
    enum { N = 5000 };
    struct store_point *p = malloc(N * sizeof *p);
    for (size_t i = 0; i < N; i++) {
        uint64_t r = rnd();
        double v;
        memcpy(&v, &r, 8); /* incompressible values: about 12 bytes a point */
        if (isnan(v))
            v = 0.5;
        p[i] = (struct store_point){(int64_t)i, (int64_t)i * 1000, v};
    }
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_metric_append(t, run, "x", p, N), 0);
    assert_int_equal(store_commit(t), 0);
    struct point_collect c;
    assert_history(f->s, run, "x", p, N, &c);
    /* ~1800 bytes a block: well over 10 blocks, none above 1800 / 3 points */
    assert_true(c.chunks > 10);
    assert_true(c.max_chunk <= 600);
    free(c.pts);

    /* a second series right after it in key order is unaffected */
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_metric_append(t, run, "x0", p, 3), 0);
    assert_int_equal(store_metric_append(t, run, "x", p, 1), 0);
    assert_int_equal(store_commit(t), 0);
    assert_history(f->s, run, "x0", p, 3, NULL);
    struct store_metric_summary sum;
    assert_int_equal(store_begin(f->s, false, &t), 0);
    assert_int_equal(store_metric_summary_get(t, run, "x", &sum), 0);
    store_abort(t);
    assert_int_equal(sum.count, N + 1);
    free(p);
}

static void metric_summary_latest_follows_step_then_time_then_value(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x22, 3);
    const struct store_point p[] = {
        {1, 100, 5.0},
        {3, 50, 1.0},   /* greater step wins, though older */
        {2, 999, 100.0}, /* smaller step loses, though newer */
        {3, 50, 0.5},   /* same step and time, smaller value: loses */
        {3, 50, NAN},   /* NaN never wins a tie */
        {3, 40, 7.0},   /* same step, older: loses */
        {-4, 0, -3.0},
    };
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) /* one call per point ... */
        assert_int_equal(store_metric_append(t, run, "a", &p[i], 1), 0);
    assert_int_equal(store_metric_append(t, run, "b", p, 7), 0); /* ... or all at once */
    const struct store_point tie = {3, 50, 2.0};
    assert_int_equal(store_metric_append(t, run, "b", &tie, 1), 0); /* greater value wins */
    const struct store_point nan = {1, 1, NAN};
    assert_int_equal(store_metric_append(t, run, "nan", &nan, 1), 0);
    assert_int_equal(store_commit(t), 0);

    struct store_metric_summary s;
    assert_int_equal(store_begin(f->s, false, &t), 0);
    assert_int_equal(store_metric_summary_get(t, run, "a", &s), 0);
    assert_int_equal(s.count, 7);
    assert_int_equal(s.latest.step, 3);
    assert_int_equal(s.latest.ts_ms, 50);
    assert_true(s.latest.value == 1.0);
    assert_true(s.min == -3.0);
    assert_true(s.max == 100.0);
    assert_int_equal(store_metric_summary_get(t, run, "b", &s), 0);
    assert_int_equal(s.count, 8);
    assert_true(s.latest.value == 2.0);
    assert_int_equal(store_metric_summary_get(t, run, "nan", &s), 0);
    assert_int_equal(s.count, 1);
    assert_true(isnan(s.latest.value) && isnan(s.min) && isnan(s.max));
    assert_int_equal(store_metric_summary_get(t, run, "missing", &s), -ENOENT);
    store_abort(t);
}

struct keys { char names[8][32]; struct store_metric_summary s[8]; int n; };

static int keys_cb(const char *key, const struct store_metric_summary *s, void *arg)
{
    struct keys *k = arg;
    snprintf(k->names[k->n], sizeof k->names[0], "%s", key);
    k->s[k->n++] = *s;
    return 0;
}

static void metric_keys_foreach_lists_a_runs_keys_in_order(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], other[16];
    run_id(run, 0x33, 1);
    run_id(other, 0x33, 2);
    struct store_point p = {0, 1, 2.0};
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    const char *names[] = {"zeta", "acc", "acc/top5", "b"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(store_metric_append(t, run, names[i], &p, 1), 0);
    assert_int_equal(store_metric_append(t, other, "acc0", &p, 1), 0);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(f->s, false, &t), 0);
    struct keys k = {0};
    assert_int_equal(store_metric_keys_foreach(t, run, keys_cb, &k), 0);
    store_abort(t);
    assert_int_equal(k.n, 4);
    assert_string_equal(k.names[0], "acc");
    assert_string_equal(k.names[1], "acc/top5");
    assert_string_equal(k.names[2], "b");
    assert_string_equal(k.names[3], "zeta");
    assert_int_equal(k.s[0].count, 1);
}

static void metric_history_of_a_missing_series_is_enoent(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x44, 1);
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, false, &t), 0);
    struct point_collect c = {0};
    assert_int_equal(store_metric_history(t, run, "nope", collect_points, &c), -ENOENT);
    store_abort(t);
}

static void metric_append_makes_the_run_exist(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x55, 1);
    struct store_point p = {0, 1, 2.0};
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_metric_append(t, run, "m", &p, 1), 0);
    struct store_run r;
    assert_int_equal(store_run_get(t, run, &r), 0);
    assert_int_equal(r.status, STORE_RUN_RUNNING);
    assert_int_equal(r.experiment_id, 0);
    assert_int_equal(store_commit(t), 0);
}

static void metric_append_rejects_bad_keys_and_read_only_txns(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x66, 1);
    struct store_point p = {0, 1, 2.0};
    char longkey[600];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_metric_append(t, run, "", &p, 1), -EINVAL);
    assert_int_equal(store_metric_append(t, run, longkey, &p, 1), -ENAMETOOLONG);
    longkey[490] = '\0'; /* the longest accepted */
    assert_int_equal(store_metric_append(t, run, longkey, &p, 1), 0);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(f->s, false, &t), 0);
    assert_int_equal(store_metric_append(t, run, "m", &p, 1), -EROFS);
    store_abort(t);
}

/* The project's target: at most 32 bytes of store per metric point, for a realistic training
 * log (4 keys, step + 1, a few ms apart, a noisy decaying loss), appended as an agent would
 * (batches of 1 to 64 points per series, 2,000 steps per transaction). */
static void metric_bytes_per_point_stay_within_target(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x77, 1);
    const char *keys[4] = {"train/loss", "train/acc", "lr", "grad_norm"};
    enum { STEPS = 250000, PER_TXN = 2000 };
    struct store_info before, after;
    assert_int_equal(store_info(f->s, &before), 0);
    struct store_point pts[4][64];
    int64_t ts = 1700000000000;
    struct store_txn *t = NULL;
    double noise = 0;
    for (int64_t step = 0; step < STEPS;) {
        if (step % PER_TXN == 0)
            assert_int_equal(store_begin(f->s, true, &t), 0);
        int batch = 1 + (int)(rnd() % 64);
        if (step + batch > STEPS)
            batch = (int)(STEPS - step);
        if ((step % PER_TXN) + batch > PER_TXN)
            batch = (int)(PER_TXN - step % PER_TXN);
        for (int i = 0; i < batch; i++) {
            ts += 2 + (int64_t)(rnd() % 6);
            double s = (double)(step + i);
            noise = 0.9 * noise + 0.1 * ((double)(rnd() % 1000000) / 1e6 - 0.5);
            double v[4] = {2.5 * exp(-s / 40000.0) + 0.05 * noise, 1.0 - 0.9 * exp(-s / 30000.0),
                           1e-3 * (s < 1000 ? s / 1000.0 : 1.0), 3.0 + noise};
            for (int k = 0; k < 4; k++)
                pts[k][i] = (struct store_point){step + i, ts, v[k]};
        }
        for (int k = 0; k < 4; k++)
            assert_int_equal(store_metric_append(t, run, keys[k], pts[k], (size_t)batch), 0);
        step += batch;
        if (step % PER_TXN == 0 || step == STEPS)
            assert_int_equal(store_commit(t), 0);
    }
    assert_int_equal(store_info(f->s, &after), 0);
    double per = (double)(after.used_bytes - before.used_bytes) / (4.0 * STEPS);
    print_message("bytes per metric point: %.2f (%llu points, %llu bytes used)\n", per,
                  (unsigned long long)4 * STEPS,
                  (unsigned long long)(after.used_bytes - before.used_bytes));
    assert_true(per <= 32.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(metric_append_across_many_calls_equals_history),
        FX_TEST(metric_history_comes_in_blocks_that_split_at_the_size_limit),
        FX_TEST(metric_summary_latest_follows_step_then_time_then_value),
        FX_TEST(metric_keys_foreach_lists_a_runs_keys_in_order),
        FX_TEST(metric_history_of_a_missing_series_is_enoent),
        FX_TEST(metric_append_makes_the_run_exist),
        FX_TEST(metric_append_rejects_bad_keys_and_read_only_txns),
        FX_TEST(metric_bytes_per_point_stay_within_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
