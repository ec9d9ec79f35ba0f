/* e2e.c — scenarios "e2e" and "e2e-window100": from a producer process's first log call
 * until the agent has committed every record to its store.
 *
 * The parent makes a scratch ring directory (/dev/shm) and store directory ($TMPDIR or /tmp),
 * creates the ring there (4 lanes of 256 MiB, as st_open would with those options, so that
 * the agent finds it at start-up instead of at its next once-a-second directory scan), starts
 * sidetrackd on them and waits until the agent has mapped the ring. Then it forks the
 * producer: st_open, one run, four keys, N metric points (N/4 steps), st_run_end, st_close.
 * The producer never drops: it watches its lane's committed position (head) every 8192 calls
 * and sleeps while more than 3/4 of the lane is waiting for the agent, so the figure is the
 * agent's sustained rate, and every pause is reported. The parent waits for the producer,
 * then polls the ring until the agent has freed the lane, which it does only after the LMDB
 * transaction holding the lane's last records has committed. seconds runs from the first log
 * call to that moment. Then SIGTERM stops the agent (it drains and fsyncs), the store is
 * opened read-only, every key's point count is checked against what was logged, and
 * store_info's used_bytes / N gives the bytes one metric point costs on disk.
 *
 * "e2e" runs the agent with --fsync-interval 0: each commit is fsynced before the agent frees
 * ring space, so "committed" means durable. "e2e-window100" uses the default 100 ms window:
 * committed means in LMDB (safe from an agent crash), durable within 100 ms.
 */
#include "bench.h"
#include "stats.h"

#include "keys.h"
#include "shmlog.h"
#include "sidetrack.h"
#include "store.h"
#include "wire.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define E2E_LANES 4u
#define E2E_LANE_SIZE (256ull << 20)
#define E2E_DEFAULT_OPS 10000000ull
#define E2E_QUICK_OPS 200000ull
#define E2E_PACE_EVERY 8192u
#define E2E_STALL_S 60 /* no commit progress for this long: the agent is stuck */
#define NKEYS 4

static const char *const key_names[NKEYS] = {"train/loss", "train/accuracy", "lr", "grad_norm"};

/* What the producer process tells the parent, in a shared anonymous mapping. */
struct e2e_shared {
    uint64_t t_first, t_last; /* CLOCK_MONOTONIC around the logging loop */
    uint64_t logged, dropped, lost, spilled;
    uint64_t pauses, paused_ns;
    char run_id[33];
    char err[256];
};

/* ---- the producer process ---------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Noise in [-0.5, 0.5): a full mantissa, as real losses have (they compress worse than
 * counters, which keeps store_bytes_per_metric honest). */
static double noise(uint64_t *s) { return (double)(xorshift(s) >> 11) / 9007199254740992.0 - 0.5; }

static struct shmlog_lane_ctl *own_lane(const struct shmlog_arena *a)
{
    uint64_t pid = (uint64_t)(uint32_t)getpid();
    for (uint32_t i = 0; i < a->lane_count; i++) {
        struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(a, i);
        uint64_t w = atomic_load_explicit(&ctl->owner, memory_order_acquire);
        if ((w & 0xffffffffu) == pid && !(w & SHMLOG_OWNER_CLOSED))
            return ctl;
    }
    return NULL;
}

