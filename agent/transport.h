/* transport.h — how the agent's replication (replicate.c) moves frames to sidetrack-server.
 *
 * The protocol (sync/protocol.h: HELLO, batches in a window, blobs, acknowledgements) is one
 * piece of code for every transport; a transport only carries frames. Two exist, chosen by the
 * scheme of the server's URL:
 *   tcp://HOST:PORT      ZeroMQ DEALER with CURVE (transport_zmq.c): asynchronous, several
 *                        frames in flight, replies in order.
 *   https://HOST:PORT    HTTP POST of each frame to /api/sidetrack/v1/sync with a bearer token
 *                        (transport_http.c, libcurl): the reply is the response body, so one
 *                        frame is in flight at a time. http:// only on loopback (tests) or
 *                        with --insecure-http.
 *
 * Calls come from the replication thread alone. Every call returns 0 (or 1 for a frame
 * received), or a negative errno with a sentence in t->error that a user can act on:
 *   -EACCES  the server refused our credentials (a token; CURVE refusals look like silence)
 *   -EAGAIN  the server is busy: try again after t->retry_after_ms (0: our own backoff)
 *   -EMSGSIZE  the frame is larger than the server takes
 *   others   the link failed (connection refused, reset, timeout, TLS): retry with backoff
 */
#ifndef SIDETRACK_AGENT_TRANSPORT_H
#define SIDETRACK_AGENT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct transport;

struct transport_ops {
    /* Hands one frame over; it may go out later (ZeroMQ) or be answered at once (HTTP). */
    int (*send)(struct transport *t, const uint8_t *frame, size_t len);
    /* Waits up to timeout_ms for one reply frame: 1 and *frame, *len (valid until the next
     * call), 0 none came, or -errno. */
    int (*recv)(struct transport *t, int timeout_ms, const uint8_t **frame, size_t *len);
    void (*close)(struct transport *t);
};

struct transport {
    const struct transport_ops *ops;
    const char *kind;         /* "zmq", "https" or "http": shown by `sidetrack sync status` */
    uint32_t max_window;      /* most batches it can have in flight (1: request/response) */
    uint64_t retry_after_ms;  /* with -EAGAIN: what the server asked us to wait; else 0 */
    char error[256];          /* the last failure, in words */
};

/* What a transport needs; the URL's scheme picks which one (replicate.h has the meaning of
 * each option). */
struct transport_config {
    const char *url;
    const char *server_key, *key;    /* zmq: CURVE key files */
    const char *token_file, *ca_file; /* http(s): bearer token, private CA (NULL: system's) */
    bool insecure_http;              /* allow http:// to a host that is not loopback */
    uint32_t timeout_ms;             /* http(s): longest request */
};

/* Open the transport: no traffic yet (ZeroMQ connects in the background, HTTP on the first
 * request). 0, or -errno with a sentence in err: a key or token file that cannot be used, an
 * address that is not one, plain http:// to a host that is not loopback. replicate.c picks
 * which by the URL's scheme. Call from the main thread (curl_global_init). */
int transport_zmq_open(struct transport **t, const struct transport_config *c, char *err,
                       size_t errlen);
int transport_http_open(struct transport **t, const struct transport_config *c, char *err,
                        size_t errlen);
/* Closes and frees t (NULL: nothing). */
static inline void transport_close(struct transport *t)
{
    if (t)
        t->ops->close(t);
}

#endif
