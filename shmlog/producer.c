/* producer.c — the producer's cold paths: claiming and closing a lane, wrap-around, refreshing
 * the cached head, the SPILL_MARK, and the spill file. The hot path (shmlog_reserve and
 * shmlog_publish) is inline in shmlog.h: a compare, a store, a copy and a release store. */
#include "shmlog.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static void producer_bind(struct shmlog_producer *p, const struct shmlog_arena *a, uint32_t lane)
{
    struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(a, lane);
    memset(p, 0, sizeof *p);
    p->arena = a;
    p->lane = lane;
    p->ctl = ctl;
    p->data = shmlog_lane_data(a, lane);
    p->size = a->lane_size;
    p->mask = p->size - 1;
    p->gen = atomic_load_explicit(&ctl->generation, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&ctl->head, memory_order_acquire);
    p->limit = head + p->size;
    p->dropped = atomic_load_explicit(&ctl->dropped_metrics, memory_order_relaxed);
    p->spilled_records = atomic_load_explicit(&ctl->spilled_records, memory_order_relaxed);
    p->spill_bytes = atomic_load_explicit(&ctl->spill_bytes, memory_order_relaxed);
    p->lost = atomic_load_explicit(&ctl->lost_records, memory_order_relaxed);
    p->spill_fd = -1;
}

int shmlog_producer_claim(struct shmlog_producer *p, const struct shmlog_arena *a,
                          uint64_t pid_start)
{
    uint64_t pid = (uint64_t)(uint32_t)getpid();
    uint32_t n = a->lane_count;

    /* A closed lane of our own process continues where it stopped. */
    for (uint32_t i = 0; i < n; i++) {
        struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(a, i);
        uint64_t w = atomic_load_explicit(&ctl->owner, memory_order_acquire);
        if ((w & 0xffffffffu) != pid || !(w & SHMLOG_OWNER_CLOSED) || (w & SHMLOG_OWNER_FREEING))
            continue;
        if (atomic_load_explicit(&ctl->pid_start, memory_order_relaxed) != pid_start)
            continue; /* an earlier process that had our pid */
        uint64_t reopened = ((w & ~SHMLOG_OWNER_CLOSED) + SHMLOG_OWNER_EPOCH1);
        if (!atomic_compare_exchange_strong_explicit(&ctl->owner, &w, reopened,
                                                     memory_order_acq_rel, memory_order_relaxed))
            continue;
        producer_bind(p, a, i);
        p->tail = atomic_load_explicit(&ctl->tail_hint, memory_order_relaxed);
        ctl->tid = (uint32_t)gettid();
        /* Anything spilled by the previous holder that no mark covered must come first. */
        p->spill_pending = p->spill_bytes > 0;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(a, i);
        uint64_t w = atomic_load_explicit(&ctl->owner, memory_order_relaxed);
        if (w != 0)
            continue;
        if (!atomic_compare_exchange_strong_explicit(&ctl->owner, &w, pid, memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue;
        ctl->tid = (uint32_t)gettid();
        ctl->uid = (uint32_t)getuid();
        atomic_store_explicit(&ctl->pid_start, pid_start, memory_order_relaxed);
        producer_bind(p, a, i);
        p->tail = atomic_load_explicit(&ctl->head, memory_order_relaxed);
        atomic_store_explicit(&ctl->tail_hint, p->tail, memory_order_relaxed);
        return 0;
    }
    return -EBUSY;
}

/* Makes room for len bytes at the tail, writing a PAD when the record would straddle the end. */
static void *reserve_space(struct shmlog_producer *p, uint32_t len)
{
    uint64_t off = p->tail & p->mask;
    uint64_t room_to_end = p->size - off;
    uint64_t need = len <= room_to_end ? len : room_to_end + len;
    if (p->tail + need > p->limit) {
        p->limit = atomic_load_explicit(&p->ctl->head, memory_order_acquire) + p->size;
        atomic_store_explicit(&p->ctl->tail_hint, p->tail, memory_order_relaxed);
        if (p->tail + need > p->limit)
            return NULL;
    }
    if (len > room_to_end) {
        struct shmlog_rec *pad = (struct shmlog_rec *)(p->data + off);
        pad->type = SHMLOG_REC_PAD;
        pad->flags = 0;
        pad->aux = 0;
        atomic_store_explicit(&pad->len, (int32_t)room_to_end, memory_order_release);
        p->tail += room_to_end;
        off = 0;
    }
    struct shmlog_rec *r = (struct shmlog_rec *)(p->data + off);
    atomic_store_explicit(&r->len, -(int32_t)len, memory_order_relaxed);
    return r;
}

struct spill_mark {
    struct shmlog_rec h;
    uint64_t upto;
};

static bool write_spill_mark(struct shmlog_producer *p)
{
    struct spill_mark *m = reserve_space(p, sizeof *m);
    if (!m)
        return false;
    m->h.type = SHMLOG_REC_SPILL_MARK;
    m->h.flags = 0;
    m->h.aux = 0;
    m->upto = p->spill_bytes;
    shmlog_publish(p, m, sizeof *m);
    p->spill_pending = false;
    return true;
}

void *shmlog_reserve_slow(struct shmlog_producer *p, uint32_t len)
{
    if (p->spill_pending && !write_spill_mark(p))
        return NULL;
    return reserve_space(p, len);
}

static int spill_open(struct shmlog_producer *p)
{
    char path[4200];
    int r = shmlog_spill_path(p->arena, p->lane, p->gen, path, sizeof path);
    if (r < 0)
        return r;
    /* The ring directory is shared (01777): a file someone else put at our spill path must not
     * receive our records. Create it exclusively; continue only a file of our own. */
    int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW;
    p->spill_fd = open(path, flags | O_CREAT | O_EXCL, 0600);
    if (p->spill_fd < 0 && errno == EEXIST)
        p->spill_fd = open(path, flags); /* this lane's own, from before a reopen */
    if (p->spill_fd < 0)
        return -errno;
    struct stat st;
    if (fstat(p->spill_fd, &st) < 0 || st.st_uid != getuid() || !S_ISREG(st.st_mode)) {
        close(p->spill_fd);
        p->spill_fd = -1;
        return -EPERM;
    }
    if ((uint64_t)st.st_size != p->spill_bytes) {
        /* A torn append from a producer killed mid-write: cut it, the agent skips it anyway. */
        if (ftruncate(p->spill_fd, (off_t)p->spill_bytes) < 0)
            return -errno;
    }
    return 0;
}

static int spill_write(struct shmlog_producer *p, uint8_t type, uint8_t flags, uint16_t aux,
                       const void *body, uint32_t body_len, uint32_t len)
{
    uint64_t total = sizeof(struct shmlog_spill_hdr) + len;
    if (p->spill_bytes + total > p->arena->spill_quota)
        return -EDQUOT;
    if (p->spill_fd < 0) {
        int r = spill_open(p);
        if (r < 0)
            return r;
    }
    struct shmlog_rec rh = {.type = type, .flags = flags, .aux = aux};
    atomic_init(&rh.len, (int32_t)len);
    static const uint8_t zeros[SHMLOG_ALIGN];
    uint32_t pad = len - (uint32_t)sizeof rh - body_len;
    uint32_t crc = shmlog_crc32c(0, &rh, sizeof rh);
    crc = shmlog_crc32c(crc, body, body_len);
    crc = shmlog_crc32c(crc, zeros, pad);
    struct shmlog_spill_hdr sh = {.len = len, .crc = crc};
    struct iovec iov[4] = {{&sh, sizeof sh}, {&rh, sizeof rh}, {(void *)body, body_len},
                           {(void *)zeros, pad}};
    ssize_t n;
    do
        n = writev(p->spill_fd, iov, 4);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)total) {
        /* Regular files write all or fail (ENOSPC, EIO): cut a torn append so the file stays
         * a clean sequence of records. */
        int r = n < 0 ? -errno : -ENOSPC;
        if (n > 0 && ftruncate(p->spill_fd, (off_t)p->spill_bytes) < 0)
            r = -errno;
        return r;
    }
    p->spill_bytes += total;
    p->spilled_records++;
    p->spill_pending = true;
    atomic_store_explicit(&p->ctl->spill_bytes, p->spill_bytes, memory_order_release);
    atomic_store_explicit(&p->ctl->spilled_records, p->spilled_records, memory_order_relaxed);
    return 1;
}

