/* sysmetrics.c — the node's CPU, memory, disk, network and GPU figures (sysmetrics.h).
 *
 * Units and formulas follow MLflow's system metrics monitors (psutil, pynvml), so that the
 * figures mean the same as an MLflow run's: megabytes are 10^6 bytes; CPU utilization is the
 * share of non-idle jiffies (idle and iowait count as idle) between two /proc/stat readings;
 * memory used is MemTotal - MemAvailable; network figures count from when the sampler was
 * opened.
 *
 * Network: psutil sums every interface, so a byte that leaves a container crosses its veth,
 * the bridge and the NIC and is counted three times. Here only physical interfaces count
 * (those with a device entry in sys/class/net: NICs, Wi-Fi, InfiniBand; not lo, bridges,
 * veth, tun, bonds or VLANs, whose traffic their physical members carry). Without any
 * physical interface (inside a container's own network namespace, where the veth is the
 * only way out) every interface but lo counts; without sys/class/net, proc/net/dev's
 * interfaces but lo. Each interface's counters are followed on their own, so that one that
 * goes away or is recreated never makes the totals fall.
 */
#include "sysmetrics.h"
#include "store.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* The few NVML declarations used (no NVML header in Debian's main); ABI as in nvml.h. */
typedef int nvml_return;
typedef struct nvml_device *nvml_device;
struct nvml_utilization {
    unsigned int gpu, memory;
};
struct nvml_memory {
    unsigned long long total, free, used;
};
#define NVML_TEMPERATURE_GPU 0

struct nvml {
    void *lib;
    nvml_return (*init)(void);
    nvml_return (*shutdown)(void);
    nvml_return (*count)(unsigned int *);
    nvml_return (*handle)(unsigned int, nvml_device *);
    nvml_return (*util)(nvml_device, struct nvml_utilization *);
    nvml_return (*mem)(nvml_device, struct nvml_memory *);
    nvml_return (*temp)(nvml_device, int, unsigned int *);
    nvml_return (*power)(nvml_device, unsigned int *);
    nvml_return (*limit)(nvml_device, unsigned int *);
};

/* One interface's byte counters, as last read. */
struct sysm_netif {
    char name[32];
    unsigned long long rx, tx;
    bool physical; /* has a device entry in sys/class/net */
};

/* Where the network counters came from; a change of source starts the counts afresh. */
enum sysm_net_source {
    SYSM_NET_NONE,
    SYSM_NET_SYS_PHYSICAL, /* sys/class/net, interfaces with a device entry */
    SYSM_NET_SYS_ALL,      /* sys/class/net without any such interface: all but lo */
    SYSM_NET_PROC,         /* proc/net/dev (no sys/class/net): all but lo */
};

struct sysm_netlist {
    enum sysm_net_source src;
    size_t n, cap;
    struct sysm_netif *ifs;
};

struct sysm {
    char root[4096];
    char *disk_path;
    bool have_cpu;
    unsigned long long cpu_total, cpu_idle;
    bool have_net;
    struct sysm_netlist net, net_next; /* the last reading, and room for the next */
    unsigned long long net_rx, net_tx; /* bytes since the sampler was opened */
    struct nvml nv;
    unsigned ngpus;
    nvml_device gpus[SYSM_MAX_GPUS];
};

static FILE *open_proc(const struct sysm *s, const char *rel)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", s->root, rel);
    return fopen(path, "re");
}

/* The aggregate "cpu" line of proc/stat: all jiffies (guest time is already in user) and the
 * idle ones (idle + iowait). */
static bool read_cpu(const struct sysm *s, unsigned long long *total, unsigned long long *idle)
{
    FILE *f = open_proc(s, "proc/stat");
    if (!f)
        return false;
    char line[1024];
    bool ok = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v[8] = {0};
        int n = sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                       &v[3], &v[4], &v[5], &v[6], &v[7]);
        if (n >= 4) {
            *total = 0;
            for (int i = 0; i < 8; i++)
                *total += v[i];
            *idle = v[3] + v[4];
            ok = true;
            break;
        }
    }
    fclose(f);
    return ok;
}

