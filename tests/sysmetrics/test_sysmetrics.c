/* test_sysmetrics.c — the sampler on a fake proc/ tree: exact figures from known readings,
 * missing files skip their metrics, and no NVML library means no GPU and no error. */
#include "sysmetrics.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

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

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/sidetrack-sysm-XXXXXX");
    assert_non_null(mkdtemp(root));
    char p[512];
    snprintf(p, sizeof p, "%s/proc", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/proc/net", root);
    mkdir(p, 0755);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_file("proc/stat");
    rm_file("proc/meminfo");
    rm_file("proc/net/dev");
    char p[512];
    snprintf(p, sizeof p, "%s/proc/net", root);
    rmdir(p);
    snprintf(p, sizeof p, "%s/proc", root);
    rmdir(p);
    rmdir(root);
    return 0;
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
        cmocka_unit_test(test_exact_figures),
        cmocka_unit_test(test_missing_files_skip),
        cmocka_unit_test(test_default_nvml_skips_cleanly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
