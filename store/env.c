/* env.c — the LMDB environment: open and close, transactions, error mapping, map growth,
 * sync, store info, the meta database (schema version, store id), counters and the default
 * store directory.
 *
 * One environment per process (LMDB's rule). Writers open with MDB_NOTLS so that a transaction
 * may be passed between threads, and clear stale reader slots at start-up. The map is a large
 * sparse mapping; when it fills up a write returns -ENOSPC with store_map_full() true, the
 * caller aborts, calls store_grow() and retries. Another process may grow the map while a
 * reader has the environment open: LMDB then answers MDB_MAP_RESIZED when a transaction
 * begins, and we adopt the new size (mdb_env_set_mapsize(env, 0)) once no transaction of this
 * process is open, which the txn counter below tracks.
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GIB (1024ull * 1024 * 1024)

static const char *const db_names[DB_COUNT] = {
    [DB_META] = "meta",         [DB_EXP] = "exp",     [DB_EXP_NAME] = "exp_name",
    [DB_RUNS] = "runs",         [DB_PARAMS] = "params", [DB_TAGS] = "tags",
    [DB_MBLK] = "mblk",         [DB_MSUM] = "msum",   [DB_ARTIFACTS] = "artifacts",
    [DB_LANES] = "lanes",       [DB_LANEDICT] = "lanedict", [DB_COUNTERS] = "counters",
    [DB_JOURNAL] = "journal",   [DB_PEERS] = "peers", [DB_MBIDX] = "mbidx",
    [DB_EXPTAGS] = "exptags",   [DB_INPUTS] = "inputs",
    [DB_REMOTE] = "remote",
    [DB_RM] = "rm",             [DB_RM_NAME] = "rm_name", [DB_MV] = "mv",
    [DB_MV_RUN] = "mv_run",     [DB_RM_TAGS] = "rm_tags", [DB_RM_ALIAS] = "rm_alias",
    [DB_RM_HIST] = "rm_hist",
};

/* Databases added after stores were first made (schema version 1 still): a read-only open
 * of an older store does without them, and their readers answer as for an empty one. */
static bool db_optional(int i) { return i >= DB_JOURNAL; }

/* ---- errors ---- */

static int map_code(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return 0;
    case MDB_KEYEXIST: return -EEXIST;
    case MDB_NOTFOUND: return -ENOENT;
    case MDB_PAGE_NOTFOUND:
    case MDB_CORRUPTED:
    case MDB_INVALID: return -EBADMSG;
    case MDB_PANIC: return -EIO;
    case MDB_VERSION_MISMATCH: return -EPROTONOSUPPORT;
    case MDB_MAP_FULL: return -ENOSPC;
    case MDB_DBS_FULL: return -EMFILE;
    case MDB_READERS_FULL: return -EUSERS;
    case MDB_TLS_FULL: return -EAGAIN;
    case MDB_TXN_FULL: return -E2BIG;
    case MDB_CURSOR_FULL: return -ENOMEM;
    case MDB_PAGE_FULL: return -EOVERFLOW;
    case MDB_MAP_RESIZED: return -EAGAIN;
    case MDB_INCOMPATIBLE: return -EPROTO;
    case MDB_BAD_RSLOT:
    case MDB_BAD_TXN: return -EINVAL;
    case MDB_BAD_VALSIZE: return -EMSGSIZE;
    case MDB_BAD_DBI: return -EBADF;
    default:
        if (rc > 0)
            return -rc;
        return rc < 0 && rc > -4096 ? rc : -EIO;
    }
}

int st_err(struct store *s, int rc)
{
    int e = map_code(rc);
    if (e == -ENOSPC && s)
        atomic_store_explicit(&s->map_full, rc == MDB_MAP_FULL, memory_order_relaxed);
    return e;
}

int st_txn_err(struct store_txn *t, int rc)
{
    int e = st_err(t->s, rc);
    /* Anything but a lookup miss or a rejected argument leaves an LMDB write txn unusable. */
    if (e < 0 && t->write && !t->err && rc != MDB_NOTFOUND && rc != MDB_KEYEXIST &&
        rc != MDB_BAD_VALSIZE && rc != EINVAL)
        t->err = e;
    return e;
}

