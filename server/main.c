/* main.c — sidetrack-server: the central store. Agents replicate their stores into it over
 * ZeroMQ (ROUTER, CURVE); every batch is applied exactly once (apply.c). Only agents whose
 * public keys are in the allow-list directory get in (a ZAP handler: zap.c).
 *
 * One thread serves the socket and applies batches: LMDB allows one writer at a time anyway,
 * and a batch is tens to hundreds of KiB, so the socket is never the bottleneck. */
#include "apply.h"
#include "blobs.h"
#include "keys.h"
#include "log.h"
#include "protocol.h"
#include "store.h"
#include "zap.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:7341"

static volatile sig_atomic_t stop_signal;
static int verbose;

static void on_signal(int sig) { stop_signal = sig; }

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: sidetrack-server --data DIR [OPTIONS]\n"
            "\n"
            "The central sidetrack store: agents replicate their runs into it over ZeroMQ\n"
            "(CURVE-encrypted; only agents whose public keys are in the allow-list get in).\n"
            "\n"
            "Options:\n"
            "  -d, --data DIR      the central store's directory (created if missing)\n"
            "  -z, --zmq ENDPOINT  where agents connect (default " DEFAULT_ENDPOINT ")\n"
            "  -k, --key FILE      the server's key pair (default DIR/server.key; made, with\n"
            "                      DIR/server.pub to give to agents, on first start)\n"
            "  -a, --allow DIR     agents' public keys, one NAME.pub file each (default\n"
            "                      DIR/agents.d); read again when its contents change\n"
            "  -v, --verbose       log every batch\n"
            "  -h, --help          show this help\n"
            "      --version       show the version\n"
            "\n"
            "Keys: sidetrack keys gen NAME [--dir DIR]. Read the store with the CLI:\n"
            "sidetrack --data DIR runs list. Signals: SIGTERM and SIGINT stop it cleanly.\n"
            "See docs/server.md.\n");
}

struct conn {
    uint8_t rid[256]; /* the DEALER's routing id as the ROUTER gives it */
    size_t rid_len;
    uint8_t agent[16];
    char host[256];
    char key[SYNC_KEY_Z85 + 1];
    struct conn *next;
};

struct server {
    struct store *store;
    void *ctx, *sock;
    struct zap *zap;
    struct conn *conns;
    struct sync_buf out;
    uint64_t batches, ops, points, refused;
};

static struct conn *conn_find(struct server *sv, const zmq_msg_t *rid, bool create)
{
    size_t n = zmq_msg_size(rid);
    if (n > sizeof sv->conns->rid)
        return NULL;
    for (struct conn *c = sv->conns; c; c = c->next)
        if (c->rid_len == n && !memcmp(c->rid, zmq_msg_data((zmq_msg_t *)rid), n))
            return c;
    if (!create)
        return NULL;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->rid, zmq_msg_data((zmq_msg_t *)rid), n);
    c->rid_len = n;
    c->next = sv->conns;
    sv->conns = c;
    return c;
}

static void reply(struct server *sv, const zmq_msg_t *rid)
{
    if (sv->out.err)
        return;
    zmq_send(sv->sock, zmq_msg_data((zmq_msg_t *)rid), zmq_msg_size(rid), ZMQ_SNDMORE);
    zmq_send(sv->sock, sv->out.data, sv->out.len, 0);
}

static void reply_error(struct server *sv, const zmq_msg_t *rid, int code, const char *msg,
                        uint64_t hwm)
{
    sync_buf_reset(&sv->out);
    sync_encode_error(&sv->out, code, msg, hwm);
    reply(sv, rid);
}

