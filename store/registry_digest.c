/* registry_digest.c — where a model version's files are, and their content digest.
 *
 * A version's source names a directory (or one file) of a run's artifacts: runs:/<run>/<path>
 * or the artifact URI this server hands out, mlflow-artifacts:/<exp>/<run>/artifacts/<path>.
 * The digest is the SHA-256 of the manifest that `sha256sum` prints for those files, one line
 * "<sha256 hex>  <path relative to the model directory>\n" per file, sorted by relative path in
 * byte order. A user who pulled the files checks them with standard tools (docs/registry.md):
 *   cd DIR && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum
 * The file hashes are the ones the store already keeps for each artifact, so no content is
 * read here. Names that sha256sum escapes (a backslash, newline or carriage return) are
 * escaped the same way (coreutils >= 9: the line starts with '\', and \\ \n \r stand for
 * them), so that the manifest stays byte-identical.
 */
#include "registry.h"
#include "store_internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 32 hex digits followed by '/' or the end; copied lowercase. */
static int take_run(const char *s, char run_hex[33], const char **rest)
{
    for (int i = 0; i < 32; i++) {
        if (st_hexval(s[i]) < 0)
            return -EINVAL;
        run_hex[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
    }
    if (s[32] != '\0' && s[32] != '/')
        return -EINVAL;
    run_hex[32] = '\0';
    *rest = s[32] ? s + 33 : s + 32;
    return 0;
}

/* The model path: components that are neither empty, "." nor ".."; one trailing slash is
 * forgiven (MLflow clients sometimes add it). */
static int take_path(const char *p, char *path, size_t pathlen)
{
    size_t n = strlen(p);
    if (n && p[n - 1] == '/')
        n--;
    if (n + 1 > pathlen)
        return n ? -ENAMETOOLONG : -EINVAL;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && p[i] == '.') || (len == 2 && p[i] == '.' && p[i + 1] == '.'))
            return -EINVAL;
        i = j + 1;
    }
    memcpy(path, p, n);
    path[n] = '\0';
    return 0;
}

int store_mv_source_parse(const char *source, char run_hex[33], char *path, size_t pathlen)
{
    if (!source || !run_hex || !path || pathlen == 0)
        return -EINVAL;
    const char *rest;
    int rc;
    if (strncmp(source, "runs:/", 6) == 0) {
        if ((rc = take_run(source + 6, run_hex, &rest)) < 0)
            return rc;
        return take_path(rest, path, pathlen);
    }
    if (strncmp(source, "mlflow-artifacts:", 17) != 0)
        return -EINVAL;
    const char *p = source + 17;
    if (strncmp(p, "//", 2) == 0) { /* mlflow-artifacts://host:port/... names a server too */
        p = strchr(p + 2, '/');
        if (!p)
            return -EINVAL;
    }
    if (*p != '/')
        return -EINVAL;
    p++;
    const char *exp = p; /* the experiment id: digits */
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == exp || *p != '/')
        return -EINVAL;
    if ((rc = take_run(p + 1, run_hex, &rest)) < 0)
        return rc;
    if (strncmp(rest, "artifacts", 9) != 0 || (rest[9] != '\0' && rest[9] != '/'))
        return -EINVAL;
    return take_path(rest[9] ? rest + 10 : rest + 9, path, pathlen);
}

/* ---- the digest ------------------------------------------------------------------------ */

struct mf_line {
    char *rel;        /* relative path, as listed (unescaped) */
    uint8_t sha[32];
    uint64_t size;
};

struct gather {
    const char *dir;
    size_t dlen;
    struct mf_line *v;
    size_t n, cap;
};

static int gather_one(const struct store_artifact *a, void *arg)
{
    struct gather *g = arg;
    const char *rel;
    if (g->dlen == 0) {
        rel = a->path;
    } else if (strcmp(a->path, g->dir) == 0) {
        /* the model is one file: sha256sum in its folder prints its name */
        const char *slash = strrchr(a->path, '/');
        rel = slash ? slash + 1 : a->path;
    } else if (strncmp(a->path, g->dir, g->dlen) == 0 && a->path[g->dlen] == '/') {
        rel = a->path + g->dlen + 1;
    } else {
        return 0;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        struct mf_line *v = realloc(g->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        g->v = v;
        g->cap = cap;
    }
    char *copy = strdup(rel);
    if (!copy)
        return -ENOMEM;
    g->v[g->n].rel = copy;
    memcpy(g->v[g->n].sha, a->sha256, 32);
    g->v[g->n].size = a->size;
    g->n++;
    return 0;
}

static int cmp_rel(const void *a, const void *b)
{
    return strcmp(((const struct mf_line *)a)->rel, ((const struct mf_line *)b)->rel);
}

/* Feeds one manifest line as sha256sum writes it. */
static int feed_line(EVP_MD_CTX *ctx, const struct mf_line *l)
{
    char head[1 + 64 + 2];
    size_t h = 0;
    bool esc = strpbrk(l->rel, "\\\n\r") != NULL;
    if (esc)
        head[h++] = '\\';
    st_hex(l->sha, 32, head + h); /* its NUL lands where the first space goes */
    h += 64;
    head[h++] = ' ';
    head[h++] = ' ';
    if (!EVP_DigestUpdate(ctx, head, h))
        return -EIO;
    if (!esc)
        return EVP_DigestUpdate(ctx, l->rel, strlen(l->rel)) && EVP_DigestUpdate(ctx, "\n", 1)
                   ? 0 : -EIO;
    for (const char *c = l->rel; *c; c++) {
        const char *out = *c == '\\' ? "\\\\" : *c == '\n' ? "\\n" : *c == '\r' ? "\\r" : NULL;
        if (!(out ? EVP_DigestUpdate(ctx, out, 2) : EVP_DigestUpdate(ctx, c, 1)))
            return -EIO;
    }
    return EVP_DigestUpdate(ctx, "\n", 1) ? 0 : -EIO;
}

int store_mv_digest(struct store_txn *t, const uint8_t run[16], const char *path, char hex[65],
                    uint64_t *files, uint64_t *bytes)
{
    if (!t || !run || !hex)
        return -EINVAL;
    struct gather g = {.dir = path ? path : "", .dlen = path ? strlen(path) : 0};
    int rc = store_artifacts_foreach(t, run, gather_one, &g);
    if (rc >= 0 && g.n == 0)
        rc = -ENOENT;
    EVP_MD_CTX *ctx = NULL;
    uint64_t total = 0;
    if (rc >= 0) {
        qsort(g.v, g.n, sizeof *g.v, cmp_rel);
        ctx = EVP_MD_CTX_new();
        rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : -ENOMEM;
    }
    for (size_t i = 0; rc >= 0 && i < g.n; i++) {
        rc = feed_line(ctx, &g.v[i]);
        total += g.v[i].size;
    }
    uint8_t md[32];
    unsigned int mdlen = 32;
    if (rc >= 0 && !EVP_DigestFinal_ex(ctx, md, &mdlen))
        rc = -EIO;
    if (rc >= 0) {
        st_hex(md, 32, hex);
        if (files)
            *files = g.n;
        if (bytes)
            *bytes = total;
        rc = 0;
    }
    EVP_MD_CTX_free(ctx);
    for (size_t i = 0; i < g.n; i++)
        free(g.v[i].rel);
    free(g.v);
    return rc;
}
