/* protocol.c — the agent-server frames of protocol.h: encoders into a growable buffer and a
 * decoder for bytes that a peer controls.
 *
 * Encoding: the msgpack goes through the store's writer (mpk.h) piece by piece and is appended
 * to the sync_buf, except for three things written here by hand: a BATCH's header (fixed
 * widths, so that sync_batch_op can check each op against it without any state besides the
 * buffer: see below), the header of a METRICS op's points bin and the points themselves
 * (written straight into the frame, the bulk of the bytes, instead of through a second buffer).
 * Each single-message encoder and sync_batch_begin start a new frame: the buffer's bytes and
 * error are dropped (its memory is kept). An error while a frame is built sticks to it
 * (b->err): later calls return it, and the frame is not to be sent.
 *
 * Decoding: CRC first, then the map walked with the bounds-checked pull reader (mpk.h). Every
 * count is checked against the bytes left; a BATCH's ops are walked twice: once to validate
 * them all and to add up their strings, then, with one allocation of exactly what they need
 * (the op array, the points pointers, and the ops' strings NUL-terminated in an arena), to
 * fill them in. A frame that lies about its counts is refused before anything is allocated.
 */
#include "protocol.h"

#include "mpk.h"
#include "shmlog.h"

#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- little-endian helpers ---- */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* The wire's points are this host's struct store_point, byte for byte. */
#define POINTS_NATIVE 1
_Static_assert(sizeof(struct store_point) == 24 && offsetof(struct store_point, ts_ms) == 8 &&
                   offsetof(struct store_point, value) == 16 && sizeof(double) == 8,
               "store_point is the wire's 24 bytes");
#else
#define POINTS_NATIVE 0
static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
#endif

static void put_be(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- sync_buf ---- */

void sync_buf_init(struct sync_buf *b) { memset(b, 0, sizeof *b); }

void sync_buf_free(struct sync_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void sync_buf_reset(struct sync_buf *b)
{
    b->len = 0;
    b->err = 0;
}

/* Room for n more bytes; on failure the error sticks to the frame. Returns the place to write
 * them, or NULL (b->err set). */
static uint8_t *buf_room(struct sync_buf *b, size_t n)
{
    if (b->err)
        return NULL;
    if (n > SIZE_MAX - b->len) {
        b->err = -ENOMEM;
        return NULL;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->err = -ENOMEM;
            return NULL;
        }
        b->data = d;
        b->cap = cap;
    }
    return b->data + b->len;
}

static void buf_put(struct sync_buf *b, const void *p, size_t n)
{
    uint8_t *d = buf_room(b, n);
    if (d) {
        if (n)
            memcpy(d, p, n);
        b->len += n;
    }
}

void sync_buf_put(struct sync_buf *b, const void *p, size_t n)
{
    if (n == SIZE_MAX) {
        if (!b->err)
            b->err = -ENOMEM;
        return;
    }
    uint8_t *d = buf_room(b, n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        b->len += n;
        d[n] = '\0';
    }
}

void sync_buf_puts(struct sync_buf *b, const char *s) { sync_buf_put(b, s, strlen(s)); }

void sync_buf_vprintf(struct sync_buf *b, const char *fmt, va_list ap)
{
    if (b->err)
        return;
    va_list again;
    va_copy(again, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    if (n < 0) {
        b->err = -EINVAL;
    } else if ((size_t)n < sizeof tmp) {
        sync_buf_put(b, tmp, (size_t)n);
    } else {
        /* longer than the stack buffer: format straight into the buffer's room */
        uint8_t *d = buf_room(b, (size_t)n + 1);
        if (d) {
            vsnprintf((char *)d, (size_t)n + 1, fmt, again);
            b->len += (size_t)n;
        }
    }
    va_end(again);
}

void sync_buf_printf(struct sync_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sync_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

const char *sync_buf_str(const struct sync_buf *b)
{
    if (b->err)
        return NULL;
    return b->len ? (const char *)b->data : "";
}

/* Appends what an st_mpw holds, and frees it. */
static void buf_put_mpw(struct sync_buf *b, struct st_mpw *w)
{
    if (st_mpw_done(w) < 0 && !b->err)
        b->err = -ENOMEM;
    buf_put(b, w->buf, w->len);
    st_mpw_free(w);
}

/* The CRC-32C trailer over everything in the buffer: the frame is complete. */
static int buf_finish(struct sync_buf *b)
{
    if (b->err)
        return b->err;
    if (b->len + 4 > SYNC_MAX_FRAME) {
        b->err = -EMSGSIZE;
        return b->err;
    }
    uint32_t crc = shmlog_crc32c(0, b->data, b->len);
    uint8_t t[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
    buf_put(b, t, 4);
    return b->err;
}

static int fail(struct sync_buf *b, int err)
{
    if (!b->err)
        b->err = err;
    return b->err;
}

/* ---- single-message encoders: each starts a new frame in b ---- */

int sync_encode_hello(struct sync_buf *b, const uint8_t agent[16], const char *host,
                      uint64_t next)
{
    sync_buf_reset(b);
    if (!host)
        host = "";
    size_t hl = strlen(host);
    if (hl >= sizeof ((struct sync_msg *)0)->host)
        return fail(b, -ENAMETOOLONG);
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 5);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, SYNC_HELLO);
    st_mpw_str(&w, "v");
    st_mpw_uint(&w, SYNC_PROTOCOL_VERSION);
    st_mpw_str(&w, "agent");
    st_mpw_bin(&w, agent, 16);
    st_mpw_str(&w, "host");
    st_mpw_strn(&w, host, hl);
    st_mpw_str(&w, "next");
    st_mpw_uint(&w, next);
    buf_put_mpw(b, &w);
    return buf_finish(b);
}

int sync_encode_welcome(struct sync_buf *b, uint64_t hwm)
{
    sync_buf_reset(b);
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 3);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, SYNC_WELCOME);
    st_mpw_str(&w, "v");
    st_mpw_uint(&w, SYNC_PROTOCOL_VERSION);
    st_mpw_str(&w, "hwm");
    st_mpw_uint(&w, hwm);
    buf_put_mpw(b, &w);
    return buf_finish(b);
}

