/* mlflow_rest.h — one HTTP request to an MLflow tracking server (libcurl, one connection kept
 * alive between requests), its answer read as JSON (jansson) and sorted into what a caller
 * does next: go on, retry later, or give up. Internal to the mlflow target (mlflow_push.c). */
#ifndef SIDETRACK_SYNC_MLFLOW_REST_H
#define SIDETRACK_SYNC_MLFLOW_REST_H

#include "mlflow_push.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mlflow_rest;

struct mlflow_reply {
    long status;              /* HTTP status; 0 when no answer came (transport error) */
    json_t *json;             /* the body when it is JSON (answers and MLflow errors) */
    char error_code[64];      /* MLflow's error_code, when the body has one */
    char message[512];        /* what went wrong, in words (server's message or curl's) */
    uint32_t retry_after_ms;  /* Retry-After of a 429 or 503; 0 when none */
};

int mlflow_rest_new(struct mlflow_rest **r, const struct mlflow_target *t);
void mlflow_rest_free(struct mlflow_rest *r);
/* The base URL without its trailing slashes. */
const char *mlflow_rest_base(const struct mlflow_rest *r);

/* One attempt. url: a path under the base URL ("/api/2.0/mlflow/runs/create") or a full URL.
 * body: JSON to POST (method "POST") or NULL; upload: a file to PUT (method "PUT").
 * Returns 0 for a 2xx; -EAGAIN when a retry may succeed (no answer, 408, 429, 5xx); -EACCES
 * for 401 / 403; -ENOENT for 404; -EINVAL for another 4xx; -ENOMEM. rep is filled either way
 * (mlflow_reply_clear() it). */
int mlflow_rest_call(struct mlflow_rest *r, const char *method, const char *url,
                     const char *body, size_t body_len, const char *upload,
                     struct mlflow_reply *rep);
void mlflow_reply_clear(struct mlflow_reply *rep);

/* Percent-encodes s for a query value (all but unreserved characters) or, with keep_slash, a
 * path (slashes kept). malloc'd; NULL when out of memory. */
char *mlflow_url_escape(const char *s, bool keep_slash);

#endif
