/* cmd_runs_show.c — `sidetrack runs show RUN`: everything about one run.
 *
 * One read transaction gathers the run's row, its experiment's name, params, tags, the
 * summary of every metric (latest, count, min, max: the store keeps them, so no history is
 * read) and its artifacts; then the transaction ends and the run is printed as sections of
 * text, or as one JSON object. The pieces that the models commands print of a run too (its
 * key/value pairs, its metric summaries) are here, shared through cli.h.
 */
#include "cli.h"
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct run_details {
    struct store_run run;
    struct store_experiment experiment;
    bool has_experiment;
    struct cli_strv params; /* key, value, key, value, ... in key order */
    struct cli_strv tags;
    struct cli_metrics metrics;
    struct cli_artifacts artifacts;
    struct cli_strv versions; /* "model", "3", ...: the model versions made from the run */
};

/* ---- key/value pairs and metric summaries, shared with the models commands (cli.h) ---- */

int cli_collect_pair(const char *key, const char *value, void *arg)
{
    int r = cli_strv_add(arg, key);
    return r < 0 ? r : cli_strv_add(arg, value);
}

void cli_print_pairs(const char *title, const struct cli_strv *kv)
{
    printf("\n%s\n", title);
    if (!kv->n)
        puts("  (none)");
    for (size_t i = 0; i + 1 < kv->n; i += 2) {
        fputs("  ", stdout);
        print_text(stdout, kv->v[i]);
        fputs(" = ", stdout);
        print_text(stdout, kv->v[i + 1]);
        fputc('\n', stdout);
    }
}

void cli_json_pairs(struct json *j, const char *name, const struct cli_strv *kv)
{
    json_key(j, name);
    json_begin_object(j, false);
    for (size_t i = 0; i + 1 < kv->n; i += 2)
        json_kv_string(j, kv->v[i], kv->v[i + 1]);
    json_end_object(j);
}

int cli_collect_metric(const char *key, const struct store_metric_summary *s, void *arg)
{
    struct cli_metrics *l = arg;
    struct cli_metric m = {.key = strdup(key), .s = *s};
    if (!m.key)
        return -ENOMEM;
    int r = cli_push(&l->v, &l->n, &l->cap, sizeof m, &m);
    if (r < 0)
        free(m.key);
    return r;
}

void cli_metrics_free(struct cli_metrics *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* ---- runs show ---- */

static void run_details_free(struct run_details *d)
{
    cli_strv_free(&d->params);
    cli_strv_free(&d->tags);
    cli_metrics_free(&d->metrics);
    free(d->artifacts.v);
    cli_strv_free(&d->versions);
}

static int collect_version(const struct store_mv *v, void *arg)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v->version);
    int r = cli_strv_add(arg, v->name);
    return r < 0 ? r : cli_strv_add(arg, num);
}

/* Reads everything about the run in one transaction; the caller prints after it ended. */
static int gather_run(struct cli *c, const char *arg, struct run_details *d)
{
    struct store_txn *t;
    uint8_t id[16];
    char hex[33];
    int r;
    if (cli_begin_run(c, arg, &t, id) != CLI_OK)
        return CLI_FAIL;
    store_run_id_hex(id, hex);
    const char *what = "info";
    r = store_run_get(t, id, &d->run);
    if (r == 0) {
        int e = store_experiment_get(t, d->run.experiment_id, &d->experiment);
        d->has_experiment = e == 0;
        r = e == -ENOENT ? 0 : e; /* a placeholder run's experiment may not exist yet */
    }
    if (r == 0) {
        what = "params";
        r = store_params_foreach(t, id, cli_collect_pair, &d->params);
    }
    if (r == 0) {
        what = "tags";
        r = store_tags_foreach(t, id, cli_collect_pair, &d->tags);
    }
    if (r == 0) {
        what = "metrics";
        r = store_metric_keys_foreach(t, id, cli_collect_metric, &d->metrics);
    }
    if (r == 0) {
        what = "artifacts";
        r = store_artifacts_foreach(t, id, cli_collect_artifact, &d->artifacts);
    }
    if (r == 0) {
        what = "model versions";
        r = store_mv_by_run(t, hex, collect_version, &d->versions);
    }
    store_abort(t);
    if (r < 0)
        return cli_store_error(r, "cannot read the %s of run %s", what, hex);
    return CLI_OK;
}

/* ---- text ---- */