int sync_encode_ack(struct sync_buf *b, uint64_t hwm)
{
    sync_buf_reset(b);
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 2);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, SYNC_ACK);
    st_mpw_str(&w, "hwm");
    st_mpw_uint(&w, hwm);
    buf_put_mpw(b, &w);
    return buf_finish(b);
}

/* The error text is for people: one longer than the decoder takes is cut, at a character
 * boundary of UTF-8. */
int sync_encode_error(struct sync_buf *b, int code, const char *msg, uint64_t hwm)
{
    sync_buf_reset(b);
    if (code >= 0)
        return fail(b, -EINVAL);
    if (!msg)
        msg = "";
    size_t ml = strlen(msg);
    const size_t max = sizeof ((struct sync_msg *)0)->msg - 1;
    if (ml > max) {
        ml = max;
        while (ml > 0 && ((uint8_t)msg[ml] & 0xc0) == 0x80)
            ml--;
    }
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 4);
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, SYNC_ERROR);
    st_mpw_str(&w, "code");
    st_mpw_int(&w, code);
    st_mpw_str(&w, "msg");
    st_mpw_strn(&w, msg, ml);
    st_mpw_str(&w, "hwm");
    st_mpw_uint(&w, hwm);
    buf_put_mpw(b, &w);
    return buf_finish(b);
}

/* ---- artifact content ---- */

