/* test_ring_unit.c — single-threaded behaviour of the shmlog ring: the record protocol,
 * wrap-around, a full lane and its two policies (drop and count, spill), the spill file,
 * lane reuse, opening foreign or broken files, racing creators. Each test owns a fresh
 * scratch directory (under /dev/shm, else /tmp) with one small arena: 4 lanes of 64 KiB. */
#include "ring_util.h"
#include "shmlog.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define LANES 4u
#define LANE_SIZE (64u << 10)
#define QUOTA (1u << 20)

struct fx {
    struct scratch s;
    struct shmlog_arena a;
    uint64_t pid_start;
};

static const char *errname(long e)
{
    return e < 0 ? strerror((int)-e) : "ok";
}

#define assert_err(got, want)                                                                  \
    do {                                                                                       \
        long g_ = (long)(got), w_ = (long)(want);                                              \
        if (g_ != w_)                                                                          \
            fail_msg("%s = %ld (%s), expected %ld (%s)", #got, g_, errname(g_), w_,           \
                     errname(w_));                                                             \
    } while (0)

static struct shmlog_geometry small_geo(void)
{
    return (struct shmlog_geometry){.lane_count = LANES,
                                    .lane_size = LANE_SIZE,
                                    .spill_quota = QUOTA,
                                    .clock = SHMLOG_CLOCK_REALTIME};
}

static int fx_setup_geo(void **state, const struct shmlog_geometry *geo)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->a.fd = -1;
    if (scratch_make(&f->s, "ring") < 0) {
        free(f);
        return -1;
    }
    if (shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, geo) < 0) {
        scratch_remove(&f->s);
        free(f);
        return -1;
    }
    f->pid_start = proc_start_time(getpid());
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    struct shmlog_geometry g = small_geo();
    return fx_setup_geo(state, &g);
}

static int fx_setup_small_quota(void **state)
{
    struct shmlog_geometry g = small_geo();
    g.spill_quota = 1024;
    return fx_setup_geo(state, &g);
}

/* A scratch directory without an arena in it. */
static int fx_setup_empty(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->a.fd = -1;
    if (scratch_make(&f->s, "ring") < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    shmlog_arena_close(&f->a);
    scratch_remove(&f->s);
    free(f);
    return 0;
}

/* ---- record helpers ---------------------------------------------------------------------- */

static uint8_t pattern(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + 1u);
}

/* Reserves and publishes a record of len bytes whose body is seq and a pattern from it. */
static bool put_seq(struct shmlog_producer *p, uint64_t seq, uint32_t len)
{
    struct shmlog_rec *r = shmlog_reserve(p, len);
    if (!r)
        return false;
    r->type = 1;
    r->flags = 0;
    r->aux = (uint16_t)seq;
    uint8_t *body = (uint8_t *)(r + 1);
    memcpy(body, &seq, sizeof seq);
    for (size_t i = sizeof seq; i < len - sizeof *r; i++)
        body[i] = pattern(seq, i);
    shmlog_publish(p, r, len);
    return true;
}

static void check_seq(const struct shmlog_rec *r, int len, uint64_t seq, uint32_t want_len)
{
    assert_int_equal(len, want_len);
    assert_int_equal(r->type, 1);
    assert_int_equal(r->aux, (uint16_t)seq);
    const uint8_t *body = (const uint8_t *)(r + 1);
    uint64_t got;
    memcpy(&got, body, sizeof got);
    assert_int_equal(got, seq);
    for (size_t i = sizeof seq; i < (size_t)len - sizeof *r; i++)
        if (body[i] != pattern(seq, i))
            fail_msg("record %llu: body byte %zu is %u, expected %u", (unsigned long long)seq,
                     i, body[i], pattern(seq, i));
}

/* The next record that is not a PAD: its length (>0), or what shmlog_peek said. */
static int next_rec(struct shmlog_cursor *c, const struct shmlog_rec **r, uint64_t *pads)
{
    for (;;) {
        int n = shmlog_peek(c, r);
        if (n <= 0 || (*r)->type != SHMLOG_REC_PAD)
            return n;
        if (pads)
            ++*pads;
        c->pos += (uint64_t)n;
    }
}

static void claim(struct fx *f, struct shmlog_producer *p)
{
    assert_err(shmlog_producer_claim(p, &f->a, f->pid_start), 0);
}

static uint64_t owner_of(struct fx *f, uint32_t lane)
{
    return atomic_load(&shmlog_lane_ctl(&f->a, lane)->owner);
}

/* Fills the lane with 64-byte records; returns how many fitted. */
static uint64_t fill_lane(struct shmlog_producer *p, uint64_t first_seq)
{
    uint64_t n = 0;
    while (put_seq(p, first_seq + n, 64))
        n++;
    return n;
}

/* Reads every published record, checking sequence numbers from first_seq on, then releases. */
static uint64_t drain_seq(struct shmlog_cursor *c, uint64_t first_seq, uint32_t len)
{
    const struct shmlog_rec *r;
    int n;
    uint64_t k = 0;
    while ((n = next_rec(c, &r, NULL)) > 0) {
        check_seq(r, n, first_seq + k, len);
        c->pos += (uint64_t)n;
        k++;
    }
    assert_err(n, 0);
    shmlog_release(c, c->pos);
    return k;
}

