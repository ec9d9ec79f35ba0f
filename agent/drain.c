/* drain.c — the agent's core loop body: rings -> one LMDB transaction -> space handed back.
 *
 * A pass visits every lane of every ring, reads up to opt.batch_records published records,
 * applies them to the store inside one write transaction (metric points are gathered per
 * series and appended at the end of the pass, so a block is rewritten once per pass, not once
 * per point), stores each lane's read positions in that same transaction, commits, and only
 * then zeroes the consumed ring space and publishes the new head to the producers. A crash at
 * any instant therefore either loses the whole pass (the records are still in the ring and
 * are read again from the positions in the store) or keeps it whole (invariant 2).
 *
 * Lanes live through generations: a producer claims a free lane, logs, closes it (or dies);
 * the agent drains it to the end, spill file included, marks it finished in the store, frees
 * it (bumping the generation) and forgets its record. Each generation has its own id in the
 * store, so a reused lane never inherits the old positions or dictionaries.
 */
#include "agent.h"
#include "validate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define SERIES_BUCKETS 4096
#define SERIES_MAX 65536          /* series kept between passes before all are freed */
#define SERIES_KEEP_POINTS 65536  /* a point array larger than this is freed after a pass */

struct pending {
    char **paths;        /* spool files to remove after the commit */
    size_t npaths, cap;
    uint8_t (*dead_ids)[STORE_LANE_ID_LEN]; /* lane records to delete in the next pass */
    size_t nids, idcap;
};
static struct pending pend;

uint64_t agent_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Queues a lane record for deletion in the next pass's transaction. */
static int pend_dead_id(const uint8_t id[STORE_LANE_ID_LEN])
{
    if (pend.nids == pend.idcap) {
        size_t n = pend.idcap ? pend.idcap * 2 : 16;
        void *p = realloc(pend.dead_ids, n * sizeof *pend.dead_ids);
        if (!p)
            return -ENOMEM;
        pend.dead_ids = p;
        pend.idcap = n;
    }
    memcpy(pend.dead_ids[pend.nids++], id, STORE_LANE_ID_LEN);
    return 0;
}

static int take_lock(const char *dir, int *fd_out, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/agent.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        snprintf(err, errlen,
                 "another sidetrackd (pid %s) already uses %s: stop it first, or give this one "
                 "another --data and --ring-dir",
                 buf[0] ? strtok(buf, "\n") : "?", dir);
        close(fd);
        return -EBUSY;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* the pid is a courtesy for the message above; the lock is what matters */
    }
    *fd_out = fd;
    return 0;
}

/* ---- lanes: identity, dictionaries, liveness ------------------------------------------- */

static void lane_id(const struct shmlog_arena *ar, uint32_t lane, uint32_t gen,
                    uint8_t id[STORE_LANE_ID_LEN])
{
    memcpy(id, ar->hdr->arena_id, 16);
    for (int i = 0; i < 4; i++) {
        id[16 + i] = (uint8_t)(lane >> (24 - 8 * i));
        id[20 + i] = (uint8_t)(gen >> (24 - 8 * i));
    }
}

static void lane_forget(struct lane_state *ls)
{
    for (uint32_t i = 0; i < ls->nkeys; i++)
        free(ls->keys[i]);
    free(ls->hints);
    free(ls->keys);
    free(ls->runs);
    free(ls->run_known);
    memset(ls, 0, sizeof *ls);
}

static int dict_set_key(struct lane_state *ls, uint32_t id, const char *name)
{
    if (id >= WIRE_MAX_KEYS)
        return -EBADMSG;
    if (id >= ls->nkeys) {
        uint32_t n = ls->nkeys ? ls->nkeys : 64;
        while (n <= id)
            n *= 2;
        char **k = realloc(ls->keys, n * sizeof *k);
        if (!k)
            return -ENOMEM;
        memset(k + ls->nkeys, 0, (n - ls->nkeys) * sizeof *k);
        ls->keys = k;
        ls->nkeys = n;
    }
    char *dup = strdup(name);
    if (!dup)
        return -ENOMEM;
    free(ls->keys[id]);
    ls->keys[id] = dup;
    if (id < ls->nhints)
        ls->hints[id].epoch = 0; /* a redefined id must not reach the old name's series */
    return 0;
}

static int dict_set_run(struct lane_state *ls, uint32_t slot, const uint8_t run[16])
{
    if (slot >= WIRE_MAX_RUNS)
        return -EBADMSG;
    if (slot >= ls->nruns) {
        uint32_t n = ls->nruns ? ls->nruns : 16;
        while (n <= slot)
            n *= 2;
        uint8_t(*r)[16] = realloc(ls->runs, n * sizeof *r);
        if (!r)
            return -ENOMEM;
        ls->runs = r;
        uint8_t *k = realloc(ls->run_known, n);
        if (!k)
            return -ENOMEM;
        memset(k + ls->nruns, 0, n - ls->nruns);
        ls->run_known = k;
        ls->nruns = n;
    }
    memcpy(ls->runs[slot], run, 16);
    ls->run_known[slot] = 1;
    return 0;
}

static const uint8_t *dict_run(const struct lane_state *ls, uint32_t slot)
{
    return slot < ls->nruns && ls->run_known[slot] ? ls->runs[slot] : NULL;
}

static const char *dict_key(const struct lane_state *ls, uint32_t id)
{
    return id < ls->nkeys ? ls->keys[id] : NULL;
}

static int load_dict_entry(uint8_t kind, uint32_t num, const void *val, size_t len, void *arg)
{
    struct lane_state *ls = arg;
    if (kind == 'k') {
        char name[1024];
        if (len >= sizeof name)
            return 0;
        memcpy(name, val, len);
        name[len] = 0;
        return dict_set_key(ls, num, name);
    }
    if (kind == 'r' && len == 16)
        return dict_set_run(ls, num, val);
    return 0;
}

