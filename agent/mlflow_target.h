/* mlflow_target.h — sidetrackd's mlflow sync target: a thread that pushes the store's runs
 * into an MLflow tracking server (sync/mlflow_push.h) every interval, at once on
 * mlflow_target_kick() (SIGUSR1), and reports how it went in agent.status. */
#ifndef SIDETRACK_AGENT_MLFLOW_TARGET_H
#define SIDETRACK_AGENT_MLFLOW_TARGET_H

#include "store.h"

#include <stdint.h>
#include <stdio.h>

struct mlflow_target_options {
    const char *url;          /* http(s)://HOST:PORT of the tracking server */
    uint32_t interval_s;      /* between pushes (default 60) */
};

struct mlflow_agent;
/* Starts the thread (credentials from MLFLOW_TRACKING_* in the environment). 0, or -errno
 * with a sentence in err. */
int mlflow_target_start(struct mlflow_agent **m, struct store *s,
                        const struct mlflow_target_options *o, char *err, size_t errlen);
/* Stops the thread (a push in progress stops between requests; it resumes at the next
 * start) and frees m. NULL accepted. */
void mlflow_target_stop(struct mlflow_agent *m);
/* Push now. Async-signal-safe. */
void mlflow_target_kick(struct mlflow_agent *m);
/* Appends the target's keys ("mlflow_url", "mlflow_last_push_ms", ...) to agent.status,
 * each as ",\n  \"key\": value" like status.c's own. */
void mlflow_target_status_write(struct mlflow_agent *m, FILE *f);

#endif