static int producer_main(const char *ring_dir, const struct shmlog_arena *arena, uint64_t n,
                         struct e2e_shared *sh)
{
    st_client *c;
    st_options so = {.ring_dir = ring_dir, .lanes = E2E_LANES, .lane_size = E2E_LANE_SIZE};
    int r = st_open(&c, &so);
    if (r < 0) {
        snprintf(sh->err, sizeof sh->err, "st_open: %s", st_strerror(r));
        return 1;
    }
    st_key keys[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        if ((r = st_key_intern(c, key_names[i], &keys[i])) < 0) {
            snprintf(sh->err, sizeof sh->err, "st_key_intern: %s", st_strerror(r));
            return 1;
        }
    st_run *run;
    if ((r = st_run_start(c, "sidetrack-bench", "e2e", &run)) < 0) {
        snprintf(sh->err, sizeof sh->err, "st_run_start: %s", st_strerror(r));
        return 1;
    }
    snprintf(sh->run_id, sizeof sh->run_id, "%s", st_run_id(run));
    /* The lane was claimed by st_run_start; its position then is in tail_hint. */
    struct shmlog_lane_ctl *ctl = own_lane(arena);
    if (!ctl) {
        snprintf(sh->err, sizeof sh->err, "cannot find the producer's lane in the ring");
        return 1;
    }
    uint64_t base = atomic_load_explicit(&ctl->tail_hint, memory_order_relaxed) + 4096;
    uint64_t high_water = arena->lane_size / 4 * 3;

    uint64_t seed = 0x9e3779b97f4a7c15ull;
    double loss = 2.5, acc = 0.1, lr = 0.1, gnorm = 1.0;
    sh->t_first = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        if (i % E2E_PACE_EVERY == 0) {
            /* Upper bound of our tail once the next E2E_PACE_EVERY records are in. */
            uint64_t tail = base + (i + E2E_PACE_EVERY) * sizeof(struct wire_metric);
            uint64_t head = atomic_load_explicit(&ctl->head, memory_order_acquire);
            if (tail - head > high_water) {
                uint64_t t = now_ns();
                sh->pauses++;
                do {
                    sleep_us(200);
                    head = atomic_load_explicit(&ctl->head, memory_order_acquire);
                } while (tail - head > high_water);
                sh->paused_ns += now_ns() - t;
            }
        }
        int64_t step = (int64_t)(i / NKEYS);
        double v;
        switch (i % NKEYS) {
        case 0:
            loss = loss * 0.99999 + 0.00001 * 0.3;
            v = loss + 0.05 * noise(&seed);
            break;
        case 1:
            acc += (0.95 - acc) * 0.00001;
            v = acc + 0.01 * noise(&seed);
            break;
        case 2:
            if (step % 100000 == 99999)
                lr *= 0.5; /* a step schedule: constant for long stretches */
            v = lr;
            break;
        default:
            gnorm = 0.9 * gnorm + 0.1 * (1.0 + noise(&seed));
            v = gnorm;
            break;
        }
        if ((r = st_log_metric(run, keys[i % NKEYS], v, step)) < 0) {
            snprintf(sh->err, sizeof sh->err, "st_log_metric: %s", st_strerror(r));
            return 1;
        }
    }
    sh->t_last = now_ns();
    sh->logged = n;
    st_stats s;
    st_stats_get(c, &s);
    sh->dropped = s.dropped_metrics;
    sh->lost = s.lost_records;
    sh->spilled = s.spilled_records;
    st_run_end(run, ST_RUN_FINISHED);
    st_close(c);
    return 0;
}

/* ---- the parent -------------------------------------------------------------------------- */

/* SYNC_HTTPS: as SYNC_LIVE, over HTTPS (a bearer token, a scratch CA and certificate). */
enum { SYNC_NONE, SYNC_LIVE, SYNC_CATCHUP, SYNC_HTTPS };

struct e2e {
    const char *name;
    uint32_t fsync_ms;
    int sync_mode;       /* SYNC_*: an agent replicating to a server of the bench's own */
    char server[4096];   /* sidetrack-server */
    char srv_store[512]; /* its store: $TMPDIR/sidetrack-bench-<name>-srv-XXXXXX */
    char srv_log[600];
    char endpoint[64];
    char http_listen[64]; /* SYNC_HTTPS: 127.0.0.1:PORT */
    pid_t server_pid;
    uint64_t n;
    char agent[4096];
    char root[512];  /* /dev/shm/sidetrack-bench-<name>-XXXXXX: the ring dir and agent.log */
    char store[512]; /* $TMPDIR/sidetrack-bench-<name>-XXXXXX */
    char log[600];
    struct shmlog_arena arena;
    pid_t agent_pid, prod_pid;
    struct e2e_shared *sh;
    /* health: a scraper thread GETs /metrics on the agent's socket while it drains */
    bool scrape;
    pthread_t scraper;
    bool scraper_started;
    atomic_bool scrape_stop;
    uint64_t *scrape_ns;
    size_t nscrapes, scrape_cap;
    unsigned scrape_errors;
};

