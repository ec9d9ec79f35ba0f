/* cmd_status.c — `sidetrack status`: is the agent alive and keeping up, and what waits in the
 * rings.
 *
 * Three sources, each read without writing anything:
 *  - DATA/agent.status, which sidetrackd replaces once a second (agent/status.c): the agent's
 *    pid, durability window, progress and last error. It is believed only while its pid is
 *    alive and it is fresh (updated less than STALE_MS ago); else the agent is "not running".
 *  - the ring files, mapped read-only: each lane in use, its owner's pid, the ring file's
 *    owner (the uid the agent attributes records to), the producer's drop and spill counters,
 *    and what waits in the lane: the published records from the consumer's head onward,
 *    counted by walking their headers (at most one lap). This works with no agent at all.
 *  - the store's lane records (store_lane_foreach): what was committed from each lane, and the
 *    lane's run dictionary.
 * Lanes are matched by their id in the store (arena id, lane index, generation).
 *
 * Exit status: 0 when the agent runs and reported no error in the last minute; 1 when it does
 * not run, is stale, or reported an error in the last minute (a health check for scripts).
 */
#include "cli.h"
#include "shmlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define STALE_MS 5000
#define ERROR_RECENT_MS 60000

/* ---- DATA/agent.status ----------------------------------------------------------------- */

struct agent_file {
    bool present, running, stopped;
    uint64_t pid, started_ms, updated_ms, fsync_interval_ms, batch_records, records_since_start,
        commits, last_commit_ms, last_sync_ms, unsynced, backlog, last_error_ms, rings,
        lanes_draining, sync_connected, rendered_ms_ago;
    bool live, loop_stuck; /* answered on the socket; its drain loop did not answer */
    char version[64], ring_dir[4096], last_error[512];
    char sync_server[1024], sync_transport[16]; /* empty: the agent does not replicate */
};

static void agent_file_read(const char *data_dir, struct agent_file *af)
{
    memset(af, 0, sizeof *af);
    char *doc = cli_agent_doc_read(data_dir);
    if (!doc)
        return;
    char state[32];
    cli_af_str(doc, "state", state, sizeof state);
    af->present = cli_af_find(doc, "pid") != NULL;
    af->stopped = !strcmp(state, "stopped");
    af->pid = cli_af_u64(doc, "pid");
    af->started_ms = cli_af_u64(doc, "started_ms");
    af->updated_ms = cli_af_u64(doc, "updated_ms");
    af->fsync_interval_ms = cli_af_u64(doc, "fsync_interval_ms");
    af->batch_records = cli_af_u64(doc, "batch_records");
    af->records_since_start = cli_af_u64(doc, "records_since_start");
    af->commits = cli_af_u64(doc, "commits");
    af->last_commit_ms = cli_af_u64(doc, "last_commit_ms");
    af->last_sync_ms = cli_af_u64(doc, "last_sync_ms");
    af->unsynced = cli_af_u64(doc, "unsynced");
    af->backlog = cli_af_u64(doc, "backlog");
    af->last_error_ms = cli_af_u64(doc, "last_error_ms");
    af->rings = cli_af_u64(doc, "rings");
    af->lanes_draining = cli_af_u64(doc, "lanes_draining");
    cli_af_str(doc, "version", af->version, sizeof af->version);
    cli_af_str(doc, "ring_dir", af->ring_dir, sizeof af->ring_dir);
    cli_af_str(doc, "last_error", af->last_error, sizeof af->last_error);
    cli_af_str(doc, "sync_server", af->sync_server, sizeof af->sync_server);
    cli_af_str(doc, "sync_transport", af->sync_transport, sizeof af->sync_transport);
    af->sync_connected = cli_af_u64(doc, "sync_connected");
    af->live = cli_af_find(doc, "loop_answering") != NULL;
    af->loop_stuck = af->live && !cli_af_u64(doc, "loop_answering");
    af->rendered_ms_ago = cli_af_u64(doc, "rendered_ms_ago");
    af->running = af->present && cli_agent_doc_running(doc);
    free(doc);
}

