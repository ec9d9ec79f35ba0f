/* journal.c — the replication journal (what an agent sends the server) and the server's
 * record of its peers.
 *
 * Journal: DB_JOURNAL maps seq (u64 BE, so that keys sort in seq order and appends go to the
 * end of the tree with MDB_APPEND) to one op, a msgpack array whose first two items are the
 * type and the run id (bin 16), then the type's fields in a fixed order:
 *   RUN_START  [1, run, experiment, name, user, host, start_ms, parent (bin 16 | nil), status]
 *   RUN_END    [2, run, status, end_ms]
 *   PARAM      [3, run, key, value]
 *   TAG        [4, run, key, value]
 *   METRICS    [5, run, key, first_index, count]
 *   ARTIFACT   [6, run, path, sha256 (bin 32), size]
 *   MODEL_REGISTER [7, run, path, model, aliases (comma-separated), description, actor,
 *              time_ms, digest (64 hex digits, or "" when the path held no artifact)]
 * An array rather than a map: an op is written for every change, and names of fields would
 * be most of its bytes. Readers skip items past the ones they know (fields added later).
 * Strings are stored with their terminating NUL, so that a reader can hand out pointers into
 * LMDB's memory as C strings without copying.
 *
 * The next seq is the last key + 1, or meta's "journal_next" when that is greater: a trim
 * records the next seq there first, so that trimming everything never lets a seq come back.
 * A write txn looks it up once and then counts (t->jnext).
 *
 * Peers: DB_PEERS maps an agent's store id to a msgpack map
 *   {h: hwm, l: last_ms, o: ops, b: batches, n: host}
 * (a map: one write per batch, and the server may want to add fields).
 */
#include "store_internal.h"

#include <errno.h>

#define OP_RUN_START_ITEMS 9
#define OP_RUN_END_ITEMS 4
#define OP_KV_ITEMS 4
#define OP_METRICS_ITEMS 5
#define OP_ARTIFACT_ITEMS 5
#define OP_MODEL_REGISTER_ITEMS 9

static const char JNEXT[] = "journal_next";

/* ---- next seq ---- */

static int journal_next(struct store_txn *t, uint64_t *next)
{
    if (t->jnext) {
        *next = t->jnext;
        return 0;
    }
    uint64_t n = 1;
    MDB_val v;
    int rc = st_get(t, DB_META, JNEXT, sizeof JNEXT - 1, &v);
    if (rc == 0) {
        if (v.mv_size != 8)
            return -EBADMSG;
        n = st_rd_le64(v.mv_data);
    } else if (rc != -ENOENT) {
        return rc;
    }
    if (st_has_db(t, DB_JOURNAL)) {
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DB_JOURNAL], &c)) != 0)
            return st_txn_err(t, rc);
        MDB_val k;
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        mdb_cursor_close(c);
        if (rc == 0) {
            if (k.mv_size != 8)
                return -EBADMSG;
            uint64_t last = st_rd_be64(k.mv_data);
            if (last == UINT64_MAX)
                return -EOVERFLOW;
            if (last + 1 > n)
                n = last + 1;
        } else if (rc != MDB_NOTFOUND) {
            return st_txn_err(t, rc);
        }
    }
    if (n == 0)
        return -EBADMSG;
    *next = t->jnext = n;
    return 0;
}

/* ---- writing ---- */

static void put_str(struct st_mpw *w, const char *s) { st_mpw_strn(w, s, strlen(s) + 1); }

