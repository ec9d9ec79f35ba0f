/* test_store_runs.c — experiments, runs (start, end, placeholders and their merge), run id
 * resolution, params (write-once) and tags (last write wins). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- experiments ---- */

struct exps { uint64_t ids[8]; char names[8][32]; int n; };

static int exp_cb(const struct store_experiment *e, void *arg)
{
    struct exps *x = arg;
    x->ids[x->n] = e->id;
    snprintf(x->names[x->n], sizeof x->names[0], "%.31s", e->name);
    x->n++;
    return 0;
}

static void experiment_default_is_id_zero_from_creation(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_rtxn(f);
    struct store_experiment e;
    assert_int_equal(store_experiment_get(t, 0, &e), 0);
    assert_string_equal(e.name, "Default");
    assert_true(e.created_ms > 1600000000000);
    assert_int_equal(store_experiment_by_name(t, "Default", &e), 0);
    assert_int_equal(e.id, 0);
    store_abort(t);
}

static void experiment_ensure_creates_once_and_counts_from_one(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_wtxn(f);
    uint64_t a, b, a2, d;
    assert_int_equal(store_experiment_ensure(t, "mnist", 1000, &a), 0);
    assert_int_equal(store_experiment_ensure(t, "cifar", 2000, &b), 0);
    assert_int_equal(store_experiment_ensure(t, "mnist", 3000, &a2), 0);
    assert_int_equal(store_experiment_ensure(t, "Default", 3000, &d), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    assert_int_equal(a2, 1);
    assert_int_equal(d, 0);
    assert_int_equal(store_experiment_ensure(t, "", 1, &a), -EINVAL);
    assert_int_equal(store_commit(t), 0);

    t = fx_rtxn(f);
    struct store_experiment e;
    assert_int_equal(store_experiment_by_name(t, "cifar", &e), 0);
    assert_int_equal(e.id, 2);
    assert_int_equal(e.created_ms, 2000);
    assert_int_equal(store_experiment_get(t, 1, &e), 0);
    assert_string_equal(e.name, "mnist");
    assert_int_equal(e.created_ms, 1000);
    assert_int_equal(store_experiment_by_name(t, "nope", &e), -ENOENT);
    assert_int_equal(store_experiment_get(t, 99, &e), -ENOENT);
    /* a read-only txn finds but does not create */
    assert_int_equal(store_experiment_ensure(t, "mnist", 1, &a), 0);
    assert_int_equal(store_experiment_ensure(t, "new", 1, &a), -EROFS);
    store_abort(t);
}

static void experiment_foreach_lists_in_id_order(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_wtxn(f);
    uint64_t id;
    assert_int_equal(store_experiment_ensure(t, "zzz", 1, &id), 0);
    assert_int_equal(store_experiment_ensure(t, "aaa", 1, &id), 0);
    assert_int_equal(store_commit(t), 0);
    t = fx_rtxn(f);
    struct exps x = {0};
    assert_int_equal(store_experiment_foreach(t, exp_cb, &x), 0);
    store_abort(t);
    assert_int_equal(x.n, 3);
    assert_int_equal(x.ids[0], 0);
    assert_string_equal(x.names[0], "Default");
    assert_string_equal(x.names[1], "zzz");
    assert_string_equal(x.names[2], "aaa");
}

/* ---- runs ---- */

static struct store_run sample_run(uint8_t b)
{
    struct store_run r;
    memset(&r, 0, sizeof r);
    run_id(r.id, b, 1);
    r.experiment_id = 3;
    snprintf(r.name, sizeof r.name, "brave-owl-%d", b);
    r.status = STORE_RUN_RUNNING;
    r.start_ms = 1700000000123;
    snprintf(r.user, sizeof r.user, "alice");
    snprintf(r.host, sizeof r.host, "gpu-07");
    r.has_parent = true;
    run_id(r.parent, 0xee, 9);
    r.uid = 1001;
    r.pid = 4242;
    return r;
}

static void assert_run_equal(const struct store_run *a, const struct store_run *b)
{
    assert_memory_equal(a->id, b->id, 16);
    assert_int_equal(a->experiment_id, b->experiment_id);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->start_ms, b->start_ms);
    assert_int_equal(a->end_ms, b->end_ms);
    assert_string_equal(a->user, b->user);
    assert_string_equal(a->host, b->host);
    assert_int_equal(a->has_parent, b->has_parent);
    assert_memory_equal(a->parent, b->parent, 16);
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->pid, b->pid);
}

