/* registry.h — the model registry in the store: registered models, their versions, aliases,
 * tags, MLflow's deprecated stages, an audit history of every change, and rollback of an
 * alias from that history. One library for the server (behind MLflow's model-registry REST
 * API, the CLI and the web UI) and a node's local store. docs/registry.md tells the rules.
 *
 * Transactions: every call takes a store_txn (store.h). Writes need a write transaction and
 * make the whole change in it (a version and its counter, a model and everything under it, a
 * change and its history entry), so a reader never sees half of one; with store_update() a
 * server thread and the agent may write concurrently. Registry changes are not journaled.
 *
 * Names: a registered model's name is any non-empty string of 1..STORE_RM_NAME_MAX bytes with
 * no NUL (MLflow asks only that it is not empty), unique among the models of the store, case
 * included. Aliases follow MLflow (mlflow/utils/validation.py): [A-Za-z0-9_-], at most
 * STORE_RM_ALIAS_MAX characters, `latest` in any case and `v<digits>`/`V<digits>` reserved
 * (they name versions in models:/ URIs). Tag keys: 1..STORE_RM_TAG_KEY_MAX bytes, values up to
 * STORE_RM_TAG_VALUE_MAX.
 *
 * Errors (0 or a negative errno, never printed). What the REST layer maps them to:
 *   -EINVAL        a malformed argument: bad name, alias, stage, status, digest, filter or
 *                  page token, a reserved alias (INVALID_PARAMETER_VALUE). The *_check
 *                  helpers give MLflow's sentence for names and aliases.
 *   -ENAMETOOLONG  a name, key or value over its limit (INVALID_PARAMETER_VALUE)
 *   -EEXIST        a model with that name exists (RESOURCE_ALREADY_EXISTS)
 *   -ENOENT        no such model, version, alias or tag (RESOURCE_DOES_NOT_EXIST)
 *   -ENODATA       rollback: the alias has no earlier version to go back to
 *   -EIDRM         rollback: the version it pointed at before has been deleted
 *   -EOVERFLOW     a counter ran out (not in this universe)
 * and the store's own (-EROFS in a read transaction, -ENOSPC, -EBADMSG...). store_rm_strerror()
 * says them in words.
 *
 * Who and when: every write takes a struct store_rm_by: the actor (a user or agent name, kept
 * in the history as given, at most STORE_RM_ACTOR_MAX bytes; NULL means "") and the time in ms
 * that the change is stamped with (creation and last-updated times, history entries).
 */
#ifndef SIDETRACK_STORE_REGISTRY_H
#define SIDETRACK_STORE_REGISTRY_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_RM_NAME_MAX 256u
#define STORE_RM_DESC_MAX 5000u
#define STORE_RM_ALIAS_MAX 255u
#define STORE_RM_TAG_KEY_MAX 250u
#define STORE_RM_TAG_VALUE_MAX 5000u
#define STORE_RM_ACTOR_MAX 127u
#define STORE_MV_SOURCE_MAX 1024u
#define STORE_MV_RUN_ID_MAX 64u
#define STORE_MV_RUN_LINK_MAX 1024u
#define STORE_MV_STATUS_MSG_MAX 500u
/* Page tokens (models, versions, history) fit in this many bytes with their NUL. */
#define STORE_RM_TOKEN_MAX 544u

struct store_rm_by {
    const char *actor;
    int64_t now_ms;
};

const char *store_rm_strerror(int err);
/* 0 when name is a valid model name; else -EINVAL / -ENAMETOOLONG with MLflow's sentence in
 * msg (msg may be NULL). */
int store_rm_name_check(const char *name, char *msg, size_t msglen);
/* 0 when alias may be set; else -EINVAL / -ENAMETOOLONG with MLflow's sentence ("'latest'
 * alias name (case insensitive) is reserved.", "Version alias name 'v3' is reserved.", ...). */
int store_rm_alias_check(const char *alias, char *msg, size_t msglen);

/* ---- registered models -------------------------------------------------------------- */

struct store_rm {
    uint64_t id;                  /* internal; never reused, the history is kept under it */
    char name[STORE_RM_NAME_MAX + 1];
    char description[STORE_RM_DESC_MAX + 1];
    int64_t created_ms;
    int64_t updated_ms;           /* the model's or any of its versions' last change */
    uint64_t last_version;        /* highest version number ever given (0: none yet) */
};