static void handle(struct server *sv, zmq_msg_t *rid, zmq_msg_t *body)
{
    struct sync_msg m;
    int r = sync_decode(zmq_msg_data(body), zmq_msg_size(body), &m);
    if (r < 0) {
        server_log("warning", "a malformed frame (%zu bytes): %s", zmq_msg_size(body), strerror(-r));
        reply_error(sv, rid, r, "malformed frame", 0);
        return;
    }
    const char *key = zmq_msg_gets(body, "User-Id"); /* the ZAP handler's word: the agent's key */
    struct conn *c = conn_find(sv, rid, m.type == SYNC_HELLO);
    if (m.type == SYNC_HELLO && c) {
        memcpy(c->agent, m.agent, 16);
        snprintf(c->host, sizeof c->host, "%s", m.host);
        snprintf(c->key, sizeof c->key, "%s", key ? key : "");
        uint64_t hwm = 1;
        if ((r = apply_hwm(sv->store, m.agent, &hwm)) < 0) {
            server_log("error", "store: %s", store_strerror(r));
            reply_error(sv, rid, r, store_strerror(r), 0);
        } else {
            char hex[33];
            store_run_id_hex(m.agent, hex);
            server_log("info", "agent %s (%s, key %.8s...) connected: resumes at %llu", hex, c->host,
                c->key, (unsigned long long)hwm);
            sync_buf_reset(&sv->out);
            sync_encode_welcome(&sv->out, hwm);
            reply(sv, rid);
        }
    } else if (m.type == SYNC_BATCH) {
        if (!c || memcmp(c->agent, m.agent, 16) != 0) {
            /* A batch must come after its agent's HELLO on the same connection, so that the
             * agent id it names is the one that connection introduced. */
            reply_error(sv, rid, -EPERM, "batch without HELLO for this agent", 0);
        } else {
            struct apply_result res;
            r = apply_batch(sv->store, &m, c->host, &res);
            if (r == 0) {
                sv->batches++;
                sv->ops += res.applied;
                sv->points += res.points;
                if (verbose)
                    server_log("info", "%s: ops %llu-%llu: %llu applied, %llu already here",
                        c->host, (unsigned long long)m.first, (unsigned long long)m.last,
                        (unsigned long long)res.applied, (unsigned long long)res.skipped);
                sync_buf_reset(&sv->out);
                sync_encode_ack(&sv->out, res.hwm);
                reply(sv, rid);
            } else if (r == -ERANGE) {
                reply_error(sv, rid, r, "gap: resend from hwm", res.hwm);
            } else {
                server_log("error", "batch %llu-%llu of %s not applied: %s",
                    (unsigned long long)m.first, (unsigned long long)m.last, c->host,
                    store_strerror(r));
                reply_error(sv, rid, r, store_strerror(r), 0);
            }
        }
    } else if (m.type == SYNC_BLOB_OFFER || m.type == SYNC_BLOB_CHUNK) {
        if (!c) {
            reply_error(sv, rid, -EPERM, "artifact content without HELLO", 0);
        } else {
            uint64_t have = 0;
            r = m.type == SYNC_BLOB_OFFER ? blobs_have(sv->store, m.sha256, m.size, &have)
                                          : blobs_chunk(sv->store, &m, &have);
            if (r == 0 && m.type == SYNC_BLOB_OFFER && have && have < m.size)
                server_log("info", "%s: resuming an artifact upload at byte %llu of %llu", c->host,
                    (unsigned long long)have, (unsigned long long)m.size);
            if (r < 0) {
                server_log("warning", "%s: artifact content: %s", c->host,
                    r == -EBADMSG ? "digest mismatch: upload started over" : strerror(-r));
                reply_error(sv, rid, r, r == -EBADMSG ? "digest mismatch" : strerror(-r), 0);
            } else {
                sync_buf_reset(&sv->out);
                sync_encode_blob_state(&sv->out, m.sha256, m.size, have);
                reply(sv, rid);
            }
        }
    } else {
        reply_error(sv, rid, -EPROTO, "unexpected message", 0);
    }
    sync_msg_free(&m);
}

static int serve(struct server *sv)
{
    zmq_pollitem_t it = {.socket = sv->sock, .events = ZMQ_POLLIN};
    while (!stop_signal) {
        int n = zmq_poll(&it, 1, 500);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            server_log("error", "zmq_poll: %s", zmq_strerror(errno));
            return 1;
        }
        if (n == 0)
            continue;
        for (int burst = 0; burst < 64; burst++) {
            zmq_msg_t rid, body;
            zmq_msg_init(&rid);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&rid, sv->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&rid);
                zmq_msg_close(&body);
                break;
            }
            int more = zmq_msg_more(&rid);
            if (more && zmq_msg_recv(&body, sv->sock, 0) >= 0) {
                /* Anything beyond the one frame we expect is drained and ignored. */
                bool extra_frames = zmq_msg_more(&body);
                while (more) {
                    zmq_msg_t extra;
                    zmq_msg_init(&extra);
                    more = zmq_msg_more(&body) && zmq_msg_recv(&extra, sv->sock, 0) >= 0 &&
                           zmq_msg_more(&extra);
                    zmq_msg_close(&extra);
                    if (!extra_frames)
                        break;
                }
                if (extra_frames)
                    reply_error(sv, &rid, -EBADMSG, "one frame per message", 0);
                else
                    handle(sv, &rid, &body);
            }
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
        }
    }
    return 0;
}

