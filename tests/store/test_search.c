/* test_search.c — MLflow's search language over the store (store/search.h): every operator
 * and identifier kind, quoting, IN lists, LIKE/ILIKE, errors that say where and what, order_by
 * with missing values, page tokens, views, max_results, experiments/search, and the
 * `sidetrack runs search` command on the same store.
 *
 * One store, built once for the group (the runs below), read by every test. Runs are named by
 * the last byte of their id (run_id(id, 0xa0, n)), so that a result reads "2 3 5 1".
 *
 *  run  experiment  name       status     start  end   user   data
 *  1    mnist       lucky-fox  FINISHED   1000   2000  alice  lr=0.01 opt=adam; team=vision,
 *                                                             note=it's, "my tag"=x;
 *                                                             acc 0.5 then 0.91, loss 0.3;
 *                                                             dataset mnist-train/abc123 train
 *  2    mnist       brave-owl  RUNNING    3000   -     bob    lr=0.1; team=Vision-2; acc 0.85,
 *                                                             "my metric" 1; datasets
 *                                                             mnist-test/def456 eval, extra/999
 *  3    cifar       calm-cat   FAILED     2000   2500  alice  lr=0.001 opt=sgd; team=nlp;
 *                                                             acc NaN, loss 0.1
 *  4    Default     gone       SCHEDULED  2000   -     carol  lr=0.5; acc 0.99; DELETED
 *  5    cifar       dup        FINISHED   2000   4000  dave   lr=0.01; acc 0.85
 *  6    Default     (a placeholder: start unknown)            team=vision
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "search.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char dir[64];
static struct store *st;
static char hex[8][33]; /* hex[n]: run n's id */
static uint64_t mnist, cifar, old_exp;

static void rid(uint8_t id[16], int n) { run_id(id, 0xa0, (uint8_t)n); }

static void add_run(struct store_txn *t, int n, uint64_t exp, const char *name, int status,
                    int64_t start, int64_t end, const char *user)
{
    struct store_run r = {.experiment_id = exp, .status = status, .start_ms = start};
    rid(r.id, n);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.user, sizeof r.user, "%s", user);
    assert_int_equal(store_run_start(t, &r), 0);
    if (end)
        assert_int_equal(store_run_end(t, r.id, status, end), 0);
}

static void metric(struct store_txn *t, int n, const char *key, double v, int64_t step)
{
    uint8_t id[16];
    rid(id, n);
    struct store_point p = {.step = step, .ts_ms = 1000 + step, .value = v};
    assert_int_equal(store_metric_append(t, id, key, &p, 1), 0);
}

static void kv(struct store_txn *t, int n, bool param, const char *key, const char *value)
{
    uint8_t id[16];
    rid(id, n);
    if (param)
        assert_int_equal(store_param_put(t, id, key, value), 0);
    else
        assert_int_equal(store_tag_set(t, id, key, value), 0);
}

static void dataset(struct store_txn *t, int n, const char *name, const char *digest,
                    const char *context)
{
    uint8_t id[16];
    char key[128], json[512];
    rid(id, n);
    snprintf(key, sizeof key, "%s-%s", name, digest);
    if (context)
        snprintf(json, sizeof json,
                 "{\"tags\":[{\"key\":\"mlflow.data.context\",\"value\":\"%s\"}],"
                 "\"dataset\":{\"name\":\"%s\",\"digest\":\"%s\",\"source_type\":\"local\"}}",
                 context, name, digest);
    else
        snprintf(json, sizeof json, "{\"dataset\":{\"name\":\"%s\",\"digest\":\"%s\"}}", name,
                 digest);
    assert_int_equal(store_input_put(t, id, key, json), 0);
}

