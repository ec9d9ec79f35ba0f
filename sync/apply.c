/* apply.c — an agent's batch into the central store: one transaction per batch, holding the
 * ops and the agent's new high-water mark together, so that a crash at any point leaves
 * either all of the batch or none of it, and a resent batch is recognised by its seqs. */
#include "apply.h"

#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int apply_hwm(struct store *s, const uint8_t agent[16], uint64_t *hwm)
{
    struct store_txn *t;
    int r = store_begin(s, false, &t);
    if (r < 0)
        return r;
    struct store_peer p;
    r = store_peer_get(t, agent, &p);
    store_abort(t);
    if (r == -ENOENT) {
        *hwm = 1;
        return 0;
    }
    if (r == 0)
        *hwm = p.hwm;
    return r;
}

/* Runs from agents keep their ids; the server notes where each came from. */
static int apply_run_start(struct store_txn *t, const struct store_op *op, const uint8_t agent[16],
                           const char *host)
{
    struct store_run run = {0};
    memcpy(run.id, op->run, 16);
    int r = store_experiment_ensure(t, op->experiment && *op->experiment ? op->experiment
                                                                         : "Default",
                                    now_ms(), &run.experiment_id);
    if (r < 0)
        return r;
    snprintf(run.name, sizeof run.name, "%s", op->name ? op->name : "");
    snprintf(run.user, sizeof run.user, "%s", op->user ? op->user : "");
    snprintf(run.host, sizeof run.host, "%s", op->host ? op->host : "");
    run.status = STORE_RUN_RUNNING;
    run.start_ms = op->start_ms;
    run.has_parent = op->has_parent;
    memcpy(run.parent, op->parent, 16);
    if ((r = store_run_start(t, &run)) < 0)
        return r;
    char hex[33];
    store_run_id_hex(agent, hex);
    if ((r = store_tag_set(t, op->run, "sidetrack.origin.agent", hex)) < 0)
        return r;
    return store_tag_set(t, op->run, "sidetrack.origin.host", host ? host : "");
}

static int apply_metrics(struct store_txn *t, const struct store_op *op, const uint8_t *raw,
                         uint64_t *points)
{
    if (op->count == 0)
        return 0;
    struct store_point *pts = malloc(op->count * sizeof *pts);
    if (!pts)
        return -ENOMEM;
    for (uint64_t i = 0; i < op->count; i++)
        sync_point_get(raw, i, &pts[i]);
    int r = store_metric_append(t, op->run, op->key, pts, op->count);
    free(pts);
    if (r == 0)
        *points += op->count;
    return r;
}

static int apply_op(struct store_txn *t, const struct sync_msg *m, uint32_t i, const char *host,
                    struct apply_result *res)
{
    const struct store_op *op = &m->ops[i];
    int r;
    if (op->type == STORE_OP_RUN_START)
        return apply_run_start(t, op, m->agent, host);
    if ((r = store_run_touch(t, op->run)) < 0)
        return r;
    switch (op->type) {
    case STORE_OP_RUN_END:
        return store_run_end(t, op->run, op->status, op->end_ms);
    case STORE_OP_PARAM:
        r = store_param_put(t, op->run, op->key, op->value);
        return r == -EEXIST || r == 1 ? 0 : r; /* write-once: the first value stays */
    case STORE_OP_TAG:
        return store_tag_set(t, op->run, op->key, op->value);
    case STORE_OP_METRICS:
        return apply_metrics(t, op, m->points[i], &res->points);
    case STORE_OP_ARTIFACT:
        return store_artifact_put(t, op->run, op->key, op->sha256, op->size);
    case STORE_OP_MODEL_REGISTER:
        /* The server numbers its own versions; the node's digest comes along as it was. */
        return store_mv_register_op(t, op, NULL);
    }
    return -EBADMSG;
}

/* An op that failed: the transaction is dropped; an op the store refuses as invalid makes the
 * batch malformed. */
static int op_failed(struct store_txn *t, int r)
{
    store_abort(t);
    return r == -EINVAL || r == -ENAMETOOLONG ? -EBADMSG : r;
}

