/* cmd_ui.c — `sidetrack ui`: the web UI over this node's own store, for a node that reaches
 * no server (air-gapped).
 *
 * It runs sidetrack-server --read-only --zmq off --http HOST:PORT --data DIR as a child: the
 * server opens the store with STORE_RDONLY, so it reads beside the agent that writes there and
 * never changes it, and MLflow's write endpoints answer 403. The server's log (stderr) is
 * relayed; once the server says which port it bound, the URL is printed on stdout. Ctrl-C
 * (the whole process group) or SIGTERM (passed on to the child) stops both.
 *
 * The server binary: --server PATH; else the one next to this program (bin/ and sbin/ of one
 * install, or the build tree's server/); else sidetrack-server on $PATH. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { OPT_PORT = CLI_OPT_FIRST, OPT_HOST, OPT_SERVER, OPT_WEB };

#define DEFAULT_PORT "5050"

static void usage(FILE *f)
{
    fputs("Usage: sidetrack ui [--port N] [--host ADDR] [--data DIR]\n"
          "\n"
          "Serves the web UI over this node's store, read-only, for a node that reaches no\n"
          "sidetrack-server (air-gapped): runs sidetrack-server --read-only on it and prints\n"
          "the URL to open. The agent may run meanwhile; nothing is written to the store.\n"
          "\n"
          "Options:\n"
          "  -p, --port N       the port (default " DEFAULT_PORT "; 0: any free one)\n"
          "      --host ADDR    the address to listen on (default 127.0.0.1: this machine\n"
          "                     only; there is no authentication in this mode)\n"
          "      --server PATH  the sidetrack-server program (default: next to this one,\n"
          "                     else on $PATH)\n"
          "      --web DIR      the web UI's files (default: the server's)\n"
          "  -d, --data DIR     the store (see 'sidetrack --help')\n"
          "\n"
          "Ctrl-C stops it. See docs/ui.md.\n",
          f);
}

/* An executable sidetrack-server near this program, into buf; false when none. */
static bool find_server(char *buf, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return false;
    *slash = '\0';
    /* bin/ beside sbin/ once installed; client/cli/ two levels below server/ in a build tree */
    static const char *const rel[] = {"sidetrack-server", "../sbin/sidetrack-server",
                                      "../../server/sidetrack-server"};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
        int w = snprintf(buf, len, "%s/%s", self, rel[i]);
        if (w > 0 && (size_t)w < len && access(buf, X_OK) == 0)
            return true;
    }
    return false;
}

/* Relays the child's log lines to stderr and prints the URL once the port is known. Returns
 * when the child closes its stderr (it ended) or, unless draining, a signal asks us to stop. */
static void relay(int fd, const char *host, bool drain)
{
    char buf[4096];
    size_t have = 0;
    bool shown = false;
    while (drain || !cli_stop_signal) {
        ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR && (drain || !cli_stop_signal))
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        char *nl;
        while ((nl = strchr(buf, '\n'))) {
            *nl = '\0';
            fprintf(stderr, "%s\n", buf);
            const char *p = strstr(buf, "(port ");
            if (!shown && p && strstr(buf, "serving HTTP")) {
                unsigned port = (unsigned)strtoul(p + 6, NULL, 10);
                bool v6 = strchr(host, ':') != NULL;
                printf("sidetrack ui: open http://%s%s%s:%u/ (read-only; Ctrl-C stops)\n",
                       v6 ? "[" : "", *host ? host : "127.0.0.1", v6 ? "]" : "", port);
                fflush(stdout);
                shown = true;
            }
            have -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have + 1);
        }
        if (have == sizeof buf - 1) { /* a very long line: pass it on as it is */
            fprintf(stderr, "%s", buf);
            have = 0;
        }
    }
}

int cmd_ui(struct cli *c, int argc, char **argv)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"port", 'p', true, OPT_PORT},
        {"host", 0, true, OPT_HOST},
        {"server", 0, true, OPT_SERVER},
        {"web", 0, true, OPT_WEB},
        {0},
    };
    static const struct cli_syntax syntax = {"ui", opts, usage, 0};
    const char *port = DEFAULT_PORT, *host = "127.0.0.1", *server = NULL, *web = NULL, *v;
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case OPT_PORT: {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (!*v || *end || n > 65535)
                return cli_usage_error("ui", "--port takes 0 to 65535, not '%s'", v);
            port = v;
            break;
        }
        case OPT_HOST: host = v; break;
        case OPT_SERVER: server = v; break;
        case OPT_WEB: web = v; break;
        default: return a.exit;
        }
    }
    if (cli_data_dir(c) != CLI_OK)
        return CLI_FAIL;
    if (access(c->data_dir, F_OK) != 0) {
        cli_error("no store at %s: is sidetrackd running with --data %s?", c->data_dir,
                  c->data_dir);
        return CLI_FAIL;
    }
    char found[PATH_MAX];
    if (!server)
        server = find_server(found, sizeof found) ? found : "sidetrack-server";

    char listen[300];
    snprintf(listen, sizeof listen, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    const char *args[16];
    int n = 0;
    args[n++] = server;
    args[n++] = "--read-only";
    args[n++] = "--zmq";
    args[n++] = "off";
    args[n++] = "--data";
    args[n++] = c->data_dir;
    args[n++] = "--http";
    args[n++] = listen;
    if (web) {
        args[n++] = "--web";
        args[n++] = web;
    }
    args[n] = NULL;

    int pfd[2];
    if (pipe(pfd) != 0) {
        cli_error("cannot start %s: %s", server, strerror(errno));
        return CLI_FAIL;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("cannot start %s: %s", server, strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return CLI_FAIL;
    }
    if (pid == 0) {
        dup2(pfd[1], STDERR_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        signal(SIGPIPE, SIG_DFL);
        execvp(server, (char *const *)args);
        fprintf(stderr, "sidetrack: cannot run %s: %s (install sidetrack-server, or give "
                "--server PATH)\n", server, strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    relay(pfd[0], host, false);
    if (cli_stop_signal)
        kill(pid, SIGTERM);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        kill(pid, SIGTERM); /* a second signal while it stops: it is on its way */
    /* The rest of its log (what it said while stopping). */
    relay(pfd[0], host, true);
    close(pfd[0]);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return CLI_OK;
    if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM))
        return CLI_OK;
    if (!cli_stop_signal)
        cli_error("sidetrack-server stopped (%s %d): see its messages above",
                  WIFEXITED(status) ? "exit status" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return CLI_FAIL;
}
