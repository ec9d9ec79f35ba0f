/* mlflow_push.c — the mlflow sync target (see mlflow_push.h for the contract).
 *
 * A push walks the selected runs one at a time. For each it reads, in one short read
 * transaction, what the store holds and what the target's records say was sent, so that it
 * knows what is missing without a single request; an up-to-date run costs no request at all.
 * Then, with no transaction open while it waits on the network:
 *   1. the remote run: found through the record, or looked for (runs/search by the tag
 *      sidetrack.source_run_id) when an earlier create may have happened, or created;
 *   2. pending markers left by a crash or a failed request are settled (metrics/get-history);
 *   3. log-batch requests: params and tags first, then the points not yet confirmed, within
 *      MLflow's limits; before a request that appends points its markers are committed and
 *      fsynced, after the 200 the new counts are committed;
 *   4. artifacts (PUT to the run's mlflow-artifacts location), then the run's end.
 * Records (store_remote_*, under the target's name), keys as bytes:
 *   'E' sha256(experiment name)    -> remote experiment id
 *   'R' run(16)                    -> remote run id, NUL, artifact URI
 *   'I' run                        -> a runs/create may have been sent (intent)
 *   'D' run                        -> status (1 byte), end_ms (8, LE) as sent by runs/update
 *   'M' run key                    -> points confirmed (u64 LE)
 *   'Q' run key                    -> pending: from, to (u64 LE each)
 *   'P' / 'T' run key              -> first 16 bytes of sha256 of the param / tag value sent
 *   'A' run sha256(path)           -> sha256 of the content sent
 *   'X' run kind key               -> the server refused this item (kind p, t, m): why
 */
#include "mlflow_push.h"

#include "mlflow_rest.h"
#include "protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* MLflow's limits for one log-batch (mlflow/utils/validation.py), and a body well under 1 MB */
#define MAX_METRICS 1000
#define MAX_PARAMS 100
#define MAX_TAGS 100
#define MAX_ENTITIES 1000
#define MAX_BODY 900000
#define MAX_KEY_CHARS 250
#define MAX_PARAM_CHARS 6000
#define HISTORY_PAGE 25000
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define PARENT_DEPTH 8
#define TAG_SOURCE "sidetrack.source_run_id"
#define TAG_PARENT "mlflow.parentRunId"

/* ---- small tools ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned len = 32;
    if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL))
        memset(out, 0, 32);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void mlflow_target_name(const char *url, char name[24])
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    uint8_t d[32];
    sha256(url, n, d);
    static const char hex[] = "0123456789abcdef";
    memcpy(name, "mlflow:", 7);
    for (int i = 0; i < 8; i++) {
        name[7 + 2 * i] = hex[d[i] >> 4];
        name[8 + 2 * i] = hex[d[i] & 15];
    }
    name[23] = '\0';
}

void mlflow_target_from_env(struct mlflow_target *t)
{
    const char *v;
    if (!t->token && (v = getenv("MLFLOW_TRACKING_TOKEN")) && *v)
        t->token = v;
    if (!t->username && (v = getenv("MLFLOW_TRACKING_USERNAME")) && *v)
        t->username = v;
    if (!t->password && (v = getenv("MLFLOW_TRACKING_PASSWORD")))
        t->password = v;
    if (!t->ca_file && (v = getenv("MLFLOW_TRACKING_SERVER_CERT_PATH")) && *v)
        t->ca_file = v;
    /* MLflow reads it as a boolean: "true" in any case */
    if ((v = getenv("MLFLOW_TRACKING_INSECURE_TLS")) && (!strcasecmp(v, "true") || !strcmp(v, "1")))
        t->insecure_tls = true;
}

/* Length of a valid UTF-8 sequence at s, or 0 for an invalid byte. */
static size_t utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    if (!n || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && s[0] == 0xe0 && s[1] < 0xa0)
        return 0;
    if (n == 3 && s[0] == 0xed && s[1] >= 0xa0)
        return 0; /* surrogates */
    if (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90)))
        return 0;
    return n;
}

/* A JSON string literal; invalid UTF-8 bytes become U+FFFD (MLflow would refuse the body). */
static void buf_json_str(struct sync_buf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    sync_buf_put(b, "\"", 1);
    while (*s) {
        size_t n = utf8_seq(s);
        if (!n) {
            sync_buf_put(b, "\\ufffd", 6);
            s++;
        } else if (*s == '"' || *s == '\\') {
            char e[2] = {'\\', (char)*s};
            sync_buf_put(b, e, 2);
            s++;
        } else if (*s < 0x20 || *s == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *s);
            sync_buf_put(b, e, 6);
            s++;
        } else {
            sync_buf_put(b, (const char *)s, n);
            s += n;
        }
    }
    sync_buf_put(b, "\"", 1);
}

/* Bytes buf_json_str() writes for s. */
static size_t json_str_len(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = 2;
    while (*s) {
        size_t n = utf8_seq(s);
        if (!n || *s < 0x20 || *s == 0x7f)
            len += 6, s++;
        else if (*s == '"' || *s == '\\')
            len += 2, s++;
        else
            len += n, s += n;
    }
    return len;
}