/* The rings to read: the agent's, else $SIDETRACK_RING_DIR, else the default. */
static const char *ring_dir_of(const struct agent_file *af)
{
    const char *env_ring = getenv("SIDETRACK_RING_DIR");
    return af->present && af->ring_dir[0] ? af->ring_dir
           : env_ring && *env_ring        ? env_ring
                                          : "/dev/shm/sidetrack";
}

/* ---- lanes ------------------------------------------------------------------------------ */

struct lane_row {
    uint8_t id[STORE_LANE_ID_LEN];
    char ring[256];
    uint32_t lane, gen, pid, uid;
    const char *state;
    bool in_ring, in_store, walked;
    uint64_t records, skipped, dropped, lost, spilled_records, spill_bytes;
    uint64_t waiting_records, lag_bytes;
    struct cli_strv runs;
};

struct lanes {
    struct lane_row *v;
    size_t n, cap;
};

static void lane_id_of(const uint8_t arena_id[16], uint32_t lane, uint32_t gen,
                       uint8_t id[STORE_LANE_ID_LEN])
{
    memcpy(id, arena_id, 16);
    for (int i = 0; i < 4; i++) {
        id[16 + i] = (uint8_t)(lane >> (24 - 8 * i));
        id[20 + i] = (uint8_t)(gen >> (24 - 8 * i));
    }
}

static struct lane_row *lane_find(struct lanes *l, const uint8_t id[STORE_LANE_ID_LEN])
{
    for (size_t i = 0; i < l->n; i++)
        if (!memcmp(l->v[i].id, id, STORE_LANE_ID_LEN))
            return &l->v[i];
    return NULL;
}

static struct lane_row *lane_add(struct lanes *l, const uint8_t id[STORE_LANE_ID_LEN])
{
    struct lane_row *row = lane_find(l, id);
    if (row)
        return row;
    struct lane_row z = {0};
    memcpy(z.id, id, STORE_LANE_ID_LEN);
    z.lane = (uint32_t)id[16] << 24 | (uint32_t)id[17] << 16 | (uint32_t)id[18] << 8 | id[19];
    z.gen = (uint32_t)id[20] << 24 | (uint32_t)id[21] << 16 | (uint32_t)id[22] << 8 | id[23];
    format_hex(id, 4, z.ring); /* until a ring file names it: the arena id's start */
    z.state = "stored";
    if (cli_push(&l->v, &l->n, &l->cap, sizeof z, &z) < 0)
        return NULL;
    return &l->v[l->n - 1];
}

static void lanes_free(struct lanes *l)
{
    for (size_t i = 0; i < l->n; i++)
        cli_strv_free(&l->v[i].runs);
    free(l->v);
}

/* What waits in a lane: published records from head on, at most one lap. */
static void lane_walk(const struct shmlog_arena *ar, uint32_t i, struct lane_row *row)
{
    struct shmlog_cursor cur;
    uint64_t head = atomic_load_explicit(&shmlog_lane_ctl(ar, i)->head, memory_order_acquire);
    shmlog_cursor_init(&cur, ar, i, head);
    while (cur.pos - head < ar->lane_size) {
        const struct shmlog_rec *rec;
        int n = shmlog_peek(&cur, &rec);
        if (n <= 0)
            break;
        if (rec->type != SHMLOG_REC_PAD)
            row->waiting_records++;
        cur.pos += (uint64_t)n;
    }
    row->lag_bytes = cur.pos - head;
    row->walked = true;
}

