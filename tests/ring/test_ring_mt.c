/* test_ring_mt.c — producer threads and one consumer thread on one arena.
 *
 * Each producer thread claims its own lane and writes RING_TEST_RECORDS records (producer id,
 * sequence number, a value derived from both, 0..7 extra words so sizes vary). The consumer
 * drains all lanes round-robin, checks every record's content and that each producer's
 * sequence numbers arrive strictly +1, and releases in batches. At the end every record has
 * arrived exactly once (per-producer counts, a sum and a hash over all of them). The lanes are
 * 64 KiB, so they wrap thousands of times and fill up often; a producer that finds its lane
 * full yields and retries (the test harness spins, never the library), for 60 s at most. */
#include "ring_util.h"
#include "shmlog.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_PRODUCERS RING_MAX_PRODUCERS
#define LANE_SIZE (64u << 10)
#define STUCK_S 60.0

struct producer_arg {
    const struct shmlog_arena *a;
    uint32_t id;
    uint64_t records;
    uint64_t pid_start;
    /* results */
    int error; /* 0, a claim error, or -ETIMEDOUT when the lane stayed full */
    uint32_t lane;
    uint64_t retries;
    uint64_t episodes;
};

static void *producer_main(void *arg)
{
    struct producer_arg *pa = arg;
    struct shmlog_producer p;
    int r = shmlog_producer_claim(&p, pa->a, pa->pid_start);
    if (r < 0) {
        pa->error = r;
        return NULL;
    }
    pa->lane = p.lane;
    for (uint64_t s = 0; s < pa->records; s++) {
        uint32_t len = trec_len(s);
        struct trec *t = reserve_retry(&p, len, STUCK_S, &pa->retries, &pa->episodes);
        if (!t) {
            pa->error = -ETIMEDOUT;
            break;
        }
        trec_fill(t, pa->id, s);
        shmlog_publish(&p, t, len);
    }
    shmlog_producer_close(&p);
    return NULL;
}

struct consumer_arg {
    const struct shmlog_arena *a;
    uint64_t want;
    bool ok;
    struct drain d;
};

static void *consumer_main(void *arg)
{
    struct consumer_arg *ca = arg;
    ca->ok = drain_all(&ca->d, ca->a, ca->want, STUCK_S);
    return NULL;
}

struct fx {
    struct scratch s;
    struct shmlog_arena a;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || scratch_make(&f->s, "ring") < 0) {
        free(f);
        return -1;
    }
    f->a.fd = -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    shmlog_arena_close(&f->a);
    scratch_remove(&f->s);
    free(f);
    return 0;
}

static void run_threads(struct fx *f, uint32_t producers, uint32_t lanes, uint64_t records)
{
    struct shmlog_geometry g = {.lane_count = lanes, .lane_size = LANE_SIZE,
                                .clock = SHMLOG_CLOCK_REALTIME};
    assert_int_equal(shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g), 0);
    uint64_t pid_start = proc_start_time(getpid());

    struct producer_arg pa[MAX_PRODUCERS];
    struct consumer_arg *ca = calloc(1, sizeof *ca);
    assert_non_null(ca);
    ca->a = &f->a;
    ca->want = (uint64_t)producers * records;
    ca->d.producers = producers;
    pthread_t ct, pt[MAX_PRODUCERS];
    double t0 = now_s();
    assert_int_equal(pthread_create(&ct, NULL, consumer_main, ca), 0);
    for (uint32_t i = 0; i < producers; i++) {
        pa[i] = (struct producer_arg){.a = &f->a, .id = i, .records = records,
                                      .pid_start = pid_start};
        assert_int_equal(pthread_create(&pt[i], NULL, producer_main, &pa[i]), 0);
    }
    for (uint32_t i = 0; i < producers; i++)
        pthread_join(pt[i], NULL);
    pthread_join(ct, NULL);
    double dt = now_s() - t0;

    uint64_t retries = 0, episodes = 0;
    for (uint32_t i = 0; i < producers; i++) {
        if (pa[i].error)
            fail_msg("producer %u: %s", i, strerror(-pa[i].error));
        retries += pa[i].retries;
        episodes += pa[i].episodes;
        for (uint32_t j = 0; j < i; j++)
            assert_int_not_equal(pa[i].lane, pa[j].lane);
    }
    struct drain *d = &ca->d;
    if (!ca->ok || !drain_complete(d, records))
        fail_msg("consumer: %s", d->error);
    print_message("%u producers x %llu records in %.2f s (%.1f M/s): %llu laps on the busiest "
                  "lane, %llu PADs, %llu releases, lane full %llu times (%llu retries), "
                  "%llu in-progress peeks\n",
                  producers, (unsigned long long)records, dt, (double)d->total / dt / 1e6,
                  (unsigned long long)(d->max_pos / LANE_SIZE), (unsigned long long)d->pads,
                  (unsigned long long)d->releases, (unsigned long long)episodes,
                  (unsigned long long)retries, (unsigned long long)d->inprogress);
    assert_true(d->pads > 0);
    assert_true(d->max_pos >= records * sizeof(struct trec)); /* wrapped records*32/64Ki times */

    /* every producer closed its lane; the agent frees them all */
    for (uint32_t i = 0; i < producers; i++) {
        struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&f->a, pa[i].lane);
        uint64_t w = atomic_load(&ctl->owner);
        assert_true(w & SHMLOG_OWNER_CLOSED);
        assert_int_equal(shmlog_lane_free(&f->a, pa[i].lane, w), 0);
    }
    free(ca);
}

