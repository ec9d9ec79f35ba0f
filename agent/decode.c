/* decode.c — checked decoding of ring records. msgpack-c parses the variable bodies (it
 * rejects malformed input with a parse error); we then check every field's type and range. */
#include "decode.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

void decode_init(struct decoder *d) { memset(d, 0, sizeof *d); }

void decode_reset(struct decoder *d)
{
    for (size_t i = 0; i < d->nstrs; i++)
        free(d->strs[i]);
    d->nstrs = 0;
}

void decode_free(struct decoder *d)
{
    decode_reset(d);
    free(d->strs);
    d->strs = NULL;
    d->cap = 0;
}

static const char *dup_str(struct decoder *d, const msgpack_object *o)
{
    /* msgpack-c gives an empty string a NULL ptr: memchr/memcpy must not see it */
    if (o->type != MSGPACK_OBJECT_STR ||
        (o->via.str.size && memchr(o->via.str.ptr, 0, o->via.str.size)))
        return NULL;
    if (d->nstrs == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 16;
        char **n = realloc(d->strs, ncap * sizeof *n);
        if (!n)
            return NULL;
        d->strs = n;
        d->cap = ncap;
    }
    char *s = malloc(o->via.str.size + 1);
    if (!s)
        return NULL;
    if (o->via.str.size)
        memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = 0;
    d->strs[d->nstrs++] = s;
    return s;
}

static bool get_u32(const msgpack_object *o, uint32_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return false;
    *v = (uint32_t)o->via.u64;
    return true;
}

static bool get_i64(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    return false;
}

static bool get_bin16(const msgpack_object *o, uint8_t out[16])
{
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != 16)
        return false;
    memcpy(out, o->via.bin.ptr, 16);
    return true;
}

/* msgpack-c's unpacker allocates what a container header claims (an array32 header of 5 bytes
 * can ask for 4 G objects, 64 GiB) before it finds that the items are missing. So the body is
 * walked first, without allocating: every container must declare no more items than there
 * are bytes left (an item takes one byte at least), which bounds what the unpacker allocates
 * by the record's length. Returns false for a truncated or impossible object. */
static bool body_sane(const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    uint64_t pending = 1;
    while (pending > 0) {
        if (pending > (uint64_t)(end - p))
            return false;
        uint8_t c = *p++;
        uint64_t skip = 0, children = 0;
        size_t w = 0; /* bytes of a length field */
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        } else if (c <= 0x8f) {
            children = 2u * (c & 0x0f);
        } else if (c <= 0x9f) {
            children = c & 0x0f;
        } else if (c <= 0xbf) {
            skip = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: w = 1; break;                 /* bin8, str8: n bytes */
            case 0xc5: case 0xda: w = 2; break;
            case 0xc6: case 0xdb: w = 4; break;
            case 0xc7: w = 1; skip = 1; break;                 /* ext: n bytes + type */
            case 0xc8: w = 2; skip = 1; break;
            case 0xc9: w = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xcd: case 0xce: case 0xcf: skip = 1u << (c - 0xcc); break;
            case 0xd0: case 0xd1: case 0xd2: case 0xd3: skip = 1u << (c - 0xd0); break;
            case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
                skip = 1 + (1u << (c - 0xd4)); break;          /* fixext: type + data */
            case 0xdc: case 0xde: w = 2; break;                 /* array16, map16 */
            case 0xdd: case 0xdf: w = 4; break;                 /* array32, map32 */
            default: return false;                              /* 0xc1 */
            }
        }
        if (w) {
            if ((size_t)(end - p) < w)
                return false;
            uint64_t n = 0;
            for (size_t i = 0; i < w; i++)
                n = n << 8 | *p++;
            if (c == 0xdc || c == 0xdd)
                children = n;
            else if (c == 0xde || c == 0xdf)
                children = 2 * n;
            else
                skip += n;
        }
        if (skip > (uint64_t)(end - p))
            return false;
        p += skip;
        pending = pending - 1 + children;
    }
    return true;
}

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && !memcmp(k->via.str.ptr, name, n);
}

static int decode_run_start(struct decoder *d, const msgpack_object *o, struct decoded *out)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return -EBADMSG;
    bool have_id = false, have_exp = false;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (key_is(k, "run"))
            have_id = get_bin16(v, out->run_id);
        else if (key_is(k, "exp"))
            have_exp = (out->experiment = dup_str(d, v)) != NULL;
        else if (key_is(k, "name")) {
            if (!(out->run_name = dup_str(d, v)))
                return -EBADMSG;
        } else if (key_is(k, "start")) {
            if (!get_i64(v, &out->time_ms))
                return -EBADMSG;
        } else if (key_is(k, "user")) {
            if (!(out->user = dup_str(d, v)))
                return -EBADMSG;
        } else if (key_is(k, "host")) {
            if (!(out->host = dup_str(d, v)))
                return -EBADMSG;
        } else if (key_is(k, "source")) {
            if (!(out->source = dup_str(d, v)))
                return -EBADMSG;
        } else if (key_is(k, "parent")) {
            if (!(out->has_parent = get_bin16(v, out->parent)))
                return -EBADMSG;
        } /* unknown keys: a newer client; ignore */
    }
    return have_id && have_exp ? 0 : -EBADMSG;
}

