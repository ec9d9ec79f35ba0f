/* test_users.c — shared nodes (invariant 4): producers of different Unix users, real uids
 * (the test runs as root and forks children that setuid), one agent. A user cannot write into
 * another user's lanes (the ring file is theirs, mode 0600), nor into another user's runs
 * (the agent checks every run id against the uid the kernel reports for the ring), nor trap
 * another user by creating a ring file in their name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proc.h"
#include "shmlog.h"
#include "wire.h"

#include <sidetrack.h>

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { UID_AGENT = 41000, UID_A = 41001, UID_B = 41002, UID_C = 41003 };

/* sidetrackd as its own user, as on a node: not root, with only the two capabilities it needs
 * to serve every user's ring (read and write their 0600 ring files; read their /proc/PID/maps
 * to verify pids). */
static pid_t agent_start_as_own_user(const struct scratch *s)
{
    if (chown(s->data, UID_AGENT, UID_AGENT) != 0)
        return -1;
    char bin[1024];
    bin_path("agent/sidetrackd", bin, sizeof bin);
    pid_t pid = fork();
    if (pid == 0) {
        char uid[32], gid[32];
        snprintf(uid, sizeof uid, "--reuid=%d", UID_AGENT);
        snprintf(gid, sizeof gid, "--regid=%d", UID_AGENT);
        execl("/usr/bin/setpriv", "setpriv", uid, gid, "--clear-groups",
              "--inh-caps=+dac_override,+sys_ptrace", "--ambient-caps=+dac_override,+sys_ptrace",
              bin, "--data", s->data, "--ring-dir", s->rings, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void become(uid_t uid)
{
    if (setgid(uid) != 0 || setuid(uid) != 0)
        _exit(90);
}

static int run_as(uid_t uid, int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        become(uid);
        _exit(fn(arg));
    }
    int st = wait_for(pid, 60000);
    assert_true(st >= 0 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

struct ctx {
    const struct scratch *s;
    char run_a[33];
    uint8_t run_a_id[16];
};

/* Where user A's process leaves its run id for the test (set before it is forked). */
static char run_id_file[64];

static int user_a_logs(void *arg)
{
    struct ctx *x = arg;
    st_client *c;
    st_run *run;
    int r = st_open(&c, NULL);
    if (r < 0) {
        fprintf(stderr, "user A: st_open: %s\n", st_strerror(r));
        return 10;
    }
    if (st_run_start(c, "team-a", "a1", &run) < 0)
        return 12;
    st_log_param(run, "mine", "1");
    snprintf(x->run_a, sizeof x->run_a, "%s", st_run_id(run));
    FILE *f = fopen(run_id_file, "w"); /* hand the id to the parent */
    if (!f)
        return 11;
    fprintf(f, "%s %d", x->run_a, (int)getpid());
    fclose(f);
    usleep(500000); /* alive while the agent adopts the lane: its pid can be verified */
    st_run_end(run, ST_RUN_FINISHED);
    st_close(c);
    return 0;
}

static void put_msgpack(struct shmlog_producer *p, uint8_t type, msgpack_sbuffer *sb)
{
    shmlog_put(p, type, 0, 0, sb->data, (uint32_t)sb->size, true);
    msgpack_sbuffer_clear(sb);
}

/* User B forges records naming A's run, in B's own ring (the only one B can write). */
static int user_b_attacks(void *arg)
{
    struct ctx *x = arg;
    char path[512];
    snprintf(path, sizeof path, "%s/u%d.ring", x->s->rings, UID_A);
    struct shmlog_arena a;
    if (shmlog_arena_open(&a, path, 0, NULL) != -EACCES)
        return 20; /* B must not be able to map A's ring */
    st_client *c;
    if (st_open(&c, NULL) < 0) /* creates B's own ring */
        return 21;
    snprintf(path, sizeof path, "%s/u%d.ring", x->s->rings, UID_B);
    if (shmlog_arena_open(&a, path, 0, NULL) < 0)
        return 22;
    struct shmlog_producer p;
    if (shmlog_producer_claim(&p, &a, shmlog_pid_start(getpid())) < 0)
        return 23;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* RUN_START with A's id */
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "run", 3);
    msgpack_pack_bin_with_body(&pk, x->run_a_id, 16);
    msgpack_pack_str_with_body(&pk, "exp", 3);
    msgpack_pack_str_with_body(&pk, "hijack", 6);
    put_msgpack(&p, WIRE_RUN_START, &sb);
    /* RUNDEF slot 7 -> A's id, then a param and a tag through it */
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, 7);
    msgpack_pack_bin_with_body(&pk, x->run_a_id, 16);
    put_msgpack(&p, WIRE_RUNDEF, &sb);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, 7);
    msgpack_pack_str_with_body(&pk, "evil", 4);
    msgpack_pack_str_with_body(&pk, "x", 1);
    put_msgpack(&p, WIRE_PARAM, &sb);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, 7);
    msgpack_pack_str_with_body(&pk, "evil-tag", 8);
    msgpack_pack_str_with_body(&pk, "x", 1);
    put_msgpack(&p, WIRE_TAG, &sb);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, 7);
    msgpack_pack_uint32(&pk, ST_RUN_FAILED);
    msgpack_pack_int64(&pk, 1);
    put_msgpack(&p, WIRE_RUN_END, &sb);
    shmlog_producer_close(&p);
    /* A lane whose owner word claims pid 1 (init): the agent must not believe it. */
    struct shmlog_producer q;
    if (shmlog_producer_claim(&q, &a, shmlog_pid_start(getpid())) < 0)
        return 25;
    atomic_store(&q.ctl->owner, 1);
    uint8_t own[16];
    for (int i = 0; i < 16; i++)
        own[i] = (uint8_t)(0xb0 + i);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "run", 3);
    msgpack_pack_bin_with_body(&pk, own, 16);
    msgpack_pack_str_with_body(&pk, "exp", 3);
    msgpack_pack_str_with_body(&pk, "b-own", 5);
    put_msgpack(&q, WIRE_RUN_START, &sb);
    msgpack_sbuffer_destroy(&sb);
    atomic_store(&q.ctl->owner, 1 | SHMLOG_OWNER_CLOSED);
    shmlog_arena_close(&a);
    st_close(c);
    /* Squat: a ring file in C's name, owned by B. */
    snprintf(path, sizeof path, "%s/u%d.ring", x->s->rings, UID_C);
    if (shmlog_arena_open(&a, path, SHMLOG_CREATE, NULL) < 0)
        return 24;
    shmlog_arena_close(&a);
    return 0;
}