static int op_encode(struct st_mpw *w, const struct store_op *op)
{
    switch (op->type) {
    case STORE_OP_RUN_START:
        st_mpw_array(w, OP_RUN_START_ITEMS);
        break;
    case STORE_OP_RUN_END:
        st_mpw_array(w, OP_RUN_END_ITEMS);
        break;
    case STORE_OP_PARAM:
    case STORE_OP_TAG:
        st_mpw_array(w, OP_KV_ITEMS);
        break;
    case STORE_OP_METRICS:
        st_mpw_array(w, OP_METRICS_ITEMS);
        break;
    case STORE_OP_ARTIFACT:
        st_mpw_array(w, OP_ARTIFACT_ITEMS);
        break;
    case STORE_OP_MODEL_REGISTER:
        st_mpw_array(w, OP_MODEL_REGISTER_ITEMS);
        break;
    default:
        return -EINVAL;
    }
    st_mpw_uint(w, (uint64_t)op->type);
    st_mpw_bin(w, op->run, 16);
    switch (op->type) {
    case STORE_OP_RUN_START:
        put_str(w, op->experiment);
        put_str(w, op->name);
        put_str(w, op->user);
        put_str(w, op->host);
        st_mpw_int(w, op->start_ms);
        if (op->has_parent)
            st_mpw_bin(w, op->parent, 16);
        else
            st_mpw_nil(w);
        st_mpw_uint(w, (uint64_t)op->status);
        break;
    case STORE_OP_RUN_END:
        st_mpw_uint(w, (uint64_t)op->status);
        st_mpw_int(w, op->end_ms);
        break;
    case STORE_OP_PARAM:
    case STORE_OP_TAG:
        put_str(w, op->key);
        put_str(w, op->value);
        break;
    case STORE_OP_METRICS:
        put_str(w, op->key);
        st_mpw_uint(w, op->first_index);
        st_mpw_uint(w, op->count);
        break;
    case STORE_OP_ARTIFACT:
        put_str(w, op->key);
        st_mpw_bin(w, op->sha256, 32);
        st_mpw_uint(w, op->size);
        break;
    case STORE_OP_MODEL_REGISTER:
        put_str(w, op->key);
        put_str(w, op->model);
        put_str(w, op->aliases ? op->aliases : "");
        put_str(w, op->description ? op->description : "");
        put_str(w, op->actor ? op->actor : "");
        st_mpw_int(w, op->time_ms);
        put_str(w, op->digest ? op->digest : "");
        break;
    }
    return st_mpw_done(w);
}

static int journal_put(struct store_txn *t, const struct store_op *op)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    uint64_t seq;
    if ((rc = journal_next(t, &seq)) < 0)
        return rc;
    if (seq == UINT64_MAX)
        return -EOVERFLOW;
    struct st_mpw w;
    st_mpw_init(&w);
    rc = op_encode(&w, op);
    if (rc == 0) {
        uint8_t k[8];
        st_be64(k, seq);
        rc = st_put(t, DB_JOURNAL, k, 8, w.buf, w.len, MDB_APPEND);
    }
    st_mpw_free(&w);
    if (rc == 0)
        t->jnext = seq + 1;
    return rc;
}

int st_journal_put(struct store_txn *t, const struct store_op *op)
{
    int rc = journal_put(t, op);
    if (rc < 0 && t->write && !t->err)
        t->err = rc;
    return rc;
}

/* ---- reading ---- */

static int get_str(struct st_mpr *r, const char **out)
{
    struct st_mp_val v;
    int rc = st_mpr_val(r, &v);
    if (rc < 0)
        return rc;
    if (v.type != MP_STR || v.len == 0 || v.ptr[v.len - 1] != '\0' ||
        memchr(v.ptr, 0, v.len - 1))
        return -EBADMSG;
    *out = (const char *)v.ptr;
    return 0;
}

static int get_status(struct st_mpr *r, int *out)
{
    uint64_t u;
    int rc = st_mpr_u64(r, &u);
    if (rc < 0)
        return rc;
    if (u < STORE_RUN_RUNNING || u > STORE_RUN_KILLED)
        return -EBADMSG;
    *out = (int)u;
    return 0;
}

static int model_register_decode(struct st_mpr *r, struct store_op *op)
{
    int rc;
    if ((rc = get_str(r, &op->key)) < 0 || (rc = get_str(r, &op->model)) < 0 ||
        (rc = get_str(r, &op->aliases)) < 0 || (rc = get_str(r, &op->description)) < 0 ||
        (rc = get_str(r, &op->actor)) < 0 ||
        (rc = st_mpr_i64(r, &op->time_ms)) < 0 || (rc = get_str(r, &op->digest)) < 0)
        return rc;
    return 0;
}

