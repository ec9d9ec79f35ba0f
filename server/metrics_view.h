/* metrics_view.h — sidetrack's own chart endpoint, /api/sidetrack/v1/metrics/view: several
 * runs × several metric keys in one request, each series downsampled to at most N points
 * with store_metric_view() (min/max per step bucket: spikes and gaps survive). */
#ifndef SIDETRACK_SERVER_METRICS_VIEW_H
#define SIDETRACK_SERVER_METRICS_VIEW_H

struct http_server;
struct store;

/* Adds GET and POST /api/sidetrack/v1/metrics/view. The store must outlive the server. */
int metrics_view_register(struct http_server *h, struct store *s);

#endif
