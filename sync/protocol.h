/* protocol.h — what an agent and sidetrack-server say to each other over ZeroMQ (issue 5).
 *
 * Transport: the agent's DEALER connects to the server's ROUTER, CURVE on (the server admits
 * only agents whose public keys are in its allow-list, through a ZAP handler). Every message
 * is ONE ZeroMQ frame (the ROUTER sees the agent's routing id before it): a msgpack map
 * followed by a 4-byte CRC-32C (little-endian) of the map's bytes. A frame whose CRC does not
 * match, or that does not decode, is answered with an ERROR and otherwise ignored.
 *
 * Messages (key "t" gives the type):
 *   HELLO   agent -> server  {t:1, v:2, agent: bin16 (the agent's store id), host: str,
 *                             next: uint (the agent's journal next seq)}
 *   WELCOME server -> agent  {t:2, v:2, hwm: uint (the next seq the server expects from this
 *                             agent: 1 for a new one)}
 *   BATCH   agent -> server  {t:3, agent: bin16, first: uint, last: uint, ops: [op...]}
 *           ops are consecutive journal ops first..last (last >= first); see sync_op_encode.
 *   ACK     server -> agent  {t:4, hwm: uint} — everything below hwm is applied and committed.
 *   ERROR   server -> agent  {t:5, code: int (negative errno), msg: str, hwm: uint}
 *           e.g. a gap (first > hwm: resend from hwm), a malformed batch (-EBADMSG).
 *   BLOB_OFFER agent -> server {t:6, sha: bin32, size: uint} — does the server have this
 *           artifact content? Sent before a batch that holds ARTIFACT ops naming it.
 *   BLOB_STATE server -> agent {t:7, sha: bin32, size: uint, have: uint} — have == size: the
 *           server has it (a blob is stored once, whatever the runs naming it); else the
 *           bytes it holds of an interrupted upload, where the next chunk must start.
 *   BLOB_CHUNK agent -> server {t:8, sha: bin32, size: uint, offset: uint, data: bin} — the
 *           bytes [offset, offset + len) of the content; answered with BLOB_STATE. When the
 *           last byte arrives the server checks the SHA-256 and stores the blob (or answers
 *           ERROR -EBADMSG and forgets the upload).
 *
 * Exactly once: the server applies a batch in one store transaction that also records the
 * agent's new hwm; ops with seq < hwm are skipped (a resent or replayed batch is harmless);
 * a batch starting above hwm is refused (gap). The agent resumes from WELCOME's hwm after any
 * reconnect, and trims its journal below an ACK's hwm.
 *
 * An op is a msgpack array [seq, type, run(bin16), ...]:
 *   RUN_START  [seq, 1, run, experiment, name, user, host, start_ms, parent (bin16 or nil)]
 *   RUN_END    [seq, 2, run, status, end_ms]
 *   PARAM      [seq, 3, run, key, value]
 *   TAG        [seq, 4, run, key, value]
 *   METRICS    [seq, 5, run, key, first_index, points (bin: count x 24 bytes, each step i64,
 *               ts_ms i64, value f64 as IEEE bits, all little-endian)]
 *   ARTIFACT   [seq, 6, run, path, sha256 (bin32), size]
 *   MODEL_REGISTER [seq, 7, run, path, model, aliases (comma-separated), description, actor,
 *               time_ms, digest (64 hex digits, "" when the node found no artifact at path)]
 *               — since protocol version 2
 *
 * Versions: HELLO and WELCOME say the sender's version ("v"). Version 2 added MODEL_REGISTER
 * ops; a batch has no version of its own, so an agent of version 2 says so in its HELLO and a
 * version-1 server refuses that HELLO (-EPROTONOSUPPORT: "upgrade the server") before any
 * batch it could not decode is sent. A server takes HELLOs of versions 1 to
 * SYNC_PROTOCOL_VERSION (a version-1 agent never sends the ops it lacks): upgrade servers
 * first, then agents.
 */
#ifndef SIDETRACK_SYNC_PROTOCOL_H
#define SIDETRACK_SYNC_PROTOCOL_H

