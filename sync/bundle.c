/* bundle.c — bundle files (bundle.h): writing one from a store, checking one whole, applying
 * one to a store.
 *
 * Export streams: one read transaction gives a consistent view of the journal (or of the
 * chosen runs), frames go through a buffer into a temporary file, hashed as they go; the
 * trailer and the size are written last, then fsync, rename, fsync of the directory, and only
 * then the "export_next" counter moves. So a bundle that exists is whole, and ops are never
 * marked exported without a file that holds them.
 *
 * Import reads the file twice: once to check all of it (nothing is applied from a bundle that
 * is truncated or damaged anywhere), once to apply it frame by frame with a buffer of one
 * frame, so that a bundle of any size needs little memory.
 */
#include "bundle.h"

#include "journal_batch.h"
#include "mpk.h"
#include "shmlog.h"

#include "blobs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PREFIX_LEN 32u              /* magic, version, flags, total size */
#define MAP_MAX (64u << 10)         /* header and trailer maps */
#define WBUF_BYTES (1u << 20)

const char *bundle_kind_name(int kind)
{
    return kind == BUNDLE_JOURNAL ? "journal" : kind == BUNDLE_RUNS ? "runs" : "unknown";
}

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
    if (!why || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- a set of fixed-size ids (run ids, content digests): open addressing ---- */

struct idset {
    uint8_t *keys; /* cap * klen bytes; an all-zero slot is empty */
    bool has_zero; /* the all-zero id itself */
    size_t n, cap, klen;
};

static bool is_zero(const uint8_t *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (k[i])
            return false;
    return true;
}

static size_t id_hash(const uint8_t *k, size_t klen)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < klen; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return (size_t)h;
}

/* 1 when added, 0 when it was there, -ENOMEM. */
static int idset_add(struct idset *s, const uint8_t *k)
{
    if (is_zero(k, s->klen)) {
        bool had = s->has_zero;
        s->has_zero = true;
        return had ? 0 : 1;
    }
    if (2 * (s->n + 1) > s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 64;
        uint8_t *nk = calloc(ncap, s->klen);
        if (!nk)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            const uint8_t *o = s->keys + i * s->klen;
            if (is_zero(o, s->klen))
                continue;
            size_t j = id_hash(o, s->klen) & (ncap - 1);
            while (!is_zero(nk + j * s->klen, s->klen))
                j = (j + 1) & (ncap - 1);
            memcpy(nk + j * s->klen, o, s->klen);
        }
        free(s->keys);
        s->keys = nk;
        s->cap = ncap;
    }
    size_t j = id_hash(k, s->klen) & (s->cap - 1);
    for (;; j = (j + 1) & (s->cap - 1)) {
        uint8_t *slot = s->keys + j * s->klen;
        if (is_zero(slot, s->klen)) {
            memcpy(slot, k, s->klen);
            s->n++;
            return 1;
        }
        if (memcmp(slot, k, s->klen) == 0)
            return 0;
    }
}

static size_t idset_count(const struct idset *s) { return s->n + (s->has_zero ? 1 : 0); }

static void idset_free(struct idset *s)
{
    free(s->keys);
    s->keys = NULL;
    s->n = s->cap = 0;
    s->has_zero = false;
}

/* ================================ writing ================================ */

struct writer {
    struct store *s;
    struct store_txn *t;
    const struct bundle_export_options *o;
    int fd;
    uint8_t *wbuf;
    size_t wlen;
    uint64_t pos; /* bytes written to the file, buffered ones included */
    EVP_MD_CTX *md;
    struct sync_buf frame;
    struct bundle_info info;
    struct idset runs, blobs;
    struct bundle_progress prog;
    uint64_t last_batch; /* last seq written in a batch (0: none) */
    char *why;
    size_t whylen;
};

static int w_flush(struct writer *w)
{
    size_t off = 0;
    while (off < w->wlen) {
        ssize_t n = write(w->fd, w->wbuf + off, w->wlen - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)n;
    }
    w->wlen = 0;
    return 0;
}

