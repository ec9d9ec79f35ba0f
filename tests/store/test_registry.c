/* test_registry.c — the model registry in the store (store/registry.h): unique names,
 * reserved aliases, alias moves, delete cascades, version numbers that are never reused (also
 * under concurrent creation from threads and processes), stages, tags, lineage, the audit
 * history and its pages, rollback, and search with its pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "registry.h"
#include "fixture.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int64_t clock_ms = 1700000000000;

static struct store_rm_by by(const char *actor)
{
    return (struct store_rm_by){actor, ++clock_ms};
}

static void commit(struct store_txn *t) { assert_int_equal(store_commit(t), 0); }

static uint64_t add_version(struct store_txn *t, const char *model, const char *run)
{
    struct store_rm_by b = by("trainer");
    char src[128];
    snprintf(src, sizeof src, "runs:/%s/model", run ? run : "none");
    struct store_mv_new nv = {.source = src, .run_id = run};
    uint64_t v = 0;
    assert_int_equal(store_mv_create(t, model, &nv, &b, &v), 0);
    return v;
}

static void make_model(struct store_txn *t, const char *name)
{
    struct store_rm_by b = by("alice");
    assert_int_equal(store_rm_create(t, name, NULL, &b, NULL), 0);
}

/* Begins a write transaction with a new model "m" and n versions of it (made from run, or from
 * no run where NULL) for the test to go on with. */
static struct store_txn *begin_with_m(struct fx *f, int n, const char *run)
{
    struct store_txn *t = fx_wtxn(f);
    make_model(t, "m");
    for (int i = 0; i < n; i++)
        add_version(t, "m", run);
    return t;
}

/* Points m's alias champion at versions 1, 2, ... last, one after the other. */
static void champion_through(struct store_txn *t, uint64_t last, const struct store_rm_by *b)
{
    for (uint64_t v = 1; v <= last; v++)
        assert_int_equal(store_rm_alias_set(t, "m", "champion", v, b), 0);
}

static uint64_t alias_of(struct store_txn *t, const char *model, const char *alias)
{
    uint64_t v = 0;
    int rc = store_rm_alias_get(t, model, alias, &v);
    return rc == 0 ? v : 0;
}

/* ---- names -------------------------------------------------------------------------- */

static void model_names_are_unique_and_must_not_be_empty(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_wtxn(f);
    struct store_rm_by b = by("alice");
    struct store_rm m;
    assert_int_equal(store_rm_create(t, "churn", "predicts churn", &b, &m), 0);
    assert_string_equal(m.name, "churn");
    assert_int_equal(m.created_ms, b.now_ms);
    assert_int_equal(store_rm_create(t, "churn", NULL, &b, NULL), -EEXIST);
    assert_int_equal(store_rm_create(t, "Churn", NULL, &b, NULL), 0); /* case counts */
    assert_int_equal(store_rm_create(t, "", NULL, &b, NULL), -EINVAL);
    char longname[STORE_RM_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(store_rm_create(t, longname, NULL, &b, NULL), -ENAMETOOLONG);
    longname[STORE_RM_NAME_MAX] = '\0';
    assert_int_equal(store_rm_create(t, longname, NULL, &b, NULL), 0);
    char msg[256];
    assert_int_equal(store_rm_name_check("", msg, sizeof msg), -EINVAL);
    assert_string_equal(msg, "Registered model name cannot be empty.");
    commit(t);

    t = fx_rtxn(f);
    assert_int_equal(store_rm_get(t, "churn", &m), 0);
    assert_string_equal(m.description, "predicts churn");
    assert_int_equal(store_rm_get(t, "nope", &m), -ENOENT);
    assert_int_equal(store_rm_create(t, "x", NULL, &b, NULL), -EROFS);
    store_abort(t);
}

static int count_cb(const struct store_mv *v, void *arg)
{
    (void)v;
    (*(int *)arg)++;
    return 0;
}

static void rename_takes_versions_tags_and_aliases_along(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_wtxn(f);
    struct store_rm_by b = by("alice");
    make_model(t, "old");
    make_model(t, "taken");
    add_version(t, "old", NULL);
    add_version(t, "old", NULL);
    assert_int_equal(store_rm_alias_set(t, "old", "champion", 2, &b), 0);
    assert_int_equal(store_rm_tag_set(t, "old", "team", "vision", &b), 0);
    assert_int_equal(store_rm_rename(t, "old", "taken", &b), -EEXIST);
    assert_int_equal(store_rm_rename(t, "nope", "x", &b), -ENOENT);
    assert_int_equal(store_rm_rename(t, "old", "new", &b), 0);
    commit(t);

    t = fx_wtxn(f);
    struct store_mv v;
    struct store_rm m;
    assert_int_equal(store_rm_get(t, "old", &m), -ENOENT);
    assert_int_equal(store_mv_by_alias(t, "new", "champion", &v), 0);
    assert_int_equal(v.version, 2);
    assert_string_equal(v.name, "new");
    int n = 0;
    assert_int_equal(store_mv_foreach(t, "new", count_cb, &n), 0);
    assert_int_equal(n, 2);
    /* the old name is free again, for a model of its own that starts at version 1 */
    make_model(t, "old");
    assert_int_equal(add_version(t, "old", NULL), 1);
    assert_int_equal(store_rm_rename(t, "new", "new", &b), 0);
    commit(t);
}

/* ---- versions ----------------------------------------------------------------------- */

static void version_numbers_count_up_and_are_never_reused(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 0, NULL);
    assert_int_equal(add_version(t, "m", NULL), 1);
    assert_int_equal(add_version(t, "m", NULL), 2);
    assert_int_equal(add_version(t, "m", NULL), 3);
    assert_int_equal(store_mv_delete(t, "m", 3, &b), 0);
    assert_int_equal(store_mv_delete(t, "m", 3, &b), -ENOENT);
    commit(t);
    t = fx_wtxn(f);
    assert_int_equal(add_version(t, "m", NULL), 4);
    assert_int_equal(store_mv_delete(t, "m", 1, &b), 0);
    assert_int_equal(add_version(t, "m", NULL), 5);
    struct store_rm m;
    assert_int_equal(store_rm_get(t, "m", &m), 0);
    assert_int_equal(m.last_version, 5);
    struct store_mv v;
    assert_int_equal(store_mv_get(t, "m", 3, &v), -ENOENT);
    assert_int_equal(store_mv_get(t, "m", 4, &v), 0);
    assert_string_equal(v.source, "runs:/none/model");
    assert_int_equal(v.status, STORE_MV_READY);
    assert_int_equal(v.stage, STORE_STAGE_NONE);
    /* a version needs its model and a source */
    struct store_mv_new nv = {.source = "s3://b/m"};
    assert_int_equal(store_mv_create(t, "nope", &nv, &b, NULL), -ENOENT);
    nv.source = "";
    assert_int_equal(store_mv_create(t, "m", &nv, &b, NULL), -EINVAL);
    commit(t);
}

