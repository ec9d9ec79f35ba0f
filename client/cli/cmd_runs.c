/* cmd_runs.c — `sidetrack runs`: its subcommands' dispatch, and `runs list` (whose table and
 * JSON `runs search` prints too).
 *
 * `runs list` gathers every run (of one experiment, with --experiment) in one read
 * transaction, ends it, sorts by start time, newest first (MLflow's default order; ties by
 * run id), and prints a table or a JSON array. Runs whose start is unknown (a placeholder
 * made by records that arrived before the run's start) sort last.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void runs_usage(FILE *f)
{
    fputs("Usage: sidetrack runs list [--experiment NAME] [--json]\n"
          "       sidetrack runs show RUN [--json]\n"
          "       sidetrack runs search [FILTER] [--order-by KEY]... [--max N] [--json] ...\n"
          "\n"
          "  list    every run, newest first: id, experiment, name, status, start, duration,\n"
          "          user\n"
          "  show    one run: its info, params, tags, metrics (latest, count, min, max) and\n"
          "          artifacts\n"
          "  search  the runs that match an MLflow filter (\"metrics.acc > 0.9 and ...\")\n"
          "\n"
          "'sidetrack runs list --help' (show, search) says more.\n",
          f);
}

int cmd_runs(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("runs", "missing subcommand: list, show or search");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        runs_usage(stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "list") == 0)
        return cmd_runs_list(c, argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0)
        return cmd_runs_show(c, argc - 1, argv + 1);
    if (strcmp(sub, "search") == 0)
        return cmd_runs_search(c, argc - 1, argv + 1);
    if (sub[0] == '-')
        return cli_usage_error("runs", "unknown option '%s' (options go after list, show or "
                               "search)", sub);
    return cli_usage_error("runs", "unknown subcommand '%s': use list, show or search", sub);
}

/* ---- shared with `runs show` ---- */

void cli_json_run_info(struct json *j, const struct store_run *r, const char *experiment)
{
    char hex[33], exp_id[24];
    store_run_id_hex(r->id, hex);
    snprintf(exp_id, sizeof exp_id, "%llu", (unsigned long long)r->experiment_id);
    json_kv_string(j, "run_id", hex);
    json_kv_string(j, "experiment_id", exp_id);
    json_key(j, "experiment");
    if (experiment)
        json_string(j, experiment);
    else
        json_null(j);
    json_kv_string(j, "run_name", r->name);
    json_kv_string(j, "status", store_run_status_name(r->status));
    json_kv_int(j, "start_time", r->start_ms);
    json_key(j, "end_time");
    if (r->end_ms)
        json_int(j, r->end_ms);
    else
        json_null(j);
    json_kv_string(j, "user", r->user);
    json_kv_string(j, "host", r->host);
    json_kv_uint(j, "uid", r->uid);
    json_kv_uint(j, "pid", r->pid);
}

void cli_run_duration(const struct store_run *r, int64_t now_ms, char *buf, size_t len)
{
    if (r->start_ms && r->end_ms)
        format_duration(buf, len, r->end_ms - r->start_ms);
    else if (r->start_ms && r->status == STORE_RUN_RUNNING)
        format_duration(buf, len, now_ms - r->start_ms);
    else
        snprintf(buf, len, "-");
}

/* ---- runs list ---- */

struct run_list {
    struct store_run *v;
    size_t n, cap;
    bool filter;
    uint64_t experiment_id;
};

static int collect_run(const struct store_run *r, void *arg)
{
    struct run_list *l = arg;
    if (cli_stop_signal)
        return -EINTR;
    if (l->filter && r->experiment_id != l->experiment_id)
        return 0;
    return cli_push(&l->v, &l->n, &l->cap, sizeof *l->v, r);
}

/* Newest first; unknown starts (0) last; ties by id, ascending. */
static int by_start_desc(const void *pa, const void *pb)
{
    const struct store_run *a = pa, *b = pb;
    if (a->start_ms != b->start_ms) {
        if (!a->start_ms || !b->start_ms)
            return a->start_ms ? -1 : 1;
        return a->start_ms > b->start_ms ? -1 : 1;
    }
    return memcmp(a->id, b->id, 16);
}

static int collect_experiment_name(const struct store_experiment *e, void *arg)
{
    return cli_strv_add(arg, e->name);
}

int cli_report_no_experiment(struct store_txn *t, const char *name)
{
    struct cli_strv names = {0};
    char list[1024] = "";
    if (store_experiment_foreach(t, collect_experiment_name, &names) == 0)
        cli_strv_join(&names, 20, list, sizeof list);
    cli_strv_free(&names);
    cli_error("no experiment '%s'%s%s", name, *list ? "; experiments: " : "", list);
    return CLI_FAIL;
}