/* Appends bytes to the file; hashed when past the prefix (which is written last). */
static int w_put(struct writer *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    if (w->pos >= PREFIX_LEN && n && !EVP_DigestUpdate(w->md, b, n))
        return -ENOMEM;
    w->pos += n;
    while (n) {
        size_t room = WBUF_BYTES - w->wlen;
        size_t k = n < room ? n : room;
        memcpy(w->wbuf + w->wlen, b, k);
        w->wlen += k;
        b += k;
        n -= k;
        if (w->wlen == WBUF_BYTES) {
            int rc = w_flush(w);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int w_u32(struct writer *w, uint32_t v)
{
    uint8_t b[4];
    put_le(b, v, 4);
    return w_put(w, b, 4);
}

static int w_progress(struct writer *w)
{
    w->prog.bytes_done = w->pos;
    if (!w->o->progress)
        return 0;
    int rc = w->o->progress(&w->prog, w->o->progress_arg);
    return rc < 0 ? rc : 0;
}

/* The sync frame in w->frame, length first. */
static int w_frame(struct writer *w)
{
    if (w->frame.err)
        return w->frame.err;
    int rc = w_u32(w, (uint32_t)w->frame.len);
    if (rc == 0)
        rc = w_put(w, w->frame.data, w->frame.len);
    if (rc == 0)
        w->info.frames++;
    return rc;
}

static int w_header(struct writer *w, int kind)
{
    uint8_t prefix[PREFIX_LEN] = {0};
    memcpy(prefix, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN);
    /* flags (20) 0; size (24) and the version (16: it goes up when a registration is
     * carried) written last */
    put_le(prefix + 16, w->info.version, 4);
    int rc = w_put(w, prefix, sizeof prefix);
    if (rc < 0)
        return rc;
    struct st_mpw m;
    st_mpw_init(&m);
    st_mpw_map(&m, 5);
    st_mpw_str(&m, "kind");
    st_mpw_str(&m, bundle_kind_name(kind));
    st_mpw_str(&m, "source");
    st_mpw_bin(&m, w->info.source, 16);
    st_mpw_str(&m, "host");
    st_mpw_str(&m, w->info.host);
    st_mpw_str(&m, "created_ms");
    st_mpw_int(&m, w->info.created_ms);
    st_mpw_str(&m, "tool");
    st_mpw_str(&m, w->info.tool);
    if ((rc = st_mpw_done(&m)) == 0 && (rc = w_u32(w, (uint32_t)m.len)) == 0 &&
        (rc = w_put(w, m.buf, m.len)) == 0)
        rc = w_u32(w, shmlog_crc32c(0, m.buf, m.len));
    st_mpw_free(&m);
    return rc;
}

static const char *const trailer_keys[] = {"bytes",  "first", "last",  "frames",
                                           "batches", "ops",  "points", "runs",
                                           "blobs",  "blob_bytes", "missing_blobs"};
#define NTRAILER (sizeof trailer_keys / sizeof trailer_keys[0])

static void info_fields(struct bundle_info *in, uint64_t *v[NTRAILER])
{
    uint64_t *f[NTRAILER] = {&in->bytes,   &in->first,  &in->last,  &in->frames,
                             &in->batches, &in->ops,    &in->points, &in->runs,
                             &in->blobs,   &in->blob_bytes, &in->missing_blobs};
    memcpy(v, f, sizeof f);
}

/* The trailer map with the file's final size in it: the map's length depends on that size,
 * so it is encoded until the size it states is the size it makes. */
static int w_trailer(struct writer *w)
{
    int rc = w_u32(w, 0);
    if (rc < 0)
        return rc;
    w->info.runs = idset_count(&w->runs);
    struct st_mpw m;
    uint64_t guess = w->pos + 4 + 32;
    for (int tries = 0;; tries++) {
        w->info.bytes = guess;
        uint64_t *v[NTRAILER];
        info_fields(&w->info, v);
        st_mpw_init(&m);
        st_mpw_map(&m, NTRAILER);
        for (size_t i = 0; i < NTRAILER; i++) {
            st_mpw_str(&m, trailer_keys[i]);
            st_mpw_uint(&m, *v[i]);
        }
        if ((rc = st_mpw_done(&m)) < 0) {
            st_mpw_free(&m);
            return rc;
        }
        uint64_t total = w->pos + 4 + m.len + 32;
        if (total == guess)
            break;
        st_mpw_free(&m);
        if (tries > 4)
            return -EINVAL; /* not reached: the size's encoding settles at once */
        guess = total;
    }
    if ((rc = w_u32(w, (uint32_t)m.len)) == 0)
        rc = w_put(w, m.buf, m.len);
    st_mpw_free(&m);
    if (rc < 0)
        return rc;
    uint8_t digest[32];
    unsigned dl = 0;
    if (!EVP_DigestFinal_ex(w->md, digest, &dl) || dl != 32)
        return -EIO;
    if ((rc = w_put(w, digest, 32)) < 0 || (rc = w_flush(w)) < 0)
        return rc;
    uint8_t size[8], version[4];
    put_le(size, w->pos, 8);
    ssize_t n = pwrite(w->fd, size, 8, 24);
    if (n < 0)
        return -errno;
    if (n != 8)
        return -EIO;
    put_le(version, w->info.version, 4);
    if ((n = pwrite(w->fd, version, 4, 16)) < 0)
        return -errno;
    return n == 4 ? 0 : -EIO;
}

/* ---- artifact content ---- */

/* The content of one artifact, as BLOB_CHUNK frames, once per bundle. Content the store does
 * not have is counted (the reference goes without it, as over the network). */
static int w_blob(struct writer *w, const uint8_t sha[32], uint64_t size)
{
    int rc = idset_add(&w->blobs, sha);
    if (rc <= 0)
        return rc;
    char path[PATH_MAX];
    if ((rc = store_blob_path(w->s, sha, path, sizeof path)) < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
        if (fd >= 0)
            close(fd);
        w->info.missing_blobs++;
        return 0;
    }
    uint8_t *chunk = malloc(SYNC_BLOB_CHUNK_BYTES);
    if (!chunk) {
        close(fd);
        return -ENOMEM;
    }
    uint64_t off = 0;
    do {
        size_t want = size - off < SYNC_BLOB_CHUNK_BYTES ? (size_t)(size - off)
                                                         : SYNC_BLOB_CHUNK_BYTES;
        ssize_t n = want ? pread(fd, chunk, want, (off_t)off) : 0;
        if (n != (ssize_t)want) {
            rc = n < 0 ? -errno : -EIO;
            say(w->why, w->whylen, "cannot read artifact content %s: %s", path,
                strerror(-rc));
            break;
        }
        sync_buf_reset(&w->frame);
        sync_encode_blob_chunk(&w->frame, sha, size, off, chunk, want);
        if ((rc = w_frame(w)) < 0)
            break;
        off += want;
        rc = w_progress(w);
    } while (rc == 0 && off < size);
    free(chunk);
    close(fd);
    if (rc == 0) {
        w->info.blobs++;
        w->info.blob_bytes += size;
    }
    return rc;
}

/* Bookkeeping for a batch of ops about to be written. */
static int w_count_ops(struct writer *w, const struct store_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = idset_add(&w->runs, ops[i].run);
        if (rc < 0)
            return rc;
        if (ops[i].type == STORE_OP_METRICS)
            w->info.points += ops[i].count;
        if (ops[i].type == STORE_OP_MODEL_REGISTER)
            w->info.version = BUNDLE_VERSION_REGISTRY;
    }
    if (!w->info.first)
        w->info.first = ops[0].seq;
    w->info.last = ops[n - 1].seq;
    w->info.ops += n;
    w->info.batches++;
    w->prog.ops_done += n;
    return 0;
}

/* ---- journal bundles ---- */

static uint64_t op_bytes(const struct store_op *op)
{
    return 64 + (op->key ? strlen(op->key) : 0) + (op->value ? strlen(op->value) : 0) +
           op->count * 24;
}

struct estimate {
    struct idset blobs;
    uint64_t ops, bytes;
};

static int estimate_op(const struct store_op *op, void *arg)
{
    struct estimate *e = arg;
    e->ops++;
    e->bytes += op_bytes(op) + 4;
    if (op->type == STORE_OP_ARTIFACT) {
        int rc = idset_add(&e->blobs, op->sha256);
        if (rc < 0)
            return rc;
        if (rc > 0)
            e->bytes += op->size + (op->size / SYNC_BLOB_CHUNK_BYTES + 1) * 96;
    }
    return 0;
}

static int export_journal(struct writer *w, struct bundle_export_result *res)
{
    uint64_t from = res->journal_first;
    if (!w->o->since_start && res->export_next > from)
        from = res->export_next;
    struct estimate e = {.blobs = {.klen = 32}};
    int rc = store_journal_read(w->t, from, 0, estimate_op, &e);
    idset_free(&e.blobs);
    if (rc < 0)
        return rc;
    w->prog.ops_total = e.ops;
    w->prog.bytes_total = e.bytes + 512;
    struct journal_batch b;
    journal_batch_init(&b);
    while (rc == 0) {
        if ((rc = journal_batch_collect(&b, w->t, from, w->o->batch_bytes)) < 0 || b.n == 0)
            break;
        if (b.ops[0].seq != from && from != res->journal_first) {
            rc = -EBADMSG; /* the journal has a hole in a read txn: not a journal of ours */
            break;
        }
        for (size_t i = 0; i < b.n && rc == 0; i++)
            if (b.ops[i].type == STORE_OP_ARTIFACT)
                rc = w_blob(w, b.ops[i].sha256, b.ops[i].size);
        if (rc == 0)
            rc = journal_batch_encode(&b, w->t, w->info.source, &w->frame);
        if (rc == 0)
            rc = w_count_ops(w, b.ops, b.n);
        if (rc == 0)
            rc = w_frame(w);
        if (rc == 0) {
            from = b.ops[b.n - 1].seq + 1;
            rc = w_progress(w);
        }
    }
    journal_batch_free(&b);
    return rc;
}

/* ---- runs bundles: ops made from what the runs hold now ---- */

struct snap_op {
    struct store_op op;
    char *str[5];             /* the op's strings, owned */
    struct store_point *pts;  /* METRICS: owned */
    size_t pts_cap;
};

struct snap {
    struct writer *w;
    struct snap_op *ops;
    size_t n, cap;
    size_t bytes;
    uint64_t next_seq;        /* the next op's number in the bundle */
    const uint8_t *run;
    const char *key;          /* the series being read (METRICS) */
    uint64_t key_index;       /* points of it put in ops so far */
    int err;
};

static void snap_clear(struct snap *sn)
{
    for (size_t i = 0; i < sn->n; i++) {
        for (int j = 0; j < 5; j++)
            free(sn->ops[i].str[j]);
        free(sn->ops[i].pts);
    }
    sn->n = 0;
    sn->bytes = 0;
}

static int snap_flush(struct snap *sn)
{
    if (sn->n == 0)
        return 0;
    struct writer *w = sn->w;
    uint64_t first = sn->ops[0].op.seq;
    int rc = sync_batch_begin(&w->frame, w->info.source, first, first + sn->n - 1,
                              (uint32_t)sn->n);
    for (size_t i = 0; i < sn->n && rc == 0; i++)
        rc = sync_batch_op(&w->frame, &sn->ops[i].op, sn->ops[i].pts);
    if (rc == 0)
        rc = sync_batch_finish(&w->frame);
    struct store_op *plain = rc == 0 ? malloc(sn->n * sizeof *plain) : NULL;
    if (rc == 0 && !plain)
        rc = -ENOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < sn->n; i++)
            plain[i] = sn->ops[i].op;
        rc = w_count_ops(w, plain, sn->n);
    }
    free(plain);
    if (rc == 0)
        rc = w_frame(w);
    if (rc == 0)
        rc = w_progress(w);
    snap_clear(sn);
    return rc;
}