static void spill_file(struct fx *f, const struct shmlog_producer *p, char *buf, size_t len)
{
    assert_err(shmlog_spill_path(&f->a, p->lane, p->gen, buf, len), 0);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return UINT64_MAX;
    return (uint64_t)st.st_size;
}

struct body {
    uint64_t id;
    char text[52];
};

static struct body make_body(uint64_t id)
{
    struct body b;
    memset(&b, 0, sizeof b);
    b.id = id;
    snprintf(b.text, sizeof b.text, "param-%llu", (unsigned long long)id);
    return b;
}

/* ---- the record protocol ------------------------------------------------------------------ */

static void test_published_records_read_back_exactly(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    static const uint32_t lens[] = {16, 24, 64, 8 + 8, 256, 1024, 40, 4096};
    /* 80 records, 55 KiB: they fit in the 64 KiB lane */
    for (uint64_t s = 0; s < 80; s++)
        assert_true(put_seq(&p, s, lens[s % 8]));

    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, p.lane, 0);
    const struct shmlog_rec *r;
    for (uint64_t s = 0; s < 80; s++) {
        int n = shmlog_peek(&c, &r);
        check_seq(r, n, s, lens[s % 8]);
        c.pos += (uint64_t)n;
    }
    assert_int_equal(c.pos, p.tail);
    assert_err(shmlog_peek(&c, &r), 0);
    shmlog_producer_close(&p);
}

static void test_release_zeroes_consumed_space_and_advances_head(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    for (uint64_t s = 0; s < 50; s++)
        assert_true(put_seq(&p, s, 128));
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, p.lane, 0);
    const struct shmlog_rec *r;
    for (int k = 0; k < 20; k++)
        c.pos += (uint64_t)shmlog_peek(&c, &r);
    shmlog_release(&c, c.pos);
    assert_int_equal(atomic_load(&c.ctl->head), 20 * 128);
    const uint8_t *data = shmlog_lane_data(&f->a, p.lane);
    for (size_t i = 0; i < 20 * 128; i++)
        if (data[i])
            fail_msg("byte %zu not zeroed after release", i);
    /* the unreleased records are intact */
    for (uint64_t s = 20; s < 50; s++) {
        int n = shmlog_peek(&c, &r);
        check_seq(r, n, s, 128);
        c.pos += (uint64_t)n;
    }
    /* releasing an older position does nothing */
    shmlog_release(&c, 64);
    assert_int_equal(atomic_load(&c.ctl->head), 20 * 128);
    shmlog_producer_close(&p);
}

static void test_wraparound_mixed_sizes_pads_skipped_data_intact(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, p.lane, 0);

    uint64_t rng = 12345, wseq = 0, rseq = 0, pads = 0, full = 0;
    uint32_t pending_len[1 << 14];
    const uint64_t laps = 40;
    while (c.pos < laps * LANE_SIZE) {
        /* produce a random number of records, or until the lane is full */
        uint64_t burst = 1 + mix64(rng++) % 600;
        for (uint64_t k = 0; k < burst; k++) {
            uint32_t len = (uint32_t)(16 + 8 * (mix64(rng++) % 512)); /* 16..4104 bytes */
            if (wseq - rseq >= (1 << 14))
                break;
            if (!put_seq(&p, wseq, len)) {
                full++;
                break;
            }
            pending_len[wseq % (1 << 14)] = len;
            wseq++;
        }
        /* consume a random number of them, then release in one batch */
        uint64_t take = 1 + mix64(rng++) % 700;
        const struct shmlog_rec *r;
        for (uint64_t k = 0; k < take && rseq < wseq; k++) {
            int n = next_rec(&c, &r, &pads);
            check_seq(r, n, rseq, pending_len[rseq % (1 << 14)]);
            c.pos += (uint64_t)n;
            rseq++;
        }
        shmlog_release(&c, c.pos);
    }
    const struct shmlog_rec *r;
    while (rseq < wseq) {
        int n = next_rec(&c, &r, &pads);
        check_seq(r, n, rseq, pending_len[rseq % (1 << 14)]);
        c.pos += (uint64_t)n;
        rseq++;
    }
    assert_err(next_rec(&c, &r, &pads), 0);
    assert_int_equal(c.pos, p.tail);
    print_message("%llu records over %llu laps, %llu PADs, lane full %llu times\n",
                  (unsigned long long)wseq, (unsigned long long)(c.pos / LANE_SIZE),
                  (unsigned long long)pads, (unsigned long long)full);
    assert_true(pads > 0);
    assert_true(full > 0);
    shmlog_producer_close(&p);
}

/* ---- a full lane ---------------------------------------------------------------------------- */

