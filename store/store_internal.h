/* store_internal.h — what the store's source files share and nobody else sees: the
 * environment and transaction structs, the named databases, key building, byte-order helpers,
 * LMDB error mapping, and (mpk.h) the small msgpack writer/reader used for growable values.
 *
 * Schema (named LMDB databases; all integers in keys are big-endian so that keys sort in
 * numeric order, integers in fixed binary values are little-endian):
 *   meta       "version" -> u32, "id" -> 16 bytes, "next_exp" -> u64,
 *              "journal_next" -> u64 (the journal's next seq as of its last trim)
 *   exp        id (u64) -> msgpack {n: name, c: created_ms}
 *   exp_name   name -> id (u64)
 *   runs       run id (16) -> msgpack map of struct store_run (see runs.c)
 *   params     run (16) + key + '\0' -> value bytes
 *   tags       run (16) + key + '\0' -> value bytes
 *   mblk       run (16) + key + '\0' + block number (u32) -> metric block (block.c)
 *   msum       run (16) + key -> summary, fixed binary (metrics.c)
 *   mbidx      run (16) + key + '\0' + block number (u32) -> u64 index of the block's first
 *              point in its series (metrics.c)
 *   artifacts  run (16) + path -> sha256 (32) + size (u64) [+ full path when the key is cut]
 *   lanes      lane id (24) -> fixed binary struct store_lane (lanes.c)
 *   lanedict   lane id (24) + kind (1) + num (u32) -> value
 *   counters   name -> u64
 *   journal    seq (u64) -> msgpack array of a struct store_op (journal.c)
 *   peers      agent id (16) -> msgpack map of a struct store_peer (journal.c)
 *   exptags    experiment id (u64, in 16 bytes: 8 zero + 8) + key + '\0' -> value bytes
 *   inputs     run (16) + key + '\0' -> value bytes (MLflow's log-inputs)
 *   remote     target + '\0' + key -> value bytes (store_remote_*: sync targets' records)
 *   rm, rm_name, mv, mv_run, rm_tags, rm_alias, rm_hist: the model registry (registry.c says
 *              what each holds)
 * journal, peers, mbidx, exptags, inputs, remote and the registry's came after the first stores were made: a writable open creates
 * them, a read-only open of an older store goes on without them (st_has_db()).
 */
#ifndef SIDETRACK_STORE_INTERNAL_H
#define SIDETRACK_STORE_INTERNAL_H

#include "mpk.h"
#include "store.h"

#include <lmdb.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

enum st_db {
    DB_META,
    DB_EXP,
    DB_EXP_NAME,
    DB_RUNS,
    DB_PARAMS,
    DB_TAGS,
    DB_MBLK,
    DB_MSUM,
    DB_ARTIFACTS,
    DB_LANES,
    DB_LANEDICT,
    DB_COUNTERS,
    DB_JOURNAL,
    DB_PEERS,
    DB_MBIDX,
    DB_EXPTAGS,
    DB_INPUTS,
    DB_REMOTE,
    DB_RM,       /* the model registry (registry.c) */
    DB_RM_NAME,
    DB_MV,
    DB_MV_RUN,
    DB_RM_TAGS,
    DB_RM_ALIAS,
    DB_RM_HIST,
    DB_COUNT
};

/* LMDB's default maximum key size (MDB_MAXKEYSIZE). */
#define ST_MAX_KEY 511u
/* Longest param, tag or metric key: run (16) + key + '\0' + block number (4) fits ST_MAX_KEY. */
#define ST_MAX_NAME 490u
/* Longest store directory path (with its NUL). */
#define ST_DIR_MAX (PATH_MAX - 256)

struct store {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    bool have[DB_COUNT]; /* false for a database that a read-only open did not find */
    unsigned flags;
    uint8_t id[16];
    char dir[ST_DIR_MAX]; /* shorter than PATH_MAX, leaving room for the names inside */
    pthread_mutex_t lock; /* guards ntxn and map resizing */
    unsigned ntxn;        /* transactions open in this process */
    _Atomic bool map_full;
};

struct store_txn {
    struct store *s;
    MDB_txn *txn;
    bool write;
    int err;            /* first LMDB failure that poisoned a write txn; commit returns it */
    MDB_cursor *mblk;   /* cached cursor on DB_MBLK, for metric appends */
    uint64_t jnext;     /* the journal's next seq, once this txn has looked it up (else 0) */
};