static bool netlist_add(struct sysm_netlist *l, const char *name, unsigned long long rx,
                        unsigned long long tx, bool physical)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct sysm_netif *n = realloc(l->ifs, cap * sizeof *n);
        if (!n)
            return false;
        l->ifs = n;
        l->cap = cap;
    }
    struct sysm_netif *i = &l->ifs[l->n++];
    snprintf(i->name, sizeof i->name, "%s", name);
    i->rx = rx;
    i->tx = tx;
    i->physical = physical;
    return true;
}

static bool read_u64(const char *path, unsigned long long *v)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fscanf(f, "%llu", v) == 1;
    fclose(f);
    return ok;
}

/* sys/class/net: the physical interfaces, or when there is none every one but lo. False
 * when the directory is missing or lists no interface whose counters can be read. */
static bool read_net_sys(const struct sysm *s, struct sysm_netlist *l)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/sys/class/net", s->root);
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *e;
    size_t physical = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof l->ifs->name)
            continue;
        unsigned long long rx, tx;
        struct stat st;
        snprintf(path, sizeof path, "%s/sys/class/net/%s/statistics/rx_bytes", s->root,
                 e->d_name);
        if (!read_u64(path, &rx))
            continue;
        snprintf(path, sizeof path, "%s/sys/class/net/%s/statistics/tx_bytes", s->root,
                 e->d_name);
        if (!read_u64(path, &tx))
            continue;
        /* lstat: the entry is a link to the bus device; whether that resolves is no matter. */
        snprintf(path, sizeof path, "%s/sys/class/net/%s/device", s->root, e->d_name);
        bool phys = lstat(path, &st) == 0;
        if (!phys && !strcmp(e->d_name, "lo"))
            continue;
        if (!netlist_add(l, e->d_name, rx, tx, phys))
            break;
        physical += phys;
    }
    closedir(d);
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->ifs[i].physical || !physical)
            l->ifs[kept++] = l->ifs[i];
    l->n = kept;
    l->src = physical ? SYSM_NET_SYS_PHYSICAL : SYSM_NET_SYS_ALL;
    return kept > 0;
}

/* proc/net/dev, every interface but lo: for a container without sys/. */
static bool read_net_proc(const struct sysm *s, struct sysm_netlist *l)
{
    FILE *f = open_proc(s, "proc/net/dev");
    if (!f)
        return false;
    char line[1024];
    bool ok = false;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue; /* the two header lines */
        *colon = '\0';
        char *name = line + strspn(line, " \t");
        unsigned long long v[9];
        if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) != 9)
            continue;
        ok = true;
        if (!strcmp(name, "lo") || strlen(name) >= sizeof l->ifs->name)
            continue;
        if (!netlist_add(l, name, v[0], v[8], false))
            break;
    }
    fclose(f);
    l->src = SYSM_NET_PROC;
    return ok;
}

/* Reads the counters into s->net_next; false when neither source is there. */
static bool read_net(struct sysm *s)
{
    struct sysm_netlist *l = &s->net_next;
    l->n = 0;
    l->src = SYSM_NET_NONE;
    if (read_net_sys(s, l))
        return true;
    l->n = 0;
    return read_net_proc(s, l);
}

/* Adds what each interface moved since the last reading, and makes this reading the last.
 * base: only take the reading (the first one, or after the source changed). */
static void net_advance(struct sysm *s, bool base)
{
    struct sysm_netlist *cur = &s->net_next, *prev = &s->net;
    if (cur->src != prev->src)
        base = true;
    for (size_t i = 0; !base && i < cur->n; i++) {
        const struct sysm_netif *c = &cur->ifs[i];
        const struct sysm_netif *p = NULL;
        for (size_t j = 0; j < prev->n && !p; j++) /* a handful of interfaces */
            if (!strcmp(prev->ifs[j].name, c->name))
                p = &prev->ifs[j];
        /* A new interface, or one whose counters restarted (recreated under the same name),
         * moved all it counts since the last reading; psutil counts it so as well. */
        s->net_rx += p && c->rx >= p->rx ? c->rx - p->rx : c->rx;
        s->net_tx += p && c->tx >= p->tx ? c->tx - p->tx : c->tx;
    }
    struct sysm_netlist tmp = *prev;
    *prev = *cur;
    *cur = tmp;
}