static void version_fields_digest_status_and_description(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 0, NULL);
    struct store_mv_new nv = {
        .source = "runs:/0123456789abcdef0123456789abcdef/model",
        .run_id = "0123456789abcdef0123456789abcdef",
        .run_link = "http://server/#/runs/0123",
        .description = "first",
        .digest = "AB0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCD",
        .status = STORE_MV_PENDING_REGISTRATION,
    };
    uint64_t ver;
    assert_int_equal(store_mv_create(t, "m", &nv, &b, &ver), 0);
    nv.digest = "abc"; /* not a sha256 */
    assert_int_equal(store_mv_create(t, "m", &nv, &b, NULL), -EINVAL);
    nv.digest = NULL;
    nv.status = 9;
    assert_int_equal(store_mv_create(t, "m", &nv, &b, NULL), -EINVAL);
    struct store_rm_by b2 = by("bob");
    assert_int_equal(store_mv_set_status(t, "m", ver, STORE_MV_READY, "copied", &b2), 0);
    assert_int_equal(store_mv_set_description(t, "m", ver, "better", &b2), 0);
    commit(t);

    t = fx_rtxn(f);
    struct store_mv v;
    assert_int_equal(store_mv_get(t, "m", ver, &v), 0);
    assert_string_equal(v.digest,
                        "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd");
    assert_string_equal(v.run_id, "0123456789abcdef0123456789abcdef");
    assert_string_equal(v.run_link, "http://server/#/runs/0123");
    assert_string_equal(v.description, "better");
    assert_int_equal(v.status, STORE_MV_READY);
    assert_string_equal(v.status_message, "copied");
    assert_int_equal(v.updated_ms, b2.now_ms);
    assert_true(v.created_ms < v.updated_ms);
    struct store_rm m;
    assert_int_equal(store_rm_get(t, "m", &m), 0);
    assert_int_equal(m.updated_ms, b2.now_ms);
    int st;
    assert_int_equal(store_mv_status_parse("FAILED_REGISTRATION", &st), 0);
    assert_int_equal(st, STORE_MV_FAILED_REGISTRATION);
    assert_int_equal(store_mv_status_parse("ready", &st), -EINVAL);
    store_abort(t);
}

/* ---- aliases ------------------------------------------------------------------------ */