/* Creates a model (description may be NULL); out, when not NULL, receives it. */
int store_rm_create(struct store_txn *t, const char *name, const char *description,
                    const struct store_rm_by *by, struct store_rm *out);
int store_rm_get(struct store_txn *t, const char *name, struct store_rm *out);
int store_rm_get_id(struct store_txn *t, uint64_t id, struct store_rm *out);
/* Renames a model; its versions, tags, aliases and history follow. Same name: no-op. */
int store_rm_rename(struct store_txn *t, const char *name, const char *new_name,
                    const struct store_rm_by *by);
int store_rm_set_description(struct store_txn *t, const char *name, const char *description,
                             const struct store_rm_by *by);
/* Deletes a model with its versions, tags and aliases. Its history stays, under its id. */
int store_rm_delete(struct store_txn *t, const char *name, const struct store_rm_by *by);
/* Every model in name order (byte order). */
int store_rm_foreach(struct store_txn *t, int (*cb)(const struct store_rm *m, void *arg),
                     void *arg);

int store_rm_tag_set(struct store_txn *t, const char *name, const char *key, const char *value,
                     const struct store_rm_by *by);
int store_rm_tag_delete(struct store_txn *t, const char *name, const char *key,
                        const struct store_rm_by *by);
/* In key order; strings valid during the call. */
int store_rm_tags_foreach(struct store_txn *t, const char *name,
                          int (*cb)(const char *key, const char *value, void *arg), void *arg);

/* ---- versions ---------------------------------------------------------------------- */

enum store_mv_status { /* model_registry.proto's ModelVersionStatus */
    STORE_MV_PENDING_REGISTRATION = 1,
    STORE_MV_FAILED_REGISTRATION = 2,
    STORE_MV_READY = 3,
};
enum store_mv_stage { /* MLflow's deprecated stages */
    STORE_STAGE_NONE = 0,
    STORE_STAGE_STAGING = 1,
    STORE_STAGE_PRODUCTION = 2,
    STORE_STAGE_ARCHIVED = 3,
};
const char *store_mv_status_name(int status); /* "READY", ...; "UNKNOWN" otherwise */
int store_mv_status_parse(const char *s, int *status); /* exact names; -EINVAL otherwise */
const char *store_mv_stage_name(int stage);            /* "None", "Staging", ... */
/* Any case, as MLflow's get_canonical_stage; -EINVAL with no such stage. */
int store_mv_stage_parse(const char *s, int *stage);

struct store_mv {
    uint64_t model_id;
    char name[STORE_RM_NAME_MAX + 1]; /* the model's current name */
    uint64_t version;                 /* from 1, per model, never reused */
    char source[STORE_MV_SOURCE_MAX + 1]; /* "runs:/<run>/model", an artifact URI... */
    char run_id[STORE_MV_RUN_ID_MAX + 1]; /* "" when not made from a run */
    char run_link[STORE_MV_RUN_LINK_MAX + 1];
    char description[STORE_RM_DESC_MAX + 1];
    int status;                       /* enum store_mv_status */
    char status_message[STORE_MV_STATUS_MSG_MAX + 1];
    char digest[65];                  /* sha256 of the model's files, lowercase hex, or "" */
    int stage;                        /* enum store_mv_stage */
    int64_t created_ms;
    int64_t updated_ms;
};

/* What a new version is made of. Only source is required; status 0 means READY. digest: 64
 * hex digits (any case, kept lowercase) or NULL/"". */
struct store_mv_new {
    const char *source;
    const char *run_id;
    const char *run_link;
    const char *description;
    const char *digest;
    int status;
    const char *status_message;
};
/* Adds a version to a model under the model's next number (last_version + 1), in this
 * transaction: numbers are unique and gap-free in creation order, and never given again
 * after a delete. -ENOENT when there is no such model. */
int store_mv_create(struct store_txn *t, const char *name, const struct store_mv_new *nv,
                    const struct store_rm_by *by, uint64_t *version);
int store_mv_get(struct store_txn *t, const char *name, uint64_t version, struct store_mv *out);
int store_mv_set_description(struct store_txn *t, const char *name, uint64_t version,
                             const char *description, const struct store_rm_by *by);
