/* config.c — parses sidetrackd's configuration file and $SIDETRACK_* overrides (config.h).
 * Library code: no printing; every error is one message the daemon logs as it is. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum kind { K_PATH, K_URL, K_MS, K_SEC, K_COUNT, K_BOOL };

static const struct {
    const char *name, *env;
    enum kind kind;
    uint32_t max, def;
} keys[ACFG_NKEYS] = {
    [ACFG_DATA] = {"data", "SIDETRACK_DATA", K_PATH, 0, 0},
    [ACFG_RING_DIR] = {"ring-dir", "SIDETRACK_RING_DIR", K_PATH, 0, 0},
    [ACFG_FSYNC_INTERVAL] = {"fsync-interval", "SIDETRACK_FSYNC_INTERVAL", K_MS, 3600000, 100},
    [ACFG_SERVER] = {"server", "SIDETRACK_SERVER", K_URL, 0, 0},
    [ACFG_SERVER_KEY] = {"server-key", "SIDETRACK_SERVER_KEY", K_PATH, 0, 0},
    [ACFG_KEY] = {"key", "SIDETRACK_KEY", K_PATH, 0, 0},
    [ACFG_SERVER_TOKEN] = {"server-token", "SIDETRACK_SERVER_TOKEN", K_PATH, 0, 0},
    [ACFG_CA] = {"ca", "SIDETRACK_CA", K_PATH, 0, 0},
    [ACFG_SYNC_INTERVAL] = {"sync-interval", "SIDETRACK_SYNC_INTERVAL", K_MS, 86400000, 1000},
    [ACFG_SYNC_BACKLOG] = {"sync-backlog", "SIDETRACK_SYNC_BACKLOG", K_COUNT, 1u << 30, 10000},
    [ACFG_MLFLOW] = {"mlflow", "SIDETRACK_MLFLOW", K_URL, 0, 0},
    [ACFG_MLFLOW_INTERVAL] = {"mlflow-interval", "SIDETRACK_MLFLOW_INTERVAL", K_SEC, 86400, 60},
    [ACFG_SYSTEM_METRICS_INTERVAL] = {"system-metrics-interval",
                                      "SIDETRACK_SYSTEM_METRICS_INTERVAL", K_SEC, 86400, 10},
    [ACFG_VERBOSE] = {"verbose", "SIDETRACK_VERBOSE", K_BOOL, 1, 0},
};

const char *agent_config_key_name(int key)
{
    return key >= 0 && key < ACFG_NKEYS ? keys[key].name : NULL;
}

const char *agent_config_path(const char *path)
{
    if (path)
        return path;
    return access(AGENT_CONFIG_DEFAULT_PATH, F_OK) == 0 ? AGENT_CONFIG_DEFAULT_PATH : NULL;
}

void agent_config_free(struct agent_config *c)
{
    for (int k = 0; k < ACFG_NKEYS; k++)
        free(c->str[k]);
    memset(c, 0, sizeof *c);
}

static void defaults(struct agent_config *c)
{
    memset(c, 0, sizeof *c);
    for (int k = 0; k < ACFG_NKEYS; k++)
        c->num[k] = keys[k].def;
}

static int parse_bool(const char *v, uint32_t *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(v, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Sets key k from text v; `where` ("FILE:LINE" or "$VAR") prefixes an error. */
static int set_key(struct agent_config *c, int k, const char *v, const char *where, char *err,
                   size_t errlen)
{
    const char *name = keys[k].name;
    switch (keys[k].kind) {
    case K_PATH:
    case K_URL:
        if (!*v) {
            snprintf(err, errlen, "%s: %s: expected %s, got nothing", where, name,
                     keys[k].kind == K_URL ? "a URL" : "a path");
            return -1;
        }
        char *dup = strdup(v);
        if (!dup) {
            snprintf(err, errlen, "%s: %s", where, strerror(ENOMEM));
            return -1;
        }
        free(c->str[k]);
        c->str[k] = dup;
        break;
    case K_BOOL:
        if (parse_bool(v, &c->num[k]) < 0) {
            snprintf(err, errlen, "%s: %s: expected true or false (or yes/no, on/off, 1/0), "
                     "got '%s'", where, name, v);
            return -1;
        }
        break;
    default: {
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || end == v || *v == '-' || *v == '+' || n > keys[k].max) {
            const char *unit = keys[k].kind == K_MS ? " of milliseconds"
                               : keys[k].kind == K_SEC ? " of seconds" : "";
            snprintf(err, errlen, "%s: %s: expected a whole number%s from 0 to %u, got '%s'",
                     where, name, unit, keys[k].max, v);
            return -1;
        }
        c->num[k] = (uint32_t)n;
    }
    }
    c->set |= 1u << k;
    return 0;
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

static int find_key(const char *name)
{
    for (int k = 0; k < ACFG_NKEYS; k++)
        if (!strcmp(keys[k].name, name))
            return k;
    return -1;
}

static int parse_file(struct agent_config *c, const char *path, FILE *f, char *err,
                      size_t errlen)
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
        int k = find_key(name);
        if (k < 0) {
            size_t n = (size_t)snprintf(err, errlen, "%s: unknown key '%s' (known:", where,
                                        name);
            for (int i = 0; i < ACFG_NKEYS && n < errlen; i++)
                n += (size_t)snprintf(err + n, errlen - n, " %s", keys[i].name);
            if (n < errlen)
                snprintf(err + n, errlen - n, ")");
            rc = -1;
            break;
        }
        rc = set_key(c, k, value, where, err, errlen);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    return rc;
}

int agent_config_load(struct agent_config *c, const char *path, char *err, size_t errlen)
{
    defaults(c);
    const char *p = agent_config_path(path);
    if (p) {
        FILE *f = fopen(p, "r");
        if (!f) {
            snprintf(err, errlen, "cannot read the configuration file %s: %s", p,
                     strerror(errno));
            return -1;
        }
        int r = parse_file(c, p, f, err, errlen);
        fclose(f);
        if (r < 0) {
            agent_config_free(c);
            return -1;
        }
    }
    for (int k = 0; k < ACFG_NKEYS; k++) {
        const char *v = getenv(keys[k].env);
        /* An empty variable is unset: `SIDETRACK_DATA= sidetrackd` keeps the default. */
        if (!v || !*v)
            continue;
        char where[64];
        snprintf(where, sizeof where, "$%s", keys[k].env);
        if (set_key(c, k, v, where, err, errlen) < 0) {
            agent_config_free(c);
            return -1;
        }
    }
    return 0;
}