static int decode_model_register(struct decoder *d, const msgpack_object *a, uint32_t n,
                                 struct decoded *out)
{
    if (n != 5 || !get_u32(&a[0], &out->slot) || !(out->key = dup_str(d, &a[1])) ||
        !(out->value = dup_str(d, &a[2])) || a[3].type != MSGPACK_OBJECT_ARRAY ||
        a[3].via.array.size > WIRE_MODEL_ALIASES_MAX || !(out->description = dup_str(d, &a[4])))
        return -EBADMSG;
    out->naliases = a[3].via.array.size;
    for (uint32_t i = 0; i < out->naliases; i++)
        if (!(out->aliases[i] = dup_str(d, &a[3].via.array.ptr[i])))
            return -EBADMSG;
    return 0;
}

static int decode_body(struct decoder *d, uint8_t type, const msgpack_object *o,
                       struct decoded *out)
{
    const msgpack_object *a = o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.ptr : NULL;
    uint32_t n = a ? o->via.array.size : 0;
    switch (type) {
    case WIRE_KEYDEF:
        if (n != 2 || !get_u32(&a[0], &out->slot) || !(out->key = dup_str(d, &a[1])))
            return -EBADMSG;
        return 0;
    case WIRE_RUNDEF:
        if (n != 2 || !get_u32(&a[0], &out->slot) || !get_bin16(&a[1], out->run_id))
            return -EBADMSG;
        return 0;
    case WIRE_RUN_START:
        return decode_run_start(d, o, out);
    case WIRE_RUN_END:
        if (n != 3 || !get_u32(&a[0], &out->slot) || !get_u32(&a[1], &out->status) ||
            !get_i64(&a[2], &out->time_ms) || out->status < 3 || out->status > 5)
            return -EBADMSG;
        return 0;
    case WIRE_PARAM:
    case WIRE_TAG:
        if (n != 3 || !get_u32(&a[0], &out->slot) || !(out->key = dup_str(d, &a[1])) ||
            !(out->value = dup_str(d, &a[2])))
            return -EBADMSG;
        return 0;
    case WIRE_ARTIFACT:
        if (n != 4 || !get_u32(&a[0], &out->slot) || !(out->key = dup_str(d, &a[1])) ||
            !(out->value = dup_str(d, &a[2])) || a[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return -EBADMSG;
        out->size = a[3].via.u64;
        return 0;
    case WIRE_MODEL_REGISTER:
        return decode_model_register(d, a, n, out);
    default:
        return -EBADMSG;
    }
}

int decode_record(struct decoder *d, const struct shmlog_rec *rec, uint32_t len,
                  struct decoded *out)
{
    /* Metrics set only the fields they use: zeroing the whole struct per point was 10 % of the
     * agent's time. */
    if (len < sizeof *rec)
        return -EBADMSG;
    out->type = rec->type;
    const uint8_t *body = (const uint8_t *)(rec + 1);
    size_t body_len = len - sizeof *rec;
    switch (rec->type) {
    case SHMLOG_REC_PAD:
        return 0;
    case SHMLOG_REC_SPILL_MARK:
        if (body_len < sizeof(uint64_t))
            return -EBADMSG;
        memcpy(&out->spill_upto, body, sizeof out->spill_upto);
        return 0;
    case WIRE_METRIC:
        if (len != sizeof(struct wire_metric))
            return -EBADMSG;
        out->metric = (const struct wire_metric *)rec;
        return 0;
    case WIRE_METRICS: {
        if (len < sizeof(struct wire_metrics))
            return -EBADMSG;
        const struct wire_metrics *m = (const struct wire_metrics *)rec;
        if (m->count == 0 || m->count > WIRE_METRICS_MAX ||
            len != sizeof *m + (size_t)m->count * sizeof(struct wire_metric_entry))
            return -EBADMSG;
        out->metrics = m;
        return 0;
    }
    case WIRE_KEYDEF:
    case WIRE_RUNDEF:
    case WIRE_RUN_START:
    case WIRE_RUN_END:
    case WIRE_PARAM:
    case WIRE_TAG:
    case WIRE_ARTIFACT:
    case WIRE_MODEL_REGISTER:
        break;
    default:
        return -EBADMSG;
    }
    uint8_t type = rec->type;
    memset(out, 0, sizeof *out);
    out->type = type;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int r = -EBADMSG;
    /* Bodies are padded with zeros to 8 bytes: the object must be first, the rest zero. */
    if (body_sane(body, body_len) &&
        msgpack_unpack_next(&up, (const char *)body, body_len, &off) == MSGPACK_UNPACK_SUCCESS) {
        bool tail_zero = true;
        for (size_t i = off; i < body_len; i++)
            tail_zero &= body[i] == 0;
        if (tail_zero && body_len - off < SHMLOG_ALIGN)
            r = decode_body(d, rec->type, &up.data, out);
    }
    msgpack_unpacked_destroy(&up);
    return r;
}