/* The ops/s of the last plain e2e-window100 run, for the health scenario's ratio. */
static double last_window100_ops;

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* Every 10 ms, what a Prometheus scrape does: GET /metrics, here over the Unix socket. */
static void *scraper_main(void *arg)
{
    struct e2e *e = arg;
    char sock[700];
    snprintf(sock, sizeof sock, "%s/agent.sock", e->store);
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(h, CURLOPT_URL, "http://localhost/metrics");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    while (!atomic_load(&e->scrape_stop)) {
        uint64_t t0 = now_ns();
        long code = 0;
        if (curl_easy_perform(h) != CURLE_OK ||
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200) {
            e->scrape_errors++;
        } else {
            if (e->nscrapes == e->scrape_cap) {
                size_t cap = e->scrape_cap ? e->scrape_cap * 2 : 1024;
                uint64_t *v = realloc(e->scrape_ns, cap * sizeof *v);
                if (!v)
                    break;
                e->scrape_ns = v;
                e->scrape_cap = cap;
            }
            e->scrape_ns[e->nscrapes++] = now_ns() - t0;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static void scraper_join(struct e2e *e)
{
    if (!e->scraper_started)
        return;
    atomic_store(&e->scrape_stop, true);
    pthread_join(e->scraper, NULL);
    e->scraper_started = false;
}

static void show_agent_log(const struct e2e *e)
{
    FILE *f = fopen(e->log, "re");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "  %s", line);
    fclose(f);
}

static pid_t start_agent(struct e2e *e)
{
    char fsync[16];
    snprintf(fsync, sizeof fsync, "%u", e->fsync_ms);
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0)
            cleanup_add_pid(pid);
        return pid;
    }
    child_after_fork(SIGTERM); /* the agent drains and stops if the bench dies */
    int fd = open(e->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 2);
        dup2(fd, 1);
    }
    if (e->sync_mode == SYNC_HTTPS) {
        char token[700], ca[700];
        snprintf(token, sizeof token, "%s/agent.token", e->root);
        snprintf(ca, sizeof ca, "%s/ca.pem", e->srv_store);
        execl(e->agent, e->agent, "--data", e->store, "--ring-dir", e->root, "--fsync-interval",
              fsync, "--server", e->endpoint, "--server-token", token, "--ca", ca,
              "--sync-interval", "50", (char *)NULL);
    } else if (e->sync_mode) {
        char skey[700], akey[700];
        snprintf(skey, sizeof skey, "%s/server.pub", e->srv_store);
        snprintf(akey, sizeof akey, "%s/agent.key", e->root);
        execl(e->agent, e->agent, "--data", e->store, "--ring-dir", e->root, "--fsync-interval",
              fsync, "--server", e->endpoint, "--server-key", skey, "--key", akey,
              "--sync-interval", "50", (char *)NULL);
    } else {
        execl(e->agent, e->agent, "--data", e->store, "--ring-dir", e->root, "--fsync-interval",
              fsync, (char *)NULL);
    }
    fprintf(stderr, "sidetrack-bench: cannot run %s: %s\n", e->agent, strerror(errno));
    _exit(127);
}

/* Waits until the agent has mapped the ring (it writes its pid into the header then; not
 * necessarily our child's pid: $SIDETRACK_AGENT may be a wrapper such as `perf record`). */
