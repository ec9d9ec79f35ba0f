/* cmd_models.h — what the `sidetrack models` commands share (cmd_models*.c): naming a
 * version on the command line, the actor recorded in the registry's history, opening the
 * store for a registry change, and the registry's errors in words.
 *
 * A version is named as NAME@ALIAS or NAME/VERSION in one argument, or NAME then VERSION in
 * two (VERSION: a number, vN, @ALIAS, a bare alias, or `latest`: the highest number). A model
 * name may itself hold '@' or '/' (MLflow allows any name): a whole argument that names a
 * model is that model, before it is split.
 */
#ifndef SIDETRACK_CMD_MODELS_H
#define SIDETRACK_CMD_MODELS_H

#include "cli.h"
#include "registry.h"

/* The command lines of the subcommands: one id for each option any of them takes, so that one
 * parser serves them all (each syntax lists the options its command accepts).
 * MODELS_OPT_JSON is the id cli_json_options gives --json. */
enum {
    MODELS_OPT_JSON = CLI_OPT_FIRST,
    MODELS_OPT_DESCRIPTION,
    MODELS_OPT_ALIAS,
    MODELS_OPT_DELETE,
    MODELS_OPT_YES,
    MODELS_OPT_ARCHIVE,
    MODELS_OPT_FILTER,
    MODELS_OPT_LIMIT,
    MODELS_OPT_FORCE,
};
struct models_args {
    const char *pos[3]; /* the positional arguments (syntax->max_args is at most 3) */
    int n;
    bool json, delete, yes, archive, force;
    const char *description, *filter;
    size_t limit; /* --limit: 1 to 10000; 0 when not given */
    const char *aliases[32]; /* --alias, repeatable */
    size_t naliases;
};
/* Parses a subcommand's command line into a (zeroed first). Returns CLI_ARG_END when the
 * command goes on, else its exit status (after --help, or a usage error said). */
int models_args_parse(struct cli *c, const struct cli_syntax *syntax, int argc, char **argv,
                      struct models_args *a);

/* A model, or one of its versions, as the command line named it. */
struct models_ref {
    char name[STORE_RM_NAME_MAX + 1];
    bool has_version;                   /* a version was named (number, alias or latest) */
    uint64_t version;                   /* resolved */
    char alias[STORE_RM_ALIAS_MAX + 1]; /* "" unless named by an alias */
};

/* Resolves spec (and version_arg, NULL when there is none) in t. With need_version, naming
 * no version is a usage error. Returns CLI_OK with ref (and *mv, when a version was named
 * and mv is not NULL) filled, or CLI_FAIL / CLI_USAGE after saying what is wrong (no such
 * model, version or alias, with what there is). */
int models_resolve(struct store_txn *t, const char *cmd, const char *spec,
                   const char *version_arg, bool need_version, struct models_ref *ref,
                   struct store_mv *mv);
/* "3" or "v3" -> 3; -EINVAL otherwise (0 is no version). */
int models_parse_version(const char *s, uint64_t *version);

/* Opens the store for a registry change: it must exist already (a typo in --data must not
 * make a new store). CLI_OK, or CLI_FAIL said. */
int models_open_write(struct cli *c);
/* Who and when for the history: $SIDETRACK_USER, else the user's login name. */
void models_by(struct store_rm_by *by, char actor[STORE_RM_ACTOR_MAX + 1]);

/* "sidetrack: MESSAGE: <store_rm_strerror(err)>"; CLI_FAIL. */
int models_error(int err, const char *fmt, ...) CLI_PRINTF(2, 3);
/* After -ENOENT from a change to model name (version: 0 for none; alias: NULL for none),
 * says which of them is missing, with what exists (in a read transaction of its own).
 * CLI_FAIL. */
int models_report_missing(struct cli *c, const char *name, uint64_t version, const char *alias);
/* "no registered model 'NAME' (models: a, b)" in t; CLI_FAIL. */
int models_report_no_model(struct store_txn *t, const char *name);

/* A version's aliases joined as "champion, prod" (from the model's alias list). */
struct models_alias {
    char alias[STORE_RM_ALIAS_MAX + 1];
    uint64_t version;
};
struct models_aliases {
    struct models_alias *v;
    size_t n, cap;
};
int models_aliases_load(struct store_txn *t, const char *name, struct models_aliases *l);
void models_aliases_of(const struct models_aliases *l, uint64_t version, char *buf, size_t len);
/* The same as the JSON array "aliases": ["champion", "prod"]. */
void models_json_aliases_of(struct json *j, const struct models_aliases *l, uint64_t version);

/* The files of a version: the run's artifacts under its source path, with their path in the
 * model's directory (rel; a one-file model is listed by its base name, as store_mv_digest
 * does), sorted by rel in byte order. */
struct models_file {
    char *rel;
    struct store_artifact a;
};
struct models_files {
    uint8_t run[16];
    char path[STORE_MV_SOURCE_MAX + 1]; /* the model's path in the run's artifacts */
    struct models_file *v;
    size_t n, cap;
    uint64_t bytes;
};
/* Reads the files of version mv in t. CLI_OK, or CLI_FAIL said (a source that names no run
 * of this store, no artifacts there). */
int models_files_load(struct store_txn *t, const struct store_mv *mv, struct models_files *f);
void models_files_free(struct models_files *f);

/* A subcommand: its command line; what is missing when fewer arguments came than it needs
 * ("missing %s" with missing[n] after n arguments; it needs as many as there are entries);
 * and what it does once they are there. cmd_models parses, checks the count, then runs it. */
struct models_cmd {
    struct cli_syntax syntax; /* .cmd is "models NAME" */
    const char *missing[3];
    const char *delete_drops; /* --delete drops the last argument: "--delete takes no %s" */
    int (*run)(struct cli *c, const struct models_cmd *x, const struct models_args *e);
};
extern const struct models_cmd models_list_cmd, models_show_cmd, models_versions_cmd,
    models_history_cmd, models_compare_cmd, models_pull_cmd;
/* The changes (cmd_models_edit.c) by name: create, delete, rename, register, alias,
 * rollback, stage, tag; NULL for any other name. */
const struct models_cmd *models_edit_cmd(const char *name);
/* The lineage of one version (cmd_models_lineage.c), for `models show NAME VERSION`. */
int models_show_version(struct cli *c, const char *spec, const char *version_arg, bool json);

#endif
