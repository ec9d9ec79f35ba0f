/* cmd_artifacts.c — `sidetrack artifacts RUN`: a run's artifacts and where their content is;
 * with --get PATH, that artifact's content, copied to a file or stdout.
 *
 * The store keeps an artifact as a reference (path -> SHA-256, size) in LMDB and its content
 * as a file named by its hash under DIR/artifacts/ (store_blob_path). Blobs are written once
 * and never changed, so a copy made after the read transaction ended is still right; a blob
 * that is missing (a server the content has not reached yet) is said so, not an error of the
 * listing.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int gather_artifacts(struct cli *c, const char *run, uint8_t id[16],
                            struct cli_artifacts *l)
{
    struct store_txn *t;
    if (cli_begin_run(c, run, &t, id) != CLI_OK)
        return CLI_FAIL;
    int rc = CLI_OK, r = store_artifacts_foreach(t, id, cli_collect_artifact, l);
    if (r < 0) {
        char hex[33];
        store_run_id_hex(id, hex);
        rc = cli_store_error(r, "cannot read the artifacts of run %s", hex);
    }
    store_abort(t);
    return rc;
}

static bool blob_of(struct cli *c, const struct store_artifact *a, char *path, size_t len)
{
    struct stat st;
    if (store_blob_path(c->store, a->sha256, path, len) < 0) {
        snprintf(path, len, "-");
        return false;
    }
    return stat(path, &st) == 0;
}

/* ---- listing ---- */

static int print_table(struct cli *c, const struct cli_artifacts *l)
{
    struct table tb;
    table_init(&tb, 4, 0x2);
    table_cell(&tb, "PATH");
    table_cell(&tb, "SIZE");
    table_cell(&tb, "SHA256");
    table_cell(&tb, "FILE");
    for (size_t i = 0; i < l->n; i++) {
        char sha[65], blob[4096];
        bool present = blob_of(c, &l->v[i], blob, sizeof blob);
        format_hex(l->v[i].sha256, 32, sha);
        table_cell(&tb, l->v[i].path);
        table_cellf(&tb, "%" PRIu64, l->v[i].size);
        table_cell(&tb, sha);
        table_cellf(&tb, "%s%s", blob, present ? "" : " (missing)");
    }
    int r = table_print(&tb, stdout, "");
    table_free(&tb);
    return r < 0 ? cli_store_error(r, "cannot print the artifacts") : CLI_OK;
}

static void print_json(struct cli *c, const struct cli_artifacts *l)
{
    struct json j;
    json_init(&j, stdout);
    json_begin_array(&j, false);
    for (size_t i = 0; i < l->n; i++) {
        char sha[65], blob[4096];
        bool present = blob_of(c, &l->v[i], blob, sizeof blob);
        format_hex(l->v[i].sha256, 32, sha);
        json_begin_object(&j, false);
        json_kv_string(&j, "path", l->v[i].path);
        json_kv_uint(&j, "size", l->v[i].size);
        json_kv_string(&j, "sha256", sha);
        json_kv_string(&j, "blob_path", blob);
        json_key(&j, "present");
        json_bool(&j, present);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_finish(&j);
}

/* ---- --get ---- */

static int copy_fd(int in, int out, uint64_t *copied)
{
    static char buf[1 << 16];
    *copied = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR && !cli_stop_signal)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        int r = cli_write_all(out, buf, (size_t)n);
        if (r < 0)
            return r;
        *copied += (uint64_t)n;
    }
}

static int report_no_artifact(const uint8_t id[16], const char *path,
                              const struct cli_artifacts *l)
{
    struct cli_strv paths = {0};
    char hex[33], list[2048] = "";
    store_run_id_hex(id, hex);
    for (size_t i = 0; i < l->n; i++)
        if (cli_strv_add(&paths, l->v[i].path) < 0)
            break;
    cli_strv_join(&paths, 30, list, sizeof list);
    cli_strv_free(&paths);
    if (*list)
        cli_error("run %s has no artifact %s; it has: %s", hex, path, list);
    else
        cli_error("run %s has no artifact %s; it has no artifacts at all", hex, path);
    return CLI_FAIL;
}

