/* ingest_http.c — agents over HTTPS: POST /api/sidetrack/v1/sync, one frame in the body, the
 * reply frame in the response (the same frames as over ZeroMQ: sync/protocol.h). The token's
 * name is the agent's identity (ingest.h). */
#include "ingest_http.h"

#include "protocol.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define FRAME_TYPE "application/x-sidetrack-frame"
/* More batches than this at once only queue on LMDB's writer lock: tell the agent to come
 * back instead of holding a pool thread. */
#define MAX_IN_FLIGHT 16

static _Atomic int in_flight;

static void on_sync(const struct http_req *req, struct http_resp *resp, void *arg)
{
    struct ingest *ig = arg;
    if (atomic_fetch_add(&in_flight, 1) >= MAX_IN_FLIGHT) {
        atomic_fetch_sub(&in_flight, 1);
        http_resp_header(resp, "Retry-After", "1");
        http_resp_error(resp, 503, "TEMPORARILY_UNAVAILABLE",
                        "the server is busy applying other batches: retry shortly");
        return;
    }
    const char *ct = http_header(req, "Content-Type");
    if (ct && strncmp(ct, FRAME_TYPE, strlen(FRAME_TYPE)) != 0) {
        http_resp_error(resp, 415, "BAD_REQUEST", "the body must be a sidetrack frame (%s)",
                        FRAME_TYPE);
        atomic_fetch_sub(&in_flight, 1);
        return;
    }
    char identity[160];
    snprintf(identity, sizeof identity, "token:%s", req->identity ? req->identity : "");
    struct sync_buf out;
    sync_buf_init(&out);
    int r = ingest_frame(ig, identity, req->body, req->body_len, &out);
    if (r == -EACCES) {
        http_resp_error(resp, 403, "PERMISSION_DENIED",
                        "the token '%s' may not write for this agent id: it belongs to another "
                        "token or key",
                        req->identity ? req->identity : "");
    } else if (r < 0 || out.err) {
        http_resp_error(resp, 500, "INTERNAL_ERROR", "out of memory");
    } else {
        http_resp_bytes(resp, 200, FRAME_TYPE, out.data, out.len);
    }
    sync_buf_free(&out);
    atomic_fetch_sub(&in_flight, 1);
}

int ingest_http_register(struct http_server *h, struct ingest *ig)
{
    return http_route(h, "POST", "/api/sidetrack/v1/sync", HTTP_EXACT | HTTP_AUTH, on_sync, ig);
}
