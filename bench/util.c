/* util.c — clocks, scratch directories and their cleanup on signals, finding the agent. */
#include "bench.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

void warnx_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sidetrack-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- time -------------------------------------------------------------------------------- */

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000u, (long)(us % 1000000u) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

#if defined(__x86_64__) || defined(__i386__)
/* A (ticks, ns) pair: the clock read bracketed by two rdtsc, keeping the tightest of a few. */
static void tsc_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 16; i++) {
        struct timespec ts;
        uint64_t t0 = __rdtsc();
        clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
        uint64_t t1 = __rdtsc();
        if (t1 - t0 < best) {
            best = t1 - t0;
            *tsc = t0 + (t1 - t0) / 2;
            *ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        }
    }
}
#endif

static double ns_per_tick = 1.0, quantum_ticks = 1.0;
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

static void tsc_measure_rate(void)
{
#if defined(__x86_64__) || defined(__i386__)
    uint64_t t0, n0, t1, n1;
    tsc_pair(&t0, &n0);
    sleep_us(100000);
    tsc_pair(&t1, &n1);
    if (t1 > t0)
        ns_per_tick = (double)(n1 - n0) / (double)(t1 - t0);
#endif
}

static void tsc_measure_quantum(void)
{
#if defined(__x86_64__) || defined(__i386__)
    /* Differences of two readings a varying delay apart: on a stepping TSC they are all
     * near multiples of the step, whatever the delay; on a smooth one they are spread. */
    enum { N = 20000 };
    static uint64_t d[N];
    volatile unsigned spin;
    uint64_t dmin = UINT64_MAX;
    for (int i = 0; i < N; i++) {
        uint64_t a = __rdtsc();
        for (spin = 0; spin < (unsigned)(i % 97); spin++) {
        }
        uint64_t b = __rdtsc();
        d[i] = b - a;
        if (d[i] && d[i] < dmin)
            dmin = d[i];
    }
    if (dmin == UINT64_MAX || dmin < 4)
        return;
    double num = 0, den = 0;
    for (int i = 0; i < N; i++) {
        double k = (double)(uint64_t)((double)d[i] / (double)dmin + 0.5);
        num += (double)d[i];
        den += k;
    }
    double g = den > 0 ? num / den : 1; /* least squares fit of the step */
    int near = 0;
    uint64_t kmax = 0;
    for (int i = 0; i < N; i++) {
        uint64_t k = (uint64_t)((double)d[i] / g + 0.5);
        double off = (double)d[i] - (double)k * g;
        if (off > -1.5 && off < 1.5)
            near++;
        if (k > kmax)
            kmax = k;
    }
    if (near > N * 9 / 10 && kmax >= 3)
        quantum_ticks = g;
#endif
}

static void tsc_measure(void)
{
    tsc_measure_rate();
    tsc_measure_quantum();
}

double tsc_ns_per_tick(void)
{
    pthread_once(&tsc_once, tsc_measure);
    return ns_per_tick;
}

double tsc_quantum_ticks(void)
{
    pthread_once(&tsc_once, tsc_measure);
    return quantum_ticks;
}

/* ---- cleanup on signals ------------------------------------------------------------------ */

#define MAX_TRACKED 16
static pthread_mutex_t track_mu = PTHREAD_MUTEX_INITIALIZER;
static char tracked_dirs[MAX_TRACKED][PATH_MAX];
static pid_t tracked_pids[MAX_TRACKED];
static sigset_t cleanup_sigs;

static void track_dir(const char *dir, bool add)
{
    pthread_mutex_lock(&track_mu);
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (add && !tracked_dirs[i][0]) {
            snprintf(tracked_dirs[i], sizeof tracked_dirs[i], "%s", dir);
            break;
        }
        if (!add && !strcmp(tracked_dirs[i], dir)) {
            tracked_dirs[i][0] = 0;
            break;
        }
    }
    pthread_mutex_unlock(&track_mu);
}

static void track_pid(pid_t pid, bool add)
{
    pthread_mutex_lock(&track_mu);
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_pids[i] == (add ? 0 : pid)) {
            tracked_pids[i] = add ? pid : 0;
            break;
        }
    pthread_mutex_unlock(&track_mu);
}

