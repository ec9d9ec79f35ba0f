/* test_protocol.c — the agent-server codec (sync/protocol.c): every message and op type
 * round trips with edge values, the batch encoder refuses misuse, and the decoder refuses
 * damaged or hostile frames with -EBADMSG (never a crash: run it under ASan too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "mpk.h"
#include "protocol.h"
#include "shmlog.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    uint64_t x = rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng = x;
}

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static double from_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static const uint8_t AGENT[16] = {0xa0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xaf};

/* ---- helpers ---- */

/* A frame from raw map bytes: the bytes plus their CRC-32C (little-endian). *len in and out. */
static uint8_t *seal(const uint8_t *body, size_t *len)
{
    uint8_t *f = malloc(*len + 4);
    assert_non_null(f);
    memcpy(f, body, *len);
    uint32_t crc = shmlog_crc32c(0, body, *len);
    for (int i = 0; i < 4; i++)
        f[*len + (size_t)i] = (uint8_t)(crc >> (8 * i));
    *len += 4;
    return f;
}

/* Decodes the map an st_mpw holds (sealed here), frees the writer. */
static int decode_mpw(struct st_mpw *w, struct sync_msg *m)
{
    assert_int_equal(st_mpw_done(w), 0);
    size_t len = w->len;
    uint8_t *f = seal(w->buf, &len);
    st_mpw_free(w);
    int rc = sync_decode(f, len, m);
    free(f);
    return rc;
}

static int decode_raw(const void *body, size_t len, struct sync_msg *m)
{
    uint8_t *f = seal(body, &len);
    int rc = sync_decode(f, len, m);
    free(f);
    return rc;
}

static void assert_crc_ok(const struct sync_buf *b)
{
    assert_true(b->len > 4);
    uint32_t crc = shmlog_crc32c(0, b->data, b->len - 4);
    const uint8_t *t = b->data + b->len - 4;
    assert_int_equal(crc, (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
                              (uint32_t)t[3] << 24);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static struct store_point odd_point(void)
{
    static const double special[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, 1.0, -1.0,
                                     5e-324, 1.7976931348623157e308};
    struct store_point p;
    switch (rnd() % 4) {
    case 0: p.step = (int64_t)rnd(); break;
    case 1: p.step = rnd() & 1 ? INT64_MIN : INT64_MAX; break;
    default: p.step = (int64_t)(rnd() % 1000) - 500; break; /* negative steps too */
    }
    p.ts_ms = rnd() % 3 ? 1700000000000 + (int64_t)(rnd() % 100000) : (int64_t)rnd();
    switch (rnd() % 4) {
    case 0: p.value = special[rnd() % (sizeof special / sizeof special[0])]; break;
    case 1: p.value = from_bits(rnd()); break; /* NaN payloads, subnormals */
    case 2: p.value = from_bits(0x7ff0000000000001ull | (rnd() & 0xfffff)); break; /* sNaN */
    default: p.value = (double)(rnd() % 1000) / 7.0; break;
    }
    return p;
}

static void assert_same_str(const char *a, const char *b)
{
    assert_non_null(b);
    assert_string_equal(a ? a : "", b);
}

static void assert_same_op(const struct store_op *a, const struct store_op *b)
{
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->type, b->type);
    assert_memory_equal(a->run, b->run, 16);
    switch (a->type) {
    case STORE_OP_RUN_START:
        assert_same_str(a->experiment, b->experiment);
        assert_same_str(a->name, b->name);
        assert_same_str(a->user, b->user);
        assert_same_str(a->host, b->host);
        assert_true(a->start_ms == b->start_ms);
        assert_int_equal(a->has_parent, b->has_parent);
        if (a->has_parent)
            assert_memory_equal(a->parent, b->parent, 16);
        break;
    case STORE_OP_RUN_END:
        assert_int_equal(a->status, b->status);
        assert_true(a->end_ms == b->end_ms);
        break;
    case STORE_OP_PARAM:
    case STORE_OP_TAG:
        assert_same_str(a->key, b->key);
        assert_same_str(a->value, b->value);
        break;
    case STORE_OP_METRICS:
        assert_same_str(a->key, b->key);
        assert_int_equal(a->first_index, b->first_index);
        assert_int_equal(a->count, b->count);
        break;
    case STORE_OP_ARTIFACT:
        assert_same_str(a->key, b->key);
        assert_memory_equal(a->sha256, b->sha256, 32);
        assert_int_equal(a->size, b->size);
        break;
    case STORE_OP_MODEL_REGISTER:
        assert_same_str(a->key, b->key);
        assert_same_str(a->model, b->model);
        assert_same_str(a->aliases, b->aliases);
        assert_same_str(a->description, b->description);
        assert_same_str(a->actor, b->actor);
        assert_same_str(a->digest, b->digest);
        assert_true(a->time_ms == b->time_ms);
        break;
    default:
        fail();
    }
}

/* A batch of ops (pts[i]: op i's points, or NULL), encoded, decoded and compared. */
static void round_trip_batch(const struct store_op *ops, const struct store_point *const *pts,
                             uint32_t n)
{
    struct sync_buf b;
    sync_buf_init(&b);
    assert_int_equal(sync_batch_begin(&b, AGENT, ops[0].seq, ops[0].seq + n - 1, n), 0);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(sync_batch_op(&b, &ops[i], pts[i]), 0);
    assert_int_equal(sync_batch_finish(&b), 0);
    assert_int_equal(b.err, 0);
    assert_crc_ok(&b);

    struct sync_msg m;
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, SYNC_BATCH);
    assert_memory_equal(m.agent, AGENT, 16);
    assert_int_equal(m.first, ops[0].seq);
    assert_int_equal(m.last, ops[0].seq + n - 1);
    assert_int_equal(m.nops, n);
    for (uint32_t i = 0; i < n; i++) {
        assert_same_op(&ops[i], &m.ops[i]);
        if (ops[i].type != STORE_OP_METRICS) {
            assert_null(m.points[i]);
            continue;
        }
        /* the points lie in the frame */
        if (m.ops[i].count)
            assert_true(m.points[i] >= b.data && m.points[i] + m.ops[i].count * 24 <= b.data + b.len);
        for (uint64_t k = 0; k < ops[i].count; k++) {
            struct store_point p;
            sync_point_get(m.points[i], k, &p);
            assert_true(p.step == pts[i][k].step);
            assert_true(p.ts_ms == pts[i][k].ts_ms);
            assert_int_equal(bits(p.value), bits(pts[i][k].value));
        }
    }
    /* the strings are the decoder's copies, not the frame's bytes */
    for (uint32_t i = 0; i < n; i++)
        if (m.ops[i].key)
            assert_false((const uint8_t *)m.ops[i].key >= b.data &&
                         (const uint8_t *)m.ops[i].key < b.data + b.len);
    sync_msg_free(&m);
    sync_buf_free(&b);
}

