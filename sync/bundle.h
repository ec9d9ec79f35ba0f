/* bundle.h — bundle files: a node's data carried across an air gap (`sidetrack export` and
 * `sidetrack import`, docs/bundles.md).
 *
 * A bundle holds the same frames the agent sends over the network (protocol.h), so that an
 * import applies them the way the server applies a batch, with the same exactly-once rule:
 *
 *   offset 0   "SIDETRACK-BUNDLE" (16 bytes), format version (u32 LE), flags (u32 LE, 0),
 *              the file's total size in bytes (u64 LE, written last)
 *   32         header: length (u32 LE, 1..65536), a msgpack map {kind: "journal" | "runs",
 *              source: bin16 (the exporting store's id: the agent's id for sync),
 *              host: str, created_ms: int, tool: str}, CRC-32C of the map (u32 LE)
 *   ...        frames: length (u32 LE, 5..SYNC_MAX_FRAME), then one sync frame (with its own
 *              CRC-32C): BLOB_CHUNKs carrying an artifact's content in order, always before
 *              the BATCH naming it, and BATCHes of consecutive ops
 *   ...        end: a zero length (u32), then the trailer: length (u32 LE, 1..65536), a
 *              msgpack map {bytes, first, last, frames, batches, ops, points, runs, blobs,
 *              blob_bytes, missing_blobs}, then the SHA-256 of the file's bytes from offset 32
 *              up to here (32 bytes). Nothing may follow.
 *
 * Kinds: "journal" is the exporting agent's journal ops first..last, applied with apply_batch
 * under the source's id: exactly once against other bundles and against what the same agent
 * sent over the network. "runs" is a snapshot of chosen runs (ops numbered 1..n within the
 * bundle), applied with apply_snapshot: idempotent, adding only what the target lacks.
 *
 * Reading checks the whole file (magic, version, every length, every frame's CRC and decoding,
 * the order of chunks and batches, the counts, the digest) before anything is applied; each
 * refusal comes with a sentence that says what is wrong and where. Library code: nothing is
 * printed; errors are negative errnos plus that sentence in the caller's buffer.
 */
#ifndef SIDETRACK_SYNC_BUNDLE_H
#define SIDETRACK_SYNC_BUNDLE_H

#include "apply.h"
#include "protocol.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_MAGIC "SIDETRACK-BUNDLE"
#define BUNDLE_MAGIC_LEN 16
/* The newest format this reads and writes. Format 2 may hold MODEL_REGISTER ops; a bundle
 * without one is written as format 1, so that older importers still take it, and one with
 * one is refused by them as "made by a newer version" rather than as damaged. */
#define BUNDLE_VERSION 2u
#define BUNDLE_VERSION_REGISTRY 2u
#define BUNDLE_VERSION_BASE 1u
/* The store counter holding the next journal op a journal bundle starts from. */
#define BUNDLE_EXPORT_COUNTER "export_next"

enum bundle_kind {
    BUNDLE_JOURNAL = 1,
    BUNDLE_RUNS = 2,
};
const char *bundle_kind_name(int kind); /* "journal", "runs" */

struct bundle_info {
    uint32_t version;
    int kind;               /* enum bundle_kind */
    uint8_t source[16];     /* the exporting store's id */
    char host[256];         /* where it was exported */
    char tool[64];          /* "sidetrack 0.1.0" */
    int64_t created_ms;
    /* from the trailer (after bundle_verify), or what was written (export) */
    uint64_t bytes;         /* the file's size */
    uint64_t first, last;   /* journal: op seqs; runs: 1..ops */
    uint64_t frames, batches, ops, points, runs;
    uint64_t blobs, blob_bytes; /* artifact contents carried */
    uint64_t missing_blobs;     /* artifacts named whose content the source did not have */
};

/* Progress of a long export or import: called after each frame (callers rate-limit what
 * they draw). Totals of an export are estimates made before it starts. A negative return
 * (e.g. -EINTR after Ctrl-C) stops the work and is returned: an export then leaves no file
 * and marks nothing; an import keeps the batches applied so far (each is whole). */
