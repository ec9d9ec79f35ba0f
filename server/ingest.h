/* ingest.h — what the server does with one frame from an agent, whatever carried it (ZeroMQ
 * or HTTPS): HELLO, BATCH, BLOB_OFFER, BLOB_CHUNK in; the reply frame out.
 *
 * Identity: the transport vouches for who sent the frame ("key:<z85>" for a CURVE key the
 * allow-list admitted, "token:<name>" for a valid bearer token). An agent id is bound to the
 * identity of its first HELLO (kept in the store with the agent's high-water mark), and any
 * later frame for that agent id from another identity is refused: holding some valid key or
 * token is not enough to write as another node. Frames may come from many threads at once:
 * batches serialise in LMDB's writer lock (exactly once holds), blob uploads in a mutex. */
#ifndef SIDETRACK_SERVER_INGEST_H
#define SIDETRACK_SERVER_INGEST_H

#include "protocol.h"
#include "store.h"

#include <stdbool.h>

struct ingest;

struct ingest_stats {
    uint64_t batches, ops, points, refused;
};

int ingest_open(struct ingest **ig, struct store *s, bool verbose);
void ingest_close(struct ingest *ig);
/* Handles one frame and writes the reply frame into out (reset first). Returns 0 when out
 * holds the reply (an ERROR frame included), -EACCES when identity may not speak for the
 * agent the frame names (out holds an ERROR frame too: the transport may send it or map it
 * to its own refusal), -ENOMEM. */
int ingest_frame(struct ingest *ig, const char *identity, const uint8_t *frame, size_t len,
                 struct sync_buf *out);
void ingest_stats(struct ingest *ig, struct ingest_stats *st);

#endif
