/* metrics.c — metric histories and summaries.
 *
 * A series (run, key) is a chain of blocks in DB_MBLK under run + key + '\0' + block number
 * (u32 BE), so a series' blocks are adjacent and in order. Appending finds the tail block with
 * one cursor seek (the first key past run + key + '\0' + 0xFFFFFFFF, then one step back),
 * copies it, adds points through the header-only block append, and writes it back; when a
 * point would take the block past its size limit (block.c) the next block number is opened.
 * Only the tail block of a series is ever rewritten. Each block started also records the
 * index of its first point (DB_MBIDX), so that store_metric_range seeks (see below).
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

/* Records where a new block starts in its series (DB_MBIDX), for store_metric_range. */
static int index_block(struct store_txn *t, uint8_t *bkey, size_t bklen, uint32_t blkno,
                       uint64_t first)
{
    uint8_t v[8];
    st_be32(bkey + bklen - 4, blkno);
    st_le64(v, first);
    return st_put(t, DB_MBIDX, bkey, bklen, v, 8, 0);
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

    uint64_t first_index = sum.count;
    bool dirty = false;
    for (size_t i = 0; i < n; i++) {
        size_t nl = 0;
        if (blen > 0) {
            nl = store_block_append(blk, blen, cap, &pts[i]);
            if (nl == 0) {
                if ((rc = write_block(t, bkey, bklen, blkno, blk, blen)) < 0)
                    return rc;
                if (blkno == UINT32_MAX)
                    return -EOVERFLOW;
                blkno++;
            }
        }
        if (nl == 0) {
            if ((rc = index_block(t, bkey, bklen, blkno, sum.count)) < 0)
                return rc;
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
    if ((rc = st_put(t, DB_MSUM, bkey, (size_t)kl - 1, sb, SUM_LEN, 0)) < 0 ||
        !st_journaling(t))
        return rc;
    struct store_op op = {.type = STORE_OP_METRICS, .key = key, .first_index = first_index,
                          .count = n};
    memcpy(op.run, run, 16);
    return st_journal_put(t, &op);
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

/* ---- ranges by index ----
 * Blocks hold a varying number of points, so a point's index does not give its block. Every
 * block that store_metric_append starts gets an entry in DB_MBIDX (same key as the block,
 * value the index of its first point), and a series' entries are dense from the first block
 * this version wrote: a binary search over block numbers finds the block holding any index
 * from there on in ~log2(blocks) lookups (15 for a 10M-point series). Blocks written before
 * DB_MBIDX existed have no entry: those are found by adding up block header counts, walking
 * from whichever end (the first block, or the first indexed one) is nearer. */

struct range_cur {
    struct store_txn *t;
    MDB_cursor *c;
    uint8_t *key; /* series prefix + block number */
    size_t plen;  /* length of the prefix (run + key + '\0') */
};

/* Positions rc->c on block blkno; the block's value in *v. */
static int blk_at(struct range_cur *rc, uint32_t blkno, MDB_val *v)
{
    st_be32(rc->key + rc->plen, blkno);
    MDB_val k = {rc->plen + 4, rc->key};
    int r = mdb_cursor_get(rc->c, &k, v, MDB_SET_KEY);
    if (r == MDB_NOTFOUND)
        return -EBADMSG; /* the summary or the index says that this block exists */
    return r ? st_txn_err(rc->t, r) : 0;
}

/* The cursor's current entry, as a block of this series: its number and point count. */
static int blk_here(struct range_cur *rc, int r, const MDB_val *k, const MDB_val *v,
                    uint32_t *blkno, uint32_t *count)
{
    if (r == MDB_NOTFOUND)
        return -EBADMSG;
    if (r)
        return st_txn_err(rc->t, r);
    if (k->mv_size != rc->plen + 4 || memcmp(k->mv_data, rc->key, rc->plen) != 0 ||
        v->mv_size < STORE_BLOCK_HDR)
        return -EBADMSG;
    *blkno = st_rd_be32((const uint8_t *)k->mv_data + rc->plen);
    *count = st_rd_le16((const uint8_t *)v->mv_data + 2);
    return 0;
}

/* The block that holds point `target`, by header counts: forward from block 0 (first index
 * 0), or backward from the block before `anchor` (whose first index is anchor_first). */
static int range_walk(struct range_cur *rc, uint64_t target, uint32_t anchor,
                      uint64_t anchor_first, uint32_t *blkno, uint64_t *first)
{
    MDB_val k, v;
    uint32_t b, cnt;
    int r;
    if (target < anchor_first - target || anchor == 0) {
        uint64_t f = 0;
        st_be32(rc->key + rc->plen, 0);
        k = (MDB_val){rc->plen + 4, rc->key};
        r = mdb_cursor_get(rc->c, &k, &v, MDB_SET_RANGE);
        for (;;) {
            if ((r = blk_here(rc, r, &k, &v, &b, &cnt)) < 0)
                return r;
            if (target < f + cnt) {
                *blkno = b;
                *first = f;
                return 0;
            }
            f += cnt;
            r = mdb_cursor_get(rc->c, &k, &v, MDB_NEXT);
        }
    }
    uint64_t f = anchor_first;
    if ((r = blk_at(rc, anchor - 1, &v)) < 0)
        return r;
    k = (MDB_val){rc->plen + 4, rc->key};
    for (;;) {
        if ((r = blk_here(rc, r, &k, &v, &b, &cnt)) < 0)
            return r;
        if (cnt > f)
            return -EBADMSG;
        f -= cnt;
        if (f <= target) {
            *blkno = b;
            *first = f;
            return 0;
        }
        r = mdb_cursor_get(rc->c, &k, &v, MDB_PREV);
    }
}

static int idx_get(struct range_cur *rc, uint32_t blkno, uint64_t *first)
{
    MDB_val v;
    st_be32(rc->key + rc->plen, blkno);
    int r = st_get(rc->t, DB_MBIDX, rc->key, rc->plen + 4, &v);
    if (r == 0 && v.mv_size != 8)
        r = -EBADMSG;
    if (r == 0)
        *first = st_rd_le64(v.mv_data);
    return r;
}

/* The first (lowest: which < 0) or last indexed block of the series; -ENOENT when none. */
static int idx_end(struct range_cur *rc, MDB_cursor *ic, int which, uint32_t *blkno,
                   uint64_t *first)
{
    st_be32(rc->key + rc->plen, which < 0 ? 0 : UINT32_MAX);
    MDB_val k = {rc->plen + 4, rc->key}, v;
    int r = mdb_cursor_get(ic, &k, &v, MDB_SET_RANGE);
    if (which > 0) {
        if (r == 0 && k.mv_size == rc->plen + 4 &&
            st_rd_be32((const uint8_t *)k.mv_data + rc->plen) == UINT32_MAX &&
            memcmp(k.mv_data, rc->key, rc->plen) == 0)
            r = 0; /* block UINT32_MAX itself */
        else if (r == 0)
            r = mdb_cursor_get(ic, &k, &v, MDB_PREV);
        else if (r == MDB_NOTFOUND)
            r = mdb_cursor_get(ic, &k, &v, MDB_LAST);
    }
    if (r == MDB_NOTFOUND)
        return -ENOENT;
    if (r)
        return st_txn_err(rc->t, r);
    if (k.mv_size != rc->plen + 4 || memcmp(k.mv_data, rc->key, rc->plen) != 0)
        return -ENOENT;
    if (v.mv_size != 8)
        return -EBADMSG;
    *blkno = st_rd_be32((const uint8_t *)k.mv_data + rc->plen);
    *first = st_rd_le64(v.mv_data);
    return 0;
}

/* The block holding point `target` of a series of `total` points, and its first index. */
static int range_seek(struct range_cur *rc, uint64_t target, uint64_t total, uint32_t *blkno,
                      uint64_t *first)
{
    /* the end of the series is an anchor for walks: one past the last block */
    MDB_val k, v;
    uint32_t last, cnt;
    st_be32(rc->key + rc->plen, UINT32_MAX);
    k = (MDB_val){rc->plen + 4, rc->key};
    int r = mdb_cursor_get(rc->c, &k, &v, MDB_SET_RANGE);
    if (r == 0 && !(k.mv_size == rc->plen + 4 && memcmp(k.mv_data, rc->key, rc->plen + 4) == 0))
        r = mdb_cursor_get(rc->c, &k, &v, MDB_PREV);
    else if (r == MDB_NOTFOUND)
        r = mdb_cursor_get(rc->c, &k, &v, MDB_LAST);
    if ((r = blk_here(rc, r, &k, &v, &last, &cnt)) < 0)
        return r;
    if (cnt > total)
        return -EBADMSG;
    if (target >= total - cnt) { /* the tail block: the common case when replicating */
        *blkno = last;
        *first = total - cnt;
        return 0;
    }
    if (last == UINT32_MAX)
        return -EOVERFLOW;

    uint32_t lo, hi;
    uint64_t flo, fhi;
    if (!st_has_db(rc->t, DB_MBIDX))
        return range_walk(rc, target, last + 1, total, blkno, first);
    MDB_cursor *ic;
    if ((r = mdb_cursor_open(rc->t->txn, rc->t->s->dbi[DB_MBIDX], &ic)) != 0)
        return st_txn_err(rc->t, r);
    r = idx_end(rc, ic, -1, &lo, &flo);
    if (r == 0)
        r = idx_end(rc, ic, 1, &hi, &fhi);
    mdb_cursor_close(ic);
    if (r == -ENOENT || (r == 0 && (hi > last || fhi > total || flo > fhi)))
        return range_walk(rc, target, last + 1, total, blkno, first);
    if (r < 0)
        return r;
    if (target < flo) /* in blocks from before the index */
        return range_walk(rc, target, lo, flo, blkno, first);
    if (target >= fhi) {
        *blkno = hi;
        *first = fhi;
        return 0;
    }
    /* first(lo) <= target < first(hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint64_t fm = 0;
        r = idx_get(rc, mid, &fm);
        if (r == -ENOENT) /* a gap: blocks written by an older version in between */
            return range_walk(rc, target, last + 1, total, blkno, first);
        if (r < 0)
            return r;
        if (fm <= target) {
            lo = mid;
            flo = fm;
        } else {
            hi = mid;
        }
    }
    *blkno = lo;
    *first = flo;
    return 0;
}

int store_metric_range(struct store_txn *t, const uint8_t run[16], const char *key,
                       uint64_t first_index, size_t n, struct store_point *out)
{
    uint8_t k[ST_MAX_KEY];
    int kl = st_runkey(k, run, key);
    if (kl < 0)
        return kl;
    struct store_metric_summary sum;
    int rc = store_metric_summary_get(t, run, key, &sum);
    if (rc < 0)
        return rc;
    if (first_index > sum.count || n > sum.count - first_index)
        return -ENOENT;
    if (n == 0)
        return 0;

    struct range_cur c = {.t = t, .key = k, .plen = (size_t)kl};
    if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DB_MBLK], &c.c)) != 0)
        return st_txn_err(t, rc);
    uint32_t blkno;
    uint64_t f;
    struct store_point *tmp = NULL;
    size_t tcap = 0, done = 0;
    MDB_val v;
    rc = range_seek(&c, first_index, sum.count, &blkno, &f);
    if (rc == 0)
        rc = blk_at(&c, blkno, &v);
    while (rc == 0) {
        /* straight into out when the whole block is wanted, else through tmp */
        size_t skip = (size_t)(first_index + done - f), got;
        if (skip == 0) {
            rc = store_block_decode(v.mv_data, v.mv_size, out + done, n - done, &got);
            if (rc == 0) {
                done += got;
                f += got;
            }
        }
        if (skip > 0 || rc == -ENOBUFS) {
            size_t need = v.mv_size / 3 + 1;
            if (need > tcap) {
                struct store_point *np = realloc(tmp, need * sizeof *np);
                if (!np) {
                    rc = -ENOMEM;
                    break;
                }
                tmp = np;
                tcap = need;
            }
            if ((rc = store_block_decode(v.mv_data, v.mv_size, tmp, tcap, &got)) < 0)
                break;
            if (skip >= got) {
                rc = -EBADMSG; /* the block does not hold the point that it should */
                break;
            }
            size_t take = got - skip < n - done ? got - skip : n - done;
            memcpy(out + done, tmp + skip, take * sizeof *out);
            done += take;
            f += got;
        }
        if (rc == -ENOBUFS)
            rc = 0;
        if (rc < 0 || done == n)
            break;
        MDB_val bk;
        uint32_t b, cnt;
        rc = blk_here(&c, mdb_cursor_get(c.c, &bk, &v, MDB_NEXT), &bk, &v, &b, &cnt);
        if (rc == 0 && b != blkno + 1)
            rc = -EBADMSG;
        blkno = b;
    }
    free(tmp);
    mdb_cursor_close(c.c);
    return rc == -ENOBUFS ? -EBADMSG : rc;
}
