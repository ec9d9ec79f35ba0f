/* test_e2e.c — the local path end to end, with real processes: a producer process logs through
 * libsidetrack, a real sidetrackd drains the ring into its store, and the real CLI reads it
 * back. The agent is killed with SIGKILL mid-stream and restarted, and the final store must
 * hold exactly the records that were published: none lost, none twice, in order.
 *
 * E2E_POINTS and E2E_KILLS scale the long tests (CI uses the defaults below).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common.h"

#include <sidetrack.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The values logged: value(i, k) for step i of key m<k>. */
static const struct series VALUES = {0.5, 3};
static double value_of(long i, int k) { return series_value(&VALUES, i, k); }

/* What the producers of these tests log besides their metrics. */
struct producer_extras {
    int params;                   /* params p0..pN, after lr and the tag suite */
    const char *artifact_content; /* logged as out/result.txt after the metrics */
};

static int log_params(st_run *run, const void *arg)
{
    const struct producer_extras *x = arg;
    st_log_param(run, "lr", "0.01");
    st_set_tag(run, "suite", "e2e");
    for (int i = 0; i < x->params; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "p%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        if (st_log_param(run, k, v) < 0)
            return -1;
    }
    return 0;
}

static int log_artifact(st_run *run, const void *arg)
{
    const struct producer_extras *x = arg;
    if (!x->artifact_content)
        return 0;
    char path[] = "/tmp/st-e2e-art-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, x->artifact_content, strlen(x->artifact_content)) < 0)
        return -1;
    close(fd);
    int r = st_log_artifact(run, path, "out/result.txt");
    unlink(path);
    return r < 0 ? -1 : 0;
}

/* Starts a producer of run e2e/producer: ps gives its sizes, x what it logs besides its
 * metrics; the read end of the pipe its run id comes through goes to *id_fd. */
static pid_t e2e_producer_start(struct producer_spec ps, const struct producer_extras *x,
                                int *id_fd)
{
    ps.experiment = "e2e";
    ps.name = "producer";
    ps.values = VALUES;
    ps.before = log_params;
    ps.after = log_artifact;
    ps.arg = x;
    return producer_start(&ps, id_fd);
}

#define PRODUCER_TIMEOUT_MS 600000

/* Checks that the CLI returns exactly points values of key k, steps 0..points-1 in order,
 * each value_of(step, k). */
static void expect_values(const struct scratch *s, const char *run, int k, long points)
{
    expect_history(s, run, k, &VALUES, 0, points);
}

static void two_runs_logging_the_same_keys_from_one_thread_stay_apart(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "tworuns");
    pid_t agent = agent_start(&s, NULL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    long points = 50000;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        st_client *c;
        st_run *r1, *r2;
        st_key k0, k1;
        if (st_open(&c, NULL) < 0 || st_run_start(c, "e2e", "a", &r1) < 0 ||
            st_run_start(c, "e2e", "b", &r2) < 0 || st_key_intern(c, "m0", &k0) < 0 ||
            st_key_intern(c, "m1", &k1) < 0)
            _exit(10);
        if (write(p[1], st_run_id(r1), 33) != 33 || write(p[1], st_run_id(r2), 33) != 33)
            _exit(11);
        for (long i = 0; i < points; i++) {
            st_log_metric(r1, k0, value_of(i, 0), i);
            st_log_metric(r2, k0, value_of(i, 0) + 1000, i);
            st_log_metric(r2, k1, value_of(i, 1) + 1000, i);
            st_log_metric(r1, k1, value_of(i, 1), i);
        }
        st_run_end(r1, ST_RUN_FINISHED);
        st_run_end(r2, ST_RUN_FAILED);
        st_close(c);
        _exit(0);
    }
    close(p[1]);
    char runs[2][33];
    read_run_ids(p[0], 2, runs);
    producer_wait_ok(pid, PRODUCER_TIMEOUT_MS);
    assert_int_equal(agent_stop(&s, agent), 0);
    for (int k = 0; k < 2; k++) {
        expect_history(&s, runs[0], k, &VALUES, 0, points);
        expect_history(&s, runs[1], k, &VALUES, 1000, points);
    }
    scratch_remove(&s);
}

