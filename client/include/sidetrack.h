/** @file sidetrack.h
 * @brief libsidetrack: experiment tracking for training loops that cannot wait.
 *
 * A training process logs params, tags, metrics and artifacts into a shared-memory ring on
 * its node. The agent, sidetrackd, drains the ring into its store (LMDB) and, later, ships
 * it to a central server. A log call is a few stores into memory: it makes no system call on
 * its common path, takes no lock shared with another process, and never blocks.
 *
 * @section model Data model (MLflow's)
 * experiment (unique name) -> run (32 hex digit id, name, status, start and end time) ->
 * params (write-once key -> string), tags (key -> string, last write wins), metrics (key ->
 * history of (value, step, timestamp)), artifacts (files, by path within the run).
 *
 * @section errors Errors
 * Every function that can fail returns 0 on success or a negative error code: a negated errno
 * value (-EINVAL, -ENOMEM, ...) or one of the ST_E* codes below. st_strerror() turns any of
 * them into a sentence. Only mistakes in the arguments are reported as errors by the logging
 * calls. A record that cannot be delivered (the agent is far behind and the lane is full) is
 * counted, never raised: metrics are dropped and counted in st_stats.dropped_metrics; params,
 * tags, run state and artifacts are never dropped but written to a per-lane spill file that
 * the agent ingests, and only counted as lost if that file cannot be written.
 *
 * @section durability Durability
 * A call returns when its record is in shared memory. From there it survives the death of the
 * training process (the agent drains what was published), and it reaches the agent's store
 * even if the agent starts later. It is durable on disk once the agent has committed it and
 * the agent's fsync interval has passed (see docs/durability.md).
 *
 * @section threads Threads and processes
 * An #st_client is shared by all threads of a process; each thread that logs gets its own
 * lane in the ring on its first call (per-thread order is preserved; records of different
 * threads are not ordered with each other). A forked child may keep using the client: its
 * first call claims a lane of its own. Run handles may be used from any thread.
 */
#ifndef SIDETRACK_H
#define SIDETRACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ST_VERSION_MAJOR 0
#define ST_VERSION_MINOR 1
#define ST_VERSION_PATCH 0

/** @defgroup errors Error codes beyond errno
 * @{ */
/** A key (metric, param or tag name) is empty, longer than 250 characters (or 480 bytes of
 * UTF-8, the store's bound), has characters
 * outside letters, digits, '_', '-', '.', ' ' and '/', or is a path that is not normalised
 * (leading '/', '..', '//', trailing '/'): MLflow's rules. */
#define ST_EKEY (-3001)
/** A value is too long (param > 6000 characters, tag > 5000) or not valid UTF-8. */
#define ST_EVALUE (-3002)
/** An experiment or run name is empty, too long (500 / 250) or not valid UTF-8; or a
 * registered model's name is empty or longer than 256 bytes. */
#define ST_ENAME (-3003)
/** An artifact path is absolute, has '..' or is not normalised. */
#define ST_EPATH (-3004)
/** The run has already ended. */
#define ST_EENDED (-3005)
/** The ring file named for this user belongs to another user (st_open() refuses it). */
#define ST_ERINGOWNER (-3006)
/** A model alias is empty, longer than 255 characters, has characters outside letters,
 * digits, '_' and '-', or is reserved ("latest" in any case, "v<digits>": they name versions
 * in models:/ URIs); or more than ST_MAX_MODEL_ALIASES aliases were given. MLflow's rules. */
#define ST_EALIAS (-3007)
/** @} */

/** Limits, MLflow's. */
#define ST_MAX_KEY_LEN 250
#define ST_MAX_KEY_BYTES 480
#define ST_MAX_PARAM_VALUE_LEN 6000
#define ST_MAX_TAG_VALUE_LEN 5000
#define ST_MAX_EXPERIMENT_NAME_LEN 500
#define ST_MAX_RUN_NAME_LEN 250
#define ST_MAX_BATCH 1000
#define ST_MAX_MODEL_NAME_BYTES 256
#define ST_MAX_MODEL_ALIASES 16
#define ST_MAX_MODEL_DESCRIPTION_BYTES 5000