static int blob_msg(struct sync_buf *b, int type, const uint8_t sha256[32], uint64_t size,
                    const uint64_t *have, const uint64_t *offset, const void *data, size_t len)
{
    sync_buf_reset(b);
    if (offset && (len > SYNC_MAX_FRAME / 2 || *offset > size || len > size - *offset))
        return fail(b, -EINVAL);
    if (have && *have > size)
        return fail(b, -EINVAL);
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 3 + (have ? 1 : 0) + (offset ? 2 : 0));
    st_mpw_str(&w, "t");
    st_mpw_uint(&w, (uint64_t)type);
    st_mpw_str(&w, "sha");
    st_mpw_bin(&w, sha256, 32);
    st_mpw_str(&w, "size");
    st_mpw_uint(&w, size);
    if (have) {
        st_mpw_str(&w, "have");
        st_mpw_uint(&w, *have);
    }
    if (offset) {
        st_mpw_str(&w, "offset");
        st_mpw_uint(&w, *offset);
        st_mpw_str(&w, "data");
        st_mpw_bin(&w, data, len);
    }
    buf_put_mpw(b, &w);
    return buf_finish(b);
}

int sync_encode_blob_offer(struct sync_buf *b, const uint8_t sha256[32], uint64_t size)
{
    return blob_msg(b, SYNC_BLOB_OFFER, sha256, size, NULL, NULL, NULL, 0);
}

int sync_encode_blob_state(struct sync_buf *b, const uint8_t sha256[32], uint64_t size,
                           uint64_t have)
{
    return blob_msg(b, SYNC_BLOB_STATE, sha256, size, &have, NULL, NULL, 0);
}

int sync_encode_blob_chunk(struct sync_buf *b, const uint8_t sha256[32], uint64_t size,
                           uint64_t offset, const void *data, size_t len)
{
    return blob_msg(b, SYNC_BLOB_CHUNK, sha256, size, NULL, &offset, data, len);
}

/* ---- BATCH ----
 * The header is written with fixed widths (valid msgpack, only not the shortest form), so that
 * it sits at known offsets and carries the batch's state:
 *   0  fixmap(5)
 *   1  "t" 3
 *   4  "agent" bin8(16) <16 bytes>
 *  28  "first" uint64 <8 bytes BE>                    (value at 35)
 *  43  "last" uint64 <8 bytes BE>                     (value at 49)
 *  57  "ops" array32 <4 bytes BE: ops written so far> (count at 62)
 *  66  the ops
 * The array's count goes up with each op and must reach last - first + 1 (the n given to
 * sync_batch_begin) by sync_batch_finish. */
#define BH_FIRST 35
#define BH_LAST 49
#define BH_COUNT 62
#define BH_LEN 66

int sync_batch_begin(struct sync_buf *b, const uint8_t agent[16], uint64_t first, uint64_t last,
                     uint32_t n)
{
    sync_buf_reset(b);
    /* seqs count from 1; last + 1 (the next hwm) must not wrap */
    if (n == 0 || first == 0 || last < first || last == UINT64_MAX || last - first != n - 1)
        return fail(b, -EINVAL);
    uint8_t *h = buf_room(b, BH_LEN);
    if (!h)
        return b->err;
    uint8_t *p = h;
    *p++ = 0x85;
    memcpy(p, "\xa1t\x03", 3), p += 3;
    memcpy(p, "\xa5" "agent" "\xc4\x10", 8), p += 8;
    memcpy(p, agent, 16), p += 16;
    memcpy(p, "\xa5" "first" "\xcf", 7), p += 7;
    put_be(p, first, 8), p += 8;
    memcpy(p, "\xa4" "last" "\xcf", 6), p += 6;
    put_be(p, last, 8), p += 8;
    memcpy(p, "\xa3" "ops" "\xdd", 5), p += 5;
    put_be(p, 0, 4), p += 4;
    b->len += (size_t)(p - h);
    return 0;
}

/* The batch being built in b: its first seq, its op count and how many are written. */
static int batch_state(struct sync_buf *b, uint64_t *first, uint64_t *n, uint32_t *done)
{
    if (b->err)
        return b->err;
    if (b->len < BH_LEN || b->data[0] != 0x85 || b->data[BH_FIRST - 1] != 0xcf ||
        b->data[BH_COUNT - 1] != 0xdd)
        return fail(b, -EINVAL); /* no sync_batch_begin */
    *first = get_be(b->data + BH_FIRST, 8);
    *n = get_be(b->data + BH_LAST, 8) - *first + 1;
    *done = (uint32_t)get_be(b->data + BH_COUNT, 4);
    return 0;
}

