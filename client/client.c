/* client.c — libsidetrack: the process side of the ring.
 *
 * The fast path is st_log_metric(): find this thread's lane (a thread-local compare), make
 * sure the lane has seen the key and run definitions (two bit tests), read the clock once,
 * reserve 40 bytes, fill them and publish with a release store. Everything else here is the
 * cold path that makes those checks true: interning keys, claiming lanes, defining runs.
 *
 * Locking: one process-wide mutex guards the cold paths of every client (interning, lane
 * claims, run slots); it is taken around fork() so that a child never inherits it held.
 */
#include "sidetrack.h"

#include "encode.h"
#include "shmlog.h"
#include "validate.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "client_internal.h"

static pthread_mutex_t st_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint32_t st_fork_gen = 1;
static _Atomic uint64_t st_next_client_id = 1;
static pthread_once_t st_atfork_once = PTHREAD_ONCE_INIT;

/* The last lane this thread used, and for which client: the whole fast-path lookup. One
 * struct, initial-exec: a plain %fs-relative load instead of a __tls_get_addr call per log
 * (glibc keeps static TLS room for the few bytes a dlopen()ed library like this one needs). */
static __thread struct {
    struct st_lane *lane;
    uint64_t client_id;
    uint32_t fork_gen;
    uint64_t failed_client; /* the client for which this thread found no free lane ... */
    uint32_t retry_in;      /* ... and how many calls to let pass before trying again */
} tls __attribute__((tls_model("initial-exec")));

/* With every lane taken, a thread retries a claim only every this many calls: a claim takes
 * the process's mutex and scans the lane table, which has no place in a training loop. */
#define ST_LANE_RETRY_CALLS 4096

static void lane_close(st_client *c, struct st_lane *l);