static void test_full_lane_reserve_null_until_release(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    uint64_t n = fill_lane(&p, 0);
    assert_int_equal(n * 64, LANE_SIZE);
    assert_null(shmlog_reserve(&p, 64));
    assert_null(shmlog_reserve(&p, 8));

    /* reading without releasing gives nothing back */
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, p.lane, 0);
    const struct shmlog_rec *r;
    for (uint64_t k = 0; k < n; k++)
        c.pos += (uint64_t)shmlog_peek(&c, &r);
    assert_null(shmlog_reserve(&p, 64));

    /* releasing one record makes room for exactly one more */
    shmlog_release(&c, 64);
    assert_true(put_seq(&p, n, 64));
    assert_null(shmlog_reserve(&p, 64));

    shmlog_release(&c, c.pos);
    assert_int_equal(fill_lane(&p, n + 1), n - 1);
    check_seq((const struct shmlog_rec *)shmlog_lane_data(&f->a, p.lane), 64, n, 64);
    shmlog_producer_close(&p);
}

static void test_full_lane_consumer_stops_after_one_unreleased_lap(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    uint64_t n = fill_lane(&p, 0);
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, p.lane, 0);
    /* read everything without releasing: a whole lap, and then nothing (the bytes at the next
     * position are the first record, still unreleased, not a new one) */
    const struct shmlog_rec *r;
    int len;
    uint64_t k = 0;
    while ((len = shmlog_peek(&c, &r)) > 0 && k <= n) {
        check_seq(r, len, k, 64);
        c.pos += (uint64_t)len;
        k++;
    }
    assert_int_equal(k, n);
    assert_int_equal(c.pos, LANE_SIZE);
    assert_err(len, 0);
    /* after the release the next lap reads as new records again */
    shmlog_release(&c, c.pos);
    assert_err(shmlog_peek(&c, &r), 0);
    assert_true(put_seq(&p, n, 64));
    len = shmlog_peek(&c, &r);
    check_seq(r, len, n, 64);
    shmlog_producer_close(&p);
}

static void test_full_lane_metric_drops_counted_in_lane(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    fill_lane(&p, 0);
    for (int k = 0; k < 7; k++) {
        assert_null(shmlog_reserve(&p, 40));
        shmlog_count_drop(&p);
    }
    assert_int_equal(atomic_load(&p.ctl->dropped_metrics), 7);
    struct body b = make_body(1);
    assert_err(shmlog_put(&p, 1, 0, 0, &b, sizeof b, false), -ENOBUFS);
    assert_int_equal(atomic_load(&p.ctl->lost_records), 0);
    assert_int_equal(atomic_load(&p.ctl->spilled_records), 0);
    shmlog_producer_close(&p);
    assert_int_equal(atomic_load(&shmlog_lane_ctl(&f->a, 0)->dropped_metrics), 7);
}

static void test_full_lane_put_spills_to_lane_file(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    char path[4200];
    spill_file(f, &p, path, sizeof path);
    assert_int_equal(file_size(path), UINT64_MAX); /* nothing spilled yet */
    fill_lane(&p, 0);
    for (uint64_t k = 0; k < 3; k++) {
        struct body b = make_body(k);
        assert_err(shmlog_put(&p, 7, 0, 0, &b, sizeof b, true), 1);
    }
    uint64_t rec = sizeof(struct shmlog_spill_hdr) + sizeof(struct shmlog_rec) + sizeof(struct body);
    assert_int_equal(file_size(path), 3 * rec);
    assert_int_equal(atomic_load(&p.ctl->spill_bytes), 3 * rec);
    assert_int_equal(atomic_load(&p.ctl->spilled_records), 3);
    assert_int_equal(atomic_load(&p.ctl->lost_records), 0);
    shmlog_producer_close(&p);
}

static void test_spill_mark_written_first_when_space_returns(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    uint64_t n = fill_lane(&p, 0);
    for (uint64_t k = 0; k < 3; k++) {
        struct body b = make_body(k);
        assert_err(shmlog_put(&p, 7, 0, 0, &b, sizeof b, true), 1);
    }
    uint64_t spilled = atomic_load(&p.ctl->spill_bytes);

    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, p.lane, 0);
    assert_int_equal(drain_seq(&c, 0, 64), n);
    /* the ring has room again: the next record is preceded by a SPILL_MARK */
    assert_true(put_seq(&p, 1000, 64));
    const struct shmlog_rec *r;
    int len = shmlog_peek(&c, &r);
    assert_err(len, 16);
    assert_int_equal(r->type, SHMLOG_REC_SPILL_MARK);
    uint64_t upto;
    memcpy(&upto, r + 1, sizeof upto);
    assert_int_equal(upto, spilled);
    c.pos += (uint64_t)len;
    len = shmlog_peek(&c, &r);
    check_seq(r, len, 1000, 64);
    c.pos += (uint64_t)len;
    /* one mark per spill episode: the following record comes without one */
    assert_true(put_seq(&p, 1001, 64));
    len = shmlog_peek(&c, &r);
    check_seq(r, len, 1001, 64);
    shmlog_producer_close(&p);
}