static void reserved_and_malformed_aliases_are_refused(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 1, NULL);
    static const char *const bad[] = {"latest", "LATEST", "Latest", "v1", "V12", "v007", "",
                                      "has space", "dot.ted", "sl/ash"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(store_rm_alias_set(t, "m", bad[i], 1, &b), -EINVAL);
    char longalias[STORE_RM_ALIAS_MAX + 2];
    memset(longalias, 'a', sizeof longalias - 1);
    longalias[sizeof longalias - 1] = '\0';
    assert_int_equal(store_rm_alias_set(t, "m", longalias, 1, &b), -ENAMETOOLONG);
    longalias[STORE_RM_ALIAS_MAX] = '\0';
    assert_int_equal(store_rm_alias_set(t, "m", longalias, 1, &b), 0);
    static const char *const good[] = {"v", "v1a", "va1", "champion", "Champion", "latest2",
                                       "prod-eu_1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(store_rm_alias_set(t, "m", good[i], 1, &b), 0);
    assert_int_equal(alias_of(t, "m", "Champion"), 1); /* a distinct alias from champion */
    char msg[256];
    assert_int_equal(store_rm_alias_check("Latest", msg, sizeof msg), -EINVAL);
    assert_string_equal(msg, "'latest' alias name (case insensitive) is reserved.");
    assert_int_equal(store_rm_alias_check("v3", msg, sizeof msg), -EINVAL);
    assert_string_equal(msg, "Version alias name 'v3' is reserved.");
    assert_int_equal(store_rm_alias_check("a b", msg, sizeof msg), -EINVAL);
    assert_non_null(strstr(msg, "Invalid alias name: 'a b'"));
    commit(t);
}

struct aliases { char names[8][32]; uint64_t versions[8]; int n; };

static int alias_cb(const char *alias, uint64_t version, void *arg)
{
    struct aliases *a = arg;
    snprintf(a->names[a->n], sizeof a->names[0], "%s", alias);
    a->versions[a->n++] = version;
    return 0;
}

static void an_alias_names_one_version_and_moves(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 2, NULL);
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 1, &b), 0);
    assert_int_equal(store_rm_alias_set(t, "m", "prod", 1, &b), 0);
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 2, &b), 0);
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 3, &b), -ENOENT);
    assert_int_equal(store_rm_alias_set(t, "nope", "champion", 1, &b), -ENOENT);
    commit(t);

    t = fx_wtxn(f);
    struct store_mv v;
    assert_int_equal(store_mv_by_alias(t, "m", "champion", &v), 0);
    assert_int_equal(v.version, 2);
    struct aliases a = {.n = 0};
    assert_int_equal(store_rm_aliases_foreach(t, "m", alias_cb, &a), 0);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.names[0], "champion");
    assert_int_equal(a.versions[0], 2);
    assert_string_equal(a.names[1], "prod");
    assert_int_equal(a.versions[1], 1);
    assert_int_equal(store_rm_alias_delete(t, "m", "prod", &b), 0);
    assert_int_equal(store_rm_alias_delete(t, "m", "prod", &b), -ENOENT);
    assert_int_equal(store_mv_by_alias(t, "m", "prod", &v), -ENOENT);
    commit(t);
}

/* ---- deletes -------------------------------------------------------------------------- */

static int tag_count(const char *k, const char *v, void *arg)
{
    (void)k;
    (void)v;
    (*(int *)arg)++;
    return 0;
}

static void deleting_a_version_drops_its_aliases_tags_and_lineage(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 2, "runA");
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 2, &b), 0);
    assert_int_equal(store_rm_alias_set(t, "m", "other", 1, &b), 0);
    assert_int_equal(store_mv_tag_set(t, "m", 2, "k", "v", &b), 0);
    assert_int_equal(store_mv_delete(t, "m", 2, &b), 0);
    assert_int_equal(alias_of(t, "m", "champion"), 0);
    assert_int_equal(alias_of(t, "m", "other"), 1);
    int n = 0;
    assert_int_equal(store_mv_tags_foreach(t, "m", 2, tag_count, &n), -ENOENT);
    assert_int_equal(store_mv_by_run(t, "runA", count_cb, &n), 0);
    assert_int_equal(n, 1);
    commit(t);
}

static void deleting_a_model_takes_everything_under_it(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 0, NULL);
    make_model(t, "keep");
    add_version(t, "m", "runA");
    add_version(t, "m", "runA");
    add_version(t, "keep", "runA");
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 2, &b), 0);
    assert_int_equal(store_rm_tag_set(t, "m", "team", "x", &b), 0);
    assert_int_equal(store_mv_tag_set(t, "m", 1, "k", "v", &b), 0);
    assert_int_equal(store_rm_tag_set(t, "keep", "team", "y", &b), 0);
    struct store_rm old;
    assert_int_equal(store_rm_get(t, "m", &old), 0);
    assert_int_equal(store_rm_delete(t, "m", &b), 0);
    assert_int_equal(store_rm_delete(t, "m", &b), -ENOENT);
    commit(t);

    t = fx_wtxn(f);
    struct store_mv v;
    assert_int_equal(store_mv_get(t, "m", 1, &v), -ENOENT);
    int n = 0;
    assert_int_equal(store_mv_by_run(t, "runA", count_cb, &n), 0);
    assert_int_equal(n, 1); /* only keep's */
    n = 0;
    assert_int_equal(store_rm_tags_foreach(t, "keep", tag_count, &n), 0);
    assert_int_equal(n, 1);
    /* the name is free; the new model is another one, numbered afresh */
    make_model(t, "m");
    assert_int_equal(add_version(t, "m", NULL), 1);
    assert_int_equal(alias_of(t, "m", "champion"), 0);
    assert_int_equal(store_rm_tags_foreach(t, "m", tag_count, &n), 0);
    assert_int_equal(n, 1);
    struct store_rm now;
    assert_int_equal(store_rm_get(t, "m", &now), 0);
    assert_true(now.id != old.id);
    commit(t);
}

/* ---- stages ---------------------------------------------------------------------------- */

static int stage_cb(const struct store_mv *v, void *arg)
{
    char *out = arg;
    char one[32];
    snprintf(one, sizeof one, "%s%s:%llu", *out ? " " : "", store_mv_stage_name(v->stage),
             (unsigned long long)v->version);
    strcat(out, one);
    return 0;
}

