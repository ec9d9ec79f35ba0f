/* ingest.c — one agent frame in, one reply frame out (see ingest.h). */
#include "ingest.h"

#include "apply.h"
#include "blobs.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ingest {
    struct store *store;
    bool verbose;
    pthread_mutex_t blob_mu; /* one upload of a blob at a time: its .part file is shared */
    _Atomic uint64_t batches, ops, points, refused;
};

int ingest_open(struct ingest **out, struct store *s, bool verbose)
{
    struct ingest *ig = calloc(1, sizeof *ig);
    if (!ig)
        return -ENOMEM;
    ig->store = s;
    ig->verbose = verbose;
    pthread_mutex_init(&ig->blob_mu, NULL);
    *out = ig;
    return 0;
}

void ingest_close(struct ingest *ig)
{
    if (!ig)
        return;
    pthread_mutex_destroy(&ig->blob_mu);
    free(ig);
}

void ingest_stats(struct ingest *ig, struct ingest_stats *st)
{
    st->batches = atomic_load(&ig->batches);
    st->ops = atomic_load(&ig->ops);
    st->points = atomic_load(&ig->points);
    st->refused = atomic_load(&ig->refused);
}

static void agent_hex(const uint8_t agent[16], char hex[33]) { store_run_id_hex(agent, hex); }

struct hello_arg {
    const struct sync_msg *m;
    const char *identity;
    uint64_t hwm;
    bool refused;
    char owner[128];
};

/* Binds the agent id to the identity on first sight; refuses another identity later. */
static int hello_txn(struct store_txn *t, void *arg)
{
    struct hello_arg *h = arg;
    struct store_peer p;
    int r = store_peer_get(t, h->m->agent, &p);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == 0 && p.owner[0] && strcmp(p.owner, h->identity) != 0) {
        h->refused = true;
        snprintf(h->owner, sizeof h->owner, "%s", p.owner);
        return 0;
    }
    h->hwm = r == 0 ? p.hwm : 1;
    if (r == 0 && !strcmp(p.owner, h->identity) && !strcmp(p.host, h->m->host))
        return 0; /* nothing to record */
    snprintf(p.owner, sizeof p.owner, "%s", h->identity);
    snprintf(p.host, sizeof p.host, "%s", h->m->host);
    return store_peer_put(t, h->m->agent, &p);
}

/* The agent's record, when identity may speak for it. */
static int owned_peer(struct ingest *ig, const uint8_t agent[16], const char *identity,
                      struct store_peer *p)
{
    struct store_txn *t;
    int r = store_begin(ig->store, false, &t);
    if (r < 0)
        return r;
    r = store_peer_get(t, agent, p);
    store_abort(t);
    if (r == -ENOENT || (r == 0 && strcmp(p->owner, identity) != 0))
        return -EACCES;
    return r;
}

static void error_frame(struct sync_buf *out, int code, const char *msg, uint64_t hwm)
{
    sync_buf_reset(out);
    sync_encode_error(out, code, msg, hwm);
}

static int on_hello(struct ingest *ig, const char *identity, const struct sync_msg *m,
                    struct sync_buf *out)
{
    struct hello_arg h = {.m = m, .identity = identity};
    int r = store_update(ig->store, hello_txn, &h);
    char hex[33];
    agent_hex(m->agent, hex);
    if (r < 0) {
        server_log("error", "store: %s", store_strerror(r));
        error_frame(out, r, store_strerror(r), 0);
        return 0;
    }
    if (h.refused) {
        atomic_fetch_add(&ig->refused, 1);
        server_log("warning", "refused %s (%s) as agent %s: that agent belongs to %.40s",
                   identity, m->host, hex, h.owner);
        error_frame(out, -EACCES, "this agent id belongs to another key or token", 0);
        return -EACCES;
    }
    server_log("info", "agent %s (%s, %.40s) connected: resumes at %llu", hex, m->host, identity,
               (unsigned long long)h.hwm);
    sync_buf_reset(out);
    sync_encode_welcome(out, h.hwm);
    return 0;
}

static int on_batch(struct ingest *ig, const char *identity, const struct sync_msg *m,
                    struct sync_buf *out)
{
    struct store_peer p;
    int r = owned_peer(ig, m->agent, identity, &p);
    if (r == -EACCES) {
        /* A batch must follow its agent's HELLO by the same identity, so that the agent id it
         * names is one that identity introduced. */
        atomic_fetch_add(&ig->refused, 1);
        error_frame(out, -EPERM, "batch without HELLO for this agent", 0);
        return -EACCES;
    }
    if (r < 0) {
        error_frame(out, r, store_strerror(r), 0);
        return 0;
    }
    struct apply_result res;
    r = apply_batch(ig->store, m, p.host, &res);
    if (r == 0) {
        atomic_fetch_add(&ig->batches, 1);
        atomic_fetch_add(&ig->ops, res.applied);
        atomic_fetch_add(&ig->points, res.points);
        if (ig->verbose)
            server_log("info", "%s: ops %llu-%llu: %llu applied, %llu already here", p.host,
                       (unsigned long long)m->first, (unsigned long long)m->last,
                       (unsigned long long)res.applied, (unsigned long long)res.skipped);
        sync_buf_reset(out);
        sync_encode_ack(out, res.hwm);
    } else if (r == -ERANGE) {
        error_frame(out, r, "gap: resend from hwm", res.hwm);
    } else {
        server_log("error", "batch %llu-%llu of %s not applied: %s", (unsigned long long)m->first,
                   (unsigned long long)m->last, p.host, store_strerror(r));
        error_frame(out, r, store_strerror(r), 0);
    }
    return 0;
}

static int on_blob(struct ingest *ig, const char *identity, const struct sync_msg *m,
                   struct sync_buf *out)
{
    uint64_t have = 0;
    pthread_mutex_lock(&ig->blob_mu);
    int r = m->type == SYNC_BLOB_OFFER ? blobs_have(ig->store, m->sha256, m->size, &have)
                                       : blobs_chunk(ig->store, m, &have);
    pthread_mutex_unlock(&ig->blob_mu);
    if (r == 0 && m->type == SYNC_BLOB_OFFER && have && have < m->size)
        server_log("info", "%.40s: resuming an artifact upload at byte %llu of %llu", identity,
                   (unsigned long long)have, (unsigned long long)m->size);
    if (r < 0) {
        server_log("warning", "%.40s: artifact content: %s", identity,
                   r == -EBADMSG ? "digest mismatch: upload started over" : strerror(-r));
        error_frame(out, r, r == -EBADMSG ? "digest mismatch" : strerror(-r), 0);
    } else {
        sync_buf_reset(out);
        sync_encode_blob_state(out, m->sha256, m->size, have);
    }
    return 0;
}

int ingest_frame(struct ingest *ig, const char *identity, const uint8_t *frame, size_t len,
                 struct sync_buf *out)
{
    struct sync_msg m;
    int r = sync_decode(frame, len, &m);
    if (r < 0) {
        server_log("warning", "a malformed frame (%zu bytes) from %.40s: %s", len, identity,
                   strerror(-r));
        error_frame(out, r, "malformed frame", 0);
        return out->err;
    }
    switch (m.type) {
    case SYNC_HELLO: r = on_hello(ig, identity, &m, out); break;
    case SYNC_BATCH: r = on_batch(ig, identity, &m, out); break;
    case SYNC_BLOB_OFFER:
    case SYNC_BLOB_CHUNK: r = on_blob(ig, identity, &m, out); break;
    default: error_frame(out, -EPROTO, "unexpected message", 0); r = 0; break;
    }
    sync_msg_free(&m);
    return out->err ? out->err : r;
}
