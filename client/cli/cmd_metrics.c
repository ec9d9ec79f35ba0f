/* cmd_metrics.c — `sidetrack metrics RUN KEY`: a metric's full history, in logged order;
 * with --steps S:E only the points whose step is in that range; with --view N a view of at
 * most N points that keeps the curve's shape (store_metric_view: min/max per step bucket).
 *
 * A history can hold millions of points, so it is printed from inside the read transaction,
 * chunk by chunk as the store decodes it, instead of being gathered first. A reader holds no
 * lock that the agent waits on (LMDB's MVCC), so this costs the agent nothing but the pages
 * it cannot reuse until we are done; a broken pipe or a Ctrl-C ends the transaction at once.
 *
 * CSV and JSON print values with "%.17g": read back, they give the exact bits that were
 * logged. NaN and infinities are `nan`, `inf`, `-inf` in CSV and `NaN`, `Infinity`,
 * `-Infinity` in JSON, as MLflow's JSON writes them (strict JSON has no way to say them).
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum format { FORMAT_CSV, FORMAT_JSON, FORMAT_TABLE };

struct history_out {
    enum format format;
    struct json j;
};

static void print_point(struct history_out *o, const struct store_point *p)
{
    char v[40], when[64];
    switch (o->format) {
    case FORMAT_CSV:
        format_double_csv(v, sizeof v, p->value);
        printf("%" PRId64 ",%" PRId64 ",%s\n", p->step, p->ts_ms, v);
        break;
    case FORMAT_JSON:
        json_begin_object(&o->j, true);
        json_kv_int(&o->j, "step", p->step);
        json_kv_int(&o->j, "timestamp", p->ts_ms);
        json_kv_double(&o->j, "value", p->value);
        json_end_object(&o->j);
        break;
    case FORMAT_TABLE:
        format_double_short(v, sizeof v, p->value);
        format_time_ms(when, sizeof when, p->ts_ms, true);
        printf("%12" PRId64 "  %13" PRId64 "  %-23s  %s\n", p->step, p->ts_ms, when, v);
        break;
    }
}

static int print_points(const struct store_point *pts, size_t n, void *arg)
{
    struct history_out *o = arg;
    for (size_t i = 0; i < n; i++)
        print_point(o, &pts[i]);
    if (cli_stop_signal)
        return -EINTR;
    if (ferror(stdout))
        return errno ? -errno : -EIO;
    return 0;
}

static void print_header(struct history_out *o)
{
    switch (o->format) {
    case FORMAT_CSV:
        puts("step,timestamp,value");
        break;
    case FORMAT_JSON:
        json_init(&o->j, stdout);
        json_begin_array(&o->j, false);
        break;
    case FORMAT_TABLE:
        printf("%12s  %13s  %-23s  %s\n", "STEP", "TIMESTAMP", "TIME", "VALUE");
        break;
    }
}

static void print_footer(struct history_out *o)
{
    if (o->format == FORMAT_JSON) {
        json_end_array(&o->j);
        json_finish(&o->j);
    }
}

static int collect_key(const char *key, const struct store_metric_summary *s, void *arg)
{
    (void)s;
    return cli_strv_add(arg, key);
}

static int report_no_metric(struct store_txn *t, const uint8_t id[16], const char *key)
{
    struct cli_strv keys = {0};
    char hex[33], list[2048] = "";
    store_run_id_hex(id, hex);
    int r = store_metric_keys_foreach(t, id, collect_key, &keys);
    if (r == 0 && keys.n) {
        cli_strv_join(&keys, 30, list, sizeof list);
        cli_error("run %s has no metric %s; it has: %s", hex, key, list);
    } else if (r == 0) {
        cli_error("run %s has no metric %s; it has no metrics at all", hex, key);
    } else {
        cli_error("run %s has no metric %s", hex, key);
    }
    cli_strv_free(&keys);
    return CLI_FAIL;
}

/* What to print of the history: all of it, a step range, or a view of at most view points. */
struct query {
    int64_t start, end;
    size_t view; /* 0: every point */
};

static int print_query(struct store_txn *t, const uint8_t id[16], const char *key,
                       const struct query *q, struct history_out *o)
{
    if (!q->view)
        return store_metric_steps(t, id, key, q->start, q->end, print_points, o);
    struct store_metric_view v;
    int r = store_metric_view(t, id, key, q->start, q->end, q->view, &v);
    if (r == 0)
        r = print_points(v.pts, v.n, o);
    store_metric_view_free(&v);
    return r;
}

