/* test_store_journal.c — the replication journal (issue 5): one op per change with the right
 * fields and consecutive seqs, nothing without STORE_JOURNAL, reading, trimming and seqs that
 * never come back; metric points read back by index (store_metric_range), also over blocks
 * that an older version wrote without an index; the server's peers; stores from before the
 * journal, opened read-only and writable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "fixture.h"
#include "store_internal.h" /* raw LMDB access, to make a store look like an older one */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) { return xorshift64(&rng); }

/* ---- helpers ---- */

/* A copy of an op whose strings outlive the transaction. */
struct op_copy {
    struct store_op op;
    char experiment[512], name[256], user[64], host[256], key[1024], value[1024];
};

struct ops {
    struct op_copy *v;
    size_t n, cap;
};

static void cpy(char *dst, size_t len, const char *src, const char **field)
{
    if (!src) {
        *field = NULL;
        return;
    }
    assert_true(strlen(src) < len);
    strcpy(dst, src);
    *field = dst;
}

static int ops_cb(const struct store_op *op, void *arg)
{
    struct ops *o = arg;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->v = realloc(o->v, o->cap * sizeof *o->v);
        assert_non_null(o->v);
        /* the copies point into themselves: point them at where they are now */
        for (size_t i = 0; i < o->n; i++) {
            struct op_copy *c = &o->v[i];
#define REPOINT(f) if (c->op.f) c->op.f = c->f
            REPOINT(experiment);
            REPOINT(name);
            REPOINT(user);
            REPOINT(host);
            REPOINT(key);
            REPOINT(value);
#undef REPOINT
        }
    }
    struct op_copy *c = &o->v[o->n++];
    c->op = *op;
    cpy(c->experiment, sizeof c->experiment, op->experiment, &c->op.experiment);
    cpy(c->name, sizeof c->name, op->name, &c->op.name);
    cpy(c->user, sizeof c->user, op->user, &c->op.user);
    cpy(c->host, sizeof c->host, op->host, &c->op.host);
    cpy(c->key, sizeof c->key, op->key, &c->op.key);
    cpy(c->value, sizeof c->value, op->value, &c->op.value);
    return 0;
}

static void read_ops(struct store *s, uint64_t from, size_t max, struct ops *o)
{
    free(o->v);
    memset(o, 0, sizeof *o);
    struct store_txn *t;
    assert_int_equal(store_begin(s, false, &t), 0);
    assert_int_equal(store_journal_read(t, from, max, ops_cb, o), 0);
    store_abort(t);
}

static void bounds(struct store *s, uint64_t *first, uint64_t *next)
{
    struct store_txn *t;
    assert_int_equal(store_begin(s, false, &t), 0);
    assert_int_equal(store_journal_bounds(t, first, next), 0);
    store_abort(t);
}

static struct store *open_store(const char *dir, unsigned flags)
{
    struct store *s;
    assert_int_equal(store_open(&s, dir, flags, 0), 0);
    return s;
}

/* A scratch store opened with STORE_JOURNAL (the fixture's has no journal). */
static int jx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !scratch_dir(f->dir) ||
        store_open(&f->s, f->dir, STORE_NOSYNC | STORE_JOURNAL, 0) != 0)
        return -1;
    *state = f;
    return 0;
}
#define JX_TEST(fn) cmocka_unit_test_setup_teardown(fn, jx_setup, fx_teardown)

static void tag(struct store *s, const uint8_t run[16], const char *k, const char *v)
{
    struct store_txn *t;
    assert_int_equal(store_begin(s, true, &t), 0);
    assert_int_equal(store_tag_set(t, run, k, v), 0);
    assert_int_equal(store_commit(t), 0);
}

