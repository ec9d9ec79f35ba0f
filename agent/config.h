/* config.h — sidetrackd's configuration file (/etc/sidetrack/agent.conf) and environment.
 *
 * One `key = value` per line, `#` comments and blank lines ignored; the keys are the long
 * options' names. Precedence: built-in defaults < file < $SIDETRACK_<KEY> (upper case, '-'
 * as '_') < command line (main.c). Errors name FILE:LINE (or the variable) and what is
 * expected, so a user can fix them without reading the code.
 */
#ifndef SIDETRACK_AGENT_CONFIG_H
#define SIDETRACK_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_CONFIG_DEFAULT_PATH "/etc/sidetrack/agent.conf"

enum agent_config_key {
    ACFG_DATA,
    ACFG_RING_DIR,
    ACFG_FSYNC_INTERVAL,
    ACFG_SERVER,
    ACFG_SERVER_KEY,
    ACFG_KEY,
    ACFG_SERVER_TOKEN,
    ACFG_CA,
    ACFG_SYNC_INTERVAL,
    ACFG_SYNC_BACKLOG,
    ACFG_MLFLOW,
    ACFG_MLFLOW_INTERVAL,
    ACFG_SYSTEM_METRICS_INTERVAL,
    ACFG_METRICS_LISTEN,
    ACFG_VERBOSE,
    ACFG_NKEYS,
};

struct agent_config {
    /* Owned copies; NULL: not set (the agent's own default applies). */
    char *str[ACFG_NKEYS];
    /* Integer keys (in the unit the key's name says: ms or s) and verbose (0/1). */
    uint32_t num[ACFG_NKEYS];
    /* Bit (1u << key): set by the file or the environment. */
    uint32_t set;
};

/* The key's name ("fsync-interval"), or NULL. */
const char *agent_config_key_name(int key);

/* Fills `c` with the defaults, then the file at `path` (when `path` is NULL: the default
 * path if it exists; a `path` given must exist), then the environment. 0, or -1 with a
 * message in `err` ("FILE:LINE: ..."); `c` is then left empty. Free with agent_config_free. */
int agent_config_load(struct agent_config *c, const char *path, char *err, size_t errlen);
void agent_config_free(struct agent_config *c);

/* The file agent_config_load read for `path` (NULL when none), for messages. */
const char *agent_config_path(const char *path);

#endif