/* Status and its message (e.g. PENDING_REGISTRATION -> READY once the files are in). */
int store_mv_set_status(struct store_txn *t, const char *name, uint64_t version, int status,
                        const char *message, const struct store_rm_by *by);
/* Deletes a version with its tags; the aliases on it are removed (history: alias_dropped). */
int store_mv_delete(struct store_txn *t, const char *name, uint64_t version,
                    const struct store_rm_by *by);
/* Moves a version to a stage. With archive_existing, the model's other versions in that stage
 * go to Archived; it is allowed only towards Staging or Production (-EINVAL otherwise), as in
 * MLflow. */
int store_mv_transition(struct store_txn *t, const char *name, uint64_t version, int stage,
                        bool archive_existing, const struct store_rm_by *by);
/* A model's versions, lowest number first. */
int store_mv_foreach(struct store_txn *t, const char *name,
                     int (*cb)(const struct store_mv *v, void *arg), void *arg);
/* MLflow's get-latest-versions: for each stage of stages (all four when n is 0, in the order
 * None, Staging, Production, Archived), the highest version in that stage, if any. */
int store_mv_latest(struct store_txn *t, const char *name, const int *stages, size_t n,
                    int (*cb)(const struct store_mv *v, void *arg), void *arg);
/* Lineage: every version made from run_id, over all models (model id, then version order). */
int store_mv_by_run(struct store_txn *t, const char *run_id,
                    int (*cb)(const struct store_mv *v, void *arg), void *arg);

int store_mv_tag_set(struct store_txn *t, const char *name, uint64_t version, const char *key,
                     const char *value, const struct store_rm_by *by);
int store_mv_tag_delete(struct store_txn *t, const char *name, uint64_t version,
                        const char *key, const struct store_rm_by *by);
int store_mv_tags_foreach(struct store_txn *t, const char *name, uint64_t version,
                          int (*cb)(const char *key, const char *value, void *arg), void *arg);

/* ---- aliases --------------------------------------------------------------------------- */

/* Points alias at a version, creating or moving it (an alias names one version at a time; a
 * version may have many). The same version again changes nothing and records nothing.
 * -EINVAL for a bad or reserved alias (store_rm_alias_check), -ENOENT for no such version. */
int store_rm_alias_set(struct store_txn *t, const char *name, const char *alias,
                       uint64_t version, const struct store_rm_by *by);
int store_rm_alias_delete(struct store_txn *t, const char *name, const char *alias,
                          const struct store_rm_by *by);
int store_rm_alias_get(struct store_txn *t, const char *name, const char *alias,
                       uint64_t *version);
/* models:/NAME@ALIAS */
int store_mv_by_alias(struct store_txn *t, const char *name, const char *alias,
                      struct store_mv *out);
/* A model's aliases in alias order (a version's own: filter on version). */
int store_rm_aliases_foreach(struct store_txn *t, const char *name,
                             int (*cb)(const char *alias, uint64_t version, void *arg),
                             void *arg);

/* ---- audit history and rollback ------------------------------------------------------- */

enum store_rm_change {
    STORE_RM_MODEL_CREATED = 1,   /* after: description */
    STORE_RM_MODEL_RENAMED = 2,   /* before, after: the names */
    STORE_RM_MODEL_DELETED = 3,
    STORE_RM_MODEL_DESCRIBED = 4, /* before, after: descriptions */
    STORE_RM_MODEL_TAG_SET = 5,   /* key; before (old value, "" if none), after */
    STORE_RM_MODEL_TAG_DELETED = 6, /* key; before */
    STORE_RM_VERSION_CREATED = 7, /* version; after: source */
    STORE_RM_VERSION_DELETED = 8, /* version; before: source */
    STORE_RM_VERSION_DESCRIBED = 9,
    STORE_RM_VERSION_STATUS = 10, /* before, after: status names */
    STORE_RM_VERSION_STAGE = 11,  /* before, after: stage names */
    STORE_RM_VERSION_TAG_SET = 12,
    STORE_RM_VERSION_TAG_DELETED = 13,
    STORE_RM_ALIAS_SET = 14,      /* key: alias; from (0: new alias) -> to */
    STORE_RM_ALIAS_DELETED = 15,  /* key; from -> 0 */
    STORE_RM_ALIAS_DROPPED = 16,  /* key; from -> 0: its version was deleted */
    STORE_RM_ALIAS_ROLLBACK = 17, /* key; from -> to; undoes: the change it undid */
};
const char *store_rm_change_name(int kind); /* "alias_set", ... */

