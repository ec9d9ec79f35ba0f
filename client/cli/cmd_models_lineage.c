/* cmd_models_lineage.c — `sidetrack models show NAME VERSION`: one version and where it comes
 * from: the run that made it (name, experiment, status, the code's git commit and the
 * environment the Python client records as tags, params, the final value of each metric,
 * input datasets), the other versions made from that run, and whether the run's files still
 * have the digest recorded at registration.
 *
 * A version registered on a server from a run that has not reached this store (or made from
 * something else than a run) is still shown, with its run said missing.
 */
#include "cmd_models.h"
#include "cmd_models_dataset.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The tags that say how to reproduce a run (python/sidetrack/_context.py writes them). */
static const char *const repro_keys[] = {
    "mlflow.source.git.commit", "mlflow.source.git.branch", "mlflow.source.git.repoURL",
    "sidetrack.git.dirty",      "sidetrack.git.diff_sha256", "mlflow.source.name",
    "sidetrack.argv",           "sidetrack.python.version", "sidetrack.python.packages.sha256",
    "sidetrack.host",           "sidetrack.os",             "sidetrack.gpu.models",
    NULL,
};

struct lineage {
    struct store_mv mv;
    struct cli_strv vtags;
    struct models_aliases aliases;
    bool has_run;
    uint8_t run_id[16];
    struct store_run run;
    char experiment[512];
    struct cli_strv params, tags, inputs; /* key, value, ... */
    struct cli_metrics metrics;
    struct store_mv *siblings; /* other versions made from the run */
    size_t nsiblings, scap;
    /* the digest of the run's files now */
    int digest_err;
    char digest_now[65];
    uint64_t files, bytes;
};

static void lineage_free(struct lineage *l)
{
    cli_strv_free(&l->vtags);
    free(l->aliases.v);
    cli_strv_free(&l->params);
    cli_strv_free(&l->tags);
    cli_strv_free(&l->inputs);
    cli_metrics_free(&l->metrics);
    free(l->siblings);
}

static int collect_sibling(const struct store_mv *v, void *arg)
{
    struct lineage *l = arg;
    if (v->model_id == l->mv.model_id && v->version == l->mv.version)
        return 0;
    return cli_push(&l->siblings, &l->nsiblings, &l->scap, sizeof *v, v);
}

/* The run's side; -ENOENT from store_run_get is no error (has_run stays false). */
static int gather_run(struct store_txn *t, struct lineage *l, const char **what)
{
    char hex[33], path[STORE_MV_SOURCE_MAX + 1];
    const char *run = l->mv.run_id;
    /* A version made through MLflow's API may carry its run only in its source. */
    if (!*run && store_mv_source_parse(l->mv.source, hex, path, sizeof path) == 0)
        run = hex;
    if (!*run || store_run_id_parse(run, l->run_id) < 0)
        return 0;
    *what = "run";
    int r = store_run_get(t, l->run_id, &l->run);
    if (r == -ENOENT)
        return 0;
    l->has_run = r == 0;
    struct store_experiment e;
    if (r == 0 && store_experiment_get(t, l->run.experiment_id, &e) == 0)
        snprintf(l->experiment, sizeof l->experiment, "%s", e.name);
    if (r == 0 && (*what = "params"))
        r = store_params_foreach(t, l->run_id, cli_collect_pair, &l->params);
    if (r == 0 && (*what = "tags"))
        r = store_tags_foreach(t, l->run_id, cli_collect_pair, &l->tags);
    if (r == 0 && (*what = "metrics"))
        r = store_metric_keys_foreach(t, l->run_id, cli_collect_metric, &l->metrics);
    if (r == 0 && (*what = "inputs"))
        r = store_inputs_foreach(t, l->run_id, cli_collect_pair, &l->inputs);
    if (r == 0 && (*what = "versions made from the run")) {
        store_run_id_hex(l->run_id, hex);
        r = store_mv_by_run(t, hex, collect_sibling, l);
    }
    if (r == 0 && store_mv_source_parse(l->mv.source, hex, path, sizeof path) == 0)
        l->digest_err = store_mv_digest(t, l->run_id, path, l->digest_now, &l->files,
                                        &l->bytes);
    else
        l->digest_err = -EINVAL;
    return r;
}

static int gather(struct cli *c, const char *spec, const char *version_arg, struct lineage *l)
{
    struct store_txn *t;
    struct models_ref ref;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    int rc = models_resolve(t, "models show", spec, version_arg, true, &ref, &l->mv);
    if (rc != CLI_OK) {
        store_abort(t);
        return rc;
    }
    const char *what = "tags";
    l->digest_err = -EINVAL;
    int r = store_mv_tags_foreach(t, ref.name, ref.version, cli_collect_pair, &l->vtags);
    if (r == 0 && (what = "aliases"))
        r = models_aliases_load(t, ref.name, &l->aliases);
    if (r == 0)
        r = gather_run(t, l, &what);
    store_abort(t);
    if (r < 0)
        return cli_store_error(r, "cannot read the %s of version %" PRIu64 " of model '%s'",
                               what, ref.version, ref.name);
    return CLI_OK;
}

