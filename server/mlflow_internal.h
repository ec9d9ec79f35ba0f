/* mlflow_internal.h — what the files of the MLflow API share: the request being handled, the
 * readers of its fields (typed as MLflow's protos type them), MLflow's validation rules and
 * error messages, and the JSON shapes of its entities.
 *
 * Files: mlflow_api.c (routes, experiments and runs), mlflow_metrics.c (metrics and
 * log-batch), mlflow_search.c (runs/search, experiments/search), mlflow_artifacts.c,
 * mlflow_json.c (entities as JSON, field readers), mlflow_validate.c (MLflow's limits). */
#ifndef SIDETRACK_SERVER_MLFLOW_INTERNAL_H
#define SIDETRACK_SERVER_MLFLOW_INTERNAL_H

#include "http.h"
#include "protocol.h"
#include "store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MLflow's limits (mlflow/utils/validation.py). */
#define MF_MAX_METRICS_PER_BATCH 1000
#define MF_MAX_PARAMS_TAGS_PER_BATCH 100
#define MF_MAX_ENTITIES_PER_BATCH 1000
#define MF_MAX_BATCH_BYTES 1000000
#define MF_MAX_KEY 250
#define MF_MAX_PARAM_VALUE 6000
#define MF_MAX_TAG_VALUE 5000
#define MF_MAX_EXPERIMENT_NAME 500
#define MF_MAX_RUN_NAME 250
#define MF_MAX_SEARCH_RESULTS 50000

/* One request being handled. */
struct mf {
    const struct http_req *req;
    struct http_resp *resp;
    struct store *s;
    json_t *p;   /* the request's fields: the JSON body, or the query of a GET */
    bool failed; /* an error response is set: the handler stops */
};

/* Error responses (MLflow's shape and codes); each sets m->failed. */
/* Answers 200 with the JSON text in b (taken over: b's memory becomes the body), or 500 when
 * b ran out of memory while it was written. */
