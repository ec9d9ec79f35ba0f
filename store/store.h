/* store.h — the sidetrack store: one LMDB environment holding experiments, runs, params,
 * tags, metric histories, artifact references and the agent's own bookkeeping.
 *
 * One library for the node agent and the central server (and the read-only CLI): the schema
 * and every access to it live here, so the two never drift apart.
 *
 * Layout of a store directory:
 *   DIR/data.mdb, DIR/lock.mdb   the LMDB environment
 *   DIR/artifacts/ab/abcdef...   artifact contents, named by their SHA-256 (content-addressed)
 *
 * Metric histories are stored in blocks: up to ~1.8 KB of points of one (run, key), with
 * steps and timestamps delta-encoded as zigzag varints and values XOR-ed with the previous
 * value (Gorilla's idea, at byte granularity), so that a point costs ~10 bytes instead of a
 * B-tree entry. Appending rewrites only the tail block of a series.
 *
 * Transactions: all reads and writes go through a store_txn. One write transaction at a time
 * per environment (LMDB's rule); any number of readers, in any process, concurrently with the
 * writer. Never open the same directory twice in one process.
 *
 * Errors: 0 or a negative errno; LMDB's own codes are mapped (MDB_MAP_FULL -> -ENOSPC with
 * store_map_full() telling them apart from a full disk, MDB_NOTFOUND -> -ENOENT, corruption
 * -> -EBADMSG, version mismatch -> -EPROTONOSUPPORT). store_strerror() gives a sentence.
 * A write that fails inside LMDB (e.g. -ENOSPC) poisons its transaction: later calls and
 * store_commit() return the same error; abort, store_grow() if the map was full, and redo.
 * Foreach callbacks return 0 to go on; any other value stops the walk and is returned.
 * Keys of params, tags and metrics: 1 to 490 bytes (-EINVAL / -ENAMETOOLONG otherwise).
 */
#ifndef SIDETRACK_STORE_H
#define SIDETRACK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1u

struct store;
struct store_txn;

enum store_open_flags {
    STORE_RDONLY = 1u << 0,  /* readers: the CLI, while the agent writes */
    STORE_NOSYNC = 1u << 1,  /* commits do not fsync; call store_sync() on a timer */
    STORE_JOURNAL = 1u << 2, /* keep a replication journal of every change (the agent) */
};

/* Opens (creating when writable) the store in dir. map_size 0 picks 1 GiB for a new store or
 * the current size; the map grows by itself through store_grow(). */
int store_open(struct store **s, const char *dir, unsigned flags, uint64_t map_size);
void store_close(struct store *s);
/* Flushes committed transactions to disk (fsync). */
int store_sync(struct store *s);
/* Doubles the map size (at least +1 GiB). Only with no transaction open in this process. */
int store_grow(struct store *s);
const char *store_dir(const struct store *s);
/* The store's id: 16 random bytes made when it was created (an agent's identity for sync). */
void store_id(const struct store *s, uint8_t id[16]);
const char *store_strerror(int err);
/* True when the last -ENOSPC from this store meant "LMDB map full" rather than "disk full". */
bool store_map_full(const struct store *s);

struct store_info {
    uint64_t map_size;   /* bytes reserved for the map */
    uint64_t used_bytes; /* pages in use times the page size */
    uint64_t page_size;
    uint64_t file_bytes; /* data.mdb on disk */
};
int store_info(struct store *s, struct store_info *info);

int store_begin(struct store *s, bool write, struct store_txn **t);
/* Runs fn in a write transaction and commits it; when the map fills, grows it (waiting up to
 * a few seconds for this process's other transactions to end) and runs fn again, so fn must
 * be a pure function of the store and arg. fn's negative return aborts and is returned; a
 * positive one commits and is returned. For servers with many threads. */
int store_update(struct store *s, int (*fn)(struct store_txn *t, void *arg), void *arg);
int store_commit(struct store_txn *t); /* frees t, whatever it returns */
void store_abort(struct store_txn *t); /* NULL accepted */

/* ---- experiments -------------------------------------------------------------------- */

struct store_experiment {
    uint64_t id; /* "Default" is 0, like MLflow's; others count up from 1 */
    char name[512];
    int64_t created_ms;
    int64_t updated_ms; /* last rename, delete or restore (created_ms until then) */
    bool deleted;       /* MLflow's lifecycle_stage "deleted": soft, restorable */
};
/* Returns the id of the experiment with this name, creating it if needed. */
int store_experiment_ensure(struct store_txn *t, const char *name, int64_t now_ms, uint64_t *id);
int store_experiment_get(struct store_txn *t, uint64_t id, struct store_experiment *out);
int store_experiment_by_name(struct store_txn *t, const char *name, struct store_experiment *out);
int store_experiment_foreach(struct store_txn *t,
                             int (*cb)(const struct store_experiment *e, void *arg), void *arg);
