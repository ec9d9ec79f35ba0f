/* metrics_query.c — metric queries for charts: points in a step range, and a downsampled
 * view of a series that keeps its shape.
 *
 * Both walk the series' blocks (DB_MBLK, in logged order) and decode them one at a time into
 * a small buffer: a million-point history is never materialised. Steps are not required to
 * grow in logged order, so no block can be skipped by its header alone (its first and last
 * steps say nothing about the points in between); decoding is cheap enough (a few ns a point).
 *
 * The view (min/max per bucket, the "M4" idea): the step range [lo, hi] actually covered by
 * the points in range is cut into nb equal buckets; each bucket keeps its first and last
 * points by step, its smallest and largest finite values, and its first non-finite point by
 * step (a NaN or infinity: a gap a chart must show), emitted in step order without
 * duplicates. So a spike survives any amount of downsampling, and a line drawn through the
 * kept points covers the same pixels as one through all of them. What is kept depends on the
 * points only, not on the order they were logged in (but for ties on step or value).
 *
 * One pass in the common case: [lo, hi] is first guessed from the block headers (exact for a
 * series whose steps grow, which is nearly every series); a point that falls outside the
 * guess, or a guess much wider than the truth, costs a second pass with the true range, which
 * the first pass measured. The points in range are also kept while there are at most N of
 * them: a series that small comes back whole, in logged order, not downsampled.
 */
#include "store_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* A block holds at most this many points: 4080 bytes of body, 3 bytes a point at least. */
#define QBLK_PTS (BLOCK_NODE_BUDGET / 3 + 1)

struct qblk {
    const uint8_t *p;
    size_t len;
};

/* The series' blocks, in order. Their bytes live in the txn's map: valid until it ends. */
struct qseries {
    struct qblk *b;
    size_t n, cap;
};

static int q_collect(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct qseries *s = arg;
    (void)k;
    if (v->mv_size < STORE_BLOCK_HDR)
        return -EBADMSG;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        struct qblk *nb = realloc(s->b, nc * sizeof *nb);
        if (!nb)
            return -ENOMEM;
        s->b = nb;
        s->cap = nc;
    }
    s->b[s->n++] = (struct qblk){v->mv_data, v->mv_size};
    return 0;
}

/* The blocks of (run, key); -ENOENT when the run has no such metric. */
static int q_blocks(struct store_txn *t, const uint8_t run[16], const char *key,
                    struct qseries *s)
{
    uint8_t k[ST_MAX_KEY];
    int kl = st_runkey(k, run, key);
    if (kl < 0)
        return kl;
    *s = (struct qseries){0};
    int rc = st_prefix_foreach(t, DB_MBLK, k, (size_t)kl, q_collect, s);
    if (rc == 0 && s->n == 0)
        rc = -ENOENT;
    if (rc < 0) {
        free(s->b);
        s->b = NULL;
    }
    return rc;
}

static int q_decode(const struct qblk *b, struct store_point *buf, size_t *n)
{
    int rc = store_block_decode(b->p, b->len, buf, QBLK_PTS, n);
    return rc == -ENOBUFS ? -EBADMSG : rc;
}

int store_metric_steps(struct store_txn *t, const uint8_t run[16], const char *key,
                       int64_t start_step, int64_t end_step,
                       int (*cb)(const struct store_point *pts, size_t n, void *arg), void *arg)
{
    struct qseries s;
    int rc = q_blocks(t, run, key, &s);
    if (rc < 0)
        return rc;
    struct store_point *buf = malloc(QBLK_PTS * sizeof *buf);
    if (!buf)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < s.n; i++) {
        size_t n, kept = 0;
        if ((rc = q_decode(&s.b[i], buf, &n)) < 0)
            break;
        for (size_t j = 0; j < n; j++) /* compacted in place, order kept */
            if (buf[j].step >= start_step && buf[j].step <= end_step)
                buf[kept++] = buf[j];
        if (kept)
            rc = cb(buf, kept, arg);
    }
    free(buf);
    free(s.b);
    return rc;
}

