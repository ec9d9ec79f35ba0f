/* http.c — the HTTP(S) front (see http.h): libmicrohttpd's thread pool, a router, tokens.
 *
 * A request's life: MHD calls the access handler once with the headers (we pick the route,
 * check the token and the declared size, and may answer at once: 401, 404, 413), then with
 * each piece of the body (kept in memory, or written to a spool file for HTTP_STREAM routes),
 * then once with nothing more: the handler runs and its response is queued in one piece.
 */
#include "http.h"

#include "log.h"
#include "netaddr.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUTES 256
#define MAX_TOKENS 1024
#define TOKEN_RELOAD_MS 1000
#define TOKEN_MISS_RELOAD_MS 100

struct route {
    char method[8]; /* "" for any */
    char pattern[128];
    size_t plen;
    unsigned flags;
    http_handler fn;
    void *arg;
};

struct token {
    char name[128];
    char secret[128];
};

struct http_server {
    struct MHD_Daemon *d;
    struct route routes[MAX_ROUTES];
    size_t nroutes;
    bool auth_everywhere;
    char *tokens_dir, *spool_dir;
    size_t max_body;
    char *cert, *key;
    unsigned port;
    pthread_mutex_t tok_mu;
    struct token *tokens;
    size_t ntokens;
    int64_t tok_checked_ms;
    struct sockaddr_storage addr;
    bool v6;
    unsigned threads;
};

/* Per request. */
struct request {
    struct http_server *h;
    const struct route *route;
    char identity[128];
    bool have_identity;
    uint8_t *body;
    size_t len, cap;
    int spool_fd;
    char spool[512];
    uint64_t spool_len;
    int fail; /* an HTTP status decided while the body arrived (413, 500) */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- tokens ---- */

/* Compares without an early exit, so that timing does not tell how much of a guess was right. */
static bool secret_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0 && la > 0;
}

/* Reads the folder again (at most once a second, from token_check). Every time, not only when
 * the folder's mtime moved: a token file written in place after it was created changes the
 * file, not the folder. A few small files a second cost nothing. */
static void tokens_load(struct http_server *h)
{
    DIR *dir = h->tokens_dir ? opendir(h->tokens_dir) : NULL;
    if (!dir) {
        h->ntokens = 0;
        return;
    }
    struct token *nt = calloc(MAX_TOKENS, sizeof *nt);
    size_t n = 0;
    struct dirent *e;
    while (nt && (e = readdir(dir)) && n < MAX_TOKENS) {
        size_t l = strlen(e->d_name);
        if (l <= 6 || strcmp(e->d_name + l - 6, ".token") != 0 || l - 6 >= sizeof nt[n].name)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", h->tokens_dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char line[256] = "";
        if (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n \t")] = '\0';
            if (strlen(line) >= 16 && strlen(line) < sizeof nt[n].secret) {
                memcpy(nt[n].name, e->d_name, l - 6);
                snprintf(nt[n].secret, sizeof nt[n].secret, "%s", line);
                n++;
            }
        }
        fclose(f);
    }
    closedir(dir);
    if (!nt)
        return;
    bool changed = n != h->ntokens || !h->tokens ||
                   memcmp(nt, h->tokens, n * sizeof *nt) != 0;
    if (h->tokens)
        explicit_bzero(h->tokens, MAX_TOKENS * sizeof *h->tokens);
    free(h->tokens);
    h->tokens = nt;
    h->ntokens = n;
    if (changed)
        server_log("info", "%zu token%s in %s", n, n == 1 ? "" : "s", h->tokens_dir);
}

/* The name of the token, when secret is one of them. */
static bool token_find(struct http_server *h, const char *secret, const char *want_name,
                       char *name, size_t cap)
{
    bool ok = false;
    for (size_t i = 0; i < h->ntokens; i++) {
        bool match = secret_eq(secret, h->tokens[i].secret);
        if (match && (!want_name || !strcmp(want_name, h->tokens[i].name))) {
            snprintf(name, cap, "%s", h->tokens[i].name);
            ok = true;
        }
    }
    return ok;
}