static void metrics_logged_are_read_back_exactly_by_the_cli(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "exact");
    pid_t agent = agent_start(&s, NULL);
    struct producer_spec ps = {.points = 100000, .keys = 3, .lane_size = 64u << 20};
    struct producer_extras x = {.artifact_content = "weights 0.1 0.2 0.3\n"};
    int fd;
    pid_t prod = e2e_producer_start(ps, &x, &fd);
    char run[33];
    read_run_id(fd, run);
    producer_wait_ok(prod, PRODUCER_TIMEOUT_MS);
    assert_int_equal(agent_stop(&s, agent), 0);

    for (int k = 0; k < ps.keys; k++)
        expect_values(&s, run, k, ps.points);

    char *out;
    const char *show[] = {"runs", "show", run, "--json", NULL};
    assert_int_equal(cli_run(&s, &out, show), 0);
    assert_non_null(strstr(out, "\"lr\""));
    assert_non_null(strstr(out, "\"0.01\""));
    assert_non_null(strstr(out, "\"suite\""));
    assert_non_null(strstr(out, "FINISHED"));
    free(out);

    const char *get[] = {"artifacts", run, "--get", "out/result.txt", NULL};
    assert_int_equal(cli_run(&s, &out, get), 0);
    assert_string_equal(out, "weights 0.1 0.2 0.3\n");
    free(out);
    scratch_remove(&s);
}

static void records_logged_before_the_agent_starts_are_stored(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "late");
    struct producer_spec ps = {.points = 20000, .keys = 2, .lane_size = 16u << 20};
    struct producer_extras x = {.params = 10};
    int fd;
    pid_t prod = e2e_producer_start(ps, &x, &fd);
    char run[33];
    read_run_id(fd, run);
    producer_wait_ok(prod, PRODUCER_TIMEOUT_MS); /* the producer is gone before any agent ran */
    pid_t agent = agent_start(&s, NULL);
    assert_int_equal(agent_stop(&s, agent), 0);
    for (int k = 0; k < ps.keys; k++)
        expect_values(&s, run, k, ps.points);
    scratch_remove(&s);
}

static void params_spilled_from_a_full_lane_reach_the_store(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "spill");
    /* 64 KiB lane, no agent: 3,000 params cannot fit, most go to the spill file. */
    struct producer_spec ps = {.points = 0, .keys = 1, .lane_size = 64u << 10};
    struct producer_extras x = {.params = 3000};
    int fd;
    pid_t prod = e2e_producer_start(ps, &x, &fd);
    char run[33];
    read_run_id(fd, run);
    producer_wait_ok(prod, PRODUCER_TIMEOUT_MS);
    pid_t agent = agent_start(&s, NULL);
    assert_int_equal(agent_stop(&s, agent), 0);
    char *out;
    const char *show[] = {"runs", "show", run, "--json", NULL};
    assert_int_equal(cli_run(&s, &out, show), 0);
    for (int i = 0; i < x.params; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"p%d\": \"value-%d\"", i, i);
        char want2[64];
        snprintf(want2, sizeof want2, "\"p%d\":\"value-%d\"", i, i);
        if (!strstr(out, want) && !strstr(out, want2))
            fail_msg("param p%d missing after spill", i);
    }
    assert_non_null(strstr(out, "FINISHED")); /* the run end was spilled too, after them */
    free(out);
    scratch_remove(&s);
}

