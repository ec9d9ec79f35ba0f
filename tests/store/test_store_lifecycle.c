/* test_store_lifecycle.c — what MLflow's API needs of the store beyond what agents write:
 * experiment create/rename/delete/restore and tags, run delete/restore/rename/move, tag
 * delete, inputs, sync targets' records, and store_update() growing a full map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct store_txn *txn(struct fx *f, bool write)
{
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, write, &t), 0);
    return t;
}

static void experiment_create_refuses_a_taken_name_and_rename_moves_the_name(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = txn(f, true);
    uint64_t a, b, again;
    assert_int_equal(store_experiment_create(t, "alpha", 1000, &a), 0);
    assert_int_equal(store_experiment_create(t, "alpha", 2000, &again), -EEXIST);
    assert_int_equal(store_experiment_create(t, "beta", 3000, &b), 0);
    assert_int_equal(store_experiment_rename(t, a, "beta", 4000), -EEXIST);
    assert_int_equal(store_experiment_rename(t, a, "gamma", 5000), 0);
    assert_int_equal(store_experiment_rename(t, 999, "delta", 5000), -ENOENT);
    assert_int_equal(store_commit(t), 0);

    t = txn(f, false);
    struct store_experiment e;
    assert_int_equal(store_experiment_by_name(t, "alpha", &e), -ENOENT);
    assert_int_equal(store_experiment_by_name(t, "gamma", &e), 0);
    assert_int_equal(e.id, a);
    assert_int_equal(e.created_ms, 1000);
    assert_int_equal(e.updated_ms, 5000);
    assert_false(e.deleted);
    store_abort(t);

    /* The old name is free again. */
    t = txn(f, true);
    assert_int_equal(store_experiment_create(t, "alpha", 6000, &again), 0);
    assert_true(again != a);
    assert_int_equal(store_commit(t), 0);
}

static void experiment_delete_is_soft_and_keeps_the_name_taken(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = txn(f, true);
    uint64_t id, other;
    assert_int_equal(store_experiment_create(t, "exp", 1, &id), 0);
    assert_int_equal(store_experiment_set_deleted(t, id, true, 7), 0);
    assert_int_equal(store_experiment_create(t, "exp", 8, &other), -EEXIST);
    struct store_experiment e;
    assert_int_equal(store_experiment_get(t, id, &e), 0);
    assert_true(e.deleted);
    assert_int_equal(e.updated_ms, 7);
    assert_int_equal(store_experiment_set_deleted(t, id, false, 9), 0);
    assert_int_equal(store_experiment_get(t, id, &e), 0);
    assert_false(e.deleted);
    assert_int_equal(store_experiment_set_deleted(t, 12345, true, 9), -ENOENT);
    assert_int_equal(store_commit(t), 0);
}

static int collect(const char *key, const char *value, void *arg)
{
    char *out = arg;
    size_t l = strlen(out);
    snprintf(out + l, 256 - l, "%s=%s;", key, value);
    return 0;
}

static void experiment_tags_are_per_experiment_and_last_write_wins(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = txn(f, true);
    uint64_t a, b;
    assert_int_equal(store_experiment_create(t, "a", 1, &a), 0);
    assert_int_equal(store_experiment_create(t, "b", 1, &b), 0);
    assert_int_equal(store_exp_tag_set(t, a, "team", "vision"), 0);
    assert_int_equal(store_exp_tag_set(t, a, "team", "speech"), 0);
    assert_int_equal(store_exp_tag_set(t, a, "owner", "kim"), 0);
    assert_int_equal(store_exp_tag_set(t, b, "team", "nlp"), 0);
    assert_int_equal(store_exp_tag_set(t, 777, "team", "x"), -ENOENT);
    assert_int_equal(store_exp_tag_set(t, a, "", "x"), -EINVAL);
    char got[256] = "";
    assert_int_equal(store_exp_tags_foreach(t, a, collect, got), 0);
    assert_string_equal(got, "owner=kim;team=speech;");
    got[0] = '\0';
    assert_int_equal(store_exp_tags_foreach(t, b, collect, got), 0);
    assert_string_equal(got, "team=nlp;");
    /* Run tags are elsewhere: experiment 0's tags and a run whose id is all zero differ. */
    got[0] = '\0';
    assert_int_equal(store_exp_tags_foreach(t, 0, collect, got), 0);
    assert_string_equal(got, "");
    assert_int_equal(store_commit(t), 0);
}

static void run_delete_restore_rename_and_move(void **state)
{
    struct fx *f = *state;
    uint8_t id[16];
    run_id(id, 0x11, 1);
    struct store_txn *t = txn(f, true);
    struct store_run r = {.status = STORE_RUN_RUNNING, .start_ms = 5};
    memcpy(r.id, id, 16);
    snprintf(r.name, sizeof r.name, "first");
    assert_int_equal(store_run_start(t, &r), 0);
    assert_int_equal(store_run_set_deleted(t, id, true), 0);
    assert_int_equal(store_run_set_name(t, id, "second"), 0);
    uint64_t exp;
    assert_int_equal(store_experiment_create(t, "moved", 1, &exp), 0);
    assert_int_equal(store_run_set_experiment(t, id, exp), 0);
    struct store_run got;
    assert_int_equal(store_run_get(t, id, &got), 0);
    assert_true(got.deleted);
    assert_string_equal(got.name, "second");
    assert_int_equal(got.experiment_id, exp);
    /* A restart (MLflow's resume) keeps the lifecycle: deleting is the user's act. */
    assert_int_equal(store_run_start(t, &r), 0);
    assert_int_equal(store_run_get(t, id, &got), 0);
    assert_true(got.deleted);
    assert_int_equal(store_run_set_deleted(t, id, false), 0);
    assert_int_equal(store_run_get(t, id, &got), 0);
    assert_false(got.deleted);
    uint8_t none[16];
    run_id(none, 0x22, 2);
    assert_int_equal(store_run_set_deleted(t, none, true), -ENOENT);
    assert_int_equal(store_run_set_name(t, none, "x"), -ENOENT);
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(store_run_set_name(t, id, longname), -ENAMETOOLONG);
    assert_int_equal(store_commit(t), 0);
}

