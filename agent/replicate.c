/* replicate.c — the agent's side of replication (see replicate.h and sync/protocol.h).
 *
 * One thread, one transport (transport.h: ZeroMQ or HTTPS, by the server URL's scheme; this
 * file is the protocol, the same for both). States: saying HELLO (retried with exponential
 * backoff and jitter until a WELCOME comes back), then streaming: up to `window` batches in
 * flight (one over HTTPS, where each request waits for its answer), each a run of consecutive
 * journal ops; an ACK moves the acknowledged mark and trims the journal below it; a gap ERROR
 * rewinds to the server's mark; a failed request or no answer for a while means the link or
 * the server went away, and the thread says HELLO again. The batches are idempotent on the
 * server, so resending after any doubt is always safe.
 */
#include "replicate.h"

#include "agent.h"
#include "journal_batch.h"
#include "protocol.h"
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define ACK_TIMEOUT_MS 15000   /* no answer to a batch this long: the link is in doubt */
#define HELLO_BACKOFF_MIN_MS 100
#define HELLO_BACKOFF_MAX_MS 30000
/* A refused token or key is retried this many backoff steps further on (seconds, not
 * milliseconds): the fix is a person's, but it should take effect without a restart. */
#define REFUSED_BACKOFF_STEPS 6

struct inflight {
    uint64_t first, last;
    uint64_t points;
    uint64_t sent_ms;
};