/* Creates an experiment; -EEXIST when the name is taken (by a deleted one too, as in MLflow). */
int store_experiment_create(struct store_txn *t, const char *name, int64_t now_ms, uint64_t *id);
/* -ENOENT for no such experiment, -EEXIST when another one has the name. */
int store_experiment_rename(struct store_txn *t, uint64_t id, const char *name, int64_t now_ms);
/* Soft delete (deleted = true) or restore. Its runs are not touched (MLflow's semantics). */
int store_experiment_set_deleted(struct store_txn *t, uint64_t id, bool deleted, int64_t now_ms);
/* Experiment tags: last write wins; keys as for run tags. */
int store_exp_tag_set(struct store_txn *t, uint64_t id, const char *key, const char *value);
int store_exp_tags_foreach(struct store_txn *t, uint64_t id,
                           int (*cb)(const char *key, const char *value, void *arg), void *arg);

/* ---- runs ----------------------------------------------------------------------------- */

enum store_run_status {
    STORE_RUN_RUNNING = 1,
    STORE_RUN_SCHEDULED = 2,
    STORE_RUN_FINISHED = 3,
    STORE_RUN_FAILED = 4,
    STORE_RUN_KILLED = 5,
};
const char *store_run_status_name(int status); /* "RUNNING", ...; "UNKNOWN" otherwise */

struct store_run {
    uint8_t id[16];
    uint64_t experiment_id;
    char name[256];
    int status;
    int64_t start_ms;
    int64_t end_ms; /* 0 while running */
    char user[64];
    char host[256];
    bool has_parent;
    uint8_t parent[16];
    uint32_t uid; /* as the kernel reported the producer (the ring file's owner) */
    uint32_t pid;
    bool deleted; /* MLflow's lifecycle_stage "deleted" (soft; store_run_set_deleted) */
};
/* Creates the run, or fills in a run that records reached before its start (a metric logged
 * from another thread's lane can arrive first): fields already set by an end are kept. */
int store_run_start(struct store_txn *t, const struct store_run *r);
/* Ends a run; creates a placeholder (status given, start unknown) if it was never started. */
int store_run_end(struct store_txn *t, const uint8_t id[16], int status, int64_t end_ms);
/* Makes sure a run row exists (placeholder RUNNING, experiment 0) before data is attached. */
int store_run_touch(struct store_txn *t, const uint8_t id[16]);
/* Checks that a run belongs to uid before a producer of that uid may write to it: 0 when it
 * does, or when it did not exist (it is then created as uid's placeholder); -EPERM when
 * another uid owns it. The agent calls it before it accepts any record for a run id. */
int store_run_claim(struct store_txn *t, const uint8_t id[16], uint32_t uid);
int store_run_get(struct store_txn *t, const uint8_t id[16], struct store_run *out);
/* Soft delete or restore (-ENOENT for no such run). Not journaled: an operator's act on the
 * store it is made in (the server's MLflow API), not part of the run's replicated history. */
int store_run_set_deleted(struct store_txn *t, const uint8_t id[16], bool deleted);
/* Renames a run (-ENOENT, -ENAMETOOLONG). Not journaled either. */
int store_run_set_name(struct store_txn *t, const uint8_t id[16], const char *name);
/* Moves a run to another experiment (MLflow's runs/create names its experiment). */
int store_run_set_experiment(struct store_txn *t, const uint8_t id[16], uint64_t experiment_id);
/* Runs in id order. */
int store_run_foreach(struct store_txn *t, int (*cb)(const struct store_run *r, void *arg),
                      void *arg);
/* Resolves a run id given as hex (full 32 digits or a unique prefix of at least 4).
 * -ENOENT when none matches, -ENOTUNIQ when the prefix is ambiguous, -EINVAL for non-hex. */
int store_run_resolve(struct store_txn *t, const char *hex, uint8_t id[16]);
void store_run_id_hex(const uint8_t id[16], char hex[33]);
int store_run_id_parse(const char *hex, uint8_t id[16]);

/* ---- params and tags --------------------------------------------------------------- */

/* Params are write-once (MLflow): returns 0 when stored, 1 when the same value was already
 * there, -EEXIST when another value is (the first one is kept). */
int store_param_put(struct store_txn *t, const uint8_t run[16], const char *key,
                    const char *value);
