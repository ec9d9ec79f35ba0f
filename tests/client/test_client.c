/* test_client.c — libsidetrack's contract: MLflow's argument rules with clear error codes,
 * what each call puts into the ring (read back here with the agent's own decoder), lanes per
 * thread and per forked process, and a foreign ring refused at st_open(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "decode.h"
#include "shmlog.h"
#include "wire.h"

#include <sidetrack.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char ring_dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(ring_dir, sizeof ring_dir, "%s/st-client-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(ring_dir))
        return -1;
    setenv("SIDETRACK_RING_DIR", ring_dir, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ring_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static st_client *open_client(void)
{
    st_options o = {.lane_size = 1u << 20, .lanes = 16};
    st_client *c;
    assert_int_equal(st_open(&c, &o), 0);
    return c;
}

static void ring_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/u%u.ring", ring_dir, (unsigned)getuid());
}

static void fresh_ring(void)
{
    char p[512];
    ring_path(p, sizeof p);
    unlink(p);
}

static void keys_follow_mlflow_rules(void **state)
{
    (void)state;
    fresh_ring();
    st_client *c = open_client();
    st_key k;
    const char *good[] = {"loss", "train/loss", "a.b-c d_e", "x/y/z", "ünïcode", "L2"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(st_key_intern(c, good[i], &k), 0);
    char long_key[300];
    memset(long_key, 'a', 251);
    long_key[251] = 0;
    const char *bad[] = {"", "/abs", "a//b", "a/", "..", "../x", "a/../b", "a/./b", ".",
                         "semi;colon", "tab\tkey", "quote\"", long_key};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (st_key_intern(c, bad[i], &k) != ST_EKEY)
            fail_msg("key '%s' should be refused with ST_EKEY", bad[i]);
    long_key[250] = 0;
    assert_int_equal(st_key_intern(c, long_key, &k), 0); /* exactly 250 is allowed */
    st_close(c);
}

static void interning_a_name_twice_gives_the_same_key(void **state)
{
    (void)state;
    fresh_ring();
    st_client *c = open_client();
    st_key a, b, d;
    assert_int_equal(st_key_intern(c, "loss", &a), 0);
    assert_int_equal(st_key_intern(c, "acc", &b), 0);
    assert_int_equal(st_key_intern(c, "loss", &d), 0);
    assert_int_equal(a, d);
    assert_int_not_equal(a, b);
    /* many keys: the table grows */
    for (int i = 0; i < 5000; i++) {
        char n[32];
        snprintf(n, sizeof n, "k%d", i);
        assert_int_equal(st_key_intern(c, n, &a), 0);
        assert_int_equal(st_key_intern(c, n, &b), 0);
        assert_int_equal(a, b);
    }
    st_close(c);
}

static void values_and_names_are_bounded(void **state)
{
    (void)state;
    fresh_ring();
    st_client *c = open_client();
    st_run *run;
    assert_int_equal(st_run_start(c, "", "x", &run), ST_ENAME);
    char big[6002];
    memset(big, 'e', 501);
    big[501] = 0;
    assert_int_equal(st_run_start(c, big, "x", &run), ST_ENAME);
    assert_int_equal(st_run_start(c, "exp", NULL, &run), 0);
    memset(big, 'v', 6001);
    big[6001] = 0;
    assert_int_equal(st_log_param(run, "p", big), ST_EVALUE);
    big[6000] = 0;
    assert_int_equal(st_log_param(run, "p", big), 0);
    big[5001] = 0;
    assert_int_equal(st_set_tag(run, "t", big), ST_EVALUE);
    big[5000] = 0;
    assert_int_equal(st_set_tag(run, "t", big), 0);
    assert_int_equal(st_log_param(run, "bad utf8", "\xc3\x28"), ST_EVALUE);
    assert_int_equal(st_log_param(run, "p/../q", "v"), ST_EKEY);
    assert_int_equal(st_log_metric(run, 9999, 1.0, 0), -EINVAL);
    st_key keys[1001] = {0};
    double vals[1001] = {0};
    st_key k;
    assert_int_equal(st_key_intern(c, "m", &k), 0);
    for (int i = 0; i < 1001; i++)
        keys[i] = k;
    assert_int_equal(st_log_metrics(run, 1001, keys, vals, 0), -EINVAL);
    assert_int_equal(st_log_metrics(run, 1000, keys, vals, 0), 0);
    assert_int_equal(st_log_artifact(run, "/etc/hostname", "/abs/path"), ST_EPATH);
    assert_int_equal(st_log_artifact(run, "/etc/hostname", "a/../b"), ST_EPATH);
    assert_int_equal(st_log_artifact(run, "/nonexistent/file", NULL), -ENOENT);
    assert_int_equal(st_log_artifact(run, "/tmp", NULL), -EISDIR);
    assert_int_equal(st_run_end(run, ST_RUN_RUNNING), -EINVAL);
    assert_int_equal(st_run_end(run, ST_RUN_FINISHED), 0);
    st_close(c);
}

