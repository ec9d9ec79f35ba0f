/* main.c — sidetrackd: options, signals and the drain loop.
 *
 * The loop drains every lane of every ring in passes of at most --batch records, each pass
 * one LMDB transaction. It sleeps only when a pass found nothing (1 ms, doubling up to
 * --idle-sleep), so a busy node is drained continuously and an idle one costs little.
 * SIGTERM and SIGINT end it after a last drain and an fsync: exit status 0.
 * Once a second it publishes its state in DATA/agent.status (status.c) for `sidetrack status`.
 */
#include "admin.h"
#include "agent.h"
#include "config.h"
#include "netaddr.h"
#include "mlflow_target.h"
#include "notify.h"
#include "replicate.h"
#include "sysmetrics.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGHUP: re-read the configuration in the loop, between drain passes. */
static volatile sig_atomic_t reload_requested;
static void on_reload(int sig)
{
    (void)sig;
    reload_requested = 1;
}

static struct replicator *volatile replicator;
static struct mlflow_agent *volatile mlflow_agent;
static void on_sync_now(int sig)
{
    (void)sig;
    if (replicator)
        replicate_kick(replicator); /* an atomic store: safe in a handler */
    mlflow_target_kick(mlflow_agent); /* likewise */
}

/* SIGUSR1: replicate / push now (systemctl kill -s USR1). */
static void catch_sync_now(void)
{
    struct sigaction su = {.sa_handler = on_sync_now};
    sigemptyset(&su.sa_mask);
    su.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &su, NULL);
}