static void transition_with_archive_existing_and_latest_versions(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 5, NULL);
    assert_int_equal(store_mv_transition(t, "m", 1, STORE_STAGE_PRODUCTION, false, &b), 0);
    assert_int_equal(store_mv_transition(t, "m", 2, STORE_STAGE_PRODUCTION, false, &b), 0);
    assert_int_equal(store_mv_transition(t, "m", 3, STORE_STAGE_STAGING, false, &b), 0);
    assert_int_equal(store_mv_transition(t, "m", 4, STORE_STAGE_PRODUCTION, true, &b), 0);
    assert_int_equal(store_mv_transition(t, "m", 5, STORE_STAGE_ARCHIVED, true, &b), -EINVAL);
    assert_int_equal(store_mv_transition(t, "m", 5, STORE_STAGE_NONE, true, &b), -EINVAL);
    assert_int_equal(store_mv_transition(t, "m", 9, STORE_STAGE_STAGING, false, &b), -ENOENT);
    assert_int_equal(store_mv_transition(t, "m", 5, 7, false, &b), -EINVAL);
    commit(t);

    t = fx_rtxn(f);
    char got[256] = "";
    assert_int_equal(store_mv_latest(t, "m", NULL, 0, stage_cb, got), 0);
    assert_string_equal(got, "None:5 Staging:3 Production:4 Archived:2");
    got[0] = '\0';
    int want[] = {STORE_STAGE_PRODUCTION, STORE_STAGE_STAGING};
    assert_int_equal(store_mv_latest(t, "m", want, 2, stage_cb, got), 0);
    assert_string_equal(got, "Production:4 Staging:3");
    struct store_mv v;
    assert_int_equal(store_mv_get(t, "m", 1, &v), 0);
    assert_int_equal(v.stage, STORE_STAGE_ARCHIVED);
    int st;
    assert_int_equal(store_mv_stage_parse("production", &st), 0);
    assert_int_equal(st, STORE_STAGE_PRODUCTION);
    assert_int_equal(store_mv_stage_parse("none", &st), 0);
    assert_int_equal(st, STORE_STAGE_NONE);
    assert_int_equal(store_mv_stage_parse("Prod", &st), -EINVAL);
    store_abort(t);
}

/* ---- tags and lineage --------------------------------------------------------------------- */

struct kv { char text[256]; };

static int kv_cb(const char *k, const char *v, void *arg)
{
    struct kv *x = arg;
    char one[64];
    snprintf(one, sizeof one, "%s%s=%s", x->text[0] ? " " : "", k, v);
    strcat(x->text, one);
    return 0;
}

static void tags_of_models_and_versions_are_kept_apart(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 1, NULL);
    assert_int_equal(store_rm_tag_set(t, "m", "team", "vision", &b), 0);
    assert_int_equal(store_rm_tag_set(t, "m", "team", "nlp", &b), 0);
    assert_int_equal(store_rm_tag_set(t, "m", "owner", "ann", &b), 0);
    assert_int_equal(store_mv_tag_set(t, "m", 1, "validated", "yes", &b), 0);
    assert_int_equal(store_mv_tag_set(t, "m", 2, "validated", "yes", &b), -ENOENT);
    assert_int_equal(store_rm_tag_set(t, "m", "", "x", &b), -EINVAL);
    assert_int_equal(store_rm_tag_delete(t, "m", "owner", &b), 0);
    assert_int_equal(store_rm_tag_delete(t, "m", "owner", &b), -ENOENT);
    struct kv x = {""};
    assert_int_equal(store_rm_tags_foreach(t, "m", kv_cb, &x), 0);
    assert_string_equal(x.text, "team=nlp");
    x.text[0] = '\0';
    assert_int_equal(store_mv_tags_foreach(t, "m", 1, kv_cb, &x), 0);
    assert_string_equal(x.text, "validated=yes");
    assert_int_equal(store_mv_tag_delete(t, "m", 1, "validated", &b), 0);
    commit(t);
}

struct refs { char text[256]; };

static int ref_cb(const struct store_mv *v, void *arg)
{
    struct refs *r = arg;
    char one[64];
    snprintf(one, sizeof one, "%s%.20s/%llu", r->text[0] ? " " : "", v->name,
             (unsigned long long)v->version);
    strcat(r->text, one);
    return 0;
}

static void lineage_lists_the_versions_made_from_a_run(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_wtxn(f);
    make_model(t, "a");
    make_model(t, "b");
    add_version(t, "a", "run1");
    add_version(t, "a", "run2");
    add_version(t, "b", "run1");
    add_version(t, "a", "run1");
    add_version(t, "b", "run10"); /* a longer id with run1 as its start */
    commit(t);
    t = fx_rtxn(f);
    struct refs r = {""};
    assert_int_equal(store_mv_by_run(t, "run1", ref_cb, &r), 0);
    assert_string_equal(r.text, "a/1 a/3 b/1");
    r.text[0] = '\0';
    assert_int_equal(store_mv_by_run(t, "nothing", ref_cb, &r), 0);
    assert_string_equal(r.text, "");
    store_abort(t);
}

/* ---- concurrency -------------------------------------------------------------------------- */

#define WRITERS 6
#define PER_WRITER 40

static int create_fn(struct store_txn *t, void *arg)
{
    struct store_rm_by b = {arg, 1};
    struct store_mv_new nv = {.source = "s3://bucket/model"};
    return store_mv_create(t, "m", &nv, &b, NULL);
}

static void *writer(void *arg)
{
    struct store *s = arg;
    for (int i = 0; i < PER_WRITER; i++)
        if (store_update(s, create_fn, "thread") != 0)
            return (void *)1;
    return NULL;
}

