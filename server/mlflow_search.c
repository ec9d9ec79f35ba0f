/* mlflow_search.c — runs/search and experiments/search: the request's fields into the store's
 * search (store/search.h, MLflow's filter language and ordering), the page into JSON. */
#include "mlflow_internal.h"
#include "search.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ViewType: ACTIVE_ONLY, DELETED_ONLY, ALL (the enum's numbers are the store's too). */
static bool read_view(struct mf *m, const char *field, int *view)
{
    const char *v;
    *view = STORE_VIEW_ACTIVE;
    if (!mf_str(m, field, false, &v))
        return !m->failed;
    if (!strcmp(v, "ACTIVE_ONLY") || !strcmp(v, "1"))
        *view = STORE_VIEW_ACTIVE;
    else if (!strcmp(v, "DELETED_ONLY") || !strcmp(v, "2"))
        *view = STORE_VIEW_DELETED;
    else if (!strcmp(v, "ALL") || !strcmp(v, "3"))
        *view = STORE_VIEW_ALL;
    else {
        mf_invalid(m, "Invalid value '%s' for parameter '%s': ACTIVE_ONLY, DELETED_ONLY or ALL",
                   v, field);
        return false;
    }
    return true;
}

static bool read_max(struct mf *m, size_t *max)
{
    int64_t v = 0;
    *max = 0;
    if (!mf_i64(m, "max_results", false, &v))
        return !m->failed;
    if (v <= 0 || v > MF_MAX_SEARCH_RESULTS) {
        mf_invalid(m, "Invalid value for request parameter max_results. It must be at most %d, "
                   "but got value %" PRId64, MF_MAX_SEARCH_RESULTS, v);
        return false;
    }
    *max = (size_t)v;
    return true;
}

/* order_by: an array of strings, as a const char * array (borrowed from m->p). */
static bool read_order(struct mf *m, const char ***out, size_t *n)
{
    json_t *a = mf_array(m, "order_by");
    *out = NULL;
    *n = 0;
    if (!a)
        return false;
    *n = json_array_size(a);
    if (!*n)
        return true;
    if (!(*out = calloc(*n, sizeof **out))) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        return false;
    }
    for (size_t i = 0; i < *n; i++)
        if (!((*out)[i] = json_string_value(json_array_get(a, i)))) {
            mf_invalid(m, "order_by must be a list of strings");
            return false;
        }
    return true;
}

void mf_search_runs(struct mf *m)
{
    struct store_run_query q = {0};
    json_t *exps = mf_array(m, "experiment_ids");
    const char **order = NULL;
    uint64_t *ids = NULL;
    if (!exps || (mf_str(m, "filter", false, &q.filter), m->failed) ||
        !read_view(m, "run_view_type", &q.view) || !read_max(m, &q.max_results) ||
        (mf_str(m, "page_token", false, &q.page_token), m->failed) ||
        !read_order(m, &order, &q.n_order_by))
        goto out;
    q.order_by = order;
    q.n_experiments = json_array_size(exps);
    if (q.n_experiments && !(ids = calloc(q.n_experiments, sizeof *ids))) {
        mf_error(m, 500, "INTERNAL_ERROR", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < q.n_experiments; i++) {
        json_t *e = json_array_get(exps, i);
        char buf[32];
        const char *text = json_string_value(e);
        if (json_is_integer(e)) {
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(e));
            text = buf;
        }
        if (!text) {
            mf_invalid(m, "experiment_ids must be a list of strings");
            goto out;
        }
        if (!mf_exp_id(m, text, &ids[i]))
            goto out;
    }
    q.experiment_ids = ids;
    struct store_txn *t;
    if (!mf_begin_read(m, &t))
        goto out;
    struct store_run_page page = {0};
    char err[512] = "";
    int rc = store_search_runs(t, &q, &page, err, sizeof err);
    if (rc == -EINVAL) {
        mf_invalid(m, "%s", err[0] ? err : "invalid search");
    } else if (rc < 0) {
        mf_store_error(m, rc, "search");
    } else {
        json_t *runs = json_array(), *body = json_object();
        for (size_t i = 0; i < page.n; i++) {
            struct store_run r;
            if (store_run_get(t, page.ids[i], &r) == 0)
                json_array_append_new(runs, mf_run_json(t, &r));
        }
        if (json_array_size(runs))
            json_object_set_new(body, "runs", runs);
        else
            json_decref(runs);
        if (page.next_page_token[0])
            json_object_set_new(body, "next_page_token", json_string(page.next_page_token));
        mf_ok(m, body);
    }
    store_run_page_free(&page);
    store_abort(t);
out:
    free(order);
    free(ids);
}

void mf_search_experiments(struct mf *m)
{
    struct store_exp_query q = {0};
    const char **order = NULL;
    if ((mf_str(m, "filter", false, &q.filter), m->failed) ||
        !read_view(m, "view_type", &q.view) || !read_max(m, &q.max_results) ||
        (mf_str(m, "page_token", false, &q.page_token), m->failed) ||
        !read_order(m, &order, &q.n_order_by))
        goto out;
    q.order_by = order;
    struct store_txn *t;
    if (!mf_begin_read(m, &t))
        goto out;
    struct store_exp_page page = {0};
    char err[512] = "";
    int rc = store_search_experiments(t, &q, &page, err, sizeof err);
    if (rc == -EINVAL) {
        mf_invalid(m, "%s", err[0] ? err : "invalid search");
    } else if (rc < 0) {
        mf_store_error(m, rc, "search");
    } else {
        json_t *exps = json_array(), *body = json_object();
        for (size_t i = 0; i < page.n; i++) {
            struct store_experiment e;
            if (store_experiment_get(t, page.ids[i], &e) == 0)
                json_array_append_new(exps, mf_experiment_json(t, &e));
        }
        if (json_array_size(exps))
            json_object_set_new(body, "experiments", exps);
        else
            json_decref(exps);
        if (page.next_page_token[0])
            json_object_set_new(body, "next_page_token", json_string(page.next_page_token));
        mf_ok(m, body);
    }
    store_exp_page_free(&page);
    store_abort(t);
out:
    free(order);
}
