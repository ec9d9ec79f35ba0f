/* http_client.c — see http_client.h. */
#include "http_client.h"

void http_sink_reset(struct http_sink *s)
{
    sync_buf_reset(&s->buf);
    s->too_big = false;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct http_sink *s = arg;
    size_t len = size * n;
    if (s->buf.len + len > s->max) {
        s->too_big = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    sync_buf_put(&s->buf, p, len);
    return s->buf.err ? 0 : len;
}

int http_client_setup(CURL *h, struct http_sink *sink, char errbuf[CURL_ERROR_SIZE],
                      const struct http_client_opts *o)
{
    int bad = 0;
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    bad |= curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, o->user_agent);
    if (o->insecure_tls) {
        bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        if (o->ca_file && *o->ca_file)
            bad |= curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
    }
    return bad;
}

uint64_t http_retry_after_ms(CURL *h, uint64_t max_ms)
{
    curl_off_t ra = 0;
    if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
        return 0;
    return (uint64_t)ra > max_ms / 1000 ? max_ms : (uint64_t)ra * 1000;
}
