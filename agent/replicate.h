/* replicate.h — the agent's replication to sidetrack-server over ZeroMQ or HTTPS (issue 5).
 *
 * A thread of its own sends the store's journal (store.h) from the server's high-water mark
 * on, in batches, several in flight, and trims the journal below each acknowledgement. After
 * any disconnect or restart of either side it says HELLO again and resumes from the mark the
 * server gives back; the server applies each batch once (protocol.h). */
#ifndef SIDETRACK_AGENT_REPLICATE_H
#define SIDETRACK_AGENT_REPLICATE_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct replicate_options {
    const char *endpoint;        /* tcp://HOST:PORT (ZeroMQ) or https://HOST:PORT */
    const char *server_key;      /* ZeroMQ: the server's public key file (server.pub) */
    const char *key;             /* ZeroMQ: this agent's key pair file (NAME.key) */
    const char *token_file;      /* HTTPS: this agent's bearer token (NAME.token, mode 0600) */
    const char *ca_file;         /* HTTPS: the CA that signed the server's certificate (PEM);
                                  * NULL: the system's trusted CAs */
    bool insecure_http;          /* allow http:// to a host that is not loopback */
    uint32_t interval_ms;        /* sync this often when connected (default 1000) */
    uint64_t backlog_threshold;  /* ... and at once when this many ops wait (default 10000) */
    size_t batch_bytes;          /* aim for batches of about this size (default 256 KiB) */
    uint32_t window;             /* batches in flight (default 8; 1 over HTTPS) */
};

struct replicate_status {
    char transport[8];           /* "zmq", "https" or "http" */
    bool connected;              /* WELCOME received on the current connection */
    uint64_t acked;              /* the server's high-water mark, as last acknowledged */
    uint64_t journal_next;       /* the next op the journal will get */
    uint64_t backlog_ops;        /* journal_next - acked */
    uint64_t backlog_since_ms;   /* when the backlog was last empty; 0 when empty now */
    uint64_t backlog_bytes;      /* about what sending it takes (points 24 B, strings, heads) */
    uint64_t last_ack_ms;        /* last acknowledgement (wall clock) */
    uint64_t batches, ops, points; /* acknowledged since start */
    double points_per_sec;       /* over the last few seconds */
    char last_error[256];
    uint64_t last_error_ms;
};

struct replicator;
/* Reads the keys and starts the thread. 0, or -errno with a sentence in err. */
int replicate_start(struct replicator **r, struct store *s, const struct replicate_options *o,
                    char *err, size_t errlen);
/* Stops the thread and frees r (what is not acknowledged stays in the journal). */
void replicate_stop(struct replicator *r);
/* Sync now (SIGUSR1, `sidetrack sync now`). Async-signal-safe. */
void replicate_kick(struct replicator *r);
/* New --sync-interval and --sync-backlog for the running thread (SIGHUP); 0: the default.
 * NULL accepted. */
void replicate_set_pacing(struct replicator *r, uint32_t interval_ms, uint64_t backlog);
void replicate_get_status(struct replicator *r, struct replicate_status *st);

#endif
