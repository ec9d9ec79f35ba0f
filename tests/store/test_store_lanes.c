/* test_store_lanes.c — the agent's bookkeeping: lane records, lane dictionaries, counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "fixture.h"

#include <errno.h>
#include <string.h>

static void lane_id(uint8_t id[STORE_LANE_ID_LEN], uint8_t arena, uint32_t lane, uint32_t gen)
{
    memset(id, arena, 16);
    for (int i = 0; i < 4; i++) {
        id[16 + i] = (uint8_t)(lane >> (24 - 8 * i));
        id[20 + i] = (uint8_t)(gen >> (24 - 8 * i));
    }
}

static void lane_put_get_round_trips(void **state)
{
    struct fx *f = *state;
    uint8_t id[STORE_LANE_ID_LEN];
    lane_id(id, 1, 7, 3);
    struct store_lane l = {.ring_pos = 1ull << 40, .spill_pos = 12345, .records = 99,
                           .skipped = 2, .dropped = 5, .lost = 1, .pid = 4242, .uid = 1000,
                           .finished = true}, g;
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_lane_get(t, id, &g), -ENOENT);
    assert_int_equal(store_lane_put(t, id, &l), 0);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(f->s, false, &t), 0);
    assert_int_equal(store_lane_get(t, id, &g), 0);
    assert_int_equal(store_lane_put(t, id, &l), -EROFS);
    store_abort(t);
    assert_int_equal(g.ring_pos, l.ring_pos);
    assert_int_equal(g.spill_pos, l.spill_pos);
    assert_int_equal(g.records, l.records);
    assert_int_equal(g.skipped, l.skipped);
    assert_int_equal(g.dropped, l.dropped);
    assert_int_equal(g.lost, l.lost);
    assert_int_equal(g.pid, l.pid);
    assert_int_equal(g.uid, l.uid);
    assert_true(g.finished);
}

struct dict { uint8_t kind[8]; uint32_t num[8]; char val[8][32]; int n; };

static int dict_cb(uint8_t kind, uint32_t num, const void *val, size_t len, void *arg)
{
    struct dict *d = arg;
    d->kind[d->n] = kind;
    d->num[d->n] = num;
    memcpy(d->val[d->n], val, len < 31 ? len : 31);
    d->val[d->n][len < 31 ? len : 31] = '\0';
    d->n++;
    return 0;
}

struct lanes { uint8_t ids[8][STORE_LANE_ID_LEN]; int n; };

static int lane_cb(const uint8_t id[STORE_LANE_ID_LEN], const struct store_lane *l, void *arg)
{
    (void)l;
    struct lanes *x = arg;
    memcpy(x->ids[x->n++], id, STORE_LANE_ID_LEN);
    return 0;
}

static void lane_dict_and_foreach_and_delete(void **state)
{
    struct fx *f = *state;
    uint8_t a[STORE_LANE_ID_LEN], b[STORE_LANE_ID_LEN];
    lane_id(a, 1, 2, 1);
    lane_id(b, 1, 2, 2); /* the same lane, next generation */
    struct store_lane l = {.records = 1};
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_lane_put(t, a, &l), 0);
    assert_int_equal(store_lane_put(t, b, &l), 0);
    assert_int_equal(store_lane_dict_put(t, a, 'k', 300, "loss", 4), 0);
    assert_int_equal(store_lane_dict_put(t, a, 'k', 2, "acc", 3), 0);
    assert_int_equal(store_lane_dict_put(t, a, 'r', 0, "0123456789abcdef", 16), 0);
    assert_int_equal(store_lane_dict_put(t, b, 'k', 0, "other", 5), 0);
    assert_int_equal(store_commit(t), 0);

    assert_int_equal(store_begin(f->s, false, &t), 0);
    struct dict d = {0};
    assert_int_equal(store_lane_dict_foreach(t, a, dict_cb, &d), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.kind[0], 'k');
    assert_int_equal(d.num[0], 2);
    assert_string_equal(d.val[0], "acc");
    assert_int_equal(d.num[1], 300); /* numeric order: 2 before 300 */
    assert_string_equal(d.val[1], "loss");
    assert_int_equal(d.kind[2], 'r');
    struct lanes x = {0};
    assert_int_equal(store_lane_foreach(t, lane_cb, &x), 0);
    assert_int_equal(x.n, 2);
    assert_memory_equal(x.ids[0], a, STORE_LANE_ID_LEN);
    store_abort(t);

    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_lane_delete(t, a), 0);
    assert_int_equal(store_lane_delete(t, a), -ENOENT);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(f->s, false, &t), 0);
    struct store_lane g;
    assert_int_equal(store_lane_get(t, a, &g), -ENOENT);
    memset(&d, 0, sizeof d);
    assert_int_equal(store_lane_dict_foreach(t, a, dict_cb, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(store_lane_dict_foreach(t, b, dict_cb, &d), 0);
    assert_int_equal(d.n, 1); /* the other generation is untouched */
    assert_int_equal(store_lane_get(t, b, &g), 0);
    store_abort(t);
}

static void lane_delete_removes_a_large_dictionary(void **state)
{
    struct fx *f = *state;
    uint8_t a[STORE_LANE_ID_LEN], b[STORE_LANE_ID_LEN];
    lane_id(a, 3, 1, 1);
    lane_id(b, 3, 1, 2);
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    for (uint32_t i = 0; i < 3000; i++) { /* spans many pages */
        assert_int_equal(store_lane_dict_put(t, a, 'k', i, "a-fairly-long-metric-key-name", 29), 0);
        assert_int_equal(store_lane_dict_put(t, b, 'k', i, "x", 1), 0);
    }
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_lane_delete(t, a), 0); /* no lane record, only a dictionary */
    struct dict d = {0};
    assert_int_equal(store_lane_dict_foreach(t, a, dict_cb, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(store_commit(t), 0);
}

static void counter_add_accumulates_and_missing_reads_zero(void **state)
{
    struct fx *f = *state;
    struct store_txn *t;
    uint64_t v = 1;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_counter_get(t, "records_in", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(store_counter_add(t, "records_in", 5), 0);
    assert_int_equal(store_counter_add(t, "records_in", 7), 0);
    assert_int_equal(store_counter_add(t, "dropped", 1), 0);
    assert_int_equal(store_counter_add(t, "", 1), -EINVAL);
    assert_int_equal(store_commit(t), 0);
    assert_int_equal(store_begin(f->s, false, &t), 0);
    assert_int_equal(store_counter_get(t, "records_in", &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(store_counter_get(t, "dropped", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(store_counter_add(t, "dropped", 1), -EROFS);
    store_abort(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(lane_put_get_round_trips),
        FX_TEST(lane_dict_and_foreach_and_delete),
        FX_TEST(lane_delete_removes_a_large_dictionary),
        FX_TEST(counter_add_accumulates_and_missing_reads_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
