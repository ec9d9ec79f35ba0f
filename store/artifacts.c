/* artifacts.c — artifact references and the content-addressed blob directory.
 *
 * References: DB_ARTIFACTS maps run (16) + path to sha256 (32) + size (u64 LE). LMDB keys stop
 * at 511 bytes, so a path longer than PATH_INLINE is keyed by its first PATH_INLINE bytes and
 * the SHA-256 of the whole path, and the full path is appended to the value.
 *
 * Blobs: DIR/artifacts/ab/<64 hex>, named by the SHA-256 of their content, immutable once
 * there. Ingest hashes while copying into DIR/artifacts/tmp/, fsyncs, renames into place and
 * fsyncs the directory, so a blob is either complete or absent. With move, a file that is on
 * the same file system and has no other link is hashed in place and renamed (no copy); a file
 * with other hard links (the client's spool links the user's own file) is copied, so that a
 * later edit of the user's file cannot change a stored blob. An existing blob is kept.
 * Temporary files that a crash left in tmp/ are removed when a writer opens the store (only
 * those older than an hour, in case another process is ingesting right then).
 */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_INLINE 448 /* 16 + 448 + 32 <= 511 */
#define REF_LEN 40
#define IO_CHUNK (256 * 1024)

static int art_key(uint8_t *k, const uint8_t run[16], const char *path, size_t n)
{
    memcpy(k, run, 16);
    if (n <= PATH_INLINE + 32) {
        memcpy(k + 16, path, n);
        return (int)(16 + n);
    }
    memcpy(k + 16, path, PATH_INLINE);
    unsigned int hl = 32;
    if (!EVP_Digest(path, n, k + 16 + PATH_INLINE, &hl, EVP_sha256(), NULL))
        return -EIO;
    return 16 + PATH_INLINE + 32;
}

int store_artifact_put(struct store_txn *t, const uint8_t run[16], const char *path,
                       const uint8_t sha256[32], uint64_t size)
{
    int rc = st_writable(t);
    if (rc)
        return rc;
    size_t n = path ? strnlen(path, sizeof ((struct store_artifact *)0)->path) : 0;
    if (n == 0 || !sha256)
        return -EINVAL;
    if (n >= sizeof ((struct store_artifact *)0)->path)
        return -ENAMETOOLONG;
    uint8_t k[ST_MAX_KEY];
    int kl = art_key(k, run, path, n);
    if (kl < 0)
        return kl;
    uint8_t v[REF_LEN + sizeof ((struct store_artifact *)0)->path];
    memcpy(v, sha256, 32);
    st_le64(v + 32, size);
    size_t vl = REF_LEN;
    if ((size_t)kl - 16 != n) {
        memcpy(v + REF_LEN, path, n);
        vl += n;
    }
    if ((rc = store_run_touch(t, run)) < 0)
        return rc;
    if ((rc = st_put(t, DB_ARTIFACTS, k, (size_t)kl, v, vl, 0)) < 0 || !st_journaling(t))
        return rc;
    struct store_op op = {.type = STORE_OP_ARTIFACT, .key = path, .size = size};
    memcpy(op.run, run, 16);
    memcpy(op.sha256, sha256, 32);
    return st_journal_put(t, &op);
}

struct art_ctx {
    int (*cb)(const struct store_artifact *a, void *arg);
    void *arg;
    struct store_artifact a;
};

static int art_one(const MDB_val *k, const MDB_val *v, void *arg)
{
    struct art_ctx *c = arg;
    struct store_artifact *a = &c->a;
    size_t kn = k->mv_size - 16;
    const uint8_t *vp = v->mv_data;
    if (kn == 0 || v->mv_size < REF_LEN)
        return -EBADMSG;
    const void *path = (const uint8_t *)k->mv_data + 16;
    size_t pn = kn;
    if (v->mv_size > REF_LEN) { /* long path: the full one is in the value */
        path = vp + REF_LEN;
        pn = v->mv_size - REF_LEN;
    }
    if (pn >= sizeof a->path || memchr(path, 0, pn))
        return -EBADMSG;
    memcpy(a->path, path, pn);
    a->path[pn] = '\0';
    memcpy(a->sha256, vp, 32);
    a->size = st_rd_le64(vp + 32);
    return c->cb(a, c->arg);
}

int store_artifacts_foreach(struct store_txn *t, const uint8_t run[16],
                            int (*cb)(const struct store_artifact *a, void *arg), void *arg)
{
    struct art_ctx *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->cb = cb;
    c->arg = arg;
    int rc = st_prefix_foreach(t, DB_ARTIFACTS, run, 16, art_one, c);
    free(c);
    return rc;
}

/* ---- blobs ---- */

