/* stats.c — percentiles by sorting: a radix sort, so that millions of samples cost ~10 ms. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* LSD radix sort on 16-bit digits; skips the digits in which every value agrees. */
void sort_u64(uint64_t *v, size_t n)
{
    if (n < 2)
        return;
    uint64_t *tmp = malloc(n * sizeof *tmp);
    size_t *count = malloc((1u << 16) * sizeof *count);
    if (!tmp || !count) {
        free(tmp);
        free(count);
        qsort(v, n, sizeof *v, cmp_u64); /* out of memory: the slow way */
        return;
    }
    uint64_t *src = v, *dst = tmp;
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, (1u << 16) * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> shift) & 0xffff]++;
        if (count[(src[0] >> shift) & 0xffff] == n)
            continue; /* every value has the same digit here */
        size_t sum = 0;
        for (size_t d = 0; d < (1 << 16); d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 0xffff]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof *v);
    free(tmp);
    free(count);
}

double percentile_quantised(const uint64_t *s, size_t n, double p, double quantum)
{
    if (n == 0)
        return 0;
    if (quantum < 1)
        quantum = 1;
    double target = p / 100.0 * (double)n;
    double cum = 0;
    size_t i = 0;
    while (i < n) {
        /* one step of the clock: readings within half a quantum of the group's first */
        size_t j = i;
        double sum = 0;
        while (j < n && (double)(s[j] - s[i]) < quantum / 2) {
            sum += (double)s[j];
            j++;
        }
        double cnt = (double)(j - i), centre = sum / cnt;
        if (cum + cnt >= target || j == n) {
            double frac = (target - cum) / cnt;
            if (frac < 0)
                frac = 0;
            if (frac > 1)
                frac = 1;
            return centre - quantum / 2 + frac * quantum;
        }
        cum += cnt;
        i = j;
    }
    return (double)s[n - 1];
}

void lat_summarise(uint64_t *s, size_t n, double quantum, double offset, double scale,
                   struct lat_summary *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n == 0)
        return;
    sort_u64(s, n);
    double pct[4] = {50, 90, 99, 99.9};
    double *dst[4] = {&out->p50, &out->p90, &out->p99, &out->p999};
    for (int k = 0; k < 4; k++) {
        double v = percentile_quantised(s, n, pct[k], quantum) - offset;
        *dst[k] = (v > 0 ? v : 0) * scale;
    }
    double mx = (double)s[n - 1] - offset;
    out->max = (mx > 0 ? mx : 0) * scale;
}