typedef int (*apply_fn)(struct store *s, const struct sync_msg *m, const char *host,
                        struct apply_result *res);

/* One transaction of fn, tried again after the store's map is grown when it was full. */
static int with_growth(apply_fn fn, struct store *s, const struct sync_msg *m, const char *host,
                       struct apply_result *res)
{
    for (int tries = 0;; tries++) {
        int r = fn(s, m, host, res);
        if (r == -ENOSPC && store_map_full(s) && tries < 8) {
            int g = store_grow(s);
            if (g < 0)
                return g;
            continue;
        }
        return r;
    }
}

static int apply_once(struct store *s, const struct sync_msg *m, const char *host,
                      struct apply_result *res)
{
    memset(res, 0, sizeof *res);
    struct store_txn *t;
    int r = store_begin(s, true, &t);
    if (r < 0)
        return r;
    struct store_peer peer;
    if ((r = store_peer_get(t, m->agent, &peer)) == -ENOENT) {
        memset(&peer, 0, sizeof peer);
        peer.hwm = 1;
    } else if (r < 0) {
        store_abort(t);
        return r;
    }
    res->hwm = peer.hwm;
    if (m->first > peer.hwm) {
        store_abort(t);
        return -ERANGE;
    }
    for (uint32_t i = 0; i < m->nops; i++) {
        if (m->ops[i].seq < peer.hwm) {
            res->skipped++;
            continue;
        }
        if ((r = apply_op(t, m, i, host, res)) < 0)
            return op_failed(t, r);
        res->applied++;
    }
    if (m->last + 1 > peer.hwm)
        peer.hwm = m->last + 1;
    peer.last_ms = now_ms();
    peer.ops += res->applied;
    peer.batches++;
    snprintf(peer.host, sizeof peer.host, "%s", host ? host : "");
    if ((r = store_peer_put(t, m->agent, &peer)) < 0) {
        store_abort(t);
        return r;
    }
    if ((r = store_commit(t)) < 0)
        return r;
    res->hwm = peer.hwm;
    return 0;
}

int apply_batch(struct store *s, const struct sync_msg *m, const char *host,
                struct apply_result *res)
{
    return with_growth(apply_once, s, m, host, res);
}

/* ---- runs snapshots (bundles of kind "runs") ---- */

struct tag_find {
    const char *key;
    const char *want;
    bool same;
};

static int tag_find_cb(const char *key, const char *value, void *arg)
{
    struct tag_find *f = arg;
    if (strcmp(key, f->key) != 0)
        return 0;
    f->same = strcmp(value, f->want) == 0;
    return 1;
}

struct artifact_find {
    const struct store_op *op;
    bool same;
};

static int artifact_find_cb(const struct store_artifact *a, void *arg)
{
    struct artifact_find *f = arg;
    if (strcmp(a->path, f->op->key) != 0)
        return 0;
    f->same = memcmp(a->sha256, f->op->sha256, 32) == 0 && a->size == f->op->size;
    return 1;
}

struct version_find {
    const char *source, *digest;
    bool same;
};

static int version_find_cb(const struct store_mv *v, void *arg)
{
    struct version_find *f = arg;
    f->same = strcmp(v->source, f->source) == 0 && strcmp(v->digest, f->digest) == 0;
    return f->same ? 1 : 0;
}

/* A registration in a snapshot: made only when the model has no version of that source with
 * that digest yet. 1 made, 0 there already. */
static int snapshot_register(struct store_txn *t, const struct store_op *op)
{
    char hex[33], source[STORE_MV_SOURCE_MAX + 1];
    store_run_id_hex(op->run, hex);
    snprintf(source, sizeof source, "runs:/%s/%s", hex, op->key ? op->key : "");
    struct version_find f = {source, op->digest ? op->digest : "", false};
    int r = op->model ? store_mv_foreach(t, op->model, version_find_cb, &f) : -EINVAL;
    if (r < 0 && r != -ENOENT)
        return r;
    if (f.same)
        return 0;
    r = store_mv_register_op(t, op, NULL);
    return r < 0 ? r : 1;
}