/* ---- the view ---- */

enum { Q_FIRST, Q_MIN, Q_MAX, Q_LAST, Q_GAP, Q_SLOTS };

struct qbucket {
    struct store_point p[Q_SLOTS];
    uint64_t idx[Q_SLOTS]; /* index of each kept point in the series: order and identity */
    uint8_t have;          /* bit per slot */
};

struct qacc {
    int64_t lo, hi;        /* the step range the buckets divide */
    double scale;          /* buckets per step */
    size_t nb;
    struct qbucket *b;
    /* what the pass saw of the points in [start, end] */
    uint64_t count;
    int64_t min_step, max_step;
    bool outside;          /* a point in range fell outside [lo, hi] */
    /* the points in range, in logged order, while there are at most max of them */
    struct store_point *raw;
    size_t max;
};

static inline size_t q_bucket_of(const struct qacc *a, int64_t step)
{
    size_t bi = (size_t)((double)(uint64_t)(step - a->lo) * a->scale);
    return bi < a->nb ? bi : a->nb - 1;
}

static inline void q_add(struct qacc *a, const struct store_point *p, uint64_t idx)
{
    if (p->step < a->lo || p->step > a->hi) {
        a->outside = true;
        return;
    }
    struct qbucket *b = &a->b[q_bucket_of(a, p->step)];
    if (!b->have) {
        b->p[Q_FIRST] = b->p[Q_LAST] = *p;
        b->idx[Q_FIRST] = b->idx[Q_LAST] = idx;
        b->have = 1u << Q_FIRST | 1u << Q_LAST;
    } else {
        /* ties on step: the earlier logged point is first, the later one last */
        if (p->step < b->p[Q_FIRST].step) {
            b->p[Q_FIRST] = *p;
            b->idx[Q_FIRST] = idx;
        }
        if (p->step >= b->p[Q_LAST].step) {
            b->p[Q_LAST] = *p;
            b->idx[Q_LAST] = idx;
        }
    }
    double v = p->value;
    if (isfinite(v)) {
        if (!(b->have & 1u << Q_MIN) || v < b->p[Q_MIN].value) {
            b->p[Q_MIN] = *p;
            b->idx[Q_MIN] = idx;
            b->have |= 1u << Q_MIN;
        }
        if (!(b->have & 1u << Q_MAX) || v > b->p[Q_MAX].value) {
            b->p[Q_MAX] = *p;
            b->idx[Q_MAX] = idx;
            b->have |= 1u << Q_MAX;
        }
    } else if (!(b->have & 1u << Q_GAP) || p->step < b->p[Q_GAP].step) {
        b->p[Q_GAP] = *p;
        b->idx[Q_GAP] = idx;
        b->have |= 1u << Q_GAP;
    }
}

/* The last step in [from, a->hi] that falls in bucket bi (the bucket of step `from`). */
static int64_t q_bucket_end(const struct qacc *a, size_t bi, int64_t from)
{
    if (bi + 1 >= a->nb)
        return a->hi;
    /* estimate where bucket bi + 1 starts, then correct the rounding step by step */
    double d = ceil((double)(bi + 1) / a->scale);
    int64_t e = d >= (double)(uint64_t)(a->hi - a->lo)
                    ? a->hi
                    : (int64_t)((uint64_t)a->lo + (uint64_t)d) - 1;
    if (e < from)
        e = from;
    while (e < a->hi && q_bucket_of(a, e + 1) == bi)
        e++;
    while (e > from && q_bucket_of(a, e) != bi)
        e--;
    return e;
}

/* Points p[0..n), logged one after the other from series index idx, with non-decreasing
 * steps all in bucket bi: what q_add does point by point, in one tight loop. */
