/* search.c — runs/search and experiments/search over the store: gather what matches the
 * filter, order it, and cut out one page (search.h has the contract; search_filter.c the
 * language).
 *
 * A query walks every run once (store_run_foreach), drops those outside the experiments and
 * the view, then tries the filter's clauses cheapest first, so that a run's params, tags and
 * metrics are read (one point lookup per clause) only when its own fields matched. Sort keys
 * are read for the survivors only. Pages are offsets into the ordered result, as MLflow's own
 * stores do; the token binds the offset to a digest of the query so that a token handed back
 * with another filter or order is refused rather than silently skipping runs.
 */
#include "search_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- page tokens ------------------------------------------------------------------------ */

#define TOKEN_VERSION 1u
#define TOKEN_BYTES 17u /* version, offset (u64 LE), check (u64 LE) */

/* FNV-1a: a digest to tell queries apart, not a defence against forged tokens (a forged
 * token can only ask for another offset of a query its holder may run anyway). */
static void fnv(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
}

static void fnv_str(uint64_t *h, const char *s)
{
    if (s)
        fnv(h, s, strlen(s));
    fnv(h, "", 1); /* a separator, so that ("ab", "c") and ("a", "bc") differ */
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The check binds the offset to the query: a token of another query, or a damaged one,
 * fails it. */
static uint64_t token_check(uint64_t offset, uint64_t digest)
{
    uint64_t h = digest;
    fnv(&h, &offset, sizeof offset);
    return h;
}

static void token_make(char *out, size_t len, uint64_t offset, uint64_t digest)
{
    uint8_t b[TOKEN_BYTES + 1] = {TOKEN_VERSION};
    digest = token_check(offset, digest);
    for (int i = 0; i < 8; i++) {
        b[1 + i] = (uint8_t)(offset >> (8 * i));
        b[9 + i] = (uint8_t)(digest >> (8 * i));
    }
    size_t o = 0;
    for (size_t i = 0; i < TOKEN_BYTES && o + 5 < len; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
        size_t chars = TOKEN_BYTES - i >= 3 ? 4 : TOKEN_BYTES - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = b64[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

static int token_parse(const char *tok, uint64_t digest, uint64_t *offset, char *err,
                       size_t errlen)
{
    uint8_t b[TOKEN_BYTES + 3] = {0};
    size_t n = strlen(tok), nb = 0;
    uint32_t acc = 0;
    int bits = 0;
    bool ok = n == (TOKEN_BYTES * 4 + 2) / 3;
    for (size_t i = 0; ok && i < n; i++) {
        const char *d = strchr(b64, tok[i]);
        if (!d || !tok[i]) {
            ok = false;
            break;
        }
        acc = acc << 6 | (uint32_t)(d - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            b[nb++] = (uint8_t)(acc >> bits);
        }
    }
    if (!ok || nb != TOKEN_BYTES || b[0] != TOKEN_VERSION) {
        snprintf(err, errlen, "invalid page_token '%.40s%s': not a token that a search here "
                              "returned", tok, n > 40 ? "..." : "");
        return -EINVAL;
    }
    uint64_t off = 0, dg = 0;
    for (int i = 7; i >= 0; i--) {
        off = off << 8 | b[1 + i];
        dg = dg << 8 | b[9 + i];
    }
    if (dg != token_check(off, digest)) {
        snprintf(err, errlen, "invalid page_token: it belongs to another query (a different "
                              "filter, order_by, experiments or view) or was damaged; start "
                              "again without it");
        return -EINVAL;
    }
    *offset = off;
    return 0;
}

static int check_max(size_t *max, char *err, size_t errlen)
{
    if (*max == 0)
        *max = STORE_SEARCH_DEFAULT_MAX;
    if (*max > STORE_SEARCH_MAX_MAX) {
        snprintf(err, errlen, "invalid max_results %zu: at most %u", *max,
                 STORE_SEARCH_MAX_MAX);
        return -EINVAL;
    }
    return 0;
}

static int check_view(int *view, char *err, size_t errlen)
{
    if (*view == 0)
        *view = STORE_VIEW_ACTIVE;
    if (*view < STORE_VIEW_ACTIVE || *view > STORE_VIEW_ALL) {
        snprintf(err, errlen, "invalid view %d: use active, deleted or all", *view);
        return -EINVAL;
    }
    return 0;
}

/* What a page token is bound to: the query's kind, experiments, filter, view and order. */
static uint64_t query_digest(const char *kind, const uint64_t *experiments, size_t n_experiments,
                             const char *filter, int view, const char *const *order_by,
                             size_t n_order_by)
{
    uint64_t d = 0xcbf29ce484222325ull;
    fnv_str(&d, kind);
    for (size_t i = 0; i < n_experiments; i++)
        fnv(&d, &experiments[i], sizeof experiments[i]);
    fnv_str(&d, filter);
    fnv(&d, &view, sizeof view);
    for (size_t i = 0; i < n_order_by; i++)
        fnv_str(&d, order_by[i]);
    return d;
}

/* Where a page of a search stands: max_results and view checked (defaults filled in), the
 * query's digest, and the offset its page_token gives (0: the first page). */
struct page {
    size_t max;
    int view;
    uint64_t digest, offset;
};

static int page_check(struct page *pg, size_t max, int view, char *err, size_t errlen)
{
    *pg = (struct page){.max = max, .view = view};
    int rc = check_max(&pg->max, err, errlen);
    return rc == 0 ? check_view(&pg->view, err, errlen) : rc;
}

/* The token must come from a query with the same digest (of the checked view). */
static int page_seek(struct page *pg, uint64_t digest, const char *token, char *err,
                     size_t errlen)
{
    pg->digest = digest;
    return token && *token ? token_parse(token, digest, &pg->offset, err, errlen) : 0;
}

/* How many of total hits the page holds: 0 when it starts past them. */
static size_t page_len(const struct page *pg, size_t total)
{
    if (pg->offset >= total)
        return 0;
    return total - pg->offset < pg->max ? total - (size_t)pg->offset : pg->max;
}

/* The next page's token, when hits remain after the n of this one. */
static void page_next(const struct page *pg, size_t n, size_t total, char *tok, size_t len)
{
    if (pg->offset + n < total)
        token_make(tok, len, pg->offset + n, pg->digest);
}

static bool in_view(int view, bool deleted)
{
    return deleted ? (view & STORE_VIEW_DELETED) != 0 : (view & STORE_VIEW_ACTIVE) != 0;
}

/* ---- ordering --------------------------------------------------------------------------- */

struct order {
    struct sf_ident id;
    bool asc;
};

static void orders_free(struct order *o, size_t n)
{
    for (size_t i = 0; o && i < n; i++)
        sf_ident_free(&o[i].id);
    free(o);
}

static int orders_parse(const char *const *texts, size_t n, enum sf_target target,
                        struct order **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n == 0)
        return 0;
    struct order *o = calloc(n, sizeof *o);
    if (!o)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = sf_parse_order(texts[i], target, &o[i].id, &o[i].asc, err, errlen);
        if (rc < 0) {
            orders_free(o, i);
            return rc;
        }
    }
    *out = o;
    return 0;
}

/* A sort key's value: a number or a string (in the hit list's string pool), NaN, or missing.
 * Values sort before NaN, NaN before missing, in either direction (MLflow's rule). */
enum { SV_VALUE, SV_NAN, SV_MISSING };
struct sortval {
    uint8_t state;
    bool str;
    double num;
    size_t off, len;
};

struct hit {
    uint8_t id[16];
    int64_t start_ms;
    size_t vals; /* index of its first sort value */
};

struct hits {
    struct hit *v;
    size_t n, cap;
    struct sortval *vals;
    size_t nvals, capvals;
    char *pool;
    size_t npool, cappool;
};

static void hits_free(struct hits *h)
{
    free(h->v);
    free(h->vals);
    free(h->pool);
}

static int grow(void *arrp, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *nv = realloc(*(void **)arrp, nc * size);
    if (!nv)
        return -ENOMEM;
    *(void **)arrp = nv;
    *cap = nc;
    return 0;
}

static int sv_string(struct hits *h, struct sortval *sv, const char *s, size_t n)
{
    if (grow(&h->pool, &h->cappool, h->npool + n, 1) < 0)
        return -ENOMEM;
    memcpy(h->pool + h->npool, s, n);
    sv->str = true;
    sv->off = h->npool;
    sv->len = n;
    h->npool += n;
    return 0;
}

/* The value of one order_by key for run r. */
static int run_sortval(struct store_txn *t, struct hits *h, const struct store_run *r,
                       const struct sf_ident *id, struct sortval *sv)
{
    const char *s = NULL;
    size_t n = 0;
    char buf[128];
    int rc;
    memset(sv, 0, sizeof *sv);
    switch (id->kind) {
    case SF_METRIC: {
        struct store_metric_summary sum;
        rc = store_metric_summary_get(t, r->id, id->key, &sum);
        if (rc == -ENOENT || rc == -ENAMETOOLONG) {
            sv->state = SV_MISSING;
            return 0;
        }
        if (rc < 0)
            return rc;
        sv->num = sum.latest.value;
        sv->state = isnan(sv->num) ? SV_NAN : SV_VALUE;
        return 0;
    }
    case SF_PARAM:
    case SF_TAG:
        rc = id->kind == SF_PARAM ? store_param_get(t, r->id, id->key, &s, &n)
                                  : store_tag_get(t, r->id, id->key, &s, &n);
        if (rc == -ENOENT && id->kind == SF_TAG && r->name[0] &&
            strcmp(id->key, "mlflow.runName") == 0) {
            s = r->name;
            n = strlen(s);
            rc = 0;
        }
        if (rc == -ENOENT) {
            sv->state = SV_MISSING;
            return 0;
        }
        return rc < 0 ? rc : sv_string(h, sv, s, n);
    default: {
        double num = 0;
        if (!sf_run_attr(r, id->attr, buf, sizeof buf, &s, &num) ||
            (id->attr == SF_START_TIME && r->start_ms == 0)) {
            sv->state = SV_MISSING; /* no end yet; a placeholder's unknown start */
            return 0;
        }
        if (!sf_attr_numeric(id->attr))
            return sv_string(h, sv, s, strlen(s));
        sv->num = num;
        return 0;
    }
    }
}

static int cmp_sortval(const struct sortval *a, const struct sortval *b, const char *pool,
                       bool asc)
{
    if (a->state != b->state)
        return a->state < b->state ? -1 : 1;
    if (a->state != SV_VALUE)
        return 0;
    int c;
    if (a->str) {
        size_t n = a->len < b->len ? a->len : b->len;
        c = memcmp(pool + a->off, pool + b->off, n);
        if (c == 0)
            c = a->len < b->len ? -1 : a->len > b->len;
    } else {
        c = a->num < b->num ? -1 : a->num > b->num;
    }
    return asc ? c : -c;
}

struct run_sort_ctx {
    const struct hits *h;
    const struct order *o;
    size_t n;
};

/* The order_by keys, then MLflow's default: start time, newest first (unknown last), then
 * run id. */
static int cmp_hits(const void *pa, const void *pb, void *arg)
{
    const struct run_sort_ctx *x = arg;
    const struct hit *a = pa, *b = pb;
    for (size_t i = 0; i < x->n; i++) {
        int c = cmp_sortval(&x->h->vals[a->vals + i], &x->h->vals[b->vals + i], x->h->pool,
                            x->o[i].asc);
        if (c)
            return c;
    }
    if (a->start_ms != b->start_ms) {
        if (!a->start_ms || !b->start_ms)
            return a->start_ms ? -1 : 1;
        return a->start_ms > b->start_ms ? -1 : 1;
    }
    return memcmp(a->id, b->id, 16);
}

/* ---- runs ------------------------------------------------------------------------------- */

struct run_scan {
    struct store_txn *t;
    const struct store_run_query *q;
    int view;
    const struct store_filter *f;
    const struct order *o;
    size_t no;
    struct hits h;
};

static int scan_run(const struct store_run *r, void *arg)
{
    struct run_scan *x = arg;
    if (!in_view(x->view, r->deleted))
        return 0;
    if (x->q->n_experiments) {
        size_t i = 0;
        while (i < x->q->n_experiments && x->q->experiment_ids[i] != r->experiment_id)
            i++;
        if (i == x->q->n_experiments)
            return 0;
    }
    int rc = store_filter_match_run(x->t, x->f, r);
    if (rc <= 0)
        return rc;
    struct hits *h = &x->h;
    if (grow(&h->v, &h->cap, h->n + 1, sizeof *h->v) < 0 ||
        grow(&h->vals, &h->capvals, h->nvals + x->no, sizeof *h->vals) < 0)
        return -ENOMEM;
    struct hit *e = &h->v[h->n];
    memcpy(e->id, r->id, 16);
    e->start_ms = r->start_ms;
    e->vals = h->nvals;
    for (size_t i = 0; i < x->no; i++)
        if ((rc = run_sortval(x->t, h, r, &x->o[i].id, &h->vals[h->nvals + i])) < 0)
            return rc;
    h->nvals += x->no;
    h->n++;
    return 0;
}

static uint64_t run_query_digest(const struct store_run_query *q, int view)
{
    return query_digest("runs", q->experiment_ids, q->n_experiments, q->filter, view,
                        q->order_by, q->n_order_by);
}

int store_search_runs(struct store_txn *t, const struct store_run_query *q,
                      struct store_run_page *out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (!t || !q || (q->n_experiments && !q->experiment_ids) ||
        (q->n_order_by && !q->order_by)) {
        snprintf(err, errlen, "invalid search: no transaction, query, or a list without items");
        return -EINVAL;
    }
    struct page pg;
    int rc = page_check(&pg, q->max_results, q->view, err, errlen);
    if (rc == 0)
        rc = page_seek(&pg, run_query_digest(q, pg.view), q->page_token, err, errlen);
    if (rc < 0)
        return rc;

    struct run_scan x = {.t = t, .q = q, .view = pg.view, .no = q->n_order_by};
    struct store_filter *f = NULL;
    struct order *o = NULL;
    if ((rc = store_filter_parse(q->filter, &f, err, errlen)) < 0)
        return rc;
    if ((rc = orders_parse(q->order_by, q->n_order_by, SF_RUNS, &o, err, errlen)) < 0) {
        store_filter_free(f);
        return rc;
    }
    x.f = f;
    x.o = o;
    rc = store_run_foreach(t, scan_run, &x);
    if (rc == 0 && x.h.n) {
        struct run_sort_ctx sc = {&x.h, o, x.no};
        qsort_r(x.h.v, x.h.n, sizeof *x.h.v, cmp_hits, &sc);
    }
    size_t n = rc == 0 ? page_len(&pg, x.h.n) : 0;
    if (n) {
        out->ids = malloc(n * sizeof *out->ids);
        if (!out->ids) {
            rc = -ENOMEM;
        } else {
            for (size_t i = 0; i < n; i++)
                memcpy(out->ids[i], x.h.v[pg.offset + i].id, 16);
            out->n = n;
            page_next(&pg, n, x.h.n, out->next_page_token, sizeof out->next_page_token);
        }
    }
    hits_free(&x.h);
    orders_free(o, q->n_order_by);
    store_filter_free(f);
    return rc < 0 ? rc : 0;
}

void store_run_page_free(struct store_run_page *p)
{
    if (!p)
        return;
    free(p->ids);
    p->ids = NULL;
    p->n = 0;
}

/* ---- experiments ------------------------------------------------------------------------ */

struct exp_scan {
    struct store_txn *t;
    const struct store_filter *f;
    int view;
    struct store_experiment *v;
    size_t n, cap;
};

static int scan_experiment(const struct store_experiment *e, void *arg)
{
    struct exp_scan *x = arg;
    if (!in_view(x->view, e->deleted))
        return 0;
    int rc = sf_match_experiment(x->t, x->f, e);
    if (rc <= 0)
        return rc;
    if (grow(&x->v, &x->cap, x->n + 1, sizeof *x->v) < 0)
        return -ENOMEM;
    x->v[x->n++] = *e;
    return 0;
}

struct exp_sort_ctx {
    const struct order *o;
    size_t n;
};

static int cmp_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

static int cmp_exp_key(const struct store_experiment *a, const struct store_experiment *b,
                       enum sf_attr k)
{
    switch (k) {
    case SF_EXP_NAME: return strcmp(a->name, b->name);
    case SF_EXP_ID: return a->id < b->id ? -1 : a->id > b->id;
    case SF_CREATION_TIME: return cmp_i64(a->created_ms, b->created_ms);
    default: return cmp_i64(a->updated_ms, b->updated_ms);
    }
}

/* The order_by keys, then creation time, newest first, then id ascending (MLflow's SQL
 * store's default and tie-breaker). */
static int cmp_exps(const void *pa, const void *pb, void *arg)
{
    const struct exp_sort_ctx *x = arg;
    const struct store_experiment *a = pa, *b = pb;
    for (size_t i = 0; i < x->n; i++) {
        int c = cmp_exp_key(a, b, x->o[i].id.attr);
        if (c)
            return x->o[i].asc ? c : -c;
    }
    if (x->n == 0 && a->created_ms != b->created_ms)
        return a->created_ms > b->created_ms ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static uint64_t exp_query_digest(const struct store_exp_query *q, int view)
{
    return query_digest("experiments", NULL, 0, q->filter, view, q->order_by, q->n_order_by);
}

int store_search_experiments(struct store_txn *t, const struct store_exp_query *q,
                             struct store_exp_page *out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (!t || !q || (q->n_order_by && !q->order_by)) {
        snprintf(err, errlen, "invalid search: no transaction, query, or a list without items");
        return -EINVAL;
    }
    struct page pg;
    int rc = page_check(&pg, q->max_results, q->view, err, errlen);
    if (rc == 0)
        rc = page_seek(&pg, exp_query_digest(q, pg.view), q->page_token, err, errlen);
    if (rc < 0)
        return rc;

    struct store_filter *f = NULL;
    struct order *o = NULL;
    if ((rc = store_filter_parse_experiments(q->filter, &f, err, errlen)) < 0)
        return rc;
    if ((rc = orders_parse(q->order_by, q->n_order_by, SF_EXPERIMENTS, &o, err, errlen)) < 0) {
        store_filter_free(f);
        return rc;
    }
    struct exp_scan x = {.t = t, .f = f, .view = pg.view};
    rc = store_experiment_foreach(t, scan_experiment, &x);
    if (rc == 0 && x.n) {
        struct exp_sort_ctx sc = {o, q->n_order_by};
        qsort_r(x.v, x.n, sizeof *x.v, cmp_exps, &sc);
    }
    size_t n = rc == 0 ? page_len(&pg, x.n) : 0;
    if (n) {
        out->ids = malloc(n * sizeof *out->ids);
        if (!out->ids) {
            rc = -ENOMEM;
        } else {
            for (size_t i = 0; i < n; i++)
                out->ids[i] = x.v[pg.offset + i].id;
            out->n = n;
            page_next(&pg, n, x.n, out->next_page_token, sizeof out->next_page_token);
        }
    }
    free(x.v);
    orders_free(o, q->n_order_by);
    store_filter_free(f);
    return rc < 0 ? rc : 0;
}

void store_exp_page_free(struct store_exp_page *p)
{
    if (!p)
        return;
    free(p->ids);
    p->ids = NULL;
    p->n = 0;
}