static int lane_adopt(struct agent *a, struct store_txn *t, struct arena_state *as,
                      struct lane_state *ls, uint32_t lane, uint32_t gen, uint64_t owner)
{
    if (ls->adopted)
        lane_forget(ls);
    ls->gen = gen;
    lane_id(&as->arena, lane, gen, ls->id);
    int r = store_lane_get(t, ls->id, &ls->rec);
    if (r == -ENOENT) {
        memset(&ls->rec, 0, sizeof ls->rec);
        ls->rec.uid = (uint32_t)as->arena.file_uid;
        /* The pid in the owner word is the producer's claim; it is recorded only if the kernel
         * confirms that this process maps this ring (else 0: unknown, e.g. already gone). */
        pid_t claimed = SHMLOG_OWNER_PID(owner);
        ls->rec.pid = claimed > 0 && shmlog_pid_maps_file(claimed, as->dev, as->ino)
                          ? (uint32_t)claimed
                          : 0;
        ls->dirty = true;
    } else if (r < 0) {
        return r;
    } else if ((r = store_lane_dict_foreach(t, ls->id, load_dict_entry, ls)) < 0) {
        return r;
    }
    ls->committed_pos = ls->rec.ring_pos;
    ls->spill_pos = ls->spill_committed = ls->rec.spill_pos;
    /* "finished" in the store is not trusted: the producer's process may have reopened the
     * lane since (after an agent crash between that commit and the free). drain_lane decides
     * again; a lane that is really closed and drained finishes again in this pass. */
    ls->finished = false;
    ls->rec.finished = false;
    ls->owner_seen = owner;
    shmlog_cursor_init(&ls->cur, &as->arena, lane, ls->rec.ring_pos);
    /* An agent killed between a commit and its release left committed space unreleased: hand
     * it back now, or a producer that is blocked on it would wait for the next record that
     * never comes. The position is the store's, so this releases only committed records. */
    shmlog_release(&ls->cur, ls->rec.ring_pos);
    ls->adopted = true;
    (void)a;
    return 0;
}

/* ---- the series table of a pass -------------------------------------------------------- */

static uint64_t series_hash(const uint8_t run[16], const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ run[i]) * 1099511628211ull;
    while (*key)
        h = (h ^ (unsigned char)*key++) * 1099511628211ull;
    return h;
}

static void lane_skipped(struct agent *a, struct lane_state *ls, uint64_t n)
{
    ls->rec.skipped += n;
    a->skipped_total += n;
}

static void series_free_all(struct agent *a)
{
    for (size_t h = 0; h < a->nbuckets; h++)
        for (struct series *s = a->buckets[h], *next; s; s = next) {
            next = s->next;
            free(s->key);
            free(s->pts);
            free(s);
        }
    if (a->buckets) /* agent_fini after a failed agent_init: none were made */
        memset(a->buckets, 0, a->nbuckets * sizeof *a->buckets);
    a->active = NULL;
    a->nseries = 0;
    a->series_epoch++;
}

static struct series *series_get(struct agent *a, const uint8_t run[16], const char *key)
{
    uint64_t h = series_hash(run, key) & (a->nbuckets - 1);
    for (struct series *s = a->buckets[h]; s; s = s->next)
        if (!memcmp(s->run, run, 16) && !strcmp(s->key, key))
            return s;
    struct series *s = calloc(1, sizeof *s);
    if (!s || !(s->key = strdup(key))) {
        free(s);
        return NULL;
    }
    memcpy(s->run, run, 16);
    s->next = a->buckets[h];
    a->buckets[h] = s;
    a->nseries++;
    return s;
}

static int series_push(struct agent *a, struct series *s, int64_t step, int64_t ts_ms,
                       double value)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        struct store_point *p = realloc(s->pts, ncap * sizeof *p);
        if (!p)
            return -ENOMEM;
        s->pts = p;
        s->cap = ncap;
    }
    if (s->n == 0) {
        s->next_active = a->active;
        a->active = s;
    }
    s->pts[s->n++] = (struct store_point){step, ts_ms, value};
    return 0;
}

/* The series of (run slot, key id) in a lane, through the lane's hint for that key. */
static struct series *lane_series(struct agent *a, struct lane_state *ls, uint32_t slot,
                                  uint32_t key_id, const uint8_t run[16], const char *key)
{
    if (key_id < ls->nhints) {
        struct series_hint *h = &ls->hints[key_id];
        if (h->epoch == a->series_epoch && h->run == slot)
            return h->s;
    } else if (key_id < ls->nkeys) {
        struct series_hint *nh = realloc(ls->hints, ls->nkeys * sizeof *nh);
        if (nh) {
            memset(nh + ls->nhints, 0, (ls->nkeys - ls->nhints) * sizeof *nh);
            ls->hints = nh;
            ls->nhints = ls->nkeys;
        }
    }
    struct series *s = series_get(a, run, key);
    if (s && key_id < ls->nhints)
        ls->hints[key_id] = (struct series_hint){a->series_epoch, slot, s};
    return s;
}

static void series_clear(struct agent *a)
{
    for (struct series *s = a->active, *next; s; s = next) {
        next = s->next_active;
        s->n = 0;
        s->next_active = NULL;
        if (s->cap > SERIES_KEEP_POINTS) {
            free(s->pts);
            s->pts = NULL;
            s->cap = 0;
        }
    }
    a->active = NULL;
    if (a->nseries > SERIES_MAX)
        series_free_all(a);
}

