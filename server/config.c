/* config.c — sidetrack-server's configuration keys (config.h): one per long option, with its
 * variable, kind and default; conf/conf.c reads the file and the environment over them. */
#include "config.h"

static const struct conf_key keys[SCFG_NKEYS] = {
    [SCFG_DATA] = CONF_KEY("data", "SIDETRACK_SRV_DATA", CONF_PATH, 0, 0),
    [SCFG_ZMQ] = CONF_KEY("zmq", "SIDETRACK_SRV_ZMQ", CONF_ENDPOINT, 0, 0),
    [SCFG_KEY] = CONF_KEY("key", "SIDETRACK_SRV_KEY", CONF_PATH, 0, 0),
    [SCFG_ALLOW] = CONF_KEY("allow", "SIDETRACK_SRV_ALLOW", CONF_PATH, 0, 0),
    [SCFG_HTTP] = CONF_KEY("http", "SIDETRACK_SRV_HTTP", CONF_ADDR, 0, 0),
    [SCFG_TLS_CERT] = CONF_KEY("tls-cert", "SIDETRACK_SRV_TLS_CERT", CONF_PATH, 0, 0),
    [SCFG_TLS_KEY] = CONF_KEY("tls-key", "SIDETRACK_SRV_TLS_KEY", CONF_PATH, 0, 0),
    [SCFG_TOKENS] = CONF_KEY("tokens", "SIDETRACK_SRV_TOKENS", CONF_PATH, 0, 0),
    [SCFG_API_AUTH] = {.name = "api-auth", .env = "SIDETRACK_SRV_API_AUTH",
                       .kind = CONF_CHOICE, .max = 1, .def = SCFG_API_AUTH_OPEN,
                       .choices = "open|token"},
    [SCFG_HTTP_THREADS] = {.name = "http-threads", .env = "SIDETRACK_SRV_HTTP_THREADS",
                           .kind = CONF_COUNT, .max = 256, .def = 4, .min = 1},
    [SCFG_WEB] = CONF_KEY("web", "SIDETRACK_SRV_WEB", CONF_PATH, 0, 0),
    [SCFG_READ_ONLY] = CONF_KEY("read-only", "SIDETRACK_SRV_READ_ONLY", CONF_BOOL, 1, 0),
    [SCFG_VERBOSE] = CONF_KEY("verbose", "SIDETRACK_SRV_VERBOSE", CONF_BOOL, 1, 0),
};

_Static_assert(SCFG_NKEYS <= CONF_MAX_KEYS, "the set mask has a bit per key");

const struct conf_table server_config_table = {keys, SCFG_NKEYS, SERVER_CONFIG_DEFAULT_PATH};

struct conf_values server_config_values(struct server_config *c)
{
    return (struct conf_values){c->str, c->num, &c->set};
}
