/* runs.c — runs, params and tags.
 *
 * A run is a msgpack map in DB_RUNS under its 16-byte id, with short keys:
 *   e experiment id, n name, s status, st start_ms, en end_ms, u user, h host,
 *   p parent id (bin 16, only when there is one), ui uid, pi pid,
 *   ps "start recorded" (false for a placeholder), pe "end recorded", dl deleted (soft;
 *   absent means false).
 * Records of one run can reach the store out of order (a metric from another thread's lane
 * before the start record, an end before the start), so any data attached to a run first
 * makes sure a row exists (store_run_touch: a placeholder, RUNNING, experiment 0). A start on
 * a placeholder fills it in but keeps a status and end time that an end already recorded.
 * A start on a run whose start was already recorded is a restart (MLflow's resume): it
 * replaces the row. A start with status 0 means RUNNING.
 *
 * Params and tags live in DB_PARAMS / DB_TAGS under run + key + '\0', the value as raw bytes.
 * Params are write-once (MLflow's rule), tags last-write-wins.
 */
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct run_row {
    struct store_run r;
    bool started, ended;
};

static int row_decode(const uint8_t id[16], const MDB_val *v, struct run_row *row)
{
    struct st_mpr rd = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size};
    uint32_t n;
    int rc = st_mpr_map(&rd, &n);
    if (rc)
        return rc;
    memset(row, 0, sizeof *row);
    struct store_run *r = &row->r;
    memcpy(r->id, id, 16);
    r->status = STORE_RUN_RUNNING;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        struct st_mp_val k, x;
        uint64_t u = 0;
        if ((rc = st_mpr_val(&rd, &k)) < 0 || (rc = st_mpr_val(&rd, &x)) < 0)
            return rc;
        if (k.type != MP_STR || k.len > 2)
            continue;
        if (st_mp_key_is(&k, "e")) {
            rc = st_mp_as_u64(&x, &r->experiment_id);
        } else if (st_mp_key_is(&k, "n")) {
            rc = st_mp_as_str(&x, r->name, sizeof r->name);
        } else if (st_mp_key_is(&k, "s")) {
            rc = st_mp_as_u64(&x, &u);
            if (rc == 0 && (u < STORE_RUN_RUNNING || u > STORE_RUN_KILLED))
                rc = -EBADMSG;
            r->status = (int)u;
        } else if (st_mp_key_is(&k, "st")) {
            rc = st_mp_as_i64(&x, &r->start_ms);
        } else if (st_mp_key_is(&k, "en")) {
            rc = st_mp_as_i64(&x, &r->end_ms);
        } else if (st_mp_key_is(&k, "u")) {
            rc = st_mp_as_str(&x, r->user, sizeof r->user);
        } else if (st_mp_key_is(&k, "h")) {
            rc = st_mp_as_str(&x, r->host, sizeof r->host);
        } else if (st_mp_key_is(&k, "p")) {
            if (x.type != MP_BIN || x.len != 16)
                return -EBADMSG;
            memcpy(r->parent, x.ptr, 16);
            r->has_parent = true;
        } else if (st_mp_key_is(&k, "ui") || st_mp_key_is(&k, "pi")) {
            rc = st_mp_as_u64(&x, &u);
            if (rc == 0 && u > UINT32_MAX)
                rc = -EBADMSG;
            if (k.ptr[0] == 'u')
                r->uid = (uint32_t)u;
            else
                r->pid = (uint32_t)u;
        } else if (st_mp_key_is(&k, "dl")) {
            if (x.type != MP_BOOL)
                return -EBADMSG;
            r->deleted = x.b;
        } else if (st_mp_key_is(&k, "ps") || st_mp_key_is(&k, "pe")) {
            if (x.type != MP_BOOL)
                return -EBADMSG;
            if (k.ptr[1] == 's')
                row->started = x.b;
            else
                row->ended = x.b;
        }
    }
    return rc;
}