static void test_spill_reader_returns_records_in_order(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, p.lane, 0);
    uint64_t marks[2], id = 0, seq = 0;
    const struct shmlog_rec *r;
    /* two spill episodes, each closed by a mark once space returns */
    for (int ep = 0; ep < 2; ep++) {
        seq += fill_lane(&p, seq);
        while (put_seq(&p, seq, 16)) /* to the last byte: no record of any size fits */
            seq++;
        for (int k = 0; k < 5; k++, id++) {
            struct body b = make_body(id);
            /* bodies of varied length, so that the padding is exercised */
            assert_err(shmlog_put(&p, 7, 0x5a, (uint16_t)id, &b, 9 + (uint32_t)(id * 5 % 40), true),
                       1);
        }
        const struct shmlog_rec *m;
        int n;
        while ((n = next_rec(&c, &m, NULL)) > 0)
            c.pos += (uint64_t)n;
        shmlog_release(&c, c.pos);
        assert_true(put_seq(&p, seq++, 64));
        n = next_rec(&c, &m, NULL);
        assert_err(n, 16);
        assert_int_equal(m->type, SHMLOG_REC_SPILL_MARK);
        memcpy(&marks[ep], m + 1, sizeof marks[ep]);
        c.pos += 16;
        c.pos += (uint64_t)next_rec(&c, &m, NULL);
    }
    assert_true(marks[1] > marks[0]);

    char path[4200];
    spill_file(f, &p, path, sizeof path);
    struct shmlog_spill_reader rd;
    assert_err(shmlog_spill_open(&rd, path, 0), 0);
    uint64_t want = 0;
    for (int ep = 0; ep < 2; ep++) {
        int n;
        while ((n = shmlog_spill_next(&rd, marks[ep], &r)) > 0) {
            struct body b = make_body(want);
            uint32_t blen = 9 + (uint32_t)(want * 5 % 40);
            assert_int_equal(n, (sizeof *r + blen + 7) & ~7u);
            assert_int_equal(atomic_load(&((struct shmlog_rec *)r)->len), n);
            assert_int_equal(r->type, 7);
            assert_int_equal(r->flags, 0x5a);
            assert_int_equal(r->aux, (uint16_t)want);
            assert_memory_equal(r + 1, &b, blen);
            want++;
        }
        assert_err(n, 0);
        assert_int_equal(rd.pos, marks[ep]);
        assert_int_equal(want, 5 * (uint64_t)(ep + 1));
    }
    assert_err(shmlog_spill_next(&rd, UINT64_MAX, &r), 0);
    shmlog_spill_close(&rd);
    shmlog_producer_close(&p);
}

static void test_spill_quota_reached_edquot_and_lost_counted(void **state)
{
    struct fx *f = *state; /* spill quota 1024 bytes */
    struct shmlog_producer p;
    claim(f, &p);
    fill_lane(&p, 0);
    char body[100] = "x";
    const uint64_t rec = sizeof(struct shmlog_spill_hdr) + sizeof(struct shmlog_rec) + 104;
    int spilled = 0, r;
    while ((r = shmlog_put(&p, 7, 0, 0, body, sizeof body, true)) == 1)
        spilled++;
    assert_err(r, -EDQUOT);
    assert_int_equal(spilled, 1024 / rec);
    assert_int_equal(atomic_load(&p.ctl->lost_records), 1);
    assert_err(shmlog_put(&p, 7, 0, 0, body, sizeof body, true), -EDQUOT);
    assert_int_equal(atomic_load(&p.ctl->lost_records), 2);
    assert_int_equal(atomic_load(&p.ctl->spilled_records), (uint64_t)spilled);
    char path[4200];
    spill_file(f, &p, path, sizeof path);
    assert_int_equal(file_size(path), spilled * rec);
    assert_true(file_size(path) <= 1024);
    shmlog_producer_close(&p);
}

static void test_spill_file_of_another_user_is_not_written(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    fill_lane(&p, 0);
    char path[4200];
    spill_file(f, &p, path, sizeof path);
    /* Someone else put a file at our spill path (the ring directory is 01777). */
    FILE *trap = fopen(path, "w");
    assert_non_null(trap);
    fclose(trap);
    if (getuid() == 0)
        assert_int_equal(chown(path, 4242, 4242), 0);
    else
        skip(); /* cannot make a file of another user without root */
    char body[16] = "x";
    assert_err(shmlog_put(&p, 7, 0, 0, body, sizeof body, true), -EPERM);
    assert_int_equal(atomic_load(&p.ctl->lost_records), 1); /* counted, not written there */
    assert_int_equal(file_size(path), 0);
    shmlog_producer_close(&p);
}

static void test_spill_corrupted_record_ebadmsg(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    fill_lane(&p, 0);
    for (uint64_t k = 0; k < 3; k++) {
        struct body b = make_body(k);
        assert_err(shmlog_put(&p, 7, 0, 0, &b, sizeof b, true), 1);
    }
    char path[4200];
    spill_file(f, &p, path, sizeof path);
    const uint64_t rec = sizeof(struct shmlog_spill_hdr) + sizeof(struct shmlog_rec) + sizeof(struct body);
    /* flip one byte in the body of the second record */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t at = (off_t)(rec + sizeof(struct shmlog_spill_hdr) + sizeof(struct shmlog_rec) + 11);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, at), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, at), 1);
    close(fd);

    struct shmlog_spill_reader rd;
    const struct shmlog_rec *r;
    assert_err(shmlog_spill_open(&rd, path, 0), 0);
    assert_err(shmlog_spill_next(&rd, UINT64_MAX, &r), sizeof(struct shmlog_rec) + sizeof(struct body));
    assert_err(shmlog_spill_next(&rd, UINT64_MAX, &r), -EBADMSG);
    assert_int_equal(rd.pos, rec); /* the reader stays at the bad record */
    shmlog_spill_close(&rd);
    shmlog_producer_close(&p);
}