static void nvml_load(struct nvml *nv, unsigned *ngpus, nvml_device *gpus, const char *lib)
{
    *ngpus = 0;
    nv->lib = dlopen(lib ? lib : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!nv->lib)
        return; /* no driver: no GPU metrics */
    /* ISO C has no object-to-function pointer conversion; this is dlsym(3)'s idiom. */
    *(void **)&nv->init = dlsym(nv->lib, "nvmlInit_v2");
    *(void **)&nv->shutdown = dlsym(nv->lib, "nvmlShutdown");
    *(void **)&nv->count = dlsym(nv->lib, "nvmlDeviceGetCount_v2");
    *(void **)&nv->handle = dlsym(nv->lib, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&nv->util = dlsym(nv->lib, "nvmlDeviceGetUtilizationRates");
    *(void **)&nv->mem = dlsym(nv->lib, "nvmlDeviceGetMemoryInfo");
    *(void **)&nv->temp = dlsym(nv->lib, "nvmlDeviceGetTemperature");
    *(void **)&nv->power = dlsym(nv->lib, "nvmlDeviceGetPowerUsage");
    *(void **)&nv->limit = dlsym(nv->lib, "nvmlDeviceGetEnforcedPowerLimit");
    unsigned n = 0;
    if (!nv->init || !nv->shutdown || !nv->count || !nv->handle || nv->init() != 0) {
        dlclose(nv->lib);
        nv->lib = NULL;
        return;
    }
    if (nv->count(&n) != 0)
        n = 0;
    for (unsigned i = 0; i < n && *ngpus < SYSM_MAX_GPUS; i++)
        if (nv->handle(i, &gpus[*ngpus]) == 0)
            (*ngpus)++;
}

int sysm_open(struct sysm **out, const char *root, const char *disk_path, const char *nvml_lib)
{
    struct sysm *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    snprintf(s->root, sizeof s->root, "%s", root && *root ? root : "/");
    if (disk_path && !(s->disk_path = strdup(disk_path))) {
        free(s);
        return -ENOMEM;
    }
    s->have_cpu = read_cpu(s, &s->cpu_total, &s->cpu_idle);
    if ((s->have_net = read_net(s)))
        net_advance(s, true);
    nvml_load(&s->nv, &s->ngpus, s->gpus, nvml_lib);
    *out = s;
    return 0;
}

void sysm_close(struct sysm *s)
{
    if (!s)
        return;
    if (s->nv.lib) {
        s->nv.shutdown();
        dlclose(s->nv.lib);
    }
    free(s->net.ifs);
    free(s->net_next.ifs);
    free(s->disk_path);
    free(s);
}

unsigned sysm_gpu_count(const struct sysm *s)
{
    return s->ngpus;
}

static void put(struct sysm_value *out, size_t *n, const char *key, double v)
{
    if (*n >= SYSM_MAX_VALUES)
        return;
    snprintf(out[*n].key, sizeof out[*n].key, "system/%s", key);
    out[*n].value = v;
    (*n)++;
}

static void put_gpu(struct sysm_value *out, size_t *n, unsigned i, const char *what, double v)
{
    char key[56];
    snprintf(key, sizeof key, "gpu_%u_%s", i, what);
    put(out, n, key, v);
}

static void sample_cpu(struct sysm *s, struct sysm_value *out, size_t *n)
{
    unsigned long long total, idle;
    if (!read_cpu(s, &total, &idle))
        return;
    /* Without an earlier reading (the file appeared later) this one becomes the base. */
    if (s->have_cpu && total > s->cpu_total && idle >= s->cpu_idle) {
        unsigned long long dt = total - s->cpu_total, di = idle - s->cpu_idle;
        double busy = di > dt ? 0.0 : (double)(dt - di);
        put(out, n, "cpu_utilization_percentage", 100.0 * busy / (double)dt);
    }
    s->have_cpu = true;
    s->cpu_total = total;
    s->cpu_idle = idle;
}

static void sample_memory(const struct sysm *s, struct sysm_value *out, size_t *n)
{
    FILE *f = open_proc(s, "proc/meminfo");
    if (!f)
        return;
    char line[256];
    unsigned long long total = 0, avail = 0, v;
    bool have_total = false, have_avail = false;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %llu kB", &v) == 1) {
            total = v;
            have_total = true;
        } else if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) {
            avail = v;
            have_avail = true;
        }
    }
    fclose(f);
    if (!have_total || !have_avail || total == 0 || avail > total)
        return;
    double used = (double)(total - avail) * 1024.0;
    put(out, n, "system_memory_usage_megabytes", used / 1e6);
    put(out, n, "system_memory_usage_percentage", 100.0 * used / ((double)total * 1024.0));
}

