/* blobs.h — artifact content arriving from agents: content-addressed, chunked, resumable. An
 * upload in progress is DIR/artifacts/incoming/<sha256>.part; its size is how much the server
 * has, which is where an interrupted upload resumes (after a restart of either side too). */
#ifndef SIDETRACK_SERVER_BLOBS_H
#define SIDETRACK_SERVER_BLOBS_H

#include "protocol.h"
#include "store.h"

/* How much of the content the server has: size when the blob is stored (whoever sent it),
 * else the bytes of an interrupted upload (0 for none). */
int blobs_have(struct store *s, const uint8_t sha256[32], uint64_t size, uint64_t *have);
/* Takes a BLOB_CHUNK: appended when it starts where the upload stands (else ignored: *have
 * says where to start). The last chunk completes the upload: the content is hashed, and
 * stored when it matches (-EBADMSG and the upload forgotten when it does not). */
int blobs_chunk(struct store *s, const struct sync_msg *m, uint64_t *have);

#endif