static void test_spill_torn_tail_reads_as_nothing_yet(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    fill_lane(&p, 0);
    for (uint64_t k = 0; k < 2; k++) {
        struct body b = make_body(k);
        assert_err(shmlog_put(&p, 7, 0, 0, &b, sizeof b, true), 1);
    }
    char path[4200];
    spill_file(f, &p, path, sizeof path);
    const uint64_t rec = sizeof(struct shmlog_spill_hdr) + sizeof(struct shmlog_rec) + sizeof(struct body);
    /* a producer killed in the middle of its append leaves half a record */
    assert_int_equal(truncate(path, (off_t)(rec + rec / 2)), 0);
    struct shmlog_spill_reader rd;
    const struct shmlog_rec *r;
    assert_err(shmlog_spill_open(&rd, path, 0), 0);
    assert_true(shmlog_spill_next(&rd, UINT64_MAX, &r) > 0);
    assert_err(shmlog_spill_next(&rd, UINT64_MAX, &r), 0);
    shmlog_spill_close(&rd);
    shmlog_producer_close(&p);
}

static void test_spill_open_without_file_enoent(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    char path[4200];
    spill_file(f, &p, path, sizeof path);
    struct shmlog_spill_reader rd;
    assert_err(shmlog_spill_open(&rd, path, 0), -ENOENT);
    shmlog_producer_close(&p);
}

static void test_put_oversized_body_emsgsize(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    static uint8_t big[LANE_SIZE / 4 + 8];
    assert_err(shmlog_put(&p, 7, 0, 0, big, sizeof big, true), -EMSGSIZE);
    assert_err(shmlog_put(&p, 7, 0, 0, big, LANE_SIZE / 4, true), 0);
    shmlog_producer_close(&p);
}

/* ---- lanes: claim, close, free, reopen ------------------------------------------------------ */

static void test_lane_free_then_claim_bumps_generation_and_resets(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    uint32_t lane = p.lane, gen = p.gen;
    fill_lane(&p, 0);
    shmlog_count_drop(&p);
    struct body b = make_body(1);
    assert_err(shmlog_put(&p, 7, 0, 0, &b, sizeof b, true), 1);
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, lane, 0);
    shmlog_release(&c, 4096); /* partly consumed */
    shmlog_producer_close(&p);

    uint64_t w = owner_of(f, lane);
    assert_true(w & SHMLOG_OWNER_CLOSED);
    assert_int_equal(SHMLOG_OWNER_PID(w), getpid());
    assert_err(shmlog_lane_free(&f->a, lane, w), 0);

    struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&f->a, lane);
    assert_int_equal(atomic_load(&ctl->owner), 0);
    assert_int_equal(atomic_load(&ctl->generation), gen + 1);
    assert_int_equal(atomic_load(&ctl->head), 0);
    assert_int_equal(atomic_load(&ctl->tail_hint), 0);
    assert_int_equal(atomic_load(&ctl->dropped_metrics), 0);
    assert_int_equal(atomic_load(&ctl->spill_bytes), 0);
    assert_int_equal(atomic_load(&ctl->spilled_records), 0);
    const uint8_t *data = shmlog_lane_data(&f->a, lane);
    for (size_t i = 0; i < LANE_SIZE; i++)
        if (data[i])
            fail_msg("byte %zu of the freed lane is not zero", i);

    struct shmlog_producer q;
    claim(f, &q);
    assert_int_equal(q.lane, lane);
    assert_int_equal(q.gen, gen + 1);
    assert_int_equal(q.tail, 0);
    assert_int_equal(owner_of(f, lane), (uint64_t)getpid());
    assert_true(put_seq(&q, 7, 64));
    shmlog_cursor_init(&c, &f->a, lane, 0);
    const struct shmlog_rec *r;
    int n = shmlog_peek(&c, &r);
    check_seq(r, n, 7, 64);
    shmlog_producer_close(&q);
}

static void test_claim_reopens_own_closed_lane_at_its_tail(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    uint32_t lane = p.lane;
    for (uint64_t s = 0; s < 10; s++)
        assert_true(put_seq(&p, s, 72));
    uint64_t tail = p.tail;
    shmlog_producer_close(&p);
    uint64_t w = owner_of(f, lane);
    assert_true(w & SHMLOG_OWNER_CLOSED);
    assert_int_equal(atomic_load(&shmlog_lane_ctl(&f->a, lane)->tail_hint), tail);

    struct shmlog_producer q;
    claim(f, &q);
    assert_int_equal(q.lane, lane);
    assert_int_equal(q.tail, tail);
    uint64_t w2 = owner_of(f, lane);
    assert_false(w2 & SHMLOG_OWNER_CLOSED);
    assert_int_equal(SHMLOG_OWNER_PID(w2), getpid());
    assert_int_equal(w2, (w & ~SHMLOG_OWNER_CLOSED) + SHMLOG_OWNER_EPOCH1);
    for (uint64_t s = 10; s < 20; s++)
        assert_true(put_seq(&q, s, 72));

    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, lane, 0);
    assert_int_equal(drain_seq(&c, 0, 72), 20);
    for (uint32_t i = 0; i < LANES; i++)
        if (i != lane)
            assert_int_equal(owner_of(f, i), 0);
    shmlog_producer_close(&q);
}

