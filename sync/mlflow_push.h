/* mlflow_push.h — the `mlflow` sync target: replicates a sidetrack store's runs into any MLflow
 * tracking server through MLflow's REST API (experiments by name, runs/create, runs/log-batch
 * in chunks within MLflow's limits, runs/update, artifacts through the mlflow-artifacts API).
 *
 * Exactly once, across restarts and retries. What has been sent is recorded in the local store
 * (store_remote_*, target "mlflow:" + 16 hex digits of the URL's SHA-256), committed with the
 * store's own transactions:
 *   - the remote experiment id per experiment name, the remote run id per local run;
 *   - per (run, metric key) how many points the remote confirmed, and while a request that
 *     appends points is in flight a "pending" marker (from, to) committed (and fsynced) before
 *     it is sent: MLflow's log-batch is not idempotent for metrics, so a request whose answer
 *     was lost (a crash, a dropped connection, a 5xx) is settled by asking the remote how many
 *     points the key has (metrics/get-history) before anything is sent again;
 *   - runs/create likewise: an intent is committed first and the run is created with the tag
 *     sidetrack.source_run_id; after a crash the run is looked for (runs/search) before it is
 *     created again;
 *   - params and tags sent (digests of their values: a changed tag is sent again), artifacts
 *     sent (path -> content SHA-256), the end of the run sent (status, end time).
 * Everything else MLflow does with these requests is idempotent (params write-once, tags
 * overwrite, artifact PUTs replace).
 *
 * Keys that MLflow refuses (characters, length, `..`) are skipped with a reason and reported
 * through the progress callback; an item the server refuses (400) is found by sending the
 * batch's items one by one, recorded as refused, and not sent again.
 *
 * Concurrency: one push at a time per store and target, in any process: a second one gets
 * -EBUSY (an flock on DIR/.mlflow-<digest>.lock). It uses the store through short
 * transactions only, so the agent (another thread or process) keeps writing meanwhile.
 * Library code: it never prints.
 */
#ifndef SIDETRACK_SYNC_MLFLOW_PUSH_H
#define SIDETRACK_SYNC_MLFLOW_PUSH_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mlflow_target {
    const char *url;               /* http(s)://HOST[:PORT][/PREFIX] of the tracking server */
    const char *experiment_prefix; /* put before local experiment names; NULL: none */
    const uint8_t (*runs)[16];     /* only these runs (even when deleted locally); */
    size_t nruns;                  /* 0: every run that is not deleted */
    bool dry_run;                  /* count what would be sent; no request, no record */
    /* authentication and TLS, as MLflow's client takes them (mlflow_target_from_env) */
    const char *token;             /* Authorization: Bearer */
    const char *username, *password; /* Basic */
    const char *ca_file;           /* CA bundle to verify the server with; NULL: system's */
    bool insecure_tls;             /* no certificate verification */
    uint32_t retry_max_ms;         /* give up after failing this long in a row (0: 120 s) */
    uint32_t timeout_ms;           /* one request's limit (0: 120 s) */
    /* asked between requests and during waits: true ends the push with -EINTR */
    bool (*should_stop)(void *arg);
    void *stop_arg;
};

/* Fills the authentication fields that are NULL from MLFLOW_TRACKING_TOKEN,
 * MLFLOW_TRACKING_USERNAME / _PASSWORD, MLFLOW_TRACKING_INSECURE_TLS ("true") and
 * MLFLOW_TRACKING_SERVER_CERT_PATH, as MLflow's client does. */
void mlflow_target_from_env(struct mlflow_target *t);

/* The name under which the target's records are kept: "mlflow:" + 16 hex digits. */
void mlflow_target_name(const char *url, char name[24]);

struct mlflow_push_stats {
    uint64_t runs;          /* runs looked at */
    uint64_t runs_created;  /* created on the remote by this push */
    uint64_t runs_updated;  /* existed there and got something */
    uint64_t runs_failed;   /* a permanent error (reported) stopped them */
    uint64_t points, params, tags, artifacts; /* sent (dry run: would be) */
    uint64_t skipped;       /* items not sent: refused keys or values, unsupported stores */
    uint64_t requests;      /* HTTP requests made, retries included */
    uint64_t retries;
};

enum mlflow_push_event_kind {
    MLFLOW_EV_RUN,      /* starting on a run: run_hex, run_name, index of total */
    MLFLOW_EV_POINTS,   /* points of the current run sent so far: done of todo */
    MLFLOW_EV_SKIP,     /* an item skipped: message says which and why */
    MLFLOW_EV_RUN_FAILED, /* a permanent error on this run: message; the push goes on */
    MLFLOW_EV_RETRY,    /* a request failed and is retried in wait_ms: message */
};

struct mlflow_push_event {
    int kind;
    const char *run_hex;
    const char *run_name;
    uint64_t index, total;  /* MLFLOW_EV_RUN */
    uint64_t done, todo;    /* MLFLOW_EV_POINTS */
    uint32_t wait_ms;       /* MLFLOW_EV_RETRY */
    const char *message;
};

typedef void (*mlflow_progress_fn)(const struct mlflow_push_event *ev, void *arg);

/* Brings the remote up to date with the store: every selected run, its params, tags, metric
 * histories (only the points not yet confirmed), artifacts and end. Returns 0 when every run
 * is up to date; 1 when some run failed permanently (each was reported, st->runs_failed);
 * -EINTR when should_stop said so; -EBUSY when another push to this target is running; or a
 * negative errno for what stopped the whole push, with a sentence in err (the server
 * unreachable for retry_max_ms, a store error, refused credentials). Safe to call again at any time: it resumes where any earlier push stopped. */
int mlflow_push_run_once(struct store *s, const struct mlflow_target *t,
                         struct mlflow_push_stats *st, mlflow_progress_fn progress,
                         void *progress_arg, char *err, size_t errlen);

#endif
