/* conf/conf.c, the daemons' shared configuration engine, with sidetrack-server's key table
 * (server/config.c): every key of the file, each kind of error with its exact text (file,
 * environment, option), enumerations naming their values, the precedence defaults < file <
 * environment < options, and the default file read only when it exists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf.h"
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct conf_table *const T = &server_config_table;
static char path[256];

/* Writes `text` to the file `p`, replacing it. */
static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void write_conf(const char *text)
{
    write_file(path, text);
}

/* No file, and none of the variables either daemon reads. */
static int clean(void **state)
{
    (void)state;
    unlink(path);
    for (int k = 0; k < SCFG_NKEYS; k++)
        unsetenv(T->keys[k].env);
    unsetenv("SIDETRACK_DATA");
    unsetenv("SIDETRACK_KEY");
    return 0;
}

static int load(struct server_config *c, char *err, size_t errlen)
{
    return conf_load(T, server_config_values(c), path, err, errlen);
}

static void every_key_from_the_file(void **state)
{
    (void)state;
    write_conf("# the central store\n"
               "data = /var/lib/st central\n"
               "zmq = tcp://0.0.0.0:7341\n"
               "key = /etc/sidetrack/server.key\n"
               "allow = /etc/sidetrack/agents.d\n"
               "http = [::]:5000\n"
               "tls-cert = /etc/ssl/st.pem\n"
               "tls-key = /etc/ssl/st.key\n"
               "tokens = /etc/sidetrack/tokens.d\n"
               "api-auth = token\n"
               "http-threads = 256\n"
               "web = off\n"
               "read-only = no\n"
               "verbose = on\n");
    struct server_config c;
    char err[1024] = "";
    assert_int_equal(load(&c, err, sizeof err), 0);
    assert_string_equal(c.str[SCFG_DATA], "/var/lib/st central");
    assert_string_equal(c.str[SCFG_ZMQ], "tcp://0.0.0.0:7341");
    assert_string_equal(c.str[SCFG_KEY], "/etc/sidetrack/server.key");
    assert_string_equal(c.str[SCFG_ALLOW], "/etc/sidetrack/agents.d");
    assert_string_equal(c.str[SCFG_HTTP], "[::]:5000");
    assert_string_equal(c.str[SCFG_TLS_CERT], "/etc/ssl/st.pem");
    assert_string_equal(c.str[SCFG_TLS_KEY], "/etc/ssl/st.key");
    assert_string_equal(c.str[SCFG_TOKENS], "/etc/sidetrack/tokens.d");
    assert_string_equal(c.str[SCFG_WEB], "off");
    assert_int_equal(c.num[SCFG_API_AUTH], SCFG_API_AUTH_TOKEN);
    assert_int_equal(c.num[SCFG_HTTP_THREADS], 256);
    assert_int_equal(c.num[SCFG_READ_ONLY], 0);
    assert_int_equal(c.num[SCFG_VERBOSE], 1);
    assert_int_equal(c.set, (1u << SCFG_NKEYS) - 1);
    conf_free(T, server_config_values(&c));
    assert_null(c.str[SCFG_DATA]);
    assert_int_equal(c.set, 0);
}

static void defaults_and_last_value_wins(void **state)
{
    (void)state;
    write_conf("http = 127.0.0.1:1\nhttp = 127.0.0.1:2\napi-auth = token\napi-auth = open\n");
    struct server_config c;
    char err[1024] = "";
    assert_int_equal(load(&c, err, sizeof err), 0);
    assert_string_equal(c.str[SCFG_HTTP], "127.0.0.1:2");
    assert_int_equal(c.num[SCFG_API_AUTH], SCFG_API_AUTH_OPEN);
    assert_null(c.str[SCFG_DATA]);
    assert_null(c.str[SCFG_ZMQ]); /* the server's own default endpoint applies */
    assert_int_equal(c.num[SCFG_HTTP_THREADS], 4);
    assert_int_equal(c.num[SCFG_READ_ONLY], 0);
    assert_int_equal(c.set, (1u << SCFG_HTTP) | (1u << SCFG_API_AUTH));
    conf_free(T, server_config_values(&c));
}