struct store_rm_event {
    uint64_t seq;                 /* store-wide, increasing: the order of changes */
    int64_t time_ms;
    int kind;                     /* enum store_rm_change */
    char actor[STORE_RM_ACTOR_MAX + 1];
    uint64_t model_id;
    char model[STORE_RM_NAME_MAX + 1]; /* the model's name when the change was made */
    uint64_t version;             /* the version concerned; 0 for the model itself */
    char key[STORE_RM_ALIAS_MAX + 1];  /* alias or tag key */
    uint64_t from_version, to_version; /* alias changes: 0 means none */
    uint64_t undoes;              /* rollback: seq of the change it undid */
    char before[STORE_RM_TAG_VALUE_MAX + 1];
    char after[STORE_RM_TAG_VALUE_MAX + 1];
};

/* A model's history, newest first, at most max entries (0: 100) after page_token (NULL or ""
 * for the first page); next_token gets the token of the next page, "" at the end. The event
 * handed to cb is valid during the call. -EINVAL for a malformed token. */
int store_rm_history(struct store_txn *t, const char *name, size_t max, const char *page_token,
                     int (*cb)(const struct store_rm_event *e, void *arg), void *arg,
                     char next_token[STORE_RM_TOKEN_MAX]);
/* The same by model id (store_rm.id; e.g. for a model that has been deleted). */
int store_rm_history_id(struct store_txn *t, uint64_t model_id, size_t max,
                        const char *page_token,
                        int (*cb)(const struct store_rm_event *e, void *arg), void *arg,
                        char next_token[STORE_RM_TOKEN_MAX]);

/* Moves alias back to the version it named before its latest change that has not been rolled
 * back already: rolling back twice in a row goes two steps back, and a rollback of an alias
 * that was deleted restores it. Removals made by deleting a version are skipped (their
 * alias goes back to where it was before it reached that version). Recorded as
 * STORE_RM_ALIAS_ROLLBACK. from/to (either may be NULL) receive the versions. -ENODATA when
 * there is no earlier version, -EIDRM when that version has been deleted, -ENOENT for no such
 * model. */
int store_rm_rollback(struct store_txn *t, const char *name, const char *alias,
                      const struct store_rm_by *by, uint64_t *from, uint64_t *to);

/* ---- search (registry_search.c) -------------------------------------------------------
 * Filters: `ident op value` clauses joined by AND (any case), as MLflow's
 * registered-models/search and model-versions/search take them:
 *   models:   name, tags.KEY                       = != LIKE ILIKE  'string'
 *   versions: name, run_id, source_path, tags.KEY  = != LIKE ILIKE  'string'
 *             run_id also IN ('a', 'b');  version_number  = != < <= > >=  integer
 * Keys with other characters than letters, digits, _ . / - go in backticks (tags.`a b`);
 * strings in single or double quotes. LIKE: % and _; ILIKE ignores ASCII case.
 * Order: models by name; versions by name, then version number highest first. Page tokens
 * name the last item returned, so a page does not shift when items before it are deleted.
 * Errors: -EINVAL with a sentence in err (bad filter, token or max_results). */
#define STORE_RM_SEARCH_DEFAULT_MAX 100u   /* MLflow's, for registered models */
#define STORE_RM_SEARCH_MAX_MAX 1000u
#define STORE_MV_SEARCH_DEFAULT_MAX 10000u /* for model versions */
#define STORE_MV_SEARCH_MAX_MAX 200000u

struct store_rm_query {
    const char *filter;      /* NULL or "": all */
    size_t max_results;      /* 0: the default */
    const char *page_token;  /* NULL or "": the first page */
};
struct store_rm_page {
    char (*names)[STORE_RM_NAME_MAX + 1]; /* malloc'd; store_rm_get each */
    size_t n;
    char next_page_token[STORE_RM_TOKEN_MAX]; /* "" when there are no more */
};
int store_rm_search(struct store_txn *t, const struct store_rm_query *q,
                    struct store_rm_page *out, char *err, size_t errlen);
void store_rm_page_free(struct store_rm_page *p);