/* Every kind of change once, plus the calls that must not be journaled. */
static void change_everything(struct store *s, const uint8_t run[16], const uint8_t parent[16])
{
    struct store_txn *t;
    assert_int_equal(store_begin(s, true, &t), 0);
    uint64_t exp;
    assert_int_equal(store_experiment_ensure(t, "exp one", 1000, &exp), 0);
    assert_int_equal(store_run_claim(t, run, 1000), 0);
    assert_int_equal(store_run_touch(t, run), 0);
    struct store_run r = {.experiment_id = exp, .status = STORE_RUN_SCHEDULED,
                          .start_ms = 1700000000123, .has_parent = true, .uid = 1000,
                          .pid = 42};
    memcpy(r.id, run, 16);
    memcpy(r.parent, parent, 16);
    strcpy(r.name, "the run");
    strcpy(r.user, "ada");
    strcpy(r.host, "node-7");
    assert_int_equal(store_run_start(t, &r), 0);
    assert_int_equal(store_param_put(t, run, "lr", "0.1"), 0);
    assert_int_equal(store_tag_set(t, run, "note", "hello"), 0);
    struct store_point pts[5] = {{1, 10, 0.5}, {2, 20, 0.25}, {3, 30, NAN}, {4, 40, 1}, {5, 50, 2}};
    assert_int_equal(store_metric_append(t, run, "loss", pts, 3), 0);
    assert_int_equal(store_metric_append(t, run, "loss", pts + 3, 2), 0);
    assert_int_equal(store_metric_append(t, run, "loss", pts, 0), 0); /* no change, no op */
    uint8_t sha[32];
    memset(sha, 0xab, sizeof sha);
    assert_int_equal(store_artifact_put(t, run, "model/weights.bin", sha, 12345), 0);
    assert_int_equal(store_run_end(t, run, STORE_RUN_FINISHED, 1700000009999), 0);
    uint8_t lane[STORE_LANE_ID_LEN] = {1};
    struct store_lane l = {.ring_pos = 7};
    assert_int_equal(store_lane_put(t, lane, &l), 0);
    assert_int_equal(store_lane_dict_put(t, lane, 'k', 1, "loss", 4), 0);
    assert_int_equal(store_counter_add(t, "records_in", 3), 0);
    assert_int_equal(store_commit(t), 0);
}

/* ---- tests ---- */

static void test_each_change_one_op(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], parent[16];
    run_id(run, 0x11, 1);
    run_id(parent, 0x22, 2);
    change_everything(f->s, run, parent);

    struct ops o = {0};
    read_ops(f->s, 1, 0, &o);
    assert_int_equal(o.n, 7);
    for (size_t i = 0; i < o.n; i++) {
        assert_int_equal(o.v[i].op.seq, i + 1);
        assert_memory_equal(o.v[i].op.run, run, 16);
    }
    const struct store_op *op = &o.v[0].op;
    assert_int_equal(op->type, STORE_OP_RUN_START);
    assert_string_equal(op->experiment, "exp one");
    assert_string_equal(op->name, "the run");
    assert_string_equal(op->user, "ada");
    assert_string_equal(op->host, "node-7");
    assert_int_equal(op->start_ms, 1700000000123);
    assert_true(op->has_parent);
    assert_memory_equal(op->parent, parent, 16);
    assert_int_equal(op->status, STORE_RUN_SCHEDULED);

    op = &o.v[1].op;
    assert_int_equal(op->type, STORE_OP_PARAM);
    assert_string_equal(op->key, "lr");
    assert_string_equal(op->value, "0.1");
    op = &o.v[2].op;
    assert_int_equal(op->type, STORE_OP_TAG);
    assert_string_equal(op->key, "note");
    assert_string_equal(op->value, "hello");
    op = &o.v[3].op;
    assert_int_equal(op->type, STORE_OP_METRICS);
    assert_string_equal(op->key, "loss");
    assert_int_equal(op->first_index, 0);
    assert_int_equal(op->count, 3);
    op = &o.v[4].op;
    assert_int_equal(op->type, STORE_OP_METRICS);
    assert_int_equal(op->first_index, 3);
    assert_int_equal(op->count, 2);
    op = &o.v[5].op;
    assert_int_equal(op->type, STORE_OP_ARTIFACT);
    assert_string_equal(op->key, "model/weights.bin");
    uint8_t sha[32];
    memset(sha, 0xab, sizeof sha);
    assert_memory_equal(op->sha256, sha, 32);
    assert_int_equal(op->size, 12345);
    op = &o.v[6].op;
    assert_int_equal(op->type, STORE_OP_RUN_END);
    assert_int_equal(op->status, STORE_RUN_FINISHED);
    assert_int_equal(op->end_ms, 1700000009999);

    uint64_t first, next;
    bounds(f->s, &first, &next);
    assert_int_equal(first, 1);
    assert_int_equal(next, 8);

    /* a run without a parent, in the Default experiment, started with status 0 */
    uint8_t run2[16];
    run_id(run2, 0x33, 3);
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    struct store_run r = {.experiment_id = 0, .start_ms = 5};
    memcpy(r.id, run2, 16);
    assert_int_equal(store_run_start(t, &r), 0);
    /* an experiment id that does not exist: refused before anything is written */
    r.experiment_id = 99;
    r.id[0] ^= 1;
    assert_int_equal(store_run_start(t, &r), -ENOENT);
    assert_int_equal(store_commit(t), 0);
    read_ops(f->s, 8, 0, &o);
    assert_int_equal(o.n, 1);
    op = &o.v[0].op;
    assert_int_equal(op->seq, 8);
    assert_string_equal(op->experiment, "Default");
    assert_string_equal(op->name, "");
    assert_false(op->has_parent);
    assert_int_equal(op->status, STORE_RUN_RUNNING);
    free(o.v);
}

