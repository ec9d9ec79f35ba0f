/* cmd_models_pull.c — `sidetrack models pull NAME@ALIAS DIR`: copies a version's files out of
 * the store, verified.
 *
 * The files are the run's artifacts under the version's source path; their content is the
 * store's blobs (store_blob_path), named by their SHA-256. Each file is hashed while it is
 * copied and must match the hash the store lists for it; then the manifest of what was
 * written ("<sha256>  <path>" lines sorted by path, what `sha256sum` prints) must hash to
 * the digest recorded when the version was registered. Either check failing removes what
 * this pull wrote (files, and folders it made) and exits 1: a folder is either a verified
 * copy of the version or not there. Files are written under temporary names and renamed
 * only when all of them and the manifest checked out, so that a failed pull with --force
 * leaves what was in DIR as it was. The manifest is left in DIR/MANIFEST.sha256, so that
 * `sha256sum -c MANIFEST.sha256` checks the copy later with standard tools.
 */
#include "cmd_models.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_NAME "MANIFEST.sha256"
#define TMP_SUFFIX ".sidetrack-pull"
#define PROGRESS_MIN_BYTES (8u << 20) /* a pull smaller than this says nothing on the way */

struct pull {
    const char *dir;
    bool force;
    struct store_mv mv;
    struct models_ref ref;
    struct models_files files;
    /* what this pull made, for the removal when it fails: each file is written under a
     * temporary name (tmp_files[i]), renamed to final_files[i] once everything checked out,
     * so that a failed pull with --force leaves the files that were there as they were */
    struct cli_strv tmp_files, final_files, made_dirs;
    size_t renamed;
    /* the manifest, as sha256sum prints it */
    char *manifest;
    size_t mlen, mcap;
    uint64_t copied;
    bool progress;
};

static void pull_free(struct pull *p)
{
    models_files_free(&p->files);
    cli_strv_free(&p->tmp_files);
    cli_strv_free(&p->final_files);
    cli_strv_free(&p->made_dirs);
    free(p->manifest);
}

/* Removes what this pull wrote: files, then folders deepest first (made in order, so the
 * reverse order has children before parents). */
static void undo(struct pull *p)
{
    for (size_t i = p->tmp_files.n; i-- > 0;)
        unlink(i < p->renamed ? p->final_files.v[i] : p->tmp_files.v[i]);
    for (size_t i = p->made_dirs.n; i-- > 0;)
        rmdir(p->made_dirs.v[i]);
}

static int track_file(struct pull *p, const char *tmp, const char *final)
{
    int r = cli_strv_add(&p->tmp_files, tmp);
    if (r == 0 && (r = cli_strv_add(&p->final_files, final)) < 0)
        free(p->tmp_files.v[--p->tmp_files.n]);
    return r;
}

/* Gives every file its own name, once all of them checked out. */
static int rename_all(struct pull *p)
{
    for (; p->renamed < p->tmp_files.n; p->renamed++)
        if (rename(p->tmp_files.v[p->renamed], p->final_files.v[p->renamed]) < 0) {
            cli_error("cannot rename %s to %s: %s", p->tmp_files.v[p->renamed],
                      p->final_files.v[p->renamed], strerror(errno));
            return CLI_FAIL;
        }
    return CLI_OK;
}

/* A relative path with no empty, "." or ".." component: a store's artifact path (checked
 * by the client when logged, but a server's store takes them from the network too) must not
 * write outside DIR. */
static bool safe_rel(const char *rel)
{
    if (!*rel || *rel == '/')
        return false;
    for (const char *s = rel; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += n;
        if (*s == '/')
            s++;
        if (!*s && s[-1] == '/')
            return false;
    }
    return true;
}