static void run_start_then_end_round_trips_every_field(void **state)
{
    struct fx *f = *state;
    struct store_run r = sample_run(0x10), g;
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_run_start(t, &r), 0);
    assert_int_equal(store_commit(t), 0);
    t = fx_rtxn(f);
    assert_int_equal(store_run_get(t, r.id, &g), 0);
    store_abort(t);
    assert_run_equal(&g, &r);

    t = fx_wtxn(f);
    assert_int_equal(store_run_end(t, r.id, STORE_RUN_FINISHED, 1700000009999), 0);
    assert_int_equal(store_run_end(t, r.id, 42, 1), -EINVAL);
    assert_int_equal(store_commit(t), 0);
    t = fx_rtxn(f);
    assert_int_equal(store_run_get(t, r.id, &g), 0);
    store_abort(t);
    assert_int_equal(g.status, STORE_RUN_FINISHED);
    assert_int_equal(g.end_ms, 1700000009999);
    assert_int_equal(g.start_ms, r.start_ms);
    assert_string_equal(g.name, r.name);
    assert_string_equal(store_run_status_name(g.status), "FINISHED");
    assert_string_equal(store_run_status_name(99), "UNKNOWN");
}

static void run_touch_makes_a_placeholder_that_start_fills_in(void **state)
{
    struct fx *f = *state;
    struct store_run r = sample_run(0x20), g;
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_run_touch(t, r.id), 0);
    assert_int_equal(store_run_get(t, r.id, &g), 0);
    assert_int_equal(g.status, STORE_RUN_RUNNING);
    assert_int_equal(g.experiment_id, 0);
    assert_int_equal(g.start_ms, 0);
    assert_int_equal(store_run_touch(t, r.id), 0); /* idempotent */
    assert_int_equal(store_run_start(t, &r), 0);
    assert_int_equal(store_run_get(t, r.id, &g), 0);
    assert_run_equal(&g, &r);
    assert_int_equal(store_commit(t), 0);
}

static void run_claim_gives_a_run_to_the_first_uid_only(void **state)
{
    struct fx *f = *state;
    struct store_run r = sample_run(0x21), g;
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_run_claim(t, r.id, 1001), 0);      /* new: a placeholder of 1001 */
    assert_int_equal(store_run_get(t, r.id, &g), 0);
    assert_int_equal(g.uid, 1001);
    assert_int_equal(store_run_claim(t, r.id, 1001), 0);      /* the owner again */
    assert_int_equal(store_run_claim(t, r.id, 1002), -EPERM); /* anyone else */
    assert_int_equal(store_commit(t), 0);
}

static void run_end_before_start_keeps_the_end(void **state)
{
    struct fx *f = *state;
    struct store_run r = sample_run(0x30), g;
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_run_end(t, r.id, STORE_RUN_FAILED, 1700000005000), 0);
    assert_int_equal(store_run_get(t, r.id, &g), 0);
    assert_int_equal(g.status, STORE_RUN_FAILED);
    assert_int_equal(g.experiment_id, 0);
    assert_int_equal(store_run_start(t, &r), 0);
    assert_int_equal(store_run_get(t, r.id, &g), 0);
    assert_int_equal(g.status, STORE_RUN_FAILED);
    assert_int_equal(g.end_ms, 1700000005000);
    assert_int_equal(g.start_ms, r.start_ms);
    assert_int_equal(g.experiment_id, 3);
    assert_string_equal(g.user, "alice");
    assert_true(g.has_parent);
    assert_int_equal(store_commit(t), 0);
}

static void run_restart_after_end_runs_again(void **state)
{
    struct fx *f = *state;
    struct store_run r = sample_run(0x40), g;
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_run_start(t, &r), 0);
    assert_int_equal(store_run_end(t, r.id, STORE_RUN_KILLED, 1700000001000), 0);
    r.start_ms += 5000;
    assert_int_equal(store_run_start(t, &r), 0);
    assert_int_equal(store_run_get(t, r.id, &g), 0);
    assert_int_equal(g.status, STORE_RUN_RUNNING);
    assert_int_equal(g.end_ms, 0);
    assert_int_equal(g.start_ms, r.start_ms);
    assert_int_equal(store_commit(t), 0);
}