static int row_put(struct store_txn *t, const struct run_row *row)
{
    const struct store_run *r = &row->r;
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 11u + r->has_parent + r->deleted);
    st_mpw_str(&w, "e");
    st_mpw_uint(&w, r->experiment_id);
    st_mpw_str(&w, "n");
    st_mpw_str(&w, r->name);
    st_mpw_str(&w, "s");
    st_mpw_uint(&w, (uint64_t)r->status);
    st_mpw_str(&w, "st");
    st_mpw_int(&w, r->start_ms);
    st_mpw_str(&w, "en");
    st_mpw_int(&w, r->end_ms);
    st_mpw_str(&w, "u");
    st_mpw_str(&w, r->user);
    st_mpw_str(&w, "h");
    st_mpw_str(&w, r->host);
    if (r->has_parent) {
        st_mpw_str(&w, "p");
        st_mpw_bin(&w, r->parent, 16);
    }
    st_mpw_str(&w, "ui");
    st_mpw_uint(&w, r->uid);
    st_mpw_str(&w, "pi");
    st_mpw_uint(&w, r->pid);
    st_mpw_str(&w, "ps");
    st_mpw_bool(&w, row->started);
    st_mpw_str(&w, "pe");
    st_mpw_bool(&w, row->ended);
    if (r->deleted) {
        st_mpw_str(&w, "dl");
        st_mpw_bool(&w, true);
    }
    int rc = st_mpw_done(&w);
    if (rc == 0)
        rc = st_put(t, DB_RUNS, r->id, 16, w.buf, w.len, 0);
    st_mpw_free(&w);
    return rc;
}

/* 0 and the row, -ENOENT, or another error. */
static int row_get(struct store_txn *t, const uint8_t id[16], struct run_row *row)
{
    MDB_val v;
    int rc = st_get(t, DB_RUNS, id, 16, &v);
    if (rc)
        return rc;
    return row_decode(id, &v, row);
}

static void placeholder(struct run_row *row, const uint8_t id[16])
{
    memset(row, 0, sizeof *row);
    memcpy(row->r.id, id, 16);
    row->r.status = STORE_RUN_RUNNING;
}

static bool status_ok(int s) { return s >= STORE_RUN_RUNNING && s <= STORE_RUN_KILLED; }

#define STR_OK(f) (strnlen((f), sizeof(f)) < sizeof(f))

int store_run_start(struct store_txn *t, const struct store_run *r)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    if (!r || (r->status != 0 && !status_ok(r->status)) || !STR_OK(r->name) ||
        !STR_OK(r->user) || !STR_OK(r->host))
        return -EINVAL;
    struct run_row old, row = {.r = *r, .started = true};
    if (row.r.status == 0)
        row.r.status = STORE_RUN_RUNNING;
    if (!row.r.has_parent)
        memset(row.r.parent, 0, 16);
    int status = row.r.status; /* the op's: the server's start merges as this one does */
    /* the op names the experiment: its id means nothing in another store */
    struct store_experiment exp;
    if (st_journaling(t) && (rc = store_experiment_get(t, r->experiment_id, &exp)) < 0)
        return rc;
    rc = row_get(t, r->id, &old);
    if (rc == 0) {
        row.r.deleted = old.r.deleted;
        if (!old.started && old.ended) {
            row.r.status = old.r.status;
            row.r.end_ms = old.r.end_ms;
            row.ended = true;
        }
    } else if (rc != -ENOENT) {
        return rc;
    }
    if ((rc = row_put(t, &row)) < 0 || !st_journaling(t))
        return rc;
    struct store_op op = {.type = STORE_OP_RUN_START, .status = status};
    memcpy(op.run, r->id, 16);
    op.experiment = exp.name;
    op.name = r->name;
    op.user = r->user;
    op.host = r->host;
    op.start_ms = r->start_ms;
    op.has_parent = r->has_parent;
    memcpy(op.parent, row.r.parent, 16);
    return st_journal_put(t, &op);
}

int store_run_end(struct store_txn *t, const uint8_t id[16], int status, int64_t end_ms)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    if (!status_ok(status))
        return -EINVAL;
    struct run_row row;
    rc = row_get(t, id, &row);
    if (rc == -ENOENT)
        placeholder(&row, id);
    else if (rc)
        return rc;
    row.r.status = status;
    row.r.end_ms = end_ms;
    row.ended = true;
    if ((rc = row_put(t, &row)) < 0 || !st_journaling(t))
        return rc;
    struct store_op op = {.type = STORE_OP_RUN_END, .status = status, .end_ms = end_ms};
    memcpy(op.run, id, 16);
    return st_journal_put(t, &op);
}

int store_run_touch(struct store_txn *t, const uint8_t id[16])
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    MDB_val v;
    rc = st_get(t, DB_RUNS, id, 16, &v);
    if (rc != -ENOENT)
        return rc;
    struct run_row row;
    placeholder(&row, id);
    return row_put(t, &row);
}

int store_run_claim(struct store_txn *t, const uint8_t id[16], uint32_t uid)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    struct run_row row;
    rc = row_get(t, id, &row);
    if (rc == -ENOENT) {
        placeholder(&row, id);
        row.r.uid = uid;
        return row_put(t, &row);
    }
    if (rc)
        return rc;
    return row.r.uid == uid ? 0 : -EPERM;
}

