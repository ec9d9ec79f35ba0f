/* main.c — `sidetrack`: global options, dispatch to a command, and the end of the process.
 *
 * The commands live in cmd_*.c; each gets argv from its own name on, parses its options with
 * args.c, opens the store through session.c and returns an exit status. main closes the store
 * after the command and, when a signal asked us to stop (or stdout became a broken pipe),
 * re-raises it so that the shell sees what it expects from `| head` or Ctrl-C.
 */
#include "cli.h"

#include <string.h>

#ifndef SIDETRACK_VERSION
#define SIDETRACK_VERSION "unknown"
#endif

volatile sig_atomic_t cli_stop_signal;

static void on_signal(int sig)
{
    if (!cli_stop_signal) /* the first one is why we stop */
        cli_stop_signal = sig;
}

/* No SA_RESTART: a write blocked on a full pipe returns EINTR, so a command notices. */
static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
}

struct command {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
};

static const struct command commands[] = {
    {"runs", cmd_runs},
    {"metrics", cmd_metrics},
    {"artifacts", cmd_artifacts},
    {"status", cmd_status},
    {"wait", cmd_wait},
    {"sync", cmd_sync},
    {"keys", cmd_keys},
    {"export", cmd_export},
    {"import", cmd_import},
    {"push", cmd_push},
    {"ui", cmd_ui},
    {"models", cmd_models},
    {0},
};

static void usage(FILE *f)
{
    fputs("Usage: sidetrack [--data DIR] COMMAND [ARGS...]\n"
          "\n"
          "Shows what the node's store holds: the runs, params, tags, metrics and artifacts\n"
          "that sidetrackd stored. Reading commands open it read-only; export, import and\n"
          "push write, safely beside a running agent or server.\n"
          "\n"
          "Commands:\n"
          "  runs list [--experiment NAME] [--json]        runs, newest first\n"
          "  runs show RUN [--json]                        a run: info, params, tags, metrics,\n"
          "                                                artifacts\n"
          "  runs search [FILTER] [--order-by KEY]...      runs matching an MLflow filter\n"
          "              [--max N] [--json]                (\"metrics.acc > 0.9 and ...\")\n"
          "  metrics RUN KEY [--format csv|json|table]     a metric's full history\n"
          "  artifacts RUN [--json]                        a run's artifacts and their files\n"
          "  artifacts RUN --get PATH [--out FILE]         copy an artifact's content out\n"
          "  status [--json]                               is sidetrackd running and keeping\n"
          "                                                up; the lanes of the rings\n"
          "  wait [--timeout SEC]                          until what the rings hold is stored\n"
          "  sync status [--json] | sync now               replication to sidetrack-server\n"
          "  keys gen NAME [--dir DIR] | keys show FILE    CURVE keys for replication\n"
          "  keys token NAME [--dir DIR]                   a bearer token (HTTPS, the API)\n"
          "  export --out FILE [--run RUN...]              a bundle file for an air-gapped\n"
          "                                                node's data (docs/bundles.md)\n"
          "  import FILE [--check]                         apply a bundle, exactly once\n"
          "  push --mlflow URL [--run RUN...]              replicate the runs into an MLflow\n"
          "                                                tracking server (docs/mlflow-push.md)\n"
          "  ui [--port N]                                 the web UI over this store,\n"
          "                                                read-only (docs/ui.md)\n"
          "  models list | show | register | alias |       the model registry: versions,\n"
          "         rollback | compare | pull | ...        aliases, lineage (docs/models.md)\n"
          "\n"
          "Options:\n"
          "  -d, --data DIR  the store's directory, an agent's or a server's (also\n"
          "                  --store DIR; default: $SIDETRACK_DATA, else\n"
          "                  /var/lib/sidetrack as root, else $XDG_DATA_HOME/sidetrack or\n"
          "                  ~/.local/share/sidetrack); commands take it too\n"
          "  -h, --help      show this help; 'sidetrack COMMAND --help' shows a command's\n"
          "      --version   show the version\n"
          "\n"
          "RUN is a run id: its 32 hex digits, or a unique prefix of at least 4.\n"
          "Exit status: 0 success, 1 failure, 2 usage error. See docs/cli.md.\n",
          f);
}

enum { OPT_VERSION = CLI_OPT_FIRST };

/* Parses the options before the command. Returns the command's index in argv, 0 when main
 * should exit with *rc. */
static int parse_global(struct cli *c, int argc, char **argv, int *rc)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"version", 0, false, OPT_VERSION},
        {0},
    };
    /* one argument: the COMMAND, where these options end */
    static const struct cli_syntax syntax = {"", opts, usage, .max_args = 1};
    struct cli_args a;
    const char *v;
    cli_args_init(&a, c, &syntax, argc, argv);
    for (;;) {
        switch (cli_args_next(&a, &v)) {
        case OPT_VERSION:
            printf("sidetrack %s\n", SIDETRACK_VERSION);
            return *rc = CLI_OK, 0;
        case CLI_ARG_POSITIONAL:
            return a.next - 1;
        case CLI_ARG_END:
            *rc = cli_usage_error("", "no command given");
            return 0;
        default:
            return *rc = a.exit, 0;
        }
    }
}

static int run_command(struct cli *c, int argc, char **argv)
{
    if (strcmp(argv[0], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    for (const struct command *cmd = commands; cmd->name; cmd++)
        if (strcmp(argv[0], cmd->name) == 0)
            return cmd->run(c, argc, argv);
    return cli_usage_error("", "unknown command '%s'", argv[0]);
}

int main(int argc, char **argv)
{
    static struct cli c;
    int rc = CLI_OK;

    catch_signals();
    int cmd = parse_global(&c, argc, argv, &rc);
    if (cmd > 0)
        rc = run_command(&c, argc - cmd, argv + cmd);
    store_close(c.store);
    /* Once stopped, what is still buffered is dropped: a flush could block on the pipe. */
    if (!cli_stop_signal && cli_flush_stdout() != CLI_OK && rc == CLI_OK)
        rc = CLI_FAIL;
    if (cli_stop_signal) {
        signal(cli_stop_signal, SIG_DFL);
        raise(cli_stop_signal);
    }
    return rc;
}
