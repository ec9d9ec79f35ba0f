/* report.c — the output: JSON lines, the machine line, and what else ran meanwhile. */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif

/* ---- JSON lines -------------------------------------------------------------------------- */

static bool jl_first;

static void jl_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void jl_name(const char *name)
{
    if (!jl_first)
        putchar(',');
    jl_first = false;
    jl_str(name);
    putchar(':');
}

void jl_begin(const char *scenario)
{
    putchar('{');
    jl_first = true;
    jl_s("scenario", scenario);
}

void jl_u64(const char *name, uint64_t v)
{
    jl_name(name);
    printf("%" PRIu64, v);
}

void jl_i64(const char *name, int64_t v)
{
    jl_name(name);
    printf("%" PRId64, v);
}

void jl_f(const char *name, double v, int decimals)
{
    jl_name(name);
    if (v != v || v > 1e300 || v < -1e300)
        fputs("null", stdout); /* JSON has no NaN or infinity */
    else
        printf("%.*f", decimals, v);
}

void jl_s(const char *name, const char *v)
{
    jl_name(name);
    if (v)
        jl_str(v);
    else
        fputs("null", stdout);
}

void jl_b(const char *name, bool v)
{
    jl_name(name);
    fputs(v ? "true" : "false", stdout);
}

void jl_end(void)
{
    fputs("}\n", stdout);
    fflush(stdout);
}

/* ---- what else ran ----------------------------------------------------------------------- */

static void read_stat(struct load_probe *p)
{
    p->busy = p->steal = p->total = 0;
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return;
    unsigned long long v[10] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8)
        return;
    /* user nice system idle iowait irq softirq steal (guest time is inside user already) */
    for (int i = 0; i < 8; i++)
        p->total += v[i];
    p->busy = v[0] + v[1] + v[2] + v[5] + v[6];
    p->steal = v[7];
}

static double self_cpu(void)
{
    double s = 0;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
        s += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return s;
}

void load_begin(struct load_probe *p)
{
    read_stat(p);
    p->self = self_cpu();
    p->t = now_ns();
}

void load_report(const struct load_probe *p)
{
    struct load_probe q;
    read_stat(&q);
    double self = self_cpu() - p->self;
    double wall = (double)(now_ns() - p->t) / 1e9;
    double hz = (double)sysconf(_SC_CLK_TCK);
    if (q.total <= p->total || wall <= 0 || hz <= 0)
        return;
    double other = (double)(q.busy - p->busy) / hz - self;
    jl_f("other_load", other > 0 ? other / wall : 0, 2);
    jl_f("steal_pct", 100.0 * (double)(q.steal - p->steal) / (double)(q.total - p->total), 1);
}

/* ---- the machine ------------------------------------------------------------------------- */

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *v = strchr(line, ':');
        if (v) {
            v++;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(buf, len, "%s", v);
        }
        break;
    }
    fclose(f);
}

static void hypervisor(char *buf, size_t len)
{
    snprintf(buf, len, "none");
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 31)))
        return; /* the "hypervisor present" bit */
    __cpuid(0x40000000, a, b, c, d);
    char v[13];
    memcpy(v, &b, 4);
    memcpy(v + 4, &c, 4);
    memcpy(v + 8, &d, 4);
    v[12] = 0;
    for (int i = 11; i >= 0 && (v[i] == 0 || v[i] == ' '); i--)
        v[i] = 0;
    if (!strcmp(v, "KVMKVMKVM"))
        snprintf(buf, len, "KVM");
    else
        snprintf(buf, len, "%s", *v ? v : "unknown");
#endif
}

void print_machine(void)
{
    char cpu[256], hv[32];
    cpu_model(cpu, sizeof cpu);
    hypervisor(hv, sizeof hv);
    struct utsname u;
    if (uname(&u) < 0)
        snprintf(u.release, sizeof u.release, "unknown");
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    jl_begin("machine");
    jl_s("cpu", cpu);
    jl_i64("cpus", sysconf(_SC_NPROCESSORS_ONLN));
    jl_s("hypervisor", hv);
    jl_f("mem_gib", pages > 0 && psize > 0 ? (double)pages * (double)psize / (1u << 30) : 0, 1);
    jl_s("kernel", u.release);
    jl_s("cc", __VERSION__);
    jl_s("buildtype", BENCH_BUILDTYPE);
    jl_f("tsc_ghz", 1.0 / tsc_ns_per_tick(), 4);
    jl_end();
}
