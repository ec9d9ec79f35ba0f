/* sysmetrics.h — the node's system metrics (CPU, memory, disk, network, GPUs), sampled by the
 * agent and recorded on the runs active on the node under MLflow's system/ key names.
 *
 * Sampling happens in the agent, never in a training process: a producer pays nothing.
 * CPU and memory come from ROOT/proc; network from ROOT/sys/class/net (physical interfaces
 * only), or ROOT/proc/net/dev without it; a run's cgroup memory from ROOT/proc/PID/cgroup and
 * ROOT/sys/fs/cgroup; disk from statvfs() of the store's directory; GPUs from NVML loaded at
 * run time (dlopen "libnvidia-ml.so.1"; absent: no GPU metrics). ROOT is "/" unless given:
 * tests point it at a fake tree ($SIDETRACK_PROC_ROOT, see docs/agent.md; meant for tests
 * only). A file that is missing or unreadable skips its metrics for that sample; it is never
 * an error.
 */
#ifndef SIDETRACK_SYSMETRICS_H
#define SIDETRACK_SYSMETRICS_H

#include <stddef.h>
#include <stdint.h>

#define SYSM_MAX_GPUS 16
#define SYSM_MAX_VALUES (8 + 6 * SYSM_MAX_GPUS)

struct sysm;

struct sysm_value {
    char key[64]; /* "system/cpu_utilization_percentage", ... */
    double value;
};

/* Opens a sampler. root: the tree holding proc/ (NULL: "/"); disk_path: whose file system's
 * usage is reported (NULL: none); nvml_lib: the NVML library to dlopen (NULL:
 * "libnvidia-ml.so.1"). Takes the first CPU and network readings, so that the first sample
 * has a CPU utilization and network counts from then. 0 or -ENOMEM. */
int sysm_open(struct sysm **s, const char *root, const char *disk_path, const char *nvml_lib);
void sysm_close(struct sysm *s);
/* Number of GPUs NVML reported (0 without NVML, a driver or a GPU). */
unsigned sysm_gpu_count(const struct sysm *s);
/* Takes one sample: fills out[] (room for SYSM_MAX_VALUES) and returns how many values. */
size_t sysm_sample(struct sysm *s, struct sysm_value *out);
/* The memory of the cgroup (v2) that limits process pid: the nearest cgroup, from pid's own
 * (ROOT/proc/PID/cgroup) up to the root of ROOT/sys/fs/cgroup, whose memory.max is a number.
 * used: its memory.current less inactive_file (memory.stat), in bytes; limit: memory.max.
 * 0, or -ENOENT when pid is 0, gone, under cgroup v1, or no cgroup above it has a limit. */
int sysm_cgroup_memory(const struct sysm *s, uint32_t pid, double *used, double *limit);

/* The agent's side: every interval, one sample appended (one point per key; step = the
 * number of samples this agent recorded on that run before; timestamp = now) to every run of
 * the store that is RUNNING, not deleted and started on this host; to a run whose process
 * (store_run.pid) has a cgroup memory limit, also system/cgroup_memory_usage_megabytes and
 * system/cgroup_memory_usage_percentage (sysm_cgroup_memory()). One write transaction per
 * interval, so the points are journaled and replicated like any other. Call it from the
 * thread that writes the store, with no transaction of its own open. */
struct store;
struct sysm_recorder;
/* data_dir: the store's directory (its file system is the disk reported). interval_s 0: the
 * recorder is open (the sampler too) but records nothing until sysm_recorder_set_interval()
 * gives it an interval. now_ns: the clock of sysm_recorder_tick(). */
int sysm_recorder_open(struct sysm_recorder **r, const char *root, const char *data_dir,
                       uint32_t interval_s, uint64_t now_ns);
void sysm_recorder_close(struct sysm_recorder *r); /* NULL accepted */
const struct sysm *sysm_recorder_sampler(const struct sysm_recorder *r);
/* Changes the interval live (the agent's SIGHUP): the next sample is due interval_s after the
 * previous one (or after the open when there was none), and when that time has already
 * passed, at the next tick. 0 stops sampling until an interval is set again; step counts and
 * the network baseline are kept, so a run's steps go on where they stopped and the network
 * figures still count from the open. */
void sysm_recorder_set_interval(struct sysm_recorder *r, uint32_t interval_s);
uint32_t sysm_recorder_interval(const struct sysm_recorder *r); /* 0: off */
/* Samples and records when the interval has passed since the last time (now_ns: any clock
 * that only goes forward, the same on every call); never while the interval is 0. Returns
 * the number of runs written to (a transaction was committed when > 0), 0 when it was not
 * time, sampling is off or no run was active, or a negative error from the store (nothing
 * written; the next interval tries again). */
int sysm_recorder_tick(struct sysm_recorder *r, struct store *st, uint64_t now_ns);

#endif
