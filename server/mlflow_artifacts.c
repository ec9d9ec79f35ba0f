/* mlflow_artifacts.c — artifacts: the tracking API's artifacts/list and MLflow's artifacts
 * proxy (mlflow_artifacts.proto), which MLflow's clients use when a run's artifact_uri is
 * mlflow-artifacts:/<experiment_id>/<run_id>/artifacts (what runs/create gives here):
 *   GET    /api/2.0/mlflow-artifacts/artifacts?path=<exp>/<run>/artifacts[/dir]   list
 *   GET    /api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/artifacts/<path>       download
 *   PUT    /api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/artifacts/<path>       upload
 *   DELETE (same)                                  refused: the store cannot delete content
 * Content is kept by the store, by its SHA-256 (store_blob_ingest): an upload is streamed by
 * the HTTP front into a spool file next to the blobs, which becomes the blob by a rename; a
 * download is the blob's file, sent by the front without a copy in memory. The run keeps
 * path -> (hash, size) (store_artifact_put), as for artifacts that agents replicate. */
#include "mlflow_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- listing ---------------------------------------------------------------------------- */

struct listing {
    const char *dir;   /* "" for the root */
    size_t dlen;
    bool full_paths;   /* tracking API: paths from the root; proxy: names in dir */
    json_t *files;     /* name -> entry, to merge a directory's many files into one entry */
    int rc;
};

static int list_one(const struct store_artifact *a, void *arg)
{
    struct listing *l = arg;
    const char *rest = a->path;
    if (l->dlen) {
        if (strncmp(a->path, l->dir, l->dlen) != 0 || a->path[l->dlen] != '/')
            return 0;
        rest = a->path + l->dlen + 1;
    }
    const char *slash = strchr(rest, '/');
    size_t nlen = slash ? (size_t)(slash - rest) : strlen(rest);
    char name[1100];
    if (l->full_paths && l->dlen)
        snprintf(name, sizeof name, "%s/%.*s", l->dir, (int)nlen, rest);
    else
        snprintf(name, sizeof name, "%.*s", (int)nlen, rest);
    if (json_object_get(l->files, name))
        return 0;
    json_t *e = json_pack("{s:o, s:b}", "path", mf_jstr(name), "is_dir", slash != NULL);
    if (!slash)
        json_object_set_new(e, "file_size", json_integer((json_int_t)a->size));
    return json_object_set_new(l->files, name, e) ? -ENOMEM : 0;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "path")),
                  json_string_value(json_object_get(*(json_t *const *)b, "path")));
}

/* The entries of dir in run id, sorted by path; NULL (request failed) on a store error. */
static json_t *list_dir(struct mf *m, struct store_txn *t, const uint8_t id[16], const char *dir,
                        bool full_paths)
{
    struct listing l = {.dir = dir, .dlen = strlen(dir), .full_paths = full_paths,
                        .files = json_object()};
    int rc = store_artifacts_foreach(t, id, list_one, &l);
    if (rc < 0) {
        json_decref(l.files);
        mf_store_error(m, rc, "artifacts");
        return NULL;
    }
    size_t n = json_object_size(l.files), i = 0;
    json_t **v = malloc((n + 1) * sizeof *v), *arr = json_array();
    const char *k;
    json_t *e;
    json_object_foreach(l.files, k, e)
        v[i++] = e;
    if (v) {
        qsort(v, n, sizeof *v, cmp_entry);
        for (i = 0; i < n; i++)
            json_array_append(arr, v[i]);
    }
    free(v);
    json_decref(l.files);
    return arr;
}

/* The listing's answer: body with its "files" (left out when there are none, as MLflow does). */
static void reply_files(struct mf *m, json_t *body, json_t *files)
{
    if (json_array_size(files))
        json_object_set_new(body, "files", files);
    else
        json_decref(files);
    mf_ok(m, body);
}

void mf_list_artifacts(struct mf *m)
{
    const char *hex, *path = "";
    struct store_txn *t;
    struct store_run r;
    if (!mf_run_field(m, &hex))
        return;
    mf_str(m, "path", false, &path);
    if (m->failed)
        return;
    if (!path)
        path = "";
    if (!mf_check_artifact_path(m, path, true) || !mf_begin_read(m, &t))
        return;
    if (mf_get_run(m, t, hex, &r)) {
        json_t *files = list_dir(m, t, r.id, path, true);
        if (files) {
            char uri[96];
            snprintf(uri, sizeof uri, "mlflow-artifacts:/%" PRIu64 "/%s/artifacts",
                     r.experiment_id, hex);
            reply_files(m, json_pack("{s:s}", "root_uri", uri), files);
        }
    }
    store_abort(t);
}

