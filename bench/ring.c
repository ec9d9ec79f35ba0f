/* ring.c — scenarios "ring" and "ring-mt": the cost of st_log_metric() itself.
 *
 * Producer threads call the public st_log_metric() on a scratch ring (st_open with ring_dir
 * in a fresh /dev/shm directory, 64 MiB lanes); a consumer thread of the same process drains
 * every lane with the shmlog consumer API (peek, skip, release in batches) as the agent would,
 * minus the store. No agent runs: this measures the call, not the drain.
 *
 * Each producer: a warm-up of 1.5 lanes of records in two halves that the consumer catches up
 * with (every page of its lane faulted in, the lane wrapped once, the key and run definitions
 * written), then the throughput loop (ops calls, timed as a whole with CLOCK_MONOTONIC, no
 * per-call timing), then the latency sample: each call bracketed by lfence;rdtsc;lfence and
 * rdtscp;lfence, percentiles read off the TSC's steps (stats.h) minus the median cost of an
 * empty bracket, ticks turned into ns with a TSC rate measured against CLOCK_MONOTONIC_RAW;
 * and batches of 32 calls timed as one, as a cross-check of the subtraction.
 */
#include "bench.h"
#include "stats.h"

#include "shmlog.h"
#include "sidetrack.h"
#include "wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#define RING_LANES 8u
#define RING_LANE_SIZE (64ull << 20)
#define RING_DEFAULT_OPS 20000000ull
#define RING_QUICK_OPS 2000000ull
#define RING_MAX_SAMPLES 1000000ull
#define RING_BATCH 32u
#define RELEASE_BYTES (256u << 10)
#define CONSUMER_IDLE_US 100u
#define NKEYS 4
#define MAX_PRODUCERS 2
#define PRODUCER_NICE 5

#if defined(__x86_64__) || defined(__i386__)
static inline uint64_t tick_begin(void)
{
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
}
static inline uint64_t tick_end(void)
{
    unsigned aux;
    uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
}
#else
static inline uint64_t tick_begin(void) { return now_ns(); }
static inline uint64_t tick_end(void) { return now_ns(); }
#endif

struct producer {
    struct ring_bench *rb;
    int id;
    pthread_t thread;
    uint64_t logged; /* every call, warm-up and samples included */
    uint64_t t0, t1; /* the throughput loop, CLOCK_MONOTONIC */
    double overhead;   /* median ticks of an empty bracket */
    uint64_t *samples; /* per call, ticks, bracket included */
    uint64_t *batches; /* per batch of RING_BATCH calls, ticks, bracket included */
    size_t nsamples, nbatches;
    int err;
    bool nice_failed;
};

struct ring_bench {
    const char *name;
    int nprod;
    uint64_t ops_per_producer, warmup_half, samples;
    char dir[512];
    st_client *client;
    st_run *run;
    st_key keys[NKEYS];
    struct shmlog_arena arena; /* the consumer's own mapping */
    pthread_barrier_t warm, start, logged, exit;
    _Atomic uint64_t warm_logged; /* metric calls of every producer's warm-up so far */
    uint64_t dropped_warmup;
    st_stats stats;
    struct producer prod[MAX_PRODUCERS];
    /* consumer */
    pthread_t consumer;
    _Atomic bool producers_done;
    _Atomic uint64_t consumed_pub; /* consumed_metrics, published for the warm-up's wait */
    uint64_t consumed_metrics, idle_sleeps;
    int consumer_err;
};

/* ---- consumer ---------------------------------------------------------------------------- */

struct cons_lane {
    bool active;
    struct shmlog_cursor cur;
    uint64_t released;
};

