/* transport_zmq.c — frames over a ZeroMQ DEALER socket with CURVE (see transport.h).
 *
 * ZeroMQ reconnects the socket by itself and its heartbeats notice a dead peer; a server that
 * refuses our key (not in its allow-list) looks like silence, which replicate.c reports. */
#include "transport.h"

#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct zmq_transport {
    struct transport t;
    void *ctx, *sock;
    zmq_msg_t msg; /* the last frame received: valid until the next recv */
    bool have_msg;
};

static int zt_send(struct transport *tp, const uint8_t *frame, size_t len)
{
    struct zmq_transport *z = (struct zmq_transport *)tp;
    if (zmq_send(z->sock, frame, len, ZMQ_DONTWAIT) >= 0)
        return 0;
    int e = errno;
    snprintf(tp->error, sizeof tp->error, "%s",
             e == EAGAIN ? "no connection yet" : zmq_strerror(e));
    return -e;
}

static int zt_recv(struct transport *tp, int timeout_ms, const uint8_t **frame, size_t *len)
{
    struct zmq_transport *z = (struct zmq_transport *)tp;
    if (z->have_msg) {
        zmq_msg_close(&z->msg);
        z->have_msg = false;
    }
    zmq_pollitem_t it = {.socket = z->sock, .events = ZMQ_POLLIN};
    int n = zmq_poll(&it, 1, timeout_ms);
    if (n <= 0)
        return n < 0 && errno != EINTR ? -errno : 0;
    zmq_msg_init(&z->msg);
    if (zmq_msg_recv(&z->msg, z->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&z->msg);
        return 0;
    }
    z->have_msg = true;
    *frame = zmq_msg_data(&z->msg);
    *len = zmq_msg_size(&z->msg);
    return 1;
}

static void zt_close(struct transport *tp)
{
    struct zmq_transport *z = (struct zmq_transport *)tp;
    if (z->have_msg)
        zmq_msg_close(&z->msg);
    if (z->sock)
        zmq_close(z->sock);
    if (z->ctx)
        zmq_ctx_term(z->ctx);
    free(z);
}

static const struct transport_ops zmq_ops = {zt_send, zt_recv, zt_close};

int transport_zmq_open(struct transport **out, const struct transport_config *c, char *err,
                       size_t errlen)
{
    char server_pub[SYNC_KEY_Z85 + 1], pub[SYNC_KEY_Z85 + 1], sec[SYNC_KEY_Z85 + 1];
    int rc;
    if (!c->server_key || !c->key) {
        snprintf(err, errlen, "%s needs --server-key (the server's server.pub) and --key (this "
                              "agent's key pair: sidetrack keys gen NAME)", c->url);
        return -EINVAL;
    }
    if ((rc = sync_keys_read_public(c->server_key, server_pub)) < 0) {
        snprintf(err, errlen, "server key %s: %s", c->server_key,
                 rc == -EBADMSG ? "not a public key (give the server's server.pub)"
                                : strerror(-rc));
        return rc;
    }
    if ((rc = sync_keys_read_pair(c->key, pub, sec)) < 0) {
        snprintf(err, errlen, "agent key %s: %s", c->key,
                 rc == -EPERM     ? "others may read it: chmod 600 it"
                 : rc == -EBADMSG ? "not a key pair made by 'sidetrack keys gen'"
                                  : strerror(-rc));
        return rc;
    }
    struct zmq_transport *z = calloc(1, sizeof *z);
    if (!z) {
        memset(sec, 0, sizeof sec);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    z->t = (struct transport){.ops = &zmq_ops, .kind = "zmq", .max_window = UINT32_MAX};
    z->ctx = zmq_ctx_new();
    z->sock = z->ctx ? zmq_socket(z->ctx, ZMQ_DEALER) : NULL;
    if (!z->sock) {
        snprintf(err, errlen, "cannot make the sync socket: %s", zmq_strerror(errno));
        memset(sec, 0, sizeof sec);
        zt_close(&z->t);
        return -ENOMEM;
    }
    int zero = 0, one = 1, ivl = 100, ivl_max = 10000, hb_ivl = 2000, hb_timeout = 10000;
    zmq_setsockopt(z->sock, ZMQ_CURVE_SERVERKEY, server_pub, SYNC_KEY_Z85);
    zmq_setsockopt(z->sock, ZMQ_CURVE_PUBLICKEY, pub, SYNC_KEY_Z85);
    zmq_setsockopt(z->sock, ZMQ_CURVE_SECRETKEY, sec, SYNC_KEY_Z85);
    memset(sec, 0, sizeof sec);
    zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(z->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(z->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(z->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(z->sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl);
    zmq_setsockopt(z->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    if (zmq_connect(z->sock, c->url) != 0) {
        snprintf(err, errlen, "server address %s: %s", c->url, zmq_strerror(errno));
        zt_close(&z->t);
        return -EINVAL;
    }
    *out = &z->t;
    return 0;
}
