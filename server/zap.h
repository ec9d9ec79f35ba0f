/* zap.h — the server's ZeroMQ authentication handler (ZAP, RFC 27): admits a CURVE client
 * only if its public key is in the allow-list directory (NAME.pub files, read again when
 * the directory changes), and says which key it admitted (the messages' User-Id). */
#ifndef SIDETRACK_SERVER_ZAP_H
#define SIDETRACK_SERVER_ZAP_H

#include <stdint.h>

struct zap;
/* Binds inproc://zeromq.zap.01 in ctx and starts the handler thread. 0 or -errno. */
int zap_start(struct zap **z, void *ctx, const char *allow_dir);
/* Stops the thread (before zmq_ctx_term). NULL accepted. */
void zap_stop(struct zap *z);
/* Connections refused so far. */
uint64_t zap_refused(const struct zap *z);

#endif