static int wait_agent_ready(struct e2e *e)
{
    uint64_t deadline = now_ns() + 10000000000ull;
    while (atomic_load(&e->arena.hdr->agent_pid) == 0) {
        int st;
        if (waitpid(e->agent_pid, &st, WNOHANG) == e->agent_pid) {
            cleanup_del_pid(e->agent_pid);
            e->agent_pid = 0;
            warnx_("%s: the agent exited at start-up (status %d):", e->name,
                   WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            show_agent_log(e);
            return -1;
        }
        if (now_ns() > deadline) {
            warnx_("%s: the agent did not map the ring within 10 s", e->name);
            show_agent_log(e);
            return -1;
        }
        sleep_us(1000);
    }
    return 0;
}

/* Waits until every lane is free: the agent committed everything and handed the lanes back. */
static int wait_all_committed(struct e2e *e)
{
    uint64_t last_sum = UINT64_MAX, last_change = now_ns();
    for (;;) {
        uint64_t sum = 0;
        bool busy = false;
        for (uint32_t i = 0; i < e->arena.lane_count; i++) {
            struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&e->arena, i);
            if (atomic_load_explicit(&ctl->owner, memory_order_acquire) != 0)
                busy = true;
            sum += atomic_load_explicit(&ctl->head, memory_order_acquire);
        }
        if (!busy)
            return 0;
        uint64_t now = now_ns();
        if (sum != last_sum) {
            last_sum = sum;
            last_change = now;
        } else if (now - last_change > E2E_STALL_S * 1000000000ull) {
            warnx_("%s: the agent committed nothing for %d s", e->name, E2E_STALL_S);
            show_agent_log(e);
            return -1;
        }
        int st;
        if (waitpid(e->agent_pid, &st, WNOHANG) == e->agent_pid) {
            cleanup_del_pid(e->agent_pid);
            e->agent_pid = 0;
            warnx_("%s: the agent died while draining:", e->name);
            show_agent_log(e);
            return -1;
        }
        sleep_us(500);
    }
}

/* "stopped after storing R records in C commits", the agent's last words. */
static void agent_totals(const struct e2e *e, unsigned long long *records,
                         unsigned long long *commits)
{
    *records = *commits = 0;
    FILE *f = fopen(e->log, "re");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "stopped after storing ");
        if (p)
            sscanf(p, "stopped after storing %llu records in %llu commits", records, commits);
    }
    fclose(f);
}

/* ---- the server (sync scenarios) ------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* A scratch CA and a certificate for 127.0.0.1 signed by it, made with the openssl program:
 * DIR/ca.pem, DIR/server.pem, DIR/server.key. */
static int make_certs(const struct e2e *e, const char *dir)
{
    char ext[700], cmd[4096];
    snprintf(ext, sizeof ext, "%s/server.ext", dir);
    FILE *f = fopen(ext, "we");
    if (!f || fputs("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n", f) < 0 || fclose(f) != 0) {
        warnx_("%s: cannot write %s", e->name, ext);
        return -1;
    }
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    snprintf(cmd, sizeof cmd,
             "cd '%s' && (openssl req -x509 %s -days 2 -subj /CN=sidetrack-bench-ca "
             "-keyout ca.key -out ca.pem && openssl req %s -subj /CN=127.0.0.1 "
             "-keyout server.key -out server.csr && openssl x509 -req -in server.csr -CA ca.pem "
             "-CAkey ca.key -set_serial 1 -days 2 -extfile server.ext -out server.pem) "
             ">openssl.log 2>&1",
             dir, ec, ec);
    int st = system(cmd);
    if (st != 0) {
        warnx_("%s: cannot make a scratch CA and certificate with openssl (status %d; see "
               "%s/openssl.log)", e->name, st, dir);
        return -1;
    }
    return 0;
}

/* HTTPS: a token for the agent (also in the server's tokens.d), a CA and a certificate. */
static int https_setup(struct e2e *e, int port)
{
    char tok[SYNC_TOKEN_LEN + 1], dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/tokens.d", e->srv_store);
    int r;
    if (mkdir(dir, 0700) < 0 || (r = sync_token_gen(e->root, "agent", tok)) < 0) {
        warnx_("%s: cannot make the agent's token", e->name);
        return -1;
    }
    snprintf(path, sizeof path, "%s/agent.token", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f || fprintf(f, "%s\n", tok) < 0 || fclose(f) != 0) {
        warnx_("%s: cannot write %s", e->name, path);
        return -1;
    }
    if (make_certs(e, e->srv_store) < 0)
        return -1;
    snprintf(e->http_listen, sizeof e->http_listen, "127.0.0.1:%d", port);
    snprintf(e->endpoint, sizeof e->endpoint, "https://127.0.0.1:%d", port);
    return 0;
}