const char *store_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case -ENOSPC: return "no space left: the store's map or the disk is full";
    case -ENOENT: return "not found";
    case -EBADMSG: return "stored data is malformed or corrupt";
    case -EPROTONOSUPPORT: return "the store was written by an incompatible version";
    case -ENOTUNIQ: return "the run id prefix matches more than one run";
    case -EEXIST: return "a different value is already stored";
    case -EROFS: return "the store is open read-only";
    case -EBUSY: return "a transaction is still open";
    case -ENAMETOOLONG: return "name or key too long";
    case -EMSGSIZE: return "key too long for the store";
    case -EUSERS: return "too many readers of the store";
    default: return err < 0 ? strerror(-err) : "unknown error";
    }
}

bool store_map_full(const struct store *s)
{
    return atomic_load_explicit(&((struct store *)s)->map_full, memory_order_relaxed);
}

/* ---- transactions ---- */

static void txn_count(struct store *s, int d)
{
    pthread_mutex_lock(&s->lock);
    s->ntxn += (unsigned)d;
    pthread_mutex_unlock(&s->lock);
}

/* mdb_txn_begin, adopting a map grown by another process (MDB_MAP_RESIZED). The caller has
 * already counted this transaction in s->ntxn. */
static int begin_raw(struct store *s, unsigned flags, MDB_txn **txn)
{
    for (int tries = 0;; tries++) {
        int rc = mdb_txn_begin(s->env, NULL, flags, txn);
        if (rc != MDB_MAP_RESIZED)
            return rc;
        pthread_mutex_lock(&s->lock);
        s->ntxn--;
        int rc2 = EBUSY;
        if (s->ntxn == 0)
            rc2 = mdb_env_set_mapsize(s->env, 0);
        s->ntxn++;
        pthread_mutex_unlock(&s->lock);
        if (rc2 == EBUSY) {
            /* another thread of ours holds a transaction: wait a little for it */
            if (tries >= 2000)
                return MDB_MAP_RESIZED;
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        } else if (rc2) {
            return rc2;
        }
    }
}

int store_begin(struct store *s, bool write, struct store_txn **out)
{
    *out = NULL;
    if (write && (s->flags & STORE_RDONLY))
        return -EROFS;
    struct store_txn *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->s = s;
    t->write = write;
    txn_count(s, 1);
    int rc = begin_raw(s, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc) {
        txn_count(s, -1);
        free(t);
        return st_err(s, rc);
    }
    *out = t;
    return 0;
}

static void txn_release(struct store_txn *t)
{
    if (t->mblk)
        mdb_cursor_close(t->mblk);
    t->mblk = NULL;
}

int store_commit(struct store_txn *t)
{
    struct store *s = t->s;
    txn_release(t);
    int rc;
    if (t->err) {
        mdb_txn_abort(t->txn);
        rc = t->err;
    } else {
        rc = st_err(s, mdb_txn_commit(t->txn));
    }
    txn_count(s, -1);
    free(t);
    return rc;
}

void store_abort(struct store_txn *t)
{
    if (!t)
        return;
    txn_release(t);
    mdb_txn_abort(t->txn);
    txn_count(t->s, -1);
    free(t);
}

int st_writable(struct store_txn *t)
{
    if (!t->write)
        return -EROFS;
    return t->err;
}

/* ---- small accessors ---- */

int st_get(struct store_txn *t, enum st_db db, const void *k, size_t klen, MDB_val *v)
{
    MDB_val key = {klen, (void *)k};
    return st_txn_err(t, mdb_get(t->txn, t->s->dbi[db], &key, v));
}

int st_put(struct store_txn *t, enum st_db db, const void *k, size_t klen, const void *v,
           size_t vlen, unsigned flags)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
    return st_txn_err(t, mdb_put(t->txn, t->s->dbi[db], &key, &val, flags));
}