int store_tag_set(struct store_txn *t, const uint8_t run[16], const char *key, const char *value);
/* Deletes a run tag: -ENOENT when it is not set. Not journaled. */
int store_tag_delete(struct store_txn *t, const uint8_t run[16], const char *key);
/* Inputs of a run (MLflow's log-inputs): key identifies the input (e.g. dataset name and
 * digest), value is kept as given (the API keeps the DatasetInput's JSON). Same key again:
 * replaced. Not journaled. */
int store_input_put(struct store_txn *t, const uint8_t run[16], const char *key,
                    const char *value);
int store_inputs_foreach(struct store_txn *t, const uint8_t run[16],
                         int (*cb)(const char *key, const char *value, void *arg), void *arg);
/* In key order. The callback's strings are valid during the call only. */
int store_params_foreach(struct store_txn *t, const uint8_t run[16],
                         int (*cb)(const char *key, const char *value, void *arg), void *arg);
int store_tags_foreach(struct store_txn *t, const uint8_t run[16],
                       int (*cb)(const char *key, const char *value, void *arg), void *arg);
/* One param or tag of a run (kv_get.c): 0 with *value pointing at its *len bytes (no NUL) in
 * the transaction's memory, valid until the txn ends or its next write; -ENOENT when unset. */
int store_param_get(struct store_txn *t, const uint8_t run[16], const char *key,
                    const char **value, size_t *len);
int store_tag_get(struct store_txn *t, const uint8_t run[16], const char *key,
                  const char **value, size_t *len);

/* ---- metrics ----------------------------------------------------------------------- */

struct store_point {
    int64_t step;
    int64_t ts_ms;
    double value;
};
/* Appends points to the history of (run, key), in the order given. */
int store_metric_append(struct store_txn *t, const uint8_t run[16], const char *key,
                        const struct store_point *pts, size_t n);

struct store_metric_summary {
    uint64_t count;
    struct store_point latest; /* MLflow's "latest": greatest step, then timestamp, then value */
    double min, max;           /* over non-NaN values; NaN when there are none */
};
/* Every metric key of a run, in key order, with its summary. */
int store_metric_keys_foreach(struct store_txn *t, const uint8_t run[16],
                              int (*cb)(const char *key, const struct store_metric_summary *s,
                                        void *arg),
                              void *arg);
int store_metric_summary_get(struct store_txn *t, const uint8_t run[16], const char *key,
                             struct store_metric_summary *out);
/* The full history of (run, key) in the order it was logged, handed over in chunks.
 * -ENOENT if the run has no such metric. */
int store_metric_history(struct store_txn *t, const uint8_t run[16], const char *key,
                         int (*cb)(const struct store_point *pts, size_t n, void *arg), void *arg);

/* Metric queries for charts (metrics_query.c). Both read the series' blocks one at a time:
 * the full history is never held in memory. -ENOENT if the run has no such metric.
 *
 * The points of (run, key) whose step is in [start_step, end_step], in logged order, handed
 * over in chunks (INT64_MIN, INT64_MAX: all of them). */
int store_metric_steps(struct store_txn *t, const uint8_t run[16], const char *key,
                       int64_t start_step, int64_t end_step,
                       int (*cb)(const struct store_point *pts, size_t n, void *arg), void *arg);
/* A view of at most max_points points of the same range, for plotting. When the range holds
 * at most max_points points they are all returned, in logged order (downsampled false). Else
 * the steps covered are cut into max_points / 4 equal buckets, and each bucket gives its
 * first and last points by step, its smallest and largest finite values and its first
 * non-finite one by step (NaN and infinities are gaps a chart must show), in step order
 * without duplicates: spikes and gaps survive. With max_points < 4, each of max_points buckets gives
 * its last point. count: the points in the range. pts: malloc'd; store_metric_view_free().
 * -EINVAL for max_points 0 or start_step > end_step. */
struct store_metric_view {
    uint64_t count;
    bool downsampled;
    size_t n;
    struct store_point *pts;
};
int store_metric_view(struct store_txn *t, const uint8_t run[16], const char *key,
                      int64_t start_step, int64_t end_step, size_t max_points,
                      struct store_metric_view *out);
void store_metric_view_free(struct store_metric_view *v); /* NULL accepted */

/* Block codec, exposed for tests and fuzzing. A block is a header plus encoded points.
 * append: blk_len 0 starts a block; returns the new length, or 0 when p does not fit in cap.
 * decode: -EBADMSG for malformed bytes; -ENOBUFS with *n = count when cap is too small. */
