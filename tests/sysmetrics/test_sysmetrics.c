/* test_sysmetrics.c — the sampler on a fake proc/ and sys/ tree: exact figures from known
 * readings; network from sys/class/net's physical interfaces only (not lo, bridges, veth,
 * tun), proc/net/dev when sys/class/net is missing; a run's cgroup v2 memory limit; missing
 * files skip their metrics; no NVML library means no GPU and no error; the recorder's
 * interval changed live. */
#include "sysmetrics.h"
#include "store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void mkdirs(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    mkdir(path, 0755);
}

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void rm_file(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    unlink(path);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/sidetrack-sysm-XXXXXX");
    assert_non_null(mkdtemp(root));
    mkdirs("proc/net");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* An interface in sys/class/net as the kernel shows it: statistics/{rx,tx}_bytes, and for a
 * physical one a device link (dangling here: only its presence matters). kind adds what a
 * bridge or tun has, so that the tree looks like a host's. */
static void iface(const char *name, const char *kind, unsigned long long rx,
                  unsigned long long tx)
{
    char rel[256], buf[64];
    snprintf(rel, sizeof rel, "sys/class/net/%s/statistics", name);
    mkdirs(rel);
    snprintf(rel, sizeof rel, "sys/class/net/%s/statistics/rx_bytes", name);
    snprintf(buf, sizeof buf, "%llu\n", rx);
    write_file(rel, buf);
    snprintf(rel, sizeof rel, "sys/class/net/%s/statistics/tx_bytes", name);
    snprintf(buf, sizeof buf, "%llu\n", tx);
    write_file(rel, buf);
    char path[512];
    if (!strcmp(kind, "nic")) {
        snprintf(path, sizeof path, "%s/sys/class/net/%s/device", root, name);
        if (symlink("../../../0000:00:1f.6", path) < 0)
            assert_int_equal(errno, EEXIST);
    } else if (!strcmp(kind, "bridge")) {
        snprintf(rel, sizeof rel, "sys/class/net/%s/bridge", name);
        mkdirs(rel);
    } else if (!strcmp(kind, "tun")) {
        snprintf(rel, sizeof rel, "sys/class/net/%s/tun_flags", name);
        write_file(rel, "0x1002\n");
    }
}

static const char *NETDEV_HEAD =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n";

static void net(unsigned long long lo, unsigned long long rx, unsigned long long tx,
                unsigned long long rx2)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "%s    lo: %llu 10 0 0 0 0 0 0 %llu 10 0 0 0 0 0 0\n"
             "  eth0: %llu 20 0 0 0 0 0 0 %llu 20 0 0 0 0 0 0\n"
             "  wlan0: %llu 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
             NETDEV_HEAD, lo, lo, rx, tx, rx2);
    write_file("proc/net/dev", buf);
}

static const double *find(const struct sysm_value *v, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].key, key))
            return &v[i].value;
    return NULL;
}

static void expect(const struct sysm_value *v, size_t n, const char *key, double want)
{
    const double *got = find(v, n, key);
    if (!got)
        fail_msg("%s missing", key);
    if (fabs(*got - want) > 1e-9)
        fail_msg("%s: %.12g, expected %.12g", key, *got, want);
}

static void test_exact_figures(void **state)
{
    (void)state;
    write_file("proc/stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 100 0 100 700 100 0 0 0 0 0\n"
                            "intr 12345\n");
    net(999, 1000000, 2000000, 0);
    write_file("proc/meminfo", "MemTotal:        1000000 kB\nMemFree:          100000 kB\n"
                               "MemAvailable:     250000 kB\nBuffers:   1 kB\n");
    struct sysm *s;
    assert_int_equal(sysm_open(&s, root, root, "/nonexistent/libnvidia-ml.so.1"), 0);
    assert_int_equal(sysm_gpu_count(s), 0);

    /* 1000 more jiffies, 700 of them idle or iowait: 30 % busy. */
    write_file("proc/stat", "cpu  300 0 200 1300 200 0 0 0 0 0\n");
    net(5000000, 3000000, 2500000, 500000);
    struct sysm_value v[SYSM_MAX_VALUES];
    size_t n = sysm_sample(s, v);
    expect(v, n, "system/cpu_utilization_percentage", 30.0);
    expect(v, n, "system/system_memory_usage_megabytes", 750000.0 * 1024 / 1e6);
    expect(v, n, "system/system_memory_usage_percentage", 75.0);
    expect(v, n, "system/network_receive_megabytes", 2.5); /* lo left out */
    expect(v, n, "system/network_transmit_megabytes", 0.5);
    const double *pct = find(v, n, "system/disk_usage_percentage");
    const double *used = find(v, n, "system/disk_usage_megabytes");
    const double *avail = find(v, n, "system/disk_available_megabytes");
    assert_non_null(pct);
    assert_non_null(used);
    assert_non_null(avail);
    assert_true(*pct >= 0 && *pct <= 100);
    if (*used + *avail > 0)
        assert_true(fabs(*pct - 100.0 * *used / (*used + *avail)) < 1e-6);
    assert_int_equal(n, 8); /* and nothing else: no GPU keys */
    for (size_t i = 0; i < n; i++)
        assert_null(strstr(v[i].key, "gpu_"));

    /* No new jiffies: no CPU figure rather than a division by zero. */
    n = sysm_sample(s, v);
    assert_null(find(v, n, "system/cpu_utilization_percentage"));
    sysm_close(s);
}

