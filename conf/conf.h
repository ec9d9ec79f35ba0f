/* conf.h — the daemons' configuration files and environment overrides, one engine for both
 * (sidetrackd: agent/config.c, sidetrack-server: server/config.c). Each daemon gives a table
 * of its keys; this module reads them.
 *
 * The file: one `key = value` per line, `#` comments and blank lines ignored, the keys are
 * the long options' names; a key given twice keeps the last value. Then each key's
 * environment variable, when set and not empty. Precedence, with the command line that each
 * daemon applies last through conf_set(): defaults < file < environment < command line.
 * Every error is one message that names where the value came from ("FILE:LINE",
 * "$VARIABLE" or "--option") and what is expected, so a user can fix it without reading the
 * code. Library code: nothing is printed.
 */
#ifndef SIDETRACK_CONF_H
#define SIDETRACK_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The `set` masks are 32 bits wide: a table has at most this many keys. */
#define CONF_MAX_KEYS 32

enum conf_kind {
    /* Text, not empty: kept in str[]. */
    CONF_PATH,
    CONF_URL,
    CONF_ADDR,     /* HOST:PORT */
    CONF_ENDPOINT, /* a ZeroMQ endpoint, or off */
    /* Whole numbers from `min` to `max`, in num[]: milliseconds, seconds, a count. */
    CONF_MS,
    CONF_SEC,
    CONF_COUNT,
    /* true/false, yes/no, on/off, 1/0: num[] is 1 or 0. */
    CONF_BOOL,
    /* One of `choices` ("open|token"): num[] is its index, str[] the word. */
    CONF_CHOICE,
};

struct conf_key {
    const char *name; /* the long option's name: "fsync-interval" */
    const char *env;  /* its variable: "SIDETRACK_FSYNC_INTERVAL" */
    enum conf_kind kind;
    uint32_t max, def; /* numbers: the largest value, and the default (num[] before any file) */
    uint32_t min;      /* numbers: the smallest value (0 when not given) */
    const char *choices; /* CONF_CHOICE: the words, '|' between them; the default is index def */
};

/* One table line: a key with no minimum and no choices. Designated, so that every compiler
 * knows the fields left out are meant to be zero. */
#define CONF_KEY(name_, env_, kind_, max_, def_) \
    {.name = (name_), .env = (env_), .kind = (kind_), .max = (max_), .def = (def_)}

struct conf_table {
    const struct conf_key *keys;
    int nkeys; /* at most CONF_MAX_KEYS */
    const char *default_path; /* read when it exists and no path is given */
};

/* Where a daemon's values live: arrays of the table's nkeys entries, and the mask of keys
 * set (bit 1u << key) by the file, the environment or conf_set(). str[k] is an owned copy,
 * NULL when not set. */
struct conf_values {
    char **str;
    uint32_t *num;
    uint32_t *set;
};

/* The key's name, or NULL when `key` is out of the table. */
const char *conf_key_name(const struct conf_table *t, int key);

/* The key named `name`, or -1. */
int conf_key_find(const struct conf_table *t, const char *name);

/* The file conf_load reads for `path`: `path` itself when given, else the table's default
 * path when it exists, else NULL. */
const char *conf_path(const struct conf_table *t, const char *path);

/* Fills `v` with the defaults, then the file (see conf_path; a `path` given must exist), then
 * the environment. 0, or -1 with the message in `err` ("FILE:LINE: ..."); `v` is then left
 * empty. Free with conf_free. */
int conf_load(const struct conf_table *t, struct conf_values v, const char *path, char *err,
              size_t errlen);

/* Sets key `k` from the text `value`, as the file would; `where` ("FILE:3", "$VAR", or an
 * option "--api-auth", which then stands for the key's name too) begins the message in `err`
 * when the value is not one the key takes. 0 or -1. */
int conf_set(const struct conf_table *t, struct conf_values v, int k, const char *value,
             const char *where, char *err, size_t errlen);

/* Moves the keys set in `from` over those of `to` (the command line over the file): what
 * `from` set is then owned by `to`, and `from` keeps none of it. */
void conf_overlay(const struct conf_table *t, struct conf_values to, struct conf_values from);

/* Frees the strings and clears the values. */
void conf_free(const struct conf_table *t, struct conf_values v);

#endif