/* A valid batch of every op type, used by the damage tests. */
static struct sync_buf sample_batch(void)
{
    static struct store_point pts[5];
    for (int i = 0; i < 5; i++)
        pts[i] = (struct store_point){i - 2, 1700000000000 + i, i * 0.5};
    struct store_op ops[6] = {
        {.type = STORE_OP_RUN_START, .experiment = "exp", .name = "run", .user = "u",
         .host = "h", .start_ms = 1700000000000, .has_parent = true},
        {.type = STORE_OP_PARAM, .key = "lr", .value = "0.001"},
        {.type = STORE_OP_TAG, .key = "k", .value = ""},
        {.type = STORE_OP_METRICS, .key = "loss", .first_index = 7, .count = 5},
        {.type = STORE_OP_ARTIFACT, .key = "model.bin", .size = 1234},
        {.type = STORE_OP_RUN_END, .status = STORE_RUN_FINISHED, .end_ms = 1700000009999},
    };
    struct sync_buf b;
    sync_buf_init(&b);
    assert_int_equal(sync_batch_begin(&b, AGENT, 300, 305, 6), 0);
    for (int i = 0; i < 6; i++) {
        ops[i].seq = 300 + (uint64_t)i;
        memset(ops[i].run, 0x11, 16);
        memset(ops[i].parent, 0x22, 16);
        memset(ops[i].sha256, 0x33 + i, 32);
        assert_int_equal(sync_batch_op(&b, &ops[i], ops[i].type == STORE_OP_METRICS ? pts : NULL), 0);
    }
    assert_int_equal(sync_batch_finish(&b), 0);
    return b;
}

/* ---- round trips ---- */

static void hello_round_trips(void **state)
{
    (void)state;
    struct sync_buf b;
    struct sync_msg m;
    sync_buf_init(&b);
    char *h255 = repeat('h', 255);
    const char *hosts[] = {"", "gpu-node-17.cluster.local", h255, "h\xc3\xa9t\xc3\xa9"};
    const uint64_t nexts[] = {0, 1, 127, 128, UINT32_MAX, UINT64_MAX};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 6; j++) {
            assert_int_equal(sync_encode_hello(&b, AGENT, hosts[i], nexts[j]), 0);
            assert_crc_ok(&b);
            assert_int_equal(sync_decode(b.data, b.len, &m), 0);
            assert_int_equal(m.type, SYNC_HELLO);
            assert_int_equal(m.version, SYNC_PROTOCOL_VERSION);
            assert_memory_equal(m.agent, AGENT, 16);
            assert_string_equal(m.host, hosts[i]);
            assert_int_equal(m.next, nexts[j]);
            assert_int_equal(m.nops, 0);
            assert_null(m.ops);
            sync_msg_free(&m);
        }
    free(h255);
    /* a host the decoder could not take is refused when encoding */
    char *h256 = repeat('h', 256);
    assert_int_equal(sync_encode_hello(&b, AGENT, h256, 1), -ENAMETOOLONG);
    assert_int_equal(b.err, -ENAMETOOLONG);
    free(h256);
    /* a new frame in the same buffer starts clean */
    assert_int_equal(sync_encode_hello(&b, AGENT, "x", 5), 0);
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    assert_string_equal(m.host, "x");
    sync_msg_free(&m);
    sync_buf_free(&b);
}

static void welcome_ack_round_trip(void **state)
{
    (void)state;
    struct sync_buf b;
    struct sync_msg m;
    sync_buf_init(&b);
    const uint64_t hwms[] = {0, 1, 255, 65536, UINT64_MAX - 1, UINT64_MAX};
    for (size_t j = 0; j < 6; j++) {
        assert_int_equal(sync_encode_welcome(&b, hwms[j]), 0);
        assert_int_equal(sync_decode(b.data, b.len, &m), 0);
        assert_int_equal(m.type, SYNC_WELCOME);
        assert_int_equal(m.version, SYNC_PROTOCOL_VERSION);
        assert_int_equal(m.hwm, hwms[j]);
        sync_msg_free(&m);

        assert_int_equal(sync_encode_ack(&b, hwms[j]), 0);
        assert_int_equal(sync_decode(b.data, b.len, &m), 0);
        assert_int_equal(m.type, SYNC_ACK);
        assert_int_equal(m.hwm, hwms[j]);
        sync_msg_free(&m);
    }
    sync_buf_free(&b);
}

static void blob_messages_round_trip_and_are_bounded(void **state)
{
    (void)state;
    struct sync_buf b;
    struct sync_msg m;
    sync_buf_init(&b);
    uint8_t sha[32], data[3000];
    for (int i = 0; i < 32; i++)
        sha[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13);

    assert_int_equal(sync_encode_blob_offer(&b, sha, 1ull << 40), 0);
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, SYNC_BLOB_OFFER);
    assert_memory_equal(m.sha256, sha, 32);
    assert_int_equal(m.size, 1ull << 40);
    sync_msg_free(&m);

    assert_int_equal(sync_encode_blob_state(&b, sha, 10000, 4096), 0);
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, SYNC_BLOB_STATE);
    assert_int_equal(m.size, 10000);
    assert_int_equal(m.have, 4096);
    sync_msg_free(&m);
    assert_int_equal(sync_encode_blob_state(&b, sha, 10, 11), -EINVAL); /* more than there is */

    /* A chunk: its bytes arrive bit for bit; the last chunk ends exactly at size. */
    assert_int_equal(sync_encode_blob_chunk(&b, sha, 10000, 7000, data, sizeof data), 0);
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, SYNC_BLOB_CHUNK);
    assert_int_equal(m.offset, 7000);
    assert_int_equal(m.data_len, sizeof data);
    assert_memory_equal(m.data, data, sizeof data);
    sync_msg_free(&m);
    assert_int_equal(sync_encode_blob_chunk(&b, sha, 10000, 0, data, 0), 0); /* empty: fine */
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.data_len, 0);
    sync_msg_free(&m);
    /* Past the end: the encoder refuses, and so does the decoder when a peer lies. */
    assert_int_equal(sync_encode_blob_chunk(&b, sha, 10000, 8000, data, sizeof data), -EINVAL);
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 5);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, SYNC_BLOB_CHUNK);
    st_mpw_str(&w, "sha");
    st_mpw_bin(&w, sha, 32);
    st_mpw_str(&w, "size");
    st_mpw_uint(&w, 100);
    st_mpw_str(&w, "offset");
    st_mpw_uint(&w, 90);
    st_mpw_str(&w, "data");
    st_mpw_bin(&w, data, 20);
    assert_int_equal(st_mpw_done(&w), 0);
    uint8_t frame[256];
    memcpy(frame, w.buf, w.len);
    uint32_t crc = shmlog_crc32c(0, frame, w.len);
    for (int i = 0; i < 4; i++)
        frame[w.len + i] = (uint8_t)(crc >> (8 * i));
    assert_int_equal(sync_decode(frame, w.len + 4, &m), -EBADMSG);
    sync_msg_free(&m);
    /* Every truncation of a valid chunk is refused. */
    assert_int_equal(sync_encode_blob_chunk(&b, sha, 10000, 0, data, 100), 0);
    for (size_t cut = 0; cut < b.len; cut++) {
        assert_int_not_equal(sync_decode(b.data, cut, &m), 0);
        sync_msg_free(&m);
    }
    st_mpw_free(&w);
    sync_buf_free(&b);
}