static int print_history(struct cli *c, const char *run, const char *key, enum format format,
                         const struct query *q)
{
    struct store_txn *t;
    struct store_metric_summary s;
    struct history_out o = {.format = format};
    uint8_t id[16];
    char hex[33];
    if (cli_begin_run(c, run, &t, id) != CLI_OK)
        return CLI_FAIL;
    store_run_id_hex(id, hex);
    int rc = CLI_OK, r = store_metric_summary_get(t, id, key, &s);
    if (r == -ENOENT)
        rc = report_no_metric(t, id, key);
    else if (r < 0)
        rc = cli_store_error(r, "cannot read metric %s of run %s", key, hex);
    if (rc == CLI_OK) {
        print_header(&o);
        if (q->view || q->start != INT64_MIN || q->end != INT64_MAX)
            r = print_query(t, id, key, q, &o);
        else
            r = store_metric_history(t, id, key, print_points, &o);
        if (r < 0 && !ferror(stdout))
            rc = cli_store_error(r, "cannot read the history of metric %s of run %s", key, hex);
        else if (r < 0)
            rc = cli_store_error(r, "cannot write the history of metric %s", key);
        else
            print_footer(&o);
    }
    store_abort(t);
    return rc;
}

static void metrics_usage(FILE *f)
{
    fputs("Usage: sidetrack metrics RUN KEY [--format csv|json|table] [--view N] [--steps S:E]\n"
          "\n"
          "Prints the full history of metric KEY of run RUN, in the order it was logged.\n"
          "RUN is the run's id: 32 hex digits, or a unique prefix of at least 4.\n"
          "\n"
          "Options:\n"
          "  -f, --format FMT  csv (default): a header 'step,timestamp,value', then a line a\n"
          "                    point; json: an array of {step, timestamp, value}; table:\n"
          "                    aligned columns with the local time, for people\n"
          "  --steps S:E       only the points whose step is in [S, E] (either end may be\n"
          "                    left out: 100: or :500), still in logged order\n"
          "  --view N          at most N points that keep the curve's shape, for plotting:\n"
          "                    the steps are cut into N/4 buckets, each giving its first,\n"
          "                    lowest, highest and last points (and its first NaN/inf), in\n"
          "                    step order; a history of at most N points comes whole\n"
          "  -d, --data DIR    the store's directory\n"
          "  -h, --help        show this help\n"
          "\n"
          "Timestamps are ms since the epoch. Values are printed with 17 significant digits,\n"
          "so that they read back exactly; NaN and infinities are nan, inf, -inf in CSV and\n"
          "NaN, Infinity, -Infinity in JSON (as MLflow writes them).\n",
          f);
}

enum { OPT_FORMAT = CLI_OPT_FIRST, OPT_VIEW, OPT_STEPS };

static int parse_i64(const char *s, const char *end, int64_t dflt, int64_t *out)
{
    if (s == end) {
        *out = dflt;
        return 0;
    }
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (e != end || errno)
        return -EINVAL;
    *out = v;
    return 0;
}

/* "S:E", "S:", ":E". */
static int parse_steps(const char *s, struct query *q)
{
    const char *colon = strchr(s, ':');
    if (!colon || parse_i64(s, colon, INT64_MIN, &q->start) < 0 ||
        parse_i64(colon + 1, colon + strlen(colon), INT64_MAX, &q->end) < 0 ||
        q->start > q->end)
        return -EINVAL;
    return 0;
}

static int parse_format(const char *s, enum format *f)
{
    static const char *const names[] = {[FORMAT_CSV] = "csv", [FORMAT_JSON] = "json",
                                        [FORMAT_TABLE] = "table"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *f = (enum format)i;
            return 0;
        }
    }
    return -EINVAL;
}

int cmd_metrics(struct cli *c, int argc, char **argv)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"format", 'f', true, OPT_FORMAT},
        {"view", 0, true, OPT_VIEW},
        {"steps", 0, true, OPT_STEPS},
        {0},
    };
    static const struct cli_syntax syntax = {"metrics", opts, metrics_usage, .max_args = 2};
    const char *pos[2] = {0}, *v;
    enum format format = FORMAT_CSV;
    struct query q = {.start = INT64_MIN, .end = INT64_MAX};
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case OPT_FORMAT:
            if (parse_format(v, &format) < 0)
                return cli_usage_error(syntax.cmd, "--format is csv, json or table, not '%s'", v);
            break;
        case OPT_VIEW: {
            char *e;
            errno = 0;
            unsigned long long n = strtoull(v, &e, 10);
            if (*e || errno || v[0] == '-' || n < 1 || n > 10000000)
                return cli_usage_error(syntax.cmd, "--view takes a number of points from 1 to "
                                                   "10000000, not '%s'", v);
            q.view = (size_t)n;
            break;
        }
        case OPT_STEPS:
            if (parse_steps(v, &q) < 0)
                return cli_usage_error(syntax.cmd, "--steps takes S:E (whole steps, S <= E; "
                                                   "either may be left out), not '%s'", v);
            break;
        case CLI_ARG_POSITIONAL: pos[a.nargs - 1] = v; break; /* RUN, then KEY */
        default: return a.exit;
        }
    }
    if (a.nargs < 2)
        return cli_usage_error(syntax.cmd, "%s", a.nargs ? "missing KEY" : "missing RUN and KEY");
    return print_history(c, pos[0], pos[1], format, &q);
}