/* ---- the digest now ---- */

static const char *digest_state(const struct lineage *l)
{
    if (!*l->mv.digest)
        return "none recorded";
    if (!l->has_run)
        return "the run is not in this store";
    if (l->digest_err == -ENOENT)
        return "MISSING: the run has no files there any more";
    if (l->digest_err < 0)
        return "unknown";
    return strcmp(l->digest_now, l->mv.digest) == 0
               ? "matches the run's files"
               : "DIFFERS: the run's files changed after registration";
}

/* ---- text ---- */

static void kv_line(const char *key, const char *value)
{
    printf("  %-12s ", key);
    print_text(stdout, value);
    fputc('\n', stdout);
}

static void print_version(const struct lineage *l)
{
    const struct store_mv *v = &l->mv;
    char buf[1024];
    fputs("model ", stdout);
    print_text(stdout, v->name);
    printf(" version %" PRIu64 "\n", v->version);
    models_aliases_of(&l->aliases, v->version, buf, sizeof buf);
    kv_line("aliases", *buf ? buf : "-");
    kv_line("stage", store_mv_stage_name(v->stage));
    kv_line("status", store_mv_status_name(v->status));
    kv_line("source", v->source);
    kv_line("digest", *v->digest ? v->digest : "-");
    kv_line("  check", digest_state(l));
    if (l->has_run && l->digest_err == 0) {
        char count[32];
        snprintf(buf, sizeof buf, "%" PRIu64 " (%s bytes)", l->files,
                 format_count(l->bytes, count, sizeof count));
        kv_line("files", buf);
    }
    format_time_ms(buf, sizeof buf, v->created_ms, false);
    kv_line("created", buf);
    if (*v->description)
        kv_line("description", v->description);
    for (size_t i = 0; i + 1 < l->vtags.n; i += 2) {
        snprintf(buf, sizeof buf, "%s = %s", l->vtags.v[i], l->vtags.v[i + 1]);
        kv_line("tag", buf);
    }
}

static const char *find_pair(const struct cli_strv *kv, const char *key)
{
    for (size_t i = 0; i + 1 < kv->n; i += 2)
        if (strcmp(kv->v[i], key) == 0)
            return kv->v[i + 1];
    return NULL;
}

static int print_metrics(const struct lineage *l)
{
    puts("\nmetrics (final values)");
    if (!l->metrics.n) {
        puts("  (none)");
        return 0;
    }
    struct table tb;
    table_init(&tb, 3, 0x6);
    table_cell(&tb, "KEY");
    table_cell(&tb, "VALUE");
    table_cell(&tb, "STEP");
    for (size_t i = 0; i < l->metrics.n; i++) {
        const struct cli_metric *m = &l->metrics.v[i];
        char buf[40];
        table_cell(&tb, m->key);
        format_double_short(buf, sizeof buf, m->s.latest.value);
        table_cell(&tb, buf);
        table_cellf(&tb, "%" PRId64, m->s.latest.step);
    }
    int r = table_print(&tb, stdout, "  ");
    table_free(&tb);
    return r;
}

static void print_inputs(const struct lineage *l)
{
    puts("\ninput datasets");
    if (!l->inputs.n)
        puts("  (none)");
    for (size_t i = 0; i + 1 < l->inputs.n; i += 2) {
        struct models_dataset d;
        fputs("  ", stdout);
        if (models_dataset_parse(l->inputs.v[i + 1], &d)) {
            print_text(stdout, d.name);
            printf(" (digest %s", *d.digest ? d.digest : "-");
            if (*d.context)
                printf(", %s", d.context);
            fputs(")", stdout);
            if (*d.source) {
                printf(" from %s ", d.source_type);
                print_text(stdout, d.source);
            }
        } else {
            print_text(stdout, l->inputs.v[i + 1]);
        }
        fputc('\n', stdout);
    }
}