static void sample_disk(const struct sysm *s, struct sysm_value *out, size_t *n)
{
    struct statvfs v;
    if (!s->disk_path || statvfs(s->disk_path, &v) < 0 || v.f_blocks == 0)
        return;
    double bs = (double)v.f_frsize;
    double used = (double)(v.f_blocks - v.f_bfree) * bs, avail = (double)v.f_bavail * bs;
    /* psutil's percentage: of what an unprivileged user could have (used + available). */
    put(out, n, "disk_usage_percentage", used + avail > 0 ? 100.0 * used / (used + avail) : 0);
    put(out, n, "disk_usage_megabytes", used / 1e6);
    put(out, n, "disk_available_megabytes", avail / 1e6);
}

static void sample_net(struct sysm *s, struct sysm_value *out, size_t *n)
{
    if (!read_net(s))
        return;
    net_advance(s, !s->have_net); /* appeared later: this reading is the base */
    s->have_net = true;
    put(out, n, "network_receive_megabytes", (double)s->net_rx / 1e6);
    put(out, n, "network_transmit_megabytes", (double)s->net_tx / 1e6);
}

static void sample_gpus(struct sysm *s, struct sysm_value *out, size_t *n)
{
    struct nvml *nv = &s->nv;
    for (unsigned i = 0; i < s->ngpus; i++) {
        nvml_device d = s->gpus[i];
        struct nvml_utilization u;
        struct nvml_memory m;
        unsigned int t, mw, limit;
        if (nv->util && nv->util(d, &u) == 0)
            put_gpu(out, n, i, "utilization_percentage", u.gpu);
        if (nv->mem && nv->mem(d, &m) == 0 && m.total > 0) {
            put_gpu(out, n, i, "memory_usage_percentage", 100.0 * (double)m.used / (double)m.total);
            put_gpu(out, n, i, "memory_usage_megabytes", (double)m.used / 1e6);
        }
        if (nv->power && nv->power(d, &mw) == 0) {
            put_gpu(out, n, i, "power_usage_watts", mw / 1000.0);
            if (nv->limit && nv->limit(d, &limit) == 0 && limit > 0)
                put_gpu(out, n, i, "power_usage_percentage", 100.0 * mw / limit);
        }
        if (nv->temp && nv->temp(d, NVML_TEMPERATURE_GPU, &t) == 0)
            put_gpu(out, n, i, "temperature", t);
    }
}