static inline bool st_has_db(const struct store_txn *t, enum st_db db) { return t->s->have[db]; }

/* True when changes made in this (write) txn are journaled. */
static inline bool st_journaling(const struct store_txn *t)
{
    return (t->s->flags & (STORE_JOURNAL | STORE_RDONLY)) == STORE_JOURNAL;
}
/* Appends op to the journal under the next seq (op->seq is ignored). A failure poisons the
 * transaction: a change committed without its op would never be replicated. */
int st_journal_put(struct store_txn *t, const struct store_op *op);

/* Maps an LMDB (or errno) code to a negative errno, and records map-full vs disk-full. */
int st_err(struct store *s, int rc);
/* Same, and poisons the transaction on failures that leave an LMDB write txn unusable. */
int st_txn_err(struct store_txn *t, int rc);

/* mdb_get / mdb_put / mdb_del through the txn, mapped. */
int st_get(struct store_txn *t, enum st_db db, const void *k, size_t klen, MDB_val *v);
int st_put(struct store_txn *t, enum st_db db, const void *k, size_t klen, const void *v,
           size_t vlen, unsigned flags);
int st_del(struct store_txn *t, enum st_db db, const void *k, size_t klen);
/* Hands out meta's counter `key` (8 bytes little-endian; absent: 1) and stores the next
 * value, in t: experiment ids, registered model ids, registry history sequence numbers.
 * -EOVERFLOW when it ran out, -EBADMSG for a malformed counter. */
int st_meta_next(struct store_txn *t, const char *key, uint64_t *out);
/* Guard for write calls: -EROFS in a read txn, the poison error if the txn already failed. */
int st_writable(struct store_txn *t);

/* Calls fn for every entry whose key starts with prefix, in key order; a nonzero return of
 * fn stops the walk and is returned. */
int st_prefix_foreach(struct store_txn *t, enum st_db db, const void *prefix, size_t plen,
                      int (*fn)(const MDB_val *k, const MDB_val *v, void *arg), void *arg);

/* Builds run (16) + key + '\0' into buf (ST_MAX_KEY bytes); returns its length, or -EINVAL
 * (empty key) / -ENAMETOOLONG (key longer than ST_MAX_NAME). */
int st_runkey(uint8_t *buf, const uint8_t run[16], const char *key);

int64_t st_now_ms(void);

/* Walks the entries under a 16-byte owner (run id, widened experiment id) whose keys are
 * owner + key + '\0', handing key and value as strings (runs.c). */
int st_kv_foreach(struct store_txn *t, enum st_db db, const uint8_t owner[16],
                  int (*cb)(const char *key, const char *value, void *arg), void *arg);

/* ---- byte order ---- */
static inline void st_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t st_rd_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void st_be64(uint8_t *p, uint64_t v)
{
    st_be32(p, (uint32_t)(v >> 32));
    st_be32(p + 4, (uint32_t)v);
}
static inline uint64_t st_rd_be64(const uint8_t *p)
{
    return (uint64_t)st_rd_be32(p) << 32 | st_rd_be32(p + 4);
}
static inline void st_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline uint16_t st_rd_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void st_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t st_rd_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void st_le64(uint8_t *p, uint64_t v)
{
    st_le32(p, (uint32_t)v);
    st_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t st_rd_le64(const uint8_t *p)
{
    return (uint64_t)st_rd_le32(p) | (uint64_t)st_rd_le32(p + 4) << 32;
}
static inline uint64_t st_f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}
static inline double st_bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* ---- shared between files ---- */
/* n bytes as 2n lowercase hex digits and a NUL (run ids, blob digests). */
void st_hex(const uint8_t *bytes, size_t n, char *out);
/* The value of one hex digit (either case), -1 for anything else. */
int st_hexval(char c);
int st_meta_init(struct store_txn *t, bool *created);
/* Removes temporary files that an interrupted blob ingest left behind (artifacts.c). */
void st_blob_tmp_clean(struct store *s);

/* A full metric block is exactly one LMDB overflow page (a 4 KiB page less LMDB's 16-byte page
 * header), so a closed block wastes nothing and leaf pages hold only keys. Inline blocks of
 * ~1.8 KB looked denser on paper, but a series' next block is inserted in the middle of the
 * tree and LMDB splits pages at the middle, which left one block per 4 KiB leaf page (19
 * bytes a point measured, against ~9 with full overflow pages). */
#define BLOCK_NODE_BUDGET 4080
int st_block_cap(size_t lmdb_key_len);

#endif