static void *consumer_main(void *arg)
{
    struct ring_bench *rb = arg;
    uint32_t n = rb->arena.lane_count;
    struct cons_lane *cl = calloc(n, sizeof *cl);
    if (!cl) {
        rb->consumer_err = -ENOMEM;
        return NULL;
    }
    for (;;) {
        /* Read the flag before the pass: an empty pass after it means everything is in. */
        bool done = atomic_load_explicit(&rb->producers_done, memory_order_acquire);
        bool progress = false;
        for (uint32_t i = 0; i < n; i++) {
            struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&rb->arena, i);
            if (!cl[i].active) {
                if (atomic_load_explicit(&ctl->owner, memory_order_acquire) == 0)
                    continue;
                uint64_t head = atomic_load_explicit(&ctl->head, memory_order_acquire);
                shmlog_cursor_init(&cl[i].cur, &rb->arena, i, head);
                cl[i].released = head;
                cl[i].active = true;
            }
            struct shmlog_cursor *c = &cl[i].cur;
            const struct shmlog_rec *rec;
            int len;
            while ((len = shmlog_peek(c, &rec)) > 0) {
                if (rec->type == WIRE_METRIC)
                    rb->consumed_metrics++;
                c->pos += (uint64_t)len;
                progress = true;
                if (c->pos - cl[i].released >= RELEASE_BYTES) {
                    shmlog_release(c, c->pos);
                    cl[i].released = c->pos;
                }
            }
            atomic_store_explicit(&rb->consumed_pub, rb->consumed_metrics, memory_order_release);
            if (len < 0 && len != -EINPROGRESS) {
                rb->consumer_err = len;
                free(cl);
                return NULL;
            }
        }
        if (progress)
            continue;
        for (uint32_t i = 0; i < n; i++)
            if (cl[i].active && cl[i].cur.pos != cl[i].released) {
                shmlog_release(&cl[i].cur, cl[i].cur.pos);
                cl[i].released = cl[i].cur.pos;
            }
        if (done)
            break;
        rb->idle_sleeps++;
        sleep_us(CONSUMER_IDLE_US);
    }
    free(cl);
    return NULL;
}

/* ---- producers --------------------------------------------------------------------------- */

/* The cost of an empty bracket: the median of many, read the same way as the calls' times. */
static double bracket_overhead(void)
{
    enum { N = 100001 };
    uint64_t *v = malloc(N * sizeof *v);
    if (!v)
        return 0;
    for (size_t i = 0; i < N; i++) {
        uint64_t a = tick_begin();
        uint64_t b = tick_end();
        v[i] = b - a;
    }
    sort_u64(v, N);
    double m = percentile_quantised(v, N, 50, tsc_quantum_ticks());
    free(v);
    return m;
}

/* Waits until the consumer has taken (or the producers dropped) every warm-up record. */
static int wait_caught_up(struct ring_bench *rb)
{
    uint64_t want = atomic_load(&rb->warm_logged), deadline = now_ns() + 30000000000ull;
    for (;;) {
        st_stats s;
        st_stats_get(rb->client, &s);
        if (atomic_load_explicit(&rb->consumed_pub, memory_order_acquire) + s.dropped_metrics >=
            want)
            return 0;
        if (now_ns() > deadline)
            return -ETIMEDOUT;
        sleep_us(200);
    }
}

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    struct ring_bench *rb = p->rb;
    st_run *run = rb->run;
    /* Where producers outnumber the free cores (ring-mt on 2 CPUs) the consumer must not be
     * starved, or the lanes fill and the timed calls become cheaper drops: producers run at
     * nice +5 (Linux's nice is per thread), the consumer at the process's own. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), PRODUCER_NICE) < 0)
        p->nice_failed = true;
    const st_key *keys = rb->keys;
    int64_t step = 0;

    /* Warm-up: claims the lane, writes the definitions, faults in every page of the lane and
     * wraps it once, in two halves of 3/4 of a lane that the consumer catches up with. */
    for (int h = 0; h < 2; h++) {
        for (uint64_t i = 0; i < rb->warmup_half; i++, step++)
            p->err |= st_log_metric(run, keys[step & (NKEYS - 1)], (double)step, step);
        atomic_fetch_add(&rb->warm_logged, rb->warmup_half);
        pthread_barrier_wait(&rb->warm);
        if (wait_caught_up(rb) < 0)
            p->err |= 1;
    }
    p->overhead = bracket_overhead();
    if (p->id == 0) {
        st_stats s;
        st_stats_get(rb->client, &s);
        rb->dropped_warmup = s.dropped_metrics;
    }
    pthread_barrier_wait(&rb->start);

    p->t0 = now_ns();
    for (uint64_t i = 0; i < rb->ops_per_producer; i++, step++)
        p->err |= st_log_metric(run, keys[step & (NKEYS - 1)], (double)step, step);
    p->t1 = now_ns();

    for (size_t i = 0; i < p->nsamples; i++, step++) {
        uint64_t a = tick_begin();
        int r = st_log_metric(run, keys[step & (NKEYS - 1)], (double)step, step);
        uint64_t b = tick_end();
        p->err |= r;
        p->samples[i] = b - a;
    }
    for (size_t i = 0; i < p->nbatches; i++) {
        uint64_t a = tick_begin();
        for (unsigned j = 0; j < RING_BATCH; j++, step++)
            p->err |= st_log_metric(run, keys[step & (NKEYS - 1)], (double)step, step);
        uint64_t b = tick_end();
        p->batches[i] = b - a;
    }
    p->logged = 2 * rb->warmup_half + rb->ops_per_producer + p->nsamples +
                p->nbatches * RING_BATCH;

    /* Every lane of this process is still held here: the counters are whole. */
    pthread_barrier_wait(&rb->logged);
    if (p->id == 0)
        st_stats_get(rb->client, &rb->stats);
    pthread_barrier_wait(&rb->exit);
    return NULL;
}

