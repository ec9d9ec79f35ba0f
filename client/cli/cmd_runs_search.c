/* cmd_runs_search.c — `sidetrack runs search [FILTER]`: the runs that match an MLflow search
 * filter, in the order asked, one page at a time.
 *
 * The search is the store library's (store/search.h), the same code that answers MLflow's
 * runs/search on the server, so a filter means the same on the command line as over the API.
 * One read transaction resolves the experiment names, runs the search and reads the runs of
 * the page; the output is `runs list`'s table or JSON. When more runs match than --max, the
 * token of the next page is said on stderr, so that stdout stays the table or the JSON.
 */
#include "cli.h"
#include "search.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void runs_search_usage(FILE *f)
{
    fputs("Usage: sidetrack runs search [FILTER] [--order-by KEY [ASC|DESC]]... [--max N]\n"
          "                             [--experiment NAME]... [--view active|deleted|all]\n"
          "                             [--page-token TOKEN] [--json]\n"
          "\n"
          "Lists the runs that match FILTER, an MLflow search filter: clauses joined by AND,\n"
          "such as \"metrics.acc > 0.9 and params.lr = '0.01' and tags.team LIKE 'vi%'\n"
          "and attributes.status = 'FINISHED'\". No FILTER: every run. Output as for\n"
          "'sidetrack runs list'. docs/cli.md describes the whole language.\n"
          "\n"
          "Options:\n"
          "  -o, --order-by KEY     order by metrics.X, params.X, tags.X or an attribute\n"
          "                         (start_time, end_time, run_name, status, user_id,\n"
          "                         run_id), then ASC (default) or DESC; repeat for ties.\n"
          "                         Default: start_time DESC. Missing values come last\n"
          "  -n, --max N            at most N runs (1 to 50000; default 1000)\n"
          "  -e, --experiment NAME  only this experiment's runs (repeatable)\n"
          "      --view VIEW        active (default), deleted or all runs\n"
          "      --page-token T     the next page, as the previous search said\n"
          "      --json             a JSON array, as 'runs list --json' prints\n"
          "  -d, --data DIR         the store's directory\n"
          "  -h, --help             show this help\n",
          f);
}

enum { OPT_ORDER = CLI_OPT_FIRST, OPT_MAX, OPT_EXPERIMENT, OPT_VIEW, OPT_TOKEN, OPT_JSON };

struct search_args {
    const char *filter;
    struct cli_strv order, experiments;
    size_t max;
    int view;
    const char *token;
    bool json;
};

static int parse_view(const char *v, int *view)
{
    if (strcmp(v, "active") == 0)
        *view = STORE_VIEW_ACTIVE;
    else if (strcmp(v, "deleted") == 0)
        *view = STORE_VIEW_DELETED;
    else if (strcmp(v, "all") == 0)
        *view = STORE_VIEW_ALL;
    else
        return cli_usage_error("runs search", "--view '%s': use active, deleted or all", v);
    return CLI_OK;
}

static int parse_max(const char *v, size_t *max)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < 1 || n > STORE_SEARCH_MAX_MAX)
        return cli_usage_error("runs search", "--max '%s': give a number from 1 to %u", v,
                               STORE_SEARCH_MAX_MAX);
    *max = (size_t)n;
    return CLI_OK;
}

static int parse_args(struct cli *c, int argc, char **argv, struct search_args *s)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"order-by", 'o', true, OPT_ORDER},
        {"max", 'n', true, OPT_MAX},
        {"experiment", 'e', true, OPT_EXPERIMENT},
        {"view", 0, true, OPT_VIEW},
        {"page-token", 0, true, OPT_TOKEN},
        {"json", 0, false, OPT_JSON},
        {0},
    };
    static const struct cli_syntax syntax = {"runs search", opts, runs_search_usage,
                                             .max_args = 1};
    const char *v;
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        int rc = CLI_OK;
        switch (o) {
        case CLI_ARG_POSITIONAL: s->filter = v; break;
        case OPT_ORDER:
            if (cli_strv_add(&s->order, v) < 0)
                rc = cli_store_error(-ENOMEM, "cannot read the options");
            break;
        case OPT_EXPERIMENT:
            if (cli_strv_add(&s->experiments, v) < 0)
                rc = cli_store_error(-ENOMEM, "cannot read the options");
            break;
        case OPT_MAX: rc = parse_max(v, &s->max); break;
        case OPT_VIEW: rc = parse_view(v, &s->view); break;
        case OPT_TOKEN: s->token = v; break;
        case OPT_JSON: s->json = true; break;
        default: return a.exit;
        }
        if (rc != CLI_OK)
            return rc;
    }
    return CLI_ARG_END;
}

