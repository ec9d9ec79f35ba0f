/* cmd_sync.c — `sidetrack sync status` and `sidetrack sync now`: the agent's replication to
 * sidetrack-server, as the agent reports it in DATA/agent.status (agent/status.c, sync_*
 * keys), and a nudge to sync at once (SIGUSR1 to the agent's pid from that file).
 *
 * Exit status of `sync status`: 0 when the agent runs, replicates and is connected; 1
 * otherwise (not running, no --server, not connected): a health check for scripts. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void sync_usage(FILE *f)
{
    fputs("Usage: sidetrack sync status [--json]\n"
          "       sidetrack sync now\n"
          "\n"
          "status: the agent's replication to its sidetrack-server: connected or not, the\n"
          "        backlog (changes not yet acknowledged by the server) and since when, the\n"
          "        last acknowledgement, throughput, the last error.\n"
          "now:    asks the agent to sync at once instead of at its next interval.\n"
          "\n"
          "Options:\n"
          "      --json      status as one JSON object\n"
          "  -d, --data DIR  the agent's store directory\n",
          f);
}

struct sync_state {
    bool running, configured, connected;
    uint64_t pid, acked, journal_next, backlog_ops, backlog_bytes, backlog_since_ms, last_ack_ms,
        batches,
        ops, points, points_per_sec, last_error_ms;
    char server[1024], transport[16], last_error[512];
};

static int read_state(struct cli *c, struct sync_state *s)
{
    memset(s, 0, sizeof *s);
    if (cli_data_dir(c) != CLI_OK)
        return CLI_FAIL;
    char *doc = cli_agent_doc_read(c->data_dir);
    if (!doc)
        return CLI_OK;
    s->pid = cli_af_u64(doc, "pid");
    s->running = cli_agent_doc_running(doc);
    s->configured = cli_af_find(doc, "sync_server") != NULL;
    cli_af_str(doc, "sync_server", s->server, sizeof s->server);
    cli_af_str(doc, "sync_transport", s->transport, sizeof s->transport);
    s->connected = s->running && cli_af_u64(doc, "sync_connected");
    s->acked = cli_af_u64(doc, "sync_acked");
    s->journal_next = cli_af_u64(doc, "sync_journal_next");
    s->backlog_ops = cli_af_u64(doc, "sync_backlog_ops");
    s->backlog_since_ms = cli_af_u64(doc, "sync_backlog_since_ms");
    s->backlog_bytes = cli_af_u64(doc, "sync_backlog_bytes");
    s->last_ack_ms = cli_af_u64(doc, "sync_last_ack_ms");
    s->batches = cli_af_u64(doc, "sync_batches");
    s->ops = cli_af_u64(doc, "sync_ops");
    s->points = cli_af_u64(doc, "sync_points");
    s->points_per_sec = cli_af_u64(doc, "sync_points_per_sec");
    s->last_error_ms = cli_af_u64(doc, "sync_last_error_ms");
    cli_af_str(doc, "sync_last_error", s->last_error, sizeof s->last_error);
    free(doc);
    return CLI_OK;
}

static void ago(int64_t now, uint64_t then, char *buf, size_t len)
{
    if (!then) {
        snprintf(buf, len, "never");
        return;
    }
    int64_t d = (now - (int64_t)then) / 1000;
    if (d < 120)
        snprintf(buf, len, "%llds ago", (long long)d);
    else if (d < 7200)
        snprintf(buf, len, "%lldmin ago", (long long)(d / 60));
    else
        snprintf(buf, len, "%lldh ago", (long long)(d / 3600));
}

static int sync_status(struct cli *c, int argc, char **argv)
{
    static const struct cli_syntax syntax = {"sync status", cli_json_options, sync_usage,
                                             .max_args = 0};
    bool json = false;
    const char *arg = NULL;
    int parsed = cli_args_json(c, &syntax, argc, argv, &json, &arg);
    if (parsed != CLI_ARG_END)
        return parsed;
    struct sync_state s;
    int rc = read_state(c, &s);
    if (rc != CLI_OK)
        return rc;
    int64_t now = cli_now_ms();
    if (json) {
        struct json j;
        json_init(&j, stdout);
        json_begin_object(&j, false);
        json_key(&j, "agent_running");
        json_bool(&j, s.running);
        json_key(&j, "server");
        if (s.configured)
            json_string(&j, s.server);
        else
            json_null(&j);
        json_key(&j, "transport");
        if (s.configured && s.transport[0])
            json_string(&j, s.transport);
        else
            json_null(&j);
        json_key(&j, "connected");
        json_bool(&j, s.connected);
        json_kv_uint(&j, "backlog_ops", s.backlog_ops);
        json_kv_uint(&j, "backlog_bytes", s.backlog_bytes);
        json_kv_uint(&j, "backlog_age_ms",
                     s.backlog_since_ms ? (uint64_t)(now - (int64_t)s.backlog_since_ms) : 0);
        json_kv_uint(&j, "acked", s.acked);
        json_kv_uint(&j, "journal_next", s.journal_next);
        json_kv_uint(&j, "last_ack_ms", s.last_ack_ms);
        json_kv_uint(&j, "batches", s.batches);
        json_kv_uint(&j, "ops", s.ops);
        json_kv_uint(&j, "points", s.points);
        json_kv_uint(&j, "points_per_sec", s.points_per_sec);
        json_kv_string(&j, "last_error", s.last_error);
        json_kv_uint(&j, "last_error_ms", s.last_error_ms);
        json_end_object(&j);
        json_finish(&j);
    } else if (!s.running) {
        printf("the agent is not running (no fresh %s/agent.status)\n", c->data_dir);
    } else if (!s.configured) {
        printf("the agent does not replicate: start it with --server (see docs/sync.md)\n");
    } else {
        char a1[32], a2[32], a3[32];
        ago(now, s.last_ack_ms, a1, sizeof a1);
        ago(now, s.backlog_since_ms, a2, sizeof a2);
        ago(now, s.last_error_ms, a3, sizeof a3);
        printf("server      %s (%s%s%s)\n", s.server, s.transport,
               s.transport[0] ? ", " : "", s.connected ? "connected" : "NOT connected");
        printf("backlog     %llu change(s), about %.1f MiB, not acknowledged%s%s\n",
               (unsigned long long)s.backlog_ops, (double)s.backlog_bytes / 1048576.0,
               s.backlog_ops ? ", waiting since " : "", s.backlog_ops ? a2 : "");
        printf("last ack    %s (changes below %llu are on the server)\n", a1,
               (unsigned long long)s.acked);
        printf("sent        %llu batches, %llu changes, %llu metric points (%llu points/s "
               "lately)\n",
               (unsigned long long)s.batches, (unsigned long long)s.ops,
               (unsigned long long)s.points, (unsigned long long)s.points_per_sec);
        if (s.last_error[0])
            printf("last error  %s (%s)\n", s.last_error, a3);
    }
    if (cli_flush_stdout() < 0)
        return CLI_FAIL;
    return s.running && s.configured && s.connected ? CLI_OK : CLI_FAIL;
}

static int sync_now(struct cli *c, int argc, char **argv)
{
    static const struct cli_option opts[] = {CLI_COMMON_OPTIONS, {0}};
    static const struct cli_syntax syntax = {"sync now", opts, sync_usage, .max_args = 0};
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    const char *v;
    int id;
    while ((id = cli_args_next(&a, &v)) != CLI_ARG_END)
        if (id == CLI_ARG_EXIT)
            return a.exit;
    struct sync_state s;
    int rc = read_state(c, &s);
    if (rc != CLI_OK)
        return rc;
    if (!s.running) {
        cli_error("the agent is not running (no fresh %s/agent.status)", c->data_dir);
        return CLI_FAIL;
    }
    if (!s.configured) {
        cli_error("the agent does not replicate: start it with --server (see docs/sync.md)");
        return CLI_FAIL;
    }
    if (kill((pid_t)s.pid, SIGUSR1) < 0) {
        cli_error("cannot signal the agent (pid %llu): %s", (unsigned long long)s.pid,
                  strerror(errno));
        return CLI_FAIL;
    }
    printf("asked the agent (pid %llu) to sync now; `sidetrack sync status` shows progress\n",
           (unsigned long long)s.pid);
    return CLI_OK;
}

int cmd_sync(struct cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("sync", "missing subcommand: status or now");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        sync_usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(sub, "status"))
        return sync_status(c, argc - 1, argv + 1);
    if (!strcmp(sub, "now"))
        return sync_now(c, argc - 1, argv + 1);
    return cli_usage_error("sync", "unknown subcommand '%s': use status or now", sub);
}