struct replicator {
    struct store *store;
    struct replicate_options opt;
    char endpoint[1024];
    char host[256];
    uint8_t agent[16];
    struct transport *tp;
    pthread_t thread;
    bool started;
    _Atomic bool stop;
    _Atomic bool kick;
    /* opt's pacing, changed by a SIGHUP while the thread runs (replicate_set_pacing) */
    _Atomic uint32_t interval_ms;
    _Atomic uint64_t backlog_threshold;
    pthread_mutex_t mu; /* guards st */
    struct replicate_status st;
    /* thread-only state */
    struct inflight *win;
    uint32_t nwin;
    uint64_t next_send;
    bool draining;        /* the last round sent a batch: go on without waiting for a due */
    unsigned busy_tries;  /* consecutive refusals for being busy (HTTP 503), for backoff */
    struct sync_buf buf;
    bool link_failed;     /* the last send_frame failed in the transport */
    struct journal_batch jb; /* the batch being built (its buffers reused) */
    uint64_t rate_t0_ms, rate_points0;
    uint64_t bytes_at_ms; /* when backlog_bytes was last worked out */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_error(struct replicator *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(struct replicator *r, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->mu);
    bool same = !strcmp(r->st.last_error, msg);
    snprintf(r->st.last_error, sizeof r->st.last_error, "%s", msg);
    r->st.last_error_ms = now_ms();
    pthread_mutex_unlock(&r->mu);
    if (!same) /* said once per distinct error, not once per retry */
        agent_log("warning", "sync: %s", msg);
}

static void set_connected(struct replicator *r, bool c)
{
    pthread_mutex_lock(&r->mu);
    r->st.connected = c;
    pthread_mutex_unlock(&r->mu);
}

static int journal_next(struct replicator *r, uint64_t *next)
{
    struct store_txn *t;
    int rc = store_begin(r->store, false, &t);
    if (rc < 0)
        return rc;
    uint64_t first;
    rc = store_journal_bounds(t, &first, next);
    store_abort(t);
    return rc;
}

/* The bytes a journal op takes on the wire, about (not counting artifact content). */
static uint64_t op_bytes(const struct store_op *op)
{
    return 32 + (op->key ? strlen(op->key) : 0) + (op->value ? strlen(op->value) : 0) +
           (op->type == STORE_OP_METRICS ? op->count * 24 : 0) +
           (op->type == STORE_OP_RUN_START ? 128 : 0);
}

struct sum_bytes {
    uint64_t bytes, ops;
};

static int sum_op(const struct store_op *op, void *arg)
{
    struct sum_bytes *sb = arg;
    sb->bytes += op_bytes(op);
    sb->ops++;
    return 0;
}

/* The backlog in bytes: the unacknowledged journal walked once a second, at most 100,000
 * entries of it (beyond, their average stands for the rest). */
static void update_backlog_bytes(struct replicator *r, uint64_t from, uint64_t ops)
{
    static const size_t walk_max = 100000;
    struct store_txn *t;
    if (store_begin(r->store, false, &t) < 0)
        return;
    struct sum_bytes sb = {0};
    store_journal_read(t, from, walk_max, sum_op, &sb);
    store_abort(t);
    uint64_t bytes = sb.ops && ops > sb.ops ? sb.bytes / sb.ops * ops : sb.bytes;
    pthread_mutex_lock(&r->mu);
    r->st.backlog_bytes = bytes;
    pthread_mutex_unlock(&r->mu);
}

static void update_backlog(struct replicator *r)
{
    uint64_t next;
    if (journal_next(r, &next) < 0)
        return;
    uint64_t t = mono_ms();
    if (t - r->bytes_at_ms >= 1000) {
        r->bytes_at_ms = t;
        pthread_mutex_lock(&r->mu);
        uint64_t from = r->st.acked ? r->st.acked : 1;
        pthread_mutex_unlock(&r->mu);
        update_backlog_bytes(r, from, next > from ? next - from : 0);
    }
    pthread_mutex_lock(&r->mu);
    r->st.journal_next = next;
    r->st.backlog_ops = next > r->st.acked ? next - r->st.acked : 0;
    if (r->st.backlog_ops == 0)
        r->st.backlog_since_ms = 0;
    else if (r->st.backlog_since_ms == 0)
        r->st.backlog_since_ms = now_ms();
    pthread_mutex_unlock(&r->mu);
}

/* Hands the frame in r->buf to the transport. A failure of the link (not of the frame) is
 * -errno with the transport's words in r->tp->error; link_failed tells the two apart. */
static int send_frame(struct replicator *r)
{
    r->link_failed = false;
    if (r->buf.err)
        return r->buf.err;
    int rc = r->tp->ops->send(r->tp, r->buf.data, r->buf.len);
    r->link_failed = rc < 0;
    return rc;
}

/* ---- artifact content ---- */

static int recv_reply(struct replicator *r, int timeout_ms, struct sync_msg *m);
static void on_ack(struct replicator *r, uint64_t hwm);

/* Waits for the BLOB_STATE answering our last blob message: 0 with *have, or -errno. */
static int blob_answer(struct replicator *r, const uint8_t sha[32], uint64_t *have)
{
    uint64_t deadline = mono_ms() + ACK_TIMEOUT_MS;
    while (mono_ms() < deadline && !atomic_load(&r->stop)) {
        struct sync_msg m;
        if (recv_reply(r, 100, &m) <= 0)
            continue;
        int rc = 1;
        if (m.type == SYNC_BLOB_STATE && !memcmp(m.sha256, sha, 32)) {
            *have = m.have;
            rc = 0;
        } else if (m.type == SYNC_ERROR) {
            set_error(r, "artifact upload refused: %s", m.msg);
            rc = m.code < 0 ? m.code : -EPROTO;
        } else if (m.type == SYNC_ACK) {
            on_ack(r, m.hwm); /* a late ack: still true */
        }
        sync_msg_free(&m);
        if (rc <= 0)
            return rc;
    }
    return -ETIMEDOUT;
}

/* Makes sure the server has an artifact's content before the batch naming it goes out:
 * offered first (the server may have it from any agent: sent once), then sent in chunks from
 * where the server stands (an interrupted upload resumes). */
static int upload_blob(struct replicator *r, const uint8_t sha[32], uint64_t size)
{
    char path[4096];
    if (store_blob_path(r->store, sha, path, sizeof path) < 0)
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_error(r, "artifact content %s is not in the store: its reference goes without it",
                  path);
        return 0;
    }
    uint8_t *chunk = malloc(SYNC_BLOB_CHUNK_BYTES);
    uint64_t have = 0;
    int rc = chunk ? 0 : -ENOMEM;
    if (rc == 0) {
        sync_buf_reset(&r->buf);
        sync_encode_blob_offer(&r->buf, sha, size);
        if ((rc = send_frame(r)) == 0)
            rc = blob_answer(r, sha, &have);
    }
    while (rc == 0 && have < size && !atomic_load(&r->stop)) {
        size_t want = size - have < SYNC_BLOB_CHUNK_BYTES ? (size_t)(size - have)
                                                          : SYNC_BLOB_CHUNK_BYTES;
        ssize_t n = pread(fd, chunk, want, (off_t)have);
        if (n != (ssize_t)want) {
            rc = n < 0 ? -errno : -EIO;
            set_error(r, "cannot read artifact content %s: %s", path, strerror(-rc));
            break;
        }
        sync_buf_reset(&r->buf);
        sync_encode_blob_chunk(&r->buf, sha, size, have, chunk, want);
        if ((rc = send_frame(r)) == 0)
            rc = blob_answer(r, sha, &have);
    }
    free(chunk);
    close(fd);
    return rc;
}

