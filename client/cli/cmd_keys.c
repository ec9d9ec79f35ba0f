/* cmd_keys.c — `sidetrack keys gen NAME [--dir DIR]`: a CURVE key pair for an agent or the
 * server (sync/keys.h): NAME.key (secret, mode 0600) and NAME.pub (to give to the other side).
 * `sidetrack keys token NAME [--dir DIR]`: a bearer token for HTTPS (NAME.token, mode 0600).
 * `sidetrack keys show FILE` prints the public key of a .pub or .key file. */
#include "cli.h"
#include "keys.h"

#include <errno.h>
#include <string.h>

static void keys_usage(FILE *f)
{
    fputs("Usage: sidetrack keys gen NAME [--dir DIR]\n"
          "       sidetrack keys token NAME [--dir DIR]\n"
          "       sidetrack keys show FILE\n"
          "\n"
          "gen:  makes a CURVE key pair for replication: DIR/NAME.key (both keys, mode 0600:\n"
          "      keep it on this machine) and DIR/NAME.pub (the public key). An agent's .pub\n"
          "      goes into the server's allow-list directory (sidetrack-server --allow, by\n"
          "      default DATA/agents.d); the server's server.pub goes to every agent\n"
          "      (sidetrackd --server-key). Existing files are never overwritten.\n"
          "token: makes a bearer token for replication over HTTPS (and the REST API):\n"
          "      DIR/NAME.token (mode 0600). The same file goes to the server's tokens\n"
          "      directory (sidetrack-server --tokens, by default DATA/tokens.d), where NAME\n"
          "      names the client, and to the agent (sidetrackd --server-token FILE).\n"
          "show: prints the public key of a .pub or .key file.\n"
          "\n"
          "Options:\n"
          "      --dir DIR  where to write the files (default: the current directory)\n",
          f);
}

enum { OPT_DIR = CLI_OPT_FIRST };

static int make_token(const char *dir, const char *name)
{
    char tok[SYNC_TOKEN_LEN + 1];
    int r = sync_token_gen(dir, name, tok);
    memset(tok, 0, sizeof tok); /* the file is the token's only home */
    if (r < 0) {
        cli_error("cannot make the token %s/%s.token: %s", dir, name,
                  r == -EEXIST ? "the file exists already (never overwritten)" : strerror(-r));
        return CLI_FAIL;
    }
    printf("%s/%s.token  the token (mode 0600): copy it, keeping the mode, to\n"
           "  the server's tokens directory (sidetrack-server --tokens, default DATA/tokens.d),\n"
           "  where '%s' becomes the client's name, and to the agent: sidetrackd --server "
           "https://HOST:PORT --server-token FILE\n",
           dir, name, name);
    return CLI_OK;
}

int cmd_keys(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("keys", "missing subcommand: gen, token or show");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        keys_usage(stdout);
        return CLI_OK;
    }
    bool gen = !strcmp(sub, "gen"), token = !strcmp(sub, "token");
    if (!gen && !token && strcmp(sub, "show") != 0)
        return cli_usage_error("keys", "unknown subcommand '%s': use gen, token or show", sub);
    static const struct cli_option opts[] = {CLI_COMMON_OPTIONS, {"dir", 0, true, OPT_DIR}, {0}};
    static const struct cli_syntax syntax = {"keys", opts, keys_usage, .max_args = 1};
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc - 1, argv + 1);
    const char *v, *arg = NULL, *dir = ".";
    int id;
    while ((id = cli_args_next(&a, &v)) != CLI_ARG_END) {
        if (id == CLI_ARG_EXIT)
            return a.exit;
        if (id == CLI_ARG_POSITIONAL)
            arg = v;
        else if (id == OPT_DIR)
            dir = v;
    }
    if (!arg)
        return cli_usage_error("keys", gen || token ? "missing NAME" : "missing FILE");
    char pub[SYNC_KEY_Z85 + 1];
    if (!gen && !token) {
        int r = sync_keys_read_public(arg, pub);
        if (r < 0) {
            cli_error("%s: %s", arg, r == -EBADMSG ? "no public key in it" : strerror(-r));
            return CLI_FAIL;
        }
        printf("%s\n", pub);
        return CLI_OK;
    }
    if (!*arg || strchr(arg, '/')) {
        return cli_usage_error("keys", "NAME is a file name without '/': use --dir for the "
                                       "directory");
    }
    if (token)
        return make_token(dir, arg);
    int r = sync_keys_gen(dir, arg, pub);
    if (r < 0) {
        cli_error("cannot make the key pair %s/%s: %s", dir, arg,
                  r == -EEXIST    ? "the files exist already (never overwritten)"
                  : r == -ENOTSUP ? "this libzmq has no CURVE support"
                                  : strerror(-r));
        return CLI_FAIL;
    }
    printf("%s/%s.key  the key pair: keep it here, readable by the agent or server only\n"
           "%s/%s.pub  the public key: %s\n",
           dir, arg, dir, arg, pub);
    return CLI_OK;
}
