/* mlflow_rest.c — HTTP for the mlflow target (see mlflow_rest.h).
 *
 * One curl easy handle per push: curl_easy_reset() between requests keeps its connection
 * cache, so a push of thousands of batches reuses one keep-alive connection. Authentication
 * and TLS are set as MLflow's own client sets them (a bearer token, or Basic; a CA bundle, or
 * no verification at all when asked). "Expect: 100-continue" is turned off: the bodies are
 * small and the round trip it costs would double the time of each batch.
 */
#include "mlflow_rest.h"

#include "http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ANSWER (256u << 20) /* a get-history page is a few MB; more is a broken server */

struct mlflow_rest {
    CURL *h;
    char *base;
    char *auth_header; /* "Authorization: Bearer ..." or NULL */
    const struct mlflow_target *t;
    char curl_err[CURL_ERROR_SIZE];
    struct http_sink answer; /* the answer being read */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int mlflow_rest_new(struct mlflow_rest **out, const struct mlflow_target *t)
{
    pthread_once(&curl_once, curl_init_once);
    struct mlflow_rest *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->t = t;
    r->answer.max = MAX_ANSWER - 1; /* and its NUL */
    r->base = strdup(t->url);
    if (!r->base) {
        free(r);
        return -ENOMEM;
    }
    for (size_t n = strlen(r->base); n > 0 && r->base[n - 1] == '/'; n--)
        r->base[n - 1] = '\0';
    if (t->token && *t->token) {
        size_t n = strlen(t->token) + 32;
        r->auth_header = malloc(n);
        if (r->auth_header)
            snprintf(r->auth_header, n, "Authorization: Bearer %s", t->token);
    }
    r->h = curl_easy_init();
    if (!r->h || (t->token && *t->token && !r->auth_header)) {
        mlflow_rest_free(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void mlflow_rest_free(struct mlflow_rest *r)
{
    if (!r)
        return;
    if (r->h)
        curl_easy_cleanup(r->h);
    free(r->base);
    free(r->auth_header);
    sync_buf_free(&r->answer.buf);
    free(r);
}

const char *mlflow_rest_base(const struct mlflow_rest *r) { return r->base; }

void mlflow_reply_clear(struct mlflow_reply *rep)
{
    if (rep->json)
        json_decref(rep->json);
    memset(rep, 0, sizeof *rep);
}

char *mlflow_url_escape(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~' || (keep_slash && *c == '/')) {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        }
    }
    *p = '\0';
    return o;
}

static void set_common(struct mlflow_rest *r, const char *url)
{
    const struct mlflow_target *t = r->t;
    CURL *h = r->h;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    const struct http_client_opts o = {.user_agent = "sidetrack-push/1",
                                       .connect_timeout_ms = 10000L,
                                       .ca_file = t->ca_file,
                                       .insecure_tls = t->insecure_tls};
    http_client_setup(h, &r->answer, r->curl_err, &o);
    if (t->username && *t->username && !r->auth_header) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, t->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, t->password ? t->password : "");
    }
}

/* Reads MLflow's {"error_code", "message"} when the body has them. */
static void read_error(struct mlflow_reply *rep, const char *raw)
{
    const char *code = NULL, *msg = NULL;
    if (rep->json) {
        code = json_string_value(json_object_get(rep->json, "error_code"));
        msg = json_string_value(json_object_get(rep->json, "message"));
    }
    if (code)
        snprintf(rep->error_code, sizeof rep->error_code, "%s", code);
    if (msg)
        snprintf(rep->message, sizeof rep->message, "HTTP %ld %s: %s", rep->status,
                 code ? code : "", msg);
    else
        snprintf(rep->message, sizeof rep->message, "HTTP %ld: %.200s", rep->status,
                 raw && *raw ? raw : "(no body)");
}

int mlflow_rest_call(struct mlflow_rest *r, const char *method, const char *url,
                     const char *body, size_t body_len, const char *upload,
                     struct mlflow_reply *rep)
{
    memset(rep, 0, sizeof *rep);
    char *full = NULL;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        size_t n = strlen(r->base) + strlen(url) + 1;
        if (!(full = malloc(n)))
            return -ENOMEM;
        snprintf(full, n, "%s%s", r->base, url);
    }
    set_common(r, full ? full : url);
    http_sink_reset(&r->answer);
    r->curl_err[0] = '\0';

    struct curl_slist *hdr = NULL, *h2;
    FILE *f = NULL;
    int rc = -ENOMEM;
    if (!(h2 = curl_slist_append(hdr, "Expect:")))
        goto out;
    hdr = h2;
    if (r->auth_header) {
        if (!(h2 = curl_slist_append(hdr, r->auth_header)))
            goto out;
        hdr = h2;
    }
    long timeout = r->t->timeout_ms ? (long)r->t->timeout_ms : 120000L;
    if (upload) {
        f = fopen(upload, "rbe");
        struct stat sb;
        if (!f || fstat(fileno(f), &sb) < 0) {
            rc = -errno;
            snprintf(rep->message, sizeof rep->message, "cannot read %s: %s", upload,
                     strerror(errno));
            goto out;
        }
        curl_easy_setopt(r->h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(r->h, CURLOPT_READDATA, f);
        curl_easy_setopt(r->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)sb.st_size);
        if (!(h2 = curl_slist_append(hdr, "Content-Type: application/octet-stream")))
            goto out;
        hdr = h2;
        /* a big file takes its time: give up only when it stalls */
        curl_easy_setopt(r->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(r->h, CURLOPT_LOW_SPEED_TIME, (timeout + 999) / 1000);
    } else {
        curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, timeout);
        if (body) {
            if (!(h2 = curl_slist_append(hdr, "Content-Type: application/json")))
                goto out;
            hdr = h2;
            curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(r->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        }
    }
    if (strcmp(method, "GET") && strcmp(method, "POST") && !upload)
        curl_easy_setopt(r->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, hdr);

    CURLcode cc = curl_easy_perform(r->h);
    if (cc != CURLE_OK) {
        if (r->answer.too_big) {
            snprintf(rep->message, sizeof rep->message, "the answer is larger than %u MiB",
                     MAX_ANSWER >> 20);
            rc = -EMSGSIZE;
        } else {
            snprintf(rep->message, sizeof rep->message, "%s",
                     r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc));
            /* a certificate problem will not go away by itself */
            rc = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
                         cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL
                     ? -EPROTO
                     : -EAGAIN;
        }
        goto out;
    }
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &rep->status);
    rep->retry_after_ms = (uint32_t)http_retry_after_ms(r->h, 3600000u);
    const char *raw = sync_buf_str(&r->answer.buf);
    if (raw && r->answer.buf.len) {
        json_error_t je;
        rep->json = json_loadb(raw, r->answer.buf.len, JSON_ALLOW_NUL, &je);
    }
    long s = rep->status;
    if (s >= 200 && s < 300) {
        rc = 0;
    } else {
        read_error(rep, raw);
        if (s == 408 || s == 429 || s >= 500)
            rc = -EAGAIN;
        else if (s == 401 || s == 403)
            rc = -EACCES;
        else if (s == 404)
            rc = -ENOENT;
        else
            rc = -EINVAL;
    }
out:
    if (rc == -ENOMEM && !rep->message[0])
        snprintf(rep->message, sizeof rep->message, "out of memory");
    curl_slist_free_all(hdr);
    if (f)
        fclose(f);
    free(full);
    return rc;
}