static void test_missing_files_skip(void **state)
{
    (void)state;
    rm_file("proc/stat");
    rm_file("proc/meminfo");
    rm_file("proc/net/dev");
    struct sysm *s;
    assert_int_equal(sysm_open(&s, root, NULL, "/nonexistent/libnvidia-ml.so.1"), 0);
    struct sysm_value v[SYSM_MAX_VALUES];
    assert_int_equal(sysm_sample(s, v), 0); /* nothing to read: nothing, no error */

    /* proc/stat appears: its first reading is the base, the second gives a figure. */
    write_file("proc/stat", "cpu  10 0 10 80 0 0 0 0 0 0\n");
    assert_int_equal(sysm_sample(s, v), 0);
    write_file("proc/stat", "cpu  60 0 10 130 0 0 0 0 0 0\n");
    size_t n = sysm_sample(s, v);
    assert_int_equal(n, 1);
    expect(v, n, "system/cpu_utilization_percentage", 50.0);

    /* A meminfo without MemAvailable (kernels before 3.14): memory skipped. */
    write_file("proc/meminfo", "MemTotal: 1000 kB\nMemFree: 10 kB\n");
    n = sysm_sample(s, v);
    assert_null(find(v, n, "system/system_memory_usage_megabytes"));
    sysm_close(s);
}

/* A host with containers: a NIC and a Wi-Fi card, lo, docker0 and a Linux bridge, a veth and
 * a tun. A container's byte crosses its veth, the bridge and the NIC: only the NIC's count
 * must show. proc/net/dev is there too, with other figures: sys/ wins. */
static void host_tree(unsigned long long k)
{
    iface("enp0s31f6", "nic", 1000000 * k, 2000000 * k);
    iface("wlp2s0", "nic", 500000 * k, 0);
    iface("lo", "", 90000000 * k, 90000000 * k);
    iface("docker0", "bridge", 40000000 * k, 40000000 * k);
    iface("br0", "bridge", 70000000 * k, 70000000 * k);
    iface("veth3f2a1c9", "", 30000000 * k, 30000000 * k);
    iface("tun0", "tun", 80000000 * k, 80000000 * k);
    net(5000000 * k, 60000000 * k, 60000000 * k, 0);
}

static void test_sys_net_counts_physical_interfaces_only(void **state)
{
    (void)state;
    host_tree(1);
    struct sysm *s;
    assert_int_equal(sysm_open(&s, root, NULL, "/nonexistent/libnvidia-ml.so.1"), 0);
    struct sysm_value v[SYSM_MAX_VALUES];
    size_t n = sysm_sample(s, v);
    expect(v, n, "system/network_receive_megabytes", 0.0);
    expect(v, n, "system/network_transmit_megabytes", 0.0);

    host_tree(3); /* every counter grows by twice its first value */
    n = sysm_sample(s, v);
    expect(v, n, "system/network_receive_megabytes", 3.0); /* 2 (NIC) + 1 (Wi-Fi) */
    expect(v, n, "system/network_transmit_megabytes", 4.0);

    /* The Wi-Fi card goes away and the NIC moves 1 MB more: the totals never fall. */
    rm_tree("sys/class/net/wlp2s0");
    iface("enp0s31f6", "nic", 4000000, 6000000);
    n = sysm_sample(s, v);
    expect(v, n, "system/network_receive_megabytes", 4.0);
    expect(v, n, "system/network_transmit_megabytes", 4.0);

    /* The NIC comes back recreated (counters from 0) with 0.3 MB, and a new one appears with
     * 0.1 MB: both moved all they count since the last sample. */
    rm_tree("sys/class/net/enp0s31f6");
    iface("enp0s31f6", "nic", 300000, 0);
    iface("enp1s0", "nic", 100000, 200000);
    n = sysm_sample(s, v);
    expect(v, n, "system/network_receive_megabytes", 4.4);
    expect(v, n, "system/network_transmit_megabytes", 4.2);
    sysm_close(s);
}