static void error_round_trips_and_long_text_is_cut(void **state)
{
    (void)state;
    struct sync_buf b;
    struct sync_msg m;
    sync_buf_init(&b);
    char *m511 = repeat('e', 511);
    const char *msgs[] = {"", "gap: resend from 17", m511};
    const int codes[] = {-EBADMSG, -ERANGE, -1, INT_MIN};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++) {
            assert_int_equal(sync_encode_error(&b, codes[j], msgs[i], 17 + i), 0);
            assert_int_equal(sync_decode(b.data, b.len, &m), 0);
            assert_int_equal(m.type, SYNC_ERROR);
            assert_int_equal(m.code, codes[j]);
            assert_string_equal(m.msg, msgs[i]);
            assert_int_equal(m.hwm, 17 + i);
            sync_msg_free(&m);
        }
    free(m511);
    /* longer: cut to 511 bytes, and not inside a UTF-8 character (2-byte é from byte 510) */
    char *lng = repeat('a', 700);
    lng[510] = (char)0xc3;
    lng[511] = (char)0xa9;
    assert_int_equal(sync_encode_error(&b, -EIO, lng, 0), 0);
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    assert_int_equal(strlen(m.msg), 510);
    assert_memory_equal(m.msg, lng, 510);
    sync_msg_free(&m);
    free(lng);
    /* NULL text: empty; a code that is not a negative errno: refused */
    assert_int_equal(sync_encode_error(&b, -EIO, NULL, 3), 0);
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    assert_string_equal(m.msg, "");
    sync_msg_free(&m);
    assert_int_equal(sync_encode_error(&b, 0, "x", 3), -EINVAL);
    assert_int_equal(sync_encode_error(&b, 5, "x", 3), -EINVAL);
    sync_buf_free(&b);
}

static void batch_of_every_op_type_round_trips(void **state)
{
    (void)state;
    char *k490 = repeat('k', 490);
    char *v100k = repeat('v', 100000);
    char *s300 = repeat('s', 300);
    struct store_point one = {-1, -1, -0.0};
    struct store_point nan1 = {INT64_MIN, INT64_MAX, from_bits(0x7ff8dead0000beefull)};
    struct store_op ops[] = {
        {.type = STORE_OP_RUN_START, .experiment = "", .name = "", .user = "", .host = "",
         .start_ms = INT64_MIN},
        {.type = STORE_OP_RUN_START, .experiment = s300, .name = s300, .user = "alice",
         .host = "gpu1", .start_ms = INT64_MAX, .has_parent = true},
        {.type = STORE_OP_RUN_START, .experiment = NULL, .name = NULL, .user = NULL,
         .host = NULL, .start_ms = 0}, /* NULL strings go as "" */
        {.type = STORE_OP_RUN_END, .status = STORE_RUN_KILLED, .end_ms = 1700000000000},
        {.type = STORE_OP_RUN_END, .status = INT_MIN, .end_ms = INT64_MIN},
        {.type = STORE_OP_RUN_END, .status = INT_MAX, .end_ms = -1},
        {.type = STORE_OP_PARAM, .key = "", .value = ""},
        {.type = STORE_OP_PARAM, .key = k490, .value = v100k},
        {.type = STORE_OP_TAG, .key = "mlflow.note.content", .value = "h\xc3\xa9llo\nworld"},
        {.type = STORE_OP_TAG, .key = k490, .value = ""},
        {.type = STORE_OP_METRICS, .key = "loss", .first_index = 0, .count = 0},
        {.type = STORE_OP_METRICS, .key = "", .first_index = UINT64_MAX - 1, .count = 1},
        {.type = STORE_OP_METRICS, .key = k490, .first_index = 1u << 20, .count = 1},
        {.type = STORE_OP_ARTIFACT, .key = "", .size = 0},
        {.type = STORE_OP_ARTIFACT, .key = "a/b/c.bin", .size = UINT64_MAX},
        {.type = STORE_OP_MODEL_REGISTER, .key = "model", .model = "mnist cnn",
         .aliases = "champion,prod", .description = s300, .actor = "alice@gpu1",
         .time_ms = 1700000000000,
         .digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
        {.type = STORE_OP_MODEL_REGISTER, .time_ms = INT64_MIN}, /* NULL strings go as "" */
    };
    uint32_t n = sizeof ops / sizeof ops[0];
    const struct store_point *pts[sizeof ops / sizeof ops[0]] = {0};
    pts[11] = &one;
    pts[12] = &nan1;
    for (uint32_t i = 0; i < n; i++) {
        ops[i].seq = 1 + i;
        for (int k = 0; k < 16; k++) {
            ops[i].run[k] = (uint8_t)(i * 16 + (uint32_t)k);
            ops[i].parent[k] = (uint8_t)(0xff - k);
        }
        for (int k = 0; k < 32; k++)
            ops[i].sha256[k] = (uint8_t)rnd();
    }
    round_trip_batch(ops, pts, n);
    /* one op of each type alone, at a seq far from 1 */
    for (uint32_t i = 0; i < n; i++) {
        struct store_op op = ops[i];
        op.seq = UINT64_MAX - 1;
        round_trip_batch(&op, &pts[i], 1);
    }
    free(k490);
    free(v100k);
    free(s300);
}

static void metrics_of_10000_odd_points_are_bit_exact(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct store_point *p = malloc(N * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < N; i++)
        p[i] = odd_point();
    p[0].value = NAN;
    p[1].value = -INFINITY;
    p[2].value = INFINITY;
    p[3].value = from_bits(0xfff0000000000001ull); /* signalling NaN, sign set */
    p[4].step = -123456789;
    struct store_op ops[3] = {
        {.seq = 42, .type = STORE_OP_METRICS, .key = "acc", .first_index = 99, .count = N},
        {.seq = 43, .type = STORE_OP_METRICS, .key = "acc", .first_index = 99 + N, .count = 0},
        {.seq = 44, .type = STORE_OP_METRICS, .key = "x", .first_index = 0, .count = N / 2},
    };
    const struct store_point *pts[3] = {p, NULL, p + N / 2};
    round_trip_batch(ops, pts, 3);
    free(p);
}

static void large_batch_round_trips(void **state)
{
    (void)state;
    enum { N = 3000 };
    struct store_op *ops = calloc(N, sizeof *ops);
    const struct store_point **pts = calloc(N, sizeof *pts);
    struct store_point *p = malloc(100 * sizeof *p);
    assert_true(ops && pts && p);
    for (int i = 0; i < 100; i++)
        p[i] = odd_point();
    static const char *keys[] = {"loss", "acc", "lr", "grad_norm"};
    for (uint32_t i = 0; i < N; i++) {
        ops[i].seq = 1000 + i;
        ops[i].type = (int)(rnd() % 6) + 1;
        ops[i].run[0] = (uint8_t)i;
        ops[i].experiment = ops[i].name = ops[i].user = ops[i].host = "x";
        ops[i].key = keys[rnd() % 4];
        ops[i].value = "v";
        ops[i].has_parent = rnd() & 1;
        if (ops[i].type == STORE_OP_METRICS) {
            ops[i].count = rnd() % 101;
            ops[i].first_index = rnd() % 1000000;
            pts[i] = p;
        }
    }
    round_trip_batch(ops, pts, N);
    free(ops);
    free(pts);
    free(p);
}

/* The smallest ops (23 bytes) still decode: the decoder's bound on op counts is not too tight. */
static void batch_of_smallest_ops_decodes(void **state)
{
    (void)state;
    enum { N = 100 };
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 5);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, 3);
    st_mpw_str(&w, "agent");
    st_mpw_bin(&w, AGENT, 16);
    st_mpw_str(&w, "first");
    st_mpw_uint(&w, 1);
    st_mpw_str(&w, "last");
    st_mpw_uint(&w, N);
    st_mpw_str(&w, "ops");
    st_mpw_array(&w, N);
    uint8_t run[16] = {0};
    for (int i = 0; i < N; i++) {
        size_t before = w.len;
        st_mpw_array(&w, 5);
        st_mpw_uint(&w, 1 + (uint64_t)i);
        st_mpw_uint(&w, i % 2 ? STORE_OP_RUN_END : STORE_OP_PARAM);
        st_mpw_bin(&w, run, 16);
        if (i % 2) {
            st_mpw_int(&w, -1);
            st_mpw_int(&w, 5);
        } else {
            st_mpw_str(&w, "");
            st_mpw_str(&w, "");
        }
        assert_int_equal(w.len - before, 23);
    }
    struct sync_msg m;
    assert_int_equal(decode_mpw(&w, &m), 0);
    assert_int_equal(m.nops, N);
    assert_int_equal(m.ops[1].status, -1);
    assert_string_equal(m.ops[2].key, "");
    sync_msg_free(&m);
}

