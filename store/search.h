/* search.h — MLflow's search language over the store: runs/search and experiments/search.
 *
 * The filter language is MLflow 2.x's (mlflow/utils/search_utils.py): `identifier op constant`
 * clauses joined by AND (any case); no OR, no parentheses.
 *   metrics.KEY       = != > >= < <=  a number; the metric's latest value (store_metric_summary)
 *   params.KEY        = != LIKE ILIKE  a quoted string
 *   tags.KEY          = != LIKE ILIKE  a quoted string (tags.mlflow.runName falls back to the
 *                                      run's name when the tag itself is not stored)
 *   attributes.run_id|run_name|status|user_id|artifact_uri
 *                     = != LIKE ILIKE IN NOT IN  (IN: a list of quoted strings, ('a', 'b'))
 *   attributes.start_time|end_time|created   = != > >= < <=  a number (ms since the epoch)
 *   datasets.name|digest|context  = != LIKE ILIKE IN NOT IN; true when any of the run's
 *                     dataset inputs matches
 * Prefixes: metric(s), param(s)/parameter(s), tag(s), attr/attribute(s)/run, dataset(s),
 * in any case; no prefix means an attribute. `Run name` and `Created` are MLflow's aliases of
 * run_name and start_time. A name with other characters than letters, digits, _ . / - goes in
 * backticks or double quotes (metrics.`my metric`, params."a b"). String constants take single
 * or double quotes; a quote inside is doubled ('it''s') or backslashed ('it\'s'). LIKE: % any
 * run of characters, _ one character, case-sensitive; ILIKE ignores ASCII case.
 * A run that lacks the metric, param or tag of a clause does not match it (!= included).
 *
 * Where MLflow 2.12 is narrower, this accepts more: IN on every string attribute (MLflow: only
 * run_id), unquoted keys with / and -, prefixes in any case. Everything MLflow accepts means
 * the same here, except that escaped quotes in constants are unescaped (MLflow compares them
 * raw).
 *
 * Order: each order_by entry is an identifier (metrics, params, tags or an attribute) and an
 * optional ASC (default) or DESC. Missing values sort last either way, NaN metrics just
 * before them. Ties, and no order_by at all: start_time DESC (unknown starts last), then run
 * id ascending. Page tokens are opaque: an offset bound to a digest of the query (experiment
 * ids, filter, view, order_by), so a token given with another query is refused.
 *
 * Errors: -EINVAL with a sentence in err that names the 1-based column, the offending text and
 * what is wrong; -ENOMEM; or the store's errors. Nothing is printed.
 */
#ifndef SIDETRACK_STORE_SEARCH_H
#define SIDETRACK_STORE_SEARCH_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

struct store_filter;
/* Parses an MLflow run filter ("metrics.acc > 0.9 and params.lr = '0.01' and tags.team LIKE
 * 'vi%' and attributes.status = 'FINISHED'"). -EINVAL with a message in err that names what
 * is wrong and where (1-based column, and the offending text). NULL/"" parses as match-all. */
int store_filter_parse(const char *text, struct store_filter **out, char *err, size_t errlen);
/* The same for experiments/search: name, creation_time, last_update_time and tags.KEY. */
int store_filter_parse_experiments(const char *text, struct store_filter **out, char *err,
                                   size_t errlen);
void store_filter_free(struct store_filter *f); /* NULL accepted */
/* Whether run r (as store_run_get gives it) matches a run filter: 1 yes, 0 no, or a negative
 * errno from the store. The clauses on the run's own fields are tried first. */
int store_filter_match_run(struct store_txn *t, const struct store_filter *f,
                           const struct store_run *r);

enum store_view { STORE_VIEW_ACTIVE = 1, STORE_VIEW_DELETED = 2, STORE_VIEW_ALL = 3 };

#define STORE_SEARCH_DEFAULT_MAX 1000u
#define STORE_SEARCH_MAX_MAX 50000u

struct store_run_query {
    const uint64_t *experiment_ids; size_t n_experiments; /* none: every experiment */
    const char *filter;                  /* MLflow filter text; NULL or "": all */
    int view;                            /* enum store_view; 0 means ACTIVE */
    const char *const *order_by; size_t n_order_by; /* "metrics.rmse DESC", "start_time", ... */
    size_t max_results;                  /* 0: 1000; more than 50000: -EINVAL */
    const char *page_token;              /* from a previous page; NULL or "": first page */
};
struct store_run_page {
    uint8_t (*ids)[16]; size_t n;        /* malloc'd, in result order */
    char next_page_token[128];           /* "" when there are no more */
};
/* -EINVAL (bad filter, order_by, token or max_results) with a message in err. Reads only. */
int store_search_runs(struct store_txn *t, const struct store_run_query *q,
                      struct store_run_page *out, char *err, size_t errlen);
void store_run_page_free(struct store_run_page *p);

struct store_exp_query {
    const char *filter;                  /* "name LIKE 'a%' and tags.x = 'y'" (MLflow's) */
    int view;
    const char *const *order_by; size_t n_order_by; /* name, experiment_id, creation_time,
                                                       last_update_time; default: creation_time
                                                       DESC, then experiment_id ASC */
    size_t max_results;                  /* 0: 1000 */
    const char *page_token;
};
struct store_exp_page { uint64_t *ids; size_t n; char next_page_token[128]; };
int store_search_experiments(struct store_txn *t, const struct store_exp_query *q,
                             struct store_exp_page *out, char *err, size_t errlen);
void store_exp_page_free(struct store_exp_page *p);

#endif
