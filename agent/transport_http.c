/* transport_http.c — frames over HTTPS with libcurl (see transport.h).
 *
 * Each frame is the body of a POST to BASE/api/sidetrack/v1/sync with "Authorization: Bearer
 * TOKEN"; the reply frame is the response body. One easy handle serves every request, so the
 * TCP and TLS connection is kept alive and reused (HTTP/2 when the server offers it over TLS,
 * HTTP/1.1 otherwise). Certificate and host name are always verified: --ca names a private CA,
 * else the system's store is used. Plain http:// exists for loopback tests; anywhere else it
 * needs --insecure-http, since the token would cross the network in the clear.
 *
 * send() does the whole request and keeps the reply for the next recv(), so the window is one
 * frame: replies cannot be reordered or lost behind a newer request. */
#include "transport.h"

#include "http_client.h"
#include "keys.h"
#include "protocol.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SYNC_PATH "/api/sidetrack/v1/sync"
#define CONNECT_TIMEOUT_MS 5000
#define RETRY_AFTER_MAX_MS 300000

struct http_transport {
    struct transport t;
    CURL *curl;
    struct curl_slist *headers;
    char token_file[1024], ca_file[1024];
    char errbuf[CURL_ERROR_SIZE];
    /* the response being received, then the reply kept for recv(); too_big: it was larger
     * than any frame */
    struct http_sink resp;
    bool reply_pending;
};

/* The "message" of the server's JSON error body, else the start of the body as text. */
static void error_message(const struct http_transport *h, char *out, size_t outlen)
{
    const uint8_t *body = h->resp.buf.data;
    size_t len = h->resp.buf.len;
    out[0] = 0;
    json_t *j = len ? json_loadb((const char *)body, len, 0, NULL) : NULL;
    const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
    if (msg)
        snprintf(out, outlen, "%s", msg);
    json_decref(j);
    if (msg || !len)
        return;
    size_t n = len < outlen - 1 ? len : outlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = body[i];
        out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
    }
    out[n] = 0;
}

static int link_error(struct http_transport *h, CURLcode cc)
{
    struct transport *t = &h->t;
    const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        snprintf(t->error, sizeof t->error,
                 "TLS: the server's certificate is not trusted (%.90s)%s%.70s%s", why,
                 h->ca_file[0] ? "; was it signed by the CA in " : "",
                 h->ca_file[0] ? h->ca_file : "", h->ca_file[0] ? " (--ca)?" : "");
        return -EPROTO;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(t->error, sizeof t->error, "%s", why);
        return -ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        snprintf(t->error, sizeof t->error, "%s", why);
        return -ECONNREFUSED;
    case CURLE_WRITE_ERROR:
        if (h->resp.too_big) {
            snprintf(t->error, sizeof t->error, "a response larger than any frame");
            return -EMSGSIZE;
        }
        /* fall through */
    default:
        snprintf(t->error, sizeof t->error, "%s", why);
        return cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -ECONNRESET;
    }
}

static int ht_send(struct transport *tp, const uint8_t *frame, size_t len)
{
    struct http_transport *h = (struct http_transport *)tp;
    http_sink_reset(&h->resp);
    h->reply_pending = false;
    h->errbuf[0] = 0;
    tp->retry_after_ms = 0;
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, (const char *)frame);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode cc = curl_easy_perform(h->curl);
    if (cc != CURLE_OK)
        return link_error(h, cc);
    long status = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200 && h->resp.buf.len) {
        h->reply_pending = true;
        return 0;
    }
    char msg[160];
    error_message(h, msg, sizeof msg);
    if (status == 401 || status == 403) {
        snprintf(tp->error, sizeof tp->error,
                 "the server refused the token in %.100s: %.100s (HTTP %ld)", h->token_file,
                 msg[0] ? msg : "no reason given", status);
        return -EACCES;
    }
    if (status == 413) {
        snprintf(tp->error, sizeof tp->error, "the server takes no frame of %zu bytes (HTTP 413)",
                 len);
        return -EMSGSIZE;
    }
    if (status >= 500 || status == 429) {
        tp->retry_after_ms = http_retry_after_ms(h->curl, RETRY_AFTER_MAX_MS);
        snprintf(tp->error, sizeof tp->error, "the server is busy or failing: HTTP %ld%s%s",
                 status, msg[0] ? ", " : "", msg);
        return -EAGAIN;
    }
    snprintf(tp->error, sizeof tp->error, "unexpected HTTP %ld from the server%s%s (is %s a "
             "sidetrack-server?)", status, msg[0] ? ": " : "", msg, SYNC_PATH);
    return -EPROTO;
}

static int ht_recv(struct transport *tp, int timeout_ms, const uint8_t **frame, size_t *len)
{
    struct http_transport *h = (struct http_transport *)tp;
    if (h->reply_pending) {
        h->reply_pending = false;
        *frame = h->resp.buf.data;
        *len = h->resp.buf.len;
        return 1;
    }
    /* Nothing can come unasked: wait as a socket with nothing to read would, since callers
     * use this wait as their idle sleep. */
    if (timeout_ms > 0) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void ht_close(struct transport *tp)
{
    struct http_transport *h = (struct http_transport *)tp;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    sync_buf_free(&h->resp.buf);
    free(h);
    curl_global_cleanup();
}

static const struct transport_ops http_ops = {ht_send, ht_recv, ht_close};

static bool host_is_loopback(const char *host)
{
    return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "[::1]") ||
           !strcmp(host, "::1");
}