/* A new op of type for the current run; strings are copied. NULL on -ENOMEM (sn->err). */
static struct snap_op *snap_add(struct snap *sn, int type, const char *const strs[5])
{
    if (sn->n == sn->cap) {
        size_t ncap = sn->cap ? 2 * sn->cap : 64;
        struct snap_op *no = realloc(sn->ops, ncap * sizeof *no);
        if (!no) {
            sn->err = -ENOMEM;
            return NULL;
        }
        sn->ops = no;
        sn->cap = ncap;
    }
    struct snap_op *so = &sn->ops[sn->n];
    memset(so, 0, sizeof *so);
    for (int j = 0; j < 5 && strs; j++) {
        if (strs[j] && !(so->str[j] = strdup(strs[j]))) {
            for (int k = 0; k < j; k++)
                free(so->str[k]);
            sn->err = -ENOMEM;
            return NULL;
        }
    }
    sn->n++;
    so->op.seq = sn->next_seq++;
    so->op.type = type;
    memcpy(so->op.run, sn->run, 16);
    so->op.experiment = so->str[0];
    so->op.name = so->str[1];
    so->op.user = so->str[2];
    so->op.host = so->str[3];
    so->op.key = so->str[0];
    so->op.value = so->str[1];
    if (type == STORE_OP_RUN_START)
        so->op.key = so->op.value = NULL;
    sn->bytes += 64;
    for (int j = 0; j < 5; j++)
        sn->bytes += so->str[j] ? strlen(so->str[j]) : 0;
    return so;
}

static int snap_maybe_flush(struct snap *sn)
{
    size_t max = sn->w->o->batch_bytes ? sn->w->o->batch_bytes : JOURNAL_BATCH_BYTES;
    if (sn->bytes >= max || sn->n >= JOURNAL_BATCH_MAX_OPS)
        return snap_flush(sn);
    return 0;
}

static int snap_kv(struct snap *sn, int type, const char *key, const char *value)
{
    const char *s[5] = {key, value};
    if (!snap_add(sn, type, s))
        return sn->err;
    return snap_maybe_flush(sn);
}

static int snap_param(const char *key, const char *value, void *arg)
{
    return snap_kv(arg, STORE_OP_PARAM, key, value);
}

static int snap_tag(const char *key, const char *value, void *arg)
{
    return snap_kv(arg, STORE_OP_TAG, key, value);
}

/* A chunk of a series' history: into the open METRICS op of this series, or a new one. */
static int snap_points(const struct store_point *pts, size_t n, void *arg)
{
    struct snap *sn = arg;
    while (n) {
        struct snap_op *so = sn->n ? &sn->ops[sn->n - 1] : NULL;
        if (!so || so->op.type != STORE_OP_METRICS || strcmp(so->op.key, sn->key) != 0 ||
            memcmp(so->op.run, sn->run, 16) != 0) {
            const char *s[5] = {sn->key};
            if (!(so = snap_add(sn, STORE_OP_METRICS, s)))
                return sn->err;
            so->op.first_index = sn->key_index;
        }
        /* as many as the batch has room for (at least one), so that batches stay bounded */
        size_t max = sn->w->o->batch_bytes ? sn->w->o->batch_bytes : JOURNAL_BATCH_BYTES;
        size_t room = sn->bytes < max ? (max - sn->bytes) / 24 + 1 : 1;
        size_t k = n < room ? n : room;
        if (so->op.count + k > so->pts_cap) {
            size_t ncap = so->pts_cap ? so->pts_cap : 256;
            while (ncap < so->op.count + k)
                ncap *= 2;
            struct store_point *np = realloc(so->pts, ncap * sizeof *np);
            if (!np)
                return sn->err = -ENOMEM;
            so->pts = np;
            so->pts_cap = ncap;
        }
        memcpy(so->pts + so->op.count, pts, k * sizeof *pts);
        so->op.count += k;
        sn->key_index += k;
        sn->bytes += k * 24;
        pts += k;
        n -= k;
        int rc = snap_maybe_flush(sn);
        if (rc < 0)
            return rc;
    }
    return 0;
}

struct keylist {
    char **v;
    size_t n, cap;
};

