/* lanes.c — the agent's per-lane bookkeeping.
 *
 * DB_LANES: lane id (24 bytes) -> fixed little-endian record, written in the same transaction
 * as the records drained from that lane (so the committed ring position is the authority):
 *   u64 ring_pos, spill_pos, records, skipped, dropped, lost; u32 pid, uid; u8 finished
 * (57 bytes; readers accept longer values, so fields can be appended later).
 * DB_LANEDICT: lane id + kind (1) + num (u32 BE) -> value: the lane's interned metric keys
 * ('k') and run slots ('r'), which the ring's fixed-size metric records refer to.
 */
#include "store_internal.h"

#include <errno.h>

#define LANE_LEN 57
#define DICT_KEY (STORE_LANE_ID_LEN + 5)

static void lane_decode(const uint8_t *p, struct store_lane *l)
{
    l->ring_pos = st_rd_le64(p);
    l->spill_pos = st_rd_le64(p + 8);
    l->records = st_rd_le64(p + 16);
    l->skipped = st_rd_le64(p + 24);
    l->dropped = st_rd_le64(p + 32);
    l->lost = st_rd_le64(p + 40);
    l->pid = st_rd_le32(p + 48);
    l->uid = st_rd_le32(p + 52);
    l->finished = p[56] != 0;
}

int store_lane_get(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN], struct store_lane *out)
{
    MDB_val v;
    int rc = st_get(t, DB_LANES, id, STORE_LANE_ID_LEN, &v);
    if (rc)
        return rc;
    if (v.mv_size < LANE_LEN)
        return -EBADMSG;
    lane_decode(v.mv_data, out);
    return 0;
}

int store_lane_put(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN],
                   const struct store_lane *l)
{
    uint8_t b[LANE_LEN];
    st_le64(b, l->ring_pos);
    st_le64(b + 8, l->spill_pos);
    st_le64(b + 16, l->records);
    st_le64(b + 24, l->skipped);
    st_le64(b + 32, l->dropped);
    st_le64(b + 40, l->lost);
    st_le32(b + 48, l->pid);
    st_le32(b + 52, l->uid);
    b[56] = l->finished ? 1 : 0;
    return st_put(t, DB_LANES, id, STORE_LANE_ID_LEN, b, LANE_LEN, 0);
}

/* -ENOENT when neither a record nor a dictionary entry existed. */
int store_lane_delete(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN])
{
    int rc = st_del(t, DB_LANES, id, STORE_LANE_ID_LEN);
    if (rc && rc != -ENOENT)
        return rc;
    bool any = rc == 0;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DB_LANEDICT], &c)) != 0)
        return st_txn_err(t, rc);
    MDB_val k = {STORE_LANE_ID_LEN, (void *)id}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= STORE_LANE_ID_LEN &&
           memcmp(k.mv_data, id, STORE_LANE_ID_LEN) == 0) {
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        any = true;
        /* seek again rather than rely on where a delete leaves the cursor */
        k = (MDB_val){STORE_LANE_ID_LEN, (void *)id};
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return st_txn_err(t, rc);
    return any ? 0 : -ENOENT;
}

int store_lane_dict_put(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN], uint8_t kind,
                        uint32_t num, const void *val, size_t len)
{
    if (!val && len)
        return -EINVAL;
    uint8_t k[DICT_KEY];
    memcpy(k, id, STORE_LANE_ID_LEN);
    k[STORE_LANE_ID_LEN] = kind;
    st_be32(k + STORE_LANE_ID_LEN + 1, num);
    return st_put(t, DB_LANEDICT, k, DICT_KEY, val ? val : "", len, 0);
}

struct dict_ctx {
    int (*cb)(uint8_t kind, uint32_t num, const void *val, size_t len, void *arg);
    void *arg;
};

static int dict_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct dict_ctx *c = arg;
    const uint8_t *p = k->mv_data;
    if (k->mv_size != DICT_KEY)
        return -EBADMSG;
    return c->cb(p[STORE_LANE_ID_LEN], st_rd_be32(p + STORE_LANE_ID_LEN + 1), v->mv_data,
                 v->mv_size, c->arg);
}

int store_lane_dict_foreach(struct store_txn *t, const uint8_t id[STORE_LANE_ID_LEN],
                            int (*cb)(uint8_t kind, uint32_t num, const void *val, size_t len,
                                      void *arg),
                            void *arg)
{
    struct dict_ctx c = {cb, arg};
    return st_prefix_foreach(t, DB_LANEDICT, id, STORE_LANE_ID_LEN, dict_one, &c);
}

struct lane_ctx {
    int (*cb)(const uint8_t id[STORE_LANE_ID_LEN], const struct store_lane *l, void *arg);
    void *arg;
};

static int lane_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct lane_ctx *c = arg;
    if (k->mv_size != STORE_LANE_ID_LEN || v->mv_size < LANE_LEN)
        return -EBADMSG;
    struct store_lane l;
    lane_decode(v->mv_data, &l);
    return c->cb(k->mv_data, &l, c->arg);
}

int store_lane_foreach(struct store_txn *t,
                       int (*cb)(const uint8_t id[STORE_LANE_ID_LEN], const struct store_lane *l,
                                 void *arg),
                       void *arg)
{
    struct lane_ctx c = {cb, arg};
    return st_prefix_foreach(t, DB_LANES, NULL, 0, lane_one, &c);
}
