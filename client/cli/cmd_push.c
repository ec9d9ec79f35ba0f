/* cmd_push.c — `sidetrack push --mlflow URL`: replicates the store's runs into an MLflow
 * tracking server through its REST API (sync/mlflow_push.h does the work).
 *
 * Unlike the other commands it writes to the store: what was sent is recorded there (remote
 * run ids, how many points each series has on the server), so that a push stopped anywhere
 * (Ctrl-C, kill -9, the server going away) is resumed by the next one without a duplicate.
 * The agent may be running meanwhile: LMDB serialises the two writers. The store is opened
 * with STORE_NOSYNC; the push fsyncs itself where it must (before each request that appends
 * points) and at the end.
 *
 * Output: progress on stderr (one line redrawn on a terminal; a line per run with --progress
 * elsewhere), what was skipped and why, and a summary on stdout.
 */
#include "cli.h"

#include "mlflow_push.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { OPT_MLFLOW = CLI_OPT_FIRST, OPT_PREFIX, OPT_RUN, OPT_DRY_RUN, OPT_PROGRESS, OPT_CA,
       OPT_JSON, OPT_RETRY };

static void push_usage(FILE *f)
{
    fputs("Usage: sidetrack push --mlflow URL [--experiment-prefix P] [--run RUN]...\n"
          "                      [--dry-run] [--progress] [--ca FILE] [--json]\n"
          "\n"
          "Replicates the store's runs into an MLflow tracking server through its REST API:\n"
          "experiments by name, runs, params, tags, every metric point, artifacts and the\n"
          "runs' ends. What was sent is recorded in the store, so running it again sends only\n"
          "what is new, and a push that was interrupted resumes without sending anything twice.\n"
          "\n"
          "Options:\n"
          "      --mlflow URL              the tracking server, e.g. http://mlflow:5000\n"
          "      --experiment-prefix P     put P before each experiment's name on the server\n"
          "      --run RUN                 only this run (repeatable; default: every run that\n"
          "                                is not deleted)\n"
          "      --dry-run                 say what would be sent; send nothing\n"
          "      --progress                progress lines even when stderr is not a terminal\n"
          "      --ca FILE                 CA bundle to verify an https server with\n"
          "      --retry-max SEC           give up after the server failed this long (120)\n"
          "      --json                    the summary as JSON\n"
          "  -d, --data DIR                the store's directory\n"
          "\n"
          "Authentication, as MLflow's client takes it: MLFLOW_TRACKING_TOKEN (bearer), or\n"
          "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic);\n"
          "MLFLOW_TRACKING_INSECURE_TLS=true skips certificate checks;\n"
          "MLFLOW_TRACKING_SERVER_CERT_PATH is a CA bundle (like --ca).\n"
          "Exit status: 0 all pushed, 1 something was not (said why), 2 usage error.\n"
          "See docs/mlflow-push.md.\n",
          f);
}

