/* util.h — helpers shared by the store tests: scratch directories under /tmp, a fresh store
 * in one, and a few fixed ids. */
#ifndef STORE_TEST_UTIL_H
#define STORE_TEST_UTIL_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* mkdtemp("/tmp/ststore.XXXXXX"); the path lives in buf (at least 64 bytes). */
char *scratch_dir(char *buf);
/* rm -rf of a scratch directory. */
void scratch_rm(const char *dir);
/* A run id whose bytes are all b, except the last which is n. */
void run_id(uint8_t id[16], uint8_t b, uint8_t n);
/* SHA-256("abc") (FIPS 180-2 appendix B.1) and SHA-256(""): the hashes of tiny known files. */
extern const uint8_t SHA256_OF_ABC[32];
extern const uint8_t SHA256_OF_EMPTY[32];
/* Writes len bytes of data to path; 0 or -errno. */
int write_file(const char *path, const void *data, size_t len);

/* Gathers a history handed over in chunks (store_metric_history and friends): pass
 * collect_points and a zeroed struct point_collect; free(c.pts) afterwards. Aborts when out of
 * memory (a test cannot go on). */
struct store_point;
struct point_collect {
    struct store_point *pts;
    size_t n, cap, chunks, max_chunk;
};
int collect_points(const struct store_point *pts, size_t n, void *arg);

/* xorshift64: a fast reproducible stream; each test file keeps its own seed in *state. */
static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* The bits of a double, to compare NaNs, -0.0 and infinities exactly. */
static inline uint64_t dbl_bits(double d)
{
    uint64_t u;
    __builtin_memcpy(&u, &d, sizeof u);
    return u;
}

#endif