/* ---- building a batch from the journal ---- */

static int build_and_send(struct replicator *r, bool *sent)
{
    *sent = false;
    struct store_txn *t;
    int rc = store_begin(r->store, false, &t);
    if (rc < 0)
        return rc;
    struct journal_batch *b = &r->jb;
    if ((rc = journal_batch_collect(b, t, r->next_send, r->opt.batch_bytes)) < 0 || b->n == 0)
        goto out;
    bool artifacts = false;
    for (size_t i = 0; i < b->n; i++)
        artifacts |= b->ops[i].type == STORE_OP_ARTIFACT;
    if (artifacts) {
        /* Content first, with nothing in flight (the answers come one by one), so that the
         * server never holds a reference to content it cannot serve for long. */
        if (r->nwin)
            goto out;
        for (size_t i = 0; i < b->n && rc == 0; i++)
            if (b->ops[i].type == STORE_OP_ARTIFACT)
                rc = upload_blob(r, b->ops[i].sha256, b->ops[i].size);
        if (rc < 0)
            goto out;
    }
    if (b->ops[0].seq != r->next_send) {
        /* Trimmed past what the server has: it acknowledged more than we sent, or the journal
         * was cut by hand. Nothing can be resent: say so loudly and go on from here. */
        set_error(r, "journal starts at op %llu, the server expects %llu: ops in between "
                     "are gone", (unsigned long long)b->ops[0].seq,
                  (unsigned long long)r->next_send);
    }
    uint64_t first = b->ops[0].seq, last = b->ops[b->n - 1].seq;
    if ((rc = journal_batch_encode(b, t, r->agent, &r->buf)) < 0)
        goto out;
    if ((rc = send_frame(r)) < 0)
        goto out;
    r->win[r->nwin++] = (struct inflight){first, last, b->points, mono_ms()};
    r->next_send = last + 1;
    *sent = true;
out:
    store_abort(t);
    return rc;
}

/* ---- acknowledgements ---- */

static void trim(struct replicator *r, uint64_t hwm)
{
    struct store_txn *t;
    if (store_begin(r->store, true, &t) < 0)
        return;
    if (store_journal_trim(t, hwm) < 0 || store_commit(t) < 0) {
        if (t)
            store_abort(t);
    }
}

static void on_ack(struct replicator *r, uint64_t hwm)
{
    uint64_t ops = 0, points = 0, batches = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->nwin; i++) {
        if (r->win[i].last < hwm) {
            ops += r->win[i].last - r->win[i].first + 1;
            points += r->win[i].points;
            batches++;
        } else {
            r->win[k++] = r->win[i];
        }
    }
    r->nwin = k;
    pthread_mutex_lock(&r->mu);
    if (hwm > r->st.acked)
        r->st.acked = hwm;
    r->st.batches += batches;
    r->st.ops += ops;
    r->st.points += points;
    r->st.last_ack_ms = now_ms();
    uint64_t t = mono_ms();
    if (!r->rate_t0_ms)
        r->rate_t0_ms = t, r->rate_points0 = r->st.points;
    else if (t - r->rate_t0_ms >= 2000) {
        r->st.points_per_sec =
            (double)(r->st.points - r->rate_points0) * 1000.0 / (double)(t - r->rate_t0_ms);
        r->rate_t0_ms = t, r->rate_points0 = r->st.points;
    }
    pthread_mutex_unlock(&r->mu);
    if (r->next_send < hwm)
        r->next_send = hwm;
    trim(r, hwm);
}