/* What loading `text` as the file says after "PATH:", having left nothing behind. */
static const char *error_after_path(const char *text)
{
    static char err[1024];
    struct server_config c;
    write_conf(text);
    assert_int_equal(load(&c, err, sizeof err), -1);
    for (int k = 0; k < SCFG_NKEYS; k++)
        assert_null(c.str[k]);
    assert_int_equal(c.set, 0);
    size_t n = strlen(path);
    assert_memory_equal(err, path, n);
    assert_int_equal(err[n], ':');
    return err + n + 1;
}

static void expect_error(const char *text, const char *want_after_path)
{
    assert_string_equal(error_after_path(text), want_after_path);
}

static void errors_name_file_line_and_expected(void **state)
{
    (void)state;
    expect_error("data = /d\napi-auth = maybe\n",
                 "2: api-auth: expected open or token, got 'maybe'");
    expect_error("api-auth = Token\n", "1: api-auth: expected open or token, got 'Token'");
    expect_error("http-threads = 0\n",
                 "1: http-threads: expected a whole number from 1 to 256, got '0'");
    expect_error("\nhttp-threads = 257\n",
                 "2: http-threads: expected a whole number from 1 to 256, got '257'");
    expect_error("read-only = sometimes\n",
                 "1: read-only: expected true or false (or yes/no, on/off, 1/0), got "
                 "'sometimes'");
    expect_error("zmq =\n", "1: zmq: expected an endpoint (tcp://HOST:PORT) or off, got nothing");
    expect_error("http = \n", "1: http: expected an address (HOST:PORT), got nothing");
    expect_error("tls-cert =\n", "1: tls-cert: expected a path, got nothing");
    expect_error("# x\n\nlisten = :5000\n",
                 "3: unknown key 'listen' (known: data zmq key allow http tls-cert tls-key "
                 "tokens api-auth http-threads web read-only verbose)");
    expect_error("config = /etc/x.conf\n",
                 "1: unknown key 'config' (known: data zmq key allow http tls-cert tls-key "
                 "tokens api-auth http-threads web read-only verbose)");
    expect_error("--http 127.0.0.1:5000\n",
                 "1: expected 'key = value', got '--http 127.0.0.1:5000'");
}

static void environment_overrides_the_file(void **state)
{
    (void)state;
    write_conf("data = /file/data\nhttp-threads = 8\nhttp = 127.0.0.1:5000\n");
    static const char *const env[][2] = {
        {"SIDETRACK_SRV_HTTP_THREADS", "16"},
        {"SIDETRACK_SRV_API_AUTH", "token"},
        {"SIDETRACK_SRV_READ_ONLY", "yes"},
        {"SIDETRACK_SRV_HTTP", ""}, /* empty: unset */
        /* The agent's variables are not the server's. */
        {"SIDETRACK_DATA", "/agent/data"},
        {"SIDETRACK_KEY", "/agent/key"},
    };
    for (size_t i = 0; i < sizeof env / sizeof *env; i++)
        setenv(env[i][0], env[i][1], 1);
    struct server_config c;
    char err[1024] = "";
    assert_int_equal(load(&c, err, sizeof err), 0);
    assert_string_equal(c.str[SCFG_DATA], "/file/data");
    assert_null(c.str[SCFG_KEY]);
    assert_string_equal(c.str[SCFG_HTTP], "127.0.0.1:5000");
    assert_int_equal(c.num[SCFG_HTTP_THREADS], 16);
    assert_int_equal(c.num[SCFG_API_AUTH], SCFG_API_AUTH_TOKEN);
    assert_int_equal(c.num[SCFG_READ_ONLY], 1);
    conf_free(T, server_config_values(&c));

    setenv("SIDETRACK_SRV_API_AUTH", "none", 1);
    assert_int_equal(load(&c, err, sizeof err), -1);
    assert_string_equal(err, "$SIDETRACK_SRV_API_AUTH: api-auth: expected open or token, got "
                             "'none'");
    assert_null(c.str[SCFG_DATA]);
}

