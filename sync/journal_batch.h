/* journal_batch.h — the replication journal (store.h) cut into BATCH frames (protocol.h).
 *
 * One way to build a batch, shared by the agent's replication (agent/replicate.c), which sends
 * it over the network, and bundle export (bundle.c), which writes it to a file: collect the
 * consecutive ops from a seq on, up to a size aimed for, then encode them with their metric
 * points read back from the store. Between the two steps the caller sees the ops (the
 * replicator and the bundle both put artifact content ahead of the batch naming it). */
#ifndef SIDETRACK_SYNC_JOURNAL_BATCH_H
#define SIDETRACK_SYNC_JOURNAL_BATCH_H

#include "protocol.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* Ops in one batch at most, whatever their size. */
#define JOURNAL_BATCH_MAX_OPS 65536
/* The size a batch aims for when the caller gives none. */
#define JOURNAL_BATCH_BYTES (256u << 10)

struct journal_batch {
    struct store_op *ops; /* collected ops; their strings point into the txn's memory */
    size_t n, cap;
    size_t bytes;         /* about what the ops take on the wire */
    uint64_t points;      /* metric points the METRICS ops name */
    struct store_point *pts; /* scratch for one op's points while encoding */
    size_t pts_cap;
};

void journal_batch_init(struct journal_batch *b);
void journal_batch_free(struct journal_batch *b);
/* Replaces b's ops with the journal's ops from seq `from` on, read in t: until about
 * max_bytes (0: JOURNAL_BATCH_BYTES; the op that crosses it is in, so a batch always moves
 * on) or JOURNAL_BATCH_MAX_OPS. b->n is 0 at the journal's end. The ops are valid while t is
 * open and unwritten. 0, -ENOMEM, or the journal's error (-EBADMSG). */
int journal_batch_collect(struct journal_batch *b, struct store_txn *t, uint64_t from,
                          size_t max_bytes);
/* Encodes b's ops (b->n > 0, consecutive seqs) as agent's BATCH into out, their points read
 * from t (the txn they were collected in). 0, or -errno (the series shorter than an op says:
 * -ENOENT; -ENOMEM; -EMSGSIZE). */
int journal_batch_encode(struct journal_batch *b, struct store_txn *t, const uint8_t agent[16],
                         struct sync_buf *out);

#endif