static int keylist_add(const char *key, const struct store_metric_summary *s, void *arg)
{
    struct keylist *l = arg;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? 2 * l->cap : 16;
        char **nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    if (!(l->v[l->n] = strdup(key)))
        return -ENOMEM;
    l->n++;
    return 0;
}

static void keylist_free(struct keylist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

struct artifact_list {
    struct store_artifact *v;
    size_t n, cap;
};

static int artifact_add(const struct store_artifact *a, void *arg)
{
    struct artifact_list *l = arg;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? 2 * l->cap : 8;
        struct store_artifact *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = *a;
    return 0;
}

static int snap_run(struct snap *sn, const uint8_t id[16])
{
    struct writer *w = sn->w;
    struct store_run run;
    char hex[33];
    int rc = store_run_get(w->t, id, &run);
    if (rc < 0) {
        store_run_id_hex(id, hex);
        say(w->why, w->whylen, "run %s: %s", hex, store_strerror(rc));
        return rc;
    }
    sn->run = id;
    if (run.start_ms != 0) { /* a placeholder's start is unknown: nothing to say of it */
        struct store_experiment exp;
        rc = store_experiment_get(w->t, run.experiment_id, &exp);
        if (rc == -ENOENT)
            snprintf(exp.name, sizeof exp.name, "Default");
        else if (rc < 0)
            return rc;
        const char *s[5] = {exp.name, run.name, run.user, run.host};
        struct snap_op *so = snap_add(sn, STORE_OP_RUN_START, s);
        if (!so)
            return sn->err;
        so->op.start_ms = run.start_ms;
        so->op.has_parent = run.has_parent;
        memcpy(so->op.parent, run.parent, 16);
    }
    if ((rc = store_params_foreach(w->t, id, snap_param, sn)) < 0 ||
        (rc = store_tags_foreach(w->t, id, snap_tag, sn)) < 0)
        return sn->err ? sn->err : rc;
    struct keylist keys = {0};
    rc = store_metric_keys_foreach(w->t, id, keylist_add, &keys);
    for (size_t i = 0; i < keys.n && rc == 0; i++) {
        sn->key = keys.v[i];
        sn->key_index = 0;
        rc = store_metric_history(w->t, id, keys.v[i], snap_points, sn);
        if (rc == -ENOENT)
            rc = 0;
    }
    keylist_free(&keys);
    if (rc < 0)
        return sn->err ? sn->err : rc;
    struct artifact_list arts = {0};
    rc = store_artifacts_foreach(w->t, id, artifact_add, &arts);
    for (size_t i = 0; i < arts.n && rc == 0; i++) {
        /* the content goes out now: before the batch that will hold the reference */
        if ((rc = w_blob(w, arts.v[i].sha256, arts.v[i].size)) < 0)
            break;
        const char *s[5] = {arts.v[i].path};
        struct snap_op *so = snap_add(sn, STORE_OP_ARTIFACT, s);
        if (!so) {
            rc = sn->err;
            break;
        }
        memcpy(so->op.sha256, arts.v[i].sha256, 32);
        so->op.size = arts.v[i].size;
        rc = snap_maybe_flush(sn);
    }
    free(arts.v);
    if (rc < 0)
        return rc;
    if (run.status != STORE_RUN_RUNNING && run.status != STORE_RUN_SCHEDULED) {
        struct snap_op *so = snap_add(sn, STORE_OP_RUN_END, NULL);
        if (!so)
            return sn->err;
        so->op.status = run.status;
        so->op.end_ms = run.end_ms;
    }
    return snap_maybe_flush(sn);
}

struct runs_estimate {
    uint64_t ops, bytes;
};

static int est_kv(const char *key, const char *value, void *arg)
{
    struct runs_estimate *e = arg;
    e->ops++;
    e->bytes += 64 + strlen(key) + strlen(value);
    return 0;
}

static int est_metric(const char *key, const struct store_metric_summary *s, void *arg)
{
    struct runs_estimate *e = arg;
    e->ops++;
    e->bytes += 64 + strlen(key) + s->count * 24;
    return 0;
}

static int est_artifact(const struct store_artifact *a, void *arg)
{
    struct runs_estimate *e = arg;
    e->ops++;
    e->bytes += 128 + a->size;
    return 0;
}

static int export_runs(struct writer *w)
{
    struct runs_estimate e = {0};
    for (size_t i = 0; i < w->o->nruns; i++) {
        const uint8_t *id = w->o->runs[i];
        e.ops += 2;
        e.bytes += 512;
        int rc;
        if ((rc = store_params_foreach(w->t, id, est_kv, &e)) < 0 ||
            (rc = store_tags_foreach(w->t, id, est_kv, &e)) < 0 ||
            (rc = store_metric_keys_foreach(w->t, id, est_metric, &e)) < 0 ||
            (rc = store_artifacts_foreach(w->t, id, est_artifact, &e)) < 0)
            return rc;
    }
    w->prog.ops_total = e.ops;
    w->prog.bytes_total = e.bytes + 512;
    struct snap sn = {.w = w, .next_seq = 1};
    int rc = 0;
    for (size_t i = 0; i < w->o->nruns && rc == 0; i++)
        rc = snap_run(&sn, w->o->runs[i]);
    if (rc == 0)
        rc = snap_flush(&sn);
    snap_clear(&sn);
    free(sn.ops);
    return rc;
}

/* ---- the file ---- */

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 && errno != EINVAL ? -errno : 0;
    close(fd);
    return rc;
}

/* Moves tmp to path; without force, never over an existing file (even one made meanwhile). */
static int put_in_place(const char *tmp, const char *path, bool force)
{
    if (force)
        return rename(tmp, path) < 0 ? -errno : 0;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* a file system without RENAME_NOREPLACE: link() refuses an existing name too */
    if (link(tmp, path) < 0)
        return -errno;
    unlink(tmp);
    return 0;
}

/* The journal's bounds and the export counter, in t. */
static int journal_state(struct store_txn *t, struct bundle_export_result *res)
{
    int rc = store_journal_bounds(t, &res->journal_first, &res->journal_next);
    if (rc < 0)
        return rc;
    if ((rc = store_counter_get(t, BUNDLE_EXPORT_COUNTER, &res->export_next)) < 0)
        return rc;
    if (res->export_next == 0)
        res->export_next = 1;
    return 0;
}

/* After the file is in place: the next journal bundle starts after its last op. */
static int mark_exported(struct store *s, uint64_t next)
{
    for (int tries = 0;; tries++) {
        struct store_txn *t;
        int rc = store_begin(s, true, &t);
        if (rc < 0)
            return rc;
        uint64_t cur = 0;
        rc = store_counter_get(t, BUNDLE_EXPORT_COUNTER, &cur);
        if (rc == 0 && next > cur)
            rc = store_counter_add(t, BUNDLE_EXPORT_COUNTER, next - cur);
        if (rc == 0)
            return store_commit(t);
        store_abort(t);
        if (rc == -ENOSPC && store_map_full(s) && tries < 4 && store_grow(s) == 0)
            continue;
        return rc;
    }
}

