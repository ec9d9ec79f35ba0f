/* fuzz_store_value.c — libFuzzer target: the store's readers of stored values, on damaged bytes
 * read back from LMDB: the msgpack pull reader of store/mpk.c (st_mpr_map, st_mpr_val,
 * st_mp_as_*) through its real callers, the run row (runs.c row_decode) and the experiment
 * (experiments.c exp_decode) decoders, plus a generic walk of any msgpack value; and the
 * fixed-size lane and metric summary records (lanes.c, metrics.c).
 *
 * Input: one byte that picks the reader, then the stored value, in a heap buffer of exactly
 * its size. The decoders are static, so their source files are included here. */
#include "../../store/runs.c"
#include "../../store/experiments.c"
#include "../../store/lanes.c"
#include "../../store/metrics.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

/* Any msgpack value: a map's entries read as scalars (containers skipped), else one value. */
static void walk(const uint8_t *p, size_t n)
{
    struct st_mpr r = {p, p + n};
    uint32_t entries;
    if (st_mpr_map(&r, &entries) == 0) {
        for (uint32_t i = 0; i < entries; i++) {
            struct st_mp_val k, v;
            if (st_mpr_val(&r, &k) < 0 || st_mpr_val(&r, &v) < 0)
                return;
            if (r.p > r.end)
                __builtin_trap();
            char s[64];
            int64_t x;
            uint64_t u;
            if (st_mp_as_str(&k, s, sizeof s) == 0)
                sink += strlen(s);
            if (st_mp_as_i64(&v, &x) == 0 || st_mp_as_u64(&v, &u) == 0)
                sink++;
            if ((v.type == MP_STR || v.type == MP_BIN) && v.len)
                sink += v.ptr[v.len - 1];
        }
        return;
    }
    r.p = p;
    while (r.p < r.end) {
        struct st_mp_val v;
        if (st_mpr_val(&r, &v) < 0)
            return;
        if (r.p > r.end)
            __builtin_trap();
        if ((v.type == MP_STR || v.type == MP_BIN) && v.len)
            sink += v.ptr[v.len - 1];
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    uint8_t which = data[0] % 4;
    size--;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data + 1, size);
    MDB_val v = {.mv_size = size, .mv_data = buf};
    static const uint8_t id[16] = {1};
    switch (which) {
    case 0: {
        struct run_row row;
        if (row_decode(id, &v, &row) == 0)
            sink += strlen(row.r.name) + strlen(row.r.user) + strlen(row.r.host);
        break;
    }
    case 1: {
        struct store_experiment e;
        if (exp_decode(&v, 7, &e) == 0)
            sink += strlen(e.name);
        break;
    }
    case 2:
        walk(buf, size);
        break;
    default:
        /* the fixed records, behind the length checks their readers make */
        if (size >= LANE_LEN) {
            struct store_lane l;
            lane_decode(buf, &l);
            sink += l.pid;
        }
        if (size >= SUM_LEN) {
            struct store_metric_summary s;
            sum_decode(buf, &s);
            sink += s.count;
        }
        break;
    }
    free(buf);
    return 0;
}