/* Fills l (and e) in one read transaction. */
static int gather_runs(struct cli *c, const char *experiment, struct run_list *l,
                       struct cli_experiments *e)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    int rc = CLI_OK;
    if (experiment) {
        struct store_experiment x = {0};
        int r = store_experiment_by_name(t, experiment, &x);
        if (r == -ENOENT)
            rc = cli_report_no_experiment(t, experiment);
        else if (r < 0)
            rc = cli_store_error(r, "cannot look up experiment '%s'", experiment);
        l->filter = true;
        l->experiment_id = x.id;
    }
    if (rc == CLI_OK)
        rc = cli_experiments_load(t, e);
    if (rc == CLI_OK) {
        int r = store_run_foreach(t, collect_run, l);
        if (r < 0)
            rc = cli_store_error(r, "cannot read the runs");
    }
    store_abort(t);
    return rc;
}

int cli_print_runs_table(const struct store_run *runs, size_t n,
                         const struct cli_experiments *e)
{
    struct table tb;
    int64_t now = cli_now_ms();
    table_init(&tb, 7, 0);
    static const char *const head[] = {"RUN ID", "EXPERIMENT", "NAME", "STATUS",
                                       "START", "DURATION", "USER"};
    for (size_t i = 0; i < 7; i++)
        table_cell(&tb, head[i]);
    for (size_t i = 0; i < n; i++) {
        const struct store_run *r = &runs[i];
        const char *exp = cli_experiment_name(e, r->experiment_id);
        char hex[33], start[64], dur[32];
        store_run_id_hex(r->id, hex);
        format_time_ms(start, sizeof start, r->start_ms, false);
        cli_run_duration(r, now, dur, sizeof dur);
        table_cell(&tb, hex);
        if (exp)
            table_cell(&tb, exp);
        else
            table_cellf(&tb, "#%llu", (unsigned long long)r->experiment_id);
        table_cell(&tb, *r->name ? r->name : "-");
        table_cell(&tb, store_run_status_name(r->status));
        table_cell(&tb, start);
        table_cell(&tb, dur);
        table_cell(&tb, *r->user ? r->user : "-");
    }
    int r = table_print(&tb, stdout, "");
    table_free(&tb);
    if (r < 0)
        return cli_store_error(r, "cannot print the runs");
    return CLI_OK;
}

void cli_print_runs_json(const struct store_run *runs, size_t n, const struct cli_experiments *e)
{
    struct json j;
    json_init(&j, stdout);
    json_begin_array(&j, false);
    for (size_t i = 0; i < n; i++) {
        json_begin_object(&j, false);
        cli_json_run_info(&j, &runs[i], cli_experiment_name(e, runs[i].experiment_id));
        json_end_object(&j);
    }
    json_end_array(&j);
    json_finish(&j);
}

static void runs_list_usage(FILE *f)
{
    fputs("Usage: sidetrack runs list [--experiment NAME] [--json]\n"
          "\n"
          "Lists the runs in the store, newest first: run id, experiment, run name, status,\n"
          "start (local time), duration (so far, for a running run) and user.\n"
          "\n"
          "Options:\n"
          "  -e, --experiment NAME  only the runs of this experiment\n"
          "      --json             a JSON array of objects: run_id, experiment_id,\n"
          "                         experiment, run_name, status, start_time and end_time\n"
          "                         (ms since the epoch; end_time null while running),\n"
          "                         user, host, uid, pid\n"
          "  -d, --data DIR         the store's directory\n"
          "  -h, --help             show this help\n",
          f);
}

enum { OPT_EXPERIMENT = CLI_OPT_FIRST, OPT_JSON };

int cmd_runs_list(struct cli *c, int argc, char **argv)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"experiment", 'e', true, OPT_EXPERIMENT},
        {"json", 0, false, OPT_JSON},
        {0},
    };
    static const struct cli_syntax syntax = {"runs list", opts, runs_list_usage, .max_args = 0};
    const char *experiment = NULL, *v;
    bool json = false;
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case OPT_EXPERIMENT: experiment = v; break;
        case OPT_JSON: json = true; break;
        default: return a.exit;
        }
    }

    struct run_list l = {0};
    struct cli_experiments e = {0};
    int rc = gather_runs(c, experiment, &l, &e);
    if (rc == CLI_OK) {
        if (l.n)
            qsort(l.v, l.n, sizeof *l.v, by_start_desc);
        if (json)
            cli_print_runs_json(l.v, l.n, &e);
        else
            rc = cli_print_runs_table(l.v, l.n, &e);
    }
    free(l.v);
    cli_experiments_free(&e);
    return rc;
}
