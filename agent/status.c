/* status.c — the agent's own state, published for `sidetrack status`.
 *
 * The agent answers `sidetrack status` on its socket (admin.c) with this document, rendered
 * on request; once a second (and at exit) it also writes DATA/agent.status: a small JSON document built
 * in a temporary file and renamed into place, so that a reader sees the old or the new one,
 * never half of one. Readers judge liveness by the pid and by updated_ms (stale after a few
 * seconds: the agent hung or was killed -9). The layout is line-oriented on purpose: each
 * top-level key on its own line, each lane on one line, so that the CLI reads it without a
 * JSON library. Nothing here touches the store's data or the rings' positions; a failure to
 * write the file is ignored (it is a window, not data).
 */
#include "agent.h"
#include "mlflow_target.h"
#include "replicate.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void agent_status_str(FILE *f, const char *key, const char *v)
{
    fprintf(f, ",\n  \"%s\": ", key);
    put_string(f, v);
}

void agent_status_u64(FILE *f, const char *key, uint64_t v)
{
    fprintf(f, ",\n  \"%s\": %llu", key, (unsigned long long)v);
}

static uint64_t ms(uint64_t ns) { return ns / 1000000u; }

static void write_lane(FILE *f, const struct arena_state *as, uint32_t i,
                       const struct lane_state *ls, bool *first)
{
    const struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&as->arena, i);
    uint64_t owner = atomic_load_explicit(&ctl->owner, memory_order_relaxed);
    const char *state = ls->finished                     ? "finished"
                        : ls->corrupt                    ? "corrupt"
                        : (owner & SHMLOG_OWNER_CLOSED) ? "closed"
                                                         : "active";
    const char *slash = strrchr(as->arena.path, '/');
    uint64_t spill_bytes = atomic_load_explicit(&ctl->spill_bytes, memory_order_relaxed);
    fputs(*first ? "\n    {" : ",\n    {", f);
    *first = false;
    fputs("\"ring\": ", f);
    put_string(f, slash ? slash + 1 : as->arena.path);
    fprintf(f,
            ", \"lane\": %u, \"generation\": %u, \"pid\": %u, \"uid\": %u, \"state\": \"%s\", "
            "\"records\": %llu, \"skipped\": %llu, \"dropped\": %llu, \"lost\": %llu, "
            "\"spilled_records\": %llu, \"spill_bytes\": %llu, \"spill_unread_bytes\": %llu, "
            "\"committed_pos\": %llu, \"runs\": [",
            i, ls->gen, ls->rec.pid, ls->rec.uid, state, (unsigned long long)ls->rec.records,
            (unsigned long long)ls->rec.skipped, (unsigned long long)ls->rec.dropped,
            (unsigned long long)ls->rec.lost,
            (unsigned long long)atomic_load_explicit(&ctl->spilled_records,
                                                     memory_order_relaxed),
            (unsigned long long)spill_bytes,
            (unsigned long long)(spill_bytes > ls->spill_committed
                                     ? spill_bytes - ls->spill_committed
                                     : 0),
            (unsigned long long)ls->committed_pos);
    bool first_run = true;
    for (uint32_t r = 0; r < ls->nruns; r++) {
        if (!ls->run_known[r])
            continue;
        char hex[33];
        store_run_id_hex(ls->runs[r], hex);
        fprintf(f, "%s\"%s\"", first_run ? "" : ", ", hex);
        first_run = false;
    }
    fputs("]}", f);
}

void agent_status_write(struct agent *a, bool stopped)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/agent.status", a->opt.data_dir);
    snprintf(tmp, sizeof tmp, "%s/.agent.status.%d.tmp", a->opt.data_dir, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return;
    }
    a->last_status_ns = agent_now_ns();
    agent_status_render(a, f, stopped);
    bool ok = !ferror(f);
    if (fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) < 0)
        unlink(tmp);
}

