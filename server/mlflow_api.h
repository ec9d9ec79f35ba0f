/* mlflow_api.h — MLflow's REST API (tracking 2.0 and the artifacts proxy) over the store.
 *
 * Registers, on an HTTP front made by http_start():
 *   /api/2.0/mlflow/...            experiments, runs, metrics, artifacts/list (service.proto)
 *   /ajax-api/2.0/mlflow/...       the same handlers, as MLflow's web UI calls them, plus
 *                                  metrics/get-history-bulk-interval
 *   /api/2.0/mlflow-artifacts/artifacts[/<exp>/<run>/artifacts/<path>]
 *                                  list, download, upload (mlflow_artifacts.proto)
 * The routes need no token of their own: http_require_auth_everywhere() protects them all.
 * docs/mlflow.md lists what is supported and what differs from MLflow. */
#ifndef SIDETRACK_SERVER_MLFLOW_API_H
#define SIDETRACK_SERVER_MLFLOW_API_H

struct http_server;
struct store;

/* Adds the routes. The store must outlive the server. 0 or -errno (-ENOMEM). */
int mlflow_api_register(struct http_server *h, struct store *s);

#endif
