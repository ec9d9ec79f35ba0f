/* shmlog.h — the lock-free shared-memory ring between training processes and the agent.
 *
 * An arena is one file (by default in /dev/shm) mapped by every producer process of one user
 * and by the agent. It holds a header page, a table of lane control blocks and the lanes'
 * data. Each lane is a single-producer/single-consumer byte ring owned by one producer thread,
 * claimed from the table with one CAS, so producers never contend with each other and a
 * producer preempted mid-record stalls nobody but itself (see ../shared/HOTPATH.md).
 *
 * Record protocol (Aeron's): a record starts with an 8-byte header whose first word is its
 * length. The producer stores -len while it fills the record and +len with release semantics
 * to publish it; the consumer loads it with acquire. 0 means "nothing written here yet",
 * which holds because the consumer zeroes what it has consumed before it hands the space
 * back. A record never straddles the end of the lane: a PAD record fills the tail instead.
 *
 * Positions are 64-bit byte counters that only grow; offset = pos & (lane_size - 1).
 * The consumer's `head` in the lane control block is the committed position: the producer may
 * write up to head + lane_size. The consumer's authority on restart is the position it stored
 * in its own database, not this field (invariant 2 in ARCHITECTURE.md).
 *
 * When a lane is full, the producer never spins and never blocks: shmlog_reserve() returns
 * NULL and the caller either drops (metrics, counted in the lane) or spills the record to the
 * lane's spill file (every other kind). Spilled records are later ordered back into the
 * stream by a SPILL_MARK record, written into the ring before anything else once there is
 * space again, that says "the spill file up to this offset comes before me".
 *
 * This library depends on libc only. Functions return 0 or a negative errno; none prints.
 */
#ifndef SIDETRACK_SHMLOG_H
#define SIDETRACK_SHMLOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHMLOG_MAGIC "STSHMLOG"
#define SHMLOG_VERSION 1u
#define SHMLOG_HDR_SIZE 4096u
#define SHMLOG_CTL_SIZE 256u
#define SHMLOG_ALIGN 8u

/* Defaults used when a producer or the agent creates an arena (see shmlog_geometry). */
#define SHMLOG_DEFAULT_LANES 64u
#define SHMLOG_DEFAULT_LANE_SIZE (8u << 20)
#define SHMLOG_DEFAULT_SPILL_QUOTA (256ull << 20)
#define SHMLOG_MIN_LANE_SIZE (64u << 10)
#define SHMLOG_MAX_LANE_SIZE (1u << 30)
#define SHMLOG_MAX_LANES 4096u

/* The timestamp domain a producer stamps records in. TSC: raw rdtsc ticks, turned into wall
 * time by the agent (12 ns instead of 30 ns for clock_gettime here). REALTIME: nanoseconds. */
enum shmlog_clock { SHMLOG_CLOCK_REALTIME = 1, SHMLOG_CLOCK_TSC = 2 };

/* Lane ownership word: 0 when free, else the owner's pid in the low 32 bits, flags, and an
 * epoch that grows each time a closed lane is reopened (so that the agent's compare-and-swap
 * when it frees a lane cannot be fooled by a close/reopen/close in between). */
#define SHMLOG_OWNER_CLOSED (1ull << 32)
#define SHMLOG_OWNER_FREEING (1ull << 33)
#define SHMLOG_OWNER_EPOCH1 (1ull << 40)
#define SHMLOG_OWNER_PID(w) ((pid_t)((w) & 0xffffffffu))

/* Record types. The fixed-size ones are laid out in wire.h; the rest carry msgpack bodies. */
enum shmlog_rec_type {
    SHMLOG_REC_PAD = 0xff,        /* filler up to the end of the lane */
    SHMLOG_REC_SPILL_MARK = 0xfe, /* body: u64 spill offset; ingest the spill file up to it */
};

struct shmlog_rec {
    _Atomic int32_t len; /* whole record incl. this header, multiple of 8; <0 while written */
    uint8_t type;
    uint8_t flags;
    uint16_t aux;
};

