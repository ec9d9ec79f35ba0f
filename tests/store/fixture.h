/* fixture.h — a cmocka fixture: a fresh store (STORE_NOSYNC) in a scratch directory, and
 * transactions on it that fail the test when they cannot begin. Include after cmocka.h. */
#ifndef STORE_TEST_FIXTURE_H
#define STORE_TEST_FIXTURE_H

#include "util.h"

#include <stdlib.h>

struct fx {
    char dir[64];
    struct store *s;
};

static inline int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !scratch_dir(f->dir) || store_open(&f->s, f->dir, STORE_NOSYNC, 0) != 0)
        return -1;
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    scratch_rm(f->dir);
    free(f);
    return 0;
}

/* A write (or read) transaction on the fixture's store; the test fails when none begins. */
static inline struct store_txn *fx_wtxn(struct fx *f)
{
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    return t;
}

static inline struct store_txn *fx_rtxn(struct fx *f)
{
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, false, &t), 0);
    return t;
}

#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

#endif