#define STORE_BLOCK_HDR 40u
size_t store_block_append(uint8_t *blk, size_t blk_len, size_t cap, const struct store_point *p);
int store_block_decode(const uint8_t *blk, size_t blk_len, struct store_point *out, size_t cap,
                       size_t *n);

/* ---- artifacts ----------------------------------------------------------------------- */

struct store_artifact {
    char path[1024];
    uint8_t sha256[32];
    uint64_t size;
};
int store_artifact_put(struct store_txn *t, const uint8_t run[16], const char *path,
                       const uint8_t sha256[32], uint64_t size);
int store_artifacts_foreach(struct store_txn *t, const uint8_t run[16],
                            int (*cb)(const struct store_artifact *a, void *arg), void *arg);
/* DIR/artifacts/ab/<64 hex>. */
int store_blob_path(const struct store *s, const uint8_t sha256[32], char *buf, size_t len);
/* DIR/artifacts/incoming/<64 hex>.part: where content arriving in pieces (replication)
 * gathers until store_blob_ingest() takes it in; with create, the folders are made. */
int store_blob_upload_path(const struct store *s, const uint8_t sha256[32], bool create,
                           char *buf, size_t len);
/* Hashes the file at src and stores its content under its hash (a rename when move is true
 * and src is on the same file system, else a copy; an existing blob is kept, src removed when
 * move). Durable (fsynced) before it returns. */
int store_blob_ingest(struct store *s, const char *src, bool move, uint8_t sha256[32],
                      uint64_t *size);

/* ---- the agent's bookkeeping --------------------------------------------------------- */

/* A lane of a ring, in one generation: arena id (16) + lane index (4, BE) + generation (4, BE). */
#define STORE_LANE_ID_LEN 24
struct store_lane {
    uint64_t ring_pos;    /* consumed and committed up to here */
    uint64_t spill_pos;   /* spill file consumed up to here */
    uint64_t records;     /* records stored from this lane */
    uint64_t skipped;     /* records skipped: half-written, malformed or unresolvable */
    uint64_t dropped;     /* the producer's drop counter, last seen */
    uint64_t lost;        /* the producer's lost counter, last seen */
    uint32_t pid, uid;
    bool finished;        /* drained after its producer closed or died; about to be freed */
};
int store_lane_get(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN], struct store_lane *out);
int store_lane_put(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN],
                   const struct store_lane *l);
/* Deletes a lane's record and its dictionary; -ENOENT when there was neither. */
int store_lane_delete(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN]);
/* A lane's dictionary: kind 'k' (key id -> name) or 'r' (run slot -> 16-byte run id). */
int store_lane_dict_put(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN], uint8_t kind,
                        uint32_t num, const void *val, size_t len);
int store_lane_dict_foreach(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN],
                            int (*cb)(uint8_t kind, uint32_t num, const void *val, size_t len,
                                      void *arg),
                            void *arg);
/* Every lane record, for `sidetrack status` and for cleanup of lanes whose ring is gone. */
int store_lane_foreach(struct store_txn *t,
                       int (*cb)(const uint8_t id[STORE_LANE_ID_LEN], const struct store_lane *l,
                                 void *arg),
                       void *arg);

/* Small named counters and values of the agent (e.g. "records_in"), stored with the data. */
int store_counter_add(struct store_txn *t, const char *name, uint64_t delta);
int store_counter_get(struct store_txn *t, const char *name, uint64_t *value); /* unset: 0 */

/* ---- replication journal (issue 5) ------------------------------------------------------
 * With STORE_JOURNAL, every change a write transaction makes through this library is also
 * appended, in the same transaction, to the journal: one op per change, numbered by a
 * sequence (u64, from 1, never reused, gap-free within what has not been trimmed). What the
 * agent replicates is the journal from the server's high-water mark on; so a batch is a run
 * of consecutive ops, and applying it twice is told apart by its sequence numbers.
 * Metric points are not copied into the journal: an op names the series and the index range
 * of its points ([first_index, first_index + count) of the series' history, which only grows
 * at its end), and store_metric_range() reads them back when a batch is built. */