/* A store refusal that concerns one record (a key too long for the store, a value it cannot
 * hold) skips that record; anything else fails the pass, which is retried. */
static bool record_refused(int r) { return r == -ENAMETOOLONG || r == -EINVAL || r == -E2BIG; }

static int series_flush(struct agent *a, struct store_txn *t, uint64_t *skipped)
{
    for (struct series *s = a->active; s; s = s->next_active) {
        int r = store_metric_append(t, s->run, s->key, s->pts, s->n);
        if (record_refused(r)) {
            agent_log("warning", "metric %s refused by the store (%s); %zu points skipped",
                      s->key, store_strerror(r), s->n);
            *skipped += s->n;
            continue;
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- records -------------------------------------------------------------------------- */

static int64_t stamp_ms(const struct agent *a, const struct arena_state *as, uint8_t flags,
                        int64_t ts)
{
    if (flags & WIRE_F_TS_MS)
        return ts;
    if (as->arena.clock == SHMLOG_CLOCK_TSC)
        return tsc_to_ms(a, ts);
    return ts / 1000000;
}

static int push_spool(const char *path)
{
    if (pend.npaths == pend.cap) {
        size_t n = pend.cap ? pend.cap * 2 : 16;
        char **p = realloc(pend.paths, n * sizeof *p);
        if (!p)
            return -ENOMEM;
        pend.paths = p;
        pend.cap = n;
    }
    if (!(pend.paths[pend.npaths] = strdup(path)))
        return -ENOMEM;
    pend.npaths++;
    return 0;
}

/* An artifact's spool file must sit directly in one of the two spool directories and belong
 * to the ring's owner, so that a producer cannot make the agent read another user's file. */
static bool spool_path_ok(const struct agent *a, const struct arena_state *as, const char *path,
                          struct stat *st)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path || strstr(path, "/../") || strstr(path, "/./"))
        return false;
    size_t dlen = (size_t)(slash - path);
    char ring_spool[4200];
    snprintf(ring_spool, sizeof ring_spool, "%s/spool", a->opt.ring_dir);
    bool dir_ok = (strlen(a->spool_dir) == dlen && !strncmp(path, a->spool_dir, dlen)) ||
                  (strlen(ring_spool) == dlen && !strncmp(path, ring_spool, dlen));
    if (!dir_ok || lstat(path, st) < 0 || !S_ISREG(st->st_mode))
        return false;
    return st->st_uid == as->arena.file_uid;
}

static int apply_artifact(struct agent *a, struct store_txn *t, const struct arena_state *as,
                          const uint8_t run[16], const struct decoded *d)
{
    struct stat st;
    if (!spool_path_ok(a, as, d->value, &st)) {
        agent_log("warning", "artifact %s: spool file %s is missing or not the ring owner's; "
                             "skipped", d->key, d->value);
        return 1;
    }
    uint8_t sha[32];
    uint64_t size = 0;
    int r = store_blob_ingest(a->store, d->value, false, sha, &size);
    if (r == -ENOENT || r == -EACCES || r == -EPERM || r == -ELOOP || r == -EISDIR ||
        r == -EINVAL) {
        /* This record's file, not the store: skip it, or one bad file would stall every lane. */
        agent_log("warning", "artifact %s: cannot read spool file %s (%s); skipped", d->key,
                  d->value, strerror(-r));
        return 1;
    }
    if (r < 0)
        return r; /* ENOSPC, EIO on the store's side: retry the pass */
    if ((r = store_artifact_put(t, run, d->key, sha, size)) < 0)
        return r;
    return push_spool(d->value);
}

/* Invariant 4: a producer writes only to runs of its own uid, as the kernel reports it (the
 * ring file's owner), whatever run id its records name. Returns 0, 1 (refused and said), or a
 * store error. */
static int claim_run(struct store_txn *t, const struct arena_state *as, const uint8_t run[16])
{
    int r = store_run_claim(t, run, (uint32_t)as->arena.file_uid);
    if (r != -EPERM)
        return r;
    char hex[33];
    store_run_id_hex(run, hex);
    struct store_run owner;
    unsigned owner_uid = store_run_get(t, run, &owner) == 0 ? owner.uid : 0;
    agent_log("warning", "%s (uid %u): records for run %s refused: that run belongs to uid %u",
              as->arena.path, (unsigned)as->arena.file_uid, hex, owner_uid);
    return 1;
}

static int apply_run_start(struct agent *a, struct store_txn *t, const struct arena_state *as,
                           const struct lane_state *ls, const struct decoded *d)
{
    struct store_run run = {0};
    memcpy(run.id, d->run_id, 16);
    int r = claim_run(t, as, run.id);
    if (r != 0)
        return r;
    r = store_experiment_ensure(t, d->experiment, (int64_t)(agent_now_ns() / 1000000),
                                    &run.experiment_id);
    if (r < 0)
        return r;
    snprintf(run.name, sizeof run.name, "%s", d->run_name ? d->run_name : "");
    run.status = STORE_RUN_RUNNING;
    run.start_ms = d->time_ms;
    snprintf(run.user, sizeof run.user, "%s", d->user ? d->user : "");
    snprintf(run.host, sizeof run.host, "%s", d->host ? d->host : "");
    run.has_parent = d->has_parent;
    memcpy(run.parent, d->parent, 16);
    run.uid = (uint32_t)as->arena.file_uid; /* the kernel's word, not the client's */
    run.pid = ls->rec.pid;
    if ((r = store_run_start(t, &run)) < 0)
        return r;
    /* MLflow's system tags, so that MLflow's tools show what they expect. */
    if (d->user && (r = store_tag_set(t, run.id, "mlflow.user", d->user)) < 0)
        return r;
    if (d->run_name && (r = store_tag_set(t, run.id, "mlflow.runName", d->run_name)) < 0)
        return r;
    if (d->has_parent) {
        char hex[33];
        store_run_id_hex(d->parent, hex);
        if ((r = store_tag_set(t, run.id, "mlflow.parentRunId", hex)) < 0)
            return r;
    }
    if (d->host && (r = store_tag_set(t, run.id, "sidetrack.host", d->host)) < 0)
        return r;
    return 0;
}

static int spill_drain(struct agent *a, struct store_txn *t, struct arena_state *as,
                       struct lane_state *ls, uint32_t lane, uint64_t upto);

/* Applies one record. Returns 0, 1 when the record was skipped (counted), or a store error. */
static int handle_record(struct agent *a, struct store_txn *t, struct arena_state *as,
                         struct lane_state *ls, uint32_t lane, const struct shmlog_rec *rec,
                         uint32_t len, bool from_spill)
{
    struct decoded d;
    if (decode_record(&a->dec, rec, len, &d) < 0)
        return 1;
    const uint8_t *run;
    int r = 0;
    switch (d.type) {
    case SHMLOG_REC_PAD:
        return 0;
    case SHMLOG_REC_SPILL_MARK:
        return from_spill ? 1 : spill_drain(a, t, as, ls, lane, d.spill_upto);
    case WIRE_METRIC: {
        const struct wire_metric *m = d.metric;
        const char *key = dict_key(ls, m->key);
        if (!(run = dict_run(ls, m->run)) || !key)
            return 1;
        struct series *s = lane_series(a, ls, m->run, m->key, run, key);
        if (!s)
            return -ENOMEM;
        return series_push(a, s, m->step, stamp_ms(a, as, m->h.flags, m->ts), m->value);
    }
    case WIRE_METRICS: {
        const struct wire_metrics *m = d.metrics;
        if (!(run = dict_run(ls, m->run)))
            return 1;
        int64_t ts = stamp_ms(a, as, m->h.flags, m->ts);
        const struct wire_metric_entry *e = (const struct wire_metric_entry *)(m + 1);
        int skipped = 0;
        for (uint32_t i = 0; i < m->count; i++) {
            const char *key = dict_key(ls, e[i].key);
            if (!key) {
                skipped = 1;
                continue;
            }
            struct series *s = lane_series(a, ls, m->run, e[i].key, run, key);
            if (!s)
                return -ENOMEM;
            if ((r = series_push(a, s, m->step, ts, e[i].value)) < 0)
                return r;
        }
        return skipped;
    }
    case WIRE_KEYDEF:
        if (st__check_key(d.key) < 0 || dict_set_key(ls, d.slot, d.key) < 0)
            return 1;
        return store_lane_dict_put(t, ls->id, 'k', d.slot, d.key, strlen(d.key));
    case WIRE_RUNDEF:
        if ((r = claim_run(t, as, d.run_id)) != 0)
            return r; /* refused: the slot stays unknown, so its records are skipped */
        if (dict_set_run(ls, d.slot, d.run_id) < 0)
            return 1;
        return store_lane_dict_put(t, ls->id, 'r', d.slot, d.run_id, 16);
    case WIRE_RUN_START:
        return apply_run_start(a, t, as, ls, &d);
    }
    if (!(run = dict_run(ls, d.slot)))
        return 1;
    switch (d.type) {
    case WIRE_RUN_END:
        return store_run_end(t, run, (int)d.status, d.time_ms);
    case WIRE_PARAM:
        if (st__check_key(d.key) < 0)
            return 1;
        r = store_param_put(t, run, d.key, d.value);
        if (r == -EEXIST) {
            char hex[33];
            store_run_id_hex(run, hex);
            agent_log("warning", "run %s: param %s logged again with another value; the first "
                                 "value is kept (params are write-once)", hex, d.key);
            return 1;
        }
        return r < 0 ? r : 0;
    case WIRE_TAG:
        if (st__check_key(d.key) < 0)
            return 1;
        return store_tag_set(t, run, d.key, d.value);
    case WIRE_ARTIFACT:
        return apply_artifact(a, t, as, run, &d);
    case WIRE_MODEL_REGISTER:
        return agent_model_register(t, (uint32_t)as->arena.file_uid, run, &d);
    default:
        return 1;
    }
}

static int spill_drain(struct agent *a, struct store_txn *t, struct arena_state *as,
                       struct lane_state *ls, uint32_t lane, uint64_t upto)
{
    if (upto != UINT64_MAX && upto <= ls->spill_pos)
        return 0;
    char path[4200];
    int r = shmlog_spill_path(&as->arena, lane, ls->gen, path, sizeof path);
    if (r < 0)
        return 1;
    struct shmlog_spill_reader sr;
    r = shmlog_spill_open(&sr, path, ls->spill_pos);
    if (r == -ENOENT)
        return upto == UINT64_MAX ? 0 : 1;
    if (r < 0)
        return r;
    struct stat st;
    if (fstat(sr.fd, &st) < 0 || st.st_uid != as->arena.file_uid) {
        /* Not written by the ring's owner: its records would be attributed to them. */
        agent_log("warning", "%s: spill file not owned by the ring's owner; ignored", path);
        shmlog_spill_close(&sr);
        if (upto != UINT64_MAX)
            ls->spill_pos = upto;
        return 1;
    }
    for (;;) {
        const struct shmlog_rec *rec;
        int n = shmlog_spill_next(&sr, upto, &rec);
        if (n == 0)
            break;
        if (n < 0) {
            agent_log("warning", "%s: damaged spill record at offset %llu (%s); the rest of the "
                                 "file up to the next mark is skipped",
                      path, (unsigned long long)sr.pos, strerror(-n));
            lane_skipped(a, ls, 1);
            if (upto != UINT64_MAX)
                ls->spill_pos = upto;
            break;
        }
        r = handle_record(a, t, as, ls, lane, rec, (uint32_t)n, true);
        if (record_refused(r))
            r = 1;
        if (r < 0) {
            shmlog_spill_close(&sr);
            return r;
        }
        lane_skipped(a, ls, (uint64_t)r);
        ls->rec.records++;
        ls->spill_pos = sr.pos;
    }
    shmlog_spill_close(&sr);
    ls->dirty = true;
    return 0;
}

/* Reads what lane i has published, up to *budget records. Returns records read or an error. */
static int drain_lane(struct agent *a, struct store_txn *t, struct arena_state *as, uint32_t i,
                      uint32_t *budget)
{
    struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&as->arena, i);
    struct lane_state *ls = &as->lanes[i];
    uint64_t owner = atomic_load_explicit(&ctl->owner, memory_order_acquire);
    if (owner == 0 || (owner & SHMLOG_OWNER_FREEING))
        return 0;
    uint32_t gen = atomic_load_explicit(&ctl->generation, memory_order_acquire);
    int r;
    if (!ls->adopted || ls->gen != gen) {
        if ((r = lane_adopt(a, t, as, ls, i, gen, owner)) < 0)
            return r;
    }
    if (ls->finished)
        return 0; /* freed after the commit */
    int n = 0, rc = 0;
    while (*budget && !ls->corrupt) {
        const struct shmlog_rec *rec;
        rc = shmlog_peek(&ls->cur, &rec);
        if (rc > 0) {
            r = handle_record(a, t, as, ls, i, rec, (uint32_t)rc, false);
            if (record_refused(r))
                r = 1;
            if (r < 0)
                return r;
            lane_skipped(a, ls, (uint64_t)r);
            ls->cur.pos += (uint64_t)rc;
            if (rec->type != SHMLOG_REC_PAD) {
                ls->rec.records++;
                (*budget)--;
                n++;
            }
            ls->dirty = true;
            continue;
        }
        if (rc == -EINPROGRESS && shmlog_owner_dead(ctl, owner)) {
            int32_t skip = shmlog_peek_inprogress_len(&ls->cur);
            if (skip > 0) {
                ls->cur.pos += (uint64_t)skip; /* a record its dead producer never finished */
                lane_skipped(a, ls, 1);
                ls->dirty = true;
                continue;
            }
            rc = -EBADMSG;
        }
        if (rc == -EBADMSG) {
            ls->corrupt = true;
            agent_log("error", "%s lane %u: impossible record header at position %llu; the rest "
                               "of this lane is skipped until its producer ends",
                      as->arena.path, i, (unsigned long long)ls->cur.pos);
        }
        break;
    }
    /* Watch the drop counter, so that a user learns the agent fell behind. */
    uint64_t drops = atomic_load_explicit(&ctl->dropped_metrics, memory_order_relaxed);
    if (drops != ls->rec.dropped) {
        if (drops >= 2 * ls->reported_drops + 1) { /* at 1, 3, 7, ...: news, not noise */
            agent_log("warning", "%s lane %u (pid %d): %llu metric points dropped so far on a full "
                                 "lane; raise SIDETRACK_LANE_MB or log less often",
                      as->arena.path, i, (int)SHMLOG_OWNER_PID(owner), (unsigned long long)drops);
            ls->reported_drops = drops;
        }
        if (drops > ls->rec.dropped)
            a->dropped_total += drops - ls->rec.dropped;
        ls->rec.dropped = drops;
        ls->dirty = true;
    }
    uint64_t lost = atomic_load_explicit(&ctl->lost_records, memory_order_relaxed);
    if (lost != ls->rec.lost) {
        if (lost > ls->rec.lost)
            a->lost_total += lost - ls->rec.lost;
        ls->rec.lost = lost;
        ls->dirty = true;
    }
    if (rc != 0 && !ls->corrupt)
        return n; /* more to read, or a live producer mid-record */
    if (!*budget)
        return n;
    /* Drained. Is the producer gone? Check a live-looking owner at most once a second. */
    bool closed = owner & SHMLOG_OWNER_CLOSED;
    if (!closed) {
        uint64_t now = agent_now_ns();
        if (now - ls->last_liveness_ns < 1000000000ull && !ls->corrupt)
            return n;
        ls->last_liveness_ns = now;
        if (!shmlog_owner_dead(ctl, owner))
            return n;
        if (!shmlog_lane_close_dead(ctl, owner))
            return n; /* it changed under us: look again next pass */
        owner |= SHMLOG_OWNER_CLOSED;
        /* Records published just before death are visible now: read them next pass. */
        if (!ls->corrupt && shmlog_peek(&ls->cur, &(const struct shmlog_rec *){0}) != 0)
            return n;
    }
    if ((r = spill_drain(a, t, as, ls, i, UINT64_MAX)) < 0)
        return r;
    ls->finished = true;
    ls->rec.finished = true;
    ls->owner_seen = owner;
    ls->dirty = true;
    return n;
}