static int write_file(struct writer *w, const char *path, struct bundle_export_result *res,
                      char *tmp, size_t tmplen)
{
    snprintf(tmp, tmplen, "%s.partial-XXXXXX", path);
    w->fd = mkostemp(tmp, O_CLOEXEC);
    if (w->fd < 0) {
        int rc = -errno;
        tmp[0] = 0;
        say(w->why, w->whylen, "cannot create a file next to %s: %s", path, strerror(-rc));
        return rc;
    }
    fchmod(w->fd, 0644);
    int rc = w_header(w, w->o->kind);
    if (rc == 0)
        rc = w->o->kind == BUNDLE_JOURNAL ? export_journal(w, res) : export_runs(w);
    if (rc == 0)
        rc = w_trailer(w);
    if (rc == 0 && fsync(w->fd) < 0)
        rc = -errno;
    if (rc < 0 && w->why && !w->why[0])
        say(w->why, w->whylen, "cannot export to %s: %s", path,
            rc == -ENOSPC ? "no space left on the device" : store_strerror(rc));
    return rc;
}

int bundle_export(struct store *s, const char *path, const struct bundle_export_options *o,
                  struct bundle_export_result *res, char *why, size_t whylen)
{
    memset(res, 0, sizeof *res);
    say(why, whylen, "%s", "");
    if (!s || !path || !*path || !o || (o->kind != BUNDLE_JOURNAL && o->kind != BUNDLE_RUNS) ||
        (o->kind == BUNDLE_RUNS && (!o->runs || !o->nruns)))
        return -EINVAL;
    struct stat st;
    if (!o->force && lstat(path, &st) == 0) {
        say(why, whylen, "%s exists (--force replaces it)", path);
        return -EEXIST;
    }
    struct writer w = {.s = s, .o = o, .fd = -1, .why = why, .whylen = whylen,
                       .runs = {.klen = 16}, .blobs = {.klen = 32}};
    w.info.version = BUNDLE_VERSION_BASE;
    w.info.kind = o->kind;
    w.info.created_ms = now_ms();
    store_id(s, w.info.source);
    if (o->host)
        snprintf(w.info.host, sizeof w.info.host, "%s", o->host);
    else if (gethostname(w.info.host, sizeof w.info.host - 1) < 0)
        w.info.host[0] = 0;
    snprintf(w.info.tool, sizeof w.info.tool, "%s", o->tool ? o->tool : "sidetrack");
    w.prog.phase = BUNDLE_WRITING;
    sync_buf_init(&w.frame);
    char tmp[PATH_MAX + 32] = "";
    int rc = store_begin(s, false, &w.t);
    if (rc < 0)
        return rc;
    if (o->kind == BUNDLE_JOURNAL) {
        if ((rc = journal_state(w.t, res)) < 0)
            goto out;
        uint64_t from = o->since_start || res->export_next < res->journal_first
                            ? res->journal_first
                            : res->export_next;
        res->trimmed = !o->since_start && res->export_next < res->journal_first;
        if (from >= res->journal_next) {
            res->empty = true;
            goto out;
        }
    }
    w.wbuf = malloc(WBUF_BYTES);
    w.md = EVP_MD_CTX_new();
    if (!w.wbuf || !w.md || !EVP_DigestInit_ex(w.md, EVP_sha256(), NULL)) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = write_file(&w, path, res, tmp, sizeof tmp)) < 0)
        goto out;
    store_abort(w.t);
    w.t = NULL;
    if (close(w.fd) < 0) {
        rc = -errno;
        w.fd = -1;
        say(why, whylen, "cannot write %s: %s", path, strerror(-rc));
        goto out;
    }
    w.fd = -1;
    if ((rc = put_in_place(tmp, path, o->force)) < 0) {
        if (rc == -EEXIST)
            say(why, whylen, "%s appeared while the bundle was written (--force replaces it)",
                path);
        else
            say(why, whylen, "cannot put the bundle in place as %s: %s", path, strerror(-rc));
        goto out;
    }
    tmp[0] = 0;
    fsync_dir_of(path);
    res->info = w.info;
    if (o->kind == BUNDLE_JOURNAL && (rc = mark_exported(s, w.info.last + 1)) < 0)
        say(why, whylen, "%s is written, but the store could not record it as exported (%s): "
                         "the next bundle will hold its changes again, which is harmless",
            path, store_strerror(rc));
out:
    if (w.t)
        store_abort(w.t);
    if (w.fd >= 0)
        close(w.fd);
    if (tmp[0])
        unlink(tmp);
    free(w.wbuf);
    EVP_MD_CTX_free(w.md);
    sync_buf_free(&w.frame);
    idset_free(&w.runs);
    idset_free(&w.blobs);
    return rc;
}

/* ================================ reading ================================ */

struct bundle_reader {
    FILE *f;
    uint64_t size;        /* the file's size when opened */
    uint64_t total;       /* the size the prefix states */
    uint64_t pos;
    uint64_t frames_at;   /* where the first frame's length is */
    struct bundle_info info;
    bool verified;
    EVP_MD_CTX *md;       /* NULL while not hashing */
    uint8_t *buf;
    size_t cap;
};

/* Reads exactly n bytes: 0, or 1 at the end of the file (got says how many came), -errno. */
static int rd(struct bundle_reader *r, void *p, size_t n, size_t *got)
{
    size_t k = n ? fread(p, 1, n, r->f) : 0;
    if (got)
        *got = k;
    if (r->md && k && !EVP_DigestUpdate(r->md, p, k))
        return -ENOMEM;
    r->pos += k;
    if (k == n)
        return 0;
    return ferror(r->f) ? -EIO : 1;
}

static const char *size_note(const struct bundle_reader *r, char *buf, size_t len)
{
    if (r->total > r->pos)
        snprintf(buf, len, " (it has %llu of the %llu bytes it was written with: copy it again)",
                 (unsigned long long)r->size, (unsigned long long)r->total);
    else
        snprintf(buf, len, " (copy it again)");
    return buf;
}

static int truncated(struct bundle_reader *r, const char *where, uint64_t start, uint64_t need,
                     char *why, size_t whylen)
{
    char note[160];
    say(why, whylen, "truncated: the file ends at byte %llu, inside %s that starts at byte %llu "
                     "and needs %llu bytes%s",
        (unsigned long long)r->pos, where, (unsigned long long)start, (unsigned long long)need,
        size_note(r, note, sizeof note));
    return -EBADMSG;
}