/* ---- the proxy ---------------------------------------------------------------------------- */

/* "<exp>/<run>/artifacts[/<rest>]": the run (which must be in that experiment) and rest. */
static bool proxy_target(struct mf *m, struct store_txn *t, const char *p, struct store_run *r,
                         const char **rest)
{
    char exp[72], hex[72];
    const char *s1 = strchr(p, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || !s2 || (size_t)(s1 - p) >= sizeof exp || (size_t)(s2 - s1 - 1) >= sizeof hex ||
        strncmp(s2 + 1, "artifacts", 9) != 0 || (s2[10] != '\0' && s2[10] != '/')) {
        mf_invalid(m, "Invalid artifact path '%.300s': expected <experiment_id>/<run_id>/artifacts"
                   "[/<path>], as in the run's artifact_uri", p);
        return false;
    }
    snprintf(exp, sizeof exp, "%.*s", (int)(s1 - p), p);
    snprintf(hex, sizeof hex, "%.*s", (int)(s2 - s1 - 1), s1 + 1);
    uint64_t eid;
    if (!mf_exp_id(m, exp, &eid) || !mf_get_run(m, t, hex, r))
        return false;
    if (r->experiment_id != eid) {
        mf_missing_resource(m, "Run with id=%s not found in experiment %s", hex, exp);
        return false;
    }
    *rest = s2[10] == '/' ? s2 + 11 : "";
    return true;
}

static void proxy_list(struct mf *m)
{
    const char *path = NULL, *rest;
    struct store_txn *t;
    struct store_run r;
    mf_str(m, "path", false, &path);
    if (m->failed)
        return;
    if (!path || !*path) {
        mf_invalid(m, "Listing needs path=<experiment_id>/<run_id>/artifacts[/<dir>]: this "
                   "server keeps artifacts per run");
        return;
    }
    while (*path == '/')
        path++;
    if (!mf_begin_read(m, &t))
        return;
    if (proxy_target(m, t, path, &r, &rest) && mf_check_artifact_path(m, rest, true)) {
        json_t *files = list_dir(m, t, r.id, rest, false);
        if (files)
            reply_files(m, json_object(), files);
    }
    store_abort(t);
}

struct find {
    const char *path;
    struct store_artifact a;
    bool found;
};

static int find_one(const struct store_artifact *a, void *arg)
{
    struct find *f = arg;
    if (strcmp(a->path, f->path) != 0)
        return 0;
    f->a = *a;
    f->found = true;
    return 1;
}

/* MLflow serves artifacts as attachments with a type guessed from the name; types that a
 * browser would run (HTML, SVG, scripts) go out as text/plain. */
