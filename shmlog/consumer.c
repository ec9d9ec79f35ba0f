/* consumer.c — the agent's side of a lane: reading published records in place, handing space
 * back after commit, and freeing the lanes of producers that closed or died. */
#include "shmlog.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

void shmlog_cursor_init(struct shmlog_cursor *c, const struct shmlog_arena *a, uint32_t lane,
                        uint64_t pos)
{
    c->ctl = shmlog_lane_ctl(a, lane);
    c->data = shmlog_lane_data(a, lane);
    c->mask = a->lane_size - 1;
    c->pos = pos;
}

int shmlog_peek(const struct shmlog_cursor *c, const struct shmlog_rec **rec)
{
    /* A whole lap read but not yet released: the bytes at pos are the record at head, which
     * the producer may not overwrite before the release. Reading on would deliver it twice. */
    uint64_t head = atomic_load_explicit(&c->ctl->head, memory_order_relaxed);
    if (c->pos >= head + c->mask + 1)
        return 0;
    uint64_t off = c->pos & c->mask;
    const struct shmlog_rec *r = (const struct shmlog_rec *)(c->data + off);
    int32_t len = atomic_load_explicit(&((struct shmlog_rec *)r)->len, memory_order_acquire);
    if (len == 0)
        return 0;
    if (len < 0)
        return -EINPROGRESS;
    if ((uint32_t)len < sizeof *r || (len & (SHMLOG_ALIGN - 1)) ||
        (uint64_t)len > c->mask + 1 - off)
        return -EBADMSG;
    *rec = r;
    return len;
}

int32_t shmlog_peek_inprogress_len(const struct shmlog_cursor *c)
{
    uint64_t off = c->pos & c->mask;
    struct shmlog_rec *r = (struct shmlog_rec *)(c->data + off);
    int32_t len = atomic_load_explicit(&r->len, memory_order_acquire);
    if (len >= 0 || len == INT32_MIN)
        return 0;
    len = -len;
    if ((uint32_t)len < sizeof *r || (len & (SHMLOG_ALIGN - 1)) ||
        (uint64_t)len > c->mask + 1 - off)
        return 0;
    return len;
}

static void zero_range(uint8_t *data, uint64_t mask, uint64_t from, uint64_t to)
{
    uint64_t size = mask + 1;
    while (from < to) {
        uint64_t off = from & mask;
        uint64_t n = to - from;
        if (n > size - off)
            n = size - off;
        memset(data + off, 0, n);
        from += n;
    }
}

void shmlog_release(struct shmlog_cursor *c, uint64_t upto)
{
    uint64_t head = atomic_load_explicit(&c->ctl->head, memory_order_relaxed);
    if (upto <= head)
        return;
    /* head lives in memory the producer can write: never zero more than one lap for it. */
    if (upto - head > c->mask + 1)
        head = upto - (c->mask + 1);
    zero_range(c->data, c->mask, head, upto);
    atomic_store_explicit(&c->ctl->head, upto, memory_order_release);
}

bool shmlog_lane_close_dead(struct shmlog_lane_ctl *ctl, uint64_t observed)
{
    return atomic_compare_exchange_strong_explicit(&ctl->owner, &observed,
                                                   observed | SHMLOG_OWNER_CLOSED,
                                                   memory_order_acq_rel, memory_order_relaxed);
}

int shmlog_lane_free(const struct shmlog_arena *a, uint32_t lane, uint64_t observed)
{
    struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(a, lane);
    if (!(observed & SHMLOG_OWNER_CLOSED) ||
        !atomic_compare_exchange_strong_explicit(&ctl->owner, &observed,
                                                 observed | SHMLOG_OWNER_FREEING,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return -EAGAIN;
    uint8_t *data = shmlog_lane_data(a, lane);
    size_t size = a->lane_size;
    /* Give the pages back to the system (tmpfs reads holes as zeros); memset where it can't. */
    if (madvise(data, size, MADV_REMOVE) != 0)
        memset(data, 0, size);
    atomic_store_explicit(&ctl->dropped_metrics, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->spilled_records, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->spill_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->lost_records, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->skipped, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->tail_hint, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->head, 0, memory_order_relaxed);
    ctl->tid = 0;
    ctl->uid = 0;
    atomic_store_explicit(&ctl->pid_start, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctl->generation, 1, memory_order_release);
    atomic_store_explicit(&ctl->owner, 0, memory_order_release);
    return 0;
}
