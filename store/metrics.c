/* metrics.c — metric histories and summaries.
 *
 * A series (run, key) is a chain of blocks in DB_MBLK under run + key + '\0' + block number
 * (u32 BE), so a series' blocks are adjacent and in order. Appending finds the tail block with
 * one cursor seek (the first key past run + key + '\0' + 0xFFFFFFFF, then one step back),
 * copies it, adds points through the header-only block append, and writes it back; when a
 * point would take the block past its size limit (block.c) the next block number is opened.
 * Only the tail block of a series is ever rewritten.
 *
 * DB_MSUM keeps, per series, the point count, the latest point and min / max, updated once
 * per append call, so listing a run's metrics never reads history. "Latest" is MLflow's:
 * the point with the greatest (step, timestamp, value), compared in that order; the first one
 * logged wins a tie (NaN never compares greater). min / max ignore NaN and stay NaN until a
 * non-NaN value arrives. Summary value, little-endian:
 *   u64 count, i64 latest step, i64 latest ts_ms, u64 latest value bits, u64 min bits,
 *   u64 max bits (48 bytes; readers accept longer values, for fields added later).
 */
#include "store_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#define SUM_LEN 48
#define BLK_BUF 4096
_Static_assert(BLOCK_NODE_BUDGET <= BLK_BUF, "a tail block must fit the append buffer");

static void sum_decode(const uint8_t *p, struct store_metric_summary *s)
{
    s->count = st_rd_le64(p);
    s->latest.step = (int64_t)st_rd_le64(p + 8);
    s->latest.ts_ms = (int64_t)st_rd_le64(p + 16);
    s->latest.value = st_bits_f64(st_rd_le64(p + 24));
    s->min = st_bits_f64(st_rd_le64(p + 32));
    s->max = st_bits_f64(st_rd_le64(p + 40));
}

static void sum_encode(uint8_t *p, const struct store_metric_summary *s)
{
    st_le64(p, s->count);
    st_le64(p + 8, (uint64_t)s->latest.step);
    st_le64(p + 16, (uint64_t)s->latest.ts_ms);
    st_le64(p + 24, st_f64_bits(s->latest.value));
    st_le64(p + 32, st_f64_bits(s->min));
    st_le64(p + 40, st_f64_bits(s->max));
}

/* MLflow's order: step, then timestamp, then value. */
static bool later(const struct store_point *a, const struct store_point *b)
{
    if (a->step != b->step)
        return a->step > b->step;
    if (a->ts_ms != b->ts_ms)
        return a->ts_ms > b->ts_ms;
    return a->value > b->value;
}

static void sum_add(struct store_metric_summary *s, const struct store_point *p)
{
    if (s->count == 0 || later(p, &s->latest))
        s->latest = *p;
    s->count++;
    double v = p->value;
    if (!isnan(v)) {
        if (isnan(s->min) || v < s->min)
            s->min = v;
        if (isnan(s->max) || v > s->max)
            s->max = v;
    }
}

static int write_block(struct store_txn *t, uint8_t *bkey, size_t bklen, uint32_t blkno,
                       const uint8_t *blk, size_t len)
{
    st_be32(bkey + bklen - 4, blkno);
    return st_put(t, DB_MBLK, bkey, bklen, blk, len, 0);
}