struct seen { unsigned char hit[WRITERS * PER_WRITER * 2 + 2]; int n; uint64_t max; };

static int seen_cb(const struct store_mv *v, void *arg)
{
    struct seen *s = arg;
    if (v->version < sizeof s->hit)
        s->hit[v->version]++;
    s->n++;
    if (v->version > s->max)
        s->max = v->version;
    return 0;
}

static void check_one_to_n(struct fx *f, int n)
{
    struct store_txn *t = fx_rtxn(f);
    struct seen s;
    memset(&s, 0, sizeof s);
    assert_int_equal(store_mv_foreach(t, "m", seen_cb, &s), 0);
    assert_int_equal(s.n, n);
    assert_int_equal(s.max, (uint64_t)n);
    for (int v = 1; v <= n; v++)
        assert_int_equal(s.hit[v], 1);
    struct store_rm m;
    assert_int_equal(store_rm_get(t, "m", &m), 0);
    assert_int_equal(m.last_version, (uint64_t)n);
    store_abort(t);
}

static void versions_created_from_threads_are_one_to_n(void **state)
{
    struct fx *f = *state;
    commit(begin_with_m(f, 0, NULL));
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, f->s), 0);
    for (int i = 0; i < WRITERS; i++) {
        void *r;
        assert_int_equal(pthread_join(th[i], &r), 0);
        assert_null(r);
    }
    check_one_to_n(f, WRITERS * PER_WRITER);
}

/* Each child opens the store itself (LMDB: one environment per process), while the parent
 * keeps it closed. */
static void versions_created_from_processes_are_one_to_n(void **state)
{
    struct fx *f = *state;
    commit(begin_with_m(f, 0, NULL));
    store_close(f->s);
    f->s = NULL;
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            struct store *s;
            if (store_open(&s, f->dir, STORE_NOSYNC, 0) != 0)
                _exit(2);
            for (int j = 0; j < PER_WRITER; j++)
                if (store_update(s, create_fn, "process") != 0)
                    _exit(3);
            store_close(s);
            _exit(0);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    assert_int_equal(store_open(&f->s, f->dir, STORE_NOSYNC, 0), 0);
    check_one_to_n(f, 4 * PER_WRITER);
}

/* ---- history ---------------------------------------------------------------------------- */

struct events { struct { int kind; uint64_t seq, from, to, undoes; char actor[16];
                         char key[16]; char before[32], after[32]; int64_t time; } e[64];
                int n; };

static int ev_cb(const struct store_rm_event *e, void *arg)
{
    struct events *x = arg;
    if (x->n == 64)
        return -E2BIG;
    x->e[x->n].kind = e->kind;
    x->e[x->n].seq = e->seq;
    x->e[x->n].from = e->from_version;
    x->e[x->n].to = e->to_version;
    x->e[x->n].undoes = e->undoes;
    x->e[x->n].time = e->time_ms;
    snprintf(x->e[x->n].actor, sizeof x->e[0].actor, "%.15s", e->actor);
    snprintf(x->e[x->n].key, sizeof x->e[0].key, "%.15s", e->key);
    snprintf(x->e[x->n].before, sizeof x->e[0].before, "%.31s", e->before);
    snprintf(x->e[x->n].after, sizeof x->e[0].after, "%.31s", e->after);
    x->n++;
    return 0;
}