/* Forgets ring k: its lanes' state, its mapping, its place in the list. */
static void arena_remove(struct agent *a, size_t k)
{
    struct arena_state *as = a->arenas[k];
    for (uint32_t i = 0; i < as->arena.lane_count; i++)
        if (as->lanes[i].adopted)
            lane_forget(&as->lanes[i]);
    free(as->lanes);
    shmlog_arena_close(&as->arena);
    free(as);
    memmove(&a->arenas[k], &a->arenas[k + 1], (a->narenas - k - 1) * sizeof *a->arenas);
    a->narenas--;
}

/* ---- a ring cut short under the agent ----------------------------------------------------
 * Ring files belong to their users, who can truncate them while the agent has them mapped:
 * the next read of a page past the new end raises SIGBUS. The agent reads ring memory only in
 * its own code between the points armed below (never inside LMDB), so it jumps back out of
 * the handler, drops that ring (its unread records are lost; the user did it) and goes on. */
static sigjmp_buf bus_env;
static volatile sig_atomic_t bus_armed;

static void on_sigbus(int sig)
{
    if (bus_armed)
        siglongjmp(bus_env, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void arena_drop(struct agent *a, size_t k)
{
    agent_log("error", "ring %s was truncated or damaged while mapped (SIGBUS); dropped: what "
                       "its producers had not yet stored is lost",
              a->arenas[k]->arena.path);
    arena_remove(a, k);
}

/* ---- after the commit ------------------------------------------------------------------ */

/* Crash points for the tests (SIDETRACK_AGENT_CRASH_AT=name): the agent dies there as if
 * killed with -9, so that the tests can hit the instants a random kill rarely does. */
static void crash_point(const char *name)
{
    static const char *at;
    static bool looked;
    if (!looked) {
        at = getenv("SIDETRACK_AGENT_CRASH_AT");
        looked = true;
    }
    if (at && !strcmp(at, name))
        _exit(137);
}

static void lanes_committed(struct agent *a)
{
    crash_point("after-commit");
    volatile size_t bus_k = 0;
    if (sigsetjmp(bus_env, 1)) {
        bus_armed = 0;
        arena_drop(a, bus_k); /* what it held is committed; only the hand-back failed */
        return;
    }
    bus_armed = 1;
    for (size_t k = 0; k < a->narenas; k++) {
        bus_k = k;
        struct arena_state *as = a->arenas[k];
        for (uint32_t i = 0; i < as->arena.lane_count; i++) {
            struct lane_state *ls = &as->lanes[i];
            if (!ls->adopted)
                continue;
            if (ls->dirty) {
                ls->committed_pos = ls->cur.pos;
                ls->spill_committed = ls->spill_pos;
                shmlog_release(&ls->cur, ls->cur.pos);
                ls->dirty = false;
            }
            if (!ls->finished)
                continue;
            crash_point("before-free");
            int r = shmlog_lane_free(&as->arena, i, ls->owner_seen);
            if (r == -EAGAIN) {
                /* The producer process reopened its closed lane: keep draining it. */
                ls->finished = false;
                ls->rec.finished = false;
                ls->dirty = true;
                continue;
            }
            char path[4200];
            if (shmlog_spill_path(&as->arena, i, ls->gen, path, sizeof path) == 0)
                unlink(path);
            /* Without memory the record stays; the startup cleanup removes it. */
            pend_dead_id(ls->id);
            lane_forget(ls);
        }
    }
    bus_armed = 0;
    for (size_t i = 0; i < pend.npaths; i++) {
        unlink(pend.paths[i]);
        free(pend.paths[i]);
    }
    pend.npaths = 0;
}

static void pass_rollback(struct agent *a)
{
    /* Forget what the pass learned: lanes are re-adopted from the store's positions. */
    for (size_t k = 0; k < a->narenas; k++) {
        struct arena_state *as = a->arenas[k];
        for (uint32_t i = 0; i < as->arena.lane_count; i++)
            if (as->lanes[i].adopted)
                lane_forget(&as->lanes[i]);
    }
    for (size_t i = 0; i < pend.npaths; i++)
        free(pend.paths[i]);
    pend.npaths = 0;
}

struct pass_acc {
    uint32_t budget;
    int total;
    bool dirty;
};

/* Reads every lane of every ring into the pass (ring memory is touched here: see SIGBUS). */
static int drain_arenas(struct agent *a, struct store_txn *t, struct pass_acc *acc,
                        volatile size_t *bus_k)
{
    for (size_t k = 0; k < a->narenas; k++) {
        *bus_k = k;
        struct arena_state *as = a->arenas[k];
        uint64_t now = agent_now_ns();
        atomic_store_explicit(&as->arena.hdr->agent_heartbeat_ns, now, memory_order_relaxed);
        for (uint32_t i = 0; i < as->arena.lane_count && acc->budget; i++) {
            int r = drain_lane(a, t, as, i, &acc->budget);
            if (r < 0)
                return r;
            acc->total += r;
            acc->dirty |= as->lanes[i].dirty;
        }
    }
    return 0;
}

/* Writes what a pass gathered, commits, and hands ring space back. Returns records stored,
 * 0 when there was nothing to commit, or an error (*tp is NULL once the commit consumed it). */
static int pass_finish(struct agent *a, struct store_txn **tp, const struct pass_acc *acc)
{
    struct store_txn *t = *tp;
    int total = acc->total;
    int r;
    if (!acc->dirty) {
        store_abort(t);
        *tp = NULL;
        series_clear(a);
        decode_reset(&a->dec);
        return 0;
    }
    uint64_t refused = 0;
    if ((r = series_flush(a, t, &refused)) < 0)
        return r;
    if (refused && (r = store_counter_add(t, "points_refused", refused)) < 0)
        return r;
    for (size_t k = 0; k < a->narenas; k++) {
        struct arena_state *as = a->arenas[k];
        for (uint32_t i = 0; i < as->arena.lane_count; i++) {
            struct lane_state *ls = &as->lanes[i];
            if (!ls->adopted || !ls->dirty)
                continue;
            ls->rec.ring_pos = ls->cur.pos;
            ls->rec.spill_pos = ls->spill_pos;
            if ((r = store_lane_put(t, ls->id, &ls->rec)) < 0)
                return r;
        }
    }
    if (total && (r = store_counter_add(t, "records_in", (uint64_t)total)) < 0)
        return r;
    series_clear(a);
    decode_reset(&a->dec);
    r = store_commit(t);
    *tp = NULL; /* freed by the commit, failed or not */
    if (r < 0)
        return r;
    pend.nids = 0;
    a->commits++;
    a->records_total += (uint64_t)total;
    a->unsynced = true;
    if (a->opt.fsync_interval_ms == 0)
        a->unsynced = false; /* the commit itself fsynced */
    lanes_committed(a);
    return total;
}

int agent_drain_pass(struct agent *a)
{
    tsc_update(a);
    struct store_txn *t;
    int r = store_begin(a->store, true, &t);
    if (r < 0)
        return r;
    for (size_t i = 0; i < pend.nids; i++)
        if ((r = store_lane_delete(t, pend.dead_ids[i])) < 0 && r != -ENOENT)
            goto fail;
    struct pass_acc acc = {.budget = a->opt.batch_records, .dirty = pend.nids > 0};
    volatile size_t bus_k = 0;
    if (sigsetjmp(bus_env, 1)) {
        bus_armed = 0;
        pass_rollback(a);
        arena_drop(a, bus_k);
        r = -EAGAIN; /* the pass is abandoned; the next one goes on without that ring */
        goto fail;
    }
    bus_armed = 1;
    r = drain_arenas(a, t, &acc, &bus_k);
    bus_armed = 0;
    if (r < 0)
        goto fail;
    r = pass_finish(a, &t, &acc);
    if (r >= 0)
        return r;

fail:
    store_abort(t);
    series_clear(a);
    decode_reset(&a->dec);
    pass_rollback(a);
    /* LMDB reports a write cut short by a full disk as EIO: name the real cause. */
    if (r == -EIO) {
        struct statvfs vfs;
        if (statvfs(a->opt.data_dir, &vfs) == 0 &&
            (uint64_t)vfs.f_bavail * vfs.f_bsize < (4ull << 20))
            r = -ENOSPC;
    }
    if (r == -ENOSPC && store_map_full(a->store)) {
        int g = store_grow(a->store);
        if (g == 0) {
            agent_log("info", "store map full: grown; retrying");
            return -EAGAIN;
        }
        r = g;
    }
    if (r != -EAGAIN)
        snprintf(a->last_error, sizeof a->last_error, "%s", store_strerror(r));
    return r;
}

int agent_maybe_sync(struct agent *a, bool force)
{
    if (!a->unsynced)
        return 0;
    uint64_t now = agent_now_ns();
    if (!force && now - a->last_sync_ns < (uint64_t)a->opt.fsync_interval_ms * 1000000ull)
        return 0;
    int r = store_sync(a->store);
    if (r == 0) {
        a->unsynced = false;
        a->last_sync_ns = now;
    }
    return r;
}

/* ---- rings ----------------------------------------------------------------------------- */

static bool name_is_ring(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".ring") && !strstr(name, ".tmp.");
}

void agent_scan(struct agent *a)
{
    DIR *d = opendir(a->opt.ring_dir);
    if (!d)
        return;
    for (size_t k = 0; k < a->narenas; k++)
        a->arenas[k]->seen = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!name_is_ring(e->d_name))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", a->opt.ring_dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        bool known = false;
        for (size_t k = 0; k < a->narenas && !known; k++)
            if (a->arenas[k]->dev == st.st_dev && a->arenas[k]->ino == st.st_ino)
                known = a->arenas[k]->seen = true;
        if (known)
            continue;
        struct arena_state *as = calloc(1, sizeof *as);
        if (!as)
            break;
        int r = shmlog_arena_open(&as->arena, path, 0, NULL);
        if (r < 0) {
            /* Say it once per file and inode, not every scan. */
            static ino_t warned[64];
            static size_t nwarned;
            bool said = false;
            for (size_t w = 0; w < nwarned; w++)
                said |= warned[w] == st.st_ino;
            if (!said) {
                agent_log("error", "ring %s refused: %s", path, shmlog_strerror(r));
                if (nwarned < 64)
                    warned[nwarned++] = st.st_ino;
            }
            free(as);
            continue;
        }
        as->lanes = calloc(as->arena.lane_count, sizeof *as->lanes);
        struct arena_state **na = realloc(a->arenas, (a->narenas + 1) * sizeof *na);
        if (!as->lanes || !na) {
            free(as->lanes);
            shmlog_arena_close(&as->arena);
            free(as);
            break;
        }
        a->arenas = na;
        as->dev = st.st_dev;
        as->ino = st.st_ino;
        as->seen = true;
        atomic_store(&as->arena.hdr->agent_pid, (uint32_t)getpid());
        /* Advertise the spool (on disk) so artifacts skip the RAM-backed ring directory; a
         * path too long for the header is not advertised and producers use the fallback. */
        size_t sl = strlen(a->spool_dir);
        if (sl < sizeof as->arena.hdr->spool_dir && strcmp(as->arena.hdr->spool_dir, a->spool_dir))
            memcpy(as->arena.hdr->spool_dir, a->spool_dir, sl + 1);
        double hz = 1e9 / a->ns_per_tick;
        uint64_t bits;
        memcpy(&bits, &hz, sizeof bits);
        atomic_store(&as->arena.hdr->tsc_per_sec_bits, bits);
        a->arenas[a->narenas++] = as;
        if (a->opt.verbose)
            agent_log("info", "draining ring %s (%u lanes of %llu KiB)", path,
                      as->arena.lane_count,
                      (unsigned long long)(as->arena.lane_size >> 10));
    }
    closedir(d);
    /* A ring whose file was deleted (or replaced) is let go once no lane of it is in use:
     * producers that still map it have closed or died and been drained. */
    for (size_t k = 0; k < a->narenas;) {
        struct arena_state *as = a->arenas[k];
        bool busy = as->seen;
        for (uint32_t i = 0; i < as->arena.lane_count && !busy; i++)
            busy = as->lanes[i].adopted ||
                   atomic_load_explicit(&shmlog_lane_ctl(&as->arena, i)->owner,
                                        memory_order_acquire) != 0;
        if (busy) {
            k++;
            continue;
        }
        if (a->opt.verbose)
            agent_log("info", "ring %s is gone and idle: unmapped", as->arena.path);
        arena_remove(a, k);
    }
    a->last_scan_ns = agent_now_ns();
}

