/* test_store_artifacts.c — artifact references and content-addressed blobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store.h"
#include "fixture.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct arts { struct store_artifact a[4]; int n; };

static int art_cb(const struct store_artifact *a, void *arg)
{
    struct arts *x = arg;
    if (x->n < 4)
        x->a[x->n] = *a;
    x->n++;
    return 0;
}

static void artifact_put_and_foreach_in_path_order(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], other[16];
    run_id(run, 0x71, 1);
    run_id(other, 0x71, 2);
    char longpath[1000];
    memset(longpath, 'p', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    memcpy(longpath, "zz/", 3);
    struct store_txn *t;
    assert_int_equal(store_begin(f->s, true, &t), 0);
    assert_int_equal(store_artifact_put(t, run, "model/weights.bin", SHA256_OF_ABC, 3), 0);
    assert_int_equal(store_artifact_put(t, run, "config.yaml", SHA256_OF_EMPTY, 0), 0);
    assert_int_equal(store_artifact_put(t, run, longpath, SHA256_OF_ABC, 1ull << 40), 0);
    assert_int_equal(store_artifact_put(t, other, "x", SHA256_OF_ABC, 3), 0);
    assert_int_equal(store_artifact_put(t, run, "config.yaml", SHA256_OF_ABC, 3), 0); /* replaced */
    assert_int_equal(store_artifact_put(t, run, "", SHA256_OF_ABC, 3), -EINVAL);
    struct store_run r;
    assert_int_equal(store_run_get(t, run, &r), 0); /* the run exists */
    assert_int_equal(store_commit(t), 0);

    assert_int_equal(store_begin(f->s, false, &t), 0);
    struct arts x = {0};
    assert_int_equal(store_artifacts_foreach(t, run, art_cb, &x), 0);
    store_abort(t);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.a[0].path, "config.yaml");
    assert_memory_equal(x.a[0].sha256, SHA256_OF_ABC, 32);
    assert_int_equal(x.a[0].size, 3);
    assert_string_equal(x.a[1].path, "model/weights.bin");
    assert_string_equal(x.a[2].path, longpath);
    assert_int_equal(x.a[2].size, 1ull << 40);
}

static void blob_ingest_by_copy_hashes_and_keeps_the_source(void **state)
{
    struct fx *f = *state;
    char src[128], path[PATH_MAX];
    snprintf(src, sizeof src, "%s/in.txt", f->dir);
    assert_int_equal(write_file(src, "abc", 3), 0);
    uint8_t sha[32];
    uint64_t size = 99;
    assert_int_equal(store_blob_ingest(f->s, src, false, sha, &size), 0);
    assert_memory_equal(sha, SHA256_OF_ABC, 32);
    assert_int_equal(size, 3);
    assert_int_equal(access(src, F_OK), 0);
    assert_int_equal(store_blob_path(f->s, sha, path, sizeof path), 0);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/artifacts/ba/"
             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", f->dir);
    assert_string_equal(path, want);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3);
    assert_int_equal(store_blob_path(f->s, sha, path, 20), -ENAMETOOLONG);
}

static void blob_ingest_by_move_renames_and_dedupes(void **state)
{
    struct fx *f = *state;
    char a[128], b[128], path[PATH_MAX];
    snprintf(a, sizeof a, "%s/a.bin", f->dir);
    snprintf(b, sizeof b, "%s/b.bin", f->dir);
    assert_int_equal(write_file(a, "abc", 3), 0);
    assert_int_equal(write_file(b, "abc", 3), 0);
    struct stat sa;
    assert_int_equal(stat(a, &sa), 0);
    uint8_t sha[32];
    uint64_t size;
    assert_int_equal(store_blob_ingest(f->s, a, true, sha, &size), 0);
    assert_memory_equal(sha, SHA256_OF_ABC, 32);
    assert_int_equal(access(a, F_OK), -1);
    assert_int_equal(store_blob_path(f->s, sha, path, sizeof path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_ino, sa.st_ino); /* renamed, not copied */
    /* same content again: the existing blob is kept, the source removed */
    assert_int_equal(store_blob_ingest(f->s, b, true, sha, &size), 0);
    assert_int_equal(access(b, F_OK), -1);
    struct stat st2;
    assert_int_equal(stat(path, &st2), 0);
    assert_int_equal(st2.st_ino, st.st_ino);
}

static void blob_ingest_copies_a_file_with_other_links(void **state)
{
    struct fx *f = *state;
    char a[128], user[128], path[PATH_MAX];
    snprintf(user, sizeof user, "%s/user.bin", f->dir);
    snprintf(a, sizeof a, "%s/spool.bin", f->dir);
    assert_int_equal(write_file(user, "", 0), 0);
    assert_int_equal(link(user, a), 0);
    uint8_t sha[32];
    uint64_t size;
    assert_int_equal(store_blob_ingest(f->s, a, true, sha, &size), 0);
    assert_memory_equal(sha, SHA256_OF_EMPTY, 32);
    assert_int_equal(size, 0);
    assert_int_equal(access(a, F_OK), -1);
    assert_int_equal(store_blob_path(f->s, sha, path, sizeof path), 0);
    struct stat su, sb;
    assert_int_equal(stat(user, &su), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(su.st_ino != sb.st_ino); /* the user's file is not the blob */
}

static void blob_ingest_of_missing_or_odd_files_fails_cleanly(void **state)
{
    struct fx *f = *state;
    uint8_t sha[32];
    uint64_t size;
    char p[128];
    snprintf(p, sizeof p, "%s/none", f->dir);
    assert_int_equal(store_blob_ingest(f->s, p, false, sha, &size), -ENOENT);
    assert_int_equal(store_blob_ingest(f->s, f->dir, false, sha, &size), -EINVAL);
}

static void store_open_removes_stale_ingest_temporaries(void **state)
{
    struct fx *f = *state;
    char old[128], fresh[128];
    snprintf(old, sizeof old, "%s/artifacts/tmp/ingest.aaaaaa", f->dir);
    snprintf(fresh, sizeof fresh, "%s/artifacts/tmp/ingest.bbbbbb", f->dir);
    assert_int_equal(write_file(old, "x", 1), 0);
    assert_int_equal(write_file(fresh, "y", 1), 0);
    struct timespec ts[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    assert_int_equal(utimensat(AT_FDCWD, old, ts, 0), 0);
    store_close(f->s);
    assert_int_equal(store_open(&f->s, f->dir, STORE_NOSYNC, 0), 0);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(access(fresh, F_OK), 0); /* may belong to an ingest in progress */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(artifact_put_and_foreach_in_path_order),
        FX_TEST(blob_ingest_by_copy_hashes_and_keeps_the_source),
        FX_TEST(blob_ingest_by_move_renames_and_dedupes),
        FX_TEST(blob_ingest_copies_a_file_with_other_links),
        FX_TEST(blob_ingest_of_missing_or_odd_files_fails_cleanly),
        FX_TEST(store_open_removes_stale_ingest_temporaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
