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
 * records the agent's new high-water mark. Ops below the mark are skipped. Returns 0, -ERANGE
 * for a gap (the batch starts above the mark: res->hwm says where to resend from), -EBADMSG
 * for an op the store refuses as malformed, or a store error (the batch is then not applied
 * at all). Grows the map and retries when it fills. */
int apply_batch(struct store *s, const struct sync_msg *m, const char *host,
                struct apply_result *res);
/* The agent's high-water mark (1 for one never seen). */
int apply_hwm(struct store *s, const uint8_t agent[16], uint64_t *hwm);

#endif