static void scan_ring(const char *dir, const char *name, struct lanes *l)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return; /* another user's ring: its lanes show from the store alone */
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size < sizeof(struct shmlog_arena_hdr)) {
        close(fd);
        return;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return;
    if (shmlog_arena_validate(m, (uint64_t)st.st_size) < 0) {
        munmap(m, (size_t)st.st_size);
        return;
    }
    const struct shmlog_arena_hdr *h = m;
    struct shmlog_arena ar = {
        .hdr = m, .base = m, .size = (size_t)st.st_size, .fd = -1,
        .lane_count = h->lane_count, .lane_size = h->lane_size, .clock = h->clock,
        .spill_quota = h->spill_quota, .file_uid = st.st_uid,
    };
    uint8_t arena_id[16];
    memcpy(arena_id, h->arena_id, 16);
    for (uint32_t i = 0; i < ar.lane_count; i++) {
        struct shmlog_lane_ctl *ctl = shmlog_lane_ctl(&ar, i);
        uint64_t owner = atomic_load_explicit(&ctl->owner, memory_order_acquire);
        if (owner == 0)
            continue;
        uint8_t id[STORE_LANE_ID_LEN];
        lane_id_of(arena_id, i, atomic_load_explicit(&ctl->generation, memory_order_acquire),
                   id);
        struct lane_row *row = lane_add(l, id);
        if (!row)
            break;
        row->in_ring = true;
        snprintf(row->ring, sizeof row->ring, "%s", name);
        row->pid = (uint32_t)SHMLOG_OWNER_PID(owner);
        row->uid = (uint32_t)st.st_uid; /* the kernel's word, as the agent records it */
        row->state = (owner & SHMLOG_OWNER_FREEING)  ? "freeing"
                     : (owner & SHMLOG_OWNER_CLOSED) ? "closed"
                     : shmlog_owner_dead(ctl, owner) ? "dead"
                                                     : "active";
        uint64_t v = atomic_load_explicit(&ctl->dropped_metrics, memory_order_relaxed);
        row->dropped = v > row->dropped ? v : row->dropped;
        v = atomic_load_explicit(&ctl->lost_records, memory_order_relaxed);
        row->lost = v > row->lost ? v : row->lost;
        row->spilled_records = atomic_load_explicit(&ctl->spilled_records, memory_order_relaxed);
        row->spill_bytes = atomic_load_explicit(&ctl->spill_bytes, memory_order_relaxed);
        lane_walk(&ar, i, row);
    }
    munmap(m, (size_t)st.st_size);
}

static void scan_rings(const char *dir, struct lanes *l, size_t *nrings)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 5 || strcmp(e->d_name + n - 5, ".ring") || strstr(e->d_name, ".tmp."))
            continue;
        (*nrings)++;
        scan_ring(dir, e->d_name, l);
    }
    closedir(d);
}

struct store_view {
    bool open;
    struct store_info info;
    bool have_info;
    uint64_t records_in;
};

static int collect_run(uint8_t kind, uint32_t num, const void *val, size_t len, void *arg)
{
    (void)num;
    if (kind != 'r' || len != 16)
        return 0;
    char hex[33];
    store_run_id_hex(val, hex);
    return cli_strv_add(arg, hex);
}

struct lane_ctx {
    struct lanes *l;
    struct store_txn *t;
};

static int collect_lane(const uint8_t id[STORE_LANE_ID_LEN], const struct store_lane *sl,
                        void *arg)
{
    struct lane_ctx *c = arg;
    struct lane_row *row = lane_add(c->l, id);
    if (!row)
        return -ENOMEM;
    row->in_store = true;
    row->records = sl->records;
    row->skipped = sl->skipped;
    row->dropped = sl->dropped > row->dropped ? sl->dropped : row->dropped;
    row->lost = sl->lost > row->lost ? sl->lost : row->lost;
    if (!row->in_ring) {
        row->pid = sl->pid;
        row->uid = sl->uid;
        row->state = sl->finished ? "finished" : "stored";
    }
    return store_lane_dict_foreach(c->t, id, collect_run, &row->runs);
}

/* Opens the store read-only, quietly when there is none yet (no agent ever ran). */
static int read_store(struct cli *c, struct lanes *l, struct store_view *sv)
{
    memset(sv, 0, sizeof *sv);
    int r = store_open(&c->store, c->data_dir, STORE_RDONLY, 0);
    if (r < 0) {
        c->store = NULL;
        if (r == -ENOENT)
            return CLI_OK;
        return cli_store_error(r, "cannot open the store at %s", c->data_dir);
    }
    sv->open = true;
    sv->have_info = store_info(c->store, &sv->info) == 0;
    struct store_txn *t;
    if ((r = store_begin(c->store, false, &t)) < 0)
        return cli_store_error(r, "cannot read the store at %s", c->data_dir);
    struct lane_ctx ctx = {l, t};
    r = store_counter_get(t, "records_in", &sv->records_in);
    if (r >= 0)
        r = store_lane_foreach(t, collect_lane, &ctx);
    store_abort(t);
    if (r < 0)
        return cli_store_error(r, "cannot read the lanes in the store at %s", c->data_dir);
    return CLI_OK;
}

