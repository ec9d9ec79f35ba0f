/* cmd_models_edit.c — the `sidetrack models` commands that change the registry: create,
 * delete, register, alias, rollback, stage and tag.
 *
 * Each change is one write transaction run by store_update(), which may run it again after
 * growing a full map: so the transaction functions here only read and write the store and
 * leave what they found in their argument; what went wrong is said after it, once. A
 * version named by an alias or `latest` is resolved in a read transaction first, and the
 * change then names its number: an alias moved in between does not redirect the change.
 *
 * The changes share one skeleton (edit_run, after cmd_models checked the command line): check
 * the new names in it, open the store; each then makes its change through apply() and says
 * what it did. The table at the end says what differs.
 */
#include "cmd_models.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int check_name(const char *name)
{
    char msg[512];
    int r = store_rm_name_check(name, msg, sizeof msg);
    if (r < 0) {
        cli_error("%s", msg);
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int check_alias(const char *alias)
{
    char msg[512];
    int r = store_rm_alias_check(alias, msg, sizeof msg);
    if (r < 0) {
        cli_error("%s", msg);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* Resolves NAME [VERSION] in a read transaction of its own (see the top of the file). */
static int resolve(struct cli *c, const char *cmd, const char *spec, const char *version,
                   bool need_version, struct models_ref *ref)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    int rc = models_resolve(t, cmd, spec, version, need_version, ref, NULL);
    store_abort(t);
    return rc;
}

/* Makes the change tx(op) in one write transaction, recorded as this user's. Returns
 * store_update()'s result. */
static int apply(struct cli *c, struct store_rm_by *by, int (*tx)(struct store_txn *, void *),
                 void *op)
{
    char actor[STORE_RM_ACTOR_MAX + 1];
    models_by(by, actor);
    int r = store_update(c->store, tx, op);
    by->actor = NULL; /* actor lived here only */
    return r;
}

/* ---- create ---- */

struct create_op {
    const char *name, *description;
    struct store_rm_by by;
};

static int create_tx(struct store_txn *t, void *arg)
{
    struct create_op *o = arg;
    return store_rm_create(t, o->name, o->description, &o->by, NULL);
}

static void create_usage(FILE *f)
{
    fputs("Usage: sidetrack models create NAME [--description TEXT]\n"
          "\n"
          "Creates a registered model with no versions ('models register' also creates the\n"
          "model it registers into when there is none).\n"
          "\n"
          "Options:\n"
          "      --description TEXT  what the model is for\n"
          "  -d, --data DIR          the store's directory\n"
          "  -h, --help              show this help\n",
          f);
}

static int run_create(struct cli *c, const char *cmd, const struct models_args *e)
{
    struct create_op o = {e->pos[0], e->description, {0}};
    int r = apply(c, &o.by, create_tx, &o);
    if (r == -EEXIST) {
        cli_error("a registered model named '%s' exists already", o.name);
        return CLI_FAIL;
    }
    if (r < 0)
        return models_error(r, "cannot create model '%s'", o.name);
    printf("created model '%s'\n", o.name);
    return CLI_OK;
}

/* ---- delete ---- */

struct delete_op {
    const char *name;
    uint64_t version; /* 0: the whole model */
    struct store_rm_by by;
    uint64_t versions;
};

static int count_version(const struct store_mv *v, void *arg)
{
    (void)v;
    (*(uint64_t *)arg)++;
    return 0;
}

static int delete_tx(struct store_txn *t, void *arg)
{
    struct delete_op *o = arg;
    if (o->version) /* one version: its tags go, its aliases are dropped */
        return store_mv_delete(t, o->name, o->version, &o->by);
    o->versions = 0;
    int r = store_mv_foreach(t, o->name, count_version, &o->versions);
    return r < 0 ? r : store_rm_delete(t, o->name, &o->by);
}

static void delete_usage(FILE *f)
{
    fputs("Usage: sidetrack models delete NAME --yes\n"
          "       sidetrack models delete NAME/VERSION|NAME@ALIAS|NAME VERSION --yes\n"
          "\n"
          "Deletes a registered model with all its versions, tags and aliases, or one version\n"
          "(its tags go, and the aliases on it are dropped; its number is never given\n"
          "again). The runs and their artifacts stay, and so does the model's history: an\n"
          "alias moved off a deleted version can be rolled back past it. Asks nothing:\n"
          "--yes says you mean it.\n"
          "\n"
          "Options:\n"
          "      --yes       delete it\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_delete(struct cli *c, const char *cmd, const struct models_args *e)
{
    struct models_ref ref;
    if (resolve(c, cmd, e->pos[0], e->n > 1 ? e->pos[1] : NULL, false, &ref) != CLI_OK)
        return CLI_FAIL;
    if (!e->yes && ref.has_version)
        return cli_usage_error(cmd, "this deletes version %" PRIu64 " of model '%s' with its "
                                    "tags and aliases: add --yes if you mean it",
                               ref.version, ref.name);
    if (!e->yes)
        return cli_usage_error(cmd, "this deletes model '%s' with all its versions, tags and "
                                    "aliases: add --yes if you mean it",
                               ref.name);
    struct delete_op o = {.name = ref.name, .version = ref.has_version ? ref.version : 0};
    int r = apply(c, &o.by, delete_tx, &o);
    if (r == -ENOENT)
        return models_report_missing(c, o.name, o.version, NULL);
    if (r < 0)
        return models_error(r, "cannot delete %s '%s'", o.version ? "a version of model" : "model",
                            o.name);
    if (o.version)
        printf("deleted version %" PRIu64 " of model '%s'\n", o.version, o.name);
    else
        printf("deleted model '%s' and its %" PRIu64 " version%s\n", o.name, o.versions,
               o.versions == 1 ? "" : "s");
    return CLI_OK;
}

/* ---- rename ---- */

struct rename_op {
    const char *name, *new_name;
    struct store_rm_by by;
};

static int rename_tx(struct store_txn *t, void *arg)
{
    struct rename_op *o = arg;
    return store_rm_rename(t, o->name, o->new_name, &o->by);
}

static void rename_usage(FILE *f)
{
    fputs("Usage: sidetrack models rename NAME NEW_NAME\n"
          "\n"
          "Renames a registered model; its versions, tags, aliases and history follow it.\n"
          "\n"
          "Options:\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_rename(struct cli *c, const char *cmd, const struct models_args *e)
{
    struct rename_op o = {.name = e->pos[0], .new_name = e->pos[1]};
    int r = apply(c, &o.by, rename_tx, &o);
    if (r == -ENOENT)
        return models_report_missing(c, o.name, 0, NULL);
    if (r == -EEXIST) {
        cli_error("a registered model named '%s' exists already", o.new_name);
        return CLI_FAIL;
    }
    if (r < 0)
        return models_error(r, "cannot rename model '%s'", o.name);
    printf("renamed model '%s' to '%s'\n", o.name, o.new_name);
    return CLI_OK;
}

/* ---- register ---- */

enum register_step { REG_SOURCE = 1, REG_RUN, REG_FILES, REG_MODEL, REG_VERSION, REG_ALIAS };

struct register_op {
    const char *name, *source_arg, *description;
    const char *const *aliases;
    size_t naliases;
    struct store_rm_by by;
    /* found */
    int step; /* where it failed */
    const char *failed_alias;
    char source[STORE_MV_SOURCE_MAX + 1]; /* with the run's full id */
    char run_hex[33];
    char path[STORE_MV_SOURCE_MAX + 1];
    char digest[65];
    uint64_t files, bytes, version;
    bool created_model;
};

/* runs:/PREFIX/path: a unique prefix of a run id is taken, as everywhere in the CLI; the
 * version records the full id. */
static int expand_run_prefix(struct store_txn *t, struct register_op *o)
{
    const char *src = o->source_arg;
    snprintf(o->source, sizeof o->source, "%s", src);
    if (strncmp(src, "runs:/", 6) != 0)
        return 0;
    const char *run = src + 6, *slash = strchr(run, '/');
    size_t n = slash ? (size_t)(slash - run) : strlen(run);
    if (n == 32 || n < 4 || n > 32)
        return 0;
    char prefix[33];
    uint8_t id[16];
    memcpy(prefix, run, n);
    prefix[n] = '\0';
    int r = store_run_resolve(t, prefix, id);
    if (r < 0)
        return r;
    char hex[33];
    store_run_id_hex(id, hex);
    if ((size_t)snprintf(o->source, sizeof o->source, "runs:/%s%s", hex, slash ? slash : "") >=
        sizeof o->source)
        return -ENAMETOOLONG;
    return 0;
}

static int register_tx(struct store_txn *t, void *arg)
{
    struct register_op *o = arg;
    uint8_t run[16];
    struct store_run r;
    struct store_rm m;
    o->created_model = false;
    o->step = REG_RUN;
    int rc = expand_run_prefix(t, o);
    if (rc < 0)
        return rc;
    o->step = REG_SOURCE;
    if ((rc = store_mv_source_parse(o->source, o->run_hex, o->path, sizeof o->path)) < 0)
        return rc;
    o->step = REG_RUN;
    if ((rc = store_run_id_parse(o->run_hex, run)) < 0 || (rc = store_run_get(t, run, &r)) < 0)
        return rc;
    o->step = REG_FILES;
    if ((rc = store_mv_digest(t, run, o->path, o->digest, &o->files, &o->bytes)) < 0)
        return rc;
    o->step = REG_MODEL;
    rc = store_rm_get(t, o->name, &m);
    if (rc == -ENOENT) {
        rc = store_rm_create(t, o->name, NULL, &o->by, NULL);
        o->created_model = rc == 0;
    }
    if (rc < 0)
        return rc;
    o->step = REG_VERSION;
    struct store_mv_new nv = {.source = o->source, .run_id = o->run_hex,
                              .description = o->description, .digest = o->digest};
    if ((rc = store_mv_create(t, o->name, &nv, &o->by, &o->version)) < 0)
        return rc;
    o->step = REG_ALIAS;
    for (size_t i = 0; i < o->naliases; i++) {
        o->failed_alias = o->aliases[i];
        if ((rc = store_rm_alias_set(t, o->name, o->aliases[i], o->version, &o->by)) < 0)
            return rc;
    }
    return 0;
}

static int register_failed(struct cli *c, const struct register_op *o, int r)
{
    switch (o->step) {
    case REG_SOURCE:
        cli_error("'%s' is not a run's artifact path: give runs:/RUN/PATH (RUN: the run's id "
                  "or a unique prefix; PATH: the model's folder or file in its artifacts)",
                  o->source_arg);
        return CLI_FAIL;
    case REG_RUN:
        if (r == -ENOENT || r == -EINVAL)
            cli_error("%s names no run of this store (see 'sidetrack runs list')",
                      o->source_arg);
        else if (r == -ENOTUNIQ)
            cli_error("the run id prefix in %s is ambiguous: give more digits", o->source_arg);
        else
            return cli_store_error(r, "cannot read the run of %s", o->source_arg);
        return CLI_FAIL;
    case REG_FILES:
        if (r == -ENOENT) {
            cli_error("run %s has no artifacts at '%s' (see 'sidetrack artifacts %s')",
                      o->run_hex, o->path, o->run_hex);
            return CLI_FAIL;
        }
        return cli_store_error(r, "cannot read the artifacts of run %s", o->run_hex);
    case REG_ALIAS:
        if ((r == -EINVAL || r == -ENAMETOOLONG) && check_alias(o->failed_alias) != CLI_OK)
            return CLI_FAIL;
        return models_error(r, "cannot set alias '%s' on model '%s'", o->failed_alias, o->name);
    default:
        (void)c;
        return models_error(r, "cannot register a version of model '%s'", o->name);
    }
}

static void register_usage(FILE *f)
{
    fputs("Usage: sidetrack models register NAME SOURCE [--alias ALIAS]... [--description D]\n"
          "                                 [--json]\n"
          "\n"
          "Registers the next version of model NAME (created when there is none) from a run's\n"
          "artifacts and prints its number. SOURCE is runs:/RUN/PATH: RUN the run's id (or a\n"
          "unique prefix of at least 4 hex digits), PATH the model's folder (or one file) in\n"
          "the run's artifacts (mlflow-artifacts:/EXP/RUN/artifacts/PATH works too). The\n"
          "version records the content digest of those files: the SHA-256 of what\n"
          "`sha256sum` prints for them, sorted by path (docs/models.md).\n"
          "\n"
          "Options:\n"
          "  -a, --alias ALIAS       point ALIAS at the new version (repeatable)\n"
          "      --description TEXT  the version's description\n"
          "      --json              {name, version, source, run_id, digest, files, bytes,\n"
          "                          aliases, model_created}\n"
          "  -d, --data DIR          the store's directory\n"
          "  -h, --help              show this help\n",
          f);
}

static int run_register(struct cli *c, const char *cmd, const struct models_args *e)
{
    struct register_op *o = calloc(1, sizeof *o);
    if (!o)
        return cli_store_error(-ENOMEM, "cannot register");
    *o = (struct register_op){.name = e->pos[0], .source_arg = e->pos[1],
                              .description = e->description, .aliases = e->aliases,
                              .naliases = e->naliases};
    int r = apply(c, &o->by, register_tx, o), rc = CLI_OK;
    if (r < 0) {
        rc = register_failed(c, o, r);
    } else if (e->json) {
        struct json j;
        json_init(&j, stdout);
        json_begin_object(&j, false);
        json_kv_string(&j, "name", o->name);
        json_kv_uint(&j, "version", o->version);
        json_kv_string(&j, "source", o->source);
        json_kv_string(&j, "run_id", o->run_hex);
        json_kv_string(&j, "digest", o->digest);
        json_kv_uint(&j, "files", o->files);
        json_kv_uint(&j, "bytes", o->bytes);
        json_key(&j, "aliases");
        json_begin_array(&j, true);
        for (size_t i = 0; i < o->naliases; i++)
            json_string(&j, o->aliases[i]);
        json_end_array(&j);
        json_key(&j, "model_created");
        json_bool(&j, o->created_model);
        json_end_object(&j);
        json_finish(&j);
    } else {
        /* The number alone on stdout, for scripts; the rest for people. */
        printf("%" PRIu64 "\n", o->version);
        char count[32];
        fprintf(stderr, "%smodel '%s' version %" PRIu64 ": %s (%" PRIu64 " file%s, %s bytes), "
                        "digest %.12s\n",
                o->created_model ? "created " : "", o->name, o->version, o->source, o->files,
                o->files == 1 ? "" : "s", format_count(o->bytes, count, sizeof count),
                o->digest);
    }
    free(o);
    return rc;
}

/* ---- alias ---- */

struct alias_op {
    const char *name, *alias;
    uint64_t version; /* 0: delete */
    struct store_rm_by by;
    uint64_t before;
};

static int alias_tx(struct store_txn *t, void *arg)
{
    struct alias_op *o = arg;
    o->before = 0;
    int r = store_rm_alias_get(t, o->name, o->alias, &o->before);
    if (r < 0 && r != -ENOENT)
        return r;
    if (!o->version)
        return store_rm_alias_delete(t, o->name, o->alias, &o->by);
    return store_rm_alias_set(t, o->name, o->alias, o->version, &o->by);
}

static void alias_usage(FILE *f)
{
    fputs("Usage: sidetrack models alias NAME ALIAS VERSION\n"
          "       sidetrack models alias NAME ALIAS --delete\n"
          "\n"
          "Points ALIAS (e.g. champion) at a version of model NAME, creating or moving it,\n"
          "or removes it; prints \"ALIAS: vOLD -> vNEW\". VERSION is a number (3 or v3),\n"
          "@OTHER_ALIAS or latest. Aliases: letters, digits, _ and -; 'latest' and v<N> are\n"
          "reserved. 'models rollback' moves an alias back.\n"
          "\n"
          "Options:\n"
          "      --delete    remove ALIAS\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static void print_move(const char *alias, uint64_t from, uint64_t to)
{
    char a[32] = "(none)", b[32] = "(none)";
    if (from)
        snprintf(a, sizeof a, "v%" PRIu64, from);
    if (to)
        snprintf(b, sizeof b, "v%" PRIu64, to);
    print_text(stdout, alias);
    printf(": %s -> %s\n", a, b);
}

static int run_alias(struct cli *c, const char *cmd, const struct models_args *e)
{
    struct alias_op o = {.name = e->pos[0], .alias = e->pos[1]};
    if (!e->delete) {
        struct models_ref ref;
        int rc = resolve(c, cmd, e->pos[0], e->pos[2], true, &ref);
        if (rc != CLI_OK)
            return rc;
        o.version = ref.version;
    }
    int r = apply(c, &o.by, alias_tx, &o);
    if (r == -ENOENT)
        return models_report_missing(c, o.name, o.version, e->delete ? o.alias : NULL);
    if (r < 0)
        return models_error(r, "cannot %s alias '%s' of model '%s'",
                            e->delete ? "delete" : "set", o.alias, o.name);
    print_move(o.alias, o.before, o.version);
    return CLI_OK;
}

/* ---- rollback ---- */

struct rollback_op {
    const char *name, *alias;
    struct store_rm_by by;
    uint64_t from, to;
};

static int rollback_tx(struct store_txn *t, void *arg)
{
    struct rollback_op *o = arg;
    return store_rm_rollback(t, o->name, o->alias, &o->by, &o->from, &o->to);
}

static void rollback_usage(FILE *f)
{
    fputs("Usage: sidetrack models rollback NAME ALIAS\n"
          "\n"
          "Moves ALIAS of model NAME back to the version it named before its latest change\n"
          "(from the history); prints \"ALIAS: vNOW -> vBEFORE\". Rolling back again goes one\n"
          "more step back; an alias that was deleted comes back.\n"
          "\n"
          "Options:\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_rollback(struct cli *c, const char *cmd, const struct models_args *e)
{
    struct rollback_op o = {.name = e->pos[0], .alias = e->pos[1]};
    int r = apply(c, &o.by, rollback_tx, &o);
    switch (r) {
    case 0:
        print_move(o.alias, o.from, o.to);
        return CLI_OK;
    case -ENOENT:
        return models_report_missing(c, o.name, 0, o.alias);
    case -ENODATA:
        cli_error("alias '%s' of model '%s' has no earlier version to go back to (see "
                  "'sidetrack models history %s')",
                  o.alias, o.name, o.name);
        return CLI_FAIL;
    case -EIDRM:
        cli_error("the version alias '%s' of model '%s' named before has been deleted: set it "
                  "with 'sidetrack models alias %s %s VERSION'",
                  o.alias, o.name, o.name, o.alias);
        return CLI_FAIL;
    default:
        return models_error(r, "cannot roll back alias '%s' of model '%s'", o.alias, o.name);
    }
}

/* ---- stage ---- */

struct stage_op {
    const char *name;
    uint64_t version;
    int stage;
    bool archive;
    struct store_rm_by by;
    int before;
};

static int stage_tx(struct store_txn *t, void *arg)
{
    struct stage_op *o = arg;
    struct store_mv *mv = malloc(sizeof *mv);
    if (!mv)
        return -ENOMEM;
    int r = store_mv_get(t, o->name, o->version, mv);
    if (r == 0) {
        o->before = mv->stage;
        r = store_mv_transition(t, o->name, o->version, o->stage, o->archive, &o->by);
    }
    free(mv);
    return r;
}

static void stage_usage(FILE *f)
{
    fputs("Usage: sidetrack models stage NAME VERSION STAGE [--archive-existing]\n"
          "\n"
          "Moves a version to one of MLflow's (deprecated) stages: None, Staging, Production\n"
          "or Archived (any case). Aliases are what new code should use.\n"
          "\n"
          "Options:\n"
          "      --archive-existing  the model's other versions in STAGE go to Archived\n"
          "                          (towards Staging or Production only)\n"
          "  -d, --data DIR          the store's directory\n"
          "  -h, --help              show this help\n",
          f);
}

/* The stage is checked before the store opens, like every other usage error. */
static int check_stage(const char *cmd, const struct models_args *e)
{
    int stage;
    if (store_mv_stage_parse(e->pos[2], &stage) < 0)
        return cli_usage_error(cmd, "no stage '%s': None, Staging, Production or Archived",
                               e->pos[2]);
    if (e->archive && stage != STORE_STAGE_STAGING && stage != STORE_STAGE_PRODUCTION)
        return cli_usage_error(cmd, "--archive-existing goes with Staging or Production only");
    return CLI_OK;
}

static int run_stage(struct cli *c, const char *cmd, const struct models_args *e)
{
    struct stage_op o = {.name = e->pos[0], .archive = e->archive};
    struct models_ref ref;
    int rc = resolve(c, cmd, e->pos[0], e->pos[1], true, &ref);
    if (rc != CLI_OK)
        return rc;
    o.version = ref.version;
    (void)store_mv_stage_parse(e->pos[2], &o.stage); /* checked by check_stage */
    int r = apply(c, &o.by, stage_tx, &o);
    if (r == -ENOENT)
        return models_report_missing(c, o.name, o.version, NULL);
    if (r < 0)
        return models_error(r, "cannot move version %" PRIu64 " of model '%s' to %s",
                            o.version, o.name, store_mv_stage_name(o.stage));
    printf("model '%s' version %" PRIu64 ": %s -> %s%s\n", o.name, o.version,
           store_mv_stage_name(o.before), store_mv_stage_name(o.stage),
           o.archive ? " (others there archived)" : "");
    return CLI_OK;
}

/* ---- tag ---- */

struct tag_op {
    const char *name, *key, *value; /* value NULL: delete */
    uint64_t version;               /* 0: the model's own tag */
    struct store_rm_by by;
};

static int tag_tx(struct store_txn *t, void *arg)
{
    struct tag_op *o = arg;
    if (o->version)
        return o->value ? store_mv_tag_set(t, o->name, o->version, o->key, o->value, &o->by)
                        : store_mv_tag_delete(t, o->name, o->version, o->key, &o->by);
    return o->value ? store_rm_tag_set(t, o->name, o->key, o->value, &o->by)
                    : store_rm_tag_delete(t, o->name, o->key, &o->by);
}

static void tag_usage(FILE *f)
{
    fputs("Usage: sidetrack models tag NAME[/VERSION] KEY VALUE\n"
          "       sidetrack models tag NAME[/VERSION] KEY --delete\n"
          "\n"
          "Sets (or deletes) a tag of model NAME, or of one of its versions (NAME/3,\n"
          "NAME@ALIAS).\n"
          "\n"
          "Options:\n"
          "      --delete    delete the tag KEY\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_tag(struct cli *c, const char *cmd, const struct models_args *e)
{
    struct models_ref ref;
    int rc = resolve(c, cmd, e->pos[0], NULL, false, &ref);
    if (rc != CLI_OK)
        return rc;
    struct tag_op o = {.name = ref.name, .key = e->pos[1], .value = e->delete ? NULL : e->pos[2],
                       .version = ref.has_version ? ref.version : 0};
    int r = apply(c, &o.by, tag_tx, &o);
    char what[STORE_RM_NAME_MAX + 64];
    if (o.version)
        snprintf(what, sizeof what, "model '%s' version %" PRIu64, o.name, o.version);
    else
        snprintf(what, sizeof what, "model '%s'", o.name);
    if (r == -ENOENT && e->delete) {
        cli_error("%s has no tag '%s'", what, o.key);
        return CLI_FAIL;
    }
    if (r == -ENOENT)
        return models_report_missing(c, o.name, o.version, NULL);
    if (r < 0)
        return models_error(r, "cannot %s tag '%s' of %s", e->delete ? "delete" : "set", o.key,
                            what);
    printf("%s: %s %s\n", what, e->delete ? "deleted tag" : "set tag", o.key);
    return CLI_OK;
}

/* ---- the subcommands ---- */

/* What each change takes and does; edit_run is the skeleton they share. */
struct edit_cmd {
    struct models_cmd cmd; /* first: edit_run gets &cmd */
    int new_name;          /* the argument (1, 2...) that names a model to make, or 0 */
    int new_alias;         /* the argument that names an alias to set (not with --delete) */
    int (*check)(const char *cmd, const struct models_args *e); /* more usage checks */
    int (*change)(struct cli *c, const char *cmd, const struct models_args *e);
};

static int edit_run(struct cli *c, const struct models_cmd *x, const struct models_args *e);

static const struct cli_option plain_opts[] = {CLI_COMMON_OPTIONS, {0}};
static const struct cli_option create_opts[] = {
    CLI_COMMON_OPTIONS, {"description", 0, true, MODELS_OPT_DESCRIPTION}, {0}};
static const struct cli_option delete_opts[] = {
    CLI_COMMON_OPTIONS, {"yes", 'y', false, MODELS_OPT_YES}, {0}};
static const struct cli_option register_opts[] = {
    CLI_COMMON_OPTIONS,
    {"alias", 'a', true, MODELS_OPT_ALIAS},
    {"description", 0, true, MODELS_OPT_DESCRIPTION},
    {"json", 0, false, MODELS_OPT_JSON},
    {0},
};
static const struct cli_option drop_opts[] = { /* alias, tag */
    CLI_COMMON_OPTIONS, {"delete", 0, false, MODELS_OPT_DELETE}, {0}};
static const struct cli_option stage_opts[] = {
    CLI_COMMON_OPTIONS, {"archive-existing", 0, false, MODELS_OPT_ARCHIVE}, {0}};

static const struct edit_cmd edit_cmds[] = {
    {{{"models create", create_opts, create_usage, 1}, {"NAME"}, NULL, edit_run}, 1, 0, NULL,
     run_create},
    {{{"models delete", delete_opts, delete_usage, 2}, {"NAME"}, NULL, edit_run}, 0, 0, NULL,
     run_delete},
    {{{"models rename", plain_opts, rename_usage, 2}, {"NAME", "NEW_NAME"}, NULL, edit_run},
     2, 0, NULL, run_rename},
    {{{"models register", register_opts, register_usage, 2},
      {"NAME and SOURCE", "SOURCE (runs:/RUN/PATH)"}, NULL, edit_run},
     1, 0, NULL, run_register},
    {{{"models alias", drop_opts, alias_usage, 3},
      {"NAME and ALIAS", "NAME and ALIAS", "VERSION (or --delete)"}, "VERSION", edit_run},
     0, 2, NULL, run_alias},
    {{{"models rollback", plain_opts, rollback_usage, 2}, {"NAME and ALIAS", "NAME and ALIAS"},
      NULL, edit_run},
     0, 0, NULL, run_rollback},
    {{{"models stage", stage_opts, stage_usage, 3},
      {"NAME, VERSION and STAGE", "NAME, VERSION and STAGE", "STAGE"}, NULL, edit_run},
     0, 0, check_stage, run_stage},
    {{{"models tag", drop_opts, tag_usage, 3}, {"NAME and KEY", "NAME and KEY", "VALUE"},
      "VALUE", edit_run},
     0, 0, NULL, run_tag},
};

const struct models_cmd *models_edit_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof edit_cmds / sizeof *edit_cmds; i++)
        if (strcmp(edit_cmds[i].cmd.syntax.cmd + strlen("models "), name) == 0)
            return &edit_cmds[i].cmd;
    return NULL;
}

/* After cmd_models checked the number of arguments: the names the change would make, then
 * the store, then the change. */
static int edit_run(struct cli *c, const struct models_cmd *x, const struct models_args *e)
{
    const struct edit_cmd *ed = (const struct edit_cmd *)x;
    const char *cmd = x->syntax.cmd;
    int rc;
    if (ed->new_name && check_name(e->pos[ed->new_name - 1]) != CLI_OK)
        return CLI_FAIL;
    if (ed->new_alias && !e->delete && check_alias(e->pos[ed->new_alias - 1]) != CLI_OK)
        return CLI_FAIL;
    for (size_t i = 0; i < e->naliases; i++)
        if (check_alias(e->aliases[i]) != CLI_OK)
            return CLI_FAIL;
    if (ed->check && (rc = ed->check(cmd, e)) != CLI_OK)
        return rc;
    if (models_open_write(c) != CLI_OK)
        return CLI_FAIL;
    return ed->change(c, cmd, e);
}
