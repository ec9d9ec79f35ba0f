/* sysmetrics.h — the node's system metrics (CPU, memory, disk, network, GPUs), sampled by the
 * agent and recorded on the runs active on the node under MLflow's system/ key names.
 *
 * Sampling happens in the agent, never in a training process: a producer pays nothing.
 * CPU, memory and network come from ROOT/proc, disk from statvfs() of the store's directory,
 * GPUs from NVML loaded at run time (dlopen "libnvidia-ml.so.1"; absent: no GPU metrics).
 * ROOT is "/" unless given: tests point it at a fake tree ($SIDETRACK_PROC_ROOT, see
 * docs/agent.md; meant for tests only). A file that is missing or unreadable skips its
 * metrics for that sample; it is never an error.
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

/* The agent's side: every interval, one sample appended (one point per key; step = the
 * number of samples this agent recorded on that run before; timestamp = now) to every run of
 * the store that is RUNNING, not deleted and started on this host. One write transaction per
 * interval, so the points are journaled and replicated like any other. Call it from the
 * thread that writes the store, with no transaction of its own open. */
struct store;
struct sysm_recorder;
/* data_dir: the store's directory (its file system is the disk reported). */
int sysm_recorder_open(struct sysm_recorder **r, const char *root, const char *data_dir,
                       uint32_t interval_s, uint64_t now_ns);
void sysm_recorder_close(struct sysm_recorder *r); /* NULL accepted */
const struct sysm *sysm_recorder_sampler(const struct sysm_recorder *r);
/* Samples and records when the interval has passed since the last time (now_ns: any clock
 * that only goes forward, the same on every call). Returns the number of runs written to
 * (a transaction was committed when > 0), 0 when it was not time or no run was active, or
 * a negative error from the store (nothing written; the next interval tries again). */
int sysm_recorder_tick(struct sysm_recorder *r, struct store *st, uint64_t now_ns);

#endif
