/* session.c — the CLI's side of the store: opening it read-only, read transactions, run ids,
 * experiment names, the error messages for all of that, and the growing lists that commands
 * gather what they read into.
 *
 * Everything here reports its own failures (the CLI is the boundary where store errors become
 * words) and returns CLI_OK or CLI_FAIL, so that a command's code reads as a list of steps.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sidetrack: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_store_error(int err, const char *fmt, ...)
{
    if (cli_stop_signal && (err == -EPIPE || err == -EINTR))
        return CLI_FAIL; /* stopped on purpose: main re-raises the signal */
    va_list ap;
    va_start(ap, fmt);
    fputs("sidetrack: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": %s\n", store_strerror(err));
    va_end(ap);
    return CLI_FAIL;
}

int cli_data_dir(struct cli *c)
{
    if (!c->data_dir)
        c->data_dir = store_default_dir(c->default_dir, sizeof c->default_dir);
    if (!c->data_dir) {
        cli_error("cannot tell where the store is: pass --data DIR or set $SIDETRACK_DATA");
        return CLI_FAIL;
    }
    if (!*c->data_dir) {
        cli_error("--data needs a directory, not an empty string");
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int open_store(struct cli *c)
{
    if (cli_data_dir(c) != CLI_OK)
        return CLI_FAIL;
    int r = store_open(&c->store, c->data_dir, STORE_RDONLY, 0);
    if (r == 0)
        return CLI_OK;
    c->store = NULL;
    if (r == -ENOENT) {
        cli_error("no store at %s: is sidetrackd running with --data %s?", c->data_dir,
                  c->data_dir);
    } else if (r == -EACCES || r == -EPERM) {
        cli_error("cannot open the store at %s: %s (readers need write access to its "
                  "lock.mdb: run as the agent's user or a member of its group)",
                  c->data_dir, store_strerror(r));
    } else {
        cli_store_error(r, "cannot open the store at %s", c->data_dir);
    }
    return CLI_FAIL;
}

int cli_open_store_rw(struct cli *c, unsigned flags, const char *hint)
{
    if (cli_data_dir(c) != CLI_OK)
        return CLI_FAIL;
    int r = store_open(&c->store, c->data_dir, flags, 0);
    if (r == 0)
        return CLI_OK;
    c->store = NULL;
    if (r == -ENOENT)
        cli_error("no store at %s: is sidetrackd running with --data %s?", c->data_dir,
                  c->data_dir);
    else if (r == -EACCES || r == -EPERM || r == -EROFS)
        cli_error("cannot open the store at %s for writing: %s (%s)", c->data_dir,
                  store_strerror(r), hint);
    else
        cli_store_error(r, "cannot open the store at %s", c->data_dir);
    return CLI_FAIL;
}

int cli_begin(struct cli *c, struct store_txn **t)
{
    if (!c->store && open_store(c) != CLI_OK)
        return CLI_FAIL;
    int r = store_begin(c->store, false, t);
    if (r < 0)
        return cli_store_error(r, "cannot read the store at %s", c->data_dir);
    return CLI_OK;
}

/* ---- run ids ---- */

struct prefix_matches {
    const char *prefix;
    size_t len;
    struct cli_strv ids;
};

static int collect_prefix_match(const struct store_run *r, void *arg)
{
    struct prefix_matches *m = arg;
    char hex[33];
    store_run_id_hex(r->id, hex);
    if (strncasecmp(hex, m->prefix, m->len) != 0)
        return 0;
    return cli_strv_add(&m->ids, hex);
}

static void report_ambiguous(struct store_txn *t, const char *arg)
{
    struct prefix_matches m = {.prefix = arg, .len = strlen(arg)};
    char list[512] = "";
    if (store_run_foreach(t, collect_prefix_match, &m) == 0)
        cli_strv_join(&m.ids, 5, list, sizeof list);
    if (*list)
        cli_error("run id prefix '%s' is ambiguous: it matches %s; give more digits", arg, list);
    else
        cli_error("run id prefix '%s' is ambiguous: give more digits", arg);
    cli_strv_free(&m.ids);
}

static int resolve_run(struct store_txn *t, const char *arg, uint8_t id[16])
{
    int r = store_run_resolve(t, arg, id);
    switch (r) {
    case 0:
        return CLI_OK;
    case -ENOENT:
        cli_error("no run %s (see 'sidetrack runs list')", arg);
        return CLI_FAIL;
    case -ENOTUNIQ:
        report_ambiguous(t, arg);
        return CLI_FAIL;
    case -EINVAL:
        cli_error("'%s' is not a run id: give its 32 hex digits, or a unique prefix of at "
                  "least 4",
                  arg);
        return CLI_FAIL;
    default:
        return cli_store_error(r, "cannot look up run %s", arg);
    }
}

int cli_begin_run(struct cli *c, const char *run, struct store_txn **t, uint8_t id[16])
{
    if (cli_begin(c, t) != CLI_OK)
        return CLI_FAIL;
    if (resolve_run(*t, run, id) == CLI_OK)
        return CLI_OK;
    store_abort(*t);
    return CLI_FAIL;
}

/* ---- experiments ---- */

static int collect_experiment(const struct store_experiment *e, void *arg)
{
    struct cli_experiments *l = arg;
    return cli_push(&l->v, &l->n, &l->cap, sizeof *l->v, e);
}

static int by_experiment_id(const void *a, const void *b)
{
    uint64_t x = ((const struct store_experiment *)a)->id;
    uint64_t y = ((const struct store_experiment *)b)->id;
    return x < y ? -1 : x > y;
}

int cli_experiments_load(struct store_txn *t, struct cli_experiments *e)
{
    *e = (struct cli_experiments){0};
    int r = store_experiment_foreach(t, collect_experiment, e);
    if (r < 0) {
        cli_experiments_free(e);
        return cli_store_error(r, "cannot read the experiments");
    }
    if (e->n)
        qsort(e->v, e->n, sizeof *e->v, by_experiment_id);
    return CLI_OK;
}

const char *cli_experiment_name(const struct cli_experiments *e, uint64_t id)
{
    struct store_experiment key = {.id = id};
    if (!e->n)
        return NULL;
    const struct store_experiment *x = bsearch(&key, e->v, e->n, sizeof *e->v, by_experiment_id);
    return x ? x->name : NULL;
}

void cli_experiments_free(struct cli_experiments *e)
{
    free(e->v);
    *e = (struct cli_experiments){0};
}

/* ---- lists ---- */

int cli_push(void *arrp, size_t *n, size_t *cap, size_t size, const void *item)
{
    /* The array pointer is copied in and out with memcpy, not written through a void **, so
     * that any T ** can be passed without a cast (every object pointer has one
     * representation on the systems the agent runs on). */
    char *v;
    memcpy(&v, arrp, sizeof v);
    if (*n == *cap) {
        size_t grown = *cap ? 2 * *cap : 16;
        char *w = realloc(v, grown * size);
        if (!w)
            return -ENOMEM;
        v = w;
        memcpy(arrp, &v, sizeof v);
        *cap = grown;
    }
    memcpy(v + *n * size, item, size);
    (*n)++;
    return 0;
}

int cli_collect_artifact(const struct store_artifact *a, void *arg)
{
    struct cli_artifacts *l = arg;
    return cli_push(&l->v, &l->n, &l->cap, sizeof *l->v, a);
}

int cli_strv_add(struct cli_strv *l, const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    int r = cli_push(&l->v, &l->n, &l->cap, sizeof *l->v, &copy);
    if (r < 0)
        free(copy);
    return r;
}

void cli_strv_free(struct cli_strv *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (struct cli_strv){0};
}

void cli_strv_join(const struct cli_strv *l, size_t max, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l->n && i < max && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", l->v[i]);
    if (l->n > max && used < len)
        snprintf(buf + used, len - used, " and %zu more", l->n - max);
}

/* ---- stdout ---- */

int cli_flush_stdout(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return CLI_OK;
    if (cli_stop_signal) /* SIGPIPE or an interrupt: nothing to say */
        return CLI_FAIL;
    cli_error("cannot write the output: %s", strerror(errno));
    return CLI_FAIL;
}

int cli_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR && !cli_stop_signal)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