/* Waits for one reply up to timeout_ms. 1 handled, 0 none, <0 error. */
static int recv_reply(struct replicator *r, int timeout_ms, struct sync_msg *m)
{
    const uint8_t *frame;
    size_t len;
    int n = r->tp->ops->recv(r->tp, timeout_ms, &frame, &len);
    if (n <= 0)
        return n == -EINTR ? 0 : n;
    int rc = sync_decode(frame, len, m);
    if (rc < 0) {
        set_error(r, "a malformed reply from the server (%s)", strerror(-rc));
        return 0;
    }
    return 1;
}

/* ---- the loop ---- */

static uint64_t backoff_ms(unsigned attempt)
{
    uint64_t d = HELLO_BACKOFF_MIN_MS << (attempt < 9 ? attempt : 9);
    if (d > HELLO_BACKOFF_MAX_MS)
        d = HELLO_BACKOFF_MAX_MS;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
        rnd = (uint32_t)mono_ms() * 2654435761u;
    return d / 2 + rnd % (d / 2 + 1); /* "full jitter" on the upper half */
}

/* How long to wait after the transport failed with rc: what the server asked for (HTTP
 * Retry-After, with some jitter so that agents do not come back together), far longer when
 * it refused our credentials, else the usual backoff. */
static uint64_t retry_delay(struct replicator *r, int rc, unsigned attempt)
{
    if (r->tp->retry_after_ms)
        return r->tp->retry_after_ms + backoff_ms(0);
    if (rc == -EACCES)
        return backoff_ms(attempt + REFUSED_BACKOFF_STEPS);
    return backoff_ms(attempt);
}

/* Says what the transport reported, in a sentence about the server. */
static void set_link_error(struct replicator *r, int rc)
{
    if (rc == -EACCES) /* the transport's words say which credentials and why */
        set_error(r, "%s; retrying slowly", r->tp->error);
    else
        set_error(r, "cannot reach %s (%s); retrying", r->endpoint, r->tp->error);
}

static bool sleep_or_stop(struct replicator *r, uint64_t ms)
{
    uint64_t until = mono_ms() + ms;
    while (!atomic_load(&r->stop) && mono_ms() < until) {
        if (atomic_exchange(&r->kick, false))
            return false;
        usleep(10000);
    }
    return atomic_load(&r->stop);
}

/* HELLO until a WELCOME: returns the server's mark, or 0 when stopping. */
static uint64_t say_hello(struct replicator *r)
{
    for (unsigned attempt = 0; !atomic_load(&r->stop); attempt++) {
        uint64_t next = 1;
        journal_next(r, &next);
        update_backlog(r); /* `sync status` shows what waits while the server is away */
        sync_buf_reset(&r->buf);
        sync_encode_hello(&r->buf, r->agent, r->host, next);
        int rc = send_frame(r);
        if (rc == 0) {
            uint64_t deadline = mono_ms() + 2000 + backoff_ms(attempt);
            while (mono_ms() < deadline && !atomic_load(&r->stop)) {
                struct sync_msg m;
                int got = recv_reply(r, 100, &m);
                if (got <= 0) {
                    update_backlog(r); /* what waits keeps growing while we wait */
                    continue;
                }
                uint64_t hwm = m.hwm;
                int type = m.type, code = m.code;
                char text[sizeof m.msg];
                snprintf(text, sizeof text, "%s", m.msg);
                sync_msg_free(&m);
                if (type == SYNC_WELCOME)
                    return hwm ? hwm : 1;
                if (type == SYNC_ERROR)
                    set_error(r, "the server refused HELLO: %s (%s)", text, strerror(-code));
                /* a stale ACK or ERROR of an earlier connection: keep waiting */
            }
            set_error(r, "no answer from %s (server down, unreachable, or this agent's key "
                         "not in its allow-list); retrying", r->endpoint);
        } else {
            if (r->link_failed)
                set_link_error(r, rc);
            else
                set_error(r, "cannot say HELLO: %s", strerror(-rc));
            if (sleep_or_stop(r, retry_delay(r, rc, attempt)))
                return 0;
        }
    }
    return 0;
}