struct runs { uint8_t ids[8][16]; int n; };

static int run_cb(const struct store_run *r, void *arg)
{
    struct runs *x = arg;
    memcpy(x->ids[x->n++], r->id, 16);
    return 0;
}

static int stop_cb(const struct store_run *r, void *arg)
{
    (void)r;
    (void)arg;
    return 7;
}

static void run_foreach_lists_in_id_order_and_stops_on_request(void **state)
{
    struct fx *f = *state;
    uint8_t ids[3][16];
    run_id(ids[0], 0x90, 1);
    run_id(ids[1], 0x05, 1);
    run_id(ids[2], 0x50, 1);
    struct store_txn *t = fx_wtxn(f);
    for (int i = 0; i < 3; i++)
        assert_int_equal(store_run_touch(t, ids[i]), 0);
    struct runs x = {0};
    assert_int_equal(store_run_foreach(t, run_cb, &x), 0);
    assert_int_equal(x.n, 3);
    assert_memory_equal(x.ids[0], ids[1], 16);
    assert_memory_equal(x.ids[1], ids[2], 16);
    assert_memory_equal(x.ids[2], ids[0], 16);
    assert_int_equal(store_run_foreach(t, stop_cb, NULL), 7);
    assert_int_equal(store_commit(t), 0);
}

static void run_id_hex_and_parse_round_trip(void **state)
{
    (void)state;
    uint8_t id[16], back[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(i * 17 + 3);
    char hex[33];
    store_run_id_hex(id, hex);
    assert_string_equal(hex, "031425364758697a8b9cadbecfe0f102");
    assert_int_equal(store_run_id_parse(hex, back), 0);
    assert_memory_equal(id, back, 16);
    assert_int_equal(store_run_id_parse("031425364758697A8B9CADBECFE0F102", back), 0);
    assert_memory_equal(id, back, 16);
    assert_int_equal(store_run_id_parse("0314", back), -EINVAL);
    assert_int_equal(store_run_id_parse("x31425364758697a8b9cadbecfe0f102", back), -EINVAL);
}

static void run_resolve_finds_unique_prefix_and_rejects_the_rest(void **state)
{
    struct fx *f = *state;
    uint8_t a[16], b[16], c[16], got[16];
    assert_int_equal(store_run_id_parse("abcd1234000000000000000000000001", a), 0);
    assert_int_equal(store_run_id_parse("abcd5678000000000000000000000002", b), 0);
    assert_int_equal(store_run_id_parse("abce0000000000000000000000000003", c), 0);
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_run_touch(t, a), 0);
    assert_int_equal(store_run_touch(t, b), 0);
    assert_int_equal(store_run_touch(t, c), 0);
    assert_int_equal(store_commit(t), 0);
    t = fx_rtxn(f);
    assert_int_equal(store_run_resolve(t, "abcd1", got), 0);
    assert_memory_equal(got, a, 16);
    assert_int_equal(store_run_resolve(t, "ABCD5", got), 0);
    assert_memory_equal(got, b, 16);
    assert_int_equal(store_run_resolve(t, "abce", got), 0); /* even length */
    assert_memory_equal(got, c, 16);
    assert_int_equal(store_run_resolve(t, "abc", got), -EINVAL);      /* too short */
    assert_int_equal(store_run_resolve(t, "abcd", got), -ENOTUNIQ);
    assert_int_equal(store_run_resolve(t, "abcd9", got), -ENOENT);
    assert_int_equal(store_run_resolve(t, "ffff", got), -ENOENT);
    assert_int_equal(store_run_resolve(t, "abcg", got), -EINVAL);
    assert_int_equal(store_run_resolve(t, "abcd5678000000000000000000000002", got), 0);
    assert_memory_equal(got, b, 16);
    assert_int_equal(store_run_resolve(t, "abcd5678000000000000000000000009", got), -ENOENT);
    assert_int_equal(store_run_resolve(t, "abcd56780000000000000000000000021", got), -EINVAL);
    store_abort(t);
}

/* ---- params and tags ---- */

struct kvs { char k[8][64], v[8][64]; int n; };