/** Opaque handle to a process's connection to the node's ring. */
typedef struct st_client st_client;
/** Opaque handle to a run started by this process. */
typedef struct st_run st_run;
/** An interned key: a small integer standing for a metric name in this client. */
typedef uint32_t st_key;

/** Run status, with MLflow's numbering. */
typedef enum st_run_status {
    ST_RUN_RUNNING = 1,
    ST_RUN_SCHEDULED = 2,
    ST_RUN_FINISHED = 3,
    ST_RUN_FAILED = 4,
    ST_RUN_KILLED = 5,
} st_run_status;

/** Options for st_open(). Zero-initialise, then set what you need. */
typedef struct st_options {
    /** Directory of the ring. NULL: $SIDETRACK_RING_DIR, else /dev/shm/sidetrack. */
    const char *ring_dir;
    /** Geometry used only if this call creates the ring: number of lanes (0: 64, or
     * $SIDETRACK_LANES) and bytes per lane (0: 8 MiB, or $SIDETRACK_LANE_MB). */
    uint32_t lanes;
    uint64_t lane_size;
} st_options;

/** Counters of what this process could not deliver, summed over its lanes. */
typedef struct st_stats {
    uint64_t lanes;            /**< lanes this process holds now */
    uint64_t dropped_metrics;  /**< metric records dropped because a lane was full */
    uint64_t spilled_records;  /**< records written to spill files (they are not lost) */
    uint64_t lost_records;     /**< non-metric records lost: spill quota reached or I/O error */
    uint64_t no_lane;          /**< calls that found every lane of the ring taken */
} st_stats;

/** Attaches to the node's ring, creating it if no process has yet.
 * @param[out] client the new handle; release it with st_close().
 * @param[in] opts NULL for defaults.
 * @return 0, or: -EPROTO (a foreign file is where the ring should be), -EPROTONOSUPPORT (a ring
 * of another layout version), -EBADMSG (a corrupted ring), ST_ERINGOWNER (the ring file in
 * this user's name belongs to someone else), -EACCES, -ENOMEM, ...
 * The agent need not be running: records wait in the ring until it starts. */
int st_open(st_client **client, const st_options *opts);

/** Closes every lane this process holds (the agent then drains and frees them) and frees the
 * client. Call it once all threads have stopped logging through it. NULL is accepted. Runs
 * not ended are left RUNNING; the agent keeps what they logged. */
void st_close(st_client *client);

/** Interns a metric key, checking it against MLflow's rules once, so that logging it later
 * costs nothing. The same name always gives the same key in one client.
 * @return 0, ST_EKEY, -ENOMEM, or -ENOSPC past 262,144 keys. Thread-safe. */
int st_key_intern(st_client *client, const char *name, st_key *key);

/** Starts a run in an experiment (created by the agent on first use).
 * @param[in] experiment experiment name; NULL means "Default".
 * @param[in] run_name NULL for none.
 * @param[out] run handle, valid until st_run_end().
 * @return 0, ST_ENAME, -ENOMEM, or -ENOSPC past 262,144 runs in one client. The run id is
 * random (128 bits), see st_run_id(). */
int st_run_start(st_client *client, const char *experiment, const char *run_name,
                 st_run **run);

/** Same as st_run_start(), for a run nested in parent (MLflow's parent run id tag). */
int st_run_start_child(st_run *parent, const char *run_name, st_run **run);

/** Attaches to a run that another process started (a worker, a rank of a distributed job, a
 * process started later), so that this process logs into it. No record is written until the
 * first param, tag or metric; the agent accepts the records only if the run is this user's.
 * @param[in] run_id 32 hex digits, as st_run_id() gives them.
 * @param[out] run handle; release it with st_run_release() (the run goes on) or st_run_end().
 * @return 0, -EINVAL (not 32 hex digits), -ENOMEM, -ENOSPC past 262,144 runs. */
int st_run_attach(st_client *client, const char *run_id, st_run **run);

/** Frees a run handle without ending the run (others may still log into it). NULL is
 * accepted. */
void st_run_release(st_run *run);

/** The run's id: 32 lowercase hex digits, valid until st_run_end(). */
const char *st_run_id(const st_run *run);