/* A map written in another key order, with keys of a newer peer, decodes the same. */
static void unknown_keys_are_skipped_and_order_is_free(void **state)
{
    (void)state;
    struct st_mpw w;
    struct sync_msg m;
    st_mpw_init(&w);
    st_mpw_map(&w, 6);
    st_mpw_str(&w, "zz");
    st_mpw_array(&w, 3);
    st_mpw_f64(&w, 1.5);
    st_mpw_map(&w, 1);
    st_mpw_str(&w, "a");
    st_mpw_bin(&w, "xyz", 3);
    st_mpw_nil(&w);
    st_mpw_str(&w, "hwm");
    st_mpw_uint(&w, 77);
    st_mpw_uint(&w, 12); /* a key that is not a string */
    st_mpw_str(&w, "x");
    st_mpw_str(&w, "ops"); /* a key of another type: not looked at */
    st_mpw_bool(&w, true);
    st_mpw_str(&w, "v");
    st_mpw_uint(&w, 1);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, SYNC_WELCOME);
    assert_int_equal(decode_mpw(&w, &m), 0);
    assert_int_equal(m.type, SYNC_WELCOME);
    assert_int_equal(m.hwm, 77);
    assert_null(m.ops);
    sync_msg_free(&m);
}

/* ---- the batch encoder refuses misuse ---- */

static void batch_encoder_refuses_misuse(void **state)
{
    (void)state;
    struct sync_buf b;
    sync_buf_init(&b);
    struct store_op op = {.seq = 10, .type = STORE_OP_TAG, .key = "k", .value = "v"};
    /* n must be last - first + 1, at least 1; seqs from 1; last + 1 must not wrap */
    assert_int_equal(sync_batch_begin(&b, AGENT, 10, 12, 2), -EINVAL);
    assert_int_equal(sync_batch_begin(&b, AGENT, 10, 9, 0), -EINVAL);
    assert_int_equal(sync_batch_begin(&b, AGENT, 0, 0, 1), -EINVAL);
    assert_int_equal(sync_batch_begin(&b, AGENT, UINT64_MAX, UINT64_MAX, 1), -EINVAL);
    /* the error sticks until a new frame */
    assert_int_equal(sync_batch_op(&b, &op, NULL), -EINVAL);
    assert_int_equal(sync_batch_finish(&b), -EINVAL);
    /* an op without a batch */
    sync_buf_reset(&b);
    assert_int_equal(sync_batch_op(&b, &op, NULL), -EINVAL);
    assert_int_equal(sync_encode_ack(&b, 5), 0);
    assert_int_equal(sync_batch_op(&b, &op, NULL), -EINVAL);
    /* ops out of order */
    assert_int_equal(sync_batch_begin(&b, AGENT, 10, 11, 2), 0);
    op.seq = 11;
    assert_int_equal(sync_batch_op(&b, &op, NULL), -EINVAL);
    assert_int_equal(b.err, -EINVAL);
    op.seq = 10;
    assert_int_equal(sync_batch_op(&b, &op, NULL), -EINVAL); /* sticky */
    /* fewer ops than announced; more ops than announced */
    assert_int_equal(sync_batch_begin(&b, AGENT, 10, 11, 2), 0);
    assert_int_equal(sync_batch_op(&b, &op, NULL), 0);
    assert_int_equal(sync_batch_finish(&b), -EINVAL);
    assert_int_equal(sync_batch_begin(&b, AGENT, 10, 10, 1), 0);
    assert_int_equal(sync_batch_op(&b, &op, NULL), 0);
    op.seq = 11;
    assert_int_equal(sync_batch_op(&b, &op, NULL), -EINVAL);
    /* unknown op type; METRICS without points; points beyond the largest frame */
    const int bad_types[] = {0, 8, -1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sync_batch_begin(&b, AGENT, 10, 10, 1), 0);
        struct store_op bad = {.seq = 10, .type = bad_types[i]};
        assert_int_equal(sync_batch_op(&b, &bad, NULL), -EINVAL);
    }
    struct store_op met = {.seq = 10, .type = STORE_OP_METRICS, .key = "m", .count = 3};
    assert_int_equal(sync_batch_begin(&b, AGENT, 10, 10, 1), 0);
    assert_int_equal(sync_batch_op(&b, &met, NULL), -EINVAL);
    struct store_point p = {0};
    met.count = SYNC_MAX_FRAME / 24;
    assert_int_equal(sync_batch_begin(&b, AGENT, 10, 10, 1), 0);
    assert_int_equal(sync_batch_op(&b, &met, &p), -EMSGSIZE); /* refused before reading pts */
    met.count = UINT64_MAX;
    assert_int_equal(sync_batch_begin(&b, AGENT, 10, 10, 1), 0);
    assert_int_equal(sync_batch_op(&b, &met, &p), -EMSGSIZE);
    sync_buf_free(&b);
}

/* Ops that together pass the largest frame: -EMSGSIZE at the op that does not fit. */
static void batch_encoder_stops_at_the_largest_frame(void **state)
{
    (void)state;
    size_t npts = (SYNC_MAX_FRAME / 24) / 3;
    struct store_point *p = calloc(npts, sizeof *p);
    assert_non_null(p);
    struct sync_buf b;
    sync_buf_init(&b);
    assert_int_equal(sync_batch_begin(&b, AGENT, 1, 4, 4), 0);
    struct store_op met = {.type = STORE_OP_METRICS, .key = "m", .count = npts};
    int rc = 0;
    uint64_t i;
    for (i = 1; i <= 4 && rc == 0; i++) {
        met.seq = i;
        rc = sync_batch_op(&b, &met, p);
    }
    assert_int_equal(rc, -EMSGSIZE);
    assert_int_equal(i, 4); /* the third op did not fit */
    assert_true(b.len <= SYNC_MAX_FRAME - 4);
    sync_buf_free(&b);
    free(p);
}

/* ---- the decoder refuses damage ---- */

