/* cmd_bundle.c — `sidetrack export` and `sidetrack import`: bundle files that carry a node's
 * data to a server (or another node) that no network reaches (sync/bundle.h, docs/bundles.md).
 *
 * Unlike the rest of the CLI these two write to a store: export records how far it got (the
 * store's "export_next" counter), import applies the bundle. Both open the store read-write
 * themselves; LMDB serialises their writes with those of an agent or server that runs on the
 * same store. The bundle is checked whole before the target store is even opened.
 *
 * Progress: a one-line bar on stderr while it is a terminal (or with --progress), redrawn at
 * most ten times a second; a summary line on stdout at the end.
 */
#include "bundle.h"
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- numbers for people ---- */

/* Decimal units, as disks and networks count: "45.6 MB". */
static const char *fmt_bytes(uint64_t v, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "kB", "MB", "GB", "TB"};
    double d = (double)v;
    int u = 0;
    while (d >= 1000 && u < 4)
        d /= 1000, u++;
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)v);
    else
        snprintf(buf, len, "%.1f %s", d, unit[u]);
    return buf;
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* ---- the progress bar ---- */

struct bar {
    bool on;
    bool drawn;
    double t0, last;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bar_init(struct bar *b, bool forced)
{
    *b = (struct bar){.on = forced || isatty(STDERR_FILENO), .t0 = mono_s()};
}

/* Draws the bar; stops the work once a signal asked us to (Ctrl-C, SIGTERM). */
static int bar_draw(const struct bundle_progress *p, void *arg)
{
    struct bar *b = arg;
    if (cli_stop_signal)
        return -EINTR;
    double now = mono_s();
    if (!b->on || now - b->last < 0.1)
        return 0;
    b->last = now;
    static const char *const verb[] = {"", "exporting", "checking", "importing"};
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 0;
    if (p->phase == BUNDLE_WRITING) {
        /* an export's totals are estimates: the further of the two, never quite done */
        double of = p->ops_total ? (double)p->ops_done / (double)p->ops_total : 0;
        frac = of > frac ? of : frac;
        frac = frac > 0.99 ? 0.99 : frac;
    }
    frac = frac > 1 ? 1 : frac;
    char bar[21];
    int fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    double el = now - b->t0;
    double rate = el > 0 ? (double)p->bytes_done / el : 0;
    char done[32], total[32], r[32], ops[32], opst[32], eta[32] = "";
    fmt_bytes(p->bytes_done, done, sizeof done);
    fmt_bytes(p->bytes_total, total, sizeof total);
    fmt_bytes((uint64_t)rate, r, sizeof r);
    if (frac > 0.01 && frac < 1)
        snprintf(eta, sizeof eta, "  ETA %.0fs", el * (1 - frac) / frac);
    fprintf(stderr, "\r%-9s %3d%% [%s] %s of %s%s", verb[p->phase], (int)(frac * 100), bar,
            done, p->phase == BUNDLE_WRITING ? "~" : "", total);
    if (p->ops_total)
        fprintf(stderr, "  %s/%s ops", format_count(p->ops_done, ops, sizeof ops),
                format_count(p->ops_total, opst, sizeof opst));
    fprintf(stderr, "  %s/s%s\x1b[K", r, eta);
    fflush(stderr);
    b->drawn = true;
    return 0;
}

static void bar_end(struct bar *b)
{
    if (b->drawn)
        fputs("\r\x1b[K", stderr);
    b->drawn = false;
    b->last = 0;
    b->t0 = mono_s();
}

/* ---- opening the store read-write ---- */

static int open_rw(struct cli *c, bool must_exist)
{
    if (cli_data_dir(c) != CLI_OK)
        return CLI_FAIL;
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", c->data_dir);
    struct stat st;
    if (must_exist && stat(path, &st) < 0) {
        cli_error("no store at %s: is sidetrackd running with --data %s?", c->data_dir,
                  c->data_dir);
        return CLI_FAIL;
    }
    return cli_open_store_rw(c, 0, "run this as the user that owns it, e.g. the agent's or "
                                   "the server's");
}

/* ---- export ---- */

static void export_usage(FILE *f)
{
    fputs("Usage: sidetrack export --out FILE [--since-start] [--force] [--progress]\n"
          "       sidetrack export --out FILE --run RUN... [--experiment NAME...]\n"
          "\n"
          "Writes the store's data to one self-checking bundle file, to be carried where no\n"
          "network reaches and applied there with 'sidetrack import FILE' (docs/bundles.md).\n"
          "\n"
          "By default the bundle holds every change not in an earlier bundle (the agent's\n"
          "replication journal), artifact content included; once the file is in place the\n"
          "store remembers where it ended, so the next export holds only what came after.\n"
          "Importing a bundle twice, or one whose changes the server also got over the\n"
          "network, changes nothing. Changes that a server has acknowledged are no longer in\n"
          "the journal: the bundle starts after them.\n"
          "\n"
          "With --run or --experiment it holds a snapshot of those runs instead: whatever\n"
          "they hold now, for copying runs between any two stores (an import adds what the\n"
          "target lacks). It only reads the store, and does not move the journal's mark.\n"
          "\n"
          "Options:\n"
          "  -o, --out FILE         the bundle to write (refused when it exists)\n"
          "      --since-start      every change still in the journal, bundled before or not\n"
          "      --run RUN          a run to carry (repeatable; id or unique prefix)\n"
          "      --experiment NAME  every run of an experiment (repeatable)\n"
          "  -f, --force            replace FILE when it exists\n"
          "      --progress         draw the progress bar even when stderr is not a terminal\n"
          "  -d, --data DIR         the store to export from (the agent's)\n",
          f);
}

enum {
    OPT_OUT = CLI_OPT_FIRST,
    OPT_SINCE_START,
    OPT_RUN,
    OPT_EXPERIMENT,
    OPT_FORCE,
    OPT_PROGRESS,
    OPT_CHECK,
};

struct idlist {
    uint8_t (*v)[16];
    size_t n, cap;
};

static int idlist_add(struct idlist *l, const uint8_t id[16])
{
    for (size_t i = 0; i < l->n; i++)
        if (!memcmp(l->v[i], id, 16))
            return 0;
    uint8_t copy[16];
    memcpy(copy, id, 16);
    return cli_push(&l->v, &l->n, &l->cap, sizeof copy, copy);
}

struct exp_runs {
    uint64_t exp;
    struct idlist *l;
    size_t found;
};

static int collect_exp_run(const struct store_run *r, void *arg)
{
    struct exp_runs *e = arg;
    if (r->experiment_id != e->exp)
        return 0;
    e->found++;
    return idlist_add(e->l, r->id);
}

/* The runs named by --run and --experiment, in the order given. */
static int resolve_runs(struct cli *c, const struct cli_strv *runs, const struct cli_strv *exps,
                        struct idlist *out)
{
    struct store_txn *t;
    if (cli_begin(c, &t) != CLI_OK)
        return CLI_FAIL;
    int rc = CLI_OK;
    for (size_t i = 0; i < runs->n && rc == CLI_OK; i++) {
        uint8_t id[16];
        int r = store_run_resolve(t, runs->v[i], id);
        if (r == -ENOENT)
            cli_error("no run %s (see 'sidetrack runs list')", runs->v[i]), rc = CLI_FAIL;
        else if (r == -ENOTUNIQ)
            cli_error("run id prefix '%s' is ambiguous: give more digits", runs->v[i]),
                rc = CLI_FAIL;
        else if (r == -EINVAL)
            cli_error("'%s' is not a run id: give its 32 hex digits, or a unique prefix of at "
                      "least 4", runs->v[i]),
                rc = CLI_FAIL;
        else if (r < 0)
            rc = cli_store_error(r, "cannot look up run %s", runs->v[i]);
        else if (idlist_add(out, id) < 0)
            rc = cli_store_error(-ENOMEM, "cannot list the runs");
    }
    for (size_t i = 0; i < exps->n && rc == CLI_OK; i++) {
        struct store_experiment e;
        int r = store_experiment_by_name(t, exps->v[i], &e);
        if (r == -ENOENT) {
            cli_error("no experiment '%s' in %s", exps->v[i], c->data_dir);
            rc = CLI_FAIL;
            break;
        }
        struct exp_runs er = {.exp = e.id, .l = out};
        if (r == 0)
            r = store_run_foreach(t, collect_exp_run, &er);
        if (r < 0)
            rc = cli_store_error(r, "cannot read the runs of experiment '%s'", exps->v[i]);
        else if (er.found == 0)
            cli_error("experiment '%s' has no runs", exps->v[i]), rc = CLI_FAIL;
    }
    store_abort(t);
    return rc;
}

static void report_export(const struct bundle_export_result *res, const char *path, int kind)
{
    const struct bundle_info *in = &res->info;
    char runs[32], points[32], blobs[32], bb[32], size[32], first[32], last[32];
    format_count(in->runs, runs, sizeof runs);
    format_count(in->points, points, sizeof points);
    format_count(in->blobs, blobs, sizeof blobs);
    fmt_bytes(in->blob_bytes, bb, sizeof bb);
    fmt_bytes(in->bytes, size, sizeof size);
    printf("exported %s %s, %s %s, %s %s (%s) to %s (%s", runs, plural(in->runs, "run", "runs"),
           points, plural(in->points, "point", "points"), blobs,
           plural(in->blobs, "artifact", "artifacts"), bb, path, size);
    if (kind == BUNDLE_JOURNAL)
        printf("; changes %s to %s", format_count(in->first, first, sizeof first),
               format_count(in->last, last, sizeof last));
    printf(")\n");
    if (in->missing_blobs)
        fprintf(stderr, "sidetrack: warning: %llu artifact(s) have no content in this store; "
                        "the bundle carries their references only\n",
                (unsigned long long)in->missing_blobs);
}

int cmd_export(struct cli *c, int argc, char **argv)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"out", 'o', true, OPT_OUT},
        {"since-start", 0, false, OPT_SINCE_START},
        {"run", 0, true, OPT_RUN},
        {"experiment", 0, true, OPT_EXPERIMENT},
        {"force", 'f', false, OPT_FORCE},
        {"progress", 0, false, OPT_PROGRESS},
        {0},
    };
    static const struct cli_syntax syntax = {"export", opts, export_usage, .max_args = 0};
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    const char *v, *out = NULL;
    bool since_start = false, force = false, progress = false;
    struct cli_strv runs = {0}, exps = {0};
    int rc = CLI_OK;
    bool stop = false;
    for (int o; !stop && (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case OPT_OUT: out = v; break;
        case OPT_SINCE_START: since_start = true; break;
        case OPT_RUN:
        case OPT_EXPERIMENT:
            if (cli_strv_add(o == OPT_RUN ? &runs : &exps, v) < 0)
                rc = cli_store_error(-ENOMEM, "cannot take the options"), stop = true;
            break;
        case OPT_FORCE: force = true; break;
        case OPT_PROGRESS: progress = true; break;
        default: rc = a.exit, stop = true; break;
        }
    }
    if (stop) {
        cli_strv_free(&runs);
        cli_strv_free(&exps);
        return rc;
    }
    bool snapshot = runs.n || exps.n;
    if (rc == CLI_OK && (!out || !*out))
        rc = cli_usage_error("export", "--out FILE is required");
    if (rc == CLI_OK && snapshot && since_start)
        rc = cli_usage_error("export", "--since-start is for the journal, not with --run or "
                                       "--experiment");
    struct idlist ids = {0};
    /* A snapshot only reads (cli_begin opens the store read-only): it works on a store of
     * another user, a server's included. The journal's mark is a write. */
    if (rc == CLI_OK && !snapshot)
        rc = open_rw(c, true);
    if (rc == CLI_OK && snapshot)
        rc = resolve_runs(c, &runs, &exps, &ids);
    if (rc == CLI_OK) {
        struct bar bar;
        bar_init(&bar, progress);
        char tool[64];
        snprintf(tool, sizeof tool, "sidetrack %s", SIDETRACK_VERSION);
        struct bundle_export_options o = {
            .kind = snapshot ? BUNDLE_RUNS : BUNDLE_JOURNAL,
            .since_start = since_start,
            .runs = (const uint8_t(*)[16])ids.v,
            .nruns = ids.n,
            .force = force,
            .tool = tool,
            .progress = bar_draw,
            .progress_arg = &bar,
        };
        struct bundle_export_result res;
        char why[512];
        int r = bundle_export(c->store, out, &o, &res, why, sizeof why);
        bar_end(&bar);
        if (r == 0 && res.trimmed && !res.empty)
            fprintf(stderr, "sidetrack: note: changes %llu to %llu were acknowledged by a server "
                            "and are no longer in the journal; the bundle starts at %llu (the "
                            "server has the rest)\n",
                    (unsigned long long)res.export_next,
                    (unsigned long long)res.journal_first - 1,
                    (unsigned long long)res.journal_first);
        if (r == 0 && res.empty) {
            if (res.journal_next <= 1)
                printf("nothing to export: this store's journal is empty (a server's store "
                       "keeps none: export runs with --run or --experiment)\n");
            else if (res.trimmed)
                printf("nothing to export: a server has acknowledged every change (up to "
                       "change %llu)\n", (unsigned long long)res.journal_next - 1);
            else
                printf("nothing new to export since the last bundle (up to change %llu)\n",
                       (unsigned long long)res.export_next - 1);
        } else if (r == 0) {
            report_export(&res, out, o.kind);
        } else if (r == -EINTR && cli_stop_signal) {
            cli_error("interrupted: no bundle written, nothing marked as exported");
            rc = CLI_FAIL;
        } else if (r == -EEXIST) {
            cli_error("%s", why);
            rc = CLI_FAIL;
        } else if (r == -ENOSPC) {
            cli_error("%s: free some space or write the bundle elsewhere; nothing was marked "
                      "as exported", why[0] ? why : out);
            rc = CLI_FAIL;
        } else if (why[0]) {
            cli_error("%s", why); /* it names the error */
            rc = CLI_FAIL;
        } else {
            rc = cli_store_error(r, "cannot export %s to %s", c->data_dir, out);
        }
    }
    free(ids.v);
    cli_strv_free(&runs);
    cli_strv_free(&exps);
    return rc;
}