static int op_decode(const MDB_val *k, const MDB_val *v, struct store_op *op)
{
    if (k->mv_size != 8)
        return -EBADMSG;
    memset(op, 0, sizeof *op);
    op->seq = st_rd_be64(k->mv_data);
    struct st_mpr r = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size};
    uint32_t n, need;
    uint64_t type;
    int rc = st_mpr_array(&r, &n);
    if (rc == 0 && n < 2)
        rc = -EBADMSG;
    if (rc == 0)
        rc = st_mpr_u64(&r, &type);
    if (rc == 0)
        rc = st_mpr_bin_exact(&r, op->run, 16);
    if (rc < 0)
        return rc;
    switch (type) {
    case STORE_OP_RUN_START: need = OP_RUN_START_ITEMS; break;
    case STORE_OP_RUN_END: need = OP_RUN_END_ITEMS; break;
    case STORE_OP_PARAM:
    case STORE_OP_TAG: need = OP_KV_ITEMS; break;
    case STORE_OP_METRICS: need = OP_METRICS_ITEMS; break;
    case STORE_OP_ARTIFACT: need = OP_ARTIFACT_ITEMS; break;
    case STORE_OP_MODEL_REGISTER: need = OP_MODEL_REGISTER_ITEMS; break;
    default: return -EBADMSG;
    }
    if (n < need)
        return -EBADMSG;
    op->type = (int)type;
    switch (type) {
    case STORE_OP_RUN_START: {
        if ((rc = get_str(&r, &op->experiment)) < 0 || (rc = get_str(&r, &op->name)) < 0 ||
            (rc = get_str(&r, &op->user)) < 0 || (rc = get_str(&r, &op->host)) < 0 ||
            (rc = st_mpr_i64(&r, &op->start_ms)) < 0)
            return rc;
        struct st_mp_val p;
        if ((rc = st_mpr_val(&r, &p)) < 0)
            return rc;
        if (p.type == MP_BIN && p.len == 16) {
            op->has_parent = true;
            memcpy(op->parent, p.ptr, 16);
        } else if (p.type != MP_NIL) {
            return -EBADMSG;
        }
        rc = get_status(&r, &op->status);
        break;
    }
    case STORE_OP_RUN_END:
        if ((rc = get_status(&r, &op->status)) == 0)
            rc = st_mpr_i64(&r, &op->end_ms);
        break;
    case STORE_OP_PARAM:
    case STORE_OP_TAG:
        if ((rc = get_str(&r, &op->key)) == 0)
            rc = get_str(&r, &op->value);
        break;
    case STORE_OP_METRICS:
        if ((rc = get_str(&r, &op->key)) == 0 && (rc = st_mpr_u64(&r, &op->first_index)) == 0)
            rc = st_mpr_u64(&r, &op->count);
        break;
    case STORE_OP_ARTIFACT:
        if ((rc = get_str(&r, &op->key)) == 0 && (rc = st_mpr_bin_exact(&r, op->sha256, 32)) == 0)
            rc = st_mpr_u64(&r, &op->size);
        break;
    case STORE_OP_MODEL_REGISTER:
        rc = model_register_decode(&r, op);
        break;
    }
    for (uint32_t i = need; i < n && rc == 0; i++)
        rc = st_mpr_skip(&r);
    if (rc == 0 && r.p != r.end)
        rc = -EBADMSG;
    return rc;
}

int store_journal_bounds(struct store_txn *t, uint64_t *first, uint64_t *next)
{
    *first = *next = 1;
    uint64_t n;
    int rc = journal_next(t, &n);
    if (rc < 0)
        return rc;
    *first = *next = n;
    if (!st_has_db(t, DB_JOURNAL))
        return 0;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DB_JOURNAL], &c)) != 0)
        return st_txn_err(t, rc);
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return st_txn_err(t, rc);
    if (k.mv_size != 8)
        return -EBADMSG;
    *first = st_rd_be64(k.mv_data);
    return 0;
}

/* The op's strings point into LMDB's pages. In a read txn they stay valid until it ends; in
 * a write txn, LMDB may move them at the next write of that txn. */
int store_journal_read(struct store_txn *t, uint64_t from, size_t max,
                       int (*cb)(const struct store_op *op, void *arg), void *arg)
{
    if (!st_has_db(t, DB_JOURNAL))
        return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_JOURNAL], &c);
    if (rc)
        return st_txn_err(t, rc);
    uint8_t kb[8];
    st_be64(kb, from);
    MDB_val k = {8, kb}, v;
    size_t done = 0;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && (max == 0 || done < max)) {
        struct store_op op;
        int r = op_decode(&k, &v, &op);
        if (r == 0)
            r = cb(&op, arg);
        if (r) {
            mdb_cursor_close(c);
            return r;
        }
        done++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : st_txn_err(t, rc);
}