struct progress {
    bool tty, lines;
    bool drawn;     /* a progress line is on the terminal */
    uint64_t last_ms;
    char run[48];
    uint64_t index, total;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void clear_line(struct progress *pg)
{
    if (pg->drawn) {
        fputs("\r\033[K", stderr);
        pg->drawn = false;
    }
}

static void on_event(const struct mlflow_push_event *ev, void *arg)
{
    struct progress *pg = arg;
    switch (ev->kind) {
    case MLFLOW_EV_RUN: {
        char *name = text_escape(ev->run_name ? ev->run_name : "");
        snprintf(pg->run, sizeof pg->run, "%.8s %.30s", ev->run_hex, name ? name : "");
        free(name);
        pg->index = ev->index;
        pg->total = ev->total;
        if (pg->tty) {
            clear_line(pg);
            fprintf(stderr, "[%llu/%llu] %s", (unsigned long long)ev->index,
                    (unsigned long long)ev->total, pg->run);
            pg->drawn = true;
        } else if (pg->lines) {
            char todo[32];
            format_count(ev->todo, todo, sizeof todo);
            fprintf(stderr, "[%llu/%llu] run %s: %s point(s) to send\n",
                    (unsigned long long)ev->index, (unsigned long long)ev->total, pg->run,
                    todo);
        }
        break;
    }
    case MLFLOW_EV_POINTS: {
        uint64_t now = mono_ms();
        if (!pg->tty || (now - pg->last_ms < 100 && ev->done < ev->todo))
            break;
        pg->last_ms = now;
        char done[32], todo[32];
        format_count(ev->done, done, sizeof done);
        format_count(ev->todo, todo, sizeof todo);
        clear_line(pg);
        fprintf(stderr, "[%llu/%llu] %s: %s / %s points", (unsigned long long)pg->index,
                (unsigned long long)pg->total, pg->run, done, todo);
        pg->drawn = true;
        break;
    }
    case MLFLOW_EV_RETRY:
        clear_line(pg);
        fprintf(stderr, "sidetrack: %s; retrying in %.1f s\n", ev->message,
                ev->wait_ms / 1000.0);
        break;
    default: /* skips and failures: always said */
        clear_line(pg);
        fputs("sidetrack: ", stderr);
        print_text(stderr, ev->message);
        fputc('\n', stderr);
        break;
    }
    fflush(stderr);
}

static bool stop_asked(void *arg)
{
    (void)arg;
    return cli_stop_signal != 0;
}

static void print_summary(const struct mlflow_push_stats *st, bool dry, bool json)
{
    if (json) {
        struct json j;
        json_init(&j, stdout);
        json_begin_object(&j, false);
        json_key(&j, "dry_run");
        json_bool(&j, dry);
        json_kv_uint(&j, "runs", st->runs);
        json_kv_uint(&j, "runs_created", st->runs_created);
        json_kv_uint(&j, "runs_updated", st->runs_updated);
        json_kv_uint(&j, "runs_failed", st->runs_failed);
        json_kv_uint(&j, "points", st->points);
        json_kv_uint(&j, "params", st->params);
        json_kv_uint(&j, "tags", st->tags);
        json_kv_uint(&j, "artifacts", st->artifacts);
        json_kv_uint(&j, "skipped", st->skipped);
        json_kv_uint(&j, "requests", st->requests);
        json_kv_uint(&j, "retries", st->retries);
        json_end_object(&j);
        json_finish(&j);
        return;
    }
    char pts[32];
    format_count(st->points, pts, sizeof pts);
    printf("%s %llu run%s: %llu %s, %llu %s", dry ? "would push" : "pushed",
           (unsigned long long)st->runs, st->runs == 1 ? "" : "s",
           (unsigned long long)st->runs_created, dry ? "to create" : "created",
           (unsigned long long)st->runs_updated,
           dry ? "to bring up to date" : "brought up to date");
    if (st->runs_failed)
        printf(", %llu failed", (unsigned long long)st->runs_failed);
    printf("; %s point%s, %llu param%s, %llu tag%s, %llu artifact%s; %llu skipped\n", pts,
           st->points == 1 ? "" : "s", (unsigned long long)st->params,
           st->params == 1 ? "" : "s", (unsigned long long)st->tags, st->tags == 1 ? "" : "s",
           (unsigned long long)st->artifacts, st->artifacts == 1 ? "" : "s",
           (unsigned long long)st->skipped);
}

/* Writable (the records of what was sent); a dry run only reads. */
static int open_store(struct cli *c, bool dry_run)
{
    return cli_open_store_rw(c, dry_run ? STORE_RDONLY : STORE_NOSYNC,
                             "push records what it sent there: run it as the agent's user");
}

/* Resolves each --run (an id or a unique prefix) to its 16 bytes. */
static int resolve_runs(struct cli *c, char **names, size_t n, uint8_t (*ids)[16])
{
    struct store_txn *t;
    int r = store_begin(c->store, false, &t);
    if (r < 0)
        return cli_store_error(r, "cannot read the store at %s", c->data_dir);
    for (size_t i = 0; i < n; i++) {
        r = store_run_resolve(t, names[i], ids[i]);
        if (r < 0) {
            store_abort(t);
            if (r == -ENOENT)
                cli_error("no run '%s' in the store at %s", names[i], c->data_dir);
            else if (r == -ENOTUNIQ)
                cli_error("'%s' matches several runs: give more of its digits", names[i]);
            else if (r == -EINVAL)
                cli_error("'%s' is not a run id (hex digits)", names[i]);
            else
                cli_store_error(r, "cannot look up run '%s'", names[i]);
            return CLI_FAIL;
        }
    }
    store_abort(t);
    return CLI_OK;
}

int cmd_push(struct cli *c, int argc, char **argv)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"mlflow", 0, true, OPT_MLFLOW},
        {"experiment-prefix", 0, true, OPT_PREFIX},
        {"run", 0, true, OPT_RUN},
        {"dry-run", 0, false, OPT_DRY_RUN},
        {"progress", 0, false, OPT_PROGRESS},
        {"ca", 0, true, OPT_CA},
        {"retry-max", 0, true, OPT_RETRY},
        {"json", 0, false, OPT_JSON},
        {0},
    };
    static const struct cli_syntax syntax = {"push", opts, push_usage, .max_args = 0};
    struct mlflow_target t = {0};
    struct progress pg = {.tty = isatty(STDERR_FILENO) == 1};
    bool json = false;
    char **names = calloc((size_t)argc, sizeof *names);
    size_t nnames = 0;
    if (!names) {
        cli_error("out of memory");
        return CLI_FAIL;
    }
    struct cli_args a;
    const char *v;
    cli_args_init(&a, c, &syntax, argc, argv);
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case OPT_MLFLOW: t.url = v; break;
        case OPT_PREFIX: t.experiment_prefix = v; break;
        case OPT_RUN: names[nnames++] = (char *)v; break;
        case OPT_DRY_RUN: t.dry_run = true; break;
        case OPT_PROGRESS: pg.lines = true; break;
        case OPT_CA: t.ca_file = v; break;
        case OPT_JSON: json = true; break;
        case OPT_RETRY: {
            char *end;
            unsigned long s = strtoul(v, &end, 10);
            if (*end || end == v || s == 0 || s > 86400) {
                free(names);
                return cli_usage_error("push", "--retry-max: seconds from 1 to 86400, not '%s'",
                                       v);
            }
            t.retry_max_ms = (uint32_t)s * 1000;
            break;
        }
        default:
            free(names);
            return a.exit;
        }
    }
    if (!t.url) {
        free(names);
        return cli_usage_error("push", "--mlflow URL is required (the tracking server)");
    }
    if (strncmp(t.url, "http://", 7) && strncmp(t.url, "https://", 8)) {
        free(names);
        return cli_usage_error("push", "--mlflow: expected http://HOST:PORT or https://..., "
                                       "not '%s'", t.url);
    }
    mlflow_target_from_env(&t);
    t.should_stop = stop_asked;

    uint8_t(*ids)[16] = nnames ? calloc(nnames, sizeof *ids) : NULL;
    int rc = CLI_FAIL;
    if ((nnames && !ids) || open_store(c, t.dry_run) != CLI_OK ||
        (nnames && resolve_runs(c, names, nnames, ids) != CLI_OK))
        goto out;
    t.runs = (const uint8_t(*)[16])ids;
    t.nruns = nnames;

    struct mlflow_push_stats st;
    char err[1024];
    int r = mlflow_push_run_once(c->store, &t, &st, on_event, &pg, err, sizeof err);
    clear_line(&pg);
    if (r == -EINTR && cli_stop_signal) {
        rc = CLI_FAIL; /* main re-raises the signal; what was sent is recorded */
        goto out;
    }
    if (r < 0) {
        cli_error("push to %s stopped: %s (run it again to resume)", t.url, err);
        print_summary(&st, t.dry_run, json);
        goto out;
    }
    print_summary(&st, t.dry_run, json);
    rc = r == 0 ? CLI_OK : CLI_FAIL;
out:
    free(ids);
    free(names);
    return rc;
}
