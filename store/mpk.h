/* mpk.h — the store's msgpack writer and bounds-checked pull reader (mpk.c), shared with the
 * sync codec: both decode bytes that someone else controls (the disk, a peer on the network).
 *
 * Writing goes through msgpack-c's packer into a buffer that starts inline and grows on the
 * heap; a failed allocation is remembered and reported once by st_mpw_done(), so a value can
 * be written without checking every call. Reading never allocates and checks every length
 * against the end of the buffer: malformed bytes give -EBADMSG, never a read out of bounds. */
#ifndef SIDETRACK_STORE_MPK_H
#define SIDETRACK_STORE_MPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Deepest nesting of arrays and maps the reader walks: more is -EBADMSG (no value of ours
 * nests more than a few levels, and a bound keeps hostile input from costing more). */
#define ST_MP_MAX_DEPTH 32

struct st_mpw {
    uint8_t *buf;
    size_t len, cap;
    bool oom;
    uint8_t inl[512];
};
void st_mpw_init(struct st_mpw *w);
void st_mpw_free(struct st_mpw *w);
void st_mpw_map(struct st_mpw *w, uint32_t n);
void st_mpw_array(struct st_mpw *w, uint32_t n);
void st_mpw_str(struct st_mpw *w, const char *s);
void st_mpw_strn(struct st_mpw *w, const char *s, size_t n);
void st_mpw_bin(struct st_mpw *w, const void *p, size_t n);
void st_mpw_uint(struct st_mpw *w, uint64_t v);
void st_mpw_int(struct st_mpw *w, int64_t v);
void st_mpw_f64(struct st_mpw *w, double v);
void st_mpw_bool(struct st_mpw *w, bool v);
void st_mpw_nil(struct st_mpw *w);
/* 0, or -ENOMEM if any write failed. */
int st_mpw_done(const struct st_mpw *w);

struct st_mpr {
    const uint8_t *p, *end;
};
enum st_mp_type { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_STR, MP_BIN, MP_F64, MP_OTHER };
struct st_mp_val {
    enum st_mp_type type;
    bool b;
    uint64_t u; /* MP_UINT */
    int64_t i;  /* MP_INT (negative) */
    double d;   /* MP_F64 (a float32 is widened) */
    const uint8_t *ptr; /* MP_STR, MP_BIN */
    uint32_t len;
};
/* Reads a map header (n entries, 2n values follow); -EBADMSG if the next value is not a map. */
int st_mpr_map(struct st_mpr *r, uint32_t *n);
/* Reads an array header (n values follow); -EBADMSG if the next value is not an array. */
int st_mpr_array(struct st_mpr *r, uint32_t *n);
/* Reads one scalar value; arrays, maps and ext are skipped whole and reported MP_OTHER. */
int st_mpr_val(struct st_mpr *r, struct st_mp_val *v);
/* Skips one value of any type, containers with everything in them (at most ST_MP_MAX_DEPTH
 * levels). */
int st_mpr_skip(struct st_mpr *r);
/* Integer value as int64 (either sign), -EBADMSG on other types or overflow. */
int st_mp_as_i64(const struct st_mp_val *v, int64_t *out);
int st_mp_as_u64(const struct st_mp_val *v, uint64_t *out);
/* Reads the next value as an integer (either sign / non-negative), or as a bin of exactly
 * len bytes copied to out; -EBADMSG for anything else. */
int st_mpr_i64(struct st_mpr *r, int64_t *out);
int st_mpr_u64(struct st_mpr *r, uint64_t *out);
int st_mpr_bin_exact(struct st_mpr *r, uint8_t *out, uint32_t len);
/* Copies a string value into a NUL-terminated buffer; -EBADMSG when it does not fit or holds
 * a NUL. */
int st_mp_as_str(const struct st_mp_val *v, char *buf, size_t len);
static inline bool st_mp_key_is(const struct st_mp_val *v, const char *k)
{
    size_t n = strlen(k);
    return v->type == MP_STR && v->len == n && memcmp(v->ptr, k, n) == 0;
}

#endif
