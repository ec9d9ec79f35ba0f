/* replay_client.c — a hostile but authenticated agent, for test_sync_e2e.py: it connects to a
 * sidetrack-server with CURVE and a key in the allow-list, then sends what a broken or
 * malicious agent could: a batch twice (a replay), a batch with a gap, a truncated batch, a
 * batch with a bad checksum, random bytes, a batch before HELLO on a fresh connection, and an
 * empty frame. Each must be answered (ACK or ERROR) and none may crash the server; at the end
 * the server acknowledges exactly the ops it should have.
 *
 * Usage: replay_client ENDPOINT SERVER_PUB AGENT_KEY RUN_ID_HEX
 * Exit 0 when every answer was the expected one. */
#include "keys.h"
#include "protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static int failures;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "replay_client: FAILED %s: ", #cond);                             \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

static void *connect_agent(void *ctx, const char *endpoint, const char *spub, const char *pub,
                           const char *sec)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, tmo = 5000;
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, spub, SYNC_KEY_Z85);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, SYNC_KEY_Z85);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, SYNC_KEY_Z85);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (zmq_connect(s, endpoint) != 0) {
        fprintf(stderr, "replay_client: connect %s: %s\n", endpoint, zmq_strerror(errno));
        exit(2);
    }
    return s;
}

/* Sends bytes, waits for one answer, decodes it into m (type 0 when none came). */
static void ask(void *s, const void *data, size_t len, struct sync_msg *m)
{
    memset(m, 0, sizeof *m);
    zmq_send(s, data, len, 0);
    uint8_t buf[65536];
    int n = zmq_recv(s, buf, sizeof buf, 0);
    if (n < 0 || sync_decode(buf, (size_t)n, m) < 0)
        m->type = 0;
}

static void batch(struct sync_buf *b, const uint8_t agent[16], const uint8_t run[16],
                  uint64_t first, uint32_t n)
{
    sync_buf_reset(b);
    sync_batch_begin(b, agent, first, first + n - 1, n);
    for (uint32_t i = 0; i < n; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "replay_%llu", (unsigned long long)(first + i));
        snprintf(val, sizeof val, "v%llu", (unsigned long long)(first + i));
        struct store_op op = {.seq = first + i, .type = STORE_OP_TAG, .key = key, .value = val};
        memcpy(op.run, run, 16);
        sync_batch_op(b, &op, NULL);
    }
    sync_batch_finish(b);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: replay_client ENDPOINT SERVER_PUB AGENT_KEY RUN_ID_HEX\n");
        return 2;
    }
    char spub[SYNC_KEY_Z85 + 1], pub[SYNC_KEY_Z85 + 1], sec[SYNC_KEY_Z85 + 1];
    uint8_t run[16];
    if (sync_keys_read_public(argv[2], spub) < 0 || sync_keys_read_pair(argv[3], pub, sec) < 0 ||
        store_run_id_parse(argv[4], run) < 0) {
        fprintf(stderr, "replay_client: bad keys or run id\n");
        return 2;
    }
    uint8_t agent[16];
    for (int i = 0; i < 16; i++)
        agent[i] = (uint8_t)(0xa0 + i);
    void *ctx = zmq_ctx_new();
    void *s = connect_agent(ctx, argv[1], spub, pub, sec);
    struct sync_buf b;
    sync_buf_init(&b);
    struct sync_msg m;

    /* A batch before HELLO is refused. */
    batch(&b, agent, run, 1, 3);
    ask(s, b.data, b.len, &m);
    CHECK(m.type == SYNC_ERROR, "batch before HELLO answered with type %d", m.type);
    sync_msg_free(&m);

    sync_buf_reset(&b);
    sync_encode_hello(&b, agent, "replay-host", 1);
    ask(s, b.data, b.len, &m);
    CHECK(m.type == SYNC_WELCOME && m.hwm == 1, "HELLO: type %d hwm %llu", m.type,
          (unsigned long long)m.hwm);
    sync_msg_free(&m);

    batch(&b, agent, run, 1, 3);
    ask(s, b.data, b.len, &m);
    CHECK(m.type == SYNC_ACK && m.hwm == 4, "first batch: type %d hwm %llu", m.type,
          (unsigned long long)m.hwm);
    sync_msg_free(&m);

    ask(s, b.data, b.len, &m); /* the same batch again: harmless, same mark */
    CHECK(m.type == SYNC_ACK && m.hwm == 4, "replayed batch: type %d hwm %llu", m.type,
          (unsigned long long)m.hwm);
    sync_msg_free(&m);

    batch(&b, agent, run, 10, 2); /* a gap: 4..9 missing */
    ask(s, b.data, b.len, &m);
    CHECK(m.type == SYNC_ERROR && m.code == -ERANGE && m.hwm == 4, "gap: type %d code %d hwm %llu",
          m.type, m.code, (unsigned long long)m.hwm);
    sync_msg_free(&m);

    batch(&b, agent, run, 4, 2);
    ask(s, b.data, b.len / 2, &m); /* truncated */
    CHECK(m.type == SYNC_ERROR, "truncated batch: type %d", m.type);
    sync_msg_free(&m);

    b.data[b.len - 1] ^= 0x55; /* bad CRC */
    ask(s, b.data, b.len, &m);
    CHECK(m.type == SYNC_ERROR, "bad checksum: type %d", m.type);
    sync_msg_free(&m);

    uint8_t junk[1000];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    ask(s, junk, sizeof junk, &m);
    CHECK(m.type == SYNC_ERROR, "random bytes: type %d", m.type);
    sync_msg_free(&m);
    ask(s, "", 0, &m);
    CHECK(m.type == SYNC_ERROR, "empty frame: type %d", m.type);
    sync_msg_free(&m);

    batch(&b, agent, run, 2, 4); /* overlaps what the server has: only 4 and 5 are new */
    ask(s, b.data, b.len, &m);
    CHECK(m.type == SYNC_ACK && m.hwm == 6, "overlapping batch: type %d hwm %llu", m.type,
          (unsigned long long)m.hwm);
    sync_msg_free(&m);

    sync_buf_free(&b);
    zmq_close(s);
    zmq_ctx_term(ctx);
    if (!failures)
        printf("replay_client: every answer as expected\n");
    return failures ? 1 : 0;
}
