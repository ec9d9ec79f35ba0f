/* test_store_corrupt.c — damaged stored values give -EBADMSG (or a value), never a crash:
 * run rows, experiments, summaries, blocks and lane records are mangled through raw LMDB
 * behind the store's back, then read through the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "util.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) { return xorshift64(&rng); }

struct raw {
    MDB_env *env;
    MDB_txn *txn;
};

static void raw_open(struct raw *r, const char *dir)
{
    assert_int_equal(mdb_env_create(&r->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(r->env, 16), 0);
    assert_int_equal(mdb_env_open(r->env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
}

static void raw_close(struct raw *r)
{
    assert_int_equal(mdb_txn_commit(r->txn), 0);
    mdb_env_close(r->env);
}

static MDB_dbi raw_db(struct raw *r, const char *name)
{
    MDB_dbi dbi;
    assert_int_equal(mdb_dbi_open(r->txn, name, 0, &dbi), 0);
    return dbi;
}

/* Copies of the first value of a database, to mangle. */
static size_t raw_first(struct raw *r, MDB_dbi dbi, uint8_t *key, size_t *klen, uint8_t *val)
{
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_cursor_open(r->txn, dbi, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_FIRST), 0);
    memcpy(key, k.mv_data, k.mv_size);
    *klen = k.mv_size;
    memcpy(val, v.mv_data, v.mv_size);
    mdb_cursor_close(c);
    return v.mv_size;
}

static size_t mangle(uint8_t *dst, const uint8_t *src, size_t len, int round)
{
    size_t n = len;
    memcpy(dst, src, len);
    switch (round % 3) {
    case 0:
        n = rnd() % len;
        break;
    case 1:
        for (int i = 0; i < 1 + (int)(rnd() % 3); i++)
            dst[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
        break;
    default:
        n = rnd() % 64;
        for (size_t i = 0; i < n; i++)
            dst[i] = (uint8_t)rnd();
        if (n && rnd() % 2)
            dst[0] = (uint8_t)(0x80 | (rnd() % 16)); /* a map header */
        if (n > 1 && rnd() % 2)
            dst[1] = (uint8_t)(rnd() % 2 ? 0xdd : 0xdf); /* a huge array or map */
        break;
    }
    return n;
}

static int ok_or_badmsg(int rc) { return rc == 0 || rc == -EBADMSG; }

static int count_run(const struct store_run *r, void *arg)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static int count_pts(const struct store_point *p, size_t n, void *arg)
{
    (void)p;
    *(size_t *)arg += n;
    return 0;
}

static void stored_values_that_are_damaged_read_as_ebadmsg(void **state)
{
    (void)state;
    char dir[64];
    assert_non_null(scratch_dir(dir));
    struct store *s;
    struct store_txn *t;
    assert_int_equal(store_open(&s, dir, STORE_NOSYNC, 0), 0);
    struct store_run run;
    memset(&run, 0, sizeof run);
    run_id(run.id, 0x01, 0);
    strcpy(run.name, "r");
    strcpy(run.user, "u");
    run.has_parent = true;
    run.status = STORE_RUN_RUNNING;
    struct store_point pts[300];
    for (int i = 0; i < 300; i++)
        pts[i] = (struct store_point){i, 1000 + i, 1.0 / (i + 1)};
    uint64_t eid;
    struct store_lane lane = {.ring_pos = 5};
    uint8_t lid[STORE_LANE_ID_LEN] = {0};
    assert_int_equal(store_begin(s, true, &t), 0);
    assert_int_equal(store_run_start(t, &run), 0);
    assert_int_equal(store_metric_append(t, run.id, "m", pts, 300), 0);
    assert_int_equal(store_experiment_ensure(t, "e", 1, &eid), 0);
    assert_int_equal(store_lane_put(t, lid, &lane), 0);
    assert_int_equal(store_commit(t), 0);
    store_close(s);

    enum { N = 2000 };
    struct raw r;
    raw_open(&r, dir);
    MDB_dbi runs = raw_db(&r, "runs"), mblk = raw_db(&r, "mblk"), msum = raw_db(&r, "msum"),
            exp = raw_db(&r, "exp"), lanes = raw_db(&r, "lanes");
    uint8_t key[600], val[4096], bad[4096], rkey[16];
    size_t klen;
    /* runs: ids 0x02.. with mangled copies of the good row */
    size_t vlen = raw_first(&r, runs, key, &klen, val);
    for (int i = 0; i < N; i++) {
        run_id(rkey, 0x02, 0);
        rkey[14] = (uint8_t)(i >> 8);
        rkey[15] = (uint8_t)i;
        MDB_val k = {16, rkey}, v = {mangle(bad, val, vlen, i), bad};
        assert_int_equal(mdb_put(r.txn, runs, &k, &v, 0), 0);
    }
    /* the metric block and summary of the good run, the experiment, the lane */
    vlen = raw_first(&r, mblk, key, &klen, val);
    MDB_val k = {klen, key}, v = {mangle(bad, val, vlen, 1), bad};
    assert_int_equal(mdb_put(r.txn, mblk, &k, &v, 0), 0);
    vlen = raw_first(&r, msum, key, &klen, val);
    k = (MDB_val){klen, key};
    v = (MDB_val){7, val};
    assert_int_equal(mdb_put(r.txn, msum, &k, &v, 0), 0);
    uint8_t ekey[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    k = (MDB_val){8, ekey};
    v = (MDB_val){3, "\x81\xa1n"}; /* {"n": <missing>} */
    assert_int_equal(mdb_put(r.txn, exp, &k, &v, 0), 0);
    k = (MDB_val){STORE_LANE_ID_LEN, lid};
    v = (MDB_val){10, val};
    assert_int_equal(mdb_put(r.txn, lanes, &k, &v, 0), 0);
    raw_close(&r);

    assert_int_equal(store_open(&s, dir, 0, 0), 0);
    assert_int_equal(store_begin(s, true, &t), 0);
    int bad_rows = 0;
    for (int i = 0; i < N; i++) {
        run_id(rkey, 0x02, 0);
        rkey[14] = (uint8_t)(i >> 8);
        rkey[15] = (uint8_t)i;
        struct store_run g;
        int rc = store_run_get(t, rkey, &g);
        assert_true(ok_or_badmsg(rc));
        bad_rows += rc != 0;
        /* writes on top of a damaged row fail the same way, and leave the txn usable */
        rc = store_run_end(t, rkey, STORE_RUN_FINISHED, 5);
        assert_true(ok_or_badmsg(rc));
    }
    assert_true(bad_rows > N / 2);
    int nruns = 0;
    assert_int_equal(store_run_foreach(t, count_run, &nruns), -EBADMSG);
    size_t npts = 0;
    assert_int_equal(store_metric_history(t, run.id, "m", count_pts, &npts), -EBADMSG);
    struct store_metric_summary sum;
    assert_int_equal(store_metric_summary_get(t, run.id, "m", &sum), -EBADMSG);
    assert_int_equal(store_metric_append(t, run.id, "m", pts, 1), -EBADMSG);
    struct store_experiment e;
    assert_int_equal(store_experiment_get(t, 1, &e), -EBADMSG);
    assert_int_equal(store_lane_get(t, lid, &lane), -EBADMSG);
    assert_int_equal(store_commit(t), 0);
    store_close(s);
    scratch_rm(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stored_values_that_are_damaged_read_as_ebadmsg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
