/* prometheus.c — the agent's figures in Prometheus's text exposition format (0.0.4), for
 * GET /metrics on the admin endpoint (admin.h). Rendered by the main loop, which owns the
 * state read here. Counters count since the agent started (Prometheus handles the reset at
 * a restart); gauges are the state now. Names follow Prometheus's conventions: a
 * sidetrack_agent_ prefix, base units (bytes, seconds), _total on counters.
 */
#include "agent.h"
#include "mlflow_target.h"
#include "replicate.h"

#include <stdio.h>

static void metric(FILE *f, const char *name, const char *type, const char *help, double v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static double secs(uint64_t ms) { return (double)ms / 1000.0; }

/* Label values escape \ " and newline. */
static void label_value(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n') {
            fputs("\\n", f);
            continue;
        }
        fputc(*s, f);
    }
}

void agent_prom_render(struct agent *a, FILE *f)
{
    fputs("# HELP sidetrack_agent_info The agent's version.\n"
          "# TYPE sidetrack_agent_info gauge\nsidetrack_agent_info{version=\"", f);
    label_value(f, a->version ? a->version : "unknown");
    fputs("\"} 1\n", f);
    metric(f, "sidetrack_agent_start_time_seconds", "gauge",
           "When the agent started (Unix time).", secs(a->start_ns / 1000000u));
    metric(f, "sidetrack_agent_records_total", "counter",
           "Records drained from the rings into the store.", (double)a->records_total);
    metric(f, "sidetrack_agent_commits_total", "counter", "Store transactions committed.",
           (double)a->commits);
    metric(f, "sidetrack_agent_dropped_points_total", "counter",
           "Metric points training processes dropped on a full lane (raise SIDETRACK_LANE_MB "
           "or log less often).",
           (double)a->dropped_total);
    metric(f, "sidetrack_agent_lost_records_total", "counter",
           "Records lost by producers that died while writing them.", (double)a->lost_total);
    metric(f, "sidetrack_agent_skipped_records_total", "counter",
           "Damaged or refused records skipped while draining.", (double)a->skipped_total);
    uint64_t lanes = 0, spilled = 0, spill_unread = 0;
    for (size_t k = 0; k < a->narenas; k++) {
        const struct arena_state *as = a->arenas[k];
        for (uint32_t i = 0; i < as->arena.lane_count; i++) {
            const struct lane_state *ls = &as->lanes[i];
            if (!ls->adopted)
                continue;
            const struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&as->arena, i);
            uint64_t sb = atomic_load_explicit(&ctl->spill_bytes, memory_order_relaxed);
            lanes++;
            spilled += atomic_load_explicit(&ctl->spilled_records, memory_order_relaxed);
            spill_unread += sb > ls->spill_committed ? sb - ls->spill_committed : 0;
        }
    }
    metric(f, "sidetrack_agent_rings", "gauge", "Ring files being drained.",
           (double)a->narenas);
    metric(f, "sidetrack_agent_lanes", "gauge", "Lanes in use in the rings.", (double)lanes);
    metric(f, "sidetrack_agent_spilled_records", "gauge",
           "Records the producers of the lanes in use wrote to spill files (their lane was "
           "full).",
           (double)spilled);
    metric(f, "sidetrack_agent_spill_unread_bytes", "gauge",
           "Bytes of spill files not yet drained.", (double)spill_unread);
    metric(f, "sidetrack_agent_behind", "gauge",
           "1 when the last drain pass hit its batch limit: records are waiting.",
           a->last_pass_records >= a->opt.batch_records ? 1 : 0);
    metric(f, "sidetrack_agent_last_commit_timestamp_seconds", "gauge",
           "When the last store commit happened (Unix time; 0: none yet).",
           secs(a->last_commit_ns / 1000000u));
    metric(f, "sidetrack_agent_last_fsync_timestamp_seconds", "gauge",
           "When the store was last made durable (Unix time; 0: none yet).",
           secs(a->last_sync_ns / 1000000u));
    metric(f, "sidetrack_agent_last_error_timestamp_seconds", "gauge",
           "When the agent last failed to write the store (Unix time; 0: never).",
           secs(a->last_error_ns / 1000000u));
    struct store_info si;
    if (a->store && store_info(a->store, &si) == 0) {
        metric(f, "sidetrack_agent_store_used_bytes", "gauge", "Bytes used in the store's map.",
               (double)si.used_bytes);
        metric(f, "sidetrack_agent_store_map_bytes", "gauge",
               "The store's map size (it grows on demand).", (double)si.map_size);
        metric(f, "sidetrack_agent_store_file_bytes", "gauge", "Size of data.mdb on disk.",
               (double)si.file_bytes);
    }
    if (a->repl) {
        struct replicate_status rs;
        replicate_get_status(a->repl, &rs);
        uint64_t now_ms = agent_now_ns() / 1000000u;
        metric(f, "sidetrack_agent_sync_connected", "gauge",
               "1 while the agent is connected to its sidetrack-server.", rs.connected ? 1 : 0);
        metric(f, "sidetrack_agent_sync_backlog_ops", "gauge",
               "Journal operations not yet acknowledged by the server.",
               (double)rs.backlog_ops);
        metric(f, "sidetrack_agent_sync_backlog_bytes", "gauge",
               "About the bytes sending the backlog takes.",
               (double)(rs.backlog_ops ? rs.backlog_bytes : 0));
        metric(f, "sidetrack_agent_sync_backlog_age_seconds", "gauge",
               "How long the backlog has not been empty (0: empty).",
               rs.backlog_ops && rs.backlog_since_ms && now_ms > rs.backlog_since_ms
                   ? secs(now_ms - rs.backlog_since_ms)
                   : 0);
        metric(f, "sidetrack_agent_sync_last_ack_timestamp_seconds", "gauge",
               "When the server last acknowledged a batch (Unix time; 0: never).",
               secs(rs.last_ack_ms));
        metric(f, "sidetrack_agent_sync_points_total", "counter",
               "Metric points the server acknowledged.", (double)rs.points);
        metric(f, "sidetrack_agent_sync_batches_total", "counter",
               "Batches the server acknowledged.", (double)rs.batches);
    }
}
