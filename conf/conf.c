/* conf.c — reads a daemon's configuration file and environment over its key table (conf.h).
 * Library code: no printing; every error is one message the daemon reports as it is. */
#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *conf_key_name(const struct conf_table *t, int key)
{
    return key >= 0 && key < t->nkeys ? t->keys[key].name : NULL;
}

int conf_key_find(const struct conf_table *t, const char *name)
{
    for (int k = 0; k < t->nkeys; k++)
        if (!strcmp(t->keys[k].name, name))
            return k;
    return -1;
}

const char *conf_path(const struct conf_table *t, const char *path)
{
    if (path)
        return path;
    return access(t->default_path, F_OK) == 0 ? t->default_path : NULL;
}

void conf_free(const struct conf_table *t, struct conf_values v)
{
    for (int k = 0; k < t->nkeys; k++) {
        free(v.str[k]);
        v.str[k] = NULL;
        v.num[k] = 0;
    }
    *v.set = 0;
}

static void defaults(const struct conf_table *t, struct conf_values v)
{
    for (int k = 0; k < t->nkeys; k++) {
        v.str[k] = NULL;
        v.num[k] = t->keys[k].def;
    }
    *v.set = 0;
}

static int parse_bool(const char *s, uint32_t *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* The index of `s` among the '|'-separated `choices`, or -1. */
static int parse_choice(const char *choices, const char *s)
{
    size_t n = strlen(s);
    int i = 0;
    for (const char *c = choices; *c; i++) {
        size_t len = strcspn(c, "|");
        if (len == n && !strncmp(c, s, n))
            return i;
        c += len + (c[len] == '|');
    }
    return -1;
}

/* "open or token", "a, b or c": the choices as a user reads them. */
static void choices_words(const char *choices, char *out, size_t outlen)
{
    size_t o = 0, ncho = 1;
    for (const char *c = choices; *c; c++)
        ncho += *c == '|';
    size_t i = 0;
    for (const char *c = choices; *c && o < outlen; i++) {
        size_t len = strcspn(c, "|");
        const char *sep = i == 0 ? "" : i + 1 == ncho ? " or " : ", ";
        o += (size_t)snprintf(out + o, outlen - o, "%s%.*s", sep, (int)len, c);
        c += len + (c[len] == '|');
    }
}

static const char *text_kind_words(enum conf_kind kind)
{
    switch (kind) {
    case CONF_URL:
        return "a URL";
    case CONF_ADDR:
        return "an address (HOST:PORT)";
    case CONF_ENDPOINT:
        return "an endpoint (tcp://HOST:PORT) or off";
    default:
        return "a path";
    }
}

/* "FILE:3: data" or "$SIDETRACK_DATA: data", but "--data" alone: the option names the key. */
static void where_key(char *out, size_t outlen, const char *where, const char *name)
{
    if (!strncmp(where, "--", 2))
        snprintf(out, outlen, "%s", where);
    else
        snprintf(out, outlen, "%s: %s", where, name);
}

static int set_text(enum conf_kind kind, char **dst, const char *s, const char *wk, char *err,
                    size_t errlen)
{
    if (!*s) {
        snprintf(err, errlen, "%s: expected %s, got nothing", wk, text_kind_words(kind));
        return -1;
    }
    char *dup = strdup(s);
    if (!dup) {
        snprintf(err, errlen, "%s: %s", wk, strerror(ENOMEM));
        return -1;
    }
    free(*dst);
    *dst = dup;
    return 0;
}

static int set_number(const struct conf_key *key, uint32_t *dst, const char *s, const char *wk,
                      char *err, size_t errlen)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (errno || *end || end == s || *s == '-' || *s == '+' || n < key->min || n > key->max) {
        const char *unit = key->kind == CONF_MS ? " of milliseconds"
                           : key->kind == CONF_SEC ? " of seconds" : "";
        snprintf(err, errlen, "%s: expected a whole number%s from %u to %u, got '%s'", wk, unit,
                 key->min, key->max, s);
        return -1;
    }
    *dst = (uint32_t)n;
    return 0;
}