/* A container's own network namespace: sys/class/net holds lo and the container's end of a
 * veth, no physical interface. The veth is its way out: it counts, lo does not. */
static void test_sys_net_without_physical_counts_all_but_lo(void **state)
{
    (void)state;
    iface("lo", "", 1000, 1000);
    iface("eth0", "", 1000000, 3000000);
    struct sysm *s;
    assert_int_equal(sysm_open(&s, root, NULL, "/nonexistent/libnvidia-ml.so.1"), 0);
    iface("lo", "", 9000000, 9000000);
    iface("eth0", "", 3000000, 4000000);
    struct sysm_value v[SYSM_MAX_VALUES];
    size_t n = sysm_sample(s, v);
    expect(v, n, "system/network_receive_megabytes", 2.0);
    expect(v, n, "system/network_transmit_megabytes", 1.0);
    sysm_close(s);
}

/* No sys/class/net (a container without sys/): proc/net/dev, every interface but lo; and the
 * same when sys/class/net lists no interface whose counters can be read. */
static void test_proc_net_fallback(void **state)
{
    (void)state;
    net(999, 1000000, 2000000, 0);
    struct sysm *s;
    assert_int_equal(sysm_open(&s, root, NULL, "/nonexistent/libnvidia-ml.so.1"), 0);
    net(5000000, 3000000, 2500000, 500000);
    struct sysm_value v[SYSM_MAX_VALUES];
    size_t n = sysm_sample(s, v);
    expect(v, n, "system/network_receive_megabytes", 2.5); /* eth0 + wlan0, lo left out */
    expect(v, n, "system/network_transmit_megabytes", 0.5);

    mkdirs("sys/class/net/eth0"); /* no statistics/ */
    net(6000000, 4000000, 2600000, 500000);
    n = sysm_sample(s, v);
    expect(v, n, "system/network_receive_megabytes", 3.5);
    expect(v, n, "system/network_transmit_megabytes", 0.6);
    sysm_close(s);
}

/* A Slurm-like tree: the job's cgroup has the limit, the step and task below it none. The
 * nearest limited cgroup counts, its page cache not used lately left out. */
static void slurm_tree(void)
{
    mkdirs("proc/4242");
    write_file("proc/4242/cgroup", "0::/system.slice/slurmstepd.scope/job_17/step_0/task_0\n");
    mkdirs("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/step_0/task_0");
    write_file("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/step_0/task_0/memory.max",
               "max\n");
    write_file("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/step_0/task_0/memory.current",
               "100\n");
    write_file("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/step_0/memory.max", "max\n");
    write_file("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/memory.max", "4000000000\n");
    write_file("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/memory.current",
               "3000000000\n");
    write_file("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/memory.stat",
               "anon 1500000000\nfile 1500000000\nactive_file 500000000\n"
               "inactive_file 1000000000\n");
}

static void test_cgroup_memory(void **state)
{
    (void)state;
    slurm_tree();
    struct sysm *s;
    assert_int_equal(sysm_open(&s, root, NULL, "/nonexistent/libnvidia-ml.so.1"), 0);
    double used = 0, limit = 0;
    assert_int_equal(sysm_cgroup_memory(s, 4242, &used, &limit), 0);
    assert_true(used == 2e9);
    assert_true(limit == 4e9);

    /* No limit anywhere up to the root (a login session), cgroup v1, a cgroup outside our
     * namespace, a process gone, pid 0: no figure. */
    write_file("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/memory.max", "max\n");
    assert_int_equal(sysm_cgroup_memory(s, 4242, &used, &limit), -ENOENT);
    write_file("sys/fs/cgroup/system.slice/slurmstepd.scope/job_17/memory.max", "4000000000\n");
    write_file("proc/4242/cgroup", "12:memory:/slurm/job_17\n1:name=systemd:/x\n");
    assert_int_equal(sysm_cgroup_memory(s, 4242, &used, &limit), -ENOENT);
    write_file("proc/4242/cgroup", "0::/../../system.slice/slurmstepd.scope/job_17\n");
    assert_int_equal(sysm_cgroup_memory(s, 4242, &used, &limit), -ENOENT);
    assert_int_equal(sysm_cgroup_memory(s, 4343, &used, &limit), -ENOENT);
    assert_int_equal(sysm_cgroup_memory(s, 0, &used, &limit), -ENOENT);
    sysm_close(s);
}

/* ---- the recorder's interval, set live -------------------------------------------------- */

struct rec_fx {
    struct store *st;
    uint8_t run[16];
};

static uint64_t count_points_of(struct rec_fx *f, const char *key, int64_t *latest_step,
                                double *latest)
{
    struct store_txn *t;
    assert_int_equal(store_begin(f->st, false, &t), 0);
    struct store_metric_summary sum;
    int e = store_metric_summary_get(t, f->run, key, &sum);
    store_abort(t);
    if (e == -ENOENT)
        return 0;
    assert_int_equal(e, 0);
    *latest_step = sum.latest.step;
    if (latest)
        *latest = sum.latest.value;
    return sum.count;
}