static void history_lists_every_change_newest_first_in_pages(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_wtxn(f);
    struct store_rm_by a = by("alice");
    assert_int_equal(store_rm_create(t, "m", "d0", &a, NULL), 0);       /* 1 */
    make_model(t, "other");                                              /* elsewhere */
    add_version(t, "m", "r1");                                           /* 2 */
    add_version(t, "m", "r2");                                           /* 3 */
    struct store_rm_by g = by("agent@node7");
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 1, &g), 0); /* 4 */
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 1, &g), 0); /* no change */
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 2, &g), 0); /* 5 */
    assert_int_equal(store_rm_tag_set(t, "m", "team", "x", &a), 0);     /* 6 */
    assert_int_equal(store_mv_transition(t, "m", 2, STORE_STAGE_PRODUCTION, true, &a), 0); /* 7 */
    assert_int_equal(store_rm_rename(t, "m", "m2", &a), 0);             /* 8 */
    assert_int_equal(store_mv_delete(t, "m2", 2, &a), 0);               /* 9 dropped, 10 */
    commit(t);

    t = fx_rtxn(f);
    struct events all = {.n = 0};
    char tok[STORE_RM_TOKEN_MAX] = "", next[STORE_RM_TOKEN_MAX];
    int pages = 0;
    do {
        int before = all.n;
        assert_int_equal(store_rm_history(t, "m2", 3, tok, ev_cb, &all, next), 0);
        assert_true(all.n - before <= 3);
        strcpy(tok, next);
        pages++;
    } while (tok[0] && pages < 10);
    assert_int_equal(pages, 4);
    assert_int_equal(all.n, 10);
    static const int kinds[] = {STORE_RM_VERSION_DELETED, STORE_RM_ALIAS_DROPPED,
                                STORE_RM_MODEL_RENAMED, STORE_RM_VERSION_STAGE,
                                STORE_RM_MODEL_TAG_SET, STORE_RM_ALIAS_SET, STORE_RM_ALIAS_SET,
                                STORE_RM_VERSION_CREATED, STORE_RM_VERSION_CREATED,
                                STORE_RM_MODEL_CREATED};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(all.e[i].kind, kinds[i]);
        if (i)
            assert_true(all.e[i].seq < all.e[i - 1].seq);
    }
    assert_string_equal(all.e[2].before, "m");
    assert_string_equal(all.e[2].after, "m2");
    assert_string_equal(all.e[3].before, "None");
    assert_string_equal(all.e[3].after, "Production");
    assert_string_equal(all.e[5].actor, "agent@node7");
    assert_string_equal(all.e[5].key, "champion");
    assert_int_equal(all.e[5].from, 1);
    assert_int_equal(all.e[5].to, 2);
    assert_int_equal(all.e[5].time, g.now_ms);
    assert_int_equal(all.e[6].from, 0);
    assert_int_equal(all.e[1].from, 2);
    assert_int_equal(all.e[1].to, 0);
    assert_string_equal(all.e[9].actor, "alice");
    assert_string_equal(all.e[9].after, "d0");
    assert_string_equal(store_rm_change_name(all.e[6].kind), "alias_set");

    struct events none = {.n = 0};
    assert_int_equal(store_rm_history(t, "m2", 3, "abc", ev_cb, &none, next), -EINVAL);
    assert_int_equal(store_rm_history(t, "m2", 3, "0", ev_cb, &none, next), -EINVAL);
    assert_int_equal(store_rm_history(t, "nope", 3, NULL, ev_cb, &none, next), -ENOENT);
    struct store_rm m;
    assert_int_equal(store_rm_get(t, "m2", &m), 0);
    store_abort(t);

    /* a deleted model's history stays readable under its id */
    t = fx_wtxn(f);
    assert_int_equal(store_rm_delete(t, "m2", &a), 0);
    commit(t);
    t = fx_rtxn(f);
    none.n = 0;
    assert_int_equal(store_rm_history_id(t, m.id, 1, NULL, ev_cb, &none, next), 0);
    assert_int_equal(none.n, 1);
    assert_int_equal(none.e[0].kind, STORE_RM_MODEL_DELETED);
    assert_string_not_equal(next, "");
    store_abort(t);
}

/* ---- rollback ------------------------------------------------------------------------------ */

static void rollback_walks_back_one_move_at_a_time(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 4, NULL);
    champion_through(t, 2, &b);
    assert_int_equal(store_rm_alias_set(t, "m", "other", 4, &b), 0); /* not champion's */
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 3, &b), 0);
    commit(t);

    t = fx_wtxn(f);
    uint64_t from, to;
    struct store_rm_by r = by("ops");
    assert_int_equal(store_rm_rollback(t, "m", "champion", &r, &from, &to), 0);
    assert_int_equal(from, 3);
    assert_int_equal(to, 2);
    assert_int_equal(store_rm_rollback(t, "m", "champion", &r, &from, &to), 0);
    assert_int_equal(from, 2);
    assert_int_equal(to, 1);
    assert_int_equal(alias_of(t, "m", "champion"), 1);
    assert_int_equal(store_rm_rollback(t, "m", "champion", &r, NULL, NULL), -ENODATA);
    assert_int_equal(alias_of(t, "m", "champion"), 1);
    assert_int_equal(alias_of(t, "m", "other"), 4);
    /* a new move after rollbacks is what the next rollback undoes */
    assert_int_equal(store_rm_alias_set(t, "m", "champion", 4, &b), 0);
    assert_int_equal(store_rm_rollback(t, "m", "champion", &r, &from, &to), 0);
    assert_int_equal(from, 4);
    assert_int_equal(to, 1);
    assert_int_equal(store_rm_rollback(t, "m", "nope", &r, NULL, NULL), -ENODATA);
    assert_int_equal(store_rm_rollback(t, "m", "latest", &r, NULL, NULL), -EINVAL);
    assert_int_equal(store_rm_rollback(t, "x", "champion", &r, NULL, NULL), -ENOENT);
    commit(t);

    t = fx_rtxn(f);
    struct events e = {.n = 0};
    char next[STORE_RM_TOKEN_MAX];
    assert_int_equal(store_rm_history(t, "m", 1, NULL, ev_cb, &e, next), 0);
    assert_int_equal(e.e[0].kind, STORE_RM_ALIAS_ROLLBACK);
    assert_string_equal(e.e[0].actor, "ops");
    assert_int_equal(e.e[0].from, 4);
    assert_int_equal(e.e[0].to, 1);
    assert_true(e.e[0].undoes > 0 && e.e[0].undoes < e.e[0].seq);
    store_abort(t);
}

static void rollback_refuses_a_deleted_version(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 3, NULL);
    champion_through(t, 3, &b);
    assert_int_equal(store_mv_delete(t, "m", 2, &b), 0);
    assert_int_equal(store_rm_rollback(t, "m", "champion", &b, NULL, NULL), -EIDRM);
    assert_int_equal(alias_of(t, "m", "champion"), 3);
    commit(t);
}

static void rollback_after_the_aliased_version_was_deleted(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 2, NULL);
    champion_through(t, 2, &b);
    assert_int_equal(store_mv_delete(t, "m", 2, &b), 0); /* a bad version, pulled */
    assert_int_equal(alias_of(t, "m", "champion"), 0);
    uint64_t from = 9, to = 0;
    assert_int_equal(store_rm_rollback(t, "m", "champion", &b, &from, &to), 0);
    assert_int_equal(from, 0);
    assert_int_equal(to, 1);
    assert_int_equal(alias_of(t, "m", "champion"), 1);
    commit(t);
}