/* BASE + SYNC_PATH, checked: http(s) only, plain http on loopback only (unless insecure). */
static int sync_url(const struct transport_config *c, char **url, bool *tls, char *err,
                    size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *path = NULL;
    int rc = -EINVAL;
    if (!u || curl_url_set(u, CURLUPART_URL, c->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, errlen, "server address %s: not a URL (https://HOST:PORT)", c->url);
        goto out;
    }
    *tls = !strcmp(scheme, "https");
    if (!*tls && !host_is_loopback(host) && !c->insecure_http) {
        snprintf(err, errlen, "server address %s: plain http would send the token in the clear; "
                              "use https:// (or --insecure-http on a network you trust)", c->url);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        path = NULL;
    char full[2048];
    size_t plen = path ? strlen(path) : 0;
    while (plen && path[plen - 1] == '/') /* a base behind a proxy: https://host/sidetrack/ */
        plen--;
    snprintf(full, sizeof full, "%.*s%s", (int)plen, path ? path : "", SYNC_PATH);
    if (curl_url_set(u, CURLUPART_PATH, full, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(err, errlen, "server address %s: not a URL (https://HOST:PORT)", c->url);
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

static int read_token(const struct transport_config *c, char tok[SYNC_TOKEN_LEN + 1], char *err,
                      size_t errlen)
{
    if (!c->token_file) {
        snprintf(err, errlen, "%s needs --server-token FILE (a token made by 'sidetrack keys "
                              "token NAME', also in the server's tokens directory)", c->url);
        return -EINVAL;
    }
    int rc = sync_token_read(c->token_file, tok);
    if (rc < 0)
        snprintf(err, errlen, "server token %s: %s", c->token_file,
                 rc == -EPERM     ? "others may read it: chmod 600 it"
                 : rc == -EBADMSG ? "not a token made by 'sidetrack keys token'"
                                  : strerror(-rc));
    return rc;
}

static int setup_handle(struct http_transport *h, const struct transport_config *c,
                        const char *url, bool tls, const char *tok)
{
    CURL *e = h->curl;
    char auth[SYNC_TOKEN_LEN + 32];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    struct curl_slist *l = curl_slist_append(NULL, auth);
    memset(auth, 0, sizeof auth);
    if (l)
        h->headers = l;
    /* No "Expect: 100-continue": it costs a round trip per large batch. */
    const char *more[] = {"Content-Type: application/x-sidetrack-frame",
                          "Accept: application/x-sidetrack-frame", "Expect:"};
    for (size_t i = 0; l && i < sizeof more / sizeof *more; i++)
        if ((l = curl_slist_append(h->headers, more[i])))
            h->headers = l;
    if (!l)
        return -ENOMEM;
    /* certificate and host name always verified */
    const struct http_client_opts o = {.user_agent = "sidetrackd",
                                       .connect_timeout_ms = CONNECT_TIMEOUT_MS,
                                       .ca_file = c->ca_file};
    h->resp.max = SYNC_MAX_FRAME + 4096;
    int bad = http_client_setup(e, &h->resp, h->errbuf, &o);
    bad |= curl_easy_setopt(e, CURLOPT_URL, url);
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, tls ? "https" : "http");
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->timeout_ms ? c->timeout_ms : 15000));
    bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    return bad ? -EINVAL : 0;
}

int transport_http_open(struct transport **out, const struct transport_config *c, char *err,
                        size_t errlen)
{
    if (c->ca_file && access(c->ca_file, R_OK) != 0) {
        int e = errno;
        snprintf(err, errlen, "CA file %s: %s", c->ca_file, strerror(e));
        return -e;
    }
    char tok[SYNC_TOKEN_LEN + 1];
    int rc = read_token(c, tok, err, errlen);
    if (rc < 0)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot start libcurl");
        memset(tok, 0, sizeof tok);
        return -ENOMEM;
    }
    struct http_transport *h = calloc(1, sizeof *h);
    char *url = NULL;
    bool tls = false;
    if (!h) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    } else if ((rc = sync_url(c, &url, &tls, err, errlen)) == 0) {
        h->t = (struct transport){.ops = &http_ops, .kind = tls ? "https" : "http",
                                  .max_window = 1};
        snprintf(h->token_file, sizeof h->token_file, "%s", c->token_file);
        snprintf(h->ca_file, sizeof h->ca_file, "%s", c->ca_file ? c->ca_file : "");
        h->curl = curl_easy_init();
        if (!h->curl || (rc = setup_handle(h, c, url, tls, tok)) < 0) {
            snprintf(err, errlen, "cannot set up libcurl for %s", url);
            rc = rc < 0 ? rc : -ENOMEM;
        }
    }
    memset(tok, 0, sizeof tok);
    curl_free(url);
    if (rc < 0) {
        if (h)
            ht_close(&h->t);
        else
            curl_global_cleanup();
        return rc;
    }
    *out = &h->t;
    return 0;
}
