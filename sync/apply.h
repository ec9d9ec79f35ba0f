/* apply.h — applying an agent's batch to the central store, exactly once. */
#ifndef SIDETRACK_SERVER_APPLY_H
#define SIDETRACK_SERVER_APPLY_H

#include "protocol.h"
#include "store.h"

struct apply_result {
    uint64_t hwm;      /* the agent's high-water mark after the batch (committed) */
    uint64_t applied;  /* ops applied now */
    uint64_t skipped;  /* ops the store had already (a resent batch) */
    uint64_t points;   /* metric points applied */
};

/* Applies a decoded BATCH from agent (host as it said in HELLO) in one transaction that also
 * records the agent's new high-water mark. A MODEL_REGISTER op makes a version numbered by
 * this store (store_mv_register_op: the node's digest, actor and time as they came). Ops below the mark are skipped. Returns 0, -ERANGE
 * for a gap (the batch starts above the mark: res->hwm says where to resend from), -EBADMSG
 * for an op the store refuses as malformed, or a store error (the batch is then not applied
 * at all). Grows the map and retries when it fills. */
int apply_batch(struct store *s, const struct sync_msg *m, const char *host,
                struct apply_result *res);
/* The agent's high-water mark (1 for one never seen). */
int apply_hwm(struct store *s, const uint8_t agent[16], uint64_t *hwm);

/* Applies a decoded BATCH of a runs snapshot (a bundle of kind "runs", sync/bundle.h): ops
 * that state what chosen runs hold rather than a journal's history; their seqs only number
 * them within the bundle, and no high-water mark is read or moved. Each op adds only what the
 * store lacks, so applying a snapshot twice changes nothing, and applying it to a store that
 * has part of the runs adds the rest:
 *   RUN_START  only when the run is absent or a placeholder (start unknown): an ended run is
 *              never set back to RUNNING; origin tags as apply_batch sets them (m->agent, host);
 *   RUN_END    when status or end time differ;  PARAM  write-once;  TAG  when the value differs;
 *   METRICS    points from index max(first_index, the series' length) on (series only grow at
 *              their end; first_index beyond the length is a gap: -EBADMSG);
 *   ARTIFACT   when the run lacks that path with that content;
 *   MODEL_REGISTER  when the model has no version of that source with that digest.
 * res->applied counts the ops that changed something, res->skipped the others, res->points
 * the points appended; res->hwm is 0. One transaction per batch (map grown and retried when
 * it fills). Returns 0, -EBADMSG for an op the store refuses, or a store error. */
int apply_snapshot(struct store *s, const struct sync_msg *m, const char *host,
                   struct apply_result *res);

#endif
