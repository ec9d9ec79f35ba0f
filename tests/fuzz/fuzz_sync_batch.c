/* fuzz_sync_batch.c — libFuzzer target: sync/protocol.c sync_decode() on a frame from the
 * network (an agent's BATCH or HELLO at the server, the server's answers at the agent).
 *
 * Input: a mode byte, then the frame. Mode bit 0: the harness replaces the frame's last 4
 * bytes with the CRC-32C of the rest, so that mutations get past the checksum to the msgpack.
 * The frame lies in a heap buffer of exactly its size.
 *
 * Besides "no crash": a frame that decodes has consistent ops (seqs first..last, points inside
 * the frame, NUL-terminated strings), and encoding the decoded message again gives a frame
 * that decodes to the same message, bit for bit (a HELLO or WELCOME of an older protocol
 * version is encoded again as the current version: the one field allowed to differ). */
#include "protocol.h"
#include "shmlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool same_op(const struct store_op *a, const struct store_op *b)
{
    return a->seq == b->seq && a->type == b->type && memcmp(a->run, b->run, 16) == 0 &&
           same_str(a->experiment, b->experiment) && same_str(a->name, b->name) &&
           same_str(a->user, b->user) && same_str(a->host, b->host) &&
           a->start_ms == b->start_ms && a->has_parent == b->has_parent &&
           memcmp(a->parent, b->parent, 16) == 0 && a->status == b->status &&
           a->end_ms == b->end_ms && same_str(a->key, b->key) && same_str(a->value, b->value) &&
           a->first_index == b->first_index && a->count == b->count &&
           memcmp(a->sha256, b->sha256, 32) == 0 && a->size == b->size &&
           same_str(a->model, b->model) && same_str(a->aliases, b->aliases) &&
           same_str(a->description, b->description) && same_str(a->actor, b->actor) &&
           same_str(a->digest, b->digest) && a->time_ms == b->time_ms;
}

static void same_msg(const struct sync_msg *a, const struct sync_msg *b)
{
    check(a->type == b->type &&
          (a->version == b->version ||
           (a->version >= SYNC_PROTOCOL_MIN_VERSION && b->version == SYNC_PROTOCOL_VERSION)));
    switch (a->type) {
    case SYNC_HELLO:
        check(memcmp(a->agent, b->agent, 16) == 0 && strcmp(a->host, b->host) == 0 &&
              a->next == b->next);
        break;
    case SYNC_WELCOME:
    case SYNC_ACK:
        check(a->hwm == b->hwm);
        break;
    case SYNC_ERROR:
        check(a->code == b->code && strcmp(a->msg, b->msg) == 0 && a->hwm == b->hwm);
        break;
    case SYNC_BLOB_OFFER:
    case SYNC_BLOB_STATE:
    case SYNC_BLOB_CHUNK:
        check(memcmp(a->sha256, b->sha256, 32) == 0 && a->size == b->size &&
              a->have == b->have && a->offset == b->offset && a->data_len == b->data_len &&
              (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0));
        check(a->have <= a->size && a->offset <= a->size && a->data_len <= a->size - a->offset);
        break;
    case SYNC_BATCH:
        check(memcmp(a->agent, b->agent, 16) == 0 && a->first == b->first &&
              a->last == b->last && a->nops == b->nops);
        for (uint32_t i = 0; i < a->nops; i++) {
            check(same_op(&a->ops[i], &b->ops[i]));
            if (a->ops[i].type == STORE_OP_METRICS && a->ops[i].count)
                check(memcmp(a->points[i], b->points[i], a->ops[i].count * 24) == 0);
        }
        break;
    default:
        check(false);
    }
}

static void reencode(const struct sync_msg *m, struct sync_buf *b)
{
    int rc = -EINVAL;
    switch (m->type) {
    case SYNC_HELLO: rc = sync_encode_hello(b, m->agent, m->host, m->next); break;
    case SYNC_WELCOME: rc = sync_encode_welcome(b, m->hwm); break;
    case SYNC_ACK: rc = sync_encode_ack(b, m->hwm); break;
    case SYNC_ERROR: rc = sync_encode_error(b, m->code, m->msg, m->hwm); break;
    case SYNC_BLOB_OFFER: rc = sync_encode_blob_offer(b, m->sha256, m->size); break;
    case SYNC_BLOB_STATE: rc = sync_encode_blob_state(b, m->sha256, m->size, m->have); break;
    case SYNC_BLOB_CHUNK:
        rc = sync_encode_blob_chunk(b, m->sha256, m->size, m->offset, m->data, m->data_len);
        break;
    case SYNC_BATCH:
        check(sync_batch_begin(b, m->agent, m->first, m->last, m->nops) == 0);
        for (uint32_t i = 0; i < m->nops; i++) {
            const struct store_op *op = &m->ops[i];
            struct store_point *pts = NULL;
            if (op->type == STORE_OP_METRICS && op->count) {
                pts = malloc(op->count * sizeof *pts);
                check(pts != NULL);
                for (uint64_t k = 0; k < op->count; k++)
                    sync_point_get(m->points[i], k, &pts[k]);
            }
            check(sync_batch_op(b, op, pts) == 0);
            free(pts);
        }
        rc = sync_batch_finish(b);
        break;
    }
    check(rc == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    uint8_t mode = data[0];
    size_t len = size - 1;
    uint8_t *frame = malloc(len ? len : 1);
    check(frame != NULL);
    memcpy(frame, data + 1, len);
    if ((mode & 1) && len >= 4) {
        uint32_t crc = shmlog_crc32c(0, frame, len - 4);
        for (int i = 0; i < 4; i++)
            frame[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    }
    struct sync_msg m;
    int rc = sync_decode(len ? frame : NULL, len, &m);
    check(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
    if (rc < 0) {
        check(m.ops == NULL && m.nops == 0);
        sync_msg_free(&m);
        free(frame);
        return 0;
    }
    check(m.type >= SYNC_HELLO && m.type <= SYNC_BLOB_CHUNK);
    check(memchr(m.host, 0, sizeof m.host) && memchr(m.msg, 0, sizeof m.msg));
    if (m.type == SYNC_BATCH) {
        check(m.nops >= 1 && m.ops && m.points && m.last - m.first + 1 == m.nops);
        for (uint32_t i = 0; i < m.nops; i++) {
            const struct store_op *op = &m.ops[i];
            check(op->seq == m.first + i);
            check(op->type >= STORE_OP_RUN_START && op->type <= STORE_OP_MODEL_REGISTER);
            const char *strs[] = {op->experiment, op->name,    op->user,
                                  op->host,       op->key,     op->value,
                                  op->model,      op->aliases, op->description,
                                  op->actor,      op->digest};
            for (size_t k = 0; k < sizeof strs / sizeof *strs; k++)
                if (strs[k])
                    check(strlen(strs[k]) < len); /* ASan: inside the decoder's block */
            if (op->type == STORE_OP_METRICS) {
                check(m.points[i] >= frame && m.points[i] + op->count * 24 <= frame + len);
                for (uint64_t k = 0; k < op->count; k++) {
                    struct store_point p;
                    sync_point_get(m.points[i], k, &p);
                }
            } else {
                check(m.points[i] == NULL && op->count == 0);
            }
        }
    } else {
        check(m.ops == NULL && m.nops == 0);
    }
    struct sync_buf b;
    sync_buf_init(&b);
    reencode(&m, &b);
    struct sync_msg again;
    check(sync_decode(b.data, b.len, &again) == 0);
    same_msg(&m, &again);
    sync_msg_free(&again);
    sync_buf_free(&b);
    sync_msg_free(&m);
    free(frame);
    return 0;
}