static int group_setup(void **state)
{
    (void)state;
    if (!scratch_dir(dir) || store_open(&st, dir, STORE_NOSYNC, 0) != 0)
        return -1;
    struct store_txn *t;
    assert_int_equal(store_begin(st, true, &t), 0);
    assert_int_equal(store_experiment_create(t, "mnist", 1000, &mnist), 0);
    assert_int_equal(store_experiment_create(t, "cifar", 2000, &cifar), 0);
    assert_int_equal(store_experiment_create(t, "old", 500, &old_exp), 0);
    assert_int_equal(store_experiment_set_deleted(t, old_exp, true, 5000), 0);
    assert_int_equal(store_exp_tag_set(t, mnist, "owner", "alice"), 0);
    assert_int_equal(store_exp_tag_set(t, cifar, "owner", "bob"), 0);

    add_run(t, 1, mnist, "lucky-fox", STORE_RUN_FINISHED, 1000, 2000, "alice");
    kv(t, 1, true, "lr", "0.01");
    kv(t, 1, true, "opt", "adam");
    kv(t, 1, false, "team", "vision");
    kv(t, 1, false, "note", "it's");
    kv(t, 1, false, "my tag", "x");
    metric(t, 1, "acc", 0.5, 0);
    metric(t, 1, "acc", 0.91, 1);
    metric(t, 1, "loss", 0.3, 0);
    dataset(t, 1, "mnist-train", "abc123", "train");

    add_run(t, 2, mnist, "brave-owl", STORE_RUN_RUNNING, 3000, 0, "bob");
    kv(t, 2, true, "lr", "0.1");
    kv(t, 2, false, "team", "Vision-2");
    metric(t, 2, "acc", 0.85, 0);
    metric(t, 2, "my metric", 1, 0);
    dataset(t, 2, "mnist-test", "def456", "eval");
    dataset(t, 2, "extra", "999", NULL);

    add_run(t, 3, cifar, "calm-cat", STORE_RUN_FAILED, 2000, 2500, "alice");
    kv(t, 3, true, "lr", "0.001");
    kv(t, 3, true, "opt", "sgd");
    kv(t, 3, false, "team", "nlp");
    metric(t, 3, "acc", NAN, 0);
    metric(t, 3, "loss", 0.1, 0);

    add_run(t, 4, 0, "gone", STORE_RUN_SCHEDULED, 2000, 0, "carol");
    kv(t, 4, true, "lr", "0.5");
    metric(t, 4, "acc", 0.99, 0);
    uint8_t id[16];
    rid(id, 4);
    assert_int_equal(store_run_set_deleted(t, id, true), 0);

    add_run(t, 5, cifar, "dup", STORE_RUN_FINISHED, 2000, 4000, "dave");
    kv(t, 5, true, "lr", "0.01");
    metric(t, 5, "acc", 0.85, 0);

    kv(t, 6, false, "team", "vision"); /* a placeholder run: no start record */
    assert_int_equal(store_commit(t), 0);
    for (int n = 1; n <= 7; n++) {
        rid(id, n);
        store_run_id_hex(id, hex[n]);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    store_close(st);
    scratch_rm(dir);
    return 0;
}

/* ---- helpers ---- */

static char err[512];

static int search(const char *filter, const char *const *order, size_t norder, int view,
                  size_t max, const char *token, const uint64_t *exps, size_t nexps,
                  struct store_run_page *p)
{
    struct store_txn *t;
    assert_int_equal(store_begin(st, false, &t), 0);
    struct store_run_query q = {.experiment_ids = exps, .n_experiments = nexps,
                                .filter = filter, .view = view, .order_by = order,
                                .n_order_by = norder, .max_results = max,
                                .page_token = token};
    int rc = store_search_runs(t, &q, p, err, sizeof err);
    store_abort(t);
    return rc;
}

/* "2 3 5 1": the page's runs by number. */
static const char *page_str(const struct store_run_page *p)
{
    static char buf[256];
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->n; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%u", i ? " " : "", p->ids[i][15]);
    return buf;
}

static const char *where(const char *filter)
{
    struct store_run_page p;
    int rc = search(filter, NULL, 0, 0, 0, NULL, NULL, 0, &p);
    if (rc != 0)
        fail_msg("filter \"%s\": %d %s", filter, rc, err);
    const char *s = page_str(&p);
    assert_string_equal(p.next_page_token, "");
    store_run_page_free(&p);
    return s;
}

static const char *ordered(const char *const *order, size_t n)
{
    struct store_run_page p;
    int rc = search(NULL, order, n, 0, 0, NULL, NULL, 0, &p);
    if (rc != 0)
        fail_msg("order_by \"%s\": %d %s", order[0], rc, err);
    const char *s = page_str(&p);
    store_run_page_free(&p);
    return s;
}

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("'%s' does not contain '%s'", (hay), (needle));                        \
    } while (0)

/* The filter is refused, and the message says each of the given things. */
static void bad_filter(const char *filter, const char *a, const char *b)
{
    struct store_run_page p;
    int rc = search(filter, NULL, 0, 0, 0, NULL, NULL, 0, &p);
    if (rc != -EINVAL)
        fail_msg("filter \"%s\" gave %d, not -EINVAL", filter, rc);
    assert_null(p.ids);
    assert_contains(err, a);
    assert_contains(err, b);
}

