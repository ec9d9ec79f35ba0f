/* main.c — sidetrack-server: the central store. Agents replicate their stores into it over
 * ZeroMQ (ROUTER, CURVE); every batch is applied exactly once (apply.c). Only agents whose
 * public keys are in the allow-list directory get in (a ZAP handler: zap.c).
 *
 * One thread serves the socket and applies batches: LMDB allows one writer at a time anyway,
 * and a batch is tens to hundreds of KiB, so the socket is never the bottleneck. */
#include "config.h"
#include "http.h"
#include "ingest.h"
#include "ingest_http.h"
#include "keys.h"
#include "log.h"
#include "metrics_view.h"
#include "mlflow_api.h"
#include "notify.h"
#include "protocol.h"
#include "store.h"
#include "web.h"
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

static volatile sig_atomic_t stop_signal;
static int verbose;

static void on_signal(int sig) { stop_signal = sig; }

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: sidetrack-server --data DIR [OPTIONS]\n"
            "\n"
            "The central sidetrack store: agents replicate their runs into it over ZeroMQ\n"
            "(CURVE-encrypted; only agents whose public keys are in the allow-list get in) or\n"
            "HTTPS (bearer tokens); MLflow's clients read and write it through MLflow's REST API.\n"
            "\n"
            "Options:\n"
            "  -d, --data DIR      the central store's directory (created if missing)\n"
            "  -z, --zmq ENDPOINT  where agents connect (default " SERVER_DEFAULT_ENDPOINT "; 'off': none)\n"
            "      --http ADDR:PORT  serve HTTP(S): MLflow's REST API and the agents' HTTPS\n"
            "                      ingest (e.g. 127.0.0.1:5000; [::]:5000 or :5000 for all)\n"
            "      --tls-cert FILE --tls-key FILE  PEM certificate (chain) and key: HTTPS\n"
            "      --tokens DIR    bearer tokens, one NAME.token file each (default\n"
            "                      DIR/tokens.d; make them with 'sidetrack keys token NAME')\n"
            "      --api-auth MODE open (default, as MLflow's own server) or token: MLflow's API\n"
            "                      needs a token too (Bearer, or Basic NAME:TOKEN)\n"
            "      --http-threads N  request threads (default 4)\n"
            "      --web DIR       the web UI's files (default: the installed\n"
            "                      share/sidetrack/web; the source tree's web/ when run from\n"
            "                      the build tree); 'off': no UI. Open http://ADDR:PORT/\n"
            "      --read-only     open the store read-only (beside a node's agent): MLflow's\n"
            "                      write endpoints answer 403; implies --zmq off\n"
            "  -k, --key FILE      the server's key pair (default DIR/server.key; made, with\n"
            "                      DIR/server.pub to give to agents, on first start)\n"
            "  -a, --allow DIR     agents' public keys, one NAME.pub file each (default\n"
            "                      DIR/agents.d); read again when its contents change\n"
            "  -v, --verbose       log every batch\n"
            "  -c, --config FILE   the configuration file (default " SERVER_CONFIG_DEFAULT_PATH ",\n"
            "                      if it exists): one 'key = value' a line, the keys are the\n"
            "                      long options' names; $SIDETRACK_SRV_<KEY> overrides it, and\n"
            "                      the options override both\n"
            "  -h, --help          show this help\n"
            "      --version       show the version\n"
            "\n"
            "Keys: sidetrack keys gen NAME [--dir DIR]. Read the store with the CLI:\n"
            "sidetrack --data DIR runs list. Signals: SIGTERM and SIGINT stop it cleanly; the\n"
            "configuration is read at start only (restart to apply a change).\n"
            "See docs/server.md.\n");
}

struct server {
    struct store *store;
    void *ctx, *sock;
    struct zap *zap;
    struct ingest *ingest;
    struct sync_buf out;
};

static void handle(struct server *sv, zmq_msg_t *rid, zmq_msg_t *body)
{
    const char *key = zmq_msg_gets(body, "User-Id"); /* the ZAP handler's word: the agent's key */
    char identity[SYNC_KEY_Z85 + 8];
    snprintf(identity, sizeof identity, "key:%s", key ? key : "");
    int r = ingest_frame(sv->ingest, identity, zmq_msg_data(body), zmq_msg_size(body), &sv->out);
    if (r == -ENOMEM || sv->out.err)
        return;
    zmq_send(sv->sock, zmq_msg_data(rid), zmq_msg_size(rid), ZMQ_SNDMORE);
    zmq_send(sv->sock, sv->out.data, sv->out.len, 0);
}

