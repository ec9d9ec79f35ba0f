/* web.c — static files for the web UI, and the read-only guard (see web.h).
 *
 * Files are sent straight from disk (the fd goes to libmicrohttpd), with an ETag made of the
 * file's size and modification time and a Last-Modified date. "Cache-Control: no-cache" makes
 * browsers revalidate each time, so that a new web/ is seen at once, while an unchanged file
 * costs a 304 and no body.
 *
 * Paths: only segments of letters, digits, '-', '_' and '.', none starting with '.', are
 * served; anything else (.., hidden files, backslashes, empty segments) is a 404, so that no
 * request reaches outside the web root. Symbolic links inside the root are followed (a
 * packager may link web/ files to shared copies); only a regular file is sent. */
#include "web.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef WEB_INSTALLED_ROOT
#define WEB_INSTALLED_ROOT "/usr/local/share/sidetrack/web"
#endif

const char *web_default_root(char *buf, size_t len)
{
#if defined(WEB_BUILD_ROOT) && defined(WEB_SOURCE_ROOT)
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    size_t bl = strlen(WEB_BUILD_ROOT);
    if (n > 0) {
        exe[n] = '\0';
        if (!strncmp(exe, WEB_BUILD_ROOT, bl) && exe[bl] == '/') {
            snprintf(buf, len, "%s", WEB_SOURCE_ROOT);
            return buf;
        }
    }
#endif
    snprintf(buf, len, "%s", WEB_INSTALLED_ROOT);
    return buf;
}

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},   {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},     {".json", "application/json"},
    {".png", "image/png"},                   {".svg", "image/svg+xml"},
    {".ico", "image/x-icon"},                {".txt", "text/plain; charset=utf-8"},
    {".md", "text/plain; charset=utf-8"},    {".map", "application/json"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

/* A relative path made of safe segments only (see the top comment). */
static bool safe_path(const char *p)
{
    if (!*p || strlen(p) > 256)
        return false;
    for (const char *seg = p; *seg;) {
        if (*seg == '.' || *seg == '/')
            return false; /* hidden, "..", or an empty segment */
        const char *end = seg;
        for (; *end && *end != '/'; end++) {
            char ch = *end;
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
                return false;
        }
        seg = *end ? end + 1 : end;
        if (*end && !*seg)
            return false; /* a trailing slash */
    }
    return true;
}

static void not_found(struct http_resp *resp, const char *what)
{
    http_resp_error(resp, 404, "ENDPOINT_NOT_FOUND", "No such file in the web UI: %s", what);
}

static void send_file(const struct http_req *req, struct http_resp *resp, const char *file,
                      const char *shown)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        not_found(resp, shown);
        return;
    }
    char etag[64], date[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx.%lx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
    struct tm tm;
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    http_resp_header(resp, "ETag", etag);
    http_resp_header(resp, "Last-Modified", date);
    http_resp_header(resp, "Cache-Control", "no-cache");
    http_resp_header(resp, "X-Content-Type-Options", "nosniff");
    const char *inm = http_header(req, "If-None-Match");
    const char *ims = http_header(req, "If-Modified-Since");
    if ((inm && strstr(inm, etag)) || (!inm && ims && !strcmp(ims, date))) {
        close(fd);
        resp->status = 304;
        return;
    }
    snprintf(resp->content_type, sizeof resp->content_type, "%s", content_type(file));
    resp->status = 200;
    resp->fd = fd;
    resp->fd_off = 0;
    resp->fd_len = (uint64_t)st.st_size;
}

static void on_index(const struct http_req *req, struct http_resp *resp, void *arg)
{
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/index.html", (const char *)arg);
    send_file(req, resp, file, "index.html");
}

static void on_chartjs(const struct http_req *req, struct http_resp *resp, void *arg)
{
    send_file(req, resp, WEB_CHARTJS_PATH, "vendor/chart.min.js (install Debian's libjs-chart.js)");
}

static void on_static(const struct http_req *req, struct http_resp *resp, void *arg)
{
    char file[PATH_MAX];
    if (!safe_path(req->subpath)) {
        not_found(resp, req->subpath);
        return;
    }
    snprintf(file, sizeof file, "%s/%s", (const char *)arg, req->subpath);
    send_file(req, resp, file, req->subpath);
}

int web_register(struct http_server *h, const char *root)
{
    char index[PATH_MAX];
    snprintf(index, sizeof index, "%s/index.html", root);
    if (access(index, R_OK) != 0)
        return -errno;
    /* The routes use it for the process's life (one web root per process). */
    static char kept[PATH_MAX];
    if (strlen(root) >= sizeof kept)
        return -ENAMETOOLONG;
    snprintf(kept, sizeof kept, "%s", root);
    int rc;
    if ((rc = http_route(h, "GET", "/", HTTP_EXACT, on_index, kept)) < 0 ||
        (rc = http_route(h, "GET", "/static/vendor/chart.min.js", HTTP_EXACT, on_chartjs,
                         NULL)) < 0 ||
        (rc = http_route(h, "GET", "/static/", 0, on_static, kept)) < 0)
        return rc;
    return 0;
}

/* ---- read-only mode ----------------------------------------------------------------------- */

static void on_readonly(const struct http_req *req, struct http_resp *resp, void *arg)
{
    http_resp_error(resp, 403, "PERMISSION_DENIED",
                    "This server is read-only (--read-only): %s %s is not allowed", req->method,
                    req->path);
}

/* MLflow's writes. runs/search and experiments/search are POSTs too but only read, so the
 * guard names the writes one by one rather than every POST. */
static const char *const write_paths[] = {
    "experiments/create", "experiments/update", "experiments/delete", "experiments/restore",
    "experiments/set-experiment-tag", "experiments/delete-experiment-tag", "runs/create",
    "runs/update", "runs/delete", "runs/restore", "runs/log-batch", "runs/log-metric",
    "runs/log-parameter", "runs/set-tag", "runs/delete-tag", "runs/log-inputs",
    "runs/log-model", "runs/log-outputs",
};

int web_readonly_register(struct http_server *h)
{
    static const char *const api[] = {"/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"};
    static const char *const art[] = {"/api/2.0/mlflow-artifacts/artifacts/",
                                      "/ajax-api/2.0/mlflow-artifacts/artifacts/"};
    int rc = 0;
    for (size_t p = 0; p < 2 && rc == 0; p++) {
        for (size_t i = 0; i < sizeof write_paths / sizeof *write_paths && rc == 0; i++) {
            char path[128];
            snprintf(path, sizeof path, "%s%s", api[p], write_paths[i]);
            rc = http_route(h, "POST", path, HTTP_EXACT, on_readonly, NULL);
        }
        if (rc == 0)
            rc = http_route(h, "PUT", art[p], 0, on_readonly, NULL);
        if (rc == 0)
            rc = http_route(h, "DELETE", art[p], 0, on_readonly, NULL);
    }
    if (rc == 0)
        rc = http_route(h, "POST", "/api/sidetrack/v1/sync", HTTP_EXACT, on_readonly, NULL);
    return rc;
}