static void test_claim_skips_closed_lane_of_earlier_process_with_same_pid(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p, q;
    assert_err(shmlog_producer_claim(&p, &f->a, f->pid_start + 1), 0);
    uint32_t lane = p.lane;
    shmlog_producer_close(&p);
    claim(f, &q);
    assert_true(q.lane != lane);
    assert_true(owner_of(f, lane) & SHMLOG_OWNER_CLOSED);
    shmlog_producer_close(&q);
}

static void test_lane_free_eagain_when_owner_word_changed(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    uint32_t lane = p.lane;
    shmlog_producer_close(&p);
    uint64_t seen = owner_of(f, lane);

    /* the producer reopened it meanwhile */
    claim(f, &p);
    assert_int_equal(p.lane, lane);
    assert_err(shmlog_lane_free(&f->a, lane, seen), -EAGAIN);
    assert_int_equal(owner_of(f, lane) & SHMLOG_OWNER_FREEING, 0);

    /* ... and closed it again: the same pid and flags, but a new epoch */
    shmlog_producer_close(&p);
    uint64_t now = owner_of(f, lane);
    assert_true(now != seen);
    assert_int_equal(now & 0xffffffffffull, seen & 0xffffffffffull);
    assert_err(shmlog_lane_free(&f->a, lane, seen), -EAGAIN);
    assert_int_equal(owner_of(f, lane), now);
    assert_err(shmlog_lane_free(&f->a, lane, now), 0);
    assert_int_equal(owner_of(f, lane), 0);
}

static void test_lane_free_refuses_open_lane(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    uint64_t w = owner_of(f, p.lane);
    assert_err(shmlog_lane_free(&f->a, p.lane, w), -EAGAIN);
    assert_int_equal(owner_of(f, p.lane), w);
    shmlog_producer_close(&p);
}

static void test_lane_close_dead_needs_observed_owner(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&f->a, p.lane);
    uint64_t w = atomic_load(&ctl->owner);
    assert_false(shmlog_lane_close_dead(ctl, w + SHMLOG_OWNER_EPOCH1));
    assert_int_equal(atomic_load(&ctl->owner), w);
    assert_true(shmlog_lane_close_dead(ctl, w));
    assert_int_equal(atomic_load(&ctl->owner), w | SHMLOG_OWNER_CLOSED);
    assert_err(shmlog_lane_free(&f->a, p.lane, w | SHMLOG_OWNER_CLOSED), 0);
}

static void test_all_lanes_taken_ebusy(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p[LANES + 1];
    for (uint32_t i = 0; i < LANES; i++)
        claim(f, &p[i]);
    assert_err(shmlog_producer_claim(&p[LANES], &f->a, f->pid_start), -EBUSY);
    for (uint32_t i = 0; i < LANES; i++)
        shmlog_producer_close(&p[i]);
}

/* ---- the consumer's view of a lane ----------------------------------------------------------- */

static void test_peek_inprogress_record_gives_its_length(void **state)
{
    struct fx *f = *state;
    struct shmlog_producer p;
    claim(f, &p);
    assert_true(put_seq(&p, 0, 32));
    struct shmlog_rec *r = shmlog_reserve(&p, 48);
    assert_non_null(r);
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, p.lane, 32);
    const struct shmlog_rec *got;
    assert_err(shmlog_peek(&c, &got), -EINPROGRESS);
    assert_int_equal(shmlog_peek_inprogress_len(&c), 48);
    r->type = 1;
    shmlog_publish(&p, r, 48);
    assert_err(shmlog_peek(&c, &got), 48);
    assert_int_equal(shmlog_peek_inprogress_len(&c), 0);
    shmlog_producer_close(&p);
}

static void test_peek_impossible_length_ebadmsg(void **state)
{
    struct fx *f = *state;
    uint8_t *data = shmlog_lane_data(&f->a, 1);
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, 1, 0);
    struct shmlog_rec *r = (struct shmlog_rec *)data;
    const struct shmlog_rec *got;
    static const int32_t bad[] = {4, 12, 100, LANE_SIZE + 8, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        atomic_store(&r->len, bad[i]);
        assert_err(shmlog_peek(&c, &got), -EBADMSG);
        atomic_store(&r->len, -bad[i]);
        assert_int_equal(shmlog_peek_inprogress_len(&c), 0);
    }
    atomic_store(&r->len, INT32_MIN);
    assert_err(shmlog_peek(&c, &got), -EINPROGRESS);
    assert_int_equal(shmlog_peek_inprogress_len(&c), 0);
    /* a record that would run past the end of the lane */
    c.pos = LANE_SIZE - 64;
    r = (struct shmlog_rec *)(data + LANE_SIZE - 64);
    atomic_store(&r->len, 128);
    assert_err(shmlog_peek(&c, &got), -EBADMSG);
    atomic_store(&r->len, -128);
    assert_int_equal(shmlog_peek_inprogress_len(&c), 0);
    atomic_store(&r->len, 64); /* exactly to the end is fine */
    assert_err(shmlog_peek(&c, &got), 64);
}

