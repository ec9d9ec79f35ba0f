/* config.h — sidetrack-server's configuration file (/etc/sidetrack/server.conf) and
 * environment, read by the daemons' shared engine (conf/conf.h).
 *
 * The keys are the long options' names; precedence: built-in defaults < file <
 * $SIDETRACK_SRV_<KEY> (upper case, '-' as '_') < command line. The prefix is not the agent's
 * SIDETRACK_: the agent reads SIDETRACK_DATA, SIDETRACK_KEY, SIDETRACK_SERVER_KEY, ..., and a
 * node that runs both (`sidetrack ui`, a server beside an agent) must not mix them up.
 */
#ifndef SIDETRACK_SERVER_CONFIG_H
#define SIDETRACK_SERVER_CONFIG_H

#include "conf.h"

#include <stdint.h>

#define SERVER_CONFIG_DEFAULT_PATH "/etc/sidetrack/server.conf"
#define SERVER_DEFAULT_ENDPOINT "tcp://127.0.0.1:7341"

enum server_config_key {
    SCFG_DATA,
    SCFG_ZMQ,
    SCFG_KEY,
    SCFG_ALLOW,
    SCFG_HTTP,
    SCFG_TLS_CERT,
    SCFG_TLS_KEY,
    SCFG_TOKENS,
    SCFG_API_AUTH,
    SCFG_HTTP_THREADS,
    SCFG_WEB,
    SCFG_READ_ONLY,
    SCFG_VERBOSE,
    SCFG_NKEYS,
};

/* num[SCFG_API_AUTH]: the choices of api-auth, in the table's order. */
enum { SCFG_API_AUTH_OPEN, SCFG_API_AUTH_TOKEN };

struct server_config {
    /* Owned copies; NULL: not set (the server's own default applies). */
    char *str[SCFG_NKEYS];
    /* http-threads; api-auth (SCFG_API_AUTH_*); read-only and verbose (0/1). */
    uint32_t num[SCFG_NKEYS];
    /* Bit (1u << key): set by the file, the environment or an option. */
    uint32_t set;
};

/* The server's keys, for conf_load() and the other conf_* calls. */
extern const struct conf_table server_config_table;

/* `c` as the engine sees it. */
struct conf_values server_config_values(struct server_config *c);

#endif