static void q_add_run(struct qacc *a, size_t bi, const struct store_point *p, size_t n,
                      uint64_t idx)
{
    struct qbucket *b = &a->b[bi];
    size_t imin = SIZE_MAX, imax = SIZE_MAX, igap = SIZE_MAX;
    double vmin = 0, vmax = 0;
    for (size_t i = 0; i < n; i++) {
        double v = p[i].value;
        if (!isfinite(v)) {
            if (igap == SIZE_MAX)
                igap = i;
        } else if (imin == SIZE_MAX) {
            vmin = vmax = v;
            imin = imax = i;
        } else {
            if (v < vmin) {
                vmin = v;
                imin = i;
            }
            if (v > vmax) {
                vmax = v;
                imax = i;
            }
        }
    }
    if (!b->have) {
        b->p[Q_FIRST] = p[0];
        b->idx[Q_FIRST] = idx;
        b->p[Q_LAST] = p[n - 1];
        b->idx[Q_LAST] = idx + n - 1;
        b->have = 1u << Q_FIRST | 1u << Q_LAST;
    } else {
        if (p[0].step < b->p[Q_FIRST].step) {
            b->p[Q_FIRST] = p[0];
            b->idx[Q_FIRST] = idx;
        }
        if (p[n - 1].step >= b->p[Q_LAST].step) {
            b->p[Q_LAST] = p[n - 1];
            b->idx[Q_LAST] = idx + n - 1;
        }
    }
    if (imin != SIZE_MAX) {
        if (!(b->have & 1u << Q_MIN) || vmin < b->p[Q_MIN].value) {
            b->p[Q_MIN] = p[imin];
            b->idx[Q_MIN] = idx + imin;
        }
        if (!(b->have & 1u << Q_MAX) || vmax > b->p[Q_MAX].value) {
            b->p[Q_MAX] = p[imax];
            b->idx[Q_MAX] = idx + imax;
        }
        b->have |= 1u << Q_MIN | 1u << Q_MAX;
    }
    if (igap != SIZE_MAX && (!(b->have & 1u << Q_GAP) || p[igap].step < b->p[Q_GAP].step)) {
        b->p[Q_GAP] = p[igap];
        b->idx[Q_GAP] = idx + igap;
        b->have |= 1u << Q_GAP;
    }
}

/* A decoded block whose steps do not decrease and all lie in [lo, hi] and [start, end] (the
 * usual case): bucketed run by run instead of point by point. False, with nothing done, for
 * any other block. */
static bool q_block_fast(struct qacc *a, const struct store_point *p, size_t n, uint64_t idx,
                         int64_t start, int64_t end)
{
    int64_t lo = a->lo > start ? a->lo : start, hi = a->hi < end ? a->hi : end;
    if (n == 0 || p[0].step < lo || p[n - 1].step > hi)
        return false;
    for (size_t j = 1; j < n; j++)
        if (p[j].step < p[j - 1].step)
            return false;
    if (a->count < a->max) {
        size_t take = a->max - a->count < n ? (size_t)(a->max - a->count) : n;
        memcpy(a->raw + a->count, p, take * sizeof *p);
    }
    a->count += n;
    if (p[0].step < a->min_step)
        a->min_step = p[0].step;
    if (p[n - 1].step > a->max_step)
        a->max_step = p[n - 1].step;
    if (!a->nb)
        return true;
    for (size_t j = 0; j < n;) {
        size_t bi = q_bucket_of(a, p[j].step), k = n;
        int64_t bend = q_bucket_end(a, bi, p[j].step);
        if (p[n - 1].step > bend)
            for (k = j + 1; p[k].step <= bend; k++) /* stops before n: p[n - 1] is past bend */
                ;
        q_add_run(a, bi, p + j, k - j, idx + j);
        j = k;
    }
    return true;
}

/* One pass over the blocks: the points in [start, end] into the buckets (when a->nb) and,
 * while they fit, into a->raw. */