/* Items in an op's array, by type. */
static const uint8_t op_fields[] = {0, 9, 5, 5, 5, 6, 6, 10};

static void mpw_cstr(struct st_mpw *w, const char *s) { st_mpw_str(w, s ? s : ""); }

/* A bin header of n bytes, the shortest form (as msgpack-c writes it). */
static size_t bin_hdr(uint8_t *p, uint32_t n)
{
    if (n <= UINT8_MAX) {
        p[0] = 0xc4;
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n <= UINT16_MAX) {
        p[0] = 0xc5;
        put_be(p + 1, n, 2);
        return 3;
    }
    p[0] = 0xc6;
    put_be(p + 1, n, 4);
    return 5;
}

int sync_batch_op(struct sync_buf *b, const struct store_op *op, const struct store_point *pts)
{
    uint64_t first, n;
    uint32_t done;
    int rc = batch_state(b, &first, &n, &done);
    if (rc < 0)
        return rc;
    if (done >= n || op->seq != first + done || op->type < STORE_OP_RUN_START ||
        op->type > STORE_OP_MODEL_REGISTER)
        return fail(b, -EINVAL);
    uint64_t npts = 0;
    if (op->type == STORE_OP_METRICS) {
        npts = op->count;
        if (npts > (SYNC_MAX_FRAME - BH_LEN) / 24)
            return fail(b, -EMSGSIZE);
        if (npts > 0 && !pts)
            return fail(b, -EINVAL);
    }

    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_array(&w, op_fields[op->type]);
    st_mpw_uint(&w, op->seq);
    st_mpw_uint(&w, (uint64_t)op->type);
    st_mpw_bin(&w, op->run, 16);
    switch (op->type) {
    case STORE_OP_RUN_START:
        mpw_cstr(&w, op->experiment);
        mpw_cstr(&w, op->name);
        mpw_cstr(&w, op->user);
        mpw_cstr(&w, op->host);
        st_mpw_int(&w, op->start_ms);
        if (op->has_parent)
            st_mpw_bin(&w, op->parent, 16);
        else
            st_mpw_nil(&w);
        break;
    case STORE_OP_RUN_END:
        st_mpw_int(&w, op->status);
        st_mpw_int(&w, op->end_ms);
        break;
    case STORE_OP_PARAM:
    case STORE_OP_TAG:
        mpw_cstr(&w, op->key);
        mpw_cstr(&w, op->value);
        break;
    case STORE_OP_METRICS:
        mpw_cstr(&w, op->key);
        st_mpw_uint(&w, op->first_index);
        break; /* the points follow: written below, straight into b */
    case STORE_OP_ARTIFACT:
        mpw_cstr(&w, op->key);
        st_mpw_bin(&w, op->sha256, 32);
        st_mpw_uint(&w, op->size);
        break;
    case STORE_OP_MODEL_REGISTER:
        mpw_cstr(&w, op->key);
        mpw_cstr(&w, op->model);
        mpw_cstr(&w, op->aliases);
        mpw_cstr(&w, op->description);
        mpw_cstr(&w, op->actor);
        st_mpw_int(&w, op->time_ms);
        mpw_cstr(&w, op->digest);
        break;
    }
    if (st_mpw_done(&w) < 0) {
        st_mpw_free(&w);
        return fail(b, -ENOMEM);
    }
    uint8_t hdr[5];
    size_t hl = 0;
    size_t pl = (size_t)npts * 24;
    if (op->type == STORE_OP_METRICS)
        hl = bin_hdr(hdr, (uint32_t)pl);
    if (w.len + hl + pl > SYNC_MAX_FRAME - 4 - b->len) {
        st_mpw_free(&w);
        return fail(b, -EMSGSIZE);
    }
    uint8_t *d = buf_room(b, w.len + hl + pl);
    if (!d) {
        st_mpw_free(&w);
        return b->err;
    }
    memcpy(d, w.buf, w.len);
    d += w.len;
    st_mpw_free(&w);
    if (op->type == STORE_OP_METRICS) {
        memcpy(d, hdr, hl);
        d += hl;
#if POINTS_NATIVE
        if (pl)
            memcpy(d, pts, pl);
#else
        for (uint64_t i = 0; i < npts; i++, d += 24) {
            uint64_t v, x[3];
            memcpy(&v, &pts[i].value, 8);
            x[0] = (uint64_t)pts[i].step;
            x[1] = (uint64_t)pts[i].ts_ms;
            x[2] = v;
            for (int j = 0; j < 24; j++)
                d[j] = (uint8_t)(x[j / 8] >> (8 * (j % 8)));
        }
#endif
    }
    b->len += w.len + hl + pl;
    put_be(b->data + BH_COUNT, done + 1, 4);
    return 0;
}