static int by_ring_lane(const void *x, const void *y)
{
    const struct lane_row *a = x, *b = y;
    int c = strcmp(a->ring, b->ring);
    if (c)
        return c;
    if (a->lane != b->lane)
        return a->lane < b->lane ? -1 : 1;
    return a->gen < b->gen ? -1 : a->gen > b->gen;
}

/* ---- output ----------------------------------------------------------------------------- */

static void format_bytes(char *buf, size_t len, uint64_t v)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 " B", v);
    else
        snprintf(buf, len, "%.1f %s", d, unit[u]);
}

struct status {
    struct agent_file af;
    struct store_view sv;
    struct lanes l;
    const char *data_dir, *ring_dir;
    size_t nrings;
    bool error_recent, healthy;
    int64_t now_ms;
};

static void print_agent(const struct status *s)
{
    const struct agent_file *af = &s->af;
    char t1[64], t2[64], b1[32], b2[32], b3[32];
    if (af->running) {
        format_duration(t1, sizeof t1, s->now_ms - (int64_t)af->started_ms);
        printf("agent:       running (pid %" PRIu64 ", up %s, sidetrackd %s)\n", af->pid, t1,
               af->version);
        if (af->loop_stuck) {
            format_duration(t2, sizeof t2, (int64_t)af->rendered_ms_ago);
            printf("             but its drain loop has not answered for %s: a store write is "
                   "blocked (disk, or another process holding the store's write lock?)\n",
                   t2);
        }
    } else if (af->present) {
        format_time_ms(t1, sizeof t1, (int64_t)af->updated_ms, false);
        format_duration(t2, sizeof t2, s->now_ms - (int64_t)af->updated_ms);
        printf("agent:       sidetrackd is not running (last seen %s, %s ago, pid %" PRIu64
               "%s)\n",
               t1, t2, af->pid, af->stopped ? ", stopped cleanly" : ", no clean stop");
    } else {
        printf("agent:       sidetrackd is not running (never seen with this store)\n");
    }
    printf("data:        %s\n", s->data_dir);
    printf("rings:       %s (%zu ring file%s, %zu lane%s in use)\n", s->ring_dir, s->nrings,
           s->nrings == 1 ? "" : "s", s->l.n, s->l.n == 1 ? "" : "s");
    if (af->present) {
        format_time_ms(t1, sizeof t1, (int64_t)af->last_commit_ms, false);
        printf("stored:      %" PRIu64 " records in %" PRIu64 " commits since start (last "
               "commit %s)%s\n",
               af->records_since_start, af->commits, t1,
               af->backlog ? "; behind: the last pass hit the --batch limit" : "");
    }
    if (s->sv.open && s->sv.have_info) {
        const struct store_info *si = &s->sv.info;
        format_bytes(b1, sizeof b1, si->used_bytes);
        format_bytes(b2, sizeof b2, si->map_size);
        format_bytes(b3, sizeof b3, si->file_bytes);
        printf("store:       %s used of a %s map (%.0f%%), data.mdb %s; %" PRIu64
               " records stored in all\n",
               b1, b2, si->map_size ? 100.0 * (double)si->used_bytes / (double)si->map_size : 0.0,
               b3, s->sv.records_in);
    } else {
        printf("store:       none yet at %s\n", s->data_dir);
    }
    if (af->present) {
        if (af->fsync_interval_ms) {
            format_time_ms(t1, sizeof t1, (int64_t)af->last_sync_ms, false);
            printf("durability:  fsync every %" PRIu64 " ms: a power loss or kernel crash can "
                   "lose up to the last %" PRIu64 " ms of stored records (last fsync %s)\n",
                   af->fsync_interval_ms, af->fsync_interval_ms, t1);
        } else {
            printf("durability:  every commit is fsynced (durability window 0 ms)\n");
        }
        if (af->sync_server[0])
            printf("sync:        %s (%s%s%s; sidetrack sync status for more)\n",
                   af->sync_server, af->sync_transport, af->sync_transport[0] ? ", " : "",
                   af->running && af->sync_connected ? "connected" : "not connected");
    }
    if (af->last_error_ms) {
        format_time_ms(t1, sizeof t1, (int64_t)af->last_error_ms, false);
        format_duration(t2, sizeof t2, s->now_ms - (int64_t)af->last_error_ms);
        printf("last error:  %s (%s, %s ago)\n", af->last_error, t1, t2);
    } else if (af->present) {
        printf("last error:  none\n");
    }
}