static int print_lineage(const struct lineage *l)
{
    char buf[128], hex[33];
    print_version(l);
    printf("\nrun ");
    if (!l->has_run) {
        printf("%s: not in this store\n", *l->mv.run_id ? l->mv.run_id : "(none)");
        return 0;
    }
    store_run_id_hex(l->run_id, hex);
    printf("%s\n", hex);
    kv_line("name", *l->run.name ? l->run.name : "-");
    kv_line("experiment", *l->experiment ? l->experiment : "-");
    kv_line("status", store_run_status_name(l->run.status));
    format_time_ms(buf, sizeof buf, l->run.start_ms, false);
    kv_line("start", buf);
    cli_run_duration(&l->run, cli_now_ms(), buf, sizeof buf);
    kv_line("duration", buf);
    kv_line("user", *l->run.user ? l->run.user : "-");
    for (const char *const *k = repro_keys; *k; k++) {
        const char *v = find_pair(&l->tags, *k);
        if (v) {
            /* the key's last part names it well enough: commit, branch, host... */
            const char *dot = strrchr(*k, '.');
            kv_line(strcmp(*k, "mlflow.source.name") == 0 ? "entry point" : dot + 1, v);
        }
    }
    cli_print_pairs("params", &l->params);
    int r = print_metrics(l);
    print_inputs(l);
    cli_print_pairs("tags", &l->tags);
    puts("\nother versions from this run");
    if (!l->nsiblings)
        puts("  (none)");
    for (size_t i = 0; i < l->nsiblings; i++) {
        fputs("  ", stdout);
        print_text(stdout, l->siblings[i].name);
        printf(" v%" PRIu64 "\n", l->siblings[i].version);
    }
    return r;
}

/* ---- JSON ---- */

static void json_run(struct json *j, const struct lineage *l)
{
    json_key(j, "run");
    if (!l->has_run) {
        json_null(j);
        return;
    }
    json_begin_object(j, false);
    json_key(j, "info");
    json_begin_object(j, false);
    cli_json_run_info(j, &l->run, *l->experiment ? l->experiment : NULL);
    json_end_object(j);
    json_kv_string_or_null(j, "git_commit", find_pair(&l->tags, "mlflow.source.git.commit"));
    cli_json_pairs(j, "params", &l->params);
    json_key(j, "metrics");
    json_begin_object(j, false);
    for (size_t i = 0; i < l->metrics.n; i++) {
        const struct cli_metric *m = &l->metrics.v[i];
        json_key(j, m->key);
        json_begin_object(j, true);
        json_kv_double(j, "value", m->s.latest.value);
        json_kv_int(j, "step", m->s.latest.step);
        json_kv_int(j, "timestamp", m->s.latest.ts_ms);
        json_end_object(j);
    }
    json_end_object(j);
    json_key(j, "inputs");
    json_begin_array(j, false);
    for (size_t i = 0; i + 1 < l->inputs.n; i += 2) {
        struct models_dataset d;
        bool ok = models_dataset_parse(l->inputs.v[i + 1], &d);
        json_begin_object(j, true);
        json_kv_string(j, "key", l->inputs.v[i]);
        json_kv_string_or_null(j, "name", ok ? d.name : NULL);
        json_kv_string_or_null(j, "digest", ok ? d.digest : NULL);
        json_kv_string_or_null(j, "source_type", ok ? d.source_type : NULL);
        json_kv_string_or_null(j, "source", ok ? d.source : NULL);
        json_kv_string_or_null(j, "context", ok && *d.context ? d.context : NULL);
        json_end_object(j);
    }
    json_end_array(j);
    cli_json_pairs(j, "tags", &l->tags);
    json_key(j, "other_versions");
    json_begin_array(j, false);
    for (size_t i = 0; i < l->nsiblings; i++) {
        json_begin_object(j, true);
        json_kv_string(j, "name", l->siblings[i].name);
        json_kv_uint(j, "version", l->siblings[i].version);
        json_end_object(j);
    }
    json_end_array(j);
    json_end_object(j);
}

static void print_json(const struct lineage *l)
{
    const struct store_mv *v = &l->mv;
    struct json j;
    json_init(&j, stdout);
    json_begin_object(&j, false);
    json_kv_string(&j, "name", v->name);
    json_kv_uint(&j, "version", v->version);
    json_kv_string(&j, "source", v->source);
    json_kv_string(&j, "run_id", v->run_id);
    json_kv_string(&j, "status", store_mv_status_name(v->status));
    json_kv_string(&j, "stage", store_mv_stage_name(v->stage));
    json_kv_string(&j, "digest", v->digest);
    json_key(&j, "digest_matches");
    if (*v->digest && l->has_run && l->digest_err == 0)
        json_bool(&j, strcmp(v->digest, l->digest_now) == 0);
    else
        json_null(&j);
    json_kv_string(&j, "description", v->description);
    json_kv_int(&j, "created_ms", v->created_ms);
    models_json_aliases_of(&j, &l->aliases, v->version);
    cli_json_pairs(&j, "tags", &l->vtags);
    json_run(&j, l);
    json_end_object(&j);
    json_finish(&j);
}

int models_show_version(struct cli *c, const char *spec, const char *version_arg, bool json)
{
    struct lineage *l = calloc(1, sizeof *l);
    if (!l)
        return cli_store_error(-ENOMEM, "cannot show %s", spec);
    int rc = gather(c, spec, version_arg, l);
    if (rc == CLI_OK && json) {
        print_json(l);
    } else if (rc == CLI_OK) {
        int r = print_lineage(l);
        if (r < 0)
            rc = cli_store_error(r, "cannot print the version");
    }
    lineage_free(l);
    free(l);
    return rc;
}