int sync_batch_finish(struct sync_buf *b)
{
    uint64_t first, n;
    uint32_t done;
    int rc = batch_state(b, &first, &n, &done);
    if (rc < 0)
        return rc;
    if (done != n)
        return fail(b, -EINVAL);
    return buf_finish(b);
}

/* ---- decoding ---- */

/* The fewest bytes an op takes: [seq, type, run, x, y] with one-byte seq, type, x, y and an
 * 18-byte bin16 (RUN_END, PARAM and TAG at their smallest; the other types take more). */
#define OP_MIN_BYTES 23u

/* Keys of the top-level map. */
enum {
    K_T = 1u << 0,
    K_V = 1u << 1,
    K_AGENT = 1u << 2,
    K_HOST = 1u << 3,
    K_NEXT = 1u << 4,
    K_HWM = 1u << 5,
    K_FIRST = 1u << 6,
    K_LAST = 1u << 7,
    K_OPS = 1u << 8,
    K_CODE = 1u << 9,
    K_MSG = 1u << 10,
    K_SHA = 1u << 11,
    K_SIZE = 1u << 12,
    K_HAVE = 1u << 13,
    K_OFFSET = 1u << 14,
    K_DATA = 1u << 15,
};
static const char *const key_names[] = {"t",    "v",    "agent", "host", "next", "hwm",
                                        "first", "last", "ops",  "code", "msg",  "sha",
                                        "size", "have", "offset", "data"};
/* Every key a type has (all of them required). */
static const unsigned type_keys[] = {
    [SYNC_HELLO] = K_T | K_V | K_AGENT | K_HOST | K_NEXT,
    [SYNC_WELCOME] = K_T | K_V | K_HWM,
    [SYNC_BATCH] = K_T | K_AGENT | K_FIRST | K_LAST | K_OPS,
    [SYNC_ACK] = K_T | K_HWM,
    [SYNC_ERROR] = K_T | K_CODE | K_MSG | K_HWM,
    [SYNC_BLOB_OFFER] = K_T | K_SHA | K_SIZE,
    [SYNC_BLOB_STATE] = K_T | K_SHA | K_SIZE | K_HAVE,
    [SYNC_BLOB_CHUNK] = K_T | K_SHA | K_SIZE | K_OFFSET | K_DATA,
};