static void test_nothing_without_flag(void **state)
{
    struct fx *f = *state; /* fixture store: no STORE_JOURNAL */
    uint8_t run[16], parent[16];
    run_id(run, 0x11, 1);
    run_id(parent, 0x22, 2);
    change_everything(f->s, run, parent);
    uint64_t first, next;
    bounds(f->s, &first, &next);
    assert_int_equal(first, 1);
    assert_int_equal(next, 1);
    struct ops o = {0};
    read_ops(f->s, 0, 0, &o);
    assert_int_equal(o.n, 0);
    free(o.v);

    /* the same directory opened with the flag journals from then on, from seq 1 */
    store_close(f->s);
    f->s = open_store(f->dir, STORE_NOSYNC | STORE_JOURNAL);
    tag(f->s, run, "later", "x");
    read_ops(f->s, 0, 0, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.v[0].op.seq, 1);
    assert_int_equal(o.v[0].op.type, STORE_OP_TAG);
    free(o.v);
}

static void test_unchanged_not_journaled(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x44, 4);
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_param_put(t, run, "p", "1"), 0);
    assert_int_equal(store_param_put(t, run, "p", "1"), 1);       /* the same value */
    assert_int_equal(store_param_put(t, run, "p", "2"), -EEXIST); /* another value */
    assert_int_equal(store_tag_set(t, run, "t", "a"), 0);
    assert_int_equal(store_tag_set(t, run, "t", "a"), 0); /* no change: no op */
    assert_int_equal(store_tag_set(t, run, "t", "b"), 0);
    assert_int_equal(store_commit(t), 0);
    struct ops o = {0};
    read_ops(f->s, 1, 0, &o);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.v[0].op.type, STORE_OP_PARAM);
    assert_string_equal(o.v[0].op.value, "1");
    assert_int_equal(o.v[1].op.type, STORE_OP_TAG);
    assert_string_equal(o.v[1].op.value, "a");
    assert_int_equal(o.v[2].op.type, STORE_OP_TAG);
    assert_string_equal(o.v[2].op.value, "b");
    free(o.v);
}