/* ---- import ---- */

static void import_usage(FILE *f)
{
    fputs("Usage: sidetrack import FILE [--data DIR] [--progress]\n"
          "       sidetrack import FILE --check\n"
          "\n"
          "Applies a bundle made by 'sidetrack export' to a store: the server's, or another\n"
          "node's (docs/bundles.md). The whole file is checked first (length, every frame's\n"
          "checksum, its SHA-256 digest): a truncated or damaged bundle is refused and\n"
          "nothing is applied. Each change is applied once: importing the same bundle again,\n"
          "or one whose changes already came over the network, changes nothing.\n"
          "It is safe while sidetrack-server or sidetrackd runs on the same store.\n"
          "\n"
          "Options:\n"
          "      --check      only check the bundle and say what it holds; no store is opened\n"
          "      --progress   draw the progress bar even when stderr is not a terminal\n"
          "  -d, --data DIR   the store to import into (made when it does not exist)\n",
          f);
}

static void describe(const struct bundle_info *in, const char *path)
{
    char src[33], when[64], ops[32], runs[32], points[32], blobs[32], bb[32], size[32];
    store_run_id_hex(in->source, src);
    format_time_ms(when, sizeof when, in->created_ms, false);
    printf("%s: a %s bundle from store %s on %s, made %s by %s\n", path,
           bundle_kind_name(in->kind), src, in->host[0] ? in->host : "?", when,
           in->tool[0] ? in->tool : "?");
    printf("  %s changes", format_count(in->ops, ops, sizeof ops));
    if (in->kind == BUNDLE_JOURNAL && in->ops)
        printf(" (%llu to %llu)", (unsigned long long)in->first, (unsigned long long)in->last);
    printf(", %s %s, %s %s, %s %s (%s), %s in all\n", format_count(in->runs, runs, sizeof runs),
           plural(in->runs, "run", "runs"), format_count(in->points, points, sizeof points),
           plural(in->points, "point", "points"), format_count(in->blobs, blobs, sizeof blobs),
           plural(in->blobs, "artifact", "artifacts"), fmt_bytes(in->blob_bytes, bb, sizeof bb),
           fmt_bytes(in->bytes, size, sizeof size));
}

