/* fuzz_lane_walk.c — libFuzzer target: a lane of a hostile ring, read the way the agent's drain
 * pass reads it (shmlog_peek, decode_record, skipping PADs and, as for a dead producer,
 * half-written records), then handed back with shmlog_release.
 *
 * Input: u64 start position (little-endian), u64 committed head (even: an offset below the
 * position, odd: any value, as a hostile producer may write), then the lane's bytes. The
 * lane is the smallest power of two (64 bytes .. 64 KiB) that holds them, zero-filled. */
#include "decode.h"
#include "shmlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16)
        return 0;
    uint64_t pos, head;
    memcpy(&pos, data, 8);
    memcpy(&head, data + 8, 8);
    data += 16;
    size -= 16;
    size_t lane = 64;
    while (lane < size && lane < (64u << 10))
        lane <<= 1;
    if (size > lane)
        size = lane;
    /* positions are aligned in a real lane; keep them within a few laps of each other */
    pos &= ~(uint64_t)(SHMLOG_ALIGN - 1);
    pos &= (1ull << 40) - 1;
    /* head lives in memory every producer can write: any value; mostly near pos */
    if (!(head & 1))
        head = pos - ((head >> 1) & (2 * lane - 1));
    head &= ~(uint64_t)(SHMLOG_ALIGN - 1);
    uint8_t *buf = aligned_alloc(64, lane);
    struct shmlog_lane_ctl *ctl = aligned_alloc(64, sizeof *ctl);
    if (!buf || !ctl) {
        free(buf);
        free(ctl);
        return 0;
    }
    memset(buf, 0, lane);
    memcpy(buf, data, size);
    memset(ctl, 0, sizeof *ctl);
    atomic_store(&ctl->head, head);
    struct shmlog_cursor c = {.ctl = ctl, .data = buf, .mask = lane - 1, .pos = pos};
    struct decoder dec;
    decode_init(&dec);
    /* at most two laps: a real drain stops at an unreleased lap (peek returns 0) */
    for (unsigned steps = 0; steps < 2 * lane / SHMLOG_ALIGN; steps++) {
        const struct shmlog_rec *rec = NULL;
        int rc = shmlog_peek(&c, &rec);
        if (rc > 0) {
            if ((uint64_t)rc > lane - (c.pos & c.mask))
                __builtin_trap(); /* peek promised the record fits before the lane's end */
            struct decoded d;
            memset(&d, 0, sizeof d);
            if (decode_record(&dec, rec, (uint32_t)rc, &d) == 0 && d.key)
                sink += strlen(d.key);
            decode_reset(&dec);
            c.pos += (uint64_t)rc;
            continue;
        }
        if (rc == -EINPROGRESS) {
            int32_t skip = shmlog_peek_inprogress_len(&c);
            if (skip > 0) {
                if ((uint64_t)skip > lane - (c.pos & c.mask))
                    __builtin_trap();
                c.pos += (uint64_t)skip;
                continue;
            }
        }
        break;
    }
    shmlog_release(&c, c.pos);
    decode_free(&dec);
    free(buf);
    free(ctl);
    return 0;
}