static void test_aborted_txn_leaves_no_op(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x45, 5);
    tag(f->s, run, "a", "1");
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_tag_set(t, run, "b", "2"), 0);
    store_abort(t);
    tag(f->s, run, "c", "3");
    struct ops o = {0};
    read_ops(f->s, 1, 0, &o);
    assert_int_equal(o.n, 2);
    assert_int_equal(o.v[1].op.seq, 2);
    assert_string_equal(o.v[1].op.key, "c");
    free(o.v);
}

static void test_read_and_trim(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x55, 5);
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    for (int i = 1; i <= 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        assert_int_equal(store_tag_set(t, run, k, "v"), 0);
    }
    assert_int_equal(store_commit(t), 0);

    struct ops o = {0};
    read_ops(f->s, 50, 10, &o);
    assert_int_equal(o.n, 10);
    for (size_t i = 0; i < o.n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03zu", 50 + i);
        assert_int_equal(o.v[i].op.seq, 50 + i);
        assert_string_equal(o.v[i].op.key, k);
    }
    read_ops(f->s, 0, 0, &o);
    assert_int_equal(o.n, 100);
    read_ops(f->s, 101, 0, &o);
    assert_int_equal(o.n, 0);

    assert_int_equal(store_begin(f->s, false, &t), 0);
    assert_int_equal(store_journal_trim(t, 10), -EROFS);
    store_abort(t);

    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_journal_trim(t, 30), 0);
    assert_int_equal(store_journal_trim(t, 20), 0); /* below first: nothing to do */
    assert_int_equal(store_commit(t), 0);
    uint64_t first, next;
    bounds(f->s, &first, &next);
    assert_int_equal(first, 30);
    assert_int_equal(next, 101);
    read_ops(f->s, 1, 0, &o);
    assert_int_equal(o.n, 71);
    assert_int_equal(o.v[0].op.seq, 30);

    /* trim everything: the bounds say empty, and the next seq does not go back */
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_journal_trim(t, 101), 0);
    assert_int_equal(store_commit(t), 0);
    bounds(f->s, &first, &next);
    assert_int_equal(first, 101);
    assert_int_equal(next, 101);
    read_ops(f->s, 0, 0, &o);
    assert_int_equal(o.n, 0);

    store_close(f->s);
    f->s = open_store(f->dir, STORE_NOSYNC | STORE_JOURNAL);
    bounds(f->s, &first, &next);
    assert_int_equal(first, 101);
    assert_int_equal(next, 101);
    tag(f->s, run, "after", "x");
    read_ops(f->s, 0, 0, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.v[0].op.seq, 101);

    /* trimming past next (UINT64_MAX too) empties it and moves nothing */
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_journal_trim(t, UINT64_MAX), 0);
    assert_int_equal(store_tag_set(t, run, "same txn", "y"), 0);
    assert_int_equal(store_commit(t), 0);
    read_ops(f->s, 0, 0, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.v[0].op.seq, 102);
    free(o.v);
}

static int stop_at_3(const struct store_op *op, void *arg)
{
    (*(int *)arg)++;
    return op->seq == 3 ? 77 : 0;
}

static void test_callback_stops(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x56, 6);
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        tag(f->s, run, k, "v");
    }
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, false, &t), 0);
    int calls = 0;
    assert_int_equal(store_journal_read(t, 1, 0, stop_at_3, &calls), 77);
    assert_int_equal(calls, 3);
    store_abort(t);
}

