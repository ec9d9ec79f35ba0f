/* http_client.h — what the two libcurl clients share: the agent's frames over HTTPS
 * (agent/transport_http.c) and the mlflow target's REST calls (mlflow_rest.c). An easy
 * handle's common options (no signals, TLS verified against the system's or a given CA, or
 * not at all when asked, keep-alive, no Nagle delay), the answer read into a sync_buf with a
 * size limit, and Retry-After. */
#ifndef SIDETRACK_SYNC_HTTP_CLIENT_H
#define SIDETRACK_SYNC_HTTP_CLIENT_H

#include "protocol.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The answer being read: text-terminated (sync_buf_put), at most max bytes. */
struct http_sink {
    struct sync_buf buf;
    size_t max;
    bool too_big; /* the answer was larger than max: the transfer was aborted */
};
void http_sink_reset(struct http_sink *s);

struct http_client_opts {
    const char *user_agent;
    long connect_timeout_ms;
    const char *ca_file;   /* a private CA bundle, or NULL: the system's */
    bool insecure_tls;     /* no certificate or host name check (asked for by the user) */
};

/* Sets the common options on h: the answer goes to sink, curl's words to errbuf. Returns
 * nonzero when libcurl refused one. */
int http_client_setup(CURL *h, struct http_sink *sink, char errbuf[CURL_ERROR_SIZE],
                      const struct http_client_opts *o);

/* The answer's Retry-After in ms (capped at max_ms); 0 when it has none. */
uint64_t http_retry_after_ms(CURL *h, uint64_t max_ms);

#endif