/* cgroup v2 only: under v1 (or a hybrid tree) proc/PID/cgroup has no "0::" line. */
int sysm_cgroup_memory(const struct sysm *s, uint32_t pid, double *used, double *limit)
{
    if (!pid)
        return -ENOENT;
    char rel[64], line[4096], cg[4096] = "";
    snprintf(rel, sizeof rel, "proc/%u/cgroup", pid);
    FILE *f = open_proc(s, rel);
    if (!f)
        return -ENOENT;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "0::/", 4)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(cg, sizeof cg, "%s", line + 3);
            break;
        }
    fclose(f);
    /* A cgroup outside our cgroup namespace shows as "/../..": not ours to read. */
    if (!cg[0] || strstr(cg, "/.."))
        return -ENOENT;
    char dir[8400], path[8500];
    for (;;) {
        snprintf(dir, sizeof dir, "%s/sys/fs/cgroup%s", s->root, cg);
        unsigned long long max, cur, v;
        snprintf(path, sizeof path, "%s/memory.max", dir);
        if (read_u64(path, &max) && max > 0) { /* "max" reads as no number */
            snprintf(path, sizeof path, "%s/memory.current", dir);
            if (!read_u64(path, &cur))
                return -ENOENT;
            /* The working set, as kubelet and docker stats count it: page cache not used
             * lately is reclaimed before the OOM killer comes. */
            snprintf(path, sizeof path, "%s/memory.stat", dir);
            if ((f = fopen(path, "re"))) {
                while (fgets(line, sizeof line, f))
                    if (sscanf(line, "inactive_file %llu", &v) == 1) {
                        cur -= v < cur ? v : cur;
                        break;
                    }
                fclose(f);
            }
            *used = (double)cur;
            *limit = (double)max;
            return 0;
        }
        char *slash = strrchr(cg, '/');
        if (!slash || slash == cg)
            return -ENOENT; /* the root cgroup has no limit */
        *slash = '\0';
    }
}

size_t sysm_sample(struct sysm *s, struct sysm_value *out)
{
    size_t n = 0;
    sample_cpu(s, out, &n);
    sample_memory(s, out, &n);
    sample_disk(s, out, &n);
    sample_net(s, out, &n);
    sample_gpus(s, out, &n);
    return n;
}

/* ---- recording on the node's active runs --------------------------------------------- */

struct sysm_active {
    uint8_t id[16];
    uint32_t pid;
    int64_t step; /* the next sample's step; -1: not known yet (read from the store) */
};

struct sysm_recorder {
    struct sysm *s;
    uint64_t interval_ns; /* 0: off */
    uint64_t next_ns, last_ns; /* the next sample is due; the last one (or the open) was */
    char host[256];
    struct sysm_active *runs, *old;
    size_t nruns, nold, cap, oldcap;
};

void sysm_recorder_set_interval(struct sysm_recorder *r, uint32_t interval_s)
{
    r->interval_ns = (uint64_t)interval_s * 1000000000ull;
    r->next_ns = r->last_ns + r->interval_ns; /* already past: the next tick samples */
}

uint32_t sysm_recorder_interval(const struct sysm_recorder *r)
{
    return (uint32_t)(r->interval_ns / 1000000000ull);
}

int sysm_recorder_open(struct sysm_recorder **out, const char *root, const char *data_dir,
                       uint32_t interval_s, uint64_t now_ns)
{
    struct sysm_recorder *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    int e = sysm_open(&r->s, root, data_dir, NULL);
    if (e < 0) {
        free(r);
        return e;
    }
    gethostname(r->host, sizeof r->host - 1);
    r->last_ns = now_ns;
    sysm_recorder_set_interval(r, interval_s);
    *out = r;
    return 0;
}

void sysm_recorder_close(struct sysm_recorder *r)
{
    if (!r)
        return;
    sysm_close(r->s);
    free(r->runs);
    free(r->old);
    free(r);
}

const struct sysm *sysm_recorder_sampler(const struct sysm_recorder *r)
{
    return r->s;
}

/* Builds the active set: RUNNING, not deleted, started on this host. A run already in the
 * previous set keeps its step count. */
