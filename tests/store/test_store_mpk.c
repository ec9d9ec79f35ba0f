/* test_store_mpk.c — the msgpack writer and bounds-checked reader of mpk.h (shared with the
 * sync codec): round trips of every type, arrays and nil, skipping nested values, and
 * truncated or too deeply nested input refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "mpk.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static void test_round_trip(void **state)
{
    (void)state;
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_array(&w, 8);
    st_mpw_nil(&w);
    st_mpw_bool(&w, true);
    st_mpw_uint(&w, UINT64_MAX);
    st_mpw_int(&w, INT64_MIN);
    st_mpw_str(&w, "héllo");
    st_mpw_bin(&w, "\0\1\2", 3);
    st_mpw_f64(&w, -2.5);
    st_mpw_map(&w, 1);
    st_mpw_str(&w, "k");
    st_mpw_array(&w, 0);
    assert_int_equal(st_mpw_done(&w), 0);

    struct st_mpr r = {w.buf, w.buf + w.len};
    uint32_t n;
    struct st_mp_val v;
    assert_int_equal(st_mpr_map(&r, &n), -EBADMSG); /* an array is not a map */
    assert_int_equal(st_mpr_array(&r, &n), 0);
    assert_int_equal(n, 8);
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_int_equal(v.type, MP_NIL);
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_true(v.type == MP_BOOL && v.b);
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_true(v.type == MP_UINT && v.u == UINT64_MAX);
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_true(v.type == MP_INT && v.i == INT64_MIN);
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_true(st_mp_key_is(&v, "héllo"));
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_true(v.type == MP_BIN && v.len == 3 && memcmp(v.ptr, "\0\1\2", 3) == 0);
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_true(v.type == MP_F64 && v.d == -2.5);
    assert_int_equal(st_mpr_map(&r, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_int_equal(st_mpr_array(&r, &n), 0);
    assert_int_equal(n, 0);
    assert_ptr_equal(r.p, r.end);
    assert_int_equal(st_mpr_val(&r, &v), -EBADMSG); /* nothing left */

    /* skip and val step over the whole array in one go */
    r.p = w.buf;
    assert_int_equal(st_mpr_skip(&r), 0);
    assert_ptr_equal(r.p, r.end);
    r.p = w.buf;
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_int_equal(v.type, MP_OTHER);
    assert_ptr_equal(r.p, r.end);

    /* every truncation is refused, by each reader */
    for (size_t len = 0; len < w.len; len++) {
        struct st_mpr t = {w.buf, w.buf + len};
        assert_int_equal(st_mpr_skip(&t), -EBADMSG);
        t.p = w.buf;
        assert_int_equal(st_mpr_val(&t, &v), -EBADMSG);
        assert_true(t.p <= t.end);
    }
    st_mpw_free(&w);
}

static void test_float32(void **state)
{
    (void)state;
    const uint8_t f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00}; /* 1.5f */
    struct st_mpr r = {f32, f32 + sizeof f32};
    struct st_mp_val v;
    assert_int_equal(st_mpr_val(&r, &v), 0);
    assert_true(v.type == MP_F64 && v.d == 1.5);
}

static void test_depth(void **state)
{
    (void)state;
    uint8_t buf[64];
    /* ST_MP_MAX_DEPTH nested one-element arrays around a nil: the deepest accepted */
    for (size_t levels = ST_MP_MAX_DEPTH; levels <= ST_MP_MAX_DEPTH + 1; levels++) {
        memset(buf, 0x91, levels);
        buf[levels] = 0xc0;
        struct st_mpr r = {buf, buf + levels + 1};
        int want = levels <= ST_MP_MAX_DEPTH ? 0 : -EBADMSG;
        assert_int_equal(st_mpr_skip(&r), want);
        r.p = buf;
        struct st_mp_val v;
        assert_int_equal(st_mpr_val(&r, &v), want);
    }
    /* maps count keys and values: {0: [nil, nil], 1: nil} */
    const uint8_t m[] = {0x82, 0x00, 0x92, 0xc0, 0xc0, 0x01, 0xc0, 0x07};
    struct st_mpr r = {m, m + sizeof m};
    assert_int_equal(st_mpr_skip(&r), 0);
    assert_ptr_equal(r.p, m + sizeof m - 1);
}

static void test_lying_counts(void **state)
{
    (void)state;
    /* array32 and map32 claiming more items than there are bytes */
    const uint8_t a[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    const uint8_t m[] = {0xdf, 0x00, 0x00, 0x00, 0x01, 0xc0};
    uint32_t n;
    struct st_mpr r = {a, a + sizeof a};
    assert_int_equal(st_mpr_array(&r, &n), -EBADMSG);
    r = (struct st_mpr){a, a + sizeof a};
    assert_int_equal(st_mpr_skip(&r), -EBADMSG);
    r = (struct st_mpr){m, m + sizeof m};
    assert_int_equal(st_mpr_map(&r, &n), -EBADMSG);
    r = (struct st_mpr){m, m + sizeof m};
    assert_int_equal(st_mpr_skip(&r), -EBADMSG);
    const uint8_t never[] = {0xc1};
    r = (struct st_mpr){never, never + 1};
    assert_int_equal(st_mpr_skip(&r), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_float32),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_lying_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