enum store_op_type {
    STORE_OP_RUN_START = 1, /* run, experiment (name), name, user, host, start_ms, parent,
                             * status (as given to store_run_start; 0 read as RUNNING) */
    STORE_OP_RUN_END = 2,   /* run, status, end_ms */
    STORE_OP_PARAM = 3,     /* run, key, value (only when the param was newly stored) */
    STORE_OP_TAG = 4,       /* run, key, value */
    STORE_OP_METRICS = 5,   /* run, key, first_index, count (points: store_metric_range) */
    STORE_OP_ARTIFACT = 6,  /* run, key (= path), sha256, size */
    STORE_OP_MODEL_REGISTER = 7, /* run, key (= artifact path), model, aliases, description,
                                  * actor, time_ms, digest: a model version registered from
                                  * training code (store_mv_register, registry.h) */
};
/* Aliases one registration may set (the ring record carries at most this). */
#define STORE_OP_ALIASES_MAX 16
struct store_op {
    uint64_t seq;
    int type;                 /* enum store_op_type */
    uint8_t run[16];
    /* RUN_START */
    const char *experiment;   /* the experiment's name (ids differ between stores) */
    const char *name, *user, *host;
    int64_t start_ms;
    bool has_parent;
    uint8_t parent[16];
    /* RUN_END */
    int status;
    int64_t end_ms;
    /* PARAM, TAG, METRICS, ARTIFACT */
    const char *key;          /* key, or artifact path */
    const char *value;        /* PARAM, TAG */
    /* METRICS */
    uint64_t first_index, count;
    /* ARTIFACT */
    uint8_t sha256[32];
    uint64_t size;
    /* MODEL_REGISTER (key: the artifact path) */
    const char *model;        /* the registered model's name */
    const char *description;  /* "" for none */
    const char *actor;        /* user@host of the producer */
    const char *aliases;      /* comma-separated ("" for none): an alias has no comma */
    const char *digest;       /* 64 lowercase hex digits; "" when no artifact was found */
    int64_t time_ms;
};
/* The journal's bounds: first = lowest seq kept (next when empty), next = the seq the next op
 * will get. Both 1 in a store that never journaled. */
int store_journal_bounds(struct store_txn *t, uint64_t *first, uint64_t *next);
/* Calls cb for each op with seq >= from, in order, at most max ops (0: no limit). The op's
 * strings point into the transaction's memory: valid until the txn ends (in a write txn, only
 * until its next write). -EBADMSG for a malformed entry. */
int store_journal_read(struct store_txn *t, uint64_t from, size_t max,
                       int (*cb)(const struct store_op *op, void *arg), void *arg);
/* Deletes every op with seq < upto (what the server has acknowledged). */
int store_journal_trim(struct store_txn *t, uint64_t upto);
/* Points [first_index, first_index + n) of the history of (run, key) into out (n entries).
 * -ENOENT when the series is shorter than that. */
int store_metric_range(struct store_txn *t, const uint8_t run[16], const char *key,
                       uint64_t first_index, size_t n, struct store_point *out);

/* The server's record of each agent: what it has applied (the high-water mark: the next seq
 * it expects; 1 for an agent never seen) and where the agent says it runs. */
struct store_peer {
    uint64_t hwm;
    int64_t last_ms;     /* when it last applied a batch of this agent */
    uint64_t ops, batches;
    char host[256];
    char owner[128];     /* who may speak for this agent: the identity its first HELLO came
                          * with ("key:<z85>" over ZeroMQ, "token:<name>" over HTTPS) */
};
int store_peer_get(struct store_txn *t, const uint8_t agent[16], struct store_peer *out);
int store_peer_put(struct store_txn *t, const uint8_t agent[16], const struct store_peer *p);
int store_peer_foreach(struct store_txn *t,
                       int (*cb)(const uint8_t agent[16], const struct store_peer *p, void *arg),
                       void *arg);

/* Records that a sync target keeps in the store it reads from, so that they commit with the
 * rest (e.g. the mlflow target's map from local to remote run ids, and how far each series
 * has been sent). target: a short name with no NUL ("mlflow:<url digest>"); key: bytes
 * (target + 1 + klen <= 511). get: -ENOENT when unset; *val points into the txn's memory. */
int store_remote_put(struct store_txn *t, const char *target, const void *key, size_t klen,
                     const void *val, size_t vlen);
int store_remote_get(struct store_txn *t, const char *target, const void *key, size_t klen,
                     const void **val, size_t *vlen);
int store_remote_del(struct store_txn *t, const char *target, const void *key, size_t klen);
/* Every record of target whose key starts with prefix, in key order. */
int store_remote_foreach(struct store_txn *t, const char *target, const void *prefix,
                         size_t plen,
                         int (*cb)(const void *key, size_t klen, const void *val, size_t vlen,
                                   void *arg),
                         void *arg);

/* Default store directory: $SIDETRACK_DATA, else /var/lib/sidetrack for root, else
 * $XDG_DATA_HOME/sidetrack or ~/.local/share/sidetrack. */
const char *store_default_dir(char *buf, size_t len);

#endif