static int user_c_opens(void *arg)
{
    (void)arg;
    st_client *c;
    return st_open(&c, NULL) == ST_ERINGOWNER ? 0 : 30;
}

static void users_cannot_write_into_each_others_lanes_or_runs(void **state)
{
    (void)state;
    struct scratch s;
    scratch_make(&s, "users");
    /* Producers of other users need to reach the ring directory (the agent makes it 01777). */
    assert_int_equal(chmod(s.root, 0755), 0);
    assert_int_equal(chmod(s.data, 0755), 0);
    pid_t agent = access("/usr/bin/setpriv", X_OK) == 0 ? agent_start_as_own_user(&s)
                                                       : agent_start(&s, NULL);
    agent_wait_ready(s.data, agent); /* it makes the ring directory, 01777 */
    struct stat lst;
    char lock[512];
    snprintf(lock, sizeof lock, "%s/agent.lock", s.data);
    assert_int_equal(stat(lock, &lst), 0);
    printf("# the agent runs as uid %d\n", (int)lst.st_uid);
    struct ctx x = {.s = &s};
    /* /dev/shm: every uid may write there; the pid keeps parallel runs of this test apart */
    snprintf(run_id_file, sizeof run_id_file, "/dev/shm/st-users-run-id.%d", (int)getpid());
    unlink(run_id_file);
    assert_int_equal(run_as(UID_A, user_a_logs, &x), 0);
    FILE *f = fopen(run_id_file, "r");
    assert_non_null(f);
    int pid_a = 0;
    assert_int_equal(fscanf(f, "%32s %d", x.run_a, &pid_a), 2);
    fclose(f);
    unlink(run_id_file);
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(x.run_a + 2 * i, "%2x", &v);
        x.run_a_id[i] = (uint8_t)v;
    }
    /* B learns A's run id the way a user could: once the store lists it (an id is random, so
     * it cannot be guessed earlier; the first uid to write to an id owns it). */
    for (int i = 0;; i++) {
        char *o;
        const char *show[] = {"runs", "show", x.run_a, NULL};
        int rc = cli_run(&s, &o, show);
        free(o);
        if (rc == 0)
            break;
        assert_true(i < 500);
        usleep(10000);
    }
    assert_int_equal(run_as(UID_B, user_b_attacks, &x), 0);
    assert_int_equal(run_as(UID_C, user_c_opens, &x), 0);
    assert_int_equal(agent_stop(&s, agent), 0);

    char *out;
    const char *show[] = {"runs", "show", x.run_a, "--json", NULL};
    assert_int_equal(cli_run(&s, &out, show), 0);
    assert_non_null(strstr(out, "\"mine\""));
    if (strstr(out, "evil") || strstr(out, "hijack"))
        fail_msg("user B wrote into user A's run:\n%s", out);
    assert_non_null(strstr(out, "FINISHED")); /* not B's FAILED */
    char pid[32], pid2[32];
    snprintf(pid, sizeof pid, "\"pid\": %d", pid_a);
    snprintf(pid2, sizeof pid2, "\"pid\":%d", pid_a);
    if (!strstr(out, pid) && !strstr(out, pid2))
        fail_msg("run A's pid is not %d (its producer, verified by the kernel):\n%s", pid_a, out);
    char uid[32];
    snprintf(uid, sizeof uid, "\"uid\": %d", UID_A);
    char uid2[32];
    snprintf(uid2, sizeof uid2, "\"uid\":%d", UID_A);
    if (!strstr(out, uid) && !strstr(out, uid2))
        fail_msg("run A's uid is not %d (the ring owner's):\n%s", UID_A, out);
    free(out);
    /* B's run from the lane that claimed pid 1: B's uid, and no pid (the claim was false). */
    const char *show_b[] = {"runs", "show", "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf", "--json", NULL};
    assert_int_equal(cli_run(&s, &out, show_b), 0);
    snprintf(uid, sizeof uid, "\"uid\": %d", UID_B);
    snprintf(uid2, sizeof uid2, "\"uid\":%d", UID_B);
    if ((!strstr(out, uid) && !strstr(out, uid2)) ||
        (!strstr(out, "\"pid\": 0") && !strstr(out, "\"pid\":0")))
        fail_msg("run B should carry uid %d and no pid:\n%s", UID_B, out);
    free(out);
    scratch_remove(&s);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("# skipped: needs root to run producers as other uids\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(users_cannot_write_into_each_others_lanes_or_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