enum bundle_phase { BUNDLE_WRITING = 1, BUNDLE_CHECKING = 2, BUNDLE_APPLYING = 3 };
struct bundle_progress {
    int phase;
    uint64_t bytes_done, bytes_total;
    uint64_t ops_done, ops_total;
};
typedef int (*bundle_progress_fn)(const struct bundle_progress *p, void *arg);

/* ---- export ---- */

struct bundle_export_options {
    int kind;                  /* BUNDLE_JOURNAL or BUNDLE_RUNS */
    bool since_start;          /* journal: everything still in the journal, not only what
                                * no earlier bundle holds */
    const uint8_t (*runs)[16]; /* runs: the runs to carry */
    size_t nruns;
    bool force;                /* replace an existing file */
    const char *host;          /* recorded in the header (NULL: gethostname) */
    const char *tool;          /* recorded in the header (NULL: "sidetrack") */
    size_t batch_bytes;        /* 0: JOURNAL_BATCH_BYTES */
    bundle_progress_fn progress;
    void *progress_arg;
};

struct bundle_export_result {
    struct bundle_info info;   /* what was written */
    bool empty;                /* nothing to export: no file was written */
    uint64_t export_next;      /* journal: where the last bundle ended (1: none yet) */
    uint64_t journal_first;    /* journal: the lowest op still in the journal */
    uint64_t journal_next;     /* journal: the op the journal gives next */
    bool trimmed;              /* journal: ops from export_next to journal_first were trimmed
                                * (a server acknowledged them): they are not in the bundle */
};

/* Writes a bundle of store s to path: into a temporary file next to it, fsynced, then renamed
 * into place (a crash leaves the old file or the whole new one). A journal bundle holds ops
 * from the store's "export_next" counter (or, with since_start, the journal's first op) to
 * the journal's end; once the file is in place the counter moves past them (s must be open
 * read-write for that). res->empty and 0 when there is nothing to export. Returns 0, -EEXIST
 * (path exists and not force), -ENOSPC (disk full: nothing written, nothing marked), -ENOENT
 * (a run is gone), other -errno; why says what failed, in words. */
int bundle_export(struct store *s, const char *path, const struct bundle_export_options *o,
                  struct bundle_export_result *res, char *why, size_t whylen);

/* ---- import ---- */

struct bundle_reader;
/* Opens a bundle and reads its prefix and header. -ENOENT/-EACCES..., -EBADMSG (not a bundle,
 * truncated, corrupted), -EPROTONOSUPPORT (made by a newer version); why says which. */
int bundle_open(struct bundle_reader **r, const char *path, char *why, size_t whylen);
void bundle_close(struct bundle_reader *r); /* NULL accepted */
/* The header (after bundle_open) and the trailer's counts (after bundle_verify). */
const struct bundle_info *bundle_reader_info(const struct bundle_reader *r);
/* Reads the whole file and checks it: every length, every frame's CRC and contents, the order
 * of chunks and batches, the trailer's counts and digest. 0 when the bundle is whole and
 * sound; -EBADMSG / -EPROTONOSUPPORT / -errno with why ("truncated: ...", "corrupted: ..."). */
int bundle_verify(struct bundle_reader *r, bundle_progress_fn progress, void *arg, char *why,
                  size_t whylen);

struct bundle_import_result {
    uint64_t batches, batches_skipped; /* skipped whole: the store had every op */
    uint64_t applied, skipped;         /* ops */
    uint64_t points;                   /* metric points added */
    uint64_t blobs_stored, blobs_had, blob_bytes, blobs_bad;
    uint64_t hwm_before, hwm_after;    /* journal: the source's high-water mark here */
};
/* Applies a verified bundle to store s (open read-write): artifact content through blobs.h,
 * journal batches through apply_batch (a batch wholly below the source's mark is skipped
 * without a write), runs batches through apply_snapshot. Each batch is one transaction: a
 * failure leaves the batches before it applied, and importing again goes on from there.
 * -ERANGE when the bundle starts past what the store has of that agent (an earlier bundle
 * is missing: why names the ops), -EBADMSG, store errors. */
int bundle_apply(struct bundle_reader *r, struct store *s, bundle_progress_fn progress,
                 void *arg, struct bundle_import_result *res, char *why, size_t whylen);

#endif
