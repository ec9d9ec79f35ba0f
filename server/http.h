/* http.h — sidetrack-server's HTTP(S) front: libmicrohttpd (GnuTLS for TLS) with a small
 * router, bearer-token authentication and helpers for JSON (jansson) and file responses.
 *
 * Why libmicrohttpd: Debian's, maintained by GNU, HTTP/1.1 keep-alive, TLS through GnuTLS,
 * a thread pool, and no framework around it: the handlers stay plain C over the store.
 *
 * Threads: handlers run on the daemon's pool threads (several at once). They may use the
 * store freely (read txns are per thread; write txns serialise inside LMDB: use
 * store_update() for writes so that a full map is grown safely).
 *
 * Authentication: tokens are files NAME.token (one line, the token) in a directory (default
 * DATA/tokens.d, read again when it changes), made by `sidetrack keys token NAME`. A request
 * carries "Authorization: Bearer TOKEN" or Basic auth with user NAME and password TOKEN (what
 * MLflow's clients send for MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD).
 * A route says whether it needs a token; a request that needs one and has none or a wrong one
 * gets 401 with an MLflow-style JSON error and is never handed to the handler. */
#ifndef SIDETRACK_SERVER_HTTP_H
#define SIDETRACK_SERVER_HTTP_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_server;

struct http_options {
    const char *listen;      /* "127.0.0.1:5000", "[::1]:5000", ":5000" (all addresses) */
    const char *tls_cert;    /* PEM files; both NULL: plain HTTP */
    const char *tls_key;
    const char *tokens_dir;  /* NAME.token files; NULL: no token is valid */
    const char *spool_dir;   /* where streamed request bodies are written (must exist) */
    unsigned threads;        /* 0: 4 */
    size_t max_body;         /* largest body kept in memory; 0: 64 MiB */
};

struct http_req {
    const char *method;      /* "GET", "POST", ... */
    const char *path;        /* without the query string, percent-decoded */
    const char *subpath;     /* path after the route's prefix */
    const uint8_t *body;     /* in-memory body (NUL-terminated; body_len excludes the NUL) */
    size_t body_len;
    const char *body_file;   /* HTTP_STREAM routes: the body in a spool file (the handler may
                              * rename it away; else it is removed after the response) */
    uint64_t body_file_len;
    const char *identity;    /* the token's NAME when one was given and valid, else NULL */
    void *conn;              /* the MHD connection, for the helpers below */
};

struct http_resp {
    int status;              /* 200 when the handler leaves it 0 */
    char content_type[64];
    uint8_t *body;           /* malloc'd; the framework frees it */
    size_t len;
    int fd;                  /* >= 0: send [fd_off, fd_off + fd_len) of this file (closed after) */
    uint64_t fd_off, fd_len;
    char headers[512];       /* extra header lines "Name: value\r\n", e.g. Retry-After */
};

typedef void (*http_handler)(const struct http_req *req, struct http_resp *resp, void *arg);

enum http_route_flags {
    HTTP_EXACT = 1u << 0,     /* the path must equal the pattern (else: prefix match) */
    HTTP_AUTH = 1u << 1,      /* a valid token is required */
    HTTP_STREAM = 1u << 2,    /* the body goes to a spool file, whatever its size */
};

/* Makes the server (reads the certificate, key and tokens); nothing listens yet: add the
 * routes, then http_listen(). */
int http_start(struct http_server **h, const struct http_options *o);
/* Starts accepting connections (-EADDRNOTAVAIL: the address is taken or not ours, or the
 * certificate or key is not valid PEM). */
int http_listen(struct http_server *h);
/* Routes are matched in the order added; method NULL matches any method. The first route whose
 * method and path match handles the request; none matching: 404 (405 when only the method
 * differs) with an MLflow-style JSON error. Add them all before http_listen(). */
int http_route(struct http_server *h, const char *method, const char *pattern, unsigned flags,
               http_handler fn, void *arg);
/* Makes every route need a token (the MLflow API "protected" by configuration). */
void http_require_auth_everywhere(struct http_server *h, bool on);
void http_stop(struct http_server *h);
/* The port actually bound (useful with port 0). */
unsigned http_port(const struct http_server *h);

/* Request helpers. The query's first value of name, or NULL. */
const char *http_query(const struct http_req *req, const char *name);
/* Every value of a repeated query parameter, in order; cb's nonzero return stops the walk. */
int http_query_foreach(const struct http_req *req, const char *name,
                       int (*cb)(const char *value, void *arg), void *arg);
const char *http_header(const struct http_req *req, const char *name);
/* The request's JSON body (an object), or for GET the query string as an object whose values
 * are strings (arrays for parameters given more than once): MLflow's GET endpoints take the
 * same fields as query parameters. NULL (and resp set to 400 INVALID_PARAMETER_VALUE /
 * BAD_REQUEST) when the body is not a JSON object. The caller json_decref()s it. */
json_t *http_params(const struct http_req *req, struct http_resp *resp);

/* Response helpers. json is stolen (decref'd). */
void http_resp_json(struct http_resp *resp, int status, json_t *json);
void http_resp_bytes(struct http_resp *resp, int status, const char *content_type,
                     const void *data, size_t len);
/* MLflow's error shape: {"error_code": code, "message": ...}. */
void http_resp_error(struct http_resp *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void http_resp_verror(struct http_resp *resp, int status, const char *code, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));
void http_resp_header(struct http_resp *resp, const char *name, const char *value);

#endif