static void crc_mismatch_is_refused(void **state)
{
    (void)state;
    struct sync_buf b = sample_batch();
    struct sync_msg m;
    for (size_t i = b.len - 4; i < b.len; i++) {
        b.data[i] ^= 0x01;
        assert_int_equal(sync_decode(b.data, b.len, &m), -EBADMSG);
        assert_null(m.ops);
        b.data[i] ^= 0x01;
    }
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    sync_msg_free(&m);
    /* tiny frames and NULL */
    for (size_t len = 0; len < 5; len++)
        assert_int_equal(sync_decode(b.data, len, &m), -EBADMSG);
    assert_int_equal(sync_decode(NULL, 0, &m), -EBADMSG);
    sync_buf_free(&b);
}

/* Cut anywhere: -EBADMSG, whether the CRC is the last 4 bytes left or recomputed over what is
 * left (a peer that seals a truncated map). Each cut is a heap copy of exactly its length, so
 * ASan sees any read past it. */
static void truncation_at_every_offset_is_refused(void **state)
{
    (void)state;
    struct sync_buf b = sample_batch();
    struct sync_msg m;
    size_t body = b.len - 4;
    for (size_t k = 0; k < b.len; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, b.data, k);
        assert_int_equal(sync_decode(cut, k, &m), -EBADMSG);
        assert_null(m.ops);
        free(cut);
        if (k < body) {
            assert_int_equal(decode_raw(b.data, k, &m), -EBADMSG);
            assert_null(m.ops);
        }
    }
    sync_buf_free(&b);
}

/* Any byte changed: without a new CRC always refused (CRC-32C catches every error within 32
 * bits); with a recomputed CRC an error or a decode, never a crash or a leak. A decode that
 * succeeds is consistent. */
static void flipped_byte_anywhere_never_crashes(void **state)
{
    (void)state;
    struct sync_buf b = sample_batch();
    struct sync_msg m;
    size_t body = b.len - 4;
    static const uint8_t masks[] = {0x01, 0x80, 0xff, 0x10, 0x7f};
    unsigned decoded = 0, refused = 0;
    for (size_t i = 0; i < body; i++)
        for (size_t j = 0; j < sizeof masks; j++) {
            uint8_t *f = malloc(b.len);
            memcpy(f, b.data, b.len);
            f[i] ^= masks[j];
            assert_int_equal(sync_decode(f, b.len, &m), -EBADMSG);
            free(f);

            uint8_t *raw = malloc(body);
            memcpy(raw, b.data, body);
            raw[i] ^= masks[j];
            size_t flen = body;
            uint8_t *sealed = seal(raw, &flen); /* kept: the points lie in it */
            free(raw);
            int rc = sync_decode(sealed, flen, &m);
            if (rc == 0) {
                decoded++;
                assert_int_equal(m.type, SYNC_BATCH);
                assert_true(m.nops >= 1);
                for (uint32_t k = 0; k < m.nops; k++) {
                    assert_int_equal(m.ops[k].seq, m.first + k);
                    if (m.ops[k].type == STORE_OP_METRICS)
                        for (uint64_t q = 0; q < m.ops[k].count; q++) {
                            struct store_point p;
                            sync_point_get(m.points[k], q, &p);
                        }
                }
            } else {
                refused++;
                assert_true(rc == -EBADMSG || rc == -EPROTONOSUPPORT);
                assert_null(m.ops);
            }
            sync_msg_free(&m);
            free(sealed);
        }
    /* both happen: values such as seqs' or strings' bytes change and still decode */
    assert_true(decoded > 0);
    assert_true(refused > 0);
    sync_buf_free(&b);
}

/* A batch built by hand: header fields, then the ops a callback writes. */
typedef void (*ops_writer)(struct st_mpw *w);

static int decode_batch(uint64_t first, uint64_t last, uint32_t nops, ops_writer fn,
                        struct sync_msg *m)
{
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 5);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, SYNC_BATCH);
    st_mpw_str(&w, "agent");
    st_mpw_bin(&w, AGENT, 16);
    st_mpw_str(&w, "first");
    st_mpw_uint(&w, first);
    st_mpw_str(&w, "last");
    st_mpw_uint(&w, last);
    st_mpw_str(&w, "ops");
    st_mpw_array(&w, nops);
    fn(&w);
    return decode_mpw(&w, m);
}

static const uint8_t RUN[16] = {1};

static void op_head(struct st_mpw *w, uint32_t items, uint64_t seq, uint64_t type)
{
    st_mpw_array(w, items);
    st_mpw_uint(w, seq);
    st_mpw_uint(w, type);
    st_mpw_bin(w, RUN, 16);
}

static void tag_op(struct st_mpw *w, uint64_t seq)
{
    op_head(w, 5, seq, STORE_OP_TAG);
    st_mpw_str(w, "k");
    st_mpw_str(w, "v");
}

static void w_5_6(struct st_mpw *w) { tag_op(w, 5); tag_op(w, 6); }
static void w_5_7(struct st_mpw *w) { tag_op(w, 5); tag_op(w, 7); }
static void w_6_5(struct st_mpw *w) { tag_op(w, 6); tag_op(w, 5); }
static void w_5_5(struct st_mpw *w) { tag_op(w, 5); tag_op(w, 5); }
static void w_0(struct st_mpw *w) { tag_op(w, 0); }
static void w_max(struct st_mpw *w) { tag_op(w, UINT64_MAX); }
static void w_none(struct st_mpw *w) { (void)w; }

static void wrong_seqs_are_refused(void **state)
{
    (void)state;
    struct sync_msg m;
    assert_int_equal(decode_batch(5, 6, 2, w_5_6, &m), 0);
    sync_msg_free(&m);
    assert_int_equal(decode_batch(5, 6, 2, w_5_7, &m), -EBADMSG); /* a gap */
    assert_null(m.ops);
    assert_int_equal(decode_batch(5, 6, 2, w_6_5, &m), -EBADMSG); /* out of order */
    assert_int_equal(decode_batch(5, 6, 2, w_5_5, &m), -EBADMSG); /* twice */
    assert_int_equal(decode_batch(5, 7, 2, w_5_6, &m), -EBADMSG); /* last too far */
    assert_int_equal(decode_batch(5, 5, 2, w_5_6, &m), -EBADMSG); /* last too near */
    assert_int_equal(decode_batch(4, 5, 2, w_5_6, &m), -EBADMSG); /* first wrong */
    assert_int_equal(decode_batch(6, 5, 2, w_5_6, &m), -EBADMSG); /* last < first */
    assert_int_equal(decode_batch(0, 0, 1, w_0, &m), -EBADMSG);   /* seqs start at 1 */
    assert_int_equal(decode_batch(UINT64_MAX, UINT64_MAX, 1, w_max, &m), -EBADMSG);
    assert_int_equal(decode_batch(5, 4, 0, w_none, &m), -EBADMSG); /* no ops */
    assert_null(m.ops);
}

