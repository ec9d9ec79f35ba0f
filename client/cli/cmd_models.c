/* cmd_models.c — `sidetrack models`: the model registry of a store (store/registry.h).
 *
 * This file dispatches to the subcommands and holds what they share (cmd_models.h): naming a
 * version on the command line, the actor of a change, the registry's errors in words, and
 * the files of a version. Reading subcommands open the store read-only like every other
 * command; changes open it for writing (cli_open_store_rw) and make each change in one write
 * transaction through store_update(), so that the agent or a server writing the same store
 * concurrently is safe.
 */
#include "cmd_models.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void models_usage(FILE *f)
{
    fputs("Usage: sidetrack models COMMAND [ARGS...]\n"
          "\n"
          "The model registry of the store: registered models, their versions (each made\n"
          "from a run's artifacts, with a content digest), aliases, stages, tags and the\n"
          "history of every change. See docs/models.md.\n"
          "\n"
          "Commands:\n"
          "  list [--filter F] [--json]                  registered models\n"
          "  show NAME [--json]                          a model: tags, aliases, versions\n"
          "  show NAME@ALIAS | NAME/N | NAME N [--json]  a version and its run (lineage)\n"
          "  versions NAME [--json]                      a model's versions\n"
          "  history NAME [--limit N] [--json]           who changed what, newest first\n"
          "  create NAME [--description D]               a new registered model\n"
          "  delete NAME --yes                           a model and all its versions\n"
          "  delete NAME/N|NAME@ALIAS --yes              one version\n"
          "  rename NAME NEW_NAME                        versions and history follow\n"
          "  register NAME SOURCE [--alias A]...         a new version from runs:/RUN/PATH\n"
          "           [--description D]                  (prints its number)\n"
          "  alias NAME ALIAS VERSION                    point ALIAS at VERSION\n"
          "  alias NAME ALIAS --delete                   remove ALIAS\n"
          "  rollback NAME ALIAS                         move ALIAS back to where it was\n"
          "  stage NAME VERSION STAGE                    MLflow's deprecated stages\n"
          "        [--archive-existing]\n"
          "  tag NAME[/VERSION] KEY VALUE | KEY --delete set or delete a tag\n"
          "  compare NAME V1 V2 [--json]                 params, final metrics, digests and\n"
          "                                              files of two versions\n"
          "  pull NAME@ALIAS|NAME/N DIR [--force]        copy a version's files out, verified\n"
          "\n"
          "VERSION is a number (3 or v3), @ALIAS, or latest. Changes are recorded with the\n"
          "actor $SIDETRACK_USER, else your login name.\n"
          "Run 'sidetrack models COMMAND --help' for a command's options.\n",
          f);
}

struct models_cmd {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
};

static const struct models_cmd models_cmds[] = {
    {"list", cmd_models_list},         {"show", cmd_models_show},
    {"versions", cmd_models_versions}, {"history", cmd_models_history},
    {"create", cmd_models_create},     {"delete", cmd_models_delete},
    {"register", cmd_models_register}, {"alias", cmd_models_alias},
    {"rollback", cmd_models_rollback}, {"stage", cmd_models_stage},
    {"tag", cmd_models_tag},           {"compare", cmd_models_compare},
    {"pull", cmd_models_pull},         {"rename", cmd_models_rename},
    {0},
};

int cmd_models(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("models", "missing subcommand: list, show, register, alias, "
                                         "rollback, compare, pull...");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        models_usage(stdout);
        return CLI_OK;
    }
    for (const struct models_cmd *m = models_cmds; m->name; m++)
        if (strcmp(sub, m->name) == 0)
            return m->run(c, argc - 1, argv + 1);
    if (sub[0] == '-')
        return cli_usage_error("models", "unknown option '%s' (options go after the "
                                         "subcommand)", sub);
    return cli_usage_error("models", "unknown subcommand '%s'", sub);
}

/* ---- errors ---- */

