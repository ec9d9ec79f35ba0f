/* bench.h — what the scenarios of sidetrack-bench share: options, clocks, scratch
 * directories (util.c), the JSON line writer, the machine line and the load probe (report.c).
 * What each scenario measures and how: docs/benchmarks.md. */
#ifndef SIDETRACK_BENCH_H
#define SIDETRACK_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bench_opts {
    uint64_t ops;  /* 0: the scenario's default */
    bool quick;    /* small sizes: a smoke test of a few seconds */
    bool cuda;     /* python: also the CUDA training-loop scenario */
};

/* Scenarios. Each prints one JSON object per line and returns 0, or 1 when it could not run
 * or its result is wrong (records missing); a missed performance target is not a failure. */
int bench_ring(const struct bench_opts *o);     /* "ring": one producer thread */
int bench_ring_mt(const struct bench_opts *o);  /* "ring-mt": two producer threads */
int bench_e2e(const struct bench_opts *o);      /* "e2e" and "e2e-window100" */
int bench_e2e_window(const struct bench_opts *o); /* "e2e-window100" alone */
int bench_python(const struct bench_opts *o);   /* "python": python -m sidetrack.bench */
int bench_sync(const struct bench_opts *o);     /* "sync" and "sync-catchup" */
int bench_sync_catchup(const struct bench_opts *o); /* "sync-catchup" alone */
int bench_mlflow_api(const struct bench_opts *o); /* "mlflow-api": runs/log-batch over HTTP */
int bench_https(const struct bench_opts *o);    /* "https": sync over HTTPS */
int bench_health(const struct bench_opts *o);   /* "health": e2e while /metrics is scraped */
int bench_query(const struct bench_opts *o);    /* "query": search and metric reads */

/* ---- time -------------------------------------------------------------------------- */
uint64_t now_ns(void); /* CLOCK_MONOTONIC */
void sleep_us(unsigned us);

/* TSC ticks -> ns, measured against CLOCK_MONOTONIC_RAW over a short sleep (once). */
double tsc_ns_per_tick(void);
/* The step in which the TSC advances, in ticks: ~24 (10 ns) on AMD Zen, 1 where it is smooth. */
double tsc_quantum_ticks(void);

/* ---- scratch directories ----------------------------------------------------------- */
/* mkdtemp of "<base>/sidetrack-bench-<what>-XXXXXX"; base: /dev/shm for rings when writable,
 * else $TMPDIR or /tmp. Returns 0 or -errno. */
int scratch_ring_dir(char *buf, size_t len, const char *what);
int scratch_store_dir(char *buf, size_t len, const char *what);
/* rm -rf, without following links; forgets the directory for cleanup_init's sake. */
void scratch_remove(const char *dir);

/* SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by a thread of their own,
 * which kills the registered child processes and removes the scratch directories made so far
 * before the program exits (128 + the signal). Call it first, before any thread or child. */
void cleanup_init(void);
void cleanup_add_pid(pid_t pid);
void cleanup_del_pid(pid_t pid);
/* In a child after fork(): the signal mask of a fresh process, and death_signal when the
 * bench dies, so that neither an agent nor a producer outlives it. */
void child_after_fork(int death_signal);

/* ---- the agent ---------------------------------------------------------------------- */
/* $SIDETRACK_AGENT, else next to this program (build tree: ../agent/sidetrackd; installed:
 * ../sbin/sidetrackd or the same folder), else the PATH. Returns 0 or -ENOENT. */
int find_agent(char *buf, size_t len);
/* The same for sidetrack-server ($SIDETRACK_SERVER, ../server/, ../sbin/, the PATH). */
int find_server(char *buf, size_t len);

/* ---- what else ran ------------------------------------------------------------------ */
/* The machine's busy time (from /proc/stat) minus this process's and its reaped children's
 * (getrusage), over a scenario: how many CPUs' worth of time other programs took meanwhile,
 * and the share of time the hypervisor stole. Figures from a busy machine are not figures. */
struct load_probe {
    uint64_t busy, steal, total; /* USER_HZ ticks, all CPUs */
    double self;                 /* CPU seconds of this process and its reaped children */
    uint64_t t;                  /* now_ns() */
};
void load_begin(struct load_probe *p);
/* Adds "other_load" and "steal_pct" to the JSON line being written. */
void load_report(const struct load_probe *p);

/* ---- output ------------------------------------------------------------------------- */
/* One JSON object per line: jl_begin("ring"); jl_u64("ops", n); ...; jl_end(). */
void jl_begin(const char *scenario);
void jl_u64(const char *name, uint64_t v);
void jl_i64(const char *name, int64_t v);
void jl_f(const char *name, double v, int decimals);
void jl_s(const char *name, const char *v);
void jl_b(const char *name, bool v);
void jl_end(void);

/* The first line of every run: CPU model, CPUs, kernel, hypervisor, compiler, build type. */
void print_machine(void);

/* Complaints go to stderr, prefixed with the program's name. */
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