static uint64_t records_default(void)
{
    return env_u64("RING_TEST_RECORDS", RING_TSAN ? 200000 : 2000000);
}

static void test_threads_each_record_exactly_once_in_order(void **state)
{
    uint32_t producers = (uint32_t)env_u64("RING_TEST_PRODUCERS", 4);
    if (producers > MAX_PRODUCERS)
        producers = MAX_PRODUCERS;
    run_threads(*state, producers, producers, records_default());
}

/* More lanes than producers: the consumer also polls lanes nobody claimed. */
static void test_threads_with_idle_lanes_each_record_exactly_once(void **state)
{
    run_threads(*state, 2, 8, records_default() / 4);
}

/* ---- lanes claimed, closed, reopened and freed while an agent thread scans them ---------- */

#define CHURN_PRODUCERS 3
#define CHURN_LANES 4
#define CHURN_BATCH 10

struct churn {
    const struct shmlog_arena *a;
    uint64_t pid_start;
    uint64_t rounds;
    _Atomic uint32_t producers_done;
    /* per producer */
    int error[CHURN_PRODUCERS];
    uint64_t reopened[CHURN_PRODUCERS], busy[CHURN_PRODUCERS];
    /* the agent's */
    char agent_error[256];
    uint8_t *seen[CHURN_PRODUCERS]; /* how often each sequence number arrived */
    uint64_t frees, free_races, claiming_seen;
};

struct churn_arg {
    struct churn *ch;
    uint32_t id;
};

static void *churn_producer(void *arg)
{
    struct churn_arg *ca = arg;
    struct churn *ch = ca->ch;
    uint64_t seq = 0, retries = 0, episodes = 0;
    for (uint64_t round = 0; round < ch->rounds; round++) {
        struct shmlog_producer p;
        int r;
        double deadline = now_s() + STUCK_S;
        while ((r = shmlog_producer_claim(&p, ch->a, ch->pid_start)) == -EBUSY) {
            ch->busy[ca->id]++;
            sched_yield();
            if (now_s() > deadline)
                break;
        }
        if (r < 0) {
            ch->error[ca->id] = r;
            break;
        }
        if (atomic_load(&p.ctl->owner) >> 40) /* a new epoch: our own closed lane, reopened */
            ch->reopened[ca->id]++;
        for (int k = 0; k < CHURN_BATCH; k++, seq++) {
            uint32_t len = trec_len(seq);
            struct trec *t = reserve_retry(&p, len, STUCK_S, &retries, &episodes);
            if (!t) {
                ch->error[ca->id] = -ETIMEDOUT;
                shmlog_producer_close(&p);
                goto out;
            }
            trec_fill(t, ca->id, seq);
            shmlog_publish(&p, t, len);
        }
        shmlog_producer_close(&p);
    }
out:
    atomic_fetch_add(&ch->producers_done, 1);
    return NULL;
}

/* The agent: drains every lane, checks that an owned lane's start time is ours or 0 (a claim
 * being completed), and frees lanes that are closed and fully drained. */