/* Copies the blob to out ("-" or NULL: stdout). */
static int copy_blob(const char *blob, const struct store_artifact *a, const char *out)
{
    int in = open(blob, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT)
            cli_error("the content of artifact %s is not in this store (%s is missing): it "
                      "has not arrived yet, or was removed",
                      a->path, blob);
        else
            cli_error("cannot read %s, the content of artifact %s: %s", blob, a->path,
                      strerror(errno));
        return CLI_FAIL;
    }
    bool to_stdout = !out || strcmp(out, "-") == 0;
    int fd = to_stdout ? STDOUT_FILENO
                       : open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        cli_error("cannot create %s: %s", out, strerror(errno));
        close(in);
        return CLI_FAIL;
    }
    if (to_stdout && cli_flush_stdout() != CLI_OK) {
        close(in);
        return CLI_FAIL;
    }
    uint64_t copied;
    int rc = CLI_OK, r = copy_fd(in, fd, &copied);
    if (r == 0 && !to_stdout && close(fd) < 0)
        r = -errno;
    else if (!to_stdout && r < 0)
        close(fd);
    close(in);
    if (r < 0 && !cli_stop_signal) {
        cli_error("cannot copy artifact %s from %s to %s: %s", a->path, blob,
                  to_stdout ? "stdout" : out, strerror(-r));
        rc = CLI_FAIL;
    } else if (r < 0) {
        rc = CLI_FAIL;
    } else if (copied != a->size) {
        cli_error("%s holds %" PRIu64 " bytes, but artifact %s has %" PRIu64
                  ": the stored content is damaged",
                  blob, copied, a->path, a->size);
        rc = CLI_FAIL;
    }
    return rc;
}

static int get_artifact(struct cli *c, const uint8_t id[16], const struct cli_artifacts *l,
                        const char *path, const char *out)
{
    const struct store_artifact *a = NULL;
    for (size_t i = 0; i < l->n && !a; i++)
        if (strcmp(l->v[i].path, path) == 0)
            a = &l->v[i];
    if (!a)
        return report_no_artifact(id, path, l);
    char blob[4096];
    int r = store_blob_path(c->store, a->sha256, blob, sizeof blob);
    if (r < 0)
        return cli_store_error(r, "cannot locate the content of artifact %s", path);
    return copy_blob(blob, a, out);
}

static void artifacts_usage(FILE *f)
{
    fputs("Usage: sidetrack artifacts RUN [--json]\n"
          "       sidetrack artifacts RUN --get PATH [--out FILE]\n"
          "\n"
          "Lists the artifacts of run RUN: path, size, SHA-256 and the file in the store\n"
          "that holds the content (DIR/artifacts/ab/<sha256>), or copies one artifact out.\n"
          "RUN is the run's id: 32 hex digits, or a unique prefix of at least 4.\n"
          "\n"
          "Options:\n"
          "      --json        a JSON array of {path, size, sha256, blob_path, present}\n"
          "  -g, --get PATH    write the content of the artifact at PATH to stdout\n"
          "  -o, --out FILE    with --get: write it to FILE instead ('-' is stdout)\n"
          "  -d, --data DIR    the store's directory\n"
          "  -h, --help        show this help\n",
          f);
}

enum { OPT_JSON = CLI_OPT_FIRST, OPT_GET, OPT_OUT };

int cmd_artifacts(struct cli *c, int argc, char **argv)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"json", 0, false, OPT_JSON},
        {"get", 'g', true, OPT_GET},
        {"out", 'o', true, OPT_OUT},
        {0},
    };
    static const struct cli_syntax syntax = {"artifacts", opts, artifacts_usage, .max_args = 1};
    const char *run = NULL, *get = NULL, *out = NULL, *v;
    bool json = false;
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case OPT_JSON: json = true; break;
        case OPT_GET: get = v; break;
        case OPT_OUT: out = v; break;
        case CLI_ARG_POSITIONAL: run = v; break;
        default: return a.exit;
        }
    }
    if (!run)
        return cli_usage_error(syntax.cmd, "missing RUN");
    if (out && !get)
        return cli_usage_error(syntax.cmd, "--out goes with --get PATH");
    if (json && get)
        return cli_usage_error(syntax.cmd,
                               "--json lists the artifacts, --get copies one: not both");

    uint8_t id[16];
    struct cli_artifacts l = {0};
    int rc = gather_artifacts(c, run, id, &l);
    if (rc == CLI_OK && get)
        rc = get_artifact(c, id, &l, get, out);
    else if (rc == CLI_OK && json)
        print_json(c, &l);
    else if (rc == CLI_OK)
        rc = print_table(c, &l);
    free(l.v);
    return rc;
}
