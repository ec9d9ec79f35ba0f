/* stats.h — percentiles of latency samples (TSC ticks). */
#ifndef SIDETRACK_BENCH_STATS_H
#define SIDETRACK_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

struct lat_summary {
    size_t n;
    double p50, p90, p99, p999, max; /* ns */
};

/* Percentiles of timings read from a clock that advances in steps of `quantum` ticks (AMD's
 * TSC moves in steps of ~24 ticks, 10 ns, here). A reading of v stands for a duration
 * somewhere in [v - quantum/2, v + quantum/2): the samples are grouped by step, each group's
 * mass spread evenly over its step, and the percentile read off that piecewise-linear CDF.
 * With a quantum of 1 this is the plain nearest-rank percentile.
 *
 * Sorts samples (raw ticks) in place, subtracts `offset` ticks (the timer's own cost, floored
 * at 0) from each percentile and scales to ns by `scale` (ns per tick, divided by the calls
 * per sample for batches). */
void lat_summarise(uint64_t *samples, size_t n, double quantum, double offset, double scale,
                   struct lat_summary *out);
/* The p-th percentile (0 < p <= 100) of sorted ticks, interpolated within the quantum. */
double percentile_quantised(const uint64_t *sorted, size_t n, double p, double quantum);
void sort_u64(uint64_t *v, size_t n);

#endif