int store_journal_trim(struct store_txn *t, uint64_t upto)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    uint64_t next;
    if ((rc = journal_next(t, &next)) < 0)
        return rc;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DB_JOURNAL], &c)) != 0)
        return st_txn_err(t, rc);
    MDB_val k, v;
    bool any = false;
    /* MDB_FIRST again after each delete, rather than relying on where LMDB leaves a cursor
     * after a delete (which has differed between LMDB versions at page ends). */
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size != 8) {
            mdb_cursor_close(c);
            return -EBADMSG;
        }
        if (st_rd_be64(k.mv_data) >= upto)
            break;
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        any = true;
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return st_txn_err(t, rc);
    if (!any)
        return 0;
    uint8_t b[8];
    st_le64(b, next);
    return st_put(t, DB_META, JNEXT, sizeof JNEXT - 1, b, 8, 0);
}

/* ---- peers ---- */

static int peer_decode(const MDB_val *v, struct store_peer *p)
{
    struct st_mpr r = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size};
    uint32_t n;
    int rc = st_mpr_map(&r, &n);
    if (rc)
        return rc;
    memset(p, 0, sizeof *p);
    p->hwm = 1;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        struct st_mp_val k, x;
        if ((rc = st_mpr_val(&r, &k)) < 0 || (rc = st_mpr_val(&r, &x)) < 0)
            return rc;
        if (st_mp_key_is(&k, "h"))
            rc = st_mp_as_u64(&x, &p->hwm);
        else if (st_mp_key_is(&k, "l"))
            rc = st_mp_as_i64(&x, &p->last_ms);
        else if (st_mp_key_is(&k, "o"))
            rc = st_mp_as_u64(&x, &p->ops);
        else if (st_mp_key_is(&k, "b"))
            rc = st_mp_as_u64(&x, &p->batches);
        else if (st_mp_key_is(&k, "n"))
            rc = st_mp_as_str(&x, p->host, sizeof p->host);
        else if (st_mp_key_is(&k, "w"))
            rc = st_mp_as_str(&x, p->owner, sizeof p->owner);
    }
    return rc;
}

int store_peer_get(struct store_txn *t, const uint8_t agent[16], struct store_peer *out)
{
    memset(out, 0, sizeof *out);
    out->hwm = 1;
    if (!st_has_db(t, DB_PEERS))
        return -ENOENT;
    MDB_val v;
    int rc = st_get(t, DB_PEERS, agent, 16, &v);
    if (rc)
        return rc;
    return peer_decode(&v, out);
}

int store_peer_put(struct store_txn *t, const uint8_t agent[16], const struct store_peer *p)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    size_t hl = strnlen(p->host, sizeof p->host), ol = strnlen(p->owner, sizeof p->owner);
    if (hl == sizeof p->host || ol == sizeof p->owner)
        return -EINVAL;
    struct st_mpw w;
    st_mpw_init(&w);
    st_mpw_map(&w, 6);
    st_mpw_str(&w, "h");
    st_mpw_uint(&w, p->hwm);
    st_mpw_str(&w, "l");
    st_mpw_int(&w, p->last_ms);
    st_mpw_str(&w, "o");
    st_mpw_uint(&w, p->ops);
    st_mpw_str(&w, "b");
    st_mpw_uint(&w, p->batches);
    st_mpw_str(&w, "n");
    st_mpw_strn(&w, p->host, hl);
    st_mpw_str(&w, "w");
    st_mpw_strn(&w, p->owner, ol);
    rc = st_mpw_done(&w);
    if (rc == 0)
        rc = st_put(t, DB_PEERS, agent, 16, w.buf, w.len, 0);
    st_mpw_free(&w);
    return rc;
}

struct peer_ctx {
    int (*cb)(const uint8_t agent[16], const struct store_peer *p, void *arg);
    void *arg;
};

static int peer_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct peer_ctx *c = arg;
    struct store_peer p;
    if (k->mv_size != 16)
        return -EBADMSG;
    int rc = peer_decode(v, &p);
    return rc ? rc : c->cb(k->mv_data, &p, c->arg);
}

int store_peer_foreach(struct store_txn *t,
                       int (*cb)(const uint8_t agent[16], const struct store_peer *p, void *arg),
                       void *arg)
{
    if (!st_has_db(t, DB_PEERS))
        return 0;
    struct peer_ctx c = {cb, arg};
    return st_prefix_foreach(t, DB_PEERS, NULL, 0, peer_one, &c);
}
