/* fuzz_arena_header.c — libFuzzer target: shmlog/arena.c shmlog_arena_validate() on the header
 * of a foreign, damaged or hostile ring file.
 *
 * Input: one byte of mode, then the header's bytes. The file size is the header's own
 * arena_size (mode bit 0 set: the case where only the header can be wrong) or a size taken
 * from the mode and the input's length. The header lies in a heap buffer of exactly
 * min(file size, header size) bytes, 64-byte aligned, which is what a mapping of that file guarantees. A
 * header that passes must describe an arena that open would map safely. */
#include "shmlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    struct shmlog_arena_hdr full;
    memset(&full, 0, sizeof full);
    memcpy(&full, data, size < sizeof full ? size : sizeof full);
    uint64_t file_size;
    if (mode & 1)
        file_size = full.arena_size;
    else if (mode & 2)
        file_size = size; /* a short file: fewer bytes than a header */
    else
        file_size = SHMLOG_HDR_SIZE + (uint64_t)(mode >> 2) * 4096;
    size_t have = file_size < sizeof full ? (size_t)file_size : sizeof full;
    void *mem = NULL; /* aligned like a mapping, sized exactly */
    if (posix_memalign(&mem, 64, have ? have : 1) != 0)
        abort();
    uint8_t *buf = mem;
    memcpy(buf, &full, have);
    int rc = shmlog_arena_validate((const struct shmlog_arena_hdr *)buf, file_size);
    if (rc == 0) {
        const struct shmlog_arena_hdr *h = (const struct shmlog_arena_hdr *)buf;
        /* what the consumer then relies on: every lane's ctl and data inside the file */
        uint64_t ctl_end = SHMLOG_HDR_SIZE + (uint64_t)h->lane_count * SHMLOG_CTL_SIZE;
        uint64_t first = (ctl_end + 4095) & ~(uint64_t)4095;
        if (have < sizeof full || h->lane_count == 0 || h->lane_count > SHMLOG_MAX_LANES ||
            h->lane_size < SHMLOG_MIN_LANE_SIZE || h->lane_size > SHMLOG_MAX_LANE_SIZE ||
            (h->lane_size & (h->lane_size - 1)) ||
            first + (uint64_t)h->lane_count * h->lane_size > file_size)
            __builtin_trap();
    } else if (rc != -EPROTO && rc != -EPROTONOSUPPORT && rc != -EBADMSG) {
        __builtin_trap(); /* only the documented errors */
    }
    free(buf);
    return 0;
}