static int print_lanes(const struct status *s)
{
    if (s->l.n == 0) {
        printf("\nno lanes in use\n");
        return CLI_OK;
    }
    struct table tb;
    /* right-aligned: LANE PID UID STORED WAITING LAG DROPPED LOST SPILLED */
    table_init(&tb, 12, 0x1u << 1 | 0x1u << 2 | 0x1u << 3 | 0x1u << 6 | 0x1u << 7 |
                            0x1u << 8 | 0x1u << 9 | 0x1u << 10 | 0x1u << 11);
    static const char *head[] = {"RING", "LANE", "PID", "UID", "STATE", "RUN",
                                 "STORED", "WAITING", "LAG", "DROPPED", "LOST", "SPILLED"};
    for (size_t i = 0; i < 12; i++)
        table_cell(&tb, head[i]);
    for (size_t i = 0; i < s->l.n; i++) {
        const struct lane_row *r = &s->l.v[i];
        char lag[32];
        table_cell(&tb, r->ring);
        table_cellf(&tb, "%u", r->lane);
        table_cellf(&tb, "%u", r->pid);
        table_cellf(&tb, "%u", r->uid);
        table_cell(&tb, r->state);
        if (r->runs.n == 0)
            table_cell(&tb, "-");
        else if (r->runs.n == 1)
            table_cell(&tb, r->runs.v[0]);
        else
            table_cellf(&tb, "%s +%zu", r->runs.v[0], r->runs.n - 1);
        if (r->in_store)
            table_cellf(&tb, "%" PRIu64, r->records);
        else
            table_cell(&tb, "-");
        if (r->walked) {
            format_bytes(lag, sizeof lag, r->lag_bytes);
            table_cellf(&tb, "%" PRIu64, r->waiting_records);
            table_cell(&tb, lag);
        } else {
            table_cell(&tb, "?");
            table_cell(&tb, "?");
        }
        table_cellf(&tb, "%" PRIu64, r->dropped);
        table_cellf(&tb, "%" PRIu64, r->lost);
        format_bytes(lag, sizeof lag, r->spill_bytes);
        table_cell(&tb, lag);
    }
    printf("\nlanes:\n");
    int r = table_print(&tb, stdout, "  ");
    table_free(&tb);
    return r < 0 ? cli_store_error(r, "cannot print the lanes") : CLI_OK;
}