int models_error(int err, const char *fmt, ...)
{
    if (cli_stop_signal && (err == -EPIPE || err == -EINTR))
        return CLI_FAIL;
    va_list ap;
    va_start(ap, fmt);
    fputs("sidetrack: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": %s\n", store_rm_strerror(err));
    va_end(ap);
    return CLI_FAIL;
}

static int collect_model_name(const struct store_rm *m, void *arg)
{
    return cli_strv_add(arg, m->name);
}

int models_report_no_model(struct store_txn *t, const char *name)
{
    struct cli_strv names = {0};
    char list[1024] = "";
    if (store_rm_foreach(t, collect_model_name, &names) == 0)
        cli_strv_join(&names, 10, list, sizeof list);
    if (*list)
        cli_error("no registered model '%s' (models: %s)", name, list);
    else
        cli_error("no registered model '%s': this store has none yet (sidetrack models "
                  "register NAME runs:/RUN/PATH makes one)",
                  name);
    cli_strv_free(&names);
    return CLI_FAIL;
}

static int collect_version_number(const struct store_mv *v, void *arg)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v->version);
    return cli_strv_add(arg, buf);
}

static int report_no_version(struct store_txn *t, const char *name, uint64_t version)
{
    struct cli_strv nums = {0};
    char list[512] = "";
    if (store_mv_foreach(t, name, collect_version_number, &nums) == 0)
        cli_strv_join(&nums, 20, list, sizeof list);
    cli_strv_free(&nums);
    if (*list)
        cli_error("model '%s' has no version %" PRIu64 " (versions: %s)", name, version, list);
    else
        cli_error("model '%s' has no version %" PRIu64 ": it has no versions", name, version);
    return CLI_FAIL;
}

static int collect_alias_name(const char *alias, uint64_t version, void *arg)
{
    char buf[STORE_RM_ALIAS_MAX + 32];
    snprintf(buf, sizeof buf, "%s (v%" PRIu64 ")", alias, version);
    return cli_strv_add(arg, buf);
}

static int report_no_alias(struct store_txn *t, const char *name, const char *alias)
{
    struct cli_strv l = {0};
    char list[1024] = "";
    if (store_rm_aliases_foreach(t, name, collect_alias_name, &l) == 0)
        cli_strv_join(&l, 10, list, sizeof list);
    cli_strv_free(&l);
    if (*list)
        cli_error("model '%s' has no alias '%s' (aliases: %s)", name, alias, list);
    else
        cli_error("model '%s' has no alias '%s': it has no aliases", name, alias);
    return CLI_FAIL;
}

int models_report_missing(struct cli *c, const char *name, uint64_t version, const char *alias)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    struct store_rm m;
    struct store_mv *mv = malloc(sizeof *mv);
    uint64_t v;
    int rc;
    if (!mv)
        rc = cli_store_error(-ENOMEM, "cannot read model '%s'", name);
    else if (store_rm_get(t, name, &m) < 0)
        rc = models_report_no_model(t, name);
    else if (version && store_mv_get(t, name, version, mv) < 0)
        rc = report_no_version(t, name, version);
    else if (alias && store_rm_alias_get(t, name, alias, &v) < 0)
        rc = report_no_alias(t, name, alias);
    else
        rc = models_error(-ENOENT, "model '%s'", name);
    free(mv);
    store_abort(t);
    return rc;
}

/* ---- naming a version ---- */

int models_parse_version(const char *s, uint64_t *version)
{
    if (*s == 'v' || *s == 'V')
        s++;
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
        return -EINVAL;
    *version = strtoull(s, NULL, 10);
    return *version ? 0 : -EINVAL;
}

struct latest {
    uint64_t version;
};

static int note_latest(const struct store_mv *v, void *arg)
{
    struct latest *l = arg;
    if (v->version > l->version)
        l->version = v->version;
    return 0;
}