static int rd_u32(struct bundle_reader *r, uint32_t *v, const char *where, char *why,
                  size_t whylen)
{
    uint8_t b[4];
    uint64_t start = r->pos;
    int rc = rd(r, b, 4, NULL);
    if (rc > 0)
        return truncated(r, where, start, 4, why, whylen);
    if (rc < 0)
        return rc;
    *v = (uint32_t)get_le(b, 4);
    return 0;
}

/* A map (header or trailer) of len bytes into r->buf. */
static int rd_map(struct bundle_reader *r, uint32_t len, const char *what, char *why,
                  size_t whylen)
{
    if (len == 0 || len > MAP_MAX) {
        say(why, whylen, "corrupted: the %s at byte %llu claims %u bytes", what,
            (unsigned long long)r->pos - 4, len);
        return -EBADMSG;
    }
    if (len > r->cap) {
        uint8_t *nb = realloc(r->buf, len);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = len;
    }
    uint64_t start = r->pos;
    int rc = rd(r, r->buf, len, NULL);
    if (rc > 0)
        return truncated(r, what, start, len, why, whylen);
    return rc;
}

static int parse_header(struct bundle_reader *r, uint32_t len)
{
    struct st_mpr p = {r->buf, r->buf + len};
    uint32_t n;
    int rc = st_mpr_map(&p, &n);
    unsigned seen = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        struct st_mp_val k, v;
        if ((rc = st_mpr_val(&p, &k)) < 0)
            break;
        if (st_mp_key_is(&k, "kind")) {
            char kind[16];
            if ((rc = st_mpr_val(&p, &v)) == 0 && (rc = st_mp_as_str(&v, kind, sizeof kind)) == 0)
                r->info.kind = !strcmp(kind, "journal") ? BUNDLE_JOURNAL
                               : !strcmp(kind, "runs")  ? BUNDLE_RUNS
                                                        : 0;
            seen |= 1;
        } else if (st_mp_key_is(&k, "source")) {
            rc = st_mpr_bin_exact(&p, r->info.source, 16);
            seen |= 2;
        } else if (st_mp_key_is(&k, "host")) {
            if ((rc = st_mpr_val(&p, &v)) == 0)
                rc = st_mp_as_str(&v, r->info.host, sizeof r->info.host);
        } else if (st_mp_key_is(&k, "tool")) {
            if ((rc = st_mpr_val(&p, &v)) == 0)
                rc = st_mp_as_str(&v, r->info.tool, sizeof r->info.tool);
        } else if (st_mp_key_is(&k, "created_ms")) {
            rc = st_mpr_i64(&p, &r->info.created_ms);
        } else {
            rc = st_mpr_skip(&p); /* a field of a later version of the same format */
        }
    }
    if (rc == 0 && (seen != 3 || p.p != p.end))
        rc = -EBADMSG;
    return rc;
}

static int parse_trailer(const uint8_t *b, uint32_t len, struct bundle_info *out)
{
    struct st_mpr p = {b, b + len};
    uint32_t n;
    int rc = st_mpr_map(&p, &n);
    uint64_t *v[NTRAILER];
    info_fields(out, v);
    unsigned seen = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        struct st_mp_val k;
        if ((rc = st_mpr_val(&p, &k)) < 0)
            break;
        size_t j = 0;
        while (j < NTRAILER && !st_mp_key_is(&k, trailer_keys[j]))
            j++;
        if (j == NTRAILER) {
            rc = st_mpr_skip(&p);
            continue;
        }
        rc = st_mpr_u64(&p, v[j]);
        seen |= 1u << j;
    }
    if (rc == 0 && (seen != (1u << NTRAILER) - 1 || p.p != p.end))
        rc = -EBADMSG;
    return rc;
}