/* The points of a METRICS op that the series lacks: 1 appended, 0 nothing to add. */
static int snapshot_metrics(struct store_txn *t, const struct store_op *op, const uint8_t *raw,
                            uint64_t *points)
{
    struct store_metric_summary sum;
    int r = store_metric_summary_get(t, op->run, op->key, &sum);
    if (r == -ENOENT)
        sum.count = 0;
    else if (r < 0)
        return r;
    if (op->first_index > sum.count)
        return -EBADMSG; /* a gap: the points before first_index are not here */
    uint64_t end = op->first_index + op->count;
    if (sum.count >= end)
        return 0;
    uint64_t skip = sum.count - op->first_index, n = end - sum.count;
    struct store_point *pts = malloc(n * sizeof *pts);
    if (!pts)
        return -ENOMEM;
    for (uint64_t i = 0; i < n; i++)
        sync_point_get(raw, skip + i, &pts[i]);
    r = store_metric_append(t, op->run, op->key, pts, n);
    free(pts);
    if (r < 0)
        return r;
    *points += n;
    return 1;
}

/* One op of a snapshot: 1 when it changed the store, 0 when the store had it already. */
static int snapshot_op(struct store_txn *t, const struct sync_msg *m, uint32_t i,
                       const char *host, struct apply_result *res)
{
    const struct store_op *op = &m->ops[i];
    struct store_run run;
    int r = store_run_get(t, op->run, &run);
    bool exists = r == 0;
    if (r < 0 && r != -ENOENT)
        return r;
    switch (op->type) {
    case STORE_OP_RUN_START:
        if (exists && run.start_ms != 0)
            return 0; /* started here already: its state may be ahead (ended) */
        r = apply_run_start(t, op, m->agent, host);
        return r < 0 ? r : 1;
    case STORE_OP_RUN_END:
        if (exists && run.status == op->status && run.end_ms == op->end_ms)
            return 0;
        r = store_run_end(t, op->run, op->status, op->end_ms);
        return r < 0 ? r : 1;
    default:
        break;
    }
    if (!exists && (r = store_run_touch(t, op->run)) < 0)
        return r;
    switch (op->type) {
    case STORE_OP_PARAM:
        r = store_param_put(t, op->run, op->key, op->value);
        return r == -EEXIST || r == 1 ? 0 : r < 0 ? r : 1; /* write-once */
    case STORE_OP_TAG: {
        struct tag_find f = {op->key, op->value, false};
        if ((r = store_tags_foreach(t, op->run, tag_find_cb, &f)) < 0)
            return r;
        if (f.same)
            return 0;
        r = store_tag_set(t, op->run, op->key, op->value);
        return r < 0 ? r : 1;
    }
    case STORE_OP_METRICS:
        return snapshot_metrics(t, op, m->points[i], &res->points);
    case STORE_OP_ARTIFACT: {
        struct artifact_find f = {op, false};
        if ((r = store_artifacts_foreach(t, op->run, artifact_find_cb, &f)) < 0)
            return r;
        if (f.same)
            return 0;
        r = store_artifact_put(t, op->run, op->key, op->sha256, op->size);
        return r < 0 ? r : 1;
    }
    case STORE_OP_MODEL_REGISTER:
        return snapshot_register(t, op);
    }
    return -EBADMSG;
}

static int snapshot_once(struct store *s, const struct sync_msg *m, const char *host,
                         struct apply_result *res)
{
    memset(res, 0, sizeof *res);
    struct store_txn *t;
    int r = store_begin(s, true, &t);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < m->nops; i++) {
        if ((r = snapshot_op(t, m, i, host, res)) < 0)
            return op_failed(t, r);
        if (r > 0)
            res->applied++;
        else
            res->skipped++;
    }
    return store_commit(t);
}

int apply_snapshot(struct store *s, const struct sync_msg *m, const char *host,
                   struct apply_result *res)
{
    if (m->type != SYNC_BATCH)
        return -EINVAL;
    return with_growth(snapshot_once, s, m, host, res);
}
