/* cmd_models_show.c — the `sidetrack models` commands that read the registry: list, show (a
 * model; a version's lineage is cmd_models_lineage.c), versions and history.
 *
 * Like every reading command, each gathers what it prints in one read transaction, ends it,
 * then prints a table or one JSON document.
 */
#include "cmd_models.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A model with what the listings show of it. */
struct model_row {
    struct store_rm m;
    struct store_mv *versions; /* lowest number first */
    size_t nversions, vcap;
    struct models_aliases aliases;
    struct cli_strv tags; /* key, value, ... */
};

static void model_row_free(struct model_row *r)
{
    free(r->versions);
    free(r->aliases.v);
    cli_strv_free(&r->tags);
}

static int collect_version(const struct store_mv *v, void *arg)
{
    struct model_row *r = arg;
    return cli_push(&r->versions, &r->nversions, &r->vcap, sizeof *v, v);
}

/* Reads model name with its versions, aliases and tags (in t). */
static int gather_model(struct store_txn *t, const char *name, struct model_row *r)
{
    int e = store_rm_get(t, name, &r->m);
    if (e == 0)
        e = store_mv_foreach(t, name, collect_version, r);
    if (e == 0)
        e = models_aliases_load(t, name, &r->aliases);
    if (e == 0)
        e = store_rm_tags_foreach(t, name, cli_collect_pair, &r->tags);
    if (e == -ENOENT)
        return models_report_no_model(t, name);
    if (e < 0)
        return models_error(e, "cannot read model '%s'", name);
    return CLI_OK;
}

static void short_digest(char *buf, size_t len, const char *digest)
{
    snprintf(buf, len, "%.12s", *digest ? digest : "-");
}

/* ---- list ---- */

struct model_list {
    struct model_row *v;
    size_t n, cap;
};

static void model_list_free(struct model_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        model_row_free(&l->v[i]);
    free(l->v);
}

static int gather_list(struct store_txn *t, const char *filter, struct model_list *l)
{
    struct store_rm_query q = {.filter = filter, .max_results = STORE_RM_SEARCH_MAX_MAX};
    char token[STORE_RM_TOKEN_MAX] = "", err[512] = "";
    do {
        struct store_rm_page p = {0};
        q.page_token = token;
        int r = store_rm_search(t, &q, &p, err, sizeof err);
        if (r == -EINVAL && *err) {
            cli_error("--filter '%s': %s", filter ? filter : "", err);
            return CLI_FAIL;
        }
        if (r < 0)
            return models_error(r, "cannot list the registered models");
        for (size_t i = 0; i < p.n; i++) {
            struct model_row row = {0};
            int rc = gather_model(t, p.names[i], &row);
            if (rc == CLI_OK && cli_push(&l->v, &l->n, &l->cap, sizeof row, &row) < 0)
                rc = cli_store_error(-ENOMEM, "cannot list the registered models");
            if (rc != CLI_OK) {
                model_row_free(&row);
                store_rm_page_free(&p);
                return rc;
            }
        }
        snprintf(token, sizeof token, "%s", p.next_page_token);
        store_rm_page_free(&p);
    } while (*token);
    return CLI_OK;
}

static void all_aliases(const struct models_aliases *a, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < a->n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s=v%" PRIu64, i ? ", " : "",
                                 a->v[i].alias, a->v[i].version);
}

static int print_list_table(const struct model_list *l)
{
    if (!l->n) {
        puts("(no registered models)");
        return CLI_OK;
    }
    struct table tb;
    table_init(&tb, 5, 0x2);
    static const char *const head[] = {"NAME", "VERSIONS", "LATEST", "ALIASES", "UPDATED"};
    for (size_t i = 0; i < 5; i++)
        table_cell(&tb, head[i]);
    for (size_t i = 0; i < l->n; i++) {
        const struct model_row *r = &l->v[i];
        char buf[1024];
        table_cell(&tb, r->m.name);
        table_cellf(&tb, "%zu", r->nversions);
        if (r->nversions)
            table_cellf(&tb, "v%" PRIu64, r->versions[r->nversions - 1].version);
        else
            table_cell(&tb, "-");
        all_aliases(&r->aliases, buf, sizeof buf);
        table_cell(&tb, *buf ? buf : "-");
        format_time_ms(buf, sizeof buf, r->m.updated_ms, false);
        table_cell(&tb, buf);
    }
    int e = table_print(&tb, stdout, "");
    table_free(&tb);
    return e < 0 ? cli_store_error(e, "cannot print the models") : CLI_OK;
}

