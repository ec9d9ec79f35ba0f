/* ingest_http.h — the agents' HTTPS endpoint (POST /api/sidetrack/v1/sync). */
#ifndef SIDETRACK_SERVER_INGEST_HTTP_H
#define SIDETRACK_SERVER_INGEST_HTTP_H

#include "http.h"
#include "ingest.h"

int ingest_http_register(struct http_server *h, struct ingest *ig);

#endif
