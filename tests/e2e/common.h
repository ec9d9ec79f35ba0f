/* common.h — what the end-to-end tests share on top of proc.h: the values their producers
 * log, a producer process, reading run ids from a pipe, and the check of a metric's history
 * through the CLI. These fail the running cmocka test on a mismatch (include cmocka.h first).
 */
#ifndef SIDETRACK_TEST_COMMON_H
#define SIDETRACK_TEST_COMMON_H

#include "proc.h"

#include <sidetrack.h>

#include <stdint.h>
#include <time.h>

/* The value logged at step i of key m<k>: i * slope + k + 1 / (i + shift). Not representable
 * in short decimal, so an exact match read back proves the full 64 bits went through. Each
 * test picks its own slope and shift. */
struct series {
    double slope;
    int shift;
};
double series_value(const struct series *v, long i, int k);

/* Holds a producer loop to per_second steps a second (0: as fast as it goes): call
 * pacer_step() after each step; every 1,024 steps it sleeps until the step is due. */
struct pacer {
    long per_second;
    struct timespec t0;
};
void pacer_start(struct pacer *p, long per_second);
void pacer_step(struct pacer *p, long i);

/* A producer process: one run, keys m0..m<keys-1>, steps 0..points-1 of each, values from
 * `values`, paced at per_second. */
struct producer_spec {
    const char *experiment, *name; /* of the run */
    long points;                   /* per key */
    int keys;                      /* at most 8 */
    long per_second;               /* pacing; 0 = as fast as possible */
    uint64_t lane_size;
    struct series values;
    /* Optional: called before the metrics (after the run id is handed over) and after them,
     * with arg; a negative return fails the producer. */
    int (*before)(st_run *run, const void *arg);
    int (*after)(st_run *run, const void *arg);
    const void *arg;
};
/* Forks a producer. It writes its run id (33 bytes with the NUL) to wfd, then logs, then exits
 * with 0, 3 if any metric was dropped or record lost (the tests need exact sets), or >= 10 if
 * something failed. */
pid_t producer_fork(const struct producer_spec *ps, int wfd);
/* The same with a pipe of its own, whose read end goes to *id_fd (for read_run_ids). */
pid_t producer_start(const struct producer_spec *ps, int *id_fd);
/* Waits up to timeout_ms for a producer, which must exit 0 (3 would mean drops: the test's
 * pacing is wrong). */
void producer_wait_ok(pid_t pid, int timeout_ms);

/* Reads a run id (33 bytes: 32 hex digits and a NUL) from fd, then closes it; read_run_ids
 * reads n of them in turn from the one pipe. */
void read_run_id(int fd, char id[33]);
void read_run_ids(int fd, int n, char ids[][33]);

/* Reads key m<k> of run through `sidetrack metrics RUN m<k> --format csv`, and fails the test
 * unless the points are steps 0..n-1, in order, each worth exactly series_value(v, step, k) +
 * offset and stamped with a wall-clock time in ms. Returns n, or -1 when the CLI fails (no
 * such metric: nothing was published). */
long history_points(const struct scratch *s, const char *run, int k, const struct series *v,
                    double offset);
/* history_points(), which must find exactly `points` points. */
void expect_history(const struct scratch *s, const char *run, int k, const struct series *v,
                    double offset, long points);

#endif