static int kv_cb(const char *key, const char *value, void *arg)
{
    struct kvs *x = arg;
    snprintf(x->k[x->n], sizeof x->k[0], "%s", key);
    snprintf(x->v[x->n], sizeof x->v[0], "%s", value);
    x->n++;
    return 0;
}

static void param_put_is_write_once(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x61, 1);
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_param_put(t, run, "lr", "0.001"), 0);
    assert_int_equal(store_param_put(t, run, "lr", "0.001"), 1);
    assert_int_equal(store_param_put(t, run, "lr", "0.01"), -EEXIST);
    assert_int_equal(store_param_put(t, run, "batch", ""), 0);
    assert_int_equal(store_param_put(t, run, "", "x"), -EINVAL);
    /* the failed put left the transaction usable */
    assert_int_equal(store_commit(t), 0);
    t = fx_rtxn(f);
    struct kvs x = {0};
    assert_int_equal(store_params_foreach(t, run, kv_cb, &x), 0);
    store_abort(t);
    assert_int_equal(x.n, 2);
    assert_string_equal(x.k[0], "batch");
    assert_string_equal(x.v[0], "");
    assert_string_equal(x.k[1], "lr");
    assert_string_equal(x.v[1], "0.001");
}

static void tag_set_last_write_wins(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], other[16];
    run_id(run, 0x62, 1);
    run_id(other, 0x62, 2);
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_tag_set(t, run, "mlflow.note", "first"), 0);
    assert_int_equal(store_tag_set(t, run, "mlflow.note", "second"), 0);
    assert_int_equal(store_tag_set(t, run, "a", "1"), 0);
    assert_int_equal(store_tag_set(t, other, "mlflow.note", "other"), 0);
    assert_int_equal(store_commit(t), 0);
    t = fx_wtxn(f);
    assert_int_equal(store_tag_set(t, run, "mlflow.note", "third"), 0);
    assert_int_equal(store_commit(t), 0);
    t = fx_rtxn(f);
    struct kvs x = {0};
    assert_int_equal(store_tags_foreach(t, run, kv_cb, &x), 0);
    store_abort(t);
    assert_int_equal(x.n, 2);
    assert_string_equal(x.k[0], "a");
    assert_string_equal(x.k[1], "mlflow.note");
    assert_string_equal(x.v[1], "third");
}

static void param_and_tag_make_the_run_exist(void **state)
{
    struct fx *f = *state;
    uint8_t r1[16], r2[16];
    run_id(r1, 0x63, 1);
    run_id(r2, 0x63, 2);
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_param_put(t, r1, "k", "v"), 0);
    assert_int_equal(store_tag_set(t, r2, "k", "v"), 0);
    struct store_run g;
    assert_int_equal(store_run_get(t, r1, &g), 0);
    assert_int_equal(store_run_get(t, r2, &g), 0);
    assert_int_equal(g.status, STORE_RUN_RUNNING);
    assert_int_equal(store_commit(t), 0);
}

static void param_value_of_6000_bytes_round_trips(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x64, 1);
    static char big[6001];
    memset(big, 'v', 6000);
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_param_put(t, run, "big", big), 0);
    assert_int_equal(store_param_put(t, run, "big", big), 1);
    assert_int_equal(store_commit(t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(experiment_default_is_id_zero_from_creation),
        FX_TEST(experiment_ensure_creates_once_and_counts_from_one),
        FX_TEST(experiment_foreach_lists_in_id_order),
        FX_TEST(run_start_then_end_round_trips_every_field),
        FX_TEST(run_touch_makes_a_placeholder_that_start_fills_in),
        FX_TEST(run_end_before_start_keeps_the_end),
        FX_TEST(run_restart_after_end_runs_again),
        FX_TEST(run_foreach_lists_in_id_order_and_stops_on_request),
        cmocka_unit_test(run_id_hex_and_parse_round_trip),
        FX_TEST(run_claim_gives_a_run_to_the_first_uid_only),
        FX_TEST(run_resolve_finds_unique_prefix_and_rejects_the_rest),
        FX_TEST(param_put_is_write_once),
        FX_TEST(tag_set_last_write_wins),
        FX_TEST(param_and_tag_make_the_run_exist),
        FX_TEST(param_value_of_6000_bytes_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