static bool token_check(struct http_server *h, const char *secret, const char *want_name,
                        char *name, size_t cap)
{
    pthread_mutex_lock(&h->tok_mu);
    int64_t now = mono_ms();
    if (now - h->tok_checked_ms >= TOKEN_RELOAD_MS) {
        h->tok_checked_ms = now;
        tokens_load(h);
    }
    bool ok = token_find(h, secret, want_name, name, cap);
    if (!ok && now - h->tok_checked_ms >= TOKEN_MISS_RELOAD_MS) {
        /* A token made a moment ago (an agent started right after its token) should not wait
         * for the next reload; misses reload at most ten times a second. */
        h->tok_checked_ms = now;
        tokens_load(h);
        ok = token_find(h, secret, want_name, name, cap);
    }
    pthread_mutex_unlock(&h->tok_mu);
    return ok;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static size_t b64_decode(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64val((unsigned char)*in);
        if (v < 0)
            return 0;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return 0;
            out[n++] = (char)(acc >> bits & 0xff);
        }
    }
    out[n] = '\0';
    return n;
}

/* Bearer TOKEN, or Basic NAME:TOKEN. */
static void authenticate(struct request *rq, struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a)
        return;
    if (!strncasecmp(a, "Bearer ", 7)) {
        rq->have_identity = token_check(rq->h, a + 7, NULL, rq->identity, sizeof rq->identity);
    } else if (!strncasecmp(a, "Basic ", 6)) {
        char dec[512];
        if (!b64_decode(a + 6, dec, sizeof dec))
            return;
        char *colon = strchr(dec, ':');
        if (!colon)
            return;
        *colon = '\0';
        rq->have_identity = token_check(rq->h, colon + 1, dec, rq->identity, sizeof rq->identity);
        explicit_bzero(dec, sizeof dec);
    }
}

/* ---- routes ---- */

int http_route(struct http_server *h, const char *method, const char *pattern, unsigned flags,
               http_handler fn, void *arg)
{
    if (h->nroutes == MAX_ROUTES)
        return -ENOSPC;
    if (strlen(pattern) >= sizeof h->routes[0].pattern || (method && strlen(method) >= 8))
        return -ENAMETOOLONG;
    struct route *r = &h->routes[h->nroutes++];
    snprintf(r->method, sizeof r->method, "%s", method ? method : "");
    snprintf(r->pattern, sizeof r->pattern, "%s", pattern);
    r->plen = strlen(pattern);
    r->flags = flags;
    r->fn = fn;
    r->arg = arg;
    return 0;
}

void http_require_auth_everywhere(struct http_server *h, bool on) { h->auth_everywhere = on; }

static bool path_match(const struct route *r, const char *url)
{
    if (r->flags & HTTP_EXACT)
        return strcmp(url, r->pattern) == 0;
    return strncmp(url, r->pattern, r->plen) == 0;
}

static const struct route *route_find(struct http_server *h, const char *method, const char *url,
                                      bool *method_differs)
{
    *method_differs = false;
    for (size_t i = 0; i < h->nroutes; i++) {
        const struct route *r = &h->routes[i];
        if (!path_match(r, url))
            continue;
        if (!r->method[0] || !strcmp(r->method, method))
            return r;
        *method_differs = true;
    }
    return NULL;
}

/* ---- responses ---- */

void http_resp_bytes(struct http_resp *resp, int status, const char *content_type,
                     const void *data, size_t len)
{
    free(resp->body);
    resp->body = malloc(len ? len : 1);
    resp->len = resp->body ? len : 0;
    if (resp->body && len)
        memcpy(resp->body, data, len);
    resp->status = resp->body ? status : 500;
    snprintf(resp->content_type, sizeof resp->content_type, "%s", content_type);
}