static void reply_error(struct server *sv, const zmq_msg_t *rid, int code, const char *msg,
                        uint64_t hwm)
{
    sync_buf_reset(&sv->out);
    sync_encode_error(&sv->out, code, msg, hwm);
    if (sv->out.err)
        return;
    zmq_send(sv->sock, zmq_msg_data((zmq_msg_t *)rid), zmq_msg_size(rid), ZMQ_SNDMORE);
    zmq_send(sv->sock, sv->out.data, sv->out.len, 0);
}

/* systemd (Type=notify): watchdog pings and the STATUS= line, from the serving loop itself so
 * that a hung loop stops the pings. */
static struct st_notify notifier;

static void notify_tick(struct server *sv)
{
    stn_tick(&notifier);
    if (!stn_status_due(&notifier))
        return;
    struct ingest_stats st = {0};
    if (sv->ingest)
        ingest_stats(sv->ingest, &st);
    stn_status(&notifier, "%llu batches, %llu ops, %llu points applied; %llu agents refused",
               (unsigned long long)st.batches, (unsigned long long)st.ops,
               (unsigned long long)st.points,
               (unsigned long long)(st.refused + (sv->zap ? zap_refused(sv->zap) : 0)));
}

static int serve(struct server *sv)
{
    zmq_pollitem_t it = {.socket = sv->sock, .events = ZMQ_POLLIN};
    while (!stop_signal) {
        notify_tick(sv);
        int n = zmq_poll(&it, 1, stn_poll_ms(&notifier, 500));
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

/* Every option but --config, --help and --version is a key of the configuration file, of the
 * same name (config.c). */
static const struct option opts[] = {
    {"data", required_argument, NULL, 'd'}, {"zmq", required_argument, NULL, 'z'},
    {"key", required_argument, NULL, 'k'},  {"allow", required_argument, NULL, 'a'},
    {"verbose", no_argument, NULL, 'v'},    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},    {"http", required_argument, NULL, 'H'},
    {"tls-cert", required_argument, NULL, 'C'}, {"tls-key", required_argument, NULL, 'K'},
    {"tokens", required_argument, NULL, 'T'}, {"api-auth", required_argument, NULL, 'A'},
    {"http-threads", required_argument, NULL, 'N'}, {"web", required_argument, NULL, 'W'},
    {"read-only", no_argument, NULL, 'R'},          {"config", required_argument, NULL, 'c'},
    {NULL, 0, NULL, 0},
};

/* The configuration: the file and the environment (conf_load), then the options over them.
 * Its strings back the settings for the server's life (static: still reachable at exit). */
static struct server_config cf;

/* Reads the options into `cli` (checked as the file's values are) and the file's path.
 * -1: the program is done (help, version); 0: go on; 2: a usage error, said. */
static int parse_options(int argc, char **argv, struct server_config *cli, const char **cfg_path)
{
    const struct conf_table *t = &server_config_table;
    int o;
    while ((o = getopt_long(argc, argv, "d:z:k:a:vhc:", opts, NULL)) != -1) {
        const struct option *opt = opts;
        while (opt->name && opt->val != o)
            opt++;
        int k = opt->name ? conf_key_find(t, opt->name) : -1;
        if (k >= 0) {
            char where[64], err[1024];
            snprintf(where, sizeof where, "--%s", opt->name);
            if (conf_set(t, server_config_values(cli), k, optarg ? optarg : "true", where, err,
                         sizeof err) < 0) {
                fprintf(stderr, "sidetrack-server: %s\n", err);
                return 2;
            }
            continue;
        }
        switch (o) {
        case 'c': *cfg_path = optarg; break;
        case 'h': usage(stdout); return -1;
        case 'V': printf("sidetrack-server 0.1.0\n"); return -1;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sidetrack-server: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* Fills `cf`: defaults < file < $SIDETRACK_SRV_* < options. 0, -1 (done) or 2 (said). */
static int configure(int argc, char **argv)
{
    static struct server_config cli;
    const struct conf_table *t = &server_config_table;
    const char *cfg_path = NULL;
    char err[1024];
    int r = parse_options(argc, argv, &cli, &cfg_path);
    if (r == 0 && conf_load(t, server_config_values(&cf), cfg_path, err, sizeof err) < 0) {
        fprintf(stderr, "sidetrack-server: %s\n", err);
        r = 2;
    }
    if (r == 0)
        conf_overlay(t, server_config_values(&cf), server_config_values(&cli));
    conf_free(t, server_config_values(&cli));
    const char *file = conf_path(t, cfg_path);
    if (r == 0 && file)
        server_log("info", "read the configuration file %s", file);
    return r;
}

int main(int argc, char **argv)
{
    int r = configure(argc, argv);
    if (r != 0)
        return r < 0 ? 0 : r;
    const char *data = cf.str[SCFG_DATA], *keyfile = cf.str[SCFG_KEY], *allow = cf.str[SCFG_ALLOW];
    const char *endpoint = cf.str[SCFG_ZMQ] ? cf.str[SCFG_ZMQ] : SERVER_DEFAULT_ENDPOINT;
    const char *http_listen_addr = cf.str[SCFG_HTTP], *tls_cert = cf.str[SCFG_TLS_CERT];
    const char *tls_key = cf.str[SCFG_TLS_KEY], *tokens = cf.str[SCFG_TOKENS];
    const char *web_root = cf.str[SCFG_WEB];
    bool api_auth = cf.num[SCFG_API_AUTH] == SCFG_API_AUTH_TOKEN;
    bool read_only = cf.num[SCFG_READ_ONLY] != 0;
    unsigned http_threads = cf.num[SCFG_HTTP_THREADS];
    verbose = cf.num[SCFG_VERBOSE] != 0;
    if (!data) {
        fprintf(stderr, "sidetrack-server: --data DIR is required (the central store; or "
                        "data = DIR in the configuration file)\n");
        return 2;
    }
    if (!tls_cert != !tls_key) {
        fprintf(stderr, "sidetrack-server: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (tls_cert && !http_listen_addr) {
        fprintf(stderr, "sidetrack-server: --tls-cert needs --http ADDR:PORT\n");
        return 2;
    }
    if (read_only && !http_listen_addr) {
        fprintf(stderr, "sidetrack-server: --read-only needs --http ADDR:PORT\n");
        return 2;
    }
    bool zmq_on = !read_only && strcmp(endpoint, "off") != 0;
    if (!zmq_on && !http_listen_addr) {
        fprintf(stderr, "sidetrack-server: with --zmq off, --http is needed (else nothing listens)\n");
        return 2;
    }
    if (!read_only && (r = ensure_dir(data)) < 0) {
        server_log("error", "cannot create %s: %s", data, strerror(-r));
        return 1;
    }
    char kbuf[PATH_MAX], abuf[PATH_MAX];
    char pub[SYNC_KEY_Z85 + 1] = "", sec[SYNC_KEY_Z85 + 1] = "";
    if (zmq_on && !keyfile) {
        snprintf(kbuf, sizeof kbuf, "%s/server.key", data);
        keyfile = kbuf;
        if (access(kbuf, F_OK) != 0) {
            if ((r = sync_keys_gen(data, "server", pub)) < 0) {
                server_log("error", "cannot make the server's key pair in %s: %s", data, strerror(-r));
                return 1;
            }
            server_log("info", "made the server's key pair: give %s/server.pub to the agents", data);
        }
    }
    if (zmq_on && !allow) {
        snprintf(abuf, sizeof abuf, "%s/agents.d", data);
        allow = abuf;
        ensure_dir(abuf);
    }
    if (zmq_on && (r = sync_keys_read_pair(keyfile, pub, sec)) < 0) {
        server_log("error", "%s: %s", keyfile,
            r == -EPERM     ? "others may read it: chmod 600 it (a readable secret key is not "
                              "secret)"
            : r == -EBADMSG ? "not a key pair made by 'sidetrack keys gen'"
                            : strerror(-r));
        return 1;
    }

    struct server sv = {0};
    struct http_server *http = NULL;
    int rc = 1;
    sync_buf_init(&sv.out);
    if ((r = store_open(&sv.store, data, read_only ? STORE_RDONLY : 0, 0)) < 0) {
        server_log("error", "cannot open the store in %s: %s", data, store_strerror(r));
        return 1;
    }
    if ((r = ingest_open(&sv.ingest, sv.store, verbose)) < 0) {
        server_log("error", "%s", strerror(-r));
        goto out;
    }
    if ((r = stn_open(&notifier, 5000)) < 0)
        server_log("warning", "cannot notify systemd at $NOTIFY_SOCKET: %s", strerror(-r));
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (http_listen_addr) {
        char tbuf[PATH_MAX], spool[PATH_MAX];
        if (!tokens) {
            snprintf(tbuf, sizeof tbuf, "%s/tokens.d", data);
            tokens = tbuf;
            if (!read_only)
                ensure_dir(tbuf);
        }
        /* Uploads are spooled next to the blobs they become, so that keeping one is a rename. */
        uint8_t zero_sha[32] = {0};
        char part[PATH_MAX];
        if (read_only) { /* nothing is kept: bodies (refused anyway) go to the temp dir */
            const char *tmp = getenv("TMPDIR");
            snprintf(spool, sizeof spool, "%s", tmp && *tmp ? tmp : "/tmp");
        } else if ((r = store_blob_upload_path(sv.store, zero_sha, true, part, sizeof part)) < 0) {
            server_log("error", "cannot make the upload folder in %s: %s", data, strerror(-r));
            goto out;
        } else {
            snprintf(spool, sizeof spool, "%.*s", (int)(strrchr(part, '/') - part), part);
        }
        struct http_options ho = {.listen = http_listen_addr, .tls_cert = tls_cert,
                                  .tls_key = tls_key, .tokens_dir = tokens,
                                  .spool_dir = spool, .threads = http_threads};
        if ((r = http_start(&http, &ho)) < 0) {
            server_log("error", "cannot serve HTTP%s on %s: %s", tls_cert ? "S" : "",
                       http_listen_addr,
                       r == -EINVAL ? "give ADDRESS:PORT, e.g. 127.0.0.1:5000" : strerror(-r));
            goto out;
        }
        http_require_auth_everywhere(http, api_auth);
        /* HTTP routes */
        if ((read_only && (r = web_readonly_register(http)) < 0) ||
            (!read_only && (r = ingest_http_register(http, sv.ingest)) < 0) ||
            (r = mlflow_api_register(http, sv.store)) < 0 ||
            (r = metrics_view_register(http, sv.store)) < 0) {
            server_log("error", "cannot set up the HTTP routes: %s", strerror(-r));
            goto out;
        }
        /* The web UI last: its routes match by prefix. */
        char wbuf[PATH_MAX];
        const char *web = web_root ? web_root : web_default_root(wbuf, sizeof wbuf);
        if (strcmp(web, "off") && (r = web_register(http, web)) < 0) {
            /* A missing default is no reason to stop serving the API: say it and go on. */
            server_log(web_root ? "error" : "warning",
                       "cannot serve the web UI from %s: %s (give --web DIR, or --web off)", web,
                       r == -ENOENT ? "no index.html there" : strerror(-r));
            if (web_root)
                goto out;
        }
        if ((r = http_listen(http)) < 0) {
            server_log("error", "cannot serve HTTP%s on %s: %s", tls_cert ? "S" : "",
                       http_listen_addr,
                       r == -EADDRNOTAVAIL ? "the address is in use or not this machine's, or "
                                             "the certificate or key is not valid PEM"
                                           : strerror(-r));
            goto out;
        }
        server_log("info", "serving HTTP%s on %s (port %u; MLflow API %s%s; tokens in %s)",
                   tls_cert ? "S" : "", http_listen_addr, http_port(http),
                   api_auth ? "needs a token" : "open", read_only ? ", read-only" : "", tokens);
    }

    rc = 0;
    if (zmq_on) {
        sv.ctx = zmq_ctx_new();
        if (!sv.ctx || (r = zap_start(&sv.zap, sv.ctx, allow)) < 0) {
            server_log("error", "cannot start the key check: %s", strerror(r < 0 ? -r : errno));
            goto out;
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
            goto out;
        }
        server_log("info", "serving %s on %s (allow-list %s, public key %s)", data, endpoint,
                   allow, pub);
        stn_send(&notifier, "READY=1");
        rc = serve(&sv);
    } else {
        stn_send(&notifier, "READY=1");
        while (!stop_signal) {
            notify_tick(&sv);
            nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
        }
    }
out:
    stn_send(&notifier, "STOPPING=1");
    stn_close(&notifier);
    http_stop(http);
    struct ingest_stats st = {0};
    if (sv.ingest)
        ingest_stats(sv.ingest, &st);
    if (rc == 0)
        server_log("info",
                   "stopped: %llu batches, %llu ops, %llu points applied; %llu agents refused",
                   (unsigned long long)st.batches, (unsigned long long)st.ops,
                   (unsigned long long)st.points,
                   (unsigned long long)(st.refused + (sv.zap ? zap_refused(sv.zap) : 0)));
    if (sv.sock)
        zmq_close(sv.sock);
    if (sv.zap)
        zap_stop(sv.zap);
    if (sv.ctx)
        zmq_ctx_term(sv.ctx);
    ingest_close(sv.ingest);
    sync_buf_free(&sv.out);
    if (!read_only)
        store_sync(sv.store);
    store_close(sv.store);
    conf_free(&server_config_table, server_config_values(&cf));
    return rc;
}