static void every_error_code_has_a_sentence(void **state)
{
    (void)state;
    int codes[] = {ST_EKEY, ST_EVALUE, ST_ENAME, ST_EPATH, ST_EENDED, ST_ERINGOWNER, -EPROTO,
                   -EPROTONOSUPPORT, -EBADMSG, -EBUSY, -EINVAL, -ENOENT};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        const char *s = st_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 5);
    }
}

/* Reads every published record of every lane of the ring, in lane order. */
struct seen {
    int types[16];
    int keydef_before_metric;
    int metric_count;
    double last_value;
    int64_t last_step;
    char param_key[64], param_value[64];
    uint32_t lanes_used;
};

static void read_ring(struct seen *sn)
{
    memset(sn, 0, sizeof *sn);
    char p[512];
    ring_path(p, sizeof p);
    struct shmlog_arena a;
    assert_int_equal(shmlog_arena_open(&a, p, 0, NULL), 0);
    struct decoder d;
    decode_init(&d);
    for (uint32_t l = 0; l < a.lane_count; l++) {
        if (!atomic_load(&shmlog_lane_ctl(&a, l)->owner))
            continue;
        sn->lanes_used++;
        if (getenv("TEST_DEBUG")) printf("# lane %u owner %llx\n", l, (unsigned long long)atomic_load(&shmlog_lane_ctl(&a, l)->owner));
        struct shmlog_cursor cur;
        shmlog_cursor_init(&cur, &a, l, 0);
        bool key_defined = false;
        const struct shmlog_rec *rec;
        int len;
        while ((len = shmlog_peek(&cur, &rec)) > 0) {
            struct decoded dec;
            assert_int_equal(decode_record(&d, rec, (uint32_t)len, &dec), 0);
            if (dec.type < 16)
                sn->types[dec.type]++;
            if (dec.type == WIRE_KEYDEF)
                key_defined = true;
            if (dec.type == WIRE_METRIC) {
                sn->keydef_before_metric += key_defined;
                sn->metric_count++;
                sn->last_value = dec.metric->value;
                sn->last_step = dec.metric->step;
            }
            if (dec.type == WIRE_PARAM) {
                snprintf(sn->param_key, sizeof sn->param_key, "%s", dec.key);
                snprintf(sn->param_value, sizeof sn->param_value, "%s", dec.value);
            }
            cur.pos += (uint64_t)len;
        }
        decode_reset(&d);
    }
    decode_free(&d);
    shmlog_arena_close(&a);
}