/* Reads meta's counter (absent: 1), hands it out and stores the next one. */
int st_meta_next(struct store_txn *t, const char *key, uint64_t *out)
{
    MDB_val v;
    uint64_t next = 1;
    int rc = st_get(t, DB_META, key, strlen(key), &v);
    if (rc == 0) {
        if (v.mv_size != 8)
            return -EBADMSG;
        next = st_rd_le64(v.mv_data);
    } else if (rc != -ENOENT) {
        return rc;
    }
    if (next == 0 || next == UINT64_MAX)
        return -EOVERFLOW;
    uint8_t b[8];
    st_le64(b, next + 1);
    if ((rc = st_put(t, DB_META, key, strlen(key), b, 8, 0)) < 0)
        return rc;
    *out = next;
    return 0;
}

int st_del(struct store_txn *t, enum st_db db, const void *k, size_t klen)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    MDB_val key = {klen, (void *)k};
    return st_txn_err(t, mdb_del(t->txn, t->s->dbi[db], &key, NULL));
}

int st_prefix_foreach(struct store_txn *t, enum st_db db, const void *prefix, size_t plen,
                      int (*fn)(const MDB_val *k, const MDB_val *v, void *arg), void *arg)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c);
    if (rc)
        return st_txn_err(t, rc);
    MDB_val k = {plen, (void *)prefix}, v;
    rc = mdb_cursor_get(c, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
            break;
        int r = fn(&k, &v, arg);
        if (r) {
            mdb_cursor_close(c);
            return r;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : st_txn_err(t, rc);
}

int st_runkey(uint8_t *buf, const uint8_t run[16], const char *key)
{
    if (!key || !*key)
        return -EINVAL;
    size_t n = strnlen(key, ST_MAX_NAME + 1);
    if (n > ST_MAX_NAME)
        return -ENAMETOOLONG;
    memcpy(buf, run, 16);
    memcpy(buf + 16, key, n);
    buf[16 + n] = '\0';
    return (int)(17 + n);
}

int64_t st_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- meta ---- */

int st_meta_init(struct store_txn *t, bool *created)
{
    struct store *s = t->s;
    MDB_val v;
    *created = false;
    int rc = st_get(t, DB_META, "version", 7, &v);
    if (rc == 0) {
        if (v.mv_size != 4)
            return -EBADMSG;
        if (st_rd_le32(v.mv_data) != STORE_SCHEMA_VERSION)
            return -EPROTONOSUPPORT;
        if ((rc = st_get(t, DB_META, "id", 2, &v)) < 0)
            return rc == -ENOENT ? -EBADMSG : rc;
        if (v.mv_size != 16)
            return -EBADMSG;
        memcpy(s->id, v.mv_data, 16);
        return 0;
    }
    if (rc != -ENOENT)
        return rc;
    if (!t->write)
        return -ENOENT; /* created but never initialised: nothing to read */

    uint8_t b[8];
    if (getrandom(s->id, 16, 0) != 16)
        return -errno;
    st_le32(b, STORE_SCHEMA_VERSION);
    if ((rc = st_put(t, DB_META, "version", 7, b, 4, 0)) < 0 ||
        (rc = st_put(t, DB_META, "id", 2, s->id, 16, 0)) < 0)
        return rc;
    st_le64(b, 1);
    if ((rc = st_put(t, DB_META, "next_exp", 8, b, 8, 0)) < 0)
        return rc;
    /* "Default" is experiment 0, as in MLflow. */
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 2);
    st_mpw_str(&w, "n");
    st_mpw_str(&w, "Default");
    st_mpw_str(&w, "c");
    st_mpw_int(&w, st_now_ms());
    uint8_t id[8] = {0};
    rc = st_mpw_done(&w);
    if (rc == 0)
        rc = st_put(t, DB_EXP, id, 8, w.buf, w.len, 0);
    if (rc == 0)
        rc = st_put(t, DB_EXP_NAME, "Default", 7, id, 8, 0);
    st_mpw_free(&w);
    if (rc == 0)
        *created = true;
    return rc;
}