int store_run_get(struct store_txn *t, const uint8_t id[16], struct store_run *out)
{
    struct run_row row;
    int rc = row_get(t, id, &row);
    if (rc == 0)
        *out = row.r;
    return rc;
}

/* row_get() of a row about to be changed: the transaction must be writable. */
static int row_get_w(struct store_txn *t, const uint8_t id[16], struct run_row *row)
{
    int rc = st_writable(t);
    return rc ? rc : row_get(t, id, row);
}

int store_run_set_deleted(struct store_txn *t, const uint8_t id[16], bool deleted)
{
    struct run_row row;
    int rc = row_get_w(t, id, &row);
    if (rc < 0)
        return rc;
    row.r.deleted = deleted;
    return row_put(t, &row);
}

int store_run_set_name(struct store_txn *t, const uint8_t id[16], const char *name)
{
    struct run_row row;
    int rc = row_get_w(t, id, &row);
    if (rc < 0)
        return rc;
    if (!name || strlen(name) >= sizeof row.r.name)
        return name ? -ENAMETOOLONG : -EINVAL;
    snprintf(row.r.name, sizeof row.r.name, "%s", name);
    return row_put(t, &row);
}

int store_run_set_experiment(struct store_txn *t, const uint8_t id[16], uint64_t experiment_id)
{
    struct run_row row;
    int rc = row_get_w(t, id, &row);
    if (rc < 0)
        return rc;
    row.r.experiment_id = experiment_id;
    return row_put(t, &row);
}

struct run_ctx {
    int (*cb)(const struct store_run *r, void *arg);
    void *arg;
};

static int run_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct run_ctx *c = arg;
    struct run_row row;
    if (k->mv_size != 16)
        return -EBADMSG;
    int rc = row_decode(k->mv_data, v, &row);
    return rc ? rc : c->cb(&row.r, c->arg);
}

int store_run_foreach(struct store_txn *t, int (*cb)(const struct store_run *r, void *arg),
                      void *arg)
{
    struct run_ctx c = {cb, arg};
    return st_prefix_foreach(t, DB_RUNS, NULL, 0, run_one, &c);
}

/* ---- ids ---- */

int st_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void st_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[bytes[i] >> 4];
        out[2 * i + 1] = d[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void store_run_id_hex(const uint8_t id[16], char hex[33]) { st_hex(id, 16, hex); }

int store_run_id_parse(const char *hex, uint8_t id[16])
{
    if (!hex || strnlen(hex, 33) != 32)
        return -EINVAL;
    for (int i = 0; i < 16; i++) {
        int hi = st_hexval(hex[2 * i]), lo = st_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int store_run_resolve(struct store_txn *t, const char *hex, uint8_t id[16])
{
    size_t n = hex ? strnlen(hex, 33) : 0;
    if (n < 4 || n > 32)
        return -EINVAL;
    uint8_t lo[16] = {0};
    for (size_t i = 0; i < n; i++) {
        int d = st_hexval(hex[i]);
        if (d < 0)
            return -EINVAL;
        lo[i / 2] |= (uint8_t)(i % 2 ? d : d << 4);
    }
    if (n == 32) {
        MDB_val v;
        int rc = st_get(t, DB_RUNS, lo, 16, &v);
        if (rc == 0)
            memcpy(id, lo, 16);
        return rc;
    }
    /* every id that starts with these n nibbles sorts at or after lo, contiguously */
    size_t full = n / 2;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_RUNS], &c);
    if (rc)
        return st_txn_err(t, rc);
    MDB_val k = {16, lo}, v;
    int found = 0;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && found < 2) {
        const uint8_t *p = k.mv_data;
        if (k.mv_size != 16 || memcmp(p, lo, full) != 0 ||
            (n % 2 && (p[full] & 0xf0) != lo[full]))
            break;
        if (found == 0)
            memcpy(id, p, 16);
        found++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return st_txn_err(t, rc);
    return found == 0 ? -ENOENT : found > 1 ? -ENOTUNIQ : 0;
}

/* ---- params and tags ---- */

/* The key of a run's key/value row to write value under: its length, or -errno. */
static int kv_wkey(struct store_txn *t, uint8_t k[ST_MAX_KEY], const uint8_t run[16],
                   const char *key, const char *value)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    if (!value)
        return -EINVAL;
    return st_runkey(k, run, key);
}