/* Ops with a wrong length, type or field. */
static void w_run15(struct st_mpw *w)
{
    st_mpw_array(w, 5);
    st_mpw_uint(w, 5);
    st_mpw_uint(w, STORE_OP_TAG);
    st_mpw_bin(w, RUN, 15);
    st_mpw_str(w, "k");
    st_mpw_str(w, "v");
}
static void w_run_str(struct st_mpw *w)
{
    st_mpw_array(w, 5);
    st_mpw_uint(w, 5);
    st_mpw_uint(w, STORE_OP_TAG);
    st_mpw_strn(w, (const char *)RUN, 16);
    st_mpw_str(w, "k");
    st_mpw_str(w, "v");
}
static void w_sha31(struct st_mpw *w)
{
    uint8_t sha[32] = {0};
    op_head(w, 6, 5, STORE_OP_ARTIFACT);
    st_mpw_str(w, "p");
    st_mpw_bin(w, sha, 31);
    st_mpw_uint(w, 1);
}
static void w_sha33(struct st_mpw *w)
{
    uint8_t sha[33] = {0};
    op_head(w, 6, 5, STORE_OP_ARTIFACT);
    st_mpw_str(w, "p");
    st_mpw_bin(w, sha, 33);
    st_mpw_uint(w, 1);
}
static void w_size_neg(struct st_mpw *w)
{
    uint8_t sha[32] = {0};
    op_head(w, 6, 5, STORE_OP_ARTIFACT);
    st_mpw_str(w, "p");
    st_mpw_bin(w, sha, 32);
    st_mpw_int(w, -1);
}
static void w_pts25(struct st_mpw *w)
{
    uint8_t pts[48] = {0};
    op_head(w, 6, 5, STORE_OP_METRICS);
    st_mpw_str(w, "m");
    st_mpw_uint(w, 0);
    st_mpw_bin(w, pts, 25);
}
static void w_pts_str(struct st_mpw *w)
{
    op_head(w, 6, 5, STORE_OP_METRICS);
    st_mpw_str(w, "m");
    st_mpw_uint(w, 0);
    st_mpw_strn(w, "012345678901234567890123", 24);
}
static void w_index_wraps(struct st_mpw *w)
{
    uint8_t pts[48] = {0};
    op_head(w, 6, 5, STORE_OP_METRICS);
    st_mpw_str(w, "m");
    st_mpw_uint(w, UINT64_MAX - 1);
    st_mpw_bin(w, pts, 48);
}
static void w_pts48(struct st_mpw *w)
{
    uint8_t pts[48] = {0};
    op_head(w, 6, 5, STORE_OP_METRICS);
    st_mpw_str(w, "m");
    st_mpw_uint(w, UINT64_MAX - 2);
    st_mpw_bin(w, pts, 48);
}
static void w_type0(struct st_mpw *w) { op_head(w, 5, 5, 0); st_mpw_str(w, "k"); st_mpw_str(w, "v"); }
static void w_type7(struct st_mpw *w) { op_head(w, 5, 5, 7); st_mpw_str(w, "k"); st_mpw_str(w, "v"); }
static void w_type8(struct st_mpw *w) { op_head(w, 5, 5, 8); st_mpw_str(w, "k"); st_mpw_str(w, "v"); }
static void w_register_alias_list(struct st_mpw *w) /* aliases as an array: not this layout */
{
    op_head(w, 10, 5, STORE_OP_MODEL_REGISTER);
    st_mpw_str(w, "model");
    st_mpw_str(w, "m");
    st_mpw_array(w, 1);
    st_mpw_str(w, "a");
    st_mpw_str(w, "");
    st_mpw_str(w, "u@h");
    st_mpw_int(w, 1);
    st_mpw_str(w, "");
}
static void w_type_neg(struct st_mpw *w)
{
    st_mpw_array(w, 5);
    st_mpw_uint(w, 5);
    st_mpw_int(w, -3);
    st_mpw_bin(w, RUN, 16);
    st_mpw_str(w, "k");
    st_mpw_str(w, "v");
}
static void w_tag6(struct st_mpw *w) /* 6 items announced, 5 there */
{
    op_head(w, 6, 5, STORE_OP_TAG);
    st_mpw_str(w, "k");
    st_mpw_str(w, "v");
}
static void w_tag4(struct st_mpw *w)
{
    op_head(w, 4, 5, STORE_OP_TAG);
    st_mpw_str(w, "k");
}
static void w_tag_extra(struct st_mpw *w)
{
    op_head(w, 6, 5, STORE_OP_TAG);
    st_mpw_str(w, "k");
    st_mpw_str(w, "v");
    st_mpw_nil(w);
}
static void w_key_nul(struct st_mpw *w)
{
    op_head(w, 5, 5, STORE_OP_PARAM);
    st_mpw_strn(w, "a\0b", 3);
    st_mpw_str(w, "v");
}
static void w_key_bin(struct st_mpw *w)
{
    op_head(w, 5, 5, STORE_OP_PARAM);
    st_mpw_bin(w, "ab", 2);
    st_mpw_str(w, "v");
}
static void w_status_big(struct st_mpw *w)
{
    op_head(w, 5, 5, STORE_OP_RUN_END);
    st_mpw_int(w, (int64_t)INT_MAX + 1);
    st_mpw_int(w, 0);
}
static void w_end_u64(struct st_mpw *w)
{
    op_head(w, 5, 5, STORE_OP_RUN_END);
    st_mpw_int(w, 3);
    st_mpw_uint(w, (uint64_t)INT64_MAX + 1);
}
static void w_parent15(struct st_mpw *w)
{
    op_head(w, 9, 5, STORE_OP_RUN_START);
    for (int i = 0; i < 4; i++)
        st_mpw_str(w, "s");
    st_mpw_int(w, 0);
    st_mpw_bin(w, RUN, 15);
}
static void w_parent_false(struct st_mpw *w)
{
    op_head(w, 9, 5, STORE_OP_RUN_START);
    for (int i = 0; i < 4; i++)
        st_mpw_str(w, "s");
    st_mpw_int(w, 0);
    st_mpw_bool(w, false);
}
static void w_start_float(struct st_mpw *w)
{
    op_head(w, 9, 5, STORE_OP_RUN_START);
    for (int i = 0; i < 4; i++)
        st_mpw_str(w, "s");
    st_mpw_f64(w, 1.0);
    st_mpw_nil(w);
}
static void w_not_array(struct st_mpw *w) { st_mpw_map(w, 0); }

static void bad_ops_are_refused(void **state)
{
    (void)state;
    struct sync_msg m;
    const ops_writer bad[] = {w_run15, w_run_str, w_sha31, w_sha33, w_size_neg, w_pts25,
                              w_pts_str, w_index_wraps, w_type0, w_type7, w_type8,
                              w_register_alias_list, w_type_neg, w_tag6,
                              w_tag4, w_tag_extra, w_key_nul, w_key_bin, w_status_big,
                              w_end_u64, w_parent15, w_parent_false, w_start_float,
                              w_not_array};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = decode_batch(5, 5, 1, bad[i], &m);
        if (rc != -EBADMSG)
            fail_msg("writer %zu: %d", i, rc);
        assert_null(m.ops);
        assert_int_equal(m.nops, 0);
    }
    /* the edge that is fine: the last index is UINT64_MAX - 1 */
    assert_int_equal(decode_batch(5, 5, 1, w_pts48, &m), 0);
    assert_int_equal(m.ops[0].count, 2);
    sync_msg_free(&m);
}

/* Counts and lengths that the bytes cannot hold: refused before any allocation of that size
 * (ASan's allocator would report the huge request). */
