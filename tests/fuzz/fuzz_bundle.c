/* fuzz_bundle.c — libFuzzer target: sync/bundle.c bundle_open() and bundle_verify() on a
 * bundle file (what `sidetrack import` reads from a USB stick or a data diode).
 *
 * Input: a mode byte, then the file. Mode bit 0: the harness repairs the checksums that guard
 * the structure (the header's CRC-32C, each length-prefixed frame's CRC-32C, the prefix's
 * size and the trailer's SHA-256) wherever the layout can still be followed, so that mutations
 * get past them to the msgpack, the frame order rules and the trailer's counts.
 *
 * Besides "no crash": a refusal always comes with a sentence (why is never empty), and a
 * bundle that verifies has a known kind and counts that agree with one another. */
#include "bundle.h"
#include "shmlog.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes what guards the layout, as far as the layout can be followed. */
static void repair(uint8_t *b, size_t n)
{
    if (n < 36)
        return;
    for (int i = 0; i < 8; i++)
        b[24 + i] = (uint8_t)((uint64_t)n >> (8 * i));
    size_t p = 32;
    uint32_t hl = rd32(b + p);
    if (hl > n - p - 4 || n - p - 4 - hl < 4)
        return;
    wr32(b + p + 4 + hl, shmlog_crc32c(0, b + p + 4, hl));
    p += 4 + hl + 4;
    for (;;) {
        if (n - p < 4)
            return;
        uint32_t len = rd32(b + p);
        p += 4;
        if (len == 0)
            break;
        if (len < 5 || len > n - p)
            return;
        wr32(b + p + len - 4, shmlog_crc32c(0, b + p, len - 4));
        p += len;
    }
    if (n - p < 4)
        return;
    uint32_t tl = rd32(b + p);
    if (tl > n - p - 4 || n - p - 4 - tl != 32)
        return;
    unsigned dl = 0;
    EVP_Digest(b + 32, n - 32 - 32, b + n - 32, &dl, EVP_sha256(), NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return 0;
    memcpy(b, data + 1, n);
    if (mode & 1)
        repair(b, n);
    int fd = memfd_create("bundle", MFD_CLOEXEC);
    check(fd >= 0);
    check(n == 0 || write(fd, b, n) == (ssize_t)n);
    free(b);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char why[512];
    struct bundle_reader *r;
    int rc = bundle_open(&r, path, why, sizeof why);
    if (rc < 0) {
        check(why[0] != 0);
        close(fd);
        return 0;
    }
    rc = bundle_verify(r, NULL, NULL, why, sizeof why);
    if (rc < 0) {
        check(why[0] != 0 || rc == -ENOMEM);
    } else {
        const struct bundle_info *in = bundle_reader_info(r);
        check(in->kind == BUNDLE_JOURNAL || in->kind == BUNDLE_RUNS);
        check(in->bytes == n);
        check(in->batches <= in->frames && in->ops >= in->batches);
        check(in->runs <= in->ops && in->blobs <= in->frames);
        check(in->ops == 0 || in->last - in->first + 1 == in->ops);
    }
    bundle_close(r);
    close(fd);
    return 0;
}