void mf_respond_buf(struct mf *m, struct sync_buf *b);
void mf_error(struct mf *m, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define mf_invalid(m, ...) mf_error((m), 400, "INVALID_PARAMETER_VALUE", __VA_ARGS__)
#define mf_missing_resource(m, ...) mf_error((m), 404, "RESOURCE_DOES_NOT_EXIST", __VA_ARGS__)
/* A store error: -ENOENT as RESOURCE_DOES_NOT_EXIST naming what, others INTERNAL_ERROR. */
void mf_store_error(struct mf *m, int rc, const char *what);
void mf_ok(struct mf *m, json_t *body); /* 200 and body (stolen; NULL: {}) */

/* Field readers. A field given with the wrong type fails the request with MLflow's message;
 * a missing one is "absent" (false) or, when required, fails the request. GET queries give
 * every value as a string, so numbers and booleans are also read from strings. */
bool mf_str(struct mf *m, const char *name, bool required, const char **out);
bool mf_i64(struct mf *m, const char *name, bool required, int64_t *out);
/* run_id, or the older run_uuid: required. */
bool mf_run_field(struct mf *m, const char **hex);
/* Numbers, or "NaN", "Infinity", "-Infinity" (protobuf's JSON for doubles). */
bool mf_json_double(const json_t *v, double *out);
/* An int64 as protobuf's JSON has it: an integer, or a string of digits. */
bool mf_json_i64(const json_t *v, int64_t *out);
/* A repeated field: always an array (a single GET value becomes a one-element array, a
 * missing field an empty one); borrowed from m->p or m-owned. NULL after a failure. */
json_t *mf_array(struct mf *m, const char *name);

/* Ids. The run: its row in *r (a deleted one too); fails the request when there is none. */
bool mf_run_id(struct mf *m, const char *hex, uint8_t id[16]);
bool mf_get_run(struct mf *m, struct store_txn *t, const char *hex, struct store_run *r);
/* Fails unless the run is active (MLflow logs nothing into deleted runs). */
bool mf_run_active(struct mf *m, const struct store_run *r, const char *hex);
bool mf_exp_id(struct mf *m, const char *text, uint64_t *id);
bool mf_get_experiment(struct mf *m, struct store_txn *t, const char *text,
                       struct store_experiment *e);
bool mf_begin_read(struct mf *m, struct store_txn **t);
/* Runs fn in a write transaction (store_update). fn returns 0, a negative errno, or a refusal
 * (MF_REFUSED - k, k < 16) after noting its reason in its arg. A store error fails the
 * request here, except -ENOENT, -EEXIST, -EINVAL, -ENAMETOOLONG and refusals: the caller
 * answers those (in words about its resource), then calls mf_update_failed() for whatever it
 * did not answer. */
#define MF_REFUSED (-100000)
#define MF_IS_REFUSAL(rc) ((rc) <= MF_REFUSED && (rc) > MF_REFUSED - 16)
int mf_update(struct mf *m, int (*fn)(struct store_txn *t, void *arg), void *arg);
/* In an update's fn: the run's row in *r when it is there and active, else its -errno or
 * MF_REFUSED (a deleted run takes nothing). */
int mf_run_writable(struct store_txn *t, const uint8_t id[16], struct store_run *r);
void mf_update_failed(struct mf *m, int rc);
int64_t mf_now_ms(void);

/* Validation (mlflow_validate.c): MLflow's rules and messages. what: "metric", "parameter",
 * "tag". Each fails the request and returns false when the rule is broken. */
bool mf_check_key(struct mf *m, const char *what, const char *key);
/* label as MLflow's messages name it ("Param value", "Tag value", "Metric name"). */
bool mf_check_len(struct mf *m, const char *label, const char *value, size_t limit);
size_t mf_utf8_len(const char *s); /* characters, as Python's len() counts them */
bool mf_check_artifact_path(struct mf *m, const char *path, bool empty_ok);

/* JSON shapes (mlflow_json.c). Empty repeated fields are left out, as protobuf's JSON does;
 * int64 fields are numbers (MLflow's message_to_json); doubles NaN/Infinity as strings. */
json_t *mf_double(double v);
json_t *mf_jstr(const char *s); /* never NULL: bytes that are not UTF-8 become U+FFFD */
json_t *mf_metric_json(const char *key, const struct store_point *p);
json_t *mf_experiment_json(struct store_txn *t, const struct store_experiment *e);
json_t *mf_run_info_json(const struct store_run *r);
json_t *mf_run_json(struct store_txn *t, const struct store_run *r);
const char *mf_lifecycle(bool deleted);
int mf_status_parse(const char *s); /* RunStatus name -> enum store_run_status, 0: unknown */

/* Keys of run inputs (store_input_put): the dataset's identity, name and digest. */
void mf_input_key(const char *name, const char *digest, char out[65]);

/* Route tables of the other files, registered by mlflow_api.c. */
typedef void (*mf_fn)(struct mf *m);
struct mf_route {
    const char *method;
    const char *path;  /* after the prefix */
    mf_fn fn;
    unsigned flags;    /* MF_RAW: the handler reads the body itself (no m->p) */
};
#define MF_RAW 1u
void mf_log_metric(struct mf *m);
void mf_log_batch(struct mf *m);
void mf_get_history(struct mf *m);
void mf_get_history_bulk(struct mf *m);
void mf_search_runs(struct mf *m);
void mf_search_experiments(struct mf *m);
void mf_list_artifacts(struct mf *m);
/* A route whose handler is fn (with m->p read from the request unless mf_flags has MF_RAW). */
int mf_route_add(struct http_server *h, const char *method, const char *path,
                 unsigned http_flags, mf_fn fn, unsigned mf_flags, struct store *s);
/* The artifacts proxy: registered by mlflow_artifacts.c itself. */
int mf_artifacts_register(struct http_server *h, struct store *s);
/* The model registry (mlflow_registry.c, with sidetrack's /api/sidetrack/v1/models/ routes). */
int mf_registry_register(struct http_server *h, struct store *s);

#endif