static void lying_lengths_are_refused(void **state)
{
    (void)state;
    struct sync_msg m;
    struct sync_buf b = sample_batch();
    size_t body = b.len - 4;
    /* the ops array's count (array32 at offset 57: dd + 4 bytes) */
    assert_int_equal(b.data[61], 0xdd);
    const uint32_t counts[] = {0, 1, 5, 7, 1000, 0x7fffffff, 0xffffffff};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        uint8_t *raw = malloc(body);
        memcpy(raw, b.data, body);
        for (int k = 0; k < 4; k++)
            raw[62 + k] = (uint8_t)(counts[i] >> (24 - 8 * k));
        assert_int_equal(decode_raw(raw, body, &m), -EBADMSG);
        assert_null(m.ops);
        free(raw);
    }
    sync_buf_free(&b);

    /* str32 / bin32 headers claiming more than there is */
    static const uint8_t host_long[] = {0x85, 0xa1, 't', 1, 0xa1, 'v', 1, 0xa5, 'a', 'g', 'e',
                                        'n', 't', 0xc4, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0xa4, 'h', 'o', 's', 't', 0xdb, 0xff,
                                        0xff, 0xff, 0xff, 'x'};
    assert_int_equal(decode_raw(host_long, sizeof host_long, &m), -EBADMSG);
    static const uint8_t agent_long[] = {0x82, 0xa1, 't', 4, 0xa5, 'a', 'g', 'e', 'n', 't',
                                         0xc6, 0xff, 0xff, 0xff, 0xf0, 1, 2};
    assert_int_equal(decode_raw(agent_long, sizeof agent_long, &m), -EBADMSG);
    static const uint8_t map_huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 't', 4};
    assert_int_equal(decode_raw(map_huge, sizeof map_huge, &m), -EBADMSG);
    /* an op's points: bin32 claiming 24 x 2^27 bytes */
    static const uint8_t pts_long[] = {0x96, 5, 5, 0xc4, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0, 0, 0xa1, 'm', 0, 0xc6, 0x18, 0, 0, 0};
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 5);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, 3);
    st_mpw_str(&w, "agent");
    st_mpw_bin(&w, AGENT, 16);
    st_mpw_str(&w, "first");
    st_mpw_uint(&w, 5);
    st_mpw_str(&w, "last");
    st_mpw_uint(&w, 5);
    st_mpw_str(&w, "ops");
    st_mpw_array(&w, 1);
    assert_int_equal(decode_mpw(&w, &m), -EBADMSG); /* the op is missing */
    /* (built again with the hand-made op) */
    st_mpw_init(&w);
    st_mpw_map(&w, 5);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, 3);
    st_mpw_str(&w, "agent");
    st_mpw_bin(&w, AGENT, 16);
    st_mpw_str(&w, "first");
    st_mpw_uint(&w, 5);
    st_mpw_str(&w, "last");
    st_mpw_uint(&w, 5);
    st_mpw_str(&w, "ops");
    st_mpw_array(&w, 1);
    size_t at = w.len;
    for (size_t i = 0; i < sizeof pts_long; i++)
        st_mpw_uint(&w, 0); /* room, overwritten below (one byte each) */
    memcpy(w.buf + at, pts_long, sizeof pts_long);
    assert_int_equal(decode_mpw(&w, &m), -EBADMSG);
    assert_null(m.ops);
    /* frames beyond the largest */
    uint8_t *big = calloc(1, (size_t)SYNC_MAX_FRAME + 1);
    assert_non_null(big);
    assert_int_equal(sync_decode(big, (size_t)SYNC_MAX_FRAME + 1, &m), -EBADMSG);
    free(big);
}

static void map_shape_is_checked(void **state)
{
    (void)state;
    struct sync_msg m;
    struct st_mpw w;
    /* not a map */
    static const uint8_t arr[] = {0x92, 0xa1, 't'};
    assert_int_equal(decode_raw(arr, sizeof arr, &m), -EBADMSG);
    /* no type; unknown type; type not an integer */
    static const uint8_t no_t[] = {0x81, 0xa3, 'h', 'w', 'm', 1};
    assert_int_equal(decode_raw(no_t, sizeof no_t, &m), -EBADMSG);
    static const uint8_t t6[] = {0x82, 0xa1, 't', 6, 0xa3, 'h', 'w', 'm', 1};
    assert_int_equal(decode_raw(t6, sizeof t6, &m), -EBADMSG);
    static const uint8_t t0[] = {0x82, 0xa1, 't', 0, 0xa3, 'h', 'w', 'm', 1};
    assert_int_equal(decode_raw(t0, sizeof t0, &m), -EBADMSG);
    static const uint8_t tstr[] = {0x82, 0xa1, 't', 0xa1, '4', 0xa3, 'h', 'w', 'm', 1};
    assert_int_equal(decode_raw(tstr, sizeof tstr, &m), -EBADMSG);
    /* a valid ACK, then: a key missing, a key twice, a value of the wrong type, bytes after */
    static const uint8_t ack[] = {0x82, 0xa1, 't', 4, 0xa3, 'h', 'w', 'm', 9};
    assert_int_equal(decode_raw(ack, sizeof ack, &m), 0);
    assert_int_equal(m.hwm, 9);
    sync_msg_free(&m);
    static const uint8_t ack_no_hwm[] = {0x81, 0xa1, 't', 4};
    assert_int_equal(decode_raw(ack_no_hwm, sizeof ack_no_hwm, &m), -EBADMSG);
    static const uint8_t ack_twice[] = {0x83, 0xa1, 't', 4, 0xa3, 'h', 'w', 'm', 9,
                                        0xa3, 'h', 'w', 'm', 10};
    assert_int_equal(decode_raw(ack_twice, sizeof ack_twice, &m), -EBADMSG);
    static const uint8_t ack_t_twice[] = {0x83, 0xa1, 't', 4, 0xa3, 'h', 'w', 'm', 9,
                                          0xa1, 't', 4};
    assert_int_equal(decode_raw(ack_t_twice, sizeof ack_t_twice, &m), -EBADMSG);
    static const uint8_t ack_neg[] = {0x82, 0xa1, 't', 4, 0xa3, 'h', 'w', 'm', 0xff};
    assert_int_equal(decode_raw(ack_neg, sizeof ack_neg, &m), -EBADMSG);
    static const uint8_t ack_more[] = {0x82, 0xa1, 't', 4, 0xa3, 'h', 'w', 'm', 9, 0xc0};
    assert_int_equal(decode_raw(ack_more, sizeof ack_more, &m), -EBADMSG);
    static const uint8_t ack_c1[] = {0x83, 0xa1, 't', 4, 0xa3, 'h', 'w', 'm', 9, 0xa1, 'z', 0xc1};
    assert_int_equal(decode_raw(ack_c1, sizeof ack_c1, &m), -EBADMSG);
    /* ERROR: code must be a negative int; msg at most 511 bytes, no NUL */
    static const uint8_t err_pos[] = {0x84, 0xa1, 't', 5, 0xa4, 'c', 'o', 'd', 'e', 5,
                                      0xa3, 'm', 's', 'g', 0xa0, 0xa3, 'h', 'w', 'm', 1};
    assert_int_equal(decode_raw(err_pos, sizeof err_pos, &m), -EBADMSG);
    static const uint8_t err_nul[] = {0x84, 0xa1, 't', 5, 0xa4, 'c', 'o', 'd', 'e', 0xfb,
                                      0xa3, 'm', 's', 'g', 0xa2, 'a', 0, 0xa3, 'h', 'w', 'm', 1};
    assert_int_equal(decode_raw(err_nul, sizeof err_nul, &m), -EBADMSG);
    static const uint8_t err_ok[] = {0x84, 0xa1, 't', 5, 0xa4, 'c', 'o', 'd', 'e', 0xfb,
                                     0xa3, 'm', 's', 'g', 0xa2, 'a', 'b', 0xa3, 'h', 'w', 'm', 1};
    assert_int_equal(decode_raw(err_ok, sizeof err_ok, &m), 0);
    assert_int_equal(m.code, -5);
    assert_string_equal(m.msg, "ab");
    sync_msg_free(&m);
    char *m512 = repeat('e', 512);
    st_mpw_init(&w);
    st_mpw_map(&w, 4);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, 5);
    st_mpw_str(&w, "code");
    st_mpw_int(&w, -5);
    st_mpw_str(&w, "msg");
    st_mpw_str(&w, m512);
    st_mpw_str(&w, "hwm");
    st_mpw_uint(&w, 1);
    assert_int_equal(decode_mpw(&w, &m), -EBADMSG);
    /* HELLO: host of 256 bytes; agent of 15 */
    st_mpw_init(&w);
    st_mpw_map(&w, 5);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, 1);
    st_mpw_str(&w, "v");
    st_mpw_uint(&w, 1);
    st_mpw_str(&w, "agent");
    st_mpw_bin(&w, AGENT, 16);
    st_mpw_str(&w, "host");
    st_mpw_strn(&w, m512, 256);
    st_mpw_str(&w, "next");
    st_mpw_uint(&w, 1);
    assert_int_equal(decode_mpw(&w, &m), -EBADMSG);
    st_mpw_init(&w);
    st_mpw_map(&w, 5);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, 1);
    st_mpw_str(&w, "v");
    st_mpw_uint(&w, 1);
    st_mpw_str(&w, "agent");
    st_mpw_bin(&w, AGENT, 15);
    st_mpw_str(&w, "host");
    st_mpw_str(&w, "h");
    st_mpw_str(&w, "next");
    st_mpw_uint(&w, 1);
    assert_int_equal(decode_mpw(&w, &m), -EBADMSG);
    free(m512);
}