static int collect_run(const struct store_run *run, void *arg)
{
    struct sysm_recorder *r = arg;
    if (run->status != STORE_RUN_RUNNING || run->deleted || strcmp(run->host, r->host))
        return 0;
    if (r->nruns == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct sysm_active *n = realloc(r->runs, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        r->runs = n;
        r->cap = cap;
    }
    struct sysm_active *a = &r->runs[r->nruns++];
    memcpy(a->id, run->id, 16);
    a->pid = run->pid;
    a->step = -1;
    for (size_t i = 0; i < r->nold; i++) /* both in id order: could merge; sets are small */
        if (!memcmp(r->old[i].id, run->id, 16)) {
            a->step = r->old[i].step;
            break;
        }
    return 0;
}

int sysm_recorder_tick(struct sysm_recorder *r, struct store *st, uint64_t now_ns)
{
    if (!r || !r->interval_ns)
        return 0;
    if (r->next_ns > now_ns + r->interval_ns)
        r->next_ns = now_ns; /* the clock was set back: sample now rather than much later */
    if (now_ns < r->next_ns)
        return 0;
    r->next_ns = now_ns + r->interval_ns;
    r->last_ns = now_ns;
    struct sysm_value v[SYSM_MAX_VALUES];
    size_t nv = sysm_sample(r->s, v);

    /* The previous set becomes "old" so that steps carry over; the refresh is one walk of the
     * run table per interval. */
    struct sysm_active *tmp = r->old;
    size_t tmpcap = r->oldcap;
    r->old = r->runs;
    r->oldcap = r->cap;
    r->nold = r->nruns;
    r->runs = tmp;
    r->cap = tmpcap;
    r->nruns = 0;

    struct store_txn *t;
    int e = store_begin(st, true, &t);
    if (e < 0)
        return e;
    if ((e = store_run_foreach(t, collect_run, r)) < 0)
        goto fail;
    if (!r->nruns || !nv) {
        store_abort(t);
        return 0;
    }
    /* A run new to this set goes on after the samples already stored on it (an agent that
     * restarted while it trained), so that its steps do not start over at 0. */
    for (size_t i = 0; i < r->nruns; i++) {
        if (r->runs[i].step >= 0)
            continue;
        struct store_metric_summary sm;
        e = store_metric_summary_get(t, r->runs[i].id, v[0].key, &sm);
        if (e < 0 && e != -ENOENT)
            goto fail;
        r->runs[i].step = e == 0 && sm.count ? sm.latest.step + 1 : 0;
    }
    int64_t ts = (int64_t)(now_ns / 1000000);
    struct timespec rt;
    if (clock_gettime(CLOCK_REALTIME, &rt) == 0)
        ts = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
    for (size_t i = 0; i < r->nruns; i++) {
        struct store_point p = {.step = r->runs[i].step, .ts_ms = ts};
        for (size_t k = 0; k < nv; k++) {
            p.value = v[k].value;
            if ((e = store_metric_append(t, r->runs[i].id, v[k].key, &p, 1)) < 0)
                goto fail;
        }
        double used, limit;
        if (sysm_cgroup_memory(r->s, r->runs[i].pid, &used, &limit) == 0) {
            p.value = used / 1e6;
            if ((e = store_metric_append(t, r->runs[i].id,
                                         "system/cgroup_memory_usage_megabytes", &p, 1)) < 0)
                goto fail;
            p.value = 100.0 * used / limit;
            if ((e = store_metric_append(t, r->runs[i].id,
                                         "system/cgroup_memory_usage_percentage", &p, 1)) < 0)
                goto fail;
        }
    }
    if ((e = store_commit(t)) < 0)
        return e;
    for (size_t i = 0; i < r->nruns; i++)
        r->runs[i].step++;
    return (int)r->nruns;

fail:
    store_abort(t);
    /* Keep the last good set, and its step counts, for the next try. */
    tmp = r->runs;
    tmpcap = r->cap;
    r->runs = r->old;
    r->cap = r->oldcap;
    r->nruns = r->nold;
    r->old = tmp;
    r->oldcap = tmpcap;
    r->nold = 0;
    return e;
}