/* systemd's STATUS= line (systemctl status): records/s since the last line, lanes, sync. */
static void notify_status(struct st_notify *sn, const struct agent *a)
{
    static uint64_t prev_records, prev_ns;
    uint64_t now = agent_now_ns(), lanes = 0;
    for (size_t k = 0; k < a->narenas; k++)
        for (uint32_t i = 0; i < a->arenas[k]->arena.lane_count; i++)
            lanes += a->arenas[k]->lanes[i].adopted;
    double rate = prev_ns && now > prev_ns
                      ? (double)(a->records_total - prev_records) * 1e9 / (double)(now - prev_ns)
                      : 0;
    prev_records = a->records_total;
    prev_ns = now;
    char sync[128] = "no sync";
    if (a->repl) {
        struct replicate_status rs;
        replicate_get_status(a->repl, &rs);
        snprintf(sync, sizeof sync, "sync %s, %llu ops behind", rs.connected ? "connected"
                 : "not connected", (unsigned long long)rs.backlog_ops);
    }
    stn_status(sn, "%.0f records/s, %llu lanes in %zu rings, %llu records stored, %s%s", rate,
               (unsigned long long)lanes, a->narenas, (unsigned long long)a->records_total, sync,
               a->last_error_ns ? "; last error: see the journal" : "");
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: sidetrackd [OPTIONS]\n"
            "\n"
            "The sidetrack node agent: drains the shared-memory rings that training processes\n"
            "log into, and stores their records in the node's store (LMDB).\n"
            "\n"
            "Options:\n"
            "  -d, --data DIR           store directory (default: $SIDETRACK_DATA, else\n"
            "                           /var/lib/sidetrack as root, ~/.local/share/sidetrack)\n"
            "  -r, --ring-dir DIR       ring directory (default: $SIDETRACK_RING_DIR, else\n"
            "                           /dev/shm/sidetrack); producers must use the same\n"
            "  -f, --fsync-interval MS  durability window: fsync the store at most every MS\n"
            "                           milliseconds (default 100). 0 fsyncs every commit.\n"
            "                           A killed agent loses nothing either way; a power loss\n"
            "                           or kernel crash can lose up to the last MS of records.\n"
            "  -b, --batch N            most records in one store transaction (default 262144)\n"
            "  -i, --idle-sleep MS      longest sleep when the rings are empty (default 20)\n"
            "  -m, --map-size MIB       initial LMDB map size of a new store (default 1024);\n"
            "                           the map grows by itself when it fills\n"
            "  -v, --verbose            say which rings are drained\n"
            "  -c, --config FILE        the configuration file (default: "
            AGENT_CONFIG_DEFAULT_PATH "\n"
            "                           if it exists); $SIDETRACK_<KEY> overrides it, and\n"
            "                           the options override both\n"
            "\n"
            "Replication to a sidetrack-server (see docs/sync.md):\n"
            "  -s, --server URL         the server: tcp://HOST:PORT (ZeroMQ, CURVE keys) or\n"
            "                           https://HOST:PORT (bearer token); default: none\n"
            "      --server-key FILE    tcp://: the server's public key (its server.pub)\n"
            "      --key FILE           tcp://: this agent's key pair (sidetrack keys gen NAME)\n"
            "      --server-token FILE  https://: this agent's token (sidetrack keys token NAME;\n"
            "                           mode 0600, the same file in the server's tokens dir)\n"
            "      --ca FILE            https://: the CA (PEM) that signed the server's\n"
            "                           certificate (default: the system's trusted CAs)\n"
            "      --insecure-http      allow http:// to a host that is not loopback (the\n"
            "                           token then crosses the network in the clear)\n"
            "      --sync-interval MS   sync this often when connected (default 1000)\n"
            "      --sync-backlog N     and at once when N changes wait (default 10000)\n"
            "\n"
            "Replication to an MLflow tracking server (see docs/mlflow-push.md):\n"
            "      --mlflow URL         push the runs to http(s)://HOST:PORT through MLflow's\n"
            "                           REST API (credentials: MLFLOW_TRACKING_TOKEN, or\n"
            "                           MLFLOW_TRACKING_USERNAME and _PASSWORD)\n"
            "      --mlflow-interval SEC  push this often (default 60)\n"
            "\n"
            "      --system-metrics-interval SEC  record CPU, memory, disk, network and GPU\n"
            "                           figures on the node's running runs this often\n"
            "                           (default 10; 0: off). See docs/agent.md.\n"
            "\n"
            "Health (see docs/agent.md):\n"
            "      --metrics-listen HOST:PORT  serve Prometheus's text format at\n"
            "                           http://HOST:PORT/metrics (default: off; use a\n"
            "                           loopback address such as 127.0.0.1:9464). The status\n"
            "                           socket DATA/" ADMIN_SOCKET_NAME " is always served.\n"
            "  -h, --help               show this help\n"
            "      --version            show the version\n"
            "\n"
            "Signals: SIGTERM and SIGINT drain what is published, fsync, and exit 0;\n"
            "SIGUSR1 syncs now (sidetrack sync now); SIGHUP re-reads the configuration.\n"
            "See docs/agent.md.\n");
}