static unsigned key_bit(const struct st_mp_val *k)
{
    for (unsigned i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
        if (st_mp_key_is(k, key_names[i]))
            return 1u << i;
    return 0;
}

static int rd_int(struct st_mpr *r, int *out)
{
    int64_t x;
    int rc = st_mpr_i64(r, &x);
    if (rc < 0)
        return rc;
    if (x < INT_MIN || x > INT_MAX)
        return -EBADMSG;
    *out = (int)x;
    return 0;
}

/* Where an op's strings go: NULL while validating (only their sizes are added up). */
struct arena {
    char *p;
    size_t used;
};

static int rd_str(struct st_mpr *r, struct arena *a, const char **out)
{
    struct st_mp_val v;
    int rc = st_mpr_val(r, &v);
    if (rc < 0)
        return rc;
    if (v.type != MP_STR || (v.len && memchr(v.ptr, 0, v.len)))
        return -EBADMSG; /* a NUL would cut the string short in the store's API */
    if (a->p) {
        char *s = a->p + a->used;
        if (v.len)
            memcpy(s, v.ptr, v.len);
        s[v.len] = '\0';
        *out = s;
    }
    a->used += (size_t)v.len + 1;
    return 0;
}

/* The fields of a MODEL_REGISTER op after its run. */
static int rd_model_register(struct st_mpr *r, struct store_op *op, struct arena *a)
{
    int rc;
    if ((rc = rd_str(r, a, &op->key)) < 0 || (rc = rd_str(r, a, &op->model)) < 0 ||
        (rc = rd_str(r, a, &op->aliases)) < 0 || (rc = rd_str(r, a, &op->description)) < 0 ||
        (rc = rd_str(r, a, &op->actor)) < 0 ||
        (rc = st_mpr_i64(r, &op->time_ms)) < 0)
        return rc;
    return rd_str(r, a, &op->digest);
}

/* One op. Fields that the type does not have are left zero. */
static int rd_op(struct st_mpr *r, struct store_op *op, const uint8_t **pts, struct arena *a)
{
    memset(op, 0, sizeof *op);
    *pts = NULL;
    uint32_t n;
    uint64_t type;
    int rc;
    if ((rc = st_mpr_array(r, &n)) < 0)
        return rc;
    if (n < 5)
        return -EBADMSG;
    if ((rc = st_mpr_u64(r, &op->seq)) < 0 || (rc = st_mpr_u64(r, &type)) < 0)
        return rc;
    if (type < STORE_OP_RUN_START || type > STORE_OP_MODEL_REGISTER || n != op_fields[type])
        return -EBADMSG;
    op->type = (int)type;
    if ((rc = st_mpr_bin_exact(r, op->run, 16)) < 0)
        return rc;
    struct st_mp_val v;
    switch (op->type) {
    case STORE_OP_RUN_START:
        if ((rc = rd_str(r, a, &op->experiment)) < 0 || (rc = rd_str(r, a, &op->name)) < 0 ||
            (rc = rd_str(r, a, &op->user)) < 0 || (rc = rd_str(r, a, &op->host)) < 0 ||
            (rc = st_mpr_i64(r, &op->start_ms)) < 0 || (rc = st_mpr_val(r, &v)) < 0)
            return rc;
        if (v.type == MP_BIN && v.len == 16) {
            op->has_parent = true;
            memcpy(op->parent, v.ptr, 16);
        } else if (v.type != MP_NIL) {
            return -EBADMSG;
        }
        return 0;
    case STORE_OP_RUN_END:
        if ((rc = rd_int(r, &op->status)) < 0)
            return rc;
        return st_mpr_i64(r, &op->end_ms);
    case STORE_OP_PARAM:
    case STORE_OP_TAG:
        if ((rc = rd_str(r, a, &op->key)) < 0)
            return rc;
        return rd_str(r, a, &op->value);
    case STORE_OP_METRICS:
        if ((rc = rd_str(r, a, &op->key)) < 0 || (rc = st_mpr_u64(r, &op->first_index)) < 0 ||
            (rc = st_mpr_val(r, &v)) < 0)
            return rc;
        if (v.type != MP_BIN || v.len % 24 != 0)
            return -EBADMSG;
        op->count = v.len / 24;
        /* the series' indexes must not wrap */
        if (op->first_index > UINT64_MAX - op->count)
            return -EBADMSG;
        *pts = v.ptr;
        return 0;
    case STORE_OP_ARTIFACT:
        if ((rc = rd_str(r, a, &op->key)) < 0 || (rc = st_mpr_bin_exact(r, op->sha256, 32)) < 0)
            return rc;
        return st_mpr_u64(r, &op->size);
    case STORE_OP_MODEL_REGISTER:
        return rd_model_register(r, op, a);
    }
    return -EBADMSG;
}

/* A BATCH's ops: validated whole first (without allocating), then decoded into one block:
 * ops[n], points[n], then the strings. */
static int rd_ops(struct st_mpr *r, struct sync_msg *m)
{
    uint32_t n;
    int rc = st_mpr_array(r, &n);
    if (rc < 0)
        return rc;
    if (n == 0 || n > (size_t)(r->end - r->p) / OP_MIN_BYTES)
        return -EBADMSG;
    struct st_mpr start = *r;
    struct arena a = {NULL, 0};
    struct store_op tmp;
    const uint8_t *pts;
    for (uint32_t i = 0; i < n; i++)
        if ((rc = rd_op(r, &tmp, &pts, &a)) < 0)
            return rc;
    /* the strings' bytes and NULs are at most the ops' bytes: no overflow below */
    size_t strings = a.used;
    size_t head = (size_t)n * sizeof(struct store_op);
    size_t ptrs = (size_t)n * sizeof(const uint8_t *);
    _Static_assert(sizeof(struct store_op) % alignof(const uint8_t *) == 0, "points alignment");
    uint8_t *block = malloc(head + ptrs + strings);
    if (!block)
        return -ENOMEM;
    m->ops = (struct store_op *)(void *)block;
    m->points = (const uint8_t **)(void *)(block + head);
    m->nops = n;
    *r = start;
    a.p = (char *)block + head + ptrs;
    a.used = 0;
    for (uint32_t i = 0; i < n; i++)
        if ((rc = rd_op(r, &m->ops[i], &m->points[i], &a)) < 0)
            return rc; /* not reached: the same bytes passed above */
    return 0;
}

/* The first values of "t" and "v" in the map at r (not moving r). */
static int scan_type(struct st_mpr r, uint32_t entries, uint64_t *type, uint64_t *ver,
                     bool *has_ver)
{
    bool has_type = false;
    *has_ver = false;
    for (uint32_t i = 0; i < entries; i++) {
        struct st_mp_val k;
        int rc = st_mpr_val(&r, &k);
        if (rc < 0)
            return rc;
        if (st_mp_key_is(&k, "t") && !has_type) {
            if ((rc = st_mpr_u64(&r, type)) < 0)
                return rc;
            has_type = true;
        } else if (st_mp_key_is(&k, "v") && !*has_ver) {
            if ((rc = st_mpr_u64(&r, ver)) < 0)
                return rc;
            *has_ver = true;
        } else if ((rc = st_mpr_skip(&r)) < 0) {
            return rc;
        }
        if (has_type && (*has_ver || (*type != SYNC_HELLO && *type != SYNC_WELCOME)))
            return 0;
    }
    return has_type ? 0 : -EBADMSG;
}

static int decode_map(const uint8_t *p, size_t len, struct sync_msg *m)
{
    struct st_mpr r = {p, p + len};
    uint32_t entries;
    int rc = st_mpr_map(&r, &entries);
    if (rc < 0)
        return rc;
    uint64_t type, ver = 0;
    bool has_ver;
    if ((rc = scan_type(r, entries, &type, &ver, &has_ver)) < 0)
        return rc;
    if (type < SYNC_HELLO || type > SYNC_BLOB_CHUNK)
        return -EBADMSG;
    m->type = (int)type;
    unsigned want = type_keys[type], seen = 0;
    if (want & K_V) {
        if (!has_ver)
            return -EBADMSG;
        if (ver < SYNC_PROTOCOL_MIN_VERSION || ver > SYNC_PROTOCOL_VERSION)
            return -EPROTONOSUPPORT;
        m->version = (int)ver;
    }
    for (uint32_t i = 0; i < entries; i++) {
        struct st_mp_val k;
        if ((rc = st_mpr_val(&r, &k)) < 0)
            return rc;
        unsigned bit = key_bit(&k) & want;
        if (!bit) { /* a key of another type or of a newer peer */
            if ((rc = st_mpr_skip(&r)) < 0)
                return rc;
            continue;
        }
        if (seen & bit)
            return -EBADMSG; /* twice */
        seen |= bit;
        struct st_mp_val v;
        switch (bit) {
        case K_T:
        case K_V:
            rc = st_mpr_skip(&r); /* read by scan_type */
            break;
        case K_AGENT:
            rc = st_mpr_bin_exact(&r, m->agent, 16);
            break;
        case K_HOST:
            if ((rc = st_mpr_val(&r, &v)) == 0)
                rc = st_mp_as_str(&v, m->host, sizeof m->host);
            break;
        case K_MSG:
            if ((rc = st_mpr_val(&r, &v)) == 0)
                rc = st_mp_as_str(&v, m->msg, sizeof m->msg);
            break;
        case K_NEXT:
            rc = st_mpr_u64(&r, &m->next);
            break;
        case K_HWM:
            rc = st_mpr_u64(&r, &m->hwm);
            break;
        case K_FIRST:
            rc = st_mpr_u64(&r, &m->first);
            break;
        case K_LAST:
            rc = st_mpr_u64(&r, &m->last);
            break;
        case K_CODE:
            if ((rc = rd_int(&r, &m->code)) == 0 && m->code >= 0)
                rc = -EBADMSG; /* a negative errno */
            break;
        case K_OPS:
            rc = rd_ops(&r, m);
            break;
        case K_SHA:
            rc = st_mpr_bin_exact(&r, m->sha256, 32);
            break;
        case K_SIZE:
            rc = st_mpr_u64(&r, &m->size);
            break;
        case K_HAVE:
            rc = st_mpr_u64(&r, &m->have);
            break;
        case K_OFFSET:
            rc = st_mpr_u64(&r, &m->offset);
            break;
        case K_DATA:
            if ((rc = st_mpr_val(&r, &v)) == 0 && v.type != MP_BIN)
                rc = -EBADMSG;
            if (rc == 0) {
                m->data = v.ptr;
                m->data_len = v.len;
            }
            break;
        }
        if (rc < 0)
            return rc;
    }
    if (seen != want || r.p != r.end)
        return -EBADMSG;
    if (m->type == SYNC_BLOB_STATE && m->have > m->size)
        return -EBADMSG;
    if (m->type == SYNC_BLOB_CHUNK &&
        (m->offset > m->size || m->data_len > m->size - m->offset))
        return -EBADMSG;
    if (m->type == SYNC_BATCH) {
        /* consecutive ops first..last, seqs from 1, last + 1 representable */
        if (m->first == 0 || m->last < m->first || m->last == UINT64_MAX ||
            m->last - m->first != (uint64_t)m->nops - 1)
            return -EBADMSG;
        for (uint32_t i = 0; i < m->nops; i++)
            if (m->ops[i].seq != m->first + i)
                return -EBADMSG;
    }
    return 0;
}

int sync_decode(const uint8_t *frame, size_t len, struct sync_msg *m)
{
    memset(m, 0, sizeof *m);
    if (!frame || len < 5 || len > SYNC_MAX_FRAME)
        return -EBADMSG;
    size_t body = len - 4;
    const uint8_t *t = frame + body;
    uint32_t crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
                   (uint32_t)t[3] << 24;
    if (shmlog_crc32c(0, frame, body) != crc)
        return -EBADMSG;
    int rc = decode_map(frame, body, m);
    if (rc < 0)
        sync_msg_free(m);
    return rc;
}

void sync_msg_free(struct sync_msg *m)
{
    free(m->ops); /* ops, points and the strings are one block */
    memset(m, 0, sizeof *m);
}

void sync_point_get(const uint8_t *points, size_t i, struct store_point *out)
{
    const uint8_t *p = points + i * 24;
#if POINTS_NATIVE
    memcpy(out, p, 24);
#else
    uint64_t v = get_le64(p + 16);
    out->step = (int64_t)get_le64(p);
    out->ts_ms = (int64_t)get_le64(p + 8);
    memcpy(&out->value, &v, 8);
#endif
}
