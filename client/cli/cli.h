/* cli.h — the pieces shared by the `sidetrack` command-line tool's commands.
 *
 * The CLI is a read-only window on a node's store: it opens the LMDB environment with
 * STORE_RDONLY, so it runs next to the agent (another process) that writes there. Each command
 * gathers what it needs in one short read transaction, ends it, then prints; only a metric
 * history is printed from inside the transaction, chunk by chunk, so that it never has to be
 * held in memory whole.
 *
 * Error discipline: the store library returns negative errnos and never prints; a command is
 * the boundary that reports an error, once, with the context a user needs (cli_store_error).
 * Exit status: 0 success, 1 a failure (no store, no such run, I/O), 2 a usage error.
 *
 * SIGPIPE, SIGINT and SIGTERM are caught (see main.c), so that a `| head` or a Ctrl-C never
 * leaves a read transaction open in the store's reader table: output routines see the error,
 * the command ends its transaction, and main re-raises the signal after closing the store.
 */
#ifndef SIDETRACK_CLI_H
#define SIDETRACK_CLI_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum cli_exit {
    CLI_OK = 0,
    CLI_FAIL = 1,  /* the command could not do its job: the message said why */
    CLI_USAGE = 2, /* bad command line */
};

struct json;
struct cli_experiments;

struct cli {
    const char *data_dir; /* --data; NULL: cli_begin() asks store_default_dir() */
    struct store *store;  /* opened by the first cli_begin(), closed by main */
    char default_dir[4096];
};

/* The signal that asked us to stop (SIGINT, SIGTERM) or SIGPIPE once stdout is a broken pipe;
 * 0 while none. Long loops check it and stop; main re-raises it at the end. */
extern volatile sig_atomic_t cli_stop_signal;

/* ---- commands (each parses its own options; argv[0] is the command's name) ---------- */

