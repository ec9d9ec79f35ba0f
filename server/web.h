/* web.h — sidetrack-server's web UI: static files (web/index.html, app.js, style.css) and
 * Debian's Chart.js, served from disk so that the UI works offline; and the read-only
 * guard (--read-only) that answers MLflow's write endpoints with an error.
 *
 * The UI itself is plain JavaScript that reads MLflow's REST API (/ajax-api/2.0/mlflow/...)
 * and sidetrack's metrics view; nothing here knows about runs. */
#ifndef SIDETRACK_SERVER_WEB_H
#define SIDETRACK_SERVER_WEB_H

#include "http.h"

#include <stddef.h>

/* Debian's libjs-chart.js (Chart.js 3.9); served as /static/vendor/chart.min.js. */
#ifndef WEB_CHARTJS_PATH
#define WEB_CHARTJS_PATH "/usr/share/javascript/chart.js/chart.min.js"
#endif

/* The default web root: the source tree's web/ when this binary runs from the build tree it
 * was built in (so that editing web/ needs no install), else the installed
 * PREFIX/share/sidetrack/web. Writes it into buf; returns buf. */
const char *web_default_root(char *buf, size_t len);

/* Adds GET / (root/index.html), GET /static/vendor/chart.min.js and GET /static/PATH
 * (root/PATH). Register these last: they match by prefix. -ENOENT: root has no index.html. */
int web_register(struct http_server *h, const char *root);

/* Read-only mode: makes every MLflow write endpoint (and the agents' HTTPS ingest) answer
 * 403 PERMISSION_DENIED. Register it before the API routes, which it shadows. */
int web_readonly_register(struct http_server *h);

#endif
