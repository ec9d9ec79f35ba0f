/* agent/config.c: the file's syntax, each kind of error with its exact FILE:LINE text, and
 * the precedence defaults < file < environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[256];

static void write_conf(const char *text)
{
    snprintf(path, sizeof path, "/tmp/sidetrack-config-test-%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void clear_env(void)
{
    const char *vars[] = {"SIDETRACK_DATA", "SIDETRACK_RING_DIR", "SIDETRACK_FSYNC_INTERVAL",
                          "SIDETRACK_SERVER", "SIDETRACK_SERVER_KEY", "SIDETRACK_KEY",
                          "SIDETRACK_SERVER_TOKEN", "SIDETRACK_CA", "SIDETRACK_SYNC_INTERVAL",
                          "SIDETRACK_SYNC_BACKLOG", "SIDETRACK_MLFLOW",
                          "SIDETRACK_MLFLOW_INTERVAL", "SIDETRACK_SYSTEM_METRICS_INTERVAL",
                          "SIDETRACK_VERBOSE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
}

static int setup(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    clear_env();
    return 0;
}

static void good_file(void **state)
{
    (void)state;
    write_conf("# the agent\n\n   # indented comment\n"
               "data = /srv/st data\n"
               "ring-dir=/dev/shm/x\n"
               "\tfsync-interval\t=  250  \r\n"
               "server = tcp://10.0.0.1:5555\n"
               "sync-interval = 0\n"
               "sync-backlog = 1073741824\n"
               "system-metrics-interval = 86400\n"
               "verbose = Yes\n");
    struct agent_config c;
    char err[1024] = "";
    assert_int_equal(agent_config_load(&c, path, err, sizeof err), 0);
    assert_string_equal(c.str[ACFG_DATA], "/srv/st data");
    assert_string_equal(c.str[ACFG_RING_DIR], "/dev/shm/x");
    assert_string_equal(c.str[ACFG_SERVER], "tcp://10.0.0.1:5555");
    assert_null(c.str[ACFG_KEY]);
    assert_int_equal(c.num[ACFG_FSYNC_INTERVAL], 250);
    assert_int_equal(c.num[ACFG_SYNC_INTERVAL], 0);
    assert_int_equal(c.num[ACFG_SYNC_BACKLOG], 1u << 30);
    assert_int_equal(c.num[ACFG_SYSTEM_METRICS_INTERVAL], 86400);
    assert_int_equal(c.num[ACFG_VERBOSE], 1);
    assert_int_equal(c.num[ACFG_MLFLOW_INTERVAL], 60); /* not in the file: the default */
    assert_true(c.set & (1u << ACFG_SYNC_INTERVAL));
    assert_false(c.set & (1u << ACFG_MLFLOW_INTERVAL));
    agent_config_free(&c);
}

static void defaults_without_file(void **state)
{
    (void)state;
    write_conf("");
    struct agent_config c;
    char err[1024] = "";
    assert_int_equal(agent_config_load(&c, path, err, sizeof err), 0);
    assert_int_equal(c.set, 0);
    assert_int_equal(c.num[ACFG_FSYNC_INTERVAL], 100);
    assert_int_equal(c.num[ACFG_SYNC_INTERVAL], 1000);
    assert_int_equal(c.num[ACFG_SYNC_BACKLOG], 10000);
    assert_int_equal(c.num[ACFG_SYSTEM_METRICS_INTERVAL], 10);
    assert_int_equal(c.num[ACFG_VERBOSE], 0);
    agent_config_free(&c);
}

static void expect_error(const char *text, const char *want_after_path)
{
    write_conf(text);
    struct agent_config c;
    char err[1024] = "", want[1400];
    assert_int_equal(agent_config_load(&c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:%s", path, want_after_path);
    assert_string_equal(err, want);
    for (int k = 0; k < ACFG_NKEYS; k++)
        assert_null(c.str[k]);
}

static void errors_name_file_and_line(void **state)
{
    (void)state;
    expect_error("# x\nverbos = 1\n",
                 "2: unknown key 'verbos' (known: data ring-dir fsync-interval server "
                 "server-key key server-token ca sync-interval sync-backlog mlflow "
                 "mlflow-interval system-metrics-interval metrics-listen verbose)");
    expect_error("data = /d\n\nfsync-interval = abc\n",
                 "3: fsync-interval: expected a whole number of milliseconds from 0 to "
                 "3600000, got 'abc'");
    expect_error("fsync-interval = 3600001\n",
                 "1: fsync-interval: expected a whole number of milliseconds from 0 to "
                 "3600000, got '3600001'");
    expect_error("mlflow-interval = -1\n",
                 "1: mlflow-interval: expected a whole number of seconds from 0 to 86400, "
                 "got '-1'");
    expect_error("sync-backlog = 10k\n",
                 "1: sync-backlog: expected a whole number from 0 to 1073741824, got '10k'");
    expect_error("verbose = maybe\n",
                 "1: verbose: expected true or false (or yes/no, on/off, 1/0), got 'maybe'");
    expect_error("data =\n", "1: data: expected a path, got nothing");
    expect_error("server = \n", "1: server: expected a URL, got nothing");
    expect_error("\n\n\ndata /srv\n", "4: expected 'key = value', got 'data /srv'");
}

static void missing_file_is_an_error(void **state)
{
    (void)state;
    struct agent_config c;
    char err[1024] = "";
    assert_int_equal(agent_config_load(&c, "/nonexistent/agent.conf", err, sizeof err), -1);
    assert_string_equal(err, "cannot read the configuration file /nonexistent/agent.conf: "
                             "No such file or directory");
}

static void environment_overrides_file(void **state)
{
    (void)state;
    write_conf("sync-interval = 500\nfsync-interval = 7\nring-dir = /file/ring\n");
    setenv("SIDETRACK_SYNC_INTERVAL", "2500", 1);
    setenv("SIDETRACK_RING_DIR", "/env/ring", 1);
    setenv("SIDETRACK_VERBOSE", "on", 1);
    setenv("SIDETRACK_DATA", "", 1); /* empty: unset */
    struct agent_config c;
    char err[1024] = "";
    assert_int_equal(agent_config_load(&c, path, err, sizeof err), 0);
    assert_int_equal(c.num[ACFG_SYNC_INTERVAL], 2500);
    assert_int_equal(c.num[ACFG_FSYNC_INTERVAL], 7);
    assert_string_equal(c.str[ACFG_RING_DIR], "/env/ring");
    assert_int_equal(c.num[ACFG_VERBOSE], 1);
    assert_null(c.str[ACFG_DATA]);
    agent_config_free(&c);

    setenv("SIDETRACK_FSYNC_INTERVAL", "soon", 1);
    assert_int_equal(agent_config_load(&c, path, err, sizeof err), -1);
    assert_string_equal(err, "$SIDETRACK_FSYNC_INTERVAL: fsync-interval: expected a whole "
                             "number of milliseconds from 0 to 3600000, got 'soon'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(good_file, setup, teardown),
        cmocka_unit_test_setup_teardown(defaults_without_file, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_name_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_file_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(environment_overrides_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
