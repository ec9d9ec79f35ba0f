/* journal_batch.c — see journal_batch.h. */
#include "journal_batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void journal_batch_init(struct journal_batch *b) { memset(b, 0, sizeof *b); }

void journal_batch_free(struct journal_batch *b)
{
    free(b->ops);
    free(b->pts);
    memset(b, 0, sizeof *b);
}

struct collect {
    struct journal_batch *b;
    size_t max_bytes;
    int err;
};

static int collect_op(const struct store_op *op, void *arg)
{
    struct collect *c = arg;
    struct journal_batch *b = c->b;
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 256;
        struct store_op *no = realloc(b->ops, ncap * sizeof *no);
        if (!no)
            return c->err = -ENOMEM;
        b->ops = no;
        b->cap = ncap;
    }
    b->ops[b->n++] = *op;
    b->bytes += 64 + (op->key ? strlen(op->key) : 0) + (op->value ? strlen(op->value) : 0) +
                op->count * 24;
    b->points += op->type == STORE_OP_METRICS ? op->count : 0;
    /* Stop at the size aimed for: the op that crossed it is in (a batch always moves on). */
    return b->bytes >= c->max_bytes || b->n >= JOURNAL_BATCH_MAX_OPS ? 1 : 0;
}

int journal_batch_collect(struct journal_batch *b, struct store_txn *t, uint64_t from,
                          size_t max_bytes)
{
    b->n = 0;
    b->bytes = 0;
    b->points = 0;
    struct collect c = {.b = b, .max_bytes = max_bytes ? max_bytes : JOURNAL_BATCH_BYTES};
    int rc = store_journal_read(t, from, 0, collect_op, &c);
    if (c.err)
        rc = c.err;
    if (rc < 0) {
        b->n = 0;
        return rc;
    }
    return 0;
}

int journal_batch_encode(struct journal_batch *b, struct store_txn *t, const uint8_t agent[16],
                         struct sync_buf *out)
{
    if (b->n == 0 || b->n > UINT32_MAX)
        return -EINVAL;
    uint64_t first = b->ops[0].seq, last = b->ops[b->n - 1].seq;
    int rc = sync_batch_begin(out, agent, first, last, (uint32_t)b->n);
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const struct store_op *op = &b->ops[i];
        const struct store_point *pts = NULL;
        if (op->type == STORE_OP_METRICS && op->count) {
            if (op->count > b->pts_cap) {
                struct store_point *np = realloc(b->pts, op->count * sizeof *np);
                if (!np)
                    return -ENOMEM;
                b->pts = np;
                b->pts_cap = op->count;
            }
            if ((rc = store_metric_range(t, op->run, op->key, op->first_index, op->count,
                                         b->pts)) < 0)
                return rc;
            pts = b->pts;
        }
        rc = sync_batch_op(out, op, pts);
    }
    if (rc == 0)
        rc = sync_batch_finish(out);
    return rc < 0 ? rc : out->err;
}