static void json_aliases(struct json *j, const struct models_aliases *a)
{
    json_key(j, "aliases");
    json_begin_array(j, false);
    for (size_t i = 0; i < a->n; i++) {
        json_begin_object(j, true);
        json_kv_string(j, "alias", a->v[i].alias);
        json_kv_uint(j, "version", a->v[i].version);
        json_end_object(j);
    }
    json_end_array(j);
}

static void json_version(struct json *j, const struct store_mv *v,
                         const struct models_aliases *a)
{
    json_begin_object(j, false);
    json_kv_string(j, "name", v->name);
    json_kv_uint(j, "version", v->version);
    json_kv_string(j, "source", v->source);
    json_kv_string(j, "run_id", v->run_id);
    json_kv_string(j, "status", store_mv_status_name(v->status));
    json_kv_string(j, "stage", store_mv_stage_name(v->stage));
    json_kv_string(j, "digest", v->digest);
    json_kv_string(j, "description", v->description);
    json_kv_int(j, "created_ms", v->created_ms);
    json_kv_int(j, "updated_ms", v->updated_ms);
    models_json_aliases_of(j, a, v->version);
    json_end_object(j);
}

static void json_model(struct json *j, const struct model_row *r, bool versions)
{
    json_begin_object(j, false);
    json_kv_string(j, "name", r->m.name);
    json_kv_string(j, "description", r->m.description);
    json_kv_int(j, "created_ms", r->m.created_ms);
    json_kv_int(j, "updated_ms", r->m.updated_ms);
    json_kv_uint(j, "last_version", r->m.last_version);
    json_kv_uint(j, "versions_count", r->nversions);
    cli_json_pairs(j, "tags", &r->tags);
    json_aliases(j, &r->aliases);
    if (versions) {
        json_key(j, "versions");
        json_begin_array(j, false);
        for (size_t i = 0; i < r->nversions; i++)
            json_version(j, &r->versions[i], &r->aliases);
        json_end_array(j);
    }
    json_end_object(j);
}