static void *replicate_main(void *arg)
{
    struct replicator *r = arg;
    while (!atomic_load(&r->stop)) {
        set_connected(r, false);
        uint64_t hwm = say_hello(r);
        if (!hwm)
            break;
        r->nwin = 0;
        r->next_send = hwm;
        r->busy_tries = 0;
        set_connected(r, true);
        pthread_mutex_lock(&r->mu);
        if (hwm > r->st.acked)
            r->st.acked = hwm;
        r->st.last_error[0] = 0;
        pthread_mutex_unlock(&r->mu);
        agent_log("info", "sync: connected to %s; the server has ops below %llu", r->endpoint,
                  (unsigned long long)hwm);
        trim(r, hwm);
        uint64_t last_round = 0;
        bool lost = false;
        while (!atomic_load(&r->stop) && !lost) {
            update_backlog(r);
            pthread_mutex_lock(&r->mu);
            uint64_t backlog = r->st.journal_next > r->next_send
                                   ? r->st.journal_next - r->next_send
                                   : 0;
            pthread_mutex_unlock(&r->mu);
            if (!backlog)
                r->draining = false;
            bool due = atomic_exchange(&r->kick, false) ||
                       mono_ms() - last_round >= atomic_load(&r->interval_ms) ||
                       backlog >= atomic_load(&r->backlog_threshold) || r->nwin > 0 ||
                       r->draining;
            /* Fill the window while there is something to send. */
            while (due && backlog && r->nwin < r->opt.window && !atomic_load(&r->stop)) {
                bool sent;
                int rc = build_and_send(r, &sent);
                if (rc < 0) {
                    if (r->link_failed)
                        set_link_error(r, rc);
                    else
                        set_error(r, "cannot send a batch: %s", strerror(-rc));
                    if (rc == -EAGAIN && r->link_failed) {
                        /* Busy (HTTP 503, a full ZeroMQ queue): nothing was taken; the
                         * same batch goes again after the wait the server asked for. */
                        sleep_or_stop(r, retry_delay(r, rc, r->busy_tries++));
                    } else if (rc != -ENOMEM && rc != -EAGAIN) {
                        /* A refusal or no answer (a restarted server that never heard our
                         * HELLO, say): say HELLO again, after a backoff. */
                        lost = true;
                        sleep_or_stop(r, retry_delay(r, rc, 2));
                    }
                    break;
                }
                if (!sent)
                    break;
                r->draining = true;
                r->busy_tries = 0;
                last_round = mono_ms();
            }
            if (due && !backlog)
                last_round = mono_ms();
            struct sync_msg m;
            int got = recv_reply(r, r->nwin ? 200 : 100, &m);
            if (got > 0) {
                if (m.type == SYNC_ACK) {
                    on_ack(r, m.hwm);
                } else if (m.type == SYNC_ERROR) {
                    if (m.code == -ERANGE && m.hwm) {
                        r->nwin = 0; /* everything in flight is moot: resend from the mark */
                        r->next_send = m.hwm;
                    } else {
                        set_error(r, "the server refused a batch: %s", m.msg);
                        lost = true; /* HELLO again, after a backoff */
                        sleep_or_stop(r, backoff_ms(3));
                    }
                } else if (m.type == SYNC_WELCOME) {
                    /* a late answer to an earlier HELLO: resume from its mark */
                    r->nwin = 0;
                    r->next_send = m.hwm;
                }
                sync_msg_free(&m);
            }
            if (r->nwin && mono_ms() - r->win[0].sent_ms > ACK_TIMEOUT_MS) {
                set_error(r, "no acknowledgement from %s for %d s; reconnecting", r->endpoint,
                          ACK_TIMEOUT_MS / 1000);
                lost = true;
            }
        }
    }
    set_connected(r, false);
    return NULL;
}

