/* test_faults.c — storage faults (invariant 6): the LMDB map fills up, the disk fills up.
 * The agent must grow the map and go on; on a full disk it must stop consuming (records wait
 * in the ring), keep retrying, and resume by itself when space returns, with nothing lost or
 * corrupted. The full disk is a size-limited tmpfs mounted over the store (the test runs as
 * root; where mounting is not allowed the test is skipped and says so). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common.h"
#include "shmlog.h"

#include <sidetrack.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const struct series VALUES = {0.125, 5};

static int log_before(st_run *run, const void *arg)
{
    (void)arg;
    st_log_param(run, "before", "full");
    return 0;
}

static int log_after(st_run *run, const void *arg)
{
    (void)arg;
    st_log_param(run, "after", "full");
    return 0;
}

/* A producer of points values of "m0" (paced at per_second), between the params "before" and
 * "after"; the read end of the pipe its run id comes through goes to *id_fd. Exits 3 if
 * anything was dropped or lost. */
static pid_t producer(long points, long per_second, int *id_fd)
{
    struct producer_spec ps = {.experiment = "faults", .points = points, .keys = 1,
                               .per_second = per_second, .lane_size = 128u << 20,
                               .values = VALUES, .before = log_before, .after = log_after};
    return producer_start(&ps, id_fd);
}

/* The run holds exactly points values of m0 and both params, and it finished. */
static void expect_exact(const struct scratch *s, const char *run, long points)
{
    expect_history(s, run, 0, &VALUES, 0, points);
    char *out;
    const char *show[] = {"runs", "show", run, "--json", NULL};
    assert_int_equal(cli_run(s, &out, show), 0);
    assert_non_null(strstr(out, "\"before\""));
    assert_non_null(strstr(out, "\"after\""));
    assert_non_null(strstr(out, "FINISHED"));
    free(out);
}

static void a_full_map_is_grown_and_nothing_is_lost(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "mapfull");
    long points = 2000000; /* ~16 MB of blocks into a 1 MiB map: several growths */
    const char *extra[] = {"--map-size", "1", NULL};
    pid_t agent = agent_start(&s, extra);
    int fd;
    pid_t prod = producer(points, 0, &fd);
    char run[33];
    read_run_id(fd, run);
    producer_wait_ok(prod, 120000);
    assert_int_equal(agent_stop(&s, agent), 0);
    expect_exact(&s, run, points);
    scratch_remove(&s);
}

static void a_full_disk_stops_the_drain_until_space_returns(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "diskfull");
    if (mount("tmpfs", s.data, "tmpfs", 0, "size=3m") != 0) {
        scratch_remove(&s);
        skip(); /* not allowed to mount here */
    }
    long points = 1500000; /* ~12 MB of blocks: it cannot fit in 3 MB */
    const char *extra[] = {"--map-size", "64", NULL};
    pid_t agent = agent_start(&s, extra);
    int fd;
    pid_t prod = producer(points, 1000000, &fd);
    char run[33];
    read_run_id(fd, run);
    /* Let the disk fill and the agent hit it a few times; the ring (128 MiB) holds the rest. */
    for (int i = 0; i < 300; i++) {
        struct statvfs vfs;
        if (statvfs(s.data, &vfs) == 0 && vfs.f_bavail * vfs.f_bsize < 64 * 1024)
            break;
        sleep_ms(10);
    }
    sleep_ms(2500);
    int st;
    assert_int_equal(waitpid(agent, &st, WNOHANG), 0); /* still alive, not crashed */
    /* Space returns: the agent must resume by itself. */
    assert_int_equal(mount("tmpfs", s.data, "tmpfs", MS_REMOUNT, "size=256m"), 0);
    producer_wait_ok(prod, 120000);
    assert_int_equal(agent_stop(&s, agent), 0);
    expect_exact(&s, run, points);
    if (umount(s.data) != 0)
        fail_msg("umount %s failed", s.data);
    scratch_remove(&s);
}

static void a_ring_truncated_under_the_agent_is_dropped_and_the_agent_goes_on(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "sigbus");
    pid_t agent = agent_start(&s, NULL);
    agent_wait_ready(s.data, agent);
    char path[512];
    snprintf(path, sizeof path, "%s/other.ring", s.rings);
    struct shmlog_geometry g = {.lane_count = 4, .lane_size = 64u << 10};
    struct shmlog_arena a;
    assert_int_equal(shmlog_arena_open(&a, path, SHMLOG_CREATE, &g), 0);
    struct shmlog_producer p;
    assert_int_equal(shmlog_producer_claim(&p, &a, shmlog_pid_start(getpid())), 0);
    for (int i = 0; i < 500 && atomic_load(&a.hdr->agent_pid) == 0; i++)
        sleep_ms(10); /* the agent has mapped it */
    assert_int_not_equal(atomic_load(&a.hdr->agent_pid), 0);
    assert_int_equal(truncate(path, 4096), 0); /* lanes gone under the agent's mapping */
    sleep_ms(300);
    int st;
    assert_int_equal(waitpid(agent, &st, WNOHANG), 0); /* it survived its SIGBUS */
    shmlog_arena_close(&a);
    int fd;
    pid_t prod = producer(10000, 0, &fd);
    char run[33];
    read_run_id(fd, run);
    producer_wait_ok(prod, 60000);
    assert_int_equal(agent_stop(&s, agent), 0);
    expect_exact(&s, run, 10000); /* other rings are drained as before */
    scratch_remove(&s);
}

static void write_junk(const char *path, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    unsigned seed = 7;
    for (size_t i = 0; i < n; i++)
        fputc(rand_r(&seed) & 0xff, f);
    fclose(f);
}

static void a_corrupted_store_is_refused_and_left_as_it_is(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "badstore");
    char path[512];
    snprintf(path, sizeof path, "%s/data.mdb", s.data);
    write_junk(path, 64 * 1024);
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    pid_t agent = agent_start(&s, NULL);
    int st = wait_for(agent, 20000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1); /* refused, with its message on stderr */
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, before.st_size); /* not "repaired" into something else */
    assert_true(after.st_mtime == before.st_mtime);
    char *out;
    const char *list[] = {"runs", "list", NULL};
    assert_int_equal(cli_run(&s, &out, list), 1); /* the CLI refuses it too, no crash */
    free(out);
    scratch_remove(&s);
}

static void a_foreign_file_in_the_ring_directory_is_refused_and_others_drain(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "foreign");
    pid_t agent = agent_start(&s, NULL);
    agent_wait_ready(s.data, agent);
    char path[512];
    snprintf(path, sizeof path, "%s/junk.ring", s.rings);
    write_junk(path, 1 << 20);
    snprintf(path, sizeof path, "%s/short.ring", s.rings);
    write_junk(path, 100);
    int fd;
    pid_t prod = producer(20000, 0, &fd);
    char run[33];
    read_run_id(fd, run);
    producer_wait_ok(prod, 60000);
    assert_int_equal(agent_stop(&s, agent), 0);
    expect_exact(&s, run, 20000);
    scratch_remove(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_full_map_is_grown_and_nothing_is_lost),
        cmocka_unit_test(a_full_disk_stops_the_drain_until_space_returns),
        cmocka_unit_test(a_ring_truncated_under_the_agent_is_dropped_and_the_agent_goes_on),
        cmocka_unit_test(a_corrupted_store_is_refused_and_left_as_it_is),
        cmocka_unit_test(a_foreign_file_in_the_ring_directory_is_refused_and_others_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
