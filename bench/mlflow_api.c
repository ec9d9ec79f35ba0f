/* mlflow_api.c — scenario "mlflow-api": metric points per second through MLflow's
 * runs/log-batch on sidetrack-server, as MLflow's own clients send them.
 *
 * The bench starts sidetrack-server on a scratch store ($TMPDIR or /tmp) with --http on a free
 * loopback port (--zmq off), creates an experiment and a run through the API, then sends
 * log-batch requests of 1000 metrics (10 keys x 100 steps, the shape of a training loop that
 * flushes its metrics every 100 steps) over ONE keep-alive HTTP/1.1 connection (libcurl),
 * one request at a time: each waits for the server's answer, so the figure is the server's
 * per-request latency turned into a rate, with nothing in flight to hide it. The server
 * commits each request in its own transaction, durably (fsync), before it answers.
 *
 * The request bodies are built once as a template; only the step and timestamp digits are
 * rewritten between requests (fixed-width numbers), so the client's work stays small next to
 * the server's. At the end the store is opened read-only and every key's point count is
 * checked against what was sent ("verified"). MLflow's reference figure: ~8.7k metrics/s for
 * the same requests (docs/benchmarks.md). */
#include "bench.h"

#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MA_KEYS 10
#define MA_STEPS 100 /* per request: MA_KEYS * MA_STEPS = 1000 metrics, MLflow's maximum */
#define MA_PER_REQ (MA_KEYS * MA_STEPS)
#define MA_DEFAULT_OPS 5000000ull
#define MA_QUICK_OPS 100000ull
#define MA_STEP_BASE 1000000000ll   /* 10-digit steps: rewritten in place */
#define MA_TS_BASE 1700000000000ll  /* 13-digit timestamps */

struct ma {
    char server[4096];
    char store[512];
    char log[600];
    char base[128];   /* http://127.0.0.1:PORT/api/2.0/mlflow/ */
    int port;
    pid_t pid;
    CURL *curl;
    struct curl_slist *hdrs;
    char resp[4096];
    size_t resp_len;
    long status;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct ma *a = arg;
    size_t len = size * n, room = sizeof a->resp - 1 - a->resp_len;
    size_t take = len < room ? len : room;
    memcpy(a->resp + a->resp_len, p, take);
    a->resp_len += take;
    a->resp[a->resp_len] = '\0';
    return len;
}

/* Whether the MLflow routes answer: the port opens before the server has added its routes. */
static bool api_ready(struct ma *a)
{
    char url[256];
    snprintf(url, sizeof url, "%sexperiments/get?experiment_id=0", a->base);
    a->resp_len = 0;
    curl_easy_setopt(a->curl, CURLOPT_URL, url);
    curl_easy_setopt(a->curl, CURLOPT_HTTPGET, 1L);
    long status = 0;
    bool ok = curl_easy_perform(a->curl) == CURLE_OK &&
              curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
              status == 200;
    curl_easy_setopt(a->curl, CURLOPT_POST, 1L);
    return ok;
}