static void print_json(const struct status *s)
{
    const struct agent_file *af = &s->af;
    struct json j;
    json_init(&j, stdout);
    json_begin_object(&j, false);
    json_key(&j, "healthy");
    json_bool(&j, s->healthy);
    json_key(&j, "agent");
    json_begin_object(&j, false);
    json_key(&j, "running");
    json_bool(&j, af->running);
    json_key(&j, "pid");
    if (af->present)
        json_uint(&j, af->pid);
    else
        json_null(&j);
    json_kv_string(&j, "version", af->version);
    json_kv_uint(&j, "started_ms", af->started_ms);
    json_kv_uint(&j, "last_seen_ms", af->updated_ms);
    json_key(&j, "stopped_cleanly");
    json_bool(&j, af->stopped);
    /* "socket": the agent answered just now; "file": DATA/agent.status, as last written */
    json_kv_string(&j, "source", af->live ? "socket" : "file");
    json_key(&j, "loop_answering");
    if (af->live)
        json_bool(&j, !af->loop_stuck);
    else
        json_null(&j);
    json_kv_uint(&j, "fsync_interval_ms", af->fsync_interval_ms);
    json_kv_uint(&j, "batch_records", af->batch_records);
    json_kv_uint(&j, "records_since_start", af->records_since_start);
    json_kv_uint(&j, "commits", af->commits);
    json_kv_uint(&j, "last_commit_ms", af->last_commit_ms);
    json_kv_uint(&j, "last_sync_ms", af->last_sync_ms);
    json_key(&j, "sync_server");
    if (af->sync_server[0])
        json_string(&j, af->sync_server);
    else
        json_null(&j);
    json_key(&j, "sync_transport");
    if (af->sync_transport[0])
        json_string(&j, af->sync_transport);
    else
        json_null(&j);
    json_key(&j, "backlog");
    json_bool(&j, af->backlog != 0);
    json_key(&j, "last_error");
    if (af->last_error_ms)
        json_string(&j, af->last_error);
    else
        json_null(&j);
    json_kv_uint(&j, "last_error_ms", af->last_error_ms);
    json_end_object(&j);
    json_key(&j, "durability_window_ms");
    if (af->present)
        json_uint(&j, af->fsync_interval_ms);
    else
        json_null(&j);
    json_kv_string(&j, "data_dir", s->data_dir);
    json_kv_string(&j, "ring_dir", s->ring_dir);
    json_key(&j, "store");
    if (s->sv.open) {
        json_begin_object(&j, false);
        json_kv_uint(&j, "map_size", s->sv.info.map_size);
        json_kv_uint(&j, "used_bytes", s->sv.info.used_bytes);
        json_kv_uint(&j, "file_bytes", s->sv.info.file_bytes);
        json_kv_uint(&j, "records_in", s->sv.records_in);
        json_end_object(&j);
    } else {
        json_null(&j);
    }
    json_key(&j, "lanes");
    json_begin_array(&j, false);
    for (size_t i = 0; i < s->l.n; i++) {
        const struct lane_row *r = &s->l.v[i];
        json_begin_object(&j, false);
        json_kv_string(&j, "ring", r->ring);
        json_kv_uint(&j, "lane", r->lane);
        json_kv_uint(&j, "generation", r->gen);
        json_kv_uint(&j, "pid", r->pid);
        json_kv_uint(&j, "uid", r->uid);
        json_kv_string(&j, "state", r->state);
        json_key(&j, "runs");
        json_begin_array(&j, true);
        for (size_t k = 0; k < r->runs.n; k++)
            json_string(&j, r->runs.v[k]);
        json_end_array(&j);
        json_key(&j, "records");
        if (r->in_store)
            json_uint(&j, r->records);
        else
            json_null(&j);
        json_key(&j, "waiting_records");
        if (r->walked)
            json_uint(&j, r->waiting_records);
        else
            json_null(&j);
        json_key(&j, "lag_bytes");
        if (r->walked)
            json_uint(&j, r->lag_bytes);
        else
            json_null(&j);
        json_kv_uint(&j, "dropped", r->dropped);
        json_kv_uint(&j, "lost", r->lost);
        json_kv_uint(&j, "skipped", r->skipped);
        json_kv_uint(&j, "spilled_records", r->spilled_records);
        json_kv_uint(&j, "spill_bytes", r->spill_bytes);
        json_end_object(&j);
    }
    json_end_array(&j);
    json_end_object(&j);
    json_finish(&j);
}

static void status_usage(FILE *f)
{
    fputs("Usage: sidetrack status [--json]\n"
          "\n"
          "Is sidetrackd running and keeping up? Shows the agent (pid, progress, store size\n"
          "and map use, durability window, last error) and every lane in use in the rings:\n"
          "its producer's pid and uid, its runs, the records stored from it, the records\n"
          "waiting in it (LAG: their bytes), and its dropped, lost and spilled counters.\n"
          "Works while no agent runs (the rings are read directly, read-only).\n"
          "\n"
          "Options:\n"
          "      --json      one JSON document, for scripts\n"
          "  -d, --data DIR  the store's directory\n"
          "  -h, --help      show this help\n"
          "\n"
          "The running agent is asked on its socket DATA/agent.sock (fresh figures, and\n"
          "whether its drain loop answers); without one, DATA/agent.status is read.\n"
          "\n"
          "Exit status: 0 when the agent runs, its drain loop answers and it reported no\n"
          "error in the last minute; 1 otherwise.\n",
          f);
}

