/* wire.h — the records that libsidetrack writes into a lane and sidetrackd reads back.
 *
 * Metrics are fixed-size binary so that logging one is a 40-byte copy. Everything else is a
 * msgpack body, so that it can grow fields without a new layout version. Keys and runs are
 * interned per process: a KEYDEF (or RUNDEF) record in a lane gives the meaning of an id before
 * the first record in that lane that uses it, so a metric carries two 32-bit ids, not strings.
 *
 * Bodies (after the 8-byte struct shmlog_rec header):
 *   WIRE_METRIC     struct wire_metric
 *   WIRE_METRICS    struct wire_metrics + n x struct wire_metric_entry   (one step and stamp)
 *   WIRE_KEYDEF     msgpack [key_id uint, key str]
 *   WIRE_RUNDEF     msgpack [run_slot uint, run_id bin(16)]
 *   WIRE_RUN_START  msgpack map {"run": bin16, "exp": str, "name": str, "start": int (ms),
 *                               "user": str, "host": str, "parent": bin16 (optional),
 *                               "source": str (optional)}
 *   WIRE_RUN_END    msgpack [run_slot uint, status uint, end int (ms)]
 *   WIRE_PARAM      msgpack [run_slot uint, key str, value str]
 *   WIRE_TAG        msgpack [run_slot uint, key str, value str]
 *   WIRE_ARTIFACT   msgpack [run_slot uint, artifact path str, spool file name str, size uint]
 *   WIRE_MODEL_REGISTER  msgpack [run_slot uint, artifact path str, model name str,
 *                               aliases [str...] (at most WIRE_MODEL_ALIASES_MAX),
 *                               description str ("" for none)]
 * Stamps (ts) are in the arena's clock domain (shmlog_arena_hdr.clock), or milliseconds since
 * the epoch when the record has WIRE_F_TS_MS (a timestamp the user gave).
 */
#ifndef SIDETRACK_WIRE_H
#define SIDETRACK_WIRE_H

#include "shmlog.h"

enum wire_type {
    WIRE_METRIC = 1,
    WIRE_METRICS = 2,
    WIRE_KEYDEF = 3,
    WIRE_RUNDEF = 4,
    WIRE_RUN_START = 5,
    WIRE_RUN_END = 6,
    WIRE_PARAM = 7,
    WIRE_TAG = 8,
    WIRE_ARTIFACT = 9,
    WIRE_MODEL_REGISTER = 10,
};
#define WIRE_MODEL_ALIASES_MAX 16

#define WIRE_F_TS_MS 0x01

struct wire_metric {
    struct shmlog_rec h;
    uint32_t key;
    uint32_t run;
    int64_t step;
    int64_t ts;
    double value;
};
_Static_assert(sizeof(struct wire_metric) == 40, "metric record is 40 bytes");

struct wire_metrics {
    struct shmlog_rec h; /* aux: number of entries */
    uint32_t run;
    uint32_t count;
    int64_t step;
    int64_t ts;
};
struct wire_metric_entry {
    uint32_t key;
    uint32_t reserved;
    double value;
};
#define WIRE_METRICS_MAX 1000 /* MLflow's log-batch limit */
/* Key ids and run slots a process may use: the agent keeps a dense table of each per lane, so
 * a bound keeps a hostile producer from making it allocate gigabytes. */
#define WIRE_MAX_KEYS (1u << 18)
#define WIRE_MAX_RUNS (1u << 18)

#endif