void http_resp_json(struct http_resp *resp, int status, json_t *json)
{
    char *s = json ? json_dumps(json, JSON_COMPACT) : NULL;
    json_decref(json);
    if (!s) {
        http_resp_bytes(resp, 500, "application/json",
                        "{\"error_code\":\"INTERNAL_ERROR\",\"message\":\"out of memory\"}", 57);
        return;
    }
    free(resp->body);
    resp->body = (uint8_t *)s;
    resp->len = strlen(s);
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
}

void http_resp_verror(struct http_resp *resp, int status, const char *code, const char *fmt,
                      va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    http_resp_json(resp, status, json_pack("{s:s, s:s}", "error_code", code, "message", msg));
}

void http_resp_error(struct http_resp *resp, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_resp_verror(resp, status, code, fmt, ap);
    va_end(ap);
}

void http_resp_header(struct http_resp *resp, const char *name, const char *value)
{
    size_t l = strlen(resp->headers);
    snprintf(resp->headers + l, sizeof resp->headers - l, "%s: %s\r\n", name, value);
}

static enum MHD_Result queue(struct MHD_Connection *c, struct http_resp *resp)
{
    struct MHD_Response *r;
    if (resp->fd >= 0) {
        r = MHD_create_response_from_fd_at_offset64(resp->fd_len, resp->fd, resp->fd_off);
        if (!r)
            close(resp->fd);
    } else {
        r = MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
        if (r)
            resp->body = NULL; /* MHD owns it now */
    }
    free(resp->body);
    resp->body = NULL;
    if (!r)
        return MHD_NO;
    if (resp->content_type[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    for (char *line = resp->headers; *line;) {
        char *end = strstr(line, "\r\n");
        if (!end)
            break;
        *end = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            MHD_add_response_header(r, line, colon + 1 + (colon[1] == ' '));
        }
        line = end + 2;
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)(resp->status ? resp->status : 200), r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer_error(struct MHD_Connection *c, int status, const char *code,
                                    const char *msg, const char *extra_header)
{
    struct http_resp resp = {.fd = -1};
    http_resp_error(&resp, status, code, "%s", msg);
    if (extra_header)
        snprintf(resp.headers, sizeof resp.headers, "%s\r\n", extra_header);
    return queue(c, &resp);
}

/* ---- requests ---- */

const char *http_query(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct qwalk {
    const char *name;
    int (*cb)(const char *value, void *arg);
    void *arg;
    int rc;
};

static enum MHD_Result qwalk_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    struct qwalk *w = cls;
    if (strcmp(key, w->name) != 0)
        return MHD_YES;
    w->rc = w->cb(value ? value : "", w->arg);
    return w->rc ? MHD_NO : MHD_YES;
}

int http_query_foreach(const struct http_req *req, const char *name,
                       int (*cb)(const char *value, void *arg), void *arg)
{
    struct qwalk w = {name, cb, arg, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, qwalk_one, &w);
    return w.rc;
}

const char *http_header(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result query_to_json(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    json_t *o = cls;
    json_t *v = json_string(value ? value : "");
    if (!v)
        return MHD_YES; /* not UTF-8: left out, the handler finds the field missing */
    json_t *old = json_object_get(o, key);
    if (!old) {
        json_object_set_new(o, key, v);
    } else if (json_is_array(old)) {
        json_array_append_new(old, v);
    } else {
        json_t *a = json_array();
        json_array_append(a, old);
        json_array_append_new(a, v);
        json_object_set_new(o, key, a);
    }
    return MHD_YES;
}

json_t *http_params(const struct http_req *req, struct http_resp *resp)
{
    if (!strcmp(req->method, "GET") || (!req->body_len && !req->body_file)) {
        json_t *o = json_object();
        if (o)
            MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_to_json, o);
        else
            http_resp_error(resp, 500, "INTERNAL_ERROR", "out of memory");
        return o;
    }
    json_error_t e;
    json_t *o = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!o) {
        http_resp_error(resp, 400, "MALFORMED_REQUEST",
                        "the request body is not valid JSON: %s (line %d, column %d)", e.text,
                        e.line, e.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        http_resp_error(resp, 400, "MALFORMED_REQUEST", "the request body must be a JSON object");
        return NULL;
    }
    return o;
}

static void set_nodelay(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)socket_context;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int one = 1;
    /* A response goes out as one write; without NODELAY a small one can wait for an ACK. */
    if (ci)
        setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void request_free(struct request *rq)
{
    if (!rq)
        return;
    if (rq->spool_fd >= 0)
        close(rq->spool_fd);
    if (rq->spool[0])
        unlink(rq->spool); /* the handler renamed it away if it kept it */
    free(rq->body);
    free(rq);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    request_free(*con_cls);
    *con_cls = NULL;
}

static int spool_open(struct request *rq)
{
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
        return -EIO;
    snprintf(rq->spool, sizeof rq->spool, "%s/http-%02x%02x%02x%02x%02x%02x%02x%02x.part",
             rq->h->spool_dir, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    rq->spool_fd = open(rq->spool, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (rq->spool_fd < 0) {
        rq->spool[0] = '\0';
        return -errno;
    }
    return 0;
}

static int body_add(struct request *rq, const char *data, size_t n)
{
    if (rq->route->flags & HTTP_STREAM) {
        if (rq->spool_fd < 0 && spool_open(rq) < 0)
            return 500;
        for (size_t off = 0; off < n;) {
            ssize_t w = write(rq->spool_fd, data + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return errno == ENOSPC ? 507 : 500;
            off += (size_t)w;
        }
        rq->spool_len += n;
        return 0;
    }
    if (rq->len + n > rq->h->max_body)
        return 413;
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 4096;
        while (cap < rq->len + n + 1)
            cap *= 2;
        uint8_t *nb = realloc(rq->body, cap);
        if (!nb)
            return 500;
        rq->body = nb;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = '\0';
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct http_server *h = cls;
    struct request *rq = *con_cls;
    if (!rq) {
        /* The headers are in: decide everything that does not need the body. */
        bool method_differs;
        const struct route *r = route_find(h, method, url, &method_differs);
        if (!r && h->auth_everywhere) {
            /* A protected server does not tell strangers which paths exist. */
            struct request probe = {.h = h};
            authenticate(&probe, c);
            if (!probe.have_identity)
                return answer_error(c, 401, "UNAUTHENTICATED",
                                    "this server needs a token (Authorization: Bearer)",
                                    "WWW-Authenticate: Bearer realm=\"sidetrack\"");
        }
        if (!r) {
            char msg[600];
            snprintf(msg, sizeof msg, method_differs ? "%s is not allowed on %.500s"
                                                     : "no endpoint %s %.500s",
                     method, url);
            return answer_error(c, method_differs ? 405 : 404,
                                method_differs ? "BAD_REQUEST" : "ENDPOINT_NOT_FOUND", msg, NULL);
        }
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        rq->h = h;
        rq->route = r;
        rq->spool_fd = -1;
        authenticate(rq, c);
        if (((r->flags & HTTP_AUTH) || h->auth_everywhere) && !rq->have_identity) {
            bool given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
            request_free(rq);
            return answer_error(c, 401, "UNAUTHENTICATED",
                                given ? "the token is not valid here"
                                      : "this endpoint needs a token (Authorization: Bearer)",
                                "WWW-Authenticate: Bearer realm=\"sidetrack\"");
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && !(r->flags & HTTP_STREAM) && strtoull(cl, NULL, 10) > h->max_body) {
            request_free(rq);
            return answer_error(c, 413, "INVALID_PARAMETER_VALUE",
                                "the request body is larger than this server accepts", NULL);
        }
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!rq->fail)
            rq->fail = body_add(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->fail)
        return answer_error(c, rq->fail, rq->fail == 413 ? "INVALID_PARAMETER_VALUE"
                                                         : "INTERNAL_ERROR",
                            rq->fail == 413   ? "the request body is larger than this server "
                                                "accepts"
                            : rq->fail == 507 ? "the server's disk is full"
                                              : "the request body could not be kept",
                            NULL);
    if ((rq->route->flags & HTTP_STREAM) && rq->spool_fd < 0 && spool_open(rq) < 0)
        return answer_error(c, 500, "INTERNAL_ERROR", "the request body could not be kept", NULL);
    if (rq->spool_fd >= 0) {
        if (fsync(rq->spool_fd) != 0 || close(rq->spool_fd) != 0) {
            rq->spool_fd = -1;
            return answer_error(c, 500, "INTERNAL_ERROR", "the request body could not be kept",
                                NULL);
        }
        rq->spool_fd = -1;
    }
    struct http_req req = {
        .method = method,
        .path = url,
        .subpath = url + (rq->route->flags & HTTP_EXACT ? strlen(url) : rq->route->plen),
        .body = rq->body ? rq->body : (const uint8_t *)"",
        .body_len = rq->len,
        .body_file = rq->spool[0] ? rq->spool : NULL,
        .body_file_len = rq->spool_len,
        .identity = rq->have_identity ? rq->identity : NULL,
        .conn = c,
    };
    struct http_resp resp = {.fd = -1};
    rq->route->fn(&req, &resp, rq->route->arg);
    if (!resp.body && resp.fd < 0 && !resp.status)
        http_resp_bytes(&resp, 200, "application/json", "{}", 2);
    return queue(c, &resp);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    server_log("warning", "http: %s", msg);
}

static char *slurp(const char *path, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = -errno;
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                *err = -ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

int http_start(struct http_server **out, const struct http_options *o)
{
    *out = NULL;
    struct sockaddr_storage ss;
    bool v6;
    int r = netaddr_parse_listen(o->listen, &ss, &v6);
    if (r < 0)
        return r;
    if (!o->tls_cert != !o->tls_key)
        return -EINVAL;
    struct http_server *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    pthread_mutex_init(&h->tok_mu, NULL);
    h->max_body = o->max_body ? o->max_body : 64u << 20;
    h->tokens_dir = o->tokens_dir ? strdup(o->tokens_dir) : NULL;
    h->spool_dir = strdup(o->spool_dir ? o->spool_dir : "/tmp");
    if (o->tls_cert) {
        if (!(h->cert = slurp(o->tls_cert, &r)) || !(h->key = slurp(o->tls_key, &r))) {
            http_stop(h);
            return r;
        }
    }
    pthread_mutex_lock(&h->tok_mu);
    tokens_load(h);
    h->tok_checked_ms = mono_ms();
    pthread_mutex_unlock(&h->tok_mu);
    h->threads = o->threads ? o->threads : 4;
    h->addr = ss;
    h->v6 = v6;
    *out = h;
    return 0;
}

int http_listen(struct http_server *h)
{
    if (h->d)
        return -EALREADY;
    bool v6 = h->v6;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0) | (h->cert ? MHD_USE_TLS : 0);
    unsigned threads = h->threads;
    /* Request lines and headers of 16 KB and more: MLflow's clients send long query strings.
     * MHD keeps them in the connection's memory pool, so give each connection 256 KiB. */
    size_t conn_mem = 256u << 10;
    struct MHD_OptionItem tls[] = {
        {h->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->cert},
        {h->cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->key},
        {MHD_OPTION_END, 0, NULL},
    };
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&h->addr,
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, conn_mem,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_NOTIFY_CONNECTION, set_nodelay, NULL,
                            MHD_OPTION_ARRAY, tls,
                            MHD_OPTION_END);
    if (!h->d)
        return -EADDRNOTAVAIL;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    return 0;
}

unsigned http_port(const struct http_server *h) { return h->port; }

void http_stop(struct http_server *h)
{
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    if (h->tokens)
        explicit_bzero(h->tokens, MAX_TOKENS * sizeof *h->tokens);
    free(h->tokens);
    if (h->key)
        explicit_bzero(h->key, strlen(h->key));
    free(h->key);
    free(h->cert);
    free(h->tokens_dir);
    free(h->spool_dir);
    pthread_mutex_destroy(&h->tok_mu);
    free(h);
}
