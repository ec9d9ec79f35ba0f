/* tsc.c — turning producers' rdtsc stamps into wall-clock milliseconds.
 *
 * Producers stamp metrics with the raw TSC (12 ns here, against 30 ns for clock_gettime),
 * which ticks at a constant rate on CPUs with constant_tsc and nonstop_tsc (the ring's
 * creator checked). The agent pairs a TSC reading with CLOCK_REALTIME at each pass and
 * measures the tick length over its whole lifetime (a 20 ms calibration at start, refined as
 * the baseline grows), then converts a stamp backwards from the latest pair: recent records
 * are exact to well under a millisecond, and older ones drift only by the rate error.
 */
#include "agent.h"

#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static uint64_t ticks(void) { return __rdtsc(); }
#else
static uint64_t ticks(void) { return 0; }
#endif

static void read_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t t0 = ticks();
    *ns = agent_now_ns();
    uint64_t t1 = ticks();
    *tsc = t0 + (t1 - t0) / 2;
}

void tsc_calibrate(struct agent *a)
{
    read_pair(&a->tsc0, &a->ns0);
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    read_pair(&a->tsc_now, &a->ns_now);
    uint64_t dt = a->tsc_now - a->tsc0;
    a->ns_per_tick = dt ? (double)(a->ns_now - a->ns0) / (double)dt : 1.0;
}

void tsc_update(struct agent *a)
{
    read_pair(&a->tsc_now, &a->ns_now);
    uint64_t dt = a->tsc_now - a->tsc0;
    if (a->ns_now > a->ns0 + 1000000000ull && dt)
        a->ns_per_tick = (double)(a->ns_now - a->ns0) / (double)dt;
}

int64_t tsc_to_ms(const struct agent *a, int64_t stamp)
{
    double back_ns = (double)(int64_t)(a->tsc_now - (uint64_t)stamp) * a->ns_per_tick;
    return ((int64_t)a->ns_now - (int64_t)back_ns) / 1000000;
}
