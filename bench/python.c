/* python.c — scenario "python": the cost of the Python package's log_metric beside a plain
 * list.append, measured by the package's own benchmark (python -m sidetrack.bench), which this
 * runs with the build tree's package (or the installed one) and this tree's sidetrackd. */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* $SIDETRACK_PYTHON, else Debian's /usr/bin/python3 (python3-torch and python3-numpy are
 * built for it), else python3 from the PATH. */
static const char *python_path(void)
{
    const char *env = getenv("SIDETRACK_PYTHON");
    if (env && *env)
        return env;
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

/* In the build tree the package sits in build/python/sidetrack, next to build/bench. */
static void add_build_tree_package(void)
{
    char self[PATH_MAX], pkg[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash)
        return;
    *slash = 0;
    snprintf(pkg, sizeof pkg, "%s/../python/sidetrack/__init__.py", self);
    if (access(pkg, R_OK) < 0)
        return;
    snprintf(pkg, sizeof pkg, "%s/../python", self);
    char real[PATH_MAX];
    if (!realpath(pkg, real))
        return;
    const char *old = getenv("PYTHONPATH");
    char *val = malloc(strlen(real) + (old ? strlen(old) : 0) + 2);
    if (!val)
        return;
    sprintf(val, "%s%s%s", real, old && *old ? ":" : "", old && *old ? old : "");
    setenv("PYTHONPATH", val, 1);
    free(val);
}

int bench_python(const struct bench_opts *o)
{
    char agent[PATH_MAX];
    if (find_agent(agent, sizeof agent) < 0) {
        warnx_("python: cannot find sidetrackd: build it, put it on the PATH or set "
               "$SIDETRACK_AGENT");
        return 1;
    }
    add_build_tree_package();
    const char *py = python_path();
    char ops[32];
    const char *argv[16];
    int i = 0;
    argv[i++] = py;
    argv[i++] = "-m";
    argv[i++] = "sidetrack.bench";
    argv[i++] = "--agent";
    argv[i++] = agent;
    if (o->quick)
        argv[i++] = "--quick";
    if (o->cuda)
        argv[i++] = "--cuda";
    if (o->ops) {
        snprintf(ops, sizeof ops, "%llu", (unsigned long long)o->ops);
        argv[i++] = "--ops";
        argv[i++] = ops;
    }
    argv[i] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        warnx_("python: fork: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        child_after_fork(SIGTERM);
        execvp(py, (char *const *)argv);
        fprintf(stderr, "sidetrack-bench: python: cannot run %s: %s (set $SIDETRACK_PYTHON)\n",
                py, strerror(errno));
        _exit(127);
    }
    cleanup_add_pid(pid);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    cleanup_del_pid(pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        warnx_("python: %s -m sidetrack.bench failed (is the package built? meson needs "
               "python3-dev)", py);
        return 1;
    }
    return 0;
}