void agent_status_render(struct agent *a, FILE *f, bool stopped)
{
    uint64_t now = agent_now_ns();
    fprintf(f, "{\n  \"format\": 1");
    agent_status_str(f, "state", stopped ? "stopped" : "running");
    agent_status_u64(f, "pid", (uint64_t)getpid());
    agent_status_str(f, "version", a->version ? a->version : "unknown");
    agent_status_u64(f, "started_ms", ms(a->start_ns));
    agent_status_u64(f, "updated_ms", ms(now));
    agent_status_str(f, "data_dir", a->opt.data_dir);
    agent_status_str(f, "ring_dir", a->opt.ring_dir);
    agent_status_u64(f, "fsync_interval_ms", a->opt.fsync_interval_ms);
    agent_status_u64(f, "batch_records", a->opt.batch_records);
    agent_status_u64(f, "records_since_start", a->records_total);
    agent_status_u64(f, "commits", a->commits);
    agent_status_u64(f, "last_commit_ms", ms(a->last_commit_ns));
    agent_status_u64(f, "last_sync_ms", ms(a->last_sync_ns));
    agent_status_u64(f, "unsynced", a->unsynced ? 1 : 0);
    agent_status_u64(f, "backlog", a->last_pass_records >= a->opt.batch_records ? 1 : 0);
    agent_status_str(f, "last_error", a->last_error_ns ? a->last_error : "");
    agent_status_u64(f, "last_error_ms", ms(a->last_error_ns));
    struct store_info si;
    if (a->store && store_info(a->store, &si) == 0) {
        agent_status_u64(f, "map_size", si.map_size);
        agent_status_u64(f, "used_bytes", si.used_bytes);
        agent_status_u64(f, "file_bytes", si.file_bytes);
    }
    if (a->repl) {
        struct replicate_status rs;
        replicate_get_status(a->repl, &rs);
        agent_status_str(f, "sync_server", a->opt.server);
        agent_status_str(f, "sync_transport", rs.transport);
        agent_status_u64(f, "sync_connected", rs.connected);
        agent_status_u64(f, "sync_acked", rs.acked);
        agent_status_u64(f, "sync_journal_next", rs.journal_next);
        agent_status_u64(f, "sync_backlog_ops", rs.backlog_ops);
        agent_status_u64(f, "sync_backlog_since_ms", rs.backlog_since_ms);
        agent_status_u64(f, "sync_backlog_bytes", rs.backlog_ops ? rs.backlog_bytes : 0);
        agent_status_u64(f, "sync_last_ack_ms", rs.last_ack_ms);
        agent_status_u64(f, "sync_batches", rs.batches);
        agent_status_u64(f, "sync_ops", rs.ops);
        agent_status_u64(f, "sync_points", rs.points);
        agent_status_u64(f, "sync_points_per_sec", (uint64_t)rs.points_per_sec);
        agent_status_str(f, "sync_last_error", rs.last_error);
        agent_status_u64(f, "sync_last_error_ms", rs.last_error_ms);
    }
    mlflow_target_status_write(a->mlflow, f); /* nothing without --mlflow */
    uint64_t nlanes = 0;
    for (size_t k = 0; k < a->narenas; k++)
        for (uint32_t i = 0; i < a->arenas[k]->arena.lane_count; i++)
            nlanes += a->arenas[k]->lanes[i].adopted;
    agent_status_u64(f, "rings", a->narenas);
    agent_status_u64(f, "lanes_draining", nlanes);
    fputs(",\n  \"lanes\": [", f);
    bool first = true;
    for (size_t k = 0; k < a->narenas; k++) {
        const struct arena_state *as = a->arenas[k];
        for (uint32_t i = 0; i < as->arena.lane_count; i++)
            if (as->lanes[i].adopted)
                write_lane(f, as, i, &as->lanes[i], &first);
    }
    fputs(first ? "]\n}\n" : "\n  ]\n}\n", f);
}