struct shmlog_arena_hdr {
    char magic[8];
    uint32_t version;
    uint32_t hdr_size;
    uint32_t ctl_size;
    uint32_t lane_count;
    uint64_t lane_size;
    uint64_t arena_size;
    uint8_t arena_id[16]; /* random, names this arena in the agent's store */
    uint32_t creator_uid;
    uint32_t clock;       /* enum shmlog_clock, chosen by the creator for every producer */
    uint64_t created_ns;  /* CLOCK_REALTIME at creation */
    uint64_t spill_quota; /* bytes a lane may spill before non-metric records are lost */
    /* Written by the agent, read by producers and tools. */
    _Alignas(64) _Atomic uint32_t agent_pid;
    uint32_t reserved0;
    _Atomic uint64_t agent_heartbeat_ns; /* CLOCK_REALTIME of the agent's last drain pass */
    _Atomic uint64_t tsc_per_sec_bits;   /* the agent's TSC frequency estimate (a double) */
    char spool_dir[256];                 /* where producers put artifact files; "" = default */
};

struct shmlog_lane_ctl {
    /* Owner line: written at claim and close. */
    _Alignas(64) _Atomic uint64_t owner; /* 0 free, else pid | flags */
    _Atomic uint32_t generation;         /* bumped by the agent each time it frees the lane */
    uint32_t tid;
    uint32_t uid;
    uint32_t reserved1;
    /* The owner's start time (clock ticks since boot), against pid reuse. Written just after
     * the claiming CAS, so a reader that sees the new owner word may still see 0 here: 0 means
     * "claim being completed", never "dead". Atomic because it is read while being written. */
    _Atomic uint64_t pid_start;
    /* Producer line: counters the producer alone writes (plain stores, no RMW). */
    _Alignas(64) _Atomic uint64_t tail_hint;       /* producer position, refreshed on slow paths */
    _Atomic uint64_t dropped_metrics;              /* metric records dropped on a full lane */
    _Atomic uint64_t spilled_records;              /* records written to the spill file */
    _Atomic uint64_t spill_bytes;                  /* spill file length */
    _Atomic uint64_t lost_records;                 /* non-metric records lost: spill quota or I/O */
    /* Consumer line. */
    _Alignas(64) _Atomic uint64_t head; /* committed: the producer may write below head+size */
    _Atomic uint64_t skipped;           /* half-written records the consumer skipped */
};

_Static_assert(sizeof(struct shmlog_arena_hdr) <= SHMLOG_HDR_SIZE, "header fits its page");
_Static_assert(sizeof(struct shmlog_lane_ctl) <= SHMLOG_CTL_SIZE, "lane ctl fits");
_Static_assert(sizeof(struct shmlog_rec) == 8, "record header is 8 bytes");

struct shmlog_geometry {
    uint32_t lane_count;   /* 0: SHMLOG_DEFAULT_LANES */
    uint64_t lane_size;    /* 0: SHMLOG_DEFAULT_LANE_SIZE; rounded up to a power of two */
    uint64_t spill_quota;  /* 0: SHMLOG_DEFAULT_SPILL_QUOTA */
    uint32_t clock;        /* 0: TSC where invariant, else REALTIME */
};

struct shmlog_arena {
    struct shmlog_arena_hdr *hdr;
    /* The geometry as validated at open, copied out of the shared header: the header stays
     * writable by every producer, and a consumer that re-read it could be made to index past
     * its own arrays. Use these, never hdr's. */
    uint32_t lane_count;
    uint32_t clock;
    uint64_t lane_size;
    uint64_t spill_quota;
    uint8_t *base;
    size_t size;
    int fd;
    uid_t file_uid; /* owner of the file as the kernel reports it */
    char path[4096];
};

/* Opens the arena at path. With SHMLOG_CREATE it is created (atomically: built in a temporary
 * file and linked into place) if it does not exist, using geo (NULL for defaults).
 * Errors: -ENOENT (absent, no create), -EPROTO (not an arena: wrong magic), -EPROTONOSUPPORT
 * (another layout version), -EBADMSG (header inconsistent with itself or the file size),
 * -EINVAL (bad geometry), or the errno of open/mmap. */
#define SHMLOG_CREATE 1u
int shmlog_arena_open(struct shmlog_arena *a, const char *path, unsigned flags,
                      const struct shmlog_geometry *geo);