static void bad_order(const char *order, const char *a, const char *b)
{
    struct store_run_page p;
    const char *o[] = {order};
    assert_int_equal(search(NULL, o, 1, 0, 0, NULL, NULL, 0, &p), -EINVAL);
    assert_contains(err, a);
    assert_contains(err, b);
}

/* ---- filters ---- */

static void empty_filter_matches_every_active_run_newest_first(void **state)
{
    (void)state;
    assert_string_equal(where(NULL), "2 3 5 1 6");
    assert_string_equal(where(""), "2 3 5 1 6");
    assert_string_equal(where("   "), "2 3 5 1 6");
}

static void metrics_compare_their_latest_value(void **state)
{
    (void)state;
    assert_string_equal(where("metrics.acc > 0.9"), "1");
    assert_string_equal(where("metrics.acc >= 0.85"), "2 5 1");
    assert_string_equal(where("metrics.acc = 0.85"), "2 5");
    assert_string_equal(where("metrics.acc != 0.85"), "3 1"); /* NaN != 0.85; 6 has none */
    assert_string_equal(where("metrics.acc < 0.9"), "2 5");   /* NaN < x is false */
    assert_string_equal(where("metrics.acc <= 0.85"), "2 5");
    assert_string_equal(where("metrics.acc < 0.6"), "");      /* 0.5 was not the latest */
    assert_string_equal(where("metrics.loss > -1e3"), "3 1");
    assert_string_equal(where("metrics.loss<.2"), "3");
    assert_string_equal(where("metrics.nope > 0"), "");
}

static void params_compare_as_strings(void **state)
{
    (void)state;
    assert_string_equal(where("params.lr = '0.01'"), "5 1");
    assert_string_equal(where("params.lr != '0.01'"), "2 3"); /* 6 has no lr: no match */
    assert_string_equal(where("params.lr LIKE '0.0%'"), "3 5 1");
    assert_string_equal(where("params.lr LIKE '0._1'"), "5 1");
    assert_string_equal(where("params.lr LIKE '0.__1'"), "3");
    assert_string_equal(where("params.lr LIKE '%1'"), "2 3 5 1");
    assert_string_equal(where("params.opt LIKE 'ADAM'"), "");
    assert_string_equal(where("params.opt ILIKE 'ADAM'"), "1");
    assert_string_equal(where("params.opt ILIKE '%G%'"), "3");
}

static void tags_compare_as_strings(void **state)
{
    (void)state;
    assert_string_equal(where("tags.team = 'vision'"), "1 6");
    assert_string_equal(where("tags.team != 'vision'"), "2 3");
    assert_string_equal(where("tags.team LIKE 'vision%'"), "1 6");
    assert_string_equal(where("tags.team ILIKE 'vision%'"), "2 1 6");
    assert_string_equal(where("tags.team LIKE '_ision'"), "1 6");
    /* the run's name answers for MLflow's mlflow.runName tag */
    assert_string_equal(where("tags.mlflow.runName = 'lucky-fox'"), "1");
    assert_string_equal(where("tags.`mlflow.runName` LIKE 'c%'"), "3");
}

static void quoting_of_names_and_constants(void **state)
{
    (void)state;
    assert_string_equal(where("metrics.`my metric` = 1"), "2");
    assert_string_equal(where("metrics.\"my metric\" = 1"), "2");
    assert_string_equal(where("tags.`my tag` = 'x'"), "1");
    assert_string_equal(where("tags.'my tag' = \"x\""), "1");
    assert_string_equal(where("tags.note = 'it''s'"), "1");
    assert_string_equal(where("tags.note = 'it\\'s'"), "1");
    assert_string_equal(where("tags.note = \"it's\""), "1");
    assert_string_equal(where("`tags`.note LIKE 'it%'"), "1");
    assert_string_equal(where("`Run name` = 'calm-cat'"), "3");
    assert_string_equal(where("attributes.`Run Name` = 'calm-cat'"), "3");
}

