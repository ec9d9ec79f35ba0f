/* mpk.c — msgpack for the store's growable values (experiments, runs, journal ops) and for
 * the sync codec (mpk.h).
 *
 * Writing uses msgpack-c's packer with a callback into a buffer that starts inline and grows
 * on the heap. Reading does not use msgpack-c's object tree: stored bytes may be damaged, and
 * the tree unpacker allocates whatever sizes a header claims. The pull reader below walks the
 * bytes in place, checks every length against the end of the buffer, never allocates, and
 * turns anything malformed into -EBADMSG. Values are maps with short string keys; unknown keys
 * (from a newer writer) are skipped, whatever their type.
 */
#include "mpk.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>

void st_mpw_init(struct st_mpw *w)
{
    w->buf = w->inl;
    w->len = 0;
    w->cap = sizeof w->inl;
    w->oom = false;
}

void st_mpw_free(struct st_mpw *w)
{
    if (w->buf != w->inl)
        free(w->buf);
    w->buf = w->inl;
}

static int mpw_write(void *data, const char *buf, size_t len)
{
    struct st_mpw *w = data;
    if (w->oom)
        return -1;
    if (w->len + len > w->cap) {
        size_t cap = w->cap * 2;
        while (cap < w->len + len)
            cap *= 2;
        uint8_t *nb = malloc(cap);
        if (!nb) {
            w->oom = true;
            return -1;
        }
        memcpy(nb, w->buf, w->len);
        if (w->buf != w->inl)
            free(w->buf);
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, buf, len);
    w->len += len;
    return 0;
}

#define PACKER(w) msgpack_packer pk; msgpack_packer_init(&pk, (w), mpw_write)

void st_mpw_map(struct st_mpw *w, uint32_t n) { PACKER(w); msgpack_pack_map(&pk, n); }
void st_mpw_array(struct st_mpw *w, uint32_t n) { PACKER(w); msgpack_pack_array(&pk, n); }
void st_mpw_nil(struct st_mpw *w) { PACKER(w); msgpack_pack_nil(&pk); }
void st_mpw_f64(struct st_mpw *w, double v) { PACKER(w); msgpack_pack_double(&pk, v); }
void st_mpw_str(struct st_mpw *w, const char *s) { st_mpw_strn(w, s, strlen(s)); }
void st_mpw_strn(struct st_mpw *w, const char *s, size_t n)
{
    PACKER(w);
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, s, n);
}
void st_mpw_bin(struct st_mpw *w, const void *p, size_t n)
{
    PACKER(w);
    msgpack_pack_bin(&pk, n);
    msgpack_pack_bin_body(&pk, p, n);
}
void st_mpw_uint(struct st_mpw *w, uint64_t v) { PACKER(w); msgpack_pack_uint64(&pk, v); }
void st_mpw_int(struct st_mpw *w, int64_t v) { PACKER(w); msgpack_pack_int64(&pk, v); }
void st_mpw_bool(struct st_mpw *w, bool v)
{
    PACKER(w);
    if (v)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
}
int st_mpw_done(const struct st_mpw *w) { return w->oom ? -ENOMEM : 0; }

/* ---- reader ---- */

static int rd_n(struct st_mpr *r, size_t n, uint64_t *out)
{
    if ((size_t)(r->end - r->p) < n)
        return -EBADMSG;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    *out = v;
    return 0;
}

static int rd_skip(struct st_mpr *r, uint64_t n)
{
    if ((uint64_t)(r->end - r->p) < n)
        return -EBADMSG;
    r->p += n;
    return 0;
}

/* Reads one item's header. Scalars are decoded into v; containers set *children to the
 * number of items that follow. */
static int rd_item(struct st_mpr *r, struct st_mp_val *v, uint64_t *children)
{
    *children = 0;
    memset(v, 0, sizeof *v);
    v->type = MP_OTHER;
    if (r->p >= r->end)
        return -EBADMSG;
    uint8_t c = *r->p++;
    uint64_t x;
    int rc = 0;
    if (c <= 0x7f) {
        v->type = MP_UINT;
        v->u = c;
    } else if (c <= 0x8f) {
        *children = 2u * (c & 0x0f);
    } else if (c <= 0x9f) {
        *children = c & 0x0f;
    } else if (c <= 0xbf) {
        v->type = MP_STR;
        v->len = c & 0x1f;
        v->ptr = r->p;
        rc = rd_skip(r, v->len);
    } else if (c >= 0xe0) {
        v->type = MP_INT;
        v->i = (int8_t)c;
    } else {
        switch (c) {
        case 0xc0: v->type = MP_NIL; break;
        case 0xc2: case 0xc3: v->type = MP_BOOL; v->b = c == 0xc3; break;
        case 0xc4: case 0xc5: case 0xc6:
        case 0xd9: case 0xda: case 0xdb: {
            size_t w = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
            if ((rc = rd_n(r, w, &x)) < 0)
                return rc;
            v->type = c <= 0xc6 ? MP_BIN : MP_STR;
            v->len = (uint32_t)x;
            v->ptr = r->p;
            rc = rd_skip(r, x);
            break;
        }
        case 0xc7: case 0xc8: case 0xc9: {
            size_t w = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
            if ((rc = rd_n(r, w, &x)) < 0)
                return rc;
            rc = rd_skip(r, x + 1);
            break;
        }
        case 0xca: {
            if ((rc = rd_n(r, 4, &x)) < 0)
                return rc;
            float f;
            uint32_t b32 = (uint32_t)x;
            memcpy(&f, &b32, 4);
            v->type = MP_F64;
            v->d = f;
            break;
        }
        case 0xcb:
            if ((rc = rd_n(r, 8, &x)) < 0)
                return rc;
            v->type = MP_F64;
            memcpy(&v->d, &x, 8);
            break;
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            if ((rc = rd_n(r, (size_t)1 << (c - 0xcc), &x)) < 0)
                return rc;
            v->type = MP_UINT;
            v->u = x;
            break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            size_t w = (size_t)1 << (c - 0xd0);
            if ((rc = rd_n(r, w, &x)) < 0)
                return rc;
            int64_t s;
            if (w == 8) {
                s = (int64_t)x;
            } else {
                uint64_t sign = (uint64_t)1 << (w * 8 - 1);
                s = (int64_t)((x ^ sign) - sign); /* sign-extend */
            }
            if (s >= 0) {
                v->type = MP_UINT;
                v->u = (uint64_t)s;
            } else {
                v->type = MP_INT;
                v->i = s;
            }
            break;
        }
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            rc = rd_skip(r, 1 + ((uint64_t)1 << (c - 0xd4)));
            break;
        case 0xdc: case 0xdd:
            if ((rc = rd_n(r, c == 0xdc ? 2 : 4, &x)) < 0)
                return rc;
            *children = x;
            break;
        case 0xde: case 0xdf:
            if ((rc = rd_n(r, c == 0xde ? 2 : 4, &x)) < 0)
                return rc;
            *children = 2 * x;
            break;
        default: /* 0xc1: never used */
            return -EBADMSG;
        }
    }
    return rc;
}