/* Puts raw bytes in the journal under seq, as a damaged or newer store would hold them. */
static void raw_op(struct store *s, uint64_t seq, const struct st_mpw *w)
{
    MDB_txn *txn;
    uint8_t k[8];
    st_be64(k, seq);
    MDB_val mk = {8, k}, mv = {w->len, w->buf};
    assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_put(txn, s->dbi[DB_JOURNAL], &mk, &mv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static int count_cb(const struct store_op *op, void *arg)
{
    (void)op;
    (*(int *)arg)++;
    return 0;
}

static void test_op_decoding(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x57, 7);
    /* a TAG op with two more items, as a later version may write: they are skipped */
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_array(&w, 6);
    st_mpw_uint(&w, STORE_OP_TAG);
    st_mpw_bin(&w, run, 16);
    st_mpw_strn(&w, "k", 2);
    st_mpw_strn(&w, "v", 2);
    st_mpw_map(&w, 1);
    st_mpw_str(&w, "x");
    st_mpw_array(&w, 2);
    st_mpw_nil(&w);
    st_mpw_f64(&w, 1.5);
    st_mpw_uint(&w, 7);
    raw_op(f->s, 1, &w);
    struct ops o = {0};
    read_ops(f->s, 1, 0, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.v[0].op.type, STORE_OP_TAG);
    assert_string_equal(o.v[0].op.key, "k");
    assert_string_equal(o.v[0].op.value, "v");
    /* the next seq follows what is there */
    tag(f->s, run, "next", "x");
    read_ops(f->s, 2, 0, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.v[0].op.seq, 2);
    free(o.v);
    st_mpw_free(&w);

    /* malformed: a string without its NUL, an unknown type, too few items, trailing bytes */
    for (int bad = 0; bad < 4; bad++) {
        st_mpw_init(&w);
        st_mpw_array(&w, bad == 2 ? 3 : 4);
        st_mpw_uint(&w, bad == 1 ? 99 : STORE_OP_PARAM);
        st_mpw_bin(&w, run, 16);
        st_mpw_strn(&w, "k", bad == 0 ? 1 : 2);
        if (bad != 2)
            st_mpw_strn(&w, "v", 2);
        if (bad == 3)
            st_mpw_nil(&w);
        raw_op(f->s, 10, &w);
        st_mpw_free(&w);
        struct store_txn *t;
        int n = 0;
        assert_int_equal(store_begin(f->s, false, &t), 0);
        assert_int_equal(store_journal_read(t, 3, 0, count_cb, &n), -EBADMSG);
        assert_int_equal(n, 0);
        assert_int_equal(store_journal_read(t, 1, 2, count_cb, &n), 0); /* stops before */
        assert_int_equal(n, 2);
        store_abort(t);
    }
}

/* ---- store_metric_range ---- */

static struct store_point random_point(int64_t i)
{
    /* a mix of cheap and expensive points, so that blocks hold very different counts */
    struct store_point p = {i, 1700000000000 + i * 7, (double)(i % 13)};
    switch (rnd() % 4) {
    case 0: {
        uint64_t u = rnd();
        memcpy(&p.value, &u, 8);
        break;
    }
    case 1: p.step = (int64_t)rnd(); break;
    default: break;
    }
    return p;
}

static void assert_points(const struct store_point *a, const struct store_point *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].step, b[i].step);
        assert_int_equal(a[i].ts_ms, b[i].ts_ms);
        assert_int_equal(dbl_bits(a[i].value), dbl_bits(b[i].value));
    }
}

static void history(struct store *s, const uint8_t run[16], const char *key, struct point_collect *c)
{
    struct store_txn *t;
    free(c->pts);
    memset(c, 0, sizeof *c);
    assert_int_equal(store_begin(s, false, &t), 0);
    assert_int_equal(store_metric_history(t, run, key, collect_points, c), 0);
    store_abort(t);
}