static void atfork_prepare(void) { pthread_mutex_lock(&st_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&st_mu); }
static void atfork_child(void)
{
    pthread_mutex_unlock(&st_mu);
    atomic_fetch_add(&st_fork_gen, 1);
}
static void atfork_register(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

int st_open(st_client **out, const st_options *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    pthread_once(&st_atfork_once, atfork_register);
    st_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    snprintf(c->ring_dir, sizeof c->ring_dir, "%s",
             opts && opts->ring_dir ? opts->ring_dir : env_or("SIDETRACK_RING_DIR", ST_DEFAULT_RING_DIR));
    int r = shmlog_mkdir(c->ring_dir, 01777);
    if (r < 0) {
        free(c);
        return r;
    }
    char path[sizeof c->ring_dir + 32];
    snprintf(path, sizeof path, "%s/u%u.ring", c->ring_dir, (unsigned)getuid());
    struct shmlog_geometry geo = {0};
    geo.lane_count = opts && opts->lanes ? opts->lanes : (uint32_t)atoi(env_or("SIDETRACK_LANES", "0"));
    geo.lane_size = opts && opts->lane_size ? opts->lane_size
                                            : (uint64_t)atoll(env_or("SIDETRACK_LANE_MB", "0")) << 20;
    geo.spill_quota = (uint64_t)atoll(env_or("SIDETRACK_SPILL_QUOTA_MB", "0")) << 20;
    const char *clk = getenv("SIDETRACK_CLOCK");
    if (clk && !strcmp(clk, "realtime"))
        geo.clock = SHMLOG_CLOCK_REALTIME;
    r = shmlog_arena_open(&c->arena, path, SHMLOG_CREATE, &geo);
    struct stat st;
    if (r == -EACCES && stat(path, &st) == 0 && st.st_uid != getuid())
        r = ST_ERINGOWNER; /* a file in our name that another user made */
    if (r < 0) {
        free(c);
        return r;
    }
    if (c->arena.file_uid != getuid()) {
        /* Someone else created the file under our name: our records would be theirs. */
        shmlog_arena_close(&c->arena);
        free(c);
        return ST_ERINGOWNER;
    }
    c->clock = c->arena.clock;
#if !defined(__x86_64__) && !defined(__i386__)
    if (c->clock == SHMLOG_CLOCK_TSC) {
        shmlog_arena_close(&c->arena);
        free(c);
        return -EPROTONOSUPPORT;
    }
#endif
    c->id = atomic_fetch_add(&st_next_client_id, 1);
    c->pid = getpid();
    c->pid_start = shmlog_pid_start(getpid());
    if (pthread_key_create(&c->tls_key, st__lane_thread_exit) != 0) {
        shmlog_arena_close(&c->arena);
        free(c);
        return -EAGAIN;
    }
    *out = c;
    return 0;
}

void st_close(st_client *c)
{
    if (!c)
        return;
    pthread_key_delete(c->tls_key);
    pthread_mutex_lock(&st_mu);
    struct st_lane *l = c->lanes;
    while (l) {
        struct st_lane *next = l->next;
        lane_close(c, l);
        free(l->keydef);
        free(l->rundef);
        free(l);
        l = next;
    }
    c->lanes = NULL;
    pthread_mutex_unlock(&st_mu);
    if (tls.client_id == c->id)
        tls.lane = NULL, tls.client_id = 0;
    for (uint32_t i = 0; i < c->key_cap; i++)
        free(c->key_table[i].name);
    free(c->key_table);
    free(c->key_names);
    shmlog_arena_close(&c->arena);
    free(c);
}

/* ---- lanes ----------------------------------------------------------------------------- */

static void lane_counters(const struct st_lane *l, uint64_t v[ST_CNT_N])
{
    const struct shmlog_lane_ctl *ctl = l->prod.ctl;
    v[ST_CNT_DROPPED] = atomic_load_explicit(&ctl->dropped_metrics, memory_order_relaxed);
    v[ST_CNT_SPILLED] = atomic_load_explicit(&ctl->spilled_records, memory_order_relaxed);
    v[ST_CNT_LOST] = atomic_load_explicit(&ctl->lost_records, memory_order_relaxed);
}

/* Closes a lane of this process, keeping what it counted (under st_mu). */
static void lane_close(st_client *c, struct st_lane *l)
{
    if (l->pid != getpid() || !l->prod.ctl)
        return; /* a forked child must not close its parent's lanes */
    uint64_t v[ST_CNT_N];
    lane_counters(l, v);
    for (int i = 0; i < ST_CNT_N; i++)
        c->closed[i] += v[i] - l->base[i];
    shmlog_producer_close(&l->prod);
}

static void lane_unlink(st_client *c, struct st_lane *l)
{
    for (struct st_lane **pp = &c->lanes; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            return;
        }
}

void st__lane_thread_exit(void *arg)
{
    struct st_lane *l = arg;
    pthread_mutex_lock(&st_mu);
    lane_close(l->client, l);
    lane_unlink(l->client, l);
    pthread_mutex_unlock(&st_mu);
    free(l->keydef);
    free(l->rundef);
    free(l);
    tls.lane = NULL;
    tls.client_id = 0;
}

struct st_lane *st__lane_get_slow(st_client *c)
{
    uint32_t gen = atomic_load_explicit(&st_fork_gen, memory_order_relaxed);
    struct st_lane *l = pthread_getspecific(c->tls_key);
    if (l && l->fork_gen != gen)
        l = NULL; /* inherited across fork(): the parent's lane, not ours */
    if (!l && tls.failed_client == c->id && tls.retry_in > 0) {
        tls.retry_in--;
        atomic_fetch_add_explicit(&c->no_lane, 1, memory_order_relaxed);
        return NULL;
    }
    if (!l) {
        pthread_mutex_lock(&st_mu);
        pid_t pid = getpid();
        if (c->pid != pid) {
            c->pid = pid;
            c->pid_start = shmlog_pid_start(getpid());
        }
        l = calloc(1, sizeof *l);
        if (l && shmlog_producer_claim(&l->prod, &c->arena, c->pid_start) < 0) {
            free(l);
            l = NULL;
        }
        if (l) {
            lane_counters(l, l->base);
            l->client = c;
            l->pid = pid;
            l->fork_gen = gen;
            l->next = c->lanes;
            c->lanes = l;
        } else {
            atomic_fetch_add_explicit(&c->no_lane, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&st_mu);
        if (!l) {
            tls.failed_client = c->id;
            tls.retry_in = ST_LANE_RETRY_CALLS;
            return NULL;
        }
        tls.failed_client = 0;
        pthread_setspecific(c->tls_key, l);
    }
    tls.lane = l;
    tls.client_id = c->id;
    tls.fork_gen = gen;
    return l;
}

static inline struct st_lane *lane_get(st_client *c)
{
    if (__builtin_expect(tls.client_id == c->id &&
                             tls.fork_gen == atomic_load_explicit(&st_fork_gen,
                                                                  memory_order_relaxed),
                         1))
        return tls.lane;
    return st__lane_get_slow(c);
}

static int bits_set(uint64_t **bits, uint32_t *nbits, uint32_t i)
{
    if (i >= *nbits) {
        uint32_t n = *nbits ? *nbits : 64;
        while (n <= i)
            n *= 2;
        uint64_t *nb = realloc(*bits, n / 8);
        if (!nb)
            return -ENOMEM;
        memset((uint8_t *)nb + *nbits / 8, 0, (n - *nbits) / 8);
        *bits = nb;
        *nbits = n;
    }
    (*bits)[i >> 6] |= 1ull << (i & 63);
    return 0;
}

static inline bool bits_test(const uint64_t *bits, uint32_t nbits, uint32_t i)
{
    return i < nbits && (bits[i >> 6] >> (i & 63)) & 1;
}

/* Puts a variable record into this thread's lane, spilling when it is full. */
static int lane_put(st_client *c, struct st_lane *l, uint8_t type, const struct st_enc *e)
{
    (void)c;
    int r = shmlog_put(&l->prod, type, 0, 0, e->buf, (uint32_t)e->len, true);
    return r < 0 ? r : 0;
}

static int define_key(st_client *c, struct st_lane *l, st_key key)
{
    pthread_mutex_lock(&st_mu);
    const char *name = key < atomic_load(&c->key_count) ? c->key_names[key] : NULL;
    pthread_mutex_unlock(&st_mu);
    if (!name)
        return -EINVAL;
    struct st_enc e;
    st__enc_keydef(&e, key, name);
    int r = lane_put(c, l, WIRE_KEYDEF, &e);
    if (r == 0)
        r = bits_set(&l->keydef, &l->keydef_bits, key);
    return r;
}

static int define_run(st_client *c, struct st_lane *l, const st_run *run)
{
    struct st_enc e;
    st__enc_rundef(&e, run->slot, run->id);
    int r = lane_put(c, l, WIRE_RUNDEF, &e);
    if (r == 0)
        r = bits_set(&l->rundef, &l->rundef_bits, run->slot);
    return r;
}

static inline int lane_prepare(st_client *c, struct st_lane *l, const st_run *run, st_key key)
{
    if (__builtin_expect(!bits_test(l->rundef, l->rundef_bits, run->slot), 0)) {
        int r = define_run(c, l, run);
        if (r < 0)
            return r;
    }
    if (__builtin_expect(!bits_test(l->keydef, l->keydef_bits, key), 0))
        return define_key(c, l, key);
    return 0;
}

/* ---- keys ------------------------------------------------------------------------------ */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int key_table_grow(st_client *c)
{
    uint32_t ncap = c->key_cap ? c->key_cap * 2 : 256;
    struct st_key_slot *nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -ENOMEM;
    for (uint32_t i = 0; i < c->key_cap; i++) {
        if (!c->key_table[i].name)
            continue;
        uint64_t h = hash_str(c->key_table[i].name);
        uint32_t j = (uint32_t)h & (ncap - 1);
        while (nt[j].name)
            j = (j + 1) & (ncap - 1);
        nt[j] = c->key_table[i];
    }
    const char **nn = realloc(c->key_names, ncap * sizeof *nn);
    if (!nn) {
        free(nt);
        return -ENOMEM;
    }
    free(c->key_table);
    c->key_table = nt;
    c->key_names = nn;
    c->key_cap = ncap;
    return 0;
}

int st_key_intern(st_client *c, const char *name, st_key *key)
{
    if (!c || !key)
        return -EINVAL;
    int r = st__check_key(name);
    if (r < 0)
        return r;
    pthread_mutex_lock(&st_mu);
    if ((atomic_load_explicit(&c->key_count, memory_order_relaxed) + 1) * 2 > c->key_cap &&
        (r = key_table_grow(c)) < 0)
        goto out;
    uint64_t h = hash_str(name);
    uint32_t j = (uint32_t)h & (c->key_cap - 1);
    while (c->key_table[j].name) {
        if (!strcmp(c->key_table[j].name, name)) {
            *key = c->key_table[j].id;
            goto out;
        }
        j = (j + 1) & (c->key_cap - 1);
    }
    if (atomic_load_explicit(&c->key_count, memory_order_relaxed) >= WIRE_MAX_KEYS) {
        r = -ENOSPC;
        goto out;
    }
    char *dup = strdup(name);
    if (!dup) {
        r = -ENOMEM;
        goto out;
    }
    c->key_table[j].name = dup;
    uint32_t id = atomic_load_explicit(&c->key_count, memory_order_relaxed);
    c->key_table[j].id = id;
    c->key_names[id] = dup;
    *key = id;
    atomic_store_explicit(&c->key_count, id + 1, memory_order_release);
out:
    pthread_mutex_unlock(&st_mu);
    return r;
}

/* ---- clock ----------------------------------------------------------------------------- */

static inline int64_t clock_now(const st_client *c)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_expect(c->clock == SHMLOG_CLOCK_TSC, 1))
        return (int64_t)__rdtsc();
#endif
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t st__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- runs ------------------------------------------------------------------------------ */

static const char hexdig[] = "0123456789abcdef";

/* A run handle for id in client c, with the next run slot of c: what starting a run and
 * attaching to one share. */
static int run_alloc(st_client *c, const uint8_t id[16], const char *experiment, st_run **out)
{
    st_run *run = calloc(1, sizeof *run);
    if (!run || !(run->experiment = strdup(experiment))) {
        free(run);
        return -ENOMEM;
    }
    memcpy(run->id, id, 16);
    for (int i = 0; i < 16; i++) {
        run->id_hex[2 * i] = hexdig[id[i] >> 4];
        run->id_hex[2 * i + 1] = hexdig[id[i] & 15];
    }
    run->client = c;
    pthread_mutex_lock(&st_mu);
    bool full = c->next_run_slot >= WIRE_MAX_RUNS;
    if (!full)
        run->slot = c->next_run_slot++;
    pthread_mutex_unlock(&st_mu);
    if (full) {
        st_run_release(run);
        return -ENOSPC;
    }
    *out = run;
    return 0;
}

static int run_new(st_client *c, const char *experiment, const char *run_name,
                   const st_run *parent, st_run **out)
{
    if (!c || !out)
        return -EINVAL;
    *out = NULL;
    if (!experiment)
        experiment = "Default";
    int r = st__check_name(experiment, ST_MAX_EXPERIMENT_NAME_LEN);
    if (r < 0)
        return r;
    if (run_name && (r = st__check_name(run_name, ST_MAX_RUN_NAME_LEN)) < 0)
        return r;
    uint8_t id[16];
    if (getrandom(id, sizeof id, 0) != sizeof id)
        return -EIO;
    st_run *run;
    if ((r = run_alloc(c, id, experiment, &run)) < 0)
        return r;

    struct st_lane *l = lane_get(c);
    if (l) {
        struct st_enc e;
        r = st__enc_run_start(&e, run->id, experiment, run_name, st__now_ms(),
                              parent ? parent->id : NULL);
        if (r == 0)
            lane_put(c, l, WIRE_RUN_START, &e); /* a loss is counted in the lane */
    }
    *out = run;
    return 0;
}

int st_run_start(st_client *c, const char *experiment, const char *run_name, st_run **run)
{
    return run_new(c, experiment, run_name, NULL, run);
}

int st_run_start_child(st_run *parent, const char *run_name, st_run **run)
{
    if (!parent)
        return -EINVAL;
    return run_new(parent->client, parent->experiment, run_name, parent, run);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int st_run_attach(st_client *c, const char *run_id, st_run **out)
{
    if (!c || !out || !run_id)
        return -EINVAL;
    *out = NULL;
    uint8_t id[16];
    for (int i = 0; i < 16; i++) {
        int hi = hexval(run_id[2 * i]), lo = hi < 0 ? -1 : hexval(run_id[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    if (run_id[32])
        return -EINVAL;
    /* No start record: the RUNDEF goes out with the first record, as for any run new to a
     * lane. The experiment is only a start record's business. */
    return run_alloc(c, id, "Default", out);
}
void st_run_release(st_run *run)
{
    if (!run)
        return;
    free(run->experiment);
    free(run);
}

const char *st_run_id(const st_run *run) { return run ? run->id_hex : NULL; }

int st__log_record(st_run *run, uint8_t type, const struct st_enc *e)
{
    st_client *c = run->client;
    struct st_lane *l = lane_get(c);
    if (!l)
        return 0; /* counted in no_lane */
    if (!bits_test(l->rundef, l->rundef_bits, run->slot) && define_run(c, l, run) < 0)
        return 0; /* counted as lost in the lane */
    lane_put(c, l, type, e);
    return 0;
}

static int log_kv(st_run *run, uint8_t type, const char *key, const char *value, size_t max)
{
    if (!run)
        return -EINVAL;
    int r = st__check_key(key);
    if (r < 0)
        return r;
    if ((r = st__check_value(value, max)) < 0)
        return r;
    struct st_enc e;
    if (st__enc_kv(&e, run->slot, key, value) < 0)
        return -ENOMEM;
    return st__log_record(run, type, &e);
}

int st_log_param(st_run *run, const char *key, const char *value)
{
    return log_kv(run, WIRE_PARAM, key, value, ST_MAX_PARAM_VALUE_LEN);
}

int st_set_tag(st_run *run, const char *key, const char *value)
{
    return log_kv(run, WIRE_TAG, key, value, ST_MAX_TAG_VALUE_LEN);
}

static inline void fill_metric(struct wire_metric *m, const st_run *run, st_key key,
                               double value, int64_t step, int64_t ts, uint8_t flags)
{
    m->h.type = WIRE_METRIC;
    m->h.flags = flags;
    m->h.aux = 0;
    m->key = key;
    m->run = run->slot;
    m->step = step;
    m->ts = ts;
    m->value = value;
}

/* Everything the fast path below leaves out: a thread's first call, a key or run new to the
 * lane, a wrap, a full lane, a pending spill mark, a clock that needs a system call. */
static __attribute__((noinline, cold)) int log_metric_slow(st_run *run, st_key key, double value,
                                                           int64_t step, int64_t ts, uint8_t flags)
{
    st_client *c = run->client;
    struct st_lane *l = lane_get(c);
    if (!l)
        return 0;
    if (lane_prepare(c, l, run, key) < 0) {
        if (key >= atomic_load_explicit(&c->key_count, memory_order_acquire))
            return -EINVAL;
        shmlog_count_drop(&l->prod);
        return 0;
    }
    struct wire_metric *m = shmlog_reserve(&l->prod, sizeof *m);
    if (!m) {
        shmlog_count_drop(&l->prod);
        return 0;
    }
    fill_metric(m, run, key, value, step, flags ? ts : clock_now(c), flags);
    shmlog_publish(&l->prod, m, sizeof *m);
    return 0;
}

/* The fast path makes no call at all (the slow path is a tail call), so the compiler needs no
 * stack frame and saves no registers: a handful of loads and compares, rdtsc, six stores. */
static inline int log_metric(st_run *run, st_key key, double value, int64_t step, int64_t ts,
                             uint8_t flags)
{
    st_client *c = run->client;
    struct st_lane *l = tls.lane;
    if (__builtin_expect(tls.client_id != c->id ||
                             tls.fork_gen != atomic_load_explicit(&st_fork_gen,
                                                                  memory_order_relaxed) ||
                             !bits_test(l->rundef, l->rundef_bits, run->slot) ||
                             !bits_test(l->keydef, l->keydef_bits, key),
                         0))
        return log_metric_slow(run, key, value, step, ts, flags);
    struct shmlog_producer *p = &l->prod;
    uint64_t off = p->tail & p->mask;
    const uint32_t len = sizeof(struct wire_metric);
    if (__builtin_expect(p->spill_pending | (p->tail + len > p->limit) | (off + len > p->mask + 1),
                         0))
        return log_metric_slow(run, key, value, step, ts, flags);
#if defined(__x86_64__) || defined(__i386__)
    if (!flags) {
        if (__builtin_expect(c->clock != SHMLOG_CLOCK_TSC, 0))
            return log_metric_slow(run, key, value, step, ts, flags);
        ts = (int64_t)__rdtsc();
    }
#else
    if (!flags)
        return log_metric_slow(run, key, value, step, ts, flags);
#endif
    struct wire_metric *m = (struct wire_metric *)(p->data + off);
    atomic_store_explicit(&m->h.len, -(int32_t)len, memory_order_relaxed);
    fill_metric(m, run, key, value, step, ts, flags);
    shmlog_publish(p, m, len);
    return 0;
}

int st_log_metric(st_run *run, st_key key, double value, int64_t step)
{
    return log_metric(run, key, value, step, 0, 0);
}

int st_log_metric_at(st_run *run, st_key key, double value, int64_t step, int64_t ts_ms)
{
    return log_metric(run, key, value, step, ts_ms, WIRE_F_TS_MS);
}

int st_log_metrics(st_run *run, size_t n, const st_key *keys, const double *values,
                   int64_t step)
{
    if (!run || n > WIRE_METRICS_MAX || (n && (!keys || !values)))
        return -EINVAL;
    if (n == 0)
        return 0;
    st_client *c = run->client;
    struct st_lane *l = lane_get(c);
    if (!l)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (keys[i] >= atomic_load_explicit(&c->key_count, memory_order_acquire))
            return -EINVAL;
        if (lane_prepare(c, l, run, keys[i]) < 0) {
            shmlog_count_drop(&l->prod);
            return 0;
        }
    }
    uint32_t len = (uint32_t)(sizeof(struct wire_metrics) + n * sizeof(struct wire_metric_entry));
    struct wire_metrics *m = shmlog_reserve(&l->prod, len);
    if (!m) {
        shmlog_count_drop(&l->prod);
        return 0;
    }
    m->h.type = WIRE_METRICS;
    m->h.flags = 0;
    m->h.aux = 0;
    m->run = run->slot;
    m->count = (uint32_t)n;
    m->step = step;
    m->ts = clock_now(c);
    struct wire_metric_entry *e = (struct wire_metric_entry *)(m + 1);
    for (size_t i = 0; i < n; i++) {
        e[i].key = keys[i];
        e[i].reserved = 0;
        e[i].value = values[i];
    }
    shmlog_publish(&l->prod, m, len);
    return 0;
}

int st_run_end(st_run *run, st_run_status status)
{
    if (!run)
        return -EINVAL;
    if (status != ST_RUN_FINISHED && status != ST_RUN_FAILED && status != ST_RUN_KILLED)
        return -EINVAL;
    st_client *c = run->client;
    struct st_lane *l = lane_get(c);
    if (l && (bits_test(l->rundef, l->rundef_bits, run->slot) || define_run(c, l, run) == 0)) {
        struct st_enc e;
        st__enc_run_end(&e, run->slot, (unsigned)status, st__now_ms());
        lane_put(c, l, WIRE_RUN_END, &e);
    }
    st_run_release(run);
    return 0;
}

int st_stats_get(st_client *c, st_stats *s)
{
    if (!c || !s)
        return -EINVAL;
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&st_mu);
    pid_t pid = getpid();
    uint64_t sum[ST_CNT_N];
    memcpy(sum, c->closed, sizeof sum);
    for (struct st_lane *l = c->lanes; l; l = l->next) {
        if (l->pid != pid || !l->prod.ctl)
            continue;
        s->lanes++;
        uint64_t v[ST_CNT_N];
        lane_counters(l, v);
        for (int i = 0; i < ST_CNT_N; i++)
            sum[i] += v[i] - l->base[i];
    }
    s->dropped_metrics = sum[ST_CNT_DROPPED];
    s->spilled_records = sum[ST_CNT_SPILLED];
    s->lost_records = sum[ST_CNT_LOST];
    s->no_lane = atomic_load_explicit(&c->no_lane, memory_order_relaxed);
    pthread_mutex_unlock(&st_mu);
    return 0;
}

const char *st_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case ST_EKEY:
        return "invalid key: 1-250 characters of letters, digits, '_', '-', '.', ' ' and '/', "
               "not starting with '/' and without '..', '//' or a trailing '/'";
    case ST_EVALUE:
        return "invalid value: params take at most 6000 characters, tags 5000, in UTF-8";
    case ST_ENAME:
        return "invalid name: experiment names take 1-500 characters, run names 1-250, in UTF-8; "
               "registered model names 1-256 bytes";
    case ST_EPATH:
        return "invalid artifact path: a relative, normalised path without '..'";
    case ST_EENDED:
        return "the run has already ended";
    case ST_EALIAS:
        return "invalid model alias: 1-255 letters, digits, '_' or '-', not 'latest' nor "
               "'v<digits>' (reserved), at most 16 aliases";
    case ST_ERINGOWNER:
        return "the ring file in your name belongs to another user (it would see and own your "
               "records): have it removed from the ring directory, or use another "
               "SIDETRACK_RING_DIR";
    case -EPROTO:
    case -EPROTONOSUPPORT:
    case -EBADMSG:
    case -EBUSY:
        return shmlog_strerror(err);
    default:
        return err < 0 ? strerror(-err) : "unknown error";
    }
}