/* ---- opening: foreign, old, broken files --------------------------------------------------- */

static void write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void test_open_foreign_file_eproto(void **state)
{
    struct fx *f = *state; /* empty scratch directory */
    static uint8_t junk[3 * 4096 + 17];
    uint64_t x = 99;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)mix64(x++);
    const char text[] = "#!/bin/sh\necho another program's file\n";
    struct shmlog_geometry g = small_geo();
    const struct {
        const void *buf;
        size_t len;
    } files[] = {{junk, sizeof junk}, {text, sizeof text - 1}, {"", 0}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        write_file(f->s.path, files[i].buf, files[i].len);
        assert_err(shmlog_arena_open(&f->a, f->s.path, 0, NULL), -EPROTO);
        assert_err(shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g), -EPROTO);
        /* never overwritten */
        assert_int_equal(file_size(f->s.path), files[i].len);
        if (files[i].len) {
            uint8_t *back = malloc(files[i].len);
            int fd = open(f->s.path, O_RDONLY);
            assert_int_equal(read(fd, back, files[i].len), (ssize_t)files[i].len);
            close(fd);
            assert_memory_equal(back, files[i].buf, files[i].len);
            free(back);
        }
    }
    assert_int_equal(scratch_count(&f->s), 1);
}

static void test_open_absent_without_create_enoent(void **state)
{
    struct fx *f = *state;
    assert_err(shmlog_arena_open(&f->a, f->s.path, 0, NULL), -ENOENT);
    assert_int_equal(scratch_count(&f->s), 0);
}

static void test_create_bad_geometry_einval(void **state)
{
    struct fx *f = *state;
    struct shmlog_geometry g = small_geo();
    g.lane_count = SHMLOG_MAX_LANES + 1;
    assert_err(shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g), -EINVAL);
    g = small_geo();
    g.lane_size = (uint64_t)SHMLOG_MAX_LANE_SIZE * 2;
    assert_err(shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g), -EINVAL);
    g = small_geo();
    g.lane_size = 4096;
    assert_err(shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g), -EINVAL);
    g = small_geo();
    g.clock = 9;
    assert_err(shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g), -EINVAL);
    assert_int_equal(scratch_count(&f->s), 0);
}

/* Closes the fixture's arena and overwrites n bytes of its header at off. */
static void patch_header(struct fx *f, size_t off, const void *val, size_t n)
{
    shmlog_arena_close(&f->a);
    int fd = open(f->s.path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, val, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void test_open_other_version_eprotonosupport(void **state)
{
    struct fx *f = *state;
    uint32_t v = SHMLOG_VERSION + 1;
    patch_header(f, offsetof(struct shmlog_arena_hdr, version), &v, sizeof v);
    assert_err(shmlog_arena_open(&f->a, f->s.path, 0, NULL), -EPROTONOSUPPORT);
    struct shmlog_geometry g = small_geo();
    assert_err(shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g), -EPROTONOSUPPORT);
}

static void test_open_truncated_file_ebadmsg(void **state)
{
    struct fx *f = *state;
    uint64_t size = f->a.size;
    shmlog_arena_close(&f->a);
    /* a page short, half, the header page alone, a stub that still starts with the magic */
    const uint64_t cuts[] = {size - 4096, size / 2, 4096, 100};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        uint64_t to = cuts[i];
        assert_int_equal(truncate(f->s.path, (off_t)to), 0);
        assert_err(shmlog_arena_open(&f->a, f->s.path, 0, NULL), -EBADMSG);
    }
}

static void test_open_inconsistent_header_ebadmsg(void **state)
{
    struct fx *f = *state;
    struct shmlog_arena_hdr orig = *f->a.hdr;
    shmlog_arena_close(&f->a);
    for (int v = 0; v < 7; v++) {
        struct shmlog_arena_hdr h = orig;
        switch (v) {
        case 0: h.lane_size = 3 * 65536; break;           /* not a power of two */
        case 1: h.lane_count = 0; break;
        case 2: h.lane_count = LANES + 1; break;         /* more lanes than the file holds */
        case 3: h.arena_size += 4096; break;
        case 4: h.hdr_size = 8192; break;
        case 5: h.ctl_size = 128; break;
        case 6: h.clock = 77; break;
        }
        int fd = open(f->s.path, O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
        close(fd);
        int r = shmlog_arena_open(&f->a, f->s.path, 0, NULL);
        if (r != -EBADMSG)
            fail_msg("header variant %d: open gave %d (%s), expected -EBADMSG", v, r, errname(r));
        assert_err(shmlog_arena_validate(&h, orig.arena_size), -EBADMSG);
    }
    assert_err(shmlog_arena_validate(&orig, orig.arena_size), 0);
}

static void test_strerror_gives_a_sentence_for_each_error(void **state)
{
    (void)state;
    static const int errs[] = {-EPROTO, -EPROTONOSUPPORT, -EBADMSG, -EBUSY, -EINVAL};
    const size_t n = sizeof errs / sizeof errs[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = shmlog_strerror(errs[i]);
        assert_non_null(s);
        if (strlen(s) < 30 || !strchr(s, ' '))
            fail_msg("shmlog_strerror(%d) is not a sentence: \"%s\"", errs[i], s);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, shmlog_strerror(errs[j]));
    }
    const char *other = shmlog_strerror(-ENOENT);
    assert_non_null(other);
    assert_true(strlen(other) > 0);
}