static void rollback_restores_a_deleted_alias(void **state)
{
    struct fx *f = *state;
    struct store_rm_by b = by("alice");
    struct store_txn *t = begin_with_m(f, 1, NULL);
    champion_through(t, 1, &b);
    assert_int_equal(store_rm_alias_delete(t, "m", "champion", &b), 0);
    assert_int_equal(store_rm_rollback(t, "m", "champion", &b, NULL, NULL), 0);
    assert_int_equal(alias_of(t, "m", "champion"), 1);
    /* and the alias's first set has nothing before it */
    assert_int_equal(store_rm_rollback(t, "m", "champion", &b, NULL, NULL), -ENODATA);
    commit(t);
}

/* ---- search ------------------------------------------------------------------------------- */

/* One page of a search, of models or of versions: its rc, its error message, how many it found,
 * and those as text (names, or name/version, separated by spaces). */
struct found {
    int rc;
    size_t n;
    char text[512];
    char next[STORE_RM_TOKEN_MAX];
    char err[256];
};

typedef void search_fn(struct store_txn *t, const struct store_rm_query *q, struct found *out);

/* Appends one to text, after a space unless text is empty; the test fails where it would not
 * fit. */
static void append(char *text, size_t size, const char *one)
{
    size_t len = strlen(text);
    if (!*one)
        return;
    int w = snprintf(text + len, size - len, "%s%s", len ? " " : "", one);
    assert_true(w >= 0 && (size_t)w < size - len);
}

static void search_models(struct store_txn *t, const struct store_rm_query *q, struct found *out)
{
    struct store_rm_page p;
    memset(out, 0, sizeof *out);
    out->rc = store_rm_search(t, q, &p, out->err, sizeof out->err);
    if (out->rc != 0)
        return;
    out->n = p.n;
    for (size_t i = 0; i < p.n; i++)
        append(out->text, sizeof out->text, p.names[i]);
    snprintf(out->next, sizeof out->next, "%s", p.next_page_token);
    store_rm_page_free(&p);
}

static void search_versions(struct store_txn *t, const struct store_rm_query *q,
                            struct found *out)
{
    struct store_mv_page p;
    memset(out, 0, sizeof *out);
    out->rc = store_mv_search(t, q, &p, out->err, sizeof out->err);
    if (out->rc != 0)
        return;
    out->n = p.n;
    for (size_t i = 0; i < p.n; i++) {
        char one[STORE_RM_NAME_MAX + 24];
        snprintf(one, sizeof one, "%s/%llu", p.refs[i].name,
                 (unsigned long long)p.refs[i].version);
        append(out->text, sizeof out->text, one);
    }
    snprintf(out->next, sizeof out->next, "%s", p.next_page_token);
    store_mv_page_free(&p);
}

/* A search and what its first page holds: with rc 0, n found, whose text starts with text and
 * no page after it; with -EINVAL, an error message that holds err (unless NULL). */
struct search_case {
    const char *filter;
    int max_results;
    const char *page_token;
    int rc;
    size_t n;
    const char *text;
    const char *err;
};

static void check_searches(struct store_txn *t, search_fn *search, const struct search_case *c,
                           size_t count)
{
    for (; count--; c++) {
        struct store_rm_query q = {.filter = c->filter, .max_results = c->max_results,
                                   .page_token = c->page_token};
        const char *what = c->filter ? c->filter : c->page_token ? c->page_token : "no filter";
        struct found got;
        search(t, &q, &got);
        if (got.rc != c->rc)
            fail_msg("%s: rc %d, not %d (%s)", what, got.rc, c->rc, got.err);
        if (c->rc != 0) {
            if (c->err && !strstr(got.err, c->err))
                fail_msg("%s: \"%s\" does not say %s", what, got.err, c->err);
            continue;
        }
        if (got.n != c->n || strncmp(got.text, c->text, strlen(c->text)) != 0 || got.next[0])
            fail_msg("%s: found %zu \"%s\" (next \"%s\"), not %zu \"%s...\"", what, got.n,
                     got.text, got.next, c->n, c->text);
    }
}

/* Searches page after page to the last (at most 10): the pages' text joined in all, and the
 * number of pages. between(t, page), where given, runs after each page. */
static int search_pages(struct store_txn *t, search_fn *search, struct store_rm_query q,
                        char *all, size_t size, void (*between)(struct store_txn *, int))
{
    char tok[STORE_RM_TOKEN_MAX];
    int pages = 0;
    all[0] = '\0';
    do {
        struct found got;
        search(t, &q, &got);
        assert_int_equal(got.rc, 0);
        append(all, size, got.text);
        strcpy(tok, got.next);
        q.page_token = tok;
        pages++;
        if (between)
            between(t, pages);
    } while (tok[0] && pages < 10);
    return pages;
}

/* A model deleted behind the first page (and made again) does not shift the next one. */
static void delete_model_03_after_page_one(struct store_txn *t, int page)
{
    struct store_rm_by b = by("alice");
    if (page == 1) {
        assert_int_equal(store_rm_delete(t, "model-03", &b), 0);
        make_model(t, "model-03");
    }
}