void cleanup_add_pid(pid_t pid) { track_pid(pid, true); }
void cleanup_del_pid(pid_t pid) { track_pid(pid, false); }

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) < 0 && errno != ENOENT)
        warnx_("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void *signal_thread(void *arg)
{
    (void)arg;
    int sig = 0;
    while (sigwait(&cleanup_sigs, &sig) != 0) {
    }
    pthread_mutex_lock(&track_mu);
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_pids[i] > 0) {
            kill(tracked_pids[i], SIGKILL);
            waitpid(tracked_pids[i], NULL, 0);
        }
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_dirs[i][0])
            nftw(tracked_dirs[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
    fprintf(stderr, "sidetrack-bench: stopped by signal %d; scratch directories removed\n", sig);
    _exit(128 + sig);
}

void cleanup_init(void)
{
    sigemptyset(&cleanup_sigs);
    sigaddset(&cleanup_sigs, SIGINT);
    sigaddset(&cleanup_sigs, SIGTERM);
    sigaddset(&cleanup_sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &cleanup_sigs, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, NULL) == 0)
        pthread_detach(t);
    else
        pthread_sigmask(SIG_UNBLOCK, &cleanup_sigs, NULL);
}

void child_after_fork(int death_signal)
{
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, death_signal);
}

/* ---- scratch directories ----------------------------------------------------------------- */

static const char *tmp_base(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

static int make_dir(char *buf, size_t len, const char *base, const char *what)
{
    if ((size_t)snprintf(buf, len, "%s/sidetrack-bench-%s-XXXXXX", base, what) >= len)
        return -ENAMETOOLONG;
    if (!mkdtemp(buf))
        return -errno;
    track_dir(buf, true);
    return 0;
}

int scratch_ring_dir(char *buf, size_t len, const char *what)
{
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 &&
        make_dir(buf, len, "/dev/shm", what) == 0)
        return 0;
    return make_dir(buf, len, tmp_base(), what);
}

int scratch_store_dir(char *buf, size_t len, const char *what)
{
    return make_dir(buf, len, tmp_base(), what);
}

void scratch_remove(const char *dir)
{
    if (!dir || !*dir)
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    track_dir(dir, false);
}

/* ---- the agent --------------------------------------------------------------------------- */

static bool executable_at(char *buf, size_t len, const char *dir, const char *rel)
{
    if ((size_t)snprintf(buf, len, "%s/%s", dir, rel) >= len)
        return false;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0;
}

/* $ENV, else next to this program (the build tree's ../DIR/NAME, an installation's ../sbin/NAME
 * or the same folder), else the PATH and the sbin folders. */
static int find_program(char *buf, size_t len, const char *env_name, const char *build_dir,
                        const char *name)
{
    const char *env = getenv(env_name);
    if (env && *env) {
        if ((size_t)snprintf(buf, len, "%s", env) >= len || access(buf, X_OK) < 0) {
            warnx_("$%s=%s is not an executable", env_name, env);
            return -ENOENT;
        }
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            char rel[3][256];
            snprintf(rel[0], sizeof rel[0], "../%s/%s", build_dir, name);
            snprintf(rel[1], sizeof rel[1], "%s", name);
            snprintf(rel[2], sizeof rel[2], "../sbin/%s", name);
            for (size_t i = 0; i < 3; i++)
                if (executable_at(buf, len, self, rel[i])) {
                    char real[PATH_MAX];
                    if (realpath(buf, real) && strlen(real) < len)
                        strcpy(buf, real);
                    return 0;
                }
        }
    }
    const char *path = getenv("PATH");
    char dirs[8192];
    snprintf(dirs, sizeof dirs, "%s:/usr/local/sbin:/usr/sbin:/sbin", path ? path : "");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save))
        if (*d && executable_at(buf, len, d, name))
            return 0;
    return -ENOENT;
}

int find_agent(char *buf, size_t len)
{
    return find_program(buf, len, "SIDETRACK_AGENT", "agent", "sidetrackd");
}

int find_server(char *buf, size_t len)
{
    return find_program(buf, len, "SIDETRACK_SERVER", "server", "sidetrack-server");
}