int bundle_open(struct bundle_reader **out, const char *path, char *why, size_t whylen)
{
    *out = NULL;
    say(why, whylen, "%s", "");
    struct bundle_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    int rc = 0;
    r->f = fopen(path, "rbe");
    struct stat st;
    if (!r->f || fstat(fileno(r->f), &st) < 0) {
        rc = -errno;
        say(why, whylen, "cannot open it: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        say(why, whylen, "not a regular file");
        goto fail;
    }
    r->size = (uint64_t)st.st_size;
    setvbuf(r->f, NULL, _IOFBF, 1u << 20);
    uint8_t prefix[PREFIX_LEN];
    size_t got;
    rc = rd(r, prefix, sizeof prefix, &got);
    if (rc < 0)
        goto fail_io;
    size_t cmp = got < BUNDLE_MAGIC_LEN ? got : BUNDLE_MAGIC_LEN;
    if (got == 0 || memcmp(prefix, BUNDLE_MAGIC, cmp) != 0) {
        say(why, whylen, "not a sidetrack bundle (%s)",
            got == 0 ? "it is empty" : "it does not start with " BUNDLE_MAGIC);
        rc = -EBADMSG;
        goto fail;
    }
    if (rc > 0) {
        say(why, whylen, "truncated: the file ends at byte %zu, inside the bundle's first %u "
                         "bytes (copy it again)", got, PREFIX_LEN);
        rc = -EBADMSG;
        goto fail;
    }
    r->info.version = (uint32_t)get_le(prefix + 16, 4);
    r->total = get_le(prefix + 24, 8);
    if (r->info.version > BUNDLE_VERSION) {
        say(why, whylen, "made by a newer version of sidetrack (bundle format %u; this one reads "
                         "format %u and older): import it with a newer sidetrack",
            r->info.version, BUNDLE_VERSION);
        rc = -EPROTONOSUPPORT;
        goto fail;
    }
    if (r->info.version == 0 || get_le(prefix + 20, 4) != 0) {
        say(why, whylen, "corrupted: the bundle's format version or flags are damaged");
        rc = -EBADMSG;
        goto fail;
    }
    if (!(r->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(r->md, EVP_sha256(), NULL)) {
        rc = -ENOMEM;
        goto fail;
    }
    uint32_t hlen, crc;
    if ((rc = rd_u32(r, &hlen, "the header", why, whylen)) < 0 ||
        (rc = rd_map(r, hlen, "the header", why, whylen)) < 0)
        goto fail_io;
    uint64_t crc_at = r->pos;
    if ((rc = rd_u32(r, &crc, "the header's checksum", why, whylen)) < 0)
        goto fail_io;
    if (shmlog_crc32c(0, r->buf, hlen) != crc) {
        say(why, whylen, "corrupted: the header fails its checksum (at byte %llu)",
            (unsigned long long)crc_at);
        rc = -EBADMSG;
        goto fail;
    }
    if ((rc = parse_header(r, hlen)) < 0 || r->info.kind == 0) {
        say(why, whylen, rc < 0 ? "corrupted: the header does not decode"
                                : "made by a newer version of sidetrack (a kind of bundle this "
                                  "one does not know): import it with a newer sidetrack");
        rc = rc < 0 ? -EBADMSG : -EPROTONOSUPPORT;
        goto fail;
    }
    r->frames_at = r->pos;
    *out = r;
    return 0;
fail_io:
    if (rc == -EIO)
        say(why, whylen, "cannot read it: %s", strerror(EIO));
fail:
    bundle_close(r);
    return rc;
}

void bundle_close(struct bundle_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    EVP_MD_CTX_free(r->md);
    free(r->buf);
    free(r);
}

const struct bundle_info *bundle_reader_info(const struct bundle_reader *r) { return &r->info; }

/* What a walk over the frames sees, checked as it goes. */
struct walk {
    uint64_t frame_no;
    uint64_t frame_at;
    bool blob_open;       /* a blob's chunks have started and not ended */
    uint8_t blob_sha[32];
    uint64_t blob_size, blob_have;
    uint64_t last_seq;
    struct bundle_info seen;
    struct idset runs;
};

/* The next frame into r->buf and m (decoded): 1 for one, 0 at the end marker, or -errno with
 * why. Checks what verification and application both rely on. */
static int next_frame(struct bundle_reader *r, struct walk *wk, struct sync_msg *m, char *why,
                      size_t whylen)
{
    memset(m, 0, sizeof *m);
    wk->frame_at = r->pos;
    uint32_t len;
    uint8_t b[4];
    size_t got;
    int rc = rd(r, b, 4, &got);
    if (rc > 0) {
        char note[160];
        if (got == 0)
            say(why, whylen, "truncated: the file ends at byte %llu, after %llu frames and "
                             "before the end of the bundle%s",
                (unsigned long long)r->pos, (unsigned long long)wk->frame_no,
                size_note(r, note, sizeof note));
        else
            truncated(r, "a frame's length", wk->frame_at, 4, why, whylen);
        return -EBADMSG;
    }
    if (rc < 0)
        return rc;
    len = (uint32_t)get_le(b, 4);
    if (len == 0)
        return 0;
    wk->frame_no++;
    if (len < 5 || len > SYNC_MAX_FRAME) {
        say(why, whylen, "corrupted: frame %llu at byte %llu claims %u bytes",
            (unsigned long long)wk->frame_no, (unsigned long long)wk->frame_at, len);
        return -EBADMSG;
    }
    if (len > r->size - r->pos || len > r->cap) {
        if (len > r->size - r->pos) {
            r->pos = r->size;
            char where[64];
            snprintf(where, sizeof where, "frame %llu", (unsigned long long)wk->frame_no);
            return truncated(r, where, wk->frame_at, (uint64_t)len + 4, why, whylen);
        }
        uint8_t *nb = realloc(r->buf, len);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = len;
    }
    if ((rc = rd(r, r->buf, len, NULL)) != 0) {
        if (rc > 0) { /* the file shrank since it was opened */
            char where[64];
            snprintf(where, sizeof where, "frame %llu", (unsigned long long)wk->frame_no);
            return truncated(r, where, wk->frame_at, (uint64_t)len + 4, why, whylen);
        }
        return rc;
    }
    if ((rc = sync_decode(r->buf, len, m)) < 0) {
        if (rc == -EPROTONOSUPPORT)
            say(why, whylen, "made by a newer version of sidetrack (frame %llu uses another "
                             "protocol version): import it with a newer sidetrack",
                (unsigned long long)wk->frame_no);
        else if (rc == -EBADMSG)
            say(why, whylen, "corrupted: frame %llu at byte %llu fails its checksum or does "
                             "not decode",
                (unsigned long long)wk->frame_no, (unsigned long long)wk->frame_at);
        return rc;
    }
    const char *bad = NULL;
    if (m->type == SYNC_BLOB_CHUNK) {
        if (!wk->blob_open) {
            if (m->offset != 0)
                bad = "an artifact's content starts past its first byte";
            wk->blob_open = true;
            memcpy(wk->blob_sha, m->sha256, 32);
            wk->blob_size = m->size;
            wk->blob_have = 0;
        } else if (memcmp(wk->blob_sha, m->sha256, 32) != 0 || m->size != wk->blob_size ||
                   m->offset != wk->blob_have) {
            bad = "an artifact's content is cut off by another one's";
        }
        if (!bad && m->data_len == 0 && m->size != 0)
            bad = "an empty chunk of artifact content";
        wk->blob_have = m->offset + m->data_len;
        if (!bad && wk->blob_have == wk->blob_size) {
            wk->blob_open = false;
            wk->seen.blobs++;
            wk->seen.blob_bytes += wk->blob_size;
        }
    } else if (m->type == SYNC_BATCH) {
        if (wk->blob_open)
            bad = "an artifact's content is cut off by a batch";
        else if (memcmp(m->agent, r->info.source, 16) != 0)
            bad = "a batch of another store than the bundle's";
        else if (wk->last_seq ? m->first != wk->last_seq + 1
                              : r->info.kind == BUNDLE_RUNS && m->first != 1)
            bad = "its batches are not consecutive";
        if (!bad) {
            wk->last_seq = m->last;
            if (!wk->seen.first)
                wk->seen.first = m->first;
            wk->seen.last = m->last;
            wk->seen.batches++;
            wk->seen.ops += m->nops;
            for (uint32_t i = 0; i < m->nops && rc >= 0; i++) {
                if (m->ops[i].type == STORE_OP_METRICS)
                    wk->seen.points += m->ops[i].count;
                rc = idset_add(&wk->runs, m->ops[i].run);
            }
            rc = rc < 0 ? rc : 0;
        }
    } else {
        bad = "a frame of a kind bundles do not hold";
    }
    if (rc < 0 || bad) {
        if (bad)
            say(why, whylen, "corrupted: frame %llu at byte %llu: %s",
                (unsigned long long)wk->frame_no, (unsigned long long)wk->frame_at, bad);
        sync_msg_free(m);
        return rc < 0 ? rc : -EBADMSG;
    }
    wk->seen.frames++;
    return 1;
}

static int rewind_frames(struct bundle_reader *r, bool hash)
{
    if (fseeko(r->f, (off_t)r->frames_at, SEEK_SET) < 0)
        return -errno;
    r->pos = r->frames_at;
    if (!hash) {
        EVP_MD_CTX_free(r->md);
        r->md = NULL;
    }
    return 0;
}

int bundle_verify(struct bundle_reader *r, bundle_progress_fn progress, void *arg, char *why,
                  size_t whylen)
{
    say(why, whylen, "%s", "");
    if (!r->md) /* verified once already: the hash of the start is gone, start over */
        return r->verified ? 0 : -EINVAL;
    struct walk wk = {.runs = {.klen = 16}};
    struct bundle_progress prog = {.phase = BUNDLE_CHECKING, .bytes_total = r->size};
    int rc;
    for (;;) {
        struct sync_msg m;
        if ((rc = next_frame(r, &wk, &m, why, whylen)) <= 0)
            break;
        prog.ops_done += m.type == SYNC_BATCH ? m.nops : 0;
        sync_msg_free(&m);
        prog.bytes_done = r->pos;
        if (progress && (rc = progress(&prog, arg)) < 0)
            break;
    }
    wk.seen.runs = idset_count(&wk.runs);
    idset_free(&wk.runs);
    if (rc < 0)
        return rc;
    if (wk.blob_open) {
        say(why, whylen, "corrupted: the bundle ends inside an artifact's content");
        return -EBADMSG;
    }
    uint32_t tlen;
    if ((rc = rd_u32(r, &tlen, "the trailer", why, whylen)) < 0 ||
        (rc = rd_map(r, tlen, "the trailer", why, whylen)) < 0)
        return rc;
    uint8_t want[32], got[32];
    unsigned dl = 0;
    if (!EVP_DigestFinal_ex(r->md, want, &dl))
        return -ENOMEM;
    EVP_MD_CTX_free(r->md);
    r->md = NULL;
    uint64_t digest_at = r->pos;
    size_t n;
    if ((rc = rd(r, got, 32, &n)) != 0) {
        if (rc > 0)
            return truncated(r, "the trailer's digest", digest_at, 32, why, whylen);
        return rc;
    }
    if (memcmp(want, got, 32) != 0) {
        say(why, whylen, "corrupted: digest mismatch (the SHA-256 of the bundle's bytes is not "
                         "the one written at its end)");
        return -EBADMSG;
    }
    struct bundle_info t = r->info;
    if (parse_trailer(r->buf, tlen, &t) < 0) {
        say(why, whylen, "corrupted: the trailer does not decode");
        return -EBADMSG;
    }
    if (r->pos != r->size || t.bytes != r->size || r->total != r->size) {
        say(why, whylen, "corrupted: %llu byte(s) follow the end of the bundle (at byte %llu)",
            (unsigned long long)(r->size - r->pos), (unsigned long long)r->pos);
        if (r->pos == r->size)
            say(why, whylen, "corrupted: the file's size is not the one written in it");
        return -EBADMSG;
    }
    uint64_t *tv[NTRAILER], *sv[NTRAILER];
    wk.seen.bytes = t.bytes;
    wk.seen.missing_blobs = t.missing_blobs; /* not seen in the frames: as written */
    info_fields(&t, tv);
    info_fields(&wk.seen, sv);
    for (size_t i = 0; i < NTRAILER; i++) {
        if (*tv[i] != *sv[i]) {
            say(why, whylen, "corrupted: the bundle holds %llu %s where its trailer says %llu",
                (unsigned long long)*sv[i], trailer_keys[i], (unsigned long long)*tv[i]);
            return -EBADMSG;
        }
    }
    r->info = t;
    r->verified = true;
    prog.bytes_done = r->pos;
    if (progress)
        progress(&prog, arg);
    return 0; /* checked: a stop asked for now changes nothing */
}

/* ---- applying ---- */

static int apply_chunk(struct store *s, const struct sync_msg *m, struct bundle_import_result *res,
                       bool *had)
{
    uint64_t have = 0;
    int rc;
    if (m->offset == 0) {
        if ((rc = blobs_have(s, m->sha256, m->size, &have)) < 0)
            return rc;
        *had = have == m->size;
        if (*had)
            res->blobs_had++;
    }
    if (*had)
        return 0;
    rc = blobs_chunk(s, m, &have);
    if (rc == -EBADMSG) { /* the content does not match its digest: the reference goes alone */
        res->blobs_bad++;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (m->offset + m->data_len == m->size) {
        if (have == m->size) {
            res->blobs_stored++;
            res->blob_bytes += m->size;
        } else {
            res->blobs_bad++; /* an upload of it elsewhere stood where our chunks do not */
        }
    }
    return 0;
}

int bundle_apply(struct bundle_reader *r, struct store *s, bundle_progress_fn progress,
                 void *arg, struct bundle_import_result *res, char *why, size_t whylen)
{
    memset(res, 0, sizeof *res);
    say(why, whylen, "%s", "");
    if (!r->verified)
        return -EINVAL;
    int rc = rewind_frames(r, false);
    if (rc < 0)
        return rc;
    bool journal = r->info.kind == BUNDLE_JOURNAL;
    uint64_t hwm = 1;
    if (journal && (rc = apply_hwm(s, r->info.source, &hwm)) < 0)
        return rc;
    res->hwm_before = res->hwm_after = hwm;
    struct walk wk = {.runs = {.klen = 16}};
    struct bundle_progress prog = {.phase = BUNDLE_APPLYING, .bytes_total = r->size,
                                   .ops_total = r->info.ops};
    bool blob_had = false;
    for (;;) {
        struct sync_msg m;
        if ((rc = next_frame(r, &wk, &m, why, whylen)) <= 0)
            break;
        if (m.type == SYNC_BLOB_CHUNK) {
            rc = apply_chunk(s, &m, res, &blob_had);
        } else if (journal && m.last < hwm) {
            res->batches_skipped++; /* all of it is here: not even a write */
            res->skipped += m.nops;
        } else {
            struct apply_result ar;
            rc = journal ? apply_batch(s, &m, r->info.host, &ar)
                         : apply_snapshot(s, &m, r->info.host, &ar);
            if (rc == -ERANGE)
                say(why, whylen, "this bundle starts at change %llu of its agent, but this "
                                 "store has that agent's changes only below %llu: import the "
                                 "bundle(s) holding changes %llu to %llu first",
                    (unsigned long long)m.first, (unsigned long long)ar.hwm,
                    (unsigned long long)ar.hwm, (unsigned long long)m.first - 1);
            if (rc == 0) {
                res->batches++;
                res->applied += ar.applied;
                res->skipped += ar.skipped;
                res->points += ar.points;
                if (journal)
                    hwm = res->hwm_after = ar.hwm;
            }
        }
        prog.ops_done += m.type == SYNC_BATCH ? m.nops : 0;
        sync_msg_free(&m);
        if (rc < 0)
            break;
        prog.bytes_done = r->pos;
        if (progress && (rc = progress(&prog, arg)) < 0)
            break;
    }
    idset_free(&wk.runs);
    if (rc == -EINTR && why && !why[0])
        say(why, whylen, "interrupted: %llu batch(es) applied, the rest not",
            (unsigned long long)res->batches);
    if (rc < 0 && why && !why[0])
        say(why, whylen, "cannot apply the bundle: %s", store_strerror(rc));
    return rc < 0 ? rc : 0;
}
