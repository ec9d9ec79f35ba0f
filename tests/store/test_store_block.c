/* test_store_block.c — the metric block codec on its own: round trips of awkward points,
 * where blocks end, and a decoder that survives any bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { return xorshift64(&rng); }

static double from_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static struct store_point random_point(void)
{
    struct store_point p;
    switch (rnd() % 6) {
    case 0: p.step = (int64_t)rnd(); break;
    case 1: p.step = rnd() & 1 ? INT64_MIN : INT64_MAX; break;
    default: p.step = (int64_t)(rnd() % 1000) - 10; break;
    }
    switch (rnd() % 4) {
    case 0: p.ts_ms = (int64_t)rnd(); break;
    case 1: p.ts_ms = rnd() & 1 ? INT64_MIN : INT64_MAX; break;
    default: p.ts_ms = 1700000000000 + (int64_t)(rnd() % 100000); break;
    }
    static const double special[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1.0, -1.0,
                                     5e-324, 1.7976931348623157e308};
    switch (rnd() % 5) {
    case 0: p.value = special[rnd() % (sizeof special / sizeof special[0])]; break;
    case 1: p.value = from_bits(rnd()); break; /* any bits: NaN payloads, subnormals */
    case 2: p.value = from_bits(0x7ff8000000000000ull | (rnd() & 0xfffff)); break;
    default: p.value = (double)(rnd() % 1000) / 7.0; break;
    }
    return p;
}

static void assert_same_points(const struct store_point *a, const struct store_point *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].step, b[i].step);
        assert_int_equal(a[i].ts_ms, b[i].ts_ms);
        assert_int_equal(dbl_bits(a[i].value), dbl_bits(b[i].value));
    }
}

static void block_round_trip_keeps_every_point_bit_exact(void **state)
{
    (void)state;
    uint8_t blk[65536];
    struct store_point in[4096], out[4096];
    for (int round = 0; round < 300; round++) {
        size_t len = 0, n = 0;
        size_t want = 1 + rnd() % 200;
        while (n < want) {
            in[n] = random_point();
            size_t nl = store_block_append(blk, len, sizeof blk, &in[n]);
            assert_true(nl > len);
            len = nl;
            n++;
        }
        size_t got;
        assert_int_equal(store_block_decode(blk, len, out, 4096, &got), 0);
        assert_int_equal(got, n);
        assert_same_points(in, out, n);
    }
}

static void block_round_trip_of_extreme_steps_and_timestamps(void **state)
{
    (void)state;
    const struct store_point in[] = {
        {INT64_MIN, INT64_MAX, -0.0},
        {INT64_MAX, INT64_MIN, NAN},
        {INT64_MIN, INT64_MIN, INFINITY},
        {0, 0, -INFINITY},
        {INT64_MAX, INT64_MAX, 0.0},
        {-1, 1, -0.0},
    };
    size_t n = sizeof in / sizeof in[0];
    uint8_t blk[1024];
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len = store_block_append(blk, len, sizeof blk, &in[i]);
    struct store_point out[8];
    size_t got;
    assert_int_equal(store_block_decode(blk, len, out, 8, &got), 0);
    assert_int_equal(got, n);
    assert_same_points(in, out, n);
}

static void block_header_tracks_count_and_last_point(void **state)
{
    (void)state;
    uint8_t blk[256];
    struct store_point a = {7, 1000, 1.5}, b = {9, 1010, -2.25};
    size_t len = store_block_append(blk, 0, sizeof blk, &a);
    len = store_block_append(blk, len, sizeof blk, &b);
    assert_int_equal(blk[0], 1);
    assert_int_equal(blk[2] | blk[3] << 8, 2);
    assert_int_equal(le64(blk + 8), 7);
    assert_int_equal(le64(blk + 16), 9);
    assert_int_equal(le64(blk + 24), 1010);
    assert_int_equal(le64(blk + 32), dbl_bits(-2.25));
}

static void block_point_with_equal_value_takes_three_bytes(void **state)
{
    (void)state;
    uint8_t blk[256];
    struct store_point p = {0, 0, 0.0};
    size_t len = store_block_append(blk, 0, sizeof blk, &p);
    assert_int_equal(len, STORE_BLOCK_HDR + 3);
    p.step = 1;
    p.ts_ms = 2;
    size_t len2 = store_block_append(blk, len, sizeof blk, &p);
    assert_int_equal(len2 - len, 3);
}