struct store_mv_ref {
    char name[STORE_RM_NAME_MAX + 1];
    uint64_t version;
};
struct store_mv_page {
    struct store_mv_ref *refs; /* malloc'd; store_mv_get each */
    size_t n;
    char next_page_token[STORE_RM_TOKEN_MAX];
};
int store_mv_search(struct store_txn *t, const struct store_rm_query *q,
                    struct store_mv_page *out, char *err, size_t errlen);
void store_mv_page_free(struct store_mv_page *p);

/* ---- model files and their digest (registry_digest.c) --------------------------------- */

/* Where a version's files are: source "runs:/<run>/<path>" or the artifact URI this server
 * gives, "mlflow-artifacts:/<exp>/<run>/artifacts/<path>" (also with a //host:port part).
 * run_hex gets the run id (32 hex digits, lowercase); path the model's path in the run's
 * artifacts, without leading or trailing slash ("" for all of the run's artifacts).
 * -EINVAL for any other source (another scheme, a short run id, "..", "//"), -ENAMETOOLONG
 * when path does not fit in pathlen. */
int store_mv_source_parse(const char *source, char run_hex[33], char *path, size_t pathlen);
/* The content digest of a model's files: the run's artifacts at path itself (a one-file
 * model) or under path/ (all of them for ""). hex gets the SHA-256, lowercase, of the
 * manifest that `sha256sum` prints in the model's directory: "<file sha256>  <relative
 * path>\n" per file, sorted by relative path in byte order (a one-file model is listed by
 * its base name; names with \, newline or CR escaped as coreutils does). files and bytes
 * (either may be NULL) get the count and total size. -ENOENT when no artifact matches.
 * Reads only the store's references (their hashes), never the contents. */
int store_mv_digest(struct store_txn *t, const uint8_t run[16], const char *path, char hex[65],
                    uint64_t *files, uint64_t *bytes);

/* ---- registration from training code (registry_register.c) ----------------------------
 * st_register_model() in a training process, or the same op replayed from a node's journal
 * on the server (sync/apply.c) or from a bundle. One call makes the whole registration in the
 * caller's transaction: the model when it is missing, a version whose source is
 * "runs:/<run hex>/<path>" (run_id the run's hex), its digest, and the aliases moved to it.
 *
 * The digest is store_mv_digest() over the run's artifacts at path as this transaction sees
 * them (the agent drains a lane in order, so artifacts logged before the registration from
 * the same thread are in), or, when reg->digest is given, that digest as recorded where the
 * registration was made: a replay never recomputes, so a node's version and the server's
 * carry the same digest even if the run got more files since. The two stores number their
 * versions independently (each per model, per store); the digest and the source tie them.
 *
 * No artifact at path (or reg->digest ""): the version is still made, so that the request is
 * not lost and shows up, with status FAILED_REGISTRATION, an empty digest and a status
 * message that says no artifacts were found at that path; its aliases are NOT set (an alias
 * must never point at a model whose files are missing), and the message names them.
 *
 * When the store journals (the agent), one STORE_OP_MODEL_REGISTER op is appended with the
 * digest as computed, so that the server replays exactly this registration once.
 * Errors: -EINVAL (bad name, alias, path, more than STORE_OP_ALIASES_MAX aliases, no run),
 * -ENAMETOOLONG, the store's. */
struct store_mv_registration {
    const uint8_t *run;            /* 16 bytes */
    const char *path;              /* the model's path in the run's artifacts, not empty */
    const char *name;              /* the registered model; created when missing */
    const char *const *aliases;    /* naliases aliases to point at the new version */
    size_t naliases;
    const char *description;       /* the version's; NULL or "" for none */
    const char *digest;            /* NULL: computed here; else as recorded at the source */
};
int store_mv_register(struct store_txn *t, const struct store_mv_registration *reg,
                      const struct store_rm_by *by, uint64_t *version);
/* Replays a STORE_OP_MODEL_REGISTER op (a node's registration, from a sync batch or a
 * bundle): store_mv_register() with the op's run, path, model, aliases, description and
 * digest, by the op's actor at the op's time. -EINVAL for another type of op or a bad alias
 * list. */
int store_mv_register_op(struct store_txn *t, const struct store_op *op, uint64_t *version);

#endif