static void each_call_puts_its_record_in_the_ring(void **state)
{
    (void)state;
    fresh_ring();
    st_client *c = open_client();
    st_run *run;
    assert_int_equal(st_run_start(c, "exp", "r1", &run), 0);
    assert_int_equal(strlen(st_run_id(run)), 32);
    st_key k;
    assert_int_equal(st_key_intern(c, "loss", &k), 0);
    assert_int_equal(st_log_param(run, "lr", "0.1"), 0);
    assert_int_equal(st_set_tag(run, "team", "x"), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(st_log_metric(run, k, i * 0.25, i), 0);
    st_key ks[2] = {k, k};
    double vs[2] = {1, 2};
    assert_int_equal(st_log_metrics(run, 2, ks, vs, 7), 0);
    assert_int_equal(st_run_end(run, ST_RUN_FINISHED), 0);
    struct seen sn;
    read_ring(&sn);
    assert_int_equal(sn.lanes_used, 1);
    assert_int_equal(sn.types[WIRE_RUN_START], 1);
    assert_int_equal(sn.types[WIRE_RUNDEF], 1);
    assert_int_equal(sn.types[WIRE_KEYDEF], 1);
    assert_int_equal(sn.types[WIRE_PARAM], 1);
    assert_int_equal(sn.types[WIRE_TAG], 1);
    assert_int_equal(sn.types[WIRE_METRICS], 1);
    assert_int_equal(sn.types[WIRE_RUN_END], 1);
    assert_int_equal(sn.metric_count, 100);
    assert_int_equal(sn.keydef_before_metric, 100);
    assert_true(sn.last_value == 99 * 0.25);
    assert_int_equal(sn.last_step, 99);
    assert_string_equal(sn.param_key, "lr");
    assert_string_equal(sn.param_value, "0.1");
    st_close(c);
}

static void another_process_attaches_to_a_run_by_id(void **state)
{
    (void)state;
    fresh_ring();
    st_client *c = open_client();
    st_run *run, *att;
    assert_int_equal(st_run_attach(c, "0123", &att), -EINVAL);           /* too short */
    assert_int_equal(st_run_attach(c, "0123456789abcdef0123456789abcdeg", &att), -EINVAL);
    assert_int_equal(st_run_attach(c, "0123456789abcdef0123456789abcdef0", &att), -EINVAL);
    assert_int_equal(st_run_start(c, "exp", "r", &run), 0);
    char id[33];
    strcpy(id, st_run_id(run));
    for (char *p = id; *p; p++) /* upper case is accepted, given back in lower case */
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(st_run_attach(c, id, &att), 0);
    assert_string_equal(st_run_id(att), st_run_id(run));
    st_key k;
    assert_int_equal(st_key_intern(c, "m", &k), 0);
    assert_int_equal(st_log_metric(att, k, 1.0, 1), 0);
    st_run_release(att); /* no RUN_END: the run goes on */
    st_run_release(NULL);
    assert_int_equal(st_run_end(run, ST_RUN_FINISHED), 0);
    struct seen sn;
    read_ring(&sn);
    assert_int_equal(sn.types[WIRE_RUN_START], 1); /* the attach wrote none */
    assert_int_equal(sn.types[WIRE_RUNDEF], 2);    /* one per handle's slot */
    assert_int_equal(sn.types[WIRE_RUN_END], 1);
    assert_int_equal(sn.metric_count, 1);
    st_close(c);
}

static st_run *thread_run;
static st_key thread_key;
static pthread_barrier_t all_logged;

static void *thread_logs(void *arg)
{
    for (int i = 0; i < 1000; i++)
        st_log_metric(thread_run, thread_key, (double)(intptr_t)arg, i);
    /* Stay alive until all have logged: a thread that exits closes its lane, and the next
     * thread of the process would continue in it (by design). */
    pthread_barrier_wait(&all_logged);
    return NULL;
}

static void each_thread_gets_its_own_lane(void **state)
{
    (void)state;
    fresh_ring();
    st_client *c = open_client();
    assert_int_equal(st_run_start(c, "exp", NULL, &thread_run), 0);
    assert_int_equal(st_key_intern(c, "m", &thread_key), 0);
    pthread_t th[4];
    pthread_barrier_init(&all_logged, NULL, 4);
    for (intptr_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_logs, (void *)i), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&all_logged);
    struct seen sn;
    read_ring(&sn);
    assert_int_equal(sn.lanes_used, 5); /* the main thread's (run start) and four more */
    assert_int_equal(sn.metric_count, 4000);
    assert_int_equal(sn.types[WIRE_RUNDEF], 4); /* only lanes that log for the run */
    st_run_end(thread_run, ST_RUN_FINISHED);
    st_close(c);
}

static void a_thread_that_exits_hands_its_lane_to_the_next(void **state)
{
    (void)state;
    fresh_ring();
    st_client *c = open_client();
    assert_int_equal(st_run_start(c, "exp", NULL, &thread_run), 0);
    assert_int_equal(st_key_intern(c, "m", &thread_key), 0);
    pthread_barrier_init(&all_logged, NULL, 1);
    for (intptr_t i = 0; i < 3; i++) {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, thread_logs, (void *)i), 0);
        pthread_join(th, NULL);
    }
    pthread_barrier_destroy(&all_logged);
    struct seen sn;
    read_ring(&sn);
    assert_int_equal(sn.lanes_used, 2); /* the main thread's, and one shared in turn */
    assert_int_equal(sn.metric_count, 3000);
    st_run_end(thread_run, ST_RUN_FINISHED);
    st_close(c);
}

static void a_forked_child_logs_into_a_lane_of_its_own(void **state)
{
    (void)state;
    fresh_ring();
    st_client *c = open_client();
    st_run *run;
    assert_int_equal(st_run_start(c, "exp", NULL, &run), 0);
    st_key k;
    assert_int_equal(st_key_intern(c, "m", &k), 0);
    assert_int_equal(st_log_metric(run, k, 1.0, 0), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 10; i++)
            st_log_metric(run, k, 2.0, i);
        st_close(c);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct seen sn;
    read_ring(&sn);
    assert_int_equal(sn.lanes_used, 2);
    assert_int_equal(sn.metric_count, 11);
    st_run_end(run, ST_RUN_FINISHED);
    st_close(c);
}