void shmlog_arena_close(struct shmlog_arena *a);
/* Checks a header the way shmlog_arena_open does; file_size is the mapped length. */
int shmlog_arena_validate(const struct shmlog_arena_hdr *h, uint64_t file_size);
/* A sentence for the errors above, naming what to do ("delete the file", "upgrade"). */
const char *shmlog_strerror(int err);

static inline struct shmlog_lane_ctl *shmlog_lane_ctl(const struct shmlog_arena *a, uint32_t i)
{
    return (struct shmlog_lane_ctl *)(a->base + SHMLOG_HDR_SIZE + (size_t)i * SHMLOG_CTL_SIZE);
}
static inline uint8_t *shmlog_lane_data(const struct shmlog_arena *a, uint32_t i)
{
    size_t ctl_bytes = (size_t)a->lane_count * SHMLOG_CTL_SIZE;
    size_t first = (SHMLOG_HDR_SIZE + ctl_bytes + 4095) & ~(size_t)4095;
    return a->base + first + (size_t)i * a->lane_size;
}
/* Makes a directory with exactly this mode (01777 for the ring and spool directories that
 * every user writes into), whatever the umask; an existing one is left as it is. */
int shmlog_mkdir(const char *dir, mode_t mode);
/* The spill file of lane i in generation gen: "<arena path>.<i>.<gen>.spill". */
int shmlog_spill_path(const struct shmlog_arena *a, uint32_t lane, uint32_t gen, char *buf,
                      size_t len);

/* ---- producer side (one thread per lane) ---------------------------------------------- */

struct shmlog_producer {
    /* hot: touched by every reserve/publish */
    uint8_t *data;
    uint64_t mask;
    uint64_t tail;  /* next write position */
    uint64_t limit; /* cached head + lane_size: the producer re-reads head only past it */
    bool spill_pending; /* spilled since the last SPILL_MARK: write one before anything */
    /* cold */
    struct shmlog_lane_ctl *ctl;
    const struct shmlog_arena *arena;
    uint32_t lane;
    uint32_t gen;
    uint64_t size;
    uint64_t dropped;
    uint64_t spilled_records;
    uint64_t spill_bytes;
    uint64_t lost;
    int spill_fd;
};

/* Claims a lane for the calling thread: first a closed lane of this same process that the
 * agent has not freed yet (its records continue where they stopped, which keeps lanes from
 * running out while no agent runs), else a free one. -EBUSY when every lane is taken. */
int shmlog_producer_claim(struct shmlog_producer *p, const struct shmlog_arena *a,
                          uint64_t pid_start);
/* Marks the lane closed so that the agent drains and frees it; p is unusable afterwards. */
void shmlog_producer_close(struct shmlog_producer *p);

void *shmlog_reserve_slow(struct shmlog_producer *p, uint32_t len);

/* Returns space for a record of len bytes (a multiple of 8, header included), already marked
 * as being written, or NULL when the lane is full. Never blocks, never makes a syscall unless
 * a spill is pending (then it writes the SPILL_MARK first, from memory). */
static inline void *shmlog_reserve(struct shmlog_producer *p, uint32_t len)
{
    uint64_t off = p->tail & p->mask;
    if (__builtin_expect(p->spill_pending || p->tail + len > p->limit ||
                             off + len > p->mask + 1,
                         0))
        return shmlog_reserve_slow(p, len);
    struct shmlog_rec *r = (struct shmlog_rec *)(p->data + off);
    atomic_store_explicit(&r->len, -(int32_t)len, memory_order_relaxed);
    return r;
}

/* Publishes the record that shmlog_reserve returned; len must be the reserved length. */
static inline void shmlog_publish(struct shmlog_producer *p, void *rec, uint32_t len)
{
    atomic_store_explicit(&((struct shmlog_rec *)rec)->len, (int32_t)len, memory_order_release);
    p->tail += len;
}

/* Counts a metric record that did not fit (the lane's visible drop counter). */
static inline void shmlog_count_drop(struct shmlog_producer *p)
{
    atomic_store_explicit(&p->ctl->dropped_metrics, ++p->dropped, memory_order_relaxed);
}