static int ensure_dir(const char *d)
{
    if (mkdir(d, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'}, {"zmq", required_argument, NULL, 'z'},
        {"key", required_argument, NULL, 'k'},  {"allow", required_argument, NULL, 'a'},
        {"verbose", no_argument, NULL, 'v'},    {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},    {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *endpoint = DEFAULT_ENDPOINT, *keyfile = NULL, *allow = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "d:z:k:a:vh", opts, NULL)) != -1) {
        switch (o) {
        case 'd': data = optarg; break;
        case 'z': endpoint = optarg; break;
        case 'k': keyfile = optarg; break;
        case 'a': allow = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("sidetrack-server 0.1.0\n"); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sidetrack-server: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!data) {
        fprintf(stderr, "sidetrack-server: --data DIR is required (the central store)\n");
        return 2;
    }
    int r;
    if ((r = ensure_dir(data)) < 0) {
        server_log("error", "cannot create %s: %s", data, strerror(-r));
        return 1;
    }
    char kbuf[PATH_MAX], abuf[PATH_MAX];
    if (!keyfile) {
        snprintf(kbuf, sizeof kbuf, "%s/server.key", data);
        keyfile = kbuf;
        if (access(kbuf, F_OK) != 0) {
            char pub[SYNC_KEY_Z85 + 1];
            if ((r = sync_keys_gen(data, "server", pub)) < 0) {
                server_log("error", "cannot make the server's key pair in %s: %s", data, strerror(-r));
                return 1;
            }
            server_log("info", "made the server's key pair: give %s/server.pub to the agents", data);
        }
    }
    if (!allow) {
        snprintf(abuf, sizeof abuf, "%s/agents.d", data);
        allow = abuf;
        ensure_dir(abuf);
    }
    char pub[SYNC_KEY_Z85 + 1], sec[SYNC_KEY_Z85 + 1];
    if ((r = sync_keys_read_pair(keyfile, pub, sec)) < 0) {
        server_log("error", "%s: %s", keyfile,
            r == -EPERM     ? "others may read it: chmod 600 it (a readable secret key is not "
                              "secret)"
            : r == -EBADMSG ? "not a key pair made by 'sidetrack keys gen'"
                            : strerror(-r));
        return 1;
    }

    struct server sv = {0};
    sync_buf_init(&sv.out);
    if ((r = store_open(&sv.store, data, 0, 0)) < 0) {
        server_log("error", "cannot open the store in %s: %s", data, store_strerror(r));
        return 1;
    }
    sv.ctx = zmq_ctx_new();
    if (!sv.ctx || (r = zap_start(&sv.zap, sv.ctx, allow)) < 0) {
        server_log("error", "cannot start the key check: %s", strerror(r < 0 ? -r : errno));
        return 1;
    }
    sv.sock = zmq_socket(sv.ctx, ZMQ_ROUTER);
    int one = 1, zero = 0, hb_ivl = 2000, hb_ttl = 10000, hb_timeout = 10000;
    int64_t maxmsg = SYNC_MAX_FRAME;
    zmq_setsockopt(sv.sock, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(sv.sock, ZMQ_CURVE_SECRETKEY, sec, SYNC_KEY_Z85);
    memset(sec, 0, sizeof sec);
    zmq_setsockopt(sv.sock, ZMQ_ZAP_DOMAIN, "sidetrack", 9);
    zmq_setsockopt(sv.sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(sv.sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sv.sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    zmq_setsockopt(sv.sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl);
    zmq_setsockopt(sv.sock, ZMQ_HEARTBEAT_TTL, &hb_ttl, sizeof hb_ttl);
    zmq_setsockopt(sv.sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    if (zmq_bind(sv.sock, endpoint) != 0) {
        server_log("error", "cannot listen on %s: %s", endpoint, zmq_strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    server_log("info", "serving %s on %s (allow-list %s, public key %s)", data, endpoint, allow, pub);
    int rc = serve(&sv);
    server_log("info", "stopped: %llu batches, %llu ops, %llu points applied; %llu agents refused",
        (unsigned long long)sv.batches, (unsigned long long)sv.ops,
        (unsigned long long)sv.points, (unsigned long long)zap_refused(sv.zap));
    zmq_close(sv.sock);
    zap_stop(sv.zap);
    zmq_ctx_term(sv.ctx);
    while (sv.conns) {
        struct conn *n = sv.conns->next;
        free(sv.conns);
        sv.conns = n;
    }
    sync_buf_free(&sv.out);
    store_sync(sv.store);
    store_close(sv.store);
    return rc;
}