/* ---- open / close ---- */

static int mkdir_p(const char *dir, mode_t mode)
{
    char buf[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int open_dbs(struct store *s)
{
    bool write = !(s->flags & STORE_RDONLY);
    struct store_txn *t;
    int rc = store_begin(s, write, &t);
    if (rc)
        return rc;
    for (int i = 0; i < DB_COUNT; i++) {
        rc = mdb_dbi_open(t->txn, db_names[i], write ? MDB_CREATE : 0, &s->dbi[i]);
        if (rc == MDB_NOTFOUND && !write && db_optional(i))
            continue;
        s->have[i] = rc == 0;
        if (rc) {
            store_abort(t);
            return st_err(s, rc);
        }
    }
    bool created;
    rc = st_meta_init(t, &created);
    if (rc) {
        store_abort(t);
        return rc;
    }
    return store_commit(t);
}

int store_open(struct store **out, const char *dir, unsigned flags, uint64_t map_size)
{
    *out = NULL;
    if (!dir || !*dir)
        return -EINVAL;
    if (strlen(dir) >= ST_DIR_MAX)
        return -ENAMETOOLONG;
    bool rdonly = flags & STORE_RDONLY;
    char path[PATH_MAX];
    int rc;
    if (!rdonly && (rc = mkdir_p(dir, 0755)) < 0)
        return rc;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (!exists && errno != ENOENT)
        return -errno;
    if (rdonly && !exists)
        return -ENOENT;

    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    s->flags = flags;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    if ((rc = mdb_env_create(&s->env)) != 0) {
        rc = st_err(s, rc);
        goto fail;
    }
    /* a handle opens at most this many named databases (MDB_DBS_FULL beyond) */
    _Static_assert(DB_COUNT <= 32, "raise maxdbs with the databases");
    mdb_env_set_maxdbs(s->env, 32);
    if (!rdonly) {
        uint64_t size = map_size ? map_size : exists ? 0 : GIB;
        if (size) {
            uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
            size = (size + pg - 1) / pg * pg;
            if ((rc = mdb_env_set_mapsize(s->env, (size_t)size)) != 0) {
                rc = st_err(s, rc);
                goto fail;
            }
        }
    }
    unsigned ef = MDB_NOTLS;
    if (rdonly)
        ef |= MDB_RDONLY;
    if (flags & STORE_NOSYNC)
        ef |= MDB_NOSYNC;
    if ((rc = mdb_env_open(s->env, dir, ef, 0644)) != 0) {
        rc = st_err(s, rc);
        goto fail;
    }
    if (!rdonly) {
        int dead;
        mdb_reader_check(s->env, &dead);
    }
    if ((rc = open_dbs(s)) < 0)
        goto fail;
    if (!rdonly) {
        snprintf(path, sizeof path, "%s/artifacts/tmp", dir);
        if ((rc = mkdir_p(path, 0755)) < 0)
            goto fail;
        st_blob_tmp_clean(s);
    }
    *out = s;
    return 0;
fail:
    if (s->env)
        mdb_env_close(s->env);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    mdb_env_close(s->env);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int store_sync(struct store *s)
{
    if (s->flags & STORE_RDONLY)
        return 0;
    return st_err(s, mdb_env_sync(s->env, 1));
}

int store_grow(struct store *s)
{
    if (s->flags & STORE_RDONLY)
        return -EROFS;
    pthread_mutex_lock(&s->lock);
    int rc = -EBUSY;
    if (s->ntxn == 0) {
        MDB_envinfo info;
        rc = mdb_env_info(s->env, &info);
        if (rc == 0) {
            uint64_t cur = info.me_mapsize;
            uint64_t next = cur * 2 > cur + GIB ? cur * 2 : cur + GIB;
            if (next > SIZE_MAX)
                rc = EFBIG;
            else
                rc = mdb_env_set_mapsize(s->env, (size_t)next);
        }
        rc = st_err(s, rc);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int store_update(struct store *s, int (*fn)(struct store_txn *t, void *arg), void *arg)
{
    for (int tries = 0;; tries++) {
        struct store_txn *t;
        int rc = store_begin(s, true, &t);
        if (rc < 0)
            return rc;
        int fr = fn(t, arg);
        if (fr < 0) {
            store_abort(t);
            rc = fr;
        } else {
            rc = store_commit(t);
            if (rc == 0)
                return fr;
        }
        if (rc != -ENOSPC || !store_map_full(s) || tries >= 8)
            return rc;
        /* Other threads of this process may hold transactions: the map can only be resized
         * when none is open, so wait for them (a bounded while: requests are short). */
        int g = -EBUSY;
        for (int w = 0; w < 5000 && g == -EBUSY; w++) {
            g = store_grow(s);
            if (g == -EBUSY)
                nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        }
        if (g < 0)
            return g == -EBUSY ? rc : g;
    }
}

const char *store_dir(const struct store *s) { return s->dir; }

void store_id(const struct store *s, uint8_t id[16]) { memcpy(id, s->id, 16); }

int store_info(struct store *s, struct store_info *info)
{
    MDB_envinfo ei;
    MDB_stat ms;
    int rc = mdb_env_info(s->env, &ei);
    if (rc == 0)
        rc = mdb_env_stat(s->env, &ms);
    if (rc)
        return st_err(s, rc);
    memset(info, 0, sizeof *info);
    info->map_size = ei.me_mapsize;
    info->page_size = ms.ms_psize;
    info->used_bytes = ((uint64_t)ei.me_last_pgno + 1) * ms.ms_psize;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/data.mdb", s->dir);
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    info->file_bytes = (uint64_t)st.st_size;
    return 0;
}

/* ---- counters ---- */

int store_counter_add(struct store_txn *t, const char *name, uint64_t delta)
{
    size_t n = name ? strnlen(name, ST_MAX_KEY + 1) : 0;
    if (n == 0)
        return -EINVAL;
    if (n > ST_MAX_KEY)
        return -ENAMETOOLONG;
    int rc = st_writable(t);
    if (rc)
        return rc;
    MDB_val v;
    uint64_t cur = 0;
    rc = st_get(t, DB_COUNTERS, name, n, &v);
    if (rc == 0) {
        if (v.mv_size != 8)
            return -EBADMSG;
        cur = st_rd_le64(v.mv_data);
    } else if (rc != -ENOENT) {
        return rc;
    }
    uint8_t b[8];
    st_le64(b, cur + delta);
    return st_put(t, DB_COUNTERS, name, n, b, 8, 0);
}

/* A counter never written reads as 0. */
int store_counter_get(struct store_txn *t, const char *name, uint64_t *value)
{
    *value = 0;
    size_t n = name ? strnlen(name, ST_MAX_KEY + 1) : 0;
    if (n == 0)
        return -EINVAL;
    if (n > ST_MAX_KEY)
        return -ENAMETOOLONG;
    MDB_val v;
    int rc = st_get(t, DB_COUNTERS, name, n, &v);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return -EBADMSG;
    *value = st_rd_le64(v.mv_data);
    return 0;
}

/* ---- default directory ---- */

const char *store_default_dir(char *buf, size_t len)
{
    const char *e = getenv("SIDETRACK_DATA");
    int n;
    if (e && *e) {
        n = snprintf(buf, len, "%s", e);
    } else if (geteuid() == 0) {
        n = snprintf(buf, len, "/var/lib/sidetrack");
    } else if ((e = getenv("XDG_DATA_HOME")) && e[0] == '/') {
        n = snprintf(buf, len, "%s/sidetrack", e);
    } else {
        e = getenv("HOME");
        struct passwd pw, *res = NULL;
        char pwbuf[1024];
        if ((!e || !*e) && getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res)
            e = res->pw_dir;
        if (!e || !*e)
            return NULL;
        n = snprintf(buf, len, "%s/.local/share/sidetrack", e);
    }
    return n < 0 || (size_t)n >= len ? NULL : buf;
}