/* Keys for both sides, the agent's public key in the server's allow-list. */
static int sync_setup(struct e2e *e)
{
    if (find_server(e->server, sizeof e->server) < 0) {
        warnx_("%s: cannot find sidetrack-server: build it, put it on the PATH or set "
               "$SIDETRACK_SERVER", e->name);
        return -1;
    }
    char what[64];
    snprintf(what, sizeof what, "%s-srv", e->name);
    int r, port = free_port();
    char pub[SYNC_KEY_Z85 + 1], dir[700], path[800];
    if (port < 0 || (r = scratch_store_dir(e->srv_store, sizeof e->srv_store, what)) < 0) {
        warnx_("%s: cannot make the server's scratch directory", e->name);
        return -1;
    }
    snprintf(dir, sizeof dir, "%s/agents.d", e->srv_store);
    if ((r = sync_keys_gen(e->srv_store, "server", pub)) < 0 ||
        (r = sync_keys_gen(e->root, "agent", pub)) < 0 || mkdir(dir, 0755) < 0) {
        warnx_("%s: cannot make the keys in %s: %s", e->name, e->srv_store,
               strerror(r < 0 ? -r : errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/agent.pub", dir);
    FILE *f = fopen(path, "we");
    if (!f || fprintf(f, "%s\n", pub) < 0 || fclose(f) != 0) {
        warnx_("%s: cannot write %s", e->name, path);
        return -1;
    }
    snprintf(e->endpoint, sizeof e->endpoint, "tcp://127.0.0.1:%d", port);
    snprintf(e->srv_log, sizeof e->srv_log, "%s/server.log", e->root);
    return e->sync_mode == SYNC_HTTPS ? https_setup(e, port) : 0;
}

static int start_server(struct e2e *e)
{
    e->server_pid = fork();
    if (e->server_pid < 0)
        return -1;
    if (e->server_pid > 0) {
        cleanup_add_pid(e->server_pid);
        return 0;
    }
    child_after_fork(SIGTERM);
    int fd = open(e->srv_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 2);
        dup2(fd, 1);
    }
    if (e->sync_mode == SYNC_HTTPS) {
        char cert[700], key[700];
        snprintf(cert, sizeof cert, "%s/server.pem", e->srv_store);
        snprintf(key, sizeof key, "%s/server.key", e->srv_store);
        execl(e->server, e->server, "--data", e->srv_store, "--zmq", "off", "--http",
              e->http_listen, "--tls-cert", cert, "--tls-key", key, (char *)NULL);
    } else {
        execl(e->server, e->server, "--data", e->srv_store, "--zmq", e->endpoint,
              (char *)NULL);
    }
    fprintf(stderr, "sidetrack-bench: cannot run %s: %s\n", e->server, strerror(errno));
    _exit(127);
}

struct store_check {
    struct store_info info;
    uint64_t points;
    int err;
};

/* The points of the producer's run in the store at dir, and the store's size. quiet: the
 * server's store, polled while points arrive: a store or metric not there yet counts 0. */
static void count_points(const struct e2e *e, const char *dir, bool quiet,
                         struct store_check *sc)
{
    memset(sc, 0, sizeof *sc);
    struct store *s;
    int r = store_open(&s, dir, STORE_RDONLY, 0);
    if (r < 0) {
        if (!quiet)
            warnx_("%s: cannot open the store %s: %s", e->name, dir, store_strerror(r));
        sc->err = r;
        return;
    }
    if ((r = store_info(s, &sc->info)) < 0)
        warnx_("%s: store_info: %s", e->name, store_strerror(r));
    uint8_t id[16];
    struct store_txn *t = NULL;
    if (r == 0 && (r = store_run_id_parse(e->sh->run_id, id)) < 0)
        warnx_("%s: bad run id %s", e->name, e->sh->run_id);
    if (r == 0 && (r = store_begin(s, false, &t)) < 0)
        warnx_("%s: store_begin: %s", e->name, store_strerror(r));
    for (int k = 0; r == 0 && k < NKEYS; k++) {
        struct store_metric_summary sum;
        if ((r = store_metric_summary_get(t, id, key_names[k], &sum)) == -ENOENT && quiet)
            r = 0;
        else if (r < 0)
            warnx_("%s: metric %s of run %s: %s", e->name, key_names[k], e->sh->run_id,
                   store_strerror(r));
        else
            sc->points += sum.count;
    }
    store_abort(t);
    store_close(s);
    sc->err = r;
}

static void check_store(const struct e2e *e, struct store_check *sc)
{
    count_points(e, e->store, false, sc);
}

/* Points of the producer's run in the server's store (0 while it has none). */
static uint64_t server_points(const struct e2e *e)
{
    struct store_check sc;
    count_points(e, e->srv_store, true, &sc);
    return sc.points;
}

/* Waits until the server holds all n points; -1 when it stalls for E2E_STALL_S or dies. */
static int wait_server_has(struct e2e *e, uint64_t n)
{
    uint64_t last = 0, last_change = now_ns();
    for (;;) {
        uint64_t got = server_points(e);
        if (got >= n)
            return 0;
        uint64_t now = now_ns();
        if (got != last) {
            last = got;
            last_change = now;
        } else if (now - last_change > E2E_STALL_S * 1000000000ull) {
            warnx_("%s: the server gained no point for %d s (%llu of %llu); its log is %s",
                   e->name, E2E_STALL_S, (unsigned long long)got, (unsigned long long)n,
                   e->srv_log);
            return -1;
        }
        int st;
        if (waitpid(e->server_pid, &st, WNOHANG) == e->server_pid) {
            cleanup_del_pid(e->server_pid);
            e->server_pid = 0;
            warnx_("%s: the server died; its log is %s", e->name, e->srv_log);
            return -1;
        }
        sleep_us(2000);
    }
}

static void e2e_cleanup(struct e2e *e)
{
    if (e->server_pid > 0) {
        kill(e->server_pid, SIGKILL);
        waitpid(e->server_pid, NULL, 0);
        cleanup_del_pid(e->server_pid);
    }
    scratch_remove(e->srv_store);
    if (e->prod_pid > 0) {
        kill(e->prod_pid, SIGKILL);
        waitpid(e->prod_pid, NULL, 0);
        cleanup_del_pid(e->prod_pid);
    }
    if (e->agent_pid > 0) {
        kill(e->agent_pid, SIGKILL);
        waitpid(e->agent_pid, NULL, 0);
        cleanup_del_pid(e->agent_pid);
    }
    if (e->arena.hdr)
        shmlog_arena_close(&e->arena);
    if (e->sh)
        munmap(e->sh, sizeof *e->sh);
    scratch_remove(e->root);
    scratch_remove(e->store);
}

static int e2e_variant(const struct bench_opts *o, const char *name, uint32_t fsync_ms,
                       int sync_mode, bool scrape)
{
    struct e2e e = {.name = name, .fsync_ms = fsync_ms, .sync_mode = sync_mode};
    e.n = o->ops ? o->ops : o->quick ? E2E_QUICK_OPS : E2E_DEFAULT_OPS;
    int ret = 1;
    struct load_probe load;
    load_begin(&load);
    if (find_agent(e.agent, sizeof e.agent) < 0) {
        warnx_("%s: cannot find sidetrackd: build it, put it on the PATH or set "
               "$SIDETRACK_AGENT",
               name);
        return 1;
    }
    int r;
    if ((r = scratch_ring_dir(e.root, sizeof e.root, name)) < 0 ||
        (r = scratch_store_dir(e.store, sizeof e.store, name)) < 0) {
        warnx_("%s: cannot make scratch directories: %s", name, strerror(-r));
        goto out;
    }
    snprintf(e.log, sizeof e.log, "%s/agent.log", e.root);
    e.sh = mmap(NULL, sizeof *e.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (e.sh == MAP_FAILED) {
        e.sh = NULL;
        warnx_("%s: mmap: %s", name, strerror(errno));
        goto out;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/u%u.ring", e.root, (unsigned)getuid());
    struct shmlog_geometry geo = {.lane_count = E2E_LANES, .lane_size = E2E_LANE_SIZE};
    if ((r = shmlog_arena_open(&e.arena, path, SHMLOG_CREATE, &geo)) < 0) {
        warnx_("%s: cannot create the ring %s: %s", name, path, shmlog_strerror(r));
        goto out;
    }
    fflush(stdout);
    fflush(stderr);
    if (sync_mode && sync_setup(&e) < 0)
        goto out;
    if ((sync_mode == SYNC_LIVE || sync_mode == SYNC_HTTPS) && start_server(&e) < 0)
        goto out;
    if ((e.agent_pid = start_agent(&e)) < 0 || wait_agent_ready(&e) < 0)
        goto out;
    if (scrape) {
        e.scrape = true;
        if (pthread_create(&e.scraper, NULL, scraper_main, &e) != 0) {
            warnx_("%s: cannot start the scraper thread", name);
            goto out;
        }
        e.scraper_started = true;
    }

    e.prod_pid = fork();
    if (e.prod_pid < 0) {
        warnx_("%s: fork: %s", name, strerror(errno));
        goto out;
    }
    if (e.prod_pid == 0) {
        child_after_fork(SIGKILL);
        _exit(producer_main(e.root, &e.arena, e.n, e.sh));
    }
    cleanup_add_pid(e.prod_pid);
    int st;
    waitpid(e.prod_pid, &st, 0);
    cleanup_del_pid(e.prod_pid);
    e.prod_pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        warnx_("%s: the producer failed: %s", name, e.sh->err[0] ? e.sh->err : "killed");
        goto out;
    }
    if (wait_all_committed(&e) < 0)
        goto out;
    uint64_t t_done = now_ns();
    scraper_join(&e);
    if (sync_mode) {
        uint64_t t0 = now_ns();
        if (sync_mode == SYNC_CATCHUP && start_server(&e) < 0)
            goto out;
        if (wait_server_has(&e, e.n - e.sh->dropped) < 0)
            goto out;
        uint64_t t1 = now_ns();
        jl_begin(name);
        jl_u64("ops", e.n);
        if (sync_mode != SYNC_CATCHUP) {
            double secs = (double)(t1 - e.sh->t_first) / 1e9;
            jl_f("seconds", secs, 4);
            jl_f("ops_per_sec", (double)e.n / secs, 0);
            jl_f("local_commit_seconds", (double)(t_done - e.sh->t_first) / 1e9, 4);
            jl_f("server_after_local_seconds", (double)(t1 - t_done) / 1e9, 4);
        } else {
            double secs = (double)(t1 - t0) / 1e9;
            jl_f("seconds", secs, 4);
            jl_f("ops_per_sec", (double)e.n / secs, 0);
            jl_f("backlog_build_seconds", (double)(t_done - e.sh->t_first) / 1e9, 4);
        }
        jl_s("transport", sync_mode == SYNC_HTTPS ? "https" : "zmq");
        jl_b("curve", sync_mode != SYNC_HTTPS);
        jl_u64("dropped", e.sh->dropped);
        jl_b("verified", server_points(&e) == e.n - e.sh->dropped && e.sh->dropped == 0);
        load_report(&load);
        jl_end();
        kill(e.server_pid, SIGTERM);
        waitpid(e.server_pid, NULL, 0);
        cleanup_del_pid(e.server_pid);
        e.server_pid = 0;
        ret = e.sh->dropped ? 1 : 0;
        goto out;
    }

    kill(e.agent_pid, SIGTERM);
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    wait4(e.agent_pid, &st, 0, &ru);
    cleanup_del_pid(e.agent_pid);
    e.agent_pid = 0;
    uint64_t t_stopped = now_ns();
    bool agent_ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!agent_ok) {
        warnx_("%s: the agent did not stop cleanly (status %d):", name,
               WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        show_agent_log(&e);
    }
    unsigned long long agent_records, agent_commits;
    agent_totals(&e, &agent_records, &agent_commits);
    struct store_check sc;
    check_store(&e, &sc);

    double secs = (double)(t_done - e.sh->t_first) / 1e9;
    double prod_secs = (double)(e.sh->t_last - e.sh->t_first) / 1e9;
    jl_begin(name);
    jl_u64("ops", e.n);
    jl_f("seconds", secs, 4);
    jl_f("ops_per_sec", secs > 0 ? (double)e.n / secs : 0, 0);
    jl_u64("fsync_interval_ms", fsync_ms);
    jl_b("durable_at_commit", fsync_ms == 0);
    jl_f("producer_seconds", prod_secs, 4);
    jl_f("producer_paused_seconds", (double)e.sh->paused_ns / 1e9, 4);
    jl_u64("producer_pauses", e.sh->pauses);
    jl_f("drain_after_producer_seconds", (double)(t_done - e.sh->t_last) / 1e9, 4);
    jl_f("agent_stop_seconds", (double)(t_stopped - t_done) / 1e9, 4);
    double agent_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    jl_f("agent_cpu_seconds", agent_cpu, 3);
    jl_f("agent_cpu_ns_per_metric", agent_cpu * 1e9 / (double)e.n, 1);
    jl_u64("dropped", e.sh->dropped);
    jl_u64("spilled", e.sh->spilled);
    jl_u64("lost", e.sh->lost);
    jl_u64("stored_points", sc.points);
    jl_b("verified", sc.err == 0 && sc.points == e.n);
    if (agent_commits) {
        jl_u64("agent_records", agent_records);
        jl_u64("agent_commits", agent_commits);
    }
    jl_u64("store_used_bytes", sc.info.used_bytes);
    jl_u64("store_file_bytes", sc.info.file_bytes);
    jl_f("store_bytes_per_metric", e.n ? (double)sc.info.used_bytes / (double)e.n : 0, 2);
    jl_u64("lane_mib", e.arena.lane_size >> 20);
    jl_s("clock", e.arena.clock == SHMLOG_CLOCK_TSC ? "tsc" : "realtime");
    if (!strcmp(name, "e2e-window100"))
        last_window100_ops = secs > 0 ? (double)e.n / secs : 0;
    if (e.scrape) {
        struct lat_summary ls = {0};
        if (e.nscrapes)
            lat_summarise(e.scrape_ns, e.nscrapes, 1, 0, 1, &ls);
        jl_u64("scrapes", e.nscrapes);
        jl_u64("scrape_errors", e.scrape_errors);
        jl_f("scrape_ms_p50", ls.p50 / 1e6, 3);
        jl_f("scrape_ms_p99", ls.p99 / 1e6, 3);
        jl_f("scrape_ms_max", ls.max / 1e6, 3);
        if (last_window100_ops > 0 && secs > 0)
            jl_f("ops_ratio_to_unscraped", (double)e.n / secs / last_window100_ops, 3);
    }
    load_report(&load);
    jl_end();
    if (e.scrape && (e.scrape_errors || !e.nscrapes)) {
        warnx_("%s: %u of %zu scrapes failed", name, e.scrape_errors,
               e.nscrapes + e.scrape_errors);
        ret = 1;
        goto out;
    }

    ret = 0;
    if (sc.err || sc.points + e.sh->dropped != e.n) {
        warnx_("%s: the store holds %llu of %llu points (%llu dropped by the producer)", name,
               (unsigned long long)sc.points, (unsigned long long)e.n,
               (unsigned long long)e.sh->dropped);
        ret = 1;
    }
    if (!agent_ok)
        ret = 1;
out:
    scraper_join(&e);
    free(e.scrape_ns);
    e2e_cleanup(&e);
    return ret;
}

int bench_e2e(const struct bench_opts *o)
{
    int r = e2e_variant(o, "e2e", 0, SYNC_NONE, false);
    return e2e_variant(o, "e2e-window100", 100, SYNC_NONE, false) | r;
}

int bench_e2e_window(const struct bench_opts *o)
{
    return e2e_variant(o, "e2e-window100", 100, SYNC_NONE, false);
}

int bench_sync(const struct bench_opts *o)
{
    int r = e2e_variant(o, "sync", 100, SYNC_LIVE, false);
    return e2e_variant(o, "sync-catchup", 100, SYNC_CATCHUP, false) | r;
}

int bench_https(const struct bench_opts *o)
{
    return e2e_variant(o, "https", 100, SYNC_HTTPS, false);
}

int bench_sync_catchup(const struct bench_opts *o)
{
    return e2e_variant(o, "sync-catchup", 100, SYNC_CATCHUP, false);
}

/* The cost of being watched: e2e-window100, then the same with a scrape of /metrics every
 * 10 ms on the agent's socket (each one renders the figures in the drain loop). */
int bench_health(const struct bench_opts *o)
{
    int r = e2e_variant(o, "e2e-window100", 100, SYNC_NONE, false);
    return e2e_variant(o, "health", 100, SYNC_NONE, true) | r;
}
