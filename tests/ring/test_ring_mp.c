/* test_ring_mp.c — producer processes (with threads inside them) and a consumer in the parent,
 * sharing one arena file; and producers killed with SIGKILL in the middle of their stream.
 *
 * Children report back through a shared anonymous page: their lane, their start time, how
 * many records they have published so far (stored after each publish, so the consumer knows a
 * lower bound of what must arrive even after the child was killed), and their retry counts.
 * The parent never starts a thread, so forking stays well-defined (also under TSan). */
#include "ring_util.h"
#include "shmlog.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define LANE_SIZE (64u << 10)
#define STUCK_S 60.0
#define PROCS 2
#define THREADS 2

/* One producer thread's report, in memory shared with the parent. */
struct slot {
    _Atomic uint64_t published; /* records published so far */
    _Atomic int32_t state;      /* 0 starting, 1 claimed, 2 a record reserved and left open */
    _Atomic int32_t error;      /* 0 or -errno (-ETIMEDOUT: the lane stayed full) */
    _Atomic uint32_t lane;
    _Atomic uint32_t gen;
    _Atomic uint64_t pid_start;
    _Atomic uint64_t retries;
    _Atomic uint64_t episodes;
};

struct fx {
    struct scratch s;
    struct shmlog_arena a;
    struct slot *slots; /* RING_MAX_PRODUCERS of them, shared with children */
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || scratch_make(&f->s, "ring") < 0) {
        free(f);
        return -1;
    }
    f->a.fd = -1;
    f->slots = mmap(NULL, sizeof(struct slot) * RING_MAX_PRODUCERS, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (f->slots == MAP_FAILED) {
        scratch_remove(&f->s);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    shmlog_arena_close(&f->a);
    scratch_remove(&f->s);
    munmap(f->slots, sizeof(struct slot) * RING_MAX_PRODUCERS);
    free(f);
    return 0;
}

static void open_arena(struct fx *f, uint32_t lanes)
{
    struct shmlog_geometry g = {.lane_count = lanes, .lane_size = LANE_SIZE,
                                .clock = SHMLOG_CLOCK_REALTIME};
    int r = shmlog_arena_open(&f->a, f->s.path, SHMLOG_CREATE, &g);
    if (r < 0)
        fail_msg("open %s: %s", f->s.path, shmlog_strerror(r));
}

/* ---- the children ---------------------------------------------------------------------- */

struct job {
    const struct shmlog_arena *a;
    struct slot *slot;
    uint32_t producer;
    uint64_t records;  /* UINT64_MAX: until killed */
    uint64_t pid_start;
    bool leave_open;   /* after the records, reserve one more, fill half of it, and wait */
};

static void *producer_main(void *arg)
{
    struct job *j = arg;
    struct slot *sl = j->slot;
    struct shmlog_producer p;
    int r = shmlog_producer_claim(&p, j->a, j->pid_start);
    if (r < 0) {
        atomic_store(&sl->error, r);
        return NULL;
    }
    atomic_store(&sl->lane, p.lane);
    atomic_store(&sl->gen, p.gen);
    atomic_store(&sl->pid_start, j->pid_start);
    atomic_store(&sl->state, 1);
    uint64_t retries = 0, episodes = 0;
    for (uint64_t s = 0; s < j->records; s++) {
        uint32_t len = trec_len(s);
        struct trec *t = reserve_retry(&p, len, STUCK_S, &retries, &episodes);
        if (!t) {
            atomic_store(&sl->error, -ETIMEDOUT);
            return NULL;
        }
        trec_fill(t, j->producer, s);
        shmlog_publish(&p, t, len);
        atomic_store_explicit(&sl->published, s + 1, memory_order_release);
        if ((s & 1023) == 0) {
            atomic_store_explicit(&sl->retries, retries, memory_order_relaxed);
            atomic_store_explicit(&sl->episodes, episodes, memory_order_relaxed);
        }
    }
    atomic_store(&sl->retries, retries);
    atomic_store(&sl->episodes, episodes);
    if (j->leave_open) {
        uint32_t len = trec_len(j->records);
        struct trec *t = reserve_retry(&p, len, STUCK_S, &retries, &episodes);
        if (!t) {
            atomic_store(&sl->error, -ETIMEDOUT);
            return NULL;
        }
        t->producer = j->producer; /* half of it: the header still says "being written" */
        t->seq = j->records;
        atomic_store(&sl->state, 2);
        for (;;)
            pause();
    }
    shmlog_producer_close(&p);
    return NULL;
}

/* A producer process: opens the arena by its path, runs `threads` producer threads (ids
 * first_producer..), exits 0 when all of them succeeded. */
static pid_t spawn(struct fx *f, uint32_t first_producer, uint32_t threads, uint64_t records,
                   bool leave_open)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    struct shmlog_arena a;
    int r = shmlog_arena_open(&a, f->s.path, 0, NULL);
    if (r < 0) {
        atomic_store(&f->slots[first_producer].error, r);
        _exit(2);
    }
    uint64_t pid_start = proc_start_time(getpid());
    struct job jobs[RING_MAX_PRODUCERS];
    pthread_t th[RING_MAX_PRODUCERS];
    for (uint32_t i = 0; i < threads; i++) {
        uint32_t id = first_producer + i;
        jobs[i] = (struct job){.a = &a, .slot = &f->slots[id], .producer = id,
                               .records = records, .pid_start = pid_start,
                               .leave_open = leave_open};
        if (pthread_create(&th[i], NULL, producer_main, &jobs[i]) != 0)
            _exit(3);
    }
    int bad = 0;
    for (uint32_t i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        bad |= atomic_load(&f->slots[first_producer + i].error) != 0;
    }
    shmlog_arena_close(&a);
    _exit(bad ? 1 : 0);
}