/* Reads an array's or a map's header: *n items (an array) or entries (a map). */
static int rd_container(struct st_mpr *r, bool map, uint32_t *n)
{
    if (r->p >= r->end)
        return -EBADMSG;
    uint8_t c = *r->p;
    uint8_t fix = map ? 0x80 : 0x90;
    uint8_t x16 = map ? 0xde : 0xdc;
    uint64_t x;
    if (c >= fix && c <= fix + 0x0f) {
        r->p++;
        x = c & 0x0f;
    } else if (c == x16 || c == x16 + 1) {
        r->p++;
        int rc = rd_n(r, c == x16 ? 2 : 4, &x);
        if (rc < 0)
            return rc;
    } else {
        return -EBADMSG;
    }
    /* every item takes at least a byte: a count the bytes left cannot hold is a lie */
    if (x * (map ? 2u : 1u) > (uint64_t)(r->end - r->p))
        return -EBADMSG;
    *n = (uint32_t)x;
    return 0;
}

int st_mpr_map(struct st_mpr *r, uint32_t *n) { return rd_container(r, true, n); }
int st_mpr_array(struct st_mpr *r, uint32_t *n) { return rd_container(r, false, n); }

int st_mpr_skip(struct st_mpr *r)
{
    /* items still to read at each open level; every item takes at least one byte, so counts
     * are checked against the bytes left and the walk ends */
    uint64_t left[ST_MP_MAX_DEPTH];
    unsigned depth = 0;
    do {
        struct st_mp_val v;
        uint64_t children;
        int rc = rd_item(r, &v, &children);
        if (rc < 0)
            return rc;
        if (depth > 0)
            left[depth - 1]--;
        if (children > 0) {
            if (depth == ST_MP_MAX_DEPTH || children > (uint64_t)(r->end - r->p))
                return -EBADMSG;
            left[depth++] = children;
        }
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
    } while (depth > 0);
    return 0;
}

int st_mpr_val(struct st_mpr *r, struct st_mp_val *v)
{
    const uint8_t *start = r->p;
    uint64_t children;
    int rc = rd_item(r, v, &children);
    if (rc < 0 || children == 0)
        return rc;
    r->p = start;
    return st_mpr_skip(r);
}

int st_mp_as_i64(const struct st_mp_val *v, int64_t *out)
{
    if (v->type == MP_INT) {
        *out = v->i;
        return 0;
    }
    if (v->type == MP_UINT && v->u <= INT64_MAX) {
        *out = (int64_t)v->u;
        return 0;
    }
    return -EBADMSG;
}

int st_mp_as_u64(const struct st_mp_val *v, uint64_t *out)
{
    if (v->type != MP_UINT)
        return -EBADMSG;
    *out = v->u;
    return 0;
}

int st_mp_as_str(const struct st_mp_val *v, char *buf, size_t len)
{
    if (v->type != MP_STR || v->len >= len || memchr(v->ptr, 0, v->len))
        return -EBADMSG;
    memcpy(buf, v->ptr, v->len);
    buf[v->len] = '\0';
    return 0;
}

int st_mpr_i64(struct st_mpr *r, int64_t *out)
{
    struct st_mp_val v;
    int rc = st_mpr_val(r, &v);
    return rc < 0 ? rc : st_mp_as_i64(&v, out);
}

int st_mpr_u64(struct st_mpr *r, uint64_t *out)
{
    struct st_mp_val v;
    int rc = st_mpr_val(r, &v);
    return rc < 0 ? rc : st_mp_as_u64(&v, out);
}

int st_mpr_bin_exact(struct st_mpr *r, uint8_t *out, uint32_t len)
{
    struct st_mp_val v;
    int rc = st_mpr_val(r, &v);
    if (rc < 0)
        return rc;
    if (v.type != MP_BIN || v.len != len)
        return -EBADMSG;
    memcpy(out, v.ptr, len);
    return 0;
}