/* The transport the URL's scheme names. */
static int open_transport(struct replicator *r, const struct replicate_options *o, char *err,
                          size_t errlen)
{
    struct transport_config c = {
        .url = o->endpoint,
        .server_key = o->server_key,
        .key = o->key,
        .token_file = o->token_file,
        .ca_file = o->ca_file,
        .insecure_http = o->insecure_http,
        .timeout_ms = ACK_TIMEOUT_MS,
    };
    if (!strncmp(o->endpoint, "tcp://", 6))
        return transport_zmq_open(&r->tp, &c, err, errlen);
    if (!strncmp(o->endpoint, "https://", 8) || !strncmp(o->endpoint, "http://", 7))
        return transport_http_open(&r->tp, &c, err, errlen);
    snprintf(err, errlen, "server address %s: use tcp://HOST:PORT (ZeroMQ) or "
                          "https://HOST:PORT", o->endpoint);
    return -EINVAL;
}

int replicate_start(struct replicator **out, struct store *s, const struct replicate_options *o,
                    char *err, size_t errlen)
{
    struct replicator *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->store = s;
    r->opt = *o;
    if (!r->opt.interval_ms)
        r->opt.interval_ms = 1000;
    if (!r->opt.backlog_threshold)
        r->opt.backlog_threshold = 10000;
    atomic_init(&r->interval_ms, r->opt.interval_ms);
    atomic_init(&r->backlog_threshold, r->opt.backlog_threshold);
    if (!r->opt.batch_bytes)
        r->opt.batch_bytes = 256 << 10;
    if (!r->opt.window)
        r->opt.window = 8;
    snprintf(r->endpoint, sizeof r->endpoint, "%s", o->endpoint);
    pthread_mutex_init(&r->mu, NULL);
    sync_buf_init(&r->buf);
    int rc = open_transport(r, o, err, errlen);
    if (rc < 0) {
        replicate_stop(r);
        return rc;
    }
    if (r->opt.window > r->tp->max_window)
        r->opt.window = r->tp->max_window;
    snprintf(r->st.transport, sizeof r->st.transport, "%s", r->tp->kind);
    store_id(s, r->agent);
    gethostname(r->host, sizeof r->host - 1);
    r->win = calloc(r->opt.window, sizeof *r->win);
    if (!r->win) {
        snprintf(err, errlen, "out of memory");
        replicate_stop(r);
        return -ENOMEM;
    }
    if ((rc = pthread_create(&r->thread, NULL, replicate_main, r)) != 0) {
        snprintf(err, errlen, "cannot start the sync thread: %s", strerror(rc));
        replicate_stop(r);
        return -rc;
    }
    r->started = true;
    *out = r;
    return 0;
}

void replicate_stop(struct replicator *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    if (r->started)
        pthread_join(r->thread, NULL);
    transport_close(r->tp);
    sync_buf_free(&r->buf);
    free(r->win);
    journal_batch_free(&r->jb);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void replicate_kick(struct replicator *r)
{
    if (r)
        atomic_store(&r->kick, true);
}

void replicate_set_pacing(struct replicator *r, uint32_t interval_ms, uint64_t backlog)
{
    if (!r)
        return;
    atomic_store(&r->interval_ms, interval_ms ? interval_ms : 1000);
    atomic_store(&r->backlog_threshold, backlog ? backlog : 10000);
    atomic_store(&r->kick, true); /* a shorter interval applies now, not after the old one */
}

void replicate_get_status(struct replicator *r, struct replicate_status *st)
{
    pthread_mutex_lock(&r->mu);
    *st = r->st;
    pthread_mutex_unlock(&r->mu);
}