static void tag_delete_and_inputs(void **state)
{
    struct fx *f = *state;
    uint8_t id[16];
    run_id(id, 0x33, 3);
    struct store_txn *t = txn(f, true);
    assert_int_equal(store_tag_set(t, id, "a", "1"), 0);
    assert_int_equal(store_tag_set(t, id, "b", "2"), 0);
    assert_int_equal(store_tag_delete(t, id, "a"), 0);
    assert_int_equal(store_tag_delete(t, id, "a"), -ENOENT);
    char got[256] = "";
    assert_int_equal(store_tags_foreach(t, id, collect, got), 0);
    assert_string_equal(got, "b=2;");
    assert_int_equal(store_input_put(t, id, "train\x1f" "d1", "{\"n\":1}"), 0);
    assert_int_equal(store_input_put(t, id, "train\x1f" "d1", "{\"n\":2}"), 0);
    assert_int_equal(store_input_put(t, id, "eval\x1f" "d2", "{}"), 0);
    got[0] = '\0';
    assert_int_equal(store_inputs_foreach(t, id, collect, got), 0);
    assert_string_equal(got, "eval\x1f" "d2={};train\x1f" "d1={\"n\":2};");
    assert_int_equal(store_commit(t), 0);
}

static int remote_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    char *out = arg;
    size_t l = strlen(out);
    snprintf(out + l, 256 - l, "%.*s=%.*s;", (int)klen, (const char *)key, (int)vlen,
             (const char *)val);
    return 0;
}

static void remote_records_are_per_target(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = txn(f, true);
    assert_int_equal(store_remote_put(t, "mlflow:aa", "run:1", 5, "r-one", 5), 0);
    assert_int_equal(store_remote_put(t, "mlflow:aa", "run:2", 5, "r-two", 5), 0);
    assert_int_equal(store_remote_put(t, "mlflow:aa", "exp:x", 5, "7", 1), 0);
    assert_int_equal(store_remote_put(t, "mlflow:bb", "run:1", 5, "other", 5), 0);
    assert_int_equal(store_remote_put(t, "", "k", 1, "v", 1), -EINVAL);
    const void *v;
    size_t vl;
    assert_int_equal(store_remote_get(t, "mlflow:aa", "run:1", 5, &v, &vl), 0);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "r-one", 5);
    assert_int_equal(store_remote_get(t, "mlflow:aa", "run:3", 5, &v, &vl), -ENOENT);
    char got[256] = "";
    assert_int_equal(store_remote_foreach(t, "mlflow:aa", "run:", 4, remote_cb, got), 0);
    assert_string_equal(got, "run:1=r-one;run:2=r-two;");
    assert_int_equal(store_remote_del(t, "mlflow:aa", "run:1", 5), 0);
    got[0] = '\0';
    assert_int_equal(store_remote_foreach(t, "mlflow:aa", NULL, 0, remote_cb, got), 0);
    assert_string_equal(got, "exp:x=7;run:2=r-two;");
    assert_int_equal(store_commit(t), 0);
}

struct fill { uint8_t run[16]; int calls; };

static int fill_txn(struct store_txn *t, void *arg)
{
    struct fill *fl = arg;
    fl->calls++;
    static struct store_point pts[200000];
    for (size_t i = 0; i < sizeof pts / sizeof *pts; i++)
        pts[i] = (struct store_point){.step = (int64_t)i, .ts_ms = (int64_t)(i * 7919 % 100003),
                                      .value = (double)(i * 2654435761u % 1000003)};
    return store_metric_append(t, fl->run, "loss", pts, sizeof pts / sizeof *pts);
}

/* A store made with a tiny map: store_update grows it and runs the function again. */
static void store_update_grows_a_full_map_and_redoes(void **state)
{
    (void)state;
    char dir[64];
    assert_non_null(scratch_dir(dir));
    struct store *s;
    assert_int_equal(store_open(&s, dir, STORE_NOSYNC, 1u << 20), 0);
    struct fill fl = {.calls = 0};
    run_id(fl.run, 0x44, 4);
    assert_int_equal(store_update(s, fill_txn, &fl), 0);
    assert_true(fl.calls >= 2);
    struct store_txn *t;
    assert_int_equal(store_begin(s, false, &t), 0);
    struct store_metric_summary sum;
    assert_int_equal(store_metric_summary_get(t, fl.run, "loss", &sum), 0);
    assert_int_equal(sum.count, 200000);
    store_abort(t);
    store_close(s);
    scratch_rm(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(experiment_create_refuses_a_taken_name_and_rename_moves_the_name),
        FX_TEST(experiment_delete_is_soft_and_keeps_the_name_taken),
        FX_TEST(experiment_tags_are_per_experiment_and_last_write_wins),
        FX_TEST(run_delete_restore_rename_and_move),
        FX_TEST(tag_delete_and_inputs),
        FX_TEST(remote_records_are_per_target),
        cmocka_unit_test(store_update_grows_a_full_map_and_redoes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