static void report_import(const struct bundle_import_result *res, const struct bundle_info *in,
                          const char *path)
{
    char ap[32], sk[32], pts[32], bs[32], bb[32], bh[32];
    printf("imported %s: %s changes applied, %s already here; %s points, %s %s stored (%s), "
           "%s already here\n",
           path, format_count(res->applied, ap, sizeof ap),
           format_count(res->skipped, sk, sizeof sk), format_count(res->points, pts, sizeof pts),
           format_count(res->blobs_stored, bs, sizeof bs),
           plural(res->blobs_stored, "artifact", "artifacts"),
           fmt_bytes(res->blob_bytes, bb, sizeof bb), format_count(res->blobs_had, bh, sizeof bh));
    if (res->blobs_bad)
        fprintf(stderr, "sidetrack: warning: %llu artifact content(s) in the bundle did not "
                        "match their digest and were not stored (their references were)\n",
                (unsigned long long)res->blobs_bad);
    (void)in;
}

int cmd_import(struct cli *c, int argc, char **argv)
{
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS,
        {"progress", 0, false, OPT_PROGRESS},
        {"check", 0, false, OPT_CHECK},
        {0},
    };
    static const struct cli_syntax syntax = {"import", opts, import_usage, .max_args = 1};
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    const char *v, *path = NULL;
    bool progress = false, check = false;
    for (int o; (o = cli_args_next(&a, &v)) != CLI_ARG_END;) {
        switch (o) {
        case CLI_ARG_POSITIONAL: path = v; break;
        case OPT_PROGRESS: progress = true; break;
        case OPT_CHECK: check = true; break;
        default: return a.exit;
        }
    }
    if (!path)
        return cli_usage_error("import", "which bundle? give its FILE");
    char why[512];
    struct bundle_reader *br;
    int r = bundle_open(&br, path, why, sizeof why);
    if (r < 0) {
        cli_error("%s: %s", path, why[0] ? why : store_strerror(r));
        return CLI_FAIL;
    }
    struct bar bar;
    bar_init(&bar, progress);
    r = bundle_verify(br, bar_draw, &bar, why, sizeof why);
    bar_end(&bar);
    int rc = CLI_OK;
    if (r < 0) {
        cli_error("%s: %s; nothing was imported", path, why[0] ? why : store_strerror(r));
        rc = CLI_FAIL;
    } else if (check) {
        describe(bundle_reader_info(br), path);
        printf("  the bundle is whole and sound\n");
    } else if ((rc = open_rw(c, false)) == CLI_OK) {
        const struct bundle_info *in = bundle_reader_info(br);
        uint8_t self[16];
        store_id(c->store, self);
        if (!memcmp(self, in->source, 16)) {
            cli_error("%s was exported from the store at %s itself: nothing to import",
                      path, c->data_dir);
            rc = CLI_FAIL;
        } else {
            struct bundle_import_result res;
            r = bundle_apply(br, c->store, bar_draw, &bar, &res, why, sizeof why);
            bar_end(&bar);
            if (r == 0) {
                report_import(&res, in, path);
            } else {
                cli_error("%s: %s", path, why[0] ? why : store_strerror(r));
                if (res.batches)
                    cli_error("the %llu batch(es) before that are applied; importing again "
                              "goes on from there",
                              (unsigned long long)res.batches);
                rc = CLI_FAIL;
            }
        }
    }
    bundle_close(br);
    return rc;
}