static void reap(pid_t pid, bool killed)
{
    int st;
    pid_t r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(r, pid);
    if (killed) {
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
            fail_msg("child %d: status %#x, expected killed by SIGKILL", (int)pid, st);
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail_msg("child %d: status %#x, expected exit 0", (int)pid, st);
    }
}

/* Failure paths: stop a child whatever it is doing, and reap it. */
static void stop(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static void wait_state(struct slot *sl, int32_t state)
{
    double deadline = now_s() + STUCK_S;
    while (atomic_load(&sl->state) < state) {
        if (atomic_load(&sl->error))
            fail_msg("producer failed: %s", strerror(-atomic_load(&sl->error)));
        if (now_s() > deadline)
            fail_msg("producer did not reach state %d in %.0f s", state, STUCK_S);
        usleep(1000);
    }
}

static uint64_t records_default(void)
{
    return env_u64("RING_TEST_RECORDS", RING_TSAN ? 200000 : 2000000);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_processes_each_record_exactly_once_in_order(void **state)
{
    struct fx *f = *state;
    const uint64_t records = records_default() / 2;
    open_arena(f, 8); /* more lanes than producers: idle lanes are polled too */
    double t0 = now_s();
    pid_t pids[PROCS];
    for (uint32_t i = 0; i < PROCS; i++) {
        pids[i] = spawn(f, i * THREADS, THREADS, records, false);
        assert_true(pids[i] > 0);
    }
    struct drain d = {.producers = PROCS * THREADS};
    bool ok = drain_all(&d, &f->a, (uint64_t)PROCS * THREADS * records, STUCK_S);
    for (uint32_t i = 0; i < PROCS; i++) {
        if (ok)
            reap(pids[i], false);
        else
            stop(pids[i]);
    }
    double dt = now_s() - t0;
    if (!ok || !drain_complete(&d, records))
        fail_msg("consumer: %s", d.error);

    uint64_t retries = 0, episodes = 0;
    for (uint32_t i = 0; i < PROCS * THREADS; i++) {
        assert_int_equal(atomic_load(&f->slots[i].error), 0);
        assert_int_equal(atomic_load(&f->slots[i].published), records);
        retries += atomic_load(&f->slots[i].retries);
        episodes += atomic_load(&f->slots[i].episodes);
        for (uint32_t j = 0; j < i; j++)
            assert_int_not_equal(atomic_load(&f->slots[i].lane), atomic_load(&f->slots[j].lane));
        /* each lane closed by its (exited) owner, and the agent can free it */
        uint32_t lane = atomic_load(&f->slots[i].lane);
        uint64_t w = atomic_load(&shmlog_lane_ctl(&f->a, lane)->owner);
        assert_true(w & SHMLOG_OWNER_CLOSED);
        assert_int_equal(SHMLOG_OWNER_PID(w), pids[i / THREADS]);
        assert_int_equal(shmlog_lane_free(&f->a, lane, w), 0);
    }
    print_message("%d processes x %d threads x %llu records in %.2f s (%.1f M/s): %llu PADs, "
                  "%llu releases, lane full %llu times (%llu retries)\n",
                  PROCS, THREADS, (unsigned long long)records, dt, (double)d.total / dt / 1e6,
                  (unsigned long long)d.pads, (unsigned long long)d.releases,
                  (unsigned long long)episodes, (unsigned long long)retries);
    assert_true(d.pads > 0);
}

/* After a producer died: the agent's steps for its lane, then a new producer uses it. */
static void reclaim_lane(struct fx *f, uint32_t lane, pid_t dead, uint64_t pos)
{
    struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&f->a, lane);
    uint64_t w = atomic_load(&ctl->owner);
    assert_int_equal(SHMLOG_OWNER_PID(w), dead);
    assert_false(w & SHMLOG_OWNER_CLOSED); /* it died without closing */
    assert_false(pid_alive(dead, ctl->pid_start));
    assert_true(shmlog_lane_close_dead(ctl, w));
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, lane, pos);
    shmlog_release(&c, pos); /* what was drained is committed */
    uint32_t gen = atomic_load(&ctl->generation);
    assert_int_equal(shmlog_lane_free(&f->a, lane, w | SHMLOG_OWNER_CLOSED), 0);
    assert_int_equal(atomic_load(&ctl->owner), 0);
    assert_int_equal(atomic_load(&ctl->head), 0);

    /* a new producer process claims the lane (the arena has just this one) and uses it */
    const uint64_t records = 20000;
    memset(f->slots, 0, sizeof(struct slot) * RING_MAX_PRODUCERS);
    pid_t pid = spawn(f, 0, 1, records, false);
    assert_true(pid > 0);
    struct drain d = {.producers = 1};
    bool ok = drain_all(&d, &f->a, records, STUCK_S);
    if (ok)
        reap(pid, false);
    else
        stop(pid);
    if (!ok || !drain_complete(&d, records))
        fail_msg("after reclaim: %s", d.error);
    assert_int_equal(atomic_load(&f->slots[0].lane), lane);
    assert_int_equal(atomic_load(&f->slots[0].gen), gen + 1);
}