static int kv_put(struct store_txn *t, enum st_db db, const uint8_t run[16], const char *key,
                  const char *value, bool once)
{
    uint8_t k[ST_MAX_KEY];
    int rc, kl = kv_wkey(t, k, run, key, value);
    if (kl < 0)
        return kl;
    size_t vl = strlen(value);
    MDB_val v;
    rc = st_get(t, db, k, (size_t)kl, &v);
    if (rc == 0) {
        bool same = v.mv_size == vl && memcmp(v.mv_data, value, vl) == 0;
        if (same)
            return once ? 1 : 0;
        if (once)
            return -EEXIST;
    } else if (rc == -ENOENT) {
        if ((rc = store_run_touch(t, run)) < 0)
            return rc;
    } else {
        return rc;
    }
    if ((rc = st_put(t, db, k, (size_t)kl, value, vl, 0)) < 0 || !st_journaling(t))
        return rc;
    struct store_op op = {.type = once ? STORE_OP_PARAM : STORE_OP_TAG, .key = key,
                          .value = value};
    memcpy(op.run, run, 16);
    return st_journal_put(t, &op);
}

int store_tag_delete(struct store_txn *t, const uint8_t run[16], const char *key)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    uint8_t k[ST_MAX_KEY];
    int kl = st_runkey(k, run, key);
    return kl < 0 ? kl : st_del(t, DB_TAGS, k, (size_t)kl);
}

int store_input_put(struct store_txn *t, const uint8_t run[16], const char *key,
                    const char *value)
{
    uint8_t k[ST_MAX_KEY];
    int rc, kl = kv_wkey(t, k, run, key, value);
    if (kl < 0)
        return kl;
    if ((rc = store_run_touch(t, run)) < 0)
        return rc;
    return st_put(t, DB_INPUTS, k, (size_t)kl, value, strlen(value), 0);
}

int store_inputs_foreach(struct store_txn *t, const uint8_t run[16],
                         int (*cb)(const char *key, const char *value, void *arg), void *arg)
{
    return st_kv_foreach(t, DB_INPUTS, run, cb, arg);
}

int store_param_put(struct store_txn *t, const uint8_t run[16], const char *key,
                    const char *value)
{
    return kv_put(t, DB_PARAMS, run, key, value, true);
}

int store_tag_set(struct store_txn *t, const uint8_t run[16], const char *key, const char *value)
{
    return kv_put(t, DB_TAGS, run, key, value, false);
}

struct kv_ctx {
    int (*cb)(const char *key, const char *value, void *arg);
    void *arg;
    char *buf;
    size_t cap;
};

static int kv_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct kv_ctx *c = arg;
    const char *kp = (const char *)k->mv_data + 16;
    size_t kn = k->mv_size - 16;
    if (kn < 2 || kp[kn - 1] != '\0' || memchr(kp, 0, kn - 1))
        return -EBADMSG;
    size_t need = kn + v->mv_size + 1;
    if (need > c->cap) {
        char *nb = realloc(c->buf, need);
        if (!nb)
            return -ENOMEM;
        c->buf = nb;
        c->cap = need;
    }
    memcpy(c->buf, kp, kn);
    char *val = c->buf + kn;
    memcpy(val, v->mv_data, v->mv_size);
    val[v->mv_size] = '\0';
    return c->cb(c->buf, val, c->arg);
}

int st_kv_foreach(struct store_txn *t, enum st_db db, const uint8_t run[16],
                  int (*cb)(const char *key, const char *value, void *arg), void *arg)
{
    if (!st_has_db(t, db))
        return 0;
    struct kv_ctx c = {cb, arg, NULL, 0};
    int rc = st_prefix_foreach(t, db, run, 16, kv_one, &c);
    free(c.buf);
    return rc;
}

int store_params_foreach(struct store_txn *t, const uint8_t run[16],
                         int (*cb)(const char *key, const char *value, void *arg), void *arg)
{
    return st_kv_foreach(t, DB_PARAMS, run, cb, arg);
}

int store_tags_foreach(struct store_txn *t, const uint8_t run[16],
                       int (*cb)(const char *key, const char *value, void *arg), void *arg)
{
    return st_kv_foreach(t, DB_TAGS, run, cb, arg);
}

const char *store_run_status_name(int status)
{
    switch (status) {
    case STORE_RUN_RUNNING: return "RUNNING";
    case STORE_RUN_SCHEDULED: return "SCHEDULED";
    case STORE_RUN_FINISHED: return "FINISHED";
    case STORE_RUN_FAILED: return "FAILED";
    case STORE_RUN_KILLED: return "KILLED";
    default: return "UNKNOWN";
    }
}
