/* proc.c — see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    abort();
}

void scratch_make(struct scratch *s, const char *name)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(s->root, sizeof s->root, "%s/st-e2e-%s-XXXXXX", base, name);
    if (!mkdtemp(s->root))
        die("mkdtemp");
    /* The store goes to /tmp (a real disk, where fsync means something). */
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/st-e2e-data-%s-XXXXXX", name);
    if (!mkdtemp(tmpl))
        die("mkdtemp");
    snprintf(s->data, sizeof s->data, "%s", tmpl);
    snprintf(s->rings, sizeof s->rings, "%s/rings", s->root);
    setenv("SIDETRACK_RING_DIR", s->rings, 1);
    setenv("SIDETRACK_DATA", s->data, 1);
}

void scratch_remove(struct scratch *s)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", s->root, s->data);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", s->root);
}

const char *bin_path(const char *rel, char *buf, size_t len)
{
    const char *dir = getenv("SIDETRACK_BUILD_DIR");
    snprintf(buf, len, "%s/%s", dir ? dir : ".", rel);
    return buf;
}

static pid_t spawn(const char *const *argv, int out_fd)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        /* A failing test must not leave an agent behind (it would hold the test's output
         * pipes open, and meson would wait for it until the timeout). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (out_fd >= 0) {
            dup2(out_fd, 1);
            close(out_fd);
        }
        execv(argv[0], (char *const *)argv);
        perror(argv[0]);
        _exit(127);
    }
    return pid;
}

pid_t agent_start(const struct scratch *s, const char *const *extra)
{
    char bin[1024];
    const char *argv[32] = {bin_path("agent/sidetrackd", bin, sizeof bin), "--data", s->data,
                            "--ring-dir", s->rings};
    int n = 5;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return spawn(argv, -1);
}

int wait_for(pid_t pid, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ms(10);
    }
}

/* The agent writes its pid into DIR/agent.lock once its signal handlers are in place. */
void agent_wait_ready(const char *data, pid_t pid)
{
    char path[512], buf[32];
    snprintf(path, sizeof path, "%s/agent.lock", data);
    for (int i = 0; i < 2000; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n > 0) {
                buf[n] = 0;
                if (atoi(buf) == (int)pid)
                    return;
            }
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        sleep_ms(5);
    }
}

int agent_stop_in(const char *data, pid_t pid)
{
    agent_wait_ready(data, pid);
    kill(pid, SIGTERM);
    int st = wait_for(pid, 120000);
    if (st < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

void agent_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
}

int cli_run(const struct scratch *s, char **out, const char *const *args)
{
    char bin[1024];
    const char *argv[32] = {bin_path("client/cli/sidetrack", bin, sizeof bin), "--data", s->data};
    int n = 3;
    for (int i = 0; args[i] && n < 30; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char path[] = "/tmp/st-cli-out-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp");
    unlink(path);
    pid_t pid = spawn(argv, fd);
    int st = wait_for(pid, 120000);
    off_t size = lseek(fd, 0, SEEK_END);
    char *buf = malloc((size_t)size + 1);
    if (!buf)
        die("malloc");
    if (pread(fd, buf, (size_t)size, 0) != size)
        die("pread");
    buf[size] = 0;
    close(fd);
    *out = buf;
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}
