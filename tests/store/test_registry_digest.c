/* test_registry_digest.c — a model version's source parsed into run and path, and the digest
 * of its files: the SHA-256 of what `sha256sum` prints in the model's directory. The expected
 * digests below were computed with GNU coreutils on real files of that content:
 *   printf abc > MLmodel; : > data/weights.bin; printf abc > 'a\b'
 *   find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "registry.h"
#include "fixture.h"

#include <errno.h>
#include <string.h>

/* MLmodel + data/weights.bin */
static const char DIGEST_MODEL[] =
    "75c753e5534a038c4c28f4bcea2dc4529236a32f68fb766c0ee8f3ee8ff9c1af";
/* the same plus a file named a\b, which sha256sum escapes */
static const char DIGEST_ESCAPED[] =
    "dc1757e9e7915c806a90a30a347e236750617b2fcdfa691fe252f3ff14a15660";
/* `sha256sum weights.bin | sha256sum` in data/ */
static const char DIGEST_ONE_FILE[] =
    "70bda350c31f116827666bbefc1d5fb16c965408f20f87a75df0023a32855a06";

#define RUN_HEX "0123456789abcdef0123456789abcdef"

static void parse_ok(const char *src, const char *run, const char *path)
{
    char hex[33], p[256];
    int rc = store_mv_source_parse(src, hex, p, sizeof p);
    if (rc != 0)
        fail_msg("%s: %d", src, rc);
    assert_string_equal(hex, run);
    assert_string_equal(p, path);
}

static void source_runs_uri_gives_run_and_path(void **state)
{
    (void)state;
    parse_ok("runs:/" RUN_HEX "/model", RUN_HEX, "model");
    parse_ok("runs:/" RUN_HEX "/a/b/model/", RUN_HEX, "a/b/model");
    parse_ok("runs:/" RUN_HEX, RUN_HEX, "");
    parse_ok("runs:/" RUN_HEX "/", RUN_HEX, "");
    parse_ok("runs:/0123456789ABCDEF0123456789ABCDEF/m", RUN_HEX, "m"); /* kept lowercase */
}

static void source_artifact_uri_gives_run_and_path(void **state)
{
    (void)state;
    parse_ok("mlflow-artifacts:/1/" RUN_HEX "/artifacts/model", RUN_HEX, "model");
    parse_ok("mlflow-artifacts:/17/" RUN_HEX "/artifacts", RUN_HEX, "");
    parse_ok("mlflow-artifacts:/0/" RUN_HEX "/artifacts/x/y.pkl", RUN_HEX, "x/y.pkl");
    parse_ok("mlflow-artifacts://host:5000/3/" RUN_HEX "/artifacts/m", RUN_HEX, "m");
}