/* ---- the scenario ------------------------------------------------------------------------ */

static void ring_cleanup(struct ring_bench *rb)
{
    for (int i = 0; i < rb->nprod; i++) {
        free(rb->prod[i].samples);
        free(rb->prod[i].batches);
    }
    if (rb->arena.hdr)
        shmlog_arena_close(&rb->arena);
    if (rb->run)
        st_run_end(rb->run, ST_RUN_FINISHED);
    st_close(rb->client);
    scratch_remove(rb->dir);
}

static int ring_scenario(const struct bench_opts *o, const char *name, int nprod)
{
    struct ring_bench *rb = calloc(1, sizeof *rb);
    if (!rb)
        return 1;
    int ret = 1;
    rb->name = name;
    rb->nprod = nprod;
    uint64_t ops = o->ops ? o->ops : o->quick ? RING_QUICK_OPS : RING_DEFAULT_OPS;
    rb->ops_per_producer = ops / (uint64_t)nprod;
    if (rb->ops_per_producer == 0)
        rb->ops_per_producer = 1;
    rb->warmup_half = RING_LANE_SIZE / sizeof(struct wire_metric) / 4 * 3;
    rb->samples = rb->ops_per_producer / 10;
    if (rb->samples > RING_MAX_SAMPLES)
        rb->samples = RING_MAX_SAMPLES;
    if (rb->samples < 1000)
        rb->samples = 1000;
    double ns_per_tick = tsc_ns_per_tick();
    struct load_probe load;
    load_begin(&load);

    int r = scratch_ring_dir(rb->dir, sizeof rb->dir, name);
    if (r < 0) {
        warnx_("%s: cannot make a scratch ring directory: %s", name, strerror(-r));
        free(rb);
        return 1;
    }
    st_options so = {.ring_dir = rb->dir, .lanes = RING_LANES, .lane_size = RING_LANE_SIZE};
    if ((r = st_open(&rb->client, &so)) < 0) {
        warnx_("%s: st_open(%s): %s", name, rb->dir, st_strerror(r));
        goto out;
    }
    static const char *const key_names[NKEYS] = {"train/loss", "train/accuracy", "lr",
                                                 "grad_norm"};
    for (int i = 0; i < NKEYS; i++)
        if ((r = st_key_intern(rb->client, key_names[i], &rb->keys[i])) < 0) {
            warnx_("%s: st_key_intern: %s", name, st_strerror(r));
            goto out;
        }
    if ((r = st_run_start(rb->client, "sidetrack-bench", name, &rb->run)) < 0) {
        warnx_("%s: st_run_start: %s", name, st_strerror(r));
        goto out;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/u%u.ring", rb->dir, (unsigned)getuid());
    if ((r = shmlog_arena_open(&rb->arena, path, 0, NULL)) < 0) {
        warnx_("%s: cannot map %s: %s", name, path, shmlog_strerror(r));
        goto out;
    }
    for (int i = 0; i < nprod; i++) {
        struct producer *p = &rb->prod[i];
        p->rb = rb;
        p->id = i;
        p->nsamples = rb->samples;
        p->nbatches = rb->samples / RING_BATCH;
        p->samples = malloc(p->nsamples * sizeof *p->samples);
        p->batches = malloc((p->nbatches ? p->nbatches : 1) * sizeof *p->batches);
        if (!p->samples || !p->batches) {
            warnx_("%s: out of memory", name);
            goto out;
        }
    }
    pthread_barrier_init(&rb->warm, NULL, (unsigned)nprod);
    pthread_barrier_init(&rb->start, NULL, (unsigned)nprod);
    pthread_barrier_init(&rb->logged, NULL, (unsigned)nprod);
    pthread_barrier_init(&rb->exit, NULL, (unsigned)nprod);
    if (pthread_create(&rb->consumer, NULL, consumer_main, rb) != 0) {
        warnx_("%s: cannot start the consumer thread", name);
        goto out_barriers;
    }
    int started = 0;
    for (; started < nprod; started++)
        if (pthread_create(&rb->prod[started].thread, NULL, producer_main, &rb->prod[started]))
            break;
    if (started < nprod) {
        /* cannot happen in practice; the started ones wait at a barrier forever */
        warnx_("%s: cannot start producer threads", name);
        exit(1);
    }
    for (int i = 0; i < nprod; i++)
        pthread_join(rb->prod[i].thread, NULL);
    atomic_store_explicit(&rb->producers_done, true, memory_order_release);
    pthread_join(rb->consumer, NULL);

    /* Results. */
    uint64_t t0 = UINT64_MAX, t1 = 0, logged = 0;
    double overhead = 0, quantum = tsc_quantum_ticks();
    size_t ns = 0, nb = 0;
    int err = 0;
    for (int i = 0; i < nprod; i++) {
        struct producer *p = &rb->prod[i];
        t0 = p->t0 < t0 ? p->t0 : t0;
        t1 = p->t1 > t1 ? p->t1 : t1;
        logged += p->logged;
        ns += p->nsamples;
        nb += p->nbatches;
        overhead += p->overhead;
        err |= p->err;
    }
    overhead /= nprod;
    uint64_t *all = malloc((ns + nb + 1) * sizeof *all);
    if (!all) {
        warnx_("%s: out of memory", name);
        goto out_barriers;
    }
    struct lat_summary call, batch;
    size_t k = 0;
    for (int i = 0; i < nprod; i++)
        for (size_t j = 0; j < rb->prod[i].nsamples; j++)
            all[k++] = rb->prod[i].samples[j];
    lat_summarise(all, k, quantum, overhead, ns_per_tick, &call);
    k = 0;
    for (int i = 0; i < nprod; i++)
        for (size_t j = 0; j < rb->prod[i].nbatches; j++)
            all[k++] = rb->prod[i].batches[j];
    lat_summarise(all, k, quantum, overhead, ns_per_tick / RING_BATCH, &batch);
    free(all);

    uint64_t total_ops = rb->ops_per_producer * (uint64_t)nprod;
    double secs = (double)(t1 - t0) / 1e9;
    uint64_t dropped = rb->stats.dropped_metrics;
    uint64_t missing = logged - dropped - rb->consumed_metrics;
    jl_begin(name);
    jl_u64("producers", (uint64_t)nprod);
    jl_u64("ops", total_ops);
    jl_f("seconds", secs, 4);
    jl_f("ops_per_sec", secs > 0 ? (double)total_ops / secs : 0, 0);
    jl_f("ns_per_op", (double)(t1 - t0) * nprod / (double)total_ops, 2);
    jl_f("ns_p50", call.p50, 1);
    jl_f("ns_p90", call.p90, 1);
    jl_f("ns_p99", call.p99, 1);
    jl_f("ns_p999", call.p999, 1);
    jl_f("ns_max", call.max, 0);
    jl_u64("latency_samples", call.n);
    jl_f("timer_overhead_ns", overhead * ns_per_tick, 1);
    jl_f("tsc_quantum_ns", quantum * ns_per_tick, 1);
    jl_f("ns_batch32_p50", batch.p50, 1);
    jl_f("ns_batch32_p99", batch.p99, 1);
    jl_u64("logged", logged);
    jl_u64("consumed", rb->consumed_metrics);
    jl_u64("dropped", dropped);
    jl_u64("dropped_in_warmup", rb->dropped_warmup);
    jl_u64("lane_mib", RING_LANE_SIZE >> 20);
    jl_s("clock", rb->arena.clock == SHMLOG_CLOCK_TSC ? "tsc" : "realtime");
    bool niced = true;
    for (int i = 0; i < nprod; i++)
        niced &= !rb->prod[i].nice_failed;
    jl_i64("producer_nice", niced ? PRODUCER_NICE : 0);
    jl_u64("consumer_idle_sleeps", rb->idle_sleeps);
    load_report(&load);
    jl_end();

    ret = 0;
    if (dropped > rb->dropped_warmup)
        warnx_("%s: the consumer fell behind and %llu timed calls were dropped: the figures "
               "include those cheaper calls",
               name, (unsigned long long)(dropped - rb->dropped_warmup));
    if (err) {
        warnx_("%s: st_log_metric returned an error (or the warm-up's wait timed out)", name);
        ret = 1;
    }
    if (rb->consumer_err) {
        warnx_("%s: the consumer found a bad record: %s", name, strerror(-rb->consumer_err));
        ret = 1;
    }
    if (missing) {
        warnx_("%s: %llu records neither consumed nor counted as dropped", name,
               (unsigned long long)missing);
        ret = 1;
    }
out_barriers:
    pthread_barrier_destroy(&rb->warm);
    pthread_barrier_destroy(&rb->start);
    pthread_barrier_destroy(&rb->logged);
    pthread_barrier_destroy(&rb->exit);
out:
    ring_cleanup(rb);
    free(rb);
    return ret;
}

int bench_ring(const struct bench_opts *o) { return ring_scenario(o, "ring", 1); }

int bench_ring_mt(const struct bench_opts *o) { return ring_scenario(o, "ring-mt", 2); }