int shmlog_put(struct shmlog_producer *p, uint8_t type, uint8_t flags, uint16_t aux,
               const void *body, uint32_t body_len, bool spill)
{
    uint32_t len = (uint32_t)((sizeof(struct shmlog_rec) + body_len + SHMLOG_ALIGN - 1) &
                              ~(SHMLOG_ALIGN - 1));
    if (body_len > p->size / 4)
        return -EMSGSIZE;
    struct shmlog_rec *r = shmlog_reserve(p, len);
    if (r) {
        r->type = type;
        r->flags = flags;
        r->aux = aux;
        memcpy(r + 1, body, body_len);
        memset((uint8_t *)(r + 1) + body_len, 0, len - sizeof *r - body_len);
        shmlog_publish(p, r, len);
        return 0;
    }
    if (!spill)
        return -ENOBUFS;
    int res = spill_write(p, type, flags, aux, body, body_len, len);
    if (res < 0)
        atomic_store_explicit(&p->ctl->lost_records, ++p->lost, memory_order_relaxed);
    return res;
}

void shmlog_producer_close(struct shmlog_producer *p)
{
    if (!p->ctl)
        return;
    if (p->spill_pending)
        write_spill_mark(p); /* if the ring is full the agent takes the rest of the file anyway */
    atomic_store_explicit(&p->ctl->tail_hint, p->tail, memory_order_relaxed);
    atomic_fetch_or_explicit(&p->ctl->owner, SHMLOG_OWNER_CLOSED, memory_order_release);
    if (p->spill_fd >= 0)
        close(p->spill_fd);
    p->spill_fd = -1;
    p->ctl = NULL;
}