int store_metric_append(struct store_txn *t, const uint8_t run[16], const char *key,
                        const struct store_point *pts, size_t n)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    uint8_t bkey[ST_MAX_KEY];
    int kl = st_runkey(bkey, run, key);
    if (kl < 0)
        return kl;
    if (n == 0)
        return 0;
    if (!pts)
        return -EINVAL;
    size_t bklen = (size_t)kl + 4;

    /* the summary; a series seen for the first time makes sure its run is listed */
    struct store_metric_summary sum = {.min = NAN, .max = NAN};
    MDB_val v;
    rc = st_get(t, DB_MSUM, bkey, (size_t)kl - 1, &v);
    if (rc == 0) {
        if (v.mv_size < SUM_LEN)
            return -EBADMSG;
        sum_decode(v.mv_data, &sum);
    } else if (rc == -ENOENT) {
        if ((rc = store_run_touch(t, run)) < 0)
            return rc;
    } else {
        return rc;
    }

    /* the tail block */
    if (!t->mblk && (rc = mdb_cursor_open(t->txn, t->s->dbi[DB_MBLK], &t->mblk)) != 0)
        return st_txn_err(t, rc);
    st_be32(bkey + kl, UINT32_MAX);
    MDB_val k = {bklen, bkey};
    rc = mdb_cursor_get(t->mblk, &k, &v, MDB_SET_RANGE);
    if (rc == 0)
        rc = mdb_cursor_get(t->mblk, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(t->mblk, &k, &v, MDB_LAST);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return st_txn_err(t, rc);

    uint8_t blk[BLK_BUF];
    size_t blen = 0;
    uint32_t blkno = 0;
    size_t cap = (size_t)st_block_cap(bklen);
    if (rc == 0 && k.mv_size == bklen && memcmp(k.mv_data, bkey, (size_t)kl) == 0) {
        blkno = st_rd_be32((const uint8_t *)k.mv_data + kl);
        const uint8_t *b = v.mv_data;
        if (v.mv_size < STORE_BLOCK_HDR || b[0] != 1)
            return -EBADMSG;
        if (v.mv_size + 3 <= cap) { /* room for a point at least: carry on in this block */
            memcpy(blk, b, v.mv_size);
            blen = v.mv_size;
        } else {
            if (blkno == UINT32_MAX)
                return -EOVERFLOW;
            blkno++;
        }
    }

    bool dirty = false;
    for (size_t i = 0; i < n; i++) {
        size_t nl = store_block_append(blk, blen, cap, &pts[i]);
        if (nl == 0) {
            if ((rc = write_block(t, bkey, bklen, blkno, blk, blen)) < 0)
                return rc;
            if (blkno == UINT32_MAX)
                return -EOVERFLOW;
            blkno++;
            nl = store_block_append(blk, 0, cap, &pts[i]);
        }
        blen = nl;
        dirty = true;
        sum_add(&sum, &pts[i]);
    }
    if (dirty && (rc = write_block(t, bkey, bklen, blkno, blk, blen)) < 0)
        return rc;

    uint8_t sb[SUM_LEN];
    sum_encode(sb, &sum);
    return st_put(t, DB_MSUM, bkey, (size_t)kl - 1, sb, SUM_LEN, 0);
}

int store_metric_summary_get(struct store_txn *t, const uint8_t run[16], const char *key,
                             struct store_metric_summary *out)
{
    uint8_t k[ST_MAX_KEY];
    int kl = st_runkey(k, run, key);
    if (kl < 0)
        return kl;
    MDB_val v;
    int rc = st_get(t, DB_MSUM, k, (size_t)kl - 1, &v);
    if (rc)
        return rc;
    if (v.mv_size < SUM_LEN)
        return -EBADMSG;
    sum_decode(v.mv_data, out);
    return 0;
}

struct keys_ctx {
    int (*cb)(const char *key, const struct store_metric_summary *s, void *arg);
    void *arg;
};

static int keys_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct keys_ctx *c = arg;
    char name[ST_MAX_KEY + 1];
    size_t n = k->mv_size - 16;
    if (n == 0 || n > ST_MAX_KEY || v->mv_size < SUM_LEN)
        return -EBADMSG;
    memcpy(name, (const uint8_t *)k->mv_data + 16, n);
    name[n] = '\0';
    struct store_metric_summary s;
    sum_decode(v->mv_data, &s);
    return c->cb(name, &s, c->arg);
}

int store_metric_keys_foreach(struct store_txn *t, const uint8_t run[16],
                              int (*cb)(const char *key, const struct store_metric_summary *s,
                                        void *arg),
                              void *arg)
{
    struct keys_ctx c = {cb, arg};
    return st_prefix_foreach(t, DB_MSUM, run, 16, keys_one, &c);
}

struct hist_ctx {
    int (*cb)(const struct store_point *pts, size_t n, void *arg);
    void *arg;
    size_t klen;
    struct store_point *pts;
    size_t cap;
    bool any;
};

static int hist_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct hist_ctx *c = arg;
    if (k->mv_size != c->klen + 4)
        return -EBADMSG;
    size_t need = v->mv_size / 3 + 1;
    if (need > c->cap) {
        struct store_point *np = realloc(c->pts, need * sizeof *np);
        if (!np)
            return -ENOMEM;
        c->pts = np;
        c->cap = need;
    }
    size_t n;
    int rc = store_block_decode(v->mv_data, v->mv_size, c->pts, c->cap, &n);
    if (rc < 0)
        return rc == -ENOBUFS ? -EBADMSG : rc;
    c->any = true;
    return n ? c->cb(c->pts, n, c->arg) : 0;
}

int store_metric_history(struct store_txn *t, const uint8_t run[16], const char *key,
                         int (*cb)(const struct store_point *pts, size_t n, void *arg), void *arg)
{
    uint8_t k[ST_MAX_KEY];
    int kl = st_runkey(k, run, key);
    if (kl < 0)
        return kl;
    struct hist_ctx c = {.cb = cb, .arg = arg, .klen = (size_t)kl};
    int rc = st_prefix_foreach(t, DB_MBLK, k, (size_t)kl, hist_one, &c);
    free(c.pts);
    if (rc == 0 && !c.any)
        return -ENOENT;
    return rc;
}