static void every_variable_has_the_server_prefix(void **state)
{
    (void)state;
    /* SIDETRACK_<KEY> is the agent's (SIDETRACK_DATA, SIDETRACK_SERVER_KEY, ...). */
    for (int k = 0; k < SCFG_NKEYS; k++) {
        char want[128] = "SIDETRACK_SRV_";
        size_t n = strlen(want);
        for (const char *p = T->keys[k].name; *p && n + 1 < sizeof want; p++)
            want[n++] = *p == '-' ? '_' : (char)(*p - ('a' <= *p && *p <= 'z' ? 32 : 0));
        want[n] = '\0';
        assert_string_equal(T->keys[k].env, want);
    }
}

static void options_override_and_are_checked_alike(void **state)
{
    (void)state;
    write_conf("data = /file/data\nhttp = 127.0.0.1:5000\napi-auth = token\n");
    struct server_config file, cli = {0};
    char err[1024] = "";
    assert_int_equal(load(&file, err, sizeof err), 0);
    struct conf_values o = server_config_values(&cli);
    assert_int_equal(conf_set(T, o, SCFG_HTTP, "127.0.0.1:6000", "--http", err, sizeof err), 0);
    assert_int_equal(conf_set(T, o, SCFG_API_AUTH, "open", "--api-auth", err, sizeof err), 0);
    assert_int_equal(conf_set(T, o, SCFG_VERBOSE, "true", "--verbose", err, sizeof err), 0);
    assert_int_equal(conf_set(T, o, SCFG_API_AUTH, "maybe", "--api-auth", err, sizeof err), -1);
    assert_string_equal(err, "--api-auth: expected open or token, got 'maybe'");
    assert_int_equal(conf_set(T, o, SCFG_HTTP_THREADS, "4x", "--http-threads", err, sizeof err),
                     -1);
    assert_string_equal(err, "--http-threads: expected a whole number from 1 to 256, got '4x'");

    conf_overlay(T, server_config_values(&file), o);
    assert_string_equal(file.str[SCFG_DATA], "/file/data");
    assert_string_equal(file.str[SCFG_HTTP], "127.0.0.1:6000");
    assert_int_equal(file.num[SCFG_API_AUTH], SCFG_API_AUTH_OPEN);
    assert_int_equal(file.num[SCFG_VERBOSE], 1);
    assert_null(cli.str[SCFG_HTTP]); /* moved, not copied */
    assert_int_equal(cli.set, 0);
    conf_free(T, server_config_values(&file));
}

/* The engine itself, over a table of its own: a default path read only when it exists, a
 * path given that must exist, and an enumeration of three. */
enum { K_MODE, K_DIR, K_NKEYS };
static char default_path[256];
static const struct conf_key test_keys[K_NKEYS] = {
    [K_MODE] = {"mode", "SIDETRACK_TEST_CONF_MODE", CONF_CHOICE, 2, 1, .choices = "a|bb|c"},
    [K_DIR] = CONF_KEY("dir", "SIDETRACK_TEST_CONF_DIR", CONF_PATH, 0, 0),
};
static const struct conf_table test_table = {test_keys, K_NKEYS, default_path};