/* Writes a whole record (header fields + body) into the ring, or, when the lane is full and
 * spill is true, appends it to the lane's spill file. Returns 0 (in the ring), 1 (spilled),
 * -ENOBUFS (full and not spilled: the caller counts it), -EDQUOT (spill quota reached: counted
 * as lost) or another -errno from the spill file (counted as lost). */
int shmlog_put(struct shmlog_producer *p, uint8_t type, uint8_t flags, uint16_t aux,
               const void *body, uint32_t body_len, bool spill);

/* ---- consumer side (the agent) ------------------------------------------------------- */

struct shmlog_cursor {
    struct shmlog_lane_ctl *ctl;
    uint8_t *data;
    uint64_t mask;
    uint64_t pos; /* next record to read; may run ahead of ctl->head until release */
};

void shmlog_cursor_init(struct shmlog_cursor *c, const struct shmlog_arena *a, uint32_t lane,
                        uint64_t pos);

/* Looks at the record at c->pos. Returns its length (>0, PADs included: callers skip them),
 * 0 when nothing is published there yet (also when c->pos is a whole lane ahead of ctl->head:
 * release before reading on), -EINPROGRESS when a record is being written, or
 * -EBADMSG when the header is impossible (a corrupted or hostile lane). *rec is set for >0. */
int shmlog_peek(const struct shmlog_cursor *c, const struct shmlog_rec **rec);
/* Same, for a record being written: its claimed length, to skip it once its producer died. */
int32_t shmlog_peek_inprogress_len(const struct shmlog_cursor *c);

/* Hands [ctl->head, upto) back to the producer: zeroes it (at most one lap, whatever head
 * says), then publishes head = upto. Call it only after the records up to upto are committed
 * in the consumer's store; calling it again with the same upto does nothing. */
void shmlog_release(struct shmlog_cursor *c, uint64_t upto);

/* Frees a closed lane whose records are all committed: claims it from the owner word seen as
 * `observed` (so a producer that reopened it meanwhile wins), zeroes data and counters, bumps
 * the generation and marks it free. Returns 0, or -EAGAIN when the owner word changed. */
int shmlog_lane_free(const struct shmlog_arena *a, uint32_t lane, uint64_t observed);
/* The start time of process pid (clock ticks since boot, from /proc), 0 if unknown: with the
 * pid it names one process across pid reuse. Producers record their own when they claim. */
uint64_t shmlog_pid_start(pid_t pid);
/* Whether process pid has the file (dev, ino) mapped, as the kernel says in /proc/PID/maps:
 * how the agent checks a pid that a producer wrote into a lane before believing it. */
bool shmlog_pid_maps_file(pid_t pid, dev_t dev, ino_t ino);
/* Whether the owner named by the owner word has died: its pid is gone, or now belongs to a
 * process that started at another time than the one recorded at claim. */
bool shmlog_owner_dead(const struct shmlog_lane_ctl *ctl, uint64_t owner);
/* Closes on behalf of a producer that died: owner word observed -> observed|CLOSED. */
bool shmlog_lane_close_dead(struct shmlog_lane_ctl *ctl, uint64_t observed);

/* Spill files: a sequence of [u32 len][u32 crc32c][len bytes: a ring record]. */
struct shmlog_spill_hdr {
    uint32_t len;
    uint32_t crc;
};
uint32_t shmlog_crc32c(uint32_t crc, const void *buf, size_t len);

/* Reads a lane's spill file from a given offset, record by record, checking each checksum. */
struct shmlog_spill_reader {
    int fd;
    uint64_t pos;   /* offset of the next record */
    uint64_t size;  /* file size when last looked */
    uint8_t *buf;
    size_t cap;
};
/* -ENOENT when the file does not exist (nothing was spilled). */
int shmlog_spill_open(struct shmlog_spill_reader *r, const char *path, uint64_t pos);
/* Reads the next record that ends at or before upto (UINT64_MAX: end of file). Returns its
 * length with *rec pointing into the reader's buffer (valid until the next call), 0 when no
 * whole record remains before upto (a torn tail from a producer that died mid-append is
 * "nothing yet"), or -EBADMSG for a record whose length or checksum is wrong. */
int shmlog_spill_next(struct shmlog_spill_reader *r, uint64_t upto, const struct shmlog_rec **rec);
void shmlog_spill_close(struct shmlog_spill_reader *r);

#endif