int cmd_status(struct cli *c, int argc, char **argv)
{
    static const struct cli_syntax syntax = {"status", cli_json_options, status_usage,
                                             .max_args = 0};
    bool json = false;
    int parsed = cli_args_json(c, &syntax, argc, argv, &json, NULL);
    if (parsed != CLI_ARG_END)
        return parsed;
    if (cli_data_dir(c) != CLI_OK)
        return CLI_FAIL;

    static struct status s;
    memset(&s, 0, sizeof s);
    s.data_dir = c->data_dir;
    s.now_ms = cli_now_ms();
    agent_file_read(c->data_dir, &s.af);
    s.ring_dir = ring_dir_of(&s.af);
    int rc = read_store(c, &s.l, &s.sv);
    if (rc == CLI_OK) {
        scan_rings(s.ring_dir, &s.l, &s.nrings);
        if (s.l.n)
            qsort(s.l.v, s.l.n, sizeof *s.l.v, by_ring_lane);
        s.error_recent = s.af.last_error_ms &&
                         s.now_ms - (int64_t)s.af.last_error_ms < ERROR_RECENT_MS;
        s.healthy = s.af.running && !s.af.loop_stuck && !s.error_recent;
        if (json) {
            print_json(&s);
        } else {
            print_agent(&s);
            rc = print_lanes(&s);
        }
        if (rc == CLI_OK && !s.healthy)
            rc = CLI_FAIL;
    }
    lanes_free(&s.l);
    return rc;
}

/* ---- sidetrack wait -------------------------------------------------------------------- */

static void wait_usage(FILE *f)
{
    fputs("Usage: sidetrack wait [--timeout SEC]\n"
          "\n"
          "Waits until every record published in the rings is stored: the agent has\n"
          "drained every lane (what a training process logged before it returned is then\n"
          "in the store, and `sidetrack runs`, `metrics` or `models` see it). For scripts\n"
          "that read right after a training job, instead of a sleep.\n"
          "\n"
          "Options:\n"
          "  -t, --timeout SEC  give up after SEC seconds (default 30)\n"
          "  -d, --data DIR     the store's directory (its agent names the ring directory)\n"
          "  -h, --help         show this help\n"
          "\n"
          "Exit status: 0 when nothing waits; 1 when records still wait at the timeout (is\n"
          "sidetrackd running? see sidetrack status); 2 a usage error.\n",
          f);
}

int cmd_wait(struct cli *c, int argc, char **argv)
{
    enum { OPT_TIMEOUT = CLI_OPT_FIRST };
    static const struct cli_option opts[] = {
        CLI_COMMON_OPTIONS, {"timeout", 't', true, OPT_TIMEOUT}, {0}};
    static const struct cli_syntax syntax = {"wait", opts, wait_usage, .max_args = 0};
    struct cli_args a;
    cli_args_init(&a, c, &syntax, argc, argv);
    double timeout_s = 30;
    const char *v;
    int r;
    while ((r = cli_args_next(&a, &v)) != CLI_ARG_END) {
        if (r == CLI_ARG_EXIT)
            return a.exit;
        if (r == OPT_TIMEOUT) {
            char *end;
            timeout_s = strtod(v, &end);
            if (*end || end == v || !(timeout_s >= 0 && timeout_s <= 86400))
                return cli_usage_error("wait", "--timeout takes seconds from 0 to 86400, "
                                               "not '%s'", v);
        }
    }
    if (cli_data_dir(c) != CLI_OK)
        return CLI_FAIL;
    static struct agent_file af;
    agent_file_read(c->data_dir, &af);
    const char *ring_dir = ring_dir_of(&af);
    int64_t deadline = cli_now_ms() + (int64_t)(timeout_s * 1000);
    for (;;) {
        struct lanes l = {0};
        size_t nrings = 0;
        scan_rings(ring_dir, &l, &nrings);
        uint64_t waiting = 0, lanes = 0;
        for (size_t i = 0; i < l.n; i++) {
            waiting += l.v[i].waiting_records;
            lanes += l.v[i].waiting_records > 0;
        }
        lanes_free(&l);
        if (!waiting)
            return CLI_OK;
        if (cli_now_ms() >= deadline) {
            cli_error("%" PRIu64 " records still wait in %" PRIu64 " lane%s of %s after %g s: "
                      "is sidetrackd running? (sidetrack status)",
                      waiting, lanes, lanes == 1 ? "" : "s", ring_dir, timeout_s);
            return CLI_FAIL;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}
