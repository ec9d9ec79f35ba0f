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

static const struct models_cmd *const models_cmds[] = {
    &models_list_cmd,    &models_show_cmd,    &models_versions_cmd,
    &models_history_cmd, &models_compare_cmd, &models_pull_cmd,
};

static const struct models_cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof models_cmds / sizeof *models_cmds; i++)
        if (strcmp(models_cmds[i]->syntax.cmd + strlen("models "), name) == 0)
            return models_cmds[i];
    return models_edit_cmd(name);
}

/* The skeleton every subcommand shares (argv[0] is its name). */
static int run_cmd(struct cli *c, const struct models_cmd *x, int argc, char **argv)
{
    struct models_args e;
    int rc = models_args_parse(c, &x->syntax, argc, argv, &e);
    if (rc != CLI_ARG_END)
        return rc;
    int need = 0;
    while (need < 3 && x->missing[need])
        need++;
    int drop = x->delete_drops && e.delete;
    if (drop && e.n == need)
        return cli_usage_error(x->syntax.cmd, "--delete takes no %s", x->delete_drops);
    if (e.n < need - drop)
        return cli_usage_error(x->syntax.cmd, "missing %s", x->missing[e.n]);
    return x->run(c, x, &e);
}

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
    const struct models_cmd *x = find_cmd(sub);
    if (x)
        return run_cmd(c, x, argc - 1, argv + 1);
    if (sub[0] == '-')
        return cli_usage_error("models", "unknown option '%s' (options go after the "
                                         "subcommand)", sub);
    return cli_usage_error("models", "unknown subcommand '%s'", sub);
}

/* ---- command lines ---- */

int models_args_parse(struct cli *c, const struct cli_syntax *syntax, int argc, char **argv,
                      struct models_args *e)
{
    struct cli_args a;
    const char *v;
    *e = (struct models_args){0};
    cli_args_init(&a, c, syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case MODELS_OPT_JSON: e->json = true; break;
        case MODELS_OPT_DESCRIPTION: e->description = v; break;
        case MODELS_OPT_DELETE: e->delete = true; break;
        case MODELS_OPT_YES: e->yes = true; break;
        case MODELS_OPT_ARCHIVE: e->archive = true; break;
        case MODELS_OPT_FORCE: e->force = true; break;
        case MODELS_OPT_FILTER: e->filter = v; break;
        case MODELS_OPT_LIMIT: {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (*v < '0' || *v > '9' || *end || errno || n == 0 || n > 10000)
                return cli_usage_error(syntax->cmd, "--limit wants a number from 1 to "
                                                    "10000, not '%s'",
                                       v);
            e->limit = (size_t)n;
            break;
        }
        case MODELS_OPT_ALIAS:
            if (e->naliases == sizeof e->aliases / sizeof *e->aliases)
                return cli_usage_error(syntax->cmd, "too many --alias (at most %zu)",
                                       e->naliases);
            e->aliases[e->naliases++] = v;
            break;
        case CLI_ARG_POSITIONAL: e->pos[e->n++] = v; break;
        default: return a.exit;
        }
    }
    return CLI_ARG_END;
}

/* ---- errors ---- */

/* "sidetrack: " fmt (with ap), then tail (with what follows it) and a newline on stderr: the
 * message as printf writes it, of any length. */
static void say(const char *fmt, va_list ap, const char *tail, ...) CLI_PRINTF(3, 4);
static void say(const char *fmt, va_list ap, const char *tail, ...)
{
    va_list tp;
    fputs("sidetrack: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_start(tp, tail);
    vfprintf(stderr, tail, tp);
    va_end(tp);
    fputc('\n', stderr);
}

int models_error(int err, const char *fmt, ...)
{
    if (cli_stop_signal && (err == -EPIPE || err == -EINTR))
        return CLI_FAIL;
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap, ": %s", store_rm_strerror(err));
    va_end(ap);
    return CLI_FAIL;
}

/* Says "MESSAGE (LABEL: a, b, ...)" with up to max of the entries of l, else (none there, or
 * err < 0: they could not be read) "MESSAGE" then none; frees l. CLI_FAIL. */
static int report_listing(int err, struct cli_strv *l, size_t max, const char *label,
                          const char *none, const char *fmt, ...) CLI_PRINTF(6, 7);
static int report_listing(int err, struct cli_strv *l, size_t max, const char *label,
                          const char *none, const char *fmt, ...)
{
    char list[1024] = "";
    if (err == 0)
        cli_strv_join(l, max, list, sizeof list);
    cli_strv_free(l);
    va_list ap;
    va_start(ap, fmt);
    if (*list)
        say(fmt, ap, " (%s: %s)", label, list);
    else
        say(fmt, ap, "%s", none);
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
    int r = store_rm_foreach(t, collect_model_name, &names);
    return report_listing(r, &names, 10, "models",
                          ": this store has none yet (sidetrack models register NAME "
                          "runs:/RUN/PATH makes one)",
                          "no registered model '%s'", name);
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
    int r = store_mv_foreach(t, name, collect_version_number, &nums);
    return report_listing(r, &nums, 20, "versions", ": it has no versions",
                          "model '%s' has no version %" PRIu64, name, version);
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
    int r = store_rm_aliases_foreach(t, name, collect_alias_name, &l);
    return report_listing(r, &l, 10, "aliases", ": it has no aliases",
                          "model '%s' has no alias '%s'", name, alias);
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

void models_json_aliases_of(struct json *j, const struct models_aliases *l, uint64_t version)
{
    json_key(j, "aliases");
    json_begin_array(j, true);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].version == version)
            json_string(j, l->v[i].alias);
    json_end_array(j);
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