/* The version of ref->name that `what` names: a number, vN, @ALIAS, a bare alias, latest. */
static int resolve_version(struct store_txn *t, const char *what, struct models_ref *ref)
{
    ref->has_version = true;
    if (strcmp(what, "latest") == 0) {
        struct latest l = {0};
        int r = store_mv_foreach(t, ref->name, note_latest, &l);
        if (r < 0)
            return models_error(r, "cannot read the versions of model '%s'", ref->name);
        if (!l.version) {
            cli_error("model '%s' has no versions yet", ref->name);
            return CLI_FAIL;
        }
        ref->version = l.version;
        return CLI_OK;
    }
    if (*what != '@' && models_parse_version(what, &ref->version) == 0)
        return CLI_OK;
    const char *alias = *what == '@' ? what + 1 : what;
    if (strlen(alias) > STORE_RM_ALIAS_MAX || !*alias) {
        cli_error("'%s' names no version of model '%s': give a number, @ALIAS or latest",
                  what, ref->name);
        return CLI_FAIL;
    }
    snprintf(ref->alias, sizeof ref->alias, "%s", alias);
    int r = store_rm_alias_get(t, ref->name, alias, &ref->version);
    if (r == -ENOENT)
        return report_no_alias(t, ref->name, alias);
    if (r < 0)
        return models_error(r, "cannot read alias '%s' of model '%s'", alias, ref->name);
    return CLI_OK;
}

static bool model_exists(struct store_txn *t, const char *name, struct store_rm *m)
{
    return strlen(name) <= STORE_RM_NAME_MAX && store_rm_get(t, name, m) == 0;
}

/* Splits spec at its last `sep`: the part before it, when that names a model. */
static const char *split_at(struct store_txn *t, const char *spec, char sep, struct store_rm *m,
                            char *name)
{
    const char *s = strrchr(spec, sep);
    if (!s || s == spec || (size_t)(s - spec) > STORE_RM_NAME_MAX || !s[1])
        return NULL;
    memcpy(name, spec, (size_t)(s - spec));
    name[s - spec] = '\0';
    return model_exists(t, name, m) ? s + 1 : NULL;
}

int models_resolve(struct store_txn *t, const char *cmd, const char *spec,
                   const char *version_arg, bool need_version, struct models_ref *ref,
                   struct store_mv *mv)
{
    struct store_rm m;
    const char *what = version_arg;
    *ref = (struct models_ref){0};
    if (strlen(spec) > STORE_RM_NAME_MAX)
        return models_report_no_model(t, spec);
    if (version_arg || model_exists(t, spec, &m)) {
        snprintf(ref->name, sizeof ref->name, "%s", spec);
    } else if ((what = split_at(t, spec, '@', &m, ref->name))) {
        char at[STORE_RM_ALIAS_MAX + 2];
        if (strlen(what) > STORE_RM_ALIAS_MAX)
            return report_no_alias(t, ref->name, what);
        snprintf(at, sizeof at, "@%s", what);
        if (resolve_version(t, at, ref) != CLI_OK)
            return CLI_FAIL;
        what = NULL;
    } else if (!(what = split_at(t, spec, '/', &m, ref->name)) ||
               (strcmp(what, "latest") != 0 && models_parse_version(what, &ref->version) < 0)) {
        return models_report_no_model(t, spec); /* "a/b": no model "a" with a version "b" */
    }
    if (!model_exists(t, ref->name, &m))
        return models_report_no_model(t, ref->name);
    if (what && resolve_version(t, what, ref) != CLI_OK)
        return CLI_FAIL;
    if (!ref->has_version) {
        if (need_version)
            return cli_usage_error(cmd, "say which version of '%s': NAME@ALIAS, NAME/VERSION "
                                        "or NAME VERSION",
                                   spec);
        return CLI_OK;
    }
    if (!mv)
        return CLI_OK;
    int r = store_mv_get(t, ref->name, ref->version, mv);
    if (r == -ENOENT)
        return report_no_version(t, ref->name, ref->version);
    if (r < 0)
        return models_error(r, "cannot read version %" PRIu64 " of model '%s'", ref->version,
                            ref->name);
    return CLI_OK;
}

/* ---- changes ---- */

int models_open_write(struct cli *c)
{
    if (c->store) /* opened already by this command */
        return CLI_OK;
    if (cli_data_dir(c) != CLI_OK)
        return CLI_FAIL;
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", c->data_dir);
    if (stat(path, &st) < 0) {
        cli_error("no store at %s: is sidetrackd running with --data %s?", c->data_dir,
                  c->data_dir);
        return CLI_FAIL;
    }
    return cli_open_store_rw(c, 0, "registry changes are written there: run this as the "
                                   "user that owns it, e.g. the agent's or the server's");
}