static int parse_u32(const char *s, const char *what, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > max) {
        fprintf(stderr, "sidetrackd: %s: expected a whole number from 0 to %u, got '%s'\n", what,
                max, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Opens the system metrics' sampler (at start, or when a reload switches them on); a failure
 * leaves them off and says why. $SIDETRACK_PROC_ROOT (tests only) reads a fake tree. */
static void sysm_start(struct sysm_recorder **sysm, const char *data_dir, uint32_t interval_s,
                       uint64_t now_ns)
{
    int e = sysm_recorder_open(sysm, getenv("SIDETRACK_PROC_ROOT"), data_dir, interval_s,
                               now_ns);
    if (e < 0) {
        *sysm = NULL;
        agent_log("warning", "system metrics are off: %s", store_strerror(e));
        return;
    }
    unsigned gpus = sysm_gpu_count(sysm_recorder_sampler(*sysm));
    agent_log("info", "recording system metrics every %u s (%u GPU%s)", interval_s, gpus,
              gpus == 1 ? "" : "s");
}

/* SIGHUP: applies what can change while running (verbose, a non-zero fsync-interval, the
 * sync pacing, the system metrics' interval) and names what needs a restart. `cf` holds the
 * values in force; keys given on the command line keep winning. A broken file changes
 * nothing. */
static void reload_config(struct agent *a, struct sysm_recorder **sysm, const char *cfg_path,
                          struct agent_config *cf, uint32_t cli_set, uint32_t start_fsync_ms)
{
    struct agent_config n;
    char err[1024];
    const char *file = agent_config_path(cfg_path);
    const char *src = file ? file : "the environment";
    if (agent_config_load(&n, cfg_path, err, sizeof err) < 0) {
        agent_log("error", "reload: %s; keeping the old settings", err);
        return;
    }
    char applied[512] = "";
    size_t len = 0;
    for (int k = 0; k < ACFG_NKEYS; k++) {
        const char *name = agent_config_key_name(k);
        bool changed = (cf->str[k] || n.str[k])
                           ? !cf->str[k] || !n.str[k] || strcmp(cf->str[k], n.str[k])
                           : cf->num[k] != n.num[k];
        if (!changed)
            continue;
        if (cli_set & (1u << k)) {
            agent_log("info", "reload: %s changed in %s, but the command line sets it", name,
                      src);
            continue;
        }
        /* An fsync-interval of 0 relies on a store opened to fsync every commit. */
        bool live = k == ACFG_VERBOSE || k == ACFG_SYNC_INTERVAL || k == ACFG_SYNC_BACKLOG ||
                    k == ACFG_SYSTEM_METRICS_INTERVAL ||
                    (k == ACFG_FSYNC_INTERVAL && (n.num[k] != 0 || start_fsync_ms == 0));
        if (!live) {
            agent_log("warning", "reload: %s changed in %s: needs a restart", name, src);
            continue;
        }
        cf->num[k] = n.num[k];
        if (k == ACFG_VERBOSE)
            a->opt.verbose = n.num[k] != 0;
        else if (k == ACFG_FSYNC_INTERVAL)
            a->opt.fsync_interval_ms = n.num[k];
        else if (k == ACFG_SYSTEM_METRICS_INTERVAL && !*sysm && n.num[k])
            sysm_start(sysm, a->opt.data_dir, n.num[k], agent_now_ns());
        else if (k == ACFG_SYSTEM_METRICS_INTERVAL && *sysm)
            sysm_recorder_set_interval(*sysm, n.num[k]);
        else if (k == ACFG_SYNC_INTERVAL)
            a->opt.sync_interval_ms = n.num[k];
        else if (k == ACFG_SYNC_BACKLOG)
            a->opt.sync_backlog = n.num[k];
        if (k == ACFG_SYNC_INTERVAL || k == ACFG_SYNC_BACKLOG)
            replicate_set_pacing(a->repl, a->opt.sync_interval_ms, a->opt.sync_backlog);
        if (len < sizeof applied)
            len += (size_t)snprintf(applied + len, sizeof applied - len, "%s%s %u",
                                    len ? ", " : "", name, n.num[k]);
    }
    agent_config_free(&n);
    agent_log("info", "reloaded %s: %s", src, len ? applied : "nothing to change");
}

/* Stops the sync targets (at exit, or when start-up fails after they started): what is not
 * acknowledged stays in the journal, and what was pushed is recorded, so the next start
 * resumes. The signal handler's pointers go first. */
static void stop_targets(struct agent *a)
{
    replicator = NULL;
    mlflow_agent = NULL;
    if (a->repl)
        replicate_stop(a->repl);
    if (a->mlflow)
        mlflow_target_stop(a->mlflow);
    a->repl = NULL;
    a->mlflow = NULL;
}

/* Answers the requests waiting on the admin socket: both documents, rendered now by the
 * thread that owns the state. */
static void admin_answer(struct agent_admin *ad, struct agent *a)
{
    char *status = NULL, *prom = NULL;
    size_t n;
    FILE *f = open_memstream(&status, &n);
    if (f) {
        agent_status_render(a, f, false);
        fclose(f);
    }
    if ((f = open_memstream(&prom, &n))) {
        agent_prom_render(a, f);
        fclose(f);
    }
    agent_admin_publish(ad, status, prom);
}

int main(int argc, char **argv)
{
    char data_buf[4096];
    /* The file and the environment first (config.c); the options below override them. */
    const char *cfg_path = NULL;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) && i + 1 < argc)
            cfg_path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            cfg_path = argv[i] + 9;
    }
    static struct agent_config cf; /* its strings back opt's for the agent's life */
    char cfg_err[1024];
    if (agent_config_load(&cf, cfg_path, cfg_err, sizeof cfg_err) < 0) {
        fprintf(stderr, "sidetrackd: %s\n", cfg_err);
        return 2;
    }
    uint32_t cli_set = 0; /* keys (1u << ACFG_*) given as options */
    struct agent_options opt = {
        .data_dir = cf.str[ACFG_DATA] ? cf.str[ACFG_DATA]
                                      : store_default_dir(data_buf, sizeof data_buf),
        .ring_dir = cf.str[ACFG_RING_DIR] ? cf.str[ACFG_RING_DIR] : "/dev/shm/sidetrack",
        .fsync_interval_ms = cf.num[ACFG_FSYNC_INTERVAL],
        .batch_records = 262144,
        .idle_sleep_ms = 20,
        .verbose = cf.num[ACFG_VERBOSE] != 0,
        .server = cf.str[ACFG_SERVER],
        .server_key = cf.str[ACFG_SERVER_KEY],
        .key = cf.str[ACFG_KEY],
    };
    if (cf.set & (1u << ACFG_SYNC_INTERVAL))
        opt.sync_interval_ms = cf.num[ACFG_SYNC_INTERVAL];
    if (cf.set & (1u << ACFG_SYNC_BACKLOG))
        opt.sync_backlog = cf.num[ACFG_SYNC_BACKLOG];
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"ring-dir", required_argument, NULL, 'r'},
        {"fsync-interval", required_argument, NULL, 'f'},
        {"batch", required_argument, NULL, 'b'},
        {"idle-sleep", required_argument, NULL, 'i'},
        {"map-size", required_argument, NULL, 'm'},
        {"verbose", no_argument, NULL, 'v'},
        {"server", required_argument, NULL, 's'},
        {"server-key", required_argument, NULL, 'S'},
        {"key", required_argument, NULL, 'K'},
        {"sync-interval", required_argument, NULL, 'I'},
        {"sync-backlog", required_argument, NULL, 'B'},
        {"mlflow", required_argument, NULL, 'M'},
        {"mlflow-interval", required_argument, NULL, 'N'},
        {"server-token", required_argument, NULL, 'T'},
        {"ca", required_argument, NULL, 'C'},
        {"insecure-http", no_argument, NULL, 'H'},
        {"system-metrics-interval", required_argument, NULL, 'Y'},
        {"metrics-listen", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"config", required_argument, NULL, 'c'},
        {0},
    };
    const char *arg_server_token = cf.str[ACFG_SERVER_TOKEN], *arg_ca = cf.str[ACFG_CA];
    bool arg_insecure_http = false;
    struct mlflow_target_options arg_mlflow = {.url = cf.str[ACFG_MLFLOW],
                                               .interval_s = cf.num[ACFG_MLFLOW_INTERVAL]};
    if (!arg_mlflow.interval_s)
        arg_mlflow.interval_s = 1;
    uint32_t arg_sysm_interval = cf.num[ACFG_SYSTEM_METRICS_INTERVAL];
    const char *arg_metrics_listen = cf.str[ACFG_METRICS_LISTEN];
    int c;
    while ((c = getopt_long(argc, argv, "d:r:f:b:i:m:s:vhc:", longopts, NULL)) != -1) {
        static const char opt_chars[] = "drfsSKTCIBMNYPv";
        static const int opt_keys[] = {ACFG_DATA, ACFG_RING_DIR, ACFG_FSYNC_INTERVAL,
                                       ACFG_SERVER, ACFG_SERVER_KEY, ACFG_KEY,
                                       ACFG_SERVER_TOKEN, ACFG_CA, ACFG_SYNC_INTERVAL,
                                       ACFG_SYNC_BACKLOG, ACFG_MLFLOW, ACFG_MLFLOW_INTERVAL,
                                       ACFG_SYSTEM_METRICS_INTERVAL, ACFG_METRICS_LISTEN,
                                       ACFG_VERBOSE};
        const char *oc = c > 0 ? strchr(opt_chars, c) : NULL;
        if (oc)
            cli_set |= 1u << opt_keys[oc - opt_chars];
        switch (c) {
        case 'c':
            /* Read before the options (above); an abbreviation like --conf is not. */
            if (!cfg_path || strcmp(optarg, cfg_path)) {
                fprintf(stderr, "sidetrackd: spell out --config FILE\n");
                return 2;
            }
            break;
        case 'd':
            opt.data_dir = optarg;
            break;
        case 'r':
            opt.ring_dir = optarg;
            break;
        case 'f':
            if (parse_u32(optarg, "--fsync-interval", 3600000, &opt.fsync_interval_ms) < 0)
                return 2;
            break;
        case 'b':
            if (parse_u32(optarg, "--batch", 16u << 20, &opt.batch_records) < 0)
                return 2;
            if (opt.batch_records == 0) {
                fprintf(stderr, "sidetrackd: --batch must be at least 1\n");
                return 2;
            }
            break;
        case 'i':
            if (parse_u32(optarg, "--idle-sleep", 10000, &opt.idle_sleep_ms) < 0)
                return 2;
            break;
        case 'm':
            if (parse_u32(optarg, "--map-size", 1u << 24, &opt.map_size_mib) < 0)
                return 2;
            break;
        case 'v':
            opt.verbose = true;
            break;
        case 's':
            opt.server = optarg;
            break;
        case 'S':
            opt.server_key = optarg;
            break;
        case 'K':
            opt.key = optarg;
            break;
        case 'T':
            arg_server_token = optarg;
            break;
        case 'M':
            arg_mlflow.url = optarg;
            break;
        case 'N':
            if (parse_u32(optarg, "--mlflow-interval", 86400, &arg_mlflow.interval_s) < 0)
                return 2;
            if (!arg_mlflow.interval_s)
                arg_mlflow.interval_s = 1;
            break;
        case 'Y':
            if (parse_u32(optarg, "--system-metrics-interval", 86400, &arg_sysm_interval) < 0)
                return 2;
            break;
        case 'C':
            arg_ca = optarg;
            break;
        case 'P':
            arg_metrics_listen = optarg;
            break;
        case 'H':
            arg_insecure_http = true;
            break;
        case 'I':
            if (parse_u32(optarg, "--sync-interval", 86400000, &opt.sync_interval_ms) < 0)
                return 2;
            break;
        case 'B': {
            uint32_t v;
            if (parse_u32(optarg, "--sync-backlog", 1u << 30, &v) < 0)
                return 2;
            opt.sync_backlog = v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("sidetrackd %s\n", SIDETRACK_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sidetrackd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!opt.data_dir) {
        fprintf(stderr, "sidetrackd: no data directory: set --data or $SIDETRACK_DATA\n");
        return 2;
    }
    bool metrics_loopback = false;
    if (arg_metrics_listen) {
        struct sockaddr_storage ss;
        bool v6;
        if (netaddr_parse_listen(arg_metrics_listen, &ss, &v6) < 0) {
            fprintf(stderr, "sidetrackd: metrics-listen: '%s' is not HOST:PORT with a numeric "
                            "host (like 127.0.0.1:9464 or [::1]:9464)\n", arg_metrics_listen);
            return 2;
        }
        metrics_loopback = netaddr_is_loopback(&ss);
    }
    bool zmq_server = opt.server && !strncmp(opt.server, "tcp://", 6);
    if (zmq_server && (!opt.server_key || !opt.key)) {
        fprintf(stderr, "sidetrackd: --server tcp://... needs --server-key (the server's "
                        "server.pub) and --key (this agent's key pair: sidetrack keys gen NAME)\n");
        return 2;
    }
    if (opt.server && !zmq_server && !arg_server_token) {
        fprintf(stderr, "sidetrackd: --server %s needs --server-token FILE (this agent's token: "
                        "sidetrack keys token NAME)\n", opt.server);
        return 2;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction sh = {.sa_handler = on_reload, .sa_flags = SA_RESTART};
    sigemptyset(&sh.sa_mask);
    sigaction(SIGHUP, &sh, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct agent a;
    char err[1024] = "";
    if (agent_init(&a, &opt, err, sizeof err) < 0) {
        fprintf(stderr, "sidetrackd: %s\n", err);
        agent_fini(&a);
        return 1;
    }
    agent_log("info", "draining rings in %s into %s (fsync %s%u ms, batch %u)", opt.ring_dir,
              opt.data_dir, opt.fsync_interval_ms ? "every " : "on every commit, ",
              opt.fsync_interval_ms, opt.batch_records);

    if (opt.server) {
        struct replicate_options ro = {
            .endpoint = opt.server,
            .server_key = opt.server_key,
            .key = opt.key,
            .token_file = arg_server_token,
            .ca_file = arg_ca,
            .insecure_http = arg_insecure_http,
            .interval_ms = opt.sync_interval_ms,
            .backlog_threshold = opt.sync_backlog,
        };
        struct replicator *rp = NULL;
        if (replicate_start(&rp, a.store, &ro, err, sizeof err) < 0) {
            fprintf(stderr, "sidetrackd: sync: %s\n", err);
            agent_fini(&a);
            return 1;
        }
        a.repl = replicator = rp;
        catch_sync_now();
        agent_log("info", "replicating to %s", opt.server);
    }
    if (arg_mlflow.url) {
        struct mlflow_agent *ma = NULL;
        if (mlflow_target_start(&ma, a.store, &arg_mlflow, err, sizeof err) < 0) {
            fprintf(stderr, "sidetrackd: mlflow: %s\n", err);
            stop_targets(&a);
            agent_fini(&a);
            return 1;
        }
        a.mlflow = mlflow_agent = ma;
        catch_sync_now();
        agent_log("info", "pushing runs to the MLflow server %s every %u s", arg_mlflow.url,
                  arg_mlflow.interval_s);
    }
    a.version = SIDETRACK_VERSION;
    a.start_ns = agent_now_ns();
    struct agent_admin *admin = NULL;
    struct agent_admin_options ao = {.data_dir = opt.data_dir,
                                     .metrics_listen = arg_metrics_listen};
    if (agent_admin_start(&admin, &ao, err, sizeof err) < 0) {
        fprintf(stderr, "sidetrackd: %s\n", err);
        stop_targets(&a);
        agent_fini(&a);
        return 1;
    }
    if (arg_metrics_listen) {
        /* HOST as given, the port as bound (port 0 picks one) */
        int hl = (int)(strrchr(arg_metrics_listen, ':') - arg_metrics_listen);
        agent_log(metrics_loopback ? "info" : "warning",
                  "Prometheus metrics at http://%.*s:%u/metrics%s", hl, arg_metrics_listen,
                  agent_admin_tcp_port(admin),
                  metrics_loopback ? ""
                                   : " (not a loopback address: anyone who can reach it reads "
                                     "them)");
    }
    /* System metrics: sampled here, between drain passes, by the store's one writer thread.
     * $SIDETRACK_PROC_ROOT (tests only) reads a fake proc/ tree. */
    struct sysm_recorder *sysm = NULL;
    int sysm_err = 0;
    if (arg_sysm_interval)
        sysm_start(&sysm, opt.data_dir, arg_sysm_interval, a.start_ns);
    agent_status_write(&a, false);
    /* systemd (Type=notify): ready now; pings come from the loop itself, so a hung loop
     * stops them and the watchdog restarts the agent. */
    static struct st_notify sn;
    int nr = stn_open(&sn, 5000);
    if (nr < 0)
        agent_log("warning", "cannot notify systemd at $NOTIFY_SOCKET: %s", strerror(-nr));
    stn_send(&sn, "READY=1");

    admin_answer(admin, &a); /* a first rendering, served even if the loop never answers */
    uint32_t sleep_ms = 1;
    int last_err = 0;
    while (!stop_requested) {
        if (reload_requested) {
            reload_requested = 0;
            reload_config(&a, &sysm, cfg_path, &cf, cli_set, opt.fsync_interval_ms);
        }
        stn_tick(&sn);
        if (stn_status_due(&sn))
            notify_status(&sn, &a);
        agent_maybe_scan(&a);
        uint64_t commits = a.commits;
        int r = agent_drain_pass(&a);
        uint64_t now = agent_now_ns();
        if (a.commits != commits)
            a.last_commit_ns = now;
        a.last_pass_records = r > 0 ? (uint32_t)r : 0;
        if (now - a.last_status_ns >= 1000000000ull)
            agent_status_write(&a, false); /* `sidetrack status` reads it */
        if (agent_admin_wanted(admin))
            admin_answer(admin, &a);
        int sm = sysm_recorder_tick(sysm, a.store, now);
        if (sm > 0)
            a.unsynced = true; /* fsynced with the next durability window */
        if (sm < 0 && sm != sysm_err)
            agent_log("error", "system metrics not recorded: %s", store_strerror(sm));
        sysm_err = sm < 0 ? sm : 0;
        if (r < 0 && r != -EAGAIN) {
            a.last_error_ns = now; /* drain.c wrote last_error */
            if (r != last_err)
                agent_log("error", "store write failed: %s; records stay in the rings and are "
                                   "retried every second",
                          store_strerror(r));
            last_err = r;
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
            continue;
        }
        if (last_err && r >= 0) {
            agent_log("info", "store writes work again");
            last_err = 0;
        }
        int s = agent_maybe_sync(&a, false);
        if (s < 0) {
            agent_log("error", "fsync of the store failed: %s", store_strerror(s));
            snprintf(a.last_error, sizeof a.last_error, "fsync of the store failed: %s",
                     store_strerror(s));
            a.last_error_ns = agent_now_ns();
        }
        if (r > 0) {
            sleep_ms = 1;
            continue;
        }
        struct timespec ts = {0, (long)sleep_ms * 1000000};
        nanosleep(&ts, NULL);
        if (sleep_ms < opt.idle_sleep_ms)
            sleep_ms = sleep_ms * 2 > opt.idle_sleep_ms ? opt.idle_sleep_ms : sleep_ms * 2;
    }

    stn_send(&sn, "STOPPING=1");
    stn_close(&sn);
    agent_admin_stop(admin); /* `sidetrack status` reads the file from now on */
    /* Last drain: everything published before the signal goes in. */
    agent_scan(&a);
    int r;
    int rounds = 0;
    while ((r = agent_drain_pass(&a)) != 0 && rounds++ < 10000) {
        if (r < 0 && r != -EAGAIN)
            break;
    }
    int s = agent_maybe_sync(&a, true);
    stop_targets(&a);
    sysm_recorder_close(sysm);
    agent_status_write(&a, true); /* "stopped", with when it was last seen */
    agent_log("info", "stopped after storing %llu records in %llu commits",
              (unsigned long long)a.records_total, (unsigned long long)a.commits);
    agent_fini(&a);
    agent_config_free(&cf);
    return (r < 0 && r != -EAGAIN) || s < 0 ? 1 : 0;
}