static void attributes_of_the_run(void **state)
{
    (void)state;
    char f[256];
    assert_string_equal(where("attributes.status = 'FINISHED'"), "5 1");
    assert_string_equal(where("status != 'FINISHED'"), "2 3 6");
    assert_string_equal(where("run_name LIKE '%o%'"), "2 1");
    assert_string_equal(where("run_name ILIKE '%FOX'"), "1");
    assert_string_equal(where("attr.user_id = 'alice'"), "3 1");
    assert_string_equal(where("run.user_id IN ('alice', 'dave')"), "3 5 1");
    assert_string_equal(where("status NOT IN ('RUNNING')"), "3 5 1");
    assert_string_equal(where("status not in ('RUNNING', \"FAILED\")"), "5 1");
    snprintf(f, sizeof f, "run_id = '%s'", hex[3]);
    assert_string_equal(where(f), "3");
    snprintf(f, sizeof f, "attributes.run_id IN ('%s','%s')", hex[1], hex[2]);
    assert_string_equal(where(f), "2 1");
    snprintf(f, sizeof f, "artifact_uri = 'mlflow-artifacts:/%llu/%s/artifacts'",
             (unsigned long long)mnist, hex[1]);
    assert_string_equal(where(f), "1");
    assert_string_equal(where("artifact_uri LIKE 'mlflow-artifacts:/2/%'"), "3 5");
}

static void numeric_attributes(void **state)
{
    (void)state;
    assert_string_equal(where("attributes.start_time >= 2000"), "2 3 5");
    assert_string_equal(where("start_time = 3000"), "2");
    assert_string_equal(where("end_time > 0"), "3 5 1"); /* a running run has no end */
    assert_string_equal(where("end_time != 2000"), "3 5");
    assert_string_equal(where("created < 1500"), "1 6");
    assert_string_equal(where("Created > 2500"), "2");
}

static void datasets_match_any_input(void **state)
{
    (void)state;
    assert_string_equal(where("datasets.name = 'mnist-train'"), "1");
    assert_string_equal(where("dataset.context = 'eval'"), "2");
    assert_string_equal(where("datasets.context = 'test'"), "");
    assert_string_equal(where("datasets.digest IN ('abc123', 'def456')"), "2 1");
    assert_string_equal(where("datasets.digest NOT IN ('abc123')"), "2");
    assert_string_equal(where("datasets.name LIKE 'mnist%'"), "2 1");
    assert_string_equal(where("datasets.name ILIKE 'EXTRA'"), "2");
    assert_string_equal(where("datasets.context != 'train'"), "2"); /* inputs with a context */
    assert_string_equal(where("datasets.name != 'extra'"), "2 1");
}

static void prefix_aliases(void **state)
{
    (void)state;
    assert_string_equal(where("metric.acc > 0.9"), "1");
    assert_string_equal(where("METRICS.acc > 0.9"), "1");
    assert_string_equal(where("param.lr = '0.1'"), "2");
    assert_string_equal(where("parameter.lr = '0.1'"), "2");
    assert_string_equal(where("parameters.lr = '0.1'"), "2");
    assert_string_equal(where("tag.team = 'nlp'"), "3");
    assert_string_equal(where("attribute.status = 'FAILED'"), "3");
    assert_string_equal(where("attributes.status = 'FAILED'"), "3");
}

static void clauses_join_with_and_in_any_case(void **state)
{
    (void)state;
    assert_string_equal(where("metrics.acc > 0.8 AND params.lr = '0.01'"), "5 1");
    assert_string_equal(where("metrics.acc > 0.8 and params.lr = '0.01'"), "5 1");
    assert_string_equal(where("metrics.acc > 0.8 aNd params.lr = '0.01' AND status = 'FINISHED'"
                              " and tags.team = 'vision'"), "1");
    assert_string_equal(where("params.lr='0.01'and metrics.acc>0.9"), "1");
    assert_string_equal(where("  status = 'FINISHED'\n\tAND user_id = 'dave'  "), "5");
}

static void bad_filters_name_the_column_and_the_problem(void **state)
{
    (void)state;
    bad_filter("metrics.acc > 'high'", "column 15", "metrics.acc compares with a number");
    bad_filter("metrics.acc > high", "column 15", "found 'high'");
    bad_filter("params.lr = 0.01", "column 13", "params.lr compares with a quoted string");
    bad_filter("metrics.acc LIKE '0.9'", "column 13", "not LIKE");
    bad_filter("params.lr > '1'", "column 11", "params.lr is a string");
    bad_filter("params.lr IN ('a')", "column 11", "IN is for attributes");
    bad_filter("start_time LIKE '1%'", "column 12", "start_time is a number");
    bad_filter("foo.bar = 'x'", "column 1", "unknown prefix 'foo'");
    bad_filter("bogus = 'x'", "column 1", "unknown attribute 'bogus'");
    bad_filter("datasets.size = 'x'", "column 1", "unknown dataset field 'size'");
    bad_filter("status = 'x' OR status = 'y'", "column 14", "OR is not supported");
    bad_filter("status = 'x' status = 'y'", "column 14", "expected AND");
    bad_filter("params.lr = 'x", "column 13", "never closed");
    bad_filter("status IN ()", "column 11", "the list is empty");
    bad_filter("status IN ('a' 'b')", "column 16", "expected , or )");
    bad_filter("status IN 'a'", "column 11", "list of quoted strings in parentheses");
    bad_filter("status = 'x' AND", "column 14", "AND must be followed by another clause");
    bad_filter("metrics.acc", "column 12 (its end)", "expected a comparison operator");
    bad_filter("metrics.acc is 1", "near 'is 1'", "expected a comparison operator");
    bad_filter("(status = 'x')", "column 1", "parentheses are not supported");
    bad_filter("metrics.acc == 1", "column 13", "'==' is not an operator");
    bad_filter("metrics. > 1", "column 9", "a name must follow 'metrics.'");
    bad_filter("params.`` = 'a'", "column 1", "empty");
    bad_filter("status NOT 'x'", "column 12", "NOT must be followed by IN");
}