static void *churn_agent(void *arg)
{
    struct churn *ch = arg;
    const struct shmlog_arena *a = ch->a;
    struct shmlog_cursor cur[CHURN_LANES];
    uint32_t gen[CHURN_LANES];
    for (uint32_t i = 0; i < CHURN_LANES; i++) {
        shmlog_cursor_init(&cur[i], a, i, 0);
        gen[i] = atomic_load(&shmlog_lane_ctl(a, i)->generation);
    }
    const uint64_t want = CHURN_PRODUCERS * ch->rounds * CHURN_BATCH;
    uint64_t total = 0;
    double last_progress = now_s();
    for (;;) {
        bool done = atomic_load(&ch->producers_done) == CHURN_PRODUCERS;
        bool progress = false;
        for (uint32_t i = 0; i < CHURN_LANES; i++) {
            struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(a, i);
            uint64_t w = atomic_load_explicit(&ctl->owner, memory_order_acquire);
            if (w == 0)
                continue;
            uint64_t ps = atomic_load_explicit(&ctl->pid_start, memory_order_relaxed);
            if (ps == 0)
                ch->claiming_seen++;
            else if (ps != ch->pid_start) {
                snprintf(ch->agent_error, sizeof ch->agent_error,
                         "lane %u: owner %llx with start time %llu, expected %llu or 0", i,
                         (unsigned long long)w, (unsigned long long)ps,
                         (unsigned long long)ch->pid_start);
                return NULL;
            }
            /* everything published before the owner word we saw is visible now */
            struct shmlog_cursor *c = &cur[i];
            int n;
            const struct shmlog_rec *r;
            while ((n = shmlog_peek(c, &r)) > 0) {
                if (r->type != SHMLOG_REC_PAD) {
                    const struct trec *t = (const struct trec *)r;
                    if (!trec_valid(t, n) || t->producer >= CHURN_PRODUCERS ||
                        t->seq >= ch->rounds * CHURN_BATCH) {
                        snprintf(ch->agent_error, sizeof ch->agent_error,
                                 "lane %u pos %llu: malformed record", i,
                                 (unsigned long long)c->pos);
                        return NULL;
                    }
                    ch->seen[t->producer][t->seq]++;
                    total++;
                }
                c->pos += (uint64_t)n;
                progress = true;
            }
            if (n < 0 && n != -EINPROGRESS) {
                snprintf(ch->agent_error, sizeof ch->agent_error, "lane %u: peek gave %d", i, n);
                return NULL;
            }
            shmlog_release(c, c->pos);
            if ((w & SHMLOG_OWNER_CLOSED) && !(w & SHMLOG_OWNER_FREEING) && n == 0) {
                int fr = shmlog_lane_free(a, i, w);
                if (fr == 0) {
                    ch->frees++;
                    gen[i]++;
                    if (atomic_load(&ctl->generation) != gen[i] && ch->agent_error[0] == 0)
                        snprintf(ch->agent_error, sizeof ch->agent_error,
                                 "lane %u: generation %u after free, expected %u", i,
                                 atomic_load(&ctl->generation), gen[i]);
                    shmlog_cursor_init(c, a, i, 0);
                } else {
                    ch->free_races++; /* reopened meanwhile: keep draining */
                }
            }
        }
        if (progress)
            last_progress = now_s();
        else if (done && total >= want)
            break;
        else {
            sched_yield();
            if (now_s() - last_progress > STUCK_S) {
                snprintf(ch->agent_error, sizeof ch->agent_error,
                         "nothing arrived for %.0f s, at %llu of %llu records", STUCK_S,
                         (unsigned long long)total, (unsigned long long)want);
                return NULL;
            }
        }
    }
    return NULL;
}

static void test_lanes_claimed_closed_freed_concurrently_no_record_lost(void **state)
{
    struct fx *f = *state;
    struct shmlog_geometry g = {.lane_count = CHURN_LANES, .lane_size = LANE_SIZE,
                                .clock = SHMLOG_CLOCK_REALTIME};
    assert_int_equal(shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g), 0);
    struct churn *ch = calloc(1, sizeof *ch);
    assert_non_null(ch);
    ch->a = &f->a;
    ch->pid_start = proc_start_time(getpid());
    ch->rounds = env_u64("RING_TEST_CHURN_ROUNDS", RING_TSAN ? 500 : 5000);
    for (int i = 0; i < CHURN_PRODUCERS; i++) {
        ch->seen[i] = calloc(ch->rounds * CHURN_BATCH, 1);
        assert_non_null(ch->seen[i]);
    }
    pthread_t agent, th[CHURN_PRODUCERS];
    struct churn_arg args[CHURN_PRODUCERS];
    double t0 = now_s();
    assert_int_equal(pthread_create(&agent, NULL, churn_agent, ch), 0);
    for (uint32_t i = 0; i < CHURN_PRODUCERS; i++) {
        args[i] = (struct churn_arg){.ch = ch, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, churn_producer, &args[i]), 0);
    }
    for (uint32_t i = 0; i < CHURN_PRODUCERS; i++)
        pthread_join(th[i], NULL);
    pthread_join(agent, NULL);
    double dt = now_s() - t0;

    uint64_t reopened = 0, busy = 0;
    for (uint32_t i = 0; i < CHURN_PRODUCERS; i++) {
        if (ch->error[i])
            fail_msg("producer %u: %s", i, strerror(-ch->error[i]));
        reopened += ch->reopened[i];
        busy += ch->busy[i];
    }
    if (ch->agent_error[0])
        fail_msg("agent: %s", ch->agent_error);
    for (uint32_t i = 0; i < CHURN_PRODUCERS; i++)
        for (uint64_t s = 0; s < ch->rounds * CHURN_BATCH; s++)
            if (ch->seen[i][s] != 1)
                fail_msg("producer %u record %llu arrived %u times", i, (unsigned long long)s,
                         ch->seen[i][s]);
    print_message("%d producers x %llu claim/close rounds in %.2f s: %llu lanes freed, "
                  "%llu frees lost to a reopen, %llu reopened, %llu claims found no lane, "
                  "%llu owners seen mid-claim\n",
                  CHURN_PRODUCERS, (unsigned long long)ch->rounds, dt,
                  (unsigned long long)ch->frees, (unsigned long long)ch->free_races,
                  (unsigned long long)reopened, (unsigned long long)busy,
                  (unsigned long long)ch->claiming_seen);
    assert_true(ch->frees > 0);
    for (int i = 0; i < CHURN_PRODUCERS; i++)
        free(ch->seen[i]);
    free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_threads_each_record_exactly_once_in_order, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_threads_with_idle_lanes_each_record_exactly_once,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_lanes_claimed_closed_freed_concurrently_no_record_lost, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("ring_mt", tests, NULL, NULL);
}
