/* test_store_env.c — the environment: directory layout, store id, schema version check,
 * read-only opens, a full map and its growth, readers in another process (LMDB forbids a
 * second open in one process, so readers run in a forked child), the default directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "fixture.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024ull * 1024)

/* In a forked child: no cmocka, just an exit status naming the failed line. */
#define CHILD_CHECK(c)                                                                        \
    do {                                                                                      \
        if (!(c))                                                                             \
            _exit(__LINE__ % 200 + 2);                                                        \
    } while (0)

static void assert_child_ok(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("child failed a check (status %d)", WEXITSTATUS(st));
}

static void store_open_creates_the_directory_layout(void **state)
{
    (void)state;
    char base[64], dir[128], p[256];
    assert_non_null(scratch_dir(base));
    snprintf(dir, sizeof dir, "%s/a/b/store", base);
    struct store *s;
    assert_int_equal(store_open(&s, dir, 0, 0), 0);
    assert_string_equal(store_dir(s), dir);
    struct stat st;
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    assert_int_equal(stat(p, &st), 0);
    snprintf(p, sizeof p, "%s/artifacts/tmp", dir);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    struct store_info info;
    assert_int_equal(store_info(s, &info), 0);
    assert_int_equal(info.map_size, 1024 * MIB);
    assert_int_equal(info.page_size, 4096);
    assert_true(info.used_bytes >= 4 * info.page_size);
    assert_true(info.file_bytes >= info.used_bytes);
    assert_int_equal(store_sync(s), 0);
    store_close(s);
    scratch_rm(base);
}

static void store_id_is_random_and_survives_reopen(void **state)
{
    (void)state;
    char d1[64], d2[64];
    assert_non_null(scratch_dir(d1));
    assert_non_null(scratch_dir(d2));
    struct store *s;
    uint8_t a[16], b[16], c[16], zero[16] = {0};
    assert_int_equal(store_open(&s, d1, 0, 0), 0);
    store_id(s, a);
    store_close(s);
    assert_int_equal(store_open(&s, d1, 0, 0), 0);
    store_id(s, b);
    store_close(s);
    assert_int_equal(store_open(&s, d2, 0, 0), 0);
    store_id(s, c);
    store_close(s);
    assert_memory_equal(a, b, 16);
    assert_memory_not_equal(a, c, 16);
    assert_memory_not_equal(a, zero, 16);
    scratch_rm(d1);
    scratch_rm(d2);
}

static void store_open_rejects_another_schema_version(void **state)
{
    (void)state;
    char dir[64];
    assert_non_null(scratch_dir(dir));
    struct store *s;
    assert_int_equal(store_open(&s, dir, 0, 0), 0);
    store_close(s);
    /* rewrite meta "version" behind the store's back */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t v[4] = {STORE_SCHEMA_VERSION + 1, 0, 0, 0};
    MDB_val k = {7, "version"}, d = {4, v};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(store_open(&s, dir, 0, 0), -EPROTONOSUPPORT);
    assert_int_equal(store_open(&s, dir, STORE_RDONLY, 0), -EPROTONOSUPPORT);
    assert_null(s);
    scratch_rm(dir);
}

static void store_open_read_only_needs_an_existing_store(void **state)
{
    (void)state;
    char dir[64], sub[128];
    assert_non_null(scratch_dir(dir));
    snprintf(sub, sizeof sub, "%s/none", dir);
    struct store *s;
    assert_int_equal(store_open(&s, sub, STORE_RDONLY, 0), -ENOENT);
    assert_int_equal(access(sub, F_OK), -1); /* and does not create it */
    scratch_rm(dir);
}