/* Random ranges, the ends and single points, compared with the history. */
static void check_ranges(struct store *s, const uint8_t run[16], const char *key,
                         const struct point_collect *h, int rounds)
{
    struct store_txn *t;
    assert_int_equal(store_begin(s, false, &t), 0);
    struct store_point *out = malloc((h->n + 1) * sizeof *out);
    assert_non_null(out);
    for (int i = 0; i < rounds; i++) {
        uint64_t a, n;
        switch (i % 4) {
        case 0: a = rnd() % h->n; n = rnd() % (h->n - a) + 1; break;
        case 1: a = rnd() % h->n; n = 1; break;
        case 2: n = rnd() % 5000 + 1; n = n > h->n ? h->n : n; a = h->n - n; break;
        default: a = 0; n = rnd() % 5000 + 1; n = n > h->n ? h->n : n; break;
        }
        assert_int_equal(store_metric_range(t, run, key, a, n, out), 0);
        assert_points(out, h->pts + a, n);
    }
    assert_int_equal(store_metric_range(t, run, key, 0, h->n, out), 0);
    assert_points(out, h->pts, h->n);
    assert_int_equal(store_metric_range(t, run, key, h->n, 0, out), 0);
    assert_int_equal(store_metric_range(t, run, key, h->n, 1, out), -ENOENT);
    assert_int_equal(store_metric_range(t, run, key, h->n - 1, 2, out), -ENOENT);
    assert_int_equal(store_metric_range(t, run, key, UINT64_MAX, 1, out), -ENOENT);
    assert_int_equal(store_metric_range(t, run, key, 1, SIZE_MAX, out), -ENOENT);
    assert_int_equal(store_metric_range(t, run, "no such key", 0, 1, out), -ENOENT);
    free(out);
    store_abort(t);
}

static void append_random(struct store *s, const uint8_t run[16], const char *key, size_t total,
                          size_t max_call)
{
    struct store_point *buf = malloc(max_call * sizeof *buf);
    assert_non_null(buf);
    size_t done = 0;
    while (done < total) {
        size_t n = rnd() % max_call + 1;
        if (n > total - done)
            n = total - done;
        for (size_t i = 0; i < n; i++)
            buf[i] = random_point((int64_t)(done + i));
        struct store_txn *t;
        assert_int_equal(store_begin(s, true, &t), 0);
        assert_int_equal(store_metric_append(t, run, key, buf, n), 0);
        assert_int_equal(store_commit(t), 0);
        done += n;
    }
    free(buf);
}

static void test_metric_range(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x66, 6);
    append_random(f->s, run, "loss", 100000, 3000);
    append_random(f->s, run, "acc", 500, 7); /* another series beside it */
    struct point_collect h = {0};
    history(f->s, run, "loss", &h);
    assert_int_equal(h.n, 100000);
    check_ranges(f->s, run, "loss", &h, 2000);
    history(f->s, run, "acc", &h);
    check_ranges(f->s, run, "acc", &h, 200);

    /* every METRICS op covers what its call appended, back to back */
    struct ops o = {0};
    read_ops(f->s, 1, 0, &o);
    uint64_t next_index = 0;
    for (size_t i = 0; i < o.n; i++) {
        if (strcmp(o.v[i].op.key, "loss") != 0)
            continue;
        assert_int_equal(o.v[i].op.type, STORE_OP_METRICS);
        assert_int_equal(o.v[i].op.first_index, next_index);
        next_index += o.v[i].op.count;
    }
    assert_int_equal(next_index, 100000);
    free(o.v);
    free(h.pts);
}

/* Deletes the DB_MBIDX entries of (run, key) for blocks [from, to), as if an older version
 * had written those blocks. */