static void search_models_filters_and_pages(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_wtxn(f);
    struct store_rm_by b = by("alice");
    char name[32];
    for (int i = 24; i >= 0; i--) {
        snprintf(name, sizeof name, "model-%02d", i);
        make_model(t, name);
    }
    make_model(t, "Other");
    assert_int_equal(store_rm_tag_set(t, "model-07", "team", "vision", &b), 0);
    assert_int_equal(store_rm_tag_set(t, "Other", "team", "vision", &b), 0);
    commit(t);

    t = fx_wtxn(f);
    char all[512], want[512] = "";
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof name, "model-%02d", i);
        append(want, sizeof want, name);
    }
    struct store_rm_query q = {.filter = "name LIKE 'model-%'", .max_results = 10};
    assert_int_equal(search_pages(t, search_models, q, all, sizeof all,
                                  delete_model_03_after_page_one), 3);
    assert_string_equal(all, want);

    static const struct search_case cases[] = {
        {.filter = "name = 'Other'", .n = 1, .text = "Other"},
        {.filter = "name ILIKE 'other'", .n = 1, .text = "Other"},
        {.filter = "name LIKE 'other'", .n = 0, .text = ""},
        {.filter = "tags.team = 'vision' and name like '%-0_'", .n = 1, .text = "model-07"},
        {.filter = NULL, .n = 26, .text = "Other model-00"}, /* byte order: capitals first */
        {.filter = "name LIKE 'x' OR name = 'y'", .rc = -EINVAL, .err = "column 15"},
        {.filter = "run_id = 'x'", .rc = -EINVAL, .err = "run_id"}, /* a version field */
        {.filter = "name = 'unclosed", .rc = -EINVAL},
        {.max_results = 1001, .rc = -EINVAL},
        {.max_results = 5, .page_token = "zz", .rc = -EINVAL, .err = "page token"},
    };
    check_searches(t, search_models, cases, sizeof cases / sizeof *cases);
    store_abort(t);
}

static void search_versions_by_name_run_and_number_in_pages(void **state)
{
    struct fx *f = *state;
    struct store_txn *t = fx_wtxn(f);
    struct store_rm_by b = by("alice");
    make_model(t, "a");
    make_model(t, "b");
    make_model(t, "c");
    for (int i = 0; i < 5; i++) {
        add_version(t, "a", i % 2 ? "runX" : "runY");
        add_version(t, "b", "runX");
    }
    add_version(t, "c", "runX");
    assert_int_equal(store_mv_tag_set(t, "b", 3, "ok", "1", &b), 0);
    commit(t);

    t = fx_rtxn(f);
    /* all of runX's, in pages of 3: a/4 a/2 b/5 | b/4 b/3 b/2 | b/1 c/1 */
    struct store_rm_query q = {.filter = "run_id = 'runX'", .max_results = 3};
    char all[256];
    assert_int_equal(search_pages(t, search_versions, q, all, sizeof all, NULL), 3);
    assert_string_equal(all, "a/4 a/2 b/5 b/4 b/3 b/2 b/1 c/1");

    static const struct search_case cases[] = {
        {.filter = "name = 'b'", .n = 5, .text = "b/5 b/4 b/3 b/2 b/1"}, /* highest first */
        {.filter = "name = 'a' and version_number >= 4", .n = 2, .text = "a/5 a/4"},
        {.filter = "run_id IN ('runY', 'nope') AND source_path LIKE 'runs:/%'", .n = 3,
         .text = "a/5 a/3 a/1"},
        {.filter = "tags.ok = '1'", .n = 1, .text = "b/3"},
        {.filter = "version_number LIKE '1'", .rc = -EINVAL},
        {.filter = "name IN ('a')", .rc = -EINVAL},
        /* a model token where a version token belongs */
        {.page_token = "61", .rc = -EINVAL},
    };
    check_searches(t, search_versions, cases, sizeof cases / sizeof *cases);
    store_abort(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(model_names_are_unique_and_must_not_be_empty),
        FX_TEST(rename_takes_versions_tags_and_aliases_along),
        FX_TEST(version_numbers_count_up_and_are_never_reused),
        FX_TEST(version_fields_digest_status_and_description),
        FX_TEST(reserved_and_malformed_aliases_are_refused),
        FX_TEST(an_alias_names_one_version_and_moves),
        FX_TEST(deleting_a_version_drops_its_aliases_tags_and_lineage),
        FX_TEST(deleting_a_model_takes_everything_under_it),
        FX_TEST(transition_with_archive_existing_and_latest_versions),
        FX_TEST(tags_of_models_and_versions_are_kept_apart),
        FX_TEST(lineage_lists_the_versions_made_from_a_run),
        FX_TEST(versions_created_from_threads_are_one_to_n),
        FX_TEST(versions_created_from_processes_are_one_to_n),
        FX_TEST(history_lists_every_change_newest_first_in_pages),
        FX_TEST(rollback_walks_back_one_move_at_a_time),
        FX_TEST(rollback_refuses_a_deleted_version),
        FX_TEST(rollback_after_the_aliased_version_was_deleted),
        FX_TEST(rollback_restores_a_deleted_alias),
        FX_TEST(search_models_filters_and_pages),
        FX_TEST(search_versions_by_name_run_and_number_in_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
