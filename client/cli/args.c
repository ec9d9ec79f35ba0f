/* args.c — option parsing for the CLI's commands.
 *
 * getopt_long's error messages cannot name the command they belong to, and its abbreviations
 * of long options would make every new option a possible break of someone's script; this is
 * the small part of it we need, with messages that say which command and where to look.
 */
#include "cli.h"

#include <string.h>

void cli_args_init(struct cli_args *a, struct cli *c, const struct cli_syntax *syntax,
                   int argc, char **argv)
{
    /* exit stays CLI_USAGE for every CLI_ARG_EXIT but the one after --help */
    *a = (struct cli_args){.syntax = syntax, .c = c, .argc = argc, .argv = argv, .next = 1,
                           .exit = CLI_USAGE};
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sidetrack%s%s: ", cmd && *cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'sidetrack%s%s --help')\n", cmd && *cmd ? " " : "", cmd ? cmd : "");
    return CLI_USAGE;
}

static const struct cli_option *find_long(const struct cli_option *o, const char *name, size_t n)
{
    for (; o->name; o++)
        if (strlen(o->name) == n && memcmp(o->name, name, n) == 0)
            return o;
    return NULL;
}

static const struct cli_option *find_letter(const struct cli_option *o, char letter)
{
    for (; o->name; o++)
        if (o->letter && o->letter == letter)
            return o;
    return NULL;
}

static int parse_long(struct cli_args *a, const char *arg, const char **value)
{
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    const struct cli_option *o = find_long(a->syntax->opts, name, n);
    const char *cmd = a->syntax->cmd;
    if (!o)
        return cli_usage_error(cmd, "unknown option '--%.*s'", (int)n, name), CLI_ARG_EXIT;
    if (!o->has_value) {
        if (eq)
            return cli_usage_error(cmd, "option '--%s' takes no value", o->name),
                   CLI_ARG_EXIT;
        return o->id;
    }
    if (eq) {
        *value = eq + 1;
        return o->id;
    }
    if (a->next >= a->argc)
        return cli_usage_error(cmd, "option '--%s' needs a value", o->name), CLI_ARG_EXIT;
    *value = a->argv[a->next++];
    return o->id;
}

static int parse_short(struct cli_args *a, const char *arg, const char **value)
{
    const struct cli_option *o = find_letter(a->syntax->opts, arg[1]);
    const char *cmd = a->syntax->cmd;
    if (!o)
        return cli_usage_error(cmd, "unknown option '%s'", arg), CLI_ARG_EXIT;
    if (!o->has_value) {
        if (arg[2])
            return cli_usage_error(cmd, "unknown option '%s'", arg), CLI_ARG_EXIT;
        return o->id;
    }
    if (arg[2]) { /* -dDIR */
        *value = arg + 2;
        return o->id;
    }
    if (a->next >= a->argc)
        return cli_usage_error(cmd, "option '-%c' needs a value", o->letter), CLI_ARG_EXIT;
    *value = a->argv[a->next++];
    return o->id;
}

static int next_arg(struct cli_args *a, const char **value)
{
    *value = NULL;
    if (a->next >= a->argc)
        return CLI_ARG_END;
    const char *arg = a->argv[a->next++];
    /* "-" alone is an argument (stdout, by convention), not an option. */
    if (a->only_positional || arg[0] != '-' || arg[1] == '\0') {
        *value = arg;
        return CLI_ARG_POSITIONAL;
    }
    if (strcmp(arg, "--") == 0) {
        a->only_positional = true;
        return next_arg(a, value);
    }
    if (arg[1] == '-')
        return parse_long(a, arg, value);
    return parse_short(a, arg, value);
}

/* --help, --data and too many arguments mean the same to every command: answered here, once,
 * so that a command's switch holds only what is its own. */
int cli_args_next(struct cli_args *a, const char **value)
{
    for (;;) {
        int o = next_arg(a, value);
        switch (o) {
        case CLI_OPT_HELP:
            a->syntax->usage(stdout);
            a->exit = CLI_OK;
            return CLI_ARG_EXIT;
        case CLI_OPT_DATA:
            if (strstr(*value, "://")) {
                /* A server's store over the network is the HTTP front's (docs/sync.md). */
                cli_usage_error(a->syntax->cmd,
                                "--store %s: only a directory is read today (a server's "
                                "store: --store DIR on the server itself)",
                                *value);
                return CLI_ARG_EXIT;
            }
            a->c->data_dir = *value;
            break;
        case CLI_ARG_POSITIONAL:
            if (a->nargs++ == a->syntax->max_args)
                return cli_usage_error(a->syntax->cmd, "unexpected argument '%s'", *value),
                       CLI_ARG_EXIT;
            return o;
        default:
            return o;
        }
    }
}

/* A command whose only own option is --json (`runs show`, `status`). */
enum { OPT_JSON = CLI_OPT_FIRST };
const struct cli_option cli_json_options[] = {
    CLI_COMMON_OPTIONS,
    {"json", 0, false, OPT_JSON},
    {0},
};

int cli_args_json(struct cli *c, const struct cli_syntax *syntax, int argc, char **argv,
                  bool *json, const char **arg)
{
    const char *v;
    struct cli_args a;
    cli_args_init(&a, c, syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case OPT_JSON: *json = true; break;
        case CLI_ARG_POSITIONAL:
            if (arg)
                *arg = v;
            break;
        default: return a.exit;
        }
    }
    return CLI_ARG_END;
}