struct found {
    struct store_run *runs;
    size_t n;
    struct cli_experiments e;
    char next[128];
};

/* The experiments' ids, the search, and the runs of the page: one read transaction. */
static int run_search(struct cli *c, const struct search_args *s, struct found *out)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    int rc = CLI_OK;
    uint64_t *ids = s->experiments.n ? calloc(s->experiments.n, sizeof *ids) : NULL;
    if (s->experiments.n && !ids)
        rc = cli_store_error(-ENOMEM, "cannot search the runs");
    for (size_t i = 0; rc == CLI_OK && i < s->experiments.n; i++) {
        struct store_experiment x;
        int r = store_experiment_by_name(t, s->experiments.v[i], &x);
        if (r == -ENOENT)
            rc = cli_report_no_experiment(t, s->experiments.v[i]);
        else if (r < 0)
            rc = cli_store_error(r, "cannot look up experiment '%s'", s->experiments.v[i]);
        else
            ids[i] = x.id;
    }
    struct store_run_query q = {.experiment_ids = ids, .n_experiments = s->experiments.n,
                                .filter = s->filter, .view = s->view,
                                .order_by = (const char *const *)s->order.v,
                                .n_order_by = s->order.n, .max_results = s->max,
                                .page_token = s->token};
    struct store_run_page page = {0};
    char err[512];
    if (rc == CLI_OK) {
        int r = store_search_runs(t, &q, &page, err, sizeof err);
        if (r == -EINVAL)
            rc = cli_usage_error("runs search", "%s", err);
        else if (r < 0)
            rc = cli_store_error(r, "cannot search the runs");
    }
    if (rc == CLI_OK && page.n && !(out->runs = calloc(page.n, sizeof *out->runs)))
        rc = cli_store_error(-ENOMEM, "cannot search the runs");
    for (size_t i = 0; rc == CLI_OK && i < page.n; i++) {
        int r = store_run_get(t, page.ids[i], &out->runs[i]);
        if (r < 0)
            rc = cli_store_error(r, "cannot read a run");
        out->n = i + 1;
    }
    if (rc == CLI_OK)
        rc = cli_experiments_load(t, &out->e);
    snprintf(out->next, sizeof out->next, "%s", page.next_page_token);
    store_run_page_free(&page);
    free(ids);
    store_abort(t);
    return rc;
}

int cmd_runs_search(struct cli *c, int argc, char **argv)
{
    struct search_args s = {0};
    struct found f = {0};
    int rc = parse_args(c, argc, argv, &s);
    if (rc != CLI_ARG_END) /* --help was shown, or a usage error said */
        goto out;
    rc = run_search(c, &s, &f);
    if (rc != CLI_OK)
        goto out;
    if (s.json)
        cli_print_runs_json(f.runs, f.n, &f.e);
    else
        rc = cli_print_runs_table(f.runs, f.n, &f.e);
    /* after stdout's output, so that a terminal shows it last */
    if (rc == CLI_OK && f.next[0] && cli_flush_stdout() == CLI_OK)
        fprintf(stderr, "sidetrack: more runs match: the next page is '--page-token %s'\n",
                f.next);
out:
    free(f.runs);
    cli_experiments_free(&f.e);
    cli_strv_free(&s.order);
    cli_strv_free(&s.experiments);
    return rc;
}
