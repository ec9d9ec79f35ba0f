/* fuzz_block.c — libFuzzer target: store/block.c store_block_decode() on a damaged metric
 * block read back from the store. The block lies in a heap buffer of exactly its size.
 *
 * Besides "no crash": a block that decodes re-encodes (store_block_append) to one that decodes
 * to the same points, bit for bit; and a decode into too small an array gives -ENOBUFS with
 * the count needed, never a write past it. */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    uint8_t *blk = malloc(size ? size : 1);
    size_t cap = size / 3 + 1; /* what the store's reader allocates */
    struct store_point *pts = malloc(cap * sizeof *pts);
    if (!blk || !pts)
        abort();
    memcpy(blk, data, size);
    size_t n = 0;
    int rc = store_block_decode(size ? blk : NULL, size, pts, cap, &n);
    if (rc == 0 && n > 0) {
        /* a smaller array: -ENOBUFS and the count, nothing written past it */
        struct store_point *small = malloc((n - 1 ? n - 1 : 1) * sizeof *small);
        size_t need = 0;
        if (!small)
            abort();
        if (store_block_decode(blk, size, small, n - 1, &need) != -ENOBUFS || need != n)
            __builtin_trap();
        free(small);
        /* round trip */
        size_t rcap = STORE_BLOCK_HDR + n * 29;
        uint8_t *re = malloc(rcap);
        struct store_point *back = malloc(n * sizeof *back);
        if (!re || !back)
            abort();
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            len = store_block_append(re, len, rcap, &pts[i]);
            if (len == 0)
                __builtin_trap();
        }
        size_t m = 0;
        if (store_block_decode(re, len, back, n, &m) != 0 || m != n)
            __builtin_trap();
        for (size_t i = 0; i < n; i++)
            if (back[i].step != pts[i].step || back[i].ts_ms != pts[i].ts_ms ||
                bits(back[i].value) != bits(pts[i].value))
                __builtin_trap();
        free(re);
        free(back);
    }
    free(pts);
    free(blk);
    return 0;
}
