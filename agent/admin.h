/* admin.h — sidetrackd's operator endpoint.
 *
 * HTTP on a Unix socket, DATA/agent.sock (always: `sidetrack status` asks it first), and
 * optionally on a TCP address (--metrics-listen, loopback unless the operator says
 * otherwise). Two documents: GET /status, the JSON of DATA/agent.status but fresh; GET
 * /metrics, Prometheus's text format. Both are rendered by the agent's main loop, the only
 * thread that may read its state: a request asks for a fresh rendering and waits for the
 * loop (at most ADMIN_WAIT_MS). A loop that does not answer in time gets the last rendering
 * served with its age, which is the signal an operator needs: the drain loop is stuck.
 */
#ifndef SIDETRACK_AGENT_ADMIN_H
#define SIDETRACK_AGENT_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADMIN_WAIT_MS 2000
#define ADMIN_SOCKET_NAME "agent.sock"

struct agent_admin;

struct agent_admin_options {
    const char *data_dir;       /* the socket goes to DATA/agent.sock */
    const char *metrics_listen; /* HOST:PORT or [V6]:PORT; NULL: no TCP listener */
};

/* Binds and starts serving (one thread per listener). Returns 0, or a negative errno with
 * a message in err naming the address or path. */
int agent_admin_start(struct agent_admin **out, const struct agent_admin_options *o, char *err,
                      size_t errlen);
/* Stops serving, removes the socket file. NULL accepted. */
void agent_admin_stop(struct agent_admin *ad);

/* For the main loop: whether a request waits for a fresh rendering. Cheap (one atomic
 * load). NULL: false. */
bool agent_admin_wanted(struct agent_admin *ad);
/* Hands the loop's fresh renderings over (ownership passes; malloc'd, NUL-terminated) and
 * wakes the requests waiting for them. */
void agent_admin_publish(struct agent_admin *ad, char *status_json, char *prometheus);

/* The TCP listener's port (to learn the one picked for port 0); 0 without one. */
uint16_t agent_admin_tcp_port(const struct agent_admin *ad);

#endif
