/* cmd_models_compare.c — `sidetrack models compare NAME V1 V2`: what differs between two
 * versions of a model: the params of their runs (those that differ, and those only one has),
 * the final value of each metric side by side with the difference (V2 - V1), whether the
 * content digests are equal, and the files that differ between the two model directories
 * (by the SHA-256 the store keeps for each artifact; no content is read).
 *
 * Both sides are gathered in one read transaction, then compared by merging the sorted lists
 * (params and metrics come in key order from the store; files are sorted by path).
 */
#include "cmd_models.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct side {
    struct models_ref ref;
    struct store_mv mv;
    struct store_run run;
    char label[32]; /* "v3" */
    struct cli_strv params; /* key, value, ... in key order */
    struct cli_metrics metrics; /* the final value: .s.latest */
    struct models_files files;
    struct models_aliases aliases;
};

static void side_free(struct side *s)
{
    cli_strv_free(&s->params);
    cli_metrics_free(&s->metrics);
    models_files_free(&s->files);
    free(s->aliases.v);
}

static int gather_side(struct store_txn *t, const char *name, const char *v, struct side *s)
{
    int rc = models_resolve(t, "models compare", name, v, true, &s->ref, &s->mv);
    if (rc != CLI_OK)
        return rc;
    snprintf(s->label, sizeof s->label, "v%" PRIu64, s->mv.version);
    if (models_files_load(t, &s->mv, &s->files) != CLI_OK)
        return CLI_FAIL;
    const char *what = "info";
    int r = store_run_get(t, s->files.run, &s->run);
    if (r == 0 && (what = "params"))
        r = store_params_foreach(t, s->files.run, cli_collect_pair, &s->params);
    if (r == 0 && (what = "metrics"))
        r = store_metric_keys_foreach(t, s->files.run, cli_collect_metric, &s->metrics);
    if (r == 0 && (what = "aliases"))
        r = models_aliases_load(t, s->mv.name, &s->aliases);
    if (r < 0) {
        char hex[33];
        store_run_id_hex(s->files.run, hex);
        return cli_store_error(r, "cannot read the %s of run %s", what, hex);
    }
    return CLI_OK;
}

/* ---- the differences ---- */

/* One row of a merged comparison: a key with its value on each side (NULL: absent). */
struct diff_row {
    const char *key;
    const char *a, *b;       /* params: values; files: sha256 hex */
    const double *x, *y;     /* metrics */
};

struct diff {
    struct diff_row *v;
    size_t n, cap;
};

static int add_row(struct diff *d, struct diff_row row)
{
    return cli_push(&d->v, &d->n, &d->cap, sizeof row, &row);
}