/** Logs a param (write-once: logging the same key again with another value is kept as the
 * first value and reported by the agent). @return 0, ST_EKEY, ST_EVALUE, ST_EENDED. */
int st_log_param(st_run *run, const char *key, const char *value);

/** Sets a tag (last write wins). @return 0, ST_EKEY, ST_EVALUE, ST_EENDED. */
int st_set_tag(st_run *run, const char *key, const char *value);

/** Logs one point of a metric, stamped now (one clock read).
 * The fast path: no system call, no lock, no allocation; ~15-30 ns.
 * @return 0 (also when the point was dropped on a full lane: see st_stats), or -EINVAL for
 * a key that st_key_intern() did not return. */
int st_log_metric(st_run *run, st_key key, double value, int64_t step);

/** Same as st_log_metric() with a timestamp given by the caller, in ms since the epoch. */
int st_log_metric_at(st_run *run, st_key key, double value, int64_t step,
                     int64_t timestamp_ms);

/** Logs n metrics that share one step and one timestamp (one clock read, one record).
 * @return 0, -EINVAL (n > 1000 or an unknown key). */
int st_log_metrics(st_run *run, size_t n, const st_key *keys, const double *values,
                   int64_t step);

/** Logs a file as an artifact of the run. The file is copied (reflinked where the file system
 * can) into the agent's spool before the call returns, so the caller may change or delete it
 * right after; its bytes never pass through the ring. The agent stores it by content hash.
 * @param[in] local_path a regular file.
 * @param[in] artifact_path its path within the run's artifacts; NULL for the file's name.
 * @return 0, ST_EPATH, ST_EENDED, -ENOENT, -EISDIR, or the errno of the copy. This call does
 * file I/O: keep it out of the inner loop. */
int st_log_artifact(st_run *run, const char *local_path, const char *artifact_path);

/** Registers the run's artifacts at artifact_path as a new version of the registered model
 * name (created when missing), and points each alias at that version: MLflow's
 * register_model("runs:/<run>/<artifact_path>", name), from training code. Call it once,
 * after the model's files were logged with st_log_artifact() (from this thread, or from any
 * thread once the agent has drained them).
 *
 * Like every log call it only publishes a record into this thread's lane (never dropped:
 * spilled when the lane is full) and returns: it makes no I/O and does not wait for the agent.
 * The version exists once the agent has drained the record into its store; its number is
 * given by that store (versions are numbered per model, per store: the node's and the
 * server's numbers are independent; the version's content digest, the SHA-256 of the
 * sha256sum manifest of its files, is the same in both). The version's source is
 * "runs:/<run id>/<artifact_path>". If no artifact of the run is at artifact_path (or under
 * it) when the agent applies the record, the version is made with status
 * FAILED_REGISTRATION and a message saying so, and the aliases are not set. When the agent
 * replicates, the registration goes to the server with the run's data, exactly once, whenever
 * the node is next in touch (docs/registry.md).
 *
 * A run that has ended can be registered through a handle from st_run_attach().
 * @param[in] artifact_path the model's directory (or file) in the run's artifacts.
 * @param[in] name the registered model's name: 1 to 256 bytes.
 * @param[in] aliases NULL, or a NULL-terminated array of at most ST_MAX_MODEL_ALIASES aliases
 * (MLflow's rules, see #ST_EALIAS); an alias already on another version moves to this one.
 * @param[in] description the version's description (at most 5000 bytes of UTF-8), or NULL.
 * @return 0, ST_EPATH, ST_ENAME, ST_EALIAS, ST_EVALUE (description), -EINVAL (no run). */
int st_register_model(st_run *run, const char *artifact_path, const char *name,
                      const char *const *aliases, const char *description);

/** Ends the run with a status (ST_RUN_FINISHED, ST_RUN_FAILED, ST_RUN_KILLED) and frees the
 * handle. @return 0 or -EINVAL for a status that does not end a run. */
int st_run_end(st_run *run, st_run_status status);

/** Fills stats with this process's delivery counters. @return 0. */
int st_stats_get(st_client *client, st_stats *stats);

/** A sentence describing an error code returned by any st_ function. */
const char *st_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