static void store_map_full_then_grow_then_retry_succeeds(void **state)
{
    (void)state;
    char dir[64];
    assert_non_null(scratch_dir(dir));
    struct store *s;
    assert_int_equal(store_open(&s, dir, STORE_NOSYNC, 1 * MIB), 0);
    assert_false(store_map_full(s));
    uint8_t run[16];
    run_id(run, 0x5a, 1);
    enum { BATCH = 1000, BATCHES = 400 }; /* ~4 MB of points: far more than 1 MiB */
    static struct store_point pts[BATCH];
    int attempts = 0, rc;
    for (;;) {
        struct store_txn *t;
        assert_int_equal(store_begin(s, true, &t), 0);
        rc = 0;
        for (int b = 0; b < BATCHES && rc == 0; b++) {
            for (int i = 0; i < BATCH; i++) {
                uint64_t x = (uint64_t)(b * BATCH + i) * 0x9e3779b97f4a7c15ull;
                double v;
                memcpy(&v, &x, 8);
                pts[i] = (struct store_point){b * BATCH + i, i, v == v ? v : 0.0};
            }
            char key[16];
            snprintf(key, sizeof key, "k%d", b % 7);
            rc = store_metric_append(t, run, key, pts, BATCH);
        }
        if (rc == 0) {
            rc = store_commit(t);
        } else {
            assert_int_equal(rc, -ENOSPC);
            /* the txn is poisoned: later writes and the commit report the same */
            assert_int_equal(store_param_put(t, run, "k", "v"), -ENOSPC);
            assert_int_equal(store_grow(s), -EBUSY);
            store_abort(t);
        }
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOSPC);
        assert_true(store_map_full(s));
        assert_int_equal(store_grow(s), 0);
        assert_true(++attempts < 4);
    }
    assert_int_equal(attempts, 1);
    struct store_info info;
    assert_int_equal(store_info(s, &info), 0);
    assert_true(info.map_size >= 1024 * MIB + 1 * MIB);
    struct store_txn *t;
    struct store_metric_summary sum;
    assert_int_equal(store_begin(s, false, &t), 0);
    assert_int_equal(store_metric_summary_get(t, run, "k0", &sum), 0);
    store_abort(t);
    assert_int_equal(sum.count, (BATCHES + 6) / 7 * BATCH);
    store_close(s);
    /* the grown size is the store's size from now on */
    assert_int_equal(store_open(&s, dir, 0, 0), 0);
    assert_int_equal(store_info(s, &info), 0);
    assert_true(info.map_size >= 1024 * MIB + 1 * MIB);
    store_close(s);
    scratch_rm(dir);
}

static void store_reader_in_another_process_sees_committed_data(void **state)
{
    struct fx *f = *state;
    uint8_t run[16];
    run_id(run, 0x3c, 1);
    struct store_point p = {5, 1000, 0.25};
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_param_put(t, run, "lr", "0.1"), 0);
    assert_int_equal(store_metric_append(t, run, "loss", &p, 1), 0);
    assert_int_equal(store_commit(t), 0);
    /* an uncommitted write stays invisible */
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_tag_set(t, run, "pending", "1"), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *r;
        CHILD_CHECK(store_open(&r, f->dir, STORE_RDONLY, 0) == 0);
        struct store_txn *rt;
        CHILD_CHECK(store_begin(r, true, &rt) == -EROFS);
        CHILD_CHECK(store_begin(r, false, &rt) == 0);
        struct store_metric_summary s;
        CHILD_CHECK(store_metric_summary_get(rt, run, "loss", &s) == 0);
        CHILD_CHECK(s.count == 1 && s.latest.step == 5 && s.latest.value == 0.25);
        struct store_run g;
        CHILD_CHECK(store_run_get(rt, run, &g) == 0);
        CHILD_CHECK(store_param_put(rt, run, "x", "y") == -EROFS);
        uint8_t id1[16], id2[16];
        store_id(r, id1);
        store_id(f->s, id2); /* the parent's copy, read from memory only */
        CHILD_CHECK(memcmp(id1, id2, 16) == 0);
        store_abort(rt);
        CHILD_CHECK(store_grow(r) == -EROFS);
        CHILD_CHECK(store_sync(r) == 0);
        store_close(r);
        _exit(0);
    }
    assert_child_ok(pid);
    store_abort(t);
}

