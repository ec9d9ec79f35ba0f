/* agent.h — sidetrackd's state: the rings it drains and the store it drains them into. */
#ifndef SIDETRACK_AGENT_H
#define SIDETRACK_AGENT_H

#include "decode.h"
#include "shmlog.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct agent_options {
    const char *data_dir;      /* the store */
    const char *ring_dir;      /* where producers' rings are */
    uint32_t fsync_interval_ms; /* 0: fsync every commit */
    uint32_t batch_records;    /* most records in one LMDB transaction */
    uint32_t idle_sleep_ms;    /* longest sleep when every lane is empty */
    uint32_t map_size_mib;     /* initial map of a new store; 0: the store's default */
    bool verbose;
    /* replication to sidetrack-server (replicate.h); no endpoint: none */
    const char *server;        /* tcp://HOST:PORT */
    const char *server_key;    /* the server's public key file */
    const char *key;           /* this agent's key pair file */
    uint32_t sync_interval_ms;
    uint64_t sync_backlog;
};

/* What the agent knows of one lane in one generation. */
struct lane_state {
    bool adopted;
    bool finished;       /* owner gone, everything drained; free after the commit */
    bool corrupt;        /* an impossible record header: stop reading, free when owner goes */
    uint32_t gen;
    uint8_t id[STORE_LANE_ID_LEN];
    struct shmlog_cursor cur;
    uint64_t committed_pos;
    uint64_t spill_pos, spill_committed;
    struct store_lane rec;  /* as stored; counters updated during a pass */
    bool dirty;
    uint64_t owner_seen;    /* owner word when the lane was last found finished */
    char **keys;            /* key id -> name */
    uint32_t nkeys;
    uint8_t (*runs)[16];    /* run slot -> run id */
    uint8_t *run_known;
    uint32_t nruns;
    uint64_t last_liveness_ns;
    uint64_t reported_drops;
    /* key id -> the series its points went to last, for one run slot: a metric record then
     * costs two array loads instead of hashing a run id and a key name */
    struct series_hint *hints;
    uint32_t nhints;
};

struct series_hint {
    uint64_t epoch; /* a->series_epoch when set; 0 never matches */
    uint32_t run;
    struct series *s;
};

struct arena_state {
    struct shmlog_arena arena;
    struct lane_state *lanes;
    dev_t dev;
    ino_t ino;
    bool seen; /* found by the latest directory scan */
};

/* Points of one (run, key) gathered during a pass, appended to the store at its end. Series
 * and their point arrays outlive a pass (reused by the next), up to SERIES_MAX of them. */
struct series {
    uint8_t run[16];
    char *key;
    struct store_point *pts;
    size_t n, cap;
    struct series *next; /* hash chain */
    struct series *next_active;
};

struct agent {
    struct agent_options opt;
    struct store *store;
    struct arena_state **arenas;
    size_t narenas;
    struct decoder dec;
    /* series table for the current pass */
    struct series **buckets;
    size_t nbuckets;
    struct series *active;
    size_t nseries;
    uint64_t series_epoch; /* bumped when every series is freed: lane hints become stale */
    /* TSC calibration: wall time = now_ns - (tsc_now - tsc) * ns_per_tick */
    uint64_t tsc0, ns0, tsc_now, ns_now;
    double ns_per_tick;
    /* bookkeeping */
    uint64_t last_scan_ns, last_sync_ns;
    int inotify_fd; /* new files in the ring directory: scan at once, not at the next second */
    bool unsynced;
    uint64_t records_total, passes, commits;
    /* since start, from the lanes' counters: metric points dropped on full lanes, records
     * lost by dead producers, records skipped as damaged (GET /metrics) */
    uint64_t dropped_total, lost_total, skipped_total;
    char spool_dir[4096];
    int lock_fd;
    char last_error[512];
    /* status.c: what `sidetrack status` shows; main.c keeps these up to date */
    const char *version;
    uint64_t start_ns, last_commit_ns, last_error_ns, last_status_ns;
    uint32_t last_pass_records; /* == opt.batch_records: the last pass left records behind */
    struct replicator *repl;    /* NULL without --server */
    struct mlflow_agent *mlflow; /* NULL without --mlflow (mlflow_target.h) */
};

int agent_init(struct agent *a, const struct agent_options *opt, char *err, size_t errlen);
void agent_fini(struct agent *a);
/* One drain pass over every lane: reads up to batch_records records, commits them with the
 * lanes' positions in one transaction, then hands the space back. Returns the number of
 * records stored (>= 0) or a negative error (the pass is rolled back and will be retried). */
int agent_drain_pass(struct agent *a);
/* Rescans the ring directory for new or vanished rings. */
void agent_scan(struct agent *a);
/* Scans when a file appeared in the ring directory, or a second has passed. */
void agent_maybe_scan(struct agent *a);
/* fsyncs the store when the durability window has passed (or always with force). */
int agent_maybe_sync(struct agent *a, bool force);
uint64_t agent_now_ns(void);

/* status.c: writes DATA/agent.status (JSON, replaced atomically) for `sidetrack status`;
 * stopped marks a clean exit. Failures are ignored: the status is a courtesy, not data. */
void agent_status_write(struct agent *a, bool stopped);
/* The same document into f (the admin socket's GET /status). */
void agent_status_render(struct agent *a, FILE *f, bool stopped);
/* prometheus.c: the agent's figures in Prometheus's text format (GET /metrics). */
void agent_prom_render(struct agent *a, FILE *f);
/* One more member of such a JSON object (",\n  \"key\": value"), for the status's writers. */
void agent_status_str(FILE *f, const char *key, const char *v);
void agent_status_u64(FILE *f, const char *key, uint64_t v);

/* model_register.c: a WIRE_MODEL_REGISTER record of uid's ring into the drain's txn; 0, 1
 * when skipped (said), or a store error */
int agent_model_register(struct store_txn *t, uint32_t uid, const uint8_t run[16],
                         const struct decoded *d);

/* tsc.c */
void tsc_calibrate(struct agent *a);
void tsc_update(struct agent *a);
int64_t tsc_to_ms(const struct agent *a, int64_t ticks);

/* log.c: the daemon's one voice, to stderr (journald adds time and unit) */
void agent_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