int cmd_runs(struct cli *c, int argc, char **argv);
int cmd_runs_list(struct cli *c, int argc, char **argv);
int cmd_runs_show(struct cli *c, int argc, char **argv);
int cmd_runs_search(struct cli *c, int argc, char **argv);
int cmd_metrics(struct cli *c, int argc, char **argv);
int cmd_artifacts(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_wait(struct cli *c, int argc, char **argv); /* cmd_status.c */
int cmd_sync(struct cli *c, int argc, char **argv);
int cmd_keys(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv); /* cmd_bundle.c */
int cmd_import(struct cli *c, int argc, char **argv);
int cmd_push(struct cli *c, int argc, char **argv); /* cmd_push.c */
int cmd_ui(struct cli *c, int argc, char **argv);   /* cmd_ui.c */
int cmd_models(struct cli *c, int argc, char **argv); /* cmd_models*.c */

/* The agent's status document (agent_file.c): asked of the agent on DATA/agent.sock, else
 * DATA/agent.status (free() it), or NULL when there is neither; a key's value as a number or a
 * string; whether the pid that wrote it lives and the file is fresh (written in the last 5 s);
 * whether the document shows a running agent (an answer on the socket, or a fresh file). */
char *cli_agent_doc_read(const char *data_dir);
bool cli_agent_doc_running(const char *doc);
const char *cli_af_find(const char *doc, const char *key);
uint64_t cli_af_u64(const char *doc, const char *key);
void cli_af_str(const char *doc, const char *key, char *out, size_t len);
bool cli_agent_alive(uint64_t pid, uint64_t updated_ms);

/* Shared by `runs list` and `runs show` (cmd_runs.c): the run's fields as MLflow's RunInfo
 * names them (experiment_id a string, times in ms, end_time null while running). */
void cli_json_run_info(struct json *j, const struct store_run *r, const char *experiment);
/* Wall time of a run: end - start, or now - start while it runs; "-" when unknown. */
void cli_run_duration(const struct store_run *r, int64_t now_ms, char *buf, size_t len);
/* `runs list`'s output, shared with `runs search`: the table (CLI_OK, or CLI_FAIL said) and
 * the JSON array of cli_json_run_info objects. */
int cli_print_runs_table(const struct store_run *runs, size_t n,
                         const struct cli_experiments *e);
void cli_print_runs_json(const struct store_run *runs, size_t n, const struct cli_experiments *e);
/* "no experiment 'NAME'; experiments: a, b" on stderr; returns CLI_FAIL. */
int cli_report_no_experiment(struct store_txn *t, const char *name);

/* ---- options (args.c) ------------------------------------------------------------------
 * A small getopt: long options (--name, --name=value, --name value), single-letter options
 * (-x, -x value), `--` ends options; positional arguments may come between options. No
 * abbreviations of long names, so that adding an option never breaks a script. */

struct cli_option {
    const char *name; /* long name, without the dashes */
    char letter;      /* 0 for none */
    bool has_value;
    int id;           /* > 0, returned by cli_args_next() */
};

/* Options every command accepts; cli_args_next() handles them itself, so that they mean the
 * same everywhere. Commands number theirs from CLI_OPT_FIRST. */
enum { CLI_OPT_HELP = 1, CLI_OPT_DATA, CLI_OPT_FIRST };
#define CLI_COMMON_OPTIONS \
    {"help", 'h', false, CLI_OPT_HELP}, {"data", 'd', true, CLI_OPT_DATA}, \
    {"store", 0, true, CLI_OPT_DATA}

enum {
    CLI_ARG_POSITIONAL = 0, /* *value is a positional argument */
    CLI_ARG_END = -1,
    CLI_ARG_EXIT = -2, /* --help was shown, or a usage error reported: return .exit */
};

/* What a command's command line may hold. */
struct cli_syntax {
    const char *cmd;               /* "runs list": for messages */
    const struct cli_option *opts; /* CLI_COMMON_OPTIONS, the command's; a zeroed entry */
    void (*usage)(FILE *f);        /* what --help prints */
    int max_args;                  /* positional arguments; one more is a usage error */
};

struct cli_args {
    const struct cli_syntax *syntax;
    struct cli *c; /* --data sets c->data_dir */
    int argc;
    char **argv;
    int next;
    int nargs;            /* positional arguments so far */
    bool only_positional; /* after `--` */
    int exit;             /* after CLI_ARG_EXIT: CLI_OK (--help) or CLI_USAGE */
};

void cli_args_init(struct cli_args *a, struct cli *c, const struct cli_syntax *syntax,
                   int argc, char **argv);
/* Returns a command option's id (value in *value when it takes one), CLI_ARG_POSITIONAL,
 * CLI_ARG_END, or CLI_ARG_EXIT after printing the usage (--help) or what is wrong. --data
 * is taken in passing. */
int cli_args_next(struct cli_args *a, const char **value);
/* The command line of a command whose only own option is --json: syntax->opts is
 * cli_json_options, and syntax->max_args 0 or 1. Sets *json when --json is given and *arg to
 * the positional argument (arg may be NULL when max_args is 0). Returns CLI_ARG_END when the
 * command goes on, else the exit status (after --help, or a usage error). */
extern const struct cli_option cli_json_options[];
int cli_args_json(struct cli *c, const struct cli_syntax *syntax, int argc, char **argv,
                  bool *json, const char **arg);
/* Prints "sidetrack CMD: MESSAGE (see 'sidetrack CMD --help')" and returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* ---- the store (session.c) --------------------------------------------------------------- */

/* "sidetrack: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* "sidetrack: MESSAGE: <store_strerror(err)>", unless err says we were stopped by a signal or
 * a broken pipe (nothing to say then). Returns CLI_FAIL. */
int cli_store_error(int err, const char *fmt, ...) CLI_PRINTF(2, 3);
/* Starts a read transaction, opening c->data_dir read-only first if it is not yet open (a
 * command reads right after its options are checked). Returns CLI_OK, or CLI_FAIL after
 * saying why. */
/* Settles c->data_dir (--data, else the default); CLI_FAIL, said, when there is none. */
int cli_data_dir(struct cli *c);
int cli_begin(struct cli *c, struct store_txn **t);
/* Opens c->store for a command that writes there (flags: store_open's). CLI_OK, or CLI_FAIL
 * after saying why; who may write it is said with hint ("run it as the agent's user"). */
int cli_open_store_rw(struct cli *c, unsigned flags, const char *hint);
/* cli_begin(), then resolves RUN (a full id or a unique prefix) into id. Returns CLI_OK with
 * *t open, or CLI_FAIL after ending it and saying why (no such run, ambiguous prefix with the
 * runs it matches, not an id). */
int cli_begin_run(struct cli *c, const char *run, struct store_txn **t, uint8_t id[16]);

/* Experiment names by id, gathered once per command. */
struct cli_experiments {
    struct store_experiment *v;
    size_t n, cap;
};
int cli_experiments_load(struct store_txn *t, struct cli_experiments *e);
/* The name, or NULL for an id that no experiment has (a placeholder run's). */
const char *cli_experiment_name(const struct cli_experiments *e, uint64_t id);
void cli_experiments_free(struct cli_experiments *e);

/* Appends the size-byte *item to the array *arrp (a T **) that holds *n of *cap, doubling it
 * when full: the one growth rule for every list the CLI gathers. 0, or -ENOMEM (nothing
 * changed). */
int cli_push(void *arrp, size_t *n, size_t *cap, size_t size, const void *item);

/* A run's artifacts, for `artifacts` and `runs show`: store_artifacts_foreach(t, id,
 * cli_collect_artifact, &list) gathers them; free(list.v) afterwards. */
struct cli_artifacts {
    struct store_artifact *v;
    size_t n, cap;
};
int cli_collect_artifact(const struct store_artifact *a, void *arg);

/* A growing list of strings, for "it has: a, b, c" messages and gathered key/value pairs. */
struct cli_strv {
    char **v;
    size_t n, cap;
};
int cli_strv_add(struct cli_strv *l, const char *s);
void cli_strv_free(struct cli_strv *l);
/* Writes up to `max` entries as "a, b, c" (then "and N more") into buf. */
void cli_strv_join(const struct cli_strv *l, size_t max, char *buf, size_t len);

/* Shared by `runs show` and the `models` commands (cmd_runs_show.c). A run's key/value pairs
 * (params, tags, inputs), gathered as key, value, key, value... by
 * store_params_foreach(t, id, cli_collect_pair, &strv); printed as a section "TITLE" of
 * "  key = value" lines ("  (none)" when empty), or written as a JSON object under name. */
int cli_collect_pair(const char *key, const char *value, void *arg);
void cli_print_pairs(const char *title, const struct cli_strv *kv);
void cli_json_pairs(struct json *j, const char *name, const struct cli_strv *kv);
/* The summary of each metric of a run, in key order: store_metric_keys_foreach(t, id,
 * cli_collect_metric, &list) gathers them; cli_metrics_free() frees the list. */
struct cli_metric {
    char *key;
    struct store_metric_summary s;
};
struct cli_metrics {
    struct cli_metric *v;
    size_t n, cap;
};
int cli_collect_metric(const char *key, const struct store_metric_summary *s, void *arg);
void cli_metrics_free(struct cli_metrics *l);

/* Flushes stdout. Returns CLI_OK, or CLI_FAIL after saying why (a broken pipe is silent and
 * sets cli_stop_signal to SIGPIPE). */
int cli_flush_stdout(void);
/* Writes a whole buffer to fd, retrying short writes. 0 or a negative errno. */
int cli_write_all(int fd, const void *buf, size_t len);

/* ---- output (output.c) -------------------------------------------------------------------- */

/* A JSON writer: indents nested containers two spaces a level, and puts a container opened
 * with `compact` on one line. Strings are escaped (quote, backslash, control characters);
 * valid UTF-8 passes through, invalid bytes become U+FFFD, so the output is always valid. */
#define JSON_MAX_DEPTH 16
struct json {
    FILE *f;
    int depth;
    bool after_key;
    bool compact[JSON_MAX_DEPTH];
    size_t count[JSON_MAX_DEPTH];
};
void json_init(struct json *j, FILE *f);
void json_begin_object(struct json *j, bool compact);
void json_end_object(struct json *j);
void json_begin_array(struct json *j, bool compact);
void json_end_array(struct json *j);
void json_key(struct json *j, const char *key);
void json_string(struct json *j, const char *s);
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
/* "%.17g" (round-trips exactly); NaN, Infinity, -Infinity as MLflow's JSON writes them. */
void json_double(struct json *j, double v);
void json_null(struct json *j);
void json_bool(struct json *j, bool v);
/* Ends the document with a newline. */
void json_finish(struct json *j);
/* key + value shorthands */
void json_kv_string(struct json *j, const char *key, const char *s);
void json_kv_int(struct json *j, const char *key, int64_t v);
void json_kv_uint(struct json *j, const char *key, uint64_t v);
void json_kv_double(struct json *j, const char *key, double v);
/* key: s, or key: null when s is NULL */
void json_kv_string_or_null(struct json *j, const char *key, const char *s);
/* A string written as a JSON string literal, quotes included. */
void json_write_string(FILE *f, const char *s);

/* "%.17g", or nan / inf / -inf (CSV). buf holds 32 bytes. */
void format_double_csv(char *buf, size_t len, double v);
/* The shortest of %.15g, %.16g, %.17g that reads back as the same double: for people. */
void format_double_short(char *buf, size_t len, double v);
/* Local time "2026-11-26 07:30:12" (with_ms: ".345" appended); "-" for 0 (unknown). */
void format_time_ms(char *buf, size_t len, int64_t ms, bool with_ms);
/* "850ms", "12.3s", "4m05s", "2h07m", "3d04h"; "-" when negative. */
void format_duration(char *buf, size_t len, int64_t ms);
/* 1234567 -> "1,234,567"; returns buf. */
const char *format_count(uint64_t v, char *buf, size_t len);
/* Lowercase hex of n bytes; out holds 2n + 1. */
void format_hex(const uint8_t *bytes, size_t n, char *out);
/* Milliseconds since the epoch, now. */
int64_t cli_now_ms(void);
/* Writes s for a terminal: control characters as \n, \t, \xHH, so that a run name cannot
 * move the cursor or forge lines. */
void print_text(FILE *f, const char *s);
/* The same, as a malloc'ed string (NULL when out of memory). */
char *text_escape(const char *s);

/* ---- tables (table.c) ---------------------------------------------------------------------
 * Cells are added row by row (the first row is the header); columns are as wide as their
 * widest cell, separated by two spaces. Cells are escaped like print_text(). */
struct table {
    size_t ncols;
    uint32_t right_aligned; /* bit i: column i is right-aligned (numbers) */
    char **cells;
    size_t ncells, cap;
    int err;
};
void table_init(struct table *t, size_t ncols, uint32_t right_aligned);
void table_cell(struct table *t, const char *text);
void table_cellf(struct table *t, const char *fmt, ...) CLI_PRINTF(2, 3);
/* Prints every row, each line starting with indent. 0, or -ENOMEM if a cell could not be
 * stored. */
int table_print(const struct table *t, FILE *f, const char *indent);
void table_free(struct table *t);

#endif
