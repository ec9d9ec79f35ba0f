/* main.c — sidetrack-bench: options and dispatch. The scenarios are in ring.c and e2e.c;
 * docs/benchmarks.md says what each measures, how, and what this machine gave. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scenario {
    const char *name;
    int (*run)(const struct bench_opts *o);
    bool in_all; /* run when no scenario is named */
    const char *help;
};

static const struct scenario scenarios[] = {
    {"ring", bench_ring, true,
     "one producer thread: cost of st_log_metric() (default 20,000,000 calls)"},
    {"ring-mt", bench_ring_mt, true,
     "two producer threads, one lane each (default 20,000,000 calls in all)"},
    {"e2e", bench_e2e, true,
     "producer process -> sidetrackd -> store, durable (--fsync-interval 0), then\n"
     "                  again as e2e-window100 (--fsync-interval 100); default 10,000,000 points"},
    {"e2e-window100", bench_e2e_window, false, "the second half of e2e alone"},
    {"sync", bench_sync, false,
     "producer -> agent -> sidetrack-server over ZeroMQ with CURVE, until the server has\n"
     "                  committed every point; then sync-catchup: a backlog built with the server\n"
     "                  down, timed from the server's start (default 10,000,000 points each)"},
    {"sync-catchup", bench_sync_catchup, false, "the second half of sync alone"},
    {"https", bench_https, false,
     "as sync, over HTTPS (bearer token; a scratch CA and certificate made with openssl)"},
    {"health", bench_health, false,
     "e2e-window100, then again while a thread GETs /metrics on the agent's socket every\n"
     "                  10 ms: scrape latency and the throughput ratio"},
    {"mlflow-api", bench_mlflow_api, false,
     "metric points/s through MLflow's runs/log-batch on sidetrack-server: 1000 metrics a\n"
     "                  request, one keep-alive connection (default 5,000,000 points)"},
    {"query", bench_query, false,
     "store queries on a scratch store of 10,000 runs and a 1,000,000-point metric: a\n"
     "                  3-clause search, the full history and its 2,000-point view (ms)"},
    {"python", bench_python, false,
     "the Python package: log_metric with a float, a numpy scalar and a tensor beside\n"
     "                  list.append (python -m sidetrack.bench; --cuda adds a GPU training loop)"},
};
#define NSCENARIOS (sizeof scenarios / sizeof *scenarios)

static size_t scenario_index(const char *name)
{
    size_t k = 0;
    while (k < NSCENARIOS && strcmp(name, scenarios[k].name))
        k++;
    return k;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: sidetrack-bench [SCENARIO...] [--ops N] [--quick] [--cuda]\n"
            "\n"
            "Measures libsidetrack's log call and the agent's drain into the store, and prints\n"
            "one JSON object per line: first the machine, then one per scenario, with at least\n"
            "scenario, ops, seconds and ops_per_sec, and ns_p50 and ns_p99 for the ring.\n"
            "Every scenario works on its own scratch directories (rings in /dev/shm, the store\n"
            "in $TMPDIR or /tmp) and removes them at the end.\n"
            "\n"
            "Scenarios (none named: ring, ring-mt and e2e):\n");
    for (size_t i = 0; i < NSCENARIOS; i++)
        fprintf(f, "  %-15s %s\n", scenarios[i].name, scenarios[i].help);
    fprintf(f,
            "\n"
            "Options:\n"
            "  --ops N         calls (ring) or metric points (e2e) per scenario\n"
            "  --quick         small sizes, a few seconds in all (a smoke test)\n"
            "  --cuda          python: also time a CUDA training loop that logs its loss\n"
            "  -h, --help      show this help\n"
            "\n"
            "sidetrackd is taken from $SIDETRACK_AGENT, else next to this program (the build\n"
            "tree's agent/ or an installation's sbin/), else the PATH. The python scenario runs\n"
            "$SIDETRACK_PYTHON, else /usr/bin/python3. See docs/benchmarks.md.\n");
}

static int parse_ops(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > (1ull << 40) || *s == '-')
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_opts o = {0};
    bool chosen[NSCENARIOS] = {false};
    bool any = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quick")) {
            o.quick = true;
            continue;
        }
        if (!strcmp(a, "--cuda")) {
            o.cuda = true;
            continue;
        }
        if (!strcmp(a, "--ops") || !strncmp(a, "--ops=", 6)) {
            const char *v = a[5] == '=' ? a + 6 : i + 1 < argc ? argv[++i] : NULL;
            if (!v || parse_ops(v, &o.ops) < 0) {
                warnx_("--ops needs a whole number from 1 to 2^40, got '%s'", v ? v : "");
                return 2;
            }
            continue;
        }
        size_t k = scenario_index(a);
        if (k == NSCENARIOS) {
            warnx_("unknown %s '%s' (see --help)", a[0] == '-' ? "option" : "scenario", a);
            return 2;
        }
        chosen[k] = any = true;
    }
    if (!any)
        for (size_t k = 0; k < NSCENARIOS; k++)
            chosen[k] = scenarios[k].in_all;
    if (chosen[scenario_index("e2e")]) /* e2e includes e2e-window100 */
        chosen[scenario_index("e2e-window100")] = false;
    if (chosen[scenario_index("sync")]) /* sync includes sync-catchup */
        chosen[scenario_index("sync-catchup")] = false;

    cleanup_init();
    print_machine();
    int status = 0;
    for (size_t k = 0; k < NSCENARIOS; k++)
        if (chosen[k] && scenarios[k].run(&o) != 0) {
            warnx_("scenario %s failed", scenarios[k].name);
            status = 1;
        }
    return status;
}
