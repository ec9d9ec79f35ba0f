/* block.c — the metric block codec.
 *
 * A block holds consecutive points of one (run, key) series:
 *
 *   header (40 bytes, little-endian)
 *     u8 version (1), u8 0, u16 count, u32 0,
 *     i64 first_step, i64 last_step, i64 last_ts_ms, u64 last_value_bits
 *   then per point
 *     zigzag varint (step - prev_step), zigzag varint (ts - prev_ts)   (64-bit wrapping)
 *     value: x = bits XOR prev_bits, as a control byte and the middle bytes of x:
 *       0x80                       x == 0, no bytes follow
 *       (lead << 4) | trail         lead / trail = zero bytes at the top / bottom of x,
 *                                   then 8 - lead - trail bytes, most significant first
 *
 * prev is (0, 0, 0) for the first point of a block and the previous point after that. The
 * header keeps the last point, so appending needs only the header, never a decode. Values
 * are handled as raw bits: NaN payloads, infinities and -0.0 come back exactly.
 *
 * The decoder trusts nothing: every read is bounds-checked, the point count must fit the
 * length, the bytes must be consumed exactly and the header's first/last fields must agree
 * with the decoded points, else -EBADMSG.
 */
#include "store_internal.h"

#include <errno.h>

#define BLK_VERSION 1
#define MAX_POINT 29 /* 10 + 10 + 1 + 8 */

int st_block_cap(size_t lmdb_key_len)
{
    (void)lmdb_key_len; /* overflow pages hold the value alone: the key does not count */
    return BLOCK_NODE_BUDGET;
}

static inline uint64_t zz_enc(uint64_t d) { return d << 1 ^ (0 - (d >> 63)); }
static inline uint64_t zz_dec(uint64_t z) { return z >> 1 ^ (0 - (z & 1)); }

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= end)
            return -EBADMSG;
        uint8_t b = *p++;
        if (shift == 63 && b > 1)
            return -EBADMSG;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return -EBADMSG;
}

static size_t encode_point(uint8_t *p, int64_t pstep, int64_t pts, uint64_t pbits,
                           const struct store_point *pt)
{
    size_t n = put_varint(p, zz_enc((uint64_t)pt->step - (uint64_t)pstep));
    n += put_varint(p + n, zz_enc((uint64_t)pt->ts_ms - (uint64_t)pts));
    uint64_t x = st_f64_bits(pt->value) ^ pbits;
    if (x == 0) {
        p[n++] = 0x80;
        return n;
    }
    unsigned lead = (unsigned)__builtin_clzll(x) / 8, trail = (unsigned)__builtin_ctzll(x) / 8;
    unsigned mid = 8 - lead - trail;
    p[n++] = (uint8_t)(lead << 4 | trail);
    for (unsigned i = mid; i-- > 0;)
        p[n++] = (uint8_t)(x >> (8 * (trail + i)));
    return n;
}

size_t store_block_append(uint8_t *blk, size_t blk_len, size_t cap, const struct store_point *p)
{
    int64_t pstep = 0, pts = 0;
    uint64_t pbits = 0;
    unsigned count = 0;
    if (blk_len == 0) {
        if (cap < STORE_BLOCK_HDR)
            return 0;
        memset(blk, 0, STORE_BLOCK_HDR);
        blk[0] = BLK_VERSION;
        blk_len = STORE_BLOCK_HDR;
    } else {
        if (blk_len < STORE_BLOCK_HDR || blk[0] != BLK_VERSION)
            return 0;
        count = st_rd_le16(blk + 2);
        if (count == UINT16_MAX)
            return 0;
        if (count > 0) {
            pstep = (int64_t)st_rd_le64(blk + 16);
            pts = (int64_t)st_rd_le64(blk + 24);
            pbits = st_rd_le64(blk + 32);
        }
    }
    uint8_t tmp[MAX_POINT];
    size_t n = encode_point(tmp, pstep, pts, pbits, p);
    if (blk_len + n > cap)
        return 0;
    memcpy(blk + blk_len, tmp, n);
    if (count == 0)
        st_le64(blk + 8, (uint64_t)p->step);
    st_le16(blk + 2, (uint16_t)(count + 1));
    st_le64(blk + 16, (uint64_t)p->step);
    st_le64(blk + 24, (uint64_t)p->ts_ms);
    st_le64(blk + 32, st_f64_bits(p->value));
    return blk_len + n;
}

int store_block_decode(const uint8_t *blk, size_t blk_len, struct store_point *out, size_t cap,
                       size_t *n)
{
    *n = 0;
    if (!blk || blk_len < STORE_BLOCK_HDR || blk[0] != BLK_VERSION || blk[1] != 0 ||
        st_rd_le32(blk + 4) != 0)
        return -EBADMSG;
    size_t count = st_rd_le16(blk + 2);
    if (count > (blk_len - STORE_BLOCK_HDR) / 3) /* a point takes 3 bytes at least */
        return -EBADMSG;
    if (count > cap) {
        *n = count;
        return -ENOBUFS;
    }
    const uint8_t *p = blk + STORE_BLOCK_HDR, *end = blk + blk_len;
    uint64_t step = 0, ts = 0, bits = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t ds, dt;
        /* Deltas of one byte are the common case (steps counting up, stamps close together):
         * take them without the general loop. */
        if (p < end && *p < 0x80)
            ds = *p++;
        else if (get_varint(&p, end, &ds) < 0)
            return -EBADMSG;
        if (p < end && *p < 0x80)
            dt = *p++;
        else if (get_varint(&p, end, &dt) < 0)
            return -EBADMSG;
        if (p >= end)
            return -EBADMSG;
        step += zz_dec(ds);
        ts += zz_dec(dt);
        uint8_t c = *p++;
        if (c != 0x80) {
            unsigned lead = c >> 4, trail = c & 0x0f;
            if (lead + trail > 7)
                return -EBADMSG; /* also rejects other bytes with the top bit set */
            unsigned mid = 8 - lead - trail;
            if ((size_t)(end - p) < mid)
                return -EBADMSG;
            uint64_t x = 0;
            if (mid && end - p >= 8) {
                /* one unaligned big-endian load of 8 bytes, of which the first mid count */
                x = st_rd_be64(p) >> (8 * (8 - mid));
                p += mid;
            } else {
                for (unsigned j = 0; j < mid; j++)
                    x = x << 8 | *p++;
            }
            bits ^= x << (8 * trail);
        }
        out[i].step = (int64_t)step;
        out[i].ts_ms = (int64_t)ts;
        out[i].value = st_bits_f64(bits);
    }
    if (p != end)
        return -EBADMSG;
    if (count > 0 &&
        ((uint64_t)out[0].step != st_rd_le64(blk + 8) || step != st_rd_le64(blk + 16) ||
         ts != st_rd_le64(blk + 24) || bits != st_rd_le64(blk + 32)))
        return -EBADMSG;
    *n = count;
    return 0;
}