void agent_maybe_scan(struct agent *a)
{
    bool due = agent_now_ns() - a->last_scan_ns > 1000000000ull;
    if (a->inotify_fd >= 0) {
        char buf[4096];
        ssize_t n;
        while ((n = read(a->inotify_fd, buf, sizeof buf)) > 0)
            due = true; /* any creation or rename into the directory */
    }
    if (due)
        agent_scan(a);
}

/* Lane records of generations that are gone (freed before a crash, or rings deleted). */
static int cleanup_stale_lane(const uint8_t id[STORE_LANE_ID_LEN], const struct store_lane *l,
                              void *arg)
{
    struct agent *a = arg;
    if (!l->finished)
        return 0;
    uint32_t lane = (uint32_t)id[16] << 24 | (uint32_t)id[17] << 16 | (uint32_t)id[18] << 8 | id[19];
    uint32_t gen = (uint32_t)id[20] << 24 | (uint32_t)id[21] << 16 | (uint32_t)id[22] << 8 | id[23];
    for (size_t k = 0; k < a->narenas; k++) {
        struct shmlog_arena *ar = &a->arenas[k]->arena;
        if (memcmp(ar->hdr->arena_id, id, 16) || lane >= ar->lane_count)
            continue;
        uint32_t now = atomic_load(&shmlog_lane_ctl(ar, lane)->generation);
        if (now == gen)
            return 0; /* still to be freed: the first pass does it */
        char path[4200];
        if (shmlog_spill_path(ar, lane, gen, path, sizeof path) == 0)
            unlink(path);
    }
    return pend_dead_id(id);
}