static void the_default_file_is_optional_a_given_one_is_not(void **state)
{
    (void)state;
    snprintf(default_path, sizeof default_path, "/tmp/sidetrack-conf-default-%d.conf",
             (int)getpid());
    unlink(default_path);
    char *str[K_NKEYS];
    uint32_t num[K_NKEYS], set;
    struct conf_values v = {str, num, &set};
    char err[1024] = "";

    assert_null(conf_path(&test_table, NULL));
    assert_int_equal(conf_load(&test_table, v, NULL, err, sizeof err), 0);
    assert_int_equal(num[K_MODE], 1); /* the default: bb */
    assert_null(str[K_DIR]);
    assert_int_equal(set, 0);

    write_file(default_path, "dir = /x\nmode = c\n");
    assert_string_equal(conf_path(&test_table, NULL), default_path);
    assert_int_equal(conf_load(&test_table, v, NULL, err, sizeof err), 0);
    assert_string_equal(str[K_DIR], "/x");
    assert_int_equal(num[K_MODE], 2);
    conf_free(&test_table, v);

    write_file(default_path, "mode = d\n");
    assert_int_equal(conf_load(&test_table, v, NULL, err, sizeof err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s:1: mode: expected a, bb or c, got 'd'", default_path);
    assert_string_equal(err, want);
    unlink(default_path);

    assert_int_equal(conf_load(&test_table, v, "/nonexistent/server.conf", err, sizeof err), -1);
    assert_string_equal(err, "cannot read the configuration file /nonexistent/server.conf: "
                             "No such file or directory");
    assert_int_equal(conf_key_find(&test_table, "dir"), K_DIR);
    assert_int_equal(conf_key_find(&test_table, "nope"), -1);
    assert_string_equal(conf_key_name(&test_table, K_MODE), "mode");
    assert_null(conf_key_name(&test_table, K_NKEYS));
}

/* systemd/server.conf.example shows every key, each line of it valid once uncommented. */
static void the_example_file_names_every_key(void **state)
{
    (void)state;
    const char *src = getenv("SIDETRACK_SOURCE_DIR");
    assert_non_null(src);
    char example[1024];
    snprintf(example, sizeof example, "%s/systemd/server.conf.example", src);
    FILE *in = fopen(example, "r");
    assert_non_null(in);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    char line[1024];
    while (fgets(line, sizeof line, in)) {
        /* "# key = value" is a setting; other comments are prose with no " = " after a word. */
        size_t word = strspn(line + 2, "abcdefghijklmnopqrstuvwxyz-");
        bool setting = !strncmp(line, "# ", 2) && word && !strncmp(line + 2 + word, " = ", 3);
        fputs(setting ? line + 2 : line, out);
    }
    fclose(in);
    fclose(out);
    struct server_config c;
    char err[1024] = "";
    assert_int_equal(load(&c, err, sizeof err), 0);
    assert_int_equal(c.set, (1u << SCFG_NKEYS) - 1);
    assert_int_equal(c.num[SCFG_HTTP_THREADS], 4);
    assert_int_equal(c.num[SCFG_API_AUTH], SCFG_API_AUTH_OPEN);
    assert_string_equal(c.str[SCFG_ZMQ], SERVER_DEFAULT_ENDPOINT);
    conf_free(T, server_config_values(&c));
}

int main(void)
{
    /* Each test leaves no file and no variable behind; the group starts from none. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(every_key_from_the_file, clean),
        cmocka_unit_test_teardown(defaults_and_last_value_wins, clean),
        cmocka_unit_test_teardown(errors_name_file_line_and_expected, clean),
        cmocka_unit_test_teardown(environment_overrides_the_file, clean),
        cmocka_unit_test_teardown(every_variable_has_the_server_prefix, clean),
        cmocka_unit_test_teardown(options_override_and_are_checked_alike, clean),
        cmocka_unit_test_teardown(the_default_file_is_optional_a_given_one_is_not, clean),
        cmocka_unit_test_teardown(the_example_file_names_every_key, clean),
    };
    snprintf(path, sizeof path, "/tmp/sidetrack-server-config-test-%d.conf", (int)getpid());
    return cmocka_run_group_tests(tests, clean, NULL);
}
