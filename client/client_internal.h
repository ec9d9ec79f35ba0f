/* client_internal.h — the structures behind libsidetrack's opaque handles. */
#ifndef SIDETRACK_CLIENT_INTERNAL_H
#define SIDETRACK_CLIENT_INTERNAL_H

#include "shmlog.h"
#include "sidetrack.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#define ST_DEFAULT_RING_DIR "/dev/shm/sidetrack"

/* One thread's lane, plus which key and run definitions it has carried so far. */
struct st_lane {
    struct shmlog_producer prod;
    uint64_t *keydef;
    uint64_t *rundef;
    uint32_t keydef_bits;
    uint32_t rundef_bits;
    struct st_client *client;
    struct st_lane *next;
    pid_t pid;
    uint32_t fork_gen;
    uint64_t base[3]; /* the lane's counters when this thread took it (a reopened lane) */
};

/* Delivery counters, in st_stats order: dropped metrics, spilled records, lost records. */
enum { ST_CNT_DROPPED, ST_CNT_SPILLED, ST_CNT_LOST, ST_CNT_N };

struct st_key_slot {
    char *name;
    uint32_t id;
};

struct st_client {
    struct shmlog_arena arena;
    uint32_t clock;
    uint64_t id;
    pid_t pid;
    uint64_t pid_start;
    pthread_key_t tls_key;
    struct st_lane *lanes;
    struct st_key_slot *key_table; /* open addressing, name -> id */
    const char **key_names;        /* id -> name */
    uint32_t key_cap;
    _Atomic uint32_t key_count;
    uint32_t next_run_slot;
    _Atomic uint64_t no_lane;
    uint64_t closed[ST_CNT_N]; /* counted in lanes this process has closed since */
    char ring_dir[4096];
};

struct st_run {
    struct st_client *client;
    uint32_t slot;
    uint8_t id[16];
    char id_hex[33];
    char *experiment;
};

struct st_lane *st__lane_get_slow(struct st_client *c);
void st__lane_thread_exit(void *lane);
int64_t st__now_ms(void);
struct st_enc;
int st__log_record(struct st_run *run, uint8_t type, const struct st_enc *e);
int st__artifact_spool(struct st_client *c, const char *local_path, char *name, size_t name_len,
                       uint64_t *size);

#endif