static void source_other_forms_are_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "s3://bucket/model", "/tmp/model", "runs:/", "runs:/0123/model",
        "runs:/" RUN_HEX "0/model",                       /* 33 digits */
        "runs:/0123456789abcdef0123456789abcdeg/model",   /* not hex */
        "runs:/" RUN_HEX "/../other", "runs:/" RUN_HEX "/a//b", "runs:/" RUN_HEX "/./a",
        "runs://" RUN_HEX "/m", "models:/name/1",
        "mlflow-artifacts:/" RUN_HEX "/artifacts/m",      /* no experiment */
        "mlflow-artifacts:/x/" RUN_HEX "/artifacts/m",
        "mlflow-artifacts:/1/" RUN_HEX "/artifactsx/m", "mlflow-artifacts:/1/" RUN_HEX "/m",
        "mlflow-artifacts:1/" RUN_HEX "/artifacts", "mlflow-artifacts://host",
    };
    char hex[33], p[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (store_mv_source_parse(bad[i], hex, p, sizeof p) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(store_mv_source_parse(NULL, hex, p, sizeof p), -EINVAL);
    assert_int_equal(store_mv_source_parse("runs:/" RUN_HEX "/model", hex, p, 5),
                     -ENAMETOOLONG);
}

/* A run with a model folder, a file beside it whose name starts the same, and another run:
 * their ids (bytes b, last byte 1 and 2) in run and other. */
static void put_model(struct fx *f, uint8_t b, bool escaped, uint8_t run[16], uint8_t other[16])
{
    run_id(run, b, 1);
    run_id(other, b, 2);
    struct store_txn *t = fx_wtxn(f);
    assert_int_equal(store_artifact_put(t, run, "model/data/weights.bin", SHA256_OF_EMPTY, 0), 0);
    assert_int_equal(store_artifact_put(t, run, "model/MLmodel", SHA256_OF_ABC, 3), 0);
    if (escaped)
        assert_int_equal(store_artifact_put(t, run, "model/a\\b", SHA256_OF_ABC, 3), 0);
    assert_int_equal(store_artifact_put(t, run, "modelx/MLmodel", SHA256_OF_EMPTY, 0), 0);
    assert_int_equal(store_artifact_put(t, run, "metrics.json", SHA256_OF_EMPTY, 0), 0);
    assert_int_equal(store_artifact_put(t, other, "model/MLmodel", SHA256_OF_EMPTY, 0), 0);
    assert_int_equal(store_commit(t), 0);
}

static void digest_is_the_sha256sum_manifest_of_the_model_files(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], other[16];
    put_model(f, 0x42, false, run, other);
    struct store_txn *t = fx_rtxn(f);
    char hex[65];
    uint64_t files = 0, bytes = 0;
    assert_int_equal(store_mv_digest(t, run, "model", hex, &files, &bytes), 0);
    assert_string_equal(hex, DIGEST_MODEL);
    assert_int_equal(files, 2); /* modelx/ and metrics.json are not in it */
    assert_int_equal(bytes, 3);
    assert_int_equal(store_mv_digest(t, run, "model/data/weights.bin", hex, &files, NULL), 0);
    assert_string_equal(hex, DIGEST_ONE_FILE);
    assert_int_equal(files, 1);
    assert_int_equal(store_mv_digest(t, run, "", hex, &files, NULL), 0);
    assert_int_equal(files, 4); /* the whole run */
    assert_string_not_equal(hex, DIGEST_MODEL);
    store_abort(t);
}

static void digest_escapes_names_as_sha256sum_does(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], other[16];
    put_model(f, 0x43, true, run, other);
    struct store_txn *t = fx_rtxn(f);
    char hex[65];
    assert_int_equal(store_mv_digest(t, run, "model", hex, NULL, NULL), 0);
    assert_string_equal(hex, DIGEST_ESCAPED);
    store_abort(t);
}

static void digest_of_nothing_is_enoent(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], other[16], none[16];
    put_model(f, 0x44, false, run, other);
    run_id(none, 0x44, 3);
    struct store_txn *t = fx_rtxn(f);
    char hex[65];
    assert_int_equal(store_mv_digest(t, run, "mode", hex, NULL, NULL), -ENOENT); /* a prefix */
    assert_int_equal(store_mv_digest(t, run, "nothing", hex, NULL, NULL), -ENOENT);
    assert_int_equal(store_mv_digest(t, none, "", hex, NULL, NULL), -ENOENT);
    store_abort(t);
}

static void digest_changes_with_content_and_not_with_other_runs(void **state)
{
    struct fx *f = *state;
    uint8_t run[16], other[16];
    put_model(f, 0x45, false, run, other);
    struct store_txn *t = fx_wtxn(f);
    char a[65], b[65];
    assert_int_equal(store_mv_digest(t, run, "model", a, NULL, NULL), 0);
    assert_int_equal(store_artifact_put(t, other, "model/extra", SHA256_OF_ABC, 3), 0);
    assert_int_equal(store_mv_digest(t, run, "model", b, NULL, NULL), 0);
    assert_string_equal(a, b);
    assert_int_equal(store_artifact_put(t, run, "model/MLmodel", SHA256_OF_EMPTY, 0), 0);
    assert_int_equal(store_mv_digest(t, run, "model", b, NULL, NULL), 0);
    assert_string_not_equal(a, b);
    store_abort(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(source_runs_uri_gives_run_and_path),
        cmocka_unit_test(source_artifact_uri_gives_run_and_path),
        cmocka_unit_test(source_other_forms_are_invalid),
        FX_TEST(digest_is_the_sha256sum_manifest_of_the_model_files),
        FX_TEST(digest_escapes_names_as_sha256sum_does),
        FX_TEST(digest_of_nothing_is_enoent),
        FX_TEST(digest_changes_with_content_and_not_with_other_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