static int set_choice(const struct conf_key *key, uint32_t *dst, const char *s, const char *wk,
                      char *err, size_t errlen)
{
    int i = parse_choice(key->choices, s);
    if (i < 0) {
        char words[256] = "";
        choices_words(key->choices, words, sizeof words);
        snprintf(err, errlen, "%s: expected %s, got '%s'", wk, words, s);
        return -1;
    }
    *dst = (uint32_t)i;
    return 0;
}

int conf_set(const struct conf_table *t, struct conf_values v, int k, const char *value,
             const char *where, char *err, size_t errlen)
{
    const struct conf_key *key = &t->keys[k];
    char wk[4400];
    where_key(wk, sizeof wk, where, key->name);
    int r;
    switch (key->kind) {
    case CONF_PATH:
    case CONF_URL:
    case CONF_ADDR:
    case CONF_ENDPOINT:
        r = set_text(key->kind, &v.str[k], value, wk, err, errlen);
        break;
    case CONF_BOOL:
        if ((r = parse_bool(value, &v.num[k])) < 0)
            snprintf(err, errlen, "%s: expected true or false (or yes/no, on/off, 1/0), got '%s'",
                     wk, value);
        break;
    case CONF_CHOICE:
        r = set_choice(key, &v.num[k], value, wk, err, errlen);
        break;
    default:
        r = set_number(key, &v.num[k], value, wk, err, errlen);
    }
    if (r == 0)
        *v.set |= 1u << k;
    return r;
}

void conf_overlay(const struct conf_table *t, struct conf_values to, struct conf_values from)
{
    for (int k = 0; k < t->nkeys; k++) {
        if (!(*from.set & (1u << k)))
            continue;
        if (from.str[k]) {
            free(to.str[k]);
            to.str[k] = from.str[k];
            from.str[k] = NULL;
        }
        to.num[k] = from.num[k];
        *to.set |= 1u << k;
    }
    *from.set = 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static void unknown_key(const struct conf_table *t, const char *where, const char *name,
                        char *err, size_t errlen)
{
    size_t n = (size_t)snprintf(err, errlen, "%s: unknown key '%s' (known:", where, name);
    for (int i = 0; i < t->nkeys && n < errlen; i++)
        n += (size_t)snprintf(err + n, errlen - n, " %s", t->keys[i].name);
    if (n < errlen)
        snprintf(err + n, errlen - n, ")");
}

static int parse_file(const struct conf_table *t, struct conf_values v, const char *path,
                      FILE *f, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    char where[4200];
    while (rc == 0 && getline(&line, &cap, f) != -1) {
        lineno++;
        snprintf(where, sizeof where, "%s:%u", path, lineno);
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s: expected 'key = value', got '%s'", where, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        int k = conf_key_find(t, name);
        if (k < 0) {
            unknown_key(t, where, name, err, errlen);
            rc = -1;
            break;
        }
        rc = conf_set(t, v, k, value, where, err, errlen);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    return rc;
}

static int read_file(const struct conf_table *t, struct conf_values v, const char *path,
                     char *err, size_t errlen)
{
    const char *p = conf_path(t, path);
    if (!p)
        return 0;
    FILE *f = fopen(p, "re");
    if (!f) {
        snprintf(err, errlen, "cannot read the configuration file %s: %s", p, strerror(errno));
        return -1;
    }
    int r = parse_file(t, v, p, f, err, errlen);
    fclose(f);
    return r;
}

static int read_env(const struct conf_table *t, struct conf_values v, char *err, size_t errlen)
{
    for (int k = 0; k < t->nkeys; k++) {
        const char *s = getenv(t->keys[k].env);
        /* An empty variable is unset: `SIDETRACK_DATA= sidetrackd` keeps the default. */
        if (!s || !*s)
            continue;
        char where[128];
        snprintf(where, sizeof where, "$%s", t->keys[k].env);
        if (conf_set(t, v, k, s, where, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int conf_load(const struct conf_table *t, struct conf_values v, const char *path, char *err,
              size_t errlen)
{
    defaults(t, v);
    if (read_file(t, v, path, err, errlen) < 0 || read_env(t, v, err, errlen) < 0) {
        conf_free(t, v);
        return -1;
    }
    return 0;
}