int agent_init(struct agent *a, const struct agent_options *opt, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->opt = *opt;
    a->lock_fd = -1;
    a->inotify_fd = -1;
    int r;
    if ((r = shmlog_mkdir(opt->data_dir, 0755)) < 0) {
        snprintf(err, errlen, "cannot create data directory %s: %s", opt->data_dir, strerror(-r));
        return r;
    }
    if ((r = shmlog_mkdir(opt->ring_dir, 01777)) < 0) {
        snprintf(err, errlen, "cannot create ring directory %s: %s", opt->ring_dir, strerror(-r));
        return r;
    }
    if ((r = take_lock(opt->data_dir, &a->lock_fd, err, errlen)) < 0)
        return r;
    snprintf(a->spool_dir, sizeof a->spool_dir, "%s/spool", opt->data_dir);
    if ((r = shmlog_mkdir(a->spool_dir, 01777)) < 0) {
        snprintf(err, errlen, "cannot create spool directory %s: %s", a->spool_dir, strerror(-r));
        return r;
    }
    /* Always journaled: a node that syncs later (or never had a server) replicates it all. */
    r = store_open(&a->store, opt->data_dir,
                   STORE_JOURNAL | (opt->fsync_interval_ms ? STORE_NOSYNC : 0),
                   (uint64_t)opt->map_size_mib << 20);
    if (r < 0) {
        snprintf(err, errlen, "cannot open store %s: %s", opt->data_dir, store_strerror(r));
        return r;
    }
    a->nbuckets = SERIES_BUCKETS;
    a->series_epoch = 1; /* zeroed hints (epoch 0) never match */
    a->buckets = calloc(a->nbuckets, sizeof *a->buckets);
    if (!a->buckets)
        return -ENOMEM;
    decode_init(&a->dec);
    tsc_calibrate(a);
    struct sigaction sa = {.sa_handler = on_sigbus};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    a->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (a->inotify_fd >= 0 &&
        inotify_add_watch(a->inotify_fd, opt->ring_dir, IN_CREATE | IN_MOVED_TO) < 0) {
        close(a->inotify_fd); /* the once-a-second scan still finds new rings */
        a->inotify_fd = -1;
    }
    agent_scan(a);
    struct store_txn *t;
    if ((r = store_begin(a->store, false, &t)) == 0) {
        r = store_lane_foreach(t, cleanup_stale_lane, a);
        store_abort(t);
    }
    if (r < 0) {
        snprintf(err, errlen, "cannot read store %s: %s", opt->data_dir, store_strerror(r));
        return r;
    }
    a->last_sync_ns = agent_now_ns();
    return 0;
}

void agent_fini(struct agent *a)
{
    while (a->narenas) {
        atomic_store(&a->arenas[a->narenas - 1]->arena.hdr->agent_pid, 0);
        arena_remove(a, a->narenas - 1);
    }
    free(a->arenas);
    series_free_all(a);
    free(a->buckets);
    decode_free(&a->dec);
    if (a->store)
        store_close(a->store);
    for (size_t i = 0; i < pend.npaths; i++)
        free(pend.paths[i]);
    free(pend.paths);
    free(pend.dead_ids);
    memset(&pend, 0, sizeof pend);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    if (a->inotify_fd >= 0)
        close(a->inotify_fd);
}