#include "store.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define SYNC_PROTOCOL_VERSION 2
/* The oldest version this side still talks to. */
#define SYNC_PROTOCOL_MIN_VERSION 1
/* Largest frame either side accepts (also set as ZMQ_MAXMSGSIZE on the server's socket). */
#define SYNC_MAX_FRAME (64u << 20)

enum sync_msg_type {
    SYNC_HELLO = 1,
    SYNC_WELCOME = 2,
    SYNC_BATCH = 3,
    SYNC_ACK = 4,
    SYNC_ERROR = 5,
    SYNC_BLOB_OFFER = 6,
    SYNC_BLOB_STATE = 7,
    SYNC_BLOB_CHUNK = 8,
};
/* Artifact content moves in chunks of this size (the last one shorter). */
#define SYNC_BLOB_CHUNK_BYTES (1u << 20)

/* A growable output buffer for one frame. */
struct sync_buf {
    uint8_t *data;
    size_t len, cap;
    int err; /* first error (-ENOMEM); the frame is unusable when set */
};
void sync_buf_init(struct sync_buf *b);
void sync_buf_free(struct sync_buf *b);
void sync_buf_reset(struct sync_buf *b);
/* The same buffer as text (JSON bodies, URLs): appends keep a NUL after the bytes (not counted
 * in len), and an allocation failure sticks (err) like a frame's. */
void sync_buf_put(struct sync_buf *b, const void *p, size_t n);
void sync_buf_puts(struct sync_buf *b, const char *s);
void sync_buf_printf(struct sync_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sync_buf_vprintf(struct sync_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* The text appended since the last reset; NULL after an error. */
const char *sync_buf_str(const struct sync_buf *b);

/* ---- encoding (the CRC trailer is added by *_finish / the single-call encoders) ---- */
int sync_encode_hello(struct sync_buf *b, const uint8_t agent[16], const char *host,
                      uint64_t next);
int sync_encode_welcome(struct sync_buf *b, uint64_t hwm);
int sync_encode_ack(struct sync_buf *b, uint64_t hwm);
int sync_encode_error(struct sync_buf *b, int code, const char *msg, uint64_t hwm);
int sync_encode_blob_offer(struct sync_buf *b, const uint8_t sha256[32], uint64_t size);
int sync_encode_blob_state(struct sync_buf *b, const uint8_t sha256[32], uint64_t size,
                           uint64_t have);
int sync_encode_blob_chunk(struct sync_buf *b, const uint8_t sha256[32], uint64_t size,
                           uint64_t offset, const void *data, size_t len);
/* A batch is built op by op: begin (the op count must be known: n), n x op, finish. */
int sync_batch_begin(struct sync_buf *b, const uint8_t agent[16], uint64_t first, uint64_t last,
                     uint32_t n);
/* pts: the op's points for METRICS (op->count of them), else NULL. */
int sync_batch_op(struct sync_buf *b, const struct store_op *op, const struct store_point *pts);
int sync_batch_finish(struct sync_buf *b);

/* ---- decoding: bounds-checked, never allocates more than the frame's size ---- */
struct sync_msg {
    int type; /* enum sync_msg_type */
    int version;
    uint8_t agent[16];
    char host[256];
    uint64_t next, hwm, first, last;
    int code;
    char msg[512];
    uint32_t nops;             /* BATCH: the ops, decoded into ops[] */
    struct store_op *ops;      /* strings point into the frame: valid while it is */
    const uint8_t **points;    /* METRICS ops: op i's points, count x 24 bytes, unaligned LE */
    /* BLOB_*: the content's digest and size; STATE: have; CHUNK: offset and the bytes (they
     * point into the frame). */
    uint8_t sha256[32];
    uint64_t size, have, offset;
    const uint8_t *data;
    uint32_t data_len;
};
/* Decodes one frame (CRC checked). For a BATCH, ops/points are allocated (at most one entry
 * per 8 bytes of frame) and freed by sync_msg_free. Returns 0, -EBADMSG (malformed, CRC) or
 * -EPROTONOSUPPORT (another protocol version), -ENOMEM. */
int sync_decode(const uint8_t *frame, size_t len, struct sync_msg *m);
void sync_msg_free(struct sync_msg *m);
/* Point i of a METRICS op as decoded (unaligned little-endian read). */
void sync_point_get(const uint8_t *points, size_t i, struct store_point *out);

#endif