/* Params that differ or that only one side has. */
static int diff_params(const struct side *l, const struct side *r, struct diff *d)
{
    size_t i = 0, j = 0;
    while (i < l->params.n || j < r->params.n) {
        int c = i >= l->params.n   ? 1
                : j >= r->params.n ? -1
                                   : strcmp(l->params.v[i], r->params.v[j]);
        struct diff_row row = {0};
        if (c < 0) {
            row = (struct diff_row){.key = l->params.v[i], .a = l->params.v[i + 1]};
            i += 2;
        } else if (c > 0) {
            row = (struct diff_row){.key = r->params.v[j], .b = r->params.v[j + 1]};
            j += 2;
        } else {
            bool same = strcmp(l->params.v[i + 1], r->params.v[j + 1]) == 0;
            row = (struct diff_row){.key = l->params.v[i], .a = l->params.v[i + 1],
                                    .b = r->params.v[j + 1]};
            i += 2;
            j += 2;
            if (same)
                continue;
        }
        if (add_row(d, row) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Every metric of either side. */
static int diff_metrics(const struct side *l, const struct side *r, struct diff *d)
{
    size_t i = 0, j = 0;
    while (i < l->metrics.n || j < r->metrics.n) {
        int c = i >= l->metrics.n   ? 1
                : j >= r->metrics.n ? -1
                                    : strcmp(l->metrics.v[i].key, r->metrics.v[j].key);
        struct diff_row row = {0};
        if (c <= 0)
            row.key = l->metrics.v[i].key, row.x = &l->metrics.v[i].s.latest.value;
        else
            row.key = r->metrics.v[j].key;
        if (c >= 0)
            row.y = &r->metrics.v[j].s.latest.value;
        i += c <= 0;
        j += c >= 0;
        if (add_row(d, row) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Files that differ (content or presence); *same counts the others. Hex strings of the
 * hashes are kept in hexes (2 * 65 bytes per row). */
static int diff_files(const struct side *l, const struct side *r, struct diff *d,
                      char (*hexes)[65], size_t *same)
{
    size_t i = 0, j = 0, h = 0;
    *same = 0;
    while (i < l->files.n || j < r->files.n) {
        int c = i >= l->files.n   ? 1
                : j >= r->files.n ? -1
                                  : strcmp(l->files.v[i].rel, r->files.v[j].rel);
        struct diff_row row = {0};
        if (c <= 0) {
            row.key = l->files.v[i].rel;
            format_hex(l->files.v[i].a.sha256, 32, hexes[h]);
            row.a = hexes[h++];
        } else {
            row.key = r->files.v[j].rel;
        }
        if (c >= 0) {
            format_hex(r->files.v[j].a.sha256, 32, hexes[h]);
            row.b = hexes[h++];
        }
        i += c <= 0;
        j += c >= 0;
        if (row.a && row.b && strcmp(row.a, row.b) == 0) {
            (*same)++;
            continue;
        }
        if (add_row(d, row) < 0)
            return -ENOMEM;
    }
    return 0;
}

struct comparison {
    struct side l, r;
    struct diff params, metrics, files;
    char (*hexes)[65];
    size_t same_files;
    bool digests_equal;
};

static void comparison_free(struct comparison *c)
{
    side_free(&c->l);
    side_free(&c->r);
    free(c->params.v);
    free(c->metrics.v);
    free(c->files.v);
    free(c->hexes);
}

static int compare(struct comparison *c)
{
    c->digests_equal = *c->l.mv.digest && strcmp(c->l.mv.digest, c->r.mv.digest) == 0;
    c->hexes = calloc(c->l.files.n + c->r.files.n + 1, sizeof *c->hexes);
    if (!c->hexes || diff_params(&c->l, &c->r, &c->params) < 0 ||
        diff_metrics(&c->l, &c->r, &c->metrics) < 0 ||
        diff_files(&c->l, &c->r, &c->files, c->hexes, &c->same_files) < 0)
        return cli_store_error(-ENOMEM, "cannot compare the versions");
    return CLI_OK;
}

/* ---- text ---- */

static void cell_or_dash(struct table *tb, const char *s)
{
    table_cell(tb, s ? s : "-");
}

static void cell_metric(struct table *tb, const double *v)
{
    char buf[40];
    if (!v) {
        table_cell(tb, "-");
        return;
    }
    format_double_short(buf, sizeof buf, *v);
    table_cell(tb, buf);
}

static int print_header(const struct comparison *c)
{
    char hex[33], buf[1024];
    fputs("model ", stdout);
    print_text(stdout, c->l.mv.name);
    printf(": %s vs %s\n", c->l.label, c->r.label);
    struct table tb;
    table_init(&tb, 3, 0);
    table_cell(&tb, "");
    table_cell(&tb, c->l.label);
    table_cell(&tb, c->r.label);
    const struct side *s[2] = {&c->l, &c->r};
    table_cell(&tb, "run");
    for (int i = 0; i < 2; i++) {
        store_run_id_hex(s[i]->files.run, hex);
        table_cellf(&tb, "%.12s (%s)", hex, *s[i]->run.name ? s[i]->run.name : "-");
    }
    table_cell(&tb, "aliases");
    for (int i = 0; i < 2; i++) {
        models_aliases_of(&s[i]->aliases, s[i]->mv.version, buf, sizeof buf);
        table_cell(&tb, *buf ? buf : "-");
    }
    table_cell(&tb, "stage");
    for (int i = 0; i < 2; i++)
        table_cell(&tb, store_mv_stage_name(s[i]->mv.stage));
    table_cell(&tb, "digest");
    for (int i = 0; i < 2; i++)
        table_cellf(&tb, "%.16s", *s[i]->mv.digest ? s[i]->mv.digest : "-");
    table_cell(&tb, "files");
    for (int i = 0; i < 2; i++)
        table_cellf(&tb, "%zu", s[i]->files.n);
    int e = table_print(&tb, stdout, "  ");
    table_free(&tb);
    printf("  digests: %s\n", c->digests_equal ? "equal (same files)"
                              : *c->l.mv.digest && *c->r.mv.digest ? "differ"
                                                                   : "unknown (not recorded)");
    return e;
}

static int print_params(const struct comparison *c)
{
    printf("\nparams that differ (%zu)\n", c->params.n);
    if (!c->params.n) {
        puts("  (none)");
        return 0;
    }
    struct table tb;
    table_init(&tb, 3, 0);
    table_cell(&tb, "KEY");
    table_cell(&tb, c->l.label);
    table_cell(&tb, c->r.label);
    for (size_t i = 0; i < c->params.n; i++) {
        table_cell(&tb, c->params.v[i].key);
        cell_or_dash(&tb, c->params.v[i].a);
        cell_or_dash(&tb, c->params.v[i].b);
    }
    int e = table_print(&tb, stdout, "  ");
    table_free(&tb);
    return e;
}

static int print_metrics(const struct comparison *c)
{
    puts("\nmetrics (final values)");
    if (!c->metrics.n) {
        puts("  (none)");
        return 0;
    }
    struct table tb;
    table_init(&tb, 4, 0xe);
    table_cell(&tb, "KEY");
    table_cell(&tb, c->l.label);
    table_cell(&tb, c->r.label);
    table_cellf(&tb, "%s-%s", c->r.label, c->l.label);
    for (size_t i = 0; i < c->metrics.n; i++) {
        const struct diff_row *m = &c->metrics.v[i];
        table_cell(&tb, m->key);
        cell_metric(&tb, m->x);
        cell_metric(&tb, m->y);
        if (m->x && m->y) {
            char buf[40];
            double d = *m->y - *m->x;
            format_double_short(buf + 1, sizeof buf - 1, d);
            buf[0] = '+';
            table_cell(&tb, d > 0 ? buf : buf + 1);
        } else {
            table_cell(&tb, "-");
        }
    }
    int e = table_print(&tb, stdout, "  ");
    table_free(&tb);
    return e;
}

static int print_files(const struct comparison *c)
{
    printf("\nfiles that differ (%zu; %zu the same)\n", c->files.n, c->same_files);
    if (!c->files.n) {
        puts("  (none)");
        return 0;
    }
    struct table tb;
    table_init(&tb, 3, 0);
    table_cell(&tb, "PATH");
    table_cell(&tb, c->l.label);
    table_cell(&tb, c->r.label);
    for (size_t i = 0; i < c->files.n; i++) {
        const struct diff_row *f = &c->files.v[i];
        table_cell(&tb, f->key);
        if (f->a)
            table_cellf(&tb, "%.12s", f->a);
        else
            table_cell(&tb, "(absent)");
        if (f->b)
            table_cellf(&tb, "%.12s", f->b);
        else
            table_cell(&tb, "(absent)");
    }
    int e = table_print(&tb, stdout, "  ");
    table_free(&tb);
    return e;
}

/* ---- JSON ---- */

static void json_side(struct json *j, const char *key, const struct side *s)
{
    char hex[33];
    json_key(j, key);
    json_begin_object(j, false);
    json_kv_uint(j, "version", s->mv.version);
    store_run_id_hex(s->files.run, hex);
    json_kv_string(j, "run_id", hex);
    json_kv_string(j, "run_name", s->run.name);
    json_kv_string(j, "digest", s->mv.digest);
    json_kv_string(j, "stage", store_mv_stage_name(s->mv.stage));
    json_kv_uint(j, "files", s->files.n);
    models_json_aliases_of(j, &s->aliases, s->mv.version);
    json_end_object(j);
}

static void json_num_or_null(struct json *j, const char *key, const double *v)
{
    json_key(j, key);
    if (v)
        json_double(j, *v);
    else
        json_null(j);
}

static void print_json(const struct comparison *c)
{
    struct json j;
    json_init(&j, stdout);
    json_begin_object(&j, false);
    json_kv_string(&j, "name", c->l.mv.name);
    json_side(&j, "v1", &c->l);
    json_side(&j, "v2", &c->r);
    json_key(&j, "digests_equal");
    json_bool(&j, c->digests_equal);
    json_key(&j, "params");
    json_begin_array(&j, false);
    for (size_t i = 0; i < c->params.n; i++) {
        json_begin_object(&j, true);
        json_kv_string(&j, "key", c->params.v[i].key);
        json_kv_string_or_null(&j, "v1", c->params.v[i].a);
        json_kv_string_or_null(&j, "v2", c->params.v[i].b);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_key(&j, "metrics");
    json_begin_array(&j, false);
    for (size_t i = 0; i < c->metrics.n; i++) {
        const struct diff_row *m = &c->metrics.v[i];
        double d = m->x && m->y ? *m->y - *m->x : 0;
        json_begin_object(&j, true);
        json_kv_string(&j, "key", m->key);
        json_num_or_null(&j, "v1", m->x);
        json_num_or_null(&j, "v2", m->y);
        json_num_or_null(&j, "diff", m->x && m->y ? &d : NULL);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_key(&j, "files");
    json_begin_array(&j, false);
    for (size_t i = 0; i < c->files.n; i++) {
        const struct diff_row *f = &c->files.v[i];
        json_begin_object(&j, true);
        json_kv_string(&j, "path", f->key);
        json_kv_string_or_null(&j, "v1", f->a);
        json_kv_string_or_null(&j, "v2", f->b);
        json_kv_string(&j, "change", f->a && f->b ? "changed" : f->a ? "only_v1" : "only_v2");
        json_end_object(&j);
    }
    json_end_array(&j);
    json_kv_uint(&j, "files_same", c->same_files);
    json_end_object(&j);
    json_finish(&j);
}

static void compare_usage(FILE *f)
{
    fputs("Usage: sidetrack models compare NAME V1 V2 [--json]\n"
          "\n"
          "Compares two versions of model NAME (each a number, vN, @ALIAS or latest): the\n"
          "params of their runs that differ (or that only one has), the final value of each\n"
          "metric side by side with the difference V2 - V1, whether their content digests\n"
          "are equal, and the files that differ between the two model directories.\n"
          "\n"
          "Options:\n"
          "      --json      {name, v1, v2, digests_equal, params: [{key, v1, v2}],\n"
          "                  metrics: [{key, v1, v2, diff}], files: [{path, v1, v2,\n"
          "                  change}], files_same}; a value absent on one side is null\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_compare(struct cli *c, const struct models_cmd *x, const struct models_args *e)
{
    struct comparison *cmp = calloc(1, sizeof *cmp);
    if (!cmp)
        return cli_store_error(-ENOMEM, "cannot compare the versions");
    struct store_txn *t;
    int rc = cli_begin(c, &t);
    if (rc == CLI_OK) {
        rc = gather_side(t, e->pos[0], e->pos[1], &cmp->l);
        if (rc == CLI_OK)
            rc = gather_side(t, e->pos[0], e->pos[2], &cmp->r);
        store_abort(t);
    }
    if (rc == CLI_OK)
        rc = compare(cmp);
    if (rc == CLI_OK && e->json) {
        print_json(cmp);
    } else if (rc == CLI_OK) {
        int err = print_header(cmp);
        if (err == 0)
            err = print_params(cmp);
        if (err == 0)
            err = print_metrics(cmp);
        if (err == 0)
            err = print_files(cmp);
        if (err < 0)
            rc = cli_store_error(err, "cannot print the comparison");
    }
    comparison_free(cmp);
    free(cmp);
    return rc;
}

const struct models_cmd models_compare_cmd = {
    {"models compare", cli_json_options, compare_usage, 3},
    {"NAME, V1 and V2", "V1 and V2", "V2"},
    NULL,
    run_compare,
};