static void list_usage(FILE *f)
{
    fputs("Usage: sidetrack models list [--filter FILTER] [--json]\n"
          "\n"
          "Lists the registered models: name, number of versions, the latest, aliases and\n"
          "when it last changed.\n"
          "\n"
          "Options:\n"
          "      --filter F  MLflow's filter for registered models: name LIKE 'fraud%',\n"
          "                  tags.team = 'risk' (clauses joined by AND)\n"
          "      --json      a JSON array of {name, description, created_ms, updated_ms,\n"
          "                  last_version, versions_count, tags, aliases}\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_list(struct cli *c, const struct models_cmd *x, const struct models_args *e)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    struct model_list l = {0};
    int rc = gather_list(t, e->filter, &l);
    store_abort(t);
    if (rc == CLI_OK && e->json) {
        struct json j;
        json_init(&j, stdout);
        json_begin_array(&j, false);
        for (size_t i = 0; i < l.n; i++)
            json_model(&j, &l.v[i], false);
        json_end_array(&j);
        json_finish(&j);
    } else if (rc == CLI_OK) {
        rc = print_list_table(&l);
    }
    model_list_free(&l);
    return rc;
}

static const struct cli_option list_opts[] = {
    CLI_COMMON_OPTIONS, {"filter", 'f', true, MODELS_OPT_FILTER},
    {"json", 0, false, MODELS_OPT_JSON}, {0}};
const struct models_cmd models_list_cmd = {{"models list", list_opts, list_usage, 0}, {NULL},
                                           NULL, run_list};

/* ---- show NAME, versions NAME ---- */

static int print_versions_table(const struct model_row *r, const char *indent, bool source)
{
    if (!r->nversions) {
        printf("%s(no versions)\n", indent);
        return CLI_OK;
    }
    struct table tb;
    table_init(&tb, source ? 8 : 7, 0x1);
    static const char *const head[] = {"VERSION", "STAGE", "STATUS", "ALIASES", "RUN",
                                       "DIGEST",  "CREATED", "SOURCE"};
    for (size_t i = 0; i < (source ? 8u : 7u); i++)
        table_cell(&tb, head[i]);
    for (size_t i = 0; i < r->nversions; i++) {
        const struct store_mv *v = &r->versions[i];
        char buf[1024];
        table_cellf(&tb, "%" PRIu64, v->version);
        table_cell(&tb, store_mv_stage_name(v->stage));
        table_cell(&tb, store_mv_status_name(v->status));
        models_aliases_of(&r->aliases, v->version, buf, sizeof buf);
        table_cell(&tb, *buf ? buf : "-");
        table_cellf(&tb, "%.12s", *v->run_id ? v->run_id : "-");
        short_digest(buf, sizeof buf, v->digest);
        table_cell(&tb, buf);
        format_time_ms(buf, sizeof buf, v->created_ms, false);
        table_cell(&tb, buf);
        if (source)
            table_cell(&tb, v->source);
    }
    int e = table_print(&tb, stdout, indent);
    table_free(&tb);
    return e < 0 ? cli_store_error(e, "cannot print the versions") : CLI_OK;
}

static int print_model(const struct model_row *r)
{
    char buf[64];
    fputs("model ", stdout);
    print_text(stdout, r->m.name);
    fputc('\n', stdout);
    struct table tb;
    table_init(&tb, 2, 0);
    table_cell(&tb, "description");
    table_cell(&tb, *r->m.description ? r->m.description : "-");
    table_cell(&tb, "created");
    format_time_ms(buf, sizeof buf, r->m.created_ms, false);
    table_cell(&tb, buf);
    table_cell(&tb, "updated");
    format_time_ms(buf, sizeof buf, r->m.updated_ms, false);
    table_cell(&tb, buf);
    int e = table_print(&tb, stdout, "  ");
    table_free(&tb);
    if (e < 0)
        return cli_store_error(e, "cannot print the model");
    cli_print_pairs("tags", &r->tags);
    puts("\naliases");
    if (!r->aliases.n)
        puts("  (none)");
    for (size_t i = 0; i < r->aliases.n; i++) {
        fputs("  ", stdout);
        print_text(stdout, r->aliases.v[i].alias);
        printf(" -> v%" PRIu64 "\n", r->aliases.v[i].version);
    }
    puts("\nversions");
    return print_versions_table(r, "  ", false);
}

/* Reads model name in t, ends t, then prints the model: one JSON document written by
 * json_fn, or text by text_fn. */
static int read_and_print(struct store_txn *t, const char *name, bool json,
                          void (*json_fn)(struct json *j, const struct model_row *r),
                          int (*text_fn)(const struct model_row *r))
{
    struct model_row r = {0};
    int rc = gather_model(t, name, &r);
    store_abort(t);
    if (rc == CLI_OK && json) {
        struct json j;
        json_init(&j, stdout);
        json_fn(&j, &r);
        json_finish(&j);
    } else if (rc == CLI_OK) {
        rc = text_fn(&r);
    }
    model_row_free(&r);
    return rc;
}

static void json_model_versions(struct json *j, const struct model_row *r)
{
    json_model(j, r, true);
}

static void json_versions(struct json *j, const struct model_row *r)
{
    json_begin_array(j, false);
    for (size_t i = 0; i < r->nversions; i++)
        json_version(j, &r->versions[i], &r->aliases);
    json_end_array(j);
}

static int print_versions(const struct model_row *r)
{
    return print_versions_table(r, "", true);
}

static void show_usage(FILE *f)
{
    fputs("Usage: sidetrack models show NAME [--json]\n"
          "       sidetrack models show NAME@ALIAS | NAME/VERSION | NAME VERSION [--json]\n"
          "\n"
          "Shows a registered model: description, tags, aliases and its versions (stage,\n"
          "status, aliases, run, digest). Given a version: that version and its lineage,\n"
          "the run that made it: name, status, git commit and other tags, params, final\n"
          "metric values, input datasets and the model's files.\n"
          "\n"
          "Options:\n"
          "      --json      one JSON object\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_show(struct cli *c, const struct models_cmd *x, const struct models_args *e)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    struct models_ref ref;
    int rc = models_resolve(t, x->syntax.cmd, e->pos[0], e->pos[1], false, &ref, NULL);
    if (rc != CLI_OK || ref.has_version) {
        store_abort(t);
        return rc != CLI_OK ? rc : models_show_version(c, e->pos[0], e->pos[1], e->json);
    }
    return read_and_print(t, ref.name, e->json, json_model_versions, print_model);
}

const struct models_cmd models_show_cmd = {{"models show", cli_json_options, show_usage, 2},
                                           {"NAME"}, NULL, run_show};

static void versions_usage(FILE *f)
{
    fputs("Usage: sidetrack models versions NAME [--json]\n"
          "\n"
          "Lists the versions of model NAME, lowest first: stage, status, aliases, run,\n"
          "digest, creation time and source.\n"
          "\n"
          "Options:\n"
          "      --json      a JSON array of {name, version, source, run_id, status, stage,\n"
          "                  digest, description, created_ms, updated_ms, aliases}\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_versions(struct cli *c, const struct models_cmd *x, const struct models_args *e)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    return read_and_print(t, e->pos[0], e->json, json_versions, print_versions);
}

const struct models_cmd models_versions_cmd = {
    {"models versions", cli_json_options, versions_usage, 1}, {"NAME"}, NULL, run_versions};

/* ---- history ---- */

struct events {
    struct store_rm_event *v;
    size_t n, cap;
};

static int collect_event(const struct store_rm_event *e, void *arg)
{
    struct events *l = arg;
    return cli_push(&l->v, &l->n, &l->cap, sizeof *e, e);
}

static int gather_history(struct store_txn *t, const char *name, size_t limit, struct events *l)
{
    char token[STORE_RM_TOKEN_MAX] = "", next[STORE_RM_TOKEN_MAX];
    do {
        size_t want = limit - l->n > 1000 ? 1000 : limit - l->n;
        int r = store_rm_history(t, name, want, token, collect_event, l, next);
        if (r == -ENOENT)
            return models_report_no_model(t, name);
        if (r < 0)
            return models_error(r, "cannot read the history of model '%s'", name);
        snprintf(token, sizeof token, "%s", next);
    } while (*token && l->n < limit);
    return CLI_OK;
}

static void vname(char *buf, size_t len, uint64_t v)
{
    if (v)
        snprintf(buf, len, "v%" PRIu64, v);
    else
        snprintf(buf, len, "(none)");
}

/* What changed, in a few words. */
static void event_detail(const struct store_rm_event *e, char *buf, size_t len)
{
    char a[32], b[32];
    vname(a, sizeof a, e->from_version);
    vname(b, sizeof b, e->to_version);
    switch (e->kind) {
    case STORE_RM_ALIAS_SET:
    case STORE_RM_ALIAS_DELETED:
    case STORE_RM_ALIAS_DROPPED:
        snprintf(buf, len, "%s: %s -> %s", e->key, a, b);
        break;
    case STORE_RM_ALIAS_ROLLBACK:
        snprintf(buf, len, "%s: %s -> %s (undoes #%" PRIu64 ")", e->key, a, b, e->undoes);
        break;
    case STORE_RM_MODEL_TAG_SET:
    case STORE_RM_VERSION_TAG_SET:
        snprintf(buf, len, "%s = %s%s%s", e->key, e->after, *e->before ? " (was " : "",
                 *e->before ? e->before : "");
        if (*e->before && strlen(buf) + 1 < len)
            strcat(buf, ")");
        break;
    case STORE_RM_MODEL_TAG_DELETED:
    case STORE_RM_VERSION_TAG_DELETED:
        snprintf(buf, len, "%s (was %s)", e->key, e->before);
        break;
    case STORE_RM_VERSION_CREATED:
        snprintf(buf, len, "%s", e->after);
        break;
    case STORE_RM_VERSION_DELETED:
        snprintf(buf, len, "%s", e->before);
        break;
    case STORE_RM_MODEL_RENAMED:
    case STORE_RM_VERSION_STATUS:
    case STORE_RM_VERSION_STAGE:
        snprintf(buf, len, "%s -> %s", e->before, e->after);
        break;
    default:
        snprintf(buf, len, "%s", e->after);
    }
}

static int print_history_table(const struct events *l)
{
    if (!l->n) {
        puts("(no changes)");
        return CLI_OK;
    }
    struct table tb;
    table_init(&tb, 6, 0x1);
    static const char *const head[] = {"SEQ", "TIME", "ACTOR", "CHANGE", "VERSION", "DETAIL"};
    for (size_t i = 0; i < 6; i++)
        table_cell(&tb, head[i]);
    for (size_t i = 0; i < l->n; i++) {
        const struct store_rm_event *e = &l->v[i];
        char buf[2 * STORE_RM_TAG_VALUE_MAX + STORE_RM_ALIAS_MAX + 64];
        table_cellf(&tb, "%" PRIu64, e->seq);
        format_time_ms(buf, sizeof buf, e->time_ms, false);
        table_cell(&tb, buf);
        table_cell(&tb, *e->actor ? e->actor : "-");
        table_cell(&tb, store_rm_change_name(e->kind));
        if (e->version)
            table_cellf(&tb, "v%" PRIu64, e->version);
        else
            table_cell(&tb, "-");
        event_detail(e, buf, sizeof buf);
        table_cell(&tb, buf);
    }
    int e = table_print(&tb, stdout, "");
    table_free(&tb);
    return e < 0 ? cli_store_error(e, "cannot print the history") : CLI_OK;
}

static void print_history_json(const struct events *l)
{
    struct json j;
    json_init(&j, stdout);
    json_begin_array(&j, false);
    for (size_t i = 0; i < l->n; i++) {
        const struct store_rm_event *e = &l->v[i];
        json_begin_object(&j, true);
        json_kv_uint(&j, "seq", e->seq);
        json_kv_int(&j, "time_ms", e->time_ms);
        json_kv_string(&j, "change", store_rm_change_name(e->kind));
        json_kv_string(&j, "actor", e->actor);
        json_kv_string(&j, "model", e->model);
        json_kv_uint(&j, "version", e->version);
        json_kv_string(&j, "key", e->key);
        json_kv_uint(&j, "from_version", e->from_version);
        json_kv_uint(&j, "to_version", e->to_version);
        json_kv_uint(&j, "undoes", e->undoes);
        json_kv_string(&j, "before", e->before);
        json_kv_string(&j, "after", e->after);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_finish(&j);
}

static void history_usage(FILE *f)
{
    fputs("Usage: sidetrack models history NAME [--limit N] [--json]\n"
          "\n"
          "The audit history of model NAME, newest first: each change (versions created or\n"
          "deleted, aliases set, moved, deleted or rolled back, stages, tags) with its time\n"
          "and who made it.\n"
          "\n"
          "Options:\n"
          "  -n, --limit N   at most N changes (default 50)\n"
          "      --json      a JSON array of {seq, time_ms, change, actor, model, version,\n"
          "                  key, from_version, to_version, undoes, before, after}\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_history(struct cli *c, const struct models_cmd *x, const struct models_args *e)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    struct events l = {0};
    int rc = gather_history(t, e->pos[0], e->limit ? e->limit : 50, &l);
    store_abort(t);
    if (rc == CLI_OK && e->json)
        print_history_json(&l);
    else if (rc == CLI_OK)
        rc = print_history_table(&l);
    free(l.v);
    return rc;
}

static const struct cli_option history_opts[] = {
    CLI_COMMON_OPTIONS, {"limit", 'n', true, MODELS_OPT_LIMIT},
    {"json", 0, false, MODELS_OPT_JSON}, {0}};
const struct models_cmd models_history_cmd = {
    {"models history", history_opts, history_usage, 1}, {"NAME"}, NULL, run_history};