static void test_killed_producer_published_records_all_drained(void **state)
{
    struct fx *f = *state;
    open_arena(f, 1);
    struct slot *sl = &f->slots[0];
    pid_t pid = spawn(f, 0, 1, UINT64_MAX, false);
    assert_true(pid > 0);
    wait_state(sl, 1);
    uint32_t lane = atomic_load(&sl->lane);
    uint64_t pid_start = atomic_load(&sl->pid_start);
    assert_int_equal(shmlog_lane_ctl(&f->a, lane)->pid_start, pid_start);

    /* drain alongside it, and kill it at some point in the middle of its stream */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const uint64_t kill_at = 20000 + mix64((uint64_t)ts.tv_nsec ^ (uint64_t)getpid()) % 100000;
    struct drain d = {.producers = 1};
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, lane, 0);
    double deadline = now_s() + STUCK_S;
    int last = 0;
    while (d.total < kill_at) {
        if (drain_lane(&d, &c, 256, &last) < 0) {
            stop(pid);
            fail_msg("%s", d.error);
        }
        if (last == 0 || last == -EINPROGRESS)
            sched_yield();
        if (now_s() > deadline || atomic_load(&sl->error)) {
            stop(pid);
            fail_msg("the producer stalled at %llu records", (unsigned long long)d.total);
        }
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    reap(pid, true);
    const uint64_t published = atomic_load_explicit(&sl->published, memory_order_acquire);

    /* everything it published arrives; then at most one record it was writing */
    for (;;) {
        int n = drain_lane(&d, &c, 1024, &last);
        if (n < 0)
            fail_msg("%s", d.error);
        if (n == 0 && last <= 0)
            break;
    }
    /* it may have published one more than it got to count */
    if (d.total != published && d.total != published + 1)
        fail_msg("%llu records drained, the producer had published %llu",
                 (unsigned long long)d.total, (unsigned long long)published);
    assert_int_equal(d.next_seq[0], d.total);
    bool open_record = last == -EINPROGRESS;
    if (open_record) {
        assert_false(pid_alive(pid, pid_start)); /* only now may it be skipped */
        int32_t len = shmlog_peek_inprogress_len(&c);
        assert_int_equal(len, trec_len(d.total));
        c.pos += (uint64_t)len;
        atomic_fetch_add(&c.ctl->skipped, 1);
        const struct shmlog_rec *r;
        assert_int_equal(shmlog_peek(&c, &r), 0);
    }
    print_message("killed after %llu published records (%llu drained, %s)\n",
                  (unsigned long long)published, (unsigned long long)d.total,
                  open_record ? "one record in progress, skipped" : "no record in progress");
    reclaim_lane(f, lane, pid, c.pos);
}