static int q_pass(const struct qseries *s, struct store_point *buf, int64_t start, int64_t end,
                  struct qacc *a)
{
    uint64_t idx = 0;
    a->count = 0;
    a->outside = false;
    a->min_step = INT64_MAX;
    a->max_step = INT64_MIN;
    for (size_t i = 0; i < s->n; i++) {
        size_t n;
        int rc = q_decode(&s->b[i], buf, &n);
        if (rc < 0)
            return rc;
        if (q_block_fast(a, buf, n, idx, start, end)) {
            idx += n;
            continue;
        }
        for (size_t j = 0; j < n; j++, idx++) {
            const struct store_point *p = &buf[j];
            if (p->step < start || p->step > end)
                continue;
            if (a->count < a->max)
                a->raw[a->count] = *p;
            a->count++;
            if (p->step < a->min_step)
                a->min_step = p->step;
            if (p->step > a->max_step)
                a->max_step = p->step;
            if (a->nb)
                q_add(a, p, idx);
        }
    }
    return 0;
}

static void q_set_range(struct qacc *a, int64_t lo, int64_t hi)
{
    a->lo = lo;
    a->hi = hi;
    /* (hi - lo + 1) steps over nb buckets; as a double, which keeps bucket order monotonic */
    a->scale = (double)a->nb / ((double)(uint64_t)(hi - lo) + 1.0);
    memset(a->b, 0, a->nb * sizeof *a->b);
}

/* Merges bucket src into dst (src's steps all follow dst's). */
static void q_merge(struct qbucket *dst, const struct qbucket *src)
{
    if (!src->have)
        return;
    if (!dst->have) {
        *dst = *src;
        return;
    }
    dst->p[Q_LAST] = src->p[Q_LAST];
    dst->idx[Q_LAST] = src->idx[Q_LAST];
    bool dm = dst->have & 1u << Q_MIN, sm = src->have & 1u << Q_MIN;
    if (sm && (!dm || src->p[Q_MIN].value < dst->p[Q_MIN].value)) {
        dst->p[Q_MIN] = src->p[Q_MIN];
        dst->idx[Q_MIN] = src->idx[Q_MIN];
    }
    if (sm && (!dm || src->p[Q_MAX].value > dst->p[Q_MAX].value)) {
        dst->p[Q_MAX] = src->p[Q_MAX];
        dst->idx[Q_MAX] = src->idx[Q_MAX];
    }
    if (!(dst->have & 1u << Q_GAP) && (src->have & 1u << Q_GAP)) {
        dst->p[Q_GAP] = src->p[Q_GAP];
        dst->idx[Q_GAP] = src->idx[Q_GAP];
    }
    dst->have |= src->have;
}

/* The distinct points a bucket keeps, in step order (then logged order): at most Q_SLOTS.
 * With one_each (views of fewer than 4 points), only its last point. */