static void unindex(struct store *s, const uint8_t run[16], const char *key, uint32_t from,
                    uint32_t to)
{
    uint8_t k[ST_MAX_KEY];
    int kl = st_runkey(k, run, key);
    assert_true(kl > 0);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
    for (uint32_t b = from; b < to; b++) {
        st_be32(k + kl, b);
        MDB_val mk = {(size_t)kl + 4, k};
        int rc = mdb_del(txn, s->dbi[DB_MBIDX], &mk, NULL);
        assert_true(rc == 0 || rc == MDB_NOTFOUND);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static uint32_t blocks_of(struct store *s, const uint8_t run[16], const char *key)
{
    uint8_t k[ST_MAX_KEY];
    int kl = st_runkey(k, run, key);
    MDB_txn *txn;
    MDB_cursor *c;
    assert_int_equal(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_cursor_open(txn, s->dbi[DB_MBLK], &c), 0);
    MDB_val mk = {(size_t)kl, k}, v;
    uint32_t n = 0;
    int rc = mdb_cursor_get(c, &mk, &v, MDB_SET_RANGE);
    while (rc == 0 && mk.mv_size == (size_t)kl + 4 && memcmp(mk.mv_data, k, (size_t)kl) == 0) {
        n++;
        rc = mdb_cursor_get(c, &mk, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return n;
}

static void test_metric_range_unindexed_blocks(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x67, 7);
    append_random(f->s, run, "m", 60000, 2000);
    uint32_t nb = blocks_of(f->s, run, "m");
    assert_true(nb > 40);
    struct point_collect h = {0};
    history(f->s, run, "m", &h);

    /* the first blocks from before the index */
    unindex(f->s, run, "m", 0, nb / 3);
    check_ranges(f->s, run, "m", &h, 500);
    /* a gap in the middle as well */
    unindex(f->s, run, "m", nb / 2, nb / 2 + 3);
    check_ranges(f->s, run, "m", &h, 500);
    /* no index at all */
    unindex(f->s, run, "m", 0, nb);
    check_ranges(f->s, run, "m", &h, 500);
    /* appending after that indexes the new blocks only, and all of it still reads right */
    append_random(f->s, run, "m", 20000, 2000);
    history(f->s, run, "m", &h);
    assert_int_equal(h.n, 80000);
    check_ranges(f->s, run, "m", &h, 500);
    free(h.pts);
}

/* ---- peers ---- */

static int peer_cb(const uint8_t agent[16], const struct store_peer *p, void *arg)
{
    int *n = arg;
    assert_int_equal(agent[15], *n + 1); /* in agent id order */
    assert_int_equal(p->hwm, 100u * (unsigned)(*n + 1));
    (*n)++;
    return 0;
}

static void test_peers(void **state)
{
    struct fx *f = *state;
    uint8_t a1[16], a2[16];
    run_id(a1, 0x77, 1);
    run_id(a2, 0x77, 2);
    struct store_txn *t;
    struct store_peer p;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    memset(&p, 0x5a, sizeof p);
    assert_int_equal(store_peer_get(t, a1, &p), -ENOENT);
    assert_int_equal(p.hwm, 1);
    assert_int_equal(p.ops, 0);
    assert_int_equal(p.host[0], '\0');
    struct store_peer w = {.hwm = 200, .last_ms = 1700000000000, .ops = 12345,
                           .batches = 17};
    strcpy(w.host, "node-2.example");
    assert_int_equal(store_peer_put(t, a2, &w), 0);
    w.hwm = 100;
    strcpy(w.host, "node-1");
    assert_int_equal(store_peer_put(t, a1, &w), 0);
    struct store_peer bad = {.hwm = 5};
    memset(bad.host, 'x', sizeof bad.host); /* no NUL */
    assert_int_equal(store_peer_put(t, a1, &bad), -EINVAL);
    assert_int_equal(store_commit(t), 0);

    assert_int_equal(store_begin(f->s, false, &t), 0);
    assert_int_equal(store_peer_get(t, a2, &p), 0);
    assert_int_equal(p.hwm, 200);
    assert_int_equal(p.last_ms, 1700000000000);
    assert_int_equal(p.ops, 12345);
    assert_int_equal(p.batches, 17);
    assert_string_equal(p.host, "node-2.example");
    assert_int_equal(store_peer_get(t, a1, &p), 0);
    assert_int_equal(p.hwm, 100);
    assert_string_equal(p.host, "node-1");
    int n = 0;
    assert_int_equal(store_peer_foreach(t, peer_cb, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_peer_put(t, a1, &w), -EROFS);
    store_abort(t);

    /* peers are not journaled: they are the server's bookkeeping */
    uint64_t first, next;
    bounds(f->s, &first, &next);
    assert_int_equal(next, 1);
}

/* ---- read-only opens, and stores from before the journal ---- */

static void test_readonly_reads_journal(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], parent[16];
    run_id(run, 0x88, 1);
    run_id(parent, 0x88, 2);
    change_everything(f->s, run, parent);
    store_close(f->s);
    /* STORE_JOURNAL is meaningless read-only, and harmless */
    f->s = open_store(f->dir, STORE_RDONLY | STORE_JOURNAL);
    uint64_t first, next;
    bounds(f->s, &first, &next);
    assert_int_equal(first, 1);
    assert_int_equal(next, 8);
    struct ops o = {0};
    read_ops(f->s, 3, 0, &o);
    assert_int_equal(o.n, 5);
    assert_int_equal(o.v[0].op.seq, 3);
    assert_int_equal(o.v[0].op.type, STORE_OP_TAG);
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, false, &t), 0);
    struct store_point out[5];
    assert_int_equal(store_metric_range(t, run, "loss", 1, 4, out), 0);
    assert_int_equal(out[0].step, 2);
    assert_int_equal(out[3].step, 5);
    store_abort(t);
    free(o.v);
}

/* Drops the databases that came with the journal, as in a store made before them. */
static void make_old(const char *dir)
{
    struct store *s = open_store(dir, STORE_NOSYNC);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_drop(txn, s->dbi[DB_JOURNAL], 1), 0);
    assert_int_equal(mdb_drop(txn, s->dbi[DB_PEERS], 1), 0);
    assert_int_equal(mdb_drop(txn, s->dbi[DB_MBIDX], 1), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    store_close(s);
}

static void test_old_store(void **state)
{
    struct fx *f = *state; /* fixture store: no STORE_JOURNAL */
    uint8_t run[16];
    run_id(run, 0x99, 1);
    append_random(f->s, run, "old", 20000, 1500);
    struct point_collect h = {0};
    history(f->s, run, "old", &h);
    store_close(f->s);
    make_old(f->dir);

    /* read-only: no journal, no peers, ranges by walking the blocks */
    f->s = open_store(f->dir, STORE_RDONLY);
    uint64_t first, next;
    bounds(f->s, &first, &next);
    assert_int_equal(first, 1);
    assert_int_equal(next, 1);
    struct ops o = {0};
    read_ops(f->s, 1, 0, &o);
    assert_int_equal(o.n, 0);
    struct store_txn *t;
    struct store_peer p;
    uint8_t agent[16] = {1};
    assert_int_equal(store_begin(f->s, false, &t), 0);
    assert_int_equal(store_peer_get(t, agent, &p), -ENOENT);
    assert_int_equal(p.hwm, 1);
    int n = 0;
    assert_int_equal(store_peer_foreach(t, peer_cb, &n), 0);
    assert_int_equal(n, 0);
    store_abort(t);
    check_ranges(f->s, run, "old", &h, 300);
    store_close(f->s);

    /* writable with the journal: the databases appear, the old series goes on */
    f->s = open_store(f->dir, STORE_NOSYNC | STORE_JOURNAL);
    append_random(f->s, run, "old", 10000, 1500);
    history(f->s, run, "old", &h);
    assert_int_equal(h.n, 30000);
    check_ranges(f->s, run, "old", &h, 300);
    read_ops(f->s, 1, 0, &o);
    assert_true(o.n > 0);
    assert_int_equal(o.v[0].op.seq, 1);
    assert_int_equal(o.v[0].op.first_index, 20000);
    free(o.v);
    free(h.pts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        JX_TEST(test_each_change_one_op),
        FX_TEST(test_nothing_without_flag),
        JX_TEST(test_unchanged_not_journaled),
        JX_TEST(test_aborted_txn_leaves_no_op),
        JX_TEST(test_read_and_trim),
        JX_TEST(test_callback_stops),
        JX_TEST(test_op_decoding),
        JX_TEST(test_metric_range),
        JX_TEST(test_metric_range_unindexed_blocks),
        JX_TEST(test_peers),
        JX_TEST(test_readonly_reads_journal),
        FX_TEST(test_old_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
