/* config.c — sidetrackd's configuration keys (config.h) over the daemons' shared engine
 * (conf/conf.c): the file, $SIDETRACK_* overrides and their error messages are read there. */
#include "config.h"

#include "conf.h"

#include <string.h>

static const struct conf_key keys[ACFG_NKEYS] = {
    [ACFG_DATA] = CONF_KEY("data", "SIDETRACK_DATA", CONF_PATH, 0, 0),
    [ACFG_RING_DIR] = CONF_KEY("ring-dir", "SIDETRACK_RING_DIR", CONF_PATH, 0, 0),
    [ACFG_FSYNC_INTERVAL] =
        CONF_KEY("fsync-interval", "SIDETRACK_FSYNC_INTERVAL", CONF_MS, 3600000, 100),
    [ACFG_SERVER] = CONF_KEY("server", "SIDETRACK_SERVER", CONF_URL, 0, 0),
    [ACFG_SERVER_KEY] = CONF_KEY("server-key", "SIDETRACK_SERVER_KEY", CONF_PATH, 0, 0),
    [ACFG_KEY] = CONF_KEY("key", "SIDETRACK_KEY", CONF_PATH, 0, 0),
    [ACFG_SERVER_TOKEN] = CONF_KEY("server-token", "SIDETRACK_SERVER_TOKEN", CONF_PATH, 0, 0),
    [ACFG_CA] = CONF_KEY("ca", "SIDETRACK_CA", CONF_PATH, 0, 0),
    [ACFG_SYNC_INTERVAL] =
        CONF_KEY("sync-interval", "SIDETRACK_SYNC_INTERVAL", CONF_MS, 86400000, 1000),
    [ACFG_SYNC_BACKLOG] =
        CONF_KEY("sync-backlog", "SIDETRACK_SYNC_BACKLOG", CONF_COUNT, 1u << 30, 10000),
    [ACFG_MLFLOW] = CONF_KEY("mlflow", "SIDETRACK_MLFLOW", CONF_URL, 0, 0),
    [ACFG_MLFLOW_INTERVAL] =
        CONF_KEY("mlflow-interval", "SIDETRACK_MLFLOW_INTERVAL", CONF_SEC, 86400, 60),
    [ACFG_SYSTEM_METRICS_INTERVAL] = CONF_KEY("system-metrics-interval",
                                              "SIDETRACK_SYSTEM_METRICS_INTERVAL", CONF_SEC,
                                              86400, 10),
    [ACFG_METRICS_LISTEN] =
        CONF_KEY("metrics-listen", "SIDETRACK_METRICS_LISTEN", CONF_ADDR, 0, 0),
    [ACFG_VERBOSE] = CONF_KEY("verbose", "SIDETRACK_VERBOSE", CONF_BOOL, 1, 0),
};

_Static_assert(ACFG_NKEYS <= CONF_MAX_KEYS, "the set mask has a bit per key");

static const struct conf_table table = {keys, ACFG_NKEYS, AGENT_CONFIG_DEFAULT_PATH};

static struct conf_values values(struct agent_config *c)
{
    return (struct conf_values){c->str, c->num, &c->set};
}

const char *agent_config_key_name(int key)
{
    return conf_key_name(&table, key);
}

const char *agent_config_path(const char *path)
{
    return conf_path(&table, path);
}

void agent_config_free(struct agent_config *c)
{
    conf_free(&table, values(c));
    memset(c, 0, sizeof *c);
}

int agent_config_load(struct agent_config *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    return conf_load(&table, values(c), path, err, errlen);
}