/* POSTs body to endpoint on the one connection; 0 when the answer is 200. */
static int post(struct ma *a, const char *endpoint, const char *body, size_t len)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", a->base, endpoint);
    a->resp_len = 0;
    a->resp[0] = '\0';
    curl_easy_setopt(a->curl, CURLOPT_URL, url);
    curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(a->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode rc = curl_easy_perform(a->curl);
    if (rc != CURLE_OK) {
        warnx_("mlflow-api: POST %s: %s", endpoint, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->status != 200) {
        warnx_("mlflow-api: POST %s: HTTP %ld %s", endpoint, a->status, a->resp);
        return -1;
    }
    return 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool listening(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void show_log(const struct ma *a)
{
    FILE *f = fopen(a->log, "re");
    char line[1024];
    while (f && fgets(line, sizeof line, f))
        fprintf(stderr, "  %s", line);
    if (f)
        fclose(f);
}

static int start_server(struct ma *a)
{
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", a->port);
    a->pid = fork();
    if (a->pid < 0)
        return -1;
    if (a->pid == 0) {
        child_after_fork(SIGTERM);
        int fd = open(a->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(a->server, a->server, "--data", a->store, "--http", listen, "--zmq", "off",
              (char *)NULL);
        fprintf(stderr, "sidetrack-bench: cannot run %s: %s\n", a->server, strerror(errno));
        _exit(127);
    }
    cleanup_add_pid(a->pid);
    uint64_t deadline = now_ns() + 20000000000ull;
    while (!listening(a->port) || !api_ready(a)) {
        int st;
        if (waitpid(a->pid, &st, WNOHANG) == a->pid) {
            cleanup_del_pid(a->pid);
            a->pid = 0;
            warnx_("mlflow-api: the server exited at start-up:");
            show_log(a);
            return -1;
        }
        if (now_ns() > deadline) {
            warnx_("mlflow-api: the server did not listen within 20 s");
            show_log(a);
            return -1;
        }
        sleep_us(5000);
    }
    return 0;
}

/* The log-batch body for one request, and where each metric's step and timestamp digits are
 * (so that the next request rewrites them in place). */
struct tmpl {
    char *body;
    size_t len;
    size_t step_at[MA_PER_REQ], ts_at[MA_PER_REQ];
};

static int tmpl_build(struct tmpl *t, const char *run_id)
{
    size_t cap = 128 + (size_t)MA_PER_REQ * 96;
    if (!(t->body = malloc(cap)))
        return -1;
    size_t n = (size_t)snprintf(t->body, cap, "{\"run_id\":\"%s\",\"metrics\":[", run_id);
    for (int i = 0; i < MA_PER_REQ; i++) {
        int s = i / MA_KEYS, k = i % MA_KEYS;
        n += (size_t)snprintf(t->body + n, cap - n, "%s{\"key\":\"train/metric_%d\",\"value\":%.6f,"
                              "\"timestamp\":", i ? "," : "", k, 1.0 / (1 + s + k));
        t->ts_at[i] = n;
        n += (size_t)snprintf(t->body + n, cap - n, "%lld,\"step\":", MA_TS_BASE);
        t->step_at[i] = n;
        n += (size_t)snprintf(t->body + n, cap - n, "%lld}", MA_STEP_BASE);
    }
    n += (size_t)snprintf(t->body + n, cap - n, "]}");
    t->len = n;
    return 0;
}

static void put_digits(char *at, long long v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        at[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Request r: steps r*MA_STEPS .. +MA_STEPS-1, a timestamp per step. */
static void tmpl_fill(struct tmpl *t, uint64_t r)
{
    for (int i = 0; i < MA_PER_REQ; i++) {
        long long step = (long long)(r * MA_STEPS) + i / MA_KEYS;
        put_digits(t->body + t->step_at[i], MA_STEP_BASE + step, 10);
        put_digits(t->body + t->ts_at[i], MA_TS_BASE + step, 13);
    }
}

static uint64_t stored_points(const struct ma *a, const char *run_hex)
{
    struct store *s;
    struct store_txn *t;
    uint8_t id[16];
    uint64_t sum = 0;
    if (store_run_id_parse(run_hex, id) < 0 || store_open(&s, a->store, STORE_RDONLY, 0) < 0)
        return 0;
    if (store_begin(s, false, &t) == 0) {
        for (int k = 0; k < MA_KEYS; k++) {
            char key[32];
            struct store_metric_summary ms;
            snprintf(key, sizeof key, "train/metric_%d", k);
            if (store_metric_summary_get(t, id, key, &ms) == 0)
                sum += ms.count;
        }
        store_abort(t);
    }
    store_close(s);
    return sum;
}

static int json_field(const char *json, const char *name, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", name);
    const char *p = strstr(json, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= len)
        return -1;
    snprintf(out, len, "%.*s", (int)(e - p), p);
    return 0;
}

int bench_mlflow_api(const struct bench_opts *o)
{
    struct ma a = {0};
    struct tmpl t = {0};
    uint64_t n = o->ops ? o->ops : o->quick ? MA_QUICK_OPS : MA_DEFAULT_OPS;
    uint64_t requests = (n + MA_PER_REQ - 1) / MA_PER_REQ;
    n = requests * MA_PER_REQ;
    int ret = 1;
    struct load_probe load;
    load_begin(&load);
    if (find_server(a.server, sizeof a.server) < 0) {
        warnx_("mlflow-api: cannot find sidetrack-server: build it, put it on the PATH or set "
               "$SIDETRACK_SERVER");
        return 1;
    }
    if (scratch_store_dir(a.store, sizeof a.store, "mlflow-api") < 0 ||
        (a.port = free_port()) < 0) {
        warnx_("mlflow-api: cannot make a scratch store directory");
        return 1;
    }
    snprintf(a.log, sizeof a.log, "%s.log", a.store);
    snprintf(a.base, sizeof a.base, "http://127.0.0.1:%d/api/2.0/mlflow/", a.port);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(a.curl = curl_easy_init())) {
        warnx_("mlflow-api: cannot start libcurl");
        goto out;
    }
    /* "Expect:" off: curl would otherwise wait for 100-continue on bodies this large */
    a.hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    a.hdrs = curl_slist_append(a.hdrs, "Expect:");
    curl_easy_setopt(a.curl, CURLOPT_HTTPHEADER, a.hdrs);
    curl_easy_setopt(a.curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(a.curl, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(a.curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(a.curl, CURLOPT_NOSIGNAL, 1L);
    if (start_server(&a) < 0)
        goto out;
    char exp[32], run[64], body[256];
    const char *eb = "{\"name\":\"bench\"}";
    if (post(&a, "experiments/create", eb, strlen(eb)) < 0 ||
        json_field(a.resp, "experiment_id", exp, sizeof exp) < 0)
        goto out;
    int bl = snprintf(body, sizeof body, "{\"experiment_id\":\"%s\",\"run_name\":\"bench\"}", exp);
    if (post(&a, "runs/create", body, (size_t)bl) < 0 ||
        json_field(a.resp, "run_id", run, sizeof run) < 0 || tmpl_build(&t, run) < 0)
        goto out;

    long connects_after = 0;
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < requests; r++) {
        tmpl_fill(&t, r);
        if (post(&a, "runs/log-batch", t.body, t.len) < 0)
            goto out;
        long c = 0;
        curl_easy_getinfo(a.curl, CURLINFO_NUM_CONNECTS, &c);
        connects_after += c;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t got = stored_points(&a, run);
    jl_begin("mlflow-api");
    jl_u64("ops", n);
    jl_f("seconds", secs, 4);
    jl_f("ops_per_sec", secs > 0 ? (double)n / secs : 0, 0);
    jl_u64("requests", requests);
    jl_u64("metrics_per_request", MA_PER_REQ);
    jl_f("us_per_request", secs * 1e6 / (double)requests, 1);
    jl_u64("request_bytes", t.len);
    jl_u64("new_connections", (uint64_t)connects_after); /* 0: one keep-alive connection */
    jl_f("mlflow_reference_ops_per_sec", 8700, 0);
    jl_b("verified", got == n);
    load_report(&load);
    jl_end();
    if (got != n)
        warnx_("mlflow-api: the store holds %llu points, %llu were sent", (unsigned long long)got,
               (unsigned long long)n);
    else
        ret = 0;
out:
    if (a.curl)
        curl_easy_cleanup(a.curl);
    curl_slist_free_all(a.hdrs);
    free(t.body);
    if (a.pid > 0) {
        kill(a.pid, SIGTERM);
        waitpid(a.pid, NULL, 0);
        cleanup_del_pid(a.pid);
    }
    if (ret)
        fprintf(stderr, "sidetrack-bench: mlflow-api: the server's log was %s\n", a.log);
    else
        unlink(a.log);
    scratch_remove(a.store);
    return ret;
}