static void agent_killed_mid_stream_loses_and_duplicates_nothing(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "kill");
    long points = env_long("E2E_POINTS", 1500000);
    int kills = (int)env_long("E2E_KILLS", 10);
    /* Paced, and with a lane that holds every record (256 MiB; tmpfs backs only what is
     * written): the agent's downtime, however slow its restarts under a sanitizer on a
     * loaded machine, can never fill it, and what is tested is loss and duplication. */
    struct producer_spec ps = {.points = points, .keys = 2, .per_second = points / 4,
                               .lane_size = 256u << 20};
    struct producer_extras x = {0};
    pid_t agent = agent_start(&s, NULL);
    int fd;
    pid_t prod = e2e_producer_start(ps, &x, &fd);
    char run[33];
    read_run_id(fd, run);
    unsigned seed = (unsigned)time(NULL);
    printf("# kill test: seed %u, %d kills, %ld points x 2 keys\n", seed, kills, points);
    for (int i = 0; i < kills; i++) {
        sleep_ms(50 + rand_r(&seed) % 300);
        agent_kill(agent);
        agent = agent_start(&s, NULL);
    }
    producer_wait_ok(prod, PRODUCER_TIMEOUT_MS);
    assert_int_equal(agent_stop(&s, agent), 0);
    for (int k = 0; k < ps.keys; k++)
        expect_values(&s, run, k, ps.points);
    scratch_remove(&s);
}

struct reopen_ctx {
    st_run *run;
    const char *key, *value;
};

static void *log_one_param(void *arg)
{
    struct reopen_ctx *x = arg;
    st_log_param(x->run, x->key, x->value);
    return NULL; /* the thread's exit closes its lane */
}

static void a_lane_reopened_after_the_agent_died_before_freeing_it_loses_nothing(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "reopen");
    setenv("SIDETRACK_AGENT_CRASH_AT", "before-free", 1);
    pid_t agent = agent_start(&s, NULL);
    unsetenv("SIDETRACK_AGENT_CRASH_AT");
    int go[2], idp[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(idp), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        close(idp[0]);
        st_client *c;
        st_run *run;
        if (st_open(&c, NULL) < 0 || st_run_start(c, "e2e", "reopen", &run) < 0)
            _exit(10);
        if (write(idp[1], st_run_id(run), 33) != 33)
            _exit(11);
        pthread_t th;
        struct reopen_ctx first = {run, "first", "1"}, second = {run, "second", "2"};
        pthread_create(&th, NULL, log_one_param, &first);
        pthread_join(th, NULL);
        char b;
        if (read(go[0], &b, 1) != 1) /* the agent drained that lane and died before freeing */
            _exit(12);
        pthread_create(&th, NULL, log_one_param, &second); /* reopens the same closed lane */
        pthread_join(th, NULL);
        st_run_end(run, ST_RUN_FINISHED);
        st_close(c);
        _exit(0);
    }
    close(go[0]);
    close(idp[1]);
    char run[33];
    read_run_id(idp[0], run);
    int st = wait_for(agent, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 137);
    assert_int_equal(write(go[1], "x", 1), 1);
    close(go[1]);
    producer_wait_ok(pid, PRODUCER_TIMEOUT_MS);
    agent = agent_start(&s, NULL);
    assert_int_equal(agent_stop(&s, agent), 0);
    char *out;
    const char *show[] = {"runs", "show", run, "--json", NULL};
    assert_int_equal(cli_run(&s, &out, show), 0);
    assert_non_null(strstr(out, "\"first\""));
    if (!strstr(out, "\"second\""))
        fail_msg("the param logged into the reopened lane was lost:\n%s", out);
    free(out);
    scratch_remove(&s);
}

static void a_second_agent_on_the_same_store_is_refused(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "twice");
    pid_t a1 = agent_start(&s, NULL);
    sleep_ms(300);
    pid_t a2 = agent_start(&s, NULL);
    int st = wait_for(a2, 10000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_int_equal(agent_stop(&s, a1), 0);
    scratch_remove(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_logged_are_read_back_exactly_by_the_cli),
        cmocka_unit_test(two_runs_logging_the_same_keys_from_one_thread_stay_apart),
        cmocka_unit_test(records_logged_before_the_agent_starts_are_stored),
        cmocka_unit_test(params_spilled_from_a_full_lane_reach_the_store),
        cmocka_unit_test(agent_killed_mid_stream_loses_and_duplicates_nothing),
        cmocka_unit_test(a_lane_reopened_after_the_agent_died_before_freeing_it_loses_nothing),
        cmocka_unit_test(a_second_agent_on_the_same_store_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