static uint64_t count_points(struct rec_fx *f, int64_t *latest_step)
{
    return count_points_of(f, "system/system_memory_usage_megabytes", latest_step, NULL);
}

#define SEC 1000000000ull

static void test_recorder_interval_set_live(void **state)
{
    (void)state;
    write_file("proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 500 kB\n");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/store", root);
    mkdir(dir, 0700);
    struct rec_fx f;
    assert_int_equal(store_open(&f.st, dir, STORE_NOSYNC, 0), 0);
    slurm_tree(); /* the run's process is in the Slurm job's cgroup */
    struct store_run run = {.status = STORE_RUN_RUNNING, .start_ms = 1, .pid = 4242};
    memset(run.id, 0x5a, 16);
    memcpy(f.run, run.id, 16);
    gethostname(run.host, sizeof run.host - 1);
    struct store_txn *t;
    assert_int_equal(store_begin(f.st, true, &t), 0);
    assert_int_equal(store_run_start(t, &run), 0);
    assert_int_equal(store_commit(t), 0);

    /* Opened off (interval 0): ticks record nothing, however much time passes. */
    struct sysm_recorder *r;
    assert_int_equal(sysm_recorder_open(&r, root, dir, 0, 0), 0);
    assert_int_equal(sysm_recorder_interval(r), 0);
    assert_int_equal(sysm_recorder_tick(r, f.st, 100 * SEC), 0);
    int64_t step = -1;
    assert_int_equal(count_points(&f, &step), 0);

    /* Turned on: 10 s after the open has long passed, so the next tick samples. */
    sysm_recorder_set_interval(r, 10);
    assert_int_equal(sysm_recorder_interval(r), 10);
    assert_int_equal(sysm_recorder_tick(r, f.st, 100 * SEC), 1);
    assert_int_equal(sysm_recorder_tick(r, f.st, 105 * SEC), 0);
    assert_int_equal(sysm_recorder_tick(r, f.st, 110 * SEC), 1);

    /* Lengthened to 60 s: due 60 s after the last sample (110 s), not before. */
    sysm_recorder_set_interval(r, 60);
    assert_int_equal(sysm_recorder_tick(r, f.st, 169 * SEC), 0);
    assert_int_equal(sysm_recorder_tick(r, f.st, 170 * SEC), 1);
    /* Shortened to 5 s: due at 175 s, not 60 s later. */
    sysm_recorder_set_interval(r, 5);
    assert_int_equal(sysm_recorder_tick(r, f.st, 174 * SEC), 0);
    assert_int_equal(sysm_recorder_tick(r, f.st, 175 * SEC), 1);

    /* Off again, then on: the run's steps go on where they stopped. */
    sysm_recorder_set_interval(r, 0);
    assert_int_equal(sysm_recorder_tick(r, f.st, 1000 * SEC), 0);
    assert_int_equal(count_points(&f, &step), 4);
    assert_int_equal(step, 3);
    sysm_recorder_set_interval(r, 5);
    assert_int_equal(sysm_recorder_tick(r, f.st, 1000 * SEC), 1);
    assert_int_equal(count_points(&f, &step), 5);
    assert_int_equal(step, 4);
    double pct = 0;
    assert_int_equal(
        count_points_of(&f, "system/cgroup_memory_usage_percentage", &step, &pct), 5);
    assert_int_equal(step, 4);
    assert_true(pct == 50.0);

    sysm_recorder_close(r);
    store_close(f.st);
}

static void test_default_nvml_skips_cleanly(void **state)
{
    (void)state;
    /* The real library name: on a machine without the NVIDIA driver (CI) the dlopen fails and
     * the sampler has no GPU; with a driver it has what NVML reports. Either way it opens. */
    struct sysm *s;
    assert_int_equal(sysm_open(&s, root, NULL, NULL), 0);
    assert_true(sysm_gpu_count(s) <= SYSM_MAX_GPUS);
    struct sysm_value v[SYSM_MAX_VALUES];
    size_t n = sysm_sample(s, v);
    size_t gpu_keys = 0;
    for (size_t i = 0; i < n; i++)
        gpu_keys += strncmp(v[i].key, "system/gpu_", 11) == 0;
    if (sysm_gpu_count(s) == 0)
        assert_int_equal(gpu_keys, 0);
    sysm_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exact_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sys_net_counts_physical_interfaces_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sys_net_without_physical_counts_all_but_lo, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proc_net_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cgroup_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recorder_interval_set_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_nvml_skips_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