/* ---- racing creators ------------------------------------------------------------------------ */

struct race_slot {
    int result;
    uint8_t id[16];
};

static void test_racing_creators_map_the_same_arena(void **state)
{
    struct fx *f = *state; /* empty scratch directory */
    enum { CHILDREN = 8, ROUNDS = 12 };
    struct race_slot *slots = mmap(NULL, sizeof(struct race_slot) * CHILDREN,
                                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(slots != MAP_FAILED);
    struct shmlog_geometry g = small_geo();
    for (int round = 0; round < ROUNDS; round++) {
        char name[32];
        snprintf(name, sizeof name, "race%d", round);
        scratch_name(&f->s, name);
        memset(slots, 0xee, sizeof(struct race_slot) * CHILDREN);
        int gate[2];
        assert_int_equal(pipe(gate), 0);
        pid_t pids[CHILDREN];
        for (int i = 0; i < CHILDREN; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                close(gate[1]);
                char c;
                while (read(gate[0], &c, 1) < 0 && errno == EINTR)
                    ;
                struct shmlog_arena a;
                int r = shmlog_arena_open(&a, f->s.path, SHMLOG_CREATE, &g);
                slots[i].result = r;
                if (r == 0) {
                    memcpy(slots[i].id, a.hdr->arena_id, 16);
                    shmlog_arena_close(&a);
                }
                _exit(0);
            }
        }
        close(gate[0]);
        close(gate[1]); /* all children start at once */
        for (int i = 0; i < CHILDREN; i++) {
            int st;
            assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
            assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        assert_err(shmlog_arena_open(&f->a, f->s.path, 0, NULL), 0);
        static const uint8_t zero[16];
        assert_memory_not_equal(f->a.hdr->arena_id, zero, 16);
        for (int i = 0; i < CHILDREN; i++) {
            if (slots[i].result != 0)
                fail_msg("round %d child %d: open gave %d (%s)", round, i, slots[i].result,
                         errname(slots[i].result));
            assert_memory_equal(slots[i].id, f->a.hdr->arena_id, 16);
        }
        shmlog_arena_close(&f->a);
        /* no temporary files left behind */
        assert_int_equal(scratch_count(&f->s), round + 1);
    }
    munmap(slots, sizeof(struct race_slot) * CHILDREN);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
#define T_EMPTY(name) cmocka_unit_test_setup_teardown(name, fx_setup_empty, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_published_records_read_back_exactly),
        T(test_release_zeroes_consumed_space_and_advances_head),
        T(test_wraparound_mixed_sizes_pads_skipped_data_intact),
        T(test_full_lane_reserve_null_until_release),
        T(test_full_lane_consumer_stops_after_one_unreleased_lap),
        T(test_full_lane_metric_drops_counted_in_lane),
        T(test_full_lane_put_spills_to_lane_file),
        T(test_spill_mark_written_first_when_space_returns),
        T(test_spill_reader_returns_records_in_order),
        cmocka_unit_test_setup_teardown(test_spill_quota_reached_edquot_and_lost_counted,
                                        fx_setup_small_quota, fx_teardown),
        T(test_spill_file_of_another_user_is_not_written),
        T(test_spill_corrupted_record_ebadmsg),
        T(test_spill_torn_tail_reads_as_nothing_yet),
        T(test_spill_open_without_file_enoent),
        T(test_put_oversized_body_emsgsize),
        T(test_lane_free_then_claim_bumps_generation_and_resets),
        T(test_claim_reopens_own_closed_lane_at_its_tail),
        T(test_claim_skips_closed_lane_of_earlier_process_with_same_pid),
        T(test_lane_free_eagain_when_owner_word_changed),
        T(test_lane_free_refuses_open_lane),
        T(test_lane_close_dead_needs_observed_owner),
        T(test_all_lanes_taken_ebusy),
        T(test_peek_inprogress_record_gives_its_length),
        T(test_peek_impossible_length_ebadmsg),
        T_EMPTY(test_open_foreign_file_eproto),
        T_EMPTY(test_open_absent_without_create_enoent),
        T_EMPTY(test_create_bad_geometry_einval),
        T(test_open_other_version_eprotonosupport),
        T(test_open_truncated_file_ebadmsg),
        T(test_open_inconsistent_header_ebadmsg),
        T(test_strerror_gives_a_sentence_for_each_error),
        T_EMPTY(test_racing_creators_map_the_same_arena),
    };
    return cmocka_run_group_tests_name("ring_unit", tests, NULL, NULL);
}
