/* cmd_metrics.c — `sidetrack metrics RUN KEY`: a metric's full history, in logged order.
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

static int print_history(struct cli *c, const char *run, const char *key, enum format format)
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
    fputs("Usage: sidetrack metrics RUN KEY [--format csv|json|table]\n"
          "\n"
          "Prints the full history of metric KEY of run RUN, in the order it was logged.\n"
          "RUN is the run's id: 32 hex digits, or a unique prefix of at least 4.\n"
          "\n"
          "Options:\n"
          "  -f, --format FMT  csv (default): a header 'step,timestamp,value', then a line a\n"
          "                    point; json: an array of {step, timestamp, value}; table:\n"
          "                    aligned columns with the local time, for people\n"
          "  -d, --data DIR    the store's directory\n"
          "  -h, --help        show this help\n"
          "\n"
          "Timestamps are ms since the epoch. Values are printed with 17 significant digits,\n"
          "so that they read back exactly; NaN and infinities are nan, inf, -inf in CSV and\n"
          "NaN, Infinity, -Infinity in JSON (as MLflow writes them).\n",
          f);
}

enum { OPT_FORMAT = CLI_OPT_FIRST };

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
        {0},
    };
    static const struct cli_syntax syntax = {"metrics", opts, metrics_usage, .max_args = 2};
    const char *pos[2] = {0}, *v;
    enum format format = FORMAT_CSV;
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case OPT_FORMAT:
            if (parse_format(v, &format) < 0)
                return cli_usage_error(syntax.cmd, "--format is csv, json or table, not '%s'", v);
            break;
        case CLI_ARG_POSITIONAL: pos[a.nargs - 1] = v; break; /* RUN, then KEY */
        default: return a.exit;
        }
    }
    if (a.nargs < 2)
        return cli_usage_error(syntax.cmd, "%s", a.nargs ? "missing KEY" : "missing RUN and KEY");
    return print_history(c, pos[0], pos[1], format);
}