static int print_info(const struct run_details *d)
{
    const struct store_run *r = &d->run;
    char hex[33], buf[128];
    struct table tb;
    table_init(&tb, 2, 0);
    store_run_id_hex(r->id, hex);
    printf("run %s\n", hex);
    table_cell(&tb, "name");
    table_cell(&tb, *r->name ? r->name : "-");
    table_cell(&tb, "experiment");
    if (d->has_experiment)
        table_cellf(&tb, "%s (id %llu)", d->experiment.name,
                    (unsigned long long)r->experiment_id);
    else
        table_cellf(&tb, "#%llu (unknown)", (unsigned long long)r->experiment_id);
    table_cell(&tb, "status");
    table_cell(&tb, store_run_status_name(r->status));
    table_cell(&tb, "start");
    format_time_ms(buf, sizeof buf, r->start_ms, true);
    table_cell(&tb, buf);
    table_cell(&tb, "end");
    format_time_ms(buf, sizeof buf, r->end_ms, true);
    table_cell(&tb, buf);
    table_cell(&tb, "duration");
    cli_run_duration(r, cli_now_ms(), buf, sizeof buf);
    table_cell(&tb, buf);
    table_cell(&tb, "user");
    table_cellf(&tb, "%s (uid %" PRIu32 ")", *r->user ? r->user : "-", r->uid);
    table_cell(&tb, "host");
    table_cellf(&tb, "%s (pid %" PRIu32 ")", *r->host ? r->host : "-", r->pid);
    if (r->has_parent) {
        store_run_id_hex(r->parent, hex);
        table_cell(&tb, "parent");
        table_cell(&tb, hex);
    }
    int err = table_print(&tb, stdout, "  ");
    table_free(&tb);
    return err;
}

static void cell_double(struct table *tb, double v, bool nan_is_none)
{
    char buf[40];
    if (nan_is_none && isnan(v)) {
        table_cell(tb, "-");
        return;
    }
    format_double_short(buf, sizeof buf, v);
    table_cell(tb, buf);
}

static int print_metrics(const struct run_details *d)
{
    puts("\nmetrics");
    if (!d->metrics.n) {
        puts("  (none)");
        return 0;
    }
    struct table tb;
    table_init(&tb, 6, 0x3e); /* numbers right-aligned */
    static const char *const head[] = {"KEY", "LATEST", "STEP", "COUNT", "MIN", "MAX"};
    for (size_t i = 0; i < 6; i++)
        table_cell(&tb, head[i]);
    for (size_t i = 0; i < d->metrics.n; i++) {
        const struct cli_metric *m = &d->metrics.v[i];
        table_cell(&tb, m->key);
        cell_double(&tb, m->s.latest.value, false);
        table_cellf(&tb, "%" PRId64, m->s.latest.step);
        table_cellf(&tb, "%" PRIu64, m->s.count);
        cell_double(&tb, m->s.min, true); /* NaN: no value that is not NaN */
        cell_double(&tb, m->s.max, true);
    }
    int r = table_print(&tb, stdout, "  ");
    table_free(&tb);
    return r;
}

static int print_artifacts(const struct run_details *d)
{
    puts("\nartifacts");
    if (!d->artifacts.n) {
        puts("  (none)");
        return 0;
    }
    struct table tb;
    table_init(&tb, 3, 0x2);
    table_cell(&tb, "PATH");
    table_cell(&tb, "SIZE");
    table_cell(&tb, "SHA256");
    for (size_t i = 0; i < d->artifacts.n; i++) {
        char sha[65];
        format_hex(d->artifacts.v[i].sha256, 32, sha);
        table_cell(&tb, d->artifacts.v[i].path);
        table_cellf(&tb, "%" PRIu64, d->artifacts.v[i].size);
        table_cell(&tb, sha);
    }
    int r = table_print(&tb, stdout, "  ");
    table_free(&tb);
    return r;
}

/* ---- JSON ---- */

/* min and max are null when the series holds no value that is not NaN. */
static void json_kv_double_or_null(struct json *j, const char *key, double v)
{
    json_key(j, key);
    if (isnan(v))
        json_null(j);
    else
        json_double(j, v);
}

