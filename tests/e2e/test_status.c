/* test_status.c — `sidetrack status` with real processes: with no agent (exit 1, "not
 * running", the producer's records shown waiting in its lane), and with a running agent (exit
 * 0, the producer's lane with its pid, uid and run, the records stored, the durability window,
 * human and JSON output alike).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common.h"

#include <sidetrack.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POINTS 1000

/* Forks a producer that logs POINTS metric points to a new run, writes the run id (33 bytes)
 * to *id_fd's pipe, then, with hold, waits until *hold_fd's pipe is closed before it ends its
 * run (its lane stays in use meanwhile). Exits 0, or >= 10 on a failure. */
static pid_t holding_producer_start(int *id_fd, int *hold_fd)
{
    int p[2], h[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pipe(h), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        close(p[1]);
        close(h[0]);
        *id_fd = p[0];
        *hold_fd = h[1];
        return pid;
    }
    close(p[0]);
    close(h[1]);
    st_options opt = {.lane_size = 1u << 20};
    st_client *c;
    st_run *run;
    st_key key;
    if (st_open(&c, &opt) < 0 || st_run_start(c, "status", "producer", &run) < 0 ||
        st_key_intern(c, "loss", &key) < 0)
        _exit(10);
    for (long i = 0; i < POINTS; i++)
        st_log_metric(run, key, 1.0 / (double)(i + 1), i);
    if (write(p[1], st_run_id(run), 33) != 33)
        _exit(11);
    close(p[1]);
    char b;
    while (read(h[0], &b, 1) > 0) {
    }
    st_run_end(run, ST_RUN_FINISHED);
    st_close(c);
    _exit(0);
}

static void producer_finish(pid_t pid, int hold_fd)
{
    close(hold_fd);
    producer_wait_ok(pid, 60000);
}

/* The value of "key": in the lane object of a JSON document that holds "pid": pid. */
static long lane_field(const char *json, pid_t pid, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"pid\": %d,", (int)pid);
    const char *lane = strstr(json, pat);
    if (!lane)
        return -1;
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(lane, pat);
    if (!p)
        return -1;
    return atol(p + strlen(pat));
}

static void status_without_an_agent_shows_waiting_records(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "status-noagent");
    int id_fd, hold_fd;
    pid_t prod = holding_producer_start(&id_fd, &hold_fd);
    char run[33];
    read_run_id(id_fd, run);

    char *out;
    const char *human[] = {"status", NULL};
    assert_int_equal(cli_run(&s, &out, human), 1);
    assert_non_null(strstr(out, "sidetrackd is not running"));
    char pid_s[32];
    snprintf(pid_s, sizeof pid_s, " %d ", (int)prod);
    assert_non_null(strstr(out, pid_s));
    assert_non_null(strstr(out, "active"));
    free(out);

    const char *js[] = {"status", "--json", NULL};
    assert_int_equal(cli_run(&s, &out, js), 1);
    assert_non_null(strstr(out, "\"healthy\": false"));
    assert_non_null(strstr(out, "\"running\": false"));
    assert_non_null(strstr(out, "\"store\": null"));
    /* run start, key and run definitions, POINTS metrics: all waiting in the ring */
    long waiting = lane_field(out, prod, "waiting_records");
    assert_true(waiting >= POINTS);
    assert_true(lane_field(out, prod, "lag_bytes") > 0);
    assert_int_equal(lane_field(out, prod, "uid"), (long)getuid());
    free(out);

    producer_finish(prod, hold_fd);
    scratch_remove(&s);
}

static void status_with_the_agent_shows_lanes_and_durability(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "status-agent");
    const char *extra[] = {"--fsync-interval", "250", NULL};
    pid_t agent = agent_start(&s, extra);
    int id_fd, hold_fd;
    pid_t prod = holding_producer_start(&id_fd, &hold_fd);
    char run[33];
    read_run_id(id_fd, run);

    /* Wait until the agent has stored the lane's records and published its status. */
    char *out = NULL;
    const char *js[] = {"status", "--json", NULL};
    int rc = -1;
    for (int i = 0; i < 500; i++) {
        free(out);
        rc = cli_run(&s, &out, js);
        if (rc == 0 && lane_field(out, prod, "records") >= POINTS &&
            lane_field(out, prod, "waiting_records") == 0 && strstr(out, run))
            break;
        sleep_ms(20);
    }
    if (rc != 0 || lane_field(out, prod, "records") < POINTS)
        fail_msg("status never showed the drained lane (exit %d):\n%s", rc, out);
    assert_non_null(strstr(out, "\"healthy\": true"));
    assert_non_null(strstr(out, "\"running\": true"));
    assert_non_null(strstr(out, "\"durability_window_ms\": 250"));
    assert_non_null(strstr(out, "\"map_size\": "));
    assert_non_null(strstr(out, "\"last_error\": null"));
    assert_int_equal(lane_field(out, prod, "uid"), (long)getuid());
    assert_int_equal(lane_field(out, prod, "dropped"), 0);
    free(out);

    const char *human[] = {"status", NULL};
    assert_int_equal(cli_run(&s, &out, human), 0);
    assert_non_null(strstr(out, "agent:       running (pid"));
    assert_non_null(strstr(out, "fsync every 250 ms"));
    assert_non_null(strstr(out, "last error:  none"));
    assert_non_null(strstr(out, run));
    char pid_s[32];
    snprintf(pid_s, sizeof pid_s, " %d ", (int)prod);
    assert_non_null(strstr(out, pid_s));
    free(out);

    producer_finish(prod, hold_fd);
    assert_int_equal(agent_stop(&s, agent), 0);

    /* Stopped cleanly: not running, with when it was last seen. */
    assert_int_equal(cli_run(&s, &out, human), 1);
    assert_non_null(strstr(out, "sidetrackd is not running (last seen"));
    assert_non_null(strstr(out, "stopped cleanly"));
    free(out);
    scratch_remove(&s);
}

static void status_usage_errors(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "status-usage");
    char *out;
    const char *extra_arg[] = {"status", "extra", NULL};
    assert_int_equal(cli_run(&s, &out, extra_arg), 2);
    free(out);
    const char *help[] = {"status", "--help", NULL};
    assert_int_equal(cli_run(&s, &out, help), 0);
    assert_non_null(strstr(out, "Exit status"));
    free(out);
    scratch_remove(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_without_an_agent_shows_waiting_records),
        cmocka_unit_test(status_with_the_agent_shows_lanes_and_durability),
        cmocka_unit_test(status_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
