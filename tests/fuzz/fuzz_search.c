/* fuzz_search.c — libFuzzer target: the search language's parser and evaluator
 * (store/search_filter.c, store/search.c), on filters and order_by entries that an HTTP client
 * or a command line controls.
 *
 * Input: lines. The first is a run filter (and, as well, an experiment filter); each further
 * line is an order_by entry (at most 4). They run against a small store made once, in a
 * scratch directory, with runs that have params, tags, metrics (NaN included) and datasets,
 * so that matching, LIKE and ordering are reached too.
 *
 * Besides "no crash": a search returns 0 or -EINVAL, and -EINVAL always with a message that
 * names a column; a page never repeats a run nor holds more runs than the store. */
#include "search.h"
#include "store.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NRUNS 6
static struct store *st;
static char dir[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void cleanup(void)
{
    store_close(st);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void make_store(void)
{
    strcpy(dir, "/tmp/stfuzz-search.XXXXXX");
    struct store_txn *t;
    uint64_t exp;
    if (!mkdtemp(dir) || store_open(&st, dir, STORE_NOSYNC, 0) != 0 ||
        store_begin(st, true, &t) != 0 || store_experiment_create(t, "mnist", 1000, &exp) != 0)
        abort();
    store_exp_tag_set(t, exp, "owner", "alice");
    static const char *const names[] = {"lucky-fox", "brave-owl", "", "calm-cat", "it's", "x"};
    for (int i = 0; i < NRUNS; i++) {
        struct store_run r = {.experiment_id = i % 2 ? exp : 0, .status = 1 + i % 5,
                              .start_ms = i == 2 ? 0 : 1000 * (i % 3), .deleted = false};
        memset(r.id, 0xa0, 16);
        r.id[15] = (uint8_t)i;
        snprintf(r.name, sizeof r.name, "%s", names[i]);
        snprintf(r.user, sizeof r.user, "user%d", i % 2);
        char v[64];
        struct store_point p = {.step = i, .ts_ms = 1, .value = i == 3 ? NAN : i * 0.25};
        snprintf(v, sizeof v, "0.%d", i);
        if (store_run_start(t, &r) != 0 || store_param_put(t, r.id, "lr", v) < 0 ||
            store_tag_set(t, r.id, i % 2 ? "team" : "note", i % 3 ? "vision" : "Vi%_") < 0 ||
            store_metric_append(t, r.id, "acc", &p, 1) < 0)
            abort();
        snprintf(v, sizeof v, "{\"tags\":[{\"key\":\"mlflow.data.context\",\"value\":\"t%d\"}],"
                              "\"dataset\":{\"name\":\"d%d\",\"digest\":\"g%d\"}}", i, i % 2, i);
        if (i != 4 && store_input_put(t, r.id, "in", i == 5 ? "not json" : v) < 0)
            abort();
        if (i == 1 && store_run_set_deleted(t, r.id, true) < 0)
            abort();
    }
    if (store_commit(t) != 0)
        abort();
    atexit(cleanup);
}

static void check_err(int rc, const char *err)
{
    if (rc != 0 && rc != -EINVAL)
        abort();
    if (rc == -EINVAL && !strstr(err, "column") && !strstr(err, "max_results"))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    if (!st)
        make_store();
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    const char *order[4];
    size_t norder = 0;
    for (char *nl = strchr(text, '\n'); nl && norder < 4; nl = strchr(nl + 1, '\n')) {
        *nl = '\0';
        order[norder++] = nl + 1;
    }
    char err[512] = "";
    struct store_txn *t;
    if (store_begin(st, false, &t) != 0)
        abort();
    struct store_run_query q = {.filter = text, .order_by = order, .n_order_by = norder,
                                .view = STORE_VIEW_ALL, .max_results = 4};
    struct store_run_page p;
    int rc = store_search_runs(t, &q, &p, err, sizeof err);
    check_err(rc, err);
    if (rc == 0) {
        if (p.n > 4)
            abort();
        for (size_t i = 0; i < p.n; i++)
            for (size_t j = 0; j < i; j++)
                if (memcmp(p.ids[i], p.ids[j], 16) == 0)
                    abort();
        if (p.next_page_token[0]) {
            struct store_run_page p2;
            q.page_token = p.next_page_token;
            if (store_search_runs(t, &q, &p2, err, sizeof err) != 0 || p.n + p2.n > NRUNS)
                abort();
            store_run_page_free(&p2);
        }
        store_run_page_free(&p);
    }
    struct store_exp_query eq = {.filter = text, .order_by = order, .n_order_by = norder,
                                 .view = STORE_VIEW_ALL};
    struct store_exp_page ep;
    rc = store_search_experiments(t, &eq, &ep, err, sizeof err);
    check_err(rc, err);
    if (rc == 0)
        store_exp_page_free(&ep);
    store_abort(t);
    free(text);
    return 0;
}