/* A double as protobuf's JSON reads it: NaN and the infinities as strings. */
static void buf_json_double(struct sync_buf *b, double v)
{
    if (isnan(v))
        sync_buf_puts(b, "\"NaN\"");
    else if (isinf(v))
        sync_buf_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else
        sync_buf_printf(b, "%.17g", v);
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Why MLflow would refuse this metric, param or tag key (validation.py: characters
 * [/\w.\- ], at most 250, and the key must be its own normalised path); NULL when it is fine.
 * Bytes of 0x80 and up pass: Python's \w takes letters of every script, and the server says
 * no to the rest (then the item is recorded as refused). */
static const char *key_problem(const char *k)
{
    if (!*k)
        return "an empty name";
    if (utf8_chars(k) > MAX_KEY_CHARS)
        return "longer than 250 characters, MLflow's limit";
    for (const unsigned char *c = (const unsigned char *)k; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.' || *c == ' ' || *c == '/' || *c >= 0x80))
            return "a character MLflow refuses in names (it takes letters, digits, '_', '-', "
                   "'.', ' ' and '/')";
    size_t n = strlen(k);
    if (k[0] == '/' || k[n - 1] == '/' || strstr(k, "//") || !strncmp(k, "..", 2))
        return "not a normal path (MLflow refuses a leading or trailing '/', '//' and a "
               "leading '..')";
    for (const char *seg = k; seg;) {
        const char *end = strchr(seg, '/');
        size_t sl = end ? (size_t)(end - seg) : strlen(seg);
        if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
            return "not a normal path (MLflow refuses '.' and '..' as parts of a name)";
        seg = end ? end + 1 : NULL;
    }
    return NULL;
}

/* ---- the push's state ------------------------------------------------------------------- */

struct kv {
    char *key, *value;
    uint8_t digest[16];
};

struct mkey {
    char *key;
    uint64_t local;     /* points in the store (as read at the run's start) */
    uint64_t sent;      /* confirmed on the remote */
    bool pending;       /* a marker says a request may have appended points */
    bool refused;
};

struct run_work {
    struct store_run r;
    char hex[33];
    char exp_name[1100];       /* remote name: prefix + local name */
    char *remote_id, *artifact_uri;
    bool intent;
    bool end_due;              /* a terminal status not yet sent */
    struct kv *params, *tags;  /* to send */
    size_t np, nt, cap_p, cap_t;
    struct mkey *metrics;      /* every valid key; sent < local: to send */
    size_t nm, cap_m;
    struct store_artifact *arts; /* to send */
    size_t na, cap_a;
    bool sent_any, created;
    uint64_t todo_points, done_points;
};

struct push {
    struct store *s;
    const struct mlflow_target *t;
    struct mlflow_push_stats *st;
    mlflow_progress_fn progress;
    void *parg;
    char *err;
    size_t errlen;
    struct mlflow_rest *rest;
    char target[24];
    uint64_t fail_since; /* monotonic ms of the first of consecutive failures; 0: none */
    uint32_t backoff_ms;
    struct sync_buf body, url;
    struct store_point *pts;
    size_t pts_cap;
    int depth; /* parents being made sure of */
};

/* One record to write: put (val != NULL or vlen) or delete. */
struct wrec {
    uint8_t key[512];
    size_t klen;
    uint8_t *val;
    size_t vlen;
    bool del;
};

struct wset {
    struct wrec *v;
    size_t n, cap;
    int err;
};

static void emit(struct push *p, struct mlflow_push_event *ev)
{
    if (p->progress)
        p->progress(ev, p->parg);
}

static void emitf(struct push *p, int kind, const struct run_work *w, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emitf(struct push *p, int kind, const struct run_work *w, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct mlflow_push_event ev = {.kind = kind, .message = msg};
    if (w) {
        ev.run_hex = w->hex;
        ev.run_name = w->r.name;
    }
    emit(p, &ev);
}

static int fail(struct push *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct push *p, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (p->err && p->errlen)
        vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static bool stopping(struct push *p)
{
    return p->t->should_stop && p->t->should_stop(p->t->stop_arg);
}

/* Record keys: kind, run, then a tail (a metric / param / tag key, or a digest). */
static size_t rkey(uint8_t *k, char kind, const uint8_t run[16], const void *tail, size_t tl)
{
    size_t n = 0;
    k[n++] = (uint8_t)kind;
    if (run) {
        memcpy(k + n, run, 16);
        n += 16;
    }
    if (tl > 200) {
        /* 250 characters can be 1000 bytes: a long key is named by its digest, after a NUL
         * (keys never hold one, so the two forms cannot clash); the store takes < 490 */
        k[n++] = 0;
        sha256(tail, tl, k + n);
        return n + 32;
    }
    if (tl)
        memcpy(k + n, tail, tl);
    return n + tl;
}

static void ws_add(struct wset *ws, const uint8_t *key, size_t klen, const void *val,
                   size_t vlen, bool del)
{
    if (ws->err)
        return;
    if (ws->n == ws->cap) {
        size_t cap = ws->cap ? ws->cap * 2 : 16;
        struct wrec *v = realloc(ws->v, cap * sizeof *v);
        if (!v) {
            ws->err = -ENOMEM;
            return;
        }
        ws->v = v;
        ws->cap = cap;
    }
    struct wrec *r = &ws->v[ws->n];
    memcpy(r->key, key, klen);
    r->klen = klen;
    r->vlen = vlen;
    r->del = del;
    r->val = NULL;
    if (vlen && !(r->val = malloc(vlen))) {
        ws->err = -ENOMEM;
        return;
    }
    if (vlen)
        memcpy(r->val, val, vlen);
    ws->n++;
}

static void ws_put(struct wset *ws, char kind, const uint8_t run[16], const void *tail,
                   size_t tl, const void *val, size_t vlen)
{
    uint8_t k[512];
    ws_add(ws, k, rkey(k, kind, run, tail, tl), val, vlen, false);
}

static void ws_del(struct wset *ws, char kind, const uint8_t run[16], const void *tail, size_t tl)
{
    uint8_t k[512];
    ws_add(ws, k, rkey(k, kind, run, tail, tl), NULL, 0, true);
}

static void ws_clear(struct wset *ws)
{
    for (size_t i = 0; i < ws->n; i++)
        free(ws->v[i].val);
    ws->n = 0;
    ws->err = 0;
}

static void ws_free(struct wset *ws)
{
    ws_clear(ws);
    free(ws->v);
}

struct apply_arg {
    const struct wset *ws;
    const char *target;
};

static int ws_apply(struct store_txn *t, void *arg)
{
    struct apply_arg *a = arg;
    for (size_t i = 0; i < a->ws->n; i++) {
        const struct wrec *r = &a->ws->v[i];
        int rc = r->del ? store_remote_del(t, a->target, r->key, r->klen)
                        : store_remote_put(t, a->target, r->key, r->klen, r->val ? r->val : (const void *)"", r->vlen);
        if (rc < 0 && !(r->del && rc == -ENOENT))
            return rc;
    }
    return 0;
}

/* Commits the records; durable: fsynced before it returns (a marker must be on disk before
 * the request it guards is sent, whatever the store's own fsync policy). */
static int ws_commit(struct push *p, struct wset *ws, bool durable)
{
    int rc = ws->err;
    if (!rc && ws->n) {
        struct apply_arg a = {ws, p->target};
        rc = store_update(p->s, ws_apply, &a);
        if (rc >= 0 && durable)
            rc = store_sync(p->s);
    }
    ws_clear(ws);
    if (rc < 0)
        return fail(p, rc, "cannot record what was sent in the store: %s", store_strerror(rc));
    return 0;
}

/* ---- requests, with retries -------------------------------------------------------------- */

static void reset_failures(struct push *p)
{
    p->fail_since = 0;
    p->backoff_ms = 0;
}

/* After a failure that a retry may cure: waits (Retry-After, else an exponential backoff
 * with jitter) and returns 0, or gives up when failures have lasted retry_max_ms. */
static int wait_retry(struct push *p, const struct run_work *w, const struct mlflow_reply *rep)
{
    uint64_t now = mono_ms();
    uint32_t max = p->t->retry_max_ms ? p->t->retry_max_ms : 120000;
    if (!p->fail_since)
        p->fail_since = now;
    if (now - p->fail_since >= max)
        return fail(p, -ETIMEDOUT, "%s: requests failed for %u s: %s", mlflow_rest_base(p->rest),
                    max / 1000, rep->message);
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (p->backoff_ms > BACKOFF_MAX_MS)
        p->backoff_ms = BACKOFF_MAX_MS;
    uint32_t jitter = 0;
    if (getrandom(&jitter, sizeof jitter, GRND_NONBLOCK) != sizeof jitter)
        jitter = (uint32_t)now;
    uint32_t wait = rep->retry_after_ms ? rep->retry_after_ms
                                        : p->backoff_ms / 2 + jitter % (p->backoff_ms / 2 + 1);
    if (now + wait - p->fail_since > max)
        wait = (uint32_t)(p->fail_since + max - now);
    p->st->retries++;
    struct mlflow_push_event ev = {.kind = MLFLOW_EV_RETRY, .wait_ms = wait, .message = rep->message};
    if (w) {
        ev.run_hex = w->hex;
        ev.run_name = w->r.name;
    }
    emit(p, &ev);
    for (uint64_t end = mono_ms() + wait; mono_ms() < end;) {
        if (stopping(p))
            return fail(p, -EINTR, "stopped");
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* One attempt, counted. */
static int call_once(struct push *p, const char *method, const char *url,
                     const struct sync_buf *body, const char *upload, struct mlflow_reply *rep)
{
    if (stopping(p)) {
        memset(rep, 0, sizeof *rep);
        return fail(p, -EINTR, "stopped");
    }
    if (body && body->err) {
        memset(rep, 0, sizeof *rep);
        return fail(p, -ENOMEM, "out of memory");
    }
    p->st->requests++;
    int rc = mlflow_rest_call(p->rest, method, url, body ? (const char *)body->data : NULL,
                              body ? body->len : 0, upload, rep);
    if (rc == 0)
        reset_failures(p);
    return rc;
}

/* An idempotent request: retried until it gets an answer that is not "try again". */
static int call_retry(struct push *p, const struct run_work *w, const char *method,
                      const char *url, const struct sync_buf *body, const char *upload,
                      struct mlflow_reply *rep)
{
    for (;;) {
        int rc = call_once(p, method, url, body, upload, rep);
        if (rc != -EAGAIN)
            return rc;
        rc = wait_retry(p, w, rep);
        mlflow_reply_clear(rep);
        if (rc < 0)
            return rc;
    }
}

/* What ends the whole push rather than one run: refused credentials, a TLS problem, the
 * server away for too long, a stop, the store failing. The message is in p->err then. */
static bool fatal(struct push *p, int rc, const struct mlflow_reply *rep)
{
    if (rc == -EACCES) {
        fail(p, rc, "%s refused the request (%s): set MLFLOW_TRACKING_TOKEN or "
                    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
             mlflow_rest_base(p->rest), rep->message);
        return true;
    }
    if (rc == -EPROTO) {
        fail(p, rc, "%s: %s", mlflow_rest_base(p->rest), rep->message);
        return true;
    }
    if (rc == -ENOMEM) {
        fail(p, rc, "out of memory");
        return true;
    }
    /* -ETIMEDOUT and -EINTR set err where they happened */
    return rc == -ETIMEDOUT || rc == -EINTR;
}

/* Reports a run's permanent failure; returns 1 (the push goes on), or rc when it is fatal. */
static int run_failed(struct push *p, struct run_work *w, int rc, const struct mlflow_reply *rep,
                      const char *what)
{
    if (fatal(p, rc, rep))
        return rc;
    emitf(p, MLFLOW_EV_RUN_FAILED, w, "run %s: %s: %s", w->hex, what,
          rep && rep->message[0] ? rep->message : strerror(-rc));
    p->st->runs_failed++;
    return 1;
}

static const char *api(struct push *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *api(struct push *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sync_buf_reset(&p->url);
    sync_buf_puts(&p->url, "/api/2.0/mlflow/");
    sync_buf_vprintf(&p->url, fmt, ap);
    va_end(ap);
    const char *url = sync_buf_str(&p->url);
    return url ? url : "/";
}

/* ---- experiments and runs --------------------------------------------------------------- */

static int experiment_id(struct push *p, struct run_work *w, char *id, size_t idlen)
{
    uint8_t d[32];
    sha256(w->exp_name, strlen(w->exp_name), d);
    uint8_t k[64];
    size_t kl = rkey(k, 'E', NULL, d, 32);
    struct store_txn *t;
    int rc = store_begin(p->s, false, &t);
    if (rc < 0)
        return fail(p, rc, "cannot read the store: %s", store_strerror(rc));
    const void *v;
    size_t vl;
    rc = store_remote_get(t, p->target, k, kl, &v, &vl);
    if (rc == 0 && vl < idlen) {
        memcpy(id, v, vl);
        id[vl] = '\0';
    }
    store_abort(t);
    if (rc == 0)
        return 0;

    char *esc = mlflow_url_escape(w->exp_name, false);
    if (!esc)
        return fail(p, -ENOMEM, "out of memory");
    struct mlflow_reply rep;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = call_retry(p, w, "GET", api(p, "experiments/get-by-name?experiment_name=%s", esc),
                        NULL, NULL, &rep);
        if (rc == 0) {
            json_t *e = json_object_get(rep.json, "experiment");
            const char *eid = json_string_value(json_object_get(e, "experiment_id"));
            const char *stage = json_string_value(json_object_get(e, "lifecycle_stage"));
            if (!eid) {
                rc = -EBADMSG;
                snprintf(rep.message, sizeof rep.message, "experiments/get-by-name: no "
                                                          "experiment_id in the answer");
            } else if (stage && !strcmp(stage, "deleted")) {
                rc = -EINVAL;
                snprintf(rep.message, sizeof rep.message,
                         "the experiment '%.300s' is deleted on the server: restore it there, or "
                         "push under another name with --experiment-prefix",
                         w->exp_name);
            } else {
                snprintf(id, idlen, "%s", eid);
            }
            break;
        }
        if (rc != -ENOENT)
            break;
        mlflow_reply_clear(&rep);
        sync_buf_reset(&p->body);
        sync_buf_puts(&p->body, "{\"name\":");
        buf_json_str(&p->body, w->exp_name);
        sync_buf_puts(&p->body, "}");
        rc = call_retry(p, w, "POST", api(p, "experiments/create"), &p->body, NULL, &rep);
        if (rc == 0) {
            const char *eid = json_string_value(json_object_get(rep.json, "experiment_id"));
            if (!eid) {
                rc = -EBADMSG;
                snprintf(rep.message, sizeof rep.message,
                         "experiments/create: no experiment_id in the answer");
            } else {
                snprintf(id, idlen, "%s", eid);
            }
            break;
        }
        /* made by someone else meanwhile: ask for it again */
        if (!(rc == -EINVAL && !strcmp(rep.error_code, "RESOURCE_ALREADY_EXISTS")))
            break;
        mlflow_reply_clear(&rep);
    }
    free(esc);
    if (rc < 0) {
        rc = run_failed(p, w, rc, &rep, "cannot find or create its experiment");
        mlflow_reply_clear(&rep);
        return rc == 1 ? -ENOENT : rc;
    }
    mlflow_reply_clear(&rep);
    struct wset ws = {0};
    ws_add(&ws, k, kl, id, strlen(id), false);
    rc = ws_commit(p, &ws, false);
    ws_free(&ws);
    return rc;
}

/* Reads run_id and artifact_uri from a run object ({info: {...}}). */
static int take_run(struct run_work *w, json_t *run)
{
    json_t *info = json_object_get(run, "info");
    const char *id = json_string_value(json_object_get(info, "run_id"));
    if (!id)
        id = json_string_value(json_object_get(info, "run_uuid"));
    const char *uri = json_string_value(json_object_get(info, "artifact_uri"));
    if (!id || !*id)
        return -EBADMSG;
    free(w->remote_id);
    free(w->artifact_uri);
    w->remote_id = strdup(id);
    w->artifact_uri = strdup(uri ? uri : "");
    return w->remote_id && w->artifact_uri ? 0 : -ENOMEM;
}

static int record_run(struct push *p, struct run_work *w)
{
    struct wset ws = {0};
    size_t a = strlen(w->remote_id), b = strlen(w->artifact_uri);
    uint8_t *v = malloc(a + 1 + b);
    if (!v)
        return fail(p, -ENOMEM, "out of memory");
    memcpy(v, w->remote_id, a + 1);
    memcpy(v + a + 1, w->artifact_uri, b);
    ws_put(&ws, 'R', w->r.id, NULL, 0, v, a + 1 + b);
    ws_del(&ws, 'I', w->r.id, NULL, 0);
    free(v);
    int rc = ws_commit(p, &ws, false);
    ws_free(&ws);
    w->intent = false;
    return rc;
}

/* After a crash between an intent and its record: the run may exist; it carries our tag. */
static int find_created(struct push *p, struct run_work *w, const char *exp_id, bool *found)
{
    *found = false;
    sync_buf_reset(&p->body);
    sync_buf_puts(&p->body, "{\"experiment_ids\":[");
    buf_json_str(&p->body, exp_id);
    sync_buf_printf(&p->body,
                    "],\"filter\":\"tags.`" TAG_SOURCE "` = '%s'\",\"run_view_type\":\"ALL\","
                    "\"max_results\":10}",
                    w->hex);
    struct mlflow_reply rep;
    int rc = call_retry(p, w, "POST", api(p, "runs/search"), &p->body, NULL, &rep);
    if (rc < 0) {
        rc = run_failed(p, w, rc, &rep, "runs/search for a run created before a restart");
        mlflow_reply_clear(&rep);
        return rc == 1 ? -ENOENT : rc;
    }
    json_t *runs = json_object_get(rep.json, "runs");
    if (json_array_size(runs) > 0) {
        rc = take_run(w, json_array_get(runs, 0));
        *found = rc == 0;
    }
    mlflow_reply_clear(&rep);
    return rc < 0 ? fail(p, rc, "runs/search: a run without a run_id") : 0;
}

static int create_run(struct push *p, struct run_work *w, const char *exp_id)
{
    struct wset ws = {0};
    uint8_t now[8] = {0};
    ws_put(&ws, 'I', w->r.id, NULL, 0, now, sizeof now);
    int rc = ws_commit(p, &ws, true);
    ws_free(&ws);
    if (rc < 0)
        return rc;
    w->intent = true;

    sync_buf_reset(&p->body);
    sync_buf_puts(&p->body, "{\"experiment_id\":");
    buf_json_str(&p->body, exp_id);
    if (w->r.name[0]) {
        sync_buf_puts(&p->body, ",\"run_name\":");
        buf_json_str(&p->body, w->r.name);
    }
    if (w->r.start_ms > 0)
        sync_buf_printf(&p->body, ",\"start_time\":%lld", (long long)w->r.start_ms);
    if (w->r.user[0]) {
        sync_buf_puts(&p->body, ",\"user_id\":");
        buf_json_str(&p->body, w->r.user);
    }
    sync_buf_printf(&p->body, ",\"tags\":[{\"key\":\"" TAG_SOURCE "\",\"value\":\"%s\"}", w->hex);
    if (w->r.user[0]) {
        sync_buf_puts(&p->body, ",{\"key\":\"mlflow.user\",\"value\":");
        buf_json_str(&p->body, w->r.user);
        sync_buf_puts(&p->body, "}");
    }
    sync_buf_puts(&p->body, "]}");
    struct mlflow_reply rep;
    rc = call_retry(p, w, "POST", api(p, "runs/create"), &p->body, NULL, &rep);
    if (rc < 0) {
        rc = run_failed(p, w, rc, &rep, "runs/create failed");
        mlflow_reply_clear(&rep);
        return rc == 1 ? -ENOENT : rc;
    }
    rc = take_run(w, json_object_get(rep.json, "run"));
    mlflow_reply_clear(&rep);
    if (rc < 0)
        return fail(p, rc, "runs/create: no run id in the answer");
    return record_run(p, w);
}

/* Asks for the artifact URI of a run we know but whose URI was not recorded. */
static int fetch_run(struct push *p, struct run_work *w)
{
    struct mlflow_reply rep;
    int rc = call_retry(p, w, "GET", api(p, "runs/get?run_id=%s", w->remote_id), NULL, NULL, &rep);
    if (rc < 0) {
        rc = run_failed(p, w, rc, &rep, "runs/get failed");
        mlflow_reply_clear(&rep);
        return rc == 1 ? -ENOENT : rc;
    }
    rc = take_run(w, json_object_get(rep.json, "run"));
    mlflow_reply_clear(&rep);
    if (rc < 0)
        return fail(p, rc, "runs/get: no run id in the answer");
    return record_run(p, w);
}

/* The remote run, found or made. -ENOENT: the run failed (reported); other < 0: fatal. */
static int ensure_run(struct push *p, struct run_work *w)
{
    if (w->remote_id && w->artifact_uri)
        return 0;
    if (w->remote_id)
        return fetch_run(p, w);
    char exp_id[256];
    int rc = experiment_id(p, w, exp_id, sizeof exp_id);
    if (rc < 0)
        return rc;
    if (w->intent) {
        bool found;
        if ((rc = find_created(p, w, exp_id, &found)) < 0)
            return rc;
        if (found) {
            w->created = true;
            return record_run(p, w);
        }
    }
    rc = create_run(p, w, exp_id);
    if (rc == 0)
        w->created = true;
    return rc;
}

/* ---- reading a run's state --------------------------------------------------------------- */

static void run_work_free(struct run_work *w)
{
    for (size_t i = 0; i < w->np; i++)
        free(w->params[i].key), free(w->params[i].value);
    for (size_t i = 0; i < w->nt; i++)
        free(w->tags[i].key), free(w->tags[i].value);
    for (size_t i = 0; i < w->nm; i++)
        free(w->metrics[i].key);
    free(w->params);
    free(w->tags);
    free(w->metrics);
    free(w->arts);
    free(w->remote_id);
    free(w->artifact_uri);
    memset(w, 0, sizeof *w);
}

static int grow(void *arrp, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *v = realloc(*(void **)arrp, c * size);
    if (!v)
        return -ENOMEM;
    *(void **)arrp = v;
    *cap = c;
    return 0;
}

struct load_ctx {
    struct push *p;
    struct run_work *w;
    struct store_txn *t;
    char kind; /* 'P' params, 'T' tags */
};

static bool refused(struct load_ctx *c, char kind, const char *key)
{
    uint8_t k[512];
    uint8_t tail[1100];
    size_t kl = strnlen(key, sizeof tail - 1);
    tail[0] = (uint8_t)kind;
    memcpy(tail + 1, key, kl);
    const void *v;
    size_t vl;
    return store_remote_get(c->t, c->p->target, k, rkey(k, 'X', c->w->r.id, tail, kl + 1), &v,
                            &vl) == 0;
}

static void skip_event(struct load_ctx *c, const char *what, const char *key, const char *why)
{
    c->p->st->skipped++;
    char *k = strdup(key);
    if (k && strlen(k) > 80)
        strcpy(k + 77, "...");
    emitf(c->p, MLFLOW_EV_SKIP, c->w, "run %.8s: %s '%s' not sent: %s", c->w->hex, what,
          k ? k : "?", why);
    free(k);
}

/* Adds a param or tag to the list to send when its value differs from what was sent. */
static int add_kv(struct load_ctx *c, char kind, const char *key, const char *value)
{
    struct run_work *w = c->w;
    const char *what = kind == 'P' ? "param" : "tag";
    const char *why = key_problem(key);
    if (!why && kind == 'P' && utf8_chars(value) > MAX_PARAM_CHARS)
        why = "a value longer than 6000 characters, MLflow's limit";
    if (why) {
        skip_event(c, what, key, why);
        return 0;
    }
    if (refused(c, kind == 'P' ? 'p' : 't', key))
        return 0; /* reported when the server refused it */
    uint8_t d[32];
    sha256(value, strlen(value), d);
    uint8_t k[512];
    const void *v;
    size_t vl;
    if (store_remote_get(c->t, c->p->target, k, rkey(k, kind, w->r.id, key, strlen(key)), &v,
                         &vl) == 0 &&
        vl == 16 && !memcmp(v, d, 16))
        return 0;
    struct kv **arr = kind == 'P' ? &w->params : &w->tags;
    size_t *n = kind == 'P' ? &w->np : &w->nt, *cap = kind == 'P' ? &w->cap_p : &w->cap_t;
    if (grow(arr, cap, *n, sizeof **arr) < 0)
        return -ENOMEM;
    struct kv *e = &(*arr)[*n];
    e->key = strdup(key);
    e->value = strdup(value);
    memcpy(e->digest, d, 16);
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        return -ENOMEM;
    }
    (*n)++;
    return 0;
}

static int load_kv(const char *key, const char *value, void *arg)
{
    struct load_ctx *c = arg;
    /* the remote's parent is another id: set from the record of the parent instead */
    if (c->kind == 'T' && (!strcmp(key, TAG_PARENT) || !strcmp(key, TAG_SOURCE)))
        return 0;
    return add_kv(c, c->kind, key, value);
}

static int load_metric(const char *key, const struct store_metric_summary *s, void *arg)
{
    struct load_ctx *c = arg;
    struct run_work *w = c->w;
    const char *why = key_problem(key);
    if (why) {
        skip_event(c, "metric", key, why);
        return 0;
    }
    if (refused(c, 'm', key))
        return 0;
    uint8_t k[512];
    size_t kl = strlen(key);
    const void *v;
    size_t vl;
    uint64_t sent = 0;
    if (store_remote_get(c->t, c->p->target, k, rkey(k, 'M', w->r.id, key, kl), &v, &vl) == 0 &&
        vl == 8)
        sent = get64(v);
    bool pending = store_remote_get(c->t, c->p->target, k, rkey(k, 'Q', w->r.id, key, kl), &v,
                                    &vl) == 0;
    if (sent >= s->count && !pending)
        return 0;
    if (grow(&w->metrics, &w->cap_m, w->nm, sizeof *w->metrics) < 0)
        return -ENOMEM;
    struct mkey *m = &w->metrics[w->nm];
    *m = (struct mkey){.key = strdup(key), .local = s->count, .sent = sent, .pending = pending};
    if (!m->key)
        return -ENOMEM;
    w->nm++;
    if (s->count > sent)
        w->todo_points += s->count - sent;
    return 0;
}

static int load_artifact(const struct store_artifact *a, void *arg)
{
    struct load_ctx *c = arg;
    struct run_work *w = c->w;
    uint8_t d[32], k[512];
    sha256(a->path, strlen(a->path), d);
    const void *v;
    size_t vl;
    if (store_remote_get(c->t, c->p->target, k, rkey(k, 'A', w->r.id, d, 32), &v, &vl) == 0 &&
        vl == 32 && !memcmp(v, a->sha256, 32))
        return 0;
    if (grow(&w->arts, &w->cap_a, w->na, sizeof *w->arts) < 0)
        return -ENOMEM;
    w->arts[w->na++] = *a;
    return 0;
}

static bool terminal(int status)
{
    return status == STORE_RUN_FINISHED || status == STORE_RUN_FAILED ||
           status == STORE_RUN_KILLED;
}

static int load_run_txn(struct push *p, struct store_txn *t, const uint8_t id[16],
                        struct run_work *w)
{
    int rc = store_run_get(t, id, &w->r);
    if (rc < 0)
        return rc;
    store_run_id_hex(id, w->hex);
    struct store_experiment e;
    const char *prefix = p->t->experiment_prefix ? p->t->experiment_prefix : "";
    if (store_experiment_get(t, w->r.experiment_id, &e) == 0)
        snprintf(w->exp_name, sizeof w->exp_name, "%s%s", prefix, e.name);
    else
        snprintf(w->exp_name, sizeof w->exp_name, "%sDefault", prefix);

    uint8_t k[64];
    const void *v;
    size_t vl;
    if (store_remote_get(t, p->target, k, rkey(k, 'R', id, NULL, 0), &v, &vl) == 0) {
        const char *s = v;
        size_t a = strnlen(s, vl);
        w->remote_id = strndup(s, a);
        if (a < vl)
            w->artifact_uri = strndup(s + a + 1, vl - a - 1);
        if (!w->remote_id || (a < vl && !w->artifact_uri))
            return -ENOMEM;
    }
    w->intent = store_remote_get(t, p->target, k, rkey(k, 'I', id, NULL, 0), &v, &vl) == 0;
    if (terminal(w->r.status)) {
        w->end_due = true;
        if (store_remote_get(t, p->target, k, rkey(k, 'D', id, NULL, 0), &v, &vl) == 0 &&
            vl == 9 && ((const uint8_t *)v)[0] == w->r.status &&
            get64((const uint8_t *)v + 1) == (uint64_t)w->r.end_ms)
            w->end_due = false;
    }
    struct load_ctx c = {p, w, t, 'P'};
    if ((rc = store_params_foreach(t, id, load_kv, &c)) < 0)
        return rc;
    c.kind = 'T';
    if ((rc = store_tags_foreach(t, id, load_kv, &c)) < 0)
        return rc;
    if (w->r.has_parent) {
        /* the parent's remote id, once it has one (ensure_parent makes sure of that first) */
        if (store_remote_get(t, p->target, k, rkey(k, 'R', w->r.parent, NULL, 0), &v, &vl) == 0) {
            char *pid = strndup(v, strnlen(v, vl));
            if (!pid)
                return -ENOMEM;
            rc = add_kv(&c, 'T', TAG_PARENT, pid);
            free(pid);
            if (rc < 0)
                return rc;
        }
    }
    if ((rc = store_metric_keys_foreach(t, id, load_metric, &c)) < 0)
        return rc;
    if ((rc = store_artifacts_foreach(t, id, load_artifact, &c)) < 0)
        return rc;
    return 0;
}

static int load_run(struct push *p, const uint8_t id[16], struct run_work *w)
{
    struct store_txn *t;
    int rc = store_begin(p->s, false, &t);
    if (rc < 0)
        return fail(p, rc, "cannot read the store: %s", store_strerror(rc));
    rc = load_run_txn(p, t, id, w);
    store_abort(t);
    if (rc < 0 && rc != -ENOENT)
        return fail(p, rc, "cannot read run %s from the store: %s", w->hex, store_strerror(rc));
    return rc;
}

/* ---- metrics: pending markers ------------------------------------------------------------- */

/* How many points of key the remote run has (metrics/get-history, page by page). */
static int remote_count(struct push *p, struct run_work *w, const char *key, uint64_t *n)
{
    char *ek = mlflow_url_escape(key, false), *token = NULL;
    if (!ek)
        return fail(p, -ENOMEM, "out of memory");
    *n = 0;
    int rc;
    for (;;) {
        char *et = token ? mlflow_url_escape(token, false) : NULL;
        const char *url = api(p, "metrics/get-history?run_id=%s&metric_key=%s&max_results=%d%s%s",
                              w->remote_id, ek, HISTORY_PAGE, et ? "&page_token=" : "",
                              et ? et : "");
        free(et);
        struct mlflow_reply rep;
        rc = call_retry(p, w, "GET", url, NULL, NULL, &rep);
        if (rc < 0) {
            rc = run_failed(p, w, rc, &rep, "metrics/get-history failed");
            mlflow_reply_clear(&rep);
            rc = rc == 1 ? -ENOENT : rc;
            break;
        }
        if (!rep.json) {
            mlflow_reply_clear(&rep);
            rc = fail(p, -EBADMSG, "metrics/get-history: the answer is not JSON");
            break;
        }
        size_t got = json_array_size(json_object_get(rep.json, "metrics"));
        *n += got;
        const char *next = json_string_value(json_object_get(rep.json, "next_page_token"));
        free(token);
        token = next && *next && got ? strdup(next) : NULL;
        mlflow_reply_clear(&rep);
        if (!token)
            break;
    }
    free(token);
    free(ek);
    return rc;
}

/* Settles every pending marker of the run: the remote's count is the truth. */
static int settle_pending(struct push *p, struct run_work *w)
{
    struct wset ws = {0};
    int rc = 0;
    for (size_t i = 0; i < w->nm && rc == 0; i++) {
        struct mkey *m = &w->metrics[i];
        if (!m->pending)
            continue;
        uint64_t n;
        if ((rc = remote_count(p, w, m->key, &n)) < 0)
            break;
        if (n > m->local) /* more than we hold: not ours to resend; never send past it */
            n = m->local;
        if (!m->refused && m->sent < m->local)
            w->todo_points -= m->local - m->sent;
        m->sent = n;
        if (!m->refused && m->sent < m->local)
            w->todo_points += m->local - m->sent;
        m->pending = false;
        uint8_t v[8];
        put64(v, n);
        ws_put(&ws, 'M', w->r.id, m->key, strlen(m->key), v, 8);
        ws_del(&ws, 'Q', w->r.id, m->key, strlen(m->key));
    }
    int c = ws_commit(p, &ws, false);
    ws_free(&ws);
    return rc < 0 ? rc : c;
}

/* ---- log-batch ------------------------------------------------------------------------------ */

/* One item of a batch: a param, a tag, or a range of a metric's points. */
struct item {
    char kind; /* 'p', 't', 'm' */
    size_t idx;
    uint64_t from, n;
};

struct batch {
    struct item *v;
    size_t n, cap;
    size_t params, tags, points;
};

static int batch_add(struct batch *b, struct item it)
{
    if (grow(&b->v, &b->cap, b->n, sizeof *b->v) < 0)
        return -ENOMEM;
    b->v[b->n++] = it;
    return 0;
}

/* Picks what the next request carries, within MLflow's limits. */
static int batch_build(struct run_work *w, size_t *pi, size_t *ti, struct batch *b)
{
    b->n = b->params = b->tags = b->points = 0;
    size_t bytes = 100 + strlen(w->remote_id);
    while (*pi < w->np && b->params < MAX_PARAMS) {
        size_t sz = json_str_len(w->params[*pi].key) + json_str_len(w->params[*pi].value) + 20;
        if (b->n && bytes + sz > MAX_BODY)
            return 0;
        if (batch_add(b, (struct item){'p', (*pi)++, 0, 1}) < 0)
            return -ENOMEM;
        bytes += sz;
        b->params++;
    }
    while (*ti < w->nt && b->tags < MAX_TAGS && b->params + b->tags < MAX_ENTITIES) {
        size_t sz = json_str_len(w->tags[*ti].key) + json_str_len(w->tags[*ti].value) + 20;
        if (b->n && bytes + sz > MAX_BODY)
            return 0;
        if (batch_add(b, (struct item){'t', (*ti)++, 0, 1}) < 0)
            return -ENOMEM;
        bytes += sz;
        b->tags++;
    }
    for (size_t i = 0; i < w->nm; i++) {
        struct mkey *m = &w->metrics[i];
        if (m->refused || m->sent >= m->local)
            continue;
        size_t room = MAX_ENTITIES - b->params - b->tags - b->points;
        if (room > MAX_METRICS - b->points)
            room = MAX_METRICS - b->points;
        size_t per = json_str_len(m->key) + 100; /* numbers: at most 24 characters each */
        size_t fit = bytes < MAX_BODY ? (MAX_BODY - bytes) / per : 0;
        if (fit < room)
            room = fit;
        if (!room)
            break;
        uint64_t n = m->local - m->sent;
        if (n > room)
            n = room;
        if (batch_add(b, (struct item){'m', i, m->sent, n}) < 0)
            return -ENOMEM;
        b->points += n;
        bytes += n * per;
    }
    return 0;
}

static int write_points(struct push *p, struct store_txn *t, struct run_work *w,
                        const struct item *it, bool *first)
{
    const char *key = w->metrics[it->idx].key;
    if (it->n > p->pts_cap) {
        struct store_point *v = realloc(p->pts, it->n * sizeof *v);
        if (!v)
            return -ENOMEM;
        p->pts = v;
        p->pts_cap = it->n;
    }
    int rc = store_metric_range(t, w->r.id, key, it->from, it->n, p->pts);
    if (rc < 0)
        return rc;
    struct sync_buf kb = {0};
    buf_json_str(&kb, key);
    if (kb.err) {
        sync_buf_free(&kb);
        return -ENOMEM;
    }
    const char *ek = (const char *)kb.data;
    size_t kl = kb.len;
    for (uint64_t i = 0; i < it->n; i++) {
        const struct store_point *pt = &p->pts[i];
        sync_buf_puts(&p->body, *first ? "{\"key\":" : ",{\"key\":");
        *first = false;
        sync_buf_put(&p->body, ek, kl);
        sync_buf_puts(&p->body, ",\"value\":");
        buf_json_double(&p->body, pt->value);
        sync_buf_printf(&p->body, ",\"timestamp\":%lld,\"step\":%lld}", (long long)pt->ts_ms,
                        (long long)pt->step);
    }
    sync_buf_free(&kb);
    return 0;
}

static int body_build(struct push *p, struct run_work *w, const struct batch *b)
{
    sync_buf_reset(&p->body);
    sync_buf_puts(&p->body, "{\"run_id\":");
    buf_json_str(&p->body, w->remote_id);
    static const char *const names[] = {"params", "tags", "metrics"};
    static const char kinds[] = {'p', 't', 'm'};
    struct store_txn *t = NULL;
    int rc = 0;
    for (int s = 0; s < 3 && rc == 0; s++) {
        bool first = true;
        bool any = false;
        for (size_t i = 0; i < b->n; i++)
            any |= b->v[i].kind == kinds[s];
        if (!any)
            continue;
        sync_buf_printf(&p->body, ",\"%s\":[", names[s]);
        for (size_t i = 0; i < b->n && rc == 0; i++) {
            const struct item *it = &b->v[i];
            if (it->kind != kinds[s])
                continue;
            if (it->kind == 'm') {
                if (!t && (rc = store_begin(p->s, false, &t)) < 0)
                    break;
                rc = write_points(p, t, w, it, &first);
                continue;
            }
            const struct kv *e = it->kind == 'p' ? &w->params[it->idx] : &w->tags[it->idx];
            sync_buf_puts(&p->body, first ? "{\"key\":" : ",{\"key\":");
            first = false;
            buf_json_str(&p->body, e->key);
            sync_buf_puts(&p->body, ",\"value\":");
            buf_json_str(&p->body, e->value);
            sync_buf_puts(&p->body, "}");
        }
        sync_buf_puts(&p->body, "]");
    }
    store_abort(t);
    sync_buf_puts(&p->body, "}");
    if (rc < 0)
        return fail(p, rc, "cannot read run %s's points from the store: %s", w->hex,
                    store_strerror(rc));
    if (p->body.err)
        return fail(p, -ENOMEM, "out of memory");
    return 0;
}

/* Markers for the metric items, committed and fsynced before the request goes out. */
static int mark_pending(struct push *p, struct run_work *w, const struct batch *b)
{
    struct wset ws = {0};
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &b->v[i];
        if (it->kind != 'm')
            continue;
        uint8_t v[16];
        put64(v, it->from);
        put64(v + 8, it->from + it->n);
        const char *key = w->metrics[it->idx].key;
        ws_put(&ws, 'Q', w->r.id, key, strlen(key), v, 16);
        w->metrics[it->idx].pending = true;
    }
    int rc = ws_commit(p, &ws, true);
    ws_free(&ws);
    return rc;
}

/* The 200 came: the new counts and digests, markers cleared. */
static int confirm(struct push *p, struct run_work *w, const struct batch *b)
{
    struct wset ws = {0};
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &b->v[i];
        if (it->kind == 'm') {
            struct mkey *m = &w->metrics[it->idx];
            m->sent = it->from + it->n;
            m->pending = false;
            uint8_t v[8];
            put64(v, m->sent);
            ws_put(&ws, 'M', w->r.id, m->key, strlen(m->key), v, 8);
            ws_del(&ws, 'Q', w->r.id, m->key, strlen(m->key));
            p->st->points += it->n;
            w->done_points += it->n;
        } else {
            const struct kv *e = it->kind == 'p' ? &w->params[it->idx] : &w->tags[it->idx];
            ws_put(&ws, it->kind == 'p' ? 'P' : 'T', w->r.id, e->key, strlen(e->key), e->digest,
                   16);
            if (it->kind == 'p')
                p->st->params++;
            else
                p->st->tags++;
        }
    }
    w->sent_any = true;
    int rc = ws_commit(p, &ws, false);
    ws_free(&ws);
    return rc;
}

static const char *item_key(const struct run_work *w, const struct item *it)
{
    return it->kind == 'm' ? w->metrics[it->idx].key
           : it->kind == 'p' ? w->params[it->idx].key
                             : w->tags[it->idx].key;
}

/* The server refused this item alone: recorded, reported, never sent again. */
static int refuse(struct push *p, struct run_work *w, const struct item *it, const char *why)
{
    const char *key = item_key(w, it);
    uint8_t tail[1100];
    size_t kl = strnlen(key, sizeof tail - 1);
    tail[0] = (uint8_t)it->kind;
    memcpy(tail + 1, key, kl);
    struct wset ws = {0};
    ws_put(&ws, 'X', w->r.id, tail, kl + 1, why, strlen(why));
    int rc = ws_commit(p, &ws, false);
    ws_free(&ws);
    if (it->kind == 'm') {
        struct mkey *m = &w->metrics[it->idx];
        m->refused = true;
        w->todo_points -= m->local - m->sent;
    }
    p->st->skipped++;
    emitf(p, MLFLOW_EV_SKIP, w, "run %.8s: %s '%.80s' refused by the server, not sent: %s",
          w->hex, it->kind == 'm' ? "metric" : it->kind == 'p' ? "param" : "tag", key, why);
    return rc;
}

/* Sends one batch. 0: sent; 1: the server answered 400 (rep holds why); -EAGAIN: retry after
 * settling markers; other < 0: the run failed (reported, -ENOENT) or a fatal error. */
static int send_batch(struct push *p, struct run_work *w, const struct batch *b,
                      struct mlflow_reply *rep)
{
    int rc = body_build(p, w, b);
    if (rc < 0)
        return rc;
    if (b->points && (rc = mark_pending(p, w, b)) < 0)
        return rc;
    rc = call_once(p, "POST", api(p, "runs/log-batch"), &p->body, NULL, rep);
    if (rc == 0)
        return confirm(p, w, b);
    if (rc == -EAGAIN) {
        int r = wait_retry(p, w, rep);
        return r < 0 ? r : -EAGAIN;
    }
    if (rc == -EINVAL)
        return 1;
    rc = run_failed(p, w, rc, rep, "runs/log-batch failed");
    return rc == 1 ? -ENOENT : rc;
}

/* After a 400 on a batch of several items: each alone, to find what the server refuses. */
static int probe_items(struct push *p, struct run_work *w, const struct batch *b, bool *found)
{
    struct batch one = {0};
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        struct item it = b->v[i];
        if (it.kind == 'm') {
            struct mkey *m = &w->metrics[it.idx];
            if (m->refused || m->sent != it.from)
                continue;
            it.n = 1;
        }
        one.n = 0;
        if ((rc = batch_add(&one, it)) < 0)
            break;
        one.points = it.kind == 'm';
        struct mlflow_reply rep;
        rc = send_batch(p, w, &one, &rep);
        if (rc == 1) {
            /* a metric's marker stays: settle_pending() asks the remote afterwards */
            rc = refuse(p, w, &it, rep.message);
            *found = true;
        } else if (rc == -EAGAIN) {
            rc = settle_pending(p, w); /* then this item again, if it is still due */
            i--;
        }
        mlflow_reply_clear(&rep);
    }
    free(one.v);
    if (rc == 0)
        rc = settle_pending(p, w);
    return rc;
}

static void points_event(struct push *p, struct run_work *w)
{
    struct mlflow_push_event ev = {.kind = MLFLOW_EV_POINTS, .run_hex = w->hex,
                                   .run_name = w->r.name, .done = w->done_points,
                                   .todo = w->todo_points};
    emit(p, &ev);
}

static int push_batches(struct push *p, struct run_work *w)
{
    struct batch b = {0};
    size_t pi = 0, ti = 0;
    int rc = 0;
    for (;;) {
        if ((rc = settle_pending(p, w)) < 0)
            break;
        if ((rc = batch_build(w, &pi, &ti, &b)) < 0) {
            rc = fail(p, rc, "out of memory");
            break;
        }
        if (!b.n)
            break;
        struct mlflow_reply rep;
        rc = send_batch(p, w, &b, &rep);
        if (rc == -EAGAIN) {
            /* params and tags are idempotent: send them again with the rest */
            for (size_t i = 0; i < b.n; i++) {
                if (b.v[i].kind == 'p' && b.v[i].idx < pi)
                    pi = b.v[i].idx;
                if (b.v[i].kind == 't' && b.v[i].idx < ti)
                    ti = b.v[i].idx;
            }
            mlflow_reply_clear(&rep);
            continue;
        }
        if (rc == 1) {
            bool found = false;
            char why[512];
            snprintf(why, sizeof why, "%s", rep.message);
            /* settle this batch's markers (a 400 should append nothing, but the remote
             * says), then find the culprit: the item itself, or each item alone */
            rc = settle_pending(p, w);
            if (rc == 0 && b.n == 1) {
                found = true;
                rc = refuse(p, w, &b.v[0], why);
                if (rc == 0)
                    rc = settle_pending(p, w);
            } else if (rc == 0) {
                rc = probe_items(p, w, &b, &found);
            }
            mlflow_reply_clear(&rep);
            if (rc < 0)
                break;
            if (!found) {
                emitf(p, MLFLOW_EV_RUN_FAILED, w, "run %s: runs/log-batch refused a batch "
                      "whose items pass one by one: %s", w->hex, why);
                p->st->runs_failed++;
                rc = -ENOENT;
                break;
            }
            /* the params and tags after the refused one were sent in the probe; what is left
             * is found again by the next build (digests are not rechecked: resend is cheap) */
            continue;
        }
        mlflow_reply_clear(&rep);
        if (rc < 0)
            break;
        if (b.points)
            points_event(p, w);
    }
    free(b.v);
    return rc;
}

/* ---- artifacts and the run's end --------------------------------------------------------- */

/* Where a run's artifact at path goes: a full URL (malloc'd), or NULL with *why set. */
static char *artifact_url(struct push *p, const struct run_work *w, const char *path,
                          const char **why)
{
    const char *uri = w->artifact_uri ? w->artifact_uri : "";
    const char *rest;
    struct sync_buf u = {0};
    char *ep = mlflow_url_escape(path, true);
    if (!ep)
        return NULL;
    if (!strncmp(uri, "mlflow-artifacts:", 17)) {
        rest = uri + 17;
        if (!strncmp(rest, "//", 2)) { /* mlflow-artifacts://HOST[:PORT]/path: same server */
            rest = strchr(rest + 2, '/');
            rest = rest ? rest : "";
        }
        while (*rest == '/')
            rest++;
        char *er = mlflow_url_escape(rest, true);
        if (!er) {
            free(ep);
            return NULL;
        }
        sync_buf_puts(&u, mlflow_rest_base(p->rest));
        sync_buf_puts(&u, "/api/2.0/mlflow-artifacts/artifacts/");
        sync_buf_puts(&u, er);
        free(er);
    } else if (!strncmp(uri, "http://", 7) || !strncmp(uri, "https://", 8)) {
        sync_buf_puts(&u, uri);
    } else {
        *why = "unsupported artifact store";
        free(ep);
        return NULL;
    }
    while (u.len && u.data[u.len - 1] == '/')
        u.data[--u.len] = '\0';
    sync_buf_puts(&u, "/");
    sync_buf_puts(&u, ep);
    free(ep);
    if (u.err) {
        sync_buf_free(&u);
        return NULL;
    }
    return (char *)u.data;
}

static int push_artifacts(struct push *p, struct run_work *w)
{
    for (size_t i = 0; i < w->na; i++) {
        const struct store_artifact *a = &w->arts[i];
        const char *why = NULL;
        char *url = artifact_url(p, w, a->path, &why);
        if (!url && !why)
            return fail(p, -ENOMEM, "out of memory");
        if (!url) {
            p->st->skipped += w->na - i;
            emitf(p, MLFLOW_EV_SKIP, w, "run %.8s: %zu artifact(s) not sent: %s (%.200s); "
                  "only mlflow-artifacts: and http(s): locations can be written through the "
                  "API (run the server with --serve-artifacts)", w->hex, w->na - i, why,
                  w->artifact_uri && *w->artifact_uri ? w->artifact_uri : "no artifact_uri");
            return 0;
        }
        char file[4200];
        int rc = store_blob_path(p->s, a->sha256, file, sizeof file);
        FILE *f = rc == 0 ? fopen(file, "rbe") : NULL;
        if (!f) {
            free(url);
            p->st->skipped++;
            emitf(p, MLFLOW_EV_SKIP, w, "run %.8s: artifact '%.200s' not sent this time: its "
                  "content is not in the store (yet)", w->hex, a->path);
            continue;
        }
        fclose(f);
        struct mlflow_reply rep;
        rc = call_retry(p, w, "PUT", url, NULL, file, &rep);
        free(url);
        if (rc == -EINVAL) {
            p->st->skipped++;
            emitf(p, MLFLOW_EV_SKIP, w, "run %.8s: artifact '%.200s' refused by the server: %s",
                  w->hex, a->path, rep.message);
            mlflow_reply_clear(&rep);
            continue;
        }
        if (rc < 0) {
            rc = run_failed(p, w, rc, &rep, "artifact upload failed");
            mlflow_reply_clear(&rep);
            return rc == 1 ? -ENOENT : rc;
        }
        mlflow_reply_clear(&rep);
        uint8_t d[32];
        sha256(a->path, strlen(a->path), d);
        struct wset ws = {0};
        ws_put(&ws, 'A', w->r.id, d, 32, a->sha256, 32);
        rc = ws_commit(p, &ws, false);
        ws_free(&ws);
        if (rc < 0)
            return rc;
        p->st->artifacts++;
        w->sent_any = true;
    }
    return 0;
}

static int push_end(struct push *p, struct run_work *w)
{
    if (!w->end_due)
        return 0;
    sync_buf_reset(&p->body);
    sync_buf_puts(&p->body, "{\"run_id\":");
    buf_json_str(&p->body, w->remote_id);
    sync_buf_printf(&p->body, ",\"status\":\"%s\"", store_run_status_name(w->r.status));
    if (w->r.end_ms > 0)
        sync_buf_printf(&p->body, ",\"end_time\":%lld", (long long)w->r.end_ms);
    sync_buf_puts(&p->body, "}");
    struct mlflow_reply rep;
    int rc = call_retry(p, w, "POST", api(p, "runs/update"), &p->body, NULL, &rep);
    if (rc < 0) {
        rc = run_failed(p, w, rc, &rep, "runs/update failed");
        mlflow_reply_clear(&rep);
        return rc == 1 ? -ENOENT : rc;
    }
    mlflow_reply_clear(&rep);
    uint8_t v[9];
    v[0] = (uint8_t)w->r.status;
    put64(v + 1, (uint64_t)w->r.end_ms);
    struct wset ws = {0};
    ws_put(&ws, 'D', w->r.id, NULL, 0, v, 9);
    rc = ws_commit(p, &ws, false);
    ws_free(&ws);
    w->sent_any = true;
    return rc;
}

/* ---- runs ---------------------------------------------------------------------------------- */

static bool run_has_record(struct push *p, const uint8_t id[16])
{
    struct store_txn *t;
    if (store_begin(p->s, false, &t) < 0)
        return false;
    uint8_t k[64];
    const void *v;
    size_t vl;
    bool has = store_remote_get(t, p->target, k, rkey(k, 'R', id, NULL, 0), &v, &vl) == 0;
    store_abort(t);
    return has;
}

/* A child's mlflow.parentRunId names the parent's remote id: the parent is made first. */
static int ensure_parent(struct push *p, const struct store_run *r)
{
    if (!r->has_parent || p->depth >= PARENT_DEPTH || run_has_record(p, r->parent))
        return 0;
    struct run_work w = {0};
    int rc = load_run(p, r->parent, &w);
    if (rc == -ENOENT) { /* the parent is not in this store: no tag */
        run_work_free(&w);
        return 0;
    }
    if (rc == 0) {
        p->depth++;
        rc = ensure_parent(p, &w.r);
        if (rc == 0)
            rc = ensure_run(p, &w);
        p->depth--;
        if (w.created)
            p->st->runs_created++; /* counted here: the parent's own turn finds it made */
    }
    run_work_free(&w);
    return rc == -ENOENT ? 0 : rc; /* the parent's failure was reported; the child goes on */
}

static void dry_run(struct push *p, struct run_work *w)
{
    if (!w->remote_id)
        p->st->runs_created++;
    else if (w->np || w->nt || w->todo_points || w->na || w->end_due)
        p->st->runs_updated++;
    p->st->params += w->np;
    p->st->tags += w->nt;
    p->st->points += w->todo_points;
    p->st->artifacts += w->na;
}

static int push_run(struct push *p, const uint8_t id[16], uint64_t index, uint64_t total)
{
    struct run_work w = {0};
    store_run_id_hex(id, w.hex);
    struct store_run r;
    int rc = 0;
    {
        struct store_txn *t;
        if ((rc = store_begin(p->s, false, &t)) < 0)
            return fail(p, rc, "cannot read the store: %s", store_strerror(rc));
        rc = store_run_get(t, id, &r);
        store_abort(t);
    }
    if (rc == 0 && !p->t->dry_run)
        rc = ensure_parent(p, &r);
    if (rc == 0)
        rc = load_run(p, id, &w);
    if (rc == -ENOENT) {
        emitf(p, MLFLOW_EV_RUN_FAILED, &w, "run %s: not in the store", w.hex);
        p->st->runs_failed++;
        run_work_free(&w);
        return 1;
    }
    if (rc < 0) {
        run_work_free(&w);
        return rc;
    }
    p->st->runs++;
    struct mlflow_push_event ev = {.kind = MLFLOW_EV_RUN, .run_hex = w.hex, .run_name = w.r.name,
                                   .index = index, .total = total, .todo = w.todo_points};
    emit(p, &ev);
    if (p->t->dry_run) {
        dry_run(p, &w);
        run_work_free(&w);
        return 0;
    }
    bool had_remote = w.remote_id != NULL;
    rc = ensure_run(p, &w);
    if (rc == 0 && w.created && had_remote)
        w.created = false;
    if (rc == 0)
        rc = push_batches(p, &w);
    if (rc == 0)
        rc = push_artifacts(p, &w);
    if (rc == 0)
        rc = push_end(p, &w);
    if (w.created)
        p->st->runs_created++;
    else if (w.sent_any)
        p->st->runs_updated++;
    run_work_free(&w);
    if (rc == -ENOENT)
        return 1; /* reported */
    return rc;
}

/* One push per store and target at a time (the agent's thread and a `sidetrack push` would
 * otherwise both send the same points): an flock on DIR/.mlflow-<digest>.lock, which the
 * kernel releases when its holder dies, kill -9 included. */
static int lock_target(struct push *p, int *fd)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.%.6s-%s.lock", store_dir(p->s), p->target, p->target + 7);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*fd < 0)
        return fail(p, -errno, "cannot open %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        if (e == EWOULDBLOCK)
            return fail(p, -EBUSY, "another push to %s from this store is running (the agent's "
                                   "--mlflow, or another sidetrack push); try again when it "
                                   "ends", p->t->url);
        return fail(p, -e, "cannot lock %s: %s", path, strerror(e));
    }
    return 0;
}

struct ids {
    uint8_t (*v)[16];
    size_t n, cap;
};

static int collect_run(const struct store_run *r, void *arg)
{
    struct ids *ids = arg;
    if (r->deleted)
        return 0;
    if (grow(&ids->v, &ids->cap, ids->n, sizeof *ids->v) < 0)
        return -ENOMEM;
    memcpy(ids->v[ids->n++], r->id, 16);
    return 0;
}

int mlflow_push_run_once(struct store *s, const struct mlflow_target *t,
                         struct mlflow_push_stats *st, mlflow_progress_fn progress,
                         void *progress_arg, char *err, size_t errlen)
{
    struct push p = {.s = s, .t = t, .st = st, .progress = progress, .parg = progress_arg,
                     .err = err, .errlen = errlen};
    memset(st, 0, sizeof *st);
    if (err && errlen)
        err[0] = '\0';
    if (!t->url || (strncmp(t->url, "http://", 7) && strncmp(t->url, "https://", 8)))
        return fail(&p, -EINVAL, "the tracking URL must start with http:// or https://, not "
                                 "'%s'", t->url ? t->url : "");
    mlflow_target_name(t->url, p.target);
    int lock_fd = -1;
    int rc = t->dry_run ? 0 : lock_target(&p, &lock_fd);
    if (rc < 0)
        return rc;
    rc = mlflow_rest_new(&p.rest, t);
    if (rc < 0) {
        if (lock_fd >= 0)
            close(lock_fd);
        return fail(&p, rc, "cannot set up HTTP: %s", strerror(-rc));
    }

    struct ids ids = {0};
    if (t->nruns) {
        ids.v = (uint8_t(*)[16])t->runs;
        ids.n = t->nruns;
    } else {
        struct store_txn *txn;
        if ((rc = store_begin(s, false, &txn)) == 0) {
            rc = store_run_foreach(txn, collect_run, &ids);
            store_abort(txn);
        }
        if (rc < 0)
            fail(&p, rc, "cannot list the store's runs: %s", store_strerror(rc));
    }
    bool some_failed = false;
    for (size_t i = 0; rc >= 0 && i < ids.n; i++) {
        rc = push_run(&p, ids.v[i], i + 1, ids.n);
        if (rc == 1) {
            some_failed = true;
            rc = 0;
        }
    }
    if (!t->nruns)
        free(ids.v);
    if (!t->dry_run) {
        int r = store_sync(s); /* the counts too, not only the markers */
        if (r < 0 && rc >= 0)
            rc = fail(&p, r, "cannot flush the store: %s", store_strerror(r));
    }
    mlflow_rest_free(p.rest);
    if (lock_fd >= 0)
        close(lock_fd); /* the lock goes with it */
    sync_buf_free(&p.body);
    sync_buf_free(&p.url);
    free(p.pts);
    if (rc < 0)
        return rc;
    return some_failed ? 1 : 0;
}