static void other_versions_are_not_supported(void **state)
{
    (void)state;
    struct sync_msg m;
    /* WELCOME {t:2, v:X, hwm:1} */
    uint8_t wel[] = {0x83, 0xa1, 't', 2, 0xa1, 'v', 1, 0xa3, 'h', 'w', 'm', 1};
    assert_int_equal(decode_raw(wel, sizeof wel, &m), 0);
    assert_int_equal(m.version, 1);
    wel[6] = 2; /* version 2 (MODEL_REGISTER ops) */
    assert_int_equal(decode_raw(wel, sizeof wel, &m), 0);
    assert_int_equal(m.version, 2);
    wel[6] = SYNC_PROTOCOL_VERSION + 1;
    assert_int_equal(decode_raw(wel, sizeof wel, &m), -EPROTONOSUPPORT);
    wel[6] = 0;
    assert_int_equal(decode_raw(wel, sizeof wel, &m), -EPROTONOSUPPORT);
    wel[6] = 0xc0; /* nil */
    assert_int_equal(decode_raw(wel, sizeof wel, &m), -EBADMSG);
    /* a newer HELLO whose other fields are unlike ours: still -EPROTONOSUPPORT */
    static const uint8_t hello2[] = {0x83, 0xa1, 't', 1, 0xa1, 'v', 3, 0xa5, 'a', 'g', 'e', 'n',
                                     't', 0xa1, 'x'};
    assert_int_equal(decode_raw(hello2, sizeof hello2, &m), -EPROTONOSUPPORT);
    /* our own HELLO with another v */
    struct sync_buf b;
    sync_buf_init(&b);
    assert_int_equal(sync_encode_hello(&b, AGENT, "h", 3), 0);
    assert_int_equal(b.data[4], 0xa1);
    assert_int_equal(b.data[5], 'v');
    b.data[6] = 3;
    assert_int_equal(decode_raw(b.data, b.len - 4, &m), -EPROTONOSUPPORT);
    /* no v at all: malformed */
    static const uint8_t hello_nov[] = {0x84, 0xa1, 't', 1, 0xa5, 'a', 'g', 'e', 'n', 't', 0xc4,
                                        16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0xa4, 'h', 'o', 's', 't', 0xa0, 0xa4, 'n', 'e', 'x', 't',
                                        1};
    assert_int_equal(decode_raw(hello_nov, sizeof hello_nov, &m), -EBADMSG);
    /* types without v ignore one */
    static const uint8_t ack_v9[] = {0x83, 0xa1, 't', 4, 0xa1, 'v', 9, 0xa3, 'h', 'w', 'm', 2};
    assert_int_equal(decode_raw(ack_v9, sizeof ack_v9, &m), 0);
    assert_int_equal(m.hwm, 2);
    sync_msg_free(&m);
    sync_buf_free(&b);
}

static void msg_free_is_safe_on_zeroed_and_failed(void **state)
{
    (void)state;
    struct sync_msg m;
    memset(&m, 0, sizeof m);
    sync_msg_free(&m);
    sync_msg_free(&m);
    memset(&m, 0xa5, sizeof m); /* garbage: the decoder clears it first */
    assert_int_equal(sync_decode((const uint8_t *)"abcdefgh", 8, &m), -EBADMSG);
    sync_msg_free(&m);
    struct sync_buf b = sample_batch();
    assert_int_equal(sync_decode(b.data, b.len, &m), 0);
    sync_msg_free(&m);
    sync_msg_free(&m); /* twice: the first cleared it */
    assert_null(m.ops);
    sync_buf_free(&b);
    sync_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_round_trips),
        cmocka_unit_test(welcome_ack_round_trip),
        cmocka_unit_test(blob_messages_round_trip_and_are_bounded),
        cmocka_unit_test(error_round_trips_and_long_text_is_cut),
        cmocka_unit_test(batch_of_every_op_type_round_trips),
        cmocka_unit_test(metrics_of_10000_odd_points_are_bit_exact),
        cmocka_unit_test(large_batch_round_trips),
        cmocka_unit_test(batch_of_smallest_ops_decodes),
        cmocka_unit_test(unknown_keys_are_skipped_and_order_is_free),
        cmocka_unit_test(batch_encoder_refuses_misuse),
        cmocka_unit_test(batch_encoder_stops_at_the_largest_frame),
        cmocka_unit_test(crc_mismatch_is_refused),
        cmocka_unit_test(truncation_at_every_offset_is_refused),
        cmocka_unit_test(flipped_byte_anywhere_never_crashes),
        cmocka_unit_test(wrong_seqs_are_refused),
        cmocka_unit_test(bad_ops_are_refused),
        cmocka_unit_test(lying_lengths_are_refused),
        cmocka_unit_test(map_shape_is_checked),
        cmocka_unit_test(other_versions_are_not_supported),
        cmocka_unit_test(msg_free_is_safe_on_zeroed_and_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
