/* sysm_trainer.c — a run that stays RUNNING: starts it, prints its id, logs one metric,
 * sleeps SECONDS, ends it. For test_sysmetrics_agent.py. */
#include <sidetrack.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    unsigned secs = argc > 1 ? (unsigned)atoi(argv[1]) : 5;
    st_client *c;
    st_run *run;
    int r = st_open(&c, NULL);
    if (r < 0 || (r = st_run_start(c, "sysm", "long", &run)) < 0) {
        fprintf(stderr, "sysm_trainer: %s\n", st_strerror(r));
        return 1;
    }
    st_key k;
    if (st_key_intern(c, "loss", &k) == 0)
        st_log_metric(run, k, 1.0, 0);
    printf("%s\n", st_run_id(run));
    fflush(stdout);
    sleep(secs);
    st_run_end(run, ST_RUN_FINISHED);
    st_close(c);
    return 0;
}
