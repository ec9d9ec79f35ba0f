/* mlflow_target.c — the agent's mlflow sync target (see mlflow_target.h).
 *
 * One thread: push (mlflow_push_run_once), then wait for the interval or a kick, and again.
 * It shares the agent's store handle; the push uses short transactions, so the drain loop
 * is never held up for longer than one small commit. A failed push is simply tried again at
 * the next interval: the records in the store make every push resume where the last stopped.
 * Messages go to the agent's log once each (a refused key would otherwise be said at every
 * push), and the latest outcome to agent.status.
 */
#include "mlflow_target.h"

#include "agent.h"
#include "mlflow_push.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAID_MAX 4096 /* distinct messages remembered, so each is logged once */

struct mlflow_agent {
    struct store *store;
    struct mlflow_target t;
    char url[2048];
    uint32_t interval_s;
    pthread_t thread;
    _Atomic bool stop;
    _Atomic bool kick;
    pthread_mutex_t mu; /* guards the status below */
    uint64_t last_push_ms, last_ok_ms, pushes, points_total, last_points, last_error_ms;
    uint64_t runs_failed, skipped;
    char last_error[512];
    /* thread-only */
    uint64_t said[SAID_MAX];
    size_t nsaid;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool should_stop(void *arg)
{
    struct mlflow_agent *m = arg;
    return atomic_load(&m->stop);
}

/* FNV-1a: enough to tell messages apart */
static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool first_time(struct mlflow_agent *m, const char *msg)
{
    uint64_t h = hash(msg);
    for (size_t i = 0; i < m->nsaid; i++)
        if (m->said[i] == h)
            return false;
    if (m->nsaid < SAID_MAX)
        m->said[m->nsaid++] = h;
    return true;
}

static void on_event(const struct mlflow_push_event *ev, void *arg)
{
    struct mlflow_agent *m = arg;
    if (ev->kind == MLFLOW_EV_SKIP || ev->kind == MLFLOW_EV_RUN_FAILED) {
        if (first_time(m, ev->message))
            agent_log("warning", "mlflow: %s", ev->message);
    } else if (ev->kind == MLFLOW_EV_RETRY) {
        if (first_time(m, ev->message))
            agent_log("info", "mlflow: %s; retrying", ev->message);
    }
}

static void push_once(struct mlflow_agent *m)
{
    struct mlflow_push_stats st;
    char err[1024] = "";
    int rc = mlflow_push_run_once(m->store, &m->t, &st, on_event, m, err, sizeof err);
    if (rc == -EINTR)
        return; /* stopping */
    uint64_t now = now_ms();
    pthread_mutex_lock(&m->mu);
    m->last_push_ms = now;
    m->pushes++;
    m->points_total += st.points;
    m->last_points = st.points;
    m->runs_failed = st.runs_failed;
    m->skipped = st.skipped;
    if (rc == 0)
        m->last_ok_ms = now;
    if (rc < 0) {
        snprintf(m->last_error, sizeof m->last_error, "%s", err);
        m->last_error_ms = now;
    } else if (rc == 1) {
        snprintf(m->last_error, sizeof m->last_error, "%llu run(s) failed (see the log)",
                 (unsigned long long)st.runs_failed);
        m->last_error_ms = now;
    }
    pthread_mutex_unlock(&m->mu);
    if (rc < 0) {
        if (first_time(m, err))
            agent_log("warning", "mlflow: push to %s failed: %s; tried again every %u s",
                      m->url, err, m->interval_s);
    } else if (st.runs_created || st.runs_updated) {
        agent_log("info", "mlflow: pushed to %s: %llu run(s) created, %llu brought up to date, "
                          "%llu point(s)",
                  m->url, (unsigned long long)st.runs_created,
                  (unsigned long long)st.runs_updated, (unsigned long long)st.points);
    }
}

static void *thread_main(void *arg)
{
    struct mlflow_agent *m = arg;
    while (!atomic_load(&m->stop)) {
        atomic_store(&m->kick, false);
        push_once(m);
        /* the interval, in slices, so that a kick or a stop is seen within 100 ms */
        for (uint64_t waited = 0; waited < (uint64_t)m->interval_s * 1000; waited += 100) {
            if (atomic_load(&m->stop) || atomic_load(&m->kick))
                break;
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int mlflow_target_start(struct mlflow_agent **out, struct store *s,
                        const struct mlflow_target_options *o, char *err, size_t errlen)
{
    if (!o->url || (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8))) {
        snprintf(err, errlen, "--mlflow: expected http://HOST:PORT or https://..., not '%s'",
                 o->url ? o->url : "");
        return -EINVAL;
    }
    struct mlflow_agent *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    m->store = s;
    snprintf(m->url, sizeof m->url, "%s", o->url);
    m->interval_s = o->interval_s ? o->interval_s : 60;
    m->t.url = m->url;
    m->t.retry_max_ms = 30000; /* then the next interval tries again */
    m->t.should_stop = should_stop;
    m->t.stop_arg = m;
    mlflow_target_from_env(&m->t);
    pthread_mutex_init(&m->mu, NULL);
    int rc = pthread_create(&m->thread, NULL, thread_main, m);
    if (rc) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        snprintf(err, errlen, "cannot start the mlflow thread: %s", strerror(rc));
        return -rc;
    }
    *out = m;
    return 0;
}

void mlflow_target_stop(struct mlflow_agent *m)
{
    if (!m)
        return;
    atomic_store(&m->stop, true);
    pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void mlflow_target_kick(struct mlflow_agent *m)
{
    if (m)
        atomic_store(&m->kick, true);
}

void mlflow_target_status_write(struct mlflow_agent *m, FILE *f)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    agent_status_str(f, "mlflow_url", m->url);
    agent_status_u64(f, "mlflow_interval_s", m->interval_s);
    agent_status_u64(f, "mlflow_pushes", m->pushes);
    agent_status_u64(f, "mlflow_last_push_ms", m->last_push_ms);
    agent_status_u64(f, "mlflow_last_ok_ms", m->last_ok_ms);
    agent_status_u64(f, "mlflow_points", m->points_total);
    agent_status_u64(f, "mlflow_runs_failed", m->runs_failed);
    agent_status_u64(f, "mlflow_skipped", m->skipped);
    agent_status_str(f, "mlflow_last_error", m->last_error);
    agent_status_u64(f, "mlflow_last_error_ms", m->last_error_ms);
    pthread_mutex_unlock(&m->mu);
}