static const char *mime_type(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        {".json", "application/json"}, {".png", "image/png"},   {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},       {".gif", "image/gif"},   {".bmp", "image/bmp"},
        {".webp", "image/webp"},       {".pdf", "application/pdf"},
        {".gz", "application/gzip"},   {".zip", "application/zip"},
        {".tar", "application/x-tar"}, {".txt", "text/plain"},  {".log", "text/plain"},
        {".md", "text/plain"},         {".yaml", "text/plain"}, {".yml", "text/plain"},
        {".csv", "text/plain"},        {".tsv", "text/plain"},  {".py", "text/plain"},
        {".html", "text/plain"},       {".htm", "text/plain"},  {".svg", "text/plain"},
        {".js", "text/plain"},         {".xml", "text/plain"},  {".ini", "text/plain"},
    };
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (!strcmp(base, "MLmodel") || !strcmp(base, "MLproject"))
        return "text/plain";
    const char *dot = strrchr(base, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (!strcasecmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

static void send_artifact(struct mf *m, struct store_txn *t, const struct store_run *r,
                          const char *path)
{
    struct find f = {.path = path};
    int rc = store_artifacts_foreach(t, r->id, find_one, &f);
    if (rc < 0) {
        mf_store_error(m, rc, "artifacts");
        return;
    }
    char hex[33], blob[4096];
    store_run_id_hex(r->id, hex);
    if (!f.found) {
        mf_missing_resource(m, "No artifact '%s' in run %s", path, hex);
        return;
    }
    int fd = -1;
    struct stat st;
    if (store_blob_path(m->s, f.a.sha256, blob, sizeof blob) < 0 ||
        (fd = open(blob, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        /* a reference whose content has not arrived yet (an agent still uploading it) */
        mf_missing_resource(m, "The content of artifact '%s' of run %s is not on this server "
                            "(yet)", path, hex);
        return;
    }
    struct http_resp *resp = m->resp;
    resp->status = 200;
    resp->fd = fd;
    resp->fd_off = 0;
    resp->fd_len = (uint64_t)st.st_size;
    snprintf(resp->content_type, sizeof resp->content_type, "%s", mime_type(path));
    const char *base = strrchr(path, '/');
    char disp[300];
    int n = snprintf(disp, sizeof disp, "attachment; filename=\"");
    for (const char *p = base ? base + 1 : path; *p && n < 280; p++)
        disp[n++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f) ? '_'
                                                                                        : *p;
    snprintf(disp + n, sizeof disp - (size_t)n, "\"");
    http_resp_header(resp, "Content-Disposition", disp);
    http_resp_header(resp, "X-Content-Type-Options", "nosniff");
}

static void proxy_download(struct mf *m)
{
    const char *rest;
    struct store_txn *t;
    struct store_run r;
    if (!mf_begin_read(m, &t))
        return;
    if (proxy_target(m, t, m->req->subpath, &r, &rest) && mf_check_artifact_path(m, rest, false))
        send_artifact(m, t, &r, rest);
    store_abort(t);
}

/* MLflow UI's download: /get-artifact?run_uuid=...&path=... */
static void ui_get_artifact(struct mf *m)
{
    const char *hex, *path;
    struct store_txn *t;
    struct store_run r;
    if ((!mf_str(m, "run_uuid", false, &hex) && !m->failed && !mf_str(m, "run_id", true, &hex)) ||
        m->failed || !mf_str(m, "path", true, &path) || !mf_check_artifact_path(m, path, false) ||
        !mf_begin_read(m, &t))
        return;
    if (mf_get_run(m, t, hex, &r))
        send_artifact(m, t, &r, path);
    store_abort(t);
}

struct put_op {
    uint8_t id[16];
    const char *path;
    uint8_t sha[32];
    uint64_t size;
};

static int put_tx(struct store_txn *t, void *arg)
{
    struct put_op *o = arg;
    struct store_run r;
    int rc = mf_run_writable(t, o->id, &r);
    if (rc < 0)
        return rc;
    return store_artifact_put(t, o->id, o->path, o->sha, o->size);
}

static void proxy_upload(struct mf *m)
{
    struct put_op o;
    struct store_txn *t;
    struct store_run r;
    char hex[33];
    if (!mf_begin_read(m, &t))
        return;
    bool ok = proxy_target(m, t, m->req->subpath, &r, &o.path) &&
              mf_check_artifact_path(m, o.path, false);
    store_abort(t);
    if (!ok)
        return;
    memcpy(o.id, r.id, 16);
    store_run_id_hex(r.id, hex);
    if (!m->req->body_file) {
        mf_error(m, 400, "BAD_REQUEST", "the upload's body did not arrive");
        return;
    }
    /* the spool file is on the blobs' file system: keeping it is a rename */
    int rc = store_blob_ingest(m->s, m->req->body_file, true, o.sha, &o.size);
    if (rc < 0) {
        mf_store_error(m, rc, "cannot keep the upload");
        return;
    }
    rc = mf_update(m, put_tx, &o);
    if (rc == -ENOENT)
        mf_missing_resource(m, "Run with id=%s not found", hex);
    else if (rc == MF_REFUSED)
        mf_invalid(m, "The run %s must be in the 'active' state. Current state is deleted.", hex);
    else if (rc >= 0)
        mf_ok(m, NULL);
    mf_update_failed(m, rc);
}

static void proxy_delete(struct mf *m)
{
    mf_error(m, 501, "NOT_IMPLEMENTED",
             "Deleting artifacts is not supported: this server keeps artifact content by its "
             "hash, shared between runs, and has no delete");
}

int mf_artifacts_register(struct http_server *h, struct store *s)
{
    static const char *const prefixes[] = {"/api/2.0/mlflow-artifacts/artifacts",
                                           "/ajax-api/2.0/mlflow-artifacts/artifacts"};
    int rc = 0;
    for (size_t p = 0; p < 2 && rc == 0; p++) {
        char sub[128];
        snprintf(sub, sizeof sub, "%s/", prefixes[p]);
        if ((rc = mf_route_add(h, "GET", prefixes[p], HTTP_EXACT, proxy_list, 0, s)) < 0 ||
            (rc = mf_route_add(h, "GET", sub, 0, proxy_download, MF_RAW, s)) < 0 ||
            (rc = mf_route_add(h, "PUT", sub, HTTP_STREAM, proxy_upload, MF_RAW, s)) < 0 ||
            (rc = mf_route_add(h, "DELETE", sub, 0, proxy_delete, MF_RAW, s)) < 0)
            break;
    }
    if (rc == 0)
        rc = mf_route_add(h, "GET", "/get-artifact", HTTP_EXACT, ui_get_artifact, 0, s);
    return rc;
}