static void block_append_refuses_a_point_past_the_cap(void **state)
{
    (void)state;
    uint8_t blk[2048];
    const size_t cap = 1775;
    size_t len = 0, n = 0;
    struct store_point p, pts[1024];
    for (;;) {
        p = (struct store_point){(int64_t)n, 1700000000000 + 3 * (int64_t)n,
                                 from_bits(rnd())};
        size_t nl = store_block_append(blk, len, cap, &p);
        if (nl == 0)
            break;
        assert_true(nl <= cap);
        pts[n++] = p;
        len = nl;
    }
    /* the refused point (29 bytes at most) would not have fitted */
    assert_true(len > cap - 29);
    struct store_point out[1024];
    size_t got;
    assert_int_equal(store_block_decode(blk, len, out, 1024, &got), 0);
    assert_int_equal(got, n);
    assert_same_points(pts, out, n);
    /* too small for even a header */
    assert_int_equal(store_block_append(blk, 0, STORE_BLOCK_HDR - 1, &p), 0);
}

static void block_decode_reports_too_small_output(void **state)
{
    (void)state;
    uint8_t blk[256];
    size_t len = 0;
    struct store_point p = {1, 2, 3.0}, out[2];
    for (int i = 0; i < 3; i++)
        len = store_block_append(blk, len, sizeof blk, &p);
    size_t got;
    assert_int_equal(store_block_decode(blk, len, out, 2, &got), -ENOBUFS);
    assert_int_equal(got, 3);
}

static void block_decoder_survives_malformed_bytes(void **state)
{
    (void)state;
    uint8_t blk[4096], bad[4096];
    struct store_point out[2048];
    for (int round = 0; round < 20000; round++) {
        size_t len = 0, n = 1 + rnd() % 60;
        for (size_t i = 0; i < n; i++) {
            struct store_point p = random_point();
            len = store_block_append(blk, len, sizeof blk, &p);
        }
        size_t blen;
        switch (round % 4) {
        case 0: /* truncated */
            blen = rnd() % len;
            memcpy(bad, blk, blen);
            break;
        case 1: /* a few flipped bytes */
            blen = len;
            memcpy(bad, blk, len);
            for (int k = 0; k < 1 + (int)(rnd() % 4); k++)
                bad[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
            break;
        case 2: /* random bytes behind a valid-looking header */
            blen = STORE_BLOCK_HDR + rnd() % 400;
            memcpy(bad, blk, STORE_BLOCK_HDR);
            for (size_t i = STORE_BLOCK_HDR; i < blen; i++)
                bad[i] = (uint8_t)rnd();
            break;
        default: /* nothing but random bytes */
            blen = rnd() % 600;
            for (size_t i = 0; i < blen; i++)
                bad[i] = (uint8_t)rnd();
            if (blen > 0 && rnd() % 2)
                bad[0] = 1;
            break;
        }
        /* decode from an exact-size heap copy, so that ASan sees any overread */
        uint8_t *heap = malloc(blen ? blen : 1);
        memcpy(heap, bad, blen);
        size_t got = 99999;
        int rc = store_block_decode(heap, blen, out, 2048, &got);
        assert_true(rc == 0 || rc == -EBADMSG);
        if (rc == 0)
            assert_true(got <= 2048 && got <= blen / 3);
        else
            assert_int_equal(got, 0);
        free(heap);
    }
    size_t got;
    assert_int_equal(store_block_decode(NULL, 0, out, 1, &got), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(block_round_trip_keeps_every_point_bit_exact),
        cmocka_unit_test(block_round_trip_of_extreme_steps_and_timestamps),
        cmocka_unit_test(block_header_tracks_count_and_last_point),
        cmocka_unit_test(block_point_with_equal_value_takes_three_bytes),
        cmocka_unit_test(block_append_refuses_a_point_past_the_cap),
        cmocka_unit_test(block_decode_reports_too_small_output),
        cmocka_unit_test(block_decoder_survives_malformed_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
