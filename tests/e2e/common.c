/* common.c — see common.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

double series_value(const struct series *v, long i, int k)
{
    return (double)i * v->slope + k + 1.0 / (double)(i + v->shift);
}

void pacer_start(struct pacer *p, long per_second)
{
    p->per_second = per_second;
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
}

void pacer_step(struct pacer *p, long i)
{
    if (!p->per_second || (i & 1023) != 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double el = (double)(now.tv_sec - p->t0.tv_sec) + (double)(now.tv_nsec - p->t0.tv_nsec) / 1e9;
    double due = (double)i / (double)p->per_second;
    if (due > el)
        sleep_us((long)((due - el) * 1e6));
}

pid_t producer_fork(const struct producer_spec *ps, int wfd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    st_options opt = {.lane_size = ps->lane_size};
    st_client *c;
    if (st_open(&c, &opt) < 0)
        _exit(10);
    st_run *run;
    if (st_run_start(c, ps->experiment, ps->name, &run) < 0)
        _exit(11);
    if (write(wfd, st_run_id(run), 33) != 33)
        _exit(12);
    close(wfd);
    if (ps->before && ps->before(run, ps->arg) < 0)
        _exit(13);
    st_key keys[8];
    if (ps->keys > 8)
        _exit(14);
    for (int k = 0; k < ps->keys; k++) {
        char name[32];
        snprintf(name, sizeof name, "m%d", k);
        if (st_key_intern(c, name, &keys[k]) < 0)
            _exit(14);
    }
    struct pacer pace;
    pacer_start(&pace, ps->per_second);
    for (long i = 0; i < ps->points; i++) {
        for (int k = 0; k < ps->keys; k++)
            st_log_metric(run, keys[k], series_value(&ps->values, i, k), i);
        pacer_step(&pace, i);
    }
    if (ps->after && ps->after(run, ps->arg) < 0)
        _exit(15);
    st_stats s;
    st_stats_get(c, &s);
    st_run_end(run, ST_RUN_FINISHED);
    st_close(c);
    _exit(s.dropped_metrics || s.lost_records ? 3 : 0);
}

pid_t producer_start(const struct producer_spec *ps, int *id_fd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = producer_fork(ps, p[1]);
    close(p[1]);
    *id_fd = p[0];
    return pid;
}

void producer_wait_ok(pid_t pid, int timeout_ms)
{
    int st = wait_for(pid, timeout_ms);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* 3 would mean drops: the test's pacing is wrong */
}

static void read_one_run_id(int fd, char id[33])
{
    assert_int_equal(read(fd, id, 33), 33);
    assert_int_equal(strlen(id), 32);
}

void read_run_id(int fd, char id[33])
{
    read_one_run_id(fd, id);
    close(fd);
}

void read_run_ids(int fd, int n, char ids[][33])
{
    for (int i = 0; i < n; i++)
        read_one_run_id(fd, ids[i]);
    close(fd);
}

long history_points(const struct scratch *s, const char *run, int k, const struct series *v,
                    double offset)
{
    char key[16];
    snprintf(key, sizeof key, "m%d", k);
    char *out;
    const char *args[] = {"metrics", run, key, "--format", "csv", NULL};
    if (cli_run(s, &out, args) != 0) {
        free(out);
        return -1;
    }
    char *save, *line = strtok_r(out, "\n", &save);
    assert_non_null(line);
    assert_string_equal(line, "step,timestamp,value");
    long n = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        long step;
        long long ts;
        char val[64];
        if (sscanf(line, "%ld,%lld,%63s", &step, &ts, val) != 3)
            fail_msg("run %s key %s: point %ld reads '%s'", run, key, n, line);
        if (step != n) {
            fail_msg("run %s key %s: point %ld has step %ld (lost, duplicated or out of order)",
                     run, key, n, step);
        }
        double want = series_value(v, n, k) + offset;
        if (strtod(val, NULL) != want)
            fail_msg("run %s key %s step %ld: value %s, expected %.17g", run, key, n, val, want);
        assert_true(ts > 1600000000000LL); /* a real wall-clock millisecond stamp */
        n++;
    }
    free(out);
    return n;
}

void expect_history(const struct scratch *s, const char *run, int k, const struct series *v,
                    double offset, long points)
{
    long n = history_points(s, run, k, v, offset);
    if (n < 0)
        fail_msg("run %s key m%d: `sidetrack metrics` failed", run, k);
    if (n != points)
        fail_msg("run %s key m%d: %ld points read back, %ld logged", run, k, n, points);
}