int store_blob_path(const struct store *s, const uint8_t sha256[32], char *buf, size_t len)
{
    char hex[65];
    st_hex(sha256, 32, hex);
    int n = snprintf(buf, len, "%s/artifacts/%.2s/%s", s->dir, hex, hex);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int store_blob_upload_path(const struct store *s, const uint8_t sha256[32], bool create,
                           char *buf, size_t len)
{
    if (create) {
        static const char *const sub[] = {"artifacts", "artifacts/incoming"};
        for (int i = 0; i < 2; i++) {
            if ((size_t)snprintf(buf, len, "%s/%s", s->dir, sub[i]) >= len)
                return -ENAMETOOLONG;
            if (mkdir(buf, 0750) < 0 && errno != EEXIST)
                return -errno;
        }
    }
    char hex[65];
    st_hex(sha256, 32, hex);
    int n = snprintf(buf, len, "%s/artifacts/incoming/%s.part", s->dir, hex);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int io_err(struct store *s, int e)
{
    if (e == ENOSPC)
        atomic_store_explicit(&s->map_full, false, memory_order_relaxed);
    return -e;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Reads fd to the end, hashing, and copies to out when out >= 0. */
static int hash_copy(struct store *s, int fd, int out, uint8_t sha[32], uint64_t *size)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = malloc(IO_CHUNK);
    int rc = 0;
    uint64_t total = 0;
    if (!ctx || !buf || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, IO_CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)n)) {
            rc = -EIO;
            goto out;
        }
        total += (uint64_t)n;
        for (ssize_t off = 0; out >= 0 && off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                rc = io_err(s, errno);
                goto out;
            }
            off += w;
        }
    }
    unsigned int hl = 32;
    if (!EVP_DigestFinal_ex(ctx, sha, &hl))
        rc = -EIO;
    *size = total;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

/* Makes DIR/artifacts/ab and fills path (the blob) and dir (its directory). */
static int blob_dirs(struct store *s, const uint8_t sha[32], char *path, char *dir)
{
    int rc = store_blob_path(s, sha, path, PATH_MAX);
    if (rc)
        return rc;
    size_t n = strlen(path) - 65; /* strip "/<64 hex>" */
    memcpy(dir, path, n);
    dir[n] = '\0';
    if (mkdir(dir, 0755) == 0) {
        /* a new shard directory: make its entry in artifacts/ durable too */
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        rc = fsync_dir(dir);
        *slash = '/';
        return rc;
    }
    return errno == EEXIST ? 0 : io_err(s, errno);
}

int store_blob_ingest(struct store *s, const char *src, bool move, uint8_t sha256[32],
                      uint64_t *size)
{
    if (s->flags & STORE_RDONLY)
        return -EROFS;
    if (!src || !sha256 || !size)
        return -EINVAL;
    int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
    int rc;

    /* move within the file system: hash in place, rename */
    struct stat ast;
    char adir[PATH_MAX];
    snprintf(adir, sizeof adir, "%s/artifacts", s->dir);
    if (move && st.st_nlink == 1 && stat(adir, &ast) == 0 && ast.st_dev == st.st_dev) {
        rc = hash_copy(s, fd, -1, sha256, size);
        if (rc == 0 && fsync(fd) < 0)
            rc = io_err(s, errno);
        close(fd);
        if (rc == 0)
            rc = blob_dirs(s, sha256, path, dir);
        if (rc)
            return rc;
        if (access(path, F_OK) == 0) {
            if (unlink(src) < 0)
                return -errno;
            return 0;
        }
        if (rename(src, path) == 0) {
            chmod(path, 0444);
            return fsync_dir(dir);
        }
        if (errno != EXDEV)
            return -errno;
        if ((fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
            return -errno;
    }

    /* copy into tmp/, hashing on the way */
    snprintf(tmp, sizeof tmp, "%s/artifacts/tmp/ingest.XXXXXX", s->dir);
    int out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0) {
        rc = io_err(s, errno);
        close(fd);
        return rc;
    }
    rc = hash_copy(s, fd, out, sha256, size);
    close(fd);
    if (rc == 0 && fsync(out) < 0)
        rc = io_err(s, errno);
    if (rc == 0 && fchmod(out, 0444) < 0)
        rc = -errno;
    if (close(out) < 0 && rc == 0)
        rc = io_err(s, errno);
    if (rc == 0)
        rc = blob_dirs(s, sha256, path, dir);
    if (rc == 0) {
        if (access(path, F_OK) == 0) {
            unlink(tmp);
        } else if (rename(tmp, path) < 0) {
            rc = -errno;
        } else {
            rc = fsync_dir(dir);
        }
    }
    if (rc) {
        unlink(tmp);
        return rc;
    }
    if (move && unlink(src) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

void st_blob_tmp_clean(struct store *s)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/artifacts/tmp", s->dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    time_t old = time(NULL) - 3600;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strncmp(e->d_name, "ingest.", 7) != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode) && st.st_mtime < old)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}
