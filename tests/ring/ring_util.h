/* ring_util.h — helpers shared by the ring tests: scratch directories, process identity, the
 * test record layout, and a bounded reserve for producers in the test harness. */
#ifndef SIDETRACK_RING_UTIL_H
#define SIDETRACK_RING_UTIL_H

#include "shmlog.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ThreadSanitizer builds run the heavy tests with fewer records by default (it slows atomics
 * and memory accesses 5-15x); RING_TEST_RECORDS overrides the default either way. */
#if defined(__SANITIZE_THREAD__)
#define RING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RING_TSAN 1
#endif
#endif
#ifndef RING_TSAN
#define RING_TSAN 0
#endif

/* A scratch directory under /dev/shm (else /tmp) holding one arena path. */
struct scratch {
    char dir[256];
    char path[320];
};
/* Makes a fresh directory; path = dir/name. Returns 0 or -errno. */
int scratch_make(struct scratch *s, const char *name);
/* Removes every file in the directory and the directory itself. */
void scratch_remove(struct scratch *s);
/* Points s->path at dir/name (for tests that use several arenas in one directory). */
void scratch_name(struct scratch *s, const char *name);
/* Number of entries in the directory (without . and ..). */
int scratch_count(const struct scratch *s);

/* Field 22 of /proc/<pid>/stat (start time in clock ticks), or 0 when the process is gone. */
uint64_t proc_start_time(pid_t pid);
/* The agent's liveness test: the pid exists and still has the start time it claimed with. */
bool pid_alive(pid_t pid, uint64_t pid_start);

/* Unsigned integer from the environment, or fallback when unset or unparsable. */
uint64_t env_u64(const char *name, uint64_t fallback);
uint64_t mix64(uint64_t x);
double now_s(void);

/* The record the concurrency tests write: who, which sequence number, a value derived from
 * both, and 0..7 extra words (so sizes vary and the lanes get PAD records). */
struct trec {
    struct shmlog_rec h;
    uint32_t producer;
    uint32_t nwords;
    uint64_t seq;
    uint64_t value;
    uint64_t words[];
};
#define TREC_TYPE 0x42

uint64_t trec_value(uint32_t producer, uint64_t seq);
uint32_t trec_len(uint64_t seq);
void trec_fill(struct trec *r, uint32_t producer, uint64_t seq);
/* True when the record of length len is well formed (size, value, words agree). */
bool trec_valid(const struct trec *r, int32_t len);

/* Reserves len bytes, yielding (sched_yield) while the lane is full: the library never
 * spins, the test harness does, but only for limit_s seconds; then NULL. *retries counts the
 * failed reserves, *episodes the records that found the lane full at least once. */
void *reserve_retry(struct shmlog_producer *p, uint32_t len, double limit_s, uint64_t *retries,
                    uint64_t *episodes);

/* ---- the consumer side of the concurrency tests ---- */

#define RING_MAX_PRODUCERS 16

/* What a draining consumer has seen: per-producer next sequence numbers, a count, a sum and a
 * hash of all values, and the first error (a malformed record, a sequence gap). */
struct drain {
    uint32_t producers;
    char error[256];
    uint64_t next_seq[RING_MAX_PRODUCERS];
    uint64_t total, sum, hash, pads, inprogress, releases, max_pos;
};

/* Reads up to batch records at c, checking each, then releases what it read in one call.
 * Returns the number of test records read, or -1 with d->error set. *last gets the peek
 * result that stopped it (0 nothing yet, -EINPROGRESS, or >0 when the batch was full). */
int drain_lane(struct drain *d, struct shmlog_cursor *c, int batch, int *last);
/* Drains every lane of the arena round-robin (yielding when there is nothing) until want
 * records arrived; then checks that no lane holds anything more. False with d->error set on
 * a bad record, or when nothing arrived for stuck_s seconds. */
bool drain_all(struct drain *d, const struct shmlog_arena *a, uint64_t want, double stuck_s);
/* Checks that producers 0..producers-1 each delivered exactly records records (the counts,
 * the sum and the hash of their values); false with d->error set otherwise. */
bool drain_complete(struct drain *d, uint64_t records);

#endif