static void json_metrics(struct json *j, const struct run_details *d)
{
    json_key(j, "metrics");
    json_begin_array(j, false);
    for (size_t i = 0; i < d->metrics.n; i++) {
        const struct cli_metric *m = &d->metrics.v[i];
        json_begin_object(j, true);
        json_kv_string(j, "key", m->key);
        json_key(j, "latest");
        json_begin_object(j, true);
        json_kv_double(j, "value", m->s.latest.value);
        json_kv_int(j, "step", m->s.latest.step);
        json_kv_int(j, "timestamp", m->s.latest.ts_ms);
        json_end_object(j);
        json_kv_uint(j, "count", m->s.count);
        json_kv_double_or_null(j, "min", m->s.min);
        json_kv_double_or_null(j, "max", m->s.max);
        json_end_object(j);
    }
    json_end_array(j);
}

static void json_artifacts(struct json *j, const struct run_details *d)
{
    json_key(j, "artifacts");
    json_begin_array(j, false);
    for (size_t i = 0; i < d->artifacts.n; i++) {
        char sha[65];
        format_hex(d->artifacts.v[i].sha256, 32, sha);
        json_begin_object(j, true);
        json_kv_string(j, "path", d->artifacts.v[i].path);
        json_kv_uint(j, "size", d->artifacts.v[i].size);
        json_kv_string(j, "sha256", sha);
        json_end_object(j);
    }
    json_end_array(j);
}

static void print_run_json(const struct run_details *d)
{
    struct json j;
    json_init(&j, stdout);
    json_begin_object(&j, false);
    json_key(&j, "info");
    json_begin_object(&j, false);
    cli_json_run_info(&j, &d->run, d->has_experiment ? d->experiment.name : NULL);
    json_key(&j, "parent_run_id");
    if (d->run.has_parent) {
        char hex[33];
        store_run_id_hex(d->run.parent, hex);
        json_string(&j, hex);
    } else {
        json_null(&j);
    }
    json_end_object(&j);
    cli_json_pairs(&j, "params", &d->params);
    cli_json_pairs(&j, "tags", &d->tags);
    json_metrics(&j, d);
    json_artifacts(&j, d);
    json_key(&j, "model_versions");
    json_begin_array(&j, false);
    for (size_t i = 0; i + 1 < d->versions.n; i += 2) {
        json_begin_object(&j, true);
        json_kv_string(&j, "name", d->versions.v[i]);
        json_kv_uint(&j, "version", strtoull(d->versions.v[i + 1], NULL, 10));
        json_end_object(&j);
    }
    json_end_array(&j);
    json_end_object(&j);
    json_finish(&j);
}

static void runs_show_usage(FILE *f)
{
    fputs("Usage: sidetrack runs show RUN [--json]\n"
          "\n"
          "Shows one run: its info, params (key = value), tags, metrics (latest value and its\n"
          "step, count, min, max), artifacts (path, size, sha256) and the model versions\n"
          "registered from it.\n"
          "RUN is the run's id: 32 hex digits, or a unique prefix of at least 4.\n"
          "\n"
          "Options:\n"
          "      --json      one JSON object: {info, params, tags, metrics, artifacts,\n"
          "                  model_versions}\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

int cmd_runs_show(struct cli *c, int argc, char **argv)
{
    static const struct cli_syntax syntax = {"runs show", cli_json_options, runs_show_usage,
                                             .max_args = 1};
    const char *run = NULL;
    bool json = false;
    int parsed = cli_args_json(c, &syntax, argc, argv, &json, &run);
    if (parsed != CLI_ARG_END)
        return parsed;
    if (!run)
        return cli_usage_error(syntax.cmd, "missing RUN");

    struct run_details d = {0};
    int rc = gather_run(c, run, &d);
    if (rc == CLI_OK && json) {
        print_run_json(&d);
    } else if (rc == CLI_OK) {
        int r = print_info(&d);
        cli_print_pairs("params", &d.params);
        cli_print_pairs("tags", &d.tags);
        if (r == 0)
            r = print_metrics(&d);
        if (r == 0)
            r = print_artifacts(&d);
        if (r == 0 && d.versions.n) { /* lineage: what the registry made of this run */
            puts("\nmodel versions");
            for (size_t i = 0; i + 1 < d.versions.n; i += 2) {
                fputs("  ", stdout);
                print_text(stdout, d.versions.v[i]);
                printf(" v%s\n", d.versions.v[i + 1]);
            }
        }
        if (r < 0)
            rc = cli_store_error(r, "cannot print the run");
    }
    run_details_free(&d);
    return rc;
}