static size_t q_emit(const struct qbucket *b, bool one_each, struct store_point *out)
{
    if (!b->have)
        return 0;
    if (one_each) {
        out[0] = b->p[Q_LAST];
        return 1;
    }
    unsigned sel[Q_SLOTS];
    size_t n = 0;
    for (unsigned s = 0; s < Q_SLOTS; s++) {
        if (!(b->have & 1u << s))
            continue;
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup |= b->idx[sel[i]] == b->idx[s];
        if (dup)
            continue;
        size_t i = n++; /* insertion by (step, idx) */
        while (i > 0 && (b->p[sel[i - 1]].step > b->p[s].step ||
                         (b->p[sel[i - 1]].step == b->p[s].step && b->idx[sel[i - 1]] > b->idx[s]))) {
            sel[i] = sel[i - 1];
            i--;
        }
        sel[i] = s;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = b->p[sel[i]];
    return n;
}

static size_t q_emitted(const struct qacc *a, bool one_each)
{
    struct store_point tmp[Q_SLOTS];
    size_t total = 0;
    for (size_t i = 0; i < a->nb; i++)
        total += q_emit(&a->b[i], one_each, tmp);
    return total;
}

/* Views of what would be more than max points (buckets holding gaps besides their four):
 * merges neighbouring buckets, k at a time, until the view fits. */
static void q_fit(struct qacc *a, bool one_each)
{
    size_t total = q_emitted(a, one_each);
    while (total > a->max && a->nb > 1) {
        size_t k = total / a->max + 1, nb = 0;
        for (size_t i = 0; i < a->nb; i += k, nb++) {
            struct qbucket m = a->b[i];
            for (size_t j = i + 1; j < i + k && j < a->nb; j++)
                q_merge(&m, &a->b[j]);
            a->b[nb] = m;
        }
        a->nb = nb;
        total = q_emitted(a, one_each);
    }
}

void store_metric_view_free(struct store_metric_view *v)
{
    if (!v)
        return;
    free(v->pts);
    v->pts = NULL;
    v->n = 0;
}

/* The step range the headers suggest, within [start, end]: exact for growing steps. */
static void q_guess(const struct qseries *s, int64_t start, int64_t end, int64_t *lo,
                    int64_t *hi)
{
    int64_t l = INT64_MAX, h = INT64_MIN;
    for (size_t i = 0; i < s->n; i++) {
        const uint8_t *p = s->b[i].p;
        if (st_rd_le16(p + 2) == 0)
            continue;
        int64_t f = (int64_t)st_rd_le64(p + 8), e = (int64_t)st_rd_le64(p + 16);
        int64_t a = f < e ? f : e, b = f < e ? e : f;
        if (a < l)
            l = a;
        if (b > h)
            h = b;
    }
    if (l < start)
        l = start;
    if (h > end)
        h = end;
    if (l > h) { /* nothing to go by: the whole range, corrected by a second pass */
        l = start;
        h = end;
    }
    *lo = l;
    *hi = h;
}

int store_metric_view(struct store_txn *t, const uint8_t run[16], const char *key,
                      int64_t start_step, int64_t end_step, size_t max_points,
                      struct store_metric_view *out)
{
    *out = (struct store_metric_view){0};
    if (max_points == 0 || start_step > end_step)
        return -EINVAL;
    struct qseries s;
    int rc = q_blocks(t, run, key, &s);
    if (rc < 0)
        return rc;
    bool one_each = max_points < 4;
    struct qacc a = {.max = max_points, .nb = one_each ? max_points : max_points / 4};
    struct store_point *buf = malloc(QBLK_PTS * sizeof *buf);
    /* room for one bucket's worth more: a one-bucket view of 4 points may hold a gap too */
    a.raw = malloc((max_points + Q_SLOTS) * sizeof *a.raw);
    a.b = malloc(a.nb * sizeof *a.b);
    if (!buf || !a.raw || !a.b) {
        rc = -ENOMEM;
        goto out;
    }
    int64_t lo, hi;
    q_guess(&s, start_step, end_step, &lo, &hi);
    q_set_range(&a, lo, hi);
    if ((rc = q_pass(&s, buf, start_step, end_step, &a)) < 0)
        goto out;
    out->count = a.count;
    if (a.count <= max_points) { /* small enough: as logged */
        out->pts = a.raw;
        out->n = (size_t)a.count;
        a.raw = NULL;
        goto out;
    }
    /* the guess missed points, or wasted more than half of the buckets: again, exactly */
    uint64_t guess_span = (uint64_t)(hi - lo), true_span = (uint64_t)(a.max_step - a.min_step);
    if (a.outside || true_span < guess_span / 2) {
        q_set_range(&a, a.min_step, a.max_step);
        size_t keep = a.max;
        a.max = 0; /* raw points are not wanted this time */
        rc = q_pass(&s, buf, start_step, end_step, &a);
        a.max = keep;
        if (rc < 0)
            goto out;
    }
    q_fit(&a, one_each);
    /* a.raw is free now: the view goes there */
    size_t n = 0;
    for (size_t i = 0; i < a.nb; i++)
        n += q_emit(&a.b[i], one_each, a.raw + n);
    out->pts = a.raw;
    out->n = n < max_points ? n : max_points;
    out->downsampled = true;
    a.raw = NULL;
out:
    free(a.raw);
    free(a.b);
    free(buf);
    free(s.b);
    return rc;
}