static int mkdir_tracked(struct pull *p, const char *path)
{
    if (mkdir(path, 0777) == 0)
        return cli_strv_add(&p->made_dirs, path);
    if (errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Makes the folders above path (which is DIR/rel) inside DIR. */
static int make_parents(struct pull *p, char *path)
{
    size_t base = strlen(p->dir);
    for (char *s = path + base + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        int r = mkdir_tracked(p, path);
        *s = '/';
        if (r < 0)
            return r;
    }
    return 0;
}

/* DIR: made (with its parents) when missing; else it must be an empty folder, or --force. */
static int prepare_dir(struct pull *p)
{
    struct stat st;
    if (stat(p->dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            cli_error("%s exists and is not a folder", p->dir);
            return CLI_FAIL;
        }
        DIR *d = opendir(p->dir);
        if (!d) {
            cli_error("cannot read %s: %s", p->dir, strerror(errno));
            return CLI_FAIL;
        }
        bool empty = true;
        for (struct dirent *e; empty && (e = readdir(d));)
            empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
        closedir(d);
        if (!empty && !p->force) {
            cli_error("%s is not empty: pull into a new or empty folder, or add --force to "
                      "write over what is there",
                      p->dir);
            return CLI_FAIL;
        }
        return CLI_OK;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/", p->dir) >= sizeof path) {
        cli_error("%s: name too long", p->dir);
        return CLI_FAIL;
    }
    /* each missing component, so that a failed pull removes exactly what it made */
    int r = 0;
    for (char *s = path + 1; !r && (s = strchr(s, '/')); s++) {
        *s = '\0';
        r = mkdir_tracked(p, path);
        *s = '/';
    }
    if (r < 0) {
        cli_error("cannot create %s: %s", p->dir, strerror(-r));
        undo(p);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ---- copying ---- */

static void show_progress(struct pull *p, bool done)
{
    if (!p->progress)
        return;
    char a[32], b[32];
    fprintf(stderr, "\rpulling %s: %s of %s MiB%s", p->ref.name,
            format_count(p->copied >> 20, a, sizeof a),
            format_count(p->files.bytes >> 20, b, sizeof b), done ? "\n" : "");
}

/* Copies blob to dest, hashing what it reads; the hash in sha. */
static int copy_hashed(struct pull *p, int in, int out, uint8_t sha[32], uint64_t *size)
{
    static unsigned char buf[1 << 16];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int r = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : -ENOMEM;
    *size = 0;
    uint64_t last = p->copied;
    while (r == 0) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR && !cli_stop_signal)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
            r = -EIO;
        else
            r = cli_write_all(out, buf, (size_t)n);
        *size += (uint64_t)n;
        p->copied += (uint64_t)n;
        if (p->copied - last >= (4u << 20)) {
            show_progress(p, false);
            last = p->copied;
        }
    }
    unsigned int len = 32;
    if (r == 0 && !EVP_DigestFinal_ex(ctx, sha, &len))
        r = -EIO;
    EVP_MD_CTX_free(ctx);
    return r;
}

static int pull_file(struct cli *c, struct pull *p, const struct models_file *f)
{
    char blob[4096], dest[8192];
    if (!safe_rel(f->rel) || strcmp(f->rel, MANIFEST_NAME) == 0) {
        cli_error("cannot pull '%s': a file of the model may not be named so (it would be "
                  "written outside %s, or over its manifest)",
                  f->rel, p->dir);
        return CLI_FAIL;
    }
    int r = store_blob_path(c->store, f->a.sha256, blob, sizeof blob);
    if (r < 0)
        return cli_store_error(r, "cannot locate the content of %s", f->a.path);
    if ((size_t)snprintf(dest, sizeof dest, "%s/%s", p->dir, f->rel) >= sizeof dest) {
        cli_error("%s/%s: name too long", p->dir, f->rel);
        return CLI_FAIL;
    }
    if ((r = make_parents(p, dest)) < 0) {
        cli_error("cannot create the folders of %s: %s", dest, strerror(-r));
        return CLI_FAIL;
    }
    int in = open(blob, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT)
            cli_error("the content of %s is not in this store (%s is missing): it has not "
                      "arrived yet, or was removed",
                      f->a.path, blob);
        else
            cli_error("cannot read %s, the content of %s: %s", blob, f->a.path,
                      strerror(errno));
        return CLI_FAIL;
    }
    char tmp[8300];
    snprintf(tmp, sizeof tmp, "%s" TMP_SUFFIX, dest);
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (out < 0) {
        cli_error("cannot create %s: %s", tmp, strerror(errno));
        close(in);
        return CLI_FAIL;
    }
    if (track_file(p, tmp, dest) < 0) {
        close(in);
        close(out);
        unlink(tmp);
        return cli_store_error(-ENOMEM, "cannot pull %s", f->rel);
    }
    uint8_t sha[32];
    uint64_t size;
    r = copy_hashed(p, in, out, sha, &size);
    close(in);
    if (close(out) < 0 && r == 0)
        r = -errno;
    if (r < 0) {
        if (!cli_stop_signal)
            cli_error("cannot copy %s from %s to %s: %s", f->a.path, blob, dest, strerror(-r));
        return CLI_FAIL;
    }
    if (memcmp(sha, f->a.sha256, 32) != 0 || size != f->a.size) {
        char want[65], got[65];
        format_hex(f->a.sha256, 32, want);
        format_hex(sha, 32, got);
        cli_error("the store's copy of %s is damaged: %s holds %" PRIu64 " bytes with SHA-256 "
                  "%s, but the artifact was logged as %" PRIu64 " bytes with %s; nothing was "
                  "pulled",
                  f->a.path, blob, size, got, f->a.size, want);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ---- the manifest ---- */

static int manifest_add(struct pull *p, const char *s, size_t n)
{
    while (p->mlen + n + 1 > p->mcap) {
        size_t cap = p->mcap ? 2 * p->mcap : 4096;
        char *m = realloc(p->manifest, cap);
        if (!m)
            return -ENOMEM;
        p->manifest = m;
        p->mcap = cap;
    }
    memcpy(p->manifest + p->mlen, s, n);
    p->mlen += n;
    return 0;
}

/* One line as sha256sum prints it: names with \, newline or CR start the line with '\' and
 * have those escaped (coreutils >= 9), as store_mv_digest does. */
static int manifest_line(struct pull *p, const struct models_file *f)
{
    char hex[65];
    bool esc = strpbrk(f->rel, "\\\n\r") != NULL;
    format_hex(f->a.sha256, 32, hex);
    int r = esc ? manifest_add(p, "\\", 1) : 0;
    if (r == 0)
        r = manifest_add(p, hex, 64);
    if (r == 0)
        r = manifest_add(p, "  ", 2);
    for (const char *s = f->rel; r == 0 && *s; s++) {
        const char *e = !esc ? NULL : *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                                    : *s == '\r' ? "\\r" : NULL;
        r = e ? manifest_add(p, e, 2) : manifest_add(p, s, 1);
    }
    return r == 0 ? manifest_add(p, "\n", 1) : r;
}

static int check_and_write_manifest(struct pull *p)
{
    for (size_t i = 0; i < p->files.n; i++)
        if (manifest_line(p, &p->files.v[i]) < 0)
            return cli_store_error(-ENOMEM, "cannot make the manifest");
    uint8_t md[32];
    unsigned int len = 32;
    char hex[65];
    if (!EVP_Digest(p->manifest, p->mlen, md, &len, EVP_sha256(), NULL))
        return cli_store_error(-EIO, "cannot hash the manifest");
    format_hex(md, 32, hex);
    if (*p->mv.digest && strcmp(hex, p->mv.digest) != 0) {
        cli_error("the files of model '%s' version %" PRIu64 " do not match its digest: "
                  "recorded %s, the files in the store now make %s (artifacts were added or "
                  "changed under %s after it was registered); nothing was pulled",
                  p->mv.name, p->mv.version, p->mv.digest, hex, p->mv.source);
        return CLI_FAIL;
    }
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", p->dir, MANIFEST_NAME);
    snprintf(tmp, sizeof tmp, "%s" TMP_SUFFIX, path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        cli_error("cannot create %s: %s", tmp, strerror(errno));
        return CLI_FAIL;
    }
    if (track_file(p, tmp, path) < 0) {
        close(fd);
        unlink(tmp);
        return cli_store_error(-ENOMEM, "cannot write %s", path);
    }
    int r = cli_write_all(fd, p->manifest, p->mlen);
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r < 0) {
        cli_error("cannot write %s: %s", path, strerror(-r));
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ---- the command ---- */

static int gather(struct cli *c, const char *spec, const char *version, struct pull *p)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    int rc = models_resolve(t, "models pull", spec, version, true, &p->ref, &p->mv);
    if (rc == CLI_OK)
        rc = models_files_load(t, &p->mv, &p->files);
    store_abort(t);
    return rc;
}

static int pull(struct cli *c, struct pull *p)
{
    if (prepare_dir(p) != CLI_OK)
        return CLI_FAIL;
    p->progress = isatty(STDERR_FILENO) && p->files.bytes >= PROGRESS_MIN_BYTES;
    int rc = CLI_OK;
    for (size_t i = 0; rc == CLI_OK && i < p->files.n; i++)
        rc = pull_file(c, p, &p->files.v[i]);
    if (rc == CLI_OK)
        rc = check_and_write_manifest(p);
    if (rc == CLI_OK)
        rc = rename_all(p);
    show_progress(p, true);
    if (rc != CLI_OK)
        undo(p);
    return rc;
}

static void pull_usage(FILE *f)
{
    fputs("Usage: sidetrack models pull NAME@ALIAS|NAME/VERSION DIR [--force]\n"
          "       sidetrack models pull NAME VERSION DIR [--force]\n"
          "\n"
          "Copies the files of a model version (the run's artifacts under its source path)\n"
          "into DIR, made when missing. Each file is checked against its SHA-256 while it is\n"
          "copied, and the whole against the digest recorded at registration; on a mismatch\n"
          "what was written is removed and the exit status is 1. DIR/MANIFEST.sha256 lists\n"
          "the files as sha256sum does: `cd DIR && sha256sum -c MANIFEST.sha256` checks them\n"
          "again later.\n"
          "\n"
          "Options:\n"
          "      --force     write into a DIR that is not empty (files of the same name are\n"
          "                  replaced, once every file checked out)\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n",
          f);
}

static int run_pull(struct cli *c, const struct models_cmd *x, const struct models_args *e)
{
    const char *dir = e->pos[e->n - 1], *version = e->n == 3 ? e->pos[1] : NULL;
    if (!*dir)
        return cli_usage_error(x->syntax.cmd, "DIR is empty");
    struct pull *p = calloc(1, sizeof *p);
    if (!p)
        return cli_store_error(-ENOMEM, "cannot pull");
    p->dir = dir;
    p->force = e->force;
    int rc = gather(c, e->pos[0], version, p);
    if (rc == CLI_OK)
        rc = pull(c, p);
    if (rc == CLI_OK) {
        char count[32];
        fputs("pulled model '", stdout);
        print_text(stdout, p->mv.name);
        printf("' version %" PRIu64 "%s%s%s: %zu file%s, %s bytes into ", p->mv.version,
               *p->ref.alias ? " (@" : "", p->ref.alias, *p->ref.alias ? ")" : "",
               p->files.n, p->files.n == 1 ? "" : "s",
               format_count(p->files.bytes, count, sizeof count));
        print_text(stdout, dir);
        if (*p->mv.digest)
            printf("; digest %.12s verified\n", p->mv.digest);
        else
            printf("; each file verified (the version has no digest recorded)\n");
    }
    pull_free(p);
    free(p);
    return rc;
}

static const struct cli_option pull_opts[] = {
    CLI_COMMON_OPTIONS, {"force", 'f', false, MODELS_OPT_FORCE}, {0}};
const struct models_cmd models_pull_cmd = {{"models pull", pull_opts, pull_usage, 3},
                                           {"NAME@ALIAS and DIR", "DIR"}, NULL, run_pull};