void models_by(struct store_rm_by *by, char actor[STORE_RM_ACTOR_MAX + 1])
{
    const char *who = getenv("SIDETRACK_USER");
    if (!who || !*who) {
        struct passwd *pw = getpwuid(getuid());
        who = pw ? pw->pw_name : NULL;
    }
    if (who)
        snprintf(actor, STORE_RM_ACTOR_MAX + 1, "%s", who);
    else
        snprintf(actor, STORE_RM_ACTOR_MAX + 1, "uid:%u", (unsigned)getuid());
    by->actor = actor;
    by->now_ms = cli_now_ms();
}

/* ---- aliases ---- */

static int collect_alias(const char *alias, uint64_t version, void *arg)
{
    struct models_aliases *l = arg;
    struct models_alias a = {.version = version};
    snprintf(a.alias, sizeof a.alias, "%s", alias);
    return cli_push(&l->v, &l->n, &l->cap, sizeof a, &a);
}

int models_aliases_load(struct store_txn *t, const char *name, struct models_aliases *l)
{
    return store_rm_aliases_foreach(t, name, collect_alias, l);
}

void models_aliases_of(const struct models_aliases *l, uint64_t version, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l->n && used < len; i++)
        if (l->v[i].version == version)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                                     l->v[i].alias);
}

/* ---- a version's files ---- */

static int collect_file(const struct store_artifact *a, void *arg)
{
    struct models_files *f = arg;
    size_t dlen = strlen(f->path);
    const char *rel;
    if (dlen == 0) {
        rel = a->path;
    } else if (strcmp(a->path, f->path) == 0) {
        const char *slash = strrchr(a->path, '/');
        rel = slash ? slash + 1 : a->path;
    } else if (strncmp(a->path, f->path, dlen) == 0 && a->path[dlen] == '/') {
        rel = a->path + dlen + 1;
    } else {
        return 0;
    }
    struct models_file mf = {.rel = strdup(rel), .a = *a};
    if (!mf.rel)
        return -ENOMEM;
    int r = cli_push(&f->v, &f->n, &f->cap, sizeof mf, &mf);
    if (r < 0)
        free(mf.rel);
    else
        f->bytes += a->size;
    return r;
}

static int by_rel(const void *a, const void *b)
{
    return strcmp(((const struct models_file *)a)->rel, ((const struct models_file *)b)->rel);
}

int models_files_load(struct store_txn *t, const struct store_mv *mv, struct models_files *f)
{
    char hex[33];
    *f = (struct models_files){0};
    int r = store_mv_source_parse(mv->source, hex, f->path, sizeof f->path);
    if (r < 0) {
        cli_error("version %" PRIu64 " of model '%s' comes from %s, which is not a run's "
                  "artifacts in this store (runs:/RUN/PATH)",
                  mv->version, mv->name, mv->source);
        return CLI_FAIL;
    }
    struct store_run run;
    if (store_run_id_parse(hex, f->run) < 0 || store_run_get(t, f->run, &run) < 0) {
        cli_error("version %" PRIu64 " of model '%s' comes from run %s, which is not in this "
                  "store (yet)",
                  mv->version, mv->name, hex);
        return CLI_FAIL;
    }
    r = store_artifacts_foreach(t, f->run, collect_file, f);
    if (r < 0) {
        models_files_free(f);
        return cli_store_error(r, "cannot read the artifacts of run %s", hex);
    }
    if (!f->n) {
        cli_error("run %s has no artifacts at '%s', where version %" PRIu64 " of model '%s' "
                  "should be",
                  hex, f->path, mv->version, mv->name);
        return CLI_FAIL;
    }
    qsort(f->v, f->n, sizeof *f->v, by_rel);
    return CLI_OK;
}

void models_files_free(struct models_files *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].rel);
    free(f->v);
    f->v = NULL;
    f->n = f->cap = 0;
}