static void a_full_lane_drops_metrics_and_counts_them(void **state)
{
    (void)state;
    fresh_ring();
    st_options o = {.lane_size = 64u << 10, .lanes = 4};
    st_client *c;
    assert_int_equal(st_open(&c, &o), 0);
    st_run *run;
    assert_int_equal(st_run_start(c, "exp", NULL, &run), 0);
    st_key k;
    assert_int_equal(st_key_intern(c, "m", &k), 0);
    for (int i = 0; i < 10000; i++) /* 400 KB into a 64 KiB lane, no agent */
        assert_int_equal(st_log_metric(run, k, 1.0, i), 0);
    st_stats s;
    assert_int_equal(st_stats_get(c, &s), 0);
    assert_true(s.dropped_metrics > 8000);
    assert_int_equal(s.lost_records, 0);
    /* params are never dropped: they spill */
    assert_int_equal(st_log_param(run, "after", "full"), 0);
    assert_int_equal(st_stats_get(c, &s), 0);
    assert_true(s.spilled_records >= 1);
    st_run_end(run, ST_RUN_FINISHED);
    st_close(c);
}

static st_run *drop_run;
static st_key drop_key;

static void *thread_floods(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++)
        st_log_metric(drop_run, drop_key, 1.0, i);
    return NULL;
}

static void drops_of_an_exited_thread_stay_counted(void **state)
{
    (void)state;
    fresh_ring();
    st_options o = {.lane_size = 64u << 10, .lanes = 4};
    st_client *c;
    assert_int_equal(st_open(&c, &o), 0);
    assert_int_equal(st_run_start(c, "exp", NULL, &drop_run), 0);
    assert_int_equal(st_key_intern(c, "m", &drop_key), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_floods, NULL), 0);
    pthread_join(th, NULL);
    st_stats s;
    assert_int_equal(st_stats_get(c, &s), 0);
    assert_true(s.dropped_metrics > 8000); /* the thread and its lane are gone; its count is not */
    uint64_t before = s.dropped_metrics;
    /* A second thread reopens the same closed lane: its drops add, nothing is counted twice. */
    assert_int_equal(pthread_create(&th, NULL, thread_floods, NULL), 0);
    pthread_join(th, NULL);
    assert_int_equal(st_stats_get(c, &s), 0);
    assert_int_equal(s.dropped_metrics, before + 10000);
    st_run_end(drop_run, ST_RUN_FINISHED);
    st_close(c);
}

static void *log_once_without_a_lane(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++)
        assert_int_equal(st_log_metric(drop_run, drop_key, 1.0, i), 0); /* never an error */
    return NULL;
}

static void with_every_lane_taken_calls_are_counted_not_failed(void **state)
{
    (void)state;
    fresh_ring();
    st_options o = {.lane_size = 64u << 10, .lanes = 1};
    st_client *c;
    assert_int_equal(st_open(&c, &o), 0);
    assert_int_equal(st_run_start(c, "exp", NULL, &drop_run), 0); /* the only lane */
    assert_int_equal(st_key_intern(c, "m", &drop_key), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, log_once_without_a_lane, NULL), 0);
    pthread_join(th, NULL);
    st_stats s;
    assert_int_equal(st_stats_get(c, &s), 0);
    assert_int_equal(s.no_lane, 10000);
    st_run_end(drop_run, ST_RUN_FINISHED);
    st_close(c);
}

static void a_foreign_file_at_the_ring_path_is_refused(void **state)
{
    (void)state;
    char p[512];
    ring_path(p, sizeof p);
    unlink(p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char junk[8192];
    memset(junk, 'J', sizeof junk);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    st_client *c;
    assert_int_equal(st_open(&c, NULL), -EPROTO);
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_follow_mlflow_rules),
        cmocka_unit_test(interning_a_name_twice_gives_the_same_key),
        cmocka_unit_test(values_and_names_are_bounded),
        cmocka_unit_test(every_error_code_has_a_sentence),
        cmocka_unit_test(each_call_puts_its_record_in_the_ring),
        cmocka_unit_test(another_process_attaches_to_a_run_by_id),
        cmocka_unit_test(each_thread_gets_its_own_lane),
        cmocka_unit_test(a_thread_that_exits_hands_its_lane_to_the_next),
        cmocka_unit_test(a_forked_child_logs_into_a_lane_of_its_own),
        cmocka_unit_test(a_full_lane_drops_metrics_and_counts_them),
        cmocka_unit_test(drops_of_an_exited_thread_stay_counted),
        cmocka_unit_test(with_every_lane_taken_calls_are_counted_not_failed),
        cmocka_unit_test(a_foreign_file_at_the_ring_path_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