static void store_reader_follows_a_map_grown_by_the_writer(void **state)
{
    (void)state;
    char dir[64];
    assert_non_null(scratch_dir(dir));
    struct store *s;
    assert_int_equal(store_open(&s, dir, STORE_NOSYNC, 1 * MIB), 0);
    uint8_t run[16];
    run_id(run, 0x4d, 1);
    int c2p[2], p2c[2];
    assert_int_equal(pipe(c2p), 0);
    assert_int_equal(pipe(p2c), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(c2p[0]);
        close(p2c[1]);
        struct store *r;
        CHILD_CHECK(store_open(&r, dir, STORE_RDONLY, 0) == 0);
        struct store_info info;
        CHILD_CHECK(store_info(r, &info) == 0 && info.map_size == 1 * MIB);
        CHILD_CHECK(write(c2p[1], "r", 1) == 1);
        uint64_t want;
        CHILD_CHECK(read(p2c[0], &want, sizeof want) == sizeof want);
        struct store_txn *rt;
        CHILD_CHECK(store_begin(r, false, &rt) == 0); /* adopts the new map size */
        struct store_metric_summary sum;
        CHILD_CHECK(store_metric_summary_get(rt, run, "m", &sum) == 0);
        CHILD_CHECK(sum.count == want);
        store_abort(rt);
        CHILD_CHECK(store_info(r, &info) == 0 && info.map_size > 1 * MIB);
        store_close(r);
        _exit(0);
    }
    close(c2p[1]);
    close(p2c[0]);
    char c;
    assert_int_equal(read(c2p[0], &c, 1), 1);
    /* fill well past the reader's 1 MiB mapping, growing on the way */
    static struct store_point pts[1000];
    uint64_t total = 0;
    struct store_info info;
    for (;;) {
        struct store_txn *t;
        assert_int_equal(store_begin(s, true, &t), 0);
        for (int i = 0; i < 1000; i++) {
            uint64_t x = (total + (uint64_t)i) * 0x9e3779b97f4a7c15ull;
            double v;
            memcpy(&v, &x, 8);
            pts[i] = (struct store_point){(int64_t)(total + (uint64_t)i), 0, v == v ? v : 0.0};
        }
        int rc = store_metric_append(t, run, "m", pts, 1000);
        if (rc == 0)
            rc = store_commit(t);
        else
            store_abort(t);
        if (rc == -ENOSPC) {
            assert_int_equal(store_grow(s), 0);
            continue;
        }
        assert_int_equal(rc, 0);
        total += 1000;
        assert_int_equal(store_info(s, &info), 0);
        if (info.used_bytes > 3 * MIB)
            break;
    }
    assert_int_equal(write(p2c[1], &total, sizeof total), (ssize_t)sizeof total);
    assert_child_ok(pid);
    close(c2p[0]);
    close(p2c[1]);
    store_close(s);
    scratch_rm(dir);
}

static void store_default_dir_follows_the_environment(void **state)
{
    (void)state;
    char buf[PATH_MAX];
    char *saved = getenv("SIDETRACK_DATA") ? strdup(getenv("SIDETRACK_DATA")) : NULL;
    setenv("SIDETRACK_DATA", "/srv/st", 1);
    assert_string_equal(store_default_dir(buf, sizeof buf), "/srv/st");
    assert_null(store_default_dir(buf, 4));
    unsetenv("SIDETRACK_DATA");
    if (geteuid() == 0) {
        assert_string_equal(store_default_dir(buf, sizeof buf), "/var/lib/sidetrack");
    } else {
        setenv("XDG_DATA_HOME", "/x/data", 1);
        assert_string_equal(store_default_dir(buf, sizeof buf), "/x/data/sidetrack");
        unsetenv("XDG_DATA_HOME");
        setenv("HOME", "/home/u", 1);
        assert_string_equal(store_default_dir(buf, sizeof buf), "/home/u/.local/share/sidetrack");
    }
    if (saved) {
        setenv("SIDETRACK_DATA", saved, 1);
        free(saved);
    }
}

static void store_strerror_has_a_sentence_for_each_mapped_code(void **state)
{
    (void)state;
    const int codes[] = {0, -ENOSPC, -ENOENT, -EBADMSG, -EPROTONOSUPPORT, -ENOTUNIQ, -EEXIST,
                         -EROFS, -EINVAL};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *m = store_strerror(codes[i]);
        assert_non_null(m);
        assert_true(strlen(m) > 3);
    }
    assert_string_not_equal(store_strerror(-ENOSPC), store_strerror(-ENOENT));
    store_abort(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_open_creates_the_directory_layout),
        cmocka_unit_test(store_id_is_random_and_survives_reopen),
        cmocka_unit_test(store_open_rejects_another_schema_version),
        cmocka_unit_test(store_open_read_only_needs_an_existing_store),
        cmocka_unit_test(store_map_full_then_grow_then_retry_succeeds),
        FX_TEST(store_reader_in_another_process_sees_committed_data),
        cmocka_unit_test(store_reader_follows_a_map_grown_by_the_writer),
        cmocka_unit_test(store_default_dir_follows_the_environment),
        cmocka_unit_test(store_strerror_has_a_sentence_for_each_mapped_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