static void filter_parse_and_match_one_run(void **state)
{
    (void)state;
    struct store_filter *f;
    assert_int_equal(store_filter_parse("metrics.acc > 0.9 and status = 'FINISHED'", &f, err,
                                        sizeof err), 0);
    struct store_txn *t;
    struct store_run r;
    uint8_t id[16];
    assert_int_equal(store_begin(st, false, &t), 0);
    rid(id, 1);
    assert_int_equal(store_run_get(t, id, &r), 0);
    assert_int_equal(store_filter_match_run(t, f, &r), 1);
    rid(id, 5);
    assert_int_equal(store_run_get(t, id, &r), 0);
    assert_int_equal(store_filter_match_run(t, f, &r), 0);
    assert_int_equal(store_filter_match_run(t, NULL, &r), 1);
    store_abort(t);
    store_filter_free(f);
    assert_int_equal(store_filter_parse(NULL, &f, err, sizeof err), 0);
    store_filter_free(f);
    store_filter_free(NULL);
    assert_int_equal(store_filter_parse("nope", &f, err, sizeof err), -EINVAL);
    assert_null(f);
}

static void param_and_tag_point_lookups(void **state)
{
    (void)state;
    struct store_txn *t;
    uint8_t id[16];
    const char *v;
    size_t n;
    assert_int_equal(store_begin(st, false, &t), 0);
    rid(id, 1);
    assert_int_equal(store_param_get(t, id, "lr", &v, &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(v, "0.01", 4);
    assert_int_equal(store_tag_get(t, id, "note", &v, &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(v, "it's", 4);
    assert_int_equal(store_param_get(t, id, "team", &v, &n), -ENOENT);
    assert_int_equal(store_tag_get(t, id, "lr", &v, &n), -ENOENT);
    rid(id, 7);
    assert_int_equal(store_param_get(t, id, "lr", &v, &n), -ENOENT);
    store_abort(t);
}

/* ---- order ---- */

static void order_by_metric_puts_nan_then_missing_last(void **state)
{
    (void)state;
    const char *desc[] = {"metrics.acc DESC"}, *asc[] = {"metrics.acc"},
                *asc2[] = {"metrics.acc asc"};
    /* 2 and 5 tie at 0.85: start time, newest first, decides */
    assert_string_equal(ordered(desc, 1), "1 2 5 3 6");
    assert_string_equal(ordered(asc, 1), "2 5 1 3 6");
    assert_string_equal(ordered(asc2, 1), "2 5 1 3 6");
}

static void order_by_params_tags_and_attributes(void **state)
{
    (void)state;
    const char *lr[] = {"params.lr"}, *lrd[] = {"params.lr DESC"},
                *end[] = {"attributes.end_time"}, *name[] = {"run_name"},
                *team[] = {"tags.team DESC"}, *multi[] = {"status", "metrics.acc DESC"},
                *start[] = {"start_time ASC"}, *id[] = {"run_id DESC"};
    assert_string_equal(ordered(lr, 1), "3 5 1 2 6");
    assert_string_equal(ordered(lrd, 1), "2 5 1 3 6");
    assert_string_equal(ordered(end, 1), "1 3 5 2 6");
    assert_string_equal(ordered(name, 1), "6 2 3 5 1");
    assert_string_equal(ordered(team, 1), "1 6 3 2 5");
    assert_string_equal(ordered(multi, 2), "3 1 5 2 6");
    assert_string_equal(ordered(start, 1), "1 3 5 2 6"); /* unknown start last */
    assert_string_equal(ordered(id, 1), "6 5 3 2 1");
}

static void bad_order_by_is_refused(void **state)
{
    (void)state;
    bad_order("metrics.acc sideways", "column 13", "expected ASC, DESC");
    bad_order("datasets.name", "column 1", "cannot be ordered by datasets");
    bad_order("bogus DESC", "order_by 'bogus DESC'", "unknown attribute 'bogus'");
    bad_order("", "column 1", "expected a column");
}

/* ---- pages, views, limits ---- */

static void pages_follow_tokens_to_the_end(void **state)
{
    (void)state;
    struct store_run_page p;
    char tok[128];
    assert_int_equal(search(NULL, NULL, 0, 0, 2, NULL, NULL, 0, &p), 0);
    assert_string_equal(page_str(&p), "2 3");
    assert_string_not_equal(p.next_page_token, "");
    snprintf(tok, sizeof tok, "%s", p.next_page_token);
    store_run_page_free(&p);
    assert_int_equal(search(NULL, NULL, 0, 0, 2, tok, NULL, 0, &p), 0);
    assert_string_equal(page_str(&p), "5 1");
    snprintf(tok, sizeof tok, "%s", p.next_page_token);
    store_run_page_free(&p);
    /* max_results may change between pages, as in MLflow */
    assert_int_equal(search(NULL, NULL, 0, 0, 5, tok, NULL, 0, &p), 0);
    assert_string_equal(page_str(&p), "6");
    assert_string_equal(p.next_page_token, "");
    store_run_page_free(&p);
    /* exactly one page: no token */
    assert_int_equal(search(NULL, NULL, 0, 0, 5, NULL, NULL, 0, &p), 0);
    assert_string_equal(p.next_page_token, "");
    store_run_page_free(&p);
}

static void a_token_from_another_query_is_refused(void **state)
{
    (void)state;
    struct store_run_page p;
    char tok[128];
    const char *o[] = {"metrics.acc"};
    assert_int_equal(search("tags.team != 'x'", NULL, 0, 0, 1, NULL, NULL, 0, &p), 0);
    snprintf(tok, sizeof tok, "%s", p.next_page_token);
    store_run_page_free(&p);
    assert_int_equal(search("tags.team != 'y'", NULL, 0, 0, 1, tok, NULL, 0, &p), -EINVAL);
    assert_contains(err, "another query");
    assert_int_equal(search("tags.team != 'x'", o, 1, 0, 1, tok, NULL, 0, &p), -EINVAL);
    assert_int_equal(search("tags.team != 'x'", NULL, 0, STORE_VIEW_ALL, 1, tok, NULL, 0, &p),
                     -EINVAL);
    assert_int_equal(search("tags.team != 'x'", NULL, 0, 0, 1, tok, &mnist, 1, &p), -EINVAL);
    assert_int_equal(search("tags.team != 'x'", NULL, 0, 0, 1, tok, NULL, 0, &p), 0);
    assert_string_equal(page_str(&p), "3");
    store_run_page_free(&p);
    assert_int_equal(search(NULL, NULL, 0, 0, 1, "not-a-token", NULL, 0, &p), -EINVAL);
    assert_contains(err, "invalid page_token 'not-a-token'");
    tok[3] = tok[3] == 'A' ? 'B' : 'A'; /* a damaged token */
    assert_int_equal(search("tags.team != 'x'", NULL, 0, 0, 1, tok, NULL, 0, &p), -EINVAL);
}

static void views_and_experiments_choose_the_runs(void **state)
{
    (void)state;
    struct store_run_page p;
    assert_int_equal(search(NULL, NULL, 0, STORE_VIEW_DELETED, 0, NULL, NULL, 0, &p), 0);
    assert_string_equal(page_str(&p), "4");
    store_run_page_free(&p);
    assert_int_equal(search(NULL, NULL, 0, STORE_VIEW_ALL, 0, NULL, NULL, 0, &p), 0);
    assert_string_equal(page_str(&p), "2 3 4 5 1 6");
    store_run_page_free(&p);
    assert_int_equal(search("metrics.acc > 0.9", NULL, 0, STORE_VIEW_ALL, 0, NULL, NULL, 0,
                            &p), 0);
    assert_string_equal(page_str(&p), "4 1");
    store_run_page_free(&p);
    assert_int_equal(search(NULL, NULL, 0, 0, 0, NULL, &cifar, 1, &p), 0);
    assert_string_equal(page_str(&p), "3 5");
    store_run_page_free(&p);
    uint64_t two[] = {mnist, 0};
    assert_int_equal(search(NULL, NULL, 0, 0, 0, NULL, two, 2, &p), 0);
    assert_string_equal(page_str(&p), "2 1 6");
    store_run_page_free(&p);
    assert_int_equal(search(NULL, NULL, 0, 7, 0, NULL, NULL, 0, &p), -EINVAL);
    assert_contains(err, "view");
}

static void max_results_is_bounded(void **state)
{
    (void)state;
    struct store_run_page p;
    assert_int_equal(search(NULL, NULL, 0, 0, 50001, NULL, NULL, 0, &p), -EINVAL);
    assert_contains(err, "max_results 50001");
    assert_int_equal(search(NULL, NULL, 0, 0, 50000, NULL, NULL, 0, &p), 0);
    assert_int_equal(p.n, 5);
    store_run_page_free(&p);
    assert_int_equal(search(NULL, NULL, 0, 0, 1, NULL, NULL, 0, &p), 0);
    assert_int_equal(p.n, 1);
    store_run_page_free(&p);
}

/* ---- experiments ---- */

static const char *exps(const char *filter, const char *const *order, size_t norder, int view,
                        size_t max, const char *token, char *next)
{
    static char buf[128];
    struct store_txn *t;
    struct store_exp_page p;
    assert_int_equal(store_begin(st, false, &t), 0);
    struct store_exp_query q = {.filter = filter, .view = view, .order_by = order,
                                .n_order_by = norder, .max_results = max, .page_token = token};
    int rc = store_search_experiments(t, &q, &p, err, sizeof err);
    store_abort(t);
    if (rc < 0)
        return NULL;
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p.n; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%llu", i ? " " : "",
                              (unsigned long long)p.ids[i]);
    if (next)
        strcpy(next, p.next_page_token);
    store_exp_page_free(&p);
    return buf;
}

static void experiments_filter_order_and_pages(void **state)
{
    (void)state;
    char next[128];
    /* Default was made with the store, now: the newest */
    assert_string_equal(exps(NULL, NULL, 0, 0, 0, NULL, NULL), "0 2 1");
    assert_string_equal(exps("name LIKE '%i%'", NULL, 0, 0, 0, NULL, NULL), "2 1");
    assert_string_equal(exps("attributes.name = 'mnist'", NULL, 0, 0, 0, NULL, NULL), "1");
    assert_string_equal(exps("name ILIKE 'DEF%'", NULL, 0, 0, 0, NULL, NULL), "0");
    assert_string_equal(exps("tags.owner = 'alice'", NULL, 0, 0, 0, NULL, NULL), "1");
    assert_string_equal(exps("tags.owner != 'alice'", NULL, 0, 0, 0, NULL, NULL), "2");
    assert_string_equal(exps("creation_time < 1500", NULL, 0, STORE_VIEW_ALL, 0, NULL, NULL),
                        "1 3");
    assert_string_equal(exps("last_update_time = 5000", NULL, 0, STORE_VIEW_ALL, 0, NULL,
                             NULL), "3");
    assert_string_equal(exps(NULL, NULL, 0, STORE_VIEW_DELETED, 0, NULL, NULL), "3");
    const char *by_name[] = {"name"}, *by_id[] = {"experiment_id DESC"},
                *by_created[] = {"creation_time ASC"};
    assert_string_equal(exps(NULL, by_name, 1, 0, 0, NULL, NULL), "0 2 1");
    assert_string_equal(exps(NULL, by_id, 1, STORE_VIEW_ALL, 0, NULL, NULL), "3 2 1 0");
    assert_string_equal(exps(NULL, by_created, 1, STORE_VIEW_ALL, 0, NULL, NULL), "3 1 2 0");
    assert_string_equal(exps(NULL, NULL, 0, 0, 2, NULL, next), "0 2");
    assert_string_not_equal(next, "");
    char tok[128];
    strcpy(tok, next);
    assert_string_equal(exps(NULL, NULL, 0, 0, 2, tok, next), "1");
    assert_string_equal(next, "");
    assert_null(exps("name = 'x'", NULL, 0, 0, 2, tok, NULL));
    assert_contains(err, "another query");
}

static void bad_experiment_queries_are_refused(void **state)
{
    (void)state;
    const char *by_tag[] = {"tags.owner"}, *by_bogus[] = {"start_time"};
    assert_null(exps("metrics.x > 1", NULL, 0, 0, 0, NULL, NULL));
    assert_contains(err, "experiments are searched by name");
    assert_null(exps("experiment_id = '1'", NULL, 0, 0, 0, NULL, NULL));
    assert_contains(err, "unknown experiment attribute 'experiment_id'");
    assert_null(exps("creation_time > 'x'", NULL, 0, 0, 0, NULL, NULL));
    assert_contains(err, "column 17");
    assert_null(exps(NULL, by_tag, 1, 0, 0, NULL, NULL));
    assert_contains(err, "not by tags");
    assert_null(exps(NULL, by_bogus, 1, 0, 0, NULL, NULL));
    assert_contains(err, "unknown experiment attribute 'start_time'");
    assert_null(exps(NULL, NULL, 0, 0, 50001, NULL, NULL));
}

/* ---- the command line ---- */

/* Runs `sidetrack --data DIR ARGS` (ARGS already shell-quoted), capturing stdout and stderr
 * into out; returns the exit status. */
static int cli(const char *args, char *out, size_t len)
{
    const char *build = getenv("SIDETRACK_BUILD_DIR");
    if (!build)
        fail_msg("SIDETRACK_BUILD_DIR is not set: run this test through meson test");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/client/cli/sidetrack' --data '%s' %s 2>&1", build, dir,
             args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void cli_runs_search_prints_the_matching_runs(void **state)
{
    (void)state;
    static char out[16384];
    assert_int_equal(cli("runs search \"metrics.acc > 0.8 and params.lr = '0.01'\"", out,
                         sizeof out), 0);
    /* a table, in order: run 5 (newer) before run 1 */
    char *a = strstr(out, hex[5]), *b = strstr(out, hex[1]);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    assert_contains(out, "RUN ID");
    assert_null(strstr(out, hex[2]));

    assert_int_equal(cli("runs search --json --order-by 'metrics.acc DESC' --max 2 "
                         "--experiment mnist --experiment cifar", out, sizeof out), 0);
    a = strstr(out, hex[1]);
    b = strstr(out, hex[2]);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    assert_null(strstr(out, hex[5]));
    assert_contains(out, "\"run_name\": \"lucky-fox\"");
    assert_contains(out, "--page-token"); /* the next page, said on stderr */

    assert_int_equal(cli("runs search --view deleted", out, sizeof out), 0);
    assert_contains(out, hex[4]);
    assert_null(strstr(out, hex[1]));
}

static void cli_runs_search_reports_bad_input(void **state)
{
    (void)state;
    static char out[4096];
    assert_int_equal(cli("runs search \"params.lr = 0.01\"", out, sizeof out), 2);
    assert_contains(out, "column 13");
    assert_contains(out, "quoted string");
    assert_int_equal(cli("runs search --view sideways", out, sizeof out), 2);
    assert_contains(out, "--view");
    assert_int_equal(cli("runs search --max 0", out, sizeof out), 2);
    assert_int_equal(cli("runs search --experiment nope", out, sizeof out), 1);
    assert_contains(out, "no experiment 'nope'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_filter_matches_every_active_run_newest_first),
        cmocka_unit_test(metrics_compare_their_latest_value),
        cmocka_unit_test(params_compare_as_strings),
        cmocka_unit_test(tags_compare_as_strings),
        cmocka_unit_test(quoting_of_names_and_constants),
        cmocka_unit_test(attributes_of_the_run),
        cmocka_unit_test(numeric_attributes),
        cmocka_unit_test(datasets_match_any_input),
        cmocka_unit_test(prefix_aliases),
        cmocka_unit_test(clauses_join_with_and_in_any_case),
        cmocka_unit_test(bad_filters_name_the_column_and_the_problem),
        cmocka_unit_test(filter_parse_and_match_one_run),
        cmocka_unit_test(param_and_tag_point_lookups),
        cmocka_unit_test(order_by_metric_puts_nan_then_missing_last),
        cmocka_unit_test(order_by_params_tags_and_attributes),
        cmocka_unit_test(bad_order_by_is_refused),
        cmocka_unit_test(pages_follow_tokens_to_the_end),
        cmocka_unit_test(a_token_from_another_query_is_refused),
        cmocka_unit_test(views_and_experiments_choose_the_runs),
        cmocka_unit_test(max_results_is_bounded),
        cmocka_unit_test(experiments_filter_order_and_pages),
        cmocka_unit_test(bad_experiment_queries_are_refused),
        cmocka_unit_test(cli_runs_search_prints_the_matching_runs),
        cmocka_unit_test(cli_runs_search_reports_bad_input),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