static void test_killed_mid_record_inprogress_skipped_lane_reused(void **state)
{
    struct fx *f = *state;
    open_arena(f, 1);
    struct slot *sl = &f->slots[0];
    const uint64_t records = 3000; /* a few laps of the lane, then one record left open */
    pid_t pid = spawn(f, 0, 1, records, true);
    assert_true(pid > 0);
    wait_state(sl, 1);
    uint32_t lane = atomic_load(&sl->lane);
    uint64_t pid_start = atomic_load(&sl->pid_start);
    struct drain d = {.producers = 1};
    struct shmlog_cursor c;
    shmlog_cursor_init(&c, &f->a, lane, 0);
    double deadline = now_s() + STUCK_S;
    int last = 0;
    while (atomic_load(&sl->state) < 2 || d.total < records || last != -EINPROGRESS) {
        if (drain_lane(&d, &c, 256, &last) < 0) {
            stop(pid);
            fail_msg("%s", d.error);
        }
        if (last == 0 || last == -EINPROGRESS)
            sched_yield();
        if (now_s() > deadline || atomic_load(&sl->error)) {
            stop(pid);
            fail_msg("stalled at %llu records, state %d", (unsigned long long)d.total,
                     atomic_load(&sl->state));
        }
    }
    assert_int_equal(d.total, records);
    /* the owner lives: the record is being written, the consumer must wait for it */
    assert_true(pid_alive(pid, pid_start));
    const struct shmlog_rec *r;
    assert_int_equal(shmlog_peek(&c, &r), -EINPROGRESS);

    assert_int_equal(kill(pid, SIGKILL), 0);
    reap(pid, true);
    assert_false(pid_alive(pid, pid_start));
    assert_int_equal(shmlog_peek(&c, &r), -EINPROGRESS);
    int32_t len = shmlog_peek_inprogress_len(&c);
    assert_int_equal(len, trec_len(records));
    c.pos += (uint64_t)len;
    atomic_fetch_add(&c.ctl->skipped, 1);
    assert_int_equal(shmlog_peek(&c, &r), 0);
    assert_int_equal(atomic_load(&c.ctl->skipped), 1);
    reclaim_lane(f, lane, pid, c.pos);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_processes_each_record_exactly_once_in_order,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_killed_producer_published_records_all_drained,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_killed_mid_record_inprogress_skipped_lane_reused,
                                        fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("ring_mp", tests, NULL, NULL);
}
