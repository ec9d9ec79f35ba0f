/* mlflow_registry.h — what the two files of MLflow's model-registry API share (internal to the
 * server): the request's actor, its field readers, the answers to the registry's store errors,
 * and the JSON shapes of registered models and versions (model_registry.proto).
 *
 * Files: mlflow_registry.c (routes, registered models, aliases, JSON), mlflow_registry_mv.c
 * (model versions, and sidetrack's history and rollback endpoints). Both sit on
 * store/registry.h. */
#ifndef SIDETRACK_SERVER_MLFLOW_REGISTRY_H
#define SIDETRACK_SERVER_MLFLOW_REGISTRY_H

#include "mlflow_internal.h"
#include "registry.h"

/* Who and when for the history: the token's name when the request carried a valid one,
 * else "anonymous"; now. actor is the caller's buffer. */
void rg_by(const struct mf *m, char actor[STORE_RM_ACTOR_MAX + 1], struct store_rm_by *by);

/* "version": a positive integer (a string, or a number); fails the request otherwise. */
bool rg_version(struct mf *m, uint64_t *out);
/* A bool field given as true/false or "true"/"false". */
bool rg_bool(struct mf *m, const char *name, bool required, bool *out);
/* [{key, value}] tags checked as MLflow checks registry tags; NULL after a failure. */
json_t *rg_tags(struct mf *m);
bool rg_check_tag(struct mf *m, const char *key, const char *value);
/* A store error of a registry call, answered as MLflow would: name and version (0: the model
 * itself) and alias (may be NULL) say what was concerned. */
void rg_fail(struct mf *m, int rc, const char *name, uint64_t version, const char *alias);
/* store_update, with every error answered through rg_fail. */
int rg_update(struct mf *m, int (*fn)(struct store_txn *t, void *arg), void *arg,
              const char *name, uint64_t version, const char *alias);
/* order_by: only the store's own order is served (models by name; versions by name, then
 * version highest first); anything else fails the request. */
bool rg_order_ok(struct mf *m, bool versions);
/* A search's filter, max_results (0 to max_max), page_token and order_by (rg_order_ok) into
 * q; fails the request otherwise. */
bool rg_search_query(struct mf *m, bool versions, unsigned max_max, struct store_rm_query *q);
/* Answers a search's store error (-EINVAL in the store's words of errbuf, when it has some);
 * true when rc is no error and the page is to be answered. */
bool rg_search_ok(struct mf *m, int rc, const char *errbuf);

/* JSON shapes. A version carries its tags, its aliases and sidetrack_digest (when known). */
json_t *rg_version_json(struct store_txn *t, const struct store_mv *v);
json_t *rg_model_json(struct store_txn *t, const struct store_rm *r);
/* A version in a fresh read transaction as {"model_version": ...}, answered. */
void rg_reply_version(struct mf *m, const char *name, uint64_t version);
/* A page of search results as {key: items, next_page_token}, each left out when empty,
 * answered (items is taken). */
void rg_reply_page(struct mf *m, const char *key, json_t *items, const char *next_page_token);

/* The handlers of mlflow_registry_mv.c. */
void rg_mv_create(struct mf *m);
void rg_mv_get(struct mf *m);
void rg_mv_update(struct mf *m);
void rg_mv_delete(struct mf *m);
void rg_mv_search(struct mf *m);
void rg_mv_set_tag(struct mf *m);
void rg_mv_delete_tag(struct mf *m);
void rg_mv_transition(struct mf *m);
void rg_mv_download_uri(struct mf *m);
void rg_history(struct mf *m);
void rg_rollback(struct mf *m);

#endif
